//! The IPC commands (docs/app-ipc.md), run in the long-lived process for the window's
//! process, which forwards every command of its page here but the updater's (see
//! [`crate::window`]): each
//! one reads its arguments (named as the page sends them, camelCase), validates its input
//! through the core and maps errors to `{code, message, field}`. Nothing else happens here.

use std::sync::Arc;

use crate::app::AppCore;
use crate::desktop::Desktop;
use crate::error::{AppError, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

type Result<T> = std::result::Result<T, AppError>;

/// Every command the window may call, for the docs and the tests.
pub const COMMANDS: &[&str] = &[
    "get_state",
    "set_enabled",
    "set_all_enabled",
    "set_profile_active",
    "save_forward",
    "delete_forward",
    "validate_forward",
    "parse_kubectl",
    "suggest_local_port",
    "list_contexts",
    "list_namespaces",
    "list_targets",
    "check_access",
    "discover_forwards",
    "test_connection",
    "retry_forward",
    "kubectl_command",
    "forward_log",
    "save_profile",
    "delete_profile",
    "save_settings",
    "save_prefs",
    "set_favourite",
    "start_demo",
    "import_config",
    "dismiss_banner",
    "open_url",
    "quit",
    "export_config",
    "inspect_exchanges",
    "follow_exchanges",
    "unfollow_exchanges",
    "replay_exchange",
    "exchange_curl",
    "export_har",
    "clear_exchanges",
    "check_update",
    "offered_update",
    "install_update",
];

/// The commands that need the desktop (the login entry, a browser, quitting, events),
/// run by [`call`], and the updater's, which the window's process runs itself
/// ([`UPDATE_COMMANDS`]); every other one is [`call_core`]'s.
pub const DESKTOP_COMMANDS: &[&str] = &[
    "save_settings",
    "open_url",
    "quit",
    "follow_exchanges",
    "check_update",
    "offered_update",
    "install_update",
];

/// The updater's commands: run in the window's process, which has Tauri's updater.
pub const UPDATE_COMMANDS: &[&str] = &["check_update", "offered_update", "install_update"];

/// The arguments of one call, as the page sent them.
pub struct Args(serde_json::Map<String, Value>);

impl Args {
    /// `args` must be an object (or nothing, for a command without arguments).
    pub fn new(args: Value) -> Result<Args> {
        match args {
            Value::Object(map) => Ok(Args(map)),
            Value::Null => Ok(Args(serde_json::Map::new())),
            other => Err(AppError::new(
                ErrorCode::Invalid,
                format!("a command's arguments are an object, not {other}"),
            )),
        }
    }

    /// The argument `name` (absent reads as `null`, so optional ones may be left out); a
    /// value of the wrong shape is an `invalid` error on that argument.
    pub fn get<T: DeserializeOwned>(&mut self, name: &str) -> Result<T> {
        let value = self.0.remove(name).unwrap_or(Value::Null);
        let missing = value.is_null();
        serde_json::from_value(value).map_err(|e| {
            let field = snake_case(name);
            if missing {
                AppError::invalid(field, format!("`{name}` is missing"))
            } else {
                AppError::invalid(field, format!("`{name}` is not valid: {e}"))
            }
        })
    }
}

/// `dryRun` → `dry_run`: errors name fields as the config and the UI's forms do.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn answer<T: Serialize>(value: Result<T>) -> Result<Value> {
    let value = value?;
    serde_json::to_value(value).map_err(|e| {
        AppError::new(
            ErrorCode::Engine,
            format!("the answer could not be sent: {e}"),
        )
    })
}

