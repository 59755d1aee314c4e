//! `secret.toml` format version 1: parsing (strict, every value validated) and serialisation
//! (round-trips). The key-by-key specification is `docs/FILEFORMAT.md`.

use crate::backup::{self, BackupSet};
use crate::error::KeyError;
use crate::error::ParseError;
use crate::secret::TotpSecret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Largest secret file accepted.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;
/// Most authenticators one user may register.
pub const MAX_AUTHENTICATORS: usize = 16;
/// Name of the authenticator made by a plain `pam-totp enroll`.
pub const DEFAULT_NAME: &str = "default";

/// HMAC hash of an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1, what every app supports.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// Parses `SHA1`, `SHA256` or `SHA512` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The name used in files and otpauth URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    pub(crate) fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

/// Largest HOTP counter accepted (TOML integers are signed; far more presses than any token
/// lives for).
pub const MAX_COUNTER: u64 = 1 << 60;
/// Length of a YubiKey token identifier in front of its OATH-HOTP codes.
pub const TOKEN_ID_LEN: usize = 12;

/// What makes an authenticator counter-based (HOTP, RFC 4226): a key fob or a YubiKey OATH-HOTP
/// slot rather than an app on a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hotp {
    /// The counter of the next code at enrollment (or import): where the count starts. Logins
    /// move it on in the state, never in this file (see `docs/FILEFORMAT.md`).
    pub counter: u64,
    /// The YubiKey token identifier bound at enrollment (12 modhex characters, or 4 modhex and
    /// 8 digits: the OATH token identifier), lower case; empty if none. When set, a code is
    /// accepted only with this identifier in front of it, so another key's output is refused.
    pub token_id: String,
}

/// Whether `id` is a token identifier as a YubiKey prints it in front of an OATH-HOTP code: 12
/// modhex characters (`cbdefghijklnrtuv`), of which the last 8 may instead be decimal digits
/// (the OATH token identifier's numeric unit id).
pub fn valid_token_id(id: &str) -> bool {
    let modhex = |b: u8| b"cbdefghijklnrtuv".contains(&b.to_ascii_lowercase());
    let b = id.as_bytes();
    b.len() == TOKEN_ID_LEN
        && b[..4].iter().all(|&c| modhex(c))
        && (b[4..].iter().all(|&c| modhex(c)) || b[4..].iter().all(u8::is_ascii_digit))
}

/// One registered device (a phone, a tablet, a hardware token) with its own key and
/// parameters.
#[derive(Debug)]
pub struct Authenticator {
    /// Unique within the file: letters, digits, `.`, `_`, `-`; at most 32 characters.
    pub name: String,
    /// The shared key.
    pub secret: TotpSecret,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// 6 or 8.
    pub digits: u8,
    /// Step length in seconds (1..=300, normally 30). Unused for HOTP (kept at 30, not written).
    pub period: u64,
    /// Unix time the authenticator was added.
    pub added: u64,
    /// Issuer shown by the app (for showing the QR code again).
    pub issuer: String,
    /// Account label shown by the app.
    pub label: String,
    /// `Some` for a counter-based (HOTP) authenticator, `None` for TOTP.
    pub hotp: Option<Hotp>,
}

impl Authenticator {
    /// `totp` or `hotp`, as in the file.
    pub fn kind(&self) -> &'static str {
        if self.hotp.is_some() { "hotp" } else { "totp" }
    }

    /// The otpauth Key URI (`otpauth://totp/ISSUER:LABEL?secret=...`, or
    /// `otpauth://hotp/...&counter=N`). It contains the key: treat it as a secret.
    pub fn otpauth_uri(&self) -> Zeroizing<String> {
        let issuer = uri_escape(&self.issuer);
        let label = uri_escape(&self.label);
        let path = if issuer.is_empty() {
            label
        } else {
            format!("{issuer}:{label}")
        };
        let tail = match &self.hotp {
            Some(h) => format!("counter={}", h.counter),
            None => format!("period={}", self.period),
        };
        let mut uri = format!(
            "otpauth://{}/{path}?secret={}&algorithm={}&digits={}&{tail}",
            self.kind(),
            self.secret.to_base32().as_str(),
            self.algorithm.as_str(),
            self.digits,
        );
        if !issuer.is_empty() {
            uri.push_str("&issuer=");
            uri.push_str(&issuer);
        }
        Zeroizing::new(uri)
    }
}

