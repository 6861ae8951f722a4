//! Container names at capture time: Docker's Engine API on its unix socket, asked once per new
//! container id on a thread of its own, so the drain never waits for it. The answers become the
//! file's container table (FORMAT.md 5.1).
//!
//! The client is a few lines of HTTP/1.0 (one request per connection, the body ends where the
//! connection does), which is all `GET /containers/ID/json` needs; serde_json reads the answer.
//! containerd's CRI is not asked: it is gRPC over protobuf, a client stack much larger than
//! what it adds here (Kubernetes on Docker is labelled the same way; see the closing note).

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use format::ContainerInfo;
use gsot_decode::cgroup::{self, Runtime};

/// Where Docker listens by default.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Longest a request may take before Docker counts as not answering.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Largest answer read: an inspect of a container is a few KiB.
const MAX_ANSWER: u64 = 4 << 20;

/// Asks a runtime about the containers the capture meets.
pub struct ContainerNames {
    asked: HashSet<String>,
    tx: Option<Sender<String>>,
    /// (id, what Docker said of it: `None` for a container it did not know).
    rx: Receiver<(String, Option<ContainerInfo>)>,
    /// Ids answered so far.
    answered: usize,
    /// Every answer, for the next file of a rotated capture.
    known: HashMap<String, ContainerInfo>,
    /// Ids whose answer the current file holds.
    written: HashSet<String>,
}

impl ContainerNames {
    /// A client of Docker at `socket`, or `None` when nothing listens there.
    pub fn docker(socket: &Path) -> Option<ContainerNames> {
        if !socket.exists() {
            return None;
        }
        let (tx, ids) = mpsc::channel::<String>();
        let (answers, rx) = mpsc::channel();
        let socket = socket.to_path_buf();
        std::thread::Builder::new()
            .name("gsot-docker".into())
            .spawn(move || ask_loop(&socket, ids, answers))
            .ok()?;
        Some(ContainerNames {
            asked: HashSet::new(),
            tx: Some(tx),
            rx,
            answered: 0,
            known: HashMap::new(),
            written: HashSet::new(),
        })
    }

    /// Asks about the container a process's cgroup path names, once per id; returns the
    /// answer at once when an earlier file of the capture already had it.
    pub fn request(&mut self, cgroup_path: &str) -> Option<ContainerInfo> {
        let c = cgroup::parse(cgroup_path);
        // Docker's own ids, and a cgroupfs pod's bare ids (dockershim names those too).
        let docker = matches!(c.runtime, Some(Runtime::Docker) | None);
        if c.container_id.is_empty() || !docker {
            return None;
        }
        if let Some(k) = self.known.get(&c.container_id) {
            return self
                .written
                .insert(c.container_id.clone())
                .then(|| k.clone());
        }
        if self.asked.insert(c.container_id.clone())
            && let Some(tx) = &self.tx
            && tx.send(c.container_id).is_err()
        {
            self.tx = None;
        }
        None
    }

    /// The answers that have arrived; never waits.
    pub fn ready(&mut self) -> Vec<ContainerInfo> {
        let v: Vec<_> = self.rx.try_iter().collect();
        self.keep(v)
    }

    /// A new file of a rotated capture: it names its containers again.
    pub fn new_file(&mut self) {
        self.written.clear();
    }

    /// At the end of a capture: the answers still to come, waiting at most `limit` for them.
    pub fn finish(&mut self, limit: Duration) -> Vec<ContainerInfo> {
        self.tx = None;
        let end = Instant::now() + limit;
        let mut v: Vec<_> = self.rx.try_iter().collect();
        while self.asked.len() > self.answered + v.len()
            && let Some(left) = end.checked_duration_since(Instant::now())
        {
            match self.rx.recv_timeout(left) {
                Ok(c) => v.push(c),
                Err(_) => break,
            }
        }
        self.keep(v)
    }

