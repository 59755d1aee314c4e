//! The only code that touches the file system. Secret files are opened with O_NOFOLLOW and
//! checked on the open descriptor, under the filesystem identity of their owner; every write
//! goes to a temporary file in the same directory, is fsynced, renamed into place, and the
//! directory fsynced; the state of a user is read, changed and written under one lock.
//!
//! [`Backend`] is the small interface the module and the CLI use. [`LocalFiles`] implements it
//! with files; a shared backend for fleets (a directory server) would implement the same trait.

use crate::error::StoreError;
use crate::secret_file::{self, SecretFile};
use crate::state::{self, State};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, RenameFlags};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A local account, as the password database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

impl UserInfo {
    /// Looks a user up by name (NSS: local files, LDAP, SSSD...).
    ///
    /// # Errors
    /// `Ok(None)` if there is no such user; `Err` if the lookup itself failed.
    pub fn lookup(name: &str) -> Result<Option<UserInfo>, StoreError> {
        if name.is_empty() || name.contains('\0') {
            return Ok(None);
        }
        Self::from_nss(nix::unistd::User::from_name(name), "looking up the user in")
    }

    /// Looks a user up by numeric id.
    ///
    /// # Errors
    /// The lookup failed.
    pub fn lookup_uid(uid: u32) -> Result<Option<UserInfo>, StoreError> {
        Self::from_nss(
            nix::unistd::User::from_uid(Uid::from_raw(uid)),
            "looking up the uid in",
        )
    }

    fn from_nss(
        found: nix::Result<Option<nix::unistd::User>>,
        op: &'static str,
    ) -> Result<Option<UserInfo>, StoreError> {
        match found {
            Ok(u) => Ok(u.map(|u| UserInfo {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                home: u.dir,
            })),
            Err(e) => Err(StoreError::io("/etc/passwd", op, e)),
        }
    }
}

/// Switches the thread's filesystem uid and gid (setfsuid/setfsgid) and switches back on drop.
/// File access then uses that identity's rights (NFS root-squash, read-only homes, and a user
/// cannot point the module at a file they could not read themselves). Only root can switch; for
/// anyone else this is a no-op, since they already act as themselves.
pub struct FsIdentity {
    saved: Option<(Uid, Gid)>,
}

impl FsIdentity {
    /// Becomes `uid`/`gid` for file access.
    ///
    /// # Errors
    /// The switch did not take effect (checked by reading the value back).
    pub fn switch(uid: u32, gid: u32) -> Result<FsIdentity, StoreError> {
        if !Uid::effective().is_root() || uid == 0 {
            return Ok(FsIdentity { saved: None });
        }
        let old_gid = nix::unistd::setfsgid(Gid::from_raw(gid));
        let old_uid = nix::unistd::setfsuid(Uid::from_raw(uid));
        let guard = FsIdentity {
            saved: Some((old_uid, old_gid)),
        };
        // setfsuid returns the previous value; calling it with an invalid id reads the current one.
        let now_uid = nix::unistd::setfsuid(Uid::from_raw(u32::MAX));
        let now_gid = nix::unistd::setfsgid(Gid::from_raw(u32::MAX));
        if now_uid.as_raw() != uid || now_gid.as_raw() != gid {
            return Err(StoreError::io(
                "/",
                "switching the filesystem identity for",
                Errno::EPERM,
            ));
        }
        Ok(guard)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.saved.take() {
            nix::unistd::setfsuid(uid);
            nix::unistd::setfsgid(gid);
        }
    }
}

/// What a file must look like to be read.
#[derive(Debug, Clone, Copy)]
pub struct ReadRules {
    /// Required owner; `None` skips the check (`no_strict_owner`).
    pub owner: Option<u32>,
    /// Permission bits allowed (e.g. 0o600).
    pub allowed_perm: u32,
    /// Largest size accepted.
    pub max_size: u64,
}

/// Opens `path` without following a final symlink and without blocking on a FIFO, checks type,
/// owner, mode and size on the descriptor, and reads it. `Ok(None)` if it does not exist.
///
/// # Errors
/// Any failed check or I/O error.
pub fn read_checked(
    path: &Path,
    rules: &ReadRules,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    Ok(read_checked_owner(path, rules)?.map(|(data, _)| data))
}

