//! `pam-totp explain` names the policy rule that decides a login (exemptions, required groups,
//! publickey, the enrollment deadline, enrollment at login, remembered hosts) and reports a
//! policy key naming an unknown group as a configuration error with file, line and key.

mod common;

use common::*;
use pam_totp_core::state::{Remembered, State};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `explain --json` and returns the parsed report.
fn explain(conf: &std::path::Path, user: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--config",
        conf.to_str().unwrap(),
        "explain",
        "--user",
        user,
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = run(&args, "");
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The rule that decided and its detail.
fn decider(report: &serde_json::Value) -> (String, String) {
    let last = report["rules"].as_array().unwrap().last().unwrap();
    assert_eq!(last["result"], "decides", "{report}");
    (
        last["rule"].as_str().unwrap().to_string(),
        last["detail"].as_str().unwrap().to_string(),
    )
}

fn enroll(conf: &std::path::Path, user: &str) {
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "enroll",
            "--json",
            "--user",
            user,
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn given_exemptions_then_explain_names_the_rule_and_the_result() {
    if !root_or_skip("given_exemptions_then_explain_names_the_rule_and_the_result") {
        return;
    }
    let dir = TempDir::new("explain-exempt");
    let user = TestUser::new();
    let group = TestGroup::new();
    group.add(&user.name);
    let conf = dir.config(&format!(
        "exempt_groups = [\"{}\"]\nexempt_networks = [\"192.0.2.0/24\"]\n",
        group.name
    ));
    enroll(&conf, &user.name);

    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "ignore");
    assert_eq!(r["pam_result"], "PAM_IGNORE");
    let (rule, detail) = decider(&r);
    assert_eq!(rule, "policy");
    assert!(
        detail.starts_with(&format!("exempt_groups ({})", group.name)),
        "{detail}"
    );

    // A user outside the group: the network decides, then nothing does.
    let other = TestUser::new();
    enroll(&conf, &other.name);
    let r = explain(&conf, &other.name, &["--rhost", "192.0.2.77"]);
    assert_eq!(r["decision"], "ignore");
    assert!(
        decider(&r).1.starts_with("exempt_networks (192.0.2.0/24)"),
        "{r}"
    );
    let r = explain(&conf, &other.name, &["--rhost", "198.51.100.7"]);
    assert_eq!(r["decision"], "ask-for-code");
    let policy = &r["rules"].as_array().unwrap()[2];
    assert_eq!(policy["rule"], "policy");
    assert_eq!(policy["result"], "pass");
    assert_eq!(policy["detail"], "no exemption applies");

    // exempt_result = "success": the exemption lets the login through.
    let conf = dir.config(&format!(
        "exempt_groups = [\"{}\"]\nexempt_result = \"success\"\n",
        group.name
    ));
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "allow");
    assert_eq!(r["pam_result"], "PAM_SUCCESS");
    assert!(decider(&r).1.contains("exempt_result = \"success\""), "{r}");

    // require = "groups": members are asked, others are not.
    let conf = dir.config(&format!(
        "require = \"groups\"\nrequire_groups = [\"{}\"]\n",
        group.name
    ));
    let r = explain(&conf, &other.name, &[]);
    assert_eq!(r["decision"], "ignore");
    assert!(decider(&r).1.starts_with("require = \"groups\""), "{r}");
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "ask-for-code", "{r}");

    // publickey = "skip" applies only when the key succeeded.
    let conf = dir.config("publickey = \"skip\"\n");
    let r = explain(&conf, &user.name, &["--publickey"]);
    assert_eq!(r["decision"], "ignore");
    assert!(decider(&r).1.starts_with("publickey = \"skip\""), "{r}");
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "ask-for-code", "{r}");
}

