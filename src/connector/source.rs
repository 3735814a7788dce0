//! What a connector reads: the [`Source`] trait users implement.

use crate::document::Document;
use crate::error::Result;

/// One item of a source as listed: its URI and its stamp (the version
/// marker compared with what the index holds to decide whether to push).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceItem {
    /// The document's URI; it must lie under the connector's root.
    pub uri: String,
    /// The version marker: equal stamps mean an unchanged document.
    pub stamp: String,
}

/// A part of a source that a listing passed over, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// What was passed over, for people: a path or a URI.
    pub what: String,
    /// Why, in a few words (`"cannot be read: Permission denied"`,
    /// `"name is not UTF-8"`); the words before a `:` name the kind of
    /// reason, which an import's summary counts by.
    pub reason: String,
    /// `Some(uri)`: what could not be read this time; the import keeps the
    /// index's document with that URI and every document under it as they
    /// are. `None`: nothing of it can be in the index (a name that is not a
    /// URI, a special file, a pushdex index), or it is gone.
    pub keep: Option<String>,
}

impl Skip {
    /// A skip with nothing to keep.
    pub fn new(what: impl Into<String>, reason: impl Into<String>) -> Skip {
        Skip { what: what.into(), reason: reason.into(), keep: None }
    }

    /// What could not be read this time: the documents at or under `uri`
    /// are kept.
    pub fn unreadable(uri: impl Into<String>, reason: impl Into<String>) -> Skip {
        let uri = uri.into();
        Skip { what: uri.clone(), reason: reason.into(), keep: Some(uri) }
    }

    /// The kind of reason: the words before the first `:`.
    pub fn kind(&self) -> &str {
        self.reason.split(':').next().unwrap_or_default().trim()
    }
}

/// A source of documents: a file share, a database, a web site.
///
/// An import lists the source once, compares every item's stamp with the
/// stamp the index holds for its URI, and fetches only the new and changed
/// items. Implementations must be cheap to list (no document contents) and
/// may be called from the connector's job thread.
pub trait Source: Send + Sync {
    /// A one-line description shown in the registry (`"directory /srv/share"`).
    fn description(&self) -> String;

    /// Calls `visit` for every item of the source, in any order. An error
    /// returned by `visit` must be passed on (it is how an import is
    /// aborted); an error of the source's own fails the import.
    fn list(&self, visit: &mut dyn FnMut(SourceItem) -> Result<()>) -> Result<()>;

    /// [`Source::list`], also calling `skipped` for each part of the source
    /// that it passed over, with the reason (an unreadable directory, a
    /// name that cannot be a URI, a special file): the import counts them
    /// and says why. For what could not be read this time
    /// ([`Skip::keep`]), the import keeps the index's document with that
    /// URI and every document under it (the rules of folders) as they are,
    /// instead of deleting them as gone. The default lists everything or
    /// fails.
    fn list_partly(
        &self,
        visit: &mut dyn FnMut(SourceItem) -> Result<()>,
        skipped: &mut dyn FnMut(Skip),
    ) -> Result<()> {
        let _ = skipped;
        self.list(visit)
    }

    /// Fetches one listed item as a document with the item's URI (and
    /// normally its stamp). `Ok(None)`: the item is gone since it was
    /// listed, and the index's copy is deleted. An error counts the item as
    /// failed and the import goes on.
    fn fetch(&self, item: &SourceItem) -> Result<Option<Document>>;
}
