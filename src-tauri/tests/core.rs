//! The app's command layer against the fake cluster: what each command does to the
//! store and to the running forwards, and what it refuses.

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_app::app::{AppCore, AppOptions, ExportFormat, ImportFormat, RenameReason};
use ferry_app::error::ErrorCode;
use ferry_app::prefs::{GroupBy, Prefs, SortKey, StateFilter, Theme, View, WindowGeometry};
use ferry_app::settings::Settings;
use ferry_core::cluster::KubeconfigSource;
use ferry_core::config::{Config, Forward, PortRef, Profile, Target};
use ferry_core::events::ForwardState;
use ferry_core::store::Store;
use ferry_fakecluster::{FakeCluster, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Fixture {
    _dir: tempfile::TempDir,
    store: PathBuf,
    data: PathBuf,
    config_dir: PathBuf,
    kubeconfig: PathBuf,
    _fake: FakeCluster,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCluster::start(Options::default()).await.unwrap();
        fake.wait_pods_ready(Duration::from_secs(5)).await;
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig).unwrap();
        Fixture {
            store: dir.path().join("store.json"),
            data: dir.path().join("data"),
            config_dir: dir.path().join("config"),
            kubeconfig,
            _dir: dir,
            _fake: fake,
        }
    }

    fn options(&self) -> AppOptions {
        AppOptions {
            store: Some(self.store.clone()),
            data_dir: self.data.clone(),
            config_dir: self.config_dir.clone(),
            demo: false,
            kubeconfig: Some(KubeconfigSource::from_paths(vec![self.kubeconfig.clone()])),
        }
    }

    async fn core(&self) -> Arc<AppCore> {
        AppCore::start(self.options()).await.unwrap()
    }
}

fn forward(name: &str, target: &str, port: u16) -> Forward {
    let mut f = Forward::new(
        name,
        target.parse::<Target>().unwrap(),
        PortRef::Number(port),
        0,
    );
    f.namespace = Some("demo".into());
    f
}

