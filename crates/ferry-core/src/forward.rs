//! One forward's worker: the listener, the accept loop, per-connection tunnels and
//! splicing, and the resolver loop that keeps the set of ready pods current.
//!
//! The listener is bound first and stays bound through pod restarts, so local clients
//! never see "connection refused" because Ferry dropped the port: a connection that
//! arrives while no pod is ready waits (up to [`WAIT_FOR_POD`]) for one. A connection
//! whose tunnel is lost before the pod first answers, because the pod went in that
//! instant, moves to a fresh tunnel and sends its first bytes again (up to
//! [`REPLAY_LIMIT`]); a pod that is still there and closed on its own is not asked twice.
//!
//! Every task of a worker hangs off the worker's `CancellationToken`; dropping the
//! [`WorkerHandle`] cancels them all.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::backoff::{Backoff, sleep_until_or_never};
use crate::cluster::{ClientPool, Endpoint, ResolveError, resolve};
use crate::config::{Forward, Pick};
use crate::events::{ForwardState, ForwardStatus, now_ms};
use crate::pool::{POOL_IDLE, POOL_SIZE, Pooled, TunnelPool};
use crate::tunnel::{self, TunnelStream};

/// How long a new local connection waits for a ready pod before it is closed.
pub const WAIT_FOR_POD: Duration = Duration::from_secs(30);

/// After a client shut down its sending side, how long the pod may stay silent before the
/// connection is closed. The WebSocket port-forward protocol cannot carry a half-close to
/// the pod, so this is what ends such connections when the pod never closes.
pub const IDLE_AFTER_CLIENT_EOF: Duration = Duration::from_secs(60);

/// What a client sent before the pod first answered is kept up to this size, so the
/// connection can move to a fresh tunnel if this one is lost before the pod answers.
pub const REPLAY_LIMIT: usize = 16 * 1024;

/// How many times a connection moves to a fresh tunnel before the pod first answered.
const MAX_REPLAYS: u32 = 2;

/// How long a connection whose tunnel was lost before the pod answered waits for the
/// resolver to say whether the pod went. Only then are the client's bytes sent again: a
/// pod that is still there closed on its own, and the client is told.
const POD_GONE_WAIT: Duration = Duration::from_millis(300);

/// How often a resolved forward re-checks its target even without a watch event.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// How long a forward that needs the user waits before trying again on its own.
const RETRY_ERROR_EVERY: Duration = Duration::from_secs(15);

// === shared state ===

/// What a worker shares with the manager: its status and counters.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    /// State, pod, address and errors. Short, synchronous critical sections only.
    status: Mutex<ForwardStatus>,
    conns_open: AtomicU64,
    conns_total: AtomicU64,
    /// When a connection last opened or closed (or the worker started), ms since `born`.
    last_used_ms: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// When the accept loop (or the bind loop before it) last made progress, ms since
    /// `born`; the watchdog restarts a worker whose heartbeat stops.
    heartbeat_ms: AtomicU64,
    /// The monotonic origin of `heartbeat_ms`.
    born: tokio::time::Instant,
    /// Test hook: makes the accept loop hang, as a stuck loop would.
    freeze: AtomicBool,
    /// Tells the manager to republish; a full queue is fine (a publish is pending anyway).
    notify: mpsc::Sender<()>,
}

impl WorkerShared {
    pub(crate) fn new(spec: &Forward, notify: mpsc::Sender<()>) -> Self {
        Self {
            status: Mutex::new(ForwardStatus::new(
                &spec.name,
                spec.target_label(),
                ForwardState::Starting,
            )),
            conns_open: AtomicU64::new(0),
            conns_total: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            heartbeat_ms: AtomicU64::new(0),
            born: tokio::time::Instant::now(),
            freeze: AtomicBool::new(false),
            notify,
        }
    }

