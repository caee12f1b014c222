//! The GitHub Actions workflows (.github/workflows) pass actionlint, with shellcheck over
//! their `run:` scripts. Nothing here can run the workflows themselves; this is their check.
//! Both tools come from scripts/setup; a missing one fails the test, never skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Whether `tool` runs at all (`tool --version`).
fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn workflows_pass_actionlint() {
    let root = repo_root();
    let mut workflows: Vec<PathBuf> = std::fs::read_dir(root.join(".github/workflows"))
        .expect(".github/workflows exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .map(|p| p.strip_prefix(&root).expect("under the root").to_path_buf())
        .collect();
    workflows.sort();
    assert!(
        !workflows.is_empty(),
        "no workflow files in .github/workflows"
    );

    let version = Command::new("actionlint").arg("-version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!(
            "`actionlint -version` failed ({}): {}; run scripts/setup",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("actionlint is not on PATH ({e}); run scripts/setup, which installs it"),
    };
    // Without shellcheck actionlint quietly skips the `run:` scripts.
    assert!(
        runs("shellcheck"),
        "shellcheck is not on PATH; run scripts/setup, which installs it"
    );

    let out = Command::new("actionlint")
        .current_dir(&root)
        .args(["-no-color", "-shellcheck", "shellcheck"])
        .args(&workflows)
        .output()
        .expect("actionlint runs");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "actionlint ({}) found problems in {}:\n{findings}",
        version.lines().next().unwrap_or("?"),
        workflows
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
