//! The window lives in a process of its own.
//!
//! Ferry's long-lived process ([`crate::desktop`]: the engine, the tray, notifications)
//! never builds a web view and does not link one: WebKit's state, once set up in a
//! process, stays there (its GL set-up, its network process) long after the window
//! closes. "Open Ferry" starts `ferry-app --window` instead, and closing the window ends
//! that process, so Ferry in the tray is back to what it was before the window opened.
//!
//! The two talk over the window process's standard input and output, one JSON object a
//! line (nothing else can reach a pipe only the parent holds):
//!
//! - to the window: `{"setup": {theme, geometry, check_updates}}` first, then
//!   `{"reply": id, "ok": value}`
//!   or `{"reply": id, "err": {code, message, field}}`, `{"event": name, "payload": …}`
//!   (the events the page listens to) and `{"show": true}` (bring it to the front);
//! - from the window: `{"call": id, "cmd": name, "args": {…}}` (every command its page
//!   invokes, run by [`crate::commands::call`], but the updater's, which the window's
//!   process runs itself: it has Tauri's updater), `{"geometry": {…}, "closing": bool}`
//!   and `{"restart": true}` (an update was installed: Ferry starts again).
//!
//! The window process ends when its window closes or its input does (Ferry quit); Ferry
//! hears it end when the window's output does, and then does what closing the last window
//! does: stays in the tray, or quits when there is none (or the user asked so).

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tauri::{AppHandle, Emitter as _, Manager as _, WebviewUrl, WebviewWindowBuilder};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use crate::desktop::Desktop;
use crate::prefs::{self, WindowGeometry};

/// What the window's process asks of Ferry's for itself (not a command of the page): the
/// forwards an update's restart would cut.
const LISTENING: &str = "ferry:listening_forwards";

/// Lines waiting for the window's process; a window that falls this far behind misses
/// events (a later state replaces them), never replies.
const QUEUE: usize = 1024;

/// What the window needs to open as it was left.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Setup {
    theme: prefs::Theme,
    geometry: Option<WindowGeometry>,
    /// Look for a newer Ferry while the window is open (the `check_updates` preference).
    #[serde(default)]
    check_updates: bool,
}

/// A line to the window's process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum ToWindow {
    Setup {
        setup: Setup,
    },
    Reply {
        reply: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        err: Option<Value>,
    },
    Event {
        event: String,
        payload: Value,
    },
    Show {
        show: bool,
    },
}

/// A line from the window's process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum FromWindow {
    Call {
        call: u64,
        cmd: String,
        #[serde(default)]
        args: Value,
    },
    /// An update was installed: Ferry stops and starts again. (Before `Geometry`, whose
    /// fields may all be absent.)
    Restart { restart: bool },
    Geometry {
        /// `None` while it is minimized or hidden.
        geometry: Option<WindowGeometry>,
        #[serde(default)]
        closing: bool,
    },
}

fn line<T: Serialize>(message: &T) -> Option<String> {
    match serde_json::to_string(message) {
        Ok(mut s) => {
            s.push('\n');
            Some(s)
        }
        Err(e) => {
            tracing::warn!(error = %e, "a message to the window could not be written");
            None
        }
    }
}

/// `{"event": name, "payload": payload}` with `payload` already JSON (a
/// [`ToWindow::Event`] line, without parsing the payload and writing it again).
fn event_line(name: &str, payload: &str) -> String {
    let name = serde_json::Value::from(name);
    format!("{{\"event\":{name},\"payload\":{payload}}}\n")
}

// === Ferry's side ===

/// The window's process, when one runs: the way to it and the task that owns it. Kept by
/// the long-lived process ([`Desktop::window`]).
#[derive(Default)]
pub struct WindowHost {
    link: Mutex<Option<Link>>,
    /// The tasks of windows closing while another opened (each ends with its process).
    retired: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    generation: AtomicU64,
}

