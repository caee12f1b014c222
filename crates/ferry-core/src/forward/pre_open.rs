//! Tunnels opened ahead of demand for sticky forwards in use (see [`crate::pool`]).

use std::time::Duration;

use tracing::{Instrument, debug};

use super::Worker;
use crate::backoff::sleep_until_or_never;
use crate::config::Pick;
use crate::pool::{POOL_IDLE, POOL_SIZE, Pooled};
use crate::tunnel;

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
            if let (Some((client, namespace, pod, port)), false) = (&target, resting) {
                while self.tunnels.len() + dials.len() < POOL_SIZE {
                    let (client, namespace, pod, port) =
                        (client.clone(), namespace.clone(), pod.clone(), *port);
                    dials.spawn(
                        async move {
                            let tunnel = tunnel::dial(&client, &namespace, &pod, port)
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

    /// Where the next sticky connection goes: client, namespace, pod and port.
    fn pool_target(&self) -> Option<(kube::Client, String, String, u16)> {
        let targets = self.targets.borrow();
        let client = targets.client.clone()?;
        let ep = self.sticky.peek(&targets.endpoints)?;
        Some((client, targets.namespace.clone(), ep.pod.clone(), ep.port))
    }
}
