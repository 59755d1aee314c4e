//! A syslog daemon that stopped reading must not hang logins: the module's send to `/dev/log`
//! is non-blocking, so with a full socket queue the line is dropped and the login completes.

use pam_totp_e2e::harness::Scenario;
use pam_totp_e2e::harness_syslog::{DEV_LOG, LOCK_FILE};
use pam_totp_e2e::require_root;
use std::fs::OpenOptions;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Owns `/dev/log` without ever reading it; removes it on drop.
struct StuckSyslog {
    _socket: UnixDatagram,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl StuckSyslog {
    fn start() -> StuckSyslog {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(LOCK_FILE)
            .expect("lock file");
        let lock =
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).expect("lock");
        if Path::new(DEV_LOG).exists() {
            assert!(
                UnixDatagram::unbound()
                    .and_then(|s| s.connect(DEV_LOG))
                    .is_err(),
                "a live syslog daemon owns {DEV_LOG}; this test needs it free"
            );
            std::fs::remove_file(DEV_LOG).expect("remove stale /dev/log");
        }
        let socket = UnixDatagram::bind(DEV_LOG).expect("bind /dev/log");
        // Fill its queue until a sender would block.
        let filler = UnixDatagram::unbound().expect("socket");
        filler.connect(DEV_LOG).expect("connect");
        filler.set_nonblocking(true).expect("nonblocking");
        let mut sent = 0;
        while filler.send(b"<13>filler").is_ok() {
            sent += 1;
            assert!(sent < 1_000_000, "the queue never filled");
        }
        StuckSyslog {
            _socket: socket,
            _lock: lock,
        }
    }
}

impl Drop for StuckSyslog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(DEV_LOG);
    }
}

#[test]
fn given_syslog_queue_full_then_login_completes_without_hanging() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let _stuck = StuckSyslog::start();
    let step = e.settled_step(4);
    // The harness kills a client that runs longer than its limit and fails the test.
    s.client()
        .answer(&e.code_for_step(step))
        .run()
        .assert_result("PAM_SUCCESS");
    s.client()
        .answer("000000")
        .run()
        .assert_result("PAM_AUTH_ERR");
}
