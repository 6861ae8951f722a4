//! SOL_UDP (17) and SOL_UDPLITE (136): options from include/uapi/linux/udp.h.

use super::Kind::*;
use super::{Opt, opt};

pub const OPTIONS: &[Opt] = &[
    opt(1, "UDP_CORK", Bool),
    opt(100, "UDP_ENCAP", UdpEncap),
    opt(101, "UDP_NO_CHECK6_TX", Bool),
    opt(102, "UDP_NO_CHECK6_RX", Bool),
    opt(103, "UDP_SEGMENT", Int),
    opt(104, "UDP_GRO", Bool),
];

pub const UDPLITE_OPTIONS: &[Opt] = &[
    opt(1, "UDP_CORK", Bool),
    opt(10, "UDPLITE_SEND_CSCOV", Int),
    opt(11, "UDPLITE_RECV_CSCOV", Int),
    opt(100, "UDP_ENCAP", UdpEncap),
    opt(101, "UDP_NO_CHECK6_TX", Bool),
    opt(102, "UDP_NO_CHECK6_RX", Bool),
    opt(103, "UDP_SEGMENT", Int),
    opt(104, "UDP_GRO", Bool),
];

/// `UDP_ENCAP_*`.
pub fn encap_name(v: i32) -> Option<&'static str> {
    super::names::find(
        &[
            (1, "UDP_ENCAP_ESPINUDP_NON_IKE"),
            (2, "UDP_ENCAP_ESPINUDP"),
            (3, "UDP_ENCAP_L2TPINUDP"),
            (4, "UDP_ENCAP_GTP0"),
            (5, "UDP_ENCAP_GTP1U"),
            (6, "UDP_ENCAP_RXRPC"),
        ],
        v,
    )
}
