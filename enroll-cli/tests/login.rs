//! The end of the chain: an enrollment made by the CLI (interactive through a pty is covered in
//! interactive.rs; here `--json` and the google-authenticator import) logs in through the real
//! libpam with the built module, via pamtester. Skipped, with a message, when not root, when
//! pamtester is missing, or when target/*/libpam_totp.so has not been built
//! (`cargo build -p pam-totp`).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

fn module() -> Option<PathBuf> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("libpam_totp.so"))
        .find(|p| p.exists())
}

/// A throwaway /etc/pam.d service using the built module, removed on drop.
struct Service(String);

impl Service {
    fn new(tag: &str, module: &std::path::Path, conf: &std::path::Path) -> Service {
        let name = format!("pttcli{tag}{}", std::process::id());
        std::fs::write(
            format!("/etc/pam.d/{name}"),
            format!(
                "auth required {} config={}\naccount required pam_permit.so\n",
                module.display(),
                conf.display()
            ),
        )
        .unwrap();
        Service(name)
    }

    fn login(&self, user: &str, answer: &str) -> bool {
        let mut child = Command::new("pamtester")
            .args([&self.0, user, "authenticate"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap().status.success()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.0));
    }
}

fn ready(test: &str) -> Option<PathBuf> {
    if !root_or_skip(test) {
        return None;
    }
    if Command::new("pamtester").arg("--version").output().is_err() {
        println!("skipping {test}: pamtester is not installed (apt-get install pamtester)");
        return None;
    }
    let m = module();
    if m.is_none() {
        println!("skipping {test}: build the module first (cargo build -p pam-totp)");
    }
    m
}

#[test]
fn given_json_enrollment_then_login_with_code_and_backup_code() {
    let Some(module) = ready("given_json_enrollment_then_login_with_code_and_backup_code") else {
        return;
    };
    let dir = TempDir::new("login");
    let conf = dir.config("");
    let user = TestUser::new();
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
    let user = TestUser::new();
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
