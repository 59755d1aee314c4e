//! Syslog lines of the module: facility authpriv, one line per outcome, prefixed like
//! `pam_syslog` does (`pam_totp(sshd:auth): ...`), formatted (RFC 3164) by
//! `pam_totp_core::syslog_line`, and sent on a socket made per line and closed at once: no `openlog()`, nothing
//! global, the host's own syslog set-up is left alone. The send never blocks: if `/dev/log` is
//! missing, or a stuck syslog daemon has let its queue fill up, the line is dropped rather than
//! hanging the login. Logging never changes an outcome.
//!
//! Every line is an [`Event`]: one type formats them all, and none of its fields can hold a code
//! or a secret.

use crate::outcome::Reason;
use pam_totp_core::syslog_line::{self, FACILITY_AUTHPRIV};

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
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

/// One line of the module's log, after the fixed `user= service= rhost= tty=` part.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// Passed: `method=M result=success EXTRA`.
    Success { method: &'static str, extra: String },
    /// Refused: `method=M result=failure reason=R EXTRA`.
    Failure {
        method: &'static str,
        reason: Reason,
        extra: String,
    },
    /// Refused because something is broken (an error, with what failed).
    Broken {
        method: &'static str,
        reason: Reason,
        detail: Option<&'a str>,
    },
    /// Stepped aside: `method=none result=ignore reason=R EXTRA`.
    Ignored { reason: Reason, extra: String },
    /// Exempt by a policy rule.
    Exempt { success: bool, rule: &'a str },
    /// The host or the user must wait.
    Throttled { scope: &'static str, wait: u64 },
    /// The module could not start: `result=error reason=R EXTRA`.
    Error { reason: Reason, extra: String },
    /// The clock is behind the latest time in the state (codes look replayed until it catches
    /// up; waits are capped).
    ClockBack { seconds: u64 },
    /// The effective configuration (`debug`).
    Debug(String),
}

impl Event<'_> {
    fn level(&self) -> Level {
        match self {
            Event::Success { .. }
            | Event::Failure { .. }
            | Event::Ignored { .. }
            | Event::Exempt { .. } => Level::Notice,
            Event::Throttled { .. } | Event::ClockBack { .. } => Level::Warning,
            Event::Broken { .. } | Event::Error { .. } => Level::Err,
            Event::Debug(_) => Level::Debug,
        }
    }
}

fn with_extra(line: String, extra: &str) -> String {
    if extra.is_empty() {
        line
    } else {
        format!("{line} {extra}")
    }
}

impl std::fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = match self {
            Event::Success { method, extra } => {
                with_extra(format!("method={method} result=success"), extra)
            }
            Event::Failure {
                method,
                reason,
                extra,
            } => with_extra(
                format!("method={method} result=failure reason={reason}"),
                extra,
            ),
            Event::Broken {
                method,
                reason,
                detail,
            } => match detail {
                Some(d) => format!(
                    "method={method} result=failure reason={reason} detail=\"{}\"",
                    d.replace('"', "'")
                ),
                None => format!("method={method} result=failure reason={reason}"),
            },
            Event::Ignored { reason, extra } => {
                with_extra(format!("method=none result=ignore reason={reason}"), extra)
            }
            Event::Exempt { success, rule } => format!(
                "method=exempt result={} rule=\"{rule}\"",
                if *success { "success" } else { "ignore" }
            ),
            Event::Throttled { scope, wait } => format!(
                "method=none result=failure reason={} scope={scope} wait={wait}s",
                Reason::Throttled
            ),
            Event::Error { reason, extra } => {
                with_extra(format!("result=error reason={reason}"), extra)
            }
            Event::ClockBack { seconds } => format!(
                "result=warning reason=clock-went-back by={seconds}s (codes of the steps already \
                 seen are refused until the clock catches up)"
            ),
            Event::Debug(text) => format!("debug: {text}"),
        };
        f.write_str(&line)
    }
}

/// Writes one event.
pub(crate) fn write(ctx: &Context, event: &Event<'_>) {
    let level = event.level();
    let detail = event.to_string();
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
