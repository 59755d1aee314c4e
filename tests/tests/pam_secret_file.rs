//! pam_totp.so through the real libpam with hostile input: insecure or corrupt secret files (refused
//! and left byte-for-byte as they were) and malformed prompt answers (refused, no crash).

use pam_totp_e2e::harness::{Scenario, TestUser, set_mode, set_owner};
use pam_totp_e2e::harness_syslog::{SyslogCapture, fields};
use pam_totp_e2e::harness_totp::Enrollment;
use pam_totp_e2e::require_root;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Everything about a path that must not change: the link itself and what it leads to.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    path: PathBuf,
    link_target: Option<PathBuf>,
    mode: u32,
    uid: u32,
    bytes: Option<Vec<u8>>,
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
    let is_link = meta.file_type().is_symlink();
    Snapshot {
        path: path.into(),
        link_target: is_link.then(|| fs::read_link(path).unwrap_or_default()),
        mode: meta.mode(),
        uid: meta.uid(),
        bytes: (!is_link && meta.is_file()).then(|| fs::read(path).unwrap_or_default()),
    }
}

/// Enrolls, lets `spoil` damage the secret file (returning every path to watch), then checks
/// that the correct current code is refused, that the syslog line gives one of the `reasons`,
/// and that the watched paths did not change.
fn assert_refused_and_unchanged(
    reasons: &[&str],
    spoil: impl FnOnce(&Scenario, &Enrollment) -> Vec<PathBuf>,
) {
    assert_refused_and_unchanged_with("", reasons, spoil);
}

/// As [`assert_refused_and_unchanged`], with extra configuration lines.
fn assert_refused_and_unchanged_with(
    config: &str,
    reasons: &[&str],
    spoil: impl FnOnce(&Scenario, &Enrollment) -> Vec<PathBuf>,
) {
    let s = Scenario::new(config, "");
    let e = s.enroll(&[]);
    let watched = spoil(&s, &e);
    let before: Vec<Snapshot> = watched.iter().map(|p| snapshot(p)).collect();
    let log = SyslogCapture::start();
    let step = e.settled_step(4);
    let run = s.client().answer(&e.code_for_step(step)).run();
    run.assert_result("PAM_AUTH_ERR");
    let after: Vec<Snapshot> = watched.iter().map(|p| snapshot(p)).collect();
    assert_eq!(before, after, "the module changed a secret file it refused");
    let lines = log.lines_of_user(&s.user.name);
    assert!(
        lines.iter().any(|l| {
            let f = fields(l);
            f.get("result") == Some(&"failure")
                && f.get("reason").is_some_and(|r| reasons.contains(r))
        }),
        "no failure line with a reason among {reasons:?}: {lines:#?}"
    );
}

