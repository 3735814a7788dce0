//! Search: refresh visibility, ranking, limits, and the query forms.

use pushdex::{Document, Error, Index, Options, Query, Update};

fn text(t: &str) -> Query {
    Query::Text { field: None, text: t.to_string() }
}

fn uris(hits: &[pushdex::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.uri.as_str()).collect()
}

#[test]
fn search_sees_the_last_refresh_and_status_sees_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index.add(Document::new("s://a").with_stamp("1").with_text("body", "Quarterly report for March")).unwrap();
    assert_eq!(index.search_count(&text("report")).unwrap(), 0, "not searchable before refresh");
    index.refresh().unwrap();
    let hits = index.search(&text("quarterly REPORT"), 10).unwrap();
    assert_eq!(uris(&hits), ["s://a"]);
    assert_eq!(hits[0].stamp, "1");
    assert!(hits[0].score > 0.0);
    // Words in any order, case folded; all of them required.
    assert_eq!(index.search_count(&text("report quarterly")).unwrap(), 1);
    assert_eq!(index.search_count(&text("report april")).unwrap(), 0);

    // Changes after the refresh are not seen until the next one.
    index.update("s://a", Update::new().stamp("2").text("body", "annual summary")).unwrap();
    index.add(Document::new("s://b").with_text("body", "another report")).unwrap();
    assert_eq!(uris(&index.search(&text("report"), 10).unwrap()), ["s://a"]);
    assert_eq!(index.search(&text("report"), 10).unwrap()[0].stamp, "1");
    assert_eq!(index.status("s://a").unwrap().stamp, "2");
    index.refresh().unwrap();
    assert_eq!(uris(&index.search(&text("report"), 10).unwrap()), ["s://b"]);
    assert_eq!(uris(&index.search(&text("annual"), 10).unwrap()), ["s://a"]);

    index.delete("s://b").unwrap();
    assert_eq!(index.search_count(&text("report")).unwrap(), 1);
    index.refresh().unwrap();
    assert_eq!(index.search_count(&text("report")).unwrap(), 0);

    // After a reopen, search sees what was committed.
    index.close().unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(uris(&index.search(&text("summary"), 10).unwrap()), ["s://a"]);
}

#[test]
fn ranking_follows_bm25() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    // Equal lengths: more occurrences rank higher.
    index.add(Document::new("s://one").with_text("body", "apple pear plum fig")).unwrap();
    index.add(Document::new("s://two").with_text("body", "apple apple plum fig")).unwrap();
    index.add(Document::new("s://three").with_text("body", "apple apple apple fig")).unwrap();
    // One occurrence: the shorter part ranks higher.
    index.add(Document::new("s://short").with_text("body", "kiwi fig")).unwrap();
    index.add(Document::new("s://long").with_text("body", "kiwi fig fig fig fig fig fig fig")).unwrap();
    // No text part, or the word only in a binary part: not found.
    index.add(Document::new("s://bin").with_part("body", b"apple kiwi".to_vec())).unwrap();
    index.refresh().unwrap();
    assert_eq!(uris(&index.search(&text("apple"), 10).unwrap()), ["s://three", "s://two", "s://one"]);
    assert_eq!(uris(&index.search(&text("kiwi"), 10).unwrap()), ["s://short", "s://long"]);
    // Score-0 filters come in URI byte order.
    let all = index.search(&Query::All, 10).unwrap();
    assert_eq!(uris(&all), ["s://bin", "s://long", "s://one", "s://short", "s://three", "s://two"]);
    assert!(all.iter().all(|h| h.score == 0.0));
    // Limits.
    assert_eq!(uris(&index.search(&text("apple"), 1).unwrap()), ["s://three"]);
    for limit in [0, 10_001] {
        assert!(matches!(index.search(&Query::All, limit), Err(Error::InvalidInput { .. })), "limit {limit}");
    }
    assert_eq!(index.search(&Query::All, 10_000).unwrap().len(), 6);
}

