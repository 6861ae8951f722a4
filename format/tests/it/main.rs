//! The trace format's integration tests, one binary (as ripgrep's tests/integration).

mod common;

mod damage;
mod front;
mod roundtrip;
mod samples;
mod summary;
mod versions;
