//! SPDY/3.1 port-forwarding (`portforward.k8s.io`), what `kubectl port-forward` speaks:
//! directly after an HTTP/1.1 upgrade, or tunnelled through a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31).
//!
//! [`session::Session`] serves one upgraded connection, whatever carried the upgrade: it
//! takes a byte stream (or a WebSocket) and a [`session::PortConnector`] that reaches the
//! pod's ports, so the API server's `pods/{name}/portforward` and a kubelet-style node
//! endpoint can share it.

pub(crate) use ferry_spdy::frame;
pub(crate) mod session;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod transport;
