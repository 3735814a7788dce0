//! Documents, partial updates, and the limits every argument is checked against.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::record::{get_varint, put_bytes, put_varint, varint_len};
use crate::uri::check_uri;

/// The longest stamp accepted, in bytes.
pub const MAX_STAMP_BYTES: usize = 1024;
/// The longest meta, part or checkpoint name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest meta or checkpoint value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The largest part accepted, in bytes.
pub const MAX_PART_BYTES: usize = 16 * 1024 * 1024;
/// The most documents in one `add_all` batch.
pub const MAX_BATCH_DOCUMENTS: usize = 100_000;
/// The largest `add_all` batch, and the largest single document, in bytes
/// (URIs, stamps, metas and parts added up).
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// A document: a URI, a stamp, multi-valued metas and named parts.
///
/// ```
/// use pushdex::Document;
/// let d = Document::new("file:///share/a.txt")
///     .with_stamp("2024-03-15T10:00:00Z")
///     .with_meta("author", "ann")
///     .with_text("body", "hello world");
/// assert_eq!(d.part("body"), Some(&b"hello world"[..]));
/// ```
///
/// # Serde form
///
/// A stable shape, independent of how pushdex stores documents: the URI,
/// the stamp, the metas as `[name, value]` pairs in order, and the parts in
/// order, each `{"text": {"name", "value"}}` (a string) or
/// `{"binary": {"name", "value"}}` (bytes: an array of numbers in JSON).
///
/// ```
/// use pushdex::Document;
/// let d = Document::new("file:///a.txt")
///     .with_stamp("v1")
///     .with_meta("author", "ann")
///     .with_text("body", "hi")
///     .with_part("thumb", vec![1, 2]);
/// let json = serde_json::json!({
///     "uri": "file:///a.txt",
///     "stamp": "v1",
///     "metas": [["author", "ann"]],
///     "parts": [
///         {"text": {"name": "body", "value": "hi"}},
///         {"binary": {"name": "thumb", "value": [1, 2]}}
///     ]
/// });
/// assert_eq!(serde_json::to_value(&d).unwrap(), json);
/// assert_eq!(serde_json::from_value::<Document>(json).unwrap(), d);
/// ```
///
/// `stamp`, `metas` and `parts` may be left out when reading. What serde
/// reads is not checked until the document is pushed: a part name given
/// twice is then refused with `InvalidInput`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    uri: String,
    stamp: String,
    body: Body,
}

/// Everything of a document but its URI and stamp: what the memtable and the
/// segments keep as one encoded blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Body {
    metas: Vec<(String, String)>,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    name: String,
    /// A text part is UTF-8 and full-text indexed; a binary part is not.
    text: bool,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

impl Document {
    /// A document with this URI, no stamp, no metas and no parts.
    pub fn new(uri: impl Into<String>) -> Document {
        Document { uri: uri.into(), stamp: String::new(), body: Body::default() }
    }

    /// Sets the stamp: the connector's version marker (a date, a hash, …).
    pub fn with_stamp(mut self, stamp: impl Into<String>) -> Document {
        self.stamp = stamp.into();
        self
    }

    /// Appends a value to meta `name`: metas are multi-valued.
    pub fn with_meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Document {
        self.body.metas.push((name.into(), value.into()));
        self
    }

