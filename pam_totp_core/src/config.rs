//! `/etc/security/pam_totp.conf` and the module arguments, in two stages (after ripgrep's
//! low/high args): [`RawConfig`] collects what was written, [`Config`] is validated and filled
//! with defaults. A module argument and a configuration key share one name; arguments win.
//! Unknown keys and bad values are errors, never ignored.

use crate::directory::{DirectoryConfig, RawDirectory};
use crate::error::{ConfigError, FileProblem, ParseError, StoreError};
use crate::policy::{self, Cidr, Date, ExemptResult, Policy, Publickey, Require};
use crate::store::{LocalFiles, ReadRules, UserInfo};
use crate::throttle::ThrottlePolicy;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the configuration file lives unless `config=` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/security/pam_totp.conf";
/// Default secret file template.
pub const DEFAULT_SECRET: &str = "~/.config/pam-totp/secret.toml";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pam-totp";
/// Default prompt.
pub const DEFAULT_PROMPT: &str = "Verification code: ";
/// Largest configuration file accepted.
const MAX_CONFIG_SIZE: u64 = 64 * 1024;
/// Largest `window` accepted: 10 steps either side is five minutes at 30 s.
pub const MAX_WINDOW: u32 = 10;
/// Default `hotp_window`: counters tried after the last accepted one (pam_oath and
/// google-authenticator look about as far ahead).
pub const DEFAULT_HOTP_WINDOW: u32 = 10;
/// Largest `hotp_window`: every counter tried is one more chance for a guess.
pub const MAX_HOTP_WINDOW: u32 = 100;
/// Default `hotp_resync_window`: how far ahead a token may have run (button presses without a
/// login) and still be caught up with two consecutive codes (RFC 4226 section 7.4).
pub const DEFAULT_HOTP_RESYNC_WINDOW: u32 = 200;
/// Largest `hotp_resync_window`.
pub const MAX_HOTP_RESYNC_WINDOW: u32 = 1000;

/// What the configuration file or the arguments said, before validation.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    secret: Option<String>,
    state_dir: Option<String>,
    user: Option<String>,
    nullok: Option<bool>,
    debug: Option<bool>,
    window: Option<i64>,
    hotp_window: Option<i64>,
    hotp_resync_window: Option<i64>,
    try_first_pass: Option<bool>,
    use_first_pass: Option<bool>,
    forward_pass: Option<bool>,
    prompt: Option<String>,
    no_strict_owner: Option<bool>,
    allowed_perm: Option<Perm>,
    echo_verification_code: Option<bool>,
    throttle: Option<bool>,
    throttle_attempts: Option<i64>,
    throttle_delay: Option<i64>,
    throttle_max_delay: Option<i64>,
    throttle_user_attempts: Option<i64>,
    require: Option<String>,
    require_groups: Option<Vec<String>>,
    exempt_users: Option<Vec<String>>,
    exempt_groups: Option<Vec<String>>,
    exempt_networks: Option<Vec<String>>,
    exempt_result: Option<String>,
    enroll_deadline: Option<DateValue>,
    enroll_contact: Option<String>,
    enroll_at_login: Option<bool>,
    remember: Option<String>,
    publickey: Option<String>,
    store: Option<String>,
    ldap: Option<RawDirectory>,
}

/// A date, written as a TOML date (`2026-12-31`) or a string (`"2026-12-31"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DateValue {
    Toml(toml::value::Datetime),
    Text(String),
}

/// Permission bits, written as an octal string (`"0600"`) or a TOML integer (`0o600`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Perm {
    Int(i64),
    Text(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Text,
    Perm,
    List,
    Date,
    /// A TOML table: only in the file.
    Table,
}

