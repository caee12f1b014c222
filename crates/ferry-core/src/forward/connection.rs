//! One local connection: a tunnel to a pod (pre-opened or dialed), the start kept until
//! the pod answers so it can move to a fresh tunnel, then splicing with counters; and the
//! one place a pod is picked.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Targets;
use super::shared::WorkerShared;
use crate::backoff::sleep_until_or_never;
use crate::cluster::Endpoint;
use crate::config::{Forward, Pick};
use crate::inspect::ConnInspect;
use crate::pool::TunnelPool;
use crate::tunnel::TunnelStream;

/// How long a new local connection waits for a ready pod before it is closed.
pub const WAIT_FOR_POD: Duration = Duration::from_secs(30);

/// A connection on a channel tunnel that the far side ends after this long without
/// traffic either way is counted as closed for idleness ([`crate::events::IdleClosed`]).
const QUIET_CLOSE_NOTED: Duration = Duration::from_secs(5);

/// After a client shut down its sending side, how long the pod may stay silent before the
/// connection is closed. The WebSocket port-forward protocol cannot carry a half-close to
/// the pod, so this is what ends such connections when the pod never closes.
pub const IDLE_AFTER_CLIENT_EOF: Duration = Duration::from_secs(60);

/// What a client sent before the pod first answered is kept up to this size, so the
/// connection can move to a fresh tunnel if this one is lost before the pod answers.
pub const REPLAY_LIMIT: usize = 16 * 1024;

/// How many times a connection moves to a fresh tunnel before the pod first answered.
const MAX_REPLAYS: u32 = 2;

/// How long a connection whose tunnel was lost before the pod answered waits for the
/// resolver to say whether the pod went. Only then are the client's bytes sent again: a
/// pod that is still there closed on its own, and the client is told.
const POD_GONE_WAIT: Duration = Duration::from_millis(300);

// === impl Sticky ===

/// The pod a forward keeps using while it stays ready: what `sticky` forwards connect
/// to, the pod the status shows, the one health checks probe and the one the tunnel pool
/// opens ahead for. Chosen by the resolver and by sticky connections, forgotten by a
/// connection whose tunnel to it failed.
#[derive(Debug, Default)]
pub(super) struct Sticky(Mutex<Option<String>>);

impl Sticky {
    /// Picks the pod among `endpoints` (see [`choose`]) and keeps it; with no ready pod,
    /// none is kept.
    pub(super) fn pick(&self, endpoints: &[Endpoint]) -> Option<Endpoint> {
        let mut current = self.0.lock();
        let chosen = choose(current.as_deref(), endpoints).cloned();
        *current = chosen.as_ref().map(|e| e.pod.clone());
        chosen
    }

    /// The pod [`Sticky::pick`] would pick now, without keeping it.
    pub(super) fn peek<'a>(&self, endpoints: &'a [Endpoint]) -> Option<&'a Endpoint> {
        choose(self.0.lock().as_deref(), endpoints)
    }

    /// Forgets `pod` if it is the one kept.
    pub(super) fn forget(&self, pod: &str) {
        let mut current = self.0.lock();
        if current.as_deref() == Some(pod) {
            *current = None;
        }
    }

    /// Forgets the pod kept.
    pub(super) fn clear(&self) {
        *self.0.lock() = None;
    }
}

/// The sticky choice: the `current` pod while it is among `endpoints`, else the first.
fn choose<'a>(current: Option<&str>, endpoints: &'a [Endpoint]) -> Option<&'a Endpoint> {
    current
        .and_then(|p| endpoints.iter().find(|e| e.pod == p))
        .or_else(|| endpoints.first())
}

// === impl Connection ===

