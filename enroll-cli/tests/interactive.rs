//! Interactive enrollment: driven through a pseudo-terminal (util-linux `script`), answered
//! with the code computed from the key the command printed; and its refusals (EOF, non-numeric
//! and wrong codes) leave nothing written.

mod common;

use common::*;
use pam_totp_e2e::harness_session::{Session, Stream};
use std::time::Duration;

/// `pam-totp` with `args` under a pseudo-terminal (util-linux `script`), its output collected
/// as it comes.
fn spawn_pty(args: &[&str]) -> Session {
    let argv: Vec<&str> = std::iter::once(bin()).chain(args.iter().copied()).collect();
    spawn_pty_argv(&argv)
}

/// Runs `argv` (a program and its arguments) under the pseudo-terminal; the program is slow
/// (two minutes for each text and for the exit), never the assertion.
fn spawn_pty_argv(argv: &[&str]) -> Session {
    Session::spawn_in_pty(argv, &[("TERM", "xterm")]).patience(Duration::from_secs(120))
}

/// Waits for the exit: its code (-1: none) and all the terminal showed, without carriage returns.
fn finish(pty: Session) -> (i32, String) {
    let done = pty.finish();
    (
        done.code.unwrap_or(-1),
        done.stdout_text().replace('\r', ""),
    )
}

#[test]
fn given_pty_and_right_code_then_enrolled_with_backup_codes() {
    let dir = TempDir::new("pty-ok");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let mut pty = spawn_pty(&[
        "--config",
        conf.to_str().unwrap(),
        "enroll",
        "--backup-codes",
        "3",
    ]);
    let out = pty.wait_for(Stream::Stdout, "code the app shows now");
    assert!(
        !secret.exists(),
        "nothing is written before the code is confirmed"
    );
    let key = printed_key(&out.replace('\r', ""));
    // One wrong code first: asked again.
    pty.send("000000");
    pty.wait_for(Stream::Stdout, "does not match");
    pty.send(&totp_now(&key, totp_rs::Algorithm::SHA1, 6, 30));
    let (code, out) = finish(pty);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Code accepted."), "{out}");
    assert!(out.contains("Store these codes somewhere safe"), "{out}");
    let text = std::fs::read_to_string(&secret).unwrap();
    let file = pam_totp_core::secret_file::SecretFile::parse(text.as_bytes()).unwrap();
    assert_eq!(file.authenticators[0].secret.to_base32().as_str(), key);
    assert_eq!(file.backup.as_ref().unwrap().hashes.len(), 3);
    // The QR code shown in the terminal decodes to the saved key's URI.
    let drawn = qr_lines(&out);
    assert_eq!(
        decode_qr(&drawn, dir.path()),
        file.authenticators[0].otpauth_uri().as_str()
    );
    // The enrollment ends in a working login through the real libpam (root: a service file).
    if !root_or_skip("the libpam login after the interactive enrollment") {
        return;
    }
    let Some(module) = module() else {
        panic!("target/*/libpam_totp.so is missing: run `cargo build --workspace` first");
    };
    let service = Service::new("pty", &module, &conf);
    let code = totp_now(&key, totp_rs::Algorithm::SHA1, 6, 30);
    assert!(
        service.login("root", &code),
        "login with a code from the enrolled key"
    );
    assert!(
        !service.login("root", &code),
        "the same code is refused a second time"
    );
    assert!(!service.login("root", "000000"), "a wrong code is refused");
}

#[test]
fn given_sha256_then_warning_about_apps_is_shown() {
    let dir = TempDir::new("pty-sha");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "enroll",
            "--algorithm",
            "sha256",
            "--qr=none",
        ],
        "",
    );
    assert!(
        stdout(&o).contains("some apps (Google Authenticator among them) silently ignore SHA256")
    );
}

#[test]
fn given_eof_on_stdin_then_nothing_written() {
    let dir = TempDir::new("eof");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let o = run(
        &["--config", conf.to_str().unwrap(), "enroll", "--qr=none"],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).ends_with(
            "Error: No code was entered (end of input).\nNothing was written. Run the command again on a terminal, or use --no-confirm (or --json) in scripts.\n"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!secret.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the config"
    );
}

#[test]
fn given_non_numeric_codes_three_times_then_refused_and_existing_enrollment_untouched() {
    let dir = TempDir::new("nonnum");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let conf = conf.to_str().unwrap();
    assert!(
        run(&["--config", conf, "enroll", "--json"], "")
            .status
            .success()
    );
    let before = std::fs::read(&secret).unwrap();
    let o = run(
        &["--config", conf, "enroll", "--force", "--qr=none"],
        "abc\n12 34x\n12\n",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("That is not a code: type the 6 digits the app shows. 2 tries left."),
        "{err}"
    );
    assert!(err.contains("The code has 6 digits, not 2."), "{err}");
    assert!(err.ends_with("Error: The code from the app did not match, three times.\nNothing was written. Check that the phone's clock is set automatically and that you scanned the code just shown, then run `pam-totp enroll` again.\n"), "{err}");
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        before,
        "old enrollment untouched"
    );
}

