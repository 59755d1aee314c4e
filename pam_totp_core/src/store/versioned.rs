//! A compare-and-set record per user, made of immutable files: no lock, nothing held between
//! two operations, so a stopped process can delay nobody.
//!
//! Each user has a directory `<state_dir>/<key>/` (mode 0700) holding records named
//! `<generation>.state` (mode 0600).
//! The record with the highest generation is the current one. A change reads it, computes the
//! new state, and installs it as generation + 1 with `linkat` of a file written beforehand
//! (an `O_TMPFILE`, or a uniquely named temporary file where that is not supported). `linkat`
//! never replaces a name: when two changes race for the same generation exactly one succeeds,
//! and the other starts again from the winner's record. That link is the compare-and-set.
//!
//! Old generations are removed by later changes. A change whose process stalled for a long
//! time could then re-create a generation number that was removed (the ABA problem), so every
//! record carries a random id and the ids of up to [`LINEAGE`] ancestors: after its link, a
//! change checks that the current record is its own or descends from it, and otherwise removes
//! its record and starts again. If that cannot be decided (more than [`LINEAGE`] changes
//! happened meanwhile) it also starts again: a use it did record then shows up as used, so the
//! error can only refuse a code, never accept one twice.
//!
//! Durability: a change that must survive a power cut (a spent code) calls `fsync` once, on the
//! new file after it was linked; ext4, XFS and btrfs commit the new name with the file's inode
//! in that one journal commit. Failure counters and remembered hosts are not synced: losing
//! them to a power cut only makes a login ask again.
//!
//! A record written by release 0.1 (`<state_dir>/<key>.state`, format version 1) is read as
//! generation 0; the first change writes generation 1 and removes the old file and its lock.

use super::changes::Change;
use super::fs;
use crate::error::StoreError;
use crate::state::{self, State};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::Uid;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Format version of a record file.
pub const RECORD_VERSION: u32 = 2;
/// Ancestor ids a record carries.
pub const LINEAGE: usize = 64;
/// Generations kept behind the newest, for readers that are about to open them.
const KEEP: u64 = 4;
/// How long a change keeps trying when other changes keep winning.
const PATIENCE: Duration = Duration::from_secs(3);
/// Temporary files of killed writers older than this are removed.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// One record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// [`RECORD_VERSION`].
    version: u32,
    /// Must match the file name.
    generation: u64,
    /// Random id of this record.
    id: String,
    /// Ids of the ancestors, newest first.
    #[serde(default)]
    lineage: Vec<String>,
    /// The user's state.
    state: State,
}

/// The current record of a user.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) generation: u64,
    id: String,
    lineage: Vec<String>,
    pub(crate) state: State,
    /// Whether it is a release-0.1 file (to remove once replaced).
    legacy: bool,
    /// The record's file, kept open: while it still has a name, no generation after it can
    /// have been removed (see [`Records::install`]).
    file: File,
}

/// Whether a change must survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync before returning.
    Durable,
    /// Visible to every other process at once, but may be lost to a power cut.
    Volatile,
}

/// The records of all users under one directory.
#[derive(Debug, Clone)]
pub(crate) struct Records {
    pub(crate) root: PathBuf,
    /// Records younger than this are never removed, so only a change that stalled longer can
    /// meet a removed generation number.
    pub(crate) keep_for: Duration,
}

/// The default of [`Records::keep_for`].
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(60);

fn record_name(generation: u64) -> String {
    format!("{generation}.state")
}

fn generation_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".state")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Owners whose records are trusted: root's (the module), or the caller's own in a test set-up
/// where the caller is not root.
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == Uid::effective().as_raw()
}

