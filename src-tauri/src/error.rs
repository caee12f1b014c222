//! The error every command returns: `{code, message, field}`, so the UI can branch on
//! `code` and show `message` as it is.

use ferry_core::EngineError;
use ferry_core::config::{ConfigError, ProblemKind};
use ferry_core::store::StoreError;
use serde::{Deserialize, Serialize};

/// What kind of failure, for the UI to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Bad input; `field` names the config field.
    Invalid,
    /// No forward or profile of that name.
    NotFound,
    /// A name or port already taken.
    Conflict,
    /// Kubeconfig, context or API trouble.
    Cluster,
    /// The store could not be read or written; nothing changed.
    Store,
    /// The engine is not running.
    Engine,
}

impl ErrorCode {
    /// The code of a config problem of this kind.
    pub fn of_problem(kind: ProblemKind) -> Self {
        match kind {
            ProblemKind::Conflict => ErrorCode::Conflict,
            ProblemKind::NotFound => ErrorCode::NotFound,
            ProblemKind::Invalid => ErrorCode::Invalid,
        }
    }
}

/// A failed command, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, ts_rs::TS)]
#[error("{message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional = nullable)]
    pub field: Option<String>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input in `field` (a config field path such as `local_port`).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError {
            code: ErrorCode::Invalid,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn cluster(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Cluster, message)
    }
}

impl From<ConfigError> for AppError {
    fn from(e: ConfigError) -> Self {
        match &e {
            ConfigError::Invalid(problems) if !problems.is_empty() => {
                let first = &problems[0];
                AppError {
                    code: ErrorCode::of_problem(first.kind),
                    message: problems
                        .iter()
                        .map(|p| p.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                    field: Some(first.path.clone()),
                }
            }
            _ => AppError::new(ErrorCode::Invalid, e.to_string()),
        }
    }
}

impl From<ferry_core::config::EditError> for AppError {
    fn from(e: ferry_core::config::EditError) -> Self {
        AppError {
            code: ErrorCode::of_problem(e.kind),
            message: e.message,
            field: e.field,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(e) => e.into(),
            other => AppError::new(
                ErrorCode::Store,
                format!("the change was not saved: {other}"),
            ),
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Config(e) => e.into(),
            EngineError::UnknownForward(name) => {
                AppError::not_found(format!("there is no forward named `{name}`"))
            }
            EngineError::Dial(message) => AppError::cluster(message),
            // The forward is off, or its config has no `inspect`: turned on there.
            EngineError::NotInspected(message) => AppError::invalid("inspect", message),
            other => AppError::new(ErrorCode::Engine, other.to_string()),
        }
    }
}
