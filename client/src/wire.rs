//! The peage.v1 enums as the words operators type and read (`ENTRY_KIND_IP` ↔ `ip`),
//! derived from the generated names, so the proto is the one place they are written.

use clap::builder::{PossibleValuesParser, TypedValueParser};

use peage_client::v1::{EntryKind, ListName};

/// A generated enum name without its prefix, lower-cased: `LIST_NAME_BLOCK` → `block`.
fn word(generated: &str, prefix: &str) -> String {
    generated
        .strip_prefix(prefix)
        .unwrap_or(generated)
        .to_ascii_lowercase()
}

const KIND_PREFIX: &str = "ENTRY_KIND_";
const LIST_PREFIX: &str = "LIST_NAME_";

/// The word for an entry kind on the wire; `?` for a value this client does not know.
pub fn kind_word(kind: i32) -> String {
    EntryKind::try_from(kind).map_or("?".into(), |k| word(k.as_str_name(), KIND_PREFIX))
}

/// The word for a list on the wire; `?` for a value this client does not know.
pub fn list_word(list: i32) -> String {
    ListName::try_from(list).map_or("?".into(), |l| word(l.as_str_name(), LIST_PREFIX))
}

/// Every value but UNSPECIFIED (0), as clap's possible values.
fn words(of: fn(i32) -> String) -> Vec<String> {
    (1..).map(of).take_while(|w| w != "?").collect()
}

/// Parses `ip`, `domain`, `sender` or `url` (whatever the proto defines).
pub fn entry_kind() -> impl TypedValueParser<Value = EntryKind> {
    PossibleValuesParser::new(words(kind_word)).try_map(|w| {
        EntryKind::from_str_name(&format!("{KIND_PREFIX}{}", w.to_ascii_uppercase()))
            .ok_or_else(|| format!("unknown entry kind {w}"))
    })
}

/// Parses `block` or `allow` (whatever the proto defines).
pub fn list_name() -> impl TypedValueParser<Value = ListName> {
    PossibleValuesParser::new(words(list_word)).try_map(|w| {
        ListName::from_str_name(&format!("{LIST_PREFIX}{}", w.to_ascii_uppercase()))
            .ok_or_else(|| format!("unknown list {w}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_come_from_the_generated_names() {
        assert_eq!(words(kind_word), ["ip", "domain", "sender", "url"]);
        assert_eq!(words(list_word), ["block", "allow"]);
        assert_eq!(kind_word(99), "?");
    }
}
