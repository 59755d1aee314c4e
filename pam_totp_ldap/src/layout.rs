//! Where things are in the directory (docs/fleet.md, "Directory layout"):
//!
//! - the user's entry `U`, found by `user_filter` under `base`;
//! - `cn=pam-totp,U` (`device` + `pamTotpAccount`): the enrollment without its keys
//!   (`pamTotpEnrollmentData`), its id, and the login state (`pamTotpState`);
//! - one token entry per authenticator, `cn=<name>,cn=pam-totp,U` (`device` + `oathTOTPToken` +
//!   `oathTOTPParams` + `pamTotpToken`, or the HOTP classes): the key in `oathSecret`, the
//!   parameters slapo-otp reads, and the last accepted step or counter it shares with us.

use crate::conn::{Conn, fail};
use ldap3::{Scope, SearchEntry};
use pam_totp_core::StoreError;
use pam_totp_core::directory::{DirectoryConfig, escape_dn_value, escape_filter_value};
use pam_totp_core::error::DirectoryProblem;
use pam_totp_core::secret_file::{Algorithm, Authenticator};
use std::collections::HashSet;
use zeroize::{Zeroize, Zeroizing};

pub(crate) const ACCOUNT_RDN: &str = "cn=pam-totp";
pub(crate) const ENROLLMENT_ID: &str = "pamTotpEnrollmentId";
pub(crate) const ENROLLMENT_DATA: &str = "pamTotpEnrollmentData";
pub(crate) const STATE: &str = "pamTotpState";
pub(crate) const SECRET: &str = "oathSecret";
pub(crate) const LAST_STEP: &str = "oathTOTPLastTimeStep";
pub(crate) const HOTP_COUNTER: &str = "oathHOTPCounter";

/// The kind of a token entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Totp,
    Hotp,
}

/// A token entry as read.
pub(crate) struct Token {
    pub dn: String,
    pub name: String,
    pub kind: Kind,
    pub enrollment_id: String,
    /// Only when asked for (the module and enrollment need it; `status` does not).
    pub secret: Option<Zeroizing<Vec<u8>>>,
    /// `oathTOTPLastTimeStep` or `oathHOTPCounter`; `None` when absent.
    pub counter: Option<i64>,
}

/// `cn=pam-totp,U` and its tokens, as read.
pub(crate) struct Account {
    pub dn: String,
    pub enrollment_id: Option<String>,
    pub data: Option<Vec<u8>>,
    pub state: Option<Vec<u8>>,
    pub tokens: Vec<Token>,
}

fn first(e: &SearchEntry, attr: &str) -> Option<Vec<u8>> {
    let key = e
        .attrs
        .keys()
        .chain(e.bin_attrs.keys())
        .find(|k| k.eq_ignore_ascii_case(attr))?;
    e.attrs
        .get(key)
        .and_then(|v| v.first())
        .map(|s| s.as_bytes().to_vec())
        .or_else(|| e.bin_attrs.get(key).and_then(|v| v.first()).cloned())
}

fn text(e: &SearchEntry, attr: &str) -> Option<String> {
    first(e, attr).and_then(|b| String::from_utf8(b).ok())
}

fn has_class(e: &SearchEntry, class: &str) -> bool {
    e.attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("objectClass"))
        .flat_map(|(_, v)| v)
        .any(|c| c.eq_ignore_ascii_case(class))
}

/// The DN of `user`'s entry; `None` when no entry matches the filter (a user the directory
/// does not know). More than one match is an error: `user_filter` must find one.
pub(crate) fn find_user(
    conn: &mut Conn,
    cfg: &DirectoryConfig,
    user: &str,
) -> Result<Option<String>, StoreError> {
    let filter = cfg.filter_for(user);
    let found = conn
        .search(&cfg.base, Scope::Subtree, &filter, &["1.1"])?
        .ok_or_else(|| {
            fail(
                &conn.server,
                DirectoryProblem::User,
                format!("the base {} does not exist", cfg.base),
            )
        })?;
    match found.as_slice() {
        [one] => Ok(Some(one.dn.clone())),
        [] => Ok(None),
        _ => Err(fail(
            &conn.server,
            DirectoryProblem::User,
            format!(
                "{} entries match user {}; user_filter must find one",
                found.len(),
                escape_filter_value(user)
            ),
        )),
    }
}

pub(crate) fn account_dn(user_dn: &str) -> String {
    format!("{ACCOUNT_RDN},{user_dn}")
}

pub(crate) fn token_dn(account_dn: &str, name: &str) -> String {
    format!("cn={},{account_dn}", escape_dn_value(name))
}

