//! Which socket a call was made on: the identity the recorder captures at syscall entry.

/// One socket's identity as captured at syscall entry.
#[derive(Clone, Debug, Default, Eq)]
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

impl Socket {
    /// The fields the `--where` socket tests read (`gsot_decode::expr::Pred::socket_matches`).
    pub fn view(&self) -> gsot_decode::sockid::SocketView<'_> {
        gsot_decode::sockid::SocketView {
            family: self.family,
            sock_type: self.sock_type,
            protocol: self.protocol,
            tcp_state: self.tcp_state,
            local_addr: &self.local_addr,
            local_port: self.local_port,
            remote_addr: &self.remote_addr,
            remote_port: self.remote_port,
            ino: self.ino,
            netns: self.netns,
            unix_path: &self.unix_path,
            unix_peer: &self.unix_peer,
        }
    }
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

/// Bytes of a socket table entry before its two unix names (FORMAT.md 4.3).
pub(crate) const SOCKET_FIXED_LEN: usize = 63;
/// Least bytes of one socket table entry: the fixed fields and the two names' lengths.
pub(crate) const SOCKET_MIN_LEN: usize = SOCKET_FIXED_LEN + 16;

/// What the derived comparison says, without its two `memcmp` calls for the unix names, which
/// are empty but for AF_UNIX: the block encoder compares every event's socket with the one
/// before, and those two calls were a third of the recorder's writer thread. Every field is
/// named, so a field added to [`Socket`] cannot be forgotten here.
impl PartialEq for Socket {
    fn eq(&self, other: &Socket) -> bool {
        let Socket {
            family,
            sock_type,
            protocol,
            tcp_state,
            local_addr,
            local_port,
            remote_addr,
            remote_port,
            scope_id,
            ino,
            netns,
            netlink_portid,
            unix_path,
            unix_peer,
        } = self;
        let name_eq = |a: &Vec<u8>, b: &Vec<u8>| a.len() == b.len() && (a.is_empty() || a == b);
        *ino == other.ino
            && *family == other.family
            && *sock_type == other.sock_type
            && *protocol == other.protocol
            && *tcp_state == other.tcp_state
            && u128::from_ne_bytes(*local_addr) == u128::from_ne_bytes(other.local_addr)
            && *local_port == other.local_port
            && u128::from_ne_bytes(*remote_addr) == u128::from_ne_bytes(other.remote_addr)
            && *remote_port == other.remote_port
            && *scope_id == other.scope_id
            && *netns == other.netns
            && *netlink_portid == other.netlink_portid
            && name_eq(unix_path, &other.unix_path)
            && name_eq(unix_peer, &other.unix_peer)
    }
}

/// Every field, as the derived hash would (it must agree with the comparison above).
impl std::hash::Hash for Socket {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let Socket {
            family,
            sock_type,
            protocol,
            tcp_state,
            local_addr,
            local_port,
            remote_addr,
            remote_port,
            scope_id,
            ino,
            netns,
            netlink_portid,
            unix_path,
            unix_peer,
        } = self;
        (
            family, sock_type, protocol, tcp_state, local_addr, local_port,
        )
            .hash(state);
        (
            remote_addr,
            remote_port,
            scope_id,
            ino,
            netns,
            netlink_portid,
        )
            .hash(state);
        (unix_path, unix_peer).hash(state);
    }
}

impl Socket {
    /// Bytes this socket takes in a block's socket table.
    pub(crate) fn encoded_len(&self) -> usize {
        SOCKET_MIN_LEN + self.unix_path.len() + self.unix_peer.len()
    }

    /// Appends the socket table entry (fixint encoding, FORMAT.md 4.3).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.to_le_bytes());
        out.extend_from_slice(&self.sock_type.to_le_bytes());
        out.extend_from_slice(&self.protocol.to_le_bytes());
        out.push(self.tcp_state);
        out.extend_from_slice(&self.local_addr);
        out.extend_from_slice(&self.local_port.to_le_bytes());
        out.extend_from_slice(&self.remote_addr);
        out.extend_from_slice(&self.remote_port.to_le_bytes());
        out.extend_from_slice(&self.scope_id.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.netns.to_le_bytes());
        out.extend_from_slice(&self.netlink_portid.to_le_bytes());
        for name in [&self.unix_path, &self.unix_peer] {
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
            out.extend_from_slice(name);
        }
    }

    /// Decodes one socket table entry from the start of `b`: the socket and the bytes it took,
    /// or where in `b` it stops making sense and what was expected there.
    pub(crate) fn decode(b: &[u8]) -> Result<(Socket, usize), (usize, String)> {
        let Some(fixed) = b.get(..SOCKET_FIXED_LEN) else {
            return Err((
                0,
                format!("a socket entry of at least {SOCKET_MIN_LEN} bytes"),
            ));
        };
        let mut l = crate::wire::Le(fixed);
        let mut s = Socket {
            family: l.u16(),
            sock_type: l.u16(),
            protocol: l.u16(),
            tcp_state: l.array::<1>()[0],
            local_addr: l.array(),
            local_port: l.u16(),
            remote_addr: l.array(),
            remote_port: l.u16(),
            scope_id: l.u32(),
            ino: l.u64(),
            netns: l.u32(),
            netlink_portid: l.u32(),
            ..Socket::default()
        };
        let mut at = SOCKET_FIXED_LEN;
        for (what, name) in [
            ("unix_path", &mut s.unix_path),
            ("unix_peer", &mut s.unix_peer),
        ] {
            let Some(len) = b.get(at..at + 8) else {
                return Err((at, format!("the length of the socket's {what}")));
            };
            let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
            let room = (b.len() - at - 8) as u64;
            if len > room {
                return Err((
                    at,
                    format!("a {what} length of at most {room}, found {len}"),
                ));
            }
            at += 8;
            name.extend_from_slice(&b[at..][..len as usize]);
            at += len as usize;
        }
        Ok((s, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_differing_in_any_one_field_are_unequal() {
        let base = Socket {
            family: 1,
            unix_path: b"/run/a".to_vec(),
            ..Socket::default()
        };
        let changes: [fn(&mut Socket); 15] = [
            |s| s.family = 2,
            |s| s.sock_type = 1,
            |s| s.protocol = 6,
            |s| s.tcp_state = 1,
            |s| s.local_addr[15] = 1,
            |s| s.local_port = 1,
            |s| s.remote_addr[0] = 1,
            |s| s.remote_port = 1,
            |s| s.scope_id = 1,
            |s| s.ino = 1,
            |s| s.netns = 1,
            |s| s.netlink_portid = 1,
            |s| s.unix_path = b"/run/b".to_vec(),
            |s| s.unix_path.clear(),
            |s| s.unix_peer = vec![0],
        ];
        assert_eq!(base, base.clone());
        for (i, change) in changes.iter().enumerate() {
            let mut other = base.clone();
            change(&mut other);
            assert_ne!(base, other, "change {i}");
            assert_ne!(other, base, "change {i}");
        }
    }
}
