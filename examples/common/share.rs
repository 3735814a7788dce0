//! `benches/compare`'s synthetic share for the examples: the harness's own
//! data module (which names the including example's `Res`) and its memory
//! readings, its documents as pushdex's, and a directory to build an index
//! in afresh.

use std::path::Path;

use pushdex::{Document, Index};

/// The synthetic share, from the comparison harness itself.
#[allow(dead_code)]
#[path = "../../benches/compare/src/data.rs"]
pub mod data;

/// What the kernel knows about this process (peak RSS, anonymous memory),
/// from the comparison harness itself.
#[allow(dead_code)]
#[path = "../../benches/compare/src/measure.rs"]
pub mod measure;

use data::{Doc, Share};

/// `doc` as pushdex's document, with the metas `keep` accepts.
pub fn document(doc: Doc, keep: impl Fn(&str) -> bool) -> Document {
    let mut d = Document::new(doc.uri).with_stamp(doc.stamp);
    for (name, value) in doc.metas.into_iter().filter(|(name, _)| keep(name)) {
        d = d.with_meta(name, value);
    }
    d
}

/// Makes `dir` ready for a new index: an index left there is removed;
/// anything else there is refused.
pub fn clear(dir: &Path) -> std::io::Result<()> {
    if dir.join("MANIFEST").exists() {
        std::fs::remove_dir_all(dir)?;
    }
    if dir.exists() && dir.read_dir()?.next().is_some() {
        return Err(std::io::Error::other(format!("{} holds something else", dir.display())));
    }
    Ok(())
}

/// Pushes the whole share, `batch` documents per `add_all` with every meta,
/// and no `sync`.
#[allow(dead_code)]
pub fn push_all(index: &Index, share: &Share, batch: u64) -> pushdex::Result<()> {
    let mut k = 0;
    while k < share.len() {
        let end = (k + batch).min(share.len());
        index.add_all((k..end).map(|i| document(share.doc(i), |_| true)))?;
        k = end;
    }
    Ok(())
}
