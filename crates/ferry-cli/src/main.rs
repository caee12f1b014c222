//! The headless `ferry` command: runs Ferry's engine without a window.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand, ValueEnum};
use ferry_core::cluster::KubeconfigSource;
use ferry_core::config::Config;
use ferry_core::engine::{Engine, EngineOptions};
use ferry_core::events::{Event, ForwardStatus, HealthState, Snapshot, Update};
use ferry_core::store::{FileLock, Store, StoreError, resolve_link, write_atomic};
use ferry_fakecluster::{FakeCluster, Options as FakeOptions};
use tracing_subscriber::EnvFilter;

/// Keep Kubernetes port-forwards alive.
#[derive(Debug, Parser)]
#[command(name = "ferry", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the enabled forwards of a config file (or one profile's) until Ctrl-C.
    ///
    /// SIGHUP, or a change of the file on disk, re-reads it and applies the difference:
    /// unchanged forwards keep their connections.
    Up {
        /// The config file (YAML, or JSON when it ends in .json); default: the store the
        /// app uses (~/.config/ferry/store.json, or $FERRY_STORE).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Run against a built-in demo cluster (no real cluster needed); without `-c`,
        /// forwards svc/echo, svc/web and sts/db of its `demo` namespace.
        #[arg(long)]
        demo: bool,
        /// Run only this profile's forwards.
        #[arg(long)]
        profile: Option<String>,
        /// Print one JSON object per line for every state change instead of a table.
        #[arg(long, value_enum)]
        events: Option<EventsFormat>,
        /// Announce aliases only on this interface (repeatable); default: every
        /// multicast-capable interface.
        #[arg(long = "mdns-interface", value_name = "NAME")]
        mdns_interfaces: Vec<String>,
    },
    /// List the forwards of a config.
    Ls {
        #[command(flatten)]
        target: ConfigArg,
    },
    /// Add forwards from a kubectl-style line: `ferry add svc/echo 18080:80 -n demo`.
    Add {
        #[command(flatten)]
        target: ConfigArg,
        /// The forward's name (default: from the target).
        #[arg(long)]
        name: Option<String>,
        /// Also add the new forwards to this profile (created when missing).
        #[arg(long)]
        profile: Option<String>,
        /// `[kubectl port-forward] [-n NS] [--context C] TYPE/NAME [LOCAL:]REMOTE…`
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Remove a forward (and its mentions in profiles).
    Rm {
        #[command(flatten)]
        target: ConfigArg,
        name: String,
    },
    /// Enable a forward.
    Enable {
        #[command(flatten)]
        target: ConfigArg,
        name: String,
    },
    /// Disable a forward.
    Disable {
        #[command(flatten)]
        target: ConfigArg,
        name: String,
    },
    /// Import forwards from a file of `kubectl port-forward` lines.
    Import {
        #[command(flatten)]
        target: ConfigArg,
        /// The file to import.
        file: PathBuf,
        /// Also add the imported forwards to this profile (created when missing).
        #[arg(long)]
        profile: Option<String>,
        /// Show what would be imported without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// The file's format; by default guessed from its name and content.
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
    },
    /// Manage profiles: `ferry profile ls`, `ferry profile add NAME [FORWARD…]`,
    /// `ferry profile rm NAME`.
    Profile {
        #[command(flatten)]
        target: ConfigArg,
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// Check what Ferry needs: kubeconfig files, contexts reachable, credential plugins,
    /// local ports free, local name resolution. Each line says what to do when it fails.
    Doctor {
        #[command(flatten)]
        target: ConfigArg,
    },
    /// Print a config in Ferry's format (YAML; JSON with --json), or kftray's JSON.
    Export {
        #[command(flatten)]
        target: ConfigArg,
        /// `ferry` (default) or `kftray`.
        #[arg(long, value_enum, default_value = "ferry")]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EventsFormat {
    Json,
}

#[derive(Debug, Subcommand)]
enum ProfileAction {
    /// List profiles and their forwards.
    Ls,
    /// Create a profile, or add forwards to it.
    Add { name: String, forwards: Vec<String> },
    /// Remove a profile (its forwards stay).
    Rm { name: String },
}

/// Formats `ferry import` reads.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ImportFormat {
    /// `kubectl port-forward` lines.
    Kubectl,
    /// kftray's JSON export.
    Kftray,
    /// kportal's `.kportal.yaml`.
    Kportal,
    /// Ferry's own config (what `ferry export` writes).
    Ferry,
}

/// Formats `ferry export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Ferry,
    Kftray,
}

