//! `ferry status`: what a running `ferry up` does right now, through its control endpoint
//! (ferry_core::control); and the check that keeps a second `ferry up` off a config that
//! already runs.

use super::*;

pub(crate) use ferry_core::control::{ControlError, ControlServer, Runner};

/// Exit code: some enabled forward is not active.
#[cfg(any(unix, windows))]
const SOME_DOWN: u8 = 1;
/// Exit code: nothing runs the config.
const NOTHING_RUNS: u8 = 3;

/// Who serves the endpoint at `path`, if anyone does.
pub(crate) async fn running_on(path: &Path) -> Option<Runner> {
    #[cfg(any(unix, windows))]
    {
        let client = ferry_core::control::ControlClient::connect(path)
            .await
            .ok()??;
        client.hello().await.ok()
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        None
    }
}

/// What a second `ferry up` on the same config says.
pub(crate) fn already_running(running: &Runner) -> String {
    format!(
        "ferry: {running} already runs the forwards of {}; stop it first (or see them with `ferry status{}`)",
        running.source,
        if running.source == "demo" {
            " --demo".to_string()
        } else {
            format!(" -c {}", running.source)
        }
    )
}

/// Whether every enabled forward is active (disabled ones do not count).
#[cfg(any(unix, windows))]
fn all_up(snapshot: &Snapshot) -> bool {
    snapshot
        .forwards
        .iter()
        .filter(|s| s.state != ferry_core::events::ForwardState::Disabled)
        .all(|s| s.state == ferry_core::events::ForwardState::Active)
}

pub(crate) async fn status(
    config: Option<PathBuf>,
    demo: bool,
    json: bool,
    watch: bool,
) -> ExitCode {
    if demo && config.is_some() {
        eprintln!("ferry: --demo and -c name different runs: give one");
        return ExitCode::from(2);
    }
    let path = match (&config, demo) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => Some(default_config_path()),
    };
    let name = ferry_core::control::source_name(path.as_deref());
    let endpoint = ferry_core::control::endpoint_path(&name);
    let nothing = || {
        if json {
            println!("{}", serde_json::json!({"runner": null, "forwards": []}));
        } else {
            println!(
                "Nothing runs the forwards of {name}: start them with `ferry up{}` or the app.",
                if demo { " --demo" } else { "" }
            );
        }
        ExitCode::from(NOTHING_RUNS)
    };
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (endpoint, watch);
        eprintln!("ferry: `ferry status` is not available on this system yet");
        nothing()
    }
    #[cfg(any(unix, windows))]
    {
        use ferry_core::control::{ControlClient, Following};
        let client = match ControlClient::connect(&endpoint).await {
            Ok(Some(c)) => c,
            Ok(None) => return nothing(),
            Err(e) => {
                eprintln!("ferry: {e}");
                return ExitCode::FAILURE;
            }
        };
        if watch {
            let mut sub = match client.subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ferry: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut out = std::io::stdout();
            while let Some(next) = sub.next().await {
                match next {
                    Following::Snapshot(s) => {
                        for status in &s.forwards {
                            let event = Event::Forward {
                                status: Box::new(status.clone()),
                            };
                            if json {
                                print_json(&mut out, &event);
                            } else {
                                print_line(&mut out, &event);
                            }
                        }
                    }
                    Following::Event(event) => {
                        if json {
                            print_json(&mut out, &event);
                        } else {
                            print_line(&mut out, &event);
                        }
                    }
                }
            }
            if !json {
                println!("The run ended.");
            }
            return ExitCode::SUCCESS;
        }
        let (runner, snapshot) = match client.status().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ferry: {e}");
                return ExitCode::FAILURE;
            }
        };
        if json {
            println!(
                "{}",
                serde_json::json!({"runner": runner, "forwards": snapshot.forwards})
            );
        } else {
            println!("{runner} runs the forwards of {}:", runner.source);
            for s in &snapshot.forwards {
                println!("  {}", describe(s));
            }
            if snapshot.forwards.is_empty() {
                println!("  (no forwards)");
            }
        }
        if all_up(&snapshot) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(SOME_DOWN)
        }
    }
}