/// Every key, with the type of its value. Keep in step with [`RawConfig`] (a test checks).
const KEYS: &[(&str, Kind)] = &[
    ("secret", Kind::Text),
    ("state_dir", Kind::Text),
    ("user", Kind::Text),
    ("nullok", Kind::Bool),
    ("debug", Kind::Bool),
    ("window", Kind::Int),
    ("hotp_window", Kind::Int),
    ("hotp_resync_window", Kind::Int),
    ("try_first_pass", Kind::Bool),
    ("use_first_pass", Kind::Bool),
    ("forward_pass", Kind::Bool),
    ("prompt", Kind::Text),
    ("no_strict_owner", Kind::Bool),
    ("allowed_perm", Kind::Perm),
    ("echo_verification_code", Kind::Bool),
    ("throttle", Kind::Bool),
    ("throttle_attempts", Kind::Int),
    ("throttle_delay", Kind::Int),
    ("throttle_max_delay", Kind::Int),
    ("throttle_user_attempts", Kind::Int),
    ("require", Kind::Text),
    ("require_groups", Kind::List),
    ("exempt_users", Kind::List),
    ("exempt_groups", Kind::List),
    ("exempt_networks", Kind::List),
    ("exempt_result", Kind::Text),
    ("enroll_deadline", Kind::Date),
    ("enroll_contact", Kind::Text),
    ("enroll_at_login", Kind::Bool),
    ("remember", Kind::Text),
    ("publickey", Kind::Text),
    ("store", Kind::Text),
    ("ldap", Kind::Table),
];

/// How the secret is obtained from the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassMode {
    /// Ask for the code.
    Prompt,
    /// Take password+code from PAM_AUTHTOK set by an earlier module; ask if that fails.
    TryFirstPass,
    /// Take password+code from PAM_AUTHTOK set by an earlier module; never ask.
    UseFirstPass,
}

/// The validated configuration the module and the CLI act on.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file the configuration came from, if one was read.
    pub source: Option<PathBuf>,
    /// Secret file path template.
    pub secret: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Identity that owns and reads secret files (`user=`), if not the user themselves.
    pub user: Option<String>,
    /// Users without a secret file are not asked (PAM_IGNORE).
    pub nullok: bool,
    /// Log debug lines.
    pub debug: bool,
    /// Steps accepted either side of now.
    pub window: u32,
    /// HOTP counters accepted after the last accepted one (look-ahead).
    pub hotp_window: u32,
    /// How far ahead of the expected counter a code is accepted together with the code that
    /// follows it (RFC 4226 section 7.4 resynchronisation); not above `hotp_window` turns it off.
    pub hotp_resync_window: u32,
    /// Where the answer comes from.
    pub pass_mode: PassMode,
    /// Ask for password and code in one prompt and hand the password on as PAM_AUTHTOK.
    pub forward_pass: bool,
    /// Prompt text.
    pub prompt: String,
    /// Do not check the owner of the secret file.
    pub no_strict_owner: bool,
    /// Mode bits a secret file may have.
    pub allowed_perm: u32,
    /// Show the code while it is typed.
    pub echo_verification_code: bool,
    /// Brute-force throttling.
    pub throttle: ThrottlePolicy,
    /// Who must use the second factor, and how (issue: policy).
    pub policy: Policy,
    /// Where enrollments and state are kept (`store`).
    pub backend: Backend,
    /// Line of each key in the configuration file, for error messages.
    pub key_lines: BTreeMap<String, usize>,
}

/// Where enrollments and login state are kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// Secret files named by `secret`, state under `state_dir` (`store = "files"`, the default).
    Files,
    /// A directory server (`store = "ldap"` and the `[ldap]` table).
    Directory(Box<DirectoryConfig>),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            secret: DEFAULT_SECRET.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            user: None,
            nullok: false,
            debug: false,
            window: 1,
            hotp_window: DEFAULT_HOTP_WINDOW,
            hotp_resync_window: DEFAULT_HOTP_RESYNC_WINDOW,
            pass_mode: PassMode::Prompt,
            forward_pass: false,
            prompt: DEFAULT_PROMPT.into(),
            no_strict_owner: false,
            allowed_perm: 0o600,
            echo_verification_code: false,
            throttle: ThrottlePolicy::default(),
            policy: Policy::default(),
            backend: Backend::Files,
            key_lines: BTreeMap::new(),
        }
    }
}

