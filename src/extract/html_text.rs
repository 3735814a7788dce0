//! The sink of [`super::visible_text`]: what it keeps of the tokens
//! html5ever's tokenizer reads from a page, and where it breaks lines.
//!
//! No tree is built: the state is a few counters (open `<template>`s,
//! `<svg>`s and preformatted elements), so deep nesting costs nothing and a
//! misnested page reads as a browser would show it, near enough for search:
//! only the text is kept, never a structure.

use std::cell::RefCell;

use html5ever::local_name;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{Tag, TagKind, Token, TokenSink, TokenSinkResult};
use html5ever::LocalName;

/// Collects the visible text of the tokens it is given.
pub(super) struct TextSink(RefCell<State>);

impl TextSink {
    /// A sink for a page of `len` bytes (`xml`: an XML document, whose
    /// elements all separate words and may close themselves, `<x/>`).
    pub(super) fn new(len: usize, xml: bool) -> TextSink {
        TextSink(RefCell::new(State {
            // Most of a page is markup.
            text: String::with_capacity(len / 4),
            gap: Gap::None,
            skip_raw: false,
            templates: 0,
            svgs: 0,
            pre: 0,
            drop_lf: false,
            in_head: !xml,
            xml,
        }))
    }

    /// The text collected.
    pub(super) fn into_text(self) -> String {
        self.0.into_inner().text
    }
}

impl TokenSink for TextSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        let mut state = self.0.borrow_mut();
        match token {
            Token::CharacterTokens(text) => state.characters(&text),
            Token::TagToken(tag) => return state.tag(&tag),
            // Comments, the doctype, NUL characters (a browser drops them
            // from the text too), parse errors and the end.
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// What separates the next word from the text before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    None,
    Space,
    Line,
}

struct State {
    text: String,
    /// Owed before the next word (none at the start of the text).
    gap: Gap,
    /// In the raw text of a `<script>`, `<style>`, `<noscript>`, ... or of
    /// the head's `<title>`, which is not shown: the tokenizer gives no tag
    /// before the element's end tag.
    skip_raw: bool,
    /// Open `<template>`s: markup for scripts to use, not shown.
    templates: u32,
    /// Open `<svg>`s: drawings, whose `<title>`s are tooltips.
    svgs: u32,
    /// Open `<pre>`-like elements: whitespace kept as written.
    pre: u32,
    /// A line feed right after `<pre>`, `<listing>` or `<textarea>` is not
    /// part of its text.
    drop_lf: bool,
    /// Still in the head, where a `<title>` is the page's title, not text:
    /// until `</head>`, text, or an element the head does not hold.
    in_head: bool,
    xml: bool,
}

impl State {
    fn hidden(&self) -> bool {
        self.skip_raw || self.templates > 0 || self.svgs > 0
    }

    fn characters(&mut self, text: &str) {
        if self.hidden() {
            return;
        }
        let text = match std::mem::take(&mut self.drop_lf) {
            true => text.strip_prefix('\n').unwrap_or(text),
            false => text,
        };
        if self.pre > 0 {
            if !text.is_empty() {
                self.in_head = false;
                self.push_gap();
                self.text.push_str(text);
            }
            return;
        }
        self.words(text);
    }

    /// The words of `text`, whitespace between them collapsed.
    fn words(&mut self, text: &str) {
        let mut first = true;
        for word in text.split(is_html_space) {
            if !first {
                self.gap = self.gap.max(Gap::Space);
            }
            first = false;
            if !word.is_empty() {
                self.in_head = false;
                self.push_gap();
                self.text.push_str(word);
            }
        }
    }

    fn push_gap(&mut self) {
        let gap = std::mem::replace(&mut self.gap, Gap::None);
        let last = self.text.as_bytes().last().copied();
        match (gap, last) {
            (_, None) | (Gap::None, _) | (_, Some(b'\n')) => {}
            (Gap::Space, Some(b)) if is_html_space(char::from(b)) => {}
            (Gap::Space, _) => self.text.push(' '),
            (Gap::Line, _) => self.text.push('\n'),
        }
    }

