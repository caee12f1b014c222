//! Ferry's end-to-end scenarios against an API server whose pods run on a node played by
//! `ferry_fakecluster::node`:
//!
//! - `real_apiserver_*`: a real `kube-apiserver` (with etcd), whose binary
//!   `FERRY_REAL_APISERVER` names (etcd: `FERRY_ETCD`, else `etcd` on PATH). They are
//!   `#[ignore]`d, so the runner reports them as skipped; run them with
//!   `FERRY_REAL_APISERVER=/path/to/kube-apiserver cargo nextest run -p ferry-e2e --test
//!   real_apiserver --run-ignored only`. Run that way without the variable they fail.
//!   See docs/real-apiserver.md.
//! - `fake_apiserver_*`: the same scenarios against the fake API server, which proxies
//!   port-forwards to the node's kubelet endpoint as a real one does. These always run.
//!
//! Scenarios: `kubectl port-forward` echo round trips (kubectl's default, which tries SPDY
//! over a WebSocket first, and plain SPDY), kube-rs's WebSocket port-forward, and a Ferry
//! engine forward to `svc/echo` that carries bytes and heals after its pod is deleted.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use ferry_core::cluster::KubeconfigSource;
use ferry_core::config::{Config, Forward, PortRef, Target};
use ferry_core::events::ForwardState;
use ferry_core::{Engine, EngineOptions};
use ferry_fakecluster::node::{Node, NodeOptions, client_from_kubeconfig};
use ferry_fakecluster::{FakeCluster, Options, Scenario};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

// === the API servers ===

/// An API server with a node, and a kubeconfig for it.
struct Cluster {
    kubeconfig: PathBuf,
    client: kube::Client,
    node: Option<Node>,
    /// Keeps the fake API server (or the real one's processes) alive.
    server: Box<dyn std::any::Any>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// The fake API server with nothing in it, filled by the node.
    async fn fake() -> anyhow::Result<Self> {
        let empty = Scenario::from_yaml("namespaces: []")?;
        let fake = FakeCluster::start(Options::default().scenario(empty)).await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig)?;
        Self::with_node(kubeconfig, Box::new(fake), dir).await
    }

    /// A real kube-apiserver, whose binary `FERRY_REAL_APISERVER` names.
    async fn real() -> anyhow::Result<Self> {
        let Some(apiserver) = std::env::var_os("FERRY_REAL_APISERVER") else {
            bail!(
                "FERRY_REAL_APISERVER is not set: name a kube-apiserver binary (see docs/real-apiserver.md)"
            );
        };
        let dir = tempfile::tempdir()?;
        let plane = ControlPlane::start(Path::new(&apiserver), dir.path()).await?;
        let kubeconfig = plane.kubeconfig.clone();
        Self::with_node(kubeconfig, Box::new(plane), dir).await
    }

    async fn with_node(
        kubeconfig: PathBuf,
        server: Box<dyn std::any::Any>,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let client = client_from_kubeconfig(&kubeconfig).await?;
        let node = Node::start(client.clone(), NodeOptions::default())
            .await
            .context("starting the node")?;
        let cluster = Self {
            kubeconfig,
            client,
            node: Some(node),
            server,
            _dir: dir,
        };
        // The demo scenario: solo, db-0, two echo pods and one web pod.
        cluster.wait_ready(5).await?;
        Ok(cluster)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "demo")
    }

    /// Waits until `n` demo pods are Running and Ready; returns their names.
    async fn wait_ready(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pods = self.pods().list(&ListParams::default()).await?;
            let ready: Vec<String> = pods
                .items
                .iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().is_some_and(|s| {
                            s.phase.as_deref() == Some("Running")
                                && s.conditions.as_ref().is_some_and(|c| {
                                    c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                                })
                        })
                })
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            if ready.len() == n {
                return Ok(ready);
            }
            ensure!(
                Instant::now() < deadline,
                "{} of {n} pods ready: {ready:?}",
                ready.len()
            );
            sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }
}

// === a real control plane: etcd and kube-apiserver on loopback ===

struct ControlPlane {
    etcd: Child,
    apiserver: Child,
    kubeconfig: PathBuf,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A CA, a serving certificate it signed for loopback, and a service-account key pair.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    /// The service-account signing key (ECDSA P-256, PKCS#8), for
    /// `--service-account-signing-key-file`.
    sa_key_pem: String,
    /// Its public half (PKIX), for `--service-account-key-file`: kube-apiserver reads
    /// public keys, certificates or PKCS#1/SEC1 private keys there, not PKCS#8.
    sa_pub_pem: String,
}