fn uri_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A parsed, validated secret file.
#[derive(Debug)]
pub struct SecretFile {
    /// Random id of this enrollment; the state file is keyed to it.
    pub enrollment_id: String,
    /// Unix time of the enrollment.
    pub created: u64,
    /// At least one.
    pub authenticators: Vec<Authenticator>,
    /// Hashed backup codes, if any were made.
    pub backup: Option<BackupSet>,
    /// Hosts remembered before this Unix time no longer skip the code (`pam-totp forget-hosts`
    /// run by the user, who cannot write the root-owned state). 0: not set.
    pub forget_hosts_before: u64,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    enrollment_id: String,
    created: u64,
    #[serde(rename = "authenticator")]
    authenticators: Vec<RawAuthenticator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<RawBackup>,
    #[serde(default, skip_serializing_if = "is_zero")]
    forget_hosts_before: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawAuthenticator {
    name: String,
    #[serde(default = "totp_kind", skip_serializing_if = "is_totp")]
    kind: String,
    /// Empty (and not written) only in an enrollment kept without its keys, see
    /// [`SecretFile::to_toml_without_keys`].
    #[serde(default, skip_serializing_if = "is_empty_text")]
    secret: Zeroizing<String>,
    algorithm: String,
    digits: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    token_id: String,
    added: u64,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    label: String,
}

fn is_empty_text(s: &Zeroizing<String>) -> bool {
    s.is_empty()
}

/// Where the keys of a parsed enrollment come from.
type Keys<'a> = Option<&'a dyn Fn(&KeyFor) -> Option<TotpSecret>>;

/// What is known of an authenticator before its key is looked up: its name and kind.
#[derive(Debug, Clone, Copy)]
pub struct KeyFor<'a> {
    /// Its name.
    pub name: &'a str,
    /// `totp` or `hotp`.
    pub kind: &'a str,
}

fn totp_kind() -> String {
    "totp".into()
}

fn is_totp(kind: &str) -> bool {
    kind == "totp"
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    set_id: String,
    created: u64,
    kdf: String,
    iterations: u32,
    salt: String,
    hashes: Vec<String>,
}

pub(crate) fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether a terminal shows `c` as itself. Refused: control characters (C0, DEL, C1: they
/// move the cursor, clear lines, retitle windows), bidirectional formatting characters (they
/// reorder the text that follows), line and paragraph separators, and invisible format
/// characters (zero-width spaces and joiners, word joiners, the byte order mark, interlinear
/// annotation and tag characters). `issuer` and `label` come from the user's own file and are
/// shown on root's terminal by `pam-totp qr --user`; the CLI escapes these on output as well.
pub fn is_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        ))
}

/// Whether every character of `text` is [printable](is_printable).
pub fn printable(text: &str) -> bool {
    text.chars().all(is_printable)
}

/// `text` made fit for an issuer or label: `:` (the otpauth separator) and characters that are
/// not [printable](is_printable) become `-`. For values the module takes from the system (host
/// and user names) when it writes a secret file itself.
pub fn label_from(text: &str) -> String {
    text.chars()
        .map(|c| if c == ':' || !is_printable(c) { '-' } else { c })
        .collect()
}

