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
