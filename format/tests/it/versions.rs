//! The version policy of FORMAT.md §8, checked against files built here from the spec alone:
//! a 1.x reader reads a later 1.y file (appended fields, unknown sections, longer index), and
//! refuses a 2.x file naming both versions.

use format::TraceReader;

fn crc(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0, |c, p| crc32c::crc32c_append(c, p))
}

fn preamble(major: u16, minor: u16) -> Vec<u8> {
    let mut p = vec![0x89, b'G', b'S', b'O', b'\r', b'\n', 0x1a, b'\n'];
    p.extend_from_slice(&major.to_le_bytes());
    p.extend_from_slice(&minor.to_le_bytes());
    let c = crc(&[&p]);
    p.extend_from_slice(&c.to_le_bytes());
    p
}

fn section(tag: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut h = tag.to_vec();
    h.extend_from_slice(&(body.len() as u32).to_le_bytes());
    h.extend_from_slice(&crc(&[body]).to_le_bytes());
    let hc = crc(&[&h]);
    h.extend_from_slice(&hc.to_le_bytes());
    h.extend_from_slice(body);
    h
}

/// The sections of a file, as (tag, body), by walking the framing of FORMAT.md §2.2.
fn sections(file: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 16;
    while at + 24 < file.len() {
        let tag: [u8; 4] = file[at..at + 4].try_into().unwrap();
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((tag, file[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    out
}

fn varint(out: &mut Vec<u8>, v: u64) {
    out.extend(bincode::encode_to_vec(v, bincode::config::standard()).unwrap());
}

/// Appends the 1.2 socket columns (FORMAT.md 4.3: an empty socket table and a site socket
/// column saying "not recorded") to a payload without them: a later version's column comes
/// after them.
fn with_socket_columns(payload: &mut Vec<u8>) {
    let u64_at = |p: &[u8], at: usize| u64::from_le_bytes(p[at..at + 8].try_into().unwrap());
    let threads = u64_at(payload, 0) as usize;
    let sites_at = 8 + 52 * threads;
    let sites = u64_at(payload, sites_at) as usize;
    let mut at = sites_at + 8 + 36 * sites;
    for width in [8, 8, 4, 8, 8] {
        at += 8 + width * u64_at(payload, at) as usize;
    }
    at += 8 + u64_at(payload, at) as usize;
    if at < payload.len() {
        return;
    }
    payload.extend_from_slice(&0u64.to_le_bytes());
    payload.extend_from_slice(&(sites as u64).to_le_bytes());
    for _ in 0..sites {
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
    }
}

/// A file as a later 1.7 writer might make it from the same content: fields appended to the
/// header, the index and each block payload, and a section of a kind 1.0 does not know.
fn future_minor_file(current: &[u8]) -> Vec<u8> {
    let mut file = preamble(1, 7);
    let mut blocks = Vec::new();
    let mut sides = Vec::new();
    for (tag, mut body) in sections(current) {
        match &tag {
            b"HEAD" => {
                body.extend_from_slice(&[3, b'n', b'e', b'w', 1]); // two appended fields
                file.extend(section(&tag, &body));
                file.extend(section(b"XTRA", b"a section kind from the future"));
            }
            b"INDX" => {}
            _ => {
                let at = file.len() as u64;
                if &tag == b"BLCK" {
                    // A column appended after the last one 1.2 knows in the payload.
                    let mut payload = zstd::bulk::decompress(&body[24..], 64 << 20).unwrap();
                    with_socket_columns(&mut payload);
                    payload.extend_from_slice(&3u64.to_le_bytes());
                    payload.extend_from_slice(b"abc");
                    let frame = zstd::bulk::compress(&payload, 3).unwrap();
                    body.truncate(24);
                    body[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
                    body.extend_from_slice(&frame);
                    let n = u32::from_le_bytes(body[0..4].try_into().unwrap());
                    let min = u64::from_le_bytes(body[8..16].try_into().unwrap());
                    let max = u64::from_le_bytes(body[16..24].try_into().unwrap());
                    blocks.push((at, n, min, max));
                } else {
                    sides.push((tag, at));
                }
                file.extend(section(&tag, &body));
            }
        }
    }
    let mut index = Vec::new();
    varint(&mut index, blocks.len() as u64);
    let mut total = 0;
    for (at, n, min, max) in &blocks {
        for v in [*at, *n as u64, *min, *max] {
            varint(&mut index, v);
        }
        total += *n as u64;
    }
    varint(&mut index, sides.len() as u64);
    for (tag, at) in &sides {
        index.extend_from_slice(tag);
        varint(&mut index, *at);
    }
    varint(&mut index, total);
    varint(&mut index, 0); // 1.3's CTNR section offsets: none
    varint(&mut index, 99); // a field 1.7 appended to the index
    let index_at = file.len() as u64;
    file.extend(section(b"INDX", &index));
    let mut trailer = index_at.to_le_bytes().to_vec();
    trailer.extend_from_slice(&[0; 4]);
    let c = crc(&[&trailer, b"GSOTEND\n"]);
    trailer.extend_from_slice(&c.to_le_bytes());
    trailer.extend_from_slice(b"GSOTEND\n");
    file.extend(trailer);
    file
}

#[test]
fn a_later_minor_version_is_read_in_full() {
    let events = crate::common::synth_events(500, 4);
    let current = crate::common::write_file(&events, 200);
    let expected = TraceReader::from_bytes(current.clone()).unwrap();
    let future = TraceReader::from_bytes(future_minor_file(&current)).unwrap();
    assert_eq!(future.version(), (1, 7));
    assert!(future.recovery().is_none(), "{:?}", future.recovery());
    assert_eq!(future.header(), expected.header());
    assert_eq!(future.processes(), expected.processes());
    assert_eq!(future.losses(), expected.losses());
    assert_eq!(future.read_all_events().unwrap(), events);
}

#[test]
fn a_later_minor_version_is_also_read_by_scanning() {
    let events = crate::common::synth_events(500, 4);
    let current = crate::common::write_file(&events, 200);
    let mut future = future_minor_file(&current);
    future.truncate(future.len() - 24); // no trailer: the recovery path
    let r = TraceReader::from_bytes(future).unwrap();
    assert!(
        r.recovery().unwrap().problems.is_empty(),
        "{:?}",
        r.recovery()
    );
    assert_eq!(r.read_all_events().unwrap(), events);
}

#[test]
fn a_new_major_version_is_refused_naming_both_versions() {
    let events = crate::common::synth_events(10, 4);
    let mut file = crate::common::write_file(&events, 200);
    file[..16].copy_from_slice(&preamble(2, 3));
    let err = TraceReader::from_bytes(file).err().unwrap();
    assert_eq!(
        err.to_string(),
        "at offset 8: this file is format version 2.3, this reader reads versions 1.x only; use a newer release of the tools"
    );
}

#[test]
fn the_crc_is_the_castagnoli_one_the_spec_names() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}
