//! Text extraction: what a file or a part says, as words to index.
//!
//! One place for the conversions that the directory source (at import) and
//! the server (HTML parts pushed over HTTP) share, so that a page reads the
//! same whichever way it came in:
//!
//! * [`visible_text`]: HTML or XML to its visible text (tags, scripts and
//!   styles dropped, entities decoded, blocks on lines of their own), with
//!   `html5ever`'s tokenizer;
//! * [`html_title`]: an HTML page's `<title>`, whitespace collapsed and
//!   entities decoded;
//! * [`gunzip`]: a gzip stream decompressed, never past a size limit (a
//!   decompression bomb stops at the limit);
//! * [`markdown_title`]: a Markdown file's first `# ` heading.
//!
//! The first three need the `extract` feature (`flate2` and `html5ever`);
//! [`markdown_title`] needs nothing.

/// The longest title kept, in bytes (cut at a character boundary): a title
/// is a line to show above a hit, not a second copy of the page.
pub(crate) const MAX_TITLE_BYTES: usize = 1024;

#[cfg(feature = "extract")]
mod html_text;

/// The visible text of an HTML (or XML) document: no tags, comments,
/// scripts, styles or `<head>` (its `<title>` is [`html_title`]'s), entities
/// decoded, runs of whitespace made one space (kept as written inside
/// `<pre>`), and a line break where a block (a paragraph, heading, list
/// item, table cell, `<br>`, ...) starts or ends, so that the words of two
/// cells or two items never run together. Images give their `alt` text.
///
/// One pass of html5ever's tokenizer (the first stage of a browser's
/// parser: the same tags, entities and raw-text elements a browser sees),
/// without building a tree: the work and the memory are linear in the
/// input whatever its nesting, and only a few counters are kept.
#[cfg(feature = "extract")]
pub(crate) fn visible_text(html: &str) -> String {
    text_of(html, false)
}

/// The visible text of `html` ([`visible_text`]), or of an XML document
/// (`xml`: every element separates words, and `<x/>` is empty).
#[cfg(feature = "extract")]
fn text_of(html: &str, xml: bool) -> String {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, Tokenizer, TokenizerOpts};
    /// The tokenizer's buffers are tendrils, whose length is a `u32`: the
    /// input goes in as pieces of at most this many bytes.
    const PIECE: usize = 1 << 20;
    let input = BufferQueue::default();
    let mut rest = html;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PIECE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        input.push_back(StrTendril::from_slice(&rest[..cut]));
        rest = &rest[cut..];
    }
    let tokenizer = Tokenizer::new(html_text::TextSink::new(html.len(), xml), TokenizerOpts::default());
    // The sink never asks the tokenizer to stop for a script or an encoding.
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.into_text()
}

/// The visible text of an XML document: [`visible_text`], with CDATA
/// sections unwrapped first (an HTML parser would drop them as comments,
/// and feeds carry their text in them), every element separating words
/// (`<to>Tove</to><from>Jani</from>` is two words), and `<x/>` an empty
/// element.
#[cfg(feature = "extract")]
pub(crate) fn xml_visible_text(xml: &str) -> String {
    if !xml.contains("<![CDATA[") {
        return text_of(xml, true);
    }
    let mut unwrapped = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(open) = rest.find("<![CDATA[") {
        unwrapped.push_str(&rest[..open]);
        let inside = &rest[open + "<![CDATA[".len()..];
        let close = inside.find("]]>").unwrap_or(inside.len());
        unwrapped.push_str(&inside[..close]);
        rest = inside.get(close + "]]>".len()..).unwrap_or_default();
    }
    unwrapped.push_str(rest);
    text_of(&unwrapped, true)
}