struct Link {
    generation: u64,
    /// Its window is closing: "Open Ferry" now starts another.
    closing: bool,
    to_window: tokio::sync::mpsc::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl WindowHost {
    /// Whether a window is open (its process runs).
    pub fn is_open(&self) -> bool {
        self.link.lock().is_some()
    }

    /// Sends the page the event `name`; `payload` is its JSON, which goes into the line as
    /// it is.
    pub(crate) fn forward(&self, name: &str, payload: &str) {
        let Some(to_window) = self.link.lock().as_ref().map(|l| l.to_window.clone()) else {
            return;
        };
        if to_window.try_send(event_line(name, payload)).is_err() {
            tracing::debug!(event = name, "the window is behind: an event was not sent");
        }
    }

    /// Ends the window's process (Ferry quits).
    pub fn stop(&self) {
        if let Some(link) = self.link.lock().take() {
            link.task.abort();
        }
        for task in self.retired.lock().drain(..) {
            task.abort();
        }
    }
}

/// Shows the window: brings the running one to the front, or starts its process.
pub fn show(desktop: &Arc<Desktop>) {
    let core = desktop.core();
    let host = desktop.window();
    let prefs = core.prefs();
    let setup = Setup {
        theme: prefs.theme,
        geometry: core.window(),
        check_updates: prefs.check_updates,
    };
    let mut link = host.link.lock();
    if let Some(running) = link.as_ref().filter(|l| !l.closing) {
        if let Some(line) = line(&ToWindow::Show { show: true }) {
            let _ = running.to_window.try_send(line);
        }
        return;
    }
    let generation = host.generation.fetch_add(1, Ordering::Relaxed) + 1;
    let (to_window, queue) = tokio::sync::mpsc::channel(QUEUE);
    // The set-up line first: events may be queued as soon as the link is in place.
    if let Some(first) = line(&ToWindow::Setup { setup }) {
        let _ = to_window.try_send(first);
    }
    let task = tokio::spawn(run(desktop.clone(), generation, to_window.clone(), queue));
    let before = link.replace(Link {
        generation,
        closing: false,
        to_window,
        task,
    });
    drop(link);
    if let Some(closing) = before {
        let mut retired = host.retired.lock();
        retired.retain(|t| !t.is_finished());
        retired.push(closing.task);
    }
}

/// Runs the window's process until it ends, answering its calls; then does what closing
/// the last window does.
async fn run(
    desktop: Arc<Desktop>,
    generation: u64,
    to_window: tokio::sync::mpsc::Sender<String>,
    queue: tokio::sync::mpsc::Receiver<String>,
) {
    let started = crate::desktop::sibling(crate::desktop::LAUNCHER).and_then(|exe| {
        tokio::process::Command::new(exe)
            .arg("--window")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
    });
    match started {
        Ok(mut child) => {
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(input), Some(output), Some(errors)) => {
                    tracing::debug!(pid = child.id(), "the window's process started");
                    let pipes = Pipes {
                        input,
                        output,
                        errors,
                    };
                    talk(&desktop, generation, pipes, to_window, queue).await;
                }
                _ => tracing::error!("the window's process has no pipes"),
            }
            match tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await {
                Ok(Ok(status)) if !status.success() => {
                    tracing::warn!(%status, "the window's process ended badly")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "the window's process is lost"),
                Ok(Ok(_)) => {}
                Err(_) => {
                    tracing::warn!("the window's process did not end: stopped");
                    let _ = child.kill().await;
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "the window could not be opened"),
    }
    let core = desktop.core();
    let last = {
        let mut link = desktop.window().link.lock();
        let ours = link.as_ref().is_some_and(|l| l.generation == generation);
        if ours {
            *link = None;
        }
        ours
    };
    if !last {
        // Opened again while this one closed: that window is Ferry's now.
        return;
    }
    // Nobody shows the HTTP tab any more; the window's place is saved.
    core.unfollow_exchanges();
    core.flush_window();
    // The last window closed: stay in the tray unless the user turned that off, or there
    // is no tray to come back from (then Ferry quits rather than run unseen).
    // (Asking the session bus blocks: not on the runtime's own threads.)
    let tray = tokio::task::spawn_blocking(crate::tray_host::available)
        .await
        .unwrap_or(true);
    core.set_tray_available(tray);
    let close_to_tray = core.settings().close_to_tray;
    if !tray && close_to_tray {
        tracing::info!("the window closed and the desktop shows no tray: quitting");
    }
    if !(close_to_tray && tray) {
        desktop.exit();
    }
}

/// The window's process's standard input, output and error.
struct Pipes {
    input: tokio::process::ChildStdin,
    output: tokio::process::ChildStdout,
    errors: tokio::process::ChildStderr,
}

/// Sends the window its lines and answers its calls until its output ends (or its input
/// cannot be written).
async fn talk(
    desktop: &Arc<Desktop>,
    generation: u64,
    pipes: Pipes,
    to_window: tokio::sync::mpsc::Sender<String>,
    mut queue: tokio::sync::mpsc::Receiver<String>,
) {
    let Pipes {
        mut input,
        output,
        errors,
    } = pipes;
    let send = async {
        while let Some(line) = queue.recv().await {
            if input.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    };
    let answer = answer_calls(desktop, generation, output, to_window);
    // What the window's process (and WebKit in it) prints goes to Ferry's log.
    let log = async {
        let mut lines = tokio::io::BufReader::new(errors).lines();
        while let Ok(Some(text)) = lines.next_line().await {
            tracing::info!(target: "ferry::window", "{text}");
        }
        // Its output may still hold answers: wait for the window to end.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = send => {}
        () = answer => {}
        () = log => {}
    }
}

/// Reads the window's lines until its output ends, running each call on a task of its
/// own (owned here: they end with the window) and sending the answer back.
async fn answer_calls(
    desktop: &Arc<Desktop>,
    generation: u64,
    output: tokio::process::ChildStdout,
    to_window: tokio::sync::mpsc::Sender<String>,
) {
    let mut lines = tokio::io::BufReader::new(output).lines();
    let mut calls = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            next = lines.next_line() => next,
            Some(_) = calls.join_next() => continue,
        };
        let text = match next {
            Ok(Some(text)) => text,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "the window's process cannot be read");
                break;
            }
        };
        match serde_json::from_str::<FromWindow>(&text) {
            Ok(FromWindow::Call { call, cmd, args }) => {
                let desktop = desktop.clone();
                let to_window = to_window.clone();
                calls.spawn(async move {
                    let answer = if cmd == LISTENING {
                        Ok(Value::from(desktop.core().listening_forwards().await))
                    } else {
                        crate::commands::call(&desktop, &cmd, args).await
                    };
                    let reply = match answer {
                        Ok(ok) => ToWindow::Reply {
                            reply: call,
                            ok: Some(ok),
                            err: None,
                        },
                        Err(e) => {
                            tracing::debug!(cmd, error = %e, "a command failed");
                            ToWindow::Reply {
                                reply: call,
                                ok: None,
                                err: serde_json::to_value(&e).ok(),
                            }
                        }
                    };
                    if let Some(line) = line(&reply) {
                        let _ = to_window.send(line).await;
                    }
                });
            }
            Ok(FromWindow::Geometry { geometry, closing }) => {
                let core = desktop.core();
                if let Some(geometry) = geometry {
                    core.window_moved(geometry);
                }
                if closing {
                    core.flush_window();
                    core.unfollow_exchanges();
                    if let Some(link) = desktop.window().link.lock().as_mut()
                        && link.generation == generation
                    {
                        link.closing = true;
                    }
                }
            }
            Ok(FromWindow::Restart { restart: true }) => {
                tracing::info!("an update was installed: Ferry starts again");
                desktop.restart();
            }
            Ok(FromWindow::Restart { restart: false }) => {}
            // Anything else the window's process printed goes to the log.
            Err(_) => tracing::info!(target: "ferry::window", "{text}"),
        }
    }
}

