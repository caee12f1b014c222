//! The cluster's state: the object store, its resource versions and change history, and the
//! fake controllers (ReplicaSet, StatefulSet, EndpointSlice, kubelet readiness) that act on
//! it.
//!
//! All state sits behind one short, synchronous lock. Nothing awaits while holding it; the
//! delayed actions of the controllers (recreate a pod, mark it Ready) are tasks that sleep
//! first and then take the lock for one synchronous step. Every change is appended to a
//! bounded history and broadcast while the lock is held, so a watcher that reads the
//! history and subscribes under the same lock sees every change exactly once.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::backend::PortBackend;
use crate::kind::Kind;
use crate::objects::{
    self, PodTemplate, controller_owner, is_owned_by, owner_ref, set_pod_running, strip_times, uid,
};
pub use crate::objects::{now, pod_is_ready};
use crate::scenario::{Behavior, NamespaceSpec, PortSpec, Scenario, Timing};

/// The annotation that switches every port of a pod to another behaviour.
pub const BEHAVIOR_ANNOTATION: &str = "fake.ferry.dev/behavior";

/// How many changes the history keeps for watchers that resume from a resource version.
const HISTORY: usize = 8192;

/// The node every fake pod runs on.
pub const NODE_NAME: &str = "ferry-fake-node";

/// The address of that node, as pods' `hostIP` gives it.
const HOST_IP: &str = "192.0.2.10";

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The `type` field of a watch event.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Debug)]
pub struct Change {
    /// The resource version the change produced.
    pub rv: u64,
    pub kind: Kind,
    pub namespace: String,
    pub ty: EventType,
    /// The object after the change (for deletions: the last state, with the new version).
    pub object: Arc<Value>,
    /// The object before the change, for modifications and deletions.
    pub old: Option<Arc<Value>>,
}

