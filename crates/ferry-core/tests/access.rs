//! Permissions: a user the cluster does not let port-forward (or read what a forward
//! needs) is told exactly what is missing before the forward starts, and the forward
//! starts once the permission is granted.

mod common;

use std::time::Duration;

use common::{active, config, echo_once, fwd, options, wait_for};
use ferry_core::Engine;
use ferry_core::config::PortRef;
use ferry_core::events::ForwardState;
use ferry_fakecluster::{FakeCluster, Options, PolicyRule, User};

/// What every forward reads: pods, services and EndpointSlices, in every namespace.
fn reads() -> PolicyRule {
    PolicyRule::new(
        ["get", "list", "watch"],
        ["pods", "services", "endpointslices"],
    )
}

/// A fake cluster with user `dev` holding `rules`, and a kubeconfig that logs in as dev.
async fn cluster_for_dev(
    rules: Vec<PolicyRule>,
) -> anyhow::Result<(FakeCluster, tempfile::TempDir, std::path::PathBuf)> {
    let mut dev = User::new("dev", "dev-token");
    for r in rules {
        dev = dev.rule(r);
    }
    let fake = FakeCluster::start(Options::default().context_name("ferry-fake").user(dev)).await?;
    fake.wait_pods_ready(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig_for_user("dev", &kubeconfig)?;
    Ok((fake, dir, kubeconfig))
}

/// Upgrades Ferry asked the fake for so far.
fn upgrades(fake: &FakeCluster) -> u64 {
    let ours = ferry_core::cluster::user_agent();
    fake.requests()
        .agents()
        .iter()
        .find(|a| a.user_agent == ours)
        .map_or(0, |a| a.upgrades)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_port_forward_is_told_before_the_forward_starts() -> anyhow::Result<()> {
    let (fake, _dir, kubeconfig) = cluster_for_dev(vec![reads()]).await?;
    let engine = Engine::start(
        config(vec![fwd("echo", "service/echo", PortRef::Number(80))]),
        options(vec![kubeconfig]),
    )?;
    let seen_active = std::sync::atomic::AtomicBool::new(false);
    let s = wait_for(&engine, "echo", "told what is missing", |s| {
        if s.state == ForwardState::Active {
            seen_active.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        s.state == ForwardState::Error
    })
    .await?;
    let said = s.error.clone().unwrap_or_default();
    println!("{said}");
    assert!(
        !seen_active.load(std::sync::atomic::Ordering::Relaxed),
        "active without the permission to forward"
    );
    assert!(
        said.contains("user `dev` cannot create or get pods/portforward in namespace `demo`"),
        "{said}"
    );
    assert!(said.contains("Kubernetes 1.35"), "{said}");
    assert!(said.contains("context `ferry-fake`"), "{said}");
    // Said from the access review, before any upgrade was tried.
    assert_eq!(
        upgrades(&fake),
        0,
        "an upgrade was tried without the permission"
    );

    // Granted, the forward starts on its retry and carries bytes.
    fake.set_user_rules(
        "dev",
        vec![
            reads(),
            PolicyRule::new(["create", "get"], ["pods/portforward"]).namespaces(["demo"]),
        ],
    )?;
    engine.recheck_forward("echo").await?;
    let addr = active(&engine, "echo").await?;
    assert_eq!(echo_once(addr, b"granted").await?, b"granted");
    engine.shutdown().await;
    fake.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_target_needs_to_be_read_is_named_by_kind() -> anyhow::Result<()> {
    // Port-forwarding is granted, and everything on pods, but not EndpointSlices (which a
    // service needs) nor deployments.
    let (fake, _dir, kubeconfig) = cluster_for_dev(vec![
        PolicyRule::new(["get", "list", "watch"], ["pods", "services"]),
        PolicyRule::new(["create", "get"], ["pods/portforward"]),
    ])
    .await?;
    let mut pod = fwd("solo", "pod/placeholder", PortRef::Number(9000));
    pod.target = format!("pod/{}", common::pod_of(&fake, "echo"))
        .parse()
        .map_err(anyhow::Error::msg)?;
    let engine = Engine::start(
        config(vec![
            fwd("svc", "service/echo", PortRef::Number(80)),
            fwd("deploy", "deployment/echo", PortRef::Number(9000)),
            pod,
        ]),
        options(vec![kubeconfig]),
    )?;
    let svc = wait_for(&engine, "svc", "in error", |s| {
        s.state == ForwardState::Error
    })
    .await?;
    let said = svc.error.unwrap_or_default();
    println!("service: {said}");
    assert!(
        said.contains("user `dev` cannot list endpointslices.discovery.k8s.io in namespace `demo`"),
        "{said}"
    );
    assert!(!said.contains("1.35"), "port-forwarding is granted: {said}");
    let deploy = wait_for(&engine, "deploy", "in error", |s| {
        s.state == ForwardState::Error
    })
    .await?;
    let said = deploy.error.unwrap_or_default();
    println!("deployment: {said}");
    assert!(said.contains("cannot get deployments.apps"), "{said}");
    // A pod needs nothing more: it works.
    let addr = active(&engine, "solo").await?;
    assert_eq!(echo_once(addr, b"pod").await?, b"pod");
    engine.shutdown().await;
    fake.shutdown().await;
    Ok(())
}
