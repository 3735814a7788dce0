//! The documents every engine receives: file-share-shaped URIs, ~20-byte
//! stamps and ~200 bytes of metas, generated from a number so that no engine
//! pays for holding the whole data set in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::Res;

/// One document as a connector sees it, before any engine encodes it.
#[derive(Clone, Debug)]
pub struct Doc {
    pub uri: String,
    pub stamp: String,
    pub metas: Vec<(&'static str, String)>,
}

/// Folder levels above the files: 10 departments × 10 teams × 10 projects
/// × 2 years × 5 categories = 10,000 leaf folders.
const RADICES: [u64; 5] = [10, 10, 10, 2, 5];
const LEAF_FOLDERS: u64 = 10_000;
const CATEGORIES: [(&str, &str, &str); 5] = [
    ("reports", "pdf", "application/pdf"),
    ("invoices", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("minutes", "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("drafts", "txt", "text/plain"),
    ("contracts", "pdf", "application/pdf"),
];

pub const SHARE: &str = "file:///srv/share/";

/// The synthetic share: `files_per_leaf` documents in each of the 10,000
/// leaf folders, so a department holds a tenth of the documents (100k at
/// N = 1M), a team a hundredth and a project a thousandth (1k).
#[derive(Clone, Copy, Debug)]
pub struct Share {
    pub files_per_leaf: u64,
}

impl Share {
    /// The share closest to `docs` documents (a multiple of 10,000).
    pub fn with_about(docs: u64) -> Share {
        Share { files_per_leaf: docs.div_ceil(LEAF_FOLDERS).max(1) }
    }

    pub fn len(&self) -> u64 {
        LEAF_FOLDERS * self.files_per_leaf
    }

    /// The `k`-th document in push order. A crawler walks the share depth
    /// first, but a directory lists its entries in no particular order: each
    /// level's children are visited in an order scrambled by their parent, so
    /// batches have folder locality without arriving sorted.
    pub fn doc(&self, k: u64) -> Doc {
        let (uri, serial, [dept, team, project, _, category]) = self.place(k);
        let (cat, _, mime) = CATEGORIES[category as usize];
        let h = mix(serial);
        let stamp = stamp_of(h);
        let metas = vec![
            ("title", format!("{} {serial} of project {project}, team {team}", capitalized(cat))),
            ("author", format!("user{:04}@corp.example.com", h % 10_000)),
            ("mimetype", mime.to_string()),
            ("size", format!("{}", (h >> 16) % 50_000_000)),
            ("modified", stamp.clone()),
            ("department", format!("dept{dept:02}")),
            ("sha1", format!("{:016x}{:016x}{:08x}", mix(h), mix(h ^ 1), mix(h ^ 2) as u32)),
            ("acl", format!("group:dept{dept:02}-team{team:02};user:u{:04}", (h >> 20) % 10_000)),
        ];
        Doc { uri, stamp, metas }
    }

    /// The `k`-th document of the search workload: the URI and stamp of
    /// [`Share::doc`]'s `k`-th document, and a body of [`BODY_WORDS`] words
    /// drawn from `vocabulary` (their ranks go to `ranks`, for the checks).
    pub fn text_doc(&self, k: u64, vocabulary: &Vocabulary, ranks: &mut Vec<usize>) -> TextDoc {
        let (uri, serial, _) = self.place(k);
        let stamp = stamp_of(mix(serial));
        let body = vocabulary.text(mix(serial ^ 0x0b0d_7e47), BODY_WORDS, ranks);
        TextDoc { uri, stamp, body }
    }

    /// The URI of the `k`-th document, its serial (the number in its name)
    /// and its folder digits (department, team, project, year, category).
    fn place(&self, k: u64) -> (String, u64, [u64; 5]) {
        let radices = [RADICES[0], RADICES[1], RADICES[2], RADICES[3], RADICES[4], self.files_per_leaf];
        let mut digits = [0u64; 6];
        let mut rest = k;
        for level in (0..6).rev() {
            digits[level] = rest % radices[level];
            rest /= radices[level];
        }
        let mut parent = 0x9e37_79b9_7f4a_7c15u64;
        let mut serial = 0u64;
        for level in 0..6 {
            let r = radices[level];
            digits[level] = (digits[level] * coprime_multiplier(r) + mix(parent) % r) % r;
            parent = mix(parent ^ (digits[level] + 1).wrapping_mul(0x100_0000_01b3));
            serial = serial * r + digits[level];
        }
        let [dept, team, project, year, category, _] = digits;
        let (cat, ext, _) = CATEGORIES[category as usize];
        let uri =
            format!("{SHARE}dept{dept:02}/team{team:02}/project{project}/{}/{cat}/doc{serial:07}.{ext}", 2023 + year);
        (uri, serial, [dept, team, project, year, category])
    }

    /// A URI in a real folder of the share that no document has.
    pub fn missing(&self, k: u64) -> String {
        let mut doc = self.doc(k % self.len());
        doc.uri.push_str(".missing");
        doc.uri
    }

    pub fn department(&self, dept: u64) -> String {
        format!("{SHARE}dept{dept:02}")
    }

    pub fn project(&self, dept: u64, team: u64, project: u64) -> String {
        format!("{SHARE}dept{dept:02}/team{team:02}/project{project}")
    }
}

/// A document outside the share, written by the concurrency workload.
pub fn live_doc(thread: usize, i: u64) -> Doc {
    let h = mix(((thread as u64) << 40) ^ i);
    let stamp = stamp_of(h);
    Doc {
        uri: format!("file:///srv/share/live/t{thread:02}/notes/doc{i:07}.txt"),
        metas: vec![
            ("title", format!("Live note {i} from writer {thread}")),
            ("author", format!("user{:04}@corp.example.com", h % 10_000)),
            ("mimetype", "text/plain".to_string()),
            ("size", format!("{}", (h >> 16) % 50_000)),
            ("modified", stamp.clone()),
            ("sha1", format!("{:016x}{:016x}{:08x}", mix(h), mix(h ^ 1), mix(h ^ 2) as u32)),
        ],
        stamp,
    }
}

/// A document of the search workload: URI, stamp and one text part, `body`.
#[derive(Clone, Debug)]
pub struct TextDoc {
    pub uri: String,
    pub stamp: String,
    pub body: String,
}

/// Words in the body of every document of the search workload.
pub const BODY_WORDS: usize = 20;

/// A document outside the share for the "one new document searchable"
/// workload: its body starts with a word no other document has
/// ([`fresh_word`]), then 19 words of the vocabulary.
pub fn fresh_text_doc(i: u64, vocabulary: &Vocabulary) -> TextDoc {
    let h = mix(0xf4e5_0000 ^ i);
    let mut ranks = Vec::new();
    let rest = vocabulary.text(h, BODY_WORDS - 1, &mut ranks);
    TextDoc {
        uri: format!("file:///srv/share/live/search/doc{i:07}.txt"),
        stamp: stamp_of(h),
        body: format!("{} {rest}", fresh_word(i)),
    }
}

/// A word that no vocabulary word equals: vocabulary words alternate a
/// consonant and a vowel, this one starts with two consonants.
pub fn fresh_word(i: u64) -> String {
    format!("zzfresh{}", syllables(i + 1))
}

/// The search workload's vocabulary: [`Vocabulary::SIZE`] plain lower-case
/// ASCII words (so that every tokenizer splits and folds them alike),
/// drawn with a Zipf distribution: the word of rank `r` (0 the most common)
/// with probability ∝ 1 / (r + 1). The most common word is ~9% of all words
/// and in ~84% of the documents; rank 1,000 is in ~0.2%.
pub struct Vocabulary {
    words: Vec<String>,
    /// `cdf[r]`: the probability of a rank ≤ r.
    cdf: Vec<f64>,
}

impl Vocabulary {
    pub const SIZE: usize = 50_000;

    pub fn new() -> Vocabulary {
        let words = (0..Self::SIZE as u64).map(|r| syllables(mix(r ^ 0x70c4) % 729_000 + 8_191)).collect::<Vec<_>>();
        let words = dedup_words(words);
        let total: f64 = (1..=Self::SIZE).map(|r| 1.0 / r as f64).sum();
        let mut acc = 0.0;
        let cdf = (1..=Self::SIZE)
            .map(|r| {
                acc += 1.0 / r as f64 / total;
                acc
            })
            .collect();
        Vocabulary { words, cdf }
    }

    /// The word of rank `rank` (0: the most common).
    pub fn word(&self, rank: usize) -> &str {
        &self.words[rank]
    }

    /// The probability that one drawn word has rank `rank`.
    pub fn probability(&self, rank: usize) -> f64 {
        self.cdf[rank] - if rank == 0 { 0.0 } else { self.cdf[rank - 1] }
    }

    /// A rank drawn from the distribution with the hash `h`.
    pub fn draw(&self, h: u64) -> usize {
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c <= u).min(Self::SIZE - 1)
    }

    /// `count` words drawn from the seed `seed`, joined by spaces; their
    /// ranks replace the contents of `ranks`.
    pub fn text(&self, seed: u64, count: usize, ranks: &mut Vec<usize>) -> String {
        ranks.clear();
        let mut text = String::with_capacity(count * 7);
        for j in 0..count as u64 {
            let rank = self.draw(mix(seed.wrapping_add(j.wrapping_mul(0x9e37_79b9))));
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&self.words[rank]);
            ranks.push(rank);
        }
        text
    }
}

/// Consonant-vowel syllables for a number in bijective base 90 (1 → "ba"):
/// distinct numbers give distinct words, every word a plain ASCII word.
fn syllables(mut n: u64) -> String {
    const CONSONANTS: &[u8; 18] = b"bcdfghjklmnprstvwz";
    const VOWELS: &[u8; 5] = b"aeiou";
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        let s = (n % 90) as usize;
        out.push([CONSONANTS[s / 5], VOWELS[s % 5]]);
        n /= 90;
    }
    out.reverse();
    String::from_utf8(out.concat()).expect("ASCII")
}

