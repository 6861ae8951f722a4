//! One recorded getsockopt call, as user space sees it.

use crate::raw::{COMM_LEN, RawEventHeader};
use crate::socket::{OwnedSocketRef, SocketRef};

/// One getsockopt call. `value` borrows from wherever the event came from (a ring buffer
/// record, or a decoded block), so producing or consuming an event allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Boot-time ns (`CLOCK_BOOTTIME`) at syscall entry. Add the header's
    /// `boot_to_wall_ns` for wall-clock time.
    pub ts_ns: u64,
    /// Entry to exit, ns.
    pub duration_ns: u64,
    pub cpu: u32,
    pub tgid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// NUL-padded task name.
    pub comm: [u8; COMM_LEN],
    pub cgroup_id: u64,
    pub pid_ns: u32,
    pub mnt_ns: u32,
    pub fd: i32,
    pub level: i32,
    pub optname: i32,
    pub optval_ptr: u64,
    pub optlen_ptr: u64,
    /// `*optlen` as the caller passed it.
    pub optlen_in: i32,
    /// `*optlen` as the kernel returned it.
    pub optlen_out: i32,
    /// 0 or `-errno`.
    pub ret: i32,
    /// `raw::FLAG_*` bits.
    pub flags: u16,
    /// The option value bytes captured (at most the snap length).
    pub value: &'a [u8],
    /// The socket behind `fd` at syscall entry, if the capture recorded it.
    pub socket: SocketRef<'a>,
}

impl<'a> Event<'a> {
    /// Builds an event from a ring buffer record's header and the value bytes that follow it.
    #[inline]
    pub fn from_raw(h: &RawEventHeader, value: &'a [u8]) -> Event<'a> {
        Event {
            ts_ns: h.ts_enter_ns,
            duration_ns: h.duration_ns,
            cpu: h.cpu,
            tgid: h.tgid,
            tid: h.tid,
            ppid: h.ppid,
            uid: h.uid,
            gid: h.gid,
            comm: h.comm,
            cgroup_id: h.cgroup_id,
            pid_ns: h.pid_ns,
            mnt_ns: h.mnt_ns,
            fd: h.fd,
            level: h.level,
            optname: h.optname,
            optval_ptr: h.optval_ptr,
            optlen_ptr: h.optlen_ptr,
            optlen_in: h.optlen_in,
            optlen_out: h.optlen_out,
            ret: h.ret,
            flags: h.flags,
            value,
            socket: SocketRef::NotRecorded,
        }
    }

    /// The task name without its NUL padding (lossy UTF-8).
    pub fn comm_str(&self) -> std::borrow::Cow<'_, str> {
        comm_to_str(&self.comm)
    }

    /// The errno the call failed with, if it failed.
    pub fn errno(&self) -> Option<i32> {
        (self.ret < 0).then_some(-self.ret)
    }

    /// Copies the event into an owned value.
    pub fn to_owned_event(&self) -> OwnedEvent {
        OwnedEvent {
            value: self.value.to_vec(),
            socket: self.socket.to_owned_ref(),
            ..OwnedEvent::from_fields(self)
        }
    }
}

/// The bytes of a NUL-padded `comm` up to the first NUL, as (lossy) UTF-8.
pub fn comm_to_str(comm: &[u8; COMM_LEN]) -> std::borrow::Cow<'_, str> {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&comm[..end])
}

/// An [`Event`] that owns its value bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedEvent {
    pub ts_ns: u64,
    pub duration_ns: u64,
    pub cpu: u32,
    pub tgid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
    pub cgroup_id: u64,
    pub pid_ns: u32,
    pub mnt_ns: u32,
    pub fd: i32,
    pub level: i32,
    pub optname: i32,
    pub optval_ptr: u64,
    pub optlen_ptr: u64,
    pub optlen_in: i32,
    pub optlen_out: i32,
    pub ret: i32,
    pub flags: u16,
    pub value: Vec<u8>,
    pub socket: OwnedSocketRef,
}

impl OwnedEvent {
    fn from_fields(e: &Event<'_>) -> OwnedEvent {
        OwnedEvent {
            ts_ns: e.ts_ns,
            duration_ns: e.duration_ns,
            cpu: e.cpu,
            tgid: e.tgid,
            tid: e.tid,
            ppid: e.ppid,
            uid: e.uid,
            gid: e.gid,
            comm: e.comm,
            cgroup_id: e.cgroup_id,
            pid_ns: e.pid_ns,
            mnt_ns: e.mnt_ns,
            fd: e.fd,
            level: e.level,
            optname: e.optname,
            optval_ptr: e.optval_ptr,
            optlen_ptr: e.optlen_ptr,
            optlen_in: e.optlen_in,
            optlen_out: e.optlen_out,
            ret: e.ret,
            flags: e.flags,
            value: Vec::new(),
            socket: OwnedSocketRef::NotRecorded,
        }
    }

    /// Borrows this event as an [`Event`].
    pub fn as_event(&self) -> Event<'_> {
        Event {
            ts_ns: self.ts_ns,
            duration_ns: self.duration_ns,
            cpu: self.cpu,
            tgid: self.tgid,
            tid: self.tid,
            ppid: self.ppid,
            uid: self.uid,
            gid: self.gid,
            comm: self.comm,
            cgroup_id: self.cgroup_id,
            pid_ns: self.pid_ns,
            mnt_ns: self.mnt_ns,
            fd: self.fd,
            level: self.level,
            optname: self.optname,
            optval_ptr: self.optval_ptr,
            optlen_ptr: self.optlen_ptr,
            optlen_in: self.optlen_in,
            optlen_out: self.optlen_out,
            ret: self.ret,
            flags: self.flags,
            value: &self.value,
            socket: self.socket.as_ref(),
        }
    }
}
