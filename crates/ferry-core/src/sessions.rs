//! Ferry's transport to pods: one multiplexed SPDY session per pod, a pair of streams per
//! connection, as `kubectl port-forward` does, instead of an upgrade per connection.
//!
//! A [`Tunnels`] belongs to one built client (one kubeconfig context; see
//! [`crate::cluster::ContextClient`]) and is shared by every forward, health check and
//! [`crate::Engine::dial`] of that context. Per pod it keeps a few sessions, opened on first
//! use:
//! - SPDY/3.1 tunnelled through a WebSocket (`SPDY/3.1+portforward.k8s.io`, Kubernetes ≥
//!   1.30) first; plain SPDY (`POST`, `Upgrade: SPDY/3.1`) when the server refuses the
//!   tunnel; and when it refuses SPDY too, a WebSocket channel tunnel per connection
//!   ([`crate::tunnel::dial_channel`], the protocol Ferry spoke before).
//! - What the server speaks is remembered per client; a refusal of the remembered protocol
//!   makes the next session try again from the top, and the channel fallback is tried
//!   again after [`RELEARN_AFTER`].
//! - A connection goes to the session of its pod with the fewest connections, among those
//!   under [`MAX_STREAMS`] that neither wait for a slow reader nor were told GOAWAY. When
//!   none qualifies one new session is opened (one at a time per pod: callers wait for it
//!   together).
//! - Sessions ping the server and end when it stays silent, and close after
//!   [`SESSION_IDLE`] without connections (see [`ferry_spdy::client`]).
//!
//! No lock is held across an upgrade: the opening of a session is a shared future that
//! the waiting callers await outside the lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_spdy::client::{Config, Session};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use http::header;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::debug;

use crate::tunnel::{TunnelError, TunnelStream, dial_channel};

/// The most connections one session carries; more go to another session of the pod.
pub const MAX_STREAMS: usize = 128;

/// A session without connections for this long is closed (checked every 5 s): a forward
/// nobody uses holds no session between its health checks.
pub const SESSION_IDLE: Duration = Duration::from_secs(10);

/// After the server refused both SPDY protocols, how long connections use the channel
/// protocol before SPDY is tried again.
pub const RELEARN_AFTER: Duration = Duration::from_secs(300);

/// The WebSocket subprotocol of SPDY tunnelled through a WebSocket.
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// What a server speaks for port-forwarding, in the order Ferry tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// SPDY/3.1 through a WebSocket.
    Tunnel,
    /// SPDY/3.1 on the upgraded HTTP/1.1 connection.
    Spdy,
    /// The WebSocket channel protocol, a WebSocket per connection.
    Channel,
}

type Opening = Shared<BoxFuture<'static, Result<Session, Option<TunnelError>>>>;

/// The sessions to the pods of one context's client.
pub struct Tunnels {
    client: kube::Client,
    config: Config,
    inner: Mutex<Inner>,
    /// Sessions opened (upgrades that carried SPDY).
    opened: AtomicU64,
}

#[derive(Default)]
struct Inner {
    learned: Option<(Protocol, Instant)>,
    pods: HashMap<(String, String), Pod>,
}

#[derive(Default)]
struct Pod {
    sessions: Vec<Session>,
    opening: Option<Opening>,
}

enum Step {
    Use(Session),
    Wait(Opening),
    Channel,
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnels")
            .field("learned", &self.inner.lock().learned.map(|l| l.0))
            .finish_non_exhaustive()
    }
}

impl Tunnels {
    /// Sessions over `client`, with the default session settings.
    pub fn new(client: kube::Client) -> Arc<Tunnels> {
        Self::with_config(
            client,
            Config {
                idle: Some(SESSION_IDLE),
                ..Config::default()
            },
        )
    }

    /// Sessions over `client` with `config`.
    pub fn with_config(client: kube::Client, config: Config) -> Arc<Tunnels> {
        Arc::new(Tunnels {
            client,
            config,
            inner: Mutex::new(Inner::default()),
            opened: AtomicU64::new(0),
        })
    }

