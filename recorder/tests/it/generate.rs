//! `recorder generate KIND` (what scripts/release.sh packages) from the built binary, without
//! privileges; that the text covers the whole command line is the unit test in src/cmd/generate.rs.

#[test]
fn generate_prints_and_writes_every_kind() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_recorder"));
    assert_eq!(clidoc::check_binary(exe), Vec::<String>::new());
}
