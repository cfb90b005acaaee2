//! Room left on the data directory's filesystem: under a floor, new mail is refused at MAIL
//! FROM with `452 4.3.1` (the sender keeps it and tries later or another MX) before it costs
//! a body here, so the space left goes to the Raft log and state, which a full disk stops.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use peage_mail::smtp::Reply;

pub struct Room {
    dir: PathBuf,
    floor_bytes: u64,
    /// Whether the last look found less than the floor: the change is logged, not each refusal.
    short: AtomicBool,
}

impl Room {
    pub fn new(dir: PathBuf, floor_bytes: u64) -> Room {
        Room {
            dir,
            floor_bytes,
            short: AtomicBool::new(false),
        }
    }

    /// The free space under which mail is refused.
    pub fn floor_bytes(&self) -> u64 {
        self.floor_bytes
    }

    /// Bytes an unprivileged writer may still use on the directory's filesystem.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let path = CString::new(self.dir.as_os_str().as_bytes())?;
        // SAFETY: statvfs(3) on a NUL-terminated path, into a struct it fills.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
    }

    /// `452 4.3.1` while the filesystem has less than the floor free. A filesystem that
    /// cannot be measured refuses nothing: the body's own write reports a real failure.
    pub fn check(&self) -> Result<(), Reply> {
        let free = match self.free_bytes() {
            Ok(free) => free,
            Err(e) => {
                tracing::debug!(error = %e, dir = %self.dir.display(), "cannot measure the free space");
                return Ok(());
            }
        };
        let short = free < self.floor_bytes;
        if short != self.short.swap(short, Ordering::Relaxed) {
            if short {
                tracing::warn!(free_mb = free >> 20, floor_mb = self.floor_bytes >> 20, dir = %self.dir.display(),
                    "the data directory is short of space: new mail is refused (452) until it is freed (spool.min_free_mb)");
            } else {
                tracing::info!(
                    free_mb = free >> 20,
                    "the data directory has room again: mail is accepted"
                );
            }
        }
        if short {
            return Err(Reply::new(
                452,
                "4.3.1 Insufficient system storage on this node; try again later or another MX",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_above_the_free_space_refuses_with_452_and_one_below_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let free = Room::new(dir.path().into(), 0).free_bytes().unwrap();
        assert!(free > 0, "a temporary directory has some room");
        assert!(Room::new(dir.path().into(), 1).check().is_ok());
        let refusal = Room::new(dir.path().into(), u64::MAX).check().unwrap_err();
        assert_eq!(refusal.code, 452);
        assert!(refusal.text.contains("4.3.1"), "{}", refusal.text);
    }

    #[test]
    fn a_directory_that_cannot_be_measured_refuses_nothing() {
        let room = Room::new("/nonexistent/peage-room-test".into(), u64::MAX);
        assert!(room.free_bytes().is_err());
        assert!(room.check().is_ok());
    }
}
