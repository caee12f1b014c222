//! The app's settings, kept in the store's `settings` object. Every field has a default,
//! so a store from an older build (or a hand-edited one missing fields) still loads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    #[default]
    Profile,
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Default: follow the system.
    pub theme: Theme,
    /// Default: off (the user opts in).
    pub start_at_login: bool,
    /// Desktop notifications when a forward goes down or recovers. Default: on.
    pub notifications: bool,
    /// Closing the window keeps Ferry in the tray. Default: on, as tray apps do.
    pub close_to_tray: bool,
    /// Extra kubeconfig files, read after `KUBECONFIG` (or `~/.kube/config`).
    pub kubeconfig_paths: Vec<PathBuf>,
    /// How the main view groups forwards.
    pub group_by: GroupBy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            theme: Theme::System,
            start_at_login: false,
            notifications: true,
            close_to_tray: true,
            kubeconfig_paths: Vec::new(),
            group_by: GroupBy::Profile,
        }
    }
}

impl Settings {
    /// The settings in a store's `settings` value; absent or unreadable ones are the
    /// defaults (with a reason for the latter).
    pub fn from_store(value: &serde_json::Value) -> (Settings, Option<String>) {
        if value.is_null() {
            return (Settings::default(), None);
        }
        match serde_json::from_value(value.clone()) {
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
        let (s, warn) = Settings::from_store(&serde_json::json!({"theme": "dark"}));
        assert_eq!(s.theme, Theme::Dark);
        assert!(s.notifications && s.close_to_tray && !s.start_at_login);
        assert!(warn.is_none());
        let (s, warn) = Settings::from_store(&serde_json::json!({"theme": "purple"}));
        assert_eq!(s, Settings::default());
        assert!(warn.unwrap().contains("purple"));
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
