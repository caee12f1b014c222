//! Cluster access: kubeconfig discovery the way kubectl does it, one client per context
//! built outside any lock and cached until the kubeconfig files change, and target
//! resolution (`resolve`).
//!
//! A context that fails to build keeps its error for display and never affects the other
//! contexts.

pub mod access;
pub mod discover;
mod exec;
mod proxy;
mod resolve;
mod settle;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use kube::config::{KubeConfigOptions, Kubeconfig};
use parking_lot::Mutex;
use tokio::sync::OnceCell;
use tracing::{debug, info};

pub use exec::{ExecOptions, ExecResolver, Found};
pub use resolve::{Endpoint, ResolveError, resolve, service_port_to};
pub use settle::{SETTLE_WITHIN, settle_pod_ports};

/// What Ferry calls itself to an API server: `ferry/<version> (<os>/<arch>)`, with the
/// operating system and architecture named as Kubernetes names them (`linux/amd64`,
/// `darwin/arm64`, `windows/amd64`), so audit logs and API server metrics can tell
/// Ferry's requests and port-forwards from anyone else's.
pub fn user_agent() -> String {
    format!(
        "ferry/{} ({}/{})",
        env!("CARGO_PKG_VERSION"),
        go_os(std::env::consts::OS),
        go_arch(std::env::consts::ARCH)
    )
}

/// Rust's name of an operating system as Go (and so Kubernetes) names it.
pub fn go_os(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        other => other,
    }
}

/// Rust's name of an architecture as Go (and so Kubernetes) names it.
pub fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Why a context's client could not be had.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// No kubeconfig file exists where kubectl would look.
    #[error("no kubeconfig found (looked at {looked}); set KUBECONFIG or create ~/.kube/config")]
    NoKubeconfig { looked: String },
    /// A kubeconfig file exists but cannot be read or parsed.
    #[error("kubeconfig {path} is unusable: {message}")]
    BadKubeconfig { path: String, message: String },
    /// No context was named and the kubeconfig has no current-context.
    #[error("no context given and the kubeconfig has no current-context; name one with `context:`")]
    NoCurrentContext,
    /// The named context does not exist.
    #[error("context `{context}` is not in the kubeconfig (known: {known})")]
    UnknownContext { context: String, known: String },
    /// The context exists but a client could not be built from it (bad CA, missing
    /// credentials, failing exec plugin…).
    #[error("context `{context}`: {message}")]
    Client { context: String, message: String },
}

/// Where kubeconfig files come from: a `KUBECONFIG`-style path list, merged in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigSource {
    paths: Vec<PathBuf>,
}

