//! [`Query`], its text syntax ([`Query::parse`] and `Display`), and [`Hit`].

use std::fmt;
use std::iter::Peekable;
use std::vec;

use crate::error::{Error, Result};

/// What a search asks for: a tree of conditions on documents.
///
/// Only Searchable documents are considered (as they were at the last
/// `refresh()`). Build one directly, or from text with [`Query::parse`];
/// `to_string()` writes it back in that syntax.
///
/// ```
/// use pushdex::Query;
///
/// let q = Query::parse(r#"report OR title:"annual plan" @lang:en"#)?;
/// assert_eq!(
///     q,
///     Query::Or(vec![
///         Query::Text { field: None, text: "report".into() },
///         Query::And(vec![
///             Query::Phrase { field: Some("title".into()), text: "annual plan".into(), slop: 0 },
///             Query::Meta { name: "lang".into(), value: "en".into() },
///         ]),
///     ])
/// );
/// assert_eq!(Query::parse(&q.to_string())?, q);
/// # Ok::<(), pushdex::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// Every searchable document.
    All,
    /// Documents in which every word of `text` occurs in the text part named
    /// `field`, or, when `field` is `None`, in some text part (each word in
    /// any of them). `text` is split into words and lower-cased the same way
    /// as text parts (UAX #29 word boundaries; a word has at least one letter
    /// or digit), so the order of the words does not matter and case is
    /// ignored. Binary parts are not searched.
    Text {
        /// The text part to search; `None` searches every text part.
        field: Option<String>,
        /// The words to find, as written.
        text: String,
    },
    /// Documents in which the words of `text` occur in this order in one
    /// text part (`field`, or, when `None`, any one of them), with at most
    /// `slop` other words in all between each word and the next (0: the
    /// words are adjacent). A word's position is its index among the words
    /// of its part; `text` is analysed as for [`Query::Text`], and a word
    /// repeated in `text` needs as many occurrences. A one-word phrase is
    /// that word's [`Query::Text`] (same documents, same scores). Scored by
    /// BM25 of its distinct words (as [`Query::Text`]), summed over the
    /// parts in which the phrase occurs only. Written `"some words"` (slop
    /// 0) or `"some words"~N`; `slop` is at most [`MAX_SLOP`].
    Phrase {
        /// The text part to search; `None` searches every text part.
        field: Option<String>,
        /// The words, as written, in their order.
        text: String,
        /// How many other words may stand between the phrase's words, in
        /// all (not per gap).
        slop: u32,
    },
    /// Ranked OR: documents in which at least `min(min_should_match, n)` of
    /// the `n` distinct words of `text` occur (in the text part `field`, or,
    /// when `None`, each in some text part), scored by BM25 over the words
    /// that occur. What [`Query::parse_natural`] makes of bare words, so
    /// that a question finds the documents holding most of its words, best
    /// first. `min_should_match` 0 matches every searchable document (the
    /// words only rank them).
    Any {
        /// The text part to search; `None` searches every text part.
        field: Option<String>,
        /// The words, as written (analysed as for [`Query::Text`]).
        text: String,
        /// How many of the distinct words a document must hold at least
        /// (fewer when the text has fewer distinct words).
        min_should_match: usize,
    },
    /// Documents in which some word of the text part `field` (of any text
    /// part when `None`) starts with `prefix`, analysed as a query word
    /// (`Rep` finds `report`). Scores 0, like a meta: it finds, the other
    /// words of the query rank. Written `prefix*`.
    WordPrefix {
        /// The text part to search; `None` searches every text part.
        field: Option<String>,
        /// The start of a word: one word once analysed.
        prefix: String,
    },
    /// Documents in which some word of the text part `field` (of any text
    /// part when `None`) is within Levenshtein distance `distance` (0 to 2,
    /// counted in characters) of `word`, analysed as a query word. Scores
    /// 0, like [`Query::WordPrefix`]. Written `word~1`, `word~2` (`word~`
    /// is `word~1`).
    Fuzzy {
        /// The text part to search; `None` searches every text part.
        field: Option<String>,
        /// The word to come near: one word once analysed.
        word: String,
        /// The most edits (insertions, deletions, substitutions): 0 to 2.
        distance: u8,
    },
    /// Documents with a value of meta `name` equal to `value`, exactly (case
    /// included; one value of a multi-valued meta is enough).
    Meta {
        /// The meta's name.
        name: String,
        /// The value to find, compared byte for byte.
        value: String,
    },
    /// Documents under the folder `root`, by the folder rules of
    /// [`Index::enumerate`](crate::Index::enumerate) (`"a/b"` and `"a/b/"` are
    /// the same folder, `""` holds every document): all of them when
    /// `recursive`, else only its direct children.
    Under {
        /// The folder; see [`folder_prefix`](crate::folder_prefix).
        root: String,
        /// Whether documents of sub-folders count too.
        recursive: bool,
    },
    /// Documents whose URI starts with this string, whatever follows (no
    /// folder rule: `Prefix("a/b")` matches `a/bc`).
    Prefix(String),
    /// Documents matched by every query of the list; `And(vec![])` matches
    /// every searchable document.
    And(Vec<Query>),
    /// Documents matched by at least one query of the list; `Or(vec![])`
    /// matches nothing.
    Or(Vec<Query>),
    /// Every searchable document that the inner query does not match.
    Not(Box<Query>),
}

