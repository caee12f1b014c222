//! The IPC commands (docs/app-ipc.md): each one validates its input through the core and
//! maps errors to `{code, message, field}`. Nothing else happens here.

use std::sync::Arc;

use ferry_core::config::{Forward, Profile};
use tauri::{AppHandle, Emitter, State};
use tracing::instrument;

use crate::app::{
    AppCore, AppState, Contexts, ExportFormat, ExportReport, FieldProblem, ImportFormat,
    ImportReport, TargetInfo, TestResult,
};
use crate::error::AppError;
use crate::inspect::{Exchanges, HarExport, Replayed};
use crate::logs::LogLine;
use crate::settings::Settings;

type Core<'a> = State<'a, Arc<AppCore>>;
type Result<T> = std::result::Result<T, AppError>;

#[tauri::command]
pub async fn get_state(core: Core<'_>) -> Result<AppState> {
    Ok(core.state().await)
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn set_enabled(core: Core<'_>, name: String, enabled: bool) -> Result<()> {
    core.set_enabled(&name, enabled).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn set_all_enabled(core: Core<'_>, names: Vec<String>, enabled: bool) -> Result<()> {
    core.set_all_enabled(&names, enabled).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn set_profile_active(core: Core<'_>, name: String, active: bool) -> Result<()> {
    core.set_profile_active(&name, active).await
}

#[tauri::command]
#[instrument(skip(core, forward), err(Debug))]
pub async fn save_forward(
    core: Core<'_>,
    original: Option<String>,
    forward: serde_json::Value,
) -> Result<()> {
    let forward = crate::app::read_forward(forward)?;
    core.save_forward(original.as_deref(), forward).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn delete_forward(core: Core<'_>, name: String) -> Result<()> {
    core.delete_forward(&name).await
}

#[tauri::command]
pub async fn validate_forward(
    core: Core<'_>,
    original: Option<String>,
    forward: serde_json::Value,
) -> Result<Vec<FieldProblem>> {
    Ok(core.validate_forward_value(original.as_deref(), forward))
}

#[tauri::command]
pub async fn parse_kubectl(core: Core<'_>, line: String) -> Result<Forward> {
    core.parse_kubectl(&line)
}

#[tauri::command]
pub async fn suggest_local_port(core: Core<'_>, port: u16) -> Result<u16> {
    Ok(core.suggest_local_port(port))
}

#[tauri::command]
pub async fn list_contexts(core: Core<'_>) -> Result<Contexts> {
    core.list_contexts().await
}

#[tauri::command]
pub async fn list_namespaces(core: Core<'_>, context: Option<String>) -> Result<Vec<String>> {
    core.list_namespaces(context.as_deref()).await
}

#[tauri::command]
pub async fn list_targets(
    core: Core<'_>,
    context: Option<String>,
    namespace: Option<String>,
    kind: String,
) -> Result<Vec<TargetInfo>> {
    core.list_targets(context.as_deref(), namespace.as_deref(), &kind)
        .await
}

#[tauri::command]
pub async fn check_access(
    core: Core<'_>,
    context: Option<String>,
    namespace: Option<String>,
    kind: String,
) -> Result<Option<String>> {
    core.check_access(context.as_deref(), namespace.as_deref(), &kind)
        .await
}

/// What the cluster's objects declare (annotations of Ferry, kftray and k9s), each with
/// the saved forward that already does it; added through `save_forward`.
#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn discover_forwards(
    core: Core<'_>,
    context: Option<String>,
    namespace: Option<String>,
    all_namespaces: Option<bool>,
) -> Result<crate::discover::DiscoverReport> {
    core.discover_forwards(
        context.as_deref(),
        namespace.as_deref(),
        all_namespaces.unwrap_or(false),
    )
    .await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn test_connection(core: Core<'_>, name: String) -> Result<TestResult> {
    core.test_connection(&name).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn retry_forward(core: Core<'_>, name: String) -> Result<()> {
    core.retry_forward(&name).await
}

#[tauri::command]
pub async fn kubectl_command(core: Core<'_>, name: String) -> Result<String> {
    core.kubectl_command(&name).await
}

#[tauri::command]
pub async fn forward_log(core: Core<'_>, name: String) -> Result<Vec<LogLine>> {
    Ok(core.forward_log(&name))
}

#[tauri::command]
#[instrument(skip(core, profile), err(Debug))]
pub async fn save_profile(
    core: Core<'_>,
    original: Option<String>,
    profile: Profile,
) -> Result<()> {
    core.save_profile(original.as_deref(), profile).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn delete_profile(core: Core<'_>, name: String) -> Result<()> {
    core.delete_profile(&name).await
}

#[tauri::command]
#[instrument(skip(core, app, settings), err(Debug))]
pub async fn save_settings(app: AppHandle, core: Core<'_>, settings: Settings) -> Result<()> {
    // The entry first: when it cannot be changed, nothing is saved.
    let start_at_login = settings.start_at_login;
    let login_changed = core.settings().start_at_login != start_at_login;
    if login_changed {
        crate::login::set(&app, start_at_login)?;
    }
    let saved = core.save_settings(settings).await;
    if saved.is_err() && login_changed {
        let _ = crate::login::set(&app, !start_at_login);
    }
    saved
}

/// The window's preferences (theme, grouping, the list's last view), read here so that a
/// value they cannot hold is an `invalid` error on its field (`theme`, `view.sort`).
#[tauri::command]
#[instrument(skip(core, prefs), err(Debug))]
pub async fn save_prefs(core: Core<'_>, prefs: serde_json::Value) -> Result<()> {
    let prefs = crate::prefs::read_prefs(prefs)?;
    core.save_prefs(prefs).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn set_favourite(core: Core<'_>, name: String, favourite: bool) -> Result<()> {
    core.set_favourite(&name, favourite).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn start_demo(core: Core<'_>) -> Result<()> {
    core.start_demo().await
}

#[tauri::command]
#[instrument(skip(core, text), err(Debug))]
pub async fn import_config(
    core: Core<'_>,
    text: String,
    format: ImportFormat,
    dry_run: bool,
) -> Result<ImportReport> {
    core.import_config(&text, format, dry_run).await
}

#[tauri::command]
pub async fn dismiss_banner(core: Core<'_>) -> Result<()> {
    core.dismiss_banner();
    Ok(())
}

#[tauri::command]
pub async fn open_url(app: AppHandle, url: String) -> Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(AppError::invalid(
            "url",
            "only http and https addresses are opened",
        ));
    }
    use tauri_plugin_opener::OpenerExt as _;
    app.opener().open_url(url, None::<&str>).map_err(|e| {
        AppError::new(
            crate::error::ErrorCode::Invalid,
            format!("could not open a browser: {e}"),
        )
    })
}

/// Quits Ferry (the window's Quit and Ctrl+Q): stops every forward, then exits, also when
/// there is no tray to quit from.
#[tauri::command]
pub async fn quit(app: AppHandle, core: Core<'_>) -> Result<()> {
    core.shutdown().await;
    app.exit(0);
    Ok(())
}

/// The saved forwards as Ferry's YAML or kftray's JSON (Export in the window).
#[tauri::command]
pub async fn export_config(core: Core<'_>, format: ExportFormat) -> Result<ExportReport> {
    core.export_config(format)
}

// === HTTP inspection ===

/// The exchanges a forward's inspection keeps (`invalid` on `inspect` when it has none).
#[tauri::command]
pub async fn inspect_exchanges(core: Core<'_>, forward: String) -> Result<Exchanges> {
    core.inspect_exchanges(&forward).await
}

/// What `inspect_exchanges` answers, and every later exchange of the forward as
/// `ferry://exchange` (batched) while the window shows its HTTP tab. Replaces the follower
/// of any other forward.
#[tauri::command]
#[instrument(skip(app, core), err(Debug))]
pub async fn follow_exchanges(
    app: AppHandle,
    core: Core<'_>,
    forward: String,
) -> Result<Exchanges> {
    let sink: crate::inspect::Sink = Arc::new(move |batch| {
        let _ = app.emit(crate::inspect::EXCHANGE_EVENT, batch);
    });
    core.follow_exchanges(&forward, sink).await
}

/// Ends the follower (the HTTP tab closed).
#[tauri::command]
pub async fn unfollow_exchanges(core: Core<'_>) -> Result<()> {
    core.unfollow_exchanges();
    Ok(())
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn replay_exchange(core: Core<'_>, forward: String, id: u64) -> Result<Replayed> {
    core.replay_exchange(&forward, id).await
}

/// The curl line; the window copies it with the clipboard plugin.
#[tauri::command]
pub async fn exchange_curl(core: Core<'_>, forward: String, id: u64) -> Result<String> {
    core.exchange_curl(&forward, id).await
}

/// A HAR 1.2 document of the kept exchanges (all, or `ids`), for the window to save.
#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn export_har(
    core: Core<'_>,
    forward: String,
    ids: Option<Vec<u64>>,
) -> Result<HarExport> {
    core.export_har(&forward, ids.as_deref()).await
}

#[tauri::command]
#[instrument(skip(core), err(Debug))]
pub async fn clear_exchanges(core: Core<'_>, forward: String) -> Result<()> {
    core.clear_exchanges(&forward).await
}

// === updates ===

/// Asks the update server for a newer release now (no download): offered, current, or
/// unreachable (no error: the schedule tries again later). An offer is also sent as
/// `ferry://update`.
#[tauri::command]
#[instrument(skip(app, updates), err(Debug))]
pub async fn check_update(
    app: AppHandle,
    updates: State<'_, Arc<crate::update::Updates>>,
) -> Result<crate::update::Checked> {
    let checked = updates.check(&app).await?;
    if let crate::update::Checked::Offered(info) = &checked {
        let _ = app.emit(crate::update::UPDATE_EVENT, info);
    }
    Ok(checked)
}

/// The release on offer from the last check, if any (no request).
#[tauri::command]
pub async fn offered_update(
    updates: State<'_, Arc<crate::update::Updates>>,
) -> Result<Option<crate::update::UpdateInfo>> {
    Ok(updates.offered())
}

/// Downloads, verifies and installs the release on offer, then restarts Ferry. Refused
/// while forwards are up unless `confirm_cut`.
#[tauri::command]
#[instrument(skip(app, core, updates), err(Debug))]
pub async fn install_update(
    app: AppHandle,
    core: Core<'_>,
    updates: State<'_, Arc<crate::update::Updates>>,
    confirm_cut: bool,
) -> Result<()> {
    let active = core.listening_forwards().await;
    updates.install(&active, confirm_cut).await?;
    updates.stop();
    core.shutdown().await;
    app.restart()
}
