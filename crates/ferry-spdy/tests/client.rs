//! The client session against a scripted server on an in-memory pipe: streams opened as
//! kubectl opens them, GOAWAY, pings both ways, a silent server, kubelet's error stream.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferry_spdy::client::{Config, OpenError, Session, SessionLost, Stream};
use ferry_spdy::frame::{self, Control, Decoder, Deflater, Event, header_value};
use ferry_spdy::transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// The server's end: reads events, writes frames.
struct Server {
    io: DuplexStream,
    decoder: Decoder,
    pending: Bytes,
    deflater: Deflater,
}

impl Server {
    async fn event(&mut self) -> Event {
        loop {
            if let Some(ev) = self.decoder.next(&mut self.pending).expect("valid SPDY") {
                return ev;
            }
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let n = self.io.read_buf(&mut buf).await.expect("read");
            assert!(n > 0, "the client closed");
            self.pending = buf.freeze();
        }
    }

    /// The next control frame, skipping data and pings.
    async fn control(&mut self) -> Control {
        loop {
            match self.event().await {
                Event::Control(Control::Ping(_)) => {}
                Event::Control(c) => return c,
                _ => {}
            }
        }
    }

    async fn send(&mut self, f: Bytes) {
        self.io.write_all(&f).await.expect("write");
    }

    /// Reads a connection's two SYN_STREAMs: its (error, data) stream ids.
    async fn accept(&mut self) -> (u32, u32) {
        let mut ids = Vec::new();
        let mut kinds = Vec::new();
        while ids.len() < 2 {
            if let Control::SynStream {
                stream, headers, ..
            } = self.control().await
            {
                kinds.push(header_value(&headers, "streamtype").map(str::to_string));
                assert_eq!(header_value(&headers, "port"), Some("8080"));
                assert!(header_value(&headers, "requestid").is_some());
                ids.push(stream);
            }
        }
        assert_eq!(kinds, [Some("error".into()), Some("data".into())]);
        let reply = frame::syn_reply(&mut self.deflater, ids[0], &[]).expect("reply");
        self.send(reply).await;
        let reply = frame::syn_reply(&mut self.deflater, ids[1], &[]).expect("reply");
        self.send(reply).await;
        (ids[0], ids[1])
    }
}

fn pair(config: Config) -> (Session, Server) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (source, sink) = transport::plain(client);
    let session = Session::start(source, sink, config);
    let server = Server {
        io: server,
        decoder: Decoder::new(),
        pending: Bytes::new(),
        deflater: Deflater::new().expect("deflater"),
    };
    (session, server)
}

#[tokio::test]
async fn streams_carry_bytes_and_half_closes_both_ways() {
    let (session, mut server) = pair(Config::default());
    let mut a = session.open(8080).expect("open");
    let (_, data) = server.accept().await;
    a.write_all(b"hello").await.expect("write");
    a.shutdown().await.expect("shutdown");
    let mut got = Vec::new();
    loop {
        match server.event().await {
            Event::Data { stream, bytes } if stream == data => got.extend_from_slice(&bytes),
            Event::Fin { stream } if stream == data => break,
            _ => {}
        }
    }
    assert_eq!(got, b"hello");
    server.send(frame::data(data, false, b"world")).await;
    server.send(frame::data(data, true, b"")).await;
    let mut back = [0u8; 5];
    a.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"world");
    assert_eq!(session.connections(), 1);
    drop(a);
    assert_eq!(session.connections(), 0);
}

