//! Tunnels to pods against the fake cluster, on each transport: a connection on a SPDY
//! session (`Tunnels::open`) and a WebSocket channel tunnel (`tunnel::dial_channel`).
//! Bytes through, refusals as errors.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::cluster::{ClientPool, KubeconfigSource};
use ferry_core::sessions::{Protocol, Tunnels};
use ferry_core::tunnel::{TunnelError, TunnelStream, dial_channel};
use ferry_fakecluster::{Behavior, FakeCluster, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> anyhow::Result<(FakeCluster, tempfile::TempDir, kube::Client)> {
    let fake = FakeCluster::start(Options::default()).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path)?;
    let client = ClientPool::new(KubeconfigSource::from_paths(vec![path]))
        .client(None)
        .await?
        .client;
    let cluster = fake.cluster().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster
        .get(ferry_fakecluster::kind::Kind::Pod, "demo", "solo")
        .is_ok_and(|p| ferry_fakecluster::cluster::pod_is_ready(&p))
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "solo never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((fake, dir, client))
}

#[derive(Clone, Copy, Debug)]
enum Way {
    Session,
    Channel,
}

async fn dial(
    tunnels: &Arc<Tunnels>,
    client: &kube::Client,
    way: Way,
    pod: &str,
) -> Result<TunnelStream, TunnelError> {
    match way {
        Way::Session => tunnels.open("demo", pod, 9000).await,
        Way::Channel => dial_channel(client, "demo", pod, 9000)
            .await
            .map(|c| TunnelStream::Channel(Box::new(c))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_carries_bytes_both_ways() -> anyhow::Result<()> {
    let (_fake, _dir, client) = start().await?;
    let tunnels = Tunnels::new(client.clone());
    for way in [Way::Session, Way::Channel] {
        let mut s = dial(&tunnels, &client, way, "solo").await?;
        let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        s.write_all(&payload).await?;
        let mut back = vec![0u8; payload.len()];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back)).await??;
        assert!(back == payload, "{way:?}: the echo differs");
    }
    // The fake's API server tunnels SPDY through a WebSocket, as servers from 1.30 do.
    assert_eq!(tunnels.protocol(), Some(Protocol::Tunnel));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_pod_port_is_a_read_error_with_kubelets_message() -> anyhow::Result<()> {
    let (fake, _dir, client) = start().await?;
    let tunnels = Tunnels::new(client.clone());
    fake.cluster()
        .set_behavior("demo", "solo", &Behavior::Refuse)?;
    for way in [Way::Session, Way::Channel] {
        let mut s = dial(&tunnels, &client, way, "solo").await?;
        let mut buf = [0u8; 16];
        let err = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await?
            .expect_err("a refused port is an error, not an empty stream");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{way:?}");
        assert!(
            err.to_string().contains("connection refused"),
            "{way:?}: {err}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pod_fails_with_404() -> anyhow::Result<()> {
    let (_fake, _dir, client) = start().await?;
    let tunnels = Tunnels::new(client.clone());
    for way in [Way::Session, Way::Channel] {
        let err = dial(&tunnels, &client, way, "ghost")
            .await
            .expect_err("no such pod");
        assert_eq!(err.code(), Some(404), "{way:?}");
        assert!(
            err.to_string().contains("demo/ghost:9000"),
            "{way:?}: {err}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_share_one_session_and_half_close() -> anyhow::Result<()> {
    let (_fake, _dir, client) = start().await?;
    let tunnels = Tunnels::new(client.clone());
    let mut streams = Vec::new();
    for _ in 0..20 {
        streams.push(tunnels.open("demo", "solo", 9000).await?);
    }
    assert_eq!(tunnels.sessions_opened(), 1, "20 connections, one upgrade");
    assert_eq!(tunnels.sessions_to("demo", "solo"), vec![20]);
    // Each connection echoes its own bytes, then the client's EOF reaches the echo
    // server, which closes: the stream ends cleanly.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut s) in streams.into_iter().enumerate() {
        tasks.spawn(async move {
            let msg = format!("connection {i}");
            s.write_all(msg.as_bytes()).await?;
            s.shutdown().await?;
            let mut back = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut back)).await??;
            anyhow::ensure!(back == msg.as_bytes(), "connection {i} got {back:?}");
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}
