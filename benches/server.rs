//! `pushdex serve` against the embedded library, in one run on one machine
//! (must-show 5 of the server issue). Not a criterion bench: each part is
//! one long measurement whose figure is a ratio within the run.
//!
//! ```text
//! cargo bench --bench server                 # all four parts, 1M documents
//! cargo bench --bench server -- bulk single  # some parts
//! PUSHDEX_BENCH_DOCS=100000 cargo bench --bench server
//! ```
//!
//! * `bulk`: documents through `POST /v1/indexes/{name}/documents`, batches
//!   of 1000, 4 connections, `wait=synced`, against `add_all` + `sync` of
//!   the same batches in this process.
//! * `single`: one document per request with `wait=synced` from 64
//!   connections: acknowledged documents/s, p50 and p99 latency.
//! * `search`: one-word searches over HTTP (one connection, one at a time)
//!   against `Index::search` on the same index.
//! * `memory`: 20 indexes written at once (20 connections, batches of
//!   1000, `wait=pushed`, a sync at the end): the server's peak RSS.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pushdex::{Document, Index, Query};
use serde_json::{json, Value};

const TOKEN: &str = "bench-token-0123456789abcdef";

const WORDS: [&str; 64] = [
    "report",
    "quarterly",
    "annual",
    "budget",
    "project",
    "meeting",
    "minutes",
    "draft",
    "final",
    "review",
    "contract",
    "invoice",
    "customer",
    "supplier",
    "design",
    "test",
    "plan",
    "release",
    "summary",
    "notes",
    "sales",
    "market",
    "north",
    "south",
    "east",
    "west",
    "team",
    "office",
    "policy",
    "security",
    "network",
    "server",
    "storage",
    "backup",
    "archive",
    "index",
    "search",
    "engine",
    "document",
    "folder",
    "share",
    "legal",
    "finance",
    "human",
    "resources",
    "training",
    "safety",
    "quality",
    "audit",
    "risk",
    "strategy",
    "product",
    "roadmap",
    "feature",
    "issue",
    "support",
    "ticket",
    "email",
    "letter",
    "memo",
    "agenda",
    "schedule",
    "status",
    "update",
];

fn uri(i: usize) -> String {
    format!("file:///share/projects/p{:03}/reports/r{:03}/doc{:07}.txt", i / 100_000, (i / 10) % 1000, i)
}

/// A document of ~250 bytes: a file-share URI, a stamp, two metas and a
/// dozen words of text.
fn document(i: usize) -> Document {
    let mut x = i as u64 * 0x9E37_79B9_7F4A_7C15 + 1;
    let mut words = Vec::with_capacity(12);
    for _ in 0..12 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Skewed: low word numbers far more often.
        let r = (x % 4096) as usize;
        words.push(WORDS[(r * r / 4096) * WORDS.len() / 4096]);
    }
    Document::new(uri(i))
        .with_stamp(format!("2024-03-15T10:{:02}:{:02}Z", (i / 60) % 60, i % 60))
        .with_meta("author", ["ann", "bob", "cid", "dan"][i % 4])
        .with_meta("type", "text/plain")
        .with_text("body", words.join(" "))
}

fn document_json(doc: &Document) -> Value {
    let metas: serde_json::Map<String, Value> = doc.all_metas().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let text: serde_json::Map<String, Value> = doc
        .parts()
        .filter(|(_, is_text, _)| *is_text)
        .map(|(name, _, bytes)| (name.to_string(), json!(String::from_utf8_lossy(bytes))))
        .collect();
    json!({ "uri": doc.uri(), "stamp": doc.stamp(), "metas": metas, "text": text })
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushdex"))
            .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN, "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the pushdex binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().rsplit(' ').next().unwrap().to_string();
        Server { child, base }
    }

    /// The peak resident set of the server process, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().max_idle_connections_per_host(1).build()
}

fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: &str) -> Value {
    match agent
        .post(url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .set("Content-Type", content_type)
        .send_string(body)
    {
        Ok(response) => response.into_json().unwrap(),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// Runs `threads` workers until `jobs` are taken; each calls `work(agent,
/// job)`. Returns the elapsed time.
fn parallel(threads: usize, jobs: usize, work: impl Fn(&ureq::Agent, usize) + Sync) -> Duration {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let agent = agent();
                loop {
                    let job = next.fetch_add(1, Ordering::Relaxed);
                    if job >= jobs {
                        break;
                    }
                    work(&agent, job);
                }
            });
        }
    });
    started.elapsed()
}

