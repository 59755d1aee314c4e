//! Acting on files as another user: the filesystem identity (setfsuid/setfsgid) that the module
//! and the CLI take while they touch a user's own files.

use crate::error::StoreError;
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

/// Switches the thread's filesystem uid and gid (setfsuid/setfsgid) and switches back on drop.
/// File access then uses that identity's rights (NFS root-squash, read-only homes, and a user
/// cannot point the module at a file they could not read themselves). Only root can switch; for
/// anyone else this is a no-op, since they already act as themselves.
///
/// The supplementary groups stay the caller's unless [`Groups::Drop`] is asked for. The CLI asks
/// for it (a root shell's groups must not open a user's directories for it); the module does not,
/// because changing the groups of sshd's or gdm's process from inside a library affects all its
/// threads, and libpam applications run modules with root's groups only.
pub struct FsIdentity {
    saved: Option<(Uid, Gid)>,
    groups: Option<Vec<Gid>>,
}

/// What happens to the supplementary groups while the identity is switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Groups {
    /// Left as they are (the module).
    #[default]
    Keep,
    /// Reduced to the identity's primary group, restored afterwards (the CLI).
    Drop,
}

impl FsIdentity {
    /// Becomes `uid`/`gid` for file access.
    ///
    /// # Errors
    /// The switch did not take effect (checked by reading the value back).
    pub fn switch(uid: u32, gid: u32) -> Result<FsIdentity, StoreError> {
        Self::switch_with(uid, gid, Groups::Keep)
    }

    /// As [`FsIdentity::switch`], with the supplementary groups as `groups` says.
    ///
    /// # Errors
    /// The switch did not take effect.
    pub fn switch_with(uid: u32, gid: u32, groups: Groups) -> Result<FsIdentity, StoreError> {
        if !Uid::effective().is_root() || uid == 0 {
            return Ok(FsIdentity {
                saved: None,
                groups: None,
            });
        }
        let saved_groups = match groups {
            Groups::Keep => None,
            Groups::Drop => {
                let saved = nix::unistd::getgroups()
                    .map_err(|e| StoreError::io("/", "reading the groups for", e))?;
                nix::unistd::setgroups(&[Gid::from_raw(gid)])
                    .map_err(|e| StoreError::io("/", "dropping the groups for", e))?;
                Some(saved)
            }
        };
        let old_gid = nix::unistd::setfsgid(Gid::from_raw(gid));
        let old_uid = nix::unistd::setfsuid(Uid::from_raw(uid));
        let guard = FsIdentity {
            saved: Some((old_uid, old_gid)),
            groups: saved_groups,
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
        if let Some(groups) = self.groups.take() {
            // Root may always set its groups back.
            let _ = nix::unistd::setgroups(&groups);
        }
    }
}