#[test]
fn fields_metas_folders_and_boolean_algebra() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), Options::default().memtable_bytes(4096)).unwrap();
    for i in 0..300 {
        let doc = Document::new(format!("s://share/{}/{}/doc{i:03}", ["x", "y"][i % 2], i % 3))
            .with_stamp(format!("v{i}"))
            .with_meta("author", ["ann", "bob", "Ann"][i % 3])
            .with_meta("tag", "all")
            .with_text("title", if i % 5 == 0 { "Budget plan" } else { "meeting notes" })
            .with_text("body", format!("number {i} of the series"));
        index.add(doc).unwrap();
    }
    // Direct children of s://share/x/ (no folder below): none.
    index.add(Document::new("s://share/x/top").with_text("body", "budget")).unwrap();
    index.refresh().unwrap();
    let count = |q: &str| index.search_count(&Query::parse(q).unwrap()).unwrap();
    assert_eq!(count("*"), 301);
    assert_eq!(count("budget"), 61);
    assert_eq!(count("title:budget"), 60);
    assert_eq!(count("body:budget"), 1);
    assert_eq!(count("@author:ann"), 100);
    assert_eq!(count("@author:Ann"), 100, "metas match exactly, case included");
    assert_eq!(count("@author:ann OR @author:bob"), 200);
    assert_eq!(count("NOT @author:ann"), 201);
    assert_eq!(count("under:s://share/x"), 151);
    assert_eq!(count("under:s://share/x/0"), 50);
    assert_eq!(count("prefix:s://share/y/1/doc0"), 17);
    assert_eq!(count("budget under:s://share/y"), 30);
    assert_eq!(count("title:budget AND NOT @author:bob"), 40);
    let non_recursive = Query::Under { root: "s://share/x".into(), recursive: false };
    assert_eq!(index.search_count(&non_recursive).unwrap(), 1);
    assert_eq!(index.search_count(&Query::And(vec![])).unwrap(), 301);
    assert_eq!(index.search_count(&Query::Or(vec![])).unwrap(), 0);
    // Deleting a folder takes its documents out at the next refresh; the
    // segments, merged or not, answer the same.
    index.delete_root_path("s://share/y", true).unwrap();
    index.refresh().unwrap();
    assert_eq!(count("*"), 151);
    index.compact().unwrap();
    index.refresh().unwrap();
    assert_eq!(count("*"), 151);
    assert_eq!(count("budget"), 31);
    let hits = index.search(&Query::parse("budget").unwrap(), 5).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.windows(2).all(|w| w[0].score > w[1].score || (w[0].score == w[1].score && w[0].uri < w[1].uri)));
}

/// A query built in code, nested far deeper than any parsed one: refused
/// with `InvalidInput`, not a stack overflow; the deepest parsed query is
/// still searched.
#[test]
fn a_query_nested_without_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open(dir.path()).unwrap();
    index.add(pushdex::Document::new("a").with_text("body", "word")).unwrap();
    index.refresh().unwrap();
    let mut deep = text("word");
    for _ in 0..100_000 {
        deep = Query::Not(Box::new(deep));
    }
    assert!(matches!(index.search(&deep, 10), Err(pushdex::Error::InvalidInput { .. })));
    assert!(matches!(index.search_count(&deep), Err(pushdex::Error::InvalidInput { .. })));
    // Dropping it recursively would overflow the stack too: unwind it.
    while let Query::Not(inner) = deep {
        deep = *inner;
    }
    let parsed = Query::parse(&format!("{}word{}", "(word OR ".repeat(256), ")".repeat(256))).unwrap();
    assert_eq!(index.search_count(&parsed).unwrap(), 1);
    let nots = Query::parse(&format!("{}word", "NOT ".repeat(256))).unwrap();
    assert_eq!(index.search_count(&nots).unwrap(), 1);
    // The bound is exact: MAX_QUERY_DEPTH levels of operators pass, one
    // more is refused, whichever operator it is.
    let nest = |levels: usize, wrap: fn(Query) -> Query| (0..levels).fold(text("word"), |q, _| wrap(q));
    for wrap in [|q| Query::Not(Box::new(q)), |q| Query::And(vec![q]), |q| Query::Or(vec![Query::All, q])] {
        let deepest = nest(pushdex::MAX_QUERY_DEPTH, wrap);
        assert!(index.search_count(&deepest).is_ok());
        assert!(index.search(&deepest, pushdex::MAX_SEARCH_LIMIT).is_ok());
        let deeper = nest(pushdex::MAX_QUERY_DEPTH + 1, wrap);
        assert!(matches!(index.search_count(&deeper), Err(pushdex::Error::InvalidInput { .. })));
        assert!(matches!(index.search(&deeper, 1), Err(pushdex::Error::InvalidInput { .. })));
    }
}

