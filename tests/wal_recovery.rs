//! The operation log recovers exactly the frames that were whole before a
//! crash, cuts a torn tail, and refuses (never skips) damage in the middle.
//!
//! Runs on the real file system (`FsStorage` in a temporary directory); the
//! damage is done to the files directly with `std::fs`.

use std::fs;
use std::path::{Path, PathBuf};

use pushdex::storage::FsStorage;
use pushdex::wal::{log_name, parse_log_name, recover, Recovery, WalWriter, FILE_HEADER_BYTES, FRAME_HEADER_BYTES};
use pushdex::Error;

/// A frame as written: serial, kind, payload.
type Rec = (u64, u8, Vec<u8>);

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const BIG: usize = 100 * 1024;

/// `n` frames with random small payloads, serials going up by 1 to 3 (a
/// frame may be a batch), from `first_serial`. `sizes` overrides the payload
/// size of some frames.
fn make_frames(rng: &mut Rng, n: usize, first_serial: u64, sizes: &[(usize, usize)]) -> Vec<Rec> {
    let mut serial = first_serial;
    (0..n)
        .map(|i| {
            let size =
                sizes.iter().find(|&&(at, _)| at == i).map_or_else(|| rng.below(200) as usize, |&(_, size)| size);
            let rec = (serial, 1 + rng.below(8) as u8, rng.bytes(size));
            serial += 1 + rng.below(3);
            rec
        })
        .collect()
}

/// Appends `frames` to `writer`, writes them out and fsyncs.
fn write_frames(writer: &mut WalWriter, frames: &[Rec]) {
    for (serial, kind, payload) in frames {
        writer.append(*serial, *kind, |buf| buf.extend_from_slice(payload));
    }
    writer.write_out().unwrap();
    writer.file().sync().unwrap();
}

/// Creates `wal-<gen>.log` holding `frames`; returns the offset where each
/// frame starts, plus the end of the file.
fn write_log(storage: &FsStorage, gen: u64, frames: &[Rec]) -> Vec<usize> {
    let mut writer = WalWriter::create(storage, gen).unwrap();
    write_frames(&mut writer, frames);
    boundaries(frames)
}

fn boundaries(frames: &[Rec]) -> Vec<usize> {
    let mut at = vec![FILE_HEADER_BYTES];
    for (_, _, payload) in frames {
        at.push(at.last().unwrap() + FRAME_HEADER_BYTES + payload.len());
    }
    at
}

/// The generation after every log file in the directory: where recovery
/// writes on, as the index gives it.
fn next_gen(storage: &FsStorage) -> u64 {
    log_gens(storage).last().map_or(1, |g| g + 1)
}

fn log_gens(storage: &FsStorage) -> Vec<u64> {
    use pushdex::storage::Storage;
    let mut gens: Vec<u64> = storage.list().unwrap().iter().filter_map(|n| parse_log_name(n)).collect();
    gens.sort_unstable();
    gens
}

/// Removes the log files after `gen` (the new files recoveries made), so
/// that `gen` is the last again.
fn remove_after(dir: &Path, storage: &FsStorage, gen: u64) {
    for g in log_gens(storage).into_iter().filter(|&g| g > gen) {
        fs::remove_file(log_path(dir, g)).unwrap();
    }
}

fn replay(storage: &FsStorage, from_gen: u64) -> pushdex::Result<(Vec<Rec>, Recovery)> {
    let mut seen = Vec::new();
    let recovery = recover(storage, from_gen, next_gen(storage), |frame| {
        seen.push((frame.serial, frame.kind, frame.payload.to_vec()));
        Ok(())
    })?;
    Ok((seen, recovery))
}

fn setup() -> (tempfile::TempDir, FsStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap();
    (dir, storage)
}

fn log_path(dir: &Path, gen: u64) -> PathBuf {
    dir.join(log_name(gen))
}

fn file_len(path: &Path) -> usize {
    fs::metadata(path).unwrap().len() as usize
}

/// Asserts a `Corrupt` error naming `path`, whose detail contains `needle`.
fn assert_corrupt<T: std::fmt::Debug>(result: pushdex::Result<T>, path: &Path, needle: &str) {
    match result {
        Err(Error::Corrupt { path: p, detail }) => {
            assert_eq!(p, path, "{detail}");
            assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
        }
        other => panic!("expected Corrupt naming {}, got {other:?}", path.display()),
    }
}

