//! One `pam_sm_authenticate`, start to end: configuration, user, policy, secret, throttling,
//! the question, and the locked read-verify-consume-write of the state. Generic over [`PamIo`]
//! and [`Clock`], so it runs in unit tests without libpam.

use crate::log::{self, Context, Event};
use crate::outcome::{Method, Outcome, Reason};
use crate::pam_io::{Item, PamIo, Pending};
use pam::constants::PamResultCode;
use pam_totp_core::backup::BackupSet;
use pam_totp_core::config::{self, Config, PassMode};
use pam_totp_core::decide::{self, Facts, Loaded, Plan};
use pam_totp_core::policy;
use pam_totp_core::secret::TotpSecret;
use pam_totp_core::secret_file::{self, Algorithm, Authenticator, SecretFile};
use pam_totp_core::state::{LastUse, State};
use pam_totp_core::store::{
    self, BackupUse, Consumed, Counted, HotpUse, Remember, Replace, Store, Success, TotpUse,
    UserInfo,
};
use pam_totp_core::verify::{self, Reject, Verdict};
use pam_totp_core::{Clock, StoreError, qr, throttle};
use zeroize::Zeroizing;

/// Prompt used with `forward_pass`.
pub const FORWARD_PROMPT: &str = "Password & verification code: ";
/// Prompt of the enrollment at first login.
pub const ENROLL_PROMPT: &str = "Code shown by the app: ";
/// The second question of an HOTP resynchronisation (RFC 4226 section 7.4): the first code was
/// further ahead than the look-ahead window, so the code that follows it must come too.
pub const HOTP_RESYNC_PROMPT: &str =
    "Token out of step: press its button again and enter the next code: ";
/// Tries allowed for the first code of an enrollment at login.
const ENROLL_TRIES: usize = 3;

/// One candidate answer: the code, and the password in front of it when the user typed both.
struct Answer {
    code: Zeroizing<Vec<u8>>,
    password: Option<Zeroizing<Vec<u8>>>,
}

/// Everything one authentication works with, once the configuration and user are known.
struct Session<'a, C: Clock> {
    ctx: Context,
    cfg: Config,
    store: Box<dyn Store + Sync>,
    info: UserInfo,
    clock: &'a C,
    host: String,
}

/// Which PAM function is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `pam_sm_authenticate`: the code.
    Auth,
    /// `pam_sm_acct_mgmt`: enrollment at first login, once the whole auth stack succeeded.
    Account,
}

/// The store the configuration names, not connected yet (a directory store connects on its
/// first operation and disconnects when dropped, before the PAM call returns).
fn open_store(cfg: &Config) -> Result<Box<dyn Store + Sync>, pam_totp_core::ConfigError> {
    pam_totp_ldap::open_store(cfg, pam_totp_ldap::Credentials::Service, |_| {})
}

/// Runs the whole authentication.
pub fn authenticate<P: PamIo, C: Clock>(io: &mut P, args: &[&str], clock: &C) -> Outcome {
    match prepare(io, args, clock, Phase::Auth) {
        Ok(session) => session.run(io),
        Err(outcome) => outcome,
    }
}

/// The account phase (`account required pam_totp.so`): with `enroll_at_login`, an unenrolled
/// user who must use a second factor enrolls here. libpam runs it only after the whole auth
/// stack succeeded, so nobody who failed the password can enroll someone else's account.
/// Anything else is not this phase's business: PAM_IGNORE.
pub fn account<P: PamIo, C: Clock>(io: &mut P, args: &[&str], clock: &C) -> Outcome {
    commit(io);
    match prepare(io, args, clock, Phase::Account) {
        Ok(session) => session.account(io),
        Err(outcome) => outcome,
    }
}

/// `pam_sm_setcred`: libpam calls it once the whole auth stack succeeded, so a second factor
/// passed in this handle now clears the counters, trusts the host and remembers it.
pub fn setcred<P: PamIo>(io: &mut P) -> Outcome {
    commit(io);
    Outcome::NotApplicable
}

/// Records the success kept by the auth phase, if any (once: `pam_setcred` and `pam_acct_mgmt`
/// may both come).
fn commit<P: PamIo>(io: &mut P) {
    let Some(p) = io.take_pending() else { return };
    let success = Success {
        host: &p.host,
        last_use: p.last_use.clone(),
        remember: p.remember.clone(),
    };
    if let Err(e) = p.store.record_success(&p.user, &success) {
        // Not recorded: the counters stay and the host is not remembered; nothing is weakened.
        let ctx = Context {
            phase: "setcred",
            user: p.user.clone(),
            service: p.last_use.service.clone(),
            rhost: p.last_use.rhost.clone(),
            ..Context::default()
        };
        let detail = e.to_string();
        log::write(
            &ctx,
            &Event::Broken {
                method: "none",
                reason: Reason::Store(e.class()),
                detail: Some(&detail),
            },
        );
    }
}

/// Asks the question an enrolled user would get, for an account that will not pass this module
/// on a code (unknown, not enrolled, throttled), so that the conversation does not tell them
/// apart. With `forward_pass` the answer is handed on as the password, as for everybody.
fn ask_anyway<P: PamIo>(io: &mut P, cfg: &Config) -> Result<(), PamResultCode> {
    if cfg.forward_pass {
        let answer = io.prompt(FORWARD_PROMPT, false)?;
        let _ = io.set_authtok(&answer);
    } else {
        io.prompt(&cfg.prompt, cfg.echo_verification_code)?;
    }
    Ok(())
}

