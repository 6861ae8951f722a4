//! One module per subcommand.

pub mod events;
pub mod info;
pub mod stats;
pub mod verify;
