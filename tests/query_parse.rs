//! `Query::parse` implements API.md's query syntax exactly (precedence,
//! quoting, fields, metas, folders, prefixes, errors with their byte
//! position), and `Display` writes every query back in a form that parses to
//! the same query, or (for what the syntax cannot say) to an error.

use proptest::prelude::*;
use pushdex::{Error, Query};

use Query::{All, And, Not, Or};

fn parse(text: &str) -> Query {
    match Query::parse(text) {
        Ok(q) => q,
        Err(e) => panic!("{text:?} does not parse: {e}"),
    }
}

fn w(text: &str) -> Query {
    Query::Text { field: None, text: text.into() }
}

fn field(name: &str, text: &str) -> Query {
    Query::Text { field: Some(name.into()), text: text.into() }
}

fn meta(name: &str, value: &str) -> Query {
    Query::Meta { name: name.into(), value: value.into() }
}

fn under(root: &str) -> Query {
    Query::Under { root: root.into(), recursive: true }
}

fn prefix(p: &str) -> Query {
    Query::Prefix(p.into())
}

fn not(q: Query) -> Query {
    Not(Box::new(q))
}

/// The reason of the InvalidInput that `text` must fail with.
fn error(text: &str) -> String {
    match Query::parse(text) {
        Err(Error::InvalidInput { reason }) => reason,
        other => panic!("{text:?}: expected InvalidInput, got {other:?}"),
    }
}

#[track_caller]
fn assert_error(text: &str, at: usize, what: &str) {
    let reason = error(text);
    let expected = format!("at byte {at}: ");
    assert!(reason.starts_with(&expected), "{text:?}: {reason:?} does not start with {expected:?}");
    assert!(reason.contains(what), "{text:?}: {reason:?} does not mention {what:?}");
}

