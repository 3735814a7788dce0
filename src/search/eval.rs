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
    /// Per part id: its statistics over every row (deleted ones too).
    totals: Vec<PartStats>,
}

/// Per text part, over a set of documents: how many have it, and their
/// total length in words.
#[derive(Clone, Copy, Default)]
struct PartStats {
    docs: u64,
    total_len: u64,
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
        index.totals = index
            .lens
            .iter()
            .map(|lens| PartStats { docs: lens.len() as u64, total_len: lens.iter().map(|&(_, l)| u64::from(l)).sum() })
            .collect();
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
    /// What every search of this snapshot needs, made by the first one.
    prepared: Mutex<Option<Arc<Prepared>>>,
    cache: Arc<IndexCache>,
}

/// A snapshot made ready for queries: the segments' indexes, their live
/// rows, and the text-part statistics over all of them.
struct Prepared {
    indexes: Vec<Arc<SegmentIndex>>,
    live: Vec<RoaringBitmap>,
    parts: HashMap<String, PartStats>,
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

/// Evaluation state for one segment.
struct Seg<'a> {
    index: &'a SegmentIndex,
    live: &'a RoaringBitmap,
}

impl Snapshot {
    pub fn new(segments: Vec<(Arc<Segment>, Arc<RoaringBitmap>)>, cache: Arc<IndexCache>) -> Snapshot {
        Snapshot { segments, prepared: Mutex::new(None), cache }
    }

    /// The segment names, for [`IndexCache::retain`].
    pub fn names(&self) -> Vec<&str> {
        self.segments.iter().map(|(seg, _)| seg.name()).collect()
    }

    /// The prepared snapshot: each segment's index (from the cache, or
    /// built now), its live rows, and the part statistics, which cost one
    /// look per deleted row: each index knows its totals over all its rows.
    fn prepared(&self) -> Result<Arc<Prepared>> {
        let mut slot = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prepared) = slot.as_ref() {
            return Ok(prepared.clone());
        }
        let mut prepared = Prepared { indexes: Vec::new(), live: Vec::new(), parts: HashMap::new() };
        for (seg, deleted) in &self.segments {
            let cached = self.cache.by_name.lock().unwrap_or_else(|e| e.into_inner()).get(seg.name()).cloned();
            let index = match cached {
                Some(index) => index,
                None => {
                    let index = Arc::new(SegmentIndex::build(seg)?);
                    self.cache
                        .by_name
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(seg.name().to_string(), index.clone());
                    index
                }
            };
            let mut live = index.all();
            live -= deleted.as_ref();
            for (id, name) in index.parts.iter().enumerate() {
                let lens = &index.lens[id];
                let mut stats = index.totals[id];
                for ord in deleted.iter() {
                    if let Ok(at) = lens.binary_search_by_key(&ord, |&(o, _)| o) {
                        stats.docs -= 1;
                        stats.total_len -= u64::from(lens[at].1);
                    }
                }
                let total = prepared.parts.entry(name.clone()).or_default();
                total.docs += stats.docs;
                total.total_len += stats.total_len;
            }
            prepared.indexes.push(index);
            prepared.live.push(live);
        }
        let prepared = Arc::new(prepared);
        *slot = Some(prepared.clone());
        Ok(prepared)
    }

    /// How many searchable documents `query` matches.
    pub fn count(&self, query: &Query) -> Result<u64> {
        let prepared = self.prepared()?;
        Ok(prepared.segs().iter().map(|s| evaluate(s, query).rows.len()).sum())
    }

    /// The best `limit` hits: score descending, then URI in byte order.
    pub fn search(&self, query: &Query, limit: usize) -> Result<Vec<Hit>> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::invalid_input(format!("limit must be 1 to {MAX_LIMIT}, not {limit}")));
        }
        let prepared = self.prepared()?;
        let segs = prepared.segs();
        let mut texts = Vec::new();
        scored_texts(query, &mut texts);
        let scorer = Scorer::new(&segs, &texts, &prepared.parts);
        // A bounded heap of the best so far; its top is the worst kept.
        let mut heap: BinaryHeap<Ranked<'_>> = BinaryHeap::with_capacity(limit + 1);
        for (s, seg) in segs.iter().enumerate() {
            let node = evaluate(seg, query);
            for ord in &node.rows {
                let score = scorer.score(s, ord, query, &node) as f32;
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
}

impl Prepared {
    fn segs(&self) -> Vec<Seg<'_>> {
        self.indexes.iter().zip(&self.live).map(|(index, live)| Seg { index, live }).collect()
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
            let mut rows: Option<RoaringBitmap> = None;
            for word in distinct_words(text) {
                let with = index.rows_with(&word, field.as_deref());
                rows = Some(match rows {
                    Some(rows) => rows & with,
                    None => with,
                });
                if rows.as_ref().is_some_and(RoaringBitmap::is_empty) {
                    break;
                }
            }
            // No word at all: every document (vacuously).
            rows.unwrap_or_else(|| seg.live.clone())
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
            let mut rows: Option<RoaringBitmap> = None;
            for q in queries {
                let kid = evaluate(seg, q);
                rows = Some(match rows {
                    Some(rows) => rows & &kid.rows,
                    None => kid.rows.clone(),
                });
                kids.push(kid);
            }
            rows.unwrap_or_else(|| seg.live.clone())
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
            let rows = seg.live - &kid.rows;
            kids.push(kid);
            rows
        }
    };
    rows &= seg.live;
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

