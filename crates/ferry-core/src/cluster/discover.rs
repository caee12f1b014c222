//! What a cluster declares: the forwards written in annotations on the services,
//! deployments, statefulsets and bare pods of a namespace (or of every namespace) that the
//! user may list. Reading them is [`crate::config::declared`]'s; this module asks the API
//! server, with the user's own credentials and nothing more.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::ListParams;

use super::{ClientPool, ClusterError};
use crate::config::declared::{self, Declared};

/// How long one list may take before the kind is reported as not answered.
pub const DISCOVER_WITHIN: Duration = Duration::from_secs(10);

/// Where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The context's own namespace (else `default`).
    ContextNamespace,
    Namespace(String),
    /// Every namespace the user may list.
    All,
}

impl Scope {
    /// The scope a command's arguments ask for: one namespace, every one, or the context's
    /// own; `None` when both a namespace and every namespace were asked (the caller says so
    /// in its own terms).
    pub fn asked(namespace: Option<&str>, all_namespaces: bool) -> Option<Scope> {
        match (namespace, all_namespaces) {
            (Some(_), true) => None,
            (Some(ns), false) => Some(Scope::Namespace(ns.to_string())),
            (None, true) => Some(Scope::All),
            (None, false) => Some(Scope::ContextNamespace),
        }
    }
}

/// What one context declares.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The context asked (resolved from the current context when none was named).
    pub context: String,
    /// Declared forwards, by namespace, then object, then the order they are declared in.
    pub declared: Vec<Declared>,
    /// Annotations that could not be read, and kinds that could not be listed, each as a
    /// sentence naming the object or kind.
    pub problems: Vec<String>,
}

/// Lists the objects of `scope` in `context` and reads the forwards they declare. Fails
/// only when the context cannot be used at all; a kind the user may not list, or that does
/// not answer within [`DISCOVER_WITHIN`], is a problem in the result.
pub async fn discover(
    pool: &ClientPool,
    context: Option<&str>,
    scope: &Scope,
) -> Result<Discovery, ClusterError> {
    let cc = pool.client(context).await?;
    let namespace = match scope {
        Scope::ContextNamespace => Some(cc.namespace.clone()),
        Scope::Namespace(ns) => Some(ns.clone()),
        Scope::All => None,
    };
    let ctx = Some(cc.context.as_str());
    let mut out = Discovery {
        context: cc.context.clone(),
        ..Discovery::default()
    };
    let client = cc.client.clone();
    let api = |kind: &'static str| ApiFor {
        client: client.clone(),
        namespace: namespace.clone(),
        kind,
    };

    if let Some(services) = api("services").list::<Service>(&mut out.problems).await {
        for s in &services {
            collect(&mut out, declared::from_service(s, ctx));
        }
    }
    if let Some(deployments) = api("deployments")
        .list::<Deployment>(&mut out.problems)
        .await
    {
        for d in &deployments {
            let template = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
            workload(&mut out, "deployment", &d.metadata, template, ctx);
        }
    }
    if let Some(sets) = api("statefulsets")
        .list::<StatefulSet>(&mut out.problems)
        .await
    {
        for s in &sets {
            let template = s.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
            workload(&mut out, "statefulset", &s.metadata, template, ctx);
        }
    }
    if let Some(pods) = api("pods").list::<Pod>(&mut out.problems).await {
        // Pods a controller owns declare what their workload's template declares, read
        // above; only bare pods are objects of their own.
        for p in pods.iter().filter(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty)
        }) {
            workload(&mut out, "pod", &p.metadata, None, ctx);
        }
    }
    out.declared
        .sort_by(|a, b| (&a.forward.namespace, &a.object).cmp(&(&b.forward.namespace, &b.object)));
    Ok(out)
}

fn collect(out: &mut Discovery, (declared, problems): (Vec<Declared>, Vec<String>)) {
    out.declared.extend(declared);
    out.problems.extend(problems);
}

/// A workload's forwards: its own annotations and its pod template's (where k9s users
/// write theirs), the object's own winning a key both have.
fn workload(
    out: &mut Discovery,
    kind: &str,
    meta: &ObjectMeta,
    template: Option<&ObjectMeta>,
    context: Option<&str>,
) {
    let mut annotations: BTreeMap<String, String> = template
        .and_then(|t| t.annotations.clone())
        .unwrap_or_default();
    annotations.extend(meta.annotations.clone().unwrap_or_default());
    if annotations.is_empty() {
        return;
    }
    let (Some(name), Some(namespace)) = (meta.name.as_deref(), meta.namespace.as_deref()) else {
        return;
    };
    collect(
        out,
        declared::from_annotations(kind, name, namespace, context, &annotations),
    );
}

/// One kind's list, in a namespace or in all.
struct ApiFor {
    client: kube::Client,
    namespace: Option<String>,
    kind: &'static str,
}

impl ApiFor {
    /// The objects, or `None` with a problem said when the list failed.
    async fn list<K>(&self, problems: &mut Vec<String>) -> Option<Vec<K>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let api: Api<K> = match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let place = match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "in any namespace".to_string(),
        };
        match tokio::time::timeout(DISCOVER_WITHIN, api.list(&ListParams::default())).await {
            Ok(Ok(list)) => Some(list.items),
            Ok(Err(kube::Error::Api(status))) if status.code == 403 => {
                problems.push(format!(
                    "{} {place}: not allowed to list them ({}), so what they declare is not shown",
                    self.kind, status.message
                ));
                None
            }
            Ok(Err(e)) => {
                problems.push(format!("{} {place}: could not be listed: {e}", self.kind));
                None
            }
            Err(_) => {
                problems.push(format!(
                    "{} {place}: the cluster did not answer within {} s",
                    self.kind,
                    DISCOVER_WITHIN.as_secs()
                ));
                None
            }
        }
    }
}
