//! Size, write cost, scan speed and reader memory of the trace format, with the figures the
//! issue sets as goals. Run: `cargo bench -p gsot-format --bench format` (add `-- --events N`).
//! `-- --write-only [--reps N] [--workload loop|mixed] [--level N] [--block-events N]
//! [--output fresh|prefaulted|file]` measures only the write cost (and size) at the default zstd
//! level and block size or the ones given, N times per workload (for before/after comparisons
//! and profiling). The output is a fresh `Vec` by default (its page faults are charged to the
//! writer), a pre-faulted one (the writer alone), or a file in the temporary directory.
//!
//! Timings are CPU time of this thread (write) or ratios taken in the same run (scan), because
//! machines here are shared and noisy. It also encodes the same events as bincode *rows* (the
//! obvious alternative to the columns the format uses), so the choice stays a measured one.

use std::hint::black_box;
use std::time::Instant;

use format::synth::{Synth, SynthConfig, Workload};
use format::{DecodedBlock, OwnedEvent, TraceReader, TraceWriter, WriterOptions};

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Peak resident set of this process image (VmHWM: unlike getrusage's maxrss it does not
/// carry over the parent's peak across fork and exec).
fn max_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn generate(workload: Workload, events: u64) -> Vec<OwnedEvent> {
    let mut synth = Synth::new(SynthConfig {
        seed: 7,
        events,
        workload,
        ..SynthConfig::default()
    });
    let mut out = Vec::with_capacity(events as usize);
    let mut e = OwnedEvent::default();
    while synth.next_event(&mut e) {
        out.push(e.clone());
    }
    out
}

fn header() -> format::CaptureHeader {
    Synth::new(SynthConfig::default()).header()
}

struct Figures {
    bytes_per_event: f64,
    write_ns: f64,
    decompress_ns: f64,
    decode_ns: f64,
}

/// Where `measure_write` writes the file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Output {
    /// A `Vec` allocated up front for each run: the writer's thread also takes the page faults
    /// of the fresh memory (the default, as in earlier figures).
    Fresh,
    /// A `Vec` whose pages were touched before the run: the writer's own cost only.
    Prefaulted,
    /// A real file in the temporary directory, through a `BufWriter`: what a recorder pays
    /// (the copy into the page cache included; the disk's own write-back is not this thread's).
    File,
}

/// Writes `events` to a file (in memory, or on disk per `output`): CPU ns per event, and the
/// file.
/// Write figures of one run: CPU ns per event over the whole run, and over the events after
/// the first two blocks (a writer's steady state: by then its buffers, tables and zstd
/// context have been allocated and their pages faulted in, once per writer).
struct WriteRun {
    whole_ns: f64,
    steady_ns: f64,
    file: Vec<u8>,
}

/// Writes `events` and times the writer, `finish` included.
fn run_writer<W: std::io::Write>(
    out: W,
    events: &[OwnedEvent],
    opts: WriterOptions,
) -> (f64, f64, W) {
    let warm_up = (2 * opts.max_block_events as usize).min(events.len() / 2);
    let mut writer = TraceWriter::try_new(out, &header(), opts).unwrap();
    let t0 = thread_cpu_ns();
    for e in &events[..warm_up] {
        writer.write(&e.as_event()).unwrap();
    }
    let t1 = thread_cpu_ns();
    for e in &events[warm_up..] {
        writer.write(&e.as_event()).unwrap();
    }
    let out = writer.finish().unwrap();
    let t2 = thread_cpu_ns();
    let whole = (t2 - t0) as f64 / events.len() as f64;
    let steady = (t2 - t1) as f64 / (events.len() - warm_up) as f64;
    (whole, steady, out)
}

