//! `pam-totp import-oath`: converts OATH Toolkit's pam_oath usersfile (`/etc/users.oath`, one
//! line per token: type, user, PIN, hex key, counter, last code, time) into one pam-totp secret
//! file per user, so a site can move from pam_oath without handing out new tokens.
//!
//! The usersfile is only read. pam_oath stores the counter of the last code it accepted (and
//! that code, to refuse it again); a line without a last code has not been used from its
//! counter on. The imported authenticator starts at the first counter pam_oath would still
//! accept. PINs have no equivalent here: a user with one is refused unless `--drop-pins` is
//! given. Importing again is harmless: users whose keys are already there are left as they are.

use crate::cli::ImportOathArgs;
use crate::commands::import_google_authenticator::read_source;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::secret::{self, TotpSecret};
use pam_totp_core::secret_file::{Algorithm, Authenticator, Hotp, MAX_AUTHENTICATORS, SecretFile};
use pam_totp_core::store::{Replace, UserInfo};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Where pam_oath's usersfile usually is.
pub const DEFAULT_USERSFILE: &str = "/etc/users.oath";
/// Largest usersfile read.
const MAX_SIZE: u64 = 16 * 1024 * 1024;

/// Event (counter) or time based, from the type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathKind {
    /// `HOTP`, `HOTP/E`, `HOTP/E/8`.
    Hotp,
    /// `HOTP/T30`, `HOTP/T60/6`: time-based, step in seconds.
    Totp(u64),
}

/// One token line of a usersfile.
#[derive(Debug)]
pub struct OathLine {
    /// Line number (from 1), for messages.
    pub line: usize,
    /// The user name.
    pub user: String,
    /// Counter or time based.
    pub kind: OathKind,
    /// 6 or 8.
    pub digits: u8,
    /// Whether the line has a PIN (anything but `-` in the third field).
    pub pin: bool,
    /// The key.
    pub secret: TotpSecret,
    /// HOTP: the counter of the next code pam_oath would accept.
    pub next_counter: u64,
}

/// A usersfile line that cannot be imported, with the user it belongs to (if it got that far).
#[derive(Debug)]
pub struct BadLine {
    /// Line number.
    pub line: usize,
    /// The user of the line, if the line has one.
    pub user: Option<String>,
    /// What is wrong; never quotes the key or the PIN.
    pub message: String,
}

/// Parses the type field: `HOTP[/E|/Tn][/digits]`.
fn parse_type(field: &str) -> std::result::Result<(OathKind, u8), String> {
    let mut parts = field.split('/');
    if parts.next() != Some("HOTP") {
        return Err("the type is not HOTP, HOTP/E or HOTP/T...".into());
    }
    let mut kind = OathKind::Hotp;
    let mut digits = 6;
    let mut rest: Vec<&str> = parts.collect();
    if let Some(first) = rest.first().copied() {
        if first == "E" {
            rest.remove(0);
        } else if let Some(step) = first.strip_prefix('T') {
            let step: u64 = step
                .parse()
                .ok()
                .filter(|s| (1..=300).contains(s))
                .ok_or("the time step (HOTP/Tn) must be 1 to 300 seconds")?;
            kind = OathKind::Totp(step);
            rest.remove(0);
        }
    }
    match rest.as_slice() {
        [] => {}
        [d] => {
            digits = match *d {
                "6" => 6,
                "8" => 8,
                _ => return Err("only 6 or 8 digits per code can be imported".into()),
            }
        }
        _ => return Err("the type has too many parts".into()),
    }
    Ok((kind, digits))
}

/// Parses the text of a usersfile into its token lines and the lines that cannot be used.
pub fn parse(text: &str) -> (Vec<OathLine>, Vec<BadLine>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let user = fields.get(1).map(|u| u.to_string());
        let mut fail = |message: String| {
            bad.push(BadLine {
                line,
                user: user.clone(),
                message,
            })
        };
        if fields.len() < 4 {
            fail("fewer than four fields (type, user, PIN, key)".into());
            continue;
        }
        let (kind, digits) = match parse_type(fields[0]) {
            Ok(t) => t,
            Err(e) => {
                fail(e);
                continue;
            }
        };
        let key = Zeroizing::new(fields[3].to_string());
        let Some(bytes) = secret::from_hex(&key) else {
            fail("the key is not hex".into());
            continue;
        };
        let secret = match TotpSecret::from_bytes(bytes) {
            Ok(s) => s,
            Err(e) => {
                fail(e.to_string());
                continue;
            }
        };
        let counter = match fields.get(4).map(|c| c.parse::<u64>()) {
            None => 0,
            Some(Ok(c)) if c < pam_totp_core::secret_file::MAX_COUNTER => c,
            Some(_) => {
                fail("the counter is not a number".into());
                continue;
            }
        };
        // pam_oath keeps the counter of the last accepted code, and that code: one past it is
        // the first it would accept again.
        let used = fields.get(5).is_some_and(|otp| !otp.is_empty());
        good.push(OathLine {
            line,
            user: fields[1].to_string(),
            kind,
            digits,
            pin: fields[2] != "-",
            secret,
            next_counter: if used { counter + 1 } else { counter },
        });
    }
    (good, bad)
}

