use std::env;

/// Building the eBPF binary depends on the `bpf-linker` executable, which cargo cannot track.
/// Re-run (and so rebuild) when it changes, as aya's template does. On the host build (the
/// library, pulled in by `recorder`) bpf-linker is not needed, so its absence is not an error.
fn main() {
    // aya-build passes `--cfg bpf_target_arch="..."` when it builds the BPF binary.
    println!(
        "cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"aarch64\", \"arm\", \"loongarch64\", \"mips\", \"mips64\", \"powerpc64\", \"riscv64\", \"s390x\", \"x86_64\"))"
    );
    let target_is_bpf = env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "bpf");
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) if target_is_bpf => {
            panic!("bpf-linker not found ({err}); run scripts/setup.sh")
        }
        Err(_) => {}
    }
}