/// Configuration, user name and account: what both phases need first.
fn prepare<'a, P: PamIo, C: Clock>(
    io: &mut P,
    args: &[&str],
    clock: &'a C,
    phase: Phase,
) -> Result<Session<'a, C>, Outcome> {
    let mut ctx = Context {
        phase: match phase {
            Phase::Auth => "auth",
            Phase::Account => "account",
        },
        service: io.item(Item::Service).unwrap_or_default(),
        rhost: io.item(Item::RHost).unwrap_or_default(),
        tty: io.item(Item::Tty).unwrap_or_default(),
        // Named in a configuration error if the application set it; asked for only after the
        // configuration is read.
        user: io.item(Item::User).unwrap_or_default(),
    };
    let cfg = match config::load(args, None).and_then(|c| c.check_groups().map(|()| c)) {
        Ok(cfg) => cfg,
        Err(e) => return Err(bad_config(&ctx, &e.to_string())),
    };
    let user = match io.user() {
        Ok(user) => user,
        Err(code) => {
            let code = code as i32;
            log::write(
                &ctx,
                &Event::Error {
                    reason: Reason::NoUserName,
                    extra: format!("code={code}"),
                },
            );
            return Err(Outcome::Conversation(code));
        }
    };
    ctx.user = user;
    if cfg.debug {
        log::write(&ctx, &Event::Debug(cfg.describe()));
    }
    let store = match open_store(&cfg) {
        Ok(b) => b,
        Err(e) => return Err(bad_config(&ctx, &e.to_string())),
    };
    let info = match decide::canonical_account(&ctx.user) {
        Ok(Some(info)) => info,
        Ok(None) => {
            // Ask anyway, so the prompt does not tell a stranger which accounts exist.
            if phase == Phase::Auth {
                let _ = ask_anyway(io, &cfg);
            }
            log::write(
                &ctx,
                &Event::Failure {
                    method: "none",
                    reason: Reason::UnknownUser,
                    extra: String::new(),
                },
            );
            return Err(Outcome::UnknownUser);
        }
        Err(e) => return Err(unusable(&ctx, &e)),
    };
    let host = throttle::host_key(&ctx.rhost);
    Ok(Session {
        ctx,
        cfg,
        store,
        info,
        clock,
        host,
    })
}

fn bad_config(ctx: &Context, detail: &str) -> Outcome {
    log::write(
        ctx,
        &Event::Error {
            reason: Reason::ConfigError,
            extra: format!("detail=\"{detail}\""),
        },
    );
    Outcome::BadConfig
}

fn unusable(ctx: &Context, e: &StoreError) -> Outcome {
    let detail = e.to_string();
    log::write(
        ctx,
        &Event::Broken {
            method: "none",
            reason: Reason::Store(e.class()),
            detail: Some(&detail),
        },
    );
    Outcome::Unusable(Reason::Store(e.class()))
}

fn conversation_failed(ctx: &Context, code: PamResultCode) -> Outcome {
    let code = code as i32;
    log::write(
        ctx,
        &Event::Failure {
            method: "none",
            reason: Reason::ConversationError,
            extra: format!("code={code}"),
        },
    );
    Outcome::Conversation(code)
}

