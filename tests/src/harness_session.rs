//! A program the test talks to as a person would: started with its standard streams piped
//! (or on a pseudo-terminal), its output collected as it comes by reader threads, then
//! waited on for a text, answered a line at a time, and finished with its exit code and all it
//! wrote.
//!
//! The real `/usr/bin/ssh` ([`crate::ssh::RealSsh`]) and the CLI's interactive tests
//! (`enroll-cli/tests/{interactive,ldap}.rs`) drive their programs through this one type, so
//! the deadlines, the messages that show what was seen, and the cleanup after a failed test
//! are the same everywhere. (`pam-client --interactive` speaks a line protocol instead and
//! has its own reader in [`crate::harness_client`].)

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`Session::wait_for`] waits for a text, and [`Session::finish`] for the exit,
/// unless [`Session::patience`] says otherwise.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// How long the reader threads may take to collect the last output once the program exited.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How often the collected output and the program's state are looked at.
const POLL: Duration = Duration::from_millis(20);

/// One of the program's two output streams (on a pseudo-terminal everything is standard output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (on a pseudo-terminal: all the terminal shows).
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "standard output",
            Stream::Stderr => "standard error",
        })
    }
}

/// The bytes of one stream, filled by a reader thread until the end of the stream.
#[derive(Debug)]
struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Collected {
    fn start(mut pipe: impl Read + Send + 'static) -> Collected {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Collected { bytes, reader }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running program, its output collected as it comes. Killed on drop if it still runs, so a
/// failed test leaves no process behind.
#[derive(Debug)]
pub struct Session {
    /// The program's name, for messages.
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Collected,
    stderr: Collected,
    patience: Duration,
    /// Started on a pseudo-terminal: `child` is `script`, the program runs beneath it.
    in_pty: bool,
}

/// A text the program did not show: what it showed instead, and why the wait ended.
#[derive(Debug)]
pub struct NotSeen {
    /// The program's name.
    pub program: String,
    /// The text waited for.
    pub text: String,
    /// The stream it was waited for on.
    pub stream: Stream,
    /// The exit status, when the program ended without showing it (else the deadline passed).
    pub exited: Option<ExitStatus>,
    /// How long it was waited for.
    pub waited: Duration,
    /// Its standard output so far, as text.
    pub stdout: String,
    /// Its standard error so far, as text.
    pub stderr: String,
}

impl fmt::Display for NotSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} never showed {:?} on its {} ",
            self.program, self.text, self.stream
        )?;
        match self.exited {
            Some(status) => write!(f, "(it exited, {status})")?,
            None => write!(f, "(waited {:?})", self.waited)?,
        }
        write!(
            f,
            "; standard output so far:\n{}\nstandard error so far:\n{}",
            self.stdout, self.stderr
        )
    }
}

impl std::error::Error for NotSeen {}

/// How a [`Session`] ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it, or it was killed for not ending in time.
    pub code: Option<i32>,
    /// Everything it wrote to standard output (on a pseudo-terminal: all the terminal showed).
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

impl Finished {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// `arg` quoted for `sh -c` (single quotes; an embedded `'` closes, escapes and reopens them).
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

impl Session {
    /// Starts `cmd` with its standard input, output and error piped (whatever `cmd` said about
    /// them is replaced).
    pub fn spawn(cmd: &mut Command) -> Session {
        let name = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = Collected::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Collected::start(child.stderr.take().expect("stderr is piped"));
        Session {
            name,
            child,
            stdin,
            stdout,
            stderr,
            patience: DEFAULT_PATIENCE,
            in_pty: false,
        }
    }

    /// Starts `argv` (a program and its arguments) on a pseudo-terminal, its controlling
    /// terminal, with `env` added to the environment: util-linux `script` runs it, passes
    /// what is written to the session on as typed input, and copies all the terminal shows to
    /// standard output (`-f`, as it comes); its exit code is the program's (`-e`).
    ///
    /// `script` hands the command line to `$SHELL -c`; the shell is fixed to `/bin/sh` and
    /// told to `exec` the program, so the program is `script`'s only child whatever shell the
    /// caller's environment names (dash, unlike bash, would otherwise stay in between).
    pub fn spawn_in_pty(argv: &[&str], env: &[(&str, &str)]) -> Session {
        let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let line = format!("exec {}", line.join(" "));
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-f", "-e", "-c", &line, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .envs(env.iter().copied());
        let mut session = Session::spawn(&mut cmd);
        session.in_pty = true;
        if let Some(program) = argv.first() {
            session.name = (*program).to_string();
        }
        session
    }

