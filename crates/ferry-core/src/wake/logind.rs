//! A wake as Linux says it: logind's `PrepareForSleep(start)` signal on the system bus,
//! `true` as the machine goes to sleep and `false` as it resumes. This comes at once,
//! where the clocks only notice at their next tick.
//!
//! No system bus (containers, some minimal systems) or no logind on it: nothing is heard
//! and the clocks go on noticing wakes alone.

use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info};
use zbus::Connection;
use zbus::proxy::SignalStream;

use super::Trigger;

/// logind's well-known name on the system bus.
pub const SERVICE: &str = "org.freedesktop.login1";
/// The object that says `PrepareForSleep`.
pub const PATH: &str = "/org/freedesktop/login1";
/// The interface `PrepareForSleep` belongs to.
pub const INTERFACE: &str = "org.freedesktop.login1.Manager";
/// The signal, with one boolean: `true` before sleeping, `false` after waking.
pub const SIGNAL: &str = "PrepareForSleep";

/// Why logind cannot be listened to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogindError {
    /// No system bus (its socket is missing or refuses us).
    #[error("could not connect to the system bus: {0}")]
    Connect(#[source] zbus::Error),
    /// The bus refused the subscription.
    #[error("could not subscribe to logind's {SIGNAL}: {0}")]
    Subscribe(#[source] zbus::Error),
}

/// A subscription to logind's `PrepareForSleep`. Signals sent once [`Logind::subscribe`]
/// returned are heard.
pub struct Logind {
    /// The signals, from whichever connection owns logind's name (it may change hands:
    /// a restarted logind is followed).
    signals: SignalStream<'static>,
}

impl std::fmt::Debug for Logind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logind").finish_non_exhaustive()
    }
}

impl Logind {
    /// Subscribes on the system bus.
    pub async fn system() -> Result<Self, LogindError> {
        let conn = Connection::system().await.map_err(LogindError::Connect)?;
        Self::subscribe(&conn).await
    }

    /// Subscribes on the bus `conn` is connected to (tests use a bus of their own).
    pub async fn subscribe(conn: &Connection) -> Result<Self, LogindError> {
        let proxy = zbus::Proxy::new(conn, SERVICE, PATH, INTERFACE)
            .await
            .map_err(LogindError::Subscribe)?;
        let signals = proxy
            .receive_signal(SIGNAL)
            .await
            .map_err(LogindError::Subscribe)?;
        Ok(Logind { signals })
    }

    /// Says [`Trigger::Woke`] each time logind says the machine resumed, until the bus
    /// goes away or nobody listens to `tx`.
    pub async fn run(mut self, tx: mpsc::Sender<Trigger>) {
        while let Some(message) = self.signals.next().await {
            match message.body().deserialize::<bool>() {
                Ok(true) => info!("the machine is going to sleep (logind)"),
                Ok(false) => {
                    info!("the machine woke from sleep (logind)");
                    if tx.send(Trigger::Woke).await.is_err() {
                        return;
                    }
                }
                Err(e) => debug!(error = %e, "a {SIGNAL} signal without its flag"),
            }
        }
        debug!("the system bus went away; the clocks still notice wakes");
    }
}

/// Listens to logind on the system bus, if there is one.
pub(super) async fn watch(tx: mpsc::Sender<Trigger>) {
    match Logind::system().await {
        Ok(logind) => {
            debug!("listening to logind for sleep and wake");
            logind.run(tx).await;
        }
        Err(e) => debug!(error = %e, "logind is not heard; the clocks notice wakes"),
    }
}
