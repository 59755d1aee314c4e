//! Administrators' commands as root: status (one user and --all), backup-code regeneration,
//! reset and unlock with their syslog lines, explain, doctor on a prepared system tree, and the
//! import of files written by the real google-authenticator tool.

mod common;

use common::*;
use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::{Failures, State};
use pam_totp_core::verify::{self, Verdict};
use pam_totp_e2e::harness_syslog::is_of_user;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn write_state(dir: &TempDir, user: &str, state: &State) {
    let d = dir.path().join("state");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(format!("{user}.state"));
    std::fs::write(&p, state.to_toml().unwrap()).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
}

/// Tests that bind /dev/log run one at a time.
static SYSLOG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn load(path: &std::path::Path) -> SecretFile {
    SecretFile::parse(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn given_enrolled_users_then_status_regenerate_unlock_reset_work_and_are_logged() {
    if !root_or_skip("given_enrolled_users_then_status_regenerate_unlock_reset_work_and_are_logged")
    {
        return;
    }
    let dir = TempDir::new("admin");
    let conf = dir.config("");
    let c = conf.to_str().unwrap();
    let alice = TestUser::create();
    let bob = TestUser::create();
    let first = json_for(c, &alice.name, &["enroll", "--backup-codes", "5"]);
    json_for(c, &bob.name, &["enroll"]);
    let file = load(&alice.secret_path());
    // Alice used one backup code, logged in from a host, and is locked out from another.
    let t = now();
    let mut state = State::new();
    state.rebind(&file.enrollment_id);
    state.consume_backup_code(&file.backup.as_ref().unwrap().set_id, 0);
    state.last_success = Some(pam_totp_core::state::LastUse {
        time: t - 60,
        service: "sshd".into(),
        rhost: "198.51.100.7".into(),
        method: "backup".into(),
        authenticator: String::new(),
    });
    state
        .host_failures
        .insert("203.0.113.9".into(), Failures { count: 5, last: t });
    state.user_failures = Failures { count: 5, last: t };
    write_state(&dir, &alice.name, &state);

    let s = json_for(c, &alice.name, &["status"]);
    assert_eq!(s["enrolled"], true);
    assert_eq!(s["backup_codes_left"], 4);
    assert_eq!(s["backup_codes_total"], 5);
    assert_eq!(s["last_success"]["rhost"], "198.51.100.7");
    assert_eq!(s["lockouts"][0]["scope"], "203.0.113.9");
    let text = stdout(&run(&["--config", c, "status", "--user", &alice.name], ""));
    assert!(text.contains("Backup codes:   4 of 5 left"), "{text}");
    assert!(text.contains("host 203.0.113.9 until"), "{text}");

    let names = status_all_users(c);
    assert!(
        names.contains(&alice.name) && names.contains(&bob.name),
        "{names:?}"
    );
    let table = stdout(&run(&["--config", c, "status", "--all"], ""));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&alice.name) && l.contains("4/5")),
        "{table}"
    );
    // Not root: refused.
    let o = run_as("nobody", &["--config", c, "status", "--all"], "");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "Error: `pam-totp status --all` is for root only.\nRun it as root: sudo pam-totp status --all ...\n"
    );

    // Regenerated codes replace the old ones at once.
    let fresh = json_for(
        c,
        &alice.name,
        &["backup-codes", "--regenerate", "--count", "3"],
    );
    let file = load(&alice.secret_path());
    let st = State::new();
    let old = first["backup_codes"][1].as_str().unwrap();
    assert_eq!(
        verify::verify(old.as_bytes(), &file, &st, t, verify::Windows::totp(1)),
        Verdict::Rejected(verify::Reject::WrongCode)
    );
    let new = fresh["backup_codes"][2].as_str().unwrap();
    assert_eq!(
        verify::verify(new.as_bytes(), &file, &st, t, verify::Windows::totp(1)),
        Verdict::Backup { index: 2 }
    );
    assert_eq!(
        std::fs::metadata(alice.secret_path()).unwrap().uid(),
        alice.uid,
        "still the user's"
    );

    let _serial = SYSLOG.lock().unwrap_or_else(|e| e.into_inner());
    let capture = syslog_capture();
    // explain: the host lockout decides.
    let o = run(
        &[
            "--config",
            c,
            "explain",
            "--user",
            &alice.name,
            "--rhost",
            "203.0.113.9",
            "--json",
        ],
        "",
    );
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["decision"], "deny");
    assert_eq!(
        e["rules"].as_array().unwrap().last().unwrap()["rule"],
        "throttle"
    );
    let o = run(
        &[
            "--config",
            c,
            "explain",
            "--user",
            &alice.name,
            "--rhost",
            "198.51.100.7",
        ],
        "",
    );
    assert!(
        stdout(&o).contains("Decision: pam_totp asks for a code"),
        "{}",
        stdout(&o)
    );

    let o = run(&["--config", c, "unlock", "--user", &alice.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("cleared 1 lockout and 5 counted failures"),
        "{}",
        stdout(&o)
    );
    let after = current_state(&dir.path().join("state"), &alice.name).unwrap();
    assert!(after.host_failures.is_empty() && after.user_failures.count == 0);
    assert_eq!(
        after.backup_set, state.backup_set,
        "the rest of the state is kept"
    );

    let o = run(&["--config", c, "reset", "--user", &alice.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!alice.secret_path().exists());
    assert!(current_state(&dir.path().join("state"), &alice.name).is_none());
    assert!(bob.secret_path().exists(), "others untouched");
    let o = run_as(
        &bob.name,
        &["--config", c, "reset", "--user", &bob.name],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(bob.secret_path().exists());

    if let Some(capture) = capture {
        let lines = capture.lines();
        let ours: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("pam_totp(pam-totp:admin)") && is_of_user(l, &alice.name))
            .collect();
        assert_eq!(ours.len(), 2, "{lines:?}");
        // <85> = facility authpriv (10) * 8 + notice (5).
        assert!(ours[0].starts_with("<85>"), "{}", ours[0]);
        assert!(ours[0].contains(&format!("action=unlock user={} by=root", alice.name)));
        assert!(ours[1].contains(&format!("action=reset user={} by=root", alice.name)));
        for l in &lines {
            for code in fresh["backup_codes"].as_array().unwrap() {
                assert!(!l.contains(code.as_str().unwrap()));
            }
            assert!(!l.contains(first["secret"].as_str().unwrap()));
        }
    }
}

#[test]
fn given_user_removes_a_device_and_disables_then_one_syslog_line_each() {
    if !root_or_skip("given_user_removes_a_device_and_disables_then_one_syslog_line_each") {
        return;
    }
    let dir = TempDir::new("disable-log");
    let conf = dir.config("");
    let c = conf.to_str().unwrap();
    let user = TestUser::create();
    let o = run(
        &["--config", c, "enroll", "--json", "--user", &user.name],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let key: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = run(
        &[
            "--config",
            c,
            "enroll",
            "--add",
            "tablet",
            "--no-confirm",
            "--qr",
            "none",
            "--user",
            &user.name,
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let _serial = SYSLOG.lock().unwrap_or_else(|e| e.into_inner());
    let capture = syslog_capture();
    let o = run_as(&user.name, &["--config", c, "remove", "tablet"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(load(&user.secret_path()).authenticators.len(), 1);
    let o = run_as(&user.name, &["--config", c, "disable", "--yes"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!user.secret_path().exists());
    let Some(capture) = capture else {
        return;
    };
    let lines = capture.lines();
    let ours: Vec<&String> = lines.iter().filter(|l| is_of_user(l, &user.name)).collect();
    assert_eq!(ours.len(), 2, "{lines:?}");
    assert!(ours[0].starts_with("<85>"), "{}", ours[0]);
    assert!(
        ours[0].ends_with(&format!(
            "pam_totp(pam-totp:admin): action=remove user={0} by={0} authenticator=tablet remaining=1",
            user.name
        )),
        "{}",
        ours[0]
    );
    assert!(
        ours[1].ends_with(&format!(
            "pam_totp(pam-totp:admin): action=disable user={0} by={0} secret_removed=true",
            user.name
        )),
        "{}",
        ours[1]
    );
    for l in &lines {
        assert!(!l.contains(key["secret"].as_str().unwrap()));
        assert!(!l.contains(key["backup_codes"][0].as_str().unwrap()));
    }
}

#[test]
fn given_prepared_system_tree_then_doctor_names_each_problem_and_fix() {
    let dir = TempDir::new("doctor");
    let root = dir.path().join("root");
    let mk = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    mk("lib/x86_64-linux-gnu/security/pam_unix.so", "");
    mk("usr/lib/security/pam_totp.so", "");
    mk(
        "etc/pam.d/common-auth",
        "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\n",
    );
    mk(
        "etc/pam.d/sshd",
        "auth sufficient pam_totp.so nullok\n@include common-auth\n",
    );
    mk(
        "etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\n",
    );
    mk(
        "etc/ssh/sshd_config.d/10-local.conf",
        "AuthenticationMethods publickey password,keyboard-interactive\n",
    );
    let conf = dir.config("");
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
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let expect = [
        "[ERROR] module: pam_totp.so is in /usr/lib/security, but libpam loads modules from /lib/x86_64-linux-gnu/security",
        "fix: Move it: mv /usr/lib/security/pam_totp.so /lib/x86_64-linux-gnu/security/pam_totp.so",
        "[ok] config:",
        "[ERROR] pam sshd: /etc/pam.d/sshd:1: `sufficient` lets a right code alone log in, skipping the password",
        "[warning] nullok: `nullok` is in use (/etc/pam.d/sshd:1)",
        "[ok] sshd_config: UsePAM yes",
        "[ERROR] sshd_config: KbdInteractiveAuthentication no: sshd cannot ask for the code",
        "fix: Set `KbdInteractiveAuthentication yes` in /etc/ssh/sshd_config.d/pam-totp.conf",
        "[warning] sshd_config: AuthenticationMethods publickey password,keyboard-interactive: `publickey` logs in without keyboard-interactive",
        "3 error(s), 2 warning(s).",
    ];
    if std::env::consts::ARCH == "x86_64" {
        for e in expect {
            assert!(out.contains(e), "missing {e:?} in:\n{out}");
        }
    }
    assert_eq!(
        stderr(&o),
        "Error: Doctor found 3 problems.\nApply the fixes above, then run `pam-totp doctor` again.\n"
    );
    // Fixed: no errors left.
    std::fs::rename(
        root.join("usr/lib/security/pam_totp.so"),
        root.join("lib/x86_64-linux-gnu/security/pam_totp.so"),
    )
    .unwrap();
    mk(
        "etc/pam.d/sshd",
        "@include common-auth\nauth required pam_totp.so\n",
    );
    mk(
        "etc/ssh/sshd_config",
        "KbdInteractiveAuthentication yes\nUsePAM yes\nAuthenticationMethods publickey,keyboard-interactive\n",
    );
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
    if std::env::consts::ARCH == "x86_64" {
        let out = stdout(&o);
        assert!(out.contains("0 error(s)"), "{out}");
        assert!(
            out.contains("[ok] pam sshd: /etc/pam.d/sshd:2: auth required pam_totp.so"),
            "{out}"
        );
        assert!(o.status.success());
    }
}

fn google_authenticator(file: &std::path::Path, extra: &[&str]) -> bool {
    let mut cmd = Command::new("google-authenticator");
    cmd.args([
        "-t", "-d", "-f", "-r", "3", "-R", "30", "-w", "3", "-e", "5", "-Q", "none", "-C", "-s",
    ])
    .arg(file)
    .args(extra);
    match cmd.output() {
        Ok(o) => {
            assert!(
                o.status.success(),
                "google-authenticator: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            true
        }
        Err(_) => {
            println!(
                "skipping: google-authenticator (Debian package libpam-google-authenticator) is not installed"
            );
            false
        }
    }
}

#[test]
fn given_real_google_authenticator_file_then_imported_with_scratch_codes_as_backup_codes() {
    if !root_or_skip(
        "given_real_google_authenticator_file_then_imported_with_scratch_codes_as_backup_codes",
    ) {
        return;
    }
    let dir = TempDir::new("ga");
    let conf = dir.config("");
    let user = TestUser::create();
    let ga = dir.path().join("ga");
    if !google_authenticator(&ga, &[]) {
        return;
    }
    let original = std::fs::read(&ga).unwrap();
    let mode = std::fs::metadata(&ga).unwrap().mode();
    let text = String::from_utf8(original.clone()).unwrap();
    let key = text.lines().next().unwrap().to_string();
    let scratch: Vec<&str> = text
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(scratch.len(), 5);
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
    assert!(
        stdout(&o).contains("5 scratch codes as backup codes"),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read(&ga).unwrap(), original, "original untouched");
    assert_eq!(std::fs::metadata(&ga).unwrap().mode(), mode);
    let path = user.secret_path();
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), user.uid);
    let file = load(&path);
    let saved = std::fs::read_to_string(&path).unwrap();
    for s in &scratch {
        assert!(!saved.contains(s), "scratch code stored in clear");
    }
    let st = State::new();
    let t = now();
    let code = totp_now(&key, totp_rs::Algorithm::SHA1, 6, 30);
    assert!(matches!(
        verify::verify(code.as_bytes(), &file, &st, t, verify::Windows::totp(1)),
        Verdict::Totp { .. }
    ));
    assert_eq!(
        verify::verify(
            scratch[3].as_bytes(),
            &file,
            &st,
            t,
            verify::Windows::totp(1)
        ),
        Verdict::Backup { index: 3 }
    );
    // Importing again without --force is refused; the user's own default file works too.
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
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"));
}

#[test]
fn given_hotp_google_authenticator_file_then_imported_as_hotp_from_its_counter() {
    let dir = TempDir::new("ga-hotp");
    let ga = dir.path().join("ga");
    let mut cmd = Command::new("google-authenticator");
    cmd.args([
        "-c", "-f", "-r", "3", "-R", "30", "-w", "3", "-e", "2", "-Q", "none", "-C", "-s",
    ])
    .arg(&ga);
    match cmd.output() {
        Err(_) => {
            println!("skipping: google-authenticator is not installed");
            return;
        }
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout)),
    }
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let original = std::fs::read(&ga).unwrap();
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "import-google-authenticator",
            ga.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Counter-based (HOTP): the next code accepted is counter 1"),
        "{}",
        stdout(&o)
    );
    let file = load(&secret);
    let hotp = file.authenticators[0]
        .hotp
        .as_ref()
        .expect("an HOTP authenticator");
    assert_eq!(hotp.counter, 1);
    assert_eq!(file.backup.as_ref().map(|b| b.hashes.len()), Some(2));
    assert_eq!(std::fs::read(&ga).unwrap(), original);
}