async fn wait_state(
    core: &AppCore,
    name: &str,
    want: ForwardState,
) -> ferry_core::events::ForwardStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let snap = core.snapshot().await;
        if let Some(s) = snap.get(name)
            && s.state == want
        {
            return s.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached {want}: {:?}",
            snap.get(name)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn echo(addr: std::net::SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(data).await.unwrap();
    let mut out = vec![0; data.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

fn stored(path: &Path) -> Config {
    Store::new(path).load().unwrap().config
}

/// Saves a switched-off forward to `svc/echo:80` for each name.
async fn save_off(core: &AppCore, names: &[&str]) {
    for name in names {
        let mut f = forward(name, "svc/echo", 80);
        f.enabled = false;
        core.save_forward(None, f).await.unwrap();
    }
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_forward_runs_carries_bytes_and_is_saved() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    core.save_forward(None, forward("echo", "svc/echo", 80))
        .await
        .unwrap();
    let status = wait_state(&core, "echo", ForwardState::Active).await;
    let local = status.local.unwrap();
    assert_eq!(echo(local, b"through the app").await, b"through the app");
    assert_eq!(stored(&fx.store).forwards[0].name, "echo");
    // Saved without a context, it names the current one: `kubectl config use-context`
    // cannot move it to another cluster.
    assert_eq!(
        stored(&fx.store).forwards[0].context.as_deref(),
        Some("ferry-fake")
    );

    // Switching it off frees the port.
    core.set_enabled("echo", false).await.unwrap();
    wait_state(&core, "echo", ForwardState::Disabled).await;
    assert!(
        TcpStream::connect(local).await.is_err(),
        "{local} still accepts"
    );
    assert!(!stored(&fx.store).forwards[0].enabled);

    // Test connection and the kubectl command.
    core.set_enabled("echo", true).await.unwrap();
    wait_state(&core, "echo", ForwardState::Active).await;
    let test = core.test_connection("echo").await.unwrap();
    assert!(test.ok, "{}", test.message);
    assert!(test.message.contains("echo-"), "{}", test.message);
    assert_eq!(
        core.kubectl_command("echo").await.unwrap(),
        "kubectl port-forward --context ferry-fake -n demo svc/echo :80"
    );
    let log: Vec<String> = core
        .forward_log("echo")
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert!(log.iter().any(|l| l.starts_with("state active")), "{log:?}");
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_saves_name_the_field_and_change_nothing() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    let mut a = forward("a", "svc/echo", 80);
    a.local_port = 24001;
    core.save_forward(None, a.clone()).await.unwrap();
    let before = std::fs::read(&fx.store).unwrap();

    let e = core
        .save_forward(None, forward("a", "svc/web", 80))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Conflict, Some("name")),
        "{e:?}"
    );

    let mut b = forward("b", "svc/web", 80);
    b.local_port = 24001;
    let e = core.save_forward(None, b.clone()).await.unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Conflict, Some("local_port")),
        "{e:?}"
    );
    assert!(e.message.contains("\"a\""), "{}", e.message);
    assert!(!e.message.contains("forwards["), "{}", e.message);

    let bad = forward("Bad Name", "svc/web", 80);
    let e = core.save_forward(None, bad.clone()).await.unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("name")),
        "{e:?}"
    );
    let problems = core.validate_forward(None, &bad);
    assert_eq!(problems[0].field, "name");

    let e = core
        .save_forward(Some("nope"), forward("c", "svc/web", 80))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(
        std::fs::read(&fx.store).unwrap(),
        before,
        "a rejected save wrote"
    );

    // The same checks pass for a valid edit of `a` itself (its own port is no clash).
    assert!(core.validate_forward(Some("a"), &a).is_empty());
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_rename_activate_and_delete() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    for name in ["one", "two"] {
        let mut f = forward(name, "svc/echo", 80);
        f.enabled = false;
        core.save_forward(None, f).await.unwrap();
    }
    core.save_profile(
        None,
        Profile {
            name: "work".into(),
            forwards: vec!["one".into(), "two".into()],
        },
    )
    .await
    .unwrap();
    let e = core
        .save_profile(
            None,
            Profile {
                name: "work".into(),
                forwards: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("name"));
    let e = core
        .save_profile(
            None,
            Profile {
                name: "x".into(),
                forwards: vec!["ghost".into()],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("forwards[0]"));
    let e = core
        .save_profile(
            None,
            Profile {
                name: "Bad Name".into(),
                forwards: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("name")),
        "{e:?}"
    );

    core.set_profile_active("work", true).await.unwrap();
    wait_state(&core, "one", ForwardState::Active).await;
    wait_state(&core, "two", ForwardState::Active).await;

    // Renaming a forward renames it in its profiles.
    let mut renamed = stored(&fx.store).forwards[0].clone();
    renamed.name = "uno".into();
    core.save_forward(Some("one"), renamed).await.unwrap();
    let config = stored(&fx.store);
    assert_eq!(config.profiles[0].forwards, ["uno", "two"]);

    core.set_profile_active("work", false).await.unwrap();
    wait_state(&core, "two", ForwardState::Disabled).await;
    core.delete_forward("two").await.unwrap();
    assert_eq!(stored(&fx.store).profiles[0].forwards, ["uno"]);
    core.delete_profile("work").await.unwrap();
    assert!(stored(&fx.store).profiles.is_empty());
    assert_eq!(stored(&fx.store).forwards.len(), 1, "forwards stay");
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_add_dialog_hears_what_the_user_may_not_do() {
    use ferry_fakecluster::{PolicyRule, User};
    // `dev` reads everything (`get` on `*` covers pods/portforward too, as in RBAC) but
    // may create port-forwards only in `demo`.
    let dev = User::new("dev", "dev-token")
        .rule(PolicyRule::new(["get", "list", "watch"], ["*"]))
        .rule(PolicyRule::new(["create", "get"], ["pods/portforward"]).namespaces(["demo"]));
    let fake = FakeCluster::start(Options::default().user(dev))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig_for_user("dev", &kubeconfig).unwrap();
    let core = AppCore::start(AppOptions {
        store: Some(dir.path().join("store.json")),
        data_dir: dir.path().join("data"),
        config_dir: dir.path().join("config"),
        demo: false,
        kubeconfig: Some(KubeconfigSource::from_paths(vec![kubeconfig])),
    })
    .await
    .unwrap();
    let ok = core
        .check_access(None, Some("demo"), "service")
        .await
        .unwrap();
    assert_eq!(ok, None);
    let denied = core
        .check_access(None, Some("kube-system"), "deployment")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        denied.starts_with(
            "user `dev` cannot create pods/portforward in namespace `kube-system`; since Kubernetes 1.35"
        ),
        "{denied}"
    );
    let e = core
        .check_access(None, Some("demo"), "cronjob")
        .await
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("kind"));
    core.shutdown().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickers_list_the_cluster() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    let contexts = core.list_contexts().await.unwrap();
    assert_eq!(contexts.contexts, ["ferry-fake"]);
    assert_eq!(contexts.current.as_deref(), Some("ferry-fake"));
    let ns = core.list_namespaces(None).await.unwrap();
    assert!(ns.contains(&"demo".to_string()), "{ns:?}");
    let services = core
        .list_targets(None, Some("demo"), "service")
        .await
        .unwrap();
    let echo = services.iter().find(|s| s.name == "echo").unwrap();
    assert_eq!(echo.ports[0].port, 80);
    let sts = core
        .list_targets(None, Some("demo"), "statefulset")
        .await
        .unwrap();
    let db = sts.iter().find(|s| s.name == "db").unwrap();
    assert!(
        db.ports.iter().any(|p| p.name.as_deref() == Some("pg")),
        "{db:?}"
    );
    let e = core
        .list_targets(None, Some("demo"), "cronjob")
        .await
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("kind"));
    let e = core.list_namespaces(Some("nowhere")).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Cluster);
    assert!(e.message.contains("nowhere"), "{}", e.message);
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_add_and_import() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    let f = core.parse_kubectl("svc/echo 18080:80 -n demo").unwrap();
    assert_eq!(
        (f.target.to_string().as_str(), f.local_port),
        ("service/echo", 18080)
    );
    assert_eq!(f.namespace.as_deref(), Some("demo"));
    let f = core
        .parse_kubectl("kubectl port-forward --context ferry-fake -n demo deploy/web 8080:http")
        .unwrap();
    assert_eq!(f.context.as_deref(), Some("ferry-fake"));
    assert_eq!(f.port, PortRef::Name("http".into()));
    let e = core.parse_kubectl("svc/echo").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("line"));

    let text =
        "kubectl port-forward -n demo svc/echo 0:80\nkubectl port-forward -n demo svc/web 0:80\n";
    let report = core
        .import_config(text, ImportFormat::Auto, true)
        .await
        .unwrap();
    assert_eq!(report.added.len(), 2);
    assert!(stored(&fx.store).forwards.is_empty(), "a dry run wrote");
    let report = core
        .import_config(text, ImportFormat::Kubectl, false)
        .await
        .unwrap();
    assert_eq!(stored(&fx.store).forwards.len(), 2);
    // Importing again renames and says so.
    let again = core
        .import_config(text, ImportFormat::Auto, false)
        .await
        .unwrap();
    assert_ne!(again.added, report.added);
    // Each entry says the name it asked for and why it has another.
    let renamed: Vec<_> = again
        .entries
        .iter()
        .map(|e| (e.forward.name.as_str(), e.wanted.as_str(), e.renamed))
        .collect();
    assert_eq!(
        renamed,
        [
            ("echo-2", "echo", Some(RenameReason::Config)),
            ("web-2", "web", Some(RenameReason::Config))
        ],
        "{again:?}"
    );
    let e = core
        .import_config("{\"bad", ImportFormat::Kftray, false)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Invalid);
    assert_eq!(stored(&fx.store).forwards.len(), 4);
    core.shutdown().await;
}

