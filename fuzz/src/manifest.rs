//! `manifest`: bytes as `MANIFEST` or as a deletion bitmap file.
//!
//! The first byte picks the mode (modulo 5):
//! * 0: the rest is `MANIFEST` as is; read it, then open an index on it;
//! * 1: the rest is a manifest payload, framed by the harness (magic,
//!   version, length, crc32c) so that the decoder and the consistency checks
//!   see it; read it, write back what was read, open an index;
//! * 2: 8 bytes of row count, then a bitmap file as is;
//! * 3: 8 bytes of row count, then a bitmap payload, framed by the harness;
//! * 4: the rest is read with `arbitrary` as a [`Spec`]: a manifest and
//!   bitmaps to write, read back, and open an index on, with real segments
//!   for some of the names.
//!
//! Properties (docs/FORMAT.md, "Manifest" and "Deletion bitmaps"): nothing
//! panics; a manifest that `write_manifest` accepts reads back equal, and
//! one it refuses reads as `Corrupt` (the two agree on what is consistent);
//! a bitmap read back holds only ordinals below the row count, equals what
//! `roaring` decodes from the payload, and writes and reads back equal; an
//! index opened on a manifest holds its checkpoints at their serials, with
//! `last` and `searchable` at the manifest's serial.

use arbitrary::{Arbitrary, Unstructured};
use pushdex::manifest::{read_bitmap, read_manifest, write_bitmap, write_manifest, Manifest, SegmentRef, MANIFEST};
use pushdex::segment::{write_segment, SegmentEntry};
use pushdex::storage::SimStorage;
use pushdex::Serial;
use roaring::RoaringBitmap;

use crate::common::{self, error_kind, snapshot, ROOT};

const MANIFEST_MAGIC: &[u8; 8] = b"PDXMAN\r\n";
const BITMAP_MAGIC: &[u8; 8] = b"PDXDEL\r\n";
const BITMAP_NAME: &str = "del-1.bm";

/// A file as `MANIFEST` and bitmaps are laid out, in the version this
/// release writes: magic, version (manifest 2, bitmap 1), payload length,
/// crc32c, payload (docs/FORMAT.md).
pub fn frame(magic: &[u8; 8], payload: &[u8]) -> Vec<u8> {
    frame_version(magic, if magic == MANIFEST_MAGIC { 2 } else { 1 }, payload)
}

