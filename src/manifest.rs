//! The commit point (`MANIFEST`) and the deletion-bitmap files.
//!
//! `MANIFEST` names, atomically, the state of the index as of one serial:
//! the live segments (newest first) with their deletion bitmap files, the
//! checkpoints, the covered serial and the log generation to replay from. It
//! is replaced by writing `MANIFEST.tmp`, fsyncing it, renaming it over
//! `MANIFEST` and fsyncing the directory. `docs/FORMAT.md` has the layout and
//! the crash argument.

use std::io;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{read_all, Storage};

/// The manifest's file name.
pub const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
const MANIFEST_MAGIC: &[u8; 8] = b"PDXMAN\r\n";
const BITMAP_MAGIC: &[u8; 8] = b"PDXDEL\r\n";
const VERSION: u32 = 1;
/// magic, version, payload length, payload crc32c.
const HEADER_BYTES: usize = 20;

/// The committed state of an index.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Every operation with serial <= this is reflected below, and no later one.
    pub serial: u64,
    /// Replay log files `wal-<gen>.log` with gen >= this.
    pub log_gen: u64,
    /// The next unused file generation (logs, segments and bitmaps share it).
    pub next_gen: u64,
    /// Live segments, newest first.
    pub segments: Vec<SegmentRef>,
    /// Checkpoints sorted by name: (name, value, serial).
    pub checkpoints: Vec<(String, String, u64)>,
}

/// A live segment as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// The segment file.
    pub name: String,
    /// Its row count.
    pub rows: u64,
    /// Its deletion bitmap file; `None` when nothing of it is deleted.
    pub deletions: Option<String>,
}

fn framed(magic: &[u8; 8], payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).map_err(|_| Error::invalid_input("a manifest or bitmap over 4 GiB"))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Checks a framed file; returns its payload.
fn unframed<'a>(storage: &dyn Storage, name: &str, magic: &[u8; 8], bytes: &'a [u8]) -> Result<&'a [u8]> {
    let corrupt = |detail: String| Error::corrupt(storage.root().join(name), detail);
    if bytes.len() < HEADER_BYTES {
        return Err(corrupt(format!("{} bytes is shorter than the {HEADER_BYTES}-byte header", bytes.len())));
    }
    if &bytes[..8] != magic {
        return Err(corrupt(format!("magic is {:?}, expected {:?}", &bytes[..8], magic)));
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(8);
    if version != VERSION {
        return Err(corrupt(format!("format version {version}, this build reads {VERSION}")));
    }
    let len = word(12) as usize;
    if bytes.len() != HEADER_BYTES + len {
        return Err(corrupt(format!("payload of {} bytes, the header says {len}", bytes.len() - HEADER_BYTES)));
    }
    let payload = &bytes[HEADER_BYTES..];
    let (want, got) = (word(16), crc32c::crc32c(payload));
    if want != got {
        return Err(corrupt(format!("payload crc32c is {got:#010x}, expected {want:#010x}")));
    }
    Ok(payload)
}

fn read_file(storage: &dyn Storage, name: &str) -> Result<Option<Vec<u8>>> {
    let file = match storage.open(name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(e)),
    };
    Ok(Some(read_all(file.as_ref())?))
}

/// Atomically replaces `MANIFEST`: tmp, fsync, rename, fsync the directory.
pub fn write_manifest(storage: &dyn Storage, manifest: &Manifest) -> Result<()> {
    let payload = postcard::to_stdvec(manifest).map_err(|e| Error::invalid_input(e.to_string()))?;
    let bytes = framed(MANIFEST_MAGIC, &payload)?;
    let file = storage.create(MANIFEST_TMP)?;
    file.append(&bytes)?;
    file.sync()?;
    storage.rename(MANIFEST_TMP, MANIFEST)?;
    storage.sync_dir()?;
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains('\0') && name != MANIFEST && name != MANIFEST_TMP
}