/// The `<title>` of an HTML page: the text of its first `title` element that
/// is not inside an `<svg>` (whose `<title>` is a tooltip), entities
/// decoded and whitespace collapsed; `None` when there is none or it is
/// blank.
#[cfg(feature = "extract")]
pub(crate) fn html_title(html: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so they index `html` too.
    let lower = html.to_ascii_lowercase();
    let name_ends = |rest: &str| rest.starts_with(|c: char| c == '>' || c == '/' || c.is_ascii_whitespace());
    // One pass over the tags, counting how deep in `<svg>` each one is;
    // the next `>` is remembered, so that a page of `<` without `>` is not
    // scanned again for each of them.
    let (mut svg_depth, mut from, mut tag_end) = (0usize, 0, 0);
    let start = loop {
        let at = from + lower[from..].find('<')?;
        if tag_end <= at {
            tag_end = at + lower[at..].find('>')?;
        }
        let rest = &lower[at..];
        if rest.strip_prefix("<svg").is_some_and(name_ends) {
            svg_depth += usize::from(!lower[..tag_end].ends_with('/'));
        } else if rest.starts_with("</svg") {
            svg_depth = svg_depth.saturating_sub(1);
        } else if svg_depth == 0 && rest.strip_prefix("<title").is_some_and(name_ends) {
            break tag_end + 1;
        }
        from = at + 1;
    };
    let end = start + lower[start..].find("</title")?;
    // The element's text is RCDATA: entities, no tags. They are decoded as
    // they are in the page's text.
    let decoded = visible_text(&format!("<p>{}</p>", &html[start..end]));
    collapse(&decoded)
}

/// What [`gunzip`] found.
#[cfg(feature = "extract")]
#[derive(Debug, PartialEq)]
pub(crate) enum Gunzip {
    /// The decompressed bytes, at most the limit.
    Done(Vec<u8>),
    /// More than the limit once decompressed: nothing past it was kept.
    TooLarge,
    /// Not a whole, valid gzip stream (a bad header, bad deflate data, a
    /// wrong checksum, cut short).
    Damaged,
}

/// Whether `bytes` start with the gzip magic number (RFC 1952: 1f 8b,
/// then method 8, deflate).
#[cfg(feature = "extract")]
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b, 0x08])
}

/// Decompresses the gzip stream `compressed` (every member, as `gzip -d`
/// does) to at most `limit` bytes.
///
/// The decoder is read through `take(limit + 1)`: a stream that expands
/// past the limit stops there and is [`Gunzip::TooLarge`], however much it
/// would expand to (a decompression bomb never gets its memory).
#[cfg(feature = "extract")]
pub(crate) fn gunzip(compressed: &[u8], limit: u64) -> Gunzip {
    use std::io::Read;
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut out = Vec::new();
    match decoder.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => Gunzip::TooLarge,
        Ok(_) => Gunzip::Done(out),
        Err(_) => Gunzip::Damaged,
    }
}

