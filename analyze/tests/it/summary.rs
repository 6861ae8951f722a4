//! Questions about sites and durations are answered from block summaries (FORMAT.md 4.2) when
//! a file has them: the answers are exactly those the blocks give, and the columns are not read.

use crate::common::{analyze, synth_events, tmp_dir};
use format::{TraceReader, TraceWriter, WriterOptions};

fn write(path: &std::path::Path, summaries: bool, block_events: u32) {
    let (h, events) = synth_events(11, 40_000);
    let opts = WriterOptions {
        max_block_events: block_events,
        block_summaries: summaries,
        ..WriterOptions::default()
    };
    let f = std::fs::File::create(path).unwrap();
    let mut w = TraceWriter::try_new(std::io::BufWriter::new(f), &h, opts).unwrap();
    for e in &events {
        w.write(&e.as_event()).unwrap();
    }
    w.finish().unwrap();
}

fn stats(file: &str, args: &[&str]) -> String {
    let mut a = vec!["stats", file, "--format", "csv"];
    a.extend_from_slice(args);
    let r = analyze(&a);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    assert_eq!(r.stderr, "", "{args:?}");
    r.stdout
}

#[test]
fn stats_from_summaries_equal_stats_from_blocks() {
    let dir = tmp_dir("summary-equal");
    let with = dir.join("with.gsot");
    let without = dir.join("without.gsot");
    write(&with, true, 5000);
    write(&without, false, 5000);
    let (w, wo) = (with.to_str().unwrap(), without.to_str().unwrap());
    let queries: [&[&str]; 9] = [
        &["--by", "comm,optname"],
        &["--by", "pid,errno"],
        &["--by", ""],
        &["--by", "optname", "--min-duration", "700ns"],
        &[
            "--by",
            "",
            "--where",
            "comm == \"nginx\" && optname == TCP_INFO && duration > 1us || errno == EINVAL",
        ],
        &["--by", "comm", "--where", "!(duration < 300ns) || fd == 5"],
        &[
            "--by",
            "comm,errno",
            "--where",
            "duration == 292ns || duration <= 250ns && duration != 240ns || duration > 1400ns && uid != 0",
        ],
        // These need the time column: answered from the blocks in both files.
        &["--by", "comm", "--since", "5ms", "--until", "30ms"],
        &["--by", "", "--where", "time > 10ms && duration > 400ns"],
    ];
    for q in queries {
        let a = stats(w, q);
        assert!(a.lines().count() >= 2, "{q:?}: {a}");
        assert_eq!(a, stats(wo, q), "{q:?}");
    }
}

/// A section with valid checksums (FORMAT.md 2.2).
fn section(tag: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut s = tag.to_vec();
    s.extend_from_slice(&(body.len() as u32).to_le_bytes());
    s.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let hc = crc32c::crc32c(&s);
    s.extend_from_slice(&hc.to_le_bytes());
    s.extend_from_slice(body);
    s
}

/// How many bytes of output zstd gives for the first `k` bytes of `frame`.
fn decodable_prefix(frame: &[u8], k: usize) -> usize {
    use std::io::Read;
    let mut d = zstd::stream::read::Decoder::with_buffer(&frame[..k]).unwrap();
    let mut out = Vec::new();
    let _ = d.read_to_end(&mut out); // an incomplete frame ends in an error, after its output
    out.len()
}

/// Where the content of each zstd block of `frame` lies (RFC 8878 3.1.1): the frame stays one
/// frame of the same size when only these bytes change.
fn zstd_block_contents(frame: &[u8]) -> Vec<std::ops::Range<usize>> {
    let fhd = frame[4];
    let single_segment = fhd & 0x20 != 0;
    let fcs = match fhd >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let dict = [0, 1, 2, 4][(fhd & 3) as usize];
    let mut at = 5 + usize::from(!single_segment) + dict + fcs;
    let mut out = Vec::new();
    loop {
        let h = u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], 0]);
        let (last, kind, size) = (h & 1 == 1, (h >> 1) & 3, (h >> 3) as usize);
        let len = if kind == 1 { 1 } else { size };
        out.push(at + 3..at + 3 + len);
        at += 3 + len;
        if last {
            return out;
        }
    }
}

