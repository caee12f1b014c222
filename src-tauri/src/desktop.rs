//! Ferry's long-lived process (`ferry-tray`): the engine, the tray, notifications, start at
//! login and the control endpoint, with no web view and nothing of Tauri's runtime linked
//! in, so that Ferry waiting in the tray costs what the engine and a tray icon cost.
//!
//! - `ferry-app` (what the desktop entry, the login entry and a user start) hands over to
//!   it at once: `exec` on Unix (the same process id), a new process elsewhere.
//! - The window is `ferry-app --window`, started from here ([`crate::window`]); its page's
//!   commands come back here over its pipe. Updates are checked and installed by the
//!   window's process, which has Tauri's updater; it asks this one to restart after.
//! - One instance per store: a second start finds the first one's control endpoint and
//!   asks it (`show`) to bring its window up, then leaves.
//! - The event loop (`tao`: GTK on Linux, AppKit on macOS, Win32 on Windows) runs on the
//!   main thread and owns the tray icon; other threads reach it only with a [`UserEvent`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_core::control::{ControlClient, endpoint_path, source_name};
use ferry_core::store::Store;
use parking_lot::Mutex;
use serde::Serialize;
use tao::event::{Event, StartCause};
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};

use crate::app::{APP_KIND, AppCore, AppOptions};
use crate::tray::{Tray, View};
use crate::window::WindowHost;

/// The app's identifier (`tauri.conf.json`'s): its data and config directories are named
/// after it.
pub const IDENTIFIER: &str = "dev.ferry.app";
/// The binary people start, which hands over to this one and is the window.
pub const LAUNCHER: &str = "ferry-app";
/// This process's binary.
pub const KEEPER: &str = "ferry-tray";

/// The binary `name` beside this one (`.exe` on Windows).
pub fn sibling(name: &str) -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}

/// What starts Ferry: the AppImage it runs from, else `ferry-app` beside this binary.
pub(crate) fn launcher() -> std::io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    if let Some(appimage) = std::env::var_os("APPIMAGE") {
        return Ok(PathBuf::from(appimage));
    }
    sibling(LAUNCHER)
}

/// Runs `command` instead of this process: in its place on Unix (the same process id;
/// returns only when it could not), as a new process elsewhere (the caller then ends).
pub(crate) fn start_instead(mut command: std::process::Command) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        Err(command.exec())
    }
    #[cfg(not(unix))]
    command.spawn().map(drop)
}

/// What other threads ask of the event loop's.
#[derive(Debug)]
pub enum UserEvent {
    /// Show this in the tray.
    Tray(Box<View>),
    /// A tray menu item was clicked.
    Menu(String),
    /// Quit (and start again when a restart was asked).
    Exit,
}

/// Ferry's process as the rest of the app reaches it: the core, the window and the event
/// loop. Shared (`Arc`); every method returns at once.
pub struct Desktop {
    core: Arc<AppCore>,
    window: WindowHost,
    /// The way to the event loop (a short lock: sending never blocks).
    proxy: Mutex<EventLoopProxy<UserEvent>>,
    /// Start again once stopped (an update was installed).
    restart: AtomicBool,
}

impl Desktop {
    pub fn core(&self) -> &Arc<AppCore> {
        &self.core
    }

    pub fn window(&self) -> &WindowHost {
        &self.window
    }

    /// Sends the window's page `event` with `payload`, when a window is open.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) {
        if !self.window.is_open() {
            return;
        }
        match serde_json::to_string(payload) {
            Ok(json) => self.window.forward(event, &json),
            Err(e) => tracing::warn!(event, error = %e, "an event could not be written"),
        }
    }

    /// Shows `view` in the tray.
    pub fn tray(&self, view: View) {
        self.send(UserEvent::Tray(Box::new(view)));
    }

    /// Quits: the window closes, every forward stops, the process ends.
    pub fn exit(&self) {
        self.send(UserEvent::Exit);
    }

    /// Quits, then starts Ferry again with the same arguments (after an update).
    pub fn restart(&self) {
        self.restart.store(true, Ordering::SeqCst);
        self.exit();
    }

    fn send(&self, event: UserEvent) {
        if self.proxy.lock().send_event(event).is_err() {
            tracing::debug!("the event loop has ended");
        }
    }
}

