//! Text analysis: how a text part, and the text of a query, become the words
//! that are indexed (by `segment`) and looked up (by `search`). It sits below
//! both, so that segments never import the search layer.
//!
//! One function serves both sides on purpose: a document is found by a query
//! only if both went through exactly the same analysis, the one its index
//! recorded when it was created ([`Analyzer`]).

use std::ops::Range;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// How an index turns text into words: chosen when the index is created
/// ([`Options::analyzer`](crate::Options::analyzer)), recorded in it, and
/// used for every document it indexes and every query it answers.
///
/// Both cut words the same way — at Unicode word boundaries (UAX #29),
/// keeping the pieces that hold a letter or a digit — and lower-case them;
/// they differ in what follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Analyzer {
    /// The default, for people's text: accents folded (`café` finds
    /// `Cafe`), English stemming (Snowball: `keys` finds `key`, `indexing`
    /// finds `indexed`), and identifiers — a word written with `.`, `_` or
    /// `::` inside, such as `os.path.join`, `snake_case` or `std::fs` — are
    /// indexed whole (not stemmed) and as each of their pieces (stemmed), all
    /// at one position, so that `join` finds `os.path.join` and
    /// `os.path.join` finds exactly it.
    #[default]
    English,
    /// Words as written, only lower-cased: no folding, no stemming, no
    /// pieces (what pushdex did before analyzers existed, and what an index
    /// created then keeps).
    Exact,
}

impl Analyzer {
    /// The analyzer's name, as the command line and the server write it.
    pub fn name(self) -> &'static str {
        match self {
            Analyzer::English => "english",
            Analyzer::Exact => "exact",
        }
    }
}

impl std::fmt::Display for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Analyzer {
    type Err = crate::Error;

    /// `english` or `exact` (any case).
    fn from_str(s: &str) -> crate::Result<Analyzer> {
        match s.to_ascii_lowercase().as_str() {
            "english" => Ok(Analyzer::English),
            "exact" => Ok(Analyzer::Exact),
            _ => Err(crate::Error::invalid_input(format!(
                "unknown analyzer {:?}: the analyzers are english and exact",
                crate::error::shorten(s)
            ))),
        }
    }
}

/// One word of a text, as analysis gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// The word's index among the words of its text (pieces share their
    /// identifier's).
    pub position: u32,
    /// The term that is indexed or looked up.
    pub term: &'a str,
    /// Where the word is in the text, in bytes (a piece: its identifier's).
    pub span: (usize, usize),
    /// The first term at its position: the word itself, not one of its
    /// pieces. A query looks up only these.
    pub whole: bool,
}

