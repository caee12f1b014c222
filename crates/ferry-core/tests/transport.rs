//! The multiplexed transport through the engine, against the fake cluster: connections
//! share a session per pod, a client that stops reading holds up no other, and a client's
//! half-close reaches the pod.

mod common;

use std::time::Duration;

use common::{active, config, echo_once, fake, fwd, options};
use ferry_core::Engine;
use ferry_core::config::PortRef;
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
    let engine = Engine::start(
        config(vec![fwd("echo", "service/echo", PortRef::Number(80))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "echo").await?;
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
    let engine = Engine::start(
        config(vec![fwd("web", "service/web", PortRef::Number(80))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "web").await?;
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
    let engine = Engine::start(
        config(vec![fwd("echo", "service/echo", PortRef::Number(80))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "echo").await?;
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
