//! Query evaluation over a published snapshot: bitmap algebra per segment,
//! BM25 with statistics over the whole snapshot, top-k by score then URI.
//!
//! Each segment's inverted index ([`SegmentIndex`]: words per text part with
//! their frequencies, part lengths, meta values, URIs by ordinal) is built
//! from the segment's rows the first time a search reads the segment, and
//! cached for as long as the segment lives: segments are immutable, so the
//! cache never goes stale. Deletions are the snapshot's bitmaps, applied at
//! query time.
//!
//! Scoring (API.md, "Ranking"): for a word `w` of a `Text` query matched in
//! text part `p` of document `d`,
//! `idf(p, w) × tf × (k1 + 1) / (tf + k1 × (1 − b + b × len(d, p) / avglen(p)))`
//! with `k1 = 1.2`, `b = 0.75`, `tf` the occurrences of `w` in `d`'s part
//! `p`, `len(d, p)` its number of words, and over the snapshot's searchable
//! documents that have a text part `p`: `n(p)` their count, `avglen(p)`
//! their mean length, `df(p, w)` how many hold `w` in `p`,
//! `idf = ln(1 + (n − df + 0.5) / (df + 0.5))`. A `Text` query scores the
//! sum over its distinct words and over the parts it searches (its field,
//! or every text part holding the word); `And` and `Or` add the scores of
//! the operands a document matches; `Not`, `Meta`, `Under`, `Prefix` and
//! `All` score 0.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use roaring::RoaringBitmap;

use crate::document::Body;
use crate::error::{Error, Result};
use crate::search::analysis::words;
use crate::search::{Hit, Query};
use crate::segment::Segment;
use crate::uri::{folder_prefix, place, Place};

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// The most hits one search returns.
pub const MAX_LIMIT: usize = 10_000;

/// `(ordinal, term frequency)` by ordinal: the rows of one word in one part.
type Postings = Vec<(u32, u32)>;

/// One segment's postings, built from its rows.
#[derive(Default)]
pub(crate) struct SegmentIndex {
    /// URIs by ordinal (sorted: ordinal = rank).
    uris: Vec<Box<str>>,
    /// Text part names, by id.
    parts: Vec<String>,
    part_ids: HashMap<String, u32>,
    /// Word → (part id, postings of `(ordinal, tf)` by ordinal).
    words: HashMap<String, Vec<(u32, Postings)>>,
    /// Per part id: `(ordinal, length in words)` by ordinal, for every row
    /// that has the part.
    lens: Vec<Vec<(u32, u32)>>,
    /// `(name, value)` → rows holding that meta value.
    metas: HashMap<(String, String), RoaringBitmap>,
}

impl SegmentIndex {
    /// Reads every row of `seg` (deleted ones too: deletions belong to
    /// snapshots, not segments).
    pub fn build(seg: &Segment) -> Result<SegmentIndex> {
        let mut index = SegmentIndex::default();
        let mut iter = seg.range(b"", b"");
        while let Some(entry) = iter.next_entry() {
            let (uri, ord) = entry?;
            let uri = std::str::from_utf8(uri)
                .map_err(|_| Error::corrupt(seg.path(), format!("the URI of row {ord} is not UTF-8")))?;
            debug_assert_eq!(ord as usize, index.uris.len());
            index.uris.push(uri.into());
            let row = seg.row(ord)?;
            let body = Body::decode(row.body)
                .ok_or_else(|| Error::corrupt(seg.path(), format!("the stored body of {uri:?} does not decode")))?;
            let doc = crate::document::Document::from_parts(String::new(), String::new(), body);
            for (name, value) in doc.all_metas() {
                index.metas.entry((name.to_string(), value.to_string())).or_default().insert(ord);
            }
            for (name, text) in doc.text_parts() {
                let part = index.part_id(name);
                let mut tfs: HashMap<String, u32> = HashMap::new();
                let mut len = 0u32;
                for word in words(&text) {
                    *tfs.entry(word).or_default() += 1;
                    len += 1;
                }
                index.lens[part as usize].push((ord, len));
                for (word, tf) in tfs {
                    let lists = index.words.entry(word).or_default();
                    match lists.iter_mut().find(|(p, _)| *p == part) {
                        Some((_, list)) => list.push((ord, tf)),
                        None => lists.push((part, vec![(ord, tf)])),
                    }
                }
            }
        }
        Ok(index)
    }

