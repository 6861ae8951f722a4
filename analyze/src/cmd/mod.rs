//! One module per subcommand.

pub mod events;
#[cfg(feature = "export")]
pub mod export;
pub mod generate;
pub mod info;
pub mod plot;
pub mod replay;
pub mod slice;
pub mod stats;
pub mod verify;
