//! The PAM stacks of sshd, sudo, login, su and common-auth, read by the core's one pam.d
//! parser: where pam_totp.so stands, with which control, after which password module, and
//! the set-ups and pitfalls of docs/ssh.md.

use super::sshd::{self, SshdAuth};
use super::{Finding, Sys, error, ok, warn};
use pam_totp_core::pamd::{Control, Line};
/// The module lines of `service` (all types, includes expanded), or `None` without a file.
fn stack(sys: &Sys, service: &str) -> Option<Vec<Line>> {
    let dir = sys.path("/etc/pam.d");
    dir.join(service)
        .exists()
        .then(|| pam_totp_core::pamd::stack(&dir, service, None))
}

/// Where a line is, as the system sees it (without `--root`).
fn place(sys: &Sys, l: &Line) -> String {
    let file = l.file.strip_prefix(&sys.root).map_or_else(
        |_| l.file.display().to_string(),
        |p| format!("/{}", p.display()),
    );
    format!("{file}:{}", l.number)
}

fn is_totp(l: &Line) -> bool {
    l.is_module("pam_totp.so")
}

/// The file name of a line's module (`/lib/.../pam_unix.so` -> `pam_unix.so`).
fn module_name(l: &Line) -> &str {
    l.module.rsplit('/').next().unwrap_or(&l.module)
}

/// Modules that check a password (a first factor).
const PASSWORD_MODULES: &[&str] = &[
    "pam_unix.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
    "pam_userdb.so",
    "pam_pwdfile.so",
];

/// Modules that never let a login through on their own in `auth`.
const NEUTRAL_MODULES: &[&str] = &[
    "pam_nologin.so",
    "pam_faildelay.so",
    "pam_env.so",
    "pam_deny.so",
    "pam_warn.so",
    "pam_echo.so",
    "pam_group.so",
    "pam_securetty.so",
    "pam_succeed_if.so",
    "pam_shells.so",
    "pam_faillock.so",
    "pam_tally2.so",
    "pam_cap.so",
    "pam_keyinit.so",
    "pam_gnome_keyring.so",
    "pam_kwallet5.so",
    "pam_mount.so",
];

fn is_password(l: &Line) -> bool {
    PASSWORD_MODULES.contains(&module_name(l))
}

/// Why pam_totp may answer PAM_IGNORE (step aside) for some users, from the configuration and
/// the module line.
fn ignore_reasons(config: Option<&pam_totp_core::config::Config>, totp: &Line) -> Vec<String> {
    use pam_totp_core::policy::{ExemptResult, Publickey, Require};
    let mut out = Vec::new();
    let arg = |k: &str| {
        totp.args
            .iter()
            .any(|a| a == k || a.starts_with(&format!("{k}=")))
    };
    if arg("nullok") || config.is_some_and(|c| c.nullok) {
        out.push("unenrolled users (nullok)".to_string());
    }
    if arg("enroll_deadline") || config.is_some_and(|c| c.policy.enroll_deadline.is_some()) {
        out.push("unenrolled users before enroll_deadline".to_string());
    }
    let exempt_success = totp.args.iter().any(|a| a == "exempt_result=success")
        || (config.is_some_and(|c| c.policy.exempt_result == ExemptResult::Success)
            && !totp.args.iter().any(|a| a == "exempt_result=ignore"));
    if !exempt_success {
        let exemptions = ["exempt_users", "exempt_groups", "exempt_networks"]
            .iter()
            .any(|k| arg(k))
            || arg("require")
            || arg("publickey")
            || config.is_some_and(|c| {
                !c.policy.exempt_users.is_empty()
                    || !c.policy.exempt_groups.is_empty()
                    || !c.policy.exempt_networks.is_empty()
                    || matches!(c.policy.require, Require::Groups(_))
                    || c.policy.publickey == Publickey::Skip
            });
        if exemptions {
            out.push("exempt users (exempt_*, require_groups, publickey = \"skip\")".to_string());
        }
    }
    out
}

