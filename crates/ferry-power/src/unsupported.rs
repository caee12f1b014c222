//! Systems without power notifications here: Linux (logind, heard from `ferry-core`),
//! macOS and the rest.

use tokio::sync::mpsc;

use crate::{Clocks, PowerError};

/// Never made: [`register`] always fails here.
pub(crate) struct Registration(());

pub(crate) fn register(_tx: mpsc::UnboundedSender<()>) -> Result<Registration, PowerError> {
    Err(PowerError::Unsupported)
}

pub(crate) fn sleep_clocks() -> Option<Clocks> {
    None
}