/// File contents and the uid owning the file.
pub type OwnedBytes = (Zeroizing<Vec<u8>>, u32);

/// As [`read_checked`], also returning the owner's uid as seen on the open descriptor (for
/// callers that accept one of several owners).
///
/// # Errors
/// Any failed check or I/O error.
pub fn read_checked_owner(
    path: &Path,
    rules: &ReadRules,
) -> Result<Option<OwnedBytes>, StoreError> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY
        | OFlag::O_NONBLOCK;
    let fd = match nix::fcntl::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(StoreError::Symlink(path.into())),
        Err(e) => return Err(StoreError::io(path, "opening", e)),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| StoreError::io(path, "inspecting", e))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(StoreError::NotRegular(path.into()));
    }
    if let Some(owner) = rules.owner {
        if st.st_uid != owner {
            return Err(StoreError::WrongOwner {
                path: path.into(),
                owner: st.st_uid,
                expected: owner,
            });
        }
    }
    let mode = st.st_mode & 0o7777;
    if mode & !rules.allowed_perm != 0 {
        return Err(StoreError::TooOpen {
            path: path.into(),
            mode,
            allowed: rules.allowed_perm,
        });
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size == 0 || size > rules.max_size {
        return Err(StoreError::BadSize {
            path: path.into(),
            size,
        });
    }
    let mut data = Zeroizing::new(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
    let mut file = File::from(fd);
    // Read at most one byte past the limit to notice a file that grew.
    (&mut file)
        .take(rules.max_size + 1)
        .read_to_end(&mut data)
        .map_err(|e| StoreError::io(path, "reading", e))?;
    if data.is_empty() || data.len() as u64 > rules.max_size {
        return Err(StoreError::BadSize {
            path: path.into(),
            size: data.len() as u64,
        });
    }
    Ok(Some((data, st.st_uid)))
}

fn split(path: &Path) -> Result<(&Path, &std::ffi::OsStr), StoreError> {
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::io(path, "naming", Errno::EINVAL))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir, name))
}

fn open_dir(dir: &Path) -> Result<OwnedFd, StoreError> {
    nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StoreError::io(dir, "opening the directory", e))
}

/// Whether an atomic write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Fail with [`StoreError::Exists`] if the target exists (checked atomically at the rename).
    No,
    /// Replace it.
    Yes,
}

/// Writes `data` to `path` atomically: a temporary file in the same directory (O_EXCL,
/// O_NOFOLLOW, `mode`), fsync, rename over the target, fsync the directory. On any error the
/// temporary file is removed and the target is untouched.
///
/// # Errors
/// Any I/O error, or [`StoreError::Exists`] with [`Replace::No`].
pub fn write_atomic(
    path: &Path,
    data: &[u8],
    mode: u32,
    replace: Replace,
) -> Result<(), StoreError> {
    let mut suffix = [0u8; 6];
    crate::secret::random_fill(&mut suffix)
        .map_err(|_| StoreError::io(path, "randomising a name for", Errno::EIO))?;
    write_via(
        path,
        data,
        mode,
        replace,
        &format!("tmp-{}", crate::secret::to_hex(&suffix)),
        false,
    )
}

/// As [`write_atomic`], for callers that hold the file's lock: the temporary file has a fixed
/// name (`.NAME.tmp`), and a leftover of a writer killed mid-write is removed first, so killed
/// logins never pile up temporary files in the state directory.
///
/// # Errors
/// Any I/O error.
pub fn write_atomic_locked(path: &Path, data: &[u8], mode: u32) -> Result<(), StoreError> {
    write_via(path, data, mode, Replace::Yes, "tmp", true)
}

