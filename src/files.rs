//! The names of an index's files: one type, one spelling, one parser.
//!
//! An index directory holds `LOCK`, `MANIFEST` (and `MANIFEST.tmp` while a
//! commit writes it), log files `wal-<g>.log`, segments `seg-<g>.pdx` and
//! deletion bitmaps `del-<g>.bm`, where `<g>` is a file generation drawn
//! from one counter (see `docs/ARCHITECTURE.md`). The log, the manifest,
//! flush, compaction, open and the storage all name and recognise files
//! through [`FileName`], so that a name one of them writes is a name every
//! other one reads the same way.

use std::fmt;

/// The directory lock, held by the open [`Index`](crate::Index).
pub const LOCK: &str = "LOCK";
/// The commit point.
pub const MANIFEST: &str = "MANIFEST";
/// Where a new manifest is written before it is renamed over [`MANIFEST`].
pub const MANIFEST_TMP: &str = "MANIFEST.tmp";

/// A file of an index directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileName {
    /// [`LOCK`].
    Lock,
    /// [`MANIFEST`].
    Manifest,
    /// [`MANIFEST_TMP`].
    ManifestTmp,
    /// The operation log of generation `g`: `wal-<g>.log`.
    Log(u64),
    /// A segment: `seg-<g>.pdx`.
    Segment(u64),
    /// A deletion bitmap: `del-<g>.bm`.
    Bitmap(u64),
}

impl FileName {
    /// The file `name` names, or `None` for a name the index does not use.
    ///
    /// Only the canonical spelling of a generation is accepted (decimal, no
    /// sign, no leading zero), so that two different files can never claim
    /// the same generation.
    pub fn parse(name: &str) -> Option<FileName> {
        match name {
            LOCK => return Some(FileName::Lock),
            MANIFEST => return Some(FileName::Manifest),
            MANIFEST_TMP => return Some(FileName::ManifestTmp),
            _ => {}
        }
        let numbered = |prefix: &str, suffix: &str| gen_of(name.strip_prefix(prefix)?.strip_suffix(suffix)?);
        if let Some(gen) = numbered("wal-", ".log") {
            Some(FileName::Log(gen))
        } else if let Some(gen) = numbered("seg-", ".pdx") {
            Some(FileName::Segment(gen))
        } else {
            numbered("del-", ".bm").map(FileName::Bitmap)
        }
    }

    /// The file's generation, for logs, segments and bitmaps.
    pub fn gen(self) -> Option<u64> {
        match self {
            FileName::Log(gen) | FileName::Segment(gen) | FileName::Bitmap(gen) => Some(gen),
            FileName::Lock | FileName::Manifest | FileName::ManifestTmp => None,
        }
    }

    /// Whether a commit's cleanup may remove the file when no manifest
    /// names it: segments, bitmaps and a leftover `MANIFEST.tmp`.
    pub fn is_committed_data(self) -> bool {
        matches!(self, FileName::Segment(_) | FileName::Bitmap(_) | FileName::ManifestTmp)
    }
}

/// A generation spelled canonically.
fn gen_of(digits: &str) -> Option<u64> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileName::Lock => f.write_str(LOCK),
            FileName::Manifest => f.write_str(MANIFEST),
            FileName::ManifestTmp => f.write_str(MANIFEST_TMP),
            FileName::Log(gen) => write!(f, "wal-{gen}.log"),
            FileName::Segment(gen) => write!(f, "seg-{gen}.pdx"),
            FileName::Bitmap(gen) => write!(f, "del-{gen}.bm"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FileName;

    #[test]
    fn every_name_reads_back_as_itself() {
        for name in [
            FileName::Lock,
            FileName::Manifest,
            FileName::ManifestTmp,
            FileName::Log(0),
            FileName::Log(u64::MAX),
            FileName::Segment(7),
            FileName::Bitmap(12),
        ] {
            assert_eq!(FileName::parse(&name.to_string()), Some(name));
        }
    }

    #[test]
    fn only_canonical_spellings_are_index_files() {
        for name in [
            "wal-01.log",
            "wal-.log",
            "wal-+1.log",
            "wal-1.log.tmp",
            "seg-1.pdx~",
            "seg-x.pdx",
            "del-1a.bm",
            "seg-18446744073709551616.pdx",
            "manifest",
            "",
        ] {
            assert_eq!(FileName::parse(name), None, "{name}");
        }
    }
}