impl<C: Clock> Session<'_, C> {
    fn run<P: PamIo>(&self, io: &mut P) -> Outcome {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        let auth_info = io.getenv("SSH_AUTH_INFO_0");
        let facts = Facts::gather(
            cfg,
            &*self.store,
            self.info.clone(),
            &ctx.rhost,
            policy::ssh_publickey_used(auth_info.as_deref()),
            self.clock.now(),
        );
        let file = match decide::decide(cfg, Some(&facts)) {
            Plan::UnknownUser => return Outcome::UnknownUser,
            Plan::Unusable { class, detail, .. } => {
                log::write(
                    ctx,
                    &Event::Broken {
                        method: "none",
                        reason: Reason::Store(class),
                        detail: Some(&detail),
                    },
                );
                return Outcome::Unusable(Reason::Store(class));
            }
            Plan::Exempt { rule, success } => {
                log::write(
                    ctx,
                    &Event::Exempt {
                        success,
                        rule: &rule,
                    },
                );
                return Outcome::Exempt { success };
            }
            Plan::Grace {
                deadline,
                days_left,
            } => {
                io.info(&format!(
                    "Two-factor authentication becomes mandatory on {deadline} ({days_left} day{}). Run `pam-totp enroll`.",
                    if days_left == 1 { "" } else { "s" }
                ));
                log::write(
                    ctx,
                    &Event::Ignored {
                        reason: Reason::NotEnrolledGrace,
                        extra: format!("deadline={deadline}"),
                    },
                );
                return Outcome::NotEnrolled { nullok: true };
            }
            Plan::DeadlinePassed { deadline } => {
                let contact = cfg
                    .policy
                    .enroll_contact
                    .as_deref()
                    .unwrap_or("your administrator");
                io.error(&format!(
                    "Two-factor authentication is mandatory since {deadline} and this account has none. \
                     Ask {contact} to enroll you, or run `pam-totp enroll` from a session that does not require it."
                ));
                log::write(
                    ctx,
                    &Event::Failure {
                        method: "none",
                        reason: Reason::NotEnrolledAfterDeadline,
                        extra: format!("deadline={deadline}"),
                    },
                );
                return Outcome::NotEnrolled { nullok: false };
            }
            Plan::EnrollAtLogin => {
                // Enrolling here would let anyone who reaches this module (even with a wrong
                // password, under `required`) plant their own key: the account phase does it.
                if !io.account_phase_has_module() {
                    return bad_config(
                        ctx,
                        "enroll_at_login needs `account required pam_totp.so` in this service's PAM stack",
                    );
                }
                log::write(
                    ctx,
                    &Event::Ignored {
                        reason: Reason::EnrollInAccountPhase,
                        extra: String::new(),
                    },
                );
                return Outcome::NotEnrolled { nullok: true };
            }
            Plan::NotEnrolled { nullok: true } => {
                // Asked like everybody (the answer does not matter), so that the conversation
                // does not tell enrolled, unenrolled and unknown accounts apart.
                if let Err(code) = ask_anyway(io, cfg) {
                    return conversation_failed(ctx, code);
                }
                log::write(
                    ctx,
                    &Event::Ignored {
                        reason: Reason::NoSecret,
                        extra: String::new(),
                    },
                );
                return Outcome::NotEnrolled { nullok: true };
            }
            Plan::NotEnrolled { nullok: false } => {
                // Ask anyway, so the answer does not tell a stranger whether the user is enrolled.
                let _ = ask_anyway(io, cfg);
                log::write(
                    ctx,
                    &Event::Failure {
                        method: "none",
                        reason: Reason::NoSecret,
                        extra: String::new(),
                    },
                );
                return Outcome::NotEnrolled { nullok: false };
            }
            Plan::Remembered { until } => {
                let left = until.saturating_sub(self.clock.now());
                log::write(
                    ctx,
                    &Event::Success {
                        method: Method::Remembered.name(),
                        extra: format!("expires_in={left}s"),
                    },
                );
                return Outcome::Accepted(Method::Remembered);
            }
            // Asked like everybody, then told (the count before judging decides for parallel
            // logins).
            Plan::Throttled(lockout) => {
                if let Err(code) = ask_anyway(io, cfg) {
                    return conversation_failed(ctx, code);
                }
                return self.throttled_now(io, lockout);
            }
            Plan::AskCode => match facts.enrollment {
                Loaded::Present(file) => file,
                _ => return Outcome::Unusable(Reason::Store("secret-file")),
            },
        };
        let password_tag = facts.password_tag;
        // What the answers are judged against; the compare-and-set that spends a code checks
        // again, so a snapshot that another login has overtaken can only refuse, never accept.
        let snapshot = match facts.state {
            Loaded::Present(state) => state,
            _ => State::new(),
        };
        // The password of an earlier module, tried as password+code. A first pass that holds
        // something shaped like a code is counted and logged like any answer; a plain password
        // is not a guess at a code and is not counted.
        if cfg.pass_mode != PassMode::Prompt {
            let attempts = io
                .authtok()
                .map(|tok| split_combined(&tok, &file))
                .unwrap_or_default();
            if !attempts.is_empty() || cfg.pass_mode == PassMode::UseFirstPass {
                let count = cfg.pass_mode == PassMode::UseFirstPass
                    || attempts.iter().any(|a| code_shaped(&a.code, &file));
                let out = self.check(io, &file, &snapshot, &attempts, count, &password_tag);
                // try_first_pass: if the earlier password was not password+code, ask.
                if cfg.pass_mode == PassMode::UseFirstPass
                    || !matches!(out, Outcome::Rejected(_))
                    || out == Outcome::Rejected(Reason::Throttled)
                {
                    return out;
                }
            }
        }
        let asked = if cfg.forward_pass {
            io.prompt(FORWARD_PROMPT, false)
                .map(|answer| split_combined(&answer, &file))
        } else {
            io.prompt(&cfg.prompt, cfg.echo_verification_code)
                .map(|answer| {
                    vec![Answer {
                        code: answer,
                        password: None,
                    }]
                })
        };
        let attempts = match asked {
            Ok(attempts) => attempts,
            Err(code) => return conversation_failed(ctx, code),
        };
        self.check(io, &file, &snapshot, &attempts, true, &password_tag)
    }

    /// The account phase: enrollment at first login, when the policy says so.
    fn account<P: PamIo>(&self, io: &mut P) -> Outcome {
        let cfg = &self.cfg;
        if !cfg.policy.enroll_at_login {
            return Outcome::NotApplicable;
        }
        let auth_info = io.getenv("SSH_AUTH_INFO_0");
        let facts = Facts::gather(
            cfg,
            &*self.store,
            self.info.clone(),
            &self.ctx.rhost,
            policy::ssh_publickey_used(auth_info.as_deref()),
            self.clock.now(),
        );
        match decide::decide(cfg, Some(&facts)) {
            Plan::EnrollAtLogin => self.enroll_at_login(io, &facts.password_tag),
            Plan::Unusable {
                what: decide::Unusable::Groups,
                class,
                detail,
            } => {
                log::write(
                    &self.ctx,
                    &Event::Broken {
                        method: "none",
                        reason: Reason::Store(class),
                        detail: Some(&detail),
                    },
                );
                Outcome::Unusable(Reason::Store(class))
            }
            // Enrolled (or an unusable file, which the auth phase refused): nothing to do.
            _ => Outcome::NotApplicable,
        }
    }

    /// Refuses a login whose host or user must wait.
    fn throttled_now<P: PamIo>(&self, io: &P, lockout: throttle::Lockout) -> Outcome {
        let scope = match lockout {
            throttle::Lockout::Host { .. } => "host",
            throttle::Lockout::User { .. } => "user",
        };
        io.error(&format!(
            "Too many failed attempts; try again in {} s.",
            lockout.seconds()
        ));
        log::write(
            &self.ctx,
            &Event::Throttled {
                scope,
                wait: lockout.seconds(),
            },
        );
        Outcome::Rejected(Reason::Throttled)
    }

    /// Judges the answers: the attempt is counted first (refused if the host or user must
    /// wait), the answers are verified against the current state, and an accepted code is spent
    /// with one compare-and-set that refuses it if another login spent it meanwhile.
    fn check<P: PamIo>(
        &self,
        io: &mut P,
        file: &SecretFile,
        state: &State,
        attempts: &[Answer],
        count_failure: bool,
        password_tag: &str,
    ) -> Outcome {
        let ctx = &self.ctx;
        let now = self.clock.now();
        if count_failure {
            let attempt = store::Attempt {
                host: &self.host,
                now,
                throttle: &self.cfg.throttle,
            };
            match self.store.record_failure(&self.info.name, &attempt) {
                Ok(Counted::Counted { clock_back, .. }) => {
                    if let Some(seconds) = clock_back {
                        log::write(ctx, &Event::ClockBack { seconds });
                    }
                }
                Ok(Counted::Throttled(lockout)) => return self.throttled_now(io, lockout),
                Err(e) => return unusable(ctx, &e),
            }
        }
        let mut accepted = None;
        let mut reason = Reject::Malformed;
        for attempt in attempts {
            match verify::verify(&attempt.code, file, state, now, self.cfg.windows()) {
                Verdict::Rejected(r) => reason = worse(reason, r),
                v => {
                    accepted = Some((v, attempt));
                    break;
                }
            }
        }
        let refused = |reason: Reject| {
            if count_failure {
                let method = attempted_method(attempts, file, reason);
                log::write(
                    ctx,
                    &Event::Failure {
                        method,
                        reason: Reason::Code(reason),
                        extra: String::new(),
                    },
                );
            }
            Outcome::Rejected(Reason::Code(reason))
        };
        let Some((verdict, attempt)) = accepted else {
            return refused(reason);
        };
        // A token that ran ahead is caught up only with the code that follows (RFC 4226 7.4),
        // asked for in a second prompt (never with use_first_pass, which does not converse).
        let verdict = match verdict {
            Verdict::HotpResync { .. } if self.cfg.pass_mode == PassMode::UseFirstPass => {
                Verdict::Rejected(Reject::WrongCode)
            }
            Verdict::HotpResync {
                authenticator,
                counter,
            } => match io.prompt(HOTP_RESYNC_PROMPT, self.cfg.echo_verification_code) {
                Ok(next) => verify::verify_resync(&next, file, state, &authenticator, counter),
                Err(code) => return conversation_failed(ctx, code),
            },
            v => v,
        };
        let (method, detail) = match &verdict {
            Verdict::Totp {
                authenticator,
                offset,
                ..
            } => (
                Method::Totp,
                format!("authenticator={authenticator} step_offset={offset}"),
            ),
            Verdict::Hotp {
                authenticator,
                offset,
                ..
            } => (
                Method::Hotp,
                format!("authenticator={authenticator} counter_offset={offset}"),
            ),
            _ => (Method::Backup, String::new()),
        };
        let success = self.success(method, &verdict, now, password_tag);
        let refund = count_failure.then_some(self.host.as_str());
        let spent = match &verdict {
            Verdict::Totp {
                authenticator,
                step,
                ..
            } => self.store.consume_totp(
                &self.info.name,
                &TotpUse {
                    enrollment_id: &file.enrollment_id,
                    authenticator,
                    step: *step,
                    refund,
                    success: None,
                },
            ),
            Verdict::Hotp {
                authenticator,
                counter,
                ..
            } => self.store.consume_hotp(
                &self.info.name,
                &HotpUse {
                    enrollment_id: &file.enrollment_id,
                    authenticator,
                    counter_after: counter.saturating_add(1),
                    refund,
                    success: None,
                },
            ),
            Verdict::Backup { index } => match &file.backup {
                Some(set) => self.store.consume_backup(
                    &self.info.name,
                    &BackupUse {
                        enrollment_id: &file.enrollment_id,
                        set_id: &set.set_id,
                        index: *index,
                        refund,
                        success: None,
                    },
                ),
                None => return refused(Reject::WrongCode),
            },
            Verdict::HotpResync { .. } => return refused(Reject::WrongCode),
            Verdict::Rejected(r) => return refused(*r),
        };
        let state = match spent {
            Ok(Consumed::Accepted(state)) => state,
            // Another login spent it between our reading and our writing.
            Ok(Consumed::AlreadyUsed) => {
                return refused(match method {
                    Method::Backup => Reject::BackupUsed,
                    _ => Reject::Replayed,
                });
            }
            Err(e) => {
                // Not recorded means it could be replayed: refuse.
                let detail = e.to_string();
                log::write(
                    ctx,
                    &Event::Broken {
                        method: method.name(),
                        reason: Reason::StateWriteFailed,
                        detail: Some(&detail),
                    },
                );
                return Outcome::Unusable(Reason::StateWriteFailed);
            }
        };
        // Counters, trust and remembered hosts wait for the whole stack's success.
        io.set_pending(Pending {
            store: match open_store(&self.cfg) {
                Ok(store) => store,
                // The same configuration opened a store a moment ago.
                Err(_) => return Outcome::Unusable(Reason::ConfigError),
            },
            user: self.info.name.clone(),
            host: self.host.clone(),
            last_use: success.last_use,
            remember: success.remember,
        });
        if let Some(password) = &attempt.password {
            if io.set_authtok(password).is_err() {
                log::write(
                    ctx,
                    &Event::Broken {
                        method: "none",
                        reason: Reason::SetAuthtokFailed,
                        detail: None,
                    },
                );
                return Outcome::Unusable(Reason::SetAuthtokFailed);
            }
        }
        let left = verify::backup_codes_left(file, &state);
        let detail = if method == Method::Backup {
            format!("backup_left={left}")
        } else {
            detail
        };
        log::write(
            ctx,
            &Event::Success {
                method: method.name(),
                extra: detail,
            },
        );
        if method == Method::Backup {
            io.info(&format!(
                "Backup code accepted; {left} backup code{} left.",
                if left == 1 { "" } else { "s" }
            ));
        }
        if file.backup.is_some() && left <= 2 {
            io.info(&format!(
                "Only {left} backup code{} left. Make new ones with: pam-totp backup-codes --regenerate",
                if left == 1 { "" } else { "s" }
            ));
        }
        Outcome::Accepted(method)
    }

    /// What a success records: the login, and the host to remember (with `remember`).
    fn success(
        &self,
        method: Method,
        verdict: &Verdict,
        now: u64,
        password_tag: &str,
    ) -> Success<'_> {
        let rhost = self.ctx.rhost.trim();
        let period = self.cfg.policy.remember;
        Success {
            host: &self.host,
            last_use: LastUse {
                time: now,
                service: self.ctx.service.clone(),
                rhost: self.ctx.rhost.clone(),
                method: method.name().into(),
                authenticator: match verdict {
                    Verdict::Totp { authenticator, .. } | Verdict::Hotp { authenticator, .. } => {
                        authenticator.clone()
                    }
                    _ => String::new(),
                },
            },
            remember: (period > 0 && policy::rememberable(rhost)).then(|| Remember {
                rhost: rhost.to_string(),
                until: now.saturating_add(period),
                password_tag: password_tag.to_string(),
            }),
        }
    }

    /// Enrollment inside the login conversation: show the key, ask for a first code, and only
    /// when it verifies write the secret and show the backup codes. Any failure leaves nothing.
    fn enroll_at_login<P: PamIo>(&self, io: &mut P, password_tag: &str) -> Outcome {
        let ctx = &self.ctx;
        let now = self.clock.now();
        let issuer = store::host_name();
        let made =
            TotpSecret::generate(pam_totp_core::secret::NEW_SECRET_BYTES).and_then(|secret| {
                let (backup, codes) =
                    BackupSet::generate(pam_totp_core::backup::DEFAULT_COUNT, now)?;
                let id = pam_totp_core::secret::random_id(16)?;
                Ok((secret, backup, codes, id))
            });
        let Ok((secret, backup, codes, enrollment_id)) = made else {
            log::write(
                ctx,
                &Event::Broken {
                    method: Method::Enrolled.name(),
                    reason: Reason::RandomSourceFailed,
                    detail: None,
                },
            );
            return Outcome::Unusable(Reason::RandomSourceFailed);
        };
        let file = SecretFile {
            enrollment_id,
            created: now,
            authenticators: vec![Authenticator {
                name: secret_file::DEFAULT_NAME.into(),
                secret,
                algorithm: Algorithm::Sha1,
                digits: 6,
                period: 30,
                added: now,
                issuer: secret_file::label_from(&issuer),
                label: secret_file::label_from(&self.info.name),
                hotp: None,
            }],
            backup: Some(backup),
            forget_hosts_before: 0,
        };
        let a = &file.authenticators[0];
        let uri = a.otpauth_uri();
        let key = a.secret.to_base32();
        // No control characters through the conversation (OpenSSH's client shows escapes as
        // text): the light modules are the blocks, right on dark terminals (docs/ssh.md).
        let picture = qr::half_blocks(&uri, qr::Ink::LightBlocks).unwrap_or_default();
        io.info("Two-factor authentication is required for this account. Set it up now:");
        const SCAN: &str = "Scan this QR code with your authenticator app (Google Authenticator, \
            Authy, 1Password, ...). It is drawn for a dark terminal background; on a light one it \
            shows inverted: if the app cannot read it, enter the key shown below.\n";
        let mut text = Zeroizing::new(String::with_capacity(SCAN.len() + picture.len()));
        text.push_str(SCAN);
        text.push_str(&picture);
        io.info(&text);
        io.info(&Zeroizing::new(format!(
            "Or enter this key by hand: {}\nAccount: {}:{} (time-based, SHA1, 6 digits, 30 s)",
            qr::grouped_key(&key).as_str(),
            a.issuer,
            a.label
        )));
        let mut matched = None;
        for _ in 0..ENROLL_TRIES {
            let answer = match io.prompt(ENROLL_PROMPT, self.cfg.echo_verification_code) {
                Ok(answer) => answer,
                Err(code) => return conversation_failed(ctx, code),
            };
            match verify::verify(
                &answer,
                &file,
                &State::new(),
                self.clock.now(),
                self.cfg.windows(),
            ) {
                v @ Verdict::Totp { .. } => {
                    matched = Some(v);
                    break;
                }
                _ => {
                    io.error("That code does not match; check the time on the phone and try again.")
                }
            }
        }
        let Some(verdict) = matched else {
            log::write(
                ctx,
                &Event::Failure {
                    method: Method::Enrolled.name(),
                    reason: Reason::EnrollCodeWrong,
                    extra: String::new(),
                },
            );
            return Outcome::Rejected(Reason::EnrollCodeWrong);
        };
        if let Err(e) = self.store.save_enrollment(&self.info, &file, Replace::No) {
            let detail = e.to_string();
            log::write(
                ctx,
                &Event::Broken {
                    method: Method::Enrolled.name(),
                    reason: Reason::Store(e.class()),
                    detail: Some(&detail),
                },
            );
            io.error("The new key could not be saved; nothing was changed.");
            return Outcome::Unusable(Reason::Store(e.class()));
        }
        let Verdict::Totp { step, .. } = verdict else {
            return Outcome::Unusable(Reason::EnrollCodeWrong);
        };
        let mut success = self.success(Method::Enrolled, &verdict, now, password_tag);
        success.last_use.authenticator = secret_file::DEFAULT_NAME.into();
        let spent = self.store.consume_totp(
            &self.info.name,
            &TotpUse {
                enrollment_id: &file.enrollment_id,
                authenticator: secret_file::DEFAULT_NAME,
                step,
                refund: None,
                success: Some(success),
            },
        );
        if !matches!(spent, Ok(Consumed::Accepted(_))) {
            // Undo: an enrollment whose first code could be replayed is not kept.
            let _ = self.store.remove_enrollment(&self.info);
            let detail = match spent {
                Err(e) => e.to_string(),
                _ => "the first code was spent already".into(),
            };
            log::write(
                ctx,
                &Event::Broken {
                    method: Method::Enrolled.name(),
                    reason: Reason::StateWriteFailed,
                    detail: Some(&detail),
                },
            );
            return Outcome::Unusable(Reason::StateWriteFailed);
        }
        // Messages holding the key or the codes are zeroized like the values they hold.
        let list: Vec<&str> = codes.0.iter().map(|c| c.as_str()).collect();
        io.info(&Zeroizing::new(format!(
            "Two-factor authentication is set up. These backup codes each work once if the phone is lost; \
             store them somewhere safe now, they are not shown again:\n{}",
            Zeroizing::new(list.join("\n")).as_str()
        )));
        // A last question carries the codes: sshd shows text that comes before a prompt, while
        // text pending at the end of a successful conversation only reaches its debug log.
        let _ = io.prompt("Press Enter once the backup codes are stored: ", true);
        log::write(
            ctx,
            &Event::Success {
                method: Method::Enrolled.name(),
                extra: String::new(),
            },
        );
        Outcome::Accepted(Method::Enrolled)
    }
}

