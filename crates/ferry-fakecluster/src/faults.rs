//! Fault switches: drop every open tunnel, refuse portforward upgrades for a while, fail
//! API requests for a while. Reachable from the library and under `/fake/faults/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The fault switches of one fake cluster.
#[derive(Default)]
pub struct Faults {
    state: Mutex<FaultState>,
    /// Tunnels open right now.
    open_tunnels: Arc<AtomicUsize>,
}

#[derive(Default)]
struct FaultState {
    api_until: Option<Instant>,
    portforward_until: Option<Instant>,
    /// Every tunnel watches a clone; dropping tunnels cancels it and starts a fresh one.
    tunnels: CancellationToken,
}

/// Counts one open tunnel while alive.
pub(crate) struct TunnelGuard(Arc<AtomicUsize>);

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn left(until: Option<Instant>) -> Option<Duration> {
    let until = until?;
    let now = Instant::now();
    (until > now).then(|| until - now)
}

impl Faults {
    /// Drops every open tunnel now, without a WebSocket close, like a broken connection.
    /// Returns how many were open.
    pub fn drop_tunnels(&self) -> usize {
        let open = self.open_tunnels.load(Ordering::SeqCst);
        let old = std::mem::take(&mut self.state.lock().tunnels);
        old.cancel();
        open
    }

    /// Refuses portforward upgrades with a 500 for `d`.
    pub fn refuse_portforward(&self, d: Duration) {
        self.state.lock().portforward_until = Some(Instant::now() + d);
    }

    /// Answers every API request with a 500 for `d`.
    pub fn fail_api(&self, d: Duration) {
        self.state.lock().api_until = Some(Instant::now() + d);
    }

    /// Ends every timed fault.
    pub fn clear(&self) {
        let mut st = self.state.lock();
        st.api_until = None;
        st.portforward_until = None;
    }

    /// How many tunnels are open.
    pub fn open_tunnels(&self) -> usize {
        self.open_tunnels.load(Ordering::SeqCst)
    }

    pub(crate) fn api_failing(&self) -> Option<Duration> {
        left(self.state.lock().api_until)
    }

    pub(crate) fn portforward_refused(&self) -> Option<Duration> {
        left(self.state.lock().portforward_until)
    }

    pub(crate) fn tunnel_token(&self) -> CancellationToken {
        self.state.lock().tunnels.clone()
    }

    pub(crate) fn tunnel_opened(&self) -> TunnelGuard {
        self.open_tunnels.fetch_add(1, Ordering::SeqCst);
        TunnelGuard(self.open_tunnels.clone())
    }
}
