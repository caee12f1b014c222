//! Users with limited rights, checked the way a real API server's RBAC authorizer checks
//! them.
//!
//! A [`User`] is a bearer token, a name, groups and a list of [`PolicyRule`]s. A rule is
//! RBAC's `PolicyRule` (verbs, API groups, resources, resource names) plus the namespaces
//! it holds in, which stands in for the binding: `namespaces: [demo]` is a Role bound in
//! `demo`, `namespaces: ["*"]` a ClusterRole bound cluster-wide. A request is allowed when
//! one rule allows it, as RBAC unions its rules.
//!
//! Requests are turned into [`ResourceAttributes`] as the API server's `RequestInfo`
//! factory does (verb from the method, `list`/`watch`/`deletecollection` for
//! collections, namespace, resource, subresource, name), and a denial is answered with
//! the API server's own 403 wording ([`ResourceAttributes::forbidden_message`]).
//!
//! Every authenticated user may, as `system:basic-user` and `system:discovery` grant on a
//! real cluster, read discovery and create `selfsubjectaccessreviews`,
//! `selfsubjectrulesreviews` and `selfsubjectreviews`. A user in the group
//! `system:masters` may do anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Query;
use http::Method;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::kind::Kind;
use crate::scenario::{ScenarioError, check_name, invalid};

/// The name the kubeconfig's own token (and tokens issued with a lifetime) authenticate
/// as, as on a kubeadm cluster.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// The group whose members may do anything (kube-apiserver's privileged group).
pub const MASTERS_GROUP: &str = "system:masters";

/// The verbs a rule may name, besides `*`: those the API server derives from requests.
pub const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The subresources a rule may name (`pods/portforward`, `*/status`…).
const SUBRESOURCES: [&str; 11] = [
    "status",
    "portforward",
    "log",
    "exec",
    "attach",
    "proxy",
    "eviction",
    "binding",
    "ephemeralcontainers",
    "scale",
    "finalize",
];

/// Resources served outside [`Kind`]: the self-review APIs.
const REVIEW_RESOURCES: [(&str, &str); 3] = [
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
];

/// Non-resource paths every authenticated user may `get` (the `system:discovery` and
/// `system:public-info-viewer` cluster roles); `*` at the end matches any rest.
const PUBLIC_PATHS: [&str; 11] = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
    "/healthz",
    "/livez",
    "/readyz",
];

fn any() -> Vec<String> {
    vec!["*".to_string()]
}

/// A user with limited rights: who a bearer token authenticates as.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user name, as the API server reports it (`dev`,
    /// `system:serviceaccount:demo:ferry`…).
    pub name: String,
    /// The bearer token that authenticates as this user.
    pub token: String,
    /// Groups besides `system:authenticated`, which every user is in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// What the user may do; nothing when empty.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

/// One RBAC rule, with the namespaces it is bound in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or `*`.
    pub verbs: Vec<String>,
    /// Resources (`pods`), resources with a subresource (`pods/portforward`), `*/status`
    /// for a subresource of any resource, or `*`. As in RBAC, `pods` does not cover
    /// `pods/portforward`.
    pub resources: Vec<String>,
    /// API groups (`""` for the core group, `apps`, `discovery.k8s.io`…). Default: `*`,
    /// any group.
    #[serde(default = "any")]
    pub api_groups: Vec<String>,
    /// Object names the rule is limited to. Default: none, any object; a rule with names
    /// never allows requests without one (`list`, `create`), as in RBAC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Namespaces the rule holds in, or `*` for every namespace and cluster-scoped
    /// resources (a ClusterRoleBinding). Default: `*`.
    #[serde(default = "any")]
    pub namespaces: Vec<String>,
}

// === impl User ===

