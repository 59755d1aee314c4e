//! `pam-client`: a minimal PAM application linked against the real libpam, so the end-to-end tests
//! can drive `pam_totp.so` exactly as sshd or login would, and script or compute the answers.
//!
//! ```text
//! pam-client [OPTIONS] SERVICE USER
//!   --rhost HOST  --tty TTY  --ruser USER   set PAM_RHOST, PAM_TTY, PAM_RUSER
//!   --authtok TOK                           preset PAM_AUTHTOK; Linux-PAM refuses this item from
//!                                           an application (PAM_BAD_ITEM: exit 2), so tests
//!                                           put `auth optional pam_unix.so` first instead
//!   --env K=V                               pam_putenv before authenticating (repeatable)
//!   --silent                                pass PAM_SILENT
//!   --answer TEXT | --answer-hex HEX        answers to the prompts, in order (repeatable)
//!   --interactive                           read each answer as one line from stdin
//!   --setcred  --acct                       after a successful auth, call pam_setcred /
//!                                           pam_acct_mgmt too
//!   --print-env                             print the PAM environment at the end (ENV K=V)
//!   --print-resources                       print this process's threads and socket fds before
//!                                           pam_start, after the PAM calls and after pam_end
//!                                           (`RESOURCES start|calls|end threads=N sockets=M`)
//! ```
//!
//! Every conversation message is printed as one flushed stdout line: `PROMPT_ECHO_OFF <text>`,
//! `PROMPT_ECHO_ON <text>`, `INFO <text>`, `ERROR <text>` (newlines in the text shown as `\n`).
//! Each libpam call prints `AUTH|SETCRED|ACCT <name> <number>`; the last line is
//! `RESULT <name> <number>` (the first failure, or PAM_SUCCESS). Exit status: 0 on PAM_SUCCESS,
//! 1 on a PAM failure, 2 on a usage error.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// The PAM application surface, shared with the benchmark.
use pam_totp_e2e::pam_app as ffi;

use ffi::{Converse, Session, Style};

/// Linux-PAM return codes by number (security/_pam_types.h).
const CODE_NAMES: &[&str] = &[
    "PAM_SUCCESS",
    "PAM_OPEN_ERR",
    "PAM_SYMBOL_ERR",
    "PAM_SERVICE_ERR",
    "PAM_SYSTEM_ERR",
    "PAM_BUF_ERR",
    "PAM_PERM_DENIED",
    "PAM_AUTH_ERR",
    "PAM_CRED_INSUFFICIENT",
    "PAM_AUTHINFO_UNAVAIL",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_NEW_AUTHTOK_REQD",
    "PAM_ACCT_EXPIRED",
    "PAM_SESSION_ERR",
    "PAM_CRED_UNAVAIL",
    "PAM_CRED_EXPIRED",
    "PAM_CRED_ERR",
    "PAM_NO_MODULE_DATA",
    "PAM_CONV_ERR",
    "PAM_AUTHTOK_ERR",
    "PAM_AUTHTOK_RECOVERY_ERR",
    "PAM_AUTHTOK_LOCK_BUSY",
    "PAM_AUTHTOK_DISABLE_AGING",
    "PAM_TRY_AGAIN",
    "PAM_IGNORE",
    "PAM_ABORT",
    "PAM_AUTHTOK_EXPIRED",
    "PAM_MODULE_UNKNOWN",
    "PAM_BAD_ITEM",
    "PAM_CONV_AGAIN",
    "PAM_INCOMPLETE",
];

fn code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
        .unwrap_or("PAM_UNKNOWN_CODE")
}

/// Prints one protocol line and flushes, so a driving test sees it before we block on stdin.
fn emit(kind: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text)
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r");
    let mut out = std::io::stdout().lock();
    // A closed stdout only loses the transcript; the PAM result still decides the exit status.
    let _ = writeln!(out, "{kind} {text}");
    let _ = out.flush();
}

/// Where answers come from.
struct Answers {
    scripted: VecDeque<Vec<u8>>,
    interactive: bool,
}

impl Converse for Answers {
    fn message(&mut self, style: Style, text: &[u8]) -> Result<Option<Vec<u8>>, ffi::Refused> {
        match style {
            Style::PromptEchoOff => emit("PROMPT_ECHO_OFF", text),
            Style::PromptEchoOn => emit("PROMPT_ECHO_ON", text),
            Style::ErrorMsg => {
                emit("ERROR", text);
                return Ok(None);
            }
            Style::TextInfo => {
                emit("INFO", text);
                return Ok(None);
            }
            Style::Other(n) => {
                emit(&format!("UNSUPPORTED_STYLE_{n}"), text);
                return Err(ffi::Refused);
            }
        }
        if self.interactive {
            let mut line = Vec::new();
            match std::io::stdin().lock().read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    eprintln!("pam-client: end of input while a prompt waits for an answer");
                    Err(ffi::Refused)
                }
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    Ok(Some(line))
                }
            }
        } else {
            match self.scripted.pop_front() {
                Some(answer) => Ok(Some(answer)),
                None => {
                    eprintln!("pam-client: no --answer left for this prompt");
                    Err(ffi::Refused)
                }
            }
        }
    }
}

/// Parsed command line.
#[derive(Default)]
struct Options {
    service: String,
    user: String,
    rhost: Option<String>,
    tty: Option<String>,
    ruser: Option<String>,
    authtok: Option<Vec<u8>>,
    env: Vec<String>,
    silent: bool,
    answers: VecDeque<Vec<u8>>,
    interactive: bool,
    setcred: bool,
    acct: bool,
    print_env: bool,
    print_resources: bool,
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("bad hex in {text:?}"))
        })
        .collect()
}

