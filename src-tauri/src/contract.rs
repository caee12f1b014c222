//! The UI contract: TypeScript declarations of every type the shell sends or takes,
//! generated from the Rust types themselves (ts-rs, following their serde attributes).
//! `ui/src/lib/generated.ts` holds them; the `contract` test fails when that file is
//! stale and `FERRY_WRITE_TYPES=1` rewrites it.

use ts_rs::{Config as TsConfig, TS};

/// The file's contents: a header, then one `export type` per type, in a fixed order.
pub fn typescript() -> String {
    // Counters and timestamps are plain numbers in JSON (they stay far below 2^53).
    let cfg = TsConfig::new().with_large_int("number");
    let decls = [
        // What the config is made of (ferry-core).
        ferry_core::config::Config::decl(&cfg),
        ferry_core::config::Forward::decl(&cfg),
        ferry_core::config::Profile::decl(&cfg),
        ferry_core::config::Pick::decl(&cfg),
        ferry_core::config::HealthSpec::decl(&cfg),
        ferry_core::config::ProbeKind::decl(&cfg),
        ferry_core::config::HttpCheck::decl(&cfg),
        // What the engine reports (ferry-core).
        ferry_core::events::Snapshot::decl(&cfg),
        ferry_core::events::ForwardStatus::decl(&cfg),
        ferry_core::events::ForwardState::decl(&cfg),
        ferry_core::events::HealthState::decl(&cfg),
        ferry_core::events::Transition::decl(&cfg),
        ferry_core::events::IdleClosed::decl(&cfg),
        // The app's own shapes.
        crate::app::AppState::decl(&cfg),
        crate::app::KubeconfigInfo::decl(&cfg),
        crate::settings::Settings::decl(&cfg),
        crate::prefs::Prefs::decl(&cfg),
        crate::prefs::Theme::decl(&cfg),
        crate::prefs::GroupBy::decl(&cfg),
        crate::prefs::View::decl(&cfg),
        crate::prefs::SortKey::decl(&cfg),
        crate::prefs::StateFilter::decl(&cfg),
        crate::app::FieldProblem::decl(&cfg),
        crate::app::Contexts::decl(&cfg),
        crate::app::TargetInfo::decl(&cfg),
        crate::app::TargetPort::decl(&cfg),
        crate::app::TestResult::decl(&cfg),
        crate::discover::DiscoverReport::decl(&cfg),
        crate::discover::DeclaredForward::decl(&cfg),
        crate::discover::DeclaredSource::decl(&cfg),
        crate::discover::DeclaredNew::decl(&cfg),
        crate::app::ImportFormat::decl(&cfg),
        crate::app::ImportReport::decl(&cfg),
        crate::app::ImportEntry::decl(&cfg),
        crate::app::RenameReason::decl(&cfg),
        crate::app::ExportFormat::decl(&cfg),
        crate::app::ExportReport::decl(&cfg),
        crate::inspect::Exchanges::decl(&cfg),
        crate::inspect::ExchangeBatch::decl(&cfg),
        crate::inspect::Replayed::decl(&cfg),
        crate::inspect::HarExport::decl(&cfg),
        crate::logs::LogLine::decl(&cfg),
        crate::update::UpdateInfo::decl(&cfg),
        crate::update::Checked::decl(&cfg),
        crate::error::AppError::decl(&cfg),
        crate::error::ErrorCode::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from the shell's Rust types by `src-tauri/src/contract.rs`; do not edit.\n\
         // Rewrite with: FERRY_WRITE_TYPES=1 cargo nextest run -p ferry-app --test contract\n",
    );
    for decl in decls {
        out.push('\n');
        out.push_str("export ");
        out.push_str(&decl);
        out.push('\n');
    }
    out.push_str(EXCHANGE_TS);
    out
}

/// `ferry_http::Exchange` as its serde attributes write it (camelCase; the body as base64).
/// ferry-http does not depend on ts-rs, so these are written here; the `inspect` test
/// checks a real exchange's keys against them.
pub const EXCHANGE_TS: &str = r#"
export type Exchange = { id: number, startedMs: number, method: string, target: string, status: number | null, reason: string | null, durationMs: number | null, timings: Timings | null, request: Message, response: Message | null, interim: Array<number>, upgrade: string | null, incomplete: boolean, };

export type Message = { version: "HTTP/1.0" | "HTTP/1.1", headers: Array<Header>, trailers: Array<Header>, headSize: number, bodySize: number, contentSize: number, bodyBase64: string, truncated: boolean, complete: boolean, };

export type Header = { name: string, value: string, redacted?: boolean, };

export type Timings = { sendMs: number, waitMs: number, receiveMs: number, };
"#;

