//! The commit point (`MANIFEST`) and the deletion-bitmap files.
//!
//! `MANIFEST` names, atomically, the state of the index as of one serial:
//! the live segments (newest first) with their deletion bitmap files, the
//! checkpoints, the covered serial, the log generation to replay from, the
//! next file generation and the index's analyzer (version 2; a version-1
//! manifest, written before analyzers existed, reads as
//! [`Analyzer::Exact`], the analysis its segments were made with). It is replaced by writing `MANIFEST.tmp`, fsyncing
//! it, renaming it over `MANIFEST` and fsyncing the directory, so a crash
//! leaves either the old manifest or the new one, never a mixture.
//!
//! Both kinds of file are a 20-byte header (magic, version, payload length,
//! crc32c of the payload) and a payload. Everything read is checked before it
//! is believed: a damaged or inconsistent file is [`Error::Corrupt`] naming
//! it, never a panic and never a different manifest or bitmap.
//! `docs/FORMAT.md` has the layout byte by byte and the crash argument.

use std::collections::HashSet;
use std::io;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::text::Analyzer;

pub use crate::files::MANIFEST;
use crate::files::{FileName, MANIFEST_TMP};
const MANIFEST_MAGIC: &[u8; 8] = b"PDXMAN\r\n";
const BITMAP_MAGIC: &[u8; 8] = b"PDXDEL\r\n";
/// The manifest's format version; version 1 (without the analyzer) is still
/// read.
const MANIFEST_VERSION: u32 = 2;
/// The oldest manifest version read.
const MANIFEST_OLDEST: u32 = 1;
/// The deletion bitmaps' format version.
const BITMAP_VERSION: u32 = 1;
/// Magic, version, payload length, payload crc32c.
const HEADER_BYTES: usize = 20;
/// The longest file name a manifest may hold (the usual file-system limit).
const MAX_NAME_BYTES: usize = 255;

/// The roaring portable format's cookie for a bitmap without run
/// containers: the only variant `roaring` 0.10 writes, and so the only one
/// this format admits.
const ROARING_COOKIE_NO_RUNS: u32 = 12346;
/// At most this many values in an array container; more make a bitmap one.
const ROARING_ARRAY_LIMIT: usize = 4096;
/// The serialized size of a bitmap container.
const ROARING_BITMAP_CONTAINER_BYTES: usize = 8192;

/// The committed state of an index as of one serial.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Every operation with serial <= this is reflected in the segments,
    /// bitmaps and checkpoints below, and no later one.
    pub serial: u64,
    /// Replay log files `wal-<gen>.log` with gen >= this.
    pub log_gen: u64,
    /// The next unused file generation number (segments, bitmaps and logs
    /// draw from one counter).
    pub next_gen: u64,
    /// Live segments, newest first.
    pub segments: Vec<SegmentRef>,
    /// Checkpoints sorted by name: (name, value, serial).
    pub checkpoints: Vec<(String, String, u64)>,
    /// How the index analyses text, chosen when it was created.
    pub analyzer: Analyzer,
}

/// A version-1 manifest: [`Manifest`] before the analyzer.
#[derive(Deserialize)]
struct ManifestV1 {
    serial: u64,
    log_gen: u64,
    next_gen: u64,
    segments: Vec<SegmentRef>,
    checkpoints: Vec<(String, String, u64)>,
}

