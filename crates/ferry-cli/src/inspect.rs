//! `ferry inspect NAME on|off`: turns a forward's HTTP inspection on or off in the config;
//! `ferry inspect NAME --follow [--json]`: prints its exchanges as they happen, from the
//! `ferry up` or the app that runs it (through the control endpoint).

use ferry_core::config::Inspect;

use super::*;

// What `ferry inspect` was asked (its help is the variant's in main.rs).
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// The config; default: the store the app uses.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// With --follow: the `ferry up --demo` run.
    #[arg(long)]
    pub demo: bool,
    #[arg(add = ArgValueCandidates::new(forward_names))]
    pub name: String,
    /// `on` or `off`.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(["on", "off"]))]
    pub switch: Option<String>,
    /// With `on`: keep the first KiB of each body (0, the default, keeps none; at most
    /// 1024).
    #[arg(long, value_name = "KIB")]
    pub body_kib: Option<u32>,
    /// With `on`: another header to redact (repeatable).
    #[arg(long, value_name = "HEADER")]
    pub redact: Vec<String>,
    /// Print exchanges as they happen (after those kept so far) until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: one JSON object per exchange and line.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn inspect(args: InspectArgs) -> ExitCode {
    match (&args.switch, args.follow) {
        (Some(_), true) => usage("inspect: give on, off or --follow, not both"),
        (None, false) => usage("inspect: give on, off or --follow (e.g. `ferry inspect web on`)"),
        (Some(switch), false) => {
            if args.demo {
                return usage(
                    "inspect: --demo runs a built-in config that cannot be edited; edit a file with -c",
                );
            }
            let on = match switch.as_str() {
                "on" => true,
                "off" => false,
                other => return usage(&format!("inspect: {other:?} is not on or off")),
            };
            if !on && (args.body_kib.is_some() || !args.redact.is_empty()) {
                return usage("inspect: --body-kib and --redact go with `on`");
            }
            let path = args.config.clone().unwrap_or_else(default_config_path);
            let name = args.name.clone();
            let said = modify(&path, |config| {
                let Some(forward) = config.forwards.iter_mut().find(|f| f.name == name) else {
                    return Err(EditError::Usage(format!(
                        "there is no forward named \"{name}\" in {}",
                        path.display()
                    )));
                };
                forward.inspect = on.then(|| Inspect {
                    body_kib: args.body_kib.unwrap_or(0),
                    redact: args.redact.clone(),
                });
                Ok(if on {
                    format!(
                        "inspecting {name}'s HTTP traffic from its next connection{}; follow it with `ferry inspect {name} --follow`",
                        match args.body_kib {
                            Some(k) if k > 0 => format!(" (and the first {k} KiB of bodies)"),
                            _ => String::new(),
                        }
                    )
                } else {
                    format!("no longer inspecting {name}")
                })
            });
            edited(said.map(|said| println!("{said}")))
        }
        (None, true) => follow(args).await,
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("ferry: {message}");
    ExitCode::from(2)
}

#[cfg(not(any(unix, windows)))]
async fn follow(_args: InspectArgs) -> ExitCode {
    eprintln!("ferry: `ferry inspect --follow` is not available on this system yet");
    ExitCode::FAILURE
}

#[cfg(any(unix, windows))]
async fn follow(args: InspectArgs) -> ExitCode {
    use ferry_core::control::{ControlClient, Exchanged, endpoint_path, source_name};
    if args.demo && args.config.is_some() {
        return usage("--demo and -c name different runs: give one");
    }
    let path = match (&args.config, args.demo) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => Some(default_config_path()),
    };
    let source = source_name(path.as_deref());
    let client = match ControlClient::connect(&endpoint_path(&source)).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!(
                "ferry: nothing runs the forwards of {source}: start them with `ferry up{}` or the app",
                if args.demo { " --demo" } else { "" }
            );
            return ExitCode::from(3);
        }
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (kept, mut next) = match client.inspect(&args.name).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    if let Some(note) = &kept.passthrough
        && !args.json
    {
        eprintln!("ferry: {}: {note}", args.name);
    }
    for e in &kept.exchanges {
        print_exchange(&mut out, e, args.json);
    }
    while let Some(next) = next.next().await {
        match next {
            Exchanged::Exchange(e) => print_exchange(&mut out, &e, args.json),
            Exchanged::Missed(n) => {
                eprintln!("ferry: {n} exchanges went by while this output was behind")
            }
        }
    }
    if !args.json {
        eprintln!("ferry: the inspection of {} ended", args.name);
    }
    ExitCode::SUCCESS
}

/// One line per exchange: `12:03:04.123 GET /path?q 200 OK 12 ms 1.2 kB`, or its JSON.
#[cfg(any(unix, windows))]
fn print_exchange(out: &mut impl Write, e: &ferry_http::Exchange, json: bool) {
    let line = if json {
        serde_json::to_string(e).unwrap_or_default()
    } else {
        let at = chrono::DateTime::from_timestamp_millis(e.started_ms as i64)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%H:%M:%S%.3f")
                    .to_string()
            })
            .unwrap_or_default();
        let status = match (e.status, &e.response) {
            (Some(code), _) => format!("{code} {}", e.reason.as_deref().unwrap_or("")),
            (None, _) => "(no response)".to_string(),
        };
        let size = e
            .response
            .as_ref()
            .map(|r| human_bytes(r.body_size))
            .unwrap_or_default();
        let upgrade = e
            .upgrade
            .as_deref()
            .map(|p| format!(" → {p}"))
            .unwrap_or_default();
        let took = e
            .duration_ms
            .map(|ms| format!(" {ms:.1} ms"))
            .unwrap_or_default();
        format!(
            "{at} {} {} {}{took} {size}{upgrade}",
            e.method,
            e.target,
            status.trim_end(),
        )
    };
    // A closed pipe (`| head`) ends the output quietly.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

#[cfg(any(unix, windows))]
fn human_bytes(n: u64) -> String {
    if n < 1000 {
        format!("{n} B")
    } else if n < 1_000_000 {
        format!("{:.1} kB", n as f64 / 1000.0)
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
}
