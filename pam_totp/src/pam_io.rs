//! What the flow needs from PAM, as a trait, so the flow can be tested with a scripted fake and
//! raw pointers never reach it. [`RealPam`] is the only user of pam-bindings' handle.

use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SILENT, PAM_TEXT_INFO, PamFlag,
    PamResultCode,
};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, Service, Tty, User};
use pam::module::PamHandle;
use zeroize::Zeroizing;

/// A string item of the PAM handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// PAM_SERVICE.
    Service,
    /// PAM_RHOST.
    RHost,
    /// PAM_TTY.
    Tty,
    /// PAM_USER as already set, without asking (see [`PamIo::user`] for that).
    User,
}

/// libpam refused to set an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetItemError;

/// A second factor passed in the auth phase, waiting for the whole stack's success (libpam's
/// `pam_setcred` or `pam_acct_mgmt`) before it clears counters, trusts or remembers the host.
/// Kept with the handle (`pam_set_data`), so it dies with a failed stack at `pam_end`.
pub struct Pending {
    /// Where the state lives: a store not yet connected (a directory store connects when the
    /// success is committed, in that later PAM call, and disconnects before it returns).
    pub store: Box<dyn pam_totp_core::store::Store + Sync>,
    /// The canonical account.
    pub user: String,
    /// Throttle key of the host.
    pub host: String,
    /// The login.
    pub last_use: pam_totp_core::state::LastUse,
    /// The host to remember, with `remember`.
    pub remember: Option<pam_totp_core::store::Remember>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("user", &self.user)
            .field("host", &self.host)
            .field("last_use", &self.last_use)
            .field("remember", &self.remember)
            .finish_non_exhaustive()
    }
}

/// The PAM operations the flow uses.
pub trait PamIo {
    /// PAM_USER (may ask the application).
    fn user(&mut self) -> Result<String, PamResultCode>;
    /// A string item, or `None` when unset or not UTF-8.
    fn item(&self, item: Item) -> Option<String>;
    /// PAM_AUTHTOK as left by an earlier module.
    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>>;
    /// Sets PAM_AUTHTOK for later modules.
    fn set_authtok(&mut self, token: &[u8]) -> Result<(), SetItemError>;
    /// A variable of the PAM environment.
    fn getenv(&mut self, name: &str) -> Option<String>;
    /// Asks a question; `echo` shows the answer while typed.
    fn prompt(&self, message: &str, echo: bool) -> Result<Zeroizing<Vec<u8>>, PamResultCode>;
    /// Shows an informational line (not under PAM_SILENT).
    fn info(&self, message: &str);
    /// Shows an error line (not under PAM_SILENT).
    fn error(&self, message: &str);
    /// Whether this service's PAM stack runs pam_totp in its account phase with a control that
    /// fails the stack (needed by `enroll_at_login`; see [`pam_totp_core::pamd`]).
    fn account_phase_has_module(&self) -> bool;
    /// Keeps `pending` with the handle until [`PamIo::take_pending`].
    fn set_pending(&mut self, pending: Pending);
    /// Takes what [`PamIo::set_pending`] kept, once.
    fn take_pending(&mut self) -> Option<Pending>;
}

/// The real handle, as libpam passed it to the hook.
pub struct RealPam<'a> {
    pamh: &'a mut PamHandle,
    silent: bool,
}

impl<'a> RealPam<'a> {
    /// Wraps the handle of the current hook.
    pub fn new(pamh: &'a mut PamHandle, flags: PamFlag) -> Self {
        RealPam {
            pamh,
            silent: flags & PAM_SILENT != 0,
        }
    }

    fn say(&self, style: pam::constants::PamMessageStyle, message: &str) {
        if self.silent {
            return;
        }
        if let Ok(Some(conv)) = self.pamh.get_item::<Conv>() {
            // A failed informational message does not change the outcome.
            let _ = conv.send(style, message);
        }
    }
}

impl PamIo for RealPam<'_> {
    fn user(&mut self) -> Result<String, PamResultCode> {
        self.pamh.get_user(None)
    }

    fn item(&self, item: Item) -> Option<String> {
        let value = match item {
            Item::Service => self.pamh.get_item::<Service>().ok()?.map(|s| s.0),
            Item::RHost => self.pamh.get_item::<RHost>().ok()?.map(|s| s.0),
            Item::Tty => self.pamh.get_item::<Tty>().ok()?.map(|s| s.0),
            Item::User => self.pamh.get_item::<User>().ok()?.map(|s| s.0),
        };
        value.and_then(|v| v.to_str().ok().map(str::to_owned))
    }

    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        let tok = self.pamh.get_item::<AuthTok>().ok()??;
        Some(Zeroizing::new(tok.as_bytes().to_vec()))
    }

    fn set_authtok(&mut self, token: &[u8]) -> Result<(), SetItemError> {
        crate::ffi::set_authtok(self.pamh, token).map_err(|()| SetItemError)
    }

    fn getenv(&mut self, name: &str) -> Option<String> {
        crate::ffi::getenv(self.pamh, name)
    }

    fn prompt(&self, message: &str, echo: bool) -> Result<Zeroizing<Vec<u8>>, PamResultCode> {
        let conv = self
            .pamh
            .get_item::<Conv>()?
            .ok_or(PamResultCode::PAM_CONV_ERR)?;
        let style = if echo {
            PAM_PROMPT_ECHO_ON
        } else {
            PAM_PROMPT_ECHO_OFF
        };
        let answer = conv.send(style, message)?;
        Ok(Zeroizing::new(
            answer.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
        ))
    }

    fn info(&self, message: &str) {
        self.say(PAM_TEXT_INFO, message);
    }

    fn error(&self, message: &str) {
        self.say(PAM_ERROR_MSG, message);
    }

    fn account_phase_has_module(&self) -> bool {
        let service = self.item(Item::Service).unwrap_or_default();
        let dir = std::path::Path::new(pam_totp_core::pamd::PAM_D);
        pam_totp_core::pamd::stack(dir, &service, Some("account"))
            .iter()
            .any(|l| l.is_module("pam_totp.so") && l.control.fails_stack())
    }

    fn set_pending(&mut self, pending: Pending) {
        // Without it the success is simply not recorded: nothing is weakened.
        let _ = self.pamh.set_data(
            crate::ffi::PENDING_KEY,
            Box::new(std::cell::RefCell::new(Some(pending))),
        );
    }

    fn take_pending(&mut self) -> Option<Pending> {
        crate::ffi::take_pending(self.pamh)
    }
}
