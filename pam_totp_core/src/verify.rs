//! Decides whether an answer is a fresh TOTP code from one of the user's authenticators or an
//! unused backup code. Pure: no files, no clock of its own. A wrong code is a [`Verdict`], not an
//! error.

use crate::backup;
use crate::secret_file::{Authenticator, SecretFile};
use crate::state::State;

/// Why an answer was refused. Logged as the reason class; never contains the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not a code of any accepted shape (empty, too long, not ASCII, ...).
    Malformed,
    /// Had the shape of a code but matched nothing.
    WrongCode,
    /// A valid TOTP code whose step was already used (or is older than the last used one).
    Replayed,
    /// A backup code that was already used.
    BackupUsed,
}

impl Reject {
    /// Short stable name for syslog.
    pub fn class(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed-answer",
            Reject::WrongCode => "wrong-code",
            Reject::Replayed => "replayed-code",
            Reject::BackupUsed => "backup-code-already-used",
        }
    }
}

/// The outcome of checking one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A TOTP code of authenticator `authenticator` for time step `step`.
    Totp {
        /// Name of the matching authenticator.
        authenticator: String,
        /// Matched time step (Unix time / period).
        step: u64,
        /// Matched step minus the current step (clock drift of the device, in steps).
        offset: i64,
    },
    /// Unused backup code number `index`.
    Backup {
        /// Index in the set.
        index: u32,
    },
    /// Refused.
    Rejected(Reject),
}

/// The steps `window` either side of `now` that authenticator `a` accepts, oldest first.
fn steps(a: &Authenticator, now: u64, window: u32) -> std::ops::RangeInclusive<u64> {
    let origin = now / a.period;
    origin.saturating_sub(u64::from(window))..=origin.saturating_add(u64::from(window))
}

/// Checks a TOTP code against one authenticator; returns every matching step.
fn totp_matches(a: &Authenticator, code: &str, now: u64, window: u32) -> Vec<u64> {
    // totp-rs compares `Token`s in constant time. The `Totp` value holds the key and lives only
    // for this call (zeroized on drop by totp-rs' `zeroize` feature).
    let totp = totp_rs::Builder::new()
        .with_algorithm(a.algorithm.to_totp_rs())
        .with_digits(a.digits)
        .with_step_duration(a.period)
        .with_secret(a.secret.expose().to_vec())
        .with_skew(0)
        .build_noncompliant();
    let mut found = Vec::new();
    for step in steps(a, now, window) {
        let Some(t) = step.checked_mul(a.period) else {
            continue;
        };
        if totp.check(code, t).is_some() {
            found.push(step);
        }
    }
    found
}

/// Checks `answer` (the raw bytes the user typed) at Unix time `now`.
///
/// A TOTP code is tried against every authenticator whose digit count matches; it is accepted
/// if it matches a step within `window` steps of now that is newer than the last step accepted
/// for that authenticator. Otherwise, if the answer has the shape of a backup code, it is hashed
/// once and compared with every unused code.
pub fn verify(answer: &[u8], file: &SecretFile, state: &State, now: u64, window: u32) -> Verdict {
    let Some(norm) = backup::normalize(answer) else {
        return Verdict::Rejected(Reject::Malformed);
    };
    if norm.is_empty() {
        return Verdict::Rejected(Reject::Malformed);
    }
    let mut replayed = false;
    let mut totp_shaped = false;
    if norm.bytes().all(|b| b.is_ascii_digit()) {
        for a in file
            .authenticators
            .iter()
            .filter(|a| usize::from(a.digits) == norm.len())
        {
            totp_shaped = true;
            let last = state.last_step.get(&a.name).copied();
            let matches = totp_matches(a, &norm, now, window);
            match matches
                .iter()
                .copied()
                .find(|&s| last.is_none_or(|l| s > l))
            {
                Some(step) => {
                    let offset = step as i64 - (now / a.period) as i64;
                    return Verdict::Totp {
                        authenticator: a.name.clone(),
                        step,
                        offset,
                    };
                }
                None if !matches.is_empty() => replayed = true,
                None => {}
            }
        }
    }
    if replayed {
        return Verdict::Rejected(Reject::Replayed);
    }
    if let Some(set) = &file.backup {
        if backup::has_backup_shape(&norm) {
            if let Some(index) = set.find(&norm) {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                if state.used_backup_codes(&set.set_id).contains(&index) {
                    return Verdict::Rejected(Reject::BackupUsed);
                }
                return Verdict::Backup { index };
            }
            return Verdict::Rejected(Reject::WrongCode);
        }
    }
    if totp_shaped || backup::has_backup_shape(&norm) {
        Verdict::Rejected(Reject::WrongCode)
    } else {
        Verdict::Rejected(Reject::Malformed)
    }
}

