//! Reading only the front of a block (`TraceReader::read_block_front`): it says what a whole
//! decode says, and reports damage in what it reads as a whole decode does.

use format::{BlockFront, DecodedBlock, FrontParts, TraceReader};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn the_front_holds_what_a_whole_decode_holds(
        n in 1u64..3000, seed in 0u64..1000, per_block in 1u32..700
    ) {
        let events = crate::common::synth_events(n, seed);
        let r = TraceReader::from_bytes(crate::common::write_file(&events, per_block)).unwrap();
        let (mut d, mut f) = (DecodedBlock::new(), BlockFront::new());
        // Without its sockets read, a front's sites say "not recorded".
        let unread = |d: &DecodedBlock| -> Vec<format::Site> {
            d.sites()
                .iter()
                .map(|s| format::Site { socket: format::Site::SOCKET_NOT_RECORDED, ..*s })
                .collect()
        };
        for b in r.blocks() {
            r.decode_block(b, &mut d).unwrap();
            r.read_block_front(b, &mut f, FrontParts::Tables).unwrap();
            prop_assert_eq!(f.threads(), d.threads());
            prop_assert_eq!(f.sites(), &unread(&d)[..]);
            prop_assert_eq!(f.len(), 0);
            r.read_block_front(b, &mut f, FrontParts::TablesTimesAndSockets).unwrap();
            prop_assert_eq!(f.sites(), d.sites());
            prop_assert_eq!(f.sockets(), d.sockets());
            prop_assert!(f.site_indexes().eq(d.site_indexes()));
            r.read_block_front(b, &mut f, FrontParts::TablesAndTimes).unwrap();
            prop_assert_eq!(f.threads(), d.threads());
            prop_assert_eq!(f.sites(), &unread(&d)[..]);
            prop_assert!(f.sockets().is_empty());
            prop_assert_eq!(f.len(), d.len());
            prop_assert!(f.timestamps().eq(d.events().map(|e| e.ts_ns)));
            prop_assert!(f.durations().eq(d.events().map(|e| e.duration_ns)));
            prop_assert!(f.site_indexes().eq(d.site_indexes()));
        }
    }
}

/// A one-block file cut after its block (found by a scan, so the block may change length),
/// whose payload is `payload` compressed, with `raw_len` as its header says.
fn with_payload(bytes: &[u8], block_offset: usize, payload: &[u8], raw_len: usize) -> Vec<u8> {
    let o = block_offset;
    let mut body = bytes[o + 16..o + 16 + 24].to_vec();
    body[4..8].copy_from_slice(&(raw_len as u32).to_le_bytes());
    body.extend(zstd::bulk::compress(payload, 1).unwrap());
    let mut out = bytes[..o].to_vec();
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(b"BLCK");
    h[4..8].copy_from_slice(&(body.len() as u32).to_le_bytes());
    h[8..12].copy_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let hcrc = crc32c::crc32c(&h[..12]);
    h[12..16].copy_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&body);
    out
}

#[test]
fn damage_in_the_front_is_reported_as_a_whole_decode_reports_it() {
    let events = crate::common::synth_events(200, 4);
    let bytes = crate::common::write_file(&events, 1000);
    let r = TraceReader::from_bytes(bytes.clone()).unwrap();
    let b = r.blocks()[0];
    let (o, n) = (b.offset as usize, b.event_count as usize);
    let mut d = DecodedBlock::new();
    r.decompress_block(&b, &mut d).unwrap();
    let raw = d.payload().to_vec();
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap()) as usize;
    let n_threads = u64_at(0);
    let sites_len_at = 8 + 52 * n_threads;
    let n_sites = u64_at(sites_len_at);
    let ts_len_at = sites_len_at + 8 + 36 * n_sites;
    let site_col = ts_len_at + 8 + 8 * n + 8 + 8 * n + 8;
    let frame_at = o + 16 + 24;
    let put = |p: &mut Vec<u8>, at: usize, v: &[u8]| p[at..at + v.len()].copy_from_slice(v);

    let cases: Vec<(Vec<u8>, String)> = vec![
        {
            let mut p = raw.clone();
            put(&mut p, 0, &(1u64 << 40).to_le_bytes());
            let room = (raw.len() - 8) / 52;
            (
                p,
                format!(
                    "a thread table length of at most {room}, found {} at byte 0",
                    1u64 << 40
                ),
            )
        },
        {
            let mut p = raw.clone();
            put(&mut p, sites_len_at + 8, &(n_threads as u32).to_le_bytes());
            (
                p,
                format!(
                    "a thread index below {n_threads}, found {n_threads} at byte {}",
                    sites_len_at + 8
                ),
            )
        },
        {
            let mut p = raw.clone();
            put(&mut p, ts_len_at + 8 + 8 * n, &(n as u64 + 1).to_le_bytes());
            (
                p,
                format!(
                    "the duration column to hold {n} elements, found {} at byte {}",
                    n + 1,
                    ts_len_at + 8 + 8 * n
                ),
            )
        },
        {
            let mut p = raw.clone();
            put(&mut p, site_col + 4 * 7, &(n_sites as u32).to_le_bytes());
            (
                p,
                format!(
                    "a site index below {n_sites}, found {n_sites} at byte {}",
                    site_col + 28
                ),
            )
        },
    ];
    let mut f = BlockFront::new();
    for (payload, what) in cases {
        let damaged = with_payload(&bytes, o, &payload, payload.len());
        let r = TraceReader::from_bytes(damaged).unwrap();
        let text = format!(
            "at offset {frame_at}: expected {what} of the block payload decompressed from here"
        );
        let e = r
            .read_block_front(&r.blocks()[0], &mut f, FrontParts::TablesAndTimes)
            .unwrap_err();
        assert_eq!(e.to_string(), text);
        let e = r.decode_block(&r.blocks()[0], &mut d).unwrap_err();
        assert_eq!(e.to_string(), text);
        assert!(f.sites().is_empty() && f.is_empty());
    }

    // A frame that ends inside the site column (its header promises the whole payload).
    let damaged = with_payload(&bytes, o, &raw[..site_col + 10], raw.len());
    let r = TraceReader::from_bytes(damaged).unwrap();
    let e = r
        .read_block_front(&r.blocks()[0], &mut f, FrontParts::TablesAndTimes)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "at offset {frame_at}: expected a zstd frame of {} bytes, it ended at byte {} of the block payload decompressed from here",
            raw.len(),
            site_col + 10
        )
    );
    // The tables alone are all there.
    r.read_block_front(&r.blocks()[0], &mut f, FrontParts::Tables)
        .unwrap();
    assert_eq!(f.sites().len(), n_sites);
}