/// One accepted local connection, served by a task of its own.
pub(super) struct Connection {
    /// `(max_idle, max_age)` from the health spec when the connection was accepted.
    pub limits: (Option<Duration>, Option<Duration>),
    pub spec: Arc<Forward>,
    pub shared: Arc<WorkerShared>,
    pub targets: watch::Receiver<Targets>,
    pub nudge: Arc<Notify>,
    pub sticky: Arc<Sticky>,
    pub next_rr: Arc<AtomicUsize>,
    pub tunnels: Arc<TunnelPool>,
    /// Dial afresh instead of taking a pre-opened tunnel (after one was lost).
    pub skip_pool: bool,
    pub token: CancellationToken,
    /// The HTTP inspector of this connection, when its forward is inspected.
    pub inspect: Option<ConnInspect>,
}

/// How the start of a connection went on one tunnel.
enum Settled {
    /// The pod sent its first bytes: the tunnel is proven.
    Answered(TunnelStream, Vec<u8>),
    /// The client sent more than can be replayed, or ended without sending anything: the
    /// connection keeps this tunnel whatever happens.
    Committed(TunnelStream),
    /// The client ended and the pod stayed silent for [`IDLE_AFTER_CLIENT_EOF`], or the
    /// connection reached its `max_idle` / `max_age` first.
    Quiet,
    /// The tunnel closed or failed before the pod said anything.
    Lost(io::Error),
}

/// The start of a connection: what the client sent so far (while it can be replayed)
/// and whether it ended its side.
#[derive(Default)]
struct Start {
    sent: Vec<u8>,
    replayable: bool,
    client_eof: bool,
}

/// Counts an open connection while alive.
struct OpenGuard<'a>(&'a WorkerShared);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.closed();
    }
}