/// A query word that analyses to nothing is refused, naming it, wherever it
/// sits in the query (it used to match every document); `text_parts` names
/// the parts some searchable document has.
#[test]
fn a_query_without_words_is_refused_and_text_parts_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open(dir.path()).unwrap();
    assert!(index.text_parts().is_empty());
    index.add(pushdex::Document::new("a").with_text("body", "word").with_text("title", "A title")).unwrap();
    index.add(pushdex::Document::new("b").with_text("summary", "words").with_part("raw", b"bytes".to_vec())).unwrap();
    index.refresh().unwrap();
    assert_eq!(index.text_parts(), ["body", "summary", "title"]);
    for nothing in ["👍", "...", "", " - ", "«»"] {
        for query in [
            text(nothing),
            Query::Or(vec![text("word"), text(nothing)]),
            Query::Not(Box::new(text(nothing))),
            Query::parse(&format!("word OR \"{nothing}\"")).unwrap_or_else(|_| text(nothing)),
        ] {
            match index.search(&query, 10) {
                Err(pushdex::Error::InvalidInput { reason }) => {
                    assert!(reason.contains(&format!("{nothing:?}")), "{reason}")
                }
                other => panic!("{query:?}: {other:?}"),
            }
            assert!(matches!(index.search_count(&query), Err(pushdex::Error::InvalidInput { .. })));
        }
    }
    // A word among symbols is a word (found in `word` and, stemmed, in
    // `words`).
    assert_eq!(index.search_count(&text("👍 word !")).unwrap(), 2);
    // A part whose documents are all deleted is no longer listed.
    index.delete("b").unwrap();
    index.refresh().unwrap();
    assert_eq!(index.text_parts(), ["body", "title"]);
    index.close().unwrap();
}

/// Ranked OR: `parse_natural` finds the documents holding most of the
/// question's words, those holding all of them first; `parse` needs every
/// word; `+`/`-` require and exclude.
#[test]
fn natural_queries_rank_documents_holding_most_words() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open(dir.path()).unwrap();
    let docs = [
        ("d1", "zstd compression level tuning"),
        ("d2", "the compression level of gzip"),
        ("d3", "zstd alone"),
        ("d4", "nothing relevant"),
        ("d5", "level zstd notes"),
    ];
    for (uri, body) in docs {
        index.add(Document::new(uri).with_text("body", body)).unwrap();
    }
    index.refresh().unwrap();
    let uris = |q: &Query| -> Vec<String> { index.search(q, 10).unwrap().into_iter().map(|h| h.uri).collect() };
    let natural = Query::parse_natural("zstd compression level").unwrap();
    let found = uris(&natural);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0], "d1", "all three words rank first: {found:?}");
    assert!(found.contains(&"d2".to_string()) && found.contains(&"d5".to_string()), "{found:?}");
    assert_eq!(index.search_count(&natural).unwrap(), 3);
    assert_eq!(uris(&Query::parse("zstd compression level").unwrap()), ["d1"]);
    assert_eq!(uris(&Query::parse_natural("zstd compression level -tuning").unwrap()).len(), 2);
    assert_eq!(uris(&Query::parse_natural("+gzip compression level").unwrap()), ["d2"]);
    // min_should_match 0: every document, those with the words first.
    let all = Query::Any { field: None, text: "zstd".into(), min_should_match: 0 };
    let ranked = uris(&all);
    assert_eq!(ranked.len(), 5);
    assert!(ranked[..3].iter().all(|u| ["d1", "d3", "d5"].contains(&u.as_str())), "{ranked:?}");
    assert_eq!(&ranked[3..], ["d2", "d4"]);
}

/// `word*` finds the words a prefix starts, `word~N` the words within N
/// edits; both score 0 (the other words rank), in a part or in all.
#[test]
fn word_prefixes_and_fuzzy_words() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open(dir.path()).unwrap();
    index.add(Document::new("a").with_text("body", "the quarterly report").with_text("title", "Colour")).unwrap();
    index.add(Document::new("b").with_text("body", "reporting lines")).unwrap();
    index.add(Document::new("c").with_text("body", "a repo of color")).unwrap();
    index.refresh().unwrap();
    let count = |q: &str| index.search_count(&Query::parse(q).unwrap()).unwrap();
    assert_eq!(count("rep*"), 3);
    assert_eq!(count("REPORT*"), 2);
    assert_eq!(count("body:repo*"), 3);
    assert_eq!(count("title:rep*"), 0);
    assert_eq!(count("color~"), 2, "colour is one insertion away");
    assert_eq!(count("color~0"), 1);
    assert_eq!(count("title:color~1"), 1);
    assert_eq!(count("qaurterly~2"), 1, "a swap is two edits");
    assert_eq!(count("qaurterly~1"), 0);
    let hits = index.search(&Query::parse_natural("rep* lines").unwrap(), 10).unwrap();
    assert_eq!(hits[0].uri, "b", "the word ranks within the prefix's matches: {hits:?}");
    for bad in ["color~3", "\"rep\"*", "👍*"] {
        if let Ok(q) = Query::parse(bad) {
            assert!(matches!(index.search_count(&q), Err(Error::InvalidInput { .. })), "{bad}: {q:?}");
        }
    }
    let two_words = Query::WordPrefix { field: None, prefix: "quarterly rep".into() };
    assert!(matches!(index.search(&two_words, 10), Err(Error::InvalidInput { .. })));
}

