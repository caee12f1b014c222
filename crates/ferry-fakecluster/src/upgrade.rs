//! The port-forward upgrade handshake, shared by the API server's `pods/{name}/portforward`
//! and the node's kubelet endpoint (`/portForward/{namespace}/{pod}`): plain SPDY/3.1,
//! SPDY tunnelled through a WebSocket, and the WebSocket channel protocol. What differs
//! between the two is only how the pod's ports are reached (the [`PortConnector`]) and
//! the name of the query parameter listing ports (`ports` for the API server, `port` for
//! kubelet).
//!
//! The caller sorts a request by protocol first ([`requested_protocol`]), so that it can
//! count the answer and refuse a protocol switched off ([`refusal`]) before handing the
//! request over.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span};

use crate::api::status;
use crate::faults::{Gate, TunnelGuard};
use crate::portforward;
use crate::spdy;
use crate::spdy::session::PortConnector;
use crate::stats::{Counters, Protocol};

/// The SPDY protocol port-forwarding speaks (`X-Stream-Protocol-Version`).
pub(crate) const SPDY_PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol prefix of SPDY tunnelled through a WebSocket.
const SPDY_TUNNEL_PREFIX: &str = "SPDY/3.1+";

/// The pod a port-forward upgrade leads to.
pub(crate) struct Target<C> {
    pub connector: Arc<C>,
    pub namespace: String,
    pub pod: String,
    /// Cancelled when the pod goes away: sessions close (GOAWAY, WebSocket close).
    pub end: CancellationToken,
    /// Cancelled to cut sessions at once, as a broken connection would.
    pub abort: CancellationToken,
    /// Counts the session as an open tunnel while it runs.
    pub guard: Option<TunnelGuard>,
    /// Freezes the session (the freeze fault).
    pub gate: Gate,
    /// Counts the session and its connections; `None` where nobody reads the counts.
    pub stats: Option<Arc<Counters>>,
    /// Kubelet's streaming idle timeout, if any.
    pub idle: Option<std::time::Duration>,
}

impl<C> Target<C> {
    fn spdy_session(&self) -> spdy::session::Session<C> {
        spdy::session::Session {
            connector: self.connector.clone(),
            end: self.end.clone(),
            abort: self.abort.clone(),
            gate: self.gate.clone(),
            stats: self.stats.clone(),
            idle: self.idle,
        }
    }
}

/// The subprotocols a WebSocket request offers, in order.
fn offered_subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The protocol a port-forward request asks for. `Upgrade: SPDY/…` is plain SPDY. A
/// WebSocket offering `SPDY/3.1+portforward.k8s.io` is the SPDY tunnel when
/// `tunnel_served`, or when it offers nothing else (to be refused as an API server older
/// than 1.30 refuses it); otherwise, as from such a server, the channel protocol.
/// Anything else is the channel protocol too.
pub(crate) fn requested_protocol(headers: &HeaderMap, tunnel_served: bool) -> Protocol {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade.starts_with("spdy") {
        return Protocol::Spdy;
    }
    let offered = offered_subprotocols(headers);
    let is_tunnel = |p: &String| p.starts_with(SPDY_TUNNEL_PREFIX);
    let tunnel = offered
        .iter()
        .any(|p| is_tunnel(p) && p.ends_with(".k8s.io"));
    if tunnel && (tunnel_served || offered.iter().all(is_tunnel)) {
        Protocol::SpdyWebSocket
    } else {
        Protocol::Channel
    }
}

/// The answer of a server that does not serve `protocol`: see
/// [`crate::Faults::refuse_protocol`]. kubectl ≥ 1.31 first offers the SPDY tunnel; any
/// other answer than `101` makes it fall back to plain SPDY.
pub(crate) fn refusal(protocol: Protocol, headers: &HeaderMap) -> Response {
    match protocol {
        // What an API server older than 1.30 answers; kubectl then falls back to SPDY.
        Protocol::SpdyWebSocket => status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unable to upgrade: SPDY tunnelled through a WebSocket is not served here; use SPDY/3.1 (POST with Upgrade: SPDY/3.1) or v4.channel.k8s.io",
            None,
        ),
        // Kubernetes' upgrade handshake answers 403 when no SPDY protocol is agreed on.
        Protocol::Spdy => status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {:?}, server accepts []; plain SPDY/3.1 is not served here, use v4.channel.k8s.io",
                stream_protocol_versions(headers)
            ),
            None,
        ),
        Protocol::Channel => status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unable to upgrade connection: the WebSocket channel protocol (v4.channel.k8s.io) is not served here; use SPDY/3.1 (POST with Upgrade: SPDY/3.1)",
            None,
        ),
    }
}