// === the window's side ===

/// A call waiting for Ferry's answer: the page's, or the window process's own.
enum Waiting {
    Page(Box<tauri::ipc::InvokeResolver<tauri::Wry>>),
    Window(tokio::sync::oneshot::Sender<Result<Value, Value>>),
}

/// The calls waiting for their answers, and the way to Ferry's process.
struct Parent {
    pending: Mutex<std::collections::HashMap<u64, Waiting>>,
    next: AtomicU64,
    out: std::sync::mpsc::SyncSender<String>,
    /// The `check_updates` preference, as the last state Ferry sent says.
    check_updates: std::sync::atomic::AtomicBool,
    /// The updater's commands running here; ended as the window's process exits.
    updating: Mutex<Vec<tauri::async_runtime::JoinHandle<()>>>,
}

/// Ferry's process does not take the window's lines (it stopped reading, or fell far
/// behind).
fn not_answering() -> crate::error::AppError {
    crate::error::AppError::new(
        crate::error::ErrorCode::Engine,
        "Ferry is not answering the window",
    )
}

impl Parent {
    /// Queues a line for Ferry; false when it could not be (Ferry has stopped reading).
    fn send<T: Serialize>(&self, message: &T) -> bool {
        line(message).is_some_and(|line| self.out.try_send(line).is_ok())
    }

