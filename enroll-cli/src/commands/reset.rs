//! `pam-totp reset --user NAME` (root): removes a user's enrollment and state, e.g. after they
//! lost their phone; they can then enroll again. Logged to syslog.

use crate::cli::AdminUserArgs;
use crate::commands::audit;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;

/// Runs `reset`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &AdminUserArgs) -> Result<()> {
    context::require_root("reset")?;
    let user = context::lookup(&args.user)?;
    let path = ctx.secret_path(&user)?;
    // In a directory the state lives in the enrollment entry and goes with it (one that does
    // not parse too: this is the way out of it), so look before removing.
    let state_in_enrollment = ctx.directory()
        && match ctx.store.state(&user.name) {
            Ok(state) => state.is_some_and(|s| !s.is_empty()),
            Err(_) => true,
        };
    let secret_removed = ctx.store.remove_enrollment(&user).map_err(Error::Store)?;
    let state_removed = ctx.store.reset(&user.name).map_err(Error::State)? || state_in_enrollment;
    audit::log(
        "reset",
        &user.name,
        &format!("secret_removed={secret_removed} state_removed={state_removed}"),
    );
    match (secret_removed, state_removed) {
        (false, false) => println!(
            "{} had no enrollment and no state; nothing was removed.",
            output::safe(&user.name)
        ),
        _ => println!(
            "Reset {}: {}{}. They can enroll again with `pam-totp enroll`{}.",
            output::safe(&user.name),
            if secret_removed {
                format!("removed {}", output::safe(&path.to_string()))
            } else {
                "no secret file".to_string()
            },
            if state_removed {
                " and the state (replay, backup-code and lockout records)"
            } else {
                ""
            },
            if ctx.config.nullok {
                ""
            } else {
                "; until then logins that need a code fail"
            }
        ),
    }
    Ok(())
}
