//! Block summaries (`BSUM`, format 1.1): what they say, that a 1.0 file and a file without
//! them are read as before, and that damage in one is reported, never believed.

use std::collections::HashMap;

use format::{BlockSummary, DecodedBlock, Error, TraceReader, TraceWriter, WriterOptions};
use proptest::prelude::*;

/// The (thread, site fields) of each event's site and its duration, from the events alone.
fn expected_runs(r: &TraceReader) -> Vec<Vec<Vec<u64>>> {
    let mut out = Vec::new();
    let mut d = DecodedBlock::new();
    for b in r.blocks() {
        r.decode_block(b, &mut d).unwrap();
        let mut runs = vec![Vec::new(); d.sites().len()];
        for (s, e) in d.site_indexes().zip(d.events()) {
            runs[s as usize].push(e.duration_ns);
        }
        for run in &mut runs {
            run.sort_unstable();
        }
        out.push(runs);
    }
    out
}

fn summary_runs(r: &TraceReader) -> Vec<Vec<Vec<u64>>> {
    let mut s = BlockSummary::new();
    r.blocks()
        .iter()
        .map(|b| {
            assert!(r.read_summary(b, &mut s).unwrap(), "block at {}", b.offset);
            assert_eq!(s.event_count(), b.event_count as usize);
            (0..s.site_count())
                .map(|i| s.site_durations(i).to_vec())
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Every block gets a summary, and it holds exactly the block's durations, sorted, per site.
    #[test]
    fn summaries_hold_each_sites_sorted_durations(
        n in 1u64..3000, seed in 0u64..1000, per_block in 1u32..700
    ) {
        let events = crate::common::synth_events(n, seed);
        let r = TraceReader::from_bytes(crate::common::write_file(&events, per_block)).unwrap();
        prop_assert_eq!(summary_runs(&r), expected_runs(&r));
        let mut s = BlockSummary::new();
        let mut d = DecodedBlock::new();
        for b in r.blocks() {
            r.read_summary(b, &mut s).unwrap();
            r.decode_block(b, &mut d).unwrap();
            s.check_against(&d).unwrap();
        }
    }

    /// The same with durations of every width up to 32 bits (the writer sorts those with one
    /// radix pass per 11 bits), many of them repeated, and with all durations 0.
    #[test]
    fn summaries_sort_durations_of_every_width(
        n in 1u64..3000, seed in 0u64..1000, bits in 0u32..=32
    ) {
        let mut events = crate::common::synth_events(n, seed);
        let mut x = seed | 1;
        for e in &mut events {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half the events draw from few values, so runs hold equal durations.
            let v = if x & 1 == 0 { x >> 40 & 3 } else { x >> 20 };
            e.duration_ns = if bits == 0 { 0 } else { v & (u64::MAX >> (64 - bits)) };
        }
        let r = TraceReader::from_bytes(crate::common::write_file(&events, 512)).unwrap();
        prop_assert_eq!(summary_runs(&r), expected_runs(&r));
    }
}

#[test]
fn durations_of_every_size_survive() {
    // Durations around each varint width boundary and the largest a u64 holds, at one site.
    let mut events = crate::common::synth_events(12, 3);
    let durations = [
        0,
        250,
        251,
        65_535,
        65_536,
        u32::MAX as u64,
        u32::MAX as u64 + 1,
        u64::MAX - 1,
        u64::MAX,
        7,
        7,
        1,
    ];
    let first = events[0].clone();
    for (e, d) in events.iter_mut().zip(durations) {
        *e = first.clone();
        e.duration_ns = d;
    }
    let r = TraceReader::from_bytes(crate::common::write_file(&events, 64)).unwrap();
    let runs = summary_runs(&r);
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    assert_eq!(runs, vec![vec![sorted]]);
}

#[test]
fn files_of_format_1_0_and_files_written_without_summaries_have_none() {
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/synthetic-mixed.gsot");
    let r = TraceReader::open(&sample).unwrap();
    assert_eq!(r.version(), (1, 0));
    let mut s = BlockSummary::new();
    for b in r.blocks() {
        assert!(!r.read_summary(b, &mut s).unwrap());
    }

    let events = crate::common::synth_events(500, 1);
    let opts = WriterOptions {
        max_block_events: 100,
        block_summaries: false,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::try_new(Vec::new(), &crate::common::header(), opts).unwrap();
    for e in &events {
        w.write(&e.as_event()).unwrap();
    }
    let r = TraceReader::from_bytes(w.finish().unwrap()).unwrap();
    assert_eq!(r.blocks().len(), 5);
    for b in r.blocks() {
        assert!(!r.read_summary(b, &mut s).unwrap());
    }
    assert_eq!(r.read_all_events().unwrap(), events);
}

/// Offset and body length of the summary after `block`.
fn summary_at(bytes: &[u8], block_offset: u64) -> (usize, usize) {
    let o = block_offset as usize;
    let len = u32::from_le_bytes(bytes[o + 4..o + 8].try_into().unwrap()) as usize;
    let at = o + 16 + len;
    assert_eq!(&bytes[at..at + 4], b"BSUM");
    let body_len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    (at, body_len)
}

/// Rewrites both checksums of the section at `at`, as a writer with a bug would produce them.
fn reseal(bytes: &mut [u8], at: usize, body_len: usize) {
    let crc = crc32c::crc32c(&bytes[at + 16..at + 16 + body_len]);
    bytes[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32c::crc32c(&bytes[at..at + 12]);
    bytes[at + 12..at + 16].copy_from_slice(&hcrc.to_le_bytes());
}

/// `file`, which ends with the section at `at` whose body is `body_len` bytes, with `extra`
/// appended to that body and the section's length and CRCs made to match.
fn grow_last_section(file: &[u8], at: usize, body_len: usize, extra: &[u8]) -> Vec<u8> {
    let mut f = file.to_vec();
    f.extend_from_slice(extra);
    let grown = body_len + extra.len();
    f[at + 4..at + 8].copy_from_slice(&(grown as u32).to_le_bytes());
    reseal(&mut f, at, grown);
    f
}

#[test]
fn a_damaged_or_inconsistent_summary_is_an_error_and_its_block_still_reads() {
    let events = crate::common::synth_events(300, 5);
    let bytes = crate::common::write_file(&events, 100);
    let r = TraceReader::from_bytes(bytes.clone()).unwrap();
    let b = r.blocks()[1];
    let (at, body_len) = summary_at(&bytes, b.offset);
    let mut s = BlockSummary::new();

    // A flipped bit: the body checksum catches it.
    let mut flipped = bytes.clone();
    flipped[at + 16 + body_len - 1] ^= 0x10;
    let r = TraceReader::from_bytes(flipped).unwrap();
    let e = r.read_summary(&r.blocks()[1], &mut s).unwrap_err();
    let Error::ChecksumMismatch {
        stored, computed, ..
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(
        e.to_string(),
        format!(
            "at offset {}: checksum mismatch in a block summary: stored 0x{stored:08x}, computed 0x{computed:08x} (the file is corrupted)",
            at + 16
        )
    );
    assert_eq!(r.read_all_events().unwrap(), events);

    // Intact checksums over wrong contents: each check names what it expected.
    let cases: [(usize, u32, String); 3] = [
        (
            0,
            7,
            format!(
                "at offset {}: expected a summary of the block at offset {}, found one of offset 7",
                at + 16,
                b.offset
            ),
        ),
        (
            8,
            99,
            format!(
                "at offset {}: expected the block's event count 100, found 99",
                at + 24
            ),
        ),
        (
            12,
            101,
            format!(
                "at offset {}: expected at most 100 sites (one per event), found 101",
                at + 28
            ),
        ),
    ];
    for (field, value, text) in cases {
        let mut bad = bytes.clone();
        bad[at + 16 + field..at + 16 + field + 4].copy_from_slice(&value.to_le_bytes());
        if field == 0 {
            bad[at + 20..at + 24].copy_from_slice(&[0; 4]);
        }
        reseal(&mut bad, at, body_len);
        let r = TraceReader::from_bytes(bad).unwrap();
        let e = r.read_summary(&r.blocks()[1], &mut s).unwrap_err();
        assert_eq!(e.to_string(), text);
        assert_eq!(r.read_all_events().unwrap(), events);
    }
}

#[test]
fn a_file_cut_inside_a_summary_keeps_every_block_and_has_no_summary_for_the_last() {
    let events = crate::common::synth_events(300, 6);
    let bytes = crate::common::write_file(&events, 100);
    let r = TraceReader::from_bytes(bytes.clone()).unwrap();
    let last = r.blocks()[2];
    let (at, body_len) = summary_at(&bytes, last.offset);
    let mut s = BlockSummary::new();
    for cut in [
        at + 3,
        at + 16,
        at + 16 + body_len / 2,
        at + 16 + body_len - 1,
    ] {
        let r = TraceReader::from_bytes(bytes[..cut].to_vec()).unwrap();
        assert!(r.recovery().is_some());
        assert_eq!(r.blocks().len(), 3, "cut at {cut}");
        assert!(r.read_summary(&r.blocks()[1], &mut s).unwrap());
        assert!(!r.read_summary(&r.blocks()[2], &mut s).unwrap());
        assert_eq!(r.read_all_events().unwrap(), events);
    }
}

#[test]
fn a_second_frame_after_a_block_or_a_summary_is_an_error() {
    // FORMAT.md: a block body and a summary body each end with exactly one zstd frame; zstd
    // alone would decompress a second (empty) frame or skip a skippable one.
    let events = crate::common::synth_events(300, 9);
    let bytes = crate::common::write_file(&events, 100);
    let r = TraceReader::from_bytes(bytes.clone()).unwrap();
    let last = r.blocks()[2];
    let (sum_at, sum_len) = summary_at(&bytes, last.offset);
    let empty_frame = zstd::encode_all(&[][..], 1).unwrap();
    let skippable = [0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 0xab, 0xcd];
    let mut s = BlockSummary::new();
    let mut d = DecodedBlock::new();
    for extra in [&empty_frame[..], &skippable[..]] {
        // The file cut after the last summary (a crash): it is found by a scan, so sections
        // may grow. First the summary gets the extra bytes, then the block.
        let f = grow_last_section(&bytes[..sum_at + 16 + sum_len], sum_at, sum_len, extra);
        let r = TraceReader::from_bytes(f).unwrap();
        let e = r.read_summary(&r.blocks()[2], &mut s).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "at offset {}: expected exactly one zstd frame, found one of {} bytes followed by {} more",
                sum_at + 16 + 20,
                sum_len - 20,
                extra.len()
            )
        );

        let o = last.offset as usize;
        let block_len = sum_at - o - 16;
        let f = grow_last_section(&bytes[..sum_at], o, block_len, extra);
        let r = TraceReader::from_bytes(f).unwrap();
        let e = r.decode_block(&r.blocks()[2], &mut d).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "at offset {}: expected exactly one zstd frame, found one of {} bytes followed by {} more",
                o + 16 + 24,
                block_len - 24,
                extra.len()
            )
        );
    }
}

#[test]
fn check_against_catches_a_summary_of_other_durations() {
    // Two files of the same sites whose durations differ in one event: a summary read from
    // one does not pass as the other's.
    let events = crate::common::synth_events(200, 8);
    let mut other = events.clone();
    other[150].duration_ns += 1;
    let a = TraceReader::from_bytes(crate::common::write_file(&events, 200)).unwrap();
    let b = TraceReader::from_bytes(crate::common::write_file(&other, 200)).unwrap();
    let mut s = BlockSummary::new();
    let mut d = DecodedBlock::new();
    a.read_summary(&a.blocks()[0], &mut s).unwrap();
    b.decode_block(&b.blocks()[0], &mut d).unwrap();
    let e = s.check_against(&d).unwrap_err().to_string();
    let per_site: HashMap<u32, usize> = d.site_indexes().fold(HashMap::new(), |mut m, i| {
        *m.entry(i).or_default() += 1;
        m
    });
    assert!(
        e.starts_with(&format!("at offset {}: expected at site ", s.offset())),
        "{e}"
    );
    assert!(per_site.len() > 1);
}
