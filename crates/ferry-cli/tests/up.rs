//! `ferry up` as a user runs it: JSON events, reload on file change and SIGHUP, exit codes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ferry_fakecluster::cluster::pod_is_ready;
use ferry_fakecluster::kind::Kind;
use ferry_fakecluster::{FakeCluster, Options};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::{Instant, sleep, timeout};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

async fn fake() -> anyhow::Result<(FakeCluster, tempfile::TempDir)> {
    let fake = FakeCluster::start(Options::default()).await?;
    let dir = tempfile::tempdir()?;
    fake.write_kubeconfig(&dir.path().join("kubeconfig"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fake
        .cluster()
        .list(Kind::Pod, None)
        .1
        .iter()
        .all(|p| pod_is_ready(p))
    {
        anyhow::ensure!(Instant::now() < deadline, "pods never became ready");
        sleep(Duration::from_millis(20)).await;
    }
    Ok((fake, dir))
}

fn forward(name: &str, target: &str, port: &str) -> String {
    format!(
        "  - {{name: {name}, namespace: demo, target: {target}, port: {port}, local_port: 0}}\n"
    )
}

fn spawn(dir: &Path, args: &[&str]) -> anyhow::Result<Child> {
    Ok(Command::new(BIN)
        .args(args)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        // The control endpoints of this test's runs, apart from any other.
        .env("XDG_RUNTIME_DIR", dir)
        .env_remove("FERRY_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?)
}

/// Starts `ferry` and hands back its stdout as lines.
fn spawn_lines(
    dir: &Path,
    args: &[&str],
) -> anyhow::Result<(Child, Lines<BufReader<ChildStdout>>)> {
    let mut child = spawn(dir, args)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdout"))?;
    Ok((child, BufReader::new(stdout).lines()))
}

/// Runs `ferry up -c FILE --events json` and waits for forward `echo` to be active.
async fn up_until_echo_active(
    dir: &Path,
    file: &Path,
) -> anyhow::Result<(Child, Lines<BufReader<ChildStdout>>, Value)> {
    let (child, mut lines) = spawn_lines(
        dir,
        &[
            "up",
            "-c",
            file.to_str().unwrap_or_default(),
            "--events",
            "json",
        ],
    )?;
    let active = until(&mut lines, "echo active", is_active("echo")).await?;
    Ok((child, lines, active))
}

/// Reads JSON event lines until one satisfies `check`.
async fn until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = timeout(left, lines.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("timed out waiting for {what}; saw {seen:#?}"))??
            .ok_or_else(|| anyhow::anyhow!("ferry exited before {what}"))?;
        let event: Value = serde_json::from_str(&line)?;
        if event.get("event").is_some() {
            continue;
        }
        for key in [
            "forward", "state", "pod", "local", "error", "health", "detail",
        ] {
            anyhow::ensure!(event.get(key).is_some(), "event without `{key}`: {line}");
        }
        if check(&event) {
            return Ok(event);
        }
        seen.push(line);
    }
}

fn is_active(name: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["forward"] == name && e["state"] == "active"
}

async fn echo(local: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut s = TcpStream::connect(local).await?;
    s.write_all(data).await?;
    let mut back = vec![0u8; data.len()];
    timeout(Duration::from_secs(10), s.read_exact(&mut back)).await??;
    Ok(back)
}

fn signal(child: &Child, sig: &str) -> anyhow::Result<()> {
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("no pid"))?
        .to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()?;
    anyhow::ensure!(status.success(), "kill {sig} failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_prints_events_reloads_and_exits_cleanly() -> anyhow::Result<()> {
    let (_fake, dir) = fake().await?;
    let config = dir.path().join("ferry.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nforwards:\n{}",
            forward("echo", "service/echo", "80")
        ),
    )?;
    let (mut child, mut lines, active) = up_until_echo_active(dir.path(), &config).await?;
    let local = active["local"].as_str().unwrap_or_default().to_string();
    // Active as soon as it listens with a pod: health is unknown until the first check
    // (which runs at once) answers.
    assert!(
        active["health"] == "unknown" || active["health"] == "up",
        "{active}"
    );
    let active = if active["health"] == "up" {
        active
    } else {
        until(&mut lines, "echo checked up", |e| {
            e["forward"] == "echo" && e["health"] == "up"
        })
        .await?
    };
    assert_eq!(active["state"], "active", "{active}");
    assert!(
        active["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("tunnel to demo/echo-")),
        "{active}"
    );
    assert!(
        active["pod"]
            .as_str()
            .is_some_and(|p| p.starts_with("echo-")),
        "{active}"
    );
    assert_eq!(
        echo(&local, b"through ferry up").await?,
        b"through ferry up"
    );

    // A change of the file on disk adds the new forward and keeps the old one.
    std::fs::write(
        &config,
        format!(
            "version: 1\nforwards:\n{}{}",
            forward("echo", "service/echo", "80"),
            forward("db", "statefulset/db", "pg")
        ),
    )?;
    let db = until(
        &mut lines,
        "db active after the file changed",
        is_active("db"),
    )
    .await?;
    assert_eq!(db["pod"], "db-0");
    assert_eq!(
        echo(&local, b"echo kept its port").await?,
        b"echo kept its port"
    );

    // SIGHUP re-reads too: removing `db` is reported.
    std::fs::write(
        &config,
        format!(
            "version: 1\nforwards:\n{}",
            forward("echo", "service/echo", "80")
        ),
    )?;
    signal(&child, "-HUP")?;
    until(&mut lines, "db removed", |e| {
        e["forward"] == "db" && e["removed"] == true
    })
    .await?;

    // An invalid edit is refused and the running forwards stay.
    std::fs::write(
        &config,
        "version: 1\nforwards:\n  - {name: Bad Name, target: service/echo, port: 80, local_port: 0}\n",
    )?;
    signal(&child, "-HUP")?;
    sleep(Duration::from_millis(300)).await;
    assert_eq!(echo(&local, b"still here").await?, b"still here");

    signal(&child, "-TERM")?;
    let status = timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).await?;
    }
    assert!(
        stderr.contains("not reloaded, keeping the running config"),
        "{stderr}"
    );
    assert!(stderr.contains("forwards[0].name"), "{stderr}");
    assert!(
        std::net::TcpListener::bind(&local).is_ok(),
        "the port is free after exit"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_a_profile_runs_only_its_forwards() -> anyhow::Result<()> {
    let (_fake, dir) = fake().await?;
    let config = dir.path().join("ferry.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nforwards:\n{}{}profiles:\n  - {{name: db-only, forwards: [db]}}\n",
            forward("echo", "service/echo", "80"),
            forward("db", "statefulset/db", "pg")
        ),
    )?;
    let (mut child, mut lines) = spawn_lines(
        dir.path(),
        &[
            "up",
            "-c",
            config.to_str().unwrap_or_default(),
            "--profile",
            "db-only",
            "--events",
            "json",
        ],
    )?;
    let first = until(&mut lines, "echo reported", |e| e["forward"] == "echo").await?;
    assert_eq!(first["state"], "disabled");
    until(&mut lines, "db active", is_active("db")).await?;
    signal(&child, "-TERM")?;
    assert!(
        timeout(Duration::from_secs(10), child.wait())
            .await??
            .success()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_exits_2_with_the_field_and_starts_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("ferry.yaml");
    std::fs::write(
        &config,
        "version: 1\nforwards:\n  - {name: echo, target: service/echo, port: 80, local_port: 70000}\n",
    )?;
    let out = Command::new(BIN)
        .args(["up", "-c", config.to_str().unwrap_or_default()])
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("local_port") && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    std::fs::write(&config, "version: 1\nforwards: []\n")?;
    let out = Command::new(BIN)
        .args([
            "up",
            "-c",
            config.to_str().unwrap_or_default(),
            "--profile",
            "nope",
        ])
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_a_kportal_file_and_reloads_it() -> anyhow::Result<()> {
    let (_fake, dir) = fake().await?;
    let file = dir.path().join(".kportal.yaml");
    // kportal's `port` on a service is the pods' port (echo's pods listen on 9000).
    let one = "contexts:\n  - name: ferry-fake\n    namespaces:\n      - name: demo\n        forwards:\n          - {resource: service/echo, protocol: tcp, port: 9000, localPort: 0, alias: echo}\n";
    std::fs::write(&file, one)?;
    let (mut child, mut lines, active) = up_until_echo_active(dir.path(), &file).await?;
    let local = active["local"].as_str().unwrap_or_default().to_string();
    assert_eq!(echo(&local, b"via kportal").await?, b"via kportal");
    let two = format!(
        "{one}          - {{resource: statefulset/db, protocol: tcp, port: 5432, localPort: 0}}\n"
    );
    std::fs::write(&file, two)?;
    until(
        &mut lines,
        "db active after the kportal file changed",
        is_active("db"),
    )
    .await?;
    assert_eq!(
        echo(&local, b"echo kept its port").await?,
        b"echo kept its port"
    );
    signal(&child, "-TERM")?;
    assert!(
        timeout(Duration::from_secs(10), child.wait())
            .await??
            .success()
    );
    Ok(())
}

/// Runs `ferry import FILE -c CONFIG --json` with `kubeconfig`; returns its report.
async fn import_json(kubeconfig: &Path, file: &Path, config: &Path) -> anyhow::Result<Value> {
    let out = Command::new(BIN)
        .args(["import", "--json", "-c"])
        .arg(config)
        .arg(file)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("FERRY_LOG")
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "ferry import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_add_names_the_current_context() -> anyhow::Result<()> {
    // A forward saved without a context would follow kubectl's current context to another
    // cluster after `kubectl config use-context`: it is saved with the current one.
    let (_fake, dir) = fake().await?;
    let config = dir.path().join("ferry.yaml");
    let out = Command::new(BIN)
        .args(["add", "svc/echo", "18080:80", "-n", "demo", "-c"])
        .arg(&config)
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env_remove("FERRY_LOG")
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "ferry add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("saved with `ferry-fake`"), "{said}");
    let stored = ferry_core::config::Config::from_yaml(&std::fs::read_to_string(&config)?)?;
    assert_eq!(stored.forwards[0].context.as_deref(), Some("ferry-fake"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kftray_export_imports_into_forwards_that_echo() -> anyhow::Result<()> {
    let (fake, dir) = fake().await?;
    let kubeconfig = dir.path().join("kubeconfig");
    // kftray's remote_port is the pods' port: echo 80 → named target port 9000, web 80 →
    // 8080, and a port no service port leads to.
    let export = dir.path().join("kftray.json");
    std::fs::write(
        &export,
        r#"[{"workload_type": "service", "service": "echo", "namespace": "demo", "context": "ferry-fake", "remote_port": 9000, "local_port": 0, "protocol": "tcp", "alias": "echo"},
           {"workload_type": "service", "service": "web", "namespace": "demo", "context": "ferry-fake", "remote_port": 8080, "local_port": 0, "protocol": "tcp", "alias": "web"},
           {"workload_type": "service", "service": "echo", "namespace": "demo", "context": "ferry-fake", "remote_port": 7777, "local_port": 0, "protocol": "tcp", "alias": "other"}]"#,
    )?;
    let config = dir.path().join("ferry.yaml");
    let report = import_json(&kubeconfig, &export, &config).await?;
    let notes = report["notes"].to_string();
    let stored = ferry_core::config::Config::from_yaml(&std::fs::read_to_string(&config)?)?;
    let port_of = |name: &str| {
        stored
            .forwards
            .iter()
            .find(|f| f.name == name)
            .map(|f| (f.port.to_string(), f.pod_port))
    };
    assert_eq!(port_of("echo"), Some(("80".into(), false)), "{notes}");
    assert_eq!(port_of("web"), Some(("80".into(), false)), "{notes}");
    assert_eq!(port_of("other"), Some(("7777".into(), true)), "{notes}");
    assert!(
        notes.contains("service demo/echo leads there from its port 80: imported as port 80"),
        "{notes}"
    );
    assert!(
        notes.contains("no port of service demo/echo leads there"),
        "{notes}"
    );
    let (mut child, _lines, active) = up_until_echo_active(dir.path(), &config).await?;
    let local = active["local"].as_str().unwrap_or_default().to_string();
    assert_eq!(echo(&local, b"from kftray").await?, b"from kftray");
    signal(&child, "-TERM")?;
    timeout(Duration::from_secs(10), child.wait()).await??;

    // With the cluster out of reach at import time, the forward keeps the pods' port and
    // works once the cluster is there.
    let away = dir.path().join("kubeconfig-away");
    std::fs::write(
        &away,
        std::fs::read_to_string(&kubeconfig)?.replace(fake.url(), "https://127.0.0.1:1"),
    )?;
    let later = dir.path().join("later.yaml");
    let report = import_json(&away, &export, &later).await?;
    let notes = report["notes"].to_string();
    assert!(notes.contains("could not be asked"), "{notes}");
    let stored = ferry_core::config::Config::from_yaml(&std::fs::read_to_string(&later)?)?;
    assert!(stored.forwards.iter().all(|f| f.pod_port), "{stored:?}");
    let (mut child, _lines, active) = up_until_echo_active(dir.path(), &later).await?;
    let local = active["local"].as_str().unwrap_or_default().to_string();
    assert_eq!(echo(&local, b"pods' port").await?, b"pods' port");
    signal(&child, "-TERM")?;
    timeout(Duration::from_secs(10), child.wait()).await??;
    Ok(())
}

/// The first of `ferry doctor --json`'s checks whose name starts with `what` (null if none).
fn doctor_check(checks: &Value, what: &str) -> Value {
    checks
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["check"].as_str().is_some_and(|s| s.starts_with(what)))
                .cloned()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_contexts_and_ports() -> anyhow::Result<()> {
    let (_fake, dir) = fake().await?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let config = dir.path().join("ferry.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nforwards:\n  - {{name: busy, namespace: demo, target: pod/solo, port: 9000, local_port: {port}}}\n"
        ),
    )?;
    let out = Command::new(BIN)
        .args([
            "doctor",
            "-c",
            config.to_str().unwrap_or_default(),
            "--json",
        ])
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .output()
        .await?;
    assert!(!out.status.success(), "a port in use is a failed check");
    let checks: Value = serde_json::from_slice(&out.stdout)?;
    let find = |what: &str| doctor_check(&checks, what);
    assert_eq!(find("kubeconfig")["ok"], true, "{checks}");
    let ctx = find("context ferry-fake");
    assert_eq!(ctx["ok"], true, "{checks}");
    assert!(
        ctx["detail"]
            .as_str()
            .is_some_and(|d| d.contains("reachable, Kubernetes 1.33")),
        "{ctx}"
    );
    let busy = find("port 127.0.0.1");
    assert_eq!(busy["ok"], false, "{checks}");
    assert!(
        busy["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already in use")),
        "{busy}"
    );
    drop(taken);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_without_a_file_runs_the_apps_store_with_its_kubeconfig_files() -> anyhow::Result<()> {
    let (_fake, dir) = fake().await?;
    let store = dir.path().join("store.json");
    // What the app saves: the forward, and the fake cluster's kubeconfig as an extra file
    // in its settings (KUBECONFIG points nowhere).
    let doc = serde_json::json!({
        "version": 1,
        "config": {"version": 1, "forwards": [
            {"name": "echo", "namespace": "demo", "target": "service/echo", "port": 80, "local_port": 0}
        ]},
        "settings": {"kubeconfig_paths": [dir.path().join("kubeconfig")]},
    });
    std::fs::write(&store, serde_json::to_vec(&doc)?)?;
    let mut child = Command::new(BIN)
        .args(["up", "--events", "json"])
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("FERRY_STORE", &store)
        .env_remove("FERRY_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let active = until(&mut lines, "echo active", is_active("echo")).await?;
    let local = active["local"].as_str().unwrap_or_default().to_string();
    assert_eq!(echo(&local, b"from the store").await?, b"from the store");
    signal(&child, "-TERM")?;
    child.wait().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_permissions_a_user_lacks() -> anyhow::Result<()> {
    use ferry_fakecluster::{PolicyRule, User};
    // `dev` may read pods and services everywhere and forward in `demo` only; nothing on
    // EndpointSlices.
    let dev = User::new("dev", "dev-token")
        .rule(PolicyRule::new(
            ["get", "list", "watch"],
            ["pods", "services"],
        ))
        .rule(PolicyRule::new(["create", "get"], ["pods/portforward"]).namespaces(["demo"]));
    let fake = FakeCluster::start(Options::default().user(dev)).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig_for_user("dev", &kubeconfig)?;
    let config = dir.path().join("ferry.yaml");
    std::fs::write(
        &config,
        "version: 1\nforwards:\n  - {name: solo, namespace: demo, target: pod/solo, port: 9000, local_port: 0}\n  - {name: echo, namespace: demo, target: service/echo, port: 80, local_port: 0}\n  - {name: dns, namespace: kube-system, target: pod/dns, port: 53, local_port: 0}\n",
    )?;
    let out = Command::new(BIN)
        .args([
            "doctor",
            "-c",
            config.to_str().unwrap_or_default(),
            "--json",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await?;
    let checks: Value = serde_json::from_slice(&out.stdout)?;
    println!("{checks:#}");
    assert!(
        !out.status.success(),
        "a missing permission is a failed check"
    );
    let find = |what: &str| doctor_check(&checks, what);
    let detail = |c: &Value| c["detail"].as_str().unwrap_or_default().to_string();
    // A pod in demo needs nothing more.
    let pod = find("permissions ferry-fake/demo (solo)");
    assert_eq!(pod["ok"], true, "{checks}");
    // A service needs its EndpointSlices.
    let svc = find("permissions ferry-fake/demo (echo)");
    assert_eq!(svc["ok"], false, "{checks}");
    assert_eq!(
        detail(&svc),
        "user `dev` cannot list endpointslices.discovery.k8s.io in namespace `demo`; ask a cluster admin for a Role that grants it"
    );
    // No forwarding outside demo.
    let dns = find("permissions ferry-fake/kube-system (dns)");
    assert_eq!(dns["ok"], false, "{checks}");
    assert!(
        detail(&dns).starts_with(
            "user `dev` cannot create or get pods/portforward in namespace `kube-system`; since Kubernetes 1.35"
        ),
        "{dns}"
    );
    // What only makes forwards better is a warning, once per namespace.
    let warnings: Vec<&Value> = checks
        .as_array()
        .map(|a| a.iter().filter(|c| c["warn"] == true).collect())
        .unwrap_or_default();
    assert_eq!(warnings.len(), 2, "one warning per namespace: {checks}");
    assert!(
        warnings.iter().all(|w| w["ok"] == true
            && detail(w).contains("watch endpointslices.discovery.k8s.io")),
        "{checks}"
    );
    fake.shutdown().await;
    Ok(())
}

/// Runs `ferry ARGS` to its end: (exit code, stdout, stderr).
async fn run(dir: &Path, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = timeout(
        Duration::from_secs(30),
        spawn(dir, args)?.wait_with_output(),
    )
    .await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `ferry status` asks a running `ferry up` through its control endpoint (an owner-only
/// Unix socket), a second `ferry up` on the same config refuses and names the first, and
/// with nothing running `status` says so with exit code 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sees_the_run_and_a_second_up_on_its_config_refuses() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let (_fake, dir) = fake().await?;
    let dir = dir.path();
    let file = dir.join("ferry.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1\nforwards:\n{}  - {{name: off, namespace: demo, target: service/web, port: 80, local_port: 0, enabled: false}}\n",
            forward("echo", "service/echo", "80")
        ),
    )?;
    let path = file.to_str().unwrap_or_default();

    let (code, out, _) = run(dir, &["status", "-c", path]).await?;
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("Nothing runs the forwards of "), "{out}");
    let (code, out, _) = run(dir, &["status", "-c", path, "--json"]).await?;
    assert_eq!(code, 3);
    let v: Value = serde_json::from_str(&out)?;
    assert!(
        v["runner"].is_null() && v["forwards"] == serde_json::json!([]),
        "{v}"
    );

    let (mut first, _lines, active) = up_until_echo_active(dir, &file).await?;
    let pid = first.id().unwrap_or_default();
    let (code, out, err) = run(dir, &["status", "-c", path]).await?;
    assert_eq!(code, 0, "{out}{err}");
    let canonical = std::fs::canonicalize(&file)?.display().to_string();
    assert!(
        out.starts_with(&format!(
            "`ferry up` (pid {pid}) runs the forwards of {canonical}:"
        )),
        "{out}"
    );
    assert!(out.contains("  echo: active"), "{out}");
    assert!(out.contains("  off: disabled"), "{out}");
    let (code, out, _) = run(dir, &["status", "-c", path, "--json"]).await?;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out)?;
    assert_eq!(v["runner"]["pid"], pid);
    assert_eq!(v["runner"]["source"], canonical.as_str());
    assert_eq!(v["forwards"][0]["forward"], "echo");
    assert_eq!(v["forwards"][0]["local"], active["local"]);

    // A forward that cannot come up (no such service): "some are down", exit code 1.
    let mut text = std::fs::read_to_string(&file)?;
    text.push_str(&forward("ghost", "service/nowhere", "80"));
    std::fs::write(&file, text)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, _) = run(dir, &["status", "-c", path]).await?;
        if out.contains("  ghost: ") {
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("  echo: active"), "{out}");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "ghost never showed: {out}");
        sleep(Duration::from_millis(200)).await;
    }

    // The endpoint is for its owner only.
    let socket = std::fs::read_dir(dir.join("ferry"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "sock"))
        .ok_or_else(|| anyhow::anyhow!("no control socket"))?;
    assert_eq!(
        std::fs::metadata(&socket)?.permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir.join("ferry"))?.permissions().mode() & 0o777,
        0o700
    );

    // A second run of the same config refuses, naming the first; the first carries on.
    let (code, _, err) = run(dir, &["up", "-c", path]).await?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "`ferry up` (pid {pid}) already runs the forwards of {canonical}"
        )),
        "{err}"
    );
    let local = active["local"].as_str().unwrap_or_default().to_string();
    assert_eq!(echo(&local, b"still").await?, b"still");

    // Followed: the state now, then what happens, until the run ends.
    let (mut watch, mut watched) = spawn_lines(dir, &["status", "-c", path, "--watch", "--json"])?;
    let seen = until(&mut watched, "echo through --watch", is_active("echo")).await?;
    assert_eq!(seen["local"], active["local"]);
    signal(&first, "-INT")?;
    timeout(Duration::from_secs(20), first.wait()).await??;
    let ended = timeout(Duration::from_secs(20), watch.wait()).await??;
    assert!(ended.success(), "{ended:?}");
    // Gone with its run.
    assert!(!socket.exists(), "the socket stays after the run");
    let (code, _, _) = run(dir, &["status", "-c", path]).await?;
    assert_eq!(code, 3);
    Ok(())
}

