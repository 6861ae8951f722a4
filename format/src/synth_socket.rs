//! The sockets of the synthetic workloads: what the recorder would have found behind each
//! fd (FORMAT.md 4.3). Drawn from a random stream of their own, so that turning them on or
//! off leaves every other field of every event exactly as it was.

use super::synth::{Rng, SockKind};
use crate::Socket;

pub(crate) const AF_UNIX: u16 = 1;
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
pub(crate) const AF_NETLINK: u16 = 16;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;
const SOCK_RAW: u16 = 3;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const NETLINK_ROUTE: u16 = 0;
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE_WAIT: u8 = 8;
const TCP_LISTEN: u8 = 10;
/// The initial network namespace's inode on a stock kernel; containers get others.
const INIT_NETNS: u32 = 4_026_531_840;

/// Draws the sockets' identities: one stream per capture, independent of the event stream.
pub(crate) struct SocketMaker {
    rng: Rng,
    next_ino: u64,
}

/// The port a service listens on and the peers its clients connect to.
fn service_port(comm: &str) -> u16 {
    match comm {
        "nginx" | "haproxy" => 443,
        "envoy" => 10_000,
        "java" => 9092,
        "python3" => 8000,
        "node" => 3000,
        "postgres" => 5432,
        "redis-server" => 6379,
        "sshd" => 22,
        "systemd-resolve" => 53,
        "grpc-server" => 50_051,
        "containerd" => 10_010,
        "chronyd" => 323,
        "mysqld" => 3306,
        "memcached" => 11_211,
        "sockbench" => 5432,
        _ => 8080,
    }
}

const PEER_PORTS: &[u16] = &[5432, 6379, 3306, 443, 9092, 11_211, 8080, 50_051];

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&a);
    b
}

fn v6(segments: [u16; 8]) -> [u8; 16] {
    std::net::Ipv6Addr::from(segments).octets()
}

impl SocketMaker {
    pub(crate) fn new(seed: u64) -> SocketMaker {
        SocketMaker {
            rng: Rng::new(seed ^ 0x050c_4e71_de47_1797),
            next_ino: 31_000 + seed % 1000 * 100,
        }
    }

    /// The network namespace of a process: containers (kubepods) have their own.
    pub(crate) fn netns(cgroup: &str, pid: u32) -> u32 {
        match cgroup.starts_with("/kubepods") {
            true => INIT_NETNS + 700 + pid % 97,
            false => INIT_NETNS,
        }
    }

    fn ephemeral(&mut self) -> u16 {
        32_768 + self.rng.below(28_232) as u16
    }

    /// A host of the service network 10.0.0.0/16, or loopback now and then.
    fn host4(&mut self) -> [u8; 4] {
        match self.rng.chance(0.2) {
            true => [127, 0, 0, 1],
            false => [10, 0, self.rng.below(4) as u8, 2 + self.rng.below(60) as u8],
        }
    }

