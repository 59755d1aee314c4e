//! SSH end to end with the directory backend (issue 11): the private sshd of tests/src/ssh.rs
//! with pam_totp.so configured `store = "ldap"` against a throwaway slapd (StartTLS, the
//! validator service account), the real `/usr/bin/ssh` in a pty logging in with its key and
//! then a code from the directory enrollment. Run as root: `cargo test -p pam-totp-e2e --test
//! ldap_ssh`; needs openssh-server, openssh-client, python3-paramiko, slapd, ldap-utils.

use pam_totp_e2e::harness::{TestConfig, module_path, root_or_skip};
use pam_totp_e2e::harness_ldap::LdapConf;
use pam_totp_e2e::harness_syslog::{SyslogCapture, fields};
use pam_totp_e2e::slapd::Slapd;
use pam_totp_e2e::ssh::{Login, RealSsh, SshUser, Sshd, TrackedEnrollment};

/// pam_totp's default prompt.
const CODE_PROMPT: &str = "Verification code: ";
const PUBLICKEY_AND_CODE: &str = "AuthenticationMethods publickey,keyboard-interactive";

/// The service: pam_totp with the directory configuration, then pam_unix's account and session
/// (as Debian's `/etc/pam.d/sshd` has them).
fn pam_service(config: &TestConfig) -> String {
    format!(
        "# pam-totp directory SSH test service\nauth required {} {}\n\
         account required pam_unix.so\nsession required pam_unix.so\n",
        module_path().display(),
        config.arg()
    )
}

/// The reasons of `user`'s syslog lines so far, in order (`success` for a success).
fn outcomes(log: &SyslogCapture, user: &str) -> Vec<String> {
    log.lines_of_user(user)
        .iter()
        .map(|l| {
            let f = fields(l);
            match (f.get("result"), f.get("reason")) {
                (Some(&"success"), _) => "success".to_string(),
                (_, Some(reason)) => (*reason).to_string(),
                _ => l.clone(),
            }
        })
        .collect()
}

#[test]
fn given_a_directory_enrollment_then_ssh_key_and_code_log_in_and_the_code_replayed_is_refused() {
    if !root_or_skip("SSH with the directory backend") {
        return;
    }
    let log = SyslogCapture::start();
    let slapd = Slapd::start_default();
    let user = SshUser::create();
    slapd.add_user(&user.name, &user.password);
    let config = TestConfig::new(&LdapConf::new(&slapd).toml());
    let enrollment = TrackedEnrollment::enroll(&user, &config.path);
    let stored = enrollment.secret_file.to_string_lossy().into_owned();
    assert!(
        stored.starts_with("cn=pam-totp,") && !enrollment.secret_file.exists(),
        "the enrollment went to the directory, not to a local file: {stored}"
    );
    let sshd = Sshd::start(&pam_service(&config), PUBLICKEY_AND_CODE, &[&user]);

    // The real client: key, then the code from the directory enrollment.
    let code = enrollment.fresh_code();
    let mut ssh = RealSsh::login(&sshd, &user, "id -un");
    ssh.wait_for(CODE_PROMPT, &sshd);
    ssh.type_line(&code);
    let (status, raw) = ssh.finish();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    assert_eq!(status, Some(0), "ssh exits 0 after the login:\n{shown}");
    assert!(
        shown.lines().any(|l| l.trim() == user.name),
        "the command ran as the user:\n{shown}\n{}",
        sshd.log_tail(40)
    );
    assert_eq!(outcomes(&log, &user.name), ["success"]);

    // The same code again through the real client: refused, ssh asks again, no command runs.
    let mut ssh = RealSsh::login(&sshd, &user, "id -un");
    ssh.wait_for(CODE_PROMPT, &sshd);
    ssh.type_line(&code);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let shown = loop {
        let shown = String::from_utf8_lossy(&ssh.transcript()).into_owned();
        if shown.matches(CODE_PROMPT).count() >= 2 || std::time::Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(
        shown.matches(CODE_PROMPT).count(),
        2,
        "after the replayed code ssh asks again:\n{shown}\n{}",
        sshd.log_tail(40)
    );
    assert!(
        !shown.lines().any(|l| l.trim() == user.name),
        "no command ran:\n{shown}"
    );
    // The client vanishes at the second prompt: sshd ends the attempt, no answer is judged.
    drop(ssh);
    assert_eq!(outcomes(&log, &user.name), ["success", "replayed-code"]);

    // And through the scripted client, which reports the refusal itself.
    let again = Login::with_key(&user)
        .answer(&code)
        .command("id -un")
        .run(&sshd);
    assert_eq!(again.auth, "failure", "the replayed code: {again:#?}");
    assert!(again.stdout.is_empty(), "no command ran: {again:#?}");
    assert_eq!(
        outcomes(&log, &user.name),
        ["success", "replayed-code", "replayed-code"]
    );
    // No code reached the log.
    let lines = log.lines().join("\n");
    assert!(!lines.contains(&code), "a code in syslog:\n{lines}");
}
