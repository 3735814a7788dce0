//! The layers of `docs/ARCHITECTURE.md`, kept as drawn: reads every
//! `crate::…` path in the code of `src/` (comments left out) and fails when
//! a module uses one of a higher layer, or when a part of the segment format
//! uses one above it (`format` < `postings` < `reader` < `writer`).
//!
//! A new top-level module must be given a layer here, or the test fails.

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules of `src/`, lowest layer first. A module may use its
/// own layer and those below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "model types",
        &["error", "status", "uri", "files", "document", "record", "bloom", "frontcode", "text", "extract"],
    ),
    ("storage", &["storage"]),
    ("log", &["wal"]),
    ("files on disk", &["manifest", "segment", "trie"]),
    ("search", &["search"]),
    ("index", &["index"]),
    ("connectors", &["connector"]),
    ("cluster", &["cluster"]),
    ("server", &["server"]),
    ("crate root and binary", &["lib", "main"]),
];

/// The parts of the segment format, lowest first (`mod.rs` re-exports them
/// and is above all).
const SEGMENT_PARTS: &[&str] = &["format", "postings", "reader", "writer", "mod"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// The code of a Rust file without its comments (line, doc and block
/// comments) and without the contents of its string literals (raw ones
/// included): what is left names only what the code uses.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let ident_char = |c: char| c.is_alphanumeric() || c == '_';
        let mut before = text[..i].chars().rev();
        // The `b` of a raw byte string (`br"…"`) is not an identifier's end.
        let after_ident = match before.next() {
            Some('b') => before.next().is_some_and(ident_char),
            Some(c) => ident_char(c),
            None => false,
        };
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |end| end + 2)
        } else if let Some(raw) = rest.strip_prefix('r').filter(|r| !after_ident && r.starts_with(['#', '"'])) {
            // r"…", r#"…"#, r##"…"##
            let hashes = raw.len() - raw.trim_start_matches('#').len();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = &raw[hashes..];
            match body.strip_prefix('"') {
                Some(body) => 1 + hashes + 1 + body.find(&close).map_or(body.len(), |end| end + close.len()),
                None => 1,
            }
        } else if rest.starts_with('"') {
            let mut end = 1;
            let bytes = rest.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            (end + 1).min(rest.len())
        } else if rest.starts_with('\'') && (rest[1..].starts_with("\\") || rest.get(2..3) == Some("'")) {
            // A char literal ('"', '\'', '\\'), not a lifetime.
            rest[1..].find('\'').map_or(1, |end| if rest[1..].starts_with("\\'") { 4 } else { end + 2 })
        } else {
            0
        };
        if skip > 0 {
            out.push(' ');
            i += skip;
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn ident(s: &str) -> &str {
    &s[..s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len())]
}

/// Every path `code` names from the crate root, as its first two segments:
/// `crate::a::b` gives `(a, Some(b))`, `crate::{a::b, C}` gives `(a, Some(b))`
/// and `(C, None)`.
fn crate_paths(code: &str) -> BTreeSet<(String, Option<String>)> {
    let mut found = BTreeSet::new();
    let mut add = |path: &str| {
        let path = path.trim();
        let first = ident(path);
        if !first.is_empty() {
            let second = path[first.len()..].strip_prefix("::").map(ident).filter(|s| !s.is_empty());
            found.insert((first.to_string(), second.map(str::to_string)));
        }
    };
    for (at, _) in code.match_indices("crate::") {
        if code[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `pushdex_crate::` and the like
        }
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                // Split at the commas outside inner braces.
                let (mut depth, mut start) = (0usize, 0);
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            add(&group[start..i]);
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            add(&group[start..i]);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
            }
            None => add(rest),
        }
    }
    found
}

/// The module behind each name the crate root re-exports (`Index` is
/// `index`'s), read from the `pub use` lines of `lib.rs`.
fn root_exports(lib: &str) -> Vec<(String, String)> {
    let code = strip_comments(lib);
    let mut exports = Vec::new();
    for (at, _) in code.match_indices("pub use ") {
        let statement = &code[at + "pub use ".len()..];
        let statement = &statement[..statement.find(';').unwrap_or(statement.len())];
        let module = ident(statement).to_string();
        let names = statement.split(['{', '}', ',']).skip(1).chain(statement.rsplit("::").next());
        for name in names {
            let name = name.split(" as ").last().unwrap_or(name).trim();
            if !name.is_empty() && !name.contains("::") {
                exports.push((name.to_string(), module.clone()));
            }
        }
    }
    exports
}