    /// Sends Ferry the call `cmd` with `args`; `waiting` gets the answer.
    fn call(&self, cmd: String, args: Value, waiting: Waiting) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().insert(id, waiting);
        if !self.send(&FromWindow::Call {
            call: id,
            cmd,
            args,
        }) && let Some(waiting) = self.pending.lock().remove(&id)
        {
            answered(
                waiting,
                Err(serde_json::to_value(not_answering()).unwrap_or_default()),
            );
        }
    }

    /// Asks Ferry `cmd` for the window process itself.
    async fn ask(&self, cmd: &str) -> Result<Value, crate::error::AppError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.call(cmd.to_string(), Value::Null, Waiting::Window(tx));
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(serde_json::from_value(e).unwrap_or_else(|_| not_answering())),
            Err(_) => Err(not_answering()),
        }
    }
}

fn answered(waiting: Waiting, answer: Result<Value, Value>) {
    match (waiting, answer) {
        (Waiting::Page(resolver), Ok(ok)) => resolver.resolve(ok),
        (Waiting::Page(resolver), Err(err)) => resolver.reject(err),
        (Waiting::Window(tx), answer) => {
            let _ = tx.send(answer);
        }
    }
}

/// Runs one of the updater's commands (here: the updater is Tauri's plugin, in this
/// process). Installing asks Ferry which forwards the restart would cut, and then asks it
/// to start again.
async fn update_command(
    app: AppHandle,
    parent: Arc<Parent>,
    cmd: String,
    args: Value,
) -> Result<Value, crate::error::AppError> {
    use crate::commands::answer;
    use crate::update::{Checked, UPDATE_EVENT, Updates};
    let Some(updates) = app.try_state::<Arc<Updates>>().map(|u| u.inner().clone()) else {
        return Err(crate::error::AppError::new(
            crate::error::ErrorCode::Engine,
            "updates are not set up",
        ));
    };
    match cmd.as_str() {
        // Asks the update server for a newer release now (no download): offered, current,
        // or unreachable (no error: the schedule tries again later). An offer is also sent
        // as `ferry://update`.
        "check_update" => {
            let checked = updates.check(&app).await?;
            if let Checked::Offered(info) = &checked {
                let _ = app.emit(UPDATE_EVENT, info);
            }
            answer(Ok(checked))
        }
        // The release on offer from the last check, if any (no request).
        "offered_update" => answer(Ok(updates.offered())),
        // Downloads, verifies and installs the release on offer, then restarts Ferry.
        // Refused while forwards are up unless `confirmCut`.
        "install_update" => {
            let confirm_cut: bool = crate::commands::Args::new(args)?.get("confirmCut")?;
            let active: Vec<String> = serde_json::from_value(parent.ask(LISTENING).await?)
                .map_err(|e| {
                    crate::error::AppError::new(crate::error::ErrorCode::Engine, e.to_string())
                })?;
            updates.install(&active, confirm_cut).await?;
            updates.stop();
            if !parent.send(&FromWindow::Restart { restart: true }) {
                return Err(not_answering());
            }
            answer(Ok(()))
        }
        other => Err(crate::error::AppError::new(
            crate::error::ErrorCode::Invalid,
            format!("Ferry has no command `{other}`"),
        )),
    }
}

