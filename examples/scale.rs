//! Pushes N documents (default 2,000,000) with default options, refreshes,
//! and prints peak RSS (VmHWM), RSS at rest, size on disk, reopen time, and
//! the time of `delete_with_prefix` on a 1k and a 100k subtree of
//! segment-resident documents.
//!
//! ```text
//! cargo run --release --example scale [N]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use pushdex::{Document, EnumerationMode, Index};

/// The system allocator, counting the bytes the program holds: RSS minus
/// this is what the allocator keeps without the program using it.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap() -> String {
    format!("heap in use {} MiB (peak {} MiB)", LIVE.load(Ordering::Relaxed) >> 20, PEAK.load(Ordering::Relaxed) >> 20)
}

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

/// The directory's file names and sizes.
fn dir_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map_or(0, |m| m.len())))
        .collect();
    files.sort();
    files
}

fn memory(dir: &std::path::Path) -> String {
    format!(
        "RSS {} MiB (anonymous {} MiB, mapped files {} MiB), {}, on disk {} MiB",
        status_kib("VmRSS:") / 1024,
        status_kib("RssAnon:") / 1024,
        status_kib("RssFile:") / 1024,
        heap(),
        dir_bytes(dir) >> 20
    )
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
    println!("peak RSS {} MiB", status_kib("VmHWM:") / 1024);
    println!("just after refresh: {}", memory(dir));
    // A refresh may start a merge in the background: at rest is once the
    // directory has stopped changing for five seconds.
    let t = Instant::now();
    let (mut files, mut quiet) = (dir_files(dir), 0);
    while quiet < 10 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = dir_files(dir);
        quiet = if now == files { quiet + 1 } else { 0 };
        files = now;
    }
    println!("at rest ({:.1} s later): {}", t.elapsed().as_secs_f64(), memory(dir));
    index.close()?;

    let t = Instant::now();
    let index = Index::open(dir)?;
    println!("reopen {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    println!("RSS after reopen {} MiB", status_kib("VmRSS:") / 1024);

    // Five subtrees of each size; the median time (single timings of a few
    // microseconds are noisy).
    let small = (3..8).map(|t| format!("file:///share/dept07/team{t:02}/"));
    let large = (1..6).map(|d| format!("file:///share/dept{d:02}/"));
    for (label, prefixes) in [("1k", small.collect::<Vec<_>>()), ("100k", large.collect())] {
        let mut times = Vec::new();
        let mut removed = 0;
        for prefix in &prefixes {
            let before = index.count(prefix, EnumerationMode::RecursiveDocuments)?;
            let t = Instant::now();
            index.delete_with_prefix(prefix)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            removed += before - index.count(prefix, EnumerationMode::RecursiveDocuments)?;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "delete_with_prefix of a {label} subtree: median {:.3} ms (min {:.3}, max {:.3}; {} documents in {} subtrees, before fsync)",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1],
            removed,
            prefixes.len()
        );
    }
    let t = Instant::now();
    index.sync()?;
    println!("sync {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    println!("peak RSS over the run {} MiB; {}", status_kib("VmHWM:") / 1024, heap());
    index.close()
}
