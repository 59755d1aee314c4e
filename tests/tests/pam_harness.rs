//! Checks the test harness itself (pam-client, guards, syslog capture, code generation) against
//! libpam's own modules, so a failure in the module tests points at the module, not the harness.

use pam_totp_e2e::harness::{PamService, TempDir, TestUser};
use pam_totp_e2e::harness_syslog::{DEV_LOG, SyslogCapture, has_fields};
use pam_totp_e2e::harness_totp::parse_enrollment;
use pam_totp_e2e::require_root;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn service(lines: &[&str]) -> PamService {
    PamService::new(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
}

#[test]
fn given_pam_permit_stack_then_client_reports_success_and_setcred_acct_succeed() {
    require_root!();
    let svc = service(&[
        "auth required pam_permit.so",
        "account required pam_permit.so",
    ]);
    let run = pam_totp_e2e::harness_client::Client::new(&svc.name, "root")
        .setcred()
        .acct()
        .run();
    run.assert_result("PAM_SUCCESS");
    assert!(
        run.lines.contains(&"SETCRED PAM_SUCCESS 0".to_string()),
        "{}",
        run.transcript()
    );
    assert!(
        run.lines.contains(&"ACCT PAM_SUCCESS 0".to_string()),
        "{}",
        run.transcript()
    );
}

#[test]
fn given_pam_deny_stack_then_client_reports_auth_err_and_exits_1() {
    require_root!();
    let svc = service(&["auth required pam_deny.so"]);
    let run = pam_totp_e2e::harness_client::Client::new(&svc.name, "root").run();
    run.assert_result("PAM_AUTH_ERR");
    assert_eq!(
        run.lines.last().map(String::as_str),
        Some("RESULT PAM_AUTH_ERR 7")
    );
}

#[test]
fn given_pam_echo_and_env_then_info_line_and_env_list_are_printed() {
    require_root!();
    let svc = service(&[
        "auth optional pam_echo.so Hello %u",
        "auth required pam_permit.so",
    ]);
    let run = pam_totp_e2e::harness_client::Client::new(&svc.name, "root")
        .env("SSH_AUTH_INFO_0", "publickey ssh-ed25519 AAAA")
        .print_env()
        .run();
    run.assert_result("PAM_SUCCESS");
    assert_eq!(
        run.messages("INFO"),
        vec!["Hello root"],
        "{}",
        run.transcript()
    );
    assert!(
        run.lines
            .contains(&"ENV SSH_AUTH_INFO_0=publickey ssh-ed25519 AAAA".to_string()),
        "{}",
        run.transcript()
    );
}

#[test]
fn given_pam_unix_prompt_then_scripted_raw_bytes_are_answered_without_crash() {
    require_root!();
    let user = TestUser::create();
    let svc = service(&["auth required pam_unix.so"]);
    let run = pam_totp_e2e::harness_client::Client::new(&svc.name, &user.name)
        .answer_bytes(&[0x01, 0xff, b'x'])
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert_eq!(run.prompts(), vec![("PROMPT_ECHO_OFF", "Password: ")]);
}

#[test]
fn given_no_answer_left_then_conversation_fails_and_module_refuses() {
    require_root!();
    let user = TestUser::create();
    let svc = service(&["auth required pam_unix.so"]);
    let run = pam_totp_e2e::harness_client::Client::new(&svc.name, &user.name).run();
    assert_ne!(run.result(), "PAM_SUCCESS", "{}", run.transcript());
    assert!(
        run.stderr.contains("no --answer left"),
        "{}",
        run.transcript()
    );
}

#[test]
fn given_interactive_client_then_test_reads_prompt_and_sends_answer() {
    require_root!();
    let user = TestUser::create();
    let svc = service(&[
        "auth optional pam_echo.so before",
        "auth required pam_unix.so",
    ]);
    let mut client = pam_totp_e2e::harness_client::Client::new(&svc.name, &user.name).interactive();
    let lines = client.until_prompt().expect("a prompt");
    assert_eq!(lines, vec!["INFO before", "PROMPT_ECHO_OFF Password: "]);
    client.send("not the password");
    let run = client.finish();
    run.assert_result("PAM_AUTH_ERR");
}

#[test]
fn given_test_user_and_service_guards_dropped_then_nothing_is_left() {
    require_root!();
    let (name, home, svc_file, dir) = {
        let user = TestUser::create();
        let svc = service(&["auth required pam_deny.so"]);
        let dir = TempDir::new("guard");
        assert!(user.home.is_dir());
        assert!(user.name.starts_with("ptt"));
        assert_eq!(user.name, user.name.to_lowercase());
        (
            user.name.clone(),
            user.home.clone(),
            Path::new("/etc/pam.d").join(&svc.name),
            dir.path().to_path_buf(),
        )
    };
    assert!(nix::unistd::User::from_name(&name).unwrap().is_none());
    assert!(!home.exists());
    assert!(!svc_file.exists());
    assert!(!dir.exists());
}

#[test]
fn given_a_process_of_the_test_user_still_running_then_the_account_is_removed_anyway() {
    require_root!();
    use std::os::unix::process::CommandExt;
    let user = TestUser::create();
    let name = user.name.clone();
    // What a failing test can leave behind: a session of the user that has not ended yet.
    let mut left_over = std::process::Command::new("sleep")
        .arg("30")
        .uid(user.uid)
        .gid(user.gid)
        .spawn()
        .expect("sleep as the test user");
    drop(user);
    let gone = nix::unistd::User::from_name(&name).unwrap().is_none();
    let _ = left_over.kill();
    let _ = left_over.wait();
    assert!(gone, "test user {name} outlived its guard");
}

#[test]
fn given_syslog_capture_then_pam_warn_line_is_collected_and_socket_removed_after() {
    require_root!();
    let user = TestUser::create();
    let svc = service(&["auth required pam_warn.so", "auth required pam_permit.so"]);
    let host_dev_log = || {
        std::fs::symlink_metadata(DEV_LOG)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let before = host_dev_log();
    {
        let log = SyslogCapture::start();
        pam_totp_e2e::harness_client::Client::new(&svc.name, &user.name)
            .rhost("192.0.2.9")
            .run()
            .assert_result("PAM_SUCCESS");
        // pam_warn's format: `service=[NAME] ... user=[NAME] ... rhost=[HOST]`.
        let lines = log.lines_containing(&format!("user=[{}]", user.name));
        assert!(
            lines.iter().any(|l| l.contains("rhost=[192.0.2.9]")
                && l.contains(&format!("service=[{}]", svc.name))),
            "pam_warn line not captured: {lines:?}"
        );
    }
    assert_eq!(host_dev_log(), before, "{DEV_LOG} is not as it was");
}

#[test]
fn given_log_line_then_fields_are_parsed() {
    let line = "<85>Nov 22 15:51:00 pam_totp[7]: pam_totp(sshd:auth): user=alice service=sshd \
                rhost=198.51.100.7 method=totp result=failure reason=wrong-code";
    assert!(has_fields(
        line,
        &[
            ("user", "alice"),
            ("reason", "wrong-code"),
            ("method", "totp")
        ]
    ));
    assert!(!has_fields(line, &[("result", "success")]));
}

#[test]
fn given_rfc6238_sha1_seed_then_generated_codes_match_appendix_b() {
    // RFC 6238 appendix B: seed "12345678901234567890", 8 digits, 30 s steps.
    let secret = base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        b"12345678901234567890",
    );
    let json = format!(
        r#"{{"user":"u","secret_file":"/x","secret":"{secret}",
            "otpauth_uri":"otpauth://totp/x:u?secret={secret}&algorithm=SHA1&digits=8&period=30",
            "backup_codes":["abcde-fghij"]}}"#
    );
    let e = parse_enrollment(&json);
    assert_eq!(e.code_at(59), "94287082");
    assert_eq!(e.code_at(1_111_111_109), "07081804");
    assert_eq!(e.code_at(20_000_000_000), "65353130");
    let step = e.step_of(59);
    let wrong = e.wrong_code(step);
    assert_eq!(wrong.len(), 8);
    assert!((step.saturating_sub(3)..=step + 3).all(|s| e.code_for_step(s) != wrong));
}

#[test]
fn given_authtok_option_then_libpam_refuses_the_item_from_an_application() {
    require_root!();
    let svc = service(&["auth required pam_permit.so"]);
    let run = pam_totp_e2e::harness_client::Client::new(&svc.name, "root")
        .authtok("pw123456")
        .run();
    assert_eq!(run.status.code(), Some(2), "{}", run.transcript());
    assert!(run.stderr.contains("PAM_BAD_ITEM"), "{}", run.transcript());
}
