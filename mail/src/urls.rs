//! URL hosts in text: what the list checks and the classifier both look for in a body.

/// Most hosts taken from one text; a message stuffed with links is not worth more.
const MAX_HOSTS: usize = 100;

/// Hosts of the http(s) URLs in a text, lower-cased, without duplicates, appended to `out`.
pub fn url_hosts(text: &str, out: &mut Vec<String>) {
    let lower = text.to_ascii_lowercase();
    for scheme in ["http://", "https://"] {
        let mut rest = lower.as_str();
        while let Some(i) = rest.find(scheme) {
            rest = &rest[i + scheme.len()..];
            let host: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            let host = host.trim_end_matches('.').to_owned();
            if !host.is_empty() && !out.contains(&host) && out.len() < MAX_HOSTS {
                out.push(host);
            }
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
}
