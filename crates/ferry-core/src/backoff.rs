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
        self.next_delay_with(rand::rng().random_range(0.8..1.2))
    }

    /// The next delay with the jitter factor `jitter` (never past the cap), then the step
    /// doubles.
    fn next_delay_with(&mut self, jitter: f64) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
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
    use tokio::time::Instant;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// The steps in order: 800 ms doubling to the 10 s cap, and from the start again after
    /// a reset; a jitter of ±20 % around each step, never past the cap.
    #[test]
    fn the_forward_backoff_doubles_from_800_ms_to_10_s_and_resets() {
        let steps = [800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000].map(ms);
        let mut b = Backoff::forward();
        let exact: Vec<Duration> = (0..7).map(|_| b.next_delay_with(1.0)).collect();
        assert_eq!(exact, steps);
        b.reset();
        assert_eq!(b.next_delay_with(1.0), ms(800));
        assert_eq!(b.next_delay_with(1.0), ms(1_600));

        let mut low = Backoff::forward();
        let low: Vec<Duration> = (0..6).map(|_| low.next_delay_with(0.8)).collect();
        assert_eq!(low, [640, 1_280, 2_560, 5_120, 8_000, 8_000].map(ms));
        let mut high = Backoff::forward();
        let high: Vec<Duration> = (0..6).map(|_| high.next_delay_with(1.2)).collect();
        assert_eq!(high, [960, 1_920, 3_840, 7_680, 10_000, 10_000].map(ms));
    }

    /// Random jitter stays within a fifth of each step and under the cap.
    #[test]
    fn random_delays_stay_within_a_fifth_of_each_step() {
        for _ in 0..100 {
            let mut b = Backoff::forward();
            for step in [800, 1_600, 3_200, 6_400, 10_000, 10_000].map(ms) {
                let d = b.next_delay();
                assert!(
                    d >= step.mul_f64(0.8) && d <= step.mul_f64(1.2).min(ms(10_000)),
                    "{d:?} for a step of {step:?}"
                );
            }
        }
    }

    /// On the paused clock, a retry loop waits exactly the delays in order, and a reset
    /// brings the first one back.
    #[tokio::test(start_paused = true)]
    async fn a_retry_loop_waits_the_steps_in_order() {
        let start = Instant::now();
        let mut b = Backoff::forward();
        let mut woke = Vec::new();
        for _ in 0..6 {
            tokio::time::sleep(b.next_delay_with(1.0)).await;
            woke.push(start.elapsed());
        }
        b.reset();
        tokio::time::sleep(b.next_delay_with(1.0)).await;
        woke.push(start.elapsed());
        assert_eq!(
            woke,
            [800, 2_400, 5_600, 12_000, 22_000, 32_000, 32_800].map(ms)
        );
    }

    /// `Some(at)` wakes exactly at `at`; `None` never does.
    #[tokio::test(start_paused = true)]
    async fn sleeping_until_wakes_at_the_instant_or_never() {
        let start = Instant::now();
        sleep_until_or_never(Some(start + ms(1_234))).await;
        assert_eq!(start.elapsed(), ms(1_234));
        let never = tokio::time::timeout(ms(3_600_000), sleep_until_or_never(None)).await;
        assert!(never.is_err(), "woke without an instant");
        assert_eq!(start.elapsed(), ms(1_234 + 3_600_000));
    }

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
