//! Tail latency of durable calls around a bulk push (issue 17): how long a
//! connector's `sync` waits when a bulk push came before it or runs beside
//! it.
//!
//! ```text
//! cargo run --release --example tail_latency -- [DOCS] [DIR]
//! ```
//!
//! Two phases on `benches/compare`'s synthetic share (DOCS documents,
//! default 1,000,000, with its eight metas; DIR default
//! `/tmp/pushdex-tail-latency`, emptied first):
//!
//! 1. **after**: the whole share pushed 1,000 per `add_all` with no `sync`,
//!    then 50 times a 1k-document project deleted (`delete_root_path`) and
//!    `sync`: the first such call pays for making the bulk push durable.
//! 2. **beside**: the share pushed again into a new index by one thread
//!    (no `sync`) while another adds one document and calls `sync`, then
//!    deletes one and calls `sync`, in turn, until the bulk push ends.
//!
//! Prints the first call, the median, the 99th percentile and the slowest,
//! in milliseconds. Times are wall-clock: compare them within one run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushdex::{Document, Index};

#[path = "common/share.rs"]
mod share;

use share::data::Share;
use share::{clear, push_all};

/// What `share::data` returns its errors as (the harness's `Res`).
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BATCH: u64 = 1_000;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let docs: u64 = args.next().map_or(Ok(1_000_000), |a| a.replace('_', "").parse())?;
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/pushdex-tail-latency".into()));
    let share = Share::with_about(docs);
    println!("{} documents, {}", share.len(), dir.display());

    let index = Index::open(fresh(&dir.join("after"))?)?;
    let start = Instant::now();
    push(&index, &share)?;
    println!("after:  bulk push of {} documents in {:.2} s (no sync)", share.len(), start.elapsed().as_secs_f64());
    let mut deletes = Vec::new();
    for k in 0..50u64 {
        let project = share.project(k % 10, k / 10 % 10, k / 10 % 10);
        let start = Instant::now();
        index.delete_root_path(&project, true)?;
        index.sync()?;
        deletes.push(start.elapsed());
    }
    report("after:  delete_root_path + sync", &deletes);
    index.close()?;

    let index = Index::open(fresh(&dir.join("beside"))?)?;
    let done = Arc::new(AtomicBool::new(false));
    let bulk = {
        let (index, done) = (index.clone(), done.clone());
        std::thread::spawn(move || -> Res<f64> {
            let start = Instant::now();
            let pushed = push(&index, &share);
            done.store(true, Ordering::SeqCst);
            pushed.map(|()| start.elapsed().as_secs_f64())
        })
    };
    let (mut adds, mut dels, mut syncs) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0u64;
    while !done.load(Ordering::SeqCst) {
        let uri = format!("file:///srv/other/doc{i:07}.txt");
        let start = Instant::now();
        index.add(Document::new(uri.as_str()).with_stamp("1"))?;
        let added = start.elapsed();
        index.sync()?;
        syncs.push(start.elapsed() - added);
        adds.push(start.elapsed());
        let start = Instant::now();
        index.delete(&uri)?;
        let deleted = start.elapsed();
        index.sync()?;
        syncs.push(start.elapsed() - deleted);
        dels.push(start.elapsed());
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = bulk.join().expect("the bulk push thread")?;
    println!("beside: bulk push of {} documents in {took:.2} s (no sync)", share.len());
    report("beside: add + sync", &adds);
    report("beside: delete + sync", &dels);
    report("beside: the sync of either", &syncs);
    index.close()?;
    Ok(())
}

fn push(index: &Index, share: &Share) -> Res<()> {
    Ok(push_all(index, share, BATCH)?)
}

/// `dir`, emptied for a new index (see `share::clear`).
fn fresh(dir: &Path) -> Res<&Path> {
    clear(dir)?;
    Ok(dir)
}

fn report(what: &str, times: &[Duration]) {
    let first = times.first().copied().unwrap_or_default();
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |q: f64| sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64() * 1e3;
    println!(
        "{what}: {} calls, first {:.2} ms, median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        ms(Some(first)),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(sorted.last().copied())
    );
}
