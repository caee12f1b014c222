//! The engine against the fake cluster: forwarding through every target kind, healing
//! through pod churn and faults, half-close, concurrency, reload, and a storm of
//! concurrent calls.

mod common;

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use common::{active, config, echo_once, fake, fwd, http_get, options, wait_for};
use ferry_core::config::{Pick, PortRef};
use ferry_core::events::ForwardState;
use ferry_core::{Engine, EngineOptions};
use ferry_fakecluster::Behavior;
use ferry_fakecluster::cluster::pod_is_ready;
use ferry_fakecluster::kind::Kind;
use rand::{Rng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_through_every_target_kind_by_number_and_name() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let forwards = vec![
        fwd("pod-solo", "pod/solo", PortRef::Number(9000)),
        fwd("svc-echo", "service/echo", PortRef::Number(80)),
        fwd(
            "deploy-echo",
            "deployment/echo",
            PortRef::Name("echo".into()),
        ),
        fwd("sts-db", "statefulset/db", PortRef::Name("pg".into())),
        fwd("svc-db", "svc/db", PortRef::Number(5432)),
        fwd("deploy-web", "deploy/web", PortRef::Name("http".into())),
        fwd("svc-web", "service/web", PortRef::Number(80)),
    ];
    let engine = Engine::start(config(forwards), options(vec![f.kubeconfig.clone()]))?;
    for name in ["pod-solo", "svc-echo", "deploy-echo", "sts-db", "svc-db"] {
        let addr = active(&engine, name).await?;
        let data = format!("through {name}").repeat(1000).into_bytes();
        assert_eq!(echo_once(addr, &data).await?, data, "{name}");
    }
    for name in ["deploy-web", "svc-web"] {
        let addr = active(&engine, name).await?;
        let text = http_get(addr, "/").await?;
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text}");
        assert!(text.contains("hello from web-"), "{name}: {text}");
    }
    let snap = engine.snapshot().await?;
    let db = snap.get("sts-db").expect("listed");
    assert_eq!(db.pod.as_deref(), Some("db-0"));
    assert_eq!(db.context.as_deref(), Some("ferry-fake"));
    assert!(
        db.bytes_in > 0 && db.bytes_out > 0 && db.total_connections == 1,
        "{db:?}"
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_request_and_upgrade_says_it_is_ferry() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let engine = Engine::start(
        config(vec![fwd("echo", "service/echo", PortRef::Number(80))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "echo").await?;
    assert_eq!(echo_once(addr, b"who").await?, b"who");
    let agents = f.fake.requests().agents();
    let ours = ferry_core::cluster::user_agent();
    let ferry = agents
        .iter()
        .find(|a| a.user_agent == ours)
        .ok_or_else(|| anyhow::anyhow!("no request said {ours}: {agents:?}"))?;
    assert!(ferry.api > 0, "{agents:?}");
    assert!(ferry.upgrades > 0, "{agents:?}");
    // Nothing reached the API server without saying who it is.
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert!(
        ours.starts_with("ferry/") && ours.contains(" (") && ours.ends_with(')'),
        "{ours}"
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_forward_can_name_the_pods_port() -> anyhow::Result<()> {
    // kftray's and kportal's meaning of a service port: the pods' port (echo: 80 → 9000).
    let f = fake("ferry-fake").await?;
    let mut pods = fwd("pods", "service/echo", PortRef::Number(9000));
    pods.pod_port = true;
    let not_served = {
        let mut f = fwd("nothing", "service/echo", PortRef::Number(9999));
        f.pod_port = true;
        f
    };
    let engine = Engine::start(
        config(vec![pods, not_served]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "pods").await?;
    assert_eq!(echo_once(addr, b"to the pods").await?, b"to the pods");
    let snap = engine.snapshot().await?;
    let status = snap
        .get("pods")
        .ok_or_else(|| anyhow::anyhow!("no status"))?;
    assert!(
        status
            .pod
            .as_deref()
            .is_some_and(|p| p.starts_with("echo-")),
        "{status:?}"
    );
    // A port the pods do not listen on is the pods' refusal, not a missing service port.
    let nothing = wait_for(&engine, "nothing", "a refusal", |s| {
        s.last_error.is_some() || s.state == ForwardState::Degraded
    })
    .await?;
    assert!(
        !nothing
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("has no port"),
        "{nothing:?}"
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_target_being_replaced_is_reconnecting_never_an_error() -> anyhow::Result<()> {
    use ferry_core::events::Event;
    let f = fake("ferry-fake").await?;
    let engine = Engine::start(
        config(vec![fwd("db", "pod/db-0", PortRef::Number(5432))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "db").await?;
    let mut sub = engine.subscribe();
    f.fake.cluster().delete_pod("demo", "db-0")?;
    // Every state the forward passes through until it carries bytes again.
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "never back: {states:?}");
        match timeout(Duration::from_millis(200), sub.events.recv()).await {
            Ok(Ok(Event::Forward { status }))
                if status.forward == "db" && states.last() != Some(&status.state) =>
            {
                states.push(status.state);
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                anyhow::bail!("events ended")
            }
            _ => {}
        }
        if states.contains(&ForwardState::Reconnecting)
            && states.last() == Some(&ForwardState::Active)
        {
            break;
        }
    }
    println!("states while db-0 was replaced: {states:?}");
    assert!(!states.contains(&ForwardState::Error), "{states:?}");
    assert_eq!(echo_once(addr, b"back").await?, b"back");
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_replaced_without_dropping_the_port() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let engine = Engine::start(
        config(vec![fwd("db", "statefulset/db", PortRef::Number(5432))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "db").await?;
    assert_eq!(echo_once(addr, b"before").await?, b"before");
    let old_uid = f.fake.cluster().get(Kind::Pod, "demo", "db-0")?["metadata"]["uid"].clone();
    f.fake.cluster().delete_pod("demo", "db-0")?;

    // The local port stays bound while there is no pod: connecting still works.
    let cluster = f.fake.cluster().clone();
    let mut ready_at = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready_at.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "db-0 never came back");
        let probe = TcpStream::connect(addr).await;
        assert!(
            probe.is_ok(),
            "the local port must stay bound during the heal"
        );
        if let Ok(p) = cluster.get(Kind::Pod, "demo", "db-0")
            && p["metadata"]["uid"] != old_uid
            && pod_is_ready(&p)
        {
            ready_at = Some(Instant::now());
        }
        sleep(Duration::from_millis(10)).await;
    }
    let ready_at = ready_at.unwrap_or_else(Instant::now);
    // A new connection succeeds within 1 s of the replacement being Ready.
    let got = timeout(Duration::from_secs(5), echo_once(addr, b"after")).await??;
    assert_eq!(got, b"after");
    let healed = ready_at.elapsed();
    assert!(
        healed <= Duration::from_secs(1),
        "healed {healed:?} after the replacement was Ready"
    );
    wait_for(&engine, "db", "active again", |s| {
        s.state == ForwardState::Active && s.pod.as_deref() == Some("db-0")
    })
    .await?;
    engine.shutdown().await;
    Ok(())
}

/// The pod that answered `GET /` through `addr` ("hello from POD").
async fn who_answers(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let text = timeout(Duration::from_secs(20), http_get(addr, "/")).await??;
    text.lines()
        .find_map(|l| l.strip_prefix("hello from "))
        .map(|p| p.trim().to_string())
        .ok_or_else(|| anyhow::anyhow!("no greeting in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_opened_tunnels_never_reach_a_pod_that_went() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let engine = Engine::start(
        config(vec![fwd("web", "deployment/web", PortRef::Number(8080))]),
        EngineOptions {
            pre_open_tunnels: true,
            ..options(vec![f.kubeconfig.clone()])
        },
    )?;
    let addr = active(&engine, "web").await?;
    // In use: the forward opens tunnels ahead of the next connections.
    let old = who_answers(addr).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.fake.cluster().tunnels_to("demo", &old) < 3 {
        anyhow::ensure!(Instant::now() < deadline, "no tunnels were opened ahead");
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(who_answers(addr).await?, old, "sticky");
    f.fake.cluster().delete_pod("demo", &old)?;
    // Every connection from now on is answered by the replacement: one handed a
    // pre-opened tunnel to the old pod before the forward noticed the deletion moves to a
    // fresh tunnel and its request is sent again.
    for i in 0..8 {
        let who = who_answers(addr).await?;
        assert_ne!(who, old, "connection {i} went to the deleted pod");
    }
    engine.shutdown().await;
    Ok(())
}

/// A pod that takes a request and closes without a word is not sent the request again:
/// only a pod that went is (the connection then moves to another one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_closes_without_answering_gets_each_request_once() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    // The pod relays to this server: it reads one request, counts it, and hangs up.
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = server.local_addr()?;
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = server.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut req = [0u8; 7];
                // Health probes connect and send nothing: not requests.
                if s.read_exact(&mut req).await.is_ok() && &req == b"request" {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    f.fake
        .cluster()
        .set_behavior("demo", "solo", &Behavior::Proxy(server_addr))?;
    let engine = Engine::start(
        config(vec![fwd("solo", "pod/solo", PortRef::Number(9000))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "solo").await?;
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"request").await?;
        let mut rest = Vec::new();
        timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .map_err(|_| anyhow::anyhow!("the connection was not closed"))??;
        assert!(rest.is_empty(), "the server said nothing: {rest:?}");
    }
    sleep(Duration::from_millis(200)).await;
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "each request reached the server once"
    );
    engine.shutdown().await;
    Ok(())
}

/// Pods deleted one after another under steady traffic: every connection gets its whole
/// answer. Connections that were handed a tunnel (pre-opened or fresh) to a pod in the
/// instant it went move to a fresh tunnel and send their bytes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_is_lost_while_pods_are_deleted_under_traffic() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let engine = Engine::start(
        config(vec![fwd("echo", "service/echo", PortRef::Number(80))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "echo").await?;
    let stop = Instant::now() + Duration::from_secs(4);
    let mut clients = Vec::new();
    for c in 0..4 {
        clients.push(tokio::spawn(async move {
            let mut done = 0u32;
            let mut failed = Vec::new();
            while Instant::now() < stop {
                let msg = format!("client {c} request {done}").into_bytes();
                match timeout(Duration::from_secs(20), echo_once(addr, &msg)).await {
                    Ok(Ok(got)) if got == msg => {}
                    other => failed.push(format!("{msg:?}: {other:?}")),
                }
                done += 1;
            }
            (done, failed)
        }));
    }
    // Delete the pod in use every 250 ms.
    let mut deleted = 0;
    while Instant::now() < stop {
        sleep(Duration::from_millis(250)).await;
        let snap = engine.snapshot().await?;
        if let Some(pod) = snap.get("echo").and_then(|s| s.pod.clone())
            && f.fake.cluster().delete_pod("demo", &pod).is_ok()
        {
            deleted += 1;
        }
    }
    let mut total = 0;
    for c in clients {
        let (done, failed) = c.await?;
        total += done;
        assert!(failed.is_empty(), "lost connections: {failed:#?}");
    }
    assert!(deleted >= 4, "only {deleted} pods deleted");
    assert!(total >= 40, "only {total} connections made");
    eprintln!("{total} connections, {deleted} pods deleted, none lost");
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_recover_from_faults_and_say_what_happened() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let engine = Engine::start(
        config(vec![fwd("echo", "service/echo", PortRef::Number(80))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "echo").await?;

    // Dropped tunnels: the open connection ends, the next one works.
    let mut open = TcpStream::connect(addr).await?;
    open.write_all(b"x").await?;
    let mut one = [0u8; 1];
    open.read_exact(&mut one).await?;
    f.fake.faults().drop_tunnels();
    let mut rest = Vec::new();
    let ended = timeout(Duration::from_secs(5), open.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the dropped tunnel's connection ends");
    assert_eq!(echo_once(addr, b"after drop").await?, b"after drop");

    // Refused upgrades for 3 s: a connection made meanwhile waits and then goes through.
    // The tunnels the forward pre-opened while in use are cut too, so none is at hand.
    f.fake.faults().refuse_portforward(Duration::from_secs(3));
    f.fake.faults().drop_tunnels();
    sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(echo_once(addr, b"patient").await?, b"patient");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited out the refusal"
    );
    let s = engine.snapshot().await?;
    let last = s
        .get("echo")
        .and_then(|s| s.last_error.clone())
        .unwrap_or_default();
    assert!(
        last.contains("injected portforward refusal"),
        "the refusal is remembered: {last}"
    );

    // API 500s until the server is well again: the forward reports it, then recovers on
    // its own. Connections made meanwhile go through the pod's session, open since the
    // last one (no upgrade is needed, as with kubectl). The failure lasts until cleared,
    // so a slow machine cannot outlast it before the upgrade below is tried.
    f.fake.faults().fail_api(Duration::from_secs(600));
    let during = timeout(Duration::from_secs(2), echo_once(addr, b"during")).await;
    assert!(
        matches!(&during, Ok(Ok(b)) if b == b"during"),
        "a connection while the API fails uses the open session: {during:?}"
    );
    // With the session cut too, a new connection needs an upgrade, which fails: the
    // forward looks again and says so.
    f.fake.faults().drop_tunnels();
    let waiting = tokio::spawn(echo_once(addr, b"x"));
    let s = wait_for(&engine, "echo", "reconnecting", |s| {
        s.state == ForwardState::Reconnecting
    })
    .await?;
    assert!(
        s.error
            .as_deref()
            .unwrap_or_default()
            .contains("Internal error"),
        "{s:?}"
    );
    f.fake.faults().clear();
    let s = wait_for(&engine, "echo", "active again", |s| {
        s.state == ForwardState::Active
    })
    .await?;
    assert!(s.error.is_none());
    assert!(s.last_error.is_some(), "what happened is kept: {s:?}");
    assert_eq!(echo_once(addr, b"recovered").await?, b"recovered");
    // The connection made while nothing could open waited and went through.
    assert_eq!(timeout(Duration::from_secs(30), waiting).await???, b"x");
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_still_receives_everything() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let engine = Engine::start(
        config(vec![fwd("echo", "service/echo", PortRef::Number(80))]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr = active(&engine, "echo").await?;
    let mut data = vec![0u8; 100_000];
    rand::rng().fill_bytes(&mut data);
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(&data).await?;
    s.shutdown().await?;
    let mut back = vec![0u8; data.len()];
    timeout(Duration::from_secs(10), s.read_exact(&mut back)).await??;
    assert!(
        back == data,
        "all 100 kB came back after the client's half-close"
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_connections_round_robin_over_both_pods() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let mut forward = fwd("echo", "service/echo", PortRef::Number(80));
    forward.pick = Pick::RoundRobin;
    let engine = Engine::start(config(vec![forward]), options(vec![f.kubeconfig.clone()]))?;
    let addr = active(&engine, "echo").await?;
    let tasks = (0..64u8).map(|i| async move {
        let mut data = vec![i; 1024 * 1024];
        rand::rng().fill_bytes(&mut data[..1024]);
        let got = echo_once(addr, &data).await?;
        anyhow::ensure!(got == data, "connection {i} got the wrong bytes");
        Ok(())
    });
    futures::future::try_join_all(tasks).await?;
    let (_, pods) = f.fake.cluster().list(Kind::Pod, Some("demo"));
    let echo_pods: Vec<String> = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "echo")
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(echo_pods.len(), 2);
    for pod in &echo_pods {
        let n = f.fake.cluster().tunnels_to("demo", pod);
        assert!(n >= 16, "{pod} served {n} of 64 connections");
    }
    let s = engine.snapshot().await?;
    let echo = s.get("echo").expect("listed");
    assert_eq!(echo.total_connections, 64);
    assert_eq!(echo.bytes_out, 64 * 1024 * 1024);
    engine.shutdown().await;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_concurrent_calls_ends_consistent_and_frees_every_port() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let mut base = Vec::new();
    for (i, target) in [
        "pod/solo",
        "service/echo",
        "statefulset/db",
        "service/web",
        "deployment/echo",
        "pod/db-0",
    ]
    .iter()
    .enumerate()
    {
        let port = match *target {
            "statefulset/db" | "pod/db-0" => PortRef::Number(5432),
            "service/echo" | "service/web" => PortRef::Number(80),
            _ => PortRef::Number(9000),
        };
        let mut forward = fwd(&format!("f{i}"), target, port);
        forward.local_port = free_port()?;
        base.push(forward);
    }
    let ports: Vec<u16> = base.iter().map(|f| f.local_port).collect();
    let engine = Arc::new(Engine::start(
        config(base.clone()),
        options(vec![f.kubeconfig.clone()]),
    )?);
    let tasks = (0..8).map(|t| {
        let engine = engine.clone();
        let base = base.clone();
        tokio::spawn(async move {
            for _ in 0..63 {
                let op = rand::rng().random_range(0..3);
                let name = format!("f{}", rand::rng().random_range(0..base.len()));
                let result = match op {
                    0 => engine.enable(&name).await.map(|_| ()),
                    1 => engine.disable(&name).await.map(|_| ()),
                    _ => {
                        let mut next = base.clone();
                        for f in &mut next {
                            f.enabled = rand::rng().random_bool(0.5);
                        }
                        if rand::rng().random_bool(0.3) {
                            next.pop();
                        }
                        engine.apply(config(next)).await.map(|_| ())
                    }
                };
                if let Err(e) = result {
                    // Enabling a forward a concurrent apply removed is a fine answer.
                    assert!(e.to_string().contains("no forward named"), "task {t}: {e}");
                }
            }
        })
    });
    for t in futures::future::join_all(tasks).await {
        t?;
    }
    let cfg = engine.config().await?;
    let snap = engine.snapshot().await?;
    assert_eq!(snap.forwards.len(), cfg.forwards.len());
    for f in &cfg.forwards {
        let s = snap
            .get(&f.name)
            .expect("every configured forward is in the snapshot");
        assert_eq!(
            s.state == ForwardState::Disabled,
            !f.enabled,
            "{f:?} vs {s:?}"
        );
    }
    let engine = Arc::into_inner(engine).ok_or_else(|| anyhow::anyhow!("engine still shared"))?;
    engine.shutdown().await;
    for port in ports {
        assert!(
            StdListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is free after shutdown"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_at_once_and_one_stops() -> anyhow::Result<()> {
    let a = fake("alpha").await?;
    let b = fake("beta").await?;
    let mut fa = fwd("a-solo", "pod/solo", PortRef::Number(9000));
    fa.context = Some("alpha".into());
    let mut fb = fwd("b-solo", "pod/solo", PortRef::Number(9000));
    fb.context = Some("beta".into());
    let engine = Engine::start(
        config(vec![fa, fb]),
        options(vec![a.kubeconfig.clone(), b.kubeconfig.clone()]),
    )?;
    let addr_a = active(&engine, "a-solo").await?;
    let addr_b = active(&engine, "b-solo").await?;
    assert_eq!(echo_once(addr_a, b"alpha").await?, b"alpha");
    a.fake.shutdown().await;
    // A connection on the stopped cluster's forward cannot get through; it makes the
    // forward notice.
    let _ = timeout(Duration::from_millis(500), echo_once(addr_a, b"x")).await;
    let s = wait_for(&engine, "a-solo", "reconnecting", |s| {
        s.state == ForwardState::Reconnecting
    })
    .await?;
    assert!(s.error.is_some(), "{s:?}");
    assert_eq!(
        echo_once(addr_b, b"beta keeps working").await?,
        b"beta keeps working"
    );
    let snap = engine.snapshot().await?;
    assert_eq!(
        snap.get("b-solo").map(|s| s.state),
        Some(ForwardState::Active)
    );
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_only_the_changed_forward() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let a = fwd("a", "service/echo", PortRef::Number(80));
    let b = fwd("b", "pod/solo", PortRef::Number(9000));
    let engine = Engine::start(
        config(vec![a.clone(), b.clone()]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let addr_a = active(&engine, "a").await?;
    let addr_b = active(&engine, "b").await?;

    let mut stream = TcpStream::connect(addr_b).await?;
    stream.write_all(b"before reload;").await?;
    let mut buf = [0u8; 14];
    stream.read_exact(&mut buf).await?;

    let mut a2 = a.clone();
    a2.local_port = free_port()?;
    let report = engine.apply(config(vec![a2.clone(), b.clone()])).await?;
    assert_eq!(report.restarted, vec!["a".to_string()]);
    assert_eq!(report.unchanged, vec!["b".to_string()]);
    assert!(
        report.started.is_empty() && report.stopped.is_empty(),
        "{report:?}"
    );

    // The open connection on `b` keeps streaming across the reload.
    stream.write_all(b"after reload").await?;
    let mut buf = [0u8; 12];
    timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"after reload");

    let new_a = wait_for(&engine, "a", "active on the new port", |s| {
        s.state == ForwardState::Active && s.local.map(|l| l.port()) == Some(a2.local_port)
    })
    .await?;
    assert_ne!(new_a.local, Some(addr_a));
    assert!(StdListener::bind(addr_a).is_ok(), "the old port is free");
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_an_error_on_that_forward_only() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let taken = StdListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let mut busy = fwd("busy", "pod/solo", PortRef::Number(9000));
    busy.local_port = port;
    let fine = fwd("fine", "pod/solo", PortRef::Number(9000));
    let engine = Engine::start(
        config(vec![busy, fine]),
        options(vec![f.kubeconfig.clone()]),
    )?;
    let s = wait_for(&engine, "busy", "error", |s| s.state == ForwardState::Error).await?;
    // The holder is this test process: the error names it, with its process id.
    let me = format!("(pid {})", std::process::id());
    let error = s.error.clone().unwrap_or_default();
    assert!(
        error.starts_with(&format!("127.0.0.1:{port} is already in use by "))
            && error.contains(&me)
            && error.contains("choose another local port"),
        "{error}"
    );
    assert!(s.port_in_use, "{s:?}");
    let addr = active(&engine, "fine").await?;
    assert_eq!(echo_once(addr, b"ok").await?, b"ok");
    // The tunnel check keeps running, but what is shown never says "up" beside the error.
    sleep(Duration::from_secs(2)).await;
    let s = engine
        .snapshot()
        .await?
        .get("busy")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("busy is gone"))?;
    assert_eq!(s.state, ForwardState::Error);
    assert_eq!(s.health, ferry_core::events::HealthState::Unknown, "{s:?}");
    assert_eq!(s.latency_ms, None, "{s:?}");
    // Freed, the port is taken and the error goes.
    drop(taken);
    let s = wait_for(&engine, "busy", "active once the port is free", |s| {
        s.state == ForwardState::Active
    })
    .await?;
    assert!(!s.port_in_use && s.error.is_none(), "{s:?}");
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_apply_changes_nothing() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let a = fwd("a", "pod/solo", PortRef::Number(9000));
    let engine = Engine::start(config(vec![a.clone()]), options(vec![f.kubeconfig.clone()]))?;
    let addr = active(&engine, "a").await?;
    let mut bad = a.clone();
    bad.name = "Not A Name".into();
    let err = engine.apply(config(vec![bad])).await.expect_err("invalid");
    assert!(err.to_string().contains("forwards[0].name"), "{err}");
    assert_eq!(engine.config().await?.forwards, vec![a]);
    assert_eq!(echo_once(addr, b"still").await?, b"still");
    let err = engine.enable("nope").await.expect_err("unknown");
    assert_eq!(err.to_string(), "no forward named `nope`");
    engine.shutdown().await;
    Ok(())
}
