//! Golden files: the samples committed in `samples/` must keep decoding to exactly this, in
//! this and every later version of the reader.

use format::{Event, TraceReader};

fn sample(name: &str) -> TraceReader {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name);
    TraceReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// FNV-1a over every field of every event, in order: any change in what a sample decodes to
/// changes this.
fn digest(r: &TraceReader) -> (u64, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut n = 0;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    r.for_each_event(r.blocks(), |e: &Event<'_>| {
        n += 1;
        for v in [
            e.ts_ns,
            e.duration_ns,
            e.cgroup_id,
            e.optval_ptr,
            e.optlen_ptr,
        ] {
            eat(&v.to_le_bytes());
        }
        for v in [
            e.cpu, e.tgid, e.tid, e.ppid, e.uid, e.gid, e.pid_ns, e.mnt_ns,
        ] {
            eat(&v.to_le_bytes());
        }
        for v in [e.fd, e.level, e.optname, e.optlen_in, e.optlen_out, e.ret] {
            eat(&v.to_le_bytes());
        }
        eat(&e.flags.to_le_bytes());
        eat(&e.comm);
        eat(&(e.value.len() as u32).to_le_bytes());
        eat(e.value);
    })
    .unwrap();
    (n, h)
}

#[test]
fn synthetic_mixed_sample() {
    let r = sample("synthetic-mixed.gsot");
    assert_eq!(r.version(), (1, 0));
    assert!(r.recovery().is_none());
    let h = r.header();
    assert_eq!(h.host_name, "synth-host");
    assert_eq!(h.attach_mode, "synthetic");
    assert_eq!(h.snaplen, 512);
    assert_eq!(h.boot_to_wall_ns, 1_767_139_200_000_000_000);
    assert_eq!(r.blocks().len(), 5);
    assert_eq!(r.processes().len(), 48);
    assert_eq!(r.processes()[0].exe, "/usr/sbin/nginx");
    assert_eq!(r.losses().len(), 1);
    assert_eq!(r.losses()[0].lost, 17);
    assert_eq!(digest(&r), (5000, 0x2fc4_b35f_5e7e_334d));
    let all = r.read_all_events().unwrap();
    let first = &all[0];
    assert_eq!(
        (first.ts_ns, first.duration_ns, first.tgid, first.tid),
        (86_400_000_000_658, 319, 3832, 3832)
    );
    assert_eq!(&first.comm[..6], b"nginx\0");
    assert_eq!(
        (first.fd, first.level, first.optname, first.ret),
        (3, 1, 4, 0)
    );
    assert_eq!(
        (first.optlen_in, first.optlen_out, &first.value[..]),
        (4, 4, &[0u8, 0, 0, 0][..])
    );
    // A whole tcp_info, as the generator makes it for Linux 6.18.
    let tcp_info = all
        .iter()
        .find(|e| e.level == 6 && e.optname == 11 && e.ret == 0)
        .unwrap();
    assert_eq!(
        (tcp_info.optlen_out, tcp_info.value.len(), tcp_info.value[0]),
        (280, 280, 1)
    );
}

#[test]
fn synthetic_mixed_1_1_sample_has_a_matching_summary_per_block() {
    let r = sample("synthetic-mixed-1.1.gsot");
    assert_eq!(r.version(), (1, 1));
    assert!(r.recovery().is_none());
    assert_eq!(r.blocks().len(), 5);
    // The same events as the 1.0 sample: only the summaries were added.
    assert_eq!(digest(&r), (5000, 0x2fc4_b35f_5e7e_334d));
    let mut s = format::BlockSummary::new();
    let mut d = format::DecodedBlock::new();
    let mut sizes = Vec::new();
    for b in r.blocks() {
        assert!(r.read_summary(b, &mut s).unwrap());
        r.decode_block(b, &mut d).unwrap();
        s.check_against(&d).unwrap();
        sizes.push((s.site_count(), s.event_count()));
    }
    assert_eq!(sizes.iter().map(|x| x.1).sum::<usize>(), 5000);
    // The first block's first site: the first event's (nginx, SO_ERROR), whose duration is 319.
    r.read_summary(&r.blocks()[0], &mut s).unwrap();
    assert!(s.site_durations(0).contains(&319));
    assert!(s.site_durations(0).is_sorted());
}

#[test]
fn synthetic_loop_sample() {
    let r = sample("synthetic-loop.gsot");
    assert_eq!(r.blocks().len(), 3);
    assert_eq!(digest(&r), (5000, 0x8d94_aaa2_97ac_b11e));
    let all = r.read_all_events().unwrap();
    assert!(
        all.iter()
            .all(|e| e.optname == 8 && e.value == 131072i32.to_le_bytes())
    );
}