fn bulk(n: usize) {
    let batches = n / 1000;
    let docs: Vec<Vec<Document>> = (0..batches).map(|b| (b * 1000..(b + 1) * 1000).map(document).collect()).collect();
    let bodies: Vec<String> =
        docs.iter().map(|batch| Value::Array(batch.iter().map(document_json).collect()).to_string()).collect();
    let bytes: usize = bodies.iter().map(String::len).sum();

    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let started = Instant::now();
    for batch in docs {
        index.add_all(batch).unwrap();
        index.sync().unwrap();
    }
    let embedded = started.elapsed();
    index.close().unwrap();
    drop(dir);

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let url = format!("{}/v1/indexes/bulk/documents?wait=synced", server.base);
    let http = parallel(4, batches, |agent, b| {
        let reply = post(agent, &url, "application/json", &bodies[b]);
        assert_eq!(reply["state"], "Synced", "{reply}");
    });
    let rss = server.peak_rss_mib();
    let (e, h) = (n as f64 / embedded.as_secs_f64(), n as f64 / http.as_secs_f64());
    println!("bulk: {n} documents ({:.0} MiB of JSON), batches of 1000, wait=synced", bytes as f64 / 1048576.0);
    println!("  embedded add_all + sync:          {e:>10.0} docs/s ({embedded:.2?})");
    println!("  HTTP, 4 connections:              {h:>10.0} docs/s ({http:.2?}), server peak RSS {rss:.0} MiB");
    println!("  ratio HTTP / embedded:            {:>10.2}   (goal >= 0.6)", h / e);
}

fn single(n: usize) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let url = format!("{}/v1/indexes/single/documents?wait=synced", server.base);
    let bodies: Vec<String> = (0..n).map(|i| Value::Array(vec![document_json(&document(i))]).to_string()).collect();
    let latencies = Mutex::new(Vec::with_capacity(n));
    let took = parallel(64, n, |agent, i| {
        let started = Instant::now();
        let reply = post(agent, &url, "application/json", &bodies[i]);
        let took = started.elapsed();
        assert_eq!(reply["state"], "Synced", "{reply}");
        latencies.lock().unwrap().push(took);
    });
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!("single: {n} one-document requests, wait=synced, 64 connections");
    println!(
        "  {:>10.0} acknowledged docs/s   p50 {:.2?}   p99 {:.2?}   max {:.2?}   (goal >= 8000/s, p99 < 50 ms)",
        n as f64 / took.as_secs_f64(),
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );
}

fn search(n: usize) {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("indexes/search");
    {
        let index = Index::open(&path).unwrap();
        for b in 0..n / 1000 {
            index.add_all((b * 1000..(b + 1) * 1000).map(document)).unwrap();
        }
        index.refresh().unwrap();
        index.compact().unwrap();
        index.close().unwrap();
    }
    let rounds = 20;
    let queries: Vec<(&str, Query)> = WORDS.iter().map(|w| (*w, Query::parse(w).unwrap())).collect();
    let index = Index::open(&path).unwrap();
    let mut hits = 0;
    let started = Instant::now();
    for _ in 0..rounds {
        for (_, q) in &queries {
            hits += index.search(q, 10).unwrap().len();
        }
    }
    let embedded = started.elapsed();
    index.close().unwrap();

    let server = Server::start(data.path());
    let agent = agent();
    let mut http_hits = 0;
    let call = |word: &str| -> Value {
        let url = format!("{}/v1/indexes/search/search?q={word}&limit=10", server.base);
        agent.get(&url).set("Authorization", &format!("Bearer {TOKEN}")).call().unwrap().into_json().unwrap()
    };
    call("report");
    let started = Instant::now();
    for _ in 0..rounds {
        for (word, _) in &queries {
            http_hits += call(word)["hits"].as_array().unwrap().len();
        }
    }
    let http = started.elapsed();
    assert_eq!(hits, http_hits);
    let count = (rounds * queries.len()) as f64;
    let (e, h) = (embedded.as_secs_f64() / count, http.as_secs_f64() / count);
    println!("search: one-word top-10 over {n} documents, {} queries, one at a time", count as usize);
    println!("  embedded Index::search:           {:>8.1} µs/query", e * 1e6);
    println!("  HTTP GET .../search (keep-alive):  {:>8.1} µs/query", h * 1e6);
    println!("  ratio HTTP / embedded:            {:>8.2}   (goal <= 1.3)", h / e);
}

fn memory(n: usize) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let indexes = 20;
    let per_index = n / indexes / 1000;
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..per_index)
            .map(|b| {
                Value::Array((b * 1000..(b + 1) * 1000).map(|i| document_json(&document(i))).collect()).to_string()
            })
            .collect(),
    );
    let base = server.base.clone();
    let took = parallel(indexes, indexes, |agent, i| {
        for body in bodies.iter() {
            post(agent, &format!("{base}/v1/indexes/m{i:02}/documents"), "application/json", body);
        }
        post(agent, &format!("{base}/v1/indexes/m{i:02}/sync"), "application/json", "{}");
    });
    println!("memory: 20 indexes written at once, {} documents each ({took:.2?})", per_index * 1000);
    println!("  server peak RSS:                  {:>8.0} MiB   (goal <= 512)", server.peak_rss_mib());
}

fn main() {
    let n: usize = std::env::var("PUSHDEX_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    if wanted("bulk") {
        bulk(n);
    }
    if wanted("single") {
        single((n / 50).clamp(6400, 20_000));
    }
    if wanted("search") {
        search(n.max(10_000));
    }
    if wanted("memory") {
        memory(n);
    }
}