    /// Adds a binary part, replacing any part of the same name.
    pub fn with_part(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Document {
        self.body.set_part(Part { name: name.into(), text: false, bytes: bytes.into() });
        self
    }

    /// Adds a text part (full-text indexed), replacing any part of the same name.
    pub fn with_text(mut self, name: impl Into<String>, text: impl Into<String>) -> Document {
        self.body.set_part(Part { name: name.into(), text: true, bytes: text.into().into_bytes() });
        self
    }

    /// The document's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The stamp, `""` when none was given.
    pub fn stamp(&self) -> &str {
        &self.stamp
    }

    /// The first value of meta `name`.
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.body.metas.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of meta `name`, in insertion order.
    pub fn metas(&self, name: &str) -> Vec<&str> {
        self.body.metas.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// Every meta as `(name, value)`, in insertion order.
    pub fn all_metas(&self) -> impl Iterator<Item = (&str, &str)> {
        self.body.metas.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The bytes of part `name` (a text part's UTF-8 bytes too).
    pub fn part(&self, name: &str) -> Option<&[u8]> {
        self.body.parts.iter().find(|p| p.name == name).map(|p| p.bytes.as_slice())
    }

    /// The text of part `name` when it is a text part.
    pub fn text(&self, name: &str) -> Option<&str> {
        let part = self.body.parts.iter().find(|p| p.name == name && p.text)?;
        std::str::from_utf8(&part.bytes).ok()
    }

    /// Every part as `(name, is_text, bytes)`, in the order they were added.
    pub fn parts(&self) -> impl Iterator<Item = (&str, bool, &[u8])> {
        self.body.parts.iter().map(|p| (p.name.as_str(), p.text, p.bytes.as_slice()))
    }

    /// Checks every limit of API.md's "Arguments" table; returns the
    /// document's size in bytes.
    pub(crate) fn check(&self) -> Result<usize> {
        check_uri(&self.uri)?;
        check_stamp(&self.stamp)?;
        let mut size = self.uri.len() + self.stamp.len();
        for (name, value) in &self.body.metas {
            check_name("meta name", name)?;
            check_value("meta value", value)?;
            size += name.len() + value.len();
        }
        for part in &self.body.parts {
            check_name("part name", &part.name)?;
            check_part(&part.name, &part.bytes)?;
            if part.text && std::str::from_utf8(&part.bytes).is_err() {
                return Err(Error::invalid_input(format!("text part {:?} is not valid UTF-8", part.name)));
            }
            size += part.name.len() + part.bytes.len();
        }
        // The builder methods keep part names unique; a document read with
        // serde may not. (Most documents have a part or two: no allocation
        // for a few.)
        let parts = &self.body.parts;
        let repeated = if parts.len() <= 8 {
            (1..parts.len()).find_map(|i| parts[..i].iter().find(|p| p.name == parts[i].name).map(|p| &p.name[..]))
        } else {
            let mut names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
            names.sort_unstable();
            names.windows(2).find(|pair| pair[0] == pair[1]).map(|pair| pair[0])
        };
        if let Some(name) = repeated {
            return Err(Error::invalid_input(format!(
                "part {name:?} appears twice in document {:?}: part names are unique in a document",
                self.uri
            )));
        }
        if size > MAX_BATCH_BYTES {
            return Err(Error::invalid_input(format!(
                "document {:?} holds {size} bytes, more than the maximum of {MAX_BATCH_BYTES}",
                self.uri
            )));
        }
        Ok(size)
    }

    pub(crate) fn from_parts(uri: String, stamp: String, body: Body) -> Document {
        Document { uri, stamp, body }
    }

    pub(crate) fn body(&self) -> &Body {
        &self.body
    }

    /// The URI and the stamp, taken apart without copying.
    pub(crate) fn into_uri_and_stamp(self) -> (String, String) {
        (self.uri, self.stamp)
    }
}

/// [`Document`]'s serde form, borrowed for writing.
#[derive(Serialize)]
#[serde(rename = "Document")]
struct DocumentOut<'a> {
    uri: &'a str,
    stamp: &'a str,
    metas: &'a [(String, String)],
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename = "Part", rename_all = "lowercase")]
enum PartOut<'a> {
    Text { name: &'a str, value: &'a str },
    Binary { name: &'a str, value: &'a serde_bytes::Bytes },
}

/// [`Document`]'s serde form, owned for reading.
#[derive(Deserialize)]
#[serde(rename = "Document", deny_unknown_fields)]
struct DocumentIn {
    uri: String,
    #[serde(default)]
    stamp: String,
    #[serde(default)]
    metas: Vec<(String, String)>,
    #[serde(default)]
    parts: Vec<PartIn>,
}

#[derive(Deserialize)]
#[serde(rename = "Part", rename_all = "lowercase")]
enum PartIn {
    Text { name: String, value: String },
    Binary { name: String, value: serde_bytes::ByteBuf },
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut parts = Vec::with_capacity(self.body.parts.len());
        for part in &self.body.parts {
            parts.push(if part.text {
                // Text parts are made from strings (or read as strings below).
                let value = std::str::from_utf8(&part.bytes).map_err(serde::ser::Error::custom)?;
                PartOut::Text { name: &part.name, value }
            } else {
                PartOut::Binary { name: &part.name, value: serde_bytes::Bytes::new(&part.bytes) }
            });
        }
        DocumentOut { uri: &self.uri, stamp: &self.stamp, metas: &self.body.metas, parts }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Document, D::Error> {
        let DocumentIn { uri, stamp, metas, parts } = DocumentIn::deserialize(deserializer)?;
        // Kept as given, repeated names included: `check` refuses those
        // with a reason, where replacing one silently would hide the error.
        let parts = parts
            .into_iter()
            .map(|part| match part {
                PartIn::Text { name, value } => Part { name, text: true, bytes: value.into_bytes() },
                PartIn::Binary { name, value } => Part { name, text: false, bytes: value.into_vec() },
            })
            .collect();
        Ok(Document { uri, stamp, body: Body { metas, parts } })
    }
}

/// What [`Body::visit_encoded`] finds: a meta `(name, value)`, or a text
/// part `(name, text)`.
pub(crate) enum BodyItem<'a> {
    Meta(&'a str, &'a str),
    Text(&'a str, &'a str),
}

