//! Signed updates against a release server on loopback, in a mock app (no display) with
//! the updater plugin: a key pair made by the Tauri CLI for the test, a `latest.json` and
//! an artifact signed with it.

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferry_app::error::ErrorCode;
use ferry_app::update::{Checked, Updates};
use serde_json::json;
use tauri::Url;
use tauri::test::{MockRuntime, mock_builder, mock_context, noop_assets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The running version in the mock app.
const CURRENT: &str = "1.4.0";

/// The Tauri CLI that `scripts/setup` installs in ui/ (`npm ci`).
fn tauri_cli() -> PathBuf {
    let cli = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/node_modules/.bin/tauri");
    assert!(
        cli.exists(),
        "{} is missing: run scripts/setup (npm ci in ui/)",
        cli.display()
    );
    cli
}

/// Runs `tauri signer ARGS FILES`, which must succeed.
fn signer(args: &[&str], files: &[&Path]) {
    let out = Command::new(tauri_cli())
        .arg("signer")
        .args(args)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key pair made by the Tauri CLI, as the release workflow's is: (private key file,
/// public key).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    signer(&["generate", "--ci", "-p", "", "-w"], &[&key]);
    let public = std::fs::read_to_string(key.with_extension("key.pub").as_path())
        .or_else(|_| std::fs::read_to_string(format!("{}.pub", key.display())))
        .unwrap();
    (key, public.trim().to_string())
}

/// The signature the CLI writes for `file` with `key` (the `.sig` file's text).
fn sign(key: &Path, file: &Path) -> String {
    signer(&["sign", "-p", "", "-f"], &[key, file]);
    std::fs::read_to_string(format!("{}.sig", file.display()))
        .unwrap()
        .trim()
        .to_string()
}

/// A release server on `127.0.0.1:0`: `/latest.json` and `/ferry.tar.gz`.
struct Server {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `manifest` gets the artifact's address.
    async fn start(manifest: impl FnOnce(Url) -> serde_json::Value, artifact: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let manifest = manifest(format!("http://{addr}/ferry.tar.gz").parse().unwrap());
        let manifest = Arc::new(manifest.to_string().into_bytes());
        let artifact = Arc::new(artifact);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (manifest, artifact) = (manifest.clone(), artifact.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&request);
                    let (status, kind, body): (&str, &str, &[u8]) =
                        if line.starts_with("GET /latest.json") {
                            ("200 OK", "application/json", &manifest)
                        } else if line.starts_with("GET /ferry.tar.gz") {
                            ("200 OK", "application/octet-stream", &artifact)
                        } else {
                            ("404 Not Found", "text/plain", b"not here")
                        };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Server { addr, task }
    }

    fn url(&self, path: &str) -> Url {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A mock app running [`CURRENT`], trusting `pubkey`, with plain HTTP allowed (the server
/// is on loopback).
fn app(pubkey: &str) -> tauri::App<MockRuntime> {
    let mut context = mock_context(noop_assets());
    context.package_info_mut().version = CURRENT.parse().unwrap();
    context.config_mut().plugins.0.insert(
        "updater".into(),
        json!({
            "pubkey": pubkey,
            "endpoints": ["https://example.invalid/latest.json"],
            "dangerousInsecureTransportProtocol": true,
        }),
    );
    mock_builder()
        .plugin(tauri_plugin_updater::Builder::new().build())
        .build(context)
        .unwrap()
}

fn manifest(version: &str, url: &Url, signature: &str) -> serde_json::Value {
    json!({
        "version": version,
        "notes": "Faster reconnects.",
        "pub_date": "2026-12-01T10:00:00Z",
        "platforms": {
            "linux-x86_64": {"url": url, "signature": signature},
            "linux-aarch64": {"url": url, "signature": signature},
            "darwin-x86_64": {"url": url, "signature": signature},
            "darwin-aarch64": {"url": url, "signature": signature},
            "windows-x86_64": {"url": url, "signature": signature},
        }
    })
}

struct Release {
    _dir: tempfile::TempDir,
    key: PathBuf,
    pubkey: String,
    artifact: Vec<u8>,
    signature: String,
}

fn release() -> Release {
    let dir = tempfile::tempdir().unwrap();
    let (key, pubkey) = key_pair(dir.path(), "release.key");
    let file = dir.path().join("ferry.tar.gz");
    let artifact = b"not really an archive: the signature is what is checked".to_vec();
    std::fs::write(&file, &artifact).unwrap();
    let signature = sign(&key, &file);
    Release {
        _dir: dir,
        key,
        pubkey,
        artifact,
        signature,
    }
}

/// Serves `version` of `artifact` signed with `signature` and checks from a mock app
/// trusting `pubkey`.
async fn serve_and_check(
    version: &str,
    artifact: Vec<u8>,
    signature: &str,
    pubkey: &str,
) -> (Server, Updates, tauri::App<MockRuntime>, Checked) {
    let server = Server::start(|url| manifest(version, &url, signature), artifact).await;
    let app = app(pubkey);
    let updates = Updates::with_endpoints(vec![server.url("/latest.json")]);
    let checked = updates.check(app.handle()).await.unwrap();
    (server, updates, app, checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_signed_release_is_offered_with_its_notes() {
    let r = release();
    let (_server, updates, _app, checked) =
        serve_and_check("1.5.0", r.artifact.clone(), &r.signature, &r.pubkey).await;
    let Checked::Offered(info) = checked else {
        panic!("not offered: {checked:?}")
    };
    assert_eq!(info.version, "1.5.0");
    assert_eq!(info.current_version, CURRENT);
    assert_eq!(info.notes.as_deref(), Some("Faster reconnects."));
    assert_eq!(info.date.as_deref(), Some("2026-12-01T10:00:00Z"));
    assert_eq!(updates.offered(), Some(info));
    // Its artifact comes down and its signature holds (what an install does first).
    let bytes = updates.download_offered().await.unwrap();
    assert_eq!(bytes, r.artifact);
    // Forwards up: the install asks first, before any download.
    let e = updates
        .install(&["echo".into(), "db".into()], false)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(e.field.as_deref(), Some("confirm_cut"));
    assert!(e.message.contains("echo, db"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_or_equal_release_is_not_offered() {
    let r = release();
    for version in [CURRENT, "1.3.9", "0.9.0"] {
        let (_server, updates, _app, checked) =
            serve_and_check(version, r.artifact.clone(), &r.signature, &r.pubkey).await;
        assert_eq!(checked, Checked::Current, "{version}");
        assert_eq!(updates.offered(), None);
        let e = updates.install(&[], true).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_is_refused_at_download() {
    let r = release();
    // Signed with another key than the app's.
    let other = tempfile::tempdir().unwrap();
    let (other_key, _) = key_pair(other.path(), "other.key");
    let file = other.path().join("ferry.tar.gz");
    std::fs::write(&file, &r.artifact).unwrap();
    let foreign = sign(&other_key, &file);
    // The right key, but over other bytes than the ones served.
    let tampered = {
        let mut bytes = r.artifact.clone();
        bytes.push(b'!');
        bytes
    };
    let cases = [
        ("another key's signature", r.artifact.clone(), foreign),
        ("a tampered artifact", tampered, r.signature.clone()),
        (
            "a signature that is not one",
            r.artifact.clone(),
            "bm90IGEgc2lnbmF0dXJl".into(),
        ),
    ];
    for (case, artifact, signature) in cases {
        let (_server, updates, _app, checked) =
            serve_and_check("2.0.0", artifact, &signature, &r.pubkey).await;
        assert!(
            matches!(checked, Checked::Offered(_)),
            "{case}: {checked:?}"
        );
        let e = updates.download_offered().await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid, "{case}: {e}");
        let e = updates.install(&[], false).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid, "{case}: {e}");
        assert!(
            e.message
                .contains("was not installed: its signature does not match Ferry's key"),
            "{case}: {e}"
        );
    }
    let _ = r.key;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_a_quiet_retry() {
    let r = release();
    // A port nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let app = app(&r.pubkey);
    let updates = Updates::with_endpoints(vec![
        format!("http://127.0.0.1:{port}/latest.json")
            .parse()
            .unwrap(),
    ]);
    let checked = updates.check(app.handle()).await.unwrap();
    assert_eq!(checked, Checked::Unreachable);
    assert_eq!(checked.next_check(), ferry_app::update::RETRY_AFTER);
    // A server without a release (404) is the same.
    let server = Server::start(|_| json!({}), Vec::new()).await;
    let updates = Updates::with_endpoints(vec![server.url("/nothing.json")]);
    assert_eq!(
        updates.check(app.handle()).await.unwrap(),
        Checked::Unreachable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_offers_what_it_finds_and_ends_when_stopped() {
    use tauri::Listener as _;
    let r = release();
    let (server, _, app, _) =
        serve_and_check("1.5.0", r.artifact.clone(), &r.signature, &r.pubkey).await;
    let updates = Arc::new(Updates::with_endpoints(vec![server.url("/latest.json")]));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    app.listen(ferry_app::update::UPDATE_EVENT, move |event| {
        let _ = tx.send(event.payload().to_string());
    });
    updates.schedule(app.handle().clone(), Duration::from_millis(10), || true);
    let payload = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("offered")
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(info["version"], "1.5.0");
    updates.stop();

    // Turned off: nothing is looked for.
    let updates = Arc::new(Updates::with_endpoints(vec![server.url("/latest.json")]));
    updates.schedule(app.handle().clone(), Duration::from_millis(10), || false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(updates.offered(), None);
    updates.stop();
}
