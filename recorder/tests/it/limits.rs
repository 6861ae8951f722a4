//! Limits the recorder keeps whatever it is asked: refused at start with one clear line.

use std::process::Command;

use crate::common::*;

/// The ring buffer counts twice in resident memory (its pages are mapped twice), so a ring
/// over 16M would break the 64 MiB bound: refused before anything is loaded or created.
#[test]
fn a_ring_buffer_over_16m_is_refused_naming_the_bound() {
    let dir = temp_dir("ring-limit");
    let out = dir.join("x.gsot");
    let (status, err) = run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_recorder"))
            .args(["record", "--ringbuf-size", "32M", "-o"])
            .arg(&out),
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        "recorder: error: --ringbuf-size 33554432 is over the largest, 16777216 (16M): the ring \
         buffer's pages are mapped twice and count twice in resident memory, which a larger one \
         would put over the recorder's 64 MiB bound\n"
    );
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