impl From<ManifestV1> for Manifest {
    fn from(v1: ManifestV1) -> Manifest {
        let ManifestV1 { serial, log_gen, next_gen, segments, checkpoints } = v1;
        Manifest { serial, log_gen, next_gen, segments, checkpoints, analyzer: Analyzer::Exact }
    }
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

/// Atomically replaces `MANIFEST`: writes `MANIFEST.tmp`, fsyncs it, renames
/// it over `MANIFEST`, fsyncs the directory.
///
/// The files the manifest names must already be durable (written, fsynced,
/// and the directory fsynced): once this returns, the manifest is the commit
/// point that open starts from.
///
/// # Errors
///
/// `InvalidInput` for a manifest that [`read_manifest`] would refuse as
/// inconsistent (a bug in the caller: better a failed commit than an index
/// that no longer opens); `Io` when a write, fsync or rename fails, in which
/// case `MANIFEST` is either the old one or the new one.
pub fn write_manifest(storage: &dyn Storage, manifest: &Manifest) -> Result<()> {
    check_manifest(manifest)
        .map_err(|detail| Error::invalid_input(format!("refusing to write an inconsistent manifest: {detail}")))?;
    let payload = postcard::to_stdvec(manifest).map_err(|e| Error::invalid_input(e.to_string()))?;
    // Self-check in tests and fuzzing: what is written reads back equal.
    debug_assert!(
        postcard::take_from_bytes::<Manifest>(&payload).is_ok_and(|(read, rest)| read == *manifest && rest.is_empty()),
        "a manifest does not read back as written: {manifest:?}"
    );
    let bytes = frame(MANIFEST_MAGIC, MANIFEST_VERSION, &payload)?;
    // `create` truncates a MANIFEST.tmp left by an earlier failed commit.
    let file = storage.create(MANIFEST_TMP)?;
    file.append(&bytes)?;
    file.sync()?;
    // Only a complete, durable file is ever renamed over the commit point.
    storage.rename(MANIFEST_TMP, MANIFEST)?;
    storage.sync_dir()?;
    Ok(())
}

/// Reads and checks `MANIFEST`; `Ok(None)` when there is none (a new index).
///
/// A leftover `MANIFEST.tmp` (a commit that died before its rename) is never
/// read: it is removed. Call this holding the directory lock, as open does:
/// the tmp file of a commit in progress elsewhere would be removed too.
///
/// # Errors
///
/// `Corrupt`, naming `MANIFEST`, on a bad magic, version, length or crc, a
/// payload that does not decode (or has bytes after the manifest), or
/// inconsistent content: a file name that is empty, not a plain name
/// (`/`, `\`, NUL, `.`, `..`) or reserved (`MANIFEST`, `MANIFEST.tmp`,
/// `LOCK`, a log file name), a name used twice (two segments, or a bitmap
/// named like a segment), a segment of more than `u32::MAX` rows, a
/// `seg-<g>.pdx` or `del-<g>.bm` name with `g >= next_gen`, `log_gen >
/// next_gen`, checkpoints not strictly sorted by name, or a checkpoint set
/// after `serial`. Whether the named files exist is the index's check.
/// `Io` when the file cannot be read.
pub fn read_manifest(storage: &dyn Storage) -> Result<Option<Manifest>> {
    match storage.remove(MANIFEST_TMP) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(Error::Io(e)),
        // No directory fsync: were the removal lost, it would be redone.
        _ => {}
    }
    let Some((version, payload)) =
        read_frame(storage, MANIFEST, MANIFEST_MAGIC, (MANIFEST_OLDEST, MANIFEST_VERSION))?
    else {
        return Ok(None);
    };
    let corrupt = |detail: String| Error::corrupt(storage.root().join(MANIFEST), detail);
    let decode_error = |e: postcard::Error| corrupt(format!("the payload does not decode as a version-{version} manifest: {e}"));
    let (manifest, rest) = if version == 1 {
        let (v1, rest) = postcard::take_from_bytes::<ManifestV1>(&payload).map_err(decode_error)?;
        (Manifest::from(v1), rest)
    } else {
        postcard::take_from_bytes::<Manifest>(&payload).map_err(decode_error)?
    };
    if !rest.is_empty() {
        return Err(corrupt(format!("{} bytes follow the manifest in its payload", rest.len())));
    }
    check_manifest(&manifest).map_err(corrupt)?;
    Ok(Some(manifest))
}

/// Writes the deletion bitmap file `name` and fsyncs the file, not the
/// directory: the caller fsyncs the directory once for all the files of a
/// commit, before the manifest that names them.
///
/// # Errors
///
/// `InvalidInput` when `name` is not a plain file name or is reserved; `Io`
/// when the write or the fsync fails.
pub fn write_bitmap(storage: &dyn Storage, name: &str, bitmap: &RoaringBitmap) -> Result<()> {
    check_name(name).map_err(Error::invalid_input)?;
    let mut payload = Vec::with_capacity(bitmap.serialized_size());
    bitmap.serialize_into(&mut payload)?;
    // Self-check in tests and fuzzing: the reader's layout rule accepts what
    // roaring wrote, and it reads back equal.
    debug_assert!(
        check_roaring_layout(&payload).is_ok()
            && RoaringBitmap::deserialize_from(&mut payload.as_slice()).is_ok_and(|read| read == *bitmap),
        "a deletion bitmap does not read back as written"
    );
    let file = storage.create(name)?;
    file.append(&frame(BITMAP_MAGIC, BITMAP_VERSION, &payload)?)?;
    file.sync()?;
    Ok(())
}

