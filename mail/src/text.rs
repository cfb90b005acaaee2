//! A message's bodies decoded once: the text a reader sees of each text body (an HTML-only
//! body turned into its text) and the markup of each real HTML body. The filter's checks,
//! both classifiers' features and the bulk keys all read this one copy (decoding — and
//! turning HTML into text — was most of the filter's time when each decoded its own).
//! Also the one normalised form of text the classifier's features and the phrase rules read.

use std::borrow::Cow;

use mail_parser::{Message, PartType};

/// Bodies looked at, at most, of each kind.
pub const MAX_BODIES: usize = 20;

/// The decoded bodies of one parsed message.
pub struct MessageText<'m> {
    /// Each text body's text, in order (HTML-only bodies converted to text).
    pub texts: Vec<Cow<'m, str>>,
    /// Each real HTML body's markup, in order (a text body is never turned into HTML).
    pub htmls: Vec<&'m str>,
}

impl<'m> MessageText<'m> {
    pub fn of(msg: &'m Message<'_>) -> MessageText<'m> {
        let texts = (0..msg.text_body_count().min(MAX_BODIES))
            .filter_map(|i| msg.body_text(i))
            .collect();
        let htmls = msg
            .html_bodies()
            .filter_map(|p| match &p.body {
                PartType::Html(h) => Some(h.as_ref()),
                _ => None,
            })
            .take(MAX_BODIES)
            .collect();
        MessageText { texts, htmls }
    }

    /// Whether one of the text bodies is plain text (not HTML converted).
    pub fn has_plain(msg: &Message<'_>) -> bool {
        msg.text_bodies()
            .any(|p| matches!(p.body, PartType::Text(_)))
    }
}

/// `word` lower-cased into `buffer`, which is reused from word to word: hashing every word
/// of a message lower-cased allocated a string per word. ASCII (most words) is lower-cased
/// in place; other text as `str::to_lowercase` does.
pub fn lower_into<'b>(word: &str, buffer: &'b mut String) -> &'b str {
    buffer.clear();
    if word.is_ascii() {
        buffer.push_str(word);
        buffer.make_ascii_lowercase();
    } else {
        buffer.push_str(&word.to_lowercase());
    }
    buffer
}

/// Lower-cased, each digit made `0`, runs of whitespace made one space.
pub fn normalise(text: &str) -> String {
    let mut out = String::new();
    normalise_into(&mut out, text, &mut true);
    out
}

/// `normalise` of the `pieces` each followed by a space, without joining them first.
pub(crate) fn normalise_joined<'t>(pieces: impl Iterator<Item = &'t str>) -> String {
    let mut out = String::new();
    let mut space = true;
    for piece in pieces {
        normalise_into(&mut out, piece, &mut space);
        normalise_into(&mut out, " ", &mut space);
    }
    out
}

/// Appends `text` normalised to `out`; `space` says whether `out` ends where whitespace
/// writes nothing (at the start, or after a space written) and is kept up to date.
fn normalise_into(out: &mut String, text: &str, space: &mut bool) {
    if text.is_ascii() {
        normalise_ascii_into(out, text, space);
    } else {
        normalise_chars_into(out, text, space);
    }
}

fn normalise_chars_into(out: &mut String, text: &str, space: &mut bool) {
    out.reserve(text.len());
    for c in text.chars() {
        if c.is_whitespace() {
            if !*space {
                out.push(' ');
                *space = true;
            }
            continue;
        }
        *space = false;
        if c.is_ascii() {
            // Most text is ASCII: no Unicode case tables for it.
            out.push(if c.is_ascii_digit() {
                '0'
            } else {
                c.to_ascii_lowercase()
            });
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// `normalise_chars_into` for ASCII text, byte by byte (what `char::is_whitespace` calls
/// whitespace among ASCII bytes: space, tab, LF, VT, FF, CR).
fn normalise_ascii_into(out: &mut String, text: &str, space: &mut bool) {
    out.reserve(text.len());
    for &b in text.as_bytes() {
        if matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            if !*space {
                out.push(' ');
                *space = true;
            }
            continue;
        }
        *space = false;
        out.push(char::from(if b.is_ascii_digit() {
            b'0'
        } else {
            b.to_ascii_lowercase()
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_text_is_normalised_as_the_general_path_does() {
        let every_byte: String = (0u8..128).map(char::from).collect();
        for text in [
            every_byte.as_str(),
            "  Win\t\t500 DOLLARS\r\n\x0b\x0cnow ",
            "",
            " ",
        ] {
            let general = |text: &str| {
                let mut out = String::new();
                normalise_chars_into(&mut out, text, &mut true);
                out
            };
            assert_eq!(normalise(text), general(text), "{text:?}");
        }
    }

    #[test]
    fn pieces_are_normalised_as_if_joined_by_spaces() {
        for pieces in [
            &["Win 500", "NOW "][..],
            &["", "  a ", "", "b\r\n"],
            &["été", " Été 3"],
            &[],
        ] {
            let joined: String = pieces.iter().map(|p| format!("{p} ")).collect();
            assert_eq!(
                normalise_joined(pieces.iter().copied()),
                normalise(&joined),
                "{pieces:?}"
            );
        }
    }
}
