//! Container, pod and unit attribution from the process table's cgroup paths: in `events`
//! (text, JSON, CSV), the filters, `--where`, `stats --by` and `info`, for a file written with
//! nothing but what every 1.x file holds.

use std::path::Path;

use format::{CaptureHeader, OwnedEvent, ProcessInfo, TraceWriter, WriterOptions};

use crate::common::{ok, tmp_dir};

const DOCKER: &str = "3f4e1b2c9d8a7f6e5d4c3b2a19087f6e5d4c3b2a19087f6e5d4c3b2a19087f6e";
const CONTAINERD: &str = "9f2b6c1d4e8a3f7b0c5d2e9a6b1f4c8d3e7a0b5c2d9f6e1a4b8c3d7e0f5a2b9c";
const CRIO: &str = "4c1a7e9b2d5f8c3a6e0b9d4f7a2c5e8b1d6f9a3c0e7b4d2a5f8c1e6b9d3a7f0e";
const LATER: &str = "aaaabbbbccccddddeeeeffff00001111aaaabbbbccccddddeeeeffff00001111";
const UID1: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const UID2: &str = "0d3e5f7a-1b2c-4d6e-9f8a-7b6c5d4e3f2a";
/// The move of pid 104 from a unit into a container.
const MOVE_NS: u64 = 35_000;

/// (pid, comm, first_seen_ns, cgroup path) of the process table.
fn processes() -> Vec<(u32, &'static str, u64, String)> {
    vec![
        (100, "dockerd-app", 1_000, format!("/docker/{DOCKER}")),
        (
            101,
            "envoy",
            1_000,
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINERD}.scope",
                UID1.replace('-', "_")
            ),
        ),
        (
            102,
            "grpc",
            1_000,
            format!("/kubepods/besteffort/pod{UID2}/crio-{CRIO}"),
        ),
        (103, "nginx", 1_000, "/system.slice/nginx.service".into()),
        (104, "mover", 1_000, "/system.slice/mover.service".into()),
        (104, "mover", MOVE_NS, format!("/docker/{LATER}")),
    ]
}

