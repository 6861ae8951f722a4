//! The record the eBPF program hands to user space, one per completed getsockopt call.
//!
//! This module is `no_std` and dependency-free so `recorder-ebpf` can use the very same type.
//! The layout is `#[repr(C)]` with every padding byte spelled out as a field, so the bytes the
//! kernel writes and the bytes user space reads agree on every compiler; the size is asserted
//! below. It is *not* the on-disk format (see `FORMAT.md`): the recorder converts it into an
//! [`Event`](crate::Event) before writing.

use core::mem::offset_of;

/// Largest option value the eBPF program can copy per call (`--snaplen` is capped to this).
/// A power of two so the program can bound the copy length with a mask the verifier accepts.
pub const MAX_SNAPLEN: usize = 2048;

/// The snap length used when the user does not give one. Larger than `tcp_info`
/// (280 bytes on Linux 6.18, growing over time) so a whole `TCP_INFO` value fits.
pub const DEFAULT_SNAPLEN: u32 = 512;

/// Length of `comm` as the kernel keeps it (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// `flags` bit: the kernel returned more value bytes than `--snaplen` let us copy.
pub const FLAG_VALUE_TRUNCATED: u16 = 1 << 0;
/// `flags` bit: the value bytes could not be read from user memory (bad `optval` pointer).
pub const FLAG_VALUE_UNREADABLE: u16 = 1 << 1;
/// `flags` bit: `*optlen` could not be read at entry (bad `optlen` pointer); `optlen_in` is 0.
pub const FLAG_OPTLEN_IN_UNREADABLE: u16 = 1 << 2;
/// `flags` bit: `*optlen` could not be read at exit; `optlen_out` is 0.
pub const FLAG_OPTLEN_OUT_UNREADABLE: u16 = 1 << 3;
/// All flag bits version 1.0 defines. Readers keep unknown bits as they are.
pub const KNOWN_FLAGS: u16 = FLAG_VALUE_TRUNCATED
    | FLAG_VALUE_UNREADABLE
    | FLAG_OPTLEN_IN_UNREADABLE
    | FLAG_OPTLEN_OUT_UNREADABLE;

/// Fixed part of a record. The option value bytes follow it (see [`RawEvent`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawEventHeader {
    /// `bpf_ktime_get_boot_ns()` at syscall entry.
    pub ts_enter_ns: u64,
    /// Exit time minus entry time, in ns.
    pub duration_ns: u64,
    /// cgroup v2 id of the calling task.
    pub cgroup_id: u64,
    /// The `optval` argument as passed (a user-space address).
    pub optval_ptr: u64,
    /// The `optlen` argument as passed (a user-space address).
    pub optlen_ptr: u64,
    /// Process id (the kernel's tgid).
    pub tgid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// Parent's tgid.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// CPU the call exited on.
    pub cpu: u32,
    /// Inode number of the task's pid namespace.
    pub pid_ns: u32,
    /// Inode number of the task's mount namespace.
    pub mnt_ns: u32,
    pub fd: i32,
    pub level: i32,
    pub optname: i32,
    /// `*optlen` at entry: the buffer size the caller offered.
    pub optlen_in: i32,
    /// `*optlen` at exit: the value size the kernel reported.
    pub optlen_out: i32,
    /// The syscall's return value: 0 or `-errno`.
    pub ret: i32,
    /// How many bytes of `value` are valid.
    pub value_len: u16,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// Explicit padding; always zero.
    pub _pad0: u32,
    /// The task's `comm`, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The socket behind `fd` at syscall entry.
    pub socket: RawSocket,
}

/// [`RawSocket::status`]: the recorder captured no socket identity (`--no-sockets`, no BTF).
pub const SOCK_NOT_RECORDED: u8 = 0;
/// [`RawSocket::status`]: `fd` was not an open socket at entry (EBADF or ENOTSOCK); every
/// other field is zero.
pub const SOCK_NONE: u8 = 1;
/// [`RawSocket::status`]: the fields describe the socket `fd` referred to at entry.
pub const SOCK_PRESENT: u8 = 2;

/// Longest AF_UNIX name the kernel keeps (`sizeof(sun_path)`).
pub const UNIX_NAME_MAX: usize = 108;
/// [`RawEvent::names`]' size.
pub const NAMES_ROOM: usize = 256;
const _: () = assert!(NAMES_ROOM.is_power_of_two() && NAMES_ROOM >= 2 * UNIX_NAME_MAX);

