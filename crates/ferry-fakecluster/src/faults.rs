//! Fault switches: drop every open tunnel, refuse port-forward upgrades for a while (all of
//! them, or one protocol), forbid port-forwarding as RBAC would, freeze the open sessions,
//! fail API requests for a while. Reachable from the library and under `/fake/faults/`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stats::Protocol;

/// The user named in the `403 Forbidden` of [`Faults::forbid_portforward`].
pub const FORBIDDEN_USER: &str = "ferry-test";

/// The fault switches of one fake cluster.
#[derive(Default)]
pub struct Faults {
    state: Mutex<FaultState>,
    /// Tunnels open right now.
    open_tunnels: Arc<AtomicUsize>,
    /// Cancelled when the server stops: frozen sessions end then.
    shutdown: CancellationToken,
}

#[derive(Default)]
struct FaultState {
    api_until: Option<Instant>,
    portforward_until: Option<Instant>,
    /// Until when new connections to the server are refused.
    connections_until: Option<Instant>,
    /// Every connection to the server watches a clone; refusing connections cancels it
    /// and starts a fresh one.
    connections: CancellationToken,
    /// Every tunnel watches a clone; dropping tunnels cancels it and starts a fresh one.
    tunnels: CancellationToken,
    /// Protocols refused, indexed as [`Protocol::ALL`].
    refused: [bool; 3],
    /// Whether port-forward upgrades get RBAC's `403 Forbidden`.
    forbidden: bool,
    /// The freeze that sessions opened now would obey.
    freeze: FreezeEpoch,
    /// The thaw tokens of the freezes in force.
    frozen: Vec<CancellationToken>,
}

/// One generation of sessions with respect to freezing: sessions take the epoch in force
/// when they open; freezing cancels `freeze` and installs a fresh epoch (`next`) for later
/// sessions; thawing cancels `thaw`, and the thawed sessions move on to `next`, so that
/// they obey the freezes that came after theirs.
#[derive(Clone, Default)]
struct FreezeEpoch {
    freeze: CancellationToken,
    thaw: CancellationToken,
    /// Set before `freeze` is cancelled.
    next: Arc<OnceLock<FreezeEpoch>>,
}

/// Counts one open tunnel while alive.
pub(crate) struct TunnelGuard(Arc<AtomicUsize>);

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a session watches to freeze: it stops reading and writing while
/// [`Gate::frozen`] has resolved, until [`Gate::thaw`] returns.
#[derive(Clone)]
pub(crate) struct Gate {
    epoch: FreezeEpoch,
    shutdown: CancellationToken,
}

impl Gate {
    /// A gate that never freezes (for sessions no fault switch reaches).
    pub(crate) fn inert() -> Self {
        Self {
            epoch: FreezeEpoch::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Resolves once the session is frozen (at once if it is already).
    pub(crate) async fn frozen(&self) {
        self.epoch.freeze.cancelled().await;
    }

    pub(crate) fn is_frozen(&self) -> bool {
        self.epoch.freeze.is_cancelled()
    }

    /// Waits while the session is frozen: `true` once it is thawed (at once if it is not
    /// frozen), `false` if the server stops first. A thawed gate obeys later freezes.
    pub(crate) async fn thaw(&mut self) -> bool {
        while self.epoch.freeze.is_cancelled() {
            tokio::select! {
                () = self.epoch.thaw.cancelled() => {}
                () = self.shutdown.cancelled() => return false,
            }
            let next = self.epoch.next.get().cloned().unwrap_or_default();
            self.epoch = next;
        }
        true
    }
}

fn left(until: Option<Instant>) -> Option<Duration> {
    let until = until?;
    let now = Instant::now();
    (until > now).then(|| until - now)
}

impl Faults {
    /// Switches whose frozen sessions end when `shutdown` is cancelled.
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            ..Self::default()
        }
    }

    /// Drops every open tunnel now, without a WebSocket close, like a broken connection.
    /// Frozen sessions are dropped too. Returns how many were open.
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