#[test]
fn a_forward_the_config_cannot_hold_is_a_problem_on_its_field() {
    let read = |v: serde_json::Value| ferry_app::app::read_forward(v).unwrap_err();
    let e = read(
        serde_json::json!({"name": "x", "target": "service/echo", "port": 80, "local_port": 70000}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("local_port"))
    );
    assert!(e.message.contains("70000"), "{}", e.message);
    let e = read(
        serde_json::json!({"name": "x", "target": "service/echo", "port": 80, "local_port": 1, "health": {"interval": "often"}}),
    );
    assert_eq!(e.field.as_deref(), Some("health.interval"));
    let e = read(
        serde_json::json!({"name": "x", "target": "service/echo", "port": 80, "local_port": 1, "bind": "localhost"}),
    );
    assert_eq!(e.field.as_deref(), Some("bind"));
    let ok = ferry_app::app::read_forward(
        serde_json::json!({"name": "x", "target": "service/echo", "port": 80, "local_port": 1}),
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_import_back() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    core.save_forward(None, forward("echo", "svc/echo", 80))
        .await
        .unwrap();
    core.save_forward(None, forward("db", "sts/db", 5432))
        .await
        .unwrap();
    let ferry = core.export_config(ExportFormat::Ferry).unwrap();
    assert!(ferry.notes.is_empty(), "{:?}", ferry.notes);
    assert_eq!(Config::from_yaml(&ferry.text).unwrap(), stored(&fx.store));
    let kftray = core.export_config(ExportFormat::Kftray).unwrap();
    assert!(
        kftray.text.contains("\"service\": \"echo\""),
        "{}",
        kftray.text
    );
    assert!(
        kftray
            .notes
            .iter()
            .any(|n| n.contains("db: statefulset/db has no kftray equivalent")),
        "{:?}",
        kftray.notes
    );
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_forwards_without_a_context_are_pinned_once_on_first_load() {
    let fx = Fixture::new().await;
    let mut pinned = forward("echo", "svc/echo", 80);
    pinned.context = None;
    let mut named = forward("db", "sts/db", 5432);
    named.context = Some("elsewhere".into());
    named.enabled = false;
    Store::new(&fx.store)
        .modify(|doc| {
            doc.config.forwards = vec![pinned, named];
            Ok::<_, ferry_core::store::StoreError>(())
        })
        .unwrap();
    let core = fx.core().await;
    let saved = stored(&fx.store);
    assert_eq!(saved.forwards[0].context.as_deref(), Some("ferry-fake"));
    assert_eq!(saved.forwards[1].context.as_deref(), Some("elsewhere"));
    let banner = core.state().await.banner.unwrap_or_default();
    assert!(
        banner.contains("echo") && banner.contains("`ferry-fake`") && !banner.contains("db"),
        "{banner}"
    );
    core.shutdown().await;
    // Once: the next start has nothing to say.
    let again = fx.core().await;
    assert_eq!(again.state().await.banner, None);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kftray_export_imports_into_forwards_that_echo() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    // What the Import dialog sends: kftray's JSON, whose remote_port is the pods' port
    // (echo: service port 80 → target port `echo` = 9000).
    let text = r#"[{"workload_type":"service","service":"echo","namespace":"demo","remote_port":9000,"local_port":0,"protocol":"tcp","alias":"echo"},
                   {"workload_type":"service","service":"echo","namespace":"demo","remote_port":7777,"local_port":0,"protocol":"tcp","alias":"other"}]"#;
    let preview = core
        .import_config(text, ImportFormat::Auto, true)
        .await
        .unwrap();
    assert!(
        preview.entries[0].forward.name == "echo"
            && preview.entries[0]
                .notes
                .iter()
                .any(|n| n.contains("imported as port 80")),
        "{preview:?}"
    );
    assert!(stored(&fx.store).forwards.is_empty(), "a preview wrote");
    let report = core
        .import_config(text, ImportFormat::Auto, false)
        .await
        .unwrap();
    assert_eq!(report.added, ["echo", "other"]);
    let saved = stored(&fx.store);
    let echo_fwd = saved.forwards.iter().find(|f| f.name == "echo").unwrap();
    assert_eq!(
        (&echo_fwd.port, echo_fwd.pod_port),
        (&PortRef::Number(80), false)
    );
    let other = saved.forwards.iter().find(|f| f.name == "other").unwrap();
    assert_eq!(
        (&other.port, other.pod_port),
        (&PortRef::Number(7777), true)
    );
    let status = wait_state(&core, "echo", ForwardState::Active).await;
    let addr = status.local.unwrap();
    assert_eq!(echo(addr, b"imported").await, b"imported");
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_store_is_kept_and_reported_then_the_app_starts_empty() {
    let fx = Fixture::new().await;
    std::fs::write(&fx.store, "{\"version\": 1, \"config\": {\"forwards\": [").unwrap();
    let core = fx.core().await;
    let state = core.state().await;
    assert!(state.config.forwards.is_empty());
    let banner = state.banner.expect("a banner");
    let backup = banner
        .split_whitespace()
        .find(|w| w.contains(".corrupt-"))
        .map(|w| w.trim_end_matches([',', '.']).to_string())
        .expect("the banner names the backup");
    assert!(
        std::fs::read_to_string(&backup)
            .unwrap()
            .starts_with("{\"version\": 1"),
        "{banner}"
    );
    // The next save writes a fresh store and the backup stays.
    core.save_forward(None, forward("echo", "svc/echo", 80))
        .await
        .unwrap();
    assert_eq!(stored(&fx.store).forwards.len(), 1);
    assert!(Path::new(&backup).exists());
    core.dismiss_banner();
    assert!(core.state().await.banner.is_none());
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_persist_and_bad_ones_change_nothing() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    let settings = Settings {
        notifications: false,
        ..Settings::default()
    };
    core.save_settings(settings.clone()).await.unwrap();
    let bad = Settings {
        kubeconfig_paths: vec!["relative/config".into()],
        ..settings.clone()
    };
    let e = core.save_settings(bad).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("kubeconfig_paths[0]"));
    core.shutdown().await;
    drop(core);
    let core = fx.core().await;
    assert_eq!(core.settings(), settings);
    core.shutdown().await;
}

fn prefs_file(fx: &Fixture) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fx.config_dir.join("prefs.json")).unwrap())
        .unwrap()
}

