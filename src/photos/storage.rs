//! Where photo files live: one small interface, and a local-filesystem implementation (the
//! S3-compatible one is in `s3.rs`).
//!
//! Files are content-addressed (named by the SHA-256 of the re-encoded bytes), so a name never
//! points at different bytes and may be cached forever; a write is a temporary file in the same
//! directory renamed into place, so a reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

/// The SHA-256 of a stored file's bytes, its name in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        crate::auth::hex(&self.0)
    }

    /// Parses 64 lower-case hex digits (as stored in the `photos` table).
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(out))
    }
}

/// A place to keep photo files. Implementations are content-addressed: `put` names the file by
/// its hash, and putting the same bytes twice is harmless.
pub trait PhotoStore: Send + Sync {
    /// Stores `bytes` atomically and returns their name.
    fn put(&self, bytes: Bytes) -> BoxFuture<'_, std::io::Result<ContentHash>>;
    /// The bytes under `hash`, or `None`.
    fn get(&self, hash: ContentHash) -> BoxFuture<'_, std::io::Result<Option<Bytes>>>;
    /// Removes the file under `hash`; removing a missing file is not an error.
    fn remove(&self, hash: ContentHash) -> BoxFuture<'_, std::io::Result<()>>;
}

/// Whether a store error means "try again later" (503) rather than a fault (500).
pub fn is_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::NotConnected
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
            | std::io::ErrorKind::ResourceBusy
    )
}

/// Files under a root directory, fanned out by the hash's first two hex digits
/// (`ab/abcdef….jpg`) so no directory grows too large.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// The directory is created on the first write, not here: a service that never receives a
    /// photo leaves no trace.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes temporary files left by a process that died mid-write. Only old ones: another
    /// replica sharing the directory may be writing right now.
    pub fn sweep_temporaries(&self, older_than: std::time::Duration) -> usize {
        let Ok(dirs) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for dir in dirs.flatten().filter(|d| d.path().is_dir()) {
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let stale = file.file_name().to_string_lossy().starts_with(".tmp-")
                    && file
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= older_than);
                if stale && std::fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    fn path(&self, hash: ContentHash) -> PathBuf {
        let hex = hash.hex();
        self.root.join(&hex[..2]).join(format!("{hex}.jpg"))
    }

    fn put_blocking(&self, bytes: &[u8]) -> std::io::Result<ContentHash> {
        let hash = ContentHash::of(bytes);
        let path = self.path(hash);
        if path.exists() {
            return Ok(hash);
        }
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        // Same directory, so the rename is atomic; a unique name, so concurrent writers of the
        // same content do not trip over each other (the last rename wins with equal bytes).
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map(|()| hash)
    }
}

impl PhotoStore for LocalStore {
    fn put(&self, bytes: Bytes) -> BoxFuture<'_, std::io::Result<ContentHash>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.put_blocking(&bytes))
                .await
                .map_err(std::io::Error::other)?
        })
    }

    fn get(&self, hash: ContentHash) -> BoxFuture<'_, std::io::Result<Option<Bytes>>> {
        let path = self.path(hash);
        Box::pin(async move {
            match tokio::fs::read(&path).await {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn remove(&self, hash: ContentHash) -> BoxFuture<'_, std::io::Result<()>> {
        let path = self.path(hash);
        Box::pin(async move {
            match tokio::fs::remove_file(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root() -> PathBuf {
        std::env::temp_dir().join(format!("citypin-photo-store-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn files_are_named_by_their_hash_and_leave_no_temporary_behind() {
        let store = LocalStore::new(temp_root());
        let hash = store.put(Bytes::from_static(b"pixels")).await.unwrap();
        assert_eq!(hash, ContentHash::of(b"pixels"));
        assert_eq!(
            store.put(Bytes::from_static(b"pixels")).await.unwrap(),
            hash
        );
        assert_eq!(
            store.get(hash).await.unwrap().as_deref(),
            Some(&b"pixels"[..])
        );
        let dir = store.path(hash).parent().unwrap().to_owned();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![format!("{}.jpg", hash.hex())]);
        store.remove(hash).await.unwrap();
        store.remove(hash).await.unwrap();
        assert!(store.get(hash).await.unwrap().is_none());
        std::fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn only_temporaries_are_swept() {
        let store = LocalStore::new(temp_root());
        let hash = store.put_blocking(b"kept").unwrap();
        let dir = store.path(hash).parent().unwrap().to_owned();
        std::fs::write(dir.join(".tmp-dead"), b"half").unwrap();
        assert_eq!(
            store.sweep_temporaries(std::time::Duration::from_secs(3600)),
            0
        );
        assert_eq!(store.sweep_temporaries(std::time::Duration::ZERO), 1);
        assert!(store.path(hash).exists());
        assert!(!dir.join(".tmp-dead").exists());
        std::fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = ContentHash::of(b"x");
        assert_eq!(ContentHash::parse(&h.hex()), Some(h));
    }

    #[test]
    fn a_path_is_not_a_hash() {
        assert_eq!(ContentHash::parse("../etc/passwd"), None);
    }

    #[test]
    fn upper_case_hex_is_not_a_hash() {
        let h = ContentHash::of(b"x");
        assert_eq!(ContentHash::parse(&h.hex().to_uppercase()), None);
    }
}