    fn part_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.part_ids.get(name) {
            return id;
        }
        let id = self.parts.len() as u32;
        self.parts.push(name.to_string());
        self.part_ids.insert(name.to_string(), id);
        self.lens.push(Vec::new());
        id
    }

    fn all(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.uris.len() as u32);
        all
    }

    /// The ordinals of the URIs starting with `prefix`.
    fn prefix_range(&self, prefix: &str) -> std::ops::Range<u32> {
        let start = self.uris.partition_point(|u| u.as_bytes() < prefix.as_bytes());
        let len = self.uris[start..].partition_point(|u| u.as_bytes().starts_with(prefix.as_bytes()));
        start as u32..(start + len) as u32
    }

    /// The postings of `word` in `part` (`None`: in every part).
    fn postings<'a>(&'a self, word: &str, part: Option<&str>) -> impl Iterator<Item = (u32, &'a [(u32, u32)])> {
        let part = part.map(|name| self.part_ids.get(name).copied());
        self.words
            .get(word)
            .into_iter()
            .flatten()
            .filter(move |(p, _)| part.is_none_or(|want| want == Some(*p)))
            .map(|(p, list)| (*p, list.as_slice()))
    }

    fn rows_with(&self, word: &str, part: Option<&str>) -> RoaringBitmap {
        let mut rows = RoaringBitmap::new();
        for (_, list) in self.postings(word, part) {
            rows.extend(list.iter().map(|&(ord, _)| ord));
        }
        rows
    }
}

/// A searchable state: the segments (and deletions) as of one refresh.
pub(crate) struct Snapshot {
    segments: Vec<(Arc<Segment>, Arc<RoaringBitmap>)>,
    /// The segments' indexes, built on first use.
    built: Mutex<Vec<Option<Arc<SegmentIndex>>>>,
    cache: Arc<IndexCache>,
}

/// Segment indexes shared by successive snapshots, by segment name.
#[derive(Default)]
pub(crate) struct IndexCache {
    by_name: Mutex<HashMap<String, Arc<SegmentIndex>>>,
}

impl IndexCache {
    /// Forgets the indexes of segments no longer in `names`.
    pub fn retain(&self, names: &[&str]) {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner()).retain(|name, _| names.contains(&name.as_str()));
    }
}

/// A query's statistics over the snapshot, per text part.
#[derive(Default)]
struct PartStats {
    docs: u64,
    total_len: u64,
}

/// Evaluation state for one segment.
struct Seg<'a> {
    index: &'a SegmentIndex,
    live: RoaringBitmap,
}

impl Snapshot {
    pub fn new(segments: Vec<(Arc<Segment>, Arc<RoaringBitmap>)>, cache: Arc<IndexCache>) -> Snapshot {
        let built = Mutex::new(vec![None; segments.len()]);
        Snapshot { segments, built, cache }
    }

    /// The segment names, for [`IndexCache::retain`].
    pub fn names(&self) -> Vec<&str> {
        self.segments.iter().map(|(seg, _)| seg.name()).collect()
    }

