//! The whole analyze decode path on arbitrary bytes: the trace opened, every block decoded,
//! every event through the filter (per site and per event) and rendered as text, JSON and CSV
//! with its option value decoded; plus the option value decoders and the `--where` parser fed
//! the input directly. Nothing may panic, whatever the bytes.
#![no_main]

use analyze::decode::decode_value;
use analyze::filter::{Filter, FilterArgs, Span, Tri};
use analyze::output::{EventFormat, EventWriter, FileCtx, TimeMode};
use format::{DecodedBlock, TraceReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The value decoders alone: level and option from the first 8 bytes, value from the rest.
    if data.len() >= 8 {
        let level = i32::from_le_bytes(data[0..4].try_into().unwrap());
        let opt = i32::from_le_bytes(data[4..8].try_into().unwrap());
        for (l, o) in [
            (level, opt),
            (level % 300, opt % 100),
            (6, 11),
            (1, opt % 90),
        ] {
            let d = decode_value(l, o, &data[8..], data.len() % 2 == 0);
            let mut s = String::new();
            d.value.write_text(&mut s);
            d.value.write_json(&mut s);
        }
    }
    // The expression parser on the bytes as text.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = analyze::filter::expr::parse(text) {
            let _ = e.render(text);
        }
    }

    let Ok(reader) = TraceReader::from_bytes(data.to_vec()) else {
        return;
    };
    let span = Span::of(&[&reader]);
    let args = FilterArgs {
        where_expr: Some(
            "comm ~ \"*x*\" && duration > 300ns || errno == EINVAL || optname == TCP_INFO \
             || pod_name ~ \"w*\" || remote_addr in 10.0.0.0/8 || local_addr == ::1 \
             || unix_path ~ \"*a*\" || tcp_state == LISTEN && remote_port != 443 \
             || sock_family == 99"
                .into(),
        ),
        since: Some("1us".into()),
        ..FilterArgs::default()
    };
    let Ok(filter) = Filter::new(&args, span) else {
        return;
    };
    let ff = filter.for_file(&reader);
    // Container attribution from the file's process and container tables.
    let attr = analyze::attr::Attributor::new(&reader);
    let ctx = FileCtx {
        path: "fuzz",
        boot_to_wall: reader.header().boot_to_wall_ns,
        rel_base: ff.rel_base,
        attr: &attr,
    };
    let writers: Vec<EventWriter> = [EventFormat::Text, EventFormat::Json, EventFormat::Csv]
        .into_iter()
        .map(|f| EventWriter::new(f, TimeMode::Rel, None, true).unwrap())
        .collect();
    let mut block = DecodedBlock::new();
    let mut verdicts: Vec<Tri> = Vec::new();
    let mut out = String::new();
    for info in reader.blocks() {
        if reader.decode_block(info, &mut block).is_err() {
            continue;
        }
        analyze::input::for_each_selected(&block, &ff, &mut verdicts, |_, e| {
            for w in &writers {
                out.clear();
                w.write(&mut out, e, &ctx);
            }
        });
        // Every event, selected or not, through the writers too.
        for e in block.events().take(64) {
            for w in &writers {
                out.clear();
                w.write(&mut out, &e, &ctx);
            }
        }
    }
});
