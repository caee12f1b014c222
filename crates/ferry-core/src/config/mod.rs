//! Ferry's configuration model: the forwards to keep alive and the profiles that group them.
//!
//! A config is a YAML or JSON document of format version 1:
//!
//! ```yaml
//! version: 1
//! forwards:
//!   - name: echo              # unique; the forward's stable id
//!     context: ferry-fake     # optional: kubeconfig context (default: current context)
//!     namespace: demo         # optional (default: the context's namespace, else "default")
//!     target: service/echo    # KIND/NAME
//!     port: 80                # remote port, by number or name
//!     local_port: 18080       # 0 picks a free port
//!     bind: 127.0.0.1         # optional, default 127.0.0.1
//!     pick: sticky            # sticky | round-robin | random, default sticky
//!     enabled: true           # default true
//! profiles:
//!   - name: dev
//!     forwards: [echo]
//! ```
//!
//! Unknown fields are errors. [`Config::from_yaml`], [`Config::from_json`] and
//! [`Config::from_file`] parse and validate, so a [`Config`] they return is always valid;
//! [`Config::validate`] reports every problem at once, each with its field path.
//! [`Config::diff`] compares two configs forward by forward for a reload.

pub mod declared;
mod diff;
mod edit;
mod error;
mod health;
pub mod import;
mod inspect;
mod lines;
mod load;
mod model;
mod target;
mod validate;

#[cfg(test)]
mod tests;

pub use diff::ConfigDiff;
pub use edit::EditError;
pub use error::{ConfigError, Problem, ProblemKind};
pub use health::{HealthSpec, HttpCheck, ProbeKind, StatusRange};
pub use inspect::{Inspect, MAX_BODY_KIB};
pub use model::{CONFIG_VERSION, Config, Forward, Pick, Profile};
pub use target::{PortRef, Target};
pub use validate::check_name;
