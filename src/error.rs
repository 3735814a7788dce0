//! The one error type of pushdex.

use std::fmt;
use std::path::PathBuf;

use crate::status::SessionId;

/// Everything that can go wrong in pushdex.
///
/// Bad arguments are refused with [`Error::InvalidUri`] or
/// [`Error::InvalidInput`] before anything changes; damaged files give
/// [`Error::Corrupt`] naming the file; operating-system failures are
/// [`Error::Io`].
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// A URI, root or prefix argument is not acceptable.
    InvalidUri {
        /// The URI as given (cut to a readable length).
        uri: String,
        /// Why it was refused.
        reason: String,
    },
    /// Any other bad argument: sizes, empty names, an empty batch, ...
    InvalidInput {
        /// What was wrong, in words a caller can act on.
        reason: String,
    },
    /// `update()` of a URI that the index does not hold.
    NotFound {
        /// The URI that was not found.
        uri: String,
    },
    /// A push session was started under another open of the index.
    SessionMismatch {
        /// The index's current session.
        expected: SessionId,
        /// The session the caller presented.
        actual: SessionId,
    },
    /// The directory is held by another open [`Index`](crate::Index).
    Locked {
        /// The index directory.
        path: PathBuf,
    },
    /// This handle's index was closed.
    Closed,
    /// A file of the index is damaged: a checksum, a magic number or a
    /// version does not match, or a file the index needs is missing.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was expected and what was found.
        detail: String,
    },
    /// An operating-system I/O error.
    Io(std::io::Error),
    /// No connector has this id (it was never created, or was deleted).
    ConnectorNotFound {
        /// The id asked for.
        id: String,
    },
    /// [`Index::open_existing`](crate::Index::open_existing) (or an
    /// [`Options::create`](crate::Options::create) that forbids creating):
    /// there is no index in this directory: it is missing, or it holds
    /// other files and no pushdex index.
    NoIndex {
        /// The directory.
        path: PathBuf,
    },
    /// A file was written by a pushdex whose format version this one does
    /// not read (a newer release, usually): nothing is wrong with the file.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version the file says it has.
        found: u32,
        /// The versions this release reads, both ends included.
        supported: (u32, u32),
    },
    /// A failed log write or fsync stopped this index's writer: the kernel
    /// may have dropped bytes the log had handed it, so no later write can
    /// be promised durable. Reopen the index (recovery keeps every
    /// operation that was Synced).
    Poisoned {
        /// The failure that stopped the writer.
        reason: String,
    },
    /// A record that a pushdex layer keeps in reserved checkpoints (a
    /// connector's registry entry or job record) does not parse. The files
    /// are sound; the record's value is not what that layer wrote.
    BadRecord {
        /// The checkpoint that holds the record.
        name: String,
        /// What is wrong with its value.
        detail: String,
    },
}

/// `std::result::Result` with pushdex's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid_input(reason: impl Into<String>) -> Error {
        Error::InvalidInput { reason: reason.into() }
    }

    pub(crate) fn invalid_uri(uri: &str, reason: impl Into<String>) -> Error {
        Error::InvalidUri { uri: shorten(uri), reason: reason.into() }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Error {
        Error::Corrupt { path: path.into(), detail: detail.into() }
    }
}

/// Keeps error messages readable when a caller passes a megabyte of URI.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUri { uri, reason } => write!(f, "invalid URI {uri:?}: {reason}"),
            Error::InvalidInput { reason } => write!(f, "invalid input: {reason}"),
            Error::NotFound { uri } => write!(f, "no document with URI {uri:?}"),
            Error::SessionMismatch { expected, actual } => {
                write!(f, "push session {actual} is stale: the index was reopened and its session is now {expected}")
            }
            Error::Locked { path } => {
                write!(f, "index directory {} is already open in another Index", path.display())
            }
            Error::Closed => write!(f, "the index was closed"),
            Error::Corrupt { path, detail } => {
                write!(f, "index file {} is damaged: {detail}", path.display())
            }
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::ConnectorNotFound { id } => write!(f, "no connector with id {id:?}"),
            Error::NoIndex { path } => {
                write!(f, "no pushdex index in {}: the directory is missing, or holds other files", path.display())
            }
            Error::UnsupportedVersion { path, found, supported: (low, high) } => write!(
                f,
                "{} has format version {found}, and this pushdex reads versions {low} to {high}: \
                 open it with the pushdex release that wrote it (or a newer one)",
                path.display()
            ),
            Error::BadRecord { name, detail } => write!(f, "the record {name} is malformed: {detail}"),
            Error::Poisoned { reason } => {
                write!(f, "the index's writer stopped after a failed log write or fsync ({reason}): reopen the index")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}
