//! Just enough of a BTF reader to find struct member offsets in the running kernel
//! (`/sys/kernel/btf/vmlinux`), so the eBPF programs can follow `task_struct` pointers without
//! CO-RE (which aya-ebpf 0.2.1 does not offer). See `recorder_ebpf::TaskOffsets`.

use anyhow::{Context as _, Result, anyhow, bail};
use recorder_ebpf::{SOCK_SPAN, SockOffsets, TaskOffsets};

const BTF_MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    /// `size` for structs/unions/ints, `type` for modifiers and pointers.
    size_or_type: u32,
    /// Struct/union members: (name_off, type id, bit offset).
    members: Vec<(u32, u32, u32)>,
}

/// BTF type ids of the BTF-pointer socket walk (see `SockOffsets::fast`).
#[derive(Clone, Copy, Debug)]
pub struct FastWalk {
    /// The `bpf_rdonly_cast` kfunc.
    pub rdonly_cast: u32,
    pub file_holder: u32,
    pub socket_alloc: u32,
    pub unix_sock: u32,
    pub netlink_sock: u32,
    /// 0 when the kernel's BTF has no `packet_sock` (see `SockOffsets::packet_num`).
    pub packet_sock: u32,
}

/// The types and strings of one BTF blob.
pub struct Btf {
    /// Indexed by type id; id 0 is `void`.
    types: Vec<Type>,
    strings: Vec<u8>,
}

