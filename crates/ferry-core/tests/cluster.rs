//! Cluster access and target resolution against the fake cluster.

use std::time::Duration;

use ferry_core::cluster::{
    ClientPool, ClusterError, Endpoint, KubeconfigSource, ResolveError, resolve, service_port_to,
};
use ferry_core::config::{PortRef, Target};
use ferry_fakecluster::kind::Kind;
use ferry_fakecluster::{FakeCluster, Options};

async fn demo(
    context: &str,
) -> anyhow::Result<(FakeCluster, tempfile::TempDir, std::path::PathBuf)> {
    let fake = FakeCluster::start(Options::default().context_name(context)).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path)?;
    let cluster = fake.cluster().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster
        .list(Kind::Pod, None)
        .1
        .iter()
        .all(|p| ferry_fakecluster::cluster::pod_is_ready(p))
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "demo pods never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((fake, dir, path))
}

fn t(s: &str) -> Target {
    s.parse().expect("valid target")
}

fn pod_names(eps: &[Endpoint]) -> Vec<&str> {
    eps.iter().map(|e| e.pod.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_kind_resolves_by_number_and_by_name() -> anyhow::Result<()> {
    let (fake, _dir, path) = demo("ferry-fake").await?;
    let pool = ClientPool::new(KubeconfigSource::from_paths(vec![path]));
    let cc = pool.client(None).await?;
    assert_eq!(cc.context, "ferry-fake");
    assert_eq!(
        cc.namespace, "default",
        "the fake's context sets no namespace"
    );
    let c = &cc.client;

    let solo = resolve(c, "demo", &t("pod/solo"), &PortRef::Number(9000), false).await?;
    assert_eq!(
        solo,
        vec![Endpoint {
            pod: "solo".into(),
            port: 9000
        }]
    );

    let echo = resolve(c, "demo", &t("service/echo"), &PortRef::Number(80), false).await?;
    assert_eq!(echo.len(), 2);
    assert!(
        echo.iter()
            .all(|e| e.port == 9000 && e.pod.starts_with("echo-")),
        "targetPort `echo` → 9000: {echo:?}"
    );
    // kftray's and kportal's meaning of a service port: the pods' port.
    let pods = resolve(c, "demo", &t("service/echo"), &PortRef::Number(9000), true).await?;
    assert_eq!(pods, echo, "the same pods at the same port");
    // Which service port leads to a pods' port: by target port name, by number, none.
    assert_eq!(service_port_to(c, "demo", "echo", 9000).await?, Some(80));
    assert_eq!(service_port_to(c, "demo", "web", 8080).await?, Some(80));
    assert_eq!(service_port_to(c, "demo", "echo", 7777).await?, None);

    let web = resolve(c, "demo", &t("svc/web"), &PortRef::Number(80), false).await?;
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].port, 8080);

    let web_deploy = resolve(
        c,
        "demo",
        &t("deploy/web"),
        &PortRef::Name("http".into()),
        false,
    )
    .await?;
    assert_eq!(
        web_deploy, web,
        "deployment by named port matches the service"
    );

    let db = resolve(c, "demo", &t("sts/db"), &PortRef::Name("pg".into()), false).await?;
    assert_eq!(
        db,
        vec![Endpoint {
            pod: "db-0".into(),
            port: 5432
        }]
    );
    let db_svc = resolve(c, "demo", &t("service/db"), &PortRef::Number(5432), false).await?;
    assert_eq!(db_svc, db);

    let echo_deploy = resolve(
        c,
        "demo",
        &t("deployment/echo"),
        &PortRef::Number(9000),
        false,
    )
    .await?;
    assert_eq!(pod_names(&echo_deploy), pod_names(&echo));
    drop(fake);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_errors_say_what_is_wrong() -> anyhow::Result<()> {
    let (fake, _dir, path) = demo("ferry-fake").await?;
    let pool = ClientPool::new(KubeconfigSource::from_paths(vec![path]));
    let c = pool.client(Some("ferry-fake")).await?.client;

    let err = resolve(&c, "demo", &t("service/nope"), &PortRef::Number(80), false)
        .await
        .expect_err("missing");
    assert_eq!(err.to_string(), "service demo/nope not found");
    assert!(!err.is_retryable());

    let err = resolve(&c, "demo", &t("service/echo"), &PortRef::Number(81), false)
        .await
        .expect_err("bad port");
    assert_eq!(
        err.to_string(),
        "service demo/echo has no port 81 (ports: 80)"
    );

    let err = resolve(
        &c,
        "demo",
        &t("pod/solo"),
        &PortRef::Name("http".into()),
        false,
    )
    .await
    .expect_err("bad name");
    assert!(matches!(err, ResolveError::NoSuchPort { .. }), "{err}");
    assert!(err.to_string().contains("(ports: 9000)"), "{err}");

    // Every echo pod failing readiness: a clear, retryable error instead of a hang.
    let (_, pods) = fake.cluster().list(Kind::Pod, Some("demo"));
    for p in pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "echo")
    {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        fake.cluster().set_pod_ready("demo", name, false)?;
    }
    let err = resolve(&c, "demo", &t("service/echo"), &PortRef::Number(80), false)
        .await
        .expect_err("none ready");
    assert_eq!(err.to_string(), "no ready pod behind service demo/echo");
    assert!(err.is_retryable());
    let err = resolve(
        &c,
        "demo",
        &t("deployment/echo"),
        &PortRef::Number(9000),
        false,
    )
    .await
    .expect_err("none ready");
    assert_eq!(err.to_string(), "no ready pod behind deployment demo/echo");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_are_independent_across_merged_kubeconfigs() -> anyhow::Result<()> {
    let (a, _da, path_a) = demo("alpha").await?;
    let (b, _db, path_b) = demo("beta").await?;
    let broken_dir = tempfile::tempdir()?;
    let broken = broken_dir.path().join("broken");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: gamma\n  context: {cluster: nowhere, user: nobody}\n",
    )?;
    let pool = ClientPool::new(KubeconfigSource::from_paths(vec![path_a, path_b, broken]));
    let (mut contexts, current) = pool.contexts()?;
    contexts.sort();
    assert_eq!(contexts, ["alpha", "beta", "gamma"]);
    assert_eq!(
        current.as_deref(),
        Some("alpha"),
        "the first file's current-context wins"
    );

    let alpha = pool.client(Some("alpha")).await?.client;
    let beta = pool.client(Some("beta")).await?.client;
    let gamma = pool
        .client(Some("gamma"))
        .await
        .expect_err("gamma has no cluster");
    assert!(
        matches!(gamma, ClusterError::Client { ref context, .. } if context == "gamma"),
        "{gamma}"
    );
    let unknown = pool
        .client(Some("delta"))
        .await
        .expect_err("no such context");
    assert_eq!(
        unknown.to_string(),
        "context `delta` is not in the kubeconfig (known: alpha, beta, gamma)"
    );
    assert_eq!(pool.context_errors().len(), 2);

    // Stopping one cluster breaks only its own resolutions.
    a.shutdown().await;
    let err = resolve(
        &alpha,
        "demo",
        &t("pod/solo"),
        &PortRef::Number(9000),
        false,
    )
    .await
    .expect_err("alpha is down");
    assert!(matches!(err, ResolveError::Api { .. }), "{err}");
    assert!(err.is_retryable());
    resolve(&beta, "demo", &t("pod/solo"), &PortRef::Number(9000), false).await?;
    drop(b);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_kubeconfig_rebuilds_clients() -> anyhow::Result<()> {
    let (first, _d1, path) = demo("ferry-fake").await?;
    let pool = ClientPool::new(KubeconfigSource::from_paths(vec![path.clone()]));
    let c1 = pool.client(None).await?.client;
    resolve(&c1, "demo", &t("pod/solo"), &PortRef::Number(9000), false).await?;
    assert!(!pool.refresh(), "nothing changed yet");

    // A new cluster under the same context name, written over the same file.
    first.shutdown().await;
    let (second, _d2, other) = demo("ferry-fake").await?;
    std::fs::copy(&other, &path)?;
    let c2 = pool.client(None).await?.client;
    resolve(&c2, "demo", &t("pod/solo"), &PortRef::Number(9000), false).await?;
    drop(second);
    Ok(())
}
