//! The end of the chain: an enrollment made by the CLI (interactive through a pty is covered in
//! interactive.rs; here `--json` and the google-authenticator import) logs in through the real
//! libpam with the built module, via the harness's PAM client. Skipped, with a message, when
//! not root or when target/*/libpam_totp.so has not been built (`cargo build -p pam-totp`).

mod common;

use common::*;
use std::process::Command;

#[test]
fn given_json_enrollment_then_login_with_code_and_backup_code() {
    let Some(module) = ready("given_json_enrollment_then_login_with_code_and_backup_code") else {
        return;
    };
    let dir = TempDir::new("login");
    let conf = dir.config("");
    let user = TestUser::create();
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
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let service = Service::new("json", &module, &conf);
    assert!(!service.login(&user.name, "000000x"), "garbage refused");
    let code = totp_now(
        v["secret"].as_str().unwrap(),
        totp_rs::Algorithm::SHA1,
        6,
        30,
    );
    assert!(service.login(&user.name, &code), "current code accepted");
    let backup = v["backup_codes"][0].as_str().unwrap();
    assert!(service.login(&user.name, backup), "backup code accepted");
    assert!(!service.login(&user.name, backup), "backup code works once");
}

#[test]
fn given_imported_google_authenticator_file_then_login_with_code_and_scratch_code() {
    let Some(module) =
        ready("given_imported_google_authenticator_file_then_login_with_code_and_scratch_code")
    else {
        return;
    };
    let dir = TempDir::new("login-ga");
    let conf = dir.config("");
    let user = TestUser::create();
    let ga = dir.path().join("ga");
    let made = Command::new("google-authenticator")
        .args([
            "-t", "-d", "-f", "-r", "3", "-R", "30", "-w", "3", "-e", "5", "-Q", "none", "-C", "-s",
        ])
        .arg(&ga)
        .output();
    if made.is_err() {
        println!("skipping: google-authenticator is not installed");
        return;
    }
    let text = std::fs::read_to_string(&ga).unwrap();
    let key = text.lines().next().unwrap().to_string();
    let scratch = text
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .nth(1)
        .unwrap()
        .to_string();
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "import-google-authenticator",
            "--user",
            &user.name,
            ga.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let service = Service::new("ga", &module, &conf);
    let code = totp_now(&key, totp_rs::Algorithm::SHA1, 6, 30);
    assert!(
        service.login(&user.name, &code),
        "code of the google-authenticator key accepted"
    );
    assert!(
        service.login(&user.name, &scratch),
        "scratch code accepted as a backup code"
    );
    assert!(!service.login(&user.name, &scratch), "and only once");
}
