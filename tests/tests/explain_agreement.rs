//! `pam-totp explain` and the module agree on every case: each row sets a login up, runs the
//! built module through the real libpam and `explain --json` on the same configuration and
//! files, and checks that both give the row's expected result.
//!
//! The stack holds pam_totp alone with `required`, so libpam returns the module's own code
//! (PAM_IGNORE from the only module becomes PAM_PERM_DENIED). A login that is asked for a code
//! answers a wrong one, so "asks for a code" shows as a prompt and PAM_AUTH_ERR.

use pam_totp_e2e::harness::Scenario;
use pam_totp_e2e::harness_client::Client;
use pam_totp_e2e::harness_totp::{Enrollment, now};
use pam_totp_e2e::require_root;
use std::process::Command;

const RHOST: &str = "198.51.100.23";

/// What a row expects of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    AuthErr,
    Ignore,
    UserUnknown,
    AsksCode,
}

impl Expect {
    /// What libpam reports for the module alone.
    fn module(self) -> &'static str {
        match self {
            Expect::Success => "PAM_SUCCESS",
            Expect::AuthErr | Expect::AsksCode => "PAM_AUTH_ERR",
            Expect::Ignore => "PAM_PERM_DENIED",
            Expect::UserUnknown => "PAM_USER_UNKNOWN",
        }
    }

    /// What `explain --json` reports as `auth_result`.
    fn explain(self) -> &'static str {
        match self {
            Expect::Success => "PAM_SUCCESS",
            Expect::AuthErr => "PAM_AUTH_ERR",
            Expect::Ignore => "PAM_IGNORE",
            Expect::UserUnknown => "PAM_USER_UNKNOWN",
            Expect::AsksCode => "PAM_SUCCESS with a right code, PAM_AUTH_ERR otherwise",
        }
    }
}

/// A second passwd entry for the scenario's account, removed on drop.
struct Alias(String);

impl Alias {
    fn create(s: &Scenario) -> Alias {
        let name = format!("{}x", s.user.name);
        let ok = Command::new("useradd")
            .args(["-o", "-M", "-u", &s.user.uid.to_string()])
            .args(["-g", &s.user.gid.to_string()])
            .args(["-d", &s.user.home.to_string_lossy(), &name])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "useradd -o {name} failed");
        Alias(name)
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).status();
    }
}

