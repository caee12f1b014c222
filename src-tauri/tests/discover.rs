//! Forwards the cluster declares, through the app's command layer against the fake
//! cluster's demo scenario (web, web-pod, echo and db-pg in namespace demo): listed with
//! the saved forward that does each, added through `save_forward` as offered, and counted
//! for the Add button's badge.

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ferry_app::app::AppCore;
use ferry_app::discover::{DeclaredNew, DeclaredSource, DiscoverReport};
use ferry_app::error::ErrorCode;
use ferry_core::config::{Forward, PortRef, Target};
use ferry_fakecluster::{FakeCluster, Options};

mod common;

struct Fixture {
    dir: tempfile::TempDir,
    fake: FakeCluster,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCluster::start(Options::default()).await.unwrap();
        fake.wait_pods_ready(Duration::from_secs(5)).await;
        fake.write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Fixture { dir, fake }
    }

    async fn core(&self) -> Arc<AppCore> {
        common::core_in(self.dir.path()).await
    }
}

/// A saved forward in the demo namespace, off (so that no test holds its local port).
async fn save_off(core: &AppCore, name: &str, target: &str, port: u16, local: u16) {
    let mut f = Forward::new(
        name,
        target.parse::<Target>().unwrap(),
        PortRef::Number(port),
        local,
    );
    f.context = Some("ferry-fake".into());
    f.namespace = Some("demo".into());
    f.enabled = false;
    core.save_forward(None, f).await.unwrap();
}

/// (declared name, object, source, name offered, local port offered, have).
fn rows(r: &DiscoverReport) -> Vec<(String, String, DeclaredSource, String, u16, Option<String>)> {
    r.declared
        .iter()
        .map(|d| {
            (
                d.name.clone(),
                d.object.clone(),
                d.source,
                d.forward.name.clone(),
                d.forward.local_port,
                d.have.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_declares_four_forwards_and_one_is_added_as_offered() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    // The demo config's web, and an echo and a local port that clash with what is declared.
    save_off(&core, "web", "service/web", 80, 18081).await;
    save_off(&core, "echo", "service/echo", 80, 18080).await;
    save_off(&core, "mine", "service/db", 5432, 18090).await;

    let r = core
        .discover_forwards(Some("ferry-fake"), Some("demo"), false)
        .await
        .unwrap();
    assert_eq!(r.context, "ferry-fake");
    assert_eq!(r.problems, Vec::<String>::new());
    let s = |x: &str| x.to_string();
    assert_eq!(
        rows(&r),
        vec![
            (
                s("web-pod"),
                s("deployment/web"),
                DeclaredSource::Ferry,
                s("web-pod"),
                18091,
                None
            ),
            (
                s("echo"),
                s("service/echo"),
                DeclaredSource::Kftray,
                s("echo-2"),
                19000,
                None
            ),
            (
                s("web"),
                s("service/web"),
                DeclaredSource::Ferry,
                s("web"),
                18081,
                Some(s("web"))
            ),
            (
                s("db-pg"),
                s("statefulset/db"),
                DeclaredSource::K9s,
                s("db-pg"),
                15432,
                None
            ),
        ]
    );
    let web_pod = &r.declared[0];
    assert_eq!(web_pod.namespace, "demo");
    assert_eq!(
        web_pod.description.as_deref(),
        Some("One web pod, straight")
    );
    assert!(
        web_pod
            .notes
            .contains(&s("local port 18090 is taken by mine; offered with 18091")),
        "{:?}",
        web_pod.notes
    );
    assert!(
        r.declared[1]
            .notes
            .contains(&s("a saved forward is named echo; offered as echo-2"))
    );
    // The shape the window gets: source as the tool's name, the forward as the config has it.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["declared"][1]["source"], "kftray");
    assert_eq!(json["declared"][1]["forward"]["pod_port"], true);
    assert_eq!(json["declared"][2]["have"], "web");

    // Added as offered, through the path the Add dialog uses; then it is had.
    let mut echo = r.declared[1].forward.clone();
    echo.enabled = false;
    core.save_forward(None, echo).await.unwrap();
    let saved = core.config();
    let echo2 = saved.forwards.iter().find(|f| f.name == "echo-2").unwrap();
    assert_eq!(
        (echo2.port.clone(), echo2.pod_port),
        (PortRef::Number(9000), true)
    );
    let again = core
        .discover_forwards(Some("ferry-fake"), Some("demo"), false)
        .await
        .unwrap();
    assert_eq!(again.declared[1].have.as_deref(), Some("echo-2"));
    assert_eq!(again.declared[1].forward.name, "echo");

    // The same offer again is refused as any taken name is, on its field.
    let e = core
        .save_forward(None, r.declared[1].forward.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Conflict, Some("name"))
    );

    // Every namespace; the context's own (default declares nothing); a bad request.
    let all = core.discover_forwards(None, None, true).await.unwrap();
    assert_eq!(all.declared.len(), 4);
    let own = core.discover_forwards(None, None, false).await.unwrap();
    assert_eq!(
        (own.context.as_str(), own.declared.len()),
        ("ferry-fake", 0)
    );
    let e = core
        .discover_forwards(None, Some("demo"), true)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("namespace"))
    );
    let e = core
        .discover_forwards(Some("nowhere"), Some("demo"), false)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Cluster);
    core.shutdown().await;
}

/// Waits until the state's count of new declared forwards is `want`.
async fn wait_declared(core: &AppCore, want: &[DeclaredNew]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = core.state().await.declared;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "declared stayed {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_badge_counts_what_the_forwarded_namespaces_declare_that_the_user_lacks() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    save_off(&core, "web", "service/web", 80, 18081).await;
    core.watch_declared();
    let demo = |count| {
        vec![DeclaredNew {
            context: "ferry-fake".into(),
            namespace: "demo".into(),
            count,
        }]
    };
    wait_declared(&core, &demo(3)).await;
    let requests = || -> u64 { fx.fake.requests().agents().iter().map(|a| a.api).sum() };
    let asked = requests();

    // Adding one is counted against what is known, without asking the cluster again.
    let mut db = Forward::new(
        "db-pg",
        "statefulset/db".parse::<Target>().unwrap(),
        PortRef::Name("pg".into()),
        15432,
    );
    db.context = Some("ferry-fake".into());
    db.namespace = Some("demo".into());
    db.enabled = false;
    core.save_forward(None, db).await.unwrap();
    wait_declared(&core, &demo(2)).await;
    assert_eq!(requests(), asked);

    // Forwards only in a namespace that declares nothing: no badge.
    for name in ["web", "db-pg"] {
        core.delete_forward(name).await.unwrap();
    }
    let mut quiet = Forward::new(
        "api",
        "service/kubernetes".parse::<Target>().unwrap(),
        PortRef::Number(443),
        0,
    );
    quiet.context = Some("ferry-fake".into());
    quiet.namespace = Some("default".into());
    quiet.enabled = false;
    core.save_forward(None, quiet).await.unwrap();
    wait_declared(&core, &[]).await;
    core.shutdown().await;
}
