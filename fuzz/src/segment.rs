//! `segment`: bytes as a segment file.
//!
//! The first byte picks the mode. Even: the rest is `seg-1.pdx` as is;
//! if it opens, every reader runs with keys cut from the input and from the
//! segment itself. Odd: the rest is read with `arbitrary` as a [`SegSpec`]:
//! entries that [`write_segment`] writes (sorted, duplicates dropped), then
//! damage (byte flips, a cut, appended bytes), then every reader.
//!
//! Properties (docs/FORMAT.md, "Segment"): nothing panics; on a written
//! segment, damaged or not, every read that succeeds returns exactly what
//! was written (checksums cover every byte, so damage is an error, never a
//! different answer); on an undamaged one every read succeeds.

use std::ops::Range;

use arbitrary::{Arbitrary, Unstructured};
use pushdex::segment::{write_segment, Segment, SegmentEntry};
use pushdex::storage::SimStorage;

use crate::common::ROOT;

const NAME: &str = "seg-1.pdx";

/// Bounds the reads of one input.
const MAX_READS: usize = 4096;

/// A URI as bytes: mostly over a tiny alphabet that includes `0x00` and
/// `0xff` (the prefix successor's edge), sometimes any bytes (at most 64:
/// every prefix of every URI is looked up).
#[derive(Debug, Clone)]
pub struct Key(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Key> {
        if u.ratio(1, 8)? {
            let len = u.int_in_range(0..=64)?;
            return Ok(Key(u.bytes(len)?.to_vec()));
        }
        let len = u.int_in_range(0..=5)?;
        let mut key = Vec::new();
        for _ in 0..len {
            key.push(*u.choose(b"ab/a/\xff\x00")?);
        }
        Ok(Key(key))
    }
}

/// A body: a pattern of `len` bytes (up to two 64 KiB blocks, so that
/// entries straddle blocks), or given bytes.
#[derive(Debug, Arbitrary)]
pub enum Body {
    /// `len` bytes of a pattern seeded by `seed`.
    Pattern { seed: u8, len: u16, long: bool },
    /// These bytes.
    Bytes(Vec<u8>),
    /// An encoded document body (docs/FORMAT.md, "Payloads"), so that the
    /// search sections hold terms: a `tag` meta per byte of `tags` and a
    /// text part `body` of words picked by `words`.
    Doc { tags: Vec<u8>, words: Vec<u8> },
}

/// Appends a postcard length-prefixed byte string.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len();
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Pattern { seed, len, long } => {
                let len = usize::from(*len) * if *long { 2 } else { 1 };
                (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(*seed)).collect()
            }
            Body::Bytes(b) => b.clone(),
            Body::Doc { tags, words } => {
                const VOCABULARY: [&str; 8] = ["a", "b", "ab", "Word", "é", "x1", "3.14", "don't"];
                let tags: Vec<u8> = tags.iter().take(8).copied().collect();
                let mut out = vec![tags.len() as u8];
                for tag in &tags {
                    put_bytes(&mut out, b"tag");
                    put_bytes(&mut out, &[b'a' + tag % 4]);
                }
                out.push(1);
                put_bytes(&mut out, b"body");
                out.push(1);
                let text: Vec<&str> = words.iter().take(64).map(|&w| VOCABULARY[usize::from(w % 8)]).collect();
                put_bytes(&mut out, text.join(" ").as_bytes());
                out
            }
        }
    }
}

/// What happens to the written file.
#[derive(Debug, Arbitrary)]
pub enum Damage {
    /// XOR the byte at `at` (modulo the length) with `xor`.
    Flip { at: u32, xor: u8 },
    /// Cut the file at `at` (modulo the length + 1).
    Cut(u32),
    /// Append bytes.
    Append(Vec<u8>),
}

/// A segment to write, damage and read.
#[derive(Debug, Arbitrary)]
pub struct SegSpec {
    /// URI, serial, stamp, body.
    pub entries: Vec<(Key, u64, String, Body)>,
    /// Keys to look up besides the entries' URIs and their prefixes.
    pub probes: Vec<Key>,
    /// Damage, in order.
    pub damage: Vec<Damage>,
}

/// One written row.
struct Want {
    uri: Vec<u8>,
    serial: u64,
    stamp: String,
    body: Vec<u8>,
}

/// `Ok(x)` must be `want`; an error is fine only on a damaged file.
fn check<T: PartialEq + std::fmt::Debug>(got: pushdex::Result<T>, want: T, damaged: bool, what: &str) {
    match got {
        Ok(got) => assert_eq!(got, want, "{what}"),
        Err(e) => assert!(damaged, "{what} failed on an undamaged segment: {e}"),
    }
}

