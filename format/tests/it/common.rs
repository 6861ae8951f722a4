//! Helpers shared by the format tests.

use format::synth::{Synth, SynthConfig, Workload};
use format::{CaptureHeader, LossRecord, OwnedEvent, ProcessInfo, TraceWriter, WriterOptions};

pub fn header() -> CaptureHeader {
    CaptureHeader {
        capture_id: *b"0123456789abcdef",
        host_name: "test-host".into(),
        kernel_release: "6.18.44".into(),
        arch: "x86_64".into(),
        cpu_count: 2,
        boot_to_wall_ns: 1_700_000_000_000_000_000,
        start_ts_ns: 1_000,
        recorder_version: "test 0".into(),
        command_line: vec!["recorder".into(), "-o".into(), "x.gsot".into()],
        attach_mode: "tracepoint".into(),
        filters: vec![("pid".into(), "42".into())],
        snaplen: 512,
        sequence: 0,
        redacted: false,
        extra: vec![],
    }
}

pub fn synth_events(n: u64, seed: u64) -> Vec<OwnedEvent> {
    let mut s = Synth::new(SynthConfig {
        seed,
        events: n,
        workload: Workload::Mixed,
        ..SynthConfig::default()
    });
    let mut out = Vec::new();
    let mut e = OwnedEvent::default();
    while s.next_event(&mut e) {
        out.push(e.clone());
    }
    out
}

pub fn process(pid: u32) -> ProcessInfo {
    ProcessInfo {
        pid,
        ppid: 1,
        first_seen_ns: 5,
        comm: format!("proc{pid}"),
        exe: format!("/usr/bin/proc{pid}"),
        cgroup: "/system.slice/x.service".into(),
    }
}

/// A file of `events` in blocks of `per_block`, with a process table entry and a loss record
/// flushed between blocks. Returns the bytes and the byte offset where each block *ends*
/// (one past its last byte), in order.
pub fn write_file(events: &[OwnedEvent], per_block: u32) -> Vec<u8> {
    let opts = WriterOptions {
        max_block_events: per_block,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::try_new(Vec::new(), &header(), opts).unwrap();
    for (i, e) in events.iter().enumerate() {
        if (i as u32).is_multiple_of(per_block) {
            w.add_process(process(i as u32 + 100));
            w.add_loss(LossRecord {
                cpu: 1,
                lost: i as u64,
                start_ns: 10,
                end_ns: 20,
            });
        }
        w.write(&e.as_event()).unwrap();
    }
    w.finish().unwrap()
}
