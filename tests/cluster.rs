//! `pushdex serve --cluster` as `../shared/CLUSTER.md` promises it: one
//! etcd and several real nodes on loopback ports sharing one store (a
//! directory, or S3 against a local `moto_server`), real HTTP clients,
//! SIGKILL and SIGSTOP. Every wait is bounded in time and count.
//!
//! etcd comes from Debian's `etcd-server`; this test installs it (apt-get)
//! when missing, and moto (pip) for the S3 test, rather than skip.

#![cfg(feature = "cluster")]

#[path = "common/cluster.rs"]
mod harness;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{call, call_with, doc, free_port, provision_moto, signal, wait_until, Cluster, Proc, TOKEN, TTL};
use serde_json::{json, Value};

/// Adds `uri` with `wait=synced` through node `k`: whether it was
/// acknowledged Synced.
fn push_synced(cluster: &Cluster, k: usize, name: &str, uri: &str, text: &str) -> bool {
    let url = cluster.url(k, &format!("/v1/indexes/{name}/documents?wait=synced"));
    let (status, body) = call("POST", &url, Some(&doc(uri, text)));
    status == 200 && body["state"] != "Pushed"
}

/// Every URI of index `name`, read through node `k` (NDJSON enumeration).
fn uris(cluster: &Cluster, k: usize, name: &str) -> BTreeSet<String> {
    let url = cluster.url(k, &format!("/v1/indexes/{name}/enumerate"));
    let response = ureq::get(&url)
        .timeout(Duration::from_secs(60))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap_or_else(|e| panic!("enumerate {name}: {e}"));
    let text = response.into_string().unwrap();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|entry| entry["uri"].as_str().map(str::to_string))
        .collect()
}

fn create(cluster: &Cluster, k: usize, name: &str) {
    let (status, body) = call("PUT", &cluster.url(k, &format!("/v1/indexes/{name}")), None);
    assert!(status == 200 || status == 201, "PUT /v1/indexes/{name}: {status} {body}");
}

fn session(cluster: &Cluster, k: usize, name: &str) -> String {
    let (status, body) = call("GET", &cluster.url(k, &format!("/v1/indexes/{name}")), None);
    assert_eq!(status, 200, "{body}");
    body["session"].to_string()
}

