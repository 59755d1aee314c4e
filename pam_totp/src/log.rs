//! Syslog lines of the module: facility authpriv, one line per outcome, prefixed like
//! `pam_syslog` does (`pam_totp(sshd:auth): ...`), formatted (RFC 3164) by
//! `pam_totp_core::syslog_line`, and sent on a socket made per line and closed at once: no `openlog()`, nothing
//! global, the host's own syslog set-up is left alone. The send never blocks: if `/dev/log` is
//! missing, or a stuck syslog daemon has let its queue fill up, the line is dropped rather than
//! hanging the login. Logging never changes an outcome.
//!
//! Only the fields of [`Event`] can be logged, and none of them can hold a code or a secret.

use pam_totp_core::syslog_line::{self, FACILITY_AUTHPRIV};

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Err,
    Warning,
    Notice,
    Debug,
}

/// Who is logging in from where: the fixed part of every line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// `auth` or `account`, for the line prefix.
    pub(crate) phase: &'static str,
    pub(crate) user: String,
    pub(crate) service: String,
    pub(crate) rhost: String,
    pub(crate) tty: String,
}

/// Removes characters that could forge or break a log line (a user-chosen rhost or user name).
fn clean(text: &str) -> String {
    text.chars()
        .take(128)
        .map(|c| {
            if c.is_control() || c == ' ' || c == '"' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

impl Context {
    pub(crate) fn fields(&self) -> String {
        let or_none = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                clean(s)
            }
        };
        format!(
            "user={} service={} rhost={} tty={}",
            or_none(&self.user),
            or_none(&self.service),
            or_none(&self.rhost),
            or_none(&self.tty)
        )
    }
}

/// Writes one line. `detail` must come from non-secret values only (classes, paths, counts).
pub(crate) fn write(ctx: &Context, level: Level, detail: &str) {
    let service = if ctx.service.is_empty() {
        "?".to_string()
    } else {
        clean(&ctx.service)
    };
    let phase = if ctx.phase.is_empty() {
        "auth"
    } else {
        ctx.phase
    };
    let line = format!("pam_totp({service}:{phase}): {} {detail}", ctx.fields());
    // syslog(3) severities.
    let severity = match level {
        Level::Err => 3,
        Level::Warning => 4,
        Level::Notice => 5,
        Level::Debug => 7,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let datagram = syslog_line::format_3164(
        FACILITY_AUTHPRIV,
        severity,
        now,
        "pam_totp",
        std::process::id(),
        &line,
    );
    syslog_line::send(datagram.as_bytes());
}
