//! What a hit shows a person: its title and a snippet of one text part with
//! the query's words highlighted. Read from the hit's body as it was when it
//! became Searchable, after the hits are chosen (only the page's hits are
//! read).
//!
//! **Title** (API.md: "a `title` meta, else the document's own title
//! rule"): the first non-blank value of the meta `title`; else the first
//! line holding a letter or digit of the text part `title`; else the first
//! such line of the document's first text part that has one (so a code
//! file's `{` or `"""` line is skipped). Whitespace runs become one space, and a
//! title longer than [`MAX_TITLE_CHARS`] is cut at a word boundary with "…".
//! A document without such text has no title.
//!
//! **Snippet** (API.md: "a window of at most 30 words of the named part
//! holding the most matched words (first such window), with each matched
//! word wrapped in the highlight strings, '…' where it cuts the part"): the
//! part is analysed with the index's analyzer, and a word is *matched* when
//! one of its terms (an identifier's pieces included) is a term the query
//! looks for in that part — the words of its `Text`, `Any` and `Phrase`
//! queries, the words starting with a `WordPrefix`'s prefix or within a
//! `Fuzzy`'s distance — outside any `NOT`, with a field that is the part or
//! none. The text between the window's words is kept (whitespace runs as
//! one space, a run longer than [`MAX_GAP_BYTES`] as " … "); the highlight
//! strings are inserted as given (a web page escapes the text first, then
//! turns the escaped markers back into tags). A hit without the part, or
//! whose part has no word, has no snippet.

use fst::Automaton;

use crate::document::{Body, BodyItem};
use crate::error::{Error, Result};
use crate::search::query::one_word;
use crate::search::Query;
use crate::text::{analyze, query_terms, Analyzer};

/// The most words in a snippet.
pub const SNIPPET_WORDS: usize = 30;
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 120;
/// The longest text kept between two words of a snippet.
const MAX_GAP_BYTES: usize = 48;

/// The title of a document from its encoded body (see the module docs).
pub(crate) fn title(body: &[u8]) -> Option<String> {
    let line = |text: &str| text.lines().find(|l| l.chars().any(char::is_alphanumeric)).map(str::to_string);
    let mut meta: Option<String> = None;
    let mut title_part: Option<String> = None;
    let mut first_line: Option<String> = None;
    let _ = Body::visit_encoded(body, &mut |item| match item {
        BodyItem::Meta("title", value) if meta.is_none() && !value.trim().is_empty() => meta = Some(value.to_string()),
        BodyItem::Text(name, text) => {
            if name == "title" && title_part.is_none() {
                title_part = line(text);
            }
            if first_line.is_none() {
                first_line = line(text);
            }
        }
        _ => {}
    });
    let raw = meta.or(title_part).or(first_line)?;
    Some(shorten_title(&collapse(&raw)))
}

/// Whitespace runs as one space, none at either end.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `title` cut to [`MAX_TITLE_CHARS`] at a word boundary, with "…".
fn shorten_title(title: &str) -> String {
    if title.chars().count() <= MAX_TITLE_CHARS {
        return title.to_string();
    }
    let end = title.char_indices().nth(MAX_TITLE_CHARS).map_or(title.len(), |(at, _)| at);
    let cut = title[..end].rfind(' ').filter(|&at| at > end / 2).unwrap_or(end);
    format!("{}…", title[..cut].trim_end())
}

/// The text of part `name` in an encoded body.
fn part_text(body: &[u8], name: &str) -> Option<String> {
    let mut found = None;
    let _ = Body::visit_encoded(body, &mut |item| {
        if let BodyItem::Text(part, text) = item {
            if part == name && found.is_none() {
                found = Some(text.to_string());
            }
        }
    });
    found
}

/// How one query word recognises the terms of a text.
enum Matcher {
    Term(String),
    Prefix(String),
    Fuzzy(fst::automaton::Levenshtein),
}

impl Matcher {
    fn matches(&self, term: &str) -> bool {
        match self {
            Matcher::Term(word) => word == term,
            Matcher::Prefix(prefix) => term.starts_with(prefix.as_str()),
            Matcher::Fuzzy(automaton) => {
                let mut state = automaton.start();
                for &byte in term.as_bytes() {
                    if !automaton.can_match(&state) {
                        return false;
                    }
                    state = automaton.accept(&state, byte);
                }
                automaton.is_match(&state)
            }
        }
    }
}

