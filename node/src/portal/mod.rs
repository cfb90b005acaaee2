//! The end users' quarantine portal, served over HTTPS by every node (`listen.portal`, the
//! SMTP certificate): a signed link (`signed_links`) opens it once and is exchanged for a
//! session cookie, so no secret stays in the address bar; the pages list the mailbox's
//! quarantined mail and preview one message (`pages`); actions are POST forms with a CSRF
//! token, carried out by the admin service's mailbox rooms (audited, through Raft).
//! `context` is what the requests share, `handlers` the requests, `incoming` the TLS
//! connections, `server` the routes served on them, `words` what the pages say in English
//! and in French (the mailbox's domain's language).

mod context;
mod handlers;
mod incoming;
mod pages;
mod server;
mod words;

pub use context::Portal;
pub use server::serve;
