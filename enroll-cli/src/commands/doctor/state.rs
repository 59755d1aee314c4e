//! The state directory: root's, not writable or readable by others.

use super::{Finding, Sys, error, ok, warn};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
/// Checks the state directory.
pub(super) fn check(
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
            format!("{shown} does not exist yet; the module creates it (root, 0700) at the first login"),
        )),
        Ok(m) if !m.is_dir() => findings.push(error(
            "state directory",
            format!("{shown} is not a directory"),
            format!("Remove it and recreate it: rm {shown} && install -d -o root -g root -m 0700 {shown}"),
        )),
        Ok(m) if m.uid() != 0 || m.mode() & 0o022 != 0 => findings.push(error(
            "state directory",
            format!(
                "{shown} is owned by uid {} with mode {:04o}; the module refuses it (others could \
                 forge replay and lockout records)",
                m.uid(),
                m.mode() & 0o7777
            ),
            format!("chown root:root {shown} && chmod 0700 {shown}"),
        )),
        Ok(m) if m.mode() & 0o077 != 0 => findings.push(warn(
            "state directory",
            format!(
                "{shown} has mode {:04o}: others can read when and from where users log in (the \
                 module tightens it to 0700 at the next login)",
                m.mode() & 0o7777
            ),
            format!("chmod 0700 {shown}"),
        )),
        Ok(m) => findings.push(ok(
            "state directory",
            format!("{shown}: root, mode {:04o}", m.mode() & 0o7777),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Level, Tree};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn modes() {
        let t = Tree::new("state", &[]);
        let cfg = pam_totp_core::config::load(&["state_dir=/var/lib/pam-totp"], None).unwrap();
        let dir = t.0.path("/var/lib/pam-totp");
        let mut f = Vec::new();
        check(&t.0, Some(&cfg), &mut f);
        assert_eq!(f[0].level, Level::Ok, "absent: made at the first login");
        std::fs::create_dir_all(&dir).unwrap();
        for (mode, level) in [
            (0o700, Level::Ok),
            (0o755, Level::Warning),
            (0o775, Level::Error),
        ] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let mut f = Vec::new();
            check(&t.0, Some(&cfg), &mut f);
            // Owned by root only when the tests run as root.
            let want = if nix::unistd::Uid::effective().is_root() {
                level
            } else {
                Level::Error
            };
            assert_eq!(f[0].level, want, "{mode:o}: {f:?}");
        }
    }
}
