//! Sleep and wake as the system tells them, where telling needs `unsafe` calls that
//! `ferry-core` forbids itself.
//!
//! - [`subscribe`]: a wake at once, from the system's power notifications. On Windows,
//!   the power manager's suspend/resume callback (`PowerRegisterSuspendResumeNotification`).
//!   Elsewhere [`PowerError::Unsupported`]: Linux has logind on the system bus, reached
//!   without `unsafe` from `ferry-core`, and macOS only the clocks.
//! - [`sleep_clocks`]: a clock that stops while the machine sleeps beside one that does
//!   not. On Windows, `QueryUnbiasedInterruptTime` beside `QueryInterruptTime` (Rust's
//!   `Instant` there counts sleep, rust-lang/rust#79462). Elsewhere `None`: Linux and
//!   macOS have such clocks without `unsafe`.
//!
//! Lints (`Cargo.toml`): `unsafe_code` is denied, and only the items that call the
//! system allow it, each block with its `// SAFETY:` reasoning.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

#[cfg(windows)]
mod windows;

#[cfg(not(windows))]
mod unsupported;

#[cfg(not(windows))]
use unsupported as imp;
#[cfg(windows)]
use windows as imp;

/// Why the system's power notifications cannot be heard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PowerError {
    /// This system has no power notifications this crate knows of.
    #[error("no power notifications on this system")]
    Unsupported,
    /// The system refused the subscription.
    #[error("the power manager refused the subscription: {0}")]
    Register(#[source] std::io::Error),
}

/// A subscription to the system's power notifications: one item per wake. Dropping it
/// ends the subscription.
pub struct Wakes {
    /// One `()` per resume the system announced. A wake may be announced more than once
    /// (on Windows: automatically, then again if someone is at the machine).
    rx: mpsc::UnboundedReceiver<()>,
    /// Ends the system's registration when dropped.
    _registration: imp::Registration,
}

impl std::fmt::Debug for Wakes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakes").finish_non_exhaustive()
    }
}

/// Subscribes to the system's power notifications. Wakes after this returns are heard.
pub fn subscribe() -> Result<Wakes, PowerError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let registration = imp::register(tx)?;
    Ok(Wakes {
        rx,
        _registration: registration,
    })
}

impl Wakes {
    /// The next wake, or `None` once the system will say no more.
    pub async fn next(&mut self) -> Option<()> {
        self.rx.recv().await
    }
}

/// Two clocks read at one moment, each as time since the machine started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    /// A clock that stops while the machine sleeps.
    pub awake: Duration,
    /// A clock that runs on while the machine sleeps.
    pub passed: Duration,
}

/// Reads a clock that stops while the machine sleeps beside one that does not, where
/// that takes this crate (Windows); `None` elsewhere.
pub fn sleep_clocks() -> Option<Clocks> {
    imp::sleep_clocks()
}

// === impl Sink ===

/// Where the system's callback puts a wake. The callback may run on any thread, and may
/// (for all the system says) still be running once the registration is undone, so the
/// sink it is given is never freed: [`Sink::close`] lets go of the channel instead.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) struct Sink {
    /// The wakes' way to [`Wakes`]; `None` once the subscription ended.
    tx: Mutex<Option<mpsc::UnboundedSender<()>>>,
}

#[cfg_attr(not(windows), allow(dead_code))]
impl Sink {
    /// A sink that lives as long as the process: a lock and an `Option`, once per
    /// subscription.
    pub(crate) fn leak(tx: mpsc::UnboundedSender<()>) -> &'static Sink {
        Box::leak(Box::new(Sink {
            tx: Mutex::new(Some(tx)),
        }))
    }

    /// Says a wake, if the subscription still stands and anyone listens.
    pub(crate) fn wake(&self) {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = tx.as_ref() {
            // Nobody listening: the subscription is being dropped.
            let _ = tx.send(());
        }
    }

    /// Lets go of the channel: later wakes go nowhere, and [`Wakes::next`] ends.
    pub(crate) fn close(&self) {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// A count of 100 ns intervals (Windows' interrupt time) as a [`Duration`].
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn from_100ns(ticks: u64) -> Duration {
    const PER_SECOND: u64 = 10_000_000;
    let nanos = u32::try_from((ticks % PER_SECOND) * 100).unwrap_or_default();
    Duration::new(ticks / PER_SECOND, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_time_is_in_100ns() {
        let check = |ticks, expect| assert_eq!(from_100ns(ticks), expect, "{ticks} ticks");
        check(0, Duration::ZERO);
        check(1, Duration::from_nanos(100));
        check(10_000_000, Duration::from_secs(1));
        check(36_000_000_001, Duration::new(3600, 100));
        // As long as any machine has been up, and far beyond.
        check(u64::MAX, Duration::new(1_844_674_407_370, 955_161_500));
    }

    #[tokio::test]
    async fn the_sink_says_wakes_until_closed() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = Sink::leak(tx);
        sink.wake();
        sink.wake();
        assert_eq!(rx.recv().await, Some(()));
        assert_eq!(rx.recv().await, Some(()));
        sink.close();
        // A callback still running after the registration ended goes nowhere.
        sink.wake();
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn a_wake_nobody_hears_is_dropped() {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Sink::leak(tx);
        drop(rx);
        sink.wake();
        sink.close();
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_nothing_is_told() {
        assert!(matches!(subscribe(), Err(PowerError::Unsupported)));
        assert_eq!(sleep_clocks(), None);
    }
}
