//! Accounts as the password database (NSS) knows them: look-ups by name and by uid, the user's
//! groups, and the password fingerprint that makes remembered hosts forget a password change.

use crate::error::StoreError;
use nix::unistd::{Gid, Uid};
use std::path::PathBuf;

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
