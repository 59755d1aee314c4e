//! `pam-totp enroll`: a new key for a user (or, with `--add`, a further device). Interactive by
//! default: the QR code and key are shown, a code from the app is asked for, and the secret file
//! is written only once that code verifies. `--json` writes at once and prints the key.

use crate::cli::{AlgorithmArg, EnrollArgs, NewKeyArgs, QrStyle};
use crate::commands::prompt;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use crate::qr;
use pam_totp_core::backup::{BackupSet, NewCodes};
use pam_totp_core::secret::{self, TotpSecret};
use pam_totp_core::secret_file::{self, Algorithm, Authenticator, Hotp, SecretFile};
use pam_totp_core::state::State;
use pam_totp_core::store::{Location, Replace, UserInfo};
use pam_totp_core::verify::{self, Verdict, Windows};
use serde::Serialize;
use zeroize::Zeroizing;

/// How many codes the user may type before the enrollment is abandoned.
const TRIES: u32 = 3;

/// What `enroll --json` prints.
#[derive(Serialize)]
struct EnrollJson<'a> {
    user: &'a str,
    secret_file: String,
    secret: &'a str,
    otpauth_uri: &'a str,
    backup_codes: Vec<&'a str>,
}

/// What `enroll --add NAME --json` prints.
#[derive(Serialize)]
struct AddJson<'a> {
    user: &'a str,
    secret_file: String,
    name: &'a str,
    secret: &'a str,
    otpauth_uri: &'a str,
}

impl AlgorithmArg {
    fn core(self) -> Algorithm {
        match self {
            AlgorithmArg::Sha1 => Algorithm::Sha1,
            AlgorithmArg::Sha256 => Algorithm::Sha256,
            AlgorithmArg::Sha512 => Algorithm::Sha512,
        }
    }
}

/// The key of a hardware token programmed elsewhere (`--key-hex`, `--key-file`), if given.
/// Root only: it is how an administrator hands out tokens.
fn token_key(key: &NewKeyArgs) -> Result<Option<TotpSecret>> {
    let hex: Zeroizing<String> = match (&key.key_hex, &key.key_file) {
        (Some(hex), _) => {
            context::require_root("enroll --key-hex")?;
            Zeroizing::new(hex.clone())
        }
        (None, Some(path)) => {
            context::require_root("enroll --key-file")?;
            let bytes = if path.as_os_str() == "-" {
                // One line: the code that confirms the token may follow on standard input.
                let mut line = Zeroizing::new(String::new());
                std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
                    .map_err(Error::Io)?;
                Zeroizing::new(line.as_bytes().to_vec())
            } else {
                let rules = pam_totp_core::store::ReadRules {
                    owner: None,
                    allowed_perm: 0o7777,
                    max_size: 4096,
                };
                pam_totp_core::store::read_checked(path, &rules)
                    .map_err(Error::Store)?
                    .ok_or_else(|| {
                        Error::usage(
                            format!("{} does not exist", path.display()),
                            "Give the file that holds the token's key in hex.",
                        )
                    })?
            };
            Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned())
        }
        (None, None) => return Ok(None),
    };
    let cleaned: Zeroizing<String> =
        Zeroizing::new(hex.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let bytes = secret::from_hex(&cleaned).ok_or_else(|| {
        Error::usage(
            "the token key is not hex (an even number of 0-9, a-f)",
            "Give the key as the token's programming tool printed it, e.g. 3132333435...",
        )
    })?;
    TotpSecret::from_bytes(bytes).map(Some).map_err(|e| {
        Error::usage(
            format!("the token key cannot be used: {e}"),
            "Check the key.",
        )
    })
}

/// The HOTP part of a new authenticator from the options, `None` without `--hotp`.
fn new_hotp(key: &NewKeyArgs) -> Result<Option<Hotp>> {
    if !key.hotp {
        return Ok(None);
    }
    let token_id = key
        .token_id
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !token_id.is_empty() && !secret_file::valid_token_id(&token_id) {
        return Err(Error::usage(
            "--token-id is not a YubiKey token identifier",
            "Give the 12 modhex characters (cbdefghijklnrtuv) the key prints before each code, \
             or leave --token-id out to learn it from the first code.",
        ));
    }
    Ok(Some(Hotp {
        counter: key.counter.unwrap_or(0),
        token_id,
    }))
}

