//! Errors of the configuration model: reading, parsing and validating a config.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// One rule a config breaks, found by [`Config::validate`](super::Config::validate).
///
/// Its Display reads `path: message`, followed by ` (line L)` when the line is known, e.g.
/// `forwards[2].local_port: 70000 is not a port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the problem is, e.g. `forwards[2].local_port` or `profiles[0].forwards[1]`.
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
    /// The 1-based line of the source the problem points at, when it is known.
    pub line: Option<usize>,
    /// What sort of problem it is, so that callers never read the message to tell.
    pub kind: ProblemKind,
}

/// What sort of rule a [`Problem`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProblemKind {
    /// The value itself is wrong.
    #[default]
    Invalid,
    /// The value is fine, but another forward or profile has it already (a name, a local
    /// address, an alias): choosing another value, or changing the other one, fixes it.
    Conflict,
    /// The value names something that does not exist (a profile's forward).
    NotFound,
}

impl Problem {
    /// A problem at `path`, with no known source line.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
            line: None,
            kind: ProblemKind::Invalid,
        }
    }

    /// A [`ProblemKind::Conflict`] at `path`.
    pub fn conflict(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::Conflict,
            ..Problem::new(path, message)
        }
    }

    /// A [`ProblemKind::NotFound`] at `path`.
    pub fn not_found(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::NotFound,
            ..Problem::new(path, message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong while loading, checking or using a config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },

    /// The text is not a well-formed config: bad YAML or JSON syntax, an unknown field, a
    /// missing field, or a value of the wrong type or out of range.
    #[error("cannot parse config{}: {message}", location(*.line, *.column))]
    Parse {
        /// What the parser reported, without the location (which is in `line`/`column`).
        message: String,
        /// The 1-based line of the error, when the parser knows it.
        line: Option<usize>,
        /// The 1-based column of the error, when the parser knows it.
        column: Option<usize>,
    },

    /// The config parsed, but breaks one or more rules; every problem found is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),

    /// A profile was asked for by a name that no profile has.
    #[error("{}", unknown_profile(.name, .available))]
    UnknownProfile {
        /// The name that was asked for.
        name: String,
        /// The names of the profiles the config does have, in config order.
        available: Vec<String>,
    },

    /// The config could not be written out as YAML or JSON.
    #[error("cannot serialize config: {message}")]
    Serialize {
        /// What the serializer reported.
        message: String,
    },
}

impl ConfigError {
    /// The validation problems, when this is an [`ConfigError::Invalid`]; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// Formats the ` at line L, column C` part of a parse error, or nothing when it is unknown.
fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

/// Formats a list of problems, one per line, under a header that counts them.
fn list(problems: &[Problem]) -> String {
    let mut out = match problems.len() {
        1 => "invalid config (1 problem):".to_string(),
        n => format!("invalid config ({n} problems):"),
    };
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

/// Formats the error for a profile name that does not exist, naming the ones that do.
fn unknown_profile(name: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("no profile is named {name:?}: the config defines no profiles")
    } else {
        let names: Vec<String> = available.iter().map(|n| format!("{n:?}")).collect();
        format!(
            "no profile is named {name:?}; available profiles: {}",
            names.join(", ")
        )
    }
}
