//! `/etc/security/pam_totp.conf` text: must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pam_totp_core::config::parse_file(text);
    }
});