/// Replaces the later copies of a word by fresh ones, keeping the ranks.
fn dedup_words(mut words: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut next = 1u64;
    for w in words.iter_mut() {
        while !seen.insert(w.clone()) {
            // Numbers below 8,191 are 1- and 2-syllable words, never drawn above.
            *w = syllables(next);
            next += 1;
        }
    }
    words
}

/// A document for a real file, from a line of the tree list.
pub fn tree_doc(uri: &str, stamp: &str, size: u64) -> Doc {
    let h = mix(uri.bytes().fold(0xcbf2_9ce4_8422_2325u64, |a, b| (a ^ b as u64).wrapping_mul(0x100_0000_01b3)));
    let name = uri.rsplit('/').next().unwrap_or(uri);
    let mime = match name.rsplit_once('.').map(|(_, e)| e) {
        Some("gz") | Some("xz") | Some("zst") => "application/x-compressed",
        Some("so") => "application/x-sharedlib",
        Some("py") | Some("txt") | Some("h") | Some("c") | Some("md") => "text/plain",
        Some("html") => "text/html",
        Some("png") | Some("svg") => "image/png",
        _ => "application/octet-stream",
    };
    Doc {
        uri: uri.to_string(),
        stamp: stamp.to_string(),
        metas: vec![
            ("title", name.to_string()),
            ("author", "root@localhost".to_string()),
            ("mimetype", mime.to_string()),
            ("size", size.to_string()),
            ("modified", stamp.to_string()),
            ("sha1", format!("{:016x}{:016x}{:08x}", mix(h), mix(h ^ 1), mix(h ^ 2) as u32)),
            ("acl", format!("group:root;user:u{:04}", h % 10_000)),
        ],
    }
}

