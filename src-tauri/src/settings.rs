//! The app's settings, kept in the store's `settings` object beside the forwards: how
//! Ferry runs (extra kubeconfig files, which the `ferry` CLI reads too; notifications; the
//! tray; the login entry). How the window looks is a preference of the app alone
//! (`prefs.rs`), kept in its own file. Every field has a default, so a store from an older
//! build (or a hand-edited one missing fields) still loads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Keys older builds kept in `settings` that are preferences now (`prefs.rs` takes them
/// over once); read past here.
pub const MOVED_TO_PREFS: [&str; 2] = ["theme", "group_by"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Default: off (the user opts in).
    pub start_at_login: bool,
    /// Desktop notifications when a forward goes down or recovers. Default: on.
    pub notifications: bool,
    /// Closing the window keeps Ferry in the tray. Default: on, as tray apps do.
    pub close_to_tray: bool,
    /// Extra kubeconfig files, read after `KUBECONFIG` (or `~/.kube/config`).
    pub kubeconfig_paths: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            start_at_login: false,
            notifications: true,
            close_to_tray: true,
            kubeconfig_paths: Vec::new(),
        }
    }
}

impl Settings {
    /// The settings in a store's `settings` value; absent or unreadable ones are the
    /// defaults (with a reason for the latter). Keys that moved to the preferences are
    /// passed over.
    pub fn from_store(value: &serde_json::Value) -> (Settings, Option<String>) {
        if value.is_null() {
            return (Settings::default(), None);
        }
        let mut value = value.clone();
        if let Some(map) = value.as_object_mut() {
            for key in MOVED_TO_PREFS {
                map.remove(key);
            }
        }
        match serde_json::from_value(value) {
            Ok(s) => (s, None),
            Err(e) => (
                Settings::default(),
                Some(format!(
                    "The saved settings could not be read ({e}); defaults are in use until you save new ones."
                )),
            ),
        }
    }

    /// Checks what serde cannot: kubeconfig paths must be absolute.
    pub fn validate(&self) -> Result<(), AppError> {
        for (i, p) in self.kubeconfig_paths.iter().enumerate() {
            if p.as_os_str().is_empty() || !p.is_absolute() {
                return Err(AppError::invalid(
                    format!("kubeconfig_paths[{i}]"),
                    format!(
                        "`{}` is not an absolute path; write the full path to a kubeconfig file",
                        p.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults_and_bad_ones_are_reported() {
        let (s, warn) = Settings::from_store(&serde_json::json!({"notifications": false}));
        assert!(!s.notifications && s.close_to_tray && !s.start_at_login);
        assert!(warn.is_none());
        let (s, warn) = Settings::from_store(&serde_json::json!({"close_to_tray": "purple"}));
        assert_eq!(s, Settings::default());
        assert!(warn.unwrap().contains("purple"));
        // An older build's preferences are the preferences' business now.
        let (s, warn) = Settings::from_store(
            &serde_json::json!({"theme": "dark", "group_by": "context", "notifications": false}),
        );
        assert!(!s.notifications);
        assert!(warn.is_none());
    }

    #[test]
    fn relative_kubeconfig_paths_are_refused_by_index() {
        let s = Settings {
            kubeconfig_paths: vec!["/a".into(), "b/config".into()],
            ..Settings::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("kubeconfig_paths[1]"));
    }
}
