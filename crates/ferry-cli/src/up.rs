//! `ferry up`: run the engine on a config, a kportal file or the demo, show what happens,
//! reload on change, stop on a signal.

use super::*;

/// Where the config comes from.
pub(crate) enum Source {
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
pub(crate) async fn start_demo() -> anyhow::Result<(FakeCluster, PathBuf)> {
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
pub(crate) fn load(source: &Source, profile: Option<&str>) -> Result<Config, String> {
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
pub(crate) fn is_kportal(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".kportal.yaml")
        || name.ends_with(".kportal.yml")
        || (!name.ends_with(".json")
            && std::fs::read_to_string(path)
                .is_ok_and(|t| ferry_core::config::import::looks_like_kportal(&t)))
}

pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

pub(crate) async fn up(
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
    // One run per config: a second one would fight the first for its ports.
    let name = ferry_core::control::source_name(source.path());
    let endpoint = ferry_core::control::endpoint_path(&name);
    if let Some(running) = running_on(&endpoint).await {
        eprintln!("{}", already_running(&running));
        return ExitCode::from(2);
    }
    let engine = match Engine::start(config, options) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    let runner = ferry_core::control::Runner::this_process("`ferry up`", &name);
    let _control =
        match ControlServer::start_with(endpoint, runner, engine.subscriber(), engine.inspector())
            .await
        {
            Ok(server) => Some(server),
            Err(ControlError::AlreadyRunning(running)) => {
                // Started at the same instant as another.
                eprintln!("{}", already_running(&running));
                engine.shutdown().await;
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("ferry: warning: `ferry status` will not see this run: {e}");
                None
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

pub(crate) async fn reload(engine: &Engine, source: &Source, profile: Option<&str>) {
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

pub(crate) fn print_json(out: &mut impl Write, event: &Event) {
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

pub(crate) fn describe(s: &ForwardStatus) -> String {
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

pub(crate) fn print_line(out: &mut impl Write, event: &Event) {
    let line = match event {
        Event::Forward { status } => describe(status),
        Event::Removed { forward } => format!("{forward}: removed"),
        Event::Restarted { forward, reason } => format!("{forward}: {reason}"),
        _ => return,
    };
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub(crate) fn draw_table(out: &mut impl Write, snapshot: &Snapshot) {
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
pub(crate) struct Signals {
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

pub(crate) enum Sig {
    Reload,
    Stop,
}