/// Whether `name` may name an authenticator.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl SecretFile {
    /// Parses and validates the bytes of a secret file. Error messages never quote values.
    ///
    /// # Errors
    /// Anything not exactly format version 1 with valid values.
    pub fn parse(bytes: &[u8]) -> Result<SecretFile, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::new("not UTF-8 text"))?;
        if text.trim().is_empty() {
            return Err(ParseError::new("the file is empty"));
        }
        // A first pass reads only `version`, so a file from a newer release gets a clear error.
        #[derive(Deserialize)]
        struct Version {
            version: Option<i64>,
        }
        let v: Version = toml::from_str(text).map_err(|e| ParseError::from_toml(&e, text, true))?;
        match v.version {
            Some(1) => {}
            Some(n) => {
                return Err(ParseError::key(
                    "version",
                    format!("unsupported version {n}; this release reads version 1"),
                ));
            }
            None => return Err(ParseError::key("version", "missing")),
        }
        let raw: RawFile =
            toml::from_str(text).map_err(|e| ParseError::from_toml(&e, text, true))?;
        Self::from_raw(raw, None)
    }

    /// Parses an enrollment kept without its keys (see [`SecretFile::to_toml_without_keys`]),
    /// taking each authenticator's key from `keys` (a directory keeps them in `oathSecret`).
    ///
    /// # Errors
    /// As [`SecretFile::parse`]; also a key in the text, or an authenticator `keys` has none
    /// for.
    pub fn parse_without_keys(
        bytes: &[u8],
        keys: &dyn Fn(&KeyFor) -> Option<TotpSecret>,
    ) -> Result<SecretFile, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::new("not UTF-8 text"))?;
        let raw: RawFile =
            toml::from_str(text).map_err(|e| ParseError::from_toml(&e, text, true))?;
        if raw.version != VERSION {
            return Err(ParseError::key(
                "version",
                format!("unsupported version {}", raw.version),
            ));
        }
        Self::from_raw(raw, Some(keys))
    }

    fn from_raw(raw: RawFile, keys: Keys<'_>) -> Result<SecretFile, ParseError> {
        if !valid_id(&raw.enrollment_id) {
            return Err(ParseError::key(
                "enrollment_id",
                "must be 1 to 64 letters, digits or dashes",
            ));
        }
        if raw.authenticators.is_empty() {
            return Err(ParseError::key(
                "authenticator",
                "at least one [[authenticator]] is required",
            ));
        }
        if raw.authenticators.len() > MAX_AUTHENTICATORS {
            return Err(ParseError::key(
                "authenticator",
                format!("at most {MAX_AUTHENTICATORS} are allowed"),
            ));
        }
        let mut authenticators = Vec::with_capacity(raw.authenticators.len());
        for a in raw.authenticators {
            if !valid_name(&a.name) {
                return Err(ParseError::key(
                    "authenticator.name",
                    "must be 1 to 32 letters, digits, '.', '_' or '-'",
                ));
            }
            if authenticators
                .iter()
                .any(|o: &Authenticator| o.name == a.name)
            {
                return Err(ParseError::key(
                    "authenticator.name",
                    format!("`{}` appears twice", a.name),
                ));
            }
            let secret = match keys {
                None => TotpSecret::from_base32(&a.secret)
                    .map_err(|e| ParseError::key("authenticator.secret", e.to_string()))?,
                Some(_) if !a.secret.is_empty() => {
                    return Err(ParseError::key(
                        "authenticator.secret",
                        "must not be here: the key is kept apart",
                    ));
                }
                Some(keys) => keys(&KeyFor {
                    name: &a.name,
                    kind: &a.kind,
                })
                .ok_or_else(|| ParseError::key("authenticator.secret", "no key found"))?,
            };
            let algorithm = Algorithm::parse(&a.algorithm).ok_or_else(|| {
                ParseError::key("authenticator.algorithm", "must be SHA1, SHA256 or SHA512")
            })?;
            if a.digits != 6 && a.digits != 8 {
                return Err(ParseError::key("authenticator.digits", "must be 6 or 8"));
            }
            let (period, hotp) = match a.kind.as_str() {
                "totp" => {
                    if a.counter.is_some() || !a.token_id.is_empty() {
                        return Err(ParseError::key(
                            "authenticator.counter",
                            "counter and token_id are for kind = \"hotp\" only",
                        ));
                    }
                    match a.period {
                        Some(p) if (1..=300).contains(&p) => (p, None),
                        Some(_) => {
                            return Err(ParseError::key(
                                "authenticator.period",
                                "must be 1 to 300 seconds",
                            ));
                        }
                        None => return Err(ParseError::key("authenticator.period", "missing")),
                    }
                }
                "hotp" => {
                    if a.period.is_some() {
                        return Err(ParseError::key(
                            "authenticator.period",
                            "is for kind = \"totp\" only",
                        ));
                    }
                    let counter = a
                        .counter
                        .ok_or_else(|| ParseError::key("authenticator.counter", "missing"))?;
                    if counter > MAX_COUNTER {
                        return Err(ParseError::key(
                            "authenticator.counter",
                            format!("must be at most {MAX_COUNTER}"),
                        ));
                    }
                    if !a.token_id.is_empty() && !valid_token_id(&a.token_id) {
                        return Err(ParseError::key(
                            "authenticator.token_id",
                            "must be 12 modhex characters (cbdefghijklnrtuv), or 4 modhex \
                             characters and 8 digits",
                        ));
                    }
                    let token_id = a.token_id.to_ascii_lowercase();
                    (30, Some(Hotp { counter, token_id }))
                }
                _ => {
                    return Err(ParseError::key(
                        "authenticator.kind",
                        "must be \"totp\" or \"hotp\"",
                    ));
                }
            };
            for (key, text) in [
                ("authenticator.issuer", &a.issuer),
                ("authenticator.label", &a.label),
            ] {
                if text.contains(':') {
                    return Err(ParseError::key(key, "must not contain ':'"));
                }
                if !printable(text) {
                    return Err(ParseError::key(
                        key,
                        "must not contain control characters (escape sequences), bidirectional \
                         overrides or other invisible characters",
                    ));
                }
            }
            authenticators.push(Authenticator {
                name: a.name,
                secret,
                algorithm,
                digits: a.digits,
                period,
                added: a.added,
                issuer: a.issuer,
                label: a.label,
                hotp,
            });
        }
        let backup = raw.backup.map(parse_backup).transpose()?;
        Ok(SecretFile {
            enrollment_id: raw.enrollment_id,
            created: raw.created,
            authenticators,
            backup,
            forget_hosts_before: raw.forget_hosts_before,
        })
    }

    /// Serialises to TOML text (format version 1). Holds the key: zeroized on drop.
    ///
    /// # Errors
    /// Only if the TOML serialiser fails, which valid data does not make it do.
    pub fn to_toml(&self) -> Result<Zeroizing<String>, KeyError> {
        let body =
            toml::to_string(&self.to_raw(true)).map_err(|e| KeyError::Serialize(e.to_string()))?;
        Ok(Zeroizing::new(format!(
            "# pam-totp secret file, format version 1 (see pam_totp.conf(5) and FILEFORMAT.md).\n\
             # Written by `pam-totp`; keep it private (mode 0600).\n{body}"
        )))
    }

    /// The enrollment as TOML without the authenticators' keys (a directory keeps them in each
    /// token's `oathSecret`); read back with [`SecretFile::parse_without_keys`]. The backup-code
    /// hashes stay in it.
    ///
    /// # Errors
    /// As [`SecretFile::to_toml`].
    pub fn to_toml_without_keys(&self) -> Result<String, KeyError> {
        toml::to_string(&self.to_raw(false)).map_err(|e| KeyError::Serialize(e.to_string()))
    }

    fn to_raw(&self, keys: bool) -> RawFile {
        RawFile {
            version: VERSION,
            enrollment_id: self.enrollment_id.clone(),
            created: self.created,
            authenticators: self
                .authenticators
                .iter()
                .map(|a| RawAuthenticator {
                    name: a.name.clone(),
                    kind: a.kind().to_string(),
                    secret: if keys {
                        a.secret.to_base32()
                    } else {
                        Zeroizing::new(String::new())
                    },
                    algorithm: a.algorithm.as_str().to_string(),
                    digits: a.digits,
                    period: a.hotp.is_none().then_some(a.period),
                    counter: a.hotp.as_ref().map(|h| h.counter),
                    token_id: a
                        .hotp
                        .as_ref()
                        .map(|h| h.token_id.clone())
                        .unwrap_or_default(),
                    added: a.added,
                    issuer: a.issuer.clone(),
                    label: a.label.clone(),
                })
                .collect(),
            backup: self.backup.as_ref().map(|b| RawBackup {
                set_id: b.set_id.clone(),
                created: b.created,
                kdf: backup::KDF.to_string(),
                iterations: b.iterations,
                salt: b.salt_hex(),
                hashes: b.hashes.iter().map(|h| crate::secret::to_hex(h)).collect(),
            }),
            forget_hosts_before: self.forget_hosts_before,
        }
    }

    /// Looks up an authenticator by name.
    pub fn authenticator(&self, name: &str) -> Option<&Authenticator> {
        self.authenticators.iter().find(|a| a.name == name)
    }
}