fn write_via(
    path: &Path,
    data: &[u8],
    mode: u32,
    replace: Replace,
    suffix: &str,
    remove_leftover: bool,
) -> Result<(), StoreError> {
    let (dir, name) = split(path)?;
    let dirfd = open_dir(dir)?;
    let tmp_name = format!(".{}.{suffix}", name.to_string_lossy());
    if remove_leftover {
        match nix::unistd::unlinkat(
            &dirfd,
            tmp_name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(StoreError::io(
                    dir.join(&tmp_name),
                    "removing the leftover",
                    e,
                ));
            }
        }
    }
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(
        &dirfd,
        tmp_name.as_str(),
        flags,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| StoreError::io(dir.join(&tmp_name), "creating", e))?;
    let result = (|| {
        // The umask may have narrowed the mode; set it exactly.
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
            .map_err(|e| StoreError::io(path, "setting the mode of", e))?;
        let mut file = File::from(fd);
        file.write_all(data)
            .map_err(|e| StoreError::io(path, "writing", e))?;
        file.sync_all()
            .map_err(|e| StoreError::io(path, "syncing", e))?;
        let flags = match replace {
            Replace::No => RenameFlags::RENAME_NOREPLACE,
            Replace::Yes => RenameFlags::empty(),
        };
        match nix::fcntl::renameat2(&dirfd, tmp_name.as_str(), &dirfd, name, flags) {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) => Err(StoreError::Exists(path.into())),
            Err(e) => Err(StoreError::io(path, "renaming into place", e)),
        }
    })();
    if result.is_err() {
        let _ = nix::unistd::unlinkat(
            &dirfd,
            tmp_name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        return result;
    }
    nix::unistd::fsync(&dirfd).map_err(|e| StoreError::io(dir, "syncing the directory", e))
}

/// Removes `path` and syncs its directory. `Ok(false)` if it did not exist.
///
/// # Errors
/// Any I/O error.
pub fn remove(path: &Path) -> Result<bool, StoreError> {
    let (dir, name) = split(path)?;
    let dirfd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match nix::unistd::unlinkat(&dirfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(StoreError::io(path, "removing", e)),
    }
    nix::unistd::fsync(&dirfd).map_err(|e| StoreError::io(dir, "syncing the directory", e))?;
    Ok(true)
}

/// An exclusive lock on a lock file (never on the file being replaced: a rename swaps inodes).
#[derive(Debug)]
pub struct LockGuard {
    _lock: Flock<File>,
}

/// Takes an exclusive `flock` on `path` (created 0600 if missing), waiting up to `timeout`.
///
/// # Errors
/// The lock file cannot be opened, or [`StoreError::LockTimeout`].
pub fn lock(path: &Path, timeout: Duration) -> Result<LockGuard, StoreError> {
    let flags =
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = match nix::fcntl::open(path, flags, Mode::from_bits_truncate(0o600)) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) => return Err(StoreError::Symlink(path.into())),
        Err(e) => return Err(StoreError::io(path, "opening the lock", e)),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| StoreError::io(path, "inspecting", e))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(StoreError::NotRegular(path.into()));
    }
    let mut file = File::from(fd);
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(LockGuard { _lock: lock }),
            Err((f, Errno::EWOULDBLOCK)) | Err((f, Errno::EINTR)) => {
                if start.elapsed() >= timeout {
                    return Err(StoreError::LockTimeout(path.into()));
                }
                file = f;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err((_, e)) => return Err(StoreError::io(path, "locking", e)),
        }
    }
}

/// Expands a path template: a leading `~`, `${HOME}` and `%h` become the home directory,
/// `${USER}` and `%u` the user name, `%%` a percent sign.
///
/// # Errors
/// An unknown escape, a user name that is not a safe file name, or a relative result.
pub fn expand_template(template: &str, user: &UserInfo) -> Result<PathBuf, String> {
    if !safe_file_name(&user.name) {
        return Err(format!(
            "the user name {:?} cannot be used in a path",
            user.name
        ));
    }
    let home = user.home.to_string_lossy();
    let mut out = String::new();
    let mut rest = template;
    if let Some(r) = rest.strip_prefix('~') {
        if !(r.is_empty() || r.starts_with('/')) {
            return Err("`~` must be followed by `/` (`~user` is not supported)".into());
        }
        out.push_str(&home);
        rest = r;
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("${HOME}") {
            out.push_str(&home);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${USER}") {
            out.push_str(&user.name);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%h") {
            out.push_str(&home);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%u") {
            out.push_str(&user.name);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%%") {
            out.push('%');
            rest = r;
        } else if rest.starts_with('%') || rest.starts_with("${") {
            return Err(format!(
                "unknown escape at `{}` (use ~, ${{HOME}}, ${{USER}}, %h, %u or %%)",
                rest.chars().take(8).collect::<String>()
            ));
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let path = PathBuf::from(out);
    if !path.is_absolute() {
        return Err("the path must be absolute (start with /, ~ or ${HOME})".into());
    }
    Ok(path)
}

/// Whether a user name can be used as it is in a file name.
pub fn safe_file_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'$'))
}

