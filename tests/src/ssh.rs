//! Harness for the SSH end-to-end tests: a private `sshd` on loopback with its own host key,
//! config and PAM service, test accounts with a password and a key ([`SshUser`], on top of
//! [`crate::harness::TestUser`]), a scripted paramiko client that answers keyboard-interactive
//! prompts, the real client in a pty, and fresh TOTP codes for enrolled users (on top of
//! [`crate::harness_totp`]; syslog capture is [`crate::harness_syslog`]). Everything it
//! creates is removed again by `Drop`, also when a test fails.
//!
//! OpenSSH names its PAM service after its program name, so [`Sshd`] runs a copy of
//! `/usr/sbin/sshd` called `sshdptt<pid>x<n>` and writes `/etc/pam.d/sshdptt<pid>x<n>`; the
//! system's own sshd and its `/etc/pam.d/sshd` are never touched.

use crate::harness::{
    TempDir, TestUser, run_setup, set_mode, set_password, unique_name, write_file,
};
use crate::harness_session::{Session, Stream};
use crate::harness_totp::{self, now};
use serde_json::Value;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::ops::Deref;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The Debian sshd that the harness copies under a private name.
pub const SYSTEM_SSHD: &str = "/usr/sbin/sshd";
/// The interpreter for the client script: Debian's, which has `python3-paramiko`.
pub const PYTHON: &str = "/usr/bin/python3";
/// How long sshd may take to start listening before the harness gives up.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A test account ([`TestUser`], removed with its home on drop) that can log in over SSH: a
/// password (for stacks with pam_unix) and an ed25519 key in its `authorized_keys`.
#[derive(Debug)]
pub struct SshUser {
    account: TestUser,
    /// Its password.
    pub password: String,
    /// Private key file (owned by root, read by the client, which runs as root).
    pub key: PathBuf,
    _dir: TempDir,
}

impl SshUser {
    /// Creates the account with a random-enough password and an authorised ed25519 key.
    pub fn create() -> SshUser {
        let account = TestUser::create();
        let password = format!("Pw-{}-{}", unique_name("", 'p'), now() % 100_000);
        set_password(&account.name, &password);
        let dir = TempDir::new("user");
        let key = dir.join("id_ed25519");
        run_setup(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", &account.name, "-f"])
                .arg(&key),
            "the user's SSH key",
        );
        let public = fs::read_to_string(key.with_extension("pub")).expect("public key");
        let ssh_dir = account.home.join(".ssh");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&ssh_dir)
            .expect("mkdir ~/.ssh");
        write_file(&ssh_dir.join("authorized_keys"), &public, 0o600);
        account.chown_home();
        SshUser {
            account,
            password,
            key,
            _dir: dir,
        }
    }
}

impl Deref for SshUser {
    type Target = TestUser;

    fn deref(&self) -> &TestUser {
        &self.account
    }
}

/// A private sshd: a copy of `/usr/sbin/sshd` under a unique name, with its own host key,
/// `sshd_config`, PAM service file and log, listening on 127.0.0.1. Killed and cleaned up on
/// drop.
#[derive(Debug)]
pub struct Sshd {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// PAM service (= program) name.
    pub service: String,
    pam_file: PathBuf,
    log: PathBuf,
    child: Child,
    dir: TempDir,
}

