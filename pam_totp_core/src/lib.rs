//! The pure core of pam-totp: everything the PAM module and the `pam-totp` CLI must agree on.
//!
//! # Design overview
//!
//! - [`secret_file`]: the per-user secret file (`secret.toml`, format version 1), written only by
//!   the CLI and read by the module. It holds one or more named authenticators and the backup
//!   codes as salted PBKDF2 hashes. Specified key by key in `docs/FILEFORMAT.md`.
//! - [`state`]: the mutable per-user state (last accepted step, HOTP counters, consumed backup
//!   codes, throttling, trusted and remembered hosts, last use) that the module writes under
//!   `/var/lib/pam-totp`, never in a home.
//! - [`decide`]: the one decision of a login before its prompt, shared by the module and
//!   `pam-totp explain`; [`pamd`]: the one reader of `/etc/pam.d`.
//! - [`verify`]: decides whether an answer is a fresh TOTP or HOTP code or an unused backup code. It never
//!   touches a file and takes the time as a parameter, so every rule is unit-tested with an
//!   injected clock.
//! - [`config`]: `/etc/security/pam_totp.conf` and the module arguments, merged and validated
//!   into one [`config::Config`] (arguments win).
//! - [`store`]: the only code that touches the file system: safe opening, atomic replacement,
//!   compare-and-set state records (no locks), and switching the filesystem identity to the
//!   user. [`store::Store`] is the interface of intents behind which a shared backend (a
//!   directory server) can live; `store::conformance` is its contract as tests.
//!
//! # Threat model
//!
//! The attacker knows the password (or holds the SSH key) but not the TOTP secret. They may open
//! many connections at once, replay codes they observed, and guess. A local user may plant
//! symlinks or FIFOs where the module will look. The module runs as root inside someone else's
//! process, so it must fail closed on every error and never panic.
//!
//! # Non-goals
//!
//! Push notifications, and storing secrets encrypted at rest.
//! Zeroizing secrets is best effort: moves, TOML internals and core dumps escape it, and nothing
//! in the design depends on it.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod backup;
pub mod clock;
pub mod config;
pub mod decide;
pub mod directory;
pub mod error;
pub mod pamd;
pub mod policy;
pub mod qr;
pub mod secret;
pub mod secret_file;
pub mod state;
pub mod store;
pub mod syslog_line;
pub mod throttle;
pub mod verify;

pub use clock::{Clock, SystemClock};
pub use error::{ConfigError, DirectoryProblem, KeyError, ParseError, StoreError};