    /// A connection opened or closed.
    fn used(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_used_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the forward has carried no connection (zero while one is open).
    fn idle_for(&self) -> Duration {
        if self.conns_open.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(since)
    }

    /// Shows the alias, the URL (with the alias when there is one) and exposure.
    pub(crate) fn set_alias(&self, alias: Option<&str>, spec: &Forward) {
        self.update(|s| {
            s.alias = alias.map(|a| format!("{a}.local"));
            s.exposed = !spec.bind.is_loopback();
            s.url = s.local.map(|local| forward_url(spec, alias, local));
            if alias.is_none() {
                s.alias_warning = None;
            }
        });
    }

    /// Records why the alias could not be published (`None`: it is).
    pub(crate) fn set_alias_warning(&self, warning: Option<String>) {
        self.update(|s| s.alias_warning = warning);
    }

    /// Time since the last heartbeat, on the monotonic clock (a suspended laptop or a clock
    /// step does not count as silence).
    pub(crate) fn silent_for(&self) -> Duration {
        let now = self.born.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)))
    }

    fn beat(&self) {
        self.heartbeat_ms
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Test hook: hang the accept loop.
    pub(crate) fn freeze(&self) {
        self.freeze.store(true, Ordering::Relaxed);
    }

    /// Shows the health checker's verdict. `checked` says whether health decides between
    /// starting, active and degraded (false for `kind: none`).
    pub(crate) fn publish_health(&self, checker: &crate::health::Checker, checked: bool) {
        self.update(|s| {
            s.checked = checked;
            s.health = checker.state();
            if let Some(last) = checker.last() {
                s.latency_ms = Some(last.latency.as_millis() as u64);
                s.detail = Some(last.detail.clone());
                s.last_probe_ms = Some(now_ms());
            }
            s.history = checker.history().cloned().collect();
        });
    }

    /// The status with live counters.
    pub(crate) fn status(&self) -> ForwardStatus {
        let mut s = self.status.lock().clone();
        s.connections = self.conns_open.load(Ordering::Relaxed);
        s.total_connections = self.conns_total.load(Ordering::Relaxed);
        s.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        s.bytes_out = self.bytes_out.load(Ordering::Relaxed);
        s
    }

    /// Changes the status; tells the manager when anything shown changed.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ForwardStatus)) {
        let changed = {
            let mut s = self.status.lock();
            let before = s.clone();
            // `error` as set by the callers is cluster access's; a bind error takes
            // precedence for display without erasing it.
            s.error = s.resolution_error.take();
            f(&mut s);
            s.resolution_error = s.error.clone();
            s.state = s.effective_state();
            if let Some(e) = s.bind_error.clone() {
                s.state = ForwardState::Error;
                s.error = Some(e);
                // Nothing listens, so nothing here is up: the tunnel check's verdict is
                // not shown beside the error.
                s.health = crate::health::HealthState::Unknown;
                s.latency_ms = None;
            }
            if s.state != before.state {
                s.since_ms = now_ms();
            }
            if let Some(e) = &s.error {
                s.last_error = Some(e.clone());
            }
            // A probe's latency and time alone are not news: they reach the snapshot with
            // the next real change or with `Engine::snapshot`, without waking the manager
            // for every probe of every forward.
            s.news() != before.news()
        };
        if changed {
            let _ = self.notify.try_send(());
        }
    }

    fn set_bind_error(&self, error: Option<String>, in_use: bool) {
        self.update(|s| {
            s.bind_error = error;
            s.port_in_use = in_use;
        });
    }
}

/// Where connections go right now.
#[derive(Clone, Default)]
struct Targets {
    client: Option<kube::Client>,
    namespace: String,
    endpoints: Vec<Endpoint>,
}

/// A running worker. Dropping it cancels the worker and all its connections.
pub(crate) struct WorkerHandle {
    pub spec: Arc<Forward>,
    pub shared: Arc<WorkerShared>,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
    targets: watch::Receiver<Targets>,
    nudge: Arc<Notify>,
    sticky: Arc<Mutex<Option<String>>>,
    limits: watch::Sender<(Option<Duration>, Option<Duration>)>,
}

/// What the health monitor needs of a worker: where to probe, and where to report.
#[derive(Clone)]
pub(crate) struct ProbeHandle {
    spec: Arc<Forward>,
    shared: Arc<WorkerShared>,
    targets: watch::Receiver<Targets>,
    nudge: Arc<Notify>,
    sticky: Arc<Mutex<Option<String>>>,
}

impl ProbeHandle {
    /// The bound local address.
    pub(crate) fn local(&self) -> Option<SocketAddr> {
        self.shared.status.lock().local
    }

    /// The pod a connection would use now: the sticky pod, else the first ready one.
    pub(crate) fn endpoint(&self) -> Option<(kube::Client, String, Endpoint)> {
        let targets = self.targets.borrow().clone();
        let client = targets.client?;
        let sticky = self.sticky.lock().clone();
        let ep = sticky
            .and_then(|p| targets.endpoints.iter().find(|e| e.pod == p).cloned())
            .or_else(|| targets.endpoints.first().cloned())?;
        Some((client, targets.namespace, ep))
    }

    /// The kubeconfig context the forward resolved with.
    pub(crate) fn context(&self) -> Option<String> {
        self.shared.status.lock().context.clone()
    }

    /// The target object's name (the default `Host` of HTTP checks).
    pub(crate) fn target_name(&self) -> String {
        self.spec.target.name().to_string()
    }

    pub(crate) fn publish(&self, checker: &crate::health::Checker, checked: bool) {
        self.shared.publish_health(checker, checked);
    }

    /// How long the forward has carried no connection (zero while one is open).
    pub(crate) fn idle_for(&self) -> Duration {
        self.shared.idle_for()
    }