    /// Waits up to `limit` (instead of [`DEFAULT_PATIENCE`]) for each text and for the exit.
    pub fn patience(mut self, limit: Duration) -> Session {
        self.patience = limit;
        self
    }

    /// The process id of the started process (`script`'s, on a pseudo-terminal).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Every byte of `stream` so far.
    pub fn output(&self, stream: Stream) -> Vec<u8> {
        match stream {
            Stream::Stdout => self.stdout.snapshot(),
            Stream::Stderr => self.stderr.snapshot(),
        }
    }

    /// `stream` so far, as text (invalid UTF-8 replaced).
    pub fn text(&self, stream: Stream) -> String {
        String::from_utf8_lossy(&self.output(stream)).into_owned()
    }

    /// Waits until `stream` contains `text`, and returns that stream as text. Ends early when
    /// the program exits without having shown it.
    ///
    /// # Errors
    ///
    /// [`NotSeen`] when the program exited, or the patience ran out, before `text` appeared.
    pub fn try_wait_for(&mut self, stream: Stream, text: &str) -> Result<String, Box<NotSeen>> {
        let start = Instant::now();
        loop {
            let shown = self.text(stream);
            if shown.contains(text) {
                return Ok(shown);
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() {
                // What it wrote just before it ended may still be on its way.
                self.drain();
                let shown = self.text(stream);
                if shown.contains(text) {
                    return Ok(shown);
                }
            }
            if exited.is_some() || start.elapsed() > self.patience {
                return Err(Box::new(NotSeen {
                    program: self.name.clone(),
                    text: text.to_string(),
                    stream,
                    exited,
                    waited: start.elapsed(),
                    stdout: self.text(Stream::Stdout),
                    stderr: self.text(Stream::Stderr),
                }));
            }
            std::thread::sleep(POLL);
        }
    }

    /// [`Session::try_wait_for`], panicking (at the caller's line) with what was seen when the
    /// text never comes.
    #[track_caller]
    pub fn wait_for(&mut self, stream: Stream, text: &str) -> String {
        match self.try_wait_for(stream, text) {
            Ok(shown) => shown,
            Err(e) => panic!("{e}"),
        }
    }

    /// Writes `line` and a newline to the program's standard input (typing it and Enter, on
    /// a pseudo-terminal).
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("standard input is still open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot write to {}: {e}", self.name));
    }

    /// Closes the program's standard input: it reads the end of input.
    pub fn close_input(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits for the program to exit (killing it when the patience runs out), then closes its
    /// standard input and returns its exit code and everything it wrote. Standard input stays
    /// open until then because `script` passes the end of its own input on to the program as
    /// an end of input on the terminal; call [`Session::close_input`] first for a program that
    /// should read it.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + self.patience;
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            if Instant::now() > deadline {
                self.kill();
                break None;
            }
            std::thread::sleep(POLL);
        };
        self.close_input();
        self.drain();
        Finished {
            code,
            stdout: self.output(Stream::Stdout),
            stderr: self.output(Stream::Stderr),
        }
    }

    /// Gives the reader threads a moment to reach the end of both streams after the exit.
    fn drain(&self) {
        let deadline = Instant::now() + DRAIN_LIMIT;
        while !(self.stdout.reader.is_finished() && self.stderr.reader.is_finished())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Ends the program at once, as a vanished client or a killed process ends: on a
    /// pseudo-terminal the program and everything it started first. Killing `script` alone
    /// would close the terminal under them; the program then reads the end of input and may
    /// act on it (ssh sends it to the server as an empty answer) before the hang-up reaches it.
    fn kill(&mut self) {
        if self.in_pty {
            // All of them are found before any is killed: a killed parent's children are
            // handed to init and no longer show whose they were. `script` is not reaped yet,
            // and none of them is reaped by us, so no id can have been reused meanwhile.
            for pid in descendants_of(self.child.id()) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes `pid` started, their children, and so on (from one look at /proc).
fn descendants_of(pid: u32) -> Vec<nix::unistd::Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (process, parent) for every process.
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // After the command name in parentheses: state, then the parent's id.
            let rest = &stat[stat.rfind(')')? + 1..];
            Some((p, rest.split_whitespace().nth(1)?.parse::<u32>().ok()?))
        })
        .collect();
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|&&(_, of)| of == parent)
                .map(|&(p, _)| p),
        );
        next += 1;
    }
    found
        .into_iter()
        .skip(1)
        .filter_map(|p| i32::try_from(p).ok().map(nix::unistd::Pid::from_raw))
        .collect()
}

impl Drop for Session {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Session {
        Session::spawn(Command::new("sh").args(["-c", script]))
    }

