//! The libpam calls pam-bindings does not wrap safely: setting PAM_AUTHTOK (to hand the password
//! on after `forward_pass`), reading the PAM environment (`SSH_AUTH_INFO_0`), and reading back
//! the data this module keeps with the handle. This is the only module with unsafe code.

use pam::module::PamHandle;
use std::ffi::{CStr, CString};
use std::ffi::{c_char, c_int, c_void};

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

/// The `pam_set_data` key of [`crate::pam_io::Pending`].
pub(crate) const PENDING_KEY: &str = "pam_totp_pending_success";

/// The type stored under [`PENDING_KEY`], and only there.
type PendingCell = std::cell::RefCell<Option<crate::pam_io::Pending>>;

/// Takes the pending success kept with the handle, if any.
pub(crate) fn take_pending(pamh: &mut PamHandle) -> Option<crate::pam_io::Pending> {
    // SAFETY: the only writer of PENDING_KEY is `RealPam::set_pending`, which stores a
    // `Box<PendingCell>`; the reference lives no longer than `pamh`'s borrow here, and libpam
    // frees the data only at `pam_end` or when the key is set again, neither of which can
    // happen during this call.
    let cell = unsafe { pamh.get_data::<PendingCell>(PENDING_KEY) }.ok()?;
    cell.try_borrow_mut().ok()?.take()
}
