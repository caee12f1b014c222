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
use ferry_core::events::ForwardState;
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

/// Writes `data` on an open connection and reads the echo back.
async fn round_trip(conn: &mut TcpStream, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    conn.write_all(data).await?;
    let mut back = vec![0u8; data.len()];
    timeout(Duration::from_secs(5), conn.read_exact(&mut back)).await??;
    Ok(back)
}

/// Health transitions to Down so far.
fn downs(s: &ferry_core::events::ForwardStatus) -> usize {
    s.history
        .iter()
        .filter(|t| t.to == ferry_core::health::HealthState::Down)
        .count()
}

/// A cluster that closes port-forward sessions idle for 8 s (kubelet's
/// `--streaming-connection-idle-timeout`, 5 min on hardened clusters; anything above
/// Ferry's ping interval, 5 s, checked every 1.25 s): over SPDY, Ferry's pings keep a
/// quiet connection's session alive; the forward stays active and its health (probed
/// through the same session) never goes down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_timeout_ends_no_quiet_connection_and_flaps_nothing() -> anyhow::Result<()> {
    let timeout_after = Duration::from_secs(8);
    let f = fake_with(
        Options::default()
            .context_name("ferry-fake")
            .streaming_idle_timeout(timeout_after),
    )
    .await?;
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    let mut quiet = TcpStream::connect(addr).await?;
    assert_eq!(round_trip(&mut quiet, b"before").await?, b"before");
    // Quiet for more than twice the timeout, watching the forward meanwhile.
    let until = Instant::now() + timeout_after * 2 + Duration::from_secs(1);
    while Instant::now() < until {
        let s = engine.snapshot().await?;
        let s = s.get("echo").expect("echo runs");
        assert_eq!(s.state, ForwardState::Active, "{s:?}");
        assert_eq!(downs(s), 0, "health never went down: {s:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        round_trip(&mut quiet, b"after a quiet while").await?,
        b"after a quiet while",
        "the quiet connection still works"
    );
    let stats = f.fake.portforward_stats();
    assert_eq!(stats.idle_closed, 0, "pings kept it: {stats:?}");
    assert_eq!(
        stats.spdy_sessions_total, 1,
        "one session all along: {stats:?}"
    );
    let s = engine.snapshot().await?;
    let idle_closed = s.get("echo").and_then(|s| s.idle_closed);
    assert_eq!(idle_closed, None, "nothing was closed for idleness");
    engine.shutdown().await;
    Ok(())
}

/// A session nobody uses (no connection, no health checks) is closed by a cluster with
/// an idle timeout shorter than Ferry's own (10 s); the next connection opens a fresh
/// session at once and the forward stays active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_cluster_closed_for_idleness_is_replaced_at_once() -> anyhow::Result<()> {
    let f = fake_with(
        Options::default()
            .context_name("ferry-fake")
            .streaming_idle_timeout(Duration::from_secs(3)),
    )
    .await?;
    let mut echo = fwd("echo", "service/echo", PortRef::Number(80));
    echo.health.kind = ProbeKind::None;
    let engine = Engine::start(config(vec![echo]), options(vec![f.kubeconfig.clone()]))?;
    let addr = active(&engine, "echo").await?;
    assert_eq!(echo_once(addr, b"first").await?, b"first");
    let closed = Instant::now();
    while f.fake.portforward_stats().idle_closed == 0 {
        anyhow::ensure!(
            closed.elapsed() < Duration::from_secs(15),
            "the server never closed the idle session: {:?}",
            f.fake.portforward_stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    assert_eq!(echo_once(addr, b"fresh").await?, b"fresh");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a new connection after the close took {:?}",
        started.elapsed()
    );
    let stats = f.fake.portforward_stats();
    assert_eq!(stats.spdy_sessions_total, 2, "a fresh session: {stats:?}");
    let s = engine.snapshot().await?;
    let s = s.get("echo").expect("echo runs");
    assert_eq!(s.state, ForwardState::Active, "{s:?}");
    engine.shutdown().await;
    Ok(())
}

