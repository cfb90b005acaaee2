//! URL hosts in text: what the list checks and the classifier both look for in a body.

/// Most hosts taken from one text; a message stuffed with links is not worth more.
const MAX_HOSTS: usize = 100;

/// Hosts of the http(s) URLs in a text, lower-cased, without duplicates, appended to `out`.
pub fn url_hosts(text: &str, out: &mut Vec<String>) {
    for_each_url(text, &mut |rest| {
        let host: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        push_new(out, host.trim_end_matches('.').to_owned());
    });
}

/// The authority part (`user@host:port`, as written) of the http(s) URLs in a text,
/// lower-cased, without duplicates: where a link really goes, tricks included.
pub fn url_authorities(text: &str, out: &mut Vec<String>) {
    for_each_url(text, &mut |rest| {
        let authority: String = rest
            .chars()
            .take_while(|c| {
                !c.is_whitespace() && !matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>')
            })
            .collect();
        push_new(out, authority);
    });
}

/// Appends `found` unless empty, already there, or `out` is full.
fn push_new(out: &mut Vec<String>, found: String) {
    if !found.is_empty() && !out.contains(&found) && out.len() < MAX_HOSTS {
        out.push(found);
    }
}

/// Calls `f` with what follows each `http://` or `https://` in the lower-cased text.
fn for_each_url(text: &str, f: &mut dyn FnMut(&str)) {
    let lower = text.to_ascii_lowercase();
    for scheme in ["http://", "https://"] {
        // A vectorised search: every text of every message is scanned here several times.
        for i in memchr::memmem::find_iter(lower.as_bytes(), scheme) {
            f(&lower[i + scheme.len()..]);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_are_lower_cased_once_each() {
        let mut hosts = Vec::new();
        super::url_hosts(
            "see HTTPS://Example.COM/x and http://example.com. or http://a-b.test/",
            &mut hosts,
        );
        assert_eq!(hosts, ["example.com", "a-b.test"]);
    }

    #[test]
    fn authorities_keep_what_hosts_drop() {
        let mut found = Vec::new();
        super::url_authorities(
            "<a href=\"http://www.bank.test@203.0.113.9/login\">x</a> https://b.test:8080?q",
            &mut found,
        );
        assert_eq!(found, ["www.bank.test@203.0.113.9", "b.test:8080"]);
    }
}
