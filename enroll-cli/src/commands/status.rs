//! `pam-totp status`: one user's enrollment, backup codes, last use and lockouts; with `--all`,
//! one row per enrolled user (root). Reports only: nothing is written.

use crate::cli::StatusArgs;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::accounts::Accounts;
use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::State;
use pam_totp_core::store::{Store, UserInfo};
use pam_totp_core::throttle::{self, Lockout};
use pam_totp_core::verify;
use pam_totp_core::{DirectoryProblem, StoreError};
use serde::Serialize;

/// An authenticator as reports show it (no key).
#[derive(Serialize)]
pub struct AuthenticatorInfo {
    /// Name.
    pub name: String,
    /// `totp` (time-based) or `hotp` (counter-based).
    pub kind: &'static str,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: &'static str,
    /// 6 or 8.
    pub digits: u8,
    /// Seconds per code (TOTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// The counter of the next code expected (HOTP): how far the token has been used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    /// The YubiKey token identifier bound to it (HOTP), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Unix time it was added.
    pub added: u64,
    /// Unix time of the last accepted code from it, if known.
    pub last_used: Option<u64>,
}

impl AuthenticatorInfo {
    /// `30 s` for TOTP, `HOTP, next counter 5` (and the token) for HOTP.
    pub fn schedule(&self) -> String {
        match (self.period, self.counter) {
            (Some(p), _) => format!("{p} s"),
            (None, Some(c)) => match &self.token_id {
                Some(id) => format!("HOTP, next counter {c}, token {id}"),
                None => format!("HOTP, next counter {c}"),
            },
            (None, None) => String::new(),
        }
    }
}

/// The last successful second factor.
#[derive(Serialize)]
pub struct LastUseInfo {
    time: u64,
    service: String,
    rhost: String,
    method: String,
}

/// A current lockout.
#[derive(Serialize)]
pub struct LockInfo {
    /// `user` (the per-user ceiling) or the host key.
    pub scope: String,
    /// Seconds left.
    pub seconds: u64,
    /// Unix time it ends.
    pub until: u64,
}

/// Hosts that skip the code for now (config `remember`).
#[derive(Serialize)]
pub struct RememberedInfo {
    /// How many.
    pub count: usize,
    /// Unix time the last of them expires.
    pub latest_until: u64,
}

/// Status of one user.
#[derive(Serialize)]
pub struct UserStatus {
    user: String,
    enrolled: bool,
    secret_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<u64>,
    authenticators: Vec<AuthenticatorInfo>,
    /// `None` when the caller cannot read the state (not root).
    backup_codes_left: Option<usize>,
    backup_codes_total: usize,
    last_success: Option<LastUseInfo>,
    failures: u32,
    lockouts: Vec<LockInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remembered_hosts: Option<RememberedInfo>,
    /// Enrolled, but the authenticators and backup codes are not shown: a user bound to a
    /// directory as themselves may not read their keys, so not their enrollment as a whole.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    details_for_admins: bool,
}

/// The authenticators of `file` with their last use from `state`.
pub fn authenticators(file: &SecretFile, state: Option<&State>) -> Vec<AuthenticatorInfo> {
    file.authenticators
        .iter()
        .map(|a| {
            let current = state.filter(|s| s.enrollment_id == file.enrollment_id);
            AuthenticatorInfo {
                name: a.name.clone(),
                kind: a.kind(),
                algorithm: a.algorithm.as_str(),
                digits: a.digits,
                period: a.hotp.is_none().then_some(a.period),
                counter: a.hotp.as_ref().map(|h| {
                    current.map_or(h.counter, |s| {
                        s.hotp_next(&file.enrollment_id, &a.name, h.counter)
                    })
                }),
                token_id: a
                    .hotp
                    .as_ref()
                    .map(|h| h.token_id.clone())
                    .filter(|t| !t.is_empty()),
                added: a.added,
                last_used: match &a.hotp {
                    None => current
                        .and_then(|s| s.last_step.get(&a.name))
                        .map(|step| step.saturating_mul(a.period)),
                    // A counter has no time: the last login through it, if it was the last one.
                    Some(_) => current
                        .and_then(|s| s.last_success.as_ref())
                        .filter(|l| l.authenticator == a.name)
                        .map(|l| l.time),
                },
            }
        })
        .collect()
}

/// Lockouts in force at `now`.
pub fn lockouts(ctx: &Ctx, state: &State) -> Vec<LockInfo> {
    let policy = &ctx.config.throttle;
    let mut out = Vec::new();
    // The per-user ceiling shows up whichever host is asked about.
    if let Some(Lockout::User { seconds }) = throttle::check(state, "\0none", policy, ctx.now) {
        out.push(LockInfo {
            scope: "user".into(),
            seconds,
            until: ctx.now + seconds,
        });
    }
    let mut only_hosts = state.clone();
    only_hosts.user_failures = Default::default();
    for host in state.host_failures.keys() {
        if let Some(Lockout::Host { seconds }) = throttle::check(&only_hosts, host, policy, ctx.now)
        {
            out.push(LockInfo {
                scope: host.clone(),
                seconds,
                until: ctx.now + seconds,
            });
        }
    }
    out
}

