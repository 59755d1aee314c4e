//! The directory backend (issue 11) end to end: the built pam_totp.so through the real libpam
//! (`pam-client`), configured as pam_totp.conf(5) says (`store = "ldap"` and an `[ldap]` table:
//! StartTLS with the test CA, the validator service account), against a throwaway slapd per test
//! (tests/src/slapd.rs) with the shipped schema and ACL. Users are local accounts with an entry
//! of the same name in the directory, enrolled by `pam-totp enroll --json` run as root (bound as
//! the enrollment administrator).
//!
//! Run as root: `cargo test -p pam-totp-e2e --test ldap_module` (after `cargo build
//! --workspace`); needs slapd, ldap-utils and openssl (tests/install-deps.sh).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pam_totp_e2e::harness::{PamService, TestConfig, TestUser, cli_path, totp_line};
use pam_totp_e2e::harness_client::{Client, PamRun};
use pam_totp_e2e::harness_ldap::LdapConf;
use pam_totp_e2e::harness_syslog::{SyslogCapture, fields};
use pam_totp_e2e::harness_totp::{Enrollment, enroll};
use pam_totp_e2e::require_root;
use pam_totp_e2e::slapd::{Bind, Slapd};

/// The directory password of the test users (for slapo-otp binds).
const USER_PASSWORD: &str = "user-password-1";

/// One "host": its own pam_totp.conf (own state directory and secret template, both unused
/// with the directory, and its `[ldap]` table) and its own PAM service.
struct Host {
    config: TestConfig,
    service: PamService,
}

impl Host {
    /// `extra`: top-level keys; `tag`: names the (unused) local secret template.
    fn new(ldap: &LdapConf, tag: &str, extra: &str) -> Host {
        let config = TestConfig::new(&format!(
            "secret = \"/nonexistent/pam-totp-{tag}/%u.toml\"\n{extra}\n{}",
            ldap.toml()
        ));
        let service = PamService::new(&[totp_line("required", &config.path, "")]);
        Host { config, service }
    }

    /// A pam-client for `user` on this host, from `rhost`.
    fn client(&self, user: &str, rhost: &str) -> Client {
        Client::new(&self.service.name, user).rhost(rhost)
    }

    /// One login answering `answer`.
    fn login(&self, user: &str, rhost: &str, answer: &str) -> PamRun {
        self.client(user, rhost).answer(answer).run()
    }

    /// `pam-totp ARGS --config <this host's>` as root; returns the output (not asserted).
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(cli_path())
            .args(args)
            .arg("--config")
            .arg(&self.config.path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run pam-totp: {e}"))
    }

    /// `pam-totp status --user USER --json`, parsed.
    fn status(&self, user: &str) -> serde_json::Value {
        let out = self.cli(&["status", "--user", user, "--json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "pam-totp status failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("status --json printed no JSON ({e}): {stdout}"))
    }
}

/// A user with a local account and a directory entry, and hosts sharing one slapd. Dropped in
/// field order: services and configurations, the account, then slapd.
struct Fleet {
    hosts: Vec<Host>,
    user: TestUser,
    user_dn: String,
    slapd: Slapd,
}

impl Fleet {
    /// A slapd, a user, and one host per entry of `extras` (its top-level configuration keys),
    /// all with the same `[ldap]` table.
    fn new(extras: &[&str]) -> Fleet {
        let slapd = Slapd::start_default();
        let ldap = LdapConf::new(&slapd);
        Fleet::on(slapd, &ldap, extras)
    }

    fn on(slapd: Slapd, ldap: &LdapConf, extras: &[&str]) -> Fleet {
        let user = TestUser::create();
        let user_dn = slapd.add_user(&user.name, USER_PASSWORD);
        let hosts = extras
            .iter()
            .enumerate()
            .map(|(i, extra)| Host::new(ldap, &format!("host{i}"), extra))
            .collect();
        Fleet {
            hosts,
            user,
            user_dn,
            slapd,
        }
    }

    /// `pam-totp enroll --json --no-confirm` for the user, as root, through the first host.
    fn enroll(&self) -> Enrollment {
        enroll(
            &self.hosts[0].config.path,
            &self.user.name,
            &["--no-confirm"],
        )
    }

    fn login(&self, host: usize, rhost: &str, answer: &str) -> PamRun {
        self.hosts[host].login(&self.user.name, rhost, answer)
    }