/// The same file with its only block's zstd frame zeroed from right after the bytes that hold
/// the thread and site tables, zstd's block headers kept (checksums made valid again): the
/// body is still one frame and the tables decompress, the columns do not.
fn with_columns_cut(src: &std::path::Path, dst: &std::path::Path) {
    let mut bytes = std::fs::read(src).unwrap();
    let r = TraceReader::open(src).unwrap();
    assert_eq!(r.blocks().len(), 1);
    let at = r.blocks()[0].offset as usize;
    let body_len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    let frame = &bytes[at + 16 + 24..at + 16 + body_len];
    let raw = zstd::stream::decode_all(frame).unwrap();
    let u64_at = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap()) as usize;
    let sites_at = 8 + u64_at(0) * 52;
    let tables_end = sites_at + 8 + u64_at(sites_at) * 36;
    let keep = (1..=frame.len())
        .step_by(256)
        .find(|&k| decodable_prefix(frame, k) >= tables_end)
        .unwrap();
    assert!(
        decodable_prefix(frame, keep) < tables_end + 40_000 * 20,
        "columns still there"
    );
    let mut frame = frame.to_vec();
    for r in zstd_block_contents(&frame) {
        frame[r.start.max(keep)..r.end.max(keep)].fill(0);
    }
    let summary_at = at + 16 + body_len;
    assert_eq!(&bytes[summary_at..summary_at + 4], b"BSUM");
    let mut body = bytes[at + 16..at + 16 + 24].to_vec();
    body.extend_from_slice(&frame);
    let summary_len =
        u32::from_le_bytes(bytes[summary_at + 4..summary_at + 8].try_into().unwrap()) as usize;
    // Same length: the summary, unchanged, still follows its block at the same offset; the
    // index is cut off, so the file is read by scanning.
    bytes.truncate(summary_at + 16 + summary_len);
    bytes.splice(at..summary_at, section(b"BLCK", &body));
    std::fs::write(dst, bytes).unwrap();
}

#[test]
fn a_summary_question_reads_no_columns() {
    let dir = tmp_dir("summary-no-columns");
    let whole = dir.join("whole.gsot");
    let cut = dir.join("cut.gsot");
    write(&whole, true, 65536);
    with_columns_cut(&whole, &cut);
    let (w, c) = (whole.to_str().unwrap(), cut.to_str().unwrap());

    // Answered from tables and summary: the same as from the intact file.
    let q = ["--by", "comm,errno", "--min-duration", "1us"];
    let r = analyze(&["stats", c, "--format", "csv", q[0], q[1], q[2], q[3]]);
    // Exit 1: the file is damaged (it has no index), and says so; the answer is complete.
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout, stats(w, &q));
    assert!(
        r.stderr
            .contains("read 40000 events in 1 blocks by scanning"),
        "{}",
        r.stderr
    );

    // A question that needs the time column reads the block, which is now broken.
    let r = analyze(&[
        "stats", c, "--format", "csv", "--by", "comm", "--since", "1ms",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("zstd"), "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "comm,count,errors,p50_ns,p90_ns,p99_ns,max_ns,mean_ns\n"
    );
}

#[test]
fn verify_checks_each_summary_against_its_block() {
    let dir = tmp_dir("summary-verify");
    let good = dir.join("good.gsot");
    let bad = dir.join("bad.gsot");
    write(&good, true, 65536);
    let r = analyze(&["verify", good.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("1 blocks, 40000 events, 1 block summaries;"),
        "{}",
        r.stdout
    );

    // One duration of the first site made 1 ns longer, with intact checksums: only a
    // comparison with the block can tell.
    let bytes = std::fs::read(&good).unwrap();
    let block = TraceReader::open(&good).unwrap().blocks()[0].offset as usize;
    let body_len = u32::from_le_bytes(bytes[block + 4..block + 8].try_into().unwrap()) as usize;
    let at = block + 16 + body_len;
    let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    let fixed = &bytes[at + 16..at + 16 + 20];
    let mut raw = zstd::stream::decode_all(&bytes[at + 36..at + 16 + len]).unwrap();
    // raw: n_0, then site 0's smallest duration (a one-byte varint, or 251 and a u16, in
    // this workload): one more, which shifts every duration of site 0 by one.
    let n0 = raw[0];
    assert!(n0 < 251, "{:?}", &raw[..4]);
    match raw[1] {
        ..=249 => raw[1] += 1,
        251 if raw[2] < 255 => raw[2] += 1,
        _ => panic!("{:?}", &raw[..4]),
    }
    let frame = zstd::bulk::compress(&raw, 1).unwrap();
    let mut body = fixed.to_vec();
    body.extend_from_slice(&frame);
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&section(b"BSUM", &body));
    std::fs::write(&bad, out).unwrap();
    let r = analyze(&["verify", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let want = format!(
        "{}: at offset {at}: the summary (BSUM) of the block at {block} is damaged and not used (expected at site 0, the block's ",
        bad.display()
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with(&want)
            && l.ends_with(&format!(
                "durations; the summary's {n0} differ); the block's events are readable"
            ))),
        "{}",
        r.stdout
    );
}