/// The storage interface of the module and the CLI.
pub trait Backend {
    /// Where the secret of `user` lives (for messages).
    fn secret_location(&self, user: &UserInfo) -> Result<PathBuf, StoreError>;
    /// Reads and parses the secret of `user`; `Ok(None)` if there is none.
    fn load_secret(&self, user: &UserInfo) -> Result<Option<SecretFile>, StoreError>;
    /// Writes the secret of `user`, replacing an existing one only if asked.
    fn save_secret(
        &self,
        user: &UserInfo,
        file: &SecretFile,
        replace: Replace,
    ) -> Result<PathBuf, StoreError>;
    /// Deletes the secret of `user`; `Ok(false)` if there was none.
    fn remove_secret(&self, user: &UserInfo) -> Result<bool, StoreError>;
    /// Locks the state of `user` until the guard is dropped.
    fn lock_state(&self, user: &str) -> Result<StateLock, StoreError>;
    /// Reads the state of the locked user (a fresh state if there is none yet).
    fn load_state(&self, lock: &StateLock) -> Result<State, StoreError>;
    /// Replaces the state of the locked user.
    fn save_state(&self, lock: &StateLock, state: &State) -> Result<(), StoreError>;
    /// Reads the state of `user` without locking (for reports); `Ok(None)` if there is none.
    fn peek_state(&self, user: &str) -> Result<Option<State>, StoreError>;
}

/// Proof that the state of one user is locked.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    _guard: LockGuard,
}

/// Secrets in files named by a template, state in one root-owned directory.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    /// Path template of the secret file.
    pub secret_template: String,
    /// Directory of state and lock files.
    pub state_dir: PathBuf,
    /// Identity that reads and owns secret files (`user=`); `None` means the user themselves.
    pub file_owner: Option<UserInfo>,
    /// Mode bits a secret file may have.
    pub allowed_perm: u32,
    /// Whether the owner is checked.
    pub strict_owner: bool,
    /// How long to wait for the state lock.
    pub lock_timeout: Duration,
}

impl LocalFiles {
    fn identity<'a>(&'a self, user: &'a UserInfo) -> &'a UserInfo {
        self.file_owner.as_ref().unwrap_or(user)
    }

    /// State file name for `user`: the name itself when it is a safe file name, otherwise `=`
    /// and the name in hex (no collision: `=` is never in a safe name).
    pub fn state_key(user: &str) -> String {
        if safe_file_name(user) {
            user.to_string()
        } else {
            format!("={}", crate::secret::to_hex(user.as_bytes()))
        }
    }

    /// The inverse of [`LocalFiles::state_key`].
    pub fn user_of_key(key: &str) -> Option<String> {
        match key.strip_prefix('=') {
            Some(hex) => String::from_utf8(crate::secret::from_hex(hex)?).ok(),
            None => Some(key.to_string()),
        }
    }

    /// Path of the state file of `user`.
    pub fn state_path(&self, user: &str) -> PathBuf {
        self.state_dir
            .join(format!("{}.state", Self::state_key(user)))
    }

