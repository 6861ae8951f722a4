//! The process table (PROC section) decoder on arbitrary bytes: nothing panics, and the count
//! it announces never sizes an allocation beyond what the bytes can hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(table) = format::fuzzing::decode_processes(body) {
        // Each entry takes at least 6 bytes.
        assert!(table.len() <= body.len() / 6);
    }
});