/// Makes a new authenticator with a fresh 160-bit key (or, for a hardware token, its key).
///
/// # Errors
/// A bad issuer or label, a bad token key, or the random source failed.
pub fn new_authenticator(
    name: &str,
    key: &NewKeyArgs,
    user: &UserInfo,
    now: u64,
) -> Result<Authenticator> {
    let issuer = key.issuer.clone().unwrap_or_else(context::host_name);
    let label = key.label.clone().unwrap_or_else(|| user.name.clone());
    context::check_label("issuer", &issuer)?;
    context::check_label("label", &label)?;
    let secret = match token_key(key)? {
        Some(secret) => secret,
        None => TotpSecret::generate(secret::NEW_SECRET_BYTES).map_err(Error::Random)?,
    };
    Ok(Authenticator {
        name: name.to_string(),
        secret,
        algorithm: key.algorithm.core(),
        digits: key.digits,
        period: key.period,
        added: now,
        issuer,
        label,
        hotp: new_hotp(key)?,
    })
}

/// A copy of an authenticator (the key is not `Clone` on purpose; this is the one copy made).
pub fn copy_authenticator(a: &Authenticator) -> Authenticator {
    Authenticator {
        name: a.name.clone(),
        secret: TotpSecret::from_bytes(a.secret.expose().to_vec())
            .unwrap_or_else(|_| unreachable!("a valid key stays valid")),
        algorithm: a.algorithm,
        digits: a.digits,
        period: a.period,
        added: a.added,
        issuer: a.issuer.clone(),
        label: a.label.clone(),
        hotp: a.hotp.clone(),
    }
}

/// Runs `enroll`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &mut Ctx, args: &EnrollArgs) -> Result<()> {
    if let Some(path) = &args.secret_file {
        ctx.override_secret_file(path)?;
    }
    let user = ctx.target(args.user.user.as_deref())?;
    match &args.add {
        Some(name) => add(ctx, args, &user, name),
        None => enroll(ctx, args, &user),
    }
}

fn enroll(ctx: &Ctx, args: &EnrollArgs, user: &UserInfo) -> Result<()> {
    let path = ctx.secret_path(user)?;
    let replace = if args.force {
        Replace::Yes
    } else {
        Replace::No
    };
    // Refuse early, before a key is shown; the write itself refuses atomically as well.
    if !args.force && ctx.store.has_enrollment(user).map_err(Error::Store)? {
        return Err(Error::Exists(path));
    }
    let mut auth = new_authenticator(secret_file::DEFAULT_NAME, &args.key, user, ctx.now)?;
    if !args.json {
        show_and_confirm(ctx, args, &mut auth, user, &path)?;
        eprintln!("Making {} backup codes...", args.backup_codes);
    }
    let count = usize::from(args.backup_codes);
    let (backup, codes) = if count > 0 {
        let (set, codes) = BackupSet::generate(count, ctx.now).map_err(Error::Random)?;
        (Some(set), codes)
    } else {
        (None, NewCodes(Vec::new()))
    };
    let file = SecretFile {
        enrollment_id: secret::random_id(16).map_err(Error::Random)?,
        created: ctx.now,
        authenticators: vec![auth],
        backup,
        forget_hosts_before: 0,
    };
    let written = ctx
        .store
        .save_enrollment(user, &file, replace)
        .map_err(Error::from_save)?;
    let auth = &file.authenticators[0];
    if args.json {
        let key = auth.secret.to_base32();
        let uri = auth.otpauth_uri();
        return output::print_json(&EnrollJson {
            user: &user.name,
            secret_file: written.to_string(),
            secret: &key,
            otpauth_uri: &uri,
            backup_codes: codes.0.iter().map(|c| c.as_str()).collect(),
        })
        .map_err(Error::Io);
    }
    println!();
    println!(
        "Enrolled: {} (secret file {}).",
        output::safe(&user.name),
        output::safe(&written.to_string())
    );
    if codes.0.is_empty() {
        println!("No backup codes were made; make some with `pam-totp backup-codes --regenerate`.");
    } else {
        print_backup_codes(&codes)?;
    }
    Ok(())
}

fn add(ctx: &Ctx, args: &EnrollArgs, user: &UserInfo, name: &str) -> Result<()> {
    if !secret_file::valid_name(name) {
        return Err(Error::usage(
            format!("`{name}` cannot name an authenticator"),
            "Use 1 to 32 letters, digits, '.', '_' or '-', e.g. --add tablet.",
        ));
    }
    let mut file = ctx.enrolled(user)?;
    if file.authenticator(name).is_some() {
        return Err(Error::usage(
            format!(
                "`{}` already has an authenticator named `{name}`",
                user.name
            ),
            format!(
                "Choose another name, or revoke the old one first with `pam-totp remove {name}`."
            ),
        ));
    }
    if file.authenticators.len() >= secret_file::MAX_AUTHENTICATORS {
        return Err(Error::usage(
            format!(
                "an enrollment holds at most {} authenticators",
                secret_file::MAX_AUTHENTICATORS
            ),
            "Revoke one you no longer use with `pam-totp remove NAME` (see `pam-totp list`).",
        ));
    }
    let mut key = args.key.clone();
    if key.issuer.is_none() {
        key.issuer = Some(file.authenticators[0].issuer.clone()).filter(|i| !i.is_empty());
    }
    let mut auth = new_authenticator(name, &key, user, ctx.now)?;
    let path = ctx.secret_path(user)?;
    if !args.json {
        show_and_confirm(ctx, args, &mut auth, user, &path)?;
    }
    file.authenticators.push(auth);
    let written = ctx
        .store
        .save_enrollment(user, &file, Replace::Yes)
        .map_err(Error::from_save)?;
    let auth = file.authenticators.last().unwrap_or_else(|| unreachable!());
    if args.json {
        let key = auth.secret.to_base32();
        let uri = auth.otpauth_uri();
        return output::print_json(&AddJson {
            user: &user.name,
            secret_file: written.to_string(),
            name,
            secret: &key,
            otpauth_uri: &uri,
        })
        .map_err(Error::Io);
    }
    println!();
    println!(
        "Added `{name}` to {}'s enrollment ({} authenticators now; the backup codes are unchanged).",
        output::safe(&user.name),
        file.authenticators.len()
    );
    Ok(())
}

