//! The local [`Store`]: each user's secret file where a path template says (by default in their
//! home), read and written with the user's filesystem identity; the login state in
//! compare-and-set records under a root-owned directory (see `versioned`).

use super::account::UserInfo;
use super::changes::{self, Change};
use super::fs::{self, ReadRules, Replace};
use super::privilege::{FsIdentity, Groups};
use super::template::{expand_template, safe_file_name};
use super::versioned::{Durability, KEEP_FOR, Records};
use super::{
    Attempt, BackupUse, Consumed, Counted, HotpUse, Location, Store, Success, TotpUse, Unlocked,
};
use crate::error::StoreError;
use crate::secret_file::{self, SecretFile};
use crate::state::State;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Uid;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Secrets in files named by a template, state in one root-owned directory.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    /// Path template of the secret file.
    pub secret_template: String,
    /// Identity that reads and owns secret files (`user=`); `None` means the user themselves.
    pub file_owner: Option<UserInfo>,
    /// Mode bits a secret file may have.
    pub allowed_perm: u32,
    /// Whether the owner is checked.
    pub strict_owner: bool,
    /// What happens to the supplementary groups while acting as the user.
    pub groups: Groups,
    records: Records,
}

impl LocalFiles {
    /// A store with secrets at `secret_template` and state under `state_dir`.
    pub fn new(
        secret_template: String,
        state_dir: PathBuf,
        file_owner: Option<UserInfo>,
        allowed_perm: u32,
        strict_owner: bool,
    ) -> LocalFiles {
        LocalFiles {
            secret_template,
            file_owner,
            allowed_perm,
            strict_owner,
            groups: Groups::Keep,
            records: Records {
                root: state_dir,
                keep_for: KEEP_FOR,
            },
        }
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.records.root
    }

    fn identity<'a>(&'a self, user: &'a UserInfo) -> &'a UserInfo {
        self.file_owner.as_ref().unwrap_or(user)
    }

    fn secret_path(&self, user: &UserInfo) -> Result<PathBuf, StoreError> {
        expand_template(&self.secret_template, user)
            .map_err(|_| StoreError::BadUser(user.name.clone()))
    }

    /// State key for `user`: the name itself when it is a safe file name, otherwise `=` and the
    /// name in hex (no collision: `=` is never in a safe name).
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

    /// Makes sure the state directory exists, belongs to the effective user, is not writable by
    /// group or others, and is readable by its owner only (tightened to 0700 if it was not).
    ///
    /// # Errors
    /// It cannot be created or fails the checks.
    pub fn check_state_dir(&self) -> Result<(), StoreError> {
        let dir = self.state_dir();
        match nix::unistd::mkdir(dir, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(StoreError::io(dir, "creating the state directory", e)),
        }
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => StoreError::NotRegular(dir.into()),
            e => StoreError::io(dir, "opening the state directory", e),
        })?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| StoreError::io(dir, "inspecting", e))?;
        let euid = Uid::effective().as_raw();
        if st.st_uid != euid {
            return Err(StoreError::WrongOwner {
                path: dir.into(),
                owner: st.st_uid,
                expected: euid,
            });
        }
        if st.st_mode & 0o022 != 0 {
            return Err(StoreError::TooOpen {
                path: dir.into(),
                mode: st.st_mode & 0o7777,
                allowed: 0o700,
            });
        }
        // Release 0.1 made it 0755: the state tells when and from where users log in, so only
        // its owner may read it now.
        if st.st_mode & 0o077 != 0 {
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700))
                .map_err(|e| StoreError::io(dir, "restricting the mode of", e))?;
        }
        Ok(())
    }

    /// The key of [`Store::password_tag`]: 32 random bytes in `<state_dir>/.tag-key`, root's,
    /// mode 0600, made on first use. Without it a fingerprint of `!`, `*` or an empty hash
    /// could be computed by anyone who can read the state.
    fn tag_key(&self) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        const NAME: &str = ".tag-key";
        let path = self.state_dir().join(NAME);
        let rules = ReadRules {
            owner: Some(Uid::effective().as_raw()),
            allowed_perm: 0o600,
            max_size: 64,
        };
        if let Some(key) = fs::read_checked(&path, &rules)? {
            return Ok(key);
        }
        self.check_state_dir()?;
        let mut key = Zeroizing::new(vec![0u8; 32]);
        crate::secret::random_fill(&mut key)
            .map_err(|_| StoreError::io(&path, "randomising", Errno::EIO))?;
        match fs::write_atomic(&path, &key, 0o600, Replace::No) {
            Ok(()) => Ok(key),
            // Another login made it first: use that one.
            Err(StoreError::Exists(_)) => fs::read_checked(&path, &rules)?
                .ok_or_else(|| StoreError::io(&path, "reading", Errno::ENOENT)),
            Err(e) => Err(e),
        }
    }

    /// Spends a code with `spend` (false: already used), takes the attempt's count back and
    /// records a given success, in one durable compare-and-set.
    fn spend(
        &self,
        user: &str,
        refund: Option<&str>,
        success: Option<&Success<'_>>,
        mut spend: impl FnMut(&mut State) -> bool,
    ) -> Result<Consumed, StoreError> {
        self.update(user, Durability::Durable, |state| {
            let spent = spend(state);
            changes::after_spend(state, spent, refund, success)
        })
    }

    fn update<T>(
        &self,
        user: &str,
        durability: Durability,
        change: impl FnMut(&mut State) -> Change<T>,
    ) -> Result<T, StoreError> {
        self.check_state_dir()?;
        self.records
            .update(&Self::state_key(user), durability, change)
    }
}

