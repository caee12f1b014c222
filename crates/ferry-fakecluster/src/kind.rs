//! The resource kinds the fake cluster serves, and how they appear in the API.

/// A resource kind the fake cluster stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Pod,
    Service,
    EndpointSlice,
    Deployment,
    StatefulSet,
    ReplicaSet,
    Node,
    ServiceAccount,
}

impl Kind {
    /// Every kind, in discovery order.
    pub const ALL: [Kind; 9] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::ReplicaSet,
        Kind::Node,
        Kind::ServiceAccount,
    ];

    /// The `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Node => "Node",
            Kind::ServiceAccount => "ServiceAccount",
        }
    }

    /// The resource name in URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::ReplicaSet => "replicasets",
            Kind::Node => "nodes",
            Kind::ServiceAccount => "serviceaccounts",
        }
    }

    /// The singular resource name.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Pod => "pod",
            Kind::Service => "service",
            Kind::EndpointSlice => "endpointslice",
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::ReplicaSet => "replicaset",
            Kind::Node => "node",
            Kind::ServiceAccount => "serviceaccount",
        }
    }

    /// Short names as discovery lists them (kubectl resolves `po`, `svc`, `deploy`…).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Pod => &["po"],
            Kind::Service => &["svc"],
            Kind::EndpointSlice => &[],
            Kind::Deployment => &["deploy"],
            Kind::StatefulSet => &["sts"],
            Kind::ReplicaSet => &["rs"],
            Kind::Node => &["no"],
            Kind::ServiceAccount => &["sa"],
        }
    }

    /// The API group, empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::Service | Kind::Node | Kind::ServiceAccount => "",
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::Deployment | Kind::StatefulSet | Kind::ReplicaSet => "apps",
        }
    }

    /// The `apiVersion` field.
    pub fn api_version(self) -> &'static str {
        match self.group() {
            "" => "v1",
            "apps" => "apps/v1",
            _ => "discovery.k8s.io/v1",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    /// Whether the kind appears in `kubectl get all`.
    pub fn in_category_all(self) -> bool {
        matches!(
            self,
            Kind::Pod | Kind::Service | Kind::Deployment | Kind::StatefulSet | Kind::ReplicaSet
        )
    }

    /// Finds the kind served at `/api/v1/<plural>` (group "") or `/apis/<group>/v1/<plural>`.
    pub fn from_path(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == plural)
    }
}