/// The `Text` queries that can score (those not under a `Not`), with their
/// distinct words.
fn scored_texts<'q>(query: &'q Query, out: &mut Vec<(&'q Query, Vec<String>)>) {
    match query {
        Query::Text { text, .. } => out.push((query, distinct_words(text))),
        Query::And(qs) | Query::Or(qs) => qs.iter().for_each(|q| scored_texts(q, out)),
        _ => {}
    }
}

/// One word of a scoring `Text` query in one text part of one segment:
/// its postings, the part's lengths, and the snapshot-wide weights.
struct Term<'a> {
    postings: &'a [(u32, u32)],
    lens: &'a [(u32, u32)],
    idf: f64,
    avg_len: f64,
}

impl Term<'_> {
    /// The BM25 score of row `ord` for this word and part (0 if absent).
    fn score(&self, ord: u32) -> f64 {
        let Ok(at) = self.postings.binary_search_by_key(&ord, |&(o, _)| o) else { return 0.0 };
        let tf = f64::from(self.postings[at].1);
        let len = self.lens.binary_search_by_key(&ord, |&(o, _)| o).map_or(0, |at| self.lens[at].1);
        let norm = if self.avg_len > 0.0 { f64::from(len) / self.avg_len } else { 0.0 };
        self.idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * norm))
    }
}

/// BM25 for one query: per scoring `Text` query (by address) and segment,
/// its terms with their weights, resolved once.
struct Scorer<'a> {
    /// Per segment: `Text` query address → its terms there.
    terms: Vec<HashMap<usize, Vec<Term<'a>>>>,
}

impl<'a> Scorer<'a> {
    fn new(segs: &[Seg<'a>], texts: &[(&Query, Vec<String>)], parts: &HashMap<String, PartStats>) -> Scorer<'a> {
        // Snapshot-wide document frequencies of each (part, word) scored.
        let mut df: HashMap<(&str, &str), u64> = HashMap::new();
        for seg in segs {
            // A (part, word) is counted once per segment, however many
            // `Text` queries hold the word.
            let mut counted = std::collections::HashSet::new();
            for (query, words) in texts {
                let Query::Text { field, .. } = query else { continue };
                for word in words {
                    for (part, list) in seg.index.postings(word, field.as_deref()) {
                        if !counted.insert((part, word.as_str())) {
                            continue;
                        }
                        let name = seg.index.parts[part as usize].as_str();
                        let live = list.iter().filter(|(ord, _)| seg.live.contains(*ord)).count() as u64;
                        *df.entry((name, word.as_str())).or_default() += live;
                    }
                }
            }
        }
        let weights = |name: &str, word: &str| {
            let stats = parts.get(name).copied().unwrap_or_default();
            let n = stats.docs as f64;
            let df = df.get(&(name, word)).copied().unwrap_or(0) as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let avg_len = if stats.docs == 0 { 0.0 } else { stats.total_len as f64 / n };
            (idf, avg_len)
        };
        let terms = segs
            .iter()
            .map(|seg| {
                let mut by_query = HashMap::new();
                for (query, words) in texts {
                    let Query::Text { field, .. } = query else { continue };
                    let mut terms = Vec::new();
                    for word in words {
                        for (part, postings) in seg.index.postings(word, field.as_deref()) {
                            let (idf, avg_len) = weights(&seg.index.parts[part as usize], word);
                            terms.push(Term { postings, lens: &seg.index.lens[part as usize], idf, avg_len });
                        }
                    }
                    by_query.insert(*query as *const Query as usize, terms);
                }
                by_query
            })
            .collect();
        Scorer { terms }
    }

    /// The score of row `ord` of segment `s`, which `node` (`query`
    /// evaluated on that segment) says matches.
    fn score(&self, s: usize, ord: u32, query: &Query, node: &Node) -> f64 {
        match query {
            Query::Text { .. } => self.terms[s]
                .get(&(query as *const Query as usize))
                .map_or(0.0, |terms| terms.iter().fold(0.0, |sum, t| sum + t.score(ord))),
            Query::And(qs) | Query::Or(qs) => qs
                .iter()
                .zip(&node.kids)
                .filter(|(_, kid)| kid.rows.contains(ord))
                // Not `sum()`: it starts from -0.0, which ranks below 0.0.
                .fold(0.0, |sum, (q, kid)| sum + self.score(s, ord, q, kid)),
            _ => 0.0,
        }
    }
}
