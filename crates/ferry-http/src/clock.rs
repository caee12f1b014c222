//! Where the inspector reads the time.
//!
//! An exchange needs two clocks: a monotonic one for durations and the wall clock for when it
//! started. [`Clock::now`] reads both at once; the inspector reads it at most once per chunk it
//! is fed, and only for chunks where a message starts or ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One reading of the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Monotonic time, for durations.
    pub at: Instant,
    /// Wall-clock time in milliseconds since the Unix epoch, for display and HAR.
    pub unix_ms: u64,
}

/// A source of [`Stamp`]s.
pub trait Clock: Send + Sync {
    /// Reads the clock.
    fn now(&self) -> Stamp;
}

/// The real clocks: [`Instant::now`] and [`SystemTime::now`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Stamp {
        // A wall clock set before 1970 reads as the epoch; only display suffers.
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        Stamp {
            at: Instant::now(),
            unix_ms,
        }
    }
}

/// A clock that moves only when told to, for deterministic tests. Clones share the time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    /// The monotonic reading at offset zero.
    base: Instant,
    /// The wall-clock reading at offset zero.
    base_ms: u64,
    /// How far the clock has been advanced, in microseconds.
    offset_us: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock whose wall time starts at `unix_ms`.
    pub fn new(unix_ms: u64) -> Self {
        Self {
            base: Instant::now(),
            base_ms: unix_ms,
            offset_us: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        let us = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.offset_us.fetch_add(us, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Stamp {
        let offset = Duration::from_micros(self.offset_us.load(Ordering::Relaxed));
        let offset_ms = u64::try_from(offset.as_millis()).unwrap_or(u64::MAX);
        Stamp {
            at: self.base + offset,
            unix_ms: self.base_ms.saturating_add(offset_ms),
        }
    }
}