    /// Asks the resolver to look again.
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Opens a tunnel to the pod the next connection would use.
    pub(crate) async fn dial(&self) -> Result<TunnelStream, String> {
        let Some((client, namespace, ep)) = self.endpoint() else {
            return Err(self
                .shared
                .status()
                .error
                .unwrap_or_else(|| format!("forward {} has no ready pod", self.spec.name)));
        };
        tunnel::dial(&client, &namespace, &ep.pod, ep.port)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl WorkerHandle {
    /// A handle for the health monitor.
    pub(crate) fn probe(&self) -> ProbeHandle {
        ProbeHandle {
            spec: self.spec.clone(),
            shared: self.shared.clone(),
            targets: self.targets.clone(),
            nudge: self.nudge.clone(),
            sticky: self.sticky.clone(),
        }
    }

    /// Applies a new health spec's connection limits to new connections.
    pub(crate) fn set_limits(&self, health: &crate::config::HealthSpec) {
        self.limits.send_replace((health.max_idle, health.max_age));
    }

    /// Asks the resolver to look again (the kubeconfig files changed, say).
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Cancels the worker without waiting for it.
    pub(crate) fn cancel(&self) {
        self.token.cancel();
    }

    /// Cancels the worker and waits (bounded) until its listener is closed.
    pub(crate) async fn stop(mut self) {
        self.token.cancel();
        let Some(task) = self.task.take() else { return };
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
        {
            // A stuck worker: abort it, which drops its listener and connections.
            warn!(forward.name = %self.spec.name, "worker did not stop within 2 s; aborting it");
            abort.abort();
            // Aborting is asynchronous; wait until the task is really gone.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while !abort.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// A request from a worker to the manager for a change feed of its namespace.
pub(crate) struct WatchRequest {
    /// The client's id: a rebuilt client gets a feed of its own.
    pub client_id: u64,
    pub context: String,
    pub namespace: String,
    pub client: kube::Client,
    pub reply: oneshot::Sender<watch::Receiver<u64>>,
}

/// Starts a worker for `spec`.
pub(crate) fn spawn(
    spec: Arc<Forward>,
    pool: Arc<ClientPool>,
    watches: mpsc::Sender<WatchRequest>,
    notify: mpsc::Sender<()>,
    parent: &CancellationToken,
    beat: Duration,
    pre_open: bool,
) -> WorkerHandle {
    let shared = Arc::new(WorkerShared::new(&spec, notify));
    let token = parent.child_token();
    let (targets_tx, targets_rx) = watch::channel(Targets::default());
    let (limits_tx, limits_rx) = watch::channel((spec.health.max_idle, spec.health.max_age));
    let nudge = Arc::new(Notify::new());
    let sticky = Arc::new(Mutex::new(None));
    let worker = Worker {
        limits: limits_rx,
        spec: spec.clone(),
        shared: shared.clone(),
        pool,
        watches,
        token: token.clone(),
        targets: targets_tx,
        nudge: nudge.clone(),
        sticky: sticky.clone(),
        next_rr: Arc::new(AtomicUsize::new(0)),
        tunnels: Arc::new(TunnelPool::default()),
        beat,
        pre_open,
    };
    let span = debug_span!("forward", forward.name = %spec.name, context = ?spec.context, namespace = ?spec.namespace);
    let task = tokio::spawn(worker.run().instrument(span));
    WorkerHandle {
        spec,
        shared,
        token,
        task: Some(task),
        targets: targets_rx,
        nudge,
        sticky,
        limits: limits_tx,
    }
}

struct Worker {
    /// `(max_idle, max_age)`, changed by reloads of the health spec.
    limits: watch::Receiver<(Option<Duration>, Option<Duration>)>,
    spec: Arc<Forward>,
    shared: Arc<WorkerShared>,
    pool: Arc<ClientPool>,
    watches: mpsc::Sender<WatchRequest>,
    token: CancellationToken,
    targets: watch::Sender<Targets>,
    /// Wakes the resolver early (a tunnel to the chosen pod failed).
    nudge: Arc<Notify>,
    /// The pod `sticky` forwards keep using while it stays ready.
    sticky: Arc<Mutex<Option<String>>>,
    next_rr: Arc<AtomicUsize>,
    /// Pre-opened tunnels for the next connections (sticky forwards in use only).
    tunnels: Arc<TunnelPool>,
    /// How often the accept loop shows it is alive.
    beat: Duration,
    /// Whether tunnels are opened ahead of demand (`EngineOptions::pre_open_tunnels`).
    pre_open: bool,
}

/// The forward's address as a URL: the scheme guessed from the port (name or number) and
/// the health check, the host from the alias or the bound address.
pub(crate) fn forward_url(spec: &Forward, alias: Option<&str>, local: SocketAddr) -> String {
    use crate::config::{PortRef, ProbeKind};
    let host = match alias {
        Some(a) => format!("{a}.local"),
        None if local.ip().is_unspecified() => "localhost".into(),
        None => match local.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        },
    };
    let (name, number) = match &spec.port {
        PortRef::Name(n) => (n.as_str(), 0),
        PortRef::Number(n) => ("", *n),
    };
    let scheme = if name.contains("https") || matches!(number, 443 | 8443) {
        "https"
    } else if spec.health.kind == ProbeKind::Http
        || name.contains("http")
        || name == "web"
        || matches!(number, 80 | 3000 | 5000 | 8000 | 8080 | 8081 | 9090)
    {
        "http"
    } else {
        "tcp"
    };
    format!("{scheme}://{host}:{}", local.port())
}

fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!("{addr} is already in use"),
        io::ErrorKind::PermissionDenied => {
            format!("binding {addr} is not permitted (ports below 1024 need privileges)")
        }
        io::ErrorKind::AddrNotAvailable => format!(
            "{addr} is not an address of this machine (on macOS, loopback aliases like 127.0.0.2 must be added first: sudo ifconfig lo0 alias {})",
            addr.ip()
        ),
        _ => format!("binding {addr} failed: {e}"),
    }
}

impl Worker {
    async fn run(self) {
        let tracker = TaskTracker::new();
        // The resolver runs from the start, so `dial()` works even while the local address
        // cannot be bound.
        tokio::join!(
            self.serve(tracker.clone()),
            self.resolver_loop(),
            self.pool_loop()
        );
        // Every connection task has seen the cancellation; wait for them briefly so that
        // "stopped" means the sockets are closed.
        tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    }

    /// Binds the local address (retrying while it is taken), then accepts.
    async fn serve(&self, tracker: TaskTracker) {
        let addr = SocketAddr::new(self.spec.bind, self.spec.local_port);
        // Who holds the port, looked up on the first failure and every 30 s after.
        let mut holder: Option<String> = None;
        let mut failures = 0u32;
        let listener = loop {
            self.shared.beat();
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) => {
                    let in_use = e.kind() == io::ErrorKind::AddrInUse;
                    if in_use && failures.is_multiple_of(15) {
                        holder = crate::ports::holder_async(addr.port()).await;
                    }
                    failures += 1;
                    let msg = match (&holder, in_use) {
                        (Some(h), true) => format!(
                            "{addr} is already in use by {h}; stop it, or choose another local port"
                        ),
                        (None, true) => format!(
                            "{addr} is already in use by another program; choose another local port"
                        ),
                        _ => bind_error(addr, &e),
                    };
                    warn!(%msg, "cannot listen");
                    self.shared.set_bind_error(Some(msg), in_use);
                    // Retry every 2 s, beating meanwhile so the watchdog sees a live loop.
                    for _ in 0..4 {
                        tokio::select! {
                            () = self.token.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(500)) => self.shared.beat(),
                        }
                    }
                }
            }
        };
        let local = listener.local_addr().unwrap_or(addr);
        info!(local.addr = %local, "listening");
        self.shared.set_bind_error(None, false);
        self.shared.update(|s| s.local = Some(local));
        self.shared
            .set_alias(self.spec.alias.as_deref(), &self.spec);
        self.accept_loop(listener, tracker).await;
    }

    async fn accept_loop(&self, listener: TcpListener, tracker: TaskTracker) {
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut heartbeat = tokio::time::interval(self.beat);
        loop {
            let accepted = tokio::select! {
                () = self.token.cancelled() => return,
                _ = heartbeat.tick() => {
                    if self.shared.freeze.load(Ordering::Relaxed) {
                        // A stuck loop, for the watchdog's tests: no heartbeat, no accepts.
                        std::future::pending::<()>().await;
                    }
                    self.shared.beat();
                    continue;
                }
                a = listener.accept() => a,
            };
            match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    self.tunnels.touch();
                    let conn = Connection {
                        limits: *self.limits.borrow(),
                        spec: self.spec.clone(),
                        shared: self.shared.clone(),
                        targets: self.targets.subscribe(),
                        nudge: self.nudge.clone(),
                        sticky: self.sticky.clone(),
                        next_rr: self.next_rr.clone(),
                        tunnels: self.tunnels.clone(),
                        skip_pool: false,
                        token: self.token.child_token(),
                    };
                    let id = self.shared.conns_total.fetch_add(1, Ordering::Relaxed) + 1;
                    let span = debug_span!(
                        "conn",
                        conn.id = id,
                        client.addr = %peer,
                        local.addr = %local,
                        pod.name = tracing::field::Empty,
                    );
                    tracker.spawn(conn.serve(sock).instrument(span));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Keeps a few tunnels open ahead of demand while the forward is in use (see
    /// [`crate::pool`]); holds none while it is idle.
    async fn pool_loop(&self) {
        if !self.pre_open || self.spec.pick != Pick::Sticky {
            return;
        }
        let mut targets = self.targets.subscribe();
        // Bumped by every resolution the resolver publishes (pod events, periodic checks):
        // tunnels opened before it are dropped, so a pod that went (even one replaced
        // under the same name, as a StatefulSet's) is never reached through the pool.
        let mut generation: u64 = 0;
        let mut dials: tokio::task::JoinSet<Option<(u64, Pooled)>> = tokio::task::JoinSet::new();
        // After a failed dial the pool rests a moment instead of hammering the server.
        let mut rest_until: Option<tokio::time::Instant> = None;
        loop {
            let busy = self.tunnels.busy();
            let target = if busy { self.pool_target() } else { None };
            if busy {
                self.tunnels
                    .prune(target.as_ref().map(|t| (t.2.as_str(), t.3)));
            } else {
                self.tunnels.clear();
                dials.abort_all();
            }
            let now = tokio::time::Instant::now();
            let resting = rest_until.is_some_and(|t| now < t);
            if let (Some((client, namespace, pod, port)), false) = (&target, resting) {
                while self.tunnels.len() + dials.len() < POOL_SIZE {
                    let (client, namespace, pod, port) =
                        (client.clone(), namespace.clone(), pod.clone(), *port);
                    dials.spawn(
                        async move {
                            let tunnel = tunnel::dial(&client, &namespace, &pod, port)
                                .await
                                .map_err(|e| debug!(error = %e, "pre-opening a tunnel failed"))
                                .ok()?;
                            Some((
                                generation,
                                Pooled {
                                    pod,
                                    port,
                                    opened: tokio::time::Instant::now(),
                                    tunnel,
                                },
                            ))
                        }
                        .in_current_span(),
                    );
                }
            }
            // Wake for the first expiry, the end of a rest, or the pool going idle.
            let mut wake_at = [
                self.tunnels.next_expiry(),
                rest_until.filter(|t| *t > now),
                busy.then(|| now + POOL_IDLE),
            ]
            .into_iter()
            .flatten()
            .min();
            if wake_at.is_some_and(|t| t <= now) {
                wake_at = Some(now + Duration::from_millis(10));
            }
            let timer = sleep_until_or_never(wake_at);
            tokio::select! {
                () = self.token.cancelled() => {
                    dials.abort_all();
                    self.tunnels.clear();
                    return;
                }
                () = self.tunnels.wake.notified() => {}
                Some(done) = dials.join_next(), if !dials.is_empty() => match done {
                    Ok(Some((g, pooled))) if g == generation => self.tunnels.put(pooled),
                    Ok(Some(_)) => {}
                    _ => rest_until = Some(tokio::time::Instant::now() + Duration::from_secs(1)),
                },
                changed = targets.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    generation += 1;
                    self.tunnels.clear();
                }
                () = timer => {}
            }
        }
    }

    /// Where the next sticky connection goes: client, namespace, pod and port.
    fn pool_target(&self) -> Option<(kube::Client, String, String, u16)> {
        let targets = self.targets.borrow();
        let client = targets.client.clone()?;
        let sticky = self.sticky.lock().clone();
        let ep = sticky
            .and_then(|p| targets.endpoints.iter().find(|e| e.pod == p))
            .or_else(|| targets.endpoints.first())?;
        Some((client, targets.namespace.clone(), ep.pod.clone(), ep.port))
    }

    /// Keeps `targets` current: client, namespace and ready endpoints.
    async fn resolver_loop(&self) {
        let mut backoff = Backoff::forward();
        let mut changes: Option<(String, String, watch::Receiver<u64>)> = None;
        loop {
            let resolved = tokio::select! {
                () = self.token.cancelled() => return,
                r = self.resolve_once(&mut changes) => r,
            };
            let wait = match resolved {
                Ok(()) => {
                    backoff.reset();
                    RESOLVE_EVERY
                }
                Err(retryable) if retryable => backoff.next_delay(),
                Err(_) => RETRY_ERROR_EVERY,
            };
            let change = async {
                match changes.as_mut() {
                    Some((_, _, rx)) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = change => {
                    // Coalesce a burst of pod events into one resolution.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                () = self.nudge.notified() => {}
            }
        }
    }

    /// One resolution. `Err(true)` means retry soon, `Err(false)` means the user must act.
    async fn resolve_once(
        &self,
        changes: &mut Option<(String, String, watch::Receiver<u64>)>,
    ) -> Result<(), bool> {
        let cc = match self.pool.client(self.spec.context.as_deref()).await {
            Ok(cc) => cc,
            Err(e) => {
                self.targets.send_modify(|t| t.endpoints.clear());
                self.shared.update(|s| {
                    s.resolution = ForwardState::Error;
                    s.error = Some(e.to_string());
                    s.pod = None;
                });
                return Err(false);
            }
        };
        let namespace = self.spec.namespace.clone().unwrap_or(cc.namespace.clone());
        let key = format!("{}#{}", cc.context, cc.id);
        let stale = changes
            .as_ref()
            .is_none_or(|(c, n, _)| *c != key || *n != namespace);
        if stale {
            *changes = self
                .subscribe(&cc.context, cc.id, &namespace, &cc.client)
                .await
                .map(|(_, n, rx)| (key, n, rx));
        }
        self.shared.update(|s| {
            s.context = Some(cc.context.clone());
            s.namespace = Some(namespace.clone());
            s.credential_plugin = cc.plugin.clone();
        });
        let (spec, ns) = (&*self.spec, namespace.as_str());
        let look = move |client: kube::Client| async move {
            resolve(&client, ns, &spec.target, &spec.port, spec.pod_port).await
        };
        let mut result = look(cc.client.clone()).await;
        let mut cc = cc;
        if matches!(result, Err(ResolveError::Unauthorized { .. })) {
            // Credentials expired or were revoked: rebuild the context's client (which
            // runs its credential plugin again) and try once more.
            info!(context = %cc.context, "401 from the API server; refreshing credentials");
            self.pool.invalidate_client(&cc.context, cc.id);
            match self.pool.client(self.spec.context.as_deref()).await {
                Ok(fresh) => {
                    cc = fresh;
                    result = look(cc.client.clone()).await;
                }
                Err(e) => {
                    self.shared.update(|s| {
                        s.resolution = ForwardState::Error;
                        s.error = Some(e.to_string());
                    });
                    return Err(false);
                }
            }
        }
        match result {
            Ok(endpoints) => {
                let pod = {
                    let mut sticky = self.sticky.lock();
                    if sticky
                        .as_ref()
                        .is_none_or(|p| !endpoints.iter().any(|e| &e.pod == p))
                    {
                        *sticky = endpoints.first().map(|e| e.pod.clone());
                    }
                    sticky.clone()
                };
                self.targets.send_replace(Targets {
                    client: Some(cc.client.clone()),
                    namespace,
                    endpoints,
                });
                self.shared.update(|s| {
                    s.resolution = ForwardState::Active;
                    s.error = None;
                    s.pod = pod;
                });
                Ok(())
            }
            Err(e) => {
                let retryable = e.is_retryable();
                // On API trouble keep the last endpoints: tunnels may still work.
                if !matches!(e, ResolveError::Api { .. }) {
                    self.targets.send_modify(|t| {
                        t.client = Some(cc.client.clone());
                        t.namespace = namespace.clone();
                        t.endpoints.clear();
                    });
                    *self.sticky.lock() = None;
                }
                let state = if retryable {
                    ForwardState::Reconnecting
                } else {
                    ForwardState::Error
                };
                debug!(error = %e, "resolution failed");
                let message = match &e {
                    ResolveError::Api { .. }
                    | ResolveError::Unauthorized { .. }
                    | ResolveError::Forbidden { .. } => format!("context `{}`: {e}", cc.context),
                    _ => e.to_string(),
                };
                self.shared.update(|s| {
                    s.resolution = state;
                    s.error = Some(message);
                    if !matches!(e, ResolveError::Api { .. }) {
                        s.pod = None;
                    }
                });
                Err(retryable)
            }
        }
    }

    async fn subscribe(
        &self,
        context: &str,
        client_id: u64,
        namespace: &str,
        client: &kube::Client,
    ) -> Option<(String, String, watch::Receiver<u64>)> {
        let (reply, rx) = oneshot::channel();
        let req = WatchRequest {
            client_id,
            context: context.to_string(),
            namespace: namespace.to_string(),
            client: client.clone(),
            reply,
        };
        tokio::select! {
            () = self.token.cancelled() => None,
            got = async {
                self.watches.send(req).await.ok()?;
                rx.await.ok()
            } => got.map(|rx| (context.to_string(), namespace.to_string(), rx)),
        }
    }
}

// === connections ===

struct Connection {
    /// `(max_idle, max_age)` from the health spec when the connection was accepted.
    limits: (Option<Duration>, Option<Duration>),
    spec: Arc<Forward>,
    shared: Arc<WorkerShared>,
    targets: watch::Receiver<Targets>,
    nudge: Arc<Notify>,
    sticky: Arc<Mutex<Option<String>>>,
    next_rr: Arc<AtomicUsize>,
    tunnels: Arc<TunnelPool>,
    /// Dial afresh instead of taking a pre-opened tunnel (after one was lost).
    skip_pool: bool,
    token: CancellationToken,
}

/// How the start of a connection went on one tunnel.
enum Settled {
    /// The pod sent its first bytes: the tunnel is proven.
    Answered(TunnelStream, Vec<u8>),
    /// The client sent more than can be replayed, or ended without sending anything: the
    /// connection keeps this tunnel whatever happens.
    Committed(TunnelStream),
    /// The client ended and the pod stayed silent for [`IDLE_AFTER_CLIENT_EOF`], or the
    /// connection reached its `max_idle` / `max_age` first.
    Quiet,
    /// The tunnel closed or failed before the pod said anything.
    Lost(io::Error),
}

/// The start of a connection: what the client sent so far (while it can be replayed)
/// and whether it ended its side.
#[derive(Default)]
struct Start {
    sent: Vec<u8>,
    replayable: bool,
    client_eof: bool,
}

/// Counts an open connection while alive.
struct OpenGuard<'a>(&'a WorkerShared);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.conns_open.fetch_sub(1, Ordering::Relaxed);
        self.0.used();
    }
}

