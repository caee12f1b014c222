//! The `ferry-fakecluster` binary: the `ready` line, a usable kubeconfig, scenarios, clean
//! exit on SIGTERM, and clear errors for bad arguments.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferry-fakecluster");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reads the ready line");
    (Running(child), line)
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl runs (install it: .ci/run does)")
}

#[test]
fn prints_ready_writes_a_kubeconfig_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("nested/kubeconfig");
    let (mut child, line) = start(&[
        "--kubeconfig",
        kc.to_str().expect("utf-8 path"),
        "--context-name",
        "my-fake",
    ]);
    let url = line
        .trim()
        .strip_prefix("ready ")
        .expect("a `ready <url>` line");
    assert!(url.starts_with("https://127.0.0.1:"), "{line}");

    let text = std::fs::read_to_string(&kc).expect("kubeconfig written");
    assert!(text.contains(&format!("server: {url}")));
    assert!(text.contains("current-context: my-fake"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kc)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the kubeconfig holds a token: owner-only");
    }
    let out = kubectl(&kc, &["get", "pods", "-n", "demo", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pod/solo"));

    sigterm_and_expect_clean_exit(&mut child.0);
}

#[test]
fn serves_a_scenario_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("scenario.yaml");
    std::fs::write(
        &scenario,
        "timing: {recreate_delay_ms: 50, ready_delay_ms: 50}\n\
         namespaces:\n\
         - name: shop\n\
         \x20 deployments:\n\
         \x20 - {name: cart, replicas: 3, labels: {app: cart}, ports: [{name: http, port: 8080, behavior: http}]}\n\
         \x20 services:\n\
         \x20 - {name: cart, selector: {app: cart}, ports: [{port: 80, target_port: http}]}\n",
    )
    .expect("write scenario");
    let kc = dir.path().join("kubeconfig");
    let (_child, line) = start(&[
        "--kubeconfig",
        kc.to_str().expect("utf-8 path"),
        "--scenario",
        scenario.to_str().expect("utf-8 path"),
    ]);
    assert!(line.starts_with("ready https://"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = kubectl(&kc, &["get", "deploy", "cart", "-n", "shop"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("3/3") {
            break;
        }
        assert!(Instant::now() < deadline, "cart never became 3/3: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_arguments_fail_with_the_field_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(
        &scenario,
        "namespaces:\n- name: ok\n  pods:\n  - {name: p, ports: [{port: 70000}]}\n",
    )
    .expect("write");
    let kc = dir.path().join("kubeconfig");
    let out = Command::new(BIN)
        .args([
            "--kubeconfig",
            kc.to_str().expect("utf-8"),
            "--scenario",
            scenario.to_str().expect("utf-8"),
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--scenario") && stderr.contains("port"),
        "{stderr}"
    );
    assert!(
        !kc.exists(),
        "nothing is written when the arguments are bad"
    );

    let out = Command::new(BIN)
        .args([
            "--kubeconfig",
            kc.to_str().expect("utf-8"),
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn node_subcommand_plays_the_node_for_an_api_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "namespaces: []\n").expect("scenario");
    let kc = dir.path().join("kubeconfig");
    let (_fake, line) = start(&[
        "--kubeconfig",
        kc.to_str().expect("utf-8 path"),
        "--scenario",
        empty.to_str().expect("utf-8 path"),
    ]);
    assert!(line.starts_with("ready https://"), "{line}");
    let (mut node, line) = start(&[
        "node",
        "--apiserver-kubeconfig",
        kc.to_str().expect("utf-8 path"),
        "--node-name",
        "n1",
    ]);
    let endpoint = line
        .trim()
        .strip_prefix("ready https://")
        .expect("a `ready <url>` line");
    let port = endpoint.rsplit(':').next().unwrap_or_default();

    let out = kubectl(
        &kc,
        &[
            "get",
            "node",
            "n1",
            "-o",
            "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = kubectl(
            &kc,
            &[
                "get",
                "pods",
                "-n",
                "demo",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        );
        let phases = String::from_utf8_lossy(&out.stdout).into_owned();
        if phases
            .split_whitespace()
            .filter(|p| *p == "Running")
            .count()
            == 5
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo pods not Running: {phases:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    sigterm_and_expect_clean_exit(&mut node.0);

    // Without a usable kubeconfig the node fails, naming the flag.
    let out = Command::new(BIN)
        .args(["node", "--apiserver-kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--apiserver-kubeconfig"));
}

/// Sends SIGTERM and expects the process to exit 0 within 10 s.
fn sigterm_and_expect_clean_exit(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exits 0 on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