/// One document found by a search.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The document's URI.
    pub uri: String,
    /// The document's stamp (`""` when it has none), as it was when it became
    /// Searchable.
    pub stamp: String,
    /// Its relevance: the BM25 score summed over the query's matched words;
    /// `0.0` for a document found only by conditions without words (metas,
    /// folders, prefixes, `All`). Higher is better.
    pub score: f32,
    /// The document's title, from
    /// [`Index::search_with`](crate::Index::search_with): the first value of
    /// its `title` meta, else the first line holding a letter or digit of
    /// its text part `title`, else of its first text part that has one (whitespace runs as one space,
    /// at most 120 characters); `None` without such text, and always from
    /// [`Index::search`](crate::Index::search).
    pub title: Option<String>,
    /// A passage of the text part [`SearchOptions::snippet`] names, from
    /// [`Index::search_with`](crate::Index::search_with): the first window
    /// of at most 30 words holding the most words the query matched, each
    /// matched word between [`SearchOptions::highlight`]'s strings, "…"
    /// where the part goes on. `None` when the hit lacks the part, when no
    /// snippet was asked for, and always from
    /// [`Index::search`](crate::Index::search).
    pub snippet: Option<String>,
}

/// How [`Index::search_with`](crate::Index::search_with) orders, pages and
/// summarises its hits.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// How many hits to return (1 to [`MAX_SEARCH_LIMIT`](crate::MAX_SEARCH_LIMIT)); default 10.
    pub limit: usize,
    /// How many of the ordered hits to skip first (`offset + limit` at most
    /// [`MAX_SEARCH_LIMIT`](crate::MAX_SEARCH_LIMIT), as Elasticsearch's
    /// result window); default 0.
    pub offset: usize,
    /// The order of the hits; default [`Sort::Score`].
    pub sort: Sort,
    /// The text part to cut a snippet from (`None`: no snippet).
    pub snippet: Option<String>,
    /// What to put around matched words in the snippet; default
    /// `("<b>", "</b>")`.
    pub highlight: (String, String),
    /// Meta names to count the hits by.
    pub facets: Vec<String>,
    /// Values per facet, most frequent first; default 10.
    pub facet_limit: usize,
    /// Whether to count every hit ([`SearchResults::total`]).
    pub count: bool,
}

impl Default for SearchOptions {
    fn default() -> SearchOptions {
        SearchOptions {
            limit: 10,
            offset: 0,
            sort: Sort::Score,
            snippet: None,
            highlight: ("<b>".to_string(), "</b>".to_string()),
            facets: Vec::new(),
            facet_limit: 10,
            count: false,
        }
    }
}

/// The order of search hits; ties by URI in byte order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Best score first.
    #[default]
    Score,
    /// By the value of a meta: decimal numbers by value (before every other
    /// value), other values by their bytes (ISO dates sort as dates); a hit
    /// with several values by its first in this order; hits without the
    /// meta last, in either direction. Scores are still computed.
    Meta {
        /// The meta's name.
        name: String,
        /// Largest value first.
        descending: bool,
    },
}

/// What [`Index::search_with`](crate::Index::search_with) found.
#[derive(Clone, Debug)]
pub struct SearchResults {
    /// The page of hits asked for.
    pub hits: Vec<Hit>,
    /// Every hit's count, when [`SearchOptions::count`] asked for it.
    pub total: Option<u64>,
    /// One per name of [`SearchOptions::facets`], in that order.
    pub facets: Vec<Facet>,
}

/// The hits counted by the values of one meta.
#[derive(Clone, Debug, PartialEq)]
pub struct Facet {
    /// The meta's name.
    pub name: String,
    /// Values and how many hits hold each, most frequent first (ties by
    /// value).
    pub values: Vec<(String, u64)>,
}

/// The error for a query text without a word.
fn no_word(text: &str) -> Error {
    Error::invalid_input(format!(
        "{:?} has no word to search for (a word has a letter or a digit)",
        crate::error::shorten(text)
    ))
}

/// The one word `text` analyses to with `analyzer` (a word prefix or a
/// fuzzy word): an identifier whole, a word folded and stemmed by
/// [`Analyzer::English`](crate::Analyzer::English).
pub(crate) fn one_word(analyzer: crate::Analyzer, text: &str) -> Result<String> {
    let mut words = crate::text::query_terms(analyzer, text).into_iter();
    match (words.next(), words.next()) {
        (Some(word), None) => Ok(word),
        (None, _) => Err(no_word(text)),
        (Some(_), Some(_)) => Err(Error::invalid_input(format!(
            "{:?} is several words; a word prefix or a fuzzy word is one",
            crate::error::shorten(text)
        ))),
    }
}

/// The largest slop of a [`Query::Phrase`]: search and the parser refuse
/// more (`InvalidInput`).
pub const MAX_SLOP: u32 = 10_000;

/// How deeply parentheses and `NOT`s may nest in a parsed query. The parser
/// recurses once per level: the limit keeps a hostile query (a server passes
/// user input here) from overflowing the stack.
const MAX_DEPTH: usize = 256;

/// How deeply `And`, `Or` and `Not` may nest in a query given to
/// [`Index::search`](crate::Index::search) and
/// [`Index::search_count`](crate::Index::search_count): `Not(Not(word))`
/// is nested 2 deep. Search recurses once per level; a query built in code
/// has no parser to bound it. Every parsed query nested up to 256
/// parentheses or `NOT`s in one way (`(a OR (b OR …))`, `NOT NOT …`) is
/// within it; one that piles two operators on every level of 256
/// parentheses (`(a (b OR (…)))`) is not, and is refused by search.
pub const MAX_QUERY_DEPTH: usize = 256;

