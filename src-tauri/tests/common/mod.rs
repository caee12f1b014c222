//! What the end-to-end suites share: child processes that die with the test, ports, and
//! a private X desktop with an XEmbed tray.

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream as StdTcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process in its own process group, killed with its group when dropped.
pub struct Group(pub Child);

impl Group {
    pub fn spawn(cmd: &mut Command) -> Group {
        use std::os::unix::process::CommandExt as _;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} ({e}); scripts/setup installs it"));
        Group(child)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pgid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while StdTcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `program args` against `display` every 50 ms until it succeeds; fails the test
/// with `failure()` after 10 s.
fn until_it_succeeds(display: &str, program: &str, args: &[&str], failure: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Command::new(program)
        .args(args)
        .env("DISPLAY", display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "{}", failure());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Xvfb on a display it picks, with an XEmbed tray on it.
pub struct Desktop {
    pub display: String,
    _xvfb: Group,
    /// Xvfb's stdout, kept open: a write to a closed pipe would kill it.
    _xvfb_out: BufReader<std::process::ChildStdout>,
    _tray: Option<Group>,
}

impl Desktop {
    /// An X display with an XEmbed tray (trayer).
    pub fn start() -> Desktop {
        let mut desktop = Desktop::without_tray();
        desktop._tray = Some(Group::spawn(
            Command::new("trayer")
                .args([
                    "--edge",
                    "top",
                    "--align",
                    "right",
                    "--widthtype",
                    "request",
                ])
                .args([
                    "--height",
                    "32",
                    "--transparent",
                    "false",
                    "--SetDockType",
                    "true",
                ])
                .env("DISPLAY", &desktop.display)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
        // An app started before trayer holds the tray selection may never embed its icon:
        // wait until the selection has an owner.
        let owned = "from Xlib import display, X\n\
                     d = display.Display()\n\
                     owner = d.get_selection_owner(d.intern_atom('_NET_SYSTEM_TRAY_S0'))\n\
                     raise SystemExit(0 if owner != X.NONE else 1)";
        until_it_succeeds(&desktop.display, "python3", &["-c", owned], || {
            format!(
                "trayer on {} never took the tray selection (python-xlib: scripts/setup)",
                desktop.display
            )
        });
        desktop
    }

    /// An X display with no tray, as stock GNOME without the AppIndicator extension is.
    pub fn without_tray() -> Desktop {
        let mut xvfb = Group::spawn(
            Command::new("Xvfb")
                .args([
                    "-displayfd",
                    "1",
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let mut line = String::new();
        let stdout = xvfb.0.stdout.take().expect("Xvfb's stdout");
        let mut out = BufReader::new(stdout);
        out.read_line(&mut line).unwrap();
        let display = format!(":{}", line.trim());
        // The display answers a client before anything is started on it.
        until_it_succeeds(&display, "xdotool", &["getdisplaygeometry"], || {
            format!("Xvfb on {display} never answered")
        });
        Desktop {
            display,
            _xvfb: xvfb,
            _xvfb_out: out,
            _tray: None,
        }
    }

    /// The text on the display's clipboard (`xclip`; empty when there is none).
    pub fn clipboard(&self) -> String {
        let out = Command::new("xclip")
            .args(["-o", "-selection", "clipboard"])
            .env("DISPLAY", &self.display)
            .output()
            .expect("xclip (scripts/setup installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .expect("xdotool (scripts/setup installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Whether a process of the app binary runs on this store (`FERRY_STORE`): other tests may
/// run the same binary at the same time on other stores.
pub fn app_runs_on(app: &str, store: &std::path::Path) -> bool {
    let want = format!("FERRY_STORE={}", store.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        let is_app = std::fs::read(path.join("cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).next() == Some(app.as_bytes()));
        is_app
            && std::fs::read(path.join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == want.as_bytes()))
    })
}

/// The app's core on the store, data and config directories under `dir`, reading only
/// `dir/kubeconfig` (the command-layer suites' fake cluster).
pub async fn core_in(dir: &std::path::Path) -> std::sync::Arc<ferry_app::app::AppCore> {
    ferry_app::app::AppCore::start(ferry_app::app::AppOptions {
        store: Some(dir.join("store.json")),
        data_dir: dir.join("data"),
        config_dir: dir.join("config"),
        demo: false,
        kubeconfig: Some(ferry_core::cluster::KubeconfigSource::from_paths(vec![
            dir.join("kubeconfig"),
        ])),
    })
    .await
    .unwrap()
}
