//! Why a kernel cannot record at all: when no attach mode or no buffer kind works, one error
//! names the kernel and every piece it lacks, instead of the last mode's failure alone.

use std::fmt;
use std::path::Path;

use crate::bpf::AttachMode;
use crate::sys;

/// The exit status of a recorder that cannot record on this kernel (1 is any other error,
/// 2 a usage error).
pub const EXIT_UNSUPPORTED: u8 = 3;

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";
const BTF: &str = "/sys/kernel/btf/vmlinux";
/// Where aya looks for the syscall tracepoints: tracefs, or tracefs inside debugfs.
const TRACEFS_SYSCALLS: [&str; 2] = [
    "/sys/kernel/tracing/events/syscalls",
    "/sys/kernel/debug/tracing/events/syscalls",
];

/// What the recorder needs from the kernel, as found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelFacts {
    pub release: String,
    pub kprobe_pmu: bool,
    pub btf: bool,
    /// The syscall tracepoints are listed in tracefs (or would be, to a reader allowed to
    /// look: an unreadable tracefs is a permission problem, not a missing piece).
    pub tracefs: bool,
    /// BPF_MAP_TYPE_RINGBUF can be created (Linux 5.8+); `None` when the probe itself failed.
    pub ring_buffer: Option<bool>,
}

impl KernelFacts {
    /// Looks at this machine's kernel.
    pub fn probe() -> KernelFacts {
        let exists = |p: &str| match std::fs::metadata(p) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
        };
        KernelFacts {
            release: sys::uname_field(|u| &u.release),
            kprobe_pmu: Path::new(KPROBE_PMU).exists(),
            btf: Path::new(BTF).exists(),
            tracefs: TRACEFS_SYSCALLS.iter().any(|p| exists(p)),
            ring_buffer: aya::sys::is_map_supported(aya::maps::MapType::RingBuf).ok(),
        }
    }
}

/// The recorder cannot record on this kernel: what it lacks, and what each mode said.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub release: String,
    /// "no attach mode works" (or only "MODE does not work" when only it was asked for),
    /// "--buffer ring cannot work", or both.
    pub what: Vec<String>,
    /// Each missing piece with how it was found missing.
    pub missing: Vec<String>,
    /// One line per mode: its failure.
    pub tried: Vec<String>,
}

impl Unsupported {
    /// The diagnosis after every mode in `failed` failed to attach (`(mode, its error)`).
    /// `None` when some failure is not explained by a missing piece (a permission, a
    /// missing symbol): that is an ordinary error, not a kernel that cannot record.
    pub fn after_attach(facts: &KernelFacts, failed: &[(AttachMode, String)]) -> Option<Self> {
        let mut missing = Vec::new();
        for (mode, error) in failed {
            // The verifier refusing a program (EACCES) is the recorder's problem with this
            // kernel, not a piece the kernel lacks.
            if error.contains("(os error 13)") {
                return None;
            }
            let lacks = lacks_for(facts, *mode);
            if lacks.is_empty() {
                return None;
            }
            for l in lacks {
                if !missing.contains(&l) {
                    missing.push(l);
                }
            }
        }
        let what = match failed {
            [(mode, _)] => {
                format!("--attach {mode} cannot work")
            }
            _ => "no attach mode works".into(),
        };
        Some(Unsupported {
            release: facts.release.clone(),
            what: vec![what],
            missing,
            tried: failed.iter().map(|(m, e)| format!("{m}: {e}")).collect(),
        })
    }

    /// The diagnosis after the object's maps could not be created with `--buffer ring`
    /// (`auto` takes perf buffers where there is no ring buffer, and those need no new map
    /// type): `None` unless the ring buffer is missing. The modes were not tried; what their
    /// pieces look like is listed.
    pub fn after_load(facts: &KernelFacts, modes: &[AttachMode], error: &str) -> Option<Self> {
        if facts.ring_buffer != Some(false) {
            return None;
        }
        let mut u = Unsupported {
            release: facts.release.clone(),
            what: vec!["--buffer ring cannot work".into()],
            missing: vec![
                "the BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8+: creating one fails)".into(),
            ],
            tried: vec![format!("ring buffer: {error}")],
        };
        let lacks: Vec<Vec<String>> = modes.iter().map(|m| lacks_for(facts, *m)).collect();
        if lacks.iter().all(|l| !l.is_empty()) {
            u.what.insert(0, "no attach mode works".into());
        }
        for l in lacks.into_iter().flatten() {
            if !u.missing.contains(&l) {
                u.missing.insert(u.missing.len() - 1, l);
            }
        }
        Some(u)
    }
}

