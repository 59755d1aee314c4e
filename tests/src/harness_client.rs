//! Runs `pam-client` (the PAM application of this package) and reads its transcript, so each
//! test states its PAM conversation and expected result in a line or two.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::pam_client_path;

/// How long one pam-client may run before the test kills it and fails (a hang, not a timing
/// assertion: the generous limit only keeps a broken module from blocking CI forever).
pub const CLIENT_LIMIT: Duration = Duration::from_secs(180);

/// A pam-client command line, built step by step.
#[derive(Debug, Clone)]
pub struct Client {
    service: String,
    user: String,
    options: Vec<OsString>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Client {
    /// `pam-client SERVICE USER`.
    pub fn new(service: &str, user: &str) -> Client {
        Client {
            service: service.into(),
            user: user.into(),
            options: Vec::new(),
        }
    }

    fn opt(mut self, name: &str, value: Option<&str>) -> Client {
        self.options.push(name.into());
        if let Some(value) = value {
            self.options.push(value.into());
        }
        self
    }

    /// PAM_RHOST.
    pub fn rhost(self, host: &str) -> Client {
        self.opt("--rhost", Some(host))
    }

    /// PAM_TTY.
    pub fn tty(self, tty: &str) -> Client {
        self.opt("--tty", Some(tty))
    }

    /// PAM_RUSER.
    pub fn ruser(self, user: &str) -> Client {
        self.opt("--ruser", Some(user))
    }

    /// PAM_AUTHTOK (Linux-PAM refuses it from an application: pam-client then exits 2).
    pub fn authtok(self, token: &str) -> Client {
        self.opt("--authtok", Some(token))
    }

    /// `pam_putenv("K=V")`.
    pub fn env(self, key: &str, value: &str) -> Client {
        self.opt("--env", Some(&format!("{key}={value}")))
    }

    /// PAM_SILENT.
    pub fn silent(self) -> Client {
        self.opt("--silent", None)
    }

    /// Calls pam_setcred after a successful authentication.
    pub fn setcred(self) -> Client {
        self.opt("--setcred", None)
    }

    /// Calls pam_acct_mgmt after a successful authentication.
    pub fn acct(self) -> Client {
        self.opt("--acct", None)
    }

    /// Prints the PAM environment at the end (`ENV K=V` lines, from pam_getenvlist).
    pub fn print_env(self) -> Client {
        self.opt("--print-env", None)
    }

    /// Prints the process's thread and socket counts before pam_start, after the PAM calls and
    /// after pam_end ([`PamRun::resources`]).
    pub fn print_resources(self) -> Client {
        self.opt("--print-resources", None)
    }

    /// The next prompt's answer (text).
    pub fn answer(self, text: &str) -> Client {
        self.opt("--answer", Some(text))
    }

    /// The next prompt's answer as raw bytes (no NUL), sent as `--answer-hex`.
    pub fn answer_bytes(self, bytes: &[u8]) -> Client {
        self.opt("--answer-hex", Some(&hex(bytes)))
    }

    /// The command, ready to spawn.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(pam_client_path());
        cmd.args(&self.options).arg(&self.service).arg(&self.user);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs it with the scripted answers and returns the transcript.
    pub fn run(&self) -> PamRun {
        let child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pam-client: {e}"));
        wait_run(child)
    }

    /// Starts it, for tests that start many at once; finish each with [`wait_run`].
    pub fn spawn(&self) -> Child {
        self.command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pam-client: {e}"))
    }

    /// Starts it with `--interactive`: the test reads messages and writes answers.
    pub fn interactive(&self) -> Interactive {
        let mut cmd = self.command();
        cmd.arg("--interactive");
        cmd.stdin(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pam-client: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let stderr = child.stderr.take().map(read_in_background);
        Interactive {
            child,
            stdin,
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }
}

fn read_in_background<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn wait_limited(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if start.elapsed() > CLIENT_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pam-client ran longer than {CLIENT_LIMIT:?}: killed (module hangs?)");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("cannot wait for pam-client: {e}"),
        }
    }
}

/// Waits for a spawned pam-client (at most [`CLIENT_LIMIT`]) and collects its transcript.
pub fn wait_run(mut child: Child) -> PamRun {
    let out = child.stdout.take().map(read_in_background);
    let err = child.stderr.take().map(read_in_background);
    let status = wait_limited(&mut child);
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    PamRun::new(status, &stdout, &stderr)
}

/// What one pam-client run printed and returned.
#[derive(Debug, Clone)]
pub struct PamRun {
    /// Exit status (0 only on PAM_SUCCESS; 1 on a PAM failure; 2 usage; a signal = crash).
    pub status: ExitStatus,
    /// Stdout lines (the protocol: prompts, messages, per-call codes, RESULT).
    pub lines: Vec<String>,
    /// Stderr text.
    pub stderr: String,
}

impl PamRun {
    fn new(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> PamRun {
        PamRun {
            status,
            lines: String::from_utf8_lossy(stdout)
                .lines()
                .map(str::to_string)
                .collect(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
        }
    }

    /// The name in the `RESULT <name> <number>` line, or `""` when there is none.
    pub fn result(&self) -> &str {
        self.lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("RESULT "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or("")
    }

    /// The texts of the messages of one kind (`PROMPT_ECHO_OFF`, `PROMPT_ECHO_ON`, `INFO`,
    /// `ERROR`), in order.
    pub fn messages(&self, kind: &str) -> Vec<&str> {
        let prefix = format!("{kind} ");
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }

    /// The `(threads, sockets)` of a `RESOURCES <when> threads=N sockets=M` line (`start`,
    /// `calls` or `end`; see [`Client::print_resources`]), or `None` without one.
    pub fn resources(&self, when: &str) -> Option<(usize, usize)> {
        let prefix = format!("RESOURCES {when} ");
        let line = self
            .lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))?;
        let value = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        };
        Some((value("threads")?, value("sockets")?))
    }