/// Walks `root` (not following symbolic links) and writes one line per
/// regular file, in the order the directories list them: URI, stamp
/// (size and mtime), size. Skips what some engine cannot store as a key:
/// names that are not UTF-8, and URIs over 500 bytes (LMDB's keys stop at
/// 511). Returns how many files were listed and how many skipped.
pub fn list_tree(root: &Path, out: &Path) -> Res<(u64, u64)> {
    let mut w = BufWriter::new(File::create(out)?);
    let (mut listed, mut skipped) = (0u64, 0u64);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let path = entry.path();
            match path.to_str() {
                Some(p) if p.len() + 7 <= 500 && !p.contains(['\t', '\n']) => {
                    let stamp = format!(
                        "{:x}-{:x}",
                        meta.size(),
                        meta.mtime() as u64 * 1_000_000_000 + meta.mtime_nsec() as u64
                    );
                    writeln!(w, "file://{p}\t{stamp}\t{}", meta.size())?;
                    listed += 1;
                }
                _ => skipped += 1,
            }
        }
    }
    w.flush()?;
    Ok((listed, skipped))
}

/// Reads the tree list back, `batch` documents at a time.
pub fn read_tree(list: &Path, batch: usize, mut f: impl FnMut(Vec<Doc>) -> Res<()>) -> Res<u64> {
    let mut docs = Vec::with_capacity(batch);
    let mut total = 0;
    for line in BufReader::new(File::open(list)?).lines() {
        let line = line?;
        let mut fields = line.split('\t');
        let (Some(uri), Some(stamp), Some(size)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("bad tree list line: {line:?}").into());
        };
        docs.push(tree_doc(uri, stamp, size.parse()?));
        if docs.len() == batch {
            total += docs.len() as u64;
            f(std::mem::replace(&mut docs, Vec::with_capacity(batch)))?;
        }
    }
    if !docs.is_empty() {
        total += docs.len() as u64;
        f(docs)?;
    }
    Ok(total)
}

