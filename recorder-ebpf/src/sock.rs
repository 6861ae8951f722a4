//! The socket behind a call's fd, read at syscall entry: task -> files -> fdtable -> file ->
//! socket -> sock, with the offsets the loader found in this kernel's BTF
//! ([`SockOffsets`]). [`capture`] runs at entry and leaves the identity in the thread's
//! [`SOCKS`] slot; [`copy_out`] moves it into the record at exit.
//!
//! Cost: every `bpf_probe_read_kernel` is a helper call (80-100 ns here, the return going
//! through the SRSO safe-RET thunk), whatever it copies up to a few hundred bytes. So the walk
//! reads whole spans of a struct at once into a per-CPU buffer, and a thread's slot caches what
//! cannot change while a socket lives (its inode, type, protocol, network namespace, AF_UNIX
//! names) for the fd and `struct file` it last saw.
//!
//! The cache is only used when it provably describes the socket the fd refers to now: the fd
//! table still holds the same `struct file *`, and the socket at the cached address still has
//! the cached inode number and points back to that file. A closed file's socket has its file
//! pointer cleared (`__sock_release`), and a socket reallocated at the same address has a new
//! inode number, so a closed and reused fd (even with the new `struct file` at the old one's
//! address) never matches. What can change while the socket lives (TCP state, addresses and
//! ports, AF_UNIX bindings, netlink port id) is read at every call.

use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_get_current_task, bpf_get_current_task_btf, bpf_probe_read_kernel},
    macros::map,
    maps::{Array, PerCpuArray},
};
use format::raw::{MAX_SNAPLEN, NAMES_ROOM, RawEvent, RawSocket, SOCK_NONE, SOCK_PRESENT};
use recorder_ebpf::{
    Config, FILTER_FAMILY, FILTER_PORT, FILTER_REMOTE_ADDR, INFLIGHT_MAX_ENTRIES, MAX_FILTER_PORTS,
    RDONLY_CAST_MARK, SOCK_SPAN, SOCK_WALK_UNCACHED, SockOffsets,
};

/// What the loader found in this kernel's BTF. Immutable, so it lands in `.rodata`, which the
/// loader fills in before loading and the kernel then freezes: the verifier reads every offset
/// as a constant. Read only through [`o!`]: LLVM would fold plain reads to the zeros here.
#[unsafe(no_mangle)]
static SOCK_OFFSETS: SockOffsets = SockOffsets {
    enabled: 0,
    task_files: 0,
    files_fdt: 0,
    fdt_span: 0,
    fdt_max_fds_rel: 0,
    fdt_fd_rel: 0,
    file_span_start: 0,
    file_span_len: 0,
    file_private_data_rel: 0,
    file_f_inode_rel: 0,
    sa_span_len: 0,
    sa_vfs_inode: 0,
    socket_file_rel: 0,
    socket_sk_rel: 0,
    inode_i_mode_rel: 0,
    inode_i_ino_rel: 0,
    skc_span_len: 0,
    skc_daddr: 0,
    skc_rcv_saddr: 0,
    skc_dport: 0,
    skc_num: 0,
    skc_family: 0,
    skc_state: 0,
    skc_bound_dev_if: 0,
    skc_net: 0,
    skc_v6_daddr: 0,
    skc_v6_rcv_saddr: 0,
    sk_protocol: 0,
    sk_type: 0,
    net_ns_inum: 0,
    unix_span_start: 0,
    unix_span_len: 0,
    unix_addr_rel: 0,
    unix_peer_rel: 0,
    unix_address_len: 0,
    unix_address_name: 0,
    netlink_portid: 0,
    fast: 0,
    btf_file_holder: 0,
    btf_socket_alloc: 0,
    btf_unix_sock: 0,
    btf_netlink_sock: 0,
    packet_num: 0,
    btf_packet_sock: 0,
};

