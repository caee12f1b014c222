//! `ferry-fakecluster`: serve a fake Kubernetes cluster on loopback and write a kubeconfig
//! for it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferry_fakecluster::{FakeCluster, Options, Scenario};
use tracing_subscriber::EnvFilter;

/// Serve a fake Kubernetes API server on loopback for tests, benchmarks and demos.
///
/// Prints `ready <server-url>` on stdout once it accepts requests, and runs until
/// interrupted (SIGINT or SIGTERM).
#[derive(Debug, Parser)]
#[command(name = "ferry-fakecluster", version)]
struct Args {
    /// Where to write the kubeconfig (server URL, CA data, bearer token).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// A scenario file (YAML); without it, the built-in `demo` scenario.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Name of the kubeconfig context, cluster and user.
    #[arg(long, default_value = "ferry-fake")]
    context_name: String,
    /// Delay every API response and portforward upgrade by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let scenario = match &args.scenario {
        Some(path) => {
            Scenario::from_file(path).with_context(|| format!("--scenario {}", path.display()))?
        }
        None => Scenario::demo(),
    };
    let opts = Options::default()
        .scenario(scenario)
        .listen(args.listen)
        .context_name(args.context_name)
        .latency(Duration::from_millis(args.latency_ms));
    let fake = FakeCluster::start(opts)
        .await
        .context("starting the fake cluster")?;
    fake.write_kubeconfig(&args.kubeconfig)
        .context("--kubeconfig")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {}", fake.url())?;
        out.flush()?;
    }
    wait_for_signal().await?;
    fake.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