/// Takes the raw bytes of an argument (answers may be any bytes but NUL).
fn bytes_of(arg: std::ffi::OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    arg.into_vec()
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options::default();
    let mut positional = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--rhost" => opts.rhost = Some(value("--rhost")?.to_string_lossy().into_owned()),
            "--tty" => opts.tty = Some(value("--tty")?.to_string_lossy().into_owned()),
            "--ruser" => opts.ruser = Some(value("--ruser")?.to_string_lossy().into_owned()),
            "--authtok" => opts.authtok = Some(bytes_of(value("--authtok")?)),
            "--env" => opts
                .env
                .push(value("--env")?.to_string_lossy().into_owned()),
            "--silent" => opts.silent = true,
            "--answer" => opts.answers.push_back(bytes_of(value("--answer")?)),
            "--answer-hex" => {
                let bytes = decode_hex(&value("--answer-hex")?.to_string_lossy())?;
                opts.answers.push_back(bytes);
            }
            "--interactive" => opts.interactive = true,
            "--setcred" => opts.setcred = true,
            "--acct" => opts.acct = true,
            "--print-env" => opts.print_env = true,
            "--print-resources" => opts.print_resources = true,
            "-h" | "--help" => return Err(String::new()),
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            _ => positional.push(flag),
        }
    }
    if opts.answers.iter().any(|a| a.contains(&0)) {
        return Err("an answer cannot hold a NUL byte (PAM passes C strings)".into());
    }
    if opts.interactive && !opts.answers.is_empty() {
        return Err("--interactive and --answer exclude each other".into());
    }
    match <[String; 2]>::try_from(positional) {
        Ok([service, user]) => {
            opts.service = service;
            opts.user = user;
            Ok(opts)
        }
        Err(_) => Err("expected exactly two arguments: SERVICE USER".into()),
    }
}

fn c_string(what: &str, bytes: impl Into<Vec<u8>>) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
}

fn usage_error(message: &str) -> ExitCode {
    if !message.is_empty() {
        eprintln!("pam-client: {message}");
    }
    eprintln!(
        "usage: pam-client [--rhost H] [--tty T] [--ruser U] [--authtok TOK] [--env K=V]... \
         [--silent] [--answer TEXT | --answer-hex HEX]... [--interactive] [--setcred] [--acct] \
         [--print-env] [--print-resources] SERVICE USER"
    );
    ExitCode::from(2)
}

/// Counts the entries of a /proc directory that pass `keep` (0 when it cannot be read, which
/// a test comparing counts then notices).
fn count_proc(dir: &str, keep: impl Fn(&std::fs::DirEntry) -> bool) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter(|e| keep(e)).count())
        .unwrap_or(0)
}

/// `RESOURCES <when> threads=N sockets=M`: the threads of this process and its open file
/// descriptors that are sockets (a module must leave neither behind: no thread still running,
/// no connection kept to a directory server).
fn print_resources(when: &str) {
    let threads = count_proc("/proc/self/task", |_| true);
    let sockets = count_proc("/proc/self/fd", |e| {
        std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
    });
    println!("RESOURCES {when} threads={threads} sockets={sockets}");
}

fn run(opts: Options) -> Result<i32, String> {
    if opts.print_resources {
        print_resources("start");
    }
    let service = c_string("SERVICE", opts.service.as_str())?;
    let user = c_string("USER", opts.user.as_str())?;
    let handler = Box::new(Answers {
        scripted: opts.answers,
        interactive: opts.interactive,
    });
    let mut pam = match Session::start(&service, &user, handler) {
        Ok(pam) => pam,
        Err(rc) => {
            println!("START {} {rc}", code_name(rc));
            println!("RESULT {} {rc}", code_name(rc));
            return Ok(rc);
        }
    };
    let items = [
        (
            ffi::PAM_RHOST,
            "--rhost",
            opts.rhost.map(String::into_bytes),
        ),
        (ffi::PAM_TTY, "--tty", opts.tty.map(String::into_bytes)),
        (
            ffi::PAM_RUSER,
            "--ruser",
            opts.ruser.map(String::into_bytes),
        ),
        (ffi::PAM_AUTHTOK, "--authtok", opts.authtok),
    ];
    for (item, name, value) in items {
        if let Some(value) = value {
            let rc = pam.set_item(item, &c_string(name, value)?);
            if rc != ffi::PAM_SUCCESS {
                return Err(format!(
                    "pam_set_item for {name} failed: {} ({})",
                    code_name(rc),
                    pam.strerror(rc)
                ));
            }
        }
    }
    for kv in &opts.env {
        let rc = pam.putenv(&c_string("--env", kv.as_str())?);
        if rc != ffi::PAM_SUCCESS {
            return Err(format!("pam_putenv({kv:?}) failed: {}", code_name(rc)));
        }
    }
    let silent = if opts.silent { ffi::PAM_SILENT } else { 0 };
    let mut result = pam.authenticate(silent);
    println!("AUTH {} {result}", code_name(result));
    if result == ffi::PAM_SUCCESS && opts.setcred {
        result = pam.setcred(silent | ffi::PAM_ESTABLISH_CRED);
        println!("SETCRED {} {result}", code_name(result));
    }
    if result == ffi::PAM_SUCCESS && opts.acct {
        result = pam.acct_mgmt(silent);
        println!("ACCT {} {result}", code_name(result));
    }
    if opts.print_env {
        for entry in pam.env_list() {
            println!("ENV {entry}");
        }
    }
    if opts.print_resources {
        print_resources("calls");
        // pam_end, then count again.
        drop(pam);
        print_resources("end");
    }
    println!("RESULT {} {result}", code_name(result));
    Ok(result)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(message) => return usage_error(&message),
    };
    match run(opts) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(message) => usage_error(&message),
    }
}
