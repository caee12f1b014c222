//! Scripting the config: `ferry import`, `add`, `ls`, `enable`, `disable`, `rm`, `export`.

use std::path::Path;
use std::process::{Command, Output};

use ferry_core::config::Config;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FERRY_LOG")
        // No cluster: an import never asks the machine's own kubeconfig.
        .env("KUBECONFIG", "/nonexistent/ferry-test/kubeconfig")
        .output()
        .expect("ferry runs")
}

fn ok(args: &[&str]) -> String {
    let out = ferry(args);
    assert!(
        out.status.success(),
        "ferry {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn import_kubectl_lines_then_list_edit_and_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ferry.yaml");
    let lines = dir.path().join("tunnels.sh");
    std::fs::write(
        &lines,
        "#!/bin/sh\n# our tunnels\nkubectl port-forward -n demo svc/echo 18080:80 &\nkubectl port-forward -n demo --context ferry-fake sts/db 15432:pg &\nkubectl port-forward -n demo pod/echo 18081:9000\n",
    )
    .expect("write lines");

    let report: Value = serde_json::from_str(&ok(&[
        "import",
        path(&lines),
        "-c",
        path(&cfg),
        "--profile",
        "legacy",
        "--json",
    ]))
    .expect("json report");
    assert_eq!(
        report["forwards"],
        serde_json::json!(["echo", "db", "echo-2"])
    );
    assert_eq!(
        report["renamed"][0],
        serde_json::json!({"from": "echo", "to": "echo-2"})
    );

    let list: Value =
        serde_json::from_str(&ok(&["ls", "-c", path(&cfg), "--json"])).expect("json list");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["echo", "db", "echo-2"]);
    assert_eq!(list[1]["target"], "statefulset/db");
    assert_eq!(list[1]["port"], "pg");
    assert_eq!(list[1]["context"], "ferry-fake");
    assert_eq!(list[0]["profiles"], serde_json::json!(["legacy"]));

    ok(&[
        "add",
        "-c",
        path(&cfg),
        "--name",
        "web",
        "--profile",
        "dev",
        "-n",
        "demo",
        "deploy/web",
        "18082:http",
    ]);
    ok(&["disable", "-c", path(&cfg), "echo-2"]);
    ok(&["rm", "-c", path(&cfg), "db"]);
    let config = Config::from_file(&cfg).expect("the written config is valid");
    let names: Vec<&str> = config.forwards.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["echo", "echo-2", "web"]);
    assert!(!config.forwards[1].enabled);
    assert_eq!(
        config
            .profiles
            .iter()
            .find(|p| p.name == "legacy")
            .map(|p| p.forwards.clone()),
        Some(vec!["echo".to_string(), "echo-2".to_string()])
    );
    assert_eq!(
        config
            .profiles
            .iter()
            .find(|p| p.name == "dev")
            .map(|p| p.forwards.clone()),
        Some(vec!["web".to_string()])
    );

    // Export round-trips exactly.
    let exported = ok(&["export", "-c", path(&cfg)]);
    assert_eq!(
        Config::from_yaml(&exported).expect("exported YAML parses"),
        config
    );
    let exported_json = ok(&["export", "-c", path(&cfg), "--json"]);
    assert_eq!(
        Config::from_json(&exported_json).expect("exported JSON parses"),
        config
    );

    // An export imports into another config, its format told from its text (JSON named
    // `.json` included: the app and the CLI make one guess).
    let json_file = dir.path().join("export.json");
    std::fs::write(&json_file, &exported_json).expect("write export");
    let other = dir.path().join("other.yaml");
    let report: Value = serde_json::from_str(&ok(&[
        "import",
        path(&json_file),
        "-c",
        path(&other),
        "--json",
    ]))
    .expect("json report");
    assert_eq!(
        report["forwards"],
        serde_json::json!(["echo", "echo-2", "web"])
    );
    let imported = Config::from_file(&other).expect("valid");
    assert_eq!(imported.forwards, config.forwards);
}