impl User {
    /// A user without rights; add some with [`User::rule`].
    #[must_use]
    pub fn new(name: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            groups: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Adds a group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Adds a rule.
    #[must_use]
    pub fn rule(mut self, rule: PolicyRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The groups the API server reports: the user's own, then `system:authenticated`.
    pub fn all_groups(&self) -> Vec<String> {
        let mut groups = self.groups.clone();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
        groups
    }

    /// Whether the user may do `attrs`; when allowed, why, in the words of a
    /// SubjectAccessReview's `status.reason`.
    pub fn authorize(&self, attrs: &ResourceAttributes) -> Option<String> {
        if self.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Some(String::new());
        }
        let basic_user = attrs.verb == "create"
            && attrs.subresource.is_empty()
            && REVIEW_RESOURCES
                .iter()
                .any(|(g, r)| *g == attrs.group && *r == attrs.resource);
        if basic_user {
            return Some(binding_reason("system:basic-user"));
        }
        self.rules
            .iter()
            .position(|r| r.allows(attrs))
            .map(|i| format!("RBAC: allowed by rules[{i}] of User {:?}", self.name))
    }

    /// Whether the user may `verb` the non-resource `path`; when allowed, why.
    pub fn authorize_path(&self, verb: &str, path: &str) -> Option<String> {
        if self.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Some(String::new());
        }
        let public = PUBLIC_PATHS.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == *p,
        });
        (verb == "get" && public).then(|| binding_reason("system:discovery"))
    }
}

/// RBAC's reason for a request allowed by one of the default cluster roles every
/// authenticated user is bound to.
fn binding_reason(role: &str) -> String {
    format!(
        "RBAC: allowed by ClusterRoleBinding \"{role}\" of ClusterRole \"{role}\" to Group \"{AUTHENTICATED_GROUP}\""
    )
}

// === impl PolicyRule ===

