//! `peage sink`: a small downstream SMTP server for tests and `peage dev` that stores every
//! message it accepts in a maildir per recipient (`DIR/<recipient>/new/`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use peage_mail::shutdown::Trigger;
use peage_mail::smtp::address::Recipient;
use peage_mail::smtp::{self, Acceptor, ConnectionLimits, Envelope, Reply, SessionConfig};

/// Accepts every well-formed recipient and writes each message once per recipient.
pub struct MaildirSink {
    root: PathBuf,
    counter: AtomicU64,
    /// Recipients whose local part starts with this are refused with 550 (to test bounces).
    refuse_prefix: Option<String>,
}

impl MaildirSink {
    pub fn new(root: &Path, refuse_prefix: Option<String>) -> MaildirSink {
        MaildirSink {
            root: root.to_owned(),
            counter: AtomicU64::new(0),
            refuse_prefix,
        }
    }

    /// Written to `tmp/`, fsynced, then renamed into `new/`: a reader never sees half a file.
    fn store(&self, rcpt: &Recipient, message: &[u8]) -> std::io::Result<PathBuf> {
        let dir = self.root.join(mailbox_dir_name(&rcpt.address()));
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let name = format!(
            "{}.{}.{}.peage-sink",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = dir.join("tmp").join(&name);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(message)?;
        f.sync_all()?;
        let dest = dir.join("new").join(&name);
        std::fs::rename(&tmp, &dest)?;
        Ok(dest)
    }
}

/// The directory name of a recipient's maildir: the lower-cased address with every byte
/// outside `[a-z0-9._+=@-]` written `%XX`, so no byte of an address (`/`, a leading dot, a
/// NUL) ever becomes part of a path; ordinary addresses keep their own name.
pub fn mailbox_dir_name(address: &str) -> String {
    let mut name = String::with_capacity(address.len());
    for (i, b) in address.to_lowercase().bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"_+=@-".contains(&b) || (b == b'.' && i > 0);
        if plain {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name
}

impl Acceptor for MaildirSink {
    async fn check_recipient(&self, rcpt: &Recipient, _login: Option<&str>) -> Result<(), Reply> {
        match &self.refuse_prefix {
            Some(p) if rcpt.local.starts_with(p.as_str()) => Err(Reply::new(
                550,
                "5.1.1 No such user here (refused by --refuse-prefix)",
            )),
            _ => Ok(()),
        }
    }

    async fn accept(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
        for rcpt in &envelope.rcpt_to {
            if let Err(e) = self.store(rcpt, &message) {
                tracing::error!(error = %e, rcpt = %rcpt.address(), "sink cannot store a message");
                return Reply::new(451, "4.3.0 Cannot store the message, try again later");
            }
        }
        Reply::new(250, "2.0.0 Ok: stored")
    }
}

/// How the sink behaves towards its clients.
pub struct SinkOptions {
    /// Recipients whose local part starts with this are refused with 550.
    pub refuse_prefix: Option<String>,
    /// Connections one client address may hold at once (more get `421`).
    pub max_connections_per_ip: usize,
}

/// Runs the sink until `shutdown` completes.
pub async fn run(
    listen: SocketAddr,
    maildir: &Path,
    options: SinkOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(maildir)
        .with_context(|| format!("cannot create the maildir root {}", maildir.display()))?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, maildir = %maildir.display(), "sink listening");
    let (stop, stopped) = Trigger::new();
    let config = Arc::new(SessionConfig {
        hostname: "peage-sink".into(),
        banner: "ESMTP Péage test sink".into(),
        ..SessionConfig::default()
    });
    let server = tokio::spawn(smtp::serve(
        listener,
        config,
        ConnectionLimits {
            max_per_ip: options.max_connections_per_ip,
            ..ConnectionLimits::default()
        },
        Arc::new(MaildirSink::new(maildir, options.refuse_prefix)),
        None,
        stopped,
    ));
    shutdown.await;
    stop.fire();
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mailbox_dir_name;

    #[test]
    fn no_byte_of_an_address_becomes_part_of_a_path() {
        assert_eq!(mailbox_dir_name("Bob@Example.TEST"), "bob@example.test");
        assert_eq!(mailbox_dir_name("a.b+c@example.test"), "a.b+c@example.test");
        for address in [
            "/etc@x",
            "../../x@example.test",
            "a/b@x",
            ".hidden@x",
            "a\0b@x",
        ] {
            let name = mailbox_dir_name(address);
            assert!(!name.contains('/') && !name.starts_with('.') && !name.contains('\0'));
            let path = std::path::Path::new("/root").join(&name);
            assert_eq!(
                path.parent(),
                Some(std::path::Path::new("/root")),
                "{address}"
            );
        }
    }
}