/// The store file as JSON (null when there is none yet).
fn raw_store(fx: &Fixture) -> serde_json::Value {
    match std::fs::read_to_string(&fx.store) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(_) => serde_json::Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefs_and_the_window_are_kept_across_a_restart_apart_from_the_store() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    assert_eq!(core.state().await.prefs, Prefs::default());
    let prefs = Prefs {
        theme: Theme::Dark,
        group_by: GroupBy::Context,
        view: View {
            sort: SortKey::Port,
            state: StateFilter::Problems,
            favourites_only: true,
        },
        check_updates: false,
    };
    core.save_prefs(prefs).await.unwrap();
    assert_eq!(core.state().await.prefs, prefs);
    // A drag: many moves, saved once the window has been still for a moment.
    let at = |x: f64| WindowGeometry {
        x,
        y: 40.0,
        width: 900.0,
        height: 600.0,
        maximized: false,
    };
    for x in 0..20 {
        core.window_moved(at(f64::from(x)));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while prefs_file(&fx).get("window").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the window was never saved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(prefs_file(&fx)["window"]["x"], 19.0);
    // Maximized at the end: the size from before is kept for un-maximizing.
    core.window_moved(WindowGeometry {
        x: 0.0,
        y: 0.0,
        width: 1920.0,
        height: 1000.0,
        maximized: true,
    });
    core.shutdown().await;
    drop(core);
    // The store the CLI shares holds none of it.
    let store = raw_store(&fx);
    let settings = store.get("settings").cloned().unwrap_or_default();
    assert!(
        settings.get("theme").is_none() && settings.get("group_by").is_none(),
        "{store}"
    );

    let core = fx.core().await;
    assert_eq!(core.state().await.prefs, prefs);
    assert_eq!(
        core.window(),
        Some(WindowGeometry {
            maximized: true,
            ..at(19.0)
        })
    );
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_stores_theme_and_grouping_are_taken_over_once() {
    let fx = Fixture::new().await;
    // What an older build wrote: the theme and grouping among the settings.
    let old = serde_json::json!({
        "version": 1,
        "config": {"version": 1, "forwards": []},
        "settings": {"theme": "dark", "group_by": "context", "notifications": false, "close_to_tray": true}
    });
    std::fs::write(&fx.store, old.to_string()).unwrap();
    let core = fx.core().await;
    let state = core.state().await;
    assert_eq!(
        (state.prefs.theme, state.prefs.group_by),
        (Theme::Dark, GroupBy::Context)
    );
    assert!(!state.settings.notifications, "the other settings stay");
    assert!(state.banner.is_none(), "{:?}", state.banner);
    assert_eq!(prefs_file(&fx)["theme"], "dark");
    // The store keeps only what the CLI and the app share.
    let settings = raw_store(&fx)["settings"].clone();
    assert!(settings.get("theme").is_none(), "{settings}");
    assert_eq!(settings["notifications"], false);
    core.save_prefs(Prefs {
        theme: Theme::Light,
        ..core.prefs()
    })
    .await
    .unwrap();
    core.shutdown().await;
    drop(core);

    // Once: an older build writing its theme into the store again changes nothing here.
    Store::new(&fx.store)
        .modify(|doc| {
            doc.settings["theme"] = "dark".into();
            Ok::<_, ferry_core::store::StoreError>(())
        })
        .unwrap();
    let core = fx.core().await;
    assert_eq!(core.prefs().theme, Theme::Light);
    assert_eq!(core.prefs().group_by, GroupBy::Context);
    assert!(!core.settings().notifications);
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_follows_a_rename_and_goes_with_a_delete() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    save_off(&core, &["a", "b", "c"]).await;
    core.set_favourite("c", true).await.unwrap();
    core.set_favourite("a", true).await.unwrap();
    core.set_favourite("b", true).await.unwrap();
    core.set_favourite("b", false).await.unwrap();
    assert_eq!(core.state().await.favourites, ["c", "a"]);
    assert!(stored(&fx.store).forwards.len() == 3);
    assert!(
        !std::fs::read_to_string(&fx.store)
            .unwrap()
            .contains("favourites"),
        "stars are the app's, not the shared store's"
    );

    // Renamed through the app: the star follows.
    let mut z = stored(&fx.store).forwards[0].clone();
    z.name = "z".into();
    core.save_forward(Some("a"), z).await.unwrap();
    assert_eq!(core.favourites(), ["c", "z"]);
    core.shutdown().await;
    drop(core);
    let core = fx.core().await;
    assert_eq!(core.favourites(), ["c", "z"]);

    // Deleted through the app: the star goes.
    core.delete_forward("z").await.unwrap();
    assert_eq!(core.favourites(), ["c"]);
    assert_eq!(prefs_file(&fx)["favourites"], serde_json::json!(["c"]));
    // Deleted by another program (the CLI): the star goes when the app sees it.
    Store::new(&fx.store)
        .modify(|doc| {
            doc.config.forwards.retain(|f| f.name != "c");
            Ok::<_, ferry_core::store::StoreError>(())
        })
        .unwrap();
    assert!(core.reload_store().await.unwrap());
    assert!(core.state().await.favourites.is_empty());
    assert_eq!(prefs_file(&fx)["favourites"], serde_json::json!([]));
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prefs_and_stars_name_their_field_and_change_nothing() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    let mut f = forward("echo", "svc/echo", 80);
    f.enabled = false;
    core.save_forward(None, f).await.unwrap();
    core.set_favourite("echo", true).await.unwrap();
    let before = std::fs::read(fx.config_dir.join("prefs.json")).unwrap();

    for (value, field) in [
        (serde_json::json!({"theme": "purple"}), "theme"),
        (serde_json::json!({"group_by": 3}), "group_by"),
        (serde_json::json!({"view": {"sort": "size"}}), "view.sort"),
        (
            serde_json::json!({"view": {"state": "asleep"}}),
            "view.state",
        ),
        (serde_json::json!({"colour": "red"}), "colour"),
    ] {
        let e = ferry_app::commands::call_core(
            &core,
            "save_prefs",
            serde_json::json!({ "prefs": value }),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::Invalid, Some(field)),
            "{e:?}"
        );
    }
    let e = core.set_favourite("ghost", true).await.unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::NotFound, Some("name")),
        "{e:?}"
    );
    assert_eq!(
        std::fs::read(fx.config_dir.join("prefs.json")).unwrap(),
        before,
        "a refused change wrote"
    );
    assert_eq!(core.prefs(), Prefs::default());
    assert_eq!(core.favourites(), ["echo"]);
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_banner_stays_closed_and_unreadable_prefs_say_so() {
    let fx = Fixture::new().await;
    // Settings an older hand wrote wrong: the banner says so, every start.
    std::fs::write(
        &fx.store,
        r#"{"version": 1, "config": {"version": 1, "forwards": []}, "settings": {"notifications": "loud"}}"#,
    )
    .unwrap();
    let core = fx.core().await;
    let banner = core.state().await.banner.expect("a banner");
    assert!(banner.contains("settings"), "{banner}");
    core.dismiss_banner();
    assert!(core.state().await.banner.is_none());
    core.shutdown().await;
    drop(core);
    let core = fx.core().await;
    assert!(core.state().await.banner.is_none(), "closed for good");
    core.shutdown().await;
    drop(core);

    // A preferences file with a key that cannot be read: the others are kept, and the
    // banner names the file.
    std::fs::write(
        &fx.store,
        r#"{"version": 1, "config": {"version": 1, "forwards": []}}"#,
    )
    .unwrap();
    std::fs::write(
        fx.config_dir.join("prefs.json"),
        r#"{"theme": "purple", "group_by": "context"}"#,
    )
    .unwrap();
    let core = fx.core().await;
    assert_eq!(core.prefs().group_by, GroupBy::Context);
    let banner = core.state().await.banner.expect("a banner");
    assert!(
        banner.contains("prefs.json") && banner.contains("theme"),
        "{banner}"
    );
    // Saving them makes the file whole again.
    core.save_prefs(core.prefs()).await.unwrap();
    assert!(core.state().await.banner.is_none());
    assert_eq!(prefs_file(&fx)["theme"], "system");
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_writes_to_the_store_reach_the_running_app_and_nothing_is_lost() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    // Another program (the CLI) and the app write at the same time.
    let path = fx.store.clone();
    let cli = std::thread::spawn(move || {
        let store = Store::new(&path);
        for i in 0..20 {
            store
                .modify(|doc| {
                    doc.config
                        .forwards
                        .push(forward(&format!("cli-{i}"), "svc/echo", 80));
                    Ok::<_, ferry_core::store::StoreError>(())
                })
                .unwrap();
        }
    });
    for i in 0..20 {
        core.save_forward(None, forward(&format!("app-{i}"), "svc/echo", 80))
            .await
            .unwrap();
    }
    cli.join().unwrap();
    assert!(core.reload_store().await.unwrap() || core.config().forwards.len() == 40);
    let config = stored(&fx.store);
    assert_eq!(
        config.forwards.len(),
        40,
        "{:?}",
        config.forwards.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    config.validate().unwrap();
    // The app runs what the CLI added.
    wait_state(&core, "cli-19", ForwardState::Active).await;
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_adds_the_demo_forwards_and_they_work() {
    let dir = tempfile::tempdir().unwrap();
    let options = AppOptions {
        store: Some(dir.path().join("store.json")),
        data_dir: dir.path().join("data"),
        config_dir: dir.path().join("config"),
        demo: true,
        kubeconfig: Some(KubeconfigSource::from_paths(vec![])),
    };
    let core = AppCore::start(options.clone()).await.unwrap();
    let state = core.state().await;
    assert!(state.demo && state.kubeconfig.found);
    let names: Vec<&str> = state
        .config
        .forwards
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["echo", "web", "db"]);
    assert_eq!(state.config.profiles[0].name, "demo");
    let echo_status = wait_state(&core, "echo", ForwardState::Active).await;
    assert_eq!(echo(echo_status.local.unwrap(), b"demo").await, b"demo");
    core.shutdown().await;
    drop(core);
    // Started again without --demo: the saved forwards use the demo cluster, so it starts.
    let core = AppCore::start(AppOptions {
        demo: false,
        ..options
    })
    .await
    .unwrap();
    assert!(core.demo_running());
    assert_eq!(
        core.config().forwards.len(),
        3,
        "the demo forwards are not added twice"
    );
    wait_state(&core, "web", ForwardState::Active).await;
    core.shutdown().await;
}

// === one engine, one path from the store ===

/// Two commands at once, and the store re-read, 200 times, while another program writes
/// the store as fast as it can: whatever order the writes and the hand-overs to the engine
/// take, the engine ends on what the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commands_and_cli_writes_leave_the_engine_on_the_store() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    save_off(&core, &["a", "b", "c"]).await;
    let path = fx.store.clone();
    let cli = std::thread::spawn(move || {
        let store = Store::new(&path);
        for i in 0..200u16 {
            store
                .modify(|doc| {
                    let c = doc.config.forwards.iter_mut().find(|f| f.name == "c");
                    c.unwrap().local_port = 30000 + i;
                    Ok::<_, ferry_core::store::StoreError>(())
                })
                .unwrap();
        }
    });
    for round in 0..200u16 {
        let mut b = forward("b", "svc/echo", 80);
        b.enabled = false;
        b.local_port = 20000 + round;
        let (toggled, saved, reloaded) = tokio::join!(
            core.set_enabled("a", round % 2 == 0),
            core.save_forward(Some("b"), b),
            core.reload_store(),
        );
        toggled.unwrap();
        saved.unwrap();
        reloaded.unwrap();
    }
    cli.join().unwrap();
    // The last write by the other program is seen as the store watcher would see it.
    core.reload_store().await.unwrap();
    let running = core.running_config().await.unwrap();
    let store = stored(&fx.store);
    assert_eq!(
        *running, store,
        "the engine runs another config than the store holds"
    );
    assert_eq!(core.config(), store);
    core.shutdown().await;
}