/// Cuts the log at each offset of `cuts` and checks that recovery returns
/// exactly the frames wholly before the cut and cuts the file back to the
/// last frame boundary.
fn check_cuts(dir: &Path, storage: &FsStorage, frames: &[Rec], cuts: impl Iterator<Item = usize>) -> usize {
    let path = log_path(dir, 1);
    let full = fs::read(&path).unwrap();
    let bounds = boundaries(frames);
    assert_eq!(full.len(), *bounds.last().unwrap());
    let mut checked = 0;
    for cut in cuts {
        remove_after(dir, storage, 1);
        fs::write(&path, &full[..cut]).unwrap();
        let whole = bounds.iter().filter(|&&b| b <= cut).count() - 1;
        let (seen, recovery) = replay(storage, 1).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert!(seen == frames[..whole], "cut at {cut}: {} frames recovered, expected {whole}", seen.len());
        assert_eq!(file_len(&path), bounds[whole], "cut at {cut}");
        assert_eq!((recovery.writer.gen(), recovery.writer.len()), (2, FILE_HEADER_BYTES as u64), "cut at {cut}");
        assert_eq!(recovery.gens, [1]);
        checked += 1;
    }
    checked
}

#[test]
fn a_cut_at_every_byte_of_the_last_small_frames_recovers_the_whole_ones() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0001);
    // A zero-length and a 100 KB frame in the middle; the last five small.
    let frames = make_frames(&mut rng, 40, 1, &[(0, 0), (10, 0), (20, BIG), (37, 0)]);
    let bounds = write_log(&storage, 1, &frames);
    let from = bounds[frames.len() - 5];
    let checked = check_cuts(dir.path(), &storage, &frames, from..=*bounds.last().unwrap());
    assert!(checked > 5 * FRAME_HEADER_BYTES);
}

#[test]
fn a_cut_in_a_100_kb_last_frame_recovers_the_frames_before_it() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0002);
    let frames = make_frames(&mut rng, 12, 1, &[(3, 0), (11, BIG)]);
    let bounds = write_log(&storage, 1, &frames);
    let (start, end) = (bounds[11], bounds[12]);
    // Every byte of the header and of the first and last KiB of the payload,
    // and a stride through the rest: each cut is a full recovery with two
    // fsyncs, and 100 000 of them would take minutes, not seconds. The
    // unit tests cut a smaller frame at every byte without I/O.
    let head = start..start + FRAME_HEADER_BYTES + 1024;
    let middle = (start + FRAME_HEADER_BYTES + 1024..end - 1024).step_by(97);
    let tail = end - 1024..=end;
    check_cuts(dir.path(), &storage, &frames, head.chain(middle).chain(tail));
}

/// Byte positions to damage inside the frame at `start` with `payload_len`
/// payload bytes: check, len, serial, kind, and the middle of the payload.
fn damage_points(start: usize, payload_len: usize) -> Vec<(&'static str, usize)> {
    let mut points = vec![
        ("check low byte", start),
        ("check high byte", start + 7),
        ("len low byte", start + 8),
        ("len high byte", start + 11),
        ("serial", start + 12),
        ("serial high byte", start + 19),
        ("kind", start + 20),
    ];
    if payload_len > 0 {
        points.push(("payload", start + FRAME_HEADER_BYTES + payload_len / 2));
    }
    points
}

#[test]
fn a_flipped_byte_in_an_early_frame_is_corrupt() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0003);
    let frames = make_frames(&mut rng, 30, 1, &[(1, 0), (15, BIG)]);
    let bounds = write_log(&storage, 1, &frames);
    let path = log_path(dir.path(), 1);
    let full = fs::read(&path).unwrap();
    // The first frame, the empty one, the big one, and the one before last.
    for frame in [0, 1, 15, frames.len() - 2] {
        for (what, at) in damage_points(bounds[frame], frames[frame].2.len()) {
            let mut damaged = full.clone();
            damaged[at] ^= 0x10;
            fs::write(&path, &damaged).unwrap();
            let mut applied = 0;
            let result = recover(&storage, 1, 2, |_| {
                applied += 1;
                Ok(())
            });
            let context = format!("frame {frame}, {what} at byte {at}");
            match result {
                Err(Error::Corrupt { path: p, detail }) => {
                    assert_eq!(p, path, "{context}");
                    let needle = format!("bad frame at offset {}", bounds[frame]);
                    assert!(detail.contains(&needle), "{context}: {detail}");
                }
                other => panic!("{context}: expected Corrupt, got {other:?}"),
            }
            assert_eq!(applied, frame, "{context}: frames before the damage are replayed");
            assert_eq!(fs::read(&path).unwrap(), damaged, "{context}: a corrupt log must be left as it is");
        }
    }
}

