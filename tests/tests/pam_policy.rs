//! The policy rules of issue 5 through the real libpam: exemptions by user, group (created by
//! the test) and network, required groups, the SSH public key, the enrollment deadline (the
//! clock moved with libfaketime around the PAM client, nothing test-only in the module),
//! enrollment at first login driven by a conversation that reads the key from the messages,
//! remembered hosts and their expiry, the low-backup-codes notice, and bad policy values.

use pam_totp_e2e::harness::{Scenario, TestGroup, TestUser, set_password};
use pam_totp_e2e::harness_client::{PamRun, wait_run};
use pam_totp_e2e::harness_syslog::SyslogCapture;
use pam_totp_e2e::harness_totp::now;
use pam_totp_e2e::require_root;

const MARGIN: u64 = 4;
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// pam_totp followed by pam_permit: PAM_IGNORE from pam_totp lets the stack succeed, while a
/// failure of pam_totp still fails it.
fn with_permit(config: &str, args: &str) -> Scenario {
    let line = format!("auth required {{totp}} {args}");
    Scenario::with_stack(config, &[line.trim_end(), "auth required pam_permit.so"])
}

fn asked(run: &PamRun) -> bool {
    !run.prompts().is_empty()
}

/// Runs the scenario's client with the clock set to `faketime` (libfaketime syntax).
fn at_time(s: &Scenario, faketime: &str, answers: &[&str]) -> PamRun {
    let mut client = s.client();
    for a in answers {
        client = client.answer(a);
    }
    let mut cmd = client.command();
    cmd.env("LD_PRELOAD", FAKETIME_LIB)
        .env("FAKETIME", faketime)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    wait_run(cmd.spawn().expect("start pam-client under libfaketime"))
}

#[test]
fn given_exempt_group_member_then_not_asked_and_others_asked() {
    require_root!();
    let s = with_permit("", "");
    let outsider = TestUser::create();
    let group = TestGroup::new();
    group.add(&s.user.name);
    let text = std::fs::read_to_string(&s.config.path).unwrap();
    std::fs::write(
        &s.config.path,
        format!("{text}exempt_groups = [\"{}\"]\n", group.name),
    )
    .unwrap();
    let run = s.client().run();
    run.assert_result("PAM_SUCCESS");
    assert!(
        !asked(&run),
        "an exempt member is not asked:\n{}",
        run.transcript()
    );
    let other = pam_totp_e2e::harness_client::Client::new(&s.service.name, &outsider.name)
        .answer("123456")
        .run();
    other.assert_result("PAM_AUTH_ERR");
    assert!(
        asked(&other),
        "a non-member is asked:\n{}",
        other.transcript()
    );
}

#[test]
fn given_exempt_user_with_exempt_result_success_then_alone_in_stack_succeeds() {
    require_root!();
    let s = Scenario::new("exempt_result = \"success\"\n", "");
    let text = std::fs::read_to_string(&s.config.path).unwrap();
    std::fs::write(
        &s.config.path,
        format!("{text}exempt_users = [\"{}\"]\n", s.user.name),
    )
    .unwrap();
    let run = s.client().run();
    run.assert_result("PAM_SUCCESS");
    assert!(!asked(&run));
}

#[test]
fn given_exempt_network_then_only_matching_rhost_skips() {
    require_root!();
    let s = with_permit(
        "exempt_networks = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n",
        "",
    );
    for host in ["192.0.2.44", "2001:db8:5::1"] {
        let run = s.client().rhost(host).run();
        run.assert_result("PAM_SUCCESS");
        assert!(!asked(&run), "{host} is exempt:\n{}", run.transcript());
    }
    for host in ["198.51.100.1", "not-an-address", ""] {
        let mut c = s.client().answer("123456");
        if !host.is_empty() {
            c = c.rhost(host);
        }
        let run = c.run();
        run.assert_result("PAM_AUTH_ERR");
        assert!(asked(&run), "rhost {host:?} is not exempt");
    }
}

#[test]
fn given_require_groups_then_only_members_are_asked() {
    require_root!();
    let s = with_permit("", "");
    let group = TestGroup::new();
    group.add(&s.user.name);
    let text = std::fs::read_to_string(&s.config.path).unwrap();
    std::fs::write(
        &s.config.path,
        format!(
            "{text}require = \"groups\"\nrequire_groups = [\"{}\"]\n",
            group.name
        ),
    )
    .unwrap();
    let run = s.client().answer("123456").run();
    run.assert_result("PAM_AUTH_ERR");
    assert!(asked(&run));
    let outsider = TestUser::create();
    let other = pam_totp_e2e::harness_client::Client::new(&s.service.name, &outsider.name).run();
    other.assert_result("PAM_SUCCESS");
    assert!(!asked(&other));
}

