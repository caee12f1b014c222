//! Tunnels opened ahead of demand for sticky forwards in use: where connections share a
//! SPDY session, the session to the pod is kept open; where each has a WebSocket of its
//! own, a few are opened ahead (see [`crate::pool`]).

use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, debug};

use super::Worker;
use crate::backoff::sleep_until_or_never;
use crate::config::Pick;
use crate::pool::{POOL_IDLE, POOL_SIZE, Pooled};
use crate::sessions::Tunnels;

impl Worker {
    /// Keeps a few tunnels open ahead of demand while the forward is in use (see
    /// [`crate::pool`]); holds none while it is idle.
    pub(super) async fn pool_loop(&self) {
        if !self.pre_open || self.spec.pick != Pick::Sticky {
            return;
        }
        let mut targets = self.targets.subscribe();
        // Bumped by every resolution the resolver publishes (pod events, periodic checks):
        // tunnels opened before it are dropped, so a pod that went (even one replaced
        // under the same name, as a StatefulSet's) is never reached through the pool.
        let mut generation: u64 = 0;
        let mut dials: tokio::task::JoinSet<Option<(u64, Pooled)>> = tokio::task::JoinSet::new();
        // After a failed dial the pool rests a moment instead of hammering the server.
        let mut rest_until: Option<tokio::time::Instant> = None;
        loop {
            let busy = self.tunnels.busy();
            let target = if busy { self.pool_target() } else { None };
            if busy {
                self.tunnels
                    .prune(target.as_ref().map(|t| (t.2.as_str(), t.3)));
            } else {
                self.tunnels.clear();
                dials.abort_all();
            }
            let now = tokio::time::Instant::now();
            let resting = rest_until.is_some_and(|t| now < t);
            let multiplexed = target.as_ref().is_some_and(|t| t.0.multiplexed());
            if let (Some((sessions, namespace, pod, _)), false, true) =
                (&target, resting, multiplexed)
            {
                // One session to the pod, opened ahead; looked at again after a rest.
                if dials.is_empty() {
                    let (sessions, namespace, pod) =
                        (sessions.clone(), namespace.clone(), pod.clone());
                    dials.spawn(
                        async move {
                            if let Err(e) = sessions.prepare(&namespace, &pod).await {
                                debug!(error = %e, "opening a session ahead failed");
                            }
                            None
                        }
                        .in_current_span(),
                    );
                }
            } else if let (Some((sessions, namespace, pod, port)), false) = (&target, resting) {
                while self.tunnels.len() + dials.len() < POOL_SIZE {
                    let (sessions, namespace, pod, port) =
                        (sessions.clone(), namespace.clone(), pod.clone(), *port);
                    dials.spawn(
                        async move {
                            let tunnel = sessions
                                .open(&namespace, &pod, port)
                                .await
                                .map_err(|e| debug!(error = %e, "pre-opening a tunnel failed"))
                                .ok()?;
                            Some((
                                generation,
                                Pooled {
                                    pod,
                                    port,
                                    opened: tokio::time::Instant::now(),
                                    tunnel,
                                },
                            ))
                        }
                        .in_current_span(),
                    );
                }
            }
            // Wake for the first expiry, the end of a rest, or the pool going idle.
            let mut wake_at = [
                self.tunnels.next_expiry(),
                rest_until.filter(|t| *t > now),
                busy.then(|| now + POOL_IDLE),
            ]
            .into_iter()
            .flatten()
            .min();
            if wake_at.is_some_and(|t| t <= now) {
                wake_at = Some(now + Duration::from_millis(10));
            }
            let timer = sleep_until_or_never(wake_at);
            tokio::select! {
                () = self.token.cancelled() => {
                    dials.abort_all();
                    self.tunnels.clear();
                    return;
                }
                () = self.tunnels.wake.notified() => {}
                Some(done) = dials.join_next(), if !dials.is_empty() => match done {
                    Ok(Some((g, pooled))) if g == generation => self.tunnels.put(pooled),
                    Ok(Some(_)) => {}
                    _ => rest_until = Some(tokio::time::Instant::now() + Duration::from_secs(1)),
                },
                changed = targets.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    generation += 1;
                    self.tunnels.clear();
                }
                () = timer => {}
            }
        }
    }

    /// Where the next sticky connection goes: sessions, namespace, pod and port.
    fn pool_target(&self) -> Option<(Arc<Tunnels>, String, String, u16)> {
        let targets = self.targets.borrow();
        let client = targets.tunnels.clone()?;
        let ep = self.sticky.peek(&targets.endpoints)?;
        Some((client, targets.namespace.clone(), ep.pod.clone(), ep.port))
    }
}
