//! The official Python client against the fake cluster.

use std::process::Command;

use ferry_e2e::Fixture;

/// A fixture file. The package directory is taken from the test runner's environment
/// when the test runs, so a binary built from another checkout that shares the target
/// directory still finds the fixtures of this one.
fn fixture(rel: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_portforward_round_trips_bytes() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let script = fixture("fixtures/python_portforward.py");
    let kubeconfig = fx.kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(&kubeconfig)
            .args(["demo", "solo", "9000"])
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed (is `pip install kubernetes` done? .ci/run does it)\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout.trim(), "ok 65536");
    Ok(())
}
