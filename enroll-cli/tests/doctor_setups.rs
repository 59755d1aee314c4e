//! `pam-totp doctor --root TREE` on system trees built from the copy-ready examples in config/
//! (sshd key + code, sshd password + code and its forward_pass variant, sudo, login): each is
//! recognised without errors; and the pitfalls of docs/ssh.md are named with their fix.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Debian's common-auth: a wrong password ends at `requisite pam_deny.so`.
const COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\n\
                           auth requisite pam_deny.so\n\
                           auth required pam_permit.so\n";

fn example(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A system tree with the module installed where libpam looks, a Debian common-auth and the
/// given files.
fn tree(dir: &TempDir, files: &[(&str, String)]) -> PathBuf {
    let root = dir.path().join("root");
    let _ = std::fs::remove_dir_all(&root);
    let triplet = match std::env::consts::ARCH {
        "aarch64" => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    let mut all = vec![
        (format!("lib/{triplet}/security/pam_unix.so"), String::new()),
        (format!("lib/{triplet}/security/pam_totp.so"), String::new()),
        ("etc/pam.d/common-auth".to_string(), COMMON_AUTH.to_string()),
        (
            "etc/ssh/sshd_config".to_string(),
            "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n".to_string(),
        ),
    ];
    all.extend(files.iter().map(|(p, t)| (p.to_string(), t.clone())));
    for (p, text) in all {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    root
}

fn doctor(conf: &Path, root: &Path) -> (bool, String) {
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "doctor",
            "--root",
            root.to_str().unwrap(),
        ],
        "",
    );
    (o.status.success(), stdout(&o))
}

/// The 1-based number of the first line of `text` equal to `line`.
fn line_of(text: &str, line: &str) -> usize {
    text.lines().position(|l| l == line).expect(line) + 1
}

fn has(out: &str, text: &str) {
    assert!(out.contains(text), "missing {text:?} in:\n{out}");
}

fn lacks(out: &str, text: &str) {
    assert!(!out.contains(text), "unexpected {text:?} in:\n{out}");
}

/// The PAM examples' module line without `nullok`, for a tree without nullok warnings.
fn arch_ok() -> bool {
    matches!(std::env::consts::ARCH, "x86_64" | "aarch64")
}

#[test]
fn given_shipped_key_and_code_setup_then_recognised_without_errors() {
    let dir = TempDir::new("doctor-key");
    let conf = dir.config("");
    let root = tree(
        &dir,
        &[
            ("etc/pam.d/sshd", example("pam.d/sshd-publickey.example")),
            (
                "etc/ssh/sshd_config.d/pam-totp.conf",
                example("sshd_config.d/pam-totp-publickey.conf.example"),
            ),
            ("etc/pam.d/sudo", example("pam.d/sudo.example")),
            ("etc/pam.d/login", example("pam.d/login.example")),
        ],
    );
    let (success, out) = doctor(&conf, &root);
    if !arch_ok() {
        return;
    }
    assert!(success, "{out}");
    has(&out, "0 error(s)");
    let n = line_of(
        &example("pam.d/sshd-publickey.example"),
        "auth    required    pam_totp.so",
    );
    has(
        &out,
        &format!(
            "[ok] pam sshd: /etc/pam.d/sshd:{n}: auth required pam_totp.so: key + code (sshd checks the key, PAM asks for the code)"
        ),
    );
    has(
        &out,
        "[ok] sshd_config: AuthenticationMethods publickey,keyboard-interactive",
    );
    has(&out, "[ok] pam sudo: /etc/pam.d/sudo:");
    has(&out, "auth required pam_totp.so: password, then code");
    has(&out, "[ok] pam login: /etc/pam.d/login:");
    // sudo and login ship with nullok: named, as a warning.
    has(
        &out,
        "[warning] nullok: `nullok` is in use (/etc/pam.d/login:",
    );
    // pam_permit after pam_totp: unenrolled/exempt users are not refused.
    lacks(&out, "is the only module");

    // nullok with the key+code file but without its pam_permit line: those users are refused.
    let conf = dir.config("nullok = true\nexempt_users = [\"root\"]\n");
    let pam =
        example("pam.d/sshd-publickey.example").replace("auth    required    pam_permit.so", "");
    let root = tree(
        &dir,
        &[
            ("etc/pam.d/sshd", pam),
            (
                "etc/ssh/sshd_config.d/pam-totp.conf",
                example("sshd_config.d/pam-totp-publickey.conf.example"),
            ),
        ],
    );
    let (_, out) = doctor(&conf, &root);
    has(
        &out,
        "[warning] pam sshd: pam_totp.so is the only module in the auth stack of sshd that can let a login through, and it steps aside (PAM_IGNORE) for unenrolled users (nullok) and exempt users",
    );
    has(
        &out,
        &format!("fix: Add `auth required pam_permit.so` right after /etc/pam.d/sshd:{n}"),
    );
    // exempt_result = "success" answers for exemptions; nullok still steps aside.
    let conf = dir.config("exempt_users = [\"root\"]\nexempt_result = \"success\"\n");
    let (_, out) = doctor(&conf, &root);
    lacks(&out, "is the only module");

    // The key+code PAM file with the password drop-in (keyboard-interactive alone): the code
    // alone logs in, and with pam_permit unenrolled users with nothing.
    let root = tree(
        &dir,
        &[
            ("etc/pam.d/sshd", example("pam.d/sshd-publickey.example")),
            (
                "etc/ssh/sshd_config.d/pam-totp.conf",
                example("sshd_config.d/pam-totp-password.conf.example"),
            ),
        ],
    );
    let (success, out) = doctor(&conf, &root);
    assert!(!success);
    has(
        &out,
        &format!(
            "[ERROR] pam sshd: /etc/pam.d/sshd:{n}: the PAM stack checks no password and sshd does not demand a key (AuthenticationMethods keyboard-interactive): keyboard-interactive alone logs in with the code alone, and users pam_totp steps aside for (nullok, exemptions) with nothing at all"
        ),
    );
}

#[test]
fn given_shipped_password_and_code_setup_then_recognised_and_requisite_named() {
    let dir = TempDir::new("doctor-pw");
    let conf = dir.config("");
    let drop_in = (
        "etc/ssh/sshd_config.d/pam-totp.conf",
        example("sshd_config.d/pam-totp-password.conf.example"),
    );
    let root = tree(
        &dir,
        &[
            ("etc/pam.d/sshd", example("pam.d/sshd-password.example")),
            drop_in.clone(),
        ],
    );
    let (success, out) = doctor(&conf, &root);
    if !arch_ok() {
        return;
    }
    assert!(success, "{out}");
    has(&out, "0 error(s), 0 warning(s)");
    let text = example("pam.d/sshd-password.example");
    let code = line_of(&text, "auth    required    pam_totp.so");
    let unix = line_of(&text, "auth    required    pam_unix.so");
    has(
        &out,
        &format!(
            "[ok] pam sshd: /etc/pam.d/sshd:{code}: auth required pam_totp.so: password, then code"
        ),
    );
    has(
        &out,
        "[ok] sshd_config: AuthenticationMethods keyboard-interactive: every way in passes keyboard-interactive",
    );

    // The forward_pass variant, as commented in the example.
    let pam = example("pam.d/sshd-password.example")
        .replace("auth    required    pam_unix.so\n", "")
        .replace("auth    required    pam_totp.so\n", "")
        .replace(
            "#auth    required    pam_totp.so forward_pass",
            "auth    required    pam_totp.so forward_pass",
        )
        .replace(
            "#auth    required    pam_unix.so use_first_pass",
            "auth    required    pam_unix.so use_first_pass",
        );
    let root = tree(&dir, &[("etc/pam.d/sshd", pam.clone()), drop_in.clone()]);
    let (success, out) = doctor(&conf, &root);
    assert!(success, "{out}");
    has(
        &out,
        "auth required pam_totp.so: password and code in one prompt (forward_pass",
    );
    // forward_pass without the password module after it: the password is never checked.
    let root = tree(
        &dir,
        &[
            (
                "etc/pam.d/sshd",
                pam.replace("auth    required    pam_unix.so use_first_pass", ""),
            ),
            drop_in.clone(),
        ],
    );
    let (success, out) = doctor(&conf, &root);
    assert!(!success);
    has(
        &out,
        "`forward_pass` hands the password on, but no password module with `use_first_pass` follows",
    );

    // `requisite` pam_unix before pam_totp: a wrong password is revealed.
    let pam = example("pam.d/sshd-password.example").replace(
        "auth    required    pam_unix.so\n",
        "auth    requisite    pam_unix.so\n",
    );
    let root = tree(&dir, &[("etc/pam.d/sshd", pam), drop_in.clone()]);
    let (success, out) = doctor(&conf, &root);
    assert!(success, "a warning, not an error: {out}");
    has(
        &out,
        &format!(
            "[warning] pam sshd: `requisite` before pam_totp.so at /etc/pam.d/sshd:{unix} (pam_unix.so): a wrong password ends the login before the code question, which tells the client the password was wrong"
        ),
    );
    // The same through Debian's common-auth (requisite pam_deny.so).
    let pam = example("pam.d/sshd-password.example")
        .replace("auth    required    pam_unix.so\n", "")
        .replace("#@include common-auth", "@include common-auth");
    let root = tree(&dir, &[("etc/pam.d/sshd", pam), drop_in]);
    let (_, out) = doctor(&conf, &root);
    has(
        &out,
        "`requisite` before pam_totp.so at /etc/pam.d/common-auth:2 (pam_deny.so)",
    );
}

#[test]
fn given_sudo_with_only_pam_totp_then_code_alone_is_an_error() {
    let dir = TempDir::new("doctor-sudo");
    let conf = dir.config("");
    let root = tree(
        &dir,
        &[(
            "etc/pam.d/sudo",
            "auth required pam_totp.so nullok\n".to_string(),
        )],
    );
    let (success, out) = doctor(&conf, &root);
    if !arch_ok() {
        return;
    }
    assert!(!success);
    has(
        &out,
        "[ERROR] pam sudo: /etc/pam.d/sudo:1: no password module comes before pam_totp.so in /etc/pam.d/sudo: the code alone logs in",
    );
    has(
        &out,
        "[warning] pam sudo: pam_totp.so is the only module in the auth stack of sudo that can let a login through",
    );
}

#[test]
fn given_enroll_at_login_without_account_line_then_doctor_names_the_fix() {
    if !arch_ok() {
        return;
    }
    let dir = TempDir::new("doctor-enroll");
    let conf = dir.config("enroll_at_login = true\n");
    let sshd = example("pam.d/sshd-publickey.example");
    let root = tree(&dir, &[("etc/pam.d/sshd", sshd.clone())]);
    let (_, out) = doctor(&conf, &root);
    has(
        &out,
        "enroll_at_login is on but /etc/pam.d/sshd has no `account ... pam_totp.so` line",
    );
    has(
        &out,
        "Add `account required pam_totp.so` to /etc/pam.d/sshd",
    );
    let with_account = format!("{sshd}\naccount required pam_totp.so\n");
    let root = tree(&dir, &[("etc/pam.d/sshd", with_account)]);
    let (_, out) = doctor(&conf, &root);
    lacks(&out, "enroll_at_login is on but");
}
