//! pam-totp's directory backend: one enrollment for every server of a fleet, kept on an LDAP
//! server with the OATH-LDAP schema (what OpenLDAP's `otp` module reads) and a small schema of
//! the project's own for what OATH-LDAP lacks. See docs/fleet.md for the set-up, the layout and
//! what replication does and does not guarantee.
//!
//! The module talks to the directory itself, one connection per PAM call, opened on first use
//! and closed when the call returns: no connection survives a fork, no thread outlives the call
//! (ldap3's synchronous client runs a current-thread runtime on the caller's thread; we connect
//! the socket ourselves, so no resolver thread is started either), nothing global. Why not a
//! local daemon: docs/fleet.md, "Design".

mod conn;
mod layout;
mod store;

pub use conn::Credentials;
pub use store::LdapStore;

use pam_totp_core::config::{Backend, Config};
use pam_totp_core::error::ConfigError;
use pam_totp_core::store::Store;

/// The store the configuration names (`store = "files"` or `"ldap"`), binding to a directory
/// as `who`. `local` adjusts the local files store before it is boxed (the CLI drops root's
/// supplementary groups).
///
/// # Errors
/// The local store's `user=` identity cannot be found.
pub fn open_store(
    cfg: &Config,
    who: Credentials,
    local: impl FnOnce(&mut pam_totp_core::store::LocalFiles),
) -> Result<Box<dyn Store + Sync>, ConfigError> {
    match &cfg.backend {
        Backend::Files => {
            let mut files = cfg.store()?;
            local(&mut files);
            Ok(Box::new(files))
        }
        Backend::Directory(d) => Ok(Box::new(LdapStore::new((**d).clone(), who))),
    }
}

/// What [`probe`] found on one server.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Connect, bind, search and schema checks, in milliseconds.
    pub millis: f64,
}

/// Checks one server the way a login uses it: connect (TLS as configured), bind as the service
/// account, find `base`, and check that the server knows the OATH-LDAP attributes (the `otp`
/// module) and the project's own (pam-totp.ldif). For `pam-totp doctor`.
///
/// # Errors
/// The first step that failed, as a [`pam_totp_core::StoreError::Directory`] whose problem says
/// which (unreachable, TLS, credentials, access, schema, ...).
pub fn probe(
    cfg: &pam_totp_core::directory::DirectoryConfig,
    server: &pam_totp_core::directory::Server,
) -> Result<Probe, pam_totp_core::StoreError> {
    use pam_totp_core::error::DirectoryProblem;
    let start = std::time::Instant::now();
    let mut one = cfg.clone();
    one.servers = vec![server.clone()];
    let mut conn = conn::connect(&one, &Credentials::Service, None)?;
    if conn
        .search(&cfg.base, ldap3::Scope::Base, "(objectClass=*)", &["1.1"])?
        .is_none()
    {
        return Err(conn::fail(
            &server.uri,
            DirectoryProblem::User,
            format!(
                "the base {} does not exist (or the service account may not see it)",
                cfg.base
            ),
        ));
    }
    for (attr, what) in [
        ("oathSecret", "the OATH-LDAP schema (`moduleload otp`)"),
        ("pamTotpEnrollmentId", "the pam-totp schema (pam-totp.ldif)"),
    ] {
        if conn.compare(&cfg.base, attr, "-")? == conn::rc::UNDEFINED_ATTRIBUTE_TYPE {
            return Err(conn::fail(
                &server.uri,
                DirectoryProblem::Schema,
                format!("{attr} is unknown: load {what}"),
            ));
        }
    }
    Ok(Probe {
        millis: start.elapsed().as_secs_f64() * 1000.0,
    })
}
