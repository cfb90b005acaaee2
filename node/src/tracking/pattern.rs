//! Text matched literally inside SQL `LIKE` patterns, for the store's searches and the
//! statistics' domain selection.

/// `LIKE` pattern text, lower-cased, with its wildcards escaped (`\` is the escape).
pub fn literal(text: &str) -> String {
    text.to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