#[test]
fn crashed_sample_recovers_its_complete_blocks() {
    let r = sample("crashed.gsot");
    let rec = r.recovery().expect("the file has no trailer");
    assert_eq!(
        rec.reason.to_string(),
        "at offset 43794: expected the end magic \"GSOTEND\\n\" (the recorder did not finish this file)"
    );
    assert_eq!(rec.stopped_at, 43702);
    let problems: Vec<String> = rec.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        ["at offset 43718: file ends, expected a 20982-byte BLCK section body, 84 bytes left"]
    );
    assert_eq!(r.blocks().len(), 2);
    assert_eq!(r.processes().len(), 48);
    assert_eq!(digest(&r), (2048, 0x3f6f_56b7_f8e0_1217));
}

#[test]
fn synthetic_mixed_1_2_sample_has_the_same_events_with_their_sockets() {
    use format::{SocketCapture, SocketRef};
    let r = sample("synthetic-mixed-1.2.gsot");
    assert_eq!(r.version(), (1, 2));
    assert!(r.recovery().is_none());
    assert_eq!(r.header().socket_capture(), SocketCapture::Recorded);
    // Every field but the sockets is that of the 1.0 sample.
    assert_eq!(digest(&r), (5000, 0x2fc4_b35f_5e7e_334d));
    let all = r.read_all_events().unwrap();
    for e in &all {
        match (e.ret, e.socket.as_ref()) {
            (-9 | -88, s) => assert_eq!(s, SocketRef::NoSocket, "{e:?}"),
            (_, SocketRef::Socket(_)) => {}
            (_, s) => panic!("{s:?} for {e:?}"),
        }
    }
    // One process's fd is one socket at a time, and a reused fd gets another.
    let mut by_fd = std::collections::HashMap::new();
    let mut reused = 0;
    for e in &all {
        if let SocketRef::Socket(s) = e.socket.as_ref() {
            let prev = by_fd.insert((e.tgid, e.fd), s.ino);
            reused += prev.is_some_and(|p| p != s.ino) as u32;
        }
    }
    assert!(reused <= 5, "{reused}");
    let families: std::collections::BTreeSet<u16> = all
        .iter()
        .filter_map(|e| e.socket.as_ref().socket().map(|s| s.family))
        .collect();
    assert_eq!(families.into_iter().collect::<Vec<_>>(), [1, 2, 10, 16]);
    let first = &all[0];
    let s = first.socket.as_ref().socket().unwrap();
    assert_eq!(
        (first.fd, s.family, s.tcp_state, s.local_port),
        (3, 2, 10, 443)
    );
}

/// Reading only a block's front with its sockets gives the sites and sockets of a whole decode.
#[test]
fn block_front_with_sockets_agrees_with_a_whole_decode() {
    use format::{BlockFront, DecodedBlock, FrontParts};
    for name in ["synthetic-mixed-1.2.gsot", "synthetic-mixed-1.1.gsot"] {
        let r = sample(name);
        let (mut f, mut d) = (BlockFront::new(), DecodedBlock::new());
        for b in r.blocks() {
            r.read_block_front(b, &mut f, FrontParts::TablesTimesAndSockets)
                .unwrap();
            r.decode_block(b, &mut d).unwrap();
            assert_eq!(f.sites(), d.sites());
            assert_eq!(f.sockets(), d.sockets());
            assert!(f.site_indexes().eq(d.site_indexes()));
            assert_eq!(name.contains("1.2"), !d.sockets().is_empty());
        }
    }
}

#[test]
fn sampled_flood_sample_counts_every_call_in_its_aggregate_records() {
    let r = sample("real/sampled-flood.gsot");
    assert_eq!(r.version(), (1, 4));
    assert_eq!(r.event_count(), 1138);
    let periods = r.aggregates();
    assert_eq!(periods.len(), 16);
    let mut by = std::collections::BTreeMap::new();
    for e in periods.iter().flat_map(|p| &p.entries) {
        assert!(!e.is_overflow());
        *by.entry((e.level, e.optname, e.ret)).or_insert(0u64) += e.calls();
    }
    let want = [
        ((1, 7, 0), 200_000),
        ((1, 8, 0), 200_000),
        ((6, 9999, -92), 30_000),
    ];
    assert_eq!(by.into_iter().collect::<Vec<_>>(), want);
    // The events are the periods' sampled calls that reached the file, each period at most
    // its cap of 125 (FORMAT.md 5.3).
    let kept: u64 = periods
        .iter()
        .map(|p| p.sampled - p.capped - p.dropped)
        .sum();
    assert_eq!(kept, 1138);
    assert!(periods.iter().all(|p| p.sampled - p.capped <= 125));
    assert!(
        periods.windows(2).all(|w| w[0].end_ns == w[1].start_ns),
        "contiguous periods"
    );
}
