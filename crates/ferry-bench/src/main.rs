//! `ferry-bench`: Ferry against `kubectl port-forward` and the direct path to the pod,
//! side by side, through an in-process fake cluster.
//!
//! ```sh
//! cargo build --release -p ferry-cli -p ferry-bench
//! cargo run --release -p ferry-bench -- [--quick] [--json PATH]
//! cargo run --release -p ferry-bench -- --soak 30m [--soak-interval 10s] [--json PATH]
//! ```
//!
//! See `docs/benchmarks.md` for what each figure means.

mod measure;
mod procs;
mod soak;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use ferry_fakecluster::cluster::pod_is_ready;
use ferry_fakecluster::kind::Kind;
use ferry_fakecluster::{Cluster, FakeCluster, Options, Scenario};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use measure::{CountingSink, Via, lock, mb_per_s, percentile_ms};
use procs::{Ferry, Kubectl, ProcSample};

const NS: &str = "bench";
const HTTP: u16 = 8080;
const ECHO: u16 = 9000;
const SINK: u16 = 9100;

/// The benchmark's scenario; `{SINK}` becomes the counting sink's address.
const SCENARIO: &str = include_str!("../scenario.yaml");

#[derive(Parser, Debug)]
#[command(
    name = "ferry-bench",
    about = "Ferry vs kubectl port-forward vs direct, through the fake cluster"
)]
struct Args {
    /// Tiny sizes and few iterations: checks that the harness works (well under 2 min).
    #[arg(long)]
    quick: bool,
    /// Where to write the results as JSON. Default: `ferry-bench.json` in the target dir.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Runs only these scenarios (comma-separated: throughput, inspect, setup, concurrency,
    /// concurrency-high, heal, memory, latency, idle). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Vec<String>,
    /// Simulated API latency of the second cluster, in ms.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Instead of the benchmark: one `ferry up` under steady connection load, pod churn and
    /// injected faults for DURATION (e.g. 30m, 90s, 1h30m), sampling its memory,
    /// descriptors and threads and counting failed connections. JSON default:
    /// `ferry-soak.json` in the target dir.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = soak::parse_duration,
        conflicts_with_all = ["quick", "only"]
    )]
    soak: Option<Duration>,
    /// With --soak: the time between samples.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = soak::parse_duration,
        default_value = "10s",
        requires = "soak"
    )]
    soak_interval: Duration,
}

/// How much work each scenario does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    bytes: u64,
    /// The longest one transfer of `bytes` may take before it counts as failed.
    transfer_limit: Duration,
    /// Throughput: best of this many transfers per path.
    rounds: usize,
    parallel: usize,
    setup_iters: usize,
    conc_conns: usize,
    conc_rounds: usize,
    /// The second, larger concurrency scenario.
    conc_high: usize,
    /// The memory scenario: this many bursts of `mem_conns` simultaneous connections.
    mem_bursts: usize,
    mem_conns: usize,
    heal_iters: usize,
    idle_forwards: usize,
    idle_kubectl: usize,
    idle_secs: u64,
}

impl Sizes {
    fn full() -> Self {
        Self {
            bytes: 256 << 20,
            transfer_limit: Duration::from_secs(300),
            rounds: 3,
            parallel: 8,
            setup_iters: 300,
            conc_conns: 500,
            conc_rounds: 10,
            conc_high: 2000,
            mem_bursts: 2,
            mem_conns: 500,
            heal_iters: 10,
            idle_forwards: 200,
            idle_kubectl: 200,
            idle_secs: 60,
        }
    }

    fn quick() -> Self {
        Self {
            bytes: 4 << 20,
            transfer_limit: Duration::from_secs(20),
            rounds: 1,
            parallel: 8,
            setup_iters: 20,
            conc_conns: 20,
            conc_rounds: 10,
            conc_high: 50,
            mem_bursts: 2,
            mem_conns: 20,
            heal_iters: 2,
            idle_forwards: 10,
            idle_kubectl: 2,
            idle_secs: 3,
        }
    }
}

/// One cell of the table.
#[derive(Debug, Clone)]
enum Cell {
    Num(f64),
    Text(String),
    None,
}

impl Cell {
    fn num(&self) -> Option<f64> {
        match self {
            Cell::Num(v) => Some(*v),
            _ => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Cell::Num(v) if *v >= 100.0 => format!("{v:.0}"),
            Cell::Num(v) if *v >= 10.0 => format!("{v:.1}"),
            Cell::Num(v) => format!("{v:.2}"),
            Cell::Text(t) => t.clone(),
            Cell::None => "-".into(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Num(v) => json!(v),
            Cell::Text(t) => json!(t),
            Cell::None => Value::Null,
        }
    }
}

/// One line of results.
#[derive(Debug, Clone)]
struct Row {
    scenario: String,
    metric: String,
    unit: &'static str,
    direct: Cell,
    /// The fake API server's channel tunnel alone, with an in-process client (throughput
    /// only).
    tunnel: Cell,
    /// The fake API server's multiplexed session alone, in-process (throughput only).
    session: Cell,
    kubectl: Cell,
    ferry: Cell,
    /// The target, in words.
    target: Option<String>,
    met: Option<bool>,
    note: Option<String>,
}

impl Row {
    fn new(scenario: &str, metric: &str, unit: &'static str) -> Self {
        Self {
            scenario: scenario.into(),
            metric: metric.into(),
            unit,
            direct: Cell::None,
            tunnel: Cell::None,
            session: Cell::None,
            kubectl: Cell::None,
            ferry: Cell::None,
            target: None,
            met: None,
            note: None,
        }
    }

