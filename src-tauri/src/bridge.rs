//! The bridge from the engine to the window, the tray and notifications. One task:
//! it follows the engine's events (re-subscribing when the engine is replaced) and emits
//! - `ferry://state` when config, settings, banner or demo change;
//! - `ferry://snapshot` when forward states change, at most four times a second, and
//!   when traffic counters change, at most once a second.
//!
//! It also re-reads the store when another program (the `ferry` CLI) has written it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ferry_core::events::{Event, ForwardState, Snapshot, Update};
use tauri::{AppHandle, Emitter, Manager};

use crate::app::AppCore;
use crate::tray::Tray;

pub const STATE_EVENT: &str = "ferry://state";
pub const SNAPSHOT_EVENT: &str = "ferry://snapshot";

/// Quietest gap between two snapshot events for state changes.
const COALESCE: Duration = Duration::from_millis(250);
/// How often counters and the store file are looked at.
const TICK: Duration = Duration::from_secs(1);
/// At most one notification per forward in this long.
const NOTIFY_EVERY: Duration = Duration::from_secs(30);

pub async fn run(app: AppHandle, core: Arc<AppCore>) {
    let mut changes = core.changes();
    let mut engines = core.engine_changes();
    let mut sub = core.subscribe().await;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = false;
    let mut last_emit = Instant::now() - COALESCE;
    let mut last_counters: Vec<(String, u64, u64, u64)> = Vec::new();
    let mut store_mtime = mtime(core.store_path());
    let mut notifier = Notifier::default();
    publish_state(&app, &core).await;
    loop {
        let wait = COALESCE.saturating_sub(last_emit.elapsed());
        tokio::select! {
            update = next(&mut sub) => match update {
                Some(Update::Event(event)) => {
                    if let Event::Forward { status } = &event {
                        notifier.consider(&app, &core, &status.forward, status.state, status.error.as_deref());
                    }
                    dirty = true;
                }
                Some(Update::Resync(_)) => dirty = true,
                None => {
                    // The engine went (replaced or shut down): wait for the next one.
                    sub = None;
                }
            },
            changed = changes.changed() => {
                if changed.is_err() { return; }
                publish_state(&app, &core).await;
            }
            changed = engines.changed() => {
                if changed.is_err() { return; }
                sub = core.subscribe().await;
                dirty = true;
            }
            _ = tokio::time::sleep(wait), if dirty => {
                let snapshot = core.snapshot().await;
                emit_snapshot(&app, &core, &snapshot);
                last_counters = counters(&snapshot);
                last_emit = Instant::now();
                dirty = false;
            }
            _ = tick.tick() => {
                let now = mtime(core.store_path());
                if now != store_mtime {
                    store_mtime = now;
                    if let Err(e) = core.reload_store().await {
                        tracing::warn!(error = %e, "the store changed but could not be read");
                    }
                }
                if app.get_webview_window("main").is_some() {
                    let snapshot = core.snapshot().await;
                    let c = counters(&snapshot);
                    if c != last_counters {
                        let _ = app.emit(SNAPSHOT_EVENT, &*snapshot);
                        last_counters = c;
                    }
                }
            }
        }
    }
}

async fn next(sub: &mut Option<ferry_core::events::Subscription>) -> Option<Update> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn counters(snapshot: &Snapshot) -> Vec<(String, u64, u64, u64)> {
    snapshot
        .forwards
        .iter()
        .map(|s| (s.forward.clone(), s.connections, s.bytes_in, s.bytes_out))
        .collect()
}

async fn publish_state(app: &AppHandle, core: &AppCore) {
    let state = core.state().await;
    update_tray(app, &state.config, &state.snapshot);
    let _ = app.emit(STATE_EVENT, &state);
}

fn emit_snapshot(app: &AppHandle, core: &AppCore, snapshot: &Snapshot) {
    update_tray(app, &core.config(), snapshot);
    let _ = app.emit(SNAPSHOT_EVENT, snapshot);
}

fn update_tray(app: &AppHandle, config: &ferry_core::config::Config, snapshot: &Snapshot) {
    if let Some(tray) = app.try_state::<Arc<Tray>>()
        && let Err(e) = tray.show(app, config, snapshot)
    {
        tracing::debug!(error = %e, "tray update failed");
    }
}

/// Desktop notifications when a forward goes down or recovers, at most one per forward
/// every 30 s.
#[derive(Default)]
struct Notifier {
    last: HashMap<String, (ForwardState, Option<Instant>)>,
}

impl Notifier {
    fn consider(
        &mut self,
        app: &AppHandle,
        core: &AppCore,
        forward: &str,
        state: ForwardState,
        error: Option<&str>,
    ) {
        let down = |s: ForwardState| {
            matches!(
                s,
                ForwardState::Error | ForwardState::Reconnecting | ForwardState::Degraded
            )
        };
        let (before, sent) = self
            .last
            .get(forward)
            .copied()
            .unwrap_or((ForwardState::Disabled, None));
        self.last.insert(forward.to_string(), (state, sent));
        let message = if before == ForwardState::Active && down(state) {
            format!("{forward} is {state}: {}", error.unwrap_or("checks fail"))
        } else if down(before) && state == ForwardState::Active {
            format!("{forward} is back up")
        } else {
            return;
        };
        if !core.settings().notifications || sent.is_some_and(|t| t.elapsed() < NOTIFY_EVERY) {
            return;
        }
        self.last
            .insert(forward.to_string(), (state, Some(Instant::now())));
        use tauri_plugin_notification::NotificationExt as _;
        if let Err(e) = app
            .notification()
            .builder()
            .title("Ferry")
            .body(message)
            .show()
        {
            tracing::debug!(error = %e, "notification not shown");
        }
    }
}
