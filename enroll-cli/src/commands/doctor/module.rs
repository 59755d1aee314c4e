//! The module file: installed where libpam loads modules from (the directory of pam_unix.so),
//! owned by root and not writable by others.

use super::{Finding, Sys, error, ok, warn};
use std::os::unix::fs::MetadataExt;
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

/// Checks the module file.
pub(super) fn check(sys: &Sys) -> Finding {
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

#[cfg(test)]
mod tests {
    use super::super::{Level, Tree};
    use super::*;

    #[test]
    fn installed_beside_pam_unix_or_not() {
        let dir = module_dirs()[0].clone();
        let unix = format!("{}/pam_unix.so", dir.trim_start_matches('/'));
        let t = Tree::new("module", &[(&unix, "")]);
        let f = check(&t.0);
        assert_eq!(f.level, Level::Error);
        assert!(f.what.contains("not installed"), "{}", f.what);
        let other = "usr/lib/security/pam_totp.so";
        std::fs::create_dir_all(t.0.path("/usr/lib/security")).unwrap();
        std::fs::write(t.0.root.join(other), "").unwrap();
        let f = check(&t.0);
        assert!(f.fix.starts_with("Move it"), "{}", f.fix);
        let none = Tree::new("module-none", &[]);
        assert_eq!(check(&none.0).level, Level::Warning);
    }
}
