//! Whatever is written is read back exactly: events, header, process table, loss records.

use format::raw::COMM_LEN;
use format::{OwnedEvent, OwnedSocketRef, Socket, TraceReader, TraceWriter, WriterOptions};
use proptest::prelude::*;

fn event() -> impl Strategy<Value = OwnedEvent> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            0u32..4,
            1u32..6,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (
            any::<[u8; COMM_LEN]>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            -2i32..6,
            any::<i32>(),
        ),
        (
            0i32..3,
            any::<u64>(),
            any::<u64>(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            any::<u16>(),
        ),
        prop::collection::vec(any::<u8>(), 0..300),
        socket(),
    )
        .prop_map(
            |(
                (ts, dur, cpu, tgid, uid, gid, ppid),
                (comm, cg, pidns, mntns, fd, level),
                (optname, ov, ol, oin, oout, ret, flags),
                value,
                socket,
            )| OwnedEvent {
                ts_ns: ts,
                duration_ns: dur,
                cpu,
                tgid,
                tid: tgid * 10 + cpu,
                ppid,
                uid,
                gid,
                comm,
                cgroup_id: cg,
                pid_ns: pidns,
                mnt_ns: mntns,
                fd,
                level,
                optname,
                optval_ptr: ov,
                optlen_ptr: ol,
                optlen_in: oin,
                optlen_out: oout,
                ret,
                flags,
                value,
                socket,
            },
        )
}

