//! The two ways records leave the kernel: the BPF ring buffer and per-CPU perf buffers
//! (`--buffer`). The whole suite also runs with perf buffers (`GSOT_BUFFER=perf`, see
//! scripts/test-all.sh); these tests hold what only `--buffer` itself decides: the header, the
//! start-up line, and an object that loads without any ring buffer piece.

use crate::common::*;

/// Records the demo workload with `buffer` and checks every call's recorded result and value
/// bytes; returns the header's `extra` pairs and the recorder's stderr.
fn record_workload_with(test: &str, buffer: &str) -> (Vec<(String, String)>, String) {
    let dir = temp_dir(test);
    let out = dir.join("trace.gsot");
    let me = std::process::id().to_string();
    let rec = start_recorder(
        &out,
        &["--pid", &me, "--snaplen", "512", "--buffer", buffer],
    );
    let (calls, _) = run_workload_on_thread("gsot-buffers");
    let (reader, events, log) = stop_and_read(rec);
    assert_eq!(events.len(), calls.len(), "--buffer {buffer}:\n{log}");
    assert!(
        reader.losses().is_empty(),
        "--buffer {buffer}: {:?}",
        reader.losses()
    );
    for call in &calls {
        let ev = find(&events, call)
            .unwrap_or_else(|| panic!("--buffer {buffer}: no event for {}", call.label));
        let got = (ev.optlen_in, ev.optlen_out, ev.ret, &ev.value, ev.flags);
        let want = (call.optlen_in, call.optlen_out, call.ret, &call.value, 0);
        assert_eq!(got, want, "--buffer {buffer}: {}", call.label);
    }
    let _ = std::fs::remove_dir_all(&dir);
    (reader.header().extra.clone(), log)
}

fn pair<'a>(extra: &'a [(String, String)], key: &str) -> Option<&'a str> {
    extra
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn perf_buffers_record_every_call_and_say_so() {
    let Some(_kernel) = live_kernel("perf_buffers_record_every_call_and_say_so") else {
        return;
    };
    let (extra, log) = record_workload_with("perfbuf", "perf");
    assert_eq!(pair(&extra, "buffer"), Some("perf"), "{extra:?}");
    assert_eq!(pair(&extra, "buffer_reason"), Some("--buffer"), "{extra:?}");
    assert!(log.contains("recorder: buffer: perf (--buffer)\n"), "{log}");
    // A kernel with every helper keeps its own.
    assert_eq!(pair(&extra, "replaced_helpers"), None, "{extra:?}");
}

#[test]
fn auto_takes_the_ring_buffer_this_kernel_has() {
    let Some(_kernel) = live_kernel("auto_takes_the_ring_buffer_this_kernel_has") else {
        return;
    };
    let (extra, log) = record_workload_with("autobuf", "auto");
    let why = "auto: the kernel has BPF_MAP_TYPE_RINGBUF";
    assert_eq!(pair(&extra, "buffer"), Some("ring"), "{extra:?}");
    assert_eq!(pair(&extra, "buffer_reason"), Some(why), "{extra:?}");
    assert!(
        log.contains(&format!("recorder: buffer: ring ({why})\n")),
        "{log}"
    );
}

/// The object as a kernel before 5.5 gets it: the ring buffer map an array (a kernel before
/// 5.8 cannot create one) and the helpers newer than 5.4 replaced by older ones. This
/// kernel's verifier refuses a `bpf_ringbuf_*` call on an array map, so the capture proves the
/// programs reach none of them with perf buffers, and that they need no newer helper.
#[test]
fn the_perf_path_needs_no_ring_buffer_and_no_helper_after_5_4() {
    let Some(_kernel) = live_kernel("the_perf_path_needs_no_ring_buffer_and_no_helper_after_5_4")
    else {
        return;
    };
    let (extra, _) = record_workload_with("legacybuf", "perf-legacy");
    assert_eq!(pair(&extra, "buffer"), Some("perf"), "{extra:?}");
    assert_eq!(
        pair(&extra, "replaced_helpers"),
        Some(
            "bpf_ktime_get_ns for bpf_ktime_get_boot_ns, bpf_probe_read for \
             bpf_probe_read_user, bpf_probe_read for bpf_probe_read_kernel"
        ),
        "{extra:?}"
    );
}