/// Runs the window (`ferry-app --window`, started by Ferry's process) until it closes or
/// Ferry quits.
pub fn run_window() -> ExitCode {
    use std::io::IsTerminal as _;
    let mut input = std::io::BufReader::new(std::io::stdin());
    let mut first = String::new();
    let read = !std::io::stdin().is_terminal() && input.read_line(&mut first).is_ok_and(|n| n > 0);
    let Some(ToWindow::Setup { setup }) = read
        .then(|| serde_json::from_str::<ToWindow>(&first).ok())
        .flatten()
    else {
        eprintln!("ferry-app: --window is started by Ferry itself, not by hand");
        return ExitCode::from(2);
    };
    // Lines to Ferry go through one thread, in order, so no caller waits on the pipe.
    let (out, lines) = std::sync::mpsc::sync_channel::<String>(QUEUE);
    std::thread::spawn(move || {
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            if stdout.write_all(line.as_bytes()).is_err() || stdout.flush().is_err() {
                break;
            }
        }
    });
    let parent = Arc::new(Parent {
        pending: Mutex::default(),
        next: AtomicU64::new(1),
        out,
        check_updates: std::sync::atomic::AtomicBool::new(setup.check_updates),
        updating: Mutex::default(),
    });
    let calls = parent.clone();
    let ending = parent.clone();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .invoke_handler(move |invoke| {
            let cmd = invoke.message.command().to_string();
            let args = match invoke.message.payload() {
                tauri::ipc::InvokeBody::Json(v) => v.clone(),
                tauri::ipc::InvokeBody::Raw(_) => Value::Null,
            };
            if crate::commands::UPDATE_COMMANDS.contains(&cmd.as_str()) {
                let app = invoke.message.webview().app_handle().clone();
                let parent = calls.clone();
                let resolver = invoke.resolver;
                let task = tauri::async_runtime::spawn(async move {
                    match update_command(app, parent, cmd, args).await {
                        Ok(ok) => resolver.resolve(ok),
                        Err(e) => resolver.reject(e),
                    }
                });
                let mut updating = calls.updating.lock();
                updating.retain(|t| !t.inner().is_finished());
                updating.push(task);
            } else {
                calls.call(cmd, args, Waiting::Page(Box::new(invoke.resolver)));
            }
            true
        })
        .setup(move |app| {
            build(app.handle(), &setup, parent.clone());
            // Updates are looked for while the window is open (a check soon after it
            // opens, then daily), as long as the preference says so.
            let updates = Arc::new(crate::update::Updates::new());
            let wanted = parent.clone();
            updates.schedule(
                app.handle().clone(),
                crate::update::FIRST_CHECK_AFTER,
                move || wanted.check_updates.load(Ordering::Relaxed),
            );
            app.manage(updates);
            let handle = app.handle().clone();
            // Ferry's lines, read on a thread of their own until Ferry goes away.
            std::thread::spawn(move || {
                for text in input.lines() {
                    let Ok(text) = text else { break };
                    match serde_json::from_str::<ToWindow>(&text) {
                        Ok(ToWindow::Reply { reply, ok, err }) => {
                            let waiting = parent.pending.lock().remove(&reply);
                            if let Some(waiting) = waiting {
                                let answer = match err {
                                    Some(err) => Err(err),
                                    None => Ok(ok.unwrap_or(Value::Null)),
                                };
                                answered(waiting, answer);
                            }
                        }
                        Ok(ToWindow::Event { event, payload }) => {
                            if event == crate::bridge::STATE_EVENT
                                && let Some(on) = payload["prefs"]["check_updates"].as_bool()
                            {
                                parent.check_updates.store(on, Ordering::Relaxed);
                            }
                            let _ = handle.emit(&event, payload);
                        }
                        Ok(ToWindow::Show { .. }) => {
                            if let Some(window) = handle.get_webview_window("main") {
                                let _ = window.unminimize();
                                let _ = window.show();
                                let _ = window.set_focus();
                            }
                        }
                        Ok(ToWindow::Setup { .. }) | Err(_) => {}
                    }
                }
                // Ferry has quit: so does its window.
                handle.exit(0);
            });
            Ok(())
        })
        .build(crate::context());
    match result {
        Ok(app) => {
            app.run(move |app, event| {
                if let tauri::RunEvent::Exit = event {
                    if let Some(updates) = app.try_state::<Arc<crate::update::Updates>>() {
                        updates.stop();
                    }
                    for task in ending.updating.lock().drain(..) {
                        task.abort();
                    }
                }
            });
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferry-app: the window could not be opened: {e}");
            ExitCode::from(1)
        }
    }
}

