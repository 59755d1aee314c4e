//! Crash safety (issue 7), through the real libpam: PAM clients SIGKILLed hundreds of times in
//! the middle of their state writes leave only parseable files, no lost enrollment and no backup
//! code usable twice; a full state file system and a read-only one make logins fail closed with
//! a syslog line, without losing files.

use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::State;
use pam_totp_e2e::harness::{Lcg, Scenario};
use pam_totp_e2e::harness_client::login_then_kill;
use pam_totp_e2e::harness_syslog::SyslogCapture;
use pam_totp_e2e::harness_totp::Enrollment;
use pam_totp_e2e::require_root;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The state in a record file (`[state]`), or a release-0.1 state file.
fn parse_state(path: &Path) -> State {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut record: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{text}", path.display()));
    let text = match record.remove("state") {
        Some(toml::Value::Table(state)) => toml::to_string(&state).expect("serialises"),
        _ => text,
    };
    State::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{}", path.display(), text))
}

fn parse_secret(path: &Path) -> SecretFile {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    SecretFile::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// One login from 198.51.100.7 (see [`login_then_kill`]).
fn login(s: &Scenario, answer: &str, kill_after_us: Option<u64>) -> Option<String> {
    login_then_kill(&s.client().rhost("198.51.100.7"), answer, kill_after_us)
}

#[test]
fn given_clients_killed_during_state_writes_then_files_parse_and_no_backup_code_works_twice() {
    require_root!();
    // Throttling off: every attempt, right or wrong, writes the state, and none is refused early.
    let users: Vec<(Scenario, Enrollment)> = (0..3)
        .map(|_| {
            let s = Scenario::new("throttle = false", "");
            let e = s.enroll(&["--backup-codes", "20"]);
            (s, e)
        })
        .collect();
    let before: Vec<String> = users
        .iter()
        .map(|(_, e)| parse_secret(&e.secret_file).enrollment_id)
        .collect();
    let seed = pam_totp_e2e::harness_totp::now();
    println!("seed {seed}");
    let mut rng = Lcg(seed);
    let mut granted_backup: Vec<(usize, String)> = Vec::new();
    let mut granted_steps: Vec<(usize, u64)> = Vec::new();
    let mut sent_backup: Vec<Vec<String>> = vec![Vec::new(); users.len()];
    let (mut killed, mut finished) = (0, 0);
    for i in 0..300 {
        let u = i % users.len();
        let (s, e) = &users[u];
        let step = e.settled_step(3);
        let (answer, backup) = match rng.draw() % 3 {
            0 => (e.code_for_step(step), false),
            1 => (e.wrong_code(step), false),
            _ => {
                let code = e.backup_codes[(rng.draw() as usize) % e.backup_codes.len()].clone();
                (code, true)
            }
        };
        // Kill between 0 and 2 ms after the answer (counting, verifying and the fsync'ed write
        // take about that long); every fourth login runs to the end.
        let kill = (i % 4 != 0).then(|| rng.draw() % 2000);
        let result = login(s, &answer, kill);
        match &result {
            Some(_) => finished += 1,
            None => killed += 1,
        }
        if backup {
            sent_backup[u].push(answer.clone());
        }
        if result.as_deref() == Some("PAM_SUCCESS") {
            if backup {
                granted_backup.push((u, answer));
            } else {
                granted_steps.push((u, step));
            }
        }
    }
    // Temporary files left behind show kills that landed inside a state write.
    let torn: usize = users
        .iter()
        .map(|(s, _)| {
            std::fs::read_dir(&s.config.state_dir)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                        .count()
                })
                .unwrap_or(0)
        })
        .sum();
    println!(
        "{killed} killed, {finished} finished, {torn} interrupted writes left temporary files"
    );
    assert!(
        killed >= 60,
        "too few clients were killed mid-way: {killed}"
    );
    for (u, (s, e)) in users.iter().enumerate() {
        // The enrollment is intact.
        let secret = parse_secret(&e.secret_file);
        assert_eq!(
            secret.enrollment_id, before[u],
            "enrollment of user {u} changed"
        );
        // Every state file parses; leftover temporary files are allowed, never a torn state.
        let state = parse_state(&s.state_file());
        let set = secret.backup.as_ref().expect("backup codes");
        let used = state.used_backup_codes(&set.set_id).to_vec();
        for (gu, code) in granted_backup.iter().filter(|(gu, _)| *gu == u) {
            let norm = pam_totp_core::backup::normalize(code.as_bytes()).expect("normalises");
            let index = set.find(&norm).expect("a granted code is in the set") as u32;
            assert!(
                used.contains(&index),
                "user {gu}: a granted backup code is not recorded as used"
            );
        }
        for (_, step) in granted_steps.iter().filter(|(gu, _)| *gu == u) {
            let last = state.last_step.values().max().copied().unwrap_or(0);
            assert!(
                last >= *step,
                "user {u}: a granted step {step} is not recorded ({last})"
            );
        }
        // No used code is accepted again.
        let mut sent = sent_backup[u].clone();
        sent.sort();
        sent.dedup();
        for code in sent {
            let norm = pam_totp_core::backup::normalize(code.as_bytes()).expect("normalises");
            let index = set.find(&norm).expect("in the set") as u32;
            let was_used = parse_state(&s.state_file())
                .used_backup_codes(&set.set_id)
                .contains(&index);
            let result = login(s, &code, None);
            if was_used {
                assert_eq!(
                    result.as_deref(),
                    Some("PAM_AUTH_ERR"),
                    "user {u}: a used backup code worked again"
                );
            }
            assert!(
                !(result.as_deref() == Some("PAM_SUCCESS")
                    && granted_backup.iter().any(|(gu, c)| *gu == u && *c == code)),
                "user {u}: a backup code granted before the kills was accepted again"
            );
        }
    }
}

