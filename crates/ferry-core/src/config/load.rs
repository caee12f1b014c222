//! Reading and writing configs as YAML or JSON. Every config read here is validated, so a
//! [`Config`] obtained from these functions is always valid.

use std::path::Path;

use serde::Deserialize;

use super::error::{ConfigError, Problem};
use super::lines::YamlLines;
use super::model::{CONFIG_VERSION, Config};
use super::validate::version_problem;

/// Just the version of a config, read leniently before the full parse, so that a file of
/// another version gets a clear "version not supported" error instead of a list of unknown
/// fields.
#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    version: Option<u64>,
}

impl Config {
    /// Parses and validates a YAML config. Validation problems carry the YAML line of the
    /// offending item or field when it can be found.
    pub fn from_yaml(source: &str) -> Result<Config, ConfigError> {
        if let Ok(VersionProbe {
            version: Some(version),
        }) = serde_norway::from_str(source)
            && version != u64::from(CONFIG_VERSION)
        {
            return Err(with_lines(
                ConfigError::Invalid(vec![version_problem(version)]),
                source,
            ));
        }
        let config: Config = serde_norway::from_str(source).map_err(yaml_error)?;
        config.validate().map_err(|e| with_lines(e, source))?;
        Ok(config)
    }

    /// Parses and validates a JSON config.
    pub fn from_json(source: &str) -> Result<Config, ConfigError> {
        if let Ok(VersionProbe {
            version: Some(version),
        }) = serde_json::from_str(source)
            && version != u64::from(CONFIG_VERSION)
        {
            return Err(ConfigError::Invalid(vec![version_problem(version)]));
        }
        let config: Config = serde_json::from_str(source).map_err(json_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a config file: JSON when its extension is `.json` (in any
    /// case), YAML otherwise.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        tracing::debug!(path = %path.display(), json = is_json, "loading config");
        if is_json {
            Config::from_json(&source)
        } else {
            Config::from_yaml(&source)
        }
    }

    /// Writes the config as YAML. Optional and defaulted fields are written only when they
    /// differ from their defaults; [`Config::from_yaml`] reads the result back unchanged.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_norway::to_string(self).map_err(|e| ConfigError::Serialize {
            message: e.to_string(),
        })
    }

    /// Writes the config as pretty-printed JSON; [`Config::from_json`] reads it back
    /// unchanged.
    pub fn to_json(&self) -> Result<String, ConfigError> {
        serde_json::to_string_pretty(self).map_err(|e| ConfigError::Serialize {
            message: e.to_string(),
        })
    }
}

/// Attaches YAML source lines to the problems of an [`ConfigError::Invalid`].
fn with_lines(error: ConfigError, source: &str) -> ConfigError {
    match error {
        ConfigError::Invalid(problems) => {
            let lines = YamlLines::scan(source);
            ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|p| Problem {
                        line: p.line.or_else(|| lines.line_of(&p.path)),
                        ..p
                    })
                    .collect(),
            )
        }
        other => other,
    }
}

/// Turns a YAML parse error into [`ConfigError::Parse`]. The parser's message already starts
/// with the field path (`forwards[0].local_port: ...`); its trailing location is moved into
/// `line` and `column`.
fn yaml_error(error: serde_norway::Error) -> ConfigError {
    let location = error.location().map(|l| (l.line(), l.column()));
    parse_error(error.to_string(), location)
}

/// Turns a JSON parse error into [`ConfigError::Parse`], moving its location into `line` and
/// `column`.
fn json_error(error: serde_json::Error) -> ConfigError {
    // serde_json reports line 0 when it has no position.
    let location = (error.line() > 0).then(|| (error.line(), error.column()));
    parse_error(error.to_string(), location)
}

/// Builds a [`ConfigError::Parse`], removing the ` at line L column C` suffix both parsers put
/// at the end of their messages, since the location is kept apart.
fn parse_error(mut message: String, location: Option<(usize, usize)>) -> ConfigError {
    if let Some((line, column)) = location {
        let suffix = format!(" at line {line} column {column}");
        if message.ends_with(&suffix) {
            message.truncate(message.len() - suffix.len());
        }
    }
    ConfigError::Parse {
        message,
        line: location.map(|(line, _)| line),
        column: location.map(|(_, column)| column),
    }
}
