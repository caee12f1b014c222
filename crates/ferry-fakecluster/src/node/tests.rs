//! The node against the fake API server (its controllers through a kube client), and its
//! kubelet endpoint driven directly: SPDY/3.1 as the API server speaks it to kubelet, and
//! the WebSocket channel protocol as the API server passes it through. Also the fake API
//! server's translation of kubectl's SPDY-over-WebSocket tunnel into SPDY to the node.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::spdy::frame::{self, Control, Event};
use crate::spdy::testing::SpdyClient;
use crate::{FakeCluster, Options};

const SCENARIO: &str = "
timing: {recreate_delay_ms: 100, ready_delay_ms: 100}
namespaces:
  - name: demo
    deployments:
      - {name: echo, replicas: 2, labels: {app: echo}, ports: [{name: echo, port: 9000, behavior: echo}]}
    statefulsets:
      - {name: db, replicas: 1, labels: {app: db}, ports: [{name: pg, port: 5432, behavior: echo}]}
    pods:
      - {name: solo, labels: {app: solo}, ports: [{port: 9000}]}
    services:
      - {name: echo, selector: {app: echo}, ports: [{port: 80, target_port: echo}]}
";

struct Setup {
    fake: FakeCluster,
    node: Node,
    client: kube::Client,
}

async fn client_for(fake: &FakeCluster) -> kube::Client {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path).expect("kubeconfig");
    client_from_kubeconfig(&path).await.expect("client")
}

/// The fake API server with nothing in it, and a node that fills it.
async fn setup() -> Setup {
    let empty = Scenario::from_yaml("namespaces: []").expect("empty scenario");
    let fake = FakeCluster::start(Options::default().scenario(empty))
        .await
        .expect("fake API server");
    let client = client_for(&fake).await;
    let scenario = Scenario::from_yaml(SCENARIO).expect("scenario");
    let node = Node::start(client.clone(), NodeOptions::default().scenario(scenario))
        .await
        .expect("node");
    let s = Setup { fake, node, client };
    s.wait_ready(4).await;
    s
}

impl Setup {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "demo")
    }

    /// Waits until `n` pods are Running and Ready, and the node serves them all.
    async fn wait_ready(&self, n: usize) -> Vec<Pod> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let pods = self
                .pods()
                .list(&ListParams::default())
                .await
                .expect("list");
            let ready: Vec<Pod> = pods
                .items
                .into_iter()
                .filter(|p| {
                    let v = serde_json::to_value(p).unwrap_or_default();
                    crate::cluster::pod_is_ready(&v)
                        && v["metadata"].get("deletionTimestamp").is_none()
                })
                .collect();
            if ready.len() == n && self.node.running_pods().len() == n {
                return ready;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} pods ready; node runs {:?}",
                ready.len(),
                self.node.running_pods()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A TLS connection to the node's kubelet endpoint, trusting its CA.
    async fn tls(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let ca = CertificateDer::from_pem_slice(self.node.ca_pem().as_bytes()).expect("CA");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.node.addr())
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::IpAddress(self.node.addr().ip().into());
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS")
    }

    /// Sends an HTTP/1.1 request as the API server sends it to kubelet; returns the
    /// response head and the connection.
    async fn request(
        &self,
        head: &str,
    ) -> (
        String,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    ) {
        let mut tls = self.tls().await;
        tls.write_all(head.as_bytes()).await.expect("write");
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            let n = tls.read(&mut byte).await.expect("read");
            assert!(
                n > 0,
                "connection closed after {:?}",
                String::from_utf8_lossy(&got)
            );
            got.push(byte[0]);
        }
        (String::from_utf8_lossy(&got).into_owned(), tls)
    }

    /// A kube client for the kubelet endpoint, as the API server reaches it (no
    /// credentials).
    async fn kubelet_client(&self) -> kube::Client {
        let mut config = kube::Config::new(
            format!("https://{}", self.node.addr())
                .parse()
                .expect("url"),
        );
        let ca = CertificateDer::from_pem_slice(self.node.ca_pem().as_bytes()).expect("CA");
        config.root_cert = Some(vec![ca.to_vec()]);
        kube::Client::try_from(config).expect("client")
    }
}

