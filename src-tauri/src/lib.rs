//! Ferry's desktop app: a thin Tauri 2 shell over `ferry-core`.
//!
//! - [`app`]: the core (store, engine, demo cluster, every command's logic), Tauri-free;
//! - [`commands`]: the IPC commands, mapping errors to `{code, message, field}`;
//! - [`bridge`]: engine events to the window, the tray and notifications;
//! - [`discover`]: forwards the cluster declares, offered to add, and the badge's count;
//! - [`inspect`]: the HTTP tab: recorded exchanges, their follower, replay, curl, HAR;
//! - [`tray`]: the tray icon and menu;
//! - [`update`]: signed updates, looked for at start and daily, installed when asked;
//! - [`settings`], [`prefs`], [`logs`], [`error`]: the settings the store keeps beside the
//!   forwards, the app's own preferences (`prefs.json`), per-forward log lines, errors.
//!
//! The window is destroyed when closed (the app stays in the tray) and built again by
//! "Open Ferry", so a hidden app holds no web view in memory.

#![forbid(unsafe_code)]

pub mod app;
pub mod bridge;
pub mod commands;
pub mod contract;
pub mod discover;
pub mod error;
pub mod inspect;
pub mod login;
pub mod logs;
pub mod prefs;
pub mod settings;
pub mod tray;
mod tray_host;
pub mod update;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};

use crate::app::{AppCore, AppOptions};

const USAGE: &str = "\
usage: ferry-app [--demo] [--hidden] [--store FILE]

  --demo        start the built-in demo cluster and add its forwards (no cluster needed)
  --hidden      start in the tray without opening the window
  --store FILE  keep forwards and settings in FILE (default: $FERRY_STORE, else
                ~/.config/ferry/store.json, shared with the `ferry` command)
";

#[derive(Debug, Default)]
struct Args {
    demo: bool,
    hidden: bool,
    store: Option<PathBuf>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--demo" => out.demo = true,
            "--hidden" => out.hidden = true,
            "--store" => {
                let file = args
                    .next()
                    .ok_or_else(|| "--store needs a file: --store FILE".to_string())?;
                out.store = Some(PathBuf::from(file));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(out)
}

/// Runs the app until it quits.
pub fn run() -> ExitCode {
    #[cfg(target_os = "linux")]
    without_gdk_gl();
    ferry_core::ports::raise_open_files_limit();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ferry-app: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Logs go to stderr and, once the data directory is known, to a daily file there.
    let log_file = LogFile::default();
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,ferry=info")),
            )
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(log_file.clone()),
            )
            .init();
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        eprintln!(
            "ferry-app: no display (neither DISPLAY nor WAYLAND_DISPLAY is set). Run it in a desktop session, or use the `ferry` command (`ferry up`) where there is none."
        );
        return ExitCode::from(1);
    }
    let hidden = args.hidden;
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            show_main_window(app);
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(login::ARGS.to_vec()),
        ))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .invoke_handler(tauri::generate_handler![
            commands::get_state,
            commands::set_enabled,
            commands::set_all_enabled,
            commands::set_profile_active,
            commands::save_forward,
            commands::delete_forward,
            commands::validate_forward,
            commands::parse_kubectl,
            commands::suggest_local_port,
            commands::list_contexts,
            commands::list_namespaces,
            commands::list_targets,
            commands::check_access,
            commands::discover_forwards,
            commands::test_connection,
            commands::retry_forward,
            commands::kubectl_command,
            commands::forward_log,
            commands::save_profile,
            commands::delete_profile,
            commands::save_settings,
            commands::save_prefs,
            commands::set_favourite,
            commands::start_demo,
            commands::import_config,
            commands::dismiss_banner,
            commands::open_url,
            commands::quit,
            commands::export_config,
            commands::inspect_exchanges,
            commands::follow_exchanges,
            commands::unfollow_exchanges,
            commands::replay_exchange,
            commands::exchange_curl,
            commands::export_har,
            commands::clear_exchanges,
            commands::check_update,
            commands::offered_update,
            commands::install_update,
        ])
        .setup(move |app| {
            let data_dir = app
                .path()
                .app_data_dir()
                .unwrap_or_else(|_| std::env::temp_dir().join("ferry-app"));
            log_file.open(app, &data_dir.join("logs"));
            let config_dir = app
                .path()
                .app_config_dir()
                .unwrap_or_else(|_| data_dir.join("config"));
            let options = AppOptions {
                store: args.store.clone(),
                data_dir,
                config_dir,
                demo: args.demo,
                kubeconfig: None,
            };
            let core = tauri::async_runtime::block_on(AppCore::start(options))
                .map_err(|e| format!("Ferry could not start: {e}"))?;
            app.manage(core.clone());
            let tray = tray::Tray::new(app.handle())?;
            app.manage(tray);
            core.set_tray_available(tray_host::available());
            bridge::start(app.handle().clone(), &core);
            core.watch_declared();
            let updates = Arc::new(update::Updates::new());
            let prefs = Arc::downgrade(&core);
            updates.schedule(app.handle().clone(), update::FIRST_CHECK_AFTER, move || {
                prefs
                    .upgrade()
                    .is_some_and(|core| core.prefs().check_updates)
            });
            app.manage(updates);
            if !hidden {
                show_main_window(app.handle());
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            eprintln!("ferry-app: {e}");
            return ExitCode::from(1);
        }
    };
    app.run(|app, event| {
        if let RunEvent::ExitRequested {
            code: None, api, ..
        } = &event
        {
            // The last window closed: stay in the tray unless the user turned that off, or
            // there is no tray to come back from (then Ferry quits rather than run unseen).
            let keep = app.try_state::<Arc<AppCore>>().is_some_and(|core| {
                let tray = tray_host::available();
                core.set_tray_available(tray);
                if !tray && core.settings().close_to_tray {
                    tracing::info!("the window closed and the desktop shows no tray: quitting");
                }
                core.settings().close_to_tray && tray
            });
            if keep {
                api.prevent_exit();
            }
        }
        if let RunEvent::Exit = event
            && let Some(updates) = app.try_state::<Arc<update::Updates>>()
        {
            updates.stop();
        }
        if let RunEvent::Exit = event
            && let Some(core) = app.try_state::<Arc<AppCore>>()
        {
            let core = core.inner().clone();
            tauri::async_runtime::block_on(core.shutdown());
        }
    });
    ExitCode::SUCCESS
}