    fn tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        // In raw text the only tag the tokenizer gives is the element's end.
        self.skip_raw = false;
        self.drop_lf = false;
        let start = tag.kind == TagKind::StartTag;
        let name = &tag.name;
        // `<x/>` is an empty element in XML and in SVG (`<svg/>` too); in
        // HTML the slash means nothing (`<div/>` opens a div).
        let foreign = self.xml || self.svgs > 0 || *name == local_name!("svg");
        let closed = start && tag.self_closing && foreign;
        if (start && self.in_head && !in_head(name)) || (!start && *name == local_name!("head")) {
            self.in_head = false;
        }
        if start && self.svgs > 0 && breaks_out_of_svg(name) {
            // As a browser's parser does: an HTML element ends the drawing.
            self.svgs = 0;
        }
        if self.xml {
            self.gap = self.gap.max(Gap::Space);
        }
        if start && !closed {
            // The elements whose content the tokenizer must read as raw
            // text (RCDATA for `<title>` and `<textarea>`: entities, no
            // tags), as a browser's parser tells it to (with scripting on).
            let raw = match *name {
                local_name!("script") => Some((RawKind::ScriptData, false)),
                local_name!("style")
                | local_name!("noscript")
                | local_name!("iframe")
                | local_name!("noembed")
                | local_name!("noframes") => Some((RawKind::Rawtext, false)),
                local_name!("xmp") => Some((RawKind::Rawtext, true)),
                local_name!("textarea") => Some((RawKind::Rcdata, true)),
                local_name!("title") => Some((RawKind::Rcdata, !self.in_head)),
                local_name!("plaintext") => {
                    // The rest of the page is its text.
                    self.pre += 1;
                    self.gap = Gap::Line;
                    return TokenSinkResult::Plaintext;
                }
                _ => None,
            };
            if let Some((kind, shown)) = raw {
                self.skip_raw = !shown;
                if shown {
                    self.gap = Gap::Line;
                    if *name != local_name!("title") {
                        self.pre += 1;
                        self.drop_lf = *name == local_name!("textarea");
                    }
                }
                return TokenSinkResult::RawData(kind);
            }
        }
        let count = |open: &mut u32| match (start, closed) {
            (true, false) => *open = open.saturating_add(1),
            (true, true) => {}
            (false, _) => *open = open.saturating_sub(1),
        };
        match *name {
            local_name!("template") => count(&mut self.templates),
            local_name!("svg") => count(&mut self.svgs),
            local_name!("pre") | local_name!("listing") | local_name!("xmp") | local_name!("textarea") => {
                count(&mut self.pre);
                self.drop_lf = start && !closed && *name != local_name!("xmp");
                self.gap = Gap::Line;
            }
            local_name!("img") if start && !self.hidden() => {
                if let Some(alt) = tag.attrs.iter().find(|a| a.name.local == local_name!("alt")) {
                    self.gap = self.gap.max(Gap::Space);
                    self.words(&alt.value);
                    self.gap = self.gap.max(Gap::Space);
                }
            }
            // A link's text is a word apart: pages set links next to
            // labels and versions that their styles, not spaces, separate
            // (`<a>FRAC_1_SQRT_3</a><span class=stab>Experimental</span>`).
            // So is a superscript (`2<sup>n</sup>`: 2 and n), not a
            // subscript (`log<sub>10</sub>`: log10).
            local_name!("a") | local_name!("sup") | local_name!("input") => self.gap = self.gap.max(Gap::Space),
            _ if is_block(name) => self.gap = Gap::Line,
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// HTML's whitespace (ASCII, without vertical tab): what separates words
/// outside `<pre>`; a no-break space does not.
fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// The elements a head holds; any other starts the body.
fn in_head(name: &LocalName) -> bool {
    matches!(
        *name,
        local_name!("html")
            | local_name!("head")
            | local_name!("title")
            | local_name!("meta")
            | local_name!("link")
            | local_name!("base")
            | local_name!("basefont")
            | local_name!("bgsound")
            | local_name!("script")
            | local_name!("style")
            | local_name!("noscript")
            | local_name!("template")
            | local_name!("noframes")
    )
}

/// The HTML elements that end an `<svg>` they appear in (the HTML parsing
/// rules for foreign content; `<font>` left out).
fn breaks_out_of_svg(name: &LocalName) -> bool {
    matches!(
        *name,
        local_name!("b")
            | local_name!("big")
            | local_name!("blockquote")
            | local_name!("body")
            | local_name!("br")
            | local_name!("center")
            | local_name!("code")
            | local_name!("dd")
            | local_name!("div")
            | local_name!("dl")
            | local_name!("dt")
            | local_name!("em")
            | local_name!("embed")
            | local_name!("head")
            | local_name!("hr")
            | local_name!("i")
            | local_name!("img")
            | local_name!("li")
            | local_name!("listing")
            | local_name!("menu")
            | local_name!("meta")
            | local_name!("nobr")
            | local_name!("ol")
            | local_name!("p")
            | local_name!("pre")
            | local_name!("ruby")
            | local_name!("s")
            | local_name!("small")
            | local_name!("span")
            | local_name!("strong")
            | local_name!("strike")
            | local_name!("sub")
            | local_name!("sup")
            | local_name!("table")
            | local_name!("tt")
            | local_name!("u")
            | local_name!("ul")
            | local_name!("var")
    ) || is_heading(name)
}

/// The elements a browser shows as blocks (or table cells, or list items,
/// or lines): the text before and after them is on other lines.
fn is_block(name: &LocalName) -> bool {
    matches!(
        *name,
        local_name!("address")
            | local_name!("article")
            | local_name!("aside")
            | local_name!("blockquote")
            | local_name!("body")
            | local_name!("br")
            | local_name!("button")
            | local_name!("caption")
            | local_name!("center")
            | local_name!("dd")
            | local_name!("details")
            | local_name!("dialog")
            | local_name!("dir")
            | local_name!("div")
            | local_name!("dl")
            | local_name!("dt")
            | local_name!("fieldset")
            | local_name!("figcaption")
            | local_name!("figure")
            | local_name!("footer")
            | local_name!("form")
            | local_name!("frame")
            | local_name!("frameset")
            | local_name!("header")
            | local_name!("hgroup")
            | local_name!("hr")
            | local_name!("html")
            | local_name!("legend")
            | local_name!("li")
            | local_name!("main")
            | local_name!("menu")
            | local_name!("nav")
            | local_name!("ol")
            | local_name!("optgroup")
            | local_name!("option")
            | local_name!("p")
            | local_name!("section")
            | local_name!("select")
            | local_name!("summary")
            | local_name!("table")
            | local_name!("tbody")
            | local_name!("td")
            | local_name!("tfoot")
            | local_name!("th")
            | local_name!("thead")
            | local_name!("title")
            | local_name!("tr")
            | local_name!("ul")
    ) || is_heading(name)
}

/// `<h1>` to `<h6>`.
fn is_heading(name: &LocalName) -> bool {
    matches!(
        *name,
        local_name!("h1")
            | local_name!("h2")
            | local_name!("h3")
            | local_name!("h4")
            | local_name!("h5")
            | local_name!("h6")
    )
}
