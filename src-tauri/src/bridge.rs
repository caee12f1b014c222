//! The bridge from the engine to the window, the tray and notifications. One task, owned
//! by the core (it ends at shutdown): it follows the engine's subscription and emits
//! - `ferry://state` when config, settings, preferences, banner or demo change;
//! - `ferry://snapshot` when the engine publishes a snapshot (a state change, or counters
//!   that moved: the engine looks every quarter of a second), at most four times a second.
//!
//! It never asks the engine for a snapshot of its own and never polls one. It also re-reads
//! the store when another program (the `ferry` CLI) has written it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ferry_core::events::{Event, ForwardState, Snapshot, Update};

use crate::app::AppCore;
use crate::desktop::Desktop;
use crate::tray::View;

pub const STATE_EVENT: &str = "ferry://state";
pub const SNAPSHOT_EVENT: &str = "ferry://snapshot";

/// Quietest gap between two snapshot events.
const COALESCE: Duration = Duration::from_millis(250);
/// How often the store file is looked at and notifications fall due.
const TICK: Duration = Duration::from_secs(1);
/// A forward down this long after having been up is announced.
const NOTIFY_AFTER: Duration = Duration::from_secs(3);
/// At most one "down" notification per forward in this long.
const NOTIFY_EVERY: Duration = Duration::from_secs(30);

/// The latest notifications shown, for their buttons: each one's id and the forwards its
/// "Retry" checks again.
type Shown = Arc<parking_lot::Mutex<std::collections::VecDeque<(u32, Vec<String>)>>>;

/// A notification's text, and the forwards it says are down (its "Retry" button checks
/// them again at once; none for a recovery).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Notice {
    text: String,
    down: Vec<String>,
}

impl From<String> for Notice {
    fn from(text: String) -> Notice {
        Notice {
            text,
            down: Vec::new(),
        }
    }
}

/// How many notifications' buttons are listened for (the latest ones).
const BUTTONS_KEPT: usize = 32;

/// Starts the bridge, and the listener for the notifications' buttons, as the core's tasks.
pub fn start(desktop: Arc<Desktop>, core: &Arc<AppCore>) {
    let shown = Shown::default();
    #[cfg(target_os = "linux")]
    core.spawn(follow_buttons(Arc::downgrade(&desktop), shown.clone()));
    core.spawn(run(desktop, core.clone(), shown));
}

