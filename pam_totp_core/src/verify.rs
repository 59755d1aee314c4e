//! Decides whether an answer is a fresh TOTP code, a fresh HOTP code (RFC 4226) from one of the
//! user's authenticators, or an unused backup code. Pure: no files, no clock of its own. A wrong
//! code is a [`Verdict`], not an error.

use crate::backup;
use crate::config::{DEFAULT_HOTP_RESYNC_WINDOW, DEFAULT_HOTP_WINDOW};
use crate::secret_file::{Authenticator, Hotp, SecretFile, TOKEN_ID_LEN, valid_token_id};
use crate::state::State;

/// How far from the expected time step or counter a code is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// TOTP: steps accepted either side of now (`window`).
    pub totp: u32,
    /// HOTP: counters accepted from the expected one on (`hotp_window`).
    pub hotp: u32,
    /// HOTP: a code up to this many counters ahead of the expected one is accepted together
    /// with the code that follows it (`hotp_resync_window`); not above `hotp` means never.
    pub hotp_resync: u32,
}

impl Windows {
    /// A TOTP window of `window` steps and the default HOTP windows.
    pub fn totp(window: u32) -> Windows {
        Windows {
            totp: window,
            hotp: DEFAULT_HOTP_WINDOW,
            hotp_resync: DEFAULT_HOTP_RESYNC_WINDOW,
        }
    }
}

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
    /// A fresh HOTP code of authenticator `authenticator` with counter `counter` (after a
    /// resynchronisation: the second of the two codes).
    Hotp {
        /// Name of the matching authenticator.
        authenticator: String,
        /// The (last) matched counter; the next code expected is `counter + 1`.
        counter: u64,
        /// How far the counter was ahead of the expected one (button presses without a login).
        offset: u64,
    },
    /// An HOTP code beyond the look-ahead window but within the resynchronisation window: not
    /// accepted on its own. The code with counter `counter + 1` must follow (see
    /// [`verify_resync`]).
    HotpResync {
        /// Name of the matching authenticator.
        authenticator: String,
        /// The matched counter.
        counter: u64,
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

/// The HOTP code of `a` at `counter`, as a TOTP generator with one-second steps (RFC 6238 is
/// RFC 4226 with counter = time / step), whose comparison is constant-time. Holds the key:
/// zeroized on drop.
fn hotp_generator(a: &Authenticator) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(a.algorithm.to_totp_rs())
        .with_digits(a.digits)
        .with_step_duration(1)
        .with_secret(a.secret.expose().to_vec())
        .with_skew(0)
        .build_noncompliant()
}

/// The code part of `norm` if it can be a code of HOTP authenticator `a`: its digits alone, or,
/// from a YubiKey, behind a token identifier. When `a` has an identifier bound, only answers
/// with that identifier in front fit (another key's output does not).
pub fn hotp_code<'n>(a: &Authenticator, hotp: &Hotp, norm: &'n str) -> Option<&'n str> {
    let digits = usize::from(a.digits);
    let (id, code) = norm.split_at_checked(norm.len().checked_sub(digits)?)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match id.len() {
        0 if hotp.token_id.is_empty() => Some(code),
        TOKEN_ID_LEN if valid_token_id(id) && (hotp.token_id.is_empty() || hotp.token_id == id) => {
            Some(code)
        }
        _ => None,
    }
}

