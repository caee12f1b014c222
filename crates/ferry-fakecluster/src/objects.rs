//! The shapes of the objects the fake controllers write (pods, workloads, services,
//! EndpointSlices, statuses), as plain JSON. The fake API server's in-process controllers
//! and the node's controllers (which write through a Kubernetes client, to the fake API
//! server or to a real one) build every object here, so both write the same objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use serde_json::{Value, json};

use crate::scenario::{PortSpec, ServiceSpec, TargetPort, WorkloadSpec};

/// The image every fake container claims to run.
pub(crate) const IMAGE: &str = "ferry.dev/fake:latest";

/// The fields of a workload's pod template the fake controllers need.
pub(crate) struct PodTemplate {
    pub container: String,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
}

impl PodTemplate {
    pub(crate) fn read(workload: &Value) -> Option<Self> {
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

pub(crate) fn container_spec(name: &str, ports: &[PortSpec]) -> Value {
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
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "ports": ports_json,
        "env": env,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    })
}

pub(crate) fn pod_template(
    container: &str,
    labels: &BTreeMap<String, String>,
    ports: &[PortSpec],
) -> Value {
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

pub(crate) fn set_pod_running(pod: &mut Value, ready: bool) {
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

pub(crate) fn resolve_target_port(pod: &Value, target: &Value) -> Option<u16> {
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

pub(crate) fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

pub(crate) fn controller_owner(obj: &Value) -> Option<(String, String)> {
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

pub(crate) fn is_owned_by(obj: &Value, owner: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner["metadata"]["uid"]))
}

pub(crate) fn strip_times(status: &Value) -> Value {
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

/// The time now as Kubernetes writes it (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn uid() -> String {
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

pub(crate) fn short_hash(input: &str, len: usize) -> String {
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

pub(crate) fn short_hash_random(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The ports of a pod's first container, with the behaviour each had in the scenario (it
/// rides along in the environment as `FAKE_BEHAVIOR_<port>`).
pub(crate) fn pod_ports(pod: &Value) -> Vec<PortSpec> {
    PodTemplate::read(
        &json!({"spec": {"template": {"metadata": {"labels": {}}, "spec": pod["spec"]}}}),
    )
    .map(|t| t.ports)
    .unwrap_or_default()
}

/// A new pod as a workload controller (or a user, for bare pods) creates it, bound to
/// `node`; its status is Pending until its node starts it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pod_object(
    ns: &str,
    name: &str,
    container: &str,
    labels: &BTreeMap<String, String>,
    ports: &[PortSpec],
    owner: Option<Value>,
    subdomain: Option<&str>,
    node: &str,
) -> Value {
    let mut spec = json!({
        "containers": [container_spec(container, ports)],
        "nodeName": node,
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
    json!({"metadata": meta, "spec": spec})
}

/// The status of a pod its node has accepted but not started (`ContainerCreating`).
pub(crate) fn pending_status(container: &str, host_ip: &str) -> Value {
    json!({
        "phase": "Pending",
        "qosClass": "BestEffort",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": now(),
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()},
        ],
        "containerStatuses": [{
            "name": container,
            "image": IMAGE,
            "imageID": "",
            "ready": false,
            "started": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }],
    })
}

/// The status of a pod once its container runs: Running, Ready, with its IP.
pub(crate) fn running_status(pod: &Value, pod_ip: &str, host_ip: &str) -> Value {
    let mut next = pod.clone();
    if !next["status"]["containerStatuses"].is_array() {
        let container = pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("main");
        next["status"] = pending_status(container, host_ip);
    }
    next["status"]["podIP"] = json!(pod_ip);
    next["status"]["podIPs"] = json!([{"ip": pod_ip}]);
    next["status"]["hostIP"] = json!(host_ip);
    next["status"]["hostIPs"] = json!([{"ip": host_ip}]);
    set_pod_running(&mut next, true);
    next["status"].take()
}

/// The `n`th pod IP handed out (from 10.244.0.2).
pub(crate) fn pod_ip(n: u32) -> String {
    format!("10.244.{}.{}", n / 250, n % 250 + 2)
}

/// A Deployment for `d`.
/// Sets the scenario's annotations on `object`, when it gives any (the API server leaves
/// an empty map out).
fn annotate(mut object: Value, given: &BTreeMap<String, String>) -> Value {
    if !given.is_empty() {
        object["metadata"]["annotations"] = annotations(given, &[]);
    }
    object
}

/// An object's annotations: the scenario's, then the controller's own.
fn annotations(given: &BTreeMap<String, String>, own: &[(&str, &str)]) -> Value {
    let mut all: serde_json::Map<String, Value> =
        given.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    for (k, v) in own {
        all.insert((*k).to_string(), json!(v));
    }
    Value::Object(all)
}

pub(crate) fn deployment_object(ns: &str, d: &WorkloadSpec) -> Value {
    json!({
        "metadata": {
            "name": d.name, "namespace": ns, "generation": 1,
            "labels": d.labels,
            "annotations": annotations(&d.annotations, &[("deployment.kubernetes.io/revision", "1")]),
        },
        "spec": {
            "replicas": d.replicas,
            "selector": {"matchLabels": d.labels},
            "template": pod_template(&d.name, &d.labels, &d.ports),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    })
}

/// The ReplicaSet of the Deployment `deploy` (created from `d`), and its pods' labels.
pub(crate) fn replicaset_object(
    ns: &str,
    d: &WorkloadSpec,
    deploy: &Value,
) -> (Value, BTreeMap<String, String>) {
    let hash = short_hash(&format!("{ns}/{}", d.name), 10);
    let mut rs_labels = d.labels.clone();
    rs_labels.insert("pod-template-hash".into(), hash.clone());
    let mut rs_template = pod_template(&d.name, &rs_labels, &d.ports);
    rs_template["metadata"]["labels"] = json!(rs_labels);
    let rs_name = format!("{}-{hash}", d.name);
    let rs = json!({
        "metadata": {
            "name": rs_name, "namespace": ns, "generation": 1,
            "labels": rs_labels,
            "annotations": {"deployment.kubernetes.io/desired-replicas": d.replicas.to_string(), "deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [owner_ref("apps/v1", "Deployment", deploy)],
        },
        "spec": {"replicas": d.replicas, "selector": {"matchLabels": rs_labels}, "template": rs_template},
        "status": {},
    });
    (rs, rs_labels)
}

/// The revision label value of a StatefulSet.
pub(crate) fn statefulset_revision(ns: &str, name: &str) -> String {
    format!("{name}-{}", short_hash(&format!("{ns}/{name}"), 10))
}

/// A StatefulSet for `s`.
pub(crate) fn statefulset_object(ns: &str, s: &WorkloadSpec) -> Value {
    let revision = statefulset_revision(ns, &s.name);
    let object = json!({
        "metadata": {"name": s.name, "namespace": ns, "generation": 1, "labels": s.labels},
        "spec": {
            "replicas": s.replicas,
            "selector": {"matchLabels": s.labels},
            "serviceName": s.name,
            "template": pod_template(&s.name, &s.labels, &s.ports),
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
        },
        "status": {"currentRevision": revision, "updateRevision": revision, "collisionCount": 0},
    });
    annotate(object, &s.annotations)
}

/// The labels of pod `name` of a StatefulSet whose template has `labels`.
pub(crate) fn statefulset_pod_labels(
    labels: &BTreeMap<String, String>,
    name: &str,
    revision: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = labels.clone();
    labels.insert(
        "statefulset.kubernetes.io/pod-name".into(),
        name.to_string(),
    );
    if let Some(rev) = revision {
        labels.insert("controller-revision-hash".into(), rev.to_string());
    }
    if let Some((_, idx)) = name.rsplit_once('-') {
        labels.insert("apps.kubernetes.io/pod-index".into(), idx.to_string());
    }
    labels
}

/// A ClusterIP Service for `s`; without `ip`, the API server allocates one.
pub(crate) fn service_object(ns: &str, s: &ServiceSpec, ip: Option<&str>) -> Value {
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
    let mut svc = json!({
        "metadata": {"name": s.name, "namespace": ns, "labels": {"app": s.name}},
        "spec": {
            "type": "ClusterIP",
            "ports": ports,
            "selector": s.selector,
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    });
    if let Some(ip) = ip {
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
    }
    annotate(svc, &s.annotations)
}

/// One EndpointSlice a Service should have: its name, endpoints and ports.
pub(crate) struct DesiredSlice {
    pub name: String,
    pub endpoints: Value,
    pub ports: Value,
}

/// The EndpointSlices of `svc` for `pods` (the namespace's pods), as the EndpointSlice
/// controller groups them: one slice per way the service's ports resolve on a pod.
pub(crate) fn desired_slices(ns: &str, svc: &Value, pods: &[Arc<Value>]) -> Vec<DesiredSlice> {
    let svc_name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let selector = svc["spec"]["selector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let svc_ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let mut groups: BTreeMap<Vec<(String, u16)>, Vec<Value>> = BTreeMap::new();
    if !selector.is_empty() {
        for pod in pods {
            let labels = &pod["metadata"]["labels"];
            if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                continue;
            }
            if pod["metadata"].get("deletionTimestamp").is_some() {
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
                "nodeName": pod["spec"]["nodeName"],
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                },
            }));
        }
    }
    let mut desired = Vec::new();
    if groups.is_empty() {
        desired.push(DesiredSlice {
            name: format!("{svc_name}-{}", short_hash(&format!("{ns}/{svc_name}/"), 5)),
            endpoints: json!([]),
            ports: Value::Null,
        });
    }
    for (mapping, endpoints) in groups {
        let key = format!("{ns}/{svc_name}/{mapping:?}");
        let ports: Vec<Value> = mapping
            .iter()
            .map(|(name, port)| json!({"name": name, "port": port, "protocol": "TCP"}))
            .collect();
        desired.push(DesiredSlice {
            name: format!("{svc_name}-{}", short_hash(&key, 5)),
            endpoints: json!(endpoints),
            ports: json!(ports),
        });
    }
    desired
}

/// A new EndpointSlice of `svc`.
pub(crate) fn slice_object(ns: &str, svc: &Value, slice: &DesiredSlice) -> Value {
    let svc_name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let mut obj = json!({
        "metadata": {
            "name": slice.name,
            "namespace": ns,
            "generateName": format!("{svc_name}-"),
            "labels": {
                "kubernetes.io/service-name": svc_name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [owner_ref("v1", "Service", svc)],
        },
        "addressType": "IPv4",
        "endpoints": slice.endpoints,
    });
    if !slice.ports.is_null() {
        obj["ports"] = slice.ports.clone();
    }
    obj
}

/// A ReplicaSet's status for its `pods`.
pub(crate) fn replicaset_status(pods: &[Arc<Value>]) -> Value {
    let ready = pods.iter().filter(|p| pod_is_ready(p)).count();
    json!({
        "observedGeneration": 1,
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
    })
}

/// A Deployment's status from its ReplicaSets' statuses, without condition times (compare
/// with [`strip_times`] of the current one; stamp with [`stamp_conditions`]).
pub(crate) fn deployment_status(deploy: &Value, replicasets: &[&Value]) -> Value {
    let mut total = 0usize;
    let mut ready = 0usize;
    for rs in replicasets {
        total += rs["status"]["replicas"].as_u64().unwrap_or(0) as usize;
        ready += rs["status"]["readyReplicas"].as_u64().unwrap_or(0) as usize;
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
    status
}

/// Stamps every condition of `status` with the time now.
pub(crate) fn stamp_conditions(status: &mut Value) {
    let stamp = now();
    if let Some(conds) = status["conditions"].as_array_mut() {
        for c in conds {
            c["lastUpdateTime"] = json!(stamp);
            c["lastTransitionTime"] = json!(stamp);
        }
    }
}

/// A StatefulSet's status for its `pods`, keeping its revisions.
pub(crate) fn statefulset_status(sts: &Value, pods: &[Arc<Value>]) -> Value {
    let ready = pods.iter().filter(|p| pod_is_ready(p)).count();
    let mut status = sts["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    status["observedGeneration"] = json!(1);
    status["replicas"] = json!(pods.len());
    status["currentReplicas"] = json!(pods.len());
    status["updatedReplicas"] = json!(pods.len());
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(ready);
    status
}

/// A generated-name suffix (five characters of Kubernetes' alphabet).
pub(crate) fn random_suffix() -> String {
    short_hash_random(5)
}