fn stamp_of(h: u64) -> String {
    format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        20 + h % 5,
        1 + (h >> 8) % 12,
        1 + (h >> 16) % 28,
        (h >> 24) % 24,
        (h >> 32) % 60,
        (h >> 40) % 60
    )
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// A multiplier coprime with `r`, so that `x * m + c (mod r)` permutes `0..r`.
fn coprime_multiplier(r: u64) -> u64 {
    (r / 2 + 1..).find(|m| gcd(*m, r) == 1).unwrap_or(1)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// splitmix64's finalizer: a cheap, well-mixed hash of a number.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Peers store the stamp and the metas as one small binary value:
/// `[stamp len u8][stamp]` then per meta `[name len u8][name][value len u16 LE][value]`.
pub fn encode_value(doc: &Doc) -> Vec<u8> {
    let mut v = Vec::with_capacity(256);
    v.push(doc.stamp.len() as u8);
    v.extend_from_slice(doc.stamp.as_bytes());
    encode_metas_into(doc, &mut v);
    v
}

/// The metas alone, for SQLite, which keeps the stamp in its own column.
pub fn encode_metas(doc: &Doc) -> Vec<u8> {
    let mut v = Vec::with_capacity(256);
    encode_metas_into(doc, &mut v);
    v
}

fn encode_metas_into(doc: &Doc, v: &mut Vec<u8>) {
    for (name, value) in &doc.metas {
        v.push(name.len() as u8);
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        v.extend_from_slice(value.as_bytes());
    }
}

/// The stamp of a value written by [`encode_value`].
pub fn decode_stamp(value: &[u8]) -> Res<&str> {
    let len = *value.first().ok_or("empty value")? as usize;
    let bytes = value.get(1..1 + len).ok_or("value shorter than its stamp")?;
    Ok(std::str::from_utf8(bytes)?)
}

/// The smallest string greater than every string that starts with `prefix`
/// (prefixes here are ASCII, so the last byte can be incremented).
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).expect("ASCII");
        }
    }
    panic!("prefix {prefix:?} has no ASCII successor");
}

/// The prefix that a root's documents share (pushdex's `folder_prefix`).
pub fn folder_prefix(root: &str) -> String {
    if root.is_empty() || root.ends_with('/') {
        root.to_string()
    } else {
        format!("{root}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_share_is_a_permutation_with_the_promised_subtrees() {
        let share = Share::with_about(20_000);
        let uris: HashSet<String> = (0..share.len()).map(|k| share.doc(k).uri).collect();
        assert_eq!(uris.len() as u64, share.len());
        let dept = folder_prefix(&share.department(3));
        assert_eq!(uris.iter().filter(|u| u.starts_with(&dept)).count() as u64, share.len() / 10);
        let project = folder_prefix(&share.project(7, 3, 5));
        assert_eq!(uris.iter().filter(|u| u.starts_with(&project)).count() as u64, share.len() / 1000);
        assert!(!uris.contains(&share.missing(17)));
    }

    #[test]
    fn the_vocabulary_is_zipf_over_distinct_ascii_words() {
        let v = Vocabulary::new();
        let words: HashSet<&str> = (0..Vocabulary::SIZE).map(|r| v.word(r)).collect();
        assert_eq!(words.len(), Vocabulary::SIZE);
        assert!(words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())));
        assert!(!words.contains(fresh_word(0).as_str()));
        let mut ranks = Vec::new();
        let mut first = 0;
        for k in 0..10_000 {
            v.text(k, BODY_WORDS, &mut ranks);
            assert_eq!(ranks.len(), BODY_WORDS);
            first += u32::from(ranks.contains(&0));
        }
        assert!((7_500..9_200).contains(&first), "the commonest word in {first} of 10,000 bodies");
        let doc = Share::with_about(10_000).text_doc(7, &v, &mut ranks);
        assert_eq!(doc.uri, Share::with_about(10_000).doc(7).uri);
        assert_eq!(doc.body.split(' ').count(), BODY_WORDS);
    }

    #[test]
    fn values_decode() {
        let doc = Share::with_about(10_000).doc(42);
        assert_eq!(decode_stamp(&encode_value(&doc)).unwrap(), doc.stamp);
        assert_eq!(prefix_end("a/b/"), "a/b0");
    }
}