/// Checks the auth stack of one service that should (sshd) or may (sudo, login, su) ask for a
/// code, recognising the shipped set-ups and their known pitfalls (docs/ssh.md).
fn check_service(
    sys: &Sys,
    service: &'static str,
    config: Option<&pam_totp_core::config::Config>,
    findings: &mut Vec<Finding>,
) -> Vec<Line> {
    let check: &'static str = match service {
        "sshd" => "pam sshd",
        "sudo" => "pam sudo",
        "login" => "pam login",
        _ => "pam su",
    };
    let file = format!("/etc/pam.d/{service}");
    let Some(stack) = stack(sys, service) else {
        if service == "sshd" {
            findings.push(ok(check, "/etc/pam.d/sshd does not exist (no sshd)"));
        }
        return Vec::new();
    };
    let auth: Vec<&Line> = stack.iter().filter(|l| l.kind == "auth").collect();
    let Some(pos) = auth.iter().position(|l| is_totp(l)) else {
        if service == "sshd" {
            findings.push(error(
                check,
                "the PAM stack of sshd does not use pam_totp.so: SSH logins are not asked for a code",
                "Add `auth required pam_totp.so` to /etc/pam.d/sshd (copy-ready: \
                 config/pam.d/sshd-publickey.example or sshd-password.example).",
            ));
        }
        return stack;
    };
    let totp = auth[pos];
    let at = place(sys, totp);
    let enroll_at_login = totp.args.iter().any(|a| a == "enroll_at_login")
        || config.is_some_and(|c| c.policy.enroll_at_login);
    let account: Vec<&Line> = stack
        .iter()
        .filter(|l| l.kind == "account" && is_totp(l))
        .collect();
    if enroll_at_login && account.is_empty() {
        findings.push(error(
            check,
            format!(
                "enroll_at_login is on but {file} has no `account ... pam_totp.so` line: \
                 the module refuses unenrolled users' logins (enrollment runs in the account phase)"
            ),
            format!("Add `account required pam_totp.so` to {file}, after the other account lines."),
        ));
    } else if enroll_at_login && !account.iter().any(|l| l.control.fails_stack()) {
        let line = place(sys, account[0]);
        findings.push(error(
            check,
            format!(
                "{line}: `account {} pam_totp.so` does not fail the login when enrollment is \
                 aborted, so an unenrolled user would pass without enrolling; the module refuses \
                 such stacks",
                account[0].control
            ),
            format!("Change the control at {line} to `required`."),
        ));
    }
    let before = &auth[..pos];
    let after = &auth[pos + 1..];
    let password_before = before.iter().any(|l| is_password(l));
    let password_after = after.iter().any(|l| is_password(l));
    let forward = totp.args.iter().any(|a| a == "forward_pass");
    match totp.control {
        Control::Sufficient if password_after => {
            findings.push(error(
                check,
                format!("{at}: `sufficient` lets a right code alone log in, skipping the password"),
                format!("Change the control to `required` at {at}."),
            ));
            return stack;
        }
        Control::Optional => {
            findings.push(error(
                check,
                format!("{at}: `optional` ignores the result, so a wrong code still logs in"),
                format!("Change the control to `required` at {at}."),
            ));
            return stack;
        }
        _ => {}
    }
    let line = format!("{at}: auth {} pam_totp.so", totp.control);
    if forward {
        let checks = after.iter().any(|l| {
            is_password(l)
                && l.args
                    .iter()
                    .any(|a| a == "use_first_pass" || a == "try_first_pass")
        });
        if checks {
            findings.push(ok(
                check,
                format!("{line}: password and code in one prompt (forward_pass, then the password module with use_first_pass)"),
            ));
        } else {
            findings.push(error(
                check,
                format!("{at}: `forward_pass` hands the password on, but no password module with `use_first_pass` follows: the password part is never checked"),
                format!("Add `auth required pam_unix.so use_first_pass` right after {at}."),
            ));
        }
    } else if password_before {
        findings.push(ok(check, format!("{line}: password, then code")));
        // A requisite line before the code question ends the stack at a wrong password.
        if service == "sshd" {
            let stops: Vec<String> = before
                .iter()
                .filter(|l| {
                    l.control == Control::Requisite
                        && !matches!(
                            module_name(l),
                            "pam_nologin.so" | "pam_faildelay.so" | "pam_env.so" | "pam_shells.so"
                        )
                })
                .map(|l| format!("{} ({})", place(sys, l), module_name(l)))
                .collect();
            if !stops.is_empty() {
                findings.push(warn(
                    check,
                    format!(
                        "`requisite` before pam_totp.so at {}: a wrong password ends the login \
                         before the code question, which tells the client the password was wrong",
                        stops.join(", ")
                    ),
                    format!(
                        "Check the password with `auth required pam_unix.so` instead (as in \
                         config/pam.d/sshd-password.example), so both answers are asked and \
                         refused alike; keep the code line at {at} after it."
                    ),
                ));
            }
        }
    } else if password_after {
        findings.push(warn(
            check,
            format!("{at}: pam_totp.so comes before pam_unix.so, so the code is asked before the password"),
            format!("Move the line at {at} after the password check (e.g. `@include common-auth`)."),
        ));
    } else if service == "sshd" {
        match sshd::auth(sys) {
            SshdAuth::KeyDemanded => findings.push(ok(
                check,
                format!("{line}: key + code (sshd checks the key, PAM asks for the code)"),
            )),
            SshdAuth::Unknown => findings.push(warn(
                check,
                format!("{line}: no password is checked in PAM, and no sshd_config says sshd demands a key"),
                "Set `AuthenticationMethods publickey,keyboard-interactive` in \
                 /etc/ssh/sshd_config.d/pam-totp.conf, or check the password in PAM first.",
            )),
            SshdAuth::KeyNotDemanded(why) => findings.push(error(
                check,
                format!(
                    "{at}: the PAM stack checks no password and sshd does not demand a key ({why}): \
                     keyboard-interactive alone logs in with the code alone{}",
                    if after.iter().any(|l| module_name(l) == "pam_permit.so") {
                        ", and users pam_totp steps aside for (nullok, exemptions) with nothing at all"
                    } else {
                        ""
                    }
                ),
                "Set `AuthenticationMethods publickey,keyboard-interactive` in \
                 /etc/ssh/sshd_config.d/pam-totp.conf (as in \
                 config/sshd_config.d/pam-totp-publickey.conf.example), or check the password \
                 first (config/pam.d/sshd-password.example).",
            )),
        }
    } else {
        findings.push(error(
            check,
            format!("{at}: no password module comes before pam_totp.so in {file}: the code alone logs in"),
            format!("Put the password check (`@include common-auth`) before the line at {at}."),
        ));
    }
    // The only module that can let a login through, and it may step aside: those users fail.
    let others = auth
        .iter()
        .filter(|l| !is_totp(l) && !NEUTRAL_MODULES.contains(&module_name(l)))
        .count();
    let reasons = ignore_reasons(config, totp);
    if others == 0 && !reasons.is_empty() {
        findings.push(warn(
            check,
            format!(
                "pam_totp.so is the only module in the auth stack of {service} that can let a login \
                 through, and it steps aside (PAM_IGNORE) for {}: a stack where every module steps \
                 aside fails, so those users are refused",
                reasons.join(" and ")
            ),
            if service == "sshd" {
                format!(
                    "Add `auth required pam_permit.so` right after {at} (safe only with \
                     `AuthenticationMethods publickey,keyboard-interactive`, as in \
                     config/pam.d/sshd-publickey.example), or set `exempt_result = \"success\"` \
                     for exemptions."
                )
            } else {
                format!("Put the password check (`@include common-auth`) before {at}.")
            },
        ));
    }
    stack
}