/// Reads back what was written on `conn`.
async fn round_trip(conn: &mut TcpStream, data: &[u8]) {
    conn.write_all(data).await.unwrap();
    let mut out = vec![0; data.len()];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut out))
        .await
        .expect("no answer within 10 s")
        .expect("the connection broke");
    assert_eq!(out, data);
}

/// More kubeconfig files in the settings, then the demo cluster: the engine takes both
/// while it runs. An open connection keeps carrying bytes, the listener and the health
/// history stay, and the new files' contexts are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_changes_and_the_demo_keep_connections_and_health() {
    let fx = Fixture::new().await;
    let second = FakeCluster::start(Options::default().context_name("second"))
        .await
        .unwrap();
    let second_kubeconfig = fx.store.with_file_name("second-kubeconfig");
    second.write_kubeconfig(&second_kubeconfig).unwrap();
    let core = fx.core().await;
    core.save_forward(None, forward("echo", "svc/echo", 80))
        .await
        .unwrap();
    let local = wait_state(&core, "echo", ForwardState::Active)
        .await
        .local
        .unwrap();
    let mut conn = TcpStream::connect(local).await.unwrap();
    round_trip(&mut conn, b"before").await;
    // Its first check has been recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let before = loop {
        let s = core.snapshot().await.get("echo").cloned().unwrap();
        if !s.history.is_empty() {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never checked: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let settings = Settings {
        kubeconfig_paths: vec![second_kubeconfig],
        ..core.settings()
    };
    core.save_settings(settings).await.unwrap();
    round_trip(&mut conn, b"after the settings").await;
    let contexts = core.list_contexts().await.unwrap().contexts;
    assert!(contexts.iter().any(|c| c == "second"), "{contexts:?}");

    // Two clicks at once start one demo cluster.
    let (first, second) = tokio::join!(core.start_demo(), core.start_demo());
    first.unwrap();
    second.unwrap();
    assert!(core.demo_running());
    assert_eq!(
        core.config()
            .forwards
            .iter()
            .filter(|f| f.name == "web")
            .count(),
        1,
        "the demo forwards are added once"
    );
    round_trip(&mut conn, b"after the demo").await;

    let after = core.snapshot().await.get("echo").cloned().unwrap();
    assert_eq!(after.state, ForwardState::Active);
    assert_eq!(after.local, Some(local), "the listener stayed");
    assert_eq!(
        after.connections, 1,
        "the connection is still open: {after:?}"
    );
    assert_eq!(
        after.history[..before.history.len()],
        before.history[..],
        "the health history is kept"
    );
    // A new connection works too, through the same listener.
    assert_eq!(echo(local, b"new").await, b"new");
    core.shutdown().await;
}

