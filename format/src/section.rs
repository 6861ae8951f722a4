//! The file's framing: preamble, section headers, trailer. All fixed little-endian layouts.

use crate::Error;

/// First 8 bytes of every trace file. The high first byte and the CR LF / ^Z / LF bytes catch
/// the usual ways a binary file is damaged in transit, as PNG's signature does.
pub const MAGIC: [u8; 8] = [0x89, b'G', b'S', b'O', b'\r', b'\n', 0x1a, b'\n'];
/// Last 8 bytes of a file that was finished cleanly.
pub const END_MAGIC: [u8; 8] = *b"GSOTEND\n";

pub const PREAMBLE_LEN: usize = 16;
pub const SECTION_HEADER_LEN: usize = 16;
pub const TRAILER_LEN: usize = 24;

/// Largest section body this implementation writes or reads (a block, compressed).
pub const MAX_SECTION_BODY: u32 = 256 << 20;

/// Section kinds. A reader skips kinds it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag(pub [u8; 4]);

impl Tag {
    pub const HEADER: Tag = Tag(*b"HEAD");
    pub const BLOCK: Tag = Tag(*b"BLCK");
    pub const PROCESSES: Tag = Tag(*b"PROC");
    pub const LOSSES: Tag = Tag(*b"LOSS");
    pub const INDEX: Tag = Tag(*b"INDX");
    /// Since 1.1: a block's durations by call site, right after the block.
    pub const SUMMARY: Tag = Tag(*b"BSUM");
    /// Since 1.3: what a container runtime said of containers (FORMAT.md 5.1).
    pub const CONTAINERS: Tag = Tag(*b"CTNR");
    /// Since 1.3: cgroup v1 paths of processes at the v2 root (FORMAT.md 5.2).
    pub const CGROUP_V1: Tag = Tag(*b"CGV1");
    /// Since 1.4: exact counts of a sampled capture's calls by period (FORMAT.md 5.3).
    pub const AGGREGATES: Tag = Tag(*b"AGGR");

    /// The kinds `INDX` lists in `more_sections` (FORMAT.md 6): every side table added since 1.3.
    pub const MORE: [Tag; 3] = [Tag::CONTAINERS, Tag::CGROUP_V1, Tag::AGGREGATES];

    pub fn name(&self) -> String {
        self.0
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect()
    }
}

pub fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

pub fn encode_preamble(major: u16, minor: u16) -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..8].copy_from_slice(&MAGIC);
    p[8..10].copy_from_slice(&major.to_le_bytes());
    p[10..12].copy_from_slice(&minor.to_le_bytes());
    let c = crc(&p[..12]);
    p[12..16].copy_from_slice(&c.to_le_bytes());
    p
}

/// Checks the magic, then the version, then the checksum, in that order: a file from a newer
/// major version must be told apart from a damaged one.
pub fn decode_preamble(file: &[u8]) -> Result<(u16, u16), Error> {
    if file.len() < 8 || file[..8] != MAGIC {
        let mut found = [0u8; 8];
        let n = file.len().min(8);
        found[..n].copy_from_slice(&file[..n]);
        if file.len() < 8 && MAGIC.starts_with(&file[..n]) {
            return Err(Error::truncated(n as u64, "the 8-byte trace file magic"));
        }
        return Err(Error::NotATrace { found });
    }
    if file.len() < PREAMBLE_LEN {
        return Err(Error::truncated(file.len() as u64, "the 16-byte preamble"));
    }
    let major = u16::from_le_bytes([file[8], file[9]]);
    let minor = u16::from_le_bytes([file[10], file[11]]);
    if major != crate::VERSION_MAJOR {
        return Err(Error::UnsupportedVersion { major, minor });
    }
    let stored = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes"));
    let computed = crc(&file[..12]);
    if stored != computed {
        return Err(Error::ChecksumMismatch {
            offset: 12,
            what: "the preamble",
            stored,
            computed,
        });
    }
    Ok((major, minor))
}

/// A section header: tag, body length, body checksum, and a checksum of those 12 bytes so a
/// scanner can tell a real header from noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    pub tag: Tag,
    pub body_len: u32,
    pub body_crc: u32,
}

