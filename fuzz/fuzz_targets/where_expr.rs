//! The `--where` expression parser on arbitrary text: a parse error renders, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = analyze::filter::expr::parse(text) {
        let _ = e.render(text);
    }
});
