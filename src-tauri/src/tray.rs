//! The tray icon and its menu. The icon shows the aggregate state; the menu lists the
//! starred forwards first, then the profiles and the other forwards, as check items. The menu is rebuilt only when the list of
//! profiles or forwards changes; otherwise its items are updated in place (no flicker).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_core::config::Config;
use ferry_core::events::{ForwardState, Snapshot};
use parking_lot::Mutex;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Wry};

use crate::app::AppCore;

/// The aggregate state the icon shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// No forward is enabled.
    Idle,
    /// Every enabled forward is active.
    Up,
    /// Some enabled forward is starting, reconnecting or degraded.
    Degraded,
    /// Some forward needs the user.
    Error,
}

pub fn aggregate(config: &Config, snapshot: &Snapshot) -> Aggregate {
    let enabled: Vec<_> = config.forwards.iter().filter(|f| f.enabled).collect();
    if enabled.is_empty() {
        return Aggregate::Idle;
    }
    let states: Vec<ForwardState> = enabled
        .iter()
        .map(|f| {
            snapshot
                .get(&f.name)
                .map(|s| s.state)
                .unwrap_or(ForwardState::Starting)
        })
        .collect();
    if states.contains(&ForwardState::Error) {
        Aggregate::Error
    } else if states.iter().all(|s| *s == ForwardState::Active) {
        Aggregate::Up
    } else {
        Aggregate::Degraded
    }
}

fn icon(state: Aggregate) -> Image<'static> {
    let bytes: &'static [u8] = match state {
        Aggregate::Idle => include_bytes!("../../icons/tray-idle.png"),
        Aggregate::Up => include_bytes!("../../icons/tray-up.png"),
        Aggregate::Degraded => include_bytes!("../../icons/tray-degraded.png"),
        Aggregate::Error => include_bytes!("../../icons/tray-error.png"),
    };
    // The icons are part of the binary and decoded by a test; a failure would be a build
    // defect, so fall back to an empty image rather than panic.
    Image::from_bytes(bytes).unwrap_or_else(|_| Image::new_owned(vec![0; 4], 1, 1))
}

/// What the menu shows, item by item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuModel {
    pub header: String,
    /// (profile, checked, its forwards): checked when every forward of the profile is
    /// enabled. Each profile is a submenu: the whole profile, then each of its forwards.
    pub profiles: Vec<(String, bool, Vec<String>)>,
    /// The starred forwards, at the top: (forward, label, checked), in the order starred.
    pub favourites: Vec<(String, String, bool)>,
    /// The other forwards: (forward, label, checked), in the config's order.
    pub forwards: Vec<(String, String, bool)>,
}

impl MenuModel {
    /// The menu for `config` and `snapshot`, with `favourites` (forward names) at the top.
    pub fn new(config: &Config, favourites: &[String], snapshot: &Snapshot) -> Self {
        let enabled = |name: &str| config.forwards.iter().any(|f| f.name == name && f.enabled);
        let profiles = config
            .profiles
            .iter()
            .map(|p| {
                let on = !p.forwards.is_empty() && p.forwards.iter().all(|f| enabled(f));
                (p.name.clone(), on, p.forwards.clone())
            })
            .collect();
        let item = |f: &ferry_core::config::Forward, star: &str| {
            let status = snapshot.get(&f.name);
            let state = status.map(|s| s.state).unwrap_or(ForwardState::Disabled);
            let local = status
                .and_then(|s| s.local.map(|a| a.to_string()))
                .unwrap_or_else(|| format!("{}:{}", f.bind, f.local_port));
            let label = format!("{star}{}  {}  {}", f.name, local, state);
            (f.name.clone(), label, f.enabled)
        };
        let starred = favourites
            .iter()
            .filter_map(|name| config.forwards.iter().find(|f| &f.name == name))
            .map(|f| item(f, "★ "))
            .collect();
        let forwards = config
            .forwards
            .iter()
            .filter(|f| !favourites.contains(&f.name))
            .map(|f| item(f, ""))
            .collect();
        let on = config.forwards.iter().filter(|f| f.enabled).count();
        let up = snapshot
            .forwards
            .iter()
            .filter(|s| s.state == ForwardState::Active)
            .count();
        let header = if on == 0 {
            "Ferry: no forward is on".to_string()
        } else {
            format!("Ferry: {up} of {on} up")
        };
        MenuModel {
            header,
            profiles,
            favourites: starred,
            forwards,
        }
    }

