//! Documents in the JSON API's shape (`{"uri", "stamp", "metas", "text",
//! "binary"}`), read straight into a [`Document`] as the JSON is parsed
//! (and the meta values and base64 parts of updates):
//! no intermediate maps of `Value`s, which cost the server more than the
//! engine's own work on a bulk push.

use std::fmt;

use base64::Engine;
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::Document;

/// A document of a request body.
pub(super) struct JsonDocument(pub(super) Document);

#[derive(Clone, Copy, Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Uri,
    Stamp,
    Metas,
    Text,
    Binary,
}

impl<'de> Deserialize<'de> for JsonDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonDocument, D::Error> {
        deserializer.deserialize_map(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = JsonDocument;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a document: an object with \"uri\" and optional \"stamp\", \"metas\", \"text\", \"binary\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonDocument, A::Error> {
        let (mut uri, mut stamp) = (None, None);
        let mut metas: Vec<(String, MetaValues)> = Vec::new();
        let mut text: Vec<(String, String)> = Vec::new();
        let mut binary: Vec<(String, Base64)> = Vec::new();
        let mut seen = [false; 5];
        while let Some(field) = map.next_key::<Field>()? {
            if std::mem::replace(&mut seen[field as usize], true) {
                let name = ["uri", "stamp", "metas", "text", "binary"][field as usize];
                return Err(A::Error::custom(format!("duplicate field `{name}`")));
            }
            match field {
                Field::Uri => uri = Some(map.next_value::<String>()?),
                Field::Stamp => stamp = Some(map.next_value::<String>()?),
                Field::Metas => map.next_value_seed(Pairs(&mut metas))?,
                Field::Text => map.next_value_seed(Pairs(&mut text))?,
                Field::Binary => map.next_value_seed(Pairs(&mut binary))?,
            }
        }
        let uri = uri.ok_or_else(|| A::Error::missing_field("uri"))?;
        let mut doc = Document::new(uri).with_stamp(stamp.unwrap_or_default());
        for (name, MetaValues(values)) in metas {
            for value in values {
                doc = doc.with_meta(name.clone(), value);
            }
        }
        for (name, value) in text {
            doc = doc.with_text(name, value);
        }
        for (name, Base64(bytes)) in binary {
            if doc.part(&name).is_some() {
                return Err(A::Error::custom(format!("part {name:?} is both text and binary: part names are unique")));
            }
            doc = doc.with_part(name, bytes);
        }
        Ok(JsonDocument(doc))
    }
}

/// Reads a JSON object's members, in order, into a vector of pairs.
struct Pairs<'a, V>(&'a mut Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> DeserializeSeed<'de> for Pairs<'_, V> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for Pairs<'_, V> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((name, value)) = map.next_entry::<String, V>()? {
            self.0.push((name, value));
        }
        Ok(())
    }
}

/// A meta's values: a string or an array of strings.
#[derive(Debug)]
pub(super) struct MetaValues(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for MetaValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MetaValues, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetaValues;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a meta value: a string or an array of strings")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MetaValues, E> {
                Ok(MetaValues(vec![v.to_string()]))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<MetaValues, E> {
                Ok(MetaValues(vec![v]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MetaValues, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(MetaValues(values))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A binary part: a base64 string.
#[derive(Debug)]
pub(super) struct Base64(pub(super) Vec<u8>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Base64, D::Error> {
        let encoded = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Base64)
            .map_err(|e| D::Error::custom(format!("a binary part is base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::JsonDocument;

    fn parse(json: &str) -> Result<crate::Document, String> {
        serde_json::from_str::<JsonDocument>(json).map(|d| d.0).map_err(|e| e.to_string())
    }

    #[test]
    fn every_field_lands_in_the_document() {
        let doc = parse(
            r#"{"binary": {"raw": "AAEC"}, "uri": "a/1", "stamp": "s", "metas": {"tag": ["x", "y"], "by": "ann"},
                "text": {"body": "hello \"world\""}}"#,
        )
        .unwrap();
        assert_eq!((doc.uri(), doc.stamp()), ("a/1", "s"));
        assert_eq!(doc.metas("tag"), ["x", "y"]);
        assert_eq!(doc.meta("by"), Some("ann"));
        assert_eq!(doc.text("body"), Some("hello \"world\""));
        assert_eq!(doc.part("raw"), Some(&[0u8, 1, 2][..]));
        assert_eq!(parse(r#"{"uri": "b"}"#).unwrap().stamp(), "");
    }

    #[test]
    fn what_is_not_a_document_is_refused_with_a_reason() {
        for (json, why) in [
            (r#"{"stamp": "s"}"#, "missing field `uri`"),
            (r#"{"uri": "a", "uri": "b"}"#, "duplicate field `uri`"),
            (r#"{"uri": "a", "title": "t"}"#, "title"),
            (r#"{"uri": "a", "metas": {"n": 5}}"#, "a string or an array of strings"),
            (r#"{"uri": "a", "metas": {"n": null}}"#, "a string or an array of strings"),
            (r#"{"uri": "a", "metas": {"n": ["x", 5]}}"#, "expected a string"),
            (r#"{"uri": "a", "text": {"body": 5}}"#, "expected a string"),
            (r#"{"uri": "a", "binary": {"raw": "not base64!"}}"#, "base64"),
            (r#"{"uri": "a", "text": {"p": "x"}, "binary": {"p": "AA=="}}"#, "both text and binary"),
            (r#"["a"]"#, "a document"),
            (r#"{"uri": 5}"#, "expected a string"),
        ] {
            let error = parse(json).expect_err(json);
            assert!(error.contains(why), "{json}: {error}");
        }
    }
}
