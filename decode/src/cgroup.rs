//! Who a cgroup v2 path belongs to: a container (its runtime and id), a Kubernetes pod (its
//! UID and QoS class), or else a systemd unit and slice. Only the path is read, so a trace
//! analysed far from the node it was captured on is attributed the same way.
//!
//! The shapes are the ones the runtimes create, under either cgroup driver:
//!
//! ```text
//! systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
//!           /system.slice/docker-<id>.scope   /machine.slice/libpod-<id>.scope   crio-<id>.scope
//!           /machine.slice/systemd-nspawn@<name>.service
//! cgroupfs: /kubepods/besteffort/pod<uid>/<id>   /kubepods/pod<uid>/crio-<id>   /docker/<id>
//!           /libpod_parent/libpod-<id>   /lxc.payload.<name>   /lxc/<name>
//! ```
//!
//! The innermost container wins (kind runs pods inside a Docker container); a pod component
//! forgets a container above it, as that one is the node, not the pod's. A path that fits no
//! shape attributes nothing: a container id is exactly 64 hex digits, a pod UID a UUID (or the
//! 32 hex digits of a static pod's config hash).

/// The container runtimes a path can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    Lxc,
    SystemdNspawn,
}

impl Runtime {
    /// The name shown in every output (`cri-o`, `systemd-nspawn`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Lxc => "lxc",
            Runtime::SystemdNspawn => "systemd-nspawn",
        }
    }
}

/// A Kubernetes pod's QoS class, from its parent slice or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name as the kubelet spells the cgroup (`besteffort`).
    pub fn name(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "guaranteed",
            QosClass::Burstable => "burstable",
            QosClass::BestEffort => "besteffort",
        }
    }

    fn by_name(s: &str) -> Option<QosClass> {
        match s {
            "burstable" => Some(QosClass::Burstable),
            "besteffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

/// Which cgroup driver named the container's or pod's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Driver {
    /// `.slice` and `.scope` units.
    Systemd,
    /// Plain directories.
    Cgroupfs,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Systemd => "systemd",
            Driver::Cgroupfs => "cgroupfs",
        }
    }
}

/// What a cgroup path says about its processes; empty strings and `None` where it says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CgroupInfo {
    /// `None` also for a Kubernetes cgroupfs container directory, which is a bare id.
    pub runtime: Option<Runtime>,
    /// 64 lowercase hex digits.
    pub container_id: String,
    /// A container known by name rather than id (lxc, systemd-nspawn).
    pub container_name: String,
    /// With dashes: `1b4e28ba-2fa1-11d2-883f-0016d3cca427`.
    pub pod_uid: String,
    pub qos: Option<QosClass>,
    /// The driver of the container's or pod's cgroup; `None` when there is neither.
    pub driver: Option<Driver>,
    /// The innermost `.service` or `.scope`, when the path is no container's or pod's.
    pub systemd_unit: String,
    /// The innermost `.slice`, when the path is no container's or pod's.
    pub slice: String,
}

impl CgroupInfo {
    /// Whether the path names a container (by id or by name).
    pub fn is_container(&self) -> bool {
        !self.container_id.is_empty() || !self.container_name.is_empty()
    }

    /// The 12-hex short form of the container id, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        short_id(&self.container_id)
    }
}

/// An attribution field, as `--where`, `--fields`, Parquet and `stats --by` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Runtime,
    ContainerId,
    ContainerName,
    Image,
    PodUid,
    PodName,
    PodNamespace,
    K8sContainer,
    Qos,
    SystemdUnit,
}

