//! pam_totp.so through the real libpam: codes of chosen time steps, replay, backup codes, racing
//! logins, nullok, throttling and setcred. Each test enrolls its own user with the real CLI.

use pam_totp_e2e::harness::Scenario;
use pam_totp_e2e::harness_client::{PamRun, wait_run};
use pam_totp_e2e::harness_totp::Enrollment;
use pam_totp_e2e::require_root;
use std::time::Duration;

/// Seconds a step must still have left before a test uses "the current step".
const MARGIN: u64 = 4;

fn enrolled() -> (Scenario, Enrollment) {
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    (s, e)
}

fn login(s: &Scenario, answer: &str) -> PamRun {
    s.client().rhost("198.51.100.7").answer(answer).run()
}

#[test]
fn given_current_code_then_success() {
    require_root!();
    let (s, e) = enrolled();
    let step = e.settled_step(MARGIN);
    let run = login(&s, &e.code_for_step(step));
    run.assert_result("PAM_SUCCESS");
    assert_eq!(
        run.prompts(),
        vec![("PROMPT_ECHO_OFF", "Verification code: ")],
        "{}",
        run.transcript()
    );
}

#[test]
fn given_wrong_code_then_auth_err() {
    require_root!();
    let (s, e) = enrolled();
    let step = e.settled_step(MARGIN);
    login(&s, &e.wrong_code(step)).assert_result("PAM_AUTH_ERR");
    // The refusal was about the code: the right one still works.
    login(&s, &e.code_for_step(step)).assert_result("PAM_SUCCESS");
}

#[test]
fn given_code_from_five_minutes_ago_then_auth_err() {
    require_root!();
    let (s, e) = enrolled();
    let step = e.settled_step(MARGIN);
    let old = e.code_at(step * e.period - 300);
    assert_ne!(
        old,
        e.code_for_step(step),
        "astronomically unlikely collision"
    );
    login(&s, &old).assert_result("PAM_AUTH_ERR");
}

#[test]
fn given_code_of_previous_step_then_success() {
    require_root!();
    let (s, e) = enrolled();
    let step = e.settled_step(MARGIN);
    login(&s, &e.code_for_step(step - 1)).assert_result("PAM_SUCCESS");
}

#[test]
fn given_same_code_twice_then_second_auth_err() {
    require_root!();
    let (s, e) = enrolled();
    let step = e.settled_step(MARGIN);
    let code = e.code_for_step(step);
    login(&s, &code).assert_result("PAM_SUCCESS");
    login(&s, &code).assert_result("PAM_AUTH_ERR");
}

#[test]
fn given_current_code_accepted_then_previous_step_code_auth_err() {
    require_root!();
    let (s, e) = enrolled();
    let step = e.settled_step(MARGIN);
    login(&s, &e.code_for_step(step)).assert_result("PAM_SUCCESS");
    // Not newer than the last accepted step: a replay, although inside the window.
    login(&s, &e.code_for_step(step - 1)).assert_result("PAM_AUTH_ERR");
}

fn count_in(text: &str, n: usize) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|word| word == n.to_string())
}

#[test]
fn given_backup_code_then_success_once_and_info_tells_how_many_left() {
    require_root!();
    let (s, e) = enrolled();
    let total = e.backup_codes.len();
    assert!(total >= 2, "enroll gave {total} backup codes");
    let code = &e.backup_codes[0];
    let run = login(&s, code);
    run.assert_result("PAM_SUCCESS");
    let info = run.messages("INFO");
    assert!(
        info.iter().any(|m| count_in(m, total - 1)),
        "no PAM_TEXT_INFO telling {} codes are left\n{}",
        total - 1,
        run.transcript()
    );
    login(&s, code).assert_result("PAM_AUTH_ERR");
}