/// Reads and checks the deletion bitmap file `name` of a segment of `rows`
/// rows.
///
/// # Errors
///
/// `Corrupt`, naming the file, when it is missing, on a bad magic, version,
/// length or crc, when the payload is not a well-formed roaring bitmap in the
/// layout `write_bitmap` writes (see `docs/FORMAT.md`), or when it holds an
/// ordinal `>= rows`. `Io` when the file cannot be read.
pub fn read_bitmap(storage: &dyn Storage, name: &str, rows: u64) -> Result<RoaringBitmap> {
    let corrupt = |detail: String| Error::corrupt(storage.root().join(name), detail);
    let Some((_, payload)) = read_frame(storage, name, BITMAP_MAGIC, (BITMAP_VERSION, BITMAP_VERSION))? else {
        return Err(corrupt("the deletion bitmap file is missing".into()));
    };
    // Checked before roaring sees it: roaring's validation covers each
    // container but not their order, and a bitmap with unordered containers
    // would answer `max` (and so the rows check below) wrongly.
    check_roaring_layout(&payload).map_err(|detail| corrupt(format!("not a deletion bitmap: {detail}")))?;
    let mut reader = payload.as_slice();
    let bitmap = RoaringBitmap::deserialize_from(&mut reader)
        .map_err(|e| corrupt(format!("not a deletion bitmap: the roaring bitmap does not decode: {e}")))?;
    if !reader.is_empty() {
        return Err(corrupt(format!("{} bytes follow the roaring bitmap", reader.len())));
    }
    if let Some(max) = bitmap.max().filter(|&max| u64::from(max) >= rows) {
        return Err(corrupt(format!("deletes ordinal {max} of a segment of {rows} rows")));
    }
    Ok(bitmap)
}

/// Removes the files named like segments (`seg-*.pdx`) or bitmaps
/// (`del-*.bm`), and `MANIFEST.tmp`, that `manifest` does not name and
/// `keep` does not keep: what a flush or merge that died before its commit
/// left, and what a commit made obsolete. Fsyncs the directory if it removed
/// anything. Returns the names removed.
///
/// # Errors
///
/// `Io` when the directory cannot be listed, a file cannot be removed, or
/// the directory fsync fails.
pub fn remove_orphans(storage: &dyn Storage, manifest: &Manifest, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let named: HashSet<&str> = manifest_names(manifest).collect();
    let mut removed = Vec::new();
    for name in storage.list()? {
        let ours = FileName::parse(&name).is_some_and(FileName::is_committed_data);
        if ours && !named.contains(name.as_str()) && !keep(&name) {
            match storage.remove(&name) {
                Ok(()) => removed.push(name),
                // Gone already; nothing to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
    if !removed.is_empty() {
        storage.sync_dir()?;
    }
    Ok(removed)
}

/// Every file name a manifest holds: segments and bitmaps.
fn manifest_names(manifest: &Manifest) -> impl Iterator<Item = &str> {
    manifest.segments.iter().flat_map(|s| std::iter::once(s.name.as_str()).chain(s.deletions.as_deref()))
}

/// The generation `g` of a `seg-<g>.pdx` or `del-<g>.bm` name.
fn file_gen(name: &str) -> Option<u64> {
    match FileName::parse(name)? {
        FileName::Segment(gen) | FileName::Bitmap(gen) => Some(gen),
        _ => None,
    }
}

/// A name a manifest may hold: a plain file name in the index directory,
/// not one the index uses for something else.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        let shown: String = name.chars().take(40).collect();
        return Err(format!("file name {shown:?} ({} bytes) is empty or longer than {MAX_NAME_BYTES}", name.len()));
    }
    if name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(format!("file name {name:?} is not a plain file name"));
    }
    if matches!(
        FileName::parse(name),
        Some(FileName::Lock | FileName::Manifest | FileName::ManifestTmp | FileName::Log(_))
    ) {
        return Err(format!("file name {name:?} is reserved"));
    }
    Ok(())
}

