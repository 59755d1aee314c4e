//! The one reader of `/etc/pam.d` service files, for the module (does this service run
//! `account required pam_totp.so`?) and for `pam-totp doctor`. It follows the syntax Linux-PAM
//! accepts: `#` comments, lines continued with a trailing `\`, `[value=action ...]` controls
//! (which may hold spaces), a leading `-` on the type, `@include FILE` (every type of FILE),
//! `TYPE include FILE` and `TYPE substack FILE` (that type of FILE). Includes are followed up to
//! [`MAX_DEPTH`] levels; a file that includes itself ends there. Service names are lower-cased,
//! as Linux-PAM does.

use std::path::{Path, PathBuf};

/// Where Linux-PAM reads service files.
pub const PAM_D: &str = "/etc/pam.d";
/// How deep includes are followed.
pub const MAX_DEPTH: usize = 8;

/// How a module line's result counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `required`.
    Required,
    /// `requisite`.
    Requisite,
    /// `sufficient`.
    Sufficient,
    /// `optional`.
    Optional,
    /// `[value=action ...]`, as pairs.
    Actions(Vec<(String, String)>),
}

impl Control {
    /// Whether a failure of the module fails the whole stack: `required`, `requisite`, or
    /// actions whose `default` is `bad` or `die`.
    pub fn fails_stack(&self) -> bool {
        match self {
            Control::Required | Control::Requisite => true,
            Control::Sufficient | Control::Optional => false,
            Control::Actions(pairs) => pairs
                .iter()
                .any(|(v, a)| v == "default" && (a == "bad" || a == "die")),
        }
    }
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Required => f.write_str("required"),
            Control::Requisite => f.write_str("requisite"),
            Control::Sufficient => f.write_str("sufficient"),
            Control::Optional => f.write_str("optional"),
            Control::Actions(pairs) => {
                let words: Vec<String> = pairs.iter().map(|(v, a)| format!("{v}={a}")).collect();
                write!(f, "[{}]", words.join(" "))
            }
        }
    }
}

/// One module line of a stack, with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `auth`, `account`, `password` or `session`.
    pub kind: String,
    /// The control.
    pub control: Control,
    /// The module as written (a name like `pam_totp.so` or a path).
    pub module: String,
    /// Its arguments (a `[...]` argument is one element, brackets removed).
    pub args: Vec<String>,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its line number there (of the first physical line).
    pub number: usize,
}

impl Line {
    /// Whether the module's file name is `name` or `lib<name>` (the built `libpam_totp.so`).
    pub fn is_module(&self, name: &str) -> bool {
        let file = self.module.rsplit('/').next().unwrap_or("");
        file == name || file.strip_prefix("lib") == Some(name)
    }
}

/// The module lines of `kind` (`None`: every kind) that `service` runs, in order, includes
/// expanded. A missing service file gives no lines.
pub fn stack(dir: &Path, service: &str, kind: Option<&str>) -> Vec<Line> {
    let service = service.to_ascii_lowercase();
    let mut out = Vec::new();
    if !service.is_empty() && !service.contains('/') {
        read(dir, &service, kind, 0, &mut out);
    }
    out
}

/// Joins continued lines and drops comments: (first line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        let raw = raw.split('#').next().unwrap_or("");
        match raw.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                pending = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                if !acc.trim().is_empty() {
                    out.push((start, acc));
                }
            }
        }
    }
    if let Some((start, acc)) = pending {
        if !acc.trim().is_empty() {
            out.push((start, acc));
        }
    }
    out
}

/// Splits a line into words, keeping a `[...]` group (spaces and all) as one word.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '[' {
            chars.next();
            let mut depth = 1;
            for c in chars.by_ref() {
                match c {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                word.push(c);
            }
            out.push(format!("[{word}]"));
            continue;
        }
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            word.push(c);
            chars.next();
        }
        out.push(word);
    }
    out
}

fn control_of(word: &str) -> Option<Control> {
    Some(match word {
        "required" => Control::Required,
        "requisite" => Control::Requisite,
        "sufficient" => Control::Sufficient,
        "optional" => Control::Optional,
        w if w.starts_with('[') && w.ends_with(']') => Control::Actions(
            w[1..w.len() - 1]
                .split_whitespace()
                .map(|pair| match pair.split_once('=') {
                    Some((v, a)) => (v.to_ascii_lowercase(), a.to_ascii_lowercase()),
                    None => (pair.to_ascii_lowercase(), String::new()),
                })
                .collect(),
        ),
        _ => return None,
    })
}