/// The app's log file, written through a background thread once opened (before that,
/// lines go to stderr only). Kept: the last 7 days, one file a day.
#[derive(Clone, Default)]
struct LogFile(Arc<std::sync::OnceLock<tracing_appender::non_blocking::NonBlocking>>);

/// Flushes the log file when the app ends.
struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

impl LogFile {
    fn open(&self, app: &tauri::App, dir: &std::path::Path) {
        use tracing_appender::rolling::{RollingFileAppender, Rotation};
        // The appender looks for old files to prune at once: the directory must exist.
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "no log file");
            return;
        }
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix("ferry")
            .filename_suffix("log")
            .max_log_files(7)
            .build(dir);
        match appender {
            Ok(appender) => {
                let (writer, guard) = tracing_appender::non_blocking(appender);
                let _ = self.0.set(writer);
                app.manage(LogGuard(guard));
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "no log file"),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = Box<dyn std::io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        match self.0.get() {
            Some(w) => Box::new(w.clone()),
            None => Box::new(std::io::sink()),
        }
    }
}

/// Shows the main window, building it when it was closed.
pub fn show_main_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let core = app.try_state::<Arc<AppCore>>().map(|c| c.inner().clone());
    let theme = core.as_ref().map(|core| core.prefs().theme);
    let native_theme = match theme {
        Some(prefs::Theme::Dark) => Some(tauri::Theme::Dark),
        Some(prefs::Theme::Light) => Some(tauri::Theme::Light),
        _ => None,
    };
    // Where it was last, when that is still on a monitor; else the default size, placed
    // by the desktop.
    let (size, position, maximized) = match core.as_ref().and_then(|c| c.window()) {
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
    // Shown once the page has loaded, on the theme's own background: no black frame on
    // the first open and no white flash in dark mode.
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
        .on_download(save_download)
        .build();
    match built {
        Ok(window) => {
            let dark = match theme {
                Some(prefs::Theme::Dark) => true,
                Some(prefs::Theme::Light) => false,
                _ => window.theme().is_ok_and(|t| t == tauri::Theme::Dark),
            };
            let _ = window.set_background_color(Some(window_background(dark)));
            if let Some(core) = core {
                follow_geometry(&window, core);
            }
        }
        Err(e) => tracing::error!(error = %e, "the window could not be opened"),
    }
}

/// The window's size when Ferry has not been opened before, and the least it may be.
const DEFAULT_SIZE: (f64, f64) = (1120.0, 740.0);
const MIN_SIZE: (f64, f64) = (720.0, 480.0);