    /// Refuses (`refuse`) or serves again one port-forward protocol, until switched back
    /// or [`Faults::clear`]. A refused protocol gets the answer of a server that does not
    /// speak it:
    ///
    /// - [`Protocol::SpdyWebSocket`]: `400 Bad Request`, as an API server older than 1.30
    ///   answers (kubectl ≥ 1.31 then falls back to plain SPDY). A client that offers
    ///   other subprotocols besides the tunnel gets the channel protocol instead, as from
    ///   such a server.
    /// - [`Protocol::Spdy`]: `403 Forbidden`, the answer of Kubernetes' upgrade handshake
    ///   when it cannot agree on a SPDY protocol (`unable to upgrade: unable to negotiate
    ///   protocol`), here with none accepted.
    /// - [`Protocol::Channel`]: `400 Bad Request`.
    pub fn refuse_protocol(&self, protocol: Protocol, refuse: bool) {
        self.state.lock().refused[protocol.index()] = refuse;
    }

    /// Whether `protocol` is refused by [`Faults::refuse_protocol`].
    pub fn protocol_refused(&self, protocol: Protocol) -> bool {
        self.state.lock().refused[protocol.index()]
    }

    /// Answers (`forbid`) every port-forward request with `403 Forbidden`, as an API
    /// server does for a user whom RBAC does not allow `create` on `pods/portforward`:
    /// a `Status` with reason `Forbidden` and the message `pods "NAME" is forbidden: User
    /// "ferry-test" cannot create resource "pods/portforward" in API group "" in the
    /// namespace "NS"` (the user is [`FORBIDDEN_USER`]). Until switched back or
    /// [`Faults::clear`]. Like authorization, it comes before any other check: even a
    /// missing pod is forbidden.
    pub fn forbid_portforward(&self, forbid: bool) {
        self.state.lock().forbidden = forbid;
    }

    /// Whether port-forwarding is forbidden by [`Faults::forbid_portforward`].
    pub fn portforward_forbidden(&self) -> bool {
        self.state.lock().forbidden
    }

    /// Freezes every session open now, as a dead NAT or a suspended laptop leaves them:
    /// plain SPDY, SPDY tunnelled through a WebSocket, the WebSocket channel protocol, and
    /// the sessions relayed to a node's kubelet endpoint. A frozen session neither reads
    /// nor writes (no frame is answered, no ping echoed, no data relayed either way), and
    /// its connection stays open. Sessions opened afterwards are not frozen. A frozen
    /// session ends with [`Faults::drop_tunnels`] or when the server stops; the pod going
    /// away is noticed only after [`Faults::thaw_sessions`]. Returns how many tunnels were
    /// open.
    pub fn freeze_sessions(&self) -> usize {
        let open = self.open_tunnels.load(Ordering::SeqCst);
        let mut st = self.state.lock();
        let epoch = std::mem::take(&mut st.freeze);
        let _ = epoch.next.set(st.freeze.clone());
        epoch.freeze.cancel();
        st.frozen.push(epoch.thaw);
        open
    }

    /// Thaws every frozen session: each goes on where it stopped, reading what the client
    /// sent meanwhile. Returns whether any freeze was in force.
    pub fn thaw_sessions(&self) -> bool {
        let frozen = std::mem::take(&mut self.state.lock().frozen);
        let any = !frozen.is_empty();
        for thaw in frozen {
            thaw.cancel();
        }
        any
    }

    /// Makes the server unreachable for `d`, as a dropped VPN or a lost Wi-Fi does: every
    /// connection to it is cut now (API requests, watches and port-forward sessions of
    /// every protocol), and new ones are closed as soon as they are accepted, before the
    /// TLS handshake. Afterwards the server answers again; nothing else changes.
    pub fn refuse_connections(&self, d: Duration) {
        let old = {
            let mut st = self.state.lock();
            st.connections_until = Some(Instant::now() + d);
            std::mem::take(&mut st.connections)
        };
        old.cancel();
        self.drop_tunnels();
    }

