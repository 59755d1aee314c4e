//! The `[ldap]` table of `/etc/security/pam_totp.conf`: where a fleet keeps its enrollments and
//! login state when `store = "ldap"`. Parsed and checked here, with the rest of the
//! configuration; the client that uses it is the `pam_totp_ldap` crate.
//!
//! Rules a sysadmin can rely on:
//! - servers are tried in the order given; each one gets `connect_timeout`, each operation
//!   `timeout`, so a login waits at most about `servers × connect_timeout` + a few operations;
//! - `ldap://` to anything but a loopback address must use StartTLS (`starttls = false` is
//!   refused there), `ldaps://` is TLS from the start, `ldapi://` is a local socket;
//! - the service account's password is read from a root-owned file that group and others
//!   cannot read (checked on every use, see `pam_totp_ldap`).

use crate::error::ParseError;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default time to connect (and finish TLS) to one server.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time for one operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest time-out accepted: sshd's `LoginGraceTime` is 120 s; a login must end well before.
const MAX_TIMEOUT_SECS: f64 = 30.0;
/// Default socket of Debian's slapd for `ldapi:///`.
pub const DEFAULT_LDAPI_SOCKET: &str = "/run/slapd/ldapi";

/// What the `[ldap]` table says, before validation.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    uri: Option<UriList>,
    base: Option<String>,
    user_filter: Option<String>,
    bind: Option<String>,
    bind_dn: Option<String>,
    bind_password_file: Option<String>,
    admin_bind_dn: Option<String>,
    admin_password_file: Option<String>,
    ca_file: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    starttls: Option<bool>,
    connect_timeout: Option<Seconds>,
    timeout: Option<Seconds>,
}

/// One URI or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum UriList {
    One(String),
    Many(Vec<String>),
}

/// Seconds, as a TOML integer or float.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Seconds {
    Int(i64),
    Float(f64),
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `ldap://host:port`; `starttls` says whether StartTLS is required (always, unless the
    /// host is a loopback address and the configuration turned it off).
    Ldap { starttls: bool },
    /// `ldaps://host:port`: TLS from the first byte.
    Ldaps,
    /// `ldapi://<socket>`: a Unix socket on this host.
    Ldapi { socket: PathBuf },
}

/// One directory server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The URI as configured (for messages and syslog).
    pub uri: String,
    /// How it is reached.
    pub transport: Transport,
    /// Host name or address (empty for `ldapi`).
    pub host: String,
    /// TCP port (0 for `ldapi`).
    pub port: u16,
}

impl Server {
    /// Whether the connection is encrypted (TLS) or local (a Unix socket).
    pub fn is_protected(&self) -> bool {
        !matches!(self.transport, Transport::Ldap { starttls: false })
    }
}

/// How the module (and root's CLI) authenticates to the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A simple bind with a DN and the password in a root-only file.
    Simple { dn: String, password_file: PathBuf },
    /// SASL EXTERNAL: the peer credentials of an `ldapi://` socket, or the TLS client
    /// certificate.
    SaslExternal,
}

/// The validated `[ldap]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryConfig {
    /// Servers in the order they are tried.
    pub servers: Vec<Server>,
    /// Where users are searched.
    pub base: String,
    /// Filter finding a user's entry; `%u` stands for the (escaped) user name.
    pub user_filter: String,
    /// The service account the module binds as.
    pub bind: Bind,
    /// An administrator root's CLI binds as to change enrollments, if configured.
    pub admin: Option<Bind>,
    /// CA certificates (PEM) trusted for the servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate and key (PEM), for SASL EXTERNAL over TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Time to connect to one server, TLS included.
    pub connect_timeout: Duration,
    /// Time for one operation.
    pub timeout: Duration,
}

impl DirectoryConfig {
    /// The filter finding `user`'s entry, the name escaped as RFC 4515 asks.
    pub fn filter_for(&self, user: &str) -> String {
        self.user_filter.replace("%u", &escape_filter_value(user))
    }

    /// One line for `debug` logs (no secrets: file names only).
    pub fn describe(&self) -> String {
        let uris: Vec<&str> = self.servers.iter().map(|s| s.uri.as_str()).collect();
        let bind = match &self.bind {
            Bind::Simple { dn, .. } => format!("simple:{dn}"),
            Bind::SaslExternal => "sasl-external".into(),
        };
        format!(
            "ldap={} base={} filter={} bind={bind} timeouts={}ms/{}ms",
            uris.join(","),
            self.base,
            self.user_filter,
            self.connect_timeout.as_millis(),
            self.timeout.as_millis(),
        )
    }
}

/// Escapes a value for an LDAP search filter (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL
/// become `\2a`, `\28`, `\29`, `\5c`, `\00`.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for an attribute value in a DN (RFC 4514 section 2.4).
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

