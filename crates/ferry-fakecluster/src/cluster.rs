//! The cluster's state: the object store, its resource versions and change history, and the
//! fake controllers (ReplicaSet, StatefulSet, EndpointSlice, kubelet readiness) that act on
//! it.
//!
//! All state sits behind one short, synchronous lock. Nothing awaits while holding it; the
//! delayed actions of the controllers (recreate a pod, mark it Ready) are tasks that sleep
//! first and then take the lock for one synchronous step. Every change is appended to a
//! bounded history and broadcast while the lock is held, so a watcher that reads the
//! history and subscribes under the same lock sees every change exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::PortBackend;
use crate::kind::Kind;
use crate::scenario::{Behavior, NamespaceSpec, PortSpec, Scenario, TargetPort, Timing};

/// The annotation that switches every port of a pod to another behaviour.
pub const BEHAVIOR_ANNOTATION: &str = "fake.ferry.dev/behavior";

/// How many changes the history keeps for watchers that resume from a resource version.
const HISTORY: usize = 8192;

/// The node every fake pod runs on.
pub const NODE_NAME: &str = "ferry-fake-node";

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
            let template = pod_template(&d.name, &d.labels, &d.ports);
            let deploy = self.put(st, Kind::Deployment, json!({
                "metadata": {
                    "name": d.name, "namespace": ns, "generation": 1,
                    "labels": d.labels,
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                },
                "spec": {
                    "replicas": d.replicas,
                    "selector": {"matchLabels": d.labels},
                    "template": template,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600,
                },
                "status": {},
            }), None);
            let hash = short_hash(&format!("{ns}/{}", d.name), 10);
            let mut rs_labels = d.labels.clone();
            rs_labels.insert("pod-template-hash".into(), hash.clone());
            let mut rs_template = pod_template(&d.name, &rs_labels, &d.ports);
            rs_template["metadata"]["labels"] = json!(rs_labels);
            let rs_name = format!("{}-{hash}", d.name);
            let rs = self.put(st, Kind::ReplicaSet, json!({
                "metadata": {
                    "name": rs_name, "namespace": ns, "generation": 1,
                    "labels": rs_labels,
                    "annotations": {"deployment.kubernetes.io/desired-replicas": d.replicas.to_string(), "deployment.kubernetes.io/revision": "1"},
                    "ownerReferences": [owner_ref("apps/v1", "Deployment", &deploy)],
                },
                "spec": {"replicas": d.replicas, "selector": {"matchLabels": rs_labels}, "template": rs_template},
                "status": {},
            }), None);
            for _ in 0..d.replicas {
                let pod_name = format!("{rs_name}-{}", short_hash_random(5));
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
            let template = pod_template(&s.name, &s.labels, &s.ports);
            let revision = format!("{}-{}", s.name, short_hash(&format!("{ns}/{}", s.name), 10));
            let sts = self.put(st, Kind::StatefulSet, json!({
                "metadata": {"name": s.name, "namespace": ns, "generation": 1, "labels": s.labels},
                "spec": {
                    "replicas": s.replicas,
                    "selector": {"matchLabels": s.labels},
                    "serviceName": s.name,
                    "template": template,
                    "podManagementPolicy": "OrderedReady",
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                    "revisionHistoryLimit": 10,
                },
                "status": {"currentRevision": revision, "updateRevision": revision, "collisionCount": 0},
            }), None);
            for i in 0..s.replicas {
                let pod_name = format!("{}-{i}", s.name);
                let mut labels = s.labels.clone();
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    pod_name.clone(),
                );
                labels.insert("controller-revision-hash".into(), revision.clone());
                labels.insert("apps.kubernetes.io/pod-index".into(), i.to_string());
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
            let ports: Vec<Value> = s
                .ports
                .iter()
                .map(|p| {
                    let mut v = json!({
                        "port": p.port,
                        "protocol": "TCP",
                        "targetPort": match &p.target_port {
                            Some(TargetPort::Name(n)) => json!(n),
                            Some(TargetPort::Number(n)) => json!(n),
                            None => json!(p.port),
                        },
                    });
                    if let Some(name) = &p.name {
                        v["name"] = json!(name);
                    }
                    v
                })
                .collect();
            self.put(
                st,
                Kind::Service,
                json!({
                    "metadata": {"name": s.name, "namespace": ns, "labels": {"app": s.name}},
                    "spec": {
                        "type": "ClusterIP",
                        "clusterIP": ip,
                        "clusterIPs": [ip],
                        "ports": ports,
                        "selector": s.selector,
                        "sessionAffinity": "None",
                        "ipFamilies": ["IPv4"],
                        "ipFamilyPolicy": "SingleStack",
                        "internalTrafficPolicy": "Cluster",
                    },
                    "status": {"loadBalancer": {}},
                }),
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
        let mut spec = json!({
            "containers": [container_spec(container, ports)],
            "nodeName": NODE_NAME,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
        });
        if let Some(sub) = subdomain {
            spec["hostname"] = json!(name);
            spec["subdomain"] = json!(sub);
        }
        let mut meta = json!({"name": name, "namespace": ns, "labels": labels});
        if let Some(owner) = owner {
            meta["ownerReferences"] = json!([owner]);
            if subdomain.is_none()
                && let Some(prefix) = name.rsplit_once('-').map(|(p, _)| p)
            {
                meta["generateName"] = json!(format!("{prefix}-"));
            }
        }
        let pod = json!({
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": "Pending",
                "qosClass": "BestEffort",
                "hostIP": "192.0.2.10",
                "hostIPs": [{"ip": "192.0.2.10"}],
                "startTime": now(),
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()},
                ],
                "containerStatuses": [{
                    "name": container,
                    "image": "ferry.dev/fake:latest",
                    "imageID": "",
                    "ready": false,
                    "started": false,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }],
            },
        });
        let pod = self.put(st, Kind::Pod, pod, None);
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let token = self.root.child_token();
        let pod_name: Arc<str> = Arc::from(name);
        let mut backends = Vec::new();
        for p in ports {
            match PortBackend::start(pod_name.clone(), p.port, p.behavior.clone(), &token) {
                Ok(b) => backends.push(b),
                Err(e) => {
                    warn!(pod.name = name, pod.port = p.port, error = %e, "could not start a pod port's server")
                }
            }
        }
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
        let ip = format!(
            "10.244.{}.{}",
            st.next_pod_ip / 250,
            st.next_pod_ip % 250 + 2
        );
        st.next_pod_ip += 1;
        next["status"]["podIP"] = json!(ip);
        next["status"]["podIPs"] = json!([{"ip": ip}]);
        set_pod_running(&mut next, true);
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
                    let pod_name = format!("{owner}-{}", short_hash_random(5));
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
                let mut labels = template.labels.clone();
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    deleted.to_string(),
                );
                if let Some(rev) = sts["status"]["currentRevision"].as_str() {
                    labels.insert("controller-revision-hash".into(), rev.to_string());
                }
                if let Some((_, idx)) = deleted.rsplit_once('-') {
                    labels.insert("apps.kubernetes.io/pod-index".into(), idx.to_string());
                }
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
            let svc_name = svc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let selector = svc["spec"]["selector"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let svc_ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
            // Group endpoints by how the service's ports resolve on each pod, as the real
            // EndpointSlice controller does.
            let mut groups: BTreeMap<Vec<(String, u16)>, Vec<Value>> = BTreeMap::new();
            if !selector.is_empty() {
                for pod in &pods {
                    let labels = &pod["metadata"]["labels"];
                    if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                        continue;
                    }
                    let Some(ip) = pod["status"]["podIP"].as_str() else {
                        continue;
                    };
                    let mut mapping = Vec::new();
                    for sp in &svc_ports {
                        let name = sp["name"].as_str().unwrap_or_default().to_string();
                        if let Some(port) = resolve_target_port(pod, &sp["targetPort"]) {
                            mapping.push((name, port));
                        }
                    }
                    if mapping.is_empty() {
                        continue;
                    }
                    let ready = pod_is_ready(pod);
                    groups.entry(mapping).or_default().push(json!({
                        "addresses": [ip],
                        "conditions": {"ready": ready, "serving": ready, "terminating": false},
                        "nodeName": NODE_NAME,
                        "targetRef": {
                            "kind": "Pod",
                            "namespace": ns,
                            "name": pod["metadata"]["name"],
                            "uid": pod["metadata"]["uid"],
                        },
                    }));
                }
            }
            let mut desired: Vec<(String, Value, Value)> = Vec::new();
            if groups.is_empty() {
                desired.push((
                    format!("{svc_name}-{}", short_hash(&format!("{ns}/{svc_name}/"), 5)),
                    json!([]),
                    Value::Null,
                ));
            }
            for (mapping, endpoints) in groups {
                let key = format!("{ns}/{svc_name}/{mapping:?}");
                let ports: Vec<Value> = mapping
                    .iter()
                    .map(|(name, port)| json!({"name": name, "port": port, "protocol": "TCP"}))
                    .collect();
                desired.push((
                    format!("{svc_name}-{}", short_hash(&key, 5)),
                    json!(endpoints),
                    json!(ports),
                ));
            }
            let existing: Vec<Arc<Value>> = Self::list_ns(st, Kind::EndpointSlice, ns)
                .into_iter()
                .filter(|s| {
                    s["metadata"]["labels"]["kubernetes.io/service-name"] == svc_name.as_str()
                })
                .collect();
            for (name, endpoints, ports) in &desired {
                let current = existing
                    .iter()
                    .find(|s| s["metadata"]["name"] == name.as_str());
                if let Some(cur) = current {
                    if cur["endpoints"] == *endpoints && cur["ports"] == *ports {
                        continue;
                    }
                    let mut next = (**cur).clone();
                    next["endpoints"] = endpoints.clone();
                    next["ports"] = ports.clone();
                    self.put(st, Kind::EndpointSlice, next, Some(cur.clone()));
                } else {
                    self.put(st, Kind::EndpointSlice, json!({
                        "metadata": {
                            "name": name,
                            "namespace": ns,
                            "generateName": format!("{svc_name}-"),
                            "labels": {
                                "kubernetes.io/service-name": svc_name,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                            },
                            "ownerReferences": [owner_ref("v1", "Service", &svc)],
                        },
                        "addressType": "IPv4",
                        "endpoints": endpoints,
                        "ports": ports,
                    }), None);
                }
            }
            for old in existing {
                let name = old["metadata"]["name"].as_str().unwrap_or_default();
                if !desired.iter().any(|(n, _, _)| n == name) {
                    self.remove(st, Kind::EndpointSlice, ns, name, None);
                }
            }
        }
    }

    fn sync_workload_status(&self, st: &mut State, ns: &str) {
        for rs in Self::list_ns(st, Kind::ReplicaSet, ns) {
            let pods = owned_pods(st, ns, &rs);
            let ready = pods.iter().filter(|p| pod_is_ready(p)).count();
            let status = json!({
                "observedGeneration": 1,
                "replicas": pods.len(),
                "fullyLabeledReplicas": pods.len(),
                "readyReplicas": ready,
                "availableReplicas": ready,
            });
            if rs["status"] != status {
                let mut next = (*rs).clone();
                next["status"] = status;
                self.put(st, Kind::ReplicaSet, next, Some(rs.clone()));
            }
        }
        for deploy in Self::list_ns(st, Kind::Deployment, ns) {
            let mut total = 0usize;
            let mut ready = 0usize;
            for rs in Self::list_ns(st, Kind::ReplicaSet, ns) {
                if is_owned_by(&rs, &deploy) {
                    total += rs["status"]["replicas"].as_u64().unwrap_or(0) as usize;
                    ready += rs["status"]["readyReplicas"].as_u64().unwrap_or(0) as usize;
                }
            }
            let want = deploy["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
            let available = ready >= want;
            let mut status = json!({
                "observedGeneration": 1,
                "replicas": total,
                "updatedReplicas": total,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "conditions": [
                    {
                        "type": "Available",
                        "status": if available { "True" } else { "False" },
                        "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                        "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "NewReplicaSetAvailable",
                        "message": "ReplicaSet has successfully progressed.",
                    },
                ],
            });
            if total > ready {
                status["unavailableReplicas"] = json!(total - ready);
            }
            if strip_times(&deploy["status"]) != status {
                let mut next = (*deploy).clone();
                let stamp = now();
                if let Some(conds) = status["conditions"].as_array_mut() {
                    for c in conds {
                        c["lastUpdateTime"] = json!(stamp);
                        c["lastTransitionTime"] = json!(stamp);
                    }
                }
                next["status"] = status;
                self.put(st, Kind::Deployment, next, Some(deploy.clone()));
            }
        }
        for sts in Self::list_ns(st, Kind::StatefulSet, ns) {
            let pods = owned_pods(st, ns, &sts);
            let ready = pods.iter().filter(|p| pod_is_ready(p)).count();
            let mut status = sts["status"].clone();
            status["observedGeneration"] = json!(1);
            status["replicas"] = json!(pods.len());
            status["currentReplicas"] = json!(pods.len());
            status["updatedReplicas"] = json!(pods.len());
            status["readyReplicas"] = json!(ready);
            status["availableReplicas"] = json!(ready);
            if sts["status"] != status {
                let mut next = (*sts).clone();
                next["status"] = status;
                self.put(st, Kind::StatefulSet, next, Some(sts.clone()));
            }
        }
    }
}

