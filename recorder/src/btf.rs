//! Just enough of a BTF reader to find struct member offsets in the running kernel
//! (`/sys/kernel/btf/vmlinux`), so the eBPF programs can follow `task_struct` pointers without
//! CO-RE (which aya-ebpf 0.2.1 does not offer). See `recorder_ebpf::TaskOffsets`.

use anyhow::{Context as _, Result, anyhow, bail};
use recorder_ebpf::TaskOffsets;

const BTF_MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
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
    }
}
