//! `pam-totp doctor`: checks an installation (the module file, the configuration, the PAM stacks
//! of sshd and common-auth, sshd_config, the state directory, `nullok`, the clock) and prints,
//! for each problem, what is wrong and the exact fix. Read-only; `--root` checks a system image.

use crate::cli::DoctorArgs;
use crate::error::{Error, Result};
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

fn check_pam(sys: &Sys, nullok_config: bool, findings: &mut Vec<Finding>) {
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
    let mut sshd = Vec::new();
    if !pam_stack(sys, "sshd", 0, &mut sshd) {
        findings.push(ok("pam sshd", "/etc/pam.d/sshd does not exist (no sshd)"));
        return;
    }
    let auth: Vec<&PamLine> = sshd.iter().filter(|l| l.kind == "auth").collect();
    let Some(pos) = auth.iter().position(|l| is_totp(l)) else {
        findings.push(error(
            "pam sshd",
            "the PAM stack of sshd does not use pam_totp.so: SSH logins are not asked for a code",
            "Add `auth required pam_totp.so` to /etc/pam.d/sshd right after the line \
             `@include common-auth`.",
        ));
        return;
    };
    let totp = auth[pos];
    let at = format!("{}:{}", totp.file, totp.line);
    let unix_after = auth[pos + 1..]
        .iter()
        .any(|l| l.module.ends_with("pam_unix.so"));
    match totp.control.as_str() {
        "sufficient" if unix_after => findings.push(error(
            "pam sshd",
            format!("{at}: `sufficient` lets a right code alone log in, skipping the password"),
            format!("Change the control to `required` at {at}."),
        )),
        "optional" => findings.push(error(
            "pam sshd",
            format!("{at}: `optional` ignores the result, so a wrong code still logs in"),
            format!("Change the control to `required` at {at}."),
        )),
        _ if unix_after => findings.push(warn(
            "pam sshd",
            format!("{at}: pam_totp.so comes before pam_unix.so, so the code is asked before the password"),
            format!("Move the line at {at} after `@include common-auth`."),
        )),
        _ => findings.push(ok(
            "pam sshd",
            format!("{at}: auth {} pam_totp.so", totp.control),
        )),
    }
    let nullok_args = sshd
        .iter()
        .chain(common.iter())
        .filter(|l| is_totp(l) && l.args.iter().any(|a| a == "nullok"))
        .map(|l| format!("{}:{}", l.file, l.line))
        .collect::<Vec<_>>();
    if nullok_config || !nullok_args.is_empty() {
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
    let reload = "then `systemctl reload ssh` (or sshd)";
    match get("usepam").as_deref() {
        Some("yes") => findings.push(ok("sshd_config", "UsePAM yes")),
        other => findings.push(error(
            "sshd_config",
            format!(
                "UsePAM is {}: sshd does not run the PAM stack at all",
                other.unwrap_or("not set (default no)")
            ),
            format!("Set `UsePAM yes` in /etc/ssh/sshd_config, {reload}."),
        )),
    }
    let kbd =
        get("kbdinteractiveauthentication").or_else(|| get("challengeresponseauthentication"));
    match kbd.as_deref() {
        Some("no") => findings.push(error(
            "sshd_config",
            "KbdInteractiveAuthentication no: sshd cannot ask for the code",
            format!("Set `KbdInteractiveAuthentication yes` in /etc/ssh/sshd_config, {reload}."),
        )),
        _ => findings.push(ok("sshd_config", "KbdInteractiveAuthentication yes")),
    }
    match get("authenticationmethods") {
        None => findings.push(warn(
            "sshd_config",
            "AuthenticationMethods is not set: a public key alone logs in, without a code",
            format!(
                "To require a key and a code, set `AuthenticationMethods publickey,keyboard-interactive` \
                 in /etc/ssh/sshd_config, {reload}."
            ),
        )),
        Some(v) if v == "any" => findings.push(warn(
            "sshd_config",
            "AuthenticationMethods any: a public key alone logs in, without a code",
            format!("Set `AuthenticationMethods publickey,keyboard-interactive`, {reload}."),
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
    check_pam(&sys, config.as_ref().is_some_and(|c| c.nullok), &mut out);
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
        println!("[{tag}] {}: {}", f.check, f.what);
        if !f.fix.is_empty() {
            println!("        fix: {}", f.fix);
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
