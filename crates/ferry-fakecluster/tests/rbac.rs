//! Users with limited rights, end to end: what they may and may not do through the API,
//! the 403s they get (with a real API server's wording), port-forward's `create` rule for
//! both SPDY and WebSocket upgrades, the self-review APIs read with kube-rs' typed
//! clients, rules changed at run time, and real kubectl (`auth can-i`, `auth whoami`,
//! `get`, `port-forward`) against it all.
//!
//! The kubectl binaries are `kubectl.1.27` … `kubectl.1.33`, looked up on PATH and in
//! /usr/lib/google-cloud-sdk/bin/ (as in `kubectl_portforward.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_fakecluster::{FakeCluster, Options, PolicyRule, Scenario, User};
use http_body_util::BodyExt;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;

const SCENARIO: &str = include_str!("../scenarios/limited-users.yaml");
const SDK_BIN: &str = "/usr/lib/google-cloud-sdk/bin";
const PORTFORWARD: &str = "/api/v1/namespaces/demo/pods/solo/portforward";
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

fn kubectl(version: &str) -> PathBuf {
    let name = format!("kubectl.{version}");
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from(SDK_BIN)])
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (looked on PATH and in {SDK_BIN})"))
}

struct Fx {
    fake: FakeCluster,
    dir: tempfile::TempDir,
}

impl Fx {
    async fn start(opts: Options) -> Self {
        let scenario = Scenario::from_yaml(SCENARIO).expect("scenario");
        let fake = FakeCluster::start(opts.scenario(scenario))
            .await
            .expect("fake cluster");
        assert!(fake.wait_pods_ready(Duration::from_secs(10)).await);
        let dir = tempfile::tempdir().expect("tempdir");
        fake.write_kubeconfig(&dir.path().join("admin"))
            .expect("admin kubeconfig");
        Self { fake, dir }
    }

    /// The kubeconfig of `user` (`admin` for the kubeconfig's own), written once.
    fn kubeconfig(&self, user: &str) -> PathBuf {
        let path = self.dir.path().join(user);
        if !path.exists() {
            self.fake
                .write_kubeconfig_for_user(user, &path)
                .expect("user kubeconfig");
        }
        path
    }

    async fn client(&self, user: &str) -> Client {
        ferry_fakecluster::node::client_from_kubeconfig(&self.kubeconfig(user))
            .await
            .expect("client")
    }
}

async fn send(client: &Client, req: http::Request<Vec<u8>>) -> (http::StatusCode, Value) {
    let res = client.send(req.map(Into::into)).await.expect("an answer");
    let code = res.status();
    if code == http::StatusCode::SWITCHING_PROTOCOLS {
        return (code, Value::Null);
    }
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (code, json)
}

async fn get(client: &Client, path: &str) -> (http::StatusCode, Value) {
    let req = http::Request::get(path).body(Vec::new()).expect("request");
    send(client, req).await
}

async fn spdy_upgrade(client: &Client) -> (http::StatusCode, Value) {
    let req = http::Request::post(PORTFORWARD)
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "portforward.k8s.io")
        .body(Vec::new())
        .expect("request");
    send(client, req).await
}

async fn ws_upgrade(client: &Client, path: &str, protocol: &str) -> (http::StatusCode, Value) {
    let req = http::Request::get(path)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key())
        .header("Sec-WebSocket-Protocol", protocol)
        .body(Vec::new())
        .expect("request");
    send(client, req).await
}