/// Checks common-auth and the stacks of sshd, sudo, login and su, and `nullok`.
pub(super) fn check(
    sys: &Sys,
    config: Option<&pam_totp_core::config::Config>,
    findings: &mut Vec<Finding>,
) {
    let common = stack(sys, "common-auth").unwrap_or_default();
    if common.iter().any(|l| l.kind == "auth" && is_totp(l)) {
        findings.push(warn(
            "pam common-auth",
            "pam_totp.so is in /etc/pam.d/common-auth, so every service that includes it \
             (login, su, sudo, cron, screensavers...) asks for a code",
            "If that is not intended, remove the line from common-auth and add \
             `auth required pam_totp.so` to the services that need it (e.g. /etc/pam.d/sshd).",
        ));
    }
    let mut lines = common;
    for service in ["sshd", "sudo", "login", "su"] {
        lines.extend(check_service(sys, service, config, findings));
    }
    let mut nullok_args = lines
        .iter()
        .filter(|l| is_totp(l) && l.args.iter().any(|a| a == "nullok"))
        .map(|l| place(sys, l))
        .collect::<Vec<_>>();
    nullok_args.sort();
    nullok_args.dedup();
    if config.is_some_and(|c| c.nullok) || !nullok_args.is_empty() {
        let place = if nullok_args.is_empty() {
            "the configuration file".to_string()
        } else {
            nullok_args.join(", ")
        };
        findings.push(warn(
            "nullok",
            format!(
                "`nullok` is in use ({place}): users without an enrollment log in without a code"
            ),
            "Fine while users enroll; then check `pam-totp status --all` and remove `nullok` \
             from the PAM line or set `nullok = false` in the configuration.",
        ));
    } else {
        findings.push(ok(
            "nullok",
            "`nullok` is not in use: every user needs a code",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Level, Tree};
    use super::*;

    const KEY_CODE: &str = "auth required pam_totp.so\nauth required pam_permit.so\n";

    #[test]
    fn enroll_at_login_needs_an_account_line_that_fails_the_stack() {
        let cfg = pam_totp_core::config::load(&["enroll_at_login"], None).unwrap();
        for (account, expect_error) in [
            ("", true),
            ("account optional pam_totp.so\n", true),
            ("account [success=ok default=ignore] pam_totp.so\n", true),
            ("account required pam_totp.so\n", false),
        ] {
            let sshd = format!("{KEY_CODE}{account}");
            let t = Tree::new(
                "pam-enroll",
                &[
                    ("etc/pam.d/sshd", &sshd),
                    (
                        "etc/ssh/sshd_config",
                        "UsePAM yes\nAuthenticationMethods publickey,keyboard-interactive\n",
                    ),
                ],
            );
            let mut f = Vec::new();
            check(&t.0, Some(&cfg), &mut f);
            let flagged = f
                .iter()
                .any(|f| f.level == Level::Error && f.what.contains("enroll"));
            assert_eq!(flagged, expect_error, "{account:?}: {f:?}");
        }
    }

    #[test]
    fn includes_are_followed_for_every_type_and_lines_named() {
        let t = Tree::new(
            "pam-include",
            &[
                ("etc/pam.d/common-auth", "auth required pam_unix.so\n"),
                (
                    "etc/pam.d/sudo",
                    "@include common-auth\nauth optional pam_totp.so\n",
                ),
            ],
        );
        let mut f = Vec::new();
        check(&t.0, None, &mut f);
        let e = f
            .iter()
            .find(|f| f.check == "pam sudo" && f.level == Level::Error)
            .expect("optional is an error");
        assert!(e.what.starts_with("/etc/pam.d/sudo:2:"), "{}", e.what);
    }
}
