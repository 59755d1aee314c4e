//! The few libpam calls the benchmark needs, behind a safe [`Txn`]. `pam_start_confdir` reads
//! the service files from the run's own directory, so no file in /etc/pam.d is touched.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::time::{Duration, Instant};

pub const PAM_SUCCESS: c_int = 0;
const PAM_CONV_ERR: c_int = 19;
const PAM_BUF_ERR: c_int = 5;
const PAM_RHOST: c_int = 4;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;

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

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _opaque: [u8; 0],
}

#[link(name = "pam")]
unsafe extern "C" {
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
}

/// Answers every prompt with the same text; ignores info and error messages.
extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > 32 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    let n = num_msg as usize;
    // SAFETY: appdata is the `CString` owned by the live `Txn` (see `Txn::start`).
    let answer = unsafe { &*appdata.cast::<CString>() };
    // SAFETY: calloc of n small structs, checked for NULL; the module frees it.
    let out = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if out.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: libpam passes num_msg valid message pointers (pam_conv(3)).
        let style = unsafe { (**msg.add(i)).msg_style };
        if style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON {
            // SAFETY: strdup of a NUL-terminated string; i < n is inside the array.
            unsafe { (*out.add(i)).resp = libc::strdup(answer.as_ptr()) };
        }
    }
    // SAFETY: resp is a valid out pointer; ownership of `out` passes to the module.
    unsafe { *resp = out };
    PAM_SUCCESS
}

/// One PAM transaction (pam_start .. pam_end).
pub struct Txn {
    pamh: *mut PamHandle,
    last: c_int,
    _conv: Box<PamConv>,
    _answer: Box<CString>,
}

impl Txn {
    /// `pam_start_confdir` and, if given, PAM_RHOST.
    pub fn start(
        confdir: &CStr,
        service: &CStr,
        user: &CStr,
        rhost: Option<&CStr>,
        answer: &str,
    ) -> Result<Txn, c_int> {
        let answer = Box::new(CString::new(answer).map_err(|_| PAM_CONV_ERR)?);
        let conv = Box::new(PamConv {
            conv: Some(conversation),
            appdata_ptr: (&*answer as *const CString).cast_mut().cast(),
        });
        let mut pamh = std::ptr::null_mut();
        // SAFETY: all strings are NUL-terminated and outlive the call; conv and its appdata are
        // boxed and kept in the returned Txn until pam_end.
        let rc = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &*conv,
                confdir.as_ptr(),
                &mut pamh,
            )
        };
        if rc != PAM_SUCCESS || pamh.is_null() {
            return Err(rc);
        }
        let txn = Txn {
            pamh,
            last: rc,
            _conv: conv,
            _answer: answer,
        };
        if let Some(rhost) = rhost {
            // SAFETY: live handle; libpam copies the string.
            let rc = unsafe { pam_set_item(txn.pamh, PAM_RHOST, rhost.as_ptr().cast()) };
            if rc != PAM_SUCCESS {
                return Err(rc);
            }
        }
        Ok(txn)
    }

    /// `pam_authenticate(0)`, timed.
    pub fn authenticate(&mut self) -> (c_int, Duration) {
        let t = Instant::now();
        // SAFETY: live handle from pam_start_confdir.
        let rc = unsafe { pam_authenticate(self.pamh, 0) };
        let d = t.elapsed();
        self.last = rc;
        (rc, d)
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        // SAFETY: the handle is ended exactly once.
        unsafe { pam_end(self.pamh, self.last) };
    }
}
