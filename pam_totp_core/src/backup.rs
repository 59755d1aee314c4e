//! Single-use backup codes: generation, normalisation of what the user typed, and salted
//! hashing. Codes exist in clear only in the CLI's output, once; files hold PBKDF2 hashes.
//!
//! The hash keeps codes unreadable in a copy of the secret file, a backup or a screenshot; it is
//! not what protects the account if the file leaks whole, since the file also holds the TOTP key
//! in clear. So new sets use [`DEFAULT_ITERATIONS`] = 1,000 rounds (about 0.2 ms per login with
//! a backup code) instead of the 50,000 of earlier versions (9 ms): with about 49.5 bits per code
//! an offline search still takes months of GPU time (the arithmetic is in docs/SECURITY.md).
//! The rounds are recorded in each file, so sets written with 50,000 keep verifying.

use crate::error::KeyError;
use crate::secret::{from_hex, random_fill, to_hex};
use constant_time_eq::constant_time_eq;
use zeroize::Zeroizing;

/// Letters and digits that cannot be confused with each other (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Characters in a generated code: 10 from a 31-letter alphabet is about 49.5 bits.
pub const CODE_LEN: usize = 10;
/// Default number of codes in a set.
pub const DEFAULT_COUNT: usize = 10;
/// Most codes a set may hold.
pub const MAX_COUNT: usize = 100;
/// PBKDF2-HMAC-SHA256 rounds for new sets: about 0.2 ms here, paid only when an answer has the
/// shape of a backup code. Chosen against an offline search of a leaked `[backup]` table without
/// the key beside it (docs/SECURITY.md, "Backup-code hashes").
pub const DEFAULT_ITERATIONS: u32 = 1_000;
/// Rounds of the sets written by earlier versions (`iterations = 50000` in the file); verified,
/// at 9 ms a try, until the user makes a new set.
pub const LEGACY_ITERATIONS: u32 = 50_000;
/// Bounds accepted when reading a file.
pub const MIN_ITERATIONS: u32 = 1_000;
/// Upper bound, so a hostile file cannot make a login spin for minutes.
pub const MAX_ITERATIONS: u32 = 2_000_000;
/// The only key-derivation function of format version 1.
pub const KDF: &str = "pbkdf2-sha256";
const HASH_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// A stored set of hashed backup codes.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupSet {
    /// Random id; consumed codes are recorded in the state file against it.
    pub set_id: String,
    /// Unix time the set was made.
    pub created: u64,
    /// PBKDF2 rounds.
    pub iterations: u32,
    /// Salt shared by the set (one slow hash per attempt, compared with every code).
    pub salt: Vec<u8>,
    /// One 32-byte hash per code, in the order the codes were shown.
    pub hashes: Vec<[u8; HASH_LEN]>,
}

impl std::fmt::Debug for BackupSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupSet")
            .field("set_id", &self.set_id)
            .field("codes", &self.hashes.len())
            .finish_non_exhaustive()
    }
}

/// Codes in clear, for showing to the user once. Zeroized on drop.
pub struct NewCodes(pub Vec<Zeroizing<String>>);

impl std::fmt::Debug for NewCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewCodes([{} redacted])", self.0.len())
    }
}

/// Lower-cases and strips spaces and dashes. `None` if the answer is not printable ASCII or is
/// implausibly long: such input is rejected before any hashing.
pub fn normalize(input: &[u8]) -> Option<Zeroizing<String>> {
    if input.len() > 64 {
        return None;
    }
    let mut out = Zeroizing::new(String::with_capacity(input.len()));
    for &b in input {
        match b {
            b' ' | b'-' | b'\t' => {}
            b if b.is_ascii_alphanumeric() => out.push(b.to_ascii_lowercase() as char),
            _ => return None,
        }
    }
    Some(out)
}

/// Whether a normalized answer could be a backup code (generated: 10 letters/digits; imported
/// google-authenticator scratch codes: 8 digits).
pub fn has_backup_shape(normalized: &str) -> bool {
    (8..=16).contains(&normalized.len()) && normalized.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn hash(code: &str, salt: &[u8], iterations: u32) -> Zeroizing<[u8; HASH_LEN]> {
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(code.as_bytes(), salt, iterations, out.as_mut());
    out
}

impl BackupSet {
    /// Makes `count` new codes and their hashes.
    ///
    /// # Errors
    /// The random source failed or `count` is out of range.
    pub fn generate(count: usize, now: u64) -> Result<(BackupSet, NewCodes), KeyError> {
        Self::generate_with(count, now, DEFAULT_ITERATIONS)
    }

    /// As [`BackupSet::generate`], with a chosen number of PBKDF2 rounds.
    ///
    /// # Errors
    /// The random source failed or `count` is out of range.
    pub fn generate_with(
        count: usize,
        now: u64,
        iterations: u32,
    ) -> Result<(BackupSet, NewCodes), KeyError> {
        if count > MAX_COUNT {
            return Err(KeyError::TooManyCodes(MAX_COUNT));
        }
        let mut codes = Vec::with_capacity(count);
        for _ in 0..count {
            codes.push(random_code()?);
        }
        let set = Self::from_codes(codes.iter().map(|c| c.as_str()), now, iterations)?;
        let shown = codes
            .into_iter()
            .map(|c| Zeroizing::new(format!("{}-{}", &c[..CODE_LEN / 2], &c[CODE_LEN / 2..])))
            .collect();
        Ok((set, NewCodes(shown)))
    }

    /// Hashes existing codes (used by the google-authenticator importer).
    ///
    /// # Errors
    /// A code does not have the shape of a backup code, or the random source failed.
    pub fn from_codes<'a>(
        codes: impl Iterator<Item = &'a str>,
        now: u64,
        iterations: u32,
    ) -> Result<BackupSet, KeyError> {
        let mut salt = vec![0u8; SALT_LEN];
        random_fill(&mut salt)?;
        let mut hashes = Vec::new();
        for code in codes {
            let norm = normalize(code.as_bytes()).filter(|n| has_backup_shape(n));
            let Some(norm) = norm else {
                return Err(KeyError::BadBackupCode);
            };
            hashes.push(*hash(&norm, &salt, iterations));
        }
        Ok(BackupSet {
            set_id: crate::secret::random_id(8)?,
            created: now,
            iterations,
            salt,
            hashes,
        })
    }

    /// Finds the index of the code matching `normalized`. Every stored hash is compared, in
    /// constant time, whether or not one matched earlier.
    pub fn find(&self, normalized: &str) -> Option<usize> {
        let candidate = hash(normalized, &self.salt, self.iterations);
        let mut found = None;
        for (i, stored) in self.hashes.iter().enumerate() {
            if constant_time_eq(candidate.as_ref(), stored) && found.is_none() {
                found = Some(i);
            }
        }
        found
    }

    pub(crate) fn salt_hex(&self) -> String {
        to_hex(&self.salt)
    }

    pub(crate) fn parse_hash(text: &str) -> Option<[u8; HASH_LEN]> {
        from_hex(text)?.try_into().ok()
    }
}

