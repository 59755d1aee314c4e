//! One `pam_sm_authenticate`, start to end: configuration, user, secret, throttling, the
//! question, and the locked read-verify-consume-write of the state. Generic over [`PamIo`] and
//! [`Clock`], so it runs in unit tests without libpam.

use crate::log::{self, Context, Level};
use crate::outcome::{Method, Outcome};
use crate::pam_io::{Item, PamIo};
use pam::constants::PamResultCode;
use pam_totp_core::config::{self, Config, PassMode};
use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::{LastUse, State};
use pam_totp_core::store::{Backend, LocalFiles, UserInfo};
use pam_totp_core::verify::{self, Reject, Verdict};
use pam_totp_core::{Clock, StoreError, throttle};
use zeroize::Zeroizing;

/// Prompt used with `forward_pass`.
pub const FORWARD_PROMPT: &str = "Password & verification code: ";

/// One candidate answer: the code, and the password in front of it when the user typed both.
struct Attempt {
    code: Zeroizing<Vec<u8>>,
    password: Option<Zeroizing<Vec<u8>>>,
}

/// Runs the whole authentication.
pub fn authenticate<P: PamIo, C: Clock>(io: &mut P, args: &[&str], clock: &C) -> Outcome {
    let mut ctx = Context {
        service: io.item(Item::Service).unwrap_or_default(),
        rhost: io.item(Item::RHost).unwrap_or_default(),
        tty: io.item(Item::Tty).unwrap_or_default(),
        ..Context::default()
    };
    let cfg = match config::load(args, None) {
        Ok(cfg) => cfg,
        Err(e) => {
            log::write(
                &ctx,
                Level::Err,
                &format!("result=error reason=config-error detail=\"{e}\""),
            );
            return Outcome::BadConfig;
        }
    };
    let user = match io.user() {
        Ok(user) => user,
        Err(code) => {
            let code = code as i32;
            log::write(
                &ctx,
                Level::Err,
                &format!("result=error reason=no-user-name code={code}"),
            );
            return Outcome::Conversation(code);
        }
    };
    ctx.user = user;
    if cfg.debug {
        log::write(&ctx, Level::Debug, &format!("debug: {}", cfg.describe()));
    }
    let backend = match cfg.backend() {
        Ok(b) => b,
        Err(e) => {
            log::write(
                &ctx,
                Level::Err,
                &format!("result=error reason=config-error detail=\"{e}\""),
            );
            return Outcome::BadConfig;
        }
    };
    let info = match UserInfo::lookup(&ctx.user) {
        Ok(Some(info)) => info,
        Ok(None) => {
            log::write(
                &ctx,
                Level::Notice,
                "method=none result=failure reason=unknown-user",
            );
            return Outcome::UnknownUser;
        }
        Err(e) => return unusable(&ctx, &e),
    };
    let file = match backend.load_secret(&info) {
        Ok(Some(file)) => file,
        Ok(None) if cfg.nullok => {
            log::write(
                &ctx,
                Level::Notice,
                "method=none result=ignore reason=no-secret",
            );
            return Outcome::NotEnrolled { nullok: true };
        }
        Ok(None) => {
            // Ask anyway, so the answer does not tell a stranger whether the user is enrolled.
            let _ = io.prompt(&cfg.prompt, cfg.echo_verification_code);
            log::write(
                &ctx,
                Level::Notice,
                "method=none result=failure reason=no-secret",
            );
            return Outcome::NotEnrolled { nullok: false };
        }
        Err(e) => return unusable(&ctx, &e),
    };
    let host = throttle::host_key(&ctx.rhost);
    // Tell a throttled client at once, before asking; the check under the lock below decides.
    match backend.peek_state(&ctx.user) {
        Ok(Some(state)) => {
            if let Some(out) = throttled(io, &ctx, &cfg, &state, &host, clock.now()) {
                return out;
            }
        }
        Ok(None) => {}
        Err(e) => return unusable(&ctx, &e),
    }

    let count_first = cfg.pass_mode == PassMode::UseFirstPass;
    if cfg.pass_mode != PassMode::Prompt {
        let attempts = io
            .authtok()
            .map(|tok| split_combined(&tok, &file))
            .unwrap_or_default();
        if !attempts.is_empty() || cfg.pass_mode == PassMode::UseFirstPass {
            let out = check(
                io,
                &ctx,
                &cfg,
                &backend,
                &file,
                &host,
                &attempts,
                clock,
                count_first,
            );
            if matches!(out, Outcome::Accepted(_)) || cfg.pass_mode == PassMode::UseFirstPass {
                return out;
            }
            // try_first_pass: the earlier password was not password+code; ask.
            if !matches!(out, Outcome::Rejected(_)) {
                return out;
            }
        }
    }
    let attempts = if cfg.forward_pass {
        match io.prompt(FORWARD_PROMPT, false) {
            Ok(answer) => split_combined(&answer, &file),
            Err(code) => return conversation_failed(&ctx, code),
        }
    } else {
        match io.prompt(&cfg.prompt, cfg.echo_verification_code) {
            Ok(answer) => vec![Attempt {
                code: answer,
                password: None,
            }],
            Err(code) => return conversation_failed(&ctx, code),
        }
    };
    check(
        io, &ctx, &cfg, &backend, &file, &host, &attempts, clock, true,
    )
}

