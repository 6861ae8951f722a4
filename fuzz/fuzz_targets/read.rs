//! The whole read path of the trace format on arbitrary bytes: open (index or recovery scan),
//! side tables, every block decoded and every event walked, every block summary read and
//! compared with its block. It must never panic, hang or
//! allocate beyond what the input justifies.
#![no_main]

use format::{BlockSummary, DecodedBlock, TraceReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = TraceReader::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = (
        reader.header(),
        reader.processes(),
        reader.losses(),
        reader.recovery(),
    );
    let mut block = DecodedBlock::new();
    let mut summary = BlockSummary::new();
    for info in reader.blocks() {
        let decoded = reader.decode_block(info, &mut block).is_ok();
        if decoded {
            assert_eq!(block.events().count(), info.event_count as usize);
            for e in block.events() {
                std::hint::black_box(e);
            }
        }
        if let Ok(true) = reader.read_summary(info, &mut summary) {
            assert_eq!(summary.event_count(), info.event_count as usize);
            let runs: usize = (0..summary.site_count())
                .map(|i| summary.site_durations(i).len())
                .sum();
            assert_eq!(runs, summary.event_count());
            if decoded {
                let _ = summary.check_against(&block);
            }
        }
    }
});