fn spdy_upgrade(path: &str, addr: SocketAddr) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_registers_and_runs_the_scenario_on_the_fake_api_server() {
    let s = setup().await;
    let node: NodeObject = Api::all(s.client.clone())
        .get(DEFAULT_NODE_NAME)
        .await
        .expect("node object");
    let node = serde_json::to_value(&node).expect("json");
    assert_eq!(node["status"]["addresses"][0]["type"], "InternalIP");
    assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.1");
    assert_eq!(
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        s.node.addr().port()
    );
    Api::<ServiceAccount>::namespaced(s.client.clone(), "demo")
        .get("default")
        .await
        .expect("the default ServiceAccount");

    let pods = s.wait_ready(4).await;
    for pod in &pods {
        let v = serde_json::to_value(pod).expect("json");
        assert_eq!(v["spec"]["nodeName"], DEFAULT_NODE_NAME);
        assert_eq!(v["status"]["phase"], "Running");
        assert_eq!(v["status"]["hostIP"], "127.0.0.1");
        assert!(
            v["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10.244.")),
            "{v}"
        );
        let name = v["metadata"]["name"].as_str().unwrap_or_default();
        if name != "solo" {
            assert_eq!(
                v["metadata"]["ownerReferences"][0]["controller"], true,
                "{name}"
            );
        }
    }
    // The fake's own controllers left the node's objects alone: one set of slices.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let slices = Api::<EndpointSlice>::namespaced(s.client.clone(), "demo")
            .list(&ListParams::default().labels("kubernetes.io/service-name=echo"))
            .await
            .expect("slices");
        let v = serde_json::to_value(&slices.items).expect("json");
        let ready = v[0]["endpoints"].as_array().map_or(0, |e| {
            e.iter()
                .filter(|e| e["conditions"]["ready"] == true)
                .count()
        });
        if slices.items.len() == 1 && ready == 2 && v[0]["ports"][0]["port"] == 9000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slices: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rs = Api::<ReplicaSet>::namespaced(s.client.clone(), "demo")
        .list(&ListParams::default().labels("app=echo"))
        .await
        .expect("replicasets");
    assert_eq!(rs.items.len(), 1);
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_are_completed_and_workloads_recreate_their_pods() {
    let s = setup().await;
    let before = s.wait_ready(4).await;
    let echo = before
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .find(|n| n.starts_with("echo-"))
        .expect("an echo pod");
    let db_uid = before
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("db-0"))
        .and_then(|p| p.metadata.uid.clone())
        .expect("db-0");
    // A default delete: the API server only marks the pod; the node finishes it.
    let first = s
        .pods()
        .delete(&echo, &DeleteParams::default())
        .await
        .expect("delete");
    let first = first.left().expect("the pod is terminating, not gone yet");
    assert!(first.metadata.deletion_timestamp.is_some());
    s.pods()
        .delete("db-0", &DeleteParams::default())
        .await
        .expect("delete db-0");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let after = s.wait_ready(4).await;
        let names: Vec<String> = after
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let db = after
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("db-0"));
        if !names.contains(&echo)
            && names.iter().filter(|n| n.starts_with("echo-")).count() == 2
            && db.is_some_and(|p| p.metadata.uid.as_deref() != Some(db_uid.as_str()))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "pods: {names:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The fake API server's own bookkeeping: the old pods are really gone.
    assert!(
        s.fake
            .cluster()
            .get(crate::kind::Kind::Pod, "demo", &echo)
            .is_err()
    );
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_endpoint_serves_spdy_port_forwarding() {
    let s = setup().await;
    let addr = s.node.addr();
    let (head, tls) = s
        .request(&spdy_upgrade("/portForward/demo/solo", addr))
        .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: spdy/3.1"), "{head}");
    assert!(
        lower.contains("x-stream-protocol-version: portforward.k8s.io"),
        "{head}"
    );
    let mut c = SpdyClient::new(tls);
    // One connection to the echo port, as the API server relays kubectl's.
    c.open(1, "error", "9000", "0").await;
    c.open(3, "data", "9000", "0").await;
    c.send(frame::data(3, false, b"hello ")).await;
    c.send(frame::data(3, true, b"node")).await;
    let (events, data) = c.until_fin(1).await;
    assert_eq!(data.get(&3).map(Vec::as_slice), Some(&b"hello node"[..]));
    assert!(events.contains(&Event::Control(Control::SynReply { stream: 3 })));
    // A port the pod does not serve: kubelet's message on the error stream.
    c.open(5, "error", "7777", "1").await;
    c.open(7, "data", "7777", "1").await;
    let (_, data) = c.until_fin(5).await;
    let message = String::from_utf8_lossy(data.get(&5).map_or(&[][..], Vec::as_slice)).into_owned();
    assert!(message.contains("connection refused"), "{message}");

    // An unknown pod is a 404; a request without the version header a 400.
    let (head, _) = s
        .request(&spdy_upgrade("/portForward/demo/nope", addr))
        .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = s
        .request(&format!(
            "POST /portForward/demo/solo HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_endpoint_serves_the_websocket_channel_protocol() {
    let s = setup().await;
    let kubelet = s.kubelet_client().await;
    let request = http::Request::get("/portForward/demo/solo?port=9000")
        .body(Vec::new())
        .expect("request");
    let conn = kubelet.connect(request).await.expect("upgrade");
    let mut ws = conn.into_stream();
    // The first message on each channel is the port, little-endian.
    for ch in [0u8, 1] {
        let msg = ws.next().await.expect("message").expect("ok");
        assert_eq!(msg.into_data().as_ref(), &[ch, 0x28, 0x23][..]);
    }
    ws.send(Message::binary(b"\x00ping".to_vec()))
        .await
        .expect("send");
    let mut got = Vec::new();
    while got.len() < 4 {
        let msg = ws.next().await.expect("message").expect("ok");
        let data = msg.into_data();
        assert_eq!(data.first(), Some(&0), "data channel");
        got.extend_from_slice(&data[1..]);
    }
    assert_eq!(got, b"ping");
    let _ = ws.close(None).await;

    // The behaviour annotation reaches the node: the port now refuses.
    s.pods()
        .patch(
            "solo",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {BEHAVIOR: "refuse"}}})),
        )
        .await
        .expect("annotate");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let request = http::Request::get("/portForward/demo/solo?port=9000")
            .body(Vec::new())
            .expect("request");
        let mut ws = kubelet
            .connect(request)
            .await
            .expect("upgrade")
            .into_stream();
        let mut error = String::new();
        while let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_millis(300), ws.next()).await
        {
            let data = msg.into_data();
            if data.first() == Some(&1) && data.len() > 3 {
                error = String::from_utf8_lossy(&data[1..]).into_owned();
                break;
            }
        }
        if error.contains("connection refused") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served: {error:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.node.shutdown().await;
}

