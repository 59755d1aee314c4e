//! Issue 12 item 6: terminal escapes from user-controlled text never reach root's terminal. A
//! secret file whose label rewrites the screen is refused with a clear error; the state's
//! service, host and method strings are printed escaped (text, table and JSON); issuers and
//! labels with control or bidirectional characters are refused on the command line.

mod common;

use common::*;
use pam_totp_core::state::{Failures, LastUse, State};
use std::os::unix::fs::PermissionsExt;

/// The attack of the review: retitle the window, go one line up, erase it.
const SCREEN_REWRITE: &str = "\\u001b]0;owned\\u0007\\u001b[1A\\u001b[2K";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assert_no_escape(what: &str, o: &std::process::Output) {
    for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !bytes.contains(&0x1b) && !bytes.contains(&0x07),
            "{what}: a raw ESC or BEL on {stream}: {text:?}"
        );
        assert!(
            !text.contains(['\u{9b}', '\u{202e}', '\u{7f}']),
            "{what}: a C1, DEL or bidi override on {stream}: {text:?}"
        );
    }
}

fn enroll(conf: &str, user: &TestUser) {
    let o = run(
        &["--config", conf, "enroll", "--json", "--user", &user.name],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn given_label_with_escape_sequences_then_qr_and_status_refuse_the_file_clearly() {
    if !root_or_skip("given_label_with_escape_sequences_then_qr_and_status_refuse_the_file_clearly")
    {
        return;
    }
    let dir = TempDir::new("esc-label");
    let conf = dir.config("");
    let c = conf.to_str().unwrap();
    let user = TestUser::new();
    enroll(c, &user);
    // The user edits their own file: ownership and mode stay as they were.
    let path = user.secret_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let label = format!("label = \"{}\"", user.name);
    assert!(text.contains(&label), "{text}");
    std::fs::write(
        &path,
        text.replace(&label, &format!("label = \"x{SCREEN_REWRITE}\"")),
    )
    .unwrap();

    for args in [
        vec!["--config", c, "qr", "--user", &user.name],
        vec!["--config", c, "status", "--user", &user.name],
        vec!["--config", c, "list", "--user", &user.name],
    ] {
        let o = run(&args, "");
        assert_no_escape(&args[2..].join(" "), &o);
        assert_eq!(o.status.code(), Some(1), "{args:?} must refuse the file");
        let err = stderr(&o);
        assert!(
            err.contains("key `authenticator.label`: must not contain control characters"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("Replace it with `pam-totp enroll --force`"),
            "{err}"
        );
        assert!(
            !stdout(&o).contains("otpauth") && !stdout(&o).contains('\u{2588}'),
            "no key shown"
        );
    }
    // The overview lists the user with the error instead of failing, escaped too.
    let o = run(&["--config", c, "status", "--all"], "");
    assert_no_escape("status --all", &o);
    assert!(stdout(&o).contains("authenticator.label"), "{}", stdout(&o));
}

#[test]
fn given_state_strings_with_control_characters_then_status_prints_them_escaped() {
    if !root_or_skip("given_state_strings_with_control_characters_then_status_prints_them_escaped")
    {
        return;
    }
    let dir = TempDir::new("esc-state");
    let conf = dir.config("");
    let c = conf.to_str().unwrap();
    let user = TestUser::new();
    enroll(c, &user);
    let t = now();
    let service = "ssh\x1b]0;owned\x07d";
    let rhost = "198.51.100.7\x1b[1A\x1b[2K";
    let method = "totp\u{9b}2J\u{202e}";
    let host = "203.0.113.9\x1b[2J\x7f";
    let mut state = State::new();
    state.last_success = Some(LastUse {
        time: t - 60,
        service: service.into(),
        rhost: rhost.into(),
        method: method.into(),
        authenticator: String::new(),
    });
    state
        .host_failures
        .insert(host.into(), Failures { count: 50, last: t });
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = state_dir.join(format!("{}.state", user.name));
    std::fs::write(&file, state.to_toml().unwrap()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let o = run(&["--config", c, "status", "--user", &user.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_escape("status", &o);
    let text = stdout(&o);
    assert!(
        text.contains(
            "via ssh\\x1b]0;owned\\x07d from 198.51.100.7\\x1b[1A\\x1b[2K (totp\\x9b2J\\u{202e})"
        ),
        "{text}"
    );
    assert!(
        text.contains("host 203.0.113.9\\x1b[2J\\x7f until"),
        "{text}"
    );

    let o = run(&["--config", c, "status", "--all"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_escape("status --all", &o);
    assert!(
        stdout(&o).contains("ssh\\x1b]0;owned\\x07d 198.51.100.7\\x1b[1A\\x1b[2K"),
        "{}",
        stdout(&o)
    );

    // JSON keeps the values exactly, written as \u escapes.
    let o = run(
        &["--config", c, "status", "--user", &user.name, "--json"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_escape("status --json", &o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["last_success"]["service"], service);
    assert_eq!(v["last_success"]["rhost"], rhost);
    assert_eq!(v["last_success"]["method"], method);
    assert_eq!(v["lockouts"][0]["scope"], host);
}

#[test]
fn given_issuer_or_label_with_bidi_or_control_characters_then_enroll_refuses() {
    let dir = TempDir::new("esc-args");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let c = conf.to_str().unwrap();
    for (flag, value) in [
        ("--label", "alice\u{202e}moc.evil"),
        ("--issuer", "host\u{2066}"),
        ("--label", "a\u{9b}2J"),
        ("--issuer", "h\x1b[2K"),
    ] {
        let o = run(&["--config", c, "enroll", "--json", flag, value], "");
        assert_eq!(o.status.code(), Some(2), "{flag} {value:?}: {}", stderr(&o));
        assert_no_escape(flag, &o);
        assert!(
            stderr(&o).contains("must be 1 to 64 printable characters"),
            "{}",
            stderr(&o)
        );
        assert!(!secret.exists(), "nothing written for {value:?}");
    }
}
