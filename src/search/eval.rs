//! Query evaluation over a published snapshot: bitmap algebra per segment,
//! BM25 with statistics over the whole snapshot, top-k by score then URI.
//!
//! Each segment carries its inverted index (`crate::inverted`: postings per
//! term, part lengths, meta values), written at flush and merge. What every
//! query of a segment needs from it (the text parts with their decoded
//! lengths and totals) is read once and cached for as long as the segment
//! lives ([`IndexCache`]); postings are read from the mapped file by each
//! query. Deletions are the snapshot's bitmaps, applied at query time.
//!
//! A search scores only what it must: the rows each scoring word adds to
//! (the rows of its `Text` query that count at the top, found top-down),
//! then per segment the best `limit` rows by score then ordinal (ordinals
//! are in URI order), then across segments by score, resolving URIs only
//! to break ties at the cut and for the hits returned.
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
//! or every text part holding the word); a `Phrase` the same sum over its
//! distinct words, but only over the parts in which the phrase occurs (so a
//! one-word phrase scores as that word's `Text`); `And` and `Or` add the
//! scores of the operands a document matches; `Not`, `Meta`, `Under`,
//! `Prefix` and `All` score 0.
//!
//! Phrases (`Query::Phrase`): the candidates of a part are the rows holding
//! every word of the phrase in that part (the intersection of their
//! postings); then each candidate's positions are checked: words in order,
//! at strictly increasing positions (a word repeated in the phrase needs as
//! many occurrences), the gaps `p[i+1] − p[i] − 1` adding up to at most the
//! slop. From each occurrence of the first word, taking for each next word
//! its first occurrence after the previous one gives the smallest last
//! position, so trying every first occurrence that way is exact. Positions
//! come from the postings (segment format 5); a segment written before
//! (versions 3 and 4) has none, and its candidates' bodies, stored in the
//! segment, are analysed again instead (the same words, the same positions).

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use fst::{Automaton, IntoStreamer, Streamer};
use roaring::RoaringBitmap;

use crate::document::{Body, BodyItem};
use crate::error::{Error, Result};
use crate::search::query::one_word;
use crate::search::{Facet, Hit, Query};
use crate::segment::Segment;
use crate::segment::{term_key, value_at, Postings, IMPACT_BLOCK, META, WORD};
use crate::text::{analyze, query_terms, Analyzer};
use crate::uri::{folder_prefix, place, Place};

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// The most hits one search returns.
pub const MAX_LIMIT: usize = 10_000;

/// Per text part, over a set of documents: how many have it, and their
/// total length in words.
#[derive(Clone, Copy, Default)]
struct PartStats {
    docs: u64,
    total_len: u64,
}

/// One text part of one segment, read once: the rows that have it and
/// their lengths.
struct Part {
    name: String,
    rows: RoaringBitmap,
    /// Every row has the part, so lengths are by ordinal.
    full: bool,
    width: u8,
    lens: Vec<u8>,
    /// Over every row of the segment (deleted ones too).
    totals: PartStats,
}

impl Part {
    /// The length in words of row `row`'s part (which the row has).
    fn len(&self, row: u32) -> u32 {
        let rank = if self.full { row as usize } else { (self.rows.rank(row) - 1) as usize };
        value_at(self.width, &self.lens, rank)
    }
}

/// What every query of one segment needs, read once per segment: its text
/// parts.
pub(crate) struct SegmentIndex {
    parts: Vec<Part>,
}

impl SegmentIndex {
    fn read(seg: &Segment) -> Result<SegmentIndex> {
        let mut parts = Vec::with_capacity(seg.parts().len());
        for info in seg.parts() {
            let norms = seg.norms(info)?;
            if norms.rows.len() != info.docs {
                return Err(Error::corrupt(
                    seg.path(),
                    format!("part {:?} has {} documents and norms for {}", info.name, info.docs, norms.rows.len()),
                ));
            }
            parts.push(Part {
                name: info.name.clone(),
                full: info.docs == seg.rows(),
                width: norms.width(),
                lens: norms.raw_values().to_vec(),
                rows: norms.rows,
                totals: PartStats { docs: info.docs, total_len: info.total_len },
            });
        }
        Ok(SegmentIndex { parts })
    }

    /// The parts a `Text` query with `field` searches: that one, or all.
    fn parts_for<'a>(&'a self, field: Option<&'a str>) -> impl Iterator<Item = (usize, &'a Part)> + 'a {
        self.parts.iter().enumerate().filter(move |(_, p)| field.is_none_or(|f| f == p.name))
    }
}

/// A searchable state: the segments (and deletions) as of one refresh.
pub(crate) struct Snapshot {
    segments: Vec<(Arc<Segment>, Arc<RoaringBitmap>)>,
    /// What every search of this snapshot needs, made by the first one.
    prepared: Mutex<Option<Arc<Prepared>>>,
    cache: Arc<IndexCache>,
}

/// A snapshot made ready for queries: each segment with its index and live
/// rows, and the text-part statistics over all of them.
struct Prepared {
    segs: Vec<Seg>,
    parts: HashMap<String, PartStats>,
}

/// One segment of a prepared snapshot.
struct Seg {
    seg: Arc<Segment>,
    index: Arc<SegmentIndex>,
    live: RoaringBitmap,
    /// No row is deleted: every bitmap read from the segment is live as is.
    whole: bool,
}

/// Segment indexes shared by successive snapshots, by segment name, and the
/// index's analyzer, which queries are analysed with.
pub(crate) struct IndexCache {
    by_name: Mutex<HashMap<String, Arc<SegmentIndex>>>,
    analyzer: Analyzer,
}

impl IndexCache {
    pub fn new(analyzer: Analyzer) -> IndexCache {
        IndexCache { by_name: Mutex::default(), analyzer }
    }

    pub fn analyzer(&self) -> Analyzer {
        self.analyzer
    }

    /// Forgets the indexes of segments no longer in `names`.
    pub fn retain(&self, names: &[&str]) {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner()).retain(|name, _| names.contains(&name.as_str()));
    }

    fn get(&self, seg: &Segment) -> Result<Arc<SegmentIndex>> {
        if let Some(index) = self.by_name.lock().unwrap_or_else(|e| e.into_inner()).get(seg.name()) {
            return Ok(index.clone());
        }
        let index = Arc::new(SegmentIndex::read(seg)?);
        self.by_name.lock().unwrap_or_else(|e| e.into_inner()).insert(seg.name().to_string(), index.clone());
        Ok(index)
    }
}

impl Snapshot {
    pub fn new(segments: Vec<(Arc<Segment>, Arc<RoaringBitmap>)>, cache: Arc<IndexCache>) -> Snapshot {
        Snapshot { segments, prepared: Mutex::new(None), cache }
    }

    /// The segment names, for [`IndexCache::retain`].
    pub fn names(&self) -> Vec<&str> {
        self.segments.iter().map(|(seg, _)| seg.name()).collect()
    }

