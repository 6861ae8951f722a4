//! Kernel-side filters: several recorders with different filters watch the same workload;
//! each file holds exactly the calls its filter matches.

use crate::common::*;
use recorder::workload::Call;

#[test]
fn each_filter_keeps_exactly_the_matching_calls() {
    let Some(_kernel) = live_kernel("each_filter_keeps_exactly_the_matching_calls") else {
        return;
    };
    let dir = temp_dir("filters");
    let me = std::process::id().to_string();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let cgroup = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    type Pred = fn(&Call) -> bool;
    let cases: Vec<(&str, Vec<&str>, Pred)> = vec![
        ("optname", vec!["--optname", "SO_RCVBUF"], |c| {
            c.optname == libc::SO_RCVBUF && c.level == libc::SOL_SOCKET
        }),
        ("level", vec!["--level", "IPPROTO_TCP"], |c| {
            c.level == libc::IPPROTO_TCP
        }),
        ("errors", vec!["--errors-only"], |c| c.ret < 0),
        ("comm", vec!["--comm", "gsot-filtered"], |_| true),
        ("comm-other", vec!["--comm", "no-such-task"], |_| false),
        ("uid", vec!["--uid", "0"], |_| true),
        ("uid-other", vec!["--uid", "4242"], |_| false),
        ("cgroup", vec!["--cgroup", &cgroup], |_| true),
        (
            "level+optname",
            vec!["--level", "6", "--optname", "TCP_INFO"],
            |c| c.optname == libc::TCP_INFO && c.level == 6,
        ),
    ];
    let recorders: Vec<_> = cases
        .iter()
        .map(|(name, args, _)| {
            let mut all = vec!["--pid", me.as_str()];
            all.extend(args.iter().copied());
            start_recorder(&dir.join(format!("{name}.gsot")), &all)
        })
        .collect();
    let (calls, comm) = run_workload_on_thread("gsot-filtered");
    assert_eq!(comm, "gsot-filtered");

    for ((name, _, pred), rec) in cases.iter().zip(recorders) {
        let (reader, events, log) = stop_and_read(rec);
        let expected: Vec<&Call> = calls.iter().filter(|c| pred(c)).collect();
        assert_eq!(
            events.len(),
            expected.len(),
            "filter {name}: {:?}\n{log}",
            events
                .iter()
                .map(|e| (e.level, e.optname, e.ret))
                .collect::<Vec<_>>()
        );
        for call in expected {
            assert!(
                find(&events, call).is_some(),
                "filter {name} lost {}",
                call.label
            );
        }
        assert!(!reader.header().filters.is_empty());
        // The process table names the processes whose events are in the file.
        if !events.is_empty() {
            assert!(
                reader
                    .processes()
                    .iter()
                    .any(|p| p.pid == std::process::id())
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
