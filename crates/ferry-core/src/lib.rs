//! Ferry's engine. No GUI dependency: everything here is testable headless.
//!
//! - [`config`]: the model, validation with field paths, diffing;
//! - [`cluster`]: kubeconfig discovery, one client per context, target resolution;
//! - [`tunnel`]: a byte stream to a pod port through the API server;
//! - [`forward`]: one forward's listener, connections and healing (crate-internal);
//! - [`engine`]: the façade the CLI and the app use;
//! - [`health`]: probes, the rise/fall state machine and the monitor;
//! - [`mdns`]: publishing `<alias>.local` names;
//! - [`events`]: statuses, snapshots and transition events;
//! - [`store`]: the JSON store the app and the CLI share, locked and written atomically;
//! - [`ports`]: which process holds a local port;
//! - [`clock`]: the one reading of the wall clock, for timestamps shown to people.

#![forbid(unsafe_code)]

mod backoff;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod engine;
pub mod events;
mod forward;
pub mod health;
pub mod inspect;
pub mod mdns;
mod pool;
pub mod ports;
pub mod sessions;
pub mod store;
pub mod tunnel;
pub mod wake;

pub use engine::{ApplyReport, Engine, EngineError, EngineOptions, Revision};