/// The consistency rules of a manifest (see [`read_manifest`]).
fn check_manifest(m: &Manifest) -> std::result::Result<(), String> {
    if m.log_gen > m.next_gen {
        return Err(format!("log generation {} is past the next free generation {}", m.log_gen, m.next_gen));
    }
    for seg in &m.segments {
        if seg.rows > u64::from(u32::MAX) {
            return Err(format!("segment {:?} has {} rows, more than ordinals can number", seg.name, seg.rows));
        }
    }
    let mut seen = HashSet::new();
    for name in manifest_names(m) {
        check_name(name)?;
        if !seen.insert(name) {
            return Err(format!("file name {name:?} is named twice"));
        }
        // The counter would hand this generation out again, and a new file
        // would replace a live one.
        if let Some(gen) = file_gen(name).filter(|&gen| gen >= m.next_gen) {
            return Err(format!("file {name:?} has generation {gen}, not below the next free one {}", m.next_gen));
        }
    }
    if let Some(w) = m.checkpoints.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(format!("checkpoints are not strictly sorted by name: {:?} before {:?}", w[0].0, w[1].0));
    }
    if let Some((name, _, serial)) = m.checkpoints.iter().find(|c| c.2 > m.serial) {
        return Err(format!("checkpoint {name:?} was set at serial {serial}, after the covered serial {}", m.serial));
    }
    Ok(())
}

/// Checks that `payload` is laid out exactly as `RoaringBitmap::serialize_into`
/// (roaring 0.10) lays out a bitmap: the no-run cookie, at most 2^16
/// containers with strictly increasing keys, each offset right, and nothing
/// after the last container. The containers' contents are left to roaring's
/// own validation (sorted arrays, bitmap cardinalities).
fn check_roaring_layout(payload: &[u8]) -> std::result::Result<(), String> {
    let short = || format!("{} bytes end inside the roaring header", payload.len());
    let u16_at = |at: usize| payload.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or_else(short);
    let u32_at =
        |at: usize| payload.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(short);
    let cookie = u32_at(0)?;
    if cookie != ROARING_COOKIE_NO_RUNS {
        return Err(format!("roaring cookie {cookie}, expected {ROARING_COOKIE_NO_RUNS} (no run containers)"));
    }
    let count = u32_at(4)? as usize;
    if count > 1 << 16 {
        return Err(format!("{count} roaring containers, at most 65536 exist"));
    }
    let (descriptions, offsets) = (8, 8 + 4 * count);
    let mut expected_offset = offsets + 4 * count;
    let mut previous_key = None;
    for i in 0..count {
        let key = u16_at(descriptions + 4 * i)?;
        let cardinality = usize::from(u16_at(descriptions + 4 * i + 2)?) + 1;
        if previous_key.is_some_and(|previous| previous >= key) {
            return Err(format!("roaring container keys are not increasing at container {i}"));
        }
        previous_key = Some(key);
        let offset = u32_at(offsets + 4 * i)? as usize;
        if offset != expected_offset {
            return Err(format!("roaring container {i} is at offset {offset}, expected {expected_offset}"));
        }
        expected_offset +=
            if cardinality <= ROARING_ARRAY_LIMIT { 2 * cardinality } else { ROARING_BITMAP_CONTAINER_BYTES };
    }
    if expected_offset != payload.len() {
        return Err(format!("the roaring containers end at {expected_offset}, the payload at {}", payload.len()));
    }
    Ok(())
}

