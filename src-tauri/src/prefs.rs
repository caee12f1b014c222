//! The app's own preferences: how the window looks and where it was. The CLI never needs
//! them, so they are not in the store it shares with the app (`settings.rs` keeps what the
//! engine and the CLI read there): they live in `prefs.json` in the app's config directory,
//! a flat JSON object of one key per preference (the layout `tauri-plugin-store` writes),
//! written atomically by the core alone.
//!
//! - `theme`, `group_by` and `view` (the list's sort, state filter and favourites-only
//!   switch): what the window shows, changed through `save_prefs`;
//! - `favourites`: the starred forwards, by name, in the order they were starred;
//! - `dismissed_banners`: banners the user closed, not shown again;
//! - `window`: the window's last size and position;
//! - `check_updates`: whether Ferry looks for a newer release when its window opens and daily
//!   (`update.rs`), on unless turned off.
//!
//! Every key is read on its own: one that cannot be read takes its default and the others
//! are kept. Older builds kept `theme` and `group_by` in the store's `settings`; the first
//! start of this build takes them from there ([`PrefsDoc::migrate`]).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::AppError;

/// The file in the app's config directory.
pub const PREFS_FILE: &str = "prefs.json";

/// Dismissed banners remembered; the oldest are forgotten first.
const DISMISSED_KEPT: usize = 16;

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

/// The list's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// The config's order.
    #[default]
    Saved,
    Name,
    State,
    Port,
}

/// Which forwards the list shows, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    #[default]
    All,
    /// Error, degraded or reconnecting.
    Problems,
    Active,
    Starting,
    Degraded,
    Reconnecting,
    Error,
    Disabled,
}

/// How the list was last shown (the text filter is not kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct View {
    pub sort: SortKey,
    pub state: StateFilter,
    /// Only starred forwards.
    pub favourites_only: bool,
}

/// The preferences the window shows and sets (`save_prefs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct Prefs {
    /// Default: follow the system.
    pub theme: Theme,
    /// How the main view groups forwards.
    pub group_by: GroupBy,
    /// The list's last sort and filters.
    pub view: View,
    /// Look for a newer release when the window opens and once a day while it is open.
    /// Default: on.
    pub check_updates: bool,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            theme: Theme::default(),
            group_by: GroupBy::default(),
            view: View::default(),
            check_updates: true,
        }
    }
}

/// The window's last size and position, in logical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowGeometry {
    /// The outer position's left edge.
    pub x: f64,
    /// The outer position's top edge.
    pub y: f64,
    /// The inner (content) size.
    pub width: f64,
    pub height: f64,
    /// Maximized: the size and position are the ones it had before.
    #[serde(default)]
    pub maximized: bool,
}

/// A monitor's area, in logical pixels: left, top, width, height.
pub type Area = (f64, f64, f64, f64);

impl WindowGeometry {
    /// The geometry to keep after the window reported `now`: a maximized window keeps the
    /// size and position it had before, so that un-maximizing after a restart goes back
    /// there.
    pub fn after(previous: Option<WindowGeometry>, now: WindowGeometry) -> WindowGeometry {
        match previous {
            Some(before) if now.maximized => WindowGeometry {
                maximized: true,
                ..before
            },
            _ => now,
        }
    }

    /// Whether enough of the window's top edge (where it is dragged from) lies on one of
    /// the monitors for the user to reach it: a monitor unplugged since, or a smaller
    /// screen, would put it out of sight.
    pub fn reachable_on(&self, monitors: &[Area]) -> bool {
        // A strip this size at the top-left of the title bar must be on one monitor.
        const GRIP: (f64, f64) = (64.0, 32.0);
        if !(self.x.is_finite() && self.y.is_finite()) {
            return false;
        }
        monitors.iter().any(|&(left, top, width, height)| {
            let x0 = self.x.max(left);
            let x1 = (self.x + self.width.min(GRIP.0 * 2.0)).min(left + width);
            let y0 = self.y.max(top);
            let y1 = (self.y + GRIP.1).min(top + height);
            x1 - x0 >= GRIP.0 && y1 - y0 >= GRIP.1 / 2.0
        })
    }

