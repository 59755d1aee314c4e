//! Test support for the end-to-end tests of pam-totp: privileged tests need real users, real
//! `/etc/pam.d` services, a syslog socket and a PAM client, all created per test and removed
//! again, also when a test fails. The tests themselves live in `tests/`.
//!
//! - [`harness`]: root check, build artifacts, RAII guards for users, PAM services, temp dirs,
//!   per-test configuration, and [`harness::Scenario`] bundling them.
//! - [`harness_client`]: runs `pam-client` (scripted or interactive) and reads its transcript.
//! - [`harness_syslog`]: captures syslog lines through a `/dev/log` of the test's own
//!   ([`dev_log`]: a private mount namespace when a daemon owns the host's).
//! - [`harness_ldap`]: the `store = "ldap"` configuration pointing at a test [`slapd`].
//! - [`harness_totp`]: `pam-totp enroll --json` and TOTP codes for chosen time steps.
//! - [`harness_qr`]: QR codes as a terminal shows them, turned into images zbarimg reads.
//! - [`harness_session`]: a program driven as a person would (on a pseudo-terminal or through
//!   pipes): its output collected as it comes, waited on for a text, answered line by line.
//! - [`pam_app`]: libpam as an application sees it, for `pam-client` and the benchmark.
//! - [`ssh`]: a private sshd per test, accounts with a key and a password, the scripted
//!   (paramiko) and the real (`/usr/bin/ssh` in a pty) client.
//! - [`slapd`]: a throwaway OpenLDAP server per test (own cn=config, the `otp` module, the
//!   shipped schema and ACL, a test CA), and a mirror-mode pair of them.
//!
//! The CLI's tests (`enroll-cli/tests`) use this harness too.

pub mod dev_log;
pub mod harness;
pub mod harness_client;
pub mod harness_ldap;
pub mod harness_qr;
pub mod harness_session;
pub mod harness_syslog;
pub mod harness_totp;
pub mod pam_app;
pub mod slapd;
pub mod ssh;
