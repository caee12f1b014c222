//! Ferry's engine. No GUI dependency: everything here is testable headless.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod tunnel;
