//! The HTTP face of the fake cluster: authentication, authorization of limited users,
//! discovery, list/get/watch, delete, patch, the self-review APIs, server-side tables for
//! kubectl, the fault switches under `/fake/`, and the hand-off of
//! `pods/{name}/portforward` upgrades to the tunnel module.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info};

use crate::cluster::{Change, Cluster, EventType, StoreError, WatchStart};
use crate::faults::{FORBIDDEN_USER, Faults};
use crate::kind::Kind;
use crate::portforward;
use crate::rbac::{self, ResourceAttributes, User};
use crate::selector::{FieldSelector, LabelSelector};
use crate::spdy;
use crate::stats::{Counters, Protocol};
use crate::upgrade;

/// Everything a request handler needs.
pub(crate) struct App {
    pub cluster: Arc<Cluster>,
    /// The bearer token every request must carry.
    pub token: String,
    /// Added before every API response and portforward upgrade.
    pub latency: Duration,
    pub faults: Arc<Faults>,
    /// Tokens with a lifetime, accepted besides `token`.
    pub tokens: Arc<crate::tokens::Tokens>,
    /// Users with limited rights, accepted besides `token`.
    pub users: Arc<rbac::Users>,
    /// `host:port` the server is reachable at, for `/api`'s address list.
    pub server_addr: String,
    /// Whether SPDY tunnelled through a WebSocket is served.
    pub spdy_over_websocket: bool,
    /// Kubelet's streaming idle timeout, if any.
    pub idle_timeout: Option<Duration>,
    /// Who asked.
    pub requests: Arc<crate::requests::RequestLog>,
    /// Port-forward counters.
    pub stats: Arc<Counters>,
}

/// A Kubernetes `Status` failure response.
pub(crate) fn status(
    code: StatusCode,
    reason: &str,
    message: impl Into<String>,
    details: Option<Value>,
) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn store_error(err: StoreError, kind: Option<Kind>) -> Response {
    match err {
        StoreError::NotFound { plural, ref name } => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            err.to_string(),
            Some(
                json!({"name": name, "kind": plural, "group": kind.map(Kind::group).unwrap_or("")}),
            ),
        ),
        StoreError::Invalid(msg) => status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", msg, None),
        StoreError::BadRequest(msg) => status(StatusCode::BAD_REQUEST, "BadRequest", msg, None),
        StoreError::MethodNotAllowed(msg) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            msg,
            None,
        ),
        StoreError::Expired { .. } => status(StatusCode::GONE, "Expired", err.to_string(), None),
        StoreError::AlreadyExists { plural, ref name } => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            err.to_string(),
            Some(
                json!({"name": name, "kind": plural, "group": kind.map(Kind::group).unwrap_or("")}),
            ),
        ),
        StoreError::Conflict(msg) => status(StatusCode::CONFLICT, "Conflict", msg, None),
    }
}

/// Who a request authenticates as.
enum Caller {
    /// The kubeconfig's own token: everything, including `/fake/`.
    Admin,
    /// An issued token that has not expired: the whole Kubernetes API, as the admin.
    Issued,
    /// A user with limited rights (a snapshot of it, taken as the request came in): what
    /// its rules allow, and not `/fake/` beyond what any token may read.
    User(Arc<User>),
    Nobody,
}

impl Caller {
    /// The user name and groups the API server reports for the caller.
    fn identity(&self) -> (String, Vec<String>) {
        match self {
            Caller::User(u) => (u.name.clone(), u.all_groups()),
            _ => (
                rbac::ADMIN_USER.to_string(),
                vec![
                    rbac::MASTERS_GROUP.to_string(),
                    rbac::AUTHENTICATED_GROUP.to_string(),
                ],
            ),
        }
    }
}

