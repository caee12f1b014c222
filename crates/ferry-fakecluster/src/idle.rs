//! Kubelet's streaming idle timeout (`--streaming-connection-idle-timeout`): a session in
//! which nothing moved either way for the timeout is closed by the server. moby/spdystream
//! restarts its idle timer on every frame read or written, pings included; the fake does
//! the same through [`Activity`], bumped by the session's reader and writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What a session moved so far, either way (frames or messages).
#[derive(Clone, Default)]
pub(crate) struct Activity(Arc<AtomicU64>);

impl Activity {
    /// Something moved.
    pub(crate) fn saw(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Resolves once nothing moved for `timeout`, with how long that was; never when
    /// `timeout` is `None`. Looks ten times per timeout (at most once a second).
    pub(crate) async fn idle_for(&self, timeout: Option<Duration>) -> Duration {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        let look = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut seen = self.count();
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(look).await;
            let now = self.count();
            if now != seen {
                seen = now;
                since = Instant::now();
            } else if since.elapsed() >= timeout {
                return since.elapsed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_time_restarts_with_every_movement() {
        let a = Activity::default();
        let started = Instant::now();
        let mover = {
            let a = a.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    a.saw();
                }
            })
        };
        let idle = a.idle_for(Some(Duration::from_secs(1))).await;
        // Last movement at 4.0 s; idle from then for 1 s, seen at the next look.
        assert!(idle >= Duration::from_secs(1));
        let at = started.elapsed();
        assert!(
            at >= Duration::from_secs(5) && at <= Duration::from_millis(5100),
            "closed at {at:?}"
        );
        mover.await.expect("mover");
    }
}