/// Splits "password followed by code" at each length a code can have: one-time code lengths
/// first (cheap; with a YubiKey's token identifier for HOTP), then backup-code lengths (each
/// costs a slow hash, so only plausible ones).
fn split_combined(input: &[u8], file: &SecretFile) -> Vec<Answer> {
    let mut lengths: Vec<usize> = file
        .authenticators
        .iter()
        .map(|a| usize::from(a.digits))
        .chain(file.authenticators.iter().filter_map(|a| {
            a.hotp
                .as_ref()
                .map(|_| usize::from(a.digits) + secret_file::TOKEN_ID_LEN)
        }))
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    if file.backup.is_some() {
        // A generated code with and without its dash, and 8-digit imported scratch codes.
        lengths.extend([11, 10, 8]);
    }
    let mut out: Vec<Answer> = Vec::new();
    for len in lengths {
        if len > input.len() || out.iter().any(|a| a.code.len() == len) {
            continue;
        }
        let (password, code) = input.split_at(input.len() - len);
        out.push(Answer {
            code: Zeroizing::new(code.to_vec()),
            password: Some(Zeroizing::new(password.to_vec())),
        });
    }
    out
}

/// Whether `code` could be a code of `file` (TOTP digits of a right length, or a backup code's
/// shape).
fn code_shaped(code: &[u8], file: &SecretFile) -> bool {
    pam_totp_core::backup::normalize(code).is_some_and(|n| {
        verify::otp_shaped(&n, file)
            || (file.backup.is_some() && pam_totp_core::backup::has_backup_shape(&n))
    })
}

