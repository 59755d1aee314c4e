//! The directory (`store = "ldap"`): each server tried as a login would use it (connect, TLS,
//! bind as the service account, the base, the schemas), with what to do about a failure.

use super::{Finding, Sys, error, ok, warn};
use pam_totp_core::DirectoryProblem;
use pam_totp_core::StoreError;
use pam_totp_core::config::{Backend, Config};
use pam_totp_core::directory::{Bind, Transport};

const CHECK: &str = "directory";

fn fix_for(problem: DirectoryProblem) -> &'static str {
    match problem {
        DirectoryProblem::Unreachable => {
            "Check the URI (host, port, socket path), DNS, firewalls, and that slapd runs."
        }
        DirectoryProblem::Timeout => {
            "The server accepted the connection but did not answer in time: check that slapd \
             is not hung or overloaded, or raise `timeout` in [ldap] (it must stay well under \
             sshd's LoginGraceTime)."
        }
        DirectoryProblem::Tls => {
            "Set `ca_file` in [ldap] to the CA that signed the server's certificate, and use the \
             host name (or IP address) the certificate names in the URI."
        }
        DirectoryProblem::Credentials => {
            "Check bind_dn and the password in bind_password_file (one line, owned by root, mode \
             0600), or the SASL EXTERNAL identity mapping (olcAuthzRegexp)."
        }
        DirectoryProblem::Access => {
            "Install the access rules of packaging/ldap/pam-totp-acl.ldif and put the service \
             account in the validators group (docs/fleet.md)."
        }
        DirectoryProblem::Schema => {
            "Load the otp module (`olcModuleLoad: otp`) and pam-totp.ldif into cn=config \
             (docs/fleet.md, \"Set-up\")."
        }
        DirectoryProblem::User => {
            "Check `base` in [ldap]: it must exist and be visible to the service account."
        }
        DirectoryProblem::Protocol => "See the detail above and the server's log.",
    }
}

/// Adds the directory's findings when the configuration uses one. Only on the live system
/// (`--root /`): a mounted image's servers are not this host's to try.
pub(super) fn check(sys: &Sys, config: Option<&Config>, out: &mut Vec<Finding>) {
    let Some(Backend::Directory(d)) = config.map(|c| &c.backend) else {
        return;
    };
    if sys.root != std::path::Path::new("/") {
        out.push(ok(
            CHECK,
            "store = \"ldap\" (servers not tried for a system image)",
        ));
        return;
    }
    if let Bind::Simple { password_file, .. } = &d.bind {
        if !nix::unistd::Uid::effective().is_root() {
            out.push(warn(
                CHECK,
                format!("not root: the service account's password ({}) cannot be read, servers not tried", password_file.display()),
                "Run `sudo pam-totp doctor`.",
            ));
            return;
        }
    }
    for server in &d.servers {
        if matches!(server.transport, Transport::Ldap { starttls: false }) {
            out.push(warn(
                CHECK,
                format!(
                    "{}: StartTLS is off (allowed for loopback only)",
                    server.uri
                ),
                "Use ldapi:// for a server on this host, or StartTLS.",
            ));
        }
        match pam_totp_ldap::probe(d, server) {
            Ok(p) => out.push(ok(
                CHECK,
                format!(
                    "{}: bound, base {} found, OATH-LDAP and pam-totp schemas loaded ({:.1} ms)",
                    server.uri, d.base, p.millis
                ),
            )),
            Err(StoreError::Directory {
                problem, detail, ..
            }) => out.push(error(
                CHECK,
                format!("{}: {} ({detail})", server.uri, problem.class()),
                fix_for(problem),
            )),
            Err(e) => out.push(error(
                CHECK,
                format!("{}: {e}", server.uri),
                "See the message.",
            )),
        }
    }
}
