//! The one decision of a login before its prompt, shared by the module and `pam-totp explain`.
//!
//! [`Facts::gather`] reads what a login depends on (the account, its groups when the policy
//! names groups, the enrollment, the state of an enrolled user, the password fingerprint when
//! hosts are remembered); [`decide`] turns the facts into a [`Plan`], purely. The module turns
//! the plan into prompts, return codes and log lines; `explain` turns it into prose. Neither
//! keeps an order of its own, so they cannot drift apart.
//!
//! The order, each step deciding only if the ones before it did not:
//! 1. the account does not exist: ask anyway (no account enumeration), then PAM_USER_UNKNOWN;
//! 2. the groups cannot be looked up, or the state of an enrolled user is unusable: refuse;
//! 3. the policy ([`crate::policy::evaluate`]): exemptions, required groups, publickey, the
//!    enrollment deadline, enrollment at login, nullok, remembered hosts (never with an
//!    unusable enrollment);
//! 4. the enrollment is unusable (unreadable, insecure, corrupt): refuse;
//! 5. the host or the user must wait: refuse;
//! 6. ask for a code.

use crate::config::Config;
use crate::error::StoreError;
use crate::policy::{self, Date, ExemptResult, Require};
use crate::secret_file::SecretFile;
use crate::state::State;
use crate::store::{Store, UserInfo};
use crate::throttle::{self, Lockout};

/// Something read from the store.
#[derive(Debug)]
pub enum Loaded<T> {
    /// Nothing there (or, for the state of an unenrolled user, not read).
    Absent,
    /// Read and parsed.
    Present(T),
    /// There, but unreadable, insecure or corrupt.
    Unusable(StoreError),
}

impl<T> Loaded<T> {
    fn from(result: Result<Option<T>, StoreError>) -> Loaded<T> {
        match result {
            Ok(None) => Loaded::Absent,
            Ok(Some(t)) => Loaded::Present(t),
            Err(e) => Loaded::Unusable(e),
        }
    }

    /// The value, if read and parsed.
    pub fn present(&self) -> Option<&T> {
        match self {
            Loaded::Present(t) => Some(t),
            _ => None,
        }
    }
}

/// What a login's decision depends on.
#[derive(Debug)]
pub struct Facts {
    /// The account, by its canonical name (the passwd entry of its uid).
    pub account: UserInfo,
    /// Its groups; looked up only when the policy names groups.
    pub groups: Result<Vec<String>, StoreError>,
    /// PAM_RHOST, empty for a local login.
    pub rhost: String,
    /// Whether the SSH server reported a successful public key.
    pub publickey_used: bool,
    /// The enrollment.
    pub enrollment: Loaded<SecretFile>,
    /// The state; read only when there is an enrollment (usable or not).
    pub state: Loaded<State>,
    /// Password fingerprint; only with `remember`.
    pub password_tag: String,
    /// Unix time.
    pub now: u64,
}

/// Resolves a login name to its canonical account: names that map to the same uid (a second
/// passwd entry, a directory matching case-insensitively) share one enrollment and one state.
///
/// # Errors
/// The lookup failed.
pub fn canonical_account(name: &str) -> Result<Option<UserInfo>, StoreError> {
    let Some(info) = UserInfo::lookup(name)? else {
        return Ok(None);
    };
    Ok(match UserInfo::lookup_uid(info.uid) {
        Ok(Some(canonical)) => Some(canonical),
        _ => Some(info),
    })
}

/// Whether the policy needs the user's groups.
pub fn needs_groups(config: &Config) -> bool {
    !config.policy.exempt_groups.is_empty() || matches!(config.policy.require, Require::Groups(_))
}

impl Facts {
    /// Reads the facts of a login of `account` (canonical) from `store`.
    pub fn gather(
        config: &Config,
        store: &dyn Store,
        account: UserInfo,
        rhost: &str,
        publickey_used: bool,
        now: u64,
    ) -> Facts {
        let enrollment = Loaded::from(store.load_enrollment(&account));
        let groups = if needs_groups(config) {
            account.group_names()
        } else {
            Ok(Vec::new())
        };
        let state = match enrollment {
            Loaded::Absent => Loaded::Absent,
            _ => Loaded::from(store.state(&account.name)),
        };
        let password_tag = if config.policy.remember > 0 {
            store.password_tag(&account.name)
        } else {
            String::new()
        };
        Facts {
            account,
            groups,
            rhost: rhost.to_string(),
            publickey_used,
            enrollment,
            state,
            password_tag,
            now,
        }
    }
}

/// The step of the decision that something belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The account exists.
    Account,
    /// Groups and state can be read.
    Inputs,
    /// The policy rules.
    Policy,
    /// The enrollment can be used.
    Enrollment,
    /// The throttle.
    Throttle,
    /// The code.
    Code,
}

/// What was unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// The user's groups could not be looked up.
    Groups,
    /// The state.
    State,
    /// The enrollment (secret file).
    Enrollment,
}