impl Body {
    fn set_part(&mut self, part: Part) {
        match self.parts.iter_mut().find(|p| p.name == part.name) {
            Some(old) => *old = part,
            None => self.parts.push(part),
        }
    }

    /// The body's stored form: postcard's encoding of [`Body`], written
    /// directly into a buffer of exactly its size (the write path moves it
    /// into the memtable as it is; a test checks it against postcard).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        put_varint(&mut out, self.metas.len());
        for (name, value) in &self.metas {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        put_varint(&mut out, self.parts.len());
        for part in &self.parts {
            put_bytes(&mut out, part.name.as_bytes());
            out.push(u8::from(part.text));
            put_bytes(&mut out, &part.bytes);
        }
        debug_assert_eq!(out.len(), out.capacity(), "Body::encoded_len disagrees with Body::encode");
        out
    }

    /// The length of [`Body::encode`]'s output.
    fn encoded_len(&self) -> usize {
        let bytes = |b: &[u8]| varint_len(b.len()) + b.len();
        let metas: usize = self.metas.iter().map(|(n, v)| bytes(n.as_bytes()) + bytes(v.as_bytes())).sum();
        let parts: usize = self.parts.iter().map(|p| bytes(p.name.as_bytes()) + 1 + bytes(&p.bytes)).sum();
        varint_len(self.metas.len()) + metas + varint_len(self.parts.len()) + parts
    }

    /// Walks an encoded body without decoding it into owned strings: every
    /// meta, then every text part (binary parts are skipped). `None` when
    /// the bytes are not a body.
    pub(crate) fn visit_encoded(bytes: &[u8], visit: &mut dyn FnMut(BodyItem<'_>)) -> Option<()> {
        let mut at = 0;
        let count = |at: &mut usize| get_varint(bytes, at).and_then(|n| usize::try_from(n).ok());
        let take = |at: &mut usize| -> Option<std::ops::Range<usize>> {
            let len = usize::try_from(get_varint(bytes, at)?).ok()?;
            let range = *at..at.checked_add(len).filter(|&end| end <= bytes.len())?;
            *at = range.end;
            Some(range)
        };
        // A body is usually valid UTF-8 as a whole (its lengths and counts
        // under 128 are ASCII bytes): then one check covers every string in
        // it, and each is cut out of it at char boundaries (a string that is
        // not cut there would not be valid on its own either). Otherwise
        // each string is checked on its own.
        let whole = std::str::from_utf8(bytes).ok();
        let text = |range: std::ops::Range<usize>| match whole {
            Some(whole) => whole.get(range),
            None => std::str::from_utf8(&bytes[range]).ok(),
        };
        for _ in 0..count(&mut at)? {
            let name = text(take(&mut at)?)?;
            let value = text(take(&mut at)?)?;
            visit(BodyItem::Meta(name, value));
        }
        for _ in 0..count(&mut at)? {
            let name = text(take(&mut at)?)?;
            let kind = *bytes.get(at)?;
            at += 1;
            let part = take(&mut at)?;
            match kind {
                0 => {}
                1 => match text(part.clone()) {
                    Some(text) => visit(BodyItem::Text(name, text)),
                    None => visit(BodyItem::Text(name, &String::from_utf8_lossy(&bytes[part]))),
                },
                _ => return None,
            }
        }
        (at == bytes.len()).then_some(())
    }

    /// Decodes [`Body::encode`]'s output; `None` when the bytes are not a body.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Body> {
        postcard::from_bytes(bytes).ok()
    }
}