    fn keep(&mut self, v: Vec<(String, Option<ContainerInfo>)>) -> Vec<ContainerInfo> {
        self.answered += v.len();
        let v: Vec<ContainerInfo> = v.into_iter().filter_map(|a| a.1).collect();
        for c in &v {
            self.known.insert(c.id.clone(), c.clone());
            self.written.insert(c.id.clone());
        }
        v
    }
}

/// The thread: one request per id; a runtime that fails to answer is warned about once and
/// not asked again. Unknown ids (404) are skipped: a container gone before it was asked.
fn ask_loop(
    socket: &Path,
    ids: Receiver<String>,
    answers: Sender<(String, Option<ContainerInfo>)>,
) {
    for id in ids {
        match inspect(socket, &id) {
            Ok(c) => {
                if answers.send((id, c)).is_err() {
                    return;
                }
            }
            Err(e) => {
                eprintln!(
                    "recorder: warning: Docker at {} did not answer ({e}); containers keep their ids but get no names",
                    socket.display()
                );
                // Dropping the receiver makes every later request a no-op.
                return;
            }
        }
    }
}

/// `GET /containers/ID/json`: `Ok(None)` when Docker knows no such container.
fn inspect(socket: &Path, id: &str) -> Result<Option<ContainerInfo>, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /containers/{id}/json HTTP/1.0\r\nHost: docker\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    parse_answer(id, &answer)
}

/// An HTTP/1.0 answer to an inspect request.
fn parse_answer(id: &str, answer: &[u8]) -> Result<Option<ContainerInfo>, String> {
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("an answer without a header end")?;
    let head = String::from_utf8_lossy(&answer[..at]);
    let status = head.split(' ').nth(1).unwrap_or("");
    match status {
        "200" => {}
        "404" => return Ok(None),
        s => return Err(format!("HTTP status {s:?}")),
    }
    let v: serde_json::Value = serde_json::from_slice(&answer[at + 4..])
        .map_err(|e| format!("the container's JSON: {e}"))?;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let label = |k: &str| s(&v["Config"]["Labels"][k]);
    Ok(Some(ContainerInfo {
        id: id.to_string(),
        runtime: "docker".into(),
        name: s(&v["Name"]).trim_start_matches('/').to_string(),
        image: s(&v["Config"]["Image"]),
        pod_name: label("io.kubernetes.pod.name"),
        pod_namespace: label("io.kubernetes.pod.namespace"),
        k8s_container: label("io.kubernetes.container.name"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_for_names_and_labels() {
        let body = r#"{"Id":"abc","Name":"/web","Config":{"Image":"nginx:1.27","Labels":{"io.kubernetes.pod.name":"web-7f9c","io.kubernetes.pod.namespace":"default","io.kubernetes.container.name":"nginx"}}}"#;
        let ok = format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}");
        let c = parse_answer("abc", ok.as_bytes()).unwrap().unwrap();
        assert_eq!(
            (c.name.as_str(), c.image.as_str(), c.pod_name.as_str()),
            ("web", "nginx:1.27", "web-7f9c")
        );
        assert_eq!(
            (c.pod_namespace.as_str(), c.k8s_container.as_str()),
            ("default", "nginx")
        );
        let plain =
            "HTTP/1.0 200 OK\r\n\r\n{\"Name\":\"/x\",\"Config\":{\"Image\":\"i\",\"Labels\":null}}";
        assert_eq!(
            parse_answer("abc", plain.as_bytes())
                .unwrap()
                .unwrap()
                .pod_name,
            ""
        );
        assert_eq!(
            parse_answer("abc", b"HTTP/1.0 404 Not Found\r\n\r\n{}").unwrap(),
            None
        );
        assert!(
            parse_answer("abc", b"HTTP/1.0 500 Oops\r\n\r\n")
                .unwrap_err()
                .contains("500")
        );
        assert!(parse_answer("abc", b"garbage").is_err());
        assert!(parse_answer("abc", b"HTTP/1.0 200 OK\r\n\r\n{not json").is_err());
    }
}
