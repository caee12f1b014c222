//! Whether the user may do what a forward needs, asked of the API server before the
//! forward starts (`SelfSubjectAccessReview`), so a missing permission is named exactly
//! instead of surfacing as a bare 403 half-way through.
//!
//! What a forward needs, by target:
//!
//! | target      | needs                                                           |
//! |-------------|-----------------------------------------------------------------|
//! | pod         | get pods                                                        |
//! | service     | get services, list endpointslices (discovery.k8s.io)            |
//! | deployment  | get deployments (apps), list pods                               |
//! | statefulset | get statefulsets (apps), list pods                              |
//! | every one   | create and get pods/portforward                                 |
//!
//! `create` on `pods/portforward` is what port-forwarding needs over SPDY (a POST) and,
//! since Kubernetes 1.35, over WebSockets too; a WebSocket upgrade is a GET, so it needs
//! `get` as well (before 1.35, `get` alone).
//! Besides these, Ferry follows pod and EndpointSlice changes in the namespace (list and
//! watch); without that it still works but notices pod changes only when it re-resolves.
//!
//! A server that cannot answer reviews (an old or unusual API server, or a user who may
//! not create them) is not a reason to stop: the answer is then "unknown" and the forward
//! starts as before; a later 403 still names what is missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, SelfSubjectReviewStatus};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::debug;

use crate::config::Target;

/// How long an answer that allows everything (or could not say) is kept. A denial is asked
/// again each time (a forward in error retries every 15 s, so a granted role shows within
/// that).
pub const ALLOWED_FOR: Duration = Duration::from_secs(300);

/// How long to wait for the reviews before going ahead without them.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// One permission: a verb on a resource in an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub verb: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
}

impl Permission {
    const fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
        Permission {
            verb,
            group,
            resource,
            subresource: None,
        }
    }

    /// `create pods/portforward`, `list endpointslices.discovery.k8s.io`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} {}", self.verb, self.resource);
        if let Some(sub) = self.subresource {
            text.push('/');
            text.push_str(sub);
        }
        if !self.group.is_empty() {
            text.push('.');
            text.push_str(self.group);
        }
        text
    }
}

/// `create pods/portforward`.
pub const PORT_FORWARD: Permission = Permission {
    verb: "create",
    group: "",
    resource: "pods",
    subresource: Some("portforward"),
};

/// `get pods/portforward`: a WebSocket upgrade is a GET, checked as `get` first (and, since
/// Kubernetes 1.35, as `create` too).
pub const PORT_FORWARD_GET: Permission = Permission {
    verb: "get",
    ..PORT_FORWARD
};

/// What a forward to `target` cannot work without, `create` and `get pods/portforward` first.
pub fn needed(target: &Target) -> Vec<Permission> {
    needed_for_kind(target.kind()).unwrap_or_else(|| vec![PORT_FORWARD])
}

/// [`needed`] for a kind of target (`pod`, `service`, `deployment`, `statefulset`, or
/// their short forms as kubectl takes them); `None` for another word.
pub fn needed_for_kind(kind: &str) -> Option<Vec<Permission>> {
    let mut out = vec![PORT_FORWARD, PORT_FORWARD_GET];
    match kind {
        "pod" | "pods" | "po" => out.push(Permission::new("get", "", "pods")),
        "service" | "services" | "svc" => {
            out.push(Permission::new("get", "", "services"));
            out.push(Permission::new(
                "list",
                "discovery.k8s.io",
                "endpointslices",
            ));
        }
        "deployment" | "deployments" | "deploy" => {
            out.push(Permission::new("get", "apps", "deployments"));
            out.push(Permission::new("list", "", "pods"));
        }
        "statefulset" | "statefulsets" | "sts" => {
            out.push(Permission::new("get", "apps", "statefulsets"));
            out.push(Permission::new("list", "", "pods"));
        }
        _ => return None,
    }
    Some(out)
}

/// What makes a forward better without being needed: following pod changes at once, and
/// listing services to suggest targets.
pub fn helpful() -> Vec<Permission> {
    vec![
        Permission::new("list", "", "pods"),
        Permission::new("watch", "", "pods"),
        Permission::new("list", "discovery.k8s.io", "endpointslices"),
        Permission::new("watch", "discovery.k8s.io", "endpointslices"),
        Permission::new("list", "", "services"),
    ]
}

