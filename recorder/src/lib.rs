//! The recorder: traces getsockopt() calls with eBPF into trace files (`format`).
//!
//! The binary (`src/main.rs`) is a thin command line over [`record::Session`]; the tests reuse
//! [`workload`] to make calls whose every detail they know.

pub mod aggregate;
pub mod bpf;
pub mod btf;
pub mod cgroupfs;
pub mod docker;
pub mod output;
pub mod perfbuf;
pub mod privs;
pub mod record;
pub mod ring;
mod sink;
pub mod sock;
pub mod support;
pub mod sys;
pub mod workload;