    fn ratio(a: &Cell, b: &Cell) -> Option<f64> {
        match (a.num(), b.num()) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }
}

/// The three paths' local addresses for one port.
#[derive(Debug, Clone, Copy)]
struct Paths {
    direct: Option<SocketAddr>,
    kubectl: Option<SocketAddr>,
    ferry: Option<SocketAddr>,
}

struct Bench {
    sizes: Sizes,
    quick: bool,
    dir: tempfile::TempDir,
    fake: FakeCluster,
    kubeconfig: PathBuf,
    ferry_bin: PathBuf,
    kubectl_bin: Option<PathBuf>,
    rows: Vec<Row>,
    /// Harness failures: a path that could not be measured at all.
    errors: Vec<String>,
    _sink: CountingSink,
    latency: Duration,
    only: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.soak {
        Some(duration) => rt.block_on(soak::run(soak::SoakArgs {
            duration,
            interval: args.soak_interval,
            json: args.json,
        })),
        None => rt.block_on(run(args)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ferry-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn note(msg: impl AsRef<str>) {
    eprintln!("[ferry-bench] {}", msg.as_ref());
}

async fn start_cluster(
    sink: SocketAddr,
    latency: Duration,
    dir: &Path,
    name: &str,
) -> anyhow::Result<(FakeCluster, PathBuf)> {
    let scenario = Scenario::from_yaml(&SCENARIO.replace("{SINK}", &sink.to_string()))
        .context("the bench scenario")?;
    let fake = FakeCluster::start(Options::default().scenario(scenario).latency(latency)).await?;
    let kubeconfig = dir.join(name);
    fake.write_kubeconfig(&kubeconfig)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fake
        .cluster()
        .list(Kind::Pod, None)
        .1
        .iter()
        .all(|p| pod_is_ready(p))
    {
        if Instant::now() >= deadline {
            bail!("the fake cluster's pods never became ready");
        }
        sleep(Duration::from_millis(20)).await;
    }
    Ok((fake, kubeconfig))
}

/// The ready pod of deployment `app` in the bench namespace.
fn ready_pod(cluster: &Cluster, app: &str) -> Option<String> {
    cluster
        .list(Kind::Pod, Some(NS))
        .1
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"].as_str() == Some(app) && pod_is_ready(p))
        .find_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
}

/// The direct loopback address of the ready pod of `app`, port `port`.
fn ready_backend(cluster: &Cluster, app: &str, port: u16) -> Option<SocketAddr> {
    let pod = ready_pod(cluster, app)?;
    cluster
        .backends()
        .into_iter()
        .find(|b| b.namespace == NS && b.pod == pod && b.port == port)
        .map(|b| b.addr)
}

fn ferry_config(forwards: &[(String, &str, u16)]) -> String {
    let mut s = String::from("version: 1\nforwards:\n");
    for (name, target, port) in forwards {
        s.push_str(&format!(
            "  - {{name: {name}, namespace: {NS}, target: {target}, port: {port}, local_port: 0}}\n"
        ));
    }
    s
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    json!({"nproc": nproc, "cpu": cpu, "kernel": kernel})
}

/// `/proc/loadavg`'s first three fields: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn default_json_path() -> PathBuf {
    // <target>/<profile>/ferry-bench → <target>/ferry-bench.json
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("ferry-bench.json")))
        .unwrap_or_else(|| PathBuf::from("target/ferry-bench.json"))
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let load_start = loadavg();
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    // Every simultaneous connection is a client socket here and, on the direct path, the
    // pod's socket too, besides the fake API server's own.
    let need_files = 2 * sizes.conc_high.max(sizes.mem_conns) as u64 + 1024;
    let open_files = match procs::ensure_open_files(need_files) {
        Ok((n, raised_from)) => {
            match raised_from {
                Some(from) => note(format!("open-file limit: raised from {from} to {n}")),
                None => note(format!("open-file limit: {n}")),
            }
            json!(n)
        }
        Err(why) => {
            note(format!("warning: {why}"));
            json!(why)
        }
    };
    let ferry_bin = procs::ferry_bin()?;
    let kubectl_bin = procs::kubectl_bin();
    let kubectl_version = match &kubectl_bin {
        Some(k) => procs::kubectl_version(k).await,
        None => "not installed".into(),
    };
    note(format!(
        "ferry: {}; kubectl: {kubectl_version}",
        ferry_bin.display()
    ));
    let dir = tempfile::tempdir()?;
    let sink = CountingSink::start().await?;
    let (fake, kubeconfig) = start_cluster(sink.addr, Duration::ZERO, dir.path(), "kubeconfig")
        .await
        .context("starting the fake cluster")?;
    let mut bench = Bench {
        sizes,
        quick: args.quick,
        dir,
        fake,
        kubeconfig,
        ferry_bin,
        kubectl_bin,
        rows: Vec::new(),
        errors: Vec::new(),
        _sink: sink,
        latency: Duration::from_millis(args.latency_ms),
        only: args.only.clone(),
    };
    bench.run_all().await?;

    let rows = &bench.rows;
    print_table(rows);
    // What the forwarders told the API server they are: the kubectl that ran may not be
    // the one `kubectl version --client` names (a version dispatcher picks one per server).
    println!("\nuser agents on the fake API server (upgrades, other requests):");
    for a in bench.fake.requests().agents() {
        println!("  {}: {}, {}", a.user_agent, a.upgrades, a.api);
    }
    println!(
        "\nload average: {load_start} at the start, {} at the end",
        loadavg()
    );
    let value = json!({
        "quick": args.quick,
        "machine": machine(),
        "kubectl": kubectl_version,
        "ferry": bench.ferry_bin.display().to_string(),
        "seconds": started.elapsed().as_secs_f64(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "sizes": format!("{sizes:?}"),
        "open_files_limit": open_files,
        "user_agents": serde_json::to_value(bench.fake.requests().agents())?,
        "results": rows.iter().map(|r| json!({
            "scenario": r.scenario,
            "metric": r.metric,
            "unit": r.unit,
            "direct": r.direct.json(),
            "api_tunnel": r.tunnel.json(),
            "api_session": r.session.json(),
            "kubectl": r.kubectl.json(),
            "ferry": r.ferry.json(),
            "ferry_vs_kubectl": Row::ratio(&r.ferry, &r.kubectl),
            "ferry_vs_direct": Row::ratio(&r.ferry, &r.direct),
            "target": r.target,
            "met": r.met,
            "note": r.note,
        })).collect::<Vec<_>>(),
        "harness_errors": bench.errors,
    });
    let path = args.json.unwrap_or_else(default_json_path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&value)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nresults: {} ({:.0} s)",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    if bench.errors.is_empty() {
        Ok(true)
    } else {
        eprintln!("\nharness failures:");
        for e in &bench.errors {
            eprintln!("  - {e}");
        }
        Ok(false)
    }
}

fn print_table(rows: &[Row]) {
    let header = [
        "scenario",
        "metric",
        "unit",
        "direct",
        "api-tunnel",
        "api-session",
        "kubectl",
        "ferry",
        "f/kubectl",
        "f/direct",
        "target",
        "met",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let ratio = |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into());
        lines.push(vec![
            r.scenario.clone(),
            r.metric.clone(),
            r.unit.to_string(),
            r.direct.show(),
            r.tunnel.show(),
            r.session.show(),
            r.kubectl.show(),
            r.ferry.show(),
            ratio(Row::ratio(&r.ferry, &r.kubectl)),
            ratio(Row::ratio(&r.ferry, &r.direct)),
            r.target.clone().unwrap_or_else(|| "-".into()),
            match r.met {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!();
    for (n, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
        if n == 0 {
            let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("| {} |", dashes.join(" | "));
        }
    }
    for r in rows.iter().filter(|r| r.note.is_some()) {
        println!(
            "  {} / {}: {}",
            r.scenario,
            r.metric,
            r.note.as_deref().unwrap_or_default()
        );
    }
}

impl Bench {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == scenario)
    }

    fn fail(&mut self, what: &str, e: &anyhow::Error) {
        let msg = format!("{what}: {e:#}");
        note(format!("FAILED {msg}"));
        self.errors.push(msg);
    }

    fn kubectl_start(
        &self,
        kubeconfig: &Path,
        target: &str,
        ports: &[u16],
    ) -> Option<anyhow::Result<Kubectl>> {
        let bin = self.kubectl_bin.as_ref()?;
        Some(Kubectl::start(
            bin,
            kubeconfig,
            self.dir.path(),
            NS,
            target,
            ports,
        ))
    }

    /// Starts kubectl on deployment/bench's three ports and waits for it.
    async fn kubectl_main(
        &mut self,
        kubeconfig: &Path,
        what: &str,
    ) -> Option<(Kubectl, HashMap<u16, SocketAddr>)> {
        let started = self.kubectl_start(kubeconfig, "deployment/bench", &[HTTP, ECHO, SINK])?;
        let res = async {
            let mut k = started?;
            let ports = k.wait(&[HTTP, ECHO, SINK], Duration::from_secs(30)).await?;
            let echo = ports.get(&ECHO).copied().context("no echo port")?;
            measure::ping(echo, Duration::from_secs(10)).await?;
            Ok::<_, anyhow::Error>((k, ports))
        }
        .await;
        match res {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(&format!("kubectl ({what})"), &e);
                None
            }
        }
    }

    /// Starts `ferry up` with forwards to deployment/bench's three ports (and the heal
    /// deployment's echo) and waits until each accepts and echoes.
    async fn ferry_main(
        &mut self,
        kubeconfig: &Path,
        what: &str,
    ) -> Option<(Ferry, HashMap<String, SocketAddr>)> {
        let forwards = vec![
            ("web".to_string(), "deployment/bench", HTTP),
            ("echo".to_string(), "deployment/bench", ECHO),
            ("sink".to_string(), "deployment/bench", SINK),
            ("heal".to_string(), "deployment/heal", ECHO),
        ];
        let names: Vec<String> = forwards.iter().map(|f| f.0.clone()).collect();
        let file = format!("ferry-{what}.yaml");
        let res = async {
            let mut f = Ferry::start(
                &self.ferry_bin,
                kubeconfig,
                self.dir.path(),
                &file,
                &ferry_config(&forwards),
            )?;
            let locals = f.wait(&names, false, Duration::from_secs(30)).await?;
            for n in ["echo", "heal"] {
                let addr = locals.get(n).copied().context("no local address")?;
                measure::ping(addr, Duration::from_secs(30)).await?;
            }
            Ok::<_, anyhow::Error>((f, locals))
        }
        .await;
        match res {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(&format!("ferry ({what})"), &e);
                None
            }
        }
    }

