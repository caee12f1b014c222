//! The resolver loop: keeps a worker's targets (client, namespace, ready endpoints) and
//! its resolution current, woken by its namespace's change feed, by a nudge, or by time.

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tracing::{debug, info};

use super::{Targets, WatchRequest, Worker};
use crate::backoff::Backoff;
use crate::cluster::{ResolveError, access, resolve};
use crate::events::ForwardState;

/// How often a resolved forward re-checks its target even without a watch event.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// A pod target that resolved this recently and is now not found is taken as being
/// replaced (a StatefulSet's pod comes back under its name): `reconnecting`, not `error`.
const POD_REPLACED_WITHIN: Duration = Duration::from_secs(60);

/// How long a forward that needs the user waits before trying again on its own.
const RETRY_ERROR_EVERY: Duration = Duration::from_secs(15);

impl Worker {
    /// Keeps `targets` current: client, namespace and ready endpoints.
    pub(super) async fn resolver_loop(&self) {
        let mut backoff = Backoff::forward();
        let mut changes: Option<(String, String, watch::Receiver<u64>)> = None;
        let mut last_ok: Option<tokio::time::Instant> = None;
        loop {
            let recently = last_ok.is_some_and(|t| t.elapsed() < POD_REPLACED_WITHIN);
            let resolved = tokio::select! {
                () = self.token.cancelled() => return,
                r = self.resolve_once(&mut changes, recently) => r,
            };
            let wait = match resolved {
                Ok(()) => {
                    backoff.reset();
                    last_ok = Some(tokio::time::Instant::now());
                    RESOLVE_EVERY
                }
                Err(retryable) if retryable => backoff.next_delay(),
                Err(_) => RETRY_ERROR_EVERY,
            };
            let change = async {
                match changes.as_mut() {
                    Some((_, _, rx)) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = change => {
                    // Coalesce a burst of pod events into one resolution.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                () = self.nudge.notified() => {}
            }
        }
    }

    /// One resolution. `Err(true)` means retry soon, `Err(false)` means the user must act.
    async fn resolve_once(
        &self,
        changes: &mut Option<(String, String, watch::Receiver<u64>)>,
        recently_resolved: bool,
    ) -> Result<(), bool> {
        let cc = match self.pool.client(self.spec.context.as_deref()).await {
            Ok(cc) => cc,
            Err(e) => {
                self.targets.send_modify(|t| t.endpoints.clear());
                self.shared.set_resolution(|r| {
                    r.state = ForwardState::Error;
                    r.error = Some(e.to_string());
                    r.pod = None;
                });
                return Err(false);
            }
        };
        let namespace = self.spec.namespace.clone().unwrap_or(cc.namespace.clone());
        let key = format!("{}#{}", cc.context, cc.id);
        let stale = changes
            .as_ref()
            .is_none_or(|(c, n, _)| *c != key || *n != namespace);
        if stale {
            *changes = self
                .subscribe(&cc.context, cc.id, &namespace, &cc.client)
                .await
                .map(|(_, n, rx)| (key, n, rx));
        }
        self.shared.set_resolution(|r| {
            r.context = Some(cc.context.clone());
            r.namespace = Some(namespace.clone());
            r.credential_plugin = cc.plugin.clone();
        });
        let (spec, ns) = (&*self.spec, namespace.as_str());
        let look = move |client: kube::Client| async move {
            resolve(&client, ns, &spec.target, &spec.port, spec.pod_port).await
        };
        // Whether the user may do what the forward needs is asked beside the first look,
        // so it costs no time; an allowing answer is reused by the client's forwards.
        let needs = access::needed(&spec.target);
        let (mut result, access) = tokio::join!(
            look(cc.client.clone()),
            cc.access.check(&cc.client, ns, &needs)
        );
        if let Some(sentence) = access.sentence() {
            self.targets.send_modify(|t| {
                t.tunnels = Some(cc.tunnels.clone());
                t.namespace = namespace.clone();
                t.endpoints.clear();
            });
            self.sticky.clear();
            self.shared.set_resolution(|r| {
                r.state = ForwardState::Error;
                r.error = Some(format!("context `{}`: {sentence}", cc.context));
                r.pod = None;
            });
            return Err(false);
        }
        let mut cc = cc;
        if matches!(result, Err(ResolveError::Unauthorized { .. })) {
            // Credentials expired or were revoked: rebuild the context's client (which
            // runs its credential plugin again) and try once more.
            info!(context = %cc.context, "401 from the API server; refreshing credentials");
            self.pool.invalidate_client(&cc.context, cc.id);
            match self.pool.client(self.spec.context.as_deref()).await {
                Ok(fresh) => {
                    cc = fresh;
                    result = look(cc.client.clone()).await;
                }
                Err(e) => {
                    self.shared.set_resolution(|r| {
                        r.state = ForwardState::Error;
                        r.error = Some(e.to_string());
                    });
                    return Err(false);
                }
            }
        }
        match result {
            Ok(endpoints) => {
                let pod = self.sticky.pick(&endpoints).map(|e| e.pod);
                self.targets.send_replace(Targets {
                    tunnels: Some(cc.tunnels.clone()),
                    namespace,
                    endpoints,
                });
                self.shared.set_resolution(|r| {
                    r.state = ForwardState::Active;
                    r.error = None;
                    r.pod = pod;
                });
                Ok(())
            }
            Err(e) => {
                // A pod that was there a moment ago and is gone is being replaced (a
                // StatefulSet's pod keeps its name): wait for it rather than ask the user.
                let replaced = matches!(e, ResolveError::NotFound { .. })
                    && matches!(spec.target, crate::config::Target::Pod(_))
                    && recently_resolved;
                let retryable = e.is_retryable() || replaced;
                // On API trouble keep the last endpoints: tunnels may still work.
                if !matches!(e, ResolveError::Api { .. }) {
                    self.targets.send_modify(|t| {
                        t.tunnels = Some(cc.tunnels.clone());
                        t.namespace = namespace.clone();
                        t.endpoints.clear();
                    });
                    self.sticky.clear();
                }
                let state = if retryable {
                    ForwardState::Reconnecting
                } else {
                    ForwardState::Error
                };
                debug!(error = %e, "resolution failed");
                let message = match &e {
                    ResolveError::Api { .. }
                    | ResolveError::Unauthorized { .. }
                    | ResolveError::Forbidden { .. } => format!("context `{}`: {e}", cc.context),
                    _ => e.to_string(),
                };
                self.shared.set_resolution(|r| {
                    r.state = state;
                    r.error = Some(message);
                    if !matches!(e, ResolveError::Api { .. }) {
                        r.pod = None;
                    }
                });
                Err(retryable)
            }
        }
    }

    async fn subscribe(
        &self,
        context: &str,
        client_id: u64,
        namespace: &str,
        client: &kube::Client,
    ) -> Option<(String, String, watch::Receiver<u64>)> {
        let (reply, rx) = oneshot::channel();
        let req = WatchRequest {
            client_id,
            context: context.to_string(),
            namespace: namespace.to_string(),
            client: client.clone(),
            reply,
        };
        tokio::select! {
            () = self.token.cancelled() => None,
            got = async {
                self.watches.send(req).await.ok()?;
                rx.await.ok()
            } => got.map(|rx| (context.to_string(), namespace.to_string(), rx)),
        }
    }
}
