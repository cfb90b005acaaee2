//! A `peage sink` process as the cluster's downstream, and the maildirs it writes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::binaries::bin;
use crate::wait::wait_for;

/// A `peage sink` process (the downstream mail server), stopped on drop.
pub struct SinkProcess {
    child: Option<Child>,
    pub addr: String,
    pub maildir: PathBuf,
    /// The maildir's temporary directory, when the sink made its own.
    _owned_dir: Option<tempfile::TempDir>,
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SinkProcess {
    /// Starts a sink on `addr` storing under `maildir`; returns once it listens.
    pub async fn start(addr: &str, maildir: &Path) -> anyhow::Result<SinkProcess> {
        SinkProcess::start_with(addr, maildir, 20).await
    }

    /// As `start`, taking at most `per_ip` connections from one client address at once.
    pub async fn start_with(
        addr: &str,
        maildir: &Path,
        per_ip: usize,
    ) -> anyhow::Result<SinkProcess> {
        let child = Command::new(bin("peage"))
            .args([
                "sink",
                "--listen",
                addr,
                "--refuse-prefix",
                "reject-",
                "--max-connections-per-ip",
                &per_ip.to_string(),
                "--maildir",
            ])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let sink = SinkProcess {
            child: Some(child),
            addr: addr.to_owned(),
            maildir: maildir.to_owned(),
            _owned_dir: None,
        };
        wait_for("the sink listens", Duration::from_secs(20), || async {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        })
        .await?;
        Ok(sink)
    }

    /// Starts a sink on `addr` with a maildir in a temporary directory of its own, taking at
    /// most `per_ip` connections from one client address at once.
    pub async fn start_in_temp_dir(addr: &str, per_ip: usize) -> anyhow::Result<SinkProcess> {
        let dir = tempfile::tempdir()?;
        let mut sink = SinkProcess::start_with(addr, dir.path(), per_ip).await?;
        sink._owned_dir = Some(dir);
        Ok(sink)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until exactly `n` messages are stored for `rcpt`; fails naming `reason`.
    pub async fn wait_for_messages(&self, rcpt: &str, n: usize, reason: &str, timeout: Duration) {
        wait_for(reason, timeout, || async {
            (self.messages(rcpt).len() == n).then_some(())
        })
        .await
        .unwrap();
    }

    /// The messages stored for `rcpt`.
    pub fn messages(&self, rcpt: &str) -> Vec<String> {
        read_maildir(&self.maildir, rcpt)
    }
}

/// The messages in `root/<rcpt>/new`.
pub fn read_maildir(root: &Path, rcpt: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(rcpt).join("new")) else {
        return Vec::new();
    };
    entries
        // Lossy: real mail is not always UTF-8, and a skipped file would look like a loss.
        .filter_map(|e| {
            Some(String::from_utf8_lossy(&std::fs::read(e.ok()?.path()).ok()?).into_owned())
        })
        .collect()
}
