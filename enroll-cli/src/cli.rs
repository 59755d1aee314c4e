//! The command line, declared with clap derive: one place that defines every subcommand, its
//! options, help text and examples (also the source of the completions and the man page).

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Time-based one-time passwords (RFC 6238) for PAM: enroll a phone, manage backup codes,
/// and administer the second factor of a host.
#[derive(Debug, Parser)]
#[command(
    name = "pam-totp",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Run `pam-totp COMMAND --help` for the options and examples of each command."
)]
pub struct Cli {
    /// Configuration file [default: /etc/security/pam_totp.conf, defaults if absent]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The user whose enrollment a command acts on.
#[derive(Debug, Clone, Args)]
pub struct UserArg {
    /// Act on this user's enrollment (root only) [default: yourself]
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// How the QR code is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum QrStyle {
    /// Compact UTF-8 half blocks, forced black on white with ANSI colours
    #[default]
    Utf8,
    /// Two coloured spaces per module (no special characters; larger)
    Ansi,
    /// `##` and spaces, no colours (for logs and serial consoles)
    Ascii,
    /// No QR code; only the key and the otpauth URI parameters
    None,
}

/// HMAC algorithm of a new authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
#[value(rename_all = "UPPER")]
pub enum AlgorithmArg {
    /// HMAC-SHA1 (what every app supports)
    #[default]
    Sha1,
    /// HMAC-SHA256 (ignored by some apps)
    Sha256,
    /// HMAC-SHA512 (ignored by some apps)
    Sha512,
}

/// Shells for which completions can be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU Bash
    Bash,
    /// Z shell
    Zsh,
    /// fish
    Fish,
}

/// Parameters of a new authenticator.
#[derive(Debug, Clone, Args)]
pub struct NewKeyArgs {
    /// Issuer shown by the app [default: this host's name]
    #[arg(long, value_name = "TEXT")]
    pub issuer: Option<String>,
    /// Account name shown by the app [default: the user name]
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Digits per code
    #[arg(long, default_value_t = 6, value_parser = clap::builder::PossibleValuesParser::new(["6", "8"]).map(|s| s.parse::<u8>().unwrap_or(6)))]
    pub digits: u8,
    /// HMAC algorithm (some apps silently ignore SHA256 and SHA512)
    #[arg(long, value_enum, ignore_case = true, default_value_t = AlgorithmArg::Sha1)]
    pub algorithm: AlgorithmArg,
    /// Seconds per code
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub period: u64,
    /// Counter-based codes (HOTP, RFC 4226) instead of time-based: a key fob, a YubiKey
    /// OATH-HOTP slot, or an app in counter mode
    #[arg(long)]
    pub hotp: bool,
    /// With --hotp: the counter of the token's next code [default: 0]
    #[arg(long, value_name = "N", requires = "hotp", value_parser = clap::value_parser!(u64).range(0..=(1u64 << 60)))]
    pub counter: Option<u64>,
    /// With --hotp (root): the key of a token programmed elsewhere, in hex (visible to `ps`;
    /// prefer --key-file)
    #[arg(
        long,
        value_name = "HEX",
        requires = "hotp",
        conflicts_with = "key_file"
    )]
    pub key_hex: Option<String>,
    /// With --hotp (root): read the token's key, in hex, from FILE ("-": the first line of
    /// standard input)
    #[arg(long, value_name = "FILE", requires = "hotp")]
    pub key_file: Option<PathBuf>,
    /// With --hotp: the YubiKey token identifier its codes start with (12 modhex characters);
    /// codes from another key are then refused [default: learned from the first code]
    #[arg(long, value_name = "ID", requires = "hotp")]
    pub token_id: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new key, show it as a QR code, and confirm it with a code from the app
    #[command(after_help = "Examples:
  pam-totp enroll                         interactive: scan, type a code, note the backup codes
  pam-totp enroll --add tablet            add a second device to an existing enrollment
  pam-totp enroll --json --user alice     (root) non-interactive, prints JSON with the key
  pam-totp enroll --force --qr=ascii      replace an enrollment, plain ASCII QR code")]
    Enroll(EnrollArgs),

    /// Show whether you are enrolled, backup codes left, last use, remembered hosts and lockouts
    #[command(after_help = "Examples:
  pam-totp status
  pam-totp status --user alice --json     (root)
  pam-totp status --all                   (root) one row per enrolled user")]
    Status(StatusArgs),

    /// Make a fresh set of backup codes (the old ones stop working at once)
    #[command(
        name = "backup-codes",
        after_help = "Examples:
  pam-totp backup-codes                   how many are left
  pam-totp backup-codes --regenerate      a new set of 10, printed once"
    )]
    BackupCodes(BackupCodesArgs),

    /// Show the QR code and key again, to add the same key to another device
    #[command(after_help = "Examples:
  pam-totp qr
  pam-totp qr --name tablet --qr=ascii")]
    Qr(QrArgs),

    /// List the authenticators of an enrollment
    #[command(after_help = "Example:
  pam-totp list")]
    List(ListArgs),

    /// Revoke one authenticator (a lost phone), keeping the others and the backup codes
    #[command(after_help = "Example:
  pam-totp remove old-phone")]
    Remove(RemoveArgs),

    /// Remove your own enrollment, after confirmation
    #[command(after_help = "Example:
  pam-totp disable")]
    Disable(DisableArgs),

    /// (root) Remove a user's enrollment and state, e.g. after a lost phone; logged to syslog
    #[command(after_help = "Example:
  pam-totp reset --user alice")]
    Reset(AdminUserArgs),

    /// (root) Clear a user's rate-limit lockout; logged to syslog
    #[command(after_help = "Example:
  pam-totp unlock --user alice")]
    Unlock(AdminUserArgs),

    /// Forget the remembered hosts: every login asks for a code again; root also clears the state
    #[command(
        name = "forget-hosts",
        after_help = "With `remember` in the configuration, a host that passed a code skips it for a while.