#[tokio::test]
async fn kubelets_message_on_the_error_stream_fails_the_read() {
    let (session, mut server) = pair(Config::default());
    let mut a = session.open(8080).expect("open");
    let (error, data) = server.accept().await;
    let msg = b"an error occurred forwarding 8080 -> 8080: connection refused";
    server.send(frame::data(error, false, msg)).await;
    server.send(frame::data(error, true, b"")).await;
    server.send(frame::data(data, true, b"")).await;
    let mut buf = [0u8; 8];
    let err = a.read(&mut buf).await.expect_err("a refusal");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn after_goaway_running_connections_go_on_and_no_new_one_is_taken() {
    let (session, mut server) = pair(Config::default());
    let mut a = session.open(8080).expect("open");
    let (_, data) = server.accept().await;
    server.send(frame::goaway(data, 0)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while session.usable() {
        assert!(tokio::time::Instant::now() < deadline, "GOAWAY never seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(session.open(8080), Err(OpenError::GoingAway)));
    server.send(frame::data(data, false, b"still here")).await;
    let mut back = [0u8; 10];
    a.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"still here");
}

#[tokio::test]
async fn the_servers_pings_are_answered() {
    let (_session, mut server) = pair(Config::default());
    server.send(frame::ping(2)).await;
    loop {
        if let Event::Control(Control::Ping(id)) = server.event().await {
            assert_eq!(id, 2);
            break;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_ends_the_session_within_two_intervals() {
    let config = Config {
        ping_interval: Duration::from_secs(5),
        ..Config::default()
    };
    let (session, mut server) = pair(config);
    let mut a = session.open(8080).expect("open");
    server.accept().await;
    let frozen_at = tokio::time::Instant::now();
    // The server reads nothing more and writes nothing: frozen.
    let ended = tokio::time::timeout(Duration::from_secs(30), session.ended()).await;
    assert!(ended.is_ok(), "the session never ended");
    let took = frozen_at.elapsed();
    // A ping within an interval of the connection (at the next quarter interval when the
    // session saw it open, else on the regular beat), then 3.75 s of silence.
    assert!(took <= Duration::from_millis(8_800), "{took:?}");
    assert!(took >= Duration::from_millis(4_950), "{took:?}");
    let mut buf = [0u8; 1];
    let err = a.read(&mut buf).await.expect_err("the connection failed");
    assert!(SessionLost::of(&err).is_some_and(|l| l.silent), "{err:?}");
    assert!(matches!(session.open(8080), Err(OpenError::Closed(_))));
    drop(server);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_answers_pings_keeps_the_session() {
    let config = Config {
        ping_interval: Duration::from_secs(5),
        ..Config::default()
    };
    let (session, mut server) = pair(config);
    let answering = tokio::spawn(async move {
        loop {
            if let Event::Control(Control::Ping(id)) = server.event().await {
                server.send(frame::ping(id)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(session.usable(), "{:?}", session.closed());
    answering.abort();
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_closes_itself() {
    let config = Config {
        ping_interval: Duration::from_secs(5),
        idle: Some(Duration::from_secs(30)),
        ..Config::default()
    };
    let (session, mut server) = pair(config);
    let answering = tokio::spawn(async move {
        loop {
            if let Event::Control(Control::Ping(id)) = server.event().await {
                server.send(frame::ping(id)).await;
            }
        }
    });
    let a = session.open(8080).expect("open");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(session.usable(), "a session with a connection stays");
    drop(a);
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(session.closed().as_deref(), Some("closed after being idle"));
    answering.abort();
}

/// When a session that only carried brief connections (health checks) and one that
/// carried any other connection close after their last connection ends.
#[tokio::test(start_paused = true)]
async fn a_session_of_brief_connections_closes_at_its_next_look() {
    let config = Config {
        ping_interval: Duration::from_secs(4),
        idle: Some(Duration::from_secs(30)),
        ..Config::default()
    };
    let closed_after = |session: Session, last: Stream| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(last);
        let ended = tokio::time::Instant::now();
        while session.closed().is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ended.elapsed()
    };
    let answer = |mut server: Server| {
        tokio::spawn(async move {
            loop {
                if let Event::Control(Control::Ping(id)) = server.event().await {
                    server.send(frame::ping(id)).await;
                }
            }
        })
    };

    // Checks only: closed at the next look (a quarter of the ping interval: 1 s).
    let (session, server) = pair(config.clone());
    let answering = answer(server);
    let a = session.open_brief(8080).expect("open");
    drop(a);
    let b = session.open_brief(8080).expect("a second check shares it");
    let after = closed_after(session, b).await;
    assert!(
        after <= Duration::from_secs(1),
        "closed {after:?} after the check"
    );
    answering.abort();

    // A connection went through it too: kept for the idle time.
    let (session, server) = pair(config.clone());
    let answering = answer(server);
    let a = session.open_brief(8080).expect("open");
    let b = session.open(8080).expect("open");
    drop(b);
    let after = closed_after(session, a).await;
    assert!(
        after >= Duration::from_secs(30) && after <= Duration::from_secs(31),
        "closed {after:?} after the last connection"
    );
    answering.abort();

    // Kept ahead of demand: the same.
    let (session, server) = pair(config);
    let answering = answer(server);
    session.keep();
    let a = session.open_brief(8080).expect("open");
    let after = closed_after(session, a).await;
    assert!(
        after >= Duration::from_secs(30),
        "closed {after:?} after the check"
    );
    answering.abort();
}

/// A session cut by the server says, per connection, whether the server had taken it
/// (replied to its data stream): one it had not took nothing to the pod and may be sent
/// again; one it had may have.
#[tokio::test]
async fn a_cut_session_says_which_connections_the_server_never_took() {
    let (session, mut server) = pair(Config::default());
    let mut taken = session.open(8080).expect("open");
    server.accept().await;
    taken.write_all(b"GET /").await.expect("write");
    // Opened, its SYN_STREAMs read, but never replied to.
    let mut untaken = session.open(8080).expect("open");
    let mut syns = 0;
    while syns < 2 {
        if let Control::SynStream { .. } = server.control().await {
            syns += 1;
        }
    }
    untaken.write_all(b"GET /").await.expect("write");
    drop(server);
    session.ended().await;
    let mut buf = [0u8; 1];
    let err = taken
        .read(&mut buf)
        .await
        .expect_err("the connection failed");
    let lost = SessionLost::of(&err).expect("a session loss");
    assert!(
        !lost.silent && !lost.unaccepted && !lost.undelivered(),
        "{lost:?}"
    );
    let err = untaken
        .read(&mut buf)
        .await
        .expect_err("the connection failed");
    let lost = SessionLost::of(&err).expect("a session loss");
    assert!(
        !lost.silent && lost.unaccepted && lost.undelivered(),
        "{lost:?}"
    );
}
