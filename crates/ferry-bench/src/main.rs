//! `ferry-bench`: Ferry against `kubectl port-forward` and the direct path to the pod,
//! side by side, through an in-process fake cluster.
//!
//! ```sh
//! cargo build --release -p ferry-cli -p ferry-bench
//! cargo run --release -p ferry-bench -- [--quick] [--json PATH]
//! ```
//!
//! See `docs/benchmarks.md` for what each figure means.

mod measure;
mod procs;

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
    /// Runs only these scenarios (comma-separated: throughput, setup, concurrency, heal,
    /// latency, idle). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Vec<String>,
    /// Simulated API latency of the second cluster, in ms.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
}

/// How much work each scenario does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    bytes: u64,
    /// Throughput: best of this many transfers per path.
    rounds: usize,
    parallel: usize,
    setup_iters: usize,
    conc_conns: usize,
    conc_rounds: usize,
    heal_iters: usize,
    idle_forwards: usize,
    idle_kubectl: usize,
    idle_secs: u64,
}

impl Sizes {
    fn full() -> Self {
        Self {
            bytes: 256 << 20,
            rounds: 3,
            parallel: 8,
            setup_iters: 300,
            conc_conns: 500,
            conc_rounds: 10,
            heal_iters: 10,
            idle_forwards: 200,
            idle_kubectl: 200,
            idle_secs: 60,
        }
    }