    /// The protocol the server was last found to speak.
    pub fn protocol(&self) -> Option<Protocol> {
        self.inner.lock().learned.map(|l| l.0)
    }

    /// How many SPDY sessions were opened so far.
    pub fn sessions_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Live sessions to `namespace/pod` and their connections.
    pub fn sessions_to(&self, namespace: &str, pod: &str) -> Vec<usize> {
        let inner = self.inner.lock();
        inner
            .pods
            .get(&(namespace.to_string(), pod.to_string()))
            .map(|p| {
                p.sessions
                    .iter()
                    .filter(|s| s.closed().is_none())
                    .map(Session::connections)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether connections go through SPDY sessions (rather than a WebSocket each).
    pub fn multiplexed(&self) -> bool {
        !matches!(
            self.learned_now(&mut self.inner.lock()),
            Some(Protocol::Channel)
        )
    }

    fn learned_now(&self, inner: &mut Inner) -> Option<Protocol> {
        match inner.learned {
            Some((Protocol::Channel, at)) if at.elapsed() >= RELEARN_AFTER => {
                inner.learned = None;
                None
            }
            l => l.map(|l| l.0),
        }
    }

    /// Pings every live session now; those that stay silent for `within` end (their
    /// connections fail as lost to silence, and move on if the pod had not answered yet).
    /// Returns how many ended.
    pub async fn verify(&self, within: Duration, why: &str) -> usize {
        let sessions: Vec<Session> = {
            let inner = self.inner.lock();
            inner
                .pods
                .values()
                .flat_map(|p| p.sessions.iter())
                .filter(|s| s.closed().is_none())
                .cloned()
                .collect()
        };
        let checks = sessions.iter().map(|s| s.check(within, why));
        futures::future::join_all(checks)
            .await
            .into_iter()
            .filter(|alive| !alive)
            .count()
    }

    /// Opens a session to `namespace/pod` now if it has none, so the next connection
    /// finds one ready.
    pub async fn prepare(self: &Arc<Self>, namespace: &str, pod: &str) -> Result<(), TunnelError> {
        let step = {
            let mut inner = self.inner.lock();
            if self.learned_now(&mut inner) == Some(Protocol::Channel) {
                return Ok(());
            }
            let entry = inner
                .pods
                .entry((namespace.to_string(), pod.to_string()))
                .or_default();
            entry.sessions.retain(|s| s.closed().is_none());
            if let Some(s) = entry.sessions.iter().find(|s| s.usable()) {
                s.keep();
                return Ok(());
            }
            self.opening(entry, namespace, pod)
        };
        let r = step.clone().await;
        self.opened_one(namespace, pod, &step, &r);
        match r {
            Ok(_) | Err(None) => {
                let inner = self.inner.lock();
                let key = (namespace.to_string(), pod.to_string());
                if let Some(entry) = inner.pods.get(&key) {
                    entry.sessions.iter().for_each(Session::keep);
                }
                Ok(())
            }
            Err(Some(e)) => Err(e),
        }
    }

    /// A connection to `namespace/pod:port`.
    pub async fn open(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<TunnelStream, TunnelError> {
        self.open_as(namespace, pod, port, false).await
    }

    /// [`Tunnels::open`] for a health check: a session that only checks went through
    /// closes once it carries nothing ([`Session::open_brief`]), so probing many idle pods
    /// holds no session per pod between checks.
    pub async fn open_brief(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<TunnelStream, TunnelError> {
        self.open_as(namespace, pod, port, true).await
    }

    async fn open_as(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        port: u16,
        brief: bool,
    ) -> Result<TunnelStream, TunnelError> {
        let mut failures = 0;
        loop {
            let step = {
                let mut inner = self.inner.lock();
                if self.learned_now(&mut inner) == Some(Protocol::Channel) {
                    Step::Channel
                } else {
                    let entry = inner
                        .pods
                        .entry((namespace.to_string(), pod.to_string()))
                        .or_default();
                    entry.sessions.retain(|s| s.closed().is_none());
                    let best = entry
                        .sessions
                        .iter()
                        .filter(|s| s.usable() && !s.blocked() && s.connections() < MAX_STREAMS)
                        .min_by_key(|s| s.connections())
                        .cloned();
                    match best {
                        Some(s) => Step::Use(s),
                        None => Step::Wait(self.opening(entry, namespace, pod)),
                    }
                }
            };
            match step {
                Step::Channel => {
                    return dial_channel(&self.client, namespace, pod, port)
                        .await
                        .map(|c| TunnelStream::Channel(Box::new(c)));
                }
                Step::Use(session) => match if brief {
                    session.open_brief(port)
                } else {
                    session.open(port)
                } {
                    Ok(stream) => return Ok(TunnelStream::Spdy(stream)),
                    // Closed or told GOAWAY in the meantime: pick again.
                    Err(e) => debug!(error = %e, "a session refused a connection"),
                },
                Step::Wait(opening) => {
                    let r = opening.clone().await;
                    self.opened_one(namespace, pod, &opening, &r);
                    match r {
                        // The new session is among the pod's now: pick again.
                        Ok(_) | Err(None) => {}
                        Err(Some(e)) => return Err(e.for_port(port)),
                    }
                }
            }
            failures += 1;
            if failures > 2 * MAX_STREAMS {
                return Err(TunnelError::Upgrade {
                    namespace: namespace.to_string(),
                    pod: pod.to_string(),
                    port,
                    code: None,
                    message: "no session to the pod would take the connection".into(),
                });
            }
        }
    }

    /// The pod's session being opened, or a new opening.
    fn opening(self: &Arc<Self>, entry: &mut Pod, namespace: &str, pod: &str) -> Opening {
        if let Some(o) = &entry.opening {
            return o.clone();
        }
        let me = self.clone();
        let (namespace, pod) = (namespace.to_string(), pod.to_string());
        let o = async move { me.open_session(&namespace, &pod).await }
            .boxed()
            .shared();
        entry.opening = Some(o.clone());
        o
    }

    /// Records the end of an opening (once, whoever awaited it first).
    fn opened_one(
        &self,
        namespace: &str,
        pod: &str,
        opening: &Opening,
        result: &Result<Session, Option<TunnelError>>,
    ) {
        let mut inner = self.inner.lock();
        let Some(entry) = inner
            .pods
            .get_mut(&(namespace.to_string(), pod.to_string()))
        else {
            return;
        };
        if entry.opening.as_ref().is_some_and(|o| o.ptr_eq(opening)) {
            entry.opening = None;
            if let Ok(session) = result {
                entry.sessions.push(session.clone());
            }
        }
    }

    /// Opens a session, trying the protocols in order. `Err(None)`: the server speaks
    /// neither SPDY protocol, connections use the channel protocol.
    async fn open_session(
        &self,
        namespace: &str,
        pod: &str,
    ) -> Result<Session, Option<TunnelError>> {
        let order = match self.inner.lock().learned.map(|l| l.0) {
            Some(Protocol::Spdy) => [Protocol::Spdy, Protocol::Tunnel],
            _ => [Protocol::Tunnel, Protocol::Spdy],
        };
        for protocol in order {
            match self.upgrade(namespace, pod, protocol).await {
                Ok(session) => {
                    self.opened.fetch_add(1, Ordering::Relaxed);
                    self.inner.lock().learned = Some((protocol, Instant::now()));
                    debug!(
                        pod.namespace = namespace,
                        pod.name = pod,
                        ?protocol,
                        "session opened"
                    );
                    return Ok(session);
                }
                Err(Refusal {
                    fallback: true,
                    code,
                    message,
                }) => {
                    debug!(?protocol, ?code, %message, "the server refused the protocol");
                }
                Err(Refusal { code, message, .. }) => {
                    return Err(Some(TunnelError::Upgrade {
                        namespace: namespace.to_string(),
                        pod: pod.to_string(),
                        port: 0,
                        code,
                        message,
                    }));
                }
            }
        }
        debug!("the server speaks no SPDY port-forwarding; using a WebSocket per connection");
        self.inner.lock().learned = Some((Protocol::Channel, Instant::now()));
        Err(None)
    }

    /// One upgrade to `protocol`.
    async fn upgrade(
        &self,
        namespace: &str,
        pod: &str,
        protocol: Protocol,
    ) -> Result<Session, Refusal> {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}/portforward");
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let builder = match protocol {
            Protocol::Tunnel => http::Request::get(&path)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "websocket")
                .header(header::SEC_WEBSOCKET_VERSION, "13")
                .header(header::SEC_WEBSOCKET_KEY, &key)
                .header(header::SEC_WEBSOCKET_PROTOCOL, TUNNEL_PROTOCOL),
            Protocol::Spdy | Protocol::Channel => http::Request::post(&path)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "SPDY/3.1")
                .header("X-Stream-Protocol-Version", "portforward.k8s.io"),
        };
        let request = builder
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| Refusal::stop(None, e.to_string()))?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| Refusal::stop(None, crate::cluster::error_chain(&e)))?;
        let code = response.status().as_u16();
        if code != 101 {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            let message = if message.is_empty() {
                format!("the server answered {code}")
            } else {
                message
            };
            // Refusals of the protocol (or of the verb it uses) lead to the next protocol;
            // a missing pod, bad credentials or a failing server would fail them all.
            let fallback = matches!(code, 400 | 403 | 405 | 426 | 501);
            return Err(Refusal {
                fallback,
                code: Some(code),
                message: explain_refusal(code, &message, namespace),
            });
        }
        if protocol == Protocol::Tunnel {
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let headers = response.headers();
            let chosen = headers
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok());
            let accepted = headers
                .get(header::SEC_WEBSOCKET_ACCEPT)
                .and_then(|v| v.to_str().ok());
            if chosen != Some(TUNNEL_PROTOCOL) || accepted != Some(accept.as_str()) {
                return Err(Refusal {
                    fallback: true,
                    code: Some(code),
                    message: format!("the server chose the WebSocket subprotocol {chosen:?}"),
                });
            }
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| Refusal::stop(None, format!("the upgrade failed: {e}")))?;
        let io = TokioIo::new(upgraded);
        let session = match protocol {
            Protocol::Tunnel => {
                // A small read buffer: an idle session should cost little (the default is
                // 128 KiB per session); bulk reads still take whole frames.
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(16 * 1024);
                let ws = WebSocketStream::from_raw_socket(io, Role::Client, Some(config)).await;
                let (source, sink) = ferry_spdy::transport::websocket(ws);
                Session::start(source, sink, self.config.clone())
            }
            Protocol::Spdy | Protocol::Channel => {
                let (source, sink) = ferry_spdy::transport::plain(io);
                Session::start(source, sink, self.config.clone())
            }
        };
        Ok(session)
    }
}

/// Why an upgrade did not give a session.
struct Refusal {
    /// The next protocol may work.
    fallback: bool,
    code: Option<u16>,
    message: String,
}

impl Refusal {
    fn stop(code: Option<u16>, message: String) -> Refusal {
        Refusal {
            fallback: false,
            code,
            message,
        }
    }
}

/// The server's refusal of a port-forward upgrade, with what to do about a missing
/// permission.
pub(crate) fn explain_refusal(code: u16, message: &str, namespace: &str) -> String {
    if code == 403 {
        format!(
            "{message} (Ferry needs permission to create pods/portforward in namespace {namespace}: since Kubernetes 1.35 port-forwarding over WebSockets needs `create`, not only `get`)"
        )
    } else {
        message.to_string()
    }
}