fn lower_bound(rows: &[Want], key: &[u8]) -> u32 {
    rows.partition_point(|r| r.uri.as_slice() < key) as u32
}

fn prefix_range(rows: &[Want], prefix: &[u8]) -> Range<u32> {
    let start = lower_bound(rows, prefix);
    let n = rows[start as usize..].iter().take_while(|r| r.uri.starts_with(prefix)).count();
    start..start + n as u32
}

/// Body bytes per input, past which bodies are left empty: big enough for
/// several 64 KiB blocks, small enough to keep executions fast.
const BODY_BUDGET: usize = 160 * 1024;

/// Entries per input: the reads below are quadratic in them.
const MAX_ENTRIES: usize = 256;

fn structured(spec: SegSpec) {
    let mut budget = BODY_BUDGET;
    let mut rows: Vec<Want> = Vec::new();
    for (key, serial, stamp, body) in spec.entries.iter().take(MAX_ENTRIES) {
        let mut body = body.bytes();
        body.truncate(budget);
        budget -= body.len();
        rows.push(Want { uri: key.0.clone(), serial: *serial, stamp: stamp.clone(), body });
    }
    rows.sort_by(|a, b| a.uri.cmp(&b.uri));
    rows.dedup_by(|a, b| a.uri == b.uri);

    let storage = SimStorage::new(ROOT);
    let written = write_segment(&storage, NAME, &|visit| {
        for r in &rows {
            visit(SegmentEntry { uri: &r.uri, serial: r.serial, stamp: &r.stamp, body: &r.body })?;
        }
        Ok(())
    });
    assert_eq!(written.expect("writing sorted entries"), rows.len() as u64);
    let original = storage.read(NAME).expect("the segment file");
    let mut bytes = original.clone();
    for d in &spec.damage {
        match d {
            Damage::Flip { at, xor } if !bytes.is_empty() => {
                let at = *at as usize % bytes.len();
                bytes[at] ^= xor;
            }
            Damage::Flip { .. } => {}
            Damage::Cut(at) => bytes.truncate(*at as usize % (bytes.len() + 1)),
            Damage::Append(more) => bytes.extend_from_slice(more),
        }
    }
    let damaged = bytes != original;
    storage.write(NAME, &bytes);

    let seg = match Segment::open(&storage, NAME) {
        Ok(seg) => seg,
        Err(e) => {
            assert!(damaged, "an undamaged segment does not open: {e}");
            return;
        }
    };
    // The footer is checksummed: what it says was written.
    assert_eq!(seg.rows(), rows.len() as u64);
    let (min, max) = (rows.iter().map(|r| r.serial).min(), rows.iter().map(|r| r.serial).max());
    assert_eq!((seg.min_serial(), seg.max_serial()), (min.unwrap_or(0), max.unwrap_or(0)));

    for (i, r) in rows.iter().enumerate() {
        let i = i as u32;
        check(seg.ordinal(&r.uri), Some(i), damaged, "ordinal of a written URI");
        check(seg.serial(i), r.serial, damaged, "serial");
        let row = seg.row(i).map(|row| (row.serial, row.stamp.to_string(), row.body.to_vec()));
        check(row, (r.serial, r.stamp.clone(), r.body.clone()), damaged, "row");
    }
    for (i, r) in rows.iter().enumerate() {
        check(seg.uri_at(i as u32), r.uri.clone(), damaged, "uri_at");
    }
    if !damaged {
        seg.check_search_index().expect("the search index of an undamaged segment");
    }
    searches(&storage, damaged);
    let n = rows.len() as u32;
    assert!(seg.uri_at(n).is_err(), "uri_at past the last row succeeded");
    assert!(seg.row(n).is_err() && seg.serial(u32::MAX).is_err(), "a read past the last row succeeded");

    let mut keys: Vec<Vec<u8>> = spec.probes.iter().map(|k| k.0.clone()).collect();
    for r in &rows {
        keys.extend((0..=r.uri.len()).map(|l| r.uri[..l].to_vec()));
    }
    keys.sort();
    keys.dedup();
    // Evenly spread over the sorted keys: short prefixes come first.
    let spread = |n: usize| keys.iter().step_by(keys.len().div_ceil(n).max(1));
    for key in spread(256) {
        let want = rows.iter().position(|r| r.uri == *key).map(|i| i as u32);
        check(seg.ordinal(key), want, damaged, "ordinal");
        check(seg.lower_bound(key), lower_bound(&rows, key), damaged, "lower_bound");
        check(seg.prefix_range(key), prefix_range(&rows, key), damaged, "prefix_range");
    }
    // Ranges: every (prefix, start) pair of a few keys.
    for prefix in spread(8) {
        for start in spread(8) {
            let want: Vec<(Vec<u8>, u32)> = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.uri.starts_with(prefix) && r.uri >= *start)
                .map(|(i, r)| (r.uri.clone(), i as u32))
                .collect();
            let mut it = match seg.names_in(prefix, start) {
                Ok(it) => it,
                Err(e) => {
                    assert!(damaged, "range failed on an undamaged segment: {e}");
                    continue;
                }
            };
            let mut got = Vec::new();
            let mut failed = false;
            while let Some(item) = it.next_entry() {
                match item {
                    Ok((uri, ord)) => got.push((uri.to_vec(), ord)),
                    Err(e) => {
                        assert!(damaged, "range failed on an undamaged segment: {e}");
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                assert_eq!(got, want, "range({prefix:?}, {start:?})");
            }
        }
    }
}

/// Every reader on whatever opened, with keys from `keys` and from the
/// segment's own URIs. Only "no panic" is checked: a forged file with
/// matching checksums may say anything.
fn raw(seg: &Segment, input: &[u8]) {
    let rows = seg.rows();
    let mut keys: Vec<Vec<u8>> = input.chunks(7).take(64).map(<[u8]>::to_vec).collect();
    keys.push(Vec::new());
    let mut it = seg.names();
    let mut seen = 0u64;
    while let Some(item) = it.next_entry() {
        seen += 1;
        if let Ok((uri, ord)) = item {
            if keys.len() < 256 {
                keys.push(uri.to_vec());
            }
            let _ = seg.row(ord);
        }
        if seen as usize > MAX_READS {
            break;
        }
    }
    for ord in (0..rows.min(MAX_READS as u64) as u32).chain([rows as u32, u32::MAX]) {
        let _ = seg.serial(ord);
        let _ = seg.row(ord);
        let _ = seg.uri_at(ord);
    }
    let _ = seg.check_search_index();
    for key in &keys {
        if let Ok(Some(ord)) = seg.ordinal(key) {
            let _ = seg.row(ord);
        }
        let _ = seg.lower_bound(key);
        let _ = seg.prefix_range(key);
        if let Ok(mut it) = seg.names_in(key, key) {
            for _ in 0..16 {
                if it.next_entry().is_none() {
                    break;
                }
            }
        }
    }
    let _ = (seg.min_serial(), seg.max_serial(), seg.file_bytes(), seg.name(), seg.path());
}

/// The fuzz target: see the module documentation.
pub fn segment(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let storage = SimStorage::new(ROOT);
        storage.write(NAME, rest);
        if let Ok(seg) = Segment::open(&storage, NAME) {
            raw(&seg, rest);
            searches(&storage, true);
        }
    } else if let Ok(spec) = SegSpec::arbitrary_take_rest(Unstructured::new(rest)) {
        structured(spec);
    }
}

