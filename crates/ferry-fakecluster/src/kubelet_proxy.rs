//! Port-forwarding to a pod that a node runs (a pod created through the API and bound to
//! a registered Node, such as the pods of `ferry-fakecluster node`): the fake API server
//! does what a real one does, and proxies the upgrade to the node's kubelet endpoint
//! (`https://<InternalIP>:<kubeletEndpoint.Port>/portForward/{namespace}/{pod}`), over
//! TLS without a client certificate and without checking the node's certificate.
//!
//! Plain SPDY and the WebSocket channel protocol are passed through (the latter with
//! `?ports=` turned into kubelet's `?port=`). SPDY tunnelled through a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31) is translated as a real API server
//! from 1.30 on translates it: plain SPDY towards kubelet, the same bytes carried in the
//! client's binary WebSocket messages. Only loopback nodes are dialled.
//!
//! The fault switches reach relayed sessions too: dropping tunnels cuts them, and a frozen
//! one relays nothing either way (bytes read before the freeze wait for the thaw) while
//! both connections stay open.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span};

use crate::api::status;
use crate::faults::{Gate, TunnelGuard};
use crate::spdy::transport::{ChunkSource, FrameSink, IoSink, IoSource, WsSink, WsSource};
use crate::stats::Protocol;

/// Headers of an upgrade request that go to kubelet.
const FORWARDED: [&str; 6] = [
    "connection",
    "upgrade",
    "x-stream-protocol-version",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
];

/// Headers of kubelet's `101` that go back to the client.
const RETURNED: [&str; 5] = [
    "connection",
    "upgrade",
    "x-stream-protocol-version",
    "sec-websocket-accept",
    "sec-websocket-protocol",
];

/// What a proxied session needs besides its request.
pub(crate) struct Proxied {
    /// Cancelled to cut the session at once (the drop-tunnels fault).
    pub abort: CancellationToken,
    /// Counts the session as an open tunnel while it runs.
    pub guard: TunnelGuard,
    /// While it is frozen, nothing is relayed either way.
    pub gate: Gate,
}

/// Proxies a port-forward upgrade for `protocol` to the kubelet endpoint at `kubelet`.
pub(crate) async fn proxy(
    kubelet: SocketAddr,
    namespace: &str,
    pod: &str,
    query: &str,
    mut parts: http::request::Parts,
    protocol: Protocol,
    session: Proxied,
) -> Response {
    let Proxied { abort, guard, gate } = session;
    if protocol == Protocol::SpdyWebSocket {
        return tunnel(kubelet, namespace, pod, parts, abort, guard, gate).await;
    }
    // The API server's `ports=80,81` is kubelet's `port=80&port=81`.
    let ports: Vec<String> = crate::portforward::parse_ports_named(query, "ports")
        .map(|ports| ports.iter().map(|p| format!("port={p}")).collect())
        .unwrap_or_default();
    let mut uri = format!("/portForward/{namespace}/{pod}");
    if !ports.is_empty() {
        uri = format!("{uri}?{}", ports.join("&"));
    }
    let mut upstream = Request::builder()
        .method(parts.method.clone())
        .uri(&uri)
        .header(header::HOST, kubelet.to_string());
    for name in FORWARDED {
        for v in parts.headers.get_all(name) {
            upstream = upstream.header(name, v.clone());
        }
    }
    let Ok(upstream) = upstream.body(Empty::<bytes::Bytes>::new()) else {
        return bad_gateway("could not build the request to the node".into());
    };
    let res = match send_upgrade(kubelet, upstream).await {
        Ok(res) => res,
        Err(out) => return out,
    };
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in RETURNED {
        for v in res.headers().get_all(name) {
            out.headers_mut().append(name, v.clone());
        }
    }
    let Some(client_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unable to upgrade: this connection cannot be upgraded (HTTP/1.1 is required)",
            None,
        );
    };
    let span = debug_span!("kubelet-proxy", pod.namespace = %namespace, pod.name = %pod, node.addr = %kubelet);
    tokio::spawn(
        async move {
            let _open = guard;
            let (client, node) = match tokio::join!(client_upgrade, hyper::upgrade::on(res)) {
                (Ok(c), Ok(n)) => (c, n),
                (c, n) => {
                    debug!(client = c.is_ok(), node = n.is_ok(), "an upgrade failed");
                    return;
                }
            };
            let (client_r, client_w) = tokio::io::split(TokioIo::new(client));
            let (node_r, node_w) = tokio::io::split(TokioIo::new(node));
            let copy = async {
                tokio::try_join!(
                    copy(client_r, node_w, gate.clone()),
                    copy(node_r, client_w, gate),
                )
            };
            tokio::select! {
                () = abort.cancelled() => debug!("tunnel dropped by fault injection"),
                r = copy => debug!(result = ?r, "proxied session ended"),
            }
        }
        .instrument(span),
    );
    if !out.headers().contains_key(header::CONNECTION) {
        out.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    out
}

