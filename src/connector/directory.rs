//! The built-in directory source: a directory tree on the local file system.
//!
//! Every regular file under the directory is one document:
//!
//! * **URI**: `file://` + the file's absolute path, as it is (no percent
//!   encoding), so `/srv/share/a b.txt` is `file:///srv/share/a b.txt`. The
//!   source's [root](DirectorySource::root) is `file://` + the canonical
//!   directory, and every listed URI lies under its folder prefix.
//! * **Stamp**: the size and the modification time in nanoseconds since the
//!   Unix epoch, both in lowercase hex: `"{size:x}-{mtime_ns:x}"` (a time
//!   before the epoch is written with a `-` sign: `"5--1f"`). Listing reads
//!   only metadata, never contents.
//! * **Metas**: `file_name` (the last path component), `file_size` (decimal
//!   bytes), `lastmodifieddate` (RFC 3339 UTC to the second; left out for a
//!   time before 1970 or after 9999) and `mime_type` (guessed from the file
//!   name extension, `application/octet-stream` when unknown).
//! * **Content**: a file of at most [`MAX_CONTENT_BYTES`] is read; valid
//!   UTF-8 becomes the text part `content` (full-text indexed), anything else
//!   the binary part `content`. A larger file gets the metas only, plus the
//!   meta `content_omitted` = `"larger than 1048576 bytes"`.
//! * **Extraction** (the `extract` feature): gzip files decompressed, HTML
//!   and XML as their visible text, the meta `title` from an HTML
//!   `<title>` or a Markdown `# ` heading; see [`DirectorySource`].
//!
//! A subdirectory that holds a pushdex index (a `LOCK` file and a
//! `MANIFEST` or `wal-<n>.log`) is skipped: an index never imports an index,
//! its own least of all (the default index directory of the command line
//! lies inside the default tree).
//!
//! The walk does not follow symbolic links (a link is neither listed nor
//! descended into), and lists only regular files: no FIFOs, sockets or
//! devices. Files whose path is not UTF-8, or whose URI would be refused
//! (longer than [`MAX_URI_BYTES`](crate::MAX_URI_BYTES)), are skipped.
//! Subdirectories and files that cannot be read are reported as skipped
//! ([`Source::list_partly`]): an import keeps their documents as the index
//! holds them rather than deleting them. Only a root directory that is gone
//! or unreadable fails the listing, so that an unmounted share does not
//! delete everything.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use walkdir::WalkDir;

use crate::connector::source::{Skip, Source, SourceItem};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::extract;
use crate::uri::{check_root, check_uri, folder_prefix};

/// Files up to this size (1 MiB) are read into a part; larger ones get metas
/// only.
///
/// A file of at most this many bytes becomes the text part `content` when it
/// is valid UTF-8, else the binary part `content`. A larger file has no part
/// and carries the meta `content_omitted` = `"larger than 1048576 bytes"`;
/// so does a gzip file whose contents are larger once decompressed.
pub const MAX_CONTENT_BYTES: u64 = 1 << 20;

/// Whether `dir` holds a pushdex index (the index's own rule:
/// `Index::open_existing` opens exactly these).
fn is_index_dir(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    crate::index::names_hold_index(entries.flatten().filter_map(|e| e.file_name().into_string().ok()))
}

/// The URI scheme prefix of every directory-source URI.
const SCHEME: &str = "file://";

/// The first second that RFC 3339 cannot write (year 10000): humantime
/// panics on it, and on any time before the epoch.
const RFC3339_END_SECS: u64 = 253_402_300_800;

/// A directory tree as a source.
///
/// Every regular file under the directory is a document with URI `file://` +
/// its absolute path and stamp `"{size:x}-{mtime_ns:x}"` (size and
/// modification time in nanoseconds since the Unix epoch, lowercase hex).
/// Its metas are `file_name`, `file_size` (decimal bytes),
/// `lastmodifieddate` (RFC 3339 UTC, to the second) and `mime_type` (guessed
/// from the extension), and `title` for an HTML page or a Markdown file
/// that has one; its content is the part `content` as described on
/// [`MAX_CONTENT_BYTES`]. Symbolic links are not followed; files whose path
/// is not UTF-8 or whose URI would be too long are skipped, and so are
/// subdirectories that cannot be read.
///
/// With the `extract` feature (on by default through `cli`), a gzip file
/// (by its magic bytes) is decompressed, to at most [`MAX_CONTENT_BYTES`],
/// and read by its name without `.gz`; a damaged one, or one whose
/// contents are not UTF-8, stays the binary part `content` as read. HTML
/// (`.html`, `.htm`, `.xhtml`, or an unknown extension and a text that
/// starts with `<!doctype html` or `<html`) and XML (`.xml`) become their
/// visible text (tags, scripts and styles dropped, entities decoded), as
/// the server converts HTML parts. The meta `title` is an HTML page's
/// `<title>` (whitespace collapsed, entities decoded) or a Markdown file's
/// (`.md`, `.markdown`) first `# ` heading. Without the feature gzip files
/// are binary, HTML and XML are text with their markup, and only Markdown
/// titles are read.
///
/// ```no_run
/// use pushdex::connector::DirectorySource;
/// # fn main() -> pushdex::Result<()> {
/// let source = DirectorySource::new("/srv/share")?;
/// assert_eq!(source.root(), "file:///srv/share");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DirectorySource {
    /// Canonical (absolute, no symlinks, no `.`/`..`) and UTF-8.
    dir: PathBuf,
    /// `file://` + `dir`, computed once.
    root: String,
}