    /// The items' identity: a change here needs a new menu.
    fn shape(&self) -> Shape<'_> {
        (
            self.profiles
                .iter()
                .map(|p| (p.0.as_str(), p.2.as_slice()))
                .collect(),
            self.favourites.iter().map(|f| f.0.as_str()).collect(),
            self.forwards.iter().map(|f| f.0.as_str()).collect(),
        )
    }

    /// A forward's label and check mark.
    fn forward(&self, name: &str) -> Option<(&str, bool)> {
        self.favourites
            .iter()
            .chain(&self.forwards)
            .find(|f| f.0 == name)
            .map(|f| (f.1.as_str(), f.2))
    }
}

/// A menu's items by identity: the profiles with their forwards, the starred forwards, the
/// others.
type Shape<'a> = (Vec<(&'a str, &'a [String])>, Vec<&'a str>, Vec<&'a str>);

/// The live tray: the icon, the model it shows and the items to update in place.
pub struct Tray {
    icon: TrayIcon,
    inner: Mutex<Shown>,
    /// Set by a menu click: the next `show` rebuilds everything. An atomic, not `inner`:
    /// clicks arrive on the main thread, while `show` may hold `inner` waiting for it.
    stale: AtomicBool,
}

#[derive(Default)]
struct Shown {
    model: Option<MenuModel>,
    aggregate: Option<Aggregate>,
    header: Option<MenuItem<Wry>>,
    items: HashMap<String, CheckMenuItem<Wry>>,
}

pub const FORWARD_PREFIX: &str = "forward:";
pub const PROFILE_PREFIX: &str = "profile:";
/// A forward inside a profile's submenu: `pforward:<profile>:<forward>` (names hold no `:`).
pub const PROFILE_FORWARD_PREFIX: &str = "pforward:";

/// The forward a menu item switches, if it is one (in the list or in a profile's submenu).
fn forward_of(id: &str) -> Option<&str> {
    id.strip_prefix(FORWARD_PREFIX).or_else(|| {
        id.strip_prefix(PROFILE_FORWARD_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, forward)| forward)
    })
}

impl Tray {
    pub fn new(app: &AppHandle) -> tauri::Result<Arc<Tray>> {
        let icon = TrayIconBuilder::with_id("ferry")
            .icon(icon(Aggregate::Idle))
            .tooltip("Ferry")
            .show_menu_on_left_click(true)
            .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
            .build(app)?;
        Ok(Arc::new(Tray {
            icon,
            inner: Mutex::new(Shown::default()),
            stale: AtomicBool::new(false),
        }))
    }