/// Ten calls per pid, 1 µs apart, interleaved; pid 104's span the move.
fn write_trace(path: &Path) {
    let header = CaptureHeader {
        host_name: "node-1".into(),
        start_ts_ns: 1_000,
        attach_mode: "synthetic".into(),
        ..CaptureHeader::default()
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = TraceWriter::try_new(file, &header, WriterOptions::default()).unwrap();
    for (pid, comm, first_seen_ns, cgroup) in processes() {
        w.add_process(ProcessInfo {
            pid,
            ppid: 1,
            first_seen_ns,
            comm: comm.into(),
            exe: String::new(),
            cgroup,
        });
    }
    let names = ["dockerd-app", "envoy", "grpc", "nginx", "mover"];
    for i in 0..50u64 {
        let n = (i % 5) as usize;
        let mut comm = [0u8; 16];
        comm[..names[n].len()].copy_from_slice(names[n].as_bytes());
        let e = OwnedEvent {
            ts_ns: 10_000 + i * 1_000,
            duration_ns: 100,
            tgid: 100 + n as u32,
            tid: 100 + n as u32,
            comm,
            fd: 3,
            level: 1,
            optname: 4,
            optlen_in: 4,
            optlen_out: 4,
            value: vec![0; 4],
            ..OwnedEvent::default()
        };
        w.write(&e.as_event()).unwrap();
    }
    w.finish().unwrap();
}

fn pids(csv: &str) -> Vec<u32> {
    csv.lines().skip(1).map(|l| l.parse().unwrap()).collect()
}

#[test]
fn events_carry_the_attribution_of_their_process() {
    let d = tmp_dir("containers-events");
    let f = d.join("t.gsot");
    write_trace(&f);
    let f = f.to_str().unwrap();
    let fields = "pid,container_runtime,container_id,container_name,image,pod_uid,pod_name,pod_namespace,k8s_container,qos_class,systemd_unit";
    let csv = ok(&[
        "events", f, "--format", "csv", "--fields", fields, "-n", "5",
    ]);
    assert_eq!(
        csv,
        format!(
            "{fields}\n\
             100,docker,{DOCKER},,,,,,,,\n\
             101,containerd,{CONTAINERD},,,{UID1},,,,burstable,\n\
             102,cri-o,{CRIO},,,{UID2},,,,besteffort,\n\
             103,,,,,,,,,,nginx.service\n\
             104,,,,,,,,,,mover.service\n"
        )
    );
    // JSON: the full id, null for what is unknown.
    let json = ok(&["events", f, "--format", "json", "--pid", "101", "-n", "1"]);
    assert!(json.contains(&format!(
        "\"container_runtime\":\"containerd\",\"container_id\":\"{CONTAINERD}\",\"container_name\":null,\"image\":null,\"pod_uid\":\"{UID1}\",\"pod_name\":null,\"pod_namespace\":null,\"k8s_container\":null,\"qos_class\":\"burstable\",\"systemd_unit\":null,\"sock_family\":null,"
    )), "{json}");
    // Text: the pod's UID and the short id where no names were captured.
    let text = ok(&["events", f, "-n", "5"]);
    let heads: Vec<&str> = text
        .lines()
        .map(|l| l.split(" getsockopt").next().unwrap())
        .collect();
    let heads: Vec<&str> = heads.iter().map(|h| h.split_once(' ').unwrap().1).collect();
    assert_eq!(
        heads,
        [
            format!("dockerd-app[100/100 ctr={}]", &DOCKER[..12]),
            format!("envoy[101/101 pod={UID1} ctr={}]", &CONTAINERD[..12]),
            format!("grpc[102/102 pod={UID2} ctr={}]", &CRIO[..12]),
            "nginx[103/103]".into(),
            "mover[104/104]".into(),
        ]
    );
    // The entry in force at each event's time: pid 104 moved into a container at MOVE_NS.
    let moved = ok(&[
        "events",
        f,
        "--pid",
        "104",
        "--format",
        "csv",
        "--fields",
        "ts_ns,container_id",
    ]);
    for l in moved.lines().skip(1) {
        let (ts, id) = l.split_once(',').unwrap();
        let want = if ts.parse::<u64>().unwrap() >= MOVE_NS {
            LATER
        } else {
            ""
        };
        assert_eq!(id, want, "{l}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn filters_select_by_container_pod_and_unit() {
    let d = tmp_dir("containers-filters");
    let f = d.join("t.gsot");
    write_trace(&f);
    let f = f.to_str().unwrap();
    let sel = |args: &[&str]| {
        let mut a = vec!["events", f, "--format", "csv", "--fields", "pid"];
        a.extend_from_slice(args);
        let mut p = pids(&ok(&a));
        p.dedup();
        p.sort();
        p.dedup();
        p
    };
    assert_eq!(sel(&["--container", &DOCKER[..12]]), [100]);
    assert_eq!(sel(&["--container", DOCKER]), [100]);
    assert_eq!(sel(&["--container", "4C1A"]), [102]);
    // pid 104 is in the container only after its move; not all of its events pass.
    assert_eq!(sel(&["--container", "aaaa*"]), [104]);
    let later = ok(&[
        "events",
        f,
        "--container",
        "aaaa",
        "--format",
        "csv",
        "--fields",
        "pid",
    ]);
    assert_eq!(later.lines().count() - 1, 5);
    assert_eq!(sel(&["--pod", UID1]), [101]);
    assert_eq!(sel(&["--pod", "0d3e*"]), [102]);
    // No names were captured: no pod is in any namespace.
    assert!(sel(&["--k8s-namespace", "*"]).is_empty());
    assert_eq!(sel(&["--where", "container_runtime == \"cri-o\""]), [102]);
    assert_eq!(sel(&["--where", "qos_class ~ \"b*\""]), [101, 102]);
    assert_eq!(sel(&["--where", "systemd_unit == nginx.service"]), [103]);
    // An unknown value never matches, and always differs.
    assert_eq!(
        sel(&["--where", "container_runtime != docker"]),
        [101, 102, 103, 104]
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn stats_and_info_count_calls_per_container() {
    let d = tmp_dir("containers-stats");
    let f = d.join("t.gsot");
    write_trace(&f);
    let f = f.to_str().unwrap();
    let csv = ok(&[
        "stats",
        f,
        "--by",
        "pod,container",
        "--format",
        "csv",
        "--sort",
        "key",
    ]);
    let rows: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect();
    // pid 104 is grouped by its latest entry: the container it moved into.
    assert_eq!(
        rows,
        [
            ",,10".to_string(),
            format!(",{},10", &DOCKER[..12]),
            format!(",{},10", &LATER[..12]),
            format!("{UID2},{},10", &CRIO[..12]),
            format!("{UID1},{},10", &CONTAINERD[..12]),
        ]
    );
    let info = ok(&["info", f]);
    let at = info.find("containers:").unwrap();
    let block: Vec<&str> = info[at..].lines().take(5).collect();
    assert_eq!(block[0], "containers:    4");
    for (line, id, calls) in [
        (1, DOCKER, 10),
        (2, CRIO, 10),
        (3, CONTAINERD, 10),
        (4, LATER, 10),
    ] {
        assert!(
            block[line].contains(&id[..12]) && block[line].ends_with(&format!(" {calls} calls")),
            "{block:?}"
        );
    }
    let json = ok(&["info", "--format", "json", f]);
    assert!(json.contains(&format!(
        "{{\"container_runtime\":\"cri-o\",\"container_id\":\"{CRIO}\",\"container_name\":null,\"image\":null,\"pod_uid\":\"{UID2}\",\"pod_name\":null,\"pod_namespace\":null,\"k8s_container\":null,\"qos_class\":\"besteffort\",\"systemd_unit\":null,\"calls\":10}}"
    )), "{json}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_redacted_slice_keeps_container_ids_and_drops_unit_names() {
    let d = tmp_dir("containers-redact");
    let f = d.join("t.gsot");
    write_trace(&f);
    let out = d.join("r.gsot");
    let (f, out) = (f.to_str().unwrap(), out.to_str().unwrap());
    ok(&["slice", f, "--redact", "-o", out]);
    let fields = "pid,container_runtime,container_id,pod_uid,qos_class,systemd_unit";
    let before = ok(&["events", f, "--format", "csv", "--fields", fields]);
    let after = ok(&["events", out, "--format", "csv", "--fields", fields]);
    // Only the unit names are gone.
    let without_units = before
        .replace("nginx.service", "")
        .replace("mover.service", "");
    assert_eq!(after, without_units);
    let r = format::TraceReader::open(out).unwrap();
    let paths: Vec<&str> = r.processes().iter().map(|p| p.cgroup.as_str()).collect();
    assert!(paths.iter().all(|p| !p.contains(".service")), "{paths:?}");
    // A runtime's container is written in the systemd driver's shape.
    let crio = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{CRIO}.scope",
        UID2.replace('-', "_")
    );
    assert!(paths.contains(&crio.as_str()), "{paths:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_process_at_the_v2_root_is_attributed_by_its_v1_path() {
    let d = tmp_dir("containers-v1");
    let f = d.join("t.gsot");
    let file = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    let mut w =
        TraceWriter::try_new(file, &CaptureHeader::default(), WriterOptions::default()).unwrap();
    for (pid, cgroup) in [(200, "/"), (201, "/")] {
        w.add_process(ProcessInfo {
            pid,
            first_seen_ns: 5,
            comm: "app".into(),
            cgroup: cgroup.into(),
            ..ProcessInfo::default()
        });
    }
    // Only pid 200 has a v1 path; pid 201's entry of another time does not match it.
    w.add_cgroup_v1(format::CgroupV1Path {
        pid: 200,
        first_seen_ns: 5,
        path: format!("/docker/{DOCKER}"),
    });
    w.add_cgroup_v1(format::CgroupV1Path {
        pid: 201,
        first_seen_ns: 6,
        path: format!("/docker/{LATER}"),
    });
    for pid in [200, 201] {
        let e = OwnedEvent {
            ts_ns: 10,
            tgid: pid,
            tid: pid,
            ..OwnedEvent::default()
        };
        w.write(&e.as_event()).unwrap();
    }
    w.finish().unwrap();
    let csv = ok(&[
        "events",
        f.to_str().unwrap(),
        "--format",
        "csv",
        "--fields",
        "pid,container_runtime,container_id",
    ]);
    assert_eq!(
        csv,
        format!("pid,container_runtime,container_id\n200,docker,{DOCKER}\n201,,\n")
    );
    let _ = std::fs::remove_dir_all(&d);
}
