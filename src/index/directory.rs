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
//!
//! The live index may also defer its syncs ([`DeferredSyncs`]): a commit then makes
//! changes searchable without waiting for the disk, and a background pass makes them
//! durable about once a second. A commit of one contact wrote about ten files, each
//! registered in `.managed.json`, and synced each of them, the list and `meta.json`:
//! some twenty fsyncs queued behind merges' and the store's writes, 50–150 ms under
//! load. The store stays the truth: what the index loses in a crash is replayed from
//! the change log, which is trimmed only through what the index holds durably.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
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
    deferred: Arc<DeferredSyncs>,
}

impl WritebackDirectory {
    pub fn open(root: &Path) -> Result<WritebackDirectory, OpenDirectoryError> {
        Ok(WritebackDirectory {
            inner: MmapDirectory::open(root)?,
            root: root.to_path_buf(),
            deferred: Arc::new(DeferredSyncs {
                root: root.to_path_buf(),
                pending: Mutex::default(),
                pass: Mutex::default(),
            }),
        })
    }

    /// The syncs this directory may defer (shared by its clones).
    pub fn deferred(&self) -> Arc<DeferredSyncs> {
        self.deferred.clone()
    }
}

/// The syncs a directory left for later while deferring (see the module). Off until
/// [`DeferredSyncs::start_deferring`]: an index no sync worker keeps current (a
/// rebuild's, a test's) syncs as it writes, as tantivy does.
#[derive(Debug)]
pub struct DeferredSyncs {
    root: PathBuf,
    pending: Mutex<Pending>,
    /// Held through a pass: a pass that returns has synced everything written before
    /// it began, even what a pass running on another thread had taken.
    pass: Mutex<()>,
}

#[derive(Debug, Default)]
struct Pending {
    deferring: bool,
    /// Files written completely (segment files, and the latest `meta.json` and
    /// `.managed.json`) and not synced since.
    files: BTreeSet<PathBuf>,
    /// A file was created, renamed or deleted since the directory was last synced.
    directory: bool,
}

impl DeferredSyncs {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Held only to read or update the set; no panic can happen while held.
        self.pending
            .lock()
            .expect("pending syncs lock is never poisoned")
    }

    pub fn start_deferring(&self) {
        self.lock().deferring = true;
    }

    /// Later writes sync as they go; what was deferred waits for [`Self::sync_pending`].
    pub fn stop_deferring(&self) {
        self.lock().deferring = false;
    }

    /// Whether the sync of `path`, just written, is left for later (and noted).
    fn defer(&self, path: &Path) -> bool {
        let mut pending = self.lock();
        if pending.deferring {
            pending.files.insert(path.to_path_buf());
            pending.directory = true;
        }
        pending.deferring
    }

    fn defer_directory(&self) -> bool {
        let mut pending = self.lock();
        pending.directory |= pending.deferring;
        pending.deferring
    }

    /// `path` is being deleted: it needs no sync, but its removal does.
    fn forget(&self, path: &Path) {
        let mut pending = self.lock();
        pending.files.remove(path);
        pending.directory |= pending.deferring;
    }

    /// Syncs what was deferred until now. The files are opened while the set is
    /// taken, so the `meta.json` synced is the one written before then, and every
    /// segment file it names was written (and noted) before it: the segment files
    /// are synced first, `meta.json` and `.managed.json` last, the directory after
    /// them. What is written meanwhile waits for the next pass. A file deleted since
    /// it was noted needs no sync.
    pub fn sync_pending(&self) -> io::Result<()> {
        // A pass makes only file system calls, which do not panic; a poisoned lock
        // would be taken over all the same.
        let _pass = self
            .pass
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut segment_files = Vec::new();
        let mut lists = Vec::new();
        let directory = {
            let mut pending = self.lock();
            let directory = std::mem::take(&mut pending.directory);
            let mut names = std::mem::take(&mut pending.files).into_iter();
            while let Some(name) = names.next() {
                match File::open(self.root.join(&name)) {
                    Ok(file) if is_list(&name) => lists.push((name, file)),
                    Ok(file) => segment_files.push((name, file)),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => {
                        // Everything stays for the next pass.
                        pending.files.insert(name);
                        pending.files.extend(names);
                        let taken = segment_files.into_iter().chain(lists);
                        pending.files.extend(taken.map(|(name, _)| name));
                        pending.directory |= directory;
                        return Err(error);
                    }
                }
            }
            directory
        };
        // The lists name the segment files: synced only once those are.
        if let Some((at, error)) = first_failed_sync(&segment_files) {
            let unsynced = segment_files.split_off(at);
            return Err(self.leave_for_next_pass(unsynced, lists, directory, error));
        }
        if let Some((at, error)) = first_failed_sync(&lists) {
            let unsynced = lists.split_off(at);
            return Err(self.leave_for_next_pass(Vec::new(), unsynced, directory, error));
        }
        if directory && let Err(error) = File::open(&self.root).and_then(|dir| dir.sync_all()) {
            return Err(self.leave_for_next_pass(Vec::new(), Vec::new(), true, error));
        }
        Ok(())
    }

    /// Notes again what a failed pass did not sync; answers its error.
    fn leave_for_next_pass(
        &self,
        segment_files: Vec<(PathBuf, File)>,
        lists: Vec<(PathBuf, File)>,
        directory: bool,
        error: io::Error,
    ) -> io::Error {
        let mut pending = self.lock();
        let names = segment_files.into_iter().chain(lists).map(|(name, _)| name);
        pending.files.extend(names);
        pending.directory |= directory;
        error
    }
}