/// The token identifier in front of `norm` if it is a YubiKey-style prefixed code of `digits`
/// digits (for learning the identifier at enrollment).
pub fn token_id_of(norm: &str, digits: u8) -> Option<&str> {
    let digits = usize::from(digits);
    if norm.len() != TOKEN_ID_LEN + digits {
        return None;
    }
    let (id, code) = norm.split_at(TOKEN_ID_LEN);
    (valid_token_id(id) && code.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// Whether a normalized answer has the shape of a one-time code of `file`: the digit count of
/// one of its authenticators, or a YubiKey token identifier and the digits of an HOTP one.
pub fn otp_shaped(norm: &str, file: &SecretFile) -> bool {
    file.authenticators.iter().any(|a| {
        (norm.len() == usize::from(a.digits) && norm.bytes().all(|b| b.is_ascii_digit()))
            || (a.hotp.is_some() && token_id_of(norm, a.digits).is_some())
    })
}

/// What one HOTP authenticator makes of a code.
enum HotpMatch {
    Fresh { counter: u64, offset: u64 },
    Resync(u64),
    Replayed,
    Nothing,
}

/// Looks for `code` among the counters of `a`: fresh within the look-ahead window, ahead within
/// the resynchronisation window, or already used (up to the look-ahead window back).
fn hotp_match(a: &Authenticator, next: u64, code: &str, windows: Windows) -> HotpMatch {
    let hotp = hotp_generator(a);
    let fresh = next..next.saturating_add(u64::from(windows.hotp));
    for counter in fresh.clone() {
        if hotp.check(code, counter).is_some() {
            return HotpMatch::Fresh {
                counter,
                offset: counter - next,
            };
        }
    }
    for counter in fresh.end..next.saturating_add(u64::from(windows.hotp_resync)) {
        if hotp.check(code, counter).is_some() {
            return HotpMatch::Resync(counter);
        }
    }
    for counter in next.saturating_sub(u64::from(windows.hotp))..next {
        if hotp.check(code, counter).is_some() {
            return HotpMatch::Replayed;
        }
    }
    HotpMatch::Nothing
}

/// Checks `answer` (the raw bytes the user typed) at Unix time `now`.
///
/// A TOTP code is tried against every TOTP authenticator whose digit count matches; it is
/// accepted if it matches a step within `windows.totp` steps of now that is newer than the last
/// step accepted for that authenticator. An HOTP code (perhaps behind a YubiKey token
/// identifier) is accepted if it matches one of the `windows.hotp` counters from the expected
/// one on; one further ahead (within `windows.hotp_resync`) gives [`Verdict::HotpResync`].
/// Otherwise, if the answer has the shape of a backup code, it is hashed once and compared with
/// every unused code.
pub fn verify(
    answer: &[u8],
    file: &SecretFile,
    state: &State,
    now: u64,
    windows: Windows,
) -> Verdict {
    let Some(norm) = backup::normalize(answer) else {
        return Verdict::Rejected(Reject::Malformed);
    };
    if norm.is_empty() {
        return Verdict::Rejected(Reject::Malformed);
    }
    let window = windows.totp;
    let mut replayed = false;
    let mut totp_shaped = false;
    let mut resync = None;
    for a in &file.authenticators {
        let Some(hotp) = &a.hotp else { continue };
        // Shaped like this token's output (another key's identifier is a wrong code).
        totp_shaped |= token_id_of(&norm, a.digits).is_some()
            || (norm.len() == usize::from(a.digits) && norm.bytes().all(|b| b.is_ascii_digit()));
        let Some(code) = hotp_code(a, hotp, &norm) else {
            continue;
        };
        let next = state.hotp_next(&file.enrollment_id, &a.name, hotp.counter);
        match hotp_match(a, next, code, windows) {
            HotpMatch::Fresh { counter, offset } => {
                return Verdict::Hotp {
                    authenticator: a.name.clone(),
                    counter,
                    offset,
                };
            }
            HotpMatch::Resync(counter) => {
                resync.get_or_insert(Verdict::HotpResync {
                    authenticator: a.name.clone(),
                    counter,
                });
            }
            HotpMatch::Replayed => replayed = true,
            HotpMatch::Nothing => {}
        }
    }
    if norm.bytes().all(|b| b.is_ascii_digit()) {
        for a in file
            .authenticators
            .iter()
            .filter(|a| a.hotp.is_none() && usize::from(a.digits) == norm.len())
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
    if let Some(resync) = resync {
        return resync;
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

/// Checks the second code of a resynchronisation: after [`Verdict::HotpResync`] for `counter`,
/// `answer` must be the code of `authenticator` with counter `counter + 1`. Gives
/// [`Verdict::Hotp`] for that counter, or [`Reject::WrongCode`].
pub fn verify_resync(
    answer: &[u8],
    file: &SecretFile,
    state: &State,
    authenticator: &str,
    counter: u64,
) -> Verdict {
    let Some(norm) = backup::normalize(answer) else {
        return Verdict::Rejected(Reject::Malformed);
    };
    let Some((a, hotp)) = file
        .authenticator(authenticator)
        .and_then(|a| Some((a, a.hotp.as_ref()?)))
    else {
        return Verdict::Rejected(Reject::WrongCode);
    };
    let Some(code) = hotp_code(a, hotp, &norm) else {
        return Verdict::Rejected(Reject::WrongCode);
    };
    let second = counter.saturating_add(1);
    if hotp_generator(a).check(code, second).is_none() {
        return Verdict::Rejected(Reject::WrongCode);
    }
    let next = state.hotp_next(&file.enrollment_id, &a.name, hotp.counter);
    Verdict::Hotp {
        authenticator: a.name.clone(),
        counter: second,
        offset: second.saturating_sub(next),
    }
}

/// Records an accepted verdict in the state: the step for replay protection, the moved
/// counter, or the used code.
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
        Verdict::Hotp {
            authenticator,
            counter,
            ..
        } => {
            state.spend_hotp(
                &file.enrollment_id,
                authenticator,
                counter.saturating_add(1),
            );
        }
        Verdict::Backup { index } => {
            if let Some(set) = &file.backup {
                state.consume_backup_code(&set.set_id, *index);
            }
        }
        Verdict::HotpResync { .. } | Verdict::Rejected(_) => {}
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
    use crate::secret_file::Hotp;

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
            hotp: None,
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
                let v = verify(want.as_bytes(), &f, &State::new(), t, Windows::totp(0));
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
            let v = verify(code.as_bytes(), &f, &st, now, Windows::totp(window));
            assert_eq!(
                matches!(v, Verdict::Totp { .. }),
                ok,
                "dt={dt} window={window}: {v:?}"
            );
        }
        let old = code_at(a, now - 300);
        assert_eq!(
            verify(old.as_bytes(), &f, &st, now, Windows::totp(1)),
            Verdict::Rejected(Reject::WrongCode)
        );
    }

    #[test]
    fn given_code_reused_in_same_step_then_replayed() {
        let f = file(vec![auth("default", SEED20, Algorithm::Sha1, 6)]);
        let now = 1_800_000_000;
        let code = code_at(&f.authenticators[0], now);
        let mut st = State::new();
        let v = verify(code.as_bytes(), &f, &st, now, Windows::totp(1));
        assert!(matches!(v, Verdict::Totp { .. }));
        consume(&v, &f, &mut st);
        assert_eq!(
            verify(code.as_bytes(), &f, &st, now + 5, Windows::totp(1)),
            Verdict::Rejected(Reject::Replayed)
        );
        // An older step than the last accepted one is refused too.
        let prev = code_at(&f.authenticators[0], now - 30);
        assert_eq!(
            verify(prev.as_bytes(), &f, &st, now, Windows::totp(1)),
            Verdict::Rejected(Reject::Replayed)
        );
        // The next step is fine.
        let next = code_at(&f.authenticators[0], now + 30);
        assert!(matches!(
            verify(next.as_bytes(), &f, &st, now + 30, Windows::totp(1)),
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
        let v = verify(c1.as_bytes(), &f, &st, now, Windows::totp(1));
        assert!(matches!(&v, Verdict::Totp { authenticator, .. } if authenticator == "phone"));
        consume(&v, &f, &mut st);
        let c2 = code_at(&f.authenticators[1], now);
        let v = verify(c2.as_bytes(), &f, &st, now, Windows::totp(1));
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
        let v = verify(typed.as_bytes(), &f, &st, 1_800_000_000, Windows::totp(1));
        assert_eq!(v, Verdict::Backup { index: 1 });
        consume(&v, &f, &mut st);
        assert_eq!(backup_codes_left(&f, &st), 2);
        // A hand-edited state listing an index twice (or out of range) does not underflow.
        let mut odd = st.clone();
        odd.backup_used = vec![1, 1, 1, 1, 99];
        assert_eq!(backup_codes_left(&f, &odd), 2);
        assert_eq!(
            verify(
                codes.0[1].as_bytes(),
                &f,
                &st,
                1_800_000_000,
                Windows::totp(1)
            ),
            Verdict::Rejected(Reject::BackupUsed)
        );
        assert_eq!(
            verify(b"abcde-fghjk", &f, &st, 1_800_000_000, Windows::totp(1)),
            Verdict::Rejected(Reject::WrongCode)
        );
    }

    /// RFC 4226 Appendix D: HOTP-SHA1, six digits, counters 0 to 9.
    const RFC4226: [&str; 10] = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];

    fn hotp_file(counter: u64, token_id: &str) -> SecretFile {
        let mut a = auth("fob", SEED20, Algorithm::Sha1, 6);
        a.hotp = Some(Hotp {
            counter,
            token_id: token_id.into(),
        });
        file(vec![
            auth("phone", b"abcdefghijabcdefghij", Algorithm::Sha1, 6),
            a,
        ])
    }

    fn hotp_windows(hotp: u32, hotp_resync: u32) -> Windows {
        Windows {
            totp: 1,
            hotp,
            hotp_resync,
        }
    }

    #[test]
    fn rfc4226_appendix_d_vectors_each_once() {
        let f = hotp_file(0, "");
        let mut st = State::new();
        for (counter, code) in RFC4226.iter().enumerate() {
            let v = verify(code.as_bytes(), &f, &st, NOW_ANY, hotp_windows(1, 0));
            assert_eq!(
                v,
                Verdict::Hotp {
                    authenticator: "fob".into(),
                    counter: counter as u64,
                    offset: 0
                }
            );
            consume(&v, &f, &mut st);
            assert_eq!(
                verify(code.as_bytes(), &f, &st, NOW_ANY, hotp_windows(1, 0)),
                Verdict::Rejected(Reject::Replayed),
                "counter {counter} again"
            );
        }
    }

    const NOW_ANY: u64 = 1_800_000_000;

    #[test]
    fn hotp_look_ahead_and_resync_windows() {
        let f = hotp_file(0, "");
        let st = State::new();
        // Within the look-ahead window: accepted, the skipped counters with it.
        assert!(matches!(
            verify(RFC4226[4].as_bytes(), &f, &st, NOW_ANY, hotp_windows(5, 0)),
            Verdict::Hotp {
                counter: 4,
                offset: 4,
                ..
            }
        ));
        // Beyond it: refused on its own, or a resynchronisation that wants the next code.
        assert_eq!(
            verify(RFC4226[5].as_bytes(), &f, &st, NOW_ANY, hotp_windows(5, 0)),
            Verdict::Rejected(Reject::WrongCode)
        );
        let v = verify(RFC4226[5].as_bytes(), &f, &st, NOW_ANY, hotp_windows(5, 8));
        assert_eq!(
            v,
            Verdict::HotpResync {
                authenticator: "fob".into(),
                counter: 5
            }
        );
        assert_eq!(
            verify(RFC4226[8].as_bytes(), &f, &st, NOW_ANY, hotp_windows(5, 8)),
            Verdict::Rejected(Reject::WrongCode),
            "beyond the resync window"
        );
        let mut st2 = st.clone();
        consume(&v, &f, &mut st2);
        assert!(
            st2.hotp_next.is_empty(),
            "a resync hit alone spends nothing"
        );
        assert_eq!(
            verify_resync(RFC4226[7].as_bytes(), &f, &st, "fob", 5),
            Verdict::Rejected(Reject::WrongCode),
            "not the code that follows"
        );
        let second = verify_resync(RFC4226[6].as_bytes(), &f, &st, "fob", 5);
        assert_eq!(
            second,
            Verdict::Hotp {
                authenticator: "fob".into(),
                counter: 6,
                offset: 6
            }
        );
        let mut st = st;
        consume(&second, &f, &mut st);
        assert_eq!(st.hotp_next("e", "fob", 0), 7);
        assert!(matches!(
            verify(RFC4226[7].as_bytes(), &f, &st, NOW_ANY, hotp_windows(1, 0)),
            Verdict::Hotp { counter: 7, .. }
        ));
        // The file's counter is the starting point.
        let f3 = hotp_file(3, "");
        assert_eq!(
            verify(
                RFC4226[2].as_bytes(),
                &f3,
                &State::new(),
                NOW_ANY,
                hotp_windows(5, 0)
            ),
            Verdict::Rejected(Reject::Replayed)
        );
    }

    #[test]
    fn yubikey_token_id_prefix() {
        let id = "cccjgjgkhcbb";
        let prefixed = format!("{id}{}", RFC4226[0]);
        let other = format!("vvvvvvcurikv{}", RFC4226[0]);
        let st = State::new();
        let w = hotp_windows(3, 0);
        let unbound = hotp_file(0, "");
        assert!(matches!(
            verify(prefixed.as_bytes(), &unbound, &st, NOW_ANY, w),
            Verdict::Hotp { counter: 0, .. }
        ));
        assert!(matches!(
            verify(
                prefixed.to_uppercase().as_bytes(),
                &unbound,
                &st,
                NOW_ANY,
                w
            ),
            Verdict::Hotp { counter: 0, .. }
        ));
        let bound = hotp_file(0, id);
        assert!(matches!(
            verify(prefixed.as_bytes(), &bound, &st, NOW_ANY, w),
            Verdict::Hotp { counter: 0, .. }
        ));
        assert_eq!(
            verify(b"cccjgjgkhcbx755224", &bound, &st, NOW_ANY, w),
            Verdict::Rejected(Reject::Malformed),
            "not modhex"
        );
        for refused in [other.as_str(), RFC4226[0]] {
            assert_eq!(
                verify(refused.as_bytes(), &bound, &st, NOW_ANY, w),
                Verdict::Rejected(Reject::WrongCode),
                "{refused}"
            );
        }
        assert_eq!(token_id_of(&prefixed, 6), Some(id));
        assert_eq!(token_id_of(RFC4226[0], 6), None);
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
                verify(answer, &f, &st, 1_800_000_000, Windows::totp(1)),
                Verdict::Rejected(_)
            ));
        }
        // Tiny clock values must not underflow.
        assert!(matches!(
            verify(b"123456", &f, &st, 0, Windows::totp(3)),
            Verdict::Rejected(_)
        ));
        assert!(matches!(
            verify(b"123456", &f, &st, u64::MAX, Windows::totp(3)),
            Verdict::Rejected(_)
        ));
    }
}