/// `ferry mcp` as an assistant's MCP client drives it (the official Python SDK, PyPI
/// `mcp`, in tests/mcp_client.py): it lists what a running `ferry up` runs, enables,
/// disables, adds and removes forwards that the run then applies, tests one, serves the
/// status resource, answers bad input with errors naming the argument, and never says the
/// kubeconfig's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_drives_the_running_forwards_for_a_real_mcp_client() -> anyhow::Result<()> {
    let (fake, dir) = fake().await?;
    let dir = dir.path();
    let file = dir.join("ferry.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1\nforwards:\n{}  - {{name: off, namespace: demo, target: service/web, port: 80, local_port: 0, enabled: false}}\n",
            forward("echo", "service/echo", "80")
        ),
    )?;
    let (mut up, _lines, _) = up_until_echo_active(dir, &file).await?;

    let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig"))?;
    let secrets: Vec<&str> = kubeconfig
        .lines()
        .filter_map(|l| l.trim().strip_prefix("token: "))
        .collect();
    anyhow::ensure!(!secrets.is_empty(), "the fake's kubeconfig has no token");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let out = timeout(
        Duration::from_secs(90),
        Command::new("python3")
            .arg(&script)
            .arg(BIN)
            .arg(&file)
            .args(&secrets)
            .env("KUBECONFIG", dir.join("kubeconfig"))
            .env("XDG_RUNTIME_DIR", dir)
            .env_remove("FERRY_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        out.status.success(),
        "the MCP client failed (scripts/setup installs PyPI `mcp`):\n{said}"
    );
    assert!(said.contains("every check passed"), "{said}");

    up.kill().await?;
    fake.shutdown().await;
    Ok(())
}

