//! The workloads, run by a child process that holds one engine, so that its
//! peak RSS and bytes written are that engine's alone. Each result goes to
//! stdout as one tab-separated `ROW` line for the parent to tabulate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::data::{folder_prefix, live_doc, mix, read_tree, Doc, Share, SHARE};
use crate::engines::{Engine, Writer};
use crate::measure::{disk_usage, peak_rss, reset_peak_rss, with_anon_peak, write_bytes};
use crate::Res;

pub const BATCH: usize = 1000;
const THREADS: usize = 8;

/// What the parent passes to a child.
pub struct Plan {
    pub docs: u64,
    pub dir: PathBuf,
    pub sync_ops: u64,
    pub tree_list: Option<PathBuf>,
    pub tree_delete: String,
}

/// One line of the table, before the parent adds the ratio to pushdex.
#[derive(Clone, Debug)]
pub struct Row {
    pub key: String,
    pub label: String,
    pub value: f64,
    pub unit: String,
    pub higher_is_better: bool,
    pub rss: u64,
    pub anon: u64,
    pub disk: u64,
    pub written: u64,
    pub note: String,
}

impl Row {
    pub fn to_line(&self) -> String {
        format!(
            "ROW\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.key,
            self.label,
            self.value,
            self.unit,
            u8::from(self.higher_is_better),
            self.rss,
            self.anon,
            self.disk,
            self.written,
            self.note
        )
    }

    pub fn from_line(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.strip_prefix("ROW\t")?.split('\t').collect();
        if f.len() != 10 {
            return None;
        }
        Some(Row {
            key: f[0].to_string(),
            label: f[1].to_string(),
            value: f[2].parse().ok()?,
            unit: f[3].to_string(),
            higher_is_better: f[4] == "1",
            rss: f[5].parse().ok()?,
            anon: f[6].parse().ok()?,
            disk: f[7].parse().ok()?,
            written: f[8].parse().ok()?,
            note: f[9].to_string(),
        })
    }
}

/// A workload's result: the number, its unit, and a remark for the table.
pub(crate) struct Outcome {
    pub value: f64,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub note: String,
}

pub(crate) fn rate(count: u64, took: Duration, unit: &'static str) -> Outcome {
    Outcome { value: count as f64 / took.as_secs_f64(), unit, higher_is_better: true, note: String::new() }
}

pub(crate) fn millis(took: Duration) -> Outcome {
    Outcome { value: took.as_secs_f64() * 1e3, unit: "ms", higher_is_better: false, note: String::new() }
}

/// Runs workloads and reports each with the peak RSS, the bytes written
/// while it ran, and the size of its store after it.
pub(crate) struct Meter {
    pub peak: u64,
    pub anon: u64,
}

impl Meter {
    pub fn run(&mut self, key: &str, label: &str, store: &Path, f: impl FnOnce() -> Res<Outcome>) -> Res<()> {
        eprintln!("  {key} {label} ...");
        reset_peak_rss();
        let written = write_bytes();
        let (outcome, anon) = with_anon_peak(f);
        let outcome = outcome?;
        let row = Row {
            key: key.to_string(),
            label: label.to_string(),
            value: outcome.value,
            unit: outcome.unit.to_string(),
            higher_is_better: outcome.higher_is_better,
            rss: peak_rss(),
            anon,
            disk: disk_usage(store),
            written: write_bytes().saturating_sub(written),
            note: outcome.note,
        };
        self.peak = self.peak.max(row.rss);
        self.anon = self.anon.max(row.anon);
        emit(&row);
        Ok(())
    }
}

pub(crate) fn emit(row: &Row) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", row.to_line());
    let _ = out.flush();
}

pub(crate) fn check(ok: bool, what: impl FnOnce() -> String) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// Pushes the whole share in batches, timing only the engine's calls.
fn push_share<E: Engine>(engine: &mut E, share: &Share, every_batch_durable: bool) -> Res<Duration> {
    let n = share.len();
    let mut took = Duration::ZERO;
    let mut k = 0;
    while k < n {
        let end = (k + BATCH as u64).min(n);
        let docs: Vec<Doc> = (k..end).map(|i| share.doc(i)).collect();
        let durable = every_batch_durable || end == n;
        let start = Instant::now();
        engine.put_batch(docs, durable)?;
        took += start.elapsed();
        k = end;
    }
    Ok(took)
}

fn count_under<E: Engine>(engine: &mut E, prefix: &str) -> Res<u64> {
    engine.scan(prefix, &mut |_, _| {})
}