/// Errors of store operations, mapped to API `Status` objects by the API layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{plural} \"{name}\" not found")]
    NotFound { plural: &'static str, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error("{plural} \"{name}\" already exists")]
    AlreadyExists { plural: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
}

type ObjKey = (Kind, String, String);

/// The run-time side of a pod: its port servers and the token that ends its tunnels.
struct PodRuntime {
    namespace: String,
    name: String,
    /// Cancelled when the pod is deleted: ends its backends and tunnels.
    token: CancellationToken,
    backends: Vec<PortBackend>,
    /// The behaviour each port has without the annotation.
    base_behaviors: Vec<Behavior>,
    /// Tunnels opened to this pod (one per forwarded port per request).
    tunnels: u64,
}

impl Drop for PodRuntime {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The start of a watch: events to send first, then what `rx` receives after `rv`.
pub struct WatchStart {
    pub backlog: Vec<Arc<Change>>,
    pub rx: broadcast::Receiver<Arc<Change>>,
    pub rv: u64,
}

/// What a tunnel needs to reach one pod port.
#[derive(Debug, Clone)]
pub struct PortTarget {
    pub pod_uid: String,
    pub running: bool,
    /// The backend's address, or `None` when the pod has no such port.
    pub addr: Option<SocketAddr>,
    pub behavior: Option<Behavior>,
}

/// A pod port's directly reachable server, for benchmarks and diagnostics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendInfo {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
    pub addr: SocketAddr,
    pub behavior: String,
}

struct State {
    rv: u64,
    objects: BTreeMap<ObjKey, Arc<Value>>,
    history: VecDeque<Arc<Change>>,
    /// The version of the newest change dropped from `history` (0 while none was).
    forgotten: u64,
    /// Run-time pieces keyed by pod uid.
    runtime: HashMap<String, PodRuntime>,
    /// Objects created through the API (by a client, such as a node's controllers): the
    /// fake's own controllers leave them alone, as a real API server without a controller
    /// manager does.
    external: HashSet<ObjKey>,
    next_pod_ip: u32,
    next_service_ip: u32,
}

/// The fake cluster's state and controllers. Cheap to share through `Arc`.
pub struct Cluster {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Change>>,
    timing: Timing,
    /// Parent of every pod token; cancelled when the server shuts down.
    root: CancellationToken,
    me: Weak<Cluster>,
}

// === impl Cluster ===

impl Cluster {
    /// Builds a cluster holding `scenario`'s objects. Must be called within a Tokio runtime
    /// (pod backends start listening at once).
    pub fn new(scenario: &Scenario, root: CancellationToken) -> Arc<Self> {
        let (events, _) = broadcast::channel(4096);
        let cluster = Arc::new_cyclic(|me| Cluster {
            state: Mutex::new(State {
                rv: 1000,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                forgotten: 0,
                runtime: HashMap::new(),
                external: HashSet::new(),
                next_pod_ip: 10,
                next_service_ip: 10,
            }),
            events,
            timing: scenario.timing,
            root,
            me: me.clone(),
        });
        {
            let mut st = cluster.state.lock();
            for ns in ["default", "kube-system"] {
                cluster.create_namespace(&mut st, ns);
            }
            for ns in &scenario.namespaces {
                cluster.load_namespace(&mut st, ns);
            }
        }
        cluster
    }

    /// The current resource version.
    pub fn resource_version(&self) -> u64 {
        self.state.lock().rv
    }

    /// Subscribes to changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.events.subscribe()
    }

    /// Reads one object.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Arc<Value>, StoreError> {
        let st = self.state.lock();
        st.objects
            .get(&(kind, ns_key(kind, namespace), name.to_string()))
            .cloned()
            .ok_or_else(|| not_found(kind, name))
    }

    /// Lists objects of a kind, in one namespace or all, with the list's resource version.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> (u64, Vec<Arc<Value>>) {
        let st = self.state.lock();
        let items = st
            .objects
            .range((kind, String::new(), String::new())..)
            .take_while(|((k, _, _), _)| *k == kind)
            .filter(|((_, ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (st.rv, items)
    }

    /// Starts a watch, atomically with respect to changes: returns the events to send first
    /// and a receiver for the ones that follow, plus the version they follow. With
    /// `initial`, the first events are synthetic ADDED events for every current object (a
    /// watch without a version, or `sendInitialEvents=true`); otherwise they are the
    /// recorded changes after `since`.
    pub fn watch_from(
        &self,
        kind: Kind,
        since: Option<u64>,
        initial: bool,
    ) -> Result<WatchStart, StoreError> {
        let st = self.state.lock();
        let rx = self.events.subscribe();
        let backlog = if initial {
            st.objects
                .range((kind, String::new(), String::new())..)
                .take_while(|((k, _, _), _)| *k == kind)
                .map(|((_, ns, _), obj)| {
                    Arc::new(Change {
                        rv: st.rv,
                        kind,
                        namespace: ns.clone(),
                        ty: EventType::Added,
                        object: obj.clone(),
                        old: None,
                    })
                })
                .collect()
        } else {
            let since = since.unwrap_or(st.rv);
            // The history holds every change after `forgotten`.
            if since < st.forgotten {
                return Err(StoreError::Expired {
                    requested: since,
                    oldest: st.forgotten,
                });
            }
            st.history
                .iter()
                .filter(|c| c.rv > since && c.kind == kind)
                .cloned()
                .collect()
        };
        Ok(WatchStart {
            backlog,
            rx,
            rv: st.rv,
        })
    }

    /// Deletes a pod as `kubectl delete pod` does. A pod owned by a workload is replaced
    /// after the recreate delay. Returns the deleted object.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<Arc<Value>, StoreError> {
        let mut st = self.state.lock();
        let key = (Kind::Pod, namespace.to_string(), name.to_string());
        let Some(pod) = st.objects.get(&key).cloned() else {
            return Err(not_found(Kind::Pod, name));
        };
        let mut gone = (*pod).clone();
        gone["metadata"]["deletionTimestamp"] = json!(now());
        gone["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let gone = self.remove(&mut st, Kind::Pod, namespace, name, Some(gone));
        if let Some(uid) = pod["metadata"]["uid"].as_str() {
            // Dropping the run-time cancels the pod's backends and open tunnels.
            st.runtime.remove(uid);
        }
        self.sync_namespace(&mut st, namespace);
        if let Some(owner) = controller_owner(&pod) {
            self.schedule_recreate(namespace.to_string(), owner, name.to_string());
        }
        info!(pod.namespace = namespace, pod.name = name, "pod deleted");
        Ok(gone)
    }

    /// Applies a patch to an object's metadata (labels and annotations). Other changes are
    /// refused, as a fake cluster has no controllers that would act on them.
    pub fn patch(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Arc<Value>, StoreError> {
        self.patch_sub(kind, namespace, name, None, content_type, body)
    }

    /// Applies a patch to an object, or with `subresource` `status`, to its status. The
    /// fake's own objects take metadata patches only; objects created through the API
    /// take any patch, as a real API server without controllers would: the main resource
    /// keeps its status, the `status` subresource changes nothing else.
    pub fn patch_sub(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Arc<Value>, StoreError> {
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| StoreError::BadRequest(format!("the patch is not valid JSON: {e}")))?;
        let mut st = self.state.lock();
        let key = (kind, ns_key(kind, namespace), name.to_string());
        let Some(before) = st.objects.get(&key).cloned() else {
            return Err(not_found(kind, name));
        };
        let mut after = (*before).clone();
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                json_patch::merge(&mut after, &patch);
            }
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
                    StoreError::BadRequest(format!("the JSON patch is malformed: {e}"))
                })?;
                json_patch::patch(&mut after, &ops).map_err(|e| {
                    StoreError::Invalid(format!("the JSON patch does not apply: {e}"))
                })?;
            }
            other => {
                return Err(StoreError::BadRequest(format!(
                    "the fake cluster does not support patch type `{other}`; use merge, strategic merge or JSON patch"
                )));
            }
        }
        let external = st.external.contains(&key);
        if subresource.is_some() && !external {
            return Err(StoreError::MethodNotAllowed(format!(
                "the fake cluster's own {} have their status written by its controllers",
                kind.plural()
            )));
        }
        if external {
            let mut next = (*before).clone();
            if subresource == Some("status") {
                next["status"] = after["status"].take();
            } else {
                let status = next["status"].take();
                next = after;
                if status.is_null() {
                    if let Some(m) = next.as_object_mut() {
                        m.remove("status");
                    }
                } else {
                    next["status"] = status;
                }
            }
            for field in ["name", "namespace", "uid", "creationTimestamp"] {
                next["metadata"][field] = before["metadata"][field].clone();
            }
            if kind == Kind::Pod
                && let Some(text) = next["metadata"]["annotations"][BEHAVIOR_ANNOTATION].as_str()
            {
                text.parse::<Behavior>().map_err(|e| {
                    StoreError::Invalid(format!("metadata.annotations[{BEHAVIOR_ANNOTATION}]: {e}"))
                })?;
            }
            if let Some(m) = next["metadata"].as_object_mut() {
                m.remove("managedFields");
                m.retain(|_, v| !v.is_null());
            }
            return Ok(self.put(&mut st, kind, next, Some(before)));
        }
        // Only labels and annotations may change.
        let mut rest = after.clone();
        for field in ["labels", "annotations", "resourceVersion", "managedFields"] {
            match before["metadata"].get(field) {
                Some(v) => rest["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = rest["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if rest != *before {
            return Err(StoreError::Invalid(format!(
                "{} \"{name}\" is invalid: the fake cluster only patches metadata.labels and metadata.annotations",
                kind.plural()
            )));
        }
        for field in ["labels", "annotations"] {
            if let Some(map) = after["metadata"].get(field) {
                let ok = map.is_null()
                    || map
                        .as_object()
                        .is_some_and(|m| m.values().all(Value::is_string));
                if !ok {
                    return Err(StoreError::Invalid(format!(
                        "metadata.{field}: values must be strings"
                    )));
                }
            }
        }
        let behavior = if kind == Kind::Pod {
            match after["metadata"]["annotations"][BEHAVIOR_ANNOTATION].as_str() {
                Some(text) => Some(Some(text.parse::<Behavior>().map_err(|e| {
                    StoreError::Invalid(format!("metadata.annotations[{BEHAVIOR_ANNOTATION}]: {e}"))
                })?)),
                None => Some(None),
            }
        } else {
            None
        };
        if let Some(m) = after["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        let updated = self.put(&mut st, kind, after, Some(before.clone()));
        if let (Some(behavior), Some(uid)) = (behavior, updated["metadata"]["uid"].as_str())
            && let Some(rt) = st.runtime.get(uid)
        {
            for (backend, base) in rt.backends.iter().zip(&rt.base_behaviors) {
                backend.set_behavior(behavior.clone().unwrap_or_else(|| base.clone()));
            }
        }
        if kind == Kind::Pod || kind == Kind::Service {
            self.sync_namespace(&mut st, namespace);
        }
        Ok(updated)
    }

    /// Creates an object sent by a client (`POST`). The fake's controllers leave it alone:
    /// a pod created this way is its node's to start, a Service gets no EndpointSlices but
    /// those a client writes, as with a real API server without a controller manager.
    pub fn create(
        &self,
        kind: Kind,
        namespace: &str,
        mut obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        if !obj.is_object() || !obj["metadata"].is_object() {
            if obj.is_object() && obj.get("metadata").is_none() {
                obj["metadata"] = json!({});
            } else {
                return Err(StoreError::BadRequest(format!(
                    "the body is not a {} object",
                    kind.name()
                )));
            }
        }
        let mut st = self.state.lock();
        if kind.namespaced() {
            match obj["metadata"]["namespace"].as_str() {
                Some(ns) if ns != namespace => {
                    return Err(StoreError::BadRequest(format!(
                        "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
                    )));
                }
                _ => obj["metadata"]["namespace"] = json!(namespace),
            }
            if self.find(&st, Kind::Namespace, "", namespace).is_none() {
                return Err(not_found(Kind::Namespace, namespace));
            }
        }
        let name = match (
            obj["metadata"]["name"].as_str(),
            obj["metadata"]["generateName"].as_str(),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => {
                format!("{prefix}{}", objects::random_suffix())
            }
            _ => {
                return Err(StoreError::Invalid(format!(
                    "{} is invalid: metadata.name: Required value: name or generateName is required",
                    kind.name()
                )));
            }
        };
        obj["metadata"]["name"] = json!(name);
        if self.find(&st, kind, namespace, &name).is_some() {
            return Err(StoreError::AlreadyExists {
                plural: kind.plural(),
                name,
            });
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            for field in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
            ] {
                m.remove(field);
            }
        }
        match kind {
            Kind::Pod => {
                // As a real API server: a new pod is Pending until its node says otherwise.
                obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
            Kind::Namespace => {
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                obj["status"] = json!({"phase": "Active"});
            }
            Kind::Service if obj["spec"]["clusterIP"].is_null() => {
                let ip = format!("10.96.0.{}", st.next_service_ip);
                st.next_service_ip += 1;
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            _ => {}
        }
        let key = (kind, ns_key(kind, namespace), name.clone());
        st.external.insert(key);
        let created = self.put(&mut st, kind, obj, None);
        info!(kind = kind.name(), namespace, name, "created");
        Ok(created)
    }

    /// Deletes an object as `DELETE` asks. The fake's own pods go at once (and are
    /// replaced by their workload); other fake objects cannot be deleted. Objects created
    /// through the API are removed, except pods bound to a node: those get a
    /// `deletionTimestamp` and stay until deleted with a grace period of 0, which is what
    /// their node does (as with a real API server and kubelet).
    pub fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        grace_seconds: Option<i64>,
        uid_precondition: Option<&str>,
    ) -> Result<Arc<Value>, StoreError> {
        let key = (kind, ns_key(kind, namespace), name.to_string());
        let mut st = self.state.lock();
        let Some(obj) = st.objects.get(&key).cloned() else {
            return Err(not_found(kind, name));
        };
        if let Some(want) = uid_precondition
            && obj["metadata"]["uid"].as_str() != Some(want)
        {
            return Err(StoreError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {want}, UID in object meta: {}",
                kind.plural(),
                obj["metadata"]["uid"].as_str().unwrap_or_default()
            )));
        }
        if !st.external.contains(&key) {
            drop(st);
            if kind == Kind::Pod {
                return self.delete_pod(namespace, name);
            }
            return Err(StoreError::MethodNotAllowed(format!(
                "the fake cluster does not delete its own {}",
                kind.plural()
            )));
        }
        if kind == Kind::Pod && obj["spec"]["nodeName"].is_string() {
            let grace = grace_seconds
                .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30);
            if grace > 0 {
                if obj["metadata"].get("deletionTimestamp").is_some() {
                    return Ok(obj);
                }
                let mut next = (*obj).clone();
                let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
                next["metadata"]["deletionTimestamp"] =
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                info!(
                    pod.namespace = namespace,
                    pod.name = name,
                    grace,
                    "pod terminating"
                );
                return Ok(self.put(&mut st, kind, next, Some(obj)));
            }
        }
        st.external.remove(&key);
        let mut last = (*obj).clone();
        if kind == Kind::Pod && last["metadata"].get("deletionTimestamp").is_none() {
            last["metadata"]["deletionTimestamp"] = json!(now());
            last["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        let gone = self.remove(&mut st, kind, namespace, name, Some(last));
        info!(kind = kind.name(), namespace, name, "deleted");
        Ok(gone)
    }

    /// Marks a Running pod Ready or not Ready, as a failing readiness probe would.
    pub fn set_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        ready: bool,
    ) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        let pod = st
            .objects
            .get(&(Kind::Pod, namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| not_found(Kind::Pod, name))?;
        let mut next = (*pod).clone();
        set_pod_running(&mut next, ready);
        self.put(&mut st, Kind::Pod, next, Some(pod));
        self.sync_namespace(&mut st, namespace);
        Ok(())
    }

    /// Switches every port of a pod to `behavior` through the annotation, as
    /// `kubectl annotate` would.
    pub fn set_behavior(
        &self,
        namespace: &str,
        name: &str,
        behavior: &Behavior,
    ) -> Result<(), StoreError> {
        let patch =
            json!({"metadata": {"annotations": {BEHAVIOR_ANNOTATION: behavior.to_string()}}});
        self.patch(
            Kind::Pod,
            namespace,
            name,
            "application/merge-patch+json",
            patch.to_string().as_bytes(),
        )
        .map(|_| ())
    }

    /// Where a tunnel to `pod:port` connects.
    pub fn port_target(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<(PortTarget, CancellationToken), StoreError> {
        let mut st = self.state.lock();
        let obj = st
            .objects
            .get(&(Kind::Pod, namespace.to_string(), pod.to_string()))
            .ok_or_else(|| not_found(Kind::Pod, pod))?;
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let running = obj["status"]["phase"] == "Running";
        if let Some(rt) = st.runtime.get_mut(&uid) {
            rt.tunnels += 1;
        }
        let rt = st.runtime.get(&uid);
        let backend = rt.and_then(|rt| rt.backends.iter().find(|b| b.container_port == port));
        let token = rt.map(|rt| rt.token.clone()).unwrap_or_else(|| {
            let t = CancellationToken::new();
            t.cancel();
            t
        });
        Ok((
            PortTarget {
                pod_uid: uid,
                running,
                addr: backend.map(|b| b.addr),
                behavior: backend.map(PortBackend::behavior),
            },
            token,
        ))
    }

    /// The kubelet endpoint of the node running `namespace/pod`, when the pod was created
    /// through the API and is bound to a registered Node on a loopback address.
    pub(crate) fn kubelet_of(&self, namespace: &str, pod: &str) -> Option<SocketAddr> {
        let st = self.state.lock();
        let key = (Kind::Pod, namespace.to_string(), pod.to_string());
        if !st.external.contains(&key) {
            return None;
        }
        let node_name = st.objects.get(&key)?["spec"]["nodeName"]
            .as_str()?
            .to_string();
        let node = st.objects.get(&(Kind::Node, String::new(), node_name))?;
        let ip: std::net::IpAddr = node["status"]["addresses"]
            .as_array()?
            .iter()
            .find(|a| a["type"] == "InternalIP")?["address"]
            .as_str()?
            .parse()
            .ok()?;
        let port =
            u16::try_from(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?)
                .ok()?;
        ip.is_loopback().then_some(SocketAddr::new(ip, port))
    }

    /// The token cancelled when `namespace/pod` goes away (deleted, or the cluster stopped).
    /// Already cancelled when there is no such pod.
    pub(crate) fn pod_token(&self, namespace: &str, pod: &str) -> CancellationToken {
        let st = self.state.lock();
        let uid = st
            .objects
            .get(&(Kind::Pod, namespace.to_string(), pod.to_string()))
            .and_then(|obj| obj["metadata"]["uid"].as_str().map(str::to_string));
        match uid.and_then(|uid| st.runtime.get(&uid)) {
            Some(rt) => rt.token.clone(),
            None => {
                let t = CancellationToken::new();
                t.cancel();
                t
            }
        }
    }

    /// How many tunnels were opened to `namespace/pod` (the pod object now, not earlier
    /// pods of the same name).
    pub fn tunnels_to(&self, namespace: &str, pod: &str) -> u64 {
        let st = self.state.lock();
        st.runtime
            .values()
            .filter(|rt| rt.namespace == namespace && rt.name == pod)
            .map(|rt| rt.tunnels)
            .sum()
    }

    /// Every pod port's server address.
    pub fn backends(&self) -> Vec<BackendInfo> {
        let st = self.state.lock();
        let mut out: Vec<BackendInfo> = st
            .runtime
            .values()
            .flat_map(|rt| {
                rt.backends.iter().map(|b| BackendInfo {
                    namespace: rt.namespace.clone(),
                    pod: rt.name.clone(),
                    port: b.container_port,
                    addr: b.addr,
                    behavior: b.behavior().to_string(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.pod, a.port).cmp(&(&b.namespace, &b.pod, b.port)));
        out
    }

    // --- store primitives (called with the lock held) ---

    /// Inserts or replaces an object, stamping its metadata, and records the change.
    fn put(
        &self,
        st: &mut State,
        kind: Kind,
        mut obj: Value,
        old: Option<Arc<Value>>,
    ) -> Arc<Value> {
        st.rv += 1;
        let rv = st.rv;
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let meta = &mut obj["metadata"];
        meta["resourceVersion"] = json!(rv.to_string());
        if meta.get("uid").is_none() {
            meta["uid"] = json!(uid());
        }
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!(now());
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.name());
        let obj = Arc::new(obj);
        let ty = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        st.objects
            .insert((kind, ns_key(kind, &namespace), name), obj.clone());
        self.record(
            st,
            Change {
                rv,
                kind,
                namespace,
                ty,
                object: obj.clone(),
                old,
            },
        );
        obj
    }

    fn remove(
        &self,
        st: &mut State,
        kind: Kind,
        namespace: &str,
        name: &str,
        last: Option<Value>,
    ) -> Arc<Value> {
        let key = (kind, ns_key(kind, namespace), name.to_string());
        let old = st.objects.remove(&key);
        st.rv += 1;
        let rv = st.rv;
        let mut last = last
            .or_else(|| old.as_deref().cloned())
            .unwrap_or(Value::Null);
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        let last = Arc::new(last);
        self.record(
            st,
            Change {
                rv,
                kind,
                namespace: namespace.to_string(),
                ty: EventType::Deleted,
                object: last.clone(),
                old,
            },
        );
        last
    }

    fn record(&self, st: &mut State, change: Change) {
        let change = Arc::new(change);
        if st.history.len() >= HISTORY
            && let Some(dropped) = st.history.pop_front()
        {
            st.forgotten = dropped.rv;
        }
        st.history.push_back(change.clone());
        // No receivers is fine: nobody watches yet.
        let _ = self.events.send(change);
    }

    fn find(&self, st: &State, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Value>> {
        st.objects
            .get(&(kind, ns_key(kind, namespace), name.to_string()))
            .cloned()
    }

    fn list_ns(st: &State, kind: Kind, namespace: &str) -> Vec<Arc<Value>> {
        st.objects
            .range((kind, namespace.to_string(), String::new())..)
            .take_while(|((k, ns, _), _)| *k == kind && ns == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    // --- scenario loading ---

    fn create_namespace(&self, st: &mut State, name: &str) {
        if self.find(st, Kind::Namespace, "", name).is_some() {
            return;
        }
        let obj = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        self.put(st, Kind::Namespace, obj, None);
    }

    fn load_namespace(&self, st: &mut State, spec: &NamespaceSpec) {
        let ns = spec.name.as_str();
        self.create_namespace(st, ns);
        for d in &spec.deployments {
            let deploy = self.put(
                st,
                Kind::Deployment,
                objects::deployment_object(ns, d),
                None,
            );
            let (rs, rs_labels) = objects::replicaset_object(ns, d, &deploy);
            let rs = self.put(st, Kind::ReplicaSet, rs, None);
            let rs_name = rs["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for _ in 0..d.replicas {
                let pod_name = format!("{rs_name}-{}", objects::random_suffix());
                self.create_pod(
                    st,
                    ns,
                    &pod_name,
                    &d.name,
                    &rs_labels,
                    &d.ports,
                    Some(owner_ref("apps/v1", "ReplicaSet", &rs)),
                    None,
                );
            }
        }
        for s in &spec.statefulsets {
            let sts = self.put(
                st,
                Kind::StatefulSet,
                objects::statefulset_object(ns, s),
                None,
            );
            let revision = objects::statefulset_revision(ns, &s.name);
            for i in 0..s.replicas {
                let pod_name = format!("{}-{i}", s.name);
                let labels = objects::statefulset_pod_labels(&s.labels, &pod_name, Some(&revision));
                self.create_pod(
                    st,
                    ns,
                    &pod_name,
                    &s.name,
                    &labels,
                    &s.ports,
                    Some(owner_ref("apps/v1", "StatefulSet", &sts)),
                    Some(&s.name),
                );
            }
        }
        for p in &spec.pods {
            self.create_pod(st, ns, &p.name, &p.name, &p.labels, &p.ports, None, None);
        }
        for s in &spec.services {
            let ip = format!("10.96.0.{}", st.next_service_ip);
            st.next_service_ip += 1;
            self.put(
                st,
                Kind::Service,
                objects::service_object(ns, s, Some(&ip)),
                None,
            );
        }
        self.sync_namespace(st, ns);
    }

    // --- the fake controllers ---

    /// Creates a Pending pod with its backends and schedules it to become Ready.
    #[allow(clippy::too_many_arguments)]
    fn create_pod(
        &self,
        st: &mut State,
        ns: &str,
        name: &str,
        container: &str,
        labels: &BTreeMap<String, String>,
        ports: &[PortSpec],
        owner: Option<Value>,
        subdomain: Option<&str>,
    ) {
        let mut pod = objects::pod_object(
            ns, name, container, labels, ports, owner, subdomain, NODE_NAME,
        );
        pod["status"] = objects::pending_status(container, HOST_IP);
        let pod = self.put(st, Kind::Pod, pod, None);
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let token = self.root.child_token();
        let backends = crate::backend::start_pod_ports(name, ports, &token);
        st.runtime.insert(
            uid.clone(),
            PodRuntime {
                namespace: ns.to_string(),
                name: name.to_string(),
                token,
                backends,
                base_behaviors: ports.iter().map(|p| p.behavior.clone()).collect(),
                tunnels: 0,
            },
        );
        self.schedule(self.timing.ready_delay_ms, {
            let (ns, name) = (ns.to_string(), name.to_string());
            move |cluster| cluster.pod_started(&ns, &name, &uid)
        });
    }

    /// Runs `f` on the cluster after `delay_ms`, unless the cluster is gone or shut down.
    fn schedule(&self, delay_ms: u64, f: impl FnOnce(&Cluster) + Send + 'static) {
        let me = self.me.clone();
        let root = self.root.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = root.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {
                    if let Some(cluster) = me.upgrade() {
                        f(&cluster);
                    }
                }
            }
        });
    }

    fn pod_started(&self, ns: &str, name: &str, uid: &str) {
        let mut st = self.state.lock();
        let Some(pod) = self.find(&st, Kind::Pod, ns, name) else {
            return;
        };
        if pod["metadata"]["uid"] != uid {
            return;
        }
        let mut next = (*pod).clone();
        let ip = objects::pod_ip(st.next_pod_ip);
        st.next_pod_ip += 1;
        next["status"] = objects::running_status(&pod, &ip, HOST_IP);
        self.put(&mut st, Kind::Pod, next, Some(pod));
        self.sync_namespace(&mut st, ns);
        debug!(pod.namespace = ns, pod.name = name, "pod ready");
    }

    fn schedule_recreate(&self, ns: String, owner: (String, String), name: String) {
        self.schedule(self.timing.recreate_delay_ms, move |cluster| {
            let mut st = cluster.state.lock();
            cluster.recreate(&mut st, &ns, &owner, &name);
        });
    }

    /// Brings a ReplicaSet or StatefulSet back to its replica count.
    fn recreate(&self, st: &mut State, ns: &str, (kind, owner): &(String, String), deleted: &str) {
        match kind.as_str() {
            "ReplicaSet" => {
                let Some(rs) = self.find(st, Kind::ReplicaSet, ns, owner) else {
                    return;
                };
                let want = rs["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
                let have = owned_pods(st, ns, &rs).len();
                let Some(template) = PodTemplate::read(&rs) else {
                    return;
                };
                for _ in have..want {
                    let pod_name = format!("{owner}-{}", objects::random_suffix());
                    self.create_pod(
                        st,
                        ns,
                        &pod_name,
                        &template.container,
                        &template.labels,
                        &template.ports,
                        Some(owner_ref("apps/v1", "ReplicaSet", &rs)),
                        None,
                    );
                }
            }
            "StatefulSet" => {
                let Some(sts) = self.find(st, Kind::StatefulSet, ns, owner) else {
                    return;
                };
                if self.find(st, Kind::Pod, ns, deleted).is_some() {
                    return;
                }
                let Some(template) = PodTemplate::read(&sts) else {
                    return;
                };
                let labels = objects::statefulset_pod_labels(
                    &template.labels,
                    deleted,
                    sts["status"]["currentRevision"].as_str(),
                );
                self.create_pod(
                    st,
                    ns,
                    deleted,
                    &template.container,
                    &labels,
                    &template.ports,
                    Some(owner_ref("apps/v1", "StatefulSet", &sts)),
                    Some(owner),
                );
            }
            _ => {}
        }
        self.sync_namespace(st, ns);
    }

    /// Brings EndpointSlices and workload statuses in `ns` in line with its pods.
    fn sync_namespace(&self, st: &mut State, ns: &str) {
        self.sync_endpoint_slices(st, ns);
        self.sync_workload_status(st, ns);
    }

    fn sync_endpoint_slices(&self, st: &mut State, ns: &str) {
        let pods = Self::list_ns(st, Kind::Pod, ns);
        for svc in Self::list_ns(st, Kind::Service, ns) {
            if st.external.contains(&key_of(Kind::Service, &svc)) {
                continue;
            }
            let svc_name = svc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // Only the fake's own pods: a node's pods are its controllers' business.
            let own: Vec<Arc<Value>> = pods
                .iter()
                .filter(|p| !st.external.contains(&key_of(Kind::Pod, p)))
                .cloned()
                .collect();
            let desired = objects::desired_slices(ns, &svc, &own);
            let existing: Vec<Arc<Value>> = Self::list_ns(st, Kind::EndpointSlice, ns)
                .into_iter()
                .filter(|s| {
                    s["metadata"]["labels"]["kubernetes.io/service-name"] == svc_name.as_str()
                        && !st.external.contains(&key_of(Kind::EndpointSlice, s))
                })
                .collect();
            for slice in &desired {
                let current = existing
                    .iter()
                    .find(|s| s["metadata"]["name"] == slice.name.as_str());
                if let Some(cur) = current {
                    if cur["endpoints"] == slice.endpoints && cur["ports"] == slice.ports {
                        continue;
                    }
                    let mut next = (**cur).clone();
                    next["endpoints"] = slice.endpoints.clone();
                    next["ports"] = slice.ports.clone();
                    self.put(st, Kind::EndpointSlice, next, Some(cur.clone()));
                } else {
                    self.put(
                        st,
                        Kind::EndpointSlice,
                        objects::slice_object(ns, &svc, slice),
                        None,
                    );
                }
            }
            for old in existing {
                let name = old["metadata"]["name"].as_str().unwrap_or_default();
                if !desired.iter().any(|d| d.name == name) {
                    self.remove(st, Kind::EndpointSlice, ns, name, None);
                }
            }
        }
    }

    fn sync_workload_status(&self, st: &mut State, ns: &str) {
        for rs in Self::list_ns(st, Kind::ReplicaSet, ns) {
            if st.external.contains(&key_of(Kind::ReplicaSet, &rs)) {
                continue;
            }
            let status = objects::replicaset_status(&owned_pods(st, ns, &rs));
            if rs["status"] != status {
                let mut next = (*rs).clone();
                next["status"] = status;
                self.put(st, Kind::ReplicaSet, next, Some(rs.clone()));
            }
        }
        for deploy in Self::list_ns(st, Kind::Deployment, ns) {
            if st.external.contains(&key_of(Kind::Deployment, &deploy)) {
                continue;
            }
            let replicasets = Self::list_ns(st, Kind::ReplicaSet, ns);
            let owned: Vec<&Value> = replicasets
                .iter()
                .filter(|rs| is_owned_by(rs, &deploy))
                .map(|rs| &**rs)
                .collect();
            let mut status = objects::deployment_status(&deploy, &owned);
            if strip_times(&deploy["status"]) != status {
                let mut next = (*deploy).clone();
                objects::stamp_conditions(&mut status);
                next["status"] = status;
                self.put(st, Kind::Deployment, next, Some(deploy.clone()));
            }
        }
        for sts in Self::list_ns(st, Kind::StatefulSet, ns) {
            if st.external.contains(&key_of(Kind::StatefulSet, &sts)) {
                continue;
            }
            let status = objects::statefulset_status(&sts, &owned_pods(st, ns, &sts));
            if sts["status"] != status {
                let mut next = (*sts).clone();
                next["status"] = status;
                self.put(st, Kind::StatefulSet, next, Some(sts.clone()));
            }
        }
    }
}

fn owned_pods(st: &State, ns: &str, owner: &Value) -> Vec<Arc<Value>> {
    Cluster::list_ns(st, Kind::Pod, ns)
        .into_iter()
        .filter(|p| is_owned_by(p, owner))
        .collect()
}

/// The store key of `obj`, of kind `kind`.
fn key_of(kind: Kind, obj: &Value) -> ObjKey {
    (
        kind,
        ns_key(
            kind,
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        ),
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn ns_key(kind: Kind, namespace: &str) -> String {
    if kind.namespaced() {
        namespace.to_string()
    } else {
        String::new()
    }
}

fn not_found(kind: Kind, name: &str) -> StoreError {
    StoreError::NotFound {
        plural: kind.plural(),
        name: name.to_string(),
    }
}