impl Store for LocalFiles {
    fn enrollment_location(&self, user: &UserInfo) -> Result<Location, StoreError> {
        Ok(Location::new(self.secret_path(user)?.display().to_string()))
    }

    fn has_enrollment(&self, user: &UserInfo) -> Result<bool, StoreError> {
        let path = self.secret_path(user)?;
        let who = self.identity(user);
        let _as_user = FsIdentity::switch_with(who.uid, who.gid, self.groups)?;
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io(path, "inspecting", e)),
        }
    }

    fn load_enrollment(&self, user: &UserInfo) -> Result<Option<SecretFile>, StoreError> {
        let path = self.secret_path(user)?;
        let who = self.identity(user);
        let rules = ReadRules {
            owner: self.strict_owner.then_some(who.uid),
            allowed_perm: self.allowed_perm,
            max_size: secret_file::MAX_FILE_SIZE,
        };
        let bytes = {
            let _as_user = FsIdentity::switch_with(who.uid, who.gid, self.groups)?;
            fs::read_checked(&path, &rules)?
        };
        match bytes {
            None => Ok(None),
            Some(b) => SecretFile::parse(&b)
                .map(Some)
                .map_err(|error| StoreError::Corrupt { path, error }),
        }
    }

    fn save_enrollment(
        &self,
        user: &UserInfo,
        file: &SecretFile,
        replace: Replace,
    ) -> Result<Location, StoreError> {
        let path = self.secret_path(user)?;
        let who = self.identity(user);
        let text = file
            .to_toml()
            .map_err(|_| StoreError::io(&path, "serialising", Errno::EINVAL))?;
        let _as_user = FsIdentity::switch_with(who.uid, who.gid, self.groups)?;
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
        fs::write_atomic(&path, text.as_bytes(), 0o600, replace)?;
        Ok(Location::new(path.display().to_string()))
    }

    fn remove_enrollment(&self, user: &UserInfo) -> Result<bool, StoreError> {
        let path = self.secret_path(user)?;
        let who = self.identity(user);
        let _as_user = FsIdentity::switch_with(who.uid, who.gid, self.groups)?;
        fs::remove(&path)
    }

    fn state(&self, user: &str) -> Result<Option<State>, StoreError> {
        Ok(self
            .records
            .head(&Self::state_key(user))?
            .map(|head| head.state))
    }

    fn users_with_state(&self) -> Result<Vec<String>, StoreError> {
        let mut users: Vec<String> = self
            .records
            .keys()?
            .iter()
            .filter_map(|k| Self::user_of_key(k))
            .collect();
        users.sort();
        Ok(users)
    }

    fn record_failure(&self, user: &str, attempt: &Attempt<'_>) -> Result<Counted, StoreError> {
        self.update(user, Durability::Volatile, |state| {
            changes::count_failure(state, attempt)
        })
    }

    fn consume_totp(&self, user: &str, used: &TotpUse<'_>) -> Result<Consumed, StoreError> {
        self.spend(user, used.refund, used.success.as_ref(), |state| {
            state.spend_step(used.enrollment_id, used.authenticator, used.step)
        })
    }

    fn consume_hotp(&self, user: &str, used: &HotpUse<'_>) -> Result<Consumed, StoreError> {
        self.spend(user, used.refund, used.success.as_ref(), |state| {
            state.spend_hotp(used.enrollment_id, used.authenticator, used.counter_after)
        })
    }

    fn consume_backup(&self, user: &str, used: &BackupUse<'_>) -> Result<Consumed, StoreError> {
        self.spend(user, used.refund, used.success.as_ref(), |state| {
            state.spend_backup_code(used.enrollment_id, used.set_id, used.index)
        })
    }

    fn record_success(&self, user: &str, success: &Success<'_>) -> Result<(), StoreError> {
        self.update(user, Durability::Volatile, |state| {
            changes::apply_success(state, success);
            Change::Commit(())
        })
    }

    fn reset(&self, user: &str) -> Result<bool, StoreError> {
        let key = Self::state_key(user);
        match self.records.head(&key) {
            Ok(None) => Ok(false),
            Ok(Some(_)) => self.update(user, Durability::Durable, changes::reset),
            // A record that does not parse is never rewritten by a login; an administrator's
            // reset is the way out of it, and throws the user's records away whole.
            Err(StoreError::Corrupt { .. }) => self.records.discard(&key).map(|()| true),
            Err(e) => Err(e),
        }
    }

    fn unlock(&self, user: &str) -> Result<Unlocked, StoreError> {
        self.update(user, Durability::Durable, changes::unlock)
    }

    fn password_tag(&self, user: &str) -> String {
        use hmac::{KeyInit, Mac};
        let Some(hash) = super::shadow_hash(user) else {
            return String::new();
        };
        let Ok(key) = self.tag_key() else {
            return String::new();
        };
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_slice()) else {
            return String::new();
        };
        mac.update(b"pam-totp remember v2\0");
        mac.update(hash.as_bytes());
        crate::secret::to_hex(&mac.finalize().into_bytes()[..8])
    }

    fn forget_hosts(&self, user: &str) -> Result<usize, StoreError> {
        self.update(user, Durability::Durable, changes::forget_hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{me, tempdir};

    #[test]
    fn state_keys_round_trip() {
        assert_eq!(LocalFiles::state_key("alice"), "alice");
        let odd = "we/ird";
        let key = LocalFiles::state_key(odd);
        assert!(!key.contains('/'));
        assert_eq!(LocalFiles::user_of_key(&key).as_deref(), Some(odd));
    }

    #[test]
    fn local_files_round_trip() {
        let d = tempdir("local");
        let store = LocalFiles::new(
            format!("{}/secrets/${{USER}}.toml", d.display()),
            d.join("state"),
            None,
            0o600,
            true,
        );
        let user = me();
        assert!(store.load_enrollment(&user).unwrap().is_none());
        assert!(!store.has_enrollment(&user).unwrap());
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
                hotp: None,
            }],
            backup: Some(set),
            forget_hosts_before: 0,
        };
        store.save_enrollment(&user, &file, Replace::No).unwrap();
        assert!(store.has_enrollment(&user).unwrap());
        assert!(matches!(
            store.save_enrollment(&user, &file, Replace::No),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(
            store.load_enrollment(&user).unwrap().unwrap().enrollment_id,
            "e1"
        );
        assert_eq!(store.users_with_state().unwrap(), Vec::<String>::new());
        assert!(!store.reset(&user.name).unwrap(), "nothing to reset");
        store
            .consume_totp(
                &user.name,
                &TotpUse {
                    enrollment_id: "e1",
                    authenticator: "default",
                    step: 5,
                    refund: None,
                    success: None,
                },
            )
            .unwrap();
        assert_eq!(
            store.state(&user.name).unwrap().unwrap().enrollment_id,
            "e1"
        );
        assert_eq!(store.users_with_state().unwrap(), vec![user.name.clone()]);
        assert!(store.reset(&user.name).unwrap());
        assert!(store.state(&user.name).unwrap().unwrap().is_empty());
        assert!(store.remove_enrollment(&user).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn conformance() {
        let d = tempdir("conformance");
        let n = std::sync::atomic::AtomicUsize::new(0);
        let make = || -> super::super::conformance::Subject {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::new(LocalFiles::new(
                format!("{}/secrets/${{USER}}.toml", d.display()),
                d.join(format!("state{i}")),
                None,
                0o600,
                true,
            ))
        };
        super::super::conformance::run_all(&make, "alice");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