/// The 403 `Status` a real API server sends.
fn forbidden(message: &str, details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_user_may_read_but_not_forward_and_gets_the_api_servers_403s() {
    let fx = Fx::start(Options::default()).await;
    let viewer = fx.client("viewer").await;
    let pods: Api<Pod> = Api::namespaced(viewer.clone(), "demo");
    let listed = pods.list(&ListParams::default()).await.expect("list pods");
    assert_eq!(listed.items.len(), 1);
    pods.get("solo").await.expect("get pod");
    // Discovery is everyone's.
    assert_eq!(get(&viewer, "/api").await.0, http::StatusCode::OK);
    assert_eq!(get(&viewer, "/apis").await.0, http::StatusCode::OK);
    assert_eq!(get(&viewer, "/version").await.0, http::StatusCode::OK);

    let message = r#"pods "solo" is forbidden: User "viewer" cannot create resource "pods/portforward" in API group "" in the namespace "demo""#;
    let want = forbidden(message, json!({"name": "solo", "kind": "pods"}));
    assert_eq!(
        spdy_upgrade(&viewer).await,
        (http::StatusCode::FORBIDDEN, want.clone())
    );
    // A WebSocket upgrade is a GET, so `get pods/portforward` (which viewer lacks) is
    // checked first, as the API server's authorization filter does.
    let get_message = message.replace("cannot create", "cannot get");
    let want_get = forbidden(&get_message, json!({"name": "solo", "kind": "pods"}));
    assert_eq!(
        ws_upgrade(&viewer, PORTFORWARD, TUNNEL).await,
        (http::StatusCode::FORBIDDEN, want_get.clone())
    );
    assert_eq!(
        ws_upgrade(
            &viewer,
            &format!("{PORTFORWARD}?ports=9000"),
            "v4.channel.k8s.io"
        )
        .await,
        (http::StatusCode::FORBIDDEN, want_get)
    );
    // Authorization comes before the pod is looked up.
    let (code, body) = ws_upgrade(
        &viewer,
        "/api/v1/namespaces/demo/pods/nope/portforward?ports=9000",
        "v4.channel.k8s.io",
    )
    .await;
    assert_eq!(code, http::StatusCode::FORBIDDEN);
    assert_eq!(body["details"]["name"], "nope");
    let stats = fx.fake.portforward_stats();
    assert_eq!(stats.upgrades.total(), 0);
    assert_eq!(
        (
            stats.refused.spdy,
            stats.refused.spdy_websocket,
            stats.refused.channel
        ),
        (1, 1, 2),
        "refused upgrades count as refusals: {stats:?}"
    );

    // Elsewhere: another namespace, all namespaces, another group, cluster scope.
    let (code, body) = get(&viewer, "/api/v1/namespaces/default/pods").await;
    assert_eq!(code, http::StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        forbidden(
            r#"pods is forbidden: User "viewer" cannot list resource "pods" in API group "" in the namespace "default""#,
            json!({"kind": "pods"})
        )
    );
    let (code, body) = get(&viewer, "/api/v1/pods").await;
    assert_eq!(code, http::StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "viewer" cannot list resource "pods" in API group "" at the cluster scope"#
    );
    let (code, body) = get(
        &viewer,
        "/apis/apps/v1/namespaces/demo/deployments?watch=true",
    )
    .await;
    assert_eq!(code, http::StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        forbidden(
            r#"deployments.apps is forbidden: User "viewer" cannot watch resource "deployments" in API group "apps" in the namespace "demo""#,
            json!({"kind": "deployments", "group": "apps"})
        )
    );
    // A missing resource is forbidden too: authorization does not know what exists.
    let (code, _) = get(&viewer, "/api/v1/namespaces/demo/widgets").await;
    assert_eq!(code, http::StatusCode::FORBIDDEN);
    let err = pods
        .delete("solo", &Default::default())
        .await
        .expect_err("viewer may not delete");
    let kube::Error::Api(status) = err else {
        panic!("an API error, got {err:?}");
    };
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        r#"pods "solo" is forbidden: User "viewer" cannot delete resource "pods" in API group "" in the namespace "demo""#
    );
    assert!(
        fx.fake
            .cluster()
            .get(ferry_fakecluster::kind::Kind::Pod, "demo", "solo")
            .is_ok(),
        "the pod is still there"
    );

    // The admin and issued tokens keep every right; `/fake/` stays the admin's.
    let admin = fx.client("admin").await;
    assert_eq!(get(&admin, "/api/v1/pods").await.0, http::StatusCode::OK);
    assert_eq!(
        get(&viewer, "/fake/users").await.0,
        http::StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&viewer, "/fake/portforward").await.0,
        http::StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forwarding_needs_create_and_a_websocket_also_get() {
    let fx = Fx::start(Options::default()).await;
    // dev has get and create on pods/portforward in demo: every protocol works.
    let dev = fx.client("dev").await;
    assert_eq!(
        spdy_upgrade(&dev).await.0,
        http::StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(
        ws_upgrade(&dev, PORTFORWARD, TUNNEL).await.0,
        http::StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(
        ws_upgrade(
            &dev,
            &format!("{PORTFORWARD}?ports=9000"),
            "v4.channel.k8s.io"
        )
        .await
        .0,
        http::StatusCode::SWITCHING_PROTOCOLS
    );

    // kube-rs forwards over the WebSocket channel protocol, end to end.
    let pods: Api<Pod> = Api::namespaced(dev.clone(), "demo");
    let mut pf = pods.portforward("solo", &[9000]).await.expect("forwarding");
    let mut stream = pf.take_stream(9000).expect("port 9000");
    stream.write_all(b"ping").await.expect("written");
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echoed");
    assert_eq!(&buf, b"ping");
    drop(stream);
    pf.abort();

    // get alone: the WebSocket upgrade passes the `get` check and fails Kubernetes
    // 1.35's `create` check; SPDY is a `create` from the start.
    let pf = |verbs: &[&str]| {
        vec![
            PolicyRule::new(["get", "list"], ["pods"]).namespaces(["demo"]),
            PolicyRule::new(verbs.iter().copied(), ["pods/portforward"]).namespaces(["demo"]),
        ]
    };
    fx.fake
        .set_user_rules("dev", pf(&["get"]))
        .expect("rules set");
    let create_denied = forbidden(
        r#"pods "solo" is forbidden: User "dev" cannot create resource "pods/portforward" in API group "" in the namespace "demo""#,
        json!({"name": "solo", "kind": "pods"}),
    );
    assert_eq!(
        ws_upgrade(&dev, PORTFORWARD, TUNNEL).await,
        (http::StatusCode::FORBIDDEN, create_denied.clone())
    );
    assert_eq!(
        ws_upgrade(
            &dev,
            &format!("{PORTFORWARD}?ports=9000"),
            "v4.channel.k8s.io"
        )
        .await,
        (http::StatusCode::FORBIDDEN, create_denied.clone())
    );
    assert_eq!(
        spdy_upgrade(&dev).await,
        (http::StatusCode::FORBIDDEN, create_denied)
    );

    // create alone: SPDY works, a WebSocket does not (the GET is a `get`).
    fx.fake
        .set_user_rules("dev", pf(&["create"]))
        .expect("rules set");
    assert_eq!(
        spdy_upgrade(&dev).await.0,
        http::StatusCode::SWITCHING_PROTOCOLS
    );
    let (code, body) = ws_upgrade(&dev, PORTFORWARD, TUNNEL).await;
    assert_eq!(code, http::StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"pods "solo" is forbidden: User "dev" cannot get resource "pods/portforward" in API group "" in the namespace "demo""#
    );

    // `*` covers subresources; a rule limited to other pods does not.
    fx.fake
        .set_user_rules(
            "dev",
            vec![PolicyRule::new(["*"], ["pods/portforward"]).resource_names(["db-0"])],
        )
        .expect("rules set");
    assert_eq!(spdy_upgrade(&dev).await.0, http::StatusCode::FORBIDDEN);
    fx.fake
        .set_user_rules("dev", vec![PolicyRule::new(["*"], ["*"])])
        .expect("rules set");
    assert_eq!(
        ws_upgrade(&dev, PORTFORWARD, TUNNEL).await.0,
        http::StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_changed_at_run_time_apply_from_the_next_request() {
    let fx = Fx::start(Options::default()).await;
    let getter = fx.client("getter").await;
    let pods: Api<Pod> = Api::namespaced(getter.clone(), "demo");
    pods.get("solo").await.expect("getter may get");
    let err = pods
        .list(&ListParams::default())
        .await
        .expect_err("no list");
    assert!(
        err.to_string().contains(r#"pods is forbidden: User "getter" cannot list resource "pods" in API group "" in the namespace "demo""#),
        "{err}"
    );
    fx.fake
        .set_user_rules(
            "getter",
            vec![PolicyRule::new(["list"], ["pods"]).namespaces(["demo"])],
        )
        .expect("rules set");
    pods.list(&ListParams::default())
        .await
        .expect("getter may list now");
    pods.get("solo").await.expect_err("and no longer get");

    // Over HTTP, with the admin token.
    let admin = fx.client("admin").await;
    let req = http::Request::put("/fake/users/getter/rules")
        .body(br#"[{"verbs": ["get"], "resources": ["pods"], "namespaces": ["demo"]}]"#.to_vec())
        .expect("request");
    let (code, body) = send(&admin, req).await;
    assert_eq!(code, http::StatusCode::OK, "{body}");
    assert_eq!(body["rules"][0]["api_groups"], json!(["*"]));
    pods.get("solo").await.expect("getter may get again");
    pods.list(&ListParams::default())
        .await
        .expect_err("and no longer list");
    let bad = http::Request::put("/fake/users/getter/rules")
        .body(br#"[{"verbs": ["steal"], "resources": ["pods"]}]"#.to_vec())
        .expect("request");
    let (code, body) = send(&admin, bad).await;
    assert_eq!(code, http::StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("rules[0].verbs[0]")),
        "{body}"
    );
    let missing = http::Request::put("/fake/users/nobody/rules")
        .body(b"[]".to_vec())
        .expect("request");
    assert_eq!(send(&admin, missing).await.0, http::StatusCode::NOT_FOUND);
    let (code, body) = get(&admin, "/fake/users").await;
    assert_eq!(code, http::StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(3));

    // Removing a user makes its token stop working.
    assert!(fx.fake.users().remove("getter"));
    let err = pods.get("solo").await.expect_err("unauthenticated");
    assert!(err.to_string().contains("Unauthorized"), "{err}");
}

fn review(
    namespace: &str,
    verb: &str,
    resource: &str,
    subresource: &str,
) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some(verb.into()),
                group: Some(String::new()),
                resource: Some(resource.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.into()),
                name: Some("solo".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_subject_access_reviews_answer_per_rules_through_kube_rs() {
    let fx = Fx::start(Options::default()).await;
    let pp = PostParams::default();
    let ask = |client: Client, r: SelfSubjectAccessReview| async move {
        let api = Api::<SelfSubjectAccessReview>::all(client);
        api.create(&PostParams::default(), &r)
            .await
            .expect("a review")
            .status
            .expect("a status")
    };
    let dev = fx.client("dev").await;
    let viewer = fx.client("viewer").await;
    let admin = fx.client("admin").await;

    let yes = ask(dev.clone(), review("demo", "create", "pods", "portforward")).await;
    assert!(yes.allowed);
    assert_eq!(yes.denied, None);
    assert_eq!(
        yes.reason.as_deref(),
        Some(r#"RBAC: allowed by rules[2] of User "dev""#)
    );
    let no = ask(
        viewer.clone(),
        review("demo", "create", "pods", "portforward"),
    )
    .await;
    assert!(!no.allowed);
    assert_eq!((no.denied, no.reason), (None, None));
    assert!(
        ask(viewer.clone(), review("demo", "get", "pods", ""))
            .await
            .allowed
    );
    assert!(
        !ask(viewer.clone(), review("other", "get", "pods", ""))
            .await
            .allowed
    );
    assert!(
        !ask(viewer.clone(), review("", "list", "pods", ""))
            .await
            .allowed
    );
    let admin_yes = ask(admin.clone(), review("other", "delete", "nodes", "")).await;
    assert!(admin_yes.allowed);

    // The answer echoes the spec back.
    let api = Api::<SelfSubjectAccessReview>::all(dev.clone());
    let asked = review("demo", "get", "services", "");
    let answer = api.create(&pp, &asked).await.expect("a review");
    assert_eq!(answer.spec, asked.spec);

    // Non-resource paths: discovery is everyone's, anything else the admin's.
    let path = |p: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(p.into()),
                verb: Some("get".into()),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(ask(viewer.clone(), path("/apis/apps/v1")).await.allowed);
    assert!(!ask(viewer.clone(), path("/metrics")).await.allowed);
    assert!(ask(admin.clone(), path("/metrics")).await.allowed);

    // Neither kind of attributes: 422, as a real server answers.
    let err = api
        .create(&pp, &SelfSubjectAccessReview::default())
        .await
        .expect_err("invalid");
    let kube::Error::Api(status) = err else {
        panic!("an API error, got {err:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

    // A change of rules shows in the next review.
    fx.fake
        .set_user_rules(
            "viewer",
            vec![PolicyRule::new(["create"], ["pods/portforward"])],
        )
        .expect("rules set");
    assert!(
        ask(viewer, review("demo", "create", "pods", "portforward"))
            .await
            .allowed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_subject_reviews_say_who_the_caller_is_through_kube_rs() {
    let fx = Fx::start(Options::default().user(
        User::new("system:serviceaccount:demo:ferry", "sa-token").group("system:serviceaccounts"),
    ))
    .await;
    let whoami = |client: Client| async move {
        let api = Api::<SelfSubjectReview>::all(client);
        let info = api
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .expect("a review")
            .status
            .and_then(|s| s.user_info)
            .expect("user info");
        (
            info.username.unwrap_or_default(),
            info.groups.unwrap_or_default(),
        )
    };
    assert_eq!(
        whoami(fx.client("dev").await).await,
        (
            "dev".to_string(),
            vec!["developers".to_string(), "system:authenticated".to_string()]
        )
    );
    assert_eq!(
        whoami(fx.client("admin").await).await,
        (
            "kubernetes-admin".to_string(),
            vec![
                "system:masters".to_string(),
                "system:authenticated".to_string()
            ]
        )
    );
    // A user from Options, with a name that needs quoting in the kubeconfig.
    let sa = fx.client("system:serviceaccount:demo:ferry").await;
    assert_eq!(
        whoami(sa.clone()).await.0,
        "system:serviceaccount:demo:ferry"
    );
    let (code, body) = get(&sa, "/api/v1/namespaces/demo/pods").await;
    assert_eq!(code, http::StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "system:serviceaccount:demo:ferry" cannot list resource "pods" in API group "" in the namespace "demo""#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_kubeconfigs_match_the_admins_but_for_the_user() {
    let fx = Fx::start(Options::default().context_name("limited")).await;
    let admin = fx.fake.kubeconfig_yaml();
    let dev = fx.fake.kubeconfig_yaml_for_user("dev").expect("dev's");
    assert!(fx.fake.kubeconfig_yaml_for_user("nobody").is_none());
    let admin: Value = serde_norway_like(&admin);
    let dev: Value = serde_norway_like(&dev);
    assert_eq!(dev["clusters"], admin["clusters"]);
    assert_eq!(dev["current-context"], "limited");
    assert_eq!(dev["contexts"][0]["name"], "limited");
    assert_eq!(dev["contexts"][0]["context"]["user"], "dev");
    assert_eq!(
        dev["users"],
        json!([{"name": "dev", "user": {"token": "dev-token"}}])
    );
    let err = fx
        .fake
        .write_kubeconfig_for_user("nobody", &fx.dir.path().join("nobody"))
        .expect_err("no such user");
    assert!(err.to_string().contains("no user named `nobody`"), "{err}");
}

/// Parses kubeconfig YAML through kube's own loader, as clients read it.
fn serde_norway_like(yaml: &str) -> Value {
    let config = kube::config::Kubeconfig::from_yaml(yaml).expect("a kubeconfig");
    serde_json::to_value(&config).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_checked_with_the_scenarios_and_against_the_admin_token() {
    let clash = Options::default()
        .scenario(Scenario::from_yaml(SCENARIO).expect("scenario"))
        .user(User::new("dev", "another-token"));
    let err = FakeCluster::start(clash).await.err().expect("rejected");
    assert!(err.to_string().contains("users[3].name"), "{err}");
    let admin_token = Options {
        token: Some("secret".into()),
        ..Options::default()
    }
    .user(User::new("dev", "secret"));
    let err = FakeCluster::start(admin_token)
        .await
        .err()
        .expect("rejected");
    assert!(err.to_string().contains("users[0].token"), "{err}");
    let bad_rule = Options::default().user(
        User::new("dev", "t").rule(PolicyRule::new(["get"], ["pods"]).namespaces(["*", "Demo"])),
    );
    let err = FakeCluster::start(bad_rule).await.err().expect("rejected");
    assert!(
        err.to_string().contains("users[0].rules[0].namespaces[1]"),
        "{err}"
    );
}

// === real kubectl ===

/// Runs `kubectl.<version> args…` as `user`; its exit code, stdout and stderr.
async fn run_kubectl(
    kubeconfig: &Path,
    version: &'static str,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(kubectl(version))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    })
    .await
    .expect("kubectl joined");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_says_yes_and_no_per_rules() {
    let fx = Fx::start(Options::default()).await;
    // 1.31 sends JSON, 1.32 on protobuf.
    for version in ["1.27", "1.31", "1.33"] {
        for (user, args, want) in [
            (
                "dev",
                &["create", "pods", "--subresource=portforward", "-n", "demo"][..],
                true,
            ),
            (
                "viewer",
                &["create", "pods", "--subresource=portforward", "-n", "demo"][..],
                false,
            ),
            ("viewer", &["list", "pods", "-n", "demo"][..], true),
            ("viewer", &["list", "pods", "-n", "other"][..], false),
            ("getter", &["list", "pods", "-n", "demo"][..], false),
            ("admin", &["delete", "nodes"][..], true),
        ] {
            let mut all = vec!["auth", "can-i"];
            all.extend_from_slice(args);
            let (code, out, err) = run_kubectl(&fx.kubeconfig(user), version, &all).await;
            let expect = if want { "yes" } else { "no" };
            assert_eq!(
                (code, out.trim()),
                (Some(if want { 0 } else { 1 }), expect),
                "kubectl {version} as {user}: auth can-i {args:?}\n{err}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_whoami_names_the_user() {
    let fx = Fx::start(Options::default()).await;
    // `auth whoami` reads authentication.k8s.io/v1 from kubectl 1.28 on.
    for version in ["1.28", "1.33"] {
        let (code, out, err) =
            run_kubectl(&fx.kubeconfig("dev"), version, &["auth", "whoami"]).await;
        assert_eq!(code, Some(0), "kubectl {version}: {err}");
        assert!(out.contains("Username    dev"), "kubectl {version}:\n{out}");
        assert!(
            out.contains("Groups      [developers system:authenticated]"),
            "kubectl {version}:\n{out}"
        );
        let (code, out, err) = run_kubectl(
            &fx.kubeconfig("admin"),
            version,
            &["auth", "whoami", "-o", "json"],
        )
        .await;
        assert_eq!(code, Some(0), "kubectl {version}: {err}");
        let review: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(review["status"]["userInfo"]["username"], "kubernetes-admin");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_the_forbidden_message() {
    let fx = Fx::start(Options::default()).await;
    for version in ["1.27", "1.33"] {
        let getter = fx.kubeconfig("getter");
        let (code, _, err) = run_kubectl(&getter, version, &["get", "pods", "-n", "demo"]).await;
        assert_eq!(code, Some(1), "kubectl {version}");
        assert!(
            err.contains(r#"Error from server (Forbidden): pods is forbidden: User "getter" cannot list resource "pods" in API group "" in the namespace "demo""#),
            "kubectl {version}:\n{err}"
        );
        let (code, out, err) =
            run_kubectl(&getter, version, &["get", "pod", "solo", "-n", "demo"]).await;
        assert_eq!(code, Some(0), "kubectl {version}: {err}");
        assert!(out.contains("solo"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_fails_with_the_forbidden_message() {
    let fx = Fx::start(Options::default()).await;
    // viewer may get the pod and the service, but not port-forward: kubectl ≥ 1.31 tries
    // the WebSocket tunnel, is refused, falls back to SPDY, and is refused again.
    for version in ["1.27", "1.33"] {
        for target in ["pod/solo", "svc/solo"] {
            let port = if target == "pod/solo" { ":9000" } else { ":80" };
            let (code, _, err) = run_kubectl(
                &fx.kubeconfig("viewer"),
                version,
                &["port-forward", "-n", "demo", target, port],
            )
            .await;
            assert_eq!(code, Some(1), "kubectl {version} {target}:\n{err}");
            assert!(
                err.contains(r#"pods "solo" is forbidden: User "viewer" cannot create resource "pods/portforward" in API group "" in the namespace "demo""#),
                "kubectl {version} {target}:\n{err}"
            );
        }
    }
}
