//! `ferry-fakecluster`: serve a fake Kubernetes cluster on loopback and write a kubeconfig
//! for it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_fakecluster::node::{Node, NodeOptions};
use ferry_fakecluster::{FakeCluster, Options, Scenario};
use tracing_subscriber::EnvFilter;

/// Serve a fake Kubernetes API server on loopback for tests, benchmarks and demos.
///
/// Prints `ready <server-url>` on stdout once it accepts requests, and runs until
/// interrupted (SIGINT or SIGTERM).
#[derive(Debug, Parser)]
#[command(
    name = "ferry-fakecluster",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where to write the kubeconfig (server URL, CA data, bearer token).
    #[arg(long, required = true)]
    kubeconfig: Option<PathBuf>,
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
    /// Also write a kubeconfig for one of the scenario's users, as NAME=PATH (repeatable).
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_user_kubeconfig)]
    user_kubeconfig: Vec<(String, PathBuf)>,
}

fn parse_user_kubeconfig(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got `{s}`")),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play a node for a Kubernetes API server (a real kube-apiserver, or this fake one):
    /// serve kubelet's port-forward endpoint over HTTPS, register a Node pointing at it,
    /// create the scenario's objects and run the controllers the API server lacks.
    ///
    /// Prints `ready <endpoint-url>` on stdout once the scenario's objects exist, and runs
    /// until interrupted (SIGINT or SIGTERM).
    Node {
        /// A kubeconfig for the API server (its current context), with rights to create
        /// nodes, namespaces, serviceaccounts, pods, services, workloads and
        /// endpointslices.
        #[arg(long)]
        apiserver_kubeconfig: PathBuf,
        /// A scenario file (YAML); without it, the built-in `demo` scenario.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Address of kubelet's endpoint (loopback only); its IP is the Node's InternalIP.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The Node's name.
        #[arg(long, default_value = ferry_fakecluster::node::DEFAULT_NODE_NAME)]
        node_name: String,
    },
}

fn load_scenario(path: Option<&PathBuf>) -> anyhow::Result<Scenario> {
    Ok(match path {
        Some(path) => {
            Scenario::from_file(path).with_context(|| format!("--scenario {}", path.display()))?
        }
        None => Scenario::demo(),
    })
}

async fn run_node(
    apiserver_kubeconfig: PathBuf,
    scenario: Option<PathBuf>,
    listen: SocketAddr,
    node_name: String,
) -> anyhow::Result<()> {
    let scenario = load_scenario(scenario.as_ref())?;
    let client = ferry_fakecluster::node::client_from_kubeconfig(&apiserver_kubeconfig)
        .await
        .context("--apiserver-kubeconfig")?;
    let opts = NodeOptions::default()
        .scenario(scenario)
        .listen(listen)
        .name(node_name);
    let node = Node::start(client, opts)
        .await
        .context("starting the node")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready https://{}", node.addr())?;
        out.flush()?;
    }
    wait_for_signal().await?;
    node.shutdown().await;
    Ok(())
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
    if let Some(Command::Node {
        apiserver_kubeconfig,
        scenario,
        listen,
        node_name,
    }) = args.command
    {
        return run_node(apiserver_kubeconfig, scenario, listen, node_name).await;
    }
    let Some(kubeconfig) = args.kubeconfig else {
        anyhow::bail!("--kubeconfig is required");
    };
    let scenario = load_scenario(args.scenario.as_ref())?;
    let opts = Options::default()
        .scenario(scenario)
        .listen(args.listen)
        .context_name(args.context_name)
        .latency(Duration::from_millis(args.latency_ms));
    let fake = FakeCluster::start(opts)
        .await
        .context("starting the fake cluster")?;
    fake.write_kubeconfig(&kubeconfig).context("--kubeconfig")?;
    for (name, path) in &args.user_kubeconfig {
        fake.write_kubeconfig_for_user(name, path)
            .with_context(|| format!("--user-kubeconfig {name}={}", path.display()))?;
    }
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