fn parse_backup(b: RawBackup) -> Result<BackupSet, ParseError> {
    if !valid_id(&b.set_id) {
        return Err(ParseError::key(
            "backup.set_id",
            "must be 1 to 64 letters, digits or dashes",
        ));
    }
    if b.kdf != backup::KDF {
        return Err(ParseError::key(
            "backup.kdf",
            format!("must be {}", backup::KDF),
        ));
    }
    if !(backup::MIN_ITERATIONS..=backup::MAX_ITERATIONS).contains(&b.iterations) {
        return Err(ParseError::key(
            "backup.iterations",
            format!(
                "must be {} to {}",
                backup::MIN_ITERATIONS,
                backup::MAX_ITERATIONS
            ),
        ));
    }
    let salt = crate::secret::from_hex(&b.salt)
        .filter(|s| (8..=64).contains(&s.len()))
        .ok_or_else(|| ParseError::key("backup.salt", "must be 16 to 128 hex digits"))?;
    if b.hashes.len() > backup::MAX_COUNT {
        return Err(ParseError::key(
            "backup.hashes",
            format!("at most {} codes", backup::MAX_COUNT),
        ));
    }
    let hashes = b
        .hashes
        .iter()
        .map(|h| BackupSet::parse_hash(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ParseError::key("backup.hashes", "each entry must be 64 hex digits"))?;
    Ok(BackupSet {
        set_id: b.set_id,
        created: b.created,
        iterations: b.iterations,
        salt,
        hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SecretFile {
        SecretFile {
            enrollment_id: "e1".into(),
            created: 1_700_000_000,
            authenticators: vec![Authenticator {
                name: DEFAULT_NAME.into(),
                secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
                algorithm: Algorithm::Sha1,
                digits: 6,
                period: 30,
                added: 1_700_000_000,
                issuer: "host.example".into(),
                label: "alice".into(),
                hotp: None,
            }],
            backup: Some(BackupSet::generate_with(3, 1_700_000_000, 1000).unwrap().0),
            forget_hosts_before: 0,
        }
    }

    #[test]
    fn round_trip() {
        let f = sample();
        let text = f.to_toml().unwrap();
        let back = SecretFile::parse(text.as_bytes()).unwrap();
        assert_eq!(back.enrollment_id, "e1");
        assert_eq!(
            back.authenticators[0].secret.expose(),
            b"12345678901234567890"
        );
        assert_eq!(back.backup, f.backup);
        assert_eq!(back.to_toml().unwrap().as_str(), text.as_str());
    }

    #[test]
    fn without_keys_round_trip_and_a_file_needs_its_keys() {
        let f = sample();
        let text = f.to_toml_without_keys().unwrap();
        assert!(!text.contains(f.authenticators[0].secret.to_base32().as_str()));
        let keys = |a: &KeyFor| {
            f.authenticator(a.name)
                .map(|x| TotpSecret::from_bytes(x.secret.expose().to_vec()).unwrap())
        };
        let back = SecretFile::parse_without_keys(text.as_bytes(), &keys).unwrap();
        assert_eq!(back.to_toml().unwrap(), f.to_toml().unwrap());
        // Without its keys the text is not a secret file, and a missing key is an error.
        let e = SecretFile::parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("authenticator.secret"));
        let e = SecretFile::parse_without_keys(text.as_bytes(), &|_| None).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("authenticator.secret"));
        let full = f.to_toml().unwrap();
        let e = SecretFile::parse_without_keys(full.as_bytes(), &keys).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("authenticator.secret"));
    }

    #[test]
    fn otpauth_uri_has_every_parameter() {
        let f = sample();
        let uri = f.authenticators[0].otpauth_uri();
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/host.example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30&issuer=host.example"
        );
    }

    #[test]
    fn hotp_round_trip_and_checks() {
        let mut f = sample();
        f.authenticators[0].hotp = Some(Hotp {
            counter: 7,
            token_id: "cccjgjgkhcbb".into(),
        });
        let text = f.to_toml().unwrap();
        assert!(text.contains("kind = \"hotp\"") && text.contains("counter = 7"));
        assert!(!text.contains("period"));
        let back = SecretFile::parse(text.as_bytes()).unwrap();
        assert_eq!(back.authenticators[0].hotp, f.authenticators[0].hotp);
        assert_eq!(back.to_toml().unwrap().as_str(), text.as_str());
        assert!(
            back.authenticators[0]
                .otpauth_uri()
                .starts_with("otpauth://hotp/host.example:alice?")
        );
        assert!(back.authenticators[0].otpauth_uri().contains("&counter=7"));
        for (from, to, key) in [
            (
                "counter = 7",
                "counter = 7\nperiod = 30",
                "authenticator.period",
            ),
            ("counter = 7\n", "", "authenticator.counter"),
            ("cccjgjgkhcbb", "cccjgjgkhcba", "authenticator.token_id"),
            ("kind = \"hotp\"", "kind = \"motp\"", "authenticator.kind"),
        ] {
            let bad = text.replace(from, to);
            assert_eq!(parse_err(&bad).key.as_deref(), Some(key), "{to}");
        }
        let totp = sample().to_toml().unwrap();
        assert!(!totp.contains("kind"), "TOTP files stay as they were");
        let bad = totp.replace("period = 30", "period = 30\ncounter = 1");
        assert_eq!(
            parse_err(&bad).key.as_deref(),
            Some("authenticator.counter")
        );
        assert!(valid_token_id("vvcccccccccb") && valid_token_id("cccb12345678"));
        assert!(!valid_token_id("cccb1234567a") && !valid_token_id("ccc"));
    }

    fn parse_err(text: &str) -> ParseError {
        SecretFile::parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn given_bad_files_then_clear_errors_without_values() {
        let good = sample().to_toml().unwrap();
        assert_eq!(parse_err("").message, "the file is empty");
        assert_eq!(
            parse_err("garbage ][").message,
            "not valid TOML for this format"
        );
        assert_eq!(parse_err("version = 2\n").key.as_deref(), Some("version"));
        assert!(
            SecretFile::parse(&good.as_bytes()[..good.len() / 2]).is_err(),
            "truncated"
        );
        let bad_digits = good.replace("digits = 6", "digits = 7");
        assert_eq!(
            parse_err(&bad_digits).key.as_deref(),
            Some("authenticator.digits")
        );
        let bad_secret = good.replace("secret = \"GEZ", "secret = \"1EZ");
        let e = parse_err(&bad_secret);
        assert_eq!(e.key.as_deref(), Some("authenticator.secret"));
        assert!(!e.to_string().contains("EZDGNB"));
        let unknown = format!("{}\nsurprise = 1\n", good.as_str())
            .replace("[[authenticator]]", "surprise2 = 1\n[[authenticator]]");
        assert!(SecretFile::parse(unknown.as_bytes()).is_err());
        assert!(SecretFile::parse(b"\xff\xfe").is_err());
    }

    #[test]
    fn given_escape_sequences_or_bidi_overrides_in_issuer_or_label_then_refused() {
        let good = sample().to_toml().unwrap();
        for (from, to, key) in [
            (
                "label = \"alice\"",
                "label = \"\\u001b]0;owned\\u0007\\u001b[1A\\u001b[2K\"",
                "authenticator.label",
            ),
            (
                "label = \"alice\"",
                "label = \"ali\\u009bce\"",
                "authenticator.label",
            ),
            (
                "label = \"alice\"",
                "label = \"ali\\u007fce\"",
                "authenticator.label",
            ),
            (
                "issuer = \"host.example\"",
                "issuer = \"host\\u202eelpmaxe\"",
                "authenticator.issuer",
            ),
            (
                "issuer = \"host.example\"",
                "issuer = \"host\\u2066x\"",
                "authenticator.issuer",
            ),
            (
                "label = \"alice\"",
                "label = \"a:b\"",
                "authenticator.label",
            ),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good.as_str(), "{to}");
            let e = parse_err(&bad);
            assert_eq!(e.key.as_deref(), Some(key), "{to}");
            assert!(!e.to_string().contains('\x1b'), "{e}");
        }
        let fine = good.replace("label = \"alice\"", "label = \"Älice Ünïcode 名前\"");
        assert_eq!(
            SecretFile::parse(fine.as_bytes()).unwrap().authenticators[0].label,
            "Älice Ünïcode 名前"
        );
        assert_eq!(label_from("a:b\x1b[2Kc\u{202e}"), "a-b-[2Kc-");
    }
}
