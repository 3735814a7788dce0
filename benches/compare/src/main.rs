//! pushdex against SQLite, redb, fjall and LMDB on one connector workload.
//!
//! `cargo run --release -- --docs 1000000` runs every engine in a child
//! process of its own (so peak RSS and bytes written are per engine), then
//! prints one Markdown report: the machine, the command, a table of every
//! workload for every engine, and how each engine was configured.
//! See README.md.

mod data;
mod engines;
mod measure;
mod run;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use engines::ENGINES;
use run::{Plan, Row};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "\
usage: pushdex-compare [--docs N] [--runs N] [--engines pushdex,sqlite,redb,fjall,lmdb] [--dir PATH]
                       [--sync-ops N] [--tree PATH|none] [--tree-delete ROOT] [--keep]

  --docs N          documents in the synthetic share (rounded up to a multiple of 10,000; default 1,000,000)
  --runs N          rounds: every engine runs once per round, engines interleaved; the table has
                    each row's median (default 3)
  --engines LIST    engines to run, in table order (default: all five)
  --dir PATH        where the stores go (default: the system temp dir); must not be a memory file system
  --sync-ops N      add + durable commit operations per concurrency run (default 2,000)
  --tree PATH       real tree to push (default /usr; `none` to skip)
  --tree-delete R   subtree of the real tree to delete (default: PATH/share)
  --keep            keep the stores afterwards";

