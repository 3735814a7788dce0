//! The search workload (`--search`), run by a child process that holds one
//! engine, like the connector workloads of run.rs: rows go to stdout as `ROW`
//! lines. Two more kinds of lines go to the parent: `WARN\t<text>` when an
//! answer differs from what the generated data says it must be, and
//! `COUNTS\tand\t<a>+<b>=<count>,…`, the hit counts of the two-word AND
//! queries, which the parent compares between engines.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::data::{fresh_text_doc, fresh_word, mix, Share, TextDoc, Vocabulary, BODY_WORDS};
use crate::engines::SearchEngine;
use crate::measure::{disk_usage, write_bytes};
use crate::run::{emit, millis, rate, Meter, Outcome, Row, BATCH};
use crate::Res;

/// Hits per search.
const LIMIT: usize = 10;
/// New documents made searchable one at a time (row S6).
const FRESH_DOCS: u64 = 10;
/// The most common words, counted in row S5a (and their pairs in S5b).
const COMMON: usize = 5;
/// Passes over the common words and pairs in rows S5a and S5b.
const COUNT_PASSES: usize = 10;
/// One-word queries: ranks drawn log-uniformly in this range (the middle of
/// the distribution: at 1M documents, from ~17,000 documents down to ~350).
const ONE_WORD_RANKS: (f64, f64) = (100.0, 5_000.0);
/// Row S3f: the most frequent words (ranks 0 to 99: at 1M documents, from
/// ~840,000 documents down to ~17,000), each queried this many times.
const FREQUENT: usize = 100;
const FREQUENT_PASSES: usize = 4;
/// Each word of a two-word query: ranks drawn log-uniformly in this range
/// (at 1M documents, from ~80,000 documents down to ~900).
const AND_RANKS: (f64, f64) = (20.0, 2_000.0);

/// Two-word phrase queries: each word's rank drawn log-uniformly in this
/// range (frequent words, so that adjacent pairs occur: at 1M documents the
/// pair of ranks 0 and 1 is in ~70,000 documents).
const PHRASE_RANKS: (f64, f64) = (1.0, 60.0);

/// What the parent passes to a child of the search workload.
pub struct SearchPlan {
    pub docs: u64,
    pub dir: PathBuf,
    pub queries: usize,
}

/// The same deterministic queries for every engine, as vocabulary ranks.
struct Queries {
    one: Vec<usize>,
    /// Two distinct ranks, the smaller first.
    and: Vec<(usize, usize)>,
    /// Every pair of the [`COMMON`] most common words.
    common_and: Vec<(usize, usize)>,
    /// Two distinct ranks, in phrase order.
    phrase: Vec<(usize, usize)>,
}

fn log_uniform(h: u64, (lo, hi): (f64, f64)) -> usize {
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    (lo * (hi / lo).powf(u)) as usize
}

impl Queries {
    fn new(count: usize) -> Queries {
        let one = (0..count as u64).map(|i| log_uniform(mix(i ^ 0x0e0e_0001), ONE_WORD_RANKS)).collect();
        let and = (0..count as u64)
            .map(|i| {
                let a = log_uniform(mix(i ^ 0x0a0a_0002), AND_RANKS);
                let mut j = 0;
                loop {
                    let b = log_uniform(mix((i << 8 | j) ^ 0x0b0b_0003), AND_RANKS);
                    if b != a {
                        return (a.min(b), a.max(b));
                    }
                    j += 1;
                }
            })
            .collect();
        let common_and = (0..COMMON).flat_map(|a| (a + 1..COMMON).map(move |b| (a, b))).collect();
        let phrase = (0..count as u64)
            .map(|i| {
                let rank = |h: u64| log_uniform(h, PHRASE_RANKS) - 1;
                let a = rank(mix(i ^ 0x0f0f_0004));
                let mut j = 0;
                loop {
                    let b = rank(mix((i << 8 | j) ^ 0x0c0c_0005));
                    if b != a {
                        return (a, b);
                    }
                    j += 1;
                }
            })
            .collect();
        Queries { one, and, common_and, phrase }
    }
}

