//! The per-user mutable state the module keeps in the state directory: replay protection, used
//! backup codes, throttling and the last successful use. Kept apart from the secret so a login
//! never rewrites the secret and homes may be read-only.

use crate::error::ParseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format version of the state file.
pub const VERSION: u32 = 1;
/// Largest state file accepted.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Where a login came from, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastUse {
    /// Unix time.
    pub time: u64,
    /// PAM service name (`sshd`, `sudo`, ...).
    pub service: String,
    /// PAM_RHOST, empty for local logins.
    #[serde(default)]
    pub rhost: String,
    /// `totp` or `backup` (later also `remembered`).
    pub method: String,
    /// The authenticator that produced the code, for `totp`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authenticator: String,
}

/// Failures counted for one source (a remote host, or the user as a whole).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failures {
    /// Consecutive failures since the last success.
    pub count: u32,
    /// Unix time of the last failure.
    pub last: u64,
}

/// A host from which the user recently passed the second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    /// The PAM_RHOST as given.
    pub rhost: String,
    /// Unix time after which the host must give a code again.
    pub until: u64,
    /// Fingerprint of the password when the host was remembered: a password change forgets it.
    #[serde(default)]
    pub password_tag: String,
    /// Unix time the host was remembered (compared with the secret file's
    /// `forget_hosts_before`).
    #[serde(default)]
    pub since: u64,
}

/// The state of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// The enrollment this state belongs to; another id means a re-enrollment (see [`State::rebind`]).
    #[serde(default)]
    pub enrollment_id: String,
    /// Last accepted time step per authenticator name (RFC 6238 section 5.2).
    #[serde(default)]
    pub last_step: BTreeMap<String, u64>,
    /// The backup set whose used codes are listed below.
    #[serde(default)]
    pub backup_set: String,
    /// Indices of used backup codes in that set.
    #[serde(default)]
    pub backup_used: Vec<u32>,
    /// Last successful second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<LastUse>,
    /// Failures of the user from anywhere (the per-user ceiling).
    #[serde(default)]
    pub user_failures: Failures,
    /// Failures per remote host key (see `throttle::host_key`).
    #[serde(default)]
    pub host_failures: BTreeMap<String, Failures>,
    /// Hosts remembered after a successful code.
    #[serde(default)]
    pub remembered: Vec<Remembered>,
    /// Hosts (throttle keys) from which the whole PAM stack last succeeded, and when: they are
    /// not held up by failures from other hosts (see `throttle`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trusted: BTreeMap<String, u64>,
    /// The latest time seen when the clock was last found to have gone back (logged once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clock_back_logged: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl State {
    /// An empty state for a first login.
    pub fn new() -> Self {
        State {
            version: VERSION,
            ..State::default()
        }
    }

    /// Parses a state file.
    ///
    /// # Errors
    /// Not UTF-8, not TOML, an unknown key or another version. The caller must then fail closed
    /// and leave the file untouched.
    pub fn parse(bytes: &[u8]) -> Result<State, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::new("not UTF-8 text"))?;
        let state: State =
            toml::from_str(text).map_err(|e| ParseError::from_toml(&e, text, false))?;
        if state.version != VERSION {
            return Err(ParseError::key(
                "version",
                format!("unsupported version {}", state.version),
            ));
        }
        Ok(state)
    }

    /// Serialises to TOML.
    ///
    /// # Errors
    /// Only if serialisation fails, which valid data does not make it do.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Makes the state belong to `enrollment_id`. After a re-enrollment the replay and backup
    /// bookkeeping start clean; throttling and remembered hosts are about the user, not the key,
    /// and stay.
    pub fn rebind(&mut self, enrollment_id: &str) {
        if self.enrollment_id != enrollment_id {
            self.enrollment_id = enrollment_id.to_string();
            self.last_step.clear();
            self.backup_set.clear();
            self.backup_used.clear();
        }
    }

    /// Indices of used codes of backup set `set_id`.
    pub fn used_backup_codes(&self, set_id: &str) -> &[u32] {
        if self.backup_set == set_id {
            &self.backup_used
        } else {
            &[]
        }
    }

    /// Spends TOTP step `step` of `authenticator` of enrollment `enrollment_id`. `false` (and
    /// nothing changed) if that step or a later one was accepted already.
    pub fn spend_step(&mut self, enrollment_id: &str, authenticator: &str, step: u64) -> bool {
        if self.enrollment_id == enrollment_id
            && self
                .last_step
                .get(authenticator)
                .is_some_and(|&l| l >= step)
        {
            return false;
        }
        self.rebind(enrollment_id);
        self.last_step.insert(authenticator.to_string(), step);
        true
    }

    /// Spends backup code `index` of set `set_id` of enrollment `enrollment_id`. `false` (and
    /// nothing changed) if it was used already.
    pub fn spend_backup_code(&mut self, enrollment_id: &str, set_id: &str, index: u32) -> bool {
        if self.enrollment_id == enrollment_id && self.used_backup_codes(set_id).contains(&index) {
            return false;
        }
        self.rebind(enrollment_id);
        self.consume_backup_code(set_id, index);
        true
    }

    /// Forgets the remembered hosts; returns how many there were.
    pub fn forget_hosts(&mut self) -> usize {
        std::mem::take(&mut self.remembered).len()
    }

    /// Clears every failure counter; returns what was cleared as (user failures, hosts).
    pub fn unlock(&mut self) -> (u32, usize) {
        let user = std::mem::take(&mut self.user_failures).count;
        let hosts = std::mem::take(&mut self.host_failures).len();
        (user, hosts)
    }

    /// The latest time this state has seen (for noticing a clock that went back).
    pub fn latest_time(&self) -> u64 {
        let mut t = self.user_failures.last;
        t = t.max(self.last_success.as_ref().map_or(0, |l| l.time));
        t = t.max(
            self.host_failures
                .values()
                .map(|f| f.last)
                .max()
                .unwrap_or(0),
        );
        t.max(self.trusted.values().copied().max().unwrap_or(0))
    }

    /// Whether nothing at all is recorded.
    pub fn is_empty(&self) -> bool {
        *self == State::new()
    }

    /// Marks code `index` of set `set_id` used.
    pub fn consume_backup_code(&mut self, set_id: &str, index: u32) {
        if self.backup_set != set_id {
            self.backup_set = set_id.to_string();
            self.backup_used.clear();
        }
        if !self.backup_used.contains(&index) {
            self.backup_used.push(index);
            self.backup_used.sort_unstable();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rebind() {
        let mut s = State::new();
        s.rebind("e1");
        s.last_step.insert("default".into(), 42);
        s.consume_backup_code("b1", 3);
        s.host_failures
            .insert("198.51.100.7".into(), Failures { count: 2, last: 9 });
        let back = State::parse(s.to_toml().unwrap().as_bytes()).unwrap();
        assert_eq!(back, s);
        let mut r = back.clone();
        r.rebind("e2");
        assert!(r.last_step.is_empty());
        assert!(r.used_backup_codes("b1").is_empty());
        assert_eq!(
            r.host_failures.len(),
            1,
            "throttling survives re-enrollment"
        );
    }

    #[test]
    fn given_corrupt_state_then_error() {
        assert!(State::parse(b"version = 1\nlast_step = 3\n").is_err());
        assert!(State::parse(b"version = 9\n").is_err());
        assert!(State::parse(b"\x00\x01").is_err());
        assert!(State::parse(b"version = 1\nunknown = true\n").is_err());
    }
}
