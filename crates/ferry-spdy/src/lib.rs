//! SPDY/3.1 port-forwarding (`portforward.k8s.io`), as `kubectl port-forward` and kubelet
//! speak it: directly after an HTTP/1.1 upgrade, or tunnelled through a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, Kubernetes ≥ 1.30).
//!
//! - [`frame`]: the frame codec, shared by Ferry's client and the fake cluster's server.
//! - [`transport`]: what a session reads from and writes to (a byte stream or a WebSocket).
//! - [`client`]: one session to a pod, many connections on it, each a pair of streams.

pub mod client;
pub mod frame;
pub mod transport;
