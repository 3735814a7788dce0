//! The text form of a [`Sort`], one reading for the command line's
//! `--sort` and the server's `sort=`: `META` or `META:asc` by a meta's
//! value, smallest first; `-META` or `META:desc`, largest first
//! (Elasticsearch writes the latter).

use std::str::FromStr;

use super::Sort;
use crate::error::Error;

impl FromStr for Sort {
    type Err = Error;

    /// Reads `META`, `META:asc`, `-META` or `META:desc` (`asc` and `desc`
    /// in any case).
    ///
    /// After a `:` only `asc` or `desc` may come, so that `date:descending`
    /// is refused rather than read as a meta of that name; a meta whose
    /// name holds a `:` is named with an explicit order (`a:b:asc`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty meta name (`""`, `-`, `:desc`),
    /// an order other than `asc` or `desc` after the last `:`, and a `-`
    /// together with an order (`-date:asc`). The reason does not repeat
    /// the text: the caller names it as its user wrote it (`--sort`,
    /// `sort=`).
    ///
    /// ```
    /// use pushdex::Sort;
    /// assert!(matches!("-date".parse::<Sort>(), Ok(Sort::Meta { name, descending: true }) if name == "date"));
    /// assert!(matches!("date:asc".parse::<Sort>(), Ok(Sort::Meta { name, descending: false }) if name == "date"));
    /// assert!("date:descending".parse::<Sort>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Sort, Error> {
        let (name, descending) = match text.rsplit_once(':') {
            Some((name, order)) if order.eq_ignore_ascii_case("asc") => (name, false),
            Some((name, order)) if order.eq_ignore_ascii_case("desc") => (name, true),
            Some((_, order)) => {
                return Err(Error::invalid_input(format!("the order after ':' is asc or desc, not {order:?}")));
            }
            None => match text.strip_prefix('-') {
                Some(name) => (name, true),
                None => (text, false),
            },
        };
        if name.is_empty() {
            return Err(Error::invalid_input("no meta name: the forms are META, -META, META:asc and META:desc"));
        }
        if name.starts_with('-') && text.contains(':') {
            return Err(Error::invalid_input("give the order once, as -META or as META:asc or META:desc"));
        }
        Ok(Sort::Meta { name: name.to_string(), descending })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, descending: bool) -> Option<(String, bool)> {
        Some((name.to_string(), descending))
    }

    fn read(text: &str) -> Option<(String, bool)> {
        match text.parse::<Sort>() {
            Ok(Sort::Meta { name, descending }) => Some((name, descending)),
            Ok(Sort::Score) => unreachable!("no text reads as the score order"),
            Err(e) => {
                assert!(matches!(e, Error::InvalidInput { .. }), "{text:?}: {e}");
                None
            }
        }
    }

    #[test]
    fn the_four_forms_and_what_is_refused() {
        assert_eq!(read("date"), meta("date", false));
        assert_eq!(read("date:asc"), meta("date", false));
        assert_eq!(read("-date"), meta("date", true));
        assert_eq!(read("date:DESC"), meta("date", true));
        assert_eq!(read("a:b:asc"), meta("a:b", false));
        assert_eq!(read("--odd"), meta("-odd", true));
        for bad in ["", "-", ":desc", "date:", "date:descending", "a:b", "-date:asc"] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }
}
