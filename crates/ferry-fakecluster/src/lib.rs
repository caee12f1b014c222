//! A fake Kubernetes API server for Ferry's tests, benchmarks and demo mode.
//!
//! It speaks the real wire protocols, so that real clients (kubectl, the Python client,
//! kube-rs) work against it unchanged for what Ferry uses: HTTPS with its own CA and
//! bearer-token auth, discovery, list/get/watch of namespaces, pods, services,
//! endpointslices, deployments, statefulsets and replicasets, pod deletion with
//! controller-style replacement, metadata patches, and the `pods/portforward` subresource
//! over the WebSocket channel protocol and over SPDY/3.1 (plain, or tunnelled through a
//! WebSocket), so `kubectl port-forward` works too. Pods are backed by small in-process
//! servers whose behaviour can be switched at run time with the `fake.ferry.dev/behavior`
//! annotation.
//!
//! Besides the kubeconfig's own token, [`rbac`] users with limited rights can be declared
//! (scenario `users:`, [`Options::user`]) and changed at run time
//! ([`FakeCluster::set_user_rules`]); their requests are checked as RBAC checks them and
//! denied with the API server's 403, and `SelfSubjectAccessReview` / `SelfSubjectReview`
//! answer `kubectl auth can-i` and `kubectl auth whoami`.
//!
//! Tests and benchmarks can watch and disturb port-forwarding:
//! [`FakeCluster::portforward_stats`] counts upgrades by [`Protocol`] and the sessions and
//! connections open, and [`Faults`] cuts or freezes the open sessions, refuses one
//! protocol or every upgrade, forbids port-forwarding as RBAC would, or fails the API. The
//! counters are also served as JSON (`GET /fake/portforward`), and the switches under
//! `/fake/faults/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_fakecluster::StartError> {
//! use ferry_fakecluster::{FakeCluster, Options};
//! let fake = FakeCluster::start(Options::default()).await?;
//! fake.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! println!("serving at {}", fake.url());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod api;
mod backend;
pub mod cluster;
mod faults;
mod idle;
pub mod kind;
mod kubelet_proxy;
pub mod node;
mod objects;
mod portforward;
mod protobuf;
pub mod rbac;
pub mod requests;
pub mod scenario;
pub mod selector;
mod spdy;
pub mod stats;
mod tls;
pub mod tokens;
mod upgrade;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, info};

pub use cluster::{BEHAVIOR_ANNOTATION, BackendInfo, Cluster, StoreError};
pub use faults::{FORBIDDEN_USER, Faults};
pub use rbac::{PolicyRule, User, Users, UsersError};
pub use scenario::{Behavior, Scenario, ScenarioError};
pub use stats::{PortForwardStats, Protocol, ProtocolCounts};

/// How to start a fake cluster.
#[derive(Debug, Clone)]
#[must_use]
pub struct Options {
    /// The objects to start with. Default: the built-in `demo` scenario.
    pub scenario: Scenario,
    /// Where to listen. Default: `127.0.0.1:0` (a port chosen by the OS).
    pub listen: SocketAddr,
    /// The context, cluster and user name in the kubeconfig. Default: `ferry-fake`.
    pub context_name: String,
    /// Delay added to every API response and portforward upgrade. Default: none.
    pub latency: Duration,
    /// The bearer token clients must send. Default: a random one.
    pub token: Option<String>,
    /// Serve SPDY tunnelled through a WebSocket (`SPDY/3.1+portforward.k8s.io`), which
    /// kubectl ≥ 1.31 tries first. Off, the server answers that upgrade as an API server
    /// older than 1.30 does (400), and kubectl falls back to plain SPDY. Default: on.
    pub spdy_over_websocket: bool,
    /// Kubelet's streaming idle timeout: a port-forward session (SPDY, plain or tunnelled,
    /// or a WebSocket channel session) in which nothing moved either way for this long is
    /// closed by the server — SPDY with a GOAWAY, as spdystream's idle timer does; SPDY
    /// pings count as traffic, WebSocket pings do not (the API server answers those, the
    /// kubelet never sees them). Default: the scenario's `timing.streaming_idle_timeout_ms`,
    /// else none.
    pub streaming_idle_timeout: Option<Duration>,
    /// Users with limited rights, after the scenario's `users:`. Default: none.
    pub users: Vec<User>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scenario: Scenario::demo(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            context_name: "ferry-fake".into(),
            latency: Duration::ZERO,
            token: None,
            spdy_over_websocket: true,
            streaming_idle_timeout: None,
            users: Vec::new(),
        }
    }
}

