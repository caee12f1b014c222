//! The UI's types are generated from the shell's: `ui/src/lib/generated.ts` must be what
//! `ferry_app::contract::typescript()` writes now.

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
    let core = ferry_app::app::AppCore::start(ferry_app::app::AppOptions {
        store: Some(tmp.path().join("store.json")),
        data_dir: tmp.path().join("data"),
        config_dir: tmp.path().join("config"),
        demo: false,
        kubeconfig: Some(ferry_core::cluster::KubeconfigSource::from_paths(vec![
            kubeconfig,
        ])),
    })
    .await
    .expect("core");
    let mut answers = Vec::new();
    for step in script["steps"].as_array().expect("steps") {
        let cmd = step["cmd"].as_str().expect("cmd");
        let exact = step["exact"].as_bool().unwrap_or(false);
        let answer = ferry_app::contract::call(&core, cmd, step["args"].clone()).await;
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