/// A `[backup]` table as earlier versions wrote it: PBKDF2 with 50,000 rounds. The hash of
/// `k7m2p9q4rt` was computed independently (Python's `hashlib.pbkdf2_hmac`).
const LEGACY_BACKUP: &str = "[backup]
set_id = \"legacy50k\"
created = 1700000000
kdf = \"pbkdf2-sha256\"
iterations = 50000
salt = \"00112233445566778899aabbccddeeff\"
hashes = [\"b726ead79482df8912c05841f9e2ea8034e75b52e1b1677332182619fcd9f591\"]
";

#[test]
fn given_secret_file_with_legacy_50000_round_backup_hashes_then_its_code_works_once() {
    require_root!();
    let (s, e) = enrolled();
    let text = std::fs::read_to_string(&e.secret_file).unwrap();
    let table: toml::Table = text.parse().unwrap();
    assert_eq!(
        table["backup"]["iterations"].as_integer(),
        Some(1000),
        "a new enrollment should hash its backup codes with 1,000 rounds:\n{text}"
    );
    // Keep the enrollment's key and bookkeeping; swap in the old-scheme set (the last table).
    let start = text
        .find("\n[backup]\n")
        .expect("the secret file has a [backup] table");
    let rewritten = format!("{}\n{LEGACY_BACKUP}", &text[..start]);
    // Truncating the existing file keeps its owner and mode.
    std::fs::write(&e.secret_file, rewritten).unwrap();
    let run = login(&s, "k7m2p-9q4rt");
    run.assert_result("PAM_SUCCESS");
    login(&s, "k7m2p9q4rt").assert_result("PAM_AUTH_ERR");
    // The enrollment's own codes belonged to the replaced set: refused.
    login(&s, &e.backup_codes[0]).assert_result("PAM_AUTH_ERR");
}

#[test]
fn given_backup_code_with_pam_silent_then_success_without_info() {
    require_root!();
    let (s, e) = enrolled();
    let run = s.client().silent().answer(&e.backup_codes[0]).run();
    run.assert_result("PAM_SUCCESS");
    assert!(
        run.messages("INFO").is_empty(),
        "PAM_SILENT but a message was shown\n{}",
        run.transcript()
    );
}

#[test]
fn given_backup_code_in_upper_case_with_spaces_instead_of_dash_then_success() {
    require_root!();
    let (s, e) = enrolled();
    let code = e.backup_codes[1].replace('-', " ").to_uppercase();
    login(&s, &format!(" {code} ")).assert_result("PAM_SUCCESS");
    // The same code without any separator is now used up.
    login(&s, &e.backup_codes[1].replace('-', "")).assert_result("PAM_AUTH_ERR");
}

/// Starts `n` logins with the same answer at once; returns their transcripts.
fn race(s: &Scenario, answer: &str, n: usize) -> Vec<PamRun> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            s.client()
                .rhost(&format!("192.0.2.{}", i + 1))
                .answer(answer)
                .spawn()
        })
        .collect();
    children.into_iter().map(wait_run).collect()
}

fn assert_exactly_one_success(runs: &[PamRun]) {
    let all: Vec<String> = runs.iter().map(PamRun::transcript).collect();
    let winners = runs.iter().filter(|r| r.result() == "PAM_SUCCESS").count();
    assert_eq!(
        winners,
        1,
        "{winners} of {} logins succeeded:\n{}",
        runs.len(),
        all.join("\n")
    );
    for run in runs.iter().filter(|r| r.result() != "PAM_SUCCESS") {
        run.assert_result("PAM_AUTH_ERR");
    }
}

#[test]
fn given_20_concurrent_logins_with_same_backup_code_then_exactly_one_success() {
    require_root!();
    let (s, e) = enrolled();
    let runs = race(&s, &e.backup_codes[0], 20);
    assert_exactly_one_success(&runs);
    let state = s.state_toml();
    assert!(
        state.contains_key("version"),
        "state lacks version: {state:?}"
    );
    // The module itself still reads the state: another backup code works and counts one more
    // code used.
    let total = e.backup_codes.len();
    let run = login(&s, &e.backup_codes[1]);
    run.assert_result("PAM_SUCCESS");
    assert!(
        run.messages("INFO").iter().any(|m| count_in(m, total - 2)),
        "expected {} codes left\n{}",
        total - 2,
        run.transcript()
    );
}

