//! Ferry's desktop app: two processes over `ferry-core`.
//!
//! - [`desktop`]: Ferry's long-lived process (`ferry-tray`): the engine, the tray,
//!   notifications, start at login, with neither a web view nor Tauri's runtime linked in;
//!   `ferry-app` hands over to it;
//! - [`window`]: the window, in a process of its own (`ferry-app --window`, Tauri) started
//!   by "Open Ferry" and gone when it closes; its page's commands go to Ferry's process;
//! - [`app`]: the core (store, engine, demo cluster, every command's logic);
//! - [`commands`]: the page's commands, mapping errors to `{code, message, field}`;
//! - [`bridge`]: engine events to the window, the tray and notifications;
//! - [`discover`]: forwards the cluster declares, offered to add, and the badge's count;
//! - [`inspect`]: the HTTP tab: recorded exchanges, their follower, replay, curl, HAR;
//! - [`tray`]: the tray icon and menu;
//! - [`update`]: signed updates, looked for by the window's process, installed when asked;
//! - [`settings`], [`prefs`], [`logs`], [`error`]: the settings the store keeps beside the
//!   forwards, the app's own preferences (`prefs.json`), per-forward log lines, errors.

#![forbid(unsafe_code)]

pub mod app;
pub mod bridge;
pub mod commands;
pub mod contract;
pub mod desktop;
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
pub mod window;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) const USAGE: &str = "\
usage: ferry-app [--demo] [--hidden] [--store FILE]

  --demo        start the built-in demo cluster and add its forwards (no cluster needed)
  --hidden      start in the tray without opening the window
  --store FILE  keep forwards and settings in FILE (default: $FERRY_STORE, else
                ~/.config/ferry/store.json, shared with the `ferry` command)
";

#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) demo: bool,
    pub(crate) hidden: bool,
    /// The window's own process, started by Ferry's (not by hand).
    pub(crate) window: bool,
    pub(crate) store: Option<PathBuf>,
}

pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--demo" => out.demo = true,
            "--hidden" => out.hidden = true,
            "--window" => out.window = true,
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

/// `ferry-app`: the window (`--window`, started by Ferry's process), or else the launcher,
/// which hands over to Ferry's process ([`desktop`]) with the same arguments.
pub fn run() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args = match parse_args(raw.iter().map(|a| a.to_string_lossy().into_owned())) {
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
    if args.window {
        // Its lines reach Ferry's log through stderr, which it shares with Ferry.
        tracing_subscriber::fmt()
            .with_env_filter(log_filter())
            .with_writer(std::io::stderr)
            .init();
        return window::run_window();
    }
    hand_over(&raw)
}

/// Starts Ferry's process (`ferry-tray`, beside this binary) with `args`: in place of this
/// one on Unix (the same process id), as a new one elsewhere.
fn hand_over(args: &[std::ffi::OsString]) -> ExitCode {
    let keeper = match desktop::sibling(desktop::KEEPER) {
        Ok(keeper) if keeper.exists() => keeper,
        Ok(keeper) => {
            eprintln!(
                "ferry-app: {} is missing: Ferry is not installed whole (reinstall it)",
                keeper.display()
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("ferry-app: Ferry's own binary cannot be found: {e}");
            return ExitCode::from(1);
        }
    };
    let mut keep = std::process::Command::new(&keeper);
    keep.args(args);
    #[cfg(target_os = "linux")]
    if std::env::var_os("GDK_GL").is_none() {
        keep.env("GDK_GL", "disable");
    }
    match desktop::start_instead(keep) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-app: {} could not start: {e}", keeper.display());
            ExitCode::from(1)
        }
    }
}

fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,ferry=info"))
}

/// Logs go to stderr and, once the data directory is known, to a daily file there.
pub(crate) fn log_to(file: LogFile) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(log_filter())
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(file),
        )
        .init();
}

/// The app's configuration and its page (one copy in the binary, for both processes).
pub(crate) fn context() -> tauri::Context {
    tauri::generate_context!()
}

/// The app's log file, written through a background thread once opened (before that,
/// lines go to stderr only). Kept: the last 7 days, one file a day.
#[derive(Clone, Default)]
pub(crate) struct LogFile(Arc<std::sync::OnceLock<tracing_appender::non_blocking::NonBlocking>>);

impl LogFile {
    /// Opens the file in `dir`; the guard flushes it when dropped (as the process ends).
    pub(crate) fn open(&self, dir: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
        use tracing_appender::rolling::{RollingFileAppender, Rotation};
        // The appender looks for old files to prune at once: the directory must exist.
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "no log file");
            return None;
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
                Some(guard)
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no log file");
                None
            }
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

/// Export's "Save…": the page's own files (blob: links) go to the Downloads folder
/// (`~/Downloads` when the desktop names none), never over an existing file; nothing else
/// is downloaded.
pub(crate) fn save_download(
    webview: tauri::Webview,
    event: tauri::webview::DownloadEvent<'_>,
) -> bool {
    use tauri::Manager as _;
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
pub(crate) fn window_background(dark: bool) -> tauri::window::Color {
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
pub(crate) fn without_gdk_gl() {
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
    eprintln!(
        "ferry-tray: could not restart with GDK_GL=disable ({e}); going on with GTK's OpenGL"
    );
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
