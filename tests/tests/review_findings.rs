//! The security review's findings (issue 12), each through the real libpam: a wrong password
//! with a valid code must not remember the host or clear counters; a stranger with 100
//! addresses must not lock the user out of the host they use; enrollment at login needs an
//! account line that can fail the stack; the conversation must not tell enrolled, unenrolled and
//! unknown accounts apart; a try_first_pass guess is counted and logged; a clock that went back
//! is logged once.

use pam_totp_e2e::harness::{Scenario, TestUser, set_password};
use pam_totp_e2e::harness_client::{Client, PamRun, wait_run};
use pam_totp_e2e::harness_syslog::SyslogCapture;
use pam_totp_e2e::harness_totp::Enrollment;
use pam_totp_e2e::require_root;

const HOME: &str = "198.51.100.10";
const MARGIN: u64 = 4;
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// pam_unix (no delay on failure) then pam_totp, both required.
fn password_then_code(config: &str) -> (Scenario, Enrollment) {
    let s = Scenario::with_stack(
        config,
        &[
            "auth required pam_unix.so nodelay",
            "auth required {totp}",
            "account required {totp}",
            "account required pam_permit.so",
        ],
    );
    set_password(&s.user.name, "right-pw-1");
    let e = s.enroll(&[]);
    (s, e)
}

fn host_failures(s: &Scenario, host: &str) -> u32 {
    s.state().host_failures.get(host).map_or(0, |f| f.count)
}

#[test]
fn issue_12_1_given_wrong_password_and_valid_code_then_host_is_not_remembered() {
    require_root!();
    let (s, e) = password_then_code("remember = \"1h\"\n");
    let step = e.settled_step(MARGIN);
    // One earlier failure from the host, which only a success of the whole stack may clear.
    s.client()
        .rhost(HOME)
        .answer("right-pw-1")
        .answer(&e.wrong_code(step))
        .run()
        .assert_result("PAM_AUTH_ERR");
    assert_eq!(host_failures(&s, HOME), 1);
    let log = SyslogCapture::start();
    s.client()
        .rhost(HOME)
        .answer("wrong-pw")
        .answer(&e.code_for_step(step))
        .setcred()
        .run()
        .assert_result("PAM_AUTH_ERR");
    let state = s.state();
    assert!(
        state.remembered.is_empty(),
        "remembered after a wrong password"
    );
    assert_eq!(
        host_failures(&s, HOME),
        1,
        "counter cleared by a failed stack"
    );
    // The next wrong password is asked for a code again and never passes as remembered.
    let run = s
        .client()
        .rhost(HOME)
        .answer("wrong-pw")
        .answer("000000")
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert_eq!(run.prompts().len(), 2, "{}", run.transcript());
    let lines = log.lines_of_user(&s.user.name);
    assert!(
        !lines.iter().any(|l| l.contains("method=remembered")),
        "{lines:#?}"
    );
    // A success of the whole stack (pam_setcred) remembers the host and clears the counter.
    s.client()
        .rhost(HOME)
        .answer("right-pw-1")
        .answer(&e.code_for_step(step + 1))
        .setcred()
        .run()
        .assert_result("PAM_SUCCESS");
    assert_eq!(s.state().remembered.len(), 1);
    assert_eq!(host_failures(&s, HOME), 0);
    let run = s.client().rhost(HOME).answer("right-pw-1").run();
    run.assert_result("PAM_SUCCESS");
    assert_eq!(run.prompts().len(), 1, "remembered: password only");
    // pam_acct_mgmt commits as well (applications that skip pam_setcred).
    let (s, e) = password_then_code("remember = \"1h\"\n");
    s.client()
        .rhost(HOME)
        .answer("right-pw-1")
        .answer(&e.code_for_step(e.settled_step(MARGIN)))
        .acct()
        .run()
        .assert_result("PAM_SUCCESS");
    assert_eq!(s.state().remembered.len(), 1);
}

#[test]
fn issue_12_2_given_100_attacking_addresses_then_the_user_still_logs_in_from_a_trusted_host() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    s.client()
        .rhost(HOME)
        .answer(&e.code_for_step(step))
        .setcred()
        .run()
        .assert_result("PAM_SUCCESS");
    let attackers: Vec<_> = (0..100)
        .map(|i| {
            s.client()
                .rhost(&format!("203.0.113.{}", i + 1))
                .answer(&e.wrong_code(step))
                .spawn()
        })
        .collect();
    for a in attackers {
        wait_run(a);
    }
    let state = s.state();
    assert!(state.user_failures.count >= 30, "{state:?}");
    // An address the user never used is held up by the per-user ceiling...
    let run = s
        .client()
        .rhost("192.0.2.200")
        .answer(&e.code_for_step(step + 1))
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert!(
        run.messages("ERROR")
            .iter()
            .any(|m| m.contains("Too many failed attempts")),
        "{}",
        run.transcript()
    );
    // ...but not the host the user logs in from.
    s.client()
        .rhost(HOME)
        .answer(&e.code_for_step(step + 1))
        .run()
        .assert_result("PAM_SUCCESS");
}

