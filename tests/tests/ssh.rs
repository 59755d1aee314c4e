//! Real SSH logins end to end (issue 4): a private OpenSSH sshd on 127.0.0.1 with its own PAM
//! service, a real client (paramiko) answering the keyboard-interactive prompts, and
//! pam_totp.so as built by `cargo build --workspace`. Run as root:
//! `cargo test -p pam-totp-e2e --test ssh`; needs openssh-server, openssh-client (ssh-keygen)
//! and python3-paramiko.

use pam_totp_e2e::harness::{TestConfig, module_path, root_or_skip};
use pam_totp_e2e::harness_syslog::{SyslogCapture, has_fields};
use pam_totp_e2e::ssh::{
    Login, RealSsh, SshUser, Sshd, Theme, TrackedEnrollment, Transcript, qr_cells,
    terminal_picture, zbar_decode,
};

/// The keyboard-interactive prompt of pam_unix.
const PASSWORD_PROMPT: &str = "Password: ";
/// pam_totp's default prompt.
const CODE_PROMPT: &str = "Verification code: ";
/// pam_totp's prompt with `forward_pass`.
const FORWARD_PROMPT: &str = "Password & verification code: ";

const PUBLICKEY_AND_CODE: &str = "AuthenticationMethods publickey,keyboard-interactive";
const KBDINT_ONLY: &str = "AuthenticationMethods keyboard-interactive";

/// account/session lines every test service shares (as Debian's `/etc/pam.d/sshd` has them).
const ACCOUNT_SESSION: &str = "account required pam_unix.so\nsession required pam_unix.so\n";

/// A PAM service file: `auth` lines, then the shared account/session lines.
fn pam_service(auth: &str) -> String {
    format!("# pam-totp SSH test service\n{auth}\n{ACCOUNT_SESSION}")
}

/// `auth required <module> <config> <args>`.
fn totp_line(config: &TestConfig, args: &str) -> String {
    format!(
        "auth required {} {} {args}",
        module_path().display(),
        config.arg()
    )
}

