//! Where a body lives in the blob directory and which names are valid: `xx/<sha256>` by the
//! hash's first two hex digits, written through `tmp/` and renamed so no reader sees half a
//! file. Durability is not this module's business: the journal provides it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Bodies being written; emptied at open.
pub const TMP_DIR: &str = "tmp";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("`{0}` is not a SHA-256 hex digest")]
    BadHash(String),
    #[error("blob content does not match its hash {0}")]
    Mismatch(String),
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn check_hash(hash: &str) -> Result<(), BlobError> {
    if hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(BlobError::BadHash(hash.chars().take(80).collect()))
    }
}

/// The file of the body named `hash` (a checked hash).
pub fn blob_path(dir: &Path, hash: &str) -> PathBuf {
    dir.join(&hash[..2]).join(hash)
}

/// Whether a directory entry of the store is a shard of bodies (and not `tmp/` or the
/// journal).
pub fn is_shard(name: &std::ffi::OsStr) -> bool {
    name.len() == 2
        && name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Puts `bytes` in place under `hash`, not synced. A body already there is marked as just
/// written instead (a new message needs it: the sweep's grace starts again).
pub fn place(dir: &Path, hash: &str, bytes: &[u8]) -> io::Result<()> {
    let dest = blob_path(dir, hash);
    if dest.exists() {
        return File::options()
            .write(true)
            .open(&dest)?
            .set_modified(SystemTime::now());
    }
    let parent = dest.parent().expect("blob paths have a parent");
    std::fs::create_dir_all(parent)?;
    let tmp = dir
        .join(TMP_DIR)
        .join(format!("{hash}.{}", rand::random::<u64>()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &dest)
}

/// Whether the file at `path` holds exactly `bytes`.
pub fn holds(path: &Path, bytes: &[u8]) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64)
        && std::fs::read(path).is_ok_and(|b| b == bytes)
}

/// Makes everything written to the filesystem holding `dir` durable, in one call: the
/// checkpoint of a journal segment covers every body placed while it was current.
pub fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: syncfs(2) on a descriptor we own and keep open for the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
