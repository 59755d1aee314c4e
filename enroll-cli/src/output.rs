//! Printing helpers: JSON (kept in zeroized buffers, since it may hold a key) and human dates.

use serde::Serialize;
use std::io::Write;
use zeroize::Zeroizing;

/// Prints `value` as pretty JSON on stdout, followed by a newline.
///
/// # Errors
/// Writing to stdout failed.
pub fn print_json<T: Serialize>(value: &T) -> std::io::Result<()> {
    let text = Zeroizing::new(serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?);
    let mut out = std::io::stdout().lock();
    out.write_all(&text)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn date(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
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
}
