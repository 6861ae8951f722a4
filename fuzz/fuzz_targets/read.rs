//! The whole read path of the trace format on arbitrary bytes: open (index or recovery scan),
//! side tables, every block decoded and every event walked. It must never panic, hang or
//! allocate beyond what the input justifies.
#![no_main]

use format::{DecodedBlock, TraceReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = TraceReader::from_bytes(data.to_vec()) else { return };
    let _ = (reader.header(), reader.processes(), reader.losses(), reader.recovery());
    let mut block = DecodedBlock::new();
    for info in reader.blocks() {
        if reader.decode_block(info, &mut block).is_ok() {
            assert_eq!(block.events().count(), info.event_count as usize);
            for e in block.events() {
                std::hint::black_box(e);
            }
        }
    }
});