fn caller(app: &App, headers: &HeaderMap) -> Caller {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Caller::Nobody;
    };
    if constant_time_eq(token.as_bytes(), app.token.as_bytes()) {
        Caller::Admin
    } else if let Some(user) = app.users.by_token(token) {
        Caller::User(user)
    } else if app.tokens.valid(token) {
        Caller::Issued
    } else {
        Caller::Nobody
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves every request.
pub(crate) async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    debug!(http.method = %method, http.path = %path, "request");
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return (StatusCode::OK, "ok").into_response();
    }
    let who = caller(&app, req.headers());
    if matches!(who, Caller::Nobody) {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            None,
        );
    }
    if let Some(rest) = path.strip_prefix("/fake/") {
        match (&method, rest) {
            (&Method::GET, "requests") => return json_response(&json!(app.requests.agents())),
            (&Method::GET, "portforward") => return json_response(&json!(app.stats.snapshot())),
            _ => {}
        }
        if !matches!(who, Caller::Admin) {
            return status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "the /fake/ endpoints need the kubeconfig's own token",
                None,
            );
        }
        if let Some(user) = rest.strip_prefix("users") {
            return users_endpoint(&app, &method, user, req).await;
        }
        return fake_endpoint(&app, &method, rest, req.uri().query());
    }
    app.requests.record(
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        req.headers().contains_key(header::UPGRADE),
    );
    if !app.latency.is_zero() {
        tokio::time::sleep(app.latency).await;
    }
    if let Some(left) = app.faults.api_failing() {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!(
                "Internal error occurred: injected API failure ({}s left)",
                left.as_secs()
            ),
            None,
        );
    }
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let Caller::User(user) = &who
        && let Some(denied) = authorize(&app, user, &method, &segs, &req)
    {
        return denied;
    }
    match segs.as_slice() {
        ["version"] => json_response(&json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-ferry-fake",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
            "platform": "linux/amd64", "emulationMajor": "1", "emulationMinor": "33",
        })),
        ["api"] => json_response(&json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": app.server_addr}],
        })),
        ["api", "v1"] => json_response(&resource_list("v1")),
        ["apis"] => json_response(&json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": GROUPS.map(api_group),
        })),
        ["apis", g] if GROUPS.contains(g) => {
            let mut group = api_group(g);
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            json_response(&group)
        }
        ["apis", g, "v1"] if GROUPS.contains(g) => {
            json_response(&resource_list(&format!("{g}/v1")))
        }
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => self_subject_access_review(&who, req).await,
        ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"] => {
            self_subject_review(&who, req).await
        }
        ["api", "v1", rest @ ..] => resource(&app, "", rest, req).await,
        ["apis", g, "v1", rest @ ..] => {
            let g = g.to_string();
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            resource(&app, &g, &rest, req).await
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        ),
    }
}

/// The API groups served besides the core group, in discovery order.
const GROUPS: [&str; 4] = [
    "apps",
    "discovery.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
];

/// Checks a limited user's request as a real API server's authorizer does, before any
/// handler sees it: `None` when it may go on, else the 403. Discovery and other
/// non-resource paths are not checked (every authenticated user may read them).
/// A WebSocket port-forward (`GET`, so `get pods/portforward`) must also be allowed to
/// `create pods/portforward`, as from Kubernetes 1.35 on
/// (`AuthorizePodWebsocketUpgradeCreatePermission`); plain SPDY (`POST`) is a `create`
/// in the first place. Port-forwards refused here count as refused upgrades.
fn authorize(
    app: &App,
    user: &User,
    method: &Method,
    segs: &[&str],
    req: &Request,
) -> Option<Response> {
    let attrs = rbac::request_attributes(method, segs, req.uri())?;
    let denied = if user.authorize(&attrs).is_none() {
        Some(attrs)
    } else if attrs.is_portforward() && attrs.verb != "create" {
        let create = ResourceAttributes {
            verb: "create".into(),
            ..attrs
        };
        user.authorize(&create).is_none().then_some(create)
    } else {
        None
    }?;
    debug!(user = %user.name, verb = %denied.verb, resource = %denied.combined_resource(), "forbidden");
    if denied.is_portforward() {
        let tunnel_served =
            app.spdy_over_websocket && !app.faults.protocol_refused(Protocol::SpdyWebSocket);
        app.stats.answered(
            upgrade::requested_protocol(req.headers(), tunnel_served),
            false,
        );
    }
    Some(status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        denied.forbidden_message(&user.name),
        Some(denied.forbidden_details()),
    ))
}

/// A request's body, decoded as far as the self-review APIs need: the object (JSON) or,
/// protobuf-encoded, the `spec` of a SelfSubjectAccessReview (`Value::Null` for any other
/// well-formed object). The error is the message of a 400.
async fn review_body(req: Request) -> Result<Decoded, String> {
    let protobuf = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(crate::protobuf::CONTENT_TYPE));
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?;
    if protobuf {
        return Ok(Decoded::Protobuf {
            spec: crate::protobuf::self_subject_access_review_spec(&body),
            object: crate::protobuf::is_object(&body),
        });
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.is_object() => Ok(Decoded::Json(v)),
        Ok(_) => Err("the body is not a JSON object".into()),
        Err(e) => Err(format!("the body is not valid JSON: {e}")),
    }
}

/// What [`review_body`] read.
enum Decoded {
    Json(Value),
    Protobuf {
        /// The SelfSubjectAccessReview's `spec`, if the body is one.
        spec: Option<Value>,
        /// Whether the body is a well-formed object at all.
        object: bool,
    },
}

fn bad_request(message: impl Into<String>) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn created(value: &Value) -> Response {
    let mut res = json_response(value);
    *res.status_mut() = StatusCode::CREATED;
    res
}

