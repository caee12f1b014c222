//! The app's core, with no Tauri in it: the store, the engine, the demo cluster and every
//! command's logic. The Tauri layer (`commands`, `bridge`, `tray`) only adapts this to IPC,
//! so all of it is tested headless against the fake cluster.
//!
//! The store is the source of truth. A change is made under the store's lock (validated,
//! atomic), numbered there, and handed to the engine as a revision it never runs older
//! than it has; the engine restarts only what changed. The CLI may change the store at
//! any time; [`AppCore::reload_store`] picks that up through the same path.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_core::cluster::KubeconfigSource;
use ferry_core::config::import;
use ferry_core::config::{Config, Forward, Profile};
use ferry_core::events::Snapshot;
use ferry_core::store::{Store, StoreDoc};
use ferry_core::{Engine, EngineOptions, Revision};
use ferry_fakecluster::FakeCluster;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{AppError, ErrorCode};
use crate::logs::{LogLine, Logs};
use crate::prefs::{PREFS_FILE, Prefs, PrefsDoc, WindowGeometry};
use crate::settings::{MOVED_TO_PREFS, Settings};

/// The context the demo cluster's kubeconfig names.
pub const DEMO_CONTEXT: &str = "ferry-fake";

/// How long the window must stay still before its size and position are saved: a drag
/// reports dozens of moves a second, and only where it ends matters.
pub const WINDOW_STILL: Duration = Duration::from_millis(500);

/// How the app is started.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// The store file; default [`Store::default_path`].
    pub store: Option<PathBuf>,
    /// Where the app keeps its own files (logs, the demo kubeconfig).
    pub data_dir: PathBuf,
    /// Where the app keeps its preferences (`prefs.json`), apart from the store the CLI
    /// shares.
    pub config_dir: PathBuf,
    /// Start the demo cluster and make sure the demo forwards exist.
    pub demo: bool,
    /// The kubeconfig files before the settings' extra ones; default: what kubectl reads.
    pub kubeconfig: Option<KubeconfigSource>,
}

/// What the app calls itself on its control endpoint (`ferry status`, a second launch).
pub const APP_KIND: &str = "the Ferry app";

/// Everything the UI shows, but the counters' churn.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AppState {
    pub config: Config,
    pub settings: Settings,
    /// The app's own preferences (theme, grouping, the list's last view).
    pub prefs: Prefs,
    /// The starred forwards (each one in `config`), in the order they were starred.
    pub favourites: Vec<String>,
    pub snapshot: Arc<Snapshot>,
    pub banner: Option<String>,
    pub kubeconfig: KubeconfigInfo,
    pub demo: bool,
    pub store_path: PathBuf,
    /// Whether the desktop shows tray icons; without one, closing the window quits.
    pub tray: bool,
    /// Per namespace the saved forwards use, the forwards its objects declare that none of
    /// the saved ones does (the Add button's badge); empty until the cluster was asked.
    pub declared: Vec<crate::discover::DeclaredNew>,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct KubeconfigInfo {
    pub found: bool,
    pub paths: Vec<PathBuf>,
    pub message: Option<String>,
}

/// One field's problem, for inline validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
    /// `invalid`, or `conflict` when another forward has the name or the port.
    pub code: ErrorCode,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Contexts {
    pub contexts: Vec<String>,
    pub current: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct TargetPort {
    pub port: u16,
    pub name: Option<String>,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct TargetInfo {
    pub name: String,
    pub ports: Vec<TargetPort>,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct TestResult {
    pub ok: bool,
    pub ms: u64,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    Auto,
    Kubectl,
    Kftray,
    Kportal,
    Ferry,
}

#[derive(Debug, Clone, Default, Serialize, ts_rs::TS)]
pub struct ImportReport {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    /// Remarks about no one entry (`line 3: …`); each entry's own are in `entries`.
    pub warnings: Vec<String>,
    /// One per forward in `added`, in that order.
    pub entries: Vec<ImportEntry>,
}

/// One imported forward, as it will be saved.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ImportEntry {
    /// With the name given, its context pinned and a pods' port settled.
    pub forward: Forward,
    /// The name the text asked for.
    pub wanted: String,
    /// Why the name is not `wanted`; `None` when it is.
    pub renamed: Option<RenameReason>,
    /// This entry's notes, without its name.
    pub notes: Vec<String>,
}

/// Why an imported forward got another name than it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum RenameReason {
    /// A saved forward has the name.
    Config,
    /// An earlier entry of the same text has it.
    Paste,
}

/// Formats the app exports forwards in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Ferry's own config (YAML), which imports back exactly.
    Ferry,
    /// kftray's JSON (services only).
    Kftray,
}

#[derive(Debug, Clone, Default, Serialize, ts_rs::TS)]
pub struct ExportReport {
    pub text: String,
    /// What could not be carried over, per forward.
    pub notes: Vec<String>,
}

/// What the engine should run, as last read or written: the store, its revision, and the
/// demo cluster's kubeconfig. Changed only under the store's file lock (or, for the demo,
/// on its own), and numbered in that order.
struct Current {
    doc: StoreDoc,
    /// Increases with every change; the engine never goes back to an earlier one.
    revision: u64,
    demo_kubeconfig: Option<PathBuf>,
}

/// The app's state and logic. Shared as `Arc<AppCore>`.
///
/// One path from the store to the engine: every change (a command, a write by another
/// program seen by [`AppCore::reload_store`], the demo starting) is numbered while the
/// store's lock is held and handed to the engine as a [`Revision`], which the engine never
/// runs older than it has. The engine lives from launch to [`AppCore::shutdown`] and is
/// never behind a lock: a slow dial, apply or shutdown never makes another command wait.
pub struct AppCore {
    /// Serves `ferry status` until shutdown (`None`: another process serves it).
    control: Mutex<Option<ferry_core::control::ControlServer>>,
    store: Store,
    data_dir: PathBuf,
    base_kubeconfig: KubeconfigSource,
    /// Held only to read or swap; never across `.await` or file I/O of its own.
    current: Mutex<Current>,
    banner: Mutex<Option<String>>,
    /// The preferences as last written (or read); held only to read or swap.
    prefs: Mutex<PrefsDoc>,
    /// `prefs.json` in the app's config directory.
    prefs_path: PathBuf,
    /// Held by the one writing `prefs.json` (the change, then the write), so writes land in
    /// the order they were made. Readers never take it.
    prefs_writer: Mutex<()>,
    /// The window's latest size and position, not yet saved.
    window_pending: Mutex<Option<WindowGeometry>>,
    /// Told of every window move or resize; the saver waits for [`WINDOW_STILL`] of quiet.
    window_moved: Arc<tokio::sync::Notify>,
    engine: Engine,
    /// Bumped whenever config, settings, banner or demo change.
    changed: watch::Sender<u64>,
    /// The demo cluster, once started; kept until shutdown.
    demo: Mutex<Option<FakeCluster>>,
    /// Set once the demo cluster has started: two clicks on "Try the demo" start it once
    /// (the second waits for the first's outcome; a failed start can be tried again).
    demo_started: tokio::sync::OnceCell<()>,
    logs: Arc<Logs>,
    /// Whether the desktop shows tray icons (the shell finds out; true until it does).
    tray: AtomicBool,
    /// The runtime the core's own tasks run on.
    runtime: tokio::runtime::Handle,
    /// Cancelled by `shutdown`: the core's tasks (the log follower, the bridge) end.
    stop: CancellationToken,
    /// The core's tasks; aborted by `shutdown` if they have not ended by then.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// New declared forwards per namespace, as the watch last counted them (see
    /// [`crate::discover::watch`]); held only to read or swap.
    declared_new: Mutex<Vec<crate::discover::DeclaredNew>>,
    /// The follower of the forward whose HTTP tab the window shows (see
    /// [`crate::inspect`]).
    follows: crate::inspect::Follows,
}

