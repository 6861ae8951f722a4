//! The getsockopt trace file format, version 1.4.
//!
//! * [`raw`]: the `no_std` record the eBPF program hands to user space (shared layout).
//! * [`TraceWriter`]: writes a trace file (header, compressed event blocks, side tables, index).
//! * [`TraceReader`]: memory-maps a trace file, validates it, and iterates or seeks its events.
//! * [`StreamReader`]: reads a trace from a pipe as it arrives, block by block.
//!
//! The bytes on disk are specified in `FORMAT.md` at the repository root; this crate is one
//! implementation of that document, not the definition of it.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod raw;

#[cfg(feature = "std")]
mod aggregate;
#[cfg(feature = "std")]
mod block;
#[cfg(feature = "std")]
mod error;
#[cfg(feature = "std")]
mod event;
#[cfg(feature = "std")]
mod front;
#[cfg(feature = "std")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "std")]
mod meta;
#[cfg(feature = "std")]
mod reader;
#[cfg(feature = "std")]
mod section;
#[cfg(feature = "std")]
mod socket;
#[cfg(feature = "std")]
mod stream;
#[cfg(feature = "std")]
mod summary;
#[cfg(feature = "synth")]
pub mod synth;
#[cfg(feature = "synth")]
mod synth_socket;
#[cfg(feature = "std")]
mod wire;
#[cfg(feature = "std")]
mod writer;

#[cfg(feature = "std")]
pub use {
    aggregate::{AggregateEntry, AggregatePeriod, OVERFLOW_TGID, SAMPLE_ALL},
    block::{BlockEvents, DecodedBlock, Site, ThreadEntry},
    error::Error,
    event::{Event, OwnedEvent, comm_to_str},
    front::{BlockFront, FrontParts},
    meta::{
        CaptureHeader, CgroupV1Path, ContainerInfo, LossRecord, ProcessInfo, ProcessTable,
        SOCKET_IDENTITY_KEY, SocketCapture,
    },
    reader::{BlockInfo, Recovery, TraceReader},
    socket::{OwnedSocketRef, Socket, SocketRef},
    stream::{StreamEnd, StreamItem, StreamReader},
    summary::BlockSummary,
    writer::{TraceWriter, WriterOptions, WriterStats},
};

/// The format's major version. A reader refuses any other major version.
pub const VERSION_MAJOR: u16 = 1;
/// The format's minor version this crate writes. It reads every minor version of its major.
pub const VERSION_MINOR: u16 = 4;
/// The file name extension the tools use.
pub const FILE_EXTENSION: &str = "gsot";