fn kind_of(key: &str) -> Option<Kind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Splits module arguments into the `config=` path and a table of the others.
fn args_table(args: &[&str]) -> Result<(Option<PathBuf>, toml::Table), ConfigError> {
    let mut config = None;
    let mut table = toml::Table::new();
    for &arg in args {
        let bad = |reason: &str| ConfigError::Argument {
            argument: arg.to_string(),
            reason: reason.to_string(),
        };
        // Linux-PAM passes `[prompt=Text with spaces]` with the brackets removed; a value may
        // hold `=` and spaces, so split on the first `=` only.
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        // google-authenticator-libpam spells a few options with dashes or another name.
        let key = match key {
            "echo-verification-code" => "echo_verification_code",
            "authtok_prompt" => "prompt",
            k => k,
        };
        if key == "config" {
            let v = value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad("needs a path: config=/path/to/pam_totp.conf"))?;
            config = Some(PathBuf::from(v));
            continue;
        }
        let kind = kind_of(key).ok_or_else(|| bad("unknown argument"))?;
        let item = match (kind, value) {
            (Kind::Bool, None) => toml::Value::Boolean(true),
            (Kind::Bool, Some(v)) => {
                toml::Value::Boolean(parse_bool(v).ok_or_else(|| bad("expects yes or no"))?)
            }
            (Kind::Table, _) => {
                return Err(bad(
                    "is set only in the configuration file, as an [ldap] table",
                ));
            }
            (_, None) => return Err(bad("needs a value (key=value)")),
            (Kind::Int, Some(v)) => {
                toml::Value::Integer(v.parse().map_err(|_| bad("expects a whole number"))?)
            }
            (Kind::Text | Kind::Perm | Kind::Date, Some(v)) => toml::Value::String(v.to_string()),
            (Kind::List, Some(v)) => toml::Value::Array(
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| toml::Value::String(x.into()))
                    .collect(),
            ),
        };
        table.insert(key.to_string(), item);
    }
    Ok((config, table))
}

/// Reads the configuration file (if any) and applies the module arguments on top.
///
/// The file is optional at its default place; a path given by `config=` must exist. It must be
/// a regular file owned by root (or by the caller, for tests run unprivileged) and not writable
/// by group or others.
///
/// # Errors
/// A [`ConfigError`] naming the file, line and key, or the argument.
pub fn load(args: &[&str], config_override: Option<&Path>) -> Result<Config, ConfigError> {
    let (arg_path, arg_table) = args_table(args)?;
    let explicit = config_override.map(Path::to_path_buf).or(arg_path);
    let path = explicit
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut table = toml::Table::new();
    let mut source = None;
    let mut key_lines = BTreeMap::new();
    let mut file_text = None;
    match read_config_file(&path)? {
        Some(text) => {
            // One TOML parse and one typed conversion on the happy path. Unknown keys or wrong
            // types are reported by `parse_file`, which parses again to name the line; only
            // then is that cost paid. The file's values are checked on their own only when an
            // argument replaces one of them (a bad value there must still be refused); else the
            // conversion of the merged table below checks every one of them.
            table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                error: ParseError::from_toml(&e, &text, false),
            })?;
            let unknown = table.keys().any(|k| kind_of(k).is_none());
            let overridden = arg_table.keys().any(|k| table.contains_key(k));
            if unknown
                || (overridden
                    && RawConfig::deserialize(toml::Value::Table(table.clone())).is_err())
            {
                parse_file(&text).map_err(|error| ConfigError::Parse {
                    path: path.clone(),
                    error,
                })?;
            }
            key_lines = key_lines_of(&text);
            source = Some(path.clone());
            file_text = Some(text);
        }
        None if explicit.is_some() => {
            return Err(ConfigError::File {
                path,
                problem: FileProblem::Missing,
            });
        }
        None => {}
    }
    // Arguments win: they replace the file's value of the same key.
    table.extend(arg_table.clone());
    let raw = RawConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
        // A bad value from the file is named with its line, as above.
        if let Some(Err(error)) = file_text.as_deref().map(parse_file) {
            return ConfigError::Parse {
                path: path.clone(),
                error,
            };
        }
        let argument = arg_table
            .keys()
            .find(|k| e.message().contains(k.as_str()))
            .cloned()
            .unwrap_or_else(|| e.message().lines().next().unwrap_or("").to_string());
        ConfigError::Argument {
            argument,
            reason: "bad value".into(),
        }
    })?;
    let mut config = raw.validate().map_err(|mut error| match &error.key {
        Some(key) if arg_table.contains_key(key) => ConfigError::Argument {
            argument: key.clone(),
            reason: error.message.clone(),
        },
        _ => {
            if error.line.is_none() {
                error.line = error.key.as_ref().and_then(|k| key_lines.get(k).copied());
            }
            ConfigError::Parse {
                path: path.clone(),
                error,
            }
        }
    })?;
    config.source = source;
    config.key_lines = key_lines;
    Ok(config)
}

