//! Storage: where enrollments (secrets) and login state live, behind one interface that speaks in
//! the operations a login and an administrator need.
//!
//! # The interface
//!
//! [`Store`] has no lock, path or file type in it. Each state operation is atomic on its own
//! and is specified by its intent:
//!
//! - read: [`Store::load_enrollment`], [`Store::state`], [`Store::users_with_state`];
//! - a login: [`Store::record_failure`] (counted *before* the answer is checked, refused when the
//!   host or user must wait), [`Store::consume_totp`], [`Store::consume_hotp`] and
//!   [`Store::consume_backup`] (refused when already used; they also record the success),
//!   [`Store::record_success`];
//! - an administrator: [`Store::reset`], [`Store::unlock`], [`Store::forget_hosts`], and the
//!   enrollment writes.
//!
//! Every operation is a compare-and-set on one user's record: it reads the current record,
//! applies a pure change from [`crate::state`], and installs the result only if nobody installed
//! another record in between, otherwise it starts again from the newer record. That is all a
//! backend needs: local files do it with exclusive `linkat` of generation-numbered files
//! ([`LocalFiles`]); a directory server does it with one Modify that deletes the old value and
//! adds the new one (or the Assertion control). Nothing is held between two operations, so a
//! stopped or stalled login holds nothing that another login needs.
//!
//! The contract, which `conformance` checks for any backend (feature `conformance`), races included:
//! 1. a TOTP step is accepted at most once per authenticator and enrollment, and never a step
//!    older than or equal to the last accepted one;
//! 2. a backup code is accepted at most once per set; an HOTP counter at most once per
//!    authenticator and enrollment, and never one below the authenticator's current counter
//!    (the counter only moves forward);
//! 3. failures are counted before the answer is judged, and a host or user that must wait is
//!    refused without being counted again;
//! 4. a record that does not parse is never overwritten: every operation fails with
//!    [`StoreError::Corrupt`] until an administrator repairs or resets it;
//! 5. an operation that returns `Ok` for an accepted code has made that use durable (it
//!    survives a crash or power cut); failure counters and remembered hosts may be lost to a
//!    power cut, which only ever makes a login ask again.

mod account;
pub mod changes;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod fs;
mod local;
mod privilege;
mod template;
#[cfg(test)]
mod testutil;
mod versioned;

pub use account::{UserInfo, host_name, shadow_hash};
pub use fs::{
    OwnedBytes, ReadRules, Replace, read_checked, read_checked_owner, remove, write_atomic,
};
pub use local::LocalFiles;
pub use privilege::{FsIdentity, Groups};
pub use template::{TemplateError, expand_template, safe_file_name};

use crate::error::StoreError;
use crate::secret_file::SecretFile;
use crate::state::{LastUse, State};
use crate::throttle::{Lockout, ThrottlePolicy};
use std::fmt;

/// Where something is kept, for messages (a path, a directory entry's DN, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location(String);

impl Location {
    /// A location described by `text`.
    pub fn new(text: impl Into<String>) -> Location {
        Location(text.into())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A failed attempt about to be judged: counted first, so parallel guesses cannot outrun the
/// throttle.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The throttle key of the remote host (see [`crate::throttle::host_key`]).
    pub host: &'a str,
    /// Unix time.
    pub now: u64,
    /// The throttle settings that decide whether the attempt may go ahead.
    pub throttle: &'a ThrottlePolicy,
}

/// What [`Store::record_failure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted; the failures of the host and of the user so far, and how far the clock is
    /// behind the latest time recorded, the first time that is noticed.
    Counted {
        host: u32,
        user: u32,
        clock_back: Option<u64>,
    },
    /// The host or the user must wait: refused and not counted.
    Throttled(Lockout),
}

/// A success of the whole PAM stack (not just of this module): only that clears counters,
/// trusts the host and remembers it.
#[derive(Debug, Clone)]
pub struct Success<'a> {
    /// Throttle key of the host whose counter is cleared.
    pub host: &'a str,
    /// The login, for `status`.
    pub last_use: LastUse,
    /// Remember the remote host until then, with this password fingerprint.
    pub remember: Option<Remember>,
}

/// A remote host to remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remember {
    /// PAM_RHOST.
    pub rhost: String,
    /// Unix time until which no code is asked from it.
    pub until: u64,
    /// Fingerprint of the password (a change forgets the host).
    pub password_tag: String,
}

/// The use of a TOTP code.
#[derive(Debug, Clone)]
pub struct TotpUse<'a> {
    /// The enrollment the code belongs to (another one resets the replay records).
    pub enrollment_id: &'a str,
    /// The authenticator that produced it.
    pub authenticator: &'a str,
    /// Its time step.
    pub step: u64,
    /// The throttle key of the host whose counted attempt this was, to take the count back.
    pub refund: Option<&'a str>,
    /// A success of the whole stack to record with it (enrollment in the account phase);
    /// `None` in the auth phase, where the rest of the stack may still fail.
    pub success: Option<Success<'a>>,
}

/// The use of an HOTP code (or, when resynchronising, of two consecutive codes).
#[derive(Debug, Clone)]
pub struct HotpUse<'a> {
    /// The enrollment the code belongs to (another one resets the counters).
    pub enrollment_id: &'a str,
    /// The HOTP authenticator that produced it.
    pub authenticator: &'a str,
    /// One past the (last) matched counter: the counter of the next code expected from now on.
    /// Refused if the authenticator's counter is already there or beyond.
    pub counter_after: u64,
    /// The throttle key of the host whose counted attempt this was, to take the count back.
    pub refund: Option<&'a str>,
    /// A success of the whole stack to record with it.
    pub success: Option<Success<'a>>,
}