fn unusable(ctx: &Context, e: &StoreError) -> Outcome {
    log::write(
        ctx,
        Level::Err,
        &format!(
            "method=none result=failure reason={} detail=\"{e}\"",
            e.class()
        ),
    );
    Outcome::Unusable(e.class())
}

fn conversation_failed(ctx: &Context, code: PamResultCode) -> Outcome {
    let code = code as i32;
    log::write(
        ctx,
        Level::Notice,
        &format!("method=none result=failure reason=conversation-error code={code}"),
    );
    Outcome::Conversation(code)
}

fn throttled<P: PamIo>(
    io: &P,
    ctx: &Context,
    cfg: &Config,
    state: &State,
    host: &str,
    now: u64,
) -> Option<Outcome> {
    let lock = throttle::check(state, host, &cfg.throttle, now)?;
    let scope = match lock {
        throttle::Lockout::Host { .. } => "host",
        throttle::Lockout::User { .. } => "user",
    };
    io.error(&format!(
        "Too many failed attempts; try again in {} s.",
        lock.seconds()
    ));
    log::write(
        ctx,
        Level::Warning,
        &format!(
            "method=none result=failure reason=throttled scope={scope} wait={}s",
            lock.seconds()
        ),
    );
    Some(Outcome::Rejected("throttled"))
}

/// Splits "password followed by code" at each length a code can have: TOTP lengths first
/// (cheap), then backup-code lengths (each costs a slow hash, so only plausible ones).
fn split_combined(input: &[u8], file: &SecretFile) -> Vec<Attempt> {
    let mut lengths: Vec<usize> = file
        .authenticators
        .iter()
        .map(|a| usize::from(a.digits))
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    if file.backup.is_some() {
        // A generated code with and without its dash, and 8-digit imported scratch codes.
        lengths.extend([11, 10, 8]);
    }
    let mut out: Vec<Attempt> = Vec::new();
    for len in lengths {
        if len > input.len() || out.iter().any(|a| a.code.len() == len) {
            continue;
        }
        let (password, code) = input.split_at(input.len() - len);
        out.push(Attempt {
            code: Zeroizing::new(code.to_vec()),
            password: Some(Zeroizing::new(password.to_vec())),
        });
    }
    out
}

