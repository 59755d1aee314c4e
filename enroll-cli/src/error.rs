//! The CLI's errors. Each one says what is wrong and, on a second line, what to do about it
//! (after rage's `err-*`/`rec-*` pairs). None of them carries a secret, a code or a backup code.

use pam_totp_core::error::{ConfigError, FileProblem, StoreError};
use pam_totp_core::store::Location;
use std::fmt;
use std::path::PathBuf;

/// Everything that makes a command fail.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file cannot be read or is wrong.
    Config(ConfigError),
    /// The `user=` identity of the configuration does not exist.
    ConfigIdentity(ConfigError),
    /// `--user` names someone else and the caller is not root.
    NotRoot {
        /// The user the caller asked to act for.
        wanted: String,
        /// The caller's own name.
        me: String,
    },
    /// A command for administrators only, run by someone else.
    RootOnly(&'static str),
    /// No such account.
    NoSuchUser(String),
    /// The caller's own uid has no passwd entry.
    UnknownCaller(u32),
    /// The user has no enrollment.
    NotEnrolled {
        /// Whose.
        user: String,
        /// Where it was looked for.
        path: Location,
    },
    /// An enrollment exists and `--force` was not given.
    Exists(Location),
    /// The existing secret file cannot be used.
    BadSecretFile(StoreError),
    /// A file could not be written or removed.
    Store(StoreError),
    /// The state file of the user is unusable.
    State(StoreError),
    /// A command-line value is wrong.
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Standard input ended before an answer was given.
    Eof(&'static str),
    /// The code from the app was wrong three times.
    CodeNotConfirmed,
    /// The user declined a confirmation.
    Declined,
    /// Reading the terminal or writing output failed.
    Io(std::io::Error),
    /// The system's random source failed.
    Random(pam_totp_core::KeyError),
    /// A google-authenticator file cannot be imported.
    Import {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// What to do.
        hint: String,
    },
    /// `doctor` found problems (already printed).
    DoctorFindings(usize),
}

impl Error {
    /// The recommendation line.
    pub fn hint(&self) -> String {
        match self {
            Error::Config(ConfigError::File {
                path,
                problem:
                    FileProblem::Unreadable {
                        kind: std::io::ErrorKind::PermissionDenied,
                        ..
                    },
            }) => {
                format!(
                    "Make {} readable (it must stay owned by root and not writable by others: \
                     chmod 0644 {}), or run the command as root.",
                    path.display(),
                    path.display()
                )
            }
            Error::Config(ConfigError::File {
                problem: FileProblem::Missing,
                ..
            }) => "Check the path given to --config, or leave --config out to use \
                 /etc/security/pam_totp.conf."
                .into(),
            Error::Config(ConfigError::File { path, .. }) => format!(
                "Make {} a regular file owned by root with mode 0644 (chown root: {p}; chmod 0644 {p}).",
                path.display(),
                p = path.display()
            ),
            Error::Config(_) => "Fix that line (the keys are listed in pam_totp.conf(5)); the \
                 module refuses every login while the file is wrong."
                .into(),
            Error::ConfigIdentity(_) => {
                "Create that account, or change `user =` in the configuration file.".into()
            }
            Error::NotRoot { wanted, .. } => format!(
                "Run it as root (sudo pam-totp ... --user {wanted}), or leave --user out to act \
                 on your own enrollment."
            ),
            Error::RootOnly(cmd) => format!("Run it as root: sudo pam-totp {cmd} ..."),
            Error::NoSuchUser(name) => format!(
                "Check the spelling (getent passwd {name}); the account must exist before it can \
                 be enrolled."
            ),
            Error::UnknownCaller(_) => {
                "Run the command as a user with an account, or as root with --user NAME.".into()
            }
            Error::NotEnrolled { .. } => {
                "Enroll first with `pam-totp enroll` (root: `pam-totp enroll --user NAME`).".into()
            }
            Error::Exists(_) => {
                "Use --force to replace it (the old key and backup codes stop working).".into()
            }
            Error::BadSecretFile(e) => match e {
                StoreError::Corrupt { .. } | StoreError::BadSize { .. } => {
                    "The file was left as it is. Replace it with `pam-totp enroll --force` (a new \
                     key: add it to the app again), or restore it from a backup."
                        .into()
                }
                StoreError::TooOpen { path, .. } => {
                    format!("Restrict it: chmod 0600 {}", path.display())
                }
                StoreError::WrongOwner { path, expected, .. } => format!(
                    "Give it to its owner: chown {expected} {} (or set `user =` in the \
                     configuration if secrets belong to a service account).",
                    path.display()
                ),
                StoreError::Symlink(p) | StoreError::NotRegular(p) => format!(
                    "Remove {} and enroll again; secret files must be plain files.",
                    p.display()
                ),
                StoreError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    "Run the command as the user who owns the file, or as root.".into()
                }
                StoreError::Directory { problem, .. } => directory_hint(*problem),
                _ => "Check the file and its directory, then try again.".into(),
            },
            Error::Store(e) => match e {
                StoreError::Io { path, source, .. }
                    if source.kind() == std::io::ErrorKind::PermissionDenied
                        || source.raw_os_error() == Some(30) =>
                {
                    format!(
                        "Make {} writable for the owner of the secret file, or choose another \
                         place with --secret-file or `secret =` in the configuration. Nothing \
                         was written.",
                        path.parent().unwrap_or(path).display()
                    )
                }
                StoreError::Io { .. } => "Nothing was changed; fix the cause and try again.".into(),
                StoreError::Exists(_) => {
                    "Use --force to replace it (the old key and backup codes stop working).".into()
                }
                StoreError::Directory { problem, .. } => directory_hint(*problem),
                _ => "Nothing was changed; fix the file and try again.".into(),
            },
            Error::State(StoreError::Directory { problem, .. }) => directory_hint(*problem),
            Error::State(_) => "The state file was left as it is. Inspect it, or remove it with \
                 `pam-totp reset --user NAME` (this also removes the enrollment)."
                .into(),
            Error::Usage { hint, .. } => hint.clone(),
            Error::Eof(_) => "Nothing was written. Run the command again on a terminal, or use \
                 --no-confirm (or --json) in scripts."
                .into(),
            Error::CodeNotConfirmed => "Nothing was written. Check that the phone's clock is set \
                 automatically and that you scanned the code just shown, then run \
                 `pam-totp enroll` again."
                .into(),
            Error::Declined => "Nothing was changed.".into(),
            Error::Io(_) => "Nothing was written; try again.".into(),
            Error::Random(_) => "Nothing was written; check the kernel's random source \
                 (/dev/urandom) and try again."
                .into(),
            Error::Import { hint, .. } => hint.clone(),
            Error::DoctorFindings(_) => {
                "Apply the fixes above, then run `pam-totp doctor` again.".into()
            }
        }
    }

    /// Process exit status: 2 for usage mistakes, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage { .. } | Error::NotRoot { .. } | Error::RootOnly(_) => 2,
            _ => 1,
        }
    }

    /// A usage error with its hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Sorts a store error from reading a secret file.
    pub fn from_load(e: StoreError) -> Error {
        Error::BadSecretFile(e)
    }

    /// Sorts a store error from writing a secret file.
    pub fn from_save(e: StoreError) -> Error {
        match e {
            StoreError::Exists(p) => Error::Exists(Location::new(p.display().to_string())),
            e => Error::Store(e),
        }
    }
}

