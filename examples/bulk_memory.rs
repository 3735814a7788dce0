//! Memory of a bulk push (issue 17): the peak resident set and its
//! anonymous part while `benches/compare`'s synthetic share is pushed and
//! made Searchable.
//!
//! ```text
//! cargo run --release --example bulk_memory -- [DOCS] [DIR] [BUDGET_MIB]
//! ```
//!
//! DOCS documents (default 1,000,000, with the share's eight metas) are
//! pushed 1,000 per `add_all` with no `sync`, then `refresh`; DIR (default
//! `/tmp/pushdex-bulk-memory`) is emptied first. With BUDGET_MIB the index
//! opens with [`pushdex::Options::memory_budget`] of that many MiB.
//! Prints the time, the peak RSS (VmHWM) and the peak anonymous memory
//! (RssAnon, sampled every 10 ms), after the push and after the refresh.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushdex::{Index, Options};

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
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/pushdex-bulk-memory".into()));
    let budget: Option<usize> = args.next().map(|a| a.parse::<usize>()).transpose()?;
    let share = Share::with_about(docs);
    clear(&dir)?;
    let mut options = Options::default();
    if let Some(mib) = budget {
        options = options.memory_budget(mib << 20);
    }
    println!("{} documents, {}, budget {:?} MiB", share.len(), dir.display(), budget);

    let peak_anon = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak_anon, done) = (peak_anon.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak_anon.fetch_max(status_kb("RssAnon:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let start = Instant::now();
    let index = Index::open_with(&dir, options)?;
    push_all(&index, &share, BATCH)?;
    let pushed = start.elapsed();
    let report = |what: &str, took: Duration| {
        println!(
            "{what}: {:.2} s, {:.0}k docs/s, peak RSS {} MiB, peak anon {} MiB",
            took.as_secs_f64(),
            share.len() as f64 / took.as_secs_f64() / 1e3,
            status_kb("VmHWM:") >> 10,
            peak_anon.load(Ordering::Relaxed) >> 10
        );
    };
    report("push", pushed);
    index.refresh()?;
    report("push + refresh", start.elapsed());
    drop(index);
    std::thread::sleep(Duration::from_millis(20));
    done.store(true, Ordering::Relaxed);
    sampler.join().map_err(|_| "the sampler panicked")?;
    println!("at rest after close: anon {} MiB", status_kb("RssAnon:") >> 10);
    Ok(())
}

/// A `kB` line of `/proc/self/status`, in KiB (0 where there is none).
fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