fn pki() -> anyhow::Result<Pki> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        SanType,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "ferry-e2e-ca");
    ca_params.distinguished_name = name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
    ])?;
    for ip in ["127.0.0.1", "10.0.0.1"] {
        leaf.subject_alt_names.push(SanType::IpAddress(ip.parse()?));
    }
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "kube-apiserver");
    leaf.distinguished_name = name;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let sa_key = KeyPair::generate()?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
        sa_key_pem: sa_key.serialize_pem(),
        sa_pub_pem: sa_key.public_key_pem(),
    })
}

/// kube-apiserver's flags for a harness directory holding the files `ControlPlane::start`
/// writes (checked against kube-apiserver's flag reference for 1.33–1.36).
fn apiserver_args(dir: &Path, etcd_url: &str, secure_port: u16) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={secure_port}"),
        format!("--cert-dir={}", path("certs")),
        format!("--tls-cert-file={}", path("apiserver.crt")),
        format!("--tls-private-key-file={}", path("apiserver.key")),
        format!("--token-auth-file={}", path("tokens.csv")),
        "--authorization-mode=AlwaysAllow".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        // Verifying keys: public keys (PKIX), certificates, or PKCS#1/SEC1 private keys.
        format!("--service-account-key-file={}", path("sa.pub")),
        // The signing key: a private key, PKCS#8 accepted.
        format!("--service-account-signing-key-file={}", path("sa.key")),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
    ]
}

impl ControlPlane {
    async fn start(apiserver_bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let etcd_bin = std::env::var_os("FERRY_ETCD").unwrap_or_else(|| "etcd".into());
        let (client_port, peer_port, secure_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = |name: &str| -> anyhow::Result<Stdio> {
            Ok(Stdio::from(std::fs::File::create(dir.join(name))?))
        };
        let mut etcd = Command::new(&etcd_bin);
        etcd.arg("--name=default")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .stdout(log("etcd.log")?)
            .stderr(log("etcd.err")?);
        if cfg!(target_arch = "aarch64") {
            // etcd 3.4 refuses arm64 unless told.
            etcd.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        let etcd = etcd.spawn().with_context(|| {
            format!(
                "starting etcd ({}); install Debian's etcd-server or set FERRY_ETCD",
                etcd_bin.to_string_lossy()
            )
        })?;

        let pki = pki()?;
        let token = "ferry-e2e-admin-token";
        let files = [
            ("ca.crt", pki.ca_pem.as_str()),
            ("apiserver.crt", pki.cert_pem.as_str()),
            ("apiserver.key", pki.key_pem.as_str()),
            ("sa.key", pki.sa_key_pem.as_str()),
            ("sa.pub", pki.sa_pub_pem.as_str()),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text)?;
        }
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{token},admin,admin-uid,system:masters\n"),
        )?;
        let apiserver = Command::new(apiserver_bin)
            .args(apiserver_args(dir, &etcd_url, secure_port))
            .stdout(log("apiserver.log")?)
            .stderr(log("apiserver.err")?)
            .spawn()
            .with_context(|| format!("starting {}", apiserver_bin.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD.encode(pki.ca_pem.as_bytes());
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters:\n- name: ferry-real\n  cluster:\n    server: https://127.0.0.1:{secure_port}\n    certificate-authority-data: {ca}\n\
                 users:\n- name: ferry-real\n  user:\n    token: {token}\n\
                 contexts:\n- name: ferry-real\n  context:\n    cluster: ferry-real\n    user: ferry-real\n\
                 current-context: ferry-real\n"
            ),
        )?;
        let mut plane = Self {
            etcd,
            apiserver,
            kubeconfig,
        };
        plane.wait_ready(dir).await?;
        Ok(plane)
    }