    /// Shows `config` and `snapshot`: a new menu when forwards or profiles came or went,
    /// else in-place updates of what changed.
    pub fn show(
        &self,
        app: &AppHandle,
        config: &Config,
        favourites: &[String],
        snapshot: &Snapshot,
    ) -> tauri::Result<()> {
        let model = MenuModel::new(config, favourites, snapshot);
        let agg = aggregate(config, snapshot);
        let mut shown = self.inner.lock();
        if self.stale.swap(false, Ordering::SeqCst) {
            shown.model = None;
        }
        if shown.aggregate != Some(agg) {
            self.icon.set_icon(Some(icon(agg)))?;
            let tip = match agg {
                Aggregate::Idle => "Ferry: idle",
                Aggregate::Up => "Ferry: all forwards up",
                Aggregate::Degraded => "Ferry: some forwards are not up",
                Aggregate::Error => "Ferry: a forward needs attention",
            };
            self.icon.set_tooltip(Some(tip))?;
            shown.aggregate = Some(agg);
        }
        if shown.model.as_ref() == Some(&model) {
            return Ok(());
        }
        let same_shape = shown
            .model
            .as_ref()
            .is_some_and(|m| m.shape() == model.shape());
        if same_shape {
            if let Some(header) = &shown.header {
                header.set_text(&model.header)?;
            }
            for (name, on, _) in &model.profiles {
                if let Some(item) = shown.items.get(&format!("{PROFILE_PREFIX}{name}")) {
                    item.set_checked(*on)?;
                }
            }
            for (id, item) in &shown.items {
                if let Some((label, on)) = forward_of(id).and_then(|f| model.forward(f)) {
                    item.set_text(label)?;
                    item.set_checked(on)?;
                }
            }
        } else {
            let menu = Menu::new(app)?;
            let header = MenuItem::with_id(app, "header", &model.header, false, None::<&str>)?;
            menu.append(&header)?;
            let mut items = HashMap::new();
            if !model.favourites.is_empty() {
                menu.append(&PredefinedMenuItem::separator(app)?)?;
                for (name, label, on) in &model.favourites {
                    let id = format!("{FORWARD_PREFIX}{name}");
                    let item = CheckMenuItem::with_id(app, &id, label, true, *on, None::<&str>)?;
                    menu.append(&item)?;
                    items.insert(id, item);
                }
            }
            if !model.profiles.is_empty() {
                menu.append(&PredefinedMenuItem::separator(app)?)?;
                for (name, on, members) in &model.profiles {
                    let submenu = Submenu::new(app, format!("Profile {name}"), true)?;
                    let id = format!("{PROFILE_PREFIX}{name}");
                    let item =
                        CheckMenuItem::with_id(app, &id, "All of it", true, *on, None::<&str>)?;
                    submenu.append(&item)?;
                    items.insert(id, item);
                    if !members.is_empty() {
                        submenu.append(&PredefinedMenuItem::separator(app)?)?;
                    }
                    for forward in members {
                        let Some((label, on)) = model.forward(forward) else {
                            continue;
                        };
                        let id = format!("{PROFILE_FORWARD_PREFIX}{name}:{forward}");
                        let item = CheckMenuItem::with_id(app, &id, label, true, on, None::<&str>)?;
                        submenu.append(&item)?;
                        items.insert(id, item);
                    }
                    menu.append(&submenu)?;
                }
            }
            if !model.forwards.is_empty() {
                menu.append(&PredefinedMenuItem::separator(app)?)?;
                for (name, label, on) in &model.forwards {
                    let id = format!("{FORWARD_PREFIX}{name}");
                    let item = CheckMenuItem::with_id(app, &id, label, true, *on, None::<&str>)?;
                    menu.append(&item)?;
                    items.insert(id, item);
                }
            }
            menu.append(&PredefinedMenuItem::separator(app)?)?;
            menu.append(&MenuItem::with_id(
                app,
                "start-all",
                "Start all",
                true,
                None::<&str>,
            )?)?;
            menu.append(&MenuItem::with_id(
                app,
                "stop-all",
                "Stop all",
                true,
                None::<&str>,
            )?)?;
            menu.append(&MenuItem::with_id(
                app,
                "open",
                "Open Ferry",
                true,
                None::<&str>,
            )?)?;
            menu.append(&MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?)?;
            self.icon.set_menu(Some(menu))?;
            shown.header = Some(header);
            shown.items = items;
        }
        shown.model = Some(model);
        Ok(())
    }

    /// Forgets what is shown, so the next [`Tray::show`] puts every check mark right again
    /// (a click toggles a check item's mark before Ferry has acted on it).
    pub fn invalidate(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }
}

