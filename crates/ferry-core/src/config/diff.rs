//! Comparing two configs forward by forward, for reloading a changed config without
//! restarting the forwards that did not change.

use std::collections::BTreeMap;

use super::error::ConfigError;
use super::model::{Config, Forward};

/// How the forwards of a new config differ from those of an old one, keyed by forward name
/// (a forward's stable id). Every list is sorted by name, and every forward of either config
/// is in exactly one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Forwards only in the new config: start them (if enabled).
    pub added: Vec<String>,
    /// Forwards only in the old config: stop them.
    pub removed: Vec<String>,
    /// Forwards in both whose spec changed (any field but `enabled`, whether or not
    /// `enabled` changed too): restart them with the new spec.
    pub changed: Vec<String>,
    /// Forwards in both that are identical: leave them alone.
    pub unchanged: Vec<String>,
    /// Forwards in both whose only change is `enabled`: start or stop them.
    pub enabled_changed: Vec<String>,
}

impl ConfigDiff {
    /// Whether the two configs have the same forwards (the profiles may still differ).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.enabled_changed.is_empty()
    }
}

impl Config {
    /// Compares the forwards of `old` and `new` by name. See [`ConfigDiff`].
    pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
        let by_name = |config: &'_ Config| -> BTreeMap<String, Forward> {
            config
                .forwards
                .iter()
                .map(|f| (f.name.clone(), f.clone()))
                .collect()
        };
        let old = by_name(old);
        let new = by_name(new);

        let mut diff = ConfigDiff::default();
        for (name, before) in &old {
            match new.get(name) {
                None => diff.removed.push(name.clone()),
                Some(after) if before == after => diff.unchanged.push(name.clone()),
                Some(after) if before.spec_eq(after) => diff.enabled_changed.push(name.clone()),
                Some(_) => diff.changed.push(name.clone()),
            }
        }
        diff.added = new
            .keys()
            .filter(|name| !old.contains_key(*name))
            .cloned()
            .collect();
        diff
    }

    /// The forward named `name`, if any.
    pub fn forward(&self, name: &str) -> Option<&Forward> {
        self.forwards.iter().find(|f| f.name == name)
    }

    /// The forwards of the profile named `name`, in the order the profile lists them. Fails
    /// with [`ConfigError::UnknownProfile`], naming the available profiles, when there is no
    /// such profile. Names the profile lists that match no forward (possible only in a config
    /// that was not validated) are skipped.
    pub fn forwards_of_profile(&self, name: &str) -> Result<Vec<&Forward>, ConfigError> {
        let profile = self
            .profiles
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ConfigError::UnknownProfile {
                name: name.to_string(),
                available: self.profiles.iter().map(|p| p.name.clone()).collect(),
            })?;
        Ok(profile
            .forwards
            .iter()
            .filter_map(|f| self.forward(f))
            .collect())
    }
}
