//! Noticing what a laptop does to tunnels: the machine waking from sleep and the network
//! changing. Either makes the engine check everything again at once
//! ([`crate::Engine::recheck`]) instead of waiting for the next ping or probe.
//!
//! - **Wake**: the monotonic clock does not advance while the machine sleeps (Linux's
//!   `CLOCK_MONOTONIC`, macOS's `mach_absolute_time`), the wall clock does. Every
//!   [`TICK`], the two are compared; when the wall clock moved on more than [`JUMP`] past
//!   the monotonic one, the machine slept (or its clock was set, which is worth a check
//!   too). This needs no platform service and works on every system.
//! - **Network change**: an address appearing or going on any interface (Wi-Fi to
//!   Ethernet, a VPN up or down), from the system's own feed through `if-watch`: netlink
//!   on Linux, the System Configuration dynamic store on macOS, IP interface change
//!   notifications on Windows. Several changes within [`SETTLE`] make one check.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::cluster::ClientPool;

/// How often the clocks are compared.
pub const TICK: Duration = Duration::from_secs(2);

/// How far the wall clock must run ahead of the monotonic one to count as a wake.
pub const JUMP: Duration = Duration::from_secs(5);

/// Network changes closer together than this make one check.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Why everything is checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Woke,
    NetworkChanged,
}

impl Trigger {
    /// What the connections of a session that did not survive say.
    /// What a forward in doubt says until it is proven working again.
    pub fn doubt(self) -> &'static str {
        match self {
            Trigger::Woke => "the machine woke from sleep",
            Trigger::NetworkChanged => "the network changed",
        }
    }

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
    let clock = tokio::spawn(watch_clock(tx.clone()));
    let network = tokio::spawn(watch_network(tx));
    loop {
        let trigger = tokio::select! {
            () = token.cancelled() => break,
            t = rx.recv() => match t {
                Some(t) => t,
                None => break,
            },
        };
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
    clock.abort();
    network.abort();
}

/// Says [`Trigger::Woke`] when the wall clock jumps ahead of the monotonic one.
async fn watch_clock(tx: mpsc::Sender<Trigger>) {
    // The two clocks are the point here: the engine's own timing uses Tokio's.
    #[allow(clippy::disallowed_methods)]
    let now = || (std::time::Instant::now(), std::time::SystemTime::now());
    let mut last = now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (mono, wall) = now();
        let mono_passed = mono.duration_since(last.0);
        // A wall clock set back gives no wake.
        let wall_passed = wall.duration_since(last.1).unwrap_or_default();
        last = (mono, wall);
        if wall_passed > mono_passed + JUMP {
            info!(
                asleep = ?(wall_passed - mono_passed),
                "the machine was asleep (or its clock was set)"
            );
            if tx.send(Trigger::Woke).await.is_err() {
                return;
            }
        }
    }
}

/// Says [`Trigger::NetworkChanged`] when an address comes or goes on any interface. The
/// addresses present at the start are not changes.
async fn watch_network(tx: mpsc::Sender<Trigger>) {
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
            Ok(event) if started.elapsed() > TICK => {
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