/// Cuts snippets of one text part for the hits of one query.
pub(crate) struct Highlighter {
    part: String,
    analyzer: Analyzer,
    matchers: Vec<Matcher>,
    open: String,
    close: String,
}

impl Highlighter {
    /// For the snippets of part `part` of `query`'s hits, analysed with
    /// `analyzer`, matched words between `highlight`'s two strings.
    pub fn new(query: &Query, part: &str, analyzer: Analyzer, highlight: &(String, String)) -> Result<Highlighter> {
        let mut matchers = Vec::new();
        collect(query, part, analyzer, &mut matchers)?;
        Ok(Highlighter {
            part: part.to_string(),
            analyzer,
            matchers,
            open: highlight.0.clone(),
            close: highlight.1.clone(),
        })
    }

    /// The snippet of an encoded body's part (see the module docs).
    pub fn snippet(&self, body: &[u8]) -> Option<String> {
        self.cut(&part_text(body, &self.part)?)
    }

    /// The snippet of `text`.
    fn cut(&self, text: &str) -> Option<String> {
        // Per position: the source word's span, and whether it matched.
        let mut words: Vec<(usize, usize, bool)> = Vec::new();
        analyze(self.analyzer, text, &mut |token| {
            let matched = self.matchers.iter().any(|m| m.matches(token.term));
            match words.get_mut(token.position as usize) {
                Some(word) => word.2 |= matched,
                None => words.push((token.span.0, token.span.1, matched)),
            }
        });
        if words.is_empty() {
            return None;
        }
        let (start, end) = best_window(&words, SNIPPET_WORDS);
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        } else {
            // What sticks to the first word: `(note`, `"quoted`.
            let before = &text[..words[0].0];
            let stuck = &before[before.rfind(char::is_whitespace).map_or(0, |at| at + 1)..];
            if stuck.len() <= MAX_GAP_BYTES {
                out.push_str(stuck);
            }
        }
        for (i, &(from, to, matched)) in words[start..end].iter().enumerate() {
            if i > 0 {
                push_gap(&mut out, &text[words[start + i - 1].1..from]);
            }
            if matched {
                out.push_str(&self.open);
                out.push_str(&text[from..to]);
                out.push_str(&self.close);
            } else {
                out.push_str(&text[from..to]);
            }
        }
        if end < words.len() {
            out.push('…');
        } else {
            // What sticks to the last word: `end.`, `f(x)`.
            let after = &text[words[end - 1].1..];
            let stuck = &after[..after.find(char::is_whitespace).unwrap_or(after.len())];
            if stuck.len() <= MAX_GAP_BYTES {
                out.push_str(stuck);
            }
        }
        Some(out)
    }
}

/// The first window of at most `size` words holding the most matched words.
fn best_window(words: &[(usize, usize, bool)], size: usize) -> (usize, usize) {
    let size = size.min(words.len());
    let mut count = words[..size].iter().filter(|w| w.2).count();
    let (mut best, mut best_count) = (0, count);
    for start in 1..=words.len() - size {
        count = count - usize::from(words[start - 1].2) + usize::from(words[start + size - 1].2);
        if count > best_count {
            (best, best_count) = (start, count);
        }
    }
    (best, best + size)
}

/// The text between two words of a snippet: whitespace runs as one space,
/// a long run of other characters shortened.
fn push_gap(out: &mut String, gap: &str) {
    let gap = collapse_inner(gap);
    if gap.len() > MAX_GAP_BYTES {
        out.push_str(" … ");
    } else {
        out.push_str(&gap);
    }
}

/// Whitespace runs as one space, kept at the ends.
fn collapse_inner(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    if space {
        out.push(' ');
    }
    out
}