    /// The size to open with, no smaller than `min` and finite.
    pub fn size_at_least(&self, min: (f64, f64)) -> (f64, f64) {
        let fit = |v: f64, min: f64| if v.is_finite() { v.max(min) } else { min };
        (fit(self.width, min.0), fit(self.height, min.1))
    }
}

/// Everything `prefs.json` holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrefsDoc {
    pub prefs: Prefs,
    /// Starred forwards, by name, in the order they were starred.
    pub favourites: Vec<String>,
    /// Banners the user closed (their text), newest last.
    pub dismissed_banners: Vec<String>,
    pub window: Option<WindowGeometry>,
}

/// `prefs.json` as read.
#[derive(Debug)]
pub struct Loaded {
    pub doc: PrefsDoc,
    /// Whether the file was there (else this is the first start of a build that has it).
    pub existed: bool,
    /// What could not be read, worded for the banner.
    pub problem: Option<String>,
}

impl PrefsDoc {
    /// Reads `path`; a missing file is the defaults, an unreadable key its default.
    pub fn load(path: &Path) -> Loaded {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Loaded {
                    doc: PrefsDoc::default(),
                    existed: false,
                    problem: None,
                };
            }
            Err(e) => {
                return Loaded {
                    doc: PrefsDoc::default(),
                    existed: true,
                    problem: Some(unreadable(path, &e.to_string())),
                };
            }
        };
        let (doc, bad) = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => PrefsDoc::from_map(&map),
            Ok(_) => (PrefsDoc::default(), vec!["(not a JSON object)".to_string()]),
            Err(e) => (PrefsDoc::default(), vec![format!("(not JSON: {e})")]),
        };
        Loaded {
            doc,
            existed: true,
            problem: (!bad.is_empty()).then(|| unreadable(path, &bad.join(", "))),
        }
    }

    /// The preferences in `map`, each key on its own; returns the keys that could not be
    /// read.
    fn from_map(map: &Map<String, Value>) -> (PrefsDoc, Vec<String>) {
        let mut bad = Vec::new();
        let mut doc = PrefsDoc::default();
        fn take<T: serde::de::DeserializeOwned>(
            map: &Map<String, Value>,
            key: &str,
            into: &mut T,
            bad: &mut Vec<String>,
        ) {
            if let Some(v) = map.get(key) {
                match serde_json::from_value(v.clone()) {
                    Ok(v) => *into = v,
                    Err(_) => bad.push(key.to_string()),
                }
            }
        }
        take(map, "theme", &mut doc.prefs.theme, &mut bad);
        take(map, "group_by", &mut doc.prefs.group_by, &mut bad);
        take(map, "view", &mut doc.prefs.view, &mut bad);
        take(map, "check_updates", &mut doc.prefs.check_updates, &mut bad);
        take(map, "favourites", &mut doc.favourites, &mut bad);
        take(
            map,
            "dismissed_banners",
            &mut doc.dismissed_banners,
            &mut bad,
        );
        take(map, "window", &mut doc.window, &mut bad);
        (doc, bad)
    }

    /// The file's text: pretty JSON with a final newline.
    pub fn render(&self) -> String {
        let mut map = Map::new();
        let mut put = |key: &str, v: Value| {
            map.insert(key.to_string(), v);
        };
        put(
            "theme",
            serde_json::to_value(self.prefs.theme).unwrap_or_default(),
        );
        put(
            "group_by",
            serde_json::to_value(self.prefs.group_by).unwrap_or_default(),
        );
        put(
            "view",
            serde_json::to_value(self.prefs.view).unwrap_or_default(),
        );
        put("check_updates", Value::Bool(self.prefs.check_updates));
        put(
            "favourites",
            serde_json::to_value(&self.favourites).unwrap_or_default(),
        );
        put(
            "dismissed_banners",
            serde_json::to_value(&self.dismissed_banners).unwrap_or_default(),
        );
        if let Some(w) = &self.window {
            put("window", serde_json::to_value(w).unwrap_or_default());
        }
        let text = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
        format!("{text}\n")
    }

    /// Takes the preferences an older build kept in the store's `settings` (`theme`,
    /// `group_by`). Returns whether there were any.
    pub fn migrate(&mut self, settings: &Value) -> bool {
        let mut found = false;
        if let Some(theme) = settings
            .get("theme")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
        {
            self.prefs.theme = theme;
            found = true;
        }
        if let Some(group_by) = settings
            .get("group_by")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
        {
            self.prefs.group_by = group_by;
            found = true;
        }
        found
    }

    pub fn is_favourite(&self, name: &str) -> bool {
        self.favourites.iter().any(|f| f == name)
    }

    /// Stars or unstars `name`. Returns whether anything changed.
    pub fn set_favourite(&mut self, name: &str, favourite: bool) -> bool {
        match (self.is_favourite(name), favourite) {
            (false, true) => self.favourites.push(name.to_string()),
            (true, false) => self.favourites.retain(|f| f != name),
            _ => return false,
        }
        true
    }

    /// A star follows its forward to its new name. Returns whether anything changed.
    pub fn rename_favourite(&mut self, from: &str, to: &str) -> bool {
        if from == to || !self.is_favourite(from) {
            return false;
        }
        self.favourites.retain(|f| f != to);
        for f in &mut self.favourites {
            if f == from {
                *f = to.to_string();
            }
        }
        true
    }

    /// Drops the stars of forwards that are gone. Returns whether anything changed.
    pub fn drop_favourites(&mut self, gone: &[String]) -> bool {
        let before = self.favourites.len();
        self.favourites.retain(|f| !gone.contains(f));
        self.favourites.len() != before
    }

    /// Remembers that the user closed `banner`.
    pub fn dismiss(&mut self, banner: &str) {
        self.dismissed_banners.retain(|b| b != banner);
        self.dismissed_banners.push(banner.to_string());
        let extra = self.dismissed_banners.len().saturating_sub(DISMISSED_KEPT);
        self.dismissed_banners.drain(..extra);
    }

    pub fn dismissed(&self, banner: &str) -> bool {
        self.dismissed_banners.iter().any(|b| b == banner)
    }
}