#[test]
fn given_unenrolled_user_then_deadline_and_enroll_at_login_decide() {
    if !root_or_skip("given_unenrolled_user_then_deadline_and_enroll_at_login_decide") {
        return;
    }
    let dir = TempDir::new("explain-deadline");
    let user = TestUser::new();
    // Twelve days from today (UTC).
    let today = pam_totp_core::policy::Date::of_time(now());
    let soon = pam_totp_core::policy::Date {
        days: today.days + 12,
    };
    let conf = dir.config(&format!("enroll_deadline = {soon}\n"));
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "ignore");
    let (rule, detail) = decider(&r);
    assert_eq!(rule, "policy");
    assert!(
        detail.starts_with(&format!("enroll_deadline {soon}, 12 days left")),
        "{detail}"
    );
    let text = stdout(&run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "explain",
            "--user",
            &user.name,
        ],
        "",
    ));
    assert!(
        text.contains(
            "Decision: pam_totp steps aside (the rest of the PAM stack decides) -> PAM_IGNORE."
        ),
        "{text}"
    );

    let past = pam_totp_core::policy::Date {
        days: today.days - 1,
    };
    let conf = dir.config(&format!(
        "enroll_deadline = {past}\nenroll_contact = \"the help desk\"\n"
    ));
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "deny");
    let detail = decider(&r).1;
    assert!(
        detail.contains(&format!("enroll_deadline {past} has passed")),
        "{detail}"
    );
    assert!(detail.contains("the help desk"), "{detail}");

    let conf = dir.config("enroll_at_login = true\n");
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "enroll-at-login");
    assert!(decider(&r).1.starts_with("enroll_at_login"), "{r}");

    let conf = dir.config("nullok = true\n");
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "ignore");
    assert!(decider(&r).1.contains("`nullok` is set"), "{r}");
}

#[test]
fn given_remembered_host_then_allowed_until_expiry_and_only_for_that_host() {
    if !root_or_skip("given_remembered_host_then_allowed_until_expiry_and_only_for_that_host") {
        return;
    }
    let dir = TempDir::new("explain-remember");
    let user = TestUser::new();
    let conf = dir.config("remember = \"1h\"\n");
    enroll(&conf, &user.name);
    let t = now();
    let d = dir.path().join("state");
    std::fs::create_dir_all(&d).unwrap();
    let tag = {
        use pam_totp_core::store::Store;
        pam_totp_core::store::LocalFiles::new("/x/${USER}".into(), d.clone(), None, 0o600, true)
            .password_tag(&user.name)
    };
    let mut state = State::new();
    state.remembered.push(Remembered {
        rhost: "198.51.100.7".into(),
        until: t + 1800,
        password_tag: tag,
        since: t - 1800,
    });
    let p = d.join(format!("{}.state", user.name));
    std::fs::write(&p, state.to_toml().unwrap()).unwrap();

    let r = explain(&conf, &user.name, &["--rhost", "198.51.100.7"]);
    assert_eq!(r["decision"], "allow");
    let detail = decider(&r).1;
    assert!(
        detail.starts_with("remember: 198.51.100.7 until "),
        "{detail}"
    );
    let r = explain(&conf, &user.name, &["--rhost", "203.0.113.9"]);
    assert_eq!(r["decision"], "ask-for-code");
    assert_eq!(
        r["rules"].as_array().unwrap()[2]["detail"],
        "remember: 203.0.113.9 is not remembered"
    );
    let r = explain(&conf, &user.name, &[]);
    assert_eq!(r["decision"], "ask-for-code", "never for local logins");
}

#[test]
fn given_unknown_group_in_policy_then_service_error_with_file_line_and_key() {
    let dir = TempDir::new("explain-badgroup");
    let conf = dir.config("nullok = true\nexempt_groups = [\"no-such-group-ptc\"]\n");
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "explain",
            "--user",
            "root",
            "--json",
        ],
        "",
    );
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!o.status.success());
        return;
    }
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["decision"], "service-error");
    assert_eq!(r["pam_result"], "PAM_SERVICE_ERR");
    let (rule, detail) = decider(&r);
    assert_eq!(rule, "configuration");
    assert_eq!(
        detail,
        format!(
            "{}: line 3: key `exempt_groups`: unknown group `no-such-group-ptc`",
            conf.display()
        )
    );
}
