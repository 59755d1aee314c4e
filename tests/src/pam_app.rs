//! A PAM application's side of libpam (hand-written declarations) behind a safe [`Session`]:
//! `pam-client` (the tests' PAM client) and the benchmark both drive pam_totp.so through it,
//! exactly as sshd or login would. The only unsafe code of the test harness.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
pub const PAM_SILENT: c_int = 0x8000;
pub const PAM_ESTABLISH_CRED: c_int = 0x0002;

pub const PAM_TTY: c_int = 3;
pub const PAM_RHOST: c_int = 4;
pub const PAM_AUTHTOK: c_int = 6;
pub const PAM_RUSER: c_int = 8;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
/// Linux-PAM's PAM_MAX_NUM_MSG.
const MAX_NUM_MSG: c_int = 32;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

/// Opaque `pam_handle_t`.
#[repr(C)]
struct PamHandle {
    _opaque: [u8; 0],
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
    fn pam_getenvlist(pamh: *mut PamHandle) -> *mut *mut c_char;
}

/// The style of one conversation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    PromptEchoOff,
    PromptEchoOn,
    ErrorMsg,
    TextInfo,
    Other(c_int),
}

/// The application refuses to answer (the conversation fails with PAM_CONV_ERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// The application side of the conversation.
pub trait Converse {
    /// Handles one message; a prompt returns `Ok(Some(answer))`. `Err` aborts the whole
    /// conversation with PAM_CONV_ERR.
    fn message(&mut self, style: Style, text: &[u8]) -> Result<Option<Vec<u8>>, Refused>;
}

/// One PAM transaction; `pam_end` runs on drop with the status of the last call.
pub struct Session {
    pamh: *mut PamHandle,
    last: c_int,
    // Linux-PAM copies the pam_conv struct but keeps `appdata_ptr`: both stay alive (and do
    // not move, being boxed) until pam_end.
    _conv: Box<PamConv>,
    _handler: Box<Box<dyn Converse>>,
}

impl Session {
    /// `pam_start(service, user, conv)`.
    pub fn start(
        service: &CStr,
        user: &CStr,
        handler: Box<dyn Converse>,
    ) -> Result<Session, c_int> {
        Self::start_in(None, service, user, handler)
    }

