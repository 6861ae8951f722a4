//! Damaged files: cut short at every byte, single bits flipped anywhere. Every complete,
//! intact block is still read; everything else is a clean error with an offset; nothing
//! panics and no damaged byte is ever returned as data.

use format::{Error, OwnedEvent, TraceReader};

fn small_file() -> (Vec<u8>, Vec<OwnedEvent>) {
    let events = crate::common::synth_events(120, 11);
    (crate::common::write_file(&events, 25), events)
}

/// (end offset of the block's section, events up to and including that block)
fn block_ends(bytes: &[u8]) -> Vec<(usize, usize)> {
    let r = TraceReader::from_bytes(bytes.to_vec()).unwrap();
    let mut total = 0;
    r.blocks()
        .iter()
        .map(|b| {
            let at = b.offset as usize;
            let body_len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            total += b.event_count as usize;
            (at + 16 + body_len, total)
        })
        .collect()
}

#[test]
fn a_file_cut_at_every_byte_yields_every_complete_block() {
    let (bytes, events) = small_file();
    let ends = block_ends(&bytes);
    let header_end = {
        let len = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
        16 + 16 + len
    };
    for cut in 0..=bytes.len() {
        let prefix = bytes[..cut].to_vec();
        match TraceReader::from_bytes(prefix) {
            Err(e) => {
                assert!(
                    cut < header_end,
                    "cut {cut}: a file with its header must open, got: {e}"
                );
                assert!(matches!(e, Error::Truncated { .. }), "cut {cut}: {e}");
                assert!(e.offset().unwrap() <= cut as u64, "cut {cut}: {e}");
            }
            Ok(r) => {
                assert!(cut >= header_end, "cut {cut}");
                let expected = ends
                    .iter()
                    .take_while(|(end, _)| *end <= cut)
                    .last()
                    .map_or(0, |e| e.1);
                assert_eq!(
                    r.read_all_events().unwrap(),
                    events[..expected],
                    "cut {cut}"
                );
                if cut == bytes.len() {
                    assert!(r.recovery().is_none());
                } else {
                    let rec = r.recovery().expect("a cut file has no trailer");
                    // The only problem is the incomplete section at the end, if the cut fell
                    // inside one, named at its offset.
                    for p in &rec.problems {
                        assert!(matches!(p, Error::Truncated { .. }), "cut {cut}: {p}");
                    }
                    assert!(rec.stopped_at <= cut as u64);
                }
            }
        }
    }
}

#[test]
fn every_flipped_bit_is_detected_or_harmless() {
    let (bytes, _) = small_file();
    let original = TraceReader::from_bytes(bytes.clone()).unwrap();
    let mut by_offset = std::collections::HashMap::new();
    for b in original.blocks() {
        let mut events = Vec::new();
        original
            .for_each_event([b], |e| events.push(e.to_owned_event()))
            .unwrap();
        by_offset.insert(b.offset, events);
    }
    let mut detected_in_blocks = 0;
    for pos in 0..bytes.len() {
        for bit in [0u8, 3, 7] {
            let mut damaged = bytes.clone();
            damaged[pos] ^= 1 << bit;
            let Ok(r) = TraceReader::from_bytes(damaged) else {
                continue;
            };
            assert_eq!(
                r.header(),
                original.header(),
                "flip at {pos}: header must be intact or refused"
            );
            for p in r.processes() {
                assert!(
                    original.processes().contains(p),
                    "flip at {pos}: invented process {p:?}"
                );
            }
            for l in r.losses() {
                assert!(
                    original.losses().contains(l),
                    "flip at {pos}: invented loss record {l:?}"
                );
            }
            let mut decoded = format::DecodedBlock::new();
            for b in r.blocks() {
                match r.decode_block(b, &mut decoded) {
                    Ok(()) => {
                        let got: Vec<_> = decoded.events().map(|e| e.to_owned_event()).collect();
                        assert_eq!(
                            Some(&got),
                            by_offset.get(&b.offset),
                            "flip at {pos}: damaged events returned"
                        );
                    }
                    Err(Error::ChecksumMismatch { .. }) => detected_in_blocks += 1,
                    Err(e) => {
                        panic!("flip at {pos}: a block checksum should catch this first, got {e}")
                    }
                }
            }
        }
    }
    assert!(detected_in_blocks > 0);
}

#[test]
fn a_damaged_section_header_is_skipped_and_scanning_resumes_at_the_next_section() {
    let (bytes, events) = small_file();
    let r = TraceReader::from_bytes(bytes.clone()).unwrap();
    let second = r.blocks()[1];
    let mut damaged = bytes.clone();
    // Break the second block's length field and the trailer, as a bad disk sector might.
    damaged[second.offset as usize + 5] ^= 0xff;
    let n = damaged.len();
    damaged[n - 1] ^= 0xff;
    let r = TraceReader::from_bytes(damaged).unwrap();
    let rec = r.recovery().expect("scanned");
    assert_eq!(rec.problems.len(), 1, "{:?}", rec.problems);
    let text = rec.problems[0].to_string();
    let second_end = second.offset as usize
        + 16
        + u32::from_le_bytes(bytes[second.offset as usize + 4..][..4].try_into().unwrap()) as usize;
    let prefix = format!(
        "at offset {}: expected a section header, found damaged bytes (checksum 0x",
        second.offset
    );
    let suffix = format!(
        "); skipped {} bytes to the next intact section at {second_end}",
        second_end - second.offset as usize
    );
    assert!(
        text.starts_with(&prefix) && text.ends_with(&suffix),
        "{text}"
    );
    let mut expected = events[..25].to_vec();
    expected.extend_from_slice(&events[50..]);
    assert_eq!(r.read_all_events().unwrap(), expected);
}

#[test]
fn not_a_trace_and_empty_input_get_clear_errors() {
    let err = TraceReader::from_bytes(b"hello world, not a trace".to_vec())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "at offset 0: expected the trace file magic 89 47 53 4f 0d 0a 1a 0a, found 68 65 6c 6c 6f 20 77 6f: not a getsockopt trace file"
    );
    let err = TraceReader::from_bytes(Vec::new()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "at offset 0: file ends, expected the 8-byte trace file magic"
    );
    let dir = std::env::temp_dir().join(format!("gsot-empty-{}", std::process::id()));
    std::fs::write(&dir, b"").unwrap();
    let err = TraceReader::open(&dir).err().unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(
        err.to_string(),
        "at offset 0: file ends, expected the 8-byte trace file magic (the file is empty)"
    );
}

#[test]
fn random_bytes_after_a_valid_preamble_never_panic() {
    use proptest::prelude::*;
    let (bytes, _) = small_file();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
    runner
        .run(
            &(0..bytes.len(), prop::collection::vec(any::<u8>(), 1..64)),
            |(at, junk)| {
                let mut damaged = bytes.clone();
                let end = (at + junk.len()).min(damaged.len());
                damaged[at..end].copy_from_slice(&junk[..end - at]);
                if let Ok(r) = TraceReader::from_bytes(damaged) {
                    let mut d = format::DecodedBlock::new();
                    for b in r.blocks() {
                        if r.decode_block(b, &mut d).is_ok() {
                            let _ = d.events().count();
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