/// Runs the command `cmd` with `args` (named as the page sends them); its answer as JSON.
pub async fn call(desktop: &Arc<Desktop>, cmd: &str, args: Value) -> Result<Value> {
    let core = desktop.core();
    if !DESKTOP_COMMANDS.contains(&cmd) {
        return call_core(core, cmd, args).await;
    }
    let mut a = Args::new(args)?;
    match cmd {
        // The settings, and the login entry with them.
        "save_settings" => {
            let settings: crate::settings::Settings = a.get("settings")?;
            // The login entry first: when it cannot be changed, nothing is saved.
            let start_at_login = settings.start_at_login;
            let login_changed = core.settings().start_at_login != start_at_login;
            if login_changed {
                crate::login::set(start_at_login)?;
            }
            let saved = core.save_settings(settings).await;
            if saved.is_err() && login_changed {
                let _ = crate::login::set(!start_at_login);
            }
            answer(saved)
        }
        "open_url" => {
            let url: String = a.get("url")?;
            answer(open_url(url))
        }
        // The window's Quit and Ctrl+Q: quits also when there is no tray to quit from.
        // Every forward is stopped as the app exits.
        "quit" => {
            desktop.exit();
            answer(Ok(()))
        }
        // What `inspect_exchanges` answers, and every later exchange of the forward as
        // `ferry://exchange` (batched) while the window shows its HTTP tab. Replaces the
        // follower of any other forward.
        "follow_exchanges" => {
            let forward: String = a.get("forward")?;
            let to = Arc::downgrade(desktop);
            let sink: crate::inspect::Sink = Arc::new(move |batch| {
                if let Some(desktop) = to.upgrade() {
                    desktop.emit(crate::inspect::EXCHANGE_EVENT, &batch);
                }
            });
            answer(core.follow_exchanges(&forward, sink).await)
        }
        // The window's process runs the updater's commands; one sent here is refused.
        cmd if UPDATE_COMMANDS.contains(&cmd) => Err(AppError::new(
            ErrorCode::Engine,
            format!("`{cmd}` is run by the window's process"),
        )),
        other => Err(AppError::new(
            ErrorCode::Invalid,
            format!("Ferry has no command `{other}`"),
        )),
    }
}

