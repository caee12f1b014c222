//! The client side of a SPDY/3.1 port-forward session: many local connections to one pod,
//! each a pair of streams, as `kubectl port-forward` opens them (an `error` stream and a
//! `data` stream sharing a `requestid`), on one upgraded connection.
//!
//! A [`Session`] runs one task that owns the transport: it reads and dispatches the
//! server's frames, writes the frames the connections queue (control frames first, so
//! pings and resets never wait behind data), and pings the server. A [`Stream`] is one
//! connection: `AsyncRead + AsyncWrite`, with half-close carried both ways (shutting
//! down writing sends FIN on the data stream; the pod's FIN reads as end of stream).
//!
//! # Flow control
//!
//! The Go side (moby/spdystream, in kubelet and the API server) neither sends nor honours
//! WINDOW_UPDATE, so nothing can ask the server to stop sending on one stream: the only
//! brake is TCP on the whole session. Each connection therefore has a receive buffer;
//! while it holds less than [`Config::stream_buffer`] the session never waits for the
//! connection's reader. When it is full the session waits for room (the same brake
//! kubectl applies, to every connection of the session), but only while the reader keeps
//! reading: a connection whose reader took nothing for [`Config::stall`] is reset and
//! fails, and the others go on. While a session waits it is [`Session::blocked`], and
//! callers give new connections to another session. Memory per connection is bounded by
//! the buffer; a slow reader is slowed down, never cut.
//!
//! # Liveness
//!
//! While it carries connections the session sends a PING every [`Config::ping_interval`],
//! and one at the next quarter interval after a new connection; an idle one costs no
//! traffic. If three quarters of an interval pass after a ping with not one byte from the
//! server (neither the answer nor anything else), the session is dead (a session frozen
//! at any moment is found within 1.75 intervals, and a new connection on a frozen idle one
//! within one): its connections fail and it takes no new ones. A GOAWAY from the
//! server (the pod is going) keeps running connections but takes no new ones.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, PollSender};
use tracing::debug;

use crate::frame::{self, Control, Decoder, Deflater, Event, rst};
use crate::transport::{ChunkSource, FrameSink};

/// A session's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often the server is pinged; a session silent for a whole interval after a
    /// ping is dead.
    pub ping_interval: Duration,
    /// Bytes a connection may hold unread before the session waits for its reader.
    pub stream_buffer: usize,
    /// A connection whose reader takes nothing for this long while the session waits on
    /// it is reset.
    pub stall: Duration,
    /// The most bytes one data frame carries.
    pub frame_size: usize,
    /// A session without connections for this long closes itself (checked once per ping
    /// interval); `None` keeps it.
    pub idle: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(5),
            stream_buffer: 1024 * 1024,
            stall: Duration::from_secs(2),
            frame_size: 128 * 1024,
            idle: None,
        }
    }
}

/// Why a connection could not be opened on a session.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The session ended (the reason says how).
    #[error("the session is closed: {0}")]
    Closed(String),
    /// The server said GOAWAY: the pod is going, the session takes no new connections.
    #[error("the server is closing the session (GOAWAY)")]
    GoingAway,
    /// Stream ids are used up; a new session is needed.
    #[error("the session has no stream ids left")]
    Exhausted,
}

/// The error a connection fails with when its session ended: its reason, whether the
/// server went silent (no answer to a ping), in which case nothing written since reached
/// the pod as far as anyone can tell, and whether the server had not yet accepted the
/// connection's data stream (no SYN_REPLY), in which case nothing of it reached the pod.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{why}")]
pub struct SessionLost {
    pub why: String,
    pub silent: bool,
    /// The session ended before the server replied to the connection's data stream: the
    /// server (kubelet) replies as it accepts a stream, before any of its bytes go to the
    /// pod.
    pub unaccepted: bool,
}

impl SessionLost {
    /// Whether nothing written on the connection can have reached the pod: the session
    /// went silent, or ended before the server accepted the connection.
    pub fn undelivered(&self) -> bool {
        self.silent || self.unaccepted
    }

    /// The session loss behind `e`, if that is what it is.
    pub fn of(e: &io::Error) -> Option<&SessionLost> {
        e.get_ref().and_then(|r| r.downcast_ref::<SessionLost>())
    }
}