/// Over the channel protocol (a server that speaks no SPDY), nothing reaches the kubelet
/// between data messages, so a connection quiet for the timeout is closed by the server:
/// the client sees its connection end, the forward stays active and the next connection
/// works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_channel_protocol_an_idle_timeout_ends_only_the_quiet_connection()
-> anyhow::Result<()> {
    let f = fake_with(
        Options::default()
            .context_name("ferry-fake")
            .streaming_idle_timeout(Duration::from_secs(6)),
    )
    .await?;
    f.fake
        .faults()
        .refuse_protocol(FakeProtocol::SpdyWebSocket, true);
    f.fake.faults().refuse_protocol(FakeProtocol::Spdy, true);
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    let mut quiet = TcpStream::connect(addr).await?;
    assert_eq!(round_trip(&mut quiet, b"before").await?, b"before");
    let mut rest = Vec::new();
    let ended = timeout(Duration::from_secs(15), quiet.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the server ended the quiet connection");
    assert!(f.fake.portforward_stats().idle_closed >= 1);
    assert_eq!(echo_once(addr, b"next").await?, b"next");
    let s = engine.snapshot().await?;
    let s = s.get("echo").expect("echo runs");
    assert_eq!(s.state, ForwardState::Active, "{s:?}");
    assert_eq!(downs(s), 0, "{s:?}");
    // The forward says the cluster closed a connection for idleness, and after how long.
    let closed = s.idle_closed.expect("the idle close is told");
    println!("told: {closed:?}");
    assert_eq!(closed.count, 1, "{closed:?}");
    assert!(
        (5_000..15_000).contains(&closed.quiet_ms),
        "quiet for {} ms",
        closed.quiet_ms
    );
    engine.shutdown().await;
    Ok(())
}

/// A small HTTP CONNECT proxy on loopback: tunnels each `CONNECT host:port` to its target
/// and counts the tunnels it made.
async fn connect_proxy() -> anyhow::Result<(
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
)> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            conns.spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if head.len() > 8192 || client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split_whitespace().next())
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    Ok((addr, tunnels, task))
}

/// A kubeconfig's `proxy-url` is honoured for API requests and port-forward upgrades
/// alike: every upgrade the fake API server answered came through the proxy, as did the
/// API requests (at least one more tunnel), and the forward carries bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfigs_proxy_url_carries_api_calls_and_upgrades() -> anyhow::Result<()> {
    let (proxy, tunnels, proxy_task) = connect_proxy().await?;
    through_proxy(&format!("http://{proxy}"), &tunnels).await?;
    proxy_task.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks5_proxy_url_carries_api_calls_and_upgrades() -> anyhow::Result<()> {
    let (proxy, tunnels, proxy_task) = socks5_proxy().await?;
    through_proxy(&format!("socks5://{proxy}"), &tunnels).await?;
    proxy_task.abort();
    Ok(())
}

/// Forwards work with the kubeconfig's cluster behind `proxy_url`, and every upgrade and
/// the API requests went through the proxy (which counts its `tunnels`).
async fn through_proxy(
    proxy_url: &str,
    tunnels: &std::sync::atomic::AtomicUsize,
) -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let text = std::fs::read_to_string(&f.kubeconfig)?;
    let mut doc: serde_norway::Value = serde_norway::from_str(&text)?;
    let clusters = doc
        .get_mut("clusters")
        .and_then(|c| c.as_sequence_mut())
        .ok_or_else(|| anyhow::anyhow!("no clusters in the kubeconfig"))?;
    for c in clusters {
        if let Some(cluster) = c.get_mut("cluster").and_then(|c| c.as_mapping_mut()) {
            cluster.insert("proxy-url".into(), proxy_url.into());
        }
    }
    std::fs::write(&f.kubeconfig, serde_norway::to_string(&doc)?)?;

    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    let mut conns = tokio::task::JoinSet::new();
    for i in 0..20 {
        conns.spawn(async move {
            let data = format!("through the proxy {i}").into_bytes();
            anyhow::ensure!(echo_once(addr, &data).await? == data, "connection {i}");
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = conns.join_next().await {
        done??;
    }
    let stats = f.fake.portforward_stats();
    let upgrades: u64 = FakeProtocol::ALL
        .iter()
        .map(|&p| stats.upgrades.get(p))
        .sum();
    let through = tunnels.load(std::sync::atomic::Ordering::SeqCst) as u64;
    println!("{proxy_url}: {through} tunnels for {upgrades} upgrades and the API requests");
    assert!(upgrades >= 1, "{stats:?}");
    assert!(
        through > upgrades,
        "the proxy made {through} tunnels for {upgrades} upgrades and the API requests"
    );
    engine.shutdown().await;
    Ok(())
}

/// A small SOCKS5 proxy on loopback (RFC 1928, no authentication, CONNECT to an IPv4
/// address or a name): tunnels each connection to its target and counts them.
async fn socks5_proxy() -> anyhow::Result<(
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
)> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    async fn serve(mut client: TcpStream, count: &AtomicUsize) -> std::io::Result<()> {
        // Greeting: version 5, the methods offered; "no authentication" is chosen.
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await?;
        let mut methods = vec![0u8; head[1] as usize];
        client.read_exact(&mut methods).await?;
        if head[0] != 5 || !methods.contains(&0) {
            client.write_all(&[5, 0xff]).await?;
            return Ok(());
        }
        client.write_all(&[5, 0]).await?;
        // Request: version, CONNECT, reserved, address type, address, port.
        let mut req = [0u8; 4];
        client.read_exact(&mut req).await?;
        let host = match req[3] {
            1 => {
                let mut ip = [0u8; 4];
                client.read_exact(&mut ip).await?;
                std::net::Ipv4Addr::from(ip).to_string()
            }
            3 => {
                let mut len = [0u8; 1];
                client.read_exact(&mut len).await?;
                let mut name = vec![0u8; len[0] as usize];
                client.read_exact(&mut name).await?;
                String::from_utf8_lossy(&name).into_owned()
            }
            _ => {
                // Address type not supported.
                client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                return Ok(());
            }
        };
        let mut port = [0u8; 2];
        client.read_exact(&mut port).await?;
        let port = u16::from_be_bytes(port);
        if req[1] != 1 {
            client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
        let mut upstream = match TcpStream::connect((host.as_str(), port)).await {
            Ok(s) => s,
            Err(_) => {
                client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                return Ok(());
            }
        };
        count.fetch_add(1, Ordering::SeqCst);
        client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        Ok(())
    }
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            let count = count.clone();
            conns.spawn(async move {
                let _ = serve(client, &count).await;
            });
        }
    });
    Ok((addr, tunnels, task))
}