impl Records {
    fn user_dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn legacy_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.state"))
    }

    /// Opens the directory of `key`; `Ok(None)` if it does not exist.
    fn open_user_dir(&self, key: &str) -> Result<Option<OwnedFd>, StoreError> {
        let dir = self.user_dir(key);
        let fd = match nix::fcntl::open(
            &dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => return Err(StoreError::NotRegular(dir)),
            Err(e) => return Err(StoreError::io(dir, "opening the state directory", e)),
        };
        let st = nix::sys::stat::fstat(&fd).map_err(|e| StoreError::io(&dir, "inspecting", e))?;
        if !trusted_owner(st.st_uid) {
            return Err(StoreError::WrongOwner {
                path: dir,
                owner: st.st_uid,
                expected: Uid::effective().as_raw(),
            });
        }
        if st.st_mode & 0o022 != 0 {
            return Err(StoreError::TooOpen {
                path: dir,
                mode: st.st_mode & 0o7777,
                allowed: 0o755,
            });
        }
        Ok(Some(fd))
    }

    /// Generations present, and names of temporary files, in the directory of `key`.
    fn list(&self, key: &str) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        let dir = self.user_dir(key);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(e) => return Err(StoreError::io(dir, "listing", e)),
        };
        let mut generations = Vec::new();
        let mut temps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&dir, "listing", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(g) = generation_of(name) {
                generations.push(g);
            } else if name.starts_with(".tmp-") {
                temps.push(name.to_string());
            }
        }
        generations.sort_unstable();
        Ok((generations, temps))
    }

    /// Reads one record file of `key`; `Ok(None)` if it has gone (a later change removed it).
    fn read_record(
        &self,
        key: &str,
        dirfd: &OwnedFd,
        generation: u64,
    ) -> Result<Option<(Record, File)>, StoreError> {
        let name = record_name(generation);
        let path = self.user_dir(key).join(&name);
        let Some(fd) = open_file(Some(dirfd), &path)? else {
            return Ok(None);
        };
        let (bytes, file) = read_fd(fd, &path)?;
        let corrupt = |error| StoreError::Corrupt {
            path: path.clone(),
            error,
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| corrupt(crate::error::ParseError::new("not UTF-8 text")))?;
        let record: Record = toml::from_str(text)
            .map_err(|e| corrupt(crate::error::ParseError::from_toml(&e, text, false)))?;
        if record.version != RECORD_VERSION {
            return Err(corrupt(crate::error::ParseError::key(
                "version",
                format!("unsupported version {}", record.version),
            )));
        }
        if record.generation != generation {
            return Err(corrupt(crate::error::ParseError::key(
                "generation",
                format!("{} does not match the file name", record.generation),
            )));
        }
        Ok(Some((record, file)))
    }

    /// The current record of `key`; `Ok(None)` if none was ever written.
    pub(crate) fn head(&self, key: &str) -> Result<Option<Head>, StoreError> {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            let Some(dirfd) = self.open_user_dir(key)? else {
                return self.legacy_head(key);
            };
            let (generations, _) = self.list(key)?;
            let Some(&newest) = generations.last() else {
                return self.legacy_head(key);
            };
            match self.read_record(key, &dirfd, newest)? {
                Some((r, file)) => {
                    return Ok(Some(Head {
                        generation: r.generation,
                        id: r.id,
                        lineage: r.lineage,
                        state: r.state,
                        legacy: false,
                        file,
                    }));
                }
                // Replaced and removed between the listing and the open: look again.
                None => continue,
            }
        }
        Err(StoreError::Contention(self.user_dir(key)))
    }

    fn legacy_head(&self, key: &str) -> Result<Option<Head>, StoreError> {
        let path = self.legacy_path(key);
        let Some(fd) = open_file(None, &path)? else {
            return Ok(None);
        };
        let (bytes, file) = read_fd(fd, &path)?;
        let state = State::parse(&bytes).map_err(|error| StoreError::Corrupt { path, error })?;
        Ok(Some(Head {
            generation: 0,
            id: "release-0.1".into(),
            lineage: Vec::new(),
            state,
            legacy: true,
            file,
        }))
    }

    /// Applies `change` to the current state of `key` as one compare-and-set, starting again
    /// from the newer record whenever another change won.
    pub(crate) fn update<T>(
        &self,
        key: &str,
        durability: Durability,
        mut change: impl FnMut(&mut State) -> Change<T>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            let head = self.head(key)?;
            let mut state = head
                .as_ref()
                .map(|h| h.state.clone())
                .unwrap_or_else(State::new);
            let result = match change(&mut state) {
                Change::Keep(t) => return Ok(t),
                Change::Commit(t) => t,
            };
            if self.install(key, head.as_ref(), state, durability)? {
                return Ok(result);
            }
            if start.elapsed() >= PATIENCE {
                return Err(StoreError::Contention(self.user_dir(key)));
            }
            // Lost the race: let the winner finish, then start again from its record.
            std::thread::sleep(pause.mul_f64(0.5 + random_unit()));
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Installs `state` as the successor of `head`. `Ok(false)` if another change got there
    /// first (nothing of ours is left behind).
    fn install(
        &self,
        key: &str,
        head: Option<&Head>,
        state: State,
        durability: Durability,
    ) -> Result<bool, StoreError> {
        let dirfd = self.create_user_dir(key, durability)?;
        let dir = self.user_dir(key);
        let generation = head.map_or(0, |h| h.generation) + 1;
        let mut lineage = Vec::with_capacity(LINEAGE);
        if let Some(h) = head {
            lineage.push(h.id.clone());
            lineage.extend(h.lineage.iter().take(LINEAGE - 1).cloned());
        }
        let id = random_id()?;
        let record = Record {
            version: RECORD_VERSION,
            generation,
            id: id.clone(),
            lineage,
            state,
        };
        let text = toml::to_string(&record)
            .map_err(|_| StoreError::io(&dir, "serialising the state for", Errno::EINVAL))?;
        let name = record_name(generation);
        let file = match write_unnamed(&dirfd, &dir, text.as_bytes(), &name)? {
            Some(file) => file,
            None => return Ok(false),
        };
        // The link succeeded, so nobody else holds our generation now; but if it had been used
        // and removed before (we stalled for a long time), our record is stale. Generations are
        // removed oldest first, so while our parent still has a name, ours had never been used.
        let parent_alive = head
            .is_some_and(|h| nix::sys::stat::fstat(h.file.as_fd()).is_ok_and(|st| st.st_nlink > 0));
        if !parent_alive && self.descends(key, &dirfd, generation, &id)?.is_none() {
            remove_if_same(&dirfd, &name, &file);
            return Ok(false);
        }
        if durability == Durability::Durable {
            file.sync_all()
                .map_err(|e| StoreError::io(dir.join(&name), "syncing", e))?;
        }
        let (generations, temps) = self.list(key)?;
        // Clean up, oldest first (the rule above depends on it): a release-0.1 file, generations
        // well behind ours (readers that listed just before may still open the last few), and
        // killed writers' temporary files.
        if head.is_none_or(|h| h.legacy) || generation % KEEP == 0 {
            let _ = fs::remove(&self.legacy_path(key));
            let _ = fs::remove(&self.root.join(format!("{key}.lock")));
        }
        for old in generations.iter().filter(|&&g| g + KEEP < generation) {
            let name = record_name(*old);
            if age(&dirfd, &name).is_none_or(|a| a < self.keep_for) {
                // Younger ones follow; they go with a later change.
                break;
            }
            let _ = nix::unistd::unlinkat(
                &dirfd,
                name.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        for temp in temps {
            remove_stale_temp(&dirfd, &temp);
        }
        Ok(true)
    }

    /// Whether the current record of `key` is our record (`generation`, `id`) or descends from
    /// it; if so, the directory listing. `None` if ours is a stale record.
    #[allow(clippy::type_complexity)]
    fn descends(
        &self,
        key: &str,
        dirfd: &OwnedFd,
        generation: u64,
        id: &str,
    ) -> Result<Option<(Vec<u64>, Vec<String>)>, StoreError> {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            let (generations, temps) = self.list(key)?;
            let newest = generations.last().copied().unwrap_or(generation);
            if newest <= generation {
                return Ok(Some((generations, temps)));
            }
            if newest - generation >= LINEAGE as u64 {
                // Undecidable: take ours as stale. Starting again is safe either way: a use we
                // did record shows up as used, so it is refused rather than accepted twice.
                return Ok(None);
            }
            match self.read_record(key, dirfd, newest)? {
                Some((r, _)) if r.lineage.iter().any(|a| a == id) => {
                    return Ok(Some((generations, temps)));
                }
                Some(_) => return Ok(None),
                // Replaced meanwhile: look at the newer one.
                None => continue,
            }
        }
        Err(StoreError::Contention(self.user_dir(key)))
    }

    /// Creates (or opens) the directory of `key`, checked like every directory we trust.
    fn create_user_dir(&self, key: &str, durability: Durability) -> Result<OwnedFd, StoreError> {
        if let Some(fd) = self.open_user_dir(key)? {
            return Ok(fd);
        }
        let dir = self.user_dir(key);
        // The new directory's name is synced once, by whoever made it (and by a durable change
        // that raced with the maker), so a spent code's record never hangs on an unsynced name.
        let sync = match nix::unistd::mkdir(&dir, Mode::from_bits_truncate(0o700)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => durability == Durability::Durable,
            Err(e) => return Err(StoreError::io(dir, "creating the state directory", e)),
        };
        if sync {
            let root = File::open(&self.root)
                .map_err(|e| StoreError::io(&self.root, "opening the state directory", e))?;
            root.sync_all()
                .map_err(|e| StoreError::io(&self.root, "syncing the state directory", e))?;
        }
        self.open_user_dir(key)?
            .ok_or_else(|| StoreError::io(&dir, "opening the state directory", Errno::ENOENT))
    }

    /// Throws away every record of `key` (an administrator's reset of a corrupt record): the
    /// directory is renamed out of the way first, so no login sees half of it.
    pub(crate) fn discard(&self, key: &str) -> Result<(), StoreError> {
        let dir = self.user_dir(key);
        let aside = self.root.join(format!(".discarded-{key}-{}", random_id()?));
        match std::fs::rename(&dir, &aside) {
            Ok(()) => {
                std::fs::remove_dir_all(&aside)
                    .map_err(|e| StoreError::io(&aside, "removing", e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(dir, "moving aside", e)),
        }
        fs::remove(&self.legacy_path(key))?;
        let _ = fs::remove(&self.root.join(format!("{key}.lock")));
        Ok(())
    }

    /// Every key with a directory or a release-0.1 file under the root.
    pub(crate) fn keys(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
            Err(e) => return Err(StoreError::io(&self.root, "listing", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&self.root, "listing", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                keys.push(name.to_string());
            } else if let Some(key) = name.strip_suffix(".state") {
                keys.push(key.to_string());
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// Opens `path` (relative to `dirfd`, by its file name, when given) for reading, without
/// following a link or blocking on a FIFO; `Ok(None)` if it is not there.
fn open_file(dirfd: Option<&OwnedFd>, path: &Path) -> Result<Option<OwnedFd>, StoreError> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let opened = match (dirfd, path.file_name()) {
        (Some(dirfd), Some(name)) => nix::fcntl::openat(dirfd, name, flags, Mode::empty()),
        _ => nix::fcntl::open(path, flags, Mode::empty()),
    };
    match opened {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP) => Err(StoreError::Symlink(path.into())),
        Err(e) => Err(StoreError::io(path, "opening", e)),
    }
}

/// Reads a record file from its descriptor after checking it there.
fn read_fd(fd: OwnedFd, path: &Path) -> Result<(Vec<u8>, File), StoreError> {
    let st = nix::sys::stat::fstat(&fd).map_err(|e| StoreError::io(path, "inspecting", e))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(StoreError::NotRegular(path.into()));
    }
    if !trusted_owner(st.st_uid) {
        return Err(StoreError::WrongOwner {
            path: path.into(),
            owner: st.st_uid,
            expected: Uid::effective().as_raw(),
        });
    }
    let mode = st.st_mode & 0o7777;
    if mode & !0o644 != 0 {
        return Err(StoreError::TooOpen {
            path: path.into(),
            mode,
            allowed: 0o644,
        });
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size == 0 || size > state::MAX_FILE_SIZE {
        return Err(StoreError::BadSize {
            path: path.into(),
            size,
        });
    }
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut file = File::from(fd);
    (&mut file)
        .take(state::MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| StoreError::io(path, "reading", e))?;
    Ok((data, file))
}

/// Writes `data` to a new file and links it as `name`. `Ok(None)` if `name` exists already.
fn write_unnamed(
    dirfd: &OwnedFd,
    dir: &Path,
    data: &[u8],
    name: &str,
) -> Result<Option<File>, StoreError> {
    let mode = Mode::from_bits_truncate(0o600);
    match nix::fcntl::openat(
        dirfd,
        ".",
        OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        mode,
    ) {
        Ok(fd) => {
            let file = fill(fd, dir, data)?;
            match nix::unistd::linkat(&file, "", dirfd, name, AtFlags::AT_EMPTY_PATH) {
                Ok(()) => return Ok(Some(file)),
                Err(Errno::EEXIST) => return Ok(None),
                // Linking an unnamed file needs CAP_DAC_READ_SEARCH: fall back to a named one.
                Err(Errno::ENOENT) | Err(Errno::EPERM) => {}
                Err(e) => return Err(StoreError::io(dir.join(name), "linking", e)),
            }
        }
        // Filesystems without O_TMPFILE.
        Err(Errno::EOPNOTSUPP) | Err(Errno::EISDIR) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(StoreError::io(dir, "creating a file in", e)),
    }
    let temp = format!(".tmp-{}", random_id()?);
    let fd = nix::fcntl::openat(
        dirfd,
        temp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(|e| StoreError::io(dir.join(&temp), "creating", e))?;
    let filled = fill(fd, dir, data);
    let linked = filled.and_then(|file| {
        match nix::unistd::linkat(dirfd, temp.as_str(), dirfd, name, AtFlags::empty()) {
            Ok(()) => Ok(Some(file)),
            Err(Errno::EEXIST) => Ok(None),
            Err(e) => Err(StoreError::io(dir.join(name), "linking", e)),
        }
    });
    let _ = nix::unistd::unlinkat(
        dirfd,
        temp.as_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    linked
}

fn fill(fd: OwnedFd, dir: &Path, data: &[u8]) -> Result<File, StoreError> {
    // The umask may have narrowed the mode; set it exactly.
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
        .map_err(|e| StoreError::io(dir, "setting the mode of a file in", e))?;
    let mut file = File::from(fd);
    file.write_all(data)
        .map_err(|e| StoreError::io(dir, "writing a file in", e))?;
    Ok(file)
}

/// Removes `name` if it is still the file we wrote (not a later writer's).
fn remove_if_same(dirfd: &OwnedFd, name: &str, ours: &File) {
    let Ok(mine) = nix::sys::stat::fstat(ours.as_fd()) else {
        return;
    };
    let Ok(there) = nix::sys::stat::fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return;
    };
    if mine.st_ino == there.st_ino && mine.st_dev == there.st_dev {
        let _ = nix::unistd::unlinkat(dirfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

/// How long ago `name` was written; `None` if it is gone.
fn age(dirfd: &OwnedFd, name: &str) -> Option<Duration> {
    let st = nix::sys::stat::fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(Duration::from_secs(
        now.saturating_sub(u64::try_from(st.st_mtime).unwrap_or(0)),
    ))
}

fn remove_stale_temp(dirfd: &OwnedFd, name: &str) {
    if age(dirfd, name).is_some_and(|a| a >= STALE_TEMP) {
        let _ = nix::unistd::unlinkat(dirfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

fn random_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    crate::secret::random_fill(&mut bytes)
        .map_err(|_| StoreError::io("/dev/urandom", "reading", Errno::EIO))?;
    Ok(crate::secret::to_hex(&bytes))
}

/// A number in [0, 1) for jitter (not security relevant).
fn random_unit() -> f64 {
    let mut b = [0u8; 2];
    let _ = crate::secret::random_fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / 65536.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(tag: &str) -> Records {
        let d = std::env::temp_dir().join(format!("pam-totp-rec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Records {
            root: d,
            keep_for: Duration::ZERO,
        }
    }

    fn bump(r: &Records, key: &str) {
        r.update(key, Durability::Volatile, |s| {
            s.user_failures.count += 1;
            Change::Commit(())
        })
        .unwrap();
    }

    #[test]
    fn generations_advance_and_old_ones_go() {
        let r = records("gen");
        assert!(r.head("alice").unwrap().is_none());
        for _ in 0..5 {
            bump(&r, "alice");
        }
        let head = r.head("alice").unwrap().unwrap();
        assert_eq!(head.generation, 5);
        assert_eq!(head.state.user_failures.count, 5);
        assert_eq!(head.lineage.len(), 4);
        let dirfd = r.open_user_dir("alice").unwrap().unwrap();
        let parent = r.read_record("alice", &dirfd, 4).unwrap().unwrap().0;
        assert_eq!(head.lineage[0], parent.id);
        let (gens, temps) = r.list("alice").unwrap();
        assert_eq!(gens, vec![1, 2, 3, 4, 5]);
        for _ in 0..5 {
            bump(&r, "alice");
        }
        let (gens, _) = r.list("alice").unwrap();
        assert_eq!(gens, vec![6, 7, 8, 9, 10], "older generations are removed");
        assert!(temps.is_empty());
        std::fs::remove_dir_all(&r.root).unwrap();
    }

    #[test]
    fn given_stale_writer_reusing_a_removed_generation_then_it_starts_again() {
        let r = records("aba");
        bump(&r, "u");
        let stale = r.head("u").unwrap().unwrap();
        for _ in 0..8 {
            bump(&r, "u");
        }
        // Generation 2 is gone; a writer that read generation 1 long ago links it again.
        assert!(!r.user_dir("u").join("2.state").exists());
        let mut s = stale.state.clone();
        s.user_failures.count = 1000;
        assert!(
            !r.install("u", Some(&stale), s, Durability::Volatile)
                .unwrap()
        );
        assert!(
            !r.user_dir("u").join("2.state").exists(),
            "its record is removed"
        );
        assert_eq!(r.head("u").unwrap().unwrap().state.user_failures.count, 9);
        std::fs::remove_dir_all(&r.root).unwrap();
    }

    #[test]
    fn given_release_0_1_file_then_read_and_replaced() {
        let r = records("legacy");
        let mut old = State::new();
        old.backup_set = "b".into();
        old.backup_used = vec![1, 4];
        std::fs::write(r.root.join("bob.state"), old.to_toml().unwrap()).unwrap();
        std::fs::write(r.root.join("bob.lock"), b"").unwrap();
        let head = r.head("bob").unwrap().unwrap();
        assert_eq!(head.generation, 0);
        assert_eq!(head.state.backup_used, vec![1, 4]);
        bump(&r, "bob");
        assert!(!r.root.join("bob.state").exists());
        assert!(!r.root.join("bob.lock").exists());
        let head = r.head("bob").unwrap().unwrap();
        assert_eq!(head.generation, 1);
        assert_eq!(
            head.state.backup_used,
            vec![1, 4],
            "used codes carried over"
        );
        assert_eq!(r.keys().unwrap(), vec!["bob".to_string()]);
        std::fs::remove_dir_all(&r.root).unwrap();
    }

    #[test]
    fn given_corrupt_record_then_error_and_left_alone() {
        let r = records("corrupt");
        bump(&r, "c");
        let path = r.user_dir("c").join("1.state");
        std::fs::write(&path, b"garbage [").unwrap();
        assert!(matches!(r.head("c"), Err(StoreError::Corrupt { .. })));
        assert!(matches!(
            r.update("c", Durability::Volatile, |_| Change::Commit(())),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"garbage [");
        assert_eq!(r.list("c").unwrap().0, vec![1], "nothing written beside it");
        std::fs::remove_dir_all(&r.root).unwrap();
    }

    #[test]
    fn racing_threads_lose_no_update() {
        // As in production: records younger than a minute stay (the ABA case has its own
        // test above, with removal at once).
        let mut r = records("race");
        r.keep_for = KEEP_FOR;
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        bump(&r, "racer");
                    }
                });
            }
        });
        assert_eq!(
            r.head("racer").unwrap().unwrap().state.user_failures.count,
            200
        );
        std::fs::remove_dir_all(&r.root).unwrap();
    }
}