/// Reads forwards kept by another tool, guessing the format when none is given.
fn import_file(
    path: &Path,
    format: Option<ImportFormat>,
) -> Result<ferry_core::config::import::Imported, String> {
    use ferry_core::config::import;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str());
    let format = match format {
        None => import::detect(&text, name),
        Some(ImportFormat::Kubectl) => import::Format::Kubectl,
        Some(ImportFormat::Kftray) => import::Format::Kftray,
        Some(ImportFormat::Kportal) => import::Format::Kportal,
        Some(ImportFormat::Ferry) => import::Format::Ferry,
    };
    import::read(&text, format)
        .map_err(|e| format!("{}: {e}; nothing was imported", path.display()))
}

/// kubectl's current context (from the kubeconfig as kubectl finds it), if there is one.
fn current_context() -> Option<String> {
    ferry_core::cluster::ClientPool::new(ferry_core::cluster::KubeconfigSource::from_env())
        .contexts()
        .ok()
        .and_then(|(_, current)| current)
}

/// Asks the cluster (the kubeconfig as kubectl finds it) which service ports lead to the
/// pods' ports that kftray and kportal entries name; see `cluster::settle_pod_ports`.
fn settle_pod_ports(imported: &mut ferry_core::config::import::Imported) {
    use ferry_core::cluster::{ClientPool, KubeconfigSource, SETTLE_WITHIN};
    if !imported.forwards.iter().any(|f| f.pod_port) {
        return;
    }
    let pool = ClientPool::new(KubeconfigSource::from_env());
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(ferry_core::cluster::settle_pod_ports(
            &pool,
            imported,
            SETTLE_WITHIN,
        )),
        Err(e) => imported.notes.push(format!(
            "the cluster was not asked which service ports the pods' ports belong to ({e}); those forwards keep `pod_port: true`"
        )),
    }
}

