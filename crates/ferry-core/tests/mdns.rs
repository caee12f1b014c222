//! `<alias>.local` names over mDNS, and forwards on several loopback addresses.
//!
//! Multicast must never leave this machine: every test here re-runs itself inside a
//! network namespace of its own (`unshare --net`) with only `lo`, multicast switched on
//! and 224.0.0.0/4 routed to it. The fake cluster, the engine and the resolver all run in
//! that namespace.

// The answers are awaited on mdns-sd's blocking channels, outside the runtime: the
// standard clock bounds those waits.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{active, config, echo_once, fake, fwd, options, wait_for};
use ferry_core::Engine;
use ferry_core::config::{PortRef, ProbeKind};
use ferry_core::mdns::SERVICE_TYPE;
use mdns_sd::{HostnameResolutionEvent, ServiceDaemon, ServiceEvent, ServiceInfo};

const INSIDE: &str = "FERRY_TEST_NETNS";

/// Runs `test` in a network namespace of its own with multicast on `lo` (see
/// [`common::in_netns`]).
fn in_netns(test: &str) -> bool {
    common::in_netns(
        test,
        INSIDE,
        &[
            &["link", "set", "lo", "up"],
            &["link", "set", "lo", "multicast", "on"],
            &["route", "add", "224.0.0.0/4", "dev", "lo"],
        ],
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The addresses a fresh resolver (empty cache) finds for `host` within `wait`.
fn resolve(host: &str, wait: Duration) -> HashSet<IpAddr> {
    let daemon = ServiceDaemon::new().expect("resolver daemon");
    let rx = daemon
        .resolve_hostname(host, Some(wait.as_millis() as u64))
        .expect("resolve");
    let mut found = HashSet::new();
    let deadline = std::time::Instant::now() + wait + Duration::from_millis(200);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(HostnameResolutionEvent::AddressesFound(_, addrs)) => {
                found.extend(addrs.iter().map(|a| a.to_ip_addr()));
                break;
            }
            Ok(HostnameResolutionEvent::SearchTimeout(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = daemon.shutdown();
    found
}

#[test]
fn aliases_resolve_while_enabled_and_are_withdrawn() {
    if !in_netns("aliases_resolve_while_enabled_and_are_withdrawn") {
        return;
    }
    runtime().block_on(async {
        let f = fake("ferry-fake").await.expect("fake cluster");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut echo = fwd("echo", "service/echo", PortRef::Number(80));
        echo.alias = Some("echo".into());
        echo.health.kind = ProbeKind::None;
        let mut db_a = fwd("db-a", "pod/db-0", PortRef::Number(5432));
        db_a.bind = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        db_a.local_port = port;
        db_a.alias = Some("db-a".into());
        let mut db_b = fwd("db-b", "statefulset/db", PortRef::Name("pg".into()));
        db_b.bind = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        db_b.local_port = port;
        let engine = Engine::start(
            config(vec![echo.clone(), db_a.clone(), db_b.clone()]),
            options(vec![f.kubeconfig.clone()]),
        )
        .expect("engine");
        let echo_addr = active(&engine, "echo").await.expect("echo active");
        let a = active(&engine, "db-a").await.expect("db-a active");
        let b = active(&engine, "db-b").await.expect("db-b active");
        assert_eq!(
            (a.port(), b.port()),
            (port, port),
            "same port, two loopback addresses"
        );
        assert_eq!(
            echo_once(a, b"to db-a").await.expect("db-a echo"),
            b"to db-a"
        );
        assert_eq!(
            echo_once(b, b"to db-b").await.expect("db-b echo"),
            b"to db-b"
        );

        let s = wait_for(&engine, "echo", "url", |s| s.url.is_some())
            .await
            .expect("status");
        assert_eq!(s.alias.as_deref(), Some("echo.local"));
        assert_eq!(
            s.url,
            Some(format!("http://echo.local:{}", echo_addr.port()))
        );
        assert!(!s.exposed);
        let found = resolve("echo.local.", Duration::from_secs(3));
        assert!(
            found.contains(&echo_addr.ip()),
            "echo.local resolves to {found:?}"
        );
        let found = resolve("db-a.local.", Duration::from_secs(3));
        assert!(
            found.contains(&IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
            "db-a.local: {found:?}"
        );

        // A reload that keeps the alias does not re-announce it: a browser sees no goodbye.
        let browser = ServiceDaemon::new().expect("browser");
        let events = browser.browse(SERVICE_TYPE).expect("browse");
        let mut extra = fwd("extra", "pod/solo", PortRef::Number(9000));
        extra.health.kind = ProbeKind::None;
        engine
            .apply(config(vec![
                echo.clone(),
                db_a.clone(),
                db_b.clone(),
                extra,
            ]))
            .await
            .expect("reload");
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            if let Ok(ServiceEvent::ServiceRemoved(_, name)) =
                events.recv_timeout(Duration::from_millis(100))
            {
                panic!("{name} was withdrawn by a reload that kept it");
            }
        }

        // Two forwards with one alias: refused, naming the loser.
        let mut twin = fwd("twin", "pod/solo", PortRef::Number(9000));
        twin.alias = Some("echo".into());
        let err = engine
            .apply(config(vec![echo.clone(), twin]))
            .await
            .expect_err("a shared alias is refused");
        assert!(err.to_string().contains("forwards[1].alias"), "{err}");

        // Disabling withdraws the name with a goodbye.
        engine.disable("echo").await.expect("disable");
        let mut goodbye = false;
        let started = std::time::Instant::now();
        while !goodbye && started.elapsed() < Duration::from_secs(3) {
            if let Ok(ServiceEvent::ServiceRemoved(_, name)) =
                events.recv_timeout(Duration::from_millis(100))
            {
                goodbye = name.starts_with("echo.");
            }
        }
        assert!(goodbye, "a goodbye for echo");
        assert!(
            resolve("echo.local.", Duration::from_millis(1500)).is_empty(),
            "echo.local is gone"
        );
        let _ = browser.shutdown();

        engine.shutdown().await;
        assert!(
            resolve("db-a.local.", Duration::from_millis(1500)).is_empty(),
            "db-a.local is gone after shutdown"
        );
    });
}

#[test]
fn an_alias_another_host_answers_for_is_a_warning_not_a_failure() {
    if !in_netns("an_alias_another_host_answers_for_is_a_warning_not_a_failure") {
        return;
    }
    runtime().block_on(async {
        let f = fake("ferry-fake").await.expect("fake cluster");
        let other = ServiceDaemon::new().expect("another host");
        let info = ServiceInfo::new(
            "_other._tcp.local.",
            "taken",
            "taken.local.",
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
            1234,
            None::<std::collections::HashMap<String, String>>,
        )
        .expect("service info");
        other.register(info).expect("register");
        tokio::time::sleep(Duration::from_millis(500)).await;

        let mut solo = fwd("solo", "pod/solo", PortRef::Number(9000));
        solo.alias = Some("taken".into());
        solo.health.kind = ProbeKind::None;
        let engine =
            Engine::start(config(vec![solo]), options(vec![f.kubeconfig.clone()])).expect("engine");
        let addr = active(&engine, "solo")
            .await
            .expect("solo works all the same");
        let s = wait_for(&engine, "solo", "an alias warning", |s| {
            s.alias_warning.is_some()
        })
        .await
        .expect("warning");
        let w = s.alias_warning.unwrap_or_default();
        assert!(
            w.contains("taken.local is already answered by another host (127.0.0.9)"),
            "{w}"
        );
        assert_eq!(
            echo_once(addr, b"still forwards").await.expect("echo"),
            b"still forwards"
        );
        engine.shutdown().await;
        let _ = other.shutdown();
    });
}