    async fn run_all(&mut self) -> anyhow::Result<()> {
        let cluster = self.fake.cluster().clone();
        let direct = |port| ready_backend(&cluster, "bench", port);
        let kubeconfig = self.kubeconfig.clone();
        let kubectl = self.kubectl_main(&kubeconfig, "0ms").await;
        let ferry = self.ferry_main(&kubeconfig, "0ms").await;
        let paths = |port: u16, fname: &str| Paths {
            direct: direct(port),
            kubectl: kubectl.as_ref().and_then(|(_, p)| p.get(&port).copied()),
            ferry: ferry.as_ref().and_then(|(_, l)| l.get(fname).copied()),
        };
        let web = paths(HTTP, "web");
        let sink = paths(SINK, "sink");
        let echo = paths(ECHO, "echo");
        let pids = (
            kubectl.as_ref().and_then(|(k, _)| k.pid()),
            ferry.as_ref().and_then(|(f, _)| f.pid()),
        );

        if self.wants("throughput") {
            note("throughput");
            self.throughput(web, sink, pids).await;
        }
        if self.wants("inspect") {
            note("HTTP inspection on against off");
            self.inspection().await;
        }
        if self.wants("setup") {
            note("connection setup");
            self.setup(echo, Duration::ZERO).await;
        }
        if self.wants("concurrency") {
            note("concurrency");
            self.concurrency(echo, self.sizes.conc_conns, true).await;
        }
        if self.wants("concurrency-high") {
            note("concurrency, more connections");
            self.concurrency(echo, self.sizes.conc_high, false).await;
        }
        if self.wants("heal") {
            note("heal");
            let heal_ferry = ferry.as_ref().and_then(|(_, l)| l.get("heal").copied());
            self.heal(heal_ferry).await;
        }
        if let Some((k, _)) = kubectl {
            k.stop().await;
        }
        if let Some((f, _)) = ferry {
            f.stop().await;
        }
        // With fresh forwarders, and with the others gone: the upgrades are counted per
        // user agent, not per process.
        if self.wants("memory") {
            note("memory after bursts");
            self.memory().await;
        }
        if self.wants("latency") {
            note(format!(
                "connection setup at {} ms API latency",
                self.latency.as_millis()
            ));
            self.setup_with_latency().await;
        }
        if self.wants("idle") {
            note(format!("idle cost ({} s)", self.sizes.idle_secs));
            self.idle().await;
        }
        Ok(())
    }

    /// In-process paths to deployment/bench's `port` through the fake API server, with a
    /// client built as Ferry builds it: a WebSocket channel tunnel per connection, and
    /// streams on the pod's multiplexed session(s).
    async fn in_process_vias(&mut self, port: u16) -> (Option<Via>, Option<Via>) {
        let Some(pod) = ready_pod(self.fake.cluster(), "bench") else {
            return (None, None);
        };
        let pool = ferry_core::cluster::ClientPool::new(
            ferry_core::cluster::KubeconfigSource::from_paths(vec![self.kubeconfig.clone()]),
        );
        match pool.client(None).await {
            Ok(cc) => (
                Some(Via::Tunnel {
                    client: cc.client.clone(),
                    namespace: NS.into(),
                    pod: pod.clone(),
                    port,
                }),
                Some(Via::Session {
                    tunnels: cc.tunnels.clone(),
                    namespace: NS.into(),
                    pod,
                    port,
                }),
            ),
            Err(e) => {
                self.fail(
                    "a kube client for the in-process tunnels",
                    &anyhow::anyhow!("{e}"),
                );
                (None, None)
            }
        }
    }

