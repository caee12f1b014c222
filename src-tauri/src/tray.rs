//! The tray icon and its menu. The icon shows the aggregate state; the menu lists the
//! starred forwards first, then the profiles and the other forwards, as check items. The
//! menu is rebuilt only when the list of profiles or forwards changes; otherwise its items
//! are updated in place (no flicker).
//!
//! The tray belongs to the thread that runs the desktop's event loop (GTK's on Linux, the
//! main thread on macOS and Windows), and only that thread touches it: the bridge works
//! out a [`View`] wherever it runs and sends it there ([`crate::desktop::Desktop::tray`]);
//! a click comes back as the item's id and is acted on by [`act`] on the runtime.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::config::Config;
use ferry_core::events::{ForwardState, Snapshot};
use tray_icon::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use crate::app::AppCore;
use crate::desktop::Desktop;

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

/// An icon's pixels: (RGBA, width, height).
type Pixels = (Vec<u8>, u32, u32);

fn pixels(state: Aggregate) -> Option<Pixels> {
    let bytes: &'static [u8] = match state {
        Aggregate::Idle => include_bytes!("../../icons/tray-idle.png"),
        Aggregate::Up => include_bytes!("../../icons/tray-up.png"),
        Aggregate::Degraded => include_bytes!("../../icons/tray-degraded.png"),
        Aggregate::Error => include_bytes!("../../icons/tray-error.png"),
    };
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).ok()?;
    buf.truncate(frame.buffer_size());
    let rgba = match frame.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 0xff])
            .collect(),
        _ => return None,
    };
    Some((rgba, frame.width, frame.height))
}

/// The icons are part of the binary and decoded by a test; a failure would be a build
/// defect, so it shows as no icon rather than a panic.
fn icon(state: Aggregate) -> Option<Icon> {
    let (rgba, width, height) = pixels(state)?;
    Icon::from_rgba(rgba, width, height).ok()
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

/// What the tray shows for a config and a snapshot: worked out off the event loop's
/// thread and sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub model: MenuModel,
    pub aggregate: Aggregate,
}

impl View {
    pub fn new(config: &Config, favourites: &[String], snapshot: &Snapshot) -> View {
        View {
            model: MenuModel::new(config, favourites, snapshot),
            aggregate: aggregate(config, snapshot),
        }
    }
}

/// The live tray: the icon, the view it shows and the items to update in place. Owned by
/// the event loop's thread.
pub struct Tray {
    icon: TrayIcon,
    model: Option<MenuModel>,
    aggregate: Option<Aggregate>,
    header: Option<MenuItem>,
    items: HashMap<String, CheckMenuItem>,
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

fn tooltip(state: Aggregate) -> &'static str {
    match state {
        Aggregate::Idle => "Ferry: idle",
        Aggregate::Up => "Ferry: all forwards up",
        Aggregate::Degraded => "Ferry: some forwards are not up",
        Aggregate::Error => "Ferry: a forward needs attention",
    }
}

impl Tray {
    /// The icon, idle and with no menu yet. On the event loop's thread, once it runs.
    pub fn new() -> Result<Tray, tray_icon::Error> {
        let mut builder = TrayIconBuilder::new()
            .with_id("ferry")
            .with_tooltip("Ferry")
            .with_menu_on_left_click(true);
        if let Some(icon) = icon(Aggregate::Idle) {
            builder = builder.with_icon(icon);
        }
        Ok(Tray {
            icon: builder.build()?,
            model: None,
            aggregate: None,
            header: None,
            items: HashMap::new(),
        })
    }