    /// A socket of `kind` for process `comm` (pid `pid`, network namespace `netns`).
    pub(crate) fn make(&mut self, kind: SockKind, comm: &str, pid: u32, netns: u32) -> Socket {
        self.next_ino += 1 + self.rng.below(40);
        let base = Socket {
            ino: self.next_ino,
            netns,
            ..Socket::default()
        };
        let port = service_port(comm);
        match kind {
            SockKind::TcpListen => Socket {
                family: AF_INET,
                sock_type: SOCK_STREAM,
                protocol: IPPROTO_TCP,
                tcp_state: TCP_LISTEN,
                local_port: port,
                ..base
            },
            SockKind::TcpConn => {
                let local = self.host4();
                let remote = match local {
                    [127, ..] => local,
                    _ => self.host4(),
                };
                Socket {
                    family: AF_INET,
                    sock_type: SOCK_STREAM,
                    protocol: IPPROTO_TCP,
                    tcp_state: match self.rng.chance(0.05) {
                        true => TCP_CLOSE_WAIT,
                        false => TCP_ESTABLISHED,
                    },
                    local_addr: v4(local),
                    local_port: self.ephemeral(),
                    remote_addr: v4(remote),
                    remote_port: *self.rng.pick(PEER_PORTS),
                    ..base
                }
            }
            SockKind::Tcp6Conn => {
                let (local, remote, scope_id) = match self.rng.below(4) {
                    0 => (
                        v6([0, 0, 0, 0, 0, 0, 0, 1]),
                        v6([0, 0, 0, 0, 0, 0, 0, 1]),
                        0,
                    ),
                    // A v4-mapped peer on a dual-stack socket.
                    1 => {
                        let h = self.host4();
                        let m = |a: [u8; 4]| {
                            v6([
                                0,
                                0,
                                0,
                                0,
                                0,
                                0xffff,
                                u16::from_be_bytes([a[0], a[1]]),
                                u16::from_be_bytes([a[2], a[3]]),
                            ])
                        };
                        (m(self.host4()), m(h), 0)
                    }
                    // Link-local, with the interface as scope.
                    2 => {
                        let h = self.rng.below(0xffff) as u16;
                        (
                            v6([0xfe80, 0, 0, 0, 0, 0, 0, h]),
                            v6([0xfe80, 0, 0, 0, 0, 0, 0, h ^ 1]),
                            2,
                        )
                    }
                    _ => {
                        let h = self.rng.below(0xffff) as u16;
                        (
                            v6([0xfd00, 0xa, 0, 0, 0, 0, 0, h]),
                            v6([0xfd00, 0xa, 0, 0, 0, 0, 0, 1 + h % 64]),
                            0,
                        )
                    }
                };
                Socket {
                    family: AF_INET6,
                    sock_type: SOCK_STREAM,
                    protocol: IPPROTO_TCP,
                    tcp_state: TCP_ESTABLISHED,
                    local_addr: local,
                    local_port: self.ephemeral(),
                    remote_addr: remote,
                    remote_port: *self.rng.pick(PEER_PORTS),
                    scope_id,
                    ..base
                }
            }
            SockKind::Udp => {
                let connected = self.rng.chance(0.5);
                Socket {
                    family: AF_INET,
                    sock_type: SOCK_DGRAM,
                    protocol: IPPROTO_UDP,
                    local_addr: match connected {
                        true => v4([10, 0, 0, 2 + self.rng.below(60) as u8]),
                        false => [0; 16],
                    },
                    local_port: match connected {
                        true => self.ephemeral(),
                        false => *self.rng.pick(&[5353, 123, 514, 8125]),
                    },
                    remote_addr: match connected {
                        true => v4([10, 0, 0, 2]),
                        false => [0; 16],
                    },
                    remote_port: if connected { 53 } else { 0 },
                    ..base
                }
            }
            SockKind::Unix if self.rng.chance(0.15) => Socket {
                family: AF_NETLINK,
                sock_type: SOCK_RAW,
                protocol: NETLINK_ROUTE,
                netlink_portid: pid,
                ..base
            },
            SockKind::Unix => {
                let (path, peer) = match self.rng.below(3) {
                    // A server's bound socket, and the client's side of one.
                    0 => (format!("/run/{comm}.sock").into_bytes(), Vec::new()),
                    1 => (Vec::new(), b"/run/postgresql/.s.PGSQL.5432".to_vec()),
                    // Abstract names start with a NUL.
                    _ => (
                        format!("\0{comm}-{pid}").into_bytes(),
                        b"\0/containerd-shim/k8s.io.sock".to_vec(),
                    ),
                };
                Socket {
                    family: AF_UNIX,
                    sock_type: SOCK_STREAM,
                    unix_path: path,
                    unix_peer: peer,
                    ..base
                }
            }
        }
    }

    /// A connection closed and its fd reused for a new one now and then: the same fd, a new
    /// socket (new inode and port).
    pub(crate) fn maybe_reconnect(&mut self, s: &mut Socket) -> bool {
        if s.tcp_state != TCP_ESTABLISHED || s.remote_port == 0 || !self.rng.chance(0.0005) {
            return false;
        }
        self.next_ino += 1 + self.rng.below(40);
        s.ino = self.next_ino;
        s.local_port = self.ephemeral();
        true
    }
}