fn method_not_allowed() -> Response {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: may the caller do
/// what `spec.resourceAttributes` (or `spec.nonResourceAttributes`) says? Answered with
/// the review and its `status`, as a real server answers: the admin (and issued tokens,
/// `system:masters`) may do anything, with no reason given; a user as its rules say, with
/// the rule that allowed it as the reason, and `{allowed: false}` alone when denied (RBAC
/// has no opinion then, so `denied` stays unset).
async fn self_subject_access_review(who: &Caller, req: Request) -> Response {
    if req.method() != Method::POST {
        return method_not_allowed();
    }
    let spec = match review_body(req).await {
        Ok(Decoded::Json(review)) => review["spec"].clone(),
        Ok(Decoded::Protobuf {
            spec: Some(spec), ..
        }) => spec,
        Ok(Decoded::Protobuf { spec: None, .. }) => {
            return bad_request("the body is not a protobuf-encoded SelfSubjectAccessReview");
        }
        Err(msg) => return bad_request(msg),
    };
    let spec = &spec;
    let resource = spec["resourceAttributes"].as_object();
    let non_resource = spec["nonResourceAttributes"].as_object();
    if resource.is_some() == non_resource.is_some() {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                r#"SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: {}: exactly one of nonResourceAttributes or resourceAttributes must be specified"#,
                serde_json::to_string(&spec).unwrap_or_default()
            ),
            Some(json!({"kind": "SelfSubjectAccessReview", "group": "authorization.k8s.io"})),
        );
    }
    let field = |m: Option<&serde_json::Map<String, Value>>, k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let reason = match who {
        Caller::User(user) if resource.is_some() => user.authorize(&ResourceAttributes {
            verb: field(resource, "verb"),
            group: field(resource, "group"),
            resource: field(resource, "resource"),
            subresource: field(resource, "subresource"),
            namespace: field(resource, "namespace"),
            name: field(resource, "name"),
        }),
        Caller::User(user) => {
            user.authorize_path(&field(non_resource, "verb"), &field(non_resource, "path"))
        }
        _ => Some(String::new()),
    };
    let mut status_field = json!({"allowed": reason.is_some()});
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        status_field["reason"] = json!(reason);
    }
    created(&json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": spec,
        "status": status_field,
    }))
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: who the caller is
/// (`kubectl auth whoami`).
async fn self_subject_review(who: &Caller, req: Request) -> Response {
    if req.method() != Method::POST {
        return method_not_allowed();
    }
    match review_body(req).await {
        Ok(Decoded::Json(_) | Decoded::Protobuf { object: true, .. }) => {}
        Ok(Decoded::Protobuf { object: false, .. }) => {
            return bad_request("the body is not a protobuf-encoded object");
        }
        Err(msg) => return bad_request(msg),
    }
    let (username, groups) = who.identity();
    created(&json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
        "status": {"userInfo": {"username": username, "groups": groups}},
    }))
}

/// `GET /fake/users` (every user: name, token, groups, rules) and
/// `PUT /fake/users/{name}/rules` (a JSON list of rules replacing the user's).
async fn users_endpoint(app: &App, method: &Method, rest: &str, req: Request) -> Response {
    let bad = |msg: String| status(StatusCode::BAD_REQUEST, "BadRequest", msg, None);
    match (method, rest.strip_prefix('/').unwrap_or(rest)) {
        (&Method::GET, "") => json_response(&json!(app.users.all())),
        (&Method::PUT, path) if path.ends_with("/rules") => {
            let name = path.trim_end_matches("/rules");
            let body = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
                Ok(b) => b,
                Err(e) => return bad(format!("reading the rules failed: {e}")),
            };
            let rules: Vec<rbac::PolicyRule> = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return bad(format!("rules: expected a JSON list of rules: {e}")),
            };
            match app.users.set_rules(name, rules) {
                Ok(()) => json_response(&json!(app.users.get(name))),
                Err(e @ rbac::UsersError::Unknown(_)) => {
                    status(StatusCode::NOT_FOUND, "NotFound", e.to_string(), None)
                }
                Err(e) => bad(e.to_string()),
            }
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown users endpoint; GET users or PUT users/{name}/rules",
            None,
        ),
    }
}

fn api_group(name: &str) -> Value {
    let gv = format!("{name}/v1");
    json!({
        "name": name,
        "versions": [{"groupVersion": gv, "version": "v1"}],
        "preferredVersion": {"groupVersion": gv, "version": "v1"},
    })
}

