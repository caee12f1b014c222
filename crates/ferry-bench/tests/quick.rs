//! `ferry-bench --quick` runs end to end: every scenario, tiny sizes. It checks the
//! harness, not the figures.

use std::path::PathBuf;
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_ferry-bench");

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
    let out = Command::new(BENCH)
        .arg("--quick")
        .arg("--json")
        .arg(&json)
        .env("FERRY_BIN", ferry_bin())
        .output()
        .expect("running ferry-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ferry-bench --quick failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let text = std::fs::read_to_string(&json).expect("the JSON results");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["quick"], true);
    let results = v["results"].as_array().expect("results");
    for scenario in [
        "throughput, 1 connection",
        "throughput, 8 connections",
        "setup",
        "concurrency",
        "heal",
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
    assert!(v["harness_errors"].as_array().is_some_and(Vec::is_empty));
}
