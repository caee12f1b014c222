//! `ferry-bench --quick` runs end to end: every scenario, tiny sizes. It checks the
//! harness, not the figures.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_ferry-bench");

/// The run takes about 20 s; past this it is ended, with what it printed so far (before the
/// test runner's own limit would end it silently).
const LIMIT: Duration = Duration::from_secs(90);

/// The `ferry` binary of the same build: `$FERRY_BIN`, else built next to the bench.
fn ferry_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_BIN") {
        return PathBuf::from(p);
    }
    let next = PathBuf::from(BENCH).with_file_name("ferry");
    if next.is_file() {
        // Built by the same `cargo test`/`nextest` run when it covers the workspace
        // (ferry-cli's own tests need it); with `-p ferry-bench` alone it may be older
        // than the sources, which is fine for checking the harness.
        return next;
    }
    // Cargo builds only this package's binaries for its tests: build `ferry` too, in the
    // same target dir (inherited from the environment) and profile.
    let profile_release = PathBuf::from(BENCH)
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", "ferry-cli"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build -p ferry-cli");
    assert!(status.success(), "cargo build -p ferry-cli failed");
    assert!(next.is_file(), "no ferry binary at {}", next.display());
    next
}

#[test]
fn quick_mode_runs_every_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    // Output to files, so that a run that hangs still shows how far it got.
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(BENCH)
        .arg("--quick")
        .arg("--json")
        .arg(&json)
        .env("FERRY_BIN", ferry_bin())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("running ferry-bench");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for ferry-bench") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let Some(status) = status else {
        panic!("ferry-bench --quick still running after {LIMIT:?}, ended:\n{stdout}\n{stderr}");
    };
    assert!(
        status.success(),
        "ferry-bench --quick failed ({status}):\n{stdout}\n{stderr}"
    );
    let text = std::fs::read_to_string(&json).expect("the JSON results");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["quick"], true);
    let results = v["results"].as_array().expect("results");
    for scenario in [
        "throughput, 1 connection",
        "throughput, 8 connections",
        "setup",
        "concurrency, 20 at once",
        "concurrency, 50 at once",
        "heal",
        "memory",
        "idle",
    ] {
        assert!(
            results.iter().any(|r| r["scenario"]
                .as_str()
                .is_some_and(|s| s.starts_with(scenario))
                && r["ferry"].is_number()),
            "no ferry figure for `{scenario}`:\n{text}"
        );
    }
    // The upgrades the fake API server saw from Ferry are counted (by its user agent).
    assert!(
        results.iter().any(|r| r["metric"]
            .as_str()
            .is_some_and(|m| m.starts_with("API upgrades"))
            && r["ferry"].is_number()),
        "no upgrade count for ferry:\n{text}"
    );
    assert!(v["harness_errors"].as_array().is_some_and(Vec::is_empty));
}
