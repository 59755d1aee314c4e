//! `pam_totp.so`: a PAM auth module that asks for a TOTP code (RFC 6238) or a single-use backup
//! code, after the password or the SSH key.
//!
//! The logic lives in [`flow`], written against the small [`pam_io::PamIo`] trait so it can be
//! tested without libpam; [`pam_io`] implements that trait for the real handle, and [`ffi`] holds
//! the two libpam calls pam-bindings does not wrap. Everything the module reads and writes is
//! defined in `pam_totp_core`, shared with the `pam-totp` CLI.
//!
//! A module is a guest in someone else's process (sshd, sudo, login, gdm): it keeps no global
//! state, starts no threads, prints nothing to stdout or stderr, re-reads its configuration on
//! every call, and fails closed. pam-bindings runs every hook under `catch_unwind`, so even a
//! panic becomes PAM_ABORT; that needs `panic = "unwind"`, which the workspace keeps.
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[allow(unsafe_code)]
mod ffi;
pub mod flow;
mod log;
pub mod outcome;
pub mod pam_io;

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};
use std::ffi::CStr;

/// The module's hook implementation.
pub struct PamTotp;

#[allow(unsafe_code)]
mod hooks {
    pam::pam_hooks!(PamTotp);
    use super::PamTotp;
}

/// One phase of the flow, with the module arguments as strings and the system clock.
type Phase = fn(&mut pam_io::RealPam<'_>, &[&str], &pam_totp_core::SystemClock) -> outcome::Outcome;

fn run(pamh: &mut PamHandle, args: &[&CStr], flags: PamFlag, phase: Phase) -> PamResultCode {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut io = pam_io::RealPam::new(pamh, flags);
    outcome::to_pam_code(&phase(&mut io, &args, &pam_totp_core::SystemClock))
}

impl PamHooks for PamTotp {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        run(pamh, &args, flags, |io, a, c| flow::authenticate(io, a, c))
    }

    /// Commits a success passed in the auth phase; enrollment at first login
    /// (`enroll_at_login`), after the whole auth stack succeeded.
    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        run(pamh, &args, flags, |io, a, c| flow::account(io, a, c))
    }

    /// The second factor grants no credentials, so this returns PAM_SUCCESS, as the peers do
    /// (the pam-bindings default would be PAM_IGNORE). libpam's application calls it once the
    /// whole auth stack succeeded: only then does a code passed in this handle clear the
    /// counters, trust the host and remember it.
    fn sm_setcred(pamh: &mut PamHandle, _args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        if flags & pam::constants::PAM_DELETE_CRED == 0 {
            let mut io = pam_io::RealPam::new(pamh, flags);
            flow::setcred(&mut io);
        }
        PamResultCode::PAM_SUCCESS
    }
}