/// Where a config-editing command reads and writes.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The config file; default: the store the app uses, ~/.config/ferry/store.json (or
    /// $FERRY_STORE), created when missing.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Up {
            config,
            demo,
            profile,
            events,
            mdns_interfaces,
        } => runtime.block_on(async {
            let mut demo_cluster = None;
            let mut options = EngineOptions::default();
            if !mdns_interfaces.is_empty() {
                options.mdns_interfaces = ferry_core::mdns::Interfaces::Named(mdns_interfaces);
            }
            if demo {
                match start_demo().await {
                    Ok((fake, kubeconfig)) => {
                        options.kubeconfig = KubeconfigSource::from_paths(vec![kubeconfig]);
                        demo_cluster = Some(fake);
                    }
                    Err(e) => {
                        eprintln!("ferry: cannot start the demo cluster: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let source = match &config {
                Some(path) => Source::File(path.clone()),
                None if demo => Source::Demo,
                None => Source::File(default_config_path()),
            };
            if let Source::File(path) = &source
                && !demo
                && is_store(path)
            {
                // The app's extra kubeconfig files, read after KUBECONFIG / ~/.kube/config.
                let extra = store_kubeconfig_paths(path);
                if !extra.is_empty() {
                    let mut paths = options.kubeconfig.paths().to_vec();
                    paths.extend(extra);
                    options.kubeconfig = KubeconfigSource::from_paths(paths);
                }
            }
            let code = up(&source, profile.as_deref(), events, options).await;
            if let Some(fake) = demo_cluster {
                fake.shutdown().await;
            }
            code
        }),
        Command::Doctor { target } => runtime.block_on(doctor(target)),
        other => match edit(other) {
            Ok(()) => ExitCode::SUCCESS,
            Err(EditError::Usage(e)) => {
                eprintln!("ferry: {e}");
                ExitCode::from(2)
            }
            Err(EditError::Failed(e)) => {
                eprintln!("ferry: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Where the config comes from.
enum Source {
    File(PathBuf),
    /// The built-in demo forwards.
    Demo,
}

impl Source {
    fn path(&self) -> Option<&Path> {
        match self {
            Source::File(p) => Some(p),
            Source::Demo => None,
        }
    }
}

/// Starts the fake cluster in-process and writes its kubeconfig under the cache directory.
async fn start_demo() -> anyhow::Result<(FakeCluster, PathBuf)> {
    let fake = FakeCluster::start(FakeOptions::default()).await?;
    // Let the demo pods become ready first, so the demo starts clean.
    fake.wait_pods_ready(Duration::from_secs(5)).await;
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("ferry");
    let kubeconfig = dir.join("demo-kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    eprintln!(
        "ferry: demo cluster at {} (kubeconfig: {})",
        fake.url(),
        kubeconfig.display()
    );
    Ok((fake, kubeconfig))
}

/// Reads the config and narrows it to a profile: the profile's forwards are enabled, the
/// others disabled.
fn load(source: &Source, profile: Option<&str>) -> Result<Config, String> {
    let mut config = match source {
        Source::File(path) if is_kportal(path) => {
            let imported = import_file(path, Some(ImportFormat::Kportal))?;
            for note in &imported.notes {
                eprintln!("ferry: {}: {note}", path.display());
            }
            let (config, _) = Config::default()
                .merged_with(imported, None)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            config
        }
        Source::File(path) if is_store(path) => {
            Store::new(path).load().map_err(|e| e.to_string())?.config
        }
        Source::File(path) => {
            Config::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        Source::Demo => Config::from_yaml(ferry_fakecluster::scenario::DEMO_FORWARDS)
            .map_err(|e| format!("demo config: {e}"))?,
    };
    if let Some(profile) = profile {
        let names: Vec<String> = config
            .forwards_of_profile(profile)
            .map_err(|e| format!("--profile {profile}: {e}"))?
            .iter()
            .map(|f| f.name.clone())
            .collect();
        for f in &mut config.forwards {
            f.enabled = names.contains(&f.name);
        }
    }
    Ok(config)
}

/// Whether `path` is a kportal file, which `ferry up` runs directly.
fn is_kportal(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".kportal.yaml")
        || name.ends_with(".kportal.yml")
        || (!name.ends_with(".json")
            && std::fs::read_to_string(path)
                .is_ok_and(|t| ferry_core::config::import::looks_like_kportal(&t)))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn up(
    source: &Source,
    profile: Option<&str>,
    events: Option<EventsFormat>,
    options: EngineOptions,
) -> ExitCode {
    let config = match load(source, profile) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    if config.forwards.iter().any(|f| f.alias.is_some())
        && ferry_core::mdns::local_names_resolve() == Some(false)
    {
        eprintln!(
            "ferry: aliases are announced, but this machine does not resolve .local names for its own programs (no mdns in the hosts: line of /etc/nsswitch.conf); install nss-mdns (Debian/Ubuntu: sudo apt install libnss-mdns) to use them here"
        );
    }
    let engine = match Engine::start(config, options) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    let mut sub = engine.subscribe();
    let table = events.is_none() && std::io::stdout().is_terminal();
    let mut seen_mtime = source.path().and_then(modified);
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    let mut hangup = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry: cannot watch signals: {e}");
            engine.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            update = sub.next() => match update {
                Some(Update::Event(event)) => {
                    if events.is_some() {
                        print_json(&mut out, &event);
                    } else if table {
                        draw_table(&mut out, &sub.snapshot.borrow().clone());
                    } else {
                        print_line(&mut out, &event);
                    }
                }
                Some(Update::Resync(snapshot)) => {
                    for status in &snapshot.forwards {
                        let event = Event::Forward { status: Box::new(status.clone()) };
                        if events.is_some() { print_json(&mut out, &event) } else { print_line(&mut out, &event) }
                    }
                }
                None => break,
            },
            sig = hangup.next() => match sig {
                Sig::Reload => reload(&engine, source, profile).await,
                Sig::Stop => break,
            },
            _ = poll.tick() => {
                if table {
                    // Counters move without events: refresh the table once a second.
                    draw_table(&mut out, &sub.snapshot.borrow().clone());
                }
                let now = source.path().and_then(modified);
                if now != seen_mtime {
                    seen_mtime = now;
                    reload(&engine, source, profile).await;
                }
            }
        }
    }
    engine.shutdown().await;
    ExitCode::SUCCESS
}

async fn reload(engine: &Engine, source: &Source, profile: Option<&str>) {
    let what = source
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the demo config".into());
    match load(source, profile) {
        Ok(config) => match engine.apply(config).await {
            Ok(report) => eprintln!(
                "ferry: reloaded {what}: {} started, {} stopped, {} restarted, {} unchanged",
                report.started.len(),
                report.stopped.len(),
                report.restarted.len(),
                report.unchanged.len()
            ),
            Err(e) => eprintln!("ferry: not reloaded, keeping the running config: {e}"),
        },
        Err(e) => eprintln!("ferry: not reloaded, keeping the running config: {e}"),
    }
}

fn print_json(out: &mut impl Write, event: &Event) {
    let value = match event {
        Event::Forward { status } => serde_json::json!({
            "forward": status.forward,
            "state": status.state,
            "pod": status.pod,
            "local": status.local.map(|a| a.to_string()),
            "error": status.error,
            "health": status.health,
            "detail": status.detail,
            "latency_ms": status.latency_ms,
            "credential_plugin": status.credential_plugin,
            "url": status.url,
            "alias": status.alias,
            "alias_warning": status.alias_warning,
            "exposed": status.exposed,
            "last_error": status.last_error,
            "target": status.target,
            "context": status.context,
            "namespace": status.namespace,
            "since_ms": status.since_ms,
        }),
        // A forward that left the config is no longer running: `disabled`, marked removed.
        Event::Removed { forward } => serde_json::json!({
            "forward": forward, "state": "disabled", "removed": true,
            "pod": null, "local": null, "error": null, "health": "disabled", "detail": null,
        }),
        Event::Restarted { forward, reason } => serde_json::json!({
            "forward": forward, "event": "restarted", "reason": reason,
        }),
        _ => return,
    };
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn describe(s: &ForwardStatus) -> String {
    let local = s
        .url
        .clone()
        .or_else(|| s.local.map(|a| a.to_string()))
        .unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{}: {} (health {}) {} → {}",
        s.forward, s.state, s.health, local, s.target
    );
    if let Some(pod) = &s.pod {
        line.push_str(&format!(" (pod {pod})"));
    }
    if s.exposed {
        line.push_str(" [exposed beyond this machine]");
    }
    if let Some(w) = &s.alias_warning {
        line.push_str(&format!(" (alias: {w})"));
    }
    if let Some(e) = &s.error {
        line.push_str(&format!(" — {e}"));
    } else if let Some(d) = s.detail.as_ref().filter(|_| s.health == HealthState::Down) {
        line.push_str(&format!(" — {d}"));
    }
    line
}

fn print_line(out: &mut impl Write, event: &Event) {
    let line = match event {
        Event::Forward { status } => describe(status),
        Event::Removed { forward } => format!("{forward}: removed"),
        Event::Restarted { forward, reason } => format!("{forward}: {reason}"),
        _ => return,
    };
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn draw_table(out: &mut impl Write, snapshot: &Snapshot) {
    // Clear the screen and redraw from the top.
    let _ = write!(out, "\x1b[2J\x1b[H");
    let _ = writeln!(
        out,
        "{:<16} {:<13} {:<9} {:>7} {:<32} {:<28} {:<24} {:>5}",
        "FORWARD", "STATE", "HEALTH", "PROBE", "ADDRESS", "TARGET", "POD", "CONNS"
    );
    for s in &snapshot.forwards {
        let _ = writeln!(
            out,
            "{:<16} {:<13} {:<9} {:>7} {:<32} {:<28} {:<24} {:>5}",
            s.forward,
            s.state.as_str(),
            s.health.as_str(),
            s.latency_ms
                .map(|l| format!("{l}ms"))
                .unwrap_or_else(|| "-".into()),
            s.url
                .clone()
                .map(|u| if s.exposed {
                    format!("{u} (exposed)")
                } else {
                    u
                })
                .or_else(|| s.local.map(|a| a.to_string()))
                .unwrap_or_else(|| "-".into()),
            s.target,
            s.pod.as_deref().unwrap_or("-"),
            s.connections
        );
        if let Some(e) = &s.error {
            let _ = writeln!(out, "  {e}");
        } else if let Some(d) = s.detail.as_ref().filter(|_| s.health == HealthState::Down) {
            let _ = writeln!(out, "  {d}");
        }
        if let Some(w) = &s.alias_warning {
            let _ = writeln!(out, "  alias: {w}");
        }
    }
    let _ = writeln!(out, "\nCtrl-C stops every forward.");
    let _ = out.flush();
}

/// SIGHUP (reload) and SIGINT/SIGTERM (stop).
struct Signals {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                hup: signal(SignalKind::hangup())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal that matters.
    async fn next(&mut self) -> Sig {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.hup.recv() => Sig::Reload,
                _ = tokio::signal::ctrl_c() => Sig::Stop,
                _ = self.term.recv() => Sig::Stop,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Sig::Stop
        }
    }
}

enum Sig {
    Reload,
    Stop,
}

// === config editing: ls, add, rm, enable, disable, import, export ===

enum EditError {
    /// Bad input: exit 2, nothing written.
    Usage(String),
    /// Could not read or write: exit 1.
    Failed(String),
}

/// The store the app keeps its forwards in, which the CLI edits by default.
fn default_config_path() -> PathBuf {
    Store::default_path()
}

/// Whether `path` is a store (the app's JSON file with `config` and `settings`) rather than
/// a plain config file: the default store, or a JSON file with a top-level `config`.
fn is_store(path: &Path) -> bool {
    if resolve_link(path) == resolve_link(&Store::default_path()) {
        return true;
    }
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    is_json
        && std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("config").is_some())
}

/// The extra kubeconfig files the app's settings list (`settings.kubeconfig_paths`).
fn store_kubeconfig_paths(path: &Path) -> Vec<PathBuf> {
    Store::new(path)
        .load()
        .ok()
        .and_then(|doc| {
            doc.settings
                .get("kubeconfig_paths")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str())
                        .map(PathBuf::from)
                        .collect()
                })
        })
        .unwrap_or_default()
}

/// An edit's error inside [`Store::modify`].
struct StoreEdit(EditError);

impl From<StoreError> for StoreEdit {
    fn from(e: StoreError) -> Self {
        StoreEdit(store_error(e))
    }
}

fn store_error(e: StoreError) -> EditError {
    match e {
        StoreError::Invalid(e) => EditError::Usage(format!(
            "the change would make the config invalid, so nothing was written:\n{e}"
        )),
        StoreError::Corrupt { .. } => EditError::Usage(format!(
            "{e}; nothing was written (the app keeps such a file as a backup when it starts)"
        )),
        other => EditError::Failed(other.to_string()),
    }
}

/// Reads the config, or an empty one when the file does not exist yet.
fn read_config(path: &Path) -> Result<Config, EditError> {
    Ok(read_config_text(path)?.0)
}

/// The config and its text (empty for a file that does not exist yet, and for a store),
/// read once.
fn read_config_text(path: &Path) -> Result<(Config, String), EditError> {
    if is_store(path) {
        let doc = Store::new(path).load().map_err(store_error)?;
        return Ok((doc.config, String::new()));
    }
    if !path.exists() {
        return Ok((Config::default(), String::new()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| EditError::Failed(format!("{}: {e}", path.display())))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = if is_json {
        Config::from_json(&text)
    } else {
        Config::from_yaml(&text)
    };
    let config = parsed.map_err(|e| EditError::Usage(format!("{}: {e}", path.display())))?;
    Ok((config, text))
}

/// Writes the config atomically (see [`write_atomic`]), keeping the file's permissions.
fn write_config(path: &Path, config: &Config) -> Result<(), EditError> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = if is_json {
        config.to_json()
    } else {
        config.to_yaml()
    }
    .map_err(|e| EditError::Failed(e.to_string()))?;
    write_atomic(path, text.as_bytes())
        .map_err(|e| EditError::Failed(format!("writing {}: {e}", path.display())))
}

/// Read, change, validate, write — under the file's lock, which the app takes too, so
/// concurrent writers take turns. `change` says what it did.
fn modify(
    path: &Path,
    change: impl FnOnce(&mut Config) -> Result<String, EditError>,
) -> Result<String, EditError> {
    let path = &resolve_link(path);
    if is_store(path) {
        return Store::new(path)
            .modify(|doc| change(&mut doc.config).map_err(StoreEdit))
            .map(|(said, _)| said)
            .map_err(|StoreEdit(e)| e);
    }
    let _lock = FileLock::take(path).map_err(|e| EditError::Failed(e.to_string()))?;
    let (mut config, text) = read_config_text(path)?;
    if text
        .lines()
        .any(|l| l.trim_start().starts_with('#') || l.contains(" #"))
    {
        eprintln!(
            "ferry: note: {} has comments; rewriting it keeps every setting but not the comments",
            path.display()
        );
    }
    let said = change(&mut config)?;
    config.validate().map_err(|e| {
        EditError::Usage(format!(
            "the change would make the config invalid, so nothing was written:\n{e}"
        ))
    })?;
    write_config(path, &config)?;
    Ok(said)
}

fn print_forwards(config: &Config, json: bool) {
    if json {
        let list: Vec<serde_json::Value> = config
            .forwards
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "context": f.context, "namespace": f.namespace,
                    "target": f.target.to_string(), "port": f.port.to_string(),
                    "local_port": f.local_port, "bind": f.bind.to_string(),
                    "alias": f.alias, "enabled": f.enabled,
                    "profiles": config.profiles.iter().filter(|p| p.forwards.contains(&f.name)).map(|p| p.name.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    println!(
        "{:<20} {:<8} {:<28} {:<22} CONTEXT/NAMESPACE",
        "NAME", "ENABLED", "TARGET", "LOCAL"
    );
    for f in &config.forwards {
        println!(
            "{:<20} {:<8} {:<28} {:<22} {}/{}",
            f.name,
            if f.enabled { "yes" } else { "no" },
            format!("{}:{}", f.target, f.port),
            format!("{}:{}", f.bind, f.local_port),
            f.context.as_deref().unwrap_or("(current)"),
            f.namespace.as_deref().unwrap_or("(default)"),
        );
    }
}

fn report(json: bool, message: &str, imported: Option<&ferry_core::config::import::Imported>) {
    if json {
        let value = match imported {
            Some(i) => serde_json::json!({
                "message": message,
                "forwards": i.forwards.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                "renamed": i.renamed.iter().map(|(a, b)| serde_json::json!({"from": a, "to": b})).collect::<Vec<_>>(),
                "notes": i.notes,
            }),
            None => serde_json::json!({"message": message}),
        };
        println!("{value}");
    } else {
        println!("{message}");
        if let Some(i) = imported {
            for (from, to) in &i.renamed {
                println!("  renamed {from} → {to} (the name was taken)");
            }
            for note in &i.notes {
                println!("  note: {note}");
            }
        }
    }
}

fn edit(command: Command) -> Result<(), EditError> {
    use ferry_core::config::import::kubectl_line;
    match command {
        Command::Up { .. } => Ok(()),
        Command::Ls { target } => {
            let path = target.config.unwrap_or_else(default_config_path);
            print_forwards(&read_config(&path)?, target.json);
            Ok(())
        }
        Command::Export { target, format } => {
            let path = target.config.unwrap_or_else(default_config_path);
            let config = read_config(&path)?;
            let text = match format {
                ExportFormat::Ferry => if target.json {
                    config.to_json()
                } else {
                    config.to_yaml()
                }
                .map_err(|e| EditError::Failed(e.to_string()))?,
                ExportFormat::Kftray => {
                    let (text, notes) = ferry_core::config::import::kftray_export(&config);
                    for n in notes {
                        eprintln!("ferry: {n}");
                    }
                    format!("{text}\n")
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Add {
            mut target,
            mut name,
            mut profile,
            line,
        } => {
            // Ferry's own options may come after the kubectl-style line, where the
            // argument parser hands them over as part of it: take them out.
            let mut words = Vec::new();
            let mut rest = line.into_iter();
            while let Some(w) = rest.next() {
                let (flag, inline) = match w.split_once('=') {
                    Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                    _ => (w.clone(), None),
                };
                let mut value = || inline.clone().or_else(|| rest.next());
                match flag.as_str() {
                    "--name" => name = value(),
                    "--profile" => profile = value(),
                    "-c" | "--config" => target.config = value().map(PathBuf::from),
                    "--json" => target.json = true,
                    _ => words.push(w),
                }
            }
            let path = target.config.clone().unwrap_or_else(default_config_path);
            let mut imported =
                kubectl_line(&words.join(" ")).map_err(|e| EditError::Usage(e.message))?;
            if let Some(name) = name {
                if imported.forwards.len() != 1 {
                    return Err(EditError::Usage("--name: the line gives several ports; leave --name out to name them from the target".into()));
                }
                imported.forwards[0].name = name;
            }
            imported.pin_context(current_context().as_deref());
            let mut report_of = None;
            let said = modify(&path, |config| {
                let (next, done) = config
                    .merged_with(imported, profile.as_deref())
                    .map_err(|e| EditError::Usage(format!("nothing was added:\n{e}")))?;
                *config = next;
                let names: Vec<String> = done.forwards.iter().map(|f| f.name.clone()).collect();
                report_of = Some(done);
                Ok(format!("added {} to {}", names.join(", "), path.display()))
            })?;
            report(target.json, &said, report_of.as_ref());
            Ok(())
        }
        Command::Rm { target, name } => {
            let path = target.config.unwrap_or_else(default_config_path);
            let said = modify(&path, |config| {
                let before = config.forwards.len();
                config.forwards.retain(|f| f.name != name);
                if config.forwards.len() == before {
                    return Err(EditError::Usage(format!(
                        "no forward named `{name}` in {}",
                        path.display()
                    )));
                }
                for p in &mut config.profiles {
                    p.forwards.retain(|f| *f != name);
                }
                Ok(format!("removed {name}"))
            })?;
            report(target.json, &said, None);
            Ok(())
        }
        Command::Profile { target, action } => profile(target, action),
        Command::Doctor { .. } => Ok(()),
        Command::Enable { target, name } => set_enabled(target, &name, true),
        Command::Disable { target, name } => set_enabled(target, &name, false),
        Command::Import {
            target,
            file,
            profile,
            dry_run,
            format,
        } => {
            let path = target.config.unwrap_or_else(default_config_path);
            let mut imported = import_file(&file, format).map_err(EditError::Usage)?;
            settle_pod_ports(&mut imported);
            imported.pin_context(current_context().as_deref());
            if dry_run {
                let (_, done) = read_config(&path)?
                    .merged_with(imported, profile.as_deref())
                    .map_err(|e| EditError::Usage(format!("nothing would be imported:\n{e}")))?;
                report(
                    target.json,
                    &format!(
                        "would import {} forwards (dry run; nothing written)",
                        done.forwards.len()
                    ),
                    Some(&done),
                );
                return Ok(());
            }
            let mut report_of = None;
            let said = modify(&path, |config| {
                let (next, done) = config
                    .merged_with(imported, profile.as_deref())
                    .map_err(|e| EditError::Usage(format!("nothing was imported:\n{e}")))?;
                *config = next;
                let n = done.forwards.len();
                report_of = Some(done);
                Ok(format!("imported {n} forwards into {}", path.display()))
            })?;
            report(target.json, &said, report_of.as_ref());
            Ok(())
        }
    }
}

fn profile(target: ConfigArg, action: ProfileAction) -> Result<(), EditError> {
    let path = target.config.unwrap_or_else(default_config_path);
    match action {
        ProfileAction::Ls => {
            let config = read_config(&path)?;
            if target.json {
                let list: Vec<serde_json::Value> = config
                    .profiles
                    .iter()
                    .map(|p| serde_json::json!({"name": p.name, "forwards": p.forwards}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for p in &config.profiles {
                    println!("{}: {}", p.name, p.forwards.join(", "));
                }
            }
            Ok(())
        }
        ProfileAction::Add { name, forwards } => {
            let said = modify(&path, |config| {
                match config.profiles.iter_mut().find(|p| p.name == name) {
                    Some(p) => {
                        for f in &forwards {
                            if !p.forwards.contains(f) {
                                p.forwards.push(f.clone());
                            }
                        }
                    }
                    None => config.profiles.push(ferry_core::config::Profile {
                        name: name.clone(),
                        forwards: forwards.clone(),
                    }),
                }
                Ok(format!("profile {name}: {}", forwards.join(", ")))
            })?;
            report(target.json, &said, None);
            Ok(())
        }
        ProfileAction::Rm { name } => {
            let said = modify(&path, |config| {
                let before = config.profiles.len();
                config.profiles.retain(|p| p.name != name);
                if config.profiles.len() == before {
                    return Err(EditError::Usage(format!("no profile named `{name}`")));
                }
                Ok(format!("removed profile {name}"))
            })?;
            report(target.json, &said, None);
            Ok(())
        }
    }
}

/// One line of `ferry doctor`.
struct Check {
    ok: bool,
    what: String,
    detail: String,
}

async fn doctor(target: ConfigArg) -> ExitCode {
    use ferry_core::cluster::{ClientPool, KubeconfigSource};
    let mut checks = Vec::new();
    let source = KubeconfigSource::from_env();
    let found: Vec<String> = source
        .paths()
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    checks.push(Check {
        ok: !found.is_empty(),
        what: "kubeconfig".into(),
        detail: if found.is_empty() {
            format!(
                "no file at {}; set KUBECONFIG or create ~/.kube/config (or try `ferry up --demo`)",
                source
                    .paths()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("read {}", found.join(", "))
        },
    });
    let pool = ClientPool::new(source);
    let contexts = match pool.contexts() {
        Ok((contexts, _)) => contexts,
        Err(e) => {
            if !found.is_empty() {
                checks.push(Check {
                    ok: false,
                    what: "kubeconfig".into(),
                    detail: format!("cannot be read: {e}; fix the file or KUBECONFIG"),
                });
            }
            Vec::new()
        }
    };
    {
        for ctx in contexts {
            let check = match pool.client(Some(&ctx)).await {
                Err(e) => Check {
                    ok: false,
                    what: format!("context {ctx}"),
                    detail: e.to_string(),
                },
                Ok(cc) => {
                    let reach =
                        tokio::time::timeout(Duration::from_secs(5), cc.client.apiserver_version())
                            .await;
                    let plugin = cc
                        .plugin
                        .map(|p| format!("; credential plugin {p}"))
                        .unwrap_or_default();
                    match reach {
                        Ok(Ok(v)) => Check {
                            ok: true,
                            what: format!("context {ctx}"),
                            detail: format!(
                                "reachable, Kubernetes {}.{}{plugin}",
                                v.major, v.minor
                            ),
                        },
                        Ok(Err(e)) => Check {
                            ok: false,
                            what: format!("context {ctx}"),
                            detail: format!(
                                "not reachable: {e}; check the server address, the network or VPN, and the credentials{plugin}"
                            ),
                        },
                        Err(_) => Check {
                            ok: false,
                            what: format!("context {ctx}"),
                            detail: "no answer within 5s; check the network or VPN".into(),
                        },
                    }
                }
            };
            checks.push(check);
        }
    }
    let path = target.config.clone().unwrap_or_else(default_config_path);
    match read_config(&path) {
        Err(EditError::Usage(e)) | Err(EditError::Failed(e)) => checks.push(Check {
            ok: false,
            what: "config".into(),
            detail: e,
        }),
        Ok(config) => {
            checks.push(Check {
                ok: true,
                what: "config".into(),
                detail: format!("{} forwards in {}", config.forwards.len(), path.display()),
            });
            for f in config
                .forwards
                .iter()
                .filter(|f| f.enabled && f.local_port != 0)
            {
                let addr = std::net::SocketAddr::new(f.bind, f.local_port);
                let free = std::net::TcpListener::bind(addr);
                checks.push(Check {
                    ok: free.is_ok(),
                    what: format!("port {addr} ({})", f.name),
                    detail: match free {
                        Ok(_) => "free".into(),
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match ferry_core::ports::holder(f.local_port) {
                            Some(holder) => format!("{addr} is already in use by {holder}; stop it or pick another local_port"),
                            None => format!("{addr} is already in use; stop what uses it (ss -ltnp 'sport = :{}') or pick another local_port", f.local_port),
                        },
                        Err(e) => format!("cannot bind {addr}: {e}"),
                    },
                });
            }
            if config.forwards.iter().any(|f| f.alias.is_some()) {
                let resolves = ferry_core::mdns::local_names_resolve();
                checks.push(Check {
                    ok: resolves != Some(false),
                    what: "local names (.local)".into(),
                    detail: match resolves {
                        Some(false) => "this machine does not resolve .local names; install nss-mdns (Debian/Ubuntu: sudo apt install libnss-mdns)".into(),
                        _ => "resolvable on this machine".into(),
                    },
                });
            }
        }
    }
    let failed = checks.iter().any(|c| !c.ok);
    if target.json {
        let list: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| serde_json::json!({"ok": c.ok, "check": c.what, "detail": c.detail}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for c in &checks {
            println!(
                "{}  {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.detail
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn set_enabled(target: ConfigArg, name: &str, enabled: bool) -> Result<(), EditError> {
    let path = target.config.unwrap_or_else(default_config_path);
    let said = modify(&path, |config| {
        let f = config
            .forwards
            .iter_mut()
            .find(|f| f.name == name)
            .ok_or_else(|| {
                EditError::Usage(format!("no forward named `{name}` in {}", path.display()))
            })?;
        f.enabled = enabled;
        Ok(format!(
            "{} {name}",
            if enabled { "enabled" } else { "disabled" }
        ))
    })?;
    report(target.json, &said, None);
    Ok(())
}
