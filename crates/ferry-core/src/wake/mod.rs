//! Noticing what a laptop does to tunnels: the machine waking from sleep and the network
//! changing. Either makes the engine check everything again at once
//! ([`crate::Engine::recheck`]) instead of waiting for the next ping or probe.
//!
//! - **Wake, from the system**: on Linux, logind says `PrepareForSleep(false)` on the
//!   system bus as the machine resumes ([`logind`]); on Windows, the power manager calls
//!   back (`PBT_APMRESUMEAUTOMATIC`, through `ferry-power`: [`power`]). Without a system
//!   bus or logind (containers, minimal systems) or a power manager that takes the
//!   subscription, this part stays silent and the clocks below remain.
//! - **Wake, from the clocks**: every [`TICK`] a clock that stops while the
//!   machine sleeps is compared with one that does not ([`clock`]). When the second moved
//!   on more than [`JUMP`] past the first, the machine slept. On Linux, macOS and Windows
//!   neither is the wall clock, so setting it (by hand or NTP) is no wake; elsewhere the
//!   second is the wall clock.
//! - **Network change**: an address appearing or going on any interface (Wi-Fi to
//!   Ethernet, a VPN up or down), from the system's own feed through `if-watch`: netlink
//!   on Linux, the System Configuration dynamic store on macOS, IP interface change
//!   notifications on Windows.
//!
//! Several triggers within [`SETTLE`] make one check, so a wake noticed by logind and by
//! the clocks, followed by the Wi-Fi coming back, checks once or twice, not five times.

pub mod clock;
#[cfg(target_os = "linux")]
pub mod logind;
pub mod power;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info};

use crate::cluster::ClientPool;

pub use clock::{Clocks, JUMP, TICK, slept};

/// Network changes closer together than this make one check.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Why everything is checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Woke,
    NetworkChanged,
}

impl Trigger {
    /// What a forward in doubt says until it is proven working again.
    pub fn doubt(self) -> &'static str {
        match self {
            Trigger::Woke => "the machine woke from sleep",
            Trigger::NetworkChanged => "the network changed",
        }
    }

    /// What the connections of a session that did not survive say.
    pub fn reason(self) -> &'static str {
        match self {
            Trigger::Woke => "the machine woke from sleep and the cluster did not answer",
            Trigger::NetworkChanged => "the network changed and the cluster did not answer",
        }
    }
}

/// Watches for wakes and network changes until `token` is cancelled, and checks
/// everything again after each: sessions through `pool`, forwards through `recheck`.
pub(crate) async fn watch(
    pool: Arc<ClientPool>,
    recheck: mpsc::Sender<Trigger>,
    token: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<Trigger>(4);
    // The watchers end when this set is dropped: on cancellation, or with this future.
    let mut watchers = JoinSet::new();
    watchers.spawn(clock::watch(tx.clone()).in_current_span());
    #[cfg(target_os = "linux")]
    watchers.spawn(logind::watch(tx.clone()).in_current_span());
    watchers.spawn(power::watch(tx.clone()).in_current_span());
    watchers.spawn(watch_network(tx, TICK).in_current_span());
    let mut last_wake: Option<tokio::time::Instant> = None;
    loop {
        let trigger = tokio::select! {
            () = token.cancelled() => break,
            t = rx.recv() => match t {
                Some(t) => t,
                None => break,
            },
        };
        let now = tokio::time::Instant::now();
        if same_wake(trigger, last_wake, now) {
            // logind said it at once; the clocks say it again up to a tick later.
            debug!("a wake already checked");
            continue;
        }
        if trigger == Trigger::Woke {
            last_wake = Some(now);
        }
        // Changes that come together make one check.
        tokio::time::sleep(SETTLE).await;
        while rx.try_recv().is_ok() {}
        info!(?trigger, "checking every forward again");
        let ended = crate::engine::verify_sessions(&pool, trigger.reason()).await;
        debug!(sessions.ended = ended, "sessions checked");
        if recheck.send(trigger).await.is_err() {
            break;
        }
    }
}

/// Whether `trigger` is a wake already checked: one heard within [`ONE_WAKE`] of the last
/// (each source that tells of a wake says it once; logind at once, the clocks up to a
/// [`TICK`] later). A network change is always news.
fn same_wake(
    trigger: Trigger,
    last_wake: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
) -> bool {
    trigger == Trigger::Woke && last_wake.is_some_and(|at| now.duration_since(at) < ONE_WAKE)
}

/// Wakes told closer together than this are one wake.
pub const ONE_WAKE: Duration = Duration::from_secs(10);

/// Says [`Trigger::NetworkChanged`] when an address comes or goes on any interface. The
/// addresses the feed lists within `quiet` of the start are what was there, not changes
/// (the engine passes [`TICK`]).
#[doc(hidden)]
pub async fn watch_network(tx: mpsc::Sender<Trigger>, quiet: Duration) {
    let mut watcher = match if_watch::tokio::IfWatcher::new() {
        Ok(w) => w,
        Err(e) => {
            debug!(error = %e, "no feed of network changes; wakes are still noticed");
            return;
        }
    };
    // The watcher first lists what is there: take that in without a check.
    let started = tokio::time::Instant::now();
    while let Some(event) = watcher.next().await {
        match event {
            Ok(event) if started.elapsed() > quiet => {
                debug!(?event, "network change");
                if tx.send(Trigger::NetworkChanged).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "the feed of network changes failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_told_twice_is_checked_once() {
        let t0 = tokio::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (trigger, last wake checked, now) ⇒ already checked
        let table = [
            (Trigger::Woke, None, at(0), false),
            (Trigger::Woke, Some(at(0)), at(2), true),
            (Trigger::Woke, Some(at(0)), at(9), true),
            (Trigger::Woke, Some(at(0)), at(10), false),
            (Trigger::Woke, Some(at(0)), at(3600), false),
            (Trigger::NetworkChanged, Some(at(0)), at(1), false),
            (Trigger::NetworkChanged, None, at(1), false),
        ];
        for (trigger, last, now, expect) in table {
            assert_eq!(
                same_wake(trigger, last, now),
                expect,
                "{trigger:?} after {last:?} at {now:?}"
            );
        }
    }
}
