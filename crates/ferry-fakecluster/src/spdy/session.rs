//! One SPDY/3.1 port-forward session, served as kubelet serves `portforward.k8s.io`.
//!
//! The client (kubectl) opens, for each local TCP connection, an `error` stream and then a
//! `data` stream, each a SYN_STREAM with the headers `streamtype`, `port` and `requestid`
//! (the two streams of one connection share the request id; without one, the id is the
//! error stream's id, or the data stream's id minus 2). The server answers every valid
//! SYN_STREAM with an empty SYN_REPLY and resets invalid ones. Once a pair is complete it
//! connects to the pod's port and relays the data stream both ways. A failure is written
//! as text on the error stream. When a connection is over, the server closes (FIN) the
//! error stream, which kubectl waits for.
//!
//! Half-close: the client's FIN on the data stream shuts down writing to the pod; the
//! pod's end of stream becomes a FIN on the data stream. A RST_STREAM from the client
//! drops the pod connection at once. PINGs are echoed. The Go client neither sends nor
//! honours WINDOW_UPDATE (moby/spdystream has no flow control), so none is sent and those
//! received are ignored; backpressure is TCP's, through bounded queues.
//!
//! Tasks: this session loop reads and dispatches client frames and writes client bytes into
//! one bounded queue per pod connection; one task per pod connection relays both
//! directions; one writer task owns the transport and the compression context. Control
//! frames have their own queue, served first, so pings and replies never wait behind data.
//! A pod that does not read stalls the queue of its connection and then, as with kubelet,
//! the reading of client frames; the pod-to-client direction never waits on it.
//!
//! Freezing (a fault): while the session's gate is frozen, the session loop reads no
//! chunk and handles no frame already read, and the writer writes nothing, so pings go
//! unanswered and no data moves; the connection stays open. Only a cut (the abort token)
//! or the server stopping ends a frozen session; once thawed it goes on where it stopped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug};

use super::frame::{self, Control, Decoder, Deflater, Event, HeaderList, rst};
use super::transport::{ChunkSource, FrameSink, IoSink, IoSource};
use crate::faults::Gate;
use crate::idle::Activity;
use crate::stats::Counters;

/// Connects to a port of the pod being forwarded to.
pub(crate) trait PortConnector: Send + Sync + 'static {
    /// The connection, or the message to write on the error stream, worded as kubelet
    /// words it.
    fn connect(&self, port: u16) -> impl Future<Output = Result<TcpStream, String>> + Send;
}

/// Pod bytes per data frame.
const CHUNK: usize = 64 * 1024;
/// Frames queued for the writer (data) and control frames.
const DATA_QUEUE: usize = 16;
const CONTROL_QUEUE: usize = 64;
/// Client payload pieces queued per pod connection.
const POD_QUEUE: usize = 16;
/// How long kubelet waits for both streams of a connection.
const STREAM_PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// One session's settings.
pub(crate) struct Session<C> {
    pub connector: Arc<C>,
    /// Cancelled when the pod goes away: the session sends GOAWAY and closes.
    pub end: CancellationToken,
    /// Cancelled to cut the session at once, as a broken connection would.
    pub abort: CancellationToken,
    /// While it is frozen, the session neither reads nor writes.
    pub gate: Gate,
    /// Counts the forwarded connections.
    pub stats: Option<Arc<Counters>>,
    /// Kubelet's streaming idle timeout: no frame either way for this long closes the
    /// session (GOAWAY, then close), as spdystream's idle timer does.
    pub idle: Option<Duration>,
}

enum Ctl {
    Frame(Bytes),
    Reply(u32),
    Close,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Error,
    Data,
}

/// A stream the client opened.
struct StreamEntry {
    request: String,
    /// Client bytes for the pod (data streams, until the client's FIN).
    to_pod: Option<mpsc::Sender<Bytes>>,
    /// Set once the pod connection's task runs: until then client bytes are only queued
    /// if there is room, so the session never waits on a connection not yet started.
    started: bool,
    /// Cancelled when the client resets either stream of the connection.
    reset: CancellationToken,
}

/// A connection whose streams are not both open yet.
struct Pending {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
    from_client: Option<mpsc::Receiver<Bytes>>,
    reset: CancellationToken,
    since: Instant,
}