/// A file of the repository's `config/` directory.
fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The active `auth` lines of a shipped `config/pam.d` example, with `pam_totp.so` pointing at
/// the freshly built module and the test's configuration file.
fn example_auth(name: &str, config: &TestConfig) -> String {
    let module = format!("{} {}", module_path().display(), config.arg());
    example(name)
        .lines()
        .map(str::trim)
        .filter(|l| l.split_whitespace().next() == Some("auth"))
        .map(|l| l.replace("pam_totp.so", &module))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The active lines of a shipped `config/sshd_config.d` example.
fn example_sshd(name: &str) -> String {
    example(name)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_logged_in(t: &Transcript, user: &SshUser, sshd: &Sshd) {
    assert!(
        t.succeeded(),
        "login of {} should succeed: {t:#?}\n{}",
        user.name,
        sshd.log_tail(40)
    );
    assert_eq!(t.exit_status, Some(0), "{t:#?}");
    assert_eq!(t.stdout.trim(), user.name, "the command ran as the user");
}

fn assert_refused(t: &Transcript, what: &str) {
    assert_eq!(t.auth, "failure", "{what} must be refused: {t:#?}");
    assert!(t.stdout.is_empty(), "{what}: no command may run: {t:#?}");
}

/// Runs each login of the table (with `id -un` as its command, in order) and checks that it
/// is refused; returns the transcripts for further checks.
fn refused_each(sshd: &Sshd, table: Vec<(&str, Login)>) -> Vec<Transcript> {
    table
        .into_iter()
        .map(|(what, login)| {
            let t = login.command("id -un").run(sshd);
            assert_refused(&t, what);
            t
        })
        .collect()
}

/// The harness alone, with no pam_totp: pam_unix through keyboard-interactive. Shows that the
/// private sshd, its PAM service and the client work, so the other tests' failures are about
/// pam_totp.
#[test]
fn given_harness_with_pam_unix_then_password_login_works() {
    if !root_or_skip("harness test") {
        return;
    }
    let user = SshUser::create();
    let sshd = Sshd::start(
        &pam_service("auth required pam_unix.so"),
        KBDINT_ONLY,
        &[&user],
    );
    let ok = Login::without_key(&user)
        .answer(&user.password)
        .command("id -un")
        .run(&sshd);
    assert_logged_in(&ok, &user, &sshd);
    assert_eq!(ok.prompts(), vec![(PASSWORD_PROMPT.to_string(), false)]);
    let bad = Login::without_key(&user)
        .answer("not-the-password")
        .command("id -un")
        .run(&sshd);
    assert_refused(&bad, "a wrong password");
    drop(sshd);
    // The private service file is the one in force: with pam_deny there, the right password
    // (which the system's /etc/pam.d/sshd would accept) is refused.
    let sshd = Sshd::start(
        &pam_service("auth required pam_deny.so"),
        KBDINT_ONLY,
        &[&user],
    );
    let denied = Login::without_key(&user)
        .answer(&user.password)
        .command("id -un")
        .run(&sshd);
    assert_refused(&denied, "any login through a pam_deny service");
}

/// Scenario 1: publickey then keyboard-interactive with a PAM stack of only pam_totp.
#[test]
fn given_publickey_and_code_then_right_code_in_wrong_and_reused_out_backup_once() {
    if !root_or_skip("scenario 1") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let sshd = Sshd::start(
        &pam_service(&totp_line(&config, "")),
        PUBLICKEY_AND_CODE,
        &[&user],
    );

    // The key alone is not enough: the server asks for keyboard-interactive next.
    let code = enrollment.fresh_code();
    let ok = Login::with_key(&user)
        .answer(&code)
        .command("id -un")
        .run(&sshd);
    assert_eq!(ok.publickey, "partial", "{ok:#?}");
    assert_eq!(ok.methods_after_publickey, vec!["keyboard-interactive"]);
    assert_eq!(ok.prompts(), vec![(CODE_PROMPT.to_string(), false)]);
    assert_logged_in(&ok, &user, &sshd);

    let wrong = Login::with_key(&user)
        .answer(&enrollment.wrong_code_now())
        .command("id -un")
        .run(&sshd);
    assert_eq!(wrong.prompts(), vec![(CODE_PROMPT.to_string(), false)]);
    assert_refused(&wrong, "a wrong code");

    let reused = Login::with_key(&user)
        .answer(&code)
        .command("id -un")
        .run(&sshd);
    assert_refused(&reused, "a reused code");

    let backup = &enrollment.backup_codes[0];
    let first = Login::with_key(&user)
        .answer(backup)
        .command("id -un")
        .shell()
        .run(&sshd);
    assert_logged_in(&first, &user, &sshd);
    // sshd keeps the PAM_TEXT_INFO of a successful login for the terminal of a login shell.
    let left = enrollment.backup_codes.len() - 1;
    assert!(
        first
            .shell_output
            .contains(&format!("Backup code accepted; {left} backup codes left.")),
        "after a backup code the terminal says how many remain: {first:#?}"
    );
    let again = Login::with_key(&user)
        .answer(backup)
        .command("id -un")
        .run(&sshd);
    assert_refused(&again, "a used backup code");
    // Without the key, the code alone does not open the door.
    let no_key = Login::without_key(&user)
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    assert_refused(&no_key, "a code without the key");
    assert!(
        no_key.rounds.is_empty(),
        "no prompt before the key: {no_key:#?}"
    );
}

/// Scenario 2: password (pam_unix) then code (pam_totp), both in keyboard-interactive.
#[test]
fn given_password_and_code_then_prompts_in_order_and_wrong_password_reveals_nothing() {
    if !root_or_skip("scenario 2") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let auth = format!("auth required pam_unix.so\n{}", totp_line(&config, ""));
    let sshd = Sshd::start(&pam_service(&auth), KBDINT_ONLY, &[&user]);
    let both = vec![
        (PASSWORD_PROMPT.to_string(), false),
        (CODE_PROMPT.to_string(), false),
    ];

    let ok = Login::without_key(&user)
        .answer(&user.password)
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    assert_eq!(ok.prompts(), both, "password first, then the code");
    assert_eq!(ok.unanswered, 0);
    assert_logged_in(&ok, &user, &sshd);

    // A wrong password with the right (unused) code, and the right password with a wrong
    // code: the client must not be able to tell the two apart.
    let wrong_password = Login::without_key(&user)
        .answer("not-the-password")
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    let wrong_code = Login::without_key(&user)
        .answer(&user.password)
        .answer(&enrollment.wrong_code_now())
        .command("id -un")
        .run(&sshd);
    assert_refused(&wrong_password, "a wrong password with the right code");
    assert_refused(&wrong_code, "the right password with a wrong code");
    assert_eq!(wrong_password.prompts(), both);
    assert_eq!(
        wrong_password, wrong_code,
        "a wrong password must look exactly like a wrong code to the client"
    );
}

/// Scenario 3: `forward_pass`: one prompt takes password and code together; pam_unix checks
/// the password part with `use_first_pass`.
#[test]
fn given_forward_pass_then_one_prompt_for_password_and_code() {
    if !root_or_skip("scenario 3") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let auth = format!(
        "{}\nauth required pam_unix.so use_first_pass",
        totp_line(&config, "forward_pass")
    );
    let sshd = Sshd::start(&pam_service(&auth), KBDINT_ONLY, &[&user]);
    let one = vec![(FORWARD_PROMPT.to_string(), false)];

    let ok = Login::without_key(&user)
        .answer(&format!("{}{}", user.password, enrollment.fresh_code()))
        .command("id -un")
        .run(&sshd);
    assert_eq!(ok.prompts(), one, "a single prompt");
    assert_logged_in(&ok, &user, &sshd);

    let refused = refused_each(
        &sshd,
        vec![
            (
                "the right password with a wrong code",
                Login::without_key(&user).answer(&format!(
                    "{}{}",
                    user.password,
                    enrollment.wrong_code_now()
                )),
            ),
            (
                "a wrong password with the right code",
                Login::without_key(&user)
                    .answer(&format!("not-the-password{}", enrollment.fresh_code())),
            ),
            (
                "the password without a code",
                Login::without_key(&user).answer(&user.password),
            ),
        ],
    );
    assert_eq!(refused[0].prompts(), one);
    assert_eq!(refused[1].prompts(), one);
}

/// Scenario 3, continued: a client that only has a password field (the "password" method, no
/// keyboard-interactive) types password and code together; sshd hands that answer to the
/// forward_pass prompt.
#[test]
fn given_forward_pass_then_password_method_takes_password_and_code() {
    if !root_or_skip("scenario 3 (password method)") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let auth = format!(
        "{}\nauth required pam_unix.so use_first_pass",
        totp_line(&config, "forward_pass")
    );
    let sshd = Sshd::start(
        &pam_service(&auth),
        "PasswordAuthentication yes\nAuthenticationMethods password",
        &[&user],
    );
    let ok = Login::without_key(&user)
        .password(&format!("{}{}", user.password, enrollment.fresh_code()))
        .command("id -un")
        .run(&sshd);
    assert_logged_in(&ok, &user, &sshd);
    refused_each(
        &sshd,
        vec![
            (
                "the password without a code",
                Login::without_key(&user).password(&user.password),
            ),
            (
                "the password with a wrong code",
                Login::without_key(&user).password(&format!(
                    "{}{}",
                    user.password,
                    enrollment.wrong_code_now()
                )),
            ),
        ],
    );
}

/// Scenario 4: a user without a secret file: in with the key alone under `nullok`, refused
/// without it. The stack ends in pam_permit (as config/pam.d/sshd-publickey.example does),
/// because a stack whose only module answers PAM_IGNORE fails; an enrolled user on the same
/// stack still needs the code.
#[test]
fn given_unenrolled_user_then_nullok_lets_key_alone_in_and_default_refuses() {
    if !root_or_skip("scenario 4") {
        return;
    }
    let unenrolled = SshUser::create();
    let enrolled = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&enrolled, &config.path);

    let nullok = format!(
        "{}\nauth required pam_permit.so",
        totp_line(&config, "nullok")
    );
    let sshd = Sshd::start(
        &pam_service(&nullok),
        PUBLICKEY_AND_CODE,
        &[&unenrolled, &enrolled],
    );
    // Asked like an enrolled user (so the prompt tells nobody who is enrolled); whatever the
    // answer, the key alone lets an unenrolled user in under nullok.
    let key_alone = Login::with_key(&unenrolled)
        .answer("")
        .command("id -un")
        .run(&sshd);
    assert_logged_in(&key_alone, &unenrolled, &sshd);
    assert_eq!(
        key_alone.prompts(),
        vec![(CODE_PROMPT.to_string(), false)],
        "{key_alone:#?}"
    );
    let enrolled_wrong = Login::with_key(&enrolled)
        .answer(&enrollment.wrong_code_now())
        .command("id -un")
        .run(&sshd);
    assert_refused(
        &enrolled_wrong,
        "an enrolled user's wrong code under nullok",
    );
    let enrolled_ok = Login::with_key(&enrolled)
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    assert_logged_in(&enrolled_ok, &enrolled, &sshd);
    drop(sshd);

    let strict = format!("{}\nauth required pam_permit.so", totp_line(&config, ""));
    let sshd = Sshd::start(&pam_service(&strict), PUBLICKEY_AND_CODE, &[&unenrolled]);
    let refused = Login::with_key(&unenrolled)
        .answer("123456")
        .command("id -un")
        .run(&sshd);
    assert_refused(&refused, "an unenrolled user without nullok");
    // It is asked anyway, so a stranger cannot tell who is enrolled.
    assert_eq!(refused.prompts(), vec![(CODE_PROMPT.to_string(), false)]);
}

/// Scenario 5: the throttle lives in the state file, so it holds across SSH connections: after
/// `throttle_attempts` wrong codes, the right code is refused too, on a new connection.
#[test]
fn given_failures_on_separate_connections_then_lockout_holds() {
    if !root_or_skip("scenario 5") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("throttle_attempts = 2\nthrottle_delay = 3600");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let sshd = Sshd::start(
        &pam_service(&totp_line(&config, "")),
        PUBLICKEY_AND_CODE,
        &[&user],
    );
    for n in 1..=2 {
        let wrong = Login::with_key(&user)
            .answer(&enrollment.wrong_code_now())
            .command("id -un")
            .run(&sshd);
        assert_eq!(wrong.prompts(), vec![(CODE_PROMPT.to_string(), false)]);
        assert_refused(&wrong, &format!("wrong code #{n}"));
    }
    let locked = Login::with_key(&user)
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    assert_refused(&locked, "the right code during a lock-out");
    // Asked like everybody, then told (the prompt does not tell a stranger who is locked out).
    assert_eq!(
        locked.prompts(),
        vec![(CODE_PROMPT.to_string(), false)],
        "{locked:#?}"
    );
    assert!(
        locked
            .messages()
            .iter()
            .any(|m| m.contains("Too many failed attempts")),
        "the client is told about the lock-out: {locked:#?}"
    );
    // A backup code does not get round the lock-out either.
    let backup = Login::with_key(&user)
        .answer(&enrollment.backup_codes[0])
        .command("id -un")
        .run(&sshd);
    assert_refused(&backup, "a backup code during a lock-out");
}

/// Scenario 6: sshd hands the client's address to PAM as PAM_RHOST, and it reaches the
/// module's syslog line; no entered code reaches any log line.
#[test]
fn given_ssh_login_then_syslog_line_names_rhost() {
    if !root_or_skip("scenario 6") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    // Before sshd: its connection processes inherit the capture's /dev/log.
    let syslog = SyslogCapture::start();
    let sshd = Sshd::start(
        &pam_service(&totp_line(&config, "")),
        PUBLICKEY_AND_CODE,
        &[&user],
    );
    let code = enrollment.fresh_code();
    let ok = Login::with_key(&user)
        .answer(&code)
        .command("id -un")
        .run(&sshd);
    assert_logged_in(&ok, &user, &sshd);
    let wrong = enrollment.wrong_code_now();
    let bad = Login::with_key(&user)
        .answer(&wrong)
        .command("id -un")
        .run(&sshd);
    assert_refused(&bad, "a wrong code");

    let lines = syslog.lines();
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("pam_totp") && has_fields(l, &[("user", &user.name)]))
        .collect();
    let find = |result: &[(&str, &str)]| {
        ours.iter()
            .find(|l| has_fields(l, result))
            .map(|l| l.to_string())
            .unwrap_or_else(|| panic!("no line with {result:?}; got {lines:#?}"))
    };
    let success = find(&[("method", "totp"), ("result", "success")]);
    let failure = find(&[("result", "failure"), ("reason", "wrong-code")]);
    for line in [&success, &failure] {
        assert!(
            has_fields(line, &[("rhost", "127.0.0.1"), ("service", &sshd.service)]),
            "rhost or service missing: {line}"
        );
        assert!(
            line.contains(&format!("pam_totp({}:auth)", sshd.service)),
            "service missing: {line}"
        );
    }
    for line in &lines {
        assert!(
            !line.contains(&code) && !line.contains(&wrong),
            "an entered code reached syslog: {line}"
        );
    }
}

