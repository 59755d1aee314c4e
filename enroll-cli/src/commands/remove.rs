//! `pam-totp remove NAME`: revokes one authenticator (a lost phone); the others and the backup
//! codes keep working. Logged to syslog.

use crate::cli::RemoveArgs;
use crate::commands::audit;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::store::Replace;

/// Runs `remove`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &RemoveArgs) -> Result<()> {
    let user = ctx.target(args.user.user.as_deref())?;
    let mut file = ctx.enrolled(&user)?;
    let names: Vec<String> = file.authenticators.iter().map(|a| a.name.clone()).collect();
    let Some(index) = names.iter().position(|n| *n == args.name) else {
        return Err(Error::usage(
            format!("`{}` has no authenticator named `{}`", user.name, args.name),
            format!("Pick one of: {} (see `pam-totp list`).", names.join(", ")),
        ));
    };
    if file.authenticators.len() == 1 {
        return Err(Error::usage(
            format!(
                "`{}` is the only authenticator of `{}`",
                args.name, user.name
            ),
            "Add the new device first (`pam-totp enroll --add NAME`), or remove the whole \
             enrollment with `pam-totp disable`.",
        ));
    }
    file.authenticators.remove(index);
    ctx.store
        .save_enrollment(&user, &file, Replace::Yes)
        .map_err(Error::from_save)?;
    audit::log(
        "remove",
        &user.name,
        &format!(
            "authenticator={} remaining={}",
            args.name,
            file.authenticators.len()
        ),
    );
    println!(
        "Removed `{}`: its codes no longer work. Remaining: {}.",
        output::safe(&args.name),
        file.authenticators
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
