//! A real Docker container running a static workload binary: every event carries the id that
//! `docker run --cidfile` wrote, the runtime docker, and the name and image Docker gave.
//! Needs dockerd (scripts/setup.sh starts it in CI); skipped, saying so, where there is none
//! unless GSOT_REQUIRE_DOCKER=1. The test removes the container and image it made.

use std::path::Path;
use std::process::Command;

use gsot_decode::cgroup::{self, Runtime};

use crate::common::*;

const WORKLOAD: &str = r#"
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0), v; socklen_t l;
    for (int i = 0; i < 3; i++) { l = sizeof v; getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &l); }
    /* Alive past a drain: Docker removes the container's cgroup when it exits, and then only
       /proc (gone too) could name it. A process that exits in a cgroup that stays is named
       from its cgroup id (cgroups.rs). */
    usleep(500000);
    return 0;
}
"#;

fn docker(args: &[&str]) -> (bool, String) {
    let o = Command::new("docker").args(args).output().expect("docker");
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

/// Removes what the test made, even when it fails.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.container]);
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

/// An image of one static binary, /gsotdock, imported from a tarball (no registry here).
fn build_image(dir: &Path, image: &str) {
    let src = dir.join("w.c");
    std::fs::write(&src, WORKLOAD).unwrap();
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let st = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(root.join("gsotdock"))
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "cc -static (libc6-dev's libc.a)");
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let (ok, out) = docker(&["import", tar.to_str().unwrap(), image]);
    assert!(ok, "docker import: {out}");
}

#[test]
fn a_docker_container_is_named_in_every_event() {
    let Some(_kernel) = live_kernel("a_docker_container_is_named_in_every_event") else {
        return;
    };
    if !docker(&["info"]).0 {
        assert!(
            std::env::var_os("GSOT_REQUIRE_DOCKER").is_none_or(|v| v != "1"),
            "no Docker daemon, and GSOT_REQUIRE_DOCKER=1 forbids skipping"
        );
        eprintln!("skipping a_docker_container_is_named_in_every_event: no Docker daemon");
        return;
    }
    let dir = temp_dir("docker");
    let tag = std::process::id();
    let (name, image) = (format!("gsot-test-{tag}"), format!("gsot-test-img:{tag}"));
    let _cleanup = Cleanup {
        container: name.clone(),
        image: image.clone(),
    };
    build_image(&dir, &image);
    let out = dir.join("t.gsot");
    let rec = start_recorder(&out, &["--comm", "gsotdock"]);
    let cidfile = dir.join("cid");
    let (ok, log) = docker(&[
        "run",
        "--network",
        "none",
        "--cidfile",
        cidfile.to_str().unwrap(),
        "--name",
        &name,
        &image,
        "/gsotdock",
    ]);
    assert!(ok, "docker run: {log}");
    let id = std::fs::read_to_string(&cidfile)
        .unwrap()
        .trim()
        .to_string();
    let (reader, events, log) = stop_and_read(rec);
    assert_eq!(events.len(), 3, "the workload's three calls\n{log}");
    let analyze_view = reader.containers();
    for e in &events {
        let p = reader
            .processes()
            .iter()
            .find(|p| p.pid == e.tgid)
            .expect("a process table entry");
        let c = cgroup::parse(&p.cgroup);
        assert_eq!(
            (c.runtime, c.container_id.as_str()),
            (Some(Runtime::Docker), id.as_str()),
            "{}",
            p.cgroup
        );
    }
    assert_eq!(analyze_view.len(), 1, "{analyze_view:?}\n{log}");
    let n = &analyze_view[0];
    assert_eq!(
        (
            n.id.as_str(),
            n.runtime.as_str(),
            n.name.as_str(),
            n.image.as_str()
        ),
        (id.as_str(), "docker", name.as_str(), image.as_str())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
