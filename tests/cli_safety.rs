//! No command of the `pushdex` binary locks out or wipes an index by
//! accident: each way found to do it (issue 13) is refused with exit code 1,
//! one line on stderr, and nothing changed; what a command does is said with
//! counts; what it prints cannot be mistaken for something else.

#![cfg(feature = "cli")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self.stdout
    }

    /// Exit code 1 and exactly one `error: ...` line on stderr; returns it.
    fn fails(self) -> String {
        assert_eq!(self.code, 1, "expected failure\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr should be one line, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "stderr line: {}", lines[0]);
        lines[0].to_string()
    }
}

fn pushdex_in(cwd: Option<&Path>, index: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushdex"));
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let output = command.arg("--index").arg(index).args(args).env_remove("PUSHDEX_INDEX").output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn pushdex(index: &Path, args: &[&str]) -> Run {
    pushdex_in(None, index, args)
}

/// A tree of `n` small files under `<tmp>/tree` (canonical path).
fn tree(tmp: &Path, n: usize) -> PathBuf {
    let tree = tmp.join("tree");
    for i in 0..n {
        let path = tree.join(format!("d{}/f{i}.txt", i % 3));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("file {i}")).unwrap();
    }
    fs::canonicalize(tree).unwrap()
}

/// What the index holds, as the commands show it: every document with its
/// stamp and state, the checkpoints, the connectors.
fn held(index: &Path) -> String {
    let docs = pushdex(index, &["ls", "", "--mode", "recursive"]);
    let docs = if docs.code == 0 { docs.stdout } else { docs.stderr };
    let checkpoints = pushdex(index, &["checkpoint", "ls"]).ok();
    let connectors = pushdex(index, &["connectors"]).ok();
    format!("{docs}--\n{checkpoints}--\n{connectors}")
}

/// An index holding an imported tree of `n` files.
fn imported(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tree(tmp.path(), n);
    let index = tmp.path().join("idx");
    pushdex(&index, &["import", tree.to_str().unwrap()]).ok();
    (tmp, tree, index)
}

#[test]
fn deleting_every_document_needs_all() {
    let (_tmp, tree, index) = imported(9);
    let before = held(&index);
    // An unset shell variable in `--root-path "$R"`.
    let err = pushdex(&index, &["rm", "--root-path", ""]).fails();
    assert!(err.contains("every document of the index (9)") && err.contains("--all"), "{err}");
    // Any root or prefix that covers the whole index is the same.
    let root = format!("file://{}", tree.display());
    for args in [&["rm", "--root-path", &root][..], &["rm", "--root-path", "file:///"], &["rm", "--prefix", "file:"]] {
        let err = pushdex(&index, args).fails();
        assert!(err.contains("every document of the index (9)"), "{args:?}: {err}");
    }
    assert_eq!(held(&index), before, "a refused rm changed the index");

    // A part of it is fine, and the output says how much went.
    let out = pushdex(&index, &["rm", "--root-path", &format!("{root}/d1")]).ok();
    assert!(out.starts_with(&format!("deleted 3 documents under root \"{root}/d1\", serial ")), "{out}");
    let out = pushdex(&index, &["rm", "--prefix", &format!("{root}/d2/f")]).ok();
    assert!(out.starts_with(&format!("deleted 3 documents with prefix \"{root}/d2/f\", serial ")), "{out}");
    let out = pushdex(&index, &["rm", "--root-path", &format!("{root}/nothing")]).ok();
    assert!(out.starts_with("deleted 0 documents under root "), "{out}");
    let out = pushdex(&index, &["rm", "--root-path", &root, "--non-recursive"]).ok();
    assert!(out.starts_with("deleted 0 documents directly in root "), "{out}");
    // Every document left is in d0: its direct children are everything.
    let err = pushdex(&index, &["rm", "--root-path", &format!("{root}/d0"), "--non-recursive"]).fails();
    assert!(err.contains("every document of the index (3)"), "{err}");
    let out = pushdex(&index, &["rm", &format!("{root}/d0/f3.txt")]).ok();
    assert!(out.starts_with(&format!("deleted 1 document: {root}/d0/f3.txt, serial ")), "{out}");
    // And all of it, when asked for.
    let out = pushdex(&index, &["rm", "--root-path", &format!("{root}/d0"), "--non-recursive", "--all"]).ok();
    assert!(out.starts_with("deleted 2 documents directly in root "), "{out}");
    let out = pushdex(&index, &["rm", "--root-path", "", "--all"]).ok();
    assert!(out.starts_with("deleted 0 documents under root \"\""), "{out}");
    assert_eq!(pushdex(&index, &["ls", "", "--mode", "recursive"]).ok(), "");

    // The index's only document, named by its URI, needs no --all.
    let (_tmp, tree, index) = imported(1);
    let out = pushdex(&index, &["rm", &format!("file://{}/d0/f0.txt", tree.display())]).ok();
    assert!(out.starts_with("deleted 1 document: "), "{out}");
}

