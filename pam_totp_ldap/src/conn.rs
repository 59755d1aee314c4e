//! One connection to the first directory server that answers: TCP connected here (time-out,
//! `TCP_NODELAY`), TLS by rustls trusting only the configured CA, then a bind. Every operation
//! has the configured time-out; every failure becomes a [`StoreError::Directory`] naming the
//! server and a [`DirectoryProblem`].

use ldap3::{
    LdapConn, LdapConnSettings, LdapError, LdapResult, Mod, Scope, SearchEntry, StdStream,
    controls::Assertion,
};
use pam_totp_core::StoreError;
use pam_totp_core::directory::{Bind, DirectoryConfig, Server, Transport};
use pam_totp_core::error::DirectoryProblem;
use pam_totp_core::store::{ReadRules, read_checked};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Result codes (RFC 4511 appendix A) the backend acts on.
pub(crate) mod rc {
    pub const SUCCESS: u32 = 0;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const UNDEFINED_ATTRIBUTE_TYPE: u32 = 17;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const ALREADY_EXISTS: u32 = 68;
    pub const ASSERTION_FAILED: u32 = 122;
    pub const COMPARE_FALSE: u32 = 5;
    pub const COMPARE_TRUE: u32 = 6;
}

/// Who binds.
#[derive(Clone)]
pub enum Credentials {
    /// The module's service account (`bind`).
    Service,
    /// Root's CLI: the administrator account if configured, else the service account.
    Admin,
    /// A user acting on their own enrollment, binding with their directory password, asked
    /// for when the first operation connects (`ask` gets the question, e.g. a terminal prompt).
    User {
        /// Their login name.
        name: String,
        /// Asks for the password; `None`: none given.
        ask: fn(&str) -> Option<Zeroizing<String>>,
    },
}

/// An open, bound connection.
pub(crate) struct Conn {
    ldap: LdapConn,
    /// The server's URI, for messages.
    pub server: String,
    timeout: Duration,
}

pub(crate) fn fail(
    server: &str,
    problem: DirectoryProblem,
    detail: impl Into<String>,
) -> StoreError {
    StoreError::Directory {
        server: server.to_string(),
        problem,
        detail: detail.into(),
    }
}

/// Classifies an error of the client library.
fn classify(server: &str, e: &LdapError) -> StoreError {
    let problem = match e {
        LdapError::Timeout { .. } => DirectoryProblem::Timeout,
        LdapError::Io { source } => match source.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                DirectoryProblem::Timeout
            }
            std::io::ErrorKind::InvalidData
                if source.get_ref().is_some_and(|e| e.is::<rustls::Error>()) =>
            {
                DirectoryProblem::Tls
            }
            _ if source.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => DirectoryProblem::Tls,
            _ => DirectoryProblem::Unreachable,
        },
        LdapError::Rustls { .. } | LdapError::DNSName { .. } => DirectoryProblem::Tls,
        LdapError::LdapResult { result } => return result_error(server, result),
        _ => DirectoryProblem::Protocol,
    };
    fail(server, problem, e.to_string())
}

/// Classifies a result code that is not part of a compare-and-set.
pub(crate) fn result_error(server: &str, r: &LdapResult) -> StoreError {
    let problem = match r.rc {
        rc::INVALID_CREDENTIALS => DirectoryProblem::Credentials,
        rc::INSUFFICIENT_ACCESS => DirectoryProblem::Access,
        rc::UNDEFINED_ATTRIBUTE_TYPE | rc::OBJECT_CLASS_VIOLATION | 18 | 21 => {
            DirectoryProblem::Schema
        }
        3 => DirectoryProblem::Timeout,
        51 | 52 | 80 => DirectoryProblem::Unreachable,
        _ => DirectoryProblem::Protocol,
    };
    let text = if r.text.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            r.text
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
        )
    };
    fail(server, problem, format!("result code {}{text}", r.rc))
}

