//! The directory backend (issue 11) end to end: the built pam_totp.so through the real libpam
//! (`pam-client`), configured as pam_totp.conf(5) says (`store = "ldap"` and an `[ldap]` table:
//! StartTLS with the test CA, the validator service account), against a throwaway slapd per test
//! (tests/src/slapd.rs) with the shipped schema and ACL. Users are local accounts with an entry
//! of the same name in the directory, enrolled by `pam-totp enroll --json` run as root (bound as
//! the enrollment administrator).
//!
//! Run as root: `cargo test -p pam-totp-e2e --test ldap_module` (after `cargo build
//! --workspace`); needs slapd, ldap-utils and openssl (tests/install-deps.sh).

use std::process::Command;
use std::time::{Duration, Instant};

use pam_totp_e2e::harness::{PamService, TestConfig, TestUser, cli_path, totp_line};
use pam_totp_e2e::harness_client::{Client, PamRun, race_over};
use pam_totp_e2e::harness_ldap::LdapConf;
use pam_totp_e2e::harness_syslog::{SyslogCapture, fields};
use pam_totp_e2e::harness_totp::{Enrollment, enroll};
use pam_totp_e2e::require_root;
use pam_totp_e2e::slapd::{Bind, MirrorPair, Slapd};

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

    /// [`Fleet::new`] with the short time-outs of the failure tests ([`CONNECT_TIMEOUT`],
    /// [`TIMEOUT`]); returns their `[ldap]` settings too.
    fn short_timeouts(extras: &[&str]) -> (Fleet, LdapConf) {
        let slapd = Slapd::start_default();
        let ldap = LdapConf::new(&slapd).timeouts(CONNECT_TIMEOUT, TIMEOUT);
        (Fleet::on(slapd, &ldap, extras), ldap)
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

/// The value of `key=` in the last of `user`'s lines that has it.
fn last_field(log: &SyslogCapture, user: &str, key: &str) -> Option<String> {
    log.lines_of_user(user)
        .iter()
        .rev()
        .find_map(|l| fields(l).get(key).map(|v| (*v).to_string()))
}

#[track_caller]
fn assert_reason(log: &SyslogCapture, user: &str, reason: &str) {
    let lines = log.lines_of_user(user);
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

/// `answer` is accepted on host `on` (from 10.0.0.1), then refused on host `then` with
/// `reason` in syslog. The refusal comes from `refused_from`, an address of its own: three
/// refusals from one address would make it wait.
fn accepted_once(
    fleet: &Fleet,
    log: &SyslogCapture,
    (on, then): (usize, usize),
    answer: &str,
    refused_from: &str,
    reason: &str,
) {
    fleet
        .login(on, "10.0.0.1", answer)
        .assert_result("PAM_SUCCESS");
    fleet
        .login(then, refused_from, answer)
        .assert_result("PAM_AUTH_ERR");
    assert_reason(log, &fleet.user.name, reason);
}

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

    // A TOTP code accepted on host A is refused on host B, and the other way round; a backup
    // code likewise.
    let once = |on, then, answer: &str, refused_from, reason| {
        accepted_once(&fleet, &log, (on, then), answer, refused_from, reason);
    };
    once(0, 1, &e.code_for_step(step), "10.0.1.1", "replayed-code");
    once(
        1,
        0,
        &e.code_for_step(step + 1),
        "10.0.1.2",
        "replayed-code",
    );
    once(
        0,
        1,
        &e.backup_codes[0],
        "10.0.1.3",
        "backup-code-already-used",
    );
    once(
        1,
        0,
        &e.backup_codes[1],
        "10.0.1.4",
        "backup-code-already-used",
    );
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

    // No code, backup code or key reached syslog (the module's or the CLI's lines).
    let lines = log.lines().join("\n");
    let codes = (step..=step + 3).map(|s| e.code_for_step(s));
    for secret in codes
        .chain(e.backup_codes.iter().cloned())
        .chain([e.secret.clone()])
    {
        assert!(!lines.contains(&secret), "a secret in syslog:\n{lines}");
    }
}

// ---------------------------------------------------------------------------------------------
// 64 logins racing with one code over two hosts
// ---------------------------------------------------------------------------------------------

/// Logins per round.
const RACERS: usize = 64;
/// Rounds per kind of code.
const ROUNDS: u64 = 10;

/// Starts `RACERS` interactive pam-clients, alternating between the fleet's hosts, each from
/// an address of its own; once each shows its prompt (all hold their directory connection
/// then), sends `answer` to all at once and returns their RESULT names.
fn race(fleet: &Fleet, answer: &str) -> Vec<String> {
    let clients: Vec<Client> = (0..RACERS)
        .map(|i| {
            fleet.hosts[i % fleet.hosts.len()]
                .client(&fleet.user.name, &format!("10.1.0.{}", i + 1))
        })
        .collect();
    race_over(&clients, answer)
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
    let lines = log.lines_of_user(user);
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
    let mut seen = log.lines_of_user(&name).len();
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

// ---------------------------------------------------------------------------------------------
// slapo-otp on the same token entry
// ---------------------------------------------------------------------------------------------

/// `ldapwhoami` bound as `dn` with `password` (StartTLS not needed: loopback test server);
/// returns the LDAP result code (49: invalid credentials).
fn whoami(slapd: &Slapd, dn: &str, password: &str) -> i32 {
    slapd
        .tool("ldapwhoami", Bind::Simple { dn, password }, None, &[], None)
        .code
}

#[test]
fn given_slapo_otp_on_the_token_then_a_code_spent_by_either_is_refused_by_the_other() {
    require_root!();
    let log = SyslogCapture::start();
    let fleet = Fleet::new(&[""]);
    let name = fleet.user.name.clone();
    let e = fleet.enroll();
    let token = fleet.token_dn();
    // Opt the user in to slapo-otp: binds then need the password followed by a code of the
    // token pam-totp enrolled.
    fleet
        .slapd
        .ldapmodify(
            Bind::Root,
            &format!(
                "dn: {}\nchangetype: modify\nadd: objectClass\nobjectClass: oathTOTPUser\n-\n\
                 add: oathTOTPToken\noathTOTPToken: {token}\n",
                fleet.user_dn
            ),
            &[],
        )
        .assert_ok("oathTOTPUser + oathTOTPToken on the user entry");
    assert_eq!(
        whoami(&fleet.slapd, &fleet.user_dn, USER_PASSWORD),
        49,
        "slapo-otp checks this user's binds: the password alone is refused"
    );
    let step = e.settled_step(3);

    // pam-totp first: the bind with the same code is refused.
    let c1 = e.code_for_step(step);
    fleet.login(0, "10.0.0.1", &c1).assert_result("PAM_SUCCESS");
    assert_eq!(
        whoami(
            &fleet.slapd,
            &fleet.user_dn,
            &format!("{USER_PASSWORD}{c1}")
        ),
        49,
        "a bind with the code pam-totp accepted"
    );

    // slapo-otp first: its bind with the next step's code succeeds (the token pam-totp
    // enrolled works for slapo-otp), and pam-totp then refuses that code.
    let c2 = e.code_for_step(step + 1);
    assert_eq!(
        whoami(
            &fleet.slapd,
            &fleet.user_dn,
            &format!("{USER_PASSWORD}{c2}")
        ),
        0,
        "a bind with password + a fresh code of the pam-totp token"
    );
    fleet
        .login(0, "10.0.0.1", &c2)
        .assert_result("PAM_AUTH_ERR");
    assert_reason(&log, &name, "replayed-code");
}

// ---------------------------------------------------------------------------------------------
// Failures: each fails closed, in time, with its own reason
// ---------------------------------------------------------------------------------------------

/// Time-outs of the failure tests (connect, operation), seconds.
const CONNECT_TIMEOUT: f64 = 1.0;
const TIMEOUT: f64 = 1.0;

/// A sanity bound (not a performance figure) for a failed login: three times the configured
/// time-outs of one server.
fn failure_bound() -> Duration {
    Duration::from_secs_f64(3.0 * (CONNECT_TIMEOUT + TIMEOUT))
}

/// Logs in on `host` with `answer` and asserts that it fails closed within [`failure_bound`],
/// its syslog line having `reason` and naming `server`. Returns how long it took.
#[track_caller]
fn assert_fails_closed(
    log: &SyslogCapture,
    host: &Host,
    user: &str,
    answer: &str,
    reason: &str,
    server: &str,
) -> Duration {
    let start = Instant::now();
    let run = host.login(user, "10.0.0.1", answer);
    let took = start.elapsed();
    run.assert_result("PAM_AUTH_ERR");
    assert!(
        took < failure_bound(),
        "{reason}: the login took {took:?}, more than {:?}",
        failure_bound()
    );
    assert_reason(log, user, reason);
    let lines = log.lines_of_user(user);
    let last = lines.last().cloned().unwrap_or_default();
    assert!(
        last.contains(server) && last.contains("result=failure"),
        "the syslog line names the server {server}: {last}"
    );
    assert!(
        !last.contains(answer),
        "the entered code is not logged: {last}"
    );
    println!("{reason}: refused in {:.0} ms", took.as_secs_f64() * 1000.0);
    took
}

/// One login on `host` (from 10.0.0.9) with `expected` as its result, within
/// [`failure_bound`]; prints how long it took under `what`.
#[track_caller]
fn timed_login(host: &Host, user: &str, answer: &str, expected: &str, what: &str) {
    let start = Instant::now();
    host.login(user, "10.0.0.9", answer).assert_result(expected);
    let took = start.elapsed();
    assert!(took < failure_bound(), "{what}: the login took {took:?}");
    println!(
        "{what}: {expected} in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
}

#[test]
fn given_wrong_ca_wrong_password_or_a_dead_first_server_then_tls_credentials_and_failover() {
    require_root!();
    let log = SyslogCapture::start();
    let (fleet, good) = Fleet::short_timeouts(&[""]);
    let name = fleet.user.name.clone();
    let e = fleet.enroll();
    let step = e.settled_step(3);
    let uri = fleet.slapd.ldap_uri();

    let wrong_ca = Host::new(
        &LdapConf {
            ca_file: fleet.slapd.wrong_ca_file(),
            ..good.clone()
        },
        "wrongca",
        "",
    );
    assert_fails_closed(
        &log,
        &wrong_ca,
        &name,
        &e.code_for_step(step),
        "directory-tls",
        &uri,
    );

    let bad_password = pam_totp_e2e::harness_ldap::password_file(
        fleet.slapd.dir(),
        "wrong-service-password",
        "not-the-password",
    );
    let wrong_password = Host::new(
        &LdapConf {
            bind_password_file: bad_password,
            ..good.clone()
        },
        "wrongpw",
        "",
    );
    assert_fails_closed(
        &log,
        &wrong_password,
        &name,
        &e.code_for_step(step),
        "directory-credentials",
        &uri,
    );

    // The first server refuses connections (nothing listens on its port): the login goes to
    // the second, which works, and takes the code none of the refused logins spent.
    let closed = format!("ldap://127.0.0.1:{}", pam_totp_e2e::slapd::free_port());
    let failover = Host::new(&good.clone().uris(vec![closed, uri]), "failover", "");
    let code = e.code_for_step(step);
    timed_login(&failover, &name, &code, "PAM_SUCCESS", "first URI closed");
}

#[test]
fn given_slapd_hung_or_stopped_then_logins_fail_closed_within_the_time_out() {
    require_root!();
    let log = SyslogCapture::start();
    let (mut fleet, conf) = Fleet::short_timeouts(&["window = 3"]);
    let name = fleet.user.name.clone();
    let e = fleet.enroll();
    let step = e.settled_step(5);
    let uri = fleet.slapd.ldap_uri();

    // Hung: the kernel still accepts the connection, slapd answers nothing.
    fleet.slapd.pause();
    let took = assert_fails_closed(
        &log,
        &fleet.hosts[0],
        &name,
        &e.code_for_step(step),
        "directory-timeout",
        &uri,
    );
    let limit = Duration::from_secs_f64(CONNECT_TIMEOUT + 0.75);
    assert!(
        took < limit,
        "a hung server cost {took:?}: more than its connect time-out ({limit:?})"
    );
    // Both of its URIs (StartTLS and ldaps) hung: the login waits for each server's connect
    // time-out once, as pam_totp.conf(5) says, not once more for every directory read of the
    // login; the line names the last server tried.
    let ldaps = fleet.slapd.ldaps_uri();
    let two_hung = Host::new(
        &conf.clone().uris(vec![uri.clone(), ldaps.clone()]),
        "hung2",
        "",
    );
    let took = assert_fails_closed(
        &log,
        &two_hung,
        &name,
        &e.code_for_step(step),
        "directory-timeout",
        &ldaps,
    );
    let limit = Duration::from_secs_f64(2.0 * CONNECT_TIMEOUT + 0.75);
    assert!(
        took < limit,
        "two hung servers cost {took:?}: more than their connect time-outs ({limit:?})"
    );
    fleet.slapd.resume();
    // Back: the code was not spent by the refused logins.
    fleet
        .login(0, "10.0.0.1", &e.code_for_step(step))
        .assert_result("PAM_SUCCESS");

    // Hung while the prompt waits (the connection is open, the search done): the Modify that
    // spends the step gets no answer and the login fails closed in time; the step is not spent.
    let mut login = fleet.hosts[0].client(&name, "10.0.0.1").interactive();
    login.until_prompt().expect("the prompt");
    fleet.slapd.pause();
    let start = Instant::now();
    login.send(&e.code_for_step(step + 1));
    let run = login.finish();
    let took = start.elapsed();
    run.assert_result("PAM_AUTH_ERR");
    assert!(took < failure_bound(), "the refusal took {took:?}");
    assert_reason(&log, &name, "directory-timeout");
    println!(
        "hung after the prompt: refused in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    fleet.slapd.resume();
    fleet
        .login(0, "10.0.0.1", &e.code_for_step(step + 1))
        .assert_result("PAM_SUCCESS");

    // Stopped: connection refused.
    fleet.slapd.stop();
    assert_fails_closed(
        &log,
        &fleet.hosts[0],
        &name,
        &e.code_for_step(step + 2),
        "directory-unreachable",
        &uri,
    );
}

#[test]
fn given_the_schema_not_loaded_then_logins_fail_closed_with_directory_schema() {
    require_root!();
    let log = SyslogCapture::start();
    let slapd = Slapd::start(pam_totp_e2e::slapd::SlapdOptions {
        schema: false,
        acl: false,
    });
    let conf = LdapConf::new(&slapd).timeouts(CONNECT_TIMEOUT, TIMEOUT);
    let fleet = Fleet::on(slapd, &conf, &[""]);
    let name = fleet.user.name.clone();
    let uri = fleet.slapd.ldap_uri();
    // Nobody can be enrolled without the schema: whatever the code, the login fails closed
    // (not "not enrolled").
    assert_fails_closed(
        &log,
        &fleet.hosts[0],
        &name,
        "123456",
        "directory-schema",
        &uri,
    );
}

// ---------------------------------------------------------------------------------------------
// Module hygiene
// ---------------------------------------------------------------------------------------------

/// Socket descriptors of process `pid` (from /proc/<pid>/fd).
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Runs one login with `--print-resources` and asserts that after the PAM calls, and after
/// pam_end, the process has the threads and socket descriptors it had before pam_start. While
/// the prompt waits, the connection to slapd is open (which shows the count sees it).
#[track_caller]
fn assert_nothing_left(host: &Host, user: &str, answer: &str, expected: &str) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut cmd = host.client(user, "10.0.0.1").print_resources().command();
    cmd.arg("--interactive").stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("pam-client starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    let mut at_prompt = None;
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).expect("pam-client output") == 0 {
            break;
        }
        let line = line.trim_end().to_string();
        if line.starts_with("PROMPT_ECHO_OFF") {
            at_prompt = Some(sockets_of(child.id()));
            let stdin = child.stdin.as_mut().expect("stdin");
            stdin
                .write_all(format!("{answer}\n").as_bytes())
                .expect("answer");
            stdin.flush().expect("flush");
        }
        lines.push(line);
    }
    drop(child.stdin.take());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().expect("pam-client exits");
    let run = PamRun {
        status,
        lines,
        stderr,
    };
    run.assert_result(expected);
    let start = run.resources("start").expect("RESOURCES start");
    if let Some(sockets) = at_prompt {
        assert!(
            sockets > start.1,
            "at the prompt the directory connection is open ({sockets} sockets, {} before)",
            start.1
        );
    }
    for when in ["calls", "end"] {
        assert_eq!(
            run.resources(when),
            Some(start),
            "threads and sockets (after the {when}) differ from before pam_start (threads, \
             sockets) = {start:?}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn given_directory_logins_then_no_thread_and_no_socket_outlives_the_call() {
    require_root!();
    let _log = SyslogCapture::start();
    let (mut fleet, _) = Fleet::short_timeouts(&[""]);
    let name = fleet.user.name.clone();
    let e = fleet.enroll();
    let step = e.settled_step(5);
    let host = &fleet.hosts[0];
    assert_nothing_left(host, &name, &e.code_for_step(step), "PAM_SUCCESS");
    assert_nothing_left(host, &name, &e.wrong_code(step), "PAM_AUTH_ERR");
    assert_nothing_left(host, &name, &e.backup_codes[0], "PAM_SUCCESS");
    // A time-out leaves nothing behind either.
    fleet.slapd.pause();
    let host = &fleet.hosts[0];
    assert_nothing_left(host, &name, &e.code_for_step(step + 1), "PAM_AUTH_ERR");
    fleet.slapd.resume();
}

// ---------------------------------------------------------------------------------------------
// Two providers in mirror mode
// ---------------------------------------------------------------------------------------------

/// How long replication may take before the test fails.
const REPLICATION: Duration = Duration::from_secs(10);

/// The values of `attr` of the entry `dn` on `slapd` (as the rootDN).
fn values(slapd: &Slapd, dn: &str, attr: &str) -> Vec<String> {
    let out = slapd.ldapsearch(Bind::Root, dn, &["-s", "base", "(objectClass=*)", attr]);
    out.assert_ok(&format!("reading {attr} of {dn}"));
    out.values(attr)
}

/// Waits until `attr` of `dn` has the same values on both providers; returns how long it took.
fn wait_replicated(pair: &MirrorPair, dn: &str, attr: &str) -> Duration {
    let start = Instant::now();
    loop {
        let first = values(&pair.first, dn, attr);
        if !first.is_empty() && first == values(&pair.second, dn, attr) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < REPLICATION,
            "{attr} of {dn} did not replicate within {REPLICATION:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn given_two_mirrored_providers_then_spent_codes_replicate_and_logins_fail_over() {
    require_root!();
    let log = SyslogCapture::start();
    let mut pair = MirrorPair::start();
    let (first, second) = (pair.first.ldap_uri(), pair.second.ldap_uri());
    // One credential set for both; the test CA differs per server, so each host trusts both.
    let cas = pair.first.dir().join("both-cas.pem");
    std::fs::write(
        &cas,
        [pair.first.ca_file(), pair.second.ca_file()]
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("CA file"))
            .collect::<String>(),
    )
    .expect("write the CA bundle");
    let base = LdapConf {
        ca_file: cas,
        ..LdapConf::new(&pair.first).timeouts(CONNECT_TIMEOUT, TIMEOUT)
    };
    let user = TestUser::create();
    let user_dn = pair.first.add_user(&user.name, USER_PASSWORD);
    let only_first = Host::new(
        &base.clone().uris(vec![first.clone()]),
        "first",
        "window = 3",
    );
    let only_second = Host::new(
        &base.clone().uris(vec![second.clone()]),
        "second",
        "window = 3",
    );
    let both = Host::new(
        &base.clone().uris(vec![first, second]),
        "both",
        "window = 3",
    );
    let name = user.name.clone();
    let e = enroll(&only_first.config.path, &name, &["--no-confirm"]);
    let token = {
        let out = pair.first.ldapsearch(
            Bind::Root,
            &user_dn,
            &["(objectClass=oathTOTPToken)", "1.1"],
        );
        out.dns().first().cloned().expect("a token entry")
    };
    let enrollment = format!("cn=pam-totp,{user_dn}");
    wait_replicated(&pair, &token, "oathTOTPLastTimeStep");
    wait_replicated(&pair, &enrollment, "pamTotpEnrollmentId");
    let step = e.settled_step(5);

    // A code accepted through the first is refused through the second once replicated.
    only_first
        .login(&name, "10.0.0.1", &e.code_for_step(step))
        .assert_result("PAM_SUCCESS");
    let took = wait_replicated(&pair, &token, "oathTOTPLastTimeStep");
    println!(
        "spent step replicated in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    only_second
        .login(&name, "10.0.0.2", &e.code_for_step(step))
        .assert_result("PAM_AUTH_ERR");
    assert_reason(&log, &name, "replayed-code");

    // A backup code spent through the first server (the host with both goes there first).
    both.login(&name, "10.0.0.3", &e.backup_codes[0])
        .assert_result("PAM_SUCCESS");
    wait_replicated(&pair, &enrollment, "pamTotpState");
    wait_replicated(&pair, &token, "oathTOTPLastTimeStep");

    // The first provider hangs: the login goes to the second after the first's time-out.
    pair.first.pause();
    let code = e.code_for_step(step + 1);
    timed_login(&both, &name, &code, "PAM_SUCCESS", "first provider hung");
    pair.first.resume();
    wait_replicated(&pair, &token, "oathTOTPLastTimeStep");

    // The first provider dies: logins go to the second within the time-out, the backup code
    // stays spent there, and a fresh code works.
    pair.first.kill();
    let backup = &e.backup_codes[0];
    timed_login(
        &both,
        &name,
        backup,
        "PAM_AUTH_ERR",
        "first provider killed",
    );
    assert_reason(&log, &name, "backup-code-already-used");
    let code = e.code_for_step(step + 2);
    timed_login(&both, &name, &code, "PAM_SUCCESS", "first provider killed");
    assert_eq!(only_second.status(&name)["backup_codes_left"], 9);
}