#[test]
fn only_import_creates_an_index_and_never_among_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tree(tmp.path(), 6);
    // A mistyped --index: a folder of the tree, a path whose parents do not
    // exist. Nothing is created or written there.
    let data_folder = tree.join("d0");
    let files_before = fs::read_dir(&data_folder).unwrap().count();
    for command in [&["search", "foo"][..], &["status", "x"], &["ls", ""], &["connectors"], &["checkpoint", "ls"]] {
        let err = pushdex(&data_folder, command).fails();
        assert!(err.contains("is not a pushdex index"), "{command:?}: {err}");
        let missing = tmp.path().join("some/mistyped/dir");
        let err = pushdex(&missing, command).fails();
        assert!(err.contains("no index at") && err.contains("import"), "{command:?}: {err}");
        assert!(!tmp.path().join("some").exists(), "{command:?} created the missing directory");
    }
    assert_eq!(fs::read_dir(&data_folder).unwrap().count(), files_before, "files were written into the data folder");

    // Not even an import writes an index among other files.
    let err = pushdex(&data_folder, &["import", tree.to_str().unwrap()]).fails();
    assert!(err.contains("holds other files and no pushdex index"), "{err}");
    assert_eq!(fs::read_dir(&data_folder).unwrap().count(), files_before);

    // An --index that is a file says so.
    let file = data_folder.join("f0.txt");
    let err = pushdex(&file, &["connectors"]).fails();
    assert!(err.contains("is a file, not an index directory"), "{err}");
    let err = pushdex(&file, &["import", tree.to_str().unwrap()]).fails();
    assert!(err.contains("is a file"), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"file 0");

    // An import creates it in a missing or an empty directory.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = pushdex(&empty, &["import", tree.to_str().unwrap()]).ok();
    assert!(out.contains("listed: 6"), "{out}");
    let fresh = tmp.path().join("new/nested/index");
    pushdex(&fresh, &["import", tree.to_str().unwrap()]).ok();
    assert!(pushdex(&fresh, &["connectors"]).ok().starts_with("c1\t"));
}

#[test]
fn reserved_checkpoint_names_are_refused() {
    let (_tmp, _tree, index) = imported(4);
    let before = held(&index);
    for (args, _) in [
        (&["checkpoint", "set", "pushdex.connectors.next", "x"][..], ()),
        (&["checkpoint", "set", "pushdex.connector.c1", "{}"], ()),
        (&["checkpoint", "set", "pushdex.", "x"], ()),
    ] {
        let err = pushdex(&index, args).fails();
        assert!(err.contains("reserved"), "{args:?}: {err}");
    }
    assert_eq!(held(&index), before);
    // The connector layer still reads its registry.
    let out = pushdex(&index, &["job", "c1"]).ok();
    assert!(out.contains("status: done"), "{out}");
    // A user's own names beginning otherwise are fine.
    pushdex(&index, &["checkpoint", "set", "pushdexter", "1"]).ok();
}

#[test]
fn an_import_never_imports_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tree(tmp.path(), 5);
    // The index inside the tree (the default ./pushdex-data of a user who
    // runs `pushdex import` in the tree).
    let inside = tree.join("pushdex-data");
    let out = pushdex(&inside, &["import", tree.to_str().unwrap()]).ok();
    assert!(out.contains("listed: 5") && out.contains("skipped: 1"), "{out}");
    assert!(out.contains("a pushdex index"), "{out}");
    let listed = pushdex(&inside, &["ls", "", "--mode", "recursive"]).ok();
    assert!(!listed.contains("pushdex-data"), "the index imported itself: {listed}");

    // The index itself, or a folder inside it, as the tree.
    let before = held(&inside);
    let err = pushdex(&inside, &["import", inside.to_str().unwrap()]).fails();
    assert!(err.contains("is a pushdex index"), "{err}");
    fs::create_dir_all(inside.join("lost+found")).unwrap();
    let err = pushdex(&inside, &["import", inside.join("lost+found").to_str().unwrap()]).fails();
    assert!(err.contains("lies inside"), "{err}");
    // Relative spellings too.
    let err = pushdex_in(Some(&tree), Path::new("pushdex-data"), &["import", "pushdex-data"]).fails();
    assert!(err.contains("is a pushdex index"), "{err}");
    assert_eq!(held(&inside), before);
}

#[test]
fn absent_uris_and_roots_are_errors_that_say_so() {
    let (_tmp, tree, index) = imported(4);
    let before = held(&index);
    let root = format!("file://{}", tree.display());
    let absent = format!("{root}/nope.txt");
    let err = pushdex(&index, &["status", &absent]).fails();
    assert!(err.contains("no document with URI"), "{err}");
    let err = pushdex(&index, &["rm", &absent]).fails();
    assert!(err.contains("nothing deleted"), "{err}");
    assert_eq!(held(&index), before, "rm of an absent URI took a serial or changed something");

    // A plain path where a URI is meant: a hint with the URI.
    let path = tree.to_str().unwrap();
    let err = pushdex(&index, &["ls", path]).fails();
    assert!(err.contains("no documents under") && err.contains(&format!("try {root}")), "{err}");
    let err = pushdex(&index, &["status", &format!("{path}/d0/f0.txt")]).fails();
    assert!(err.contains(&format!("try {root}/d0/f0.txt")), "{err}");
    // The URI works.
    assert!(pushdex(&index, &["ls", &root]).ok().contains("dir\t"));
    assert!(pushdex(&index, &["status", &format!("{root}/d0/f0.txt")]).ok().contains("state: "));
}