fn random_code() -> Result<Zeroizing<String>, KeyError> {
    let mut out = Zeroizing::new(String::with_capacity(CODE_LEN));
    let mut buf = Zeroizing::new([0u8; 32]);
    while out.len() < CODE_LEN {
        random_fill(buf.as_mut())?;
        for &b in buf.iter() {
            // Rejection sampling: 248 = 8 * 31 keeps the distribution uniform.
            if b < 248 && out.len() < CODE_LEN {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_match_their_hashes_once_each() {
        let (set, codes) = BackupSet::generate_with(5, 100, 1000).unwrap();
        assert_eq!(set.hashes.len(), 5);
        for (i, code) in codes.0.iter().enumerate() {
            assert_eq!(code.len(), CODE_LEN + 1);
            let n = normalize(code.as_bytes()).unwrap();
            assert!(has_backup_shape(&n));
            assert_eq!(set.find(&n), Some(i));
        }
        assert_eq!(set.find("zzzzzzzzzz"), None);
    }

    #[test]
    fn normalisation_ignores_spaces_dashes_and_case() {
        assert_eq!(normalize(b" AbC-de f ").unwrap().as_str(), "abcdef");
        assert!(normalize("é".as_bytes()).is_none());
        assert!(normalize(b"abc\0def").is_none());
        assert!(normalize(&[b'1'; 65]).is_none());
    }

    #[test]
    fn shape_excludes_totp_length_answers() {
        assert!(!has_backup_shape("123456"));
        assert!(has_backup_shape("12345678"));
        assert!(has_backup_shape("abcde23456"));
        assert!(!has_backup_shape("abcdefghijklmnopq"));
    }

    #[test]
    fn imported_scratch_codes_hash_and_match() {
        let set = BackupSet::from_codes(["21549057", "51531121"].into_iter(), 0, 1000).unwrap();
        assert_eq!(set.find("51531121"), Some(1));
        assert!(BackupSet::from_codes(["12"].into_iter(), 0, 1000).is_err());
    }

    /// A set as written by an earlier version: 50,000 rounds, hash computed independently
    /// (Python's `hashlib.pbkdf2_hmac("sha256", code, salt, 50000)`).
    #[test]
    fn legacy_50000_round_hash_still_verifies() {
        let salt = from_hex("00112233445566778899aabbccddeeff").unwrap();
        let old = BackupSet::parse_hash(
            "b726ead79482df8912c05841f9e2ea8034e75b52e1b1677332182619fcd9f591",
        )
        .unwrap();
        let set = BackupSet {
            set_id: "legacy".into(),
            created: 0,
            iterations: LEGACY_ITERATIONS,
            salt,
            hashes: vec![[0u8; HASH_LEN], old],
        };
        assert_eq!(set.find("k7m2p9q4rt"), Some(1));
        assert_eq!(set.find("k7m2p9q4rs"), None);
    }

    /// The same code at the new default rounds: an independent value, and a set made now uses it.
    #[test]
    fn new_sets_use_1000_rounds_and_match_an_independent_hash() {
        assert_eq!(DEFAULT_ITERATIONS, 1_000);
        let salt = from_hex("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(
            to_hex(hash("k7m2p9q4rt", &salt, DEFAULT_ITERATIONS).as_ref()),
            "e48351aeb7f0b24561390cd66c7ecef1e073a8cd5f5df6d3b6abeccbebba1259"
        );
        let (set, codes) = BackupSet::generate(2, 0).unwrap();
        assert_eq!(set.iterations, DEFAULT_ITERATIONS);
        let n = normalize(codes.0[1].as_bytes()).unwrap();
        assert_eq!(set.find(&n), Some(1));
        // The same code checked with the legacy rounds does not match a new hash.
        let legacy = BackupSet {
            iterations: LEGACY_ITERATIONS,
            ..set.clone()
        };
        assert_eq!(legacy.find(&n), None);
    }

    #[test]
    fn debug_prints_no_hashes() {
        let (set, codes) = BackupSet::generate_with(2, 0, 1000).unwrap();
        let text = format!("{set:?} {codes:?}");
        assert!(!text.contains(&set.salt_hex()));
        assert!(!text.contains(codes.0[0].as_str()));
    }
}
