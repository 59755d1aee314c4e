//! Secret file: whatever parses must serialise, parse again to the same values, and serialise to
//! the same text (a round trip, after age's `fuzz_header`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_totp_core::secret_file::SecretFile;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = SecretFile::parse(data) else {
        return;
    };
    let text = first.to_toml().expect("a parsed file serialises");
    let second = SecretFile::parse(text.as_bytes()).expect("serialised text parses");
    assert_eq!(first.enrollment_id, second.enrollment_id);
    assert_eq!(first.created, second.created);
    assert_eq!(first.backup, second.backup);
    assert_eq!(first.authenticators.len(), second.authenticators.len());
    for (a, b) in first.authenticators.iter().zip(&second.authenticators) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.secret.expose(), b.secret.expose());
        assert_eq!(a.algorithm, b.algorithm);
        assert_eq!((a.digits, a.period, a.added), (b.digits, b.period, b.added));
        assert_eq!((&a.issuer, &a.label), (&b.issuer, &b.label));
        let _ = a.otpauth_uri();
    }
    let again = second.to_toml().expect("serialises again");
    assert_eq!(text.as_str(), again.as_str());
});