impl Query {
    /// What search refuses before it reads anything, with `InvalidInput`:
    /// `And`, `Or` and `Not` nested deeper than [`MAX_QUERY_DEPTH`], and a
    /// `Text` with no word to search for (`👍`, `"..."`: a word has a letter
    /// or a digit), which would otherwise match every document. Walks the
    /// query without recursing.
    pub(crate) fn check(&self) -> crate::Result<()> {
        let mut stack = vec![(self, 0usize)];
        while let Some((query, depth)) = stack.pop() {
            let children: &[Query] = match query {
                Query::And(list) | Query::Or(list) => list,
                Query::Not(inner) => std::slice::from_ref(inner.as_ref()),
                Query::Text { text, .. } | Query::Any { text, .. } => {
                    if crate::text::words(text).next().is_none() {
                        return Err(no_word(text));
                    }
                    continue;
                }
                Query::Phrase { text, slop, .. } => {
                    if crate::text::query_terms(crate::Analyzer::English, text).is_empty() {
                        return Err(no_word(text));
                    }
                    if *slop > MAX_SLOP {
                        return Err(Error::invalid_input(format!(
                            "the slop of a phrase is at most {MAX_SLOP}, not {slop}"
                        )));
                    }
                    continue;
                }
                Query::WordPrefix { prefix, .. } => {
                    one_word(crate::Analyzer::English, prefix)?;
                    continue;
                }
                Query::Fuzzy { word, distance, .. } => {
                    one_word(crate::Analyzer::English, word)?;
                    if *distance > 2 {
                        return Err(Error::invalid_input(format!(
                            "the distance of a fuzzy word is 0, 1 or 2, not {distance}"
                        )));
                    }
                    continue;
                }
                _ => continue,
            };
            if depth == MAX_QUERY_DEPTH {
                return Err(crate::Error::InvalidInput {
                    reason: format!("the query is nested deeper than {MAX_QUERY_DEPTH} levels of AND, OR and NOT"),
                });
            }
            stack.extend(children.iter().map(|q| (q, depth + 1)));
        }
        Ok(())
    }

    /// Parses a query written in pushdex's query syntax.
    ///
    /// | text | query |
    /// |---|---|
    /// | `word` | `Text { field: None, text: "word" }`: the word in any text part |
    /// | `"some words"` | `Phrase { field: None, text: "some words", slop: 0 }`: the words, adjacent and in this order, in one text part (the text is kept whole, spaces included) |
    /// | `"some words"~N` | `Phrase { .., slop: N }`: at most `N` other words between them in all (`N` decimal digits, at most 10,000) |
    /// | `part:word`, `part:"some words"`, `part:"some words"~N` | `Text { field: Some("part"), .. }`, `Phrase { field: Some("part"), .. }`: in text part `part` |
    /// | `@name:value`, `@name:"a value"` | `Meta { name, value }`: exact value, case kept |
    /// | `under:ROOT`, `under:"ROOT"` | `Under { root, recursive: true }` |
    /// | `prefix:P`, `prefix:"P"` | `Prefix(P)` |
    /// | `*` | `All` |
    /// | `a b`, `a AND b` | `And([a, b])` |
    /// | `a OR b` | `Or([a, b])` |
    /// | `NOT a` | `Not(a)` |
    /// | `( ... )` | grouping |
    ///
    /// **Precedence**: `NOT` binds tighter than `AND` (or juxtaposition),
    /// which binds tighter than `OR`: `a OR NOT b c` is
    /// `Or([a, And([Not(b), c])])`. The operators are upper case only: `and`,
    /// `or` and `not` are words. A chain of one operator gives one flat list,
    /// and parentheses around the same operator are flattened too (`a (b c)`
    /// and `a b c` are both `And([a, b, c])`); a lone operand is never wrapped
    /// in `And` or `Or`.
    ///
    /// **Terms.** Whitespace, `(` and `)` separate terms. A term is:
    /// * a quoted string `"..."`, in which `\"` stands for `"` and `\\` for
    ///   `\` (a backslash before any other character is itself): a phrase.
    ///   The closing quote may be followed by `~N` (a phrase's slop), then
    ///   must be followed by whitespace, a parenthesis or the end.
    /// * `NAME:VALUE`, when `NAME` is a *simple name* (letters, digits, `_`,
    ///   `-`, `.`). `under` and `prefix` (lower case) are the folder and URI
    ///   prefix conditions; any other name is a text part. An unquoted value
    ///   runs to the next whitespace or parenthesis, colons and quotes
    ///   included, so `under:file:///share/a` is the folder
    ///   `file:///share/a`.
    /// * `@NAME:VALUE`, a meta: `NAME` is a simple name and the value follows
    ///   the same rules.
    /// * otherwise a word: the characters up to the next whitespace or
    ///   parenthesis, quotes included (a quote only opens a quoted string at
    ///   the start of a term or of a value). `*` alone is `All`; `*` within a
    ///   word is no wildcard.
    ///
    /// **Colons in words.** A word whose part before its first `:` is not a
    /// simple name (`a+b:c`, `¿qué?:x`) is a plain word, and so is a text
    /// part value that begins with `//`: `http://example.com/a` and
    /// `file:///share` are words, not searches of a part named `http` or
    /// `file`. Any other `name:...` is a field; quote a word to search it
    /// as words (`"mailto:joe"`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] whose reason begins with `at byte N:` (`N`
    /// counted in bytes from 0) for: an empty or blank query; an unclosed
    /// quote (at the quote); an unclosed `(` (at it) or an unmatched `)`;
    /// empty parentheses `()`; an operator without its operand (`a AND`,
    /// `OR b`, `NOT`); an empty name or value (`:x`, `body:`, `@:x`, `@a:`,
    /// `under:`, `prefix:`, `""`, `body:""`); `@name` without `:value`; text
    /// right after a closing quote (but a phrase's `~N`); a slop that is not
    /// digits or is above [`MAX_SLOP`]; nesting deeper than 256 parentheses or
    /// `NOT`s.
    ///
    /// ```
    /// use pushdex::{Error, Query};
    ///
    /// let Err(Error::InvalidInput { reason }) = Query::parse(r#"body:"open"#) else { panic!() };
    /// assert_eq!(reason, "at byte 5: unclosed quote");
    /// ```
    pub fn parse(text: &str) -> Result<Query> {
        Query::parse_with(text, false)
    }

