//! The node's controllers, through a Kubernetes client: what kubelet, the ReplicaSet,
//! StatefulSet, Deployment and EndpointSlice controllers and the ServiceAccount controller
//! would do for the scenario's objects.
//!
//! One loop reconciles from a full list of the node's pods whenever a pod on the node
//! changes (a watch), when a delayed step is due (a pod becoming Ready, a replacement
//! pod), and every few seconds otherwise. Every step is idempotent, so a missed event or
//! a failed request is made good by the next pass.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{NodeError, Pods};
use crate::cluster::BEHAVIOR_ANNOTATION;
use crate::objects::{self, owner_ref};
use crate::scenario::{Behavior, PortSpec, Scenario, Timing};

/// What the controllers need to know about their node.
pub(crate) struct Settings {
    pub node: String,
    pub host_ip: String,
    pub port: u16,
    pub scenario: Scenario,
}

/// A workload whose pods the node keeps at their count.
enum Workload {
    ReplicaSet {
        ns: String,
        obj: Value,
        container: String,
        labels: BTreeMap<String, String>,
        ports: Vec<PortSpec>,
        replicas: u32,
    },
    StatefulSet {
        ns: String,
        obj: Value,
        container: String,
        labels: BTreeMap<String, String>,
        ports: Vec<PortSpec>,
        replicas: u32,
        revision: String,
    },
}

/// The node's controllers and what they remember between passes.
pub(crate) struct Controller {
    client: kube::Client,
    node: String,
    host_ip: String,
    timing: Timing,
    pods: Arc<Pods>,
    workloads: Vec<Workload>,
    deployments: Vec<(String, Value, String)>,
    services: Vec<(String, Value)>,
    /// When each missing workload pod (by slot) was first seen missing.
    missing_since: HashMap<String, Instant>,
    /// When each started pod (by uid) becomes Running and Ready.
    ready_at: HashMap<String, Instant>,
    next_ip: u32,
    /// Statuses last written, by object (kind/namespace/name).
    written: HashMap<String, Value>,
    first_pass: bool,
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Api { what, source }
}

fn from_value<K: DeserializeOwned>(v: Value, what: &str) -> Result<K, NodeError> {
    serde_json::from_value(v).map_err(|e| NodeError::Api {
        what: what.to_string(),
        source: kube::Error::SerdeError(e),
    })
}

fn to_value<K: Serialize>(k: &K) -> Value {
    serde_json::to_value(k).unwrap_or(Value::Null)
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Creates `obj`, or reads the one of the same name that exists already.
async fn ensure<K>(api: &Api<K>, obj: Value, what: &str) -> Result<Value, NodeError>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let typed: K = from_value(obj, what)?;
    match api.create(&PostParams::default(), &typed).await {
        Ok(created) => Ok(to_value(&created)),
        Err(e) if is_status(&e, 409) => api
            .get(&name)
            .await
            .map(|o| to_value(&o))
            .map_err(api_err(what)),
        Err(e) => Err(api_err(what)(e)),
    }
}