/// One field of [`SOCK_OFFSETS`], as the loader wrote it.
macro_rules! o {
    ($f:ident) => {
        // SAFETY: a plain read of an immutable static; volatile so that it happens.
        unsafe { core::ptr::read_volatile(&raw const SOCK_OFFSETS.$f) }
    };
}

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_NETLINK: u16 = 16;
const AF_PACKET: u16 = 17;
const AF_INET6: u16 = 10;
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
/// `sizeof(sun_path)`: the longest AF_UNIX name.
const SUN_PATH: u32 = 108;

/// One thread's socket identity: what its last call's entry found, kept until the next call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockSlot {
    /// The thread whose call `raw` describes; exit takes nothing from a slot another thread
    /// (same low tid bits) has since written.
    pub pid_tgid: u64,
    /// Cache keys: the `struct file *`, `struct socket *` and `struct sock *` `raw` was read
    /// from (file 0: nothing cached), and the AF_UNIX addresses `names` was read from.
    pub file: u64,
    pub sock: u64,
    pub sk: u64,
    pub unix_addr: u64,
    pub unix_peer_addr: u64,
    pub fd: i32,
    pub _pad: u32,
    pub raw: RawSocket,
    /// The bound AF_UNIX name, then the peer's (`raw.unix_path_len`, `raw.unix_peer_len`).
    pub names: [u8; NAMES_ROOM],
}

/// Indexed like `INFLIGHT`: slot `tid & (INFLIGHT_MAX_ENTRIES - 1)`. An array for the same
/// reasons (an inlined lookup, no insert or delete).
#[map]
static SOCKS: Array<SockSlot> = Array::with_max_entries(INFLIGHT_MAX_ENTRIES, 0);

/// A span of kernel memory read at once. 8 bytes of slack after `SOCK_SPAN` so that a field
/// read at a masked offset stays inside for the verifier.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Span {
    b: [u8; SOCK_SPAN as usize + 8],
}

#[map]
static SPAN: PerCpuArray<Span> = PerCpuArray::with_max_entries(1, 0);

/// Reads `len` (at most `SOCK_SPAN`) bytes at `src` into `span`; false if the memory is not
/// readable (a stale or garbage pointer: the helper fails cleanly instead of faulting).
#[inline(always)]
fn read_span(span: &mut Span, src: u64, len: u32) -> bool {
    if src == 0 {
        return false;
    }
    // The mask (after black_box so LLVM keeps it) gives the verifier its bound; the loader
    // checked every span length against SOCK_SPAN, so it never cuts a span short.
    let len = core::hint::black_box(len) & (2 * SOCK_SPAN - 1);
    let len = if len > SOCK_SPAN { SOCK_SPAN } else { len };
    // SAFETY: at most SOCK_SPAN bytes into a buffer of SOCK_SPAN + 8.
    unsafe {
        bpf_probe_read_kernel(
            span.b.as_mut_ptr().cast::<c_void>(),
            len,
            src as *const c_void,
        ) == 0
    }
}

/// The `T` at byte `rel` of the span (an offset the loader computed, aligned for `T`).
#[inline(always)]
fn at<T: Copy>(span: &Span, rel: u32) -> T {
    let mask = (SOCK_SPAN - 1) & !(core::mem::align_of::<T>() as u32 - 1);
    let rel = (core::hint::black_box(rel) & mask) as usize;
    // SAFETY: rel + size_of::<T>() <= SOCK_SPAN - 1 + 8, inside the buffer; `rel` is a multiple
    // of T's alignment and the buffer is 8-aligned.
    unsafe { span.b.as_ptr().add(rel).cast::<T>().read() }
}

#[inline(always)]
fn read<T: Copy + Default>(addr: u64) -> T {
    if addr == 0 {
        return T::default();
    }
    // SAFETY: the helper copies size_of::<T>() bytes and fails cleanly on a bad address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(addr as *const T) }.unwrap_or_default()
}

/// Zeroes a `RawSocket` word by word (a struct assignment may become a memset call, which BPF
/// does not have).
#[inline(always)]
fn clear(raw: *mut RawSocket) {
    let w = raw.cast::<u64>();
    // SAFETY: RawSocket is 72 bytes and 8-aligned: nine words.
    unsafe {
        for i in 0..9 {
            w.add(i).write_volatile(0);
        }
    }
}

