//! Which socket a call was made on: the identity the recorder captures at syscall entry.

/// One socket's identity as captured at syscall entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Socket {
    /// `AF_*`.
    pub family: u16,
    /// `SOCK_*`, without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`.
    pub sock_type: u16,
    /// `IPPROTO_*`, or the `NETLINK_*` protocol number for `AF_NETLINK`.
    pub protocol: u16,
    /// `TCP_ESTABLISHED`.. as the kernel numbers it; 0 when not TCP.
    pub tcp_state: u8,
    /// IPv4 in the first 4 bytes, IPv6 all 16; network order.
    pub local_addr: [u8; 16],
    /// Host order.
    pub local_port: u16,
    pub remote_addr: [u8; 16],
    pub remote_port: u16,
    /// IPv6 link-local scope (interface index), 0 otherwise.
    pub scope_id: u32,
    /// Socket inode (`socket:[N]`).
    pub ino: u64,
    /// Network namespace inode.
    pub netns: u32,
    /// `AF_NETLINK`: the socket's own port id.
    pub netlink_portid: u32,
    /// `AF_UNIX` bound name (a leading NUL = abstract), empty if none.
    pub unix_path: Vec<u8>,
    /// `AF_UNIX` peer's bound name, empty if none or unknown.
    pub unix_peer: Vec<u8>,
}

/// What an event knows about its fd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SocketRef<'a> {
    /// The capture had no socket identity (an older file, no BTF, `--no-sockets`).
    #[default]
    NotRecorded,
    /// The fd was not an open socket at the call (EBADF or ENOTSOCK).
    NoSocket,
    Socket(&'a Socket),
}

impl<'a> SocketRef<'a> {
    /// The socket, when there was one.
    pub fn socket(self) -> Option<&'a Socket> {
        match self {
            SocketRef::Socket(s) => Some(s),
            _ => None,
        }
    }

    pub fn to_owned_ref(self) -> OwnedSocketRef {
        match self {
            SocketRef::NotRecorded => OwnedSocketRef::NotRecorded,
            SocketRef::NoSocket => OwnedSocketRef::NoSocket,
            SocketRef::Socket(s) => OwnedSocketRef::Socket(s.clone()),
        }
    }
}

/// A [`SocketRef`] that owns its socket (the field of an `OwnedEvent`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum OwnedSocketRef {
    #[default]
    NotRecorded,
    NoSocket,
    Socket(Socket),
}

impl OwnedSocketRef {
    pub fn as_ref(&self) -> SocketRef<'_> {
        match self {
            OwnedSocketRef::NotRecorded => SocketRef::NotRecorded,
            OwnedSocketRef::NoSocket => SocketRef::NoSocket,
            OwnedSocketRef::Socket(s) => SocketRef::Socket(s),
        }
    }
}
