//! The engine's timers on Tokio's paused clock: time moves only when every task waits, so
//! these tests take milliseconds and say exactly when something happened, with no sleeps
//! and no bounds that a busy machine could break.

mod common;

use std::time::Duration;

use common::{config, fwd, options, wait_for};
use ferry_core::Engine;
use ferry_core::config::PortRef;
use ferry_core::events::{Event, Update};
use tokio::time::{Instant, timeout};

/// A frozen accept loop stops beating; the manager, looking every quarter of a second,
/// restarts the worker once the loop has been silent for longer than the watchdog period,
/// and not before; a loop that beats is never restarted.
#[tokio::test(start_paused = true)]
async fn the_watchdog_restarts_a_silent_worker_after_its_period() -> anyhow::Result<()> {
    // No kubeconfig: the forward cannot resolve, but it listens and its loop beats.
    let mut opts = options(Vec::new());
    opts.watchdog = Duration::from_secs(10);
    let engine = Engine::start(
        config(vec![fwd("solo", "pod/solo", PortRef::Number(9000))]),
        opts,
    )?;
    wait_for(&engine, "solo", "listening", |s| s.local.is_some()).await?;
    let mut sub = engine.subscribe();
    // Quiet for a while first: a beating loop is never restarted.
    tokio::time::sleep(Duration::from_secs(60)).await;
    engine.freeze_accept_loop_for_tests("solo").await?;
    let frozen = Instant::now();
    let reason = timeout(Duration::from_secs(120), async {
        loop {
            match sub.next().await {
                Some(Update::Event(Event::Restarted { forward, reason })) if forward == "solo" => {
                    return Some(reason);
                }
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await?
    .ok_or_else(|| anyhow::anyhow!("the engine went away"))?;
    let after = frozen.elapsed();
    assert!(reason.contains("watchdog"), "{reason}");
    // Silent for more than 10 s, found at the next look: the last beat came at most one
    // beat period (2.5 s) before the freeze, and the manager looks every 250 ms. The stuck
    // worker is then given 2 s to stop before it is aborted, and the restart is announced.
    assert!(
        after > Duration::from_millis(9_500) && after <= Duration::from_millis(12_250),
        "restarted {after:?} after the freeze"
    );
    wait_for(&engine, "solo", "listening again", |s| s.local.is_some()).await?;
    // The new worker beats: a minute on, it has not been restarted again.
    tokio::time::sleep(Duration::from_secs(60)).await;
    while let Ok(event) = sub.events.try_recv() {
        assert!(
            !matches!(event, Event::Restarted { .. }),
            "restarted again: {event:?}"
        );
    }
    engine.shutdown().await;
    Ok(())
}