    async fn throughput(
        &mut self,
        web: Paths,
        sink: Paths,
        (kubectl_pid, ferry_pid): (Option<u32>, Option<u32>),
    ) {
        let n = self.sizes.bytes;
        let k = self.sizes.parallel;
        let mib = n >> 20;
        let ticks_per_s = procs::clock_ticks();
        for (conns, label) in [(1usize, "1 connection"), (k, "8 connections")] {
            for upload in [false, true] {
                let dir = if upload { "upload" } else { "download" };
                let scenario = format!("throughput, {label}");
                let mut row = Row::new(&scenario, &format!("{dir} {mib} MiB"), "MB/s");
                let mut per_gb = Row::new(
                    &scenario,
                    &format!("forwarder CPU per GB, {dir}"),
                    "CPU-s/GB",
                );
                let paths = if upload { sink } else { web };
                let (tunnel, session) =
                    self.in_process_vias(if upload { SINK } else { HTTP }).await;
                let protocol = match &session {
                    Some(Via::Session { tunnels, .. }) => Some(tunnels.clone()),
                    _ => None,
                };
                let ways = [
                    ("direct", paths.direct.map(Via::Tcp), None),
                    ("api-tunnel", tunnel, None),
                    ("api-session", session, None),
                    ("kubectl", paths.kubectl.map(Via::Tcp), kubectl_pid),
                    ("ferry", paths.ferry.map(Via::Tcp), ferry_pid),
                ];
                // Best of `rounds`, the paths taking turns, so that load from elsewhere on
                // the machine hits every path alike.
                let mut best: [Option<(f64, f64)>; 5] = [None; 5];
                let mut failed = [false; 5];
                // The forwarder's CPU ticks and the bytes moved, over every measured
                // transfer (steadier than the best transfer's alone).
                let mut spent = [(0u64, 0u64); 5];
                for _ in 0..self.sizes.rounds {
                    for (i, (which, via, pid)) in ways.iter().enumerate() {
                        let Some(via) = via else { continue };
                        if failed[i] {
                            continue;
                        }
                        // A small warm-up transfer, not counted.
                        let limit = self.sizes.transfer_limit;
                        let _ =
                            measure::parallel(via, (1 << 20) * conns as u64, conns, upload, limit)
                                .await;
                        let before = pid.and_then(|p| procs::sample(p).ok());
                        let res = measure::parallel(via, n, conns, upload, limit).await;
                        let after = pid.and_then(|p| procs::sample(p).ok());
                        match res {
                            Ok(took) => {
                                // The forwarder's CPU during the transfer, in cores.
                                let ticks = match (before, after) {
                                    (Some(b), Some(a)) => {
                                        Some(a.cpu_ticks.saturating_sub(b.cpu_ticks))
                                    }
                                    _ => None,
                                };
                                if let Some(t) = ticks {
                                    spent[i].0 += t;
                                    spent[i].1 += n;
                                }
                                let cores = ticks.map_or(0.0, |t| {
                                    t as f64 / ticks_per_s / took.as_secs_f64().max(1e-9)
                                });
                                let v = mb_per_s(n, took);
                                if best[i].is_none_or(|(b, _)| v > b) {
                                    best[i] = Some((v, cores));
                                }
                            }
                            Err(e) => {
                                failed[i] = true;
                                self.fail(&format!("{which} {dir} ({label})"), &e);
                            }
                        }
                    }
                }
                let mut notes = Vec::new();
                for (i, (which, via, pid)) in ways.iter().enumerate() {
                    if via.is_none() {
                        continue;
                    }
                    let cell = match best[i] {
                        _ if failed[i] => Cell::Text("error".into()),
                        Some((v, cores)) => {
                            if pid.is_some() {
                                notes.push(format!("{which} used {:.0}% of a core", 100.0 * cores));
                            }
                            Cell::Num(v)
                        }
                        None => Cell::None,
                    };
                    let cpu = match spent[i] {
                        (ticks, bytes) if pid.is_some() && bytes > 0 => {
                            Cell::Num(ticks as f64 / ticks_per_s / (bytes as f64 / 1e9))
                        }
                        _ => Cell::None,
                    };
                    match *which {
                        "direct" => row.direct = cell,
                        "api-tunnel" => row.tunnel = cell,
                        "api-session" => row.session = cell,
                        "kubectl" => (row.kubectl, per_gb.kubectl) = (cell, cpu),
                        _ => (row.ferry, per_gb.ferry) = (cell, cpu),
                    }
                }
                if let Some(p) = protocol.and_then(|t| t.protocol()) {
                    notes.push(format!("api-session spoke {p:?}"));
                }
                row.target = Some("≥1.5x kubectl".into());
                row.met = match (row.ferry.num(), row.kubectl.num()) {
                    (Some(f), Some(k)) => Some(f >= 1.5 * k),
                    _ => None,
                };
                if !notes.is_empty() {
                    row.note = Some(notes.join(", "));
                }
                per_gb.target = Some("ferry ≤ kubectl".into());
                per_gb.met = match (per_gb.ferry.num(), per_gb.kubectl.num()) {
                    (Some(f), Some(k)) => Some(f <= k),
                    _ => None,
                };
                note(format!(
                    "  {} {}: direct {} api-tunnel {} api-session {} kubectl {} ferry {}; CPU-s/GB kubectl {} ferry {}",
                    row.scenario,
                    row.metric,
                    row.direct.show(),
                    row.tunnel.show(),
                    row.session.show(),
                    row.kubectl.show(),
                    row.ferry.show(),
                    per_gb.kubectl.show(),
                    per_gb.ferry.show()
                ));
                self.rows.push(row);
                self.rows.push(per_gb);
            }
        }
    }

    /// One `ferry up` with two forwards to deployment/bench's HTTP port, one inspected
    /// (`inspect: http`) and one not: downloads through each in turns (best of
    /// `rounds`), then HTTP requests' connect → first byte through each, alternating.
    async fn inspection(&mut self) {
        let config = format!(
            "version: 1\nforwards:\n  - {{name: plain, namespace: {NS}, target: deployment/bench, port: {HTTP}, local_port: 0}}\n  - {{name: inspected, namespace: {NS}, target: deployment/bench, port: {HTTP}, local_port: 0, inspect: http}}\n"
        );
        let names = vec!["plain".to_string(), "inspected".to_string()];
        let started = async {
            let mut f = Ferry::start(
                &self.ferry_bin,
                &self.kubeconfig,
                self.dir.path(),
                "ferry-inspect.yaml",
                &config,
            )?;
            let locals = f.wait(&names, false, Duration::from_secs(30)).await?;
            let plain = locals.get("plain").copied().context("no local address")?;
            let inspected = locals
                .get("inspected")
                .copied()
                .context("no local address")?;
            Ok::<_, anyhow::Error>((f, plain, inspected))
        }
        .await;
        let (ferry, plain, inspected) = match started {
            Ok(v) => v,
            Err(e) => {
                self.fail("ferry (inspection)", &e);
                return;
            }
        };
        let n = self.sizes.bytes;
        let mib = n >> 20;
        let limit = self.sizes.transfer_limit;
        for (conns, label) in [
            (1usize, "1 connection"),
            (self.sizes.parallel, "8 connections"),
        ] {
            let scenario = format!("inspection, download, {label}");
            let mut best = [0.0f64; 2];
            let mut failed = None;
            for _ in 0..self.sizes.rounds.max(2) {
                for (i, addr) in [plain, inspected].into_iter().enumerate() {
                    let via = Via::Tcp(addr);
                    let _ = measure::parallel(&via, (1 << 20) * conns as u64, conns, false, limit)
                        .await;
                    match measure::parallel(&via, n, conns, false, limit).await {
                        Ok(took) => best[i] = best[i].max(mb_per_s(n, took)),
                        Err(e) => failed = Some(e),
                    }
                }
            }
            if let Some(e) = failed {
                self.fail(&format!("inspection download ({label})"), &e);
                continue;
            }
            let mut off = Row::new(&scenario, &format!("{mib} MiB, inspection off"), "MB/s");
            off.ferry = Cell::Num(best[0]);
            let mut on = Row::new(&scenario, &format!("{mib} MiB, inspection on"), "MB/s");
            on.ferry = Cell::Num(best[1]);
            let mut ratio = Row::new(&scenario, "throughput on / off", "ratio");
            let r = best[1] / best[0].max(1e-9);
            ratio.ferry = Cell::Num(r);
            ratio.target = Some("≥ 0.90".into());
            ratio.met = Some(r >= 0.90);
            note(format!(
                "  {scenario}: off {:.0} MB/s, on {:.0} MB/s ({r:.2}x)",
                best[0], best[1]
            ));
            self.rows.extend([off, on, ratio]);
        }

        let scenario = format!("inspection, {} HTTP requests", self.sizes.setup_iters);
        let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        let mut failed = None;
        for _ in 0..3 {
            let _ = measure::http_first_byte(plain).await;
            let _ = measure::http_first_byte(inspected).await;
        }
        for _ in 0..self.sizes.setup_iters {
            for (i, addr) in [plain, inspected].into_iter().enumerate() {
                match measure::http_first_byte(addr).await {
                    Ok(d) => samples[i].push(d),
                    Err(e) => failed = Some(e),
                }
            }
        }
        ferry.stop().await;
        if let Some(e) = failed {
            self.fail("inspection setup", &e);
            return;
        }
        let (Some(off), Some(on)) = (
            percentile_ms(&samples[0], 50.0),
            percentile_ms(&samples[1], 50.0),
        ) else {
            return;
        };
        let mut off_row = Row::new(&scenario, "connect → first byte p50, inspection off", "ms");
        off_row.ferry = Cell::Num(off);
        let mut on_row = Row::new(&scenario, "connect → first byte p50, inspection on", "ms");
        on_row.ferry = Cell::Num(on);
        let mut added = Row::new(&scenario, "added by inspection (p50 on − off)", "ms");
        added.ferry = Cell::Num(on - off);
        added.target = Some("≤ 0.2 ms".into());
        added.met = Some(on - off <= 0.2);
        note(format!("  {scenario}: p50 off {off:.3} ms, on {on:.3} ms"));
        self.rows.extend([off_row, on_row, added]);
    }

