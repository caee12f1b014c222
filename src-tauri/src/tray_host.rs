//! Whether the desktop shows tray icons at all. Stock GNOME without the AppIndicator
//! extension shows none: there, closing the window must quit Ferry instead of leaving it
//! invisible while it holds its ports.

/// Linux: a StatusNotifier host (`org.kde.StatusNotifierWatcher` on the session bus, as
/// KDE, the GNOME AppIndicator extension and most panels provide) or an XEmbed tray (an
/// owner of the X selection `_NET_SYSTEM_TRAY_S<screen>`, which the indicator library falls
/// back to).
#[cfg(target_os = "linux")]
pub fn available() -> bool {
    status_notifier_host() || xembed_tray()
}

/// macOS always has its menu bar and Windows its notification area.
#[cfg(not(target_os = "linux"))]
pub fn available() -> bool {
    true
}

#[cfg(target_os = "linux")]
fn status_notifier_host() -> bool {
    let asked = || -> zbus::Result<bool> {
        let bus = zbus::blocking::Connection::session()?;
        let dbus = zbus::blocking::fdo::DBusProxy::new(&bus)?;
        let name = zbus::names::BusName::try_from("org.kde.StatusNotifierWatcher")?;
        Ok(dbus.name_has_owner(name)?)
    };
    asked().unwrap_or(false)
}

#[cfg(target_os = "linux")]
fn xembed_tray() -> bool {
    use x11rb::protocol::xproto::ConnectionExt as _;
    let asked = || -> Result<bool, Box<dyn std::error::Error>> {
        let (conn, screen) = x11rb::connect(None)?;
        let name = format!("_NET_SYSTEM_TRAY_S{screen}");
        let atom = conn.intern_atom(false, name.as_bytes())?.reply()?.atom;
        Ok(conn.get_selection_owner(atom)?.reply()?.owner != x11rb::NONE)
    };
    asked().unwrap_or(false)
}
