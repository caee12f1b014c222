//! A fake node for a Kubernetes API server: the fake API server of this crate, or a real
//! `kube-apiserver` (with etcd, and no controller manager, scheduler or kubelet).
//!
//! The node plays what such an API server lacks:
//!
//! - **kubelet's streaming endpoint**, over HTTPS on its own address: `POST
//!   /portForward/{namespace}/{pod}` upgraded to SPDY/3.1 (`portforward.k8s.io`), which is
//!   what the API server sends for `kubectl port-forward` (also when kubectl came in over a
//!   WebSocket), and `GET /portForward/{namespace}/{pod}?port=N` upgraded to the WebSocket
//!   channel protocol (`v4.channel.k8s.io`), which the API server passes through for
//!   WebSocket clients (kube-rs, the Python client). The sessions are the same code the
//!   fake API server serves `pods/{name}/portforward` with.
//! - **the node and the controllers**, through a Kubernetes client ([`controller`]): it
//!   registers a `Node` (its `InternalIP` and `daemonEndpoints.kubeletEndpoint.Port` are
//!   this endpoint), creates the scenario's namespaces with their `default`
//!   ServiceAccount, Services, Deployments (with a ReplicaSet), StatefulSets and pods
//!   (bound to the node, with owner references), starts each pod's port servers and
//!   marks it Running and Ready after the scenario's `ready_delay_ms`, keeps
//!   EndpointSlices and workload statuses in line, completes pod deletions (a pod with a
//!   `deletionTimestamp` is deleted with a grace period of 0, as kubelet does once its
//!   containers stopped), recreates workload pods after `recreate_delay_ms`, and applies
//!   the `fake.ferry.dev/behavior` annotation.
//!
//! Object shapes come from the same builders as the fake API server's own controllers
//! (`objects`), and pod ports are served by the same backends.

pub mod controller;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info};

use crate::backend::PortBackend;
use crate::cluster::PortTarget;
use crate::scenario::{Behavior, PortSpec, Scenario};
use crate::{portforward, tls, upgrade};

/// The node name used unless told otherwise.
pub const DEFAULT_NODE_NAME: &str = "ferry-node";

/// How to start a node.
#[derive(Debug, Clone)]
#[must_use]
pub struct NodeOptions {
    /// The objects to create. Default: the built-in `demo` scenario.
    pub scenario: Scenario,
    /// Where kubelet's endpoint listens; its IP is the Node's `InternalIP`. Default:
    /// `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The Node's name. Default: [`DEFAULT_NODE_NAME`].
    pub name: String,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            scenario: Scenario::demo(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            name: DEFAULT_NODE_NAME.into(),
        }
    }
}

impl NodeOptions {
    /// Uses `scenario` instead of the demo.
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = scenario;
        self
    }

    /// Listens on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Names the Node.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("the node listens on loopback only; {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Scenario(#[from] crate::ScenarioError),
    #[error("reading the API server's kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// A running node. Dropping it stops its endpoint, controllers and pod servers (the
/// objects it created stay in the API server).
pub struct Node {
    name: String,
    addr: SocketAddr,
    ca_pem: String,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    pods: Arc<Pods>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Node {
    /// Starts kubelet's endpoint, registers the Node, creates the scenario's objects and
    /// starts the controllers. Returns once the objects exist (pods become Ready later).
    pub async fn start(client: kube::Client, opts: NodeOptions) -> Result<Self, NodeError> {
        if !opts.listen.ip().is_loopback() {
            return Err(NodeError::NotLoopback(opts.listen));
        }
        opts.scenario.validate()?;
        let listener =
            TcpListener::bind(opts.listen)
                .await
                .map_err(|source| NodeError::Listen {
                    addr: opts.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: opts.listen,
            source,
        })?;
        let certs = tls::Certificates::generate(Some(addr.ip()))?;
        // Port-forward upgrades need HTTP/1.1; offer nothing else.
        let mut server_config = (*certs.server_config).clone();
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let shutdown = CancellationToken::new();
        let pods = Arc::new(Pods::new(shutdown.child_token()));
        let router = Router::new()
            .fallback(kubelet)
            .with_state(KubeletState { pods: pods.clone() });
        let acceptor = TlsAcceptor::from(Arc::new(server_config));
        let mut tasks = vec![tokio::spawn(
            crate::serve(listener, acceptor, router, shutdown.clone(), None)
                .instrument(debug_span!("node", node.addr = %addr)),
        )];
        let ctl = controller::Controller::setup(
            client,
            controller::Settings {
                node: opts.name.clone(),
                host_ip: addr.ip().to_string(),
                port: addr.port(),
                scenario: opts.scenario,
            },
            pods.clone(),
        )
        .await?;
        tasks.push(tokio::spawn(ctl.run(shutdown.clone()).instrument(
            debug_span!("node.controllers", node.name = %opts.name),
        )));
        info!(node.name = %opts.name, node.addr = %addr, "node serving");
        Ok(Self {
            name: opts.name,
            addr,
            ca_pem: certs.ca_pem,
            shutdown,
            tasks,
            pods,
        })
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of kubelet's endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the endpoint's certificate (an API server
    /// does not check it; tests may).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The pods this node runs (`namespace/name`), sorted.
    pub fn running_pods(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .pods
            .inner
            .lock()
            .keys()
            .map(|(ns, name)| format!("{ns}/{name}"))
            .collect();
        out.sort();
        out
    }

    /// Stops the endpoint, the controllers and the pod servers.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Builds a Kubernetes client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, NodeError> {
    let err = |message: String| NodeError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| err(e.to_string()))?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&user_agent()).map_err(|e| err(e.to_string()))?,
    ));
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// What the node calls itself to the API server, as a kubelet says `kubelet/<version>
/// (<os>/<arch>)`: `ferry-fakecluster-node/<version> (<os>/<arch>)`.
pub fn user_agent() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "ferry-fakecluster-node/{} ({os}/{arch})",
        env!("CARGO_PKG_VERSION")
    )
}

