//! Structure and phishing rules that need no learning: how the message is built (HTML with
//! no text alternative, hidden or shouting text, images instead of words, letters hidden
//! from word matching, text sent base64), what its headers claim (an all-capitals or
//! price-tag Subject, a tracking id after the Subject, an advertisement tag, undisclosed
//! recipients, top priority, a display name that shows another address) and where its
//! links go (link text naming one domain over a link to another, a user name before the
//! host, an escaped or numeric host, URL shorteners). Scores are in `scoring::SCORES` and `scoring::RULES_ALONE`.

use mail_parser::{Encoding, Message, PartType};

use super::phrases;
use crate::text::normalise;
use crate::text::MessageText;
use crate::urls::url_authorities;

/// HTML parts looked at, at most.
const MAX_HTML_PARTS: usize = 10;
/// Below this many visible non-space characters, an HTML message with images is mostly images.
const FEW_WORDS: usize = 200;
/// Hosts of well-known URL shorteners: the link hides where it goes.
const SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "goo.gl",
    "t.co",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "rb.gy",
    "t.ly",
    "snipurl.com",
    "v.gd",
];

type Found<'f> = dyn FnMut(&'static str, String) + 'f;

/// Runs every structure, header, link and phrase rule; reports each through
/// `found(symbol_name, reason)`.
pub(super) fn check(msg: &Message<'_>, decoded: &MessageText<'_>, found: &mut Found<'_>) {
    let mut visible = String::new();
    if let Some(s) = msg.subject() {
        visible.push_str(s);
        visible.push('\n');
    }
    for t in decoded.texts.iter().take(MAX_HTML_PARTS) {
        visible.push_str(t);
        visible.push('\n');
    }
    // Lower-cased once: the HTML rules and the link rules both read it.
    let lowered: Vec<String> = decoded
        .htmls
        .iter()
        .take(MAX_HTML_PARTS)
        .map(|h| h.to_ascii_lowercase())
        .collect();
    html_rules(msg, &lowered, &visible, found);
    header_rules(msg, found);
    link_rules(decoded, &lowered, found);
    body_caps(&visible, found);
    phrases::check(&normalise(&visible), found);
}

fn html_rules(msg: &Message<'_>, lowered: &[String], visible: &str, found: &mut Found<'_>) {
    let has_plain = MessageText::has_plain(msg);
    let mut any_html = false;
    let (mut hidden, mut shouting, mut images, mut obfuscated) = (false, false, false, false);
    for lower in lowered {
        any_html = true;
        hidden |= has_hidden_text(lower);
        shouting |= has_shouting_font(lower);
        images |= memchr::memmem::find(lower.as_bytes(), b"<img").is_some();
        obfuscated |= has_split_words(lower);
    }
    if any_html && !has_plain {
        found(
            "HTML_ONLY",
            "HTML with no plain-text alternative".to_owned(),
        );
    }
    if hidden {
        found(
            "HTML_HIDDEN_TEXT",
            "HTML text made invisible or too small to read".to_owned(),
        );
    }
    if shouting {
        found(
            "HTML_SHOUTING_FONT",
            "HTML text in a large coloured font".to_owned(),
        );
    }
    // Counted only for HTML with images: most mail has none.
    if images {
        let words = visible.chars().filter(|c| !c.is_whitespace()).count();
        if words < FEW_WORDS {
            found(
                "HTML_MOSTLY_IMAGES",
                format!("HTML with images and {words} visible characters"),
            );
        }
    }
    if obfuscated {
        found(
            "OBFUSCATED_WORDS",
            "words split by HTML comments or letters written as character references".to_owned(),
        );
    }
    if msg
        .text_bodies()
        .chain(msg.html_bodies())
        .any(|p| p.encoding == Encoding::Base64 && !matches!(p.body, PartType::Binary(_)))
    {
        found("TEXT_BASE64", "the text is sent base64-encoded".to_owned());
    }
}

/// Where `needle` starts in `hay`, left to right, without overlaps (as `match_indices`),
/// found with a vectorised search: markup is scanned for several needles a message.
fn positions<'h>(hay: &'h str, needle: &'h str) -> impl Iterator<Item = usize> + 'h {
    memchr::memmem::find_iter(hay.as_bytes(), needle.as_bytes())
}

