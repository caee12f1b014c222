//! A wake noticed by the clocks: one that stops while the machine sleeps, read beside one
//! that does not. Their difference grows only while the machine is asleep.
//!
//! | system  | stops while asleep                          | runs on while asleep       |
//! |---------|---------------------------------------------|----------------------------|
//! | Linux   | `CLOCK_MONOTONIC`                           | `CLOCK_BOOTTIME`           |
//! | macOS   | [`std::time::Instant`] (`CLOCK_UPTIME_RAW`) | `CLOCK_MONOTONIC`          |
//! | Windows | `QueryUnbiasedInterruptTime`                | `QueryInterruptTime`       |
//! | others  | [`std::time::Instant`]                      | the wall clock             |
//!
//! On Linux, macOS and Windows neither clock is the wall clock, so setting it (by hand,
//! or NTP stepping it) is no wake. The wall clock, the fallback elsewhere, takes a clock
//! set forward by more than [`JUMP`] for a wake too; one set back is none.
//!
//! On Windows [`std::time::Instant`] (`QueryPerformanceCounter`) counts sleep as well
//! (rust-lang/rust#79462), and the interrupt-time clocks are reached through `unsafe`
//! calls, which this crate forbids: `ferry-power` reads them
//! ([`ferry_power::sleep_clocks`]).

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::info;

use super::Trigger;

/// How often the clocks are compared.
pub const TICK: Duration = Duration::from_secs(2);

/// How much more the clock that counts sleep must have moved on than the one that does
/// not for a wake. A busy machine that misses a tick is not asleep; any real sleep is
/// longer than this.
pub const JUMP: Duration = Duration::from_secs(5);

/// Both clocks read at one moment, each as time since its own start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    /// A clock that stops while the machine sleeps.
    pub awake: Duration,
    /// A clock that runs on while the machine sleeps.
    pub passed: Duration,
}

/// How long the machine slept between two readings, when that was more than [`JUMP`].
/// A clock that went back (only the wall clock can) counts as not having moved.
pub fn slept(before: Clocks, now: Clocks) -> Option<Duration> {
    let awake = now.awake.saturating_sub(before.awake);
    let passed = now.passed.saturating_sub(before.passed);
    let asleep = passed.saturating_sub(awake);
    (asleep > JUMP).then_some(asleep)
}

/// Reads the two clocks of this system.
struct Source {
    /// Where [`std::time::Instant`] readings count from (not needed on Linux).
    #[cfg(not(target_os = "linux"))]
    start: std::time::Instant,
}

impl Source {
    fn new() -> Self {
        Source {
            // The point here is the system's clock, not Tokio's (which tests pause).
            #[cfg(not(target_os = "linux"))]
            #[allow(clippy::disallowed_methods)]
            start: std::time::Instant::now(),
        }
    }

    #[cfg(target_os = "linux")]
    fn read(&self) -> Clocks {
        use rustix::time::{ClockId, clock_gettime};
        let read = |id| Duration::try_from(clock_gettime(id)).unwrap_or_default();
        Clocks {
            awake: read(ClockId::Monotonic),
            passed: read(ClockId::Boottime),
        }
    }

    #[cfg(target_os = "macos")]
    fn read(&self) -> Clocks {
        use rustix::time::{ClockId, clock_gettime};
        Clocks {
            awake: self.start.elapsed(),
            // Darwin's CLOCK_MONOTONIC goes on while the machine is asleep.
            passed: Duration::try_from(clock_gettime(ClockId::Monotonic)).unwrap_or_default(),
        }
    }

    #[cfg(windows)]
    fn read(&self) -> Clocks {
        match ferry_power::sleep_clocks() {
            Some(ferry_power::Clocks { awake, passed }) => Clocks { awake, passed },
            // Not on Windows (reading the interrupt time fails only given a null
            // pointer); the fallback of other systems keeps this total.
            None => self.wall(),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    fn read(&self) -> Clocks {
        self.wall()
    }

    /// [`std::time::Instant`] beside the wall clock, which runs on while the machine
    /// sleeps.
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    fn wall(&self) -> Clocks {
        #[allow(clippy::disallowed_methods)]
        let wall = std::time::SystemTime::now();
        Clocks {
            awake: self.start.elapsed(),
            passed: wall
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }
}

/// Says [`Trigger::Woke`] when the machine slept between two ticks.
pub(super) async fn watch(tx: mpsc::Sender<Trigger>) {
    let source = Source::new();
    let mut last = source.read();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = source.read();
        if let Some(asleep) = slept(last, now) {
            info!(?asleep, "the machine was asleep");
            if tx.send(Trigger::Woke).await.is_err() {
                return;
            }
        }
        last = now;
    }
}