impl PolicyRule {
    /// A rule for `verbs` on `resources`, in any API group and every namespace.
    #[must_use]
    pub fn new(
        verbs: impl IntoIterator<Item = impl Into<String>>,
        resources: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            verbs: verbs.into_iter().map(Into::into).collect(),
            resources: resources.into_iter().map(Into::into).collect(),
            api_groups: any(),
            resource_names: Vec::new(),
            namespaces: any(),
        }
    }

    /// Limits the rule to these API groups (`""` is the core group).
    #[must_use]
    pub fn api_groups(mut self, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.api_groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Limits the rule to these namespaces.
    #[must_use]
    pub fn namespaces(mut self, namespaces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Limits the rule to objects with these names.
    #[must_use]
    pub fn resource_names(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.resource_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Whether this rule allows `attrs`, matching as RBAC's `RuleAllows` does.
    pub fn allows(&self, attrs: &ResourceAttributes) -> bool {
        let has = |list: &[String], want: &str| list.iter().any(|v| v == "*" || v == want);
        let resource = attrs.combined_resource();
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == resource
                || (!attrs.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
        });
        let name_ok = self.resource_names.is_empty()
            || (!attrs.name.is_empty() && self.resource_names.contains(&attrs.name));
        // An empty namespace is a cluster-scoped or all-namespaces request, which only a
        // cluster-wide binding covers.
        let namespace_ok = self.namespaces.iter().any(|n| n == "*")
            || (!attrs.namespace.is_empty() && self.namespaces.contains(&attrs.namespace));
        has(&self.verbs, &attrs.verb)
            && has(&self.api_groups, &attrs.group)
            && resource_ok
            && name_ok
            && namespace_ok
    }
}

// === validation ===

/// Checks users as the scenario's `users:` field at `at` (`users`), naming the offending
/// field: names, tokens and groups present and unique, rules well formed.
pub(crate) fn validate_users(users: &[User], at: &str) -> Result<(), ScenarioError> {
    let mut names = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for (i, u) in users.iter().enumerate() {
        let at = format!("{at}[{i}]");
        validate_user(u, &at)?;
        if names.insert(u.name.as_str(), i).is_some() {
            return Err(invalid(
                format!("{at}.name"),
                format!("user `{}` appears twice", u.name),
            ));
        }
        if let Some(j) = tokens.insert(u.token.as_str(), i) {
            return Err(invalid(
                format!("{at}.token"),
                format!("the same token as users[{j}]"),
            ));
        }
    }
    Ok(())
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && !s.chars().any(char::is_control)
}

fn validate_user(u: &User, at: &str) -> Result<(), ScenarioError> {
    if !printable(&u.name) || u.name.len() > 253 {
        return Err(invalid(
            format!("{at}.name"),
            format!(
                "`{}` is not a user name (1 to 253 printable characters, no surrounding spaces)",
                u.name.escape_debug()
            ),
        ));
    }
    let token_ok = !u.token.is_empty()
        && u.token.len() <= 1024
        && u.token.bytes().all(|b| b.is_ascii_graphic());
    if !token_ok {
        return Err(invalid(
            format!("{at}.token"),
            "a token is 1 to 1024 visible ASCII characters (no spaces)",
        ));
    }
    for (k, g) in u.groups.iter().enumerate() {
        if !printable(g) {
            return Err(invalid(
                format!("{at}.groups[{k}]"),
                format!("`{}` is not a group name", g.escape_debug()),
            ));
        }
    }
    validate_rules(&u.rules, &format!("{at}.rules"))
}

/// Checks rules, naming the offending field under `at` (`users[0].rules`, `rules`).
pub(crate) fn validate_rules(rules: &[PolicyRule], at: &str) -> Result<(), ScenarioError> {
    for (j, r) in rules.iter().enumerate() {
        let at = format!("{at}[{j}]");
        if r.verbs.is_empty() {
            return Err(invalid(
                format!("{at}.verbs"),
                "a rule needs at least one verb",
            ));
        }
        for (k, v) in r.verbs.iter().enumerate() {
            if v != "*" && !VERBS.contains(&v.as_str()) {
                return Err(invalid(
                    format!("{at}.verbs[{k}]"),
                    format!(
                        "unknown verb `{v}`; expected one of {}, or *",
                        VERBS.join(", ")
                    ),
                ));
            }
        }
        if r.resources.is_empty() {
            return Err(invalid(
                format!("{at}.resources"),
                "a rule needs at least one resource",
            ));
        }
        for (k, res) in r.resources.iter().enumerate() {
            check_resource(&format!("{at}.resources[{k}]"), res)?;
        }
        if r.api_groups.is_empty() {
            return Err(invalid(
                format!("{at}.api_groups"),
                "an empty list matches no group; leave the field out for any group",
            ));
        }
        for (k, g) in r.api_groups.iter().enumerate() {
            let ok = g == "*"
                || g.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !ok {
                return Err(invalid(
                    format!("{at}.api_groups[{k}]"),
                    format!("`{g}` is not an API group (\"\" for the core group, or *)"),
                ));
            }
        }
        for (k, n) in r.resource_names.iter().enumerate() {
            if !printable(n) {
                return Err(invalid(
                    format!("{at}.resource_names[{k}]"),
                    "a resource name cannot be empty",
                ));
            }
        }
        if r.namespaces.is_empty() {
            return Err(invalid(
                format!("{at}.namespaces"),
                "an empty list matches no namespace; leave the field out for all of them",
            ));
        }
        for (k, n) in r.namespaces.iter().enumerate() {
            if n != "*" {
                check_name(&format!("{at}.namespaces[{k}]"), n)?;
            }
        }
    }
    Ok(())
}

fn check_resource(at: &str, res: &str) -> Result<(), ScenarioError> {
    let (resource, sub) = match res.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (res, None),
    };
    let known = |r: &str| {
        r == "*"
            || Kind::ALL.iter().any(|k| k.plural() == r)
            || REVIEW_RESOURCES.iter().any(|(_, rr)| *rr == r)
    };
    if !known(resource) {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        return Err(invalid(
            at,
            format!(
                "unknown resource `{resource}`; expected one of {}, a review resource, or *",
                kinds.join(", ")
            ),
        ));
    }
    match sub {
        None => Ok(()),
        Some("*") => Err(invalid(
            at,
            format!(
                "RBAC does not expand `{res}`: name the subresource (`{resource}/portforward`) or use `*`"
            ),
        )),
        Some(s) if resource == "*" && s.is_empty() => Err(invalid(at, "`*/` names no subresource")),
        Some(s) if SUBRESOURCES.contains(&s) => Ok(()),
        Some(s) => Err(invalid(
            at,
            format!(
                "unknown subresource `{s}`; expected one of {}",
                SUBRESOURCES.join(", ")
            ),
        )),
    }
}