/// A tmpfs mounted over a directory, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("mount runs")
            .success();
        assert!(ok, "cannot mount a tmpfs on {}", dir.display());
        Mount(dir.to_path_buf())
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .expect("mount runs")
            .success();
        assert!(ok, "cannot remount {} {mode}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with one file until ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn given_full_state_file_system_then_login_fails_closed_with_log_line_and_files_survive() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let _mount = Mount::tmpfs(&s.config.state_dir, "64k");
    let step = e.settled_step(10);
    login(&s, &e.code_for_step(step), None)
        .filter(|r| r == "PAM_SUCCESS")
        .expect("first login succeeds on the empty tmpfs");
    let state_before = std::fs::read(s.state_file()).expect("state written");
    let filler = fill(&s.config.state_dir);
    let log = SyslogCapture::start();
    // The next step is inside the window: a valid, unused code.
    let result = login(&s, &e.code_for_step(step + 1), None);
    let lines = log.lines_of_user(&s.user.name);
    drop(log);
    println!("result {result:?}; log: {lines:#?}");
    assert_eq!(
        result.as_deref(),
        Some("PAM_AUTH_ERR"),
        "a login that cannot record its step must fail"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("result=failure") && l.contains("No space left on device")),
        "no clear syslog line: {lines:#?}"
    );
    assert_eq!(
        std::fs::read(s.state_file()).expect("state kept"),
        state_before,
        "state changed"
    );
    parse_secret(&e.secret_file);
    std::fs::remove_file(filler).expect("filler removed");
    assert_eq!(
        login(&s, &e.code_for_step(step + 1), None).as_deref(),
        Some("PAM_SUCCESS"),
        "with space again, the unrecorded code works"
    );
    parse_state(&s.state_file());
}

#[test]
fn given_read_only_state_dir_then_login_fails_closed_with_log_line_and_no_crash() {
    require_root!();
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let mount = Mount::tmpfs(&s.config.state_dir, "1m");
    let step = e.settled_step(10);
    assert_eq!(
        login(&s, &e.code_for_step(step), None).as_deref(),
        Some("PAM_SUCCESS")
    );
    let state_before = std::fs::read(s.state_file()).expect("state written");
    mount.remount("ro");
    let log = SyslogCapture::start();
    let result = login(&s, &e.code_for_step(step + 1), None);
    let lines = log.lines_of_user(&s.user.name);
    drop(log);
    println!("result {result:?}; log: {lines:#?}");
    assert_eq!(
        result.as_deref(),
        Some("PAM_AUTH_ERR"),
        "documented: fails closed"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("result=failure") && l.contains("Read-only file system")),
        "no clear syslog line: {lines:#?}"
    );
    assert_eq!(
        std::fs::read(s.state_file()).expect("state kept"),
        state_before
    );
    mount.remount("rw");
    assert_eq!(
        login(&s, &e.code_for_step(step + 1), None).as_deref(),
        Some("PAM_SUCCESS")
    );
}
