//! `ferry completions SHELL` in a real bash, and `ferry manpage`.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(store: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("FERRY_STORE", store)
        .env_remove("FERRY_LOG")
        .env_remove("FERRY_COMPLETE")
        .env("KUBECONFIG", "/nonexistent/ferry-test/kubeconfig")
        .output()
        .expect("ferry runs");
    assert!(
        out.status.success(),
        "ferry {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What bash offers after `line` (the last word is the one being completed), with the
/// script `ferry completions bash` printed sourced as a user's ~/.bashrc would.
fn bash_offers(store: &Path, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let current = line.last().copied().unwrap_or("");
    let script = format!(
        "source <(\"$FERRY\" completions bash) || exit 9\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9\n\
         _clap_complete_ferry ferry '{current}' ferry\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = words.join(" "),
        cword = line.len() - 1,
    );
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(script)
        .env("FERRY", BIN)
        .env("FERRY_STORE", store)
        .env("KUBECONFIG", "/nonexistent/ferry-test/kubeconfig")
        // The completion calls `ferry` by name when found on PATH: put this build first.
        .env(
            "PATH",
            format!(
                "{}:{}",
                Path::new(BIN).parent().expect("bin dir").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut offers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    offers.sort();
    offers
}

#[test]
fn bash_completes_subcommands_and_the_stores_forward_and_profile_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.json");
    ferry(
        &store,
        &[
            "add",
            "svc/echo",
            "18080:80",
            "-n",
            "demo",
            "--context",
            "c",
        ],
    );
    ferry(
        &store,
        &["add", "svc/web", "18081:80", "-n", "demo", "--context", "c"],
    );
    ferry(
        &store,
        &[
            "add",
            "sts/db",
            "15432:5432",
            "-n",
            "demo",
            "--context",
            "c",
        ],
    );
    ferry(&store, &["profile", "add", "dev", "echo", "web"]);
    ferry(&store, &["profile", "add", "data", "db"]);

    assert_eq!(bash_offers(&store, &["ferry", "st"]), ["status"]);
    // An empty word offers the options too.
    assert_eq!(
        bash_offers(&store, &["ferry", "enable", ""]),
        ["--config", "--help", "--json", "db", "echo", "web"]
    );
    assert_eq!(bash_offers(&store, &["ferry", "disable", "e"]), ["echo"]);
    assert_eq!(bash_offers(&store, &["ferry", "rm", "w"]), ["web"]);
    assert_eq!(
        bash_offers(&store, &["ferry", "up", "--profile", ""]),
        ["data", "dev"]
    );
    assert_eq!(
        bash_offers(&store, &["ferry", "profile", "rm", "d"]),
        ["data", "dev"]
    );
    assert_eq!(
        bash_offers(&store, &["ferry", "completions", "f"]),
        ["fish"]
    );

    // A forward added later is offered at the next Tab: the names are the store's now.
    ferry(
        &store,
        &["add", "svc/api", "18082:80", "-n", "demo", "--context", "c"],
    );
    assert_eq!(bash_offers(&store, &["ferry", "enable", "a"]), ["api"]);
}

#[test]
fn every_shell_gets_a_script_that_calls_ferry_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.json");
    for shell in ["bash", "elvish", "fish", "powershell", "zsh"] {
        let script = ferry(&store, &["completions", shell]);
        assert!(
            script.contains("FERRY_COMPLETE"),
            "{shell}'s script does not ask ferry: {script}"
        );
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("ferry runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcsh") && err.contains("zsh"), "{err}");
}

#[test]
fn the_manual_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.json");
    let page = ferry(&store, &["manpage"]);
    assert!(page.contains(".TH ferry 1"), "{page}");
    for sub in [
        "ferry\\-up(1)",
        "ferry\\-status(1)",
        "ferry\\-completions(1)",
    ] {
        assert!(page.contains(sub), "ferry.1 does not list {sub}");
    }

    let pages = dir.path().join("man");
    ferry(
        &store,
        &["manpage", "--out", pages.to_str().expect("utf-8")],
    );
    let up = std::fs::read_to_string(pages.join("ferry-up.1")).expect("ferry-up.1");
    assert!(up.contains(".TH ferry-up 1"), "{up}");
    assert!(up.contains("\\-\\-profile"), "{up}");
    assert!(pages.join("ferry-profile-add.1").exists());
}
