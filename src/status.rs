//! Serials, states and what reads report about documents and checkpoints.

use std::fmt;

/// The position of a mutating operation in the index's one ordered stream:
/// 1, 2, 3, … Meaningful together with the [`SessionId`] it was returned
/// under, since the serials of operations lost in a crash are handed out
/// again.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(pub u64);

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How far an operation (or a document's newest operation) has travelled.
///
/// States are ordered: `Initial < Pushed < Synced < Searchable`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// Not held by the index (never pushed, deleted, or a serial not handed out).
    Initial,
    /// Received: the call returned.
    Pushed,
    /// On disk: survives a crash.
    Synced,
    /// Visible to search.
    Searchable,
}

/// Identifies one open of an index; drawn at random by every open, never 0.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What the index holds for one URI.
///
/// For a URI the index does not hold: stamp `""`, state
/// [`State::Initial`], serial `Serial(0)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentStatus {
    /// The document's URI.
    pub uri: String,
    /// The stamp given with the newest version ("" when none).
    pub stamp: String,
    /// The state of the newest operation on this URI.
    pub state: State,
    /// The serial of the newest operation on this URI.
    pub serial: Serial,
}

impl DocumentStatus {
    /// Whether the index holds the document (`state != Initial`).
    pub fn exists(&self) -> bool {
        self.state != State::Initial
    }

    pub(crate) fn absent(uri: &str) -> DocumentStatus {
        DocumentStatus { uri: uri.to_string(), stamp: String::new(), state: State::Initial, serial: Serial(0) }
    }
}

/// What [`Index::enumerate`](crate::Index::enumerate) lists.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EnumerationMode {
    /// Every document under the root.
    RecursiveDocuments,
    /// The root's direct children.
    NotRecursiveDocuments,
    /// The root's folder entries (each ends with `/`).
    NotRecursiveFolders,
    /// Direct children and folder entries, merged in byte order.
    NotRecursiveAll,
}

impl EnumerationMode {
    pub(crate) fn documents(self) -> bool {
        !matches!(self, EnumerationMode::NotRecursiveFolders)
    }

    pub(crate) fn folders(self) -> bool {
        matches!(self, EnumerationMode::NotRecursiveFolders | EnumerationMode::NotRecursiveAll)
    }

    pub(crate) fn recursive(self) -> bool {
        matches!(self, EnumerationMode::RecursiveDocuments)
    }
}

/// One item of an enumeration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A document and its status.
    Document(DocumentStatus),
    /// A folder; the string ends with `/` and can be passed back as a root.
    Folder(String),
}

impl Entry {
    /// The URI of the document, or the folder's string.
    pub fn key(&self) -> &str {
        match self {
            Entry::Document(s) => &s.uri,
            Entry::Folder(f) => f,
        }
    }
}

/// One item of an enumeration, borrowed: what
/// [`Index::enumerate_with`](crate::Index::enumerate_with) passes to its
/// callback. The strings live in a buffer the enumeration reuses, so they
/// are valid only during the call; [`EntryRef::to_entry`] copies them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRef<'a> {
    /// A document and its status.
    Document(DocumentRef<'a>),
    /// A folder; the string ends with `/` and can be passed back as a root.
    Folder(&'a str),
}

/// A document's status, borrowed (see [`EntryRef`]): the fields of
/// [`DocumentStatus`] with `&str` for its strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentRef<'a> {
    /// The document's URI.
    pub uri: &'a str,
    /// The stamp given with the newest version ("" when none).
    pub stamp: &'a str,
    /// The state of the newest operation on this URI.
    pub state: State,
    /// The serial of the newest operation on this URI.
    pub serial: Serial,
}

impl DocumentRef<'_> {
    /// An owned copy.
    pub fn to_status(&self) -> DocumentStatus {
        DocumentStatus {
            uri: self.uri.to_string(),
            stamp: self.stamp.to_string(),
            state: self.state,
            serial: self.serial,
        }
    }
}

impl<'a> EntryRef<'a> {
    /// The URI of the document, or the folder's string.
    pub fn key(&self) -> &'a str {
        match *self {
            EntryRef::Document(d) => d.uri,
            EntryRef::Folder(f) => f,
        }
    }

    /// An owned copy: the [`Entry`] that [`Index::enumerate`](crate::Index::enumerate)
    /// yields for the same item.
    pub fn to_entry(&self) -> Entry {
        match *self {
            EntryRef::Document(d) => Entry::Document(d.to_status()),
            EntryRef::Folder(f) => Entry::Folder(f.to_string()),
        }
    }
}

impl From<EntryRef<'_>> for Entry {
    fn from(entry: EntryRef<'_>) -> Entry {
        entry.to_entry()
    }
}

/// A named value written in the same ordered stream as the documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The checkpoint's name.
    pub name: String,
    /// Its newest value.
    pub value: String,
    /// The serial of the operation that set it.
    pub serial: Serial,
    /// The state of that operation.
    pub state: State,
}

/// The three watermarks: `searchable <= synced <= last`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Watermarks {
    /// The highest serial handed out (Pushed).
    pub last: Serial,
    /// Every operation up to here is on disk (Synced).
    pub synced: Serial,
    /// Every operation up to here is visible to search (Searchable).
    pub searchable: Serial,
}

impl Watermarks {
    /// The state of the operation with serial `serial` under these watermarks.
    pub fn state_of(&self, serial: Serial) -> State {
        if serial.0 == 0 || serial > self.last {
            State::Initial
        } else if serial <= self.searchable {
            State::Searchable
        } else if serial <= self.synced {
            State::Synced
        } else {
            State::Pushed
        }
    }
}
