//! Real-cluster credentials against the fake cluster: exec plugins found through the login
//! shell, short-lived tokens refreshed without failing connections, and one-sentence errors
//! for broken contexts that never affect the others.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{active, config, echo_once, fake, fwd, wait_for};
use ferry_core::cluster::{ClientPool, ExecOptions, KubeconfigSource};
use ferry_core::config::{PortRef, ProbeKind};
use ferry_core::events::ForwardState;
use ferry_core::{Engine, EngineOptions};
use ferry_fakecluster::FakeCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// A fixture file. The package directory is taken from the test runner's environment
/// when the test runs, so a binary built from another checkout that shares the target
/// directory still finds the fixtures of this one.
fn fixture(rel: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join(rel)
}

fn executable(path: &Path, body: &str) -> anyhow::Result<()> {
    std::fs::write(path, body)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// A directory that is on no PATH but the fake login shell's, holding the plugin.
struct Plugin {
    dir: tempfile::TempDir,
    shell: PathBuf,
    log: PathBuf,
    ca: PathBuf,
}

fn plugin(fake: &FakeCluster) -> anyhow::Result<Plugin> {
    let dir = tempfile::tempdir()?;
    let hidden = dir.path().join("hidden-bin");
    std::fs::create_dir_all(&hidden)?;
    std::fs::copy(
        fixture("tests/fixtures/ferry-test-credential"),
        hidden.join("ferry-test-credential"),
    )?;
    let shell = dir.path().join("login-shell");
    executable(
        &shell,
        &format!(
            "#!/bin/sh\nprintf '%s' '/usr/bin:/bin:{}'\n",
            hidden.display()
        ),
    )?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem())?;
    let log = dir.path().join("plugin.log");
    Ok(Plugin {
        dir,
        shell,
        log,
        ca,
    })
}

fn exec_user(name: &str, command: &str, fake: &FakeCluster, p: &Plugin, extra_env: &str) -> String {
    format!(
        "- name: {name}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {command}\n      interactiveMode: Never\n      env:\n      - {{name: FAKE_URL, value: '{url}'}}\n      - {{name: FAKE_ADMIN_TOKEN, value: '{token}'}}\n      - {{name: FAKE_CA, value: '{ca}'}}\n      - {{name: FAKE_TTL, value: '3'}}\n      - {{name: FAKE_LOG, value: '{log}'}}\n{extra_env}",
        url = fake.url(),
        token = fake.token(),
        ca = p.ca.display(),
        log = p.log.display(),
    )
}

fn kubeconfig(
    path: &Path,
    clusters: &str,
    users: &str,
    contexts: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    let mut text =
        format!("apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n{users}contexts:\n");
    for (name, cluster, user) in contexts {
        text.push_str(&format!(
            "- name: {name}\n  context: {{cluster: {cluster}, user: {user}}}\n"
        ));
    }
    text.push_str(&format!("current-context: {}\n", contexts[0].0));
    std::fs::write(path, text)?;
    Ok(())
}

fn cluster_entry(name: &str, fake: &FakeCluster, ca_pem: &str) -> String {
    use base64::Engine as _;
    format!(
        "- name: {name}\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n",
        fake.url(),
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    )
}

fn options(path: &Path, p: &Plugin, plugin_timeout: Duration) -> EngineOptions {
    EngineOptions {
        kubeconfig: KubeconfigSource::from_paths(vec![path.to_path_buf()]),
        exec: ExecOptions {
            login_shell: Some(p.shell.clone()),
            well_known: Vec::new(),
            plugin_timeout,
            ..ExecOptions::default()
        },
        mdns_interfaces: Default::default(),
        watchdog: Duration::from_secs(10),
        pre_open_tunnels: false,
    }
}