impl Sshd {
    /// Starts sshd with `pam_stack` as its PAM service file and `extra_config` at the top of the
    /// harness's `sshd_config`, so it wins over the harness's defaults (e.g.
    /// `AuthenticationMethods publickey,keyboard-interactive`, `PasswordAuthentication yes`).
    /// `allow_users` restricts logins to the test's own accounts.
    pub fn start(pam_stack: &str, extra_config: &str, allow_users: &[&SshUser]) -> Sshd {
        assert!(
            Path::new(SYSTEM_SSHD).exists(),
            "{SYSTEM_SSHD} is missing: apt-get install -y openssh-server"
        );
        let dir = TempDir::new("sshd");
        let service = unique_name("sshdptt", 'x');
        let program = dir.path().join(&service);
        fs::copy(SYSTEM_SSHD, &program).expect("copy sshd");
        set_mode(&program, 0o755);
        // sshd refuses to start without its privilege separation directory.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create("/run/sshd")
            .expect("mkdir /run/sshd");

        let host_key = dir.path().join("ssh_host_ed25519_key");
        run_setup(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
            "the sshd host key",
        );

        let pam_file = PathBuf::from("/etc/pam.d").join(&service);
        write_file(&pam_file, pam_stack, 0o644);

        let port = free_port();
        let users: Vec<&str> = allow_users.iter().map(|u| u.name.as_str()).collect();
        let mut config = String::new();
        let _ = write!(
            config,
            "# Written by the pam-totp SSH test harness. The test's own lines come first:\n\
             # for most keywords sshd keeps the first value it reads.\n\
             {extra_config}\n\
             Port {port}\n\
             ListenAddress 127.0.0.1\n\
             AddressFamily inet\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             UsePAM yes\n\
             KbdInteractiveAuthentication yes\n\
             PasswordAuthentication no\n\
             PubkeyAuthentication yes\n\
             AuthorizedKeysFile .ssh/authorized_keys\n\
             PermitRootLogin no\n\
             StrictModes yes\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             AllowTcpForwarding no\n\
             MaxAuthTries 10\n\
             MaxStartups 50\n\
             LoginGraceTime 120\n\
             LogLevel DEBUG3\n\
             AllowUsers {users}\n",
            host_key = host_key.display(),
            pid = dir.path().join("sshd.pid").display(),
            users = if users.is_empty() {
                "nobody-at-all".to_string()
            } else {
                users.join(" ")
            },
        );
        let config_path = dir.path().join("sshd_config");
        write_file(&config_path, &config, 0o644);

        // Check the configuration first: its complaints are clearer than a silent exit.
        run_setup(
            Command::new(&program).arg("-t").arg("-f").arg(&config_path),
            "sshd -t (the test sshd_config)",
        );

        let log = dir.path().join("sshd.log");
        let log_file = fs::File::create(&log).expect("create sshd log");
        let child = Command::new(&program)
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd {
            port,
            service,
            pam_file,
            log,
            child,
            dir,
        };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&mut self) {
        let needle = format!("Server listening on 127.0.0.1 port {}", self.port);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if self.log().contains(&needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}) before listening:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("sshd did not start listening:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything sshd logged so far (LogLevel DEBUG3, on stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The harness's temporary directory (for test configuration files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.pam_file);
        if std::thread::panicking() {
            let keep = std::env::temp_dir().join(format!("{}.log", self.service));
            let kept = fs::copy(&self.log, &keep).is_ok();
            eprintln!(
                "--- sshd {} log (last lines{}) ---\n{}",
                self.service,
                if kept {
                    format!("; all of it in {}", keep.display())
                } else {
                    String::new()
                },
                self.log_tail(80)
            );
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// One login attempt by the scripted client.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// Account name.
    pub user: String,
    /// Private key to offer first (publickey), if any.
    pub key: Option<PathBuf>,
    /// Answers to the keyboard-interactive prompts, in order.
    pub answers: Vec<String>,
    /// Command to run once logged in.
    pub command: Option<String>,
    /// Use the "password" method with this password instead of keyboard-interactive.
    pub password: Option<String>,
    /// Open an interactive shell on a terminal afterwards and record what it shows.
    pub shell: bool,
}

impl Login {
    /// A login as `user` offering its key first.
    pub fn with_key(user: &SshUser) -> Login {
        Login {
            user: user.name.clone(),
            key: Some(user.key.clone()),
            ..Login::default()
        }
    }

    /// A login as `user` with keyboard-interactive only.
    pub fn without_key(user: &SshUser) -> Login {
        Login {
            user: user.name.clone(),
            ..Login::default()
        }
    }

    /// Adds an answer.
    pub fn answer(mut self, answer: &str) -> Login {
        self.answers.push(answer.to_string());
        self
    }

    /// Sets the command to run.
    pub fn command(mut self, command: &str) -> Login {
        self.command = Some(command.to_string());
        self
    }

    /// Uses the "password" method with `password` (the whole PAM conversation then gets it).
    pub fn password(mut self, password: &str) -> Login {
        self.password = Some(password.to_string());
        self
    }

    /// Also opens an interactive login shell on a terminal (where sshd shows the PAM messages
    /// of a successful login) and exits it.
    pub fn shell(mut self) -> Login {
        self.shell = true;
        self
    }

    /// Connects to `sshd` with paramiko (`tests/ssh/kbdint_client.py`) and reports what
    /// happened.
    pub fn run(&self, sshd: &Sshd) -> Transcript {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ssh/kbdint_client.py");
        let request = serde_json::json!({
            "port": sshd.port,
            "user": self.user,
            "key": self.key.as_ref().map(|k| k.display().to_string()),
            "password": self.password,
            "answers": self.answers,
            "command": self.command,
            "shell": self.shell,
            "timeout": 60,
        });
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(request.to_string().as_bytes())
            .expect("write request");
        let out = child.wait_with_output().expect("client");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("No module named 'paramiko'"),
            "paramiko is missing: apt-get install -y python3-paramiko"
        );
        assert!(
            out.status.success(),
            "client failed ({}): {stderr}\nsshd log:\n{}",
            out.status,
            sshd.log_tail(60)
        );
        let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "client printed no JSON ({e}): {}{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        Transcript::from_json(&value)
    }
}

/// One keyboard-interactive round (an SSH_MSG_USERAUTH_INFO_REQUEST) as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// The request's name field.
    pub name: String,
    /// The request's instruction field (sshd puts PAM_TEXT_INFO / PAM_ERROR_MSG text here).
    pub instruction: String,
    /// Prompt texts with their echo flags.
    pub prompts: Vec<(String, bool)>,
}

