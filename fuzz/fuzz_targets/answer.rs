//! What the user types: normalisation and the whole verification, on arbitrary bytes and
//! times. The first 9 bytes choose the time and the window; the rest is the answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_totp_core::backup::{self, BackupSet};
use pam_totp_core::secret::TotpSecret;
use pam_totp_core::secret_file::{Algorithm, Authenticator, Hotp, SecretFile};
use pam_totp_core::state::State;
use pam_totp_core::verify::{self, Verdict};
use std::sync::OnceLock;

fn file() -> &'static SecretFile {
    static FILE: OnceLock<SecretFile> = OnceLock::new();
    FILE.get_or_init(|| {
        let auth = |name: &str, algorithm, digits, period| Authenticator {
            name: name.into(),
            secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()).expect("key"),
            algorithm,
            digits,
            period,
            added: 0,
            issuer: String::new(),
            label: String::new(),
            hotp: None,
        };
        let fob = |name: &str, digits, token_id: &str| Authenticator {
            name: name.into(),
            secret: TotpSecret::from_bytes(b"a counter-based token key".to_vec()).expect("key"),
            algorithm: Algorithm::Sha1,
            digits,
            period: 30,
            added: 0,
            issuer: String::new(),
            label: String::new(),
            hotp: Some(Hotp {
                counter: 0,
                token_id: token_id.into(),
            }),
        };
        // The fewest PBKDF2 rounds a file may have, so each backup-shaped answer stays cheap.
        let backup = BackupSet::from_codes(["abcde23456", "12345678"].into_iter(), 0, 1000)
            .expect("backup set");
        SecretFile {
            enrollment_id: "fuzz".into(),
            created: 0,
            authenticators: vec![
                auth("phone", Algorithm::Sha1, 6, 30),
                auth("tablet", Algorithm::Sha512, 8, 1),
                fob("fob", 6, ""),
                fob("yubikey", 8, "cccjgjgkhcbb"),
            ],
            backup: Some(backup),
            forget_hosts_before: 0,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, answer) = data.split_at(data.len().min(9));
    let mut t = [0u8; 8];
    t[..head.len().min(8)].copy_from_slice(&head[..head.len().min(8)]);
    let now = u64::from_le_bytes(t);
    let window = u32::from(head.get(8).copied().unwrap_or(1) % 11);
    if let Some(norm) = backup::normalize(answer) {
        assert!(norm.len() <= answer.len());
        assert!(
            norm.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
    let mut state = State::new();
    let windows = verify::Windows::totp(window);
    let verdict = verify::verify(answer, file(), &state, now, windows);
    if !matches!(verdict, Verdict::Rejected(_) | Verdict::HotpResync { .. }) {
        // Accepted once: the same answer right after must be refused (replay / used code).
        verify::consume(&verdict, file(), &mut state);
        let again = verify::verify(answer, file(), &state, now, windows);
        assert!(
            matches!(again, Verdict::Rejected(_)),
            "{verdict:?} then {again:?}"
        );
    }
    let _ = verify::backup_codes_left(file(), &state);
});
