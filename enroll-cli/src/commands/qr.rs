//! `pam-totp qr`: shows the QR code and key of an existing authenticator again, to put the same
//! key on another device or a new phone.

use crate::cli::QrArgs;
use crate::commands::enroll::show_key;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::output;

/// Runs `qr`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &QrArgs) -> Result<()> {
    let user = ctx.target(args.user.user.as_deref())?;
    let file = ctx.enrolled(&user)?;
    let auth = match &args.name {
        Some(name) => file.authenticator(name).ok_or_else(|| {
            Error::usage(
                format!("`{}` has no authenticator named `{name}`", user.name),
                format!(
                    "Pick one of: {} (see `pam-totp list`).",
                    file.authenticators
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
        None => &file.authenticators[0],
    };
    println!(
        "Authenticator `{}` of {} (keep this screen private: it shows the key):",
        output::safe(&auth.name),
        output::safe(&user.name)
    );
    show_key(auth, args.qr)
}