/// The shipped examples for publickey + code (config/pam.d/sshd-publickey.example and
/// config/sshd_config.d/pam-totp-publickey.conf.example), as written: key and code log in, a
/// wrong code and a user without enrollment are refused, and the code alone is not enough.
#[test]
fn given_shipped_publickey_example_then_key_and_code_required() {
    if !root_or_skip("publickey example") {
        return;
    }
    let user = SshUser::create();
    let unenrolled = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let auth = example_auth("pam.d/sshd-publickey.example", &config);
    assert!(auth.contains("pam_permit.so"), "{auth}");
    let sshd = Sshd::start(
        &pam_service(&auth),
        &example_sshd("sshd_config.d/pam-totp-publickey.conf.example"),
        &[&user, &unenrolled],
    );
    let ok = Login::with_key(&user)
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    assert_eq!(ok.methods_after_publickey, vec!["keyboard-interactive"]);
    assert_logged_in(&ok, &user, &sshd);
    let wrong = Login::with_key(&user)
        .answer(&enrollment.wrong_code_now())
        .command("id -un")
        .run(&sshd);
    assert_refused(&wrong, "a wrong code");
    let not_enrolled = Login::with_key(&unenrolled)
        .answer("123456")
        .command("id -un")
        .run(&sshd);
    assert_refused(
        &not_enrolled,
        "a user without enrollment (no nullok in the example)",
    );
    let no_key = Login::without_key(&user)
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    assert_refused(&no_key, "a code without the key");
}