/// What an event knows of its socket: nothing, no socket, one of a few sockets that repeat
/// (as they do in a capture), or any socket at all.
fn socket() -> impl Strategy<Value = OwnedSocketRef> {
    let few = (0u64..3).prop_map(|ino| {
        OwnedSocketRef::Socket(Socket {
            family: 2,
            sock_type: 1,
            protocol: 6,
            tcp_state: 1,
            local_port: 40_000 + ino as u16,
            ino,
            ..Socket::default()
        })
    });
    let any_socket = (
        (any::<[u16; 3]>(), any::<u8>(), any::<[[u8; 16]; 2]>()),
        (
            any::<[u16; 2]>(),
            any::<u32>(),
            any::<u64>(),
            any::<[u32; 2]>(),
        ),
        prop::collection::vec(any::<u8>(), 0..=108),
        prop::collection::vec(any::<u8>(), 0..=108),
    )
        .prop_map(
            |((fam, state, addr), (ports, scope, ino, ns), path, peer)| {
                OwnedSocketRef::Socket(Socket {
                    family: fam[0],
                    sock_type: fam[1],
                    protocol: fam[2],
                    tcp_state: state,
                    local_addr: addr[0],
                    local_port: ports[0],
                    remote_addr: addr[1],
                    remote_port: ports[1],
                    scope_id: scope,
                    ino,
                    netns: ns[0],
                    netlink_portid: ns[1],
                    unix_path: path,
                    unix_peer: peer,
                })
            },
        );
    prop_oneof![
        Just(OwnedSocketRef::NotRecorded),
        Just(OwnedSocketRef::NoSocket),
        few,
        any_socket,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn events_round_trip(events in prop::collection::vec(event(), 0..400), per_block in 1u32..150) {
        let bytes = crate::common::write_file(&events, per_block);
        let r = TraceReader::from_bytes(bytes).unwrap();
        prop_assert!(r.recovery().is_none());
        prop_assert_eq!(r.header(), &crate::common::header());
        prop_assert_eq!(r.event_count(), events.len() as u64);
        prop_assert_eq!(r.blocks().len(), events.len().div_ceil(per_block as usize));
        prop_assert_eq!(r.read_all_events().unwrap(), events.clone());
        prop_assert_eq!(r.processes().len(), events.len().div_ceil(per_block as usize));
        for b in r.blocks() {
            // The index's time range covers exactly the block's events.
            let mut d = format::DecodedBlock::new();
            r.decode_block(b, &mut d).unwrap();
            prop_assert_eq!(d.events().map(|e| e.ts_ns).min(), Some(b.ts_min));
            prop_assert_eq!(d.events().map(|e| e.ts_ns).max(), Some(b.ts_max));
        }
    }
}

#[test]
fn synthetic_traces_round_trip_in_parallel_too() {
    let events = crate::common::synth_events(50_000, 3);
    let bytes = crate::common::write_file(&events, 4096);
    let r = TraceReader::from_bytes(bytes).unwrap();
    assert_eq!(r.read_all_events().unwrap(), events);
    let per_block: Vec<Vec<OwnedEvent>> = r
        .par_map_blocks(r.blocks(), |_, b| {
            b.events().map(|e| e.to_owned_event()).collect()
        })
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(per_block.concat(), events);
}

#[test]
fn side_tables_and_header_round_trip() {
    let events = crate::common::synth_events(10, 1);
    let bytes = crate::common::write_file(&events, 4);
    let r = TraceReader::from_bytes(bytes).unwrap();
    assert_eq!(r.version(), (1, format::VERSION_MINOR));
    assert_eq!(
        r.processes(),
        &[
            crate::common::process(100),
            crate::common::process(104),
            crate::common::process(108)
        ]
    );
    let lost: Vec<u64> = r.losses().iter().map(|l| l.lost).collect();
    assert_eq!(lost, [0, 4, 8]);
    assert!(r.containers().is_empty());
}

#[test]
fn the_container_table_round_trips_and_survives_a_lost_index() {
    let c = |n: u8| format::ContainerInfo {
        id: format!("{n:02x}").repeat(32),
        runtime: "docker".into(),
        name: format!("web-{n}"),
        image: "nginx:1.27".into(),
        pod_name: "web-7f9c".into(),
        pod_namespace: "default".into(),
        k8s_container: "nginx".into(),
    };
    let events = crate::common::synth_events(10, 1);
    let mut w =
        TraceWriter::try_new(Vec::new(), &crate::common::header(), Default::default()).unwrap();
    w.add_container(c(1));
    for e in &events[..5] {
        w.write(&e.as_event()).unwrap();
    }
    w.flush().unwrap();
    w.add_container(c(2));
    let v1 = format::CgroupV1Path {
        pid: 100,
        first_seen_ns: 7,
        path: format!("/docker/{}", c(3).id),
    };
    w.add_cgroup_v1(v1.clone());
    for e in &events[5..] {
        w.write(&e.as_event()).unwrap();
    }
    let bytes = w.finish().unwrap();
    let r = TraceReader::from_bytes(bytes.clone()).unwrap();
    assert!(r.recovery().is_none());
    assert_eq!(r.containers(), &[c(1), c(2)]);
    assert_eq!(r.cgroup_v1_paths(), std::slice::from_ref(&v1));
    // Without the trailer and index, the scan finds both sections too.
    let cut = bytes[..bytes.len() - 24].to_vec();
    let r = TraceReader::from_bytes(cut).unwrap();
    assert!(r.recovery().is_some());
    assert_eq!(r.containers(), &[c(1), c(2)]);
    assert_eq!(r.cgroup_v1_paths(), &[v1]);
}

#[test]
fn time_range_queries_use_the_index() {
    let events = crate::common::synth_events(10_000, 5);
    let bytes = crate::common::write_file(&events, 1000);
    let r = TraceReader::from_bytes(bytes).unwrap();
    let (from, to) = (events[2500].ts_ns, events[4200].ts_ns);
    let blocks: Vec<_> = r.blocks_in_range(from, to).copied().collect();
    // Synthetic time only moves forward: blocks 2, 3 and 4 hold events 2000..5000.
    assert_eq!(blocks.len(), 3);
    let mut got = Vec::new();
    r.for_each_event(&blocks, |e| {
        if e.ts_ns >= from && e.ts_ns < to {
            got.push(e.to_owned_event())
        }
    })
    .unwrap();
    assert_eq!(got, events[2500..4200]);
}

#[test]
fn a_flush_makes_everything_so_far_readable_before_finish() {
    let events = crate::common::synth_events(300, 9);
    let mut w = TraceWriter::try_new(
        Vec::new(),
        &crate::common::header(),
        WriterOptions::default(),
    )
    .unwrap();
    for e in &events[..200] {
        w.write(&e.as_event()).unwrap();
    }
    w.add_process(crate::common::process(7));
    w.flush().unwrap();
    // What a crash right now would leave: no index, but every event so far.
    let r = TraceReader::from_bytes(w.get_ref().clone()).unwrap();
    let rec = r.recovery().expect("no index yet");
    assert!(rec.problems.is_empty(), "{:?}", rec.problems);
    assert_eq!(
        rec.reason.to_string(),
        format!(
            "at offset {}: expected the end magic \"GSOTEND\\n\" (the recorder did not finish this file)",
            w.get_ref().len() - 8
        )
    );
    assert_eq!(r.read_all_events().unwrap(), events[..200]);
    assert_eq!(r.processes(), &[crate::common::process(7)]);
}

#[test]
fn blocks_close_by_age_on_poll() {
    let events = crate::common::synth_events(10, 2);
    let opts = WriterOptions {
        max_block_age: std::time::Duration::from_millis(0),
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::try_new(Vec::new(), &crate::common::header(), opts).unwrap();
    w.write(&events[0].as_event()).unwrap();
    assert_eq!(w.stats().blocks, 0);
    assert!(w.poll_flush().unwrap());
    assert_eq!(w.stats().blocks, 1);
    assert!(!w.poll_flush().unwrap(), "nothing open, nothing to flush");
    let stats = w.stats();
    let bytes = w.finish().unwrap();
    assert_eq!(stats.events, 1);
    assert_eq!(
        TraceReader::from_bytes(bytes)
            .unwrap()
            .read_all_events()
            .unwrap(),
        events[..1]
    );
}

#[test]
fn a_value_longer_than_the_format_allows_is_refused() {
    let mut e = crate::common::synth_events(1, 1).remove(0);
    e.value = vec![0; 70_000];
    let mut w = TraceWriter::try_new(
        Vec::new(),
        &crate::common::header(),
        WriterOptions::default(),
    )
    .unwrap();
    let err = w.write(&e.as_event()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "an option value of 70000 bytes is longer than the format's 65535"
    );
}

/// Blocks closed early by flushes between full ones, while the writer's buffers grow (more
/// events and more sites per block): every event and every block summary reads back.
#[test]
fn blocks_closed_early_and_full_alike_read_back() {
    let events = crate::common::synth_events(60_000, 5);
    let opts = WriterOptions {
        max_block_events: 20_000,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::try_new(Vec::new(), &crate::common::header(), opts).unwrap();
    for (i, e) in events.iter().enumerate() {
        w.write(&e.as_event()).unwrap();
        if [0, 1, 3_000, 9_001, 9_002, 35_000, 52_000].contains(&i) {
            w.flush().unwrap();
        }
    }
    let r = TraceReader::from_bytes(w.finish().unwrap()).unwrap();
    assert_eq!(r.blocks().len(), 9);
    assert_eq!(r.read_all_events().unwrap(), events);
    let mut summary = format::BlockSummary::new();
    let mut block = format::DecodedBlock::new();
    for b in r.blocks() {
        assert!(r.read_summary(b, &mut summary).unwrap());
        r.decode_block(b, &mut block).unwrap();
        summary.check_against(&block).unwrap();
    }
}

/// One call site (same thread, fd, option, result) on a closed and reused fd: each call keeps
/// its own socket, the sockets are stored once per block, and the site is split by socket.
#[test]
fn a_reused_fd_keeps_each_calls_socket() {
    let tcp = |port: u16, ino: u64| Socket {
        family: 2,
        sock_type: 1,
        protocol: 6,
        tcp_state: 1,
        local_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        remote_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        local_port: 40_312,
        remote_port: port,
        ino,
        netns: 4026531840,
        ..Socket::default()
    };
    let sockets = [
        OwnedSocketRef::Socket(tcp(5432, 1001)),
        OwnedSocketRef::Socket(tcp(6379, 1002)),
        OwnedSocketRef::Socket(tcp(5432, 1001)),
        OwnedSocketRef::NoSocket,
        OwnedSocketRef::NotRecorded,
        OwnedSocketRef::Socket(tcp(6379, 1002)),
    ];
    let events: Vec<OwnedEvent> = sockets
        .iter()
        .enumerate()
        .map(|(i, s)| OwnedEvent {
            ts_ns: 1000 + i as u64,
            tgid: 7,
            tid: 7,
            fd: 4,
            level: 6,
            optname: 11,
            socket: s.clone(),
            ..OwnedEvent::default()
        })
        .collect();
    let r = TraceReader::from_bytes(crate::common::write_file(&events, 100)).unwrap();
    assert_eq!(r.read_all_events().unwrap(), events);
    let mut d = format::DecodedBlock::new();
    r.decode_block(&r.blocks()[0], &mut d).unwrap();
    assert_eq!(d.sockets(), &[tcp(5432, 1001), tcp(6379, 1002)]);
    let sites: Vec<u32> = d.sites().iter().map(|s| s.socket).collect();
    assert_eq!(
        sites,
        [
            0,
            1,
            format::Site::SOCKET_NONE,
            format::Site::SOCKET_NOT_RECORDED
        ]
    );
}

#[test]
fn the_writer_refuses_a_unix_name_longer_than_sun_path() {
    let e = OwnedEvent {
        socket: OwnedSocketRef::Socket(Socket {
            family: 1,
            unix_path: vec![b'a'; 109],
            ..Socket::default()
        }),
        ..OwnedEvent::default()
    };
    let mut w =
        format::TraceWriter::try_new(Vec::new(), &crate::common::header(), Default::default())
            .unwrap();
    let err = w.write(&e.as_event()).unwrap_err().to_string();
    assert!(
        err.contains("109 bytes is longer than sun_path's 108"),
        "{err}"
    );
}

/// A period of aggregate records with a process's entry and the overflow entry.
pub(crate) fn aggregate_period(start_ns: u64) -> format::AggregatePeriod {
    use format::{AggregateEntry, AggregatePeriod};
    AggregatePeriod {
        start_ns,
        end_ns: start_ns + 1_000_000_000,
        sample_p: 1 << 20,
        sampled: 300,
        capped: 2,
        dropped: 1,
        entries: vec![
            AggregateEntry {
                tgid: 812,
                level: 6,
                optname: 11,
                ret: -111,
                duration_sum_ns: 5 + 1000 * 40,
                duration_max_ns: 1_003,
                buckets: vec![(5, 1), (format::raw::agg_bucket(1000), 40)],
            },
            AggregateEntry {
                tgid: format::OVERFLOW_TGID,
                duration_sum_ns: 1 << 41,
                duration_max_ns: 1 << 41,
                buckets: vec![(format::raw::AGG_BUCKETS as u32 - 1, 1)],
                ..AggregateEntry::default()
            },
        ],
    }
}

#[test]
fn aggregate_records_round_trip_by_index_scan_and_stream() {
    let events = crate::common::synth_events(10, 1);
    let mut w =
        TraceWriter::try_new(Vec::new(), &crate::common::header(), Default::default()).unwrap();
    w.add_aggregates(aggregate_period(100));
    for e in &events {
        w.write(&e.as_event()).unwrap();
    }
    w.flush().unwrap();
    w.add_aggregates(aggregate_period(2_000_000_000));
    let bytes = w.finish().unwrap();
    let want = [aggregate_period(100), aggregate_period(2_000_000_000)];
    let r = TraceReader::from_bytes(bytes.clone()).unwrap();
    assert!(r.recovery().is_none());
    assert_eq!(r.version(), (1, 4));
    assert_eq!(r.aggregates(), &want);
    assert_eq!(r.aggregates()[0].entries[0].calls(), 41);
    assert!(r.aggregates()[0].entries[1].is_overflow());
    let cut = bytes[..bytes.len() - 24].to_vec();
    let r = TraceReader::from_bytes(cut).unwrap();
    assert!(r.recovery().is_some());
    assert_eq!(r.aggregates(), &want);
    let mut s = format::StreamReader::try_new(&bytes[..]).unwrap();
    let mut block = format::DecodedBlock::default();
    while s.next(&mut block).unwrap().is_some() {}
    assert_eq!(s.aggregates(), &want);
}

#[test]
fn aggregate_buckets_hold_their_durations_within_a_sixteenth() {
    use format::raw::{AGG_BUCKETS, agg_bucket, agg_bucket_range};
    let mut prev = 0;
    let mut probes: Vec<u64> = (0..70_000u64)
        .chain((10..64).flat_map(|k| [(1u64 << k) - 1, 1 << k, (1 << k) + 1]))
        .chain([u64::MAX])
        .collect();
    probes.sort();
    for d in probes {
        let b = agg_bucket(d);
        assert!((b as usize) < AGG_BUCKETS, "{d}");
        let (low, high) = agg_bucket_range(b);
        assert!(
            low <= d && d < high.max(low + 1) || high == u64::MAX,
            "{d} in bucket {b}: {low}..{high}"
        );
        if d < 1 << 40 {
            assert!(b >= prev, "{d}");
            prev = b;
            // The last bucket also holds longer durations; below 2^40 it ends there.
            let mid = low + (high.min(1 << 40) - low) / 2;
            assert!(mid.abs_diff(d) as f64 <= d as f64 / 16.0, "{d}: {mid}");
        }
    }
    assert_eq!(
        agg_bucket_range(AGG_BUCKETS as u32 - 1),
        (15 << 36, u64::MAX)
    );
    assert_eq!(agg_bucket(1 << 40), AGG_BUCKETS as u32 - 1);
}
