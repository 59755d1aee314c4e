//! The directory backend as a host configures it: the `store = "ldap"` line and the `[ldap]`
//! table of pam_totp.conf(5) pointing at a test [`Slapd`] (StartTLS with the test CA, the
//! validator service account, the enrollment administrator for the CLI run by root), so the
//! module and CLI tests (`tests/ldap_module.rs`, `tests/ldap_ssh.rs`) write the same file a
//! sysadmin would.

use std::path::{Path, PathBuf};

use crate::harness::{set_mode, toml_string};
use crate::slapd::{ADMIN_DN, PEOPLE_BASE, SERVICE_DN, Slapd};

/// The `[ldap]` settings of one host.
#[derive(Debug, Clone)]
pub struct LdapConf {
    /// `uri`: the servers, tried in order.
    pub uris: Vec<String>,
    /// `ca_file`.
    pub ca_file: PathBuf,
    /// `bind_password_file` (the service account's, 0600).
    pub bind_password_file: PathBuf,
    /// `admin_password_file` (the administrator's, 0600).
    pub admin_password_file: PathBuf,
    /// `connect_timeout`, seconds.
    pub connect_timeout: f64,
    /// `timeout`, seconds.
    pub timeout: f64,
}

/// Writes the administrator's password of `slapd` to `admin-password` (mode 0600, no newline)
/// in its test directory and returns the path.
///
/// # Panics
/// The file cannot be written.
pub fn admin_password_file(slapd: &Slapd) -> PathBuf {
    password_file(slapd.dir(), "admin-password", slapd.admin_password())
}

/// Writes `password` to `<dir>/<name>` with mode 0600 and returns the path.
///
/// # Panics
/// The file cannot be written.
pub fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, password)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    set_mode(&path, 0o600);
    path
}

impl LdapConf {
    /// StartTLS to `slapd`'s `ldap://` URI with its test CA, bound as the validator; the CLI
    /// run by root binds as the administrator. Time-outs 2 s (connect) and 3 s (operation).
    pub fn new(slapd: &Slapd) -> LdapConf {
        LdapConf {
            uris: vec![slapd.ldap_uri()],
            ca_file: slapd.ca_file(),
            bind_password_file: slapd.service_password_file(),
            admin_password_file: admin_password_file(slapd),
            connect_timeout: 2.0,
            timeout: 3.0,
        }
    }

    /// The same with other servers.
    pub fn uris(mut self, uris: Vec<String>) -> LdapConf {
        self.uris = uris;
        self
    }

    /// The same with other time-outs (seconds).
    pub fn timeouts(mut self, connect: f64, operation: f64) -> LdapConf {
        self.connect_timeout = connect;
        self.timeout = operation;
        self
    }

    /// `store = "ldap"` and the `[ldap]` table. It ends in that table, so it must come last in
    /// a configuration file.
    pub fn toml(&self) -> String {
        let path = |p: &Path| toml_string(&p.to_string_lossy());
        let uris: Vec<String> = self.uris.iter().map(|u| toml_string(u)).collect();
        format!(
            "store = \"ldap\"\n\n[ldap]\nuri = [{}]\nbase = {}\nbind_dn = {}\n\
             bind_password_file = {}\nadmin_bind_dn = {}\nadmin_password_file = {}\n\
             ca_file = {}\nconnect_timeout = {:?}\ntimeout = {:?}\n",
            uris.join(", "),
            toml_string(PEOPLE_BASE),
            toml_string(SERVICE_DN),
            path(&self.bind_password_file),
            toml_string(ADMIN_DN),
            path(&self.admin_password_file),
            path(&self.ca_file),
            self.connect_timeout,
            self.timeout,
        )
    }
}