/// Runs Ferry's process until it quits.
pub fn run() -> ExitCode {
    #[cfg(target_os = "linux")]
    crate::without_gdk_gl();
    ferry_core::ports::raise_open_files_limit();
    let raw: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args = match crate::parse_args(raw.iter().map(|a| a.to_string_lossy().into_owned())) {
        Ok(a) if !a.window => a,
        Ok(_) => {
            eprintln!("{KEEPER}: the window is `{LAUNCHER} --window`, started by Ferry itself");
            return ExitCode::from(2);
        }
        Err(e) if e.is_empty() => {
            print!("{}", crate::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{KEEPER}: {e}\n\n{}", crate::USAGE);
            return ExitCode::from(2);
        }
    };
    let log_file = crate::LogFile::default();
    crate::log_to(log_file.clone());
    #[cfg(target_os = "linux")]
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        eprintln!(
            "ferry-app: no display (neither DISPLAY nor WAYLAND_DISPLAY is set). Run it in a desktop session, or use the `ferry` command (`ferry up`) where there is none."
        );
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry-app: Ferry could not start: {e}");
            return ExitCode::from(1);
        }
    };
    // Tasks may be started from the event loop's thread too.
    let handle = runtime.handle().clone();
    let _entered = handle.enter();
    let data_dir = dirs::data_dir()
        .map(|d| d.join(IDENTIFIER))
        .unwrap_or_else(|| std::env::temp_dir().join(LAUNCHER));
    // Dropped as the loop ends, so the last lines reach the file.
    let mut log_guard = log_file.open(&data_dir.join("logs"));
    let config_dir = dirs::config_dir()
        .map(|d| d.join(IDENTIFIER))
        .unwrap_or_else(|| data_dir.join("config"));

    let store = Store::new(args.store.clone().unwrap_or_else(Store::default_path));
    if runtime.block_on(hand_over(store.path(), args.hidden)) {
        return ExitCode::SUCCESS;
    }
    let options = AppOptions {
        store: args.store.clone(),
        data_dir,
        config_dir,
        demo: args.demo,
        kubeconfig: None,
    };
    let core = match runtime.block_on(AppCore::start(options)) {
        Ok(core) => core,
        Err(e) => {
            eprintln!("ferry-app: Ferry could not start: {e}");
            return ExitCode::from(1);
        }
    };
    // Two launches at once: the other one took the endpoint first. Hand over to it.
    if !core.serves_control() && runtime.block_on(hand_over(store.path(), args.hidden)) {
        runtime.block_on(core.shutdown());
        return ExitCode::SUCCESS;
    }

    #[allow(unused_mut)]
    let mut event_loop = EventLoopBuilder::<UserEvent>::with_user_event().build();
    // Ferry's own process lives in the menu bar; the window's process is the one with a
    // Dock icon, while it is open.
    #[cfg(target_os = "macos")]
    {
        use tao::platform::macos::{ActivationPolicy, EventLoopExtMacOS as _};
        event_loop.set_activation_policy(ActivationPolicy::Accessory);
    }
    let desktop = Arc::new(Desktop {
        core: core.clone(),
        window: WindowHost::default(),
        proxy: Mutex::new(event_loop.create_proxy()),
        restart: AtomicBool::new(false),
    });
    let to_loop = Mutex::new(event_loop.create_proxy());
    tray_icon::menu::MenuEvent::set_event_handler(Some(move |e: tray_icon::menu::MenuEvent| {
        let _ = to_loop.lock().send_event(UserEvent::Menu(e.id.0));
    }));
    // The icon's own clicks and hovers mean nothing here (its menu does it all): without a
    // handler they would pile up in the crate's channel.
    tray_icon::TrayIconEvent::set_event_handler(Some(|_: tray_icon::TrayIconEvent| {}));
    // Notifications come from the app (its name and icon), not from the Finder.
    #[cfg(target_os = "macos")]
    if !cfg!(debug_assertions)
        && let Err(e) = notify_rust::set_application(IDENTIFIER)
    {
        tracing::debug!(error = %e, "notifications will not name Ferry");
    }
    // A second launch of the app asks this one to show its window.
    let weak = Arc::downgrade(&desktop);
    core.answer_show(move || {
        if let Some(desktop) = weak.upgrade() {
            crate::window::show(&desktop);
        }
    });

    let hidden = args.hidden;
    let mut tray: Option<Tray> = None;
    let mut runtime = Some(runtime);
    event_loop.run(move |event, _, flow| {
        *flow = ControlFlow::Wait;
        match event {
            // The tray is made once the loop runs (as macOS needs; GTK is ready by then).
            Event::NewEvents(StartCause::Init) => {
                match Tray::new() {
                    Ok(made) => tray = Some(made),
                    Err(e) => tracing::warn!(error = %e, "no tray icon"),
                }
                core.set_tray_available(tray.is_some() && crate::tray_host::available());
                crate::bridge::start(desktop.clone(), &core);
                core.watch_declared();
                if !hidden {
                    crate::window::show(&desktop);
                }
            }
            Event::UserEvent(UserEvent::Tray(view)) => {
                if let Some(tray) = tray.as_mut()
                    && let Err(e) = tray.show(*view)
                {
                    tracing::debug!(error = %e, "tray update failed");
                }
            }
            Event::UserEvent(UserEvent::Menu(id)) => {
                if let Some(tray) = tray.as_mut() {
                    tray.invalidate();
                }
                core.spawn(crate::tray::act(desktop.clone(), core.clone(), id));
            }
            Event::UserEvent(UserEvent::Exit) => *flow = ControlFlow::Exit,
            // macOS: Ferry opened again (its icon in the Finder or the Dock) while it runs.
            Event::Reopen { .. } => crate::window::show(&desktop),
            Event::LoopDestroyed => {
                desktop.window().stop();
                if let Some(runtime) = runtime.take() {
                    runtime.block_on(core.shutdown());
                    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
                }
                tray.take();
                let restart = desktop.restart.load(Ordering::SeqCst);
                if restart {
                    tracing::info!("Ferry starts again");
                }
                log_guard.take();
                if restart {
                    relaunch(&raw);
                }
            }
            _ => {}
        }
    })
}

