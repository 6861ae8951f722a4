//! Int-sized values next to their `optlen` take the recorder's in-place ring buffer path:
//! their value, `optlen` and truncation are recorded as on the general path, whichever of the
//! two lies first in memory.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;

use crate::common::*;

/// `getsockopt(SO_RCVBUF)` with `optlen` at `len_at` and the value at `val_at` of one buffer;
/// returns (the pointers, the value's bytes, `*optlen` after).
fn call_at(fd: i32, len_at: usize, val_at: usize) -> (u64, u64, Vec<u8>, i32) {
    let mut buf = [0u8; 32];
    buf[len_at..len_at + 4].copy_from_slice(&4u32.to_ne_bytes());
    let base = buf.as_mut_ptr();
    // SAFETY: both offsets leave 4 bytes inside `buf`, which outlives the call.
    let (len, val) = unsafe { (base.add(len_at), base.add(val_at)) };
    // SAFETY: as above.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            val.cast(),
            len.cast(),
        )
    };
    assert_eq!(r, 0);
    let out = i32::from_ne_bytes(buf[len_at..len_at + 4].try_into().unwrap());
    let value = buf[val_at..val_at + 4].to_vec();
    (val as u64, len as u64, value, out)
}

#[test]
fn small_values_on_either_side_of_optlen_and_truncated() {
    let Some(_kernel) = live_kernel("small_values_on_either_side_of_optlen_and_truncated") else {
        return;
    };
    let dir = temp_dir("small-values");
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = sock.as_raw_fd();
    let me = std::process::id().to_string();
    // (optlen offset, value offset): value after optlen, before it, adjacent and 12 apart.
    let layouts = [(0, 4), (4, 0), (0, 12), (12, 0), (8, 20)];
    for snaplen in ["512", "2"] {
        let out = dir.join(format!("small-{snaplen}.gsot"));
        let rec = start_recorder(&out, &["--pid", &me, "--snaplen", snaplen]);
        let calls: Vec<_> = layouts.iter().map(|&(l, v)| call_at(fd, l, v)).collect();
        let (_reader, events, log) = stop_and_read(rec);
        assert_eq!(events.len(), calls.len(), "{log}");
        let keep: usize = snaplen.parse::<usize>().unwrap().min(4);
        for ((optval, optlen, value, optlen_out), e) in calls.iter().zip(&events) {
            assert_eq!((e.optval_ptr, e.optlen_ptr), (*optval, *optlen));
            assert_eq!((e.optlen_in, e.optlen_out), (4, *optlen_out), "{e:?}");
            assert_eq!(e.value, value[..keep], "{e:?}");
            let truncated = e.flags & format::raw::FLAG_VALUE_TRUNCATED != 0;
            assert_eq!(truncated, keep < 4, "{e:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