    /// The prepared snapshot: each segment's index (cached), its live rows,
    /// and the part statistics, which cost one look per deleted row: each
    /// segment knows its totals over all its rows.
    fn prepared(&self) -> Result<Arc<Prepared>> {
        let mut slot = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prepared) = slot.as_ref() {
            return Ok(prepared.clone());
        }
        let mut prepared = Prepared { segs: Vec::new(), parts: HashMap::new() };
        for (seg, deleted) in &self.segments {
            let index = self.cache.get(seg)?;
            let mut live = RoaringBitmap::new();
            live.insert_range(0..seg.rows() as u32);
            live -= deleted.as_ref();
            for part in &index.parts {
                let mut stats = part.totals;
                for row in deleted.iter().filter(|&row| part.rows.contains(row)) {
                    stats.docs -= 1;
                    stats.total_len -= u64::from(part.len(row));
                }
                let total = prepared.parts.entry(part.name.clone()).or_default();
                total.docs += stats.docs;
                total.total_len += stats.total_len;
            }
            let whole = deleted.is_empty();
            prepared.segs.push(Seg { seg: seg.clone(), index, live, whole });
        }
        let prepared = Arc::new(prepared);
        *slot = Some(prepared.clone());
        Ok(prepared)
    }

    /// The text parts that some searchable document has, sorted. Read from
    /// the snapshot's part statistics; should those not read (a damaged
    /// segment), the parts the segments record, deleted documents' too.
    pub fn text_parts(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.prepared() {
            Ok(prepared) => prepared.parts.iter().filter(|(_, stats)| stats.docs > 0).map(|(n, _)| n.clone()).collect(),
            Err(_) => self.segments.iter().flat_map(|(seg, _)| seg.parts().iter().map(|p| p.name.clone())).collect(),
        };
        names.sort_unstable();
        names.dedup();
        names
    }

    /// How many searchable documents `query` matches.
    pub fn count(&self, query: &Query) -> Result<u64> {
        let prepared = self.prepared()?;
        let mut reader = Reader::new(self.cache.analyzer);
        let mut total = 0;
        for (s, seg) in prepared.segs.iter().enumerate() {
            total += match quick_count(&mut reader, seg, query)? {
                Some(n) => n,
                None => evaluate(&mut reader, s, seg, query)?.rows.len(),
            };
        }
        Ok(total)
    }

    /// For each meta name of `names`, how many of the documents `query`
    /// matches hold each value (once per distinct value), the `limit` most
    /// frequent first, ties by value; and how many documents it matches
    /// (what [`Snapshot::count`] says, counted on the way). Read from the
    /// meta postings: for each value, the size of its rows within the
    /// matched rows.
    pub fn facets(&self, query: &Query, names: &[String], limit: usize) -> Result<(Vec<Facet>, u64)> {
        let mut counts: Vec<HashMap<String, u64>> = vec![HashMap::new(); names.len()];
        let mut head = Vec::new();
        let matched = self.for_each_hit_set(query, &mut |seg, rows| {
            for (name, counts) in names.iter().zip(&mut counts) {
                for_each_meta_value(&seg.seg, name, &mut head, &mut |value, postings| {
                    let n = postings.rows.intersection_len(rows);
                    if n > 0 {
                        *counts.entry(value.to_string()).or_default() += n;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        let facets = names
            .iter()
            .zip(counts)
            .map(|(name, counts)| Facet { name: name.clone(), values: most_frequent(counts.into_iter(), limit) })
            .collect();
        Ok((facets, matched))
    }

    /// The best `limit` hits: score descending, then URI in byte order.
    pub fn search(&self, query: &Query, limit: usize) -> Result<Vec<Hit>> {
        Ok(self.search_located(query, limit)?.into_iter().map(|found| found.hit).collect())
    }

    /// [`Snapshot::search`], with where each hit was found.
    pub fn search_located(&self, query: &Query, limit: usize) -> Result<Vec<Located>> {
        self.top(query, limit, true)
    }

    /// [`Snapshot::search_located`]; `block_max` false scores every row
    /// even where impacts would skip some (what the tests compare with).
    fn top(&self, query: &Query, limit: usize, block_max: bool) -> Result<Vec<Located>> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::invalid_input(format!("limit must be 1 to {MAX_LIMIT}, not {limit}")));
        }
        let prepared = self.prepared()?;
        let segs = &prepared.segs;
        let mut reader = Reader::new(self.cache.analyzer);
        let mut texts = Vec::new();
        scored_texts(query, &mut texts);
        let weights = Weights::new(&mut reader, segs, &texts, &prepared.parts)?;
        let mut candidates = Vec::new();
        let mut floor = f32::NEG_INFINITY;
        for (s, seg) in segs.iter().enumerate() {
            // Block-max needs no bitmap of the matches; other queries are
            // evaluated, then scored.
            if !(block_max && best_by_blocks(&mut reader, &weights, s, seg, query, limit, floor, &mut candidates)?) {
                let node = evaluate(&mut reader, s, seg, query)?;
                let scored = score_segment(&mut reader, &weights, s, seg, query, &node)?;
                best_of_segment(s, &node, &scored, limit, floor, &mut candidates);
            }
            if candidates.len() > limit {
                // The `limit`-th best score so far: what a later row must
                // reach (ties may still win on their URI).
                candidates.select_nth_unstable_by(limit - 1, |a, b| b.score.total_cmp(&a.score));
                floor = candidates[limit - 1].score;
                candidates.retain(|c| c.score >= floor);
            }
        }
        pick_hits(segs, candidates, limit)
    }
}

/// Searches `seg` alone (no row deleted) with `analyzer`: block-max where
/// it applies (`block_max`), or scoring every row. For the fuzz targets,
/// which check that both give the same hits on what the writer wrote, and
/// that forged bytes are an error, never a panic.
#[cfg(feature = "internals")]
pub fn search_segment(
    seg: Arc<crate::segment::Segment>,
    analyzer: Analyzer,
    query: &Query,
    limit: usize,
    block_max: bool,
) -> Result<Vec<Hit>> {
    let snapshot = Snapshot::new(vec![(seg, Arc::new(RoaringBitmap::new()))], Arc::new(IndexCache::new(analyzer)));
    Ok(snapshot.top(query, limit, block_max)?.into_iter().map(|found| found.hit).collect())
}

/// A candidate hit: a segment's row and its score.
#[derive(Clone, Copy)]
struct Candidate {
    score: f32,
    seg: usize,
    row: u32,
}

/// Better first: higher score, then (within a segment) smaller ordinal,
/// which is the smaller URI.
fn by_score_then_row(a: &Candidate, b: &Candidate) -> Ordering {
    b.score.total_cmp(&a.score).then(a.row.cmp(&b.row))
}

/// The best `limit` rows of segment `s` scoring at least `floor` (the
/// `limit`-th best score of the segments before: a row below it cannot
/// make it): `scored` (by row; every one a match), then rows matched
/// without a score, which all tie at 0 and rank by ordinal, so only the
/// first few can make it.
fn best_of_segment(
    s: usize,
    node: &Node,
    scored: &[(u32, f64)],
    limit: usize,
    mut floor: f32,
    out: &mut Vec<Candidate>,
) {
    let mut best: Vec<Candidate> = Vec::with_capacity((2 * limit).min(scored.len()));
    for &(row, score) in scored {
        let score = score as f32;
        if score < floor {
            continue;
        }
        best.push(Candidate { score, seg: s, row });
        if best.len() == 2 * limit {
            keep_best(&mut best, limit);
            floor = floor.max(best[limit - 1].score);
        }
    }
    if best.len() > limit {
        keep_best(&mut best, limit);
    }
    let positive = best.iter().filter(|c| c.score > 0.0).count();
    if positive < limit && floor <= 0.0 && (scored.len() as u64) < node.rows.len() {
        let mut at = 0;
        let mut zeros = 0;
        for row in &node.rows {
            while at < scored.len() && scored[at].0 < row {
                at += 1;
            }
            if at < scored.len() && scored[at].0 == row {
                continue;
            }
            best.push(Candidate { score: 0.0, seg: s, row });
            zeros += 1;
            if zeros == limit - positive {
                break;
            }
        }
        if best.len() > limit {
            keep_best(&mut best, limit);
        }
    }
    out.extend(best);
}

/// For a query of words alone (a `Text`: every word; an `Any` needing at
/// least one: `min_should_match` of them): the best `limit` rows of
/// segment `s` scoring at least `floor`, exactly those [`best_of_segment`]
/// picks from [`score_segment`]'s list, added to `out`. Found block-max
/// style: each (word, part) is a [`WordCursor`] whose impacts bound the
/// scores of each block of its rows, and rows go by in windows that no
/// cursor's block boundary crosses. A window whose bound (the sum of the
/// bounds of the blocks with rows in it) cannot make the results (below
/// `floor`, or not above the `limit`-th best so far, to which every later
/// row loses a tie), or in which too few words have rows, is skipped, its
/// blocks unread; a row below the one where enough words can next meet is
/// never looked at. Returns false, having done nothing, for other queries
/// and for segments without impacts (written before version 6).
#[allow(clippy::too_many_arguments)]
fn best_by_blocks<'a>(
    reader: &mut Reader<'a>,
    weights: &Weights<'a>,
    s: usize,
    seg: &'a Seg,
    query: &Query,
    limit: usize,
    floor: f32,
    out: &mut Vec<Candidate>,
) -> Result<bool> {
    let (field, text, need) = match query {
        Query::Text { field, text } => (field, text, usize::MAX),
        Query::Any { field, text, min_should_match } if *min_should_match > 0 => (field, text, *min_should_match),
        _ => return Ok(false),
    };
    if !seg.seg.has_impacts() {
        return Ok(false);
    }
    let words = reader.text_words(text);
    let need = need.min(words.len());
    if need == 0 {
        // No word (refused before evaluation): every row, unscored.
        return Ok(false);
    }
    // The postings in the order score_segment adds the scores in: by word,
    // then by part.
    let mut held = Vec::new();
    let mut found_words = 0;
    for (w, &word) in words.iter().enumerate() {
        let before = held.len();
        for (p, part) in seg.index.parts_for(field.as_deref()) {
            let Some(postings) = reader.word(s, seg, p, word)? else { continue };
            let Some((weight, norm)) = weights.by_term.get(&(part.name.as_str(), word)) else { return Ok(false) };
            held.push((w, postings, part, *weight, norm.clone()));
        }
        found_words += usize::from(held.len() > before);
    }
    let mut cursors = Vec::with_capacity(held.len());
    for (w, postings, part, weight, norm) in &held {
        cursors.push(WordCursor::new(seg, *w, postings, part, *weight, norm)?);
    }
    let mut best = Best::new(limit);
    let mut next: Vec<u32> = Vec::with_capacity(words.len());
    if found_words < need {
        // Too few of the words are in the segment for any row to match.
        return Ok(true);
    }
    loop {
        // Rows below the `need`-th smallest of the words' next rows hold
        // fewer than `need` words.
        next.clear();
        let mut last_word = usize::MAX;
        for c in &cursors {
            // Cursors come word by word: one entry per word with rows here.
            match next.last_mut() {
                Some(row) if c.word == last_word => *row = (*row).min(c.row),
                _ => next.push(c.row),
            }
            last_word = c.word;
        }
        next.sort_unstable();
        let Some(&from) = next.get(need - 1).filter(|&&row| row != u32::MAX) else { break };
        for c in &mut cursors {
            c.seek(from)?;
        }
        // The window: up to the first block end among the cursors.
        let hi = cursors.iter().filter(|c| c.row != u32::MAX).map(|c| c.block().0).min().expect("a cursor has rows");
        let (mut bound, mut present, mut last_word) = (0.0, 0, usize::MAX);
        for c in cursors.iter().filter(|c| c.row <= hi && c.row != u32::MAX) {
            bound += c.block().1;
            if c.word != last_word {
                (present, last_word) = (present + 1, c.word);
            }
        }
        let bound = bound as f32;
        if present < need || bound < floor || best.bar().is_some_and(|bar| bound <= bar) {
            for c in &mut cursors {
                c.seek(hi.saturating_add(1))?;
            }
            if hi == u32::MAX {
                break;
            }
            continue;
        }
        // Every row of the window: of one cursor (the common case: one
        // word, or one word of an OR with rows there), a row at a time;
        // else the cursors' rows merged.
        let mut within = cursors.iter_mut().filter(|c| c.row <= hi && c.row != u32::MAX);
        if let (Some(c), None, true) = (within.next(), within.next(), need <= 1) {
            while c.row <= hi && c.row != u32::MAX {
                let (row, score) = (c.row, c.score() as f32);
                c.step()?;
                if score >= floor && (seg.whole || seg.live.contains(row)) {
                    best.offer(Candidate { score, seg: s, row });
                }
            }
        }
        while let Some(row) = cursors.iter().map(|c| c.row).filter(|&row| row <= hi && row != u32::MAX).min() {
            let (mut score, mut present, mut last_word) = (0.0, 0, usize::MAX);
            for c in cursors.iter_mut().filter(|c| c.row == row) {
                score += c.score();
                if c.word != last_word {
                    (present, last_word) = (present + 1, c.word);
                }
                c.step()?;
            }
            let score = score as f32;
            if present >= need && score >= floor && (seg.whole || seg.live.contains(row)) {
                best.offer(Candidate { score, seg: s, row });
            }
        }
        if hi == u32::MAX {
            break;
        }
    }
    out.extend(best.heap.into_iter().map(|Worst(c)| c));
    Ok(true)
}

/// The best `limit` candidates of one segment, offered in increasing row
/// order: a min-heap with the worst kept on top.
struct Best {
    limit: usize,
    heap: BinaryHeap<Worst>,
}

/// A candidate ordered so that the worse is greater: lower score, then
/// (within a segment) higher row.
struct Worst(Candidate);

impl PartialEq for Worst {
    fn eq(&self, other: &Worst) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Worst {}

impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Worst) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Worst {
    fn cmp(&self, other: &Worst) -> Ordering {
        by_score_then_row(&self.0, &other.0)
    }
}

impl Best {
    fn new(limit: usize) -> Best {
        Best { limit, heap: BinaryHeap::with_capacity(limit + 1) }
    }

    /// The score a later row must beat (a tie loses: its row is higher),
    /// once `limit` are kept.
    fn bar(&self) -> Option<f32> {
        (self.heap.len() == self.limit).then(|| self.heap.peek().expect("limit > 0").0.score)
    }

    /// Keeps `candidate` if it is among the best `limit` so far.
    fn offer(&mut self, candidate: Candidate) {
        if self.heap.len() < self.limit {
            self.heap.push(Worst(candidate));
        } else if self.bar().is_some_and(|bar| candidate.score > bar) {
            self.heap.pop();
            self.heap.push(Worst(candidate));
        }
    }
}

/// The rows of one word in one part of a segment, in order, with the bound
/// of each block of [`IMPACT_BLOCK`] rows (from the word's impacts; for a
/// column too short to have them, its rows' best score, as one block).
struct WordCursor<'c> {
    /// The word's index in the query's words.
    word: usize,
    postings: &'c Postings<'c>,
    rows: roaring::bitmap::Iter<'c>,
    part: &'c Part,
    weight: f64,
    norm: &'c Norm,
    /// Per block: its last row and the bound of its rows' scores.
    blocks: Vec<(u32, f64)>,
    /// The current row (`u32::MAX` past the last), its rank, its block.
    row: u32,
    rank: usize,
    block: usize,
    count: usize,
    path: &'c std::path::Path,
}