impl SectionHeader {
    /// The header of a section whose body is the concatenation of `parts`.
    pub fn for_parts(tag: Tag, parts: &[&[u8]]) -> Result<SectionHeader, Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let body_len = u32::try_from(len)
            .ok()
            .filter(|&n| n <= MAX_SECTION_BODY)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "a {} section of {len} bytes is larger than the format's limit of {MAX_SECTION_BODY}",
                    tag.name()
                ))
            })?;
        let body_crc = parts.iter().fold(0, |c, p| crc32c::crc32c_append(c, p));
        Ok(SectionHeader {
            tag,
            body_len,
            body_crc,
        })
    }

    pub fn encode(&self) -> [u8; SECTION_HEADER_LEN] {
        let mut h = [0u8; SECTION_HEADER_LEN];
        h[..4].copy_from_slice(&self.tag.0);
        h[4..8].copy_from_slice(&self.body_len.to_le_bytes());
        h[8..12].copy_from_slice(&self.body_crc.to_le_bytes());
        let c = crc(&h[..12]);
        h[12..16].copy_from_slice(&c.to_le_bytes());
        h
    }

    /// Decodes the section header at `offset` of `file`, checking its own checksum and that its
    /// body lies within the file.
    pub fn decode_at(file: &[u8], offset: u64) -> Result<SectionHeader, Error> {
        let start = offset as usize;
        let h = file
            .get(start..start.saturating_add(SECTION_HEADER_LEN))
            .ok_or_else(|| Error::truncated(offset, "a 16-byte section header"))?;
        let header = SectionHeader::decode(h.try_into().expect("16 bytes"), offset)?;
        let body_start = offset + SECTION_HEADER_LEN as u64;
        if body_start + header.body_len as u64 > file.len() as u64 {
            return Err(Error::truncated(
                body_start,
                format!(
                    "a {}-byte {} section body, {} bytes left",
                    header.body_len,
                    header.tag.name(),
                    file.len() as u64 - body_start.min(file.len() as u64)
                ),
            ));
        }
        Ok(header)
    }

    /// Decodes the 16 header bytes `h` of the section at `offset`, checking its own checksum
    /// and the body length limit (not that the body is there: a stream has not read it yet).
    pub fn decode(h: &[u8; SECTION_HEADER_LEN], offset: u64) -> Result<SectionHeader, Error> {
        let stored = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
        let computed = crc(&h[..12]);
        if stored != computed {
            return Err(Error::ChecksumMismatch {
                offset,
                what: "a section header",
                stored,
                computed,
            });
        }
        let tag = Tag(h[..4].try_into().expect("4 bytes"));
        let body_len = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let body_crc = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
        if body_len > MAX_SECTION_BODY {
            return Err(Error::malformed(
                offset + 4,
                format!("a section body length of at most {MAX_SECTION_BODY}, found {body_len}"),
            ));
        }
        Ok(SectionHeader {
            tag,
            body_len,
            body_crc,
        })
    }

    /// The body of this section (which starts at `offset`), after checking its checksum.
    pub fn checked_body<'f>(&self, file: &'f [u8], offset: u64) -> Result<&'f [u8], Error> {
        let start = offset as usize + SECTION_HEADER_LEN;
        let body = &file[start..start + self.body_len as usize];
        self.check_body(body, start as u64)?;
        Ok(body)
    }

    /// Checks `body`, found at file offset `body_offset`, against this header's checksum.
    pub fn check_body(&self, body: &[u8], body_offset: u64) -> Result<(), Error> {
        let computed = crc(body);
        if computed != self.body_crc {
            return Err(Error::ChecksumMismatch {
                offset: body_offset,
                what: section_what(self.tag),
                stored: self.body_crc,
                computed,
            });
        }
        Ok(())
    }

    /// Offset of the section after this one (which starts at `offset`).
    pub fn end(&self, offset: u64) -> u64 {
        offset + SECTION_HEADER_LEN as u64 + self.body_len as u64
    }
}

fn section_what(tag: Tag) -> &'static str {
    match tag {
        Tag::HEADER => "the header section",
        Tag::BLOCK => "an event block",
        Tag::PROCESSES => "a process table section",
        Tag::CONTAINERS => "a container table section",
        Tag::CGROUP_V1 => "a cgroup v1 path section",
        Tag::AGGREGATES => "an aggregate record section",
        Tag::LOSSES => "a loss record section",
        Tag::INDEX => "the index section",
        Tag::SUMMARY => "a block summary",
        _ => "a section of unknown kind",
    }
}

pub fn encode_trailer(index_offset: u64) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[..8].copy_from_slice(&index_offset.to_le_bytes());
    // bytes 8..12 are reserved (zero)
    t[16..24].copy_from_slice(&END_MAGIC);
    let c = trailer_crc(&t);
    t[12..16].copy_from_slice(&c.to_le_bytes());
    t
}

/// The trailer's checksum covers its other 20 bytes, end magic included. (Were it over the
/// first 12 bytes only, a trailer would also pass as a valid empty section header.)
fn trailer_crc(t: &[u8]) -> u32 {
    crc32c::crc32c_append(crc(&t[..12]), &t[16..24])
}

/// The index offset from a clean file's trailer, or why there is no usable trailer.
pub fn decode_trailer(file: &[u8]) -> Result<u64, Error> {
    let len = file.len() as u64;
    if file.len() < PREAMBLE_LEN + TRAILER_LEN {
        return Err(Error::truncated(
            len,
            "a 24-byte trailer at the end of the file",
        ));
    }
    let at = file.len() - TRAILER_LEN;
    decode_trailer_at(file[at..].try_into().expect("24 bytes"), at as u64)
}

/// The index offset from the trailer `t` found at file offset `at`, or why it is not usable.
pub fn decode_trailer_at(t: &[u8; TRAILER_LEN], at: u64) -> Result<u64, Error> {
    if t[16..24] != END_MAGIC {
        return Err(Error::malformed(
            at + 16,
            "the end magic \"GSOTEND\\n\" (the recorder did not finish this file)",
        ));
    }
    let stored = u32::from_le_bytes(t[12..16].try_into().expect("4 bytes"));
    let computed = trailer_crc(t);
    if stored != computed {
        return Err(Error::ChecksumMismatch {
            offset: at + 12,
            what: "the trailer",
            stored,
            computed,
        });
    }
    let index_offset = u64::from_le_bytes(t[..8].try_into().expect("8 bytes"));
    if index_offset < PREAMBLE_LEN as u64 || index_offset >= at {
        return Err(Error::malformed(
            at,
            format!("an index offset between {PREAMBLE_LEN} and {at}, found {index_offset}"),
        ));
    }
    Ok(index_offset)
}