    /// Waits for `/readyz`, failing early (with its log) if a process exits.
    async fn wait_ready(&mut self, dir: &Path) -> anyhow::Result<()> {
        let client = client_from_kubeconfig(&self.kubeconfig).await?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let req = http::Request::get("/readyz").body(Vec::new())?;
            if let Ok(text) = client.request_text(req).await
                && text.trim() == "ok"
            {
                return Ok(());
            }
            for (name, child, log) in [
                ("etcd", &mut self.etcd, "etcd.err"),
                ("kube-apiserver", &mut self.apiserver, "apiserver.err"),
            ] {
                if let Some(status) = child.try_wait()? {
                    let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(20).collect();
                    bail!(
                        "{name} exited ({status}):\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
            ensure!(
                Instant::now() < deadline,
                "kube-apiserver not ready after 90 s; see {}",
                dir.join("apiserver.err").display()
            );
            sleep(Duration::from_millis(250)).await;
        }
    }
}

// === the scenarios ===

/// A running `kubectl port-forward`, killed on drop.
struct KubectlForward {
    child: Child,
    port: u16,
}

impl Drop for KubectlForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl_port_forward(
    kubeconfig: &Path,
    target: &str,
    remote: u16,
    websockets: bool,
) -> anyhow::Result<KubectlForward> {
    let mut child = Command::new("kubectl")
        .args(["port-forward", "-n", "demo", target, &format!(":{remote}")])
        .env("KUBECONFIG", kubeconfig)
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if websockets { "true" } else { "false" },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running kubectl; is it installed?")?;
    let stdout = child.stdout.take().context("kubectl's stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line
                .strip_prefix("Forwarding from 127.0.0.1:")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    let mut forward = KubectlForward { child, port: 0 };
    forward.port = rx
        .recv_timeout(Duration::from_secs(20))
        .context("kubectl port-forward did not say where it listens")?;
    Ok(forward)
}

async fn echo_once(addr: SocketAddr, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    let (mut r, mut w) = s.split();
    let mut got = vec![0u8; data.len()];
    timeout(Duration::from_secs(20), async {
        tokio::try_join!(w.write_all(data), r.read_exact(&mut got))
    })
    .await??;
    Ok(got)
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

async fn kubectl_round_trips(c: &Cluster) -> anyhow::Result<()> {
    for (target, remote) in [("pod/solo", 9000), ("svc/echo", 80)] {
        for websockets in [true, false] {
            let pf = kubectl_port_forward(&c.kubeconfig, target, remote, websockets)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], pf.port));
            let data = payload(256 * 1024);
            let got = echo_once(addr, &data)
                .await
                .with_context(|| format!("{target} (websockets={websockets})"))?;
            ensure!(got == data, "{target}: the echoed bytes differ");
            // A second connection on the same kubectl session.
            ensure!(echo_once(addr, b"again").await? == b"again");
        }
    }
    Ok(())
}

async fn kube_rs_round_trip(c: &Cluster) -> anyhow::Result<()> {
    let mut pf = c.pods().portforward("db-0", &[5432]).await?;
    let stream = pf.take_stream(5432).context("no stream for 5432")?;
    let (mut r, mut w) = tokio::io::split(stream);
    let data = payload(1 << 20);
    let len = data.len();
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; len];
        r.read_exact(&mut got).await.map(|_| got)
    });
    w.write_all(&data).await?;
    let got = timeout(Duration::from_secs(30), reader).await???;
    ensure!(got == data, "the echoed bytes differ");
    w.shutdown().await?;
    drop(w);
    pf.join().await?;
    Ok(())
}

async fn engine_forward_heals(c: &Cluster) -> anyhow::Result<()> {
    let target: Target = "service/echo".parse().map_err(anyhow::Error::msg)?;
    let mut fwd = Forward::new("echo", target, PortRef::Number(80), 0);
    fwd.namespace = Some("demo".into());
    let config = Config {
        forwards: vec![fwd],
        ..Config::default()
    };
    let options = EngineOptions {
        kubeconfig: KubeconfigSource::from_paths(vec![c.kubeconfig.clone()]),
        ..EngineOptions::default()
    };
    let engine = Engine::start(config, options)?;
    let result = async {
        let (addr, pod) = active(&engine, None).await?;
        let data = payload(512 * 1024);
        ensure!(echo_once(addr, &data).await? == data, "echo before");
        // A default delete: the API server marks the pod, the node finishes the deletion,
        // the ReplicaSet's replacement comes up; the forward moves to a live pod.
        c.pods().delete(&pod, &DeleteParams::default()).await?;
        let (_, new_pod) = active(&engine, Some(&pod)).await?;
        ensure!(new_pod != pod);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match echo_once(addr, b"after the delete").await {
                Ok(got) if got == b"after the delete" => break,
                other => ensure!(
                    Instant::now() < deadline,
                    "no echo after the delete: {other:?}"
                ),
            }
            sleep(Duration::from_millis(100)).await;
        }
        c.wait_ready(5).await?;
        Ok(())
    }
    .await;
    engine.shutdown().await;
    result
}

/// Waits until the forward is active on a pod other than `not`; its address and pod.
async fn active(engine: &Engine, not: Option<&str>) -> anyhow::Result<(SocketAddr, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let snap = engine.snapshot().await?;
        if let Some(s) = snap.get("echo")
            && s.state == ForwardState::Active
            && let (Some(addr), Some(pod)) = (s.local, s.pod.clone())
            && Some(pod.as_str()) != not
        {
            return Ok((addr, pod));
        }
        ensure!(
            Instant::now() < deadline,
            "the forward never became active: {:?}",
            snap.get("echo")
        );
        sleep(Duration::from_millis(50)).await;
    }
}

