//! pam_totp.so through the real libpam: module arguments and configuration keys (unknown ones
//! fail closed, prompt forms, echo), and the syslog lines of a whole scenario.

use pam_totp_e2e::harness::Scenario;
use pam_totp_e2e::harness_client::PamRun;
use pam_totp_e2e::harness_syslog::{SyslogCapture, fields, has_fields};
use pam_totp_e2e::require_root;

const MARGIN: u64 = 4;

fn current_code_run(s: &Scenario) -> PamRun {
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    s.client().answer(&e.code_for_step(step)).run()
}

/// One row: configuration file lines, module arguments, the result, and the question asked.
type ArgumentCase<'a> = (&'a str, &'a str, &'a str, Option<(&'a str, &'a str)>);

/// Module arguments and configuration keys, each a scenario run with the current code: the
/// expected result and, for the prompt forms, the question asked.
#[test]
fn given_arguments_and_keys_then_result_and_prompt_as_configured() {
    require_root!();
    let table: &[ArgumentCase] = &[
        // (config file lines, module arguments, result, prompt)
        ("", "no_such_option", "PAM_SERVICE_ERR", None),
        ("", "windw=3", "PAM_SERVICE_ERR", None),
        ("", "window=9999", "PAM_SERVICE_ERR", None),
        (
            "",
            "prompt=OTP:",
            "PAM_SUCCESS",
            Some(("PROMPT_ECHO_OFF", "OTP:")),
        ),
        (
            "",
            "[prompt=Your one-time code, please:]",
            "PAM_SUCCESS",
            Some(("PROMPT_ECHO_OFF", "Your one-time code, please:")),
        ),
        (
            "prompt = \"From the file: \"",
            "prompt=FromArgument:",
            "PAM_SUCCESS",
            Some(("PROMPT_ECHO_OFF", "FromArgument:")),
        ),
        (
            "prompt = \"From the file: \"",
            "",
            "PAM_SUCCESS",
            Some(("PROMPT_ECHO_OFF", "From the file: ")),
        ),
        (
            "",
            "echo_verification_code",
            "PAM_SUCCESS",
            Some(("PROMPT_ECHO_ON", "Verification code: ")),
        ),
    ];
    for (config, args, result, prompt) in table {
        let s = Scenario::new(config, args);
        let run = current_code_run(&s);
        assert_eq!(
            run.result(),
            *result,
            "config {config:?}, arguments {args:?}:\n{}",
            run.transcript()
        );
        if let Some(prompt) = prompt {
            assert_eq!(
                run.prompts(),
                vec![*prompt],
                "config {config:?}, arguments {args:?}:\n{}",
                run.transcript()
            );
        }
    }
}

#[test]
fn given_unknown_config_file_key_then_service_err() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    // Spoil the configuration only after enrolling (the CLI reads it too).
    let text = std::fs::read_to_string(&s.config.path).unwrap();
    std::fs::write(&s.config.path, format!("{text}no_such_key = true\n")).unwrap();
    let step = e.settled_step(MARGIN);
    s.client()
        .answer(&e.code_for_step(step))
        .run()
        .assert_result("PAM_SERVICE_ERR");
}

#[test]
fn given_interactive_conversation_then_code_computed_after_prompt_accepted() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let mut client = s.client().interactive();
    let lines = client.until_prompt().expect("the module prompts");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("PROMPT_ECHO_OFF Verification code: ")
    );
    // The code is computed only now, as a person would read it off the phone.
    let step = e.settled_step(MARGIN);
    client.send(&e.code_for_step(step));
    client.finish().assert_result("PAM_SUCCESS");
}

/// An answer, the PAM result it gets, and the fields its log line must have.
type Attempt<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// The `<PRI>` of a syslog line: facility times 8 plus severity (u32::MAX if none).
fn priority(line: &str) -> u32 {
    line.strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(pri, _)| pri.parse::<u32>().ok())
        .unwrap_or(u32::MAX)
}

/// Facility authpriv is 10.
fn is_authpriv(line: &str) -> bool {
    priority(line) / 8 == 10
}