impl DirectorySource {
    /// The tree at `dir`, made absolute and canonical (symbolic links in the
    /// path are resolved once, here).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `dir` does not exist, is not a directory,
    /// is not UTF-8 once canonical, or is so long that its root would be over
    /// [`MAX_URI_BYTES`](crate::MAX_URI_BYTES); [`Error::Io`] when it cannot
    /// be resolved for another reason (a parent that may not be searched).
    pub fn new(dir: impl AsRef<Path>) -> Result<DirectorySource> {
        let given = dir.as_ref();
        let dir = match std::fs::canonicalize(given) {
            Ok(dir) => dir,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                return Err(Error::invalid_input(format!("directory {} does not exist", given.display())));
            }
            Err(e) => return Err(Error::Io(e)),
        };
        if !std::fs::metadata(&dir)?.is_dir() {
            return Err(Error::invalid_input(format!("{} is not a directory", given.display())));
        }
        let Some(path) = dir.to_str() else {
            return Err(Error::invalid_input(format!(
                "directory {} is not valid UTF-8, so it cannot be a URI",
                dir.display()
            )));
        };
        if let Some(index) = dir.ancestors().find(|a| is_index_dir(a)) {
            let what =
                if index == dir { "is".to_string() } else { format!("lies inside {}, which is", index.display()) };
            return Err(Error::invalid_input(format!(
                "directory {} {what} a pushdex index: an index never imports an index",
                dir.display()
            )));
        }
        let root = format!("{SCHEME}{path}");
        if check_root(&root).is_err() {
            return Err(Error::invalid_input(format!(
                "directory {} is too long: its root {} bytes is over the maximum URI length of {}",
                dir.display(),
                root.len(),
                crate::MAX_URI_BYTES
            )));
        }
        Ok(DirectorySource { dir, root })
    }

    /// The absolute, canonical directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URI root of the tree: `file://` + the absolute directory, without a
    /// trailing slash (`file:///srv/share`), except for `/` itself, whose root
    /// is `file:///`. Either way [`folder_prefix`](crate::folder_prefix) of
    /// the root is a prefix of exactly the URIs this source lists.
    pub fn root(&self) -> String {
        self.root.clone()
    }

    /// The path of `uri`, which must be a file URI strictly under the root
    /// with plain components only: `..`, `.` or empty components could name
    /// a file outside the tree, and listing never produces them.
    fn path_of(&self, uri: &str) -> Result<PathBuf> {
        let prefix = folder_prefix(&self.root);
        let relative = match uri.strip_prefix(prefix.as_ref()) {
            Some(relative) if !relative.is_empty() => relative,
            _ => {
                return Err(Error::invalid_input(format!(
                    "URI {uri:?} is not under the directory source's root {:?}",
                    self.root
                )));
            }
        };
        if relative.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(Error::invalid_input(format!(
                "URI {uri:?} has an empty, \".\" or \"..\" path component; the directory source never lists one"
            )));
        }
        Ok(self.dir.join(relative))
    }

    /// Whether a walk error says the root itself is gone or unreadable.
    /// walkdir reports a directory's open error at that directory's depth,
    /// and an error while reading a directory's entries at depth + 1 with
    /// no path (no entry was read, so none can be named).
    fn is_root_error(err: &walkdir::Error) -> bool {
        err.depth() == 0 || (err.depth() == 1 && err.path().is_none())
    }
}