/// A partial update of a document: the changes are applied in order.
///
/// ```
/// use pushdex::Update;
/// let u = Update::new().stamp("v2").meta("tag", ["a", "b"]).remove_part("thumbnail");
/// # let _ = u;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Update {
    stamp: Option<String>,
    changes: Vec<Change>,
}

#[derive(Clone, Debug)]
enum Change {
    Meta(String, Vec<String>),
    Part(Part),
    RemovePart(String),
}

impl Update {
    /// An update that changes nothing yet (applying it is `InvalidInput`).
    pub fn new() -> Update {
        Update::default()
    }

    /// Replaces the stamp.
    pub fn stamp(mut self, stamp: impl Into<String>) -> Update {
        self.stamp = Some(stamp.into());
        self
    }

    /// Replaces all values of meta `name`; no values removes the meta.
    pub fn meta<I, V>(mut self, name: impl Into<String>, values: I) -> Update
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.changes.push(Change::Meta(name.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// Adds or replaces a binary part.
    pub fn part(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Update {
        self.changes.push(Change::Part(Part { name: name.into(), text: false, bytes: bytes.into() }));
        self
    }

    /// Adds or replaces a text part.
    pub fn text(mut self, name: impl Into<String>, text: impl Into<String>) -> Update {
        self.changes.push(Change::Part(Part { name: name.into(), text: true, bytes: text.into().into_bytes() }));
        self
    }

    /// Removes a part (nothing happens if the document has none of that name).
    pub fn remove_part(mut self, name: impl Into<String>) -> Update {
        self.changes.push(Change::RemovePart(name.into()));
        self
    }

    /// Checks the update's own arguments (the result is checked again as a
    /// whole document by the index).
    pub(crate) fn check(&self) -> Result<()> {
        if self.stamp.is_none() && self.changes.is_empty() {
            return Err(Error::invalid_input("an update must change something"));
        }
        if let Some(stamp) = &self.stamp {
            check_stamp(stamp)?;
        }
        for change in &self.changes {
            match change {
                Change::Meta(name, values) => {
                    check_name("meta name", name)?;
                    for v in values {
                        check_value("meta value", v)?;
                    }
                }
                Change::Part(part) => {
                    check_name("part name", &part.name)?;
                    check_part(&part.name, &part.bytes)?;
                }
                Change::RemovePart(name) => check_name("part name", name)?,
            }
        }
        Ok(())
    }

    /// Applies the update to `doc`.
    pub(crate) fn apply(&self, doc: &mut Document) {
        if let Some(stamp) = &self.stamp {
            doc.stamp.clone_from(stamp);
        }
        let body = &mut doc.body;
        for change in &self.changes {
            match change {
                Change::Meta(name, values) => {
                    // The new values take the place of the first old one, so
                    // that a meta keeps its position among the others.
                    let at = body.metas.iter().position(|(n, _)| n == name).unwrap_or(body.metas.len());
                    body.metas.retain(|(n, _)| n != name);
                    let at = at.min(body.metas.len());
                    body.metas.splice(at..at, values.iter().map(|v| (name.clone(), v.clone())));
                }
                Change::Part(part) => body.set_part(part.clone()),
                Change::RemovePart(name) => body.parts.retain(|p| &p.name != name),
            }
        }
    }
}

pub(crate) fn check_stamp(stamp: &str) -> Result<()> {
    if stamp.len() > MAX_STAMP_BYTES {
        return Err(Error::invalid_input(format!(
            "a stamp of {} bytes is longer than the maximum of {MAX_STAMP_BYTES}",
            stamp.len()
        )));
    }
    if stamp.contains('\0') {
        return Err(Error::invalid_input("a stamp must not contain a NUL byte"));
    }
    Ok(())
}

/// Checks a meta, part or checkpoint name.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_input(format!("a {what} must not be empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid_input(format!(
            "a {what} of {} bytes is longer than the maximum of {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(Error::invalid_input(format!("a {what} must not contain a NUL byte")));
    }
    Ok(())
}

/// Checks a meta or checkpoint value.
pub(crate) fn check_value(what: &str, value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid_input(format!(
            "a {what} of {} bytes is longer than the maximum of {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

fn check_part(name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_PART_BYTES {
        return Err(Error::invalid_input(format!(
            "part {name:?} of {} bytes is larger than the maximum of {MAX_PART_BYTES}",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_unique_by_name() {
        let d = Document::new("u").with_part("p", vec![1]).with_text("p", "t");
        assert_eq!(d.parts().count(), 1);
        assert_eq!(d.text("p"), Some("t"));
    }

    #[test]
    fn update_meta_replaces_in_place_and_empty_removes() {
        let mut d = Document::new("u").with_meta("a", "1").with_meta("b", "2").with_meta("a", "3");
        Update::new().meta("a", ["x", "y"]).apply(&mut d);
        let all: Vec<_> = d.all_metas().collect();
        assert_eq!(all, [("a", "x"), ("a", "y"), ("b", "2")]);
        Update::new().meta("a", Vec::<String>::new()).apply(&mut d);
        assert_eq!(d.metas("a"), Vec::<&str>::new());
        assert_eq!(d.meta("b"), Some("2"));
    }

    #[test]
    fn limits() {
        assert!(Document::new("u").with_stamp("s".repeat(MAX_STAMP_BYTES)).check().is_ok());
        assert!(Document::new("u").with_stamp("s".repeat(MAX_STAMP_BYTES + 1)).check().is_err());
        assert!(Document::new("u").with_meta("", "v").check().is_err());
        assert!(Document::new("u").with_meta("n".repeat(255), "v".repeat(MAX_VALUE_BYTES)).check().is_ok());
        assert!(Document::new("u").with_meta("n".repeat(256), "v").check().is_err());
        assert!(Document::new("u").with_part("p", vec![0; MAX_PART_BYTES]).check().is_ok());
        assert!(Document::new("u").with_part("p", vec![0; MAX_PART_BYTES + 1]).check().is_err());
        assert!(Update::new().check().is_err());
        assert!(Update::new().remove_part("x").check().is_ok());
    }

    #[test]
    fn body_round_trips() {
        let d = Document::new("u").with_meta("a", "b").with_part("bin", vec![0, 255]).with_text("t", "héllo");
        let back = Body::decode(&d.body().encode()).unwrap();
        assert_eq!(Document::from_parts(d.uri().to_string(), d.stamp().to_string(), back), d);
    }

    #[test]
    fn encoded_len_is_exact_across_varint_widths() {
        for n in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
            let mut d = Document::new("u");
            for i in 0..n.min(200) {
                d = d.with_meta(format!("m{i}"), "v");
            }
            let d = d.with_meta("x".repeat(n.min(255)), "y".repeat(n)).with_part("p", vec![7; n]).with_text("", "");
            let body = d.body();
            assert_eq!(body.encode(), postcard::to_stdvec(body).unwrap(), "n = {n}");
            assert_eq!(body.encode().capacity(), body.encode().len());
        }
    }
}