/// The shipped examples for password + code (config/pam.d/sshd-password.example and
/// config/sshd_config.d/pam-totp-password.conf.example), as written.
#[test]
fn given_shipped_password_example_then_password_and_code_required() {
    if !root_or_skip("password example") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("");
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let sshd = Sshd::start(
        &pam_service(&example_auth("pam.d/sshd-password.example", &config)),
        &example_sshd("sshd_config.d/pam-totp-password.conf.example"),
        &[&user],
    );
    let ok = Login::without_key(&user)
        .answer(&user.password)
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    assert_eq!(
        ok.prompts(),
        vec![
            (PASSWORD_PROMPT.to_string(), false),
            (CODE_PROMPT.to_string(), false)
        ]
    );
    assert_logged_in(&ok, &user, &sshd);
    let wrong_password = Login::without_key(&user)
        .answer("not-the-password")
        .answer(&enrollment.fresh_code())
        .command("id -un")
        .run(&sshd);
    let wrong_code = Login::without_key(&user)
        .answer(&user.password)
        .answer(&enrollment.wrong_code_now())
        .command("id -un")
        .run(&sshd);
    assert_refused(&wrong_password, "a wrong password");
    assert_eq!(wrong_password, wrong_code, "the two refusals look alike");
    let password_method = Login::without_key(&user)
        .password(&user.password)
        .command("id -un")
        .run(&sshd);
    assert_refused(&password_method, "the password method");
}