After forget-hosts, no host remembered so far skips the code (e.g. after using a shared or
lost computer). Logged to syslog.

Examples:
  pam-totp forget-hosts                   your own remembered hosts
  pam-totp forget-hosts --user alice      (root) also clears them from alice's state"
    )]
    ForgetHosts(UserArg),

    /// Convert a google-authenticator-libpam file into this project's format
    #[command(
        name = "import-google-authenticator",
        after_help = "The original file is left untouched; its scratch codes become backup codes.
Counter-based (HOTP_COUNTER) files become an HOTP authenticator starting at that counter.

Examples:
  pam-totp import-google-authenticator                    your ~/.google_authenticator
  pam-totp import-google-authenticator --user alice       (root)
  pam-totp import-google-authenticator /srv/ga/alice --user alice"
    )]
    ImportGoogleAuthenticator(ImportArgs),

    /// (root) Convert a pam_oath usersfile (/etc/users.oath): one secret file per user
    #[command(
        name = "import-oath",
        after_help = "The usersfile is only read. HOTP lines become HOTP authenticators that go on
from the next unused counter; HOTP/T lines become TOTP authenticators. PINs are NOT carried
over: a user with a PIN is refused unless --drop-pins is given (the login then asks for the
token's code without the PIN in front). Running it again changes nothing.

Examples:
  pam-totp import-oath --dry-run                  what would happen, from /etc/users.oath
  pam-totp import-oath                            every user in /etc/users.oath
  pam-totp import-oath /srv/users.oath --user alice --user bob"
    )]
    ImportOath(ImportOathArgs),

    /// (root) Copy local enrollments, with their spent codes, into the directory (store = "ldap")
    #[command(after_help = "Examples:
  pam-totp migrate --dry-run
  pam-totp migrate
  pam-totp migrate --user alice --force")]
    Migrate(MigrateArgs),

    /// (root) Explain what the module would do for a login, without authenticating
    #[command(after_help = "Examples:
  pam-totp explain --user alice --service sshd --rhost 198.51.100.7
  pam-totp explain --user alice --rhost 198.51.100.7 --publickey --json")]
    Explain(ExplainArgs),

    /// Check the installation and print the exact fix for each problem found
    #[command(after_help = "Examples:
  pam-totp doctor
  pam-totp doctor --root /mnt/image       check a system image mounted elsewhere")]
    Doctor(DoctorArgs),

    /// Print shell completions
    #[command(after_help = "Examples:
  pam-totp completions bash > /etc/bash_completion.d/pam-totp
  pam-totp completions zsh > /usr/local/share/zsh/site-functions/_pam-totp
  pam-totp completions fish > ~/.config/fish/completions/pam-totp.fish")]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: Shell,
    },

    /// Print the man page pam-totp(1) in roff
    #[command(hide = true)]
    Manpage,
}