/// Shows the new key (not for a hardware token: it holds the key already) and, unless
/// `--no-confirm`, asks for a first code.
fn show_and_confirm(
    ctx: &Ctx,
    args: &EnrollArgs,
    auth: &mut Authenticator,
    user: &UserInfo,
    path: &Location,
) -> Result<()> {
    let hardware = args.key.key_hex.is_some() || args.key.key_file.is_some();
    if hardware {
        println!(
            "Hardware token for {}: {}-bit key, {} digits, {}, next counter {}.",
            output::safe(&user.name),
            auth.secret.bits(),
            auth.digits,
            auth.algorithm.as_str(),
            auth.hotp.as_ref().map_or(0, |h| h.counter)
        );
        println!(
            "The key will be saved in {}.",
            output::safe(&path.to_string())
        );
    } else {
        show_new_key(auth, args.qr, user, path)?;
    }
    if args.no_confirm {
        return Ok(());
    }
    if auth.hotp.is_some() {
        confirm_hotp(auth, ctx.config.hotp_window, hardware)
    } else {
        confirm(auth, ctx.now)
    }
}

/// Asks for the token's next code, up to three times. The code is spent: the counter saved is
/// the one after it. A YubiKey's token identifier in front of the code is bound to the
/// authenticator if none was given.
fn confirm_hotp(auth: &mut Authenticator, window: u32, hardware: bool) -> Result<()> {
    let probe = SecretFile {
        enrollment_id: "confirm".into(),
        created: 0,
        authenticators: vec![copy_authenticator(auth)],
        backup: None,
        forget_hosts_before: 0,
    };
    let windows = Windows {
        hotp: window,
        hotp_resync: 0,
        ..Windows::totp(0)
    };
    let question = if hardware {
        "Press the token's button (or touch the YubiKey) and enter the code: "
    } else {
        "Enter the first code the app shows for this key: "
    };
    for attempt in 1..=TRIES {
        let answer = prompt(question)?.ok_or(Error::Eof("code"))?;
        let left = TRIES - attempt;
        let verdict = verify::verify(answer.as_bytes(), &probe, &State::new(), 0, windows);
        match verdict {
            Verdict::Hotp { counter, .. } => {
                if let Some(h) = auth.hotp.as_mut() {
                    h.counter = counter.saturating_add(1);
                    if h.token_id.is_empty() {
                        let norm = pam_totp_core::backup::normalize(answer.as_bytes());
                        if let Some(id) = norm
                            .as_deref()
                            .and_then(|n| verify::token_id_of(n, auth.digits))
                        {
                            h.token_id = id.to_string();
                            eprintln!(
                                "Token identifier {id} bound: codes from other keys are refused."
                            );
                        }
                    }
                }
                eprintln!("Code accepted.");
                return Ok(());
            }
            _ => eprintln!(
                "That code does not match the key (or the token is more than {window} presses \
                 ahead: give its counter with --counter).{}",
                tries_left(left)
            ),
        }
    }
    Err(Error::CodeNotConfirmed)
}

/// Prints the QR code, the key in groups of four and what the app will show.
///
/// # Errors
/// The URI does not fit in a QR code (it always does for valid input).
pub fn show_new_key(
    auth: &Authenticator,
    style: QrStyle,
    user: &UserInfo,
    path: &Location,
) -> Result<()> {
    println!(
        "{} ({} for {}):",
        if style == QrStyle::None {
            "Add this key to your authenticator app"
        } else {
            "Scan this QR code with your authenticator app"
        },
        if auth.name == secret_file::DEFAULT_NAME {
            "a new key".to_string()
        } else {
            format!("device `{}`", output::safe(&auth.name))
        },
        output::safe(&user.name)
    );
    show_key(auth, style)?;
    println!(
        "The key will be saved in {}.",
        output::safe(&path.to_string())
    );
    Ok(())
}