fn on_menu(app: &AppHandle, id: &str) {
    let Some(core) = app.try_state::<Arc<AppCore>>().map(|s| s.inner().clone()) else {
        return;
    };
    if let Some(tray) = app.try_state::<Arc<Tray>>() {
        tray.invalidate();
    }
    let app = app.clone();
    let id = id.to_string();
    tauri::async_runtime::spawn(async move {
        let result = if let Some(name) = forward_of(&id) {
            let on = core
                .config()
                .forwards
                .iter()
                .any(|f| f.name == name && f.enabled);
            core.set_enabled(name, !on).await
        } else if let Some(name) = id.strip_prefix(PROFILE_PREFIX) {
            let on = MenuModel::new(&core.config(), &[], &Snapshot::default())
                .profiles
                .iter()
                .any(|(p, on, _)| p == name && *on);
            core.set_profile_active(name, !on).await
        } else {
            match id.as_str() {
                "start-all" | "stop-all" => {
                    let names: Vec<String> = core
                        .config()
                        .forwards
                        .iter()
                        .map(|f| f.name.clone())
                        .collect();
                    core.set_all_enabled(&names, id == "start-all").await
                }
                "open" => {
                    crate::window::show(&app);
                    Ok(())
                }
                "quit" => {
                    core.shutdown().await;
                    app.exit(0);
                    Ok(())
                }
                _ => Ok(()),
            }
        };
        if let Err(e) = result {
            tracing::warn!(menu.item = %id, error = %e, "tray action failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::events::ForwardStatus;

    fn config() -> Config {
        Config::from_yaml(ferry_fakecluster::scenario::DEMO_FORWARDS).unwrap()
    }

    fn snapshot(states: &[(&str, ForwardState)]) -> Snapshot {
        Snapshot {
            generation: 1,
            forwards: states
                .iter()
                .map(|(n, s)| ForwardStatus::new(n, "service/x:80".into(), *s))
                .collect(),
        }
    }

    #[test]
    fn aggregate_follows_the_enabled_forwards() {
        let mut c = config();
        use ForwardState::*;
        assert_eq!(
            aggregate(
                &c,
                &snapshot(&[("echo", Active), ("web", Active), ("db", Active)])
            ),
            Aggregate::Up
        );
        assert_eq!(
            aggregate(
                &c,
                &snapshot(&[("echo", Active), ("web", Reconnecting), ("db", Active)])
            ),
            Aggregate::Degraded
        );
        assert_eq!(
            aggregate(
                &c,
                &snapshot(&[("echo", Error), ("web", Active), ("db", Active)])
            ),
            Aggregate::Error
        );
        for f in &mut c.forwards {
            f.enabled = false;
        }
        assert_eq!(aggregate(&c, &snapshot(&[])), Aggregate::Idle);
    }

    #[test]
    fn menu_model_labels_and_checks() {
        let mut c = config();
        c.forwards[1].enabled = false;
        let m = MenuModel::new(&c, &[], &snapshot(&[("echo", ForwardState::Active)]));
        assert_eq!(m.header, "Ferry: 1 of 2 up");
        assert_eq!(
            m.profiles,
            vec![(
                "demo".to_string(),
                false,
                vec!["echo".to_string(), "web".to_string(), "db".to_string()]
            )]
        );
        assert_eq!(m.forwards[0].1, "echo  127.0.0.1:18080  active");
        assert!(m.forwards[0].2 && !m.forwards[1].2);
    }

    #[test]
    fn profile_submenu_items_switch_their_forward() {
        assert_eq!(forward_of("forward:echo"), Some("echo"));
        assert_eq!(forward_of("pforward:demo:echo"), Some("echo"));
        assert_eq!(forward_of("profile:demo"), None);
        assert_eq!(forward_of("start-all"), None);
        // A profile's forwards changing is a new shape: the submenu is built again.
        let c = config();
        let mut other = config();
        other.profiles[0].forwards.pop();
        let s = snapshot(&[]);
        assert_ne!(
            MenuModel::new(&c, &[], &s).shape(),
            MenuModel::new(&other, &[], &s).shape()
        );
    }

    #[test]
    fn starred_forwards_come_first_and_once() {
        let c = config();
        let s = snapshot(&[("db", ForwardState::Active)]);
        let m = MenuModel::new(&c, &["db".into(), "ghost".into()], &s);
        assert_eq!(m.favourites.len(), 1);
        assert_eq!(m.favourites[0].0, "db");
        assert!(
            m.favourites[0].1.starts_with("★ db  "),
            "{}",
            m.favourites[0].1
        );
        let rest: Vec<&str> = m.forwards.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(rest, ["echo", "web"]);
        assert_eq!(m.forward("db").map(|f| f.1), Some(true));
        // Starring is a new shape: the menu is built again.
        assert_ne!(m.shape(), MenuModel::new(&c, &[], &s).shape());
    }

    #[test]
    fn tray_icons_decode() {
        for a in [
            Aggregate::Idle,
            Aggregate::Up,
            Aggregate::Degraded,
            Aggregate::Error,
        ] {
            assert!(icon(a).width() > 1, "{a:?}");
        }
    }
}