/// Reads `MANIFEST`: `Ok(None)` for a new index. Damage or inconsistent
/// content is `Error::Corrupt`.
pub fn read_manifest(storage: &dyn Storage) -> Result<Option<Manifest>> {
    let Some(bytes) = read_file(storage, MANIFEST)? else { return Ok(None) };
    let payload = unframed(storage, MANIFEST, MANIFEST_MAGIC, &bytes)?;
    let corrupt = |detail: String| Error::corrupt(storage.root().join(MANIFEST), detail);
    let manifest: Manifest =
        postcard::from_bytes(payload).map_err(|e| corrupt(format!("the payload does not decode: {e}")))?;
    let mut names = std::collections::HashSet::new();
    for seg in &manifest.segments {
        for name in std::iter::once(&seg.name).chain(&seg.deletions) {
            if !valid_name(name) || !names.insert(name.as_str()) {
                return Err(corrupt(format!("bad or repeated file name {name:?}")));
            }
        }
    }
    if !manifest.checkpoints.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(corrupt("checkpoints are not sorted by name".into()));
    }
    Ok(Some(manifest))
}

/// Writes a deletion bitmap file and fsyncs it (not the directory).
pub fn write_bitmap(storage: &dyn Storage, name: &str, bitmap: &RoaringBitmap) -> Result<()> {
    let mut payload = Vec::with_capacity(bitmap.serialized_size());
    bitmap.serialize_into(&mut payload)?;
    let file = storage.create(name)?;
    file.append(&framed(BITMAP_MAGIC, &payload)?)?;
    file.sync()?;
    Ok(())
}

/// Reads and checks a bitmap file of a segment of `rows` rows.
pub fn read_bitmap(storage: &dyn Storage, name: &str, rows: u64) -> Result<RoaringBitmap> {
    let corrupt = |detail: String| Error::corrupt(storage.root().join(name), detail);
    let Some(bytes) = read_file(storage, name)? else { return Err(corrupt("the bitmap file is missing".into())) };
    let payload = unframed(storage, name, BITMAP_MAGIC, &bytes)?;
    let bitmap = RoaringBitmap::deserialize_from(payload).map_err(|e| corrupt(format!("not a bitmap: {e}")))?;
    if bitmap.max().is_some_and(|max| u64::from(max) >= rows) {
        return Err(corrupt(format!("deletes ordinal {:?} of a segment of {rows} rows", bitmap.max())));
    }
    Ok(bitmap)
}

/// Removes segment and bitmap files the manifest does not name, and a
/// leftover `MANIFEST.tmp`: what a flush or merge that died before its
/// commit left behind. Returns the names removed.
pub fn remove_orphans(storage: &dyn Storage, manifest: &Manifest, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let named: std::collections::HashSet<&str> =
        manifest.segments.iter().flat_map(|s| std::iter::once(s.name.as_str()).chain(s.deletions.as_deref())).collect();
    let mut removed = Vec::new();
    for name in storage.list()? {
        let ours = (name.starts_with("seg-") && name.ends_with(".pdx"))
            || (name.starts_with("del-") && name.ends_with(".bm"))
            || name == MANIFEST_TMP;
        if ours && !named.contains(name.as_str()) && !keep(&name) {
            storage.remove(&name)?;
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        storage.sync_dir()?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        assert_eq!(read_manifest(&storage).unwrap(), None);
        let m = Manifest {
            serial: 42,
            log_gen: 3,
            next_gen: 9,
            segments: vec![SegmentRef { name: "seg-4.pdx".into(), rows: 10, deletions: Some("del-5.bm".into()) }],
            checkpoints: vec![("a".into(), "1".into(), 7)],
        };
        write_manifest(&storage, &m).unwrap();
        assert_eq!(read_manifest(&storage).unwrap(), Some(m.clone()));
        let path = dir.path().join(MANIFEST);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(matches!(read_manifest(&storage), Err(Error::Corrupt { .. })), "flip at {at}");
        }
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(matches!(read_manifest(&storage), Err(Error::Corrupt { .. })), "cut at {len}");
        }

        let mut bitmap = RoaringBitmap::new();
        bitmap.insert_range(2..9);
        write_bitmap(&storage, "del-5.bm", &bitmap).unwrap();
        assert_eq!(read_bitmap(&storage, "del-5.bm", 10).unwrap(), bitmap);
        assert!(matches!(read_bitmap(&storage, "del-5.bm", 8), Err(Error::Corrupt { .. })));
        assert!(matches!(read_bitmap(&storage, "del-6.bm", 10), Err(Error::Corrupt { .. })));
        let path = dir.path().join("del-5.bm");
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(matches!(read_bitmap(&storage, "del-5.bm", 10), Err(Error::Corrupt { .. })), "flip at {at}");
        }
    }
}