/// Calls `visit` with every token of `text` in order, and returns the number
/// of positions (the text's length in words).
pub(crate) fn analyze(analyzer: Analyzer, text: &str, visit: &mut dyn FnMut(Token<'_>)) -> u32 {
    thread_local! {
        static STEMS: std::cell::RefCell<Stems> = std::cell::RefCell::default();
    }
    STEMS.with(|stems| match stems.try_borrow_mut() {
        Ok(mut stems) => analyze_with(analyzer, text, visit, &mut stems),
        // `visit` analyzing a text of its own.
        Err(_) => analyze_with(analyzer, text, visit, &mut Stems::default()),
    })
}

/// [`analyze`], remembering stems in `stems`.
fn analyze_with(analyzer: Analyzer, text: &str, visit: &mut dyn FnMut(Token<'_>), stems: &mut Stems) -> u32 {
    let mut position = 0u32;
    let mut buf = String::new();
    let mut piece = String::new();
    let mut pieces: Vec<String> = Vec::new();
    let mut word = |span: Range<usize>| {
        let source = &text[span.clone()];
        let at = (span.start, span.end);
        match analyzer {
            Analyzer::Exact => {
                let term = lower(source, &mut buf);
                visit(Token { position, term, span: at, whole: true });
            }
            Analyzer::English => {
                fold(source, &mut buf);
                if buf.contains(['.', '_']) || buf.contains("::") {
                    visit(Token { position, term: &buf, span: at, whole: true });
                    pieces.clear();
                    // The names of a path (`read_to_string` in
                    // `std::fs::read_to_string`) whole, then every piece
                    // stemmed.
                    let names = buf.split(['.', ':']).filter(|name| name.contains('_'));
                    let words = buf.split(['.', '_', ':']).map(|word| (word, true));
                    for (part, stemmed) in names.map(|name| (name, false)).chain(words) {
                        if !part.chars().any(char::is_alphanumeric) {
                            continue;
                        }
                        piece.clear();
                        piece.push_str(&if stemmed { stems.stem(part) } else { part.into() });
                        if piece != buf && !pieces.contains(&piece) {
                            visit(Token { position, term: &piece, span: at, whole: false });
                            pieces.push(piece.clone());
                        }
                    }
                } else {
                    let stemmed = stems.stem(&buf);
                    visit(Token { position, term: &stemmed, span: at, whole: true });
                }
            }
        }
        position = position.saturating_add(1);
    };
    for_each_source_word(text, analyzer == Analyzer::English, &mut word);
    position
}

/// The terms a query looks up for `text`: one per position (an identifier
/// whole, not its pieces), duplicates kept, in order.
pub(crate) fn query_terms(analyzer: Analyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    analyze(analyzer, text, &mut |token| {
        if token.whole {
            out.push(token.term.to_string());
        }
    });
    out
}

/// The spans of `text`'s words: UAX #29 words holding a letter or a digit,
/// and, when `join_paths`, words written `a::b` joined into one (UAX #29
/// joins `a.b` and `a_b` itself, but cuts at `::`).
fn for_each_source_word(text: &str, join_paths: bool, visit: &mut dyn FnMut(Range<usize>)) {
    let mut pending: Option<Range<usize>> = None;
    for_each_word_span(text, &mut |span| {
        if !join_paths {
            visit(span);
            return;
        }
        match pending.take() {
            Some(prev) if text.get(prev.end..span.start) == Some("::") => pending = Some(prev.start..span.end),
            Some(prev) => {
                visit(prev);
                pending = Some(span);
            }
            None => pending = Some(span),
        }
    });
    if let Some(last) = pending {
        visit(last);
    }
}

/// The spans of `text`'s UAX #29 words that hold a letter or a digit: what
/// `unicode_word_indices` gives, but each line of plain ASCII (most text,
/// and nearly all of a source file) is cut by [`for_each_ascii_word_span`],
/// several times faster. A line feed is a word boundary on both sides in
/// UAX #29 (rules WB3a and WB3b), so lines are cut independently.
fn for_each_word_span(text: &str, visit: &mut dyn FnMut(Range<usize>)) {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if line.is_ascii() {
            for_each_ascii_word_span(line.as_bytes(), start, visit);
        } else {
            for (at, word) in line.unicode_word_indices() {
                visit(start + at..start + at + word.len());
            }
        }
        start += line.len();
    }
}

/// UAX #29's word boundaries restricted to ASCII, where only these rules
/// join characters (every other pair is a boundary, and a piece without a
/// letter or digit is not a word): letters, digits and `_` (ExtendNumLet)
/// join each other (WB5, WB8–WB10, WB13a, WB13b); `:` (MidLetter), `.` and
/// `'` (MidNumLet, Single_Quote) join two letters (WB6, WB7); `,` and `;`
/// (MidNum), `.` and `'` join two digits (WB11, WB12). Spans are offset by
/// `base`. A test compares it with `unicode_word_indices` on random text.
fn for_each_ascii_word_span(line: &[u8], base: usize, visit: &mut dyn FnMut(Range<usize>)) {
    let class = |at: usize| ASCII_CLASS[usize::from(line[at])];
    let mut i = 0;
    while i < line.len() {
        if class(i) & JOINS == 0 {
            i += 1;
            continue;
        }
        let start = i;
        loop {
            while i < line.len() && class(i) & JOINS != 0 {
                i += 1;
            }
            // A single middle character between two letters or two digits.
            if i + 1 < line.len() {
                let (before, middle, after) = (class(i - 1), class(i), class(i + 1));
                let sides = before & after;
                if sides & JOINS != 0 && sides & middle & (LETTER | DIGIT) != 0 {
                    i += 1;
                    continue;
                }
            }
            break;
        }
        // Not a word if only `_`s.
        if line[start..i].iter().any(u8::is_ascii_alphanumeric) {
            visit(base + start..base + i);
        }
    }
}

/// [`for_each_ascii_word_span`]'s classes of ASCII bytes: a letter, a digit
/// or `_` [`JOINS`] its neighbours of the same; a byte with [`LETTER`] joins
/// two letters when between them, one with [`DIGIT`] two digits.
const JOINS: u8 = 1;
const LETTER: u8 = 2;
const DIGIT: u8 = 4;
const ASCII_CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        class[b] = match b as u8 {
            b'a'..=b'z' | b'A'..=b'Z' => JOINS | LETTER,
            b'0'..=b'9' => JOINS | DIGIT,
            b'_' => JOINS,
            b':' => LETTER,
            b'.' | b'\'' => LETTER | DIGIT,
            b',' | b';' => DIGIT,
            _ => 0,
        };
        b += 1;
    }
    class
};

