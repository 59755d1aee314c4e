//! Concurrency (issue 7): N logins race with one TOTP code, and with one backup code, through the
//! real libpam; exactly one may succeed, every round. Each client waits at the prompt until all
//! N are there, then all answers are sent at once, so the N state updates really collide.

use pam_totp_e2e::harness::Scenario;
use pam_totp_e2e::harness_client::{Client, PamRun};
use pam_totp_e2e::require_root;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

/// Starts `n` interactive clients, waits until each shows its prompt, sends `answer` to all,
/// and returns their transcripts' results.
fn race(client: &Client, n: usize, answer: &str) -> Vec<String> {
    let mut children = Vec::new();
    for _ in 0..n {
        let mut cmd = client.command();
        cmd.arg("--interactive").stdin(Stdio::piped());
        let mut child = cmd.spawn().expect("pam-client starts");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let got = out.read_line(&mut line).expect("reads pam-client output");
            assert!(got > 0, "pam-client ended before prompting");
            if line.starts_with("PROMPT_ECHO_OFF") {
                break;
            }
        }
        children.push((child, out));
    }
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .expect("answer sent");
        stdin.flush().expect("flush");
    }
    children
        .into_iter()
        .map(|(mut child, out)| {
            drop(child.stdin.take());
            let lines: Vec<String> = out.lines().map_while(Result::ok).collect();
            let status = child.wait().expect("pam-client exits");
            let run = PamRun {
                status,
                lines,
                stderr: String::new(),
            };
            run.result().to_string()
        })
        .collect()
}

fn successes(results: &[String]) -> usize {
    results
        .iter()
        .filter(|r| r.as_str() == "PAM_SUCCESS")
        .count()
}

/// Races `n` clients `rounds` times with the current TOTP code. The state is removed
/// between rounds, so the same step is fresh again for the next race.
fn totp_races(n: usize, rounds: usize) {
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    for round in 0..rounds {
        let step = e.settled_step(8);
        let results = race(&s.client().rhost("198.51.100.7"), n, &e.code_for_step(step));
        assert_eq!(
            successes(&results),
            1,
            "N={n} round {round}: one TOTP code, several successes or none: {results:?}"
        );
        assert!(
            results
                .iter()
                .all(|r| r == "PAM_SUCCESS" || r == "PAM_AUTH_ERR"),
            "{results:?}"
        );
        let state = s.state_toml();
        assert!(state.contains_key("last_step"), "the winner was recorded");
        s.config.remove_state(&s.user.name);
    }
}

/// Races `n` clients with one backup code per round (a different code each round).
fn backup_races(n: usize, rounds: usize) {
    let s = Scenario::new("", "");
    let e = s.enroll(&["--backup-codes", "10"]);
    assert!(e.backup_codes.len() >= rounds);
    for (round, code) in e.backup_codes.iter().take(rounds).enumerate() {
        let results = race(&s.client().rhost("198.51.100.7"), n, code);
        assert_eq!(
            successes(&results),
            1,
            "N={n} round {round}: one backup code, several successes or none: {results:?}"
        );
        // The used code stays used: a later try is refused.
        s.client().answer(code).run().assert_result("PAM_AUTH_ERR");
        // Clear the losers' failure counts (not the used codes) so the next round is not
        // throttled before it prompts.
        let state = s.state();
        assert_eq!(state.backup_used.len(), round + 1, "{state:?}");
        s.cli(&["unlock", "--user", &s.user.name]);
    }
}

#[test]
fn given_20_logins_with_one_totp_code_then_exactly_one_succeeds_each_round() {
    require_root!();
    totp_races(20, 5);
}

#[test]
fn given_64_logins_with_one_totp_code_then_exactly_one_succeeds_each_round() {
    require_root!();
    totp_races(64, 3);
}

#[test]
fn given_20_logins_with_one_backup_code_then_exactly_one_succeeds_each_round() {
    require_root!();
    backup_races(20, 5);
}

#[test]
fn given_64_logins_with_one_backup_code_then_exactly_one_succeeds_each_round() {
    require_root!();
    backup_races(64, 3);
}
