//! A small tmpfs mounted over a directory — a disk that fills up on demand — unmounted
//! (lazily: the node may still hold files there) on drop. Mounting needs root and a
//! system that allows it; where it does not, `mount` says so and the caller skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use peage_node::spool::room::Room;

pub struct Tmpfs {
    dir: PathBuf,
}

/// The file names fillers take, so that `empty` finds them.
const FILLER: &str = "disk-filler-";

impl Tmpfs {
    /// Mounts a tmpfs of `size_mb` over `dir` (created if missing); `None`, with the
    /// reason printed, when this machine does not allow it.
    pub fn mount(dir: &Path, size_mb: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir: dir.into() }),
            Ok(o) => {
                eprintln!(
                    "cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("cannot run mount: {e}");
                None
            }
        }
    }

    /// Bytes still free on it, measured as the node measures them.
    pub fn free_bytes(&self) -> u64 {
        Room::new(self.dir.clone(), 0)
            .free_bytes()
            .expect("measure the tmpfs")
    }

    /// Writes a filler file until only `left` bytes (or nothing, the write refused) are free.
    pub fn fill_leaving(&self, left: u64) {
        let n = std::fs::read_dir(&self.dir).map_or(0, |d| d.count());
        let path = self.dir.join(format!("{FILLER}{n}"));
        let mut file = std::fs::File::create(&path).expect("create a filler");
        let chunk = vec![0u8; 64 * 1024];
        while self.free_bytes() > left {
            let want = (self.free_bytes() - left).min(chunk.len() as u64) as usize;
            if file.write_all(&chunk[..want]).is_err() {
                break;
            }
        }
    }

    /// Removes every filler: the disk has room again.
    pub fn empty(&self) {
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(FILLER) {
                std::fs::remove_file(entry.path()).expect("remove a filler");
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