    /// `pam_start`, or with `confdir` `pam_start_confdir` (service files read from that
    /// directory instead of /etc/pam.d; Linux-PAM 1.4 and later).
    pub fn start_in(
        confdir: Option<&CStr>,
        service: &CStr,
        user: &CStr,
        handler: Box<dyn Converse>,
    ) -> Result<Session, c_int> {
        let mut handler = Box::new(handler);
        let appdata: *mut Box<dyn Converse> = &mut *handler;
        let conv = Box::new(PamConv {
            conv: Some(conversation),
            appdata_ptr: appdata.cast(),
        });
        let mut pamh: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: service and user are NUL-terminated strings that outlive the call (libpam
        // copies them); conv points to a valid pam_conv whose appdata (the boxed handler) is
        // kept alive in the returned Session until pam_end; pamh is a valid out pointer.
        // With a confdir, it is also NUL-terminated and outlives the call.
        let rc = unsafe {
            match confdir {
                Some(dir) => pam_start_confdir(
                    service.as_ptr(),
                    user.as_ptr(),
                    &*conv,
                    dir.as_ptr(),
                    &mut pamh,
                ),
                None => pam_start(service.as_ptr(), user.as_ptr(), &*conv, &mut pamh),
            }
        };
        if rc != PAM_SUCCESS || pamh.is_null() {
            return Err(rc);
        }
        Ok(Session {
            pamh,
            last: rc,
            _conv: conv,
            _handler: handler,
        })
    }

    fn record(&mut self, rc: c_int) -> c_int {
        self.last = rc;
        rc
    }

    /// `pam_set_item` for a string item (PAM_RHOST, PAM_TTY, PAM_RUSER, PAM_AUTHTOK).
    pub fn set_item(&mut self, item: c_int, value: &CStr) -> c_int {
        // SAFETY: pamh comes from a successful pam_start and is not yet ended; value is a
        // NUL-terminated string, which libpam copies for these string items.
        unsafe { pam_set_item(self.pamh, item, value.as_ptr().cast()) }
    }

    /// `pam_putenv("K=V")`.
    pub fn putenv(&mut self, name_value: &CStr) -> c_int {
        // SAFETY: pamh is live (see set_item); libpam copies the NUL-terminated string.
        unsafe { pam_putenv(self.pamh, name_value.as_ptr()) }
    }

    /// `pam_authenticate`.
    pub fn authenticate(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live; the conversation it calls back into is valid (see start).
        let rc = unsafe { pam_authenticate(self.pamh, flags) };
        self.record(rc)
    }

    /// `pam_setcred`.
    pub fn setcred(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live.
        let rc = unsafe { pam_setcred(self.pamh, flags) };
        self.record(rc)
    }

    /// `pam_acct_mgmt`.
    pub fn acct_mgmt(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live.
        let rc = unsafe { pam_acct_mgmt(self.pamh, flags) };
        self.record(rc)
    }

    /// `pam_strerror`, as owned text.
    pub fn strerror(&self, code: c_int) -> String {
        // SAFETY: pamh is live; pam_strerror returns a pointer to a static string (or NULL).
        let text = unsafe { pam_strerror(self.pamh, code) };
        if text.is_null() {
            return String::new();
        }
        // SAFETY: non-NULL results of pam_strerror are static NUL-terminated strings.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }

    /// `pam_getenvlist`, copied out; the list libpam allocated is freed here.
    pub fn env_list(&self) -> Vec<String> {
        // SAFETY: pamh is live; the result is NULL or a malloc'd, NULL-terminated array of
        // malloc'd strings that the caller owns.
        let list = unsafe { pam_getenvlist(self.pamh) };
        let mut out = Vec::new();
        if list.is_null() {
            return out;
        }
        let mut i = 0;
        loop {
            // SAFETY: the array is NULL-terminated and we stop at the terminator.
            let entry = unsafe { *list.add(i) };
            if entry.is_null() {
                break;
            }
            // SAFETY: entry is a NUL-terminated string we own; it is not used after free.
            unsafe {
                out.push(CStr::from_ptr(entry).to_string_lossy().into_owned());
                libc::free(entry.cast());
            }
            i += 1;
        }
        // SAFETY: the array itself was malloc'd by libpam and is ours to free, once.
        unsafe { libc::free(list.cast()) };
        out
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: pamh comes from pam_start and is ended exactly once, here.
        unsafe { pam_end(self.pamh, self.last) };
    }
}

/// Frees a response array built by [`converse`], wiping the answers first.
///
/// # Safety
/// - `responses` is a calloc'd array of `n` PamResponse whose `resp` fields are NULL or
///   malloc'd NUL-terminated strings, and nothing else refers to it.
unsafe fn free_responses(responses: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, inside the array (caller's contract).
        let r = unsafe { &mut *responses.add(i) };
        if !r.resp.is_null() {
            // SAFETY: resp is a NUL-terminated malloc'd string (caller's contract); it is
            // wiped within its length and freed once.
            unsafe {
                let len = libc::strlen(r.resp);
                std::ptr::write_bytes(r.resp, 0, len);
                libc::free(r.resp.cast());
            }
            r.resp = std::ptr::null_mut();
        }
    }
    // SAFETY: the array was calloc'd and is freed once (caller's contract).
    unsafe { libc::free(responses.cast()) };
}

/// The `pam_conv` callback. Never unwinds into libpam.
extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    // SAFETY: libpam calls this with the arguments described in pam_conv(3); converse
    // checks them for NULL and range before use.
    let run = || unsafe { converse(num_msg, msg, resp, appdata_ptr) };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// - `msg` is NULL or points to `num_msg` pointers to valid pam_message structs (the
///   Linux-PAM layout) whose `msg` fields are NULL or NUL-terminated strings.
/// - `resp` is NULL or a valid out pointer.
/// - `appdata_ptr` is the `*mut Box<dyn Converse>` set up by [`Session::start`].
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > MAX_NUM_MSG || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    if appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata_ptr is the boxed handler of the live Session (contract); libpam calls
    // the conversation from the thread that runs the PAM call, so there is no other borrow.
    let handler = unsafe { &mut *appdata_ptr.cast::<Box<dyn Converse>>() };
    let n = num_msg as usize;
    // SAFETY: calloc of n small structs; the result is checked for NULL. PAM requires the
    // response array to come from calloc/malloc: the module frees it.
    let responses =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if responses.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: i < num_msg, and msg holds num_msg pointers (contract).
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: responses is our calloc'd array of n entries.
            unsafe { free_responses(responses, n) };
            return PAM_CONV_ERR;
        }
        // SAFETY: m points to a valid pam_message (contract).
        let (style, text_ptr) = unsafe { ((*m).msg_style, (*m).msg) };
        let text: &[u8] = if text_ptr.is_null() {
            b""
        } else {
            // SAFETY: a non-NULL msg field is a NUL-terminated string (contract).
            unsafe { CStr::from_ptr(text_ptr) }.to_bytes()
        };
        let style = match style {
            PAM_PROMPT_ECHO_OFF => Style::PromptEchoOff,
            PAM_PROMPT_ECHO_ON => Style::PromptEchoOn,
            PAM_ERROR_MSG => Style::ErrorMsg,
            PAM_TEXT_INFO => Style::TextInfo,
            other => Style::Other(other),
        };
        let answer = match handler.message(style, text) {
            Ok(answer) => answer,
            Err(Refused) => {
                // SAFETY: as above.
                unsafe { free_responses(responses, n) };
                return PAM_CONV_ERR;
            }
        };
        if let Some(answer) = answer {
            // A C string ends at the first NUL; the caller rejects NUL bytes earlier.
            let len = answer.iter().position(|&b| b == 0).unwrap_or(answer.len());
            // SAFETY: malloc of len + 1 bytes, checked for NULL below.
            let buf = unsafe { libc::malloc(len + 1) }.cast::<u8>();
            if buf.is_null() {
                // SAFETY: as above.
                unsafe { free_responses(responses, n) };
                return PAM_BUF_ERR;
            }
            // SAFETY: buf has len + 1 bytes; answer has at least len bytes; no overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(answer.as_ptr(), buf, len);
                *buf.add(len) = 0;
                (*responses.add(i)).resp = buf.cast();
                (*responses.add(i)).resp_retcode = 0;
            }
        }
    }
    // SAFETY: resp is a valid out pointer (contract); ownership of the array and its strings
    // passes to the module, which frees them.
    unsafe { *resp = responses };
    PAM_SUCCESS
}