fn unreadable(path: &Path, what: &str) -> String {
    format!(
        "Some of the app's preferences in {} could not be read ({what}); defaults are in use for them.",
        path.display()
    )
}

/// Preferences as the UI sent them. Read here rather than by the IPC layer, so that a
/// value the preferences cannot hold (`theme: "purple"`) is a problem on its field
/// (`theme`, `view.sort`) instead of the IPC layer's own rejection, which names no field.
pub fn read_prefs(value: Value) -> Result<Prefs, AppError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        if field.is_empty() || field == "." {
            AppError::invalid("prefs", format!("the preferences cannot be read: {inner}"))
        } else {
            AppError::invalid(field.clone(), format!("{field} cannot be read: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_key_is_read_on_its_own() {
        let map = json!({
            "theme": "dark",
            "group_by": "sideways",
            "favourites": ["echo"],
            "window": {"x": 10, "y": 20, "width": 900, "height": 600},
            "from_a_newer_build": 1
        });
        let (doc, bad) = PrefsDoc::from_map(map.as_object().unwrap());
        assert_eq!(doc.prefs.theme, Theme::Dark);
        assert_eq!(doc.prefs.group_by, GroupBy::Profile);
        assert_eq!(doc.favourites, ["echo"]);
        assert_eq!(doc.window.unwrap().width, 900.0);
        assert_eq!(bad, ["group_by"]);
    }

    #[test]
    fn the_file_reads_back_as_written() {
        let doc = PrefsDoc {
            prefs: Prefs {
                theme: Theme::Light,
                group_by: GroupBy::Context,
                view: View {
                    sort: SortKey::Port,
                    state: StateFilter::Problems,
                    favourites_only: true,
                },
                check_updates: false,
            },
            favourites: vec!["b".into(), "a".into()],
            dismissed_banners: vec!["hello".into()],
            window: Some(WindowGeometry {
                x: -5.0,
                y: 3.5,
                width: 800.0,
                height: 500.0,
                maximized: true,
            }),
        };
        let text = doc.render();
        let value: Value = serde_json::from_str(&text).unwrap();
        let (back, bad) = PrefsDoc::from_map(value.as_object().unwrap());
        assert!(bad.is_empty());
        assert_eq!(back, doc);
    }

    #[test]
    fn stars_follow_renames_and_go_with_deletes() {
        let mut doc = PrefsDoc::default();
        assert!(doc.set_favourite("a", true));
        assert!(!doc.set_favourite("a", true));
        assert!(doc.set_favourite("b", true));
        assert!(doc.rename_favourite("a", "z"));
        assert_eq!(doc.favourites, ["z", "b"]);
        assert!(!doc.rename_favourite("nope", "x"));
        assert!(doc.drop_favourites(&["b".into()]));
        assert_eq!(doc.favourites, ["z"]);
        assert!(doc.set_favourite("z", false));
        assert!(doc.favourites.is_empty());
    }

    #[test]
    fn dismissed_banners_are_bounded() {
        let mut doc = PrefsDoc::default();
        for i in 0..(DISMISSED_KEPT + 3) {
            doc.dismiss(&format!("b{i}"));
        }
        assert_eq!(doc.dismissed_banners.len(), DISMISSED_KEPT);
        assert!(!doc.dismissed("b0") && doc.dismissed(&format!("b{}", DISMISSED_KEPT + 2)));
    }

    #[test]
    fn a_window_must_be_reachable_on_a_monitor() {
        let w = |x: f64, y: f64| WindowGeometry {
            x,
            y,
            width: 1000.0,
            height: 700.0,
            maximized: false,
        };
        let one = [(0.0, 0.0, 1920.0, 1080.0)];
        let two = [(0.0, 0.0, 1920.0, 1080.0), (1920.0, 0.0, 1280.0, 1024.0)];
        assert!(w(100.0, 100.0).reachable_on(&one));
        // On a second monitor that is no longer there.
        assert!(!w(2200.0, 100.0).reachable_on(&one));
        assert!(w(2200.0, 100.0).reachable_on(&two));
        // Mostly off the left edge, or its title bar above the screen.
        assert!(!w(-990.0, 100.0).reachable_on(&one));
        assert!(!w(100.0, -500.0).reachable_on(&one));
        assert!(!w(f64::NAN, 0.0).reachable_on(&one));
        assert!(!w(0.0, 0.0).reachable_on(&[]));
        assert_eq!(
            WindowGeometry {
                width: 10.0,
                height: f64::INFINITY,
                ..w(0.0, 0.0)
            }
            .size_at_least((720.0, 480.0)),
            (720.0, 480.0)
        );
    }

    #[test]
    fn a_maximized_window_keeps_its_size_from_before() {
        let normal = WindowGeometry {
            x: 10.0,
            y: 10.0,
            width: 900.0,
            height: 600.0,
            maximized: false,
        };
        let max = WindowGeometry {
            x: 0.0,
            y: 0.0,
            width: 1920.0,
            height: 1050.0,
            maximized: true,
        };
        assert_eq!(
            WindowGeometry::after(Some(normal), max),
            WindowGeometry {
                maximized: true,
                ..normal
            }
        );
        assert_eq!(WindowGeometry::after(None, max), max);
        assert_eq!(WindowGeometry::after(Some(max), normal), normal);
    }

    #[test]
    fn bad_prefs_name_their_field() {
        let e = read_prefs(json!({"theme": "purple"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("theme"));
        let e = read_prefs(json!({"view": {"sort": "size"}})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("view.sort"));
        let e = read_prefs(json!({"colour": 1})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("colour"));
        assert_eq!(read_prefs(json!({})).unwrap(), Prefs::default());
        let e = read_prefs(json!({"check_updates": "daily"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("check_updates"));
        assert!(
            Prefs::default().check_updates,
            "updates are looked for unless turned off"
        );
    }
}