/// What the module does with a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No such account: ask anyway, then PAM_USER_UNKNOWN.
    UnknownUser,
    /// Something needed cannot be used: refuse (reason class for the log).
    Unusable {
        /// Which input.
        what: Unusable,
        /// Reason class (`corrupt`, `insecure-permissions`, ...).
        class: &'static str,
        /// Description, for logs and `explain` (no secret in it).
        detail: String,
    },
    /// Exempt by the named rule: PAM_IGNORE, or PAM_SUCCESS with `exempt_result = "success"`.
    Exempt {
        /// The rule.
        rule: String,
        /// Whether the result is PAM_SUCCESS.
        success: bool,
    },
    /// Not enrolled, before the deadline: passes with a notice.
    Grace {
        /// The deadline.
        deadline: Date,
        /// Days until it.
        days_left: i64,
    },
    /// Not enrolled after the deadline: refused with instructions.
    DeadlinePassed {
        /// The deadline.
        deadline: Date,
    },
    /// Not enrolled: enrolls in the account phase.
    EnrollAtLogin,
    /// Not enrolled: PAM_IGNORE with `nullok`, otherwise asked anyway and refused.
    NotEnrolled {
        /// Whether `nullok` applies.
        nullok: bool,
    },
    /// A remembered host: PAM_SUCCESS without a code.
    Remembered {
        /// Unix time until which it is remembered.
        until: u64,
    },
    /// The host or the user must wait: refused.
    Throttled(Lockout),
    /// Ask for a code.
    AskCode,
}

/// The PAM result a plan leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamResult {
    /// PAM_SUCCESS.
    Success,
    /// PAM_AUTH_ERR.
    AuthErr,
    /// PAM_IGNORE.
    Ignore,
    /// PAM_USER_UNKNOWN.
    UserUnknown,
    /// PAM_SUCCESS with a right code, PAM_AUTH_ERR otherwise.
    ByCode,
}

impl PamResult {
    /// How `explain` names it.
    pub fn describe(self) -> &'static str {
        match self {
            PamResult::Success => "PAM_SUCCESS",
            PamResult::AuthErr => "PAM_AUTH_ERR",
            PamResult::Ignore => "PAM_IGNORE",
            PamResult::UserUnknown => "PAM_USER_UNKNOWN",
            PamResult::ByCode => "PAM_SUCCESS with a right code, PAM_AUTH_ERR otherwise",
        }
    }
}

impl Plan {
    /// The step that decided.
    pub fn check(&self) -> Check {
        match self {
            Plan::UnknownUser => Check::Account,
            Plan::Unusable {
                what: Unusable::Enrollment,
                ..
            } => Check::Enrollment,
            Plan::Unusable { .. } => Check::Inputs,
            Plan::Exempt { .. }
            | Plan::Grace { .. }
            | Plan::DeadlinePassed { .. }
            | Plan::EnrollAtLogin
            | Plan::NotEnrolled { .. }
            | Plan::Remembered { .. } => Check::Policy,
            Plan::Throttled(_) => Check::Throttle,
            Plan::AskCode => Check::Code,
        }
    }

    /// The PAM result of the authentication phase.
    pub fn result(&self) -> PamResult {
        match self {
            Plan::UnknownUser => PamResult::UserUnknown,
            Plan::Unusable { .. } | Plan::DeadlinePassed { .. } | Plan::Throttled(_) => {
                PamResult::AuthErr
            }
            Plan::NotEnrolled { nullok: false } => PamResult::AuthErr,
            Plan::Exempt { success: true, .. } | Plan::Remembered { .. } => PamResult::Success,
            Plan::Exempt { success: false, .. }
            | Plan::Grace { .. }
            | Plan::EnrollAtLogin
            | Plan::NotEnrolled { nullok: true } => PamResult::Ignore,
            Plan::AskCode => PamResult::ByCode,
        }
    }
}

fn unusable(what: Unusable, e: &StoreError) -> Plan {
    Plan::Unusable {
        what,
        class: e.class(),
        detail: e.to_string(),
    }
}

/// Decides a login of `facts` (`None`: the account does not exist) under `config`.
pub fn decide(config: &Config, facts: Option<&Facts>) -> Plan {
    let Some(f) = facts else {
        return Plan::UnknownUser;
    };
    let groups = match &f.groups {
        Ok(g) => g,
        Err(e) => return unusable(Unusable::Groups, e),
    };
    if let Loaded::Unusable(e) = &f.state {
        return unusable(Unusable::State, e);
    }
    let p = &config.policy;
    let pf = policy::Facts {
        user: &f.account.name,
        groups,
        rhost: &f.rhost,
        enrolled: !matches!(f.enrollment, Loaded::Absent),
        publickey_used: f.publickey_used,
        state: f.state.present(),
        password_tag: &f.password_tag,
        forget_hosts_before: f.enrollment.present().map_or(0, |s| s.forget_hosts_before),
        now: f.now,
    };
    match policy::evaluate(p, &pf) {
        policy::Decision::Exempt(rule) => {
            return Plan::Exempt {
                rule,
                success: p.exempt_result == ExemptResult::Success,
            };
        }
        policy::Decision::Grace {
            deadline,
            days_left,
        } => {
            return Plan::Grace {
                deadline,
                days_left,
            };
        }
        policy::Decision::DeadlinePassed { deadline } => {
            return Plan::DeadlinePassed { deadline };
        }
        policy::Decision::EnrollNow => return Plan::EnrollAtLogin,
        policy::Decision::NotEnrolledIgnore => return Plan::NotEnrolled { nullok: true },
        policy::Decision::NotEnrolledDeny => return Plan::NotEnrolled { nullok: false },
        // An unusable enrollment never passes, remembered host or not.
        policy::Decision::Remembered { until } if !matches!(f.enrollment, Loaded::Unusable(_)) => {
            return Plan::Remembered { until };
        }
        policy::Decision::Remembered { .. } | policy::Decision::AskCode => {}
    }
    if let Loaded::Unusable(e) = &f.enrollment {
        return unusable(Unusable::Enrollment, e);
    }
    if let Some(state) = f.state.present() {
        let host = throttle::host_key(&f.rhost);
        if let Some(lockout) = throttle::check(state, &host, &config.throttle, f.now) {
            return Plan::Throttled(lockout);
        }
    }
    Plan::AskCode
}