impl Source for DirectorySource {
    fn description(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    /// Walks the tree, calling `visit` for every regular file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the root directory is gone, is no longer a
    /// directory, or cannot be read; any error `visit` returns. Unreadable
    /// subdirectories and files are skipped.
    fn list(&self, visit: &mut dyn FnMut(SourceItem) -> Result<()>) -> Result<()> {
        self.list_partly(visit, &mut |_| {})
    }

    /// Everything below the root that is not listed is reported, with why:
    /// an unreadable directory or file (its documents stay as the index
    /// holds them), a name that is not UTF-8 or a URI that would be too
    /// long, a symbolic link, a file that is not a regular file, a pushdex
    /// index, a file that vanished while the tree was read.
    fn list_partly(
        &self,
        visit: &mut dyn FnMut(SourceItem) -> Result<()>,
        skipped: &mut dyn FnMut(Skip),
    ) -> Result<()> {
        let mut walk = WalkDir::new(&self.dir).follow_links(false).into_iter();
        while let Some(entry) = walk.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) if Self::is_root_error(&err) => {
                    return Err(Error::Io(err.into_io_error().unwrap_or_else(|| {
                        io::Error::other(format!("cannot read directory {}", self.dir.display()))
                    })));
                }
                Err(err) => {
                    let reason =
                        format!("cannot be read: {}", err.io_error().map_or(err.to_string(), |e| e.to_string()));
                    skipped(match err.path().map(|p| (p, p.to_str())) {
                        Some((_, Some(path))) => Skip::unreadable(format!("{SCHEME}{path}"), reason),
                        Some((path, None)) => Skip::new(path.display().to_string(), reason),
                        None => Skip::new(self.dir.display().to_string(), reason),
                    });
                    continue;
                }
            };
            let file_type = entry.file_type();
            if entry.depth() == 0 {
                // walkdir follows a root that became a symlink, and yields a
                // root that became a file as a file: refuse rather than list
                // nothing, which would delete every document of the root.
                if !file_type.is_dir() && !std::fs::metadata(entry.path())?.is_dir() {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is no longer a directory", self.dir.display()),
                    )));
                }
                continue;
            }
            let shown = || entry.path().display().to_string();
            let Some(path) = entry.path().to_str() else {
                // Nothing under a name that is not UTF-8 can be a URI: one
                // report for a whole directory.
                if file_type.is_dir() {
                    walk.skip_current_dir();
                }
                skipped(Skip::new(shown(), "name is not UTF-8: it cannot be a URI"));
                continue;
            };
            if file_type.is_dir() {
                // An index never imports an index (its own, when it lies
                // inside the tree, changes with every run).
                if is_index_dir(entry.path()) {
                    walk.skip_current_dir();
                    skipped(Skip::new(shown(), "a pushdex index"));
                }
                continue;
            }
            if file_type.is_symlink() {
                skipped(Skip::new(shown(), "symbolic link: not followed"));
                continue;
            }
            if !file_type.is_file() {
                skipped(Skip::new(shown(), "not a regular file (a FIFO, socket or device)"));
                continue;
            }
            let uri = format!("{SCHEME}{path}");
            if check_uri(&uri).is_err() {
                skipped(Skip::new(shown(), format!("URI too long: over {} bytes", crate::MAX_URI_BYTES)));
                continue;
            }
            // A file removed since its directory was read is not listed
            // (and its document deleted); one that cannot be read is kept.
            let stamp = match entry.metadata().map_err(io::Error::from).and_then(|m| stamp_of(&m)) {
                Ok(stamp) => stamp,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    skipped(Skip::new(shown(), "vanished while the tree was read"));
                    continue;
                }
                Err(e) => {
                    skipped(Skip::unreadable(uri, format!("cannot be read: {e}")));
                    continue;
                }
            };
            visit(SourceItem { uri, stamp })?;
        }
        Ok(())
    }

    /// Reads the file of `item` as it is now (metas and content as described
    /// on [`DirectorySource`]), with a stamp taken from its metadata just
    /// before its content is read:
    /// a file that changes while it is read then has a stamp older than its
    /// content, and the next import fetches it again.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `item.uri` is not a URI under this
    /// source's root; [`Error::Io`] when the file cannot be read. A file that
    /// is gone or is no longer a regular file is `Ok(None)`.
    fn fetch(&self, item: &SourceItem) -> Result<Option<Document>> {
        let path = self.path_of(&item.uri)?;
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => return Err(Error::Io(e)),
        };
        if !metadata.is_file() {
            return Ok(None);
        }
        let size = metadata.len();
        let modified = metadata.modified()?;
        let file_name = item.uri.rsplit('/').next().unwrap_or_default();
        let mut doc = Document::new(item.uri.clone())
            .with_stamp(stamp_of(&metadata)?)
            .with_meta("file_name", file_name)
            .with_meta("file_size", size.to_string());
        if let Some(date) = rfc3339(modified) {
            doc = doc.with_meta("lastmodifieddate", date);
        }
        doc = doc.with_meta("mime_type", mime_guess::from_path(&path).first_or_octet_stream().essence_str());
        if size > MAX_CONTENT_BYTES {
            return Ok(Some(omitted(doc)));
        }
        let Some(bytes) = read_small(&path)? else { return Ok(None) };
        if bytes.len() as u64 > MAX_CONTENT_BYTES {
            // It grew since the stat: its stamp will differ next time.
            return Ok(Some(omitted(doc)));
        }
        Ok(Some(with_content(doc, file_name, bytes)))
    }
}

/// What a file's text is, by the name it has once decompressed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `.html`, `.htm`, `.xhtml`, or an unknown extension and a start that
    /// says HTML.
    Html,
    /// `.xml`.
    Xml,
    /// `.md`, `.markdown`.
    Markdown,
    /// Anything else: the text as it is.
    Plain,
}

impl Kind {
    fn of(name: &str, text: &str) -> Kind {
        let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        match extension.as_str() {
            "html" | "htm" | "xhtml" => Kind::Html,
            "xml" => Kind::Xml,
            "md" | "markdown" => Kind::Markdown,
            _ if mime_guess::from_path(name).first().is_none() && extract::looks_like_html(text) => Kind::Html,
            _ => Kind::Plain,
        }
    }
}

/// `doc` with the part `content` made of a file's bytes (and the meta
/// `title` where its text has one), as [`DirectorySource`] describes.
fn with_content(doc: Document, file_name: &str, bytes: Vec<u8>) -> Document {
    #[cfg(feature = "extract")]
    if extract::is_gzip(&bytes) {
        match extract::gunzip(&bytes, MAX_CONTENT_BYTES) {
            extract::Gunzip::Done(plain) => {
                if let Ok(text) = String::from_utf8(plain) {
                    return with_text(doc, inner_name(file_name), text);
                }
            }
            extract::Gunzip::TooLarge => return omitted(doc),
            // Kept as it is, as a file that is not gzip at all would be.
            extract::Gunzip::Damaged => {}
        }
        return doc.with_part("content", bytes);
    }
    match String::from_utf8(bytes) {
        Ok(text) => with_text(doc, file_name, text),
        Err(e) => doc.with_part("content", e.into_bytes()),
    }
}

