//! Helpers shared by the end-to-end suites: a demo cluster with its kubeconfig on disk,
//! real clients pointed at it, and polling with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_fakecluster::{FakeCluster, Options};

/// A running fake cluster and a kubeconfig file for it.
pub struct Fixture {
    pub fake: FakeCluster,
    /// Holds the kubeconfig; removed on drop.
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Fixture {
    /// Starts the demo scenario (or `opts`) and waits until all its pods are Ready.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        let fake = FakeCluster::start(opts).await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig)?;
        let fixture = Self {
            fake,
            dir,
            kubeconfig,
        };
        fixture.wait_all_ready().await?;
        Ok(fixture)
    }

    /// Starts the built-in demo scenario.
    pub async fn demo() -> anyhow::Result<Self> {
        Self::start(Options::default()).await
    }

    /// Waits until every pod is Running and Ready.
    pub async fn wait_all_ready(&self) -> anyhow::Result<()> {
        let cluster = self.fake.cluster().clone();
        eventually(Duration::from_secs(10), "all pods ready", move || {
            let (_, pods) = cluster.list(ferry_fakecluster::kind::Kind::Pod, None);
            pods.iter()
                .all(|p| ferry_fakecluster::cluster::pod_is_ready(p))
        })
        .await
    }

    /// A kube-rs client for the cluster, configured from the written kubeconfig.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_from(&self.kubeconfig).await
    }

    /// Runs `kubectl` (the one on PATH unless `bin` names another) with this kubeconfig.
    pub fn kubectl_with(&self, bin: &str, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .output()
            .with_context(|| format!("running {bin}; is kubectl installed? (.ci/run checks it)"))
    }

    /// Runs `kubectl` and returns stdout, failing with stderr when it exits non-zero.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl_with("kubectl", args)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

impl Fixture {
    /// Runs `kubectl` expecting it to fail; returns its stderr.
    pub fn kubectl_fails(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl_with("kubectl", args)?;
        if out.status.success() {
            bail!(
                "kubectl {} succeeded but should have failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Builds a kube-rs client from a kubeconfig file, without touching the environment.
pub async fn client_from(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Polls `check` every 20 ms until it holds, or fails after `limit` naming `what`.
pub async fn eventually(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