// === helpers ===

/// The fields of a workload's pod template the fake controllers need.
struct PodTemplate {
    container: String,
    labels: BTreeMap<String, String>,
    ports: Vec<PortSpec>,
}

impl PodTemplate {
    fn read(workload: &Value) -> Option<Self> {
        let template = &workload["spec"]["template"];
        let labels = serde_json::from_value(template["metadata"]["labels"].clone()).ok()?;
        let container = &template["spec"]["containers"][0];
        let ports = container["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        Some(PortSpec {
                            name: p["name"].as_str().map(str::to_string),
                            port: u16::try_from(p["containerPort"].as_u64()?).ok()?,
                            behavior: container["env"]
                                .as_array()
                                .and_then(|env| {
                                    env.iter().find(|e| {
                                        e["name"] == format!("FAKE_BEHAVIOR_{}", p["containerPort"])
                                    })
                                })
                                .and_then(|e| e["value"].as_str()?.parse().ok())
                                .unwrap_or_default(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            container: container["name"].as_str()?.to_string(),
            labels,
            ports,
        })
    }
}

fn container_spec(name: &str, ports: &[PortSpec]) -> Value {
    let ports_json: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut v = json!({"containerPort": p.port, "protocol": "TCP"});
            if let Some(n) = &p.name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    // The behaviour rides along in the environment so a recreated pod gets it back.
    let env: Vec<Value> = ports
        .iter()
        .map(|p| json!({"name": format!("FAKE_BEHAVIOR_{}", p.port), "value": p.behavior.to_string()}))
        .collect();
    json!({
        "name": name,
        "image": "ferry.dev/fake:latest",
        "imagePullPolicy": "IfNotPresent",
        "ports": ports_json,
        "env": env,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    })
}

