//! A syslog daemon that stopped reading must not hang logins: the module's send to `/dev/log`
//! is non-blocking, so with a full socket queue the line is dropped and the login completes.

use pam_totp_e2e::dev_log::PrivateDevLog;
use pam_totp_e2e::harness::Scenario;
use pam_totp_e2e::require_root;
use std::os::unix::net::UnixDatagram;

/// The test's `/dev/log` (private when a daemon owns the host's), never read, its queue full.
struct StuckSyslog {
    _dev_log: PrivateDevLog,
}

impl StuckSyslog {
    fn start() -> StuckSyslog {
        let dev_log = PrivateDevLog::bind().expect("a private /dev/log");
        // Fill its queue until a sender would block.
        let filler = UnixDatagram::unbound().expect("socket");
        filler.connect(dev_log.address()).expect("connect");
        filler.set_nonblocking(true).expect("nonblocking");
        let mut sent = 0;
        while filler.send(b"<13>filler").is_ok() {
            sent += 1;
            assert!(sent < 1_000_000, "the queue never filled");
        }
        StuckSyslog { _dev_log: dev_log }
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