/// The API server's answer about some permissions in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Every permission asked about is granted.
    Allowed,
    /// These are not granted (in the order asked), with who asked.
    Denied {
        /// The user as the API server knows them (`SelfSubjectReview`), else the
        /// kubeconfig's user entry.
        user: Option<String>,
        namespace: String,
        missing: Vec<Permission>,
    },
    /// The server could not say (no review API, reviews not allowed, unreachable): go
    /// ahead, a later 403 still says what is missing.
    Unknown(String),
}

impl Answer {
    /// The sentence a user reads on the forward's row, the add dialog and `ferry doctor`.
    pub fn sentence(&self) -> Option<String> {
        let Answer::Denied {
            user,
            namespace,
            missing,
        } = self
        else {
            return None;
        };
        Some(denied_sentence(user.as_deref(), namespace, missing))
    }
}

/// "user `dev` cannot create pods/portforward in namespace `demo`; …".
pub fn denied_sentence(user: Option<&str>, namespace: &str, missing: &[Permission]) -> String {
    let who = match user {
        Some(u) => format!("user `{u}`"),
        None => "this user".to_string(),
    };
    // Verbs on one resource go together: "create or get pods/portforward".
    let mut groups: Vec<(Vec<&str>, Permission)> = Vec::new();
    for p in missing {
        match groups.iter_mut().find(|(_, q)| {
            (q.group, q.resource, q.subresource) == (p.group, p.resource, p.subresource)
        }) {
            Some((verbs, _)) => verbs.push(p.verb),
            None => groups.push((vec![p.verb], *p)),
        }
    }
    let what = groups
        .iter()
        .map(|(verbs, p)| {
            let one = Permission { verb: "", ..*p }.describe();
            format!("{}{one}", verbs.join(" or "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!("{who} cannot {what} in namespace `{namespace}`");
    if missing.contains(&PORT_FORWARD) {
        text.push_str(
            "; since Kubernetes 1.35 port-forwarding needs `create` on pods/portforward, not only `get`",
        );
    }
    text.push_str(if groups.len() == 1 && groups[0].0.len() == 1 {
        "; ask a cluster admin for a Role that grants it"
    } else {
        "; ask a cluster admin for a Role that grants them"
    });
    text
}

struct Cached {
    at: Instant,
    answer: Answer,
}

/// The answers of one client (one set of credentials), shared by its forwards: many
/// forwards in one namespace ask once. Held only to read or store an answer, never while
/// asking.
pub struct Checks {
    /// The kubeconfig's name for the user, said when the server does not tell its own.
    kubeconfig_user: Option<String>,
    /// The user's name as the server knows it, once asked (`None` inside: it would not say).
    user: Mutex<Option<Option<String>>>,
    answers: Mutex<HashMap<(String, Vec<Permission>), Cached>>,
}

impl Checks {
    pub fn new(kubeconfig_user: Option<String>) -> Arc<Self> {
        Arc::new(Checks {
            kubeconfig_user,
            user: Mutex::new(None),
            answers: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the user may do all of `permissions` in `namespace`. An allowing or unknown
    /// answer is reused for [`ALLOWED_FOR`]; a denial is asked again next time.
    pub async fn check(
        &self,
        client: &kube::Client,
        namespace: &str,
        permissions: &[Permission],
    ) -> Answer {
        let mut key_perms = permissions.to_vec();
        key_perms.sort();
        key_perms.dedup();
        let key = (namespace.to_string(), key_perms);
        // A denial is asked again every time (a granted role shows at the next retry);
        // the other answers are kept a while, so a server without reviews is not asked
        // at every resolution.
        if let Some(c) = self.answers.lock().get(&key)
            && !matches!(c.answer, Answer::Denied { .. })
            && c.at.elapsed() < ALLOWED_FOR
        {
            return c.answer.clone();
        }
        let answer =
            match tokio::time::timeout(REVIEW_TIMEOUT, self.ask(client, namespace, permissions))
                .await
            {
                Ok(a) => a,
                Err(_) => Answer::Unknown("the API server did not answer the access review".into()),
            };
        debug!(namespace, ?answer, "access reviewed");
        self.answers.lock().insert(
            key,
            Cached {
                at: Instant::now(),
                answer: answer.clone(),
            },
        );
        answer
    }

    async fn ask(
        &self,
        client: &kube::Client,
        namespace: &str,
        permissions: &[Permission],
    ) -> Answer {
        let reviews = permissions.iter().map(|p| review(client, namespace, p));
        let results = futures::future::join_all(reviews).await;
        let mut missing = Vec::new();
        for (p, r) in permissions.iter().zip(results) {
            match r {
                Ok(true) => {}
                Ok(false) => {
                    if !missing.contains(p) {
                        missing.push(*p);
                    }
                }
                Err(e) => return Answer::Unknown(e),
            }
        }
        if missing.is_empty() {
            return Answer::Allowed;
        }
        Answer::Denied {
            user: self.user(client).await,
            namespace: namespace.to_string(),
            missing,
        }
    }

    /// Who the server says the user is, asked once per client.
    async fn user(&self, client: &kube::Client) -> Option<String> {
        if let Some(known) = self.user.lock().clone() {
            return known.or_else(|| self.kubeconfig_user.clone());
        }
        let asked = whoami(client).await;
        *self.user.lock() = Some(asked.clone());
        asked.or_else(|| self.kubeconfig_user.clone())
    }
}

/// One `SelfSubjectAccessReview`: `Ok(allowed)`, or why the server could not say.
async fn review(client: &kube::Client, namespace: &str, p: &Permission) -> Result<bool, String> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some(p.verb.to_string()),
                group: Some(p.group.to_string()),
                resource: Some(p.resource.to_string()),
                subresource: p.subresource.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(answer) => Ok(answer
            .status
            .is_some_and(|s| s.allowed && !s.denied.unwrap_or(false))),
        Err(e) => Err(format!(
            "the API server could not review access: {}",
            super::error_chain(&e)
        )),
    }
}

/// The user's name as the API server knows it (`SelfSubjectReview`, Kubernetes 1.28+).
async fn whoami(client: &kube::Client) -> Option<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(SelfSubjectReview {
            status:
                Some(SelfSubjectReviewStatus {
                    user_info: Some(info),
                }),
            ..
        }) => info.username.filter(|u| !u.is_empty()),
        Ok(_) => None,
        Err(e) => {
            debug!(error = %e, "the API server did not say who the user is");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_as_kubectl_writes_them() {
        assert_eq!(PORT_FORWARD.describe(), "create pods/portforward");
        assert_eq!(
            Permission::new("list", "discovery.k8s.io", "endpointslices").describe(),
            "list endpointslices.discovery.k8s.io"
        );
        assert_eq!(Permission::new("get", "", "pods").describe(), "get pods");
    }

    #[test]
    fn every_target_needs_port_forward_and_its_own_reads() {
        let check = |target: Target, expect: &[&str]| {
            let got: Vec<String> = needed(&target).iter().map(Permission::describe).collect();
            assert_eq!(got, expect, "{target:?}");
        };
        check(
            Target::Pod("p".into()),
            &[
                "create pods/portforward",
                "get pods/portforward",
                "get pods",
            ],
        );
        check(
            Target::Service("s".into()),
            &[
                "create pods/portforward",
                "get pods/portforward",
                "get services",
                "list endpointslices.discovery.k8s.io",
            ],
        );
        check(
            Target::Deployment("d".into()),
            &[
                "create pods/portforward",
                "get pods/portforward",
                "get deployments.apps",
                "list pods",
            ],
        );
        check(
            Target::StatefulSet("s".into()),
            &[
                "create pods/portforward",
                "get pods/portforward",
                "get statefulsets.apps",
                "list pods",
            ],
        );
    }

    #[test]
    fn a_denial_names_the_user_the_namespace_and_what_is_missing() {
        let answer = Answer::Denied {
            user: Some("dev".into()),
            namespace: "demo".into(),
            missing: vec![PORT_FORWARD],
        };
        let text = answer.sentence().unwrap_or_default();
        assert!(
            text.starts_with("user `dev` cannot create pods/portforward in namespace `demo`; since Kubernetes 1.35"),
            "{text}"
        );
        let text = denied_sentence(None, "shop", &[Permission::new("get", "", "services")]);
        assert_eq!(
            text,
            "this user cannot get services in namespace `shop`; ask a cluster admin for a Role that grants it"
        );
        let text = denied_sentence(
            Some("dev"),
            "demo",
            &[
                PORT_FORWARD,
                PORT_FORWARD_GET,
                Permission::new("list", "discovery.k8s.io", "endpointslices"),
            ],
        );
        assert!(
            text.starts_with("user `dev` cannot create or get pods/portforward, list endpointslices.discovery.k8s.io in namespace `demo`; since Kubernetes 1.35"),
            "{text}"
        );
        assert!(text.ends_with("grants them"), "{text}");
        assert_eq!(Answer::Allowed.sentence(), None);
        assert_eq!(Answer::Unknown("x".into()).sentence(), None);
    }
}
