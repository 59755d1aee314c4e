//! Path templates (`~/.config/pam-totp/secret.toml`, `/var/lib/pam-totp/secrets/${USER}.toml`)
//! and the rule for user names that may appear in a file name.

use super::account::UserInfo;
use std::path::PathBuf;

/// Why a path template cannot be used for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// The user name is not a plain file name.
    UnsafeUserName(String),
    /// `~user` (only `~` alone or `~/` is supported).
    TildeUser,
    /// An escape other than `~`, `${HOME}`, `${USER}`, `%h`, `%u`, `%%`; the text at it.
    UnknownEscape(String),
    /// The result is not an absolute path.
    Relative,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::UnsafeUserName(u) => {
                write!(f, "the user name {u:?} cannot be used in a path")
            }
            TemplateError::TildeUser => {
                f.write_str("`~` must be followed by `/` (`~user` is not supported)")
            }
            TemplateError::UnknownEscape(at) => write!(
                f,
                "unknown escape at `{at}` (use ~, ${{HOME}}, ${{USER}}, %h, %u or %%)"
            ),
            TemplateError::Relative => {
                f.write_str("the path must be absolute (start with /, ~ or ${HOME})")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// Expands a path template: a leading `~`, `${HOME}` and `%h` become the home directory,
/// `${USER}` and `%u` the user name, `%%` a percent sign.
///
/// # Errors
/// An unknown escape, a user name that is not a safe file name, or a relative result.
pub fn expand_template(template: &str, user: &UserInfo) -> Result<PathBuf, TemplateError> {
    if !safe_file_name(&user.name) {
        return Err(TemplateError::UnsafeUserName(user.name.clone()));
    }
    let home = user.home.to_string_lossy();
    let mut out = String::new();
    let mut rest = template;
    if let Some(r) = rest.strip_prefix('~') {
        if !(r.is_empty() || r.starts_with('/')) {
            return Err(TemplateError::TildeUser);
        }
        out.push_str(&home);
        rest = r;
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("${HOME}") {
            out.push_str(&home);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${USER}") {
            out.push_str(&user.name);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%h") {
            out.push_str(&home);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%u") {
            out.push_str(&user.name);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%%") {
            out.push('%');
            rest = r;
        } else if rest.starts_with('%') || rest.starts_with("${") {
            return Err(TemplateError::UnknownEscape(
                rest.chars().take(8).collect::<String>(),
            ));
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let path = PathBuf::from(out);
    if !path.is_absolute() {
        return Err(TemplateError::Relative);
    }
    Ok(path)
}

/// Whether a user name can be used as it is in a file name.
pub fn safe_file_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'$'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn template_expansion() {
        let u = UserInfo {
            name: "alice".into(),
            uid: 1,
            gid: 1,
            home: "/home/alice".into(),
        };
        assert_eq!(
            expand_template("~/.config/x", &u).unwrap(),
            PathBuf::from("/home/alice/.config/x")
        );
        assert_eq!(
            expand_template("/var/lib/s/${USER}.toml", &u).unwrap(),
            PathBuf::from("/var/lib/s/alice.toml")
        );
        assert_eq!(
            expand_template("%h/%u-100%%", &u).unwrap(),
            PathBuf::from("/home/alice/alice-100%")
        );
        assert!(expand_template("/x/%z", &u).is_err());
        assert!(expand_template("${SHELL}", &u).is_err());
        assert!(expand_template("relative/${USER}", &u).is_err());
        let evil = UserInfo {
            name: "../root".into(),
            ..u
        };
        assert!(expand_template("/s/${USER}", &evil).is_err());
    }
}
