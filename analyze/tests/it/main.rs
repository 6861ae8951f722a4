//! analyze's integration tests, one binary (as ripgrep's tests/integration): the real
//! `analyze` binary run on the committed samples and on generated traces.

mod common;

mod cli;
mod decode_real;
mod export;
mod golden;
mod plot;
mod replay;
mod slice;
mod summary;