fn resource_list(group_version: &str) -> Value {
    let mut resources = Vec::new();
    let review = |name: &str, kind: &str| json!({"name": name, "singularName": "", "namespaced": false, "kind": kind, "verbs": ["create"]});
    match group_version {
        "authorization.k8s.io/v1" => {
            resources.push(review(
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
            ));
        }
        "authentication.k8s.io/v1" => {
            resources.push(review("selfsubjectreviews", "SelfSubjectReview"));
        }
        _ => {}
    }
    for kind in Kind::ALL
        .into_iter()
        .filter(|k| k.api_version() == group_version)
    {
        let verbs = ["create", "delete", "get", "list", "patch", "watch"];
        let mut r = json!({
            "name": kind.plural(),
            "singularName": kind.singular(),
            "namespaced": kind.namespaced(),
            "kind": kind.name(),
            "verbs": verbs,
        });
        if !kind.short_names().is_empty() {
            r["shortNames"] = json!(kind.short_names());
        }
        if kind.in_category_all() {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        if kind != Kind::Namespace {
            resources.push(json!({
                "name": format!("{}/status", kind.plural()), "singularName": "",
                "namespaced": kind.namespaced(), "kind": kind.name(),
                "verbs": ["get", "patch"],
            }));
        }
        if kind == Kind::Pod {
            resources.push(json!({
                "name": "pods/portforward", "singularName": "", "namespaced": true,
                "kind": "PodPortForwardOptions", "verbs": ["create", "get"],
            }));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// Query parameters the API layer understands.
#[derive(Default)]
struct ListParams {
    watch: bool,
    label: LabelSelector,
    field: FieldSelector,
    resource_version: Option<u64>,
    timeout: Option<Duration>,
    send_initial_events: bool,
    include_object: String,
}

/// Parses the query; the error is the message of a 400 `BadRequest`.
fn parse_params(uri: &http::Uri) -> Result<ListParams, String> {
    let Query(pairs) =
        Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| e.body_text())?;
    let mut p = ListParams::default();
    for (k, v) in pairs {
        match k.as_str() {
            "watch" => p.watch = v == "1" || v == "true",
            "labelSelector" => p.label = LabelSelector::parse(&v)?,
            "fieldSelector" => p.field = FieldSelector::parse(&v)?,
            "resourceVersion" if !v.is_empty() => {
                let rv: u64 = v.parse().map_err(|_| {
                    format!("resourceVersion: Invalid value: \"{v}\": must be a number")
                })?;
                // "0" means "any version": start from the current state.
                p.resource_version = (rv != 0).then_some(rv);
            }
            "timeoutSeconds" => {
                let s: u64 = v
                    .parse()
                    .map_err(|_| format!("timeoutSeconds: Invalid value: \"{v}\""))?;
                p.timeout = Some(Duration::from_secs(s));
            }
            "sendInitialEvents" => p.send_initial_events = v == "true",
            "includeObject" => p.include_object = v,
            _ => {}
        }
    }
    Ok(p)
}

async fn resource(app: &Arc<App>, group: &str, rest: &[&str], req: Request) -> Response {
    // Shapes: [plural], [plural, name], [namespaces, ns, plural], [namespaces, ns, plural, name(, sub)].
    let (namespace, plural, name, sub) = match rest {
        [plural] => (None, *plural, None, None),
        ["namespaces", ns, plural] => (Some(*ns), *plural, None, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name), None),
        ["namespaces", ns, plural, name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
        [plural, name] => (None, *plural, Some(*name), None),
        [plural, name, sub] => (None, *plural, Some(*name), Some(*sub)),
        _ => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            );
        }
    };
    let Some(kind) = Kind::from_path(group, plural) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        );
    };
    if name.is_some() && kind.namespaced() != namespace.is_some() {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        );
    }
    let method = req.method().clone();
    match (sub, name) {
        (Some("portforward"), Some(pod)) if kind == Kind::Pod => {
            let namespace = namespace.unwrap_or_default().to_string();
            let pod = pod.to_string();
            portforward_upgrade(app, &namespace, &pod, req).await
        }
        (Some("status"), Some(name)) if method == Method::GET => {
            match app.cluster.get(kind, namespace.unwrap_or(""), name) {
                Ok(obj) => json_response(&obj),
                Err(e) => store_error(e, Some(kind)),
            }
        }
        (Some("status"), Some(name)) if method == Method::PATCH => {
            let ns = namespace.unwrap_or("").to_string();
            let name = name.to_string();
            patch(app, kind, &ns, &name, Some("status"), req).await
        }
        (Some(_), _) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        ),
        (None, None) => match method {
            Method::GET => list_or_watch(app, kind, namespace, &req),
            Method::POST => {
                let ns = namespace.unwrap_or("").to_string();
                let body = match axum::body::to_bytes(req.into_body(), 4 << 20).await {
                    Ok(b) => b,
                    Err(e) => {
                        return status(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!("reading the object failed: {e}"),
                            None,
                        );
                    }
                };
                let obj: Value = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return status(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!("the object is not valid JSON: {e}"),
                            None,
                        );
                    }
                };
                match app.cluster.create(kind, &ns, obj) {
                    Ok(obj) => {
                        let mut res = json_response(&obj);
                        *res.status_mut() = StatusCode::CREATED;
                        res
                    }
                    Err(e) => store_error(e, Some(kind)),
                }
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "the fake cluster does not support {method} on the {} collection",
                    kind.plural()
                ),
                None,
            ),
        },
        (None, Some(name)) => {
            let ns = namespace.unwrap_or("");
            match method {
                Method::GET => match app.cluster.get(kind, ns, name) {
                    Ok(obj) => {
                        if wants_table(req.headers()) {
                            let params = parse_params(req.uri()).unwrap_or_default();
                            json_response(&table(
                                kind,
                                &[obj],
                                app.cluster.resource_version(),
                                &params.include_object,
                            ))
                        } else {
                            json_response(&obj)
                        }
                    }
                    Err(e) => store_error(e, Some(kind)),
                },
                Method::DELETE => {
                    let (ns, name) = (ns.to_string(), name.to_string());
                    let query = parse_delete_query(req.uri());
                    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                        .await
                        .unwrap_or_default();
                    let opts: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let grace = query.or_else(|| opts["gracePeriodSeconds"].as_i64());
                    let uid = opts["preconditions"]["uid"].as_str();
                    match app.cluster.delete(kind, &ns, &name, grace, uid) {
                        Ok(obj) => json_response(&obj),
                        Err(e) => store_error(e, Some(kind)),
                    }
                }
                Method::PATCH => {
                    let (ns, name) = (ns.to_string(), name.to_string());
                    patch(app, kind, &ns, &name, None, req).await
                }
                other => status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!(
                        "the fake cluster does not support {other} on {}",
                        kind.plural()
                    ),
                    None,
                ),
            }
        }
    }
}

