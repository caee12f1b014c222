//! Real `kubectl port-forward` against the fake cluster, in every way kubectl speaks it:
//! plain SPDY/3.1 (kubectl ≤ 1.30, or any kubectl with KUBECTL_PORT_FORWARD_WEBSOCKETS=false),
//! SPDY tunnelled through a WebSocket (kubectl ≥ 1.31), and the fallback from the second
//! to the first when a server refuses the tunnel.
//!
//! The kubectl binaries are `kubectl.1.27` … `kubectl.1.33`, looked up on PATH and in
//! /usr/lib/google-cloud-sdk/bin/ (where the Google Cloud SDK's `kubectl` component puts
//! them). A missing one fails its test and says which.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_fakecluster::kind::Kind;
use ferry_fakecluster::{FakeCluster, Options, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SDK_BIN: &str = "/usr/lib/google-cloud-sdk/bin";

/// `kubectl.<version>`, from PATH or the Cloud SDK's directory.
fn kubectl(version: &str) -> PathBuf {
    let name = format!("kubectl.{version}");
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from(SDK_BIN)])
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed (looked on PATH and in {SDK_BIN}); install the Google \
                 Cloud SDK's kubectl component, which ships kubectl.1.27 … kubectl.1.33"
            )
        })
}

struct Fake {
    fake: FakeCluster,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn fake(opts: Options) -> Fake {
    let fake = FakeCluster::start(opts).await.expect("fake cluster starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    // kubectl refuses to forward to a pod that is not Running yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = ["solo", "db-0"].iter().all(|pod| {
            fake.cluster()
                .get(Kind::Pod, "demo", pod)
                .is_ok_and(|p| p["status"]["phase"] == "Running")
        });
        if running {
            break;
        }
        assert!(Instant::now() < deadline, "demo pods never became Running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Fake {
        fake,
        _dir: dir,
        kubeconfig,
    }
}

/// A running `kubectl port-forward`, killed when dropped.
struct PortForward {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How kubectl should pick its transport.
#[derive(Clone, Copy)]
enum Websockets {
    /// kubectl's own default for its version.
    Default,
    /// KUBECTL_PORT_FORWARD_WEBSOCKETS=false: plain SPDY.
    Off,
}

fn port_forward(
    kubeconfig: &Path,
    version: &str,
    target: &str,
    remote_port: u16,
    ws: Websockets,
) -> PortForward {
    let bin = kubectl(version);
    let mut cmd = Command::new(&bin);
    cmd.args([
        "port-forward",
        "-n",
        "demo",
        target,
        &format!(":{remote_port}"),
        "--address",
        "127.0.0.1",
    ])
    .env("KUBECONFIG", kubeconfig)
    .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Websockets::Off = ws {
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs: {e}", bin.display()));
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let mut pipe = child.stderr.take().expect("stderr piped");
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                stderr
                    .lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    // kubectl prints `Forwarding from 127.0.0.1:PORT -> REMOTE`, then a line per
    // connection; stdout is drained for good so that kubectl never blocks on it.
    let (tx, rx) = std::sync::mpsc::channel::<u16>();
    let stdout = child.stdout.take().expect("stdout piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
                && let Some(port) = rest.split(' ').next().and_then(|p| p.parse().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    let mut pf = PortForward {
        child,
        port: 0,
        stderr,
    };
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(port) => pf.port = port,
        Err(_) => panic!(
            "kubectl {version} port-forward {target} never said `Forwarding from`; stderr:\n{}",
            pf.stderr()
        ),
    }
    pf
}

impl PortForward {
    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits up to `within` for kubectl to exit.
    async fn exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `within` for stderr to contain `text`.
    async fn stderr_shows(&self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.stderr().contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stderr().contains(text)
    }
}

fn payload(n: usize, seed: u64) -> Vec<u8> {
    // A cheap pseudo-random sequence, different per connection.
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `n` bytes through the forward to an echo port and checks they all come back.
async fn echo(port: u16, n: usize, seed: u64) {
    let sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects to kubectl's local port");
    let (mut r, mut w) = sock.into_split();
    let data = payload(n, seed);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.expect("writes");
        w
    });
    let mut got = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(15), r.read_exact(&mut got))
        .await
        .expect("echo within 15 s")
        .expect("reads the echo");
    let mut w = writer.await.expect("writer");
    assert!(
        got == data,
        "the echo differs from what was sent ({n} bytes)"
    );
    // Half-close: the pod sees our end of stream and closes its side.
    w.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut rest))
        .await
        .expect("the forward ends after our FIN")
        .expect("reads to the end");
    assert!(rest.is_empty(), "{} unexpected bytes", rest.len());
}

