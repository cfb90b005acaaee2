//! How long files and functions are, read from rustfmt-formatted text: a function runs
//! from its `fn` line to the closing brace at the same indentation.

/// A function longer than allowed: where it starts, its name and its length in lines.
#[derive(Debug, PartialEq, Eq)]
pub struct LongFunction {
    pub line: usize,
    pub name: String,
    pub lines: usize,
}

/// The functions of `text` longer than `max` lines.
pub fn long_functions(text: &str, max: usize) -> Vec<LongFunction> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else {
            continue;
        };
        let indent = &line[..line.len() - line.trim_start().len()];
        let closing = format!("{indent}}}");
        let Some(end) = lines[i + 1..].iter().position(|l| *l == closing) else {
            continue;
        };
        let length = end + 2;
        if length > max {
            out.push(LongFunction {
                line: i + 1,
                name,
                lines: length,
            });
        }
    }
    out
}

/// The name of the function a line opens (a declaration without a body has none).
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.ends_with(';') || t.starts_with("//") {
        return None;
    }
    let mut words = t.split_whitespace();
    loop {
        let w = words.next()?;
        if let Some(rest) = w.strip_prefix("fn") {
            if rest.is_empty() {
                let name = words.next()?;
                return Some(name.split(['(', '<']).next()?.to_owned());
            }
            return None;
        }
        let qualifier = w.starts_with("pub") || matches!(w, "async" | "unsafe" | "const");
        if !qualifier {
            return None;
        }
    }
}

/// Whether a file opens with a `//!` line saying what it owns.
pub fn opens_with_module_doc(text: &str) -> bool {
    text.lines().next().is_some_and(|l| l.starts_with("//!"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_ends_at_its_closing_brace() {
        let text = "pub async fn a(x: u8) {\n    if x > 0 {\n    }\n}\nfn b();\nfn c<T>() {}\n";
        assert_eq!(
            long_functions(text, 3),
            [LongFunction {
                line: 1,
                name: "a".into(),
                lines: 4
            }]
        );
        assert!(long_functions(text, 4).is_empty());
    }
}