impl<'c> WordCursor<'c> {
    /// A cursor on `postings` (of the query's `word`-th word in `part`) at
    /// its first row, in a segment with impacts.
    fn new(
        seg: &'c Seg,
        word: usize,
        postings: &'c Postings<'c>,
        part: &'c Part,
        weight: f64,
        norm: &'c Norm,
    ) -> Result<WordCursor<'c>> {
        let mut impacts = seg.seg.impacts(postings)?.expect("a segment with impacts");
        let count = postings.rows.len() as usize;
        let mut cursor = WordCursor {
            word,
            postings,
            rows: postings.rows.iter(),
            part,
            weight,
            norm,
            blocks: Vec::with_capacity(count.div_ceil(IMPACT_BLOCK)),
            row: 0,
            rank: 0,
            block: 0,
            count,
            path: seg.seg.path(),
        };
        // A hair above each bound, for rounding.
        const ABOVE: f64 = 1.0 + 1e-9;
        let mut pairs = Vec::new();
        while let Some(last) = impacts.next_block(&mut pairs).map_err(|e| cursor.corrupt(&e))? {
            let bound = pairs.iter().map(|&(tf, len)| bm25(weight, tf, norm.of(len))).fold(0.0, f64::max);
            cursor.blocks.push((last, bound * ABOVE));
        }
        if cursor.blocks.is_empty() && count > 0 {
            let mut best = 0.0f64;
            for (rank, row) in postings.rows.iter().enumerate() {
                best = best.max(bm25(weight, postings.value(rank), norm.of(part.len(row))));
            }
            cursor.blocks.push((postings.rows.max().expect("rows"), best * ABOVE));
        }
        cursor.row = cursor.rows.next().unwrap_or(u32::MAX);
        if count > 0 {
            cursor.in_block()?;
        }
        Ok(cursor)
    }

    fn corrupt(&self, what: &str) -> Error {
        Error::corrupt(self.path, format!("the impacts of a word of part {:?}: {what}", self.part.name))
    }

    /// The current block's last row and bound (past the last block, as a
    /// forged last row of `u32::MAX` may leave a cursor: no rows, no score).
    fn block(&self) -> (u32, f64) {
        self.blocks.get(self.block).copied().unwrap_or((u32::MAX, 0.0))
    }

    /// The current row's score.
    fn score(&self) -> f64 {
        bm25(self.weight, self.postings.value(self.rank), self.norm.of(self.part.len(self.row)))
    }

    /// Moves to the next row.
    #[inline]
    fn step(&mut self) -> Result<()> {
        self.rank += 1;
        if self.rank == self.count {
            self.row = u32::MAX;
            return Ok(());
        }
        if self.rank.is_multiple_of(IMPACT_BLOCK) {
            if self.row != self.block().0 {
                return Err(self.corrupt("a block's last row is not its rows' last"));
            }
            self.block += 1;
        }
        self.row = self.rows.next().ok_or_else(|| self.corrupt("more rows counted than held"))?;
        self.in_block()
    }

    /// Checks that the current row is in the current block (so that every
    /// window holds a row of the cursor that ends it, and windows move on).
    fn in_block(&self) -> Result<()> {
        match self.row <= self.block().0 {
            true => Ok(()),
            false => Err(self.corrupt("a row past its block's last")),
        }
    }

    /// Moves to the first row at or after `target` (`u32::MAX`: past the
    /// last), skipping the blocks that end before it unread.
    fn seek(&mut self, target: u32) -> Result<()> {
        if self.row >= target {
            return Ok(());
        }
        if self.block().0 < target {
            let mut block = self.block;
            while block < self.blocks.len() && self.blocks[block].0 < target {
                block += 1;
            }
            if block == self.blocks.len() {
                self.row = u32::MAX;
                return Ok(());
            }
            self.rows.advance_to(self.blocks[block - 1].0.saturating_add(1));
            (self.block, self.rank) = (block, block * IMPACT_BLOCK);
            if self.rank >= self.count {
                return Err(self.corrupt("more blocks than rows"));
            }
            self.row = self.rows.next().ok_or_else(|| self.corrupt("more blocks than rows"))?;
            self.in_block()?;
        }
        while self.row < target {
            self.step()?;
        }
        Ok(())
    }
}

/// BM25 of one word in one row: `weight` is idf × (k1 + 1), `norm` the
/// row's length normalization.
#[inline]
fn bm25(weight: f64, tf: u32, norm: f64) -> f64 {
    let tf = f64::from(tf);
    weight * tf / (tf + norm)
}

/// Keeps the best `limit` of `candidates` (by score, then row).
fn keep_best(candidates: &mut Vec<Candidate>, limit: usize) {
    candidates.select_nth_unstable_by(limit - 1, by_score_then_row);
    candidates.truncate(limit);
}

/// The best `limit` of every segment's best: by score, then URI, which is
/// read only for the hits and for the ties at the cut (in a merge by URI
/// that reads each segment's next URI only when it is needed).
fn pick_hits(segs: &[Seg], mut candidates: Vec<Candidate>, limit: usize) -> Result<Vec<Located>> {
    candidates.sort_unstable_by(by_score_then_row);
    // The hits, with their URIs once read.
    let mut chosen: Vec<(Candidate, Option<Vec<u8>>)>;
    if candidates.len() <= limit {
        chosen = candidates.into_iter().map(|c| (c, None)).collect();
    } else {
        let cut = candidates[limit - 1].score;
        let above = candidates.iter().take_while(|c| c.score.total_cmp(&cut) == Ordering::Greater).count();
        chosen = candidates[..above].iter().map(|&c| (c, None)).collect();
        // The tied, per segment in URI order (sorted by row within a score).
        let mut tied: Vec<Vec<u32>> = vec![Vec::new(); segs.len()];
        for c in candidates[above..].iter().take_while(|c| c.score.total_cmp(&cut) == Ordering::Equal) {
            tied[c.seg].push(c.row);
        }
        let mut heads = BinaryHeap::new();
        for (s, rows) in tied.iter().enumerate() {
            if let Some(&row) = rows.first() {
                heads.push(Reverse((segs[s].seg.uri_at(row)?, s, 0usize)));
            }
        }
        while chosen.len() < limit {
            let Some(Reverse((uri, s, at))) = heads.pop() else { break };
            chosen.push((Candidate { score: cut, seg: s, row: tied[s][at] }, Some(uri)));
            if let Some(&row) = tied[s].get(at + 1) {
                heads.push(Reverse((segs[s].seg.uri_at(row)?, s, at + 1)));
            }
        }
    }
    let mut hits = Vec::with_capacity(chosen.len());
    for (c, uri) in chosen {
        let seg = &segs[c.seg].seg;
        let uri = match uri {
            Some(uri) => uri,
            None => seg.uri_at(c.row)?,
        };
        hits.push(located(seg, c.seg, c.row, uri, c.score)?);
    }
    hits.sort_by(|a, b| {
        b.hit.score.total_cmp(&a.hit.score).then_with(|| a.hit.uri.as_bytes().cmp(b.hit.uri.as_bytes()))
    });
    Ok(hits)
}

/// A hit, and where it was found: a segment of the prepared snapshot, and
/// its row there.
pub(crate) struct Located {
    pub hit: Hit,
    seg: usize,
    row: u32,
}