fn read_config_file(path: &Path) -> Result<Option<String>, ConfigError> {
    let euid = nix::unistd::Uid::effective().as_raw();
    // Owned by root; unprivileged callers (the CLI run by a user, tests) also accept their own.
    // The owner is taken from the open descriptor, not looked up again by path.
    let rules = ReadRules {
        owner: None,
        allowed_perm: 0o7755,
        max_size: MAX_CONFIG_SIZE,
    };
    let read = crate::store::read_checked_owner(path, &rules).map_err(|e| ConfigError::File {
        path: path.into(),
        problem: match &e {
            StoreError::Io { source, .. } => FileProblem::Unreadable {
                kind: source.kind(),
                detail: e.to_string(),
            },
            _ => FileProblem::Unsafe(e.to_string()),
        },
    })?;
    let Some((bytes, owner)) = read else {
        return Ok(None);
    };
    if owner != 0 && owner != euid {
        return Err(ConfigError::File {
            path: path.into(),
            problem: FileProblem::WrongOwner(owner),
        });
    }
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| ConfigError::File {
            path: path.into(),
            problem: FileProblem::NotText,
        })
}

/// Parses configuration file text, with line numbers in errors.
///
/// # Errors
/// Bad TOML, an unknown key or a value of the wrong type.
pub fn parse_file(text: &str) -> Result<RawConfig, ParseError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| ParseError::from_toml(&e, text, false))?;
    for key in table.keys() {
        if kind_of(key).is_none() {
            let mut e = ParseError::key(key.clone(), "unknown key");
            e.line = line_of_key(text, key);
            return Err(e);
        }
    }
    toml::from_str(text).map_err(|e| {
        let mut err = ParseError::from_toml(&e, text, false);
        err.key = table
            .keys()
            .find(|k| err.line.is_some() && line_of_key(text, k) == err.line)
            .cloned();
        err
    })
}

/// The first line of each top-level `key = ...`, in one pass over the text.
fn key_lines_of(text: &str) -> BTreeMap<String, usize> {
    let mut lines = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if kind_of(key).is_some() && !lines.contains_key(key) {
            lines.insert(key.to_string(), i + 1);
        }
    }
    lines
}

fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

