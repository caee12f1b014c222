//! The in-process servers behind pod ports.
//!
//! Every container port of every pod gets its own loopback listener, so that a tunnel
//! reaches "the pod" over a real TCP connection, as kubelet reaches a container inside its
//! network namespace, and so that benchmarks can measure the direct path as a ceiling.
//! A port's behaviour can change at run time; the change applies to new connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, warn};

use crate::scenario::Behavior;

/// One pod port's server. Dropping it stops the listener and every open connection.
pub(crate) struct PortBackend {
    /// The container port number as the pod declares it.
    pub container_port: u16,
    /// The stable loopback address of the listener (kept across `refuse` periods).
    pub addr: SocketAddr,
    /// Sends behaviour changes to the serving task.
    behavior: watch::Sender<Behavior>,
    /// Cancels the serving task and its connections.
    token: CancellationToken,
}

impl Drop for PortBackend {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Starts one server per port of a pod; a port whose server cannot start is logged and
/// left out (the pod then refuses it, as a container that does not listen would).
pub(crate) fn start_pod_ports(
    pod_name: &str,
    ports: &[crate::scenario::PortSpec],
    token: &CancellationToken,
) -> Vec<PortBackend> {
    let name: Arc<str> = Arc::from(pod_name);
    let mut backends = Vec::new();
    for p in ports {
        match PortBackend::start(name.clone(), p.port, p.behavior.clone(), token) {
            Ok(b) => backends.push(b),
            Err(e) => {
                warn!(pod.name = pod_name, pod.port = p.port, error = %e, "could not start a pod port's server")
            }
        }
    }
    backends
}

impl PortBackend {
    /// Binds a loopback listener and starts serving with `behavior`.
    ///
    /// Must be called within a Tokio runtime.
    pub fn start(
        pod: Arc<str>,
        container_port: u16,
        behavior: Behavior,
        parent: &CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let token = parent.child_token();
        let (tx, rx) = watch::channel(behavior);
        let span = debug_span!("backend", pod.name = %pod, pod.port = container_port, backend.addr = %addr);
        tokio::spawn(serve(pod, addr, Some(listener), rx, token.clone()).instrument(span));
        Ok(Self {
            container_port,
            addr,
            behavior: tx,
            token,
        })
    }

    /// The behaviour new connections get.
    pub fn behavior(&self) -> Behavior {
        self.behavior.borrow().clone()
    }

    /// Switches the behaviour for new connections.
    pub fn set_behavior(&self, behavior: Behavior) {
        self.behavior.send_if_modified(|b| {
            if *b == behavior {
                false
            } else {
                *b = behavior;
                true
            }
        });
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve(
    pod: Arc<str>,
    addr: SocketAddr,
    mut listener: Option<TcpListener>,
    mut behavior: watch::Receiver<Behavior>,
    token: CancellationToken,
) {
    loop {
        let current = behavior.borrow_and_update().clone();
        let mut retry_bind = false;
        if current == Behavior::Refuse {
            // Nothing listens while the port refuses, so connections get a real refusal.
            listener = None;
        } else if listener.is_none() {
            match bind(addr) {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    // Another process may hold the port for a moment; try again shortly.
                    warn!(error = %e, "could not listen on the backend address again; retrying");
                    retry_bind = true;
                }
            }
        }
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        let retry = async {
            if retry_bind {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            () = token.cancelled() => return,
            changed = behavior.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = retry => {}
            accepted = accept => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let span = debug_span!("backend.conn", client.addr = %peer, behavior = %current);
                    tokio::spawn(
                        handle(pod.clone(), sock, current, token.clone()).instrument(span),
                    );
                }
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
        }
    }
}

async fn handle(pod: Arc<str>, mut sock: TcpStream, behavior: Behavior, token: CancellationToken) {
    let work = async {
        match behavior {
            Behavior::Echo => echo(&mut sock).await,
            Behavior::Sink => sink(&mut sock).await,
            Behavior::Blackhole => {
                std::future::pending::<()>().await;
                Ok(())
            }
            Behavior::Refuse => Ok(()),
            Behavior::Http => serve_http(pod, sock).await,
            Behavior::Proxy(to) => proxy(&mut sock, to).await,
        }
    };
    tokio::select! {
        () = token.cancelled() => debug!("connection closed because its pod went away"),
        res = work => if let Err(e) = res {
            debug!(error = %e, "connection ended with an error");
        },
    }
}

async fn echo(sock: &mut TcpStream) -> std::io::Result<()> {
    let (mut r, mut w) = sock.split();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            w.shutdown().await?;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
    }
}

async fn sink(sock: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while sock.read(&mut buf).await? != 0 {}
    sock.shutdown().await
}

async fn proxy(sock: &mut TcpStream, to: SocketAddr) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(to).await?;
    let _ = upstream.set_nodelay(true);
    tokio::io::copy_bidirectional(sock, &mut upstream).await?;
    Ok(())
}

