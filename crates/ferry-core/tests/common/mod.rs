//! Helpers shared by the engine and health suites.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferry_core::cluster::KubeconfigSource;
use ferry_core::config::{Config, Forward, PortRef, Target};
use ferry_core::events::{ForwardState, ForwardStatus};
use ferry_core::{Engine, EngineOptions};
use ferry_fakecluster::cluster::pod_is_ready;
use ferry_fakecluster::kind::Kind;
use ferry_fakecluster::{FakeCluster, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

pub struct Fake {
    pub fake: FakeCluster,
    pub _dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub async fn fake(context: &str) -> anyhow::Result<Fake> {
    fake_with(Options::default().context_name(context)).await
}

/// A fake cluster started with `options`, its kubeconfig written, its pods ready.
pub async fn fake_with(options: Options) -> anyhow::Result<Fake> {
    let fake = FakeCluster::start(options).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    let cluster = fake.cluster().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster
        .list(Kind::Pod, None)
        .1
        .iter()
        .all(|p| pod_is_ready(p))
    {
        anyhow::ensure!(Instant::now() < deadline, "demo pods never became ready");
        sleep(Duration::from_millis(20)).await;
    }
    Ok(Fake {
        fake,
        _dir: dir,
        kubeconfig,
    })
}

pub fn fwd(name: &str, target: &str, port: PortRef) -> Forward {
    let target: Target = target.parse().expect("valid target");
    let mut f = Forward::new(name, target, port, 0);
    f.namespace = Some("demo".into());
    f
}

pub fn config(forwards: Vec<Forward>) -> Config {
    Config {
        forwards,
        ..Config::default()
    }
}

pub fn options(paths: Vec<PathBuf>) -> EngineOptions {
    EngineOptions {
        kubeconfig: KubeconfigSource::from_paths(paths),
        exec: Default::default(),
        mdns_interfaces: Default::default(),
        watchdog: Duration::from_secs(10),
        pre_open_tunnels: true,
    }
}

/// The name of the first pod labelled `app=<app>` in `demo`.
pub fn pod_of(fake: &FakeCluster, app: &str) -> String {
    let (_, pods) = fake.cluster().list(Kind::Pod, Some("demo"));
    pods.iter()
        .find(|p| p["metadata"]["labels"]["app"] == app)
        .and_then(|p| p["metadata"]["name"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Waits until `name`'s status satisfies `check`, returning it.
pub async fn wait_for(
    engine: &Engine,
    name: &str,
    what: &str,
    check: impl Fn(&ForwardStatus) -> bool,
) -> anyhow::Result<ForwardStatus> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snap = engine.snapshot().await?;
        if let Some(s) = snap.get(name) {
            if check(s) {
                return Ok(s.clone());
            }
            if Instant::now() >= deadline {
                anyhow::bail!("{name} never became {what}: {s:?}");
            }
        }
        sleep(Duration::from_millis(20)).await;
    }
}

pub async fn active(engine: &Engine, name: &str) -> anyhow::Result<SocketAddr> {
    let s = wait_for(engine, name, "active", |s| s.state == ForwardState::Active).await?;
    s.local
        .ok_or_else(|| anyhow::anyhow!("{name} has no local address"))
}

/// An engine running one forward `name` to the fake's `service/<service>` port 80, once
/// that forward is active; and its local address.
pub async fn start_one(
    f: &Fake,
    name: &str,
    service: &str,
) -> anyhow::Result<(Engine, SocketAddr)> {
    let engine = Engine::start(
        config(vec![fwd(
            name,
            &format!("service/{service}"),
            PortRef::Number(80),
        )]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, name).await?;
    Ok((engine, addr))
}

pub async fn echo_once(addr: SocketAddr, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    let (mut r, mut w) = s.split();
    let len = data.len();
    let mut got = vec![0u8; len];
    let write = async {
        w.write_all(data).await?;
        Ok::<_, std::io::Error>(())
    };
    let read = async {
        r.read_exact(&mut got).await?;
        Ok::<_, std::io::Error>(())
    };
    timeout(Duration::from_secs(30), async {
        tokio::try_join!(write, read)
    })
    .await??;
    Ok(got)
}

pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    timeout(Duration::from_secs(10), s.read_to_string(&mut text)).await??;
    Ok(text)
}

/// Runs the test named `test` again in a network namespace of its own (`unshare --net`),
/// with the environment variable `inside` set there. Inside it, runs each `ip` command of
/// `setup` and returns true (the caller goes on with the test); outside, returns false
/// once the namespaced run passed. Nothing reaches the machine's own interfaces.
pub fn in_netns(test: &str, inside: &str, setup: &[&[&str]]) -> bool {
    use std::process::Command;
    if std::env::var_os(inside).is_some() {
        for args in setup {
            let status = Command::new("ip").args(*args).status().expect("ip runs");
            assert!(status.success(), "ip {args:?} failed inside the namespace");
        }
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(inside, "1")
        .status()
        .expect("unshare runs (the test needs root or user namespaces)");
    assert!(
        status.success(),
        "{test} failed inside its network namespace (try: unshare --net ip link)"
    );
    false
}