/// Every attribution field: its name everywhere, and what it means. The one list of them.
pub const FIELDS: &[(Field, &str, &str)] = &[
    (
        Field::Runtime,
        "container_runtime",
        "container runtime: docker, containerd, cri-o, podman, lxc, systemd-nspawn",
    ),
    (
        Field::ContainerId,
        "container_id",
        "container id, 64 hex digits (text shows the first 12)",
    ),
    (
        Field::ContainerName,
        "container_name",
        "container name, from the runtime or the cgroup path",
    ),
    (Field::Image, "image", "container image, from the runtime"),
    (
        Field::PodUid,
        "pod_uid",
        "Kubernetes pod UID, from the cgroup path",
    ),
    (
        Field::PodName,
        "pod_name",
        "Kubernetes pod name, from the runtime's labels",
    ),
    (
        Field::PodNamespace,
        "pod_namespace",
        "Kubernetes namespace of the pod, from the runtime's labels",
    ),
    (
        Field::K8sContainer,
        "k8s_container",
        "container name within its pod, from the runtime's labels",
    ),
    (
        Field::Qos,
        "qos_class",
        "pod QoS class: guaranteed, burstable, besteffort",
    ),
    (
        Field::SystemdUnit,
        "systemd_unit",
        "systemd unit (nginx.service) of a process in no container",
    ),
];

impl Field {
    pub fn by_name(name: &str) -> Option<Field> {
        FIELDS.iter().find(|f| f.1 == name).map(|f| f.0)
    }

    pub fn name(self) -> &'static str {
        FIELDS.iter().find(|f| f.0 == self).map_or("", |f| f.1)
    }
}

/// What the runtime said of a container at capture time (empty where it said nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Names {
    pub container_name: String,
    pub image: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub k8s_container: String,
}

/// A process's attribution: its cgroup path parsed, with the runtime's names where known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attribution {
    pub cgroup: CgroupInfo,
    pub names: Names,
}

impl Attribution {
    /// Whether the process is in a container.
    pub fn is_container(&self) -> bool {
        self.cgroup.is_container()
    }

    /// A field's value; `None` when unknown.
    pub fn get(&self, f: Field) -> Option<&str> {
        let (c, n) = (&self.cgroup, &self.names);
        let s = match f {
            Field::Runtime => c.runtime.map_or("", Runtime::name),
            Field::ContainerId => &c.container_id,
            Field::ContainerName if n.container_name.is_empty() => &c.container_name,
            Field::ContainerName => &n.container_name,
            Field::Image => &n.image,
            Field::PodUid => &c.pod_uid,
            Field::PodName => &n.pod_name,
            Field::PodNamespace => &n.pod_namespace,
            Field::K8sContainer => &n.k8s_container,
            Field::Qos => c.qos.map_or("", QosClass::name),
            Field::SystemdUnit => &c.systemd_unit,
        };
        (!s.is_empty()).then_some(s)
    }

    /// The container as a person names it: its name, else its short id.
    pub fn container_label(&self) -> Option<&str> {
        self.get(Field::ContainerName)
            .or_else(|| self.get(Field::ContainerId).map(short_id))
    }

    /// The pod as a person names it: `name/namespace`, else its UID.
    pub fn pod_label(&self) -> Option<String> {
        match (self.get(Field::PodName), self.get(Field::PodNamespace)) {
            (Some(n), Some(ns)) => Some(format!("{n}/{ns}")),
            (Some(n), None) => Some(n.to_string()),
            _ => self.get(Field::PodUid).map(str::to_string),
        }
    }
}

/// The 12-character short form of a container id (the whole id if shorter).
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Parses a cgroup v2 path as `/proc/PID/cgroup` prints it (`0::/system.slice/x.service`
/// without the `0::`). Never fails: what fits no shape is left empty.
pub fn parse(path: &str) -> CgroupInfo {
    let mut info = CgroupInfo::default();
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, &c) in parts.iter().enumerate() {
        let parent = i.checked_sub(1).map(|p| parts[p]);
        if let Some((uid, qos, driver)) = pod(c, &parts[..i]) {
            info = CgroupInfo {
                pod_uid: uid,
                qos: Some(qos),
                driver: Some(driver),
                ..CgroupInfo::default()
            };
        } else if let Some((runtime, id, name, driver)) =
            container(c, parent, !info.pod_uid.is_empty() && !info.is_container())
        {
            info.runtime = runtime;
            info.container_id = id;
            info.container_name = name;
            info.driver = Some(driver);
        }
    }
    if info.pod_uid.is_empty() && !info.is_container() {
        let last = |suffixes: &[&str]| {
            parts
                .iter()
                .rev()
                .find(|c| suffixes.iter().any(|s| c.len() > s.len() && c.ends_with(s)))
                .map_or(String::new(), |c| c.to_string())
        };
        info.systemd_unit = last(&[".service", ".scope"]);
        info.slice = last(&[".slice"]);
    }
    info
}