/// The layering problems of the given files (path relative to `src/`, text).
fn violations(files: &[(String, String)]) -> Vec<String> {
    let lib = files.iter().find(|(path, _)| path == "lib.rs").map_or("", |(_, text)| text.as_str());
    let exports = root_exports(lib);
    let mut problems = Vec::new();
    for (path, text) in files {
        let mut components = path.trim_end_matches(".rs").split('/');
        let module = components.next().expect("a path");
        let part = components.next();
        let Some(own) = layer_of(module) else {
            problems.push(format!("src/{path}: module `{module}` has no layer in tests/layering.rs"));
            continue;
        };
        // Visibility paths (`pub(in crate::x)`) name no dependency.
        let code = strip_comments(text).replace("pub(in crate::", "pub(in ");
        if code.contains("crate as ") {
            problems.push(format!("src/{path}: renames the crate root (`crate as …`), which this test cannot follow"));
        }
        let mut uses: Vec<(String, Option<String>)> = crate_paths(&code).into_iter().collect();
        // `super::` chains that climb to the crate root name top-level
        // modules too (`super::index` in wal.rs, `super::super::search` in
        // storage/fs.rs). A file's module is its path; `mod.rs` is its
        // folder's.
        let depth = path.trim_end_matches(".rs").trim_end_matches("/mod").split('/').count();
        for (at, _) in code.match_indices("super::") {
            if code[..at].ends_with("super::") {
                continue; // counted from the first `super::` of the chain
            }
            let mut rest = &code[at..];
            let mut climbs = 0;
            while let Some(after) = rest.strip_prefix("super::") {
                climbs += 1;
                rest = after;
            }
            let name = ident(rest);
            if climbs == depth && layer_of(name).is_some() {
                uses.push((name.to_string(), None));
            }
            if module == "segment" && climbs == 1 && depth == 2 {
                if let Some(part) = part {
                    segment_order(path, part, name, &mut problems);
                }
            }
        }
        for (used, inner) in uses {
            if used == "self" {
                continue; // `use crate::{self, …}`
            }
            let used = match exports.iter().find(|(name, _)| *name == used) {
                Some((_, module)) => module.clone(),
                None => used,
            };
            match layer_of(&used) {
                None => problems.push(format!("src/{path}: uses `crate::{used}`, which has no layer")),
                Some(layer) if layer > own => problems.push(format!(
                    "src/{path}: `{module}` ({}) uses `crate::{used}` ({}), a higher layer",
                    LAYERS[own].0, LAYERS[layer].0
                )),
                _ => {}
            }
            if module == "segment" && used == "segment" {
                if let (Some(part), Some(inner)) = (part, inner.as_deref()) {
                    segment_order(path, part, inner, &mut problems);
                }
            }
        }
    }
    problems
}

/// A part of the segment format using another part: only lower ones.
fn segment_order(path: &str, part: &str, inner: &str, problems: &mut Vec<String>) {
    let rank = |name: &str| SEGMENT_PARTS.iter().position(|p| *p == name);
    if let (Some(own), Some(used)) = (rank(part), rank(inner)) {
        if used > own {
            problems.push(format!("src/{path}: segment::{part} uses segment::{inner}, a part above it"));
        }
    }
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src/ reads") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("under src/").to_string_lossy().replace('\\', "/");
            out.push((relative, std::fs::read_to_string(&path).expect("a UTF-8 source file")));
        }
    }
}

#[test]
fn no_module_uses_a_higher_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    assert!(files.len() > 40, "read {} files of src/", files.len());
    let problems = violations(&files);
    assert!(problems.is_empty(), "the layering of docs/ARCHITECTURE.md is broken:\n{}", problems.join("\n"));
}

/// The test can fail: an upward `use`, in code, is caught; one in a comment
/// or a string is not code.
#[test]
fn an_upward_use_is_caught() {
    let file = |path: &str, text: &str| vec![(path.to_string(), text.to_string())];
    let upward = violations(&file("wal.rs", "use crate::error::Result;\nuse crate::index::Index;\n"));
    assert_eq!(upward.len(), 1, "{upward:?}");
    assert!(upward[0].contains("`wal` (log) uses `crate::index` (index)"), "{upward:?}");
    let inline = violations(&file("storage/fs.rs", "fn f() { let _ = crate::search::Query::All; }"));
    assert_eq!(inline.len(), 1, "{inline:?}");
    let grouped = violations(&file("segment/reader.rs", "use crate::{error::{Error, Result}, index::Index};"));
    assert_eq!(grouped.len(), 1, "{grouped:?}");
    // Names the crate root re-exports count as their module's.
    let mut with_lib = file("storage/mod.rs", "fn f() -> crate::Result<crate::Index> { todo!() }");
    with_lib.push(("lib.rs".into(), "mod x;\npub use error::{Error, Result};\npub use index::Index;".into()));
    let reexported = violations(&with_lib);
    assert_eq!(reexported.len(), 1, "{reexported:?}");
    assert!(reexported[0].contains("`crate::index`"), "{reexported:?}");
    assert!(
        violations(&file("wal.rs", "// see crate::index\n/* crate::server */ let s = \"crate::index\";")).is_empty()
    );
    assert!(violations(&file("index/mod.rs", "use crate::wal::WalWriter;")).is_empty());
    // `super::` chains that reach the crate root.
    assert_eq!(violations(&file("wal.rs", "use super::index::Index;")).len(), 1);
    assert_eq!(violations(&file("storage/fs.rs", "fn f() { super::super::search::eval(); }")).len(), 1);
    assert_eq!(violations(&file("segment/format.rs", "use super::super::server::Config;")).len(), 1);
    assert!(violations(&file("storage/fs.rs", "use super::{LockGuard, Storage};")).is_empty());
    assert!(violations(&file("index/flush.rs", "use super::Inner;\nuse super::super::wal;")).is_empty());
    assert!(violations(&file("wal.rs", "mod tests { use super::*; }")).is_empty());
    assert_eq!(violations(&file("wal.rs", "use crate as root;")).len(), 1);
    assert!(violations(&file("wal.rs", "pub(in crate::wal) fn f() {}\nuse crate::{self, error};")).is_empty());
    assert!(violations(&file("wal.rs", r##"const X: &[u8] = br#"crate::index"#;"##)).is_empty());
    let unknown = violations(&file("newthing.rs", ""));
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let inside = violations(&file("segment/format.rs", "use super::writer::SegmentWriter;"));
    assert_eq!(inside.len(), 1, "{inside:?}");
    assert!(
        violations(&file("segment/writer.rs", "use super::format::Section;\nuse crate::segment::reader;")).is_empty()
    );
    assert_eq!(violations(&file("segment/reader.rs", "use crate::segment::writer::Terms;")).len(), 1);
}