/// Runs a command that needs only the core (all but the desktop's: the login entry, a
/// browser, quitting, events, updates); also what the contract test holds the UI's fake
/// shell to.
pub async fn call_core(core: &AppCore, cmd: &str, args: Value) -> Result<Value> {
    let mut a = Args::new(args)?;
    match cmd {
        "get_state" => answer(Ok(core.state().await)),
        "set_enabled" => {
            let (name, enabled): (String, bool) = (a.get("name")?, a.get("enabled")?);
            answer(core.set_enabled(&name, enabled).await)
        }
        "set_all_enabled" => {
            let (names, enabled): (Vec<String>, bool) = (a.get("names")?, a.get("enabled")?);
            answer(core.set_all_enabled(&names, enabled).await)
        }
        "set_profile_active" => {
            let (name, active): (String, bool) = (a.get("name")?, a.get("active")?);
            answer(core.set_profile_active(&name, active).await)
        }
        "save_forward" => {
            let original: Option<String> = a.get("original")?;
            let forward = crate::app::read_forward(a.get("forward")?)?;
            answer(core.save_forward(original.as_deref(), forward).await)
        }
        "delete_forward" => {
            let name: String = a.get("name")?;
            answer(core.delete_forward(&name).await)
        }
        "validate_forward" => {
            let original: Option<String> = a.get("original")?;
            let forward: Value = a.get("forward")?;
            answer(Ok(core.validate_forward_value(original.as_deref(), forward)))
        }
        "parse_kubectl" => {
            let line: String = a.get("line")?;
            answer(core.parse_kubectl(&line))
        }
        "suggest_local_port" => {
            let port: u16 = a.get("port")?;
            answer(Ok(core.suggest_local_port(port)))
        }
        "list_contexts" => answer(core.list_contexts().await),
        "list_namespaces" => {
            let context: Option<String> = a.get("context")?;
            answer(core.list_namespaces(context.as_deref()).await)
        }
        "list_targets" | "check_access" => {
            let context: Option<String> = a.get("context")?;
            let namespace: Option<String> = a.get("namespace")?;
            let kind: String = a.get("kind")?;
            let (context, namespace) = (context.as_deref(), namespace.as_deref());
            if cmd == "list_targets" {
                answer(core.list_targets(context, namespace, &kind).await)
            } else {
                answer(core.check_access(context, namespace, &kind).await)
            }
        }
        // What the cluster's objects declare (annotations of Ferry, kftray and k9s), each
        // with the saved forward that already does it; added through `save_forward`.
        "discover_forwards" => {
            let context: Option<String> = a.get("context")?;
            let namespace: Option<String> = a.get("namespace")?;
            let all: Option<bool> = a.get("allNamespaces")?;
            let found = core
                .discover_forwards(
                    context.as_deref(),
                    namespace.as_deref(),
                    all.unwrap_or(false),
                )
                .await;
            answer(found)
        }
        "test_connection" => {
            let name: String = a.get("name")?;
            answer(core.test_connection(&name).await)
        }
        "retry_forward" => {
            let name: String = a.get("name")?;
            answer(core.retry_forward(&name).await)
        }
        "kubectl_command" => {
            let name: String = a.get("name")?;
            answer(core.kubectl_command(&name).await)
        }
        "forward_log" => {
            let name: String = a.get("name")?;
            answer(Ok(core.forward_log(&name)))
        }
        "save_profile" => {
            let original: Option<String> = a.get("original")?;
            let profile = a.get("profile")?;
            answer(core.save_profile(original.as_deref(), profile).await)
        }
        "delete_profile" => {
            let name: String = a.get("name")?;
            answer(core.delete_profile(&name).await)
        }
        // The window's preferences (theme, grouping, the list's last view), read here so
        // that a value they cannot hold is an `invalid` error on its field (`theme`,
        // `view.sort`).
        "save_prefs" => {
            let prefs = crate::prefs::read_prefs(a.get("prefs")?)?;
            answer(core.save_prefs(prefs).await)
        }
        "set_favourite" => {
            let (name, favourite): (String, bool) = (a.get("name")?, a.get("favourite")?);
            answer(core.set_favourite(&name, favourite).await)
        }
        "start_demo" => answer(core.start_demo().await),
        "import_config" => {
            let text: String = a.get("text")?;
            let format = a.get("format")?;
            let dry_run: bool = a.get("dryRun")?;
            answer(core.import_config(&text, format, dry_run).await)
        }
        "dismiss_banner" => {
            core.dismiss_banner();
            answer(Ok(()))
        }
        // The saved forwards as Ferry's YAML or kftray's JSON (Export in the window).
        "export_config" => answer(core.export_config(a.get("format")?)),

        // === HTTP inspection ===
        // The exchanges a forward's inspection keeps (`invalid` on `inspect` when it has
        // none).
        "inspect_exchanges" => {
            let forward: String = a.get("forward")?;
            answer(core.inspect_exchanges(&forward).await)
        }
        // Ends the follower (the HTTP tab closed).
        "unfollow_exchanges" => {
            core.unfollow_exchanges();
            answer(Ok(()))
        }
        "replay_exchange" => {
            let (forward, id): (String, u64) = (a.get("forward")?, a.get("id")?);
            answer(core.replay_exchange(&forward, id).await)
        }
        // The curl line; the window copies it with the clipboard plugin.
        "exchange_curl" => {
            let (forward, id): (String, u64) = (a.get("forward")?, a.get("id")?);
            answer(core.exchange_curl(&forward, id).await)
        }
        // A HAR 1.2 document of the kept exchanges (all, or `ids`), for the window to save.
        "export_har" => {
            let forward: String = a.get("forward")?;
            let ids: Option<Vec<u64>> = a.get("ids")?;
            answer(core.export_har(&forward, ids.as_deref()).await)
        }
        "clear_exchanges" => {
            let forward: String = a.get("forward")?;
            answer(core.clear_exchanges(&forward).await)
        }
        other => Err(AppError::new(
            ErrorCode::Invalid,
            format!("Ferry has no command `{other}`"),
        )),
    }
}

fn open_url(url: String) -> Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(AppError::invalid(
            "url",
            "only http and https addresses are opened",
        ));
    }
    open::that_detached(&url)
        .map_err(|e| AppError::new(ErrorCode::Invalid, format!("could not open a browser: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_read_by_the_names_the_page_sends() {
        let mut a = Args::new(json!({"name": "web", "dryRun": true, "port": 70000})).unwrap();
        assert_eq!(a.get::<String>("name").unwrap(), "web");
        assert!(a.get::<bool>("dryRun").unwrap());
        // Absent optional arguments read as none; absent required ones are named.
        assert_eq!(a.get::<Option<String>>("context").unwrap(), None);
        let e = a.get::<bool>("confirmCut").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("confirm_cut"));
        assert!(
            e.message.contains("`confirmCut` is missing"),
            "{}",
            e.message
        );
        // A value of the wrong shape is an error on its argument, in words.
        let e = a.get::<u16>("port").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::Invalid, Some("port"))
        );
        assert!(e.message.contains("`port` is not valid"), "{}", e.message);
        assert!(Args::new(json!([1, 2])).is_err());
        assert!(Args::new(Value::Null).is_ok());
    }
}