impl Connection {
    pub(super) async fn serve(mut self, local: TcpStream) {
        let shared = self.shared.clone();
        shared.opened();
        let _open = OpenGuard(&shared);
        let token = self.token.clone();
        tokio::select! {
            () = token.cancelled() => debug!("closed by stop"),
            r = self.run(local) => match r {
                Ok(()) => debug!("connection closed"),
                Err(e) => {
                    debug!(error = %e, "connection ended with an error");
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        shared.note_problem(e.to_string());
                    }
                }
            },
        }
    }

    /// Opens a tunnel and splices. Until the pod first answers, what the client sends is
    /// also kept (up to [`REPLAY_LIMIT`]): a tunnel lost before then because its pod went
    /// (deleted an instant ago, say) is replaced by a fresh one and the client's bytes sent
    /// again, so the client sees no difference.
    async fn run(&mut self, mut local: TcpStream) -> io::Result<()> {
        let mut start = Start {
            replayable: true,
            ..Start::default()
        };
        let mut replays = 0;
        let opened = tokio::time::Instant::now();
        let (tunnel, first) = loop {
            let (tunnel, pod) = self.open_tunnel().await?;
            tracing::Span::current().record("pod.name", pod.as_str());
            debug!("tunnel open");
            match settle(
                &mut local,
                tunnel,
                &mut start,
                &self.shared,
                self.limits,
                opened,
                self.inspect.as_ref(),
            )
            .await?
            {
                Settled::Answered(tunnel, first) => break (tunnel, first),
                Settled::Committed(tunnel) => break (tunnel, Vec::new()),
                Settled::Quiet => return Ok(()),
                // The session went silent (a dead NAT, a laptop that slept), or ended
                // before the server took the connection (cut an instant after it was
                // opened on it): nothing sent reached the pod, so the start is sent
                // again on a fresh one.
                Settled::Lost(e)
                    if start.replayable && replays < MAX_REPLAYS && lost_undelivered(&e) =>
                {
                    replays += 1;
                    debug!(pod.name = %pod, error = %e, "the session ended before anything reached the pod; moving on");
                }
                Settled::Lost(e)
                    if start.replayable && replays < MAX_REPLAYS && self.pod_went(&pod).await =>
                {
                    replays += 1;
                    debug!(pod.name = %pod, error = %e, "the pod went before answering; moving on");
                    self.skip_pool = true;
                }
                // The pod is still there: it closed (or refused) on its own, and the client
                // is told, never sent its bytes again.
                Settled::Lost(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Settled::Lost(e) => return Err(e),
            }
        };
        if !first.is_empty() {
            if let Some(inspect) = &self.inspect {
                inspect.server(&first);
            }
            local.write_all(&first).await?;
            self.shared.received(first.len());
        }
        let client_eof = start.client_eof;
        // Not held for the rest of the connection.
        drop((first, start));
        splice(
            local,
            tunnel,
            &self.shared,
            self.limits,
            opened,
            client_eof,
            self.inspect.as_ref(),
        )
        .await
    }

    /// Whether `pod` has left the forward's endpoints (deleted, or no longer ready): the
    /// resolver, which watches the pods, says so within [`POD_GONE_WAIT`]. A pod that went
    /// is forgotten (a sticky forward moves on).
    async fn pod_went(&mut self, pod: &str) -> bool {
        let deadline = tokio::time::Instant::now() + POD_GONE_WAIT;
        loop {
            if !self
                .targets
                .borrow_and_update()
                .endpoints
                .iter()
                .any(|e| e.pod == pod)
            {
                self.forget(pod);
                return true;
            }
            match tokio::time::timeout_at(deadline, self.targets.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// The pod may be gone: forget it and have the resolver look again.
    fn forget(&self, pod: &str) {
        self.sticky.forget(pod);
        self.nudge.notify_one();
    }

    /// Picks a pod and opens a tunnel, retrying other pods or waiting for one until
    /// [`WAIT_FOR_POD`] has passed.
    async fn open_tunnel(&mut self) -> io::Result<(TunnelStream, String)> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_POD;
        let mut pause = Duration::from_millis(100);
        loop {
            let targets = self.targets.borrow_and_update().clone();
            if let (Some(tunnels), Some(ep)) = (&targets.tunnels, self.pick(&targets.endpoints)) {
                if !self.skip_pool
                    && let Some(t) = self.tunnels.take(&ep.pod, ep.port)
                {
                    return Ok((t, ep.pod));
                }
                let dialed = tokio::time::timeout_at(
                    deadline,
                    tunnels.open(&targets.namespace, &ep.pod, ep.port),
                )
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "opening a tunnel for {} took longer than {:?}",
                            self.spec.name, WAIT_FOR_POD
                        ),
                    )
                })?;
                match dialed {
                    Ok(t) => return Ok((t, ep.pod)),
                    Err(e) => {
                        debug!(pod.name = %ep.pod, error = %e, "tunnel failed");
                        self.shared.note_problem(e.to_string());
                        self.forget(&ep.pod);
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no ready pod for {} within {:?}",
                        self.spec.name, WAIT_FOR_POD
                    ),
                ));
            }
            // Wait for new endpoints, or retry after a short pause.
            let _ = tokio::time::timeout(pause.min(deadline - now), self.targets.changed()).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// The pod for a new connection, as the forward's `pick` says.
    fn pick(&self, endpoints: &[Endpoint]) -> Option<Endpoint> {
        if endpoints.is_empty() {
            return None;
        }
        match self.spec.pick {
            Pick::Sticky => self.sticky.pick(endpoints),
            Pick::RoundRobin => {
                let i = self.next_rr.fetch_add(1, Ordering::Relaxed);
                Some(endpoints[i % endpoints.len()].clone())
            }
            Pick::Random => {
                let i = rand::rng().random_range(0..endpoints.len());
                Some(endpoints[i].clone())
            }
        }
    }
}

/// A read buffer sized to the traffic: it starts at a few KiB and doubles each time a read
/// fills it, up to `max`. A quiet connection holds 8 KiB per direction; a bulk transfer
/// reaches large reads within a few of them.
struct Growing {
    buf: Vec<u8>,
    max: usize,
    /// The last read filled the buffer.
    full: bool,
}

impl Growing {
    const FIRST: usize = 8 * 1024;

