//! The test harness: real `peage` processes in a `cluster` (configs written with the node's
//! own types, waits with deadlines), the downstream `sink`, Python's smtplib as a real SMTP
//! client (`smtp`), a DNS server answering from a table (`dns`), a plain HTTP getter (`http`), the mail `corpus`, sites as network
//! namespaces (`netns`) joined through fault-injecting link proxies (`proxy`), a disk that
//! fills up (`tmpfs`), and the
//! failover `drill`s. Waits are conditions with a deadline and a reason, never fixed
//! sleeps; every process a test starts is stopped on drop.

pub mod binaries;
pub mod browser;
pub mod cluster;
pub mod corpus;
pub mod dns;
pub mod drill;
pub mod http;
pub mod mta;
pub mod netns;
pub mod proxy;
pub mod sink;
pub mod smtp;
pub mod tidy;
pub mod tmpfs;
pub mod wait;

pub use binaries::{bin, bin_dir};
pub use cluster::{add_req, Node, TestCluster, Tuning, ADMIN_TOKEN, READ_TOKEN, SECRET, SITES};
pub use dns::DnsServer;
pub use http::{http_get, https, metric_value, HttpsReply};
pub use peage_client::v1;
pub use sink::{read_maildir, SinkProcess};
pub use smtp::{smtplib_send, smtplib_send_with, SmtpOptions, SmtpResult};
pub use wait::wait_for;