    #[test]
    fn given_a_line_sent_then_the_answer_is_seen_and_finish_has_the_code_and_both_streams() {
        let mut s = sh("read line; echo \"got $line\"; echo oops >&2; exit 3");
        s.send("a b");
        assert_eq!(s.wait_for(Stream::Stdout, "got a b"), "got a b\n");
        s.wait_for(Stream::Stderr, "oops");
        let done = s.finish();
        assert_eq!(done.code, Some(3));
        assert_eq!(done.stdout_text(), "got a b\n");
        assert_eq!(done.stderr_text(), "oops\n");
    }

    #[test]
    fn given_input_closed_then_the_program_reads_the_end_of_input() {
        let mut s = sh("if read line; then exit 1; else echo eof; fi");
        s.close_input();
        let done = s.finish();
        assert_eq!((done.code, done.stdout_text().as_str()), (Some(0), "eof\n"));
    }

    #[test]
    fn given_an_exit_without_the_text_then_the_wait_ends_at_once_and_shows_what_was_written() {
        let mut s = sh("echo hello; echo trouble >&2; exit 5");
        let start = Instant::now();
        let e = s
            .try_wait_for(Stream::Stdout, "never printed")
            .expect_err("the text never comes");
        assert!(start.elapsed() < Duration::from_secs(10), "{e}");
        assert_eq!(e.exited.and_then(|s| s.code()), Some(5));
        let message = e.to_string();
        assert!(
            message
                .starts_with("sh never showed \"never printed\" on its standard output (it exited"),
            "{message}"
        );
        assert!(
            message.contains("hello") && message.contains("trouble"),
            "{message}"
        );
    }

    #[test]
    fn given_no_text_within_the_patience_then_not_seen_and_a_hung_program_is_killed() {
        let mut s = sh("exec sleep 30").patience(Duration::from_millis(300));
        let e = s
            .try_wait_for(Stream::Stdout, "anything")
            .expect_err("sleep prints nothing");
        assert!(e.exited.is_none(), "{e}");
        assert!(e.waited >= Duration::from_millis(300), "{e}");
        let start = Instant::now();
        let done = s.finish();
        assert_eq!(done.code, None, "killed, so no exit code");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn given_a_pty_then_the_program_has_a_terminal_and_quoted_arguments_arrive_whole() {
        let mut s = Session::spawn_in_pty(
            &[
                "sh",
                "-c",
                "test -t 0 && echo \"on a tty, TERM=$TERM, $1\"; read line; echo \"[$line]\"; exit 4",
                "sh",
                "it's one argument",
            ],
            &[("TERM", "dumb")],
        );
        s.wait_for(Stream::Stdout, "on a tty, TERM=dumb, it's one argument");
        s.send("typed");
        s.wait_for(Stream::Stdout, "[typed]");
        let done = s.finish();
        assert_eq!(done.code, Some(4), "{}", done.stdout_text());
    }

    /// Drops a pty session running `program_line` (through `sh -c`), which prints `waiting`
    /// and leaves a process that ignores SIGHUP, waits for a line and would create `$ACTED` on
    /// the end of input. Returns whether any process of it outlived the drop, and whether
    /// anything acted.
    fn drop_while_waiting(program_line: &str) -> (bool, bool) {
        let dir = crate::harness::TempDir::new("session-kill");
        let acted = dir.join("acted");
        let acted_path = acted.display().to_string();
        let mut s = Session::spawn_in_pty(&["sh", "-c", program_line], &[("ACTED", &acted_path)]);
        s.wait_for(Stream::Stdout, "waiting");
        let started = descendants_of(s.id());
        assert!(!started.is_empty(), "sh runs under script");
        drop(s);
        std::thread::sleep(Duration::from_millis(500));
        // Gone, or dead and waiting for whoever inherited it to reap it.
        let outlived = started.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        });
        (outlived, acted.exists())
    }

    /// Like ssh at a prompt: answers the end of input, and outlives the hang-up.
    const READER: &str = "trap '' HUP; echo waiting; read line; touch \"$ACTED\"; sleep 5";

    #[test]
    fn given_a_pty_session_dropped_then_the_program_is_killed_before_it_can_act_on_the_hang_up() {
        assert_eq!(drop_while_waiting(READER), (false, false));
    }

    #[test]
    fn given_a_pty_session_dropped_then_what_the_program_started_is_killed_before_it_acts_too() {
        // The reader is the program's child (`; :` keeps the shell from exec-ing it).
        let line = format!("sh -c {}; :", shell_quote(READER));
        assert_eq!(drop_while_waiting(&line), (false, false));
    }
}
