//! `pam-totp doctor`: checks an installation (the module file, the configuration, the PAM stacks
//! of sshd, sudo, login, su and common-auth, sshd_config, the state directory, `nullok`, the
//! clock) and prints, for each problem, what is wrong and the exact fix. It recognises the
//! set-ups shipped in config/ (key + code, password + code, forward_pass, sudo, login) and the
//! pitfalls of docs/ssh.md. Read-only; `--root` checks a system image.

use crate::cli::DoctorArgs;
use crate::error::{Error, Result};
use crate::output;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but weaker or more fragile than it should be.
    Warning,
    /// Broken: logins fail or the second factor is not asked for.
    Error,
}

/// One result of a check.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// Which check.
    pub check: &'static str,
    /// What was found.
    pub what: String,
    /// The exact fix (empty when fine).
    pub fix: String,
}

fn ok(check: &'static str, what: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        check,
        what: what.into(),
        fix: String::new(),
    }
}

fn warn(check: &'static str, what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warning,
        check,
        what: what.into(),
        fix: fix.into(),
    }
}

fn error(check: &'static str, what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Error,
        check,
        what: what.into(),
        fix: fix.into(),
    }
}

/// Paths inside the checked system.
struct Sys {
    root: PathBuf,
}

impl Sys {
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

/// Directories where Linux-PAM implementations load modules from, most specific first.
fn module_dirs() -> Vec<String> {
    let triplet = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "x86" => "i386-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        other => other,
    };
    vec![
        format!("/lib/{triplet}/security"),
        format!("/usr/lib/{triplet}/security"),
        "/lib64/security".into(),
        "/usr/lib64/security".into(),
        "/lib/security".into(),
        "/usr/lib/security".into(),
    ]
}

fn check_module(sys: &Sys) -> Finding {
    let dirs = module_dirs();
    // Where libpam really looks: the directory that holds pam_unix.so.
    let pam_dir = dirs
        .iter()
        .find(|d| sys.path(d).join("pam_unix.so").exists())
        .cloned();
    let found: Vec<&String> = dirs
        .iter()
        .filter(|d| sys.path(d).join("pam_totp.so").exists())
        .collect();
    let Some(pam_dir) = pam_dir else {
        return warn(
            "module",
            "pam_unix.so was not found in any usual module directory, so where libpam loads \
             modules from is unknown",
            format!(
                "Install pam_totp.so beside pam_unix.so (find it: `find / -name pam_unix.so`), \
                 e.g. `install -m 0644 target/release/libpam_totp.so {}/pam_totp.so`.",
                dirs[0]
            ),
        );
    };
    let target = format!("{pam_dir}/pam_totp.so");
    if !found.iter().any(|d| **d == pam_dir) {
        return match found.first() {
            Some(other) => error(
                "module",
                format!("pam_totp.so is in {other}, but libpam loads modules from {pam_dir}"),
                format!("Move it: mv {other}/pam_totp.so {target}"),
            ),
            None => error(
                "module",
                format!("pam_totp.so is not installed (libpam looks in {pam_dir})"),
                format!(
                    "Install it: `sudo make install` in the source tree, or \
                     `install -o root -g root -m 0644 target/release/libpam_totp.so {target}`."
                ),
            ),
        };
    }
    match std::fs::metadata(sys.path(&target)) {
        Ok(m) if m.uid() != 0 || m.mode() & 0o022 != 0 => error(
            "module",
            format!(
                "{target} is owned by uid {} with mode {:04o}: whoever can write it controls \
                 every login",
                m.uid(),
                m.mode() & 0o7777
            ),
            format!("chown root:root {target} && chmod 0644 {target}"),
        ),
        Ok(_) => ok("module", format!("{target} is installed")),
        Err(e) => error(
            "module",
            format!("{target}: {e}"),
            format!("Reinstall it: install -o root -g root -m 0644 libpam_totp.so {target}"),
        ),
    }
}

fn check_config(
    sys: &Sys,
    explicit: Option<&Path>,
) -> (Finding, Option<pam_totp_core::config::Config>) {
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| sys.path(pam_totp_core::config::DEFAULT_CONFIG));
    let given = explicit.is_some() || path.exists();
    let result = pam_totp_core::config::load(&[], given.then_some(path.as_path()));
    match result {
        Ok(c) if given => (ok("config", format!("{} parses", path.display())), Some(c)),
        Ok(c) => (
            ok(
                "config",
                format!("{} is absent: the defaults apply", path.display()),
            ),
            Some(c),
        ),
        Err(e) => {
            let fix = Error::Config(e.clone()).hint();
            (error("config", e.to_string(), fix), None)
        }
    }
}