impl KubeconfigSource {
    /// What kubectl would read: the paths in `KUBECONFIG`, else `~/.kube/config`.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .map(PathBuf::from);
        Self::from_env_value(std::env::var_os("KUBECONFIG"), home.as_deref())
    }

    /// Like [`KubeconfigSource::from_env`], from explicit values (for tests and callers
    /// that must not read the process environment).
    pub fn from_env_value(kubeconfig: Option<OsString>, home: Option<&Path>) -> Self {
        let paths: Vec<PathBuf> = kubeconfig
            .as_deref()
            .map(|v| {
                std::env::split_paths(v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !paths.is_empty() {
            return Self { paths };
        }
        Self {
            paths: home
                .map(|h| vec![h.join(".kube").join("config")])
                .unwrap_or_default(),
        }
    }

    /// Exactly these files, merged in order.
    pub fn from_paths(paths: Vec<PathBuf>) -> Self {
        Self { paths }
    }

    /// The candidate files, in merge order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// A cheap summary of the files' state; it changes when any file changes.
    pub fn fingerprint(&self) -> Vec<(PathBuf, Option<(SystemTime, u64)>)> {
        self.paths
            .iter()
            .map(|p| {
                let meta = std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (p.clone(), meta)
            })
            .collect()
    }

    /// Reads and merges the existing files (missing ones are skipped, as kubectl does).
    pub fn load(&self) -> Result<Kubeconfig, ClusterError> {
        let mut merged: Option<Kubeconfig> = None;
        for path in &self.paths {
            if !path.exists() {
                continue;
            }
            let bad = |message: String| ClusterError::BadKubeconfig {
                path: path.display().to_string(),
                message,
            };
            let next = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            merged = Some(match merged {
                None => next,
                Some(acc) => acc.merge(next).map_err(|e| bad(e.to_string()))?,
            });
        }
        merged.ok_or_else(|| ClusterError::NoKubeconfig {
            looked: self
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// A client for one context, with the context's default namespace.
#[derive(Clone)]
pub struct ContextClient {
    /// The context's name (resolved from current-context when none was asked for).
    pub context: String,
    /// The context's namespace, else `default`.
    pub namespace: String,
    /// A cheap-to-clone client; every forward of the context shares it, never mutates it.
    pub client: kube::Client,
    /// Which credential plugin is used and where it was found, when the user entry has one.
    pub plugin: Option<String>,
    /// Unique per built client: tells a rebuilt client from the one it replaced.
    pub id: u64,
    /// The sessions to pods through this client, shared by everything that uses it.
    pub tunnels: Arc<crate::sessions::Tunnels>,
    /// What the user may do, as the API server answered, shared by the client's forwards.
    pub access: Arc<access::Checks>,
}

/// Numbers built clients.
static CLIENT_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for ContextClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextClient")
            .field("context", &self.context)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

type Slot = Arc<OnceCell<Result<ContextClient, ClusterError>>>;

/// The loaded kubeconfig and the clients built from it, replaced whole on change.
struct Generation {
    fingerprint: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
    kubeconfig: Result<Arc<Kubeconfig>, ClusterError>,
    slots: HashMap<String, Slot>,
    /// The last build error per context, for display.
    errors: HashMap<String, ClusterError>,
}

/// One client per kubeconfig context, built on first use outside any lock, cached, and
/// rebuilt when the kubeconfig files change.
pub struct ClientPool {
    /// Where the kubeconfig comes from; replaced by [`ClientPool::set_source`]. Held only
    /// to read or swap it.
    source: Mutex<KubeconfigSource>,
    /// Finds and pre-flights exec plugins; shared by every build.
    exec: Arc<ExecResolver>,
    /// Held only to read or swap the generation; never across `.await` or file I/O.
    current: Mutex<Arc<Mutex<Generation>>>,
}

impl ClientPool {
    /// A pool over `source`. Nothing is read until the first request.
    pub fn new(source: KubeconfigSource) -> Self {
        Self::with_exec(source, ExecOptions::default())
    }

    /// A pool over `source` that finds exec plugins as `exec` says.
    pub fn with_exec(source: KubeconfigSource, exec: ExecOptions) -> Self {
        Self {
            source: Mutex::new(source),
            exec: Arc::new(ExecResolver::new(exec)),
            current: Mutex::new(Arc::new(Mutex::new(Generation {
                fingerprint: Vec::new(),
                kubeconfig: Err(ClusterError::NoKubeconfig {
                    looked: String::new(),
                }),
                slots: HashMap::new(),
                errors: HashMap::new(),
            }))),
        }
    }

    /// The kubeconfig source.
    pub fn source(&self) -> KubeconfigSource {
        self.source.lock().clone()
    }

    /// Reads the kubeconfig from other files from now on (the app's list of files changed,
    /// or its demo cluster started). Clients already handed out keep working; the next
    /// request reads the new files. Returns whether the list changed.
    pub fn set_source(&self, source: KubeconfigSource) -> bool {
        let mut current = self.source.lock();
        if current.paths() == source.paths() {
            return false;
        }
        *current = source;
        true
    }

    /// Re-reads the kubeconfig when its files changed. Returns whether they did.
    pub fn refresh(&self) -> bool {
        // File I/O happens before any lock is taken.
        let source = self.source();
        let fingerprint = source.fingerprint();
        let current = self.current.lock().clone();
        let unchanged = current.lock().fingerprint == fingerprint;
        if unchanged {
            return false;
        }
        let kubeconfig = source.load().map(Arc::new);
        info!(files = ?source.paths(), ok = kubeconfig.is_ok(), "kubeconfig (re)loaded");
        let next = Arc::new(Mutex::new(Generation {
            fingerprint,
            kubeconfig,
            slots: HashMap::new(),
            errors: HashMap::new(),
        }));
        *self.current.lock() = next;
        true
    }

    /// The context names of the current kubeconfig, and its current-context.
    pub fn contexts(&self) -> Result<(Vec<String>, Option<String>), ClusterError> {
        self.refresh();
        let generation = self.current.lock().clone();
        let kubeconfig = generation.lock().kubeconfig.clone()?;
        Ok((
            kubeconfig.contexts.iter().map(|c| c.name.clone()).collect(),
            kubeconfig.current_context.clone(),
        ))
    }

    /// The client for `context` (or the current-context), building it on first use.
    pub async fn client(&self, context: Option<&str>) -> Result<ContextClient, ClusterError> {
        self.refresh();
        let generation = self.current.lock().clone();
        let (kubeconfig, name, slot) = {
            let mut g = generation.lock();
            let kubeconfig = g.kubeconfig.clone()?;
            let name = match context {
                Some(c) => c.to_string(),
                None => kubeconfig
                    .current_context
                    .clone()
                    .filter(|c| !c.is_empty())
                    .ok_or(ClusterError::NoCurrentContext)?,
            };
            let slot = g.slots.entry(name.clone()).or_default().clone();
            (kubeconfig, name, slot)
        };
        // Built outside every lock; concurrent callers for the same context share one build.
        let exec = self.exec.clone();
        let paths = self.source().paths().to_vec();
        let result = slot
            .get_or_init(|| build(kubeconfig, name.clone(), exec, paths))
            .await
            .clone();
        if let Err(e) = &result {
            // Only successes are cached: the next request builds again, so a context
            // fixed outside the kubeconfig (a login in a terminal, a network back up)
            // recovers on its own. The error stays visible in `context_errors`.
            let mut g = generation.lock();
            if g.slots.get(&name).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                g.slots.remove(&name);
            }
            g.errors.insert(name, e.clone());
        } else {
            generation.lock().errors.remove(&name);
        }
        result
    }

    /// Forgets `context`'s cached client if it is still the one numbered `id`, so the next
    /// request rebuilds it (after an authentication failure, say). Several forwards seeing
    /// the same 401 thus rebuild once, and none throws away another's fresh client.
    pub fn invalidate_client(&self, context: &str, id: u64) {
        let generation = self.current.lock().clone();
        let mut g = generation.lock();
        let current = g
            .slots
            .get(context)
            .and_then(|slot| slot.get())
            .and_then(|r| r.as_ref().ok())
            .map(|c| c.id);
        if current == Some(id) {
            g.slots.remove(context);
        }
    }

    /// Forgets `context`'s cached client or error, so the next request rebuilds it (after
    /// an authentication failure, say).
    pub fn invalidate(&self, context: &str) {
        let generation = self.current.lock().clone();
        generation.lock().slots.remove(context);
    }

    /// The clients built so far from the current kubeconfig.
    pub fn built(&self) -> Vec<ContextClient> {
        let generation = self.current.lock().clone();
        let g = generation.lock();
        g.slots
            .values()
            .filter_map(|slot| slot.get().and_then(|r| r.as_ref().ok()).cloned())
            .collect()
    }

    /// Contexts whose client failed to build, with their errors.
    pub fn context_errors(&self) -> Vec<(String, ClusterError)> {
        let generation = self.current.lock().clone();
        let g = generation.lock();
        let mut out: Vec<_> = g
            .errors
            .iter()
            .map(|(name, e)| (name.clone(), e.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The kubeconfig file that defines user `user` (the first one, as merging keeps it).
fn file_of_user(paths: &[PathBuf], user: &str) -> String {
    paths
        .iter()
        .find(|p| {
            Kubeconfig::read_from(p)
                .map(|k| k.auth_infos.iter().any(|a| a.name == user))
                .unwrap_or(false)
        })
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the kubeconfig".into())
}

async fn build(
    kubeconfig: Arc<Kubeconfig>,
    context: String,
    exec: Arc<ExecResolver>,
    paths: Vec<PathBuf>,
) -> Result<ContextClient, ClusterError> {
    let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == context) else {
        let mut known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        known.sort_unstable();
        return Err(ClusterError::UnknownContext {
            context,
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    };
    let namespace = named
        .context
        .as_ref()
        .and_then(|c| c.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let fail = |message: String| ClusterError::Client {
        context: context.clone(),
        message,
    };
    // A per-context copy: nothing here writes into a config another context shares.
    let mut own = (*kubeconfig).clone();
    let user = named
        .context
        .as_ref()
        .map(|c| c.user.clone())
        .unwrap_or_default();
    let mut plugin = None;
    if let Some(exec_cfg) = own
        .auth_infos
        .iter_mut()
        .find(|a| Some(&a.name) == user.as_ref())
        .and_then(|a| a.auth_info.as_mut())
        .and_then(|a| a.exec.as_mut())
    {
        let user = user.clone().unwrap_or_default();
        let command = exec_cfg.command.clone().unwrap_or_default();
        let found = exec.find(&command).await.map_err(|searched| {
            let hint = exec_cfg
                .install_hint
                .as_deref()
                .map(|h| format!(" ({})", h.trim()))
                .unwrap_or_default();
            fail(format!(
                "credential plugin `{command}` of user `{user}` in {} was not found; searched {}{hint}; install it or write its full path in the kubeconfig",
                file_of_user(&paths, &user),
                searched.join(", ")
            ))
        })?;
        info!(context = %context, plugin = %found.path.display(), via = found.via, "credential plugin found");
        exec_cfg.command = Some(found.path.display().to_string());
        // Ferry runs without a terminal: a plugin must never wait for input from one.
        exec_cfg.interactive_mode = Some(kube::config::ExecInteractiveMode::Never);
        exec.preflight(exec_cfg, &found.path, &context)
            .await
            .map_err(|m| {
                fail(format!(
                    "user `{user}` in {}: {m}",
                    file_of_user(&paths, &user)
                ))
            })?;
        plugin = Some(format!("{} (found on {})", found.path.display(), found.via));
    }
    let explicit_proxy = named
        .context
        .as_ref()
        .and_then(|c| own.clusters.iter().find(|n| n.name == c.cluster))
        .and_then(|n| n.cluster.as_ref())
        .and_then(|c| c.proxy_url.clone());
    let mut config = kube::Config::from_custom_kubeconfig(own, &options)
        .await
        .map_err(|e| fail(error_chain(&e)))?;
    config.proxy_url = proxy::choose(explicit_proxy.as_deref(), &config.cluster_url, |k| {
        std::env::var(k).ok()
    })
    .map_err(&fail)?;
    // Every request of this client, upgrades included, says it is Ferry.
    if let Ok(agent) = http::HeaderValue::from_str(&user_agent()) {
        config.headers.push((http::header::USER_AGENT, agent));
    }
    // Building the client may run the credential plugin, a blocking process: keep it off
    // the async worker threads.
    let client = tokio::task::spawn_blocking(move || kube::Client::try_from(config))
        .await
        .map_err(|e| fail(format!("building the client failed: {e}")))?
        .map_err(|e| fail(error_chain(&e)))?;
    debug!(context = %context, namespace = %namespace, "client built");
    Ok(ContextClient {
        context,
        namespace,
        tunnels: crate::sessions::Tunnels::new(client.clone()),
        access: access::Checks::new(user.filter(|u| !u.is_empty())),
        client,
        plugin,
        id: CLIENT_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

/// An error and its sources as one sentence, with credential plugin details removed: the
/// client library's message for a failing plugin includes its environment, which may hold
/// secrets, and must never reach a status line or a log.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let chain = raw_error_chain(e);
    if chain.contains("auth exec command") || chain.contains("KUBERNETES_EXEC_INFO") {
        return "the credential plugin failed (its output is not shown as it may hold secrets); run `kubectl get namespaces` with this context in a terminal to see why".into();
    }
    chain
}

fn raw_error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_ferry_its_version_and_platform() {
        let agent = user_agent();
        assert!(
            agent.starts_with(&format!("ferry/{} (", env!("CARGO_PKG_VERSION"))),
            "{agent}"
        );
        assert!(http::HeaderValue::from_str(&agent).is_ok(), "{agent}");
        assert_eq!(go_os("macos"), "darwin");
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_os("windows"), "windows");
    }

    #[test]
    fn kubeconfig_paths_follow_kubectl() {
        let home = Path::new("/home/u");
        let joined = std::env::join_paths(["/a/one", "/b/two"]).expect("joinable");
        let s = KubeconfigSource::from_env_value(Some(joined), Some(home));
        assert_eq!(
            s.paths(),
            [PathBuf::from("/a/one"), PathBuf::from("/b/two")]
        );
        let s = KubeconfigSource::from_env_value(None, Some(home));
        assert_eq!(s.paths(), [PathBuf::from("/home/u/.kube/config")]);
        let s = KubeconfigSource::from_env_value(Some(OsString::new()), Some(home));
        assert_eq!(s.paths(), [PathBuf::from("/home/u/.kube/config")]);
    }

    #[test]
    fn missing_kubeconfig_says_where_it_looked() {
        let s = KubeconfigSource::from_paths(vec![PathBuf::from("/nonexistent/ferry/kc")]);
        let err = s.load().expect_err("nothing to load");
        assert!(err.to_string().contains("/nonexistent/ferry/kc"), "{err}");
    }
}
