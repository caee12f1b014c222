//! `tunnel::dial` against the fake cluster: bytes through, refusals as errors.

use std::time::Duration;

use ferry_core::cluster::{ClientPool, KubeconfigSource};
use ferry_core::tunnel::dial;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_carries_bytes_both_ways() -> anyhow::Result<()> {
    let (_fake, _dir, client) = start().await?;
    let mut s = dial(&client, "demo", "solo", 9000).await?;
    let payload = vec![7u8; 256 * 1024];
    s.write_all(&payload).await?;
    let mut back = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back)).await??;
    assert_eq!(back, payload);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_pod_port_is_a_read_error_with_kubelets_message() -> anyhow::Result<()> {
    let (fake, _dir, client) = start().await?;
    fake.cluster()
        .set_behavior("demo", "solo", &Behavior::Refuse)?;
    let mut s = dial(&client, "demo", "solo", 9000).await?;
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await?
        .expect_err("a refused port is an error, not an empty stream");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains("connection refused"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialing_a_missing_pod_fails_with_404() -> anyhow::Result<()> {
    let (_fake, _dir, client) = start().await?;
    let err = dial(&client, "demo", "ghost", 9000)
        .await
        .expect_err("no such pod");
    assert_eq!(err.code(), Some(404));
    assert!(err.to_string().contains("demo/ghost:9000"), "{err}");
    Ok(())
}