#[test]
fn given_20_concurrent_logins_with_same_totp_code_then_exactly_one_success() {
    require_root!();
    let (s, e) = enrolled();
    // Twenty debug-build logins take a few seconds: leave the step room to finish.
    let step = e.settled_step(15);
    let runs = race(&s, &e.code_for_step(step), 20);
    assert_exactly_one_success(&runs);
    s.state_toml();
    // The state still works for the module: the next step's code is accepted.
    login(&s, &e.code_for_step(step + 1)).assert_result("PAM_SUCCESS");
}

#[test]
fn given_no_secret_file_and_nullok_then_stack_continues_to_success() {
    require_root!();
    let s = Scenario::with_stack(
        "",
        &["auth required {totp} nullok", "auth required pam_permit.so"],
    );
    s.client()
        .answer("123456")
        .run()
        .assert_result("PAM_SUCCESS");
}

#[test]
fn given_no_secret_file_without_nullok_then_auth_err() {
    require_root!();
    let s = Scenario::with_stack("", &["auth required {totp}", "auth required pam_permit.so"]);
    s.client()
        .answer("123456")
        .run()
        .assert_result("PAM_AUTH_ERR");
}

#[test]
fn given_successful_auth_then_setcred_returns_success() {
    require_root!();
    let (s, e) = enrolled();
    let step = e.settled_step(MARGIN);
    let run = s.client().setcred().answer(&e.code_for_step(step)).run();
    run.assert_result("PAM_SUCCESS");
    assert!(
        run.lines.iter().any(|l| l == "SETCRED PAM_SUCCESS 0"),
        "{}",
        run.transcript()
    );
}

/// The N of "try again in N s" in an error message.
fn wait_seconds(message: &str) -> Option<u64> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].trim_end_matches('.') == "s" || w[1].starts_with("second"))
        .and_then(|w| w[0].parse().ok())
}

#[test]
fn given_throttle_limit_reached_then_correct_code_refused_until_delay_passed() {
    require_root!();
    let s = Scenario::new("throttle_attempts = 2\nthrottle_delay = 2", "");
    let e = s.enroll(&[]);
    let host = "203.0.113.5";
    let step = e.settled_step(MARGIN);
    let wrong = e.wrong_code(step);
    for _ in 0..2 {
        s.client()
            .rhost(host)
            .answer(&wrong)
            .run()
            .assert_result("PAM_AUTH_ERR");
    }
    let step = e.settled_step(MARGIN);
    let throttled = s.client().rhost(host).answer(&e.code_for_step(step)).run();
    throttled.assert_result("PAM_AUTH_ERR");
    let errors = throttled.messages("ERROR");
    let message = errors
        .iter()
        .find(|m| m.to_lowercase().contains("try again"))
        .unwrap_or_else(|| panic!("no \"try again\" message\n{}", throttled.transcript()));
    let seconds =
        wait_seconds(message).unwrap_or_else(|| panic!("no number of seconds in {message:?}"));
    assert!(seconds >= 1, "{message:?}");
    // Do what the message says, plus a second.
    std::thread::sleep(Duration::from_secs(seconds + 1));
    let step = e.settled_step(MARGIN);
    let run = s.client().rhost(host).answer(&e.code_for_step(step)).run();
    run.assert_result("PAM_SUCCESS");
}