    /// Sequential connect → one byte → echo, `setup_iters` times per path.
    async fn setup_series(&mut self, addr: SocketAddr, what: &str) -> Option<Vec<Duration>> {
        // Three warm-up connections, not counted.
        for _ in 0..3 {
            let _ = measure::first_byte(addr).await;
        }
        let mut samples = Vec::with_capacity(self.sizes.setup_iters);
        for _ in 0..self.sizes.setup_iters {
            match measure::first_byte(addr).await {
                Ok(d) => samples.push(d),
                Err(e) => {
                    self.fail(&format!("connection setup via {what}"), &e);
                    return None;
                }
            }
        }
        Some(samples)
    }

    async fn setup(&mut self, echo: Paths, latency: Duration) {
        let scenario = format!(
            "setup, {} sequential, {} ms API latency",
            self.sizes.setup_iters,
            latency.as_millis()
        );
        let mut p50 = Row::new(&scenario, "connect → first byte p50", "ms");
        let mut p99 = Row::new(&scenario, "connect → first byte p99", "ms");
        for (which, addr) in [
            ("direct", echo.direct),
            ("kubectl", echo.kubectl),
            ("ferry", echo.ferry),
        ] {
            let Some(addr) = addr else { continue };
            let samples = self.setup_series(addr, which).await;
            let (a, b) = match samples {
                Some(s) => (
                    percentile_ms(&s, 50.0).map_or(Cell::None, Cell::Num),
                    percentile_ms(&s, 99.0).map_or(Cell::None, Cell::Num),
                ),
                None => (Cell::Text("error".into()), Cell::Text("error".into())),
            };
            match which {
                "direct" => (p50.direct, p99.direct) = (a, b),
                "kubectl" => (p50.kubectl, p99.kubectl) = (a, b),
                _ => (p50.ferry, p99.ferry) = (a, b),
            }
        }
        for row in [&mut p50, &mut p99] {
            row.target = Some("≤ kubectl".into());
            row.met = match (row.ferry.num(), row.kubectl.num()) {
                (Some(f), Some(k)) => Some(f <= k),
                _ => None,
            };
        }
        note(format!(
            "  {scenario}: p50 direct {} kubectl {} ferry {}",
            p50.direct.show(),
            p50.kubectl.show(),
            p50.ferry.show()
        ));
        self.rows.push(p50);
        self.rows.push(p99);
    }

    /// Setup latency again through a second fake cluster with API latency.
    async fn setup_with_latency(&mut self) {
        let dir = self.dir.path().to_path_buf();
        let started =
            start_cluster(self._sink.addr, self.latency, &dir, "kubeconfig-latency").await;
        let (fake, kubeconfig) = match started {
            Ok(v) => v,
            Err(e) => {
                self.fail("the fake cluster with latency", &e);
                return;
            }
        };
        let kubectl = self.kubectl_main(&kubeconfig, "latency").await;
        let ferry = self.ferry_main(&kubeconfig, "latency").await;
        let echo = Paths {
            direct: ready_backend(fake.cluster(), "bench", ECHO),
            kubectl: kubectl.as_ref().and_then(|(_, p)| p.get(&ECHO).copied()),
            ferry: ferry.as_ref().and_then(|(_, l)| l.get("echo").copied()),
        };
        self.setup(echo, self.latency).await;
        if let Some((k, _)) = kubectl {
            k.stop().await;
        }
        if let Some((f, _)) = ferry {
            f.stop().await;
        }
        fake.shutdown().await;
    }

    /// `n` connections at once on each path, each doing `conc_rounds` echo rounds; with
    /// `p99_target`, Ferry's p99 is held to kubectl's.
    async fn concurrency(&mut self, echo: Paths, n: usize, p99_target: bool) {
        let rounds = self.sizes.conc_rounds;
        let scenario = format!("concurrency, {n} at once × {rounds} rounds");
        let mut failures = Row::new(&scenario, "failed connections", "count");
        let mut p50 = Row::new(&scenario, "connection time p50", "ms");
        let mut p99 = Row::new(&scenario, "connection time p99", "ms");
        let mut upgrades = Row::new(&scenario, UPGRADES_METRIC, "count");
        upgrades.direct = Cell::Text("n/a".into());
        let mut first_error: Vec<String> = Vec::new();
        let mut counted: Vec<String> = Vec::new();
        for (which, addr) in [
            ("direct", echo.direct),
            ("kubectl", echo.kubectl),
            ("ferry", echo.ferry),
        ] {
            let Some(addr) = addr else { continue };
            let before = Upgrades::now(&self.fake);
            let b = measure::burst(addr, n, rounds, CONN_LIMIT).await;
            let seen = Upgrades::now(&self.fake).since(before);
            if let Some(e) = b.first_error {
                first_error.push(format!("{which}: {e}"));
            }
            let cells = (
                Cell::Num(b.failed as f64),
                percentile_ms(&b.ok, 50.0).map_or(Cell::None, Cell::Num),
                percentile_ms(&b.ok, 99.0).map_or(Cell::None, Cell::Num),
            );
            match which {
                "direct" => (failures.direct, p50.direct, p99.direct) = cells,
                "kubectl" => {
                    (failures.kubectl, p50.kubectl, p99.kubectl) = cells;
                    upgrades.kubectl = per_thousand(seen.kubectl, n);
                    counted.push(format!("kubectl {}", seen.kubectl));
                }
                _ => {
                    (failures.ferry, p50.ferry, p99.ferry) = cells;
                    upgrades.ferry = per_thousand(seen.ferry, n);
                    counted.push(format!("ferry {}", seen.ferry));
                }
            }
            // Let the forwarders settle before the next path.
            sleep(Duration::from_millis(500)).await;
        }
        failures.target = Some("ferry: 0".into());
        failures.met = failures.ferry.num().map(|f| f == 0.0);
        if !first_error.is_empty() {
            failures.note = Some(format!("first errors: {}", first_error.join("; ")));
        }
        if p99_target {
            p99.target = Some("≤ kubectl".into());
            p99.met = match (p99.ferry.num(), p99.kubectl.num()) {
                (Some(f), Some(k)) => Some(f <= k),
                _ => None,
            };
        }
        upgrade_target(&mut upgrades, &counted, n);
        note(format!(
            "  failures direct {} kubectl {} ferry {}; p99 kubectl {} ferry {}; upgrades: {}",
            failures.direct.show(),
            failures.kubectl.show(),
            failures.ferry.show(),
            p99.kubectl.show(),
            p99.ferry.show(),
            counted.join(", ")
        ));
        self.rows.push(failures);
        self.rows.push(p50);
        self.rows.push(p99);
        self.rows.push(upgrades);
    }

