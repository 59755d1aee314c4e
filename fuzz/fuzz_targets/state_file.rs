//! State file (written by the module, read back on every login): parse, serialise, compare.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_totp_core::state::State;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = State::parse(data) else {
        return;
    };
    let text = first.to_toml().expect("a parsed state serialises");
    let second = State::parse(text.as_bytes()).expect("serialised state parses");
    assert_eq!(first, second);
});