#[test]
fn given_no_confirm_then_written_without_asking() {
    let dir = TempDir::new("noconfirm");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let o = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "enroll",
            "--no-confirm",
            "--qr=none",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("code the app shows"));
    assert!(secret.exists());
}

#[test]
fn given_add_with_code_then_second_authenticator_accepted() {
    let dir = TempDir::new("add");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let conf = conf.to_str().unwrap();
    assert!(
        run(
            &["--config", conf, "enroll", "--json", "--backup-codes", "2"],
            ""
        )
        .status
        .success()
    );
    let before =
        pam_totp_core::secret_file::SecretFile::parse(&std::fs::read(&secret).unwrap()).unwrap();
    let mut pty = spawn_pty(&["--config", conf, "enroll", "--add", "tablet", "--qr=none"]);
    let out = pty.wait_for(Stream::Stdout, "code the app shows now");
    let key = printed_key(&out.replace('\r', ""));
    pty.send(&totp_now(&key, totp_rs::Algorithm::SHA1, 6, 30));
    let (code, out) = finish(pty);
    assert_eq!(code, 0, "{out}");
    let after =
        pam_totp_core::secret_file::SecretFile::parse(&std::fs::read(&secret).unwrap()).unwrap();
    assert_eq!(after.authenticators.len(), 2);
    assert_eq!(after.authenticators[1].name, "tablet");
    assert_eq!(after.authenticators[1].secret.to_base32().as_str(), key);
    assert_eq!(after.backup, before.backup, "backup codes unchanged");
    assert_eq!(after.enrollment_id, before.enrollment_id);
    // list shows both; remove revokes one and keeps the other.
    let list = stdout(&run(&["--config", conf, "list"], ""));
    assert!(
        list.contains("default") && list.contains("tablet"),
        "{list}"
    );
    let o = run(&["--config", conf, "remove", "default"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let left =
        pam_totp_core::secret_file::SecretFile::parse(&std::fs::read(&secret).unwrap()).unwrap();
    assert_eq!(left.authenticators.len(), 1);
    assert_eq!(left.authenticators[0].secret.to_base32().as_str(), key);
    assert_eq!(left.backup, before.backup);
}

/// The pid of the `pam-totp` process running under `ancestor` (through `script` and its shell).
fn cli_pid_under(ancestor: u32) -> Option<u32> {
    let mut parent = std::collections::HashMap::new();
    let mut clis = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let (head, tail) = stat.rsplit_once(')')?;
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let ppid: u32 = tail.split_whitespace().nth(1)?.parse().ok()?;
        parent.insert(pid, ppid);
        if comm == "pam-totp" {
            clis.push(pid);
        }
    }
    clis.into_iter().find(|&pid| {
        let mut p = pid;
        while let Some(&pp) = parent.get(&p) {
            if pp == ancestor {
                return true;
            }
            if pp <= 1 {
                break;
            }
            p = pp;
        }
        false
    })
}

/// Issue 12 item 8: while `pam-totp enroll` holds a new key, waiting at the code prompt, it
/// cannot be core-dumped or read by a debugger of the same user: it is not dumpable (so the
/// files in its /proc directory belong to root although it runs as the user) and its core size limit is 0,
/// although it was started with core dumps allowed.
#[test]
fn given_enroll_waiting_at_the_code_prompt_then_the_key_holder_is_not_dumpable() {
    if !root_or_skip("given_enroll_waiting_at_the_code_prompt_then_the_key_holder_is_not_dumpable")
    {
        return;
    }
    let dir = TempDir::new("dumpable");
    let conf = dir.config("");
    let user = TestUser::create();
    let (uid, gid) = (
        format!("--reuid={}", user.uid),
        format!("--regid={}", user.gid),
    );
    let home = format!("HOME={}", user.home.display());
    let mut pty = spawn_pty_argv(&[
        "prlimit",
        "--core=unlimited",
        "--",
        "setpriv",
        &uid,
        &gid,
        "--clear-groups",
        "env",
        &home,
        bin(),
        "--config",
        conf.to_str().unwrap(),
        "enroll",
        "--qr=none",
    ]);
    pty.wait_for(Stream::Stdout, "code the app shows now");
    let pid = cli_pid_under(pty.id()).expect("the pam-totp process");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:")
            && l.split_whitespace().nth(1) == Some(&*user.uid.to_string())),
        "runs as the user: {status}"
    );
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(format!("/proc/{pid}/status")).unwrap(),
    );
    assert_eq!(
        owner, 0,
        "the /proc files of a process that is not dumpable belong to root"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&core[4..6], ["0", "0"], "{limits}");
    for _ in 0..3 {
        pty.send("");
    }
    let (code, out) = finish(pty);
    assert_eq!(code, 1, "{out}");
    assert!(!user.secret_path().exists());
}