/// What happened to one user.
enum Done {
    Imported(usize),
    CountersMoved,
    Unchanged,
}

/// Runs `import-oath`.
///
/// # Errors
/// Not root, the usersfile cannot be read, or some users were not imported (after the others
/// were).
pub fn run(ctx: &Ctx, args: &ImportOathArgs) -> Result<()> {
    context::require_root("import-oath")?;
    let source = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_USERSFILE));
    // Root's file, read as root.
    let text = read_source(&source, None, MAX_SIZE)?;
    let (lines, bad) = parse(&text);
    let mut users: Vec<String> = Vec::new();
    for name in lines
        .iter()
        .map(|l| &l.user)
        .chain(bad.iter().filter_map(|b| b.user.as_ref()))
    {
        if !users.contains(name) {
            users.push(name.clone());
        }
    }
    for b in bad.iter().filter(|b| b.user.is_none()) {
        println!("line {}: skipped: {}", b.line, b.message);
    }
    let mut refused = 0usize;
    for wanted in &args.user {
        if !users.contains(wanted) {
            println!(
                "{}: refused: not in {}",
                output::safe(wanted),
                source.display()
            );
            refused += 1;
        }
    }
    if !args.user.is_empty() {
        users.retain(|u| args.user.contains(u));
    }
    let issuer = args.issuer.clone().unwrap_or_else(context::host_name);
    context::check_label("issuer", &issuer)?;
    let (mut imported, mut unchanged) = (0usize, 0usize);
    let verb = if args.dry_run { "would be " } else { "" };
    for name in &users {
        let shown = output::safe(name);
        let mine: Vec<&OathLine> = lines.iter().filter(|l| &l.user == name).collect();
        if let Some(b) = bad.iter().find(|b| b.user.as_ref() == Some(name)) {
            println!(
                "{shown}: refused: line {}: {} (nothing imported for this user)",
                b.line, b.message
            );
            refused += 1;
            continue;
        }
        if mine.iter().any(|l| l.pin) && !args.drop_pins {
            println!(
                "{shown}: refused: has a PIN in the usersfile. PINs are not carried over \
                 (pam-totp asks for the code only); re-run with --drop-pins to import without it."
            );
            refused += 1;
            continue;
        }
        if mine.len() > MAX_AUTHENTICATORS {
            println!("{shown}: refused: more than {MAX_AUTHENTICATORS} tokens");
            refused += 1;
            continue;
        }
        let info = match UserInfo::lookup(name) {
            Ok(Some(info)) => info,
            _ => {
                println!("{shown}: refused: no such account on this system");
                refused += 1;
                continue;
            }
        };
        match import_user(ctx, args, &info, &mine, &issuer) {
            Ok(Done::Imported(n)) => {
                imported += 1;
                let pins = if mine.iter().any(|l| l.pin) {
                    " (its PIN was NOT carried over)"
                } else {
                    ""
                };
                println!(
                    "{shown}: {verb}imported: {n} token{} into {}{pins}",
                    if n == 1 { "" } else { "s" },
                    output::safe(&ctx.secret_path(&info)?.to_string())
                );
                for l in &mine {
                    println!("    line {}: {}", l.line, describe(l));
                }
            }
            Ok(Done::CountersMoved) => {
                imported += 1;
                println!(
                    "{shown}: {verb}updated: already imported; the counter moved on in the usersfile"
                );
            }
            Ok(Done::Unchanged) => {
                unchanged += 1;
                println!("{shown}: unchanged: already imported");
            }
            Err(e) => {
                refused += 1;
                println!("{shown}: refused: {e}");
            }
        }
    }
    println!(
        "{imported} user{} {verb}imported, {unchanged} unchanged, {refused} refused; {} was not changed.{}",
        if imported == 1 { "" } else { "s" },
        output::safe(&source.to_string_lossy()),
        if args.dry_run {
            " Dry run: nothing was written."
        } else {
            ""
        }
    );
    if refused > 0 {
        return Err(Error::Import {
            path: source,
            message: format!("{refused} user(s) were not imported"),
            hint: "See the lines above; fix them (or use --drop-pins) and run the import again: \
                   users already imported are left as they are."
                .into(),
        });
    }
    Ok(())
}

fn describe(l: &OathLine) -> String {
    match l.kind {
        OathKind::Hotp => format!("HOTP, {} digits, next counter {}", l.digits, l.next_counter),
        OathKind::Totp(step) => format!("TOTP, {} digits, every {step} s", l.digits),
    }
}

