//! Signed updates through `tauri-plugin-updater`.
//!
//! Ferry looks for a newer release at start (after [`FIRST_CHECK_AFTER`]) and then every
//! [`CHECK_EVERY`] while the `check_updates` preference is on, and offers what it finds
//! ("Ferry X.Y is available", with its notes) on [`UPDATE_EVENT`]. Nothing is downloaded
//! until the user asks: [`Updates::install`] downloads the artifact, checks its signature
//! against the public key in `tauri.conf.json` (`plugins.updater.pubkey`; the private key
//! lives only in the release workflow's secrets) and installs it, and refuses while forwards
//! are up unless the user agreed to cut them.
//!
//! - Only a newer version is offered (the plugin's comparison: older or equal is nothing).
//! - An artifact whose signature does not match Ferry's key is refused with a clear error.
//! - A server that cannot be reached is no error: the check is logged at `debug!` and tried
//!   again after [`RETRY_AFTER`].

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime, Url};
use tauri_plugin_updater::{Error as UpdaterError, Update, UpdaterExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{AppError, ErrorCode};

/// The event that tells the window a newer release is available (an [`UpdateInfo`]).
pub const UPDATE_EVENT: &str = "ferry://update";

/// The first check after start: late enough not to slow the start down.
pub const FIRST_CHECK_AFTER: Duration = Duration::from_secs(10);
/// Checks while the preference is on: daily, as the "Ship it" issue asks.
pub const CHECK_EVERY: Duration = Duration::from_secs(24 * 60 * 60);
/// The next try after the server could not be reached (offline, a laptop waking up).
pub const RETRY_AFTER: Duration = Duration::from_secs(60 * 60);
/// How long one request to the update server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A newer release, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct UpdateInfo {
    /// The release's version, `X.Y.Z`.
    pub version: String,
    /// The running version.
    pub current_version: String,
    /// The release notes, when the release has any.
    pub notes: Option<String>,
    /// When it was published (RFC 3339), when the release says.
    pub date: Option<String>,
}