// === request attributes ===

/// What a resource request asks to do, as the API server's authorizer sees it (the
/// resource half of `authorization.k8s.io/v1` `ResourceAttributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub verb: String,
    /// The API group, `""` for the core group.
    pub group: String,
    pub resource: String,
    /// `portforward`, `status`…; empty for the resource itself.
    pub subresource: String,
    /// Empty for cluster-scoped resources and requests across all namespaces.
    pub namespace: String,
    /// Empty for collections.
    pub name: String,
}

impl ResourceAttributes {
    /// `resource` or `resource/subresource`, as rules and messages name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// A real API server's 403 message for `user` (apimachinery's `NewForbidden` around
    /// apiserver's `forbiddenMessage`): `pods "solo" is forbidden: User "dev" cannot
    /// create resource "pods/portforward" in API group "" in the namespace "demo"`;
    /// `pods is forbidden: …` for collections; `… at the cluster scope` without a
    /// namespace.
    pub fn forbidden_message(&self, user: &str) -> String {
        let qualified = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let subject = if self.name.is_empty() {
            qualified
        } else {
            format!("{qualified} {:?}", self.name)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        format!(
            "{subject} is forbidden: User {user:?} cannot {} resource {:?} in API group {:?} {scope}",
            self.verb,
            self.combined_resource(),
            self.group,
        )
    }

    /// The `details` of the 403 `Status`: the name and group when there are some, and the
    /// resource as `kind`.
    pub fn forbidden_details(&self) -> serde_json::Value {
        let mut d = serde_json::json!({"kind": self.resource});
        if !self.name.is_empty() {
            d["name"] = self.name.clone().into();
        }
        if !self.group.is_empty() {
            d["group"] = self.group.clone().into();
        }
        d
    }

    /// Whether this is the upgrade of a `pods/{name}/portforward` request.
    pub(crate) fn is_portforward(&self) -> bool {
        self.group.is_empty()
            && self.resource == "pods"
            && self.subresource == "portforward"
            && !self.name.is_empty()
    }
}

/// The attributes of a request for a resource (`/api/v1/…` or `/apis/{group}/{version}/…`
/// with at least a resource), as the API server's `RequestInfoFactory` derives them;
/// `None` for everything else (discovery, `/version`…).
pub(crate) fn request_attributes(
    method: &Method,
    segs: &[&str],
    uri: &http::Uri,
) -> Option<ResourceAttributes> {
    let (group, parts) = match segs {
        ["api", _version, parts @ ..] => ("", parts),
        ["apis", group, _version, parts @ ..] => (*group, parts),
        _ => return None,
    };
    if parts.is_empty() {
        return None;
    }
    let mut parts = parts;
    let mut namespace = "";
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1];
        // `namespaces/{ns}/status` and `/finalize` are the namespace's own subresources.
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    let mut attrs = ResourceAttributes {
        group: group.to_string(),
        resource: parts[0].to_string(),
        name: parts.get(1).map(|s| s.to_string()).unwrap_or_default(),
        subresource: parts.get(2).map(|s| s.to_string()).unwrap_or_default(),
        namespace: namespace.to_string(),
        verb: match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string(),
    };
    if attrs.name.is_empty() && attrs.verb == "get" {
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(p)| p)
            .unwrap_or_default();
        // strconv.ParseBool's spellings of true.
        let watch = pairs.iter().any(|(k, v)| {
            k == "watch" && matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True")
        });
        attrs.verb = if watch { "watch" } else { "list" }.to_string();
        // A list or watch of one object by name is authorized as that object.
        if let Some(name) = pairs
            .iter()
            .filter(|(k, _)| k == "fieldSelector")
            .flat_map(|(_, v)| v.split(','))
            .find_map(|term| {
                let term = term.trim();
                term.strip_prefix("metadata.name==")
                    .or_else(|| term.strip_prefix("metadata.name="))
            })
            .filter(|n| !n.is_empty() && !n.contains('/'))
        {
            attrs.name = name.to_string();
        }
    }
    if attrs.name.is_empty() && attrs.verb == "delete" {
        attrs.verb = "deletecollection".to_string();
    }
    Some(attrs)
}