/// The name a gzip file's contents go by: `notes.txt.gz` holds `notes.txt`.
#[cfg(feature = "extract")]
fn inner_name(file_name: &str) -> &str {
    let cut = file_name.len().saturating_sub(3);
    match file_name.get(cut..) {
        Some(suffix) if suffix.eq_ignore_ascii_case(".gz") && cut > 0 => &file_name[..cut],
        _ => file_name,
    }
}

/// `doc` with the text part `content` (HTML and XML as their visible text)
/// and, for HTML and Markdown, the meta `title` when the text has one.
fn with_text(doc: Document, name: &str, text: String) -> Document {
    let (title, text) = match Kind::of(name, &text) {
        #[cfg(feature = "extract")]
        Kind::Html => (extract::html_title(&text), extract::visible_text(&text)),
        #[cfg(feature = "extract")]
        Kind::Xml => (None, extract::xml_visible_text(&text)),
        Kind::Markdown => (extract::markdown_title(&text), text),
        _ => (None, text),
    };
    let doc = doc.with_text("content", text);
    match title {
        Some(title) => doc.with_meta("title", title),
        None => doc,
    }
}

/// `"{size:x}-{mtime_ns:x}"`, with a `-` sign before a time before the epoch.
fn stamp_of(metadata: &Metadata) -> io::Result<String> {
    let size = metadata.len();
    Ok(match metadata.modified()?.duration_since(UNIX_EPOCH) {
        Ok(since) => format!("{size:x}-{:x}", since.as_nanos()),
        Err(before) => format!("{size:x}--{:x}", before.duration().as_nanos()),
    })
}

/// The RFC 3339 form of `time`, when humantime can write it.
fn rfc3339(time: SystemTime) -> Option<String> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    (since.as_secs() < RFC3339_END_SECS).then(|| humantime::format_rfc3339_seconds(time).to_string())
}

/// Adds the meta that says why a document has no content part.
fn omitted(doc: Document) -> Document {
    doc.with_meta("content_omitted", format!("larger than {MAX_CONTENT_BYTES} bytes"))
}