/// The TLS settings: the admin's CA only (never the system roots), the server's name checked
/// by rustls, a client certificate when configured.
fn tls_config(
    cfg: &DirectoryConfig,
    server: &str,
) -> Result<Arc<rustls::ClientConfig>, StoreError> {
    let tls = |detail: String| fail(server, DirectoryProblem::Tls, detail);
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &cfg.ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| tls(format!("cannot read ca_file {}: {e}", ca.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| tls(format!("ca_file {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls(format!("ca_file {}: {e}", ca.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(tls("no CA certificate in ca_file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &cfg.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| tls(format!("client_cert {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls(format!("client_key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls(e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}

/// Reads a bind password: a root-owned file (the caller's, for tests run unprivileged) that
/// group and others cannot read; one line, its newline dropped.
pub(crate) fn read_password(
    server: &str,
    path: &std::path::Path,
) -> Result<Zeroizing<String>, StoreError> {
    let rules = ReadRules {
        owner: Some(nix::unistd::Uid::effective().as_raw()),
        allowed_perm: 0o600,
        max_size: 4096,
    };
    let bytes = read_checked(path, &rules)
        .map_err(|e| {
            fail(
                server,
                DirectoryProblem::Credentials,
                format!("password file: {e}"),
            )
        })?
        .ok_or_else(|| {
            fail(
                server,
                DirectoryProblem::Credentials,
                format!("password file {} does not exist", path.display()),
            )
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        fail(
            server,
            DirectoryProblem::Credentials,
            "password file is not UTF-8 text",
        )
    })?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() || line.contains('\n') {
        return Err(fail(
            server,
            DirectoryProblem::Credentials,
            "password file must hold one non-empty line",
        ));
    }
    Ok(Zeroizing::new(line.to_string()))
}

/// Opens a connection to the first server that answers and binds as `who`. Servers are tried
/// in order; the error of the last one is returned when none works.
pub(crate) fn connect(
    cfg: &DirectoryConfig,
    who: &Credentials,
    password: Option<&str>,
) -> Result<Conn, StoreError> {
    let mut last = None;
    for server in &cfg.servers {
        match connect_one(cfg, server, who, password) {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        fail(
            "(none)",
            DirectoryProblem::Unreachable,
            "no server configured",
        )
    }))
}

fn connect_one(
    cfg: &DirectoryConfig,
    server: &Server,
    who: &Credentials,
    password: Option<&str>,
) -> Result<Conn, StoreError> {
    let uri = server.uri.as_str();
    let mut settings = LdapConnSettings::new().set_conn_timeout(cfg.connect_timeout);
    let url = match &server.transport {
        Transport::Ldapi { socket } => {
            let stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
                fail(
                    uri,
                    DirectoryProblem::Unreachable,
                    format!("{}: {e}", socket.display()),
                )
            })?;
            settings = settings.set_std_stream(StdStream::Unix(stream));
            "ldapi:///".to_string()
        }
        transport => {
            let stream = tcp_connect(server, cfg.connect_timeout)?;
            settings = settings
                .set_std_stream(StdStream::Tcp(stream))
                .set_config(tls_config(cfg, uri)?);
            let host = if server.host.contains(':') {
                format!("[{}]", server.host)
            } else {
                server.host.clone()
            };
            match transport {
                Transport::Ldaps => format!("ldaps://{host}:{}", server.port),
                Transport::Ldap { starttls } => {
                    settings = settings.set_starttls(*starttls);
                    format!("ldap://{host}:{}", server.port)
                }
                Transport::Ldapi { .. } => unreachable!("handled above"),
            }
        }
    };
    let ldap = LdapConn::with_settings(settings, &url).map_err(|e| classify(uri, &e))?;
    let mut conn = Conn {
        ldap,
        server: uri.to_string(),
        timeout: cfg.timeout,
    };
    conn.bind(cfg, who, password)?;
    Ok(conn)
}

/// Connects by TCP with a time-out per address, `TCP_NODELAY` set (without it a StartTLS
/// exchange waits for delayed ACKs: ~40 ms per login on loopback).
fn tcp_connect(server: &Server, timeout: Duration) -> Result<TcpStream, StoreError> {
    let uri = server.uri.as_str();
    let addrs = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| {
            fail(
                uri,
                DirectoryProblem::Unreachable,
                format!("cannot resolve {}: {e}", server.host),
            )
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)
                    .map_err(|e| fail(uri, DirectoryProblem::Unreachable, e.to_string()))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            fail(uri, DirectoryProblem::Timeout, format!("connect: {e}"))
        }
        Some(e) => fail(uri, DirectoryProblem::Unreachable, format!("connect: {e}")),
        None => fail(
            uri,
            DirectoryProblem::Unreachable,
            format!("{} has no address", server.host),
        ),
    })
}

impl Conn {
    fn bind(
        &mut self,
        cfg: &DirectoryConfig,
        who: &Credentials,
        password: Option<&str>,
    ) -> Result<(), StoreError> {
        let bind = match who {
            Credentials::Service => cfg.bind.clone(),
            Credentials::Admin => cfg.admin.clone().unwrap_or_else(|| cfg.bind.clone()),
            Credentials::User { name, .. } => {
                // The user's entry is found anonymously, then bound to with their password.
                let dn = crate::layout::find_user(self, cfg, name)?.ok_or_else(|| {
                    fail(
                        &self.server,
                        DirectoryProblem::User,
                        format!("no entry for user {name} under {}", cfg.base),
                    )
                })?;
                let password = password.unwrap_or_default();
                if password.is_empty() {
                    // An empty password is an unauthenticated bind (RFC 4513 5.1.2): it
                    // would succeed as anonymous.
                    return Err(fail(
                        &self.server,
                        DirectoryProblem::Credentials,
                        "empty password",
                    ));
                }
                let r = self
                    .ldap
                    .with_timeout(self.timeout)
                    .simple_bind(&dn, password)
                    .map_err(|e| classify(&self.server, &e))?;
                return self.bound(&r);
            }
        };
        let r = match &bind {
            Bind::Simple { dn, password_file } => {
                let password = read_password(&self.server, password_file)?;
                self.ldap
                    .with_timeout(self.timeout)
                    .simple_bind(dn, &password)
            }
            Bind::SaslExternal => self.ldap.with_timeout(self.timeout).sasl_external_bind(),
        }
        .map_err(|e| classify(&self.server, &e))?;
        self.bound(&r)
    }

    fn bound(&self, r: &LdapResult) -> Result<(), StoreError> {
        if r.rc == rc::SUCCESS {
            Ok(())
        } else {
            Err(result_error(&self.server, r))
        }
    }

    /// Searches; `Ok(None)` when the base does not exist.
    pub(crate) fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Option<Vec<SearchEntry>>, StoreError> {
        let server = self.server.clone();
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .search(base, scope, filter, attrs.to_vec())
            .map_err(|e| classify(&server, &e))?;
        let (entries, r) = (result.0, result.1);
        match r.rc {
            rc::SUCCESS => {}
            rc::NO_SUCH_OBJECT => return Ok(None),
            _ => return Err(result_error(&server, &r)),
        }
        // ldap3 panics on an entry it cannot decode: a server answering garbage must fail
        // the operation, not the process.
        std::panic::catch_unwind(move || entries.into_iter().map(SearchEntry::construct).collect())
            .map(Some)
            .map_err(|_| {
                fail(
                    &server,
                    DirectoryProblem::Protocol,
                    "an entry could not be decoded",
                )
            })
    }

    /// A Modify, with an Assertion control if given. Returns the result code: the codes of a
    /// lost compare-and-set (16, 19, 20, 32, 122) are for the caller; others are errors.
    pub(crate) fn modify(
        &mut self,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
        assertion: Option<&str>,
    ) -> Result<u32, StoreError> {
        let ldap = self.ldap.with_timeout(self.timeout);
        let ldap = match assertion {
            Some(filter) => ldap.with_controls(Assertion::new(filter)),
            None => ldap,
        };
        let r = ldap
            .modify(dn, mods)
            .map_err(|e| classify(&self.server, &e))?;
        self.cas_result(&r)
    }

    /// Adds an entry. Returns the result code (68: it exists); others are errors.
    pub(crate) fn add(
        &mut self,
        dn: &str,
        attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)>,
    ) -> Result<u32, StoreError> {
        let r = self
            .ldap
            .with_timeout(self.timeout)
            .add(dn, attrs)
            .map_err(|e| classify(&self.server, &e))?;
        match r.rc {
            rc::SUCCESS | rc::ALREADY_EXISTS => Ok(r.rc),
            _ => Err(result_error(&self.server, &r)),
        }
    }

    /// Deletes an entry. Returns the result code (32: it was gone); others are errors.
    pub(crate) fn delete(&mut self, dn: &str) -> Result<u32, StoreError> {
        let r = self
            .ldap
            .with_timeout(self.timeout)
            .delete(dn)
            .map_err(|e| classify(&self.server, &e))?;
        match r.rc {
            rc::SUCCESS | rc::NO_SUCH_OBJECT => Ok(r.rc),
            _ => Err(result_error(&self.server, &r)),
        }
    }

    /// A Compare; returns the result code (5 false, 6 true, 16 no such attribute, 17 unknown
    /// attribute type, 32 no such entry); others are errors.
    pub(crate) fn compare(&mut self, dn: &str, attr: &str, value: &str) -> Result<u32, StoreError> {
        let r = self
            .ldap
            .with_timeout(self.timeout)
            .compare(dn, attr, value)
            .map_err(|e| classify(&self.server, &e))?;
        match r.0.rc {
            rc::COMPARE_FALSE
            | rc::COMPARE_TRUE
            | rc::NO_SUCH_ATTRIBUTE
            | rc::UNDEFINED_ATTRIBUTE_TYPE
            | rc::NO_SUCH_OBJECT => Ok(r.0.rc),
            _ => Err(result_error(&self.server, &r.0)),
        }
    }

    fn cas_result(&self, r: &LdapResult) -> Result<u32, StoreError> {
        match r.rc {
            rc::SUCCESS
            | rc::NO_SUCH_ATTRIBUTE
            | rc::CONSTRAINT_VIOLATION
            | rc::VALUE_EXISTS
            | rc::NO_SUCH_OBJECT
            | rc::ASSERTION_FAILED => Ok(r.rc),
            _ => Err(result_error(&self.server, r)),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Tell the server we are done (no "connection lost" in its log); never wait for it.
        let _ = self.ldap.with_timeout(Duration::from_millis(100)).unbind();
    }
}