/// The hit of row `row` of `seg` (segment `s` of the snapshot), whose URI
/// is `uri`.
fn located(seg: &Segment, s: usize, row: u32, uri: Vec<u8>, score: f32) -> Result<Located> {
    let uri =
        String::from_utf8(uri).map_err(|_| Error::corrupt(seg.path(), format!("the URI of row {row} is not UTF-8")))?;
    let stamp = seg.row(row)?.stamp.to_string();
    Ok(Located { hit: Hit { uri, stamp, score, title: None, snippet: None }, seg: s, row })
}

/// The count of `query` on a segment without deletions when it needs no
/// bitmap: one word found in one part, or one meta value, is the count in
/// its postings' header; `All`, a prefix or a recursive folder are ordinal
/// ranges. `None`: evaluate it.
fn quick_count(reader: &mut Reader<'_>, seg: &Seg, query: &Query) -> Result<Option<u64>> {
    if !seg.whole {
        return Ok(None);
    }
    if let Some(range) = ordinal_range(&seg.seg, query)? {
        return Ok(Some(range.len() as u64));
    }
    let key = &mut reader.key;
    Ok(match query {
        Query::All => Some(seg.live.len()),
        Query::Meta { name, value } => {
            term_key(key, META, name, value);
            Some(seg.seg.postings_count(key)?.unwrap_or(0))
        }
        Query::Text { field, text } => {
            let words = reader.text_words(text);
            let [word] = *words else { return Ok(None) };
            let mut found = None;
            for (_, part) in seg.index.parts_for(field.as_deref()) {
                term_key(&mut reader.key, WORD, &part.name, &reader.words[word]);
                if let Some(n) = seg.seg.postings_count(&reader.key)? {
                    if found.is_some() {
                        // In two parts: the union needs the bitmaps.
                        return Ok(None);
                    }
                    found = Some(n);
                }
            }
            Some(found.unwrap_or(0))
        }
        _ => None,
    })
}

/// The ordinals `query` matches in `seg` when they are one range: the URIs
/// starting with a prefix, or under a folder (recursively).
fn ordinal_range(seg: &Segment, query: &Query) -> Result<Option<std::ops::Range<u32>>> {
    Ok(match query {
        Query::Prefix(prefix) => Some(seg.prefix_range(prefix.as_bytes())?),
        Query::Under { root, recursive: true } => Some(seg.prefix_range(folder_prefix(root).as_bytes())?),
        _ => None,
    })
}

/// `a ∩ b`; when one is much smaller, by looking its rows up in the other
/// instead of walking both.
fn intersect(a: &RoaringBitmap, b: &RoaringBitmap) -> RoaringBitmap {
    let (small, big) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.len().saturating_mul(16) < big.len() {
        let mut out = RoaringBitmap::new();
        out.append(small.iter().filter(|&row| big.contains(row))).expect("rows come in order");
        out
    } else {
        small & big
    }
}

/// Postings read by one query, each once: by segment, part and word.
/// Also analyses each `Text` query's text once, numbering its distinct
/// words, and builds each fuzzy word's automaton once for all segments.
#[derive(Default)]
struct Reader<'a> {
    /// How query text is analysed: the index's analyzer.
    analyzer: Analyzer,
    /// By (segment, part, word id).
    read: HashMap<(usize, usize, usize), Option<Rc<Postings<'a>>>>,
    /// Words by id.
    words: Vec<String>,
    /// The distinct word ids of each text analysed, by the text's address.
    texts: Vec<(*const str, Rc<[usize]>)>,
    /// Every word id of each phrase, in order, by the text's address.
    phrases: Vec<(*const str, Rc<[usize]>)>,
    /// The automaton of each fuzzy word, by the word's address.
    fuzzy: Vec<(*const str, Rc<fst::automaton::Levenshtein>)>,
    key: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn new(analyzer: Analyzer) -> Reader<'a> {
        Reader { analyzer, ..Reader::default() }
    }

    /// The automaton of the words within `distance` of `word` (a `Fuzzy`
    /// query's), analysed.
    fn fuzzy(&mut self, word: &str, distance: u8) -> Result<Rc<fst::automaton::Levenshtein>> {
        if let Some((_, automaton)) = self.fuzzy.iter().find(|(w, _)| std::ptr::eq(*w, word)) {
            return Ok(automaton.clone());
        }
        let analysed = one_word(self.analyzer, word)?;
        let automaton = fst::automaton::Levenshtein::new(&analysed, u32::from(distance))
            .map_err(|e| Error::invalid_input(format!("fuzzy word {analysed:?}: {e}")))?;
        let automaton = Rc::new(automaton);
        self.fuzzy.push((word, automaton.clone()));
        Ok(automaton)
    }

    /// The ids of the distinct words of `text` (a `Text` query's), in
    /// first-seen order.
    fn text_words(&mut self, text: &str) -> Rc<[usize]> {
        if let Some((_, ids)) = self.texts.iter().find(|(t, _)| std::ptr::eq(*t, text)) {
            return ids.clone();
        }
        let mut ids = Vec::new();
        for word in query_terms(self.analyzer, text) {
            let id = self.word_id(word);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let ids: Rc<[usize]> = ids.into();
        self.texts.push((text as *const str, ids.clone()));
        ids
    }

    /// The id of `word`, a new one if it is new.
    fn word_id(&mut self, word: String) -> usize {
        match self.words.iter().position(|w| *w == word) {
            Some(id) => id,
            None => {
                self.words.push(word);
                self.words.len() - 1
            }
        }
    }

    /// The ids of every word of `text` (a `Phrase`'s), in order, repeats
    /// included.
    fn phrase_words(&mut self, text: &str) -> Rc<[usize]> {
        if let Some((_, ids)) = self.phrases.iter().find(|(t, _)| std::ptr::eq(*t, text)) {
            return ids.clone();
        }
        let terms = query_terms(self.analyzer, text);
        let ids: Rc<[usize]> = terms.into_iter().map(|word| self.word_id(word)).collect::<Vec<_>>().into();
        self.phrases.push((text as *const str, ids.clone()));
        ids
    }

    /// The postings of word `word` (an id) in part `part` of segment `s`.
    fn word(&mut self, s: usize, seg: &'a Seg, part: usize, word: usize) -> Result<Option<Rc<Postings<'a>>>> {
        if let Some(found) = self.read.get(&(s, part, word)) {
            return Ok(found.clone());
        }
        let info = &seg.index.parts[part];
        term_key(&mut self.key, WORD, &info.name, &self.words[word]);
        let found = seg.seg.postings(&self.key)?.map(Rc::new);
        if let Some(postings) = &found {
            // Scoring looks each row up in the part's norms: a row the
            // norms do not hold is damage (a file whose checksums were
            // forged), not an index past the end.
            if !info.full && !postings.rows.is_subset(&info.rows) {
                return Err(Error::corrupt(
                    seg.seg.path(),
                    format!("the postings of a word of part {:?} name rows the part's norms do not", info.name),
                ));
            }
        }
        self.read.insert((s, part, word), found.clone());
        Ok(found)
    }
}

/// A query evaluated on one segment: the live rows each sub-query matches.
struct Node {
    rows: RoaringBitmap,
    kids: Vec<Node>,
    /// A `Phrase`'s: by part (an index into the segment's parts), the rows
    /// in which the phrase occurs in that part (none listed: in none).
    parts: Vec<(usize, RoaringBitmap)>,
}

/// Evaluates `query` on segment `s`: bitmap algebra over its live rows.
fn evaluate<'a>(reader: &mut Reader<'a>, s: usize, seg: &'a Seg, query: &Query) -> Result<Node> {
    let mut kids = Vec::new();
    let mut parts = Vec::new();
    let mut rows = match query {
        Query::All => seg.live.clone(),
        Query::Phrase { field, text, slop } => {
            let phrase = reader.phrase_words(text);
            let mut rows = RoaringBitmap::new();
            for (part, _) in seg.index.parts_for(field.as_deref()) {
                let found = phrase_rows(reader, s, seg, part, &phrase, *slop)?;
                if !found.is_empty() {
                    rows |= &found;
                    parts.push((part, found));
                }
            }
            if phrase.is_empty() {
                // No word at all: refused before evaluation (`Query::check`);
                // every document, vacuously, should one get here.
                rows = seg.live.clone();
            }
            rows
        }
        Query::Any { field, text, min_should_match } => {
            let words = reader.text_words(text);
            let need = (*min_should_match).min(words.len());
            // at_least[j]: the rows holding at least j + 1 of the words so far.
            let mut at_least = vec![RoaringBitmap::new(); need];
            for &word in words.iter() {
                let with = word_rows(reader, s, seg, field.as_deref(), word)?;
                for j in (1..need).rev() {
                    let more = &at_least[j - 1] & &with;
                    at_least[j] |= more;
                }
                if let Some(first) = at_least.first_mut() {
                    *first |= &with;
                }
            }
            at_least.pop().unwrap_or_else(|| seg.live.clone())
        }
        Query::Text { field, text } => {
            let mut rows: Option<RoaringBitmap> = None;
            for &word in reader.text_words(text).iter() {
                let with = word_rows(reader, s, seg, field.as_deref(), word)?;
                rows = Some(match rows {
                    Some(rows) => intersect(&rows, &with),
                    None => with,
                });
                if rows.as_ref().is_some_and(RoaringBitmap::is_empty) {
                    break;
                }
            }
            // No word at all: refused before evaluation (`Query::check`);
            // every document, vacuously, should one get here.
            rows.unwrap_or_else(|| seg.live.clone())
        }
        Query::WordPrefix { field, prefix } => {
            let prefix = one_word(reader.analyzer, prefix)?;
            expanded_rows(seg, field.as_deref(), &fst::automaton::Str::new(&prefix).starts_with())?
        }
        Query::Fuzzy { field, word, distance } => {
            let automaton = reader.fuzzy(word, *distance)?;
            expanded_rows(seg, field.as_deref(), automaton.as_ref())?
        }
        Query::Meta { name, value } => {
            term_key(&mut reader.key, META, name, value);
            seg.seg.postings(&reader.key)?.map(|p| p.rows).unwrap_or_default()
        }
        Query::Prefix(_) | Query::Under { recursive: true, .. } => {
            let mut rows = RoaringBitmap::new();
            rows.insert_range(ordinal_range(&seg.seg, query)?.expect("a prefix or a recursive folder"));
            rows
        }
        Query::Under { root, recursive: false } => {
            let prefix = folder_prefix(root);
            let mut rows = RoaringBitmap::new();
            let mut it = seg.seg.names_in(prefix.as_bytes(), b"")?;
            while let Some(entry) = it.next_entry() {
                let (uri, row) = entry?;
                if place(prefix.as_bytes(), uri) == Place::Child {
                    rows.insert(row);
                }
            }
            rows
        }
        Query::And(queries) => {
            let mut rows: Option<RoaringBitmap> = None;
            for q in queries {
                let kid = evaluate(reader, s, seg, q)?;
                rows = Some(match rows {
                    Some(rows) => intersect(&rows, &kid.rows),
                    None => kid.rows.clone(),
                });
                kids.push(kid);
            }
            rows.unwrap_or_else(|| seg.live.clone())
        }
        Query::Or(queries) => {
            let mut rows = RoaringBitmap::new();
            for q in queries {
                let kid = evaluate(reader, s, seg, q)?;
                rows |= &kid.rows;
                kids.push(kid);
            }
            rows
        }
        Query::Not(q) => {
            let kid = evaluate(reader, s, seg, q)?;
            let rows = &seg.live - &kid.rows;
            kids.push(kid);
            rows
        }
    };
    if !seg.whole {
        rows &= &seg.live;
    }
    Ok(Node { rows, kids, parts })
}