/// `gracePeriodSeconds` from a DELETE's query.
fn parse_delete_query(uri: &http::Uri) -> Option<i64> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).ok()?;
    pairs
        .iter()
        .find(|(k, _)| k == "gracePeriodSeconds")
        .and_then(|(_, v)| v.parse().ok())
}

async fn patch(
    app: &Arc<App>,
    kind: Kind,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    req: Request,
) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), 4 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("reading the patch failed: {e}"),
                None,
            );
        }
    };
    match app
        .cluster
        .patch_sub(kind, ns, name, sub, &content_type, &body)
    {
        Ok(obj) => {
            info!(kind = kind.name(), namespace = ns, name, "patched");
            json_response(&obj)
        }
        Err(e) => store_error(e, Some(kind)),
    }
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

/// Removes `kind` and `apiVersion`, which a real server leaves out of list items.
fn list_item(obj: &Value) -> Value {
    let mut item = obj.clone();
    if let Some(m) = item.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    item
}

fn list_or_watch(app: &Arc<App>, kind: Kind, namespace: Option<&str>, req: &Request) -> Response {
    let params = match parse_params(req.uri()) {
        Ok(p) => p,
        Err(msg) => return status(StatusCode::BAD_REQUEST, "BadRequest", msg, None),
    };
    if params.watch {
        let table = wants_table(req.headers()).then(|| params.include_object.clone());
        return watch(app, kind, namespace.map(str::to_string), params, table);
    }
    let (rv, items) = app.cluster.list(kind, namespace);
    let items: Vec<Arc<Value>> = items
        .into_iter()
        .filter(|o| params.label.matches(o) && params.field.matches(o))
        .collect();
    if wants_table(req.headers()) {
        return json_response(&table(kind, &items, rv, &params.include_object));
    }
    json_response(&json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items.iter().map(|o| list_item(o)).collect::<Vec<_>>(),
    }))
}

