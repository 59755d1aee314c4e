//! The clock: TOTP codes fail once it drifts by a period.

use super::{Finding, Sys, error, ok, warn};
use std::path::Path;
/// Checks the clock and its synchronisation.
pub(super) fn check(sys: &Sys, findings: &mut Vec<Finding>) {
    let now = pam_totp_core::Clock::now(&pam_totp_core::SystemClock);
    // 2024-01-01: a clock before that is certainly wrong.
    if now < 1_704_067_200 {
        findings.push(error(
            "clock",
            format!("the system clock reads {}: codes cannot match", crate::output::date(now)),
            "Set the time (`timedatectl set-time ...` or `date -s ...`) and enable NTP: `timedatectl set-ntp true`.",
        ));
        return;
    }
    if sys.root != Path::new("/") {
        findings.push(ok("clock", "not checked for another root"));
        return;
    }
    let out = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if v == "yes" {
                findings.push(ok("clock", "synchronised by NTP (timedatectl)"));
            } else {
                findings.push(warn(
                    "clock",
                    "timedatectl says the clock is not synchronised; TOTP codes fail once it drifts by 30 s",
                    "Enable time synchronisation: `timedatectl set-ntp true` (or install chrony).",
                ));
            }
        }
        _ => {
            let daemons = [
                "/usr/sbin/chronyd",
                "/usr/sbin/ntpd",
                "/lib/systemd/systemd-timesyncd",
                "/usr/lib/systemd/systemd-timesyncd",
                "/usr/sbin/openntpd",
            ];
            if daemons.iter().any(|d| Path::new(d).exists()) {
                findings.push(ok("clock", "a time synchronisation daemon is installed (timedatectl unavailable to confirm it runs)"));
            } else {
                findings.push(warn(
                    "clock",
                    "no time synchronisation found (no timedatectl, chrony, ntpd or systemd-timesyncd); TOTP codes fail once the clock drifts by 30 s",
                    "Install and enable one: `apt install chrony` (Debian/Ubuntu) or `dnf install chrony`.",
                ));
            }
        }
    }
}
