//! Ferry's configuration model. (The rest of the model arrives with the engine.)

mod target;

pub use target::{PortRef, Target};
