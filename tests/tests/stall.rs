//! No login can make another wait. A login of user V is started the way `su V` starts one: by
//! a setuid-root copy of the PAM client run with another user's real uid, who may therefore stop
//! it (SIGSTOP) at any moment, or let its conversation block by not reading it. Another login
//! of V with a valid code must then succeed at once. With a per-user lock held across the
//! verification (release 0.1) the second login waited the 10 s lock timeout and was refused.

use pam_totp_e2e::harness::{Scenario, TempDir, TestUser};
use pam_totp_e2e::harness_client::Client;
use pam_totp_e2e::require_root;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STALLED_HOST: &str = "198.51.100.50";
const OTHER_HOST: &str = "203.0.113.5";

/// O_NONBLOCK, for OpenOptions.
fn libc_nonblock() -> i32 {
    nix::fcntl::OFlag::O_NONBLOCK.bits()
}

/// A setuid-root copy of the PAM client, runnable by anyone.
fn setuid_client(dir: &TempDir) -> PathBuf {
    let copy = dir.join("pam-client-su");
    std::fs::copy(pam_totp_e2e::harness::pam_client_path(), &copy).expect("copy pam-client");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let dir_mode = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), dir_mode).expect("chmod dir");
    copy
}

/// `client` run as `runuser -u <as_user> -- <setuid copy> ...`.
fn as_other(client: &Client, copy: &PathBuf, as_user: &str) -> Command {
    let original = client.command();
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", as_user, "--"])
        .arg(copy)
        .args(original.get_args());
    cmd
}

/// Signals runuser and the client it started.
fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let _ = Command::new("pkill")
        .args([&format!("-{}", sig as i32), "-P", &child.id().to_string()])
        .status();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = nix::sys::signal::kill(pid, sig);
}

/// Kills runuser and the client it started, and reaps runuser.
fn kill(mut child: Child) {
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// A second login of V from another host with `code`, timed.
fn second_login(s: &Scenario, code: &str) -> (String, Duration) {
    let start = Instant::now();
    let run = s.client().rhost(OTHER_HOST).answer(code).run();
    (run.result().to_string(), start.elapsed())
}

/// The stalled login: started as `as_user`, answered once its prompt shows, then stopped
/// `delay` later, in the middle of judging the answer.
fn stalled_login(
    s: &Scenario,
    copy: &PathBuf,
    as_user: &str,
    (host, answer): (&str, &str),
    delay: Duration,
) -> Child {
    let client = s.client().rhost(host);
    let mut child = as_other(&client, copy, as_user)
        .arg("--interactive")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the stalled login");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.starts_with("PROMPT_ECHO_") {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the stalled login ended before its prompt");
        }
    }
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .expect("answer");
    stdin.flush().expect("flush");
    std::thread::sleep(delay);
    signal(&child, nix::sys::signal::Signal::SIGSTOP);
    child
}

#[test]
fn given_a_stopped_login_of_the_same_user_then_another_login_succeeds_at_once() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&["--backup-codes", "10"]);
    let other = TestUser::create();
    let dir = TempDir::new("stall");
    let copy = setuid_client(&dir);
    // A wrong answer with the shape of a backup code takes longest to judge (a slow hash).
    let wrong_backup: String = e.backup_codes[9].chars().rev().collect();
    let mut waits = Vec::new();
    for (round, backup) in e.backup_codes.iter().take(8).enumerate() {
        let delay = Duration::from_millis(1 + 3 * round as u64);
        // Each from its own host: the wrong answers would throttle a shared one.
        let host = format!("198.51.100.{}", 60 + round);
        let stalled = stalled_login(
            &s,
            &copy,
            &other.name,
            (host.as_str(), wrong_backup.as_str()),
            delay,
        );
        let (result, took) = second_login(&s, backup);
        signal(&stalled, nix::sys::signal::Signal::SIGCONT);
        kill(stalled);
        assert_eq!(
            result, "PAM_SUCCESS",
            "round {round}: a login of the same user stopped {delay:?} after its answer made \
             another one fail (after {took:?})"
        );
        waits.push(took);
    }
    println!("second logins took {waits:?}");
}

#[test]
fn given_a_throttled_login_whose_client_stops_reading_then_another_login_succeeds() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&["--backup-codes", "10"]);
    let step = e.settled_step(4);
    let wrong = |n: u64| {
        s.client()
            .rhost(STALLED_HOST)
            .answer(&e.wrong_code(step + n))
            .run()
            .assert_result("PAM_AUTH_ERR");
    };
    wrong(0);
    wrong(1);
    let other = TestUser::create();
    let dir = TempDir::new("stall-read");
    let copy = setuid_client(&dir);
    // The blocked login's output is a pipe the test reads until the prompt, then fills up and
    // stops reading: its "Too many failed attempts" message never gets through. The test fills
    // it through an open file description of its own, so only its own writes are non-blocking.
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    let filler = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc_nonblock())
        .open(format!("/proc/self/fd/{}", write_end.as_raw_fd()))
        .expect("second description of the pipe");
    let client = s.client().rhost(STALLED_HOST);
    let mut blocked = as_other(&client, &copy, &other.name)
        .arg("--interactive")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::null())
        .spawn()
        .expect("start the blocked login");
    let mut out = BufReader::new(std::fs::File::from(read_end));
    let mut line = String::new();
    while !line.starts_with("PROMPT_ECHO_") {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the blocked login ended before its prompt");
        }
    }
    // While it waits at the prompt, the third failure throttles its host.
    wrong(2);
    while (&filler).write(&[b'x'; 512]).is_ok() {}
    let stdin = blocked.stdin.as_mut().expect("stdin");
    stdin
        .write_all(format!("{}\n", e.wrong_code(step)).as_bytes())
        .expect("answer");
    stdin.flush().expect("flush");
    // Let it take its answer, find the host throttled and block on the message.
    std::thread::sleep(Duration::from_millis(300));
    let (result, took) = second_login(&s, &e.backup_codes[0]);
    kill(blocked);
    drop(out);
    assert_eq!(
        result, "PAM_SUCCESS",
        "a login blocked in its conversation made another one fail (after {took:?})"
    );
    println!("second login took {took:?}");
}
