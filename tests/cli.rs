//! The `pushdex` binary end to end: a directory tree imported, re-imported,
//! changed and shrunk through one connector, looked at with every command,
//! and every kind of bad input refused with the right exit code and one
//! line on stderr.

#![cfg(feature = "cli")]

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self.stdout
    }

    /// Asserts `code` and that stderr is exactly one `error: ...` line;
    /// returns that line.
    fn fails(self, code: i32) -> String {
        assert_eq!(self.code, code, "wrong exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        if code == 1 {
            let lines: Vec<&str> = self.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "stderr should be one line, got:\n{}", self.stderr);
            assert!(lines[0].starts_with("error: "), "stderr line: {}", lines[0]);
            assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        }
        self.stderr
    }
}

fn pushdex(index: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_pushdex"))
        .arg("--index")
        .arg(index)
        .args(args)
        .env_remove("PUSHDEX_INDEX")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the pushdex binary runs");
    Run {
        // None means killed by a signal: not an exit code any test expects.
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// The number after `key: ` on its own line of `out`.
fn count(out: &str, key: &str) -> u64 {
    let prefix = format!("{key}: ");
    let line = out.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no `{key}:` line in:\n{out}"));
    line[prefix.len()..].trim().parse().unwrap_or_else(|e| panic!("`{line}`: {e}"))
}

/// Writes `files` files spread over nested directories; returns their
/// paths relative to `root`, sorted.
fn make_tree(root: &Path, files: usize) -> Vec<String> {
    let mut made = Vec::new();
    for i in 0..files {
        let rel = match i % 3 {
            0 => format!("top{i:02}.txt"),
            1 => format!("a/mid{i:02}.txt"),
            _ => format!("a/b/c/deep{i:02}.txt"),
        };
        let path = root.join(&rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, format!("document number {i}\n")).unwrap();
        made.push(rel);
    }
    made.sort();
    made
}

fn tree_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let tree = fs::canonicalize(tree).unwrap();
    (tmp, tree)
}

/// Every URI of connector `id`, paging `rows` at a time; asserts the
/// header's total and that no URI comes twice.
fn all_docs(index: &Path, id: &str, rows: usize) -> Vec<String> {
    let mut uris = Vec::new();
    let mut start = 0;
    loop {
        let out = pushdex(index, &["docs", id, "--rows", &rows.to_string(), "--start", &start.to_string()]).ok();
        let mut lines = out.lines();
        let header = lines.next().expect("a header line");
        assert!(header.contains(&format!("start: {start}")), "header: {header}");
        let page: Vec<String> = lines.map(|l| l.split('\t').next().unwrap().to_string()).collect();
        assert!(page.len() <= rows, "{} rows on a page of {rows}", page.len());
        if page.is_empty() {
            let total: u64 = header.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert_eq!(total, uris.len() as u64, "header total vs documents paged");
            break;
        }
        start += page.len();
        uris.extend(page);
    }
    let distinct: BTreeSet<&String> = uris.iter().collect();
    assert_eq!(distinct.len(), uris.len(), "a URI came twice: {uris:?}");
    uris
}

#[test]
fn import_reimport_change_and_inspect_a_tree() {
    let index_dir = tempfile::tempdir().unwrap();
    let index = index_dir.path();
    let (_tmp, tree) = tree_dir();
    let files = make_tree(&tree, 30);
    let tree_arg = tree.to_str().unwrap();

    // First import: everything is new.
    let out = pushdex(index, &["import", tree_arg]).ok();
    assert!(out.lines().next().unwrap().starts_with("connector c1 (new)"), "{out}");
    assert!(out.contains("job c1-"), "{out}");
    assert_eq!((count(&out, "listed"), count(&out, "added")), (30, 30), "{out}");
    assert_eq!((count(&out, "updated"), count(&out, "unchanged")), (0, 0), "{out}");
    assert_eq!((count(&out, "deleted"), count(&out, "failed")), (0, 0), "{out}");
    assert!(out.lines().any(|l| l == "documents: Searchable 30"), "{out}");

    // Second import: same connector, nothing to push.
    let out = pushdex(index, &["import", tree_arg]).ok();
    assert!(out.lines().next().unwrap().starts_with("connector c1 (existing)"), "{out}");
    assert_eq!((count(&out, "added"), count(&out, "updated"), count(&out, "unchanged")), (0, 0, 30), "{out}");

    // One file changed: new content and an explicitly different mtime.
    let changed = tree.join(&files[0]);
    let before = fs::metadata(&changed).unwrap().modified().unwrap();
    fs::write(&changed, "changed content, longer than before\n").unwrap();
    File::options().write(true).open(&changed).unwrap().set_modified(before + Duration::from_secs(3600)).unwrap();
    let out = pushdex(index, &["import", tree_arg]).ok();
    assert_eq!((count(&out, "added"), count(&out, "updated"), count(&out, "unchanged")), (0, 1, 29), "{out}");

    // One file removed.
    fs::remove_file(tree.join(&files[1])).unwrap();
    let out = pushdex(index, &["import", tree_arg]).ok();
    assert_eq!((count(&out, "listed"), count(&out, "deleted"), count(&out, "unchanged")), (29, 1, 29), "{out}");
    assert!(out.lines().any(|l| l == "documents: Searchable 29"), "{out}");

    // `import` with no DIR imports the current directory: the same connector.
    let out = Command::new(env!("CARGO_BIN_EXE_pushdex"))
        .args(["--index", index.to_str().unwrap(), "import"])
        .current_dir(&tree)
        .output()
        .unwrap();
    let out = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
    .ok();
    assert!(out.starts_with("connector c1 (existing)"), "{out}");

    // connectors
    let out = pushdex(index, &["connectors"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields[0], "c1", "{out}");
    assert!(fields[2].starts_with("file://") && fields[2].ends_with("tree"), "{out}");
    assert_eq!(fields[3], "once", "{out}");
    assert_eq!(fields[4], "done", "{out}");
    let root = fields[2].to_string();

    // job, as lines and as JSON
    let out = pushdex(index, &["job", "c1"]).ok();
    assert!(out.lines().any(|l| l == "status: done"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("job_id: c1-")), "{out}");
    assert!(out.lines().any(|l| l == "percent_complete: 100"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("message: ")), "{out}");
    assert_eq!(count(&out, "listed"), 29, "{out}");
    let out = pushdex(index, &["job", "c1", "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(json["status"], "done", "{out}");
    assert_eq!(json["listed"], 29, "{out}");
    assert_eq!(json["percent_complete"], 100, "{out}");
    assert!(json["job_id"].as_str().unwrap().starts_with("c1-"), "{out}");

    // docs: paging by 7 yields every file exactly once, in URI order.
    let uris = all_docs(index, "c1", 7);
    let mut expected: Vec<String> = files.iter().filter(|f| **f != files[1]).map(|f| format!("{root}/{f}")).collect();
    expected.sort();
    assert_eq!(uris, expected);

    // status of one file
    let uri = &expected[0];
    let out = pushdex(index, &["status", uri]).ok();
    assert!(out.lines().any(|l| l == format!("uri: {uri}")), "{out}");
    assert!(out.lines().any(|l| l == "state: Searchable" || l == "state: Synced"), "{out}");
    assert!(count(&out, "serial") > 0, "{out}");

    // ls: the root's direct children and folders; recursive: every document.
    let out = pushdex(index, &["ls", &root]).ok();
    assert!(out.lines().any(|l| l == format!("dir\t{root}/a/")), "{out}");
    assert!(out.lines().any(|l| l.starts_with(&format!("doc\t{root}/top"))), "{out}");
    assert!(!out.contains("/a/b/"), "not recursive: {out}");
    let out = pushdex(index, &["ls", &root, "--mode", "folders"]).ok();
    assert_eq!(out, format!("dir\t{root}/a/\n"));
    let out = pushdex(index, &["ls", &root, "--mode", "recursive"]).ok();
    assert_eq!(out.lines().filter(|l| l.starts_with("doc\t")).count(), 29, "{out}");

    // rm one URI: it is gone at once.
    let out = pushdex(index, &["rm", uri]).ok();
    assert!(out.starts_with("deleted 1 document: ") && out.contains("serial"), "{out}");
    let err = pushdex(index, &["status", uri]).fails(1);
    assert!(err.contains("no document with URI"), "{err}");
    // rm --root-path --non-recursive: the top-level files go, the folders stay.
    pushdex(index, &["rm", "--root-path", &root, "--non-recursive"]).ok();
    let out = pushdex(index, &["ls", &root, "--mode", "documents"]).ok();
    assert_eq!(out, "", "direct children left");
    assert_ne!(pushdex(index, &["ls", &root, "--mode", "recursive"]).ok(), "");

    // checkpoints
    let out = pushdex(index, &["checkpoint", "set", "crawl", "page 7"]).ok();
    assert!(out.contains("serial"), "{out}");
    assert_eq!(pushdex(index, &["checkpoint", "get", "crawl"]).ok(), "page 7\n");
    let out = pushdex(index, &["checkpoint", "ls"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "the connector's own checkpoints are hidden: {out}");
    assert!(lines[0].starts_with("crawl\tpage 7\t"), "{out}");
    let err = pushdex(index, &["checkpoint", "get", "nope"]).fails(1);
    assert!(err.contains("nope"), "{err}");

    // rm-connector: the connector and its documents are gone.
    let out = pushdex(index, &["rm-connector", "c1"]).ok();
    assert!(out.contains("c1"), "{out}");
    let err = pushdex(index, &["job", "c1"]).fails(1);
    assert!(err.contains("c1"), "{err}");
    assert_eq!(pushdex(index, &["connectors"]).ok(), "");
    let err = pushdex(index, &["ls", &root, "--mode", "recursive"]).fails(1);
    assert!(err.contains("no documents under"), "{err}");
    // The user's checkpoint is not the connector's.
    assert_eq!(pushdex(index, &["checkpoint", "get", "crawl"]).ok(), "page 7\n");
}

#[test]
fn rm_by_prefix_and_the_index_from_the_environment() {
    let index_dir = tempfile::tempdir().unwrap();
    let index = index_dir.path();
    let (_tmp, tree) = tree_dir();
    make_tree(&tree, 6);
    pushdex(index, &["import", tree.to_str().unwrap()]).ok();
    let root = format!("file://{}", tree.display());
    let out = pushdex(index, &["rm", "--prefix", &format!("{root}/a/mid")]).ok();
    assert!(out.contains("serial"), "{out}");
    let out = pushdex(index, &["ls", &root, "--mode", "recursive"]).ok();
    assert_eq!(out.lines().count(), 4, "two a/mid files deleted: {out}");
    assert!(!out.contains("/a/mid"), "{out}");

    // Without --index, $PUSHDEX_INDEX names the directory.
    let out = Command::new(env!("CARGO_BIN_EXE_pushdex"))
        .args(["checkpoint", "set", "from-env", "yes"])
        .env("PUSHDEX_INDEX", index)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(pushdex(index, &["checkpoint", "get", "from-env"]).ok(), "yes\n");
}

#[test]
fn bad_input_is_refused_with_one_line_and_the_right_exit_code() {
    let index_dir = tempfile::tempdir().unwrap();
    let index = index_dir.path();
    let (_tmp, tree) = tree_dir();
    make_tree(&tree, 3);
    pushdex(index, &["import", tree.to_str().unwrap()]).ok();

    // Usage errors are clap's: exit 2.
    pushdex(index, &["frobnicate"]).fails(2);
    pushdex(index, &[]).fails(2);
    pushdex(index, &["rm"]).fails(2);
    pushdex(index, &["rm", "some-uri", "--prefix", "p"]).fails(2);
    pushdex(index, &["rm", "--root-path", "r", "--prefix", "p"]).fails(2);
    pushdex(index, &["rm", "some-uri", "--root-path", "r"]).fails(2);
    pushdex(index, &["rm", "some-uri", "--non-recursive"]).fails(2);
    pushdex(index, &["docs", "c1", "--rows", "-3"]).fails(2);
    pushdex(index, &["ls", "", "--mode", "sideways"]).fails(2);

    // Errors of the library and of the system: exit 1, one line.
    let err = pushdex(index, &["docs", "c1", "--rows", "0"]).fails(1);
    assert!(err.contains("invalid input"), "{err}");
    pushdex(index, &["docs", "c1", "--rows", "1000000"]).fails(1);
    let err = pushdex(index, &["import", "/no/such/dir"]).fails(1);
    assert!(err.contains("/no/such/dir"), "{err}");
    let file = tree.join("top00.txt");
    pushdex(index, &["import", file.to_str().unwrap()]).fails(1);
    let err = pushdex(index, &["job", "c9"]).fails(1);
    assert!(err.contains("c9"), "{err}");
    pushdex(index, &["rm-connector", "c9"]).fails(1);
    pushdex(index, &["status", ""]).fails(1);
    pushdex(index, &["rm", "--prefix", ""]).fails(1);
    pushdex(index, &["checkpoint", "set", "", "v"]).fails(1);

    // The index directory is a file.
    let err = pushdex(&file, &["connectors"]).fails(1);
    assert!(err.contains(file.to_str().unwrap()), "{err}");

    // Nothing above changed the connector.
    let out = pushdex(index, &["docs", "c1"]).ok();
    assert!(out.starts_with("total: 3 "), "{out}");
}

#[test]
fn search_finds_imported_files_by_words_metas_and_folders() {
    let tree = tempfile::tempdir().unwrap();
    let index = tempfile::tempdir().unwrap();
    make_tree(tree.path(), 12);
    fs::write(tree.path().join("a/special.txt"), "a quarterly REPORT, at last").unwrap();
    pushdex(index.path(), &["import", tree.path().to_str().unwrap()]).ok();
    let out = pushdex(index.path(), &["search", "quarterly report"]).ok();
    // The title (the first line: a text file has no other), the URI with
    // score and stamp, the snippet of `content` with the matched words.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], "1. a quarterly REPORT, at last", "{out}");
    assert!(lines[1].starts_with("   file://") && lines[1].contains("/a/special.txt  score "), "{out}");
    assert_eq!(lines[2], "   a [quarterly] [REPORT], at last", "{out}");
    assert_eq!(lines[3], "total: 1 (1 to 1 shown)", "{out}");
    assert_eq!(pushdex(index.path(), &["search", "--count", "document"]).ok().trim(), "12");
    assert_eq!(pushdex(index.path(), &["search", "--count", "@file_name:top00.txt"]).ok().trim(), "1");
    let root = format!("file://{}/a/b", tree.path().canonicalize().unwrap().display());
    assert_eq!(pushdex(index.path(), &["search", "--count", &format!("document under:\"{root}\"")]).ok().trim(), "4");
    // --folders ROOT: the hits by folder under ROOT, each folder whole,
    // after the hits; the count of a folder is what under: it finds.
    let tree_root = format!("file://{}", tree.path().canonicalize().unwrap().display());
    let out = pushdex(index.path(), &["search", "--folders", &tree_root, "document"]).ok();
    let folders_at = out.find(&format!("folders under \"{tree_root}\":\n")).unwrap_or_else(|| panic!("{out}"));
    assert!(out.find("total: 12").unwrap() < folders_at, "{out}");
    assert!(out[folders_at..].ends_with(&format!(":\n        8  {tree_root}/a/\n")), "{out}");
    let in_a = format!("document under:\"{tree_root}/a/\"");
    assert_eq!(pushdex(index.path(), &["search", "--count", &in_a]).ok().trim(), "8");
    let out = pushdex(index.path(), &["search", "--count", "--folders", "", "document"]).ok();
    assert_eq!(out, "12\nfolders under \"\":\n       12  file:/\n", "{out}");
    let answer = search_json(index.path(), &["--folders", &format!("{tree_root}/a"), "--folder-limit", "1", &in_a]);
    let want =
        serde_json::json!({"root": format!("{tree_root}/a"), "values": [{"folder": format!("{root}/"), "count": 4}]});
    assert_eq!(answer["folders"], want, "{answer}");
    assert!(search_json(index.path(), &["document"]).get("folders").is_none());
    pushdex(index.path(), &["search", "--folders", "", "--folder-limit", "0", "document"]).fails(2);
    pushdex(index.path(), &["search", "--folder-limit", "3", "document"]).fails(2);
    let line = pushdex(index.path(), &["search", "--folders", &"r".repeat(5000), "document"]).fails(1);
    assert!(line.contains("invalid URI"), "{line}");
    let out = pushdex(index.path(), &["search", "--limit", "3", "*"]).ok();
    assert_eq!(hit_lines(&out).len(), 3, "{out}");
    assert!(out.ends_with("total: 13 (1 to 3 shown)\n"), "{out}");
    let line = pushdex(index.path(), &["search", "body:\"open"]).fails(1);
    assert!(line.contains("at byte 5"), "{line}");
    pushdex(index.path(), &["search", "--limit", "0", "*"]).fails(1);
    // Bare words are ranked (two of three words are enough); --strict
    // needs them all.
    let natural = pushdex(index.path(), &["search", "quarterly report elsewhere"]).ok();
    assert_eq!(hit_lines(&natural).len(), 1, "{natural}");
    assert!(natural.contains("special.txt"), "{natural}");
    assert_eq!(
        pushdex(index.path(), &["search", "--count", "--strict", "quarterly report elsewhere"]).ok().trim(),
        "0"
    );
    assert_eq!(pushdex(index.path(), &["search", "--count", "--strict", "quarterly report"]).ok().trim(), "1");
    // A part no searchable document has is named, with the parts there are.
    let line = pushdex(index.path(), &["search", "title:report"]).fails(1);
    assert!(line.contains("title") && line.contains("the text parts are: content"), "{line}");
    // A query word that analyses to nothing.
    let line = pushdex(index.path(), &["search", "👍"]).fails(1);
    assert!(line.contains("no word"), "{line}");
}

/// The first line of each hit in `search`'s text output (`N. ...`).
fn hit_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.split_once(". ").is_some_and(|(n, _)| n.parse::<u64>().is_ok())).collect()
}

/// The hits' URIs of a `search --json` answer.
fn json_uris(answer: &serde_json::Value) -> Vec<String> {
    answer["hits"].as_array().unwrap().iter().map(|h| h["uri"].as_str().unwrap().to_string()).collect()
}

/// `search --json`, parsed.
fn search_json(index: &Path, args: &[&str]) -> serde_json::Value {
    let out = pushdex(index, &[&["search", "--json"], args].concat()).ok();
    assert_eq!(out.lines().count(), 1, "one JSON object on one line: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn search_options_json_paging_facets_sort_and_snippets() {
    use std::io::Write;
    let tree = tempfile::tempdir().unwrap();
    let index = tempfile::tempdir().unwrap();
    make_tree(tree.path(), 6);
    fs::write(
        tree.path().join("menu.html"),
        "<html><head><title>Fish &amp; Chips</title><script>var tracker;</script></head>\
         <body><p>Cod with chips, a quarterly treat</p></body></html>",
    )
    .unwrap();
    fs::write(tree.path().join("notes.md"), "# Release notes\n\nThe quarterly release.\n").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"a zebra in a compressed file").unwrap();
    fs::write(tree.path().join("zoo.txt.gz"), gz.finish().unwrap()).unwrap();
    pushdex(index.path(), &["import", tree.path().to_str().unwrap()]).ok();
    let index = index.path();

    // What the import extracted: the visible text, titles, gzip contents.
    let count = |query: &str| pushdex(index, &["search", "--count", query]).ok().trim().parse::<u64>().unwrap();
    assert_eq!((count("chips"), count("tracker"), count("zebra")), (1, 0, 1));
    assert_eq!((count("@title:\"Fish & Chips\""), count("@title:\"Release notes\"")), (1, 1));

    // --json: one object shaped as the server's answer.
    let all = search_json(index, &["--limit", "20", "*"]);
    assert_eq!(all["total"], 9, "{all}");
    assert_eq!(all["facets"], serde_json::json!([]), "{all}");
    for hit in all["hits"].as_array().unwrap() {
        let keys: BTreeSet<&str> = hit.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["uri", "stamp", "score", "title", "snippet"]), "{hit}");
        assert!(hit["score"].is_number() && hit["uri"].as_str().unwrap().starts_with("file://"), "{hit}");
    }
    assert_eq!(search_json(index, &["--count", "document"]), serde_json::json!({"total": 6}));

    // --offset pages through the same order.
    let first = json_uris(&search_json(index, &["--limit", "4", "*"]));
    let page = search_json(index, &["--limit", "2", "--offset", "2", "*"]);
    assert_eq!(json_uris(&page), first[2..4], "{page}");
    assert_eq!(page["total"], 9);
    let text = pushdex(index, &["search", "--limit", "2", "--offset", "2", "*"]).ok();
    let hits = hit_lines(&text);
    assert!(hits.len() == 2 && hits[0].starts_with("3. ") && hits[1].starts_with("4. "), "{text}");
    assert!(text.contains("total: 9 (3 to 4 shown)"), "{text}");
    pushdex(index, &["search", "--offset", "9999", "--limit", "2", "*"]).fails(1);

    // --facet (repeatable): counts over every hit, after the hits.
    let faceted = search_json(index, &["--limit", "1", "--facet", "mime_type", "--facet", "file_size", "*"]);
    assert_eq!(faceted["facets"][0]["name"], "mime_type", "{faceted}");
    assert_eq!(faceted["facets"][0]["values"][0], serde_json::json!(["text/plain", 6]), "{faceted}");
    assert_eq!(faceted["facets"][1]["name"], "file_size", "{faceted}");
    let text = pushdex(index, &["search", "--limit", "1", "--facet", "mime_type", "*"]).ok();
    let facet_at = text.find("facet mime_type:\n").unwrap_or_else(|| panic!("{text}"));
    assert!(text[facet_at..].contains("\n        6  text/plain\n"), "{text}");
    assert!(text.find("total: 9").unwrap() < facet_at, "{text}");

    // --sort META / -META / META:desc reach the library (exit 2 for a sort
    // that does not parse, before the index is opened).
    for (sort, descending) in [("file_name", false), ("-file_name", true), ("file_name:desc", true)] {
        let answer = search_json(index, &["--limit", "20", "--sort", sort, "*"]);
        let names: Vec<String> = json_uris(&answer).iter().map(|u| u.rsplit('/').next().unwrap().to_string()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(names, sorted, "--sort {sort}");
    }
    for bad in ["", "-", "file_name:sideways", "-file_name:asc"] {
        let err = pushdex(index, &["search", "--sort", bad, "*"]).fails(2);
        assert!(err.contains("--sort"), "{bad:?}: {err}");
    }

    // --snippet PART reaches the library; an unknown part is named with the
    // parts there are; without --snippet the default part is best effort.
    let answer = search_json(index, &["--snippet", "content", "quarterly"]);
    assert_eq!(answer["hits"].as_array().unwrap().len(), 2, "{answer}");
    for hit in answer["hits"].as_array().unwrap() {
        assert!(hit["snippet"].as_str().unwrap().contains("<b>quarterly</b>"), "{hit}");
    }
    // The titles the import found: the HTML <title>, the Markdown heading.
    let titles: BTreeSet<&str> =
        answer["hits"].as_array().unwrap().iter().map(|h| h["title"].as_str().unwrap()).collect();
    assert_eq!(titles, BTreeSet::from(["Fish & Chips", "Release notes"]), "{answer}");
    let err = pushdex(index, &["search", "--snippet", "nothere", "quarterly"]).fails(1);
    assert!(err.contains("nothere") && err.contains("the text parts are: content"), "{err}");
    let text = pushdex(index, &["search", "quarterly"]).ok();
    assert_eq!(hit_lines(&text).len(), 2, "{text}");
    // Not a terminal: highlights in brackets, never escape sequences.
    assert!(text.contains("[quarterly]") && !text.contains('\x1b'), "{text:?}");
    let quiet = search_json(index, &["--no-snippet", "quarterly"]);
    assert!(quiet["hits"].as_array().unwrap().iter().all(|h| h["snippet"].is_null()), "{quiet}");
    pushdex(index, &["search", "--no-snippet", "--snippet", "content", "quarterly"]).fails(2);
}

/// A real `kill -9` of `pushdex import` at several points of a first import
/// of 3,000 files: the next import ends the job cleanly, the index then
/// holds exactly the tree, and an import after that pushes nothing.
#[test]
fn an_import_killed_with_sigkill_converges_on_the_next_run() {
    let (_tmp, tree) = tree_dir();
    let files = make_tree(&tree, 3000);
    let want: Vec<String> = files.iter().map(|rel| format!("file://{}", tree.join(rel).to_str().unwrap())).collect();
    let tree_arg = tree.to_str().unwrap();
    let mut killed_mid_import = 0;
    for delay_ms in [0u64, 10, 40, 120, 300] {
        let index_dir = tempfile::tempdir().unwrap();
        let index = index_dir.path();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushdex"))
            .arg("--index")
            .arg(index)
            .args(["import", tree_arg])
            .env_remove("PUSHDEX_INDEX")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the pushdex binary starts");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed_mid_import += 1;
        }
        // The next run: the job that was running is over, the index holds
        // what the tree holds.
        let out = pushdex(index, &["import", tree_arg]).ok();
        assert!(out.lines().any(|l| l.starts_with("job ") && l.contains(": done in")), "after {delay_ms} ms:\n{out}");
        assert_eq!(count(&out, "listed"), 3000, "{out}");
        assert_eq!(count(&out, "added") + count(&out, "unchanged"), 3000, "{out}");
        // The id: c1, or c2 when the kill kept the id counter but not the
        // connector (ids are never reused).
        let id = out.split_whitespace().nth(1).expect("connector ID (new|existing)").to_string();
        assert_eq!(all_docs(index, &id, 1000), want, "after a kill at {delay_ms} ms");
        let out = pushdex(index, &["import", tree_arg]).ok();
        assert_eq!((count(&out, "added"), count(&out, "updated"), count(&out, "unchanged")), (0, 0, 3000), "{out}");
    }
    assert!(killed_mid_import >= 2, "only {killed_mid_import} kills landed before the import ended");
}