    /// Shows `view`: a new menu when forwards or profiles came or went, else in-place
    /// updates of what changed.
    pub fn show(&mut self, view: View) -> Result<(), Box<dyn std::error::Error>> {
        let View { model, aggregate } = view;
        if self.aggregate != Some(aggregate) {
            self.icon.set_icon(icon(aggregate))?;
            self.icon.set_tooltip(Some(tooltip(aggregate)))?;
            self.aggregate = Some(aggregate);
        }
        if self.model.as_ref() == Some(&model) {
            return Ok(());
        }
        let same_shape = self
            .model
            .as_ref()
            .is_some_and(|m| m.shape() == model.shape());
        if same_shape {
            if let Some(header) = &self.header {
                header.set_text(&model.header);
            }
            for (name, on, _) in &model.profiles {
                if let Some(item) = self.items.get(&format!("{PROFILE_PREFIX}{name}")) {
                    item.set_checked(*on);
                }
            }
            for (id, item) in &self.items {
                if let Some((label, on)) = forward_of(id).and_then(|f| model.forward(f)) {
                    item.set_text(label);
                    item.set_checked(on);
                }
            }
        } else {
            self.rebuild(&model)?;
        }
        self.model = Some(model);
        Ok(())
    }

    fn rebuild(&mut self, model: &MenuModel) -> Result<(), Box<dyn std::error::Error>> {
        let menu = Menu::new();
        let header = MenuItem::with_id("header", &model.header, false, None);
        menu.append(&header)?;
        let mut items = HashMap::new();
        let check = |items: &mut HashMap<String, CheckMenuItem>, id: String, label: &str, on| {
            let item = CheckMenuItem::with_id(id.as_str(), label, true, on, None);
            items.insert(id, item.clone());
            item
        };
        // A list of forwards (the starred ones, the others) after a separator.
        let list = |items: &mut HashMap<String, CheckMenuItem>,
                    forwards: &[(String, String, bool)]| {
            if !forwards.is_empty() {
                menu.append(&PredefinedMenuItem::separator())?;
            }
            for (name, label, on) in forwards {
                menu.append(&check(items, format!("{FORWARD_PREFIX}{name}"), label, *on))?;
            }
            Ok::<_, tray_icon::menu::Error>(())
        };
        list(&mut items, &model.favourites)?;
        if !model.profiles.is_empty() {
            menu.append(&PredefinedMenuItem::separator())?;
            for (name, on, members) in &model.profiles {
                let submenu = Submenu::new(format!("Profile {name}"), true);
                submenu.append(&check(
                    &mut items,
                    format!("{PROFILE_PREFIX}{name}"),
                    "All of it",
                    *on,
                ))?;
                if !members.is_empty() {
                    submenu.append(&PredefinedMenuItem::separator())?;
                }
                for forward in members {
                    let Some((label, on)) = model.forward(forward) else {
                        continue;
                    };
                    let id = format!("{PROFILE_FORWARD_PREFIX}{name}:{forward}");
                    submenu.append(&check(&mut items, id, label, on))?;
                }
                menu.append(&submenu)?;
            }
        }
        list(&mut items, &model.forwards)?;
        menu.append(&PredefinedMenuItem::separator())?;
        for (id, text) in [
            ("start-all", "Start all"),
            ("stop-all", "Stop all"),
            ("open", "Open Ferry"),
            ("quit", "Quit"),
        ] {
            menu.append(&MenuItem::with_id(id, text, true, None))?;
        }
        self.icon.set_menu(Some(Box::new(menu)));
        self.header = Some(header);
        self.items = items;
        Ok(())
    }

    /// Forgets what is shown, so the next [`Tray::show`] puts every check mark right again
    /// (a click toggles a check item's mark before Ferry has acted on it).
    pub fn invalidate(&mut self) {
        self.model = None;
    }
}

/// Does what the menu item `id` says (on the runtime: it may wait for the engine).
pub async fn act(desktop: Arc<Desktop>, core: Arc<AppCore>, id: String) {
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
                crate::window::show(&desktop);
                Ok(())
            }
            "quit" => {
                desktop.exit();
                Ok(())
            }
            _ => Ok(()),
        }
    };
    if let Err(e) = result {
        tracing::warn!(menu.item = %id, error = %e, "tray action failed");
    }
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
            let (rgba, width, height) = pixels(a).expect("decoded");
            assert!(width > 1 && height > 1, "{a:?}");
            assert_eq!(rgba.len(), (width * height * 4) as usize, "{a:?}");
        }
    }
}