/// The PAM service of the enrollment-at-login tests: pam_totp's auth line (which defers for an
/// unenrolled user), then its account line, where the enrollment happens.
fn enroll_at_login_service(config: &TestConfig) -> String {
    pam_service(&format!(
        "{}\nauth required pam_permit.so\naccount required {} {}",
        totp_line(config, ""),
        module_path().display(),
        config.arg()
    ))
}

/// TrackedEnrollment at first login over SSH: after the public key, the keyboard-interactive step runs
/// the auth phase (which defers) and then the account phase, which shows the QR code and key,
/// asks for a first code, saves the secret and shows the backup codes before a last prompt.
/// The next login needs a code from the new key.
#[test]
fn given_enroll_at_login_then_user_enrolls_inside_the_ssh_login() {
    if !root_or_skip("enrollment at first login over ssh") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("enroll_at_login = true");
    let sshd = Sshd::start(
        &enroll_at_login_service(&config),
        PUBLICKEY_AND_CODE,
        &[&user],
    );
    let secret = user.home.join(".config/pam-totp/secret.toml");
    let first = Login::with_key(&user)
        .answer("@code-from-key")
        .answer("")
        .command("id -un")
        .run(&sshd);
    assert_logged_in(&first, &user, &sshd);
    // sshd hands PAM's info messages to the client inside the next prompt's text.
    let mut shown = first.messages().join("\n");
    for (prompt, _) in first.prompts() {
        shown.push_str(&prompt);
    }
    assert!(
        shown.contains("Or enter this key by hand: "),
        "the key is shown: {first:#?}"
    );
    assert!(
        shown.contains("backup codes"),
        "the backup codes are shown: {first:#?}"
    );
    assert!(secret.exists(), "the secret file is written");
    let second = Login::with_key(&user)
        .answer("000000")
        .command("id -un")
        .run(&sshd);
    assert!(
        !second.succeeded(),
        "the next login needs a code from the new key: {second:#?}"
    );
}