/// Searches the segment in `storage` for words of [`Body::Doc`]'s
/// vocabulary, alone, all together and as ranked ORs: block-max and scoring
/// every row give the same answer on an undamaged segment (the same hits,
/// or the same error: URIs are any bytes here, and a hit's must be UTF-8);
/// on any, an error is fine, a panic or a hang is not.
fn searches(storage: &SimStorage, damaged: bool) {
    use pushdex::{search_segment, Analyzer, Query};
    let Ok(seg) = Segment::open(storage, NAME) else { return };
    let seg = std::sync::Arc::new(seg);
    let texts = ["a", "word", "b ab", "x1 a don't", "é 3.14"];
    for (i, text) in texts.iter().enumerate() {
        let queries = [
            Query::Text { field: None, text: text.to_string() },
            Query::Text { field: Some("body".into()), text: text.to_string() },
            Query::Any { field: None, text: text.to_string(), min_should_match: 1 + i % 2 },
        ];
        for query in &queries {
            for limit in [1, 3, 100] {
                let search = |block_max| search_segment(seg.clone(), Analyzer::Exact, query, limit, block_max);
                let (fast, every) = (search(true), search(false));
                if !damaged {
                    // The same hits, or the same error (a hit whose URI,
                    // written as any bytes here, is not UTF-8).
                    assert_eq!(format!("{fast:?}"), format!("{every:?}"), "{query} limit {limit}");
                }
            }
        }
    }
}
