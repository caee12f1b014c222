//! Target resolution: from `service/echo:80` to the ready pods and container ports that
//! serve it.
//!
//! - pod → itself (it must be Running); a named port is the container port of that name;
//! - service → the ready endpoints of its EndpointSlices, the service port chosen by number
//!   or name, its targetPort already resolved per pod by the EndpointSlice controller;
//! - deployment, statefulset → the ready pods its selector matches.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::ListParams;

use crate::config::{PortRef, Target};

/// One ready pod and the container port a connection goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub pod: String,
    pub port: u16,
}

/// Why a target could not be resolved. Each message is one sentence saying what is wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("no ready pod behind {what}")]
    NoReadyPod { what: String },
    #[error("{what} is not running ({phase})")]
    NotRunning { what: String, phase: String },
    #[error("{what} has no port {port}{known}")]
    NoSuchPort {
        what: String,
        port: String,
        known: String,
    },
    #[error("not allowed to read {what}: {message}")]
    Forbidden { what: String, message: String },
    #[error(
        "the API server rejected the credentials (401 Unauthorized) while resolving {what}; check the user's token or certificate in the kubeconfig, or log in again"
    )]
    Unauthorized { what: String },
    #[error("the API server failed while resolving {what}: {message}")]
    Api { what: String, message: String },
}

impl ResolveError {
    /// Whether waiting may fix it (no ready pod yet, API trouble) rather than needing the
    /// user (a wrong name, a wrong port, no permission).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ResolveError::NoReadyPod { .. }
                | ResolveError::NotRunning { .. }
                | ResolveError::Api { .. }
                | ResolveError::Unauthorized { .. }
        )
    }
}

fn api_error(what: &str, e: kube::Error) -> ResolveError {
    match e {
        kube::Error::Api(status) if status.code == 404 => ResolveError::NotFound {
            what: what.to_string(),
        },
        kube::Error::Api(status) if status.code == 401 => ResolveError::Unauthorized {
            what: what.to_string(),
        },
        kube::Error::Api(status) if status.code == 403 => ResolveError::Forbidden {
            what: what.to_string(),
            message: status.message,
        },
        other => ResolveError::Api {
            what: what.to_string(),
            message: transport_sentence(&super::error_chain(&other)),
        },
    }
}

/// Turns a client error chain into a sentence that says what is wrong, for the failures
/// people meet: a wrong CA, an expired client certificate, an unreachable server.
pub(crate) fn transport_sentence(chain: &str) -> String {
    let lower = chain.to_ascii_lowercase();
    if lower.contains("unknownissuer") || lower.contains("invalid peer certificate") {
        format!(
            "the API server's certificate is not signed by the kubeconfig's certificate authority; check the cluster's certificate-authority(-data) ({chain})"
        )
    } else if lower.contains("expired") && lower.contains("certificate") {
        format!(
            "a certificate has expired; renew the client certificate in the kubeconfig ({chain})"
        )
    } else if lower.contains("connection refused") || lower.contains("tcp connect error") {
        format!(
            "cannot reach the API server: connection refused; is the cluster running and the server address right? ({chain})"
        )
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        format!("cannot resolve the API server's host name ({chain})")
    } else {
        chain.to_string()
    }
}

/// Resolves `target:port` in `namespace` to its ready endpoints, sorted by pod name.
/// With `pod_port`, a service's `port` is the number its pods listen on (see
/// `Forward::pod_port`).
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    target: &Target,
    port: &PortRef,
    pod_port: bool,
) -> Result<Vec<Endpoint>, ResolveError> {
    let what = format!("{} {namespace}/{}", target.kind(), target.name());
    let mut endpoints = match target {
        Target::Pod(name) => {
            let pod = Api::<Pod>::namespaced(client.clone(), namespace)
                .get(name)
                .await
                .map_err(|e| api_error(&what, e))?;
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Unknown".into());
            if phase != "Running" || pod.metadata.deletion_timestamp.is_some() {
                return Err(ResolveError::NotRunning { what, phase });
            }
            vec![Endpoint {
                pod: name.clone(),
                port: container_port(&pod, port)
                    .ok_or_else(|| no_such_port(&what, port, &[&pod]))?,
            }]
        }
        Target::Deployment(name) => {
            let d = Api::<Deployment>::namespaced(client.clone(), namespace)
                .get(name)
                .await
                .map_err(|e| api_error(&what, e))?;
            let selector = d.spec.map(|s| s.selector);
            workload_pods(client, namespace, &what, selector.as_ref(), port).await?
        }
        Target::StatefulSet(name) => {
            let s = Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .get(name)
                .await
                .map_err(|e| api_error(&what, e))?;
            let selector = s.spec.map(|s| s.selector);
            workload_pods(client, namespace, &what, selector.as_ref(), port).await?
        }
        Target::Service(name) => match (pod_port, port) {
            (true, PortRef::Number(number)) => {
                service_pods(client, namespace, name, &what, *number).await?
            }
            _ => service_endpoints(client, namespace, name, &what, port).await?,
        },
    };
    if endpoints.is_empty() {
        return Err(ResolveError::NoReadyPod { what });
    }
    endpoints.sort();
    endpoints.dedup();
    Ok(endpoints)
}