/// The pieces `mode` needs that `facts` says are missing. Trampolines cannot be seen without
/// trying, so they count as missing only when fentry failed with BTF present.
fn lacks_for(facts: &KernelFacts, mode: AttachMode) -> Vec<String> {
    match mode {
        AttachMode::Fentry if !facts.btf => {
            vec![format!("BTF ({BTF} missing: fentry needs it)")]
        }
        AttachMode::Fentry => {
            vec!["BPF trampolines (fentry/fexit on __sys_getsockopt refused)".into()]
        }
        AttachMode::Kprobe if !facts.kprobe_pmu => vec![format!(
            "kprobes (no kprobe PMU: {} missing)",
            KPROBE_PMU.trim_end_matches("/type")
        )],
        AttachMode::Tracepoint if !facts.tracefs => vec![format!(
            "tracefs ({} missing: not mounted, or no CONFIG_FTRACE_SYSCALLS)",
            TRACEFS_SYSCALLS.join(" and ")
        )],
        _ => Vec::new(),
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this kernel ({}) cannot record: {}; it lacks {}",
            self.release,
            self.what.join(" and "),
            self.missing.join(", ")
        )?;
        for t in &self.tried {
            write!(f, "\n  {t}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unsupported {}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> KernelFacts {
        KernelFacts {
            release: "4.19.0-27-cloud-amd64".into(),
            kprobe_pmu: false,
            btf: false,
            tracefs: false,
            ring_buffer: Some(false),
        }
    }

    const ALL: [AttachMode; 3] = AttachMode::AUTO_ORDER;

    #[test]
    fn an_old_kernel_lacking_everything_is_named_piece_by_piece() {
        let u = Unsupported::after_load(&facts(), &ALL, "map events: EINVAL").unwrap();
        assert_eq!(
            u.to_string(),
            "this kernel (4.19.0-27-cloud-amd64) cannot record: no attach mode works and \
             --buffer ring cannot work; it lacks BTF (/sys/kernel/btf/vmlinux missing: fentry needs \
             it), kprobes (no kprobe PMU: /sys/bus/event_source/devices/kprobe missing), \
             tracefs (/sys/kernel/tracing/events/syscalls and \
             /sys/kernel/debug/tracing/events/syscalls missing: not mounted, or no \
             CONFIG_FTRACE_SYSCALLS), the BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8+: \
             creating one fails)\n  ring buffer: map events: EINVAL"
        );
        // With tracefs there, a mode could attach: only the buffer is missing.
        let tp = KernelFacts {
            tracefs: true,
            ..facts()
        };
        let u = Unsupported::after_load(&tp, &ALL, "e").unwrap();
        assert_eq!(u.what, ["--buffer ring cannot work"]);
        assert!(!u.missing.iter().any(|m| m.starts_with("tracefs")));
        // A load failure with the ring buffer there is an ordinary error.
        let rb = KernelFacts {
            ring_buffer: Some(true),
            ..facts()
        };
        assert_eq!(Unsupported::after_load(&rb, &ALL, "e"), None);
    }

    #[test]
    fn attach_failures_are_unsupported_only_when_a_missing_piece_explains_each() {
        let host = KernelFacts {
            release: "6.18.44".into(),
            btf: true,
            ring_buffer: Some(true),
            ..facts()
        };
        let failed: Vec<(AttachMode, String)> =
            ALL.iter().map(|m| (*m, format!("{m} failed"))).collect();
        let u = Unsupported::after_attach(&host, &failed).unwrap();
        assert_eq!(
            u.to_string(),
            "this kernel (6.18.44) cannot record: no attach mode works; it lacks BPF \
             trampolines (fentry/fexit on __sys_getsockopt refused), kprobes (no kprobe PMU: \
             /sys/bus/event_source/devices/kprobe missing), tracefs \
             (/sys/kernel/tracing/events/syscalls and /sys/kernel/debug/tracing/events/syscalls \
             missing: not mounted, or no CONFIG_FTRACE_SYSCALLS)\n  fentry: fentry failed\n  \
             kprobe: kprobe failed\n  tracepoint: tracepoint failed"
        );
        // tracefs present (unreadable, say): the tracepoint failure is not the kernel's.
        let readable = KernelFacts {
            tracefs: true,
            ..host.clone()
        };
        assert_eq!(Unsupported::after_attach(&readable, &failed), None);
        // A program the verifier refuses is not a missing piece.
        let refused = [(
            AttachMode::Fentry,
            "loading fentry: ... Permission denied (os error 13). Verifier output: ...".into(),
        )];
        assert_eq!(Unsupported::after_attach(&host, &refused), None);
        // Only the modes tried count.
        let only_kprobe = [(AttachMode::Kprobe, "no PMU".to_string())];
        let u = Unsupported::after_attach(&readable, &only_kprobe).unwrap();
        assert_eq!(u.missing.len(), 1);
        assert!(u.missing[0].starts_with("kprobes"));
        assert!(
            u.to_string()
                .starts_with("this kernel (6.18.44) cannot record: --attach kprobe cannot work;"),
            "{u}"
        );
    }
}
