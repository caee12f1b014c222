//! The edits the CLI and the app make to a config, with one meaning each: put (add or
//! replace, renaming in profiles), remove, switch on or off, add to a profile, remove a
//! profile. Each refusal says what kind of problem it is and which field, so no caller
//! reads its words. The whole config is validated afterwards by whoever writes it.

use super::error::ProblemKind;
use super::model::{Config, Forward, Profile};

/// Why an edit was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EditError {
    pub kind: ProblemKind,
    /// The field of the edited forward or profile at fault (`name`), if one is.
    pub field: Option<String>,
    pub message: String,
}

impl EditError {
    fn no_forward(name: &str) -> Self {
        EditError {
            kind: ProblemKind::NotFound,
            field: None,
            message: format!("there is no forward named {name:?}"),
        }
    }

    fn no_profile(name: &str) -> Self {
        EditError {
            kind: ProblemKind::NotFound,
            field: None,
            message: format!("there is no profile named {name:?}"),
        }
    }
}

impl Config {
    /// Adds `forward` (`original` is `None`) or puts it in place of the forward named
    /// `original`, which may rename it: the profiles follow the new name.
    pub fn put_forward(
        &mut self,
        original: Option<&str>,
        forward: Forward,
    ) -> Result<(), EditError> {
        if self
            .forwards
            .iter()
            .any(|f| f.name == forward.name && Some(f.name.as_str()) != original)
        {
            return Err(EditError {
                kind: ProblemKind::Conflict,
                field: Some("name".into()),
                message: format!("another forward is already named {:?}", forward.name),
            });
        }
        let Some(original) = original else {
            self.forwards.push(forward);
            return Ok(());
        };
        let slot = self
            .forwards
            .iter_mut()
            .find(|f| f.name == original)
            .ok_or_else(|| EditError::no_forward(original))?;
        let new_name = forward.name.clone();
        *slot = forward;
        if new_name != original {
            for name in self.profiles.iter_mut().flat_map(|p| p.forwards.iter_mut()) {
                if name == original {
                    name.clone_from(&new_name);
                }
            }
        }
        Ok(())
    }

    /// Removes the forward named `name`, and it from every profile.
    pub fn remove_forward(&mut self, name: &str) -> Result<Forward, EditError> {
        let i = self
            .forwards
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| EditError::no_forward(name))?;
        for p in &mut self.profiles {
            p.forwards.retain(|f| f != name);
        }
        Ok(self.forwards.remove(i))
    }

    /// Switches the forward named `name` on or off.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> Result<(), EditError> {
        let f = self
            .forwards
            .iter_mut()
            .find(|f| f.name == name)
            .ok_or_else(|| EditError::no_forward(name))?;
        f.enabled = enabled;
        Ok(())
    }

    /// Adds `forwards` to the profile named `profile`, creating it when there is none; a
    /// forward it lists already stays where it is. (Adding never replaces the list.)
    pub fn add_to_profile(&mut self, profile: &str, forwards: &[String]) {
        let p = match self.profiles.iter().position(|p| p.name == profile) {
            Some(i) => &mut self.profiles[i],
            None => {
                self.profiles.push(Profile {
                    name: profile.to_string(),
                    forwards: Vec::new(),
                });
                let last = self.profiles.len() - 1;
                &mut self.profiles[last]
            }
        };
        for f in forwards {
            if !p.forwards.contains(f) {
                p.forwards.push(f.clone());
            }
        }
    }

    /// Removes the profile named `name` (its forwards stay).
    pub fn remove_profile(&mut self, name: &str) -> Result<Profile, EditError> {
        let i = self
            .profiles
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| EditError::no_profile(name))?;
        Ok(self.profiles.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PortRef, Target};

    fn forward(name: &str) -> Forward {
        Forward::new(name, Target::Service("echo".into()), PortRef::Number(80), 0)
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.put_forward(None, forward("a")).expect("add a");
        c.put_forward(None, forward("b")).expect("add b");
        c.add_to_profile("dev", &["a".into(), "b".into()]);
        c
    }

    #[test]
    fn put_adds_replaces_and_renames_in_profiles() {
        let mut c = config();
        let e = c.put_forward(None, forward("a")).expect_err("taken");
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ProblemKind::Conflict, Some("name"))
        );
        let e = c
            .put_forward(Some("b"), forward("a"))
            .expect_err("taken by another");
        assert_eq!(e.kind, ProblemKind::Conflict);
        c.put_forward(Some("a"), forward("z")).expect("rename");
        assert_eq!(c.profiles[0].forwards, ["z", "b"]);
        let e = c
            .put_forward(Some("nope"), forward("y"))
            .expect_err("no such");
        assert_eq!(e.kind, ProblemKind::NotFound);
        assert_eq!(c.forwards.len(), 2, "a refused edit changes nothing");
    }

    #[test]
    fn remove_and_switch_name_what_is_missing() {
        let mut c = config();
        c.set_enabled("b", false).expect("switch off");
        assert!(!c.forwards[1].enabled);
        assert_eq!(c.remove_forward("a").expect("remove").name, "a");
        assert_eq!(c.profiles[0].forwards, ["b"]);
        for e in [
            c.remove_forward("a").expect_err("gone"),
            c.set_enabled("a", true).expect_err("gone"),
            c.remove_profile("nope").expect_err("no profile"),
        ] {
            assert_eq!(e.kind, ProblemKind::NotFound, "{e}");
        }
    }

    #[test]
    fn adding_to_a_profile_merges() {
        let mut c = config();
        c.add_to_profile("dev", &["b".into(), "c".into()]);
        assert_eq!(c.profiles[0].forwards, ["a", "b", "c"]);
        c.add_to_profile("new", &["a".into()]);
        assert_eq!(c.profiles[1].forwards, ["a"]);
        assert_eq!(c.remove_profile("new").expect("remove").name, "new");
        assert_eq!(c.profiles.len(), 1);
    }
}