    /// The text part names the query searches (`part:word`), each once, in
    /// the order they first appear: what the command line and the server
    /// check against [`Index::text_parts`](crate::Index::text_parts), to
    /// name a part no searchable document has instead of finding nothing.
    pub fn fields(&self) -> Vec<&str> {
        let mut fields = Vec::new();
        let mut stack = vec![self];
        while let Some(query) = stack.pop() {
            match query {
                Query::Text { field: Some(field), .. }
                | Query::Any { field: Some(field), .. }
                | Query::Phrase { field: Some(field), .. }
                | Query::WordPrefix { field: Some(field), .. }
                | Query::Fuzzy { field: Some(field), .. }
                    if !fields.contains(&field.as_str()) =>
                {
                    fields.push(field.as_str());
                }
                Query::And(list) | Query::Or(list) => stack.extend(list.iter().rev()),
                Query::Not(inner) => stack.push(inner),
                _ => {}
            }
        }
        fields
    }

    /// Parses a query the way people write one: as [`Query::parse`], but a
    /// run of juxtaposed bare words (no field, no quotes, no operator
    /// between them) is one ranked [`Query::Any`] over those words, with
    /// `min_should_match` = ⌈2n/3⌉ for its `n` distinct words; `+word`
    /// makes a word required (a `Text`) and `-word` excludes it (`NOT`).
    /// Quotes, fields, metas, `under:`, `prefix:`, `AND`, `OR`, `NOT` and
    /// parentheses keep their meaning; a lone bare word is a `Text`.
    ///
    /// ```
    /// use pushdex::Query;
    ///
    /// let q = Query::parse_natural("zstd compression level +rust -java")?;
    /// assert_eq!(
    ///     q,
    ///     Query::And(vec![
    ///         Query::Any { field: None, text: "zstd compression level".into(), min_should_match: 2 },
    ///         Query::Text { field: None, text: "rust".into() },
    ///         Query::Not(Box::new(Query::Text { field: None, text: "java".into() })),
    ///     ])
    /// );
    /// # Ok::<(), pushdex::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Query::parse`].
    pub fn parse_natural(text: &str) -> Result<Query> {
        Query::parse_with(text, true)
    }

    fn parse_with(text: &str, natural: bool) -> Result<Query> {
        let tokens = Lexer { text, at: 0, natural }.tokens()?;
        let mut parser = Parser { tokens: tokens.into_iter().peekable(), last: None, len: text.len(), depth: 0 };
        let query = parser.or()?;
        match parser.tokens.next() {
            None => Ok(query),
            Some(token) => Err(syntax(token.at, "unmatched ')'")),
        }
    }
}

fn syntax(at: usize, what: impl fmt::Display) -> Error {
    Error::invalid_input(format!("at byte {at}: {what}"))
}

/// A character of a simple name: the names of `part:`, `@meta:`, `under:`
/// and `prefix:`.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn is_simple_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_name_char)
}

/// Where an unquoted term or value ends.
fn ends_term(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')'
}

#[derive(Debug)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    Term(Query),
    /// A bare word of [`Query::parse_natural`]: juxtaposed with others, it
    /// joins their ranked `Any`.
    Bare(String),
}

impl Tok {
    fn operator(&self) -> Option<&'static str> {
        match self {
            Tok::And => Some("AND"),
            Tok::Or => Some("OR"),
            Tok::Not => Some("NOT"),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    /// Byte offset of the token's first character.
    at: usize,
}

struct Lexer<'a> {
    text: &'a str,
    at: usize,
    /// [`Query::parse_natural`]: bare words, `+word`, `-word`.
    natural: bool,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn tokens(mut self) -> Result<Vec<Token>> {
        let mut tokens = Vec::new();
        while let Some(c) = self.peek() {
            let at = self.at;
            if c.is_whitespace() {
                self.at += c.len_utf8();
                continue;
            }
            let tok = match c {
                '(' => {
                    self.at += 1;
                    Tok::Open
                }
                ')' => {
                    self.at += 1;
                    Tok::Close
                }
                '"' => {
                    let (text, slop) = self.phrase("empty quoted phrase \"\"")?;
                    Tok::Term(Query::Phrase { field: None, text, slop })
                }
                '@' => self.meta()?,
                _ => self.word_or_field()?,
            };
            tokens.push(Token { tok, at });
        }
        Ok(tokens)
    }

