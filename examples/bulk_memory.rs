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
use std::time::Instant;

use pushdex::{Index, Options};

#[path = "common/share.rs"]
mod share;

use share::data::Share;
use share::measure::{peak_rss, rss_anon, with_anon_peak};
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

    let start = Instant::now();
    let (index, anon) = with_anon_peak(|| -> Res<Index> {
        let index = Index::open_with(&dir, options)?;
        push_all(&index, &share, BATCH)?;
        Ok(index)
    });
    let index = index?;
    let mut peak_anon = anon;
    let report = |what: &str, peak_anon: u64| {
        let took = start.elapsed().as_secs_f64();
        println!(
            "{what}: {took:.2} s, {:.0}k docs/s, peak RSS {} MiB, peak anon {} MiB",
            share.len() as f64 / took / 1e3,
            peak_rss() >> 20,
            peak_anon >> 20
        );
    };
    report("push", peak_anon);
    let (refreshed, anon) = with_anon_peak(|| index.refresh());
    refreshed?;
    peak_anon = peak_anon.max(anon);
    report("push + refresh", peak_anon);
    drop(index);
    println!("at rest after close: anon {} MiB", rss_anon() >> 20);
    Ok(())
}
