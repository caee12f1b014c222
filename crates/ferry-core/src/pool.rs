//! A small pool of pre-opened tunnels per forward, so that a new local connection does
//! not wait for a TLS handshake and an upgrade round trip to the API server.
//!
//! The pool only fills while the forward is in use (a connection was accepted within
//! [`POOL_IDLE`]); an idle forward holds no tunnel. Pooled tunnels are opened to the pod
//! the next connection would use (sticky forwards only: round-robin and random picks
//! dial per connection), and a tunnel is handed out only when
//! - it goes to the pod the connection picked, from the current ready endpoints, and was
//!   opened after the resolver last published them (every resolution empties the pool),
//! - it is younger than [`POOL_MAX_AGE`] (kubelet connected it to the pod when it was
//!   opened, and servers drop clients that stay silent too long), and
//! - the server has neither closed it nor reported an error on it (deleting a pod closes
//!   its tunnels).
//!
//! Tunnels to pods that left the endpoints are dropped as soon as the filler notices.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::tunnel::TunnelStream;

/// How many pre-opened tunnels a busy forward keeps ready.
pub(crate) const POOL_SIZE: usize = 4;

/// A pooled tunnel older than this is closed instead of handed out.
pub(crate) const POOL_MAX_AGE: Duration = Duration::from_secs(5);

/// A forward that accepted no connection for this long keeps no pool.
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(10);

/// One pre-opened tunnel.
pub(crate) struct Pooled {
    pub pod: String,
    pub port: u16,
    pub opened: Instant,
    pub tunnel: TunnelStream,
}

/// The ready tunnels of one forward and the filler's wake-up call.
#[derive(Default)]
pub(crate) struct TunnelPool {
    ready: Mutex<VecDeque<Pooled>>,
    /// When a connection was last accepted.
    last_use: Mutex<Option<Instant>>,
    /// Wakes the filler: a connection was accepted or took a tunnel.
    pub wake: Notify,
}

impl TunnelPool {
    /// A connection was accepted: the forward is in use.
    pub(crate) fn touch(&self) {
        *self.last_use.lock() = Some(Instant::now());
        self.wake.notify_one();
    }

    /// Whether the forward was used recently enough to keep a pool.
    pub(crate) fn busy(&self) -> bool {
        self.last_use
            .lock()
            .is_some_and(|t| t.elapsed() < POOL_IDLE)
    }

    /// A usable tunnel to `pod:port`, if one is ready. Stale or closed ones met on the
    /// way are dropped.
    pub(crate) fn take(&self, pod: &str, port: u16) -> Option<TunnelStream> {
        let mut ready = self.ready.lock();
        while let Some(i) = ready.iter().position(|p| p.pod == pod && p.port == port) {
            let Some(mut p) = ready.remove(i) else { break };
            if p.opened.elapsed() < POOL_MAX_AGE && p.tunnel.is_open() {
                drop(ready);
                self.wake.notify_one();
                return Some(p.tunnel);
            }
        }
        None
    }

    /// Adds a freshly opened tunnel.
    pub(crate) fn put(&self, pooled: Pooled) {
        self.ready.lock().push_back(pooled);
    }

    /// How many tunnels are ready.
    pub(crate) fn len(&self) -> usize {
        self.ready.lock().len()
    }

    /// Drops every tunnel that is too old, closed, or not to `pod:port`.
    pub(crate) fn prune(&self, keep: Option<(&str, u16)>) {
        let dropped: Vec<Pooled> = {
            let mut ready = self.ready.lock();
            let all = std::mem::take(&mut *ready);
            let (kept, dropped): (Vec<Pooled>, Vec<Pooled>) = all.into_iter().partition(|p| {
                keep.is_some_and(|(pod, port)| p.pod == pod && p.port == port)
                    && p.opened.elapsed() < POOL_MAX_AGE
            });
            let mut dropped = dropped;
            for mut p in kept {
                if p.tunnel.is_open() {
                    ready.push_back(p);
                } else {
                    dropped.push(p);
                }
            }
            dropped
        };
        // Closed outside the lock.
        drop(dropped);
    }

    /// Drops every ready tunnel.
    pub(crate) fn clear(&self) {
        let all = std::mem::take(&mut *self.ready.lock());
        drop(all);
    }

    /// When the oldest ready tunnel expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.ready
            .lock()
            .iter()
            .map(|p| p.opened + POOL_MAX_AGE)
            .min()
    }
}