/// Whether an error means the path no longer names a file: removed, or a
/// parent replaced by a file (`ENOTDIR`).
fn is_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// Reads at most [`MAX_CONTENT_BYTES`] + 1 bytes of the regular file at
/// `path`; `None` when it is gone or is no longer a regular file.
///
/// The file was a regular file when it was stat'ed, but may have been
/// replaced since: on Unix it is opened without following a symlink and
/// without blocking (opening a FIFO for reading would otherwise wait for a
/// writer forever), and the open handle is checked again.
fn read_small(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut options = File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if is_gone(&e) => return Ok(None),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None), // now a symlink
        Err(e) => return Err(Error::Io(e)),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(None);
    }
    let capacity = metadata.len().min(MAX_CONTENT_BYTES + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    file.take(MAX_CONTENT_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::time::Duration;

    use super::*;

    /// 2023-11-14T22:13:20.123456789Z, and a second later time.
    const T1_NS: u64 = 1_700_000_000_123_456_789;
    const T2_NS: u64 = 1_700_000_000_987_654_321;

    fn at(ns: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(ns)
    }

    /// Writes `bytes` to `path` (creating parents) and sets its mtime.
    fn write(path: &Path, bytes: &[u8], mtime_ns: u64) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
        File::options().write(true).open(path).unwrap().set_modified(at(mtime_ns)).unwrap();
    }

    fn listing(source: &DirectorySource) -> BTreeMap<String, String> {
        let mut items = BTreeMap::new();
        source
            .list(&mut |item| {
                let uri = item.uri.clone();
                assert!(items.insert(item.uri, item.stamp).is_none(), "{uri} listed twice");
                Ok(())
            })
            .unwrap();
        items
    }

    fn uri(path: &Path) -> String {
        format!("file://{}", path.to_str().unwrap())
    }

    fn item(uri: String) -> SourceItem {
        SourceItem { uri, stamp: String::new() }
    }

    #[test]
    fn lists_every_regular_file_once_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let top = fs::canonicalize(tmp.path()).unwrap();
        write(&top.join("a.txt"), b"hello", T1_NS);
        write(&top.join("sub/b.bin"), &[0, 1, 2], T2_NS);
        write(&top.join("sub/deeper/still/c"), b"", T1_NS);
        write(&top.join("name with spaces é.md"), b"x", T1_NS);
        fs::create_dir_all(top.join("empty/also-empty")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(&outside.path().join("target.txt"), b"outside", T1_NS);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.path(), top.join("link-to-dir")).unwrap();
            std::os::unix::fs::symlink(outside.path().join("target.txt"), top.join("link-to-file")).unwrap();
            std::os::unix::fs::symlink(top.join("sub"), top.join("sub/deeper/loop")).unwrap();
        }

        let source = DirectorySource::new(tmp.path()).unwrap();
        assert_eq!(source.dir(), top);
        let expected: BTreeMap<String, String> = [
            (uri(&top.join("a.txt")), "5-17979cfe3d85cd15"),
            (uri(&top.join("sub/b.bin")), "3-17979cfe710868b1"),
            (uri(&top.join("sub/deeper/still/c")), "0-17979cfe3d85cd15"),
            (uri(&top.join("name with spaces é.md")), "1-17979cfe3d85cd15"),
        ]
        .into_iter()
        .map(|(u, s)| (u, s.to_string()))
        .collect();
        assert_eq!(listing(&source), expected);
        assert!(expected.keys().all(|u| u.starts_with(&format!("file://{}/", top.to_str().unwrap()))));
    }

    #[test]
    fn a_change_of_mtime_or_size_changes_the_stamp() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.txt");
        let source = DirectorySource::new(tmp.path()).unwrap();
        write(&path, b"12345", T1_NS);
        let first = listing(&source);
        assert_eq!(listing(&source), first, "an unchanged file keeps its stamp");
        write(&path, b"abcde", T2_NS);
        let second = listing(&source);
        write(&path, b"abcdef", T2_NS);
        let third = listing(&source);
        assert_eq!(first.len(), 1);
        assert_ne!(first, second, "same size, later mtime");
        assert_ne!(second, third, "same mtime, other size");
        assert_eq!(third.values().next().unwrap(), "6-17979cfe710868b1");
    }

    #[test]
    fn root_covers_exactly_the_listed_uris() {
        let tmp = tempfile::tempdir().unwrap();
        let top = fs::canonicalize(tmp.path()).unwrap();
        // `a` and `ab`: a root without its folder slash would cover both.
        write(&top.join("a/in.txt"), b"in", T1_NS);
        write(&top.join("ab/out.txt"), b"out", T1_NS);
        let source = DirectorySource::new(top.join("a")).unwrap();
        let root = source.root();
        assert_eq!(root, format!("file://{}/a", top.to_str().unwrap()));
        assert!(!root.ends_with('/'));
        let prefix = folder_prefix(&root);
        let listed = listing(&source);
        assert_eq!(listed.len(), 1);
        assert!(listed.keys().all(|u| u.starts_with(prefix.as_ref())));
        assert!(!uri(&top.join("ab/out.txt")).starts_with(prefix.as_ref()));

        let slash = DirectorySource::new("/").unwrap();
        assert_eq!(slash.root(), "file:///");
        assert_eq!(folder_prefix(&slash.root()), "file:///");
        assert_eq!(slash.path_of(&uri(&top.join("a/in.txt"))).unwrap(), top.join("a/in.txt"));
        // A trailing slash or a `..` in the argument is canonicalized away.
        let again = DirectorySource::new(top.join("ab/../a/")).unwrap();
        assert_eq!(again.root(), root);
    }

    #[test]
    fn fetch_reads_a_text_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("dir/notes.txt"), "héllo wörld".as_bytes(), T1_NS);
        let source = DirectorySource::new(tmp.path()).unwrap();
        let (uri, stamp) = listing(&source).into_iter().next().unwrap();
        let doc = source.fetch(&item(uri.clone())).unwrap().unwrap();
        assert_eq!(doc.uri(), uri);
        assert_eq!(doc.stamp(), stamp);
        assert_eq!(doc.meta("file_name"), Some("notes.txt"));
        assert_eq!(doc.meta("file_size"), Some("13"));
        assert_eq!(doc.meta("lastmodifieddate"), Some("2023-11-14T22:13:20Z"));
        assert_eq!(doc.meta("mime_type"), Some("text/plain"));
        assert_eq!(doc.meta("content_omitted"), None);
        assert_eq!(doc.text("content"), Some("héllo wörld"));
        assert_eq!(doc.parts().count(), 1);
        doc.check().unwrap();
    }

    #[test]
    fn fetch_keeps_a_non_utf8_file_as_a_binary_part() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = [0x89, b'P', b'N', b'G', 0xff, 0xfe, 0];
        write(&tmp.path().join("image.png"), &bytes, T1_NS);
        write(&tmp.path().join("unknown.zzqx"), &[0xc3], T1_NS);
        let source = DirectorySource::new(tmp.path()).unwrap();
        let png = source.fetch(&item(uri(&source.dir().join("image.png")))).unwrap().unwrap();
        assert_eq!(png.parts().collect::<Vec<_>>(), vec![("content", false, &bytes[..])]);
        assert_eq!(png.text("content"), None);
        assert_eq!(png.meta("mime_type"), Some("image/png"));
        let unknown = source.fetch(&item(uri(&source.dir().join("unknown.zzqx")))).unwrap().unwrap();
        assert_eq!(unknown.meta("mime_type"), Some("application/octet-stream"));
        assert_eq!(unknown.part("content"), Some(&[0xc3][..]));
    }

    #[test]
    fn fetch_reads_up_to_the_limit_and_omits_larger_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let limit = usize::try_from(MAX_CONTENT_BYTES).unwrap();
        write(&tmp.path().join("at-limit.txt"), &vec![b'a'; limit], T1_NS);
        write(&tmp.path().join("over-limit.txt"), &vec![b'a'; limit + 1], T1_NS);
        let source = DirectorySource::new(tmp.path()).unwrap();
        let listed = listing(&source);

        let at = source.fetch(&item(uri(&source.dir().join("at-limit.txt")))).unwrap().unwrap();
        assert_eq!(at.text("content").map(str::len), Some(limit));
        assert_eq!(at.meta("content_omitted"), None);

        let over_uri = uri(&source.dir().join("over-limit.txt"));
        let over = source.fetch(&item(over_uri.clone())).unwrap().unwrap();
        assert_eq!(over.parts().count(), 0);
        assert_eq!(over.meta("content_omitted"), Some("larger than 1048576 bytes"));
        assert_eq!(over.meta("file_size"), Some("1048577"));
        assert_eq!(over.meta("file_name"), Some("over-limit.txt"));
        assert_eq!(Some(over.stamp()), listed.get(&over_uri).map(String::as_str));
    }

    /// Fetches the file `name` of a fresh tree that holds only it.
    fn fetch_one(name: &str, bytes: &[u8]) -> Document {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join(name), bytes, T1_NS);
        let source = DirectorySource::new(tmp.path()).unwrap();
        let doc = source.fetch(&item(uri(&source.dir().join(name)))).unwrap().unwrap();
        doc.check().unwrap();
        doc
    }

    #[cfg(feature = "extract")]
    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    const PAGE: &str = "<!DOCTYPE html><html><head><title>  The   Fish &amp; Chips\n page </title>\
                        <style>body { color: red }</style><script>var tracker = 1;</script></head>\
                        <body><h1>Menu</h1><p>Cod &amp; <em>chips</em></p></body></html>";

    /// The words of a text, whatever lines the extraction laid it out in.
    fn words(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[cfg(feature = "extract")]
    #[test]
    fn fetch_decompresses_gzip_text() {
        let doc = fetch_one("notes.txt.gz", &gz("héllo from inside".as_bytes()));
        assert_eq!(doc.text("content"), Some("héllo from inside"));
        assert_eq!(doc.meta("file_name"), Some("notes.txt.gz"));
        assert_eq!(doc.meta("mime_type"), Some("application/gzip"));
        assert_eq!(doc.meta("content_omitted"), None);
        // By the magic bytes, whatever the name.
        let doc = fetch_one("archive", &gz(b"plain words"));
        assert_eq!(doc.text("content"), Some("plain words"));
        // Decompressed but not UTF-8: the file as read, a binary part.
        let binary = gz(&[0xff, 0xfe, 0x00]);
        assert_eq!(fetch_one("data.bin.gz", &binary).part("content"), Some(&binary[..]));
    }

    #[cfg(feature = "extract")]
    #[test]
    fn fetch_decompresses_gzip_html_by_its_inner_name() {
        let doc = fetch_one("page.HTML.gz", &gz(PAGE.as_bytes()));
        assert_eq!(doc.meta("title"), Some("The Fish & Chips page"));
        let text = doc.text("content").unwrap();
        assert!(words(text).contains("Menu Cod & chips"), "{text:?}");
        assert!(!text.contains('<') && !text.contains("tracker"), "{text:?}");
    }

    #[cfg(feature = "extract")]
    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let limit = usize::try_from(MAX_CONTENT_BYTES).unwrap();
        // 64 MiB of zeros compress to about 64 KiB.
        let bomb = gz(&vec![b'a'; 64 << 20]);
        assert!(bomb.len() < limit);
        let doc = fetch_one("bomb.txt.gz", &bomb);
        assert_eq!(doc.parts().count(), 0);
        assert_eq!(doc.meta("content_omitted"), Some("larger than 1048576 bytes"));
        assert_eq!(doc.meta("file_size"), Some(bomb.len().to_string().as_str()));
        // Exactly the limit decompressed is kept; one byte more is not.
        assert_eq!(fetch_one("at.txt.gz", &gz(&vec![b'a'; limit])).text("content").map(str::len), Some(limit));
        assert_eq!(fetch_one("over.txt.gz", &gz(&vec![b'a'; limit + 1])).parts().count(), 0);
    }

    #[cfg(feature = "extract")]
    #[test]
    fn a_damaged_gzip_is_kept_as_a_binary_part() {
        let good = gz(b"some text that will not survive");
        for damaged in [good[..good.len() / 2].to_vec(), [&good[..12], &[0xff; 8][..], &good[20..]].concat()] {
            let doc = fetch_one("notes.txt.gz", &damaged);
            assert_eq!(doc.parts().collect::<Vec<_>>(), vec![("content", false, &damaged[..])]);
            assert_eq!(doc.meta("content_omitted"), None);
        }
        // A `.gz` name on text that is not gzip: the text.
        assert_eq!(fetch_one("fake.txt.gz", b"not compressed").text("content"), Some("not compressed"));
    }

    #[cfg(feature = "extract")]
    #[test]
    fn fetch_reads_html_as_its_visible_text_and_title() {
        for name in ["page.html", "page.htm", "page.xhtml"] {
            let doc = fetch_one(name, PAGE.as_bytes());
            assert_eq!(doc.meta("title"), Some("The Fish & Chips page"), "{name}");
            assert_eq!(doc.meta("mime_type").map(|m| m.contains("html")), Some(true), "{name}");
            let text = doc.text("content").unwrap();
            assert!(words(text).contains("Menu Cod & chips"), "{name}: {text:?}");
            for hidden in ["<", "color", "tracker", "DOCTYPE"] {
                assert!(!text.contains(hidden), "{name}: {hidden} in {text:?}");
            }
        }
        // No title element: no title meta.
        assert_eq!(fetch_one("bare.html", b"<p>just text</p>").meta("title"), None);
    }

    #[cfg(feature = "extract")]
    #[test]
    fn fetch_reads_xml_as_its_text() {
        let xml = "<?xml version=\"1.0\"?>\n<notes><note lang=\"en\"><to>Tove</to>\
                   <body><![CDATA[Don't forget me & the weekend]]></body></note></notes>";
        let doc = fetch_one("notes.xml", xml.as_bytes());
        let text = doc.text("content").unwrap();
        assert!(words(text).contains("Tove"), "{text:?}");
        assert!(text.contains("Don't forget me & the weekend"), "{text:?}");
        assert!(!text.contains('<') && !text.contains("lang"), "{text:?}");
        assert_eq!(doc.meta("title"), None);
    }

    #[cfg(feature = "extract")]
    #[test]
    fn html_is_sniffed_only_for_unknown_extensions() {
        let doc = fetch_one("index", PAGE.as_bytes());
        assert_eq!(doc.meta("title"), Some("The Fish & Chips page"));
        assert!(!doc.text("content").unwrap().contains('<'));
        let doc = fetch_one("README.zzqx", b"  <html lang=en><title>T</title><p>x</p></html>");
        assert_eq!(doc.meta("title"), Some("T"));
        // A known text type keeps its markup: a .txt about HTML is not HTML.
        let doc = fetch_one("about.txt", PAGE.as_bytes());
        assert_eq!(doc.text("content"), Some(PAGE));
        assert_eq!(doc.meta("title"), None);
        // Not HTML at the start: plain text.
        assert_eq!(fetch_one("notes", b"see <html> later").text("content"), Some("see <html> later"));
    }

    #[test]
    fn fetch_takes_a_markdown_title_from_the_first_heading() {
        let md = "Some intro\n\n```sh\n# a comment\n```\n\n#  Release   notes #\n\n# Second\n";
        let doc = fetch_one("NOTES.md", md.as_bytes());
        assert_eq!(doc.meta("title"), Some("Release notes"));
        assert_eq!(doc.text("content"), Some(md), "Markdown is indexed as it is");
        assert_eq!(fetch_one("plain.md", b"no heading\n## lower").meta("title"), None);
        // Other text files have no title.
        assert_eq!(fetch_one("plain.txt", b"# not markdown").meta("title"), None);
    }

    #[test]
    fn fetch_of_a_gone_or_replaced_file_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("gone.txt"), b"x", T1_NS);
        write(&tmp.path().join("now-a-dir/x"), b"x", T1_NS);
        write(&tmp.path().join("parent-now-a-file"), b"x", T1_NS);
        let source = DirectorySource::new(tmp.path()).unwrap();
        let gone = item(uri(&source.dir().join("gone.txt")));
        assert!(source.fetch(&gone).unwrap().is_some());
        fs::remove_file(source.dir().join("gone.txt")).unwrap();
        assert!(source.fetch(&gone).unwrap().is_none());
        assert!(source.fetch(&item(uri(&source.dir().join("now-a-dir")))).unwrap().is_none());
        assert!(source.fetch(&item(uri(&source.dir().join("parent-now-a-file/x")))).unwrap().is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(source.dir().join("now-a-dir/x"), source.dir().join("gone.txt")).unwrap();
            assert!(source.fetch(&gone).unwrap().is_none(), "a symlink is not fetched");
        }
    }

    #[test]
    fn fetch_refuses_uris_outside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("src")).unwrap();
        write(&tmp.path().join("secret"), b"x", T1_NS);
        let source = DirectorySource::new(tmp.path().join("src")).unwrap();
        let root = source.root();
        for bad in [
            root.clone(),
            format!("{root}/"),
            format!("{root}-sibling/x"),
            format!("{root}/../secret"),
            format!("{root}/./x"),
            format!("{root}//x"),
            "file:///etc/passwd".to_string(),
            "http://example.com/x".to_string(),
        ] {
            assert!(matches!(source.fetch(&item(bad.clone())), Err(Error::InvalidInput { .. })), "{bad}");
        }
    }

    #[test]
    fn new_refuses_what_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("file"), b"x", T1_NS);
        for bad in [tmp.path().join("file"), tmp.path().join("missing"), tmp.path().join("file/below")] {
            assert!(matches!(DirectorySource::new(&bad), Err(Error::InvalidInput { .. })), "{}", bad.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let latin1 = tmp.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
            fs::create_dir(&latin1).unwrap();
            assert!(matches!(DirectorySource::new(&latin1), Err(Error::InvalidInput { .. })));
        }
    }

    #[cfg(unix)]
    #[test]
    fn skips_non_utf8_names_and_over_long_uris() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let top = fs::canonicalize(tmp.path()).unwrap();
        write(&top.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")), b"x", T1_NS);
        write(&top.join(std::ffi::OsStr::from_bytes(b"bad\xff/inside.txt")), b"x", T1_NS);
        // A directory whose path leaves room for names of 1 to 254 bytes
        // around the URI limit (file:// + path), below Linux's PATH_MAX.
        let target = crate::MAX_URI_BYTES - SCHEME.len() - 1 - 100;
        let mut deep = top.clone();
        while deep.as_os_str().len() < target {
            deep.push("d".repeat((target - deep.as_os_str().len() - 1).clamp(1, 200)));
        }
        let room = crate::MAX_URI_BYTES - SCHEME.len() - deep.as_os_str().len() - 1;
        let fits = deep.join("f".repeat(room));
        let too_long = deep.join("g".repeat(room + 1));
        write(&fits, b"x", T1_NS);
        write(&too_long, b"x", T1_NS);
        assert_eq!(uri(&fits).len(), crate::MAX_URI_BYTES);

        let listed = listing(&DirectorySource::new(&top).unwrap());
        assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), vec![uri(&fits)]);

        // Each is reported once (the directory, not every file inside),
        // with why, and nothing is kept for it.
        let skips = skips(&DirectorySource::new(&top).unwrap());
        let mut kinds: Vec<(&str, bool)> = skips.iter().map(|s| (s.kind(), s.keep.is_some())).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [("URI too long", false), ("name is not UTF-8", false), ("name is not UTF-8", false)],
            "{skips:?}"
        );
        assert!(skips.iter().any(|s| s.what.ends_with("bad\u{fffd}")), "{skips:?}");
    }

    fn skips(source: &DirectorySource) -> Vec<Skip> {
        let mut skips = Vec::new();
        source.list_partly(&mut |_| Ok(()), &mut |skip| skips.push(skip)).unwrap();
        skips
    }

    #[cfg(unix)]
    #[test]
    fn links_special_files_and_indexes_are_reported_as_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let top = fs::canonicalize(tmp.path()).unwrap();
        write(&top.join("a.txt"), b"x", T1_NS);
        std::os::unix::fs::symlink(top.join("a.txt"), top.join("link")).unwrap();
        std::os::unix::net::UnixListener::bind(top.join("socket")).unwrap();
        let index = crate::Index::open(top.join("idx")).unwrap();
        let skips = skips(&DirectorySource::new(&top).unwrap());
        drop(index);
        let mut got: Vec<(String, &str)> =
            skips.iter().map(|s| (s.what.rsplit('/').next().unwrap().to_string(), s.kind())).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("idx".to_string(), "a pushdex index"),
                ("link".to_string(), "symbolic link"),
                ("socket".to_string(), "not a regular file (a FIFO, socket or device)"),
            ]
        );
        assert!(skips.iter().all(|s| s.keep.is_none()));
    }

    #[test]
    fn a_gone_or_replaced_root_fails_the_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("share");
        write(&dir.join("a"), b"x", T1_NS);
        let source = DirectorySource::new(&dir).unwrap();
        assert_eq!(listing(&source).len(), 1);
        fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(source.list(&mut |_| Ok(())), Err(Error::Io(_))));
        write(&dir, b"now a file", T1_NS);
        assert!(matches!(source.list(&mut |_| Ok(())), Err(Error::Io(_))));
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_subdirectory_is_skipped() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("ok.txt"), b"x", T1_NS);
        write(&tmp.path().join("locked/hidden.txt"), b"x", T1_NS);
        let locked = tmp.path().join("locked");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let source = DirectorySource::new(tmp.path()).unwrap();
        let result = std::panic::catch_unwind(|| listing(&source));
        let mut skipped = Vec::new();
        source.list_partly(&mut |_| Ok(()), &mut |skip| skipped.extend(skip.keep)).unwrap();
        let enforced = fs::read_dir(&locked).is_err(); // root reads it anyway
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        let listed = result.unwrap();
        assert!(listed.contains_key(&uri(&source.dir().join("ok.txt"))));
        assert_eq!(listed.len(), if enforced { 1 } else { 2 });
        // What could not be read is reported, so that imports keep it.
        let want = if enforced { vec![uri(&source.dir().join("locked"))] } else { vec![] };
        assert_eq!(skipped, want);

        // The root itself unreadable is an error, not an empty listing.
        fs::set_permissions(source.dir(), fs::Permissions::from_mode(0o000)).unwrap();
        let result = source.list(&mut |_| Ok(()));
        fs::set_permissions(source.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        if enforced {
            assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
        }
    }

    #[test]
    fn an_error_of_visit_stops_the_listing_and_is_passed_on() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            write(&tmp.path().join(name), b"x", T1_NS);
        }
        let source = DirectorySource::new(tmp.path()).unwrap();
        let mut calls = 0;
        let result = source.list(&mut |_| {
            calls += 1;
            Err(Error::NotFound { uri: "stop".into() })
        });
        assert!(matches!(result, Err(Error::NotFound { uri }) if uri == "stop"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn stamps_and_dates_outside_the_usual_range() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old");
        fs::write(&path, b"12345").unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_modified(UNIX_EPOCH - Duration::from_secs(31)).unwrap();
        assert_eq!(stamp_of(&fs::metadata(&path).unwrap()).unwrap(), "5--737be7600");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(RFC3339_END_SECS)), None);
        assert_eq!(rfc3339(UNIX_EPOCH).as_deref(), Some("1970-01-01T00:00:00Z"));
        let source = DirectorySource::new(tmp.path()).unwrap();
        let doc = source.fetch(&item(uri(&source.dir().join("old")))).unwrap().unwrap();
        assert_eq!(doc.meta("lastmodifieddate"), None);
        assert_eq!(doc.stamp(), "5--737be7600");
    }
}