/// `ferry discover` lists what the fake's demo objects declare (Ferry's, kftray's and
/// k9s's annotations), marks what the config has, sees a forward `ferry share` published
/// through the real kubectl, and `--import` adds the new ones (a taken local port moved)
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_finds_declared_forwards_and_share_publishes_one() -> anyhow::Result<()> {
    let (fake, dir) = fake().await?;
    let dir = dir.path();
    let file = dir.join("ferry.yaml");
    std::fs::write(
        &file,
        "version: 1\nforwards:\n\
         - {name: web, context: ferry-fake, namespace: demo, target: service/web, port: 80, local_port: 18081}\n\
         - {name: mydb, context: ferry-fake, namespace: demo, target: statefulset/db, port: 5432, local_port: 15432}\n\
         - {name: db-main, context: ferry-fake, namespace: demo, target: service/db, port: 5432, local_port: 15440}\n",
    )?;
    let path = file.to_str().unwrap_or_default();
    let declared = |v: &Value| -> Vec<(String, String, Value)> {
        v["declared"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| {
                        (
                            d["name"].as_str().unwrap_or_default().to_string(),
                            d["source"].as_str().unwrap_or_default().to_string(),
                            d["have"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    let (code, out, err) = run(dir, &["discover", "-c", path, "-n", "demo", "--json"]).await?;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out)?;
    assert_eq!(v["context"], "ferry-fake");
    assert_eq!(
        declared(&v),
        [
            ("web-pod".into(), "Ferry".into(), Value::Null),
            ("echo".into(), "kftray".into(), Value::Null),
            ("web".into(), "Ferry".into(), "web".into()),
            ("db-pg".into(), "k9s".into(), Value::Null),
        ]
    );
    let echo = &v["declared"][1]["forward"];
    assert_eq!(echo["pod_port"], true, "kftray's port is the pods': {echo}");
    assert_eq!(
        echo["context"], "ferry-fake",
        "pinned to the context asked: {echo}"
    );

    // `ferry share` prints the annotate line; the real kubectl runs it against the fake.
    let (code, command, err) = run(dir, &["share", "db-main", "-c", path]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(
        command.starts_with("kubectl annotate --context ferry-fake -n demo service/db "),
        "{command}"
    );
    let annotated = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command.trim())
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .output()
        .await?;
    assert!(
        annotated.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&annotated.stderr)
    );
    let (_, out, _) = run(dir, &["discover", "-c", path, "-n", "demo", "--json"]).await?;
    let v: Value = serde_json::from_str(&out)?;
    assert!(
        declared(&v).contains(&("db-main".into(), "Ferry".into(), "db-main".into())),
        "{v}"
    );

    // The human listing says what is new and how to add it.
    let (_, out, _) = run(dir, &["discover", "-c", path, "-n", "demo"]).await?;
    assert!(out.contains("have it: web"), "{out}");
    assert!(out.contains("The demo's web page"), "{out}");
    assert!(
        out.contains("`ferry discover --import` adds the 3 new one(s)."),
        "{out}"
    );

    let (code, out, err) = run(
        dir,
        &[
            "discover",
            "-c",
            path,
            "-n",
            "demo",
            "--import",
            "--profile",
            "team",
            "--json",
        ],
    )
    .await?;
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out)?;
    assert_eq!(
        report["forwards"],
        serde_json::json!(["web-pod", "echo", "db-pg"]),
        "{report}"
    );
    let config = ferry_core::config::Config::from_file(&file)?;
    let db_pg = config
        .forwards
        .iter()
        .find(|f| f.name == "db-pg")
        .ok_or_else(|| anyhow::anyhow!("no db-pg"))?;
    assert_ne!(db_pg.local_port, 15432, "mydb holds 15432");
    assert!(
        report["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("15432 is taken")))),
        "{report}"
    );
    let team = config.profiles.iter().find(|p| p.name == "team");
    assert_eq!(team.map(|p| p.forwards.len()), Some(3));

    let (code, out, _) = run(dir, &["discover", "-c", path, "-n", "demo", "--import"]).await?;
    assert_eq!(code, 0);
    assert!(out.contains("nothing to add"), "{out}");
    let (code, _, err) = run(dir, &["discover", "-c", path, "-n", "demo", "-A"]).await?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("-n and -A"), "{err}");
    let (code, _, err) = run(dir, &["share", "ghost", "-c", path]).await?;
    assert_eq!(code, 2);
    assert!(err.contains("no forward named \"ghost\""), "{err}");
    fake.shutdown().await;
    Ok(())
}

/// Reads one HTTP/1.1 response (Content-Length or chunked): status, headers, body.
async fn read_response(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> anyhow::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut status_line = String::new();
    r.read_line(&mut status_line).await?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no status in {status_line:?}"))?
        .parse()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await?;
            let n = usize::from_str_radix(size.trim(), 16)?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length") {
        body = vec![0u8; n.parse()?];
        r.read_exact(&mut body).await?;
    }
    Ok((status, headers, body))
}

/// An inspected forward through a running `ferry up`: `ferry inspect --follow --json`
/// prints every exchange of the fake's http pod as it happens — 100 on one keep-alive
/// connection, pipelined ones in order, chunked and sized bodies kept up to the cap, a
/// POST's body, a WebSocket upgrade recorded and then passed through — with secrets
/// redacted and the bytes the client got unchanged; TLS bytes are passed through with the
/// note said once; `ferry inspect NAME off` ends the follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_follows_http_exchanges_through_a_running_up() -> anyhow::Result<()> {
    use base64::Engine as _;
    use futures::{SinkExt as _, StreamExt as _};
    let (fake, dir) = fake().await?;
    let dir = dir.path();
    let file = dir.join("ferry.yaml");
    std::fs::write(
        &file,
        "version: 1\nforwards:\n\
         - {name: web, namespace: demo, target: service/web, port: 80, local_port: 0, inspect: {body_kib: 1, redact: [x-api-key]}}\n\
         - {name: plain, namespace: demo, target: service/web, port: 80, local_port: 0}\n",
    )?;
    let path = file.to_str().unwrap_or_default();
    let (mut up, mut lines) = spawn_lines(dir, &["up", "-c", path, "--events", "json"])?;
    let web = until(&mut lines, "web active", is_active("web")).await?;
    let local = web["local"].as_str().unwrap_or_default().to_string();

    let (mut follower, mut followed) =
        spawn_lines(dir, &["inspect", "web", "--follow", "--json", "-c", path])?;
    // The follower is connected once the endpoint has answered it; give it that moment.
    sleep(Duration::from_millis(300)).await;

    // 100 requests on one keep-alive connection, with secrets in their headers.
    let (r, mut w) = TcpStream::connect(&local).await?.into_split();
    let mut r = BufReader::new(r);
    for i in 0..100 {
        w.write_all(
            format!("GET /?i={i} HTTP/1.1\r\nHost: web\r\nAuthorization: Bearer s3cret\r\nX-Api-Key: k3y\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let (status, _, body) = read_response(&mut r).await?;
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).starts_with("hello from web-"));
    }
    // Three pipelined requests, sent at once.
    w.write_all(b"GET /status/201 HTTP/1.1\r\nHost: web\r\n\r\nGET /status/404 HTTP/1.1\r\nHost: web\r\n\r\nGET /healthz HTTP/1.1\r\nHost: web\r\n\r\n").await?;
    for want in [201, 404, 200] {
        assert_eq!(read_response(&mut r).await?.0, want);
    }
    // A chunked body and a sized one, both larger than the 1 KiB kept.
    w.write_all(b"GET /chunked?n=3000 HTTP/1.1\r\nHost: web\r\n\r\n")
        .await?;
    let (_, headers, body) = read_response(&mut r).await?;
    assert!(headers.contains(&("transfer-encoding".into(), "chunked".into())));
    assert_eq!(body, vec![b'x'; 3000], "the client's bytes are the pod's");
    w.write_all(b"GET /bytes?n=5000 HTTP/1.1\r\nHost: web\r\n\r\n")
        .await?;
    assert_eq!(read_response(&mut r).await?.2, vec![b'x'; 5000]);
    w.write_all(b"POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello")
        .await?;
    assert_eq!(read_response(&mut r).await?.2, b"hello");
    drop((r, w));

    // A WebSocket: the upgrade is recorded, then messages pass through untouched.
    let stream = TcpStream::connect(&local).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{local}/ws"), stream).await?;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        "over the forward",
    ))
    .await?;
    let echoed = timeout(Duration::from_secs(10), ws.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no echo"))??;
    assert_eq!(echoed.into_text()?.as_str(), "over the forward");
    drop(ws);

    let mut seen = Vec::new();
    while seen.len() < 107 {
        let line = timeout(Duration::from_secs(20), followed.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("only {} exchanges followed", seen.len()))??
            .ok_or_else(|| anyhow::anyhow!("the follower ended after {}", seen.len()))?;
        seen.push(serde_json::from_str::<Value>(&line)?);
    }
    for (i, e) in seen[..100].iter().enumerate() {
        assert_eq!(e["method"], "GET");
        assert_eq!(e["target"], format!("/?i={i}"));
        assert_eq!(e["status"], 200);
        assert!(e["durationMs"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        let headers = &e["request"]["headers"];
        for (name, value) in [
            ("Authorization", "[redacted]"),
            ("X-Api-Key", "[redacted]"),
            ("Host", "web"),
        ] {
            assert!(
                headers
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["name"] == name && h["value"] == value)),
                "{name}: {headers}"
            );
        }
    }
    let targets: Vec<(&str, u64)> = seen[100..106]
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap_or_default(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("/status/201", 201),
            ("/status/404", 404),
            ("/healthz", 200),
            ("/chunked?n=3000", 200),
            ("/bytes?n=5000", 200),
            ("/echo", 200)
        ]
    );
    let kept = |e: &Value, side: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(e[side]["bodyBase64"].as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    for (e, size) in [(&seen[103], 3000), (&seen[104], 5000)] {
        assert_eq!(e["response"]["contentSize"], size, "{e}");
        assert_eq!(kept(e, "response"), vec![b'x'; 1024], "1 KiB kept");
        assert_eq!(e["response"]["truncated"], true);
    }
    assert_eq!(kept(&seen[105], "request"), b"hello");
    assert_eq!(seen[106]["status"], 101);
    assert_eq!(seen[106]["upgrade"], "websocket");

    // TLS bytes: passed through unparsed (the pod's own answer comes back as it sent it),
    // and the forward says so once.
    let mut tls = TcpStream::connect(&local).await?;
    tls.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, b'\r', b'\n', b'\r', b'\n',
    ])
    .await?;
    let mut answer = Vec::new();
    let _ = timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let (code, _, err) = run_for(
        dir,
        &["inspect", "web", "--follow", "-c", path],
        Duration::from_secs(2),
    )
    .await?;
    assert!(
        err.contains("web: not HTTP: traffic passed through unparsed (the client speaks TLS)"),
        "{code:?} {err}"
    );

    // A forward without `inspect` says how to turn it on.
    let (code, _, err) = run(dir, &["inspect", "plain", "--follow", "-c", path]).await?;
    assert_eq!(code, 1);
    assert!(
        err.contains("not inspected") && err.contains("ferry inspect plain on"),
        "{err}"
    );

    // Off: the running forward keeps its connections, and the follower ends.
    let (code, out, err) = run(dir, &["inspect", "web", "off", "-c", path]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no longer inspecting web"), "{out}");
    let ended = timeout(Duration::from_secs(15), follower.wait()).await?;
    assert!(ended?.success());
    let config = ferry_core::config::Config::from_file(&file)?;
    assert!(config.forwards.iter().all(|f| f.inspect.is_none()));

    up.kill().await?;
    fake.shutdown().await;
    Ok(())
}

/// Runs `ferry ARGS` for `within`, then stops it: (exit code if it ended, stdout, stderr).
async fn run_for(
    dir: &Path,
    args: &[&str],
    within: Duration,
) -> anyhow::Result<(Option<i32>, String, String)> {
    let mut child = spawn(dir, args)?;
    let code = match timeout(within, child.wait()).await {
        Ok(status) => status?.code(),
        Err(_) => {
            child.start_kill()?;
            None
        }
    };
    let out = child.wait_with_output().await?;
    Ok((
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