/// Opens the window when the user presses a notification's "Open Ferry" button (or clicks
/// its body), and checks the forwards it named again at once on "Retry": the notification
/// service says so with an `ActionInvoked` signal.
#[cfg(target_os = "linux")]
async fn follow_buttons(desktop: std::sync::Weak<Desktop>, shown: Shown) {
    use futures::StreamExt as _;
    let listen = async {
        let bus = zbus::Connection::session().await?;
        let proxy = zbus::Proxy::new(
            &bus,
            "org.freedesktop.Notifications",
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications",
        )
        .await?;
        let mut pressed = proxy.receive_signal("ActionInvoked").await?;
        while let Some(signal) = pressed.next().await {
            let Ok((id, action)) = signal.body().deserialize::<(u32, String)>() else {
                continue;
            };
            let Some(down) = shown
                .lock()
                .iter()
                .find(|(shown, _)| *shown == id)
                .map(|(_, down)| down.clone())
            else {
                continue;
            };
            let Some(desktop) = desktop.upgrade() else {
                break;
            };
            match action.as_str() {
                "open" | "default" => crate::window::show(&desktop),
                "retry" => {
                    for forward in down {
                        match desktop.core().retry_forward(&forward).await {
                            Ok(()) => {
                                tracing::info!(forward = %forward, "checked again from a notification")
                            }
                            Err(e) => {
                                tracing::warn!(forward = %forward, error = %e, "retry from a notification failed")
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        zbus::Result::Ok(())
    };
    if let Err(e) = listen.await {
        tracing::debug!(error = %e, "notification buttons are not heard");
    }
}

async fn run(app: Arc<Desktop>, core: Arc<AppCore>, shown: Shown) {
    let mut changes = core.changes();
    let mut sub = core.subscribe();
    // The snapshots the engine publishes, followed apart from the events.
    let mut snapshots = sub.snapshot.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut last_emit = Instant::now() - COALESCE;
    let mut store_mtime = mtime(core.store_path());
    let mut notifier = Notifier::default();
    let desktop = desktop_notifier(core.data_dir(), shown);
    // What the tray shows last: a snapshot that changes nothing in it is not sent.
    let mut tray = None;
    // States reached before the subscription are the notifier's starting point.
    let first = snapshots.borrow_and_update().clone();
    for message in notifier.seed(&first) {
        notify(&desktop, &core, message);
    }
    let mut login = LoginEntry::start(&core);
    publish_state(&app, &mut tray, &core, first.clone());
    loop {
        let wait = COALESCE.saturating_sub(last_emit.elapsed());
        tokio::select! {
            () = core.stopped().cancelled() => return,
            update = sub.next() => match update {
                Some(Update::Event(event)) => match &event {
                    Event::Forward { status } => {
                        let reason = status.error.as_deref().or(status.detail.as_deref());
                        if let Some(message) = notifier.state(Instant::now(), &status.forward, status.state, reason) {
                            notify(&desktop, &core, message);
                        }
                    }
                    Event::Removed { forward } => notifier.forget(forward),
                    _ => {}
                },
                Some(Update::Resync(snapshot)) => {
                    // Events were missed: take every forward's state from the snapshot.
                    for message in notifier.seed(&snapshot) {
                        notify(&desktop, &core, message);
                    }
                }
                // The engine has stopped: so has the app.
                None => return,
            },
            changed = snapshots.changed(), if !dirty => {
                if changed.is_err() { return; }
                dirty = true;
            }
            changed = changes.changed() => {
                if changed.is_err() { return; }
                login.follow(&core);
                let snapshot = snapshots.borrow().clone();
                publish_state(&app, &mut tray, &core, snapshot);
            }
            _ = tokio::time::sleep(wait), if dirty => {
                let snapshot = snapshots.borrow_and_update().clone();
                emit_snapshot(&app, &mut tray, &core, &snapshot);
                last_emit = Instant::now();
                dirty = false;
            }
            _ = tick.tick() => {
                for message in notifier.due(Instant::now()) {
                    notify(&desktop, &core, message);
                }
                let now = mtime(core.store_path());
                if now != store_mtime {
                    store_mtime = now;
                    if let Err(e) = core.reload_store().await {
                        tracing::warn!(error = %e, "the store changed but could not be read");
                    }
                }
            }
        }
    }
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn publish_state(
    app: &Desktop,
    tray: &mut Option<View>,
    core: &AppCore,
    snapshot: std::sync::Arc<Snapshot>,
) {
    let state = core.state_with(snapshot);
    update_tray(
        app,
        tray,
        View::new(&state.config, &state.favourites, &state.snapshot),
    );
    app.emit(STATE_EVENT, &state);
}

fn emit_snapshot(app: &Desktop, tray: &mut Option<View>, core: &AppCore, snapshot: &Snapshot) {
    update_tray(
        app,
        tray,
        View::new(&core.config(), &core.favourites(), snapshot),
    );
    app.emit(SNAPSHOT_EVENT, snapshot);
}

/// Sends the tray `view` when it differs from what it was last sent.
fn update_tray(app: &Desktop, shown: &mut Option<View>, view: View) {
    if shown.as_ref() != Some(&view) {
        *shown = Some(view.clone());
        app.tray(view);
    }
}

/// Decides the desktop notifications: a forward that was up and has stayed down for
/// [`NOTIFY_AFTER`] is announced (Ferry's own healing is quiet when it is quick), at most
/// once per forward every [`NOTIFY_EVERY`]; a forward whose going down was announced is
/// announced again when it is back up. Switching a forward off forgets it.
#[derive(Default)]
struct Notifier {
    forwards: HashMap<String, Watch>,
}

#[derive(Default)]
struct Watch {
    state: Option<ForwardState>,
    error: Option<String>,
    /// Since when it has been down, after having been up.
    down_since: Option<Instant>,
    /// Its going down was announced (and its recovery will be).
    announced: bool,
    /// When its going down was last announced.
    last_down_sent: Option<Instant>,
}

fn is_down(s: ForwardState) -> bool {
    matches!(
        s,
        ForwardState::Error | ForwardState::Reconnecting | ForwardState::Degraded
    )
}

impl Notifier {
    /// Takes a forward's new state; returns the message to show now, if any.
    fn state(
        &mut self,
        now: Instant,
        forward: &str,
        state: ForwardState,
        error: Option<&str>,
    ) -> Option<String> {
        let w = self.forwards.entry(forward.to_string()).or_default();
        let before = w.state.replace(state);
        w.error = error.map(str::to_string);
        match state {
            ForwardState::Active => {
                w.down_since = None;
                std::mem::take(&mut w.announced).then(|| format!("{forward} is back up"))
            }
            ForwardState::Disabled => {
                self.forget(forward);
                None
            }
            s if is_down(s) => {
                if before == Some(ForwardState::Active) && w.down_since.is_none() {
                    w.down_since = Some(now);
                }
                None
            }
            _ => None,
        }
    }

    /// Takes the forwards' current states (a new engine, or states reached before the
    /// bridge subscribed); returns what they call for (a recovery after an announced
    /// outage).
    fn seed(&mut self, snapshot: &Snapshot) -> Vec<String> {
        let now = Instant::now();
        // Forwards the engine no longer runs are forgotten.
        self.forwards
            .retain(|name, _| snapshot.forwards.iter().any(|s| &s.forward == name));
        snapshot
            .forwards
            .iter()
            .filter_map(|s| {
                let reason = s.error.as_deref().or(s.detail.as_deref());
                self.state(now, &s.forward, s.state, reason)
            })
            .collect()
    }

    fn forget(&mut self, forward: &str) {
        self.forwards.remove(forward);
    }

    /// The announcement due by `now` for forwards still down: one for all of them (see
    /// [`grouped`]).
    fn due(&mut self, now: Instant) -> Vec<Notice> {
        let mut out = Vec::new();
        for (name, w) in &mut self.forwards {
            let Some(since) = w.down_since else { continue };
            let state = w.state.unwrap_or(ForwardState::Error);
            if w.announced
                || !is_down(state)
                || now.duration_since(since) < NOTIFY_AFTER
                || w.last_down_sent
                    .is_some_and(|t| now.duration_since(t) < NOTIFY_EVERY)
            {
                continue;
            }
            w.announced = true;
            w.last_down_sent = Some(now);
            out.push((name.clone(), state, w.error.clone()));
        }
        let down = out.iter().map(|(name, _, _)| name.clone()).collect();
        grouped(out)
            .map(|text| Notice { text, down })
            .into_iter()
            .collect()
    }
}

/// One message for the forwards going down together: "echo is degraded: why" for one;
/// "3 forwards are down: why (a, b, c)" when they share the reason; else each with its own.
fn grouped(mut down: Vec<(String, ForwardState, Option<String>)>) -> Option<String> {
    down.sort_by(|a, b| a.0.cmp(&b.0));
    match down.as_slice() {
        [] => None,
        [(name, state, Some(why))] => Some(format!("{name} is {state}: {why}")),
        [(name, state, None)] => Some(format!("{name} is {state}")),
        [(_, _, first), rest @ ..] if rest.iter().all(|(_, _, why)| why == first) => {
            let names: Vec<&str> = down.iter().map(|(n, _, _)| n.as_str()).collect();
            Some(match first {
                Some(why) => format!(
                    "{} forwards are down: {why} ({})",
                    down.len(),
                    names.join(", ")
                ),
                None => format!("{} forwards are down ({})", down.len(), names.join(", ")),
            })
        }
        _ => {
            let each: Vec<String> = down
                .iter()
                .map(|(name, state, why)| match why {
                    Some(why) => format!("{name} is {state}: {why}"),
                    None => format!("{name} is {state}"),
                })
                .collect();
            Some(format!(
                "{} forwards are down. {}",
                down.len(),
                each.join("; ")
            ))
        }
    }
}

/// Queues a desktop notification, unless the user turned them off.
fn notify(desktop: &std::sync::mpsc::Sender<Notice>, core: &AppCore, message: impl Into<Notice>) {
    if core.settings().notifications {
        let _ = desktop.send(message.into());
    }
}

/// Shows notifications one after another, in order, on a blocking thread (the D-Bus call
/// waits for the notification service, up to its timeout when none answers). Ends when
/// the sender is dropped. Each says it comes from Ferry, with Ferry's icon.
fn desktop_notifier(data_dir: &std::path::Path, shown: Shown) -> std::sync::mpsc::Sender<Notice> {
    let (tx, rx) = std::sync::mpsc::channel::<Notice>();
    let icon = notification_icon(data_dir);
    tokio::task::spawn_blocking(move || {
        for notice in rx {
            match show_notification(icon.as_deref(), &notice) {
                Ok(Some(id)) => {
                    let mut shown = shown.lock();
                    shown.push_back((id, notice.down));
                    while shown.len() > BUTTONS_KEPT {
                        shown.pop_front();
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "notification not shown"),
            }
        }
    });
    tx
}

/// Ferry's icon as a file a notification service can read (Linux services take a path),
/// written into the app's data directory.
fn notification_icon(data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    const ICON: &[u8] = include_bytes!("../../icons/128x128.png");
    let path = data_dir.join("ferry-notification.png");
    if std::fs::read(&path).ok().as_deref() != Some(ICON) {
        std::fs::create_dir_all(data_dir).ok()?;
        ferry_core::store::write_atomic(&path, ICON).ok()?;
    }
    Some(path)
}

/// On Linux, through the notification service, naming the application "Ferry" with
/// Ferry's icon, an "Open Ferry" button (also the body's click) and, when forwards are
/// down, "Retry". Returns the notification's id, for the buttons.
#[cfg(target_os = "linux")]
fn show_notification(
    icon: Option<&std::path::Path>,
    notice: &Notice,
) -> Result<Option<u32>, String> {
    let mut n = notify_rust::Notification::new();
    n.appname("Ferry")
        .summary("Ferry")
        .body(&notice.text)
        .action("default", "Open Ferry")
        .action("open", "Open Ferry");
    if !notice.down.is_empty() {
        n.action("retry", "Retry");
    }
    if let Some(icon) = icon {
        n.icon(&icon.display().to_string());
    }
    n.show().map(|h| Some(h.id())).map_err(|e| e.to_string())
}

/// Elsewhere, through the system's notification centre, which shows the app's own name
/// and icon (on Windows, an installed app's: its identifier, registered by the installer).
#[cfg(not(target_os = "linux"))]
fn show_notification(
    _icon: Option<&std::path::Path>,
    notice: &Notice,
) -> Result<Option<u32>, String> {
    let mut n = notify_rust::Notification::new();
    n.summary("Ferry").body(&notice.text);
    #[cfg(target_os = "windows")]
    if !cfg!(debug_assertions) {
        n.app_id(crate::desktop::IDENTIFIER);
    }
    n.show().map(|_| None).map_err(|e| e.to_string())
}

/// Keeps the start-at-login entry in line with the settings, whoever changed them (the
/// window, or another program writing the store). At launch an entry that should exist is
/// rewritten so it starts this very binary; one that should not is left alone there, so
/// a run on another store (`--store`) never removes the entry of the usual one.
struct LoginEntry {
    on: bool,
}

impl LoginEntry {
    fn start(core: &AppCore) -> LoginEntry {
        let on = core.settings().start_at_login;
        if on {
            apply_login(on);
        }
        LoginEntry { on }
    }

    fn follow(&mut self, core: &AppCore) {
        let on = core.settings().start_at_login;
        if on != self.on {
            self.on = on;
            apply_login(on);
        }
    }
}

fn apply_login(on: bool) {
    if let Err(e) = crate::login::set(on) {
        tracing::warn!(error = %e.message, "start at login not changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: ForwardState = ForwardState::Reconnecting;

    fn texts(notices: Vec<Notice>) -> Vec<String> {
        notices.into_iter().map(|n| n.text).collect()
    }

    #[test]
    fn quick_healing_is_quiet() {
        let mut n = Notifier::default();
        let t0 = Instant::now();
        assert_eq!(n.state(t0, "echo", ForwardState::Active, None), None);
        assert_eq!(n.state(t0, "echo", DOWN, Some("no ready pod")), None);
        assert!(n.due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(
            n.state(
                t0 + Duration::from_secs(2),
                "echo",
                ForwardState::Active,
                None
            ),
            None
        );
        assert!(n.due(t0 + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn down_then_back_up_is_announced_once_each() {
        let mut n = Notifier::default();
        let t0 = Instant::now();
        n.state(t0, "db", ForwardState::Active, None);
        n.state(t0, "db", DOWN, Some("no ready pod"));
        n.state(
            t0 + Duration::from_secs(1),
            "db",
            ForwardState::Degraded,
            Some("probe failed"),
        );
        assert_eq!(
            texts(n.due(t0 + NOTIFY_AFTER)),
            vec!["db is degraded: probe failed".to_string()]
        );
        assert!(n.due(t0 + NOTIFY_AFTER * 2).is_empty(), "announced once");
        assert_eq!(
            n.state(t0 + NOTIFY_AFTER * 3, "db", ForwardState::Active, None)
                .as_deref(),
            Some("db is back up")
        );
        assert_eq!(
            n.state(t0 + NOTIFY_AFTER * 3, "db", ForwardState::Active, None),
            None
        );
    }

    #[test]
    fn flapping_is_rate_limited_and_recovery_follows_only_an_announcement() {
        let mut n = Notifier::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        n.state(at(0), "web", ForwardState::Active, None);
        n.state(at(0), "web", DOWN, None);
        assert_eq!(texts(n.due(at(5))), vec!["web is reconnecting".to_string()]);
        assert!(n.state(at(6), "web", ForwardState::Active, None).is_some());
        // Down again 10 s later, for long: not announced within 30 s of the last one.
        n.state(at(10), "web", DOWN, None);
        assert!(n.due(at(20)).is_empty());
        assert_eq!(n.state(at(21), "web", ForwardState::Active, None), None);
        // Later on, it is.
        n.state(at(40), "web", DOWN, None);
        assert_eq!(n.due(at(45)).len(), 1);
    }

    #[test]
    fn states_reached_before_subscribing_count() {
        let mut n = Notifier::default();
        let t0 = Instant::now();
        let mut snapshot = Snapshot::default();
        snapshot
            .forwards
            .push(ferry_core::events::ForwardStatus::new(
                "solo",
                "pod/solo:9000".into(),
                ForwardState::Active,
            ));
        assert!(n.seed(&snapshot).is_empty());
        n.state(
            t0,
            "solo",
            ForwardState::Degraded,
            Some("connection refused"),
        );
        assert_eq!(
            texts(n.due(t0 + NOTIFY_AFTER)),
            vec!["solo is degraded: connection refused".to_string()]
        );
    }

    #[test]
    fn forwards_going_down_together_are_one_notification() {
        let mut n = Notifier::default();
        let t0 = Instant::now();
        for name in ["web", "echo", "db"] {
            n.state(t0, name, ForwardState::Active, None);
            n.state(t0, name, DOWN, Some("cluster unreachable"));
        }
        let due = n.due(t0 + NOTIFY_AFTER);
        assert_eq!(
            texts(due.clone()),
            vec!["3 forwards are down: cluster unreachable (db, echo, web)".to_string()]
        );
        // Its "Retry" checks the three of them again.
        let mut down = due[0].down.clone();
        down.sort();
        assert_eq!(down, ["db", "echo", "web"]);
        // A recovery names none: it has no "Retry".
        assert_eq!(
            n.state(t0, "db", ForwardState::Active, None)
                .map(Notice::from),
            Some(Notice {
                text: "db is back up".into(),
                down: vec![]
            })
        );
        for name in ["a", "b"] {
            n.state(t0, name, ForwardState::Active, None);
        }
        n.state(t0, "a", ForwardState::Degraded, Some("connection refused"));
        n.state(t0, "b", DOWN, Some("no ready pod"));
        assert_eq!(
            texts(n.due(t0 + NOTIFY_AFTER)),
            vec![
                "2 forwards are down. a is degraded: connection refused; b is reconnecting: no ready pod"
                    .to_string()
            ]
        );
    }

    #[test]
    fn failing_from_the_start_or_switched_off_is_not_announced() {
        let mut n = Notifier::default();
        let t0 = Instant::now();
        n.state(t0, "pg", ForwardState::Starting, None);
        n.state(t0, "pg", ForwardState::Error, Some("port in use"));
        assert!(n.due(t0 + Duration::from_secs(60)).is_empty());
        n.state(t0, "x", ForwardState::Active, None);
        n.state(t0, "x", DOWN, None);
        n.state(t0, "x", ForwardState::Disabled, None);
        assert!(n.due(t0 + Duration::from_secs(60)).is_empty());
    }
}
