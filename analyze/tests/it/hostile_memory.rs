//! Files from other people: sizes and counts a file announces must not size analyze's memory.
//! Each crafted file is read by info/events/stats/verify in a child whose peak RSS (wait4's
//! ru_maxrss, via GNU time) is compared with the same command on a tiny valid file.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

const SECTION_HEADER_LEN: usize = 16;
const PREAMBLE_LEN: usize = 16;

/// Runs `analyze ARGS... FILE` and returns (exit code, peak RSS in KiB). Through GNU time, which
/// forks it from a small process and reports wait4's ru_maxrss: spawned from this test process
/// (vfork, shared memory until exec) the child's maximum would start at this process's own
/// peak, which other tests running alongside raise.
fn peak_rss(args: &[&str], file: &Path) -> (i32, i64) {
    let report = file.with_extension("rss");
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_analyze"))
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("GNU time (/usr/bin/time) runs analyze");
    let text = std::fs::read_to_string(&report).unwrap();
    // A failing child makes time write "Command exited with non-zero status N" first.
    let kib = text.lines().last().unwrap().trim().parse().unwrap();
    (status.code().unwrap_or(-1), kib)
}

/// The file offset of the first section tagged `tag`, walking from the preamble.
fn section(file: &[u8], tag: &[u8; 4]) -> usize {
    let mut at = PREAMBLE_LEN;
    loop {
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        if &file[at..at + 4] == tag {
            return at;
        }
        at += SECTION_HEADER_LEN + len;
    }
}

/// Replaces the body of the section at `at` with `body`, fixing its length and CRCs; the
/// sections after it move (the index then points wrong, so readers fall back to a scan).
fn replace_body(file: &mut Vec<u8>, at: usize, body: &[u8]) {
    let old = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
    let start = at + SECTION_HEADER_LEN;
    file.splice(start..start + old, body.iter().copied());
    file[at + 4..at + 8].copy_from_slice(&(body.len() as u32).to_le_bytes());
    file[at + 8..at + 12].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let hcrc = crc32c::crc32c(&file[at..at + 12]);
    file[at + 12..at + 16].copy_from_slice(&hcrc.to_le_bytes());
}

#[test]
fn announced_sizes_do_not_size_memory() {
    let dir = tmp_dir("hostile-memory");
    let tiny = dir.join("tiny.gsot");
    synth(&tiny, 1, 20, 10);
    let valid = std::fs::read(&tiny).unwrap();
    let blck = section(&valid, b"BLCK");
    let body = &valid[blck + SECTION_HEADER_LEN..];

    let mut crafted = Vec::new();
    // The largest event count and payload size the format allows, over the real small frame.
    let mut huge = valid.clone();
    let mut b =
        body[..u32::from_le_bytes(valid[blck + 4..blck + 8].try_into().unwrap()) as usize].to_vec();
    b[0..4].copy_from_slice(&(1u32 << 20).to_le_bytes());
    b[4..8].copy_from_slice(&(64u32 << 20).to_le_bytes());
    replace_body(&mut huge, blck, &b);
    // Without its trailer the file is read by scanning, where no index count stands guard.
    let scanned = huge[..huge.len() - 8].to_vec();
    crafted.push(("block announcing 1 Mi events and a 64 MiB payload", huge));
    crafted.push(("trailerless file whose block announces the same", scanned));
    // A process table announcing 2^62 entries (bincode's 9-byte varint).
    let proc_at = section(&valid, b"PROC");
    let mut procs = valid.clone();
    let mut count = vec![253u8];
    count.extend_from_slice(&(1u64 << 62).to_le_bytes());
    replace_body(&mut procs, proc_at, &count);
    crafted.push(("process table announcing 2^62 entries", procs));

    for cmd in ["info", "events", "stats", "verify"] {
        let (code, base) = peak_rss(&[cmd], &tiny);
        assert_eq!(code, 0, "{cmd} on the valid file");
        for (what, bytes) in &crafted {
            let path = dir.join("crafted.gsot");
            std::fs::write(&path, bytes).unwrap();
            let (_, peak) = peak_rss(&[cmd], &path);
            // A small multiple of the file's size over the baseline, plus allocator slack.
            let bound = base + 8 * bytes.len() as i64 / 1024 + 4096;
            eprintln!("{cmd} {what}: peak {peak} KiB, baseline {base} KiB, bound {bound} KiB");
            assert!(
                peak <= bound,
                "{cmd} on a {what} ({} bytes): peak RSS {peak} KiB, over {bound} KiB \
                 (baseline {base} KiB on a valid file)",
                bytes.len()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A valid file whose one block inflates some 3,000-fold: 1000 events of 60,000 zero bytes
/// each make a 60 MB payload in about 20 KB. Decoding a block needs its payload (FORMAT.md 9), so
/// the bound is one payload, not a multiple of the file: each command holds at most one
/// payload per worker thread, a block on one thread at a time, and writes what it renders in
/// pieces of at most 1 MiB per block, stopping at `--limit`.
#[test]
fn a_compression_bomb_costs_one_payload_not_its_rendering() {
    let dir = tmp_dir("hostile-bomb");
    let tiny = dir.join("tiny.gsot");
    synth(&tiny, 1, 20, 10);
    let (h, mut events) = synth_events(2, 1000);
    for e in &mut events {
        e.value = vec![0; 60_000];
        (e.optlen_in, e.optlen_out) = (60_000, 60_000);
    }
    let bomb = dir.join("bomb.gsot");
    write_events(&bomb, &h, &events, 1000);
    let file_len = std::fs::metadata(&bomb).unwrap().len() as i64;
    let raw_kib = 60_000 * 1000 / 1024;
    assert!(file_len < 32 << 10, "the bomb is {file_len} bytes");
    let runs: [&[&str]; 6] = [
        &["info"],
        &["events", "--limit", "1"],
        &["events"],
        &["events", "--format", "json", "--limit", "3"],
        &["stats"],
        &["verify"],
    ];
    for args in runs {
        let (code, base) = peak_rss(args, &tiny);
        assert_eq!(code, 0, "{args:?} on the valid file");
        let (code, peak) = peak_rss(args, &bomb);
        assert_eq!(code, 0, "{args:?} on the bomb");
        // One payload (grown as it inflates: up to the next power of two), the file, the
        // rendering pieces and allocator slack.
        let bound = base + raw_kib * 9 / 8 + 8 * file_len / 1024 + 8192;
        eprintln!("{args:?} on the bomb: peak {peak} KiB, baseline {base} KiB, bound {bound} KiB");
        assert!(
            peak <= bound,
            "{args:?} on a {file_len}-byte file inflating to {raw_kib} KiB: peak RSS {peak} KiB, \
             over {bound} KiB (baseline {base} KiB on a valid file)"
        );
    }
    // Rendered in pieces, the events still come out whole, once each, in order: 9 events
    // are one piece and a start of the next (120 KB of hex each), 20 are three pieces.
    let bomb_arg = bomb.to_str().unwrap();
    let lines = |n: &str| ok(&["events", "--format", "json", "--limit", n, bomb_arg]);
    let (nine, twenty) = (lines("9"), lines("20"));
    assert_eq!(twenty.lines().count(), 20);
    assert!(twenty.starts_with(&nine) && nine.lines().count() == 9);
    let mut times: Vec<&str> = twenty.lines().map(|l| &l[..l.find(',').unwrap()]).collect();
    times.dedup();
    assert_eq!(times.len(), 20, "an event repeated across pieces");
    assert!(
        twenty
            .lines()
            .all(|l| l.ends_with('}') && l.contains(&"00".repeat(60_000)))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