/// The SPDY tunnel a client offers inside a WebSocket.
const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// Sends an upgrade request to kubelet and returns its `101`; anything else (a failure
/// to reach it, or its own answer passed back) is already the answer for the client.
async fn send_upgrade(
    kubelet: SocketAddr,
    upstream: Request<Empty<bytes::Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, Response> {
    let res = request_node(kubelet, upstream).await?;
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(passed_back(res).await);
    }
    Ok(res)
}

async fn request_node(
    kubelet: SocketAddr,
    upstream: Request<Empty<bytes::Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, Response> {
    let conn = connect(kubelet)
        .await
        .map_err(|e| bad_gateway(format!("error dialing backend: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| bad_gateway(format!("error dialing backend: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    sender
        .send_request(upstream)
        .await
        .map_err(|e| bad_gateway(format!("error dialing backend: {e}")))
}

/// Kubelet's answer other than `101`, passed back as it is.
async fn passed_back(res: http::Response<hyper::body::Incoming>) -> Response {
    let (head, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = head.status;
    for (name, value) in &head.headers {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

/// SPDY tunnelled through a WebSocket: plain SPDY to kubelet, and the bytes of each side
/// relayed to the other (binary messages towards the client).
async fn tunnel(
    kubelet: SocketAddr,
    namespace: &str,
    pod: &str,
    mut parts: http::request::Parts,
    abort: CancellationToken,
    guard: TunnelGuard,
    gate: Gate,
) -> Response {
    use axum::extract::FromRequestParts as _;
    use axum::extract::ws::WebSocketUpgrade;
    use futures::StreamExt as _;

    let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
            None,
        );
    };
    let ws = ws.protocols([SPDY_TUNNEL]);
    if ws.selected_protocol().is_none() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("unable to upgrade: no tunneling spdy protocols provided; use {SPDY_TUNNEL}"),
            None,
        );
    }
    let upstream = Request::post(format!("/portForward/{namespace}/{pod}"))
        .header(header::HOST, kubelet.to_string())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "portforward.k8s.io")
        .body(Empty::<bytes::Bytes>::new());
    let Ok(upstream) = upstream else {
        return bad_gateway("could not build the request to the node".into());
    };
    let res = match send_upgrade(kubelet, upstream).await {
        Ok(res) => res,
        Err(out) => return out,
    };
    let span = debug_span!("kubelet-tunnel", pod.namespace = %namespace, pod.name = %pod, node.addr = %kubelet);
    ws.write_buffer_size(0)
        .max_message_size(16 << 20)
        .on_upgrade(move |socket| {
            async move {
                let _open = guard;
                let node = match hyper::upgrade::on(res).await {
                    Ok(n) => TokioIo::new(n),
                    Err(e) => {
                        debug!(error = %e, "the node's upgrade failed");
                        return;
                    }
                };
                let (node_r, node_w) = tokio::io::split(node);
                let (sink, stream) = socket.split();
                let relay = async {
                    tokio::select! {
                        r = relay(WsSource(stream), IoSink(node_w), gate.clone()) => r,
                        r = relay(IoSource::new(node_r), WsSink(sink), gate) => r,
                    }
                };
                tokio::select! {
                    () = abort.cancelled() => debug!("tunnel dropped by fault injection"),
                    r = relay => debug!(result = ?r, "translated session ended"),
                }
            }
            .instrument(span)
        })
}

/// Copies chunks from one side to the other until the source ends, then closes the sink.
/// While the gate is frozen it neither reads nor writes; a chunk read before waits for the
/// thaw. A gate that gives up (the server stopping) ends the copy.
async fn relay(
    mut from: impl ChunkSource,
    mut to: impl FrameSink,
    mut gate: Gate,
) -> std::io::Result<()> {
    loop {
        if !gate.thaw().await {
            return Ok(());
        }
        let chunk = tokio::select! {
            biased;
            () = gate.frozen() => continue,
            chunk = from.next_chunk() => chunk?,
        };
        let Some(chunk) = chunk else { break };
        if !gate.thaw().await {
            return Ok(());
        }
        to.send(chunk).await?;
        to.flush().await?;
    }
    to.close().await
}

/// Copies bytes from one side to the other until the source ends, then shuts down the
/// writing side, as [`relay`] does with chunks (and with the same freezing).
async fn copy<R, W>(mut from: R, mut to: W, mut gate: Gate) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut buf = vec![0u8; 64 << 10];
    loop {
        if !gate.thaw().await {
            return Ok(());
        }
        let n = tokio::select! {
            biased;
            () = gate.frozen() => continue,
            n = from.read(&mut buf) => n?,
        };
        if n == 0 {
            break;
        }
        if !gate.thaw().await {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
    to.shutdown().await
}

fn bad_gateway(message: String) -> Response {
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        message,
        None,
    )
    .into_response()
}

/// How the API server talks TLS to nodes; built once.
static NODE_TLS: std::sync::LazyLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> =
    std::sync::LazyLock::new(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    });

async fn connect(
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = NODE_TLS
        .as_ref()
        .map_err(|e| std::io::Error::other(e.clone()))?
        .clone();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
}

/// Accepts the node's certificate unchecked, as an API server without
/// `--kubelet-certificate-authority` does; signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