fn key_error(key: &str, message: impl Into<String>) -> ParseError {
    ParseError::key(format!("ldap.{key}"), message)
}

fn seconds(key: &str, v: Option<Seconds>, default: Duration) -> Result<Duration, ParseError> {
    let s = match v {
        None => return Ok(default),
        Some(Seconds::Int(n)) => n as f64,
        Some(Seconds::Float(f)) => f,
    };
    if !(0.05..=MAX_TIMEOUT_SECS).contains(&s) {
        return Err(key_error(
            key,
            format!("must be between 0.05 and {MAX_TIMEOUT_SECS} seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

fn absolute(key: &str, v: Option<String>) -> Result<Option<PathBuf>, ParseError> {
    match v {
        None => Ok(None),
        Some(p) if p.starts_with('/') => Ok(Some(PathBuf::from(p))),
        Some(_) => Err(key_error(key, "must be an absolute path")),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Decodes `%XX` escapes (an `ldapi://` socket path).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses one server URI; `starttls` is the configured StartTLS setting for `ldap://`.
fn parse_uri(uri: &str, starttls: Option<bool>) -> Result<Server, ParseError> {
    let bad = |why: &str| key_error("uri", format!("`{uri}`: {why}"));
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| bad("expected ldap://, ldaps:// or ldapi://"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "ldapi" {
        let path = rest.trim_end_matches('/');
        let socket = if path.is_empty() {
            DEFAULT_LDAPI_SOCKET.to_string()
        } else {
            percent_decode(path).ok_or_else(|| bad("bad %-escape in the socket path"))?
        };
        if !socket.starts_with('/') {
            return Err(bad("the socket path must be absolute (%2F for /)"));
        }
        return Ok(Server {
            uri: uri.to_string(),
            transport: Transport::Ldapi {
                socket: socket.into(),
            },
            host: String::new(),
            port: 0,
        });
    }
    let default_port = match scheme.as_str() {
        "ldap" => 389,
        "ldaps" => 636,
        _ => return Err(bad("expected ldap://, ldaps:// or ldapi://")),
    };
    let hostport = rest.split('/').next().unwrap_or("");
    if hostport.is_empty() {
        return Err(bad("names no host"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None if after.is_empty() => default_port,
            None => return Err(bad("bad port")),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
            None => (hostport.to_string(), default_port),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(bad("names no host or port"));
    }
    let transport = if scheme == "ldaps" {
        Transport::Ldaps
    } else {
        let starttls = starttls.unwrap_or(true);
        if !starttls && !is_loopback(&host) {
            return Err(key_error(
                "starttls",
                format!(
                    "may be false only for loopback servers; `{uri}` would send the password \
                     and secrets in clear: use StartTLS, ldaps:// or ldapi://"
                ),
            ));
        }
        Transport::Ldap { starttls }
    };
    Ok(Server {
        uri: uri.to_string(),
        transport,
        host,
        port,
    })
}

impl RawDirectory {
    /// Checks the table and fills in defaults.
    ///
    /// # Errors
    /// The key at fault (`ldap.<key>`) and what is wrong with it.
    pub fn validate(self) -> Result<DirectoryConfig, ParseError> {
        let uris = match self.uri {
            None => return Err(key_error("uri", "is required with store = \"ldap\"")),
            Some(UriList::One(u)) => vec![u],
            Some(UriList::Many(v)) => v,
        };
        if uris.is_empty() {
            return Err(key_error("uri", "names no server"));
        }
        let servers = uris
            .iter()
            .map(|u| parse_uri(u, self.starttls))
            .collect::<Result<Vec<_>, _>>()?;
        let base = self
            .base
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| key_error("base", "is required with store = \"ldap\""))?;
        let user_filter = self
            .user_filter
            .unwrap_or_else(|| "(&(objectClass=posixAccount)(uid=%u))".into());
        if !user_filter.contains("%u") || !user_filter.starts_with('(') {
            return Err(key_error(
                "user_filter",
                "must be a filter in parentheses with %u for the user name",
            ));
        }
        let simple = |dn_key: &str,
                      dn: Option<String>,
                      file_key: &str,
                      file: Option<String>|
         -> Result<Option<Bind>, ParseError> {
            match (dn, absolute(file_key, file)?) {
                (None, None) => Ok(None),
                (Some(dn), Some(password_file)) if !dn.trim().is_empty() => {
                    Ok(Some(Bind::Simple { dn, password_file }))
                }
                (Some(_), None) => Err(key_error(file_key, format!("is required with {dn_key}"))),
                _ => Err(key_error(dn_key, format!("is required with {file_key}"))),
            }
        };
        let bind = match self.bind.as_deref().unwrap_or("simple") {
            "simple" => simple(
                "bind_dn",
                self.bind_dn,
                "bind_password_file",
                self.bind_password_file,
            )?
            .ok_or_else(|| {
                key_error(
                    "bind_dn",
                    "is required (with bind_password_file) unless bind = \"sasl-external\"",
                )
            })?,
            "sasl-external" => {
                if self.bind_dn.is_some() || self.bind_password_file.is_some() {
                    return Err(key_error(
                        "bind_dn",
                        "is not used with bind = \"sasl-external\"; remove it",
                    ));
                }
                Bind::SaslExternal
            }
            _ => return Err(key_error("bind", "must be \"simple\" or \"sasl-external\"")),
        };
        let admin = simple(
            "admin_bind_dn",
            self.admin_bind_dn,
            "admin_password_file",
            self.admin_password_file,
        )?;
        let client_cert = match (
            absolute("client_cert", self.client_cert)?,
            absolute("client_key", self.client_key)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => return Err(key_error("client_key", "is required with client_cert")),
            (None, Some(_)) => return Err(key_error("client_cert", "is required with client_key")),
        };
        let tls = servers
            .iter()
            .any(|s| !matches!(s.transport, Transport::Ldapi { .. }));
        let ca_file = absolute("ca_file", self.ca_file)?;
        if tls && ca_file.is_none() {
            return Err(key_error(
                "ca_file",
                "is required for ldap:// and ldaps:// servers (the CA that signed their certificates)",
            ));
        }
        Ok(DirectoryConfig {
            servers,
            base,
            user_filter,
            bind,
            admin,
            ca_file,
            client_cert,
            connect_timeout: seconds(
                "connect_timeout",
                self.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            timeout: seconds("timeout", self.timeout, DEFAULT_TIMEOUT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DirectoryConfig, ParseError> {
        toml::from_str::<RawDirectory>(text).unwrap().validate()
    }

    const MIN: &str =
        "uri = \"ldapi:///\"\nbase = \"dc=example,dc=org\"\nbind = \"sasl-external\"\n";

    #[test]
    fn minimal_ldapi() {
        let c = parse(MIN).unwrap();
        assert_eq!(
            c.servers[0].transport,
            Transport::Ldapi {
                socket: DEFAULT_LDAPI_SOCKET.into()
            }
        );
        assert_eq!(c.bind, Bind::SaslExternal);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            c.filter_for("a*b)"),
            "(&(objectClass=posixAccount)(uid=a\\2ab\\29))"
        );
    }

    #[test]
    fn uris_in_order_with_ports_and_tls() {
        let c = parse(
            "uri = [\"ldaps://ldap1.example.org\", \"ldap://[::1]:3389\", \"ldapi://%2Ftmp%2Fs\"]\n\
             base = \"dc=x\"\nbind_dn = \"cn=svc\"\nbind_password_file = \"/etc/pw\"\n\
             ca_file = \"/etc/ca.pem\"\ntimeout = 1.5\n",
        )
        .unwrap();
        assert_eq!(c.servers[0].port, 636);
        assert_eq!(c.servers[0].transport, Transport::Ldaps);
        assert_eq!(c.servers[1].host, "::1");
        assert_eq!(c.servers[1].port, 3389);
        assert_eq!(c.servers[1].transport, Transport::Ldap { starttls: true });
        assert_eq!(
            c.servers[2].transport,
            Transport::Ldapi {
                socket: "/tmp/s".into()
            }
        );
        assert_eq!(c.timeout, Duration::from_millis(1500));
    }

    #[test]
    fn clear_text_only_on_loopback() {
        let base =
            "base = \"dc=x\"\nbind = \"sasl-external\"\nca_file = \"/c\"\nstarttls = false\n";
        assert!(parse(&format!("uri = \"ldap://127.0.0.1:1389\"\n{base}")).is_ok());
        let e = parse(&format!("uri = \"ldap://ldap.example.org\"\n{base}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ldap.starttls"));
    }

    #[test]
    fn refusals_name_the_key() {
        for (text, key) in [
            ("base = \"dc=x\"\n", "ldap.uri"),
            ("uri = \"http://x\"\nbase = \"dc=x\"\n", "ldap.uri"),
            ("uri = \"ldapi:///\"\n", "ldap.base"),
            ("uri = \"ldapi:///\"\nbase = \"dc=x\"\n", "ldap.bind_dn"),
            (
                "uri = \"ldapi:///\"\nbase = \"dc=x\"\nbind_dn = \"cn=a\"\n",
                "ldap.bind_password_file",
            ),
            (
                "uri = \"ldaps://h\"\nbase = \"dc=x\"\nbind = \"sasl-external\"\n",
                "ldap.ca_file",
            ),
            (&format!("{MIN}timeout = 600\n"), "ldap.timeout"),
            (
                &format!("{MIN}user_filter = \"(uid=alice)\"\n"),
                "ldap.user_filter",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}");
        }
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_dn_value(" x "), "\\ x\\ ");
        assert_eq!(escape_dn_value("#1"), "\\#1");
    }
}