/// The header, then the payload.
fn frame(magic: &[u8; 8], version: u32, payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::invalid_input(format!("a payload of {} bytes does not fit a u32 length", payload.len())))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame_crc(version, &out[8..16], payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// The header's crc: of the payload in version 1; from version 2 on, of the
/// version and length (`header`, bytes 8..16) and then the payload, so that
/// a flipped bit in the version is damage, not a later release's file.
fn frame_crc(version: u32, header: &[u8], payload: &[u8]) -> u32 {
    if version >= 2 {
        crc32c::crc32c_append(crc32c::crc32c(header), payload)
    } else {
        crc32c::crc32c(payload)
    }
}

/// Reads the framed file `name` and returns its checked payload; `Ok(None)`
/// when the file does not exist.
///
/// The header is read and checked first, so a damaged length never makes it
/// read (or allocate for) more than the file holds.
fn read_frame(
    storage: &dyn Storage,
    name: &str,
    magic: &[u8; 8],
    (oldest, newest): (u32, u32),
) -> Result<Option<(u32, Vec<u8>)>> {
    let file = match storage.open(name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(e)),
    };
    let corrupt = |detail: String| Error::corrupt(storage.root().join(name), detail);
    let file_len = file.len()?;
    if file_len < HEADER_BYTES as u64 {
        return Err(corrupt(format!("{file_len} bytes is shorter than the {HEADER_BYTES}-byte header")));
    }
    let mut header = [0u8; HEADER_BYTES];
    file.read_at(0, &mut header)?;
    let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    if &header[..8] != magic {
        return Err(corrupt(format!(
            "magic is {:?}, expected {:?}",
            String::from_utf8_lossy(&header[..8]),
            String::from_utf8_lossy(magic)
        )));
    }
    let version = word(8);
    let len = word(12);
    if file_len != HEADER_BYTES as u64 + u64::from(len) {
        return Err(corrupt(format!(
            "the header says {len} payload bytes, the file holds {}",
            file_len - HEADER_BYTES as u64
        )));
    }
    let len = usize::try_from(len).map_err(|_| corrupt(format!("a payload of {len} bytes does not fit in memory")))?;
    let mut payload = vec![0u8; len];
    file.read_at(HEADER_BYTES as u64, &mut payload)?;
    let (want, got) = (word(16), frame_crc(version, &header[8..16], &payload));
    if want != got {
        return Err(corrupt(format!("payload crc32c is {got:#010x}, the header says {want:#010x}")));
    }
    if version > newest && version >= 2 {
        // The crc covers the version: a later pushdex wrote it.
        return Err(Error::UnsupportedVersion {
            path: storage.root().join(name),
            found: version,
            supported: (oldest, newest),
        });
    }
    if !(oldest..=newest).contains(&version) {
        return Err(corrupt(format!("format version {version}, this build reads versions {oldest} to {newest}")));
    }
    Ok(Some((version, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::LOCK;
    use crate::storage::FsStorage;

    fn storage() -> (tempfile::TempDir, FsStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        (dir, storage)
    }

    fn sample() -> Manifest {
        Manifest {
            serial: 42,
            log_gen: 7,
            next_gen: 9,
            segments: vec![
                SegmentRef { name: "seg-6.pdx".into(), rows: 10, deletions: None },
                SegmentRef { name: "seg-4.pdx".into(), rows: 300, deletions: Some("del-8.bm".into()) },
            ],
            checkpoints: vec![("a".into(), "1".into(), 7), ("b".into(), "é\u{0}x".into(), 42)],
            analyzer: Analyzer::Exact,
        }
    }

    fn is_corrupt<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(Error::Corrupt { .. }))
    }

    /// Writes `payload` framed under `name`, with a good header and crc.
    fn write_raw(storage: &FsStorage, name: &str, magic: &[u8; 8], payload: &[u8]) {
        let version = if magic == MANIFEST_MAGIC { MANIFEST_VERSION } else { BITMAP_VERSION };
        write_versioned(storage, name, magic, version, payload);
    }

    fn write_versioned(storage: &FsStorage, name: &str, magic: &[u8; 8], version: u32, payload: &[u8]) {
        std::fs::write(storage.root().join(name), frame(magic, version, payload).unwrap()).unwrap();
    }

    #[test]
    fn a_version_1_manifest_reads_with_the_exact_analyzer() {
        let (_dir, storage) = storage();
        let m = sample();
        // Version 1: the same fields, without the analyzer at the end.
        let mut v1 = postcard::to_stdvec(&Manifest { analyzer: Analyzer::English, ..m.clone() }).unwrap();
        assert_eq!(v1.pop(), Some(0), "English is variant 0, one byte at the end");
        write_versioned(&storage, MANIFEST, MANIFEST_MAGIC, 1, &v1);
        assert_eq!(read_manifest(&storage).unwrap(), Some(Manifest { analyzer: Analyzer::Exact, ..m.clone() }));
        // A version-2 payload under version 1 (or the reverse) is damage.
        let v2 = postcard::to_stdvec(&m).unwrap();
        write_versioned(&storage, MANIFEST, MANIFEST_MAGIC, 1, &v2);
        assert!(is_corrupt(read_manifest(&storage)));
        write_versioned(&storage, MANIFEST, MANIFEST_MAGIC, 2, &v1);
        assert!(is_corrupt(read_manifest(&storage)));
        write_versioned(&storage, MANIFEST, MANIFEST_MAGIC, 0, &v2);
        assert!(is_corrupt(read_manifest(&storage)));
        // A later version is not damage: another release wrote it.
        write_versioned(&storage, MANIFEST, MANIFEST_MAGIC, 3, &v2);
        assert!(matches!(
            read_manifest(&storage),
            Err(Error::UnsupportedVersion { found: 3, supported: (1, 2), .. })
        ));
        write_versioned(&storage, "del-1.bm", BITMAP_MAGIC, 2, &[]);
        assert!(matches!(
            read_bitmap(&storage, "del-1.bm", 1),
            Err(Error::UnsupportedVersion { found: 2, supported: (1, 1), .. })
        ));
    }

    #[test]
    fn manifest_round_trips() {
        let (_dir, storage) = storage();
        for m in [Manifest::default(), sample()] {
            write_manifest(&storage, &m).unwrap();
            assert_eq!(read_manifest(&storage).unwrap(), Some(m));
        }
        let mut big = sample();
        big.next_gen = u64::MAX;
        big.serial = u64::MAX;
        big.segments = (0..1000)
            .map(|i| SegmentRef {
                name: format!("seg-{}.pdx", 2 * i + 1),
                rows: u64::from(u32::MAX) - i,
                deletions: (i % 3 == 0).then(|| format!("del-{}.bm", 2 * i + 2)),
            })
            .collect();
        big.checkpoints = (0..500).map(|i| (format!("cp{i:04}"), "v".repeat(i), i as u64)).collect();
        write_manifest(&storage, &big).unwrap();
        assert_eq!(read_manifest(&storage).unwrap(), Some(big));
        assert!(!storage.root().join(MANIFEST_TMP).exists());
    }

    /// The examples of `docs/FORMAT.md`, byte for byte.
    #[test]
    fn format_md_examples() {
        let (_dir, storage) = storage();
        let first_flush = Manifest {
            serial: 3,
            log_gen: 2,
            next_gen: 4,
            segments: vec![SegmentRef { name: "seg-3.pdx".into(), rows: 3, deletions: None }],
            checkpoints: vec![],
            analyzer: Analyzer::English,
        };
        let payload = postcard::to_stdvec(&first_flush).unwrap();
        assert_eq!(payload, b"\x03\x02\x04\x01\x09seg-3.pdx\x03\x00\x00\x00");
        write_manifest(&storage, &first_flush).unwrap();
        let file = std::fs::read(storage.root().join(MANIFEST)).unwrap();
        assert_eq!(&file[..8], &[0x50, 0x44, 0x58, 0x4D, 0x41, 0x4E, 0x0D, 0x0A]);
        assert_eq!(&file[8..16], &[2, 0, 0, 0, 18, 0, 0, 0]);
        assert_eq!(file[16..20], crc32c::crc32c(&file[8..16].iter().chain(&payload).copied().collect::<Vec<u8>>()).to_le_bytes());
        assert_eq!(&file[20..], payload);
        assert_eq!(postcard::to_stdvec(&300u64).unwrap(), [0xAC, 0x02]);

        let mut empty = Vec::new();
        RoaringBitmap::new().serialize_into(&mut empty).unwrap();
        assert_eq!(empty, [0x3A, 0x30, 0, 0, 0, 0, 0, 0]);
        write_bitmap(&storage, "del-5.bm", &RoaringBitmap::new()).unwrap();
        let file = std::fs::read(storage.root().join("del-5.bm")).unwrap();
        assert_eq!(&file[..8], &[0x50, 0x44, 0x58, 0x44, 0x45, 0x4C, 0x0D, 0x0A]);
        assert_eq!(&file[8..16], &[1, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(&file[20..], empty);
    }

    #[test]
    fn a_missing_manifest_is_a_new_index() {
        let (_dir, storage) = storage();
        assert_eq!(read_manifest(&storage).unwrap(), None);
    }

    #[test]
    fn a_leftover_tmp_is_ignored_and_removed() {
        let (_dir, storage) = storage();
        let tmp = storage.root().join(MANIFEST_TMP);
        // A first commit that died before its rename: still a new index.
        std::fs::write(&tmp, b"PDXMAN\r\n half a manifest").unwrap();
        assert_eq!(read_manifest(&storage).unwrap(), None);
        assert!(!tmp.exists());
        // A later one: the old manifest stands, even if the tmp is complete.
        write_manifest(&storage, &sample()).unwrap();
        let mut newer = sample();
        newer.serial = 43;
        write_raw(&storage, MANIFEST_TMP, MANIFEST_MAGIC, &postcard::to_stdvec(&newer).unwrap());
        assert_eq!(read_manifest(&storage).unwrap(), Some(sample()));
        assert!(!tmp.exists());
    }

    #[test]
    fn inconsistent_manifests_are_refused_on_read_and_write() {
        let (_dir, storage) = storage();
        type Change = fn(&mut Manifest);
        let cases: Vec<(&str, Change)> = vec![
            ("repeated segment", |m| m.segments[1].name = "seg-6.pdx".into()),
            ("bitmap named like a segment", |m| m.segments[1].deletions = Some("seg-6.pdx".into())),
            ("bitmap named like its own segment", |m| m.segments[1].deletions = Some("seg-4.pdx".into())),
            ("shared bitmap", |m| m.segments[0].deletions = Some("del-8.bm".into())),
            ("empty name", |m| m.segments[0].name = String::new()),
            ("slash", |m| m.segments[0].name = "../seg-1.pdx".into()),
            ("backslash", |m| m.segments[0].name = "a\\b".into()),
            ("NUL", |m| m.segments[0].name = "seg\0".into()),
            ("dot dot", |m| m.segments[0].deletions = Some("..".into())),
            ("long", |m| m.segments[0].name = "x".repeat(256)),
            ("manifest", |m| m.segments[0].name = MANIFEST.into()),
            ("tmp", |m| m.segments[0].deletions = Some(MANIFEST_TMP.into())),
            ("lock", |m| m.segments[0].name = LOCK.into()),
            ("log", |m| m.segments[0].name = "wal-3.log".into()),
            ("too many rows", |m| m.segments[0].rows = 1 << 32),
            ("segment generation", |m| m.segments[0].name = "seg-9.pdx".into()),
            ("bitmap generation", |m| m.segments[1].deletions = Some("del-12.bm".into())),
            ("log generation", |m| m.log_gen = 10),
            ("unsorted checkpoints", |m| m.checkpoints.swap(0, 1)),
            ("repeated checkpoint", |m| m.checkpoints[1].0 = "a".into()),
            ("checkpoint after serial", |m| m.checkpoints[0].2 = 43),
        ];
        for (what, change) in cases {
            let mut m = sample();
            change(&mut m);
            assert!(matches!(write_manifest(&storage, &m), Err(Error::InvalidInput { .. })), "{what}");
            write_raw(&storage, MANIFEST, MANIFEST_MAGIC, &postcard::to_stdvec(&m).unwrap());
            assert!(is_corrupt(read_manifest(&storage)), "{what}");
        }
        // Names the index does not spell itself are fine when plain.
        let mut m = sample();
        m.segments[0].name = "seg-0009.pdx".into();
        m.segments[0].deletions = Some("imported.bm".into());
        write_manifest(&storage, &m).unwrap();
        assert_eq!(read_manifest(&storage).unwrap(), Some(m));
    }

    #[test]
    fn a_manifest_payload_must_be_exactly_one_manifest() {
        let (_dir, storage) = storage();
        let mut payload = postcard::to_stdvec(&sample()).unwrap();
        payload.push(0);
        write_raw(&storage, MANIFEST, MANIFEST_MAGIC, &payload);
        assert!(is_corrupt(read_manifest(&storage)));
        write_raw(&storage, MANIFEST, MANIFEST_MAGIC, &payload[..payload.len() - 2]);
        assert!(is_corrupt(read_manifest(&storage)));
        // A huge count must not allocate for it.
        write_raw(&storage, MANIFEST, MANIFEST_MAGIC, &[1, 1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(is_corrupt(read_manifest(&storage)));
        // A bitmap file is not a manifest.
        write_bitmap(&storage, MANIFEST, &RoaringBitmap::new()).unwrap_err();
        write_raw(&storage, MANIFEST, BITMAP_MAGIC, &postcard::to_stdvec(&sample()).unwrap());
        assert!(is_corrupt(read_manifest(&storage)));
    }

    fn bitmaps() -> Vec<(RoaringBitmap, u64)> {
        let mut ranges = RoaringBitmap::new();
        ranges.insert_range(2..9);
        ranges.insert_range(70_000..200_000);
        ranges.insert(1 << 20);
        let sparse: RoaringBitmap = (0..100_000u32).map(|i| i * 37).collect();
        let mut top = RoaringBitmap::new();
        top.insert_range(u32::MAX - 5000..=u32::MAX);
        vec![
            (RoaringBitmap::new(), 0),
            ((0..1).collect(), 1),
            (ranges, 1 << 21),
            (sparse, 37 * 100_000),
            (top, u64::from(u32::MAX) + 1),
        ]
    }

    #[test]
    fn bitmaps_round_trip() {
        let (_dir, storage) = storage();
        for (i, (bitmap, rows)) in bitmaps().into_iter().enumerate() {
            let name = format!("del-{i}.bm");
            write_bitmap(&storage, &name, &bitmap).unwrap();
            assert_eq!(read_bitmap(&storage, &name, rows).unwrap(), bitmap);
            assert_eq!(read_bitmap(&storage, &name, u64::MAX).unwrap(), bitmap);
            if let Some(max) = bitmap.max() {
                assert!(is_corrupt(read_bitmap(&storage, &name, u64::from(max))), "{name}");
            }
        }
    }

    #[test]
    fn missing_or_misnamed_bitmaps() {
        let (_dir, storage) = storage();
        assert!(is_corrupt(read_bitmap(&storage, "del-1.bm", 10)));
        for bad in ["", "a/b", "..", MANIFEST, "wal-1.log"] {
            assert!(matches!(write_bitmap(&storage, bad, &RoaringBitmap::new()), Err(Error::InvalidInput { .. })));
        }
        write_manifest(&storage, &sample()).unwrap();
        // A manifest is not a bitmap.
        assert!(is_corrupt(read_bitmap(&storage, MANIFEST, 10)));
    }

    /// Payloads with a good crc that roaring 0.10 would accept (or mis-read)
    /// but `write_bitmap` never writes.
    #[test]
    fn malformed_roaring_payloads_are_corrupt() {
        let (_dir, storage) = storage();
        let mut two = RoaringBitmap::new();
        two.insert(5);
        two.insert(70_000);
        let mut good = Vec::new();
        two.serialize_into(&mut good).unwrap();
        // Layout: cookie, count 2, (key 0, card-1 0), (key 1, card-1 0),
        // offsets 24 and 26, values 5 and 70_000 - 65_536.
        assert_eq!(good.len(), 28);
        let mut swapped = good.clone();
        swapped[8..10].copy_from_slice(&1u16.to_le_bytes());
        swapped[12..14].copy_from_slice(&0u16.to_le_bytes());
        let mut repeated = good.clone();
        repeated[12..14].copy_from_slice(&0u16.to_le_bytes());
        let mut offset = good.clone();
        offset[20] += 1;
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0]);
        let mut unsorted_array: Vec<u8> = good.clone();
        unsorted_array[10..12].copy_from_slice(&1u16.to_le_bytes());
        unsorted_array[20..24].copy_from_slice(&28u32.to_le_bytes());
        unsorted_array.splice(26..26, [3, 0]);
        let mut huge_count = good[..8].to_vec();
        huge_count[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        // The run-container variant of the portable format: one container,
        // key 0, one run 0..=9.
        let runs = [0x3B, 0x30, 0, 0, 1, 0, 0, 9, 0, 1, 0, 0, 0, 9, 0];
        for (what, payload) in [
            ("empty", &[][..]),
            ("short", &good[..6]),
            ("swapped keys", &swapped),
            ("repeated key", &repeated),
            ("bad offset", &offset),
            ("trailing bytes", &trailing),
            ("unsorted array", &unsorted_array),
            ("huge count", &huge_count),
            ("run containers", &runs[..]),
            ("cut container", &good[..27]),
        ] {
            write_raw(&storage, "del-1.bm", BITMAP_MAGIC, payload);
            assert!(is_corrupt(read_bitmap(&storage, "del-1.bm", 1 << 20)), "{what}");
        }
        write_raw(&storage, "del-1.bm", BITMAP_MAGIC, &good);
        assert_eq!(read_bitmap(&storage, "del-1.bm", 70_001).unwrap(), two);
    }

    #[test]
    fn orphans_are_removed_and_named_files_kept() {
        let (_dir, storage) = storage();
        let names = [
            "seg-6.pdx",
            "seg-4.pdx",
            "del-8.bm",
            "seg-5.pdx",
            "del-7.bm",
            "seg-1.pdx",
            "MANIFEST.tmp",
            "wal-7.log",
            "LOCK",
            "notes.txt",
            "seg-1.pdx.tmp",
        ];
        for name in names {
            std::fs::write(storage.root().join(name), b"x").unwrap();
        }
        let mut removed = remove_orphans(&storage, &sample(), |name| name == "seg-1.pdx").unwrap();
        removed.sort();
        assert_eq!(removed, ["MANIFEST.tmp", "del-7.bm", "seg-5.pdx"]);
        let mut left = storage.list().unwrap();
        left.sort();
        assert_eq!(
            left,
            ["LOCK", "del-8.bm", "notes.txt", "seg-1.pdx", "seg-1.pdx.tmp", "seg-4.pdx", "seg-6.pdx", "wal-7.log"]
        );
        assert!(remove_orphans(&storage, &sample(), |name| name == "seg-1.pdx").unwrap().is_empty());
    }
}