/// The socket identity the eBPF program read from the kernel at syscall entry, as the kernel
/// keeps it; user space turns it into a `format::Socket`. AF_UNIX names do not fit a fixed
/// slot cheaply: the record carries `unix_path_len + unix_peer_len` name bytes after the
/// option value (bound name first, then the peer's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSocket {
    /// `skc_rcv_saddr` (IPv4, first 4 bytes) or `skc_v6_rcv_saddr`, network order.
    pub local_addr: [u8; 16],
    /// `skc_daddr` or `skc_v6_daddr`, network order.
    pub remote_addr: [u8; 16],
    /// Socket inode number (`socket:[N]`).
    pub ino: u64,
    /// Inode number of the socket's network namespace.
    pub netns: u32,
    /// AF_NETLINK: `netlink_sock.portid`.
    pub netlink_portid: u32,
    /// `skc_bound_dev_if`: the interface a link-local IPv6 address is scoped to.
    pub bound_dev_if: u32,
    /// `skc_family` (AF_*).
    pub family: u16,
    /// `sk_type` (SOCK_*).
    pub sock_type: u16,
    /// `sk_protocol`; for AF_PACKET (whose `sk_protocol` is 0) `packet_sock.num`, the
    /// ethertype, network order as the kernel keeps it.
    pub protocol: u16,
    /// `skc_num`: local port, host order.
    pub local_port: u16,
    /// `skc_dport`: remote port, network order as the kernel keeps it.
    pub remote_port_be: u16,
    /// `SOCK_*` above.
    pub status: u8,
    /// `skc_state` (TCP_* numbering, also used by UDP and AF_UNIX).
    pub state: u8,
    /// Bytes of the bound AF_UNIX name after the value (abstract names start with NUL).
    pub unix_path_len: u8,
    /// Bytes of the peer's bound AF_UNIX name after those.
    pub unix_peer_len: u8,
    pub _pad: [u8; 6],
}

/// A whole record as the eBPF program builds it in a per-CPU scratch map. Only the first
/// `size_of::<RawEventHeader>() + value_len` bytes are sent through the ring buffer, plus the
/// AF_UNIX names (see [`RawSocket`]), which follow the value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawEvent {
    pub header: RawEventHeader,
    pub value: [u8; MAX_SNAPLEN],
    /// Room for the AF_UNIX names (at most `2 * UNIX_NAME_MAX`) after a value of up to
    /// `MAX_SNAPLEN` bytes; a power of two so the program can bound the copy with a mask.
    pub names: [u8; NAMES_ROOM],
}

/// Size of [`RawEventHeader`] in bytes: the smallest record the ring buffer carries.
pub const RAW_HEADER_SIZE: usize = core::mem::size_of::<RawEventHeader>();

const _: () = assert!(core::mem::size_of::<RawSocket>() == 72);
const _: () = assert!(RAW_HEADER_SIZE == 120 + 72);
const _: () = assert!(core::mem::align_of::<RawEventHeader>() == 8);
const _: () =
    assert!(core::mem::size_of::<RawEvent>() == RAW_HEADER_SIZE + MAX_SNAPLEN + NAMES_ROOM);
const _: () = assert!(MAX_SNAPLEN.is_power_of_two());