impl Connection {
    async fn serve(mut self, local: TcpStream) {
        let shared = self.shared.clone();
        shared.conns_open.fetch_add(1, Ordering::Relaxed);
        shared.used();
        let _open = OpenGuard(&shared);
        let token = self.token.clone();
        tokio::select! {
            () = token.cancelled() => debug!("closed by stop"),
            r = self.run(local) => match r {
                Ok(()) => debug!("connection closed"),
                Err(e) => {
                    debug!(error = %e, "connection ended with an error");
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        shared.update(|s| s.last_error = Some(e.to_string()));
                    }
                }
            },
        }
    }

    /// Opens a tunnel and splices. Until the pod first answers, what the client sends is
    /// also kept (up to [`REPLAY_LIMIT`]): a tunnel lost before then because its pod went
    /// (deleted an instant ago, say) is replaced by a fresh one and the client's bytes sent
    /// again, so the client sees no difference.
    async fn run(&mut self, mut local: TcpStream) -> io::Result<()> {
        let mut start = Start {
            replayable: true,
            ..Start::default()
        };
        let mut replays = 0;
        let opened = tokio::time::Instant::now();
        let (tunnel, first) = loop {
            let (tunnel, pod) = self.open_tunnel().await?;
            tracing::Span::current().record("pod.name", pod.as_str());
            debug!("tunnel open");
            match settle(
                &mut local,
                tunnel,
                &mut start,
                &self.shared,
                self.limits,
                opened,
            )
            .await?
            {
                Settled::Answered(tunnel, first) => break (tunnel, first),
                Settled::Committed(tunnel) => break (tunnel, Vec::new()),
                Settled::Quiet => return Ok(()),
                Settled::Lost(e)
                    if start.replayable && replays < MAX_REPLAYS && self.pod_went(&pod).await =>
                {
                    replays += 1;
                    debug!(pod.name = %pod, error = %e, "the pod went before answering; moving on");
                    self.skip_pool = true;
                }
                // The pod is still there: it closed (or refused) on its own, and the client
                // is told, never sent its bytes again.
                Settled::Lost(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Settled::Lost(e) => return Err(e),
            }
        };
        if !first.is_empty() {
            local.write_all(&first).await?;
            self.shared
                .bytes_in
                .fetch_add(first.len() as u64, Ordering::Relaxed);
        }
        let client_eof = start.client_eof;
        // Not held for the rest of the connection.
        drop((first, start));
        splice(local, tunnel, &self.shared, self.limits, opened, client_eof).await
    }

    /// Whether `pod` has left the forward's endpoints (deleted, or no longer ready): the
    /// resolver, which watches the pods, says so within [`POD_GONE_WAIT`]. A pod that went
    /// is forgotten (a sticky forward moves on).
    async fn pod_went(&mut self, pod: &str) -> bool {
        let deadline = tokio::time::Instant::now() + POD_GONE_WAIT;
        loop {
            if !self
                .targets
                .borrow_and_update()
                .endpoints
                .iter()
                .any(|e| e.pod == pod)
            {
                self.forget(pod);
                return true;
            }
            match tokio::time::timeout_at(deadline, self.targets.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// The pod may be gone: forget it and have the resolver look again.
    fn forget(&self, pod: &str) {
        let mut sticky = self.sticky.lock();
        if sticky.as_deref() == Some(pod) {
            *sticky = None;
        }
        drop(sticky);
        self.nudge.notify_one();
    }

    /// Picks a pod and opens a tunnel, retrying other pods or waiting for one until
    /// [`WAIT_FOR_POD`] has passed.
    async fn open_tunnel(&mut self) -> io::Result<(TunnelStream, String)> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_POD;
        let mut pause = Duration::from_millis(100);
        loop {
            let targets = self.targets.borrow_and_update().clone();
            if let (Some(client), Some(ep)) = (&targets.client, self.pick(&targets.endpoints)) {
                if !self.skip_pool
                    && let Some(t) = self.tunnels.take(&ep.pod, ep.port)
                {
                    return Ok((t, ep.pod));
                }
                let dialed = tokio::time::timeout_at(
                    deadline,
                    tunnel::dial(client, &targets.namespace, &ep.pod, ep.port),
                )
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "opening a tunnel for {} took longer than {:?}",
                            self.spec.name, WAIT_FOR_POD
                        ),
                    )
                })?;
                match dialed {
                    Ok(t) => return Ok((t, ep.pod)),
                    Err(e) => {
                        debug!(pod.name = %ep.pod, error = %e, "tunnel failed");
                        self.shared.update(|s| s.last_error = Some(e.to_string()));
                        self.forget(&ep.pod);
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no ready pod for {} within {:?}",
                        self.spec.name, WAIT_FOR_POD
                    ),
                ));
            }
            // Wait for new endpoints, or retry after a short pause.
            let _ = tokio::time::timeout(pause.min(deadline - now), self.targets.changed()).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    fn pick(&self, endpoints: &[Endpoint]) -> Option<Endpoint> {
        if endpoints.is_empty() {
            return None;
        }
        match self.spec.pick {
            Pick::Sticky => {
                let mut sticky = self.sticky.lock();
                let current = sticky
                    .as_ref()
                    .and_then(|p| endpoints.iter().find(|e| &e.pod == p))
                    .cloned();
                let chosen = current.unwrap_or_else(|| endpoints[0].clone());
                *sticky = Some(chosen.pod.clone());
                Some(chosen)
            }
            Pick::RoundRobin => {
                let i = self.next_rr.fetch_add(1, Ordering::Relaxed);
                Some(endpoints[i % endpoints.len()].clone())
            }
            Pick::Random => {
                let i = rand::rng().random_range(0..endpoints.len());
                Some(endpoints[i].clone())
            }
        }
    }
}

