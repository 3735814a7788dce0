//! What the byte-level targets share: reading everything an index holds.

use std::sync::Arc;

use pushdex::storage::SimStorage;
use pushdex::{Document, Entry, EnumerationMode, Error, Index, Options};

/// The storage root every target uses; it only names files in errors.
pub const ROOT: &str = "/fuzz";

/// Bounds the work on one input: a forged log can hold many documents.
const MAX_ENTRIES: usize = 2_000;

/// Opens an index on `storage` with a 4 KiB memtable (flushes happen).
pub fn open(storage: &SimStorage) -> pushdex::Result<Index> {
    Index::open_with_storage(Arc::new(storage.clone()), Options::default().memtable_bytes(4096))
}

/// The name of an error's variant: what two runs over the same files must
/// agree on (the details may name offsets that legitimately differ).
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::InvalidUri { .. } => "InvalidUri",
        Error::InvalidInput { .. } => "InvalidInput",
        Error::NotFound { .. } => "NotFound",
        Error::SessionMismatch { .. } => "SessionMismatch",
        Error::Locked { .. } => "Locked",
        Error::Closed => "Closed",
        Error::Corrupt { .. } => "Corrupt",
        Error::Io(_) => "Io",
        Error::Poisoned { .. } => "Poisoned",
        _ => "other",
    }
}

/// One document as read: URI, stamp, serial, and what `get` returned (or
/// the kind of its error).
pub type DocRead = (String, String, u64, Result<Option<Document>, &'static str>);

/// Everything an index answers, as far as it answers without error.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Every document: URI, stamp, serial, and what `get` returns.
    pub docs: Vec<DocRead>,
    /// Every checkpoint: name, value, serial (pushdex's own ones too).
    pub checkpoints: Vec<(String, String, u64)>,
}

/// Reads every document and checkpoint of `index`. An error on the whole
/// listing is returned; errors on single documents are part of the answer.
///
/// Checks what holds whatever the files held: the recursive listing is in
/// strictly increasing byte order and `count` agrees with it, and walking
/// the folders one level at a time finds the same documents in the same
/// order.
pub fn snapshot(index: &Index) -> pushdex::Result<Snapshot> {
    let mut docs = Vec::new();
    for entry in index.enumerate("", EnumerationMode::RecursiveDocuments)?.take(MAX_ENTRIES) {
        let Entry::Document(status) = entry? else { panic!("a recursive document listing yielded a folder") };
        let got = index.get(&status.uri).map_err(|e| error_kind(&e));
        if let Some(prev) = docs.last().map(|d: &DocRead| &d.0) {
            assert!(*prev < status.uri, "enumeration out of order: {prev:?} then {:?}", status.uri);
        }
        docs.push((status.uri, status.stamp, status.serial.0, got));
    }
    if docs.len() < MAX_ENTRIES {
        let count = index.count("", EnumerationMode::RecursiveDocuments)?;
        assert_eq!(count, docs.len() as u64, "count disagrees with enumerate");
        let mut walked = Vec::new();
        walk(index, "", &mut walked)?;
        let listed: Vec<&str> = docs.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(walked, listed, "the folder walk and the recursive listing disagree");
    }
    let mut checkpoints: Vec<(String, String, u64)> =
        index.checkpoints()?.into_iter().map(|c| (c.name, c.value, c.serial.0)).collect();
    if let Some(c) = index.checkpoint("pushdex.job")? {
        checkpoints.push((c.name, c.value, c.serial.0));
    }
    Ok(Snapshot { docs, checkpoints })
}

/// The documents under `root`, folder by folder, depth first: in byte
/// order, since a folder stands where its documents would.
fn walk(index: &Index, root: &str, out: &mut Vec<String>) -> pushdex::Result<()> {
    for entry in index.enumerate(root, EnumerationMode::NotRecursiveAll)? {
        if out.len() > MAX_ENTRIES {
            return Ok(());
        }
        match entry? {
            Entry::Document(status) => out.push(status.uri),
            Entry::Folder(folder) => {
                assert!(folder.ends_with('/') && folder.len() > root.len(), "folder {folder:?} under {root:?}");
                walk(index, &folder, out)?;
            }
        }
    }
    Ok(())
}
