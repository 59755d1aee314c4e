//! `pam-totp import-google-authenticator`: converts a google-authenticator-libpam file
//! (`~/.google_authenticator`) into a pam-totp secret file, so a fleet can switch modules without
//! re-enrolling anyone. The original is only read. Its scratch codes become hashed backup codes;
//! a counter-based file (`" HOTP_COUNTER n`, made by `google-authenticator -c`) becomes an HOTP
//! authenticator whose next code is counter `n`, as the old module would have accepted next.

use crate::cli::ImportArgs;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::backup::{self, BackupSet};
use pam_totp_core::secret::{self, TotpSecret};
use pam_totp_core::secret_file::{self, Algorithm, Authenticator, Hotp, SecretFile};
use pam_totp_core::store::{self, ReadRules, Replace, TotpUse, UserInfo};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What a google-authenticator file says.
#[derive(Debug)]
pub struct GaFile {
    /// The shared key.
    pub secret: TotpSecret,
    /// `" STEP_SIZE"`, default 30.
    pub step: u64,
    /// `" WINDOW_SIZE"` (total codes accepted), default 3.
    pub window_size: Option<u32>,
    /// `" RATE_LIMIT n m ..."`: n attempts per m seconds.
    pub rate_limit: Option<(u32, u32)>,
    /// `" DISALLOW_REUSE"` and the steps already used.
    pub disallow_reuse: Option<Vec<u64>>,
    /// Scratch codes (8 digits each), in clear.
    pub scratch: Vec<Zeroizing<String>>,
    /// `" HOTP_COUNTER n"`: counter-based, and `n` is the counter of the next code.
    pub hotp_counter: Option<u64>,
}

fn bad(message: impl Into<String>) -> String {
    message.into()
}

/// Parses the text of a google-authenticator file.
///
/// # Errors
/// Not a TOTP file of that format; the message never quotes the secret.
pub fn parse(text: &str) -> std::result::Result<GaFile, String> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    if first.is_empty() {
        return Err(bad("the first line (the key) is empty"));
    }
    let secret = TotpSecret::from_base32(first).map_err(|e| bad(format!("line 1: {e}")))?;
    let mut ga = GaFile {
        secret,
        step: 30,
        window_size: None,
        rate_limit: None,
        disallow_reuse: None,
        scratch: Vec::new(),
        hotp_counter: None,
    };
    let mut totp = false;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.trim_end_matches('\r');
        if let Some(option) = line.strip_prefix("\" ") {
            let mut words = option.split_whitespace();
            let name = words.next().unwrap_or("");
            let values: Vec<&str> = words.collect();
            let num = |k: usize| -> std::result::Result<u64, String> {
                values
                    .get(k)
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad(format!("line {n}: {name} needs a number")))
            };
            match name {
                "TOTP_AUTH" => totp = true,
                "HOTP_COUNTER" => {
                    let counter = num(0)?;
                    if counter > secret_file::MAX_COUNTER {
                        return Err(bad(format!("line {n}: HOTP_COUNTER is too large")));
                    }
                    ga.hotp_counter = Some(counter);
                }
                "STEP_SIZE" => {
                    ga.step = num(0)?;
                    if !(1..=300).contains(&ga.step) {
                        return Err(bad(format!("line {n}: STEP_SIZE must be 1 to 300")));
                    }
                }
                "WINDOW_SIZE" => ga.window_size = Some(num(0)? as u32),
                "RATE_LIMIT" => ga.rate_limit = Some((num(0)? as u32, num(1)? as u32)),
                "DISALLOW_REUSE" => {
                    ga.disallow_reuse =
                        Some(values.iter().filter_map(|v| v.parse().ok()).collect());
                }
                // State the old module keeps (time skew, grace-period hosts) and unknown options
                // do not carry over.
                _ => {}
            }
        } else if line.len() == 8 && line.bytes().all(|b| b.is_ascii_digit()) {
            ga.scratch.push(Zeroizing::new(line.to_string()));
        } else if !line.trim().is_empty() {
            return Err(bad(format!(
                "line {n} is neither an option (\" NAME ...) nor an 8-digit scratch code"
            )));
        }
    }
    match (totp, ga.hotp_counter.is_some()) {
        (true, true) => {
            return Err(bad(
                "it says both TOTP_AUTH and HOTP_COUNTER; the module would not know which to use",
            ));
        }
        (false, false) => {
            return Err(bad(
                "it says neither TOTP_AUTH (time-based) nor HOTP_COUNTER (counter-based)",
            ));
        }
        _ => {}
    }
    if ga.scratch.len() > backup::MAX_COUNT {
        return Err(bad(format!(
            "it has more than {} scratch codes",
            backup::MAX_COUNT
        )));
    }
    Ok(ga)
}