/// After a wake or a network change (`Engine::recheck`, what the wake watcher calls) with
/// no way to the pods, the forward shows `reconnecting` with the reason and never `active`
/// until a probe passes again; once the way is back, bytes flow again. (With the API
/// server unreachable too, the resolver says `reconnecting` with its own reason.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_network_change_a_forward_is_not_active_until_proven() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let (engine, addr) = start_one(&f, "echo", "echo").await?;
    wait_for(&engine, "echo", "healthy", |s| {
        s.health == ferry_core::health::HealthState::Up
    })
    .await?;
    // The path to the pods broke (the API server still lists them, so the forward's pod
    // stays known): the open sessions are gone and no new one opens.
    f.fake.faults().refuse_portforward(Duration::from_secs(600));
    f.fake.faults().drop_tunnels();
    engine.recheck("the network changed").await?;
    let s = wait_for(&engine, "echo", "reconnecting", |s| {
        s.state == ForwardState::Reconnecting
    })
    .await?;
    assert!(
        s.error
            .as_deref()
            .is_some_and(|e| e.contains("the network changed")),
        "{s:?}"
    );
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        let snap = engine.snapshot().await?;
        let s = snap.get("echo").expect("echo runs");
        assert_ne!(
            s.state,
            ForwardState::Active,
            "active on a dead path: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f.fake.faults().clear();
    let back = Instant::now();
    wait_for(&engine, "echo", "active again", |s| {
        s.state == ForwardState::Active
    })
    .await?;
    assert_eq!(echo_once(addr, b"back").await?, b"back");
    println!(
        "active and carrying bytes {:?} after the cluster answered",
        back.elapsed()
    );
    engine.shutdown().await;
    Ok(())
}

/// A dropped VPN: right after a network change the API server is unreachable for 5 s
/// (every connection to it cut, new ones refused). Three forwards to three pods: while it
/// lasts none shows `active`; once it answers, every forward carries bytes again within
/// seconds (the figure is printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_cluster_is_unreachable_no_forward_is_active() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let names = ["echo", "db", "solo"];
    let engine = Engine::start(
        config(vec![
            fwd("echo", "service/echo", PortRef::Number(80)),
            fwd("db", "statefulset/db", PortRef::Name("pg".into())),
            fwd("solo", "pod/solo", PortRef::Number(9000)),
        ]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let mut addrs = Vec::new();
    for name in names {
        addrs.push(active(&engine, name).await?);
        wait_for(&engine, name, "healthy", |s| {
            s.health == ferry_core::health::HealthState::Up
        })
        .await?;
    }
    for &addr in &addrs {
        assert_eq!(echo_once(addr, b"before").await?, b"before");
    }
    let outage = Duration::from_secs(20); // a dropped VPN
    f.fake.faults().refuse_connections(outage);
    let started = Instant::now();
    engine.recheck("the network changed").await?;
    // The monitor takes the doubt from the engine's queue a moment after `recheck`
    // returns; from then on nothing is active until the cluster answers.
    for name in names {
        wait_for(&engine, name, "reconnecting", |s| {
            s.state == ForwardState::Reconnecting
        })
        .await?;
    }
    println!(
        "all reconnecting {:?} after the outage began",
        started.elapsed()
    );
    while started.elapsed() < outage - Duration::from_millis(300) {
        let snap = engine.snapshot().await?;
        for name in names {
            let s = snap.get(name).expect("runs");
            assert_ne!(
                s.state,
                ForwardState::Active,
                "active while unreachable: {s:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep_until(started + outage).await;
    let back = Instant::now();
    let mut took = Vec::new();
    for (name, &addr) in names.iter().zip(&addrs) {
        loop {
            match timeout(Duration::from_secs(2), echo_once(addr, b"back")).await {
                Ok(Ok(b)) if b == b"back" => break,
                other => anyhow::ensure!(
                    back.elapsed() < Duration::from_secs(30),
                    "{name} never carried bytes again: {other:?}"
                ),
            }
        }
        took.push((name, back.elapsed()));
    }
    for name in names {
        wait_for(&engine, name, "active again", |s| {
            s.state == ForwardState::Active
        })
        .await?;
    }
    println!(
        "bytes again after the outage: {took:?}; all active {:?} after it",
        back.elapsed()
    );
    engine.shutdown().await;
    Ok(())
}
