//! Error types shared by the module and the CLI. They carry context (path, line, key) but never a
//! secret value, so any of them may be logged or shown.

use std::fmt;
use std::path::PathBuf;

/// A secret or state file that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseError {
    /// 1-based line, when the TOML parser could tell.
    pub line: Option<usize>,
    /// The key at fault, when known.
    pub key: Option<String>,
    /// What is wrong, in words (never the value itself).
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ParseError {
            line: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error about `key`, without a line.
    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError {
            line: None,
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// Builds an error from a TOML deserialization error, turning its byte span into a line.
    /// The message of the TOML crate may quote input, so only its first line is kept and values
    /// from secret files are never echoed: callers pass `redact = true` for those.
    pub(crate) fn from_toml(err: &toml::de::Error, text: &str, redact: bool) -> Self {
        let line = err.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        let message = if redact {
            "not valid TOML for this format".to_string()
        } else {
            err.message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string()
        };
        ParseError {
            line,
            key: None,
            message,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// What is wrong with the configuration file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProblem {
    /// It was named explicitly (`--config`, `config=`) but does not exist.
    Missing,
    /// It could not be read (the kind of I/O error, and its description).
    Unreadable {
        /// `PermissionDenied`, ...
        kind: std::io::ErrorKind,
        /// What failed.
        detail: String,
    },
    /// It fails a safety check (a link, not a regular file, too open, too large).
    Unsafe(String),
    /// It is owned by this uid instead of root.
    WrongOwner(u32),
    /// It is not UTF-8 text.
    NotText,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Missing => f.write_str("does not exist"),
            FileProblem::Unreadable { detail, .. } | FileProblem::Unsafe(detail) => {
                f.write_str(detail)
            }
            FileProblem::WrongOwner(uid) => {
                write!(f, "is owned by uid {uid}; it must be owned by root")
            }
            FileProblem::NotText => f.write_str("is not UTF-8 text"),
        }
    }
}

/// The configuration file or a module argument is wrong. The module answers PAM_SERVICE_ERR.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be opened or is unsafe (owner, mode, type).
    File { path: PathBuf, problem: FileProblem },
    /// The configuration file parsed badly, or a key or value in it is wrong.
    Parse { path: PathBuf, error: ParseError },
    /// A module argument is unknown or has a bad value.
    Argument { argument: String, reason: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::File { path, problem } => write!(f, "{}: {problem}", path.display()),
            ConfigError::Parse { path, error } => write!(f, "{}: {error}", path.display()),
            ConfigError::Argument { argument, reason } => {
                write!(f, "module argument `{argument}`: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// A failure of the file system layer. Every variant makes the module fail closed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is a symbolic link (refused, O_NOFOLLOW).
    Symlink(PathBuf),
    /// Not a regular file (a directory, FIFO, device...).
    NotRegular(PathBuf),
    /// Owned by someone other than the expected identity.
    WrongOwner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    /// Mode allows more than permitted (group/world access).
    TooOpen {
        path: PathBuf,
        mode: u32,
        allowed: u32,
    },
    /// Empty or larger than the size limit.
    BadSize { path: PathBuf, size: u64 },
    /// The content does not parse; the file is left as it is.
    Corrupt { path: PathBuf, error: ParseError },
    /// Other changes kept winning the compare-and-set for longer than allowed.
    Contention(PathBuf),
    /// Already exists and replacing was not asked for.
    Exists(PathBuf),
    /// The user name cannot be used in a file name or path template.
    BadUser(String),
    /// Any other I/O error, with the operation that failed.
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// A directory server could not be used (the last one tried, when several were).
    Directory {
        /// Its URI.
        server: String,
        /// What went wrong, as a class.
        problem: DirectoryProblem,
        /// The server's or the client's words (never a value from an entry).
        detail: String,
    },
}

/// Why a directory server could not be used, as sysadmins look for it in syslog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryProblem {
    /// Connection refused, no route, name not resolved.
    Unreachable,
    /// No answer within the configured time-out.
    Timeout,
    /// The TLS handshake failed (unknown CA, wrong name, ...).
    Tls,
    /// The bind was refused (wrong DN or password), or its password file is unusable.
    Credentials,
    /// The directory's access control refused the operation.
    Access,
    /// An attribute or object class is unknown: the schema is not loaded.
    Schema,
    /// The user's entry is missing or not unique.
    User,
    /// Anything else the server answered, or an answer that makes no sense.
    Protocol,
}

impl DirectoryProblem {
    /// The class in syslog lines (`reason=...`).
    pub fn class(self) -> &'static str {
        match self {
            DirectoryProblem::Unreachable => "directory-unreachable",
            DirectoryProblem::Timeout => "directory-timeout",
            DirectoryProblem::Tls => "directory-tls",
            DirectoryProblem::Credentials => "directory-credentials",
            DirectoryProblem::Access => "directory-access",
            DirectoryProblem::Schema => "directory-schema",
            DirectoryProblem::User => "directory-user-entry",
            DirectoryProblem::Protocol => "directory-protocol",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            DirectoryProblem::Unreachable => "cannot connect",
            DirectoryProblem::Timeout => "no answer in time",
            DirectoryProblem::Tls => "TLS failed",
            DirectoryProblem::Credentials => "bind refused",
            DirectoryProblem::Access => "access denied by the directory",
            DirectoryProblem::Schema => "schema missing (load pam-totp.ldif and the otp module)",
            DirectoryProblem::User => "user entry",
            DirectoryProblem::Protocol => "unexpected answer",
        }
    }
}

impl StoreError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        op: &'static str,
        source: impl Into<std::io::Error>,
    ) -> Self {
        StoreError::Io {
            path: path.into(),
            op,
            source: source.into(),
        }
    }

    /// A short, stable class for syslog lines (`reason=...`).
    pub fn class(&self) -> &'static str {
        match self {
            StoreError::Symlink(_) => "symlink",
            StoreError::NotRegular(_) => "not-regular-file",
            StoreError::WrongOwner { .. } => "wrong-owner",
            StoreError::TooOpen { .. } => "insecure-permissions",
            StoreError::BadSize { .. } => "bad-size",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Contention(_) => "state-contention",
            StoreError::Exists(_) => "exists",
            StoreError::BadUser(_) => "bad-user-name",
            StoreError::Io { .. } => "io-error",
            StoreError::Directory { problem, .. } => problem.class(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Symlink(p) => write!(
                f,
                "{} is a symbolic link; refusing to follow it",
                p.display()
            ),
            StoreError::NotRegular(p) => write!(f, "{} is not a regular file", p.display()),
            StoreError::WrongOwner {
                path,
                owner,
                expected,
            } => write!(
                f,
                "{} is owned by uid {owner}, expected uid {expected}",
                path.display()
            ),
            StoreError::TooOpen {
                path,
                mode,
                allowed,
            } => write!(
                f,
                "{} has mode {mode:04o}, more than the allowed {allowed:04o}",
                path.display()
            ),
            StoreError::BadSize { path, size } => {
                write!(
                    f,
                    "{} has a size of {size} bytes (empty or too large)",
                    path.display()
                )
            }
            StoreError::Corrupt { path, error } => write!(f, "{}: {error}", path.display()),
            StoreError::Contention(p) => {
                write!(
                    f,
                    "{}: other logins kept changing it; try again",
                    p.display()
                )
            }
            StoreError::Exists(p) => write!(f, "{} already exists", p.display()),
            StoreError::BadUser(u) => write!(f, "user name {u:?} cannot be used in a file name"),
            StoreError::Io { path, op, source } => write!(f, "{op} {}: {source}", path.display()),
            StoreError::Directory {
                server,
                problem,
                detail,
            } => write!(f, "directory {server}: {}: {detail}", problem.describe()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Corrupt { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Key material that cannot be decoded or made: keys, backup codes, their QR code and file.
/// The messages describe the problem, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty.
    Empty,
    /// Characters other than base32's letters A-Z and digits 2-7.
    NotBase32,
    /// Base32 characters, but not a valid base32 text.
    BadBase32,
    /// Shorter than this many bits.
    TooShort(usize),
    /// Longer than this many bits.
    TooLong(usize),
    /// The system random source failed (its description).
    Random(String),
    /// More backup codes asked for than this.
    TooManyCodes(usize),
    /// A backup code that is not 8 to 16 letters or digits.
    BadBackupCode,
    /// Too much data for a QR code.
    QrTooLong,
    /// The TOML serialiser failed (its description).
    Serialize(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("the key is empty"),
            KeyError::NotBase32 => {
                f.write_str("the key is not base32 (letters A-Z and digits 2-7)")
            }
            KeyError::BadBase32 => f.write_str("the key is not valid base32"),
            KeyError::TooShort(bits) => write!(f, "the key is shorter than {bits} bits"),
            KeyError::TooLong(bits) => write!(f, "the key is longer than {bits} bits"),
            KeyError::Random(e) => write!(f, "the system random source failed: {e}"),
            KeyError::TooManyCodes(n) => write!(f, "at most {n} backup codes can be made"),
            KeyError::BadBackupCode => {
                f.write_str("a backup code must be 8 to 16 letters or digits")
            }
            KeyError::QrTooLong => f.write_str("too much data for a QR code"),
            KeyError::Serialize(e) => write!(f, "cannot serialise: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}
