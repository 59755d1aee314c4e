//! Hardware tokens (issue 14), through the real libpam with `oathtool --hotp` as the code source:
//! codes within the look-ahead window work once each, others are refused, a token that ran ahead
//! is caught up with two consecutive codes, 64 racing logins with one code give one success,
//! the counter survives clients SIGKILLed in the write, google-authenticator `-c` files and
//! pam_oath usersfiles are imported and go on from their next code, and YubiKey-style prefixed
//! output is accepted only from the bound key.

use pam_totp_core::secret_file::SecretFile;
use pam_totp_e2e::harness::{Lcg, Scenario, TempDir, TestUser, cli_path};
use pam_totp_e2e::harness_client::{login_then_kill, race, successes};
use pam_totp_e2e::require_root;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The RFC 4226 test key, in hex, as a token vendor's sheet would list it.
const KEY: &str = "3132333435363738393031323334353637383930";
/// A YubiKey token identifier (modhex).
const TOKEN_ID: &str = "cccjgjgkhcbb";
/// The prompt of the second code of a resynchronisation (pam_totp/src/flow.rs).
const RESYNC_PROMPT: &str = "Token out of step: press its button again and enter the next code: ";

/// The HOTP code of `key_hex` at `counter`, from OATH Toolkit's `oathtool`.
fn oathtool(key_hex: &str, counter: u64, digits: u8) -> String {
    let out = Command::new("oathtool")
        .args([
            "--hotp",
            "-c",
            &counter.to_string(),
            "-d",
            &digits.to_string(),
            key_hex,
        ])
        .output()
        .expect("oathtool (package oathtool) runs");
    assert!(out.status.success(), "oathtool failed: {out:?}");
    let code = String::from_utf8(out.stdout)
        .expect("text")
        .trim()
        .to_string();
    assert_eq!(code.len(), usize::from(digits), "{code}");
    code
}

fn code(counter: u64) -> String {
    oathtool(KEY, counter, 6)
}

