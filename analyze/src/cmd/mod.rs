//! One module per subcommand.

pub mod events;
pub mod export;
pub mod info;
pub mod stats;
pub mod verify;