/// The locked part: read the state, check throttling, verify, consume, write.
#[allow(clippy::too_many_arguments)]
fn check<P: PamIo, C: Clock>(
    io: &mut P,
    ctx: &Context,
    cfg: &Config,
    backend: &LocalFiles,
    file: &SecretFile,
    host: &str,
    attempts: &[Attempt],
    clock: &C,
    count_failure: bool,
) -> Outcome {
    let lock = match backend.lock_state(&ctx.user) {
        Ok(lock) => lock,
        Err(e) => return unusable(ctx, &e),
    };
    let mut state = match backend.load_state(&lock) {
        Ok(state) => state,
        Err(e) => return unusable(ctx, &e),
    };
    let now = clock.now();
    if let Some(out) = throttled(io, ctx, cfg, &state, host, now) {
        return out;
    }
    let mut accepted = None;
    let mut reason = Reject::Malformed;
    for attempt in attempts {
        match verify::verify(&attempt.code, file, &state, now, cfg.window) {
            Verdict::Rejected(r) => reason = worse(reason, r),
            v => {
                accepted = Some((v, attempt));
                break;
            }
        }
    }
    let Some((verdict, attempt)) = accepted else {
        if !count_failure {
            return Outcome::Rejected(reason.class());
        }
        throttle::record_failure(&mut state, host, now);
        if let Err(e) = backend.save_state(&lock, &state) {
            return unusable(ctx, &e);
        }
        log::write(
            ctx,
            Level::Notice,
            &format!("method=totp result=failure reason={}", reason.class()),
        );
        return Outcome::Rejected(reason.class());
    };
    verify::consume(&verdict, file, &mut state);
    throttle::record_success(&mut state, host);
    let (method, detail) = match &verdict {
        Verdict::Totp {
            authenticator,
            offset,
            ..
        } => (
            Method::Totp,
            format!("authenticator={authenticator} step_offset={offset}"),
        ),
        _ => (
            Method::Backup,
            format!("backup_left={}", verify::backup_codes_left(file, &state)),
        ),
    };
    state.last_success = Some(LastUse {
        time: now,
        service: ctx.service.clone(),
        rhost: ctx.rhost.clone(),
        method: method_name(method).into(),
        authenticator: match &verdict {
            Verdict::Totp { authenticator, .. } => authenticator.clone(),
            _ => String::new(),
        },
    });
    if let Err(e) = backend.save_state(&lock, &state) {
        // Not recorded means it could be replayed: refuse.
        log::write(
            ctx,
            Level::Err,
            &format!(
                "method={} result=failure reason=state-write-failed detail=\"{e}\"",
                method_name(method)
            ),
        );
        return Outcome::Unusable("state-write-failed");
    }
    drop(lock);
    if let Some(password) = &attempt.password {
        if io.set_authtok(password).is_err() {
            log::write(ctx, Level::Err, "result=failure reason=set-authtok-failed");
            return Outcome::Unusable("set-authtok-failed");
        }
    }
    log::write(
        ctx,
        Level::Notice,
        &format!("method={} result=success {detail}", method_name(method)),
    );
    if method == Method::Backup {
        let left = verify::backup_codes_left(file, &state);
        io.info(&format!(
            "Backup code accepted; {left} backup code{} left.",
            if left == 1 { "" } else { "s" }
        ));
        if left <= 2 {
            io.info("Make new backup codes with: pam-totp backup-codes --regenerate");
        }
    }
    Outcome::Accepted(method)
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Totp => "totp",
        Method::Backup => "backup",
    }
}