/// Runs `pam-totp ARGS --config CONFIG` with `input` on stdin.
fn cli_input(s: &Scenario, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(cli_path())
        .args(args)
        .arg("--config")
        .arg(&s.config.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pam-totp runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("input written");
    child.wait_with_output().expect("pam-totp exits")
}

fn shown(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Enrolls a hardware token with `KEY` at counter 0 (no confirmation), `extra` appended.
fn enroll_token(s: &Scenario, extra: &[&str]) {
    let mut args = vec![
        "enroll",
        "--user",
        &s.user.name,
        "--hotp",
        "--key-hex",
        KEY,
        "--no-confirm",
        "--backup-codes",
        "0",
    ];
    args.extend_from_slice(extra);
    s.cli(&args);
}

fn secret(path: &Path) -> SecretFile {
    SecretFile::parse(&std::fs::read(path).expect("secret file")).expect("parses")
}

fn login(s: &Scenario, answer: &str) -> String {
    s.client()
        .rhost("198.51.100.7")
        .answer(answer)
        .run()
        .result()
        .to_string()
}

fn next_counter(s: &Scenario, name: &str) -> Option<u64> {
    s.state().hotp_next.get(name).copied()
}

#[test]
fn given_hotp_token_then_codes_in_the_window_work_once_and_others_are_refused() {
    require_root!();
    let s = Scenario::new(
        "hotp_window = 5\nhotp_resync_window = 0\nthrottle = false",
        "",
    );
    // Enrolled from the token's key sheet, confirmed with the token's first code (counter 0),
    // which is spent by the confirmation.
    let o = cli_input(
        &s,
        &[
            "enroll",
            "--user",
            &s.user.name,
            "--hotp",
            "--key-file",
            "-",
            "--backup-codes",
            "0",
        ],
        &format!("{KEY}\n{}\n", code(0)),
    );
    assert!(o.status.success(), "{}", shown(&o));
    let path = s.user.home.join(".config/pam-totp/secret.toml");
    let file = secret(&path);
    let hotp = file.authenticators[0]
        .hotp
        .clone()
        .expect("an HOTP authenticator");
    assert_eq!(hotp.counter, 1, "the confirmation code is spent");
    let before = std::fs::read(&path).unwrap();

    assert_eq!(login(&s, &code(0)), "PAM_AUTH_ERR", "spent at enrollment");
    assert_eq!(login(&s, &code(1)), "PAM_SUCCESS");
    assert_eq!(login(&s, &code(1)), "PAM_AUTH_ERR", "each code once");
    // Two presses that never reached a login: still in the look-ahead window (5).
    assert_eq!(login(&s, &code(4)), "PAM_SUCCESS");
    assert_eq!(
        login(&s, &code(2)),
        "PAM_AUTH_ERR",
        "the counter moved past it"
    );
    assert_eq!(next_counter(&s, "default"), Some(5));
    // 5..=9 is the window now; 10 is beyond it (and resynchronisation is off).
    assert_eq!(login(&s, &code(10)), "PAM_AUTH_ERR");
    assert_eq!(
        next_counter(&s, "default"),
        Some(5),
        "a refused code moves nothing"
    );
    assert_eq!(login(&s, &code(9)), "PAM_SUCCESS");
    assert_eq!(login(&s, &code(10)), "PAM_SUCCESS");
    assert_eq!(login(&s, "000000"), "PAM_AUTH_ERR");
    // Logins never rewrite the secret file: the counter lives in the state.
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let status = s.cli(&["status", "--user", &s.user.name]);
    assert!(status.contains("HOTP, next counter 11"), "{status}");
    let list = s.cli(&["list", "--user", &s.user.name]);
    assert!(list.contains("hotp") && list.contains("next 11"), "{list}");
    // Showing the key again (another device in counter mode) starts it where logins left it.
    let qr = s.cli(&["qr", "--user", &s.user.name, "--qr", "none"]);
    assert!(
        qr.contains("&counter=11") || qr.contains("counter 11"),
        "{qr}"
    );
}

#[test]
fn given_wrong_hotp_codes_then_throttled_like_totp() {
    require_root!();
    let s = Scenario::new("throttle_attempts = 2\nthrottle_delay = 60", "");
    enroll_token(&s, &[]);
    assert_eq!(login(&s, "111111"), "PAM_AUTH_ERR");
    assert_eq!(login(&s, "222222"), "PAM_AUTH_ERR");
    let run = s.client().rhost("198.51.100.7").answer(&code(0)).run();
    run.assert_result("PAM_AUTH_ERR");
    assert!(
        run.messages("ERROR")
            .iter()
            .any(|m| m.contains("Too many failed attempts")),
        "{}",
        run.transcript()
    );
    assert_eq!(
        next_counter(&s, "default"),
        None,
        "a throttled code is not spent"
    );
}

#[test]
fn given_token_far_ahead_then_two_consecutive_codes_resynchronise_it() {
    require_root!();
    let s = Scenario::new(
        "hotp_window = 3\nhotp_resync_window = 50\nthrottle = false",
        "",
    );
    enroll_token(&s, &[]);
    // Pressed 20 times away from the server: counter 20 is beyond the look-ahead window.
    let run = s.client().answer(&code(20)).answer(&code(22)).run();
    run.assert_result("PAM_AUTH_ERR");
    let prompts = run.prompts();
    assert_eq!(prompts.len(), 2, "{}", run.transcript());
    assert_eq!(prompts[1].1, RESYNC_PROMPT);
    assert_eq!(
        next_counter(&s, "default"),
        None,
        "not the code that follows: nothing moved"
    );
    let run = s.client().answer(&code(20)).answer(&code(21)).run();
    run.assert_result("PAM_SUCCESS");
    assert_eq!(run.prompts()[1].1, RESYNC_PROMPT);
    assert_eq!(next_counter(&s, "default"), Some(22));
    // In step again: one code, one prompt.
    let run = s.client().answer(&code(22)).run();
    run.assert_result("PAM_SUCCESS");
    assert_eq!(run.prompts().len(), 1);
    assert_eq!(login(&s, &code(21)), "PAM_AUTH_ERR");
    // Beyond the resync window (22 + 50): refused without a second question.
    let run = s.client().answer(&code(80)).run();
    run.assert_result("PAM_AUTH_ERR");
    assert_eq!(run.prompts().len(), 1, "{}", run.transcript());
}

#[test]
fn given_64_logins_with_one_hotp_code_then_exactly_one_succeeds_each_round() {
    require_root!();
    let s = Scenario::new("", "");
    enroll_token(&s, &[]);
    for round in 0..3u64 {
        let results = race(&s.client().rhost("198.51.100.7"), 64, &code(round));
        assert_eq!(
            successes(&results),
            1,
            "round {round}: one HOTP code, several successes or none: {results:?}"
        );
        assert_eq!(next_counter(&s, "default"), Some(round + 1));
        // The losers were counted as failures: clear them so the next round is not throttled.
        s.cli(&["unlock", "--user", &s.user.name]);
    }
    assert_eq!(login(&s, &code(2)), "PAM_AUTH_ERR");
}

#[test]
fn given_clients_killed_during_counter_writes_then_counter_never_goes_back_and_no_code_works_twice()
{
    require_root!();
    let s = Scenario::new("throttle = false\nhotp_window = 10", "");
    enroll_token(&s, &[]);
    let seed = pam_totp_e2e::harness_totp::now();
    println!("seed {seed}");
    let mut rng = Lcg(seed);
    let mut granted: Vec<u64> = Vec::new();
    let mut last_seen = 0u64;
    let (mut killed, mut finished) = (0, 0);
    for i in 0..150 {
        let next = std::fs::metadata(s.state_file())
            .ok()
            .and_then(|_| next_counter(&s, "default"))
            .unwrap_or(0);
        assert!(
            next >= last_seen,
            "the counter went back from {last_seen} to {next}"
        );
        last_seen = next;
        // A code at or a little past the counter, sometimes one already spent.
        let counter = (next + rng.draw() % 3).saturating_sub(u64::from(i % 5 == 0));
        let kill = (i % 4 != 0).then(|| rng.draw() % 2000);
        match login_then_kill(&s.client().rhost("198.51.100.7"), &code(counter), kill) {
            Some(result) => {
                finished += 1;
                if result == "PAM_SUCCESS" {
                    granted.push(counter);
                }
            }
            None => killed += 1,
        }
    }
    println!(
        "{killed} killed, {finished} finished, {} granted",
        granted.len()
    );
    assert!(
        killed >= 30,
        "too few clients were killed mid-way: {killed}"
    );
    assert!(!granted.is_empty());
    let next = next_counter(&s, "default").expect("a counter");
    let mut sorted = granted.clone();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        granted.len(),
        "a code was granted twice: {granted:?}"
    );
    for c in &granted {
        assert!(
            next > *c,
            "granted counter {c} is not recorded (next {next})"
        );
        assert_eq!(
            login(&s, &code(*c)),
            "PAM_AUTH_ERR",
            "counter {c} works twice"
        );
    }
}

/// `google-authenticator -c`: a counter-based file, as the real tool writes it.
fn google_authenticator_hotp(file: &Path) -> bool {
    let run = Command::new("google-authenticator")
        .args([
            "-c", "-f", "-r", "3", "-R", "30", "-w", "5", "-e", "3", "-Q", "none", "-C", "-s",
        ])
        .arg(file)
        .output();
    match run {
        Ok(o) => {
            assert!(o.status.success(), "google-authenticator: {o:?}");
            true
        }
        Err(_) => {
            println!(
                "skipping: google-authenticator (libpam-google-authenticator) is not installed"
            );
            false
        }
    }
}

#[test]
fn given_google_authenticator_counter_file_then_imported_and_next_codes_log_in() {
    require_root!();
    let s = Scenario::new("throttle = false", "");
    let dir = TempDir::new("ga-hotp");
    let ga = dir.join("ga");
    if !google_authenticator_hotp(&ga) {
        return;
    }
    let original = std::fs::read(&ga).unwrap();
    let ga_text = String::from_utf8(original.clone()).unwrap();
    assert!(ga_text.contains("\" HOTP_COUNTER 1"), "{ga_text}");
    let key = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        ga_text.lines().next().unwrap(),
    )
    .expect("base32 key");
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let scratch: Vec<&str> = ga_text
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let out = s.cli(&[
        "import-google-authenticator",
        "--user",
        &s.user.name,
        ga.to_str().unwrap(),
    ]);
    assert!(out.contains("next code accepted is counter 1"), "{out}");
    assert_eq!(std::fs::read(&ga).unwrap(), original, "original untouched");
    // google-authenticator would have accepted counter 1 next: so does pam-totp.
    assert_eq!(login(&s, &oathtool(&hex, 1, 6)), "PAM_SUCCESS");
    assert_eq!(login(&s, &oathtool(&hex, 1, 6)), "PAM_AUTH_ERR");
    assert_eq!(login(&s, &oathtool(&hex, 0, 6)), "PAM_AUTH_ERR");
    assert_eq!(login(&s, &oathtool(&hex, 3, 6)), "PAM_SUCCESS");
    assert_eq!(
        login(&s, scratch[0]),
        "PAM_SUCCESS",
        "scratch codes came along"
    );
    assert_eq!(login(&s, scratch[0]), "PAM_AUTH_ERR");
}