impl RawConfig {
    fn validate(self) -> Result<Config, ParseError> {
        let nullok = self.nullok.unwrap_or(false);
        let policy = validate_policy(&self, nullok)?;
        let d = Config::default();
        let int = |key: &str,
                   v: Option<i64>,
                   min: i64,
                   max: i64,
                   default: i64|
         -> Result<i64, ParseError> {
            match v {
                None => Ok(default),
                Some(n) if (min..=max).contains(&n) => Ok(n),
                Some(_) => Err(ParseError::key(
                    key,
                    format!("must be between {min} and {max}"),
                )),
            }
        };
        let window = int("window", self.window, 0, i64::from(MAX_WINDOW), 1)? as u32;
        let hotp_window = int(
            "hotp_window",
            self.hotp_window,
            1,
            i64::from(MAX_HOTP_WINDOW),
            i64::from(DEFAULT_HOTP_WINDOW),
        )? as u32;
        let hotp_resync_window = int(
            "hotp_resync_window",
            self.hotp_resync_window,
            0,
            i64::from(MAX_HOTP_RESYNC_WINDOW),
            i64::from(DEFAULT_HOTP_RESYNC_WINDOW),
        )? as u32;
        let allowed_perm = match self.allowed_perm {
            None => d.allowed_perm,
            Some(p) => {
                let n = match p {
                    Perm::Int(n) => Some(n),
                    Perm::Text(t) => i64::from_str_radix(t.trim_start_matches("0o"), 8).ok(),
                };
                match n {
                    Some(n) if (0..=0o777).contains(&n) => n as u32,
                    _ => {
                        return Err(ParseError::key(
                            "allowed_perm",
                            "must be octal permission bits such as 0600",
                        ));
                    }
                }
            }
        };
        let secret = self.secret.unwrap_or(d.secret);
        if !(secret.starts_with('/')
            || secret.starts_with("~/")
            || secret.starts_with("${HOME}")
            || secret.starts_with("%h"))
        {
            return Err(ParseError::key(
                "secret",
                "must be an absolute path or start with ~/, ${HOME} or %h",
            ));
        }
        let state_dir = PathBuf::from(self.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()));
        if !state_dir.is_absolute() {
            return Err(ParseError::key("state_dir", "must be an absolute path"));
        }
        if self.user.as_deref() == Some("") {
            return Err(ParseError::key("user", "must name a user"));
        }
        let prompt = self.prompt.unwrap_or(d.prompt);
        if prompt.contains('\0') || prompt.len() > 256 {
            return Err(ParseError::key("prompt", "must be at most 256 characters"));
        }
        let pass_mode = match (
            self.use_first_pass.unwrap_or(false),
            self.try_first_pass.unwrap_or(false),
        ) {
            (true, _) => PassMode::UseFirstPass,
            (false, true) => PassMode::TryFirstPass,
            _ => PassMode::Prompt,
        };
        let t = ThrottlePolicy::default();
        let throttle = ThrottlePolicy {
            enabled: self.throttle.unwrap_or(true),
            attempts: int(
                "throttle_attempts",
                self.throttle_attempts,
                1,
                100,
                i64::from(t.attempts),
            )? as u32,
            delay: int(
                "throttle_delay",
                self.throttle_delay,
                1,
                86_400,
                t.delay as i64,
            )? as u64,
            max_delay: int(
                "throttle_max_delay",
                self.throttle_max_delay,
                1,
                86_400,
                t.max_delay as i64,
            )? as u64,
            user_attempts: int(
                "throttle_user_attempts",
                self.throttle_user_attempts,
                1,
                10_000,
                i64::from(t.user_attempts),
            )? as u32,
        };
        if throttle.max_delay < throttle.delay {
            return Err(ParseError::key(
                "throttle_max_delay",
                "must not be less than throttle_delay",
            ));
        }
        let backend = match (self.store.as_deref().unwrap_or("files"), self.ldap) {
            ("files", None) => Backend::Files,
            ("files", Some(_)) => {
                return Err(ParseError::key(
                    "ldap",
                    "has no effect without store = \"ldap\"; set it or remove the table",
                ));
            }
            ("ldap", Some(raw)) => Backend::Directory(Box::new(raw.validate()?)),
            ("ldap", None) => {
                return Err(ParseError::key(
                    "ldap",
                    "store = \"ldap\" needs an [ldap] table (uri, base, bind_dn, ...)",
                ));
            }
            _ => return Err(ParseError::key("store", "must be \"files\" or \"ldap\"")),
        };
        if policy.enroll_at_login && matches!(backend, Backend::Directory(_)) {
            // The module binds as the validators' account, which may not write keys.
            return Err(ParseError::key(
                "enroll_at_login",
                "is not available with store = \"ldap\": users enroll with `pam-totp enroll`, \
                 binding to the directory as themselves",
            ));
        }
        Ok(Config {
            source: None,
            secret,
            state_dir,
            user: self.user,
            nullok,
            debug: self.debug.unwrap_or(false),
            window,
            hotp_window,
            hotp_resync_window,
            pass_mode,
            forward_pass: self.forward_pass.unwrap_or(false),
            prompt,
            no_strict_owner: self.no_strict_owner.unwrap_or(false),
            allowed_perm,
            echo_verification_code: self.echo_verification_code.unwrap_or(false),
            throttle,
            policy,
            backend,
            key_lines: BTreeMap::new(),
        })
    }
}