    /// Fresh forwarders to deployment/bench's echo; `mem_bursts` bursts of `mem_conns`
    /// simultaneous connections each (one path after the other), then each process's
    /// resident memory right after its last burst and its peak.
    async fn memory(&mut self) {
        let n = self.sizes.mem_conns;
        let bursts = self.sizes.mem_bursts;
        let rounds = self.sizes.conc_rounds;
        let scenario = format!("memory, {bursts} bursts of {n} at once × {rounds} rounds");
        let mut rss = Row::new(&scenario, "RSS after the last burst", "MiB");
        let mut hwm = Row::new(&scenario, "peak RSS (VmHWM)", "MiB");
        let mut failures = Row::new(&scenario, "failed connections", "count");
        let mut upgrades = Row::new(&scenario, UPGRADES_METRIC, "count");
        for row in [&mut rss, &mut hwm, &mut failures, &mut upgrades] {
            row.direct = Cell::Text("n/a".into());
        }
        let kubeconfig = self.kubeconfig.clone();
        let mut kubectl = None;
        if let Some(started) = self.kubectl_start(&kubeconfig, "deployment/bench", &[ECHO]) {
            let res = async {
                let mut k = started?;
                let ports = k.wait(&[ECHO], Duration::from_secs(30)).await?;
                let addr = ports.get(&ECHO).copied().context("no echo port")?;
                measure::ping(addr, Duration::from_secs(10)).await?;
                Ok::<_, anyhow::Error>((k, addr))
            }
            .await;
            match res {
                Ok(v) => kubectl = Some(v),
                Err(e) => self.fail("kubectl (memory)", &e),
            }
        }
        let res = async {
            let forwards = [("echo".to_string(), "deployment/bench", ECHO)];
            let mut f = Ferry::start(
                &self.ferry_bin,
                &kubeconfig,
                self.dir.path(),
                "ferry-memory.yaml",
                &ferry_config(&forwards),
            )?;
            let locals = f
                .wait(&["echo".to_string()], false, Duration::from_secs(30))
                .await?;
            let addr = locals.get("echo").copied().context("no local address")?;
            measure::ping(addr, Duration::from_secs(30)).await?;
            Ok::<_, anyhow::Error>((f, addr))
        }
        .await;
        let ferry = match res {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail("ferry (memory)", &e);
                None
            }
        };
        let paths = [
            (
                "kubectl",
                kubectl.as_ref().and_then(|(k, a)| Some((k.pid()?, *a))),
            ),
            (
                "ferry",
                ferry.as_ref().and_then(|(f, a)| Some((f.pid()?, *a))),
            ),
        ];
        let mut start_mem = Vec::new();
        let mut first_error = Vec::new();
        let mut counted = Vec::new();
        for (which, path) in paths {
            let Some((pid, addr)) = path else { continue };
            if let Ok(s) = procs::sample(pid) {
                start_mem.push(format!("{which} {:.1}", mib(s.rss_kb)));
            }
            let before = Upgrades::now(&self.fake);
            let mut failed = 0usize;
            for i in 0..bursts {
                if i > 0 {
                    sleep(Duration::from_secs(1)).await;
                }
                let b = measure::burst(addr, n, rounds, CONN_LIMIT).await;
                failed += b.failed;
                if let Some(e) = b.first_error
                    && first_error.len() < 2
                {
                    first_error.push(format!("{which}, burst {}: {e}", i + 1));
                }
            }
            let sample = procs::sample(pid);
            let seen = Upgrades::now(&self.fake).since(before);
            let connections = n * bursts;
            let (rss_cell, hwm_cell) = match sample {
                Ok(s) => (Cell::Num(mib(s.rss_kb)), Cell::Num(mib(s.hwm_kb))),
                Err(e) => {
                    self.fail(&format!("{which} (memory)"), &e);
                    (Cell::Text("error".into()), Cell::Text("error".into()))
                }
            };
            let failed = Cell::Num(failed as f64);
            if which == "kubectl" {
                (rss.kubectl, hwm.kubectl, failures.kubectl) = (rss_cell, hwm_cell, failed);
                upgrades.kubectl = per_thousand(seen.kubectl, connections);
                counted.push(format!("kubectl {}", seen.kubectl));
            } else {
                (rss.ferry, hwm.ferry, failures.ferry) = (rss_cell, hwm_cell, failed);
                upgrades.ferry = per_thousand(seen.ferry, connections);
                counted.push(format!("ferry {}", seen.ferry));
            }
        }
        rss.target = Some("ferry ≤ 120 MiB".into());
        rss.met = rss.ferry.num().map(|v| v <= 120.0);
        rss.note = Some(format!(
            "sampled right after the last burst's connections closed; before the bursts: {} MiB",
            start_mem.join(", ")
        ));
        failures.target = Some("ferry: 0".into());
        failures.met = failures.ferry.num().map(|f| f == 0.0);
        if !first_error.is_empty() {
            failures.note = Some(format!("first errors: {}", first_error.join("; ")));
        }
        upgrade_target(&mut upgrades, &counted, n * bursts);
        note(format!(
            "  RSS kubectl {} ferry {} MiB (peak {} / {}); failures kubectl {} ferry {}",
            rss.kubectl.show(),
            rss.ferry.show(),
            hwm.kubectl.show(),
            hwm.ferry.show(),
            failures.kubectl.show(),
            failures.ferry.show()
        ));
        self.rows.push(rss);
        self.rows.push(hwm);
        self.rows.push(failures);
        self.rows.push(upgrades);
        if let Some((k, _)) = kubectl {
            k.stop().await;
        }
        if let Some((f, _)) = ferry {
            f.stop().await;
        }
    }

    async fn heal(&mut self, ferry_addr: Option<SocketAddr>) {
        let cluster = self.fake.cluster().clone();
        let kubeconfig = self.kubeconfig.clone();
        let mut ferry_heal = Vec::new();
        let mut direct_heal = Vec::new();
        let mut kubectl_exit = Vec::new();
        let mut kubectl_stayed = 0usize;
        let mut misses = Vec::new();
        for i in 0..self.sizes.heal_iters {
            let Some(old) = wait_ready(&cluster, "heal", None, Duration::from_secs(30)).await
            else {
                self.fail(
                    "heal",
                    &anyhow::anyhow!("no ready heal pod before iteration {i}"),
                );
                return;
            };
            // A fresh kubectl each time: it exits when its pod goes.
            let mut kubectl = None;
            if let Some(started) = self.kubectl_start(&kubeconfig, "deployment/heal", &[ECHO]) {
                let res = async {
                    let mut k = started?;
                    let ports = k.wait(&[ECHO], Duration::from_secs(30)).await?;
                    let addr = ports.get(&ECHO).copied().context("no port")?;
                    measure::ping(addr, Duration::from_secs(10)).await?;
                    Ok::<_, anyhow::Error>((k, addr))
                }
                .await;
                match res {
                    Ok(v) => kubectl = Some(v),
                    Err(e) => self.fail("kubectl (heal)", &e),
                }
            }
            if let Some(addr) = ferry_addr
                && let Err(e) = measure::ping(addr, Duration::from_secs(30)).await
            {
                self.fail("ferry (heal, before the deletion)", &e);
                return;
            }
            // Steady traffic on every path while the pod goes and comes back.
            let ferry_probe = ferry_addr.map(|a| Prober::start(move || Some(a)));
            let c = cluster.clone();
            let direct_probe = Prober::start(move || ready_backend(&c, "heal", ECHO));
            let kubectl_probe = kubectl.as_ref().map(|(_, a)| {
                let a = *a;
                Prober::start(move || Some(a))
            });
            sleep(Duration::from_millis(100)).await;
            let deleted = Instant::now();
            if let Err(e) = cluster.delete_pod(NS, &old) {
                self.fail("heal: deleting the pod", &anyhow::anyhow!("{e}"));
                return;
            }
            let Some(_) = wait_ready(&cluster, "heal", Some(&old), Duration::from_secs(30)).await
            else {
                self.fail(
                    "heal",
                    &anyhow::anyhow!("the replacement never became ready"),
                );
                return;
            };
            let ready = Instant::now();
            // The first success of a connection opened after the deletion.
            let first_after = |p: &Prober| {
                lock(&p.successes)
                    .iter()
                    .filter(|(start, _)| *start >= deleted)
                    .map(|(_, end)| *end)
                    .min()
            };
            let deadline = ready + Duration::from_secs(15);
            loop {
                let ferry_done = ferry_probe
                    .as_ref()
                    .is_none_or(|p| first_after(p).is_some());
                if (ferry_done && first_after(&direct_probe).is_some())
                    || Instant::now() >= deadline
                {
                    break;
                }
                sleep(Duration::from_millis(5)).await;
            }
            if let Some(p) = &ferry_probe {
                match first_after(p) {
                    Some(end) => ferry_heal.push(end.saturating_duration_since(ready)),
                    None => misses.push(format!("iteration {i}: ferry did not heal within 15 s")),
                }
            }
            if let Some(end) = first_after(&direct_probe) {
                direct_heal.push(end.saturating_duration_since(ready));
            }
            if let Some((mut k, _)) = kubectl {
                let healed = kubectl_probe.as_ref().and_then(first_after);
                if k.exited_within(Duration::from_secs(10)).await {
                    kubectl_exit.push(deleted.elapsed());
                } else {
                    kubectl_stayed += 1;
                    if let Some(end) = healed {
                        note(format!(
                            "  kubectl stayed and healed {:?} after ready",
                            end.saturating_duration_since(ready)
                        ));
                    }
                }
                k.stop().await;
            }
            drop((ferry_probe, direct_probe, kubectl_probe));
            note(format!(
                "  heal {i}: ferry {:?} direct {:?} after ready ({:?} after deletion)",
                ferry_heal.last(),
                direct_heal.last(),
                ready - deleted
            ));
        }
        let scenario = format!("heal, {} pod deletions", self.sizes.heal_iters);
        let mut p50 = Row::new(&scenario, "ready → first new connection p50", "ms");
        let mut p95 = Row::new(&scenario, "ready → first new connection p95", "ms");
        p50.direct = percentile_ms(&direct_heal, 50.0).map_or(Cell::None, Cell::Num);
        p95.direct = percentile_ms(&direct_heal, 95.0).map_or(Cell::None, Cell::Num);
        p50.ferry = percentile_ms(&ferry_heal, 50.0).map_or(Cell::None, Cell::Num);
        p95.ferry = percentile_ms(&ferry_heal, 95.0).map_or(Cell::None, Cell::Num);
        if self.kubectl_bin.is_some() {
            let text = if kubectl_stayed == 0 {
                "exits".to_string()
            } else {
                format!("exits {}/{}", kubectl_exit.len(), self.sizes.heal_iters)
            };
            p50.kubectl = Cell::Text(text.clone());
            p95.kubectl = Cell::Text(text);
            if let Some(ms) = percentile_ms(&kubectl_exit, 50.0) {
                p50.note = Some(format!(
                    "kubectl exited {}/{} times, median {ms:.0} ms after the deletion (lost connection to pod)",
                    kubectl_exit.len(),
                    self.sizes.heal_iters
                ));
            }
        }
        p95.target = Some("ferry ≤ 1000 ms".into());
        p95.met = p95.ferry.num().map(|v| v <= 1000.0);
        if !misses.is_empty() {
            p95.met = Some(false);
            p95.note = Some(misses.join("; "));
            self.fail("ferry heal", &anyhow::anyhow!("{}", misses.join("; ")));
        }
        self.rows.push(p50);
        self.rows.push(p95);
    }

    async fn idle(&mut self) {
        let n = self.sizes.idle_forwards;
        let secs = self.sizes.idle_secs;
        let scenario = format!("idle, {n} forwards to {n} pods, {secs} s");
        let mut rss = Row::new(&scenario, "RSS (sum over processes)", "MB");
        let mut cpu = Row::new(&scenario, "CPU (sum over processes)", "% of a core");
        rss.direct = Cell::Text("n/a".into());
        cpu.direct = Cell::Text("n/a".into());
        let kubeconfig = self.kubeconfig.clone();

        // Ferry: one process, `n` forwards with default health checks, each to its own pod
        // (forwards to the same pod port would share their probes).
        let targets: Vec<String> = (0..n).map(|i| format!("pod/idle-{i}")).collect();
        let forwards: Vec<(String, &str, u16)> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("idle-{i:03}"), t.as_str(), ECHO))
            .collect();
        let names: Vec<String> = forwards.iter().map(|f| f.0.clone()).collect();
        let ferry = async {
            let mut f = Ferry::start(
                &self.ferry_bin,
                &kubeconfig,
                self.dir.path(),
                "ferry-idle.yaml",
                &ferry_config(&forwards),
            )?;
            f.wait(&names, true, Duration::from_secs(60)).await?;
            Ok::<_, anyhow::Error>(f)
        }
        .await;
        let ferry = match ferry {
            Ok(f) => Some(f),
            Err(e) => {
                self.fail("ferry (idle)", &e);
                None
            }
        };

        // kubectl: one process per forward.
        let mut kubectls = Vec::new();
        let m = self.sizes.idle_kubectl;
        if let Some(bin) = self.kubectl_bin.clone() {
            let res = async {
                for batch in (0..m).collect::<Vec<_>>().chunks(20) {
                    let mut started = Vec::new();
                    for &i in batch {
                        started.push(Kubectl::start(
                            &bin,
                            &kubeconfig,
                            self.dir.path(),
                            NS,
                            &format!("pod/idle-{i}"),
                            &[ECHO],
                        )?);
                    }
                    for mut k in started {
                        k.wait(&[ECHO], Duration::from_secs(60)).await?;
                        kubectls.push(k);
                    }
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = res {
                self.fail("kubectl (idle)", &e);
            }
        }

        // Let start-up work settle and the forwards become idle (unused for
        // `health::IDLE_AFTER`, after which they are probed at their idle interval), then
        // measure over the window.
        let settle = if self.quick {
            Duration::from_secs(1)
        } else {
            ferry_core::health::IDLE_AFTER + Duration::from_secs(10)
        };
        note(format!(
            "  waiting {} s for the forwards to be idle",
            settle.as_secs()
        ));
        sleep(settle).await;
        let pids_k: Vec<u32> = kubectls.iter().filter_map(Kubectl::pid).collect();
        let pid_f = ferry.as_ref().and_then(Ferry::pid);
        let sum = |pids: &[u32]| -> anyhow::Result<ProcSample> {
            let mut s = ProcSample::default();
            for &p in pids {
                let one = procs::sample(p)?;
                s.rss_kb += one.rss_kb;
                s.hwm_kb += one.hwm_kb;
                s.cpu_ticks += one.cpu_ticks;
            }
            Ok(s)
        };
        let ticks = procs::clock_ticks();
        let t0 = Instant::now();
        let before_k = sum(&pids_k);
        let before_f = pid_f.map(procs::sample);
        sleep(Duration::from_secs(secs)).await;
        let wall = t0.elapsed().as_secs_f64();
        let after_k = sum(&pids_k);
        let after_f = pid_f.map(procs::sample);
        if let (Some(Ok(b)), Some(Ok(a))) = (before_f, after_f) {
            rss.ferry = Cell::Num(a.rss_kb as f64 / 1024.0);
            cpu.ferry = Cell::Num(100.0 * (a.cpu_ticks - b.cpu_ticks) as f64 / ticks / wall);
            rss.note = Some(format!(
                "ferry peak (VmHWM) {:.1} MB",
                a.hwm_kb as f64 / 1024.0
            ));
        } else if ferry.is_some() {
            self.fail("ferry (idle)", &anyhow::anyhow!("could not read /proc"));
        }
        if !pids_k.is_empty() {
            match (before_k, after_k) {
                (Ok(b), Ok(a)) => {
                    // One kubectl process per forward: scaled to `n` when fewer ran.
                    let scale = n as f64 / pids_k.len() as f64;
                    rss.kubectl = Cell::Num(scale * a.rss_kb as f64 / 1024.0);
                    cpu.kubectl = Cell::Num(
                        scale * 100.0 * (a.cpu_ticks - b.cpu_ticks) as f64 / ticks / wall,
                    );
                    let per = a.rss_kb as f64 / 1024.0 / pids_k.len() as f64;
                    let mut text = format!(
                        "kubectl: {} processes measured, {per:.1} MB each",
                        pids_k.len()
                    );
                    if pids_k.len() != n {
                        text.push_str(&format!(
                            "; the kubectl column is that times {n}, one process per forward"
                        ));
                    }
                    cpu.note = Some(text);
                }
                (Err(e), _) | (_, Err(e)) => self.fail("kubectl (idle)", &e),
            }
        }
        rss.target = Some("ferry ≤ 50 MB".into());
        rss.met = rss.ferry.num().map(|v| v <= 50.0);
        cpu.target = Some("ferry ≤ 1%".into());
        cpu.met = cpu.ferry.num().map(|v| v <= 1.0);
        note(format!(
            "  ferry {} MB {} %; kubectl {} MB {} %",
            rss.ferry.show(),
            cpu.ferry.show(),
            rss.kubectl.show(),
            cpu.kubectl.show()
        ));
        self.rows.push(rss);
        self.rows.push(cpu);
        for k in kubectls {
            k.stop().await;
        }
        if let Some(f) = ferry {
            f.stop().await;
        }
    }
}