fn runs(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_on_the_login_shells_path_and_short_lived_tokens() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let p = plugin(&f.fake)?;
    let kc = p.dir.path().join("kubeconfig");
    kubeconfig(
        &kc,
        &cluster_entry("fake", &f.fake, f.fake.ca_pem()),
        &exec_user("exec-user", "ferry-test-credential", &f.fake, &p, ""),
        &[("exec", "fake", "exec-user")],
    )?;

    // The pool says which plugin it used and where it found it.
    let pool = ClientPool::with_exec(
        KubeconfigSource::from_paths(vec![kc.clone()]),
        ExecOptions {
            login_shell: Some(p.shell.clone()),
            well_known: Vec::new(),
            ..ExecOptions::default()
        },
    );
    let cc = pool.client(None).await?;
    let used = cc.plugin.clone().unwrap_or_default();
    assert!(
        used.contains("hidden-bin/ferry-test-credential") && used.contains("login shell"),
        "{used}"
    );
    drop(pool);

    let mut solo = fwd("solo", "pod/solo", PortRef::Number(9000));
    solo.context = Some("exec".into());
    solo.health.kind = ProbeKind::None;
    let engine = Engine::start(
        config(vec![solo]),
        options(&kc, &p, Duration::from_secs(10)),
    )?;
    let addr = active(&engine, "solo").await?;
    let runs_before = runs(&p.log);

    // One long transfer across several token lifetimes, and new connections meanwhile.
    let long = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut back = vec![0u8; 4096];
        let started = Instant::now();
        let mut rounds = 0;
        while started.elapsed() < Duration::from_secs(8) {
            let chunk = vec![(rounds % 251) as u8; 4096];
            s.write_all(&chunk).await?;
            timeout(Duration::from_secs(5), s.read_exact(&mut back)).await??;
            anyhow::ensure!(back == chunk, "the long transfer got the wrong bytes");
            rounds += 1;
            sleep(Duration::from_millis(100)).await;
        }
        Ok::<_, anyhow::Error>(rounds)
    };
    let fresh = async {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(8) {
            let msg = format!("connection {n}");
            let got = echo_once(addr, msg.as_bytes()).await?;
            anyhow::ensure!(got == msg.as_bytes(), "connection {n} failed");
            n += 1;
            sleep(Duration::from_millis(400)).await;
        }
        Ok::<_, anyhow::Error>(n)
    };
    let (rounds, connections) = tokio::try_join!(long, fresh)?;
    assert!(
        rounds > 20 && connections > 5,
        "{rounds} rounds, {connections} connections"
    );
    let reran = runs(&p.log) - runs_before;
    assert!(
        reran >= 2,
        "the plugin ran {reran} more times for 3 s tokens over 8 s"
    );
    let s = engine.snapshot().await?;
    let solo = s.get("solo").expect("listed");
    assert_eq!(solo.state, ForwardState::Active);
    let plugin = solo.credential_plugin.clone().unwrap_or_default();
    assert!(
        plugin.contains("ferry-test-credential") && plugin.contains("login shell"),
        "{plugin}"
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_contexts_say_what_to_do_and_never_stop_the_others() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let other = FakeCluster::start(ferry_fakecluster::Options::default()).await?;
    let p = plugin(&f.fake)?;
    let kc = p.dir.path().join("kubeconfig");
    let clusters = format!(
        "{}{}- name: nowhere\n  cluster: {{server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}\n",
        cluster_entry("fake", &f.fake, f.fake.ca_pem()),
        cluster_entry("fake-wrong-ca", &f.fake, other.ca_pem())
    );
    // A user whose client certificate (signed by the cluster's CA) has expired.
    let (cert, key) = f.fake.client_certificate("expired-user", true)?;
    use base64::Engine as _;
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let users = format!(
        "- name: admin\n  user: {{token: {}}}\n- name: nobody\n  user: {{}}\n- name: expired\n  user: {{token: {}, client-certificate-data: {}, client-key-data: {}}}\n{}{}",
        f.fake.token(),
        f.fake.token(),
        b64(&cert),
        b64(&key),
        exec_user("missing-user", "ferry-no-such-plugin", &f.fake, &p, ""),
        exec_user(
            "hanging-user",
            "ferry-test-credential",
            &f.fake,
            &p,
            "      - {name: FAKE_HANG, value: '1'}\n"
        ),
    );
    kubeconfig(
        &kc,
        &clusters,
        &users,
        &[
            ("good", "fake", "admin"),
            ("missing", "fake", "missing-user"),
            ("hanging", "fake", "hanging-user"),
            ("wrong-ca", "fake-wrong-ca", "admin"),
            ("nocreds", "fake", "nobody"),
            ("down", "nowhere", "admin"),
            ("expired-cert", "fake", "expired"),
        ],
    )?;
    let forwards = [
        "good",
        "missing",
        "hanging",
        "wrong-ca",
        "nocreds",
        "down",
        "expired-cert",
    ]
    .iter()
    .map(|ctx| {
        let mut fw = fwd(ctx, "pod/solo", PortRef::Number(9000));
        fw.context = Some(ctx.to_string());
        fw.health.kind = ProbeKind::None;
        fw
    })
    .collect();
    let started = Instant::now();
    let engine = Engine::start(config(forwards), options(&kc, &p, Duration::from_secs(2)))?;
    let good = active(&engine, "good").await?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the hanging plugin did not hold up the good context"
    );
    assert_eq!(echo_once(good, b"unaffected").await?, b"unaffected");

    let missing = wait_for(&engine, "missing", "error", |s| {
        s.state == ForwardState::Error
    })
    .await?;
    let m = missing.error.unwrap_or_default();
    assert!(
        m.starts_with(
            "context `missing`: credential plugin `ferry-no-such-plugin` of user `missing-user`"
        ),
        "{m}"
    );
    assert!(
        m.contains(&kc.display().to_string()) && m.contains("searched") && m.contains("hidden-bin"),
        "{m}"
    );

    let hanging = wait_for(&engine, "hanging", "error", |s| {
        s.state == ForwardState::Error
    })
    .await?;
    let h = hanging.error.unwrap_or_default();
    assert!(
        h.contains("did not answer within 2s")
            && h.contains("kubectl --context hanging get namespaces"),
        "{h}"
    );

    let wrong = wait_for(&engine, "wrong-ca", "reconnecting", |s| s.error.is_some()).await?;
    let w = wrong.error.unwrap_or_default();
    assert!(
        w.starts_with("context `wrong-ca`:")
            && w.contains("not signed by the kubeconfig's certificate authority"),
        "{w}"
    );

    let nocreds = wait_for(&engine, "nocreds", "reconnecting", |s| s.error.is_some()).await?;
    let n = nocreds.error.unwrap_or_default();
    assert!(
        n.starts_with("context `nocreds`:")
            && n.contains("401 Unauthorized")
            && n.contains("log in again"),
        "{n}"
    );

    let expired = wait_for(&engine, "expired-cert", "an error", |s| s.error.is_some()).await?;
    let e = expired.error.unwrap_or_default();
    assert!(
        e.starts_with("context `expired-cert`:")
            && e.contains("certificate has expired")
            && e.contains("renew the client certificate"),
        "{e}"
    );

    assert_eq!(
        echo_once(good, b"still unaffected").await?,
        b"still unaffected"
    );
    engine.shutdown().await;
    drop(other);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refreshed_by_running_the_plugin_again() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let p = plugin(&f.fake)?;
    let kc = p.dir.path().join("kubeconfig");
    // Tokens that live for an hour: kube-rs would not refresh them on its own.
    let users = exec_user("exec-user", "ferry-test-credential", &f.fake, &p, "")
        .replace("value: '3'", "value: '3600'");
    kubeconfig(
        &kc,
        &cluster_entry("fake", &f.fake, f.fake.ca_pem()),
        &users,
        &[("exec", "fake", "exec-user")],
    )?;
    let mut solo = fwd("solo", "pod/solo", PortRef::Number(9000));
    solo.context = Some("exec".into());
    solo.health.kind = ProbeKind::None;
    let engine = Engine::start(
        config(vec![solo]),
        options(&kc, &p, Duration::from_secs(10)),
    )?;
    let addr = active(&engine, "solo").await?;
    let before = runs(&p.log);
    // Revoke every token issued so far by expiring them: issue nothing, just revoke.
    f.fake.tokens().revoke_all();
    // The next connection hits a 401, the forward refreshes its credentials and retries.
    let got = timeout(Duration::from_secs(20), echo_once(addr, b"after revoke")).await??;
    assert_eq!(got, b"after revoke");
    assert!(runs(&p.log) > before, "the plugin ran again after the 401");
    engine.shutdown().await;
    Ok(())
}