impl Options {
    /// Uses `scenario` instead of the demo.
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = scenario;
        self
    }

    /// Adds `latency` to every API response and portforward upgrade.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Names the kubeconfig context.
    pub fn context_name(mut self, name: impl Into<String>) -> Self {
        self.context_name = name.into();
        self
    }

    /// Serves (or not) SPDY tunnelled through a WebSocket; see
    /// [`Options::spdy_over_websocket`].
    pub fn spdy_over_websocket(mut self, on: bool) -> Self {
        self.spdy_over_websocket = on;
        self
    }

    /// Closes port-forward sessions idle for `d`; see [`Options::streaming_idle_timeout`].
    pub fn streaming_idle_timeout(mut self, d: Duration) -> Self {
        self.streaming_idle_timeout = Some(d);
        self
    }

    /// Listens on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Adds a user with limited rights; see [`rbac`]. Checked by [`FakeCluster::start`]
    /// with the scenario's users, as `users[N]` counted after them.
    pub fn user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }
}

/// Why the fake cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("the context name `{0}` is not usable; use letters, digits, '-', '_' or '.'")]
    ContextName(String),
    #[error("the fake cluster listens on loopback only; {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("could not write the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running fake cluster. Dropping it stops the server, its pods and their tunnels.
pub struct FakeCluster {
    url: String,
    addr: SocketAddr,
    token: String,
    ca_pem: String,
    /// The CA, for client certificates.
    certs: Arc<tls::Certificates>,
    context_name: String,
    cluster: Arc<Cluster>,
    faults: Arc<Faults>,
    tokens: Arc<tokens::Tokens>,
    users: Arc<Users>,
    requests: Arc<requests::RequestLog>,
    stats: Arc<stats::Counters>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeCluster {
    /// Starts serving. Returns once the server accepts connections.
    pub async fn start(opts: Options) -> Result<Self, StartError> {
        let context_ok = !opts.context_name.is_empty()
            && opts
                .context_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !context_ok {
            return Err(StartError::ContextName(opts.context_name));
        }
        if !opts.listen.ip().is_loopback() {
            return Err(StartError::NotLoopback(opts.listen));
        }
        opts.scenario.validate()?;
        let all_users: Vec<User> = opts
            .scenario
            .users
            .iter()
            .chain(&opts.users)
            .cloned()
            .collect();
        rbac::validate_users(&all_users, "users")?;
        let listener =
            TcpListener::bind(opts.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: opts.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: opts.listen,
            source,
        })?;
        let certs = tls::Certificates::generate(Some(addr.ip()))?;
        let token = opts.token.clone().unwrap_or_else(random_token);
        let users = Arc::new(Users::new(token.clone(), &all_users)?);
        let shutdown = CancellationToken::new();
        let cluster = Cluster::new(&opts.scenario, shutdown.child_token());
        let faults = Arc::new(Faults::new(shutdown.child_token()));
        let stats = Arc::new(stats::Counters::default());
        let tokens = Arc::new(tokens::Tokens::default());
        let requests = Arc::new(requests::RequestLog::default());
        let host = match addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let app = Arc::new(api::App {
            cluster: cluster.clone(),
            token: token.clone(),
            latency: opts.latency,
            faults: faults.clone(),
            tokens: tokens.clone(),
            users: users.clone(),
            requests: requests.clone(),
            stats: stats.clone(),
            server_addr: host.clone(),
            spdy_over_websocket: opts.spdy_over_websocket,
            idle_timeout: opts.streaming_idle_timeout.or(opts
                .scenario
                .timing
                .streaming_idle_timeout_ms
                .map(Duration::from_millis)),
        });
        let router = Router::new().fallback(api::dispatch).with_state(app);
        let acceptor = TlsAcceptor::from(certs.server_config.clone());
        let task = tokio::spawn(
            serve(
                listener,
                acceptor,
                router,
                shutdown.clone(),
                Some(faults.clone()),
            )
            .instrument(debug_span!("fakecluster", server.addr = %addr)),
        );
        info!(server.addr = %addr, "fake cluster serving");
        Ok(Self {
            url: format!("https://{host}"),
            addr,
            token,
            ca_pem: certs.ca_pem.clone(),
            certs: Arc::new(certs),
            context_name: opts.context_name,
            cluster,
            faults,
            tokens,
            users,
            requests,
            stats,
            shutdown,
            task: Some(task),
        })
    }

    /// The server URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client certificate signed by this cluster's CA, as `(certificate PEM, key PEM)`.
    /// The server accepts it at the TLS layer (requests still need a token); an `expired`
    /// one fails the TLS handshake with a `certificate_expired` alert.
    pub fn client_certificate(
        &self,
        name: &str,
        expired: bool,
    ) -> Result<(String, String), tls::TlsError> {
        self.certs.client_certificate(name, expired)
    }