    fn new(max: usize) -> Growing {
        Growing {
            buf: vec![0u8; Self::FIRST.min(max)],
            max,
            full: false,
        }
    }

    async fn read<R: tokio::io::AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<usize> {
        if self.buf.len() < self.max && self.full {
            let grown = (self.buf.len() * 2).min(self.max);
            self.buf.resize(grown, 0);
        }
        let n = r.read(&mut self.buf).await?;
        self.full = n == self.buf.len();
        Ok(n)
    }

    fn filled(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }
}

/// Whether `e` is the loss of a SPDY session that took nothing of the connection to the
/// pod: it stopped answering pings, or ended before the server accepted the connection.
fn lost_undelivered(e: &io::Error) -> bool {
    ferry_spdy::client::SessionLost::of(e).is_some_and(|l| l.undelivered())
}

/// Runs a connection's start on `tunnel`: sends what the client sent so far, then relays
/// the client's bytes (keeping them while they can be replayed) until the pod answers,
/// the tunnel is lost, or the start can no longer be replayed.
async fn settle(
    local: &mut TcpStream,
    mut tunnel: TunnelStream,
    start: &mut Start,
    shared: &WorkerShared,
    (max_idle, max_age): (Option<Duration>, Option<Duration>),
    opened: tokio::time::Instant,
    inspect: Option<&ConnInspect>,
) -> io::Result<Settled> {
    if !start.sent.is_empty()
        && let Err(e) = tunnel.write_all(&start.sent).await
    {
        return Ok(Settled::Lost(e));
    }
    let half_close = tunnel.carries_half_close();
    if start.client_eof
        && half_close
        && let Err(e) = tunnel.shutdown().await
    {
        return Ok(Settled::Lost(e));
    }
    // Small buffers: most connections leave this phase with their first answer, and
    // splice then reads with its own large ones.
    let mut up = vec![0u8; REPLAY_LIMIT];
    let mut down = vec![0u8; 16 * 1024];
    let mut last_any = tokio::time::Instant::now();
    loop {
        // The connection's own limits apply from its start, as in `splice`.
        let limit = [
            max_idle.map(|d| last_any + d),
            max_age.map(|d| opened + d),
            (start.client_eof && !half_close).then(|| last_any + IDLE_AFTER_CLIENT_EOF),
        ]
        .into_iter()
        .flatten()
        .min();
        if !start.replayable || (start.client_eof && start.sent.is_empty()) {
            start.sent = Vec::new();
            return Ok(Settled::Committed(tunnel));
        }
        tokio::select! {
            r = local.read(&mut up), if !start.client_eof => {
                let n = r?;
                if n == 0 {
                    start.client_eof = true;
                    // SPDY carries the half-close to the pod.
                    if half_close && let Err(e) = tunnel.shutdown().await {
                        return Ok(Settled::Lost(e));
                    }
                    continue;
                }
                shared.sent(n);
                last_any = tokio::time::Instant::now();
                // Seen once, here: bytes sent again on a fresh tunnel are not new traffic.
                if let Some(inspect) = inspect {
                    inspect.client(&up[..n]);
                }
                start.sent.extend_from_slice(&up[..n]);
                start.replayable = start.sent.len() <= REPLAY_LIMIT;
                if let Err(e) = tunnel.write_all(&up[..n]).await {
                    return Ok(Settled::Lost(e));
                }
            }
            r = tunnel.read(&mut down) => return Ok(match r {
                Ok(0) => Settled::Lost(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tunnel closed before the pod answered",
                )),
                Ok(n) => {
                    down.truncate(n);
                    Settled::Answered(tunnel, down)
                }
                Err(e) => Settled::Lost(e),
            }),
            () = sleep_until_or_never(limit) => return Ok(Settled::Quiet),
        }
    }
}

