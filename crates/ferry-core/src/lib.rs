//! Ferry's engine. The forward manager, cluster client pool, tunnels and health checks
//! arrive with the engine issue; this crate has no GUI dependency and never will.
