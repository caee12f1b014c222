//! The Linux packages as a user gets them: the Tauri CLI's bundler packs the test build (the
//! debug app and the `ferry` CLI beside it) into a `.deb` and an `.rpm`, exactly as
//! `scripts/package` packs the release build. The `.deb` is unpacked into a scratch root
//! (no installation), its files and metadata read, its `ferry` asked for its version and its
//! app started in demo mode on a private X display with a tray: a window and a tray icon
//! show. The `.rpm` holds the same files and requires the same libraries.
//!
//! Needs: the UI's npm packages (`@tauri-apps/cli`), dpkg-deb, rpm, Xvfb, dbus-run-session,
//! trayer, xdotool (`scripts/setup` installs them), and the `ferry` CLI built beside the app
//! (`cargo nextest run --workspace` builds every binary; else `cargo build -p ferry-cli`).

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Desktop, Group};

const APP: &str = env!("CARGO_BIN_EXE_ferry-app");
/// The workspace's version, which the packages must carry (tauri.conf.json has none).
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The sizes a desktop asks for in the hicolor theme.
const ICON_SIZES: [u32; 8] = [16, 24, 32, 48, 64, 128, 256, 512];

/// Runs a command to success and returns its stdout.
fn run(cmd: &mut Command) -> String {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); scripts/setup installs it"));
    assert!(
        out.status.success(),
        "{program} {:?} ended with {}:\n{}\n{}",
        cmd.get_args().collect::<Vec<_>>(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one file with this extension in a directory.
fn only_file(dir: &Path, ext: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    assert_eq!(found.len(), 1, "one .{ext} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// Every regular file under `root`, as absolute paths of the installed system.
fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(format!("/{}", path.strip_prefix(root).unwrap().display()));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// A PNG file's width and height (from its IHDR chunk).
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is no PNG",
        path.display()
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn wait_for(what: &str, within: Duration, log: &Path, mut found: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !found() {
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{what}: not within {within:?}; the app's output ends:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_linux_packages_hold_the_app_and_the_cli_and_the_app_runs_from_them() {
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();
    let src_tauri = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tauri_cli = src_tauri.join("../ui/node_modules/.bin/tauri");
    assert!(
        tauri_cli.exists(),
        "{} is missing: run scripts/setup (it installs the UI's npm packages, \
         @tauri-apps/cli among them)",
        tauri_cli.display()
    );
    let cli = Path::new(APP).with_file_name("ferry");
    assert!(
        is_executable(&cli),
        "{} is missing: build the CLI beside the app (`cargo build -p ferry-cli`; \
         `cargo nextest run --workspace` builds it)",
        cli.display()
    );

    // --- bundle: the bundler packs <target>/debug/ferry-app and writes the package type
    // into the binary it packs, so it gets copies in a target directory of its own (never
    // the binary other tests are running). tauri.conf.json takes /usr/bin/ferry from the
    // release build; here it comes from the debug one. An uncompressed .rpm saves ~2 min
    // of xz over a debug binary; the release packages keep the default.
    let debug = scratch.join("target/debug");
    std::fs::create_dir_all(&debug).unwrap();
    std::fs::copy(APP, debug.join("ferry-app")).unwrap();
    // Ferry's own process: the bundler packs every binary of the package beside the app.
    std::fs::copy(env!("CARGO_BIN_EXE_ferry-tray"), debug.join("ferry-tray")).unwrap();
    let cli_copy = debug.join("ferry");
    std::fs::copy(&cli, &cli_copy).unwrap();
    // The manual pages and completion scripts, made by the CLI as scripts/package does.
    let cli_files = run(Command::new(src_tauri.join("../scripts/cli-files"))
        .arg(&cli_copy)
        .arg(scratch.join("cli-files")));
    let mut files: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&cli_files).expect("scripts/cli-files prints a JSON map");
    files.insert("/usr/bin/ferry".into(), serde_json::json!(cli_copy));
    let overrides = serde_json::json!({"bundle": {"linux": {
        "deb": {"files": files},
        "rpm": {"files": files, "compression": {"type": "none"}},
    }}});
    run(Command::new(&tauri_cli)
        .current_dir(src_tauri)
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .args([
            "bundle",
            "--debug",
            "--ci",
            "--bundles",
            "deb,rpm",
            "--config",
        ])
        .arg(overrides.to_string()));
    let bundled = started.elapsed();
    let deb = only_file(&debug.join("bundle/deb"), "deb");
    let rpm = only_file(&debug.join("bundle/rpm"), "rpm");

    // --- the .deb's metadata.
    let fields: HashMap<String, String> = run(Command::new("dpkg-deb").arg("-f").arg(&deb))
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(
        fields.get("Package").map(String::as_str),
        Some("ferry"),
        "{fields:?}"
    );
    assert_eq!(
        fields.get("Version").map(String::as_str),
        Some(VERSION),
        "{fields:?}"
    );
    let depends: Vec<&str> = fields
        .get("Depends")
        .map(|d| d.split(',').map(str::trim).collect())
        .unwrap_or_default();
    for lib in ["libwebkit2gtk-4.1-0", "libayatana-appindicator3-1"] {
        assert!(
            depends
                .iter()
                .any(|d| d.split_whitespace().next() == Some(lib)),
            "Depends has no {lib}: {depends:?}"
        );
    }

    // --- the .deb's files, unpacked into a scratch root.
    let root = scratch.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let app = root.join("usr/bin/ferry-app");
    let ferry = root.join("usr/bin/ferry");
    assert!(is_executable(&app), "no executable /usr/bin/ferry-app");
    assert!(is_executable(&ferry), "no executable /usr/bin/ferry");
    assert!(
        is_executable(&root.join("usr/bin/ferry-tray")),
        "no executable /usr/bin/ferry-tray (Ferry's own process, which ferry-app starts)"
    );
    let version = run(Command::new(&ferry).arg("--version"));
    assert_eq!(version.trim(), format!("ferry {VERSION}"));

    let desktop_file = root.join("usr/share/applications/Ferry.desktop");
    let entry: HashMap<String, String> = std::fs::read_to_string(&desktop_file)
        .unwrap_or_else(|e| panic!("{}: {e}", desktop_file.display()))
        .lines()
        .skip_while(|l| l.trim() != "[Desktop Entry]")
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let field = |k: &str| entry.get(k).map(String::as_str).unwrap_or("");
    assert_eq!(field("Type"), "Application", "{entry:?}");
    assert_eq!(field("Name"), "Ferry", "{entry:?}");
    assert_eq!(field("Exec"), "ferry-app", "{entry:?}");
    assert_eq!(field("Icon"), "ferry-app", "{entry:?}");
    assert_eq!(field("StartupWMClass"), "ferry-app", "{entry:?}");
    assert!(!field("Comment").is_empty(), "{entry:?}");
    assert!(
        field("Categories").split(';').any(|c| c == "Development"),
        "{entry:?}"
    );

    let hicolor = root.join("usr/share/icons/hicolor");
    for size in ICON_SIZES {
        let icon = hicolor.join(format!("{size}x{size}/apps/ferry-app.png"));
        assert_eq!(png_size(&icon), (size, size), "{}", icon.display());
    }
    // Nothing in a directory the icon theme does not know (such as "256x256@2").
    for dir in std::fs::read_dir(&hicolor).unwrap().flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        assert!(
            ICON_SIZES.iter().any(|s| name == format!("{s}x{s}")),
            "icons in hicolor/{name}"
        );
    }
    // `man ferry-up` and Tab in bash, zsh and fish: made from the CLI's definition.
    let page = root.join("usr/share/man/man1/ferry-up.1.gz");
    let roff = run(Command::new("gzip").arg("-dc").arg(&page));
    assert!(roff.contains(".TH ferry-up 1"), "{}", page.display());
    assert!(root.join("usr/share/man/man1/ferry.1.gz").exists());
    let bash = std::fs::read_to_string(root.join("usr/share/bash-completion/completions/ferry"))
        .expect("bash completion");
    // It calls the installed `ferry` back, not the build that made it.
    assert!(bash.contains("\"ferry\" -- "), "{bash}");
    assert!(
        root.join("usr/share/zsh/vendor-completions/_ferry")
            .exists()
    );
    assert!(
        root.join("usr/share/fish/vendor_completions.d/ferry.fish")
            .exists()
    );
    let copyright = std::fs::read_to_string(root.join("usr/share/doc/ferry/copyright"))
        .expect("/usr/share/doc/ferry/copyright");
    assert!(copyright.contains("License: Apache-2.0"), "{copyright}");

    // --- the .rpm: the same files, the same libraries.
    let name = run(Command::new("rpm")
        .args(["-qp", "--qf", "%{NAME} %{VERSION}\\n"])
        .arg(&rpm));
    assert_eq!(name.trim(), format!("ferry {VERSION}"));
    let rpm_files: BTreeSet<String> = run(Command::new("rpm").arg("-qlp").arg(&rpm))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        rpm_files,
        files_under(&root),
        "the .rpm's files and the .deb's"
    );
    let requires = run(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
    for lib in ["libwebkit2gtk-4.1.so.0", "libayatana-appindicator3.so.1"] {
        assert!(
            requires.contains(lib),
            "the .rpm does not require {lib}:\n{requires}"
        );
    }
    let checked = started.elapsed();

    // --- the unpacked app in demo mode, on a private X display with an XEmbed tray and a
    // private session bus: its window and its tray icon show.
    let desktop = Desktop::start();
    let home = scratch.join("home");
    let log = scratch.join("app.log");
    let out = std::fs::File::create(&log).unwrap();
    let _app = Group::spawn(
        Command::new("dbus-run-session")
            .arg("--")
            .arg(&app)
            .arg("--demo")
            .env("DISPLAY", &desktop.display)
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("FERRY_STORE", home.join("store.json"))
            .env("KUBECONFIG", home.join("no-kubeconfig"))
            .env("NO_AT_BRIDGE", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    );
    let visible = |args: &[&str]| -> BTreeSet<String> {
        let mut all = vec!["search", "--onlyvisible"];
        all.extend_from_slice(args);
        desktop.xdotool(&all).lines().map(str::to_string).collect()
    };
    wait_for("the window shows", Duration::from_secs(60), &log, || {
        !visible(&["--name", "^Ferry$"]).is_empty()
    });
    // The desktop file's StartupWMClass names the window's class.
    let window = visible(&["--name", "^Ferry$"]);
    assert!(
        !window.is_disjoint(&visible(&["--classname", "^ferry-app$"])),
        "the window's WM_CLASS is not ferry-app"
    );
    // As long as the window may take: on a loaded machine the indicator library's fallback
    // to the XEmbed tray has taken over 30 s (it passed at once when run again).
    wait_for("the tray icon shows", Duration::from_secs(60), &log, || {
        !visible(&["--classname", "^tray-icon"]).is_empty()
    });
    wait_for(
        "the demo forwards start",
        Duration::from_secs(30),
        &log,
        || {
            std::fs::read_dir(home.join("data/dev.ferry.app/logs")).is_ok_and(|d| {
                d.flatten().any(|f| {
                    std::fs::read_to_string(f.path()).is_ok_and(|t| t.contains("forward=echo"))
                })
            })
        },
    );
    eprintln!(
        "package: bundled in {:.1?}, contents checked at {:.1?}, app up at {:.1?}",
        bundled,
        checked,
        started.elapsed()
    );
}