    fn indexes(&self) -> Result<Vec<Arc<SegmentIndex>>> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        for (slot, (seg, _)) in built.iter_mut().zip(&self.segments) {
            if slot.is_none() {
                let cached = self.cache.by_name.lock().unwrap_or_else(|e| e.into_inner()).get(seg.name()).cloned();
                let index = match cached {
                    Some(index) => index,
                    None => {
                        let index = Arc::new(SegmentIndex::build(seg)?);
                        let mut by_name = self.cache.by_name.lock().unwrap_or_else(|e| e.into_inner());
                        by_name.insert(seg.name().to_string(), index.clone());
                        index
                    }
                };
                *slot = Some(index);
            }
        }
        Ok(built.iter().map(|i| i.clone().expect("built above")).collect())
    }

    /// How many searchable documents `query` matches.
    pub fn count(&self, query: &Query) -> Result<u64> {
        let indexes = self.indexes()?;
        let segs = self.segs(&indexes);
        Ok(segs.iter().map(|s| evaluate(s, query).rows.len()).sum())
    }

    /// The best `limit` hits: score descending, then URI in byte order.
    pub fn search(&self, query: &Query, limit: usize) -> Result<Vec<Hit>> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::invalid_input(format!("limit must be 1 to {MAX_LIMIT}, not {limit}")));
        }
        let indexes = self.indexes()?;
        let segs = self.segs(&indexes);
        let mut texts = Vec::new();
        scored_texts(query, &mut texts);
        let scorer = Scorer::new(&segs, &texts);
        // A bounded heap of the best so far; its top is the worst kept.
        let mut heap: BinaryHeap<Ranked<'_>> = BinaryHeap::with_capacity(limit + 1);
        for (s, seg) in segs.iter().enumerate() {
            let node = evaluate(seg, query);
            for ord in &node.rows {
                let score = scorer.score(seg, ord, query, &node) as f32;
                let ranked = Ranked { score, uri: &seg.index.uris[ord as usize], seg: s, ord };
                if heap.len() < limit {
                    heap.push(ranked);
                } else if heap.peek().is_some_and(|worst| ranked < *worst) {
                    heap.pop();
                    heap.push(ranked);
                }
            }
        }
        let mut hits = Vec::with_capacity(heap.len());
        for ranked in heap.into_sorted_vec() {
            let stamp = self.segments[ranked.seg].0.row(ranked.ord)?.stamp.to_string();
            hits.push(Hit { uri: ranked.uri.to_string(), stamp, score: ranked.score });
        }
        Ok(hits)
    }

    fn segs<'a>(&self, indexes: &'a [Arc<SegmentIndex>]) -> Vec<Seg<'a>> {
        indexes
            .iter()
            .zip(&self.segments)
            .map(|(index, (_, deleted))| {
                let mut live = index.all();
                live -= deleted.as_ref();
                Seg { index, live }
            })
            .collect()
    }
}

/// A hit being ranked: better = higher score, then smaller URI. `Ord` puts
/// the better first, so a max-heap's top is the worst kept.
struct Ranked<'a> {
    score: f32,
    uri: &'a str,
    seg: usize,
    ord: u32,
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then_with(|| self.uri.as_bytes().cmp(other.uri.as_bytes()))
    }
}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked<'_> {}

/// A query evaluated on one segment: the live rows each sub-query matches.
struct Node {
    rows: RoaringBitmap,
    kids: Vec<Node>,
}

/// Evaluates `query` on `seg`: bitmap algebra over its live rows.
fn evaluate(seg: &Seg<'_>, query: &Query) -> Node {
    let index = seg.index;
    let mut kids = Vec::new();
    let mut rows = match query {
        Query::All => seg.live.clone(),
        Query::Text { field, text } => {
            let mut rows = seg.live.clone();
            for word in distinct_words(text) {
                rows &= index.rows_with(&word, field.as_deref());
                if rows.is_empty() {
                    break;
                }
            }
            rows
        }
        Query::Meta { name, value } => index.metas.get(&(name.clone(), value.clone())).cloned().unwrap_or_default(),
        Query::Under { root, recursive } => {
            let prefix = folder_prefix(root);
            let range = index.prefix_range(&prefix);
            let mut rows = RoaringBitmap::new();
            if *recursive {
                rows.insert_range(range);
            } else {
                rows.extend(
                    range.filter(|&ord| place(prefix.as_bytes(), index.uris[ord as usize].as_bytes()) == Place::Child),
                );
            }
            rows
        }
        Query::Prefix(prefix) => {
            let mut rows = RoaringBitmap::new();
            rows.insert_range(index.prefix_range(prefix));
            rows
        }
        Query::And(queries) => {
            let mut rows = seg.live.clone();
            for q in queries {
                let kid = evaluate(seg, q);
                rows &= &kid.rows;
                kids.push(kid);
            }
            rows
        }
        Query::Or(queries) => {
            let mut rows = RoaringBitmap::new();
            for q in queries {
                let kid = evaluate(seg, q);
                rows |= &kid.rows;
                kids.push(kid);
            }
            rows
        }
        Query::Not(q) => {
            let kid = evaluate(seg, q);
            let rows = &seg.live - &kid.rows;
            kids.push(kid);
            rows
        }
    };
    rows &= &seg.live;
    Node { rows, kids }
}