fn u32_at(b: &[u8], o: usize) -> Result<u32> {
    let s = b
        .get(o..o + 4)
        .ok_or_else(|| anyhow!("BTF truncated at byte {o}"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Btf {
    pub fn from_sys_fs() -> Result<Btf> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        Btf::parse(&data).with_context(|| format!("parsing {path}"))
    }

    pub fn parse(data: &[u8]) -> Result<Btf> {
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
            bail!("not little-endian BTF (bad magic)");
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_bytes = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or_else(|| anyhow!("type section out of range"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| anyhow!("string section out of range"))?
            .to_vec();

        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            kind_flag: false,
            size_or_type: 0,
            members: Vec::new(),
        }];
        let mut o = 0;
        while o < types_bytes.len() {
            let name_off = u32_at(types_bytes, o)?;
            let info = u32_at(types_bytes, o + 4)?;
            let size_or_type = u32_at(types_bytes, o + 8)?;
            o += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => o += 4,
                KIND_ARRAY => o += 12,
                KIND_STRUCT | KIND_UNION => {
                    for _ in 0..vlen {
                        members.push((
                            u32_at(types_bytes, o)?,
                            u32_at(types_bytes, o + 4)?,
                            u32_at(types_bytes, o + 8)?,
                        ));
                        o += 12;
                    }
                }
                KIND_ENUM | KIND_FUNC_PROTO => o += 8 * vlen,
                KIND_DATASEC | KIND_ENUM64 => o += 12 * vlen,
                // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: no data.
                0..=19 => {}
                other => bail!("unknown BTF kind {other}"),
            }
            types.push(Type {
                name_off,
                kind,
                kind_flag,
                size_or_type,
                members,
            });
        }
        Ok(Btf { types, strings })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    fn struct_id(&self, name: &str) -> Result<u32> {
        self.types
            .iter()
            .position(|t| {
                t.kind == KIND_STRUCT
                    && !t.members.is_empty()
                    && self.name(t.name_off) == name.as_bytes()
            })
            .map(|i| i as u32)
            .ok_or_else(|| anyhow!("struct {name} not in BTF"))
    }

    /// The id of the kernel function `name` (a kfunc's id is what its call instruction holds).
    fn func_id(&self, name: &str) -> Result<u32> {
        self.types
            .iter()
            .position(|t| t.kind == KIND_FUNC && self.name(t.name_off) == name.as_bytes())
            .map(|i| i as u32)
            .ok_or_else(|| anyhow!("function {name} not in BTF"))
    }

    /// Whether struct `id`'s first member, at offset 0, is a `struct file *`.
    fn starts_with_file_ptr(&self, id: u32) -> bool {
        let Some(&(_, ty, 0)) = self.types[id as usize].members.first() else {
            return false;
        };
        let ptr = &self.types[self.resolve(ty) as usize];
        let target = &self.types[self.resolve(ptr.size_or_type) as usize];
        ptr.kind == KIND_PTR && target.kind == KIND_STRUCT && self.name(target.name_off) == b"file"
    }

    /// What the BTF-pointer walk needs on top of the offsets: the `bpf_rdonly_cast` kfunc
    /// (Linux 6.2) and the types it casts to.
    pub fn fast_walk_ids(&self) -> Result<FastWalk> {
        let holder = ["kiocb", "fown_struct", "readahead_control"]
            .into_iter()
            .filter_map(|n| self.struct_id(n).ok())
            .find(|&id| self.starts_with_file_ptr(id))
            .ok_or_else(|| anyhow!("no struct starting with a struct file * in BTF"))?;
        Ok(FastWalk {
            rdonly_cast: self.func_id("bpf_rdonly_cast")?,
            file_holder: holder,
            socket_alloc: self.struct_id("socket_alloc")?,
            unix_sock: self.struct_id("unix_sock")?,
            netlink_sock: self.struct_id("netlink_sock")?,
            packet_sock: match self.packet_num() {
                0 => 0,
                _ => self.struct_id("packet_sock")?,
            },
        })
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// Byte offset and type id of `member` in the struct/union `id`, looking through
    /// anonymous struct/union members as C does.
    fn member_in(&self, id: u32, member: &str) -> Option<(u32, u32)> {
        let t = self.types.get(self.resolve(id) as usize)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return None;
        }
        for &(name_off, ty, offset) in &t.members {
            let bits = if t.kind_flag {
                offset & 0x00ff_ffff
            } else {
                offset
            };
            if self.name(name_off) == member.as_bytes() {
                return Some((bits / 8, ty));
            }
            if name_off == 0
                && let Some((inner, ty)) = self.member_in(ty, member)
            {
                return Some((bits / 8 + inner, ty));
            }
        }
        None
    }

    /// Byte offset of a dotted member path (`"ns.inum"`) inside struct `name`.
    pub fn offset_of(&self, name: &str, path: &str) -> Result<u32> {
        let mut id = self.struct_id(name)?;
        let mut total = 0;
        for part in path.split('.') {
            let (off, ty) = self
                .member_in(id, part)
                .ok_or_else(|| anyhow!("{name}.{path}: no member {part}"))?;
            total += off;
            id = ty;
        }
        Ok(total)
    }

    pub fn size_of(&self, name: &str) -> Result<u32> {
        Ok(self.types[self.struct_id(name)? as usize].size_or_type)
    }

    /// The offsets `recorder-ebpf` needs for ppid and the namespace ids.
    pub fn task_offsets(&self) -> Result<TaskOffsets> {
        Ok(TaskOffsets {
            task_real_parent: self.offset_of("task_struct", "real_parent")?,
            task_tgid: self.offset_of("task_struct", "tgid")?,
            task_nsproxy: self.offset_of("task_struct", "nsproxy")?,
            task_thread_pid: self.offset_of("task_struct", "thread_pid")?,
            nsproxy_mnt_ns: self.offset_of("nsproxy", "mnt_ns")?,
            mnt_ns_inum: self.offset_of("mnt_namespace", "ns.inum")?,
            pid_level: self.offset_of("pid", "level")?,
            pid_numbers: self.offset_of("pid", "numbers")?,
            upid_size: self.size_of("upid")?,
            upid_ns: self.offset_of("upid", "ns")?,
            pid_ns_inum: self.offset_of("pid_namespace", "ns.inum")?,
            _pad: 0,
        })
    }

    /// `packet_sock.num` (`SockOffsets::packet_num`), 0 without `packet_sock` in this BTF.
    fn packet_num(&self) -> u32 {
        self.offset_of("packet_sock", "num").unwrap_or(0)
    }

    /// The offsets the socket walk needs (`recorder_ebpf::SockOffsets`), with its spans laid
    /// out and checked to fit the program's span buffer.
    pub fn sock_offsets(&self) -> Result<SockOffsets> {
        let off = |s: &str, m: &str| self.offset_of(s, m);
        let skc = |m: &str| off("sock_common", m);
        let (private_data, f_inode) = (off("file", "private_data")?, off("file", "f_inode")?);
        let file_start = private_data.min(f_inode);
        let sa_vfs_inode = off("socket_alloc", "vfs_inode")?;
        let (i_mode, i_ino) = (off("inode", "i_mode")?, off("inode", "i_ino")?);
        let (unix_addr, unix_peer) = (off("unix_sock", "addr")?, off("unix_sock", "peer")?);
        let unix_start = unix_addr.min(unix_peer);
        // A kernel without IPv6 has no v6 addresses in sock_common: the walk then reads none.
        let v6 = skc("skc_v6_daddr").and_then(|d| Ok((d, skc("skc_v6_rcv_saddr")?)));
        let (v6_daddr, v6_rcv_saddr) = v6.unwrap_or((0, 0));
        let skc_fields = [
            skc("skc_daddr")? + 4,
            skc("skc_rcv_saddr")? + 4,
            skc("skc_dport")? + 2,
            skc("skc_num")? + 2,
            skc("skc_family")? + 2,
            skc("skc_state")? + 1,
            skc("skc_bound_dev_if")? + 4,
            skc("skc_net")? + 8,
            v6_daddr + 16,
            v6_rcv_saddr + 16,
        ];
        let o = SockOffsets {
            enabled: 1,
            task_files: off("task_struct", "files")?,
            files_fdt: off("files_struct", "fdt")?,
            fdt_span: off("fdtable", "max_fds")?.max(off("fdtable", "fd")?) + 8,
            fdt_max_fds_rel: off("fdtable", "max_fds")?,
            fdt_fd_rel: off("fdtable", "fd")?,
            file_span_start: file_start,
            file_span_len: private_data.max(f_inode) - file_start + 8,
            file_private_data_rel: private_data - file_start,
            file_f_inode_rel: f_inode - file_start,
            sa_span_len: sa_vfs_inode + i_mode.max(i_ino) + 8,
            sa_vfs_inode,
            socket_file_rel: off("socket", "file")?,
            socket_sk_rel: off("socket", "sk")?,
            inode_i_mode_rel: sa_vfs_inode + i_mode,
            inode_i_ino_rel: sa_vfs_inode + i_ino,
            skc_span_len: skc_fields.into_iter().max().unwrap_or(0),
            skc_daddr: skc("skc_daddr")?,
            skc_rcv_saddr: skc("skc_rcv_saddr")?,
            skc_dport: skc("skc_dport")?,
            skc_num: skc("skc_num")?,
            skc_family: skc("skc_family")?,
            skc_state: skc("skc_state")?,
            skc_bound_dev_if: skc("skc_bound_dev_if")?,
            skc_net: skc("skc_net")?,
            skc_v6_daddr: v6_daddr,
            skc_v6_rcv_saddr: v6_rcv_saddr,
            sk_protocol: off("sock", "sk_protocol")?,
            sk_type: off("sock", "sk_type")?,
            net_ns_inum: off("net", "ns.inum")?,
            unix_span_start: unix_start,
            unix_span_len: unix_addr.max(unix_peer) - unix_start + 8,
            unix_addr_rel: unix_addr - unix_start,
            unix_peer_rel: unix_peer - unix_start,
            unix_address_len: off("unix_address", "len")?,
            unix_address_name: off("unix_address", "name")?,
            netlink_portid: off("netlink_sock", "portid").unwrap_or(0),
            packet_num: self.packet_num(),
            ..SockOffsets::default()
        };
        if off("sock", "__sk_common")? != 0 {
            bail!("struct sock does not start with its sock_common");
        }
        if o.sk_protocol.abs_diff(o.sk_type) != 2 {
            bail!("sock.sk_protocol and sk_type are not adjacent u16s (a kernel before 5.6?)");
        }
        let spans = [
            ("fdtable", o.fdt_span),
            ("file", o.file_span_len),
            ("socket_alloc", o.sa_span_len),
            ("sock_common", o.skc_span_len),
            ("unix_sock", o.unix_span_len),
        ];
        for (name, len) in spans {
            if len > SOCK_SPAN {
                bail!("the {name} fields span {len} bytes, more than the walk reads ({SOCK_SPAN})");
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny BTF blob: `struct inner { int a; int b; }` and
    /// `struct outer { long x; union { int pad; struct inner in; }; }`.
    fn tiny_btf() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0pad\0in\0".to_vec();
        let s = |name: &str| {
            let needle = [name.as_bytes(), b"\0"].concat();
            strings
                .windows(needle.len())
                .enumerate()
                .find(|(i, w)| *w == needle.as_slice() && strings[i - 1] == 0)
                .unwrap()
                .0 as u32
        };
        let mut t = Vec::new();
        let mut push = |words: &[u32]| {
            words
                .iter()
                .for_each(|w| t.extend_from_slice(&w.to_le_bytes()))
        };
        // 1: int
        push(&[s("int"), KIND_INT << 24, 4, 32]);
        // 2: struct inner { a @0, b @32 bits }
        push(&[
            s("inner"),
            KIND_STRUCT << 24 | 2,
            8,
            s("a"),
            1,
            0,
            s("b"),
            1,
            32,
        ]);
        // 3: anonymous union { pad, in }
        push(&[0, KIND_UNION << 24 | 2, 8, s("pad"), 1, 0, s("in"), 2, 0]);
        // 4: struct outer { x @0, <anon> @64 bits }
        push(&[
            s("outer"),
            KIND_STRUCT << 24 | 2,
            16,
            s("x"),
            1,
            0,
            0,
            3,
            64,
        ]);
        let mut b = Vec::new();
        for w in [
            0x0001_eb9f_u32,
            24,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_nested_structs() {
        let btf = Btf::parse(&tiny_btf()).unwrap();
        assert_eq!(btf.offset_of("outer", "x").unwrap(), 0);
        assert_eq!(btf.offset_of("outer", "pad").unwrap(), 8);
        assert_eq!(btf.offset_of("outer", "in.b").unwrap(), 12);
        assert_eq!(btf.size_of("inner").unwrap(), 8);
        assert!(btf.offset_of("outer", "nope").is_err());
        assert!(btf.struct_id("missing").is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, clearly not").is_err());
    }

    #[test]
    fn running_kernel_has_the_task_fields_we_need() {
        // Every kernel the recorder supports exposes BTF; on one without it this test says so.
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("skipping: /sys/kernel/btf/vmlinux not readable");
            return;
        };
        let o = btf.task_offsets().unwrap();
        assert!(o.task_real_parent > 0 && o.upid_size >= 16);
        let s = btf.sock_offsets().unwrap();
        // Layout facts every supported kernel shares: the inode right after the socket, the
        // v4 address pair first in sock_common.
        assert_eq!(s.sa_vfs_inode, btf.size_of("socket").unwrap());
        assert_eq!((s.skc_daddr, s.skc_rcv_saddr), (0, 4));
        assert!(s.skc_v6_rcv_saddr > 0 && s.netlink_portid > 0, "{s:?}");
        // 6.2 and later (this machine runs 6.18) have the kfunc the fast walk casts with.
        let f = btf.fast_walk_ids().unwrap();
        assert!(btf.starts_with_file_ptr(f.file_holder) && f.rdonly_cast > 0);
    }
}
