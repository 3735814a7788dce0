//! Pushes every file under a directory into an index, the way a file-share
//! connector would, and reports how many documents are in each state and how
//! long each step took.
//!
//! ```text
//! cargo run --release --example push_tree [DIR] [INDEX_DIR]
//! ```
//!
//! DIR defaults to the Rust toolchain's own install directory (`rustc
//! --print sysroot`), which every machine that can build this has; INDEX_DIR
//! defaults to a temporary directory removed at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use pushdex::{Document, Entry, EnumerationMode, Index, State};

const BATCH: usize = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tree = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => toolchain_dir(),
    };
    let tree = tree.canonicalize().map_err(|e| format!("{}: {e}", tree.display()))?;
    let temp;
    let index_dir = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    println!("pushing every file under {} into {}", tree.display(), index_dir.display());

    let t = Instant::now();
    let index = Index::open(&index_dir)?;
    step("open", t.elapsed(), None);

    // 1. List the tree: URI and stamp of every file.
    let t = Instant::now();
    let files = list(&tree);
    step("list the tree", t.elapsed(), Some(files.len()));

    // 2. Push what the index does not hold yet (everything, on a new index).
    let t = Instant::now();
    let pushed = push_changed(&index, &tree, &files)?;
    step(&format!("push {pushed} documents in batches of {BATCH}"), t.elapsed(), Some(pushed));
    report(&index)?;

    // 3. Sync: one fsync makes them all Synced.
    let t = Instant::now();
    index.sync()?;
    step("sync", t.elapsed(), None);
    report(&index)?;

    // 4. Refresh: Searchable.
    let t = Instant::now();
    index.refresh()?;
    step("refresh", t.elapsed(), None);
    report(&index)?;

    // 5. A second run of the connector: compare stamps, push nothing.
    let t = Instant::now();
    let again = push_changed(&index, &tree, &files)?;
    step(&format!("re-push of the unchanged tree: {again} pushed"), t.elapsed(), Some(files.len()));

    // 6. Delete the largest sub-folder as one root-path deletion.
    if let Some((folder, n)) = largest_folder(&index, &uri_of(&tree))? {
        let t = Instant::now();
        index.delete_root_path(&folder, true)?;
        step(&format!("delete_root_path {folder} ({n} documents)"), t.elapsed(), None);
        let t = Instant::now();
        index.sync()?;
        step("sync", t.elapsed(), None);
    }

    // 7. Close and reopen: the log replays.
    let t = Instant::now();
    index.close()?;
    step("close", t.elapsed(), None);
    let t = Instant::now();
    let index = Index::open(&index_dir)?;
    step("reopen", t.elapsed(), None);
    report(&index)?;
    index.close()?;
    Ok(())
}

/// The toolchain's sysroot: a real tree of a few thousand files.
fn toolchain_dir() -> PathBuf {
    let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output();
    match out {
        Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        _ => PathBuf::from("/usr"),
    }
}

fn uri_of(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Every regular file under `tree`: URI -> (stamp, size).
fn list(tree: &Path) -> BTreeMap<String, (String, u64)> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(tree).into_iter().filter_map(Result::ok) {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let mtime = meta.modified().ok().and_then(|m| m.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
        let stamp = format!("{}-{}", meta.len(), mtime.as_nanos());
        files.insert(uri_of(entry.path()), (stamp, meta.len()));
    }
    files
}

/// Pushes the files whose stamp differs from what the index holds, found by
/// one ordered enumeration rather than a status call per file.
fn push_changed(index: &Index, tree: &Path, files: &BTreeMap<String, (String, u64)>) -> pushdex::Result<usize> {
    let mut held = BTreeMap::new();
    for entry in index.enumerate(&uri_of(tree), EnumerationMode::RecursiveDocuments)? {
        if let Entry::Document(st) = entry? {
            held.insert(st.uri, st.stamp);
        }
    }
    let changed: Vec<Document> = files
        .iter()
        .filter(|(uri, (stamp, _))| held.get(*uri) != Some(stamp))
        .map(|(uri, (stamp, size))| {
            let name = uri.rsplit('/').next().unwrap_or_default();
            Document::new(uri.as_str())
                .with_stamp(stamp.as_str())
                .with_meta("file_name", name)
                .with_meta("file_size", size.to_string())
        })
        .collect();
    let pushed = changed.len();
    let mut changed = changed.into_iter().peekable();
    while changed.peek().is_some() {
        index.add_all(changed.by_ref().take(BATCH))?;
    }
    Ok(pushed)
}

/// The sub-folder of the tree's root that holds the most documents.
fn largest_folder(index: &Index, root: &str) -> pushdex::Result<Option<(String, u64)>> {
    let mut best = None;
    for entry in index.enumerate(root, EnumerationMode::NotRecursiveFolders)? {
        if let Entry::Folder(folder) = entry? {
            let n = index.count(&folder, EnumerationMode::RecursiveDocuments)?;
            if best.as_ref().is_none_or(|(_, m)| n > *m) {
                best = Some((folder, n));
            }
        }
    }
    Ok(best)
}

fn report(index: &Index) -> pushdex::Result<()> {
    let mut by_state: BTreeMap<State, u64> = BTreeMap::new();
    for entry in index.enumerate("", EnumerationMode::RecursiveDocuments)? {
        if let Entry::Document(st) = entry? {
            *by_state.entry(st.state).or_default() += 1;
        }
    }
    let states: Vec<String> = by_state.iter().map(|(s, n)| format!("{s:?} {n}")).collect();
    let w = index.watermarks();
    println!(
        "    documents by state: {}   (watermarks: last {}, synced {}, searchable {})",
        if states.is_empty() { "none".to_string() } else { states.join(", ") },
        w.last,
        w.synced,
        w.searchable
    );
    Ok(())
}

fn step(what: &str, took: Duration, items: Option<usize>) {
    let rate = match items {
        Some(n) if n > 0 && took.as_secs_f64() > 0.0 => format!("  ({:.0}/s)", n as f64 / took.as_secs_f64()),
        _ => String::new(),
    };
    println!("{:>10.3} ms  {what}{rate}", took.as_secs_f64() * 1e3);
}