#[test]
fn a_flipped_byte_in_the_last_frame_is_a_torn_tail() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0004);
    for last_size in [0, 1, 150, BIG] {
        let frames = make_frames(&mut rng, 20, 1, &[(5, 0), (19, last_size)]);
        let bounds = write_log(&storage, 1, &frames);
        let path = log_path(dir.path(), 1);
        let full = fs::read(&path).unwrap();
        let last = frames.len() - 1;
        for (what, at) in damage_points(bounds[last], last_size) {
            let mut damaged = full.clone();
            damaged[at] ^= 0x10;
            remove_after(dir.path(), &storage, 1);
            fs::write(&path, &damaged).unwrap();
            let context = format!("last frame of {last_size} bytes, {what} at byte {at}");
            let (seen, recovery) = replay(&storage, 1).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert!(seen == frames[..last], "{context}: {} frames recovered", seen.len());
            assert_eq!(file_len(&path), bounds[last], "{context}");
            assert_eq!(recovery.writer.gen(), 2, "{context}");
        }
    }
}

#[test]
fn appending_after_recovery_continues_the_log() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0005);
    let frames = make_frames(&mut rng, 10, 1, &[(4, BIG)]);
    let bounds = write_log(&storage, 1, &frames);
    let path = log_path(dir.path(), 1);

    // Crash in the middle of the last frame.
    fs::write(&path, &fs::read(&path).unwrap()[..bounds[10] - 3]).unwrap();
    let (seen, mut recovery) = replay(&storage, 1).unwrap();
    assert!(seen == frames[..9]);
    assert_eq!(file_len(&path), bounds[9], "the torn tail is cut");
    assert_eq!(recovery.writer.gen(), 2, "writing goes on in a new file");

    // Numbering resumes after the last recovered operation.
    let next = frames[8].0 + 1;
    let more = make_frames(&mut rng, 7, next, &[(0, 0), (3, BIG)]);
    write_frames(&mut recovery.writer, &more);
    assert_eq!(recovery.writer.len(), file_len(&log_path(dir.path(), 2)) as u64);
    drop(recovery);

    let (seen, mut recovery) = replay(&storage, 1).unwrap();
    let expected: Vec<Rec> = frames[..9].iter().chain(&more).cloned().collect();
    assert!(seen == expected, "{} frames, expected {}", seen.len(), expected.len());

    // And once more on a clean log, without any cut.
    let last = make_frames(&mut rng, 3, more.last().unwrap().0 + 1, &[]);
    write_frames(&mut recovery.writer, &last);
    drop(recovery);
    let (seen, _) = replay(&storage, 1).unwrap();
    let expected: Vec<Rec> = expected.into_iter().chain(last).collect();
    assert!(seen == expected);
}

#[test]
fn log_files_replay_in_gen_order_from_from_gen() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0006);
    // 9 < 10 in numbers but not in text: the order must be numeric.
    let a = make_frames(&mut rng, 5, 1, &[]);
    let b = make_frames(&mut rng, 6, a.last().unwrap().0 + 1, &[(2, 0)]);
    let c = make_frames(&mut rng, 4, b.last().unwrap().0 + 1, &[]);
    write_log(&storage, 2, &a);
    write_log(&storage, 9, &b);
    write_log(&storage, 10, &c);
    // Not log files: ignored whatever they hold.
    for other in ["wal-01.log", "wal-11.log.tmp", "MANIFEST", "wal-x.log"] {
        fs::write(dir.path().join(other), b"junk").unwrap();
    }

    let (seen, recovery) = replay(&storage, 0).unwrap();
    let all: Vec<Rec> = a.iter().chain(&b).chain(&c).cloned().collect();
    assert!(seen == all);
    assert_eq!(recovery.gens, [2, 9, 10]);
    assert_eq!(recovery.writer.gen(), 11);
    drop(recovery);

    // The empty wal-11.log is removed, and writing goes on in wal-12.log.
    let (seen, recovery) = replay(&storage, 3).unwrap();
    let newer: Vec<Rec> = b.iter().chain(&c).cloned().collect();
    assert!(seen == newer);
    assert_eq!(recovery.gens, [9, 10]);
    assert_eq!(recovery.writer.gen(), 12);
    assert!(!log_path(dir.path(), 11).exists());
    drop(recovery);

    let (seen, recovery) = replay(&storage, 10).unwrap();
    assert!(seen == c);
    assert_eq!(recovery.gens, [10]);
    drop(recovery);
    assert!(log_path(dir.path(), 2).exists(), "older logs are the caller's to remove");

    // Past every log: nothing to replay, a fresh file after the others.
    let (seen, recovery) = replay(&storage, 14).unwrap();
    assert!(seen.is_empty());
    assert!(recovery.gens.is_empty());
    assert_eq!(recovery.writer.gen(), 14);
    assert_eq!(file_len(&log_path(dir.path(), 14)), FILE_HEADER_BYTES);
}