fn pod_template(container: &str, labels: &BTreeMap<String, String>, ports: &[PortSpec]) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "containers": [container_spec(container, ports)],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
        },
    })
}

fn set_pod_running(pod: &mut Value, ready: bool) {
    let stamp = now();
    let flag = if ready { "True" } else { "False" };
    let started_at = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| stamp.clone());
    pod["status"]["phase"] = json!("Running");
    pod["status"]["conditions"] = json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_at},
        {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_at},
        {"type": "Ready", "status": flag, "lastProbeTime": null, "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": flag, "lastProbeTime": null, "lastTransitionTime": stamp},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_at},
    ]);
    if let Some(cs) = pod["status"]["containerStatuses"].as_array_mut() {
        for c in cs {
            c["ready"] = json!(ready);
            c["started"] = json!(true);
            c["state"] = json!({"running": {"startedAt": started_at}});
        }
    }
}

/// Whether a pod's Ready condition is True.
pub fn pod_is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn resolve_target_port(pod: &Value, target: &Value) -> Option<u16> {
    if let Some(n) = target.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = target.as_str()?;
    pod["spec"]["containers"].as_array()?.iter().find_map(|c| {
        c["ports"].as_array()?.iter().find_map(|p| {
            (p["name"] == name)
                .then(|| {
                    p["containerPort"]
                        .as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                })
                .flatten()
        })
    })
}

fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn controller_owner(obj: &Value) -> Option<(String, String)> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find_map(|o| {
            (o["controller"] == true).then(|| {
                Some((
                    o["kind"].as_str()?.to_string(),
                    o["name"].as_str()?.to_string(),
                ))
            })?
        })
}

fn is_owned_by(obj: &Value, owner: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner["metadata"]["uid"]))
}

fn owned_pods(st: &State, ns: &str, owner: &Value) -> Vec<Arc<Value>> {
    Cluster::list_ns(st, Kind::Pod, ns)
        .into_iter()
        .filter(|p| is_owned_by(p, owner))
        .collect()
}

fn strip_times(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conds) = s["conditions"].as_array_mut() {
        for c in conds {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastUpdateTime");
                m.remove("lastTransitionTime");
            }
        }
    }
    s
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

/// The time now as Kubernetes writes it (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn uid() -> String {
    let mut rng = rand::rng();
    let a: u32 = rng.random();
    let b: u16 = rng.random();
    let c: u16 = rng.random::<u16>() & 0x0fff;
    let d: u16 = (rng.random::<u16>() & 0x3fff) | 0x8000;
    let e: u64 = rng.random::<u64>() & 0xffff_ffff_ffff;
    format!("{a:08x}-{b:04x}-4{c:03x}-{d:04x}-{e:012x}")
}

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn short_hash(input: &str, len: usize) -> String {
    // FNV-1a, then spelled in the generated-name alphabet.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..len)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
            c
        })
        .collect()
}

fn short_hash_random(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