#[cfg(unix)]
#[test]
fn control_characters_are_escaped_and_odd_files_are_counted() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let tree = tree(tmp.path(), 2);
    fs::write(tree.join("tab\there"), "t").unwrap();
    fs::write(tree.join("new\nline"), "n").unwrap();
    fs::write(tree.join("back\\slash"), "b").unwrap();
    fs::write(tree.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")), "latin-1").unwrap();
    std::os::unix::fs::symlink(tree.join("d0"), tree.join("link")).unwrap();
    let index = tmp.path().join("idx");
    let out = pushdex(&index, &["import", tree.to_str().unwrap()]).ok();
    assert!(out.contains("listed: 5\n") && out.contains("skipped: 2\n"), "{out}");
    assert!(out.contains("name is not UTF-8") && out.contains("symbolic link"), "{out}");
    // The name that is not UTF-8 is shown as well as it can be.
    assert!(out.contains("caf\u{fffd}.txt"), "{out}");

    let root = format!("file://{}", tree.display());
    let out = pushdex(&index, &["ls", &root, "--mode", "documents"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "one line per document: {out}");
    assert!(out.contains(r"/tab\there"), "{out}");
    assert!(out.contains(r"/new\nline"), "{out}");
    assert!(out.contains(r"/back\\slash"), "{out}");
    for line in lines {
        assert_eq!(line.split('\t').count(), 4, "tabs separate columns only: {line:?}");
    }
    let out = pushdex(&index, &["search", "n", "--limit", "5"]).ok();
    // One hit, four lines (title; URI, score and stamp; snippet; total): the
    // line end in the URI is escaped, not printed.
    assert_eq!(out.lines().count(), 4, "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("   file://")).count(), 1, "{out}");
    assert!(out.contains(r"/new\nline  score "), "{out}");
    let out = pushdex(&index, &["job", "c1"]).ok();
    assert!(out.contains("skipped: 2\n"), "{out}");
}

// ---- verify and repair (the library's side is tests/repair.rs) ----------

fn options() -> pushdex::Options {
    pushdex::Options::default().memtable_bytes(256 << 20)
}

/// `batches` synced batches of 5 documents, one log frame each; what the
/// index held after each.
fn write_batches(index: &pushdex::Index, from: usize, batches: usize) -> Vec<usize> {
    (from..from + batches)
        .map(|b| {
            index
                .add_all((0..5).map(|i| pushdex::Document::new(format!("b{b:02}/{i}")).with_stamp(format!("s{b}"))))
                .unwrap();
            index.sync().unwrap();
            index.count("", pushdex::EnumerationMode::RecursiveDocuments).unwrap() as usize
        })
        .collect()
}

fn logs(dir: &Path) -> Vec<String> {
    let mut gens: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| pushdex::wal::parse_log_name(e.unwrap().file_name().to_str()?))
        .collect();
    gens.sort_unstable();
    gens.into_iter().map(pushdex::wal::log_name).collect()
}

fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut at = pushdex::wal::FILE_HEADER_BYTES;
    let mut starts = Vec::new();
    while at < bytes.len() {
        starts.push(at);
        at +=
            pushdex::wal::FRAME_HEADER_BYTES + u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    starts
}

#[test]
fn pushdex_verify_and_repair_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open_with(dir.path(), options()).unwrap();
    let counts = write_batches(&index, 0, 5);
    drop(index);
    let log = dir.path().join(&logs(dir.path())[0]);
    let mut bytes = fs::read(&log).unwrap();
    let starts = frame_starts(&bytes);
    bytes[starts[3] + 2] ^= 0xff; // the check of the fourth frame
    fs::write(&log, &bytes).unwrap();
    let run = |args: &[&str]| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_pushdex")).arg("--index").arg(dir.path()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, _, err) = run(&["ls", ""]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is damaged") && err.contains("pushdex repair"), "{err}");
    let (code, out, err) = run(&["verify"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("opens: no") && out.contains("repair fixes it"), "{out}");
    assert!(err.starts_with("error: 1 problem: the index does not open"), "{err}");
    let (code, out, err) = run(&["repair"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(the whole file is in lost+found/wal-1.log)") && out.contains("opens: yes"), "{out}");
    let (code, out, _) = run(&["verify"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = run(&["ls", "", "--mode", "recursive"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), counts[2], "{out}");
    assert_eq!(fs::read(dir.path().join("lost+found/wal-1.log")).unwrap(), bytes);
}
