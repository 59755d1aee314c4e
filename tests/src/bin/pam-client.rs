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

/// The raw libpam surface (hand-written declarations) and a safe [`ffi::Session`] over it.
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{CStr, c_char, c_int, c_void};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    pub const PAM_SUCCESS: c_int = 0;
    const PAM_BUF_ERR: c_int = 5;
    const PAM_CONV_ERR: c_int = 19;
    pub const PAM_SILENT: c_int = 0x8000;
    pub const PAM_ESTABLISH_CRED: c_int = 0x0002;

    pub const PAM_TTY: c_int = 3;
    pub const PAM_RHOST: c_int = 4;
    pub const PAM_AUTHTOK: c_int = 6;
    pub const PAM_RUSER: c_int = 8;

    const PAM_PROMPT_ECHO_OFF: c_int = 1;
    const PAM_PROMPT_ECHO_ON: c_int = 2;
    const PAM_ERROR_MSG: c_int = 3;
    const PAM_TEXT_INFO: c_int = 4;
    /// Linux-PAM's PAM_MAX_NUM_MSG.
    const MAX_NUM_MSG: c_int = 32;

    #[repr(C)]
    struct PamMessage {
        msg_style: c_int,
        msg: *const c_char,
    }

    #[repr(C)]
    struct PamResponse {
        resp: *mut c_char,
        resp_retcode: c_int,
    }

    type ConvFn = extern "C" fn(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata_ptr: *mut c_void,
    ) -> c_int;

    #[repr(C)]
    struct PamConv {
        conv: Option<ConvFn>,
        appdata_ptr: *mut c_void,
    }

    /// Opaque `pam_handle_t`.
    #[repr(C)]
    struct PamHandle {
        _opaque: [u8; 0],
    }

    #[link(name = "pam")]
    unsafe extern "C" {
        fn pam_start(
            service_name: *const c_char,
            user: *const c_char,
            pam_conversation: *const PamConv,
            pamh: *mut *mut PamHandle,
        ) -> c_int;
        fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
        fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
        fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
        fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
        fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
        fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
        fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
        fn pam_getenvlist(pamh: *mut PamHandle) -> *mut *mut c_char;
    }

    /// The style of one conversation message.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Style {
        PromptEchoOff,
        PromptEchoOn,
        ErrorMsg,
        TextInfo,
        Other(c_int),
    }

    /// The application side of the conversation.
    pub trait Converse {
        /// Handles one message; a prompt returns `Ok(Some(answer))`. `Err` aborts the whole
        /// conversation with PAM_CONV_ERR.
        fn message(&mut self, style: Style, text: &[u8]) -> Result<Option<Vec<u8>>, ()>;
    }

    /// One PAM transaction; `pam_end` runs on drop with the status of the last call.
    pub struct Session {
        pamh: *mut PamHandle,
        last: c_int,
        // Linux-PAM copies the pam_conv struct but keeps `appdata_ptr`: both stay alive (and do
        // not move, being boxed) until pam_end.
        _conv: Box<PamConv>,
        _handler: Box<Box<dyn Converse>>,
    }

    impl Session {
        /// `pam_start(service, user, conv)`.
        pub fn start(
            service: &CStr,
            user: &CStr,
            handler: Box<dyn Converse>,
        ) -> Result<Session, c_int> {
            let mut handler = Box::new(handler);
            let appdata: *mut Box<dyn Converse> = &mut *handler;
            let conv = Box::new(PamConv {
                conv: Some(conversation),
                appdata_ptr: appdata.cast(),
            });
            let mut pamh: *mut PamHandle = std::ptr::null_mut();
            // SAFETY: service and user are NUL-terminated strings that outlive the call (libpam
            // copies them); conv points to a valid pam_conv whose appdata (the boxed handler) is
            // kept alive in the returned Session until pam_end; pamh is a valid out pointer.
            let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &*conv, &mut pamh) };
            if rc != PAM_SUCCESS || pamh.is_null() {
                return Err(rc);
            }
            Ok(Session {
                pamh,
                last: rc,
                _conv: conv,
                _handler: handler,
            })
        }

        fn record(&mut self, rc: c_int) -> c_int {
            self.last = rc;
            rc
        }

        /// `pam_set_item` for a string item (PAM_RHOST, PAM_TTY, PAM_RUSER, PAM_AUTHTOK).
        pub fn set_item(&mut self, item: c_int, value: &CStr) -> c_int {
            // SAFETY: pamh comes from a successful pam_start and is not yet ended; value is a
            // NUL-terminated string, which libpam copies for these string items.
            unsafe { pam_set_item(self.pamh, item, value.as_ptr().cast()) }
        }

        /// `pam_putenv("K=V")`.
        pub fn putenv(&mut self, name_value: &CStr) -> c_int {
            // SAFETY: pamh is live (see set_item); libpam copies the NUL-terminated string.
            unsafe { pam_putenv(self.pamh, name_value.as_ptr()) }
        }

        /// `pam_authenticate`.
        pub fn authenticate(&mut self, flags: c_int) -> c_int {
            // SAFETY: pamh is live; the conversation it calls back into is valid (see start).
            let rc = unsafe { pam_authenticate(self.pamh, flags) };
            self.record(rc)
        }

        /// `pam_setcred`.
        pub fn setcred(&mut self, flags: c_int) -> c_int {
            // SAFETY: pamh is live.
            let rc = unsafe { pam_setcred(self.pamh, flags) };
            self.record(rc)
        }

        /// `pam_acct_mgmt`.
        pub fn acct_mgmt(&mut self, flags: c_int) -> c_int {
            // SAFETY: pamh is live.
            let rc = unsafe { pam_acct_mgmt(self.pamh, flags) };
            self.record(rc)
        }

        /// `pam_strerror`, as owned text.
        pub fn strerror(&self, code: c_int) -> String {
            // SAFETY: pamh is live; pam_strerror returns a pointer to a static string (or NULL).
            let text = unsafe { pam_strerror(self.pamh, code) };
            if text.is_null() {
                return String::new();
            }
            // SAFETY: non-NULL results of pam_strerror are static NUL-terminated strings.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        }

        /// `pam_getenvlist`, copied out; the list libpam allocated is freed here.
        pub fn env_list(&self) -> Vec<String> {
            // SAFETY: pamh is live; the result is NULL or a malloc'd, NULL-terminated array of
            // malloc'd strings that the caller owns.
            let list = unsafe { pam_getenvlist(self.pamh) };
            let mut out = Vec::new();
            if list.is_null() {
                return out;
            }
            let mut i = 0;
            loop {
                // SAFETY: the array is NULL-terminated and we stop at the terminator.
                let entry = unsafe { *list.add(i) };
                if entry.is_null() {
                    break;
                }
                // SAFETY: entry is a NUL-terminated string we own; it is not used after free.
                unsafe {
                    out.push(CStr::from_ptr(entry).to_string_lossy().into_owned());
                    libc::free(entry.cast());
                }
                i += 1;
            }
            // SAFETY: the array itself was malloc'd by libpam and is ours to free, once.
            unsafe { libc::free(list.cast()) };
            out
        }
    }

    impl Drop for Session {
        fn drop(&mut self) {
            // SAFETY: pamh comes from pam_start and is ended exactly once, here.
            unsafe { pam_end(self.pamh, self.last) };
        }
    }

    /// Frees a response array built by [`converse`], wiping the answers first.
    ///
    /// # Safety
    /// - `responses` is a calloc'd array of `n` PamResponse whose `resp` fields are NULL or
    ///   malloc'd NUL-terminated strings, and nothing else refers to it.
    unsafe fn free_responses(responses: *mut PamResponse, n: usize) {
        for i in 0..n {
            // SAFETY: i < n, inside the array (caller's contract).
            let r = unsafe { &mut *responses.add(i) };
            if !r.resp.is_null() {
                // SAFETY: resp is a NUL-terminated malloc'd string (caller's contract); it is
                // wiped within its length and freed once.
                unsafe {
                    let len = libc::strlen(r.resp);
                    std::ptr::write_bytes(r.resp, 0, len);
                    libc::free(r.resp.cast());
                }
                r.resp = std::ptr::null_mut();
            }
        }
        // SAFETY: the array was calloc'd and is freed once (caller's contract).
        unsafe { libc::free(responses.cast()) };
    }

    /// The `pam_conv` callback. Never unwinds into libpam.
    extern "C" fn conversation(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata_ptr: *mut c_void,
    ) -> c_int {
        // SAFETY: libpam calls this with the arguments described in pam_conv(3); converse
        // checks them for NULL and range before use.
        let run = || unsafe { converse(num_msg, msg, resp, appdata_ptr) };
        catch_unwind(AssertUnwindSafe(run)).unwrap_or(PAM_CONV_ERR)
    }

    /// # Safety
    /// - `msg` is NULL or points to `num_msg` pointers to valid pam_message structs (the
    ///   Linux-PAM layout) whose `msg` fields are NULL or NUL-terminated strings.
    /// - `resp` is NULL or a valid out pointer.
    /// - `appdata_ptr` is the `*mut Box<dyn Converse>` set up by [`Session::start`].
    unsafe fn converse(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata_ptr: *mut c_void,
    ) -> c_int {
        if num_msg <= 0 || num_msg > MAX_NUM_MSG || msg.is_null() || resp.is_null() {
            return PAM_CONV_ERR;
        }
        if appdata_ptr.is_null() {
            return PAM_CONV_ERR;
        }
        // SAFETY: appdata_ptr is the boxed handler of the live Session (contract); libpam calls
        // the conversation from the thread that runs the PAM call, so there is no other borrow.
        let handler = unsafe { &mut *appdata_ptr.cast::<Box<dyn Converse>>() };
        let n = num_msg as usize;
        // SAFETY: calloc of n small structs; the result is checked for NULL. PAM requires the
        // response array to come from calloc/malloc: the module frees it.
        let responses =
            unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
        if responses.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..n {
            // SAFETY: i < num_msg, and msg holds num_msg pointers (contract).
            let m = unsafe { *msg.add(i) };
            if m.is_null() {
                // SAFETY: responses is our calloc'd array of n entries.
                unsafe { free_responses(responses, n) };
                return PAM_CONV_ERR;
            }
            // SAFETY: m points to a valid pam_message (contract).
            let (style, text_ptr) = unsafe { ((*m).msg_style, (*m).msg) };
            let text: &[u8] = if text_ptr.is_null() {
                b""
            } else {
                // SAFETY: a non-NULL msg field is a NUL-terminated string (contract).
                unsafe { CStr::from_ptr(text_ptr) }.to_bytes()
            };
            let style = match style {
                PAM_PROMPT_ECHO_OFF => Style::PromptEchoOff,
                PAM_PROMPT_ECHO_ON => Style::PromptEchoOn,
                PAM_ERROR_MSG => Style::ErrorMsg,
                PAM_TEXT_INFO => Style::TextInfo,
                other => Style::Other(other),
            };
            let answer = match handler.message(style, text) {
                Ok(answer) => answer,
                Err(()) => {
                    // SAFETY: as above.
                    unsafe { free_responses(responses, n) };
                    return PAM_CONV_ERR;
                }
            };
            if let Some(answer) = answer {
                // A C string ends at the first NUL; the caller rejects NUL bytes earlier.
                let len = answer.iter().position(|&b| b == 0).unwrap_or(answer.len());
                // SAFETY: malloc of len + 1 bytes, checked for NULL below.
                let buf = unsafe { libc::malloc(len + 1) }.cast::<u8>();
                if buf.is_null() {
                    // SAFETY: as above.
                    unsafe { free_responses(responses, n) };
                    return PAM_BUF_ERR;
                }
                // SAFETY: buf has len + 1 bytes; answer has at least len bytes; no overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(answer.as_ptr(), buf, len);
                    *buf.add(len) = 0;
                    (*responses.add(i)).resp = buf.cast();
                    (*responses.add(i)).resp_retcode = 0;
                }
            }
        }
        // SAFETY: resp is a valid out pointer (contract); ownership of the array and its strings
        // passes to the module, which frees them.
        unsafe { *resp = responses };
        PAM_SUCCESS
    }
}

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
    fn message(&mut self, style: Style, text: &[u8]) -> Result<Option<Vec<u8>>, ()> {
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
                return Err(());
            }
        }
        if self.interactive {
            let mut line = Vec::new();
            match std::io::stdin().lock().read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    eprintln!("pam-client: end of input while a prompt waits for an answer");
                    Err(())
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
                    Err(())
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
         [--print-env] SERVICE USER"
    );
    ExitCode::from(2)
}

fn run(opts: Options) -> Result<i32, String> {
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