/// Forgets which AF_UNIX addresses the slot's names were read from. Volatile stores: LLVM
/// merges the two adjacent plain stores into a call of a `memset` subprogram, which the 6.1
/// verifier refuses ("reg type unsupported for arg#0 function memset") with a map value
/// argument.
#[inline(always)]
fn forget_names(addr: &mut u64, peer_addr: &mut u64) {
    // SAFETY: two valid references.
    unsafe {
        (addr as *mut u64).write_volatile(0);
        (peer_addr as *mut u64).write_volatile(0);
    }
}

/// The `struct file *` at `fd` in the current task's fd table, if `fd` is open.
#[inline(always)]
fn fd_file(span: &mut Span, fd: i32) -> u64 {
    // SAFETY: helper without arguments; the pointer is only probe-read.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read(task + u64::from(o!(task_files)));
    if files == 0 {
        return 0;
    }
    let fdt: u64 = read(files + u64::from(o!(files_fdt)));
    if !read_span(span, fdt, o!(fdt_span)) {
        return 0;
    }
    let max_fds: u32 = at(span, o!(fdt_max_fds_rel));
    if fd < 0 || fd as u32 >= max_fds {
        return 0;
    }
    let fds: u64 = at(span, o!(fdt_fd_rel));
    read(fds + 8 * fd as u64)
}

/// Walks from `fd` to its socket into `slot`; false if `fd` is not an open socket.
#[inline(always)]
fn walk(slot: &mut SockSlot, span: &mut Span, mine: bool, fd: i32) -> bool {
    let file = fd_file(span, fd);
    if file == 0 {
        return false;
    }
    let mut same = o!(enabled) != SOCK_WALK_UNCACHED && mine && slot.fd == fd && slot.file == file;
    let mut sock = slot.sock;
    if same
        && !(read_span(span, sock, o!(sa_span_len))
            && at::<u64>(span, o!(socket_file_rel)) == file
            && at::<u64>(span, o!(inode_i_ino_rel)) == slot.raw.ino)
    {
        same = false;
    }
    if !same {
        if !read_span(
            span,
            file + u64::from(o!(file_span_start)),
            o!(file_span_len),
        ) {
            return false;
        }
        sock = at(span, o!(file_private_data_rel));
        // A socket's file has its socket_alloc's inode: this tells socket files from others
        // (whose private_data is anything) before reading through private_data.
        let inode: u64 = at(span, o!(file_f_inode_rel));
        if sock == 0 || inode != sock + u64::from(o!(sa_vfs_inode)) {
            return false;
        }
        if !read_span(span, sock, o!(sa_span_len))
            || at::<u64>(span, o!(socket_file_rel)) != file
            || at::<u16>(span, o!(inode_i_mode_rel)) & S_IFMT != S_IFSOCK
        {
            return false;
        }
    }
    let sk: u64 = at(span, o!(socket_sk_rel));
    if sk == 0 {
        return false;
    }
    let r = &mut slot.raw;
    if !same {
        clear(r);
        r.ino = at(span, o!(inode_i_ino_rel));
        slot.file = file;
        slot.sock = sock;
        slot.fd = fd;
        forget_names(&mut slot.unix_addr, &mut slot.unix_peer_addr);
    }
    if !read_span(span, sk, o!(skc_span_len)) {
        return false;
    }
    volatile_fields(r, span);
    if !same || slot.sk != sk {
        slot.sk = sk;
        let net: u64 = at(span, o!(skc_net));
        r.netns = read(net + u64::from(o!(net_ns_inum)));
        let proto_type: u32 = read(sk + u64::from(o!(sk_protocol).min(o!(sk_type))));
        let (lo, hi) = (proto_type as u16, (proto_type >> 16) as u16);
        (r.protocol, r.sock_type) = if o!(sk_protocol) < o!(sk_type) {
            (lo, hi)
        } else {
            (hi, lo)
        };
    }
    r.status = SOCK_PRESENT;
    match r.family {
        AF_UNIX => unix_names(slot, span, sk),
        AF_NETLINK if o!(netlink_portid) != 0 => {
            r.netlink_portid = read(sk + u64::from(o!(netlink_portid)));
        }
        // At every call, over the cached sk_protocol: bind() can change it.
        AF_PACKET if o!(packet_num) != 0 => r.protocol = read(sk + u64::from(o!(packet_num))),
        _ => {}
    }
    true
}