// === the users of one fake cluster ===

/// Why a user could not be added or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    #[error("no user named `{0}`")]
    Unknown(String),
    #[error(transparent)]
    Invalid(#[from] ScenarioError),
}

/// The users of one fake cluster. Requests take one snapshot of their user (an
/// `Arc<User>`) when they are authenticated, so a change applies from the next request
/// on and never halfway through one.
pub struct Users {
    /// By name. Replaced whole, never changed in place.
    by_name: RwLock<BTreeMap<String, Arc<User>>>,
    /// The kubeconfig's own token, which no user may share.
    admin_token: String,
}

impl Users {
    /// The users of a cluster whose admin token is `admin_token`; `users` must have been
    /// validated already (they are checked against the admin token here).
    pub(crate) fn new(admin_token: String, users: &[User]) -> Result<Self, ScenarioError> {
        let me = Self {
            by_name: RwLock::default(),
            admin_token,
        };
        for (i, u) in users.iter().enumerate() {
            if u.token == me.admin_token {
                return Err(invalid(
                    format!("users[{i}].token"),
                    "the kubeconfig's own token; a user needs a token of its own",
                ));
            }
            me.by_name
                .write()
                .insert(u.name.clone(), Arc::new(u.clone()));
        }
        Ok(me)
    }

    /// Adds `user`, or replaces the user of the same name.
    pub fn add(&self, user: User) -> Result<(), UsersError> {
        validate_user(&user, "user")?;
        if user.token == self.admin_token {
            return Err(invalid(
                "user.token",
                "the kubeconfig's own token; a user needs a token of its own",
            )
            .into());
        }
        let mut by_name = self.by_name.write();
        if let Some(other) = by_name
            .values()
            .find(|u| u.token == user.token && u.name != user.name)
        {
            return Err(invalid(
                "user.token",
                format!("the same token as user `{}`", other.name),
            )
            .into());
        }
        by_name.insert(user.name.clone(), Arc::new(user));
        Ok(())
    }

