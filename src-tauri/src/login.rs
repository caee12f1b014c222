//! Starting at login: the autostart plugin's entry (a LaunchAgent on macOS, a registry
//! value on Windows, `~/.config/autostart/Ferry.desktop` on Linux), which starts Ferry
//! with `--hidden`.

use tauri::AppHandle;

use crate::error::{AppError, ErrorCode};

/// The argument the entry starts Ferry with.
pub const ARGS: &[&str] = &["--hidden"];

/// Turns starting at login on or off.
pub fn set(app: &AppHandle, on: bool) -> Result<(), AppError> {
    use tauri_plugin_autostart::ManagerExt as _;
    let failed = |e: &dyn std::fmt::Display| {
        AppError::new(
            ErrorCode::Store,
            format!("start at login could not be changed: {e}"),
        )
    };
    #[cfg(target_os = "linux")]
    let entry = linux::entry(app);
    // The launcher creates `~/.config/autostart` but not its parents (a fresh home may
    // have no `~/.config` yet).
    #[cfg(target_os = "linux")]
    if on
        && let Some(dir) = entry.as_deref().and_then(std::path::Path::parent)
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return Err(failed(&format!("{}: {e}", dir.display())));
    }
    let launcher = app.autolaunch();
    let result = if on {
        launcher.enable()
    } else {
        launcher.disable()
    };
    result.map_err(|e| failed(&e))?;
    #[cfg(target_os = "linux")]
    if on && let Some(entry) = entry {
        linux::quote_exec(app, &entry).map_err(|e| failed(&format!("{}: {e}", entry.display())))?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::{Path, PathBuf};

    use tauri::{AppHandle, Manager as _};

    /// Where the launcher writes the entry: `~/.config/autostart/<product name>.desktop`.
    pub(super) fn entry(app: &AppHandle) -> Option<PathBuf> {
        let home = app.path().home_dir().ok()?;
        let name = &app.package_info().name;
        Some(
            home.join(".config/autostart")
                .join(format!("{name}.desktop")),
        )
    }

    /// The launcher writes `Exec=<path> <args>` unquoted, which breaks on a path with a
    /// space (an AppImage under "My Apps", say): the line is rewritten with the path
    /// quoted as the Desktop Entry specification says.
    pub(super) fn quote_exec(app: &AppHandle, entry: &Path) -> std::io::Result<()> {
        let exe = match app.env().appimage {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe()?,
        };
        let exe = exe.to_string_lossy();
        let want = format!(
            "Exec={}",
            std::iter::once(exe.as_ref())
                .chain(super::ARGS.iter().copied())
                .map(super::exec_arg)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let text = std::fs::read_to_string(entry)?;
        if text.lines().any(|l| l == want) {
            return Ok(());
        }
        let fixed: Vec<&str> = text
            .lines()
            .map(|l| {
                if l.starts_with("Exec=") {
                    want.as_str()
                } else {
                    l
                }
            })
            .collect();
        std::fs::write(entry, fixed.join("\n") + "\n")
    }
}

/// One argument of a desktop entry's `Exec` key: quoted when it holds a reserved
/// character. Inside the quotes `"`, `` ` `` and `$` take a backslash and a backslash
/// takes another, and each of those backslashes is doubled again because the key is a
/// string value (so `$` is written `\\$` and `\` is written `\\\\`); `%` is doubled.
pub fn exec_arg(arg: &str) -> String {
    const RESERVED: &str = " \t\n\"'\\><~|&;$*?#`()";
    let arg = arg.replace('%', "%%");
    if !arg.chars().any(|c| RESERVED.contains(c)) {
        return arg;
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' => {
                out.push_str("\\\\");
                out.push(c);
            }
            '\\' => out.push_str("\\\\\\\\"),
            // A line break cannot stand in a key's value: the string escape for it.
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::exec_arg;

    #[test]
    fn exec_arguments_are_quoted_only_when_needed() {
        assert_eq!(exec_arg("/usr/bin/ferry-app"), "/usr/bin/ferry-app");
        assert_eq!(exec_arg("--hidden"), "--hidden");
        assert_eq!(
            exec_arg("/home/me/My Apps/Ferry.AppImage"),
            "\"/home/me/My Apps/Ferry.AppImage\""
        );
        assert_eq!(exec_arg("/opt/a$b"), "\"/opt/a\\\\$b\"");
        assert_eq!(exec_arg("/opt/100%"), "/opt/100%%");
        assert_eq!(exec_arg("/opt/x\\y"), "\"/opt/x\\\\\\\\y\"");
        assert_eq!(exec_arg("/opt/a\nb"), "\"/opt/a\\nb\"");
    }
}
