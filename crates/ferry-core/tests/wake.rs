//! What the system tells about sleep and the network, heard for real on Linux:
//!
//! - logind's `PrepareForSleep(false)`, sent on a private bus (`dbus-daemon`) by this test
//!   standing in for logind;
//! - an address added to `lo` inside a network namespace of the test's own
//!   (`unshare --net`), so that no real interface is touched;
//! - and the clock comparison, as a pure function.
//!
//! Needs `dbus-daemon` (package `dbus`), `ip` (`iproute2`) and `unshare` (`util-linux`),
//! run as root or with user namespaces: `scripts/setup` installs them.

// Child processes are awaited outside the runtime: the standard clock bounds those waits.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use ferry_core::wake::{Clocks, JUMP, slept};

// === The clocks ===

fn clocks(awake: u64, passed: u64) -> Clocks {
    Clocks {
        awake: Duration::from_secs(awake),
        passed: Duration::from_secs(passed),
    }
}

/// Two readings (seconds: the clock that stops while asleep, the one that runs on) and
/// how long the machine slept between them, if that is a wake.
#[track_caller]
fn check(before: (u64, u64), now: (u64, u64), expect: Option<u64>) {
    let got = slept(clocks(before.0, before.1), clocks(now.0, now.1));
    assert_eq!(
        got,
        expect.map(Duration::from_secs),
        "{before:?} then {now:?}"
    );
}

#[test]
fn the_clocks_tell_a_sleep_from_a_busy_tick() {
    // A tick on time: both clocks moved on alike.
    check((100, 200), (102, 202), None);
    // A late tick (a busy machine) moves both alike too.
    check((100, 200), (160, 260), None);
    // Asleep one hour between two ticks.
    check((100, 200), (102, 3802), Some(3600));
    // Asleep a little longer than JUMP is a wake, exactly JUMP is not.
    assert_eq!(JUMP, Duration::from_secs(5));
    check((100, 200), (102, 208), Some(6));
    check((100, 200), (102, 207), None);
    // The wall clock (the fallback's second clock) set back is no wake.
    check((100, 200), (102, 50), None);
    // Readings taken in the other order (never happens) are no wake either.
    check((100, 200), (90, 190), None);
}

// === logind ===

#[cfg(target_os = "linux")]
mod logind {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use ferry_core::wake::Trigger;
    use ferry_core::wake::logind::{INTERFACE, Logind, PATH, SERVICE, SIGNAL};
    use tokio::sync::mpsc;

    /// A private bus of our own, ended on drop.
    struct Bus {
        address: String,
        daemon: Child,
    }

    impl Drop for Bus {
        fn drop(&mut self) {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }

    impl Bus {
        fn start() -> Bus {
            let mut daemon = Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("dbus-daemon runs (package dbus; scripts/setup installs it)");
            let mut line = String::new();
            BufReader::new(daemon.stdout.take().expect("its stdout"))
                .read_line(&mut line)
                .expect("dbus-daemon prints its address");
            let bus = Bus {
                address: line.trim().to_string(),
                daemon,
            };
            assert!(
                bus.address.starts_with("unix:"),
                "dbus-daemon printed {line:?}"
            );
            bus
        }

        async fn connect(&self) -> zbus::Connection {
            zbus::connection::Builder::address(self.address.as_str())
                .expect("the address parses")
                .build()
                .await
                .expect("a connection to the private bus")
        }
    }

    /// What logind says on the bus: `PrepareForSleep(start)`.
    async fn prepare_for_sleep(logind: &zbus::Connection, start: bool) {
        logind
            .emit_signal(None::<&str>, PATH, INTERFACE, SIGNAL, &start)
            .await
            .expect("the signal is sent");
    }

    #[tokio::test]
    async fn logind_saying_the_machine_resumed_is_a_wake() {
        let bus = Bus::start();
        // This connection stands in for logind: it owns logind's name.
        let logind = bus.connect().await;
        logind
            .request_name(SERVICE)
            .await
            .expect("logind's name on the private bus");

        let listening = Logind::subscribe(&bus.connect().await)
            .await
            .expect("a subscription");
        let (tx, mut rx) = mpsc::channel(4);
        let watcher = tokio::spawn(listening.run(tx));

        // Going to sleep says nothing yet.
        prepare_for_sleep(&logind, true).await;
        let early = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(early.is_err(), "going to sleep is no wake: {early:?}");

        prepare_for_sleep(&logind, false).await;
        let heard = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
        assert_eq!(heard, Ok(Some(Trigger::Woke)), "a wake within a second");

        // Another sender on the bus saying the same is not logind: not heard.
        let other = bus.connect().await;
        prepare_for_sleep(&other, false).await;
        let spoofed = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(spoofed.is_err(), "only logind is believed: {spoofed:?}");

        // The bus going away ends the watcher quietly.
        drop(bus);
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("the watcher ends with the bus")
            .expect("the watcher does not panic");
    }
}

// === Network changes ===

#[cfg(target_os = "linux")]
mod netns {
    use std::process::Command;
    use std::time::Duration;

    use ferry_core::wake::{Trigger, watch_network};
    use tokio::sync::mpsc;

    const INSIDE: &str = "FERRY_TEST_WAKE_NETNS";

    /// Runs `test` in a network namespace of its own with `lo` up.
    fn in_netns(test: &str) -> bool {
        super::common::in_netns(test, INSIDE, &[&["link", "set", "lo", "up"]])
    }

    fn ip(args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("ip runs");
        assert!(status.success(), "ip {args:?} failed inside the namespace");
    }

    #[test]
    fn an_address_coming_and_going_is_a_network_change() {
        let test = "netns::an_address_coming_and_going_is_a_network_change";
        if !in_netns(test) {
            return;
        }
        let quiet = Duration::from_millis(200);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async {
                let (tx, mut rx) = mpsc::channel(16);
                let watcher = tokio::spawn(watch_network(tx, quiet));
                // What is there at the start (lo's own addresses) is no change.
                let start = tokio::time::timeout(quiet * 3, rx.recv()).await;
                assert!(start.is_err(), "lo's addresses are no change: {start:?}");

                ip(&["addr", "add", "127.0.0.9/8", "dev", "lo"]);
                let added = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
                assert_eq!(added, Ok(Some(Trigger::NetworkChanged)), "an address added");

                ip(&["addr", "del", "127.0.0.9/8", "dev", "lo"]);
                let removed = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
                assert_eq!(
                    removed,
                    Ok(Some(Trigger::NetworkChanged)),
                    "an address removed"
                );
                watcher.abort();
            });
    }
}