/// Runs `import-google-authenticator`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &ImportArgs) -> Result<()> {
    let user = ctx.target(args.user.user.as_deref())?;
    let source = args.file.clone().unwrap_or_else(|| default_path(&user));
    // The file in the user's home is read with the user's rights (a user cannot make root read
    // something through it); a file named by root is read as root.
    let text = read_source(&source, args.file.is_none().then_some(&user), 64 * 1024)?;
    let ga = parse(&text).map_err(|message| {
        let hint = if message.contains("HOTP") {
            "Keep google-authenticator for this user, or enroll a new key with `pam-totp enroll` \
             (the phone must scan the new code)."
                .to_string()
        } else {
            format!(
                "Check that {} was written by google-authenticator; the original was not changed.",
                source.display()
            )
        };
        Error::Import {
            path: source.clone(),
            message,
            hint,
        }
    })?;
    let path = ctx.secret_path(&user)?;
    if !args.force && ctx.store.has_enrollment(&user).map_err(Error::Store)? {
        return Err(Error::Exists(path));
    }
    let issuer = args.issuer.clone().unwrap_or_else(context::host_name);
    let label = args.label.clone().unwrap_or_else(|| user.name.clone());
    context::check_label("issuer", &issuer)?;
    context::check_label("label", &label)?;
    let backup = if ga.scratch.is_empty() {
        None
    } else {
        Some(
            BackupSet::from_codes(
                ga.scratch.iter().map(|c| c.as_str()),
                ctx.now,
                backup::DEFAULT_ITERATIONS,
            )
            .map_err(Error::Random)?,
        )
    };
    let file = SecretFile {
        enrollment_id: secret::random_id(16).map_err(Error::Random)?,
        created: ctx.now,
        authenticators: vec![Authenticator {
            name: secret_file::DEFAULT_NAME.into(),
            secret: ga.secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: ga.step,
            added: ctx.now,
            issuer,
            label,
            hotp: ga.hotp_counter.map(|counter| Hotp {
                counter,
                token_id: String::new(),
            }),
        }],
        backup,
        forget_hosts_before: 0,
    };
    let replace = if args.force {
        Replace::Yes
    } else {
        Replace::No
    };
    let written = ctx
        .store
        .save_enrollment(&user, &file, replace)
        .map_err(Error::from_save)?;
    // Steps the old module already accepted must not be accepted again by this one.
    let carried = carry_reuse(ctx, &user, &file, ga.disallow_reuse.as_deref());
    println!(
        "Imported {} for {} into {} ({} scratch code{} as backup codes; {} left unchanged).",
        output::safe(&source.to_string_lossy()),
        output::safe(&user.name),
        output::safe(&written.to_string()),
        ga.scratch.len(),
        if ga.scratch.len() == 1 { "" } else { "s" },
        output::safe(&source.to_string_lossy())
    );
    if let Some(counter) = ga.hotp_counter {
        println!(
            "Counter-based (HOTP): the next code accepted is counter {counter}, then up to {} \
             ahead (`hotp_window`). Logins move the counter on in the state, not in {}.",
            ctx.config.hotp_window,
            output::safe(&written.to_string())
        );
        if let Some(w) = ga.window_size {
            if w != ctx.config.hotp_window {
                println!(
                    "Note: the file accepted {w} codes ahead; pam-totp uses `hotp_window = {}` \
                     from its configuration for every user.",
                    ctx.config.hotp_window
                );
            }
        }
    } else if let Some(w) = ga.window_size {
        let steps = w.saturating_sub(1) / 2;
        if steps != ctx.config.window {
            println!(
                "Note: the file accepted {w} codes (±{steps} steps); pam-totp uses `window = {}` \
                 from its configuration for every user.",
                ctx.config.window
            );
        }
    }
    if let Some((n, m)) = ga.rate_limit {
        println!(
            "Note: the file limited logins to {n} per {m} s; pam-totp throttles by its \
             configuration (throttle_attempts = {}, throttle_delay = {} s).",
            ctx.config.throttle.attempts, ctx.config.throttle.delay
        );
    }
    if ga.disallow_reuse.is_none() && ga.hotp_counter.is_none() {
        println!("Note: pam-totp always refuses a code that was already used.");
    }
    if !carried && ga.disallow_reuse.as_ref().is_some_and(|v| !v.is_empty()) {
        println!(
            "Note: run the import as root to carry over which codes were already used; \
             until the next step a code used with google-authenticator may be used once more."
        );
    }
    Ok(())
}

