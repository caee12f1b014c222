//! The app as it lives in the tray, without WebDriver: started hidden the way the login
//! entry starts it, on a private X display and a private session bus that also carries a
//! stand-in desktop notification service, run from a directory whose name has a space.
//! Checks start at login, notifications when a forward goes down and comes back, that a
//! second launch only shows the first instance's window, and that closing the window
//! frees the web view without the app growing over open/close cycles.
//!
//! Needs: Xvfb, dbus-daemon, trayer, xdotool, kubectl, python-xlib (`scripts/setup` installs
//! them).

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Desktop, Group, free_port};
use ferry_core::store::{Store, StoreError};

const APP: &str = env!("CARGO_BIN_EXE_ferry-app");
/// Ferry's own process, which `ferry-app` hands over to (installed beside it).
const KEEPER: &str = env!("CARGO_BIN_EXE_ferry-tray");

/// A session bus of our own.
struct Bus {
    address: String,
    _daemon: Group,
}

impl Bus {
    fn start(dir: &Path) -> Bus {
        let address = format!("unix:path={}", dir.join("bus").display());
        let mut daemon = Group::spawn(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
                .arg(format!("--address={address}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let mut line = String::new();
        BufReader::new(daemon.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        Bus {
            address: line.trim().to_string(),
            _daemon: daemon,
        }
    }
}

/// A notification as the stand-in service saw it: its id, "[app name, icon] summary:
/// body" (icon says whether the icon named is a PNG file that exists, `png`, or not,
/// `none`), and its buttons' action keys.
type Shown = (u32, String, Vec<String>);

/// The desktop's notification service (`org.freedesktop.Notifications`), passing each
/// notification on.
struct Notifications {
    shown: mpsc::Sender<Shown>,
    next_id: AtomicU32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let png =
            std::fs::read(&app_icon).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let icon = if png { "png" } else { "none" };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        // Actions come as key, label pairs.
        let keys = actions.iter().step_by(2).cloned().collect();
        let _ = self
            .shown
            .send((id, format!("[{app_name}, {icon}] {summary}: {body}"), keys));
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".to_string()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        let s = |v: &str| v.to_string();
        (s("stand-in"), s("ferry tests"), s("1"), s("1.2"))
    }

    fn close_notification(&self, _id: u32) {}
}

fn serve_notifications(bus: &Bus) -> (zbus::blocking::Connection, mpsc::Receiver<Shown>) {
    let (tx, rx) = mpsc::channel();
    let service = Notifications {
        shown: tx,
        next_id: AtomicU32::new(0),
    };
    let conn = zbus::blocking::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .serve_at("/org/freedesktop/Notifications", service)
        .unwrap()
        .build()
        .expect("the notification service on the private bus");
    (conn, rx)
}

/// Waits for a notification whose text starts with `prefix`; fails on any other one.
/// Returns its id and its buttons' action keys.
fn expect_notification(
    rx: &mpsc::Receiver<Shown>,
    prefix: &str,
    within: Duration,
) -> (u32, Vec<String>) {
    match rx.recv_timeout(within) {
        Ok((id, text, actions)) => {
            assert!(
                text.starts_with(prefix),
                "notification {text:?}, expected {prefix:?}…"
            );
            (id, actions)
        }
        Err(_) => panic!("no notification {prefix:?}… within {within:?}"),
    }
}

/// The app as a user may have put it: under a directory whose name has a space.
fn installed(dir: &Path) -> PathBuf {
    dir.join("My Apps/ferry-app")
}

fn install(dir: &Path) {
    let to = installed(dir);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    for (from, to) in [(APP, to.clone()), (KEEPER, to.with_file_name("ferry-tray"))] {
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to).unwrap();
        }
    }
}

/// The app's environment: everything it writes stays under `dir`.
fn app_command(dir: &Path, desktop: &Desktop, bus: &Bus, args: &[&str]) -> Command {
    let mut cmd = Command::new(installed(dir));
    cmd.args(args)
        .env("DISPLAY", &desktop.display)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", dir.join("home"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("FERRY_STORE", dir.join("store.json"))
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env("NO_AT_BRIDGE", "1")
        .env_remove("GDK_GL");
    cmd
}

fn visible_windows(desktop: &Desktop) -> usize {
    desktop
        .xdotool(&["search", "--onlyvisible", "--name", "^Ferry$"])
        .lines()
        .count()
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a line of the app's log file holds both pieces of text.
fn logged(dir: &Path, a: &str, b: &str) -> bool {
    let Ok(files) = std::fs::read_dir(dir.join("data/dev.ferry.app/logs")) else {
        return false;
    };
    files.flatten().any(|f| {
        std::fs::read_to_string(f.path())
            .is_ok_and(|text| text.lines().any(|l| l.contains(a) && l.contains(b)))
    })
}

fn echoes(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut out = [0u8; 5];
    s.write_all(b"hello").is_ok() && s.read_exact(&mut out).is_ok() && &out == b"hello"
}

fn kubectl(kubeconfig: &Path, args: &[&str]) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--context", "ferry-fake", "-n", "demo"])
        .args(args)
        .output()
        .expect("kubectl (scripts/setup checks for it)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Launches the app again: it must exit at once and the running one show its window.
fn launch_again(dir: &Path, desktop: &Desktop, bus: &Bus) {
    let mut second = app_command(dir, desktop, bus, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = second.kill();
            panic!("the second launch is still running: two instances");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the second launch ended with {status}");
    wait_until(
        "the running instance shows its window",
        Duration::from_secs(20),
        || visible_windows(desktop) == 1,
    );
}

/// Presses a notification's button (the service says it was pressed: `ActionInvoked`
/// with the notification's id and the button's key) every second until `done`.
fn press_until(
    service: &zbus::blocking::Connection,
    button: (u32, &str),
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let mut pressed = Instant::now() - Duration::from_secs(1);
    wait_until(what, Duration::from_secs(20), || {
        if pressed.elapsed() >= Duration::from_secs(1) {
            service
                .emit_signal(
                    None::<()>,
                    "/org/freedesktop/Notifications",
                    "org.freedesktop.Notifications",
                    "ActionInvoked",
                    &button,
                )
                .expect("the signal is sent");
            pressed = Instant::now();
        }
        done()
    });
}

/// Asks the window to close as a window manager does (`WM_DELETE_WINDOW`), through
/// python-xlib (`scripts/setup` installs it).
fn close_window(desktop: &Desktop) {
    let ids = desktop.xdotool(&["search", "--onlyvisible", "--name", "^Ferry$"]);
    let id = ids.lines().next().expect("a visible Ferry window");
    let script = "import sys\n\
from Xlib import display, X, protocol\n\
d = display.Display()\n\
w = d.create_resource_object('window', int(sys.argv[1]))\n\
proto = d.intern_atom('WM_PROTOCOLS')\n\
delete = d.intern_atom('WM_DELETE_WINDOW')\n\
ev = protocol.event.ClientMessage(window=w, client_type=proto, data=(32, [delete, X.CurrentTime, 0, 0, 0]))\n\
w.send_event(ev, event_mask=X.NoEventMask)\n\
d.flush()\n";
    let out = Command::new("python3")
        .args(["-c", script, id.trim()])
        .env("DISPLAY", &desktop.display)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "closing the window: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The processes the app started, and theirs: its window's process and WebKit's.
fn descendants(app: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let mut todo = vec![app];
    while let Some(pid) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                let comm =
                    std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
                found.push((child, comm.trim().to_string()));
                todo.push(child);
            }
        }
    }
    found
}

/// Waits until the app runs no other process (no window's, no WebKit's).
fn wait_for_no_window(what: &str, app: u32) {
    wait_until(what, Duration::from_secs(10), || {
        descendants(app).is_empty()
    });
}

/// The app's WebKit web processes (one per open web view).
fn web_processes(app: u32) -> usize {
    descendants(app)
        .iter()
        .filter(|(_, comm)| comm.ends_with("WebKitWebProces"))
        .count()
}

fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1024
}

/// Stock GNOME shows no tray: closing the window must quit Ferry (close to tray is on by
/// default), not leave it running unseen with its ports held.
#[test]
fn without_a_tray_closing_the_window_quits() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let bus = Bus::start(dir);
    let desktop = Desktop::without_tray();
    install(dir);
    let mut app = Group::spawn(&mut app_command(dir, &desktop, &bus, &[]));
    wait_until("the window shows", Duration::from_secs(30), || {
        visible_windows(&desktop) == 1
    });
    close_window(&desktop);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut asked = Instant::now();
    let status = loop {
        if let Some(status) = app.0.try_wait().unwrap() {
            break status;
        }
        let showing = visible_windows(&desktop);
        assert!(
            Instant::now() < deadline,
            "the app still runs {} on a desktop with no tray",
            if showing > 0 {
                "and its window still shows"
            } else {
                "after its window closed"
            }
        );
        // A busy machine may map the window before it takes a close: ask again.
        if showing > 0 && asked.elapsed() > Duration::from_secs(2) {
            close_window(&desktop);
            asked = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the app ended with {status}");
    assert!(
        logged(dir, "no tray", "quitting"),
        "the log does not say why"
    );
}

#[test]
fn the_app_in_the_tray_starts_at_login_notifies_and_stays_single() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let bus = Bus::start(dir);
    let (service, shown) = serve_notifications(&bus);
    let desktop = Desktop::start();

    // A store as the user left it: start at login on, one forward to the demo cluster's
    // bare pod with quick health checks (a saved forward on the demo context brings the
    // demo cluster up at launch).
    let port = free_port();
    let store = dir.join("store.json");
    let doc = serde_json::json!({
        "version": 1,
        "config": {"version": 1, "forwards": [{
            "name": "solo", "context": "ferry-fake", "namespace": "demo",
            "target": "pod/solo", "port": 9000, "local_port": port,
            "health": {"interval": "500ms", "fast_interval": "200ms", "idle_interval": "500ms",
                       "timeout": "500ms", "rise": 1, "fall": 2},
        }]},
        "settings": {"start_at_login": true, "notifications": true},
    });
    std::fs::write(&store, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    Store::new(&store)
        .load()
        .expect("the test's store is valid");

    // Started as the login entry starts it: hidden, in the tray.
    install(dir);
    let mut first = Group::spawn(&mut app_command(dir, &desktop, &bus, &["--hidden"]));

    // Start at login is on in the store: the entry is (re)written for this binary.
    let entry = dir.join("home/.config/autostart/Ferry.desktop");
    // The path is quoted as the Desktop Entry specification asks (it has a space). The
    // launcher writes the entry, then Ferry rewrites its Exec line: wait for the result.
    let exec = format!("Exec=\"{}\" --hidden", installed(dir).display());
    wait_until(
        "the login entry is written",
        Duration::from_secs(30),
        || std::fs::read_to_string(&entry).is_ok_and(|t| t.lines().any(|l| l == exec)),
    );

    wait_until("solo echoes", Duration::from_secs(60), || echoes(port));
    // Health checks have found it up (the app logs each forward's transitions).
    wait_until("solo is active", Duration::from_secs(30), || {
        logged(dir, "forward=solo", "state active")
    });
    assert_eq!(
        visible_windows(&desktop),
        0,
        "started hidden, yet a window shows"
    );
    assert_eq!(
        descendants(first.0.id()),
        vec![],
        "started hidden, yet the app runs other processes (a window's, WebKit's)"
    );
    // Hidden in the tray, no GL driver is loaded: GTK's OpenGL probe is off (GDK_GL=disable,
    // set by the app restarting itself once, under the same process id).
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", first.0.id())).unwrap();
    let gl: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| path.contains("_dri.so") || path.contains("libLLVM"))
        .collect();
    assert!(gl.is_empty(), "hidden, yet GL is loaded: {gl:?}");
    // ferry-app handed over to Ferry's own process (the same process id), which links no
    // web view at all: neither WebKitGTK nor JavaScriptCore is mapped.
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/comm", first.0.id()))
            .unwrap()
            .trim(),
        "ferry-tray",
        "ferry-app did not hand over to ferry-tray"
    );
    let web: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| path.contains("webkit2gtk") || path.contains("javascriptcoregtk"))
        .collect();
    assert!(
        web.is_empty(),
        "hidden, yet a web view's libraries are mapped: {web:?}"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", first.0.id())).unwrap();
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv == b"GDK_GL=disable"),
        "not restarted with GDK_GL=disable"
    );

    // The pod refuses: health fails, solo is degraded, and after a few quiet seconds the
    // desktop is told. Then it answers again and the desktop hears it is back.
    let kubeconfig: PathBuf = dir.join("data/dev.ferry.app/demo-kubeconfig");
    let behavior = "fake.ferry.dev/behavior";
    kubectl(
        &kubeconfig,
        &[
            "annotate",
            "pod",
            "solo",
            &format!("{behavior}=refuse"),
            "--overwrite",
        ],
    );
    // From "Ferry" (not the binary's name), with Ferry's icon, saying why.
    let (down, buttons) = expect_notification(
        &shown,
        "[Ferry, png] Ferry: solo is degraded: ",
        Duration::from_secs(20),
    );
    // Its "Retry" checks solo again at once (pressed again while Ferry has not heard it:
    // the notification's id may reach Ferry a moment after its text reached this test).
    assert!(
        buttons.iter().any(|k| k == "retry"),
        "no Retry button: {buttons:?}"
    );
    press_until(&service, (down, "retry"), "Retry checks solo again", || {
        logged(dir, "forward=solo", "checked again from a notification")
    });
    kubectl(
        &kubeconfig,
        &[
            "annotate",
            "pod",
            "solo",
            &format!("{behavior}=echo"),
            "--overwrite",
        ],
    );
    let (back_up, buttons) = expect_notification(
        &shown,
        "[Ferry, png] Ferry: solo is back up",
        Duration::from_secs(20),
    );
    assert!(echoes(port));

    // Its "Open Ferry" button opens the window (the service says it was pressed).
    assert!(
        buttons.iter().any(|k| k == "open"),
        "no Open button: {buttons:?}"
    );
    // Pressed as a person would, after the notification shows: the service's answer
    // (its id) reaches Ferry a moment after the text reached this test, so a press in that
    // instant is not Ferry's yet; press again while no window has opened.
    press_until(
        &service,
        (back_up, "open"),
        "the window opens from the notification",
        || visible_windows(&desktop) == 1,
    );
    close_window(&desktop);
    wait_until("the window closes", Duration::from_secs(15), || {
        visible_windows(&desktop) == 0
    });

    // A second launch exits at once and the first instance shows its window.
    let hidden_rss = rss_mb(first.0.id());
    launch_again(dir, &desktop, &bus);
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first instance went away"
    );
    wait_until(
        "the window's web process runs",
        Duration::from_secs(10),
        || web_processes(first.0.id()) > 0,
    );

    // Moved and resized, the window's place is kept in the app's own preferences (once it
    // has been still a moment), and it opens there again.
    let window = desktop.xdotool(&["search", "--onlyvisible", "--name", "^Ferry$"]);
    let window = window
        .lines()
        .next()
        .expect("a visible Ferry window")
        .trim();
    desktop.xdotool(&["windowsize", window, "900", "600"]);
    desktop.xdotool(&["windowmove", window, "40", "30"]);
    let prefs = dir.join("config/dev.ferry.app/prefs.json");
    wait_until(
        "the window's size and position are saved",
        Duration::from_secs(10),
        || {
            let saved: serde_json::Value = std::fs::read_to_string(&prefs)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            saved["window"]["width"] == 900.0
                && saved["window"]["height"] == 600.0
                && saved["window"]["x"] == 40.0
                && saved["window"]["y"] == 30.0
        },
    );
    let geometry = |desktop: &Desktop| -> String {
        let window = desktop.xdotool(&["search", "--onlyvisible", "--name", "^Ferry$"]);
        let window = window.lines().next().unwrap_or_default().trim().to_string();
        let shell = desktop.xdotool(&["getwindowgeometry", "--shell", &window]);
        ["X", "Y", "WIDTH", "HEIGHT"]
            .iter()
            .map(|k| {
                shell
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .unwrap_or("?")
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(",")
    };

    // Closing the window (as a window manager asks) frees the web view and leaves Ferry
    // in the tray; opening and closing it again does not make the app grow.
    let mut closed_rss = Vec::new();
    for cycle in 0..3 {
        if cycle > 0 {
            launch_again(dir, &desktop, &bus);
            wait_until(
                "the window's web process runs",
                Duration::from_secs(10),
                || web_processes(first.0.id()) > 0,
            );
            assert_eq!(
                geometry(&desktop),
                "40,30,900,600",
                "the window opened elsewhere"
            );
        }
        close_window(&desktop);
        wait_until("the window closes", Duration::from_secs(10), || {
            visible_windows(&desktop) == 0
        });
        // The window had a process of its own: it is gone, and WebKit's processes with it
        // (Ferry in the tray keeps none of the window's memory).
        wait_for_no_window("the window's process and WebKit's exit", first.0.id());
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "closing the window ended the app"
        );
        closed_rss.push(rss_mb(first.0.id()));
    }
    eprintln!("app RSS: hidden {hidden_rss} MB; after closing the window {closed_rss:?} MB");
    assert!(
        closed_rss[2] <= closed_rss[0] + 40,
        "the app grows with each window: {closed_rss:?} MB"
    );
    assert!(echoes(port), "forwards keep working with the window closed");

    // The window's process dies (killed): Ferry stays in the tray with its forwards, and
    // opens a fresh window when asked.
    launch_again(dir, &desktop, &bus);
    let window_process = descendants(first.0.id())
        .into_iter()
        .find(|(_, comm)| comm == "ferry-app")
        .expect("the window's process");
    Command::new("kill")
        .args(["-KILL", &window_process.0.to_string()])
        .status()
        .unwrap();
    wait_for_no_window("the killed window's processes are gone", first.0.id());
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the window's process died and took Ferry with it"
    );
    assert!(
        echoes(port),
        "forwards keep working after the window's process died"
    );
    launch_again(dir, &desktop, &bus);
    close_window(&desktop);
    wait_for_no_window("the window closes", first.0.id());

    // Another program (the `ferry` CLI, say) turns start at login off in the store: the
    // running app removes the entry.
    Store::new(&store)
        .modify(|doc| {
            doc.settings["start_at_login"] = false.into();
            Ok::<_, StoreError>(())
        })
        .unwrap();
    wait_until(
        "the login entry is removed",
        Duration::from_secs(15),
        || !entry.exists(),
    );
    assert!(
        shown.try_recv().is_err(),
        "no other notification was expected"
    );
}
