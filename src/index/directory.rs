//! The index's directory: tantivy's memory-mapped directory, except that a file being
//! written is synced to the disk every [`SYNC_EVERY`] bytes instead of only when it is
//! complete.
//!
//! Why: a merge or a rebuild writes hundreds of megabytes of segment files through the
//! page cache, and tantivy syncs each file once it is complete. With 24 GiB of memory
//! Linux starts writing dirty pages back only past gigabytes, so nearly all of it
//! reached the disk in those final syncs, and the store writer's own fsync (which
//! every acknowledged write waits for) queued behind them: writes waited 0.5 s as the
//! index scrub's merge ended. Synced as they grow, files leave a final sync little to
//! write. After each sync the writing thread pauses as long as the sync took, so the
//! store's fsyncs get the disk half the time; only background threads (merges, a
//! rebuild's or a catch-up's segment flushes) write files this large.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tantivy::directory::error::{
    DeleteError, LockError, OpenDirectoryError, OpenReadError, OpenWriteError,
};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, FileSlice, Lock, MmapDirectory,
    TerminatingWrite, WatchCallback, WatchHandle, WritePtr,
};

/// Bytes written to a file between two syncs of it.
pub const SYNC_EVERY: u64 = 8 << 20;

/// [`MmapDirectory`] with files synced as they are written (see the module).
#[derive(Debug, Clone)]
pub struct WritebackDirectory {
    inner: MmapDirectory,
    root: PathBuf,
}

impl WritebackDirectory {
    pub fn open(root: &Path) -> Result<WritebackDirectory, OpenDirectoryError> {
        Ok(WritebackDirectory {
            inner: MmapDirectory::open(root)?,
            root: root.to_path_buf(),
        })
    }
}

impl Directory for WritebackDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn open_read(&self, path: &Path) -> Result<FileSlice, OpenReadError> {
        self.inner.open_read(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    /// As [`MmapDirectory`] opens a file for writing (it must not exist), with the
    /// writer syncing as it goes. Like there, the file is durable once terminated and
    /// the directory synced.
    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.root.join(path))
            .map_err(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists {
                    OpenWriteError::FileAlreadyExists(path.to_path_buf())
                } else {
                    OpenWriteError::wrap_io_error(error, path.to_path_buf())
                }
            })?;
        Ok(BufWriter::new(Box::new(WritebackFile {
            file,
            unsynced: 0,
        })))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.inner.atomic_write(path, data)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(callback)
    }
}

/// A file being written, synced every [`SYNC_EVERY`] bytes and when terminated.
struct WritebackFile {
    file: File,
    /// Bytes written since the last sync.
    unsynced: u64,
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.unsynced += written as u64;
        if self.unsynced >= SYNC_EVERY {
            let syncing = Instant::now();
            self.file.sync_data()?;
            self.unsynced = 0;
            // Leave the disk to the store's fsyncs for as long as this sync held it:
            // back-to-back syncs of a segment being flushed kept the store's group
            // commits waiting 100–320 ms.
            std::thread::sleep(syncing.elapsed());
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl TerminatingWrite for WritebackFile {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        self.file.flush()?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is written comes back whole, past several syncs, and an existing file
    /// is refused as tantivy expects.
    #[test]
    fn files_read_back_whole_and_are_never_overwritten() {
        let dir = tempfile::TempDir::new().unwrap();
        let directory = WritebackDirectory::open(dir.path()).unwrap();
        let path = Path::new("segment.idx");
        let data: Vec<u8> = (0..(2 * SYNC_EVERY + 12_345)).map(|i| i as u8).collect();
        let mut writer = directory.open_write(path).unwrap();
        for chunk in data.chunks(100_000) {
            writer.write_all(chunk).unwrap();
        }
        writer.terminate().unwrap();
        let read = directory.open_read(path).unwrap().read_bytes().unwrap();
        assert_eq!(read.as_slice(), data.as_slice());
        assert!(matches!(
            directory.open_write(path),
            Err(OpenWriteError::FileAlreadyExists(_))
        ));
    }
}