/// The live rows of segment `s` in whose part `part` the words `phrase`
/// (ids, in order) occur in this order, with at most `slop` other words
/// between them in all (see the module docs).
fn phrase_rows<'a>(
    reader: &mut Reader<'a>,
    s: usize,
    seg: &'a Seg,
    part: usize,
    phrase: &[usize],
    slop: u32,
) -> Result<RoaringBitmap> {
    // The distinct words, and each phrase word's index among them.
    let mut distinct: Vec<usize> = Vec::with_capacity(phrase.len());
    let slots: Vec<usize> = phrase
        .iter()
        .map(|&word| {
            distinct.iter().position(|&w| w == word).unwrap_or_else(|| {
                distinct.push(word);
                distinct.len() - 1
            })
        })
        .collect();
    // Candidates: the rows holding every word in the part.
    let mut postings = Vec::with_capacity(distinct.len());
    let mut candidates: Option<RoaringBitmap> = None;
    for &word in &distinct {
        let Some(found) = reader.word(s, seg, part, word)? else { return Ok(RoaringBitmap::new()) };
        candidates = Some(match candidates {
            Some(rows) => intersect(&rows, &found.rows),
            None => found.rows.clone(),
        });
        postings.push(found);
    }
    let Some(mut candidates) = candidates else { return Ok(RoaringBitmap::new()) };
    if !seg.whole {
        candidates &= &seg.live;
    }
    if phrase.len() == 1 || candidates.is_empty() {
        return Ok(candidates);
    }
    let rows: Vec<u32> = candidates.iter().collect();
    // positions[d]: per candidate (by index in `rows`), distinct word d's
    // positions in the part, as ranges of `flat[d]`.
    let mut flat: Vec<Vec<u32>> = vec![Vec::new(); distinct.len()];
    let mut spans: Vec<Vec<(usize, usize)>> = vec![Vec::with_capacity(rows.len()); distinct.len()];
    let bad = |e: String| Error::corrupt(seg.seg.path(), format!("the positions of a word: {e}"));
    if seg.seg.has_positions() {
        let info = &seg.index.parts[part];
        for (d, postings) in postings.iter().enumerate() {
            let mut positions = seg.seg.positions(postings)?.expect("a segment with positions");
            let mut next = 0;
            for (rank, row) in postings.rows.iter().enumerate() {
                if next == rows.len() {
                    break;
                }
                let freq = postings.value(rank);
                if row == rows[next] {
                    let start = flat[d].len();
                    positions.read(freq, &mut flat[d]).map_err(bad)?;
                    // Within the part (a forged file could say otherwise).
                    if flat[d].last().is_some_and(|&last| last >= info.len(row)) {
                        return Err(bad(format!("row {row} has a position past the length of its part")));
                    }
                    spans[d].push((start, flat[d].len()));
                    next += 1;
                } else {
                    positions.skip(freq).map_err(bad)?;
                }
            }
            if next != rows.len() {
                return Err(bad("a row of the postings has no positions".to_string()));
            }
        }
    } else {
        // A segment without positions: the part's text of each candidate,
        // analysed again as at flush.
        let name = seg.index.parts[part].name.as_str();
        let words: Vec<&str> = distinct.iter().map(|&w| reader.words[w].as_str()).collect();
        for &row in &rows {
            let body = seg.seg.row(row)?.body;
            let starts: Vec<usize> = flat.iter().map(Vec::len).collect();
            let mut len = 0u32;
            let _ = Body::visit_encoded(body, &mut |item| {
                if let BodyItem::Text(part, text) = item {
                    if part == name {
                        let first = len;
                        len = first.saturating_add(analyze(reader.analyzer, text, &mut |token| {
                            if let Some(d) = words.iter().position(|w| *w == token.term) {
                                flat[d].push(first.saturating_add(token.position));
                            }
                        }));
                    }
                }
            });
            for (d, start) in starts.into_iter().enumerate() {
                spans[d].push((start, flat[d].len()));
            }
        }
    }
    let mut found = RoaringBitmap::new();
    let mut lists: Vec<&[u32]> = Vec::with_capacity(phrase.len());
    for (i, &row) in rows.iter().enumerate() {
        lists.clear();
        lists.extend(slots.iter().map(|&d| {
            let (start, end) = spans[d][i];
            &flat[d][start..end]
        }));
        if phrase_at(&lists, slop) {
            found.push(row);
        }
    }
    Ok(found)
}

/// Whether one position of each of `lists` (each strictly increasing), in
/// order and strictly increasing, spans at most `slop` other positions
/// between the first and the last beyond the `lists.len()` taken. From
/// each first position, the earliest next position of each next list
/// gives the smallest last position: trying each first position is exact.
fn phrase_at(lists: &[&[u32]], slop: u32) -> bool {
    let Some((first, rest)) = lists.split_first() else { return true };
    // The last position may be at most first + span.
    let span = u64::from(slop) + rest.len() as u64;
    'starts: for &start in first.iter() {
        let mut at = start;
        for list in rest {
            let next = list.partition_point(|&p| p <= at);
            let Some(&p) = list.get(next) else { return false };
            if u64::from(p) - u64::from(start) > span {
                continue 'starts;
            }
            at = p;
        }
        return true;
    }
    false
}

/// The rows of segment `s` holding `word` in part `field` (in any text
/// part when `None`).
fn word_rows<'a>(
    reader: &mut Reader<'a>,
    s: usize,
    seg: &'a Seg,
    field: Option<&str>,
    word: usize,
) -> Result<RoaringBitmap> {
    let mut with = RoaringBitmap::new();
    for (part, _) in seg.index.parts_for(field) {
        if let Some(postings) = reader.word(s, seg, part, word)? {
            with |= &postings.rows;
        }
    }
    Ok(with)
}

/// The rows holding, in part `field` (any text part when `None`), a word
/// that `words` accepts: the union of those words' postings.
fn expanded_rows<A: Automaton>(seg: &Seg, field: Option<&str>, words: &A) -> Result<RoaringBitmap> {
    let mut rows = RoaringBitmap::new();
    let mut head = Vec::new();
    for (_, part) in seg.index.parts_for(field) {
        term_key(&mut head, WORD, &part.name, "");
        let mut terms = seg.seg.terms().search(After { head: &head, inner: words }).into_stream();
        while let Some((_, offset)) = terms.next() {
            rows |= &seg.seg.postings_at(offset)?.rows;
        }
    }
    Ok(rows)
}

/// Accepts the keys made of `head` then a string `inner` accepts: the
/// words of one part (whose keys share a head) that an automaton accepts.
struct After<'a, A> {
    head: &'a [u8],
    inner: &'a A,
}

#[derive(Clone)]
enum AfterState<S> {
    /// This many bytes of the head read.
    Head(usize),
    Inner(S),
    Dead,
}

impl<A: Automaton> Automaton for After<'_, A> {
    type State = AfterState<A::State>;

    fn start(&self) -> Self::State {
        if self.head.is_empty() {
            AfterState::Inner(self.inner.start())
        } else {
            AfterState::Head(0)
        }
    }

    fn is_match(&self, state: &Self::State) -> bool {
        matches!(state, AfterState::Inner(s) if self.inner.is_match(s))
    }

    fn can_match(&self, state: &Self::State) -> bool {
        match state {
            AfterState::Head(_) => true,
            AfterState::Inner(s) => self.inner.can_match(s),
            AfterState::Dead => false,
        }
    }

    fn accept(&self, state: &Self::State, byte: u8) -> Self::State {
        match state {
            AfterState::Head(read) if self.head.get(*read) == Some(&byte) => {
                if read + 1 == self.head.len() {
                    AfterState::Inner(self.inner.start())
                } else {
                    AfterState::Head(read + 1)
                }
            }
            AfterState::Inner(s) => AfterState::Inner(self.inner.accept(s, byte)),
            AfterState::Head(_) | AfterState::Dead => AfterState::Dead,
        }
    }
}

/// The field and text of a query that scores words: `Text` and `Any`.
fn scored_words(query: &Query) -> Option<(&Option<String>, &str)> {
    match query {
        Query::Text { field, text } | Query::Any { field, text, .. } | Query::Phrase { field, text, .. } => {
            Some((field, text))
        }
        _ => None,
    }
}