    /// Reads a simple name; returns it (maybe empty).
    fn name(&mut self) -> &'a str {
        let start = self.at;
        let len = self.text[start..].find(|c| !is_name_char(c)).unwrap_or(self.text.len() - start);
        self.at += len;
        &self.text[start..self.at]
    }

    /// Reads the rest of the term from the current position: an unquoted run.
    fn unquoted(&mut self) -> &'a str {
        let start = self.at;
        let len = self.text[start..].find(ends_term).unwrap_or(self.text.len() - start);
        self.at += len;
        &self.text[start..self.at]
    }

    /// Reads a quoted string starting at the current `"`.
    fn quoted(&mut self, if_empty: &str) -> Result<String> {
        let (open, out) = self.quoted_text()?;
        self.end_of_quoted(open, out, if_empty)
    }

    /// Reads a phrase starting at the current `"`: a quoted string, then
    /// maybe `~N`, its slop.
    fn phrase(&mut self, if_empty: &str) -> Result<(String, u32)> {
        let (open, out) = self.quoted_text()?;
        let mut slop = 0;
        if self.peek() == Some('~') {
            let at = self.at;
            self.at += 1;
            let digits = &self.text[self.at..];
            let len = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
            let digits = &digits[..len];
            self.at += len;
            slop = match digits.parse::<u32>() {
                Ok(n) if n <= MAX_SLOP => n,
                _ if digits.is_empty() => return Err(syntax(at, "a phrase's '~' needs a slop: \"...\"~N")),
                _ => return Err(syntax(at + 1, format_args!("the slop of a phrase is at most {MAX_SLOP}"))),
            };
        }
        Ok((self.end_of_quoted(open, out, if_empty)?, slop))
    }

    /// What must follow a quoted string opened at `open`: the end of the
    /// term; and the string must not be empty.
    fn end_of_quoted(&mut self, open: usize, out: String, if_empty: &str) -> Result<String> {
        if let Some(c) = self.peek() {
            if !ends_term(c) {
                return Err(syntax(
                    self.at,
                    format_args!("unexpected {c:?} right after a closing quote (a space or a parenthesis must follow)"),
                ));
            }
        }
        if out.is_empty() {
            return Err(syntax(open, if_empty));
        }
        Ok(out)
    }

    /// Reads a quoted string starting at the current `"`, up to its closing
    /// quote: where it opened, and its text.
    fn quoted_text(&mut self) -> Result<(usize, String)> {
        let open = self.at;
        let mut out = String::new();
        let mut chars = self.text[open + 1..].char_indices();
        let close = loop {
            match chars.next() {
                None => return Err(syntax(open, "unclosed quote")),
                Some((i, '"')) => break open + 1 + i,
                Some((_, '\\')) => match chars.clone().next() {
                    Some((_, c @ ('"' | '\\'))) => {
                        chars.next();
                        out.push(c);
                    }
                    _ => out.push('\\'),
                },
                Some((_, c)) => out.push(c),
            }
        };
        self.at = close + 1;
        Ok((open, out))
    }

    /// Reads the value after `name:`, quoted or not. `what` names the term in
    /// messages (`body:`, `@lang:`).
    fn value(&mut self, what: &str) -> Result<String> {
        let at = self.at;
        match self.peek() {
            Some('"') => self.quoted(&format!("empty value after {what}")),
            Some(c) if !ends_term(c) => Ok(self.unquoted().to_string()),
            _ => Err(syntax(at, format_args!("{what} needs a value"))),
        }
    }

    fn meta(&mut self) -> Result<Tok> {
        self.at += 1; // '@'
        let at = self.at;
        let name = self.name().to_string();
        if name.is_empty() {
            return Err(syntax(at, "empty meta name after '@'"));
        }
        match self.peek() {
            Some(':') => self.at += 1,
            Some(c) if !ends_term(c) => {
                return Err(syntax(
                    self.at,
                    format_args!("unexpected {c:?} in a meta name (letters, digits, '_', '-', '.')"),
                ))
            }
            _ => return Err(syntax(self.at, format_args!("@{name} needs ':value'"))),
        }
        let value = self.value(&format!("@{name}:"))?;
        Ok(Tok::Term(Query::Meta { name, value }))
    }

    fn word_or_field(&mut self) -> Result<Tok> {
        let start = self.at;
        let name = self.name();
        if self.peek() == Some(':') {
            if name.is_empty() {
                return Err(syntax(start, "empty field name before ':'"));
            }
            let name = name.to_string();
            let value_at = self.at + 1;
            let rest = &self.text[value_at..];
            match name.as_str() {
                "under" | "prefix" => {
                    self.at = value_at;
                    let value = self.value(&format!("{name}:"))?;
                    return Ok(Tok::Term(if name == "under" {
                        Query::Under { root: value, recursive: true }
                    } else {
                        Query::Prefix(value)
                    }));
                }
                // `http://x`, `file:///a`: a URL, and `std::fs::File`: a
                // path, read as a word.
                _ if rest.starts_with("//") || rest.starts_with(':') => {}
                _ => {
                    self.at = value_at;
                    if self.peek() == Some('"') {
                        let (text, slop) = self.phrase(&format!("empty value after {name}:"))?;
                        return Ok(Tok::Term(Query::Phrase { field: Some(name), text, slop }));
                    }
                    let text = self.value(&format!("{name}:"))?;
                    return Ok(Tok::Term(word(Some(name), text)));
                }
            }
        }
        self.at = start;
        Ok(match self.unquoted() {
            "AND" => Tok::And,
            "OR" => Tok::Or,
            "NOT" => Tok::Not,
            "*" => Tok::Term(Query::All),
            w if self.natural => match (w.strip_prefix('+'), w.strip_prefix('-')) {
                (Some(required), _) if !required.is_empty() => Tok::Term(word(None, required.to_string())),
                (_, Some(excluded)) if !excluded.is_empty() => {
                    Tok::Term(Query::Not(Box::new(word(None, excluded.to_string()))))
                }
                _ if wildcard_like(w) => Tok::Term(word(None, w.to_string())),
                _ => Tok::Bare(w.to_string()),
            },
            w => Tok::Term(word(None, w.to_string())),
        })
    }
}

/// Whether an unquoted word is a word prefix (`rep*`) or a fuzzy word
/// (`colour~`, `colour~1`, `colour~2`), by its ending.
fn wildcard_like(text: &str) -> bool {
    wildcard(text).is_some()
}

