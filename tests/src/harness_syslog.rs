//! Captures what the module sends to syslog: a test gets a `/dev/log` of its own for its duration
//! ([`crate::dev_log`]: in a private mount namespace when a daemon such as journald listens on the
//! host's, which stays untouched). Start the capture before the processes whose lines it should
//! get (pam-client, sshd, `pam-totp`), on the test's thread.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::dev_log::PrivateDevLog;
pub use crate::dev_log::{DEV_LOG, LOCK_FILE};

/// Prefix of the datagrams [`SyslogCapture::lines`] sends itself to know all earlier ones arrived.
const MARKER: &str = "\u{0}pam-totp-e2e-sync ";

#[derive(Default)]
struct Inbox {
    lines: Vec<String>,
    synced: u64,
}

/// Owns the test's `/dev/log` until dropped and collects every line sent to it.
pub struct SyslogCapture {
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    markers: AtomicU64,
    // Dropped after the reader is joined (a thread started in the namespace must be gone before
    // the test's thread leaves it).
    dev_log: PrivateDevLog,
}

impl std::fmt::Debug for SyslogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyslogCapture")
    }
}

impl SyslogCapture {
    /// Waits for the capture lock, then makes the test's socket `/dev/log` for this thread and
    /// the processes it starts.
    ///
    /// # Panics
    /// The socket, the private namespace or the bind mount cannot be made.
    pub fn start() -> SyslogCapture {
        let dev_log = PrivateDevLog::bind()
            .unwrap_or_else(|e| panic!("cannot make a private {DEV_LOG}: {e}"));
        let socket = dev_log
            .socket()
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone the {DEV_LOG} socket: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap_or_else(|e| panic!("cannot set a read timeout on {DEV_LOG}: {e}"));
        let inbox: Arc<(Mutex<Inbox>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let inbox = Arc::clone(&inbox);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || read_loop(&socket, &inbox, &stop))
        };
        SyslogCapture {
            inbox,
            stop,
            reader: Some(reader),
            markers: AtomicU64::new(0),
            dev_log,
        }
    }

    /// Every line received so far, including all sent before this call (it sends itself a
    /// marker datagram and waits until the reader got it: datagrams arrive in order).
    pub fn lines(&self) -> Vec<String> {
        let n = self.markers.fetch_add(1, Ordering::SeqCst) + 1;
        let sender = UnixDatagram::unbound()
            .unwrap_or_else(|e| panic!("cannot create a datagram socket: {e}"));
        sender
            .send_to(format!("{MARKER}{n}").as_bytes(), self.dev_log.address())
            .unwrap_or_else(|e| panic!("cannot send to {DEV_LOG}: {e}"));
        let (lock, cond) = &*self.inbox;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut inbox = lock.lock().unwrap_or_else(|e| e.into_inner());
        while inbox.synced < n {
            assert!(
                Instant::now() < deadline,
                "the syslog reader did not catch up"
            );
            inbox = cond
                .wait_timeout(inbox, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        inbox.lines.clone()
    }

    /// The lines whose `user=` field is exactly `user` (a substring test would also take the
    /// lines of `u12` for `u1`, and the tests of one binary log to the same socket).
    pub fn lines_of_user(&self, user: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| is_of_user(l, user))
            .collect()
    }

    /// The lines that contain `needle`.
    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }
}

fn read_loop(socket: &UnixDatagram, inbox: &(Mutex<Inbox>, Condvar), stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (lock, cond) = inbox;
        let mut inbox = lock.lock().unwrap_or_else(|e| e.into_inner());
        match text.strip_prefix(MARKER) {
            Some(n) => inbox.synced = inbox.synced.max(n.trim().parse().unwrap_or(0)),
            None => inbox
                .lines
                .push(text.trim_end_matches(['\n', '\0']).to_string()),
        }
        cond.notify_all();
    }
}

impl Drop for SyslogCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.dev_log.close();
    }
}

/// The `key=value` words of a log line (`user=alice service=sshd ... reason=wrong-code`).
pub fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .collect()
}

/// Whether a log line's `user=` field is exactly `user`.
pub fn is_of_user(line: &str, user: &str) -> bool {
    fields(line).get("user") == Some(&user)
}

/// Whether a line has all the given `key=value` fields.
pub fn has_fields(line: &str, expected: &[(&str, &str)]) -> bool {
    let f = fields(line);
    expected.iter().all(|(k, v)| f.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_name_that_prefixes_another_then_only_its_own_lines_are_its() {
        let line = "<85>Nov 27 18:16:55 pam_totp[1]: pam_totp(s:auth): user=ptt7u12 service=s";
        assert!(is_of_user(line, "ptt7u12"));
        assert!(!is_of_user(line, "ptt7u1"));
        assert!(!is_of_user(
            "<85>pam_totp[1]: action=reset by=ptt7u1",
            "ptt7u1"
        ));
    }
}