fn no_such_port(what: &str, port: &PortRef, pods: &[&Pod]) -> ResolveError {
    let mut known: Vec<String> = pods
        .iter()
        .flat_map(|p| p.spec.iter().flat_map(|s| s.containers.iter()))
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| match &p.name {
            Some(n) => format!("{n} ({})", p.container_port),
            None => p.container_port.to_string(),
        })
        .collect();
    known.sort();
    known.dedup();
    ResolveError::NoSuchPort {
        what: what.to_string(),
        port: port.to_string(),
        known: if known.is_empty() {
            String::new()
        } else {
            format!(" (ports: {})", known.join(", "))
        },
    }
}

/// The container port `port` means on `pod`: a number as is, a name looked up.
fn container_port(pod: &Pod, port: &PortRef) -> Option<u16> {
    match port {
        PortRef::Number(n) => Some(*n),
        PortRef::Name(name) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// A label selector in query syntax.
pub(crate) fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

async fn workload_pods(
    client: &kube::Client,
    namespace: &str,
    what: &str,
    selector: Option<&LabelSelector>,
    port: &PortRef,
) -> Result<Vec<Endpoint>, ResolveError> {
    let selector = selector.map(selector_string).unwrap_or_default();
    if selector.is_empty() {
        return Err(ResolveError::NoReadyPod {
            what: what.to_string(),
        });
    }
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(what, e))?
        .items;
    let ready: Vec<&Pod> = pods.iter().filter(|p| pod_ready(p)).collect();
    let mut out = Vec::new();
    for pod in &ready {
        if let (Some(name), Some(p)) = (pod.metadata.name.clone(), container_port(pod, port)) {
            out.push(Endpoint { pod: name, port: p });
        }
    }
    if out.is_empty() && !ready.is_empty() {
        return Err(no_such_port(what, port, &ready));
    }
    Ok(out)
}

/// The EndpointSlices of service `name`.
async fn service_slices(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    what: &str,
) -> Result<Vec<EndpointSlice>, ResolveError> {
    Ok(Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
        .await
        .map_err(|e| api_error(what, e))?
        .items)
}

/// The ready pods behind service `name` (from its EndpointSlices, whatever their ports),
/// each at the pods' port `number`.
async fn service_pods(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    what: &str,
    number: u16,
) -> Result<Vec<Endpoint>, ResolveError> {
    // The service must exist: a missing one is "not found", not "no ready pod".
    Api::<Service>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| api_error(what, e))?;
    let slices = service_slices(client, namespace, name, what).await?;
    Ok(slices
        .iter()
        .flat_map(|slice| slice.endpoints.iter())
        .filter_map(ready_pod)
        .map(|pod| Endpoint { pod, port: number })
        .collect())
}

/// The pod an endpoint names, when it is ready and not terminating.
fn ready_pod(ep: &k8s_openapi::api::discovery::v1::Endpoint) -> Option<String> {
    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
    let terminating = ep
        .conditions
        .as_ref()
        .and_then(|c| c.terminating)
        .unwrap_or(false);
    let target = ep.target_ref.as_ref()?;
    if !ready || terminating || target.kind.as_deref() != Some("Pod") {
        return None;
    }
    target.name.clone()
}

/// For a service's port as kftray and kportal mean it (the pods' port `pod_port`): the
/// service port that leads there, by its `targetPort` (a number, or a name looked up in
/// the service's EndpointSlices, whose ports carry the resolved numbers). `None` when no
/// service port leads to `pod_port`.
pub async fn service_port_to(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    pod_port: u16,
) -> Result<Option<u16>, ResolveError> {
    let what = format!("service {namespace}/{name}");
    let svc = Api::<Service>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| api_error(&what, e))?;
    let ports = svc.spec.and_then(|s| s.ports).unwrap_or_default();
    let wanted = i32::from(pod_port);
    // By number: `targetPort` written as a number, or left out (then it is `port`).
    if let Some(p) = ports.iter().find(|p| match &p.target_port {
        None => p.port == wanted,
        Some(IntOrString::Int(n)) => *n == wanted,
        Some(IntOrString::String(_)) => false,
    }) {
        return Ok(u16::try_from(p.port).ok());
    }
    // By name: the EndpointSlices name each service port and give the number its
    // `targetPort` name resolved to on the pods.
    let slices = service_slices(client, namespace, name, &what).await?;
    let named = slices
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|p| p.port == Some(wanted))
        .map(|p| p.name.clone().unwrap_or_default());
    Ok(named.and_then(|port_name| {
        ports
            .iter()
            .find(|p| {
                p.name.clone().unwrap_or_default() == port_name
                    && matches!(p.target_port, Some(IntOrString::String(_)))
            })
            .and_then(|p| u16::try_from(p.port).ok())
    }))
}

async fn service_endpoints(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    what: &str,
    port: &PortRef,
) -> Result<Vec<Endpoint>, ResolveError> {
    let svc = Api::<Service>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| api_error(what, e))?;
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let Some(svc_port) = ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == i32::from(*n),
        PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
    }) else {
        let known: Vec<String> = ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{n} ({})", p.port),
                None => p.port.to_string(),
            })
            .collect();
        return Err(ResolveError::NoSuchPort {
            what: what.to_string(),
            port: port.to_string(),
            known: format!(" (ports: {})", known.join(", ")),
        });
    };
    let port_name = svc_port.name.clone().unwrap_or_default();
    let slices = service_slices(client, namespace, name, what).await?;
    let mut out = Vec::new();
    for slice in &slices {
        let Some(number) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for pod in slice.endpoints.iter().filter_map(ready_pod) {
            out.push(Endpoint { pod, port: number });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_render_in_query_syntax() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b)");
    }
}