impl AppCore {
    /// Loads the store (keeping a corrupt one as a backup), starts the demo cluster when
    /// asked or when saved forwards use it, and starts the engine. Must be called within a
    /// Tokio runtime, on which the core's tasks then run.
    pub async fn start(options: AppOptions) -> Result<Arc<AppCore>, AppError> {
        // Ferry's TLS uses ring. Say so for the whole process, in case another dependency
        // also brings a provider (then rustls could not choose and clients would fail).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = Store::new(options.store.unwrap_or_else(Store::default_path));
        let (doc, recovered) = store.load_or_recover()?;
        let (_, settings_warning) = Settings::from_store(&doc.settings);
        let prefs_path = options.config_dir.join(PREFS_FILE);
        let loaded = PrefsDoc::load(&prefs_path);
        let mut prefs = loaded.doc;
        // The first start of a build with its own preferences takes the ones older builds
        // kept in the store's settings; later starts never look there again.
        if !loaded.existed {
            prefs.migrate(&doc.settings);
        }
        let mut banner = match recovered {
            Some(r) => Some(format!(
                "The saved forwards could not be read ({}). They were kept as {} and Ferry started empty.",
                r.reason,
                r.backup.display()
            )),
            None => settings_warning.or(loaded.problem),
        };
        let uses_demo = doc
            .config
            .forwards
            .iter()
            .any(|f| f.context.as_deref() == Some(DEMO_CONTEXT));
        let mut demo = None;
        if options.demo || uses_demo {
            match start_demo_cluster(&options.data_dir).await {
                Ok(started) => demo = Some(started),
                Err(e) => banner = Some(format!("The demo cluster could not start: {e}")),
            }
        }
        let base_kubeconfig = options
            .kubeconfig
            .unwrap_or_else(KubeconfigSource::from_env);
        let current = Current {
            doc,
            revision: 0,
            demo_kubeconfig: demo.as_ref().map(|(_, path)| path.clone()),
        };
        let demo_running = demo.is_some();
        let kubeconfig = kubeconfig_source(&base_kubeconfig, &current);
        let engine = Engine::start(
            current.doc.config.clone(),
            EngineOptions {
                kubeconfig,
                ..EngineOptions::default()
            },
        )?;
        // The control endpoint of the store's forwards (`ferry status`, and the guard that
        // keeps `ferry up` from running them twice).
        let source = ferry_core::control::source_name(Some(store.path()));
        // It also answers `ferry inspect NAME --follow`: the engine is the core's for its
        // whole life (a demo start or a reload only applies a new config to it), and the
        // closure holds only its command channel.
        let control = match ferry_core::control::ControlServer::start_with(
            ferry_core::control::endpoint_path(&source),
            ferry_core::control::Runner::this_process(APP_KIND, &source),
            engine.subscriber(),
            engine.inspector(),
        )
        .await
        {
            Ok(server) => Some(server),
            Err(ferry_core::control::ControlError::AlreadyRunning(other)) => {
                banner = Some(format!(
                    "{other} already runs these forwards: forwards it holds cannot listen here. Stop it (Ctrl-C where it runs) and press Retry on each forward."
                ));
                None
            }
            Err(ferry_core::control::ControlError::Unsupported) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the control endpoint is not served: `ferry status` will not see the app");
                None
            }
        };
        let core = Arc::new(AppCore {
            control: Mutex::new(control),
            store,
            data_dir: options.data_dir,
            base_kubeconfig,
            current: Mutex::new(current),
            banner: Mutex::new(banner.filter(|b| !prefs.dismissed(b))),
            prefs: Mutex::new(prefs),
            prefs_path,
            prefs_writer: Mutex::new(()),
            window_pending: Mutex::new(None),
            window_moved: Arc::new(tokio::sync::Notify::new()),
            engine,
            changed: watch::channel(0).0,
            demo: Mutex::new(demo.map(|(cluster, _)| cluster)),
            demo_started: tokio::sync::OnceCell::new_with(demo_running.then_some(())),
            logs: Arc::new(Logs::default()),
            tray: AtomicBool::new(true),
            runtime: tokio::runtime::Handle::current(),
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            declared_new: Mutex::new(Vec::new()),
            follows: crate::inspect::Follows::default(),
        });
        core.spawn(follow_logs(
            core.engine.subscribe(),
            core.logs.clone(),
            core.stop.clone(),
        ));
        core.spawn(save_window_when_still(
            Arc::downgrade(&core),
            core.window_moved.clone(),
        ));
        if !loaded.existed {
            core.take_over_moved_settings().await;
        }
        core.pin_contexts().await?;
        if options.demo {
            core.add_demo_forwards().await?;
        }
        Ok(core)
    }

    /// Runs `task` on the core's runtime until it ends or the core shuts down.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        let handle = self.runtime.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = task => {}
            }
        });
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Cancelled when the core shuts down.
    pub fn stopped(&self) -> &CancellationToken {
        &self.stop
    }

    /// Whether this process serves the store's control endpoint (false: another process
    /// held it as this one started).
    pub fn serves_control(&self) -> bool {
        self.control.lock().is_some()
    }

    /// Answers the control endpoint's `show` (a second launch of the app) with `show`.
    /// False when the endpoint is not served (another process holds it).
    pub fn answer_show(&self, show: impl Fn() + Send + Sync + 'static) -> bool {
        match self.control.lock().as_ref() {
            Some(control) => {
                control.answer_show(show);
                true
            }
            None => false,
        }
    }

    // === state ===

    /// Records whether the desktop shows tray icons (the window says what closing does).
    pub fn set_tray_available(&self, available: bool) {
        let before = self.tray.swap(available, Ordering::Relaxed);
        if before != available {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Where the app keeps its own files (logs, the demo's kubeconfig, the notification icon).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn store_path(&self) -> &Path {
        self.store.path()
    }

    pub fn settings(&self) -> Settings {
        Settings::from_store(&self.current.lock().doc.settings).0
    }

    pub fn config(&self) -> Config {
        self.current.lock().doc.config.clone()
    }

    pub fn demo_running(&self) -> bool {
        self.demo.lock().is_some()
    }

    /// Bumped on every change of what [`AppCore::state`] shows apart from the snapshot.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn logs(&self) -> &Arc<Logs> {
        &self.logs
    }

    /// Shows `banner`, unless the user closed that one before.
    fn set_banner(&self, banner: Option<String>) {
        let banner = banner.filter(|b| !self.prefs.lock().dismissed(b));
        *self.banner.lock() = banner;
        self.changed.send_modify(|n| *n += 1);
    }

    /// Every forward's state now (empty once shut down).
    pub async fn snapshot(&self) -> Arc<Snapshot> {
        self.engine.snapshot().await.unwrap_or_default()
    }

    /// The engine's events, and the snapshots it publishes (with counters while traffic
    /// moves).
    pub fn subscribe(&self) -> ferry_core::events::Subscription {
        self.engine.subscribe()
    }

    /// The forwards that are up (listening or on their way), by name: what a restart cuts.
    pub async fn listening_forwards(&self) -> Vec<String> {
        use ferry_core::events::ForwardState;
        self.snapshot()
            .await
            .forwards
            .iter()
            .filter(|f| !matches!(f.state, ForwardState::Disabled | ForwardState::Error))
            .map(|f| f.forward.clone())
            .collect()
    }

    /// The configuration the engine runs (`None` once shut down).
    pub async fn running_config(&self) -> Option<Arc<Config>> {
        self.engine.config().await.ok()
    }

    /// Everything the window shows, with the engine's snapshot now.
    pub async fn state(&self) -> AppState {
        self.state_with(self.snapshot().await)
    }

    /// Everything the window shows, with `snapshot` (the bridge's, from the engine's
    /// subscription).
    pub fn state_with(&self, snapshot: Arc<Snapshot>) -> AppState {
        let (config, settings, paths) = {
            let current = self.current.lock();
            (
                current.doc.config.clone(),
                Settings::from_store(&current.doc.settings).0,
                kubeconfig_source(&self.base_kubeconfig, &current),
            )
        };
        let prefs = self.prefs.lock().prefs;
        let favourites = favourites_in(&self.prefs.lock(), &config);
        // The engine's client pool keeps the parsed kubeconfig (re-read only when the files
        // change): ask it rather than parsing the files on every state change.
        let (found, message) = match self.clients().contexts() {
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        AppState {
            config,
            settings,
            prefs,
            favourites,
            snapshot,
            banner: self.banner.lock().clone(),
            kubeconfig: KubeconfigInfo {
                found,
                paths: paths.paths().to_vec(),
                message,
            },
            demo: self.demo_running(),
            store_path: self.store.path().to_path_buf(),
            tray: self.tray.load(Ordering::Relaxed),
            declared: self.declared_new.lock().clone(),
        }
    }

    /// Hides the banner, and that banner for good: the preferences remember it.
    pub fn dismiss_banner(&self) {
        let banner = self.banner.lock().take();
        if let Some(banner) = banner
            && let Err(e) = self.change_prefs(|p| {
                p.dismiss(&banner);
                Ok(true)
            })
        {
            tracing::warn!(error = %e, "the closed banner is not remembered");
        }
        self.set_banner(None);
    }

    // === the store and the engine ===

    /// Numbers `current` as changed and says what the engine should now run.
    fn next_revision(&self, current: &mut Current) -> Revision {
        current.revision += 1;
        Revision {
            number: current.revision,
            config: current.doc.config.clone(),
            kubeconfig: Some(kubeconfig_source(&self.base_kubeconfig, current)),
        }
    }

    /// Hands a revision to the engine (which ignores it when it runs a later one).
    async fn run(&self, revision: Revision) -> Result<(), AppError> {
        match self.engine.apply_revision(revision).await {
            Ok(_) => Ok(()),
            Err(ferry_core::EngineError::Stopped) => {
                Err(AppError::new(ErrorCode::Engine, "Ferry is shutting down"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Changes the store (validated, atomic), then has the engine run it.
    async fn modify<T>(
        &self,
        change: impl FnOnce(&mut StoreDoc) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let (out, revision) = self.write_store(change)?;
        self.changed.send_modify(|n| *n += 1);
        self.run(revision).await?;
        Ok(out)
    }

    /// Changes the store (see `ferry_core::store::Store::modify`) and keeps what was
    /// written, numbered while the store's lock is still held.
    fn write_store<T>(
        &self,
        change: impl FnOnce(&mut StoreDoc) -> Result<T, AppError>,
    ) -> Result<(T, Revision), AppError> {
        // The store's lock may be held by another program for a moment: wait for it off
        // the async workers' hands.
        tokio::task::block_in_place(|| {
            self.store.modify_then(change, |doc| {
                let mut current = self.current.lock();
                current.doc = doc.clone();
                self.next_revision(&mut current)
            })
        })
    }

    /// Re-reads the store (after another program, such as the CLI, changed it) and has
    /// the engine run it. Returns whether anything changed.
    pub async fn reload_store(&self) -> Result<bool, AppError> {
        let revision = tokio::task::block_in_place(|| {
            self.store.load_then(|doc| {
                let mut current = self.current.lock();
                if current.doc == doc {
                    return None;
                }
                let gone: Vec<String> = current
                    .doc
                    .config
                    .forwards
                    .iter()
                    .filter(|f| !doc.config.forwards.iter().any(|x| x.name == f.name))
                    .map(|f| f.name.clone())
                    .collect();
                current.doc = doc;
                Some((self.next_revision(&mut current), gone))
            })
        })?;
        let Some((revision, gone)) = revision else {
            return Ok(false);
        };
        // Forwards another program deleted (or renamed) lose their stars.
        self.drop_favourites(&gone);
        self.changed.send_modify(|n| *n += 1);
        self.run(revision).await?;
        Ok(true)
    }

    /// Stops every forward, the core's tasks and the demo cluster. Nothing starts the
    /// engine again: later commands answer that Ferry is shutting down.
    pub async fn shutdown(&self) {
        self.flush_window();
        let control = self.control.lock().take();
        drop(control);
        self.stop.cancel();
        self.engine.shutdown().await;
        self.demo.lock().take();
        for task in std::mem::take(&mut *self.tasks.lock()) {
            task.abort();
        }
    }
    // === forwards ===

    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), AppError> {
        self.set_all_enabled(&[name.to_string()], enabled).await
    }

    pub async fn set_all_enabled(&self, names: &[String], enabled: bool) -> Result<(), AppError> {
        self.modify(|doc| {
            for name in names {
                doc.config.set_enabled(name, enabled)?;
            }
            Ok(())
        })
        .await
    }

    /// Adds a forward (`original` is `None`) or replaces the one named `original` (which
    /// may rename it; profiles follow the new name).
    pub async fn save_forward(
        &self,
        original: Option<&str>,
        forward: Forward,
    ) -> Result<(), AppError> {
        // A forward names its context: one that follows kubectl's current context would
        // move to another cluster on `kubectl config use-context`.
        let mut forward = forward;
        if forward.context.is_none() {
            forward.context = self.current_context().await;
        }
        let problems = self.validate_forward(original, &forward);
        if let Some(first) = problems.into_iter().next() {
            return Err(AppError {
                code: first.code,
                message: first.message,
                field: Some(first.field),
            });
        }
        let new_name = forward.name.clone();
        let ((), revision) =
            self.write_store(|doc| Ok(doc.config.put_forward(original, forward)?))?;
        // A renamed forward keeps its star, shown with the new name in the same state.
        if let Some(original) = original
            && let Err(e) = self.change_prefs(|p| Ok(p.rename_favourite(original, &new_name)))
        {
            tracing::warn!(error = %e, "the star did not follow the renamed forward to the preferences file");
        }
        self.changed.send_modify(|n| *n += 1);
        self.run(revision).await
    }

    /// Every problem `forward` would have if saved in place of `original`, with field
    /// paths relative to the forward (`local_port`, `health.interval`).
    /// Validates a forward as the UI sent it: one that cannot even be read is a problem on
    /// the field that cannot (see [`read_forward`]).
    pub fn validate_forward_value(
        &self,
        original: Option<&str>,
        forward: serde_json::Value,
    ) -> Vec<FieldProblem> {
        match read_forward(forward) {
            Ok(forward) => self.validate_forward(original, &forward),
            Err(e) => vec![FieldProblem {
                field: e.field.unwrap_or_else(|| "forward".into()),
                message: e.message,
                code: e.code,
            }],
        }
    }

    pub fn validate_forward(&self, original: Option<&str>, forward: &Forward) -> Vec<FieldProblem> {
        let mut config = self.config();
        if let Err(e) = config.put_forward(original, forward.clone()) {
            return vec![FieldProblem {
                field: e.field.unwrap_or_else(|| "name".into()),
                message: e.message,
                code: ErrorCode::of_problem(e.kind),
            }];
        }
        // Validation blames the later of two clashing forwards: put this one last.
        let index = config.forwards.iter().position(|f| f.name == forward.name);
        if let Some(i) = index {
            let f = config.forwards.remove(i);
            config.forwards.push(f);
        }
        let prefix = format!("forwards[{}].", config.forwards.len() - 1);
        let Err(ferry_core::config::ConfigError::Invalid(problems)) = config.validate() else {
            return Vec::new();
        };
        problems
            .into_iter()
            .filter_map(|p| {
                let field = p.path.strip_prefix(&prefix)?.to_string();
                let code = ErrorCode::of_problem(p.kind);
                Some(FieldProblem {
                    field,
                    message: readable(&p.message),
                    code,
                })
            })
            .collect()
    }

    /// Deletes a forward (from its profiles too) and its star.
    pub async fn delete_forward(&self, name: &str) -> Result<(), AppError> {
        let ((), revision) = self.write_store(|doc| {
            doc.config.remove_forward(name)?;
            Ok(())
        })?;
        self.drop_favourites(&[name.to_string()]);
        self.changed.send_modify(|n| *n += 1);
        self.run(revision).await
    }

    // === profiles ===

    pub async fn save_profile(
        &self,
        original: Option<&str>,
        profile: Profile,
    ) -> Result<(), AppError> {
        self.modify(|doc| {
            let taken = doc
                .config
                .profiles
                .iter()
                .any(|p| p.name == profile.name && Some(p.name.as_str()) != original);
            if taken {
                return Err(AppError {
                    code: ErrorCode::Conflict,
                    message: format!("a profile named {:?} already exists", profile.name),
                    field: Some("name".into()),
                });
            }
            for (i, f) in profile.forwards.iter().enumerate() {
                if !doc.config.forwards.iter().any(|x| &x.name == f) {
                    return Err(AppError::invalid(
                        format!("forwards[{i}]"),
                        format!("there is no forward named {f:?}"),
                    ));
                }
            }
            match original {
                Some(original) => {
                    let slot = doc
                        .config
                        .profiles
                        .iter_mut()
                        .find(|p| p.name == original)
                        .ok_or_else(|| no_profile(original))?;
                    *slot = profile;
                }
                None => doc.config.profiles.push(profile),
            }
            Ok(())
        })
        .await
        .map_err(|mut e| {
            // The config's rules name `profiles[N].name`; the dialog knows it as `name`.
            if let Some(field) = e.field.as_deref()
                && let Some(rest) = field.strip_prefix("profiles[")
                && let Some((_, inner)) = rest.split_once("].")
            {
                e.field = Some(inner.to_string());
            }
            e
        })
    }

    pub async fn delete_profile(&self, name: &str) -> Result<(), AppError> {
        self.modify(|doc| {
            doc.config.remove_profile(name)?;
            Ok(())
        })
        .await
    }

    /// Enables (or disables) every forward of a profile; other forwards are untouched.
    pub async fn set_profile_active(&self, name: &str, active: bool) -> Result<(), AppError> {
        let names = self
            .config()
            .profiles
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.forwards.clone())
            .ok_or_else(|| no_profile(name))?;
        self.set_all_enabled(&names, active).await
    }

    // === settings ===

    /// Saves the settings; a change of kubeconfig files reaches the running engine
    /// (forwards resolve again; none restarts).
    pub async fn save_settings(&self, settings: Settings) -> Result<(), AppError> {
        settings.validate()?;
        let value = serde_json::to_value(&settings)
            .map_err(|e| AppError::new(ErrorCode::Store, e.to_string()))?;
        {
            let mut banner = self.banner.lock();
            if banner.as_deref().is_some_and(|b| b.contains("settings")) {
                *banner = None;
            }
        }
        self.modify(|doc| {
            doc.settings = value;
            Ok(())
        })
        .await
    }

    // === preferences ===

    /// The preferences the window shows.
    pub fn prefs(&self) -> Prefs {
        self.prefs.lock().prefs
    }

    /// The starred forwards (each one saved), in the order they were starred.
    pub fn favourites(&self) -> Vec<String> {
        let config = self.config();
        favourites_in(&self.prefs.lock(), &config)
    }

    /// Saves the window's preferences (theme, grouping, the list's last view).
    pub async fn save_prefs(&self, prefs: Prefs) -> Result<(), AppError> {
        self.change_prefs(|p| {
            // Written even when unchanged: a file with keys that could not be read is
            // then whole again.
            p.prefs = prefs;
            Ok(true)
        })?;
        {
            let mut banner = self.banner.lock();
            if banner
                .as_deref()
                .is_some_and(|b| b.contains("app's preferences"))
            {
                *banner = None;
            }
        }
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Stars (or unstars) a saved forward.
    pub async fn set_favourite(&self, name: &str, favourite: bool) -> Result<(), AppError> {
        if !self.config().forwards.iter().any(|f| f.name == name) {
            let mut e = no_forward(name);
            e.field = Some("name".into());
            return Err(e);
        }
        self.change_prefs(|p| Ok(p.set_favourite(name, favourite)))?;
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The window's last size and position, if it has been open.
    pub fn window(&self) -> Option<WindowGeometry> {
        (*self.window_pending.lock()).or(self.prefs.lock().window)
    }

    /// The window moved or was resized: its geometry is saved once it has been still for
    /// [`WINDOW_STILL`] (or when it closes, or Ferry quits).
    pub fn window_moved(&self, now: WindowGeometry) {
        let previous = self.window();
        *self.window_pending.lock() = Some(WindowGeometry::after(previous, now));
        self.window_moved.notify_one();
    }

    /// Saves the window's geometry now, if it changed since last saved.
    pub fn flush_window(&self) {
        let Some(window) = self.window_pending.lock().take() else {
            return;
        };
        let saved = self.change_prefs(|p| {
            let changed = p.window != Some(window);
            p.window = Some(window);
            Ok(changed)
        });
        if let Err(e) = saved {
            tracing::warn!(error = %e, "the window's size and position were not saved");
        }
    }

    /// Drops the stars of forwards that are gone (a failure to write is logged: the star
    /// is gone from what the window shows either way).
    fn drop_favourites(&self, gone: &[String]) {
        if let Err(e) = self.change_prefs(|p| Ok(p.drop_favourites(gone))) {
            tracing::warn!(error = %e, "the stars of deleted forwards stay in the preferences file");
        }
    }

    /// Changes the preferences and writes them (atomically), in the order changes are
    /// made; `change` says whether it changed anything (nothing is written if not).
    /// Nothing changes when `change` or the write fails. Does not tell the window: the
    /// caller does, for what it shows.
    fn change_prefs(
        &self,
        change: impl FnOnce(&mut PrefsDoc) -> Result<bool, AppError>,
    ) -> Result<(), AppError> {
        tokio::task::block_in_place(|| {
            let _writer = self.prefs_writer.lock();
            let mut next = self.prefs.lock().clone();
            if !change(&mut next)? {
                return Ok(());
            }
            write_prefs(&self.prefs_path, &next)?;
            *self.prefs.lock() = next;
            Ok(())
        })
    }

    /// The first start of a build with its own preferences: writes them (with what was
    /// taken from the store's settings), then takes those keys out of the settings, so
    /// the store holds what the CLI and the app share and nothing else. Were the file not
    /// written, the settings keep them for the next start to try again.
    async fn take_over_moved_settings(&self) {
        let doc = self.prefs.lock().clone();
        let written = tokio::task::block_in_place(|| write_prefs(&self.prefs_path, &doc));
        if let Err(e) = written {
            tracing::warn!(error = %e, "the preferences file could not be written");
            return;
        }
        let moved = self
            .current
            .lock()
            .doc
            .settings
            .as_object()
            .is_some_and(|m| MOVED_TO_PREFS.iter().any(|k| m.contains_key(*k)));
        if !moved {
            return;
        }
        let cleared = self
            .modify(|doc| {
                if let Some(map) = doc.settings.as_object_mut() {
                    for key in MOVED_TO_PREFS {
                        map.remove(key);
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = cleared {
            tracing::warn!(error = %e, "the store still holds the theme and grouping; they are read past");
        }
    }

    // === the cluster ===

    /// The engine's client pool: the same clients and kubeconfig files the forwards use.
    fn clients(&self) -> &Arc<ferry_core::cluster::ClientPool> {
        self.engine.clients()
    }

    // === HTTP inspection ===

    /// The running inspection of a forward whose config says `inspect`.
    async fn inspection(
        &self,
        forward: &str,
    ) -> Result<Arc<ferry_core::inspect::Inspection>, AppError> {
        if !self.config().forwards.iter().any(|f| f.name == forward) {
            return Err(no_forward(forward));
        }
        Ok(self.engine.inspection(forward).await?)
    }

    /// Where the forward listens now; an error while it does not.
    async fn listening_at(&self, forward: &str) -> Result<std::net::SocketAddr, AppError> {
        self.snapshot()
            .await
            .get(forward)
            .and_then(|s| s.local)
            .ok_or_else(|| {
                AppError::new(
                    crate::error::ErrorCode::Engine,
                    format!("{forward} is not listening now: switch it on first"),
                )
            })
    }

    /// The exchanges the forward's inspection keeps, oldest first.
    pub async fn inspect_exchanges(
        &self,
        forward: &str,
    ) -> Result<crate::inspect::Exchanges, AppError> {
        Ok(crate::inspect::kept(&*self.inspection(forward).await?))
    }

    /// The exchanges kept now, and a follower (one of the core's tasks, replacing any
    /// other) that hands every later one to `sink` in batches until
    /// [`AppCore::unfollow_exchanges`], shutdown, or the inspection ends.
    pub async fn follow_exchanges(
        &self,
        forward: &str,
        sink: crate::inspect::Sink,
    ) -> Result<crate::inspect::Exchanges, AppError> {
        let inspection = match self.inspection(forward).await {
            Ok(i) => i,
            Err(e) => {
                self.follows.stop();
                return Err(e);
            }
        };
        let stop = self.follows.replace(forward);
        let (now, task) = crate::inspect::follow(forward.to_string(), inspection, sink, stop);
        self.spawn(task);
        Ok(now)
    }

    /// Ends the window's follower (its HTTP tab or the window closed).
    pub fn unfollow_exchanges(&self) {
        self.follows.stop();
    }

    /// The forward the window follows now, if any.
    pub fn following(&self) -> Option<String> {
        self.follows.following()
    }

    /// Sends a recorded request again through the forward and returns the answer.
    pub async fn replay_exchange(
        &self,
        forward: &str,
        id: u64,
    ) -> Result<crate::inspect::Replayed, AppError> {
        let inspection = self.inspection(forward).await?;
        let exchange = crate::inspect::exchange(&inspection, id)?;
        let local = self.listening_at(forward).await?;
        crate::inspect::replay(&inspection, &exchange, local).await
    }

    /// A recorded request as a `curl` line through the forward's local address.
    pub async fn exchange_curl(&self, forward: &str, id: u64) -> Result<String, AppError> {
        let inspection = self.inspection(forward).await?;
        let exchange = crate::inspect::exchange(&inspection, id)?;
        let local = self.listening_at(forward).await?;
        crate::inspect::curl(&exchange, local)
    }

    /// The kept exchanges (all, or those of `ids`) as a HAR 1.2 document for the window
    /// to save.
    pub async fn export_har(
        &self,
        forward: &str,
        ids: Option<&[u64]>,
    ) -> Result<crate::inspect::HarExport, AppError> {
        let inspection = self.inspection(forward).await?;
        let local = self.listening_at(forward).await.ok();
        crate::inspect::har(forward, &inspection, ids, local)
    }

    /// Forgets the forward's kept exchanges.
    pub async fn clear_exchanges(&self, forward: &str) -> Result<(), AppError> {
        self.inspection(forward).await?.clear();
        Ok(())
    }

    /// The engine's client pool, to use without holding the core.
    pub(crate) fn client_pool(&self) -> Arc<ferry_core::cluster::ClientPool> {
        self.clients().clone()
    }

    /// What the objects of a namespace (the context's own when none is named, or every
    /// namespace) declare, each marked with the saved forward that does it; the others
    /// named and numbered so that `save_forward` takes them as they are (see
    /// [`crate::discover`]).
    pub async fn discover_forwards(
        &self,
        context: Option<&str>,
        namespace: Option<&str>,
        all_namespaces: bool,
    ) -> Result<crate::discover::DiscoverReport, AppError> {
        let scope = crate::discover::scope(namespace, all_namespaces)?;
        let context = context.map(str::trim).filter(|c| !c.is_empty());
        let pool = self.client_pool();
        let found = ferry_core::cluster::discover::discover(&pool, context, &scope)
            .await
            .map_err(|e| AppError::cluster(e.to_string()))?;
        // The config as it is once the cluster has answered.
        let config = self.config();
        Ok(crate::discover::report(
            &config,
            found,
            ferry_core::ports::is_free,
        ))
    }

    /// Starts counting what the namespaces of the saved forwards declare that the user
    /// does not have (`AppState::declared`), as one of the core's tasks.
    pub fn watch_declared(self: &Arc<Self>) {
        self.spawn(crate::discover::watch(Arc::downgrade(self)));
    }

    /// Keeps the watch's count; the window hears of a change.
    pub(crate) fn set_declared_new(&self, counts: Vec<crate::discover::DeclaredNew>) {
        {
            let mut current = self.declared_new.lock();
            if *current == counts {
                return;
            }
            *current = counts;
        }
        self.changed.send_modify(|n| *n += 1);
    }

    async fn client(
        &self,
        context: Option<&str>,
    ) -> Result<ferry_core::cluster::ContextClient, AppError> {
        self.clients()
            .client(context)
            .await
            .map_err(|e| AppError::cluster(e.to_string()))
    }

    /// kubectl's current context now, if the kubeconfig names one.
    async fn current_context(&self) -> Option<String> {
        self.list_contexts().await.ok().and_then(|c| c.current)
    }

    /// Saved forwards that name no context follow kubectl's current context, so switching
    /// it moves them to another cluster: on first load they are pinned to the current
    /// context, once, and the banner says so.
    async fn pin_contexts(&self) -> Result<(), AppError> {
        if self.config().forwards.iter().all(|f| f.context.is_some()) {
            return Ok(());
        }
        let Some(current) = self.current_context().await else {
            return Ok(());
        };
        let pinned = self
            .modify(|doc| Ok(doc.config.pin_contexts(&current)))
            .await?;
        if !pinned.is_empty() {
            let notice = format!(
                "{} saved forward{} ({}) named no context and followed kubectl's current context; {} now name{} `{current}`, so switching contexts no longer moves them. Edit a forward to choose another.",
                pinned.len(),
                if pinned.len() == 1 { "" } else { "s" },
                pinned.join(", "),
                if pinned.len() == 1 { "it" } else { "they" },
                if pinned.len() == 1 { "s" } else { "" },
            );
            let banner = match self.banner.lock().take() {
                Some(earlier) => format!("{earlier} {notice}"),
                None => notice,
            };
            self.set_banner(Some(banner));
        }
        Ok(())
    }

    pub async fn list_contexts(&self) -> Result<Contexts, AppError> {
        let (contexts, current) = self
            .clients()
            .contexts()
            .map_err(|e| AppError::cluster(e.to_string()))?;
        Ok(Contexts { contexts, current })
    }

    pub async fn list_namespaces(&self, context: Option<&str>) -> Result<Vec<String>, AppError> {
        use k8s_openapi::api::core::v1::Namespace;
        let cc = self.client(context).await?;
        let api: kube::Api<Namespace> = kube::Api::all(cc.client);
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| cluster_error(&cc.context, e))?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }

    pub async fn list_targets(
        &self,
        context: Option<&str>,
        namespace: Option<&str>,
        kind: &str,
    ) -> Result<Vec<TargetInfo>, AppError> {
        use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
        use k8s_openapi::api::core::v1::{Pod, PodSpec, Service};
        let cc = self.client(context).await?;
        let ns = namespace.unwrap_or(&cc.namespace).to_string();
        let ctx = cc.context.clone();
        let err = |e| cluster_error(&ctx, e);
        fn pod_ports(spec: Option<&PodSpec>) -> Vec<TargetPort> {
            spec.into_iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .map(|p| TargetPort {
                    port: u16::try_from(p.container_port).unwrap_or(0),
                    name: p.name.clone(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
                .collect()
        }
        let client = cc.client;
        let workload = |name: Option<String>, spec: Option<&PodSpec>| TargetInfo {
            name: name.unwrap_or_default(),
            ports: pod_ports(spec),
        };
        let mut out: Vec<TargetInfo> = match kind {
            "service" | "svc" => list_in::<Service>(client, &ns)
                .await
                .map_err(err)?
                .into_iter()
                .map(|s| TargetInfo {
                    name: s.metadata.name.unwrap_or_default(),
                    ports: s
                        .spec
                        .and_then(|s| s.ports)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| TargetPort {
                            port: u16::try_from(p.port).unwrap_or(0),
                            name: p.name,
                            protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
                        })
                        .collect(),
                })
                .collect(),
            "deployment" | "deploy" => list_in::<Deployment>(client, &ns)
                .await
                .map_err(err)?
                .into_iter()
                .map(|d| {
                    let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
                    workload(d.metadata.name.clone(), spec)
                })
                .collect(),
            "statefulset" | "sts" => list_in::<StatefulSet>(client, &ns)
                .await
                .map_err(err)?
                .into_iter()
                .map(|d| {
                    let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
                    workload(d.metadata.name.clone(), spec)
                })
                .collect(),
            "pod" | "po" => list_in::<Pod>(client, &ns)
                .await
                .map_err(err)?
                .into_iter()
                .map(|p| workload(p.metadata.name.clone(), p.spec.as_ref()))
                .collect(),
            other => {
                return Err(AppError::invalid(
                    "kind",
                    format!("`{other}` is not a kind; use service, deployment, statefulset or pod"),
                ));
            }
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// What the user may not do that a forward to a `kind` in `namespace` needs, as one
    /// sentence ("user `dev` cannot create pods/portforward in namespace `demo`; …"), or
    /// `None` when all is granted or the API server cannot say (the add dialog shows it
    /// under the target).
    pub async fn check_access(
        &self,
        context: Option<&str>,
        namespace: Option<&str>,
        kind: &str,
    ) -> Result<Option<String>, AppError> {
        let Some(needs) = ferry_core::cluster::access::needed_for_kind(kind) else {
            return Err(AppError::invalid(
                "kind",
                format!("`{kind}` is not a kind; use service, deployment, statefulset or pod"),
            ));
        };
        let cc = self.client(context).await?;
        let ns = namespace.unwrap_or(&cc.namespace).to_string();
        Ok(cc.access.check(&cc.client, &ns, &needs).await.sentence())
    }

    /// Checks a forward again now (the row's Retry): its pods are resolved again and its
    /// health probed at once, instead of at the next scheduled check.
    pub async fn retry_forward(&self, name: &str) -> Result<(), AppError> {
        self.engine.recheck_forward(name).await?;
        Ok(())
    }

    /// Opens a tunnel to the pod the forward's next connection would use, and closes it.
    pub async fn test_connection(&self, name: &str) -> Result<TestResult, AppError> {
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), self.engine.dial(name)).await;
        let ms = started.elapsed().as_millis() as u64;
        let pod = self.snapshot().await.get(name).and_then(|s| s.pod.clone());
        Ok(match result {
            Ok(Ok(_stream)) => TestResult {
                ok: true,
                ms,
                message: match pod {
                    Some(pod) => format!("Opened a tunnel to pod {pod} in {ms} ms."),
                    None => format!("Opened a tunnel in {ms} ms."),
                },
            },
            Ok(Err(ferry_core::EngineError::UnknownForward(n))) => return Err(no_forward(&n)),
            Ok(Err(e)) => TestResult {
                ok: false,
                ms,
                message: e.to_string(),
            },
            Err(_) => TestResult {
                ok: false,
                ms,
                message: "No tunnel within 10 s: the API server or the pod does not answer.".into(),
            },
        })
    }

    /// The forward as a `kubectl port-forward` command. A service forward to its pods'
    /// port (`pod_port`) has no kubectl equivalent on the service: it is written for the
    /// pod the forward uses now.
    pub async fn kubectl_command(&self, name: &str) -> Result<String, AppError> {
        let config = self.config();
        let f = config
            .forwards
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| no_forward(name))?;
        let pod_in_use = if f.pod_port && f.target.kind() == "service" {
            let snapshot = self.snapshot().await;
            match snapshot.get(name).and_then(|s| s.pod.clone()) {
                Some(pod) => Some(pod),
                None => {
                    return Err(AppError::invalid(
                        "name",
                        format!(
                            "{name} forwards to port {} of the pods behind {}, which kubectl reaches only through one pod; switch the forward on so Ferry knows which pod to name",
                            f.port, f.target
                        ),
                    ));
                }
            }
        } else {
            None
        };
        Ok(import::kubectl_command(f, pod_in_use.as_deref()))
    }

    pub fn forward_log(&self, name: &str) -> Vec<LogLine> {
        self.logs.lines(name)
    }

    /// A forward from a `kubectl port-forward` line, or its short form
    /// (`svc/echo 18080:80 -n demo`). Several ports give the first.
    pub fn parse_kubectl(&self, line: &str) -> Result<Forward, AppError> {
        let line = line.trim();
        if line.is_empty() {
            return Err(AppError::invalid(
                "line",
                "paste a command such as `kubectl port-forward svc/echo 18080:80 -n demo`",
            ));
        }
        let imported =
            import::kubectl_line(line).map_err(|e| AppError::invalid("line", e.message))?;
        let mut forward = imported
            .forwards
            .into_iter()
            .next()
            .ok_or_else(|| AppError::invalid("line", "the line names no port to forward"))?;
        // A name not yet taken.
        let mut taken = self.config().forwards.into_iter().map(|f| f.name).collect();
        forward.name = import::unique(&forward.name, &mut taken);
        Ok(forward)
    }

    /// A local port for a remote port: the remote port itself when it is 1024 or above
    /// and free (on loopback and in the config), else a free one from the system.
    pub fn suggest_local_port(&self, remote: u16) -> u16 {
        let config = self.config();
        let taken = |p: u16| config.forwards.iter().any(|f| f.local_port == p);
        let free = |p: u16| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, p))).is_ok();
        if remote >= 1024 && !taken(remote) && free(remote) {
            return remote;
        }
        // Try the remote port shifted into the user range first (80 → 8080), as people do.
        for candidate in [remote.saturating_add(8000), remote.saturating_add(10000)] {
            if candidate >= 1024 && !taken(candidate) && free(candidate) {
                return candidate;
            }
        }
        for _ in 0..16 {
            let Ok(listener) = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))) else {
                break;
            };
            if let Ok(addr) = listener.local_addr()
                && !taken(addr.port())
            {
                return addr.port();
            }
        }
        0
    }

    // === import ===

    pub async fn import_config(
        &self,
        text: &str,
        format: ImportFormat,
        dry_run: bool,
    ) -> Result<ImportReport, AppError> {
        let bad = |e: import::ImportError| {
            AppError::invalid("text", format!("{e}; nothing was imported"))
        };
        let format = match format {
            ImportFormat::Auto => import::detect(text, None),
            ImportFormat::Kubectl => import::Format::Kubectl,
            ImportFormat::Kftray => import::Format::Kftray,
            ImportFormat::Kportal => import::Format::Kportal,
            ImportFormat::Ferry => import::Format::Ferry,
        };
        let imported = import::read(text, format).map_err(bad)?;
        if imported.forwards.is_empty() {
            return Err(AppError::invalid(
                "text",
                "no forwards found; nothing was imported",
            ));
        }
        let mut imported = imported;
        imported.pin_context(self.current_context().await.as_deref());
        if imported.forwards.iter().any(|f| f.pod_port) {
            // kftray's and kportal's service ports are the pods': ask the cluster which
            // service port leads there (the preview too, so it shows what will be saved).
            let pool = self.clients().clone();
            ferry_core::cluster::settle_pod_ports(
                &pool,
                &mut imported,
                ferry_core::cluster::SETTLE_WITHIN,
            )
            .await;
        }
        // Renames before the merge are within the text; the merge adds those for names the
        // saved forwards have.
        let in_text = imported.renamed.len();
        let plan = |config: &Config| -> Result<(Config, ImportReport), AppError> {
            let (next, imported) = config.merged_with(imported.clone(), None)?;
            let (entries, warnings) = import_entries(&imported, in_text);
            Ok((
                next,
                ImportReport {
                    added: imported.forwards.iter().map(|f| f.name.clone()).collect(),
                    replaced: Vec::new(),
                    warnings,
                    entries,
                },
            ))
        };
        if dry_run {
            return Ok(plan(&self.config())?.1);
        }
        self.modify(|doc| {
            let (next, report) = plan(&doc.config)?;
            doc.config = next;
            Ok(report)
        })
        .await
    }

    // === export ===

    /// The saved forwards and profiles as text to save or share.
    pub fn export_config(&self, format: ExportFormat) -> Result<ExportReport, AppError> {
        let config = self.config();
        match format {
            ExportFormat::Ferry => Ok(ExportReport {
                text: config.to_yaml()?,
                notes: Vec::new(),
            }),
            ExportFormat::Kftray => {
                let (text, notes) = import::kftray_export(&config);
                Ok(ExportReport {
                    text: format!("{text}\n"),
                    notes,
                })
            }
        }
    }

    // === the demo ===

    /// Adds the demo forwards and profile, skipping any already there; a local port
    /// another forward uses is replaced by a free one.
    async fn add_demo_forwards(&self) -> Result<(), AppError> {
        let demo = Config::from_yaml(ferry_fakecluster::scenario::DEMO_FORWARDS)?;
        let ports: Vec<u16> = demo
            .forwards
            .iter()
            .map(|f| self.suggest_local_port(f.local_port))
            .collect();
        self.modify(|doc| {
            for (mut f, port) in demo.forwards.into_iter().zip(ports) {
                if doc.config.forwards.iter().any(|x| x.name == f.name) {
                    continue;
                }
                if doc
                    .config
                    .forwards
                    .iter()
                    .any(|x| x.local_port == f.local_port)
                {
                    f.local_port = port;
                }
                doc.config.forwards.push(f);
            }
            for p in demo.profiles {
                if !doc.config.profiles.iter().any(|x| x.name == p.name) {
                    doc.config.profiles.push(p);
                }
            }
            Ok(())
        })
        .await
    }

    /// Starts the demo cluster and adds its forwards (the empty state's button). The
    /// running engine takes the demo's kubeconfig as one more file; nothing restarts.
    pub async fn start_demo(&self) -> Result<(), AppError> {
        self.demo_started
            .get_or_try_init(|| async {
                let (cluster, kubeconfig) = start_demo_cluster(&self.data_dir).await?;
                *self.demo.lock() = Some(cluster);
                let revision = {
                    let mut current = self.current.lock();
                    current.demo_kubeconfig = Some(kubeconfig);
                    self.next_revision(&mut current)
                };
                self.changed.send_modify(|n| *n += 1);
                self.run(revision).await
            })
            .await?;
        self.add_demo_forwards().await
    }
}

/// The kubeconfig files the engine reads: kubectl's (or the ones the app was started
/// with), the settings' extra files, then the demo cluster's.
fn kubeconfig_source(base: &KubeconfigSource, current: &Current) -> KubeconfigSource {
    let mut paths = base.paths().to_vec();
    paths.extend(
        Settings::from_store(&current.doc.settings)
            .0
            .kubeconfig_paths,
    );
    paths.extend(current.demo_kubeconfig.iter().cloned());
    KubeconfigSource::from_paths(paths)
}

/// Starts the demo cluster and writes its kubeconfig into `data_dir`.
async fn start_demo_cluster(data_dir: &Path) -> Result<(FakeCluster, PathBuf), AppError> {
    let fail = |e: &dyn std::fmt::Display| {
        AppError::cluster(format!("the demo cluster could not start: {e}"))
    };
    let cluster = FakeCluster::start(ferry_fakecluster::Options::default())
        .await
        .map_err(|e| fail(&e))?;
    cluster.wait_pods_ready(Duration::from_secs(5)).await;
    let kubeconfig = data_dir.join("demo-kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig)
        .map_err(|e| fail(&e))?;
    Ok((cluster, kubeconfig))
}

/// The entries of an import, and the notes about no one entry: `imported` after the merge,
/// whose first `in_text` renames were made within the text and the rest for names saved
/// forwards have. A note belongs to an entry when it starts with one of the entry's names
/// (`echo: no context given; …`).
fn import_entries(imported: &import::Imported, in_text: usize) -> (Vec<ImportEntry>, Vec<String>) {
    let (paste, config) = imported
        .renamed
        .split_at(in_text.min(imported.renamed.len()));
    let mut claimed = vec![false; imported.notes.len()];
    let entries = imported
        .forwards
        .iter()
        .map(|f| {
            let mut names = vec![f.name.clone()];
            let mut renamed = None;
            if let Some((wanted, _)) = config.iter().find(|(_, given)| *given == f.name) {
                names.push(wanted.clone());
                renamed = Some(RenameReason::Config);
            }
            let last = names[names.len() - 1].clone();
            if let Some((wanted, _)) = paste.iter().find(|(_, given)| *given == last) {
                names.push(wanted.clone());
                renamed.get_or_insert(RenameReason::Paste);
            }
            let mut notes = Vec::new();
            for (i, n) in imported.notes.iter().enumerate() {
                if let Some(rest) = names
                    .iter()
                    .find_map(|name| n.strip_prefix(&format!("{name}: ")))
                {
                    notes.push(rest.to_string());
                    claimed[i] = true;
                }
            }
            ImportEntry {
                forward: f.clone(),
                wanted: names[names.len() - 1].clone(),
                renamed,
                notes,
            }
        })
        .collect();
    let rest = imported
        .notes
        .iter()
        .zip(claimed)
        .filter(|(_, claimed)| !claimed)
        .map(|(n, _)| n.clone())
        .collect();
    (entries, rest)
}

/// Records every engine event in the per-forward logs until the engine or the core stops
/// (the core's `spawn` ends it at shutdown).
async fn follow_logs(
    mut sub: ferry_core::events::Subscription,
    logs: Arc<Logs>,
    stop: CancellationToken,
) {
    loop {
        let update = tokio::select! {
            () = stop.cancelled() => return,
            u = sub.next() => u,
        };
        match update {
            Some(ferry_core::events::Update::Event(event)) => logs.record(&event),
            Some(ferry_core::events::Update::Resync(_)) => {}
            None => return,
        }
    }
}

// === helpers ===

/// A forward as the UI sent it. Read here rather than by the IPC layer, so that a value
/// the config cannot hold (a local port of 70000, a bind that is no IP address) is a
/// problem on its field (`local_port`, `health.interval`) instead of the IPC layer's own
/// rejection, which names no field.
pub fn read_forward(value: serde_json::Value) -> Result<Forward, AppError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        if field.is_empty() || field == "." {
            AppError::invalid("forward", format!("the forward cannot be read: {inner}"))
        } else {
            AppError::invalid(field.clone(), format!("{field} cannot be read: {inner}"))
        }
    })
}

/// Writes `prefs.json` atomically, making its directory when needed.
fn write_prefs(path: &Path, doc: &PrefsDoc) -> Result<(), AppError> {
    let failed = |e: std::io::Error| {
        AppError::new(
            ErrorCode::Store,
            format!("the preferences were not saved: {}: {e}", path.display()),
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    ferry_core::store::write_atomic(path, doc.render().as_bytes()).map_err(failed)
}

/// The starred forwards that are saved, in the order they were starred.
fn favourites_in(prefs: &PrefsDoc, config: &Config) -> Vec<String> {
    prefs
        .favourites
        .iter()
        .filter(|f| config.forwards.iter().any(|x| &x.name == *f))
        .cloned()
        .collect()
}

/// Saves the window's geometry once it has been still for [`WINDOW_STILL`]. Holds the
/// core weakly; ends with it (or at its shutdown, through [`AppCore::spawn`]).
async fn save_window_when_still(core: std::sync::Weak<AppCore>, moved: Arc<tokio::sync::Notify>) {
    loop {
        moved.notified().await;
        loop {
            tokio::select! {
                () = moved.notified() => {}
                () = tokio::time::sleep(WINDOW_STILL) => break,
            }
        }
        let Some(core) = core.upgrade() else { return };
        core.flush_window();
    }
}

fn no_forward(name: &str) -> AppError {
    AppError::not_found(format!("there is no forward named {name:?}"))
}

fn no_profile(name: &str) -> AppError {
    AppError::not_found(format!("there is no profile named {name:?}"))
}

/// A validation message without the config's indexes (`forwards[3] ("web")` → `"web"`).
fn readable(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("forwards[") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        match after.find("] (") {
            Some(j) if after[9..j].bytes().all(|b| b.is_ascii_digit()) => {
                out.push_str("forward (");
                rest = &after[j + 3..];
            }
            _ => {
                out.push_str("forwards[");
                rest = &after[9..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every object of kind `K` in `namespace`.
async fn list_in<K>(client: kube::Client, namespace: &str) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: kube::Api<K> = kube::Api::namespaced(client, namespace);
    Ok(api.list(&kube::api::ListParams::default()).await?.items)
}

fn cluster_error(context: &str, e: kube::Error) -> AppError {
    let why = match &e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    };
    AppError::cluster(format!("context {context:?}: {why}"))
}
