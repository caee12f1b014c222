//! Real kubectl against the fake cluster: what passes here passes against a cluster.

use std::time::Duration;

use ferry_e2e::{Fixture, eventually};
use ferry_fakecluster::Behavior;
use ferry_fakecluster::kind::Kind;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_demo_objects() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let out = fx.kubectl(&["get", "ns,pods,svc,deploy,sts", "-A"])?;
    for expected in [
        "namespace/demo",
        "pod/solo",
        "pod/db-0",
        "service/echo",
        "service/web",
        "service/db",
        "deployment.apps/echo",
        "deployment.apps/web",
        "statefulset.apps/db",
    ] {
        assert!(out.contains(expected), "`{expected}` missing from:\n{out}");
    }
    // Server-side tables carry real columns: two echo replicas ready, pods Running.
    let echo = out
        .lines()
        .find(|l| l.contains("deployment.apps/echo"))
        .unwrap_or_default();
    assert!(echo.contains("2/2"), "echo deployment row: {echo}");
    let pods: Vec<&str> = out.lines().filter(|l| l.contains("pod/")).collect();
    assert_eq!(pods.len(), 5, "five demo pods: {pods:?}");
    assert!(
        pods.iter()
            .all(|l| l.contains("Running") && l.contains("1/1")),
        "{pods:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_pod_json_parses_with_status_and_named_ports() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let pod: Value =
        serde_json::from_str(&fx.kubectl(&["get", "pod", "solo", "-n", "demo", "-o", "json"])?)?;
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["labels"]["app"], "solo");
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(
        pod["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.244."))
    );
    assert_eq!(
        pod["spec"]["containers"][0]["ports"][0]["containerPort"],
        9000
    );

    let web: Value = serde_json::from_str(
        &fx.kubectl(&["get", "pods", "-n", "demo", "-l", "app=web", "-o", "json"])?,
    )?;
    assert_eq!(web["kind"], "List");
    assert_eq!(
        web["items"][0]["spec"]["containers"][0]["ports"][0]["name"],
        "http"
    );

    let slices: Value = serde_json::from_str(&fx.kubectl(&[
        "get",
        "endpointslices",
        "-n",
        "demo",
        "-l",
        "kubernetes.io/service-name=echo",
        "-o",
        "json",
    ])?)?;
    let endpoints = slices["items"][0]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(endpoints.len(), 2, "two echo endpoints: {slices}");
    assert_eq!(
        slices["items"][0]["ports"][0]["port"], 9000,
        "targetPort `echo` resolves to 9000"
    );

    let missing_stderr = fx.kubectl_fails(&["get", "pod", "nope", "-n", "demo"])?;
    assert!(missing_stderr.contains("pods \"nope\" not found"));
    Ok(())
}

