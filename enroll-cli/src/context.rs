//! What every command needs before it acts: the configuration (read exactly as the module reads
//! it, so both agree on where secrets and state live), the storage backend, and the user the
//! command is for, with the rule that only root may act for someone else.

use crate::error::{Error, Result};
use pam_totp_core::config::Backend;
use pam_totp_core::config::{self, Config};
use pam_totp_core::state::State;
use pam_totp_core::store::{Location, Store, UserInfo};
use pam_totp_core::{Clock, StoreError, SystemClock};
use std::path::Path;

/// Configuration, backend and clock of one run.
pub struct Ctx {
    /// The validated configuration.
    pub config: Config,
    /// Where secrets and state live: local files, or a directory server (which root's CLI
    /// binds to as the administrator, and a user's as themselves, asked for their password
    /// when a command first needs the directory).
    pub store: Box<dyn Store + Sync>,
    /// Unix time at the start of the command.
    pub now: u64,
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

impl Ctx {
    /// Loads the configuration: `path` if given (it must then exist), else the default file,
    /// which may be absent.
    ///
    /// # Errors
    /// The file is unreadable or wrong, or its `user=` identity does not exist.
    pub fn load(path: Option<&Path>) -> Result<Ctx> {
        let config = config::load(&[], path).map_err(Error::Config)?;
        let store = cli_store(&config)?;
        Ok(Ctx {
            config,
            store,
            now: SystemClock.now(),
        })
    }

    /// Points the backend at another secret file (a path or a template).
    pub fn override_secret_file(&mut self, path: &Path) -> Result<()> {
        let text = path.to_str().ok_or_else(|| {
            Error::usage(
                "the --secret-file path is not valid UTF-8",
                "Choose a path made of UTF-8 characters.",
            )
        })?;
        let template = if text.starts_with('/')
            || text.starts_with("~/")
            || text.starts_with("${HOME}")
            || text.starts_with("%h")
        {
            text.to_string()
        } else {
            let cwd = std::env::current_dir()?;
            format!("{}/{}", cwd.display(), text.trim_start_matches("./"))
        };
        if template.ends_with('/') {
            return Err(Error::usage(
                format!("--secret-file {text} names a directory"),
                "Give the path of the file itself, e.g. --secret-file /var/lib/pam-totp/secrets/alice.toml.",
            ));
        }
        self.config.secret = template;
        self.store = cli_store(&self.config)?;
        Ok(())
    }

    /// Resolves the user a command acts on: `--user NAME` (root only, unless it names the
    /// caller) or the caller.
    ///
    /// # Errors
    /// Not root with another user's name, or no such user.
    pub fn target(&self, user: Option<&str>) -> Result<UserInfo> {
        let uid = nix::unistd::Uid::current().as_raw();
        let me = UserInfo::lookup_uid(uid).map_err(Error::Store)?;
        match user {
            None => me.ok_or(Error::UnknownCaller(uid)),
            Some(name) => {
                let my_name = me.as_ref().map(|m| m.name.clone());
                if !is_root() && my_name.as_deref() != Some(name) {
                    return Err(Error::NotRoot {
                        wanted: name.to_string(),
                        me: my_name.unwrap_or_else(|| format!("uid {uid}")),
                    });
                }
                lookup(name)
            }
        }
    }

    /// Where the secret of `user` lives.
    ///
    /// # Errors
    /// The user name cannot be used in the path template.
    pub fn secret_path(&self, user: &UserInfo) -> Result<Location> {
        self.store.enrollment_location(user).map_err(Error::Store)
    }

    /// Loads the secret file of `user`, which must exist.
    ///
    /// # Errors
    /// Not enrolled, or the file is unusable.
    pub fn enrolled(&self, user: &UserInfo) -> Result<pam_totp_core::secret_file::SecretFile> {
        match self.store.load_enrollment(user).map_err(Error::from_load)? {
            Some(f) => Ok(f),
            None => Err(Error::NotEnrolled {
                user: user.name.clone(),
                path: self.secret_path(user)?,
            }),
        }
    }

