//! The engine: the façade the CLI and the app use, and the manager task behind it.
//!
//! One task, the manager, owns the configuration, the worker map and the namespace change
//! feeds. Everyone else sends it a [`Command`] and awaits a oneshot reply; there is no
//! shared mutable map. Reload (`apply`) compares the new configuration with the running
//! one and only starts, stops or restarts the forwards whose spec changed; unchanged
//! forwards keep their listeners and open connections. The event bus, the client pool and
//! the change feeds live as long as the engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info};

use crate::cluster::{ClientPool, KubeconfigSource};
use crate::config::{Config, ConfigError, Forward};
use crate::events::{Bus, Event, ForwardState, ForwardStatus, Snapshot, Subscription};
use crate::forward::{self, WatchRequest, WorkerHandle};
use crate::tunnel::TunnelStream;

/// Errors of engine calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no forward named `{0}`")]
    UnknownForward(String),
    #[error("the engine has shut down")]
    Stopped,
    #[error("{0}")]
    Dial(String),
    #[error("{0}")]
    Health(String),
    /// The forward runs without `inspect`, or is disabled.
    #[error("{0}")]
    NotInspected(String),
}

/// What an `apply` changed, by forward name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    pub unchanged: Vec<String>,
    /// The engine already runs a later revision; this one changed nothing.
    pub superseded: bool,
}

/// A configuration to run, numbered by its writer: the engine never goes back from a
/// revision to an earlier one, so writers that race (two commands, a command and a reload
/// of the store) can hand their results over in any order and the engine still ends on
/// the newest.
#[derive(Debug, Clone)]
pub struct Revision {
    /// Greater for newer revisions.
    pub number: u64,
    pub config: Config,
    /// Where kubeconfig files come from now; `None` keeps the current source.
    pub kubeconfig: Option<KubeconfigSource>,
}

