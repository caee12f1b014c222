//! The UI's types are generated from the shell's: `ui/src/lib/generated.ts` must be what
//! `ferry_app::contract::typescript()` writes now.

mod common;

use std::path::PathBuf;

#[test]
fn the_ui_types_are_generated_from_the_shells() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/generated.ts");
    let want = ferry_app::contract::typescript();
    if std::env::var_os("FERRY_WRITE_TYPES").is_some() {
        std::fs::write(&path, &want).expect("write generated.ts");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: the shell's types changed. Rewrite it with\n  FERRY_WRITE_TYPES=1 cargo nextest run -p ferry-app --test contract\nand fix what the UI's type check then finds.",
        path.display()
    );
}

/// The script in `ui/tests/contract/script.json`, run against the real shell on an empty
/// store and a fake cluster: its normalized answers must be `answers.json`, which the UI's
/// fake shell is held to by `ui/tests/fake/contract.test.ts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_shell_answers_the_contract_script() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/tests/contract");
    let script: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("script.json")).expect("script"))
            .expect("script.json is JSON");
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = ferry_fakecluster::FakeCluster::start(ferry_fakecluster::Options::default())
        .await
        .expect("fake cluster");
    fake.wait_pods_ready(std::time::Duration::from_secs(5))
        .await;
    let kubeconfig = tmp.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let core = common::core_in(tmp.path()).await;
    let mut answers = Vec::new();
    for step in script["steps"].as_array().expect("steps") {
        let cmd = step["cmd"].as_str().expect("cmd");
        let exact = step["exact"].as_bool().unwrap_or(false);
        let answer = ferry_app::commands::call_core(&core, cmd, step["args"].clone()).await;
        answers.push(serde_json::json!({
            "cmd": cmd,
            "answer": ferry_app::contract::normalize(&answer, exact),
        }));
    }
    core.shutdown().await;
    let want = format!(
        "{}\n",
        serde_json::to_string_pretty(&answers).expect("answers")
    );
    let path = dir.join("answers.json");
    if std::env::var_os("FERRY_WRITE_TYPES").is_some() {
        std::fs::write(&path, &want).expect("write answers.json");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: the shell answers the script differently now. Rewrite it with\n  FERRY_WRITE_TYPES=1 cargo nextest run -p ferry-app --test contract\nthen make the UI's fake shell answer the same (npm run test:unit).\n--- now:\n{want}",
        path.display()
    );
}

/// The command names `ui/src/lib/backend.ts` calls (`call("name"` or `call<T>("name"`).
fn commands_the_page_calls() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/backend.ts");
    let text = std::fs::read_to_string(&path).expect("backend.ts");
    let mut names: Vec<String> = text
        .match_indices("call")
        .filter_map(|(at, _)| {
            let rest = &text[at + "call".len()..];
            if !(rest.starts_with('(') || rest.starts_with('<')) {
                return None;
            }
            let open = rest.find("(\"")?;
            if rest[..open].contains('\n') {
                return None;
            }
            let name = &rest[open + 2..];
            let name = &name[..name.find('"')?];
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every command the page calls is one the shell runs, and each one the core runs reads
/// its arguments: called with none, it answers or refuses naming an argument — never "no
/// command". (`start_demo` is left out: it would start the demo cluster on its fixed
/// ports; the desktop's commands need the app itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_the_page_calls_is_one_the_shell_runs() {
    use ferry_app::commands::{COMMANDS, DESKTOP_COMMANDS, call_core};
    let called = commands_the_page_calls();
    let mut known: Vec<String> = COMMANDS.iter().map(|c| c.to_string()).collect();
    known.sort();
    assert!(called.len() > 30, "backend.ts calls only {called:?}");
    assert_eq!(called, known, "the page's commands and the shell's differ");

    let tmp = tempfile::tempdir().expect("tempdir");
    let core = common::core_in(tmp.path()).await;
    for cmd in COMMANDS {
        if *cmd == "start_demo" {
            continue;
        }
        let answer = call_core(&core, cmd, serde_json::json!({})).await;
        let unknown = answer
            .as_ref()
            .is_err_and(|e| e.message.contains("has no command"));
        assert_eq!(unknown, DESKTOP_COMMANDS.contains(cmd), "{cmd}: {answer:?}");
        if let Err(e) = &answer
            && !unknown
            && e.code == ferry_app::error::ErrorCode::Invalid
        {
            assert!(
                e.field.is_some(),
                "{cmd}: an invalid call names no field: {e:?}"
            );
        }
    }
    let nonsense = call_core(&core, "drop_tables", serde_json::json!({})).await;
    assert!(nonsense.is_err_and(|e| e.message.contains("has no command `drop_tables`")));
    core.shutdown().await;
}