/// `bpf_rdonly_cast(p, btf_id)`: `p` as a read-only pointer to the BTF type `btf_id`, which
/// the verifier lets the program load through (each load made fault-safe, no helper call).
/// The verifier replaces the call with a register move.
#[inline(always)]
fn cast(p: u64, btf_id: u32) -> *const u8 {
    // SAFETY: the loader turned every call of this id into the kfunc call (see
    // RDONLY_CAST_MARK), which takes a pointer and a BTF id and returns the pointer.
    unsafe {
        let f: unsafe extern "C" fn(u64, u32) -> *const u8 =
            core::mem::transmute(RDONLY_CAST_MARK as usize);
        f(p, btf_id)
    }
}

/// A load of the `T` at `base + off` through a BTF pointer (`off` a verifier constant).
#[inline(always)]
fn ld<T: Copy>(base: *const u8, off: u32) -> T {
    // SAFETY: the verifier checks the access against the BTF type of `base` and makes it a
    // fault-safe load (a bad pointer reads zeros).
    unsafe { base.add(off as usize).cast::<T>().read_volatile() }
}

/// The walk as loads through BTF pointers: no helper call but `bpf_get_current_task_btf` and
/// the name copies of AF_UNIX sockets, so nothing needs caching except those names.
#[inline(always)]
fn walk_fast(slot: &mut SockSlot, fd: i32) -> bool {
    // SAFETY: helper without arguments; returns a trusted BTF pointer to the current task.
    let task = unsafe { bpf_get_current_task_btf() }
        .cast::<u8>()
        .cast_const();
    let files: *const u8 = ld(task, o!(task_files));
    let fdt: *const u8 = ld(files, o!(files_fdt));
    let max_fds: u32 = ld(fdt, o!(fdt_max_fds_rel));
    if fd < 0 || fd as u32 >= max_fds {
        return false;
    }
    let fds: u64 = ld(fdt, o!(fdt_fd_rel));
    // A `struct file **` loads as a plain number: cast its slot to a struct whose first member
    // is a `struct file *`.
    let file: *const u8 = ld(cast(fds + 8 * fd as u64, o!(btf_file_holder)), 0);
    if file.is_null() {
        return false;
    }
    let sock: u64 = ld(file, o!(file_span_start) + o!(file_private_data_rel));
    let inode: u64 = ld(file, o!(file_span_start) + o!(file_f_inode_rel));
    if sock == 0 || inode != sock + u64::from(o!(sa_vfs_inode)) {
        return false;
    }
    let sa = cast(sock, o!(btf_socket_alloc));
    if ld::<u16>(sa, o!(inode_i_mode_rel)) & S_IFMT != S_IFSOCK {
        return false;
    }
    let sk: *const u8 = ld(sa, o!(socket_sk_rel));
    if sk.is_null() {
        return false;
    }
    let ino: u64 = ld(sa, o!(inode_i_ino_rel));
    let r = &mut slot.raw;
    if ino != r.ino || r.status != SOCK_PRESENT {
        // Another socket than the last one: its names are not the cached ones.
        clear(r);
        forget_names(&mut slot.unix_addr, &mut slot.unix_peer_addr);
    }
    r.ino = ino;
    common_fields(r, |off| ld(sk, off), |off| ld(sk, off), |off| ld(sk, off));
    let net: *const u8 = ld(sk, o!(skc_net));
    r.netns = ld(net, o!(net_ns_inum));
    r.protocol = ld(sk, o!(sk_protocol));
    r.sock_type = ld(sk, o!(sk_type));
    r.status = SOCK_PRESENT;
    match r.family {
        AF_UNIX => {
            let u = cast(sk as u64, o!(btf_unix_sock));
            let addr: u64 = ld(u, o!(unix_span_start) + o!(unix_addr_rel));
            let peer: u64 = ld(u, o!(unix_span_start) + o!(unix_peer_rel));
            let peer_addr: u64 = if peer == 0 {
                0
            } else {
                ld(
                    cast(peer, o!(btf_unix_sock)),
                    o!(unix_span_start) + o!(unix_addr_rel),
                )
            };
            unix_names_at(slot, addr, peer_addr);
        }
        AF_NETLINK if o!(netlink_portid) != 0 => {
            r.netlink_portid = ld(cast(sk as u64, o!(btf_netlink_sock)), o!(netlink_portid));
        }
        AF_PACKET if o!(btf_packet_sock) != 0 => {
            r.protocol = ld(cast(sk as u64, o!(btf_packet_sock)), o!(packet_num));
        }
        _ => {}
    }
    true
}