/// `search_with`: pages of the same order, a total, the result window, and
/// the options not served yet refused rather than ignored.
#[test]
fn search_with_pages_counts_and_refuses_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open(dir.path()).unwrap();
    index
        .add_all((0..25).map(|i| Document::new(format!("d/{i:02}")).with_text("body", "word ".repeat(1 + i % 5))))
        .unwrap();
    index.refresh().unwrap();
    let q = text("word");
    let all = index.search(&q, 100).unwrap();
    let mut paged = Vec::new();
    for page in 0..5 {
        let options = pushdex::SearchOptions { offset: page * 6, limit: 6, count: true, ..Default::default() };
        let found = index.search_with(&q, &options).unwrap();
        assert_eq!(found.total, Some(25));
        assert!(found.facets.is_empty() && found.hits.iter().all(|h| h.snippet.is_none()));
        // The title rule: no `title` meta or part, so the body's first line.
        assert!(found.hits.iter().all(|h| h.title.as_deref().is_some_and(|t| t.starts_with("word"))));
        paged.extend(found.hits.into_iter().map(|h| pushdex::Hit { title: None, ..h }));
    }
    assert_eq!(paged, all);
    let without_count = index.search_with(&q, &pushdex::SearchOptions::default()).unwrap();
    assert_eq!((without_count.total, without_count.hits.len()), (None, 10));
    let refused =
        |options: pushdex::SearchOptions| matches!(index.search_with(&q, &options), Err(Error::InvalidInput { .. }));
    assert!(refused(pushdex::SearchOptions { limit: 0, ..Default::default() }));
    assert!(refused(pushdex::SearchOptions { offset: 9_991, limit: 10, ..Default::default() }));
    assert!(!refused(pushdex::SearchOptions { offset: 9_990, limit: 10, ..Default::default() }));
    assert!(refused(pushdex::SearchOptions { offset: usize::MAX, ..Default::default() }));
    let by_meta = pushdex::Sort::Meta { name: "".into(), descending: false };
    assert!(refused(pushdex::SearchOptions { sort: by_meta, ..Default::default() }));
    assert!(refused(pushdex::SearchOptions { snippet: Some("".into()), ..Default::default() }));
    assert!(refused(pushdex::SearchOptions { facets: vec!["".into()], ..Default::default() }));
}

/// Facets count every hit (not only the page) by meta value, once per
/// distinct value of a hit, most frequent first, ties by value.
#[test]
fn facets_count_every_hit_by_meta_value() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open(dir.path()).unwrap();
    let doc = |uri: &str, author: &[&str], text: &str| {
        author.iter().fold(Document::new(uri).with_text("body", text), |d, a| d.with_meta("author", *a))
    };
    index.add(doc("a", &["ann", "bob"], "report")).unwrap();
    index.add(doc("b", &["bob", "bob"], "report")).unwrap();
    index.add(doc("c", &["cy"], "report")).unwrap();
    index.refresh().unwrap();
    index.add(doc("d", &["ann"], "report")).unwrap();
    index.add(doc("e", &["dee"], "other")).unwrap();
    index.refresh().unwrap();
    index.delete("c").unwrap();
    index.refresh().unwrap();
    let options = |facet_limit| pushdex::SearchOptions {
        limit: 1,
        facets: vec!["author".into(), "missing".into()],
        facet_limit,
        ..Default::default()
    };
    let found = index.search_with(&text("report"), &options(10)).unwrap();
    assert_eq!(found.hits.len(), 1);
    let pairs = |v: &[(&str, u64)]| v.iter().map(|(s, n)| (s.to_string(), *n)).collect::<Vec<_>>();
    assert_eq!(found.facets[0], pushdex::Facet { name: "author".into(), values: pairs(&[("ann", 2), ("bob", 2)]) });
    assert_eq!(found.facets[1], pushdex::Facet { name: "missing".into(), values: vec![] });
    let top = index.search_with(&text("report"), &options(1)).unwrap();
    assert_eq!(top.facets[0].values, pairs(&[("ann", 2)]));
}

