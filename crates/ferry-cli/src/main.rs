//! The headless `ferry` command: runs Ferry's engine without a window.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand, ValueEnum};
use ferry_core::cluster::KubeconfigSource;
use ferry_core::config::Config;
use ferry_core::engine::{Engine, EngineOptions};
use ferry_core::events::{Event, ForwardState, ForwardStatus, HealthState, Snapshot, Update};
use ferry_core::store::{FileLock, Store, StoreError, resolve_link, write_atomic};
use ferry_fakecluster::{FakeCluster, Options as FakeOptions};
use tracing_subscriber::EnvFilter;

mod complete;
mod discover;
mod doctor;
mod edit;
mod inspect;
mod mcp;
mod status;
mod up;

use clap_complete::ArgValueCandidates;
use complete::*;
use doctor::*;
use edit::*;
use status::*;
use up::*;

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
        #[arg(long, add = ArgValueCandidates::new(profile_names))]
        profile: Option<String>,
        /// Print one JSON object per line for every state change instead of a table.
        #[arg(long, value_enum)]
        events: Option<EventsFormat>,
        /// Announce aliases only on this interface (repeatable); default: every
        /// multicast-capable interface.
        #[arg(long = "mdns-interface", value_name = "NAME")]
        mdns_interfaces: Vec<String>,
    },
    /// What runs right now: the forwards of a running `ferry up` on this config, their
    /// states, health and addresses. Exit code 0: all up; 1: some are not; 3: nothing
    /// runs this config.
    Status {
        /// The config `ferry up` was started with; default: the store the app uses.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// The `ferry up --demo` run (without `-c`).
        #[arg(long)]
        demo: bool,
        /// Print JSON: `{"runner": …, "forwards": […]}`; with --watch, one event per line.
        #[arg(long)]
        json: bool,
        /// Keep printing changes until the run ends (or Ctrl-C).
        #[arg(long)]
        watch: bool,
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
        #[arg(long, add = ArgValueCandidates::new(profile_names))]
        profile: Option<String>,
        /// `[kubectl port-forward] [-n NS] [--context C] TYPE/NAME [LOCAL:]REMOTE…`
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Remove a forward (and its mentions in profiles).
    Rm {
        #[command(flatten)]
        target: ConfigArg,
        #[arg(add = ArgValueCandidates::new(forward_names))]
        name: String,
    },
    /// Enable a forward.
    Enable {
        #[command(flatten)]
        target: ConfigArg,
        #[arg(add = ArgValueCandidates::new(forward_names))]
        name: String,
    },
    /// Disable a forward.
    Disable {
        #[command(flatten)]
        target: ConfigArg,
        #[arg(add = ArgValueCandidates::new(forward_names))]
        name: String,
    },
    /// Import forwards from a file of `kubectl port-forward` lines.
    Import {
        #[command(flatten)]
        target: ConfigArg,
        /// The file to import.
        file: PathBuf,
        /// Also add the imported forwards to this profile (created when missing).
        #[arg(long, add = ArgValueCandidates::new(profile_names))]
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
    /// List the forwards the cluster's objects declare in annotations (Ferry's
    /// `ferry.dev/forwards`, kftray's and k9s's), marking those you have; `--import` adds
    /// the others to the config.
    Discover(discover::DiscoverArgs),
    /// Print the `kubectl annotate` command that declares a saved forward on its target,
    /// so that teammates find it with `ferry discover` (forwards to the same object are
    /// declared together).
    Share {
        #[command(flatten)]
        target: ConfigArg,
        #[arg(add = ArgValueCandidates::new(forward_names))]
        name: String,
    },
    /// Record a forward's HTTP requests and responses (`on`/`off` in the config), or print
    /// them as they happen with --follow, from the `ferry up` or the app that runs it.
    ///
    /// `ferry inspect web on [--body-kib 16] [--redact x-api-key]`, `ferry inspect web
    /// --follow [--json]`. Authorization, Cookie, Set-Cookie and Proxy-Authorization are
    /// always redacted; nothing is written to disk.
    Inspect(inspect::InspectArgs),
    /// Serve the Model Context Protocol on stdin/stdout, for assistants that drive tools:
    /// list, enable, disable, add, remove and test forwards of a config (the store by
    /// default), applied by the app or `ferry up` that runs it.
    Mcp {
        /// The config to act on; default: the store the app uses.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Print the script that completes ferry's arguments (forward and profile names from
    /// the store) in SHELL: bash, elvish, fish, powershell or zsh.
    ///
    /// bash: `source <(ferry completions bash)` in ~/.bashrc; zsh: the same in ~/.zshrc;
    /// fish: `ferry completions fish | source` in ~/.config/fish/config.fish.
    Completions {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(["bash", "elvish", "fish", "powershell", "zsh"]))]
        shell: String,
    },
    /// Print ferry's manual page (roff: `ferry manpage | man -l -`), or write a page for
    /// ferry and each subcommand into a directory.
    Manpage {
        /// Write ferry.1, ferry-up.1, … into this directory instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
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
    Add {
        #[arg(add = ArgValueCandidates::new(profile_names))]
        name: String,
        #[arg(add = ArgValueCandidates::new(forward_names))]
        forwards: Vec<String>,
    },
    /// Remove a profile (its forwards stay).
    Rm {
        #[arg(add = ArgValueCandidates::new(profile_names))]
        name: String,
    },
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
    // A Tab in a shell with ferry's completions: answer and exit before anything else.
    answer_completion_request();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    ferry_core::ports::raise_open_files_limit();
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
            {
                options.kubeconfig = kubeconfig_for(path);
            }
            let code = up(&source, profile.as_deref(), events, options).await;
            if let Some(fake) = demo_cluster {
                fake.shutdown().await;
            }
            code
        }),
        Command::Doctor { target } => runtime.block_on(doctor(target)),
        Command::Status {
            config,
            demo,
            json,
            watch,
        } => runtime.block_on(status(config, demo, json, watch)),
        Command::Discover(args) => runtime.block_on(discover::discover(args)),
        Command::Inspect(args) => runtime.block_on(inspect::inspect(args)),
        Command::Mcp { config } => runtime.block_on(mcp::mcp(config)),
        Command::Completions { shell } => done(print_completions(&shell)),
        Command::Manpage { out } => done(manpages(out.as_deref())),
        other => edited(edit(other)),
    }
}

/// Exit code of a config edit: 0; 2 for bad input (said); 1 when reading or writing failed.
fn edited(result: Result<(), EditError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(EditError::Usage(e)) => {
            eprintln!("ferry: {e}");
            ExitCode::from(2)
        }
        Err(EditError::Failed(e)) => {
            eprintln!("ferry: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit code and message of a command that either works or says why not.
fn done(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e}");
            ExitCode::FAILURE
        }
    }
}