#[cfg(test)]
mod tests {
    //! The pool's limits on Tokio's paused clock, with tunnels on SPDY sessions over
    //! in-memory pipes: exact to the millisecond, no sleeps.

    use ferry_spdy::client::{Config, Session};
    use tokio::io::DuplexStream;
    use tokio::time::sleep;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A tunnel to `pod:port` opened now, on a session of its own whose server end is
    /// returned (drop it to close the tunnel). The session pings after an hour only.
    fn pooled(pod: &str, port: u16) -> (Pooled, Session, DuplexStream) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (source, sink) = ferry_spdy::transport::plain(client);
        let config = Config {
            ping_interval: Duration::from_secs(3_600),
            ..Config::default()
        };
        let session = Session::start(source, sink, config);
        let stream = session.open(port).expect("a new session opens a stream");
        let pooled = Pooled {
            pod: pod.to_string(),
            port,
            opened: Instant::now(),
            tunnel: TunnelStream::Spdy(stream),
        };
        (pooled, session, server)
    }

    #[tokio::test(start_paused = true)]
    async fn a_forward_is_busy_for_pool_idle_after_its_last_connection() {
        let pool = TunnelPool::default();
        assert!(!pool.busy(), "never used");
        pool.touch();
        sleep(POOL_IDLE - MS).await;
        assert!(pool.busy(), "used {:?} ago", POOL_IDLE - MS);
        sleep(MS).await;
        assert!(!pool.busy(), "used exactly POOL_IDLE ago");
        pool.touch();
        assert!(pool.busy(), "used again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_is_handed_out_to_its_pod_until_pool_max_age() {
        let start = Instant::now();
        let pool = TunnelPool::default();
        let (a1, _s1, _k1) = pooled("a", 80);
        let (a2, _s2, _k2) = pooled("a", 80);
        let (b, _s3, _k3) = pooled("b", 80);
        pool.put(a1);
        pool.put(a2);
        pool.put(b);
        assert_eq!(pool.next_expiry(), Some(start + POOL_MAX_AGE));
        assert!(pool.take("a", 81).is_none(), "another port");
        assert!(pool.take("c", 80).is_none(), "another pod");
        assert_eq!(pool.len(), 3);

        sleep(POOL_MAX_AGE - MS).await;
        assert!(pool.take("a", 80).is_some(), "young enough");
        assert_eq!(pool.len(), 2);
        sleep(MS).await;
        assert!(pool.take("a", 80).is_none(), "exactly POOL_MAX_AGE old");
        assert_eq!(pool.len(), 1, "the stale one met on the way is dropped");
        assert!(pool.take("b", 80).is_none());
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.next_expiry(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn pruning_keeps_young_open_tunnels_to_the_pod_in_use() {
        let start = Instant::now();
        let pool = TunnelPool::default();
        let (old, _s1, _k1) = pooled("a", 80);
        pool.put(old);
        sleep(Duration::from_secs(2)).await;
        let (young, session, server) = pooled("a", 80);
        let (other, _s3, _k3) = pooled("b", 80);
        pool.put(young);
        pool.put(other);

        pool.prune(Some(("a", 80)));
        assert_eq!(pool.len(), 2, "another pod's tunnel is dropped");
        assert_eq!(pool.next_expiry(), Some(start + POOL_MAX_AGE));

        sleep(POOL_MAX_AGE - Duration::from_secs(2) - MS).await;
        pool.prune(Some(("a", 80)));
        assert_eq!(pool.len(), 2, "both younger than POOL_MAX_AGE");
        sleep(MS).await;
        pool.prune(Some(("a", 80)));
        assert_eq!(pool.len(), 1, "the first reached POOL_MAX_AGE");
        assert_eq!(
            pool.next_expiry(),
            Some(start + Duration::from_secs(2) + POOL_MAX_AGE)
        );

        // The server closes the young one's session: it is dropped, though young.
        drop(server);
        session.ended().await;
        assert_eq!(start.elapsed(), POOL_MAX_AGE, "the session ended at once");
        pool.prune(Some(("a", 80)));
        assert_eq!(pool.len(), 0, "a closed tunnel is dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_pod_in_use_or_on_clear_nothing_is_kept() {
        let pool = TunnelPool::default();
        let (a, _s1, _k1) = pooled("a", 80);
        let (b, _s2, _k2) = pooled("a", 80);
        pool.put(a);
        pool.prune(None);
        assert_eq!(pool.len(), 0, "no pod in use");
        pool.put(b);
        pool.clear();
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.next_expiry(), None);
    }
}
