//! Sending one formatted line to the local syslog socket without ever blocking, shared by the
//! module and the CLI. A syslog daemon that stopped reading fills its socket queue, and a
//! blocking send would then hang a login or an administrator's command; a dropped line is the
//! lesser harm. [`format_3164`] formats a line for the module; the CLI uses the `syslog` crate.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;

/// `LOG_AUTHPRIV`, the facility of every line of the module (syslog(3): 10 << 3).
pub const FACILITY_AUTHPRIV: u8 = 10 << 3;

/// Month abbreviations of RFC 3164 timestamps.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One RFC 3164 line as the `syslog` crate (7.x) writes it without a hostname:
/// `<PRI>Mmm DD HH:MM:SS process[pid]: message`, the time in UTC with a zero-padded day.
/// Written here rather than by that crate so the module does not link the `time` crate and parse
/// a format description on every line (about 60 KB of the module and its relocations).
pub fn format_3164(
    facility: u8,
    severity: u8,
    unix_time: u64,
    process: &str,
    pid: u32,
    message: &str,
) -> String {
    let days = unix_time / 86_400;
    let secs = unix_time % 86_400;
    let (_, month, day) = civil_from_days(days);
    let mut line = String::with_capacity(message.len() + process.len() + 40);
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        "<{}>{} {:02} {:02}:{:02}:{:02} {process}[{pid}]: {message}",
        u16::from(facility) | u16::from(severity & 7),
        MONTHS[usize::from(month - 1)],
        day,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    line
}

/// Year, month (1-12) and day (1-31), `days` after 1970-01-01: the core's one calendar.
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let (y, m, d) = crate::policy::civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    (
        u64::try_from(y).unwrap_or(0),
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

/// The local syslog socket.
pub const DEV_LOG: &str = "/dev/log";

/// Sends one datagram to `/dev/log`. Returns whether it was handed over.
pub fn send(datagram: &[u8]) -> bool {
    let Ok(socket) = UnixDatagram::unbound() else {
        return false;
    };
    socket.set_nonblocking(true).is_ok()
        && socket.connect(DEV_LOG).is_ok()
        && socket.send(datagram).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_across_leap_years_and_centuries() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-02-29 (a leap day of a century leap year) and the day after.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        // 2100 is not a leap year: 2100-02-28 is followed by 2100-03-01.
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
    }

    #[test]
    fn line_as_the_syslog_crate_writes_it() {
        // 2026-11-07 09:05:03 UTC (`date -u -d @1794042303`).
        let line = format_3164(FACILITY_AUTHPRIV, 5, 1_794_042_303, "pam_totp", 42, "x y");
        assert_eq!(line, "<85>Nov 07 09:05:03 pam_totp[42]: x y");
        // The severity cannot spill into the facility bits.
        assert!(
            format_3164(FACILITY_AUTHPRIV, 0xff, 0, "p", 1, "m")
                .starts_with("<87>Jan 01 00:00:00 ")
        );
    }
}
