//! The result of one authentication, and its mapping to PAM return codes in exactly one place.

use pam::constants::PamResultCode;
use pam_totp_core::verify::Reject;

/// How the second factor was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A TOTP code.
    Totp,
    /// A backup code.
    Backup,
    /// A remembered remote host (`remember`).
    Remembered,
    /// A first code during enrollment at login.
    Enrolled,
}

impl Method {
    /// The name used in syslog lines (`method=...`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Backup => "backup",
            Method::Remembered => "remembered",
            Method::Enrolled => "enroll",
        }
    }
}

/// Why a login did not pass: the `reason=` of its syslog line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The answer was judged and refused.
    Code(Reject),
    /// The host or the user must wait.
    Throttled,
    /// The first code of an enrollment at login did not match.
    EnrollCodeWrong,
    /// No such account.
    UnknownUser,
    /// No enrollment.
    NoSecret,
    /// No enrollment, before the enrollment deadline.
    NotEnrolledGrace,
    /// No enrollment after the deadline.
    NotEnrolledAfterDeadline,
    /// No enrollment; the account phase enrolls.
    EnrollInAccountPhase,
    /// The store failed or holds something unusable (the store's class).
    Store(&'static str),
    /// A spent code could not be recorded.
    StateWriteFailed,
    /// PAM_AUTHTOK could not be handed on.
    SetAuthtokFailed,
    /// The system's random source failed.
    RandomSourceFailed,
    /// The application's conversation failed.
    ConversationError,
    /// libpam gave no user name.
    NoUserName,
    /// The configuration or a module argument is wrong.
    ConfigError,
}

impl Reason {
    /// The class written to syslog.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Code(r) => r.class(),
            Reason::Throttled => "throttled",
            Reason::EnrollCodeWrong => "enroll-code-wrong",
            Reason::UnknownUser => "unknown-user",
            Reason::NoSecret => "no-secret",
            Reason::NotEnrolledGrace => "not-enrolled-grace",
            Reason::NotEnrolledAfterDeadline => "not-enrolled-after-deadline",
            Reason::EnrollInAccountPhase => "not-enrolled-enroll-in-account-phase",
            Reason::Store(class) => class,
            Reason::StateWriteFailed => "state-write-failed",
            Reason::SetAuthtokFailed => "set-authtok-failed",
            Reason::RandomSourceFailed => "random-source-failed",
            Reason::ConversationError => "conversation-error",
            Reason::NoUserName => "no-user-name",
            Reason::ConfigError => "config-error",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The second factor was passed.
    Accepted(Method),
    /// A wrong, old, reused or malformed answer, or throttled.
    Rejected(Reason),
    /// The user has no secret file; with `nullok` (or before the deadline) this module steps
    /// aside.
    NotEnrolled { nullok: bool },
    /// A policy exemption: PAM_IGNORE, or PAM_SUCCESS with `exempt_result = "success"`.
    Exempt { success: bool },
    /// Nothing for this phase to do (the account phase without a pending enrollment).
    NotApplicable,
    /// The secret or state file is unreadable, insecure or corrupt; the state could not be
    /// written. Fail closed.
    Unusable(Reason),
    /// The user does not exist.
    UnknownUser,
    /// The configuration or a module argument is wrong.
    BadConfig,
    /// libpam or the application's conversation failed, with this raw PAM code.
    Conversation(i32),
}

/// The PAM code for an outcome.
pub fn to_pam_code(outcome: &Outcome) -> PamResultCode {
    match outcome {
        Outcome::Accepted(_) => PamResultCode::PAM_SUCCESS,
        Outcome::Rejected(_) | Outcome::Unusable(_) => PamResultCode::PAM_AUTH_ERR,
        Outcome::NotEnrolled { nullok: true } => PamResultCode::PAM_IGNORE,
        Outcome::NotEnrolled { nullok: false } => PamResultCode::PAM_AUTH_ERR,
        Outcome::Exempt { success: true } => PamResultCode::PAM_SUCCESS,
        Outcome::Exempt { success: false } => PamResultCode::PAM_IGNORE,
        Outcome::NotApplicable => PamResultCode::PAM_IGNORE,
        Outcome::UnknownUser => PamResultCode::PAM_USER_UNKNOWN,
        Outcome::BadConfig => PamResultCode::PAM_SERVICE_ERR,
        Outcome::Conversation(code) => {
            PamResultCode::try_from(*code).unwrap_or(PamResultCode::PAM_CONV_ERR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_pinned() {
        use PamResultCode::*;
        let table = [
            (Outcome::Accepted(Method::Totp), PAM_SUCCESS),
            (Outcome::Accepted(Method::Backup), PAM_SUCCESS),
            (
                Outcome::Rejected(Reason::Code(Reject::WrongCode)),
                PAM_AUTH_ERR,
            ),
            (Outcome::Rejected(Reason::Throttled), PAM_AUTH_ERR),
            (Outcome::Unusable(Reason::Store("corrupt")), PAM_AUTH_ERR),
            (Outcome::NotEnrolled { nullok: true }, PAM_IGNORE),
            (Outcome::NotEnrolled { nullok: false }, PAM_AUTH_ERR),
            (Outcome::UnknownUser, PAM_USER_UNKNOWN),
            (Outcome::Exempt { success: true }, PAM_SUCCESS),
            (Outcome::Exempt { success: false }, PAM_IGNORE),
            (Outcome::NotApplicable, PAM_IGNORE),
            (Outcome::Accepted(Method::Remembered), PAM_SUCCESS),
            (Outcome::Accepted(Method::Enrolled), PAM_SUCCESS),
            (Outcome::BadConfig, PAM_SERVICE_ERR),
            (Outcome::Conversation(PAM_CONV_ERR as i32), PAM_CONV_ERR),
            (Outcome::Conversation(PAM_BUF_ERR as i32), PAM_BUF_ERR),
        ];
        for (outcome, code) in table {
            assert_eq!(to_pam_code(&outcome), code, "{outcome:?}");
        }
    }
}