/// What can change while the socket lives, from the `sock_common` span just read.
#[inline(always)]
fn volatile_fields(r: &mut RawSocket, span: &Span) {
    common_fields(r, |o| at(span, o), |o| at(span, o), |o| at(span, o));
}

/// The `sock_common` fields, each read by the walk's own means: `b`, `h`, `w` load the byte,
/// half-word and word at an offset of the `sock_common`.
#[inline(always)]
fn common_fields(
    r: &mut RawSocket,
    b: impl Fn(u32) -> u8,
    h: impl Fn(u32) -> u16,
    w: impl Fn(u32) -> u32,
) {
    r.family = h(o!(skc_family));
    r.state = b(o!(skc_state));
    r.local_port = h(o!(skc_num));
    r.remote_port_be = h(o!(skc_dport));
    r.bound_dev_if = w(o!(skc_bound_dev_if));
    let v6 = r.family == AF_INET6 && o!(skc_v6_daddr) != 0;
    let mut local = [0u32; 4];
    let mut remote = [0u32; 4];
    if v6 {
        for i in 0..4 {
            local[i] = w(o!(skc_v6_rcv_saddr) + 4 * i as u32);
            remote[i] = w(o!(skc_v6_daddr) + 4 * i as u32);
        }
    } else {
        local[0] = w(o!(skc_rcv_saddr));
        remote[0] = w(o!(skc_daddr));
    }
    let (l, d) = (
        r.local_addr.as_mut_ptr().cast::<u32>(),
        r.remote_addr.as_mut_ptr().cast::<u32>(),
    );
    for i in 0..4 {
        // SAFETY: both arrays are 16 bytes (four u32 words) at 4-aligned offsets of RawSocket.
        unsafe {
            l.add(i).write(local[i]);
            d.add(i).write(remote[i]);
        }
    }
}

/// The AF_UNIX bound names of the socket and of its peer; re-read only when the
/// `unix_address` either points to changed (a bind or connect since the last call).
#[inline(always)]
fn unix_names(slot: &mut SockSlot, span: &mut Span, sk: u64) {
    if !read_span(span, sk + u64::from(o!(unix_span_start)), o!(unix_span_len)) {
        return;
    }
    let addr: u64 = at(span, o!(unix_addr_rel));
    let peer: u64 = at(span, o!(unix_peer_rel));
    let peer_addr: u64 = if peer == 0 {
        0
    } else {
        read(peer + u64::from(o!(unix_span_start) + o!(unix_addr_rel)))
    };
    unix_names_at(slot, addr, peer_addr);
}

/// Reads the names of `unix_address`es `addr` and `peer_addr` (0: none) into the slot, unless
/// they are the ones it holds. The socket keeps a reference on its address, and on its peer,
/// which keeps its own, so equal pointers of one socket mean equal names.
#[inline(always)]
fn unix_names_at(slot: &mut SockSlot, addr: u64, peer_addr: u64) {
    if addr == slot.unix_addr && peer_addr == slot.unix_peer_addr {
        return;
    }
    slot.unix_addr = addr;
    slot.unix_peer_addr = peer_addr;
    let n = copy_name(slot, 0, addr);
    slot.raw.unix_path_len = n as u8;
    slot.raw.unix_peer_len = copy_name(slot, n, peer_addr) as u8;
}