/// The ending that makes an unquoted word special: `prefix*` (the prefix),
/// or `word~`, `word~N` (the word and N; N digits, search refuses N above
/// 2).
enum Wildcard<'a> {
    Prefix(&'a str),
    Fuzzy(&'a str, u8),
}

fn wildcard(text: &str) -> Option<Wildcard<'_>> {
    if let Some(prefix) = text.strip_suffix('*').filter(|p| !p.is_empty()) {
        return Some(Wildcard::Prefix(prefix));
    }
    let (word, digits) = text.rsplit_once('~').filter(|(w, _)| !w.is_empty())?;
    let distance = match digits {
        "" => 1,
        d if d.bytes().all(|b| b.is_ascii_digit()) => d.parse::<u8>().unwrap_or(u8::MAX),
        _ => return None,
    };
    Some(Wildcard::Fuzzy(word, distance))
}

/// An unquoted word (or `part:` value): a [`Query::WordPrefix`] or a
/// [`Query::Fuzzy`] by its ending ([`wildcard`]), else a [`Query::Text`].
fn word(field: Option<String>, text: String) -> Query {
    match wildcard(&text) {
        Some(Wildcard::Prefix(prefix)) => Query::WordPrefix { field, prefix: prefix.to_string() },
        Some(Wildcard::Fuzzy(word, distance)) => Query::Fuzzy { field, word: word.to_string(), distance },
        None => Query::Text { field, text },
    }
}

/// What the parser last consumed, for error messages.
#[derive(Clone, Copy)]
enum Last {
    Open(usize),
    Operator(&'static str),
}

/// Recursive descent, one function per precedence level:
///
/// ```text
/// or    = and { "OR" and }
/// and   = unary { ["AND"] unary }
/// unary = "NOT" unary | "(" or ")" | term
/// ```
struct Parser {
    tokens: Peekable<vec::IntoIter<Token>>,
    last: Option<Last>,
    /// The length of the text, where "end of input" is.
    len: usize,
    depth: usize,
}

impl Parser {
    fn or(&mut self) -> Result<Query> {
        let mut operands = Vec::new();
        push_flat(&mut operands, self.and()?, Kind::Or);
        while let Some(Token { tok: Tok::Or, .. }) = self.tokens.peek() {
            self.tokens.next();
            self.last = Some(Last::Operator("OR"));
            push_flat(&mut operands, self.and()?, Kind::Or);
        }
        Ok(build(operands, Query::Or))
    }

    fn and(&mut self) -> Result<Query> {
        let mut operands = Vec::new();
        // Juxtaposed bare words (natural parsing only): one ranked `Any`.
        let mut run = Vec::new();
        let mut first = true;
        loop {
            if !first {
                match self.tokens.peek() {
                    Some(Token { tok: Tok::And, .. }) => {
                        self.tokens.next();
                        self.last = Some(Last::Operator("AND"));
                        flush_run(&mut run, &mut operands);
                    }
                    Some(Token { tok: Tok::Term(_) | Tok::Bare(_) | Tok::Open | Tok::Not, .. }) => {}
                    _ => break,
                }
            }
            first = false;
            if let Some(Token { tok: Tok::Bare(_), .. }) = self.tokens.peek() {
                if let Some(Token { tok: Tok::Bare(word), .. }) = self.tokens.next() {
                    run.push(word);
                }
                continue;
            }
            flush_run(&mut run, &mut operands);
            push_flat(&mut operands, self.unary()?, Kind::And);
        }
        flush_run(&mut run, &mut operands);
        Ok(build(operands, Query::And))
    }

    fn unary(&mut self) -> Result<Query> {
        let Some(token) = self.tokens.next() else { return Err(self.missing_term(None)) };
        match token.tok {
            Tok::Term(query) => Ok(query),
            Tok::Bare(word) => Ok(Query::Text { field: None, text: word }),
            Tok::Not => {
                self.enter(token.at)?;
                self.last = Some(Last::Operator("NOT"));
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Query::Not(Box::new(inner)))
            }
            Tok::Open => {
                if let Some(Token { tok: Tok::Close, .. }) = self.tokens.peek() {
                    return Err(syntax(token.at, "empty parentheses"));
                }
                self.enter(token.at)?;
                self.last = Some(Last::Open(token.at));
                let inner = self.or()?;
                self.depth -= 1;
                match self.tokens.next() {
                    Some(Token { tok: Tok::Close, .. }) => Ok(inner),
                    // `or` stops only at `)` or at the end.
                    _ => Err(syntax(token.at, "unclosed parenthesis")),
                }
            }
            Tok::Close | Tok::And | Tok::Or => Err(self.missing_term(Some(token))),
        }
    }

