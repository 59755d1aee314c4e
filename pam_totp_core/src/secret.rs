//! Key material and the few encodings it needs. These types are not `Clone` or `Display`, and
//! their `Debug` is redacted, so a stray `{:?}` or log line cannot print a secret.

use crate::error::KeyError;
use std::fmt;
use zeroize::Zeroizing;

/// Raw TOTP key bytes.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// Shortest key accepted when reading a file: 80 bits, what old google-authenticator files hold.
pub const MIN_SECRET_BYTES: usize = 10;
/// Longest key accepted (an HMAC-SHA512 block).
pub const MAX_SECRET_BYTES: usize = 128;
/// Length of newly generated keys: 160 bits, as RFC 4226 recommends.
pub const NEW_SECRET_BYTES: usize = 20;

impl TotpSecret {
    /// Decodes an RFC 4648 base32 key (case-insensitive, spaces and `=` padding ignored).
    ///
    /// # Errors
    /// A description of what is wrong with the encoding or length; never the value.
    pub fn from_base32(text: &str) -> Result<Self, KeyError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_ascii_whitespace() && *c != '=' && *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        if cleaned.is_empty() {
            return Err(KeyError::Empty);
        }
        if !cleaned
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        {
            return Err(KeyError::NotBase32);
        }
        let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &cleaned)
            .ok_or(KeyError::BadBase32)?;
        Self::from_bytes(bytes)
    }

    /// Wraps raw key bytes, checking the length.
    ///
    /// # Errors
    /// The key is shorter than 80 bits or longer than 1024 bits.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort(MIN_SECRET_BYTES * 8));
        }
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(KeyError::TooLong(MAX_SECRET_BYTES * 8));
        }
        Ok(TotpSecret(bytes))
    }

    /// A fresh random key of `len` bytes from the operating system's CSPRNG.
    ///
    /// # Errors
    /// The random source failed or `len` is out of range.
    pub fn generate(len: usize) -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        random_fill(&mut bytes)?;
        Self::from_bytes(bytes.to_vec())
    }

    /// The key as unpadded upper-case base32, the form authenticator apps and `secret.toml` use.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            &self.0,
        ))
    }

    /// The raw bytes: the one greppable door to the key.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bits.
    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }
}

/// Fills `buf` from the operating system's random source.
///
/// # Errors
/// The random source is unavailable.
pub fn random_fill(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

/// A random identifier of `bytes` bytes, as lower-case hex.
///
/// # Errors
/// The random source is unavailable.
pub fn random_id(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    random_fill(&mut buf)?;
    Ok(to_hex(&buf))
}

/// Lower-case hex encoding.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Decodes lower- or upper-case hex; `None` on any other character or an odd length.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip_and_normalisation() {
        let s = TotpSecret::from_base32("jbsw y3dp ehpk 3pxp").unwrap();
        assert_eq!(s.expose(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(s.to_base32().as_str(), "JBSWY3DPEHPK3PXP");
    }

    #[test]
    fn given_bad_base32_then_error_names_no_value() {
        let err = TotpSecret::from_base32("JBSWY3DPEHPK3PX1").unwrap_err();
        assert!(!err.to_string().contains("JBSW"));
        assert_eq!(err, KeyError::NotBase32);
        assert!(TotpSecret::from_base32("").is_err());
        assert!(TotpSecret::from_base32("AAAA").is_err(), "too short");
    }

    #[test]
    fn debug_is_redacted() {
        let s = TotpSecret::generate(20).unwrap();
        assert_eq!(format!("{s:?}"), "TotpSecret([redacted])");
        assert_eq!(s.bits(), 160);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(to_hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00ABff").unwrap(), vec![0, 0xab, 0xff]);
        assert!(from_hex("0g").is_none());
        assert!(from_hex("abc").is_none());
    }
}