/// Prints the QR code and the key of `auth` with its parameters.
///
/// # Errors
/// The URI does not fit in a QR code.
pub fn show_key(auth: &Authenticator, style: QrStyle) -> Result<()> {
    let uri = auth.otpauth_uri();
    let drawn = qr::render(&uri, style).map_err(|e| {
        Error::usage(
            format!("cannot draw the QR code: {e}"),
            "Use a shorter --issuer or --label, or --qr=none and type the key in by hand.",
        )
    })?;
    output::print_secret(&drawn).map_err(Error::Io)?;
    let key = auth.secret.to_base32();
    let grouped = qr::grouped_key(&key);
    const BY_HAND: &str = "\nOr type the key in by hand:  ";
    let mut line = Zeroizing::new(String::with_capacity(BY_HAND.len() + grouped.len() + 1));
    line.push_str(BY_HAND);
    line.push_str(&grouped);
    line.push('\n');
    output::print_secret(&line).map_err(Error::Io)?;
    println!("  Issuer:  {}", output::safe(&auth.issuer));
    println!("  Account: {}", output::safe(&auth.label));
    match &auth.hotp {
        Some(h) => println!(
            "  Type: counter-based (HOTP), {}, {} digits, counter {}",
            auth.algorithm.as_str(),
            auth.digits,
            h.counter
        ),
        None => println!(
            "  Type: time-based, {}, {} digits, every {} s",
            auth.algorithm.as_str(),
            auth.digits,
            auth.period
        ),
    }
    if auth.algorithm != Algorithm::Sha1 {
        println!(
            "Warning: some apps (Google Authenticator among them) silently ignore {} and use \
             SHA1; their codes will then be refused. Check a code before relying on it.",
            auth.algorithm.as_str()
        );
    }
    if auth.digits != 6 || (auth.hotp.is_none() && auth.period != 30) {
        println!("Note: not every app supports codes other than 6 digits every 30 s.");
    }
    println!();
    Ok(())
}

/// Asks for a current code from the app, up to three times.
fn confirm(auth: &Authenticator, now: u64) -> Result<()> {
    let probe = SecretFile {
        enrollment_id: "confirm".into(),
        created: now,
        authenticators: vec![copy_authenticator(auth)],
        backup: None,
        forget_hosts_before: 0,
    };
    let state = State::new();
    for attempt in 1..=TRIES {
        let answer = prompt(&format!(
            "Enter the {}-digit code the app shows now: ",
            auth.digits
        ))?
        .ok_or(Error::Eof("code"))?;
        let typed: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
        let left = TRIES - attempt;
        if typed.is_empty() || !typed.bytes().all(|b| b.is_ascii_digit()) {
            eprintln!(
                "That is not a code: type the {} digits the app shows.{}",
                auth.digits,
                tries_left(left)
            );
            continue;
        }
        if typed.len() != usize::from(auth.digits) {
            eprintln!(
                "The code has {} digits, not {}.{}",
                auth.digits,
                typed.len(),
                tries_left(left)
            );
            continue;
        }
        // Checked at the time of typing, with one step either side for a slow typist.
        let now = pam_totp_core::Clock::now(&pam_totp_core::SystemClock);
        match verify::verify(typed.as_bytes(), &probe, &state, now, Windows::totp(1)) {
            Verdict::Totp { .. } => {
                eprintln!("Code accepted.");
                return Ok(());
            }
            _ => eprintln!(
                "That code does not match. Check that you scanned the code above and that the \
                 phone's clock is right.{}",
                tries_left(left)
            ),
        }
    }
    Err(Error::CodeNotConfirmed)
}

fn tries_left(left: u32) -> String {
    match left {
        0 => String::new(),
        1 => " One try left.".into(),
        n => format!(" {n} tries left."),
    }
}

/// Prints new backup codes with the warning to keep them.
///
/// # Errors
/// Writing to stdout failed.
pub fn print_backup_codes(codes: &NewCodes) -> Result<()> {
    println!();
    println!("Backup codes (each works once, instead of a code from the app):");
    // The codes are secrets: one buffer, sized once, zeroized, past stdout's line buffer.
    let size: usize = codes.0.iter().map(|c| c.len() + 5).sum();
    let mut text = Zeroizing::new(String::with_capacity(size + codes.0.len() + 1));
    for pair in codes.0.chunks(2) {
        for code in pair {
            text.push_str("    ");
            text.push_str(code.as_str());
        }
        text.push('\n');
    }
    text.push('\n');
    output::print_secret(&text).map_err(Error::Io)?;
    println!(
        "Store these codes somewhere safe now (a password manager, or on paper). They are not \
         shown again: only their hashes are kept. Without them, losing the phone locks you out."
    );
    Ok(())
}
