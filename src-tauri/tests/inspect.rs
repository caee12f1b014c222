//! The HTTP inspector through the app's command layer, against the fake cluster's `web`
//! deployment (port 8080, an HTTP server: `/`, `/status/CODE`, a POST echoes its body): inspection
//! turned on and changed through `save_forward` (with its field errors), requests through
//! the forward's local port seen in `inspect_exchanges`, by the follower in batches and
//! through the control endpoint (what `ferry inspect web --follow` reads), one replayed,
//! copied as curl, exported as HAR 1.2, cleared, and inspection turned off.

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_app::app::AppCore;
use ferry_app::error::ErrorCode;
use ferry_app::inspect::ExchangeBatch;
use ferry_core::config::{Forward, Inspect, PortRef, Target};
use ferry_fakecluster::{FakeCluster, Options};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

mod common;

use common::core_in as core;

fn web(inspect: Option<Inspect>) -> Forward {
    let mut f = Forward::new(
        "web",
        "deployment/web".parse::<Target>().unwrap(),
        PortRef::Number(8080),
        0,
    );
    f.context = Some("ferry-fake".into());
    f.namespace = Some("demo".into());
    f.inspect = inspect;
    f
}

/// Where the forward listens, once it does.
async fn listening(core: &AppCore, name: &str) -> SocketAddr {
    for _ in 0..100 {
        let snapshot = core.snapshot().await;
        if let Some(s) = snapshot.get(name)
            && let Some(local) = s.local
            && s.pod.is_some()
        {
            return local;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never listened");
}

/// One request on its own connection (`Connection: close`); the whole answer.
async fn request(at: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: web\r\nAuthorization: Bearer secret\r\nX-Api-Key: k\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The `ferry` binary built beside this test (`target/debug/ferry`), when there is one:
/// `cargo build -p ferry-cli` makes it; this crate does not depend on the CLI.
fn ferry_cli() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("ferry");
    bin.is_file().then_some(bin)
}

/// `ferry inspect NAME --follow --json -c STORE`, its JSON lines sent on as they come.
struct CliFollow {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl CliFollow {
    fn start(bin: &std::path::Path, store: &std::path::Path, name: &str) -> CliFollow {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(bin)
            .args(["inspect", name, "--follow", "--json", "-c"])
            .arg(store)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        CliFollow { child, lines }
    }

    fn next(&self) -> Option<serde_json::Value> {
        let line = self.lines.recv_timeout(Duration::from_secs(10)).ok()?;
        Some(serde_json::from_str(&line).unwrap())
    }
}

impl Drop for CliFollow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `inspect_exchanges` holds `n` exchanges.
async fn kept(core: &AppCore, n: usize) -> ferry_app::inspect::Exchanges {
    for _ in 0..100 {
        let got = core.inspect_exchanges("web").await.unwrap();
        if got.exchanges.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} exchanges kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_tab_sees_follows_replays_and_exports_the_forwards_requests() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeCluster::start(Options::default()).await.unwrap();
    fake.wait_pods_ready(Duration::from_secs(5)).await;
    fake.write_kubeconfig(&dir.path().join("kubeconfig"))
        .unwrap();
    let core = core(dir.path()).await;

    // Off: asking for exchanges says how to turn it on, on the `inspect` field.
    core.save_forward(None, web(None)).await.unwrap();
    let at = listening(&core, "web").await;
    let off = core.inspect_exchanges("web").await.unwrap_err();
    assert_eq!(
        (off.code, off.field.as_deref()),
        (ErrorCode::Invalid, Some("inspect"))
    );
    let none = core.inspect_exchanges("nope").await.unwrap_err();
    assert_eq!(none.code, ErrorCode::NotFound);

    // On through the save path; a value the config refuses is an error on its field.
    let too_much = Inspect {
        body_kib: 5000,
        redact: vec![],
    };
    let e = core
        .save_forward(Some("web"), web(Some(too_much)))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("inspect.body_kib"))
    );
    let bad_header = Inspect {
        body_kib: 4,
        redact: vec!["not a header".into()],
    };
    let e = core
        .save_forward(Some("web"), web(Some(bad_header)))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("inspect.redact[0]"))
    );
    let spec = Inspect {
        body_kib: 4,
        redact: vec!["x-api-key".into()],
    };
    core.save_forward(Some("web"), web(Some(spec.clone())))
        .await
        .unwrap();
    // Not restarted: same local address.
    assert_eq!(listening(&core, "web").await, at);
    assert!(kept(&core, 0).await.exchanges.is_empty());

    // Through the control endpoint, as `ferry inspect web --follow` reads it.
    let source = ferry_core::control::source_name(Some(&dir.path().join("store.json")));
    let client =
        ferry_core::control::ControlClient::connect(&ferry_core::control::endpoint_path(&source))
            .await
            .unwrap()
            .expect("the app serves the control endpoint");
    let (_, mut endpoint) = client.inspect("web").await.unwrap();
    // And the CLI itself, when it has been built.
    let cli = ferry_cli().map(|bin| CliFollow::start(&bin, &dir.path().join("store.json"), "web"));
    if cli.is_none() {
        eprintln!(
            "no target/debug/ferry: `ferry inspect --follow` is checked through its client only"
        );
    }

    // The window's follower, in batches.
    let (tx, mut batches) = mpsc::unbounded_channel::<ExchangeBatch>();
    let first = core
        .follow_exchanges(
            "web",
            Arc::new(move |b| {
                let _ = tx.send(b);
            }),
        )
        .await
        .unwrap();
    assert!(first.exchanges.is_empty());
    assert_eq!(core.following().as_deref(), Some("web"));

    let answer = request(at, "GET", "/", "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = request(at, "POST", "/echo?x=1", r#"{"hello":"ferry"}"#).await;
    assert!(answer.contains(r#"{"hello":"ferry"}"#), "{answer}");
    let answer = request(at, "GET", "/status/404", "").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    let got = kept(&core, 3).await;
    assert_eq!(got.passthrough, None);
    let [get, post, missing] = &got.exchanges[..] else {
        panic!("{:?}", got.exchanges)
    };
    assert_eq!((get.method.as_str(), get.status), ("GET", Some(200)));
    assert_eq!(post.target, "/echo?x=1");
    assert_eq!(post.request.body, br#"{"hello":"ferry"}"#);
    assert_eq!(missing.status, Some(404));
    // Secrets are redacted: the four always, and the forward's own list.
    for name in ["authorization", "x-api-key"] {
        let h = post
            .request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .unwrap();
        assert!(h.redacted, "{name} kept");
    }

    // The UI's declaration of an exchange has the keys the shell sends.
    let json = serde_json::to_value(post).unwrap();
    let declared = ferry_app::contract::EXCHANGE_TS;
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    for key in keys(&json)
        .into_iter()
        .chain(keys(&json["request"]))
        .chain(keys(&json["timings"]))
        .chain(keys(&json["request"]["headers"][0]))
    {
        assert!(
            declared.contains(&format!(" {key}")),
            "{key} is not declared"
        );
    }

    // The follower's events: the three, in a batch or a few (never one each per event
    // for a burst), none missed, not ended.
    let mut followed = Vec::new();
    while followed.len() < 3 {
        let b = tokio::time::timeout(Duration::from_secs(5), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b.forward.as_str(), b.missed, b.ended), ("web", 0, false));
        followed.extend(b.exchanges.into_iter().map(|e| e.id));
    }
    assert_eq!(followed, vec![get.id, post.id, missing.id]);

    // And the endpoint's follower.
    for want in [get.id, post.id, missing.id] {
        match tokio::time::timeout(Duration::from_secs(5), endpoint.next())
            .await
            .unwrap()
        {
            Some(ferry_core::control::Exchanged::Exchange(e)) => assert_eq!(e.id, want),
            other => panic!("{other:?}"),
        }
    }

    // `ferry inspect web --follow --json` printed the same three, one JSON line each.
    if let Some(cli) = &cli {
        for want in ["/", "/echo?x=1", "/status/404"] {
            let line =
                tokio::task::block_in_place(|| cli.next()).expect("a line from ferry inspect");
            assert_eq!(line["target"], want, "{line}");
        }
    }

    // A burst: 200 requests reach the window in a few events.
    let mut burst = Vec::new();
    for _ in 0..200 {
        burst.push(tokio::spawn(request(at, "GET", "/healthz", "")));
    }
    for r in burst {
        r.await.unwrap();
    }
    let mut events = 0;
    let mut seen = 0;
    while seen < 200 {
        let b = tokio::time::timeout(Duration::from_secs(5), batches.recv())
            .await
            .unwrap()
            .unwrap();
        events += 1;
        seen += b.exchanges.len() as u64 + b.missed;
    }
    assert!(events <= 20, "{events} events for 200 exchanges");

    // Replay: the same request again through the forward, answered, and recorded.
    let replayed = core.replay_exchange("web", post.id).await.unwrap().exchange;
    assert_eq!(replayed.status, Some(200));
    let body = replayed.response.as_ref().unwrap();
    assert_eq!(body.body, br#"{"hello":"ferry"}"#);
    let after = kept(&core, 204).await;
    assert_eq!(after.exchanges.last().unwrap().target, "/echo?x=1");
    let unknown = core.replay_exchange("web", 999_999).await.unwrap_err();
    assert_eq!(
        (unknown.code, unknown.field.as_deref()),
        (ErrorCode::NotFound, Some("id"))
    );

    // curl through the local address, with no secret in it.
    let curl = core.exchange_curl("web", post.id).await.unwrap();
    assert!(
        curl.contains(&format!("http://127.0.0.1:{}/echo?x=1", at.port())),
        "{curl}"
    );
    assert!(curl.contains("--data-binary"), "{curl}");
    assert!(!curl.contains("secret"), "{curl}");

    // HAR 1.2: the required fields of log, entry, request, response, timings.
    let har = core
        .export_har("web", Some(&[get.id, post.id]))
        .await
        .unwrap();
    assert_eq!(har.entries, 2);
    assert!(har.file_name.starts_with("ferry-web-") && har.file_name.ends_with(".har"));
    let doc: serde_json::Value = serde_json::from_str(&har.text).unwrap();
    let log = &doc["log"];
    assert_eq!(log["version"], "1.2");
    assert_eq!(log["creator"]["name"], "Ferry");
    assert!(log["creator"]["version"].is_string());
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        assert!(entry["startedDateTime"].is_string());
        assert!(entry["time"].is_number());
        for key in [
            "method",
            "url",
            "httpVersion",
            "cookies",
            "headers",
            "queryString",
            "headersSize",
            "bodySize",
        ] {
            assert!(!entry["request"][key].is_null(), "request.{key}");
        }
        for key in [
            "status",
            "statusText",
            "httpVersion",
            "cookies",
            "headers",
            "content",
            "redirectURL",
            "headersSize",
            "bodySize",
        ] {
            assert!(!entry["response"][key].is_null(), "response.{key}");
        }
        assert!(entry["response"]["content"]["size"].is_number());
        assert!(entry["response"]["content"]["mimeType"].is_string());
        assert!(entry["cache"].is_object());
        for key in ["send", "wait", "receive"] {
            assert!(entry["timings"][key].is_number(), "timings.{key}");
        }
    }
    assert_eq!(
        entries[1]["request"]["url"],
        format!("http://127.0.0.1:{}/echo?x=1", at.port())
    );
    assert_eq!(core.export_har("web", None).await.unwrap().entries, 204);

    // Clear.
    core.clear_exchanges("web").await.unwrap();
    assert!(
        core.inspect_exchanges("web")
            .await
            .unwrap()
            .exchanges
            .is_empty()
    );

    // Off: the follower hears that the inspection ended, and ends; so does the
    // endpoint's.
    core.save_forward(Some("web"), web(None)).await.unwrap();
    let ended = loop {
        let b = tokio::time::timeout(Duration::from_secs(5), batches.recv())
            .await
            .unwrap()
            .unwrap();
        if b.ended {
            break b;
        }
    };
    assert_eq!(ended.forward, "web");
    let mut endpoint_ended = false;
    for _ in 0..300 {
        match tokio::time::timeout(Duration::from_secs(5), endpoint.next())
            .await
            .unwrap()
        {
            None => {
                endpoint_ended = true;
                break;
            }
            Some(_) => continue,
        }
    }
    assert!(endpoint_ended);
    if let Some(mut cli) = cli {
        // The CLI's follower ends too, and the command exits.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = cli.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ferry inspect did not end"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");
    }
    let off = core.inspect_exchanges("web").await.unwrap_err();
    assert_eq!(off.field.as_deref(), Some("inspect"));
    assert_eq!(listening(&core, "web").await, at);

    core.unfollow_exchanges();
    assert_eq!(core.following(), None);
    core.shutdown().await;
}
