//! Snapshots of the help texts, the man page and the error messages. A changed text fails the
//! test with a diff-able message; `PAM_TOTP_BLESS=1 cargo test -p pam-totp-cli` rewrites the
//! snapshots in tests/snapshots/ (and docs/pam-totp.1) after a deliberate change.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    compare(&path, actual);
}

fn compare(path: &Path, actual: &str) {
    if std::env::var_os("PAM_TOTP_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with PAM_TOTP_BLESS=1",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} differs (PAM_TOTP_BLESS=1 rewrites it after a deliberate change)",
        path.display()
    );
}

#[test]
fn help_texts_match_snapshots() {
    let commands = [
        "",
        "enroll",
        "status",
        "backup-codes",
        "qr",
        "list",
        "remove",
        "disable",
        "reset",
        "unlock",
        "forget-hosts",
        "import-google-authenticator",
        "import-oath",
        "migrate",
        "explain",
        "doctor",
        "completions",
    ];
    for cmd in commands {
        let mut args: Vec<&str> = cmd.split_whitespace().collect();
        args.push("--help");
        let o = run(&args, "");
        assert!(o.status.success());
        let name = if cmd.is_empty() { "pam-totp" } else { cmd };
        snapshot(&format!("help-{name}.txt"), &stdout(&o));
    }
}

#[test]
fn man_page_in_docs_is_current() {
    let o = run(&["manpage"], "");
    assert!(o.status.success());
    let page = stdout(&o);
    assert!(page.starts_with(".TH PAM\\-TOTP 1"));
    for sub in [
        "enroll",
        "import\\-google\\-authenticator",
        "doctor",
        "unlock",
        "forget\\-hosts",
    ] {
        assert!(
            page.contains(&format!(".SS \"pam\\-totp {sub}")),
            "{sub} documented"
        );
    }
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/pam-totp.1");
    compare(&docs, &page);
    if Path::new("/usr/bin/man").exists() || Path::new("/usr/bin/groff").exists() {
        let check = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("groff -man -Tutf8 -ww -z {} 2>&1", docs.display()))
            .output();
        if let Ok(o) = check {
            if o.status.success() {
                assert!(
                    o.stdout.is_empty(),
                    "groff warnings: {}",
                    String::from_utf8_lossy(&o.stdout)
                );
            }
        }
    }
}

#[test]
fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell], "");
        assert!(o.status.success());
        let text = stdout(&o);
        for sub in [
            "enroll",
            "backup-codes",
            "import-google-authenticator",
            "doctor",
        ] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let o = run(&["completions", "tcsh"], "");
    assert_eq!(o.status.code(), Some(2));
}

/// Runs and returns stderr with the temporary directory replaced by `[DIR]`.
fn err(dir: &TempDir, args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let o = run(args, stdin);
    assert!(o.stdout.is_empty(), "nothing on stdout: {}", stdout(&o));
    (
        o.status.code(),
        stderr(&o).replace(dir.path().to_str().unwrap(), "[DIR]"),
    )
}

