//! File primitives: opening without following links and checking on the descriptor, atomic
//! replacement of a whole file, and removal, each with the directory synced.

use crate::error::StoreError;
use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags};
use nix::sys::stat::{Mode, SFlag};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use zeroize::Zeroizing;

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
    let (dir, name) = split(path)?;
    let dirfd = open_dir(dir)?;
    let tmp_name = format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        crate::secret::to_hex(&suffix)
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::tempdir;
    use nix::unistd::Uid;
    use std::os::unix::fs::PermissionsExt;

    fn rules() -> ReadRules {
        ReadRules {
            owner: Some(Uid::effective().as_raw()),
            allowed_perm: 0o600,
            max_size: 100,
        }
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
        assert!(remove(&f).unwrap());
        assert!(!remove(&f).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