/// The matchers of `query`'s words that apply to `part`, outside `NOT`s.
fn collect(query: &Query, part: &str, analyzer: Analyzer, out: &mut Vec<Matcher>) -> Result<()> {
    let applies = |field: &Option<String>| field.as_deref().is_none_or(|f| f == part);
    match query {
        Query::And(list) | Query::Or(list) => {
            for q in list {
                collect(q, part, analyzer, out)?;
            }
        }
        Query::Text { field, text } | Query::Any { field, text, .. } | Query::Phrase { field, text, .. }
            if applies(field) =>
        {
            out.extend(query_terms(analyzer, text).into_iter().map(Matcher::Term));
        }
        Query::WordPrefix { field, prefix } if applies(field) => {
            out.push(Matcher::Prefix(one_word(analyzer, prefix)?));
        }
        Query::Fuzzy { field, word, distance } if applies(field) => {
            let word = one_word(analyzer, word)?;
            let automaton = fst::automaton::Levenshtein::new(&word, u32::from(*distance))
                .map_err(|e| Error::invalid_input(format!("fuzzy word {word:?}: {e}")))?;
            out.push(Matcher::Fuzzy(automaton));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Document;

    fn snippet(query: &str, text: &str) -> Option<String> {
        let query = Query::parse(query).unwrap();
        let h = Highlighter::new(&query, "body", Analyzer::English, &("[".into(), "]".into())).unwrap();
        h.cut(text)
    }

    #[test]
    fn a_short_part_is_whole_with_its_matches_marked() {
        assert_eq!(
            snippet("keys", "Rotate your SSH keys, then the key."),
            Some("Rotate your SSH [keys], then the [key].".into())
        );
        assert_eq!(snippet("os.path.join", "use os.path.join(a, b)"), Some("use [os.path.join](a, b)".into()));
        assert_eq!(snippet("join", "(use os.path.join)"), Some("(use [os.path.join])".into()));
        assert_eq!(snippet("jo*", "Join us"), Some("[Join] us".into()));
        assert_eq!(snippet("joim~1", "Join us"), Some("[Join] us".into()));
        assert_eq!(snippet("NOT join us", "Join us"), Some("Join [us]".into()));
        assert_eq!(snippet("\"join us\"", "Join us"), Some("[Join] [us]".into()));
        assert_eq!(snippet("title:join", "Join us"), Some("Join us".into()));
        assert_eq!(snippet("x", "  "), None);
    }

    #[test]
    fn a_long_part_is_cut_around_the_most_matched_words() {
        let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let text = words.join(" \n ");
        // w50 and w52 are in one window: the first such starts at w23.
        let got = snippet("w50 OR w52 OR w99", &text).unwrap();
        assert!(got.starts_with("…w23 w24 "), "{got}");
        assert!(got.ends_with("[w50] w51 [w52]…"), "{got}");
        assert_eq!(got.matches(' ').count(), SNIPPET_WORDS - 1);
        // No match: the start of the part.
        let got = snippet("absent", &text).unwrap();
        assert!(got.starts_with("w0 w1 ") && got.ends_with("w29…"), "{got}");
        // A match at the end: the last window.
        let got = snippet("w99", &text).unwrap();
        assert!(got.starts_with("…w70 ") && got.ends_with("[w99]"), "{got}");
    }

    #[test]
    fn long_gaps_are_shortened() {
        let text = format!("alpha {} beta", "-".repeat(500));
        assert_eq!(snippet("beta", &text), Some("alpha … [beta]".into()));
    }

    #[test]
    fn titles_follow_the_rule() {
        let body = |doc: Document| doc.body().encode();
        let doc = Document::new("a").with_text("body", "\n\n  First   line \nsecond");
        assert_eq!(title(&body(doc.clone())), Some("First line".into()));
        let doc = doc.with_text("title", "The  Title\nmore");
        assert_eq!(title(&body(doc.clone())), Some("The Title".into()));
        let doc = doc.with_meta("title", " ").with_meta("title", "Meta title");
        assert_eq!(title(&body(doc)), Some("Meta title".into()));
        assert_eq!(title(&body(Document::new("b").with_part("raw", vec![1, 2]))), None);
        // Lines without a letter or digit are skipped.
        let code = Document::new("d").with_text("body", "{\n  \"name\": \"x\",\n}").with_text("notes", "n");
        assert_eq!(title(&body(code)), Some("\"name\": \"x\",".into()));
        let symbols = Document::new("e").with_text("body", "#\n---").with_text("notes", "Notes here");
        assert_eq!(title(&body(symbols)), Some("Notes here".into()));
        let long = "word ".repeat(100);
        let got = title(&body(Document::new("c").with_text("body", &long))).unwrap();
        assert!(got.ends_with("word…") && got.chars().count() <= MAX_TITLE_CHARS + 1, "{got}");
    }
}