/// A pod component: `kubepods-[QOS-]pod<uid_>.slice` (systemd) or `pod<uid>` under `kubepods`.
fn pod(c: &str, ancestors: &[&str]) -> Option<(String, QosClass, Driver)> {
    if let Some(stem) = c.strip_suffix(".slice") {
        // `kubelet-kubepods-…` under kind: the pod is what follows the last `kubepods-`.
        let at = stem.rfind("kubepods-")?;
        let rest = &stem[at + "kubepods-".len()..];
        let (qos, rest) = match rest.split_once('-') {
            Some((q, r)) if QosClass::by_name(q).is_some() => (QosClass::by_name(q)?, r),
            _ => (QosClass::Guaranteed, rest),
        };
        let uid = pod_uid(rest.strip_prefix("pod")?)?;
        return Some((uid, qos, Driver::Systemd));
    }
    let uid = pod_uid(c.strip_prefix("pod")?)?;
    let qos = match ancestors {
        [.., k] if k.starts_with("kubepods") => QosClass::Guaranteed,
        [.., k, q] if k.starts_with("kubepods") => QosClass::by_name(q)?,
        _ => return None,
    };
    Some((uid, qos, Driver::Cgroupfs))
}

/// A pod UID with dashes, from one with dashes or (systemd) underscores, or a static pod's
/// 32-hex config hash as it is.
fn pod_uid(s: &str) -> Option<String> {
    let uid: String = s.chars().map(|c| if c == '_' { '-' } else { c }).collect();
    let b = uid.as_bytes();
    let dashed = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    let hash = b.len() == 32 && b.iter().all(u8::is_ascii_hexdigit);
    (dashed || hash).then(|| uid.to_ascii_lowercase())
}

type Container = (Option<Runtime>, String, String, Driver);

/// The systemd scope prefixes of containers by id; the first of a runtime is the one
/// [`path_of`] writes.
const SCOPES: &[(&str, Runtime)] = &[
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    ("nerdctl-", Runtime::Containerd),
    ("crio-", Runtime::CriO),
    ("libpod-", Runtime::Podman),
];

/// A cgroup path that [`parse`]s back to `info`'s runtime, container id, pod UID and QoS
/// class, with `name` for a container known by name (lxc, nspawn): what a redacted trace
/// keeps of a container's path. `None` for a path of no container or pod.
pub fn path_of(info: &CgroupInfo, name: &str) -> Option<String> {
    let id = &info.container_id;
    let leaf = match info.runtime {
        Some(Runtime::Lxc) => return Some(format!("/lxc.payload.{name}")),
        Some(Runtime::SystemdNspawn) => {
            return Some(format!("/machine.slice/systemd-nspawn@{name}.service"));
        }
        Some(rt) => SCOPES
            .iter()
            .find(|s| s.1 == rt)
            .map(|s| format!("{}{id}.scope", s.0))?,
        None if id.is_empty() => String::new(),
        None => id.clone(),
    };
    let pod = match (info.qos, info.pod_uid.is_empty()) {
        (_, true) => None,
        (Some(QosClass::Guaranteed) | None, false) => Some(String::new()),
        (Some(q), false) => Some(format!("{}/", q.name())),
    };
    match (pod, info.runtime) {
        (None, _) if id.is_empty() => None,
        (None, _) => Some(format!("/system.slice/{leaf}")),
        // The cgroupfs layout: a bare id under the pod names no runtime.
        (Some(q), None) => Some(format!("/kubepods/{q}pod{}/{leaf}", info.pod_uid)),
        (Some(q), Some(_)) => {
            let q = q.trim_end_matches('/');
            let (qos_slice, prefix) = if q.is_empty() {
                (String::new(), "kubepods-".to_string())
            } else {
                (format!("kubepods-{q}.slice/"), format!("kubepods-{q}-"))
            };
            let uid = info.pod_uid.replace('-', "_");
            Some(format!(
                "/kubepods.slice/{qos_slice}{prefix}pod{uid}.slice/{leaf}"
            ))
        }
    }
}