#[test]
fn given_publickey_skip_and_ssh_auth_info_then_not_asked() {
    require_root!();
    let s = with_permit("publickey = \"skip\"\n", "");
    s.enroll(&[]);
    let run = s
        .client()
        .env(
            "SSH_AUTH_INFO_0",
            "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA",
        )
        .run();
    run.assert_result("PAM_SUCCESS");
    assert!(!asked(&run));
    let run = s
        .client()
        .env("SSH_AUTH_INFO_0", "password")
        .answer("000000")
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert!(asked(&run));
}

#[test]
fn given_deadline_then_grace_before_and_refusal_after() {
    require_root!();
    if !std::path::Path::new(FAKETIME_LIB).exists() {
        panic!("{FAKETIME_LIB} missing: install libfaketime (tests/install-deps.sh)");
    }
    let s = with_permit(
        "enroll_deadline = 2026-12-31\nenroll_contact = \"the help desk\"\n",
        "",
    );
    let before = at_time(&s, "@2026-12-01 12:00:00", &[]);
    before.assert_result("PAM_SUCCESS");
    let info = before.messages("INFO").join("\n");
    assert!(
        info.contains("mandatory on 2026-12-31 (30 days)"),
        "{}",
        before.transcript()
    );
    assert!(info.contains("pam-totp enroll"));
    let after = at_time(&s, "@2027-01-05 12:00:00", &[]);
    after.assert_result("PAM_AUTH_ERR");
    let error = after.messages("ERROR").join("\n");
    assert!(
        error.contains("mandatory since 2026-12-31") && error.contains("the help desk"),
        "{}",
        after.transcript()
    );
    // Enrolled users are asked for a code either way.
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    let run = s.client().answer(&e.code_for_step(step)).run();
    run.assert_result("PAM_SUCCESS");
    assert!(asked(&run));
}

fn key_from_messages(lines: &[String]) -> String {
    let line = lines
        .iter()
        .find_map(|l| l.split("Or enter this key by hand: ").nth(1))
        .unwrap_or_else(|| panic!("no key shown in:\n{}", lines.join("\n")));
    line.split("\\n")
        .next()
        .unwrap_or(line)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn code_for_key(key: &str, t: u64) -> String {
    let bytes =
        base32::decode(base32::Alphabet::Rfc4648 { padding: false }, key).expect("base32 key");
    totp_rs::Builder::new()
        .with_secret(bytes)
        .build_noncompliant()
        .generate(t)
        .to_string()
}

#[test]
fn given_enroll_at_login_then_key_shown_code_checked_and_secret_written() {
    require_root!();
    // Enrollment happens in the account phase, which libpam runs only after the auth stack.
    let s = Scenario::with_stack(
        "enroll_at_login = true\n",
        &[
            "auth required {totp}",
            "auth required pam_permit.so",
            "account required {totp}",
        ],
    );
    let secret = s.user.home.join(".config/pam-totp/secret.toml");
    // Three wrong codes: nothing is written.
    let mut c = s.client().acct().interactive();
    for _ in 0..3 {
        c.until_prompt().expect("a prompt");
        c.send("000000");
    }
    let run = c.finish();
    run.assert_result("PAM_AUTH_ERR");
    assert!(!secret.exists(), "a failed enrollment leaves nothing");
    // The right code from the key shown: enrolled, backup codes shown once.
    let mut c = s.client().acct().interactive();
    let shown = c.until_prompt().expect("the code prompt");
    let key = key_from_messages(&shown);
    let step = {
        pam_totp_e2e::harness_totp::settle(30, MARGIN);
        now() / 30
    };
    c.send(&code_for_key(&key, step * 30));
    let stored = c.until_prompt().expect("the prompt after the backup codes");
    assert!(stored.join("\n").contains("backup codes"), "{stored:?}");
    c.send("");
    let run = c.finish();
    run.assert_result("PAM_SUCCESS");
    assert!(secret.exists(), "the secret file is written");
    let meta = std::fs::metadata(&secret).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        s.user.uid,
        "owned by the user"
    );
    let transcript = run.transcript();
    assert!(transcript.contains("backup codes"), "{transcript}");
    // The enrolled key now works for a normal login, in a later step.
    let next = step + 1;
    while now() / 30 < next {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.client()
        .answer(&code_for_key(&key, next * 30))
        .run()
        .assert_result("PAM_SUCCESS");
}

#[test]
fn given_remember_then_host_skips_code_until_it_expires() {
    require_root!();
    let s = Scenario::new("remember = \"1h\"\n", "");
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    // pam_setcred: the whole stack succeeded, as sshd reports it.
    s.client()
        .rhost("198.51.100.20")
        .answer(&e.code_for_step(step))
        .setcred()
        .run()
        .assert_result("PAM_SUCCESS");
    let again = s.client().rhost("198.51.100.20").run();
    again.assert_result("PAM_SUCCESS");
    assert!(!asked(&again), "remembered host is not asked");
    let other = s.client().rhost("198.51.100.21").answer("000000").run();
    other.assert_result("PAM_AUTH_ERR");
    let local = s.client().answer("000000").run();
    local.assert_result("PAM_AUTH_ERR");
    assert!(asked(&local), "never for local logins");
    // Two hours later the host must give a code again.
    let later = at_time(&s, "+7200", &["000000"]);
    later.assert_result("PAM_AUTH_ERR");
    assert!(asked(&later), "expired:\n{}", later.transcript());
}

#[test]
fn given_two_backup_codes_left_then_notice_after_totp_login() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&["--backup-codes", "2"]);
    let step = e.settled_step(MARGIN);
    let run = s.client().answer(&e.code_for_step(step)).run();
    run.assert_result("PAM_SUCCESS");
    let info = run.messages("INFO").join("\n");
    assert!(
        info.contains("Only 2 backup codes left") && info.contains("backup-codes --regenerate"),
        "{info}"
    );
}