#[test]
fn error_messages_match_snapshots() {
    // The messages name the caller (root) and use --user, which only root may.
    if !root_or_skip("error_messages_match_snapshots") {
        return;
    }
    let dir = TempDir::new("errors");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let c = conf.to_str().unwrap();
    let mut all = String::new();
    let mut case = |title: &str, (code, text): (Option<i32>, String)| {
        all.push_str(&format!("## {title} (exit {code:?})\n{text}\n"));
    };
    case(
        "unknown user",
        err(
            &dir,
            &[
                "--config",
                c,
                "enroll",
                "--json",
                "--user",
                "no-such-user-x",
            ],
            "",
        ),
    );
    case("not enrolled", err(&dir, &["--config", c, "qr"], ""));
    case(
        "missing config",
        err(
            &dir,
            &["--config", "/nonexistent/pam_totp.conf", "status"],
            "",
        ),
    );
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "window = 3\nsecrets = \"/x\"\n").unwrap();
    case(
        "unknown config key",
        err(&dir, &["--config", bad.to_str().unwrap(), "status"], ""),
    );
    std::fs::write(&bad, "window = 99\n").unwrap();
    case(
        "bad config value",
        err(&dir, &["--config", bad.to_str().unwrap(), "status"], ""),
    );
    case(
        "bad digits",
        err(
            &dir,
            &["--config", c, "enroll", "--json", "--digits", "7"],
            "",
        ),
    );
    case(
        "bad period",
        err(
            &dir,
            &["--config", c, "enroll", "--json", "--period", "0"],
            "",
        ),
    );
    case(
        "label with colon",
        err(
            &dir,
            &["--config", c, "enroll", "--json", "--label", "a:b"],
            "",
        ),
    );
    case(
        "bad authenticator name",
        err(&dir, &["--config", c, "enroll", "--add", "my phone"], ""),
    );
    // A corrupt existing secret file: reported, left alone, not replaced without --force.
    std::fs::write(&secret, "version = 1\nenrollment_id = [garbage\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    case(
        "corrupt secret: status",
        err(&dir, &["--config", c, "status"], ""),
    );
    case(
        "corrupt secret: backup-codes",
        err(&dir, &["--config", c, "backup-codes", "--regenerate"], ""),
    );
    case(
        "corrupt secret: enroll",
        err(&dir, &["--config", c, "enroll", "--json"], ""),
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "version = 1\nenrollment_id = [garbage\n"
    );
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    case("secret too open", err(&dir, &["--config", c, "list"], ""));
    std::fs::remove_file(&secret).unwrap();
    case(
        "remove when not enrolled",
        err(&dir, &["--config", c, "remove", "tablet"], ""),
    );
    case("disable declined", {
        assert!(
            run(&["--config", c, "enroll", "--json"], "")
                .status
                .success()
        );
        let o = run(&["--config", c, "disable"], "no\n");
        (
            o.status.code(),
            stderr(&o).replace(dir.path().to_str().unwrap(), "[DIR]"),
        )
    });
    assert!(secret.exists(), "declined disable keeps the file");
    snapshot("errors.txt", &all);
}

#[test]
fn given_unreadable_config_then_says_how_to_fix_it() {
    if !root_or_skip("given_unreadable_config_then_says_how_to_fix_it") {
        return;
    }
    let dir = TempDir::new("unreadable");
    let conf = dir.config("");
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let o = run_as(
        "nobody",
        &["--config", conf.to_str().unwrap(), "status"],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    let text = stderr(&o).replace(dir.path().to_str().unwrap(), "[DIR]");
    assert_eq!(
        text,
        "Error: The configuration is not usable: [DIR]/pam_totp.conf: opening [DIR]/pam_totp.conf: Permission denied (os error 13).\n\
         Make [DIR]/pam_totp.conf readable (it must stay owned by root and not writable by others: chmod 0644 [DIR]/pam_totp.conf), or run the command as root.\n"
    );
}

#[test]
fn given_unwritable_home_then_nothing_written_and_fix_named() {
    if !root_or_skip("given_unwritable_home_then_nothing_written_and_fix_named") {
        return;
    }
    let dir = TempDir::new("home");
    let conf = dir.config("");
    let user = TestUser::create();
    // The home now belongs to root: the user (whose rights the write uses) cannot create ~/.config.
    nix::unistd::chown(
        &user.home,
        Some(nix::unistd::Uid::from_raw(0)),
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .unwrap();
    std::fs::set_permissions(
        &user.home,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let before: Vec<_> = std::fs::read_dir(&user.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "enroll",
            "--json",
            "--user",
            &user.name,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stdout.is_empty(),
        "no key printed for a file that was not written"
    );
    let text = stderr(&o).replace(user.home.to_str().unwrap(), "[HOME]");
    assert_eq!(
        text,
        "Error: Creating the directory [HOME]/.config/pam-totp: Permission denied (os error 13).\n\
         Make [HOME]/.config writable for the owner of the secret file, or choose another place with --secret-file or `secret =` in the configuration. Nothing was written.\n"
    );
    let after: Vec<_> = std::fs::read_dir(&user.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}