#[test]
fn a_torn_frame_in_a_file_that_is_not_the_last_is_corrupt() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0007);
    let a = make_frames(&mut rng, 5, 1, &[]);
    let b = make_frames(&mut rng, 5, a.last().unwrap().0 + 1, &[]);
    let bounds = write_log(&storage, 1, &a);
    write_log(&storage, 2, &b);
    let first = log_path(dir.path(), 1);
    let cut = bounds[5] - 2;
    fs::write(&first, &fs::read(&first).unwrap()[..cut]).unwrap();

    assert_corrupt(replay(&storage, 1), &first, &format!("bad frame at offset {}", bounds[4]));
    assert_eq!(file_len(&first), cut, "a corrupt log must be left as it is");

    // Replaying from gen 2 never looks at the damaged file.
    let (seen, _) = replay(&storage, 2).unwrap();
    assert!(seen == b);

    // A header torn in a file that is not the last is corrupt too.
    remove_after(dir.path(), &storage, 2);
    fs::write(&first, &fs::read(&first).unwrap()[..7]).unwrap();
    assert_corrupt(replay(&storage, 1), &first, "shorter than a log file header");
}

#[test]
fn serials_going_back_across_files_are_corrupt() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_0008);
    write_log(&storage, 1, &make_frames(&mut rng, 3, 100, &[]));
    write_log(&storage, 2, &make_frames(&mut rng, 3, 1, &[]));
    assert_corrupt(replay(&storage, 1), &log_path(dir.path(), 2), "lower than the serial");
}

#[test]
fn a_torn_header_on_the_last_file_is_an_empty_log() {
    let mut rng = Rng(0x5eed_0009);
    for keep in 0..FILE_HEADER_BYTES {
        let (dir, storage) = setup();
        let a = make_frames(&mut rng, 4, 1, &[]);
        write_log(&storage, 1, &a);
        write_log(&storage, 2, &[]);
        let second = log_path(dir.path(), 2);
        let header = fs::read(&second).unwrap();
        fs::write(&second, &header[..keep]).unwrap();

        let (seen, mut recovery) = replay(&storage, 1).unwrap_or_else(|e| panic!("keep {keep}: {e}"));
        assert!(seen == a);
        assert_eq!(recovery.gens, [1]);
        assert_eq!(recovery.writer.gen(), 3);
        assert!(!second.exists(), "keep {keep}: the torn creation is removed");

        let b = make_frames(&mut rng, 2, 10, &[]);
        write_frames(&mut recovery.writer, &b);
        drop(recovery);
        let (seen, _) = replay(&storage, 1).unwrap();
        let all: Vec<Rec> = a.iter().chain(&b).cloned().collect();
        assert!(seen == all, "keep {keep}");
    }
}