/// What the relay task of one connection needs to talk to the client.
#[derive(Clone)]
struct Out {
    data: mpsc::Sender<Bytes>,
}

impl Out {
    async fn send(&self, frame: Bytes) -> bool {
        self.data.send(frame).await.is_ok()
    }
}

impl<C: PortConnector> Session<C> {
    /// Serves a session on an upgraded byte stream (SPDY/3.1 over HTTP/1.1).
    pub(crate) async fn serve_io<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        self.serve(IoSource::new(r), IoSink(w)).await;
    }

    /// Serves a session over any transport.
    pub(crate) async fn serve<S: ChunkSource, K: FrameSink>(self, mut source: S, sink: K) {
        let (ctl_tx, ctl_rx) = mpsc::channel::<Ctl>(CONTROL_QUEUE);
        let (data_tx, data_rx) = mpsc::channel::<Bytes>(DATA_QUEUE);
        let mut gate = self.gate.clone();
        let activity = Activity::default();
        let mut writer = tokio::spawn(
            write_loop(sink, ctl_rx, data_rx, self.gate.clone(), activity.clone())
                .in_current_span(),
        );
        let idle = activity.idle_for(self.idle);
        tokio::pin!(idle);
        let out = Out { data: data_tx };
        let mut decoder = Decoder::new();
        let mut state = State {
            connector: self.connector.clone(),
            ctl: ctl_tx.clone(),
            out,
            streams: HashMap::new(),
            pending: HashMap::new(),
            relays: JoinSet::new(),
            last_client_stream: 0,
            stats: self.stats.clone(),
        };
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let graceful = loop {
            tokio::select! {
                biased;
                () = self.abort.cancelled() => {
                    debug!("SPDY session cut by fault injection");
                    writer.abort();
                    return;
                }
                () = gate.frozen() => {
                    debug!("SPDY session frozen by fault injection");
                    let thawed = tokio::select! {
                        () = self.abort.cancelled() => false,
                        thawed = gate.thaw() => thawed,
                    };
                    if !thawed {
                        debug!("frozen SPDY session cut");
                        writer.abort();
                        return;
                    }
                    debug!("SPDY session thawed");
                }
                () = self.end.cancelled() => {
                    debug!("pod went away; closing the SPDY session");
                    let _ = ctl_tx
                        .send(Ctl::Frame(frame::goaway(state.last_client_stream, frame::GOAWAY_OK)))
                        .await;
                    break true;
                }
                _ = &mut writer => {
                    debug!("writing to the client failed; SPDY session over");
                    return;
                }
                quiet = &mut idle => {
                    debug!(?quiet, "no frame either way for the streaming idle timeout; closing the SPDY session");
                    if let Some(stats) = &self.stats {
                        stats.idle_closed();
                    }
                    let _ = ctl_tx
                        .send(Ctl::Frame(frame::goaway(state.last_client_stream, frame::GOAWAY_OK)))
                        .await;
                    break true;
                }
                Some(done) = state.relays.join_next() => {
                    if let Ok((error, data)) = done {
                        state.streams.remove(&error);
                        state.streams.remove(&data);
                    }
                }
                _ = sweep.tick(), if !state.pending.is_empty() => state.expire_pending().await,
                chunk = source.next_chunk() => {
                    let mut chunk = match chunk {
                        Ok(Some(c)) => {
                            activity.saw();
                            c
                        }
                        Ok(None) => {
                            debug!("client closed the SPDY session");
                            break false;
                        }
                        Err(e) => {
                            debug!(error = %e, "reading from the client failed");
                            break false;
                        }
                    };
                    let mut go_away = false;
                    loop {
                        if gate.is_frozen() {
                            // Frames read but not handled yet wait for the thaw too.
                            let thawed = tokio::select! {
                                () = self.abort.cancelled() => false,
                                thawed = gate.thaw() => thawed,
                            };
                            if !thawed {
                                writer.abort();
                                return;
                            }
                        }
                        let event = match decoder.next(&mut chunk) {
                            Ok(Some(ev)) => ev,
                            Ok(None) => break,
                            Err(e) => {
                                debug!(error = %e, "not a SPDY/3 frame; closing");
                                let _ = ctl_tx
                                    .send(Ctl::Frame(frame::goaway(state.last_client_stream, 1)))
                                    .await;
                                go_away = true;
                                break;
                            }
                        };
                        let wait = async {
                            tokio::select! {
                                () = self.abort.cancelled() => {}
                                () = self.end.cancelled() => {}
                            }
                        };
                        tokio::select! {
                            biased;
                            () = wait => break,
                            keep_on = state.handle(event) => if !keep_on {
                                go_away = true;
                                break;
                            },
                        }
                    }
                    if go_away {
                        break true;
                    }
                }
            }
        };
        // Ends every relay (and so every pod connection) now.
        state.relays.abort_all();
        drop(state);
        let _ = ctl_tx.send(Ctl::Close).await;
        drop(ctl_tx);
        if graceful {
            // Let the writer send what is queued and close, but never wait long.
            if tokio::time::timeout(Duration::from_secs(2), &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
        } else {
            writer.abort();
        }
    }
}

