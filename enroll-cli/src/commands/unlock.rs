//! `pam-totp unlock --user NAME` (root): clears a rate-limit lockout (failure counters of the
//! user and of every host) under the state lock. Logged to syslog.

use crate::cli::AdminUserArgs;
use crate::commands::audit;
use crate::commands::status::lockouts;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::store::Backend;

/// Runs `unlock`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &AdminUserArgs) -> Result<()> {
    context::require_root("unlock")?;
    let user = context::lookup(&args.user)?;
    if ctx
        .backend
        .peek_state(&user.name)
        .map_err(Error::State)?
        .is_none()
    {
        println!(
            "{} has no state file: there is no lockout to clear.",
            output::safe(&user.name)
        );
        audit::log("unlock", &user.name, "cleared=0");
        return Ok(());
    }
    let lock = ctx.backend.lock_state(&user.name).map_err(Error::State)?;
    let mut state = ctx.backend.load_state(&lock).map_err(Error::State)?;
    let active = lockouts(ctx, &state).len();
    let failures = state.user_failures.count;
    state.user_failures = Default::default();
    state.host_failures.clear();
    ctx.backend
        .save_state(&lock, &state)
        .map_err(Error::State)?;
    drop(lock);
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