fn watch(
    app: &Arc<App>,
    kind: Kind,
    namespace: Option<String>,
    params: ListParams,
    table: Option<String>,
) -> Response {
    let initial = params.resource_version.is_none() || params.send_initial_events;
    let WatchStart {
        backlog,
        rx,
        rv: rv_now,
    } = match app
        .cluster
        .watch_from(kind, params.resource_version, initial)
    {
        Ok(v) => v,
        Err(e @ StoreError::Expired { .. }) => {
            // A real server reports an expired version as an ERROR event on a 200 stream.
            let line = json!({
                "type": "ERROR",
                "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": e.to_string(), "reason": "Expired", "code": 410},
            });
            return watch_body(futures::stream::once(async move {
                Ok::<_, std::convert::Infallible>(Bytes::from(format!("{line}\n")))
            }));
        }
        Err(e) => return store_error(e, Some(kind)),
    };
    let (tx, mut out) = mpsc::channel::<Bytes>(64);
    let send_bookmark = params.send_initial_events;
    let timeout = params.timeout.unwrap_or(Duration::from_secs(1800));
    tokio::spawn(async move {
        let filter = WatchFilter {
            namespace,
            table,
            label: params.label,
            field: params.field,
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut rx = rx;
        for change in backlog {
            if let Some(line) = filter.event_line(&change)
                && tx.send(line).await.is_err()
            {
                return;
            }
        }
        if send_bookmark {
            let line = json!({
                "type": "BOOKMARK",
                "object": {
                    "kind": kind.name(), "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": rv_now.to_string(),
                                 "annotations": {"k8s.io/initial-events-end": "true"}},
                },
            });
            if tx.send(Bytes::from(format!("{line}\n"))).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                () = &mut deadline => return,
                () = tx.closed() => return,
                msg = rx.recv() => match msg {
                    Ok(change) if change.kind == kind && change.rv > rv_now => {
                        if let Some(line) = filter.event_line(&change)
                            && tx.send(line).await.is_err() {
                                return;
                            }
                    }
                    Ok(_) => {}
                    // A watcher that falls behind is closed; the client resumes from the
                    // last version it saw, which the history still holds.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        out.poll_recv(cx)
            .map(|o| o.map(Ok::<_, std::convert::Infallible>))
    });
    watch_body(stream)
}

fn watch_body<S>(stream: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
{
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

struct WatchFilter {
    namespace: Option<String>,
    /// `Some(includeObject)` when the client asked for server-side tables (`kubectl get -w`).
    table: Option<String>,
    label: LabelSelector,
    field: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        self.label.matches(obj) && self.field.matches(obj)
    }

    /// The event line for a change, translating selector transitions into ADDED/DELETED
    /// as a real API server's watch cache does.
    fn event_line(&self, change: &Change) -> Option<Bytes> {
        if let Some(ns) = &self.namespace
            && &change.namespace != ns
        {
            return None;
        }
        let now = self.matches(&change.object);
        let before = change.old.as_deref().is_some_and(|o| self.matches(o));
        let ty = match change.ty {
            EventType::Added if now => EventType::Added,
            EventType::Deleted if before || now => EventType::Deleted,
            EventType::Modified => match (before, now) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return None,
            },
            _ => return None,
        };
        let line = match &self.table {
            Some(include) => json!({
                "type": ty.as_str(),
                "object": table(change.kind, std::slice::from_ref(&change.object), change.rv, include),
            }),
            None => json!({"type": ty.as_str(), "object": &*change.object}),
        };
        Some(Bytes::from(format!("{line}\n")))
    }
}

async fn portforward_upgrade(app: &Arc<App>, namespace: &str, pod: &str, req: Request) -> Response {
    let tunnel_served =
        app.spdy_over_websocket && !app.faults.protocol_refused(Protocol::SpdyWebSocket);
    let protocol = upgrade::requested_protocol(req.headers(), tunnel_served);
    let res = answer_portforward(app, namespace, pod, req, protocol, tunnel_served).await;
    app.stats
        .answered(protocol, res.status() == StatusCode::SWITCHING_PROTOCOLS);
    res
}

async fn answer_portforward(
    app: &Arc<App>,
    namespace: &str,
    pod: &str,
    req: Request,
    protocol: Protocol,
    tunnel_served: bool,
) -> Response {
    // Authorization comes first on a real API server, before the pod is looked up.
    if app.faults.portforward_forbidden() {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "pods \"{pod}\" is forbidden: User \"{FORBIDDEN_USER}\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"{namespace}\""
            ),
            Some(json!({"name": pod, "kind": "pods"})),
        );
    }
    // Like a real API server, look the pod up before upgrading.
    if let Err(e) = app.cluster.get(Kind::Pod, namespace, pod) {
        return store_error(e, Some(Kind::Pod));
    }
    if let Some(left) = app.faults.portforward_refused() {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!(
                "error dialing backend: injected portforward refusal ({}s left)",
                left.as_secs()
            ),
            None,
        );
    }
    let served = match protocol {
        Protocol::SpdyWebSocket => tunnel_served,
        other => !app.faults.protocol_refused(other),
    };
    if !served {
        return upgrade::refusal(protocol, req.headers());
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let (mut parts, _body) = req.into_parts();
    if let Some(kubelet) = app.cluster.kubelet_of(namespace, pod) {
        let session = crate::kubelet_proxy::Proxied {
            abort: app.faults.tunnel_token(),
            guard: app.faults.tunnel_opened(),
            gate: app.faults.gate(),
        };
        return crate::kubelet_proxy::proxy(
            kubelet, namespace, pod, &query, parts, protocol, session,
        )
        .await;
    }
    let connector = Arc::new(PodPorts {
        cluster: app.cluster.clone(),
        namespace: namespace.to_string(),
        pod: pod.to_string(),
    });
    let target = upgrade::Target {
        connector,
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        end: app.cluster.pod_token(namespace, pod),
        abort: app.faults.tunnel_token(),
        guard: Some(app.faults.tunnel_opened()),
        gate: app.faults.gate(),
        stats: Some(app.stats.clone()),
        idle: app.idle_timeout,
    };
    upgrade::portforward(&mut parts, &query, "ports", protocol, target).await
}