/// How long one connection of a burst may take before it counts as failed.
const CONN_LIMIT: Duration = Duration::from_secs(60);

const UPGRADES_METRIC: &str = "API upgrades per 1,000 connections";

/// Upgrade requests (port-forward sessions or tunnels) the fake API server saw so far, by
/// the forwarders' user agents (`ferry/<version> (…)`; `kubectl/<version> (…)`, or the name
/// kubectl was run as).
#[derive(Debug, Clone, Copy, Default)]
struct Upgrades {
    ferry: u64,
    kubectl: u64,
}

impl Upgrades {
    fn now(fake: &FakeCluster) -> Self {
        let mut u = Upgrades::default();
        for a in fake.requests().agents() {
            if a.user_agent.starts_with("ferry/") {
                u.ferry += a.upgrades;
            } else if a.user_agent.starts_with("kubectl") {
                u.kubectl += a.upgrades;
            }
        }
        u
    }

    fn since(self, before: Upgrades) -> Self {
        Upgrades {
            ferry: self.ferry.saturating_sub(before.ferry),
            kubectl: self.kubectl.saturating_sub(before.kubectl),
        }
    }
}

fn per_thousand(count: u64, connections: usize) -> Cell {
    if connections == 0 {
        return Cell::None;
    }
    Cell::Num(count as f64 * 1000.0 / connections as f64)
}

