//! The wall clock, read in one place: timestamps shown to people (events, health history,
//! the store's notes). Every timer in the engine runs on Tokio's clock instead.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)] // the one wall-clock reading: timestamps to show
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