#[test]
fn words_and_phrases_search_every_text_part() {
    assert_eq!(parse("report"), w("report"));
    assert_eq!(parse("  report\t"), w("report"));
    assert_eq!(parse(r#""quarterly report""#), w("quarterly report"));
    // A phrase keeps its whole text, spaces and case included.
    assert_eq!(parse(r#"" Quarterly  REPORT ""#), w(" Quarterly  REPORT "));
    assert_eq!(parse(r#""a" "b""#), And(vec![w("a"), w("b")]));
    // Case is the analyser's business, not the parser's.
    assert_eq!(parse("RePoRt"), w("RePoRt"));
    // Punctuation inside a word stays: a word runs to whitespace or a parenthesis.
    assert_eq!(parse("don't e-mail 3.14 a+b"), And(vec![w("don't"), w("e-mail"), w("3.14"), w("a+b")]));
    assert_eq!(parse("naïve 日本語"), And(vec![w("naïve"), w("日本語")]));
}

#[test]
fn quotes_escape_quote_and_backslash() {
    assert_eq!(parse(r#""say \"hi\"""#), w(r#"say "hi""#));
    assert_eq!(parse(r#""back\\slash""#), w(r"back\slash"));
    // A backslash before any other character is itself.
    assert_eq!(parse(r#""C:\dir""#), w(r"C:\dir"));
    // Inside quotes, operators, parentheses and colons are text.
    assert_eq!(parse(r#""a AND (b) OR c:d @e:f *""#), w("a AND (b) OR c:d @e:f *"));
    assert_eq!(parse(r#""AND""#), w("AND"));
    assert_eq!(parse(r#""*""#), w("*"));
    // A quote that does not start a term is an ordinary character.
    assert_eq!(parse(r#"5" screen"#), And(vec![w("5\""), w("screen")]));
    // A quoted term may touch a parenthesis.
    assert_eq!(parse(r#"("a b")"#), w("a b"));
}

#[test]
fn lower_case_operators_are_words() {
    assert_eq!(parse("a and b"), And(vec![w("a"), w("and"), w("b")]));
    assert_eq!(parse("a or b"), And(vec![w("a"), w("or"), w("b")]));
    assert_eq!(parse("not a"), And(vec![w("not"), w("a")]));
    assert_eq!(parse("And Or Not"), And(vec![w("And"), w("Or"), w("Not")]));
    // Operators are whole terms: "ANDROID" and "NOTE" are words.
    assert_eq!(parse("ANDROID NOTE"), And(vec![w("ANDROID"), w("NOTE")]));
}

#[test]
fn juxtaposition_and_explicit_operators_build_flat_lists() {
    assert_eq!(parse("a b c"), And(vec![w("a"), w("b"), w("c")]));
    assert_eq!(parse("a AND b c AND d"), And(vec![w("a"), w("b"), w("c"), w("d")]));
    assert_eq!(parse("a OR b OR c"), Or(vec![w("a"), w("b"), w("c")]));
    // Parentheses around the same operator are flattened; around another, kept.
    assert_eq!(parse("a (b c)"), And(vec![w("a"), w("b"), w("c")]));
    assert_eq!(parse("(a b) (c d)"), And(vec![w("a"), w("b"), w("c"), w("d")]));
    assert_eq!(parse("(a OR b) OR (c OR d)"), Or(vec![w("a"), w("b"), w("c"), w("d")]));
    assert_eq!(parse("(a OR b) (c OR d)"), And(vec![Or(vec![w("a"), w("b")]), Or(vec![w("c"), w("d")])]));
    // A lone operand is not wrapped.
    assert_eq!(parse("(a)"), w("a"));
    assert_eq!(parse("((((a))))"), w("a"));
    assert_eq!(parse("NOT NOT a"), not(not(w("a"))));
    assert_eq!(parse("NOT (a b)"), not(And(vec![w("a"), w("b")])));
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    assert_eq!(parse("a OR b c"), Or(vec![w("a"), And(vec![w("b"), w("c")])]));
    assert_eq!(parse("a b OR c"), Or(vec![And(vec![w("a"), w("b")]), w("c")]));
    assert_eq!(parse("a AND b OR c AND d"), Or(vec![And(vec![w("a"), w("b")]), And(vec![w("c"), w("d")])]));
    assert_eq!(parse("NOT a b"), And(vec![not(w("a")), w("b")]));
    assert_eq!(parse("NOT a OR b"), Or(vec![not(w("a")), w("b")]));
    assert_eq!(parse("a OR NOT b AND c"), Or(vec![w("a"), And(vec![not(w("b")), w("c")])]));
    assert_eq!(parse("a NOT b"), And(vec![w("a"), not(w("b"))]));
    assert_eq!(parse("(a OR b) c"), And(vec![Or(vec![w("a"), w("b")]), w("c")]));
    assert_eq!(parse("NOT (a OR b) c"), And(vec![not(Or(vec![w("a"), w("b")])), w("c")]));
    assert_eq!(parse("a OR (b OR c) d"), Or(vec![w("a"), And(vec![Or(vec![w("b"), w("c")]), w("d")])]));
}

#[test]
fn fields_search_one_text_part() {
    assert_eq!(parse("title:report"), field("title", "report"));
    assert_eq!(parse(r#"title:"annual report""#), field("title", "annual report"));
    assert_eq!(parse("dc.title:x my_part:y x-1:z Überschrift:w"), {
        And(vec![field("dc.title", "x"), field("my_part", "y"), field("x-1", "z"), field("Überschrift", "w")])
    });
    // An unquoted value runs to whitespace or a parenthesis, colons and quotes included.
    assert_eq!(parse("title:a:b"), field("title", "a:b"));
    assert_eq!(parse(r#"title:a"b"#), field("title", "a\"b"));
    assert_eq!(parse("(title:a)"), field("title", "a"));
    // Field names are case-sensitive, and keywords are lower case only.
    assert_eq!(parse("Title:a Under:b"), And(vec![field("Title", "a"), field("Under", "b")]));
    // Values are never operators.
    assert_eq!(parse("title:AND"), field("title", "AND"));
    assert_eq!(parse("title:*"), field("title", "*"));
}

#[test]
fn a_colon_after_something_else_than_a_simple_name_is_part_of_a_word() {
    assert_eq!(parse("http://example.com/a"), w("http://example.com/a"));
    assert_eq!(parse("file:///share/a"), w("file:///share/a"));
    assert_eq!(parse("a+b:c"), w("a+b:c"));
    assert_eq!(parse("¿qué?:x"), w("¿qué?:x"));
    assert_eq!(parse("x@y:z"), w("x@y:z"));
    // A path of a programming language (`::`) is a word too.
    assert_eq!(parse("std::fs::read_to_string"), w("std::fs::read_to_string"));
    assert_eq!(parse("title::x"), w("title::x"));
    // Quoted, a `//` value is a field value after all.
    assert_eq!(parse(r#"url:"//host/a""#), field("url", "//host/a"));
    // But a scheme-like name with a single slash is a field.
    assert_eq!(parse("mailto:joe"), field("mailto", "joe"));
    assert_eq!(parse(r#""mailto:joe""#), w("mailto:joe"));
}

#[test]
fn metas_match_exact_values() {
    assert_eq!(parse("@lang:en"), meta("lang", "en"));
    assert_eq!(parse(r#"@author:"Ada Lovelace""#), meta("author", "Ada Lovelace"));
    assert_eq!(parse("@Lang:EN"), meta("Lang", "EN"));
    assert_eq!(parse("@content-type:text/plain;charset=utf-8"), meta("content-type", "text/plain;charset=utf-8"));
    assert_eq!(parse("@source://host"), meta("source", "//host"));
    assert_eq!(parse("@a:b NOT @c:d"), And(vec![meta("a", "b"), not(meta("c", "d"))]));
}

#[test]
fn under_and_prefix_take_a_raw_value() {
    assert_eq!(parse("under:file:///share/a"), under("file:///share/a"));
    assert_eq!(parse(r#"under:"my docs/2024""#), under("my docs/2024"));
    assert_eq!(parse("under:/usr"), under("/usr"));
    assert_eq!(parse("under://server/share"), under("//server/share"));
    assert_eq!(parse("prefix:eno:bo:master"), prefix("eno:bo:master"));
    assert_eq!(parse(r#"prefix:"a b""#), prefix("a b"));
    // A parenthesis ends an unquoted value.
    assert_eq!(parse("(under:a/b)"), under("a/b"));
    assert_eq!(parse("under:a(b)"), And(vec![under("a"), w("b")]));
    assert_eq!(parse("report under:x OR prefix:y"), Or(vec![And(vec![w("report"), under("x")]), prefix("y")]));
}

#[test]
fn star_is_everything() {
    assert_eq!(parse("*"), All);
    assert_eq!(parse("NOT *"), not(All));
    assert_eq!(parse("* NOT @a:b"), And(vec![All, not(meta("a", "b"))]));
    // Only a lone `*`: no wildcards.
    // API.md's second part: `word*` is a word prefix (`**`: the prefix
    // `*`, which search refuses: no letter or digit).
    assert_eq!(parse("rep*"), Query::WordPrefix { field: None, prefix: "rep".into() });
    assert_eq!(parse("**"), Query::WordPrefix { field: None, prefix: "*".into() });
    assert_eq!(parse(r#""rep*""#), w("rep*"));
}

#[test]
fn errors_name_the_byte_position() {
    assert_error("", 0, "empty query");
    assert_error(" \t\n ", 0, "empty query");
    // Quotes.
    assert_error(r#"a "bc"#, 2, "unclosed quote");
    assert_error(r#""a\""#, 0, "unclosed quote");
    assert_error(r#"title:"x"#, 6, "unclosed quote");
    assert_error(r#""a"b"#, 3, "closing quote");
    assert_error(r#"x ""#, 2, "unclosed quote");
    assert_error(r#"x """#, 2, "empty quoted phrase");
    // Parentheses.
    assert_error("(a", 0, "unclosed parenthesis");
    assert_error("a (b (c)", 2, "unclosed parenthesis");
    assert_error("(", 0, "unclosed parenthesis");
    assert_error("a)", 1, "unmatched ')'");
    assert_error(")", 0, "unmatched ')'");
    assert_error("(a))", 3, "unmatched ')'");
    assert_error("()", 0, "empty parentheses");
    assert_error("a ( ) b", 2, "empty parentheses");
    // Operators without an operand.
    assert_error("a AND", 5, "AND needs a term after it");
    assert_error("a OR", 4, "OR needs a term after it");
    assert_error("NOT", 3, "NOT needs a term after it");
    assert_error("a NOT ", 6, "NOT needs a term after it");
    assert_error("OR b", 0, "OR needs a term before it");
    assert_error("AND b", 0, "AND needs a term before it");
    assert_error("a AND OR b", 6, "AND needs a term after it, found OR");
    assert_error("a OR OR b", 5, "OR needs a term after it, found OR");
    assert_error("NOT AND a", 4, "NOT needs a term after it, found AND");
    assert_error("(a OR) b", 5, "OR needs a term after it, found ')'");
    assert_error("(OR a)", 1, "OR needs a term before it");
    // Empty names and values.
    assert_error(":x", 0, "empty field name");
    assert_error("a :", 2, "empty field name");
    assert_error("body:", 5, "body: needs a value");
    assert_error("body: x", 5, "body: needs a value");
    assert_error("(body:)", 6, "body: needs a value");
    assert_error(r#"body:"""#, 5, "empty value");
    assert_error("@:x", 1, "empty meta name");
    assert_error("@", 1, "empty meta name");
    assert_error(r#"@"a":b"#, 1, "empty meta name");
    assert_error("@a:", 3, "@a: needs a value");
    assert_error("x @a:", 5, "@a: needs a value");
    assert_error("under:", 6, "under: needs a value");
    assert_error("prefix:", 7, "prefix: needs a value");
    assert_error(r#"under:"""#, 6, "empty value");
    // A meta without a value.
    assert_error("@author", 7, "@author needs ':value'");
    assert_error("@author x", 7, "@author needs ':value'");
    assert_error("(@author)", 8, "@author needs ':value'");
    assert_error("@a!b:c", 2, "meta name");
    // Positions count bytes, not characters.
    assert_error("é \"", 3, "unclosed quote");
}

#[test]
fn nesting_is_limited() {
    let deep = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(parse(&deep(256)), w("a"));
    assert_error(&deep(257), 256, "nested deeper than 256");
    let nots = |n: usize| format!("{}a", "NOT ".repeat(n));
    assert!(Query::parse(&nots(256)).is_ok());
    assert_error(&nots(257), 1024, "nested deeper than 256");
    // Long flat queries are not nesting.
    let long = vec!["a"; 10_000].join(" OR ");
    assert!(matches!(parse(&long), Or(v) if v.len() == 10_000));
}

#[test]
fn display_writes_the_syntax() {
    let q = Or(vec![
        And(vec![w("quarterly report"), field("title", "plan"), meta("lang", "en")]),
        not(Or(vec![under("file:///share/a b"), prefix("x:y")])),
        All,
    ]);
    assert_eq!(
        q.to_string(),
        r#""quarterly report" title:plan @lang:en OR NOT (under:"file:///share/a b" OR prefix:x:y) OR *"#
    );
    assert_eq!(parse(&q.to_string()), q);
    assert_eq!(And(vec![]).to_string(), "*");
    assert_eq!(Or(vec![]).to_string(), "NOT *");
    assert_eq!(And(vec![w("a")]).to_string(), "a");
}

#[test]
fn what_the_syntax_cannot_say_is_written_so_that_parse_refuses_it() {
    for q in [
        Query::Under { root: "a".into(), recursive: false },
        field("under", "x"),
        field("prefix", "x"),
        field("my part", "x"),
        field("title", ""),
        w(""),
        meta("", "x"),
        meta("a b", "x"),
        meta("a", ""),
        under(""),
        prefix(""),
    ] {
        let text = q.to_string();
        assert!(Query::parse(&text).is_err(), "{q:?} written as {text:?} parses");
        let inside = And(vec![w("a"), Or(vec![w("b"), q.clone()])]).to_string();
        assert!(Query::parse(&inside).is_err(), "{q:?} written as {inside:?} parses");
    }
}

/// The tree `parse` builds for what `Display` writes: lists of one operand
/// are that operand, a list inside a list of the same kind is spliced in,
/// `And([])` is `All` and `Or([])` is `Not(All)` (Display writes them `*`
/// and `NOT *`).
fn normalize(q: Query) -> Query {
    fn list(operands: Vec<Query>, is_and: bool) -> Query {
        let mut flat = Vec::new();
        for operand in operands {
            match (normalize(operand), is_and) {
                (And(inner), true) | (Or(inner), false) => flat.extend(inner),
                (operand, _) => flat.push(operand),
            }
        }
        match (flat.len(), is_and) {
            (0, true) => All,
            (0, false) => not(All),
            (1, _) => flat.pop().unwrap(),
            (_, true) => And(flat),
            (_, false) => Or(flat),
        }
    }
    match q {
        And(operands) => list(operands, true),
        Or(operands) => list(operands, false),
        Not(inner) => not(normalize(*inner)),
        leaf => leaf,
    }
}

/// Whether the syntax can say every condition of `q`.
fn expressible(q: &Query) -> bool {
    let simple = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c));
    match q {
        All => true,
        Query::Text { field: None, text } => !text.is_empty(),
        Query::Text { field: Some(name), text } => {
            simple(name) && name != "under" && name != "prefix" && !text.is_empty()
        }
        Query::Meta { name, value } => simple(name) && !value.is_empty(),
        Query::Under { root, recursive } => *recursive && !root.is_empty(),
        Query::Prefix(p) => !p.is_empty(),
        And(qs) | Or(qs) => qs.iter().all(expressible),
        Not(q) => expressible(q),
        // Ranked OR has no syntax in `parse` (parse_natural makes it).
        Query::Any { .. } => false,
        Query::WordPrefix { field, prefix: word } | Query::Fuzzy { field, word, .. } => {
            field.as_deref().is_none_or(|n| {
                simple(n) && n != "under" && n != "prefix" && !word.starts_with("//") && !word.starts_with(':')
            }) && !word.is_empty()
                && !word.contains(|c: char| c.is_whitespace() || "()".contains(c))
                && !word.starts_with('"')
                && (field.is_some() || !word.starts_with('@'))
                && (field.is_some() || {
                    // As the lexer reads `name:value`: a URL stays a word.
                    let name = word.find(|c: char| !(c.is_alphanumeric() || "_-.".contains(c))).unwrap_or(word.len());
                    match word[name..].strip_prefix(':') {
                        Some(value) => {
                            name > 0
                                && !["under", "prefix"].contains(&&word[..name])
                                && (value.starts_with("//") || value.starts_with(':'))
                        }
                        None => true,
                    }
                })
        }
    }
}

/// Values full of what needs quoting: spaces, quotes, backslashes,
/// parentheses, colons, operators, `*`, `@`, `//`.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,5}",
        r#"[a-zA-Zé0-9 \t():"\\@*/.-]{1,10}"#,
        prop::sample::select(vec![
            "AND",
            "OR",
            "NOT",
            "*",
            "a AND b",
            "x OR",
            "(",
            ")",
            "\"",
            "\\",
            "\\\"",
            "//x",
            "http://a/b",
            "a:b",
            ":",
            "@m:v",
            "under:x",
            "prefix:y",
            " ",
            "é",
        ])
        .prop_map(String::from),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{1,5}", "[a-zA-Z0-9_.é-]{1,6}", Just("under".to_string()), Just("prefix".to_string())]
}

/// A text part name the syntax can say: `under` and `prefix` are keywords.
fn part_name() -> impl Strategy<Value = String> {
    name().prop_filter("a keyword", |n| n != "under" && n != "prefix")
}

/// Leaves the syntax can say (`expressible`).
fn leaf() -> impl Strategy<Value = Query> {
    prop_oneof![
        Just(All),
        value().prop_map(|text| Query::Text { field: None, text }),
        (part_name(), value()).prop_map(|(name, text)| Query::Text { field: Some(name), text }),
        (name(), value()).prop_map(|(name, value)| Query::Meta { name, value }),
        value().prop_map(|root| Query::Under { root, recursive: true }),
        value().prop_map(Query::Prefix),
    ]
}

/// Leaves the syntax cannot say, besides `leaf()`'s.
fn any_leaf() -> impl Strategy<Value = Query> {
    prop_oneof![
        4 => leaf(),
        1 => prop_oneof![
            Just(w("")),
            Just(field("a", "")),
            Just(meta("a", "")),
            Just(under("")),
            Just(prefix("")),
            prop::sample::select(vec!["under", "prefix"]).prop_map(|name| field(name, "x")),
            "[a-z]{0,3}[ :@()\"]".prop_map(|name| field(&name, "x")),
            "[a-z]{0,3}[ :@()\"]".prop_map(|name| meta(&name, "x")),
            value().prop_map(|root| Query::Under { root, recursive: false }),
        ],
    ]
}

fn tree(leaf: impl Strategy<Value = Query> + 'static) -> impl Strategy<Value = Query> {
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(And),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Or),
            inner.prop_map(not),
        ]
    })
}

/// Scraps of syntax, good and bad, to throw at the parser.
fn scraps() -> impl Strategy<Value = String> {
    let scrap = prop::sample::select(vec![
        "a", "B", "AND", "OR", "NOT", "and", "(", ")", "\"", "\\", "*", ":", "@", "@m:", "t:", "under:", "prefix:",
        "http://", "//", "x y", "é", "\t",
    ]);
    let sep = prop::sample::select(vec!["", " "]);
    prop::collection::vec((scrap, sep), 0..14).prop_map(|parts| parts.into_iter().flat_map(|(a, b)| [a, b]).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn display_then_parse_gives_the_normalized_query(q in tree(leaf())) {
        prop_assert!(expressible(&q));
        let text = q.to_string();
        match Query::parse(&text) {
            Ok(back) => prop_assert_eq!(back, normalize(q), "written as {:?}", text),
            Err(e) => prop_assert!(false, "{:?} written as {:?} does not parse: {}", q, text, e),
        }
    }

    #[test]
    fn display_never_reads_back_as_another_query(q in tree(any_leaf())) {
        let text = q.to_string();
        match Query::parse(&text) {
            Ok(back) => {
                prop_assert!(expressible(&q), "{:?} written as {:?} parses as {:?}", q, text, back);
                prop_assert_eq!(back, normalize(q), "written as {:?}", text);
            }
            Err(_) => prop_assert!(!expressible(&q), "{:?} written as {:?} does not parse", q, text),
        }
    }

    #[test]
    fn what_parses_writes_back_to_itself(text in scraps()) {
        // Never a panic; errors are InvalidInput with a position inside the text.
        match Query::parse(&text) {
            Ok(q) => {
                prop_assert_eq!(normalize(q.clone()), q.clone(), "parse built an unnormalized tree");
                prop_assert_eq!(Query::parse(&q.to_string()).ok(), Some(q));
            }
            Err(Error::InvalidInput { reason }) => {
                let at: usize = reason
                    .strip_prefix("at byte ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(usize::MAX);
                prop_assert!(at <= text.len(), "{:?}: {:?}", text, reason);
            }
            Err(e) => prop_assert!(false, "{:?}: unexpected error {:?}", text, e),
        }
    }
}

fn natural(text: &str) -> Query {
    match Query::parse_natural(text) {
        Ok(q) => q,
        Err(e) => panic!("{text:?} does not parse naturally: {e}"),
    }
}

fn any(text: &str, min_should_match: usize) -> Query {
    Query::Any { field: None, text: text.into(), min_should_match }
}

/// `parse_natural` (API.md, "Search, second part"): runs of juxtaposed bare
/// words are one ranked `Any` needing ⌈2n/3⌉ of their n distinct words;
/// `+word` is required, `-word` excluded; everything else as in `parse`.
#[test]
fn natural_parsing_ranks_runs_of_bare_words() {
    assert_eq!(natural("word"), w("word"));
    assert_eq!(natural("ssh key"), any("ssh key", 2));
    assert_eq!(natural("zstd compression level"), any("zstd compression level", 2));
    assert_eq!(natural("a b c d"), any("a b c d", 3));
    assert_eq!(natural("a b c d e f"), any("a b c d e f", 4));
    // Distinct words, after analysis.
    assert_eq!(natural("Key key KEY door"), any("Key key KEY door", 2));
    assert_eq!(natural("+rust a b -java"), And(vec![w("rust"), any("a b", 2), not(w("java"))]));
    assert_eq!(natural("a b -c d e"), And(vec![any("a b", 2), not(w("c")), any("d e", 2)]));
    // Operators, quotes, fields, metas, folders and parentheses end a run.
    assert_eq!(natural("a AND b c"), And(vec![w("a"), any("b c", 2)]));
    assert_eq!(natural("a b AND c"), And(vec![any("a b", 2), w("c")]));
    assert_eq!(natural("a b OR c d e"), Or(vec![any("a b", 2), any("c d e", 2)]));
    assert_eq!(natural(r#""a b" c d"#), And(vec![w("a b"), any("c d", 2)]));
    assert_eq!(natural("title:x a b @lang:en"), And(vec![field("title", "x"), any("a b", 2), meta("lang", "en")]));
    assert_eq!(natural("under:/share a b"), And(vec![under("/share"), any("a b", 2)]));
    assert_eq!(natural("NOT a b"), And(vec![not(w("a")), w("b")]));
    assert_eq!(natural("(a b) c"), And(vec![any("a b", 2), w("c")]));
    assert_eq!(natural("* a"), And(vec![All, w("a")]));
    // A lone sign is a word (which search then refuses: it has no letter).
    assert_eq!(natural("+"), w("+"));
    assert_eq!(natural("a -"), any("a -", 1));
    // `parse` is unchanged: juxtaposition is AND, signs are part of words.
    assert_eq!(parse("a b"), And(vec![w("a"), w("b")]));
    assert_eq!(parse("+a -b"), And(vec![w("+a"), w("-b")]));
    // Errors are parse's.
    for bad in ["", "a AND", "(a b", "a b)", "OR a"] {
        assert!(matches!(Query::parse_natural(bad), Err(Error::InvalidInput { .. })), "{bad:?}");
    }
}
