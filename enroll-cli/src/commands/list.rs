//! `pam-totp list`: the authenticators of an enrollment: name, algorithm, added, last used.

use crate::cli::ListArgs;
use crate::commands::status::authenticators;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::output;

/// Runs `list`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &ListArgs) -> Result<()> {
    let user = ctx.target(args.user.user.as_deref())?;
    let file = ctx.enrolled(&user)?;
    let state = ctx.peek_state(&user.name)?;
    let list = authenticators(&file, state.as_ref());
    if args.json {
        return output::print_json(&list).map_err(Error::Io);
    }
    println!(
        "{:<16} {:<9} {:>6} {:>6}  {:<24} LAST USED",
        "NAME", "ALGORITHM", "DIGITS", "PERIOD", "ADDED"
    );
    for a in &list {
        println!(
            "{:<16} {:<9} {:>6} {:>5}s  {:<24} {}",
            output::safe(&a.name),
            a.algorithm,
            a.digits,
            a.period,
            output::date(a.added),
            a.last_used
                .map(output::date)
                .unwrap_or_else(|| "never".into())
        );
    }
    Ok(())
}
