//! What the engine tells the world: per-forward status, full snapshots, and transition
//! events.
//!
//! The bus has two halves: a bounded `broadcast` of [`Event`]s for transitions, and a
//! `watch` holding the latest complete [`Snapshot`]. A subscriber that lags behind the
//! broadcast never silently misses state: it re-reads the snapshot, which is always
//! complete.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

pub use crate::clock::now_ms;
pub use crate::health::{HealthState, Transition};

/// The state of one forward (see the design notes, "Forward states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum ForwardState {
    /// Not running: disabled in the config.
    Disabled,
    /// Binding the local address and resolving the target.
    Starting,
    /// Listening, with a ready pod to send connections to.
    Active,
    /// Listening, but health checks fail or are unknown.
    Degraded,
    /// Listening, but no ready pod or the tunnel fails; retrying with backoff.
    Reconnecting,
    /// Needs the user: port in use, forbidden, target or context not found.
    Error,
}

impl ForwardState {
    /// The lower-case word used in JSON and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardState::Disabled => "disabled",
            ForwardState::Starting => "starting",
            ForwardState::Active => "active",
            ForwardState::Degraded => "degraded",
            ForwardState::Reconnecting => "reconnecting",
            ForwardState::Error => "error",
        }
    }
}

impl std::fmt::Display for ForwardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything worth showing about one forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ForwardStatus {
    /// The forward's name, its id.
    pub forward: String,
    pub state: ForwardState,
    /// `service/echo:80`.
    pub target: String,
    /// The kubeconfig context in use, once known.
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// The pod new connections go to, when one is ready.
    pub pod: Option<String>,
    /// The bound local address (with the real port when the config says 0).
    pub local: Option<SocketAddr>,
    /// What is wrong now, as one sentence; `None` when nothing is.
    pub error: Option<String>,
    /// The most recent problem, kept after recovery so the user can see what happened.
    pub last_error: Option<String>,
    /// Open local connections.
    pub connections: u64,
    /// Local connections accepted since the forward started.
    pub total_connections: u64,
    /// Bytes from local clients to the pod.
    pub bytes_out: u64,
    /// Bytes from the pod to local clients.
    pub bytes_in: u64,
    /// When the forward entered its state (ms since the epoch).
    pub since_ms: u64,
    /// The health checks' verdict.
    pub health: HealthState,
    /// The last probe's latency.
    pub latency_ms: Option<u64>,
    /// The last probe's finding, as one sentence.
    pub detail: Option<String>,
    /// When the last probe finished (ms since the epoch).
    pub last_probe_ms: Option<u64>,
    /// Health transitions, oldest first (bounded).
    pub history: Vec<Transition>,
    /// The credential plugin the forward's context runs, and where it was found.
    pub credential_plugin: Option<String>,
    /// The forward's address as a URL (`http://web.local:8080`, `tcp://127.0.0.1:5432`).
    pub url: Option<String>,
    /// The `.local` name published for the forward, if it has an alias.
    pub alias: Option<String>,
    /// Why the alias is not published (the forward works all the same).
    pub alias_warning: Option<String>,
    /// Whether the forward listens beyond this machine (a non-loopback bind).
    pub exposed: bool,
    /// The local address is taken by another socket: choosing another local port fixes
    /// it. (`error` says by which process, where the system tells.)
    pub port_in_use: bool,
    /// Connections the cluster closed after a quiet spell, the last one's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub idle_closed: Option<IdleClosed>,
}

/// Connections the far side closed after a quiet spell: on tunnels that cannot be kept
/// alive by pings (the WebSocket channel protocol, whose every connection is its own
/// stream), a cluster's streaming idle timeout ends a connection nothing moved on — or the
/// server in the pod ended it for its own idleness limit; Ferry cannot tell which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct IdleClosed {
    /// How many so far.
    pub count: u64,
    /// When the last one was closed (ms since the epoch).
    pub at_ms: u64,
    /// How long nothing had moved on it either way.
    pub quiet_ms: u64,
}

impl ForwardStatus {
    /// A fresh status in `state`.
    pub fn new(forward: &str, target: String, state: ForwardState) -> Self {
        Self {
            forward: forward.to_string(),
            state,
            target,
            context: None,
            namespace: None,
            pod: None,
            local: None,
            error: None,
            last_error: None,
            connections: 0,
            total_connections: 0,
            bytes_out: 0,
            bytes_in: 0,
            since_ms: now_ms(),
            health: HealthState::Unknown,
            latency_ms: None,
            detail: None,
            last_probe_ms: None,
            history: Vec::new(),
            credential_plugin: None,
            url: None,
            alias: None,
            alias_warning: None,
            exposed: false,
            port_in_use: false,
            idle_closed: None,
        }
    }

    /// The status without what changes all the time (traffic counters, the last probe's
    /// latency and time): two statuses with equal news differ in nothing worth an event.
    pub(crate) fn news(&self) -> Self {
        let mut s = self.clone();
        s.latency_ms = None;
        s.last_probe_ms = None;
        s.connections = 0;
        s.total_connections = 0;
        s.bytes_in = 0;
        s.bytes_out = 0;
        s
    }
}

/// The state of every forward at one moment. Always complete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Snapshot {
    /// Increases with every published snapshot.
    pub generation: u64,
    /// Sorted by forward name.
    pub forwards: Vec<ForwardStatus>,
}

impl Snapshot {
    /// The status of `name`, if it is configured.
    pub fn get(&self, name: &str) -> Option<&ForwardStatus> {
        self.forwards.iter().find(|f| f.forward == name)
    }
}

/// A transition worth telling subscribers about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A forward's state, pod, address or error changed.
    Forward {
        #[serde(flatten)]
        status: Box<ForwardStatus>,
    },
    /// A forward left the configuration.
    Removed { forward: String },
    /// The watchdog restarted a forward's worker.
    Restarted { forward: String, reason: String },
}

/// The sending side of the bus, owned by the engine.
pub(crate) struct Bus {
    pub events: broadcast::Sender<Event>,
    pub snapshot: watch::Sender<Arc<Snapshot>>,
}

impl Bus {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        let (snapshot, _) = watch::channel(Arc::new(Snapshot::default()));
        Self { events, snapshot }
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            events: self.events.subscribe(),
            snapshot: self.snapshot.subscribe(),
        }
    }
}

/// A subscriber's view: transition events, and the latest snapshot to fall back on.
pub struct Subscription {
    pub events: broadcast::Receiver<Event>,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
}

/// What [`Subscription::next`] yields.
#[derive(Debug, Clone)]
pub enum Update {
    Event(Event),
    /// Events were missed; this snapshot is the complete state now.
    Resync(Arc<Snapshot>),
}

impl Subscription {
    /// The next event, or a resync snapshot when this subscriber fell behind. `None` once
    /// the engine is gone.
    pub async fn next(&mut self) -> Option<Update> {
        match self.events.recv().await {
            Ok(e) => Some(Update::Event(e)),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Skip the stale backlog: the snapshot is the state now, and later events
                // follow it.
                self.events = self.events.resubscribe();
                Some(Update::Resync(self.snapshot.borrow_and_update().clone()))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