/// The analyzer is chosen when an index is created and kept for its life:
/// English (the default) folds, stems and splits identifiers; Exact does
/// none of it; reopening with other options changes nothing.
#[test]
fn the_analyzer_is_recorded_at_creation() {
    use pushdex::{Analyzer, Options};
    let docs = || {
        [
            pushdex::Document::new("a").with_text("body", "How to rotate SSH keys"),
            pushdex::Document::new("b").with_text("body", "call os.path.join and std::fs::read_to_string"),
            pushdex::Document::new("c").with_text("body", "Un café à Paris, naïvely"),
            pushdex::Document::new("d").with_text("body", "the key of snake_case_names"),
        ]
    };
    let count = |index: &pushdex::Index, q: &str| index.search_count(&Query::parse(q).unwrap()).unwrap();
    for created in [Analyzer::English, Analyzer::Exact] {
        let dir = tempfile::tempdir().unwrap();
        let options =
            if created == Analyzer::English { Options::default() } else { Options::default().analyzer(created) };
        let index = pushdex::Index::open_with(dir.path(), options).unwrap();
        // Recorded before any document: reopening with the other analyzer keeps it.
        index.close().unwrap();
        let other = if created == Analyzer::English { Analyzer::Exact } else { Analyzer::English };
        let index = pushdex::Index::open_with(dir.path(), Options::default().analyzer(other)).unwrap();
        assert_eq!(index.analyzer(), created);
        index.add_all(docs()).unwrap();
        index.refresh().unwrap();
        let english = created == Analyzer::English;
        // Stemming: `key` and `keys`.
        assert_eq!(count(&index, "key"), if english { 2 } else { 1 }, "{created:?}");
        assert_eq!(count(&index, "keys"), if english { 2 } else { 1 });
        // Folding.
        assert_eq!(count(&index, "cafe"), u64::from(english));
        assert_eq!(count(&index, "café"), 1);
        assert_eq!(count(&index, "naively"), u64::from(english));
        assert_eq!(count(&index, "NAÏVELY"), 1);
        // Identifiers: whole, and (English) as their pieces.
        assert_eq!(count(&index, "os.path.join"), 1);
        assert_eq!(count(&index, "join"), u64::from(english));
        assert_eq!(count(&index, "snake"), u64::from(english));
        // Exact splits `a::b` at the colons (UAX #29), so its words are
        // there; English indexes `read_to_string` as a piece.
        assert_eq!(count(&index, "read_to_string"), 1);
        assert_eq!(count(&index, "std::fs::read_to_string"), 1, "{created:?}");
        assert_eq!(count(&index, "string"), u64::from(english));
        assert_eq!(count(&index, "fs"), 1);
        // Prefixes and fuzzy words are analysed like words.
        assert_eq!(count(&index, "rotat*"), 1);
        assert_eq!(count(&index, "KEYS*"), if english { 2 } else { 1 });
        index.close().unwrap();
        let index = pushdex::Index::open(dir.path()).unwrap();
        assert_eq!(index.analyzer(), created, "kept across reopen");
        assert_eq!(count(&index, "keys"), if english { 2 } else { 1 });
        index.close().unwrap();
    }
}

