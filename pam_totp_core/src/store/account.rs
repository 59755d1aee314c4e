//! Accounts as the password database (NSS) knows them: look-ups by name and by uid, the user's
//! groups, and the password fingerprint that makes remembered hosts forget a password change.

use crate::error::StoreError;
use nix::unistd::{Gid, Uid};
use std::path::PathBuf;
use zeroize::Zeroizing;

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

/// The password hash of `user` in `/etc/shadow`; `None` when there is no readable local entry
/// (directory users, unprivileged callers). Only that entry is kept: the file is read line by
/// line into a buffer that is wiped as it goes.
pub fn shadow_hash(user: &str) -> Option<Zeroizing<String>> {
    use std::io::BufRead;
    let file = std::fs::File::open("/etc/shadow").ok()?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Zeroizing::new(Vec::with_capacity(256));
    let prefix = format!("{user}:");
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if let Some(rest) = line.strip_prefix(prefix.as_bytes()) {
            let hash = rest.split(|&b| b == b':' || b == b'\n').next()?;
            return std::str::from_utf8(hash)
                .ok()
                .map(|h| Zeroizing::new(h.to_string()));
        }
    }
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

/// This host's name (the default issuer of new keys), `localhost` if it has none.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