/// What the client saw in one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// "success", "partial", "failure" or "skipped" (no key offered).
    pub publickey: String,
    /// Methods the server still wanted after the key.
    pub methods_after_publickey: Vec<String>,
    /// Keyboard-interactive rounds, in order.
    pub rounds: Vec<Round>,
    /// "success", "partial" or "failure".
    pub auth: String,
    /// The client's error text (paramiko's), empty on success.
    pub error: String,
    /// Prompts the script had no answer for.
    pub unanswered: u64,
    /// The command's standard output.
    pub stdout: String,
    /// The command's exit status.
    pub exit_status: Option<i64>,
    /// What the interactive shell's terminal showed (login messages included).
    pub shell_output: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

impl Transcript {
    fn from_json(v: &Value) -> Transcript {
        let rounds = v["rounds"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| Round {
                        name: text(r, "name"),
                        instruction: text(r, "instruction"),
                        prompts: r["prompts"]
                            .as_array()
                            .map(|ps| {
                                ps.iter()
                                    .map(|p| {
                                        (
                                            p[0].as_str().unwrap_or("").to_string(),
                                            p[1].as_bool().unwrap_or(true),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Transcript {
            publickey: text(v, "publickey"),
            methods_after_publickey: strings(&v["methods_after_publickey"]),
            rounds,
            auth: text(v, "auth"),
            error: text(v, "error"),
            unanswered: v["unanswered"].as_u64().unwrap_or(0),
            stdout: text(v, "stdout"),
            exit_status: v["exit_status"].as_i64(),
            shell_output: text(v, "shell_output"),
        }
    }

    /// Whether the login succeeded.
    pub fn succeeded(&self) -> bool {
        self.auth == "success"
    }

    /// Every prompt, in order, over all rounds.
    pub fn prompts(&self) -> Vec<(String, bool)> {
        self.rounds
            .iter()
            .flat_map(|r| r.prompts.iter().cloned())
            .collect()
    }

    /// Every non-empty name/instruction text (where sshd forwards PAM messages), in order.
    pub fn messages(&self) -> Vec<String> {
        self.rounds
            .iter()
            .flat_map(|r| [r.name.clone(), r.instruction.clone()])
            .filter(|m| !m.trim().is_empty())
            .collect()
    }
}

/// An enrollment made through the CLI ([`harness_totp::Enrollment`]) that remembers the time
/// steps its codes were used for, so each login gets a code the module has not seen yet.
#[derive(Debug)]
pub struct TrackedEnrollment {
    enrollment: harness_totp::Enrollment,
    last_step: Mutex<u64>,
}

impl TrackedEnrollment {
    /// Enrolls `user` with `pam-totp enroll --json --config <config> --user <name>`.
    pub fn enroll(user: &TestUser, config: &Path) -> TrackedEnrollment {
        let enrollment = harness_totp::enroll(config, &user.name, &[]);
        assert_eq!(enrollment.user, user.name, "enroll --json");
        assert!(!enrollment.secret.is_empty(), "enroll --json: no secret");
        TrackedEnrollment {
            enrollment,
            last_step: Mutex::new(0),
        }
    }

    /// A code the module has not seen yet: the current step's, or the next step's (inside the
    /// default window of one step) when the current one was already used. Waits for the next
    /// period only when both were used.
    pub fn fresh_code(&self) -> String {
        let mut last = self.last_step.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let current = self.step_of(now());
            let step = current.max(*last + 1);
            if step <= current + 1 {
                *last = step;
                return self.code_for_step(step);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A code of the right shape that is not valid anywhere near now (no step within ±3 of the
    /// current one gives it), so the module must reject it as wrong.
    pub fn wrong_code_now(&self) -> String {
        self.wrong_code(self.step_of(now()))
    }
}

impl Deref for TrackedEnrollment {
    type Target = harness_totp::Enrollment;

    fn deref(&self) -> &harness_totp::Enrollment {
        &self.enrollment
    }
}

/// The real OpenSSH client, `/usr/bin/ssh`, on a pseudo-terminal (util-linux `script` gives it
/// one as its controlling terminal, which `ssh` needs to ask keyboard-interactive questions),
/// in a UTF-8 locale, driven as a person would: wait for text, type a line. Everything the
/// terminal received is kept, byte for byte, as the transcript.
#[derive(Debug)]
pub struct RealSsh {
    session: Session,
}

/// The client binary [`RealSsh`] runs.
pub const SSH_CLIENT: &str = "/usr/bin/ssh";

impl RealSsh {
    /// Logs in to `sshd` as `user` with its key, then keyboard-interactive, to run `command`.
    /// Host keys are neither checked nor remembered, and no configuration file is read.
    pub fn login(sshd: &Sshd, user: &SshUser, command: &str) -> RealSsh {
        assert!(
            Path::new(SSH_CLIENT).exists(),
            "{SSH_CLIENT} is missing: apt-get install -y openssh-client"
        );
        let port = sshd.port.to_string();
        let key = user.key.display().to_string();
        let destination = format!("{}@127.0.0.1", user.name);
        let argv = [
            SSH_CLIENT,
            "-F",
            "/dev/null",
            "-p",
            &port,
            "-i",
            &key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=30",
            &destination,
            command,
        ];
        let env = [
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("TERM", "xterm-256color"),
        ];
        RealSsh {
            session: Session::spawn_in_pty(&argv, &env),
        }
    }

    /// Every byte the terminal received so far.
    pub fn transcript(&self) -> Vec<u8> {
        self.session.output(Stream::Stdout)
    }

    /// Waits (up to a minute) until the terminal shows `text`; returns the transcript as text.
    /// Fails at once, with the terminal and the end of sshd's log, if ssh exits first.
    #[track_caller]
    pub fn wait_for(&mut self, text: &str, sshd: &Sshd) -> String {
        match self.session.try_wait_for(Stream::Stdout, text) {
            Ok(shown) => shown,
            Err(e) => panic!("{e}\nsshd log:\n{}", sshd.log_tail(60)),
        }
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.session.send(line);
    }

    /// Waits (up to a minute, then kills it) for the client to exit; its exit status (`None`:
    /// killed) and the whole transcript.
    pub fn finish(self) -> (Option<i32>, Vec<u8>) {
        let finished = self.session.finish();
        (finished.code, finished.stdout)
    }
}

/// A terminal theme: what colour the terminal paints the glyphs (foreground) and the rest of
/// each cell (background).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    /// Dark text on a light background.
    Light,
    /// Light text on a dark background.
    Dark,
}

/// The QR drawing in a terminal transcript: the run of lines made only of half blocks, full
/// blocks and spaces (with at least one block). Each line is a list of cells.
pub fn qr_cells(transcript: &str) -> Vec<Vec<char>> {
    let is_qr = |l: &str| {
        l.chars().count() >= 21
            && l.chars()
                .any(|c| matches!(c, '\u{2580}' | '\u{2584}' | '\u{2588}'))
            && l.chars()
                .all(|c| matches!(c, '\u{2580}' | '\u{2584}' | '\u{2588}' | ' '))
    };
    let lines: Vec<&str> = transcript
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let start = lines
        .iter()
        .position(|l| is_qr(l))
        .unwrap_or_else(|| panic!("no QR drawing in the transcript:\n{transcript}"));
    lines[start..]
        .iter()
        .take_while(|l| is_qr(l))
        .map(|l| l.chars().collect())
        .collect()
}

/// The picture a terminal with `theme` shows for `cells`, as a PBM image (`1` is dark): each
/// cell is one column and two half-height rows (a terminal cell is about twice as tall as
/// wide, so a half cell is square), `scale` pixels per half cell, with a margin of the
/// terminal's background around it.
pub fn terminal_picture(cells: &[Vec<char>], theme: Theme, scale: usize) -> String {
    let width = cells.iter().map(Vec::len).max().unwrap_or(0);
    // The blocks are drawn in the terminal's foreground colour.
    let ink_dark = matches!(theme, Theme::Light);
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for line in cells {
        let mut top = Vec::with_capacity(width);
        let mut bottom = Vec::with_capacity(width);
        for x in 0..width {
            let c = line.get(x).copied().unwrap_or(' ');
            let (t, b) = (
                matches!(c, '\u{2580}' | '\u{2588}'),
                matches!(c, '\u{2584}' | '\u{2588}'),
            );
            top.push(t == ink_dark);
            bottom.push(b == ink_dark);
        }
        rows.push(top);
        rows.push(bottom);
    }
    crate::harness_qr::pbm(&rows, 6, !ink_dark, scale)
}

pub use crate::harness_qr::zbar_decode;