/// Must-show 2: 8 clients write with `wait=synced` through every node; the
/// owner of their index is killed (SIGKILL); every acknowledged document is
/// there afterwards, the old session id gets 409, a connector that resumes
/// from its last Synced checkpoint converges to its source, and the index
/// takes writes again (the time is printed: the note reports it).
/// `PUSHDEX_CLUSTER_TRIALS` trials (default 2), each killing the owner of
/// the moment and starting it again afterwards.
#[test]
fn an_owner_killed_under_load_loses_no_synced_write() {
    let trials: usize = std::env::var("PUSHDEX_CLUSTER_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let mut cluster = Cluster::start(3);
    for trial in 0..trials {
        let name = format!("load{trial}");
        create(&cluster, trial % 3, &name);
        let (owner, epoch) = cluster.owner(0, &name).expect("the new index has an owner");
        let old_session = session(&cluster, (trial + 1) % 3, &name);

        // The connector: a source of 60 documents pushed in batches of 10,
        // each batch followed by checkpoint "batch" (all with wait=synced).
        let source: Vec<(String, String)> = (0..60).map(|i| (format!("src/{i}"), format!("source text {i}"))).collect();
        let push_batch = |cluster: &Cluster, k: usize, b: usize| -> bool {
            let docs: Vec<Value> = source[b * 10..b * 10 + 10]
                .iter()
                .map(|(uri, text)| json!({ "uri": uri, "text": { "body": text } }))
                .collect();
            let url = cluster.url(k, &format!("/v1/indexes/{name}/documents?wait=synced"));
            let (status, _) = call("POST", &url, Some(&Value::Array(docs)));
            if status != 200 {
                return false;
            }
            let url = cluster.url(k, &format!("/v1/indexes/{name}/checkpoints/batch?wait=synced"));
            call("PUT", &url, Some(&json!({ "value": b.to_string() }))).0 == 200
        };
        let entry = cluster.alive().into_iter().find(|&k| cluster.nodes[k].id != owner).unwrap();
        for b in 0..3 {
            assert!(push_batch(&cluster, entry, b), "trial {trial}: batch {b} before the kill");
        }

        let acked = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let bases: Vec<String> = cluster.alive().iter().map(|&k| cluster.nodes[k].base.clone()).collect();
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let (acked, stop, bases, name) = (acked.clone(), stop.clone(), bases.clone(), name.clone());
                std::thread::spawn(move || {
                    let mut via = t % bases.len();
                    for i in 0..100_000 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let uri = format!("w{t}/{i}");
                        let url = format!("{}/v1/indexes/{name}/documents?wait=synced", bases[via]);
                        let (status, body) = call("POST", &url, Some(&doc(&uri, "written under load")));
                        if status == 200 && body["state"] != "Pushed" {
                            acked.lock().unwrap().push((uri, Instant::now()));
                        } else {
                            // The node died, or the index is moving: next node.
                            via = (via + 1) % bases.len();
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
            })
            .collect();
        wait_until(Duration::from_secs(30), "writes before the kill", || acked.lock().unwrap().len() >= 40);
        let killed = cluster.node_of(&owner);
        cluster.kill(killed);
        let kill_time = Instant::now();
        let writable = wait_until(Duration::from_secs(6 * TTL + 10), "a write acknowledged after the kill", || {
            acked.lock().unwrap().iter().any(|(_, at)| *at > kill_time)
        });
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.join().unwrap();
        }
        eprintln!(
            "trial {trial}: killed owner {owner} (epoch {epoch}); the index took writes again after {:?} (lease TTL {TTL} s)",
            writable
        );

        let reader = cluster.alive()[0];
        let (new_owner, new_epoch) = cluster.owner(reader, &name).unwrap();
        assert_ne!(new_owner, owner, "trial {trial}: a live node owns the index");
        assert!(new_epoch > epoch, "trial {trial}: the epoch moved on");
        let present = uris(&cluster, reader, &name);
        let acked = acked.lock().unwrap().clone();
        let lost: Vec<&String> = acked.iter().map(|(uri, _)| uri).filter(|uri| !present.contains(*uri)).collect();
        assert!(
            lost.is_empty(),
            "trial {trial}: {} of {} acknowledged documents lost: {lost:?}",
            lost.len(),
            acked.len()
        );

        // The old session is gone: 409, as after a restart.
        let url = cluster.url(reader, &format!("/v1/indexes/{name}/documents"));
        let (status, body) = call_with("POST", &url, Some(&doc("stale/1", "x")), &[("X-Push-Session", &old_session)]);
        assert_eq!(status, 409, "trial {trial}: the old session id: {body}");

        // The connector resumes after its last Synced checkpoint.
        let (status, body) = call("GET", &cluster.url(reader, &format!("/v1/indexes/{name}/checkpoints/batch")), None);
        assert_eq!(status, 200, "{body}");
        let done: usize = body["value"].as_str().unwrap().parse().unwrap();
        for b in done + 1..6 {
            assert!(push_batch(&cluster, reader, b), "trial {trial}: batch {b} after the failover");
        }
        for (uri, text) in &source {
            let (status, got) =
                call("GET", &cluster.url(reader, &format!("/v1/indexes/{name}/documents?uri={uri}")), None);
            assert_eq!(status, 200, "trial {trial}: {uri} converged");
            assert_eq!(got["text"]["body"], text.as_str());
        }
        cluster.restart(killed);
    }
}

/// Must-show 3: the owner is paused (SIGSTOP) past its lease; another node
/// takes the index and accepts writes; the old owner, continued, forwards
/// what it is sent (or refuses it), and nothing it accepted after losing
/// the index is ever published or visible.
#[test]
fn a_paused_owner_never_publishes_after_losing_its_index() {
    let cluster = Cluster::start(3);
    create(&cluster, 0, "fenced");
    let (owner, epoch) = cluster.owner(0, "fenced").unwrap();
    let old = cluster.node_of(&owner);
    let other = (old + 1) % 3;
    assert!(push_synced(&cluster, other, "fenced", "before", "before the pause"));
    signal(cluster.nodes[old].pid(), "STOP");
    wait_until(Duration::from_secs(6 * TTL + 10), "another node takes the index", || {
        cluster.owner(other, "fenced").is_some_and(|(o, e)| o != owner && e > epoch)
    });
    assert!(push_synced(&cluster, other, "fenced", "during", "while the old owner is paused"));
    signal(cluster.nodes[old].pid(), "CONT");
    // Straight to the old owner: it must forward (its answer is the new
    // owner's) or refuse.
    let mut accepted = Vec::new();
    for i in 0..20 {
        let uri = format!("late/{i}");
        let url = cluster.url(old, "/v1/indexes/fenced/documents?wait=pushed");
        let (status, _) = call("POST", &url, Some(&doc(&uri, "sent to the old owner")));
        if status == 200 {
            accepted.push(uri);
        }
    }
    let (status, _) = call("POST", &cluster.url(old, "/v1/indexes/fenced/refresh"), None);
    assert!(status == 200 || status >= 500, "a refresh through the old owner: {status}");
    let (new_owner, new_epoch) = cluster.owner(other, "fenced").unwrap();
    assert_ne!(new_owner, owner);
    assert!(new_epoch > epoch);
    for k in 0..3 {
        let present = uris(&cluster, k, "fenced");
        assert!(present.contains("before") && present.contains("during"), "node {k}: {present:?}");
        for uri in &accepted {
            assert!(present.contains(uri), "node {k}: {uri}, accepted by the old owner, is the new owner's too");
        }
        let (status, hits) = call("GET", &cluster.url(k, "/v1/indexes/fenced/search?q=owner&limit=100"), None);
        assert_eq!(status, 200);
        let visible: BTreeSet<&str> =
            hits["hits"].as_array().unwrap().iter().filter_map(|h| h["uri"].as_str()).collect();
        for uri in visible.iter().filter(|u| u.starts_with("late/")) {
            assert!(accepted.iter().any(|a| a == uri), "node {k}: {uri} is visible but was never acknowledged");
        }
    }
}

/// Must-show 4: every node answers the same query with the same hits.
#[test]
fn every_node_answers_a_search_the_same() {
    let cluster = Cluster::start(3);
    create(&cluster, 1, "books");
    let words = ["alpha", "beta", "gamma", "delta"];
    for i in 0..40 {
        let text = format!("{} {} book {i}", words[i % 4], words[(i / 4) % 4]);
        assert!(push_synced(&cluster, i % 3, "books", &format!("b/{i}"), &text));
    }
    for k in 0..3 {
        let status = cluster.status(k);
        let books = status["indexes"].as_array().unwrap().iter().find(|i| i["name"] == "books").unwrap().clone();
        assert!(books["published_serial"].as_u64() >= Some(40), "node {k}: 40 Synced, published {books}");
    }
    // `pushdex cluster status` reads the same from etcd.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_pushdex"))
        .args(["cluster", "status", "--cluster", &cluster.etcd.url])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(printed["indexes"], cluster.status(0)["indexes"]);
    assert_eq!(printed["nodes"].as_array().map(Vec::len), Some(3), "{printed}");
    let (status, _) = call("POST", &cluster.url(2, "/v1/indexes/books/refresh"), None);
    assert_eq!(status, 200);
    for query in ["alpha", "beta gamma", "book", "alpha OR delta", "\"gamma book\""] {
        let answers: Vec<Value> = (0..3)
            .map(|k| {
                let url =
                    cluster.url(k, &format!("/v1/indexes/books/search?q={}&limit=100&count=true", urlencode(query)));
                let (status, body) = call("GET", &url, None);
                assert_eq!(status, 200, "{query}: {body}");
                body
            })
            .collect();
        assert!(answers[0]["hits"].as_array().is_some_and(|h| !h.is_empty()), "{query}: {}", answers[0]);
        assert_eq!(answers[0], answers[1], "{query}: nodes 1 and 2");
        assert_eq!(answers[0], answers[2], "{query}: nodes 1 and 3");
    }
}

/// The URIs a search of `q` on node `k` finds, or `None` when the node did
/// not answer within `patience`.
fn found(cluster: &Cluster, k: usize, name: &str, q: &str, patience: Duration) -> Option<BTreeSet<String>> {
    let url = cluster.url(k, &format!("/v1/indexes/{name}/search?q={}&limit=1000", urlencode(q)));
    let response = ureq::get(&url).timeout(patience).set("Authorization", &format!("Bearer {TOKEN}")).call().ok()?;
    let body: Value = serde_json::from_str(&response.into_string().ok()?).ok()?;
    Some(body["hits"].as_array()?.iter().filter_map(|h| h["uri"].as_str().map(str::to_string)).collect())
}

/// Searches are served by every node from the published manifest, not
/// forwarded to the owner: a refresh that returned is seen at once on
/// every node, and every node but the owner keeps answering while the
/// owner is paused (before any failover: a forwarded search would hang).
#[test]
fn every_node_searches_the_published_manifest_even_with_the_owner_paused() {
    let cluster = Cluster::start(3);
    create(&cluster, 0, "papers");
    let (owner, _) = cluster.owner(0, "papers").unwrap();
    let paused = cluster.node_of(&owner);
    let others: Vec<usize> = (0..3).filter(|&k| k != paused).collect();
    let mut expected = BTreeSet::new();
    for round in 0..3 {
        for i in 0..5 {
            let uri = format!("p/{round}/{i}");
            assert!(push_synced(&cluster, (round + i) % 3, "papers", &uri, &format!("paper {round} {i}")));
            expected.insert(uri);
        }
        // Synced but not yet Searchable: no node shows the round.
        for k in 0..3 {
            let hits = found(&cluster, k, "papers", "paper", Duration::from_secs(30)).unwrap();
            assert_eq!(hits.len(), round * 5, "node {k}, round {round}: only what was refreshed");
        }
        let (status, _) = call("POST", &cluster.url(others[round % 2], "/v1/indexes/papers/refresh"), None);
        assert_eq!(status, 200);
        for k in 0..3 {
            let hits = found(&cluster, k, "papers", "paper", Duration::from_secs(30)).unwrap();
            assert_eq!(hits, expected, "node {k}, round {round}: the refresh is seen at once");
        }
    }
    signal(cluster.nodes[paused].pid(), "STOP");
    for &k in &others {
        let hits = found(&cluster, k, "papers", "paper", Duration::from_secs(1));
        assert_eq!(hits.as_ref(), Some(&expected), "node {k} answers alone, the owner paused");
        assert_eq!(found(&cluster, k, "papers", "nothing", Duration::from_secs(1)), Some(BTreeSet::new()));
    }
    signal(cluster.nodes[paused].pid(), "CONT");
    let (status, _) = call("GET", &cluster.url(others[0], "/v1/indexes/missing/search?q=paper"), None);
    assert_eq!(status, 404, "a search of an index that does not exist");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Must-show 5: a fourth node joins; indexes move to it one at a time
/// (clean hand-overs) while clients write; no acknowledged write is lost.
#[test]
fn a_joining_node_takes_indexes_without_losing_a_write() {
    let mut cluster = Cluster::start(3);
    let names: Vec<String> = (0..6).map(|i| format!("idx{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        create(&cluster, i % 3, name);
    }
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, bases, names) = (acked.clone(), stop.clone(), bases.clone(), names.clone());
            std::thread::spawn(move || {
                for i in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = &names[(t + i) % names.len()];
                    let uri = format!("w{t}/{i}");
                    let url = format!("{}/v1/indexes/{name}/documents?wait=synced", bases[i % bases.len()]);
                    let (status, body) = call("POST", &url, Some(&doc(&uri, "written while indexes move")));
                    if status == 200 && body["state"] != "Pushed" {
                        acked.lock().unwrap().push((name.clone(), uri));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let joined = cluster.add_node();
    let id = cluster.nodes[joined].id.clone();
    wait_until(Duration::from_secs(10 * TTL + 20), "the new node owns an index", || {
        let status = cluster.status(0);
        status["indexes"].as_array().unwrap().iter().any(|i| i["owner"] == id.as_str())
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "writes were acknowledged during the join ({})", acked.len());
    for name in &names {
        let present = uris(&cluster, joined, name);
        for (_, uri) in acked.iter().filter(|(n, _)| n == name) {
            assert!(present.contains(uri), "{name}: {uri} was acknowledged Synced and is gone");
        }
    }
    let status = cluster.status(joined);
    let owners: Vec<&str> =
        status["indexes"].as_array().unwrap().iter().map(|i| i["owner"].as_str().unwrap()).collect();
    assert!(owners.iter().filter(|o| **o == id).count() <= 2, "indexes moved one at a time toward balance: {owners:?}");
}

/// Must-show 1's S3 half: three nodes on an S3 store (a local
/// `moto_server`); a killed owner loses no Synced write, and search agrees
/// on every node.
#[test]
fn the_s3_store_keeps_every_synced_write_of_a_killed_owner() {
    provision_moto();
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut moto = Proc(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("moto_server starts"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    // Python's start is slow on a loaded machine: up to two minutes. Any
    // HTTP answer means it listens.
    wait_until(Duration::from_secs(120), "moto_server answers", || {
        if let Ok(Some(status)) = moto.0.try_wait() {
            panic!("moto_server exited ({status}): {}", std::fs::read_to_string(log.path()).unwrap_or_default());
        }
        match ureq::get(&format!("{endpoint}/")).timeout(Duration::from_secs(2)).call() {
            Ok(_) | Err(ureq::Error::Status(..)) => true,
            Err(_) => false,
        }
    });
    // S3's CreateBucket: moto takes it unsigned.
    ureq::put(&format!("{endpoint}/pushdex")).call().expect("the bucket is created");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut cluster = Cluster::with_store(tempfile::tempdir().unwrap(), "s3://pushdex/cluster".into(), env, 3);
    create(&cluster, 0, "s3books");
    let mut acked = Vec::new();
    for i in 0..30 {
        let uri = format!("s3/{i}");
        assert!(push_synced(&cluster, i % 3, "s3books", &uri, &format!("stored in s3 number {i}")), "{uri}");
        acked.push(uri);
    }
    let (owner, _) = cluster.owner(0, "s3books").unwrap();
    let killed = cluster.node_of(&owner);
    cluster.kill(killed);
    let reader = cluster.alive()[0];
    wait_until(Duration::from_secs(6 * TTL + 10), "another node takes the index", || {
        cluster.owner(reader, "s3books").is_some_and(|(o, _)| o != owner)
    });
    let present = uris(&cluster, reader, "s3books");
    for uri in &acked {
        assert!(present.contains(uri), "{uri} was acknowledged Synced and is gone");
    }
    let (status, _) = call("POST", &cluster.url(reader, "/v1/indexes/s3books/refresh"), None);
    assert_eq!(status, 200);
    let answers: Vec<Value> = cluster
        .alive()
        .into_iter()
        .map(|k| call("GET", &cluster.url(k, "/v1/indexes/s3books/search?q=stored&limit=100"), None).1)
        .collect();
    assert_eq!(answers[0]["hits"].as_array().map(Vec::len), Some(30), "{}", answers[0]);
    assert_eq!(answers[0], answers[1]);
    // Deleting the index deletes its objects from the bucket too (S3's
    // ListObjectsV2, unsigned: moto takes it).
    let listed = || {
        let url = format!("{endpoint}/pushdex?list-type=2&prefix=cluster/indexes/s3books/");
        let xml = ureq::get(&url).call().expect("the bucket lists").into_string().unwrap();
        xml.matches("<Key>").count()
    };
    assert!(listed() > 0, "the index's objects are in the bucket");
    let (status, body) = call("DELETE", &cluster.url(reader, "/v1/indexes/s3books"), None);
    assert_eq!(status, 204, "{body}");
    wait_until(Duration::from_secs(4 * TTL + 20), "the deleted index's objects leave the bucket", || listed() == 0);
}

/// A graceful stop (SIGTERM) closes every index, publishing even what was
/// only Pushed, and leaves the cluster: another node takes the index and
/// has every write the stopped owner acknowledged.
#[test]
fn a_stopped_owner_hands_over_even_pushed_writes() {
    let mut cluster = Cluster::start(2);
    create(&cluster, 0, "graceful");
    let (owner, _) = cluster.owner(0, "graceful").unwrap();
    let old = cluster.node_of(&owner);
    let other = 1 - old;
    for i in 0..50 {
        let url = cluster.url(old, "/v1/indexes/graceful/documents?wait=pushed");
        let (status, body) = call("POST", &url, Some(&doc(&format!("p/{i}"), "only pushed")));
        assert_eq!(status, 200, "{body}");
    }
    signal(cluster.nodes[old].pid(), "TERM");
    let mut proc = cluster.nodes[old].proc.take().unwrap();
    assert!(proc.0.wait().unwrap().success(), "SIGTERM exits 0");
    wait_until(Duration::from_secs(6 * TTL + 10), "the other node takes the index", || {
        cluster.owner(other, "graceful").is_some_and(|(o, _)| o != owner)
    });
    let present = uris(&cluster, other, "graceful");
    let missing: Vec<String> = (0..50).map(|i| format!("p/{i}")).filter(|uri| !present.contains(uri)).collect();
    assert!(missing.is_empty(), "pushed writes lost at a graceful stop: {missing:?}");
}

/// An index deleted through any node is gone from every node and from
/// etcd; a new index of that name starts empty.
#[test]
fn a_deleted_index_is_gone_everywhere() {
    let cluster = Cluster::start(2);
    create(&cluster, 0, "gone");
    assert!(push_synced(&cluster, 1, "gone", "g/1", "soon deleted"));
    let (owner, _) = cluster.owner(0, "gone").unwrap();
    let other = 1 - cluster.node_of(&owner);
    let (status, body) = call("DELETE", &cluster.url(other, "/v1/indexes/gone"), None);
    assert_eq!(status, 204, "{body}");
    for k in 0..2 {
        let (status, _) = call("GET", &cluster.url(k, "/v1/indexes/gone"), None);
        assert_eq!(status, 404, "node {k}");
        assert!(cluster.owner(k, "gone").is_none(), "node {k}: etcd forgot it");
    }
    create(&cluster, other, "gone");
    assert!(uris(&cluster, 0, "gone").is_empty(), "a new index of the name starts empty");
}

/// The files under `dir`, recursively (none when it does not exist).
fn objects_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(objects_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The store keeps what the published views name, not every upload: the
/// log's pieces merged away, the pieces an owner killed before publishing
/// left, and every object of a deleted index are deleted (after a grace of
/// twice the TTL, for readers of older views), while nothing Synced is lost.
#[test]
fn the_store_keeps_only_what_a_view_names() {
    let mut cluster = Cluster::start(2);
    create(&cluster, 0, "swept");
    let store = std::path::PathBuf::from(&cluster.store).join("indexes").join("swept");
    let mut pushed = BTreeSet::new();
    for i in 0..64 {
        let uri = format!("s/{i}");
        assert!(push_synced(&cluster, i % 2, "swept", &uri, &format!("swept {i}")));
        pushed.insert(uri);
        if i % 16 == 15 {
            let (status, _) = call("POST", &cluster.url(0, "/v1/indexes/swept/refresh"), None);
            assert_eq!(status, 200);
        }
    }
    // 64 syncs upload 64 pieces of log and merge them into 9 more (73 in
    // all, before the refreshes' segments, bitmaps and manifests); the
    // last view names 28 objects.
    let uploaded = objects_under(&store).len();
    wait_until(Duration::from_secs(4 * TTL + 20), "the merged-away pieces are deleted", || {
        objects_under(&store).len() <= 40
    });
    eprintln!("objects of the index: {uploaded} right after the writes, {} once swept", objects_under(&store).len());
    // The owner killed; the next owner sweeps what no view it took names.
    let (owner, _) = cluster.owner(0, "swept").unwrap();
    let killed = cluster.node_of(&owner);
    let other = 1 - killed;
    cluster.kill(killed);
    wait_until(Duration::from_secs(6 * TTL + 10), "the other node owns the index", || {
        cluster.owner(other, "swept").is_some_and(|(o, _)| o != owner)
    });
    assert_eq!(uris(&cluster, other, "swept"), pushed, "every Synced write survived the sweeps");
    let (status, _) = call("POST", &cluster.url(other, "/v1/indexes/swept/refresh"), None);
    assert_eq!(status, 200);
    let hits = found(&cluster, other, "swept", "swept", Duration::from_secs(30)).unwrap();
    assert_eq!(hits, pushed, "search reads every segment of the view");
    let (status, body) = call("DELETE", &cluster.url(other, "/v1/indexes/swept"), None);
    assert_eq!(status, 204, "{body}");
    wait_until(Duration::from_secs(4 * TTL + 20), "every object of the deleted index is deleted", || {
        objects_under(&store).is_empty()
    });
}

/// A Python client (`requests`), as existing clients talk to one server:
/// each call through a different node of three; writes, sessions,
/// checkpoints, a streamed enumeration, searches (GET and POST), and
/// errors that keep their status and JSON body through a forward.
const PYTHON_CLIENT: &str = r#"
import json, sys, requests
bases, token = sys.argv[1].split(","), sys.argv[2]
h = {"Authorization": "Bearer " + token}
a, b, c = bases
r = requests.put(a + "/v1/indexes/py", headers=h)
assert r.status_code in (200, 201), r.text
for i, base in enumerate(bases):
    docs = [{"uri": "py/%d/%02d" % (i, j), "stamp": str(j), "metas": {"author": "ann"},
             "text": {"body": "python client %d %d" % (i, j)}} for j in range(50)]
    r = requests.post(base + "/v1/indexes/py/documents", params={"wait": "synced"}, headers=h, json=docs)
    assert r.status_code == 200 and r.json()["state"] in ("Synced", "Searchable"), r.text
sessions = {str(requests.get(base + "/v1/indexes/py", headers=h).json()["session"]) for base in bases}
assert len(sessions) == 1, sessions
session = sessions.pop()
r = requests.post(b + "/v1/indexes/py/documents", headers={**h, "X-Push-Session": session}, json=[{"uri": "py/s"}])
assert r.status_code == 200, r.text
r = requests.post(c + "/v1/indexes/py/documents", headers={**h, "X-Push-Session": session + "7"},
                  json=[{"uri": "py/wrong"}])
assert r.status_code == 409 and r.json()["error"] == "session_mismatch", r.text
r = requests.put(a + "/v1/indexes/py/checkpoints/crawl", headers=h, json={"value": "page 3"})
assert r.status_code == 200, r.text
assert requests.post(b + "/v1/indexes/py/sync", headers=h).status_code == 200
cp = requests.get(c + "/v1/indexes/py/checkpoints/crawl", headers=h).json()
assert cp["value"] == "page 3" and cp["state"] in ("Synced", "Searchable"), cp
for base in bases:
    with requests.get(base + "/v1/indexes/py/enumerate", headers=h, stream=True) as r:
        assert r.status_code == 200, r.text
        uris = [json.loads(line)["uri"] for line in r.iter_lines() if line]
    assert len(uris) == 151 and uris == sorted(uris) and "py/wrong" not in uris, uris
assert requests.post(c + "/v1/indexes/py/refresh", headers=h).status_code == 200
answers = [requests.get(base + "/v1/indexes/py/search", headers=h,
                        params={"q": "python", "limit": 1000, "count": "true"}).json() for base in bases]
assert answers[0]["count"] == 150 and answers[0] == answers[1] == answers[2], answers[0]
posted = requests.post(b + "/v1/indexes/py/search", headers=h, json={"q": "client", "limit": 5}).json()
assert len(posted["hits"]) == 5, posted
r = requests.get(b + "/v1/indexes/py/documents", params={"uri": "py/none"}, headers=h)
assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
r = requests.post(c + "/v1/indexes/py/documents", headers={**h, "Content-Type": "application/json"}, data="[{")
assert r.status_code == 400 and r.json()["error"] == "invalid_input", r.text
r = requests.get(a + "/v1/indexes/py/search", params={"q": "python"})
assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text
r = requests.get(b + "/v1/indexes/py/search", params={"q": "python", "limit": 0}, headers=h)
assert r.status_code == 400 and r.json()["error"] == "invalid_input", r.text
r = requests.put(a + "/v1/indexes/py/checkpoints/pushdex.mine", headers=h, json={"value": "x"})
assert r.status_code == 400, r.text
assert requests.delete(c + "/v1/indexes/py", headers=h).status_code == 204
for base in bases:
    for path in ("", "/search?q=python", "/count"):
        r = requests.get(base + "/v1/indexes/py" + path, headers=h)
        assert r.status_code == 404 and r.json()["error"] == "not_found", (base, path, r.text)
print("python client: ok", flush=True)
"#;

#[test]
fn a_python_client_talks_to_any_node_as_to_one_server() {
    if !harness::runs("python3", &["-c", "import requests"]) {
        let installed = harness::runs("python3", &["-m", "pip", "install", "--quiet", "requests"]);
        assert!(installed, "python3 -m pip install requests failed (this test needs it)");
    }
    let cluster = Cluster::start(3);
    let bases: Vec<String> = (0..3).map(|k| cluster.url(k, "")).collect();
    let out = Command::new("python3").args(["-c", PYTHON_CLIENT, &bases.join(","), TOKEN]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("python client: ok"), "{stdout}");
}

/// Searches on every node while writers make each write Searchable (a
/// refresh a request, so the manifest and the replicas change all the
/// time, and segments merge and are deleted from the store): every search
/// is answered, and on each node what it finds only grows.
#[test]
fn searches_during_refreshes_only_move_forward() {
    let cluster = Arc::new(Cluster::start(3));
    create(&cluster, 0, "busy");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let cluster = cluster.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let url = cluster.url((w + i) % 3, "/v1/indexes/busy/documents?wait=searchable");
                    let (status, body) = call("POST", &url, Some(&doc(&format!("w{w}/{i}"), "busy words")));
                    assert_eq!(status, 200, "{body}");
                }
            })
        })
        .collect();
    let searchers: Vec<_> = (0..3)
        .map(|k| {
            let (cluster, stop) = (cluster.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = BTreeSet::new();
                let mut searches = 0;
                while !stop.load(Ordering::Relaxed) || searches == 0 {
                    let hits = found(&cluster, k, "busy", "busy", Duration::from_secs(30))
                        .unwrap_or_else(|| panic!("node {k}: a search was not answered"));
                    assert!(hits.is_superset(&seen), "node {k}: a search lost {:?}", seen.difference(&hits));
                    seen = hits;
                    searches += 1;
                }
                searches
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let searches: Vec<usize> = searchers.into_iter().map(|s| s.join().unwrap()).collect();
    for k in 0..3 {
        let hits = found(&cluster, k, "busy", "busy", Duration::from_secs(30)).unwrap();
        assert_eq!(hits.len(), 120, "node {k}: every write is Searchable everywhere");
    }
    eprintln!("searches per node during the writes: {searches:?}");
}
