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
        // The audit lines name SUDO_USER when it is set: `sudo tests/run-all.sh` would change them.
        .env_remove("SUDO_USER")
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

/// Decodes the QR code in `drawn` (the output of `pam-totp qr`, any style) with zbarimg and
/// returns the text it holds. The drawing is turned back into modules, scaled up and written
/// as a PBM image.
pub fn decode_qr(drawn: &str, dir: &Path) -> String {
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for line in drawn.lines() {
        // Strip ANSI colour sequences, remembering the background colour of the ANSI style.
        let mut cells: Vec<(char, Option<bool>)> = Vec::new();
        let mut bg: Option<bool> = None;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                let mut seq = String::new();
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                    seq.push(d);
                }
                bg = match seq.as_str() {
                    "[40" => Some(true),
                    "[107" => Some(false),
                    _ => bg,
                };
                continue;
            }
            cells.push((c, bg));
        }
        if cells.is_empty() {
            continue;
        }
        let (top, bottom): (Vec<bool>, Vec<bool>);
        if cells.iter().any(|(_, b)| b.is_some()) && cells.iter().all(|(c, _)| *c == ' ') {
            // ANSI style: two coloured spaces per module.
            top = cells.chunks(2).map(|p| p[0].1 == Some(true)).collect();
            rows.push(top);
            continue;
        }
        if cells
            .iter()
            .any(|(c, _)| matches!(c, '\u{2580}' | '\u{2584}' | '\u{2588}'))
            || cells.iter().all(|(c, _)| *c == ' ') && line.contains('\x1b')
        {
            top = cells
                .iter()
                .map(|(c, _)| matches!(c, '\u{2580}' | '\u{2588}'))
                .collect();
            bottom = cells
                .iter()
                .map(|(c, _)| matches!(c, '\u{2584}' | '\u{2588}'))
                .collect();
            rows.push(top);
            rows.push(bottom);
        } else {
            // ASCII style: `##` per dark module.
            rows.push(cells.chunks(2).map(|p| p[0].0 == '#').collect());
        }
    }
    assert!(!rows.is_empty(), "no QR code in the output");
    let width = rows.iter().map(Vec::len).max().unwrap();
    let scale = 4;
    let mut pbm = format!("P1\n{} {}\n", width * scale, rows.len() * scale);
    for row in &rows {
        let mut line = String::new();
        for x in 0..width {
            let dark = row.get(x).copied().unwrap_or(false);
            for _ in 0..scale {
                line.push(if dark { '1' } else { '0' });
                line.push(' ');
            }
        }
        for _ in 0..scale {
            pbm.push_str(&line);
            pbm.push('\n');
        }
    }
    let image = dir.join("qr.pbm");
    std::fs::write(&image, pbm).unwrap();
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&image)
        .output()
        .expect("zbarimg (Debian package zbar-tools) is installed");
    assert!(
        out.status.success(),
        "zbarimg found no QR code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// The lines of the QR drawing in an output: from the first line with a colour sequence, half
/// block or `##` to the last one.
pub fn qr_lines(output: &str) -> String {
    let is_qr = |l: &str| {
        l.contains('\x1b')
            || l.contains('\u{2588}')
            || l.contains("##")
            || (l.len() > 40 && l.trim().is_empty())
    };
    let lines: Vec<&str> = output.lines().collect();
    let start = lines.iter().position(|l| is_qr(l)).expect("a QR code");
    let end = lines.iter().rposition(|l| is_qr(l)).unwrap();
    lines[start..=end].join("\n")
}

/// A local group made for one test and deleted on drop.
pub struct TestGroup {
    pub name: String,
}

impl TestGroup {
    pub fn new() -> TestGroup {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ptg{}x{n}", std::process::id() % 100_000);
        let mut ok = false;
        for _ in 0..20 {
            let out = Command::new("groupadd")
                .arg(&name)
                .output()
                .expect("groupadd runs");
            if out.status.success() {
                ok = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(ok, "groupadd {name}");
        TestGroup { name }
    }

    /// Makes `user` a supplementary member.
    pub fn add(&self, user: &str) {
        for _ in 0..20 {
            let out = Command::new("usermod")
                .args(["-a", "-G", &self.name, user])
                .output()
                .expect("usermod runs");
            if out.status.success() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("usermod -a -G {} {user}", self.name);
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// The built module, target/{debug,release}/libpam_totp.so, if any.
pub fn module() -> Option<PathBuf> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("libpam_totp.so"))
        .find(|p| p.exists())
}

/// A throwaway /etc/pam.d service using the built module, removed on drop.
pub struct Service(pub String);

impl Service {
    pub fn new(tag: &str, module: &std::path::Path, conf: &std::path::Path) -> Service {
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

    pub fn login(&self, user: &str, answer: &str) -> bool {
        self.login_from("", user, answer)
    }

    /// Authenticates with PAM_RHOST set to `rhost` (none when empty).
    pub fn login_from(&self, rhost: &str, user: &str, answer: &str) -> bool {
        let mut cmd = Command::new("pamtester");
        if !rhost.is_empty() {
            cmd.args(["-I", &format!("rhost={rhost}")]);
        }
        let mut child = cmd
            .args([&self.0, user, "authenticate"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // pamtester may exit without reading when nothing is asked (a remembered host, an
        // exemption): a broken pipe then is no failure, the exit status decides.
        if let Err(e) = stdin.write_all(format!("{answer}\n").as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        drop(stdin);
        child.wait_with_output().unwrap().status.success()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.0));
    }
}

pub fn ready(test: &str) -> Option<PathBuf> {
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

/// The test's own `/dev/log` (a private mount namespace when a daemon owns the host's): the
/// e2e harness's helper, shared until the two harnesses are one.
#[path = "../../../tests/src/dev_log.rs"]
mod dev_log;

/// Receives syslog lines on the test's `/dev/log` for the life of the value. A thread reads them
/// as they come: a datagram socket nobody reads fills up after a few lines and then blocks every
/// sender. Bind it on the test's thread before running the commands whose lines it should get.
pub struct SyslogCapture {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: std::sync::Mutex<Option<std::thread::JoinHandle<std::os::unix::net::UnixDatagram>>>,
    dev_log: std::sync::Mutex<dev_log::PrivateDevLog>,
}

impl SyslogCapture {
    pub fn bind() -> Option<SyslogCapture> {
        let dev_log = match dev_log::PrivateDevLog::bind() {
            Ok(d) => d,
            Err(e) => {
                println!("skipping the syslog part: no private /dev/log ({e})");
                return None;
            }
        };
        let socket = dev_log.socket().try_clone().unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while !s.load(Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                    l.lock().unwrap().push(line);
                }
            }
            socket
        });
        Some(SyslogCapture {
            lines,
            stop,
            reader: std::sync::Mutex::new(Some(reader)),
            dev_log: std::sync::Mutex::new(dev_log),
        })
    }

    /// The lines received (every sender has finished by the time its process exits): stops
    /// the reader, gives /dev/log back (so nobody waits on a socket no longer read) and takes
    /// what is still queued.
    pub fn lines(&self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.lock().unwrap().take() {
            let socket = reader.join().unwrap();
            self.dev_log.lock().unwrap().close();
            socket.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 8192];
            while let Ok(n) = socket.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.lines.lock().unwrap().push(line);
            }
        }
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for SyslogCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.lock().unwrap().take() {
            let _ = r.join();
        }
        self.dev_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .close();
    }
}