    fn quick() -> Self {
        Self {
            bytes: 4 << 20,
            rounds: 1,
            parallel: 8,
            setup_iters: 20,
            conc_conns: 20,
            conc_rounds: 10,
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
    /// The fake API server's tunnel alone, with an in-process client (throughput only).
    tunnel: Cell,
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
    match rt.block_on(run(args)) {
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
        "results": rows.iter().map(|r| json!({
            "scenario": r.scenario,
            "metric": r.metric,
            "unit": r.unit,
            "direct": r.direct.json(),
            "api_tunnel": r.tunnel.json(),
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
        if self.wants("setup") {
            note("connection setup");
            self.setup(echo, Duration::ZERO).await;
        }
        if self.wants("concurrency") {
            note("concurrency");
            self.concurrency(echo).await;
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

    /// An in-process tunnel to deployment/bench's `port` through the fake API server.
    async fn tunnel_via(&mut self, port: u16) -> Option<Via> {
        let pod = ready_pod(self.fake.cluster(), "bench")?;
        let pool = ferry_core::cluster::ClientPool::new(
            ferry_core::cluster::KubeconfigSource::from_paths(vec![self.kubeconfig.clone()]),
        );
        match pool.client(None).await {
            Ok(cc) => Some(Via::Tunnel {
                client: cc.client,
                namespace: NS.into(),
                pod,
                port,
            }),
            Err(e) => {
                self.fail(
                    "a kube client for the in-process tunnel",
                    &anyhow::anyhow!("{e}"),
                );
                None
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
        for (conns, label) in [(1usize, "1 connection"), (k, "8 connections")] {
            for upload in [false, true] {
                let dir = if upload { "upload" } else { "download" };
                let mut row = Row::new(
                    &format!("throughput, {label}"),
                    &format!("{dir} {mib} MiB"),
                    "MB/s",
                );
                let paths = if upload { sink } else { web };
                let tunnel = self.tunnel_via(if upload { SINK } else { HTTP }).await;
                let ways = [
                    ("direct", paths.direct.map(Via::Tcp), None),
                    ("api-tunnel", tunnel, None),
                    ("kubectl", paths.kubectl.map(Via::Tcp), kubectl_pid),
                    ("ferry", paths.ferry.map(Via::Tcp), ferry_pid),
                ];
                // Best of `rounds`, the paths taking turns, so that load from elsewhere on
                // the machine hits every path alike.
                let mut best: [Option<(f64, f64)>; 4] = [None; 4];
                let mut failed = [false; 4];
                for _ in 0..self.sizes.rounds {
                    for (i, (which, via, pid)) in ways.iter().enumerate() {
                        let Some(via) = via else { continue };
                        if failed[i] {
                            continue;
                        }
                        // A small warm-up transfer, not counted.
                        let _ =
                            measure::parallel(via, (1 << 20) * conns as u64, conns, upload).await;
                        let before = pid.and_then(|p| procs::sample(p).ok());
                        let res = measure::parallel(via, n, conns, upload).await;
                        match res {
                            Ok(took) => {
                                // The forwarder's CPU during the transfer, in cores.
                                let cores = match (before, pid) {
                                    (Some(b), Some(p)) => procs::sample(*p).ok().map_or(0.0, |a| {
                                        (a.cpu_ticks - b.cpu_ticks) as f64
                                            / procs::clock_ticks()
                                            / took.as_secs_f64()
                                    }),
                                    _ => 0.0,
                                };
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
                let mut cpu = Vec::new();
                for (i, (which, via, pid)) in ways.iter().enumerate() {
                    if via.is_none() {
                        continue;
                    }
                    let cell = match best[i] {
                        _ if failed[i] => Cell::Text("error".into()),
                        Some((v, cores)) => {
                            if pid.is_some() {
                                cpu.push(format!("{which} used {:.0}% of a core", 100.0 * cores));
                            }
                            Cell::Num(v)
                        }
                        None => Cell::None,
                    };
                    match *which {
                        "direct" => row.direct = cell,
                        "api-tunnel" => row.tunnel = cell,
                        "kubectl" => row.kubectl = cell,
                        _ => row.ferry = cell,
                    }
                }
                row.target = Some("≥1.5x kubectl, ≥0.3x direct".into());
                row.met = match (row.ferry.num(), row.kubectl.num(), row.direct.num()) {
                    (Some(f), Some(k), Some(d)) => Some(f >= 1.5 * k && f >= 0.3 * d),
                    (Some(f), None, Some(d)) => Some(f >= 0.3 * d),
                    _ => None,
                };
                if !cpu.is_empty() {
                    row.note = Some(cpu.join(", "));
                }
                note(format!(
                    "  {} {}: direct {} api-tunnel {} kubectl {} ferry {}",
                    row.scenario,
                    row.metric,
                    row.direct.show(),
                    row.tunnel.show(),
                    row.kubectl.show(),
                    row.ferry.show()
                ));
                self.rows.push(row);
            }
        }
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
        if !latency.is_zero() {
            p50.target = Some("≤ kubectl".into());
            p50.met = match (p50.ferry.num(), p50.kubectl.num()) {
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

    async fn concurrency(&mut self, echo: Paths) {
        let n = self.sizes.conc_conns;
        let rounds = self.sizes.conc_rounds;
        let scenario = format!("concurrency, {n} at once × {rounds} rounds");
        let mut failures = Row::new(&scenario, "failed connections", "count");
        let mut p50 = Row::new(&scenario, "connection time p50", "ms");
        let mut p99 = Row::new(&scenario, "connection time p99", "ms");
        let mut first_error: Vec<String> = Vec::new();
        for (which, addr) in [
            ("direct", echo.direct),
            ("kubectl", echo.kubectl),
            ("ferry", echo.ferry),
        ] {
            let Some(addr) = addr else { continue };
            let gate = Arc::new(tokio::sync::Barrier::new(n));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..n {
                let gate = gate.clone();
                tasks.spawn(async move {
                    gate.wait().await;
                    measure::echo_rounds(addr, rounds, Duration::from_secs(60)).await
                });
            }
            let mut ok = Vec::with_capacity(n);
            let mut failed = 0usize;
            let mut err: Option<String> = None;
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(d)) => ok.push(d),
                    Ok(Err(e)) => {
                        failed += 1;
                        err.get_or_insert_with(|| format!("{e:#}"));
                    }
                    Err(e) => {
                        failed += 1;
                        err.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            if let Some(e) = err {
                first_error.push(format!("{which}: {e}"));
            }
            let cells = (
                Cell::Num(failed as f64),
                percentile_ms(&ok, 50.0).map_or(Cell::None, Cell::Num),
                percentile_ms(&ok, 99.0).map_or(Cell::None, Cell::Num),
            );
            match which {
                "direct" => (failures.direct, p50.direct, p99.direct) = cells,
                "kubectl" => (failures.kubectl, p50.kubectl, p99.kubectl) = cells,
                _ => (failures.ferry, p50.ferry, p99.ferry) = cells,
            }
            // Let the forwarders settle before the next path.
            sleep(Duration::from_millis(500)).await;
        }
        failures.target = Some("ferry: 0".into());
        failures.met = failures.ferry.num().map(|f| f == 0.0);
        if !first_error.is_empty() {
            failures.note = Some(format!("first errors: {}", first_error.join("; ")));
        }
        note(format!(
            "  failures direct {} kubectl {} ferry {}; p99 ferry {}",
            failures.direct.show(),
            failures.kubectl.show(),
            failures.ferry.show(),
            p99.ferry.show()
        ));
        self.rows.push(failures);
        self.rows.push(p50);
        self.rows.push(p99);
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
