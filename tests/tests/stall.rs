//! No login can make another wait. A login of user V is started the way `su V` starts one: by
//! a setuid-root copy of the PAM client run with another user's real uid, who may therefore stop
//! it (SIGSTOP) at any moment, or let its conversation block by not reading it. Another login
//! of V with a valid code must then succeed at once. With a per-user lock held across the
//! verification (release 0.1) the second login waited the 10 s lock timeout and was refused.

use pam_totp_e2e::harness::{Scenario, TempDir, TestUser};
use pam_totp_e2e::harness_client::{Client, wait_run};
use pam_totp_e2e::require_root;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STALLED_HOST: &str = "198.51.100.50";
const OTHER_HOST: &str = "203.0.113.5";

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

#[test]
fn given_a_stopped_login_of_the_same_user_then_another_login_succeeds_at_once() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&["--backup-codes", "10"]);
    let other = TestUser::create();
    let dir = TempDir::new("stall");
    let copy = setuid_client(&dir);
    let mut waits = Vec::new();
    for (round, backup) in e.backup_codes.iter().take(8).enumerate() {
        // The stalled login answers a wrong code and is stopped somewhere in its verification.
        let client = s.client().rhost(STALLED_HOST).answer("000000");
        let stalled = as_other(&client, &copy, &other.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the stalled login");
        std::thread::sleep(Duration::from_micros(2_000 + 1_500 * round as u64));
        signal(&stalled, nix::sys::signal::Signal::SIGSTOP);
        let (result, took) = second_login(&s, backup);
        signal(&stalled, nix::sys::signal::Signal::SIGCONT);
        kill(stalled);
        assert_eq!(
            result, "PAM_SUCCESS",
            "round {round}: a stopped login of the same user made another one fail"
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
    for _ in 0..3 {
        s.client()
            .rhost(STALLED_HOST)
            .answer(&e.wrong_code(step))
            .run()
            .assert_result("PAM_AUTH_ERR");
    }
    let other = TestUser::create();
    let dir = TempDir::new("stall-read");
    let copy = setuid_client(&dir);
    // The client's output is a pipe that is already full and that nobody reads: the module's
    // "Too many failed attempts" message blocks in the conversation for good.
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    nix::fcntl::fcntl(&write_end, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096)).expect("pipe size");
    nix::fcntl::fcntl(
        &write_end,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("nonblocking");
    let filler = [b'x'; 4096];
    while nix::unistd::write(&write_end, &filler).is_ok() {}
    nix::fcntl::fcntl(
        &write_end,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .expect("blocking again");
    let client = s.client().rhost(STALLED_HOST).answer(&e.wrong_code(step));
    let mut blocked = as_other(&client, &copy, &other.name)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::null())
        .spawn()
        .expect("start the blocked login");
    // Let it reach the module and block on its message.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        blocked.try_wait().expect("wait").is_none(),
        "the blocked client ended: the test did not block it"
    );
    let (result, took) = second_login(&s, &e.backup_codes[0]);
    kill(blocked);
    drop(read_end);
    assert_eq!(
        result, "PAM_SUCCESS",
        "a login blocked in its conversation made another one fail"
    );
    println!("second login took {took:?}");
    // The code from the app works too, from a fresh process after the blocked one is gone.
    let code = e.code_for_step(e.settled_step(4));
    let run = Client::new(&s.service.name, &s.user.name)
        .rhost(OTHER_HOST)
        .answer(&code)
        .spawn();
    assert_eq!(wait_run(run).result(), "PAM_SUCCESS");
}