    /// Reads the state of `user`, for reports. Local state belongs to root and only root can
    /// read it; for anyone else it is `None`. In a directory the owner reads their own.
    ///
    /// # Errors
    /// The state exists but cannot be read or parsed.
    pub fn peek_state(&self, user: &str) -> Result<Option<State>> {
        match self.store.state(user) {
            // The state directory is root's alone (it tells when and from where users log in).
            Err(StoreError::Io { source, .. })
                if !is_root() && source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Ok(None)
            }
            other => other.map_err(Error::State),
        }
    }

    /// Where the login state is kept, for messages.
    pub fn state_place(&self) -> String {
        match &self.config.backend {
            Backend::Files => self.config.state_dir.display().to_string(),
            Backend::Directory(d) => {
                let uris: Vec<&str> = d.servers.iter().map(|s| s.uri.as_str()).collect();
                format!("the directory ({})", uris.join(", "))
            }
        }
    }

    /// Whether enrollments are kept in a directory.
    pub fn directory(&self) -> bool {
        matches!(self.config.backend, Backend::Directory(_))
    }

    /// Whether this caller can read the state: root always; anyone else only their own, and
    /// only in a directory, whose access rules let the owner read it (the local state directory
    /// is root's alone; see [`Ctx::peek_state`]).
    pub fn state_visible(&self) -> bool {
        is_root() || self.directory()
    }
}

/// Keeps the keys this process is about to hold out of core dumps and away from debuggers of
/// the same user: `PR_SET_DUMPABLE` 0 (no core dump, even through a `core_pattern` pipe, and no
/// `ptrace` or `/proc/<pid>/mem` for anyone without `CAP_SYS_PTRACE`) and `RLIMIT_CORE` 0 (no
/// core file, also should something make the process dumpable again). Called first by every
/// command: `enroll`, `qr`, `import-google-authenticator` and `backup-codes` show keys or codes,
/// and nearly all others load a key with the secret file they read.
///
/// # Errors
/// Either call failed: the command does not go on to handle a key unprotected.
pub fn protect_key_memory() -> Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_CORE, 0, 0)
        .and_then(|()| nix::sys::prctl::set_dumpable(false))
        .map_err(|e| Error::Io(std::io::Error::from(e)))
}

/// The store as the CLI uses it: a root shell's supplementary groups are dropped while it acts
/// in a user's directories; root binds to a directory as its administrator, anyone else as
/// themselves.
fn cli_store(config: &Config) -> Result<Box<dyn Store + Sync>> {
    let who = if is_root() {
        pam_totp_ldap::Credentials::Admin
    } else {
        let uid = nix::unistd::Uid::current().as_raw();
        let me = UserInfo::lookup_uid(uid)
            .map_err(Error::Store)?
            .ok_or(Error::UnknownCaller(uid))?;
        pam_totp_ldap::Credentials::User {
            name: me.name,
            ask: crate::commands::read_password,
        }
    };
    pam_totp_ldap::open_store(config, who, |files| {
        files.groups = pam_totp_core::store::Groups::Drop;
    })
    .map_err(Error::ConfigIdentity)
}

/// Looks a user up by name.
///
/// # Errors
/// No such user, or the lookup failed.
pub fn lookup(name: &str) -> Result<UserInfo> {
    UserInfo::lookup(name)
        .map_err(Error::Store)?
        .ok_or_else(|| Error::NoSuchUser(name.to_string()))
}

/// Requires root for an administrator's command.
///
/// # Errors
/// The caller is not root.
pub fn require_root(command: &'static str) -> Result<()> {
    if is_root() {
        Ok(())
    } else {
        Err(Error::RootOnly(command))
    }
}

/// This host's name, the default issuer.
pub fn host_name() -> String {
    pam_totp_core::store::host_name()
}

/// Checks an issuer or account label for the app.
///
/// # Errors
/// Empty, too long, containing `:` (the separator of the otpauth label), or a character the
/// secret file refuses (control, bidirectional and invisible characters: see
/// [`pam_totp_core::secret_file::is_printable`]).
pub fn check_label(what: &str, text: &str) -> Result<()> {
    if text.is_empty()
        || text.len() > 64
        || text.contains(':')
        || !pam_totp_core::secret_file::printable(text)
    {
        return Err(Error::usage(
            format!("the {what} must be 1 to 64 printable characters without `:`"),
            format!("Choose another --{what}."),
        ));
    }
    Ok(())
}