/// The answers the generated data says the engines must give: documents
/// per word, and per two-word query.
struct Truth {
    df: Vec<u64>,
    /// Smaller rank → (larger rank, index into `pair_counts`).
    pairs: HashMap<usize, Vec<(usize, usize)>>,
    pair_counts: Vec<u64>,
    /// (first rank, second rank) of a phrase query → its index in
    /// `phrase_counts`.
    phrases: HashMap<(usize, usize), usize>,
    /// Documents holding each phrase query's words adjacent, in order.
    phrase_counts: Vec<u64>,
}

impl Truth {
    fn new(pairs: &[(usize, usize)], phrase: &[(usize, usize)]) -> Truth {
        let mut map: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (i, &(a, b)) in pairs.iter().enumerate() {
            map.entry(a).or_default().push((b, i));
        }
        let mut phrases = HashMap::new();
        for &p in phrase {
            let next = phrases.len();
            phrases.entry(p).or_insert(next);
        }
        Truth {
            df: vec![0; Vocabulary::SIZE],
            pairs: map,
            pair_counts: vec![0; pairs.len()],
            phrase_counts: vec![0; phrases.len()],
            phrases,
        }
    }

    /// How many documents hold the phrase query `p`.
    fn phrase_count(&self, p: (usize, usize)) -> u64 {
        self.phrase_counts[self.phrases[&p]]
    }

    fn observe(&mut self, ranks: &[usize], scratch: &mut Vec<usize>) {
        // Phrases first, on the words in order: each counted once per
        // document.
        let mut seen: Vec<usize> = Vec::new();
        for pair in ranks.windows(2) {
            if let Some(&i) = self.phrases.get(&(pair[0], pair[1])) {
                if !seen.contains(&i) {
                    seen.push(i);
                    self.phrase_counts[i] += 1;
                }
            }
        }
        scratch.clear();
        scratch.extend_from_slice(ranks);
        scratch.sort_unstable();
        scratch.dedup();
        for &a in scratch.iter() {
            self.df[a] += 1;
            if let Some(list) = self.pairs.get(&a) {
                for &(b, i) in list {
                    if scratch.binary_search(&b).is_ok() {
                        self.pair_counts[i] += 1;
                    }
                }
            }
        }
    }
}

/// Times one-word top-10 queries, the word of each rank of `ranks` (drawn
/// from `range`, for the note), and checks the number of hits.
fn one_word_queries<E: SearchEngine>(
    engine: &mut E,
    vocabulary: &Vocabulary,
    truth: &Truth,
    ranks: &[usize],
    range: (f64, f64),
    hits: &mut Vec<(String, String)>,
) -> Res<Outcome> {
    let mut lat = Vec::with_capacity(ranks.len());
    let mut wrong = Vec::new();
    for &rank in ranks {
        let word = vocabulary.word(rank);
        let start = Instant::now();
        engine.top(&[word], LIMIT, hits)?;
        lat.push(start.elapsed());
        if hits.len() != (truth.df[rank].min(LIMIT as u64) as usize) {
            wrong.push(format!("{word}: {} hits", hits.len()));
        }
    }
    if !wrong.is_empty() {
        warn(format!(
            "{} of {} one-word queries returned a wrong number of hits: {}",
            wrong.len(),
            lat.len(),
            wrong[..wrong.len().min(5)].join(", ")
        ));
    }
    let dfs: Vec<u64> = ranks.iter().map(|&r| truth.df[r]).collect();
    let mut o = rate(lat.len() as u64, lat.iter().sum(), "queries/s");
    o.note = format!(
        "{} queries, word ranks {}–{} (in {}–{} documents); {}",
        lat.len(),
        range.0,
        range.1,
        dfs.iter().min().unwrap_or(&0),
        dfs.iter().max().unwrap_or(&0),
        latencies(&mut lat)
    );
    Ok(o)
}

fn warn(text: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "WARN\t{}", text.replace(['\t', '\n'], " "));
    let _ = out.flush();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `p50 …, p99 …, max …` of per-query latencies.
fn latencies(lat: &mut [Duration]) -> String {
    lat.sort();
    let at = |q: f64| ms(lat[((lat.len() - 1) as f64 * q).round() as usize]);
    format!("latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms", at(0.5), at(0.99), at(1.0))
}

