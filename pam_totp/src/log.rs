//! Syslog lines of the module: facility authpriv, one line per outcome, prefixed like
//! `pam_syslog` does (`pam_totp(sshd:auth): ...`). The `syslog` crate formats the line (RFC
//! 3164); it is sent on a socket made per line and closed at once: no `openlog()`, nothing
//! global, the host's own syslog set-up is left alone. The send never blocks: if `/dev/log` is
//! missing, or a stuck syslog daemon has let its queue fill up, the line is dropped rather than
//! hanging the login. Logging never changes an outcome.
//!
//! Only the fields of [`Event`] can be logged, and none of them can hold a code or a secret.

use syslog::{Facility, Formatter3164, LogFormat, Severity};

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
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "pam_totp".into(),
        pid: std::process::id(),
    };
    let severity = match level {
        Level::Err => Severity::LOG_ERR,
        Level::Warning => Severity::LOG_WARNING,
        Level::Notice => Severity::LOG_NOTICE,
        Level::Debug => Severity::LOG_DEBUG,
    };
    let mut datagram = Vec::with_capacity(line.len() + 64);
    if formatter.format(&mut datagram, severity, line).is_err() {
        return;
    }
    pam_totp_core::syslog_line::send(&datagram);
}