fn gather(ctx: &Ctx, backend: &dyn Store, user: &UserInfo, strict: bool) -> Result<UserStatus> {
    let path = backend.enrollment_location(user).map_err(Error::Store)?;
    let mut status = UserStatus {
        user: user.name.clone(),
        enrolled: false,
        secret_file: path.to_string(),
        error: None,
        since: None,
        authenticators: Vec::new(),
        backup_codes_left: None,
        backup_codes_total: 0,
        last_success: None,
        failures: 0,
        lockouts: Vec::new(),
        remembered_hosts: None,
        details_for_admins: false,
    };
    let file = match backend.load_enrollment(user) {
        Ok(f) => f,
        // The shipped directory access rules let a user see that they are enrolled and their
        // state, never their keys: the authenticators and backup codes are an administrator's.
        Err(StoreError::Directory {
            problem: DirectoryProblem::Access,
            ..
        }) if ctx.directory()
            && !context::is_root()
            && backend.has_enrollment(user).unwrap_or(false) =>
        {
            status.enrolled = true;
            status.details_for_admins = true;
            None
        }
        Err(e) if strict => return Err(Error::from_load(e)),
        Err(e) => {
            status.error = Some(format!("secret file: {} ({e})", e.class()));
            None
        }
    };
    let state = match ctx.peek_state(&user.name) {
        Ok(s) => s,
        Err(e) if strict => return Err(e),
        Err(e) => {
            status.error = Some(e.to_string().lines().next().unwrap_or("").to_string());
            None
        }
    };
    if let Some(file) = &file {
        status.enrolled = true;
        status.since = Some(file.created);
        status.authenticators = authenticators(file, state.as_ref());
        status.backup_codes_total = file.backup.as_ref().map_or(0, |b| b.hashes.len());
        status.backup_codes_left = ctx
            .state_visible()
            .then(|| verify::backup_codes_left(file, state.as_ref().unwrap_or(&State::new())));
    }
    if let Some(state) = &state {
        status.last_success = state.last_success.as_ref().map(|l| LastUseInfo {
            time: l.time,
            service: l.service.clone(),
            rhost: l.rhost.clone(),
            method: l.method.clone(),
        });
        status.failures = state.user_failures.count;
        status.lockouts = lockouts(ctx, state);
        // As the module: only with `remember` on, and not those forgotten (`forget-hosts`).
        if ctx.config.policy.remember > 0 {
            let before = file.as_ref().map_or(0, |f| f.forget_hosts_before);
            let tag = ctx.store.password_tag(&user.name);
            let active: Vec<_> =
                pam_totp_core::policy::active_remembered(state, &tag, before, ctx.now).collect();
            status.remembered_hosts =
                active
                    .iter()
                    .map(|r| r.until)
                    .max()
                    .map(|latest_until| RememberedInfo {
                        count: active.len(),
                        latest_until,
                    });
        }
    }
    Ok(status)
}

