//! analyze's integration tests, one binary (as ripgrep's tests/integration): the real
//! `analyze` binary run on the committed samples and on generated traces.

// Tests make raw socket calls on fds and buffers they have just set up; the workspace asks a
// SAFETY comment of every unsafe block outside tests.
#![allow(clippy::undocumented_unsafe_blocks)]

mod common;

mod cli;
mod conformance;
mod containers;
mod decode_real;
mod export;
mod generate;
mod golden;
mod hostile_memory;
mod plot;
mod replay;
mod sampled;
mod slice;
mod sockets;
mod stream;
mod summary;