    /// Whether new connections are refused now, and for how much longer.
    pub(crate) fn connections_refused(&self) -> Option<Duration> {
        left(self.state.lock().connections_until)
    }

    /// What a connection to the server watches: cancelled when connections are cut.
    pub(crate) fn connection_token(&self) -> CancellationToken {
        self.state.lock().connections.clone()
    }

    /// Answers every API request with a 500 for `d`.
    pub fn fail_api(&self, d: Duration) {
        self.state.lock().api_until = Some(Instant::now() + d);
    }

    /// Ends every timed fault, serves every protocol again, stops forbidding
    /// port-forwards and thaws frozen sessions.
    pub fn clear(&self) {
        {
            let mut st = self.state.lock();
            st.api_until = None;
            st.portforward_until = None;
            st.connections_until = None;
            st.refused = [false; 3];
            st.forbidden = false;
        }
        self.thaw_sessions();
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

    /// The gate of a session opening now.
    pub(crate) fn gate(&self) -> Gate {
        Gate {
            epoch: self.state.lock().freeze.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn freezing_stops_the_gates_open_then_and_thawing_rearms_them() {
        let faults = Arc::new(Faults::new(CancellationToken::new()));
        let mut old = faults.gate();
        assert!(!old.is_frozen());
        faults.freeze_sessions();
        let mut new = faults.gate();
        assert!(old.is_frozen(), "a session open at the freeze is frozen");
        assert!(!new.is_frozen(), "a session opened later is not");
        assert!(new.thaw().await, "an open gate passes at once");
        let waiting = tokio::spawn(async move {
            let thawed = old.thaw().await;
            (thawed, old)
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(faults.thaw_sessions());
        let (thawed, old) = waiting.await.unwrap();
        assert!(thawed && !old.is_frozen());
        // Both obey the next freeze.
        faults.freeze_sessions();
        assert!(old.is_frozen() && new.is_frozen());
        faults.clear();
        assert!(new.thaw().await);
        assert!(!faults.thaw_sessions(), "nothing left to thaw");
    }

    #[tokio::test]
    async fn a_session_thawed_late_obeys_the_freeze_that_came_meanwhile() {
        let faults = Faults::default();
        let mut gate = faults.gate();
        faults.freeze_sessions();
        faults.thaw_sessions();
        // Frozen again before the session noticed the thaw: it was open, so it stays frozen.
        faults.freeze_sessions();
        let waited = tokio::time::timeout(Duration::from_millis(50), gate.thaw()).await;
        assert!(waited.is_err(), "still frozen");
        faults.thaw_sessions();
        assert!(gate.thaw().await);
        assert!(!gate.is_frozen());
    }

    #[tokio::test]
    async fn frozen_gates_give_up_when_the_server_stops() {
        let shutdown = CancellationToken::new();
        let faults = Arc::new(Faults::new(shutdown.clone()));
        let mut gate = faults.gate();
        faults.freeze_sessions();
        shutdown.cancel();
        assert!(!gate.thaw().await);
    }

    #[test]
    fn protocol_switches_are_independent_and_cleared() {
        let faults = Faults::default();
        faults.refuse_protocol(Protocol::SpdyWebSocket, true);
        faults.forbid_portforward(true);
        assert!(faults.protocol_refused(Protocol::SpdyWebSocket));
        assert!(!faults.protocol_refused(Protocol::Spdy));
        assert!(!faults.protocol_refused(Protocol::Channel));
        faults.refuse_protocol(Protocol::SpdyWebSocket, false);
        assert!(!faults.protocol_refused(Protocol::SpdyWebSocket));
        faults.refuse_protocol(Protocol::Channel, true);
        faults.clear();
        assert!(!faults.protocol_refused(Protocol::Channel));
        assert!(!faults.portforward_forbidden());
    }
}