/// Copies the `sun_path` bytes of `unix_address` `addr` to `slot.names[at..]`; their count.
#[inline(always)]
fn copy_name(slot: &mut SockSlot, at: u32, addr: u64) -> u32 {
    if addr == 0 {
        return 0;
    }
    // `len` counts the 2-byte sun_family too.
    let len: i32 = read(addr + u64::from(o!(unix_address_len)));
    if len <= 2 {
        return 0;
    }
    // The mask after black_box, so LLVM cannot apply it before a spill: the 6.1 verifier loses
    // the bound of `min` otherwise ("R2 unbounded memory access").
    let n = core::hint::black_box((len as u32 - 2).min(SUN_PATH)) & 127;
    let at = core::hint::black_box(at) & 127;
    let src = addr + u64::from(o!(unix_address_name)) + 2;
    // SAFETY: at + n <= 127 + 127 < NAMES_ROOM; the helper fails cleanly on a bad address.
    let ok = unsafe {
        bpf_probe_read_kernel(
            slot.names.as_mut_ptr().add(at as usize).cast::<c_void>(),
            n,
            src as *const c_void,
        )
    } == 0;
    if ok { n } else { 0 }
}

/// At entry: finds the socket behind `fd` for the exit program. Returns false if a socket
/// filter rejects the call.
#[inline(always)]
pub fn capture(cfg: &Config, pid_tgid: u64, fd: i32) -> bool {
    if o!(enabled) == 0 {
        return true;
    }
    let (Some(slot), Some(span)) = (
        SOCKS.get_ptr_mut(pid_tgid as u32 & (INFLIGHT_MAX_ENTRIES - 1)),
        SPAN.get_ptr_mut(0),
    ) else {
        return true;
    };
    // SAFETY: an in-bounds array slot, written by the threads sharing its index (see SockSlot).
    let slot = unsafe { &mut *slot };
    // SAFETY: the per-CPU buffer is ours until this program returns.
    let span = unsafe { &mut *span };
    // Unowned while it is rewritten: an exit of another thread sharing the slot checks the
    // owner before and after its copy (see `copy_header`), so it never takes a torn identity.
    let owner = &raw mut slot.pid_tgid;
    // SAFETY: a field of the slot; volatile so the stores stay where they are.
    let mine = unsafe { owner.read_volatile() } == pid_tgid;
    // SAFETY: as above.
    unsafe { owner.write_volatile(0) };
    let found = if o!(fast) != 0 {
        walk_fast(slot, fd)
    } else {
        walk(slot, span, mine, fd)
    };
    if !found {
        slot.file = 0;
        clear(&mut slot.raw);
        slot.raw.status = SOCK_NONE;
    }
    // SAFETY: as above.
    unsafe { owner.write_volatile(pid_tgid) };
    passes_socket_filters(cfg, &slot.raw)
}

#[inline(always)]
fn passes_socket_filters(cfg: &Config, r: &RawSocket) -> bool {
    let f = cfg.filters;
    let sf = &cfg.sock_filter;
    let inet = r.status == SOCK_PRESENT && (r.family == AF_INET || r.family == AF_INET6);
    if f & FILTER_FAMILY != 0 && (r.status != SOCK_PRESENT || u32::from(r.family) != sf.family) {
        return false;
    }
    if f & FILTER_PORT != 0 {
        if !inet {
            return false;
        }
        let remote = u16::from_be(r.remote_port_be);
        let mut hit = false;
        for i in 0..MAX_FILTER_PORTS {
            let p = sf.ports[i];
            if (i as u32) < sf.n_ports && (p == r.local_port || p == remote) {
                hit = true;
            }
        }
        if !hit {
            return false;
        }
    }
    if f & FILTER_REMOTE_ADDR != 0 {
        if !inet {
            return false;
        }
        let d = r.remote_addr.as_ptr().cast::<u32>();
        // SAFETY: 16 bytes, four u32 words at a 4-aligned offset.
        let w = |i: usize| unsafe { d.add(i).read() };
        // An IPv4 address is compared as its v4-mapped form (::ffff:a.b.c.d).
        let words = if r.family == AF_INET {
            [0, 0, 0xffff_u32.to_be(), w(0)]
        } else {
            [w(0), w(1), w(2), w(3)]
        };
        for ((w, m), n) in words.iter().zip(&sf.remote_mask).zip(&sf.remote_net) {
            if w & m != *n {
                return false;
            }
        }
    }
    true
}