/// Syncs `files` in order up to the first that fails: its place and error.
fn first_failed_sync(files: &[(PathBuf, File)]) -> Option<(usize, io::Error)> {
    files
        .iter()
        .enumerate()
        .find_map(|(at, (_, file))| file.sync_data().err().map(|error| (at, error)))
}

/// `meta.json` and `.managed.json`, the lists naming the segment files.
fn is_list(name: &Path) -> bool {
    name.extension()
        .is_some_and(|extension| extension == "json")
}

impl Directory for WritebackDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn open_read(&self, path: &Path) -> Result<FileSlice, OpenReadError> {
        self.inner.open_read(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.deferred.forget(path);
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
            path: path.to_path_buf(),
            deferred: self.deferred.clone(),
            unsynced: 0,
        })))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    /// Written whole beside, then renamed over the old file, as [`MmapDirectory`]
    /// does; while deferring, neither is synced until the next pass.
    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if !self.deferred.lock().deferring {
            return self.inner.atomic_write(path, data);
        }
        let beside = self.root.join(format!(".{}.writing", path.display()));
        std::fs::write(&beside, data)?;
        std::fs::rename(&beside, self.root.join(path))?;
        self.deferred.defer(path);
        Ok(())
    }

    fn sync_directory(&self) -> io::Result<()> {
        if self.deferred.defer_directory() {
            return Ok(());
        }
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(callback)
    }
}

/// A file being written, synced every [`SYNC_EVERY`] bytes and when terminated (or
/// at the next pass of its directory's deferred syncs).
struct WritebackFile {
    file: File,
    path: PathBuf,
    deferred: Arc<DeferredSyncs>,
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
        if self.deferred.defer(&self.path) {
            return Ok(());
        }
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

    fn pending(directory: &WritebackDirectory) -> Vec<PathBuf> {
        directory.deferred.lock().files.iter().cloned().collect()
    }

    /// While deferring, files written whole and lists replaced are noted instead of
    /// synced; a deleted file is forgotten, its removal noted; a pass syncs and clears
    /// the rest, and everything reads back as written.
    #[test]
    fn deferred_syncs_are_noted_until_a_pass() {
        let dir = tempfile::TempDir::new().unwrap();
        let directory = WritebackDirectory::open(dir.path()).unwrap();
        let write = |name: &str| {
            let mut writer = directory.open_write(Path::new(name)).unwrap();
            writer.write_all(name.as_bytes()).unwrap();
            writer.terminate().unwrap();
        };
        write("before.idx");
        assert!(pending(&directory).is_empty(), "not deferring yet");

        directory.deferred.start_deferring();
        write("a.idx");
        write("b.term");
        directory
            .atomic_write(Path::new("meta.json"), b"{\"v\": 1}")
            .unwrap();
        directory
            .atomic_write(Path::new("meta.json"), b"{\"v\": 2}")
            .unwrap();
        directory.sync_directory().unwrap();
        directory.delete(Path::new("b.term")).unwrap();
        let names: Vec<PathBuf> = ["a.idx", "meta.json"].iter().map(PathBuf::from).collect();
        assert_eq!(pending(&directory), names);
        assert!(directory.deferred.lock().directory);

        directory.deferred.sync_pending().unwrap();
        assert!(pending(&directory).is_empty());
        assert!(!directory.deferred.lock().directory);
        assert_eq!(
            directory.atomic_read(Path::new("meta.json")).unwrap(),
            b"{\"v\": 2}"
        );
        let read = directory.open_read(Path::new("a.idx")).unwrap();
        assert_eq!(read.read_bytes().unwrap().as_slice(), b"a.idx");
        directory.delete(Path::new("a.idx")).unwrap();
        assert!(pending(&directory).is_empty());
        assert!(
            directory.deferred.lock().directory,
            "a removal is synced too"
        );

        directory.deferred.stop_deferring();
        write("after.idx");
        assert!(pending(&directory).is_empty(), "synced as written again");
    }
}
