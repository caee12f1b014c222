//! A forward's HTTP inspection at run time: the `ferry-http` inspector on each of its
//! connections, the bounded ring of recent exchanges, and the followers who get each new
//! exchange as it completes.
//!
//! One [`Inspection`] per inspected forward, owned by its worker's shared state and
//! replaced only by the manager (turning inspection on, off or changing it never restarts
//! the forward: connections accepted after the change follow it). A connection holds a
//! [`ConnInspect`]: the relaying code hands it a copy of each chunk before writing it on;
//! the inspector never changes a byte, and a connection it cannot parse is passed through
//! untouched from then on. Nothing is written to disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_http::{Exchange, Inspector, Ring, State};
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::config::Inspect;

/// Exchanges kept per forward at most.
pub const RING_COUNT: usize = 1000;
/// Bytes (headers and kept bodies) kept per forward at most.
pub const RING_BYTES: usize = 16 * 1024 * 1024;
/// Exchanges a slow follower may fall behind before it misses some (it is told how many).
const FOLLOW_BACKLOG: usize = 256;

/// What the forward says once when a connection is not HTTP.
pub const NOT_HTTP: &str = "not HTTP: traffic passed through unparsed";

/// One forward's inspection.
#[derive(Debug)]
pub struct Inspection {
    spec: Inspect,
    config: Arc<ferry_http::Config>,
    /// Written by the connections' [`ConnInspect`]s, read by followers; never held across
    /// an `.await`.
    ring: Mutex<Ring>,
    follow: broadcast::Sender<Arc<Exchange>>,
    /// Why the first connection that was not HTTP was passed through, once seen.
    passthrough: Mutex<Option<String>>,
    /// Cancelled when the inspection is replaced or its forward stops: followers end.
    ended: tokio_util::sync::CancellationToken,
}

impl Inspection {
    pub fn new(spec: &Inspect) -> Arc<Inspection> {
        Arc::new(Inspection {
            spec: spec.clone(),
            config: Arc::new(spec.http_config()),
            ring: Mutex::new(Ring::new(RING_COUNT, RING_BYTES)),
            follow: broadcast::channel(FOLLOW_BACKLOG).0,
            passthrough: Mutex::new(None),
            ended: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Ends the inspection for its followers (it was turned off or changed, or its forward
    /// stopped). Connections still open keep feeding it; nobody reads it any more.
    pub fn end(&self) {
        self.ended.cancel();
    }

    /// Resolves once the inspection has ended.
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }

    /// The spec this inspection follows.
    pub fn spec(&self) -> &Inspect {
        &self.spec
    }

    /// A new connection's inspector.
    pub fn connection(self: &Arc<Self>) -> ConnInspect {
        ConnInspect {
            inspection: self.clone(),
            inner: Mutex::new(Some(Inspector::new(self.config.clone()))),
            done: AtomicBool::new(false),
        }
    }

    /// The exchanges kept, oldest first.
    pub fn recent(&self) -> Vec<Arc<Exchange>> {
        self.ring.lock().snapshot()
    }

    /// One kept exchange.
    pub fn get(&self, id: u64) -> Option<Arc<Exchange>> {
        self.ring.lock().get(id)
    }

    /// The exchanges kept, and every later one as it completes (none missed in between).
    pub fn follow(&self) -> (Vec<Arc<Exchange>>, broadcast::Receiver<Arc<Exchange>>) {
        let ring = self.ring.lock();
        (ring.snapshot(), self.follow.subscribe())
    }

    /// Forgets the exchanges kept.
    pub fn clear(&self) {
        self.ring.lock().clear();
    }

    /// [`NOT_HTTP`] and why, once a connection was passed through unparsed because it was
    /// not HTTP/1.x.
    pub fn passthrough(&self) -> Option<String> {
        self.passthrough.lock().clone()
    }

    fn record(&self, exchanges: Vec<Exchange>) {
        if exchanges.is_empty() {
            return;
        }
        let mut ring = self.ring.lock();
        for exchange in exchanges {
            let id = ring.push(exchange);
            if let Some(stored) = ring.get(id) {
                // No follower is fine.
                let _ = self.follow.send(stored);
            }
        }
    }

    fn passed_through(&self, state: &State) {
        if let State::NotHttp(why) = state {
            let mut said = self.passthrough.lock();
            if said.is_none() {
                tracing::info!(reason = %why, "{NOT_HTTP}");
                *said = Some(format!("{NOT_HTTP} ({why})"));
            }
        }
    }
}

/// One connection's inspector. Both directions feed it; it is dropped with the
/// connection, which completes what can be completed (a request the pod never answered
/// is kept as incomplete).
#[derive(Debug)]
pub struct ConnInspect {
    inspection: Arc<Inspection>,
    /// `None` once finished.
    inner: Mutex<Option<Inspector>>,
    /// Set once the connection is passed through: then feeding costs one load.
    done: AtomicBool,
}

impl ConnInspect {
    /// A chunk the client sent, before it is written to the pod.
    pub fn client(&self, chunk: &[u8]) {
        self.feed(chunk, Inspector::client_bytes);
    }

    /// A chunk the pod sent, before it is written to the client.
    pub fn server(&self, chunk: &[u8]) {
        self.feed(chunk, Inspector::server_bytes);
    }

    fn feed(&self, chunk: &[u8], side: fn(&mut Inspector, &[u8]) -> Vec<Exchange>) {
        if chunk.is_empty() || self.done.load(Ordering::Relaxed) {
            return;
        }
        let (exchanges, state) = {
            let mut inner = self.inner.lock();
            let Some(inspector) = inner.as_mut() else {
                return;
            };
            let exchanges = side(inspector, chunk);
            let state = inspector.state();
            let state = state.is_passthrough().then(|| state.clone());
            (exchanges, state)
        };
        self.inspection.record(exchanges);
        if let Some(state) = state {
            self.done.store(true, Ordering::Relaxed);
            self.inspection.passed_through(&state);
        }
    }
}

impl Drop for ConnInspect {
    fn drop(&mut self) {
        if let Some(inspector) = self.inner.get_mut().take() {
            self.inspection.record(inspector.finish());
        }
    }
}