    /// Removes the user `name`: its token stops working (401). Whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        self.by_name.write().remove(name).is_some()
    }

    /// Replaces the rules of user `name`; the next request is checked against them.
    pub fn set_rules(&self, name: &str, rules: Vec<PolicyRule>) -> Result<(), UsersError> {
        validate_rules(&rules, "rules")?;
        let mut by_name = self.by_name.write();
        let Some(old) = by_name.get(name) else {
            return Err(UsersError::Unknown(name.to_string()));
        };
        let user = User {
            rules,
            ..User::clone(old)
        };
        by_name.insert(name.to_string(), Arc::new(user));
        Ok(())
    }

    /// The user `name`, as it is now.
    pub fn get(&self, name: &str) -> Option<User> {
        self.by_name.read().get(name).map(|u| User::clone(u))
    }

    /// Every user, by name.
    pub fn all(&self) -> Vec<User> {
        self.by_name
            .read()
            .values()
            .map(|u| User::clone(u))
            .collect()
    }

    /// The user `token` authenticates as, if any.
    pub(crate) fn by_token(&self, token: &str) -> Option<Arc<User>> {
        self.by_name
            .read()
            .values()
            .find(|u| crate::api::constant_time_eq(u.token.as_bytes(), token.as_bytes()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> ResourceAttributes {
        let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
        ResourceAttributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    /// `(verb, group, resource[/sub], namespace, name, allowed)` against `user`.
    fn check(user: &User, table: &[(&str, &str, &str, &str, &str, bool)]) {
        for &(verb, group, resource, ns, name, want) in table {
            let a = attrs(verb, group, resource, ns, name);
            assert_eq!(
                user.authorize(&a).is_some(),
                want,
                "{verb} {resource} in group {group:?}, namespace {ns:?}, name {name:?}"
            );
        }
    }

    #[test]
    fn rules_allow_and_deny_as_rbac_does() {
        let dev = User::new("dev", "t")
            .rule(
                PolicyRule::new(["get", "list", "watch"], ["pods", "services"])
                    .api_groups([""])
                    .namespaces(["demo"]),
            )
            .rule(PolicyRule::new(["list"], ["endpointslices"]).api_groups(["discovery.k8s.io"]))
            .rule(
                PolicyRule::new(["create"], ["pods/portforward"])
                    .namespaces(["demo"])
                    .resource_names(["solo"]),
            )
            .rule(PolicyRule::new(["get"], ["*/status"]).namespaces(["demo"]));
        check(
            &dev,
            &[
                ("get", "", "pods", "demo", "solo", true),
                ("list", "", "pods", "demo", "", true),
                ("watch", "", "services", "demo", "", true),
                ("delete", "", "pods", "demo", "solo", false),
                ("list", "", "pods", "other", "", false),
                // All namespaces needs a cluster-wide rule.
                ("list", "", "pods", "", "", false),
                // The core group only.
                ("list", "apps", "pods", "demo", "", false),
                ("list", "discovery.k8s.io", "endpointslices", "", "", true),
                (
                    "list",
                    "discovery.k8s.io",
                    "endpointslices",
                    "other",
                    "",
                    true,
                ),
                ("list", "", "endpointslices", "demo", "", false),
                // `pods` does not cover its subresources.
                ("get", "", "pods/log", "demo", "solo", false),
                ("create", "", "pods/portforward", "demo", "solo", true),
                ("create", "", "pods/portforward", "demo", "db-0", false),
                ("get", "", "pods/portforward", "demo", "solo", false),
                ("get", "", "pods/status", "demo", "solo", true),
                ("get", "apps", "deployments/status", "demo", "echo", true),
                ("patch", "", "pods/status", "demo", "solo", false),
                // Everyone may review themselves.
                (
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                    true,
                ),
                (
                    "create",
                    "authentication.k8s.io",
                    "selfsubjectreviews",
                    "",
                    "",
                    true,
                ),
                (
                    "list",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                    false,
                ),
            ],
        );
        let ops = User::new("ops", "u").rule(PolicyRule::new(["*"], ["*"]).namespaces(["demo"]));
        check(
            &ops,
            &[
                ("deletecollection", "", "pods", "demo", "", true),
                ("create", "", "pods/portforward", "demo", "x", true),
                ("get", "", "nodes", "", "n", false),
                ("get", "", "pods", "kube-system", "x", false),
            ],
        );
        let nobody = User::new("nobody", "v");
        check(&nobody, &[("get", "", "pods", "demo", "solo", false)]);
        let root = User::new("root", "w").group(MASTERS_GROUP);
        check(&root, &[("delete", "", "nodes", "", "n", true)]);
        // A requested `*` matches only a rule's `*`, as in a SubjectAccessReview.
        let reader = User::new("r", "x").rule(PolicyRule::new(["get"], ["pods"]));
        check(
            &reader,
            &[
                ("*", "", "pods", "demo", "", false),
                ("get", "", "*", "demo", "", false),
            ],
        );
        check(&ops, &[("*", "", "*", "demo", "", true)]);
    }

    #[test]
    fn discovery_paths_are_public() {
        let u = User::new("u", "t");
        assert!(u.authorize_path("get", "/api").is_some());
        assert!(u.authorize_path("get", "/apis/apps/v1").is_some());
        assert!(u.authorize_path("get", "/version").is_some());
        assert!(u.authorize_path("post", "/api").is_none());
        assert!(u.authorize_path("get", "/metrics").is_none());
    }

    fn req(method: Method, uri: &str) -> Option<ResourceAttributes> {
        let uri: http::Uri = uri.parse().expect("uri");
        let path = uri.path().to_string();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        request_attributes(&method, &segs, &uri)
    }

    #[test]
    fn requests_get_the_api_servers_attributes() {
        type Expect<'a> = Option<(&'a str, &'a str, &'a str, &'a str, &'a str)>;
        let table: &[(Method, &str, Expect<'_>)] = &[
            (Method::GET, "/api", None),
            (Method::GET, "/api/v1", None),
            (Method::GET, "/apis/apps/v1", None),
            (Method::GET, "/version", None),
            (
                Method::GET,
                "/api/v1/namespaces/demo/pods",
                Some(("list", "", "pods", "demo", "")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/demo/pods?watch=true&resourceVersion=1",
                Some(("watch", "", "pods", "demo", "")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/demo/pods?watch=1",
                Some(("watch", "", "pods", "demo", "")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/demo/pods?watch=false",
                Some(("list", "", "pods", "demo", "")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/demo/pods?fieldSelector=metadata.name%3Dsolo",
                Some(("list", "", "pods", "demo", "solo")),
            ),
            (
                Method::GET,
                "/api/v1/pods",
                Some(("list", "", "pods", "", "")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/demo/pods/solo",
                Some(("get", "", "pods", "demo", "solo")),
            ),
            (
                Method::HEAD,
                "/api/v1/namespaces/demo/pods/solo",
                Some(("get", "", "pods", "demo", "solo")),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/demo/pods/solo/portforward",
                Some(("create", "", "pods/portforward", "demo", "solo")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/demo/pods/solo/portforward?ports=80",
                Some(("get", "", "pods/portforward", "demo", "solo")),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/demo/pods",
                Some(("create", "", "pods", "demo", "")),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/demo/pods/solo",
                Some(("update", "", "pods", "demo", "solo")),
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/demo/pods/solo/status",
                Some(("patch", "", "pods/status", "demo", "solo")),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/demo/pods/solo",
                Some(("delete", "", "pods", "demo", "solo")),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/demo/pods",
                Some(("deletecollection", "", "pods", "demo", "")),
            ),
            (
                Method::GET,
                "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices",
                Some(("list", "discovery.k8s.io", "endpointslices", "demo", "")),
            ),
            (
                Method::GET,
                "/api/v1/nodes/n1",
                Some(("get", "", "nodes", "", "n1")),
            ),
            // A namespace is its own namespace, as in RequestInfo.
            (
                Method::GET,
                "/api/v1/namespaces/demo",
                Some(("get", "", "namespaces", "demo", "demo")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                Some(("list", "", "namespaces", "", "")),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/demo/finalize",
                Some(("update", "", "namespaces/finalize", "demo", "demo")),
            ),
            (
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Some((
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                )),
            ),
        ];
        for (method, uri, want) in table {
            let want = want
                .map(|(verb, group, resource, ns, name)| attrs(verb, group, resource, ns, name));
            assert_eq!(req(method.clone(), uri), want, "{method} {uri}");
        }
    }

    #[test]
    fn forbidden_messages_have_the_api_servers_wording() {
        let a = attrs("create", "", "pods/portforward", "demo", "echo-7d9f");
        assert_eq!(
            a.forbidden_message("dev"),
            r#"pods "echo-7d9f" is forbidden: User "dev" cannot create resource "pods/portforward" in API group "" in the namespace "demo""#
        );
        assert_eq!(
            a.forbidden_details(),
            serde_json::json!({"name": "echo-7d9f", "kind": "pods"})
        );
        let a = attrs("list", "", "pods", "demo", "");
        assert_eq!(
            a.forbidden_message("dev"),
            r#"pods is forbidden: User "dev" cannot list resource "pods" in API group "" in the namespace "demo""#
        );
        let a = attrs("list", "discovery.k8s.io", "endpointslices", "", "");
        assert_eq!(
            a.forbidden_message("dev"),
            r#"endpointslices.discovery.k8s.io is forbidden: User "dev" cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope"#
        );
        assert_eq!(
            a.forbidden_details(),
            serde_json::json!({"group": "discovery.k8s.io", "kind": "endpointslices"})
        );
    }

    fn bad_rule(rule: PolicyRule, expect: &str) {
        let err = validate_rules(&[rule], "rules")
            .expect_err("rule should be rejected")
            .to_string();
        assert!(
            err.contains(expect),
            "error `{err}` should contain `{expect}`"
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        bad_rule(
            PolicyRule::new(["get", "fetch"], ["pods"]),
            "rules[0].verbs[1]",
        );
        bad_rule(
            PolicyRule::new(Vec::<String>::new(), ["pods"]),
            "rules[0].verbs",
        );
        bad_rule(
            PolicyRule::new(["get"], ["pods", "pots"]),
            "rules[0].resources[1]",
        );
        bad_rule(PolicyRule::new(["get"], ["pods/*"]), "does not expand");
        bad_rule(
            PolicyRule::new(["get"], ["pods/logs"]),
            "unknown subresource",
        );
        bad_rule(
            PolicyRule::new(["get"], ["pods"]).api_groups(["Apps"]),
            "rules[0].api_groups[0]",
        );
        bad_rule(
            PolicyRule::new(["get"], ["pods"]).namespaces(["Demo"]),
            "rules[0].namespaces[0]",
        );
        bad_rule(
            PolicyRule::new(["get"], ["pods"]).namespaces(Vec::<String>::new()),
            "rules[0].namespaces",
        );
        let users = [User::new("dev", "a"), User::new("dev", "b")];
        let err = validate_users(&users, "users")
            .expect_err("twice")
            .to_string();
        assert!(err.contains("users[1].name"), "{err}");
        let users = [User::new("dev", "a"), User::new("ops", "a")];
        let err = validate_users(&users, "users")
            .expect_err("same token")
            .to_string();
        assert!(err.contains("users[1].token"), "{err}");
        let err = validate_users(&[User::new("", "a")], "users")
            .expect_err("empty")
            .to_string();
        assert!(err.contains("users[0].name"), "{err}");
        let err = validate_users(&[User::new("dev", "a b")], "users")
            .expect_err("space")
            .to_string();
        assert!(err.contains("users[0].token"), "{err}");
    }

    #[test]
    fn rules_change_for_the_next_snapshot_only() {
        let users = Users::new(
            "admin".into(),
            &[User::new("dev", "dev-token").rule(PolicyRule::new(["get"], ["pods"]))],
        )
        .expect("users");
        let before = users.by_token("dev-token").expect("dev");
        users
            .set_rules("dev", vec![PolicyRule::new(["list"], ["pods"])])
            .expect("set");
        let after = users.by_token("dev-token").expect("dev");
        let get = attrs("get", "", "pods", "demo", "solo");
        assert!(before.authorize(&get).is_some());
        assert!(after.authorize(&get).is_none());
        assert!(matches!(
            users.set_rules("nope", Vec::new()),
            Err(UsersError::Unknown(_))
        ));
        assert!(
            users
                .set_rules("dev", vec![PolicyRule::new(["run"], ["pods"])])
                .is_err()
        );
        assert!(users.add(User::new("ops", "admin")).is_err());
        assert!(users.add(User::new("ops", "dev-token")).is_err());
        assert!(users.remove("dev"));
        assert!(users.by_token("dev-token").is_none());
    }
}