#[test]
fn given_pam_oath_usersfile_then_each_user_imported_once_pins_refused_unless_dropped() {
    require_root!();
    let s = Scenario::new("throttle = false", "");
    let pin_user = TestUser::create();
    let dir = TempDir::new("oath");
    let usersfile = dir.join("users.oath");
    // As pam_oath's documentation shows it: alice used counter 5 last (its code is kept), the
    // second user has a PIN and an 8-digit event token that was never used.
    let used = oathtool(KEY, 5, 6);
    let other_key = "00112233445566778899aabbccddeeff00112233";
    let text = format!(
        "# pam_oath usersfile\n\
         HOTP {u} - {KEY} 5 {used} 2026-11-20T10:00:00L\n\
         HOTP/E/8 {p} 1234 {other_key}\n",
        u = s.user.name,
        p = pin_user.name
    );
    std::fs::write(&usersfile, &text).unwrap();
    let mtime = std::fs::metadata(&usersfile).unwrap().modified().unwrap();
    let path = s.user.home.join(".config/pam-totp/secret.toml");
    let pin_path = pin_user.home.join(".config/pam-totp/secret.toml");
    let users = ["--user", &s.user.name, "--user", &pin_user.name];
    let run = |extra: &[&str]| {
        let mut args = vec!["import-oath", usersfile.to_str().unwrap()];
        args.extend_from_slice(&users);
        args.extend_from_slice(extra);
        cli_input(&s, &args, "")
    };

    let o = run(&["--dry-run"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("would be imported"), "{}", shown(&o));
    assert!(out.contains("PINs are not carried over"), "{out}");
    assert!(
        !path.exists() && !pin_path.exists(),
        "a dry run writes nothing"
    );

    let o = run(&[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a refused user fails the run: {}",
        shown(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(&format!("{}: imported", s.user.name)), "{out}");
    assert!(
        out.contains(&format!("{}: refused: has a PIN", pin_user.name)),
        "{out}"
    );
    assert!(
        !out.contains(KEY) && !out.contains(&used) && !out.contains("1234 "),
        "{out}"
    );
    assert!(path.exists() && !pin_path.exists());
    let imported = std::fs::read(&path).unwrap();

    let o = run(&["--drop-pins"]);
    assert!(o.status.success(), "{}", shown(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains(&format!("{}: unchanged", s.user.name)),
        "{out}"
    );
    assert!(out.contains("PIN was NOT carried over"), "{out}");
    assert_eq!(std::fs::read(&path).unwrap(), imported, "idempotent");
    let pin_file = secret(&pin_path);
    assert_eq!(pin_file.authenticators[0].digits, 8);
    let pin_imported = std::fs::read(&pin_path).unwrap();

    // A third run changes nothing and says so.
    let o = run(&["--drop-pins"]);
    assert!(o.status.success(), "{}", shown(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("0 users imported, 2 unchanged, 0 refused"),
        "{out}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), imported);
    assert_eq!(std::fs::read(&pin_path).unwrap(), pin_imported);
    assert_eq!(
        std::fs::read_to_string(&usersfile).unwrap(),
        text,
        "usersfile untouched"
    );
    assert_eq!(
        std::fs::metadata(&usersfile).unwrap().modified().unwrap(),
        mtime
    );

    // pam_oath accepted counter 5 last: 6 is next.
    assert_eq!(login(&s, &code(5)), "PAM_AUTH_ERR");
    assert_eq!(login(&s, &code(6)), "PAM_SUCCESS");
    assert_eq!(login(&s, &code(6)), "PAM_AUTH_ERR");
    let pin_login = |counter| {
        pam_totp_e2e::harness_client::Client::new(&s.service.name, &pin_user.name)
            .answer(&oathtool(other_key, counter, 8))
            .run()
            .result()
            .to_string()
    };
    assert_eq!(pin_login(0), "PAM_SUCCESS");
    assert_eq!(pin_login(0), "PAM_AUTH_ERR");
}

#[test]
fn given_yubikey_prefixed_codes_then_only_the_bound_key_is_accepted() {
    require_root!();
    let s = Scenario::new("throttle = false", "");
    // No --token-id: learned from the first (prefixed) code at enrollment.
    let o = cli_input(
        &s,
        &[
            "enroll",
            "--user",
            &s.user.name,
            "--hotp",
            "--key-hex",
            KEY,
            "--backup-codes",
            "0",
        ],
        &format!("{TOKEN_ID}{}\n", code(0)),
    );
    assert!(o.status.success(), "{}", shown(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Token identifier cccjgjgkhcbb bound"));
    let path = s.user.home.join(".config/pam-totp/secret.toml");
    let hotp = secret(&path).authenticators[0].hotp.clone().unwrap();
    assert_eq!((hotp.counter, hotp.token_id.as_str()), (1, TOKEN_ID));

    let other_key = format!("vvvvvvcurikv{}", code(1));
    assert_eq!(login(&s, &other_key), "PAM_AUTH_ERR", "another key's id");
    assert_eq!(
        login(&s, &code(1)),
        "PAM_AUTH_ERR",
        "the bound key always sends its id"
    );
    assert_eq!(login(&s, &format!("{TOKEN_ID}{}", code(1))), "PAM_SUCCESS");
    assert_eq!(login(&s, &format!("{TOKEN_ID}{}", code(1))), "PAM_AUTH_ERR");
    assert_eq!(
        login(&s, &format!("{}{}", TOKEN_ID.to_uppercase(), code(2))),
        "PAM_SUCCESS"
    );

    // Bound explicitly at enrollment, 8 digits: the same rules.
    let s = Scenario::new("throttle = false", "");
    enroll_token(&s, &["--digits", "8", "--token-id", "vvcccccccccb"]);
    let code8 = |c| oathtool(KEY, c, 8);
    assert_eq!(
        login(&s, &format!("{TOKEN_ID}{}", code8(0))),
        "PAM_AUTH_ERR"
    );
    assert_eq!(
        login(&s, &format!("vvcccccccccb{}", code8(0))),
        "PAM_SUCCESS"
    );
}

#[test]
fn given_enroll_hotp_for_an_app_then_otpauth_hotp_uri_with_counter_and_its_codes_log_in() {
    require_root!();
    let s = Scenario::new("throttle = false", "");
    let e = s.enroll(&["--hotp", "--counter", "3"]);
    assert!(
        e.otpauth_uri.starts_with("otpauth://hotp/") && e.otpauth_uri.contains("&counter=3"),
        "{}",
        e.otpauth_uri
    );
    assert!(!e.otpauth_uri.contains("period="), "{}", e.otpauth_uri);
    let key = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &e.secret)
        .expect("base32 key");
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        login(&s, &oathtool(&hex, 2, 6)),
        "PAM_AUTH_ERR",
        "before the start"
    );
    assert_eq!(login(&s, &oathtool(&hex, 3, 6)), "PAM_SUCCESS");
    assert_eq!(login(&s, &oathtool(&hex, 3, 6)), "PAM_AUTH_ERR");
    // Backup codes work beside the token, as for TOTP.
    assert_eq!(login(&s, &e.backup_codes[0]), "PAM_SUCCESS");
}