fn validate_policy(k: &RawConfig, nullok: bool) -> Result<Policy, ParseError> {
    let require_groups = k.require_groups.clone().unwrap_or_default();
    let require = match k.require.as_deref() {
        None | Some("all") => {
            if !require_groups.is_empty() && k.require.is_none() {
                return Err(ParseError::key(
                    "require_groups",
                    "is only used with require = \"groups\"",
                ));
            }
            Require::All
        }
        Some("groups") if require_groups.is_empty() => {
            return Err(ParseError::key(
                "require",
                "= \"groups\" needs require_groups with at least one group",
            ));
        }
        Some("groups") => Require::Groups(require_groups),
        Some(_) => return Err(ParseError::key("require", "must be \"all\" or \"groups\"")),
    };
    let mut exempt_networks = Vec::new();
    for net in k.exempt_networks.iter().flatten() {
        let cidr = Cidr::parse(net.trim()).ok_or_else(|| {
            ParseError::key(
                "exempt_networks",
                format!("`{net}` is not a network such as 192.0.2.0/24 or 2001:db8::/32"),
            )
        })?;
        exempt_networks.push(cidr);
    }
    let exempt_result = match k.exempt_result.as_deref() {
        None | Some("ignore") => ExemptResult::Ignore,
        Some("success") => ExemptResult::Success,
        Some(_) => {
            return Err(ParseError::key(
                "exempt_result",
                "must be \"ignore\" or \"success\"",
            ));
        }
    };
    let enroll_deadline = match &k.enroll_deadline {
        None => None,
        Some(v) => {
            let text = match v {
                DateValue::Toml(d) => d.to_string(),
                DateValue::Text(t) => t.clone(),
            };
            Some(Date::parse(&text).ok_or_else(|| {
                ParseError::key("enroll_deadline", "must be a date written YYYY-MM-DD")
            })?)
        }
    };
    let remember = match k.remember.as_deref() {
        None | Some("off") | Some("0") => 0,
        Some(text) => match policy::parse_duration(text) {
            Some(secs) if secs <= policy::MAX_REMEMBER => secs,
            Some(_) => return Err(ParseError::key("remember", "must be at most 30d")),
            None => {
                return Err(ParseError::key(
                    "remember",
                    "must be a duration such as 12h or 7d, or off",
                ));
            }
        },
    };
    let publickey = match k.publickey.as_deref() {
        None | Some("require-code") => Publickey::RequireCode,
        Some("skip") => Publickey::Skip,
        Some(_) => {
            return Err(ParseError::key(
                "publickey",
                "must be \"require-code\" or \"skip\"",
            ));
        }
    };
    for (key, list) in [
        ("exempt_users", &k.exempt_users),
        ("exempt_groups", &k.exempt_groups),
    ] {
        if list.iter().flatten().any(|n| n.trim().is_empty()) {
            return Err(ParseError::key(key, "names must not be empty"));
        }
    }
    Ok(Policy {
        require,
        exempt_users: k.exempt_users.clone().unwrap_or_default(),
        exempt_groups: k.exempt_groups.clone().unwrap_or_default(),
        exempt_networks,
        exempt_result,
        enroll_deadline,
        enroll_contact: k.enroll_contact.clone().filter(|c| !c.trim().is_empty()),
        enroll_at_login: k.enroll_at_login.unwrap_or(false),
        remember,
        publickey,
        nullok,
    })
}

impl Config {
    /// The store this configuration describes.
    ///
    /// # Errors
    /// The `user=` identity does not exist, or cannot be looked up.
    pub fn store(&self) -> Result<LocalFiles, ConfigError> {
        let file_owner = match &self.user {
            None => None,
            Some(name) => {
                let found = match name.parse::<u32>() {
                    Ok(uid) => UserInfo::lookup_uid(uid),
                    Err(_) => UserInfo::lookup(name),
                };
                let unknown = |detail: String| ConfigError::Argument {
                    argument: format!("user={name}"),
                    reason: detail,
                };
                Some(
                    found
                        .map_err(|e| unknown(e.to_string()))?
                        .ok_or_else(|| unknown("no such user".into()))?,
                )
            }
        };
        Ok(LocalFiles::new(
            self.secret.clone(),
            self.state_dir.clone(),
            file_owner,
            self.allowed_perm,
            !self.no_strict_owner,
        ))
    }