    /// All prompts as `(kind, text)`.
    pub fn prompts(&self) -> Vec<(&str, &str)> {
        self.lines
            .iter()
            .filter_map(|l| {
                ["PROMPT_ECHO_OFF", "PROMPT_ECHO_ON"]
                    .into_iter()
                    .find_map(|k| l.strip_prefix(k)?.strip_prefix(' ').map(|t| (k, t)))
            })
            .collect()
    }

    /// The whole transcript, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "status: {}\nstdout:\n  {}\nstderr:\n  {}",
            self.status,
            self.lines.join("\n  "),
            self.stderr.trim_end().replace('\n', "\n  ")
        )
    }

    /// Asserts the RESULT name and that the exit status agrees with it (exit 0 only on
    /// PAM_SUCCESS, 1 otherwise: no crash, no usage error).
    #[track_caller]
    pub fn assert_result(&self, expected: &str) {
        assert_eq!(
            self.result(),
            expected,
            "unexpected PAM result\n{}",
            self.transcript()
        );
        let code = if expected == "PAM_SUCCESS" { 0 } else { 1 };
        assert_eq!(
            self.status.code(),
            Some(code),
            "pam-client exit status does not match {expected}\n{}",
            self.transcript()
        );
        self.assert_quiet_module();
    }

    /// Asserts that stdout holds only pam-client's own protocol lines and stderr is empty: a
    /// module must not write to the host's stdout or stderr.
    #[track_caller]
    pub fn assert_quiet_module(&self) {
        const KINDS: &[&str] = &[
            "PROMPT_ECHO_OFF ",
            "PROMPT_ECHO_ON ",
            "INFO ",
            "ERROR ",
            "START ",
            "AUTH ",
            "SETCRED ",
            "ACCT ",
            "ENV ",
            "RESOURCES ",
            "RESULT ",
        ];
        let stray: Vec<&String> = self
            .lines
            .iter()
            .filter(|l| !KINDS.iter().any(|k| l.starts_with(k)))
            .collect();
        assert!(
            stray.is_empty() && self.stderr.is_empty(),
            "output that is not pam-client's (the module wrote to stdout/stderr?)\n{}",
            self.transcript()
        );
    }
}