/// The use of a backup code.
#[derive(Debug, Clone)]
pub struct BackupUse<'a> {
    /// The enrollment the code belongs to.
    pub enrollment_id: &'a str,
    /// The backup set.
    pub set_id: &'a str,
    /// The code's index in the set.
    pub index: u32,
    /// The throttle key of the host whose counted attempt this was, to take the count back.
    pub refund: Option<&'a str>,
    /// A success of the whole stack to record with it.
    pub success: Option<Success<'a>>,
}

/// What a consume operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// Recorded: the code is spent. The state as it now is.
    Accepted(Box<State>),
    /// The step (or a later one) or the backup code was already used: refused, nothing written.
    AlreadyUsed,
}

/// What [`Store::unlock`] cleared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unlocked {
    /// Failures counted for the user as a whole.
    pub user_failures: u32,
    /// Hosts that had failures counted.
    pub hosts: usize,
}

/// The storage of enrollments and login state. See the module documentation for the contract.
pub trait Store {
    /// Where the enrollment of `user` is kept (for messages).
    ///
    /// # Errors
    /// The user name cannot be used there.
    fn enrollment_location(&self, user: &UserInfo) -> Result<Location, StoreError>;

    /// Whether anything is kept at the enrollment location, readable or not.
    ///
    /// # Errors
    /// The location cannot be inspected.
    fn has_enrollment(&self, user: &UserInfo) -> Result<bool, StoreError>;

    /// Reads and parses the enrollment of `user`; `Ok(None)` if there is none.
    ///
    /// # Errors
    /// Unreadable, unsafe or corrupt: the caller fails closed.
    fn load_enrollment(&self, user: &UserInfo) -> Result<Option<SecretFile>, StoreError>;

    /// Writes the enrollment of `user`, replacing an existing one only if asked.
    ///
    /// # Errors
    /// [`StoreError::Exists`] with [`Replace::No`], or the write failed (nothing changed).
    fn save_enrollment(
        &self,
        user: &UserInfo,
        file: &SecretFile,
        replace: Replace,
    ) -> Result<Location, StoreError>;

    /// Deletes the enrollment of `user`; `Ok(false)` if there was none.
    ///
    /// # Errors
    /// The deletion failed.
    fn remove_enrollment(&self, user: &UserInfo) -> Result<bool, StoreError>;

    /// The current state of `user`; `Ok(None)` if nothing was ever recorded.
    ///
    /// # Errors
    /// Unreadable, unsafe or corrupt.
    fn state(&self, user: &str) -> Result<Option<State>, StoreError>;

    /// Names of all users with a recorded state.
    ///
    /// # Errors
    /// The store cannot be listed.
    fn users_with_state(&self) -> Result<Vec<String>, StoreError>;

    /// Counts a failed attempt of `user` before its answer is judged, unless the host or the
    /// user must wait now (then nothing is counted). Not made durable.
    ///
    /// # Errors
    /// The state is unusable or cannot be written.
    fn record_failure(&self, user: &str, attempt: &Attempt<'_>) -> Result<Counted, StoreError>;

    /// Spends a TOTP step: refused if the authenticator's last accepted step is not older.
    /// Takes back the attempt's count and records a given success in the same durable write.
    ///
    /// # Errors
    /// The state is unusable or cannot be written: the code must then be refused.
    fn consume_totp(&self, user: &str, used: &TotpUse<'_>) -> Result<Consumed, StoreError>;

    /// Spends an HOTP code: moves the authenticator's counter to `counter_after`, refused if
    /// it is already there or beyond (the code, or a later one, was accepted). Takes back the
    /// attempt's count and records a given success in the same durable write. A directory
    /// backend keeps the counter in `oathHOTPCounter`.
    ///
    /// # Errors
    /// As [`Store::consume_totp`].
    fn consume_hotp(&self, user: &str, used: &HotpUse<'_>) -> Result<Consumed, StoreError>;

    /// Spends a backup code: refused if it was used already. Takes back the attempt's count and
    /// records a given success in the same durable write.
    ///
    /// # Errors
    /// As [`Store::consume_totp`].
    fn consume_backup(&self, user: &str, used: &BackupUse<'_>) -> Result<Consumed, StoreError>;

    /// Records a success of the whole stack (clears the counters, trusts and maybe remembers
    /// the host). Not made durable.
    ///
    /// # Errors
    /// The state is unusable or cannot be written.
    fn record_success(&self, user: &str, success: &Success<'_>) -> Result<(), StoreError>;

    /// Forgets everything recorded for `user` (replay records, used backup codes, counters,
    /// remembered hosts, last use); `Ok(false)` if nothing was recorded.
    ///
    /// # Errors
    /// The state cannot be written.
    fn reset(&self, user: &str) -> Result<bool, StoreError>;

    /// Clears the failure counters of `user` and of every host.
    ///
    /// # Errors
    /// The state is unusable or cannot be written.
    fn unlock(&self, user: &str) -> Result<Unlocked, StoreError>;

    /// A fingerprint of the current password of `user` (a keyed hash of its hash), kept with a
    /// remembered host so that a password change forgets it; empty when the password cannot be
    /// read (directory users, unprivileged callers).
    fn password_tag(&self, user: &str) -> String;

    /// Forgets the remembered hosts of `user`; returns how many there were.
    ///
    /// # Errors
    /// The state is unusable or cannot be written.
    fn forget_hosts(&self, user: &str) -> Result<usize, StoreError>;
}