/// What to do about a directory server that could not be used.
fn directory_hint(problem: pam_totp_core::DirectoryProblem) -> String {
    use pam_totp_core::DirectoryProblem as P;
    match problem {
        P::Unreachable | P::Timeout => "Check that a server in `uri` of the [ldap] table runs and \
             can be reached from here (`pam-totp doctor` tries each one). Nothing was changed."
            .into(),
        P::Tls => "Check `ca_file` in the [ldap] table: it must hold the CA that signed the \
             server's certificate, and the URI must use the name in that certificate."
            .into(),
        P::Credentials => "Check the bind DN and its password file (root's, mode 0600), or, as a \
             user, your directory password."
            .into(),
        P::Access => "The directory's access rules refused this. A user may make their first \
             enrollment; every later change, and reading keys, is an administrator's: run it \
             as root on a server whose [ldap] table has `admin_bind_dn` (docs/fleet.md)."
            .into(),
        P::Schema => "Load the pam-totp schema (pam-totp.ldif) and the `otp` module into the \
             directory; see docs/fleet.md."
            .into(),
        P::User => "Check `base` and `user_filter` in the [ldap] table: they must find exactly \
             one entry for the user."
            .into(),
        P::Protocol => "The server's answer was not what pam-totp expects; see the message and \
             the server's log. Nothing was changed."
            .into(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "the configuration is not usable: {e}")?,
            Error::ConfigIdentity(e) => write!(f, "the configuration is not usable: {e}")?,
            Error::NotRoot { wanted, me } => write!(
                f,
                "only root may act for another user: you are `{me}` and asked for `{wanted}`"
            )?,
            Error::RootOnly(cmd) => write!(f, "`pam-totp {cmd}` is for root only")?,
            Error::NoSuchUser(name) => write!(f, "there is no user named `{name}`")?,
            Error::UnknownCaller(uid) => write!(f, "uid {uid} has no entry in the user database")?,
            Error::NotEnrolled { user, path } => write!(
                f,
                "`{user}` is not enrolled: there is no secret file at {path}"
            )?,
            Error::Exists(p) => write!(f, "{p} already exists")?,
            Error::BadSecretFile(e) => write!(f, "the secret file cannot be used: {e}")?,
            Error::Store(e) => write!(f, "{e}")?,
            Error::State(e) => write!(f, "the state file cannot be used: {e}")?,
            Error::Usage { message, .. } => f.write_str(message)?,
            Error::Eof(what) => write!(f, "no {what} was entered (end of input)")?,
            Error::CodeNotConfirmed => {
                f.write_str("the code from the app did not match, three times")?
            }
            Error::Declined => f.write_str("cancelled")?,
            Error::Io(e) => write!(f, "input/output failed: {e}")?,
            Error::Random(e) => write!(f, "{e}")?,
            Error::Import { path, message, .. } => {
                write!(f, "cannot import {}: {message}", path.display())?
            }
            Error::DoctorFindings(n) => write!(
                f,
                "doctor found {n} problem{}",
                if *n == 1 { "" } else { "s" }
            )?,
        }
        write!(f, ".\n{}", self.hint())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// Result of a command.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use pam_totp_core::DirectoryProblem as P;

    /// Each directory problem has its own hint, one sentence or two of plain text (a lost line
    /// continuation once put runs of spaces into them).
    #[test]
    fn given_each_directory_problem_then_its_hint_is_distinct_plain_text() {
        let all = [
            P::Unreachable,
            P::Timeout,
            P::Tls,
            P::Credentials,
            P::Access,
            P::Schema,
            P::User,
            P::Protocol,
        ];
        let hints: Vec<String> = all.iter().map(|&p| directory_hint(p)).collect();
        for (p, hint) in all.iter().zip(&hints) {
            assert!(
                hint.ends_with('.') && !hint.contains("  ") && !hint.contains('\n'),
                "{p:?}: {hint:?}"
            );
        }
        let mut distinct = hints.clone();
        distinct.sort();
        distinct.dedup();
        // Unreachable and Timeout share theirs.
        assert_eq!(distinct.len(), all.len() - 1);
    }
}