struct State<C> {
    connector: Arc<C>,
    ctl: mpsc::Sender<Ctl>,
    out: Out,
    streams: HashMap<u32, StreamEntry>,
    pending: HashMap<String, Pending>,
    /// Each relay returns its (error, data) stream ids.
    relays: JoinSet<(u32, u32)>,
    last_client_stream: u32,
    stats: Option<Arc<Counters>>,
}

impl<C: PortConnector> State<C> {
    async fn control(&self, frame: Bytes) {
        let _ = self.ctl.send(Ctl::Frame(frame)).await;
    }

    /// Handles one event; `false` ends the session.
    async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Data { stream, bytes } => {
                if let Some(entry) = self.streams.get_mut(&stream)
                    && let Some(tx) = &entry.to_pod
                {
                    if entry.started {
                        if tx.send(bytes).await.is_err() {
                            // The pod connection is over; later bytes are dropped.
                            entry.to_pod = None;
                        }
                    } else if tx.try_send(bytes).is_err() {
                        debug!(stream, "client data before its connection started; dropped");
                    }
                }
            }
            Event::Fin { stream } => {
                if let Some(entry) = self.streams.get_mut(&stream) {
                    entry.to_pod = None;
                }
            }
            Event::Control(c) => return self.handle_control(c).await,
        }
        true
    }

    async fn handle_control(&mut self, c: Control) -> bool {
        match c {
            Control::SynStream {
                stream,
                fin,
                headers,
            } => self.open(stream, fin, &headers).await,
            Control::RstStream { stream, status } => {
                debug!(stream, status, "client reset a stream");
                if let Some(entry) = self.streams.remove(&stream) {
                    entry.reset.cancel();
                    if let Some(p) = self.pending.remove(&entry.request) {
                        for id in [p.error, p.data].into_iter().flatten() {
                            self.streams.remove(&id);
                        }
                    }
                }
            }
            Control::Ping(id) => {
                // Odd ids are the client's own pings: echo them. Even ones would answer
                // pings of this server, which sends none.
                if !id.is_multiple_of(2) {
                    self.control(frame::ping(id)).await;
                }
            }
            Control::GoAway { last_good } => {
                debug!(last_good, "client said GOAWAY");
                return false;
            }
            Control::SynReply { .. }
            | Control::Headers { .. }
            | Control::Settings
            | Control::WindowUpdate { .. }
            | Control::Unknown(_) => {}
        }
        true
    }

    async fn open(&mut self, stream: u32, fin: bool, headers: &HeaderList) {
        if stream.is_multiple_of(2) || stream <= self.last_client_stream {
            debug!(stream, "invalid client stream id");
            self.control(frame::rst_stream(stream, rst::PROTOCOL_ERROR))
                .await;
            return;
        }
        self.last_client_stream = stream;
        let (port, kind) = match stream_headers(headers) {
            Ok(v) => v,
            Err(why) => {
                // kubelet rejects such a stream by resetting it.
                debug!(stream, %why, "stream rejected");
                self.control(frame::rst_stream(stream, rst::CANCEL)).await;
                return;
            }
        };
        let request = match frame::header_value(headers, "requestid") {
            Some(id) if !id.is_empty() => id.to_string(),
            // Clients that predate the header: pair by stream id, as kubelet does.
            _ => match kind {
                Kind::Error => stream.to_string(),
                Kind::Data => stream.saturating_sub(2).to_string(),
            },
        };
        let _ = self.ctl.send(Ctl::Reply(stream)).await;
        let p = self
            .pending
            .entry(request.clone())
            .or_insert_with(|| Pending {
                port,
                error: None,
                data: None,
                from_client: None,
                reset: CancellationToken::new(),
                since: Instant::now(),
            });
        let taken = match kind {
            Kind::Error => p.error.is_some(),
            Kind::Data => p.data.is_some(),
        };
        if taken {
            let error_stream = p.error;
            let msg = format!(
                "error processing stream for request {request}: {} stream already assigned",
                if kind == Kind::Error { "error" } else { "data" }
            );
            debug!(stream, %msg);
            if let Some(err) = error_stream {
                let _ = self.out.send(frame::data(err, false, msg.as_bytes())).await;
            }
            self.control(frame::rst_stream(stream, rst::REFUSED_STREAM))
                .await;
            return;
        }
        match kind {
            Kind::Error => p.error = Some(stream),
            Kind::Data => p.data = Some(stream),
        }
        let mut to_pod = None;
        if kind == Kind::Data {
            let (tx, rx) = mpsc::channel(POD_QUEUE);
            p.from_client = Some(rx);
            // A data stream opened with FIN has nothing for the pod.
            to_pod = (!fin).then_some(tx);
        }
        let reset = p.reset.clone();
        self.streams.insert(
            stream,
            StreamEntry {
                request: request.clone(),
                to_pod,
                started: false,
                reset,
            },
        );
        if let (Some(error), Some(data)) = (p.error, p.data)
            && let Some(p) = self.pending.remove(&request)
        {
            let port = if kind == Kind::Data { port } else { p.port };
            if let Some(entry) = self.streams.get_mut(&data) {
                entry.started = true;
            }
            let relay = Relay {
                port,
                error,
                data,
                from_client: p.from_client,
                reset: p.reset,
                out: self.out.clone(),
            };
            let connector = self.connector.clone();
            let open = self.stats.as_ref().map(|s| s.spdy_connection());
            self.relays.spawn(
                async move {
                    let _open = open;
                    relay.run(&*connector).await;
                    (error, data)
                }
                .instrument(
                    tracing::debug_span!("connection", request = %request, pod.port = port),
                ),
            );
        }
    }

    /// Gives up on connections whose second stream never came, as kubelet does.
    async fn expire_pending(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= STREAM_PAIR_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for request in expired {
            let Some(p) = self.pending.remove(&request) else {
                continue;
            };
            debug!(%request, "timed out waiting for streams");
            if let Some(err) = p.error {
                let msg = format!("(request={request}) timed out waiting for streams");
                let _ = self.out.send(frame::data(err, true, msg.as_bytes())).await;
                self.streams.remove(&err);
            }
            if let Some(data) = p.data {
                self.control(frame::rst_stream(data, rst::CANCEL)).await;
                self.streams.remove(&data);
            }
        }
    }
}

