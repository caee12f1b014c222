//! The port-forward counters and fault switches, end to end through the fake API server:
//! plain SPDY, SPDY tunnelled through a WebSocket and the WebSocket channel protocol,
//! driven by a kube client over HTTPS, from the library and under `/fake/`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::spdy::frame::{self, Control, Event};
use crate::spdy::testing::SpdyClient;
use crate::{FakeCluster, Faults, Options, PortForwardStats, Protocol, Scenario};

const SCENARIO: &str = "
namespaces:
  - name: demo
    pods:
      - {name: solo, labels: {app: solo}, ports: [{port: 9000, behavior: echo}]}
";

const PORTFORWARD: &str = "/api/v1/namespaces/demo/pods/solo/portforward";
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long a frozen session is watched for a sign of life.
const QUIET: Duration = Duration::from_millis(700);

/// Any byte stream a SPDY test client can run on.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Client = SpdyClient<Box<dyn Io>>;

struct Fx {
    fake: FakeCluster,
    client: kube::Client,
}

impl Fx {
    async fn start(opts: Options) -> Self {
        let scenario = Scenario::from_yaml(SCENARIO).expect("scenario");
        let fake = FakeCluster::start(opts.scenario(scenario))
            .await
            .expect("fake cluster");
        assert!(fake.wait_pods_ready(Duration::from_secs(10)).await);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&path).expect("kubeconfig");
        let client = crate::node::client_from_kubeconfig(&path)
            .await
            .expect("client");
        Self { fake, client }
    }

    fn faults(&self) -> &Faults {
        self.fake.faults()
    }

    fn stats(&self) -> PortForwardStats {
        self.fake.portforward_stats()
    }

    async fn send(&self, req: http::Request<Vec<u8>>) -> http::Response<kube::client::Body> {
        self.client
            .send(req.map(Into::into))
            .await
            .expect("an answer")
    }

    /// `POST` (or `GET`) under `/fake/`, and its JSON answer.
    async fn fake_json(&self, method: http::Method, path: &str) -> (http::StatusCode, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("/fake/{path}"))
            .body(Vec::new())
            .expect("request");
        let res = self.send(req).await;
        let code = res.status();
        (code, body_json(res).await)
    }

    async fn spdy_upgrade(&self, path: &str) -> http::Response<kube::client::Body> {
        let req = http::Request::post(path)
            .header("Connection", "Upgrade")
            .header("Upgrade", "SPDY/3.1")
            .header("X-Stream-Protocol-Version", "portforward.k8s.io")
            .body(Vec::new())
            .expect("request");
        self.send(req).await
    }

    async fn ws_upgrade(&self, path: &str, protocols: &str) -> http::Response<kube::client::Body> {
        let req = http::Request::get(path)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", generate_key())
            .header("Sec-WebSocket-Protocol", protocols)
            .body(Vec::new())
            .expect("request");
        self.send(req).await
    }

    /// A plain SPDY session with the pod.
    async fn spdy(&self) -> Client {
        let res = self.spdy_upgrade(PORTFORWARD).await;
        assert_eq!(res.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        let upgraded = hyper::upgrade::on(res).await.expect("upgraded");
        let io: Box<dyn Io> = Box::new(hyper_util::rt::TokioIo::new(upgraded));
        SpdyClient::new(io)
    }

    /// A SPDY session tunnelled through a WebSocket.
    async fn tunnel(&self) -> Client {
        let ws = self.websocket(PORTFORWARD, TUNNEL).await;
        let io: Box<dyn Io> = Box::new(ws_pipe(ws));
        SpdyClient::new(io)
    }

    /// A WebSocket with the subprotocol `protocol`.
    async fn websocket(
        &self,
        path: &str,
        protocol: &str,
    ) -> WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
        let res = self.ws_upgrade(path, protocol).await;
        assert_eq!(res.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            res.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        let upgraded = hyper::upgrade::on(res).await.expect("upgraded");
        WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(upgraded), Role::Client, None)
            .await
    }

    /// A channel-protocol session with port 9000, its port prefixes read.
    async fn channel(&self) -> WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
        let mut ws = self
            .websocket(&format!("{PORTFORWARD}?ports=9000"), "v4.channel.k8s.io")
            .await;
        for channel in [0u8, 1] {
            let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("the port prefix in time");
            let Some(Ok(Message::Binary(b))) = msg else {
                panic!("a port prefix, got {msg:?}");
            };
            assert_eq!(
                &b[..],
                &[channel, 0x28, 0x23][..],
                "port 9000, little-endian"
            );
        }
        ws
    }
}