fn read(dir: &Path, file: &str, kind: Option<&str>, depth: usize, out: &mut Vec<Line>) {
    if depth > MAX_DEPTH || file.is_empty() {
        return;
    }
    let path = if file.starts_with('/') {
        PathBuf::from(file)
    } else if file.contains('/') {
        return;
    } else {
        dir.join(file)
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    for (number, text) in logical_lines(&text) {
        let w = words(&text);
        let Some(first) = w.first() else { continue };
        if first == "@include" {
            if let Some(f) = w.get(1) {
                read(dir, f, kind, depth + 1, out);
            }
            continue;
        }
        let this_kind = first.trim_start_matches('-').to_ascii_lowercase();
        if kind.is_some_and(|k| k != this_kind) {
            continue;
        }
        let Some(control) = w.get(1) else { continue };
        if control == "include" || control == "substack" {
            if let Some(f) = w.get(2) {
                read(dir, f, Some(&this_kind), depth + 1, out);
            }
            continue;
        }
        let (Some(control), Some(module)) = (control_of(control), w.get(2)) else {
            continue;
        };
        out.push(Line {
            kind: this_kind,
            control,
            module: module.clone(),
            args: w[3..]
                .iter()
                .map(|a| {
                    a.strip_prefix('[')
                        .and_then(|a| a.strip_suffix(']'))
                        .unwrap_or(a)
                        .to_string()
                })
                .collect(),
            file: path.clone(),
            number,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pam-totp-pamd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn modules(lines: &[Line]) -> Vec<(String, String)> {
        lines
            .iter()
            .map(|l| (l.kind.clone(), l.module.clone()))
            .collect()
    }

    #[test]
    fn includes_substacks_continuations_and_brackets() {
        let dir = tree(
            "syntax",
            &[
                (
                    "svc",
                    "# comment\n@include common-auth\nauth [success=1 default=ignore] \\\n  pam_totp.so nullok [prompt=Code please: ] # tail\n-session optional pam_systemd.so\naccount substack common-account\npassword include common-password\n",
                ),
                (
                    "common-auth",
                    "auth required pam_unix.so\naccount required pam_x.so\n",
                ),
                (
                    "common-account",
                    "account requisite /lib/security/libpam_totp.so\n",
                ),
                (
                    "common-password",
                    "password required pam_unix.so\nauth required pam_no.so\n",
                ),
            ],
        );
        let all = stack(&dir, "SVC", None);
        assert_eq!(
            modules(&all),
            vec![
                ("auth".into(), "pam_unix.so".into()),
                ("account".into(), "pam_x.so".into()),
                ("auth".into(), "pam_totp.so".into()),
                ("session".into(), "pam_systemd.so".into()),
                ("account".into(), "/lib/security/libpam_totp.so".into()),
                ("password".into(), "pam_unix.so".into()),
            ]
        );
        let totp = &all[2];
        assert_eq!(totp.number, 3);
        assert_eq!(totp.args, vec!["nullok", "prompt=Code please: "]);
        assert!(!totp.control.fails_stack());
        assert!(all[4].is_module("pam_totp.so"));
        assert!(all[4].control.fails_stack());
        assert_eq!(modules(&stack(&dir, "svc", Some("account"))).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn controls_that_fail_the_stack() {
        for (word, fails) in [
            ("required", true),
            ("requisite", true),
            ("optional", false),
            ("sufficient", false),
            ("[success=ok default=bad]", true),
            (
                "[success=ok new_authtok_reqd=ok ignore=ignore default=die]",
                true,
            ),
            ("[success=1 default=ignore]", false),
        ] {
            assert_eq!(control_of(word).unwrap().fails_stack(), fails, "{word}");
        }
    }

    #[test]
    fn loops_missing_files_and_odd_names_end_quietly() {
        let dir = tree(
            "loop",
            &[("loop", "@include loop\nauth required pam_a.so\n")],
        );
        assert_eq!(stack(&dir, "loop", None).len(), MAX_DEPTH + 1);
        assert!(stack(&dir, "missing", None).is_empty());
        assert!(stack(&dir, "../etc/passwd", None).is_empty());
        assert!(stack(&dir, "", None).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shipped_examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/pam.d");
        for name in [
            "sshd-publickey.example",
            "sshd-password.example",
            "login.example",
            "sudo.example",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let d = tree("examples", &[("svc", &text)]);
            let lines = stack(&d, "svc", Some("auth"));
            assert!(
                lines.iter().any(|l| l.is_module("pam_totp.so")),
                "{name}: {lines:?}"
            );
            std::fs::remove_dir_all(&d).unwrap();
        }
    }

    #[test]
    fn debian_and_fedora_stacks() {
        let dir = tree(
            "distros",
            &[
                // Debian 12 common-auth as pam-auth-update writes it, with the totp profile.
                (
                    "common-auth",
                    "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\t\t\tpam_deny.so\nauth\trequired\t\t\tpam_permit.so\nauth\trequired\t\t\tpam_totp.so nullok\n",
                ),
                (
                    "sshd",
                    "@include common-auth\naccount    required     pam_nologin.so\n@include common-account\n",
                ),
                (
                    "common-account",
                    "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\naccount\trequisite\t\t\tpam_deny.so\n",
                ),
                // Fedora's authselect output.
                (
                    "system-auth",
                    "auth        required                                     pam_env.so\nauth        sufficient                                   pam_unix.so nullok\nauth        required                                     pam_deny.so\naccount     required                                     pam_unix.so\n",
                ),
                ("password-auth", "auth        substack      system-auth\n"),
            ],
        );
        let debian = stack(&dir, "sshd", Some("auth"));
        assert_eq!(debian.len(), 4);
        assert!(debian[3].is_module("pam_totp.so") && debian[3].control.fails_stack());
        assert_eq!(stack(&dir, "sshd", Some("account")).len(), 3);
        let fedora = stack(&dir, "password-auth", Some("auth"));
        assert_eq!(modules(&fedora).len(), 3);
        assert_eq!(stack(&dir, "password-auth", Some("account")).len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
