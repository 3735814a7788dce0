//! pushdex against SQLite, redb, fjall and LMDB on one connector workload.
//!
//! `cargo run --release -- --docs 1000000` runs every engine in a child
//! process of its own (so peak RSS and bytes written are per engine), then
//! prints one Markdown report: the machine, the command, a table of every
//! workload for every engine, and how each engine was configured.
//! `--search` runs the search workload on pushdex and tantivy instead.
//! See README.md.

mod data;
mod engines;
mod measure;
mod run;
mod search;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use engines::{ENGINES, SEARCH_ENGINES};
use run::{Plan, Row};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "\
usage: pushdex-compare [--docs N] [--runs N] [--engines pushdex,sqlite,redb,fjall,lmdb] [--dir PATH]
                       [--sync-ops N] [--tree PATH|none] [--tree-delete ROOT] [--keep]
       pushdex-compare --search [--docs N] [--runs N] [--engines pushdex,tantivy] [--queries N] [--dir PATH] [--keep]

  --docs N          documents in the synthetic share (rounded up to a multiple of 10,000; default 1,000,000)
  --runs N          rounds: every engine runs once per round, engines interleaved; the table has
                    each row's median (default 3)
  --engines LIST    engines to run, in table order (default: all five)
  --dir PATH        where the stores go (default: the system temp dir); must not be a memory file system
  --sync-ops N      add + durable commit operations per concurrency run (default 2,000)
  --tree PATH       real tree to push (default /usr; `none` to skip)
  --tree-delete R   subtree of the real tree to delete (default: PATH/share)
  --keep            keep the stores afterwards
  --search          run the search workload (full text: pushdex against tantivy) instead of the connector one
  --queries N       with --search: one-word queries, and two-word AND queries, each (default 2,000)";