#[test]
fn given_secret_file_mode_0644_then_auth_err_and_file_unchanged() {
    require_root!();
    assert_refused_and_unchanged(&["insecure-permissions"], |_, e| {
        set_mode(&e.secret_file, 0o644);
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_secret_file_group_writable_then_auth_err_and_file_unchanged() {
    require_root!();
    assert_refused_and_unchanged(&["insecure-permissions"], |_, e| {
        set_mode(&e.secret_file, 0o620);
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_secret_file_is_symlink_then_auth_err_and_files_unchanged() {
    require_root!();
    assert_refused_and_unchanged(&["symlink"], |s, e| {
        let real = e.secret_file.with_file_name("real-secret.toml");
        fs::rename(&e.secret_file, &real).unwrap();
        std::os::unix::fs::symlink(&real, &e.secret_file).unwrap();
        set_owner(&e.secret_file, s.user.uid, s.user.gid);
        vec![e.secret_file.clone(), real]
    });
}

#[test]
fn given_secret_file_owned_by_another_user_then_auth_err_and_file_unchanged() {
    require_root!();
    let other = TestUser::create();
    // Read with the user's identity, another user's 0600 file cannot even be opened.
    assert_refused_and_unchanged(&["wrong-owner", "io-error"], |_, e| {
        set_owner(&e.secret_file, other.uid, other.gid);
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_readable_secret_file_owned_by_another_user_then_wrong_owner_and_file_unchanged() {
    require_root!();
    let other = TestUser::create();
    // allowed_perm lets the user open it, so only the owner check can refuse it.
    assert_refused_and_unchanged_with("allowed_perm = \"0644\"", &["wrong-owner"], |_, e| {
        set_mode(&e.secret_file, 0o644);
        set_owner(&e.secret_file, other.uid, other.gid);
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_secret_file_owned_by_root_then_auth_err_and_file_unchanged() {
    require_root!();
    assert_refused_and_unchanged(&["wrong-owner", "io-error"], |_, e| {
        set_owner(&e.secret_file, 0, 0);
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_readable_secret_file_owned_by_root_then_wrong_owner_and_file_unchanged() {
    require_root!();
    assert_refused_and_unchanged_with("allowed_perm = \"0644\"", &["wrong-owner"], |_, e| {
        set_mode(&e.secret_file, 0o644);
        set_owner(&e.secret_file, 0, 0);
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_empty_secret_file_then_auth_err_and_file_unchanged() {
    require_root!();
    assert_refused_and_unchanged(&["bad-size", "corrupt"], |_, e| {
        fs::write(&e.secret_file, b"").unwrap();
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_garbage_secret_file_then_auth_err_and_file_unchanged() {
    require_root!();
    assert_refused_and_unchanged(&["corrupt"], |_, e| {
        let mut garbage = b"version = [[[ \xff\xfe\x00\x01 not toml }}}\n".to_vec();
        garbage.extend((0..=255u8).cycle().take(700));
        fs::write(&e.secret_file, garbage).unwrap();
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_truncated_secret_file_then_auth_err_and_file_unchanged() {
    require_root!();
    assert_refused_and_unchanged(&["corrupt"], |_, e| {
        let full = fs::read(&e.secret_file).unwrap();
        fs::write(&e.secret_file, &full[..full.len() / 2]).unwrap();
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_secret_path_is_a_directory_then_auth_err() {
    require_root!();
    assert_refused_and_unchanged(&["not-regular-file"], |s, e| {
        fs::remove_file(&e.secret_file).unwrap();
        fs::create_dir(&e.secret_file).unwrap();
        set_owner(&e.secret_file, s.user.uid, s.user.gid);
        set_mode(&e.secret_file, 0o700);
        vec![e.secret_file.clone()]
    });
}

#[test]
fn given_secret_path_is_a_fifo_then_auth_err_without_hanging() {
    require_root!();
    assert_refused_and_unchanged(&["not-regular-file"], |s, e| {
        fs::remove_file(&e.secret_file).unwrap();
        nix::unistd::mkfifo(
            &e.secret_file,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        set_owner(&e.secret_file, s.user.uid, s.user.gid);
        vec![e.secret_file.clone()]
    });
}

/// Answers that must be refused without a crash (PAM_AUTH_ERR, never PAM_ABORT or a signal).
fn hostile_answers(code: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("10,000 digits", "7".repeat(10_000).into_bytes()),
        ("10,000 letters", "x".repeat(10_000).into_bytes()),
        (
            "10,000 code repeats",
            code.repeat(10_000 / code.len()).into_bytes(),
        ),
        ("non-ASCII digits", "١٢٣٤٥٦".as_bytes().to_vec()),
        ("non-ASCII text", "kód ünïcødé ✓ 認証".as_bytes().to_vec()),
        (
            "0x01 before the code",
            [&[0x01u8][..], code.as_bytes()].concat(),
        ),
        (
            "0xff after the code",
            [code.as_bytes(), &[0xffu8][..]].concat(),
        ),
        (
            "0x01 and 0xff only",
            vec![0x01, 0xff, 0x01, 0xff, 0x01, 0xff],
        ),
        (
            "invalid UTF-8 backup shape",
            b"abcde-\xff\xfe\xfd\xfc\xfb".to_vec(),
        ),
        ("spaces only", b"      ".to_vec()),
    ]
}

#[test]
fn given_malformed_answers_then_auth_err_without_crash() {
    require_root!();
    // Throttling off: every answer is judged on its own.
    let s = Scenario::new("throttle = false", "");
    let e = s.enroll(&[]);
    let step = e.settled_step(4);
    let code = e.code_for_step(step);
    for (what, answer) in hostile_answers(&code) {
        let run = s.client().answer_bytes(&answer).run();
        assert_eq!(
            run.result(),
            "PAM_AUTH_ERR",
            "answer {what}: wrong result\n{}",
            run.transcript()
        );
        run.assert_result("PAM_AUTH_ERR");
    }
    // None of it used up the code or broke the state.
    let step = e.settled_step(4);
    s.client()
        .answer(&e.code_for_step(step))
        .run()
        .assert_result("PAM_SUCCESS");
}