/// The window's size when Ferry has not been opened before, and the least it may be.
const DEFAULT_SIZE: (f64, f64) = (1120.0, 740.0);
const MIN_SIZE: (f64, f64) = (720.0, 480.0);

/// Builds the window where it was last (when that is still on a monitor; else the default
/// size, placed by the desktop), on the theme's own background.
fn build(app: &AppHandle, setup: &Setup, parent: Arc<Parent>) {
    let native_theme = match setup.theme {
        prefs::Theme::Dark => Some(tauri::Theme::Dark),
        prefs::Theme::Light => Some(tauri::Theme::Light),
        _ => None,
    };
    let (size, position, maximized) = match setup.geometry {
        Some(w) => {
            let monitors: Vec<prefs::Area> = app
                .available_monitors()
                .unwrap_or_default()
                .iter()
                .map(|m| {
                    let scale = m.scale_factor();
                    let at = m.position().to_logical::<f64>(scale);
                    let size = m.size().to_logical::<f64>(scale);
                    (at.x, at.y, size.width, size.height)
                })
                .collect();
            let position = w.reachable_on(&monitors).then_some((w.x, w.y));
            (w.size_at_least(MIN_SIZE), position, w.maximized)
        }
        None => (DEFAULT_SIZE, None, false),
    };
    // Shown once the page has loaded: no black frame on the first open and no white flash
    // in dark mode.
    let mut builder = WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
        .title("Ferry")
        .inner_size(size.0, size.1)
        .min_inner_size(MIN_SIZE.0, MIN_SIZE.1)
        .maximized(maximized);
    if let Some((x, y)) = position {
        builder = builder.position(x, y);
    }
    let built = builder
        .theme(native_theme)
        .visible(false)
        .on_page_load(|window, load| {
            if load.event() == tauri::webview::PageLoadEvent::Finished {
                let _ = window.show();
                let _ = window.set_focus();
            }
        })
        .on_download(crate::save_download)
        .build();
    match built {
        Ok(window) => {
            let dark = match setup.theme {
                prefs::Theme::Dark => true,
                prefs::Theme::Light => false,
                _ => window.theme().is_ok_and(|t| t == tauri::Theme::Dark),
            };
            let _ = window.set_background_color(Some(crate::window_background(dark)));
            follow_geometry(&window, parent);
        }
        Err(e) => {
            tracing::error!(error = %e, "the window could not be opened");
            app.exit(1);
        }
    }
}

/// Tells Ferry the window's size and position as it moves (Ferry saves them once the
/// window has been still a moment) and as it closes.
fn follow_geometry(window: &tauri::WebviewWindow, parent: Arc<Parent>) {
    let w = window.clone();
    window.on_window_event(move |event| {
        let closing = match event {
            tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_) => false,
            tauri::WindowEvent::CloseRequested { .. } => true,
            _ => return,
        };
        let geometry = geometry(&w);
        if geometry.is_some() || closing {
            // A move Ferry cannot take now is told again by the next one.
            parent.send(&FromWindow::Geometry { geometry, closing });
        }
    });
}

