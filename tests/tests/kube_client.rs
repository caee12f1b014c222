//! kube-rs (the client Ferry's engine uses) against the fake cluster: port-forward data
//! integrity and concurrency, errors as a real cluster reports them, watches, and faults.

use std::time::Duration;

use ferry_e2e::{Fixture, eventually};
use ferry_fakecluster::kind::Kind;
use ferry_fakecluster::{Behavior, Options};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::watcher;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `data` through a tunnel to an echo port and reads it all back.
async fn echo_round_trip(
    pods: &Api<Pod>,
    pod: &str,
    port: u16,
    data: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let mut pf = pods.portforward(pod, &[port]).await?;
    let stream = pf
        .take_stream(port)
        .ok_or_else(|| anyhow::anyhow!("no stream for {port}"))?;
    let (mut r, mut w) = tokio::io::split(stream);
    let len = data.len();
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; len];
        r.read_exact(&mut got).await.map(|_| got)
    });
    for chunk in data.chunks(128 * 1024) {
        w.write_all(chunk).await?;
    }
    let got = tokio::time::timeout(Duration::from_secs(60), reader).await???;
    // Close our side only after everything came back: kube-rs closes the WebSocket when
    // all its writers are shut down.
    w.shutdown().await?;
    drop(w);
    pf.join().await?;
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portforward_round_trips_ten_mib_exactly() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let pods: Api<Pod> = Api::namespaced(fx.client().await?, "demo");
    let mut data = vec![0u8; 10 * 1024 * 1024];
    rand::rng().fill_bytes(&mut data);
    let got = echo_round_trip(&pods, "solo", 9000, &data).await?;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the echoed bytes differ from the sent ones");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_tunnels_each_get_their_own_data() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let pods: Api<Pod> = Api::namespaced(fx.client().await?, "demo");
    let (_, all) = fx.fake.cluster().list(Kind::Pod, Some("demo"));
    let echo_pods: Vec<String> = all
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "echo" || p["metadata"]["name"] == "solo")
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(echo_pods.len(), 3);
    let tasks = (0..50).map(|i| {
        let pods = pods.clone();
        let pod = echo_pods[i % echo_pods.len()].clone();
        async move {
            let data: Vec<u8> = format!("tunnel {i} says hello;")
                .repeat(2000 + i)
                .into_bytes();
            let got = echo_round_trip(&pods, &pod, 9000, &data).await?;
            anyhow::ensure!(got == data, "tunnel {i} to {pod} got someone else's bytes");
            Ok(())
        }
    });
    futures::future::try_join_all(tasks).await?;
    eventually(Duration::from_secs(5), "every tunnel to close", || {
        fx.fake.faults().open_tunnels() == 0
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portforward_to_a_missing_pod_is_404() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let pods: Api<Pod> = Api::namespaced(fx.client().await?, "demo");
    match pods.portforward("no-such-pod", &[80]).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
            assert!(status.message.contains("no-such-pod"), "{}", status.message);
        }
        Err(other) => panic!("expected a 404 Status, got {other:?}"),
        Ok(_) => panic!("expected a 404, got a tunnel"),
    }
    match pods.get("no-such-pod").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_is_reported_on_the_error_channel_like_kubelet() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let pods: Api<Pod> = Api::namespaced(fx.client().await?, "demo");
    fx.fake
        .cluster()
        .set_behavior("demo", "solo", &Behavior::Refuse)?;
    let mut pf = pods.portforward("solo", &[9000]).await?;
    let err = pf
        .take_error(9000)
        .ok_or_else(|| anyhow::anyhow!("no error channel"))?;
    let message = tokio::time::timeout(Duration::from_secs(5), err)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no error message"))?;
    assert!(message.contains("error forwarding port 9000"), "{message}");
    assert!(message.contains("connection refused"), "{message}");

    // A port the pod does not serve is refused the same way.
    let mut pf = pods.portforward("db-0", &[1234]).await?;
    let err = pf
        .take_error(1234)
        .ok_or_else(|| anyhow::anyhow!("no error channel"))?;
    let message = tokio::time::timeout(Duration::from_secs(5), err)
        .await?
        .unwrap_or_default();
    assert!(message.contains("connection refused"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_behaviour_answers_through_a_tunnel() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let client = fx.client().await?;
    let pods: Api<Pod> = Api::namespaced(client, "demo");
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .ok_or_else(|| anyhow::anyhow!("no web pod"))?;
    let request =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n");
    for (path, expect_status, expect_body) in [
        ("/", "200", Some(format!("hello from {web}"))),
        ("/healthz", "200", Some("ok".to_string())),
        ("/status/503", "503", None),
        ("/nope", "404", None),
    ] {
        let mut pf = pods.portforward(&web, &[8080]).await?;
        let mut s = pf
            .take_stream(8080)
            .ok_or_else(|| anyhow::anyhow!("no stream"))?;
        s.write_all(request(path).as_bytes()).await?;
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut text)).await??;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {expect_status}")),
            "{path}: {text}"
        );
        if let Some(body) = expect_body {
            assert!(text.contains(&body), "{path}: {text}");
        }
    }
    let mut pf = pods.portforward(&web, &[8080]).await?;
    let mut s = pf
        .take_stream(8080)
        .ok_or_else(|| anyhow::anyhow!("no stream"))?;
    s.write_all(request("/bytes?n=3000000").as_bytes()).await?;
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut all)).await??;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no header end"))?
        + 4;
    assert_eq!(all.len() - head_end, 3_000_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_objects_deserialize_and_endpoint_slices_follow_readiness() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let client = fx.client().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get("demo").await?.metadata.name.as_deref() == Some("demo"));
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "demo");
    let echo = deploys.get("echo").await?;
    assert_eq!(echo.status.and_then(|s| s.ready_replicas), Some(2));
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "demo");
    assert_eq!(sts.get("db").await?.spec.and_then(|s| s.replicas), Some(1));
    let svcs: Api<Service> = Api::namespaced(client.clone(), "demo");
    let db = svcs.get("db").await?;
    let port = db.spec.and_then(|s| s.ports).unwrap_or_default();
    assert_eq!(port[0].port, 5432);
    assert_eq!(
        port[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("pg".into()))
    );
    let all_pods: Api<Pod> = Api::all(client.clone());
    assert_eq!(all_pods.list(&ListParams::default()).await?.items.len(), 5);
    let by_name = all_pods
        .list(&ListParams::default().fields("metadata.name=solo"))
        .await?;
    assert_eq!(by_name.items.len(), 1);

    let slices: Api<EndpointSlice> = Api::namespaced(client, "demo");
    let ready_count = |slices: Vec<EndpointSlice>| {
        slices
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count()
    };
    let lp = ListParams::default().labels("kubernetes.io/service-name=echo");
    assert_eq!(ready_count(slices.list(&lp).await?.items), 2);
    let (_, pods) = fx.fake.cluster().list(Kind::Pod, Some("demo"));
    let first_echo = pods
        .iter()
        .find(|p| p["metadata"]["labels"]["app"] == "echo")
        .and_then(|p| p["metadata"]["name"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no echo pod"))?
        .to_string();
    fx.fake
        .cluster()
        .set_pod_ready("demo", &first_echo, false)?;
    assert_eq!(ready_count(slices.list(&lp).await?.items), 1);
    fx.fake.cluster().set_pod_ready("demo", &first_echo, true)?;
    assert_eq!(ready_count(slices.list(&lp).await?.items), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_watcher_sees_a_pod_replaced() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let pods: Api<Pod> = Api::namespaced(fx.client().await?, "demo");
    let stream = watcher(pods.clone(), watcher::Config::default().labels("app=db"));
    let mut stream = std::pin::pin!(stream);
    // The initial list: db-0.
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await?? {
            Some(watcher::Event::InitApply(p)) => initial.push(p.metadata.name.unwrap_or_default()),
            Some(watcher::Event::InitDone) => break,
            Some(_) => {}
            None => anyhow::bail!("watch ended early"),
        }
    }
    assert_eq!(initial, vec!["db-0".to_string()]);
    let old_uid = pods.get("db-0").await?.metadata.uid;
    pods.delete("db-0", &Default::default()).await?;
    let mut saw_delete = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await?? {
            Some(watcher::Event::Delete(p)) => saw_delete |= p.metadata.uid == old_uid,
            Some(watcher::Event::Apply(p)) if p.metadata.uid != old_uid => {
                let ready = p
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready {
                    break;
                }
            }
            Some(_) => {}
            None => anyhow::bail!("watch ended early"),
        }
    }
    assert!(saw_delete, "the watcher saw the old pod deleted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_ends_its_tunnels() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let pods: Api<Pod> = Api::namespaced(fx.client().await?, "demo");
    let mut pf = pods.portforward("solo", &[9000]).await?;
    let mut s = pf
        .take_stream(9000)
        .ok_or_else(|| anyhow::anyhow!("no stream"))?;
    s.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    pods.delete("solo", &Default::default()).await?;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await?;
    assert!(
        n.is_ok_and(|n| n == 0) || rest.is_empty(),
        "the tunnel ends when the pod goes away"
    );
    Ok(())
}

/// Runs one step of a test with a deadline, so a hang fails with the step's name.
async fn step<T>(what: &str, f: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no result within 20 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_switches_break_and_heal() -> anyhow::Result<()> {
    let fx = Fixture::demo().await?;
    let client = fx.client().await?;
    let pods: Api<Pod> = Api::namespaced(client, "demo");

    // Dropping tunnels ends an open stream.
    let mut pf = step("open a tunnel", pods.portforward("solo", &[9000])).await??;
    let mut s = pf
        .take_stream(9000)
        .ok_or_else(|| anyhow::anyhow!("no stream"))?;
    s.write_all(b"x").await?;
    let mut one = [0u8; 1];
    step("echo one byte", s.read_exact(&mut one)).await??;
    eventually(Duration::from_secs(5), "the tunnel to be counted", || {
        fx.fake.faults().open_tunnels() == 1
    })
    .await?;
    assert_eq!(fx.fake.faults().drop_tunnels(), 1);
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the stream ends after the drop");
    // kube-rs's forwarder task may still be relaying our half of the stream; let it go so
    // that the task can end (under heavy load it otherwise waits on it).
    drop(s);
    assert!(
        step("the dropped tunnel's task to end", pf.join())
            .await?
            .is_err(),
        "a dropped tunnel is an error, not a clean close"
    );

    // Refused upgrades for a while, then working again.
    fx.fake.faults().refuse_portforward(Duration::from_secs(60));
    match step("a refused upgrade", pods.portforward("solo", &[9000])).await? {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected a 500, got {:?}", other.map(|_| "a tunnel")),
    }
    fx.fake.faults().clear();
    let data = b"back again".to_vec();
    assert_eq!(
        step(
            "a tunnel after the refusal",
            echo_round_trip(&pods, "solo", 9000, &data)
        )
        .await??,
        data
    );

    // API failures for a while.
    fx.fake.faults().fail_api(Duration::from_secs(60));
    match step("a failing list", pods.list(&ListParams::default())).await? {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected a 500, got {other:?}"),
    }
    fx.fake.faults().clear();
    assert_eq!(
        step(
            "a list after the failure",
            pods.list(&ListParams::default())
        )
        .await??
        .items
        .len(),
        5
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_401_and_latency_delays_responses() -> anyhow::Result<()> {
    let fx = Fixture::start(Options::default().latency(Duration::from_millis(150))).await?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&fx.kubeconfig)?,
        &Default::default(),
    )
    .await?;
    let good = kube::Client::try_from(config.clone())?;
    let start = std::time::Instant::now();
    Api::<Pod>::namespaced(good, "demo").get("solo").await?;
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "latency applies to API responses"
    );

    config.auth_info.token = Some("wrong".to_string().into());
    let bad = kube::Client::try_from(config)?;
    match Api::<Pod>::namespaced(bad, "demo").get("solo").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 401);
            assert_eq!(status.reason, "Unauthorized");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    Ok(())
}