/// One `auth` line of a PAM stack, after `@include` and `substack`/`include` are expanded.
#[derive(Debug, Clone)]
struct PamLine {
    file: String,
    line: usize,
    kind: String,
    control: String,
    module: String,
    args: Vec<String>,
}

fn pam_stack(sys: &Sys, service: &str, depth: u32, out: &mut Vec<PamLine>) -> bool {
    let file = format!("/etc/pam.d/{service}");
    let Ok(text) = std::fs::read_to_string(sys.path(&file)) else {
        return false;
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(inc) = line.strip_prefix("@include") {
            if depth < 8 {
                pam_stack(sys, inc.trim(), depth + 1, out);
            }
            continue;
        }
        let mut words = Vec::new();
        let mut rest = line.trim_start_matches('-');
        // The control may be a bracketed list with spaces: [success=1 default=ignore].
        while !rest.is_empty() {
            rest = rest.trim_start();
            if rest.starts_with('[') {
                let end = rest.find(']').map_or(rest.len(), |e| e + 1);
                words.push(rest[..end].to_string());
                rest = &rest[end..];
            } else {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                words.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
        if words.len() < 3 {
            continue;
        }
        if words[1] == "include" || words[1] == "substack" {
            if depth < 8 && words[0] == "auth" {
                pam_stack(sys, &words[2], depth + 1, out);
            }
            continue;
        }
        out.push(PamLine {
            file: file.clone(),
            line: i + 1,
            kind: words[0].clone(),
            control: words[1].clone(),
            module: words[2].clone(),
            args: words[3..].to_vec(),
        });
    }
    true
}

fn is_totp(l: &PamLine) -> bool {
    l.module.ends_with("pam_totp.so") || l.module.ends_with("libpam_totp.so")
}

/// The file name of a line's module (`/lib/.../pam_unix.so` -> `pam_unix.so`).
fn module_name(l: &PamLine) -> &str {
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

fn is_password(l: &PamLine) -> bool {
    PASSWORD_MODULES.contains(&module_name(l))
}

/// Why pam_totp may answer PAM_IGNORE (step aside) for some users, from the configuration and
/// the module line.
fn ignore_reasons(config: Option<&pam_totp_core::config::Config>, totp: &PamLine) -> Vec<String> {
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

/// What sshd's AuthenticationMethods demands, for the PAM checks of sshd.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SshdAuth {
    /// No sshd_config: nothing known.
    Unknown,
    /// Every allowed list contains `publickey`.
    KeyDemanded,
    /// Some list lets in without a key (the value shown).
    KeyNotDemanded(String),
}

fn sshd_auth(sys: &Sys) -> SshdAuth {
    let config = sys.path("/etc/ssh/sshd_config");
    if !config.exists() {
        return SshdAuth::Unknown;
    }
    let mut opts = Vec::new();
    sshd_options(sys, &config, 0, &mut opts);
    let value = opts
        .iter()
        .find(|(k, _)| k == "authenticationmethods")
        .map(|(_, v)| v.to_ascii_lowercase());
    match value {
        Some(v)
            if v != "any"
                && v.split_whitespace()
                    .all(|list| list.split(',').any(|m| m == "publickey")) =>
        {
            SshdAuth::KeyDemanded
        }
        Some(v) => SshdAuth::KeyNotDemanded(format!("AuthenticationMethods {v}")),
        None => SshdAuth::KeyNotDemanded("AuthenticationMethods is not set".into()),
    }
}

/// Checks the auth stack of one service that should (sshd) or may (sudo, login, su) ask for a
/// code, recognising the shipped set-ups and their known pitfalls (docs/ssh.md).
fn check_service(
    sys: &Sys,
    service: &'static str,
    config: Option<&pam_totp_core::config::Config>,
    findings: &mut Vec<Finding>,
) -> Vec<PamLine> {
    let check: &'static str = match service {
        "sshd" => "pam sshd",
        "sudo" => "pam sudo",
        "login" => "pam login",
        _ => "pam su",
    };
    let file = format!("/etc/pam.d/{service}");
    let mut stack = Vec::new();
    if !pam_stack(sys, service, 0, &mut stack) {
        if service == "sshd" {
            findings.push(ok(check, "/etc/pam.d/sshd does not exist (no sshd)"));
        }
        return stack;
    }
    let auth: Vec<&PamLine> = stack.iter().filter(|l| l.kind == "auth").collect();
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
    let at = format!("{}:{}", totp.file, totp.line);
    let enroll_at_login = totp.args.iter().any(|a| a == "enroll_at_login")
        || config.is_some_and(|c| c.policy.enroll_at_login);
    if enroll_at_login && !stack.iter().any(|l| l.kind == "account" && is_totp(l)) {
        findings.push(error(
            check,
            format!(
                "enroll_at_login is on but {file} has no `account ... pam_totp.so` line: \
                 the module refuses unenrolled users' logins (enrollment runs in the account phase)"
            ),
            format!("Add `account required pam_totp.so` to {file}, after the other account lines."),
        ));
    }
    let before = &auth[..pos];
    let after = &auth[pos + 1..];
    let password_before = before.iter().any(|l| is_password(l));
    let password_after = after.iter().any(|l| is_password(l));
    let forward = totp.args.iter().any(|a| a == "forward_pass");
    match totp.control.as_str() {
        "sufficient" if password_after => {
            findings.push(error(
                check,
                format!("{at}: `sufficient` lets a right code alone log in, skipping the password"),
                format!("Change the control to `required` at {at}."),
            ));
            return stack;
        }
        "optional" => {
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
                    l.control == "requisite"
                        && !matches!(
                            module_name(l),
                            "pam_nologin.so" | "pam_faildelay.so" | "pam_env.so" | "pam_shells.so"
                        )
                })
                .map(|l| format!("{}:{} ({})", l.file, l.line, module_name(l)))
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
        match sshd_auth(sys) {
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

fn check_pam(
    sys: &Sys,
    config: Option<&pam_totp_core::config::Config>,
    findings: &mut Vec<Finding>,
) {
    let mut common = Vec::new();
    let has_common = pam_stack(sys, "common-auth", 0, &mut common);
    if has_common && common.iter().any(|l| l.kind == "auth" && is_totp(l)) {
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
        .map(|l| format!("{}:{}", l.file, l.line))
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

/// sshd's effective value of a keyword: the first one in the file (and its Includes) before any
/// Match block, as sshd itself does.
fn sshd_options(sys: &Sys, file: &Path, depth: u32, out: &mut Vec<(String, String)>) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let mut parts = line.splitn(2, |c: char| c.is_whitespace() || c == '=');
        let key = parts.next().unwrap_or("").to_ascii_lowercase();
        let value = parts
            .next()
            .unwrap_or("")
            .trim()
            .trim_start_matches('=')
            .trim()
            .to_string();
        if key.is_empty() {
            continue;
        }
        if key == "match" {
            return;
        }
        if key == "include" && depth < 4 {
            for pattern in value.split_whitespace() {
                let pattern = if pattern.starts_with('/') {
                    pattern.to_string()
                } else {
                    format!("/etc/ssh/{pattern}")
                };
                for f in glob(sys, &pattern) {
                    sshd_options(sys, &f, depth + 1, out);
                }
            }
            continue;
        }
        out.push((key, value));
    }
}

/// A minimal glob: `*` in the last path component only (what sshd_config Includes use).
fn glob(sys: &Sys, pattern: &str) -> Vec<PathBuf> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    if !name.contains('*') {
        return vec![sys.path(pattern)];
    }
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    let mut found: Vec<PathBuf> = std::fs::read_dir(sys.path(dir))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len()
                })
                .map(|n| sys.path(dir).join(n))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Where the fixes put sshd settings: the drop-in of docs/ssh.md.
const SSHD_DROP_IN: &str = "/etc/ssh/sshd_config.d/pam-totp.conf";

fn check_sshd(sys: &Sys, findings: &mut Vec<Finding>) {
    let config = sys.path("/etc/ssh/sshd_config");
    if !config.exists() {
        findings.push(ok(
            "sshd_config",
            "/etc/ssh/sshd_config does not exist (no sshd)",
        ));
        return;
    }
    let mut opts = Vec::new();
    sshd_options(sys, &config, 0, &mut opts);
    let get = |k: &str| {
        opts.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    // The fixes name the drop-in docs/ssh.md installs: Debian's sshd_config includes
    // sshd_config.d/*.conf first, and sshd keeps the first value it reads.
    let reload = "then `sshd -t && systemctl reload ssh` (or sshd) before you test";
    match get("usepam").as_deref() {
        Some("yes") => findings.push(ok("sshd_config", "UsePAM yes")),
        other => findings.push(error(
            "sshd_config",
            format!(
                "UsePAM is {}: sshd does not run the PAM stack at all",
                other.unwrap_or("not set (default no)")
            ),
            format!("Set `UsePAM yes` in {SSHD_DROP_IN}, {reload}."),
        )),
    }
    let kbd =
        get("kbdinteractiveauthentication").or_else(|| get("challengeresponseauthentication"));
    match kbd.as_deref() {
        Some("no") => findings.push(error(
            "sshd_config",
            "KbdInteractiveAuthentication no: sshd cannot ask for the code",
            format!(
                "Set `KbdInteractiveAuthentication yes` in {SSHD_DROP_IN} (or remove the `no`), {reload}."
            ),
        )),
        _ => findings.push(ok("sshd_config", "KbdInteractiveAuthentication yes")),
    }
    match get("authenticationmethods") {
        None => findings.push(warn(
            "sshd_config",
            "AuthenticationMethods is not set: a public key alone logs in, without a code",
            format!(
                "To require a key and a code, set `AuthenticationMethods publickey,keyboard-interactive` \
                 in {SSHD_DROP_IN}, {reload}."
            ),
        )),
        Some(v) if v == "any" => findings.push(warn(
            "sshd_config",
            "AuthenticationMethods any: a public key alone logs in, without a code",
            format!(
                "Set `AuthenticationMethods publickey,keyboard-interactive` in {SSHD_DROP_IN}, {reload}."
            ),
        )),
        Some(v) => {
            let weak: Vec<&str> = v
                .split_whitespace()
                .filter(|list| !list.split(',').any(|m| m.starts_with("keyboard-interactive")))
                .collect();
            if weak.is_empty() {
                findings.push(ok(
                    "sshd_config",
                    format!("AuthenticationMethods {v}: every way in passes keyboard-interactive"),
                ));
            } else {
                findings.push(warn(
                    "sshd_config",
                    format!(
                        "AuthenticationMethods {v}: `{}` logs in without keyboard-interactive, so without a code",
                        weak.join(" ")
                    ),
                    format!("Add `,keyboard-interactive` to {}, {reload}.", weak.join(" and ")),
                ));
            }
        }
    }
}

fn check_state_dir(
    sys: &Sys,
    config: Option<&pam_totp_core::config::Config>,
    findings: &mut Vec<Finding>,
) {
    let dir = config.map_or_else(
        || PathBuf::from(pam_totp_core::config::DEFAULT_STATE_DIR),
        |c| c.state_dir.clone(),
    );
    let shown = dir.display().to_string();
    match std::fs::symlink_metadata(sys.path(&shown)) {
        Err(_) => findings.push(ok(
            "state directory",
            format!("{shown} does not exist yet; the module creates it (root, 0755) at the first login"),
        )),
        Ok(m) if !m.is_dir() => findings.push(error(
            "state directory",
            format!("{shown} is not a directory"),
            format!("Remove it and recreate it: rm {shown} && install -d -o root -g root -m 0755 {shown}"),
        )),
        Ok(m) if m.uid() != 0 || m.mode() & 0o022 != 0 => findings.push(error(
            "state directory",
            format!(
                "{shown} is owned by uid {} with mode {:04o}; the module refuses it (others could \
                 forge replay and lockout records)",
                m.uid(),
                m.mode() & 0o7777
            ),
            format!("chown root:root {shown} && chmod 0755 {shown}"),
        )),
        Ok(m) => findings.push(ok(
            "state directory",
            format!("{shown}: root, mode {:04o}", m.mode() & 0o7777),
        )),
    }
}

fn check_clock(sys: &Sys, findings: &mut Vec<Finding>) {
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

/// Runs every check.
pub fn findings(root: &Path, config: Option<&Path>) -> Vec<Finding> {
    let sys = Sys {
        root: root.to_path_buf(),
    };
    let mut out = vec![check_module(&sys)];
    let (finding, config) = check_config(&sys, config);
    out.push(finding);
    check_pam(&sys, config.as_ref(), &mut out);
    check_sshd(&sys, &mut out);
    check_state_dir(&sys, config.as_ref(), &mut out);
    check_clock(&sys, &mut out);
    out
}

/// Runs `doctor`.
///
/// # Errors
/// [`Error::DoctorFindings`] if any check found an error.
pub fn run(config: Option<&Path>, args: &DoctorArgs) -> Result<()> {
    let all = findings(&args.root, config);
    for f in &all {
        let tag = match f.level {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "ERROR",
        };
        // Findings quote paths and lines of files: printed through the one escaping function.
        println!("[{tag}] {}: {}", f.check, output::safe(&f.what));
        if !f.fix.is_empty() {
            println!("        fix: {}", output::safe(&f.fix));
        }
    }
    let errors = all.iter().filter(|f| f.level == Level::Error).count();
    let warnings = all.iter().filter(|f| f.level == Level::Warning).count();
    println!();
    println!("{errors} error(s), {warnings} warning(s).");
    if errors > 0 {
        return Err(Error::DoctorFindings(errors));
    }
    Ok(())
}