/// A container component. `in_pod`: a bare 64-hex directory under a pod is a container
/// whose runtime the cgroupfs driver does not name.
fn container(c: &str, parent: Option<&str>, in_pod: bool) -> Option<Container> {
    let by_id = |rt: Option<Runtime>, id: &str, d: Driver| {
        is_container_id(id).then(|| (rt, id.to_string(), String::new(), d))
    };
    let by_name = |rt: Runtime, name: &str, d: Driver| {
        (!name.is_empty()).then(|| (Some(rt), String::new(), unescape(name), d))
    };
    if let Some(stem) = c.strip_suffix(".scope") {
        let (prefix, rt) = SCOPES.iter().find(|(p, _)| stem.starts_with(p))?;
        return by_id(Some(*rt), &stem[prefix.len()..], Driver::Systemd);
    }
    if let Some(name) = c
        .strip_prefix("systemd-nspawn@")
        .and_then(|s| s.strip_suffix(".service"))
    {
        return by_name(Runtime::SystemdNspawn, name, Driver::Systemd);
    }
    if let Some(name) = c.strip_prefix("lxc.payload.") {
        return by_name(Runtime::Lxc, name, Driver::Cgroupfs);
    }
    match parent {
        Some("docker") => return by_id(Some(Runtime::Docker), c, Driver::Cgroupfs),
        Some("lxc") if !c.starts_with("lxc.") => return by_name(Runtime::Lxc, c, Driver::Cgroupfs),
        _ => {}
    }
    if let Some(id) = c.strip_prefix("libpod-") {
        return by_id(Some(Runtime::Podman), id, Driver::Cgroupfs);
    }
    if let Some(id) = c.strip_prefix("crio-") {
        return by_id(Some(Runtime::CriO), id, Driver::Cgroupfs);
    }
    if in_pod {
        return by_id(None, c, Driver::Cgroupfs);
    }
    None
}