/// The `Text`, `Any` and `Phrase` queries that can score (those not under
/// a `Not`).
fn scored_texts<'q>(query: &'q Query, out: &mut Vec<&'q Query>) {
    match query {
        Query::Text { .. } | Query::Any { .. } | Query::Phrase { .. } => out.push(query),
        Query::And(qs) | Query::Or(qs) => qs.iter().for_each(|q| scored_texts(q, out)),
        _ => {}
    }
}

/// The snapshot-wide BM25 weights of each (part, word) a query scores.
struct Weights<'a> {
    /// (part, word id) → idf × (k1 + 1), and the part's length norms.
    by_term: HashMap<(&'a str, usize), (f64, Rc<Norm>)>,
}

impl<'a> Weights<'a> {
    fn new(
        reader: &mut Reader<'a>,
        segs: &'a [Seg],
        texts: &[&'a Query],
        parts: &HashMap<String, PartStats>,
    ) -> Result<Weights<'a>> {
        // Document frequencies over the live rows of the snapshot; a (part,
        // word) counts once per segment, however many `Text`s hold it.
        let mut df: HashMap<(&'a str, usize), u64> = HashMap::new();
        for (s, seg) in segs.iter().enumerate() {
            let mut counted = std::collections::HashSet::new();
            for query in texts {
                let Some((field, text)) = scored_words(query) else { continue };
                for &word in reader.text_words(text).iter() {
                    for (part, info) in seg.index.parts_for(field.as_deref()) {
                        if !counted.insert((part, word)) {
                            continue;
                        }
                        let Some(postings) = reader.word(s, seg, part, word)? else { continue };
                        let live =
                            if seg.whole { postings.rows.len() } else { postings.rows.intersection_len(&seg.live) };
                        *df.entry((info.name.as_str(), word)).or_default() += live;
                    }
                }
            }
        }
        let mut norms: HashMap<&str, Rc<Norm>> = HashMap::new();
        let mut by_term = HashMap::with_capacity(df.len());
        for ((part, word), df) in df {
            let stats = parts.get(part).copied().unwrap_or_default();
            let (n, df) = (stats.docs as f64, df as f64);
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let norm = norms
                .entry(part)
                .or_insert_with(|| {
                    let avg_len = if stats.docs == 0 { 0.0 } else { stats.total_len as f64 / n };
                    Rc::new(Norm::new(avg_len))
                })
                .clone();
            by_term.insert((part, word), (idf * (K1 + 1.0), norm));
        }
        Ok(Weights { by_term })
    }
}

/// BM25's length normalization `k1 × (1 − b + b × len / avglen)`, from a
/// table for the common short lengths.
struct Norm {
    table: [f64; 256],
    avg_len: f64,
}

impl Norm {
    fn new(avg_len: f64) -> Norm {
        let mut table = [0.0; 256];
        for (len, slot) in table.iter_mut().enumerate() {
            *slot = Norm::compute(len as u32, avg_len);
        }
        Norm { table, avg_len }
    }

    fn compute(len: u32, avg_len: f64) -> f64 {
        let norm = if avg_len > 0.0 { f64::from(len) / avg_len } else { 0.0 };
        K1 * (1.0 - B + B * norm)
    }

    #[inline]
    fn of(&self, len: u32) -> f64 {
        match self.table.get(len as usize) {
            Some(&norm) => norm,
            None => Norm::compute(len, self.avg_len),
        }
    }
}

/// The rows of segment `s` that scoring words add to, with their scores,
/// by row. Each `Text` query adds to its rows that count at the top (an
/// `Or`'s operand counts only for the rows it matches itself).
fn score_segment<'a>(
    reader: &mut Reader<'a>,
    weights: &Weights<'a>,
    s: usize,
    seg: &'a Seg,
    query: &Query,
    node: &Node,
) -> Result<Vec<(u32, f64)>> {
    let mut counting = Vec::new();
    counting_texts(query, node, Cow::Borrowed(&node.rows), &mut counting);
    let mut lists: Vec<Vec<(u32, f64)>> = Vec::new();
    for (query, rows, at) in counting {
        let Some((field, text)) = scored_words(query) else { continue };
        // The rows a `Text` (or an `Any` needing a word) matches each hold
        // one of its words; an `Any` needing none matches rows without.
        let needs_a_word = !matches!(query, Query::Any { min_should_match: 0, .. });
        if rows.is_empty() {
            continue;
        }
        let words = reader.text_words(text);
        let one_part = seg.index.parts_for(field.as_deref()).count() == 1;
        // A phrase scores in the parts where it occurs, the rows where it
        // does (each holds every word of the phrase in that part).
        let phrase = matches!(query, Query::Phrase { .. });
        let phrase_rows: Vec<(usize, RoaringBitmap)> =
            if phrase { at.parts.iter().map(|(p, found)| (*p, found & rows.as_ref())).collect() } else { Vec::new() };
        for &word in words.iter() {
            for (p, part) in seg.index.parts_for(field.as_deref()) {
                let rows = if phrase {
                    match phrase_rows.iter().find(|(q, _)| *q == p) {
                        Some((_, found)) => found,
                        None => continue,
                    }
                } else {
                    rows.as_ref()
                };
                let Some(postings) = reader.word(s, seg, p, word)? else { continue };
                let Some((weight, norm)) = weights.by_term.get(&(part.name.as_str(), word)) else {
                    continue;
                };
                let weight = *weight;
                let score = |rank: usize, row: u32| bm25(weight, postings.value(rank), norm.of(part.len(row)));
                let mut list = Vec::with_capacity(rows.len().min(postings.rows.len()) as usize);
                // One word in one part: the rows are within the postings,
                // so the same count means the same rows.
                let exact =
                    (phrase || needs_a_word && words.len() == 1 && one_part) && rows.len() == postings.rows.len();
                if exact {
                    let mut rank = 0;
                    postings.rows.iter().for_each(|row| {
                        list.push((row, score(rank, row)));
                        rank += 1;
                    });
                } else if rows.len().saturating_mul(64) < postings.rows.len() {
                    // Far fewer rows than postings: look each one up (a
                    // rank costs up to a 1024-word popcount in a dense
                    // container, hence the wide margin).
                    for row in rows.iter() {
                        if postings.rows.contains(row) {
                            list.push((row, score((postings.rows.rank(row) - 1) as usize, row)));
                        }
                    }
                } else {
                    // A merge of the two ordered lists.
                    let mut within = rows.iter().peekable();
                    for (rank, row) in postings.rows.iter().enumerate() {
                        while within.next_if(|&r| r < row).is_some() {}
                        match within.peek() {
                            Some(&r) if r == row => list.push((row, score(rank, row))),
                            Some(_) => {}
                            None => break,
                        }
                    }
                }
                lists.push(list);
            }
        }
    }
    Ok(match lists.len() {
        0 => Vec::new(),
        1 => lists.pop().expect("one list"),
        _ => {
            // Merged pairwise in list order, so that equal documents get
            // exactly equal scores (the same additions in the same order).
            let mut lists = lists.into_iter();
            let first = lists.next().expect("two lists or more");
            lists.fold(first, |summed, list| merge_sum(&summed, &list))
        }
    })
}

/// The rows of two by-row lists, with the scores of rows in both added.
fn merge_sum(a: &[(u32, f64)], b: &[(u32, f64)]) -> Vec<(u32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The scoring `Text` queries under `query` with the rows where each
/// counts: its own rows within those of every operator above it.
fn counting_texts<'q, 'n>(
    query: &'q Query,
    node: &'n Node,
    within: Cow<'n, RoaringBitmap>,
    out: &mut Vec<(&'q Query, Cow<'n, RoaringBitmap>, &'n Node)>,
) {
    match query {
        Query::Text { .. } | Query::Any { .. } | Query::Phrase { .. } => out.push((query, within, node)),
        // An `And` matches only where each operand does.
        Query::And(qs) => qs.iter().zip(&node.kids).for_each(|(q, kid)| counting_texts(q, kid, within.clone(), out)),
        Query::Or(qs) => {
            for (q, kid) in qs.iter().zip(&node.kids) {
                counting_texts(q, kid, Cow::Owned(&kid.rows & within.as_ref()), out);
            }
        }
        _ => {}
    }
}

// ---- sort by a meta, and what hits show ----------------------------------

impl Snapshot {
    /// The first `window` hits in the order of meta `name`'s values
    /// (ascending, or `descending`), ties by URI; a hit without the meta
    /// comes after every hit with it, in either direction. A hit holding
    /// several values sorts by its first in that order (the smallest when
    /// ascending, the largest when descending). Values compare as numbers
    /// when both are decimal numbers (`9` before `10`), numbers before other
    /// values, other values by their bytes (ISO dates sort as dates). Hits
    /// keep their scores.
    ///
    /// Reads every value of the meta held by a hit (each value's postings
    /// once), then the URIs of the hits that tie at the window's values.
    pub fn search_by_meta(&self, query: &Query, name: &str, descending: bool, window: usize) -> Result<Vec<Located>> {
        let prepared = self.prepared()?;
        let segs = &prepared.segs;
        let mut reader = Reader::new(self.cache.analyzer);
        let nodes =
            segs.iter().enumerate().map(|(s, seg)| evaluate(&mut reader, s, seg, query)).collect::<Result<Vec<_>>>()?;
        // Every hit with its sort value: (value, segment, row).
        let mut keyed: Vec<(Option<String>, usize, u32)> = Vec::new();
        let mut head = Vec::new();
        for (s, (seg, node)) in segs.iter().zip(&nodes).enumerate() {
            if node.rows.is_empty() {
                continue;
            }
            let mut best: HashMap<u32, String> = HashMap::new();
            for_each_meta_value(&seg.seg, name, &mut head, &mut |value, postings| {
                for row in &(&postings.rows & &node.rows) {
                    let first = |old: &String| {
                        let order = compare_values(value, old);
                        if descending {
                            order.is_gt()
                        } else {
                            order.is_lt()
                        }
                    };
                    match best.get_mut(&row) {
                        Some(old) if first(old) => *old = value.to_string(),
                        Some(_) => {}
                        None => {
                            best.insert(row, value.to_string());
                        }
                    }
                }
                Ok(())
            })?;
            for row in &node.rows {
                keyed.push((best.remove(&row), s, row));
            }
        }
        let order = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) if descending => compare_values(b, a),
            (Some(a), Some(b)) => compare_values(a, b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        keyed.sort_by(|a, b| order(&a.0, &b.0));
        // The window, each run of equal values in URI order.
        let mut chosen: Vec<(usize, u32, Vec<u8>)> = Vec::with_capacity(window.min(keyed.len()));
        let mut at = 0;
        while chosen.len() < window && at < keyed.len() {
            let run = keyed[at..].iter().take_while(|k| order(&k.0, &keyed[at].0).is_eq()).count();
            let tied: Vec<(usize, u32)> = keyed[at..at + run].iter().map(|&(_, s, row)| (s, row)).collect();
            chosen.extend(first_by_uri(segs, tied, window - chosen.len())?);
            at += run;
        }
        // Their scores.
        let mut texts = Vec::new();
        scored_texts(query, &mut texts);
        let weights = Weights::new(&mut reader, segs, &texts, &prepared.parts)?;
        let mut scores: HashMap<usize, Vec<(u32, f64)>> = HashMap::new();
        let mut hits = Vec::with_capacity(chosen.len());
        for (s, row, uri) in chosen {
            let scored = match scores.entry(s) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(score_segment(&mut reader, &weights, s, &segs[s], query, &nodes[s])?)
                }
            };
            let score = scored.binary_search_by_key(&row, |&(r, _)| r).map_or(0.0, |i| scored[i].1 as f32);
            hits.push(located(&segs[s].seg, s, row, uri, score)?);
        }
        Ok(hits)
    }

    /// Calls `show` with each hit and its body (as it was when it became
    /// Searchable), and returns the hits.
    pub fn present(
        &self,
        found: Vec<Located>,
        show: &mut dyn FnMut(&mut Hit, &[u8]) -> Result<()>,
    ) -> Result<Vec<Hit>> {
        let prepared = self.prepared()?;
        let mut hits = Vec::with_capacity(found.len());
        for Located { mut hit, seg, row } in found {
            let body = prepared.segs[seg].seg.row(row)?.body;
            show(&mut hit, body)?;
            hits.push(hit);
        }
        Ok(hits)
    }
}