pub fn run<E: Engine>(plan: &Plan) -> Res<()> {
    let started = Instant::now();
    let written_at_start = write_bytes();
    let share = Share::with_about(plan.docs);
    let n = share.len();
    let a = plan.dir.join("a");
    let b = plan.dir.join("b");
    for d in [&a, &b] {
        std::fs::create_dir_all(d)?;
    }
    let mut meter = Meter { peak: 0, anon: 0 };

    let mut engine = E::open(&a)?;
    meter.run("1", "push, no sync (1000/batch, 1 durable commit at the end)", &a, || {
        Ok(rate(n, push_share(&mut engine, &share, false)?, "docs/s"))
    })?;

    meter.run("2", "push, durable commit every 1000 (new store)", &b, || {
        let mut other = E::open(&b)?;
        let took = push_share(&mut other, &share, true)?;
        other.close()?;
        Ok(rate(n, took, "docs/s"))
    })?;
    std::fs::remove_dir_all(&b)?;

    let lookups = (n / 2).max(BATCH as u64);
    meter.run("3", "status lookups, 90% present, 1000 per read txn", &a, || {
        let mut took = Duration::ZERO;
        let (mut found, mut expected) = (0u64, 0u64);
        let mut stamps = Vec::with_capacity(BATCH);
        let mut i = 0u64;
        while i < lookups {
            let mut uris = Vec::with_capacity(BATCH);
            let mut want = Vec::with_capacity(BATCH);
            for j in i..(i + BATCH as u64).min(lookups) {
                let h = mix(j ^ 0x5eed);
                if h.is_multiple_of(10) {
                    uris.push(share.missing(h >> 8));
                    want.push(None);
                } else {
                    let doc = share.doc((h >> 8) % n);
                    uris.push(doc.uri);
                    want.push(Some(doc.stamp));
                }
            }
            let start = Instant::now();
            engine.stamps(&uris, &mut stamps)?;
            took += start.elapsed();
            check(stamps == want, || format!("lookups near #{i} returned wrong stamps"))?;
            expected += want.iter().filter(|w| w.is_some()).count() as u64;
            found += stamps.iter().filter(|s| s.is_some()).count() as u64;
            i += uris.len() as u64;
        }
        let mut o = rate(lookups, took, "lookups/s");
        o.note = format!("{found} of {lookups} found (expected {expected})");
        Ok(o)
    })?;

    meter.run("4", "enumerate a 100k subtree in order (3 passes)", &a, || {
        let prefix = folder_prefix(&share.department(3));
        let mut took = Duration::ZERO;
        let mut total = 0;
        for _ in 0..3 {
            let mut last = String::new();
            let mut ordered = true;
            let mut stamp_bytes = 0usize;
            let start = Instant::now();
            let count = engine.scan(&prefix, &mut |uri, stamp| {
                ordered &= uri > last.as_str() && uri.starts_with(&prefix);
                last.clear();
                last.push_str(uri);
                stamp_bytes += stamp.len();
            })?;
            took += start.elapsed();
            check(ordered, || "enumeration out of order or outside the subtree".into())?;
            check(count == n / 10, || format!("enumerated {count} documents under {prefix}, expected {}", n / 10))?;
            total += count;
        }
        let mut o = rate(total, took, "entries/s");
        o.note = format!("{} entries per pass", total / 3);
        Ok(o)
    })?;

    let ops = plan.sync_ops.max(THREADS as u64);
    let mut one = 0.0;
    meter.run("6a", "add + durable commit, 1 thread", &a, || {
        let mut w = engine.writer()?;
        let docs: Vec<Doc> = (0..ops).map(|i| live_doc(0, i)).collect();
        let start = Instant::now();
        for d in docs {
            w.put_durable(d)?;
        }
        let o = rate(ops, start.elapsed(), "ops/s");
        one = o.value;
        Ok(o)
    })?;
    let mut eight = 0.0;
    meter.run("6b", "add + durable commit, 8 threads", &a, || {
        let per = ops / THREADS as u64;
        let mut work = Vec::new();
        for t in 0..THREADS {
            let docs: Vec<Doc> = (0..per).map(|i| live_doc(t + 1, i)).collect();
            work.push((engine.writer()?, docs));
        }
        let barrier = Barrier::new(THREADS + 1);
        let took = std::thread::scope(|s| -> Res<Duration> {
            let handles: Vec<_> = work
                .into_iter()
                .map(|(mut w, docs)| {
                    let barrier = &barrier;
                    s.spawn(move || -> Res<()> {
                        barrier.wait();
                        for d in docs {
                            w.put_durable(d)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            for h in handles {
                h.join().map_err(|_| "a writer thread panicked")??;
            }
            Ok(start.elapsed())
        })?;
        let o = rate(per * THREADS as u64, took, "ops/s");
        eight = o.value;
        Ok(o)
    })?;
    // A ratio of the two rows above: nothing of its own to measure.
    emit(&Row {
        key: "6c".into(),
        label: "group commit: 8-thread ÷ 1-thread ops/s".into(),
        value: eight / one,
        unit: "×".into(),
        higher_is_better: true,
        rss: 0,
        anon: 0,
        disk: 0,
        written: 0,
        note: String::new(),
    });

    let probe = share.doc(n / 2);
    engine.close()?;
    let mut reopened = None;
    meter.run("7", "reopen after a clean close (+ first lookup)", &a, || {
        let start = Instant::now();
        let mut engine = E::open(&a)?;
        let mut stamps = Vec::new();
        engine.stamps(std::slice::from_ref(&probe.uri), &mut stamps)?;
        let took = start.elapsed();
        check(stamps == [Some(probe.stamp.clone())], || "reopened store lost a document".into())?;
        reopened = Some(engine);
        Ok(millis(took))
    })?;
    let mut engine = reopened.ok_or("reopen did not happen")?;

    let deletions = [
        ("5a", "delete a 100k subtree + durable commit", share.department(5), true, n / 10),
        ("5b", "delete a 1k subtree + durable commit", share.project(7, 3, 5), true, n / 1000),
        ("5c", "delete a raw prefix (10k) + durable commit", format!("{SHARE}dept06/team02/project"), false, n / 100),
    ];
    for (key, label, target, is_root, expected) in deletions {
        let prefix = if is_root { folder_prefix(&target) } else { target.clone() };
        let before = count_under(&mut engine, &prefix)?;
        check(before == expected, || {
            format!("{before} documents under {prefix} before deleting, expected {expected}")
        })?;
        meter.run(key, label, &a, || {
            let start = Instant::now();
            if is_root {
                engine.delete_under(&target)?;
            } else {
                engine.delete_prefix(&target)?;
            }
            let mut o = millis(start.elapsed());
            o.note = format!("{expected} documents");
            Ok(o)
        })?;
        let after = count_under(&mut engine, &prefix)?;
        check(after == 0, || format!("{after} documents left under {prefix} after deleting"))?;
    }
    let remaining = count_under(&mut engine, SHARE)?;
    let live = ops + ops / THREADS as u64 * THREADS as u64;
    let expected = n - n / 10 - n / 1000 - n / 100 + live;
    check(remaining == expected, || format!("{remaining} documents left in the share, expected {expected}"))?;
    engine.close()?;

    let mut stores = vec![a];
    if let Some(list) = &plan.tree_list {
        let u = plan.dir.join("tree");
        std::fs::create_dir_all(&u)?;
        stores.push(u.clone());
        run_tree::<E>(&mut meter, list, &u, &plan.tree_delete)?;
    }

    let total = Row {
        key: "8".into(),
        label: "whole run: wall time; peak RSS; final size of the stores; bytes written".into(),
        value: started.elapsed().as_secs_f64(),
        unit: "s".into(),
        higher_is_better: false,
        rss: meter.peak,
        anon: meter.anon,
        disk: stores.iter().map(|s| disk_usage(s)).sum(),
        written: write_bytes().saturating_sub(written_at_start),
        note: String::new(),
    };
    emit(&total);
    Ok(())
}

/// The real tree: push every file, push again unchanged (compare stamps,
/// skip), then delete a subtree.
fn run_tree<E: Engine>(meter: &mut Meter, list: &Path, store: &Path, subtree: &str) -> Res<()> {
    let mut engine = E::open(store)?;
    let mut files = 0;
    meter.run("9a", "tree: push every file (1000/batch, durable per batch)", store, || {
        let mut took = Duration::ZERO;
        files = read_tree(list, BATCH, |docs| {
            let start = Instant::now();
            engine.put_batch(docs, true)?;
            took += start.elapsed();
            Ok(())
        })?;
        let mut o = rate(files, took, "docs/s");
        o.note = format!("{files} files");
        Ok(o)
    })?;
    meter.run("9b", "tree: re-push unchanged (stamps per 1000, skip equal)", store, || {
        let mut took = Duration::ZERO;
        let mut stamps = Vec::with_capacity(BATCH);
        let mut changed_total = 0u64;
        let seen = read_tree(list, BATCH, |docs| {
            let uris: Vec<String> = docs.iter().map(|d| d.uri.clone()).collect();
            let start = Instant::now();
            engine.stamps(&uris, &mut stamps)?;
            let changed: Vec<bool> =
                docs.iter().zip(&stamps).map(|(d, s)| s.as_deref() != Some(d.stamp.as_str())).collect();
            let count = changed.iter().filter(|c| **c).count() as u64;
            if count > 0 {
                let docs = docs.into_iter().zip(&changed).filter(|(_, c)| **c).map(|(d, _)| d).collect();
                engine.put_batch(docs, true)?;
            }
            took += start.elapsed();
            changed_total += count;
            Ok(())
        })?;
        check(changed_total == 0, || format!("{changed_total} unchanged files looked changed"))?;
        let mut o = rate(seen, took, "docs/s");
        o.note = format!("{seen} compared, {changed_total} re-pushed");
        Ok(o)
    })?;
    let prefix = folder_prefix(subtree);
    let before = count_under(&mut engine, &prefix)?;
    meter.run("9c", "tree: delete a subtree + durable commit", store, || {
        let start = Instant::now();
        engine.delete_under(subtree)?;
        let mut o = millis(start.elapsed());
        o.note = format!("{before} documents under {subtree}");
        Ok(o)
    })?;
    let after = count_under(&mut engine, &prefix)?;
    check(after == 0, || format!("{after} documents left under {prefix}"))?;
    engine.close()?;
    Ok(())
}
