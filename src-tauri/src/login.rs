//! Starting at login: an entry (a LaunchAgent on macOS, a registry value on Windows,
//! `~/.config/autostart/Ferry.desktop` on Linux, written by the `auto-launch` crate) that
//! starts Ferry's launcher (`ferry-app`, or the AppImage it came in) with `--hidden`.

use crate::error::{AppError, ErrorCode};

/// The argument the entry starts Ferry with.
pub const ARGS: &[&str] = &["--hidden"];

/// The entry's name: the product's.
const NAME: &str = "Ferry";

/// Turns starting at login on or off.
pub fn set(on: bool) -> Result<(), AppError> {
    let failed = |e: &dyn std::fmt::Display| {
        AppError::new(
            ErrorCode::Store,
            format!("start at login could not be changed: {e}"),
        )
    };
    let exe = crate::desktop::launcher().map_err(|e| failed(&e))?;
    #[cfg(target_os = "linux")]
    let entry = linux::entry();
    // The launcher creates `~/.config/autostart` but not its parents (a fresh home may
    // have no `~/.config` yet).
    #[cfg(target_os = "linux")]
    if on
        && let Some(dir) = entry.as_deref().and_then(std::path::Path::parent)
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return Err(failed(&format!("{}: {e}", dir.display())));
    }
    // Windows runs the registry value as a command line: a path with a space (a user
    // name) must be quoted there.
    #[cfg(windows)]
    let path = format!("\"{}\"", exe.display());
    #[cfg(not(windows))]
    let path = exe.to_string_lossy().into_owned();
    let mut builder = auto_launch::AutoLaunchBuilder::new();
    builder
        .set_app_name(NAME)
        .set_app_path(&path)
        .set_args(ARGS);
    #[cfg(target_os = "macos")]
    builder.set_use_launch_agent(true);
    let entries = builder.build().map_err(|e| failed(&e))?;
    let result = if on {
        entries.enable()
    } else if entries.is_enabled().unwrap_or(true) {
        entries.disable()
    } else {
        Ok(())
    };
    result.map_err(|e| failed(&e))?;
    #[cfg(target_os = "linux")]
    if on && let Some(entry) = entry {
        linux::quote_exec(&exe, &entry)
            .map_err(|e| failed(&format!("{}: {e}", entry.display())))?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::{Path, PathBuf};

    /// Where the entry is written: `~/.config/autostart/Ferry.desktop`.
    pub(super) fn entry() -> Option<PathBuf> {
        let home = dirs::home_dir()?;
        Some(
            home.join(".config/autostart")
                .join(format!("{}.desktop", super::NAME)),
        )
    }

    /// The launcher writes `Exec=<path> <args>` unquoted, which breaks on a path with a
    /// space (an AppImage under "My Apps", say): the line is rewritten with the path
    /// quoted as the Desktop Entry specification says.
    pub(super) fn quote_exec(exe: &Path, entry: &Path) -> std::io::Result<()> {
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