pub fn run<E: SearchEngine>(plan: &SearchPlan) -> Res<()> {
    let started = Instant::now();
    let written_at_start = write_bytes();
    let share = Share::with_about(plan.docs);
    let n = share.len();
    let vocabulary = Vocabulary::new();
    let queries = Queries::new(plan.queries.max(1));
    let all_pairs: Vec<(usize, usize)> = queries.and.iter().chain(&queries.common_and).copied().collect();

    // The expected answers, from a pass over the documents (which also
    // times generating them, for the note of row S1).
    let mut truth = Truth::new(&all_pairs, &queries.phrase);
    let (mut ranks, mut scratch) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for k in 0..n {
        let doc = share.text_doc(k, &vocabulary, &mut ranks);
        std::hint::black_box(&doc);
        truth.observe(&ranks, &mut scratch);
    }
    let generating = start.elapsed();
    let expected_top = |count: u64| count.min(LIMIT as u64) as usize;

    let store = plan.dir.join("a");
    std::fs::create_dir_all(&store)?;
    let mut meter = Meter { peak: 0, anon: 0 };
    let mut engine = E::open(&store)?;

    meter.run("S1", "index N docs until searchable (1000/batch, then refresh / commit + reload)", &store, || {
        let wall = Instant::now();
        let mut took = Duration::ZERO;
        let mut k = 0;
        while k < n {
            let end = (k + BATCH as u64).min(n);
            let docs: Vec<TextDoc> = (k..end).map(|i| share.text_doc(i, &vocabulary, &mut ranks)).collect();
            let start = Instant::now();
            engine.add_batch(docs)?;
            took += start.elapsed();
            k = end;
        }
        let start = Instant::now();
        engine.make_searchable()?;
        let last = start.elapsed();
        took += last;
        let mut o = rate(n, took, "docs/s");
        o.note = format!(
            "{n} documents of {BODY_WORDS} words; engine calls {:.1} s, of which the final refresh / commit + \
             reload {:.1} s; wall time with generating the documents {:.1} s (generating alone {:.1} s)",
            took.as_secs_f64(),
            last.as_secs_f64(),
            wall.elapsed().as_secs_f64(),
            generating.as_secs_f64()
        );
        Ok(o)
    })?;

    let mut hits = Vec::with_capacity(LIMIT);
    meter.run("S2", "first search after that (one word, top 10)", &store, || {
        let rank = queries.one[0];
        let word = vocabulary.word(rank);
        let start = Instant::now();
        engine.top(&[word], LIMIT, &mut hits)?;
        let first = start.elapsed();
        let start = Instant::now();
        engine.top(&[word], LIMIT, &mut hits)?;
        let again = start.elapsed();
        if hits.len() != expected_top(truth.df[rank]) {
            warn(format!("first query {word:?}: {} hits, expected {}", hits.len(), expected_top(truth.df[rank])));
        }
        let mut o = millis(first);
        let describe = engine.describe();
        o.note = format!(
            "{word:?} (in {} documents); the same query again: {:.3} ms{}",
            truth.df[rank],
            ms(again),
            if describe.is_empty() { String::new() } else { format!("; {describe}") }
        );
        Ok(o)
    })?;

    meter.run("S3", "one-word queries, top 10 (with URI and stamp)", &store, || {
        one_word_queries(&mut engine, &vocabulary, &truth, &queries.one, ONE_WORD_RANKS, &mut hits)
    })?;

    // The most frequent words, in a large share of the documents: where
    // skipping blocks whose best score cannot make the top 10 pays most.
    let frequent: Vec<usize> = (0..FREQUENT_PASSES).flat_map(|_| 0..FREQUENT).collect();
    meter.run("S3f", "one-word queries on the 100 most frequent words, top 10", &store, || {
        one_word_queries(&mut engine, &vocabulary, &truth, &frequent, (0.0, (FREQUENT - 1) as f64), &mut hits)
    })?;

    meter.run("S4", "two-word AND queries, top 10 (with URI and stamp)", &store, || {
        let mut lat = Vec::with_capacity(queries.and.len());
        let mut wrong = Vec::new();
        for (i, &(a, b)) in queries.and.iter().enumerate() {
            let words = [vocabulary.word(a), vocabulary.word(b)];
            let start = Instant::now();
            engine.top(&words, LIMIT, &mut hits)?;
            lat.push(start.elapsed());
            if hits.len() != expected_top(truth.pair_counts[i]) {
                wrong.push(format!("{} {}: {} hits", words[0], words[1], hits.len()));
            }
        }
        if !wrong.is_empty() {
            warn(format!(
                "{} of {} AND queries returned a wrong number of hits: {}",
                wrong.len(),
                lat.len(),
                wrong[..wrong.len().min(5)].join(", ")
            ));
        }
        let matching = &truth.pair_counts[..queries.and.len()];
        let mut o = rate(lat.len() as u64, lat.iter().sum(), "queries/s");
        o.note = format!(
            "{} queries, word ranks {}–{}; {} matching documents on average ({} queries with none); {}",
            lat.len(),
            AND_RANKS.0,
            AND_RANKS.1,
            matching.iter().sum::<u64>() / matching.len() as u64,
            matching.iter().filter(|&&c| c == 0).count(),
            latencies(&mut lat)
        );
        Ok(o)
    })?;

    // The hit counts of the same AND queries, untimed: checked against the
    // data here, and between the engines by the parent.
    let mut listed = Vec::with_capacity(queries.and.len());
    let mut wrong = Vec::new();
    for (i, &(a, b)) in queries.and.iter().enumerate() {
        let (wa, wb) = (vocabulary.word(a), vocabulary.word(b));
        let count = engine.count(&[wa, wb])?;
        if count != truth.pair_counts[i] {
            wrong.push(format!("{wa} {wb}: {count}, expected {}", truth.pair_counts[i]));
        }
        listed.push(format!("{wa}+{wb}={count}"));
    }
    println!("COUNTS\tand\t{}", listed.join(","));
    if !wrong.is_empty() {
        warn(format!(
            "{} of {} AND counts differ from the data: {}",
            wrong.len(),
            listed.len(),
            wrong[..wrong.len().min(5)].join(", ")
        ));
    }

    meter.run("S5a", "count a very common word (mean time per count)", &store, || {
        counts(&mut engine, &vocabulary, (0..COMMON).map(|r| (vec![r], truth.df[r])).collect(), "word")
    })?;
    meter.run("S5b", "count two very common words, AND (mean time per count)", &store, || {
        let offset = queries.and.len();
        let pairs =
            queries.common_and.iter().enumerate().map(|(i, &(a, b))| (vec![a, b], truth.pair_counts[offset + i]));
        counts(&mut engine, &vocabulary, pairs.collect(), "pair")
    })?;

    meter.run("S8", "two-word OR queries, top 10 (with URI and stamp)", &store, || {
        let mut lat = Vec::with_capacity(queries.and.len());
        let mut wrong = Vec::new();
        for (i, &(a, b)) in queries.and.iter().enumerate() {
            let words = [vocabulary.word(a), vocabulary.word(b)];
            let start = Instant::now();
            engine.top_any(&words, LIMIT, &mut hits)?;
            lat.push(start.elapsed());
            let either = truth.df[a] + truth.df[b] - truth.pair_counts[i];
            if hits.len() != expected_top(either) {
                wrong.push(format!("{} {}: {} hits", words[0], words[1], hits.len()));
            }
        }
        if !wrong.is_empty() {
            warn(format!(
                "{} of {} OR queries returned a wrong number of hits: {}",
                wrong.len(),
                lat.len(),
                wrong[..wrong.len().min(5)].join(", ")
            ));
        }
        let mut o = rate(lat.len() as u64, lat.iter().sum(), "queries/s");
        o.note = format!(
            "{} queries, the word pairs of S4 (at least one of the two words; pushdex: Query::Any with \
             min_should_match 1, tantivy: BooleanQuery of two Should TermQuerys); {}",
            lat.len(),
            latencies(&mut lat)
        );
        Ok(o)
    })?;

    meter.run("S9", "two-word phrase queries, top 10 (with URI and stamp)", &store, || {
        let mut lat = Vec::with_capacity(queries.phrase.len());
        let mut wrong = Vec::new();
        for &(a, b) in &queries.phrase {
            let words = [vocabulary.word(a), vocabulary.word(b)];
            let start = Instant::now();
            engine.top_phrase(&words, LIMIT, &mut hits)?;
            lat.push(start.elapsed());
            if hits.len() != expected_top(truth.phrase_count((a, b))) {
                wrong.push(format!("\"{} {}\": {} hits", words[0], words[1], hits.len()));
            }
        }
        if !wrong.is_empty() {
            warn(format!(
                "{} of {} phrase queries returned a wrong number of hits: {}",
                wrong.len(),
                lat.len(),
                wrong[..wrong.len().min(5)].join(", ")
            ));
        }
        let counts: Vec<u64> = queries.phrase.iter().map(|&p| truth.phrase_count(p)).collect();
        let mut o = rate(lat.len() as u64, lat.iter().sum(), "queries/s");
        o.note = format!(
            "{} queries, word ranks {}–{} in order, adjacent (pushdex: Query::Phrase slop 0, tantivy: PhraseQuery); \
             {} matching documents on average ({} queries with none); {}",
            lat.len(),
            PHRASE_RANKS.0 - 1.0,
            PHRASE_RANKS.1 - 1.0,
            counts.iter().sum::<u64>() / counts.len().max(1) as u64,
            counts.iter().filter(|&&c| c == 0).count(),
            latencies(&mut lat)
        );
        Ok(o)
    })?;

    // The phrase counts, untimed, checked against the data.
    let mut wrong = Vec::new();
    for &(a, b) in &queries.phrase {
        let (wa, wb) = (vocabulary.word(a), vocabulary.word(b));
        let count = engine.count_phrase(&[wa, wb])?;
        if count != truth.phrase_count((a, b)) {
            wrong.push(format!("\"{wa} {wb}\": {count}, expected {}", truth.phrase_count((a, b))));
        }
    }
    if !wrong.is_empty() {
        warn(format!(
            "{} of {} phrase counts differ from the data: {}",
            wrong.len(),
            queries.phrase.len(),
            wrong[..wrong.len().min(5)].join(", ")
        ));
    }

    meter.run("S6", "make ONE new document searchable (add + refresh / commit + reload)", &store, || {
        let mut times = Vec::new();
        let mut lost = 0;
        for i in 0..FRESH_DOCS {
            let doc = fresh_text_doc(i, &vocabulary);
            let uri = doc.uri.clone();
            let start = Instant::now();
            engine.add_one(doc)?;
            engine.make_searchable()?;
            times.push(start.elapsed());
            engine.top(&[&fresh_word(i)], LIMIT, &mut hits)?;
            if hits.len() != 1 || hits[0].0 != uri {
                lost += 1;
            }
        }
        if lost > 0 {
            warn(format!("{lost} of {FRESH_DOCS} new documents were not found by their own word after being made searchable"));
        }
        times.sort();
        let mut o = millis(times[times.len() / 2]);
        o.note = format!(
            "median of {FRESH_DOCS}, range {:.1}–{:.1} ms, into the {n}-document index; each found by a word of its own \
             afterwards",
            ms(times[0]),
            ms(times[times.len() - 1])
        );
        Ok(o)
    })?;
    engine.close()?;

    emit(&Row {
        key: "S7".into(),
        label: "whole run: wall time; peak RSS; final size of the index; bytes written".into(),
        value: started.elapsed().as_secs_f64(),
        unit: "s".into(),
        higher_is_better: false,
        rss: meter.peak,
        anon: meter.anon,
        disk: disk_usage(&store),
        written: write_bytes().saturating_sub(written_at_start),
        note: format!("of which generating the expected answers {:.1} s", generating.as_secs_f64()),
    });
    Ok(())
}

