//! A look at the service's own PAM configuration, for the one setting that is unsafe without a
//! matching line: `enroll_at_login` enrolls in the account phase, so the stack must run
//! `account ... pam_totp.so`; without it an unenrolled user would pass without enrolling. The
//! module checks and fails closed instead. Follows `@include`, `include` and `substack` a few
//! levels deep, as Linux-PAM does.

use std::path::Path;

/// Where Linux-PAM reads service files.
pub const PAM_D: &str = "/etc/pam.d";
/// How deep includes are followed.
const MAX_DEPTH: usize = 4;

/// Whether `/etc/pam.d/<service>` (or what it includes) has a `facility` line using a module
/// whose name contains `module`. Service names are lower-cased, as Linux-PAM does.
pub fn has_module(dir: &Path, service: &str, facility: &str, module: &str) -> bool {
    let service = service.to_ascii_lowercase();
    if service.is_empty() || service.contains('/') {
        return false;
    }
    scan(dir, &service, facility, module, 0)
}

fn scan(dir: &Path, file: &str, facility: &str, module: &str, depth: usize) -> bool {
    if depth > MAX_DEPTH || file.contains('/') {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
        return false;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if first == "@include" {
            if words
                .next()
                .is_some_and(|f| scan(dir, f, facility, module, depth + 1))
            {
                return true;
            }
            continue;
        }
        if first.trim_start_matches('-') != facility {
            continue;
        }
        // The control is one word or a bracketed list; then the module (or include/substack).
        let mut rest = line[first.len()..].trim_start();
        if rest.starts_with('[') {
            rest = rest.find(']').map_or("", |i| &rest[i + 1..]);
            rest = rest.trim_start();
        } else {
            let control = rest.split_whitespace().next().unwrap_or("");
            rest = rest[control.len()..].trim_start();
            if control == "include" || control == "substack" {
                if rest
                    .split_whitespace()
                    .next()
                    .is_some_and(|f| scan(dir, f, facility, module, depth + 1))
                {
                    return true;
                }
                continue;
            }
        }
        if rest
            .split_whitespace()
            .next()
            .is_some_and(|m| m.contains(module))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_account_lines_through_includes() {
        let dir = std::env::temp_dir().join(format!("pam-totp-stack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("direct"),
            "auth required pam_totp.so\naccount required /x/libpam_totp.so config=/c\n",
        )
        .unwrap();
        std::fs::write(dir.join("authonly"), "auth required pam_totp.so\n# account required pam_totp.so\naccount required pam_unix.so\n").unwrap();
        std::fs::write(
            dir.join("common-account"),
            "account [success=1 default=ignore] pam_totp.so\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("viainclude"),
            "auth required pam_totp.so\n@include common-account\n",
        )
        .unwrap();
        std::fs::write(dir.join("viasubstack"), "account substack common-account\n").unwrap();
        std::fs::write(dir.join("loop"), "@include loop\n").unwrap();
        assert!(has_module(&dir, "direct", "account", "pam_totp"));
        assert!(
            has_module(&dir, "Direct", "account", "pam_totp"),
            "service names are lower-cased"
        );
        assert!(!has_module(&dir, "authonly", "account", "pam_totp"));
        assert!(has_module(&dir, "viainclude", "account", "pam_totp"));
        assert!(has_module(&dir, "viasubstack", "account", "pam_totp"));
        assert!(!has_module(&dir, "loop", "account", "pam_totp"));
        assert!(!has_module(&dir, "missing", "account", "pam_totp"));
        assert!(!has_module(&dir, "../etc/x", "account", "pam_totp"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
