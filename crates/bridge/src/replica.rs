//! Who this process is in leases (the job worker's, the subscriptions'). A process that
//! restarts on the same host with the same data directory is the same replica: it takes its
//! own leases back at once instead of waiting for its dead predecessor's to run out. Two live
//! processes never share a name: the first holds an exclusive lock on `replica.lock` in the
//! data directory (released by the OS however the process ends), and a second process started
//! on the same directory meanwhile gets a name of its own.

use std::fs::File;
use std::path::Path;

use sha2::Digest;

pub const LOCK_FILE_NAME: &str = "replica.lock";

#[derive(Debug)]
pub struct Replica {
    id: String,
    /// Held for the process's life; its lock is what makes `id` this process's alone.
    _lock: Option<File>,
}

impl Replica {
    /// This process's replica, from the host name and the data directory.
    pub fn claim(data_dir: &Path) -> Self {
        let host = hostname();
        let lock = std::fs::create_dir_all(data_dir)
            .and_then(|()| File::options().create(true).truncate(false).write(true).open(data_dir.join(LOCK_FILE_NAME)))
            .ok()
            .filter(|file| file.try_lock().is_ok());
        let id = match &lock {
            Some(_) => {
                let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
                let digest = sha2::Sha256::digest(dir.to_string_lossy().as_bytes());
                format!("{host}-{}", &hex::encode(digest)[..12])
            }
            None => {
                tracing::warn!(
                    data_dir = %data_dir.display(),
                    "another process holds this data directory; this one takes a name of its own, so a restart of it will wait for its leases to expire"
                );
                format!("{host}-{}", uuid::Uuid::new_v4().simple())
            }
        };
        Self { id, _lock: lock }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "byoc".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_the_same_replica_a_second_live_process_is_not() {
        let dir = tempfile_dir();
        let first = Replica::claim(&dir);
        let second = Replica::claim(&dir);
        assert_ne!(first.id(), second.id(), "two live processes, two names");
        let id = first.id().to_owned();
        drop(second);
        drop(first);
        assert_eq!(Replica::claim(&dir).id(), id, "the same directory after a stop: the same replica");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("byoc-replica-{}", uuid::Uuid::new_v4().simple()))
    }
}