fn measure_write(
    events: &[OwnedEvent],
    zstd_level: i32,
    block_summaries: bool,
    block_events: Option<u32>,
    output: Output,
) -> WriteRun {
    let defaults = WriterOptions::default();
    let opts = WriterOptions {
        zstd_level,
        block_summaries,
        max_block_events: block_events.unwrap_or(defaults.max_block_events),
        ..defaults
    };
    if output == Output::File {
        let path = std::env::temp_dir().join(format!("gsot-write-{}.gsot", std::process::id()));
        let out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let (whole_ns, steady_ns, out) = run_writer(out, events, opts);
        drop(out.into_inner().unwrap());
        let file = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        return WriteRun {
            whole_ns,
            steady_ns,
            file,
        };
    }
    // The output buffer is allocated up front: the cost of growing it is not the writer's.
    let mut buf = Vec::with_capacity(events.len() * 40);
    if output == Output::Prefaulted {
        buf.resize(buf.capacity(), 0u8);
        buf.clear();
    }
    let (whole_ns, steady_ns, file) = run_writer(buf, events, opts);
    WriteRun {
        whole_ns,
        steady_ns,
        file,
    }
}

/// CPU ns per event of the harness alone: the write loop without a writer (each event read
/// and made an `Event`, its first value byte touched). The write figures include this cost,
/// which a recorder pays differently (reading its ring buffer).
fn measure_read(events: &[OwnedEvent]) -> f64 {
    let t0 = thread_cpu_ns();
    let mut acc = 0u64;
    for e in events {
        let ev = black_box(e.as_event());
        acc = acc.wrapping_add(ev.ts_ns ^ ev.value.first().copied().unwrap_or(0) as u64);
    }
    black_box(acc);
    (thread_cpu_ns() - t0) as f64 / events.len() as f64
}