/// Issue 12 item 11: enrollment at first login through the real OpenSSH client. `ssh` escapes
/// control characters in keyboard-interactive prompts, so the module must send none: the
/// terminal shows no escape, neither raw nor as `\033` text. The QR code is read back from
/// what the terminal shows, as a phone would see it on a dark theme (light text on a dark
/// background: the code in standard polarity, which zbar reads as it is) and on a light theme
/// (the code inverted: zbar reads it only when told to try inverted codes, like the phone
/// cameras that do; plain zbar, like a scanner that does not, fails there). The code computed
/// from the decoded URI finishes the enrollment and the login.
#[test]
fn given_enroll_at_login_then_the_real_ssh_client_shows_a_qr_code_a_phone_can_scan() {
    if !root_or_skip("enrollment at first login through /usr/bin/ssh") {
        return;
    }
    let user = SshUser::create();
    let config = TestConfig::new("enroll_at_login = true");
    let sshd = Sshd::start(
        &enroll_at_login_service(&config),
        PUBLICKEY_AND_CODE,
        &[&user],
    );
    let mut ssh = RealSsh::login(&sshd, &user, "id -un");
    let shown = ssh.wait_for("Code shown by the app: ", &sshd);
    let raw = ssh.transcript();
    assert!(
        !raw.contains(&0x1b),
        "a raw ESC reached the terminal:\n{shown}"
    );
    for escaped in ["\\033", "\\x1b", "\\e[", "\\233"] {
        assert!(
            !shown.contains(escaped),
            "the terminal shows an escape as text ({escaped}):\n{shown}"
        );
    }
    // Nothing at all was escaped by the client (it writes `\ooo` for what it will not print).
    let octal = shown
        .as_bytes()
        .windows(4)
        .any(|w| w[0] == b'\\' && w[1..].iter().all(|b| (b'0'..=b'7').contains(b)));
    assert!(!octal, "ssh escaped part of the prompt:\n{shown}");
    let stray: Vec<char> = shown
        .chars()
        .filter(|&c| c.is_control() && c != '\n' && c != '\r')
        .collect();
    assert!(
        stray.is_empty(),
        "control characters {stray:?} in:\n{shown}"
    );

    let cells = qr_cells(&shown);
    let dir = sshd.dir();
    let dark = terminal_picture(&cells, Theme::Dark, 6);
    let uri = zbar_decode(&dark, dir, false)
        .unwrap_or_else(|| panic!("no QR code readable on a dark theme:\n{shown}"));
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&user.name),
        "{uri}"
    );
    let light = terminal_picture(&cells, Theme::Light, 6);
    assert_eq!(
        zbar_decode(&light, dir, true).as_deref(),
        Some(uri.as_str()),
        "a scanner that reads inverted codes reads the light theme's picture"
    );
    assert_eq!(
        zbar_decode(&light, dir, false),
        None,
        "on a light theme the code is inverted (documented in docs/ssh.md)"
    );

    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("the URI has a secret");
    let totp = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(secret).expect("base32"))
        .build()
        .expect("totp parameters");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ssh.type_line(&totp.generate(now).to_string());
    ssh.wait_for("Press Enter once the backup codes are stored", &sshd);
    ssh.type_line("");
    let (status, raw) = ssh.finish();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    assert_eq!(status, Some(0), "ssh exits 0 after the login:\n{shown}");
    assert!(
        shown.lines().any(|l| l.trim() == user.name),
        "the command ran as the user:\n{shown}"
    );
    assert!(!raw.contains(&0x1b), "no ESC at all:\n{shown}");
    assert!(
        user.home.join(".config/pam-totp/secret.toml").exists(),
        "the secret file is written"
    );
}