/// Runs `status`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &StatusArgs) -> Result<()> {
    if args.all {
        return all(ctx, args.json);
    }
    let user = ctx.target(args.user.user.as_deref())?;
    let s = gather(ctx, &*ctx.store, &user, true)?;
    if args.json {
        return output::print_json(&s).map_err(Error::Io);
    }
    // Names, paths and the state's strings are user-controlled: each goes through
    // `output::safe`.
    let path = &s.secret_file;
    println!("User:           {}", output::safe(&s.user));
    if !s.enrolled {
        println!(
            "Enrolled:       no (no secret file at {})",
            output::safe(path)
        );
        println!(
            "                {}",
            if ctx.config.nullok {
                "Logins skip the code (nullok). Enroll with `pam-totp enroll`."
            } else {
                "Logins that need a code will fail. Enroll with `pam-totp enroll`."
            }
        );
    } else if s.details_for_admins {
        println!("Enrolled:       yes ({})", output::safe(path));
        println!(
            "                Your authenticators and backup codes are read by administrators \
             only (the directory does not give your password your keys): sudo pam-totp status \
             --user {}",
            output::safe(&s.user)
        );
    } else {
        println!(
            "Enrolled:       yes, since {} ({})",
            output::date(s.since.unwrap_or(0)),
            output::safe(path)
        );
        for (i, a) in s.authenticators.iter().enumerate() {
            println!(
                "{}{} ({}, {} digits, {}){}",
                if i == 0 {
                    "Authenticators: "
                } else {
                    "                "
                },
                output::safe(&a.name),
                a.algorithm,
                a.digits,
                a.schedule(),
                a.last_used
                    .map(|t| format!(", last used {}", output::date(t)))
                    .unwrap_or_default()
            );
        }
        match s.backup_codes_left {
            Some(left) => println!(
                "Backup codes:   {left} of {} left{}",
                s.backup_codes_total,
                if left < 3 {
                    " (make new ones: pam-totp backup-codes --regenerate)"
                } else {
                    ""
                }
            ),
            None => println!(
                "Backup codes:   {} issued; which are used, the last login and lock-outs are in \
                 the state, which only root reads (sudo pam-totp status)",
                s.backup_codes_total
            ),
        }
    }
    if let Some(r) = &s.remembered_hosts {
        println!(
            "Remembered:     {} host{} skip{} the code, the last until {} (forget them: \
             pam-totp forget-hosts)",
            r.count,
            if r.count == 1 { "" } else { "s" },
            if r.count == 1 { "s" } else { "" },
            output::date(r.latest_until)
        );
    }
    match &s.last_success {
        Some(l) => println!(
            "Last success:   {} via {}{} ({})",
            output::date(l.time),
            output::safe(&l.service),
            if l.rhost.is_empty() {
                " (local)".to_string()
            } else {
                format!(" from {}", output::safe(&l.rhost))
            },
            output::safe(&l.method)
        ),
        None => println!("Last success:   never recorded"),
    }
    if s.lockouts.is_empty() {
        println!(
            "Lockout:        none{}",
            if s.failures > 0 {
                format!(" ({} recent failed attempts)", s.failures)
            } else {
                String::new()
            }
        );
    } else {
        for (i, l) in s.lockouts.iter().enumerate() {
            println!(
                "{}{} until {} ({} left; root can clear it: pam-totp unlock --user {})",
                if i == 0 {
                    "Lockout:        "
                } else {
                    "                "
                },
                if l.scope == "user" {
                    "all hosts".to_string()
                } else {
                    format!("host {}", output::safe(&l.scope))
                },
                output::date(l.until),
                output::duration(l.seconds),
                output::safe(&s.user)
            );
        }
    }
    Ok(())
}

/// Users worth looking at for `--all`: every account of one pass over the password database,
/// plus every user with a state file that it did not list (directory users whose backend does
/// not enumerate), looked up one by one.
/// With a directory, the users it keeps an enrollment or state for, looked up one by one.
fn candidates(ctx: &Ctx) -> Result<Vec<UserInfo>> {
    let kept = ctx.store.users_with_state().map_err(Error::State)?;
    if ctx.directory() {
        return Ok(kept
            .iter()
            .filter_map(|name| UserInfo::lookup(name).ok().flatten())
            .collect());
    }
    let mut accounts = Accounts::read();
    accounts.add_by_lookup(kept);
    Ok(accounts.into_users())
}

fn all(ctx: &Ctx, json: bool) -> Result<()> {
    context::require_root("status --all")?;
    let mut rows = Vec::new();
    for user in candidates(ctx)? {
        // A cheap existence test first: most accounts have no enrollment.
        if !ctx.store.has_enrollment(&user).unwrap_or(false) {
            continue;
        }
        rows.push(gather(ctx, &*ctx.store, &user, false)?);
    }
    if json {
        return output::print_json(&rows).map_err(Error::Io);
    }
    if rows.is_empty() {
        println!("No enrolled users.");
        return Ok(());
    }
    println!(
        "{:<20} {:>6} {:<24} {:<30} {:<26} LOCKOUT",
        "USER", "BACKUP", "LAST SUCCESS", "FROM", "REMEMBERED"
    );
    for r in &rows {
        let lock = if let Some(e) = &r.error {
            format!("error: {}", output::safe(e))
        } else if r.lockouts.is_empty() {
            "-".to_string()
        } else {
            r.lockouts
                .iter()
                .map(|l| format!("{} {}", output::safe(&l.scope), output::duration(l.seconds)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (when, from) = match &r.last_success {
            Some(l) => (
                output::date(l.time).trim_end_matches(" UTC").to_string(),
                format!(
                    "{} {}",
                    output::safe(&l.service),
                    if l.rhost.is_empty() {
                        "local".into()
                    } else {
                        output::safe(&l.rhost)
                    }
                ),
            ),
            None => ("never".to_string(), "-".to_string()),
        };
        let remembered = match &r.remembered_hosts {
            Some(h) => format!(
                "{} until {}",
                h.count,
                output::date(h.latest_until).trim_end_matches(" UTC")
            ),
            None => "-".to_string(),
        };
        println!(
            "{:<20} {:>6} {:<24} {:<30} {remembered:<26} {lock}",
            output::safe(&r.user),
            if r.enrolled {
                format!(
                    "{}/{}",
                    r.backup_codes_left
                        .map_or_else(|| "?".to_string(), |l| l.to_string()),
                    r.backup_codes_total
                )
            } else {
                "?".into()
            },
            when,
            from
        );
    }
    Ok(())
}
