//! `pam-totp forget-hosts`: after it, a host remembered through the real libpam (the harness's PAM client with
//! PAM_RHOST, `remember = "1h"`) is asked for a code again, whether a user ran it for themselves
//! (their secret file is marked, the root-owned state is left alone) or root ran it with
//! `--user` (the state's entries are cleared too). Each run is one syslog line without secrets.

mod common;

use common::*;
use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::State;
use pam_totp_e2e::harness_syslog::is_of_user;
use std::os::unix::fs::MetadataExt;

const RHOST: &str = "198.51.100.7";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn state_of(dir: &TempDir, user: &str) -> State {
    current_state(&dir.path().join("state"), user).unwrap_or_default()
}

/// Enrolls `user` and returns the key.
fn enroll(conf: &str, user: &str) -> serde_json::Value {
    let o = run(&["--config", conf, "enroll", "--json", "--user", user], "");
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Logs in once with a code from RHOST, then checks the host is remembered (an empty answer
/// passes only when no code is asked).
fn remember(service: &Service, user: &str, key: &serde_json::Value) {
    let code = totp_now(
        key["secret"].as_str().unwrap(),
        totp_rs::Algorithm::SHA1,
        6,
        30,
    );
    assert!(service.login_from(RHOST, user, &code), "code accepted");
    assert!(
        service.login_from(RHOST, user, ""),
        "the host is remembered: no code asked"
    );
    assert!(
        !service.login(user, ""),
        "never remembered for a local login"
    );
}

#[test]
fn given_remembered_host_then_forget_hosts_makes_the_module_ask_again() {
    let Some(module) = ready("given_remembered_host_then_forget_hosts_makes_the_module_ask_again")
    else {
        return;
    };
    let dir = TempDir::new("forget");
    let conf = dir.config("remember = \"1h\"\n");
    let c = conf.to_str().unwrap();
    let alice = TestUser::create();
    let bob = TestUser::create();
    let alice_key = enroll(c, &alice.name);
    let bob_key = enroll(c, &bob.name);
    let service = Service::new("forget", &module, &conf);
    remember(&service, &alice.name, &alice_key);
    remember(&service, &bob.name, &bob_key);

    // status shows the remembered host, for one user and in --all.
    let o = run(
        &["--config", c, "status", "--user", &alice.name, "--json"],
        "",
    );
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["remembered_hosts"]["count"], 1, "{st}");
    let until = st["remembered_hosts"]["latest_until"].as_u64().unwrap();
    assert!(until > now() && until <= now() + 3600, "{st}");
    let text = stdout(&run(&["--config", c, "status", "--user", &alice.name], ""));
    assert!(
        text.contains("Remembered:     1 host skips the code, the last until "),
        "{text}"
    );
    let table = stdout(&run(&["--config", c, "status", "--all"], ""));
    assert!(
        table.lines().next().unwrap().contains("REMEMBERED"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&bob.name) && l.contains(" 1 until ")),
        "{table}"
    );
    let capture = syslog_capture();

    // Alice, for herself: her secret file is marked; the root-owned state stays as it is.
    let before = now();
    let o = run_as(&alice.name, &["--config", c, "forget-hosts"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    // She cannot read the root-only state, so she is told what the mark does.
    assert!(
        stdout(&o).starts_with(&format!("Every host remembered for {} before ", alice.name)),
        "{}",
        stdout(&o)
    );
    let path = alice.secret_path();
    let file = SecretFile::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert!(file.forget_hosts_before >= before, "marked");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.uid(), alice.uid, "still the user's file");
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(state_of(&dir, &alice.name).remembered.len(), 1);
    assert!(
        !service.login_from(RHOST, &alice.name, ""),
        "asked for a code again"
    );
    let o = run_as(&alice.name, &["--config", c, "status", "--json"], "");
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(st.get("remembered_hosts").is_none(), "{st}");
    // She may not do it for Bob.
    let o = run_as(
        &alice.name,
        &["--config", c, "forget-hosts", "--user", &bob.name],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(service.login_from(RHOST, &bob.name, ""), "Bob untouched");

    // Root, for Bob: the state's entries go as well.
    let o = run(&["--config", c, "forget-hosts", "--user", &bob.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("Forgot 1 remembered host of {}", bob.name)),
        "{out}"
    );
    assert!(out.contains("Cleared 1 entry from "), "{out}");
    assert!(state_of(&dir, &bob.name).remembered.is_empty());
    let file = SecretFile::parse(&std::fs::read(bob.secret_path()).unwrap()).unwrap();
    assert!(file.forget_hosts_before >= before);
    assert_eq!(std::fs::metadata(bob.secret_path()).unwrap().uid(), bob.uid);
    assert!(
        !service.login_from(RHOST, &bob.name, ""),
        "asked for a code again"
    );
    // A backup code still works afterwards.
    let backup = bob_key["backup_codes"][0].as_str().unwrap();
    assert!(service.login_from(RHOST, &bob.name, backup));

    if let Some(capture) = capture {
        let lines = capture.lines();
        let ours: Vec<&String> = lines
            .iter()
            .filter(|l| {
                l.contains("action=forget-hosts")
                    && (is_of_user(l, &alice.name) || is_of_user(l, &bob.name))
            })
            .collect();
        assert_eq!(ours.len(), 2, "{lines:?}");
        assert!(ours[0].starts_with("<85>"), "{}", ours[0]);
        assert!(
            ours[0].contains(&format!(
                "pam_totp(pam-totp:admin): action=forget-hosts user={0} by={0} remembered=unknown secret_file_marked=true",
                alice.name
            )),
            "{}",
            ours[0]
        );
        assert!(
            ours[1].contains(&format!(
                "action=forget-hosts user={} by=root remembered=1 secret_file_marked=true state_entries_cleared=1",
                bob.name
            )),
            "{}",
            ours[1]
        );
        for l in &lines {
            for key in [&alice_key, &bob_key] {
                assert!(!l.contains(key["secret"].as_str().unwrap()));
                assert!(!l.contains(key["backup_codes"][0].as_str().unwrap()));
            }
        }
    }
}

#[test]
fn given_no_enrollment_then_user_told_to_enroll_and_root_told_nothing_was_remembered() {
    if !root_or_skip(
        "given_no_enrollment_then_user_told_to_enroll_and_root_told_nothing_was_remembered",
    ) {
        return;
    }
    let dir = TempDir::new("forget-none");
    let conf = dir.config("");
    let c = conf.to_str().unwrap();
    let user = TestUser::create();
    let o = run_as(&user.name, &["--config", c, "forget-hosts"], "");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("pam-totp enroll"), "{}", stderr(&o));
    assert!(!user.secret_path().exists(), "nothing written");

    let o = run(&["--config", c, "forget-hosts", "--user", &user.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("{} had no remembered host;", user.name)),
        "{out}"
    );
    assert!(
        out.contains("Note: `remember` is off in the configuration"),
        "{out}"
    );
    assert!(!user.secret_path().exists(), "nothing written");
    assert!(current_state(&dir.path().join("state"), &user.name).is_none());

    // A corrupt secret file: the user is told and nothing is touched; root still clears the
    // state (the module reads it first) and leaves the file as it is.
    let path = user.secret_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "version = 1\nenrollment_id = [garbage\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    nix::unistd::chown(
        &path,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .unwrap();
    let o = run_as(&user.name, &["--config", c, "forget-hosts"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot be used"), "{}", stderr(&o));
    let mut state = State::new();
    state.remembered.push(pam_totp_core::state::Remembered {
        rhost: RHOST.into(),
        until: now() + 600,
        password_tag: String::new(),
        since: now(),
    });
    let d = dir.path().join("state");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join(format!("{}.state", user.name)),
        state.to_toml().unwrap(),
    )
    .unwrap();
    let o = run(&["--config", c, "forget-hosts", "--user", &user.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("only the state is cleared"),
        "{}",
        stderr(&o)
    );
    assert!(state_of(&dir, &user.name).remembered.is_empty());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "version = 1\nenrollment_id = [garbage\n"
    );
}