/// The values of a CSS property in lower-cased markup (`name: value`, spaces allowed).
fn css_values<'h>(lower: &'h str, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    positions(lower, name).filter_map(move |i| {
        let rest = lower[i + name.len()..].trim_start();
        Some(rest.strip_prefix(':')?.trim_start())
    })
}

/// `display: none`, `visibility: hidden`, or a font size under 3 px or pt (or `<font size=0>`).
fn has_hidden_text(lower: &str) -> bool {
    let tiny = |v: &str| {
        let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &v[digits.len()..];
        let small = digits.parse::<u32>().is_ok_and(|n| n < 3);
        small
            && (unit.starts_with("px")
                || unit.starts_with("pt")
                || unit.starts_with([';', '"', '\'']))
    };
    css_values(lower, "display").any(|v| v.starts_with("none"))
        || css_values(lower, "visibility").any(|v| v.starts_with("hidden"))
        || css_values(lower, "font-size").any(tiny)
        || tag_attributes(lower, "<font", "size").any(|v| v == "0")
}

/// A `<font>` with a colour and a size of 4 or more (`size=5`, `size="+4"`).
fn has_shouting_font(lower: &str) -> bool {
    positions(lower, "<font").any(|i| {
        let tag = &lower[i..];
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        let big = tag_attributes(tag, "<font", "size").any(|v| {
            v.trim_start_matches('+')
                .parse::<u32>()
                .is_ok_and(|n| n >= 4)
        });
        big && tag.contains("color")
    })
}

/// Values of attribute `attribute` in each `tag` (e.g. `<font`) of lower-cased markup,
/// without their quotes.
fn tag_attributes<'h>(
    lower: &'h str,
    tag: &'h str,
    attribute: &'h str,
) -> impl Iterator<Item = &'h str> + 'h {
    let assigned = format!("{attribute}=");
    positions(lower, tag).filter_map(move |i| {
        let inside = &lower[i + tag.len()..];
        let inside = &inside[..inside.find('>').unwrap_or(inside.len())];
        let at = memchr::memmem::find(inside.as_bytes(), assigned.as_bytes())?;
        let value = inside[at + attribute.len() + 1..].trim_start_matches(['"', '\'']);
        let end = value
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '>'))
            .unwrap_or(value.len());
        Some(&value[..end])
    })
}

/// A letter, an HTML comment, a letter (`vi<!-- x -->agra`), or letters written as numeric
/// character references between literal letters (`v&#105;agra`) at least three times: both
/// hide words from matching and from the reader not at all. (A whole address written in
/// references is a newsletter hiding from harvesters, not this.)
fn has_split_words(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    let letter_at = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphabetic);
    let letter_before = |i: usize| i > 0 && letter_at(i - 1);
    let split = positions(lower, "<!--").any(|i| {
        let Some(len) = memchr::memmem::find(&bytes[i..], b"-->") else {
            return false;
        };
        len < 100 && letter_before(i) && letter_at(i + len + 3)
    });
    let inside_words = positions(lower, "&#")
        .filter(|i| {
            let rest = &lower[i + 2..];
            let (digits, radix) = match rest.strip_prefix('x') {
                Some(hex) => (hex, 16),
                None => (rest, 10),
            };
            let Some(end) = digits.find(';').filter(|&e| e <= 6) else {
                return false;
            };
            let letter = u32::from_str_radix(&digits[..end], radix)
                .ok()
                .and_then(char::from_u32)
                .is_some_and(|c| c.is_ascii_alphabetic());
            let after = i + 2 + (rest.len() - digits.len()) + end + 1;
            letter && letter_before(*i) && letter_at(after)
        })
        .count();
    split || inside_words >= 3
}