    /// The DN of the user's (only) token entry.
    fn token_dn(&self) -> String {
        let out = self.slapd.ldapsearch(
            Bind::Root,
            &self.user_dn,
            &["(objectClass=oathTOTPToken)", "1.1"],
        );
        out.assert_ok("finding the token entry");
        let dns = out.dns();
        assert_eq!(dns.len(), 1, "one token entry: {}", out.stdout);
        dns[0].clone()
    }
}

/// The module's syslog lines for `user` (only this user's: several tests run at once).
fn lines_of(log: &SyslogCapture, user: &str) -> Vec<String> {
    log.lines_containing(&format!("user={user} "))
}

/// The value of `key=` in the last of `user`'s lines that has it.
fn last_field(log: &SyslogCapture, user: &str, key: &str) -> Option<String> {
    lines_of(log, user)
        .iter()
        .rev()
        .find_map(|l| fields(l).get(key).map(|v| (*v).to_string()))
}

#[track_caller]
fn assert_reason(log: &SyslogCapture, user: &str, reason: &str) {
    let lines = lines_of(log, user);
    let last = lines.last().cloned().unwrap_or_default();
    assert_eq!(
        fields(&last).get("reason").copied(),
        Some(reason),
        "last syslog line of {user} should have reason={reason}:\n{}",
        lines.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Two hosts sharing one directory
// ---------------------------------------------------------------------------------------------

#[test]
fn given_two_hosts_on_one_directory_then_codes_backup_codes_throttling_and_reset_are_shared() {
    require_root!();
    let log = SyslogCapture::start();
    // A window of 3 steps: the test uses the codes of the current step and the next three.
    let throttle =
        "window = 3\nthrottle_attempts = 3\nthrottle_delay = 60\nthrottle_user_attempts = 30";
    let fleet = Fleet::new(&[throttle, throttle]);
    let name = fleet.user.name.clone();
    let e = fleet.enroll();
    let step = e.settled_step(3);

    // A TOTP code accepted on host A is refused on host B, and the other way round (each
    // refusal from a host of its own: three would make a host wait).
    fleet
        .login(0, "10.0.0.1", &e.code_for_step(step))
        .assert_result("PAM_SUCCESS");
    fleet
        .login(1, "10.0.1.1", &e.code_for_step(step))
        .assert_result("PAM_AUTH_ERR");
    assert_reason(&log, &name, "replayed-code");
    fleet
        .login(1, "10.0.0.1", &e.code_for_step(step + 1))
        .assert_result("PAM_SUCCESS");
    fleet
        .login(0, "10.0.1.2", &e.code_for_step(step + 1))
        .assert_result("PAM_AUTH_ERR");
    assert_reason(&log, &name, "replayed-code");

    // A backup code likewise.
    fleet
        .login(0, "10.0.0.1", &e.backup_codes[0])
        .assert_result("PAM_SUCCESS");
    fleet
        .login(1, "10.0.1.3", &e.backup_codes[0])
        .assert_result("PAM_AUTH_ERR");
    assert_reason(&log, &name, "backup-code-already-used");
    fleet
        .login(1, "10.0.0.1", &e.backup_codes[1])
        .assert_result("PAM_SUCCESS");
    fleet
        .login(0, "10.0.1.4", &e.backup_codes[1])
        .assert_result("PAM_AUTH_ERR");
    assert_reason(&log, &name, "backup-code-already-used");
    assert_eq!(fleet.hosts[1].status(&name)["backup_codes_left"], 8);

    // Three wrong codes from 10.0.0.2 on host A: host B makes 10.0.0.2 wait, even with a
    // valid code, and says so in `status`; 10.0.0.3 is not affected.
    for _ in 0..3 {
        fleet
            .login(0, "10.0.0.2", &e.wrong_code(step))
            .assert_result("PAM_AUTH_ERR");
        assert_reason(&log, &name, "wrong-code");
    }
    let status = fleet.hosts[1].status(&name);
    let lockouts = status["lockouts"].as_array().cloned().unwrap_or_default();
    assert!(
        lockouts.len() == 1 && lockouts[0]["scope"] == "10.0.0.2",
        "host B's status shows the lock-out of 10.0.0.2 caused on host A: {status:#}"
    );
    fleet
        .login(1, "10.0.0.2", &e.code_for_step(step + 2))
        .assert_result("PAM_AUTH_ERR");
    assert_reason(&log, &name, "throttled");
    assert_eq!(
        last_field(&log, &name, "scope").as_deref(),
        Some("host"),
        "the host's lock-out, not the user's"
    );
    // The code was not spent by the refused login: `unlock` on host A lets 10.0.0.2 in on B.
    let out = fleet.hosts[0].cli(&["unlock", "--user", &name]);
    assert!(out.status.success(), "pam-totp unlock: {out:?}");
    assert_eq!(
        fleet.hosts[1].status(&name)["lockouts"],
        serde_json::json!([]),
        "the unlock on A is seen by B"
    );
    fleet
        .login(1, "10.0.0.2", &e.code_for_step(step + 2))
        .assert_result("PAM_SUCCESS");

    // `reset` on host B: both hosts see the user as not enrolled and refuse the next code.
    let out = fleet.hosts[1].cli(&["reset", "--user", &name]);
    assert!(out.status.success(), "pam-totp reset: {out:?}");
    for host in &fleet.hosts {
        let status = host.status(&name);
        assert_eq!(status["enrolled"], false, "{status:#}");
        assert_eq!(status["lockouts"], serde_json::json!([]), "{status:#}");
    }
    for host in 0..2 {
        fleet
            .login(host, "10.0.0.3", &e.code_for_step(step + 3))
            .assert_result("PAM_AUTH_ERR");
        assert_reason(&log, &name, "no-secret");
    }
}

// ---------------------------------------------------------------------------------------------
// 64 logins racing with one code over two hosts
// ---------------------------------------------------------------------------------------------

/// Logins per round.
const RACERS: usize = 64;
/// Rounds per kind of code.
const ROUNDS: u64 = 10;

/// Starts `RACERS` interactive pam-clients, alternating between the fleet's hosts, waits until
/// each shows its prompt (all hold their directory connection then), sends `answer` to all at
/// once and returns their RESULT names.
fn race(fleet: &Fleet, answer: &str) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut started = Vec::new();
    for i in 0..RACERS {
        let host = &fleet.hosts[i % fleet.hosts.len()];
        let mut cmd = host
            .client(&fleet.user.name, &format!("10.1.0.{}", i + 1))
            .command();
        cmd.arg("--interactive")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("pam-client starts");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        started.push((child, out));
    }
    for (_, out) in &mut started {
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).expect("pam-client output");
            assert!(n > 0, "a pam-client ended before its prompt");
            if line.starts_with("PROMPT_ECHO_OFF") {
                break;
            }
        }
    }
    for (child, _) in &mut started {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .expect("answer sent");
        stdin.flush().expect("flush");
    }
    started
        .into_iter()
        .map(|(mut child, out)| {
            drop(child.stdin.take());
            let result = out
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("RESULT ").map(str::to_string))
                .last()
                .and_then(|r| r.split(' ').next().map(str::to_string))
                .unwrap_or_default();
            let status = child.wait().expect("pam-client exits");
            assert!(status.code().is_some(), "pam-client crashed: {status:?}");
            result
        })
        .collect()
}

