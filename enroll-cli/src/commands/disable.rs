//! `pam-totp disable`: removes the caller's own enrollment (or, for root, a named user's) after
//! a typed confirmation. Logged to syslog.

use crate::cli::DisableArgs;
use crate::commands::audit;
use crate::commands::prompt;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::output;

/// Runs `disable`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &DisableArgs) -> Result<()> {
    let user = ctx.target(args.user.user.as_deref())?;
    // Refuse early if there is nothing (usable) to remove; a corrupt file may still be removed.
    let path = ctx.secret_path(&user)?;
    if !ctx.store.has_enrollment(&user).map_err(Error::Store)? {
        return Err(Error::NotEnrolled {
            user: user.name.clone(),
            path,
        });
    }
    if !args.yes {
        eprintln!(
            "This removes the enrollment of {} ({}): the key and all backup codes stop working.",
            output::safe(&user.name),
            output::safe(&path.to_string())
        );
        let answer = prompt("Type `yes` to remove it: ")?.ok_or(Error::Eof("confirmation"))?;
        if answer.trim() != "yes" {
            return Err(Error::Declined);
        }
    }
    let removed = ctx.store.remove_enrollment(&user).map_err(Error::Store)?;
    audit::log("disable", &user.name, &format!("secret_removed={removed}"));
    println!("Removed the enrollment of {}.", output::safe(&user.name));
    if !ctx.config.nullok {
        println!(
            "Logins that require pam_totp will now fail for {} until they enroll again \
             (`pam-totp enroll`).",
            output::safe(&user.name)
        );
    }
    Ok(())
}