// === the pods this node runs ===

/// One pod's run-time side: its port servers and the token that ends its tunnels.
struct PodEntry {
    uid: String,
    running: bool,
    token: CancellationToken,
    backends: Vec<PortBackend>,
    /// The behaviour of each port without the annotation.
    base: Vec<Behavior>,
}

impl Drop for PodEntry {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The pods this node runs, by namespace and name.
pub(crate) struct Pods {
    inner: Mutex<HashMap<(String, String), PodEntry>>,
    root: CancellationToken,
}

impl Pods {
    fn new(root: CancellationToken) -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            root,
        }
    }

    /// The uid of the pod running as `namespace/name`.
    pub(crate) fn uid(&self, namespace: &str, name: &str) -> Option<String> {
        self.inner
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
            .map(|e| e.uid.clone())
    }

    /// Starts the port servers of a pod (replacing an earlier pod of the same name).
    pub(crate) fn start(&self, namespace: &str, name: &str, uid: &str, ports: &[PortSpec]) {
        let token = self.root.child_token();
        let backends = crate::backend::start_pod_ports(name, ports, &token);
        let entry = PodEntry {
            uid: uid.to_string(),
            running: false,
            token,
            backends,
            base: ports.iter().map(|p| p.behavior.clone()).collect(),
        };
        self.inner
            .lock()
            .insert((namespace.to_string(), name.to_string()), entry);
        debug!(pod.namespace = namespace, pod.name = name, "pod started");
    }

    /// Marks the pod's container as running: its ports accept tunnels.
    pub(crate) fn set_running(&self, namespace: &str, name: &str) {
        if let Some(e) = self
            .inner
            .lock()
            .get_mut(&(namespace.to_string(), name.to_string()))
        {
            e.running = true;
        }
    }

    /// Applies a behaviour to every port (`None`: the scenario's own).
    pub(crate) fn set_behavior(&self, namespace: &str, name: &str, behavior: Option<&Behavior>) {
        if let Some(e) = self
            .inner
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
        {
            for (backend, base) in e.backends.iter().zip(&e.base) {
                backend.set_behavior(behavior.cloned().unwrap_or_else(|| base.clone()));
            }
        }
    }

    /// Stops a pod: its servers and tunnels end.
    pub(crate) fn stop(&self, namespace: &str, name: &str) {
        let gone = self
            .inner
            .lock()
            .remove(&(namespace.to_string(), name.to_string()));
        if gone.is_some() {
            debug!(pod.namespace = namespace, pod.name = name, "pod stopped");
        }
    }

    /// Stops every pod whose uid `keep` does not hold.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.inner.lock().retain(|_, e| keep(&e.uid));
    }

    fn target(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Option<(PortTarget, CancellationToken)> {
        let inner = self.inner.lock();
        let e = inner.get(&(namespace.to_string(), pod.to_string()))?;
        let backend = e.backends.iter().find(|b| b.container_port == port);
        Some((
            PortTarget {
                pod_uid: e.uid.clone(),
                running: e.running,
                addr: backend.map(|b| b.addr),
                behavior: backend.map(PortBackend::behavior),
            },
            e.token.clone(),
        ))
    }
}

// === kubelet's streaming endpoint ===

#[derive(Clone)]
struct KubeletState {
    pods: Arc<Pods>,
}

/// Reaches a pod's ports as kubelet does.
struct NodePorts {
    pods: Arc<Pods>,
    namespace: String,
    pod: String,
}

impl crate::spdy::session::PortConnector for NodePorts {
    async fn connect(&self, port: u16) -> Result<tokio::net::TcpStream, String> {
        let Some((target, _)) = self.pods.target(&self.namespace, &self.pod, port) else {
            return Err(format!(
                "error forwarding port {port} to pod {}: pod not found on this node",
                self.pod
            ));
        };
        portforward::dial(&target, &self.namespace, &self.pod, port).await
    }
}

async fn kubelet(State(state): State<KubeletState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    debug!(http.method = %req.method(), http.path = %path, "kubelet request");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, pod, uid) = match segs.as_slice() {
        ["healthz"] => return (StatusCode::OK, "ok").into_response(),
        ["portForward", ns, pod] => (ns.to_string(), pod.to_string(), None),
        ["portForward", ns, pod, uid] => (ns.to_string(), pod.to_string(), Some(uid.to_string())),
        _ => return (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    };
    let Some((_, end)) = state.pods.target(&namespace, &pod, 0) else {
        return (
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} not found on this node\n"),
        )
            .into_response();
    };
    if let Some(uid) = uid
        && state.pods.uid(&namespace, &pod).as_deref() != Some(uid.as_str())
    {
        return (
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} with uid {uid} not found on this node\n"),
        )
            .into_response();
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let (mut parts, _body) = req.into_parts();
    let target = upgrade::Target {
        connector: Arc::new(NodePorts {
            pods: state.pods.clone(),
            namespace: namespace.clone(),
            pod: pod.clone(),
        }),
        namespace,
        pod,
        end,
        abort: CancellationToken::new(),
        guard: None,
        gate: crate::faults::Gate::inert(),
        stats: None,
        idle: None,
    };
    let protocol = upgrade::requested_protocol(&parts.headers, true);
    upgrade::portforward(&mut parts, &query, "port", protocol, target).await
}

#[cfg(test)]
mod tests;