#[test]
fn given_whole_scenario_then_syslog_has_one_line_per_outcome_and_no_secret() {
    require_root!();
    syslog_scenario("", true);
}

#[test]
fn given_debug_argument_then_syslog_still_has_no_secret() {
    require_root!();
    // The outcome lines are checked by the test above; this one is about the debug lines.
    syslog_scenario("debug", false);
}

/// Runs wrong, good, replayed, backup, reused backup and malformed answers with `module_args`,
/// checking the outcome line of each (if `check_fields`), then that no secret, code or backup
/// code was logged.
fn syslog_scenario(module_args: &str, check_fields: bool) {
    let log = SyslogCapture::start();
    let s = Scenario::new("", module_args);
    let e = s.enroll(&[]);
    let rhost = "198.51.100.7";
    let step = e.settled_step(6);
    let wrong = e.wrong_code(step);
    let good = e.code_for_step(step);
    let backup = e.backup_codes[0].clone();
    let attempts: [Attempt; 6] = [
        (
            &wrong,
            "PAM_AUTH_ERR",
            &[
                ("method", "totp"),
                ("result", "failure"),
                ("reason", "wrong-code"),
            ],
        ),
        (
            &good,
            "PAM_SUCCESS",
            &[("method", "totp"), ("result", "success")],
        ),
        (
            &good,
            "PAM_AUTH_ERR",
            &[
                ("method", "totp"),
                ("result", "failure"),
                ("reason", "replayed-code"),
            ],
        ),
        (
            &backup,
            "PAM_SUCCESS",
            &[("method", "backup"), ("result", "success")],
        ),
        (
            &backup,
            "PAM_AUTH_ERR",
            &[
                ("method", "backup"),
                ("result", "failure"),
                ("reason", "backup-code-already-used"),
            ],
        ),
        (
            "hello",
            "PAM_AUTH_ERR",
            &[("result", "failure"), ("reason", "malformed-answer")],
        ),
    ];
    // Field mismatches are collected, so one wrong line does not hide the others (or the leak
    // check below).
    let mut problems = Vec::new();
    for (seen, (answer, expected, fields_expected)) in attempts.into_iter().enumerate() {
        // As sshd does: pam_setcred after a success of the whole stack.
        s.client()
            .rhost(rhost)
            .answer(answer)
            .setcred()
            .run()
            .assert_result(expected);
        let lines: Vec<String> = log
            .lines_of_user(&s.user.name)
            .into_iter()
            .filter(|l| fields(l).contains_key("result"))
            .collect();
        assert_eq!(
            lines.len(),
            seen + 1,
            "expected one new outcome line for {fields_expected:?}, got: {lines:#?}"
        );
        let line = &lines[seen];
        let mut want = vec![
            ("user", s.user.name.as_str()),
            ("service", s.service.name.as_str()),
            ("rhost", rhost),
        ];
        want.extend_from_slice(fields_expected);
        if check_fields && !has_fields(line, &want) {
            problems.push(format!("line {line:?} lacks {want:?}"));
        }
        if !is_authpriv(line) {
            problems.push(format!("not facility authpriv: {line:?}"));
        }
        if !line.contains("pam_totp[")
            || !line.contains(&format!("pam_totp({}:auth)", s.service.name))
        {
            problems.push(format!(
                "no pam_totp ident or pam_totp(SERVICE:auth) prefix: {line:?}"
            ));
        }
    }
    // Nothing secret in any line of the whole capture.
    let mut secrets: Vec<String> = vec![
        e.secret.clone(),
        e.secret.to_lowercase(),
        e.secret[..16].to_string(),
        wrong.clone(),
        good.clone(),
    ];
    for code in &e.backup_codes {
        secrets.push(code.clone());
        secrets.push(code.replace('-', ""));
        secrets.push(code.to_uppercase());
        secrets.push(code.split('-').next().unwrap_or(code).to_string());
    }
    let all = log.lines();
    if module_args.split_whitespace().any(|a| a == "debug") {
        // The leak check below must have seen the debug lines (severity debug = 7).
        let prefix = format!("pam_totp({}:auth)", s.service.name);
        assert!(
            all.iter()
                .any(|l| l.contains(&prefix) && l.starts_with('<') && priority(l) % 8 == 7),
            "no debug line with the debug argument: {all:#?}"
        );
    }
    for line in &all {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "log line leaks {secret:?}: {line:?}"
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// pam_unix asks `Password: ` and leaves the answer in PAM_AUTHTOK even when it refuses it (the
/// test user has no password), which is how an application-independent test presets
/// PAM_AUTHTOK: libpam refuses pam_set_item(PAM_AUTHTOK) from an application.
const UNIX_FIRST: &str = "auth optional pam_unix.so";

#[test]
fn given_try_first_pass_and_password_plus_code_then_no_second_prompt() {
    require_root!();
    let s = Scenario::with_stack("", &[UNIX_FIRST, "auth required {totp} try_first_pass"]);
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    let run = s
        .client()
        .answer(&format!("secret-pw{}", e.code_for_step(step)))
        .run();
    run.assert_result("PAM_SUCCESS");
    assert_eq!(
        run.prompts(),
        vec![("PROMPT_ECHO_OFF", "Password: ")],
        "{}",
        run.transcript()
    );
}

#[test]
fn given_try_first_pass_and_password_only_then_code_is_asked() {
    require_root!();
    let s = Scenario::with_stack("", &[UNIX_FIRST, "auth required {totp} try_first_pass"]);
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    let run = s
        .client()
        .answer("just-a-password")
        .answer(&e.code_for_step(step))
        .run();
    run.assert_result("PAM_SUCCESS");
    assert_eq!(
        run.prompts(),
        vec![
            ("PROMPT_ECHO_OFF", "Password: "),
            ("PROMPT_ECHO_OFF", "Verification code: ")
        ],
        "{}",
        run.transcript()
    );
}

#[test]
fn given_use_first_pass_and_password_only_then_auth_err_without_prompt() {
    require_root!();
    let s = Scenario::with_stack("", &[UNIX_FIRST, "auth required {totp} use_first_pass"]);
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    // A second answer is there, so a wrong prompt would not fail for lack of answers.
    let run = s
        .client()
        .answer("just-a-password")
        .answer(&e.code_for_step(step))
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert_eq!(
        run.prompts(),
        vec![("PROMPT_ECHO_OFF", "Password: ")],
        "{}",
        run.transcript()
    );
}

#[test]
fn given_use_first_pass_and_password_plus_code_then_success() {
    require_root!();
    let s = Scenario::with_stack("", &[UNIX_FIRST, "auth required {totp} use_first_pass"]);
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    s.client()
        .answer(&format!("pw{}", e.code_for_step(step)))
        .run()
        .assert_result("PAM_SUCCESS");
}

#[test]
fn given_forward_pass_then_one_prompt_and_password_handed_to_next_module() {
    require_root!();
    let out = pam_totp_e2e::harness::TempDir::new("authtok");
    let file = out.join("authtok");
    // pam_exec hands PAM_AUTHTOK to the command's stdin.
    let script = out.join("save-authtok");
    std::fs::write(&script, format!("#!/bin/sh\ncat > '{}'\n", file.display())).unwrap();
    pam_totp_e2e::harness::set_mode(&script, 0o755);
    let exec = format!(
        "auth required pam_exec.so expose_authtok {}",
        script.display()
    );
    let s = Scenario::with_stack("", &["auth required {totp} forward_pass", &exec]);
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    let run = s
        .client()
        .answer(&format!("hunter2{}", e.code_for_step(step)))
        .run();
    run.assert_result("PAM_SUCCESS");
    assert_eq!(run.prompts().len(), 1, "{}", run.transcript());
    let handed = std::fs::read(&file).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&handed).trim_end_matches(['\0', '\n']),
        "hunter2",
        "the next module did not get the password alone"
    );
}