    fn enter(&mut self, at: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(at, format_args!("nested deeper than {MAX_DEPTH} parentheses or NOTs")));
        }
        Ok(())
    }

    /// The error for a term expected where `found` is (`None`: the end).
    fn missing_term(&self, found: Option<Token>) -> Error {
        match (self.last, found) {
            (None, None) => syntax(0, "empty query"),
            (Some(Last::Open(at)), None) => syntax(at, "unclosed parenthesis"),
            (Some(Last::Operator(op)), None) => syntax(self.len, format_args!("{op} needs a term after it")),
            (Some(Last::Operator(op)), Some(found)) => {
                let found_text = found.tok.operator().unwrap_or("')'");
                syntax(found.at, format_args!("{op} needs a term after it, found {found_text}"))
            }
            (_, Some(found)) => match found.tok.operator() {
                Some(op) => syntax(found.at, format_args!("{op} needs a term before it")),
                None => syntax(found.at, "unmatched ')'"),
            },
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    And,
    Or,
}

/// Appends `query` to the operands of a `kind` list, splicing in the operands
/// of a parenthesised list of the same kind (`a (b c)` is `a b c`).
fn push_flat(operands: &mut Vec<Query>, query: Query, kind: Kind) {
    match (query, kind) {
        (Query::And(inner), Kind::And) | (Query::Or(inner), Kind::Or) => operands.extend(inner),
        (query, _) => operands.push(query),
    }
}

/// Ends a run of juxtaposed bare words: one word is a `Text`, several an
/// `Any` needing ⌈2n/3⌉ of their `n` distinct words.
fn flush_run(run: &mut Vec<String>, operands: &mut Vec<Query>) {
    match run.len() {
        0 => {}
        1 => operands.push(Query::Text { field: None, text: run.remove(0) }),
        _ => {
            let text = run.join(" ");
            let mut distinct: Vec<String> = crate::text::words(&text).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let min_should_match = (2 * distinct.len()).div_ceil(3);
            operands.push(Query::Any { field: None, text, min_should_match });
            run.clear();
        }
    }
}

/// `list(operands)`, or the operand itself when there is one.
fn build(mut operands: Vec<Query>, list: fn(Vec<Query>) -> Query) -> Query {
    if operands.len() == 1 {
        operands.remove(0)
    } else {
        list(operands)
    }
}

/// Writes the query in [`Query::parse`]'s syntax.
///
/// For every query that `parse` can return, `Query::parse(&q.to_string())`
/// gives `q` back. A query built by hand comes back *normalized*, the way
/// `parse` builds trees: an `And` or `Or` of one operand is that operand, an
/// `And` (`Or`) inside an `And` (`Or`) is spliced into it, `And(vec![])` is
/// written `*` (and so reads back as `All`) and `Or(vec![])` `NOT *` (reads
/// back as `Not(All)`), both matching the same documents.
///
/// Some conditions have no syntax: an empty text, name or value, a name that
/// is not simple, a text part named `under` or `prefix`, and a non-recursive
/// `Under`. Such a condition is written in its `Debug` form
/// (`Under { root: "a", recursive: false }`), which `parse` refuses rather
/// than read as a different query.
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_query(f, self, Level::Or)
    }
}

/// The precedence of a context: an operand of `OR`, of `AND`, or of `NOT`.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Level {
    Or,
    And,
    Not,
}

fn write_query(f: &mut fmt::Formatter<'_>, query: &Query, level: Level) -> fmt::Result {
    match query {
        Query::And(operands) | Query::Or(operands) if operands.len() == 1 => write_query(f, &operands[0], level),
        Query::And(operands) if operands.is_empty() => f.write_str("*"),
        Query::Or(operands) if operands.is_empty() => f.write_str("NOT *"),
        Query::And(operands) => write_list(f, operands, " ", Level::And, level > Level::And),
        Query::Or(operands) => write_list(f, operands, " OR ", Level::Or, level > Level::Or),
        Query::Not(inner) => {
            f.write_str("NOT ")?;
            write_query(f, inner, Level::Not)
        }
        Query::All => f.write_str("*"),
        Query::Text { field: None, text } if !text.is_empty() && is_plain_word(text) => f.write_str(text),
        Query::Text { field: Some(name), text }
            if is_part_name(name)
                && !text.is_empty()
                && !(!reads_unquoted(text)
                    || text.starts_with("//")
                    || text.starts_with(':')
                    || wildcard_like(text)) =>
        {
            write!(f, "{name}:{text}")
        }
        // Quotes make a phrase: a `Text` that an unquoted word cannot say
        // has no syntax.
        Query::Text { field, text } => write_unsayable(f, "Text", field, text, None),
        Query::Phrase { field, text, slop } if !text.is_empty() && field.as_deref().is_none_or(is_part_name) => {
            if let Some(name) = field {
                write!(f, "{name}:")?;
            }
            write_quoted(f, text)?;
            if *slop > 0 {
                write!(f, "~{slop}")?;
            }
            Ok(())
        }
        Query::Phrase { field, text, slop } => write_unsayable(f, "Phrase", field, text, Some(*slop)),
        Query::WordPrefix { field, prefix } if written_as_word(field, prefix) => {
            if let Some(name) = field {
                write!(f, "{name}:")?;
            }
            write!(f, "{prefix}*")
        }
        Query::Fuzzy { field, word, distance } if written_as_word(field, word) => {
            if let Some(name) = field {
                write!(f, "{name}:")?;
            }
            write!(f, "{word}~{distance}")
        }
        Query::Meta { name, value } if is_simple_name(name) && !value.is_empty() => {
            write!(f, "@{name}:")?;
            write_value(f, value, false)
        }
        Query::Under { root, recursive: true } if !root.is_empty() => {
            f.write_str("under:")?;
            write_value(f, root, false)
        }
        Query::Prefix(prefix) if !prefix.is_empty() => {
            f.write_str("prefix:")?;
            write_value(f, prefix, false)
        }
        // No syntax for it: the Debug form, which parse refuses (see above).
        other => write!(f, "{other:?}"),
    }
}

/// A text part name the syntax can say (`under` and `prefix` are keywords).
fn is_part_name(name: &str) -> bool {
    is_simple_name(name) && name != "under" && name != "prefix"
}

/// A `Text` or `Phrase` the syntax cannot say, written so that `parse`
/// refuses it: its text, quoted as `Debug` quotes, is followed by a comma
/// (text right after a closing quote).
fn write_unsayable(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    field: &Option<String>,
    text: &str,
    slop: Option<u32>,
) -> fmt::Result {
    write!(f, "{kind} {{ text: {text:?}, field: {field:?}")?;
    if let Some(slop) = slop {
        write!(f, ", slop: {slop}")?;
    }
    f.write_str(" }")
}

