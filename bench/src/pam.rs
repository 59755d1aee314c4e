//! One PAM transaction of the benchmark, through the test harness's PAM application
//! (`pam_totp_e2e::pam_app`, the same code `pam-client` uses). `pam_start_confdir` reads the
//! service files from the run's own directory, so no file in /etc/pam.d is touched.

use pam_totp_e2e::pam_app::{Converse, Refused, Session, Style};
use std::ffi::{CStr, CString, c_int};
use std::time::{Duration, Instant};

pub use pam_totp_e2e::pam_app::PAM_SUCCESS;

/// PAM_RHOST.
const PAM_RHOST: c_int = 4;
/// PAM_ESTABLISH_CRED, the flag sshd passes to `pam_setcred` after a successful login.
const PAM_ESTABLISH_CRED: c_int = 0x0002;

/// Answers every prompt with the same text; ignores info and error messages.
struct SameAnswer(Vec<u8>);

impl Converse for SameAnswer {
    fn message(&mut self, style: Style, _text: &[u8]) -> Result<Option<Vec<u8>>, Refused> {
        Ok(match style {
            Style::PromptEchoOff | Style::PromptEchoOn => Some(self.0.clone()),
            _ => None,
        })
    }
}

/// One PAM transaction (pam_start .. pam_end).
pub struct Txn(Session);

impl Txn {
    /// `pam_start_confdir` and, if given, PAM_RHOST.
    pub fn start(
        confdir: &CStr,
        service: &CStr,
        user: &CStr,
        rhost: Option<&CStr>,
        answer: &str,
    ) -> Result<Txn, c_int> {
        let answer = CString::new(answer).map_err(|_| 19)?.into_bytes();
        let mut session =
            Session::start_in(Some(confdir), service, user, Box::new(SameAnswer(answer)))?;
        if let Some(rhost) = rhost {
            let rc = session.set_item(PAM_RHOST, rhost);
            if rc != PAM_SUCCESS {
                return Err(rc);
            }
        }
        Ok(Txn(session))
    }

    /// `pam_authenticate(0)`, timed.
    pub fn authenticate(&mut self) -> (c_int, Duration) {
        let t = Instant::now();
        let rc = self.0.authenticate(0);
        (rc, t.elapsed())
    }

    /// `pam_setcred(PAM_ESTABLISH_CRED)`, timed.
    pub fn setcred(&mut self) -> (c_int, Duration) {
        let t = Instant::now();
        let rc = self.0.setcred(PAM_ESTABLISH_CRED);
        (rc, t.elapsed())
    }
}