const BEHAVIOR: &str = crate::cluster::BEHAVIOR_ANNOTATION;

/// The client's side of a SPDY byte stream carried in binary WebSocket messages, as a
/// byte stream (a pipe pumped by two tasks).
fn ws_pipe<S>(ws: tokio_tungstenite::WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut from_us, mut to_us) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from_us.read(&mut buf).await {
            if n == 0 || sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Binary(b) = msg
                && to_us.write_all(&b).await.is_err()
            {
                break;
            }
        }
        let _ = to_us.shutdown().await;
    });
    ours
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_api_server_translates_the_spdy_websocket_tunnel_for_node_pods() {
    use tokio_tungstenite::tungstenite::handshake::client::generate_key;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let s = setup().await;
    // What kubectl ≥ 1.31 sends to the API server.
    let protocol = "SPDY/3.1+portforward.k8s.io";
    let request = http::Request::get("/api/v1/namespaces/demo/pods/solo/portforward")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key())
        .header("Sec-WebSocket-Protocol", protocol)
        .body(Vec::<u8>::new().into())
        .expect("request");
    let res = s.client.send(request).await.expect("an answer");
    assert_eq!(res.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        res.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some(protocol)
    );
    let upgraded = hyper::upgrade::on(res).await.expect("upgraded");
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(upgraded),
        Role::Client,
        None,
    )
    .await;
    // SPDY inside the WebSocket, answered by the node's kubelet endpoint.
    let mut c = SpdyClient::new(ws_pipe(ws));
    c.open(1, "error", "9000", "0").await;
    c.open(3, "data", "9000", "0").await;
    c.send(frame::data(3, false, b"through ")).await;
    c.send(frame::data(3, true, b"the tunnel")).await;
    let (events, data) = c.until_fin(1).await;
    assert_eq!(
        data.get(&3).map(Vec::as_slice),
        Some(&b"through the tunnel"[..])
    );
    assert!(events.contains(&Event::Control(Control::SynReply { stream: 3 })));
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_relayed_to_a_node_freeze_thaw_and_count_as_upgrades() {
    let s = setup().await;
    let request = http::Request::post("/api/v1/namespaces/demo/pods/solo/portforward")
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "portforward.k8s.io")
        .body(Vec::<u8>::new().into())
        .expect("request");
    let res = s.client.send(request).await.expect("an answer");
    assert_eq!(res.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    let upgraded = hyper::upgrade::on(res).await.expect("upgraded");
    let mut c = SpdyClient::new(hyper_util::rt::TokioIo::new(upgraded));
    c.open(1, "error", "9000", "0").await;
    c.open(3, "data", "9000", "0").await;
    c.send(frame::data(3, false, b"before")).await;
    let mut got = Vec::new();
    while got.len() < 6 {
        if let Some(Event::Data { stream: 3, bytes }) = c.next().await {
            got.extend_from_slice(&bytes);
        }
    }
    assert_eq!(got, b"before");
    let stats = s.fake.portforward_stats();
    assert_eq!(stats.upgrades.spdy, 1);
    assert_eq!(
        stats.spdy_sessions_open, 0,
        "the node serves the session; the API server only relays it"
    );

    assert_eq!(s.fake.faults().freeze_sessions(), 1);
    c.send(frame::ping(5)).await;
    c.send(frame::data(3, false, b"during")).await;
    assert_eq!(
        c.next_within(Duration::from_millis(700)).await,
        None,
        "nothing is relayed, and the connection stays open"
    );
    s.fake.faults().thaw_sessions();
    let (mut ping, mut got) = (false, Vec::new());
    while !ping || got.len() < 6 {
        match c.next().await {
            Some(Event::Control(Control::Ping(5))) => ping = true,
            Some(Event::Data { stream: 3, bytes }) => got.extend_from_slice(&bytes),
            Some(_) => {}
            None => panic!("the relayed session ended"),
        }
    }
    assert_eq!(got, b"during");
    s.node.shutdown().await;
}