#[test]
fn issue_12_3_given_enroll_at_login_with_an_optional_account_line_then_refused() {
    require_root!();
    for (control, expected) in [
        ("optional", "PAM_SERVICE_ERR"),
        ("sufficient", "PAM_SERVICE_ERR"),
        ("[success=ok default=ignore]", "PAM_SERVICE_ERR"),
        ("required", "PAM_PERM_DENIED"),
        ("[success=ok default=bad]", "PAM_PERM_DENIED"),
    ] {
        let account = format!("account {control} {{totp}}");
        let s = Scenario::with_stack(
            "enroll_at_login = true\n",
            &["auth required {totp}", &account],
        );
        let run = s.client().run();
        assert_eq!(
            run.result(),
            expected,
            "account {control}:\n{}",
            run.transcript()
        );
    }
}

/// The questions of a login, as the client saw them.
fn prompts(run: &PamRun) -> Vec<String> {
    run.prompts()
        .iter()
        .map(|(style, text)| format!("{style} {text}"))
        .collect()
}

#[test]
fn issue_12_4_given_enrolled_unenrolled_unknown_and_throttled_then_the_same_questions() {
    require_root!();
    for (config, args) in [
        ("", ""),
        ("nullok = true\n", ""),
        ("", "forward_pass"),
        ("nullok = true\n", "forward_pass"),
    ] {
        let s = Scenario::new(config, args);
        let e = s.enroll(&[]);
        let unenrolled = TestUser::create();
        let service = &s.service.name;
        let enrolled_run = s.client().answer("000000").run();
        let unenrolled_run = Client::new(service, &unenrolled.name)
            .answer("000000")
            .run();
        let unknown_run = Client::new(service, "nosuchuserptt").answer("000000").run();
        let expected = prompts(&enrolled_run);
        assert_eq!(expected.len(), 1, "{config}{args}: {expected:?}");
        for (who, run) in [("unenrolled", &unenrolled_run), ("unknown", &unknown_run)] {
            assert_eq!(
                prompts(run),
                expected,
                "{config}{args}: {who} is asked otherwise:\n{}",
                run.transcript()
            );
        }
        // Throttled: asked the same, told after the answer.
        let step = e.settled_step(MARGIN);
        for _ in 0..3 {
            s.client().answer(&e.wrong_code(step)).run();
        }
        let throttled = s.client().answer(&e.code_for_step(step)).run();
        throttled.assert_result("PAM_AUTH_ERR");
        assert_eq!(prompts(&throttled), expected, "{}", throttled.transcript());
        let lines = throttled.transcript();
        let asked = lines.find("PROMPT_ECHO").unwrap_or(usize::MAX);
        let told = lines.find("Too many failed").unwrap_or(0);
        assert!(asked < told, "the wait is told after the answer:\n{lines}");
    }
}

#[test]
fn issue_12_5_given_try_first_pass_guess_then_counted_and_logged() {
    require_root!();
    let s = Scenario::with_stack(
        "",
        &[
            "auth optional pam_unix.so",
            "auth required {totp} try_first_pass",
        ],
    );
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    let log = SyslogCapture::start();
    // The password prompt gets a code-shaped guess (pam_unix leaves it in PAM_AUTHTOK), the
    // code prompt another one.
    let run = s
        .client()
        .answer(&e.wrong_code(step))
        .answer(&e.wrong_code(step + 1))
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert_eq!(run.prompts().len(), 2, "{}", run.transcript());
    assert_eq!(host_failures(&s, "local"), 2, "both guesses count");
    let lines = log.lines_of_user(&s.user.name);
    let failures = lines
        .iter()
        .filter(|l| l.contains("result=failure reason=wrong-code"))
        .count();
    assert_eq!(failures, 2, "{lines:#?}");
}

#[test]
fn issue_12_10_given_the_clock_went_back_then_logged_once() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    s.client()
        .answer(&e.code_for_step(step))
        .run()
        .assert_result("PAM_SUCCESS");
    let log = SyslogCapture::start();
    for _ in 0..2 {
        let mut cmd = s.client().answer(&e.code_for_step(step - 120)).command();
        cmd.env("LD_PRELOAD", FAKETIME_LIB)
            .env("FAKETIME", "-1h")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        let run = wait_run(cmd.spawn().expect("pam-client under libfaketime"));
        run.assert_result("PAM_AUTH_ERR");
    }
    let lines = log.lines_of_user(&s.user.name);
    let warnings = lines
        .iter()
        .filter(|l| l.contains("reason=clock-went-back"))
        .count();
    assert_eq!(warnings, 1, "{lines:#?}");
}
