//! What the monitor probes: a forward, seen through [`ProbeTarget`].
//!
//! The dependency goes one way: `forward` uses `health` (the [`Checker`] whose verdict it
//! shows, the states it composes into a status, and this trait, which a worker
//! implements); `health` never names a forward's types.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use super::Checker;
use crate::cluster::Endpoint;
use crate::sessions::Tunnels;
use crate::tunnel::TunnelStream;

/// What the health monitor needs of a forward: where to probe, and where to report.
pub(crate) trait ProbeTarget: Send + Sync {
    /// The bound local address.
    fn local(&self) -> Option<SocketAddr>;

    /// The pod a connection would use now (the sticky pod, else the first ready one),
    /// with the sessions and the namespace to reach it.
    fn endpoint(&self) -> Option<(Arc<Tunnels>, String, Endpoint)>;

    /// The kubeconfig context the forward resolved with.
    fn context(&self) -> Option<String>;

    /// The target object's name (the default `Host` of HTTP checks).
    fn target_name(&self) -> String;

    /// Shows the checker's verdict. `checked` says whether health decides between active
    /// and degraded (false for `kind: none`).
    fn publish(&self, checker: &Checker, checked: bool);

    /// How long the forward has carried no connection (zero while one is open).
    fn idle_for(&self) -> Duration;

    /// Asks the resolver to look again.
    fn nudge(&self);

    /// Why there is no pod to reach now, for a dial that finds none.
    fn no_pod(&self) -> String;
}

/// A cheap, cloneable handle on a forward for the monitor and for [`crate::Engine::dial`].
/// It derefs to the [`ProbeTarget`].
#[derive(Clone)]
pub(crate) struct ProbeHandle(Arc<dyn ProbeTarget>);

impl ProbeHandle {
    pub(crate) fn new(target: impl ProbeTarget + 'static) -> Self {
        Self(Arc::new(target))
    }

    /// Opens a tunnel to the pod the next connection would use.
    pub(crate) async fn dial(&self) -> Result<TunnelStream, String> {
        let Some((tunnels, namespace, ep)) = self.endpoint() else {
            return Err(self.no_pod());
        };
        tunnels
            .open(&namespace, &ep.pod, ep.port)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Deref for ProbeHandle {
    type Target = dyn ProbeTarget;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
