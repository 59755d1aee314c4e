//! The google-authenticator file importer of the CLI (`pam-totp import-google-authenticator`):
//! must never panic, and what it accepts must be a usable TOTP file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_totp_cli::commands::import_google_authenticator::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ga) = parse(text) {
        assert!((1..=300).contains(&ga.step));
        assert!(ga.scratch.iter().all(|c| c.len() == 8));
    }
});