fn explain(s: &Scenario, user: &str, rhost: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "explain".to_string(),
        "--user".into(),
        user.into(),
        "--service".into(),
        s.service.name.clone(),
        "--json".into(),
    ];
    if let Some(h) = rhost {
        args.extend(["--rhost".into(), h.into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    serde_json::from_str(&s.cli(&args)).expect("explain prints JSON")
}

/// Runs both for `user` and checks them against `expect`.
fn agree(row: &str, s: &Scenario, user: &str, rhost: Option<&str>, expect: Expect) {
    let report = explain(s, user, rhost);
    let mut client = Client::new(&s.service.name, user).answer("000000");
    if let Some(h) = rhost {
        client = client.rhost(h);
    }
    let run = client.run();
    assert_eq!(
        report["auth_result"],
        expect.explain(),
        "{row}: explain says {report:#}"
    );
    assert_eq!(
        run.result(),
        expect.module(),
        "{row}: the module did otherwise:\n{}",
        run.transcript()
    );
    assert_eq!(
        !run.prompts().is_empty(),
        !row.starts_with("no-prompt"),
        "{row}: prompt shown or not as the plan says:\n{}",
        run.transcript()
    );
}

fn corrupt(e: &Enrollment) {
    std::fs::write(&e.secret_file, "version = 1\nenrollment_id = [garbage\n").expect("write");
}

/// Logs in once from RHOST with a right code and pam_setcred (the whole stack succeeded), so that
/// the host is remembered.
fn remember_host(s: &Scenario, e: &Enrollment) {
    let code = e.code_for_step(e.settled_step(4));
    s.client()
        .rhost(RHOST)
        .answer(&code)
        .setcred()
        .run()
        .assert_result("PAM_SUCCESS");
}

#[test]
fn given_the_same_facts_then_explain_and_the_module_agree() {
    require_root!();
    // Enrolled: a code is asked.
    let s = Scenario::new("", "");
    s.enroll(&[]);
    agree("enrolled", &s, &s.user.name, None, Expect::AsksCode);
    // An alias of the enrolled account uses its enrollment (uid canonicalisation).
    let alias = Alias::create(&s);
    agree("alias", &s, &alias.0, None, Expect::AsksCode);
    // Unknown users are asked too, then refused as unknown.
    agree("unknown", &s, "nosuchuserptt", None, Expect::UserUnknown);

    // Not enrolled, with and without nullok.
    let s = Scenario::new("", "");
    agree("not enrolled", &s, &s.user.name, None, Expect::AuthErr);
    let s = Scenario::new("nullok = true\n", "");
    agree(
        "not enrolled, nullok (asked like everybody)",
        &s,
        &s.user.name,
        None,
        Expect::Ignore,
    );

    // Corrupt and insecure secret files fail closed without a prompt.
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    corrupt(&e);
    agree(
        "no-prompt: corrupt secret",
        &s,
        &s.user.name,
        None,
        Expect::AuthErr,
    );
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    pam_totp_e2e::harness::set_mode(&e.secret_file, 0o644);
    agree(
        "no-prompt: world-readable secret",
        &s,
        &s.user.name,
        None,
        Expect::AuthErr,
    );

    // A remembered host passes without a code, but never with a corrupt secret file (the case
    // where explain once said "allow" while the module refused).
    let s = Scenario::new("remember = \"1h\"\n", "");
    let e = s.enroll(&[]);
    remember_host(&s, &e);
    agree(
        "no-prompt: remembered",
        &s,
        &s.user.name,
        Some(RHOST),
        Expect::Success,
    );
    agree(
        "remembered, other host",
        &s,
        &s.user.name,
        Some("203.0.113.9"),
        Expect::AsksCode,
    );
    corrupt(&e);
    agree(
        "no-prompt: remembered, corrupt secret",
        &s,
        &s.user.name,
        Some(RHOST),
        Expect::AuthErr,
    );

    // A corrupt state of an enrolled user fails closed.
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    remember_host(&s, &e);
    std::fs::write(s.state_file(), "garbage [").expect("write");
    agree(
        "no-prompt: corrupt state",
        &s,
        &s.user.name,
        None,
        Expect::AuthErr,
    );

    // Exemptions.
    let s = Scenario::new("exempt_users = [\"EXEMPT\"]\n", "");
    let config = std::fs::read_to_string(&s.config.path).expect("config");
    std::fs::write(&s.config.path, config.replace("EXEMPT", &s.user.name)).expect("config");
    s.enroll(&[]);
    agree(
        "no-prompt: exempt user",
        &s,
        &s.user.name,
        None,
        Expect::Ignore,
    );
    let s = Scenario::new(
        "exempt_networks = [\"198.51.100.0/24\"]\nexempt_result = \"success\"\n",
        "",
    );
    s.enroll(&[]);
    agree(
        "no-prompt: exempt network, success",
        &s,
        &s.user.name,
        Some(RHOST),
        Expect::Success,
    );

    // The enrollment deadline: before it a notice, after it a refusal.
    let day = 86_400;
    let date = |t: u64| pam_totp_core::policy::Date::of_time(t).to_string();
    let s = Scenario::new(
        &format!("enroll_deadline = \"{}\"\n", date(now() + 10 * day)),
        "",
    );
    agree(
        "no-prompt: before the deadline",
        &s,
        &s.user.name,
        None,
        Expect::Ignore,
    );
    let s = Scenario::new(
        &format!("enroll_deadline = \"{}\"\n", date(now() - 10 * day)),
        "",
    );
    agree(
        "no-prompt: after the deadline",
        &s,
        &s.user.name,
        None,
        Expect::AuthErr,
    );

    // A throttled host is refused at once.
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let step = e.settled_step(4);
    for _ in 0..3 {
        s.client()
            .rhost(RHOST)
            .answer(&e.wrong_code(step))
            .run()
            .assert_result("PAM_AUTH_ERR");
    }
    agree(
        "throttled (asked like everybody, then told)",
        &s,
        &s.user.name,
        Some(RHOST),
        Expect::AuthErr,
    );
}
