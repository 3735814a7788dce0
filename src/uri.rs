//! URIs, roots and prefixes: what is valid, and the folder rules of API.md.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// The longest URI, root or prefix accepted, in bytes.
pub const MAX_URI_BYTES: usize = 4096;

/// Validates a document URI: non-empty, no NUL, at most [`MAX_URI_BYTES`].
pub(crate) fn check_uri(uri: &str) -> Result<()> {
    if uri.is_empty() {
        return Err(Error::invalid_uri(uri, "a URI must not be empty"));
    }
    check_root(uri)
}

/// Validates a root: like a URI, but `""` (the root of everything) is allowed.
pub(crate) fn check_root(root: &str) -> Result<()> {
    if root.len() > MAX_URI_BYTES {
        return Err(Error::invalid_uri(
            root,
            format!("{} bytes is longer than the maximum of {MAX_URI_BYTES}", root.len()),
        ));
    }
    // `contains` finds a byte a word at a time (memchr); the offset is
    // looked for only to name it in the error.
    if root.as_bytes().contains(&0) {
        let at = root.bytes().position(|b| b == 0).unwrap_or_default();
        return Err(Error::invalid_uri(root, format!("NUL byte at offset {at}")));
    }
    Ok(())
}

/// Validates a raw prefix: an empty prefix would delete everything by
/// accident, so it is refused ([`Error::InvalidInput`]).
pub(crate) fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Err(Error::invalid_input(
            "an empty prefix is refused; delete everything with delete_root_path(\"\", true)",
        ));
    }
    check_root(prefix)
}

/// The prefix that every document under `root` shares: `root` itself when it
/// is empty or ends with `/`, else `root + "/"`.
pub fn folder_prefix(root: &str) -> Cow<'_, str> {
    if root.is_empty() || root.ends_with('/') {
        Cow::Borrowed(root)
    } else {
        Cow::Owned(format!("{root}/"))
    }
}

/// Where `key` (a URI under the folder prefix `prefix`) stands relative to
/// that folder: a direct child, or inside the sub-folder whose full string
/// (ending with `/`) is `key[..len]`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Place {
    Child,
    InFolder(usize),
}

/// Classifies `key`, which must start with `prefix`.
pub(crate) fn place(prefix: &[u8], key: &[u8]) -> Place {
    debug_assert!(key.starts_with(prefix));
    match key[prefix.len()..].iter().position(|&b| b == b'/') {
        None => Place::Child,
        Some(i) => Place::InFolder(prefix.len() + i + 1),
    }
}

/// The smallest byte string greater than every string that starts with
/// `prefix`, or `None` when there is none (`prefix` is all `0xff`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < u8::MAX {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_prefix_follows_the_contract() {
        assert_eq!(folder_prefix(""), "");
        assert_eq!(folder_prefix("/"), "/");
        assert_eq!(folder_prefix("a/b"), "a/b/");
        assert_eq!(folder_prefix("a/b/"), "a/b/");
        assert_eq!(folder_prefix("a//"), "a//");
    }

    #[test]
    fn place_finds_the_first_folder() {
        assert_eq!(place(b"a/", b"a/x"), Place::Child);
        assert_eq!(place(b"a/", b"a/b/c/d"), Place::InFolder(4));
        assert_eq!(place(b"a/", b"a//d"), Place::InFolder(3));
        assert_eq!(place(b"", b"/usr/x"), Place::InFolder(1));
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }

    #[test]
    fn validation() {
        assert!(check_uri("").is_err());
        assert!(check_root("").is_ok());
        assert!(check_uri("a\0").is_err());
        assert!(check_uri(&"x".repeat(MAX_URI_BYTES)).is_ok());
        assert!(check_uri(&"x".repeat(MAX_URI_BYTES + 1)).is_err());
        assert!(matches!(check_prefix(""), Err(Error::InvalidInput { .. })));
    }
}
