//! Text analysis: how a text part, and the text of a [`Query::Text`], become
//! the words that are indexed (by `segment`) and looked up (by `search`).
//! It sits below both, so that segments never import the search layer.
//!
//! One function serves both sides on purpose: a document is found by a query
//! only if both went through exactly the same analysis.
//!
//! [`Query::Text`]: crate::Query::Text

use unicode_segmentation::UnicodeSegmentation;

/// The words of `text`, in order, lower-cased (duplicates kept).
///
/// Words are cut at Unicode word boundaries (UAX #29), and only the pieces
/// holding at least one letter or digit are words: `unicode_words()` keeps a
/// piece when it has a character that is Alphabetic or of general category
/// Number, which is exactly API.md's "a word has at least one letter or
/// digit". So `"don't"`, `"3.14"` and `"U.S.A"` are one word each, every Han
/// ideograph is a word of its own (UAX #29 gives ideographs no word-joining
/// rule), and punctuation, spaces and emoji are never words.
///
/// Lower-casing is `str::to_lowercase` (full Unicode mapping, no locale): `É`
/// becomes `é`, and a word changes neither its boundaries nor whether it is a
/// word, because case mapping keeps letters letters.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.unicode_words().map(str::to_lowercase)
}

/// Calls `visit` with each of [`words`]'s words, without allocating one
/// string per word: what indexing a text part uses.
pub(crate) fn for_each_word(text: &str, visit: &mut dyn FnMut(&str)) {
    let mut lower = String::new();
    for word in text.unicode_words() {
        if word.is_ascii() {
            if word.bytes().any(|b| b.is_ascii_uppercase()) {
                lower.clear();
                lower.push_str(word);
                lower.make_ascii_lowercase();
                visit(&lower);
            } else {
                visit(word);
            }
        } else {
            visit(&word.to_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    fn split(text: &str) -> Vec<String> {
        words(text).collect()
    }

    #[test]
    fn splits_on_spaces_and_punctuation_and_lower_cases() {
        assert_eq!(split("Quarterly REPORT, 2024: final!"), ["quarterly", "report", "2024", "final"]);
        assert_eq!(split("  hello\tworld\n"), ["hello", "world"]);
        assert_eq!(split("MiXeD CaSe"), ["mixed", "case"]);
    }

    #[test]
    fn for_each_word_sees_what_words_returns() {
        for text in ["Quarterly REPORT, 2024: final!", "ΣΊΣΥΦΟΣ ÉTÉ Straße", "don't U.S.A 3.14 日本語", ""]
        {
            let mut seen = Vec::new();
            super::for_each_word(text, &mut |w| seen.push(w.to_string()));
            assert_eq!(seen, split(text), "{text:?}");
        }
    }

    #[test]
    fn keeps_duplicates_in_order() {
        assert_eq!(split("a b a"), ["a", "b", "a"]);
    }

    #[test]
    fn digits_alone_are_words() {
        assert_eq!(split("2024 7 000"), ["2024", "7", "000"]);
        assert_eq!(split("pi is 3.14"), ["pi", "is", "3.14"]);
        assert_eq!(split("1,000,000"), ["1,000,000"]);
    }

    #[test]
    fn apostrophes_and_inner_dots_join() {
        assert_eq!(split("Don't stop"), ["don't", "stop"]);
        // U+2019 RIGHT SINGLE QUOTATION MARK, as word processors write it.
        assert_eq!(split("don\u{2019}t"), ["don\u{2019}t"]);
        assert_eq!(split("U.S.A. rocks"), ["u.s.a", "rocks"]);
        assert_eq!(split("snake_case"), ["snake_case"]);
        // A quote that does not sit between two letters is not part of a word.
        assert_eq!(split("'quoted'"), ["quoted"]);
    }

    #[test]
    fn hyphens_and_slashes_split() {
        assert_eq!(split("e-mail"), ["e", "mail"]);
        // A dot joins letter to letter or digit to digit, not digit to letter.
        assert_eq!(split("file:///share/Doc1.txt"), ["file", "share", "doc1", "txt"]);
        assert_eq!(split("report.txt"), ["report.txt"]);
    }

    #[test]
    fn a_colon_between_letters_joins() {
        // UAX #29 counts ':' as MidLetter (for Swedish "S:t"): between two
        // letters it joins them into one word.
        assert_eq!(split("mailto:joe S:t"), ["mailto:joe", "s:t"]);
        assert_eq!(split("a: b"), ["a", "b"]);
        assert_eq!(split("10:30"), ["10", "30"]);
    }

    #[test]
    fn punctuation_spaces_and_symbols_alone_give_no_word() {
        assert!(split("").is_empty());
        assert!(split("   \t\n").is_empty());
        assert!(split("!?.,;:-—()[]{}\"'/\\").is_empty());
        assert!(split("+ - * / = < > # % & | ~").is_empty());
        assert!(split("\u{1F600} \u{2764}").is_empty());
    }

    #[test]
    fn accented_letters_stay_in_their_word_and_lower_case() {
        assert_eq!(split("ÉCOLE Café naïve"), ["école", "café", "naïve"]);
        // A decomposed accent (e + U+0301 COMBINING ACUTE) extends its letter.
        assert_eq!(split("CAFE\u{301} noir"), ["cafe\u{301}", "noir"]);
        assert_eq!(split("STRASSE Straße"), ["strasse", "straße"]);
        assert_eq!(split("ΣΟΦΊΑ"), ["σοφία"]);
    }

    #[test]
    fn cjk_ideographs_are_one_word_each() {
        assert_eq!(split("日本語"), ["日", "本", "語"]);
        assert_eq!(split("東京 tokyo"), ["東", "京", "tokyo"]);
        // Katakana do join (UAX #29 rule WB13).
        assert_eq!(split("カタカナ"), ["カタカナ"]);
        // Hangul syllables are letters and join like Latin ones.
        assert_eq!(split("한국어 텍스트"), ["한국어", "텍스트"]);
    }

    #[test]
    fn every_word_has_a_letter_or_digit_and_is_lower_case() {
        let text = "Mixed: ÀÉÎ 42 -- don't ... 日本 (x) _ __ 'a' Ǆ";
        for word in words(text) {
            assert!(word.chars().any(|c| c.is_alphanumeric()), "{word:?} has no letter or digit");
            assert_eq!(word, word.to_lowercase());
        }
        // "_" and "__" hold no letter or digit: not words.
        assert!(!split(text).iter().any(|w| w.chars().all(|c| c == '_')));
    }
}