/// Constant-time equality of two keys.
fn same_key(a: &TotpSecret, b: &TotpSecret) -> bool {
    let (a, b) = (a.expose(), b.expose());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn same_token(a: &Authenticator, l: &OathLine) -> bool {
    let kind = match (&a.hotp, l.kind) {
        (Some(_), OathKind::Hotp) => true,
        (None, OathKind::Totp(step)) => a.period == step,
        _ => false,
    };
    kind && a.digits == l.digits && same_key(&a.secret, &l.secret)
}

fn import_user(
    ctx: &Ctx,
    args: &ImportOathArgs,
    info: &UserInfo,
    lines: &[&OathLine],
    issuer: &str,
) -> Result<Done> {
    let existing = ctx.store.load_enrollment(info).map_err(Error::from_load)?;
    if let Some(mut file) = existing {
        let all_there = lines
            .iter()
            .all(|l| file.authenticators.iter().any(|a| same_token(a, l)));
        if all_there {
            // Already imported. If pam_oath went on accepting codes since, move the starting
            // counters on (never back).
            let mut moved = false;
            for l in lines {
                for a in file.authenticators.iter_mut() {
                    if same_token(a, l) {
                        if let Some(h) = a.hotp.as_mut() {
                            if l.next_counter > h.counter {
                                h.counter = l.next_counter;
                                moved = true;
                            }
                        }
                    }
                }
            }
            if !moved {
                return Ok(Done::Unchanged);
            }
            if !args.dry_run {
                ctx.store
                    .save_enrollment(info, &file, Replace::Yes)
                    .map_err(Error::from_save)?;
            }
            return Ok(Done::CountersMoved);
        }
        if !args.force {
            return Err(Error::usage(
                "already enrolled with pam-totp, with other keys",
                "Leave that enrollment, or replace it with --force.",
            ));
        }
    }
    let authenticators = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Authenticator {
            name: if i == 0 {
                "oath".into()
            } else {
                format!("oath-{}", i + 1)
            },
            secret: TotpSecret::from_bytes(l.secret.expose().to_vec())
                .unwrap_or_else(|_| unreachable!("a valid key stays valid")),
            algorithm: Algorithm::Sha1,
            digits: l.digits,
            period: match l.kind {
                OathKind::Totp(step) => step,
                OathKind::Hotp => 30,
            },
            added: ctx.now,
            issuer: issuer.to_string(),
            label: info.name.clone(),
            hotp: (l.kind == OathKind::Hotp).then(|| Hotp {
                counter: l.next_counter,
                token_id: String::new(),
            }),
        })
        .collect::<Vec<_>>();
    let n = authenticators.len();
    let file = SecretFile {
        enrollment_id: secret::random_id(16).map_err(Error::Random)?,
        created: ctx.now,
        authenticators,
        backup: None,
        forget_hosts_before: 0,
    };
    if !args.dry_run {
        let replace = if args.force {
            Replace::Yes
        } else {
            Replace::No
        };
        ctx.store
            .save_enrollment(info, &file, replace)
            .map_err(Error::from_save)?;
    }
    Ok(Done::Imported(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3132333435363738393031323334353637383930";

    #[test]
    fn given_pam_oath_lines_then_kinds_digits_pins_and_counters_read() {
        let text = format!(
            "# a comment\n\nHOTP alice - {KEY}\nHOTP/E/8 bob 1234 {KEY} 5 87654321 2026-01-01T00:00:00L\n\
             HOTP/T30/6 carol - {KEY}\nHOTP/T60 dave - {KEY} 3\nHOTP/E eve - {KEY} 9\n"
        );
        let (lines, bad) = parse(&text);
        assert!(bad.is_empty(), "{bad:?}");
        let got: Vec<(&str, OathKind, u8, bool, u64)> = lines
            .iter()
            .map(|l| (l.user.as_str(), l.kind, l.digits, l.pin, l.next_counter))
            .collect();
        assert_eq!(
            got,
            vec![
                ("alice", OathKind::Hotp, 6, false, 0),
                ("bob", OathKind::Hotp, 8, true, 6),
                ("carol", OathKind::Totp(30), 6, false, 0),
                ("dave", OathKind::Totp(60), 6, false, 3),
                ("eve", OathKind::Hotp, 6, false, 9),
            ]
        );
        assert_eq!(lines[0].secret.expose(), b"12345678901234567890");
    }

    #[test]
    fn given_bad_lines_then_reported_per_user_without_the_key() {
        let text = format!(
            "HOTP/E/7 a - {KEY}\nMOTP b - {KEY}\nHOTP c - zz{KEY}\nHOTP d - 00\nHOTP e -\nHOTP/T0 f - {KEY}\n"
        );
        let (lines, bad) = parse(&text);
        assert!(lines.is_empty());
        let users: Vec<Option<&str>> = bad.iter().map(|b| b.user.as_deref()).collect();
        assert_eq!(
            users,
            vec![
                Some("a"),
                Some("b"),
                Some("c"),
                Some("d"),
                Some("e"),
                Some("f")
            ]
        );
        for b in &bad {
            assert!(!b.message.contains("3132"), "{}", b.message);
        }
    }
}