/// The first `name` header's value as written (folding kept), without its line end.
/// (As `headers_raw` would find it, without checking every other header's bytes for UTF-8.)
pub(super) fn raw_header<'m>(msg: &'m Message<'_>, name: &str) -> Option<&'m str> {
    let raw = msg.raw_message.as_ref();
    msg.headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .find_map(|h| {
            std::str::from_utf8(raw.get(h.offset_start as usize..h.offset_end as usize)?).ok()
        })
        .map(|v| v.trim_end_matches(['\r', '\n']))
}

fn header_rules(msg: &Message<'_>, found: &mut Found<'_>) {
    let raw = |name: &str| raw_header(msg, name);
    let subject = msg.subject().unwrap_or("");
    let letters = subject.chars().filter(|c| c.is_alphabetic()).count();
    if letters >= 8 && !subject.chars().any(char::is_lowercase) {
        found("SUBJECT_ALL_CAPS", "the Subject is in capitals".to_owned());
    }
    let price = subject
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit());
    if price || subject.contains("!!") || subject.contains("$$") {
        found(
            "SUBJECT_MONEY",
            "the Subject shows a price or shouts".to_owned(),
        );
    }
    if let Some(id) = raw("Subject").and_then(trailing_id) {
        found(
            "SUBJECT_TRAILING_ID",
            format!("the Subject ends with the tracking id {id:?} after a run of spaces"),
        );
    }
    let lower = subject.to_ascii_lowercase();
    if lower.starts_with("adv:") || lower.starts_with("adv ") || lower.contains("[adv]") {
        found(
            "SUBJECT_AD_TAG",
            "the Subject is tagged as an advertisement".to_owned(),
        );
    }
    if raw("To").is_some_and(|t| t.to_ascii_lowercase().contains("undisclosed")) {
        found(
            "TO_UNDISCLOSED",
            "sent to undisclosed recipients".to_owned(),
        );
    }
    let top = raw("X-Priority").is_some_and(|p| p.trim().starts_with('1'))
        || raw("X-MSMail-Priority").is_some_and(|p| p.trim().eq_ignore_ascii_case("high"));
    if top {
        found("PRIORITY_HIGH", "marked top priority".to_owned());
    }
    if let Some(why) = msg.from().and_then(|a| a.first()).and_then(forged_name) {
        found("FROM_NAME_FORGED", why);
    }
}

/// The token after a run of at least six spaces that ends a raw Subject (spam tools append
/// a per-recipient id there), if there is one.
fn trailing_id(raw_subject: &str) -> Option<&str> {
    let s = raw_subject.trim_end();
    // Any whitespace, multi-byte ones too (U+3000): cut after the whole character.
    let (cut, space) = s.char_indices().rfind(|(_, c)| c.is_whitespace())?;
    let id = &s[cut + space.len_utf8()..];
    let before = s[..cut].trim_end_matches([' ', '\t']);
    // Folding (a line break) is how long subjects wrap, not a gap.
    let gap = s.len() - id.len() - before.len();
    let gap = if space == ' ' || space == '\t' {
        gap
    } else {
        0
    };
    let folded = before.ends_with(['\r', '\n']);
    (gap >= 6 && !folded && (3..=16).contains(&id.len()) && !before.trim().is_empty()).then_some(id)
}

/// A display name that shows an address at another domain than the real one.
fn forged_name(from: &mail_parser::Addr<'_>) -> Option<String> {
    let name = from.name.as_deref()?;
    let (_, real) = from.address.as_deref()?.rsplit_once('@')?;
    let (_, shown) = name.rsplit_once('@')?;
    let shown: String = shown
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '-'))
        .collect::<String>()
        .to_lowercase();
    let real = real.to_lowercase();
    (shown.contains('.') && shown != real && !real.ends_with(&format!(".{shown}")))
        .then(|| format!("the From name shows an address at {shown}, the address is at {real}"))
}

/// The registrable part of a host, roughly: the last two labels, three under a short
/// second-level label of a two-letter country (`example.co.uk`).
fn registrable(host: &str) -> &str {
    let labels: Vec<&str> = host.trim_end_matches('.').rsplit('.').collect();
    let keep = match labels.as_slice() {
        [tld, second, _, ..] if tld.len() == 2 && second.len() <= 3 => 3,
        _ => 2,
    };
    let skip: usize = labels.iter().skip(keep).map(|l| l.len() + 1).sum();
    &host[skip.min(host.len())..]
}