/// The versions listed in `X-Stream-Protocol-Version`.
fn stream_protocol_versions(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Answers a port-forward request for `protocol` (see [`requested_protocol`]): a `101`
/// and a session, or the error kubelet and the API server answer. `port_key` names the
/// query parameter with the ports of a WebSocket channel session.
pub(crate) async fn portforward<C: PortConnector>(
    parts: &mut http::request::Parts,
    query: &str,
    port_key: &str,
    protocol: Protocol,
    target: Target<C>,
) -> Response {
    match protocol {
        Protocol::Spdy => spdy_upgrade(parts, target),
        Protocol::SpdyWebSocket => spdy_tunnel(parts, target).await,
        Protocol::Channel => channel(parts, query, port_key, target).await,
    }
}

/// `GET …` upgraded to the WebSocket channel protocol.
async fn channel<C: PortConnector>(
    parts: &mut http::request::Parts,
    query: &str,
    port_key: &str,
    target: Target<C>,
) -> Response {
    let offered = offered_subprotocols(&parts.headers);
    let ports = match portforward::parse_ports_named(query, port_key) {
        Ok(p) => p,
        Err(msg) => return status(StatusCode::BAD_REQUEST, "BadRequest", msg, None),
    };
    let ws = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(ws) => ws,
        Err(_) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Upgrade request required",
                None,
            );
        }
    };
    let ws = ws.protocols(portforward::PROTOCOLS);
    if ws.selected_protocol().is_none() && !offered.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "unable to upgrade connection: none of the requested subprotocols {offered:?} is supported; use v4.channel.k8s.io"
            ),
            None,
        );
    }
    let session = portforward::Session {
        connector: target.connector,
        namespace: target.namespace,
        pod: target.pod,
        ports,
        end: target.end,
        drop_all: target.abort,
        guard: target.guard,
        gate: target.gate,
        open: target.stats.as_ref().map(|s| s.channel_session()),
        idle: target.idle,
        stats: target.stats.clone(),
    };
    ws.write_buffer_size(0)
        .max_message_size(16 << 20)
        .on_upgrade(move |socket| session.run(socket))
}

/// `POST …` with `Upgrade: SPDY/3.1`, as kubelet answers it: the protocol handshake on
/// `X-Stream-Protocol-Version`, then `101 Switching Protocols` and a SPDY session on the
/// connection.
fn spdy_upgrade<C: PortConnector>(
    parts: &mut http::request::Parts,
    mut target: Target<C>,
) -> Response {
    let connection = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("upgrade"));
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !connection || !upgrade.to_ascii_lowercase().contains("spdy/3.1") {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "unable to upgrade: missing upgrade headers in request: Connection must include Upgrade and Upgrade must be SPDY/3.1 (got {upgrade:?})"
            ),
            None,
        );
    }
    let versions = stream_protocol_versions(&parts.headers);
    if versions.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unable to upgrade: X-Stream-Protocol-Version is required",
            None,
        );
    }
    if !versions.iter().any(|v| v == SPDY_PORTFORWARD_PROTOCOL) {
        let mut res = status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {versions:?}, server accepts [\"{SPDY_PORTFORWARD_PROTOCOL}\"]"
            ),
            None,
        );
        res.headers_mut().insert(
            "x-accepted-stream-protocol-versions",
            HeaderValue::from_static(SPDY_PORTFORWARD_PROTOCOL),
        );
        return res;
    }
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unable to upgrade: this connection cannot be upgraded (HTTP/1.1 is required)",
            None,
        );
    };
    let session = target.spdy_session();
    let guard = target.guard.take();
    let open = target.stats.as_ref().map(|s| s.spdy_session());
    let span = debug_span!("spdy", pod.namespace = %target.namespace, pod.name = %target.pod);
    tokio::spawn(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let _open = (guard, open);
                    debug!("SPDY session opened");
                    session
                        .serve_io(hyper_util::rt::TokioIo::new(upgraded))
                        .await;
                    debug!("SPDY session closed");
                }
                Err(e) => debug!(error = %e, "SPDY upgrade failed"),
            }
        }
        .instrument(span),
    );
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(SPDY_PORTFORWARD_PROTOCOL),
    );
    res
}

/// `GET …` offering `SPDY/3.1+portforward.k8s.io`: a WebSocket whose binary messages carry
/// the SPDY byte stream, as API servers from 1.30 on serve it.
async fn spdy_tunnel<C: PortConnector>(
    parts: &mut http::request::Parts,
    mut target: Target<C>,
) -> Response {
    let Ok(ws) = WebSocketUpgrade::from_request_parts(parts, &()).await else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
            None,
        );
    };
    let protocol = format!("{SPDY_TUNNEL_PREFIX}{SPDY_PORTFORWARD_PROTOCOL}");
    let ws = ws.protocols([protocol.clone()]);
    if ws.selected_protocol().is_none() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("unable to upgrade: no tunneling spdy protocols provided; use {protocol}"),
            None,
        );
    }
    let session = target.spdy_session();
    let guard = target.guard.take();
    let open = target.stats.as_ref().map(|s| s.spdy_session());
    let span = debug_span!("spdy-ws", pod.namespace = %target.namespace, pod.name = %target.pod);
    ws.write_buffer_size(0)
        .max_message_size(16 << 20)
        .on_upgrade(move |socket| {
            async move {
                let _open = (guard, open);
                debug!("SPDY-over-WebSocket session opened");
                let (sink, stream) = socket.split();
                session
                    .serve(
                        spdy::transport::WsSource(stream),
                        spdy::transport::WsSink(sink),
                    )
                    .await;
                debug!("SPDY-over-WebSocket session closed");
            }
            .instrument(span)
        })
}