/// Asserts one PAM_SUCCESS and `RACERS - 1` PAM_AUTH_ERR, and that every refusal syslog
/// shows for `user` since the first `seen` lines has `reason` (the code was spent; not a
/// directory failure). The module drops a line rather than wait when the syslog socket's
/// queue is full, as it is in a burst of 64: not every line arrives, so they are not counted.
#[track_caller]
fn assert_one_winner(
    log: &SyslogCapture,
    user: &str,
    seen: &mut usize,
    results: &[String],
    reason: &str,
    what: &str,
) {
    let wins = results.iter().filter(|r| *r == "PAM_SUCCESS").count();
    let refused = results.iter().filter(|r| *r == "PAM_AUTH_ERR").count();
    assert!(
        wins == 1 && refused == RACERS - 1,
        "{what}: {wins} successes and {refused} refusals of {RACERS}: {results:?}"
    );
    let lines = lines_of(log, user);
    let new = &lines[*seen..];
    *seen = lines.len();
    let odd: Vec<&String> = new
        .iter()
        .filter(|l| {
            !l.contains("result=success") && fields(l).get("reason").copied() != Some(reason)
        })
        .collect();
    let successes = new.iter().filter(|l| l.contains("result=success")).count();
    assert!(
        successes <= 1 && odd.is_empty(),
        "{what}: refusals for another reason than {reason}:\n{}",
        new.join("\n")
    );
}

#[test]
fn given_64_logins_over_two_hosts_with_one_code_then_exactly_one_succeeds_each_round() {
    require_root!();
    let log = SyslogCapture::start();
    // Throttling off: 63 refusals a round would lock the user out. A window of 6 steps gives
    // ten unused steps in a row now, so rounds need not wait for the clock: round i uses step
    // now-5+i (still inside the window if the clock passes into the next step meanwhile).
    let extra = "throttle = false\nwindow = 6";
    let fleet = Fleet::new(&[extra, extra]);
    let name = fleet.user.name.clone();
    let e = fleet.enroll();
    let start = Instant::now();
    let now = e.step_of(pam_totp_e2e::harness_totp::now());
    let mut seen = lines_of(&log, &name).len();
    for round in 0..ROUNDS {
        let results = race(&fleet, &e.code_for_step(now - 5 + round));
        assert_one_winner(
            &log,
            &name,
            &mut seen,
            &results,
            "replayed-code",
            &format!("TOTP round {round}"),
        );
    }
    let totp = start.elapsed();
    for (round, code) in e.backup_codes.iter().take(ROUNDS as usize).enumerate() {
        let results = race(&fleet, code);
        assert_one_winner(
            &log,
            &name,
            &mut seen,
            &results,
            "backup-code-already-used",
            &format!("backup round {round}"),
        );
    }
    assert_eq!(fleet.hosts[1].status(&name)["backup_codes_left"], 0);
    println!(
        "{ROUNDS} rounds of {RACERS} logins: TOTP {:.1} s, backup codes {:.1} s",
        totp.as_secs_f64(),
        (start.elapsed() - totp).as_secs_f64()
    );
}
