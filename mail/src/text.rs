//! A message's bodies decoded once: the text a reader sees of each text body (an HTML-only
//! body turned into its text) and the markup of each real HTML body. The filter's checks,
//! both classifiers' features and the bulk keys all read this one copy (decoding — and
//! turning HTML into text — was most of the filter's time when each decoded its own).

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