/// What a refused answer looked like, for the log: `backup` for an answer with the shape of a
/// backup code (and not of a one-time code), else `hotp` when every authenticator is a hardware
/// (HOTP) token and `totp` otherwise; `none` if it was no code at all.
fn attempted_method(attempts: &[Answer], file: &SecretFile, reason: Reject) -> &'static str {
    if reason == Reject::BackupUsed {
        return "backup";
    }
    if reason == Reject::Malformed {
        return "none";
    }
    let totp_shaped = |code: &str| verify::otp_shaped(code, file);
    let backup = attempts.iter().any(|a| {
        pam_totp_core::backup::normalize(&a.code)
            .is_some_and(|n| pam_totp_core::backup::has_backup_shape(&n) && !totp_shaped(&n))
    });
    if backup
        && !attempts
            .iter()
            .any(|a| pam_totp_core::backup::normalize(&a.code).is_some_and(|n| totp_shaped(&n)))
    {
        "backup"
    } else if file.authenticators.iter().all(|a| a.hotp.is_some()) {
        "hotp"
    } else {
        "totp"
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
    use pam_totp_core::store::{Replace, Store};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::path::PathBuf;

    /// 2027-01-15T08:00:00Z.
    const NOW: u64 = 1_800_000_000;

    /// Computes an answer from the messages shown so far.
    type Answerer = fn(&[String]) -> Vec<u8>;

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
        /// Answers computed from the messages shown so far (enrollment at login).
        dynamic: Option<Answerer>,
        env: Option<String>,
        account_line: bool,
        pending: RefCell<Option<Pending>>,
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
                dynamic: None,
                env: None,
                account_line: true,
                pending: RefCell::default(),
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
                Item::User => Some(self.user.clone()),
            }
        }
        fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
            self.authtok.clone().map(Zeroizing::new)
        }
        fn set_authtok(&mut self, token: &[u8]) -> Result<(), crate::pam_io::SetItemError> {
            self.set_tok = Some(token.to_vec());
            Ok(())
        }
        fn getenv(&mut self, name: &str) -> Option<String> {
            (name == "SSH_AUTH_INFO_0")
                .then(|| self.env.clone())
                .flatten()
        }
        fn prompt(&self, message: &str, echo: bool) -> Result<Zeroizing<Vec<u8>>, PamResultCode> {
            self.prompts.borrow_mut().push((message.into(), echo));
            if let Some(f) = self.dynamic {
                return Ok(Zeroizing::new(f(&self.infos.borrow())));
            }
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
        fn account_phase_has_module(&self) -> bool {
            self.account_line
        }
        fn set_pending(&mut self, pending: Pending) {
            *self.pending.borrow_mut() = Some(pending);
        }
        fn take_pending(&mut self) -> Option<Pending> {
            self.pending.borrow_mut().take()
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
                authenticators: vec![test_authenticator("default", None)],
                backup: Some(set),
                forget_hosts_before: 0,
            };
            let cfg = config::load(&[&self.arg()], None).unwrap();
            cfg.store()
                .unwrap()
                .save_enrollment(&self.user, &file, Replace::Yes)
                .unwrap();
        }

        fn run_account(&self, pam: &mut FakePam, extra_args: &[&str], now: u64) -> Outcome {
            let arg = self.arg();
            let mut args = vec![arg.as_str()];
            args.extend_from_slice(extra_args);
            account(pam, &args, &FixedClock(now))
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

    /// The RFC 6238 test key as an authenticator named `name` (HOTP with `hotp`).
    fn test_authenticator(name: &str, hotp: Option<secret_file::Hotp>) -> Authenticator {
        Authenticator {
            name: name.into(),
            secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            added: NOW,
            issuer: "h".into(),
            label: "u".into(),
            hotp,
        }
    }

    #[test]
    fn refused_answers_are_logged_with_the_method_they_looked_like() {
        let answer = |code: &str| Answer {
            code: Zeroizing::new(code.as_bytes().to_vec()),
            password: None,
        };
        let fob = Some(secret_file::Hotp {
            counter: 0,
            token_id: String::new(),
        });
        let mut file = SecretFile {
            enrollment_id: "e1".into(),
            created: NOW,
            authenticators: vec![test_authenticator("fob", fob)],
            backup: None,
            forget_hosts_before: 0,
        };
        let wrong = Reject::WrongCode;
        assert_eq!(attempted_method(&[answer("123456")], &file, wrong), "hotp");
        file.authenticators.push(test_authenticator("phone", None));
        assert_eq!(attempted_method(&[answer("123456")], &file, wrong), "totp");
        assert_eq!(
            attempted_method(&[answer("x")], &file, Reject::Malformed),
            "none"
        );
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
            Outcome::Rejected(Reason::Code(Reject::Replayed))
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
            Outcome::Rejected(Reason::Code(Reject::BackupUsed))
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
        // Asked like everybody, then told.
        let mut pam = FakePam::new(&w.user.name, &[code(NOW).as_bytes()]);
        assert_eq!(
            w.run(&mut pam, &[], NOW + 1),
            Outcome::Rejected(Reason::Throttled)
        );
        assert_eq!(pam.prompts.borrow().len(), 1);
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
        // A wrong first-pass guess followed by an aborted prompt still counts as a failure.
        let before = cfg_state_failures(&w);
        let mut pam = FakePam::new(&w.user.name, &[]);
        pam.authtok = Some(b"pw000000".to_vec());
        assert!(matches!(
            w.run(&mut pam, &["try_first_pass"], next + 5),
            Outcome::Conversation(_)
        ));
        assert_eq!(cfg_state_failures(&w), before + 1);
        let mut pam = FakePam::new(&w.user.name, &[]);
        assert!(matches!(
            w.run(&mut pam, &["use_first_pass"], next + 30),
            Outcome::Rejected(_)
        ));
    }

    fn cfg_state_failures(w: &World) -> u32 {
        let cfg = config::load(&[&w.arg()], None).unwrap();
        cfg.store()
            .unwrap()
            .state(&w.user.name)
            .unwrap()
            .map_or(0, |s| s.user_failures.count)
    }

    #[test]
    fn given_no_secret_then_nullok_decides() {
        let w = World::new("nullok", "");
        // Asked like an enrolled user; the answer does not matter.
        let mut pam = FakePam::new(&w.user.name, &[b"anything"]);
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
    fn given_exempt_user_then_ignored_or_success() {
        let w = World::new("exempt", "");
        let me = w.user.name.clone();
        let arg = format!("exempt_users={me}");
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            w.run(&mut pam, &[&arg], NOW),
            Outcome::Exempt { success: false }
        );
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            w.run(&mut pam, &[&arg, "exempt_result=success"], NOW),
            Outcome::Exempt { success: true }
        );
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            w.run(&mut pam, &["exempt_networks=198.51.100.0/24"], NOW),
            Outcome::Exempt { success: false }
        );
        let mut pam = FakePam::new(&me, &[]);
        pam.env = Some("publickey ssh-ed25519 AAAA".into());
        assert_eq!(
            w.run(&mut pam, &["publickey=skip"], NOW),
            Outcome::Exempt { success: false }
        );
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            w.run(&mut pam, &["exempt_groups=no-such-group-ptt"], NOW),
            Outcome::BadConfig
        );
    }

    #[test]
    fn given_deadline_then_grace_notice_then_refusal() {
        let w = World::new("deadline", "");
        let me = w.user.name.clone();
        // NOW is 2027-01-15.
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            w.run(&mut pam, &["enroll_deadline=2027-01-20"], NOW),
            Outcome::NotEnrolled { nullok: true }
        );
        assert_eq!(
            pam.infos.borrow()[0],
            "Two-factor authentication becomes mandatory on 2027-01-20 (5 days). Run `pam-totp enroll`."
        );
        let mut pam = FakePam::new(&me, &[]);
        let contact = "enroll_contact=the help desk (x1234)";
        assert_eq!(
            w.run(&mut pam, &["enroll_deadline=2027-01-01", contact], NOW),
            Outcome::NotEnrolled { nullok: false }
        );
        assert!(pam.errors.borrow()[0].contains("mandatory since 2027-01-01"));
        assert!(pam.errors.borrow()[0].contains("the help desk (x1234)"));
    }

    #[test]
    fn given_remember_then_same_host_skips_code_until_expiry() {
        let mut w = World::new("remember", "remember = \"1h\"\n");
        w.enroll();
        let me = w.user.name.clone();
        let mut pam = FakePam::new(&me, &[code(NOW).as_bytes()]);
        assert_eq!(w.run(&mut pam, &[], NOW), Outcome::Accepted(Method::Totp));
        // Not before the whole stack succeeded (pam_setcred).
        let mut again = FakePam::new(&me, &[code(NOW + 30).as_bytes()]);
        assert_eq!(
            w.run(&mut again, &[], NOW + 30),
            Outcome::Accepted(Method::Totp)
        );
        assert_eq!(setcred(&mut again), Outcome::NotApplicable);
        assert!(again.pending.borrow().is_none(), "committed once");
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            w.run(&mut pam, &[], NOW + 60),
            Outcome::Accepted(Method::Remembered)
        );
        let mut other = FakePam::new(&me, &[code(NOW + 60).as_bytes()]);
        other.rhost = Some("203.0.113.5".into());
        assert_eq!(
            w.run(&mut other, &[], NOW + 60),
            Outcome::Accepted(Method::Totp)
        );
        let mut local = FakePam::new(&me, &[code(NOW + 90).as_bytes()]);
        local.rhost = None;
        assert_eq!(
            w.run(&mut local, &[], NOW + 90),
            Outcome::Accepted(Method::Totp),
            "never for local logins"
        );
        let later = NOW + 30 + 3601;
        let mut pam = FakePam::new(&me, &[code(later).as_bytes()]);
        assert_eq!(
            w.run(&mut pam, &[], later),
            Outcome::Accepted(Method::Totp),
            "expired"
        );
    }

    #[test]
    fn given_enroll_at_login_then_secret_written_only_after_a_good_code() {
        let w = World::new("enroll", "enroll_at_login = true\n");
        let me = w.user.name.clone();
        // The auth phase defers to the account phase, and refuses if the stack has no such line.
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            w.run(&mut pam, &[], NOW),
            Outcome::NotEnrolled { nullok: true }
        );
        assert!(pam.prompts.borrow().is_empty() && pam.infos.borrow().is_empty());
        let mut pam = FakePam::new(&me, &[]);
        pam.account_line = false;
        assert_eq!(w.run(&mut pam, &[], NOW), Outcome::BadConfig);
        // Without enroll_at_login the account phase has nothing to do.
        let plain = World::new("enroll-off", "");
        let mut pam = FakePam::new(&me, &[]);
        assert_eq!(
            plain.run_account(&mut pam, &[], NOW),
            Outcome::NotApplicable
        );
        let mut pam = FakePam::new(&me, &[b"000000", b"111111", b"222222"]);
        assert_eq!(
            w.run_account(&mut pam, &[], NOW),
            Outcome::Rejected(Reason::EnrollCodeWrong)
        );
        let cfg = config::load(&[&w.arg()], None).unwrap();
        assert!(
            cfg.store()
                .unwrap()
                .load_enrollment(&w.user)
                .unwrap()
                .is_none(),
            "nothing written"
        );
        fn from_key(infos: &[String]) -> Vec<u8> {
            let line = infos
                .iter()
                .find_map(|i| i.strip_prefix("Or enter this key by hand: "))
                .unwrap();
            let key: String = line
                .lines()
                .next()
                .unwrap()
                .chars()
                .filter(|c| *c != ' ')
                .collect();
            let secret = TotpSecret::from_base32(&key).unwrap();
            totp_rs::Builder::new()
                .with_secret(secret.expose().to_vec())
                .build_noncompliant()
                .generate(NOW)
                .to_string()
                .into_bytes()
        }
        let mut pam = FakePam::new(&me, &[]);
        pam.dynamic = Some(from_key);
        assert_eq!(
            w.run_account(&mut pam, &[], NOW),
            Outcome::Accepted(Method::Enrolled)
        );
        assert_eq!(
            pam.prompts.borrow().last().unwrap().0,
            "Press Enter once the backup codes are stored: "
        );
        let file = cfg
            .store()
            .unwrap()
            .load_enrollment(&w.user)
            .unwrap()
            .expect("enrolled");
        assert_eq!(file.backup.as_ref().unwrap().hashes.len(), 10);
        let shown = pam.infos.borrow().last().unwrap().clone();
        assert_eq!(
            shown
                .lines()
                .filter(|l| l.len() == 11 && l.as_bytes()[5] == b'-')
                .count(),
            10
        );
        // The first code cannot be replayed.
        let replay = from_key(&pam.infos.borrow());
        let mut again = FakePam::new(&me, &[&replay]);
        assert_eq!(
            w.run(&mut again, &[], NOW),
            Outcome::Rejected(Reason::Code(Reject::Replayed))
        );
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

    /// RFC 4226 Appendix D: the codes of counters 0 to 9 of the SHA-1 test seed.
    const HOTP: [&str; 10] = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];

    #[test]
    fn given_hotp_token_then_codes_once_and_resync_asks_for_the_next_code() {
        let w = World::new(
            "hotp",
            "hotp_window = 2\nhotp_resync_window = 8\nthrottle = false\n",
        );
        let file = SecretFile {
            enrollment_id: "e1".into(),
            created: NOW,
            authenticators: vec![test_authenticator(
                "fob",
                Some(secret_file::Hotp {
                    counter: 0,
                    token_id: String::new(),
                }),
            )],
            backup: None,
            forget_hosts_before: 0,
        };
        let cfg = config::load(&[&w.arg()], None).unwrap();
        cfg.store()
            .unwrap()
            .save_enrollment(&w.user, &file, Replace::Yes)
            .unwrap();
        let mut pam = FakePam::new(&w.user.name, &[HOTP[1].as_bytes()]);
        assert_eq!(w.run(&mut pam, &[], NOW), Outcome::Accepted(Method::Hotp));
        for code in [HOTP[1], HOTP[0]] {
            let mut pam = FakePam::new(&w.user.name, &[code.as_bytes()]);
            assert_eq!(
                w.run(&mut pam, &[], NOW),
                Outcome::Rejected(Reason::Code(Reject::Replayed))
            );
        }
        // Counter 5 is beyond the look-ahead (2, 3): the next code is asked for.
        let mut pam = FakePam::new(&w.user.name, &[HOTP[5].as_bytes(), HOTP[7].as_bytes()]);
        assert_eq!(
            w.run(&mut pam, &[], NOW),
            Outcome::Rejected(Reason::Code(Reject::WrongCode))
        );
        assert_eq!(pam.prompts.borrow()[1].0, HOTP_RESYNC_PROMPT);
        let mut pam = FakePam::new(&w.user.name, &[HOTP[5].as_bytes(), HOTP[6].as_bytes()]);
        assert_eq!(w.run(&mut pam, &[], NOW), Outcome::Accepted(Method::Hotp));
        let mut pam = FakePam::new(&w.user.name, &[HOTP[6].as_bytes()]);
        assert_eq!(
            w.run(&mut pam, &[], NOW),
            Outcome::Rejected(Reason::Code(Reject::Replayed))
        );
        let mut pam = FakePam::new(&w.user.name, &[HOTP[7].as_bytes()]);
        assert_eq!(w.run(&mut pam, &[], NOW), Outcome::Accepted(Method::Hotp));
        assert_eq!(pam.prompts.borrow().len(), 1);
    }
}
