//! Printing helpers: the one escaping function for user-controlled text, JSON (kept in zeroized
//! buffers, since it may hold a key) and human dates.

use pam_totp_core::secret_file::is_printable;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use zeroize::Zeroizing;

/// User-controlled text (names, issuers, labels, paths, and the service, host and method
/// strings of the state) made safe to print on a terminal. Characters a terminal would not
/// show as themselves ([`is_printable`]: control characters, which move the cursor or retitle
/// the window, and bidirectional or invisible format characters, which reorder or hide text)
/// become `\xNN` or `\u{NNNN}`, and `\` becomes `\\` so an escape cannot be faked. Every
/// command prints such text through this function.
pub fn safe(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| c != '\\' && is_printable(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_printable(c) => out.push(c),
            c if u32::from(c) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// Prints `text`, which holds a key or backup codes, straight to stdout: whatever stdout has
/// buffered is flushed first, so the newline-terminated text goes past its line buffer (which
/// is reused and never wiped) to the file descriptor. Only up to the last newline: text after
/// it would be buffered, so callers end what they print with one.
///
/// # Errors
/// Writing to stdout failed.
pub fn print_secret(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.flush()?;
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Prints `value` as pretty JSON on stdout, followed by a newline. JSON strings may hold
/// user-controlled text; serde_json escapes C0 controls only, so every other character that is
/// not [printable](is_printable) (DEL, C1, bidirectional overrides) is written as a `\uNNNN`
/// escape too: the same JSON value, harmless on a terminal.
///
/// # Errors
/// Writing to stdout failed.
pub fn print_json<T: Serialize>(value: &T) -> std::io::Result<()> {
    let raw = Zeroizing::new(serde_json::to_string_pretty(value).map_err(std::io::Error::other)?);
    // Outside strings JSON text is ASCII punctuation, digits and letters: every unprintable
    // character met here sits inside a string. Sized once: the text may hold a key.
    let extra = raw.chars().filter(|&c| !is_printable(c)).count() * 12;
    let mut text = Zeroizing::new(String::with_capacity(raw.len() + extra + 1));
    for c in raw.chars() {
        if is_printable(c) || c == '\n' {
            text.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(text, "\\u{unit:04x}");
            }
        }
    }
    text.push('\n');
    print_secret(&text)
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC` (the date from the core's one calendar).
pub fn date(unix: u64) -> String {
    let secs = unix % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        pam_totp_core::policy::Date::of_time(unix),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A duration in seconds as `1h 2m 3s`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3661), "1h 1m 1s");
    }

    #[test]
    fn safe_escapes_what_a_terminal_would_not_show_as_itself() {
        assert!(matches!(
            safe("198.51.100.7 sshd Älice 名前"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            safe("\x1b]0;owned\x07\x1b[1A\x1b[2K"),
            "\\x1b]0;owned\\x07\\x1b[1A\\x1b[2K"
        );
        assert_eq!(safe("a\u{9b}b\u{7f}c\r\n"), "a\\x9bb\\x7fc\\x0d\\x0a");
        assert_eq!(safe("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(safe("back\\slash"), "back\\\\slash");
    }
}