/// The window's outer position and inner size in logical pixels; `None` while it is
/// minimized or hidden (a minimized window's position means nothing).
fn geometry(window: &tauri::WebviewWindow) -> Option<WindowGeometry> {
    if window.is_minimized().unwrap_or(false) || !window.is_visible().unwrap_or(false) {
        return None;
    }
    let scale = window.scale_factor().ok()?;
    let at = window.outer_position().ok()?.to_logical::<f64>(scale);
    let size = window.inner_size().ok()?.to_logical::<f64>(scale);
    Some(WindowGeometry {
        x: at.x,
        y: at.y,
        width: size.width,
        height: size.height,
        maximized: window.is_maximized().unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each line reads back as what was sent (the untagged shapes never mistake one for
    /// another).
    #[test]
    fn lines_read_back_as_sent() {
        let reply = line(&ToWindow::Reply {
            reply: 7,
            ok: None,
            err: Some(json!({"code": "invalid", "message": "no", "field": "name"})),
        })
        .unwrap();
        assert!(reply.ends_with('\n'));
        match serde_json::from_str::<ToWindow>(&reply).unwrap() {
            ToWindow::Reply { reply, ok, err } => {
                assert_eq!(reply, 7);
                assert!(ok.is_none());
                assert_eq!(err.unwrap()["field"], "name");
            }
            other => panic!("read as {other:?}"),
        }
        let ok = line(&ToWindow::Reply {
            reply: 8,
            ok: Some(Value::Null),
            err: None,
        })
        .unwrap();
        assert!(matches!(
            serde_json::from_str::<ToWindow>(&ok).unwrap(),
            ToWindow::Reply {
                reply: 8,
                err: None,
                ..
            }
        ));
        let event = line(&ToWindow::Event {
            event: "ferry://state".into(),
            payload: json!({"a": 1}),
        })
        .unwrap();
        assert!(matches!(
            serde_json::from_str::<ToWindow>(&event).unwrap(),
            ToWindow::Event { event, .. } if event == "ferry://state"
        ));
        let forwarded = event_line("ferry://snapshot", r#"{"forwards":[{"name":"a\"b"}]}"#);
        match serde_json::from_str::<ToWindow>(&forwarded).unwrap() {
            ToWindow::Event { event, payload } => {
                assert_eq!(event, "ferry://snapshot");
                assert_eq!(payload["forwards"][0]["name"], "a\"b");
            }
            other => panic!("read as {other:?}"),
        }
        let setup = line(&ToWindow::Setup {
            setup: Setup::default(),
        })
        .unwrap();
        assert!(matches!(
            serde_json::from_str::<ToWindow>(&setup).unwrap(),
            ToWindow::Setup { .. }
        ));
        let show = line(&ToWindow::Show { show: true }).unwrap();
        assert!(matches!(
            serde_json::from_str::<ToWindow>(&show).unwrap(),
            ToWindow::Show { show: true }
        ));
        let call: FromWindow = serde_json::from_str(r#"{"call": 3, "cmd": "get_state"}"#).unwrap();
        assert!(matches!(
            call,
            FromWindow::Call {
                call: 3,
                args: Value::Null,
                ..
            }
        ));
        let moved: FromWindow = serde_json::from_str(
            r#"{"geometry": {"x": 1, "y": 2, "width": 800, "height": 600, "maximized": false}}"#,
        )
        .unwrap();
        assert!(matches!(
            moved,
            FromWindow::Geometry {
                geometry: Some(_),
                closing: false
            }
        ));
        let closing: FromWindow =
            serde_json::from_str(r#"{"geometry": null, "closing": true}"#).unwrap();
        assert!(matches!(
            closing,
            FromWindow::Geometry {
                geometry: None,
                closing: true
            }
        ));
        let restart: FromWindow = serde_json::from_str(r#"{"restart": true}"#).unwrap();
        assert!(matches!(restart, FromWindow::Restart { restart: true }));
        let sent = line(&FromWindow::Restart { restart: true }).unwrap();
        assert!(matches!(
            serde_json::from_str::<FromWindow>(&sent).unwrap(),
            FromWindow::Restart { restart: true }
        ));
        // A stray line printed by a library is neither.
        assert!(serde_json::from_str::<FromWindow>("Gtk-WARNING: something").is_err());
    }
}