/// Runs a connection's start on `tunnel`: sends what the client sent so far, then relays
/// the client's bytes (keeping them while they can be replayed) until the pod answers,
/// the tunnel is lost, or the start can no longer be replayed.
async fn settle(
    local: &mut TcpStream,
    mut tunnel: TunnelStream,
    start: &mut Start,
    shared: &WorkerShared,
    (max_idle, max_age): (Option<Duration>, Option<Duration>),
    opened: tokio::time::Instant,
) -> io::Result<Settled> {
    if !start.sent.is_empty()
        && let Err(e) = tunnel.write_all(&start.sent).await
    {
        return Ok(Settled::Lost(e));
    }
    // Small buffers: most connections leave this phase with their first answer, and
    // splice then reads with its own large ones.
    let mut up = vec![0u8; REPLAY_LIMIT];
    let mut down = vec![0u8; 16 * 1024];
    let mut last_any = tokio::time::Instant::now();
    loop {
        // The connection's own limits apply from its start, as in `splice`.
        let limit = [
            max_idle.map(|d| last_any + d),
            max_age.map(|d| opened + d),
            start.client_eof.then(|| last_any + IDLE_AFTER_CLIENT_EOF),
        ]
        .into_iter()
        .flatten()
        .min();
        if !start.replayable || (start.client_eof && start.sent.is_empty()) {
            start.sent = Vec::new();
            return Ok(Settled::Committed(tunnel));
        }
        tokio::select! {
            r = local.read(&mut up), if !start.client_eof => {
                let n = r?;
                if n == 0 {
                    start.client_eof = true;
                    continue;
                }
                shared.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                last_any = tokio::time::Instant::now();
                start.sent.extend_from_slice(&up[..n]);
                start.replayable = start.sent.len() <= REPLAY_LIMIT;
                if let Err(e) = tunnel.write_all(&up[..n]).await {
                    return Ok(Settled::Lost(e));
                }
            }
            r = tunnel.read(&mut down) => return Ok(match r {
                Ok(0) => Settled::Lost(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tunnel closed before the pod answered",
                )),
                Ok(n) => {
                    down.truncate(n);
                    Settled::Answered(tunnel, down)
                }
                Err(e) => Settled::Lost(e),
            }),
            () = sleep_until_or_never(limit) => return Ok(Settled::Quiet),
        }
    }
}