async fn body_json(res: http::Response<kube::client::Body>) -> Value {
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// A WebSocket's binary messages as a byte stream, the way kubectl tunnels SPDY.
fn ws_pipe<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut from_us, mut to_us) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from_us.read(&mut buf).await {
            if n == 0 {
                // Our end of stream closes the WebSocket, as kubectl's does.
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
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

/// Waits up to five seconds for `cond`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opens a connection to port 9000 on streams `error` and `error + 2`.
async fn open_connection(c: &mut Client, error: u32, request: &str) {
    c.open(error, "error", "9000", request).await;
    c.open(error + 2, "data", "9000", request).await;
}

/// Reads events until `want` bytes came back on `stream` and every event of `also` was
/// seen; the events other than data.
async fn expect_echo(c: &mut Client, stream: u32, want: &[u8], also: &[Event]) -> Vec<Event> {
    let mut got = Vec::new();
    let mut events = Vec::new();
    while got.len() < want.len() || !also.iter().all(|e| events.contains(e)) {
        match c.next_within(Duration::from_secs(5)).await {
            Some(Some(Event::Data { stream: s, bytes })) if s == stream => {
                got.extend_from_slice(&bytes)
            }
            Some(Some(ev)) => events.push(ev),
            Some(None) => panic!("the connection ended; events so far {events:?}"),
            None => panic!(
                "no echo of {want:?} in time; got {got:?} and {events:?}, waiting for {also:?}"
            ),
        }
    }
    assert_eq!(got, want);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spdy_sessions_and_connections_are_counted_while_open_and_in_total() {
    let fx = Fx::start(Options::default()).await;
    assert_eq!(fx.stats(), PortForwardStats::default());
    let mut c = fx.spdy().await;
    let s = fx.stats();
    assert_eq!(s.upgrades.spdy, 1);
    assert_eq!((s.spdy_sessions_open, s.spdy_sessions_total), (1, 1));
    assert_eq!(s.spdy_connections_total, 0);

    // One connection, open until its data stream ends.
    open_connection(&mut c, 1, "0").await;
    c.send(frame::data(3, false, b"hello")).await;
    expect_echo(&mut c, 3, b"hello", &[]).await;
    let s = fx.stats();
    assert_eq!((s.spdy_connections_open, s.spdy_connections_total), (1, 1));
    // A second one, over as soon as it started: the client half-closes at once.
    open_connection(&mut c, 5, "1").await;
    c.send(frame::data(7, true, b"bye")).await;
    expect_echo(&mut c, 7, b"bye", &[Event::Fin { stream: 5 }]).await;
    eventually("the second connection is closed", || {
        let s = fx.stats();
        (s.spdy_connections_open, s.spdy_connections_total) == (1, 2)
    })
    .await;
    // The library and /fake/portforward agree.
    let (code, json) = fx.fake_json(http::Method::GET, "portforward").await;
    assert_eq!(code, http::StatusCode::OK);
    assert_eq!(json, serde_json::to_value(fx.stats()).expect("JSON"));
    assert_eq!(json["spdy_connections_total"], 2);
    assert_eq!(json["upgrades"]["spdy"], 1);

    drop(c);
    eventually("the session is closed", || {
        let s = fx.stats();
        s.spdy_sessions_open == 0 && s.spdy_connections_open == 0
    })
    .await;
    let s = fx.stats();
    assert_eq!((s.spdy_sessions_total, s.spdy_connections_total), (1, 2));
    assert_eq!(s.refused.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_and_refusals_are_counted_by_protocol() {
    let fx = Fx::start(Options::default()).await;
    let mut tunnel = fx.tunnel().await;
    open_connection(&mut tunnel, 1, "0").await;
    tunnel.send(frame::data(3, false, b"tunnelled")).await;
    expect_echo(&mut tunnel, 3, b"tunnelled", &[]).await;
    let s = fx.stats();
    assert_eq!(s.upgrades.spdy_websocket, 1);
    assert_eq!((s.spdy_sessions_open, s.spdy_connections_open), (1, 1));

    let mut ws = fx.channel().await;
    let s = fx.stats();
    assert_eq!(s.upgrades.channel, 1);
    assert_eq!((s.channel_sessions_open, s.channel_sessions_total), (1, 1));
    assert_eq!(
        s.spdy_sessions_open, 1,
        "a channel session is not a SPDY session"
    );
    ws.send(Message::binary(&b"\x00hi"[..]))
        .await
        .expect("sends");
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(&echo, Ok(Some(Ok(Message::Binary(b)))) if &b[..] == b"\x00hi"),
        "{echo:?}"
    );

    // Refusals: a missing pod, a malformed SPDY upgrade, a channel request without ports.
    let missing = fx
        .spdy_upgrade("/api/v1/namespaces/demo/pods/nope/portforward")
        .await;
    assert_eq!(missing.status(), http::StatusCode::NOT_FOUND);
    let no_version = http::Request::post(PORTFORWARD)
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/3.1")
        .body(Vec::new())
        .expect("request");
    assert_eq!(
        fx.send(no_version).await.status(),
        http::StatusCode::BAD_REQUEST
    );
    let no_ports = fx.ws_upgrade(PORTFORWARD, "v4.channel.k8s.io").await;
    assert_eq!(no_ports.status(), http::StatusCode::BAD_REQUEST);
    let s = fx.stats();
    assert_eq!(
        (s.refused.spdy, s.refused.spdy_websocket, s.refused.channel),
        (2, 0, 1)
    );
    assert_eq!(s.upgrades.total(), 2);

    ws.close(None).await.expect("closes");
    drop(ws);
    drop(tunnel);
    eventually("both sessions are closed", || {
        let s = fx.stats();
        s.spdy_sessions_open == 0 && s.channel_sessions_open == 0 && s.spdy_connections_open == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_protocols_get_the_answers_of_servers_without_them() {
    let fx = Fx::start(Options::default()).await;

    fx.faults().refuse_protocol(Protocol::Spdy, true);
    let res = fx.spdy_upgrade(PORTFORWARD).await;
    assert_eq!(res.status(), http::StatusCode::FORBIDDEN);
    let status = body_json(res).await;
    assert_eq!(status["reason"], "Forbidden");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("unable to upgrade: unable to negotiate protocol: client supports [\"portforward.k8s.io\"], server accepts []"),
        "{message}"
    );
    // The other two are still served.
    drop(fx.tunnel().await);
    drop(fx.channel().await);

    fx.faults().refuse_protocol(Protocol::SpdyWebSocket, true);
    let res = fx.ws_upgrade(PORTFORWARD, TUNNEL).await;
    assert_eq!(res.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(body_json(res).await["reason"], "BadRequest");
    // Offered besides the channel protocol, the tunnel gives way to it, as on a server
    // older than 1.30.
    let res = fx
        .ws_upgrade(
            &format!("{PORTFORWARD}?ports=9000"),
            &format!("{TUNNEL}, v4.channel.k8s.io"),
        )
        .await;
    assert_eq!(res.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        res.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("v4.channel.k8s.io")
    );
    drop(res);

    fx.faults().refuse_protocol(Protocol::Channel, true);
    let res = fx
        .ws_upgrade(&format!("{PORTFORWARD}?ports=9000"), "v4.channel.k8s.io")
        .await;
    assert_eq!(res.status(), http::StatusCode::BAD_REQUEST);
    let message = body_json(res).await["message"].clone();
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("channel protocol")),
        "{message}"
    );

    let s = fx.stats();
    assert_eq!(
        (s.refused.spdy, s.refused.spdy_websocket, s.refused.channel),
        (1, 1, 1)
    );
    assert_eq!((s.upgrades.spdy_websocket, s.upgrades.channel), (1, 2));

    // Over HTTP: the state, then plain SPDY served again.
    let (code, state) = fx.fake_json(http::Method::GET, "faults").await;
    assert_eq!(code, http::StatusCode::OK);
    assert_eq!(
        state["refused_protocols"],
        serde_json::json!(["spdy", "spdy-websocket", "channel"])
    );
    let (code, json) = fx
        .fake_json(
            http::Method::POST,
            "faults/refuse-protocol?protocol=spdy&refuse=false",
        )
        .await;
    assert_eq!(code, http::StatusCode::OK, "{json}");
    assert_eq!(
        json,
        serde_json::json!({"protocol": "spdy", "refused": false})
    );
    assert!(!fx.faults().protocol_refused(Protocol::Spdy));
    drop(fx.spdy().await);
    let (code, _) = fx
        .fake_json(
            http::Method::POST,
            "faults/refuse-protocol?protocol=spdy_websocket&refuse=false",
        )
        .await;
    assert_eq!(code, http::StatusCode::OK);
    assert!(!fx.faults().protocol_refused(Protocol::SpdyWebSocket));
    let (code, _) = fx
        .fake_json(http::Method::POST, "faults/refuse-protocol?protocol=spdy")
        .await;
    assert_eq!(code, http::StatusCode::OK);
    assert!(
        fx.faults().protocol_refused(Protocol::Spdy),
        "refuse defaults to true"
    );
    for bad in [
        "faults/refuse-protocol",
        "faults/refuse-protocol?protocol=http2",
        "faults/refuse-protocol?protocol=spdy&refuse=maybe",
    ] {
        let (code, json) = fx.fake_json(http::Method::POST, bad).await;
        assert_eq!(code, http::StatusCode::BAD_REQUEST, "{bad}: {json}");
    }
    let (code, _) = fx.fake_json(http::Method::POST, "faults/clear").await;
    assert_eq!(code, http::StatusCode::OK);
    assert!(
        Protocol::ALL
            .iter()
            .all(|p| !fx.faults().protocol_refused(*p))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_portforwards_are_answered_as_rbac_answers_them() {
    let fx = Fx::start(Options::default()).await;
    let (code, json) = fx
        .fake_json(http::Method::POST, "faults/forbid-portforward")
        .await;
    assert_eq!(code, http::StatusCode::OK);
    assert_eq!(json, serde_json::json!({"forbidden": true}));
    assert!(fx.faults().portforward_forbidden());

    let res = fx.spdy_upgrade(PORTFORWARD).await;
    assert_eq!(res.status(), http::StatusCode::FORBIDDEN);
    assert_eq!(
        body_json(res).await,
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "pods \"solo\" is forbidden: User \"ferry-test\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"demo\"",
            "reason": "Forbidden",
            "details": {"name": "solo", "kind": "pods"},
            "code": 403,
        })
    );
    // Every protocol, and before the pod is looked up.
    let res = fx.ws_upgrade(PORTFORWARD, TUNNEL).await;
    assert_eq!(res.status(), http::StatusCode::FORBIDDEN);
    let res = fx
        .ws_upgrade(
            "/api/v1/namespaces/demo/pods/nope/portforward?ports=9000",
            "v4.channel.k8s.io",
        )
        .await;
    assert_eq!(res.status(), http::StatusCode::FORBIDDEN);
    let message = body_json(res).await["message"].clone();
    assert_eq!(
        message,
        "pods \"nope\" is forbidden: User \"ferry-test\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"demo\""
    );
    let s = fx.stats();
    assert_eq!(
        (s.refused.spdy, s.refused.spdy_websocket, s.refused.channel),
        (1, 1, 1)
    );
    assert_eq!(s.upgrades.total(), 0);

    let (code, _) = fx
        .fake_json(http::Method::POST, "faults/forbid-portforward?forbid=false")
        .await;
    assert_eq!(code, http::StatusCode::OK);
    drop(fx.spdy().await);
    assert_eq!(fx.stats().upgrades.spdy, 1);
}

/// Freezes a SPDY session `c` that has connection 1/3 open, and checks that it stays
/// silent but open while a session opened afterwards (`later`) works, then that it goes
/// on where it stopped once thawed, and that dropping tunnels cuts it while frozen.
async fn frozen_spdy_session(fx: &Fx, mut c: Client, freeze_over_http: bool) {
    if freeze_over_http {
        let (code, json) = fx
            .fake_json(http::Method::POST, "faults/freeze-sessions")
            .await;
        assert_eq!(code, http::StatusCode::OK);
        assert_eq!(json["frozen"], 1);
    } else {
        assert_eq!(fx.faults().freeze_sessions(), 1);
    }
    // Frames for the frozen session: a ping, data, and a new connection.
    c.send(frame::ping(7)).await;
    c.send(frame::data(3, false, b"during")).await;
    open_connection(&mut c, 5, "1").await;

    // A session opened after the freeze is served.
    let mut later = fx.spdy().await;
    open_connection(&mut later, 1, "0").await;
    later.send(frame::ping(1)).await;
    later.send(frame::data(3, false, b"later")).await;
    expect_echo(&mut later, 3, b"later", &[Event::Control(Control::Ping(1))]).await;
    let dialled = fx.fake.cluster().tunnels_to("demo", "solo");

    assert_eq!(
        c.next_within(QUIET).await,
        None,
        "a frozen session neither answers nor closes"
    );
    assert_eq!(
        fx.fake.cluster().tunnels_to("demo", "solo"),
        dialled,
        "a frozen session reads no frame: its new connection is not dialled"
    );
    assert_eq!(
        fx.stats().spdy_sessions_open,
        2,
        "the frozen session is still open"
    );

    if freeze_over_http {
        let (code, json) = fx
            .fake_json(http::Method::POST, "faults/thaw-sessions")
            .await;
        assert_eq!(code, http::StatusCode::OK);
        assert_eq!(json["thawed"], true);
    } else {
        assert!(fx.faults().thaw_sessions());
    }
    let events = expect_echo(
        &mut c,
        3,
        b"during",
        &[
            Event::Control(Control::Ping(7)),
            Event::Control(Control::SynReply { stream: 5 }),
            Event::Control(Control::SynReply { stream: 7 }),
        ],
    )
    .await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Fin { .. })),
        "{events:?}"
    );
    assert_eq!(fx.fake.cluster().tunnels_to("demo", "solo"), dialled + 1);
    // The later session was not frozen by the thaw either, nor the thawed one by the past
    // freeze: both still echo.
    later.send(frame::data(3, false, b"again")).await;
    expect_echo(&mut later, 3, b"again", &[]).await;

    // Dropping tunnels cuts a frozen session.
    fx.faults().freeze_sessions();
    assert_eq!(fx.faults().drop_tunnels(), 2);
    for (name, s) in [("the first", &mut c), ("the later", &mut later)] {
        let mut ended = false;
        for _ in 0..100 {
            match s.next_within(Duration::from_secs(5)).await {
                Some(Some(_)) => {}
                Some(None) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        assert!(ended, "{name} session is cut");
    }
    eventually("no session is left open", || {
        fx.stats().spdy_sessions_open == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_plain_spdy_session_is_silent_but_open_until_thawed() {
    let fx = Fx::start(Options::default()).await;
    let mut c = fx.spdy().await;
    open_connection(&mut c, 1, "0").await;
    c.send(frame::data(3, false, b"before")).await;
    expect_echo(&mut c, 3, b"before", &[]).await;
    frozen_spdy_session(&fx, c, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_tunnelled_spdy_session_is_silent_but_open_until_thawed() {
    let fx = Fx::start(Options::default()).await;
    let mut c = fx.tunnel().await;
    open_connection(&mut c, 1, "0").await;
    c.send(frame::data(3, false, b"before")).await;
    expect_echo(&mut c, 3, b"before", &[]).await;
    frozen_spdy_session(&fx, c, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_channel_session_answers_no_ping_and_relays_nothing_until_thawed() {
    let fx = Fx::start(Options::default()).await;
    let mut ws = fx.channel().await;
    let echo = |data: &'static [u8]| {
        let mut msg = vec![0u8];
        msg.extend_from_slice(data);
        Bytes::from(msg)
    };
    ws.send(Message::Binary(echo(b"before")))
        .await
        .expect("sends");
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(&got, Ok(Some(Ok(Message::Binary(b)))) if *b == echo(b"before")),
        "{got:?}"
    );
    assert_eq!(fx.faults().freeze_sessions(), 1);
    ws.send(Message::Ping(Bytes::from_static(b"anyone?")))
        .await
        .expect("sends a ping");
    ws.send(Message::Binary(echo(b"during")))
        .await
        .expect("sends");

    // A channel session opened after the freeze is served.
    let mut later = fx.channel().await;
    later
        .send(Message::Binary(echo(b"later")))
        .await
        .expect("sends");
    let got = tokio::time::timeout(Duration::from_secs(5), later.next()).await;
    assert!(
        matches!(&got, Ok(Some(Ok(Message::Binary(b)))) if *b == echo(b"later")),
        "{got:?}"
    );

    let quiet = tokio::time::timeout(QUIET, ws.next()).await;
    assert!(quiet.is_err(), "no pong, no echo, no close: {quiet:?}");
    assert_eq!(fx.stats().channel_sessions_open, 2);

    fx.faults().thaw_sessions();
    let (mut pong, mut echoed) = (false, false);
    while !(pong && echoed) {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the thawed session answers");
        match msg {
            Some(Ok(Message::Pong(p))) if &p[..] == b"anyone?" => pong = true,
            Some(Ok(Message::Binary(b))) if b == echo(b"during") => echoed = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Frozen again, then cut.
    fx.faults().freeze_sessions();
    fx.faults().drop_tunnels();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(end, Ok(None | Some(Err(_)))),
        "the frozen session is cut without a close frame: {end:?}"
    );
    eventually("no channel session is left open", || {
        fx.stats().channel_sessions_open == 0
    })
    .await;
}
