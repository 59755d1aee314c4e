//! The CLI tests' own helpers (running the binary, reading its output, decoding its QR codes);
//! users, groups, temporary directories, PAM services, the PAM client and the syslog capture
//! come from the one harness of the end-to-end tests (`pam_totp_e2e`).
#![allow(dead_code)]

#[allow(unused_imports)]
pub use pam_totp_e2e::harness::{TempDir, TestGroup, TestUser};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// The JSON `pam-totp` printed; panics with all it wrote unless it succeeded and printed JSON.
pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(o), stderr(o)))
}

/// An administrator's command for one user, as root: `pam-totp --config <conf> <command...>
/// --user <user> --json`, its JSON (see [`json`]).
pub fn json_for(conf: &str, user: &str, command: &[&str]) -> serde_json::Value {
    let mut args = vec!["--config", conf];
    args.extend_from_slice(command);
    args.extend_from_slice(&["--user", user, "--json"]);
    json(&run(&args, ""))
}

/// The users `status --all --json` lists, as root.
pub fn status_all_users(conf: &str) -> Vec<String> {
    let rows = json(&run(&["--config", conf, "status", "--all", "--json"], ""));
    rows.as_array()
        .unwrap_or_else(|| panic!("not a list: {rows}"))
        .iter()
        .map(|r| r["user"].as_str().unwrap().to_string())
        .collect()
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

/// The key `enroll` printed for typing in by hand (its groups joined).
pub fn printed_key(output: &str) -> String {
    let line = output
        .lines()
        .find(|l| l.contains("Or type the key in by hand:"))
        .expect("the key is printed");
    line.split(':').nth(1).unwrap().split_whitespace().collect()
}

/// RFC 4648 base32 (spaces, padding and case ignored), with the crate the core uses.
pub fn base32_decode(text: &str) -> Vec<u8> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &clean)
        .unwrap_or_else(|| panic!("not base32: {text:?}"))
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
    let pbm = pam_totp_e2e::harness_qr::pbm(&rows, 0, false, 4);
    pam_totp_e2e::harness_qr::zbar_decode(&pbm, dir, false).expect("zbarimg found no QR code")
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

/// The built module, if any.
pub fn module() -> Option<PathBuf> {
    let m = pam_totp_e2e::harness::artifact_path("libpam_totp.so");
    m.exists().then_some(m)
}

/// A throwaway /etc/pam.d service using the built module (auth and account), removed on drop.
pub struct Service(pam_totp_e2e::harness::PamService);

impl Service {
    pub fn new(_tag: &str, module: &Path, conf: &Path) -> Service {
        let line = |kind: &str| {
            format!(
                "{kind} required {} config={}",
                module.display(),
                conf.display()
            )
        };
        Service(pam_totp_e2e::harness::PamService::new(&[
            line("auth"),
            line("account"),
            "account required pam_permit.so".into(),
        ]))
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn login(&self, user: &str, answer: &str) -> bool {
        self.login_from("", user, answer)
    }

    /// Authenticates, then runs the account phase as login programs do (the whole stack's
    /// success is what remembers a host), with PAM_RHOST set to `rhost` (none when empty).
    pub fn login_from(&self, rhost: &str, user: &str, answer: &str) -> bool {
        let mut client = pam_totp_e2e::harness_client::Client::new(&self.0.name, user)
            .answer(answer)
            .acct();
        if !rhost.is_empty() {
            client = client.rhost(rhost);
        }
        client.run().result() == "PAM_SUCCESS"
    }
}

/// Root and the built module, or a note why the test is skipped.
pub fn ready(test: &str) -> Option<PathBuf> {
    if !root_or_skip(test) {
        return None;
    }
    let m = module();
    if m.is_none() {
        println!("skipping {test}: build the module first (cargo build -p pam-totp)");
    }
    m
}

/// The syslog capture of the e2e harness (root only: it needs a private mount namespace).
pub fn syslog_capture() -> Option<pam_totp_e2e::harness_syslog::SyslogCapture> {
    nix::unistd::Uid::effective()
        .is_root()
        .then(pam_totp_e2e::harness_syslog::SyslogCapture::start)
}

/// The current state of `user` under `state_dir`, read as the module reads it (`None`: nothing
/// recorded, or everything reset).
pub fn current_state(state_dir: &Path, user: &str) -> Option<pam_totp_core::state::State> {
    use pam_totp_core::store::Store;
    pam_totp_core::store::LocalFiles::new(
        "/nonexistent/${USER}".into(),
        state_dir.to_path_buf(),
        None,
        0o600,
        true,
    )
    .state(user)
    .unwrap()
    .filter(|s| !s.is_empty())
}
