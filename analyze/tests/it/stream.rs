//! `analyze events -`: a trace read from standard input as it arrives.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;

#[test]
fn events_from_stdin_are_printed_as_their_blocks_arrive_and_a_cut_keeps_complete_blocks() {
    let dir = tmp_dir("stream");
    let file = dir.join("t.gsot");
    synth(&file, 7, 6000, 1000);
    let bytes = std::fs::read(&file).unwrap();
    let reader = format::TraceReader::open(&file).unwrap();
    let blocks = reader.blocks().to_vec();
    assert_eq!(blocks.len(), 6);
    let whole: Vec<String> = ok(&["events", file.to_str().unwrap()])
        .lines()
        .map(str::to_string)
        .collect();

    let mut child = command()
        .args(["events", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Two complete blocks (and the second's summary): their events come out while the
    // stream is still open.
    stdin
        .write_all(&bytes[..blocks[2].offset as usize])
        .unwrap();
    stdin.flush().unwrap();
    let mut got = Vec::new();
    while got.len() < 2000 {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => got.push(l),
            Err(_) => panic!("{} of 2000 lines while the stream was open", got.len()),
        }
    }
    assert_eq!(got, whole[..2000]);
    // Then cut inside the fifth block: the third and fourth are printed, nothing after.
    stdin
        .write_all(&bytes[blocks[2].offset as usize..blocks[4].offset as usize + 40])
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    got.extend(rx.iter());
    assert_eq!(got, whole[..4000]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "analyze: standard input: the stream was cut: at offset {}: file ends",
            blocks[4].offset + 16
        )),
        "{stderr}"
    );
}

#[test]
fn info_and_stats_read_stdin_to_its_end() {
    let dir = tmp_dir("stream-info");
    let file = dir.join("t.gsot");
    synth(&file, 3, 500, 100);
    let from_stdin = |args: &[&str]| {
        let out = command()
            .args(args)
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{:?}", out);
        String::from_utf8(out.stdout).unwrap()
    };
    let stats = from_stdin(&["stats", "-", "--by", "optname"]);
    assert_eq!(
        stats,
        ok(&["stats", file.to_str().unwrap(), "--by", "optname"])
    );
    let info = from_stdin(&["info", "-"]);
    assert!(
        info.starts_with("file:          standard input\n"),
        "{info}"
    );
    assert!(info.contains("events:        500\n"), "{info}");
}

#[test]
fn stdin_twice_or_counted_from_the_end_is_refused() {
    let r = analyze(&["stats", "-", "-"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`-` (standard input) can be given once"),
        "{}",
        r.stderr
    );
    let r = analyze(&["events", "-", "--since", "-5s"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("counts back from the end of the capture"),
        "{}",
        r.stderr
    );
}
