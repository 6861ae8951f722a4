//! Killed with SIGKILL, the recorder leaves a file that still yields every flushed block.

use std::time::Duration;

use crate::common::*;

#[test]
fn sigkilled_capture_is_readable_up_to_the_last_flush() {
    let Some(_kernel) = live_kernel("sigkilled_capture_is_readable_up_to_the_last_flush") else {
        return;
    };
    let dir = temp_dir("sigkill");
    let out = dir.join("killed.gsot");
    let me = std::process::id().to_string();
    let rec = start_recorder(&out, &["--pid", &me, "--flush-interval-ms", "200"]);
    let (calls, _) = run_workload_on_thread("gsot-killed");
    // Long enough for a drain (50 ms) and a block flush (200 ms) to have happened.
    std::thread::sleep(Duration::from_millis(1500));
    let log = rec.sigkill();

    let reader = format::TraceReader::open(&out).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(
        reader.recovery().is_some(),
        "no footer after SIGKILL, so the reader had to recover"
    );
    assert_eq!(reader.header().attach_mode, "tracepoint");
    let events = reader.read_all_events().unwrap();
    assert_eq!(events.len(), calls.len(), "{log}");
    for call in &calls {
        let ev =
            find(&events, call).unwrap_or_else(|| panic!("{} missing after SIGKILL", call.label));
        assert_eq!(
            (ev.ret, ev.optlen_out, &ev.value),
            (call.ret, call.optlen_out, &call.value)
        );
    }
    assert!(
        reader
            .processes()
            .iter()
            .any(|p| p.pid == std::process::id()),
        "the process table was flushed with the block"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