/// Runs one command as the window would send it (`cmd` and its camelCase arguments), for
/// the contract test that holds the UI's fake shell to this one. The same calls the Tauri
/// commands make; commands that need the desktop (login entry, browser, quit) are not here.
pub async fn call(
    core: &crate::app::AppCore,
    cmd: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, crate::error::AppError> {
    use crate::error::AppError;
    use serde::de::DeserializeOwned;
    use serde_json::Value;
    fn arg<T: DeserializeOwned>(args: &Value, key: &str) -> Result<T, AppError> {
        serde_json::from_value(args.get(key).cloned().unwrap_or(Value::Null))
            .map_err(|e| AppError::invalid(key, format!("{key} cannot be read: {e}")))
    }
    fn answer<T: serde::Serialize>(value: T) -> Result<Value, AppError> {
        serde_json::to_value(value)
            .map_err(|e| AppError::new(crate::error::ErrorCode::Engine, format!("no answer: {e}")))
    }
    let name = || arg::<String>(&args, "name");
    let original = || arg::<Option<String>>(&args, "original");
    let forward = || arg::<String>(&args, "forward");
    match cmd {
        "get_state" => answer(core.state().await),
        "list_contexts" => answer(core.list_contexts().await?),
        "check_access" => answer(
            core.check_access(
                arg::<Option<String>>(&args, "context")?.as_deref(),
                arg::<Option<String>>(&args, "namespace")?.as_deref(),
                &arg::<String>(&args, "kind")?,
            )
            .await?,
        ),
        "discover_forwards" => answer(
            core.discover_forwards(
                arg::<Option<String>>(&args, "context")?.as_deref(),
                arg::<Option<String>>(&args, "namespace")?.as_deref(),
                arg::<Option<bool>>(&args, "allNamespaces")?.unwrap_or(false),
            )
            .await?,
        ),
        "set_enabled" => answer(core.set_enabled(&name()?, arg(&args, "enabled")?).await?),
        "validate_forward" => {
            answer(core.validate_forward_value(original()?.as_deref(), arg(&args, "forward")?))
        }
        "save_forward" => {
            let forward = crate::app::read_forward(arg(&args, "forward")?)?;
            answer(core.save_forward(original()?.as_deref(), forward).await?)
        }
        "delete_forward" => answer(core.delete_forward(&name()?).await?),
        "parse_kubectl" => answer(core.parse_kubectl(&arg::<String>(&args, "line")?)?),
        "kubectl_command" => answer(core.kubectl_command(&name()?).await?),
        "retry_forward" => answer(core.retry_forward(&name()?).await?),
        "save_profile" => answer(
            core.save_profile(original()?.as_deref(), arg(&args, "profile")?)
                .await?,
        ),
        "delete_profile" => answer(core.delete_profile(&name()?).await?),
        "save_prefs" => {
            let prefs = crate::prefs::read_prefs(arg(&args, "prefs")?)?;
            answer(core.save_prefs(prefs).await?)
        }
        "set_favourite" => answer(
            core.set_favourite(&name()?, arg(&args, "favourite")?)
                .await?,
        ),
        "dismiss_banner" => {
            core.dismiss_banner();
            answer(())
        }
        "export_config" => answer(core.export_config(arg(&args, "format")?)?),
        "import_config" => answer(
            core.import_config(
                &arg::<String>(&args, "text")?,
                arg(&args, "format")?,
                arg(&args, "dryRun")?,
            )
            .await?,
        ),
        "inspect_exchanges" => answer(core.inspect_exchanges(&forward()?).await?),
        "replay_exchange" => answer(core.replay_exchange(&forward()?, arg(&args, "id")?).await?),
        "exchange_curl" => answer(core.exchange_curl(&forward()?, arg(&args, "id")?).await?),
        "export_har" => answer(
            core.export_har(
                &forward()?,
                arg::<Option<Vec<u64>>>(&args, "ids")?.as_deref(),
            )
            .await?,
        ),
        "clear_exchanges" => answer(core.clear_exchanges(&forward()?).await?),
        other => Err(AppError::invalid("cmd", format!("no command {other}"))),
    }
}

/// An answer reduced to what the contract holds both shells to: for an error its code and
/// field; for a value its shape (the type of every leaf, the keys of every object, and
/// one entry per distinct shape in an array), or, when `exact`, the value itself without
/// its `message`s (each shell words those itself).
pub fn normalize(
    answer: &Result<serde_json::Value, crate::error::AppError>,
    exact: bool,
) -> serde_json::Value {
    use serde_json::{Value, json};
    fn shape(v: &Value) -> Value {
        match v {
            Value::Null => json!("null"),
            Value::Bool(_) => json!("boolean"),
            Value::Number(_) => json!("number"),
            Value::String(_) => json!("string"),
            Value::Array(items) => {
                let mut shapes: Vec<Value> = Vec::new();
                for s in items.iter().map(shape) {
                    if !shapes.contains(&s) {
                        shapes.push(s);
                    }
                }
                shapes.sort_by_key(|s| s.to_string());
                Value::Array(shapes)
            }
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
            }
        }
    }
    fn wordless(v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.iter().map(wordless).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "message")
                    .map(|(k, v)| (k.clone(), wordless(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    match answer {
        Ok(v) if exact => json!({ "ok": wordless(v) }),
        Ok(v) => json!({ "ok": shape(v) }),
        Err(e) => json!({ "error": { "code": e.code, "field": e.field } }),
    }
}