struct Args {
    docs: u64,
    runs: usize,
    engines: Vec<String>,
    dir: Option<PathBuf>,
    sync_ops: u64,
    tree: Option<PathBuf>,
    tree_delete: Option<String>,
    keep: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Res<Args> {
    let mut args = Args {
        docs: 1_000_000,
        runs: 3,
        engines: ENGINES.iter().map(|(name, _)| name.to_string()).collect(),
        dir: None,
        sync_ops: 2000,
        tree: Some(PathBuf::from("/usr")),
        tree_delete: None,
        keep: false,
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--docs" => args.docs = value()?.replace(['_', ','], "").parse()?,
            "--runs" => args.runs = value()?.parse::<usize>()?.max(1),
            "--engines" => args.engines = value()?.split(',').map(str::to_string).collect(),
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--sync-ops" => args.sync_ops = value()?.parse()?,
            "--tree" => {
                let v = value()?;
                args.tree = (v != "none").then(|| PathBuf::from(v));
            }
            "--tree-delete" => args.tree_delete = Some(value()?),
            "--keep" => args.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg}\n{USAGE}").into()),
        }
    }
    for e in &args.engines {
        if !ENGINES.iter().any(|(name, _)| name == e) {
            return Err(format!("unknown engine {e}\n{USAGE}").into());
        }
    }
    Ok(args)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let result = if argv.get(1).map(String::as_str) == Some("child") {
        child(&argv[2..])
    } else {
        parent(argv[1..].iter().cloned())
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `child ENGINE DOCS DIR SYNC_OPS TREE_LIST|- TREE_DELETE`: runs every
/// workload on one engine and prints its rows.
fn child(args: &[String]) -> Res<()> {
    let [engine, docs, dir, sync_ops, tree_list, tree_delete] = args else {
        return Err("child: wrong arguments".into());
    };
    let plan = Plan {
        docs: docs.parse()?,
        dir: PathBuf::from(dir),
        sync_ops: sync_ops.parse()?,
        tree_list: (tree_list != "-").then(|| PathBuf::from(tree_list)),
        tree_delete: tree_delete.clone(),
    };
    match engine.as_str() {
        "pushdex" => run::run::<engines::pushdex::Pushdex>(&plan),
        "sqlite" => run::run::<engines::sqlite::Sqlite>(&plan),
        "redb" => run::run::<engines::redb::Redb>(&plan),
        "fjall" => run::run::<engines::fjall::Fjall>(&plan),
        "lmdb" => run::run::<engines::lmdb::Lmdb>(&plan),
        other => Err(format!("unknown engine {other}").into()),
    }
}

fn parent(argv: impl Iterator<Item = String>) -> Res<()> {
    let command: Vec<String> = argv.collect();
    let args = parse_args(command.clone().into_iter())?;
    let share = data::Share::with_about(args.docs);
    let base_parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base_parent)?;
    if measure::on_memory_fs(&base_parent) {
        return Err(format!(
            "{} is a memory file system: fsync would cost nothing there. Use --dir on a disk.",
            base_parent.display()
        )
        .into());
    }
    let base = base_parent.join(format!("pushdex-compare-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;

    let mut tree_note = String::new();
    let mut tree_delete = String::new();
    let tree_list = match &args.tree {
        Some(tree) => {
            let list = base.join("tree.list");
            let (listed, skipped) = data::list_tree(tree, &list)?;
            let root = tree.to_str().ok_or("the tree's path is not UTF-8")?.trim_end_matches('/');
            tree_delete = args.tree_delete.clone().unwrap_or_else(|| format!("{root}/share"));
            tree_delete = format!("file://{}", tree_delete.trim_end_matches('/'));
            tree_note = format!(
                "Real tree: {listed} regular files under {root} ({skipped} skipped: non-UTF-8 names or URIs over \
                 500 bytes, LMDB's key limit being 511); URI `file://` + path, stamp `size-mtime_ns` in hex; \
                 deleted subtree: {tree_delete}."
            );
            eprintln!("{tree_note}");
            Some(list)
        }
        None => None,
    };

    // Rounds rather than one engine's runs back to back: a machine whose
    // load or disk latency drifts (a shared one does) then drifts under
    // every engine alike.
    let mut runs: BTreeMap<String, Vec<Vec<Row>>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (round, engine) in (0..args.runs).flat_map(|r| args.engines.iter().map(move |e| (r, e))) {
        eprintln!("== {engine} (round {} of {})", round + 1, args.runs);
        let dir = base.join(format!("{engine}-{round}"));
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("child")
            .arg(engine)
            .arg(share.len().to_string())
            .arg(&dir)
            .arg(args.sync_ops.to_string())
            .arg(tree_list.as_deref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| "-".into()))
            .arg(&tree_delete)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout from the child")?;
        let mut rows = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match Row::from_line(&line) {
                Some(row) => {
                    eprintln!("     {} {} {}", row.key, number(row.value), row.unit);
                    rows.push(row)
                }
                None => eprintln!("{engine}: {line}"),
            }
        }
        let status = child.wait()?;
        if !status.success() {
            failures.push(format!(
                "{engine}, round {}: the run failed ({status}) after {} rows; see its stderr",
                round + 1,
                rows.len()
            ));
        }
        runs.entry(engine.clone()).or_default().push(rows);
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if args.keep {
        eprintln!("stores kept in {}", base.display());
    } else {
        let _ = std::fs::remove_dir_all(&base);
    }

    let results = runs.iter().map(|(engine, runs)| (engine.clone(), medians(runs))).collect();
    print!("{}", report(&args, &command, &share, &base_parent, &results, &failures, &tree_note));
    Ok(())
}

/// Per workload, the row of the run with the median result (its RSS, size
/// and bytes written come along), noting the range over the runs.
fn medians(runs: &[Vec<Row>]) -> Vec<Row> {
    let mut keys: Vec<&str> = Vec::new();
    for row in runs.iter().flatten() {
        if !keys.contains(&row.key.as_str()) {
            keys.push(&row.key);
        }
    }
    keys.iter()
        .map(|key| {
            let mut rows: Vec<&Row> = runs.iter().flatten().filter(|r| r.key == *key).collect();
            rows.sort_by(|a, b| a.value.total_cmp(&b.value));
            let mut median = rows[rows.len() / 2].clone();
            if rows.len() > 1 {
                let range = format!(
                    "median of {}, range {}–{}",
                    rows.len(),
                    number(rows[0].value),
                    number(rows[rows.len() - 1].value)
                );
                median.note = if median.note.is_empty() { range } else { format!("{}; {range}", median.note) };
            }
            median
        })
        .collect()
}

fn report(
    args: &Args,
    command: &[String],
    share: &data::Share,
    dir: &Path,
    results: &BTreeMap<String, Vec<Row>>,
    failures: &[String],
    tree_note: &str,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "# pushdex compared with SQLite, redb, fjall and LMDB\n");
    let mut cmd = String::from("cargo run --release --");
    for a in command {
        cmd.push(' ');
        cmd.push_str(a);
    }
    let _ = writeln!(out, "Command: `cd benches/compare && {cmd}`\n");
    let _ = writeln!(out, "Machine: {}\n", machine());
    let _ = writeln!(out, "Stores under {} (same disk as the build; not a memory file system).\n", dir.display());
    let sample: Vec<data::Doc> = (0..1000).map(|k| share.doc(k * (share.len() / 1000))).collect();
    let avg = |f: &dyn Fn(&data::Doc) -> usize| sample.iter().map(f).sum::<usize>() / sample.len();
    let _ = writeln!(
        out,
        "Synthetic share: {} documents in 10 departments × 10 teams × 10 projects × 2 years × 5 categories \
         ({} per leaf folder; a department is a 100k subtree at 1M, a project a 1k one), pushed in a scrambled \
         depth-first order. Average URI {} bytes, stamp {} bytes, metas {} bytes ({} names + values; {} bytes \
         as the peers' binary value). Batches of 1,000 for every engine; the same durability points for every \
         engine.\n",
        share.len(),
        share.files_per_leaf,
        avg(&|d| d.uri.len()),
        avg(&|d| d.stamp.len()),
        avg(&|d| d.metas.iter().map(|(n, v)| n.len() + v.len()).sum()),
        sample[0].metas.len(),
        avg(&|d| data::encode_value(d).len()),
    );
    if !tree_note.is_empty() {
        let _ = writeln!(out, "{tree_note}\n");
    }

    // Rows by workload, engines in the order they ran.
    let mut keys: Vec<(String, String)> = Vec::new();
    for rows in results.values() {
        for r in rows {
            if !keys.iter().any(|(k, _)| k == &r.key) {
                keys.push((r.key.clone(), r.label.clone()));
            }
        }
    }
    // Workloads in their numbered order, the whole-run row (8) last.
    let rank = |key: &str| {
        let digits: String = key.chars().take_while(char::is_ascii_digit).collect();
        let n: u32 = digits.parse().unwrap_or(0);
        (if key == "8" { u32::MAX } else { n }, key.to_string())
    };
    keys.sort_by_key(|(key, _)| rank(key));
    let _ = writeln!(
        out,
        "| # | workload | engine | result | vs pushdex | peak RSS | peak anon | disk after | written | note |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for (key, label) in &keys {
        let pushdex = results.get("pushdex").and_then(|rows| rows.iter().find(|r| &r.key == key));
        for engine in &args.engines {
            let Some(row) = results.get(engine).and_then(|rows| rows.iter().find(|r| &r.key == key)) else {
                let _ = writeln!(out, "| {key} | {label} | {engine} | — | | | | | | did not run |");
                continue;
            };
            let ratio = match pushdex {
                Some(p) if row.value > 0.0 && p.value > 0.0 && key != "8" => {
                    let r = if row.higher_is_better { row.value / p.value } else { p.value / row.value };
                    if r < 0.1 {
                        format!("{r:.3}×")
                    } else {
                        format!("{r:.2}×")
                    }
                }
                _ => String::new(),
            };
            let measured = row.rss > 0 || row.disk > 0 || row.written > 0;
            let size = |b: u64| if measured { bytes(b) } else { String::new() };
            let _ = writeln!(
                out,
                "| {key} | {label} | {engine} | {} {} | {ratio} | {} | {} | {} | {} | {} |",
                number(row.value),
                row.unit,
                size(row.rss),
                size(row.anon),
                size(row.disk),
                size(row.written),
                row.note
            );
        }
    }
    let _ = writeln!(
        out,
        "\n*vs pushdex*: the engine's speed as a multiple of pushdex's (throughput ÷ pushdex's, or pushdex's \
         time ÷ the engine's): below 1 the engine is slower than pushdex, above 1 faster. *peak RSS*: VmHWM \
         during that workload (reset before each through /proc/self/clear_refs; it counts mapped file pages \
         touched, so memory-mapped engines show their mapped data too). *peak anon*: the largest anonymous \
         resident set (heap, caches, memtables; no mapped files) seen by sampling RssAnon every 10 ms. *disk after*: blocks allocated by \
         the store after the workload. *written*: /proc/self/io write_bytes during the workload (background \
         flushes and compactions land in whichever row they run in; row 8 has the total). Row 2 writes a \
         second store, removed afterwards; rows 3–7 run on the store of row 1; row 7 closes and reopens it.\n"
    );
    let _ = writeln!(out, "## How each engine is configured\n");
    for (name, how) in ENGINES.iter().filter(|(n, _)| args.engines.iter().any(|e| e == n)) {
        let _ = writeln!(out, "- **{name}**: {how}");
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\n## Failures\n");
        for f in failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok()))
        .map(|kb| bytes(kb * 1024))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem} RAM, Linux {}", kernel.trim())
}

/// 1234567.8 → "1,234,568"; small numbers keep two decimals.
fn number(v: f64) -> String {
    if v < 100.0 {
        return format!("{v:.2}");
    }
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b as f64 >= 1024.0 * MIB {
        format!("{:.2} GiB", b as f64 / (1024.0 * MIB))
    } else if b as f64 >= MIB {
        format!("{:.0} MiB", b as f64 / MIB)
    } else {
        format!("{} KiB", b / 1024)
    }
}
