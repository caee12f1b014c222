//! Every parser a user or a cluster can feed, under arbitrary and truncated input: the
//! config (YAML and JSON), the importers (kubectl lines, kftray JSON, kportal YAML, format
//! detection), the shared store, kubeconfig files and the fake cluster's scenarios. Each
//! answers with a value or an error that says something, and never panics.

use std::io::Write;

use ferry_core::cluster::{ClientPool, KubeconfigSource};
use ferry_core::config::{Config, import};
use ferry_core::store::Store;
use proptest::prelude::*;

const CONFIG_YAML: &str = "version: 1
forwards:
  - name: echo
    context: kind
    namespace: demo
    target: service/echo
    port: 80
    local_port: 18080
    health: {kind: tunnel, interval: 5s}
  - name: db
    target: statefulset/db
    port: pg
    local_port: 15432
profiles:
  - name: backend
    forwards: [echo, db]
";

const KFTRAY_JSON: &str = r#"[{"service":"echo","namespace":"demo","local_port":18080,"remote_port":80,"context":"kind","workload_type":"service","protocol":"tcp","alias":"echo"},{"service":"db","namespace":"demo","local_port":15432,"remote_port":5432,"context":"kind","workload_type":"pod","target":"app=db"}]"#;

const KPORTAL_YAML: &str = "contexts:
  - name: kind
    namespaces:
      - name: demo
        forwards:
          - resource: service/echo
            port: 80
            localPort: 18080
";

const KUBECTL_LINES: &str = "kubectl port-forward -n demo svc/echo 18080:80 --context kind
kubectl -n demo port-forward deployment/web 8080:http
";

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
current-context: kind
clusters:
  - name: kind
    cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}
users:
  - name: kind
    user: {token: abc}
contexts:
  - name: kind
    context: {cluster: kind, user: kind, namespace: demo}
";

const SCENARIO: &str = "timing: {recreate_delay_ms: 300, ready_delay_ms: 500}
namespaces:
  - name: demo
    deployments:
      - name: echo
        replicas: 2
        labels: {app: echo}
        ports: [{name: echo, port: 9000, behavior: echo}]
    services:
      - name: echo
        selector: {app: echo}
        ports: [{port: 80, target_port: echo}]
";

/// Every prefix of `text` that ends on a character boundary.
fn prefixes(text: &str) -> impl Iterator<Item = &str> {
    (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .map(move |i| &text[..i])
}

/// Text that is mostly YAML/JSON punctuation, keys Ferry knows and odd characters, so the
/// parsers get past their first byte more often than with uniform noise.
fn junk() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("version: 1\n".to_string()),
        Just("forwards:\n".to_string()),
        Just("  - name: a\n".to_string()),
        Just("    target: svc/x\n".to_string()),
        Just("    port: 80\n".to_string()),
        Just("    local_port: 99999\n".to_string()),
        Just("{\"forwards\": [".to_string()),
        Just("]}".to_string()),
        Just("kubectl port-forward ".to_string()),
        Just("-n ".to_string()),
        Just(":".to_string()),
        Just("&a *a ".to_string()),
        Just("!!binary ".to_string()),
        Just("\u{0}\u{feff}é\u{10ffff}".to_string()),
        "[ -~]{0,12}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn some_words<E: std::fmt::Display>(r: Result<impl Sized, E>) {
    if let Err(e) = r {
        assert!(!e.to_string().trim().is_empty(), "an error says something");
    }
}

/// Every importer and the format detection, on one text.
fn import_all(text: &str) {
    some_words(import::kubectl_lines(text));
    some_words(import::kftray_json(text));
    some_words(import::kportal_yaml(text));
    for name in [None, Some("x.json"), Some("x.yaml"), Some("x.txt")] {
        let format = import::detect(text, name);
        some_words(import::read(text, format));
    }
}

#[test]
fn the_samples_are_valid() {
    Config::from_yaml(CONFIG_YAML).expect("the sample config loads");
    import::kftray_json(KFTRAY_JSON).expect("the kftray sample imports");
    import::kportal_yaml(KPORTAL_YAML).expect("the kportal sample imports");
    import::kubectl_lines(KUBECTL_LINES).expect("the kubectl sample imports");
    ferry_fakecluster::scenario::Scenario::from_yaml(SCENARIO).expect("the scenario loads");
}

/// A truncated config is refused with a message that names where (a line or a field).
#[test]
fn truncated_configs_are_refused_naming_the_place() {
    let json = Config::from_yaml(CONFIG_YAML)
        .and_then(|c| c.to_json())
        .expect("as JSON");
    for cut in prefixes(CONFIG_YAML) {
        if let Err(e) = Config::from_yaml(cut) {
            let m = e.to_string();
            assert!(!m.trim().is_empty(), "{cut:?}");
        }
    }
    for cut in prefixes(&json) {
        if let Err(e) = Config::from_json(cut) {
            let m = e.to_string();
            assert!(
                m.contains("line")
                    || m.contains("column")
                    || m.contains("forwards")
                    || m.contains("version"),
                "a truncated JSON config's error names the place: {m} (for {cut:?})"
            );
        }
    }
}

#[test]
fn truncated_imports_never_panic() {
    for sample in [KFTRAY_JSON, KPORTAL_YAML, KUBECTL_LINES, CONFIG_YAML] {
        for cut in prefixes(sample) {
            import_all(cut);
        }
    }
}

#[test]
fn truncated_scenarios_never_panic() {
    for cut in prefixes(SCENARIO) {
        some_words(ferry_fakecluster::scenario::Scenario::from_yaml(cut));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_config_text_loads_or_is_refused(text in junk()) {
        some_words(Config::from_yaml(&text));
        some_words(Config::from_json(&text));
    }

    #[test]
    fn any_text_imports_or_is_refused(text in junk()) {
        import_all(&text);
    }

    #[test]
    fn any_scenario_text_loads_or_is_refused(text in junk()) {
        some_words(ferry_fakecluster::scenario::Scenario::from_yaml(&text));
    }

    /// The store reads whatever is on disk: a value, or an error; never a panic.
    #[test]
    fn any_store_file_loads_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600), text in junk()) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for content in [bytes.as_slice(), text.as_bytes()] {
            let path = dir.path().join("store.json");
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(content))
                .expect("written");
            some_words(Store::new(&path).load());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A kubeconfig file cut anywhere, or replaced by junk: asking for a client is an
    /// error that says something (or a client), never a panic.
    #[test]
    fn any_kubeconfig_builds_a_client_or_says_why(cut in 0..KUBECONFIG.len(), text in junk()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cut = (0..=cut).rev().find(|&i| KUBECONFIG.is_char_boundary(i)).unwrap_or(0);
        for content in [&KUBECONFIG[..cut], text.as_str()] {
            let path = dir.path().join("config");
            std::fs::write(&path, content).expect("written");
            let pool = ClientPool::new(KubeconfigSource::from_paths(vec![path]));
            runtime.block_on(async {
                some_words(pool.client(None).await);
                some_words(pool.client(Some("kind")).await);
            });
        }
    }
}
