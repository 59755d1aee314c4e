//! The result of one authentication, and its mapping to PAM return codes in exactly one place.

use pam::constants::PamResultCode;

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

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The second factor was passed.
    Accepted(Method),
    /// A wrong, old, reused or malformed answer, or throttled.
    Rejected(&'static str),
    /// The user has no secret file; with `nullok` (or before the deadline) this module steps
    /// aside.
    NotEnrolled { nullok: bool },
    /// A policy exemption: PAM_IGNORE, or PAM_SUCCESS with `exempt_result = "success"`.
    Exempt { success: bool },
    /// Nothing for this phase to do (the account phase without a pending enrollment).
    NotApplicable,
    /// The secret or state file is unreadable, insecure or corrupt; the state could not be
    /// written. Fail closed.
    Unusable(&'static str),
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
            (Outcome::Rejected("wrong-code"), PAM_AUTH_ERR),
            (Outcome::Unusable("corrupt"), PAM_AUTH_ERR),
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
