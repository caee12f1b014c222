//! A passive HTTP/1.x inspector for one forwarded connection (issue 19).
//!
//! The forward hands an [`Inspector`] a copy of every chunk it relays: client→pod with
//! [`Inspector::client_bytes`], pod→client with [`Inspector::server_bytes`], and calls
//! [`Inspector::finish`] when the connection ends. The inspector never sees a socket and never
//! changes a byte; it pairs requests with responses and hands back each [`Exchange`] once both
//! are complete. Traffic that is not HTTP/1.x, a connection that switches protocols, and a
//! stream that stops parsing are passed through unparsed from then on, and [`State`] says which
//! and why.
//!
//! - [`inspect`]: the per-connection state machine.
//! - [`exchange`]: what one request/response pair records (camelCase JSON for the UI).
//! - [`ring`]: the bounded store of a forward's recent exchanges.
//! - [`har`]: HAR 1.2 export.
//! - [`replay`]: `curl` lines and raw request bytes for sending an exchange again.
//! - [`clock`]: where the inspector reads the time (injectable for tests).
//!
//! **Invariant:** nothing here does I/O, spawns, or takes a lock, and no input makes it panic:
//! the worst a byte stream can do is send a connection to pass-through.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod body;
pub mod clock;
mod config;
pub mod exchange;
pub mod har;
mod head;
pub mod inspect;
pub mod replay;
pub mod ring;
#[cfg(test)]
mod testing;

pub use clock::{Clock, ManualClock, Stamp, SystemClock};
pub use config::{ALWAYS_REDACTED, Config, DEFAULT_MAX_HEAD, MAX_BODY_CAPTURE, REDACTED};
pub use exchange::{Exchange, Header, Message, Timings, Version};
pub use inspect::{Abandon, Inspector, NotHttp, State};
pub use replay::ReplayError;
pub use ring::Ring;