    /// Checks that every group named by the policy exists (NSS lookups), so a typo fails closed
    /// instead of silently exempting or requiring nobody.
    ///
    /// # Errors
    /// The first unknown group, with the key and its line in the file.
    pub fn check_groups(&self) -> Result<(), ConfigError> {
        let required: &[String] = match &self.policy.require {
            Require::Groups(g) => g,
            Require::All => &[],
        };
        for (key, groups) in [
            ("require_groups", required),
            ("exempt_groups", &self.policy.exempt_groups[..]),
        ] {
            for g in groups {
                match nix::unistd::Group::from_name(g) {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(self.key_error(key, format!("unknown group `{g}`"))),
                    Err(e) => {
                        return Err(self.key_error(key, format!("cannot look up group `{g}`: {e}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// An error about `key`, located in the file when it is set there.
    pub fn key_error(&self, key: &str, message: String) -> ConfigError {
        match (&self.source, self.key_lines.get(key)) {
            (Some(path), Some(&line)) => ConfigError::Parse {
                path: path.clone(),
                error: ParseError {
                    line: Some(line),
                    key: Some(key.to_string()),
                    message,
                },
            },
            _ => ConfigError::Argument {
                argument: key.to_string(),
                reason: message,
            },
        }
    }

    /// The TOTP and HOTP windows, for [`crate::verify::verify`].
    pub fn windows(&self) -> crate::verify::Windows {
        crate::verify::Windows {
            totp: self.window,
            hotp: self.hotp_window,
            hotp_resync: self.hotp_resync_window,
        }
    }

    /// One line describing the effective settings, for `debug` (no secrets in it).
    pub fn describe(&self) -> String {
        format!(
            "config={} secret={} state_dir={} user={} nullok={} window={} hotp_window={}+{} pass_mode={:?} forward_pass={} \
             allowed_perm={:04o} strict_owner={} throttle={}:{}/{}s..{}s user_attempts={}",
            self.source
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into()),
            self.secret,
            self.state_dir.display(),
            self.user.as_deref().unwrap_or("(the user)"),
            self.nullok,
            self.window,
            self.hotp_window,
            self.hotp_resync_window,
            self.pass_mode,
            self.forward_pass,
            self.allowed_perm,
            !self.no_strict_owner,
            self.throttle.enabled,
            self.throttle.attempts,
            self.throttle.delay,
            self.throttle.max_delay,
            self.throttle.user_attempts,
        ) + &match &self.backend {
            Backend::Files => String::new(),
            Backend::Directory(d) => format!(" {}", d.describe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_args(args: &[&str]) -> Result<Config, ConfigError> {
        load(args, Some(Path::new("/nonexistent/never"))).or_else(|e| match e {
            ConfigError::File { .. } => {
                let (_, t) = args_table(args)?;
                let raw = RawConfig::deserialize(toml::Value::Table(t)).map_err(|e| {
                    ConfigError::Argument {
                        argument: e.message().to_string(),
                        reason: "bad value".into(),
                    }
                })?;
                raw.validate().map_err(|e| ConfigError::Argument {
                    argument: e.key.unwrap_or_default(),
                    reason: e.message,
                })
            }
            e => Err(e),
        })
    }

    #[test]
    fn every_key_is_a_field() {
        for (key, kind) in KEYS {
            let value = match kind {
                Kind::Bool => "true".to_string(),
                Kind::Int => "1".to_string(),
                Kind::Text => "\"/x\"".to_string(),
                Kind::Perm => "\"0600\"".to_string(),
                Kind::List => "[\"x\"]".to_string(),
                Kind::Date => "2026-12-31".to_string(),
                Kind::Table => "{}".to_string(),
            };
            parse_file(&format!("{key} = {value}\n")).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn directory_backend() {
        let c = parse_file(
            "store = \"ldap\"\n[ldap]\nuri = \"ldapi:///\"\nbase = \"dc=x\"\nbind = \"sasl-external\"\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert!(matches!(c.backend, Backend::Directory(_)));
        let e = parse_file("store = \"ldap\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ldap"));
        let e = parse_file("[ldap]\nuri = \"ldapi:///\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ldap"));
        let e = parse_file("store = \"ldap\"\n[ldap]\nbase = \"dc=x\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ldap.uri"));
        let e = parse_file(
            "store = \"ldap\"\nenroll_at_login = true\n[ldap]\nuri = \"ldapi:///\"\nbase = \"dc=x\"\nbind = \"sasl-external\"\n",
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("enroll_at_login"));
        assert!(from_args(&["ldap=x"]).is_err());
        assert!(from_args(&["store=nfs"]).is_err());
    }

    #[test]
    fn defaults() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.window, 1);
        assert_eq!(c.prompt, "Verification code: ");
        assert_eq!(c.allowed_perm, 0o600);
        assert_eq!(c.pass_mode, PassMode::Prompt);
        assert!(c.throttle.enabled);
        assert_eq!((c.hotp_window, c.hotp_resync_window), (10, 200));
    }

    #[test]
    fn hotp_windows_are_capped() {
        let c = parse_file("hotp_window = 20\nhotp_resync_window = 0\n")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!((c.hotp_window, c.hotp_resync_window), (20, 0));
        for bad in [
            "hotp_window = 0",
            "hotp_window = 101",
            "hotp_resync_window = 1001",
        ] {
            let raw = parse_file(&format!("{bad}\n")).unwrap();
            let key = bad.split(' ').next().unwrap();
            assert_eq!(
                raw.validate().unwrap_err().key.as_deref(),
                Some(key),
                "{bad}"
            );
        }
        assert_eq!(from_args(&["hotp_window=5"]).unwrap().hotp_window, 5);
    }

    #[test]
    fn arguments() {
        let c = from_args(&[
            "nullok",
            "window=3",
            "prompt=Code please: ",
            "allowed_perm=0640",
            "use_first_pass",
            "echo-verification-code",
        ])
        .unwrap();
        assert!(c.nullok);
        assert_eq!(c.window, 3);
        assert_eq!(c.prompt, "Code please: ");
        assert_eq!(c.allowed_perm, 0o640);
        assert_eq!(c.pass_mode, PassMode::UseFirstPass);
        assert!(c.echo_verification_code);
        for bad in [
            "bogus",
            "window=x",
            "window=99",
            "nullok=perhaps",
            "secret",
            "allowed_perm=999",
            "secret=relative",
            "config=",
        ] {
            assert!(from_args(&[bad]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn file_errors_name_line_and_key() {
        let e = parse_file("window = 1\nsurprise = 2\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("surprise")));
        let e = parse_file("nullok = true\nwindow = \"x\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("window")));
        let e = parse_file("window = [").unwrap_err();
        assert_eq!(e.line, Some(1));
        let raw = parse_file("window = 50\n").unwrap();
        assert_eq!(raw.validate().unwrap_err().key.as_deref(), Some("window"));
        let raw = parse_file("allowed_perm = 0o640\n").unwrap();
        assert_eq!(raw.validate().unwrap().allowed_perm, 0o640);
    }

    #[test]
    fn policy_keys_validate_with_key_and_line() {
        let dir = std::env::temp_dir().join(format!("pam-totp-cfg-pol-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pam_totp.conf");
        let cases = [
            (
                "exempt_networks = [\"10.0.0.0/8\", \"10.0.0.300/8\"]\n",
                "exempt_networks",
            ),
            (
                "nullok = true\nenroll_deadline = \"31/12/2026\"\n",
                "enroll_deadline",
            ),
            ("remember = \"90d\"\n", "remember"),
            ("require = \"groups\"\n", "require"),
            ("publickey = \"maybe\"\n", "publickey"),
        ];
        for (text, key) in cases {
            std::fs::write(&path, text).unwrap();
            let e = load(&[], Some(&path)).unwrap_err();
            let shown = e.to_string();
            assert!(shown.contains(key), "{shown}");
            assert!(shown.contains("line "), "{shown}");
        }
        std::fs::write(
            &path,
            "enroll_deadline = 2026-12-31\nexempt_networks = [\"192.0.2.0/24\"]\nremember = \"7d\"\nrequire = \"groups\"\nrequire_groups = [\"root\"]\n",
        )
        .unwrap();
        let c = load(
            &["exempt_groups=root,daemon", "publickey=skip"],
            Some(&path),
        )
        .unwrap();
        assert_eq!(c.policy.enroll_deadline.unwrap().to_string(), "2026-12-31");
        assert_eq!(c.policy.remember, 7 * 86_400);
        assert_eq!(
            c.policy.exempt_groups,
            vec!["root".to_string(), "daemon".to_string()]
        );
        assert_eq!(c.policy.publickey, Publickey::Skip);
        c.check_groups().unwrap();
        std::fs::write(&path, "exempt_groups = [\"no-such-group-ptt\"]\n").unwrap();
        let c = load(&[], Some(&path)).unwrap();
        let e = c.check_groups().unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("no-such-group-ptt"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arguments_override_the_file() {
        let dir = std::env::temp_dir().join(format!("pam-totp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pam_totp.conf");
        std::fs::write(&path, "window = 2\nnullok = true\n").unwrap();
        let c = load(&["window=4"], Some(&path)).unwrap();
        assert_eq!((c.window, c.nullok), (4, true));
        assert_eq!(c.source.as_deref(), Some(path.as_path()));
        std::fs::write(&path, "window = 2\nbogus = 1\n").unwrap();
        let e = load(&[], Some(&path)).unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("bogus"),
            "{e}"
        );
        // A wrongly typed value in the file is refused with its line, whether or not an argument
        // replaces it, and whatever the arguments say about other keys.
        std::fs::write(&path, "nullok = true\nwindow = \"two\"\n").unwrap();
        for args in [&[][..], &["window=4"][..], &["nullok=false"][..]] {
            let e = load(args, Some(&path)).unwrap_err();
            assert!(
                matches!(e, ConfigError::Parse { .. }) && e.to_string().contains("line 2"),
                "{args:?}: {e}"
            );
        }
        // A bad argument beside a good file is the argument's fault.
        std::fs::write(&path, "window = 2\n").unwrap();
        let e = load(&["window=many"], Some(&path)).unwrap_err();
        assert!(matches!(e, ConfigError::Argument { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