fn link_rules(decoded: &MessageText<'_>, lowered: &[String], found: &mut Found<'_>) {
    let mut authorities = Vec::new();
    for t in decoded.texts.iter().take(MAX_HTML_PARTS) {
        url_authorities(t, &mut authorities);
    }
    for lower in lowered {
        url_authorities(lower, &mut authorities);
        if let Some((shown, real)) = mismatched_link(lower) {
            found(
                "LINK_TEXT_MISMATCH",
                format!("a link shows {shown} but goes to {real}"),
            );
        }
    }
    if let Some(a) = authorities.iter().find(|a| a.contains('@')) {
        found(
            "URL_USERINFO",
            format!("a link hides its host after a user name: {a}"),
        );
    }
    let hosts = authorities
        .iter()
        .map(|a| a.rsplit_once('@').map_or(a.as_str(), |(_, h)| h))
        .map(|h| h.split(':').next().unwrap_or(h));
    let mut hosts: Vec<&str> = hosts.collect();
    hosts.dedup();
    if let Some(h) = hosts.iter().find(|h| {
        h.contains('%')
            || h.starts_with("0x")
            || (!h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()))
    }) {
        found(
            "URL_OBFUSCATED_HOST",
            format!("a link's host is escaped or a bare number: {h}"),
        );
    }
    if let Some(h) = hosts.iter().find(|h| SHORTENERS.contains(h)) {
        found(
            "URL_SHORTENER",
            format!("a link goes through the shortener {h}"),
        );
    }
}

/// The first `<a href="http…">` in lower-cased markup whose text names another domain than
/// the link goes to: (domain shown, domain linked).
fn mismatched_link(lower: &str) -> Option<(String, String)> {
    positions(lower, "<a ").take(200).find_map(|i| {
        let rest = &lower[i..];
        let tag_end = rest.find('>')?;
        let href = tag_attributes(&rest[..tag_end], "<a", "href").next()?;
        let linked = href
            .strip_prefix("http://")
            .or(href.strip_prefix("https://"))?;
        let linked = linked.split(['/', '?', '#', ':']).next()?;
        let linked = linked.rsplit('@').next()?;
        let text = &rest[tag_end + 1..];
        let text = &text[..text.find("</a")?];
        let shown = shown_domain(text)?;
        let (a, b) = (registrable(&shown), registrable(linked));
        (a != b).then(|| (a.to_owned(), b.to_owned()))
    })
}

/// The domain a link's text presents as its destination (`www.bank.test`,
/// `https://bank.test/login`), if the text is an address at all.
fn shown_domain(text: &str) -> Option<String> {
    let text = text.trim();
    if text.contains('<') || text.contains(char::is_whitespace) {
        return None;
    }
    let bare = text
        .strip_prefix("http://")
        .or(text.strip_prefix("https://"))
        .unwrap_or(text);
    let host = bare.split(['/', '?', '#', ':']).next()?;
    let looks_like = text.len() > bare.len() || host.starts_with("www.");
    let labels = host.split('.').count();
    (looks_like
        && labels >= 2
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    .then(|| host.to_owned())
}

/// Visible text shouting in capitals (at least 200 letters, over 30 % capitals).
fn body_caps(visible: &str, found: &mut Found<'_>) {
    let (mut letters, mut capitals) = (0usize, 0usize);
    if visible.is_ascii() {
        // Most mail: counted bytewise, which the compiler vectorises.
        for b in visible.bytes() {
            letters += usize::from(b.is_ascii_alphabetic());
            capitals += usize::from(b.is_ascii_uppercase());
        }
    } else {
        for c in visible.chars().filter(|c| c.is_alphabetic()) {
            letters += 1;
            capitals += usize::from(c.is_uppercase());
        }
    }
    if letters >= 200 && capitals * 10 > letters * 3 {
        found(
            "BODY_MOSTLY_CAPS",
            format!("{} % of the text is in capitals", capitals * 100 / letters),
        );
    }
}
