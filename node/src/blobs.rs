//! The content-addressed blob store beside the state database: message bodies, named by
//! their SHA-256, immutable, written to a temporary file, fsynced and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A cheap-to-clone handle on one node's blob directory.
#[derive(Clone)]
pub struct BlobStore {
    /// `DATA_DIR/blobs`; files live in `xx/<hash>` by the hash's first two hex digits.
    dir: Arc<PathBuf>,
}

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

fn check_hash(hash: &str) -> Result<(), BlobError> {
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

impl BlobStore {
    pub fn open(dir: &Path) -> std::io::Result<BlobStore> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(BlobStore {
            dir: Arc::new(dir.to_owned()),
        })
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(hash)
    }

    pub fn has(&self, hash: &str) -> bool {
        check_hash(hash).is_ok() && self.path(hash).exists()
    }

    /// Stores `bytes` under `hash` (which it must match) durably: when this returns, the
    /// blob survives a crash. Storing an existing blob is a no-op.
    pub fn put_blocking(&self, hash: &str, bytes: &[u8]) -> Result<(), BlobError> {
        check_hash(hash)?;
        if sha256_hex(bytes) != hash {
            return Err(BlobError::Mismatch(hash.to_owned()));
        }
        let dest = self.path(hash);
        if dest.exists() {
            return Ok(());
        }
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{hash}.{}", rand::random::<u64>()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        let parent = dest.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(parent)?;
        std::fs::rename(&tmp, &dest)?;
        // The rename is durable only once the directory is.
        std::fs::File::open(parent)?.sync_all()?;
        Ok(())
    }

    pub async fn put(&self, hash: String, bytes: Arc<Vec<u8>>) -> Result<(), BlobError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.put_blocking(&hash, &bytes))
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }

    pub async fn get(&self, hash: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_hash(hash)?;
        match tokio::fs::read(self.path(hash)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_and_refuse_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = Arc::new(b"hello".to_vec());
        let h = sha256_hex(&body);
        store.put(h.clone(), body.clone()).await.unwrap();
        store.put(h.clone(), body.clone()).await.unwrap();
        assert!(store.has(&h));
        assert_eq!(store.get(&h).await.unwrap().unwrap(), *body);
        assert!(matches!(
            store.put(h.clone(), Arc::new(b"other".to_vec())).await,
            Err(BlobError::Mismatch(_))
        ));
        assert!(matches!(
            store.get("../../etc/passwd").await,
            Err(BlobError::BadHash(_))
        ));
        assert!(store.get(&sha256_hex(b"absent")).await.unwrap().is_none());
    }
}
