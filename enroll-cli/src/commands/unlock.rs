//! `pam-totp unlock --user NAME` (root): clears a rate-limit lockout (failure counters of the
//! user and of every host) under the state lock. Logged to syslog.

use crate::cli::AdminUserArgs;
use crate::commands::audit;
use crate::commands::status::lockouts;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;

/// Runs `unlock`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &AdminUserArgs) -> Result<()> {
    context::require_root("unlock")?;
    let user = context::lookup(&args.user)?;
    let Some(state) = ctx.store.state(&user.name).map_err(Error::State)? else {
        println!(
            "{} has no state file: there is no lockout to clear.",
            output::safe(&user.name)
        );
        audit::log("unlock", &user.name, "cleared=0");
        return Ok(());
    };
    let active = lockouts(ctx, &state).len();
    let failures = ctx
        .store
        .unlock(&user.name)
        .map_err(Error::State)?
        .user_failures;
    audit::log(
        "unlock",
        &user.name,
        &format!("lockouts={active} failures={failures}"),
    );
    if active == 0 && failures == 0 {
        println!(
            "{} was not locked out; nothing to clear.",
            output::safe(&user.name)
        );
    } else {
        println!(
            "Unlocked {}: cleared {active} lockout{} and {failures} counted failure{}.",
            output::safe(&user.name),
            if active == 1 { "" } else { "s" },
            if failures == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
