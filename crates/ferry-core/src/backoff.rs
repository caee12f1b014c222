//! Exponential backoff with jitter that resets after success.
//!
//! Starts at 800 ms and doubles up to a cap, the shape kube-runtime's watcher uses
//! (`DefaultBackoff`: 800 ms → 30 s). Forwards cap at 10 s, as waiting longer for a pod
//! to come back only makes users wait; a pod watch wakes a waiting forward at once anyway.

use std::time::Duration;

use rand::Rng;

/// Backoff state for one retrying activity.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The forward default: 800 ms doubling to 10 s.
    pub fn forward() -> Self {
        Self::new(Duration::from_millis(800), Duration::from_secs(10))
    }

    /// The next delay: the current step with ±20 % jitter, then the step doubles.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::rng().random_range(0.8..1.2);
        base.mul_f64(jitter).min(self.max)
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Sleeps until `at`, or forever when there is no `at` (a `select!` branch that is off).
pub(crate) async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(500)));
        assert!(
            delays[5] >= Duration::from_millis(400),
            "capped near the max: {delays:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