impl Controller {
    /// Registers the Node and creates the scenario's objects (pods come with the first
    /// pass of the loop).
    pub(crate) async fn setup(
        client: kube::Client,
        settings: Settings,
        pods: Arc<Pods>,
    ) -> Result<Self, NodeError> {
        let Settings {
            node,
            host_ip,
            port,
            scenario,
        } = settings;
        register_node(&client, &node, &host_ip, port).await?;
        let mut ctl = Self {
            client: client.clone(),
            node,
            host_ip,
            timing: scenario.timing,
            pods,
            workloads: Vec::new(),
            deployments: Vec::new(),
            services: Vec::new(),
            missing_since: HashMap::new(),
            ready_at: HashMap::new(),
            next_ip: 10,
            written: HashMap::new(),
            first_pass: true,
        };
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for spec in &scenario.namespaces {
            let ns = spec.name.as_str();
            ensure(
                &namespaces,
                json!({"metadata": {"name": ns}}),
                &format!("creating namespace {ns}"),
            )
            .await?;
            // Without a controller manager nobody creates it, and pods need it.
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
            ensure(
                &sas,
                json!({"metadata": {"name": "default", "namespace": ns}}),
                &format!("creating the default ServiceAccount of {ns}"),
            )
            .await?;
            let services: Api<Service> = Api::namespaced(client.clone(), ns);
            for s in &spec.services {
                let svc = ensure(
                    &services,
                    objects::service_object(ns, s, None),
                    &format!("creating service {ns}/{}", s.name),
                )
                .await?;
                ctl.services.push((ns.to_string(), svc));
            }
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
            for d in &spec.deployments {
                let deploy = ensure(
                    &deployments,
                    objects::deployment_object(ns, d),
                    &format!("creating deployment {ns}/{}", d.name),
                )
                .await?;
                let (rs, labels) = objects::replicaset_object(ns, d, &deploy);
                let rs = ensure(
                    &replicasets,
                    rs,
                    &format!("creating the replicaset of {ns}/{}", d.name),
                )
                .await?;
                let rs_name = rs["metadata"]["name"].as_str().unwrap_or_default();
                ctl.deployments
                    .push((ns.to_string(), deploy.clone(), rs_name.to_string()));
                ctl.workloads.push(Workload::ReplicaSet {
                    ns: ns.to_string(),
                    obj: rs,
                    container: d.name.clone(),
                    labels,
                    ports: d.ports.clone(),
                    replicas: d.replicas,
                });
            }
            let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            for s in &spec.statefulsets {
                let sts = ensure(
                    &statefulsets,
                    objects::statefulset_object(ns, s),
                    &format!("creating statefulset {ns}/{}", s.name),
                )
                .await?;
                ctl.workloads.push(Workload::StatefulSet {
                    ns: ns.to_string(),
                    obj: sts,
                    container: s.name.clone(),
                    labels: s.labels.clone(),
                    ports: s.ports.clone(),
                    replicas: s.replicas,
                    revision: objects::statefulset_revision(ns, &s.name),
                });
            }
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            for p in &spec.pods {
                let pod = objects::pod_object(
                    ns, &p.name, &p.name, &p.labels, &p.ports, None, None, &ctl.node,
                );
                ensure(&pods, pod, &format!("creating pod {ns}/{}", p.name)).await?;
            }
        }
        info!(node.name = %ctl.node, "scenario objects created");
        Ok(ctl)
    }

