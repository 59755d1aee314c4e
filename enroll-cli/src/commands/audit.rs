//! Syslog lines for actions that change who can log in (`reset`, `unlock`, `disable`, `remove`,
//! `forget-hosts`): facility authpriv, ident `pam-totp`, one line per action naming the user, the
//! action and who did it. Never a secret, a code or a backup code.
//! No syslog daemon (or one that stopped reading) is not an error: the action is done and a
//! note goes to stderr.

use syslog::{Facility, Formatter3164, LogFormat, Severity};

/// Logs `action` on `user` at level notice.
pub fn log(action: &str, user: &str, detail: &str) {
    let by = nix::unistd::User::from_uid(nix::unistd::Uid::current())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid={}", nix::unistd::Uid::current()));
    let mut line = format!("pam_totp(pam-totp:admin): action={action} user={user} by={by}");
    if let Ok(sudo_user) = std::env::var("SUDO_USER") {
        if !sudo_user.is_empty() && sudo_user.bytes().all(|b| b.is_ascii_graphic()) {
            line.push_str(&format!(" sudo_user={sudo_user}"));
        }
    }
    if !detail.is_empty() {
        line.push(' ');
        line.push_str(detail);
    }
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "pam-totp".into(),
        pid: std::process::id(),
    };
    // Formatted by the syslog crate, sent without blocking (a stuck daemon must not hang us).
    let mut datagram = Vec::new();
    let sent = formatter
        .format(&mut datagram, Severity::LOG_NOTICE, &line)
        .is_ok()
        && pam_totp_core::syslog_line::send(&datagram);
    if !sent {
        eprintln!("Note: could not write to syslog (/dev/log); the action itself was done.");
    }
}