    /// The kubeconfig context name.
    pub fn context_name(&self) -> &str {
        &self.context_name
    }

    /// The cluster's state, to inspect and change it (delete pods, switch behaviours…).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The fault switches.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The user agents of the requests served so far (also `GET /fake/requests`).
    pub fn requests(&self) -> &Arc<requests::RequestLog> {
        &self.requests
    }

    /// The port-forward counters now: upgrades and refusals by protocol, SPDY sessions
    /// and connections open and in total (also `GET /fake/portforward`). Cheap: a few
    /// atomic loads.
    pub fn portforward_stats(&self) -> PortForwardStats {
        self.stats.snapshot()
    }

    /// Tokens with a lifetime (also issued by `POST /fake/tokens?ttl_seconds=N`).
    pub fn tokens(&self) -> &Arc<tokens::Tokens> {
        &self.tokens
    }

    /// The users with limited rights: add, remove, change their rules at run time (also
    /// `PUT /fake/users/{name}/rules`).
    pub fn users(&self) -> &Arc<Users> {
        &self.users
    }

    /// Replaces the rules of user `name`; requests from the next one on are checked
    /// against them.
    pub fn set_user_rules(&self, name: &str, rules: Vec<PolicyRule>) -> Result<(), UsersError> {
        self.users.set_rules(name, rules)
    }

    /// Waits until every pod is ready, for at most `within`; whether they all are.
    pub async fn wait_pods_ready(&self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (_, pods) = self.cluster.list(kind::Kind::Pod, None);
            if pods.iter().all(|p| cluster::pod_is_ready(p)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A kubeconfig for this cluster: server URL, CA data and bearer token.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_as(&self.context_name, &self.token)
    }

    /// A kubeconfig for user `name` (see [`Options::user`]): the same server, CA and
    /// context name as [`FakeCluster::kubeconfig_yaml`], with the user's token under a
    /// `users:` entry named after the user. `None` when there is no such user.
    pub fn kubeconfig_yaml_for_user(&self, name: &str) -> Option<String> {
        let user = self.users.get(name)?;
        Some(self.kubeconfig_as(&yaml_string(&user.name), &yaml_string(&user.token)))
    }

    /// A kubeconfig whose user entry is `user` (a YAML scalar) with `token`.
    fn kubeconfig_as(&self, user: &str, token: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        let name = &self.context_name;
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: {name}\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: {user}\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: {name}\n  context:\n    cluster: {name}\n    user: {user}\n\
             current-context: {name}\n\
             preferences: {{}}\n",
            url = self.url,
        )
    }

    /// Writes the kubeconfig to `path` atomically, readable by the owner only.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), StartError> {
        write_private(path, &self.kubeconfig_yaml())
    }

    /// Writes user `name`'s kubeconfig ([`FakeCluster::kubeconfig_yaml_for_user`]) to
    /// `path` as [`FakeCluster::write_kubeconfig`] does; an unknown user is a
    /// [`StartError::Kubeconfig`] with a `NotFound` source.
    pub fn write_kubeconfig_for_user(&self, name: &str, path: &Path) -> Result<(), StartError> {
        let Some(yaml) = self.kubeconfig_yaml_for_user(name) else {
            return Err(StartError::Kubeconfig {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no user named `{name}`"),
                ),
            });
        };
        write_private(path, &yaml)
    }

    /// Stops serving and waits (up to five seconds) for connections to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// `s` as a YAML scalar: bare when it is plain letters, digits, `-`, `_` and `.`, else a
/// double-quoted (JSON) string.
fn yaml_string(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// Writes `contents` to `path` atomically, readable by the owner only.
fn write_private(path: &Path, contents: &str) -> Result<(), StartError> {
    let err = |source| StartError::Kubeconfig {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("kubeconfig"),
        std::process::id()
    ));
    std::fs::write(&tmp, contents).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

/// Serves `router` over TLS on `listener` until `shutdown` (the API server and the node
/// endpoint alike).
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
    faults: Option<Arc<Faults>>,
) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let Some(left) = faults.as_ref().and_then(|f| f.connections_refused()) {
            debug!(?left, "connection refused by fault injection");
            drop(tcp);
            continue;
        }
        let cut = faults
            .as_ref()
            .map(|f| f.connection_token())
            .unwrap_or_default();
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(
                    TokioIo::new(tls),
                    TowerToHyperService::new(router),
                );
                tokio::select! {
                    res = conn => if let Err(e) = res {
                        debug!(error = %e, "connection ended with an error");
                    },
                    () = shutdown.cancelled() => {}
                    () = cut.cancelled() => debug!("connection cut by fault injection"),
                }
            }
            .instrument(debug_span!("conn", client.addr = %peer)),
        );
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}