// === the fake API server proxying to the node (always run) ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_apiserver_kubectl_port_forward_reaches_node_pods() -> anyhow::Result<()> {
    let c = Cluster::fake().await?;
    kubectl_round_trips(&c).await?;
    c.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_apiserver_kube_rs_port_forward_reaches_node_pods() -> anyhow::Result<()> {
    let c = Cluster::fake().await?;
    kube_rs_round_trip(&c).await?;
    c.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_apiserver_engine_forward_heals_after_a_node_pod_is_deleted() -> anyhow::Result<()> {
    let c = Cluster::fake().await?;
    engine_forward_heals(&c).await?;
    // Both clients said who they are: Ferry on its requests and upgrades, the node on its.
    let fake = c
        .server
        .downcast_ref::<FakeCluster>()
        .context("the fake API server")?;
    let agents = fake.requests().agents();
    let seen = |agent: &str| agents.iter().find(|a| a.user_agent == agent).cloned();
    let ferry = seen(&ferry_core::cluster::user_agent()).context("no request from Ferry")?;
    ensure!(ferry.api > 0 && ferry.upgrades > 0, "{agents:?}");
    let node = seen(&ferry_fakecluster::node::user_agent()).context("no request from the node")?;
    ensure!(node.api > 0, "{agents:?}");
    c.stop().await;
    Ok(())
}

// === the harness's files (always run) ===

/// kube-apiserver 1.36 refused the harness's first service-account key file ("data does not
/// contain any valid RSA or ECDSA public keys": it was a PKCS#8 private key). The verifying
/// key must be a PKIX public key, of the signing key.
#[test]
fn kube_apiserver_gets_a_public_service_account_key_it_can_read() -> anyhow::Result<()> {
    let pki = pki()?;
    let der = |pem: &str, label: &str| -> anyhow::Result<Vec<u8>> {
        let begin = format!("-----BEGIN {label}-----");
        ensure!(pem.starts_with(&begin), "expected {begin}, got {pem}");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
    };
    let public = der(&pki.sa_pub_pem, "PUBLIC KEY")?;
    // SubjectPublicKeyInfo naming id-ecPublicKey (1.2.840.10045.2.1) and P-256
    // (1.2.840.10045.3.1.7): an ECDSA key kube-apiserver verifies ES256 tokens with.
    let ec_public_key = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    ensure!(
        public.windows(9).any(|w| w == ec_public_key),
        "not an EC key"
    );
    ensure!(public.windows(10).any(|w| w == p256), "not a P-256 key");
    // The private key's PKCS#8 carries the same public point.
    let private = der(&pki.sa_key_pem, "PRIVATE KEY")?;
    let point = &public[public.len() - 65..];
    ensure!(
        point[0] == 0x04,
        "an uncompressed point ends the public key"
    );
    ensure!(
        private.windows(65).any(|w| w == point),
        "the public key is not the signing key's"
    );

    let dir = Path::new("/harness");
    let args = apiserver_args(dir, "http://127.0.0.1:2379", 6443);
    let flag = |name: &str| -> anyhow::Result<String> {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .map(str::to_string)
            .with_context(|| format!("--{name} is not passed"))
    };
    ensure!(flag("service-account-key-file")? == dir.join("sa.pub").display().to_string());
    ensure!(flag("service-account-signing-key-file")? == dir.join("sa.key").display().to_string());
    for needed in ["service-account-issuer", "etcd-servers", "secure-port"] {
        flag(needed)?;
    }
    Ok(())
}

// === a real kube-apiserver (FERRY_REAL_APISERVER) ===
//
// Skipped (ignored) in the suite; `--run-ignored only` with FERRY_REAL_APISERVER runs them.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kube-apiserver: FERRY_REAL_APISERVER=/path/to/kube-apiserver cargo nextest run -p ferry-e2e --test real_apiserver --run-ignored only"]
async fn real_apiserver_kubectl_port_forward() -> anyhow::Result<()> {
    let c = Cluster::real().await?;
    kubectl_round_trips(&c).await?;
    c.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kube-apiserver: FERRY_REAL_APISERVER=/path/to/kube-apiserver cargo nextest run -p ferry-e2e --test real_apiserver --run-ignored only"]
async fn real_apiserver_kube_rs_port_forward() -> anyhow::Result<()> {
    let c = Cluster::real().await?;
    kube_rs_round_trip(&c).await?;
    c.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kube-apiserver: FERRY_REAL_APISERVER=/path/to/kube-apiserver cargo nextest run -p ferry-e2e --test real_apiserver --run-ignored only"]
async fn real_apiserver_engine_forward_heals_after_a_pod_delete() -> anyhow::Result<()> {
    let c = Cluster::real().await?;
    engine_forward_heals(&c).await?;
    c.stop().await;
    Ok(())
}
