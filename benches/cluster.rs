//! The cluster's cost and scale, with real processes on this machine (not
//! a timed test: figures for the README). `cargo bench --bench cluster
//! --features cluster` (etcd is installed when missing):
//!
//! * push throughput with `wait=synced` (one document a request, 8 clients)
//!   into one server alone, and into clusters of 1, 2 and 3 nodes with one
//!   index per node, the clients spread over every node (so most requests
//!   are forwarded);
//! * the cost of Synced: the same with one client, as latency;
//! * the time from SIGKILL of an owner to the first write acknowledged
//!   after it (`--lease-ttl 2`);
//! * searches a second (8 clients, one index of 5,000 documents) on one
//!   server alone, and on a cluster of 3 through the owner only and through
//!   every node (each answers from its replica of the published manifest).
//!
//! `PUSHDEX_BENCH_SECONDS` sets each run's length (default 5).

#[path = "../tests/common/cluster.rs"]
mod harness;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{call, doc, wait_until, Cluster, TTL};

/// `clients` threads push one document a request with `wait=synced` for
/// `seconds`, round-robin over `targets` (base URL, index): documents a
/// second and the median latency.
fn load(targets: &[(String, String)], clients: usize, seconds: f64) -> (f64, Duration) {
    run(targets, clients, seconds, |base, index, t, i| {
        let url = format!("{base}/v1/indexes/{index}/documents?wait=synced");
        call("POST", &url, Some(&doc(&format!("c{t}/{i}"), "a document pushed with wait=synced"))).0 == 200
    })
}

/// The words the search load asks for, in turn.
const WORDS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];

/// `clients` threads search for `seconds`, round-robin over `targets`:
/// searches a second and the median latency.
fn search_load(targets: &[(String, String)], clients: usize, seconds: f64) -> (f64, Duration) {
    run(targets, clients, seconds, |base, index, _, i| {
        let q = format!("{} {}", WORDS[i % 8], WORDS[(i / 8) % 8]);
        let url = format!("{base}/v1/indexes/{index}/search?q={}&limit=10", q.replace(' ', "+"));
        call("GET", &url, None).0 == 200
    })
}

/// `clients` threads call `request(base, index, thread, i)` for `seconds`,
/// round-robin over `targets`: successes a second and the median latency.
fn run(
    targets: &[(String, String)],
    clients: usize,
    seconds: f64,
    request: impl Fn(&str, &str, usize, usize) -> bool + Send + Sync + 'static,
) -> (f64, Duration) {
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let (stop, done, latencies, targets) = (stop.clone(), done.clone(), latencies.clone(), targets.to_vec());
            let request = request.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let (base, index) = &targets[(t + i) % targets.len()];
                    let started = Instant::now();
                    if request(base, index, t, i) {
                        mine.push(started.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or_default();
    (done.load(Ordering::Relaxed) as f64 / seconds, median)
}

/// Fills index `name` through `base` with 5,000 documents of two words of
/// [`WORDS`] each, and refreshes it.
fn fill(base: &str, name: &str) {
    call("PUT", &format!("{base}/v1/indexes/{name}"), None);
    for batch in 0..10 {
        let docs: Vec<serde_json::Value> = (0..500)
            .map(|j| {
                let i = batch * 500 + j;
                let text = format!("{} {} document {i}", WORDS[i % 8], WORDS[(i / 8) % 8]);
                serde_json::json!({ "uri": format!("s/{i}"), "text": { "body": text } })
            })
            .collect();
        let url = format!("{base}/v1/indexes/{name}/documents?wait=synced");
        assert_eq!(call("POST", &url, Some(&serde_json::Value::Array(docs))).0, 200);
    }
    assert_eq!(call("POST", &format!("{base}/v1/indexes/{name}/refresh"), None).0, 200);
}

fn main() {
    let seconds: f64 = std::env::var("PUSHDEX_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    println!("| setup | clients | docs/s (wait=synced) | median latency |");
    println!("|---|---:|---:|---:|");
    let row = |setup: &str, clients: usize, (rate, median): (f64, Duration)| {
        println!("| {setup} | {clients} | {rate:.0} | {:.2} ms |", median.as_secs_f64() * 1e3);
    };
    {
        let dir = tempfile::tempdir().unwrap();
        let (_server, base) = harness::serve(dir.path(), &[], &[]);
        call("PUT", &format!("{base}/v1/indexes/alone"), None);
        let targets = vec![(base, "alone".to_string())];
        row("one server, no cluster", 1, load(&targets, 1, seconds));
        row("one server, no cluster", 8, load(&targets, 8, seconds));
    }
    for nodes in 1..=3 {
        let cluster = Cluster::start(nodes);
        let mut targets = Vec::new();
        for k in 0..nodes {
            let name = format!("i{k}");
            call("PUT", &cluster.url(k, &format!("/v1/indexes/{name}")), None);
            for j in 0..nodes {
                targets.push((cluster.nodes[(k + j) % nodes].base.clone(), name.clone()));
            }
        }
        if nodes == 1 {
            row("cluster of 1 node", 1, load(&targets, 1, seconds));
        }
        row(&format!("cluster of {nodes} nodes, {nodes} indexes, through every node"), 8, load(&targets, 8, seconds));
    }
    println!();
    println!("| setup | clients | searches/s | median latency |");
    println!("|---|---:|---:|---:|");
    {
        let dir = tempfile::tempdir().unwrap();
        let (_server, base) = harness::serve(dir.path(), &[], &[]);
        fill(&base, "books");
        row("one server, no cluster", 8, search_load(&[(base, "books".to_string())], 8, seconds));
    }
    {
        let cluster = Cluster::start(3);
        fill(&cluster.url(0, ""), "books");
        let owner = cluster.node_of(&cluster.owner(0, "books").unwrap().0);
        let through_owner = vec![(cluster.nodes[owner].base.clone(), "books".to_string())];
        row("cluster of 3 nodes, through the owner", 8, search_load(&through_owner, 8, seconds));
        let everywhere: Vec<_> = cluster.nodes.iter().map(|n| (n.base.clone(), "books".to_string())).collect();
        row("cluster of 3 nodes, through every node", 8, search_load(&everywhere, 8, seconds));
    }
    println!();
    // Kill to writable.
    let mut cluster = Cluster::start(3);
    for trial in 0..3 {
        let name = format!("k{trial}");
        call("PUT", &cluster.url(cluster.alive()[0], &format!("/v1/indexes/{name}")), None);
        let owner = cluster.owner(cluster.alive()[0], &name).unwrap().0;
        let killed = cluster.node_of(&owner);
        let entry = cluster.alive().into_iter().find(|&k| k != killed).unwrap();
        let url = cluster.url(entry, &format!("/v1/indexes/{name}/documents?wait=synced"));
        assert_eq!(call("POST", &url, Some(&doc("before", "x"))).0, 200);
        cluster.kill(killed);
        let killed_at = Instant::now();
        let mut n = 0;
        wait_until(Duration::from_secs(30), "a write after the kill", || {
            n += 1;
            call("POST", &url, Some(&doc(&format!("after/{n}"), "x"))).0 == 200
        });
        println!("kill to writable, trial {trial}: {:.2} s (lease TTL {TTL} s)", killed_at.elapsed().as_secs_f64());
        cluster.restart(killed);
    }
}