fn ready_pods(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| ferry_fakecluster::cluster::pod_is_ready(p))
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_is_followed_by_a_ready_replacement() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let before: Value = serde_json::from_str(
        &fx.kubectl(&["get", "pods", "-n", "demo", "-l", "app=echo", "-o", "json"])?,
    )?;
    let before = ready_pods(&before);
    assert_eq!(before.len(), 2);
    let victim = before[0].clone();
    let out = fx.kubectl(&["delete", "pod", &victim, "-n", "demo"])?;
    assert!(out.contains(&format!("pod \"{victim}\" deleted")), "{out}");

    let mut replaced = Vec::new();
    for _ in 0..100 {
        let now: Value = serde_json::from_str(
            &fx.kubectl(&["get", "pods", "-n", "demo", "-l", "app=echo", "-o", "json"])?,
        )?;
        replaced = ready_pods(&now);
        if replaced.len() == 2 && !replaced.contains(&victim) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(replaced.len(), 2, "two ready echo pods again: {replaced:?}");
    assert!(
        !replaced.contains(&victim),
        "the deleted pod is gone: {replaced:?}"
    );
    assert!(replaced.iter().all(|n| n.starts_with("echo-")));

    // A StatefulSet pod comes back under the same name, as a new object.
    let uid_before = fx.kubectl(&[
        "get",
        "pod",
        "db-0",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.uid}",
    ])?;
    fx.kubectl(&["delete", "pod", "db-0", "-n", "demo"])?;
    let cluster = fx.fake.cluster().clone();
    eventually(Duration::from_secs(10), "db-0 to come back ready", || {
        cluster.get(Kind::Pod, "demo", "db-0").is_ok_and(|p| {
            ferry_fakecluster::cluster::pod_is_ready(&p)
                && p["metadata"]["uid"] != uid_before.as_str()
        })
    })
    .await?;
    let deploy = fx.kubectl(&["get", "deploy", "echo", "-n", "demo"])?;
    assert!(deploy.contains("2/2"), "{deploy}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_annotate_and_label_change_pods() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let annotation = format!("{}=refuse", ferry_fakecluster::BEHAVIOR_ANNOTATION);
    fx.kubectl(&[
        "annotate",
        "pod",
        "solo",
        "-n",
        "demo",
        &annotation,
        "--overwrite",
    ])?;
    let backend = |fx: &Fixture| {
        fx.fake
            .cluster()
            .backends()
            .into_iter()
            .find(|b| b.pod == "solo")
            .map(|b| (b.behavior, b.addr))
    };
    let (behavior, addr) = backend(&fx).expect("solo has a backend");
    assert_eq!(behavior, "refuse");
    // The pod's server really refuses now.
    eventually(Duration::from_secs(5), "the listener to close", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await?;

    // Bad input is refused with a clear error and changes nothing.
    let bad_stderr = fx.kubectl_fails(&[
        "annotate",
        "pod",
        "solo",
        "-n",
        "demo",
        "fake.ferry.dev/behavior=teleport",
        "--overwrite",
    ])?;
    assert!(bad_stderr.contains("unknown behaviour `teleport`"));
    assert_eq!(backend(&fx).map(|b| b.0).as_deref(), Some("refuse"));

    // Removing the annotation restores the scenario's behaviour.
    fx.kubectl(&[
        "annotate",
        "pod",
        "solo",
        "-n",
        "demo",
        "fake.ferry.dev/behavior-",
    ])?;
    assert_eq!(
        backend(&fx).map(|b| b.0).as_deref(),
        Some(Behavior::Echo.to_string().as_str())
    );
    eventually(Duration::from_secs(5), "the listener to return", || {
        std::net::TcpStream::connect(addr).is_ok()
    })
    .await?;

    fx.kubectl(&["label", "pod", "solo", "-n", "demo", "tier=backend"])?;
    let selected = fx.kubectl(&[
        "get",
        "pods",
        "-n",
        "demo",
        "-l",
        "tier=backend",
        "-o",
        "name",
    ])?;
    assert_eq!(selected.trim(), "pod/solo");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_with_a_wrong_token_is_unauthorized() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let stderr = fx.kubectl_fails(&["--token", "not-the-token", "get", "pods", "-n", "demo"])?;
    // kubectl's wording for a 401, the same as against a real cluster.
    assert!(
        stderr.contains("You must be logged in to the server"),
        "{stderr}"
    );
    Ok(())
}

/// The versioned kubectl binaries (`kubectl.1.NN`) installed beside the `kubectl` on PATH.
fn versioned_kubectls() -> Vec<std::path::PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let Some(kubectl) = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
    else {
        return Vec::new();
    };
    let Some(dir) = std::fs::canonicalize(&kubectl)
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
    else {
        return Vec::new();
    };
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kubectl.1."))
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_installed_kubectl_version_lists_and_reads_pods() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let mut bins: Vec<String> = versioned_kubectls()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    bins.push("kubectl".into());
    for bin in &bins {
        let out = fx.kubectl_with(bin, &["get", "pods", "-A"])?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{bin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("solo") && stdout.contains("db-0") && stdout.contains("Running"),
            "{bin}: {stdout}"
        );
        let out = fx.kubectl_with(bin, &["get", "pod", "solo", "-n", "demo", "-o", "json"])?;
        assert!(
            out.status.success(),
            "{bin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pod: Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(pod["metadata"]["name"], "solo", "{bin}");
    }
    println!("kubectl binaries checked: {bins:?}");
    Ok(())
}
