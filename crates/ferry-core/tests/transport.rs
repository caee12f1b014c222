//! The multiplexed transport through the engine, against the fake cluster: connections
//! share a session per pod, a client that stops reading holds up no other, and a client's
//! half-close reaches the pod.

mod common;

use std::time::Duration;

use common::{
    active, config, echo_once, fake, fake_with, fwd, options, pod_of, start_one, wait_for,
};
use ferry_core::Engine;
use ferry_core::config::{PortRef, ProbeKind};
use ferry_core::sessions::Protocol;
use ferry_fakecluster::stats::Protocol as FakeProtocol;
use ferry_fakecluster::{Behavior, Options};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Upgrades Ferry made so far (its user agent's count at the fake API server).
fn upgrades(f: &common::Fake) -> u64 {
    let ours = ferry_core::cluster::user_agent();
    f.fake
        .requests()
        .agents()
        .iter()
        .find(|a| a.user_agent == ours)
        .map_or(0, |a| a.upgrades)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_need_a_handful_of_upgrades() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        tasks.spawn(async move {
            let data = format!("connection {i} ").repeat(64).into_bytes();
            let back = echo_once(addr, &data).await?;
            anyhow::ensure!(back == data, "connection {i} got other bytes back");
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let seen = upgrades(&f);
    println!("200 concurrent connections (and the health checks): {seen} upgrades");
    // 200 at once need at least ⌈200 / 64⌉ = 4 sessions.
    assert!(seen <= 8, "{seen} upgrades for 200 connections");
    engine.shutdown().await;
    Ok(())
}

/// Reads an HTTP response to `GET /bytes?n=N` to its end; the body's length.
async fn fetch(addr: std::net::SocketAddr, n: usize) -> anyhow::Result<usize> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET /bytes?n={n} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut all = Vec::with_capacity(n + 512);
    s.read_to_end(&mut all).await?;
    let head = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP head in {} bytes", all.len()))?;
    Ok(all.len() - head - 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_up_no_other() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let (engine, addr) = start_one(&f, "web", "web").await?;
    // One client asks for 256 MiB and never reads: the kernel's socket buffers fill,
    // then its connection's buffer in Ferry.
    let mut stalled = TcpStream::connect(addr).await?;
    stalled
        .write_all(b"GET /bytes?n=268435456 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Eight others on the same pod (the same session) each fetch 10 MiB.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        tasks.spawn(fetch(addr, 10 << 20));
    }
    while let Some(done) = tasks.join_next().await {
        let got = timeout(Duration::from_secs(60), async { done })
            .await
            .map_err(|_| anyhow::anyhow!("a fetch never finished"))???;
        assert_eq!(got, 10 << 20);
    }
    println!(
        "8 × 10 MiB beside a stalled reader: {:?}",
        started.elapsed()
    );
    // The stalled client's connection was ended rather than kept at everyone's expense:
    // reading now finds its end long before 256 MiB.
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let ended = timeout(Duration::from_secs(30), async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled connection is still open");
    assert!(
        total < 256 << 20,
        "the stalled connection got all {total} bytes"
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_half_close_reaches_the_pod_at_once() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    for size in [0usize, 5, 300_000] {
        let data = vec![b'h'; size];
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(&data).await?;
        s.shutdown().await?;
        // The echo server closes once it reads the end of the stream: the client sees the
        // whole echo and the end well before the 60 s a WebSocket tunnel waits.
        let mut back = Vec::new();
        timeout(Duration::from_secs(5), s.read_to_end(&mut back))
            .await
            .map_err(|_| anyhow::anyhow!("{size} bytes: the pod never saw the end"))??;
        assert_eq!(back.len(), size);
    }
    engine.shutdown().await;
    Ok(())
}

/// One protocol path end to end: 10 MiB echoed exactly, 64 connections at once, the
/// client's half-close reaching the pod (SPDY paths), healing after the pod is deleted,
/// and a refusing pod port reported with kubelet's words.
async fn exercise(f: &common::Fake, want: Protocol) -> anyhow::Result<()> {
    let mut echo = fwd("echo", "deployment/echo", PortRef::Number(9000));
    echo.health.kind = ProbeKind::Tunnel;
    let engine = Engine::start(config(vec![echo]), options(vec![f.kubeconfig.clone()]))?;
    let addr = active(&engine, "echo").await?;

    let mut data = vec![0u8; 10 << 20];
    rand::rng().fill_bytes(&mut data);
    assert!(
        echo_once(addr, &data).await? == data,
        "{want:?}: 10 MiB differ"
    );
    let protocol = engine
        .clients()
        .client(Some("ferry-fake"))
        .await?
        .tunnels
        .protocol();
    assert_eq!(protocol, Some(want));

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        tasks.spawn(async move {
            let data = format!("{i} ").repeat(2000).into_bytes();
            anyhow::ensure!(echo_once(addr, &data).await? == data, "connection {i}");
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }

    if want != Protocol::Channel {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"half").await?;
        s.shutdown().await?;
        let mut back = Vec::new();
        timeout(Duration::from_secs(5), s.read_to_end(&mut back)).await??;
        assert_eq!(back, b"half", "{want:?}: half-close");
    }

    let old = pod_of(&f.fake, "echo");
    f.fake.cluster().delete_pod("demo", &old)?;
    let healed = Instant::now();
    loop {
        match timeout(Duration::from_secs(2), echo_once(addr, b"after")).await {
            Ok(Ok(b)) if b == b"after" => break,
            _ => anyhow::ensure!(
                healed.elapsed() < Duration::from_secs(20),
                "{want:?}: never healed"
            ),
        }
    }
    println!("{want:?}: healed {:?} after the deletion", healed.elapsed());
    wait_for(&engine, "echo", "on the new pod", |s| {
        s.pod.as_deref().is_some_and(|p| p != old)
    })
    .await?;

    let pod = pod_of(&f.fake, "echo");
    f.fake
        .cluster()
        .set_behavior("demo", &pod, &Behavior::Refuse)?;
    let down = wait_for(&engine, "echo", "down", |s| {
        s.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("connection refused by"))
    })
    .await?;
    println!("{want:?}: {:?}", down.detail);
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spdy_websocket_tunnel_path_does_everything() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    exercise(&f, Protocol::Tunnel).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_spdy_path_does_everything() -> anyhow::Result<()> {
    // An API server before 1.30: no SPDY through a WebSocket.
    let f = fake_with(
        Options::default()
            .context_name("ferry-fake")
            .spdy_over_websocket(false),
    )
    .await?;
    exercise(&f, Protocol::Spdy).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_path_does_everything_but_half_close() -> anyhow::Result<()> {
    // A server that speaks no SPDY at all: a WebSocket per connection.
    let f = fake("ferry-fake").await?;
    f.fake
        .faults()
        .refuse_protocol(FakeProtocol::SpdyWebSocket, true);
    f.fake.faults().refuse_protocol(FakeProtocol::Spdy, true);
    exercise(&f, Protocol::Channel).await?;
    let stats = f.fake.portforward_stats();
    assert_eq!(stats.upgrades.get(FakeProtocol::Spdy), 0, "{stats:?}");
    assert_eq!(
        stats.upgrades.get(FakeProtocol::SpdyWebSocket),
        0,
        "{stats:?}"
    );
    assert!(stats.upgrades.get(FakeProtocol::Channel) > 0, "{stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_upgrade_names_the_missing_permission() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    f.fake.faults().forbid_portforward(true);
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    // A connection cannot be carried; the forward says why.
    let _ = timeout(Duration::from_secs(2), echo_once(addr, b"x")).await;
    let s = wait_for(&engine, "echo", "told of the 403", |s| {
        [&s.error, &s.last_error, &s.detail].iter().any(|t| {
            t.as_deref()
                .is_some_and(|t| t.contains("create pods/portforward"))
        })
    })
    .await?;
    let said = [&s.error, &s.last_error, &s.detail]
        .iter()
        .filter_map(|t| t.as_deref())
        .find(|t| t.contains("create pods/portforward"))
        .unwrap_or_default()
        .to_string();
    println!("{said}");
    assert!(said.contains("namespace demo"), "{said}");
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_session_is_left_within_two_pings() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    let mut open = TcpStream::connect(addr).await?;
    open.write_all(b"x").await?;
    let mut one = [0u8; 1];
    open.read_exact(&mut one).await?;
    // A dead NAT, a laptop that slept: nothing passes, nothing is closed.
    let frozen = f.fake.faults().freeze_sessions();
    assert!(frozen >= 1, "no session to freeze");
    let started = Instant::now();
    let watcher = tokio::spawn(async move {
        let mut rest = Vec::new();
        let r = open.read_to_end(&mut rest).await;
        (started.elapsed(), r.map(|_| rest.len()))
    });
    // A new connection goes through once the frozen session is found dead.
    let back = timeout(Duration::from_secs(12), echo_once(addr, b"fresh")).await??;
    assert_eq!(back, b"fresh");
    let took = started.elapsed();
    println!("a new connection went through {took:?} after the freeze");
    assert!(took <= Duration::from_secs(10), "{took:?}");
    // The connection on the frozen session ended.
    let ended = timeout(Duration::from_secs(2), watcher).await;
    println!("the frozen session's connection: {ended:?}");
    assert!(
        ended.is_ok(),
        "the frozen session's connection is still open"
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_leaves_frozen_sessions_at_once() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    assert_eq!(echo_once(addr, b"before").await?, b"before");
    assert_eq!(
        engine.recheck("a test").await?,
        0,
        "a live session survives"
    );
    f.fake.faults().freeze_sessions();
    let started = Instant::now();
    // What the app does when the machine wakes or the network changes.
    let ended = engine.recheck("the machine woke from sleep").await?;
    assert!(ended >= 1, "the frozen session was kept");
    let back = timeout(Duration::from_secs(3), echo_once(addr, b"after")).await??;
    assert_eq!(back, b"after");
    let took = started.elapsed();
    println!("bytes flowed again {took:?} after the recheck began");
    assert!(took <= Duration::from_secs(5), "{took:?}");
    engine.shutdown().await;
    Ok(())
}