/// Exactly 64 lowercase hex digits, as every runtime here writes its ids.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// systemd's `\xNN` escapes in a unit name (`my\x2dbox` is `my-box`); anything else as is.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (
            b[i],
            b.get(i + 1),
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'\\', Some(b'x'), Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1b2c9d8a7f6e5d4c3b2a19087f6e5d4c3b2a19087f6e5d4c3b2a19087f6e";
    const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    const UID_: &str = "1b4e28ba_2fa1_11d2_883f_0016d3cca427";

    fn ctr(rt: Option<Runtime>, d: Driver) -> CgroupInfo {
        CgroupInfo {
            runtime: rt,
            container_id: ID.into(),
            driver: Some(d),
            ..Default::default()
        }
    }

    fn pod_ctr(rt: Option<Runtime>, qos: QosClass, d: Driver) -> CgroupInfo {
        CgroupInfo {
            pod_uid: UID.into(),
            qos: Some(qos),
            ..ctr(rt, d)
        }
    }

    #[test]
    fn kubernetes_systemd_driver() {
        use QosClass::*;
        for (rt, prefix) in [
            (Runtime::Containerd, "cri-containerd-"),
            (Runtime::CriO, "crio-"),
            (Runtime::Docker, "docker-"),
        ] {
            for (qos, slices) in [
                (Burstable, "kubepods-burstable.slice/kubepods-burstable-pod"),
                (
                    BestEffort,
                    "kubepods-besteffort.slice/kubepods-besteffort-pod",
                ),
                (Guaranteed, "kubepods-pod"),
            ] {
                let p = format!("/kubepods.slice/{slices}{UID_}.slice/{prefix}{ID}.scope");
                assert_eq!(parse(&p), pod_ctr(Some(rt), qos, Driver::Systemd), "{p}");
            }
        }
    }

    #[test]
    fn kubernetes_cgroupfs_driver() {
        use QosClass::*;
        for (qos, dir) in [
            (Burstable, "burstable/"),
            (BestEffort, "besteffort/"),
            (Guaranteed, ""),
        ] {
            let p = format!("/kubepods/{dir}pod{UID}/{ID}");
            assert_eq!(parse(&p), pod_ctr(None, qos, Driver::Cgroupfs), "{p}");
            let p = format!("/kubepods/{dir}pod{UID}/crio-{ID}");
            assert_eq!(
                parse(&p),
                pod_ctr(Some(Runtime::CriO), qos, Driver::Cgroupfs)
            );
        }
    }

    #[test]
    fn a_pod_without_its_container_and_a_pod_inside_a_node_container() {
        let want = CgroupInfo {
            pod_uid: UID.into(),
            qos: Some(QosClass::Burstable),
            driver: Some(Driver::Systemd),
            ..Default::default()
        };
        let p =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
        assert_eq!(parse(&p), want);
        // kind: the node is a Docker container, the pod's container is containerd's.
        let node = "a".repeat(64);
        let p = format!(
            "/docker/{node}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            parse(&p),
            pod_ctr(
                Some(Runtime::Containerd),
                QosClass::Burstable,
                Driver::Systemd
            )
        );
        // The node container alone.
        let p = format!("/docker/{node}/kubelet.slice");
        assert_eq!(parse(&p).container_id, node);
        // A static pod's UID is its config hash.
        let hash = "6c5cdaea1b8e3c1b4b9bd2c8a6a2e1c4";
        assert_eq!(parse(&format!("/kubepods/pod{hash}/{ID}")).pod_uid, hash);
    }

    #[test]
    fn plain_runtimes() {
        let d = Some(Runtime::Docker);
        assert_eq!(parse(&format!("/docker/{ID}")), ctr(d, Driver::Cgroupfs));
        assert_eq!(
            parse(&format!("/system.slice/docker-{ID}.scope")),
            ctr(d, Driver::Systemd)
        );
        let p = Some(Runtime::Podman);
        assert_eq!(
            parse(&format!("/machine.slice/libpod-{ID}.scope")),
            ctr(p, Driver::Systemd)
        );
        // Rootless podman, with the container's own init below its scope.
        let path = format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
        );
        assert_eq!(parse(&path), ctr(p, Driver::Systemd));
        assert_eq!(
            parse(&format!("/libpod_parent/libpod-{ID}")),
            ctr(p, Driver::Cgroupfs)
        );
        assert_eq!(
            parse(&format!("/system.slice/crio-{ID}.scope")),
            ctr(Some(Runtime::CriO), Driver::Systemd)
        );
        let c = Some(Runtime::Containerd);
        assert_eq!(
            parse(&format!("/system.slice/nerdctl-{ID}.scope")),
            ctr(c, Driver::Systemd)
        );
    }

    #[test]
    fn containers_by_name() {
        let named = |rt, name: &str, d| CgroupInfo {
            runtime: Some(rt),
            container_name: name.into(),
            driver: Some(d),
            ..Default::default()
        };
        assert_eq!(
            parse("/lxc.payload.web1"),
            named(Runtime::Lxc, "web1", Driver::Cgroupfs)
        );
        assert_eq!(
            parse("/lxc/web1/init.scope"),
            named(Runtime::Lxc, "web1", Driver::Cgroupfs)
        );
        let nspawn = named(Runtime::SystemdNspawn, "my-box", Driver::Systemd);
        assert_eq!(
            parse(r"/machine.slice/systemd-nspawn@my\x2dbox.service/payload"),
            nspawn
        );
    }

    #[test]
    fn systemd_units_and_slices() {
        let unit = |u: &str, s: &str| CgroupInfo {
            systemd_unit: u.into(),
            slice: s.into(),
            ..Default::default()
        };
        assert_eq!(
            parse("/system.slice/nginx.service"),
            unit("nginx.service", "system.slice")
        );
        assert_eq!(
            parse("/user.slice/user-1000.slice/session-3.scope"),
            unit("session-3.scope", "user-1000.slice")
        );
        assert_eq!(
            parse("/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.scope"),
            unit("app-foo.scope", "app.slice")
        );
        assert_eq!(parse("/user.slice"), unit("", "user.slice"));
        assert_eq!(parse("/init.scope"), unit("init.scope", ""));
        // The runtime's own daemon is a unit, not a container.
        assert_eq!(
            parse("/system.slice/containerd.service"),
            unit("containerd.service", "system.slice")
        );
    }

    #[test]
    fn garbage_attributes_nothing() {
        let none = CgroupInfo::default();
        let short = &ID[..63];
        for p in [
            "",
            "/",
            "//",
            "/docker",
            &format!("/docker/{short}"),
            &format!("/docker/{}", ID.to_uppercase()),
            &format!("/docker/{ID}x"),
            "/kubepods/pod-envoy",
            "/kubepods/burstable/podnot-a-uid",
            &format!("/kubepods/burstable/pod{}", &UID[..35]),
            &format!("/notkube/pod{UID}"),
            &format!("/kubepods/weird/pod{UID}"),
            &format!("/{ID}"),
            "/lxc.payload.",
            "/lxc/lxc.monitor.x",
            "/crio-conmon-1.scope",
            &format!("/machine.slice/libpod-conmon-{ID}.scope"),
            "\\x\\x4\\xZZ/é/ü\u{0}",
            ".scope/.slice/.service",
        ] {
            let got = parse(p);
            assert_eq!(
                (
                    got.runtime,
                    &got.container_id,
                    &got.container_name,
                    &got.pod_uid,
                    got.qos,
                    got.driver
                ),
                (
                    none.runtime,
                    &none.container_id,
                    &none.container_name,
                    &none.pod_uid,
                    none.qos,
                    none.driver
                ),
                "{p}"
            );
        }
        // The conmon scopes are units of their own, not the container.
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")).systemd_unit,
            format!("libpod-conmon-{ID}.scope")
        );
    }

    #[test]
    fn any_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = "/-_.@\\xpodkube0123456789abcdefscopesliceé";
        let chars: Vec<char> = alphabet.chars().collect();
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(x % 90) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(chars[(x % chars.len() as u64) as usize]);
            }
            let _ = parse(&s);
        }
        assert_eq!(unescape(r"a\x2"), r"a\x2");
        assert_eq!(unescape(r"\xé1"), r"\xé1");
    }

    #[test]
    fn a_canonical_path_parses_back_to_the_same_attribution() {
        let node = "b".repeat(64);
        let mut paths = vec![
            format!("/docker/{ID}"),
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/kubepods/besteffort/pod{UID}/{ID}"),
            format!("/kubepods/pod{UID}/crio-{ID}"),
            format!("/kubepods/burstable/pod{UID}"),
            format!(
                "/docker/{node}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice/docker-{ID}.scope"
            ),
            "/lxc.payload.web1".into(),
            r"/machine.slice/systemd-nspawn@my\x2dbox.service".into(),
        ];
        for q in ["burstable", "besteffort"] {
            paths.push(format!(
                "/kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ));
        }
        let key = |c: &CgroupInfo| (c.runtime, c.container_id.clone(), c.pod_uid.clone(), c.qos);
        for p in &paths {
            let c = parse(p);
            let back = parse(&path_of(&c, "NAME").unwrap());
            assert_eq!(key(&back), key(&c), "{p}");
            let named = c.is_container() && c.container_id.is_empty();
            assert_eq!(back.container_name, if named { "NAME" } else { "" }, "{p}");
        }
        assert_eq!(path_of(&parse("/system.slice/nginx.service"), "x"), None);
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id(ID), &ID[..12]);
        assert_eq!(short_id("abc"), "abc");
    }
}