/// The first level-one ATX heading (`# Title`) of a Markdown text, outside
/// fenced code blocks, without its closing `#`s, whitespace collapsed;
/// `None` when there is none or it is blank.
pub(crate) fn markdown_title(markdown: &str) -> Option<String> {
    let mut fence: Option<&str> = None;
    for line in markdown.lines() {
        // Up to three spaces of indentation; four make a code block.
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 3 {
            continue;
        }
        let line = line.trim_start_matches(' ');
        if let Some(open) = fence {
            if line.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if line.starts_with("```") || line.starts_with("~~~") {
            fence = Some(&line[..3]);
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else { continue };
        if !(heading.is_empty() || heading.starts_with([' ', '\t'])) {
            continue; // `##` is a lower level, `#tag` is not a heading
        }
        // A closing sequence of `#`s counts only after a space.
        let heading = heading.trim_end();
        let without_closing = heading.trim_end_matches('#');
        let heading = if without_closing.is_empty() || without_closing.ends_with([' ', '\t']) {
            without_closing
        } else {
            heading
        };
        return collapse(heading);
    }
    None
}

/// `text` with runs of whitespace made one space and trimmed, cut to
/// [`MAX_TITLE_BYTES`]; `None` when nothing is left.
fn collapse(text: &str) -> Option<String> {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if out.len() + 1 + word.len() > MAX_TITLE_BYTES {
            if out.is_empty() {
                let mut cut = MAX_TITLE_BYTES;
                while !word.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push_str(&word[..cut]);
            }
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    (!out.is_empty()).then_some(out)
}

/// Whether a text whose file name says nothing of its type is an HTML page:
/// it starts (after a byte order mark and whitespace) with `<!doctype html`
/// or `<html`, in any case.
pub(crate) fn looks_like_html(text: &str) -> bool {
    let start = text.trim_start_matches('\u{feff}').trim_start();
    let head: String = start.chars().take(15).collect::<String>().to_ascii_lowercase();
    let tag_end = |rest: &str| rest.is_empty() || rest.starts_with(|c: char| c == '>' || c.is_ascii_whitespace());
    head.strip_prefix("<!doctype html").is_some_and(tag_end) || head.strip_prefix("<html").is_some_and(tag_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_titles() {
        assert_eq!(markdown_title("# Hello   world\n\ntext").as_deref(), Some("Hello world"));
        assert_eq!(markdown_title("intro\n\n## Sub\n# Main #\n").as_deref(), Some("Main"));
        assert_eq!(markdown_title("```\n# not a title\n```\n# C# tips").as_deref(), Some("C# tips"));
        assert_eq!(markdown_title("    # code\n#tag\n#\n").as_deref(), None);
        assert_eq!(markdown_title("  # Indented ##").as_deref(), Some("Indented"));
        assert_eq!(markdown_title("no heading"), None);
        let long = format!("# {}", "x".repeat(2 * MAX_TITLE_BYTES));
        assert_eq!(markdown_title(&long).map(|t| t.len()), Some(MAX_TITLE_BYTES));
    }

    #[test]
    fn html_is_sniffed_by_its_start() {
        assert!(looks_like_html("<!DOCTYPE html>\n<p>x"));
        assert!(looks_like_html("\u{feff}  \n<HTML lang=en>"));
        assert!(looks_like_html("<html>"));
        assert!(!looks_like_html("<htmlfoo>"));
        assert!(!looks_like_html("text <html>"));
        assert!(!looks_like_html(""));
    }

    #[cfg(feature = "extract")]
    #[test]
    fn html_titles_and_text() {
        let page = "<html><head><title>\n  Fish &amp;\tChips &#x263A;\n</title>\
                    <style>p { color: red }</style><script>var secret = 1;</script></head>\
                    <body><svg><title>icon</title></svg><p>Hello <b>there</b> &lt;you&gt;</p></body></html>";
        assert_eq!(html_title(page).as_deref(), Some("Fish & Chips \u{263A}"));
        let text = visible_text(page);
        assert!(text.contains("Hello there <you>"), "{text:?}");
        for hidden in ["color", "secret", "<b>", "<p>"] {
            assert!(!text.contains(hidden), "{hidden} in {text:?}");
        }
        assert_eq!(html_title("<svg><title>icon</title></svg><p>x"), None);
        assert_eq!(html_title("<title>  </title>"), None);
        assert_eq!(html_title("<titles>x</titles>"), None);
        assert_eq!(html_title("<TITLE lang=en>Upper</TITLE>").as_deref(), Some("Upper"));
    }

    #[cfg(feature = "extract")]
    #[test]
    fn tables_are_read_cell_after_cell_not_padded() {
        let long = "word ".repeat(200);
        let rows: String =
            (0..50).map(|i| format!("<tr><td>r{i}</td><td>{long}</td><td>x</td><td>y</td></tr>")).collect();
        let html = format!("<html><body><table>{rows}</table><p>after</p></body></html>");
        let text = visible_text(&html);
        assert!(text.len() < html.len(), "{} bytes of text from {} of HTML", text.len(), html.len());
        assert!(text.contains("r49") && text.contains("after") && text.contains("word word"));
    }

    #[cfg(feature = "extract")]
    #[test]
    fn blocks_are_lines_and_inline_elements_are_not() {
        let text = visible_text(
            "<h1>Title</h1><p>One <b>bold</b>word</p><ul><li>first<li>second</ul>\
             <table><tr><td>cell</td><td>next</td></tr></table>line<br>break \n\t spaced",
        );
        assert_eq!(text, "Title\nOne boldword\nfirst\nsecond\ncell\nnext\nline\nbreak spaced");
        // Preformatted text keeps its spaces and lines (but not the line
        // feed right after `<pre>`).
        assert_eq!(visible_text("<p>a</p><pre>\n  fn x() {\n      1\n  }</pre>b"), "a\n  fn x() {\n      1\n  }\nb");
        // Entities, in the text and in an image's alt text.
        assert_eq!(visible_text("x&nbsp;&lt;&#x41;&gt;<img src=a.png alt=\"a &amp; b\">y"), "x\u{a0}<A> a & b y");
        // Not shown: comments, templates, drawings, noscript, a form's
        // hidden parts, the head.
        let text = visible_text(
            "<!doctype html><html><head><title>T</title><meta charset=utf-8><noscript>enable js</noscript></head>\
             <body><!-- note --><template><p>tmpl</p></template><svg><title>tip</title><text>drawn</text></svg>\
             <svg/>shown<noscript><p>nojs</p></noscript><iframe>frame</iframe></body></html>",
        );
        assert_eq!(text, "shown");
        // A `<title>` outside the head is text, as browsers show it.
        assert_eq!(visible_text("<p>a</p><title>b</title>"), "a\nb");
        // An unclosed `<svg>` ends where HTML starts again.
        assert_eq!(visible_text("<svg><g>drawing<p>para</p>"), "para");
        // A `<script>` is read to its end tag, whatever it holds.
        assert_eq!(visible_text("a<script>if (x < y) { s = '<p>'; }</script>b"), "ab");
        assert_eq!(visible_text(""), "");
    }

    #[cfg(feature = "extract")]
    #[test]
    fn hostile_pages_take_linear_time_and_memory() {
        let deep = format!("{}deep{}", "<div>".repeat(100_000), "</div>".repeat(100_000));
        assert_eq!(visible_text(&deep), "deep");
        let nested = format!("{}x", "<b><i><span><a href=#>".repeat(50_000));
        assert_eq!(visible_text(&nested), "x");
        let cells = "<td>c".repeat((1 << 20) / 5);
        let text = visible_text(&format!("<table><tr>{cells}"));
        assert_eq!(text.len(), 2 * (1 << 20) / 5 - 1);
        assert!(text.lines().all(|line| line == "c"));
        // Unclosed and broken markup.
        for broken in
            ["<", "<p", "<p class=\"", "</", "<!--", "<![CDATA[", "&", "&#", "&#xFFFFFFFF;", "<script>", "<template>x"]
        {
            let text = visible_text(&broken.repeat(10_000));
            assert!(text.len() <= 10_000 * broken.len() * 2, "{broken}");
        }
        // Past the tokenizer's piece size, a character cut at a piece's end.
        let big = format!("x{}", "\u{e9}".repeat(1 << 20));
        assert_eq!(visible_text(&big), big);
    }

    #[cfg(feature = "extract")]
    #[test]
    fn xml_elements_separate_words() {
        let text = xml_visible_text("<note><to>Tove</to><from>Jani</from><empty/><title/>after</note>");
        assert_eq!(text, "Tove Jani\nafter");
    }

    #[test]
    fn xml_text_keeps_cdata() {
        let feed = "<?xml version=\"1.0\"?><rss><item><title>One</title>\
                    <description><![CDATA[<p>Inside &amp; out</p>]]></description></item></rss>";
        let text = xml_visible_text(feed);
        assert!(text.contains("One") && text.contains("Inside & out"), "{text:?}");
        assert!(!text.contains("<p>") && !text.contains("CDATA") && !text.contains("xml version"), "{text:?}");
    }

    #[cfg(feature = "extract")]
    #[test]
    fn gunzip_stops_at_the_limit() {
        use std::io::Write;
        let gz = |bytes: &[u8]| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        };
        let small = gz(b"hello");
        assert!(is_gzip(&small));
        assert_eq!(gunzip(&small, 5), Gunzip::Done(b"hello".to_vec()));
        assert_eq!(gunzip(&small, 4), Gunzip::TooLarge);
        // Two members read as one stream, as `gzip -d` does.
        assert_eq!(gunzip(&[small.clone(), gz(b" world")].concat(), 100), Gunzip::Done(b"hello world".to_vec()));
        assert_eq!(gunzip(&small[..small.len() - 3], 100), Gunzip::Damaged);
        let mut flipped = small.clone();
        flipped[12] ^= 0xff;
        assert_eq!(gunzip(&flipped, 100), Gunzip::Damaged);
        assert!(!is_gzip(b"plain"));
    }
}