#[test]
fn given_one_host_throttled_then_other_host_still_accepted() {
    require_root!();
    let s = Scenario::new("throttle_attempts = 2\nthrottle_delay = 600", "");
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    let wrong = e.wrong_code(step);
    for _ in 0..3 {
        s.client()
            .rhost("203.0.113.66")
            .answer(&wrong)
            .run()
            .assert_result("PAM_AUTH_ERR");
    }
    let step = e.settled_step(MARGIN);
    let refused = s
        .client()
        .rhost("203.0.113.66")
        .answer(&e.code_for_step(step))
        .run();
    refused.assert_result("PAM_AUTH_ERR");
    s.client()
        .rhost("198.51.100.20")
        .answer(&e.code_for_step(step))
        .run()
        .assert_result("PAM_SUCCESS");
}

#[test]
fn given_sha512_8_digit_60_second_enrollment_then_its_current_code_accepted() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&["--algorithm", "SHA512", "--digits", "8", "--period", "60"]);
    assert_eq!(
        (e.algorithm.as_str(), e.digits, e.period),
        ("SHA512", 8, 60)
    );
    let step = e.settled_step(MARGIN);
    let code = e.code_for_step(step);
    assert_eq!(code.len(), 8);
    // The 6 digits a SHA1/30 s app would show for the same key are not accepted.
    let sha1 = Enrollment {
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        ..e.clone()
    };
    login(&s, &sha1.code_at(step * e.period)).assert_result("PAM_AUTH_ERR");
    login(&s, &code).assert_result("PAM_SUCCESS");
}

#[test]
fn given_re_enrollment_then_new_codes_work_and_old_backup_codes_do_not() {
    require_root!();
    let (s, old) = enrolled();
    let step = old.settled_step(MARGIN);
    login(&s, &old.code_for_step(step)).assert_result("PAM_SUCCESS");
    login(&s, &old.backup_codes[0]).assert_result("PAM_SUCCESS");
    let new = s.enroll(&["--force"]);
    assert_ne!(new.secret, old.secret);
    login(&s, &old.backup_codes[1]).assert_result("PAM_AUTH_ERR");
    // The state of the old enrollment does not count against the new one: its first backup
    // code works, and the count starts from the full set again.
    let run = login(&s, &new.backup_codes[0]);
    run.assert_result("PAM_SUCCESS");
    let total = new.backup_codes.len();
    assert!(
        run.messages("INFO").iter().any(|m| count_in(m, total - 1)),
        "expected {} codes left\n{}",
        total - 1,
        run.transcript()
    );
    let step = new.settled_step(MARGIN);
    login(&s, &new.code_for_step(step)).assert_result("PAM_SUCCESS");
}

#[test]
fn given_logins_then_secret_file_untouched_and_state_only_in_state_dir() {
    require_root!();
    let (s, e) = enrolled();
    let dir = e.secret_file.parent().unwrap().to_path_buf();
    let listing = |d: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|x| x.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before_bytes = std::fs::read(&e.secret_file).unwrap();
    let before_meta = std::fs::metadata(&e.secret_file).unwrap();
    let before_names = listing(&dir);
    let step = e.settled_step(MARGIN);
    login(&s, &e.wrong_code(step)).assert_result("PAM_AUTH_ERR");
    login(&s, &e.code_for_step(step)).assert_result("PAM_SUCCESS");
    login(&s, &e.backup_codes[0]).assert_result("PAM_SUCCESS");
    use std::os::unix::fs::MetadataExt;
    let after_meta = std::fs::metadata(&e.secret_file).unwrap();
    assert_eq!(std::fs::read(&e.secret_file).unwrap(), before_bytes);
    assert_eq!(
        (before_meta.ino(), before_meta.mode(), before_meta.uid()),
        (after_meta.ino(), after_meta.mode(), after_meta.uid()),
        "a login replaced or re-owned the secret file"
    );
    assert_eq!(
        listing(&dir),
        before_names,
        "a login wrote beside the secret file"
    );
    let state = std::fs::symlink_metadata(s.state_file()).unwrap();
    assert!(state.is_file());
    assert_eq!(state.uid(), 0, "state file not root-owned");
    assert_eq!(
        state.mode() & 0o022,
        0,
        "state file writable by group/others"
    );
    s.state_toml();
}