impl UpdateInfo {
    fn of(update: &Update) -> UpdateInfo {
        UpdateInfo {
            version: update.version.clone(),
            current_version: update.current_version.clone(),
            notes: update.body.clone().filter(|n| !n.trim().is_empty()),
            date: update.date.and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(tag = "outcome", content = "update", rename_all = "snake_case")]
pub enum Checked {
    /// A newer release.
    Offered(UpdateInfo),
    /// This is the newest (the server offers the same or an older version).
    Current,
    /// The server could not be reached or answered with no release: tried again later.
    Unreachable,
}

impl Checked {
    /// When to check next after this.
    pub fn next_check(&self) -> Duration {
        match self {
            Checked::Unreachable => RETRY_AFTER,
            Checked::Offered(_) | Checked::Current => CHECK_EVERY,
        }
    }
}

/// The updater's state in the app: the release on offer and the scheduled checks.
#[derive(Default)]
pub struct Updates {
    /// Where to look; `None`: the endpoints in `tauri.conf.json`. Tests point it at a
    /// server on loopback.
    endpoints: Option<Vec<Url>>,
    /// The release last offered, kept for [`Updates::install`]. A short lock, never held
    /// across `.await`.
    offered: Mutex<Option<Update>>,
    /// The scheduled checks' task; cancelled by [`Updates::stop`] or when dropped.
    schedule: Mutex<Option<Scheduled>>,
}

/// The scheduled checks' task: cancelled on drop.
struct Scheduled {
    cancel: CancellationToken,
    _task: tauri::async_runtime::JoinHandle<()>,
}

impl Drop for Scheduled {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Updates {
    /// Updates from the endpoints in `tauri.conf.json`.
    pub fn new() -> Updates {
        Updates::default()
    }

    /// Updates from `endpoints` instead (plain `http` is allowed only when the config
    /// allows it: `dangerousInsecureTransportProtocol`).
    pub fn with_endpoints(endpoints: Vec<Url>) -> Updates {
        Updates {
            endpoints: Some(endpoints),
            ..Updates::default()
        }
    }

    /// The release on offer, from the last check (no request).
    pub fn offered(&self) -> Option<UpdateInfo> {
        self.offered.lock().as_ref().map(UpdateInfo::of)
    }

    /// Asks the update server for a newer release. A server that cannot be reached is
    /// [`Checked::Unreachable`], not an error; errors are what the user should hear of (a
    /// release list that cannot be read, an endpoint that is not allowed).
    pub async fn check<R: Runtime>(&self, app: &AppHandle<R>) -> Result<Checked, AppError> {
        let mut builder = app.updater_builder().timeout(REQUEST_TIMEOUT);
        if let Some(endpoints) = &self.endpoints {
            builder = builder
                .endpoints(endpoints.clone())
                .map_err(|e| failed("Ferry's update server is not usable", &e))?;
        }
        let updater = builder
            .build()
            .map_err(|e| failed("Ferry cannot look for updates here", &e))?;
        match updater.check().await {
            Ok(Some(update)) => {
                let info = UpdateInfo::of(&update);
                tracing::info!(version = %info.version, "a newer Ferry is available");
                *self.offered.lock() = Some(update);
                Ok(Checked::Offered(info))
            }
            Ok(None) => {
                *self.offered.lock() = None;
                Ok(Checked::Current)
            }
            Err(e) if unreachable(&e) => {
                tracing::debug!(error = %e, "the update server could not be reached; trying again later");
                Ok(Checked::Unreachable)
            }
            Err(e) => Err(failed("Ferry could not look for updates", &e)),
        }
    }

    /// Downloads the release on offer, checks its signature and installs it. `active`: the
    /// forwards that are up now, which the restart would cut; refused unless
    /// `confirm_cut`. The caller restarts the app after.
    pub async fn install(&self, active: &[String], confirm_cut: bool) -> Result<(), AppError> {
        let Some(update) = self.offered.lock().clone() else {
            return Err(AppError::not_found(
                "There is no update to install: check for updates first.",
            ));
        };
        if !active.is_empty() && !confirm_cut {
            return Err(AppError {
                code: ErrorCode::Conflict,
                message: format!(
                    "Installing Ferry {} restarts it, which cuts {} forward{} for a moment ({}). Confirm to go on.",
                    update.version,
                    active.len(),
                    if active.len() == 1 { "" } else { "s" },
                    active.join(", "),
                ),
                field: Some("confirm_cut".into()),
            });
        }
        let bytes = Self::download(&update).await?;
        update
            .install(bytes)
            .map_err(|e| install_error(&update.version, &e))?;
        tracing::info!(version = %update.version, "update installed; restarting");
        Ok(())
    }

    /// Downloads the release on offer and checks its signature against Ferry's key, without
    /// installing it: the artifact's bytes, or why they are refused.
    pub async fn download_offered(&self) -> Result<Vec<u8>, AppError> {
        let Some(update) = self.offered.lock().clone() else {
            return Err(AppError::not_found(
                "There is no update to download: check for updates first.",
            ));
        };
        Self::download(&update).await
    }

    async fn download(update: &Update) -> Result<Vec<u8>, AppError> {
        update
            .download(|_, _| {}, || {})
            .await
            .map_err(|e| install_error(&update.version, &e))
    }

    /// Checks now (after `first`) and then daily, offering what it finds on
    /// [`UPDATE_EVENT`], while `enabled()` says so. Replaces any earlier schedule.
    pub fn schedule<R: Runtime>(
        self: &Arc<Self>,
        app: AppHandle<R>,
        first: Duration,
        enabled: impl Fn() -> bool + Send + 'static,
    ) {
        let cancel = CancellationToken::new();
        let weak = Arc::downgrade(self);
        let token = cancel.clone();
        let task = tauri::async_runtime::spawn(
            async move {
                let mut wait = first;
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    let Some(updates) = weak.upgrade() else {
                        return;
                    };
                    if !enabled() {
                        wait = CHECK_EVERY;
                        continue;
                    }
                    let checked = tokio::select! {
                        () = token.cancelled() => return,
                        checked = updates.check(&app) => checked,
                    };
                    wait = match checked {
                        Ok(checked) => {
                            if let Checked::Offered(info) = &checked {
                                let _ = app.emit(UPDATE_EVENT, info);
                            }
                            checked.next_check()
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the update check failed");
                            CHECK_EVERY
                        }
                    };
                }
            }
            .instrument(tracing::debug_span!("update.schedule")),
        );
        *self.schedule.lock() = Some(Scheduled {
            cancel,
            _task: task,
        });
    }

    /// Ends the scheduled checks.
    pub fn stop(&self) {
        self.schedule.lock().take();
    }
}

/// Whether `e` means the server could not be reached or had no release to give: the
/// network, a timeout, or an answer other than success.
fn unreachable(e: &UpdaterError) -> bool {
    matches!(
        e,
        UpdaterError::Reqwest(_) | UpdaterError::Network(_) | UpdaterError::ReleaseNotFound
    )
}

/// Whether `e` is a signature that does not match Ferry's key (or no signature at all).
fn bad_signature(e: &UpdaterError) -> bool {
    matches!(
        e,
        UpdaterError::Minisign(_)
            | UpdaterError::Base64(_)
            | UpdaterError::SignatureUtf8(_)
            | UpdaterError::SignedVersionMismatch { .. }
    )
}

fn install_error(version: &str, e: &UpdaterError) -> AppError {
    if bad_signature(e) {
        tracing::warn!(version, error = %e, "update refused: bad signature");
        AppError::new(
            ErrorCode::Invalid,
            format!(
                "The update to Ferry {version} was not installed: its signature does not match Ferry's key ({e})."
            ),
        )
    } else if unreachable(e) {
        AppError::new(
            ErrorCode::Engine,
            format!(
                "The update to Ferry {version} could not be downloaded ({e}); nothing changed. Try again later."
            ),
        )
    } else {
        failed(
            &format!("The update to Ferry {version} was not installed"),
            e,
        )
    }
}

fn failed(what: &str, e: &UpdaterError) -> AppError {
    AppError::new(ErrorCode::Engine, format!("{what}: {e}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_is_tried_again_sooner() {
        assert_eq!(Checked::Unreachable.next_check(), RETRY_AFTER);
        assert_eq!(Checked::Current.next_check(), CHECK_EVERY);
        assert!(RETRY_AFTER < CHECK_EVERY);
    }

    #[test]
    fn errors_are_sorted() {
        assert!(unreachable(&UpdaterError::ReleaseNotFound));
        assert!(unreachable(&UpdaterError::Network("503".into())));
        assert!(!unreachable(&UpdaterError::EmptyEndpoints));
        assert!(bad_signature(&UpdaterError::SignatureUtf8("x".into())));
        let e = install_error("9.9.9", &UpdaterError::SignatureUtf8("x".into()));
        assert!(
            e.message.contains("signature does not match Ferry's key"),
            "{e}"
        );
    }
}