/// `word` lower-cased, borrowed when it already is.
fn lower<'b>(word: &'b str, buf: &'b mut String) -> &'b str {
    if word.is_ascii() {
        if !word.bytes().any(|b| b.is_ascii_uppercase()) {
            return word;
        }
        buf.clear();
        buf.push_str(word);
        buf.make_ascii_lowercase();
    } else {
        *buf = word.to_lowercase();
    }
    buf
}

/// `word` lower-cased with its accents folded, into `buf`: compatibility
/// decomposition (NFKD: `é` → `e` + U+0301, `ﬁ` → `fi`) without the
/// combining marks.
fn fold(word: &str, buf: &mut String) {
    buf.clear();
    if word.is_ascii() {
        buf.push_str(word);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(word.to_lowercase().nfkd().filter(|&c| !unicode_normalization::char::is_combining_mark(c)));
    }
}

/// The Snowball English stem of a folded word.
fn stem(word: &str) -> std::borrow::Cow<'_, str> {
    static STEMMER: std::sync::LazyLock<rust_stemmers::Stemmer> =
        std::sync::LazyLock::new(|| rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English));
    STEMMER.stem(word)
}

/// The stems of the words a thread's texts have had lately, up to
/// [`Stems::MAX`] words (then it starts again): pages say the same words
/// again and again, and finding a word again costs less than stemming it
/// again. A pure memo of [`stem`]: the terms are the same with it or
/// without it.
#[derive(Default)]
struct Stems(hashbrown::HashMap<String, String, std::hash::RandomState>);

impl Stems {
    /// The most words remembered, and the longest, in bytes (with both,
    /// a megabyte or two at most).
    const MAX: usize = 1 << 14;
    const LONGEST: usize = 32;

    /// The stem of the folded `word`.
    fn stem<'a>(&'a mut self, word: &'a str) -> std::borrow::Cow<'a, str> {
        if word.len() > Stems::LONGEST {
            return stem(word);
        }
        if self.0.len() >= Stems::MAX && !self.0.contains_key(word) {
            self.0.clear();
        }
        self.0.entry_ref(word).or_insert_with(|| stem(word).into_owned()).as_str().into()
    }
}