/// When a Ferry app already runs the forwards of this store: asks it to show its window
/// (unless `hidden`) and says so. False when none runs (or `ferry up` does: then this one
/// starts and says in its window who holds the forwards).
async fn hand_over(store: &std::path::Path, hidden: bool) -> bool {
    // A running Ferry answers at once; one that does not within this is not waited for.
    const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
    let path = endpoint_path(&source_name(Some(store)));
    let Ok(Some(client)) = ControlClient::connect(&path).await else {
        return false;
    };
    let runner = match tokio::time::timeout(ANSWER_WITHIN, client.hello()).await {
        Ok(Ok(runner)) if runner.kind == APP_KIND => runner,
        _ => return false,
    };
    if hidden {
        eprintln!("ferry-app: Ferry already runs ({runner})");
        return true;
    }
    let shown = match ControlClient::connect(&path).await {
        Ok(Some(client)) => match tokio::time::timeout(ANSWER_WITHIN, client.show()).await {
            Ok(shown) => shown.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {ANSWER_WITHIN:?}")),
        },
        Ok(None) => return false,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = shown {
        eprintln!("ferry-app: Ferry already runs ({runner}) but did not show its window: {e}");
    }
    true
}

/// Starts Ferry again through its launcher (the AppImage it runs from, which the update
/// replaced), with the arguments it was started with.
fn relaunch(args: &[OsString]) {
    let started = launcher().and_then(|exe| {
        let mut again = std::process::Command::new(exe);
        again.args(args);
        start_instead(again)
    });
    if let Err(e) = started {
        tracing::error!(error = %e, "Ferry could not start again");
    }
}