/// Reads `cn=pam-totp,U` and its token entries in one subtree search; `Ok(None)` if there is
/// no such entry. Keys are read only when `keys` is set.
pub(crate) fn read_account(
    conn: &mut Conn,
    user_dn: &str,
    keys: bool,
) -> Result<Option<Account>, StoreError> {
    let dn = account_dn(user_dn);
    let mut attrs = vec![
        "objectClass",
        "cn",
        ENROLLMENT_ID,
        ENROLLMENT_DATA,
        STATE,
        LAST_STEP,
        HOTP_COUNTER,
    ];
    if keys {
        attrs.push(SECRET);
    }
    let Some(mut entries) = conn.search(&dn, Scope::Subtree, "(objectClass=*)", &attrs)? else {
        return Ok(None);
    };
    let mut account = None;
    let mut tokens = Vec::new();
    let norm = |s: &str| s.to_ascii_lowercase().replace(", ", ",");
    for e in &entries {
        if norm(&e.dn) == norm(&dn) {
            account = Some(Account {
                dn: e.dn.clone(),
                enrollment_id: text(e, ENROLLMENT_ID),
                data: first(e, ENROLLMENT_DATA),
                state: first(e, STATE),
                tokens: Vec::new(),
            });
            continue;
        }
        let kind = if has_class(e, "oathHOTPToken") {
            Kind::Hotp
        } else if has_class(e, "oathTOTPToken") {
            Kind::Totp
        } else {
            continue;
        };
        let counter_attr = match kind {
            Kind::Totp => LAST_STEP,
            Kind::Hotp => HOTP_COUNTER,
        };
        let counter = match text(e, counter_attr) {
            None => None,
            Some(t) => Some(t.trim().parse::<i64>().map_err(|_| {
                fail(
                    &conn.server,
                    DirectoryProblem::Protocol,
                    format!("{counter_attr} of {} is not a number", e.dn),
                )
            })?),
        };
        tokens.push(Token {
            dn: e.dn.clone(),
            name: text(e, "cn").unwrap_or_default(),
            kind,
            enrollment_id: text(e, ENROLLMENT_ID).unwrap_or_default(),
            secret: first(e, SECRET).map(Zeroizing::new),
            counter,
        });
    }
    // The keys were copied into zeroizing buffers above; wipe the client's decoded copies too
    // (best effort: the library's own receive buffers are out of reach).
    for e in &mut entries {
        for (name, values) in e.bin_attrs.iter_mut() {
            if name.eq_ignore_ascii_case(SECRET) {
                values.iter_mut().for_each(Zeroize::zeroize);
            }
        }
        for (name, values) in e.attrs.iter_mut() {
            if name.eq_ignore_ascii_case(SECRET) {
                values.iter_mut().for_each(Zeroize::zeroize);
            }
        }
    }
    Ok(account.map(|mut a| {
        a.tokens = tokens;
        a
    }))
}

/// An attribute for an Add.
pub(crate) fn attr(name: &str, values: &[&[u8]]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values.iter().map(|v| v.to_vec()).collect(),
    )
}

/// The attributes of a new `cn=pam-totp,U`.
pub(crate) fn account_attrs(user_dn: &str) -> Vec<(Vec<u8>, HashSet<Vec<u8>>)> {
    vec![
        attr("objectClass", &[b"device", b"pamTotpAccount"]),
        attr("cn", &[b"pam-totp"]),
        attr("owner", &[user_dn.as_bytes()]),
    ]
}

/// RFC 8018 OID of the HMAC algorithm, as `oathHMACAlgorithm` holds it.
pub(crate) fn hmac_oid(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Sha1 => "1.2.840.113549.2.7",
        Algorithm::Sha256 => "1.2.840.113549.2.9",
        Algorithm::Sha512 => "1.2.840.113549.2.11",
    }
}

/// The attributes of the token entry for `a` (without the counter, see [`initial_counter`]).
pub(crate) fn token_attrs(
    dn: &str,
    user_dn: &str,
    enrollment_id: &str,
    a: &Authenticator,
) -> Vec<(Vec<u8>, HashSet<Vec<u8>>)> {
    let digits = a.digits.to_string();
    let mut attrs = vec![
        attr("cn", &[a.name.as_bytes()]),
        attr("owner", &[user_dn.as_bytes()]),
        attr(ENROLLMENT_ID, &[enrollment_id.as_bytes()]),
        attr(SECRET, &[a.secret.expose()]),
        attr("oathOTPLength", &[digits.as_bytes()]),
        attr("oathHMACAlgorithm", &[hmac_oid(a.algorithm).as_bytes()]),
    ];
    match &a.hotp {
        None => {
            let period = a.period.to_string();
            attrs.extend([
                attr(
                    "objectClass",
                    &[
                        b"device",
                        b"oathTOTPToken",
                        b"oathTOTPParams",
                        b"pamTotpToken",
                    ],
                ),
                attr("oathTOTPParams", &[dn.as_bytes()]),
                attr("oathTOTPTimeStepPeriod", &[period.as_bytes()]),
                attr("oathTOTPTimeStepWindow", &[b"1"]),
            ]);
        }
        Some(_) => {
            attrs.extend([
                attr(
                    "objectClass",
                    &[
                        b"device",
                        b"oathHOTPToken",
                        b"oathHOTPParams",
                        b"pamTotpToken",
                    ],
                ),
                attr("oathHOTPParams", &[dn.as_bytes()]),
                attr("oathHOTPLookAhead", &[b"10"]),
            ]);
        }
    }
    attrs
}

/// The counter attribute and its first value: TOTP starts with no step used (0), HOTP with the
/// counter before the enrollment's first code (`oathHOTPCounter` is the last one accepted).
pub(crate) fn initial_counter(a: &Authenticator) -> (&'static str, String) {
    match &a.hotp {
        None => (LAST_STEP, "0".into()),
        Some(h) => (HOTP_COUNTER, (i128::from(h.counter) - 1).to_string()),
    }
}

/// The user name in a user entry's DN: the value of its first RDN, unescaped.
pub(crate) fn user_of(user_dn: &str) -> Option<String> {
    let mut out = String::new();
    let rdn_value = user_dn.split_once('=')?.1;
    let mut chars = rdn_value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            ',' | '+' => break,
            c => out.push(c),
        }
    }
    Some(out)
}

/// The DN of the entry above `dn`.
pub(crate) fn parent(dn: &str) -> Option<&str> {
    let b = dn.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b',' => return Some(dn[i + 1..].trim_start()),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns() {
        assert_eq!(
            parent("cn=pam-totp,uid=a\\,b,ou=people"),
            Some("uid=a\\,b,ou=people")
        );
        assert_eq!(user_of("uid=a\\,b,ou=people").as_deref(), Some("a,b"));
        assert_eq!(
            token_dn("cn=pam-totp,uid=x", "phone"),
            "cn=phone,cn=pam-totp,uid=x"
        );
    }
}