/// Keeps the window's size and position in the preferences: saved once it has been still
/// a moment after a move or resize, and when it closes.
fn follow_geometry(window: &tauri::WebviewWindow, core: Arc<AppCore>) {
    let w = window.clone();
    window.on_window_event(move |event| match event {
        tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_) => {
            if let Some(g) = geometry(&w) {
                core.window_moved(g);
            }
        }
        tauri::WindowEvent::CloseRequested { .. } => {
            if let Some(g) = geometry(&w) {
                core.window_moved(g);
            }
            core.flush_window();
            // Nobody shows the HTTP tab any more.
            core.unfollow_exchanges();
        }
        tauri::WindowEvent::Destroyed => core.unfollow_exchanges(),
        _ => {}
    });
}

/// The window's outer position and inner size in logical pixels; `None` while it is
/// minimized or hidden (a minimized window's position means nothing).
fn geometry(window: &tauri::WebviewWindow) -> Option<prefs::WindowGeometry> {
    if window.is_minimized().unwrap_or(false) || !window.is_visible().unwrap_or(false) {
        return None;
    }
    let scale = window.scale_factor().ok()?;
    let at = window.outer_position().ok()?.to_logical::<f64>(scale);
    let size = window.inner_size().ok()?.to_logical::<f64>(scale);
    Some(prefs::WindowGeometry {
        x: at.x,
        y: at.y,
        width: size.width,
        height: size.height,
        maximized: window.is_maximized().unwrap_or(false),
    })
}

/// Export's "Save…": the page's own files (blob: links) go to the Downloads folder
/// (`~/Downloads` when the desktop names none), never over an existing file; nothing else
/// is downloaded.
fn save_download(webview: tauri::Webview, event: tauri::webview::DownloadEvent<'_>) -> bool {
    use tauri::webview::DownloadEvent;
    match event {
        DownloadEvent::Requested { url, destination } => {
            if url.scheme() != "blob" {
                tracing::warn!(%url, "download refused: not one of Ferry's own files");
                return false;
            }
            let dir =
                webview.app_handle().path().download_dir().ok().or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Downloads"))
                });
            let Some(dir) = dir else { return false };
            if std::fs::create_dir_all(&dir).is_err() {
                return false;
            }
            let name = destination
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| "ferry-export".into());
            let mut path = dir.join(&name);
            let mut n = 1;
            while path.exists() {
                let stem = Path::new(&name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ext = Path::new(&name)
                    .extension()
                    .map(|e| format!(".{}", e.to_string_lossy()))
                    .unwrap_or_default();
                path = dir.join(format!("{stem} ({n}){ext}"));
                n += 1;
            }
            *destination = path;
            true
        }
        DownloadEvent::Finished { path, success, .. } => {
            tracing::info!(path = ?path, success, "export saved");
            true
        }
        _ => true,
    }
}

/// The page's own background (`--bg` in ui/src/app.css), so the window never shows
/// another colour before the page paints.
fn window_background(dark: bool) -> tauri::window::Color {
    if dark {
        tauri::window::Color(0x16, 0x18, 0x1d, 0xff)
    } else {
        tauri::window::Color(0xf6, 0xf7, 0xf9, 0xff)
    }
}

/// On X11, GTK probes OpenGL as it opens the display, which loads the system's GL driver
/// (Mesa's, with LLVM: 20–25 MiB) into an app that may only sit in the tray. GDK's own GL
/// is nothing Ferry uses (WebKit sets up its own when the window opens), so the app runs
/// with `GDK_GL=disable`: when it is not set, the process starts itself again with it,
/// once, before anything else runs (the same process id, arguments and environment
/// otherwise). `GDK_GL` set to anything keeps the user's choice.
#[cfg(target_os = "linux")]
fn without_gdk_gl() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("GDK_GL").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        again.arg0(arg0);
    }
    // Only returns if the new image could not be started: go on as we are.
    let e = again.args(args).env("GDK_GL", "disable").exec();
    eprintln!("ferry-app: could not restart with GDK_GL=disable ({e}); going on with GTK's OpenGL");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let a = parse_args(["--demo", "--store", "/tmp/s.json"].map(String::from)).unwrap();
        assert!(a.demo && !a.hidden);
        assert_eq!(
            a.store.as_deref(),
            Some(std::path::Path::new("/tmp/s.json"))
        );
        assert!(
            parse_args(["--store".to_string()])
                .unwrap_err()
                .contains("--store")
        );
        assert!(
            parse_args(["--bogus".to_string()])
                .unwrap_err()
                .contains("--bogus")
        );
    }
}
