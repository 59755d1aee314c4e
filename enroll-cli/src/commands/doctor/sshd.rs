//! sshd_config: UsePAM, keyboard-interactive and AuthenticationMethods, as sshd reads them.

use super::{Finding, Sys, error, ok, warn};
use std::path::{Path, PathBuf};
/// What sshd's AuthenticationMethods demands, for the PAM checks of sshd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SshdAuth {
    /// No sshd_config: nothing known.
    Unknown,
    /// Every allowed list contains `publickey`.
    KeyDemanded,
    /// Some list lets in without a key (the value shown).
    KeyNotDemanded(String),
}

/// sshd_config as sshd reads it: the global keywords (the first value of a keyword wins, as in
/// sshd), and the Match blocks with what they set. Includes are expanded where they stand, in
/// the global part and inside Match blocks, as sshd does.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SshdConfig {
    /// Keyword (lower case) and value, in the order read.
    pub(super) global: Vec<(String, String)>,
    /// Each Match block: its criteria, and the keywords it sets.
    pub(super) matches: Vec<(String, Vec<(String, String)>)>,
    /// Values `sshd -T` reported, when it could be run on this system.
    pub(super) reported: Option<Vec<(String, String)>>,
}

impl SshdConfig {
    /// Reads `/etc/ssh/sshd_config` of `sys`; `None` if there is none. On the running system
    /// (`--root /`) `sshd -T` is asked too, and its values win.
    pub(super) fn read(sys: &Sys) -> Option<SshdConfig> {
        let main = sys.path("/etc/ssh/sshd_config");
        if !main.exists() {
            return None;
        }
        let mut config = SshdConfig::default();
        config.read_file(sys, &main, 0);
        if sys.root == Path::new("/") {
            config.reported = sshd_t();
        }
        Some(config)
    }

    fn read_file(&mut self, sys: &Sys, file: &Path, depth: u32) {
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
                self.matches.push((value, Vec::new()));
                continue;
            }
            if key == "include" {
                if depth < 8 {
                    for pattern in value.split_whitespace() {
                        let pattern = if pattern.starts_with('/') {
                            pattern.to_string()
                        } else {
                            format!("/etc/ssh/{pattern}")
                        };
                        for f in glob(sys, &pattern) {
                            self.read_file(sys, &f, depth + 1);
                        }
                    }
                }
                continue;
            }
            match self.matches.last_mut() {
                Some((_, block)) => block.push((key, value)),
                None => self.global.push((key, value)),
            }
        }
    }

    /// The value sshd uses for `key` outside Match blocks (lower case): `sshd -T`'s when it was
    /// asked, otherwise the first one read.
    pub(super) fn get(&self, key: &str) -> Option<String> {
        let from = self.reported.as_ref().unwrap_or(&self.global);
        from.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_ascii_lowercase())
    }

    /// Match blocks that set one of `keys`: (criteria, keyword, value).
    pub(super) fn overridden(&self, keys: &[&str]) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (criteria, block) in &self.matches {
            for (k, v) in block {
                if keys.contains(&k.as_str()) {
                    out.push((criteria.clone(), k.clone(), v.clone()));
                }
            }
        }
        out
    }
}

/// `sshd -T`: the effective configuration as sshd computes it (for a connection matching no
/// Match block). `None` when sshd is not there or cannot run it (no host keys, not root).
fn sshd_t() -> Option<Vec<(String, String)>> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let out = std::process::Command::new(sshd)
        .arg("-T")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect(),
    )
}

/// What sshd demands before keyboard-interactive.
pub(super) fn auth(sys: &Sys) -> SshdAuth {
    let Some(config) = SshdConfig::read(sys) else {
        return SshdAuth::Unknown;
    };
    match config.get("authenticationmethods") {
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

/// Checks sshd_config.
pub(super) fn check(sys: &Sys, findings: &mut Vec<Finding>) {
    let Some(config) = SshdConfig::read(sys) else {
        findings.push(ok(
            "sshd_config",
            "/etc/ssh/sshd_config does not exist (no sshd)",
        ));
        return;
    };
    let get = |k: &str| config.get(k);
    let source = if config.reported.is_some() {
        " (as `sshd -T` reports it)"
    } else {
        ""
    };
    // The fixes name the drop-in docs/ssh.md installs: Debian's sshd_config includes
    // sshd_config.d/*.conf first, and sshd keeps the first value it reads.
    let reload = "then `sshd -t && systemctl reload ssh` (or sshd) before you test";
    match get("usepam").as_deref() {
        Some("yes") => findings.push(ok("sshd_config", format!("UsePAM yes{source}"))),
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
        _ => findings.push(ok(
            "sshd_config",
            format!("KbdInteractiveAuthentication yes{source}"),
        )),
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
    // A Match block can undo all of it for some users or addresses.
    for (criteria, key, value) in config.overridden(&[
        "authenticationmethods",
        "kbdinteractiveauthentication",
        "challengeresponseauthentication",
    ]) {
        findings.push(warn(
            "sshd_config",
            format!(
                "`Match {criteria}` sets `{key} {value}`: connections matching it get other rules \
                 than the ones above (check them with `sshd -T -C user=NAME,host=H,addr=A`)"
            ),
            format!(
                "Make sure every list of AuthenticationMethods in that block ends with \
                 keyboard-interactive, or remove the keyword from it, {reload}."
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Level, Tree};
    use super::*;

    #[test]
    fn includes_first_values_and_match_blocks() {
        let t = Tree::new(
            "sshd",
            &[
                (
                    "etc/ssh/sshd_config",
                    "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\nAuthenticationMethods any\nMatch User backup\n    AuthenticationMethods publickey\n",
                ),
                (
                    "etc/ssh/sshd_config.d/pam-totp.conf",
                    "AuthenticationMethods publickey,keyboard-interactive\nKbdInteractiveAuthentication yes\n",
                ),
            ],
        );
        let c = SshdConfig::read(&t.0).unwrap();
        assert_eq!(
            c.get("authenticationmethods").as_deref(),
            Some("publickey,keyboard-interactive"),
            "the drop-in is read first and the first value wins"
        );
        assert_eq!(c.matches.len(), 1);
        assert_eq!(auth(&t.0), SshdAuth::KeyDemanded);
        let mut f = Vec::new();
        check(&t.0, &mut f);
        let levels = Tree::levels(&f);
        assert!(
            levels
                .iter()
                .any(|(l, w)| *l == Level::Warning && w.contains("`Match User backup`")),
            "{levels:?}"
        );
        assert!(levels.iter().all(|(l, _)| *l != Level::Error), "{levels:?}");
    }

    #[test]
    fn missing_pam_and_keyboard_interactive_are_errors() {
        let t = Tree::new(
            "sshd-bad",
            &[("etc/ssh/sshd_config", "KbdInteractiveAuthentication no\n")],
        );
        let mut f = Vec::new();
        check(&t.0, &mut f);
        let errors: Vec<_> = f.iter().filter(|f| f.level == Level::Error).collect();
        assert_eq!(errors.len(), 2, "{f:?}");
        assert!(
            errors[0]
                .fix
                .contains("/etc/ssh/sshd_config.d/pam-totp.conf")
        );
        assert_eq!(
            auth(&t.0),
            SshdAuth::KeyNotDemanded("AuthenticationMethods is not set".into())
        );
    }
}