impl RawEventHeader {
    /// Reads a header from the start of `bytes` (as delivered by the ring buffer), or `None`
    /// if `bytes` is too short. Explicit little-endian field reads, so no alignment is needed.
    #[inline]
    pub fn read_from(bytes: &[u8]) -> Option<RawEventHeader> {
        let b: &[u8; RAW_HEADER_SIZE] = bytes.get(..RAW_HEADER_SIZE)?.try_into().ok()?;
        let u64_at = |o: usize| u64::from_le_bytes(bytes_at(b, o));
        let u32_at = |o: usize| u32::from_le_bytes(bytes_at(b, o));
        let i32_at = |o: usize| u32_at(o) as i32;
        let u16_at = |o: usize| u16::from_le_bytes(bytes_at(b, o));
        let comm = bytes_at(b, offset_of!(RawEventHeader, comm));
        Some(RawEventHeader {
            ts_enter_ns: u64_at(offset_of!(RawEventHeader, ts_enter_ns)),
            duration_ns: u64_at(offset_of!(RawEventHeader, duration_ns)),
            cgroup_id: u64_at(offset_of!(RawEventHeader, cgroup_id)),
            optval_ptr: u64_at(offset_of!(RawEventHeader, optval_ptr)),
            optlen_ptr: u64_at(offset_of!(RawEventHeader, optlen_ptr)),
            tgid: u32_at(offset_of!(RawEventHeader, tgid)),
            tid: u32_at(offset_of!(RawEventHeader, tid)),
            ppid: u32_at(offset_of!(RawEventHeader, ppid)),
            uid: u32_at(offset_of!(RawEventHeader, uid)),
            gid: u32_at(offset_of!(RawEventHeader, gid)),
            cpu: u32_at(offset_of!(RawEventHeader, cpu)),
            pid_ns: u32_at(offset_of!(RawEventHeader, pid_ns)),
            mnt_ns: u32_at(offset_of!(RawEventHeader, mnt_ns)),
            fd: i32_at(offset_of!(RawEventHeader, fd)),
            level: i32_at(offset_of!(RawEventHeader, level)),
            optname: i32_at(offset_of!(RawEventHeader, optname)),
            optlen_in: i32_at(offset_of!(RawEventHeader, optlen_in)),
            optlen_out: i32_at(offset_of!(RawEventHeader, optlen_out)),
            ret: i32_at(offset_of!(RawEventHeader, ret)),
            value_len: u16_at(offset_of!(RawEventHeader, value_len)),
            flags: u16_at(offset_of!(RawEventHeader, flags)),
            _pad0: u32_at(offset_of!(RawEventHeader, _pad0)),
            comm,
            socket: RawSocket::read_at(b, offset_of!(RawEventHeader, socket)),
        })
    }
}

impl RawSocket {
    #[inline]
    fn read_at(b: &[u8; RAW_HEADER_SIZE], base: usize) -> RawSocket {
        let u64_at = |o: usize| u64::from_le_bytes(bytes_at(b, base + o));
        let u32_at = |o: usize| u32::from_le_bytes(bytes_at(b, base + o));
        let u16_at = |o: usize| u16::from_le_bytes(bytes_at(b, base + o));
        let u8_at = |o: usize| b[base + o];
        RawSocket {
            local_addr: bytes_at(b, base + offset_of!(RawSocket, local_addr)),
            remote_addr: bytes_at(b, base + offset_of!(RawSocket, remote_addr)),
            ino: u64_at(offset_of!(RawSocket, ino)),
            netns: u32_at(offset_of!(RawSocket, netns)),
            netlink_portid: u32_at(offset_of!(RawSocket, netlink_portid)),
            bound_dev_if: u32_at(offset_of!(RawSocket, bound_dev_if)),
            family: u16_at(offset_of!(RawSocket, family)),
            sock_type: u16_at(offset_of!(RawSocket, sock_type)),
            protocol: u16_at(offset_of!(RawSocket, protocol)),
            local_port: u16_at(offset_of!(RawSocket, local_port)),
            remote_port_be: u16_at(offset_of!(RawSocket, remote_port_be)),
            status: u8_at(offset_of!(RawSocket, status)),
            state: u8_at(offset_of!(RawSocket, state)),
            unix_path_len: u8_at(offset_of!(RawSocket, unix_path_len)),
            unix_peer_len: u8_at(offset_of!(RawSocket, unix_peer_len)),
            _pad: bytes_at(b, base + offset_of!(RawSocket, _pad)),
        }
    }

    /// Bytes of AF_UNIX names the record carries after its value.
    pub fn names_len(&self) -> usize {
        usize::from(self.unix_path_len) + usize::from(self.unix_peer_len)
    }
}

/// The `N` bytes of a header at offset `o` (a field's offset, so always inside it). One
/// slice copy, which folds into a load at a constant offset: a byte-by-byte `array::from_fn`
/// was not inlined and cost the recorder's writer thread about a tenth of its time.
#[inline(always)]
fn bytes_at<const N: usize>(b: &[u8; RAW_HEADER_SIZE], o: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&b[o..o + N]);
    out
}