/// Counts each query `COUNT_PASSES` times: the mean time per count, checked
/// against the expected counts.
fn counts<E: SearchEngine>(
    engine: &mut E,
    vocabulary: &Vocabulary,
    queries: Vec<(Vec<usize>, u64)>,
    what: &str,
) -> Res<Outcome> {
    let mut lat = Vec::new();
    let mut wrong = 0;
    for _ in 0..COUNT_PASSES {
        for (ranks, expected) in &queries {
            let words: Vec<&str> = ranks.iter().map(|&r| vocabulary.word(r)).collect();
            let start = Instant::now();
            let count = engine.count(&words)?;
            lat.push(start.elapsed());
            wrong += usize::from(count != *expected);
        }
    }
    if wrong > 0 {
        warn(format!("{wrong} of {} counts of common {what}s differ from the data", lat.len()));
    }
    let total: Duration = lat.iter().sum();
    let mut o = millis(total / lat.len() as u32);
    let matching: Vec<u64> = queries.iter().map(|(_, c)| *c).collect();
    o.note = format!(
        "{} {what}s (in {}–{} documents), {COUNT_PASSES} counts each; {}",
        queries.len(),
        matching.iter().min().unwrap_or(&0),
        matching.iter().max().unwrap_or(&0),
        latencies(&mut lat)
    );
    Ok(o)
}