/// Records an accepted verdict in the state: the step for replay protection, or the used code.
pub fn consume(verdict: &Verdict, file: &SecretFile, state: &mut State) {
    state.rebind(&file.enrollment_id);
    match verdict {
        Verdict::Totp {
            authenticator,
            step,
            ..
        } => {
            state.last_step.insert(authenticator.clone(), *step);
        }
        Verdict::Backup { index } => {
            if let Some(set) = &file.backup {
                state.consume_backup_code(&set.set_id, *index);
            }
        }
        Verdict::Rejected(_) => {}
    }
}

/// Backup codes not yet used.
pub fn backup_codes_left(file: &SecretFile, state: &State) -> usize {
    let Some(set) = &file.backup else { return 0 };
    if state.enrollment_id != file.enrollment_id {
        return set.hashes.len();
    }
    let mut used: Vec<u32> = state
        .used_backup_codes(&set.set_id)
        .iter()
        .copied()
        .filter(|&i| (i as usize) < set.hashes.len())
        .collect();
    used.sort_unstable();
    used.dedup();
    set.hashes.len().saturating_sub(used.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupSet;
    use crate::secret::TotpSecret;
    use crate::secret_file::Algorithm;

    /// RFC 6238 Appendix B seeds.
    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn auth(name: &str, seed: &[u8], algorithm: Algorithm, digits: u8) -> Authenticator {
        Authenticator {
            name: name.into(),
            secret: TotpSecret::from_bytes(seed.to_vec()).unwrap(),
            algorithm,
            digits,
            period: 30,
            added: 0,
            issuer: String::new(),
            label: String::new(),
        }
    }

    fn file(auths: Vec<Authenticator>) -> SecretFile {
        SecretFile {
            enrollment_id: "e".into(),
            created: 0,
            authenticators: auths,
            backup: None,
            forget_hosts_before: 0,
        }
    }

    fn code_at(a: &Authenticator, t: u64) -> String {
        totp_rs::Builder::new()
            .with_algorithm(a.algorithm.to_totp_rs())
            .with_digits(a.digits)
            .with_secret(a.secret.expose().to_vec())
            .build_noncompliant()
            .generate(t)
            .to_string()
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let rows: &[(u64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for &(t, sha1, sha256, sha512) in rows {
            for (alg, seed, want) in [
                (Algorithm::Sha1, SEED20, sha1),
                (Algorithm::Sha256, SEED32, sha256),
                (Algorithm::Sha512, SEED64, sha512),
            ] {
                let f = file(vec![auth("default", seed, alg, 8)]);
                let v = verify(want.as_bytes(), &f, &State::new(), t, 0);
                assert!(
                    matches!(v, Verdict::Totp { offset: 0, .. }),
                    "{alg:?} at {t}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn window_edges() {
        let f = file(vec![auth("default", SEED20, Algorithm::Sha1, 6)]);
        let a = &f.authenticators[0];
        let now = 1_800_000_015;
        let st = State::new();
        for (dt, window, ok) in [
            (-30i64, 1, true),
            (30, 1, true),
            (-60, 1, false),
            (60, 1, false),
            (-60, 2, true),
            (-30, 0, false),
            (0, 0, true),
        ] {
            let code = code_at(a, (now as i64 + dt) as u64);
            let v = verify(code.as_bytes(), &f, &st, now, window);
            assert_eq!(
                matches!(v, Verdict::Totp { .. }),
                ok,
                "dt={dt} window={window}: {v:?}"
            );
        }
        let old = code_at(a, now - 300);
        assert_eq!(
            verify(old.as_bytes(), &f, &st, now, 1),
            Verdict::Rejected(Reject::WrongCode)
        );
    }

    #[test]
    fn given_code_reused_in_same_step_then_replayed() {
        let f = file(vec![auth("default", SEED20, Algorithm::Sha1, 6)]);
        let now = 1_800_000_000;
        let code = code_at(&f.authenticators[0], now);
        let mut st = State::new();
        let v = verify(code.as_bytes(), &f, &st, now, 1);
        assert!(matches!(v, Verdict::Totp { .. }));
        consume(&v, &f, &mut st);
        assert_eq!(
            verify(code.as_bytes(), &f, &st, now + 5, 1),
            Verdict::Rejected(Reject::Replayed)
        );
        // An older step than the last accepted one is refused too.
        let prev = code_at(&f.authenticators[0], now - 30);
        assert_eq!(
            verify(prev.as_bytes(), &f, &st, now, 1),
            Verdict::Rejected(Reject::Replayed)
        );
        // The next step is fine.
        let next = code_at(&f.authenticators[0], now + 30);
        assert!(matches!(
            verify(next.as_bytes(), &f, &st, now + 30, 1),
            Verdict::Totp { .. }
        ));
    }

    #[test]
    fn given_several_authenticators_then_each_works_with_own_replay_state() {
        let f = file(vec![
            auth("phone", SEED20, Algorithm::Sha1, 6),
            auth("tablet", b"abcdefghijabcdefghij", Algorithm::Sha256, 8),
        ]);
        let now = 1_800_000_000;
        let mut st = State::new();
        let c1 = code_at(&f.authenticators[0], now);
        let v = verify(c1.as_bytes(), &f, &st, now, 1);
        assert!(matches!(&v, Verdict::Totp { authenticator, .. } if authenticator == "phone"));
        consume(&v, &f, &mut st);
        let c2 = code_at(&f.authenticators[1], now);
        let v = verify(c2.as_bytes(), &f, &st, now, 1);
        assert!(matches!(&v, Verdict::Totp { authenticator, .. } if authenticator == "tablet"));
    }

    #[test]
    fn backup_codes_work_once() {
        let mut f = file(vec![auth("default", SEED20, Algorithm::Sha1, 6)]);
        let (set, codes) = BackupSet::generate_with(3, 0, 1000).unwrap();
        f.backup = Some(set);
        let mut st = State::new();
        assert_eq!(backup_codes_left(&f, &st), 3);
        let typed = codes.0[1].to_uppercase().replace('-', " ");
        let v = verify(typed.as_bytes(), &f, &st, 1_800_000_000, 1);
        assert_eq!(v, Verdict::Backup { index: 1 });
        consume(&v, &f, &mut st);
        assert_eq!(backup_codes_left(&f, &st), 2);
        // A hand-edited state listing an index twice (or out of range) does not underflow.
        let mut odd = st.clone();
        odd.backup_used = vec![1, 1, 1, 1, 99];
        assert_eq!(backup_codes_left(&f, &odd), 2);
        assert_eq!(
            verify(codes.0[1].as_bytes(), &f, &st, 1_800_000_000, 1),
            Verdict::Rejected(Reject::BackupUsed)
        );
        assert_eq!(
            verify(b"abcde-fghjk", &f, &st, 1_800_000_000, 1),
            Verdict::Rejected(Reject::WrongCode)
        );
    }

    #[test]
    fn odd_answers_are_rejected_without_panic() {
        let f = file(vec![auth("default", SEED20, Algorithm::Sha1, 6)]);
        let st = State::new();
        let long = vec![b'1'; 10_000];
        for answer in [
            &b""[..],
            b"   ",
            &long,
            "ünïcødé".as_bytes(),
            b"12\x003456",
            b"\xff\xfe\xfd",
            b"12345",
        ] {
            assert!(matches!(
                verify(answer, &f, &st, 1_800_000_000, 1),
                Verdict::Rejected(_)
            ));
        }
        // Tiny clock values must not underflow.
        assert!(matches!(
            verify(b"123456", &f, &st, 0, 3),
            Verdict::Rejected(_)
        ));
        assert!(matches!(
            verify(b"123456", &f, &st, u64::MAX, 3),
            Verdict::Rejected(_)
        ));
    }
}