/// The most telling reason among several rejected attempts.
fn worse(a: Reject, b: Reject) -> Reject {
    let rank = |r: Reject| match r {
        Reject::Malformed => 0,
        Reject::WrongCode => 1,
        Reject::BackupUsed => 2,
        Reject::Replayed => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pam_totp_core::backup::BackupSet;
    use pam_totp_core::clock::FixedClock;
    use pam_totp_core::secret::TotpSecret;
    use pam_totp_core::secret_file::{Algorithm, Authenticator};
    use pam_totp_core::store::Replace;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::path::PathBuf;

    const NOW: u64 = 1_800_000_000;

    /// A scripted conversation; asserts on drop that every scripted answer was used.
    struct FakePam {
        user: String,
        rhost: Option<String>,
        authtok: Option<Vec<u8>>,
        set_tok: Option<Vec<u8>>,
        answers: RefCell<VecDeque<Vec<u8>>>,
        prompts: RefCell<Vec<(String, bool)>>,
        infos: RefCell<Vec<String>>,
        errors: RefCell<Vec<String>>,
    }

    impl FakePam {
        fn new(user: &str, answers: &[&[u8]]) -> Self {
            FakePam {
                user: user.into(),
                rhost: Some("198.51.100.7".into()),
                authtok: None,
                set_tok: None,
                answers: RefCell::new(answers.iter().map(|a| a.to_vec()).collect()),
                prompts: RefCell::default(),
                infos: RefCell::default(),
                errors: RefCell::default(),
            }
        }
    }

    impl Drop for FakePam {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                assert!(self.answers.borrow().is_empty(), "unused scripted answers");
            }
        }
    }

    impl PamIo for FakePam {
        fn user(&mut self) -> Result<String, PamResultCode> {
            Ok(self.user.clone())
        }
        fn item(&self, item: Item) -> Option<String> {
            match item {
                Item::Service => Some("unit".into()),
                Item::RHost => self.rhost.clone(),
                Item::Tty => None,
            }
        }
        fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
            self.authtok.clone().map(Zeroizing::new)
        }
        fn set_authtok(&mut self, token: &[u8]) -> Result<(), crate::pam_io::SetItemError> {
            self.set_tok = Some(token.to_vec());
            Ok(())
        }
        fn getenv(&mut self, _name: &str) -> Option<String> {
            None
        }
        fn prompt(&self, message: &str, echo: bool) -> Result<Zeroizing<Vec<u8>>, PamResultCode> {
            self.prompts.borrow_mut().push((message.into(), echo));
            self.answers
                .borrow_mut()
                .pop_front()
                .map(Zeroizing::new)
                .ok_or(PamResultCode::PAM_CONV_ERR)
        }
        fn info(&self, message: &str) {
            self.infos.borrow_mut().push(message.into());
        }
        fn error(&self, message: &str) {
            self.errors.borrow_mut().push(message.into());
        }
    }

    /// A temporary world: config file, secret template and state dir, for the current user.
    struct World {
        dir: PathBuf,
        user: UserInfo,
        config: PathBuf,
        codes: Vec<String>,
    }

    impl World {
        fn new(tag: &str, extra_config: &str) -> World {
            let dir =
                std::env::temp_dir().join(format!("pam-totp-flow-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let user = UserInfo::lookup_uid(nix_euid()).unwrap().unwrap();
            let config = dir.join("pam_totp.conf");
            std::fs::write(
                &config,
                format!(
                    "secret = \"{0}/secrets/${{USER}}.toml\"\nstate_dir = \"{0}/state\"\n{extra_config}",
                    dir.display()
                ),
            )
            .unwrap();
            World {
                dir,
                user,
                config,
                codes: Vec::new(),
            }
        }

        fn arg(&self) -> String {
            format!("config={}", self.config.display())
        }

        fn enroll(&mut self) {
            let (set, codes) = BackupSet::generate_with(3, NOW, 1000).unwrap();
            self.codes = codes.0.iter().map(|c| c.to_string()).collect();
            let file = SecretFile {
                enrollment_id: "e1".into(),
                created: NOW,
                authenticators: vec![Authenticator {
                    name: "default".into(),
                    secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
                    algorithm: Algorithm::Sha1,
                    digits: 6,
                    period: 30,
                    added: NOW,
                    issuer: "h".into(),
                    label: "u".into(),
                }],
                backup: Some(set),
            };
            let cfg = config::load(&[&self.arg()], None).unwrap();
            cfg.backend()
                .unwrap()
                .save_secret(&self.user, &file, Replace::Yes)
                .unwrap();
        }

        fn run(&self, pam: &mut FakePam, extra_args: &[&str], now: u64) -> Outcome {
            let arg = self.arg();
            let mut args = vec![arg.as_str()];
            args.extend_from_slice(extra_args);
            authenticate(pam, &args, &FixedClock(now))
        }
    }

    impl Drop for World {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn nix_euid() -> u32 {
        std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap()
    }

    /// The RFC 6238 SHA-1 test seed's code at `t`, computed by totp-rs directly.
    fn code(t: u64) -> String {
        totp_rs::Builder::new()
            .with_secret(b"12345678901234567890".to_vec())
            .build_noncompliant()
            .generate(t)
            .to_string()
    }

    #[test]
    fn given_current_code_then_accepted_and_replay_refused() {
        let mut w = World::new("ok", "");
        w.enroll();
        let c = code(NOW);
        let mut pam = FakePam::new(&w.user.name, &[c.as_bytes()]);
        assert_eq!(w.run(&mut pam, &[], NOW), Outcome::Accepted(Method::Totp));
        assert_eq!(
            pam.prompts.borrow()[0],
            ("Verification code: ".to_string(), false)
        );
        let mut pam = FakePam::new(&w.user.name, &[c.as_bytes()]);
        assert_eq!(
            w.run(&mut pam, &[], NOW + 1),
            Outcome::Rejected("replayed-code")
        );
        assert!(
            pam.errors.borrow().is_empty(),
            "a wrong code is not announced"
        );
    }

    #[test]
    fn given_backup_code_then_accepted_once_and_count_shown() {
        let mut w = World::new("backup", "");
        w.enroll();
        let b = w.codes[0].clone();
        let mut pam = FakePam::new(&w.user.name, &[b.as_bytes()]);
        assert_eq!(w.run(&mut pam, &[], NOW), Outcome::Accepted(Method::Backup));
        assert_eq!(
            pam.infos.borrow()[0],
            "Backup code accepted; 2 backup codes left."
        );
        let mut pam = FakePam::new(&w.user.name, &[b.as_bytes()]);
        assert_eq!(
            w.run(&mut pam, &[], NOW),
            Outcome::Rejected("backup-code-already-used")
        );
    }

    #[test]
    fn given_failures_then_throttled_with_message_then_released() {
        let mut w = World::new("throttle", "throttle_attempts = 2\nthrottle_delay = 60\n");
        w.enroll();
        for _ in 0..2 {
            let mut pam = FakePam::new(&w.user.name, &[b"000000"]);
            assert!(matches!(w.run(&mut pam, &[], NOW), Outcome::Rejected(_)));
        }
        let mut pam = FakePam::new(&w.user.name, &[]);
        assert_eq!(
            w.run(&mut pam, &[], NOW + 1),
            Outcome::Rejected("throttled")
        );
        assert_eq!(
            pam.errors.borrow()[0],
            "Too many failed attempts; try again in 59 s."
        );
        let mut other = FakePam::new(&w.user.name, &[code(NOW).as_bytes()]);
        other.rhost = Some("203.0.113.9".into());
        assert_eq!(
            w.run(&mut other, &[], NOW + 1),
            Outcome::Accepted(Method::Totp),
            "other hosts unaffected"
        );
        let later = NOW + 61;
        let mut pam = FakePam::new(&w.user.name, &[code(later).as_bytes()]);
        assert_eq!(w.run(&mut pam, &[], later), Outcome::Accepted(Method::Totp));
    }

    #[test]
    fn given_forward_pass_then_one_prompt_and_password_handed_on() {
        let mut w = World::new("fwd", "");
        w.enroll();
        let answer = format!("hunter2{}", code(NOW));
        let mut pam = FakePam::new(&w.user.name, &[answer.as_bytes()]);
        assert_eq!(
            w.run(&mut pam, &["forward_pass"], NOW),
            Outcome::Accepted(Method::Totp)
        );
        assert_eq!(pam.prompts.borrow()[0].0, FORWARD_PROMPT);
        assert_eq!(pam.set_tok.as_deref(), Some(&b"hunter2"[..]));
    }

    #[test]
    fn given_try_first_pass_then_authtok_used_or_prompted() {
        let mut w = World::new("tfp", "");
        w.enroll();
        let mut pam = FakePam::new(&w.user.name, &[]);
        pam.authtok = Some(format!("pw{}", code(NOW)).into_bytes());
        assert_eq!(
            w.run(&mut pam, &["try_first_pass"], NOW),
            Outcome::Accepted(Method::Totp)
        );
        assert_eq!(pam.set_tok.as_deref(), Some(&b"pw"[..]));
        let next = NOW + 30;
        let mut pam = FakePam::new(&w.user.name, &[code(next).as_bytes()]);
        pam.authtok = Some(b"just-a-password".to_vec());
        assert_eq!(
            w.run(&mut pam, &["try_first_pass"], next),
            Outcome::Accepted(Method::Totp)
        );
        let mut pam = FakePam::new(&w.user.name, &[]);
        assert!(matches!(
            w.run(&mut pam, &["use_first_pass"], next + 30),
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn given_no_secret_then_nullok_decides() {
        let w = World::new("nullok", "");
        let mut pam = FakePam::new(&w.user.name, &[]);
        assert_eq!(
            w.run(&mut pam, &["nullok"], NOW),
            Outcome::NotEnrolled { nullok: true }
        );
        let mut pam = FakePam::new(&w.user.name, &[b"123456"]);
        assert_eq!(
            w.run(&mut pam, &[], NOW),
            Outcome::NotEnrolled { nullok: false }
        );
    }

    #[test]
    fn given_bad_arguments_then_service_error() {
        let w = World::new("args", "");
        for bad in ["bogus", "window=99", "config=/nonexistent/pam_totp.conf"] {
            let mut pam = FakePam::new(&w.user.name, &[]);
            assert_eq!(w.run(&mut pam, &[bad], NOW), Outcome::BadConfig, "{bad}");
        }
    }

    #[test]
    fn given_prompt_and_echo_options_then_used() {
        let mut w = World::new("prompt", "");
        w.enroll();
        let mut pam = FakePam::new(&w.user.name, &[code(NOW).as_bytes()]);
        w.run(
            &mut pam,
            &["prompt=Code for the VPN: ", "echo_verification_code"],
            NOW,
        );
        assert_eq!(
            pam.prompts.borrow()[0],
            ("Code for the VPN: ".to_string(), true)
        );
    }
}