type HttpBody = BoxBody<Bytes, Infallible>;

async fn serve_http(pod: Arc<str>, sock: TcpStream) -> std::io::Result<()> {
    // WebSocket connections outlive the HTTP one they upgraded: their tasks are owned here
    // and end with the connection's (its pod going away ends them all).
    // One HTTP/1.1 connection upgrades at most once: a slot of one is enough.
    let (upgrades, mut upgraded) = tokio::sync::mpsc::channel(1);
    let service = hyper::service::service_fn(move |req| {
        let pod = pod.clone();
        let upgrades = upgrades.clone();
        async move { Ok::<_, Infallible>(http_response(&pod, req, &upgrades).await) }
    });
    let mut sockets = tokio::task::JoinSet::new();
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(sock), service)
        .with_upgrades();
    tokio::pin!(served);
    let result = loop {
        tokio::select! {
            r = &mut served => break r,
            Some(on) = upgraded.recv() => { sockets.spawn(websocket_echo(on)); }
        }
    };
    while let Ok(on) = upgraded.try_recv() {
        sockets.spawn(websocket_echo(on));
    }
    while sockets.join_next().await.is_some() {}
    result.map_err(std::io::Error::other)
}

/// Echoes every WebSocket message back once the upgrade completes.
async fn websocket_echo(on: hyper::upgrade::OnUpgrade) {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Ok(io) = on.await else { return };
    let mut ws =
        tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None)
            .await;
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            let _ = ws.close(None).await;
            return;
        }
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// A 64 KiB block of payload for `/bytes`.
static BLOCK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

fn text(status: StatusCode, body: String) -> Response<HttpBody> {
    let mut res = Response::new(Full::new(Bytes::from(body)).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

async fn http_response(
    pod: &str,
    mut req: Request<Incoming>,
    upgrades: &tokio::sync::mpsc::Sender<hyper::upgrade::OnUpgrade>,
) -> Response<HttpBody> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let number = |key: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map(str::parse::<u64>)
    };
    if path == "/ws" {
        return websocket_accept(&mut req, upgrades);
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        // Echo the body: a POST's answer is what it sent.
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
        };
        let mut res = Response::new(Full::new(body).boxed());
        res.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/octet-stream"),
        );
        return res;
    }
    match path.as_str() {
        "/" => text(StatusCode::OK, format!("hello from {pod}\n")),
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/bytes" => match number("n") {
            Some(Ok(n)) => bytes_response(n, true),
            _ => text(StatusCode::BAD_REQUEST, "expected /bytes?n=NUMBER\n".into()),
        },
        // No length: HTTP/1.1 sends it chunked.
        "/chunked" => match number("n") {
            Some(Ok(n)) => bytes_response(n, false),
            _ => text(
                StatusCode::BAD_REQUEST,
                "expected /chunked?n=NUMBER\n".into(),
            ),
        },
        p if p.starts_with("/status/") => {
            match p["/status/".len()..]
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                Some(code) => text(code, format!("{code} from {pod}\n")),
                None => text(StatusCode::BAD_REQUEST, "expected /status/CODE\n".into()),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            format!("{path} not found on {pod}\n"),
        ),
    }
}

/// Answers a WebSocket handshake with 101 and hands the connection to the echo task.
fn websocket_accept(
    req: &mut Request<Incoming>,
    upgrades: &tokio::sync::mpsc::Sender<hyper::upgrade::OnUpgrade>,
) -> Response<HttpBody> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()));
    let wants = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(accept) = key.filter(|_| wants) else {
        return text(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket handshake\n".into(),
        );
    };
    if upgrades.try_send(hyper::upgrade::on(req)).is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "an upgrade is already pending\n".into(),
        );
    }
    let mut res = Response::new(Full::new(Bytes::new()).boxed());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", v);
    }
    res
}

fn bytes_response(n: u64, with_length: bool) -> Response<HttpBody> {
    let block = BLOCK.len() as u64;
    let chunks = stream::unfold(n, move |left| async move {
        if left == 0 {
            return None;
        }
        let take = left.min(block);
        let frame = Frame::data(Bytes::from_static(&BLOCK[..take as usize]));
        Some((Ok::<_, Infallible>(frame), left - take))
    });
    let mut res = Response::new(StreamBody::new(chunks).boxed());
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    if with_length {
        res.headers_mut().insert(
            hyper::header::CONTENT_LENGTH,
            hyper::header::HeaderValue::from(n),
        );
    }
    res
}