    /// Makes sure the state directory exists, belongs to the effective user and is not writable
    /// by group or others.
    ///
    /// # Errors
    /// It cannot be created or fails the checks.
    pub fn check_state_dir(&self) -> Result<(), StoreError> {
        let dir = &self.state_dir;
        match std::fs::DirBuilder::new().mode_0755().create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io(dir, "creating the state directory", e)),
        }
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => StoreError::NotRegular(dir.clone()),
            e => StoreError::io(dir, "opening the state directory", e),
        })?;
        let st =
            nix::sys::stat::fstat(fd.as_fd()).map_err(|e| StoreError::io(dir, "inspecting", e))?;
        let euid = Uid::effective().as_raw();
        if st.st_uid != euid {
            return Err(StoreError::WrongOwner {
                path: dir.clone(),
                owner: st.st_uid,
                expected: euid,
            });
        }
        if st.st_mode & 0o022 != 0 {
            return Err(StoreError::TooOpen {
                path: dir.clone(),
                mode: st.st_mode & 0o7777,
                allowed: 0o755,
            });
        }
        Ok(())
    }

    /// Names of all users with a state file.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn state_users(&self) -> Result<Vec<String>, StoreError> {
        let mut users = Vec::new();
        let entries = match std::fs::read_dir(&self.state_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(users),
            Err(e) => return Err(StoreError::io(&self.state_dir, "listing", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&self.state_dir, "listing", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(key) = name.strip_suffix(".state") {
                if let Some(user) = Self::user_of_key(key) {
                    users.push(user);
                }
            }
        }
        users.sort();
        Ok(users)
    }
}

trait DirBuilderExt2 {
    fn mode_0755(&mut self) -> &mut Self;
}

impl DirBuilderExt2 for std::fs::DirBuilder {
    fn mode_0755(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o755)
    }
}

fn state_rules() -> ReadRules {
    ReadRules {
        owner: Some(Uid::effective().as_raw()),
        allowed_perm: 0o644,
        max_size: state::MAX_FILE_SIZE,
    }
}

fn parse_state(
    path: &Path,
    bytes: Option<Zeroizing<Vec<u8>>>,
) -> Result<Option<State>, StoreError> {
    match bytes {
        None => Ok(None),
        Some(b) => State::parse(&b)
            .map(Some)
            .map_err(|error| StoreError::Corrupt {
                path: path.into(),
                error,
            }),
    }
}

impl Backend for LocalFiles {
    fn secret_location(&self, user: &UserInfo) -> Result<PathBuf, StoreError> {
        expand_template(&self.secret_template, user)
            .map_err(|_| StoreError::BadUser(user.name.clone()))
    }

    fn load_secret(&self, user: &UserInfo) -> Result<Option<SecretFile>, StoreError> {
        let path = self.secret_location(user)?;
        let who = self.identity(user);
        let rules = ReadRules {
            owner: self.strict_owner.then_some(who.uid),
            allowed_perm: self.allowed_perm,
            max_size: secret_file::MAX_FILE_SIZE,
        };
        let bytes = {
            let _as_user = FsIdentity::switch(who.uid, who.gid)?;
            read_checked(&path, &rules)?
        };
        match bytes {
            None => Ok(None),
            Some(b) => SecretFile::parse(&b)
                .map(Some)
                .map_err(|error| StoreError::Corrupt { path, error }),
        }
    }

    fn save_secret(
        &self,
        user: &UserInfo,
        file: &SecretFile,
        replace: Replace,
    ) -> Result<PathBuf, StoreError> {
        let path = self.secret_location(user)?;
        let who = self.identity(user);
        let text = file
            .to_toml()
            .map_err(|_| StoreError::io(&path, "serialising", Errno::EINVAL))?;
        let _as_user = FsIdentity::switch(who.uid, who.gid)?;
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| StoreError::io(dir, "creating the directory", e))?;
            }
        }
        write_atomic(&path, text.as_bytes(), 0o600, replace)?;
        Ok(path)
    }

    fn remove_secret(&self, user: &UserInfo) -> Result<bool, StoreError> {
        let path = self.secret_location(user)?;
        let who = self.identity(user);
        let _as_user = FsIdentity::switch(who.uid, who.gid)?;
        remove(&path)
    }

    fn lock_state(&self, user: &str) -> Result<StateLock, StoreError> {
        self.check_state_dir()?;
        let key = Self::state_key(user);
        let guard = lock(
            &self.state_dir.join(format!("{key}.lock")),
            self.lock_timeout,
        )?;
        Ok(StateLock {
            path: self.state_path(user),
            _guard: guard,
        })
    }

    fn load_state(&self, lock: &StateLock) -> Result<State, StoreError> {
        let bytes = read_checked(&lock.path, &state_rules())?;
        Ok(parse_state(&lock.path, bytes)?.unwrap_or_else(State::new))
    }

    fn save_state(&self, lock: &StateLock, state: &State) -> Result<(), StoreError> {
        let text = state
            .to_toml()
            .map_err(|_| StoreError::io(&lock.path, "serialising", Errno::EINVAL))?;
        write_atomic_locked(&lock.path, text.as_bytes(), 0o644)
    }

    fn peek_state(&self, user: &str) -> Result<Option<State>, StoreError> {
        let path = self.state_path(user);
        let bytes = read_checked(&path, &state_rules())?;
        parse_state(&path, bytes)
    }
}

