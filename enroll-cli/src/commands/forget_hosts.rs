//! `pam-totp forget-hosts [--user NAME]`: remembered hosts (config `remember`) stop skipping the
//! code. A user cannot write the root-owned state, so the forgetting is written into their own
//! secret file (`forget_hosts_before = now`, honoured by the module); root also clears
//! `remembered` from the state under the state lock. Logged to syslog.

use crate::cli::UserArg;
use crate::commands::audit;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::store::Replace;

/// Runs `forget-hosts`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &UserArg) -> Result<()> {
    let user = ctx.target(args.user.as_deref())?;
    let root = context::is_root();
    let loaded = match ctx.store.load_enrollment(&user) {
        Ok(loaded) => loaded,
        // Root can still clear the state, which is what the module reads first.
        Err(e) if root => {
            eprintln!(
                "Note: the secret file cannot be used ({}); it was left as it is and only the \
                 state is cleared.",
                output::safe(&e.to_string())
            );
            None
        }
        Err(e) => return Err(Error::from_load(e)),
    };
    if loaded.is_none() && !root {
        return Err(Error::NotEnrolled {
            user: user.name.clone(),
            path: ctx.secret_path(&user)?,
        });
    }
    let before = loaded.as_ref().map_or(0, |f| f.forget_hosts_before);
    let tag = ctx.store.password_tag(&user.name);
    let remembered = ctx.peek_state(&user.name)?.map_or(0, |s| {
        pam_totp_core::policy::active_remembered(&s, &tag, before, ctx.now).count()
    });
    // The secret file first: it is what an unprivileged user can change, and it also covers
    // hosts remembered between now and the state being cleared.
    let marked = match loaded {
        Some(mut file) => {
            file.forget_hosts_before = ctx.now;
            ctx.store
                .save_enrollment(&user, &file, Replace::Yes)
                .map_err(Error::from_save)?;
            true
        }
        None => false,
    };
    let mut cleared = None;
    if root {
        cleared = Some(ctx.store.forget_hosts(&user.name).map_err(Error::State)?);
    }
    // Only root reads the state: for anyone else the count is unknown.
    let counted = if ctx.state_visible() {
        remembered.to_string()
    } else {
        "unknown".to_string()
    };
    let mut detail = format!("remembered={counted} secret_file_marked={marked}");
    if let Some(n) = cleared {
        detail.push_str(&format!(" state_entries_cleared={n}"));
    }
    audit::log("forget-hosts", &user.name, &detail);
    if !ctx.state_visible() && marked {
        println!(
            "Every host remembered for {} before {} asks for a code again at its next login.",
            output::safe(&user.name),
            output::date(ctx.now)
        );
    } else if remembered == 0 {
        println!(
            "{} had no remembered host; any host remembered before {} will not skip the code.",
            output::safe(&user.name),
            output::date(ctx.now)
        );
    } else {
        println!(
            "Forgot {remembered} remembered host{} of {}: the next login from any host asks for a \
             code again.",
            if remembered == 1 { "" } else { "s" },
            output::safe(&user.name)
        );
    }
    if let Some(n) = cleared.filter(|n| *n > 0) {
        println!(
            "Cleared {n} entr{} from the state of {} in {}.",
            if n == 1 { "y" } else { "ies" },
            output::safe(&user.name),
            output::safe(&ctx.state_place())
        );
    }
    if ctx.config.policy.remember == 0 {
        println!("Note: `remember` is off in the configuration, so no host skips the code anyway.");
    }
    Ok(())
}
