//! `pam-totp backup-codes`: how many backup codes are left, or (`--regenerate`) a fresh set that
//! replaces the old one at once (the old set's id changes, so its codes stop matching).

use crate::cli::BackupCodesArgs;
use crate::commands::enroll::print_backup_codes;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::backup::BackupSet;
use pam_totp_core::state::State;
use pam_totp_core::store::Replace;
use pam_totp_core::verify;
use serde::Serialize;

#[derive(Serialize)]
struct CodesJson<'a> {
    user: &'a str,
    secret_file: String,
    backup_codes: Vec<&'a str>,
}

#[derive(Serialize)]
struct LeftJson<'a> {
    user: &'a str,
    /// `None` when the caller cannot read the state (not root).
    backup_codes_left: Option<usize>,
    backup_codes_total: usize,
}

/// Runs `backup-codes`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &BackupCodesArgs) -> Result<()> {
    let user = ctx.target(args.user.user.as_deref())?;
    let mut file = ctx.enrolled(&user)?;
    if !args.regenerate {
        let state = ctx.peek_state(&user.name)?.unwrap_or_else(State::new);
        let left = ctx
            .state_visible()
            .then(|| verify::backup_codes_left(&file, &state));
        let total = file.backup.as_ref().map_or(0, |b| b.hashes.len());
        if args.json {
            return output::print_json(&LeftJson {
                user: &user.name,
                backup_codes_left: left,
                backup_codes_total: total,
            })
            .map_err(Error::Io);
        }
        match left {
            Some(left) => println!(
                "{left} of {total} backup codes left for {}.",
                output::safe(&user.name)
            ),
            None => println!(
                "{total} backup codes were issued for {}; which are used is in the state, which \
                 only root reads (sudo pam-totp backup-codes).",
                output::safe(&user.name)
            ),
        }
        println!(
            "Make a new set with `pam-totp backup-codes --regenerate` (the old codes then stop working)."
        );
        return Ok(());
    }
    let (set, codes) =
        BackupSet::generate(usize::from(args.count), ctx.now).map_err(Error::Random)?;
    file.backup = Some(set);
    let written = ctx
        .store
        .save_enrollment(&user, &file, Replace::Yes)
        .map_err(Error::from_save)?;
    if args.json {
        return output::print_json(&CodesJson {
            user: &user.name,
            secret_file: written.to_string(),
            backup_codes: codes.0.iter().map(|c| c.as_str()).collect(),
        })
        .map_err(Error::Io);
    }
    println!(
        "New backup codes for {}; the previous ones no longer work.",
        output::safe(&user.name)
    );
    print_backup_codes(&codes)
}