#[test]
fn bad_input_changes_nothing_and_says_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ferry.yaml");
    ok(&[
        "add",
        "-c",
        path(&cfg),
        "-n",
        "demo",
        "svc/echo",
        "18080:80",
    ]);
    let before = std::fs::read(&cfg).expect("config written");

    let lines = dir.path().join("bad.txt");
    std::fs::write(
        &lines,
        "kubectl port-forward svc/a 1:80\nkubectl port-forward svc/b 2:99999\n",
    )
    .expect("write");
    let out = ferry(&["import", path(&lines), "-c", path(&cfg)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("nothing was imported"),
        "{stderr}"
    );

    // A port already used in the config: refused by validation, nothing written.
    let out = ferry(&["add", "-c", path(&cfg), "svc/other", "18080:80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("local_port"));

    let out = ferry(&["rm", "-c", path(&cfg), "ghost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no forward named \"ghost\""));

    assert_eq!(
        std::fs::read(&cfg).expect("still there"),
        before,
        "the config is unchanged"
    );
}

#[test]
fn concurrent_writers_take_turns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ferry.yaml");
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(BIN)
                .args([
                    "add",
                    "-c",
                    path(&cfg),
                    "--name",
                    &format!("f{i}"),
                    &format!("svc/s{i}"),
                    &format!("{}:80", 20000 + i),
                ])
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    let config = Config::from_file(&cfg).expect("a valid config after concurrent writes");
    let mut names: Vec<String> = config.forwards.iter().map(|f| f.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        (0..8).map(|i| format!("f{i}")).collect::<Vec<_>>(),
        "no write was lost"
    );
}

#[test]
fn kftray_and_kportal_files_import_and_kftray_exports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ferry.yaml");
    let kftray = dir.path().join("configs.json");
    std::fs::write(
        &kftray,
        r#"[{"service": "echo", "namespace": "demo", "local_port": 18080, "remote_port": 80, "context": "ferry-fake", "workload_type": "service", "protocol": "tcp", "alias": "echo"},
           {"namespace": "demo", "workload_type": "proxy", "protocol": "tcp", "remote_address": "db.internal", "remote_port": 5432, "local_port": 5432, "alias": "rds"}]"#,
    )
    .expect("write kftray");
    let report: Value =
        serde_json::from_str(&ok(&["import", path(&kftray), "-c", path(&cfg), "--json"]))
            .expect("json");
    assert_eq!(report["forwards"], serde_json::json!(["echo"]));
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("proxy forwards") && notes.contains("rds"),
        "{notes}"
    );

    let kportal = dir.path().join(".kportal.yaml");
    std::fs::write(
        &kportal,
        "contexts:\n  - name: ferry-fake\n    namespaces:\n      - name: demo\n        forwards:\n          - {resource: statefulset/db, protocol: tcp, port: 5432, localPort: 15432}\n          - {resource: service/echo, protocol: tcp, port: 80, localPort: 18081, alias: echo}\n",
    )
    .expect("write kportal");
    let report: Value =
        serde_json::from_str(&ok(&["import", path(&kportal), "-c", path(&cfg), "--json"]))
            .expect("json");
    assert_eq!(report["forwards"], serde_json::json!(["db", "echo-2"]));
    assert_eq!(
        report["renamed"][0],
        serde_json::json!({"from": "echo", "to": "echo-2"})
    );

    // kftray export: services only; the rest is named on stderr.
    let out = ferry(&["export", "-c", path(&cfg), "--format", "kftray"]);
    assert!(out.status.success());
    let exported: Value = serde_json::from_slice(&out.stdout).expect("kftray JSON");
    let services: Vec<&str> = exported
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["service"].as_str())
        .collect();
    assert_eq!(services, ["echo", "echo"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("db: statefulset/db has no kftray equivalent")
    );

    // A malformed kportal file: the line, nothing imported.
    let before = std::fs::read(&cfg).expect("config");
    let bad = dir.path().join("bad.kportal.yaml");
    std::fs::write(&bad, "contexts:\n  - name: x\n    namespaces:\n      - name: y\n        forwards:\n          - {resource: service/a, port: 80, localPort: 1, colour: red}\n").expect("write");
    let out = ferry(&["import", path(&bad), "-c", path(&cfg)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 6") && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&cfg).expect("config"), before);
}

#[test]
fn profiles_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ferry.yaml");
    ok(&["add", "-c", path(&cfg), "svc/a", "1001:80"]);
    ok(&["add", "-c", path(&cfg), "svc/b", "1002:80"]);
    ok(&["profile", "-c", path(&cfg), "add", "dev", "a"]);
    ok(&["profile", "-c", path(&cfg), "add", "dev", "b", "a"]);
    let list: Value =
        serde_json::from_str(&ok(&["profile", "-c", path(&cfg), "--json", "ls"])).expect("json");
    assert_eq!(
        list,
        serde_json::json!([{"name": "dev", "forwards": ["a", "b"]}])
    );
    let out = ferry(&["profile", "-c", path(&cfg), "add", "dev", "ghost"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a profile naming a missing forward is refused"
    );
    ok(&["profile", "-c", path(&cfg), "rm", "dev"]);
    assert!(Config::from_file(&cfg).expect("valid").profiles.is_empty());
}

#[test]
fn add_takes_its_options_after_the_line_as_the_readme_writes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ferry.yaml");
    ok(&[
        "add",
        "-n",
        "demo",
        "svc/echo",
        "18080:80",
        "--name",
        "echo",
        "--profile",
        "dev",
        "-c",
        path(&cfg),
    ]);
    let config = Config::from_file(&cfg).expect("valid");
    assert_eq!(config.forwards[0].name, "echo");
    assert_eq!(config.forwards[0].namespace.as_deref(), Some("demo"));
    assert_eq!(config.profiles[0].forwards, ["echo"]);
    // A port name Ferry could not read back is refused before anything is written.
    let out = ferry(&["add", "svc/x", "1:HTTP", "-c", path(&cfg)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a port number or port name"));
    assert!(Config::from_file(&cfg).is_ok(), "the config still reads");
}

/// `ferry` with the default config: the store named by `FERRY_STORE`.
fn ferry_on_store(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FERRY_LOG")
        .env("FERRY_STORE", store)
        .output()
        .expect("ferry runs")
}

#[test]
fn the_default_config_is_the_apps_store_and_settings_survive_edits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.json");
    // What the app wrote: a forward and its settings.
    std::fs::write(
        &store,
        r#"{"version": 1, "config": {"version": 1, "forwards": [
            {"name": "app", "namespace": "demo", "target": "service/web", "port": 80, "local_port": 28080}]},
           "settings": {"theme": "dark", "close_to_tray": false}}"#,
    )
    .expect("write store");
    let out = ferry_on_store(&store, &["add", "svc/echo", "28081:80", "-n", "demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ferry_on_store(&store, &["ls", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["app", "echo"]);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&store).expect("store")).expect("json");
    assert_eq!(doc["settings"]["theme"], "dark", "{doc}");
    assert_eq!(doc["config"]["forwards"][1]["local_port"], 28081);

    // A change that would break the config is refused and writes nothing.
    let before = std::fs::read(&store).expect("store");
    let out = ferry_on_store(&store, &["add", "svc/db", "28081:5432", "-n", "demo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("local_port"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&store).expect("store"), before);
}

#[test]
fn concurrent_cli_and_app_writes_leave_a_valid_store_with_every_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.json");
    // The app's writes, through the same store code the app uses.
    let app_store = store.clone();
    let app = std::thread::spawn(move || {
        let s = ferry_core::store::Store::new(&app_store);
        for i in 0..15u16 {
            s.modify(|doc| {
                let mut f = ferry_core::config::Forward::new(
                    format!("app-{i}"),
                    "svc/web".parse().expect("target"),
                    ferry_core::config::PortRef::Number(80),
                    29000 + i,
                );
                f.namespace = Some("demo".into());
                doc.config.forwards.push(f);
                doc.settings = serde_json::json!({"theme": "dark", "n": i});
                Ok::<_, ferry_core::store::StoreError>(())
            })
            .expect("app write");
        }
    });
    // Two CLI processes at a time, next to the app.
    let clis: Vec<_> = (0..2)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..8 {
                    let port = format!("{}:80", 30000 + t * 100 + i);
                    let name = format!("cli-{t}-{i}");
                    let out = ferry_on_store(
                        &store,
                        &["add", "svc/echo", &port, "-n", "demo", "--name", &name],
                    );
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    app.join().expect("app thread");
    for c in clis {
        c.join().expect("cli thread");
    }
    let doc = ferry_core::store::Store::new(&store)
        .load()
        .expect("a valid store");
    assert_eq!(doc.config.forwards.len(), 15 + 16);
    assert_eq!(
        doc.settings["n"], 14,
        "the app's last settings write is kept"
    );
}
