//! The mail corpus (../shared/corpus) as SMTP-ready messages, and the filter's verdict on
//! each with empty lists and the default policy: what the benchmarks and drills send.

use std::path::Path;

use peage_mail::filter::{evidence_reach_milli, judge, FilterInput, Knowledge, Policy, Verdict};
use peage_mail::lists::{EntryKind, ListEntry};

/// The corpus next to the project checkout.
pub fn default_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/train")
}

/// Every message under `dir`, as an MTA would send it (`peage_mail::eval::load_dir`).
pub fn load(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    use anyhow::Context;
    let out = peage_mail::eval::load_dir(dir).with_context(|| {
        format!(
            "reading the corpus at {} (run from the checkout, or pass --corpus DIR)",
            dir.display()
        )
    })?;
    anyhow::ensure!(!out.is_empty(), "no messages under {}", dir.display());
    Ok(out)
}

/// A list lookup with nothing in it: the filter's own cost and verdicts.
pub struct NoLists;

impl Knowledge for NoLists {
    fn lookup(&self, _: EntryKind, _: &str) -> Vec<ListEntry> {
        Vec::new()
    }
}

/// The verdicts a cluster with empty lists and the default policy may give a message: the
/// filter's own, and those the cluster's evidence can move it to (the reputation of the
/// sender's domain and network, copies of the same text seen before), which depend on what
/// the cluster saw earlier and so cannot be worked out here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedVerdict {
    /// The mildest and the strictest verdict the message may get.
    pub lowest: Verdict,
    pub highest: Verdict,
}

impl ExpectedVerdict {
    /// Exactly this verdict, whatever the evidence.
    pub fn exactly(verdict: Verdict) -> ExpectedVerdict {
        ExpectedVerdict {
            lowest: verdict,
            highest: verdict,
        }
    }

    /// Whether the message may get `verdict`.
    pub fn allows(&self, verdict: Verdict) -> bool {
        (self.lowest..=self.highest).contains(&verdict)
    }
}

/// What [`ExpectedVerdict`] `message` gets from a cluster with empty lists and the default
/// policy.
pub fn expected_verdict(message: &[u8], mail_from: &str) -> ExpectedVerdict {
    let input = FilterInput {
        client_ip: [198, 51, 100, 1].into(),
        helo: "mail.load.example",
        mail_from,
        message,
        proved: &peage_mail::trust::Authenticated::nothing(),
        recipients: &[],
    };
    let policy = Policy::default();
    let judged = judge(&input, &NoLists, &policy);
    let reach = evidence_reach_milli();
    ExpectedVerdict {
        lowest: policy.verdict_at(judged.total_milli + reach.start()),
        highest: policy.verdict_at(judged.total_milli + reach.end()),
    }
}

/// Where the corpus is: `$PEAGE_CORPUS`, else `../shared/corpus/train` from the current
/// directory (the repository root), else next to the checkout this was built from.
pub fn locate() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("PEAGE_CORPUS") {
        return Some(std::path::PathBuf::from(dir)).filter(|d| d.is_dir());
    }
    [
        Path::new("../shared/corpus/train").to_path_buf(),
        default_dir(),
    ]
    .into_iter()
    .find(|d| d.is_dir())
}

/// The corpus when it is there; otherwise (a clone away from ../shared) a small generated
/// set of plain ham and GTUBE. Returns where the messages came from.
pub fn load_or_generated() -> anyhow::Result<(String, Vec<Vec<u8>>)> {
    if let Some(dir) = locate() {
        return Ok((dir.display().to_string(), load(&dir)?));
    }
    let mut out = Vec::new();
    for n in 0..60 {
        let body = match n % 20 {
            0 => "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X".to_owned(),
            _ => format!("Hello, this is generated message {n}.\r\nSee you soon.\r\n"),
        };
        out.push(
            format!(
                "From: alice@client.example\r\nTo: drill@example.test\r\nSubject: generated {n}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <gen-{n}@client.example>\r\n\r\n{body}"
            )
            .into_bytes(),
        );
    }
    Ok(("generated (no corpus found)".into(), out))
}
