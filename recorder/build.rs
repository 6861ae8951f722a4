use std::path::Path;

/// Builds `recorder-ebpf`'s BPF binary with the nightly toolchain and bpf-linker (see
/// `scripts/setup.sh`) and leaves it in OUT_DIR, where `src/bpf.rs` embeds it with
/// `include_bytes_aligned!`: one self-contained binary to copy onto a server.
fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = Path::new(&manifest_dir).join("../recorder-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("recorder-ebpf path is not UTF-8"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "recorder-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
