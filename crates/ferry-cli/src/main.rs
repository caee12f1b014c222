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
        /// The config file (YAML, or JSON when it ends in .json).
        #[arg(short = 'c', long = "config", required_unless_present = "demo")]
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EventsFormat {
    Json,
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
                None => Source::Demo,
            };
            let code = up(&source, profile.as_deref(), events, options).await;
            if let Some(fake) = demo_cluster {
                fake.shutdown().await;
            }
            code
        }),
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

/// The demo forwards: the demo cluster's echo, web and db services.
const DEMO_CONFIG: &str = "\
version: 1
forwards:
  - {name: echo, context: ferry-fake, namespace: demo, target: service/echo, port: 80, local_port: 18080}
  - {name: web, context: ferry-fake, namespace: demo, target: service/web, port: 80, local_port: 18081}
  - {name: db, context: ferry-fake, namespace: demo, target: statefulset/db, port: pg, local_port: 15432}
profiles:
  - {name: demo, forwards: [echo, web, db]}
";

/// Starts the fake cluster in-process and writes its kubeconfig under the cache directory.
async fn start_demo() -> anyhow::Result<(FakeCluster, PathBuf)> {
    let fake = FakeCluster::start(FakeOptions::default()).await?;
    // Let the demo pods become ready first, so the demo starts clean.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline
        && !fake
            .cluster()
            .list(ferry_fakecluster::kind::Kind::Pod, None)
            .1
            .iter()
            .all(|p| ferry_fakecluster::cluster::pod_is_ready(p))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
        Source::File(path) => {
            Config::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        Source::Demo => Config::from_yaml(DEMO_CONFIG).map_err(|e| format!("demo config: {e}"))?,
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
