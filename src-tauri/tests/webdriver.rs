//! The real app, end to end: the built binary on a private X display (Xvfb), driven by
//! WebDriver (`tauri-driver` + WebKitWebDriver) in demo mode, with an XEmbed tray
//! (`trayer`) clicked through `xdotool`. Saves screenshots into `docs/screenshots/`.
//!
//! Needs: Xvfb, dbus-run-session, tauri-driver, WebKitWebDriver, trayer, xdotool
//! (`scripts/setup` installs them). A missing one fails the test with its name.

// Helpers of a test panic on failure, as the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Desktop, Group, free_port, wait_port};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// tauri-driver on a private session bus, on the desktop's display.
struct Driver {
    port: u16,
    /// What tauri-driver, WebKitWebDriver and the app they launch print.
    log: PathBuf,
    _driver: Group,
}

impl Driver {
    fn start(desktop: &Desktop, store: &Path, data: &Path) -> Driver {
        let port = free_port();
        let native = free_port();
        let log = data.join(format!("driver-{port}.log"));
        std::fs::create_dir_all(data).expect("the data directory");
        let out = std::fs::File::create(&log).expect("the driver's log file");
        let err = out.try_clone().expect("the driver's log file");
        let driver = Group::spawn(
            Command::new("dbus-run-session")
                .args(["--", "tauri-driver", "--port", &port.to_string()])
                .args(["--native-port", &native.to_string()])
                .env("DISPLAY", &desktop.display)
                .env("FERRY_STORE", store)
                .env("HOME", data.join("home"))
                .env("XDG_DATA_HOME", data)
                .env("XDG_CONFIG_HOME", data.join("config"))
                .env("KUBECONFIG", data.join("no-kubeconfig"))
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err)),
        );
        wait_port(port, Duration::from_secs(20));
        Driver {
            port,
            log,
            _driver: driver,
        }
    }

    async fn open_app(&self, args: &[&str]) -> Client {
        let app = PathBuf::from(env!("CARGO_BIN_EXE_ferry-app"));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("wry"));
        caps.insert(
            "tauri:options".into(),
            json!({"application": app, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut builder = ClientBuilder::new(connector);
        let session = builder.capabilities(caps).connect(&url);
        let client = match tokio::time::timeout(Duration::from_secs(45), session).await {
            Ok(client) => client.expect("a WebDriver session with the app"),
            Err(_) => panic!(
                "no WebDriver session with the app within 45 s; the driver and the app printed:\n{}\nprocesses:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default(),
                Command::new("ps")
                    .args(["-eo", "pid,ppid,stat,etime,args", "--forest"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default()
            ),
        };
        let _ = client.set_window_size(1200, 760).await;
        client
    }
}

fn css(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

async fn text_of(c: &Client, id: &str) -> Option<String> {
    text_of_css(c, &css(id)).await
}

async fn text_of_css(c: &Client, selector: &str) -> Option<String> {
    let el = c.find(Locator::Css(selector)).await.ok()?;
    el.text().await.ok()
}

/// Waits until the element (a text box) holds some text.
async fn wait_text_not_empty(c: &Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = match c.find(Locator::Css(&css(id))).await {
            Ok(el) => el.prop("value").await.ok().flatten().unwrap_or_default(),
            Err(_) => String::new(),
        };
        if !value.trim().is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{id} stays empty");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the element's text is `want`.
async fn wait_text(c: &Client, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = text_of(c, id).await;
        if got.as_deref().map(str::trim) == Some(want) {
            return;
        }
        if Instant::now() >= deadline {
            let page = text_of_css(c, "main").await.unwrap_or_default();
            panic!("{id} shows {got:?}, not {want:?}; the window shows:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no element has the test id (a dialog closed).
async fn wait_gone(c: &Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Css(&css(id))).await.is_ok() {
        assert!(Instant::now() < deadline, "{id} is still shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the file exists (or is gone).
async fn wait_file(path: &Path, exists: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() != exists {
        assert!(
            Instant::now() < deadline,
            "{} {}",
            path.display(),
            if exists {
                "was not written"
            } else {
                "is still there"
            }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, id: &str) {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(&css(id)))
        .await
        .unwrap_or_else(|e| panic!("no {id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {id}: {e}"));
}

/// Opens the details panel of the forward `name` (its row's details button).
async fn open_details(c: &Client, name: &str) {
    let button = format!("[data-testid=\"forward-row-{name}\"] [aria-label=\"Details of {name}\"]");
    c.find(Locator::Css(&button))
        .await
        .unwrap_or_else(|e| panic!("the details button of {name}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("open the details of {name}: {e}"));
}

async fn type_into(c: &Client, id: &str, text: &str) {
    let el = c.find(Locator::Css(&css(id))).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

async fn local_addr(c: &Client, name: &str) -> SocketAddr {
    let text = text_of(c, &format!("local-{name}"))
        .await
        .unwrap_or_default();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("local-{name} shows {text:?}, not an address"))
}

async fn echo_through(addr: SocketAddr) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let msg = b"bytes through the app";
    s.write_all(msg).await.unwrap();
    let mut out = vec![0; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut out))
        .await
        .expect("an echo within 10 s")
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_in_demo_mode_as_a_person_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.json");
    let data = dir.path().join("data");
    let desktop = Desktop::start();
    let driver = Driver::start(&desktop, &store, &data);

    eprintln!("webdriver: first run");
    // --- first run: the demo forwards appear and work.
    let c = driver.open_app(&["--demo"]).await;
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(&css("forward-row-echo")))
        .await
        .expect("the demo forwards appear");
    wait_text(&c, "state-echo", "active").await;

    eprintln!("webdriver: off frees the port");
    // Off: the local port is freed.
    let addr = local_addr(&c, "echo").await;
    click(&c, "toggle-echo").await;
    wait_text(&c, "state-echo", "disabled").await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "{addr} still accepts after switching echo off"
    );
    // On: active, and bytes come back from the echo pod.
    click(&c, "toggle-echo").await;
    wait_text(&c, "state-echo", "active").await;
    let addr = local_addr(&c, "echo").await;
    assert_eq!(echo_through(addr).await, b"bytes through the app");
    wait_text(&c, "state-web", "active").await;
    screenshot(&c, "main-light.png").await;

    // Dark theme, through the settings dialog.
    click(&c, "open-settings").await;
    c.find(Locator::Css(&css("setting-theme")))
        .await
        .unwrap()
        .select_by_value("dark")
        .await
        .unwrap();
    // Start at login: the switch writes the desktop's autostart entry, which starts this
    // binary hidden in the tray; switching it off removes the entry.
    let entry = data.join("home/.config/autostart/Ferry.desktop");
    click(&c, "setting-start-at-login").await;
    let exec = format!("Exec={} --hidden", env!("CARGO_BIN_EXE_ferry-app"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&entry).is_ok_and(|t| t.lines().any(|l| l == exec)) {
        assert!(
            Instant::now() < deadline,
            "{exec:?} not in {}: {:?}",
            entry.display(),
            std::fs::read_to_string(&entry)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The entry is written first, then the setting saved.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&store)
        .unwrap()
        .contains("\"start_at_login\": true")
    {
        assert!(Instant::now() < deadline, "start_at_login was not saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&c, "setting-start-at-login").await;
    wait_file(&entry, false).await;
    click(&c, "close-dialog").await;
    wait_gone(&c, "settings-dialog").await;
    let theme = c
        .execute("return document.documentElement.dataset.theme", vec![])
        .await
        .unwrap();
    assert_eq!(theme, json!("dark"));
    screenshot(&c, "main-dark.png").await;

    // Add a forward through the dialog, from a pasted kubectl line.
    click(&c, "add-forward").await;
    type_into(&c, "quick-add", "svc/web 0:80 -n demo --context ferry-fake").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let target = c
            .find(Locator::Css(&css("field-target")))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
        if target.as_deref() == Some("web") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "quick add did not fill the form: {target:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    type_into(&c, "field-name", "added").await;
    screenshot(&c, "add-dialog.png").await;
    click(&c, "save-forward").await;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&css("forward-row-added")))
        .await
        .expect("the added forward is listed");
    wait_text(&c, "state-added", "active").await;

    eprintln!("webdriver: copy kubectl");
    // "Copy as kubectl command": the shell writes the clipboard (WebKitGTK refuses a page's
    // own write after an IPC round trip, so the page's way never copied); read it back
    // from the X display.
    open_details(&c, "added").await;
    click(&c, "copy-kubectl").await;
    let port = local_addr(&c, "added").await.port();
    let want = format!("kubectl port-forward --context ferry-fake -n demo svc/web {port}:80");
    // The window says "Copied…" once the shell answered. A click that never reached the
    // button (a busy machine) is made again; a notice without the text is the failure.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut click_again = Instant::now() + Duration::from_secs(4);
    let mut noticed = false;
    loop {
        let got = desktop.clipboard();
        if got == want {
            break;
        }
        noticed = noticed
            || text_of_css(&c, "body")
                .await
                .is_some_and(|t| t.contains("Copied the kubectl command."));
        if !noticed && Instant::now() >= click_again {
            click(&c, "copy-kubectl").await;
            click_again = Instant::now() + Duration::from_secs(4);
        }
        assert!(
            Instant::now() < deadline,
            "the clipboard holds {got:?}, not {want:?} (the window {} it copied)",
            if noticed { "said" } else { "never said" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&c, "close-details").await;

    eprintln!("webdriver: export");
    // Export's "Save…": Ferry's YAML lands in the Downloads folder and imports back.
    click(&c, "open-export").await;
    wait_text_not_empty(&c, "export-text").await;
    click(&c, "export-save").await;
    let saved = data.join("home/Downloads/ferry-forwards.yaml");
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        if let Ok(text) = std::fs::read_to_string(&saved)
            && !text.is_empty()
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "{} was not saved",
            saved.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let exported = ferry_core::config::Config::from_yaml(&text).expect("the export reads back");
    assert!(
        exported.forwards.iter().any(|f| f.name == "added"),
        "{text}"
    );
    click(&c, "close-dialog").await;

    eprintln!("webdriver: the HTTP tab");
    // Inspect web from its details panel's HTTP tab; a request through its local port
    // appears in the tab's table.
    open_details(&c, "web").await;
    click(&c, "http-tab-button").await;
    click(&c, "http-turn-on").await;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&css("http-empty")))
        .await
        .expect("the HTTP tab follows web");
    let web = local_addr(&c, "web").await;
    let mut s = tokio::net::TcpStream::connect(web).await.unwrap();
    s.write_all(
        b"GET /inspected?from=webdriver HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 "), "{answer:?}");
    // The row's path, and the size its cell is drawn at (WebDriver's element text is only
    // what it deems visible).
    let script = "const td = document.querySelector('[data-testid=\"http-row\"] td.path'); \
                  if (!td) return null; const r = td.getBoundingClientRect(); \
                  return [td.textContent, r.width, r.height];";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = c.execute(script, vec![]).await.unwrap();
        if row[0] == json!("/inspected?from=webdriver") {
            eprintln!(
                "webdriver: the row's path cell is drawn at {}x{}",
                row[1], row[2]
            );
            assert!(
                row[1].as_f64().unwrap_or(0.0) > 20.0,
                "the path is drawn {row}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request is not in the HTTP tab: {row}; the tab shows:\n{}",
            text_of(&c, "http-tab").await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&c, "close-details").await;

    eprintln!("webdriver: tray");
    // --- the tray: switch echo off in the window, then on from the tray menu.
    click(&c, "toggle-echo").await;
    wait_text(&c, "state-echo", "disabled").await;
    // trayer has a small hidden window and the visible panel: take the widest.
    let geometries: Vec<String> = desktop
        .xdotool(&["search", "--class", "trayer"])
        .lines()
        .map(|w| desktop.xdotool(&["getwindowgeometry", "--shell", w]))
        .collect();
    let value = |geometry: &str, k: &str| -> i64 {
        geometry
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let geometry = geometries
        .iter()
        .max_by_key(|g| value(g, "WIDTH"))
        .expect("the trayer window");
    let value = |k: &str| value(geometry, k);
    let (x, y, h) = (value("X"), value("Y"), value("HEIGHT"));
    // The first (only) icon sits at the tray's left edge.
    let (cx, cy) = ((x + h / 2).to_string(), (y + h / 2).to_string());
    desktop.xdotool(&["mousemove", &cx, &cy, "click", "1"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Menu: header (insensitive), profile demo (a submenu), echo, web, db, added, Start
    // all, Stop all, Open, Quit. The keyboard skips the header and separators: two downs
    // reach echo.
    desktop.xdotool(&["key", "Down", "Down", "Return"]);
    wait_text(&c, "state-echo", "active").await;
    eprintln!("webdriver: start all from the tray");
    // Start all from the tray: web and db, switched off in the window, come back.
    click(&c, "toggle-web").await;
    click(&c, "toggle-db").await;
    wait_text(&c, "state-web", "disabled").await;
    wait_text(&c, "state-db", "disabled").await;
    desktop.xdotool(&["mousemove", &cx, &cy, "click", "1"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    desktop.xdotool(&[
        "key", "Down", "Down", "Down", "Down", "Down", "Down", "Return",
    ]);
    wait_text(&c, "state-web", "active").await;
    wait_text(&c, "state-db", "active").await;
    eprintln!("webdriver: a forward from its profile's submenu");
    // The profile is a submenu: the whole profile, then each of its forwards. Right opens
    // it on its first item ("All of it"); one down is echo.
    desktop.xdotool(&["mousemove", &cx, &cy, "click", "1"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    desktop.xdotool(&["key", "Down", "Right"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    desktop.xdotool(&["key", "Down", "Return"]);
    wait_text(&c, "state-echo", "disabled").await;
    wait_text(&c, "state-web", "active").await;
    eprintln!("webdriver: a starred forward heads the tray menu");
    // Starred in the window, db is the menu's first item: one down reaches it.
    click(&c, "star-db").await;
    let starred = c
        .find(Locator::Css(&css("star-db")))
        .await
        .expect("db's star");
    let deadline = Instant::now() + Duration::from_secs(15);
    while starred.attr("aria-pressed").await.ok().flatten().as_deref() != Some("true") {
        assert!(Instant::now() < deadline, "db was never starred");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    desktop.xdotool(&["mousemove", &cx, &cy, "click", "1"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    desktop.xdotool(&["key", "Down", "Return"]);
    wait_text(&c, "state-db", "disabled").await;
    wait_text(&c, "state-web", "active").await;
    c.close().await.unwrap();
    // The first app must be gone, or the second launch would only focus it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let app = env!("CARGO_BIN_EXE_ferry-app");
    while common::app_runs_on(app, &store) {
        assert!(Instant::now() < deadline, "the first app did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }

    eprintln!("webdriver: second run");
    // --- second run, without --demo: the added forward was kept, and the demo cluster
    // starts again because saved forwards use it.
    // A fresh driver on a fresh session bus: the first app's WebKitWebDriver and the bus
    // that held its single-instance name go with it. (With the same driver, one run in
    // several under load never launched the second app and waited forever.)
    drop(driver);
    let driver = Driver::start(&desktop, &store, &data);
    let c = driver.open_app(&[]).await;
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(&css("forward-row-added")))
        .await
        .expect("the added forward survives a restart");
    wait_text(&c, "state-added", "active").await;
    eprintln!("webdriver: quit");
    // Quit from the window (a desktop may have no tray): the app stops and exits.
    let added = local_addr(&c, "added").await;
    // The click is made by the page a moment after this call returns: the app exits
    // before WebDriver could answer a click it made itself (seen hanging on a busy machine).
    c.find(Locator::Css(&css("quit")))
        .await
        .expect("the Quit button");
    c.execute(
        "setTimeout(() => document.querySelector('[data-testid=\"quit\"]').click(), 200); return true;",
        vec![],
    )
    .await
    .expect("the page takes the script");
    let deadline = Instant::now() + Duration::from_secs(15);
    while common::app_runs_on(app, &store) {
        assert!(Instant::now() < deadline, "Quit did not end the app");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        tokio::net::TcpStream::connect(added).await.is_err(),
        "{added} still accepts after Quit"
    );
    // The session's browser is gone with the app: do not wait long for WebDriver.
    let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
}
