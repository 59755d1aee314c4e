//! `pam-totp doctor`: checks an installation (the module file, the configuration, the PAM stacks
//! of sshd, sudo, login, su and common-auth, sshd_config, the state directory, `nullok`, the
//! clock) and prints, for each problem, what is wrong and the exact fix. It recognises the
//! set-ups shipped in config/ (key + code, password + code, forward_pass, sudo, login) and the
//! pitfalls of docs/ssh.md. Read-only; `--root` checks a system image.
//!
//! Each check owns one concern and lives in its own file, with unit tests on prepared trees:
//! [`module`] (the module file), [`config`], [`pam`] (the PAM stacks, read by the core's one
//! pam.d parser), [`sshd`] (sshd_config with its Includes and Match blocks, and `sshd -T`),
//! [`state`] (the state directory), [`directory`] (each LDAP server, tried) and [`clock`].

mod clock;
mod config;
mod directory;
mod module;
mod pam;
mod sshd;
mod state;

use crate::cli::DoctorArgs;
use crate::error::{Error, Result};
use crate::output;
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

pub(crate) fn ok(check: &'static str, what: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        check,
        what: what.into(),
        fix: String::new(),
    }
}

pub(crate) fn warn(
    check: &'static str,
    what: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        level: Level::Warning,
        check,
        what: what.into(),
        fix: fix.into(),
    }
}

pub(crate) fn error(
    check: &'static str,
    what: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        level: Level::Error,
        check,
        what: what.into(),
        fix: fix.into(),
    }
}

/// Paths inside the checked system.
pub(crate) struct Sys {
    pub(crate) root: PathBuf,
}

impl Sys {
    pub(crate) fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

/// Runs every check.
pub fn findings(root: &Path, config: Option<&Path>) -> Vec<Finding> {
    let sys = Sys {
        root: root.to_path_buf(),
    };
    let mut out = vec![module::check(&sys)];
    let (finding, config) = config::check(&sys, config);
    out.push(finding);
    pam::check(&sys, config.as_ref(), &mut out);
    sshd::check(&sys, &mut out);
    state::check(&sys, config.as_ref(), &mut out);
    directory::check(&sys, config.as_ref(), &mut out);
    clock::check(&sys, &mut out);
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

/// A prepared system tree for the checks' unit tests, removed on drop.
#[cfg(test)]
pub(crate) struct Tree(pub(crate) Sys);

#[cfg(test)]
impl Tree {
    /// A tree holding `files` (paths relative to its root).
    pub(crate) fn new(tag: &str, files: &[(&str, &str)]) -> Tree {
        let root =
            std::env::temp_dir().join(format!("pam-totp-doctor-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        Tree(Sys { root })
    }

    /// The findings of one check, as `(level, what)`.
    pub(crate) fn levels(findings: &[Finding]) -> Vec<(Level, String)> {
        findings.iter().map(|f| (f.level, f.what.clone())).collect()
    }
}

#[cfg(test)]
impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0.root);
    }
}
