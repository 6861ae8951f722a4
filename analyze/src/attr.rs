//! Which container, pod or systemd unit made a call: each process's cgroup path from the file's
//! process table, parsed once per distinct path ([`gsot_decode::cgroup`]), with the names the
//! container table (1.3) holds for its container id. Old files gain attribution from the paths
//! alone.

use std::sync::{Mutex, OnceLock};

use format::{CgroupV1Path, ContainerInfo, ProcessInfo, ProcessTable, TraceReader};
use gsot_decode::cgroup::{self, Attribution, Field, Names};
use rustc_hash::FxHashMap;

/// One file's attribution of processes.
#[derive(Default)]
pub struct Attributor {
    processes: ProcessTable,
    /// v1 paths of entries at the v2 root (FORMAT.md 5.2), by (pid, first_seen_ns).
    v1: FxHashMap<(u32, u64), String>,
    /// Each distinct cgroup path's attribution, with its values interned ([`Interned`]).
    by_path: FxHashMap<String, (Attribution, Interned)>,
    none: (Attribution, Interned),
}

/// Global ids of an attribution's values, so `stats --by` keys stay integers across files
/// and workers. 0 is "unknown".
#[derive(Clone, Copy, Debug, Default)]
pub struct Interned {
    pub pod: u32,
    pub container: u32,
    pub fields: [u32; cgroup::FIELDS.len()],
}

impl Attributor {
    pub fn new(r: &TraceReader) -> Attributor {
        Attributor::of_side_tables(r.processes(), r.containers(), r.cgroup_v1_paths())
    }

    /// [`Attributor::new`] from the three tables (a stream's so far).
    pub fn of_side_tables(
        entries: &[ProcessInfo],
        containers: &[ContainerInfo],
        v1: &[CgroupV1Path],
    ) -> Attributor {
        let mut a = Attributor::of_tables(entries, containers, v1);
        a.v1 = v1
            .iter()
            .map(|v| ((v.pid, v.first_seen_ns), v.path.clone()))
            .collect();
        a
    }

    /// From a process table and a container table (FORMAT.md 5.1: a container's last entry
    /// names it).
    pub fn of_tables(
        entries: &[ProcessInfo],
        containers: &[ContainerInfo],
        v1: &[CgroupV1Path],
    ) -> Attributor {
        let names: FxHashMap<&str, &ContainerInfo> =
            containers.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut by_path = FxHashMap::default();
        let v1_paths = v1.iter().map(|v| v.path.as_str());
        for path in entries.iter().map(|p| p.cgroup.as_str()).chain(v1_paths) {
            by_path.entry(path.to_string()).or_insert_with(|| {
                let cgroup = cgroup::parse(path);
                let names = names
                    .get(cgroup.container_id.as_str())
                    .filter(|_| !cgroup.container_id.is_empty())
                    .map_or_else(Names::default, |c| Names {
                        container_name: c.name.clone(),
                        image: c.image.clone(),
                        pod_name: c.pod_name.clone(),
                        pod_namespace: c.pod_namespace.clone(),
                        k8s_container: c.k8s_container.clone(),
                    });
                let a = Attribution { cgroup, names };
                let ids = intern_all(&a);
                (a, ids)
            });
        }
        Attributor {
            processes: ProcessTable::new(entries),
            v1: FxHashMap::default(),
            by_path,
            none: Default::default(),
        }
    }

    pub fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    /// The attribution of a process table entry (of none: nothing known).
    pub fn of(&self, p: Option<&ProcessInfo>) -> &Attribution {
        &self.entry(p).0
    }

    /// The interned values of a process table entry's attribution.
    pub fn ids_of(&self, p: Option<&ProcessInfo>) -> Interned {
        self.entry(p).1
    }

    /// An entry's attribution: by its v2 path, or by its v1 path where it sits at the v2 root.
    fn entry(&self, p: Option<&ProcessInfo>) -> &(Attribution, Interned) {
        let Some(p) = p else { return &self.none };
        let path = match self.v1.get(&(p.pid, p.first_seen_ns)) {
            Some(v1) if p.cgroup == "/" => v1,
            _ => &p.cgroup,
        };
        self.by_path.get(path).unwrap_or(&self.none)
    }

    /// The attribution of process `tgid` at boot time `ts`.
    pub fn at(&self, tgid: u32, ts: u64) -> &Attribution {
        self.of(self.processes.in_force_at(tgid, ts))
    }

    /// Every distinct attribution of the file's processes, in no particular order.
    pub fn attributions(&self) -> impl Iterator<Item = &Attribution> {
        self.by_path.values().map(|v| &v.0)
    }

    /// The latest entry of `tgid`: what a question without the event's time uses.
    pub fn latest(&self, tgid: u32) -> Option<&ProcessInfo> {
        self.processes.entries(tgid).last()
    }
}

fn intern_all(a: &Attribution) -> Interned {
    let mut ids = Interned {
        pod: intern(a.pod_label().as_deref()),
        container: intern(a.container_label()),
        ..Interned::default()
    };
    for (i, f) in cgroup::FIELDS.iter().enumerate() {
        ids.fields[i] = intern(a.get(f.0));
    }
    ids
}

/// Every interned value: its id by value, and its value by id.
type Interner = Mutex<(FxHashMap<String, u32>, Vec<String>)>;

fn names() -> &'static Interner {
    static NAMES: OnceLock<Interner> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new((FxHashMap::default(), vec![String::new()])))
}

/// A value's global id; `None` is 0.
pub fn intern(s: Option<&str>) -> u32 {
    let Some(s) = s else { return 0 };
    let mut g = names().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&i) = g.0.get(s) {
        return i;
    }
    let i = g.1.len() as u32;
    g.0.insert(s.to_string(), i);
    g.1.push(s.to_string());
    i
}

/// The value of a global id ("" for unknown).
pub fn interned(i: u32) -> String {
    let g = names().lock().unwrap_or_else(|e| e.into_inner());
    g.1.get(i as usize).cloned().unwrap_or_default()
}

/// Index of a field in [`cgroup::FIELDS`].
pub fn field_index(f: Field) -> usize {
    cgroup::FIELDS.iter().position(|x| x.0 == f).unwrap_or(0)
}