/// Options of `enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub user: UserArg,
    /// Non-interactive: write the secret file and print it as JSON (key, URI, backup codes)
    #[arg(long)]
    pub json: bool,
    /// Add a further authenticator named NAME to an existing enrollment
    #[arg(long, value_name = "NAME")]
    pub add: Option<String>,
    /// Write the secret file here instead of where the configuration says
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub key: NewKeyArgs,
    /// Number of backup codes (0 to 100)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub backup_codes: u16,
    /// Replace an existing enrollment
    #[arg(long)]
    pub force: bool,
    /// How to draw the QR code
    #[arg(long, value_enum, value_name = "STYLE", default_value_t = QrStyle::Utf8)]
    pub qr: QrStyle,
    /// Do not ask for a code from the app before saving
    #[arg(long)]
    pub no_confirm: bool,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub user: UserArg,
    /// Every enrolled user, one row each (root only)
    #[arg(long, conflicts_with = "user")]
    pub all: bool,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// Options of `backup-codes`.
#[derive(Debug, Args)]
pub struct BackupCodesArgs {
    #[command(flatten)]
    pub user: UserArg,
    /// Replace the backup codes with a fresh set
    #[arg(long)]
    pub regenerate: bool,
    /// Number of codes in the new set (1 to 100)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub count: u16,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// Options of `qr`.
#[derive(Debug, Args)]
pub struct QrArgs {
    #[command(flatten)]
    pub user: UserArg,
    /// Which authenticator [default: the first]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// How to draw the QR code
    #[arg(long, value_enum, value_name = "STYLE", default_value_t = QrStyle::Utf8)]
    pub qr: QrStyle,
}

/// Options of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub user: UserArg,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// Options of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Name of the authenticator to revoke (see `pam-totp list`)
    pub name: String,
    #[command(flatten)]
    pub user: UserArg,
}

/// Options of `disable`.
#[derive(Debug, Args)]
pub struct DisableArgs {
    #[command(flatten)]
    pub user: UserArg,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
}

/// Options of `reset` and `unlock`.
#[derive(Debug, Args)]
pub struct AdminUserArgs {
    /// The user
    #[arg(long, value_name = "NAME", required = true)]
    pub user: String,
}

/// Options of `import-google-authenticator`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The google-authenticator file [default: ~/.google_authenticator of the user]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub user: UserArg,
    /// Issuer stored for showing the QR code again [default: this host's name]
    #[arg(long, value_name = "TEXT")]
    pub issuer: Option<String>,
    /// Account name stored for showing the QR code again [default: the user name]
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Replace an existing pam-totp enrollment
    #[arg(long)]
    pub force: bool,
}

/// Options of `import-oath`.
#[derive(Debug, Args)]
pub struct ImportOathArgs {
    /// The pam_oath usersfile [default: /etc/users.oath]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Import only this user (repeat for several) [default: every user in the file]
    #[arg(long, value_name = "NAME")]
    pub user: Vec<String>,
    /// Show what would be done, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Import users who have a PIN too, without it (pam-totp has no PINs)
    #[arg(long)]
    pub drop_pins: bool,
    /// Issuer stored for each authenticator [default: this host's name]
    #[arg(long, value_name = "TEXT")]
    pub issuer: Option<String>,
    /// Replace pam-totp enrollments that hold other keys
    #[arg(long)]
    pub force: bool,
}

/// Options of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Migrate only this user (repeat for several) [default: every user with a local enrollment]
    #[arg(long, value_name = "NAME")]
    pub user: Vec<String>,
    /// Show what would be done, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Replace enrollments the directory holds with other keys
    #[arg(long)]
    pub force: bool,
}

/// Options of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The user logging in
    #[arg(long, value_name = "NAME", required = true)]
    pub user: String,
    /// PAM service name
    #[arg(long, value_name = "NAME", default_value = "sshd")]
    pub service: String,
    /// Remote host (PAM_RHOST) [default: a local login]
    #[arg(long, value_name = "HOST")]
    pub rhost: Option<String>,
    /// The SSH public key already succeeded (for `publickey = "skip"`)
    #[arg(long)]
    pub publickey: bool,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// Options of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check the system installed under this directory instead of /
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}