#[inline(always)]
fn slot_of(pid_tgid: u64) -> Option<&'static SockSlot> {
    SOCKS.get(pid_tgid as u32 & (INFLIGHT_MAX_ENTRIES - 1))
}

/// Whether `slot` holds this thread's call (no other thread's entry has begun rewriting it).
#[inline(always)]
fn owns(slot: &SockSlot, pid_tgid: u64) -> bool {
    // SAFETY: a field of the slot; volatile so that it is read where it stands.
    unsafe { (&raw const slot.pid_tgid).read_volatile() == pid_tgid }
}

/// At exit: the identity `capture` found for this call into `dst` (a record header's socket);
/// returns the length of the AF_UNIX names that go after the value (see [`copy_out`]).
#[inline(always)]
pub fn copy_header(dst: *mut RawSocket, pid_tgid: u64) -> u32 {
    let slot = slot_of(pid_tgid);
    let Some(slot) = slot.filter(|s| o!(enabled) != 0 && owns(s, pid_tgid)) else {
        // No identity (`--no-sockets`, no BTF), or another thread's call has since taken the
        // slot: recorded as not captured rather than as someone else's socket.
        clear(dst);
        return 0;
    };
    let (d, s) = (dst.cast::<u64>(), (&raw const slot.raw).cast::<u64>());
    // SAFETY: both are 8-aligned RawSockets (72 bytes, nine words). A word loop, not a struct
    // assignment, which would become a memmove call.
    unsafe {
        for i in 0..9 {
            d.add(i).write_volatile(s.add(i).read_volatile());
        }
    }
    if !owns(slot, pid_tgid) {
        clear(dst);
        return 0;
    }
    // SAFETY: dst was just written.
    let r = unsafe { &*dst };
    u32::from(r.unix_path_len) + u32::from(r.unix_peer_len)
}

/// The AF_UNIX name bytes this thread's call will carry (0 for every other family), for a
/// record without room for them to go another way.
#[inline(always)]
pub fn names_len(pid_tgid: u64) -> u32 {
    match slot_of(pid_tgid) {
        Some(s) if o!(enabled) != 0 => {
            u32::from(s.raw.unix_path_len) + u32::from(s.raw.unix_peer_len)
        }
        _ => 0,
    }
}

/// At exit: the identity `capture` found for this call into the record header, and the AF_UNIX
/// names after the value (which ends at `value_len`). Returns the names' length.
#[inline(always)]
pub fn copy_out(ev: &mut RawEvent, pid_tgid: u64, value_len: u32) -> usize {
    let dst = &raw mut ev.header.socket;
    let n = copy_header(dst, pid_tgid);
    let Some(slot) = slot_of(pid_tgid).filter(|_| n != 0) else {
        return 0;
    };
    let n = core::hint::black_box(n) & (NAMES_ROOM as u32 - 1);
    let at = core::hint::black_box(value_len as usize) & (MAX_SNAPLEN - 1);
    // SAFETY: at + n < MAX_SNAPLEN + NAMES_ROOM: inside `value` and the `names` room after it.
    let ok = unsafe {
        bpf_probe_read_kernel(
            ev.value.as_mut_ptr().add(at).cast::<c_void>(),
            n,
            slot.names.as_ptr().cast::<c_void>(),
        )
    } == 0;
    if ok && owns(slot, pid_tgid) {
        n as usize
    } else {
        clear(dst);
        0
    }
}