#[test]
fn a_damaged_file_header_is_corrupt() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_000a);
    write_log(&storage, 1, &make_frames(&mut rng, 3, 1, &[]));
    let path = log_path(dir.path(), 1);
    let good = fs::read(&path).unwrap();

    let mut bad_magic = good.clone();
    bad_magic[3] = b'?';
    fs::write(&path, &bad_magic).unwrap();
    assert_corrupt(replay(&storage, 1), &path, "expected magic \"PDXWAL\\r\\n\", found \"PDX?AL\\r\\n\"");
    assert_eq!(fs::read(&path).unwrap(), bad_magic, "a corrupt log must be left as it is");

    let mut bad_crc = good.clone();
    bad_crc[9] ^= 1; // the version, without fixing the header crc
    fs::write(&path, &bad_crc).unwrap();
    assert_corrupt(replay(&storage, 1), &path, "header crc32c mismatch");

    let mut bad_salt = good.clone();
    bad_salt[17] ^= 1; // the salt, without fixing the header check
    fs::write(&path, &bad_salt).unwrap();
    assert_corrupt(replay(&storage, 1), &path, "header check mismatch");

    // A newer format is not damage: it says which versions this one reads.
    let mut version_3 = good.clone();
    version_3[8] = 3;
    let crc = crc32c_of(&version_3[..12]);
    version_3[12..16].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &version_3).unwrap();
    match replay(&storage, 1) {
        Err(Error::UnsupportedVersion { path: p, found: 3, supported: (1, 2) }) => assert_eq!(p, path),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

/// crc32c (Castagnoli), bit by bit: the test does not trust the crate's
/// implementation to check the crate's use of it.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn the_file_is_laid_out_as_documented() {
    use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};
    let (dir, storage) = setup();
    let salt = 0x1122_3344_5566_7788u64;
    let mut writer = WalWriter::create_with_salt(&storage, 7, salt).unwrap();
    writer.append(0x0102_0304_0506_0708, 9, |buf| buf.extend_from_slice(b"abc"));
    writer.append(0x0102_0304_0506_0709, 8, |_| {});
    writer.write_out().unwrap();
    let bytes = fs::read(log_path(dir.path(), 7)).unwrap();

    let mut expected = b"PDXWAL\r\n\x02\x00\x00\x00".to_vec();
    expected.extend_from_slice(&crc32c_of(&expected).to_le_bytes());
    expected.extend_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    expected.extend_from_slice(&xxh3_64(&expected).to_le_bytes());
    assert_eq!(expected.len(), FILE_HEADER_BYTES);
    // check (xxh3-64 seeded with the salt) of len, serial, kind, payload.
    let first = b"\x03\x00\x00\x00\x08\x07\x06\x05\x04\x03\x02\x01\x09abc";
    expected.extend_from_slice(&xxh3_64_with_seed(first, salt).to_le_bytes());
    expected.extend_from_slice(first);
    let second = b"\x00\x00\x00\x00\x09\x07\x06\x05\x04\x03\x02\x01\x08";
    expected.extend_from_slice(&xxh3_64_with_seed(second, salt).to_le_bytes());
    expected.extend_from_slice(second);
    assert_eq!(bytes, expected);
}

#[test]
fn a_zero_filled_tail_is_torn_not_corrupt() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_000b);
    let frames = make_frames(&mut rng, 8, 1, &[(3, BIG)]);
    let bounds = write_log(&storage, 1, &frames);
    let path = log_path(dir.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    bytes.resize(bytes.len() + 4096, 0);
    fs::write(&path, &bytes).unwrap();

    let (seen, recovery) = replay(&storage, 1).unwrap();
    assert!(seen == frames);
    assert_eq!(file_len(&path), bounds[8]);

    // Zeros where a frame was half written (size on disk, data not yet).
    drop(recovery);
    remove_after(dir.path(), &storage, 1);
    let mut bytes = fs::read(&path).unwrap();
    let torn_at = bounds[7];
    bytes[torn_at..].fill(0);
    fs::write(&path, &bytes).unwrap();
    let (seen, _) = replay(&storage, 1).unwrap();
    assert!(seen == frames[..7]);
    assert_eq!(file_len(&path), torn_at);
}

#[test]
fn an_error_from_apply_aborts_recovery_and_changes_nothing() {
    let (dir, storage) = setup();
    let mut rng = Rng(0x5eed_000c);
    let frames = make_frames(&mut rng, 6, 1, &[]);
    let bounds = write_log(&storage, 1, &frames);
    let path = log_path(dir.path(), 1);
    fs::write(&path, &fs::read(&path).unwrap()[..bounds[6] - 1]).unwrap();
    let mut calls = 0;
    let result = recover(&storage, 1, 2, |frame| {
        calls += 1;
        if calls == 3 {
            return Err(Error::Corrupt { path: PathBuf::from("record"), detail: format!("serial {}", frame.serial) });
        }
        Ok(())
    });
    assert_corrupt(result, Path::new("record"), &format!("serial {}", frames[2].0));
    assert_eq!(calls, 3);
    assert_eq!(file_len(&path), bounds[6] - 1, "nothing is cut when apply fails");
}
