//! Damaged `MANIFEST` and deletion-bitmap files: every flipped byte and
//! every truncation is `Error::Corrupt`, never a panic and never a different
//! manifest or bitmap; a missing bitmap file and an ordinal past the
//! segment's rows are `Error::Corrupt` too.

use std::fs;
use std::path::Path;

use pushdex::manifest::{read_bitmap, read_manifest, write_bitmap, write_manifest, Manifest, SegmentRef, MANIFEST};
use pushdex::storage::FsStorage;
use pushdex::Error;
use roaring::RoaringBitmap;

fn storage() -> (tempfile::TempDir, FsStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap();
    (dir, storage)
}

fn manifest() -> Manifest {
    Manifest {
        serial: 1_000_003,
        log_gen: 12,
        next_gen: 13,
        segments: vec![
            SegmentRef { name: "seg-11.pdx".into(), rows: 40, deletions: None },
            SegmentRef { name: "seg-9.pdx".into(), rows: 70_000, deletions: Some("del-10.bm".into()) },
            SegmentRef { name: "seg-2.pdx".into(), rows: 3, deletions: Some("del-8.bm".into()) },
        ],
        checkpoints: vec![
            ("crawl".into(), "file:///share/doc2.txt".into(), 1_000_001),
            ("pushdex.connector.a".into(), "{}".into(), 5),
        ],
        analyzer: pushdex::Analyzer::English,
    }
}

/// `what` is `Error::Corrupt` naming `file`.
#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(what: pushdex::Result<T>, file: &Path, case: &str) {
    match what {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, file, "{case}"),
        other => panic!("{case}: expected Corrupt, got {other:?}"),
    }
}

#[test]
fn every_flipped_byte_of_a_manifest_is_corrupt() {
    let (dir, storage) = storage();
    write_manifest(&storage, &manifest()).unwrap();
    let path = dir.path().join(MANIFEST);
    let good = fs::read(&path).unwrap();
    assert!(good.len() > 100, "a manifest of {} bytes", good.len());
    for at in 0..good.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            fs::write(&path, &bad).unwrap();
            assert_corrupt(read_manifest(&storage), &path, &format!("byte {at} ^ {mask:#x}"));
        }
    }
    fs::write(&path, &good).unwrap();
    assert_eq!(read_manifest(&storage).unwrap(), Some(manifest()));
}

#[test]
fn every_truncation_of_a_manifest_is_corrupt() {
    let (dir, storage) = storage();
    write_manifest(&storage, &manifest()).unwrap();
    let path = dir.path().join(MANIFEST);
    let good = fs::read(&path).unwrap();
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        assert_corrupt(read_manifest(&storage), &path, &format!("cut at {len}"));
    }
    let mut longer = good.clone();
    longer.push(0);
    fs::write(&path, &longer).unwrap();
    assert_corrupt(read_manifest(&storage), &path, "one byte more");
}

/// A small bitmap (one array container) and a large one (array and bitmap
/// containers, ranges) with the row count of their segment.
fn small_bitmap() -> (RoaringBitmap, u64) {
    ([0u32, 1, 17, 39].into_iter().collect(), 40)
}

fn large_bitmap() -> (RoaringBitmap, u64) {
    let mut bitmap: RoaringBitmap = (0..3000u32).map(|i| i * 7).collect();
    bitmap.insert_range(100_000..300_000);
    bitmap.insert(1_000_000);
    (bitmap, 1_000_001)
}

/// Flips the byte at each of `offsets` of the bitmap file, one at a time.
fn flips_are_corrupt(storage: &FsStorage, dir: &Path, name: &str, rows: u64, offsets: impl Iterator<Item = usize>) {
    let path = dir.join(name);
    let good = fs::read(&path).unwrap();
    let mut count = 0;
    for at in offsets {
        for mask in [0x01, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            fs::write(&path, &bad).unwrap();
            assert_corrupt(read_bitmap(storage, name, rows), &path, &format!("{name}: byte {at} ^ {mask:#x}"));
        }
        count += 1;
    }
    assert!(count > 0);
    fs::write(&path, &good).unwrap();
}

#[test]
fn every_flipped_byte_of_a_small_bitmap_is_corrupt() {
    let (dir, storage) = storage();
    let (bitmap, rows) = small_bitmap();
    write_bitmap(&storage, "del-8.bm", &bitmap).unwrap();
    let len = fs::read(dir.path().join("del-8.bm")).unwrap().len();
    flips_are_corrupt(&storage, dir.path(), "del-8.bm", rows, 0..len);
    assert_eq!(read_bitmap(&storage, "del-8.bm", rows).unwrap(), bitmap);
}

#[test]
fn spread_flipped_bytes_of_a_large_bitmap_are_corrupt() {
    let (dir, storage) = storage();
    let (bitmap, rows) = large_bitmap();
    write_bitmap(&storage, "del-10.bm", &bitmap).unwrap();
    let len = fs::read(dir.path().join("del-10.bm")).unwrap().len();
    assert!(len > 20_000, "a bitmap file of {len} bytes");
    // Every header byte and the roaring header, then ~300 spread offsets.
    let offsets = (0..64).chain((64..len).step_by(len / 300)).chain([len - 1]);
    flips_are_corrupt(&storage, dir.path(), "del-10.bm", rows, offsets);
    assert_eq!(read_bitmap(&storage, "del-10.bm", rows).unwrap(), bitmap);
}

#[test]
fn every_truncation_of_a_bitmap_is_corrupt() {
    let (dir, storage) = storage();
    let (bitmap, rows) = small_bitmap();
    write_bitmap(&storage, "del-8.bm", &bitmap).unwrap();
    let path = dir.path().join("del-8.bm");
    let good = fs::read(&path).unwrap();
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        assert_corrupt(read_bitmap(&storage, "del-8.bm", rows), &path, &format!("cut at {len}"));
    }
    // A few cuts of the large one too, at container boundaries and inside.
    let (large, large_rows) = large_bitmap();
    write_bitmap(&storage, "del-10.bm", &large).unwrap();
    let path = dir.path().join("del-10.bm");
    let good = fs::read(&path).unwrap();
    for len in (0..good.len()).step_by(97).chain([good.len() - 8192, good.len() - 1]) {
        fs::write(&path, &good[..len]).unwrap();
        assert_corrupt(read_bitmap(&storage, "del-10.bm", large_rows), &path, &format!("large cut at {len}"));
    }
}

#[test]
fn a_missing_bitmap_file_is_corrupt() {
    let (dir, storage) = storage();
    assert_corrupt(read_bitmap(&storage, "del-10.bm", 10), &dir.path().join("del-10.bm"), "missing");
}

#[test]
fn an_ordinal_past_the_rows_is_corrupt() {
    let (dir, storage) = storage();
    for (bitmap, rows) in [small_bitmap(), large_bitmap()] {
        write_bitmap(&storage, "del-8.bm", &bitmap).unwrap();
        assert_eq!(read_bitmap(&storage, "del-8.bm", rows).unwrap(), bitmap);
        let path = dir.path().join("del-8.bm");
        assert_corrupt(read_bitmap(&storage, "del-8.bm", rows - 1), &path, "one row fewer");
        assert_corrupt(read_bitmap(&storage, "del-8.bm", 0), &path, "no rows");
    }
}

#[test]
fn a_manifest_naming_missing_files_still_reads() {
    // Whether the named files exist is the index's check, at open.
    let (_dir, storage) = storage();
    write_manifest(&storage, &manifest()).unwrap();
    assert_eq!(read_manifest(&storage).unwrap(), Some(manifest()));
}