impl Snapshot {
    /// How many of `query`'s hits are in each folder directly under `root`
    /// (recursively inside it), the `limit` fullest first, ties by name:
    /// the counts an `under:` refinement gives, each folder by its whole
    /// string (as [`Entry::Folder`](crate::Entry::Folder) writes it). Hits
    /// directly in `root` are in no folder. Per segment, each child folder is one ordinal range
    /// (ordinals are in URI order): one rank of the hits per folder, and
    /// one URI read per folder (plus one per document directly in `root`).
    pub fn folder_counts(&self, query: &Query, root: &str, limit: usize) -> Result<(Vec<(String, u64)>, u64)> {
        let prefix = folder_prefix(root);
        let prefix = prefix.as_bytes();
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        let matched = self.for_each_hit_set(query, &mut |seg, rows| {
            let hits_below = |end: u32| if end == 0 { 0 } else { rows.rank(end - 1) };
            let range = seg.seg.prefix_range(prefix)?;
            let mut at = range.start;
            while at < range.end {
                let uri = seg.seg.uri_at(at)?;
                let rest = uri.get(prefix.len()..).unwrap_or_default();
                let Some(slash) = rest.iter().position(|&b| b == b'/') else {
                    at += 1;
                    continue;
                };
                let folder = &uri[..prefix.len() + slash + 1];
                let inside = seg.seg.prefix_range(folder)?;
                let n = hits_below(inside.end) - hits_below(inside.start);
                if n > 0 {
                    *counts.entry(folder.to_vec()).or_default() += n;
                }
                at = inside.end.max(at + 1);
            }
            Ok(())
        })?;
        let folders = counts.into_iter().map(|(name, n)| (String::from_utf8_lossy(&name).into_owned(), n));
        Ok((most_frequent(folders, limit), matched))
    }

    /// Calls `visit` with each segment whose rows `query` matches, and those
    /// (live) rows; returns how many rows it matched in all.
    fn for_each_hit_set(
        &self,
        query: &Query,
        visit: &mut dyn FnMut(&Seg, &RoaringBitmap) -> Result<()>,
    ) -> Result<u64> {
        let prepared = self.prepared()?;
        let mut reader = Reader::new(self.cache.analyzer);
        let mut matched = 0;
        for (s, seg) in prepared.segs.iter().enumerate() {
            let rows = evaluate(&mut reader, s, seg, query)?.rows;
            matched += rows.len();
            if !rows.is_empty() {
                visit(seg, &rows)?;
            }
        }
        Ok(matched)
    }
}

/// The `limit` largest counts first, ties by value: a facet's order.
fn most_frequent(counts: impl Iterator<Item = (String, u64)>, limit: usize) -> Vec<(String, u64)> {
    let mut values: Vec<(String, u64)> = counts.collect();
    values.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    values.truncate(limit);
    values
}