/// Reads a file to import (at most `max_size` bytes, a regular file, not through a symlink),
/// with `as_user`'s rights if given.
pub(crate) fn read_source(
    path: &Path,
    as_user: Option<&UserInfo>,
    max_size: u64,
) -> Result<Zeroizing<String>> {
    let rules = ReadRules {
        owner: None,
        allowed_perm: 0o7777,
        max_size,
    };
    let bytes = {
        let _as_user = match as_user {
            Some(u) => Some(
                store::FsIdentity::switch_with(u.uid, u.gid, store::Groups::Drop)
                    .map_err(Error::Store)?,
            ),
            None => None,
        };
        store::read_checked(path, &rules)
    };
    let import_err = |message: String, hint: &str| Error::Import {
        path: path.to_path_buf(),
        message,
        hint: hint.to_string(),
    };
    let bytes = match bytes {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(import_err(
                "it does not exist".into(),
                "Give the path of the file as an argument, or check --user.",
            ));
        }
        Err(e) => {
            return Err(import_err(
                e.to_string(),
                "Run the import as the user who owns the file, or as root; it must be a plain file.",
            ));
        }
    };
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| import_err("it is not text".into(), "Check the path of the file."))
}

/// Records the steps google-authenticator already accepted as the last used step of the new
/// enrollment (root only: the state directory belongs to root). Returns whether it did.
fn carry_reuse(ctx: &Ctx, user: &UserInfo, file: &SecretFile, used: Option<&[u64]>) -> bool {
    let Some(max) = used.and_then(|u| u.iter().copied().max()) else {
        return true;
    };
    if !context::is_root() {
        return false;
    }
    let done = ctx.store.consume_totp(
        &user.name,
        &TotpUse {
            enrollment_id: &file.enrollment_id,
            authenticator: secret_file::DEFAULT_NAME,
            step: max,
            refund: None,
            success: None,
        },
    );
    done.is_ok()
}

/// Where google-authenticator keeps a user's file.
pub fn default_path(user: &UserInfo) -> PathBuf {
    user.home.join(".google_authenticator")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn given_fresh_file_then_all_fields_read() {
        let text = format!(
            "{KEY}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n21549057\n51531121\n"
        );
        let ga = parse(&text).unwrap();
        assert_eq!(ga.secret.expose(), b"12345678901234567890");
        assert_eq!(ga.step, 30);
        assert_eq!(ga.window_size, Some(3));
        assert_eq!(ga.rate_limit, Some((3, 30)));
        assert_eq!(ga.disallow_reuse, Some(vec![]));
        assert_eq!(ga.scratch.len(), 2);
    }

    #[test]
    fn given_used_file_then_state_lines_ignored_and_reuse_steps_kept() {
        let text = format!(
            "{KEY}\n\" LAST1 198.51.100.7 1795358603\n\" RATE_LIMIT 3 30 1795358603\n\" WINDOW_SIZE 3\n\
             \" DISALLOW_REUSE 59845285\n\" TIME_SKEW 1\n\" STEP_SIZE 60\n\" TOTP_AUTH\n51531121\n"
        );
        let ga = parse(&text).unwrap();
        assert_eq!(ga.disallow_reuse, Some(vec![59_845_285]));
        assert_eq!(ga.step, 60);
    }

    #[test]
    fn given_hotp_file_then_counter_read() {
        let hotp =
            format!("{KEY}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 5\n\" HOTP_COUNTER 7\n12345678\n");
        let ga = parse(&hotp).unwrap();
        assert_eq!(ga.hotp_counter, Some(7));
        assert_eq!(ga.window_size, Some(5));
        assert_eq!(ga.scratch.len(), 1);
    }

    #[test]
    fn given_ambiguous_or_garbage_then_refused_without_quoting_the_key() {
        let both = format!("{KEY}\n\" HOTP_COUNTER 1\n\" TOTP_AUTH\n12345678\n");
        let e = parse(&both).unwrap_err();
        assert!(e.contains("HOTP"), "{e}");
        assert!(
            parse(&format!("{KEY}\n12345678\n"))
                .unwrap_err()
                .contains("HOTP")
        );
        let e = parse("NOT-BASE32-1!\n\" TOTP_AUTH\n").unwrap_err();
        assert!(!e.contains("NOT-BASE32"));
        assert!(parse("").is_err());
        assert!(parse(&format!("{KEY}\n\" TOTP_AUTH\nhello\n")).is_err());
    }
}