/// The distinct words of a `Text` query's text, in first-seen order.
fn distinct_words(text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for word in words(text) {
        if !seen.contains(&word) {
            seen.push(word);
        }
    }
    seen
}

/// The `Text` queries that can score: those not under a `Not`.
fn scored_texts<'q>(query: &'q Query, out: &mut Vec<(&'q Option<String>, Vec<String>)>) {
    match query {
        Query::Text { field, text } => out.push((field, distinct_words(text))),
        Query::And(qs) | Query::Or(qs) => qs.iter().for_each(|q| scored_texts(q, out)),
        _ => {}
    }
}

/// BM25 statistics over the snapshot, for the words and parts a query scores.
struct Scorer {
    /// Part name → documents having it and their total length.
    parts: HashMap<String, PartStats>,
    /// (part name, word) → documents holding the word in that part.
    df: HashMap<(String, String), u64>,
}

impl Scorer {
    fn new(segs: &[Seg<'_>], texts: &[(&Option<String>, Vec<String>)]) -> Scorer {
        let mut scorer = Scorer { parts: HashMap::new(), df: HashMap::new() };
        for seg in segs {
            for (field, words) in texts {
                for word in words {
                    for (part, list) in seg.index.postings(word, field.as_deref()) {
                        let name = &seg.index.parts[part as usize];
                        let live = list.iter().filter(|(ord, _)| seg.live.contains(*ord)).count() as u64;
                        *scorer.df.entry((name.clone(), word.clone())).or_default() += live;
                        scorer.parts.entry(name.clone()).or_default();
                    }
                }
            }
        }
        // Part statistics only for the parts a query word occurs in.
        for seg in segs {
            for (name, stats) in scorer.parts.iter_mut() {
                if let Some(&id) = seg.index.part_ids.get(name) {
                    for &(ord, len) in &seg.index.lens[id as usize] {
                        if seg.live.contains(ord) {
                            stats.docs += 1;
                            stats.total_len += u64::from(len);
                        }
                    }
                }
            }
        }
        scorer
    }

    /// The score of row `ord` of `seg`, which `node` (`query` evaluated
    /// on `seg`) says matches.
    fn score(&self, seg: &Seg<'_>, ord: u32, query: &Query, node: &Node) -> f64 {
        match query {
            Query::Text { field, text } => {
                let mut score = 0.0;
                for word in distinct_words(text) {
                    for (part, list) in seg.index.postings(&word, field.as_deref()) {
                        let Ok(at) = list.binary_search_by_key(&ord, |&(o, _)| o) else { continue };
                        let name = &seg.index.parts[part as usize];
                        score += self.bm25(seg, part, name, &word, ord, list[at].1);
                    }
                }
                score
            }
            Query::And(qs) | Query::Or(qs) => qs
                .iter()
                .zip(&node.kids)
                .filter(|(_, kid)| kid.rows.contains(ord))
                .map(|(q, kid)| self.score(seg, ord, q, kid))
                .sum(),
            _ => 0.0,
        }
    }

    fn bm25(&self, seg: &Seg<'_>, part: u32, name: &str, word: &str, ord: u32, tf: u32) -> f64 {
        let Some(stats) = self.parts.get(name) else { return 0.0 };
        let df = self.df.get(&(name.to_string(), word.to_string())).copied().unwrap_or(0) as f64;
        let n = stats.docs as f64;
        let avg = if stats.docs == 0 { 0.0 } else { stats.total_len as f64 / n };
        let lens = &seg.index.lens[part as usize];
        let len = lens.binary_search_by_key(&ord, |&(o, _)| o).map(|at| lens[at].1).unwrap_or(0) as f64;
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let norm = if avg > 0.0 { len / avg } else { 0.0 };
        let tf = f64::from(tf);
        idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * norm))
    }
}