/// Calls `visit` with each value of meta `name` in `seg`, in byte order,
/// and its postings (`head`: a buffer).
fn for_each_meta_value(
    seg: &Segment,
    name: &str,
    head: &mut Vec<u8>,
    visit: &mut dyn FnMut(&str, Postings<'_>) -> Result<()>,
) -> Result<()> {
    head.clear();
    head.extend_from_slice(name.as_bytes());
    head.push(0);
    let mut terms = seg.meta_terms_from(head)?;
    while let Some((key, offset)) = terms.next_term()? {
        if key < head.as_slice() {
            continue;
        }
        let Some(value) = key.strip_prefix(head.as_slice()) else { break };
        let value = std::str::from_utf8(value)
            .map_err(|_| Error::corrupt(seg.path(), format!("a value of meta {name:?} is not UTF-8")))?;
        visit(value, seg.postings_at(offset)?)?;
    }
    Ok(())
}

/// The order of two meta values for [`Snapshot::search_by_meta`]: decimal
/// numbers by value (then by their text, so `1.0` and `1` are distinct)
/// before every other value, others by their bytes. A total order.
fn compare_values(a: &str, b: &str) -> Ordering {
    let number = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite() && !v.contains(['e', 'E', 'i', 'n', 'N']));
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The first `k` of `tied` (segment, row) in URI order, with their URIs:
/// a merge of the segments' rows (in URI order within a segment) that reads
/// a URI only when it is needed.
fn first_by_uri(segs: &[Seg], tied: Vec<(usize, u32)>, k: usize) -> Result<Vec<(usize, u32, Vec<u8>)>> {
    let mut by_seg: Vec<Vec<u32>> = vec![Vec::new(); segs.len()];
    for (s, row) in tied {
        by_seg[s].push(row);
    }
    let mut heads = BinaryHeap::new();
    for (s, rows) in by_seg.iter_mut().enumerate() {
        rows.sort_unstable();
        if let Some(&row) = rows.first() {
            heads.push(Reverse((segs[s].seg.uri_at(row)?, s, 0usize)));
        }
    }
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let Some(Reverse((uri, s, at))) = heads.pop() else { break };
        out.push((s, by_seg[s][at], uri));
        if let Some(&row) = by_seg[s].get(at + 1) {
            heads.push(Reverse((segs[s].seg.uri_at(row)?, s, at + 1)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{write_segment, SegmentEntry};
    use crate::storage::SimStorage;

    fn snapshot(seg: Segment) -> Snapshot {
        Snapshot::new(vec![(Arc::new(seg), Arc::new(RoaringBitmap::new()))], Arc::new(IndexCache::new(Analyzer::Exact)))
    }

    /// The rows of `old` written anew by this version, as `new.pdx`.
    fn rewritten(storage: &SimStorage, old: &Segment) -> Segment {
        let rows: Vec<(Vec<u8>, u64, String, Vec<u8>)> = (0..old.rows() as u32)
            .map(|o| {
                let row = old.row(o).unwrap();
                (old.uri_at(o).unwrap(), row.serial, row.stamp.to_string(), row.body.to_vec())
            })
            .collect();
        write_segment(storage, "new.pdx", &|visit| {
            for (uri, serial, stamp, body) in &rows {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        })
        .unwrap();
        Segment::open(storage, "new.pdx").unwrap()
    }

    /// A segment of version 5 (no impacts: every row scored) and the same
    /// rows written now (block-max for the words with blocks) give the
    /// same hits, order and scores.
    #[test]
    fn a_segment_without_impacts_ranks_the_same() {
        let storage = SimStorage::new("/idx");
        storage.write("old.pdx", include_bytes!("../../tests/fixtures/segment-v5.pdx"));
        let old = Segment::open(&storage, "old.pdx").unwrap();
        let new = snapshot(rewritten(&storage, &old));
        let old = snapshot(old);
        for word in ["alpha", "beta", "gamma", "delta", "été", "x", "title"] {
            for field in [None, Some("body".to_string()), Some("title".to_string())] {
                let query = Query::Text { field, text: word.into() };
                for limit in [1, 2, 10, 100, 1000] {
                    assert_eq!(new.search(&query, limit).unwrap(), old.search(&query, limit).unwrap(), "{query}");
                }
            }
        }
    }

    /// A segment of version 3 (no positions: its candidates' bodies are
    /// analysed again) answers phrases exactly as the same rows written
    /// now (positions from the postings): hits, order, scores, counts.
    #[test]
    fn phrases_on_a_segment_without_positions_read_the_bodies() {
        let storage = SimStorage::new("/idx");
        storage.write("old.pdx", include_bytes!("../../tests/fixtures/segment-v3.pdx"));
        let old = Segment::open(&storage, "old.pdx").unwrap();
        assert!(!old.has_positions());
        let new = rewritten(&storage, &old);
        assert!(new.has_positions());
        let (old, new) = (snapshot(old), snapshot(new));
        let words = ["alpha", "beta", "gamma", "delta", "ÉTÉ", "x", "3.14", "don't", "title", "nope"];
        let mut found = 0;
        for (i, a) in words.iter().enumerate() {
            for b in &words[i % 3..i % 3 + 6] {
                for c in ["", " gamma", " alpha"] {
                    for (slop, field) in [(0, None), (1, Some("body")), (2, None), (3, Some("title"))] {
                        let query =
                            Query::Phrase { field: field.map(str::to_string), text: format!("{a} {b}{c}"), slop };
                        let hits = new.search(&query, 1000).unwrap();
                        let same = old.search(&query, 1000).unwrap();
                        assert_eq!(hits, same, "{query}");
                        assert_eq!(new.count(&query).unwrap(), hits.len() as u64, "{query}");
                        assert_eq!(old.count(&query).unwrap(), hits.len() as u64, "{query}");
                        found += hits.len();
                    }
                }
            }
        }
        assert!(found > 100, "the phrases find something: {found}");
    }

    /// Block-max top-k picks exactly the hits that scoring every row picks:
    /// same hits, order and scores, at every limit, for one word, words
    /// that must all occur, and ranked ORs needing 1 to 3 of them, in one
    /// part or two, over segments with deletions, a word in many blocks
    /// with frequencies and lengths that vary (many ties), rarer words,
    /// and a segment too small for blocks.
    #[test]
    fn block_max_finds_what_scoring_every_row_finds() {
        let storage = SimStorage::new("/idx");
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut segments = Vec::new();
        for (s, rows) in [3_000u32, 1_000, 100].into_iter().enumerate() {
            let mut entries = Vec::new();
            for i in 0..rows {
                let mut words = Vec::new();
                for _ in 0..next(4) {
                    words.push("common".to_string());
                }
                if next(40) == 0 {
                    words.push("rare".to_string());
                }
                for _ in 0..next(12) {
                    words.push(format!("f{}", next(5)));
                }
                let mut doc = crate::document::Document::new("u").with_text("body", words.join(" "));
                if next(10) == 0 {
                    doc = doc.with_text("title", "common title");
                }
                entries.push((format!("u{s}/{i:05}").into_bytes(), u64::from(i) + 1, doc.body().encode()));
            }
            let name = format!("seg-{s}.pdx");
            write_segment(&storage, &name, &|visit| {
                for (uri, serial, body) in &entries {
                    visit(SegmentEntry { uri, serial: *serial, stamp: "s", body })?;
                }
                Ok(())
            })
            .unwrap();
            let deleted: RoaringBitmap = (0..rows).filter(|_| s == 1 && next(5) == 0).collect();
            segments.push((Arc::new(Segment::open(&storage, &name).unwrap()), Arc::new(deleted)));
        }
        let snap = Snapshot::new(segments, Arc::new(IndexCache::new(Analyzer::Exact)));
        let body = Some("body".to_string());
        let any = |field: &Option<String>, text: &str, min_should_match| Query::Any {
            field: field.clone(),
            text: text.into(),
            min_should_match,
        };
        let queries = [
            Query::Text { field: body.clone(), text: "common".into() },
            any(&body, "Common", 1),
            Query::Text { field: body.clone(), text: "rare".into() },
            Query::Text { field: body.clone(), text: "f3".into() },
            Query::Text { field: None, text: "common".into() },
            Query::Text { field: Some("title".into()), text: "common".into() },
            Query::Text { field: body.clone(), text: "common f1".into() },
            Query::Text { field: None, text: "rare common".into() },
            Query::Text { field: body.clone(), text: "f1 f2 common".into() },
            any(&body, "common rare", 1),
            any(&None, "common title f4", 1),
            any(&body, "f1 f2 f3 rare", 2),
            any(&None, "f1 f2 common rare", 3),
            any(&body, "rare nothing", 1),
            any(&None, "nothing common title", 2),
            any(&body, "common f0", 0),
        ];
        for query in &queries {
            for limit in [1, 2, 3, 10, 57, 100, 129, 1_000, 5_000] {
                let fast: Vec<Hit> = snap.top(query, limit, true).unwrap().into_iter().map(|l| l.hit).collect();
                let every: Vec<Hit> = snap.top(query, limit, false).unwrap().into_iter().map(|l| l.hit).collect();
                assert_eq!(fast, every, "{query} limit {limit}");
                assert_eq!(fast.len(), (snap.count(query).unwrap() as usize).min(limit), "{query} limit {limit}");
            }
        }
        // The block-max path is the one taken for words alone, in any
        // segment of version 6.
        fn taken(prepared: &Prepared, query: &Query, s: usize) -> bool {
            let mut reader = Reader::new(Analyzer::Exact);
            let mut texts = Vec::new();
            scored_texts(query, &mut texts);
            let weights = Weights::new(&mut reader, &prepared.segs, &texts, &prepared.parts).unwrap();
            let seg = &prepared.segs[s];
            best_by_blocks(&mut reader, &weights, s, seg, query, 10, f32::NEG_INFINITY, &mut Vec::new()).unwrap()
        }
        let prepared = snap.prepared().unwrap();
        for (q, s) in [(0, 0), (1, 1), (0, 2), (4, 0), (8, 1), (11, 0)] {
            assert!(taken(&prepared, &queries[q], s), "{}", queries[q]);
        }
        assert!(!taken(&prepared, &queries[15], 0), "min_should_match 0: every row matches");
        let phrase = Query::Phrase { field: body.clone(), text: "common f1".into(), slop: 0 };
        assert!(!taken(&prepared, &phrase, 0));
    }

    /// Forged impacts (every checksum made to match, so that only the
    /// impacts' own checks stand): a search gets hits or `Corrupt`, never a
    /// panic nor a loop, whatever byte of a word's impacts is changed.
    #[test]
    fn forged_impacts_are_hits_or_corrupt() {
        let storage = SimStorage::new("/idx");
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..600)
            .map(|i| {
                let text = format!("{}{}", "common ".repeat(1 + i % 3), "x ".repeat(i % 5));
                let doc = crate::document::Document::new("u").with_text("body", text);
                (format!("u/{i:04}").into_bytes(), doc.body().encode())
            })
            .collect();
        write_segment(&storage, "seg.pdx", &|visit| {
            for (uri, body) in &entries {
                visit(SegmentEntry { uri, serial: 1, stamp: "s", body })?;
            }
            Ok(())
        })
        .unwrap();
        let seg = Segment::open(&storage, "seg.pdx").unwrap();
        let mut key = Vec::new();
        term_key(&mut key, WORD, "body", "common");
        let range = seg.inverted().impacts_range(&seg.postings(&key).unwrap().unwrap()).unwrap();
        assert!(range.end - range.start > 10, "the word has blocks");
        let file = storage.read("seg.pdx").unwrap();
        let start = crate::segment::parse_footer(&file).unwrap().section(crate::segment::Section::Postings).start;
        let queries = [
            Query::Text { field: None, text: "common".into() },
            Query::Any { field: None, text: "common x".into(), min_should_match: 1 },
            Query::Text { field: None, text: "x common".into() },
        ];
        let (mut corrupt, mut answered) = (0, 0);
        for at in start + range.start..start + range.end {
            for value in [0x00, 0x01, 0x05, 0x7f, 0x80, 0xff] {
                let mut bytes = file.clone();
                if bytes[at as usize] == value {
                    continue;
                }
                bytes[at as usize] = value;
                crate::segment::reseal(&mut bytes).unwrap();
                storage.write("forged.pdx", &bytes);
                let snap = snapshot(Segment::open(&storage, "forged.pdx").unwrap());
                for query in &queries {
                    for limit in [1, 10, 1000] {
                        match snap.search(query, limit) {
                            Ok(_) => answered += 1,
                            Err(Error::Corrupt { .. }) => corrupt += 1,
                            Err(e) => panic!("{query}: {e}"),
                        }
                    }
                }
            }
        }
        assert!(corrupt > 0 && answered > 0, "{corrupt} corrupt, {answered} answered");
    }

    /// A one-word phrase is that word's `Text`: same hits, same scores.
    #[test]
    fn a_one_word_phrase_is_the_word() {
        let storage = SimStorage::new("/idx");
        storage.write("old.pdx", include_bytes!("../../tests/fixtures/segment-v3.pdx"));
        let snap = snapshot(Segment::open(&storage, "old.pdx").unwrap());
        for word in ["alpha", "Beta", "x", "title"] {
            for field in [None, Some("body".to_string())] {
                let text = Query::Text { field: field.clone(), text: word.into() };
                let phrase = Query::Phrase { field, text: format!(" {word}. "), slop: 2 };
                let hits = snap.search(&text, 1000).unwrap();
                assert!(!hits.is_empty() || word == "title", "{text}");
                assert_eq!(snap.search(&phrase, 1000).unwrap(), hits, "{phrase}");
            }
        }
    }

    #[test]
    fn phrase_positions_are_matched_in_order_within_the_slop() {
        let at = |lists: &[&[u32]], slop| phrase_at(lists, slop);
        assert!(at(&[&[3], &[4]], 0));
        assert!(!at(&[&[4], &[3]], 5), "in order");
        assert!(at(&[&[0, 10], &[12]], 1));
        assert!(!at(&[&[0, 10], &[13]], 1));
        // A repeated word needs two occurrences.
        assert!(!at(&[&[5], &[5]], 3));
        assert!(at(&[&[5, 7], &[5, 7]], 1));
        // The gaps add up: 1 + 1 <= 2, not <= 1.
        assert!(at(&[&[0], &[2], &[4]], 2));
        assert!(!at(&[&[0], &[2], &[4]], 1));
        // The earliest next occurrence, from a later start.
        assert!(at(&[&[0, 8], &[9, 20], &[10]], 0));
        assert!(at(&[&[1]], 0));
        assert!(!at(&[&[1], &[]], 9));
    }
}
