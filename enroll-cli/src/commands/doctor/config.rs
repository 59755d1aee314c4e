//! The configuration file: read exactly as the module reads it.

use super::{Finding, Sys, error, ok};
use crate::error::Error;
use std::path::Path;
/// Loads the configuration as the module would.
pub(super) fn check(
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