fn measure_format(events: &[OwnedEvent], zstd_level: i32, block_summaries: bool) -> Figures {
    let WriteRun {
        whole_ns: write_ns,
        file,
        ..
    } = measure_write(events, zstd_level, block_summaries, None, Output::Fresh);
    let bytes_per_event = file.len() as f64 / events.len() as f64;

    let reader = TraceReader::from_bytes(file).unwrap();
    assert_eq!(reader.event_count(), events.len() as u64);
    // Best of three for each, interleaved, so a noisy neighbour hurts both alike.
    let (mut decompress, mut decode) = (f64::MAX, f64::MAX);
    let mut raw = DecodedBlock::new();
    let mut block = DecodedBlock::new();
    for _ in 0..3 {
        let t = Instant::now();
        for b in reader.blocks() {
            reader.decompress_block(b, &mut raw).unwrap();
            black_box(raw.payload());
        }
        decompress = decompress.min(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        let mut acc = 0u64;
        for b in reader.blocks() {
            reader.decode_block(b, &mut block).unwrap();
            for e in block.events() {
                acc = acc
                    .wrapping_add(
                        e.ts_ns ^ e.duration_ns ^ e.cgroup_id ^ e.optval_ptr ^ e.optlen_ptr,
                    )
                    .wrapping_add(
                        (e.tgid ^ e.tid ^ e.ppid ^ e.uid ^ e.gid ^ e.cpu ^ e.pid_ns ^ e.mnt_ns)
                            as u64,
                    )
                    .wrapping_add(
                        (e.fd ^ e.level ^ e.optname ^ e.optlen_in ^ e.optlen_out ^ e.ret) as u64,
                    )
                    .wrapping_add(e.flags as u64 + e.comm[0] as u64 + e.value.len() as u64);
            }
        }
        black_box(acc);
        decode = decode.min(t.elapsed().as_nanos() as f64);
    }
    let n = events.len() as f64;
    Figures {
        bytes_per_event,
        write_ns,
        decompress_ns: decompress / n,
        decode_ns: decode / n,
    }
}

/// The alternative: each event as a bincode row (standard config, varints), 65,536 per zstd
/// frame, decoded back into owned rows.
fn measure_rows(events: &[OwnedEvent]) -> Figures {
    #[derive(bincode::Encode, bincode::Decode)]
    struct Row {
        ts_ns: u64,
        duration_ns: u64,
        cpu: u32,
        tgid: u32,
        tid: u32,
        ppid: u32,
        uid: u32,
        gid: u32,
        comm: [u8; 16],
        cgroup_id: u64,
        pid_ns: u32,
        mnt_ns: u32,
        fd: i32,
        level: i32,
        optname: i32,
        optval_ptr: u64,
        optlen_ptr: u64,
        optlen_in: i32,
        optlen_out: i32,
        ret: i32,
        flags: u16,
        value: Vec<u8>,
    }
    let cfg = bincode::config::standard();
    let mut frames = Vec::new();
    let t0 = thread_cpu_ns();
    let mut buf = Vec::new();
    for chunk in events.chunks(65536) {
        buf.clear();
        for e in chunk {
            let row = Row {
                ts_ns: e.ts_ns,
                duration_ns: e.duration_ns,
                cpu: e.cpu,
                tgid: e.tgid,
                tid: e.tid,
                ppid: e.ppid,
                uid: e.uid,
                gid: e.gid,
                comm: e.comm,
                cgroup_id: e.cgroup_id,
                pid_ns: e.pid_ns,
                mnt_ns: e.mnt_ns,
                fd: e.fd,
                level: e.level,
                optname: e.optname,
                optval_ptr: e.optval_ptr,
                optlen_ptr: e.optlen_ptr,
                optlen_in: e.optlen_in,
                optlen_out: e.optlen_out,
                ret: e.ret,
                flags: e.flags,
                value: e.value.clone(),
            };
            bincode::encode_into_std_write(&row, &mut buf, cfg).unwrap();
        }
        frames.push((
            chunk.len(),
            zstd::bulk::compress(&buf, 3).unwrap(),
            buf.len(),
        ));
    }
    let write_ns = (thread_cpu_ns() - t0) as f64 / events.len() as f64;
    let size: usize = frames.iter().map(|(_, f, _)| f.len() + 24 + 16).sum();
    let (mut decompress, mut decode) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let t = Instant::now();
        for (_, f, raw_len) in &frames {
            black_box(zstd::bulk::decompress(f, *raw_len).unwrap());
        }
        decompress = decompress.min(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        for (n, f, raw_len) in &frames {
            let raw = zstd::bulk::decompress(f, *raw_len).unwrap();
            let mut slice = &raw[..];
            for _ in 0..*n {
                let (row, used): (Row, usize) = bincode::decode_from_slice(slice, cfg).unwrap();
                slice = &slice[used..];
                black_box(row);
            }
        }
        decode = decode.min(t.elapsed().as_nanos() as f64);
    }
    let n = events.len() as f64;
    Figures {
        bytes_per_event: size as f64 / n,
        write_ns,
        decompress_ns: decompress / n,
        decode_ns: decode / n,
    }
}

fn report(name: &str, f: &Figures) {
    println!(
        "  {name:<28} {:>7.2} B/event  write {:>6.1} ns/event CPU  decompress {:>5.1} ns/event  decompress+decode {:>5.1} ns/event  scan ratio {:>5.1}%",
        f.bytes_per_event,
        f.write_ns,
        f.decompress_ns,
        f.decode_ns,
        100.0 * f.decompress_ns / f.decode_ns
    );
}

/// Child mode: scan a file and report the peak resident size, in a fresh process so nothing
/// else this benchmark allocated counts.
fn scan_rss(path: &str) {
    let before = max_rss_kib();
    let reader = TraceReader::open(path).unwrap();
    let mut n = 0u64;
    reader
        .for_each_event(reader.blocks(), |e| n += e.value.len() as u64 + 1)
        .unwrap();
    black_box(n);
    let par: u64 = reader
        .par_map_blocks(reader.blocks(), |_, b| b.len() as u64)
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert_eq!(par, reader.event_count());
    println!("{} {} {}", reader.event_count(), before, max_rss_kib());
}

/// Only the write cost and size, at the default zstd level and block size (or `--level N`,
/// `--block-events N`), `reps` times per workload.
fn write_only(
    events: u64,
    reps: usize,
    only: Option<&str>,
    level: Option<i32>,
    block_events: Option<u32>,
    output: Output,
) {
    let level = level.unwrap_or(WriterOptions::default().zstd_level);
    for (name, workload) in [("loop", Workload::Loop), ("mixed", Workload::Mixed)] {
        if only.is_some_and(|w| w != name) {
            continue;
        }
        let evs = generate(workload, events);
        // Alternating with and without block summaries, so noise hits both alike.
        let (mut with, mut without, mut read) = (Vec::new(), Vec::new(), Vec::new());
        let (mut with_steady, mut without_steady, mut alone) = (Vec::new(), Vec::new(), Vec::new());
        let mut size = (0, 0);
        for _ in 0..reps {
            let run = measure_write(&evs, level, true, block_events, output);
            with.push(format!("{:.1}", run.whole_ns));
            with_steady.push(format!("{:.1}", run.steady_ns));
            size.0 = run.file.len();
            let steady = run.steady_ns;
            let run = measure_write(&evs, level, false, block_events, output);
            without.push(format!("{:.1}", run.whole_ns));
            without_steady.push(format!("{:.1}", run.steady_ns));
            size.1 = run.file.len();
            let harness = measure_read(&evs);
            read.push(format!("{harness:.1}"));
            alone.push(format!("{:.1}", steady - harness));
        }
        let per_event = |bytes: usize| bytes as f64 / evs.len() as f64;
        println!(
            "write {name:<5} zstd {level}: {} ns/event CPU, {:.2} B/event (without BSUM: {}, {:.2} B/event)",
            with.join(" "),
            per_event(size.0),
            without.join(" "),
            per_event(size.1)
        );
        println!(
            "      {name:<5} after the first two blocks: {} ns/event CPU (without BSUM: {})",
            with_steady.join(" "),
            without_steady.join(" ")
        );
        println!(
            "      {name:<5} the harness alone (reading the events, no writer): {} ns/event CPU",
            read.join(" ")
        );
        println!(
            "      {name:<5} the writer alone after the first two blocks (with BSUM, minus the harness): {} ns/event CPU",
            alone.join(" ")
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--scan-rss") {
        return scan_rss(&args[i + 1]);
    }
    let events: u64 = args
        .iter()
        .position(|a| a == "--events")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(2_000_000);
    if args.iter().any(|a| a == "--write-only") {
        let reps: usize = args
            .iter()
            .position(|a| a == "--reps")
            .map(|i| args[i + 1].parse().unwrap())
            .unwrap_or(5);
        let only = args
            .iter()
            .position(|a| a == "--workload")
            .map(|i| args[i + 1].clone());
        let level = args
            .iter()
            .position(|a| a == "--level")
            .map(|i| args[i + 1].parse().unwrap());
        let block_events = args
            .iter()
            .position(|a| a == "--block-events")
            .map(|i| args[i + 1].parse().unwrap());
        let output = match args.iter().position(|a| a == "--output") {
            None => Output::Fresh,
            Some(i) => match args[i + 1].as_str() {
                "fresh" => Output::Fresh,
                "prefaulted" => Output::Prefaulted,
                "file" => Output::File,
                other => panic!("--output takes fresh, prefaulted or file, not {other}"),
            },
        };
        return write_only(events, reps, only.as_deref(), level, block_events, output);
    }

    println!(
        "trace format benchmark, {events} events per workload (goals: loop <= 8 B/event, mixed <= 24 B/event, write <= 200 ns/event, scan ratio >= 70%)"
    );
    for (name, workload) in [
        ("loop (one SO_RCVBUF loop)", Workload::Loop),
        ("mixed (generator)", Workload::Mixed),
    ] {
        let evs = generate(workload, events);
        println!("{name}:");
        for (label, level, summaries) in [
            ("format 1.1, zstd 1", 1, true),
            ("  without BSUM (1.0 bytes)", 1, false),
            ("format 1.1, zstd 3", 3, true),
        ] {
            report(label, &measure_format(&evs, level, summaries));
        }
        report("alternative: bincode rows", &measure_rows(&evs));
    }

    // Memory: stream a larger file to disk, then scan it in a fresh process.
    let big: u64 = events * 5;
    let path = std::env::temp_dir().join(format!("gsot-bench-{}.gsot", std::process::id()));
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let cfg = SynthConfig {
        seed: 9,
        events: big,
        ..SynthConfig::default()
    };
    format::synth::write_trace(cfg, file, WriterOptions::default()).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--scan-rss", path.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<i64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    println!(
        "reader memory: scanned {} events ({:.0} MiB file) sequentially and on 2 threads: peak RSS {:.1} MiB (at start {:.1} MiB)",
        f[0],
        size as f64 / (1 << 20) as f64,
        f[2] as f64 / 1024.0,
        f[1] as f64 / 1024.0
    );
}
