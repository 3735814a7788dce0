//! The cluster tests' harness (`tests/cluster.rs`, and the cluster bench
//! through `#[path]`): one etcd and real `pushdex serve --cluster` nodes on
//! loopback ports, a request helper, bounded waits. etcd and moto are
//! installed when missing (apt-get, pip), never skipped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const TOKEN: &str = "cluster-token-0123456789abcdef";
/// The nodes' lease TTL in these tests (`--lease-ttl`), in seconds.
pub const TTL: u64 = 2;

pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Installs etcd when it is missing (CI's `.ci/run` and `scripts/provision`
/// install it first).
pub fn provision_etcd() {
    if runs("etcd", &["--version"]) {
        return;
    }
    eprintln!("cluster test: installing etcd-server (apt-get)");
    let apt = |args: &[&str]| {
        Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status().is_ok_and(|s| s.success())
    };
    assert!(apt(&["update", "-qq"]), "apt-get update failed (the cluster tests need etcd-server)");
    assert!(
        apt(&["install", "-y", "-qq", "etcd-server"]) && runs("etcd", &["--version"]),
        "apt-get install -y etcd-server failed (the cluster tests need it)"
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `ready` every 50 ms until it holds, at most `within`.
pub fn wait_until(within: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < within, "{what}: not after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn signal(pid: u32, name: &str) {
    assert!(runs("kill", &[&format!("-{name}"), &pid.to_string()]), "kill -{name} {pid}");
}

pub struct Etcd {
    _proc: Proc,
    pub url: String,
}

impl Etcd {
    pub fn start(dir: &Path) -> Etcd {
        provision_etcd();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        let proc = Proc(child);
        wait_until(Duration::from_secs(20), "etcd answers /health", || {
            ureq::get(&format!("{url}/health")).timeout(Duration::from_secs(1)).call().is_ok()
        });
        Etcd { _proc: proc, url }
    }
}

/// One `pushdex serve --cluster` node.
pub struct Node {
    pub id: String,
    pub proc: Option<Proc>,
    pub base: String,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("a running node").0.id()
    }
}

/// Starts `pushdex serve` on a free port with the test token, `data`,
/// `args` and `env`: the process and its base URL (the line it prints).
pub fn serve(data: &Path, args: &[&str], env: &[(String, String)]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushdex"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN, "--data"])
        .arg(data)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        // PUSHDEX_TEST_SERVER_LOG=1 shows the servers' request logs.
        .stderr(if std::env::var_os("PUSHDEX_TEST_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "pushdex serve printed {line:?}");
    (Proc(child), base)
}

/// etcd, a store and the nodes.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub etcd: Etcd,
    pub store: String,
    pub env: Vec<(String, String)>,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// etcd and `n` nodes sharing a store directory.
    pub fn start(n: usize) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("store").display().to_string();
        Cluster::with_store(root, store, Vec::new(), n)
    }

    pub fn with_store(root: tempfile::TempDir, store: String, env: Vec<(String, String)>, n: usize) -> Cluster {
        let etcd = Etcd::start(root.path());
        let mut cluster = Cluster { root, etcd, store, env, nodes: Vec::new() };
        for _ in 0..n {
            cluster.add_node();
        }
        cluster
    }

    pub fn spawn(&self, id: &str) -> (Proc, String) {
        let data: PathBuf = self.root.path().join(id);
        let ttl = TTL.to_string();
        let args = ["--cluster", &self.etcd.url, "--node-id", id, "--store", &self.store, "--lease-ttl", &ttl];
        serve(&data, &args, &self.env)
    }

    /// Starts a new node `n<k>`; its index in `nodes`.
    pub fn add_node(&mut self) -> usize {
        let id = format!("n{}", self.nodes.len() + 1);
        let (proc, base) = self.spawn(&id);
        self.nodes.push(Node { id, proc: Some(proc), base });
        self.nodes.len() - 1
    }

    pub fn kill(&mut self, k: usize) {
        drop(self.nodes[k].proc.take());
    }

    /// Starts node `k` again (same id, same data directory).
    pub fn restart(&mut self, k: usize) {
        let (proc, base) = self.spawn(&self.nodes[k].id.clone());
        self.nodes[k].proc = Some(proc);
        self.nodes[k].base = base;
    }

    pub fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&k| self.nodes[k].proc.is_some()).collect()
    }

    pub fn url(&self, k: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[k].base)
    }

    /// `GET /v1/cluster` through node `k`.
    pub fn status(&self, k: usize) -> Value {
        let (status, body) = call("GET", &self.url(k, "/v1/cluster"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The owner of index `name` and its epoch, as node `k` sees them.
    pub fn owner(&self, k: usize, name: &str) -> Option<(String, u64)> {
        let status = self.status(k);
        let index = status["indexes"].as_array().unwrap().iter().find(|i| i["name"] == name)?.clone();
        Some((index["owner"].as_str().unwrap().to_string(), index["epoch"].as_u64().unwrap()))
    }

    pub fn node_of(&self, id: &str) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }
}

/// A request with the token: status and JSON body (`Null` when not JSON);
/// status 0 when the node did not answer.
pub fn call(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    call_with(method, url, body, &[])
}

pub fn call_with(method: &str, url: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request =
        ureq::request(method, url).timeout(Duration::from_secs(30)).set("Authorization", &format!("Bearer {TOKEN}"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.set("Content-Type", "application/json").send_string(&body.to_string()),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(_) => return (0, Value::Null),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn doc(uri: &str, text: &str) -> Value {
    json!([{ "uri": uri, "text": { "body": text } }])
}

/// Installs moto's S3 server when missing (pip).
pub fn provision_moto() {
    if runs("moto_server", &["--help"]) {
        return;
    }
    eprintln!("cluster test: installing moto[server] (pip)");
    let installed = runs("python3", &["-m", "pip", "install", "--quiet", "moto[server]"]);
    assert!(installed && runs("moto_server", &["--help"]), "pip install moto[server] failed (the S3 test needs it)");
}