#[test]
fn given_bad_policy_values_then_service_err_with_key_and_line_in_syslog() {
    require_root!();
    let cases = [
        ("exempt_networks = [\"10.0.0.0/33\"]\n", "exempt_networks"),
        ("enroll_deadline = \"12/31/2026\"\n", "enroll_deadline"),
        ("exempt_groups = [\"no-such-group-ptt\"]\n", "exempt_groups"),
    ];
    for (line, key) in cases {
        let s = Scenario::new(line, "");
        let log = SyslogCapture::start();
        let run = s.client().answer("123456").run();
        run.assert_result("PAM_SERVICE_ERR");
        let lines = log.lines_of_user(&s.user.name);
        assert!(
            lines.iter().any(|l| l.contains("reason=config-error")
                && l.contains(key)
                && l.contains("line ")),
            "no config-error line naming {key} and its line: {lines:?}"
        );
    }
}

#[test]
fn given_remembered_host_then_password_change_forgets_it() {
    require_root!();
    let s = Scenario::new("remember = \"7d\"\n", "");
    set_password(&s.user.name, "first-Passw0rd");
    let e = s.enroll(&[]);
    let step = e.settled_step(MARGIN);
    s.client()
        .rhost("198.51.100.30")
        .answer(&e.code_for_step(step))
        .setcred()
        .run()
        .assert_result("PAM_SUCCESS");
    let again = s.client().rhost("198.51.100.30").run();
    again.assert_result("PAM_SUCCESS");
    assert!(!asked(&again));
    set_password(&s.user.name, "second-Passw0rd");
    let after = s.client().rhost("198.51.100.30").answer("000000").run();
    after.assert_result("PAM_AUTH_ERR");
    assert!(asked(&after), "a password change forgets remembered hosts");
}

#[test]
fn given_enroll_at_login_and_wrong_password_then_nothing_is_enrolled() {
    require_root!();
    let s = Scenario::with_stack(
        "enroll_at_login = true\n",
        &[
            "auth required pam_unix.so",
            "auth required {totp}",
            "account required {totp}",
        ],
    );
    set_password(&s.user.name, "right-Passw0rd");
    let secret = s.user.home.join(".config/pam-totp/secret.toml");
    let run = s
        .client()
        .acct()
        .answer("wrong-password")
        .answer("000000")
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert!(
        !run.transcript().contains("enter this key"),
        "no key is shown:\n{}",
        run.transcript()
    );
    assert!(!secret.exists(), "a wrong password never enrolls");
}

#[test]
fn given_enroll_at_login_without_account_line_then_service_err() {
    require_root!();
    let s = Scenario::with_stack(
        "enroll_at_login = true\n",
        &["auth required {totp}", "auth required pam_permit.so"],
    );
    s.client().acct().run().assert_result("PAM_SERVICE_ERR");
}