/// The words of `text`, in order, lower-cased (duplicates kept): the
/// [`Analyzer::Exact`] analysis.
///
/// Words are cut at Unicode word boundaries (UAX #29), and only the pieces
/// holding at least one letter or digit are words: `unicode_words()` keeps a
/// piece when it has a character that is Alphabetic or of general category
/// Number, which is exactly API.md's "a word has at least one letter or
/// digit". So `"don't"`, `"3.14"` and `"U.S.A"` are one word each, every Han
/// ideograph is a word of its own (UAX #29 gives ideographs no word-joining
/// rule), and punctuation, spaces and emoji are never words.
///
/// Lower-casing is `str::to_lowercase` (full Unicode mapping, no locale): `É`
/// becomes `é`, and a word changes neither its boundaries nor whether it is a
/// word, because case mapping keeps letters letters.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut spans = Vec::new();
    for_each_word_span(text, &mut |span| spans.push(span));
    spans.into_iter().map(|span| text[span].to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::{analyze, query_terms, words, Analyzer, Stems};

    fn split(text: &str) -> Vec<String> {
        words(text).collect()
    }

    /// The spans UAX #29 gives, as `unicode_word_indices` finds them.
    fn uax29_spans(text: &str) -> Vec<std::ops::Range<usize>> {
        use unicode_segmentation::UnicodeSegmentation;
        text.unicode_word_indices().map(|(at, word)| at..at + word.len()).collect()
    }

    #[test]
    fn the_ascii_cut_is_uax29() {
        let mut spans = Vec::new();
        let mut check = |text: &str| {
            spans.clear();
            super::for_each_word_span(text, &mut |span| spans.push(span));
            assert_eq!(spans, uax29_spans(text), "{text:?}");
        };
        for text in [
            "a:b a::b a.b a'b 1.2 1,2 1;2 1'2 a,b a;b 1:2 a.1 1.a _a a_ __ _ a_1 1_a a__b",
            "a:b:c a.b.c 1.2.3 a. .a a: :a 1. .1 1, ,1 a.'b a..b 1..2 x.y.z, foo_bar.baz()",
            "don't U.S.A 3.14 e.g. x=1;y=2 a-b a/b a\\b a@b #1 $2 50% (a) [b] {c} <d> \"e\" `f` ~g ^h |i",
            "line\nfeed\r\ncr\rlf\tx\x0by\x0cz\x7f\x00",
            "",
        ] {
            check(text);
        }
        // Random text over the characters that matter, and some that do not.
        let alphabet = b"aZ09_:.',; \n\r\t-/\"@\x00";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let text: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char).collect();
            check(&text);
            // A line that is not ASCII, beside ones that are.
            check(&format!("{text}\n{text}é{text}\n{text}"));
        }
    }

    #[test]
    fn splits_on_spaces_and_punctuation_and_lower_cases() {
        assert_eq!(split("Quarterly REPORT, 2024: final!"), ["quarterly", "report", "2024", "final"]);
        assert_eq!(split("  hello\tworld\n"), ["hello", "world"]);
        assert_eq!(split("MiXeD CaSe"), ["mixed", "case"]);
    }

    #[test]
    fn exact_analysis_sees_what_words_returns() {
        for text in ["Quarterly REPORT, 2024: final!", "ΣΊΣΥΦΟΣ ÉTÉ Straße", "don't U.S.A 3.14 日本語 a::b", ""]
        {
            let mut seen = Vec::new();
            let mut positions = Vec::new();
            let len = analyze(Analyzer::Exact, text, &mut |t| {
                assert!(t.whole);
                assert_eq!(text[t.span.0..t.span.1].to_lowercase(), t.term);
                seen.push(t.term.to_string());
                positions.push(t.position);
            });
            assert_eq!(seen, split(text), "{text:?}");
            assert_eq!(positions, (0..len).collect::<Vec<_>>());
        }
    }

    /// (position, term, whole) of every token.
    fn english(text: &str) -> Vec<(u32, String, bool)> {
        let mut out = Vec::new();
        analyze(Analyzer::English, text, &mut |t| out.push((t.position, t.term.to_string(), t.whole)));
        out
    }

    fn english_terms(text: &str) -> Vec<String> {
        english(text).into_iter().map(|(_, term, _)| term).collect()
    }

    #[test]
    fn english_stems_and_folds() {
        assert_eq!(english_terms("Keys key KEYING"), ["key", "key", "key"]);
        assert_eq!(english_terms("indexing indexed indexes"), ["index", "index", "index"]);
        assert_eq!(english_terms("Café naïve ÉCOLE"), ["cafe", "naiv", "ecol"]);
        // A decomposed accent folds like a composed one.
        assert_eq!(english_terms("CAFE\u{301}"), ["cafe"]);
        // Compatibility forms fold too.
        assert_eq!(english_terms("\u{FB01}le"), ["file"]);
        assert_eq!(english_terms("general public license"), ["general", "public", "licens"]);
        assert_eq!(query_terms(Analyzer::English, "Licenses"), ["licens"]);
    }

    #[test]
    fn identifiers_are_whole_and_pieces_at_one_position() {
        assert_eq!(
            english("call os.path.join now"),
            [
                (0, "call".into(), true),
                (1, "os.path.join".into(), true),
                (1, "os".into(), false),
                (1, "path".into(), false),
                (1, "join".into(), false),
                (2, "now".into(), true),
            ]
        );
        assert_eq!(english_terms("snake_case"), ["snake_case", "snake", "case"]);
        // `::` joins (UAX #29 alone cuts there); pieces are stemmed, the whole is not.
        assert_eq!(english_terms("std::collections"), ["std::collections", "std", "collect"]);
        // A name with `_` inside a path is a piece too.
        assert_eq!(
            english_terms("std::fs::read_to_string"),
            ["std::fs::read_to_string", "read_to_string", "std", "fs", "read", "to", "string"]
        );
        assert_eq!(english("a :: b").len(), 2, "spaced colons do not join");
        // A repeated piece is one term at its position.
        assert_eq!(english_terms("a.a"), ["a.a", "a"]);
        // Pieces without a letter or digit are not words.
        assert_eq!(english_terms("__init__"), ["__init__", "init"]);
        // A query looks up the identifier whole.
        assert_eq!(query_terms(Analyzer::English, "os.path.join keys"), ["os.path.join", "key"]);
    }

    #[test]
    fn remembered_stems_are_the_stems() {
        // More distinct words than are remembered, each said twice, then
        // the first ones again: every term is the word's own stem.
        let words: Vec<String> = (0..Stems::MAX + 10).map(|i| format!("running{i}s indexes_{i}")).collect();
        let text = format!("{0} {0}", words.join(" "));
        let terms = |text: &str| english(text).into_iter().map(|(_, term, whole)| (term, whole)).collect::<Vec<_>>();
        let alone: Vec<_> = text.split(' ').flat_map(terms).collect();
        assert_eq!(terms(&text), alone);
        for (i, (term, _)) in alone.iter().filter(|(term, _)| term.starts_with("run")).enumerate() {
            let i = i % (Stems::MAX + 10);
            assert_eq!(*term, super::stem(&format!("running{i}s")), "{i}");
        }
        assert_eq!(english_terms("keys keys_keys"), ["key", "keys_keys", "key"]);
        // A long word is stemmed, not remembered.
        let long = format!("{}ings", "ab".repeat(Stems::LONGEST));
        let stemmed = super::stem(&long).into_owned();
        assert!(stemmed.len() < long.len());
        assert_eq!(english_terms(&format!("{long} {long}")), [stemmed.clone(), stemmed]);
    }

    #[test]
    fn positions_count_words_not_pieces() {
        let len = analyze(Analyzer::English, "a.b c::d e", &mut |_| {});
        assert_eq!(len, 3);
        assert_eq!(analyze(Analyzer::Exact, "a.b c::d e", &mut |_| {}), 4);
    }

    #[test]
    fn spans_point_at_the_source_word() {
        let text = "Hello, os.path.join and std::fs!";
        let mut spans = Vec::new();
        analyze(Analyzer::English, text, &mut |t| {
            if t.whole {
                spans.push(&text[t.span.0..t.span.1]);
            }
        });
        assert_eq!(spans, ["Hello", "os.path.join", "and", "std::fs"]);
    }

    #[test]
    fn analyzer_names_round_trip() {
        for a in [Analyzer::English, Analyzer::Exact] {
            assert_eq!(a.name().parse::<Analyzer>().unwrap(), a);
            assert_eq!(a.to_string().to_uppercase().parse::<Analyzer>().unwrap(), a);
        }
        assert!("porter".parse::<Analyzer>().is_err());
    }

    #[test]
    fn keeps_duplicates_in_order() {
        assert_eq!(split("a b a"), ["a", "b", "a"]);
    }

    #[test]
    fn digits_alone_are_words() {
        assert_eq!(split("2024 7 000"), ["2024", "7", "000"]);
        assert_eq!(split("pi is 3.14"), ["pi", "is", "3.14"]);
        assert_eq!(split("1,000,000"), ["1,000,000"]);
    }

    #[test]
    fn apostrophes_and_inner_dots_join() {
        assert_eq!(split("Don't stop"), ["don't", "stop"]);
        // U+2019 RIGHT SINGLE QUOTATION MARK, as word processors write it.
        assert_eq!(split("don\u{2019}t"), ["don\u{2019}t"]);
        assert_eq!(split("U.S.A. rocks"), ["u.s.a", "rocks"]);
        assert_eq!(split("snake_case"), ["snake_case"]);
        // A quote that does not sit between two letters is not part of a word.
        assert_eq!(split("'quoted'"), ["quoted"]);
    }

    #[test]
    fn hyphens_and_slashes_split() {
        assert_eq!(split("e-mail"), ["e", "mail"]);
        // A dot joins letter to letter or digit to digit, not digit to letter.
        assert_eq!(split("file:///share/Doc1.txt"), ["file", "share", "doc1", "txt"]);
        assert_eq!(split("report.txt"), ["report.txt"]);
    }

    #[test]
    fn a_colon_between_letters_joins() {
        // UAX #29 counts ':' as MidLetter (for Swedish "S:t"): between two
        // letters it joins them into one word.
        assert_eq!(split("mailto:joe S:t"), ["mailto:joe", "s:t"]);
        assert_eq!(split("a: b"), ["a", "b"]);
        assert_eq!(split("10:30"), ["10", "30"]);
    }

    #[test]
    fn punctuation_spaces_and_symbols_alone_give_no_word() {
        assert!(split("").is_empty());
        assert!(split("   \t\n").is_empty());
        assert!(split("!?.,;:-—()[]{}\"'/\\").is_empty());
        assert!(split("+ - * / = < > # % & | ~").is_empty());
        assert!(split("\u{1F600} \u{2764}").is_empty());
    }

    #[test]
    fn accented_letters_stay_in_their_word_and_lower_case() {
        assert_eq!(split("ÉCOLE Café naïve"), ["école", "café", "naïve"]);
        // A decomposed accent (e + U+0301 COMBINING ACUTE) extends its letter.
        assert_eq!(split("CAFE\u{301} noir"), ["cafe\u{301}", "noir"]);
        assert_eq!(split("STRASSE Straße"), ["strasse", "straße"]);
        assert_eq!(split("ΣΟΦΊΑ"), ["σοφία"]);
    }

    #[test]
    fn cjk_ideographs_are_one_word_each() {
        assert_eq!(split("日本語"), ["日", "本", "語"]);
        assert_eq!(split("東京 tokyo"), ["東", "京", "tokyo"]);
        // Katakana do join (UAX #29 rule WB13).
        assert_eq!(split("カタカナ"), ["カタカナ"]);
        // Hangul syllables are letters and join like Latin ones.
        assert_eq!(split("한국어 텍스트"), ["한국어", "텍스트"]);
    }

    #[test]
    fn every_word_has_a_letter_or_digit_and_is_lower_case() {
        let text = "Mixed: ÀÉÎ 42 -- don't ... 日本 (x) _ __ 'a' Ǆ";
        for word in words(text) {
            assert!(word.chars().any(|c| c.is_alphanumeric()), "{word:?} has no letter or digit");
            assert_eq!(word, word.to_lowercase());
        }
        // "_" and "__" hold no letter or digit: not words.
        assert!(!split(text).iter().any(|w| w.chars().all(|c| c == '_')));
    }
}
