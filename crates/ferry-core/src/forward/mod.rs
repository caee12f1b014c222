//! One forward's worker: the listener, the accept loop, per-connection tunnels and
//! splicing, and the resolver loop that keeps the set of ready pods current.
//!
//! The listener is bound first and stays bound through pod restarts, so local clients
//! never see "connection refused" because Ferry dropped the port: a connection that
//! arrives while no pod is ready waits (up to [`connection::WAIT_FOR_POD`]) for one. A
//! connection whose tunnel is lost before the pod first answers, because the pod went in
//! that instant, moves to a fresh tunnel and sends its first bytes again (up to
//! [`connection::REPLAY_LIMIT`]); a pod that is still there and closed on its own is not
//! asked twice.
//!
//! What the forward shows is composed from inputs that each have one writer (see
//! [`shared`] and [`status`]). The health monitor sees a worker through the
//! [`ProbeTarget`] it implements, so `health` needs nothing of this module.
//!
//! - [`shared`]: the inputs, counters and heartbeat the worker shares;
//! - [`status`]: the pure function from those inputs to the status shown;
//! - [`listener`]: binding the local address and the accept loop;
//! - [`connection`]: one connection's tunnel, start and splice, and the sticky pick;
//! - [`resolver`]: the resolver loop;
//! - [`pre_open`]: tunnels opened ahead of demand.
//!
//! Every task of a worker hangs off the worker's `CancellationToken`; dropping the
//! [`WorkerHandle`] cancels them all.

mod connection;
mod listener;
mod pre_open;
mod resolver;
mod shared;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug_span, warn};

use crate::cluster::{ClientPool, Endpoint};
use crate::config::Forward;
use crate::health::{Checker, ProbeTarget};
use crate::pool::TunnelPool;
use crate::sessions::Tunnels;
use connection::Sticky;
// The engine names the monitor's handle on a worker through this module.
pub(crate) use crate::health::ProbeHandle;
pub(crate) use shared::WorkerShared;

/// Where connections go right now.
#[derive(Clone, Default)]
struct Targets {
    /// The sessions to pods through the context's client.
    tunnels: Option<Arc<Tunnels>>,
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
    sticky: Arc<Sticky>,
    limits: watch::Sender<(Option<Duration>, Option<Duration>)>,
}

/// What the health monitor sees of a worker (see [`ProbeTarget`]).
struct WorkerProbe {
    spec: Arc<Forward>,
    shared: Arc<WorkerShared>,
    targets: watch::Receiver<Targets>,
    nudge: Arc<Notify>,
    sticky: Arc<Sticky>,
}

impl ProbeTarget for WorkerProbe {
    fn local(&self) -> Option<SocketAddr> {
        self.shared.local()
    }

    fn endpoint(&self) -> Option<(Arc<Tunnels>, String, Endpoint)> {
        let targets = self.targets.borrow();
        let client = targets.tunnels.clone()?;
        let ep = self.sticky.peek(&targets.endpoints)?.clone();
        Some((client, targets.namespace.clone(), ep))
    }

    fn context(&self) -> Option<String> {
        self.shared.context()
    }

    fn target_name(&self) -> String {
        self.spec.target.name().to_string()
    }

    /// See [`WorkerShared::publish_health`].
    fn publish(&self, checker: &Checker, checked: bool) {
        self.shared.publish_health(checker, checked);
    }

    fn idle_for(&self) -> Duration {
        self.shared.idle_for()
    }

    fn nudge(&self) {
        self.nudge.notify_one();
    }

    fn no_pod(&self) -> String {
        self.shared
            .status()
            .error
            .unwrap_or_else(|| format!("forward {} has no ready pod", self.spec.name))
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.token.cancel();
        self.shared.end_inspection();
    }
}

impl WorkerHandle {
    /// A handle for the health monitor (and for `Engine::dial`).
    pub(crate) fn probe(&self) -> ProbeHandle {
        ProbeHandle::new(WorkerProbe {
            spec: self.spec.clone(),
            shared: self.shared.clone(),
            targets: self.targets.clone(),
            nudge: self.nudge.clone(),
            sticky: self.sticky.clone(),
        })
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
    let sticky = Arc::new(Sticky::default());
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
    /// The pod the forward keeps using while it stays ready.
    sticky: Arc<Sticky>,
    next_rr: Arc<AtomicUsize>,
    /// Pre-opened tunnels for the next connections (sticky forwards in use only).
    tunnels: Arc<TunnelPool>,
    /// How often the accept loop shows it is alive.
    beat: Duration,
    /// Whether tunnels are opened ahead of demand (`EngineOptions::pre_open_tunnels`).
    pre_open: bool,
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
}