/// Data frames queued for the writer, per session.
const DATA_QUEUE: usize = 32;
/// The most bytes of an error message kept per connection.
const MAX_ERROR: usize = 64 * 1024;
/// After the pod's end of stream, how long a read waits for the error stream to end (a
/// failure message comes on it).
const ERROR_WAIT: Duration = Duration::from_secs(2);
/// The last stream id a client may use (ids are 31 bits, odd for the client).
const LAST_ID: u32 = 0x7fff_fff0;

enum Ctl {
    Syn {
        stream: u32,
        headers: [(&'static str, String); 3],
    },
    Frame(Bytes),
}

/// A handle on a running session. Clones share it; the session ends when the last handle
/// and the last of its streams are dropped, or on [`Session::close`].
#[derive(Clone)]
pub struct Session {
    owner: Arc<Owner>,
}

/// Ends the session's task when dropped.
struct Owner {
    core: Arc<Core>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

struct Core {
    config: Config,
    state: Mutex<State>,
    ctl: mpsc::UnboundedSender<Ctl>,
    data: mpsc::Sender<Bytes>,
    /// Bytes received from the server so far (liveness).
    received: AtomicU64,
    /// Open connections (streams not yet dropped).
    connections: AtomicUsize,
    /// Connections ever opened.
    opened: AtomicU64,
    /// Whether a connection not opened as brief ever went through the session: until
    /// then it closes as soon as it carries nothing (see [`Session::open_brief`]).
    kept: AtomicBool,
    /// The session waits for a full connection's reader.
    blocked: AtomicBool,
    /// Cancelled when the session has ended.
    ended: CancellationToken,
    /// The id of the last answer to one of our pings, signalled through `heard`.
    pong: std::sync::atomic::AtomicU32,
    heard: Notify,
    /// Ids of [`Session::check`]'s pings (odd, above the pinger's).
    next_check: std::sync::atomic::AtomicU32,
    /// Cancelled to end the session as silent (a check went unanswered), with the reason.
    silenced: CancellationToken,
    silenced_why: Mutex<String>,
}

#[derive(Default)]
struct State {
    next_id: u32,
    next_request: u64,
    streams: HashMap<u32, Arc<Conn>>,
    going_away: bool,
    closed: Option<String>,
}

/// One connection: its two stream ids and what the server sent on them.
struct Conn {
    error_id: u32,
    data_id: u32,
    recv: Mutex<Recv>,
    /// Signalled when the reader takes bytes.
    room: Notify,
}

#[derive(Default)]
struct Recv {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// The server replied to the data stream (SYN_REPLY): it took the connection.
    accepted: bool,
    /// The pod ended its side (FIN on the data stream).
    data_fin: bool,
    /// Text the server wrote on the error stream.
    error: Vec<u8>,
    /// The error stream ended.
    error_fin: bool,
    /// The connection failed (reset, session ended); reads and writes fail with this.
    failed: Option<Failure>,
    waker: Option<Waker>,
    /// Bumped on every read that took bytes.
    reads: u64,
}

impl Recv {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn fail(&mut self, failure: Failure) {
        if self.failed.is_none() && !(self.data_fin && self.error_fin) {
            self.failed = Some(failure);
        }
        self.wake();
    }
}

/// Why a connection failed.
#[derive(Clone, Debug)]
enum Failure {
    /// The connection alone (reset, stalled reader).
    Own(io::ErrorKind, String),
    /// Its session ended.
    Session(SessionLost),
}

impl Failure {
    fn own(kind: io::ErrorKind, why: &str) -> Failure {
        Failure::Own(kind, why.to_string())
    }

    fn error(&self) -> io::Error {
        match self {
            Failure::Own(kind, why) => io::Error::new(*kind, why.clone()),
            Failure::Session(lost) => io::Error::new(
                if lost.silent {
                    io::ErrorKind::TimedOut
                } else {
                    io::ErrorKind::ConnectionAborted
                },
                lost.clone(),
            ),
        }
    }
}

impl Session {
    /// Starts a session on an upgraded connection's two halves. Needs a Tokio runtime.
    pub fn start<S: ChunkSource, K: FrameSink>(source: S, sink: K, config: Config) -> Session {
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        let core = Arc::new(Core {
            config,
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
            ctl: ctl_tx,
            data: data_tx,
            received: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
            kept: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            ended: CancellationToken::new(),
            pong: std::sync::atomic::AtomicU32::new(0),
            heard: Notify::new(),
            next_check: std::sync::atomic::AtomicU32::new(0x4000_0001),
            silenced: CancellationToken::new(),
            silenced_why: Mutex::new(String::new()),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(drive(
            core.clone(),
            source,
            sink,
            ctl_rx,
            data_rx,
            cancel.clone(),
        ));
        Session {
            owner: Arc::new(Owner {
                core,
                cancel,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// Opens a connection to `port` of the pod: an error stream and a data stream. Does
    /// not wait for the server's reply; bytes written at once follow the streams' opening.
    pub fn open(&self, port: u16) -> Result<Stream, OpenError> {
        self.open_as(port, false)
    }

    /// [`Session::open`] for a short check (a health probe): a session that only ever
    /// carried such connections does not wait [`Config::idle`] once it carries nothing,
    /// but closes at its next look (within a quarter of the ping interval), so checks of
    /// many idle pods do not hold a session each.
    pub fn open_brief(&self, port: u16) -> Result<Stream, OpenError> {
        self.open_as(port, true)
    }

    /// Keeps the session for [`Config::idle`] after its last connection even if only brief
    /// ones went through it (a session held open ahead of demand).
    pub fn keep(&self) {
        self.owner.core.kept.store(true, Ordering::Relaxed);
    }

    fn open_as(&self, port: u16, brief: bool) -> Result<Stream, OpenError> {
        let core = &self.owner.core;
        let conn = {
            let mut st = core.state.lock();
            if let Some(why) = &st.closed {
                return Err(OpenError::Closed(why.clone()));
            }
            if st.going_away {
                return Err(OpenError::GoingAway);
            }
            if st.next_id > LAST_ID {
                return Err(OpenError::Exhausted);
            }
            let error_id = st.next_id;
            let data_id = error_id + 2;
            st.next_id += 4;
            let request = st.next_request.to_string();
            st.next_request += 1;
            let conn = Arc::new(Conn {
                error_id,
                data_id,
                recv: Mutex::new(Recv::default()),
                room: Notify::new(),
            });
            st.streams.insert(error_id, conn.clone());
            st.streams.insert(data_id, conn.clone());
            // Queued under the lock: stream ids reach the server in increasing order.
            let port = port.to_string();
            let syn = |stream, kind: &str| Ctl::Syn {
                stream,
                headers: [
                    ("streamtype", kind.to_string()),
                    ("port", port.clone()),
                    ("requestid", request.clone()),
                ],
            };
            let queued = core.ctl.send(syn(error_id, "error")).is_ok()
                // Nothing is ever written on the error stream: end it at once, as kubectl
                // does.
                && core.ctl.send(Ctl::Frame(frame::data(error_id, true, b""))).is_ok()
                && core.ctl.send(syn(data_id, "data")).is_ok();
            if !queued {
                st.streams.remove(&error_id);
                st.streams.remove(&data_id);
                return Err(OpenError::Closed("the session's writer ended".into()));
            }
            // Counted under the lock: an idle session closes only with none counted.
            core.connections.fetch_add(1, Ordering::SeqCst);
            core.opened.fetch_add(1, Ordering::Relaxed);
            if !brief {
                core.kept.store(true, Ordering::Relaxed);
            }
            conn
        };
        Ok(Stream {
            conn,
            owner: self.owner.clone(),
            sender: PollSender::new(core.data.clone()),
            wrote_fin: false,
            error_wait: None,
        })
    }

    /// Whether new connections may go to this session now.
    pub fn usable(&self) -> bool {
        let st = self.owner.core.state.lock();
        st.closed.is_none() && !st.going_away && st.next_id <= LAST_ID
    }

    /// Whether the session ended, and why.
    pub fn closed(&self) -> Option<String> {
        self.owner.core.state.lock().closed.clone()
    }

    /// Whether the session is waiting for a connection's reader to make room.
    pub fn blocked(&self) -> bool {
        self.owner.core.blocked.load(Ordering::SeqCst)
    }

    /// Connections open on the session.
    pub fn connections(&self) -> usize {
        self.owner.core.connections.load(Ordering::SeqCst)
    }

    /// Resolves once the session has ended.
    pub async fn ended(&self) {
        self.owner.core.ended.cancelled().await;
    }

    /// Ends the session now: its connections fail.
    pub fn close(&self) {
        self.owner.cancel.cancel();
    }

    /// Pings the server now and waits up to `within` for the answer (bytes already on
    /// their way do not count). A server that does not answer ends the session as a
    /// silent one (see [`SessionLost`]), with `why`. Returns whether the session is alive.
    pub async fn check(&self, within: Duration, why: &str) -> bool {
        let core = &self.owner.core;
        if self.closed().is_some() {
            return false;
        }
        let id = core.next_check.fetch_add(2, Ordering::SeqCst) | 1;
        if core.ctl.send(Ctl::Frame(frame::ping(id))).is_err() {
            return false;
        }
        let answer = async {
            loop {
                let heard = core.heard.notified();
                tokio::pin!(heard);
                heard.as_mut().enable();
                if core.pong.load(Ordering::SeqCst) == id {
                    return;
                }
                heard.await;
            }
        };
        let answered = tokio::select! {
            () = answer => true,
            () = tokio::time::sleep(within) => false,
            () = core.ended.cancelled() => false,
        };
        if !answered {
            *core.silenced_why.lock() = why.to_string();
            core.silenced.cancel();
        }
        answered
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connections", &self.connections())
            .field("closed", &self.closed())
            .finish_non_exhaustive()
    }
}

/// The session's one task: reads, writes and pings until the transport ends, the server
/// goes silent, or the session is closed.
async fn drive<S: ChunkSource, K: FrameSink>(
    core: Arc<Core>,
    source: S,
    sink: K,
    ctl_rx: mpsc::UnboundedReceiver<Ctl>,
    data_rx: mpsc::Receiver<Bytes>,
    cancel: CancellationToken,
) {
    let (why, silent) = tokio::select! {
        why = read_loop(&core, source) => (why, false),
        why = write_loop(sink, ctl_rx, data_rx) => (why, false),
        why = ping_loop(&core) => why,
        () = core.silenced.cancelled() => (core.silenced_why.lock().clone(), true),
        () = cancel.cancelled() => ("the session was closed".to_string(), false),
    };
    debug!(reason = %why, "SPDY session over");
    end(&core, &why, silent);
}

/// Marks the session ended and fails the connections still running.
fn end(core: &Core, why: &str, silent: bool) {
    let conns: Vec<Arc<Conn>> = {
        let mut st = core.state.lock();
        if st.closed.is_none() {
            st.closed = Some(why.to_string());
        }
        st.streams.drain().map(|(_, c)| c).collect()
    };
    for conn in conns {
        let mut recv = conn.recv.lock();
        let lost = SessionLost {
            why: why.to_string(),
            silent,
            unaccepted: !recv.accepted,
        };
        recv.fail(Failure::Session(lost));
        drop(recv);
        conn.room.notify_one();
    }
    core.blocked.store(false, Ordering::SeqCst);
    core.ended.cancel();
}

async fn read_loop<S: ChunkSource>(core: &Core, mut source: S) -> String {
    let mut decoder = Decoder::new();
    loop {
        let mut chunk = match source.next_chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return "the server closed the connection".into(),
            Err(e) => return format!("reading from the server failed: {e}"),
        };
        core.received
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        loop {
            match decoder.next(&mut chunk) {
                Ok(Some(event)) => handle(core, event).await,
                Ok(None) => break,
                Err(e) => return format!("the server sent something that is not SPDY/3: {e}"),
            }
        }
    }
}

fn conn_of(core: &Core, stream: u32) -> Option<Arc<Conn>> {
    core.state.lock().streams.get(&stream).cloned()
}

async fn handle(core: &Core, event: Event) {
    match event {
        Event::Data { stream, bytes } => {
            let Some(conn) = conn_of(core, stream) else {
                return;
            };
            if stream == conn.error_id {
                let mut recv = conn.recv.lock();
                let room = MAX_ERROR.saturating_sub(recv.error.len());
                let take = bytes.len().min(room);
                recv.error.extend_from_slice(&bytes[..take]);
                return;
            }
            deliver(core, &conn, bytes).await;
        }
        Event::Fin { stream } => {
            if let Some(conn) = conn_of(core, stream) {
                let mut recv = conn.recv.lock();
                if stream == conn.error_id {
                    recv.error_fin = true;
                } else {
                    recv.data_fin = true;
                }
                recv.wake();
            }
        }
        Event::Control(c) => match c {
            Control::RstStream { stream, status } => {
                if let Some(conn) = conn_of(core, stream) {
                    debug!(stream, status, "the server reset a stream");
                    let why = format!("the server reset the connection (SPDY status {status})");
                    let mut recv = conn.recv.lock();
                    // A reset error stream after the pod's end is only tidying up.
                    if stream == conn.data_id || !recv.data_fin {
                        recv.fail(Failure::own(io::ErrorKind::ConnectionReset, &why));
                    }
                    recv.error_fin = true;
                    recv.wake();
                    drop(recv);
                    conn.room.notify_one();
                }
            }
            Control::Ping(id) => {
                if id % 2 == 0 {
                    // The server's own ping: answer it.
                    let _ = core.ctl.send(Ctl::Frame(frame::ping(id)));
                }
                // For the pinger any byte counts as alive; a check waits for its answer.
                else {
                    core.pong.store(id, Ordering::SeqCst);
                    core.heard.notify_waiters();
                }
            }
            Control::GoAway { last_good } => {
                debug!(last_good, "the server said GOAWAY");
                core.state.lock().going_away = true;
            }
            Control::SynStream { stream, .. } => {
                // Port-forward servers open no streams.
                let _ = core
                    .ctl
                    .send(Ctl::Frame(frame::rst_stream(stream, rst::REFUSED_STREAM)));
            }
            Control::SynReply { stream } => {
                if let Some(conn) = conn_of(core, stream)
                    && stream == conn.data_id
                {
                    conn.recv.lock().accepted = true;
                }
            }
            Control::Headers { .. }
            | Control::Settings
            | Control::WindowUpdate { .. }
            | Control::Unknown(_) => {}
        },
    }
}

/// Queues pod bytes for a connection's reader, waiting while its buffer is full and the
/// reader keeps reading; a reader that stalls loses its connection instead.
async fn deliver(core: &Core, conn: &Conn, bytes: Bytes) {
    let limit = core.config.stream_buffer;
    loop {
        let reads = {
            let mut recv = conn.recv.lock();
            if recv.failed.is_some() {
                return;
            }
            if recv.len < limit {
                recv.len += bytes.len();
                recv.chunks.push_back(bytes);
                recv.wake();
                return;
            }
            recv.reads
        };
        // Full: wait for the reader, but not for a reader that stopped.
        core.blocked.store(true, Ordering::SeqCst);
        let waited = tokio::time::timeout(core.config.stall, conn.room.notified()).await;
        core.blocked.store(false, Ordering::SeqCst);
        if waited.is_err() && conn.recv.lock().reads == reads {
            let why = format!(
                "the local client read nothing for {:?} while {} bytes from the pod waited; the connection was ended so the others sharing its session go on",
                core.config.stall, limit
            );
            debug!(stream = conn.data_id, "{why}");
            conn.recv
                .lock()
                .fail(Failure::own(io::ErrorKind::TimedOut, &why));
            let _ = core
                .ctl
                .send(Ctl::Frame(frame::rst_stream(conn.data_id, rst::CANCEL)));
            return;
        }
    }
}

async fn write_loop<K: FrameSink>(
    mut sink: K,
    mut ctl_rx: mpsc::UnboundedReceiver<Ctl>,
    mut data_rx: mpsc::Receiver<Bytes>,
) -> String {
    // Stored header blocks: a client's are tiny, and a deflate state would be most of an
    // idle session's memory.
    let mut deflater = Deflater::stored();
    let mut encode = |ctl: Ctl| -> Result<Bytes, String> {
        match ctl {
            Ctl::Frame(f) => Ok(f),
            Ctl::Syn { stream, headers } => {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                frame::syn_stream(&mut deflater, stream, &headers, false)
                    .map_err(|e| format!("cannot compress headers: {e}"))
            }
        }
    };
    loop {
        let first = tokio::select! {
            biased;
            ctl = ctl_rx.recv() => match ctl {
                Some(c) => encode(c),
                None => return "the session was dropped".into(),
            },
            data = data_rx.recv() => match data {
                Some(d) => Ok(d),
                None => return "the session was dropped".into(),
            },
        };
        let mut next = Some(first);
        // Whatever else is queued goes out before one flush; control frames first.
        let mut batch = 0;
        while let Some(f) = next.take() {
            let f = match f {
                Ok(f) => f,
                Err(why) => return why,
            };
            if let Err(e) = sink.send(f).await {
                return format!("writing to the server failed: {e}");
            }
            batch += 1;
            if batch < 64 {
                next = match ctl_rx.try_recv() {
                    Ok(c) => Some(encode(c)),
                    Err(_) => data_rx.try_recv().ok().map(Ok),
                };
            }
        }
        if let Err(e) = sink.flush().await {
            return format!("writing to the server failed: {e}");
        }
    }
}

/// Pings until the server goes silent (`true`) or the session is idle long enough.
async fn ping_loop(core: &Core) -> (String, bool) {
    let every = core.config.ping_interval;
    // Looked at four times per interval. A session in use is pinged every interval, and
    // at the next look after a new connection (so a session that froze while idle is
    // found before its new connection waits long); a server silent for three quarters of
    // an interval after a ping is dead.
    let look = every / 4;
    let deadline = every * 3 / 4;
    let mut id: u32 = 1;
    let mut tick = tokio::time::interval_at(Instant::now() + look, look);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last ping: when it went and what had been received by then.
    let mut pinged: Option<(Instant, u64)> = None;
    let mut last_ping = Instant::now();
    let mut idle_since = Instant::now();
    let mut opened = core.opened.load(Ordering::Relaxed);
    loop {
        tick.tick().await;
        let received = core.received.load(Ordering::Relaxed);
        match pinged {
            Some((at, seen)) if received == seen && at.elapsed() >= deadline => {
                return (
                    format!("the server answered nothing for {deadline:?} after a ping"),
                    true,
                );
            }
            Some((_, seen)) if received != seen => pinged = None,
            _ => {}
        }
        let opened_now = core.opened.load(Ordering::Relaxed);
        let new_connection = opened_now != opened;
        opened = opened_now;
        let busy = core.connections.load(Ordering::SeqCst) > 0;
        let idle = match core.config.idle {
            Some(_) if !core.kept.load(Ordering::Relaxed) => Some(Duration::ZERO),
            idle => idle,
        };
        // A new connection restarts the idle time, unless the session closes at once.
        if busy || (new_connection && idle != Some(Duration::ZERO)) {
            idle_since = Instant::now();
        } else if idle.is_some_and(|d| idle_since.elapsed() >= d) {
            // No new connection can race this: the session is marked closed first.
            let mut st = core.state.lock();
            if core.connections.load(Ordering::SeqCst) == 0 {
                st.closed = Some("closed after being idle".into());
                return ("closed after being idle".into(), false);
            }
        }
        // A session carrying nothing is not pinged: an idle one costs no traffic.
        let due = new_connection || (busy && last_ping.elapsed() >= every);
        if pinged.is_none() && due {
            if core.ctl.send(Ctl::Frame(frame::ping(id))).is_err() {
                return ("the session was dropped".into(), false);
            }
            last_ping = Instant::now();
            pinged = Some((last_ping, received));
            id = id.wrapping_add(2) | 1;
        }
    }
}

// === impl Stream ===

/// One connection to the pod's port on a session. Dropping it before both sides ended
/// resets it, which closes the pod's connection.
pub struct Stream {
    conn: Arc<Conn>,
    owner: Arc<Owner>,
    sender: PollSender<Bytes>,
    wrote_fin: bool,
    error_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("data_id", &self.conn.data_id)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// The session this connection runs on.
    pub fn session(&self) -> Session {
        Session {
            owner: self.owner.clone(),
        }
    }

    /// Whether the connection still works, without waiting: false once it failed or the
    /// pod ended it and nothing is left to read.
    pub fn is_open(&self) -> bool {
        let recv = self.conn.recv.lock();
        recv.failed.is_none() && (!recv.data_fin || recv.len > 0)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut recv = this.conn.recv.lock();
        if let Some(front) = recv.chunks.front_mut() {
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front.split_to(n));
            if front.is_empty() {
                recv.chunks.pop_front();
            }
            recv.len -= n;
            recv.reads += 1;
            drop(recv);
            this.conn.room.notify_one();
            return Poll::Ready(Ok(()));
        }
        if let Some(f) = &recv.failed {
            return Poll::Ready(Err(f.error()));
        }
        if !recv.error.is_empty() && (recv.error_fin || recv.data_fin) {
            // kubelet's message, e.g. the pod's port refused.
            let why = String::from_utf8_lossy(&recv.error).into_owned();
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionRefused, why)));
        }
        if recv.data_fin {
            if recv.error_fin {
                return Poll::Ready(Ok(()));
            }
            // A failure message may still come on the error stream.
            recv.waker = Some(cx.waker().clone());
            drop(recv);
            let wait = this
                .error_wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(ERROR_WAIT)));
            ready!(wait.as_mut().poll(cx));
            return Poll::Ready(Ok(()));
        }
        recv.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.wrote_fin {
            return Poll::Ready(Err(Failure::own(
                io::ErrorKind::BrokenPipe,
                "the connection's sending side was shut down",
            )
            .error()));
        }
        if let Some(f) = &this.conn.recv.lock().failed {
            return Poll::Ready(Err(f.error()));
        }
        if ready!(this.sender.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(this.closed_error()));
        }
        let n = buf
            .len()
            .min(this.owner.core.config.frame_size)
            .min(frame::MAX_LEN);
        let mut f = BytesMut::with_capacity(frame::HEADER_LEN + n);
        f.put_bytes(0, frame::HEADER_LEN);
        frame::put_data_header(&mut f[..frame::HEADER_LEN], this.conn.data_id, false, n);
        f.put_slice(&buf[..n]);
        if this.sender.send_item(f.freeze()).is_err() {
            return Poll::Ready(Err(this.closed_error()));
        }
        Poll::Ready(Ok(n))
    }

    /// Frames go out as soon as the session's writer takes them.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Half-closes: FIN on the data stream; the pod may go on sending.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.wrote_fin {
            return Poll::Ready(Ok(()));
        }
        if ready!(this.sender.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(this.closed_error()));
        }
        if this
            .sender
            .send_item(frame::data(this.conn.data_id, true, b""))
            .is_err()
        {
            return Poll::Ready(Err(this.closed_error()));
        }
        this.wrote_fin = true;
        Poll::Ready(Ok(()))
    }
}

impl Stream {
    fn closed_error(&self) -> io::Error {
        let why = self
            .owner
            .core
            .state
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| "the session ended".into());
        Failure::own(io::ErrorKind::ConnectionAborted, &why).error()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let core = &self.owner.core;
        let (finished, failed) = {
            let recv = self.conn.recv.lock();
            (recv.data_fin && self.wrote_fin, recv.failed.is_some())
        };
        if !finished && !failed {
            // Stops the pod's side of a connection the client gave up on.
            let _ = core.ctl.send(Ctl::Frame(frame::rst_stream(
                self.conn.data_id,
                rst::CANCEL,
            )));
        }
        {
            let mut st = core.state.lock();
            st.streams.remove(&self.conn.error_id);
            st.streams.remove(&self.conn.data_id);
        }
        core.connections.fetch_sub(1, Ordering::SeqCst);
        // A session waiting on this connection's room goes on.
        self.conn
            .recv
            .lock()
            .fail(Failure::own(io::ErrorKind::BrokenPipe, "dropped"));
        self.conn.room.notify_one();
    }
}