/// A TCP relay to the fake API server that can stop carrying bytes, as a network that
/// drops packets does: connections stay open and nothing gets through.
struct Relay {
    addr: std::net::SocketAddr,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = frozen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let f = f.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, f.clone()), pipe(sr, cw, f));
                });
            }
        });
        Relay { addr, frozen, task }
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies until EOF; while frozen, holds what it read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// "Test connection" on a forward whose API server stopped answering waits for its dial;
/// meanwhile every other command answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_test_connection_holds_up_no_other_command() {
    let fx = Fixture::new().await;
    let relay = Relay::to(fx._fake.addr()).await;
    let yaml = fx
        ._fake
        .kubeconfig_yaml()
        .replace(fx._fake.url(), &format!("https://{}", relay.addr));
    assert_ne!(
        yaml,
        fx._fake.kubeconfig_yaml(),
        "the kubeconfig names the relay"
    );
    std::fs::write(&fx.kubeconfig, yaml).unwrap();
    let core = fx.core().await;
    // No health checks: nothing opens a session to the pod before the test's dial, which
    // then needs an upgrade through the relay.
    let mut slow = forward("slow", "svc/echo", 80);
    slow.health.kind = ferry_core::config::ProbeKind::None;
    core.save_forward(None, slow).await.unwrap();
    let mut other = forward("other", "svc/echo", 80);
    other.enabled = false;
    core.save_forward(None, other).await.unwrap();
    wait_state(&core, "slow", ForwardState::Active).await;

    relay.freeze(true);
    let test = tokio::spawn({
        let core = core.clone();
        async move { core.test_connection("slow").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!test.is_finished(), "the dial is under way");
    let started = std::time::Instant::now();
    core.set_enabled("other", true).await.unwrap();
    let state = core.state().await;
    let took = started.elapsed();
    println!("switching a forward on and reading the state took {took:?} during the dial");
    assert!(
        took < Duration::from_secs(1),
        "another command waited for the dial: {took:?}"
    );
    assert!(
        state
            .config
            .forwards
            .iter()
            .any(|f| f.name == "other" && f.enabled)
    );
    assert!(!test.is_finished(), "the dial is still under way");
    relay.freeze(false);
    let result = tokio::time::timeout(Duration::from_secs(15), test)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    println!("test connection: {result:?}");
    core.shutdown().await;
}

/// After shutdown nothing starts the engine again: not a command, not a write by another
/// program and the re-read that follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_nothing_starts_the_engine_again() {
    let fx = Fixture::new().await;
    let core = fx.core().await;
    core.save_forward(None, forward("echo", "svc/echo", 80))
        .await
        .unwrap();
    let local = wait_state(&core, "echo", ForwardState::Active)
        .await
        .local
        .unwrap();
    core.shutdown().await;
    assert!(
        TcpStream::connect(local).await.is_err(),
        "echo's port closed"
    );

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    Store::new(&fx.store)
        .modify(|doc| {
            let mut late = forward("late", "svc/echo", 80);
            late.local_port = port;
            doc.config.forwards.push(late);
            Ok::<_, ferry_core::store::StoreError>(())
        })
        .unwrap();
    let e = core.reload_store().await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Engine, "{e:?}");
    assert!(e.message.contains("shutting down"), "{e:?}");
    let e = core.set_enabled("echo", true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Engine, "{e:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "late never listens"
    );
    assert!(
        TcpStream::connect(local).await.is_err(),
        "echo never listens again"
    );
    assert!(core.running_config().await.is_none());
}