/// The target of an upgrades row, and the counts behind it.
fn upgrade_target(row: &mut Row, counted: &[String], connections: usize) {
    row.target = Some("ferry ≤ 10".into());
    row.met = row.ferry.num().map(|v| v <= 10.0);
    if !counted.is_empty() {
        row.note = Some(format!(
            "upgrades during the scenario: {} (for {connections} connections each)",
            counted.join(", ")
        ));
    }
}

/// Kibibytes (as `/proc` gives them) in MiB.
fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Waits for a ready pod of `app` other than `not`; returns its name.
async fn wait_ready(
    cluster: &Cluster,
    app: &str,
    not: Option<&str>,
    limit: Duration,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let found = cluster
            .list(Kind::Pod, Some(NS))
            .1
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"].as_str() == Some(app) && pod_is_ready(p))
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .find(|name| Some(name.as_str()) != not);
        if found.is_some() {
            return found;
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(Duration::from_millis(2)).await;
    }
}

/// Opens a new echo connection every 10 ms to wherever `addr` says, recording when each
/// successful one started and ended. Dropping it stops every attempt.
struct Prober {
    successes: Arc<Mutex<Vec<(Instant, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Prober {
    fn start(addr: impl Fn() -> Option<SocketAddr> + Send + 'static) -> Self {
        let successes: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
        let out = successes.clone();
        let task = tokio::spawn(async move {
            let mut attempts = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                while attempts.try_join_next().is_some() {}
                let Some(a) = addr() else { continue };
                let out = out.clone();
                attempts.spawn(async move {
                    let start = Instant::now();
                    if measure::ping(a, Duration::from_secs(20)).await.is_ok() {
                        lock(&out).push((start, Instant::now()));
                    }
                });
            }
        });
        Self { successes, task }
    }
}
