//! The HEAD section's decoder on arbitrary bytes: an error names an offset, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(h) = format::fuzzing::decode_header(body) {
        let _ = format!("{h:?}");
    }
});