fn write_list(
    f: &mut fmt::Formatter<'_>,
    operands: &[Query],
    separator: &str,
    inner: Level,
    parens: bool,
) -> fmt::Result {
    if parens {
        f.write_str("(")?;
    }
    for (i, operand) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_query(f, operand, inner)?;
    }
    if parens {
        f.write_str(")")?;
    }
    Ok(())
}

/// Whether `text`, unquoted, reads back as the word `text`: not an operator,
/// `*`, a meta, a field (or anything else with a colon), nor a value that
/// needs quotes anyway.
fn is_plain_word(text: &str) -> bool {
    !(!reads_unquoted(text)
        || !colon_stays_in_word(text)
        || text.starts_with('@')
        || matches!(text, "AND" | "OR" | "NOT" | "*")
        || wildcard_like(text))
}

/// Whether an unquoted `word` reads as a word, not as `name:value` (a
/// field, `under:`, `prefix:`, or an empty name): as the lexer reads it.
fn colon_stays_in_word(word: &str) -> bool {
    let name = word.find(|c| !is_name_char(c)).unwrap_or(word.len());
    match word[name..].strip_prefix(':') {
        Some(value) => {
            name > 0
                && !matches!(&word[..name], "under" | "prefix")
                && (value.starts_with("//") || value.starts_with(':'))
        }
        None => true,
    }
}

/// Whether a word prefix or fuzzy word (and its field) can be written
/// unquoted, so that it reads back as itself.
fn written_as_word(field: &Option<String>, word: &str) -> bool {
    let field_ok = field.as_deref().is_none_or(|name| is_simple_name(name) && name != "under" && name != "prefix");
    // `AND*`, `a*b*`, `a~2~1` read back as themselves; a colon would make
    // a field, `@` a meta, and `part://…` a URL word.
    field_ok
        && !word.is_empty()
        && !word.contains(ends_term)
        && !word.starts_with('"')
        // A part's value runs to the next space, colons and `@` included.
        && (if field.is_some() {
            !word.starts_with("//") && !word.starts_with(':')
        } else {
            !word.starts_with('@') && colon_stays_in_word(word)
        })
}

/// Whether `text`, unquoted, is read as one term or value: it runs to
/// whitespace or a parenthesis, and a quote opens a quoted string only at
/// its start.
fn reads_unquoted(text: &str) -> bool {
    !text.starts_with('"') && !text.contains(ends_term)
}

/// Whether an unquoted value would not read back as itself.
fn needs_quotes(value: &str) -> bool {
    value.starts_with('"') || value.contains(|c: char| ends_term(c) || c == '"' || c == '\\')
}

fn write_value(f: &mut fmt::Formatter<'_>, value: &str, force_quotes: bool) -> fmt::Result {
    if force_quotes || needs_quotes(value) {
        write_quoted(f, value)
    } else {
        f.write_str(value)
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str) -> Query {
        Query::Text { field: None, text: text.into() }
    }

    fn phrase(text: &str, slop: u32) -> Query {
        Query::Phrase { field: None, text: text.into(), slop }
    }

    #[test]
    fn display_quotes_only_when_needed() {
        let q = Query::And(vec![
            word("plain"),
            phrase("two words", 0),
            phrase("AND", 0),
            word("a+b:c"),
            word(r#"5""#),
            phrase(r#"say "hi" \o/"#, 2),
            Query::Under { root: "file:///share/a".into(), recursive: true },
            Query::Phrase { field: Some("url".into()), text: "//host".into(), slop: 1 },
        ]);
        assert_eq!(
            q.to_string(),
            r#"plain "two words" "AND" a+b:c 5" "say \"hi\" \\o/"~2 under:file:///share/a url:"//host"~1"#
        );
        assert_eq!(Query::parse(&q.to_string()).unwrap(), q);
    }

    #[test]
    fn a_text_that_needs_quotes_is_written_so_that_parse_refuses_it() {
        for q in [word("two words"), word("AND"), word(r#"say "hi""#), word(""), phrase("", 0)] {
            let text = q.to_string();
            assert!(Query::parse(&text).is_err(), "{q:?} written {text}");
        }
    }

    #[test]
    fn a_phrase_is_checked_for_words_and_slop() {
        assert!(phrase("a b", MAX_SLOP).check().is_ok());
        assert!(matches!(phrase("a b", MAX_SLOP + 1).check(), Err(Error::InvalidInput { .. })));
        let Err(Error::InvalidInput { reason }) = phrase("... !", 0).check() else { panic!() };
        assert!(reason.contains("no word"), "{reason}");
    }

    #[test]
    fn display_parenthesises_by_precedence() {
        let (a, b, c) = (word("a"), word("b"), word("c"));
        let q = Query::And(vec![Query::Or(vec![a.clone(), b.clone()]), Query::Not(Box::new(c.clone()))]);
        assert_eq!(q.to_string(), "(a OR b) NOT c");
        let q = Query::Not(Box::new(Query::And(vec![a.clone(), b.clone()])));
        assert_eq!(q.to_string(), "NOT (a b)");
        let q = Query::Or(vec![Query::And(vec![a, b]), c]);
        assert_eq!(q.to_string(), "a b OR c");
    }

    #[test]
    fn backslash_before_another_character_is_kept() {
        assert_eq!(Query::parse(r#""C:\dir\n""#).unwrap(), phrase(r"C:\dir\n", 0));
    }
}