/// The pod ports a session connects to, reached as kubelet reaches them.
pub(crate) struct PodPorts {
    cluster: Arc<Cluster>,
    namespace: String,
    pod: String,
}

impl spdy::session::PortConnector for PodPorts {
    async fn connect(&self, port: u16) -> Result<tokio::net::TcpStream, String> {
        portforward::connect_pod(&self.cluster, &self.namespace, &self.pod, port).await
    }
}

/// The value of the query parameter `name`, if given.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// A switch's query parameter: `true`/`1`/`on` or `false`/`0`/`off`, `true` when absent.
fn switch_param(query: Option<&str>, name: &str) -> Result<bool, String> {
    match query_param(query, name) {
        None | Some("true" | "1" | "on") => Ok(true),
        Some("false" | "0" | "off") => Ok(false),
        Some(other) => Err(format!("{name}: expected true or false, got `{other}`")),
    }
}

fn fake_endpoint(app: &App, method: &Method, rest: &str, query: Option<&str>) -> Response {
    let seconds = query_param(query, "seconds").map(str::parse::<u64>);
    let secs = || match seconds {
        Some(Ok(s)) => Ok(Duration::from_secs(s)),
        Some(Err(_)) => Err("seconds: expected a whole number of seconds"),
        None => Err("seconds: required, e.g. ?seconds=10"),
    };
    let bad = |msg: &str| status(StatusCode::BAD_REQUEST, "BadRequest", msg, None);
    match (method, rest) {
        (&Method::GET, "backends") => json_response(&json!(app.cluster.backends())),
        (&Method::GET, "faults") => {
            let refused: Vec<Protocol> = Protocol::ALL
                .into_iter()
                .filter(|p| app.faults.protocol_refused(*p))
                .collect();
            json_response(&json!({
                "refused_protocols": refused,
                "portforward_forbidden": app.faults.portforward_forbidden(),
                "open_tunnels": app.faults.open_tunnels(),
            }))
        }
        (&Method::POST, "faults/drop-tunnels") => {
            let n = app.faults.drop_tunnels();
            json_response(&json!({"dropped": n}))
        }
        (&Method::POST, "faults/refuse-portforward") => match secs() {
            Ok(d) => {
                app.faults.refuse_portforward(d);
                json_response(&json!({"refusing_for_seconds": d.as_secs()}))
            }
            Err(msg) => bad(msg),
        },
        (&Method::POST, "faults/refuse-protocol") => {
            let protocol = match query_param(query, "protocol").map(str::parse::<Protocol>) {
                Some(Ok(p)) => p,
                Some(Err(e)) => return bad(&format!("protocol: {e}")),
                None => return bad("protocol: required, one of spdy, spdy-websocket, channel"),
            };
            match switch_param(query, "refuse") {
                Ok(refuse) => {
                    app.faults.refuse_protocol(protocol, refuse);
                    json_response(&json!({"protocol": protocol, "refused": refuse}))
                }
                Err(msg) => bad(&msg),
            }
        }
        (&Method::POST, "faults/forbid-portforward") => match switch_param(query, "forbid") {
            Ok(forbid) => {
                app.faults.forbid_portforward(forbid);
                json_response(&json!({"forbidden": forbid}))
            }
            Err(msg) => bad(&msg),
        },
        (&Method::POST, "faults/freeze-sessions") => {
            let n = app.faults.freeze_sessions();
            json_response(&json!({"frozen": n}))
        }
        (&Method::POST, "faults/thaw-sessions") => {
            let any = app.faults.thaw_sessions();
            json_response(&json!({"thawed": any}))
        }
        (&Method::POST, "faults/fail-api") => match secs() {
            Ok(d) => {
                app.faults.fail_api(d);
                json_response(&json!({"failing_for_seconds": d.as_secs()}))
            }
            Err(msg) => bad(msg),
        },
        (&Method::POST, "tokens") => {
            let ttl = query_param(query, "ttl_seconds").map(str::parse::<u64>);
            match ttl {
                Some(Ok(s)) if s > 0 => {
                    json_response(&json!(app.tokens.issue(Duration::from_secs(s))))
                }
                _ => bad("ttl_seconds: required, a whole number of seconds above 0"),
            }
        }
        (&Method::POST, "faults/clear") => {
            app.faults.clear();
            json_response(&json!({"cleared": true}))
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown fault endpoint; POST faults/drop-tunnels, faults/refuse-portforward?seconds=N, faults/refuse-protocol?protocol=spdy|spdy-websocket|channel&refuse=true|false, faults/forbid-portforward?forbid=true|false, faults/freeze-sessions, faults/thaw-sessions, faults/fail-api?seconds=N, faults/clear, tokens?ttl_seconds=N or GET backends, faults, portforward, requests",
            None,
        ),
    }
}