/// `Sort::Meta` orders hits by a meta's values (numbers as numbers, hits
/// without the meta last, ties by URI), pages like the score order, and
/// keeps scores; titles and snippets come from each hit's body.
#[test]
fn sort_by_meta_titles_and_snippets() {
    use pushdex::{SearchOptions, Sort};
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open_with(dir.path(), pushdex::Options::default().memtable_bytes(4096)).unwrap();
    let sizes = ["9", "10", "100", "2", "x", "10"];
    for (i, size) in sizes.iter().enumerate() {
        let mut doc = Document::new(format!("d/{i}")).with_text("body", format!("report number {i} about keys"));
        if *size != "x" {
            doc = doc.with_meta("size", *size);
        }
        if i == 3 {
            doc = doc.with_meta("size", "1000").with_meta("title", "Two sizes");
        }
        index.add(doc).unwrap();
        // Several segments.
        if i % 2 == 1 {
            index.refresh().unwrap();
        }
    }
    index.add(Document::new("e").with_text("body", "nothing to see")).unwrap();
    index.refresh().unwrap();
    let q = Query::parse("report").unwrap();
    let sorted = |descending: bool, offset: usize, limit: usize| {
        let sort = Sort::Meta { name: "size".into(), descending };
        let found = index.search_with(&q, &SearchOptions { sort, offset, limit, ..Default::default() }).unwrap();
        found.hits.iter().map(|h| h.uri.clone()).collect::<Vec<_>>()
    };
    // Ascending: 2 (d/3's smallest), 9, 10, 10 (ties by URI), 100; d/4 has none.
    assert_eq!(sorted(false, 0, 10), ["d/3", "d/0", "d/1", "d/5", "d/2", "d/4"]);
    // Descending: 1000 (d/3's largest), 100, 10, 10, 9; none last.
    assert_eq!(sorted(true, 0, 10), ["d/3", "d/2", "d/1", "d/5", "d/0", "d/4"]);
    // Paging cuts the same order, through a run of ties.
    assert_eq!(sorted(false, 2, 2), ["d/1", "d/5"]);
    assert_eq!(sorted(false, 3, 1), ["d/5"]);
    // Scores are kept; titles and snippets.
    let options = SearchOptions {
        sort: Sort::Meta { name: "size".into(), descending: false },
        snippet: Some("body".into()),
        limit: 2,
        ..Default::default()
    };
    let found = index.search_with(&Query::parse_natural("keys report").unwrap(), &options).unwrap();
    let by_score = index.search(&Query::parse_natural("keys report").unwrap(), 10).unwrap();
    let first = &found.hits[0];
    assert_eq!(first.uri, "d/3");
    assert_eq!(first.score, by_score.iter().find(|h| h.uri == "d/3").unwrap().score);
    assert_eq!(first.title.as_deref(), Some("Two sizes"));
    assert_eq!(first.snippet.as_deref(), Some("<b>report</b> number 3 about <b>keys</b>"));
    assert_eq!(found.hits[1].title.as_deref(), Some("report number 0 about keys"));
    // A part the hits lack: no snippet.
    let options = SearchOptions { snippet: Some("summary".into()), ..Default::default() };
    assert!(index.search_with(&q, &options).unwrap().hits.iter().all(|h| h.snippet.is_none()));
    // A meta no hit has: URI order.
    let sort = Sort::Meta { name: "absent".into(), descending: true };
    let found = index.search_with(&q, &SearchOptions { sort, ..Default::default() }).unwrap();
    let uris: Vec<&str> = found.hits.iter().map(|h| h.uri.as_str()).collect();
    assert_eq!(uris, ["d/0", "d/1", "d/2", "d/3", "d/4", "d/5"]);
    index.close().unwrap();
}

/// Folder facets: the hits counted by the folder directly under a root
/// that holds them, fullest first, across segments and deletions.
#[test]
fn folder_facets_count_hits_by_child_folder() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open_with(dir.path(), pushdex::Options::default().memtable_bytes(4096)).unwrap();
    let uris = [
        "s://share/a/1",
        "s://share/a/2",
        "s://share/a/deep/3",
        "s://share/b/4",
        "s://share/top",
        "s://share/c/5",
        "s://share2/x/6",
        "s://other/a/7",
    ];
    for (i, uri) in uris.iter().enumerate() {
        let word = if i == 5 { "nothing" } else { "report" };
        index.add(Document::new(*uri).with_text("body", word)).unwrap();
        if i % 3 == 2 {
            index.refresh().unwrap();
        }
    }
    index.refresh().unwrap();
    let q = Query::parse("report").unwrap();
    let (folders, hits) = index.folder_facets(&q, "s://share", 10).unwrap();
    assert_eq!(folders, [("s://share/a/".to_string(), 3), ("s://share/b/".to_string(), 1)]);
    assert_eq!(hits, 7);
    // A root with a slash, a limit, the whole index.
    assert_eq!(index.folder_facets(&q, "s://share/", 1).unwrap().0, [("s://share/a/".to_string(), 3)]);
    let (top, _) = index.folder_facets(&Query::All, "", 10).unwrap();
    assert_eq!(top, [("s:/".to_string(), 8)]);
    // Deletions and updates count as search sees them.
    index.delete("s://share/a/1").unwrap();
    index.add(Document::new("s://share/b/4").with_text("body", "nothing")).unwrap();
    index.refresh().unwrap();
    assert_eq!(index.folder_facets(&q, "s://share", 10).unwrap().0, [("s://share/a/".to_string(), 2)]);
    index.close().unwrap();
}