struct Args {
    docs: u64,
    runs: usize,
    search: bool,
    queries: usize,
    engines: Vec<String>,
    dir: Option<PathBuf>,
    sync_ops: u64,
    tree: Option<PathBuf>,
    tree_delete: Option<String>,
    keep: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Res<Args> {
    let mut engines = None;
    let mut args = Args {
        docs: 1_000_000,
        runs: 3,
        search: false,
        queries: 2000,
        engines: Vec::new(),
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
            "--engines" => engines = Some(value()?.split(',').map(str::to_string).collect()),
            "--search" => args.search = true,
            "--queries" => args.queries = value()?.replace(['_', ','], "").parse::<usize>()?.max(1),
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
    let known = if args.search { &SEARCH_ENGINES[..] } else { &ENGINES[..] };
    args.engines = engines.unwrap_or_else(|| known.iter().map(|(name, _)| name.to_string()).collect());
    for e in &args.engines {
        if !known.iter().any(|(name, _)| name == e) {
            return Err(format!("unknown engine {e}\n{USAGE}").into());
        }
    }
    Ok(args)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let result = if argv.get(1).map(String::as_str) == Some("child") {
        child(&argv[2..])
    } else if argv.get(1).map(String::as_str) == Some("child-search") {
        child_search(&argv[2..])
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

/// `child-search ENGINE DOCS DIR QUERIES`: runs the search workload on one
/// engine and prints its rows.
fn child_search(args: &[String]) -> Res<()> {
    let [engine, docs, dir, queries] = args else {
        return Err("child-search: wrong arguments".into());
    };
    let plan = search::SearchPlan { docs: docs.parse()?, dir: PathBuf::from(dir), queries: queries.parse()? };
    match engine.as_str() {
        "pushdex" => search::run::<engines::pushdex::PushdexSearch>(&plan),
        "tantivy" => search::run::<engines::tantivy::Tantivy>(&plan),
        other => Err(format!("unknown search engine {other}").into()),
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
        Some(tree) if !args.search => {
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
        _ => None,
    };

    // Rounds rather than one engine's runs back to back: a machine whose
    // load or disk latency drifts (a shared one does) then drifts under
    // every engine alike.
    let mut runs: BTreeMap<String, Vec<Vec<Row>>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    // The search workload's AND hit counts, per engine (its first run).
    let mut and_counts: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (round, engine) in (0..args.runs).flat_map(|r| args.engines.iter().map(move |e| (r, e))) {
        eprintln!("== {engine} (round {} of {})", round + 1, args.runs);
        let dir = base.join(format!("{engine}-{round}"));
        std::fs::create_dir_all(&dir)?;
        let mut command = Command::new(std::env::current_exe()?);
        if args.search {
            command
                .arg("child-search")
                .arg(engine)
                .arg(share.len().to_string())
                .arg(&dir)
                .arg(args.queries.to_string());
        } else {
            command
                .arg("child")
                .arg(engine)
                .arg(share.len().to_string())
                .arg(&dir)
                .arg(args.sync_ops.to_string())
                .arg(tree_list.as_deref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| "-".into()))
                .arg(&tree_delete);
        }
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout from the child")?;
        let mut rows = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match Row::from_line(&line) {
                Some(row) => {
                    eprintln!("     {} {} {}", row.key, number(row.value), row.unit);
                    rows.push(row)
                }
                None => {
                    if let Some(text) = line.strip_prefix("WARN\t") {
                        let w = format!("{engine}, round {}: {text}", round + 1);
                        eprintln!("warning: {w}");
                        warnings.push(w);
                    } else if let Some(list) = line.strip_prefix("COUNTS\tand\t") {
                        let counts = list
                            .split(',')
                            .filter_map(|q| {
                                q.rsplit_once('=').and_then(|(q, c)| Some((q.to_string(), c.parse().ok()?)))
                            })
                            .collect();
                        and_counts.entry(engine.clone()).or_insert(counts);
                    } else {
                        eprintln!("{engine}: {line}")
                    }
                }
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

    let mut notes = Vec::new();
    if args.search {
        notes.push(compare_counts(&and_counts, &mut warnings));
    }
    let results = runs.iter().map(|(engine, runs)| (engine.clone(), medians(runs))).collect();
    print!("{}", report(&args, &command, &share, &base_parent, &results, &failures, &warnings, &tree_note, &notes));
    Ok(())
}

/// Compares the engines' hit counts of the two-word AND queries with
/// pushdex's (or the first engine's): a sentence for the report, and a
/// warning per engine that disagrees.
fn compare_counts(counts: &BTreeMap<String, Vec<(String, u64)>>, warnings: &mut Vec<String>) -> String {
    let reference =
        counts.get("pushdex").map(|c| ("pushdex", c)).or_else(|| counts.iter().next().map(|(e, c)| (e.as_str(), c)));
    let Some((base, base_counts)) = reference else {
        return "Sanity check: no engine reported its AND hit counts.".into();
    };
    let mut agree = vec![base.to_string()];
    for (engine, theirs) in counts.iter().filter(|(e, _)| e.as_str() != base) {
        let differ: Vec<String> = base_counts
            .iter()
            .zip(theirs)
            .filter(|(a, b)| a != b)
            .map(|((q, a), (_, b))| format!("{} ({base} {a}, {engine} {b})", q.replace('+', " ")))
            .collect();
        if differ.is_empty() && theirs.len() == base_counts.len() {
            agree.push(engine.clone());
        } else {
            let w = format!(
                "{base} and {engine} disagree on the hit counts of {} of {} two-word AND queries{}{}",
                differ.len(),
                base_counts.len().max(theirs.len()),
                if differ.is_empty() { "" } else { ", e.g. " },
                differ[..differ.len().min(5)].join(", ")
            );
            eprintln!("warning: {w}");
            warnings.push(w);
        }
    }
    if agree.len() > 1 {
        format!(
            "Sanity check: {} agree on the hit counts of all {} two-word AND queries ({} hits in all).",
            agree.join(" and "),
            base_counts.len(),
            base_counts.iter().map(|(_, c)| c).sum::<u64>()
        )
    } else if counts.len() == 1 {
        format!("Sanity check: only {base} ran; its AND hit counts were checked against the data alone.")
    } else {
        "Sanity check: the engines disagree on the AND hit counts (see Warnings).".into()
    }
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
    warnings: &[String],
    tree_note: &str,
    notes: &[String],
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if args.search {
        let _ = writeln!(out, "# pushdex compared with tantivy: search\n");
    } else {
        let _ = writeln!(out, "# pushdex compared with SQLite, redb, fjall and LMDB\n");
    }
    let mut cmd = String::from("cargo run --release --");
    for a in command {
        cmd.push(' ');
        cmd.push_str(a);
    }
    let _ = writeln!(out, "Command: `cd benches/compare && {cmd}`\n");
    let _ = writeln!(out, "Machine: {}\n", machine());
    let _ = writeln!(out, "Stores under {} (same disk as the build; not a memory file system).\n", dir.display());
    if args.search {
        let vocabulary = data::Vocabulary::new();
        let mut ranks = Vec::new();
        let sample: Vec<data::TextDoc> =
            (0..1000).map(|k| share.text_doc(k * (share.len() / 1000), &vocabulary, &mut ranks)).collect();
        let avg = |f: &dyn Fn(&data::TextDoc) -> usize| sample.iter().map(f).sum::<usize>() / sample.len();
        let _ = writeln!(
            out,
            "Synthetic documents: {} documents with the URIs and stamps of the connector workload's synthetic share \
             (average URI {} bytes, stamp {} bytes) and one text part, `body`: {} words drawn from a vocabulary of \
             {} plain lower-case ASCII words with a Zipf distribution (the word of rank r with probability ∝ 1/(r+1): \
             the most common, {:?}, is {:.1}% of all words; average body {} bytes), generated from the document's \
             number. Added in batches of 1,000, then made searchable once. Queries: {} one-word, {} two-word AND, the \
             same pairs as OR, and {} two-word phrase queries, the same deterministic list for every engine.\n",
            share.len(),
            avg(&|d| d.uri.len()),
            avg(&|d| d.stamp.len()),
            data::BODY_WORDS,
            data::Vocabulary::SIZE,
            vocabulary.word(0),
            vocabulary.probability(0) * 100.0,
            avg(&|d| d.body.len()),
            args.queries,
            args.queries,
            args.queries,
        );
    } else {
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
    }
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
    // Workloads in their numbered order, the whole-run row (8, or S7) last.
    let rank = |key: &str| {
        let digits: String = key.trim_start_matches('S').chars().take_while(char::is_ascii_digit).collect();
        let n: u32 = digits.parse().unwrap_or(0);
        (if whole_run(key) { u32::MAX } else { n }, key.to_string())
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
                Some(p) if row.value > 0.0 && p.value > 0.0 && !whole_run(key) => {
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
    if args.search {
        let _ = writeln!(
            out,
            "\n*vs pushdex*: tantivy ÷ pushdex as speeds (queries/s or docs/s ÷ pushdex's; for times, pushdex's time \
             ÷ tantivy's): above 1 tantivy is faster, below 1 slower. *peak RSS*: VmHWM during that workload (reset \
             before each through /proc/self/clear_refs; it counts mapped file pages touched, so tantivy's mapped \
             index files and pushdex's mapped segments show too). *peak anon*: the largest anonymous resident set \
             (heap: pushdex's in-memory postings, tantivy's indexing buffers) seen by sampling RssAnon every 10 ms. \
             *disk after*: blocks allocated by the index after the workload. *written*: /proc/self/io write_bytes \
             during the workload. Timings cover the engines' calls (and building their documents and queries), not \
             generating the data; tantivy indexes in its own threads, pushdex flushes and merges in the background, \
             and both may go on working while the harness generates the next batch (row S1's note has the wall \
             time). Each engine runs in a child process of its own; every answer is checked against the generated \
             data (hit counts of every query) and mismatches are listed under Warnings.\n"
        );
        for note in notes {
            let _ = writeln!(out, "{note}\n");
        }
    } else {
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
    }
    let _ = writeln!(out, "## How each engine is configured\n");
    let engines = if args.search { &SEARCH_ENGINES[..] } else { &ENGINES[..] };
    for (name, how) in engines.iter().filter(|(n, _)| args.engines.iter().any(|e| e == n)) {
        let _ = writeln!(out, "- **{name}**: {how}");
    }
    if !warnings.is_empty() {
        let _ = writeln!(out, "\n## Warnings\n");
        for w in warnings {
            let _ = writeln!(out, "- warning: {w}");
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\n## Failures\n");
        for f in failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

/// The whole-run row: no ratio, listed last.
fn whole_run(key: &str) -> bool {
    key == "8" || key == "S7"
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

/// 1234567.8 → "1,234,568"; small numbers keep two decimals, and those
/// under 0.1 two significant digits (0.0012).
fn number(v: f64) -> String {
    if v > 0.0 && v < 0.1 {
        let decimals = (1.0 - v.log10().floor()).clamp(2.0, 9.0) as usize;
        return format!("{v:.decimals$}");
    }
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