    /// Runs the loop until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let notify = Arc::new(Notify::new());
        let watch = {
            let api: Api<Pod> = Api::all(self.client.clone());
            let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node));
            let notify = notify.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut events = std::pin::pin!(watcher(api, config));
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        ev = events.next() => match ev {
                            Some(Ok(_)) => notify.notify_one(),
                            Some(Err(e)) => {
                                debug!(error = %e, "pod watch failed; retrying");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            None => return,
                        },
                    }
                }
            })
        };
        loop {
            let wake = match self.reconcile().await {
                Ok(wake) => wake,
                Err(e) => {
                    warn!(error = %e, "node controllers: a pass failed; retrying");
                    Some(Instant::now() + Duration::from_millis(500))
                }
            };
            let wake = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(5));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = notify.notified() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        watch.abort();
    }

    /// One pass; returns when the next delayed step is due.
    async fn reconcile(&mut self) -> Result<Option<Instant>, NodeError> {
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        let mut due = |at: Instant| {
            wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
        };
        let all: Api<Pod> = Api::all(self.client.clone());
        let list = all
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.node)))
            .await
            .map_err(api_err("listing the node's pods"))?;
        let listed: Vec<Value> = list.items.iter().map(to_value).collect();

        // Pods being deleted: stop them, then finish the deletion as kubelet does.
        for pod in listed
            .iter()
            .filter(|p| p["metadata"].get("deletionTimestamp").is_some())
        {
            let (ns, name, uid) = ids(pod);
            self.pods.stop(ns, name);
            self.ready_at.remove(uid);
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(name, &params).await {
                Ok(_) => info!(
                    pod.namespace = ns,
                    pod.name = name,
                    "pod deletion completed"
                ),
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => return Err(api_err(format!("deleting pod {ns}/{name}"))(e)),
            }
        }
        let live: Vec<Arc<Value>> = listed
            .iter()
            .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
            .cloned()
            .map(Arc::new)
            .collect();
        self.pods
            .retain(|uid| live.iter().any(|p| p["metadata"]["uid"] == uid));
        self.ready_at
            .retain(|uid, _| live.iter().any(|p| p["metadata"]["uid"] == uid.as_str()));

        // Pods to start, to mark Running and Ready, and behaviours to apply.
        let mut updated: HashMap<String, Arc<Value>> = HashMap::new();
        for pod in &live {
            let (ns, name, uid) = ids(pod);
            let running = pod["status"]["phase"] == "Running";
            if self.pods.uid(ns, name).as_deref() != Some(uid) {
                self.pods.start(ns, name, uid, &objects::pod_ports(pod));
                if !running {
                    self.ready_at.insert(
                        uid.to_string(),
                        now + Duration::from_millis(self.timing.ready_delay_ms),
                    );
                }
            }
            let behavior = pod["metadata"]["annotations"][BEHAVIOR_ANNOTATION]
                .as_str()
                .and_then(|t| t.parse::<Behavior>().ok());
            self.pods.set_behavior(ns, name, behavior.as_ref());
            if running {
                self.pods.set_running(ns, name);
                continue;
            }
            let at = self.ready_at.get(uid).copied().unwrap_or(now);
            if at > now {
                due(at);
                continue;
            }
            let ip = objects::pod_ip(self.next_ip);
            self.next_ip += 1;
            let status = objects::running_status(pod, &ip, &self.host_ip);
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let patched = api
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .map_err(api_err(format!("marking pod {ns}/{name} Running")))?;
            self.pods.set_running(ns, name);
            self.ready_at.remove(uid);
            debug!(pod.namespace = ns, pod.name = name, pod.ip = %ip, "pod ready");
            updated.insert(uid.to_string(), Arc::new(to_value(&patched)));
        }
        let live: Vec<Arc<Value>> = live
            .into_iter()
            .map(|p| {
                let uid = p["metadata"]["uid"].as_str().unwrap_or_default();
                updated.get(uid).cloned().unwrap_or(p)
            })
            .collect();

        // Workloads: bring each back to its replica count after the recreate delay.
        let delay = Duration::from_millis(self.timing.recreate_delay_ms);
        let mut creates: Vec<(String, Value)> = Vec::new();
        for w in &self.workloads {
            match w {
                Workload::ReplicaSet {
                    ns,
                    obj,
                    container,
                    labels,
                    ports,
                    replicas,
                } => {
                    let have = live.iter().filter(|p| objects::is_owned_by(p, obj)).count();
                    let want = *replicas as usize;
                    let slot = format!("rs/{ns}/{}", obj["metadata"]["name"]);
                    if have >= want {
                        self.missing_since.remove(&slot);
                        continue;
                    }
                    let since = *self.missing_since.entry(slot.clone()).or_insert(now);
                    if !self.first_pass && since + delay > now {
                        due(since + delay);
                        continue;
                    }
                    self.missing_since.remove(&slot);
                    let rs_name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    for _ in have..want {
                        let name = format!("{rs_name}-{}", objects::random_suffix());
                        let pod = objects::pod_object(
                            ns,
                            &name,
                            container,
                            labels,
                            ports,
                            Some(owner_ref("apps/v1", "ReplicaSet", obj)),
                            None,
                            &self.node,
                        );
                        creates.push((ns.clone(), pod));
                    }
                }
                Workload::StatefulSet {
                    ns,
                    obj,
                    container,
                    labels,
                    ports,
                    replicas,
                    revision,
                } => {
                    let sts_name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    for i in 0..*replicas {
                        let name = format!("{sts_name}-{i}");
                        // A pod still being deleted holds its name.
                        let exists = listed.iter().any(|p| {
                            p["metadata"]["namespace"] == ns.as_str()
                                && p["metadata"]["name"] == name.as_str()
                        });
                        let slot = format!("sts/{ns}/{name}");
                        if exists {
                            self.missing_since.remove(&slot);
                            continue;
                        }
                        let since = *self.missing_since.entry(slot.clone()).or_insert(now);
                        if !self.first_pass && since + delay > now {
                            due(since + delay);
                            continue;
                        }
                        self.missing_since.remove(&slot);
                        let labels = objects::statefulset_pod_labels(labels, &name, Some(revision));
                        let pod = objects::pod_object(
                            ns,
                            &name,
                            container,
                            &labels,
                            ports,
                            Some(owner_ref("apps/v1", "StatefulSet", obj)),
                            Some(sts_name),
                            &self.node,
                        );
                        creates.push((ns.clone(), pod));
                    }
                }
            }
        }
        for (ns, pod) in creates {
            let name = pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let typed: Pod = from_value(pod, "a pod")?;
            match api.create(&PostParams::default(), &typed).await {
                Ok(_) => info!(pod.namespace = %ns, pod.name = %name, "pod created"),
                Err(e) if is_status(&e, 409) => {}
                Err(e) => return Err(api_err(format!("creating pod {ns}/{name}"))(e)),
            }
        }
        self.first_pass = false;

        self.sync_endpoint_slices(&live).await?;
        self.sync_statuses(&live).await?;
        Ok(wake)
    }

    async fn sync_endpoint_slices(&mut self, live: &[Arc<Value>]) -> Result<(), NodeError> {
        for (ns, svc) in &self.services {
            let svc_name = svc["metadata"]["name"].as_str().unwrap_or_default();
            let in_ns: Vec<Arc<Value>> = live
                .iter()
                .filter(|p| p["metadata"]["namespace"] == ns.as_str())
                .cloned()
                .collect();
            let desired = objects::desired_slices(ns, svc, &in_ns);
            let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
            let existing = api
                .list(
                    &ListParams::default()
                        .labels(&format!("kubernetes.io/service-name={svc_name}")),
                )
                .await
                .map_err(api_err(format!(
                    "listing the EndpointSlices of {ns}/{svc_name}"
                )))?;
            let existing: Vec<Value> = existing.items.iter().map(to_value).collect();
            for slice in &desired {
                match existing
                    .iter()
                    .find(|s| s["metadata"]["name"] == slice.name.as_str())
                {
                    Some(cur) => {
                        if cur["endpoints"] == slice.endpoints && cur["ports"] == slice.ports {
                            continue;
                        }
                        let patch = json!({"endpoints": slice.endpoints, "ports": slice.ports});
                        api.patch(&slice.name, &PatchParams::default(), &Patch::Merge(patch))
                            .await
                            .map_err(api_err(format!(
                                "updating EndpointSlice {ns}/{}",
                                slice.name
                            )))?;
                    }
                    None => {
                        let obj: EndpointSlice =
                            from_value(objects::slice_object(ns, svc, slice), "an EndpointSlice")?;
                        match api.create(&PostParams::default(), &obj).await {
                            Ok(_) => {}
                            Err(e) if is_status(&e, 409) => {}
                            Err(e) => {
                                return Err(api_err(format!(
                                    "creating EndpointSlice {ns}/{}",
                                    slice.name
                                ))(e));
                            }
                        }
                    }
                }
            }
            for old in &existing {
                let name = old["metadata"]["name"].as_str().unwrap_or_default();
                if !desired.iter().any(|d| d.name == name) {
                    match api.delete(name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(e) if is_status(&e, 404) => {}
                        Err(e) => {
                            return Err(api_err(format!("deleting EndpointSlice {ns}/{name}"))(e));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn sync_statuses(&mut self, live: &[Arc<Value>]) -> Result<(), NodeError> {
        let mut rs_status: HashMap<String, Value> = HashMap::new();
        let mut writes: Vec<(&'static str, String, String, Value)> = Vec::new();
        for w in &self.workloads {
            match w {
                Workload::ReplicaSet { ns, obj, .. } => {
                    let owned: Vec<Arc<Value>> = live
                        .iter()
                        .filter(|p| objects::is_owned_by(p, obj))
                        .cloned()
                        .collect();
                    let status = objects::replicaset_status(&owned);
                    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    rs_status.insert(format!("{ns}/{name}"), status.clone());
                    writes.push(("ReplicaSet", ns.clone(), name.to_string(), status));
                }
                Workload::StatefulSet {
                    ns, obj, revision, ..
                } => {
                    let owned: Vec<Arc<Value>> = live
                        .iter()
                        .filter(|p| objects::is_owned_by(p, obj))
                        .cloned()
                        .collect();
                    let base = json!({"status": {"currentRevision": revision, "updateRevision": revision, "collisionCount": 0}});
                    let status = objects::statefulset_status(&base, &owned);
                    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    writes.push(("StatefulSet", ns.clone(), name.to_string(), status));
                }
            }
        }
        for (ns, deploy, rs_name) in &self.deployments {
            let rs = json!({"status": rs_status.get(&format!("{ns}/{rs_name}")).cloned().unwrap_or(Value::Null)});
            let status = objects::deployment_status(deploy, &[&rs]);
            let name = deploy["metadata"]["name"].as_str().unwrap_or_default();
            writes.push(("Deployment", ns.clone(), name.to_string(), status));
        }
        for (kind, ns, name, mut status) in writes {
            let key = format!("{kind}/{ns}/{name}");
            if self.written.get(&key) == Some(&status) {
                continue;
            }
            let compare = status.clone();
            if kind == "Deployment" {
                objects::stamp_conditions(&mut status);
            }
            let patch = Patch::Merge(json!({"status": status}));
            let pp = PatchParams::default();
            let result = match kind {
                "ReplicaSet" => Api::<ReplicaSet>::namespaced(self.client.clone(), &ns)
                    .patch_status(&name, &pp, &patch)
                    .await
                    .map(|_| ()),
                "StatefulSet" => Api::<StatefulSet>::namespaced(self.client.clone(), &ns)
                    .patch_status(&name, &pp, &patch)
                    .await
                    .map(|_| ()),
                _ => Api::<Deployment>::namespaced(self.client.clone(), &ns)
                    .patch_status(&name, &pp, &patch)
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => {
                    self.written.insert(key, compare);
                }
                Err(e) => debug!(error = %e, %key, "writing a workload status failed"),
            }
        }
        Ok(())
    }
}

fn ids(pod: &Value) -> (&str, &str, &str) {
    (
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default(),
        pod["metadata"]["uid"].as_str().unwrap_or_default(),
    )
}

/// Registers (or updates) the Node: its address and kubelet port are what the API server
/// dials for port-forwarding.
async fn register_node(
    client: &kube::Client,
    node: &str,
    host_ip: &str,
    port: u16,
) -> Result<(), NodeError> {
    let now = objects::now();
    let status = json!({
        "addresses": [{"type": "InternalIP", "address": host_ip}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "ferry-fakecluster node is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
            "osImage": "ferry-fakecluster", "containerRuntimeVersion": "fake://1",
            "kubeletVersion": "v1.33.0-ferry-fake", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    });
    let obj = json!({
        "metadata": {
            "name": node,
            "labels": {
                "kubernetes.io/hostname": node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {},
        "status": status,
    });
    let api: Api<Node> = Api::all(client.clone());
    ensure(&api, obj, &format!("registering node {node}")).await?;
    // The API server may drop the status of a new object; write it as kubelet does.
    api.patch_status(
        node,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .map_err(api_err(format!("writing the status of node {node}")))?;
    Ok(())
}