enum Command {
    Apply {
        config: Config,
        /// `None`: apply whatever the revision.
        revision: Option<u64>,
        kubeconfig: Option<KubeconfigSource>,
        reply: oneshot::Sender<Result<ApplyReport, EngineError>>,
    },
    SetEnabled {
        name: String,
        enabled: bool,
        reply: oneshot::Sender<Result<ApplyReport, EngineError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Arc<Snapshot>>,
    },
    Config {
        reply: oneshot::Sender<Arc<Config>>,
    },
    Dial {
        name: String,
        reply: oneshot::Sender<Result<DialTarget, EngineError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    Inspection {
        name: String,
        reply: oneshot::Sender<Result<Arc<crate::inspect::Inspection>, EngineError>>,
    },
    Health {
        name: String,
        pause: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Freeze {
        name: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Recheck {
        names: Option<Vec<String>>,
        why: Option<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
}

/// A pending dial, done outside the manager so it never blocks other commands.
type DialTarget = forward::ProbeHandle;

/// Options for [`Engine::start`].
#[derive(Debug, Clone)]
#[must_use]
pub struct EngineOptions {
    /// Where kubeconfig files come from. Default: `KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: KubeconfigSource,
    /// How credential plugins are found and run.
    pub exec: crate::cluster::ExecOptions,
    /// Which interfaces carry mDNS announcements of aliases.
    pub mdns_interfaces: crate::mdns::Interfaces,
    /// A worker whose accept loop shows no heartbeat for this long is restarted.
    /// Default: 10 s (the loop beats every quarter of it, at most every 2.5 s).
    pub watchdog: Duration,
    /// Keep a few tunnels open ahead of demand for busy sticky forwards (see
    /// `crate::pool`): connection setup no longer waits for a TLS handshake and upgrade.
    /// Default: on. A pre-opened tunnel can outlive its pod by a moment (between the
    /// pod's deletion and the resolver noticing); a connection whose tunnel is lost before
    /// the pod answers, to a pod that has gone, moves to a fresh one and its first bytes
    /// are sent again, so clients do not see it.
    pub pre_open_tunnels: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            kubeconfig: KubeconfigSource::from_env(),
            exec: crate::cluster::ExecOptions::default(),
            mdns_interfaces: crate::mdns::Interfaces::default(),
            watchdog: Duration::from_secs(10),
            pre_open_tunnels: true,
        }
    }
}

/// The running engine. Dropping it cancels everything; [`Engine::shutdown`] also waits
/// until every listener is closed.
pub struct Engine {
    commands: mpsc::Sender<Command>,
    /// The clients the forwards use, shared with callers that browse the cluster.
    pool: Arc<ClientPool>,
    bus: Arc<Bus>,
    token: CancellationToken,
    /// The manager task, taken by the first `shutdown`.
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Engine {
    /// Validates `config` and starts its enabled forwards. Must be called within a Tokio
    /// runtime.
    pub fn start(config: Config, options: EngineOptions) -> Result<Self, EngineError> {
        config.validate()?;
        let token = CancellationToken::new();
        let bus = Arc::new(Bus::new());
        let pool = Arc::new(ClientPool::with_exec(options.kubeconfig, options.exec));
        let (tx, rx) = mpsc::channel(64);
        let (notify_tx, notify_rx) = mpsc::channel(1);
        let (watch_tx, watch_rx) = mpsc::channel(64);
        let (monitor_tx, monitor_rx) = mpsc::channel(256);
        let (wake_tx, wake_rx) = mpsc::channel(4);
        tokio::spawn(
            crate::wake::watch(pool.clone(), wake_tx, token.child_token())
                .instrument(debug_span!("wake")),
        );
        tokio::spawn(
            crate::health::monitor(monitor_rx, token.child_token())
                .instrument(debug_span!("health")),
        );
        let manager = Manager {
            mdns: None,
            mdns_interfaces: options.mdns_interfaces,
            announced: HashMap::new(),
            monitor: monitor_tx,
            health: BTreeMap::new(),
            watchdog: options.watchdog,
            pre_open_tunnels: options.pre_open_tunnels,
            commands: rx,
            notify_rx,
            notify_tx,
            watch_rx,
            watch_tx,
            wake_rx,
            config: Arc::new(Config {
                forwards: Vec::new(),
                ..config.clone()
            }),
            workers: BTreeMap::new(),
            feeds: HashMap::new(),
            pool: pool.clone(),
            bus: bus.clone(),
            token: token.clone(),
            published: BTreeMap::new(),
            generation: 0,
            revision: 0,
        };
        let task = tokio::spawn(manager.run(config).instrument(debug_span!("engine")));
        Ok(Self {
            commands: tx,
            pool,
            bus,
            token,
            task: parking_lot::Mutex::new(Some(task)),
        })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Replaces the configuration (hot reload): starts new forwards, stops removed ones,
    /// restarts only those whose spec changed. An invalid config changes nothing.
    pub async fn apply(&self, config: Config) -> Result<ApplyReport, EngineError> {
        self.call(|reply| Command::Apply {
            config,
            revision: None,
            kubeconfig: None,
            reply,
        })
        .await?
    }

    /// Applies `revision` unless the engine already runs a later one (then the report says
    /// `superseded` and nothing changes). A new kubeconfig source is taken without a
    /// restart: clients are built from the new files and every forward resolves again,
    /// while unchanged forwards keep their listeners, connections and health history.
    pub async fn apply_revision(&self, revision: Revision) -> Result<ApplyReport, EngineError> {
        self.call(|reply| Command::Apply {
            config: revision.config,
            revision: Some(revision.number),
            kubeconfig: revision.kubeconfig,
            reply,
        })
        .await?
    }

    /// Enables a forward by name.
    pub async fn enable(&self, name: &str) -> Result<ApplyReport, EngineError> {
        let name = name.to_string();
        self.call(|reply| Command::SetEnabled {
            name,
            enabled: true,
            reply,
        })
        .await?
    }

    /// Disables a forward by name; its listener is closed when this returns.
    pub async fn disable(&self, name: &str) -> Result<ApplyReport, EngineError> {
        let name = name.to_string();
        self.call(|reply| Command::SetEnabled {
            name,
            enabled: false,
            reply,
        })
        .await?
    }

    /// The state of every forward now, with live counters.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, EngineError> {
        self.call(|reply| Command::Snapshot { reply }).await
    }

    /// The configuration the engine runs.
    pub async fn config(&self) -> Result<Arc<Config>, EngineError> {
        self.call(|reply| Command::Config { reply }).await
    }

    /// The per-context clients the forwards use (for browsing contexts, namespaces and
    /// targets with the same credentials).
    pub fn clients(&self) -> &Arc<ClientPool> {
        &self.pool
    }

    /// Events and the latest snapshot.
    pub fn subscribe(&self) -> Subscription {
        self.bus.subscribe()
    }

    /// Makes subscriptions without holding the engine (the control endpoint's server).
    pub fn subscriber(&self) -> impl Fn() -> Subscription + Send + Sync + 'static {
        let bus = self.bus.clone();
        move || bus.subscribe()
    }

    /// A connected stream to the pod a forward's next connection would use, without a
    /// local socket (the "test connection" button, and the `tunnel` health probe).
    pub async fn dial(&self, name: &str) -> Result<TunnelStream, EngineError> {
        let name = name.to_string();
        let probe = self.call(|reply| Command::Dial { name, reply }).await??;
        probe.dial().await.map_err(EngineError::Dial)
    }

    /// How a control endpoint finds a forward's inspection (see
    /// [`crate::control::ControlServer::start_with`]): asks this engine while it runs.
    pub fn inspector(&self) -> crate::control::InspectionOf {
        let commands = self.commands.clone();
        std::sync::Arc::new(move |name: String| {
            let commands = commands.clone();
            Box::pin(async move {
                let (reply, answer) = oneshot::channel();
                commands
                    .send(Command::Inspection { name, reply })
                    .await
                    .map_err(|_| EngineError::Stopped.to_string())?;
                answer
                    .await
                    .map_err(|_| EngineError::Stopped.to_string())?
                    .map_err(|e| e.to_string())
            })
        })
    }

    /// The HTTP inspection of a running forward whose config says `inspect` (its exchanges
    /// kept, and a way to follow new ones).
    pub async fn inspection(
        &self,
        name: &str,
    ) -> Result<Arc<crate::inspect::Inspection>, EngineError> {
        let name = name.to_string();
        self.call(|reply| Command::Inspection { name, reply })
            .await?
    }

    /// Checks everything again now, as after the machine woke or the network changed: every
    /// SPDY session is pinged and those silent for [`RECHECK_WITHIN`] end (connections
    /// whose pod had not answered move to a fresh session), every forward resolves its
    /// pods again and is probed at once. `why` is what the ended sessions' connections
    /// report, and what every checked forward shows as `reconnecting` until one of its
    /// probes passes. Returns how many sessions ended.
    pub async fn recheck(&self, why: &str) -> Result<usize, EngineError> {
        let ended = verify_sessions(&self.pool, why).await;
        info!(
            sessions.ended = ended,
            reason = why,
            "checked every forward again"
        );
        let why = Some(why.to_string());
        self.call(|reply| Command::Recheck {
            names: None,
            why,
            reply,
        })
        .await??;
        Ok(ended)
    }

    /// Checks one forward again now: its pods are resolved again and it is probed at once
    /// (the window's Retry).
    pub async fn recheck_forward(&self, name: &str) -> Result<(), EngineError> {
        let names = Some(vec![name.to_string()]);
        self.call(|reply| Command::Recheck {
            names,
            why: None,
            reply,
        })
        .await?
    }

    /// Pauses a forward's health checks; an error when the forward is disabled.
    pub async fn pause_health(&self, name: &str) -> Result<(), EngineError> {
        let name = name.to_string();
        self.call(|reply| Command::Health {
            name,
            pause: true,
            reply,
        })
        .await?
    }

    /// Resumes a forward's health checks; an error when the forward is disabled.
    pub async fn resume_health(&self, name: &str) -> Result<(), EngineError> {
        let name = name.to_string();
        self.call(|reply| Command::Health {
            name,
            pause: false,
            reply,
        })
        .await?
    }

    /// Test hook: makes a forward's accept loop hang, as a stuck loop would, so that the
    /// watchdog can be seen restarting it.
    #[doc(hidden)]
    pub async fn freeze_accept_loop_for_tests(&self, name: &str) -> Result<(), EngineError> {
        let name = name.to_string();
        self.call(|reply| Command::Freeze { name, reply }).await?
    }

    /// Stops every forward and returns once every listener is closed. Every later call
    /// answers [`EngineError::Stopped`]; nothing starts the engine again.
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
        self.token.cancel();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

// === the manager ===

/// How often the manager looks for moved counters (and at the watchdog).
const COUNTERS_EVERY: Duration = Duration::from_millis(250);

/// How long [`Engine::recheck`] waits for each session to answer its ping.
pub const RECHECK_WITHIN: Duration = Duration::from_secs(2);

/// Pings every SPDY session of every built client at once; those silent for
/// [`RECHECK_WITHIN`] end, and their connections report `why`. Returns how many ended.
pub(crate) async fn verify_sessions(pool: &ClientPool, why: &str) -> usize {
    let checks = pool
        .built()
        .into_iter()
        .map(|cc| async move { cc.tunnels.verify(RECHECK_WITHIN, why).await });
    futures::future::join_all(checks).await.into_iter().sum()
}

/// A namespace change feed: bumps a counter on every pod or EndpointSlice event.
struct Feed {
    tx: watch::Sender<u64>,
    /// Cancels the watch tasks when the engine goes.
    _guard: tokio_util::sync::DropGuard,
}

struct Manager {
    /// The mDNS publisher, started with the first alias and kept across reloads.
    mdns: Option<crate::mdns::MdnsHandle>,
    mdns_interfaces: crate::mdns::Interfaces,
    /// What is announced: forward → (alias, address).
    announced: HashMap<String, (String, std::net::SocketAddr)>,
    /// The health monitor, which outlives every reload.
    monitor: mpsc::Sender<crate::health::MonitorCmd>,
    /// The health spec each running worker is checked with.
    health: BTreeMap<String, crate::config::HealthSpec>,
    watchdog: Duration,
    /// See [`EngineOptions::pre_open_tunnels`].
    pre_open_tunnels: bool,
    commands: mpsc::Receiver<Command>,
    notify_rx: mpsc::Receiver<()>,
    notify_tx: mpsc::Sender<()>,
    watch_rx: mpsc::Receiver<WatchRequest>,
    watch_tx: mpsc::Sender<WatchRequest>,
    /// The machine woke or the network changed (see [`crate::wake`]).
    wake_rx: mpsc::Receiver<crate::wake::Trigger>,
    /// The running configuration.
    config: Arc<Config>,
    /// Running workers by forward name (enabled forwards only).
    workers: BTreeMap<String, Arc<WorkerHandle>>,
    /// Change feeds by (context, client id, namespace), shared by all forwards there.
    feeds: HashMap<(String, u64, String), Feed>,
    pool: Arc<ClientPool>,
    bus: Arc<Bus>,
    token: CancellationToken,
    /// The last status published per forward, without counters, to detect transitions.
    published: BTreeMap<String, ForwardStatus>,
    generation: u64,
    /// The revision running (see [`Revision`]); 0 before the first numbered one.
    revision: u64,
}

/// Whether a running worker can stay for `want` (everything but `enabled` and `health`
/// is the same).
fn same_spec(want: &Forward, running: &Forward) -> bool {
    want.spec_eq(running)
}

impl Manager {
    async fn run(mut self, initial: Config) {
        let report = self.apply(initial).await;
        debug!(?report, "started");
        // Counters that moved are published on this tick, so followers (the app's window)
        // see a new connection within a quarter of a second without asking.
        let mut tick = tokio::time::interval(COUNTERS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.token.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        self.stop_all().await;
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                Some(()) = self.notify_rx.recv() => self.publish(),
                Some(req) = self.watch_rx.recv() => self.feed(req),
                Some(trigger) = self.wake_rx.recv() => {
                    // The watcher already checked the sessions: resolve and probe again.
                    debug!(?trigger, "checking every forward again");
                    for w in self.workers.values() {
                        w.nudge();
                    }
                    let _ = self
                        .monitor
                        .send(crate::health::MonitorCmd::CheckNow {
                            names: None,
                            why: Some(trigger.doubt().to_string()),
                        })
                        .await;
                }
                _ = tick.tick() => {
                    self.watchdog().await;
                    self.refresh_counters();
                    // Feeds nobody listens to any more (clients replaced, forwards gone).
                    self.feeds.retain(|_, f| f.tx.receiver_count() > 0);
                }
            }
        }
        self.stop_all().await;
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Apply {
                config,
                revision,
                kubeconfig,
                reply,
            } => {
                let result = if revision.is_some_and(|r| r <= self.revision) {
                    debug!(
                        ?revision,
                        running = self.revision,
                        "superseded revision ignored"
                    );
                    Ok(ApplyReport {
                        superseded: true,
                        ..ApplyReport::default()
                    })
                } else {
                    match config.validate() {
                        Ok(()) => {
                            if let Some(r) = revision {
                                self.revision = r;
                            }
                            if let Some(source) = kubeconfig {
                                self.set_kubeconfig(source);
                            }
                            Ok(self.apply(config).await)
                        }
                        Err(e) => Err(EngineError::Config(e)),
                    }
                };
                let _ = reply.send(result);
            }
            Command::SetEnabled {
                name,
                enabled,
                reply,
            } => {
                let mut next = (*self.config).clone();
                let result = match next.forwards.iter_mut().find(|f| f.name == name) {
                    Some(f) => {
                        f.enabled = enabled;
                        Ok(self.apply(next).await)
                    }
                    None => Err(EngineError::UnknownForward(name)),
                };
                let _ = reply.send(result);
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::Config { reply } => {
                let _ = reply.send(self.config.clone());
            }
            Command::Dial { name, reply } => {
                let result = match self.workers.get(&name) {
                    Some(w) => Ok(w.probe()),
                    None if self.config.forwards.iter().any(|f| f.name == name) => {
                        Err(EngineError::Dial(format!("forward {name} is disabled")))
                    }
                    None => Err(EngineError::UnknownForward(name)),
                };
                let _ = reply.send(result);
            }
            Command::Inspection { name, reply } => {
                let result = match self.workers.get(&name) {
                    Some(w) => w.shared.inspection().ok_or_else(|| {
                        EngineError::NotInspected(format!(
                            "forward {name} is not inspected: turn it on with `inspect: http` (`ferry inspect {name} on`)"
                        ))
                    }),
                    None if self.config.forwards.iter().any(|f| f.name == name) => Err(
                        EngineError::NotInspected(format!("forward {name} is disabled")),
                    ),
                    None => Err(EngineError::UnknownForward(name)),
                };
                let _ = reply.send(result);
            }
            Command::Shutdown { reply } => {
                self.stop_all().await;
                let _ = reply.send(());
            }
            Command::Health { name, pause, reply } => {
                let result = if !self.config.forwards.iter().any(|f| f.name == name) {
                    Err(EngineError::UnknownForward(name))
                } else if !self.workers.contains_key(&name) {
                    Err(EngineError::Health(format!(
                        "forward `{name}` is disabled; enable it before pausing or resuming its checks"
                    )))
                } else {
                    let (tx, rx) = oneshot::channel();
                    let cmd = if pause {
                        crate::health::MonitorCmd::Pause { name, reply: tx }
                    } else {
                        crate::health::MonitorCmd::Resume { name, reply: tx }
                    };
                    match self.monitor.send(cmd).await {
                        Ok(()) => match rx.await {
                            Ok(r) => r.map_err(EngineError::Health),
                            Err(_) => Err(EngineError::Stopped),
                        },
                        Err(_) => Err(EngineError::Stopped),
                    }
                };
                let _ = reply.send(result);
            }
            Command::Recheck { names, why, reply } => {
                let result = match &names {
                    Some(names) => match names.iter().find(|n| !self.workers.contains_key(*n)) {
                        Some(off) if !self.config.forwards.iter().any(|f| &f.name == off) => {
                            Err(EngineError::UnknownForward(off.clone()))
                        }
                        _ => Ok(()),
                    },
                    None => Ok(()),
                };
                if result.is_ok() {
                    for (name, w) in &self.workers {
                        if names.as_ref().is_none_or(|n| n.contains(name)) {
                            w.nudge();
                        }
                    }
                    let _ = self
                        .monitor
                        .send(crate::health::MonitorCmd::CheckNow { names, why })
                        .await;
                }
                let _ = reply.send(result);
            }
            Command::Freeze { name, reply } => {
                let result = match self.workers.get(&name) {
                    Some(w) => {
                        w.shared.freeze();
                        Ok(())
                    }
                    None => Err(EngineError::UnknownForward(name)),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Takes kubeconfig files from `source` from now on; every forward resolves again
    /// (with a client built from the new files) and keeps what it has meanwhile.
    fn set_kubeconfig(&mut self, source: KubeconfigSource) {
        if self.pool.set_source(source) {
            info!(files = ?self.pool.source().paths(), "kubeconfig files changed");
            for w in self.workers.values() {
                w.nudge();
            }
        }
    }

    /// Restarts workers whose accept loop stopped beating.
    async fn watchdog(&mut self) {
        let stuck: Vec<(String, Duration)> = self
            .workers
            .iter()
            .map(|(n, w)| (n.clone(), w.shared.silent_for()))
            .filter(|(_, silent)| *silent > self.watchdog)
            .collect();
        for (name, silent) in stuck {
            let Some(old) = self.workers.remove(&name) else {
                continue;
            };
            // Restart with the spec the config has now (a health-only reload changed it
            // without restarting the worker).
            let spec = self
                .config
                .forwards
                .iter()
                .find(|f| f.name == name)
                .map(|f| Arc::new(f.clone()))
                .unwrap_or_else(|| old.spec.clone());
            stop_worker(old).await;
            let reason = format!(
                "restarted by the watchdog: its accept loop showed no sign of life for {}",
                humantime::format_duration(Duration::from_millis(silent.as_millis() as u64))
            );
            tracing::warn!(forward.name = %name, %reason);
            self.start_worker(spec).await;
            if let Some(w) = self.workers.get(&name) {
                w.shared.note_problem(reason.clone());
            }
            let _ = self.bus.events.send(Event::Restarted {
                forward: name,
                reason,
            });
        }
    }

    /// Spawns a worker for `spec` and registers it with the health monitor.
    async fn start_worker(&mut self, spec: Arc<Forward>) {
        let handle = forward::spawn(
            spec.clone(),
            self.pool.clone(),
            self.watch_tx.clone(),
            self.notify_tx.clone(),
            &self.token,
            // Four beats per watchdog period: a live loop is never taken for a stuck one,
            // and a thousand idle forwards do not wake the runtime thousands of times.
            (self.watchdog / 4).clamp(Duration::from_millis(100), Duration::from_millis(2500)),
            self.pre_open_tunnels,
        );
        let _ = self
            .monitor
            .send(crate::health::MonitorCmd::Upsert {
                name: spec.name.clone(),
                spec: Box::new(spec.health.clone()),
                probe: handle.probe(),
            })
            .await;
        self.health.insert(spec.name.clone(), spec.health.clone());
        self.workers.insert(spec.name.clone(), Arc::new(handle));
    }

    /// Moves from the running configuration to `next`, touching only what changed.
    async fn apply(&mut self, next: Config) -> ApplyReport {
        let mut report = ApplyReport::default();
        let wanted: BTreeMap<&str, &Forward> = next
            .forwards
            .iter()
            .filter(|f| f.enabled)
            .map(|f| (f.name.as_str(), f))
            .collect();
        // Stop first, so a restarted forward can bind the same port again; stops run
        // together, so many forwards never take many stop timeouts in a row.
        let running: Vec<String> = self.workers.keys().cloned().collect();
        let mut stopping = Vec::new();
        for name in running {
            let keep = match (wanted.get(name.as_str()), self.workers.get(&name)) {
                (Some(want), Some(w)) => same_spec(want, &w.spec),
                _ => false,
            };
            if keep {
                // Inspection follows the spec on new connections.
                if let (Some(want), Some(w)) = (wanted.get(name.as_str()), self.workers.get(&name))
                {
                    w.shared.set_inspect(want.inspect.as_ref());
                }
                // A health-only change restarts just the checker.
                if let (Some(want), Some(w)) = (wanted.get(name.as_str()), self.workers.get(&name))
                    && self.health.get(&name) != Some(&want.health)
                {
                    w.set_limits(&want.health);
                    let _ = self
                        .monitor
                        .send(crate::health::MonitorCmd::Upsert {
                            name: name.clone(),
                            spec: Box::new(want.health.clone()),
                            probe: w.probe(),
                        })
                        .await;
                    self.health.insert(name.clone(), want.health.clone());
                }
                report.unchanged.push(name);
                continue;
            }
            if let Some(w) = self.workers.remove(&name) {
                stopping.push(w);
            }
            self.health.remove(&name);
            if !wanted.contains_key(name.as_str()) {
                let _ = self
                    .monitor
                    .send(crate::health::MonitorCmd::Disable { name: name.clone() })
                    .await;
            }
            if wanted.contains_key(name.as_str()) {
                report.restarted.push(name);
            } else {
                report.stopped.push(name);
            }
        }
        futures::future::join_all(stopping.into_iter().map(stop_worker)).await;
        for (name, spec) in &wanted {
            if self.workers.contains_key(*name) {
                continue;
            }
            self.start_worker(Arc::new((*spec).clone())).await;
            if !report.restarted.iter().any(|r| r == name) {
                report.started.push(name.to_string());
            }
        }
        let removed: Vec<String> = self
            .config
            .forwards
            .iter()
            .filter(|f| !next.forwards.iter().any(|n| n.name == f.name))
            .map(|f| f.name.clone())
            .collect();
        self.config = Arc::new(next);
        for name in removed {
            let _ = self
                .monitor
                .send(crate::health::MonitorCmd::Remove { name: name.clone() })
                .await;
            self.published.remove(&name);
            let _ = self.bus.events.send(Event::Removed { forward: name });
        }
        info!(
            started = ?report.started, stopped = ?report.stopped,
            restarted = ?report.restarted, unchanged = report.unchanged.len(),
            "configuration applied"
        );
        self.publish();
        report
    }

    async fn stop_all(&mut self) {
        let workers = std::mem::take(&mut self.workers);
        let stops = workers.into_values().map(stop_worker);
        futures::future::join_all(stops).await;
        self.feeds.clear();
        self.announced.clear();
        if let Some(m) = self.mdns.take() {
            m.stop().await;
        }
        self.publish();
    }

    /// Every configured forward's status: live for running workers, Disabled otherwise.
    fn snapshot(&mut self) -> Arc<Snapshot> {
        let forwards: Vec<ForwardStatus> = self
            .config
            .forwards
            .iter()
            .map(|f| match self.workers.get(&f.name) {
                Some(w) => w.shared.status(),
                None => {
                    let mut s =
                        ForwardStatus::new(&f.name, f.target_label(), ForwardState::Disabled);
                    s.health = crate::health::HealthState::Disabled;
                    s
                }
            })
            .collect();
        let mut forwards = forwards;
        forwards.sort_by(|a, b| a.forward.cmp(&b.forward));
        self.generation += 1;
        Arc::new(Snapshot {
            generation: self.generation,
            forwards,
        })
    }

    /// Brings announced aliases and shown URLs in line with the config and the workers.
    fn sync_aliases(&mut self) {
        let mut desired: HashMap<String, (String, std::net::SocketAddr)> = HashMap::new();
        for f in &self.config.forwards {
            let Some(w) = self.workers.get(&f.name) else {
                continue;
            };
            // An alias change does not restart the worker: show the current one.
            w.shared.set_alias(f.alias.as_deref(), f);
            if let (Some(alias), Some(local)) = (&f.alias, w.shared.status().local) {
                desired.insert(f.name.clone(), (alias.clone(), local));
            }
        }
        // Withdraw first (gone or changed), then publish: an alias moving from one
        // forward to another is never withdrawn after its new owner published it.
        let gone: Vec<String> = self
            .announced
            .iter()
            .filter(|(k, v)| desired.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        for name in gone {
            self.announced.remove(&name);
            if let Some(m) = &self.mdns {
                m.send(crate::mdns::MdnsCmd::Withdraw { forward: name });
            }
        }
        for (name, (alias, local)) in desired {
            if self.announced.get(&name) == Some(&(alias.clone(), local)) {
                continue;
            }
            if self.mdns.is_none() {
                match crate::mdns::MdnsHandle::start(self.mdns_interfaces.clone()) {
                    Ok(h) => self.mdns = Some(h),
                    Err(e) => {
                        if let Some(w) = self.workers.get(&name) {
                            w.shared
                                .set_alias_warning(Some(format!("mDNS could not start: {e}")));
                        }
                        continue;
                    }
                }
            }
            let Some(w) = self.workers.get(&name) else {
                continue;
            };
            let shared = w.shared.clone();
            if let Some(m) = &self.mdns {
                m.send(crate::mdns::MdnsCmd::Publish {
                    forward: name.clone(),
                    alias: alias.clone(),
                    ip: local.ip(),
                    port: local.port(),
                    report: Box::new(move |warning| shared.set_alias_warning(warning)),
                });
            }
            self.announced.insert(name, (alias, local));
        }
    }

    /// Publishes the snapshot and an event for every forward whose shown state changed.
    fn publish(&mut self) {
        self.sync_aliases();
        let snap = self.snapshot();
        // The snapshot first: a subscriber that joins between the two never misses a
        // change (it sees it in the snapshot, and maybe again as an event).
        self.bus.snapshot.send_replace(snap.clone());
        for status in &snap.forwards {
            let key = status.news();
            if self.published.get(&status.forward) != Some(&key) {
                self.published.insert(status.forward.clone(), key);
                let _ = self.bus.events.send(Event::Forward {
                    status: Box::new(status.clone()),
                });
            }
        }
    }

    /// Refreshes the snapshot's counters when traffic moved, without events.
    fn refresh_counters(&mut self) {
        let current = self.bus.snapshot.borrow().clone();
        let moved = self.workers.values().any(|w| {
            let s = w.shared.status();
            current.get(&s.forward).is_none_or(|c| {
                c.bytes_in != s.bytes_in
                    || c.bytes_out != s.bytes_out
                    || c.connections != s.connections
                    || c.total_connections != s.total_connections
            })
        });
        if moved {
            self.publish();
        }
    }

    /// Hands a worker the change feed of its namespace, starting it on first use.
    fn feed(&mut self, req: WatchRequest) {
        let key = (req.context.clone(), req.client_id, req.namespace.clone());
        let feed = self.feeds.entry(key).or_insert_with(|| {
            let (tx, _) = watch::channel(0u64);
            let token = self.token.child_token();
            let span = debug_span!("feed", context = %req.context, namespace = %req.namespace);
            tokio::spawn(
                watch_namespace(
                    req.client.clone(),
                    req.namespace.clone(),
                    tx.clone(),
                    token.clone(),
                )
                .instrument(span),
            );
            Feed {
                tx,
                _guard: token.drop_guard(),
            }
        });
        let _ = req.reply.send(feed.tx.subscribe());
    }
}

async fn stop_worker(w: Arc<WorkerHandle>) {
    match Arc::try_unwrap(w) {
        Ok(handle) => handle.stop().await,
        // A dial holds a clone for a moment: cancel now, the task ends on its own.
        Err(shared) => shared.cancel(),
    }
}

/// Bumps `tx` on every pod or EndpointSlice event in `namespace` until cancelled.
async fn watch_namespace(
    client: kube::Client,
    namespace: String,
    tx: watch::Sender<u64>,
    token: CancellationToken,
) {
    let pods = watcher(
        Api::<Pod>::namespaced(client.clone(), &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.is_ok());
    let slices = watcher(
        Api::<EndpointSlice>::namespaced(client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.is_ok());
    let events = futures::stream::select(pods, slices);
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            e = events.next() => match e {
                Some(true) => tx.send_modify(|n| *n = n.wrapping_add(1)),
                Some(false) => {}
                None => return,
            },
        }
    }
}