fn stream_headers(headers: &HeaderList) -> Result<(u16, Kind), String> {
    let port = frame::header_value(headers, "port")
        .ok_or_else(|| "\"port\" header is required".to_string())?;
    let port = match port.parse::<u16>() {
        Ok(0) => return Err(format!("port \"{port}\" must be > 0")),
        Ok(p) => p,
        Err(e) => return Err(format!("unable to parse \"{port}\" as a port: {e}")),
    };
    let kind = match frame::header_value(headers, "streamtype") {
        Some("error") => Kind::Error,
        Some("data") => Kind::Data,
        Some(other) => return Err(format!("invalid stream type \"{other}\"")),
        None => return Err("\"streamType\" header is required".into()),
    };
    Ok((port, kind))
}

/// One forwarded connection: a pair of streams and, once connected, a pod socket.
struct Relay {
    port: u16,
    error: u32,
    data: u32,
    from_client: Option<mpsc::Receiver<Bytes>>,
    reset: CancellationToken,
    out: Out,
}

impl Relay {
    async fn run<C: PortConnector>(self, connector: &C) {
        let connected = tokio::select! {
            c = connector.connect(self.port) => c,
            () = self.reset.cancelled() => {
                self.out.send(frame::data(self.error, true, b"")).await;
                return;
            }
        };
        match connected {
            Err(message) => {
                debug!(%message, "pod port unreachable");
                // kubelet writes the message, then closes the error and data streams.
                let _ = self
                    .out
                    .send(frame::data(self.error, false, message.as_bytes()))
                    .await
                    && self.out.send(frame::data(self.error, true, b"")).await
                    && self.out.send(frame::data(self.data, true, b"")).await;
            }
            Ok(sock) => {
                let (r, w) = sock.into_split();
                let up = client_to_pod(self.from_client, w);
                let down = async {
                    if pod_to_client(r, self.data, &self.out).await {
                        self.out.send(frame::data(self.data, true, b"")).await;
                    }
                };
                tokio::select! {
                    () = self.reset.cancelled() => debug!("client reset the connection"),
                    _ = futures::future::join(up, down) => debug!("connection finished"),
                }
                self.out.send(frame::data(self.error, true, b"")).await;
            }
        }
    }
}

