//! Shared helpers of the CLI tests: temporary directories, throwaway users, running the binary.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Path of the built `pam-totp`.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pam-totp")
}

/// Whether the tests run as root; prints why a test is skipped otherwise.
pub fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        println!("skipping {test}: needs root (creates users and changes file ownership)");
    }
    root
}

/// A directory removed on drop, world-readable so unprivileged runs can read a config in it.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("pam-totp-cli-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a config file (mode 0644) with a state directory inside this directory and the
    /// extra lines given, and returns its path.
    pub fn config(&self, extra: &str) -> PathBuf {
        let path = self.0.join("pam_totp.conf");
        let text = format!("state_dir = \"{}/state\"\n{extra}", self.0.display());
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A local user made for one test and deleted (with its home) on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl TestUser {
    pub fn new() -> TestUser {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ptc{}x{n}", std::process::id() % 100_000);
        // useradd fails while another test holds the passwd lock: retry a few times.
        let mut ok = false;
        for _ in 0..20 {
            let out = Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", &name])
                .output()
                .expect("useradd runs");
            if out.status.success() {
                ok = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(ok, "useradd {name}");
        let u = nix::unistd::User::from_name(&name).unwrap().unwrap();
        TestUser {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        }
    }

    pub fn secret_path(&self) -> PathBuf {
        self.home.join(".config/pam-totp/secret.toml")
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .output();
    }
}

/// Runs `pam-totp` with `args` and `stdin`, as the current user.
pub fn run(args: &[&str], stdin: &str) -> Output {
    run_cmd(Command::new(bin()).args(args), stdin)
}

/// Runs `pam-totp` as another (unprivileged) user through setpriv.
pub fn run_as(user: &str, args: &[&str], stdin: &str) -> Output {
    let u = nix::unistd::User::from_name(user).unwrap().unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--clear-groups")
        .arg(bin())
        .args(args)
        .env("HOME", &u.dir);
    run_cmd(&mut cmd, stdin)
}

fn run_cmd(cmd: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("COLUMNS", "100")
        .spawn()
        .expect("pam-totp runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The current code of a base32 key (SHA1, 6 digits, 30 s unless given).
pub fn totp_now(key: &str, algorithm: totp_rs::Algorithm, digits: u8, period: u64) -> String {
    let secret = base32_decode(key);
    let totp = totp_rs::Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_step_duration(period)
        .with_secret(secret)
        .with_skew(0)
        .build_noncompliant();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now).to_string()
}

/// RFC 4648 base32 without padding.
pub fn base32_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}