/// Buckets of an aggregate record's latency histogram (FORMAT.md 5.3, since 1.4): 0 to 7 ns
/// one each, then 8 per power of two up to 2^40 ns (about 18 minutes), the last bucket also
/// holding every longer duration. Coarse (a bucket is 1/8 of a power of two wide, so its
/// midpoint is within 1/16 of any duration in it) because the kernel keeps one histogram per
/// key and CPU, and a per-CPU map value is at most 32 KiB.
pub const AGG_BUCKETS: usize = 8 + 37 * 8;

/// The aggregate histogram bucket of a duration in ns. No loop and no `leading_zeros` (a BPF
/// build has no count-leading-zeros instruction): a binary search for the top bit.
#[inline(always)]
pub fn agg_bucket(d: u64) -> u32 {
    if d < 8 {
        return d as u32;
    }
    if d >= 1 << 40 {
        return AGG_BUCKETS as u32 - 1;
    }
    let mut top = 0u32;
    let mut v = d;
    if v >> 32 != 0 {
        v >>= 32;
        top += 32;
    }
    if v >> 16 != 0 {
        v >>= 16;
        top += 16;
    }
    if v >> 8 != 0 {
        v >>= 8;
        top += 8;
    }
    if v >> 4 != 0 {
        v >>= 4;
        top += 4;
    }
    if v >> 2 != 0 {
        v >>= 2;
        top += 2;
    }
    if v >> 1 != 0 {
        top += 1;
    }
    // top >= 3: the three bits below the top one pick one of 8 sub-buckets.
    let sub = ((d >> (top - 3)) & 7) as u32;
    8 + (top - 3) * 8 + sub
}

/// The durations bucket `i` holds: `low..high` (`high` exclusive; the last bucket's is
/// `u64::MAX`, as it holds every longer duration too).
pub fn agg_bucket_range(i: u32) -> (u64, u64) {
    if i < 8 {
        return (i as u64, i as u64 + 1);
    }
    let j = (i - 8) as u64;
    let shift = j / 8;
    let sub = 8 + j % 8;
    let high = if i as usize >= AGG_BUCKETS - 1 {
        u64::MAX
    } else {
        (sub + 1) << shift
    };
    (sub << shift, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_offsets_match_the_documented_layout() {
        let h = RawEventHeader::default();
        let base = &h as *const _ as usize;
        let off = |p: *const u8| p as usize - base;
        assert_eq!(off(&h.tgid as *const _ as *const u8), 40);
        assert_eq!(off(&h.fd as *const _ as *const u8), 72);
        assert_eq!(off(&h.value_len as *const _ as *const u8), 96);
        assert_eq!(off(h.comm.as_ptr()), 104);
    }

    #[test]
    fn read_from_is_the_inverse_of_the_in_memory_layout() {
        let h = RawEventHeader {
            ts_enter_ns: 0x0102_0304_0506_0708,
            duration_ns: 5,
            cgroup_id: 77,
            optval_ptr: 0x7ffd_0000_1000,
            optlen_ptr: 0x7ffd_0000_2000,
            tgid: 10,
            tid: 11,
            ppid: 1,
            uid: 1000,
            gid: 1001,
            cpu: 3,
            pid_ns: 4026531836,
            mnt_ns: 4026531841,
            fd: -1,
            level: 6,
            optname: 11,
            optlen_in: 512,
            optlen_out: 280,
            ret: -22,
            value_len: 280,
            flags: FLAG_VALUE_TRUNCATED,
            _pad0: 0,
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            socket: RawSocket {
                local_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                remote_addr: [10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                ino: 123_456,
                netns: 4026531840,
                netlink_portid: 7,
                bound_dev_if: 2,
                family: 2,
                sock_type: 1,
                protocol: 6,
                local_port: 40312,
                remote_port_be: 5432u16.to_be(),
                status: SOCK_PRESENT,
                state: 1,
                unix_path_len: 3,
                unix_peer_len: 4,
                _pad: [0; 6],
            },
        };
        // SAFETY: RawEventHeader is repr(C) plain data without implicit padding.
        let bytes: [u8; RAW_HEADER_SIZE] = unsafe { core::mem::transmute(h) };
        assert_eq!(RawEventHeader::read_from(&bytes), Some(h));
        assert_eq!(
            RawEventHeader::read_from(&bytes[..RAW_HEADER_SIZE - 1]),
            None
        );
    }
}