/// Copies bytes both ways until the pod side ends (or the client is gone).
///
/// A client that shuts down its sending side still receives everything the pod sends
/// afterwards: its end-of-stream is not passed to the tunnel (the port-forward protocol
/// would close the whole tunnel), and the connection ends when the pod closes, or after
/// [`IDLE_AFTER_CLIENT_EOF`] of silence from the pod.
async fn splice(
    local: TcpStream,
    tunnel: TunnelStream,
    shared: &WorkerShared,
    (max_idle, max_age): (Option<Duration>, Option<Duration>),
    opened: tokio::time::Instant,
    client_eof: bool,
) -> io::Result<()> {
    let last_any = AtomicU64::new(now_ms());
    let (mut lr, mut lw) = local.into_split();
    let (mut tr, mut tw) = tokio::io::split(tunnel);
    let last_down = AtomicU64::new(now_ms());
    let up = async {
        // Large reads make large WebSocket messages: fewer frames for the API server to
        // parse and fewer TLS records per byte.
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = lr.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(());
            }
            tw.write_all(&buf[..n]).await?;
            shared.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            last_any.store(now_ms(), Ordering::Relaxed);
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tr.read(&mut buf).await?;
            if n == 0 {
                lw.shutdown().await?;
                return Ok::<_, io::Error>(());
            }
            lw.write_all(&buf[..n]).await?;
            shared.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            last_down.store(now_ms(), Ordering::Relaxed);
            last_any.store(now_ms(), Ordering::Relaxed);
        }
    };
    tokio::pin!(up, down);
    let mut client_eof = client_eof;
    let mut recycle = tokio::time::interval(Duration::from_millis(250));
    loop {
        let idle = async {
            if client_eof {
                let since = now_ms().saturating_sub(last_down.load(Ordering::Relaxed));
                let left = IDLE_AFTER_CLIENT_EOF.saturating_sub(Duration::from_millis(since));
                tokio::time::sleep(left).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = &mut down => return r,
            r = &mut up, if !client_eof => {
                r?;
                client_eof = true;
            }
            () = idle => {
                let since = now_ms().saturating_sub(last_down.load(Ordering::Relaxed));
                if Duration::from_millis(since) >= IDLE_AFTER_CLIENT_EOF {
                    return Ok(());
                }
            }
            _ = recycle.tick(), if max_idle.is_some() || max_age.is_some() => {
                let idle = Duration::from_millis(now_ms().saturating_sub(last_any.load(Ordering::Relaxed)));
                if max_idle.is_some_and(|m| idle >= m) {
                    debug!(idle = ?idle, "recycling an idle connection");
                    return Ok(());
                }
                if max_age.is_some_and(|m| opened.elapsed() >= m) {
                    debug!("recycling a connection past its maximum age");
                    return Ok(());
                }
            }
        }
    }
}