// === server-side tables, as kubectl asks for them ===

fn age(obj: &Value) -> String {
    let Some(created) = obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn col(name: &str, ty: &str, priority: u8) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": name, "priority": priority})
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn table(kind: Kind, items: &[Arc<Value>], rv: u64, include_object: &str) -> Value {
    let columns: Vec<Value> = match kind {
        Kind::Namespace => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Age", "string", 0),
        ],
        Kind::Pod => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
        ],
        Kind::Service => vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            col("Age", "string", 0),
            col("Selector", "string", 1),
        ],
        Kind::Deployment => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Age", "string", 0),
        ],
        Kind::StatefulSet => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Age", "string", 0),
        ],
        Kind::ReplicaSet => vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
        ],
        Kind::Node => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
        ],
        Kind::ServiceAccount => vec![
            col("Name", "string", 0),
            col("Secrets", "integer", 0),
            col("Age", "string", 0),
        ],
        Kind::EndpointSlice => vec![
            col("Name", "string", 0),
            col("AddressType", "string", 0),
            col("Ports", "string", 0),
            col("Endpoints", "string", 0),
            col("Age", "string", 0),
        ],
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let name = o["metadata"]["name"].clone();
            let cells = match kind {
                Kind::Namespace => json!([name, o["status"]["phase"], age(o)]),
                Kind::Pod => {
                    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
                    let ready = o["status"]["containerStatuses"]
                        .as_array()
                        .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
                    let reason = o["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                        .as_str()
                        .or(o["status"]["phase"].as_str())
                        .unwrap_or("Unknown")
                        .to_string();
                    let restarts = o["status"]["containerStatuses"][0]["restartCount"]
                        .as_u64()
                        .unwrap_or(0);
                    json!([
                        name,
                        format!("{ready}/{total}"),
                        reason,
                        restarts,
                        age(o),
                        o["status"]["podIP"].as_str().unwrap_or("<none>"),
                        o["spec"]["nodeName"]
                    ])
                }
                Kind::Service => {
                    let ports = o["spec"]["ports"]
                        .as_array()
                        .map(|ps| {
                            ps.iter()
                                .map(|p| {
                                    format!(
                                        "{}/{}",
                                        n(&p["port"]),
                                        p["protocol"].as_str().unwrap_or("TCP")
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    let selector = o["spec"]["selector"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_else(|| "<none>".into());
                    json!([
                        name,
                        o["spec"]["type"],
                        o["spec"]["clusterIP"],
                        "<none>",
                        ports,
                        age(o),
                        selector
                    ])
                }
                Kind::Deployment => json!([
                    name,
                    format!(
                        "{}/{}",
                        n(&o["status"]["readyReplicas"]),
                        n(&o["spec"]["replicas"])
                    ),
                    n(&o["status"]["updatedReplicas"]),
                    n(&o["status"]["availableReplicas"]),
                    age(o)
                ]),
                Kind::StatefulSet => json!([
                    name,
                    format!(
                        "{}/{}",
                        n(&o["status"]["readyReplicas"]),
                        n(&o["spec"]["replicas"])
                    ),
                    age(o)
                ]),
                Kind::ReplicaSet => json!([
                    name,
                    n(&o["spec"]["replicas"]),
                    n(&o["status"]["replicas"]),
                    n(&o["status"]["readyReplicas"]),
                    age(o)
                ]),
                Kind::Node => {
                    let ready = o["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    let ip = o["status"]["addresses"].as_array().and_then(|a| {
                        a.iter()
                            .find(|a| a["type"] == "InternalIP")
                            .and_then(|a| a["address"].as_str())
                    });
                    json!([
                        name,
                        if ready { "Ready" } else { "NotReady" },
                        "<none>",
                        age(o),
                        o["status"]["nodeInfo"]["kubeletVersion"],
                        ip.unwrap_or("<none>")
                    ])
                }
                Kind::ServiceAccount => {
                    json!([name, o["secrets"].as_array().map_or(0, Vec::len), age(o)])
                }
                Kind::EndpointSlice => {
                    let ports = o["ports"]
                        .as_array()
                        .map(|ps| {
                            ps.iter()
                                .map(|p| n(&p["port"]).to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "<unset>".into());
                    let eps = o["endpoints"]
                        .as_array()
                        .map(|es| {
                            es.iter()
                                .filter_map(|e| e["addresses"][0].as_str().map(str::to_string))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "<none>".into());
                    json!([name, o["addressType"], ports, eps, age(o)])
                }
            };
            let object = match include_object {
                "None" => Value::Null,
                "Object" => (**o).clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                }),
            };
            let mut row = json!({"cells": cells});
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}