/// [`frame`] in format `version`: the crc covers the payload alone in
/// version 1, the version and length then the payload from version 2 on.
pub fn frame_version(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = if version >= 2 {
        crc32c::crc32c_append(crc32c::crc32c(&out[8..16]), payload)
    } else {
        crc32c::crc32c(payload)
    };
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A file name in a manifest: mostly names the index uses or must refuse,
/// sometimes anything.
#[derive(Debug, Clone)]
pub struct FileName(pub String);

const NAMES: &[&str] = &[
    "seg-1.pdx",
    "seg-2.pdx",
    "seg-3.pdx",
    "del-3.bm",
    "del-4.bm",
    "seg-9.pdx",
    "seg-01.pdx",
    "del-2.bm",
    "MANIFEST",
    "MANIFEST.tmp",
    "LOCK",
    "wal-1.log",
    "",
    ".",
    "..",
    "a/b",
    "x",
];

impl<'a> Arbitrary<'a> for FileName {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<FileName> {
        if u.ratio(1, 8)? {
            return Ok(FileName(String::arbitrary(u)?));
        }
        Ok(FileName(u.choose(NAMES)?.to_string()))
    }
}

/// A segment reference: name, row count (small or any), bitmap name.
#[derive(Debug, Arbitrary)]
pub struct SegSpec {
    name: FileName,
    rows: u8,
    any_rows: Option<u64>,
    deletions: Option<FileName>,
}

/// A manifest and bitmap contents to write.
#[derive(Debug, Arbitrary)]
pub struct Spec {
    serial: u8,
    log_gen: u8,
    next_gen: u8,
    /// Rarely: full-width counters instead of the small ones.
    wide: Option<(u64, u64, u64)>,
    segments: Vec<SegSpec>,
    /// Name, value, serial.
    checkpoints: Vec<(String, String, u8)>,
    /// Sort and deduplicate the checkpoints (usually what a writer does).
    sort_checkpoints: bool,
    /// Ordinals for the bitmaps `del-3.bm` and `del-4.bm`.
    deleted: (Vec<u16>, Vec<u32>),
    /// The index's analyzer: Exact, else English.
    exact: bool,
}

impl Spec {
    fn manifest(&self) -> Manifest {
        let (serial, log_gen, next_gen) =
            self.wide.unwrap_or((u64::from(self.serial), u64::from(self.log_gen), u64::from(self.next_gen)));
        let segments = self
            .segments
            .iter()
            .map(|s| SegmentRef {
                name: s.name.0.clone(),
                rows: s.any_rows.unwrap_or(u64::from(s.rows)),
                deletions: s.deletions.as_ref().map(|d| d.0.clone()),
            })
            .collect();
        let mut checkpoints: Vec<(String, String, u64)> =
            self.checkpoints.iter().map(|(n, v, s)| (n.clone(), v.clone(), u64::from(*s))).collect();
        if self.sort_checkpoints {
            checkpoints.sort();
            checkpoints.dedup_by(|a, b| a.0 == b.0);
        }
        let analyzer = if self.exact { pushdex::Analyzer::Exact } else { pushdex::Analyzer::English };
        Manifest { serial, log_gen, next_gen, segments, checkpoints, analyzer }
    }
}

/// Reads a manifest and, if it is one, writes it back and reads it again.
fn read_and_rewrite(storage: &SimStorage) -> Option<Manifest> {
    let manifest = read_manifest(storage).ok().flatten()?;
    write_manifest(storage, &manifest).expect("writing back a manifest that was read");
    let again = read_manifest(storage).expect("reading a manifest just written");
    assert_eq!(again.as_ref(), Some(&manifest), "a manifest did not read back equal");
    Some(manifest)
}

/// Opens an index on `storage` and checks what it must hold of `manifest`.
fn open_index(storage: &SimStorage, manifest: Option<&Manifest>) {
    let Ok(index) = common::open(storage) else { return };
    let w = index.watermarks();
    if let Some(m) = manifest {
        assert_eq!((w.last, w.searchable), (Serial(m.serial), Serial(m.serial)), "watermarks of {m:?}");
        let got: Vec<(String, String, u64)> =
            index.checkpoints().expect("checkpoints").into_iter().map(|c| (c.name, c.value, c.serial.0)).collect();
        let want: Vec<(String, String, u64)> =
            m.checkpoints.iter().filter(|c| !c.0.starts_with("pushdex.")).cloned().collect();
        assert_eq!(got, want, "the index does not hold the manifest's checkpoints");
    }
    let _ = snapshot(&index);
    let _ = index.close();
}

/// Checks a bitmap file read with `rows` rows against its payload.
fn check_bitmap(storage: &SimStorage, payload: Option<&[u8]>, rows: u64) {
    let Ok(bitmap) = read_bitmap(storage, BITMAP_NAME, rows) else { return };
    if let Some(max) = bitmap.max() {
        assert!(u64::from(max) < rows, "a bitmap of a {rows}-row segment deletes ordinal {max}");
    }
    if let Some(payload) = payload {
        let decoded = RoaringBitmap::deserialize_from(payload).expect("roaring decodes what read_bitmap accepted");
        assert_eq!(decoded, bitmap, "read_bitmap and roaring disagree");
    }
    write_bitmap(storage, "del-2.bm", &bitmap).expect("writing a bitmap");
    let again = read_bitmap(storage, "del-2.bm", rows).expect("reading a bitmap just written");
    assert_eq!(again, bitmap, "a bitmap did not read back equal");
}

/// Writes `seg-1.pdx` (3 rows), `seg-2.pdx` (1 row) and `seg-3.pdx` (0 rows).
fn write_segments(storage: &SimStorage) {
    let sets: [&[&str]; 3] = [&["a/1", "a/2", "b"], &["a/1"], &[]];
    for (i, uris) in sets.iter().enumerate() {
        let name = format!("seg-{}.pdx", i + 1);
        write_segment(storage, &name, &|visit| {
            for (n, uri) in uris.iter().enumerate() {
                visit(SegmentEntry { uri: uri.as_bytes(), serial: 1 + n as u64, stamp: "s", body: &[0, 0] })?;
            }
            Ok(())
        })
        .expect("writing a segment");
    }
}

fn structured(spec: Spec) {
    let storage = SimStorage::new(ROOT);
    let manifest = spec.manifest();
    let written = write_manifest(&storage, &manifest);
    // The same manifest framed by hand: read_manifest must refuse exactly
    // what write_manifest refuses.
    let payload = postcard::to_stdvec(&manifest).expect("encoding a manifest");
    let by_hand = SimStorage::new(ROOT);
    by_hand.write(MANIFEST, &frame(MANIFEST_MAGIC, &payload));
    let read = read_manifest(&by_hand);
    match &written {
        Ok(()) => {
            let back = read_manifest(&storage).expect("reading a manifest just written");
            assert_eq!(back.as_ref(), Some(&manifest), "a manifest did not read back equal");
            assert!(matches!(&read, Ok(Some(m)) if *m == manifest), "{read:?}");
        }
        Err(e) => {
            assert_eq!(error_kind(e), "InvalidInput", "{e}");
            let Err(e) = &read else { panic!("write_manifest refused ({e:?}) what read_manifest accepts: {read:?}") };
            assert_eq!(error_kind(e), "Corrupt", "{e}");
        }
    }

    let rows = [spec.deleted.0.iter().map(|&v| u32::from(v)).collect::<Vec<u32>>(), spec.deleted.1.clone()];
    for (name, values) in ["del-3.bm", "del-4.bm"].iter().zip(rows) {
        let bitmap: RoaringBitmap = values.into_iter().collect();
        write_bitmap(&storage, name, &bitmap).expect("writing a bitmap");
        let limit = bitmap.max().map_or(0, |m| u64::from(m) + 1);
        assert_eq!(read_bitmap(&storage, name, limit).expect("reading a bitmap just written"), bitmap);
        if limit > 0 {
            let e = read_bitmap(&storage, name, limit - 1).expect_err("a bitmap past the rows was read");
            assert_eq!(error_kind(&e), "Corrupt", "{e}");
        }
    }
    if written.is_ok() {
        write_segments(&storage);
        open_index(&storage, Some(&manifest));
    }
}

/// The fuzz target: see the module documentation.
pub fn manifest(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let storage = SimStorage::new(ROOT);
    match mode % 5 {
        0 | 1 => {
            // Raw bytes, or a payload framed in version 2 or (an index of
            // an earlier release) version 1.
            let file = match mode % 10 {
                0 | 5 => rest.to_vec(),
                1 => frame_version(MANIFEST_MAGIC, 1, rest),
                _ => frame(MANIFEST_MAGIC, rest),
            };
            storage.write(MANIFEST, &file);
            let manifest = read_and_rewrite(&storage);
            open_index(&storage, manifest.as_ref());
        }
        2 | 3 => {
            if rest.len() < 8 {
                return;
            }
            let (rows, file) = rest.split_at(8);
            let rows = u64::from_le_bytes(rows.try_into().expect("8 bytes"));
            let (file, payload) =
                if mode % 5 == 2 { (file.to_vec(), None) } else { (frame(BITMAP_MAGIC, file), Some(file)) };
            storage.write(BITMAP_NAME, &file);
            check_bitmap(&storage, payload, rows);
        }
        _ => {
            if let Ok(spec) = Spec::arbitrary_take_rest(Unstructured::new(rest)) {
                structured(spec);
            }
        }
    }
}