/// A running `pam-client --interactive`.
#[derive(Debug)]
pub struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    seen: Vec<String>,
}

impl Interactive {
    /// The next stdout line, or `None` at the end of output.
    pub fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.stdout.as_mut()?.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = line.trim_end_matches('\n').to_string();
                self.seen.push(line.clone());
                Some(line)
            }
        }
    }

    /// Reads lines up to and including the next prompt, returning all of them (the last is the
    /// prompt), or `None` if the client ended without prompting again.
    pub fn until_prompt(&mut self) -> Option<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let line = self.next_line()?;
            let prompt = line.starts_with("PROMPT_ECHO_");
            lines.push(line);
            if prompt {
                return Some(lines);
            }
        }
    }

    /// Answers the pending prompt.
    pub fn send(&mut self, answer: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(format!("{answer}\n").as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Closes stdin, waits for the end and returns the whole transcript.
    pub fn finish(mut self) -> PamRun {
        drop(self.stdin.take());
        while self.next_line().is_some() {}
        let status = wait_limited(&mut self.child);
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        PamRun {
            status,
            lines: std::mem::take(&mut self.seen),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts an interactive client and reads its output up to the first hidden prompt; `None` (the
/// client reaped) if it ended before asking.
fn start_at_prompt(client: &Client) -> Option<(Child, BufReader<ChildStdout>)> {
    let mut cmd = client.command();
    cmd.arg("--interactive").stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("pam-client starts");
    let Some(stdout) = child.stdout.take() else {
        let _ = child.wait();
        return None;
    };
    let mut out = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if !matches!(out.read_line(&mut line), Ok(n) if n > 0) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        if line.starts_with("PROMPT_ECHO_OFF") {
            return Some((child, out));
        }
    }
}

/// Starts `n` interactive clients, waits until each shows its prompt, sends `answer` to all,
/// and returns their transcripts' results.
pub fn race(client: &Client, n: usize, answer: &str) -> Vec<String> {
    race_over(&vec![client.clone(); n], answer)
}

/// [`race`] with one client of each of `clients` (other services, users or hosts).
pub fn race_over(clients: &[Client], answer: &str) -> Vec<String> {
    let mut children = Vec::new();
    for client in clients {
        let started = start_at_prompt(client);
        children.push(started.expect("pam-client ended before prompting"));
    }
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .expect("answer sent");
        stdin.flush().expect("flush");
    }
    children
        .into_iter()
        .map(|(mut child, out)| {
            drop(child.stdin.take());
            let lines: Vec<String> = out.lines().map_while(Result::ok).collect();
            let status = child.wait().expect("pam-client exits");
            let run = PamRun {
                status,
                lines,
                stderr: String::new(),
            };
            run.result().to_string()
        })
        .collect()
}

/// How many of `results` are `PAM_SUCCESS`.
pub fn successes(results: &[String]) -> usize {
    results
        .iter()
        .filter(|r| r.as_str() == "PAM_SUCCESS")
        .count()
}

/// One login: waits for the prompt, answers, then SIGKILLs the client after `kill_after_us`
/// (or lets it finish when `None`). Returns the RESULT name if the client got that far.
pub fn login_then_kill(
    client: &Client,
    answer: &str,
    kill_after_us: Option<u64>,
) -> Option<String> {
    let (mut child, out) = start_at_prompt(client)?;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .expect("answer");
    stdin.flush().expect("flush");
    if let Some(us) = kill_after_us {
        std::thread::sleep(Duration::from_micros(us));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let result = out.lines().map_while(Result::ok).find_map(|l| {
        l.strip_prefix("RESULT ")
            .map(|r| r.split(' ').next().unwrap_or("").to_string())
    });
    let status = child.wait().expect("wait");
    if kill_after_us.is_none() {
        assert!(status.code().is_some(), "pam-client crashed: {status:?}");
    }
    result
}