/// Writes client bytes to the pod until the client's FIN, then shuts down writing.
async fn client_to_pod(from_client: Option<mpsc::Receiver<Bytes>>, mut w: OwnedWriteHalf) {
    if let Some(mut rx) = from_client {
        while let Some(bytes) = rx.recv().await {
            if let Err(e) = w.write_all(&bytes).await {
                debug!(error = %e, "writing to the pod failed");
                return;
            }
        }
    }
    let _ = w.shutdown().await;
}

/// Sends what the pod writes as data frames; `true` when the pod ended its stream.
async fn pod_to_client(mut r: OwnedReadHalf, stream: u32, out: &Out) -> bool {
    loop {
        let mut buf = BytesMut::with_capacity(frame::HEADER_LEN + CHUNK);
        buf.put_bytes(0, frame::HEADER_LEN);
        match (&mut r).take(CHUNK as u64).read_buf(&mut buf).await {
            Ok(0) => return true,
            Ok(n) => {
                frame::put_data_header(&mut buf[..frame::HEADER_LEN], stream, false, n);
                if !out.send(buf.freeze()).await {
                    return false;
                }
            }
            Err(e) => {
                debug!(error = %e, "reading from the pod failed");
                return true;
            }
        }
    }
}

/// Owns the transport and the header compression context: writes control frames first,
/// then data frames, flushing whenever nothing more is queued. Writes nothing while the
/// session is frozen.
async fn write_loop<K: FrameSink>(
    mut sink: K,
    mut ctl: mpsc::Receiver<Ctl>,
    mut data: mpsc::Receiver<Bytes>,
    mut gate: Gate,
    activity: Activity,
) {
    let mut deflater = match Deflater::new() {
        Ok(d) => d,
        Err(e) => {
            debug!(error = %e, "no header compressor");
            return;
        }
    };
    loop {
        if !gate.thaw().await {
            return;
        }
        let frame = tokio::select! {
            biased;
            () = gate.frozen() => continue,
            c = ctl.recv() => match c {
                Some(Ctl::Frame(f)) => f,
                Some(Ctl::Reply(stream)) => match frame::syn_reply(&mut deflater, stream, &[]) {
                    Ok(f) => f,
                    Err(e) => {
                        debug!(error = %e, "could not compress a reply");
                        return;
                    }
                },
                Some(Ctl::Close) | None => break,
            },
            d = data.recv() => match d {
                Some(f) => f,
                None => break,
            },
        };
        if let Err(e) = sink.send(frame).await {
            debug!(error = %e, "writing to the client failed");
            return;
        }
        activity.saw();
        if ctl.is_empty()
            && data.is_empty()
            && let Err(e) = sink.flush().await
        {
            debug!(error = %e, "writing to the client failed");
            return;
        }
    }
    let _ = sink.flush().await;
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::testing::SpdyClient;
    use tokio::io::DuplexStream;
    use tokio::net::TcpListener;

    /// Connects port 9000 to a local echo server; any other port is refused.
    struct Echo(std::net::SocketAddr);

    impl PortConnector for Echo {
        async fn connect(&self, port: u16) -> Result<TcpStream, String> {
            if port != 9000 {
                return Err(format!("port {port}: connection refused"));
            }
            TcpStream::connect(self.0).await.map_err(|e| e.to_string())
        }
    }

    async fn echo_server() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        addr
    }

    /// Plays kubectl's part over an in-memory connection to a session.
    async fn start(end: CancellationToken) -> SpdyClient<DuplexStream> {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let session = Session {
            connector: Arc::new(Echo(echo_server().await)),
            end,
            abort: CancellationToken::new(),
            gate: Gate::inert(),
            stats: None,
            idle: None,
        };
        tokio::spawn(session.serve_io(server));
        SpdyClient::new(client)
    }

    #[tokio::test]
    async fn a_connection_echoes_half_closes_and_answers_pings() {
        let mut c = start(CancellationToken::new()).await;
        c.open(1, "error", "9000", "0").await;
        c.send(frame::data(1, true, b"")).await;
        c.open(3, "data", "9000", "0").await;
        c.send(frame::data(3, false, b"hello ")).await;
        c.send(frame::ping(1)).await;
        c.send(frame::data(3, true, b"world")).await;
        let (events, data) = c.until_fin(1).await;
        assert_eq!(data.get(&3).map(Vec::as_slice), Some(&b"hello world"[..]));
        for expected in [
            Event::Control(Control::SynReply { stream: 1 }),
            Event::Control(Control::SynReply { stream: 3 }),
            Event::Control(Control::Ping(1)),
            Event::Fin { stream: 3 },
        ] {
            assert!(events.contains(&expected), "{expected:?} in {events:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_port_is_reported_on_the_error_stream() {
        let mut c = start(CancellationToken::new()).await;
        c.open(1, "error", "9999", "7").await;
        c.open(3, "data", "9999", "7").await;
        let (events, data) = c.until_fin(1).await;
        let msg = String::from_utf8_lossy(data.get(&1).expect("an error message"));
        assert!(msg.contains("connection refused"), "{msg}");
        assert!(!data.contains_key(&3));
        assert!(events.contains(&Event::Control(Control::SynReply { stream: 3 })));
    }

    #[tokio::test]
    async fn a_reset_ends_the_connection_and_closes_the_error_stream() {
        let mut c = start(CancellationToken::new()).await;
        c.open(1, "error", "9000", "0").await;
        c.open(3, "data", "9000", "0").await;
        c.send(frame::data(3, false, b"abc")).await;
        // Wait for the echo, then reset the data stream as kubectl does when it is done.
        let mut got = Vec::new();
        while got.len() < 3 {
            if let Some(Event::Data { stream: 3, bytes }) = c.next().await {
                got.extend_from_slice(&bytes);
            }
        }
        c.send(frame::rst_stream(3, rst::CANCEL)).await;
        let (events, _) = c.until_fin(1).await;
        assert!(!events.contains(&Event::Fin { stream: 3 }), "{events:?}");
    }

    #[tokio::test]
    async fn bad_streams_are_reset_and_the_pod_going_away_says_goaway() {
        let end = CancellationToken::new();
        let mut c = start(end.clone()).await;
        c.open(1, "bogus", "9000", "0").await;
        assert_eq!(
            c.next().await,
            Some(Event::Control(Control::RstStream {
                stream: 1,
                status: rst::CANCEL
            }))
        );
        c.open(3, "error", "0", "0").await;
        assert_eq!(
            c.next().await,
            Some(Event::Control(Control::RstStream {
                stream: 3,
                status: rst::CANCEL
            }))
        );
        // Stream ids must grow.
        c.open(3, "error", "9000", "1").await;
        assert_eq!(
            c.next().await,
            Some(Event::Control(Control::RstStream {
                stream: 3,
                status: rst::PROTOCOL_ERROR
            }))
        );
        end.cancel();
        assert_eq!(
            c.next().await,
            Some(Event::Control(Control::GoAway { last_good: 3 }))
        );
        assert_eq!(c.next().await, None, "then the connection closes");
    }
}
