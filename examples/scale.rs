//! Pushes N documents (default 2,000,000) with default options, refreshes,
//! and prints peak RSS (VmHWM), RSS at rest, size on disk, reopen time, and
//! the time of `delete_with_prefix` on a 1k and a 100k subtree of
//! segment-resident documents.
//!
//! ```text
//! cargo run --release --example scale [N]
//! ```

use std::time::Instant;

use pushdex::{Document, EnumerationMode, Index};

fn uri(i: u64) -> String {
    // At 2M: 20 top folders of 100k documents, each of 100 sub-folders of 1k.
    format!("file:///share/dept{:02}/team{:02}/doc{:07}.txt", i % 20, (i / 20) % 100, i)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn main() -> pushdex::Result<()> {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let temp = tempfile::tempdir().map_err(pushdex::Error::Io)?;
    let dir = temp.path();
    let index = Index::open(dir)?;

    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(
            Document::new(uri(i))
                .with_stamp(format!("{}-{}", 1000 + i % 5000, 1_700_000_000_000_000_000u64 + i))
                .with_meta("file_name", format!("doc{i:07}.txt")),
        );
        if batch.len() == 1000 {
            index.add_all(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        index.add_all(batch)?;
    }
    let push = t.elapsed();
    let t = Instant::now();
    index.refresh()?;
    let refresh = t.elapsed();
    println!(
        "pushed {n} documents in {:.2} s ({:.0}/s); refresh {:.0} ms",
        push.as_secs_f64(),
        n as f64 / push.as_secs_f64(),
        refresh.as_secs_f64() * 1e3
    );
    println!(
        "peak RSS {} MiB, RSS at rest {} MiB (anonymous {} MiB, mapped files {} MiB), on disk {} MiB",
        status_kib("VmHWM:") / 1024,
        status_kib("VmRSS:") / 1024,
        status_kib("RssAnon:") / 1024,
        status_kib("RssFile:") / 1024,
        dir_bytes(dir) >> 20
    );
    index.close()?;

    let t = Instant::now();
    let index = Index::open(dir)?;
    println!("reopen {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    println!("RSS after reopen {} MiB", status_kib("VmRSS:") / 1024);

    for prefix in ["file:///share/dept07/team03/", "file:///share/dept01/"] {
        let root = prefix;
        let before = index.count(root, EnumerationMode::RecursiveDocuments)?;
        let t = Instant::now();
        index.delete_with_prefix(prefix)?;
        let took = t.elapsed();
        let after = index.count(root, EnumerationMode::RecursiveDocuments)?;
        println!(
            "delete_with_prefix {prefix:?}: {} documents in {:.3} ms (before fsync)",
            before - after,
            took.as_secs_f64() * 1e3
        );
    }
    let t = Instant::now();
    index.sync()?;
    println!("sync {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    println!("peak RSS over the run {} MiB", status_kib("VmHWM:") / 1024);
    index.close()
}