/// The app serves the control endpoint of its store: `ferry status` finds it, another
/// process cannot take the same store's forwards (a second `ferry up` refuses), and the
/// endpoint goes with the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_answers_ferry_status_for_its_store() {
    use ferry_core::control::{ControlClient, ControlError, ControlServer, Runner};
    let fx = Fixture::new().await;
    let core = fx.core().await;
    core.save_forward(None, forward("echo", "service/echo", 80))
        .await
        .unwrap();
    wait_state(&core, "echo", ForwardState::Active).await;
    let source = ferry_core::control::source_name(Some(core.store_path()));
    let path = ferry_core::control::endpoint_path(&source);
    let client = ControlClient::connect(&path)
        .await
        .unwrap()
        .expect("the app serves its store's endpoint");
    let (runner, snapshot) = client.status().await.unwrap();
    assert_eq!(runner.kind, "the Ferry app");
    assert_eq!(runner.pid, std::process::id());
    assert_eq!(runner.source, source);
    assert_eq!(
        snapshot.get("echo").map(|s| s.state),
        Some(ForwardState::Active)
    );

    let other = core.clone();
    let refused = ControlServer::start(
        path.clone(),
        Runner::this_process("`ferry up`", &source),
        move || other.subscribe(),
    )
    .await;
    match refused {
        Err(ControlError::AlreadyRunning(r)) => assert_eq!(r.kind, "the Ferry app"),
        Err(e) => panic!("not refused as running: {e}"),
        Ok(_) => panic!("a second runner was let in"),
    }

    core.shutdown().await;
    assert!(ControlClient::connect(&path).await.unwrap().is_none());
    assert!(!path.exists(), "the socket stays after the app");
}