/// Copies bytes both ways until the pod side ends (or the client is gone).
///
/// A client that shuts down its sending side still receives everything the pod sends
/// afterwards. On a SPDY stream its end-of-stream reaches the pod as a FIN; on a
/// WebSocket channel tunnel it cannot (the protocol would close the whole tunnel), so
/// there the connection ends when the pod closes, or after [`IDLE_AFTER_CLIENT_EOF`] of
/// silence from the pod.
///
/// Silence is measured on Tokio's clock, as in [`settle`]: a step of the wall clock
/// neither recycles connections early nor keeps them past their limits.
async fn splice(
    local: TcpStream,
    tunnel: TunnelStream,
    shared: &WorkerShared,
    (max_idle, max_age): (Option<Duration>, Option<Duration>),
    opened: tokio::time::Instant,
    client_eof: bool,
    inspect: Option<&ConnInspect>,
) -> io::Result<()> {
    // When bytes last moved (either way, and from the pod), in ms since `origin`.
    let origin = tokio::time::Instant::now();
    let elapsed_ms = || origin.elapsed().as_millis() as u64;
    let last_any = AtomicU64::new(0);
    let half_close = tunnel.carries_half_close();
    let (mut lr, mut lw) = local.into_split();
    let (mut tr, mut tw) = tokio::io::split(tunnel);
    let last_down = AtomicU64::new(0);
    let up = async {
        // Large reads make large frames: fewer for the API server to parse and fewer TLS
        // records per byte. The buffer grows to that only for a connection that fills it.
        let mut buf = Growing::new(256 * 1024);
        loop {
            let n = buf.read(&mut lr).await?;
            if n == 0 {
                if half_close {
                    tw.shutdown().await?;
                }
                return Ok::<_, io::Error>(());
            }
            if let Some(inspect) = inspect {
                inspect.client(buf.filled(n));
            }
            tw.write_all(buf.filled(n)).await?;
            shared.sent(n);
            last_any.store(elapsed_ms(), Ordering::Relaxed);
        }
    };
    let down = async {
        let mut buf = Growing::new(128 * 1024);
        loop {
            let n = buf.read(&mut tr).await?;
            if n == 0 {
                // How long nothing had moved when the far side ended.
                let quiet = elapsed_ms().saturating_sub(last_any.load(Ordering::Relaxed));
                lw.shutdown().await?;
                return Ok::<_, io::Error>(Duration::from_millis(quiet));
            }
            if let Some(inspect) = inspect {
                inspect.server(buf.filled(n));
            }
            lw.write_all(buf.filled(n)).await?;
            shared.received(n);
            last_down.store(elapsed_ms(), Ordering::Relaxed);
            last_any.store(elapsed_ms(), Ordering::Relaxed);
        }
    };
    tokio::pin!(up, down);
    let mut client_eof = client_eof;
    let mut recycle = tokio::time::interval(Duration::from_millis(250));
    loop {
        let idle = async {
            if client_eof && !half_close {
                let since = elapsed_ms().saturating_sub(last_down.load(Ordering::Relaxed));
                let left = IDLE_AFTER_CLIENT_EOF.saturating_sub(Duration::from_millis(since));
                tokio::time::sleep(left).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = &mut down => {
                let quiet = r?;
                // A channel tunnel cannot be kept alive by pings: the cluster's streaming
                // idle timeout ends a connection nothing moved on (so may the server's own
                // idle limit). Said on the forward, so a dropped psql session is explained.
                if !half_close && !client_eof && quiet >= QUIET_CLOSE_NOTED {
                    debug!(quiet = ?quiet, "the far side closed a quiet connection");
                    shared.note_idle_close(quiet);
                }
                return Ok(());
            }
            r = &mut up, if !client_eof => {
                r?;
                client_eof = true;
            }
            () = idle => {
                let since = elapsed_ms().saturating_sub(last_down.load(Ordering::Relaxed));
                if Duration::from_millis(since) >= IDLE_AFTER_CLIENT_EOF {
                    return Ok(());
                }
            }
            _ = recycle.tick(), if max_idle.is_some() || max_age.is_some() => {
                let idle = Duration::from_millis(elapsed_ms().saturating_sub(last_any.load(Ordering::Relaxed)));
                if max_idle.is_some_and(|m| idle >= m) {
                    debug!(idle = ?idle, "recycling an idle connection");
                    return Ok(());
                }
                if max_age.is_some_and(|m| opened.elapsed() >= m) {
                    debug!("recycling a connection past its maximum age");
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(pods: &[&str]) -> Vec<Endpoint> {
        pods.iter()
            .map(|p| Endpoint {
                pod: (*p).to_string(),
                port: 80,
            })
            .collect()
    }

    /// The pod kept, the ready pods ⇒ the pod picked (and kept after).
    #[rustfmt::skip]
    const PICKS: &[(Option<&str>, &[&str], Option<&str>)] = &[
        (None, &[], None),
        (Some("a"), &[], None),
        (None, &["a", "b"], Some("a")),
        (Some("b"), &["a", "b"], Some("b")),
        (Some("c"), &["a", "b"], Some("a")),
        (Some("b"), &["b"], Some("b")),
    ];

    #[test]
    fn the_sticky_pick_follows_the_table() {
        for &(kept, ready, picked) in PICKS {
            let sticky = Sticky(Mutex::new(kept.map(str::to_string)));
            let ready = endpoints(ready);
            let row = format!("{kept:?} among {ready:?}");
            assert_eq!(
                sticky.peek(&ready).map(|e| e.pod.as_str()),
                picked,
                "peek for {row}"
            );
            assert_eq!(
                sticky.0.lock().as_deref(),
                kept,
                "peeking keeps nothing for {row}"
            );
            assert_eq!(
                sticky.pick(&ready).map(|e| e.pod),
                picked.map(str::to_string),
                "pick for {row}"
            );
            assert_eq!(sticky.0.lock().as_deref(), picked, "kept after {row}");
        }
    }

    #[test]
    fn forgetting_another_pod_keeps_the_sticky_one() {
        let sticky = Sticky::default();
        sticky.pick(&endpoints(&["a", "b"]));
        sticky.forget("b");
        assert_eq!(sticky.0.lock().as_deref(), Some("a"));
        sticky.forget("a");
        assert_eq!(sticky.0.lock().as_deref(), None);
        sticky.pick(&endpoints(&["b"]));
        sticky.clear();
        assert_eq!(sticky.0.lock().as_deref(), None);
    }

    // === splice's limits on the paused clock ===

    /// A connected pair of loopback sockets: the accepted one, and the client's.
    async fn sockets() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (accepted.expect("accept").0, client.expect("connect"))
    }

    /// A connection to port 80 on a SPDY session over an in-memory pipe, and the pod's
    /// end of the pipe (the session's first connection: error stream 1, data stream 3).
    /// The session pings after an hour only.
    fn tunnel() -> (TunnelStream, tokio::io::DuplexStream) {
        let (client, pod) = tokio::io::duplex(64 * 1024);
        let (source, sink) = ferry_spdy::transport::plain(client);
        let config = ferry_spdy::client::Config {
            ping_interval: Duration::from_secs(3_600),
            ..ferry_spdy::client::Config::default()
        };
        let session = ferry_spdy::client::Session::start(source, sink, config);
        let stream = session.open(80).expect("a new session opens a stream");
        (TunnelStream::Spdy(stream), pod)
    }

    fn worker() -> WorkerShared {
        let spec = Forward::new(
            "web",
            crate::config::Target::Service("web".into()),
            crate::config::PortRef::Number(80),
            0,
        );
        WorkerShared::new(&spec, tokio::sync::mpsc::channel(1).0)
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// Waits (two paused minutes at most) for `splice` to end the connection cleanly.
    async fn recycled(splice: impl Future<Output = io::Result<()>>) {
        match tokio::time::timeout(120 * SECOND, splice).await {
            Ok(r) => r.expect("recycled cleanly"),
            Err(_) => panic!("still open after two minutes"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_recycled_after_max_idle() {
        let (local, _client) = sockets().await;
        let (tunnel, _pod) = tunnel();
        let start = tokio::time::Instant::now();
        let limits = (Some(30 * SECOND), None);
        recycled(splice(local, tunnel, &worker(), limits, start, false, None)).await;
        assert_eq!(start.elapsed(), 30 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_recycled_at_max_age_from_its_opening() {
        let (local, _client) = sockets().await;
        let (tunnel, _pod) = tunnel();
        let opened = tokio::time::Instant::now();
        // The start took 5 s (the pod was slow to answer, say).
        tokio::time::sleep(5 * SECOND).await;
        let limits = (Some(60 * SECOND), Some(20 * SECOND));
        recycled(splice(
            local,
            tunnel,
            &worker(),
            limits,
            opened,
            false,
            None,
        ))
        .await;
        assert_eq!(opened.elapsed(), 20 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_from_the_pod_keep_a_connection_from_max_idle() {
        let (local, mut client) = sockets().await;
        let (tunnel, mut pod) = tunnel();
        let start = tokio::time::Instant::now();
        // The pod answers 10 s in, and keeps its end open until joined.
        let answer = tokio::spawn(async move {
            tokio::time::sleep(10 * SECOND).await;
            let mut deflater = ferry_spdy::frame::Deflater::new().expect("deflater");
            for stream in [1, 3] {
                let reply = ferry_spdy::frame::syn_reply(&mut deflater, stream, &[]);
                pod.write_all(&reply.expect("reply")).await.expect("write");
            }
            let data = ferry_spdy::frame::data(3, false, b"hi");
            pod.write_all(&data).await.expect("write");
            pod
        });
        let limits = (Some(30 * SECOND), None);
        recycled(splice(local, tunnel, &worker(), limits, start, false, None)).await;
        assert_eq!(start.elapsed(), 40 * SECOND, "30 s after the pod's bytes");
        let mut got = [0u8; 2];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hi");
        drop(answer.await.expect("the pod's script"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_the_pod_never_answers_ends_at_max_idle_or_max_age() {
        for (limits, after) in [
            ((Some(30 * SECOND), None), 30 * SECOND),
            ((Some(30 * SECOND), Some(20 * SECOND)), 20 * SECOND),
        ] {
            let (mut local, _client) = sockets().await;
            let (tunnel, _pod) = tunnel();
            let mut start = Start {
                replayable: true,
                ..Start::default()
            };
            let opened = tokio::time::Instant::now();
            let shared = worker();
            let settling = settle(
                &mut local, tunnel, &mut start, &shared, limits, opened, None,
            );
            let settled = tokio::time::timeout(120 * SECOND, settling)
                .await
                .expect("settled within two minutes")
                .expect("no I/O error");
            assert!(matches!(settled, Settled::Quiet), "limits {limits:?}");
            assert_eq!(opened.elapsed(), after, "limits {limits:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_ready_pod_gives_up_after_wait_for_pod() {
        let spec = Arc::new(Forward::new(
            "web",
            crate::config::Target::Service("web".into()),
            crate::config::PortRef::Number(80),
            0,
        ));
        let (_targets, rx) = watch::channel(Targets::default());
        let mut conn = Connection {
            limits: (None, None),
            spec,
            shared: Arc::new(worker()),
            targets: rx,
            nudge: Arc::new(Notify::new()),
            sticky: Arc::new(Sticky::default()),
            next_rr: Arc::new(AtomicUsize::new(0)),
            tunnels: Arc::new(TunnelPool::default()),
            skip_pool: false,
            token: CancellationToken::new(),
            inspect: None,
        };
        let start = tokio::time::Instant::now();
        let err = conn.open_tunnel().await.expect_err("no pod");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), WAIT_FOR_POD);
    }
}