/// One 1 MiB echo, then four connections at once through the same kubectl.
async fn echoes(pf: &PortForward) {
    echo(pf.port, 1 << 20, 1).await;
    let mut all = Vec::new();
    for i in 0..4 {
        all.push(tokio::spawn(echo(pf.port, 256 << 10, 10 + i)));
    }
    for t in all {
        t.await.expect("concurrent echo");
    }
    assert!(
        !pf.stderr().contains("rror"),
        "kubectl reported an error:\n{}",
        pf.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_forwards_over_plain_spdy() {
    let fx = fake(Options::default()).await;
    let pf = port_forward(
        &fx.kubeconfig,
        "1.27",
        "pod/solo",
        9000,
        Websockets::Default,
    );
    echoes(&pf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_32_tunnels_spdy_through_a_websocket() {
    let fx = fake(Options::default()).await;
    let pf = port_forward(
        &fx.kubeconfig,
        "1.32",
        "pod/solo",
        9000,
        Websockets::Default,
    );
    echoes(&pf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_tunnels_spdy_through_a_websocket_to_a_service() {
    let fx = fake(Options::default()).await;
    // svc/db resolves to pod db-0, port 5432 (an echo).
    let pf = port_forward(&fx.kubeconfig, "1.33", "svc/db", 5432, Websockets::Default);
    echoes(&pf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_with_websockets_off_speaks_plain_spdy() {
    let fx = fake(Options::default()).await;
    let pf = port_forward(&fx.kubeconfig, "1.33", "pod/solo", 9000, Websockets::Off);
    echoes(&pf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_falls_back_to_plain_spdy_when_the_tunnel_is_refused() {
    // Like an API server older than 1.30: the WebSocket upgrade gets a 400, and kubectl
    // retries with plain SPDY.
    let fx = fake(Options::default().spdy_over_websocket(false)).await;
    let pf = port_forward(
        &fx.kubeconfig,
        "1.32",
        "pod/solo",
        9000,
        Websockets::Default,
    );
    echo(pf.port, 1 << 20, 3).await;
}

async fn refused_port_is_reported(version: &str) {
    let fx = fake(Options::default()).await;
    // solo serves 9000 only: 9999 is refused inside the pod.
    let mut pf = port_forward(
        &fx.kubeconfig,
        version,
        "pod/solo",
        9999,
        Websockets::Default,
    );
    let mut sock = TcpStream::connect(("127.0.0.1", pf.port))
        .await
        .expect("connects to kubectl's local port");
    let _ = sock.write_all(b"hello").await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok() && buf.is_empty(),
        "the local connection ends with nothing read"
    );
    assert!(
        pf.stderr_shows("connect: connection refused", Duration::from_secs(10))
            .await,
        "kubectl {version} shows the refusal:\n{}",
        pf.stderr()
    );
    assert!(
        pf.stderr().contains("error forwarding port 9999 to pod"),
        "{}",
        pf.stderr()
    );
    // These kubectl versions give up on an error from the pod.
    let status = pf.exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "kubectl {version} exits with an error: {status:?}\n{}",
        pf.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_is_reported_by_kubectl_1_27() {
    refused_port_is_reported("1.27").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_is_reported_by_kubectl_1_32() {
    refused_port_is_reported("1.32").await;
}

async fn pod_deletion_ends_the_forward(version: &str, ws: Websockets) {
    let fx = fake(Options::default()).await;
    let mut pf = port_forward(&fx.kubeconfig, version, "pod/solo", 9000, ws);
    // A connection in use when the pod goes.
    let mut sock = TcpStream::connect(("127.0.0.1", pf.port))
        .await
        .expect("connects");
    sock.write_all(b"ping").await.expect("writes");
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), sock.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&buf, b"ping");
    fx.fake
        .cluster()
        .delete_pod("demo", "solo")
        .expect("pod deleted");
    let status = pf.exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "kubectl {version} exits once the pod is gone: {status:?}\n{}",
        pf.stderr()
    );
    assert!(
        pf.stderr().contains("lost connection to pod"),
        "{}",
        pf.stderr()
    );
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the local connection ends too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_pod_ends_a_plain_spdy_forward() {
    pod_deletion_ends_the_forward("1.27", Websockets::Default).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_pod_ends_a_tunnelled_forward() {
    pod_deletion_ends_the_forward("1.33", Websockets::Default).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tunnels_end_kubectl_forwards_of_both_kinds() {
    let fx = fake(Options::default()).await;
    let mut plain = port_forward(&fx.kubeconfig, "1.33", "pod/solo", 9000, Websockets::Off);
    let mut tunnel = port_forward(
        &fx.kubeconfig,
        "1.33",
        "pod/solo",
        9000,
        Websockets::Default,
    );
    // kubectl upgrades as it starts: both sessions are open by now.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fx.fake.faults().open_tunnels() < 2 {
        assert!(Instant::now() < deadline, "two tunnels open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fx.fake.faults().drop_tunnels(), 2);
    for pf in [&mut plain, &mut tunnel] {
        let status = pf.exit(Duration::from_secs(10)).await;
        assert!(
            status.is_some_and(|s| !s.success()),
            "kubectl exits when its tunnel is cut: {status:?}\n{}",
            pf.stderr()
        );
        assert!(
            pf.stderr().contains("lost connection to pod"),
            "{}",
            pf.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrades_fail_kubectl_with_the_servers_message() {
    let fx = fake(Options::default()).await;
    fx.fake.faults().refuse_portforward(Duration::from_secs(30));
    for (version, ws) in [("1.27", Websockets::Default), ("1.32", Websockets::Default)] {
        let out = tokio::task::spawn_blocking({
            let kubeconfig = fx.kubeconfig.clone();
            move || {
                let mut cmd = Command::new(kubectl(version));
                cmd.args(["port-forward", "-n", "demo", "pod/solo", ":9000"])
                    .env("KUBECONFIG", &kubeconfig)
                    .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS");
                if let Websockets::Off = ws {
                    cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
                }
                cmd.output().expect("kubectl runs")
            }
        })
        .await
        .expect("kubectl joined");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "kubectl {version} fails");
        assert!(
            stderr.contains("injected portforward refusal"),
            "kubectl {version}:\n{stderr}"
        );
    }
}

/// Runs `kubectl port-forward pod/solo :9000` to completion; its exit status and stderr.
async fn port_forward_output(
    kubeconfig: &Path,
    version: &'static str,
    ws: Websockets,
) -> (bool, String) {
    let kubeconfig = kubeconfig.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(kubectl(version));
        cmd.args(["port-forward", "-n", "demo", "pod/solo", ":9000"])
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
            .stdin(Stdio::null());
        if let Websockets::Off = ws {
            cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        }
        cmd.output().expect("kubectl runs")
    })
    .await
    .expect("kubectl joined");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_port_forwards_fail_kubectl_with_rbacs_message() {
    let fx = fake(Options::default()).await;
    fx.fake.faults().forbid_portforward(true);
    for version in ["1.27", "1.33"] {
        let (ok, stderr) = port_forward_output(&fx.kubeconfig, version, Websockets::Default).await;
        assert!(!ok, "kubectl {version} fails");
        assert!(
            stderr.contains(
                r#"pods "solo" is forbidden: User "ferry-test" cannot create resource "pods/portforward" in API group "" in the namespace "demo""#
            ),
            "kubectl {version}:\n{stderr}"
        );
    }
    let stats = fx.fake.portforward_stats();
    assert_eq!(stats.upgrades.total(), 0);
    assert!(stats.refused.spdy >= 1, "{stats:?}");
    assert!(stats.refused.spdy_websocket >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_falls_back_when_the_tunnel_is_switched_off_and_the_counts_show_it() {
    let fx = fake(Options::default()).await;
    fx.fake
        .faults()
        .refuse_protocol(Protocol::SpdyWebSocket, true);
    let pf = port_forward(
        &fx.kubeconfig,
        "1.32",
        "pod/solo",
        9000,
        Websockets::Default,
    );
    echo(pf.port, 64 << 10, 5).await;
    let stats = fx.fake.portforward_stats();
    assert_eq!(stats.refused.spdy_websocket, 1, "{stats:?}");
    assert_eq!(stats.upgrades.spdy_websocket, 0, "{stats:?}");
    assert_eq!(stats.upgrades.spdy, 1, "{stats:?}");
    assert_eq!(stats.spdy_sessions_open, 1, "{stats:?}");
    assert!(stats.spdy_connections_total >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_fails_when_neither_spdy_protocol_is_served() {
    let fx = fake(Options::default()).await;
    fx.fake
        .faults()
        .refuse_protocol(Protocol::SpdyWebSocket, true);
    fx.fake.faults().refuse_protocol(Protocol::Spdy, true);
    let (ok, stderr) = port_forward_output(&fx.kubeconfig, "1.33", Websockets::Default).await;
    assert!(!ok, "kubectl fails");
    assert!(
        stderr.contains("unable to negotiate protocol"),
        "kubectl 1.33:\n{stderr}"
    );
    let stats = fx.fake.portforward_stats();
    assert_eq!(
        (stats.refused.spdy_websocket, stats.refused.spdy),
        (1, 1),
        "{stats:?}"
    );
}

async fn a_frozen_session_stalls_kubectl_until_thawed(ws: Websockets) {
    let fx = fake(Options::default()).await;
    let pf = port_forward(&fx.kubeconfig, "1.33", "pod/solo", 9000, ws);
    echo(pf.port, 64 << 10, 7).await;
    assert_eq!(fx.fake.faults().freeze_sessions(), 1);
    let mut sock = TcpStream::connect(("127.0.0.1", pf.port))
        .await
        .expect("connects to kubectl's local port");
    sock.write_all(b"frozen?").await.expect("writes");
    let mut buf = [0u8; 7];
    let early = tokio::time::timeout(Duration::from_millis(1500), sock.read_exact(&mut buf)).await;
    assert!(
        early.is_err(),
        "no echo through a frozen session: {early:?}"
    );
    assert!(fx.fake.faults().thaw_sessions());
    tokio::time::timeout(Duration::from_secs(15), sock.read_exact(&mut buf))
        .await
        .expect("the echo comes once thawed")
        .expect("reads the echo");
    assert_eq!(&buf, b"frozen?");
    assert!(
        !pf.stderr().contains("rror"),
        "kubectl reported an error:\n{}",
        pf.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_plain_spdy_session_stalls_kubectl_until_thawed() {
    a_frozen_session_stalls_kubectl_until_thawed(Websockets::Off).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_tunnelled_session_stalls_kubectl_until_thawed() {
    a_frozen_session_stalls_kubectl_until_thawed(Websockets::Default).await;
}

/// Throughput through kubectl, for the record: `cargo nextest run -p ferry-fakecluster
/// --run-ignored only throughput` (release builds give the meaningful numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput_through_kubectl() {
    const N: usize = 256 << 20;
    let fx = fake(Options::default()).await;
    for (version, ws) in [
        ("1.27", Websockets::Default),
        ("1.33", Websockets::Off),
        ("1.33", Websockets::Default),
    ] {
        let pf = port_forward(&fx.kubeconfig, version, "pod/solo", 9000, ws);
        let sock = TcpStream::connect(("127.0.0.1", pf.port))
            .await
            .expect("connects");
        let (mut r, mut w) = sock.into_split();
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            let block = vec![7u8; 64 << 10];
            for _ in 0..N / block.len() {
                w.write_all(&block).await.expect("writes");
            }
            w
        });
        let mut left = N;
        let mut buf = vec![0u8; 256 << 10];
        while left > 0 {
            let n = r.read(&mut buf).await.expect("reads");
            assert!(n > 0, "echo ended early");
            left -= n;
        }
        let secs = start.elapsed().as_secs_f64();
        drop(writer.await);
        let mode = match ws {
            Websockets::Off => "plain SPDY (websockets off)",
            Websockets::Default if version == "1.27" => "plain SPDY",
            Websockets::Default => "SPDY over WebSocket",
        };
        println!(
            "kubectl {version}, {mode}: 256 MiB echoed in {secs:.2} s = {:.1} MB/s each way",
            N as f64 / secs / 1e6
        );
    }
}
