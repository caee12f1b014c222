//! A wake as the system's power notifications say it, through `ferry-power` (which may
//! use `unsafe`; this crate may not). On Windows the power manager calls back as the
//! machine resumes, at once, where the clocks notice at their next tick. Elsewhere
//! `ferry-power` has nothing to say and this part ends at once: Linux has logind
//! ([`super::logind`]), macOS the clocks.

use ferry_power::PowerError;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::Trigger;

/// Says [`Trigger::Woke`] each time the system says the machine resumed, until nobody
/// listens to `tx`.
pub(super) async fn watch(tx: mpsc::Sender<Trigger>) {
    let mut wakes = match ferry_power::subscribe() {
        Ok(wakes) => wakes,
        Err(PowerError::Unsupported) => return,
        Err(e) => {
            debug!(error = %e, "the power manager is not heard; the clocks notice wakes");
            return;
        }
    };
    debug!("listening to the power manager for sleep and wake");
    while wakes.next().await.is_some() {
        info!("the machine woke from sleep (power manager)");
        if tx.send(Trigger::Woke).await.is_err() {
            return;
        }
    }
}