/// A short fingerprint of the user's current password hash from `/etc/shadow`, so remembered
/// hosts are forgotten when the password changes. Empty when there is no readable local entry
/// (directory users, unprivileged callers): then a password change cannot be noticed.
pub fn password_tag(user: &str) -> String {
    use sha2::Digest;
    let Ok(shadow) = std::fs::read_to_string("/etc/shadow") else {
        return String::new();
    };
    let Some(hash) = shadow
        .lines()
        .find_map(|l| l.strip_prefix(user)?.strip_prefix(':')?.split(':').next())
    else {
        return String::new();
    };
    let digest = sha2::Sha256::digest(format!("pam-totp remember v1\0{hash}").as_bytes());
    crate::secret::to_hex(&digest[..8])
}

impl UserInfo {
    /// Names of all groups of the user, primary and supplementary (NSS, so directory groups
    /// count too). Groups without a name are skipped.
    ///
    /// # Errors
    /// The lookup failed.
    pub fn group_names(&self) -> Result<Vec<String>, StoreError> {
        let name = std::ffi::CString::new(self.name.as_str())
            .map_err(|_| StoreError::BadUser(self.name.clone()))?;
        let gids = nix::unistd::getgrouplist(&name, Gid::from_raw(self.gid))
            .map_err(|e| StoreError::io("/etc/group", "listing the groups of the user in", e))?;
        let mut names = Vec::with_capacity(gids.len());
        for gid in gids {
            if let Ok(Some(g)) = nix::unistd::Group::from_gid(gid) {
                names.push(g.name);
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pam-totp-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn me() -> UserInfo {
        UserInfo::lookup_uid(Uid::effective().as_raw())
            .unwrap()
            .unwrap()
    }

    fn rules() -> ReadRules {
        ReadRules {
            owner: Some(Uid::effective().as_raw()),
            allowed_perm: 0o600,
            max_size: 100,
        }
    }

    #[test]
    fn template_expansion() {
        let u = UserInfo {
            name: "alice".into(),
            uid: 1,
            gid: 1,
            home: "/home/alice".into(),
        };
        assert_eq!(
            expand_template("~/.config/x", &u).unwrap(),
            PathBuf::from("/home/alice/.config/x")
        );
        assert_eq!(
            expand_template("/var/lib/s/${USER}.toml", &u).unwrap(),
            PathBuf::from("/var/lib/s/alice.toml")
        );
        assert_eq!(
            expand_template("%h/%u-100%%", &u).unwrap(),
            PathBuf::from("/home/alice/alice-100%")
        );
        assert!(expand_template("/x/%z", &u).is_err());
        assert!(expand_template("${SHELL}", &u).is_err());
        assert!(expand_template("relative/${USER}", &u).is_err());
        let evil = UserInfo {
            name: "../root".into(),
            ..u
        };
        assert!(expand_template("/s/${USER}", &evil).is_err());
    }

    #[test]
    fn state_keys_round_trip() {
        assert_eq!(LocalFiles::state_key("alice"), "alice");
        let odd = "we/ird";
        let key = LocalFiles::state_key(odd);
        assert!(!key.contains('/'));
        assert_eq!(LocalFiles::user_of_key(&key).as_deref(), Some(odd));
    }

    #[test]
    fn read_checked_refuses_unsafe_files() {
        let d = tempdir("read");
        let f = d.join("f");
        assert!(read_checked(&f, &rules()).unwrap().is_none());
        std::fs::write(&f, b"hello").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_checked(&f, &rules()).unwrap().unwrap().as_slice(),
            b"hello"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_checked(&f, &rules()),
            Err(StoreError::TooOpen { .. })
        ));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let l = d.join("link");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(matches!(
            read_checked(&l, &rules()),
            Err(StoreError::Symlink(_))
        ));
        assert!(matches!(
            read_checked(&d, &rules()),
            Err(StoreError::NotRegular(_))
        ));
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        assert!(
            matches!(
                read_checked(&fifo, &rules()),
                Err(StoreError::NotRegular(_))
            ),
            "no hang on a FIFO"
        );
        let empty = d.join("empty");
        std::fs::write(&empty, b"").unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_checked(&empty, &rules()),
            Err(StoreError::BadSize { .. })
        ));
        let big = d.join("big");
        std::fs::write(&big, [b'x'; 101]).unwrap();
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_checked(&big, &rules()),
            Err(StoreError::BadSize { .. })
        ));
        let wrong_owner = ReadRules {
            owner: Some(Uid::effective().as_raw() + 1),
            ..rules()
        };
        assert!(matches!(
            read_checked(&f, &wrong_owner),
            Err(StoreError::WrongOwner { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_atomic_replaces_or_refuses() {
        let d = tempdir("write");
        let f = d.join("s.toml");
        write_atomic(&f, b"one", 0o600, Replace::No).unwrap();
        assert!(matches!(
            write_atomic(&f, b"two", 0o600, Replace::No),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(std::fs::read(&f).unwrap(), b"one");
        write_atomic(&f, b"two", 0o600, Replace::Yes).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
        // A leftover of a killed locked writer is replaced, not accumulated.
        std::fs::write(d.join(".s.toml.tmp"), b"half").unwrap();
        write_atomic_locked(&f, b"three", 0o600).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"three");
        assert!(!d.join(".s.toml.tmp").exists());
        assert!(remove(&f).unwrap());
        assert!(!remove(&f).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn lock_serialises_and_times_out() {
        let d = tempdir("lock");
        let p = d.join("u.lock");
        let first = lock(&p, Duration::from_millis(100)).unwrap();
        assert!(matches!(
            lock(&p, Duration::from_millis(50)),
            Err(StoreError::LockTimeout(_))
        ));
        drop(first);
        lock(&p, Duration::from_millis(50)).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn local_files_round_trip() {
        let d = tempdir("local");
        let store = LocalFiles {
            secret_template: format!("{}/secrets/${{USER}}.toml", d.display()),
            state_dir: d.join("state"),
            file_owner: None,
            allowed_perm: 0o600,
            strict_owner: true,
            lock_timeout: Duration::from_secs(1),
        };
        let user = me();
        assert!(store.load_secret(&user).unwrap().is_none());
        let (set, _codes) = crate::backup::BackupSet::generate_with(2, 0, 1000).unwrap();
        let file = SecretFile {
            enrollment_id: "e1".into(),
            created: 1,
            authenticators: vec![crate::secret_file::Authenticator {
                name: "default".into(),
                secret: crate::secret::TotpSecret::generate(20).unwrap(),
                algorithm: crate::secret_file::Algorithm::Sha1,
                digits: 6,
                period: 30,
                added: 1,
                issuer: "h".into(),
                label: "u".into(),
            }],
            backup: Some(set),
            forget_hosts_before: 0,
        };
        store.save_secret(&user, &file, Replace::No).unwrap();
        assert!(matches!(
            store.save_secret(&user, &file, Replace::No),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(
            store.load_secret(&user).unwrap().unwrap().enrollment_id,
            "e1"
        );
        let lock = store.lock_state(&user.name).unwrap();
        let mut st = store.load_state(&lock).unwrap();
        st.rebind("e1");
        store.save_state(&lock, &st).unwrap();
        drop(lock);
        assert_eq!(
            store.peek_state(&user.name).unwrap().unwrap().enrollment_id,
            "e1"
        );
        assert_eq!(store.state_users().unwrap(), vec![user.name.clone()]);
        // A corrupt state is reported and left alone.
        std::fs::write(store.state_path(&user.name), b"garbage [").unwrap();
        let lock = store.lock_state(&user.name).unwrap();
        assert!(matches!(
            store.load_state(&lock),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(
            std::fs::read(store.state_path(&user.name)).unwrap(),
            b"garbage ["
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
