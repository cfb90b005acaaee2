//! The filter pipeline (MIME parsing, attachments, ZIP listing) on arbitrary messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peage_mail::filter::{judge, FilterInput, Knowledge, Policy};
use peage_mail::lists::{EntryKind, ListEntry};
use peage_mail::trust::Authenticated;

struct NoLists;

impl Knowledge for NoLists {
    fn lookup(&self, _: EntryKind, _: &str) -> Vec<ListEntry> {
        Vec::new()
    }
}

fuzz_target!(|data: &[u8]| {
    let input = FilterInput {
        client_ip: [198, 51, 100, 1].into(),
        helo: "fuzz.example",
        mail_from: "a@fuzz.example",
        message: data,
        proved: &Authenticated::nothing(),
        recipients: &[],
    };
    let _ = judge(&input, &NoLists, &Policy::default());
});
