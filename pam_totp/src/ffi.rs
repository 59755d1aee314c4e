//! The two libpam calls pam-bindings does not wrap: setting PAM_AUTHTOK (to hand the password
//! on after `forward_pass`) and reading the PAM environment (`SSH_AUTH_INFO_0`). This is the
//! only module with unsafe code.

use libc::{c_char, c_int, c_void};
use pam::module::PamHandle;
use std::ffi::{CStr, CString};

/// `PAM_AUTHTOK` from `<security/_pam_types.h>`.
const PAM_AUTHTOK: c_int = 6;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
}

/// Sets PAM_AUTHTOK for the modules after this one. libpam copies the string (and wipes its
/// previous copy), so our buffer may be dropped afterwards.
pub(crate) fn set_authtok(pamh: &mut PamHandle, token: &[u8]) -> Result<(), ()> {
    let token = zeroize::Zeroizing::new(CString::new(token).map_err(|_| ())?.into_bytes_with_nul());
    // SAFETY: `pamh` is the live handle libpam passed to this hook (a valid `&mut`), and `token`
    // is a NUL-terminated buffer that outlives the call; libpam copies it (`_pam_strdup`).
    let rc = unsafe { pam_set_item(pamh, PAM_AUTHTOK, token.as_ptr().cast::<c_void>()) };
    if rc == 0 { Ok(()) } else { Err(()) }
}

/// Reads one variable of the PAM environment.
pub(crate) fn getenv(pamh: &mut PamHandle, name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    // SAFETY: `pamh` is the live handle of this hook and `name` is NUL-terminated and outlives
    // the call. The result is null or points into libpam's environment, valid until the next
    // change of that environment; it is copied at once below, before any other libpam call.
    let value = unsafe { pam_getenv(pamh, name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated string owned by libpam (see above); only read here.
    let value = unsafe { CStr::from_ptr(value) };
    Some(value.to_string_lossy().into_owned())
}
