//! `pam-totp explain --user NAME [--service S] [--rhost IP]`: what the module would do for that
//! login and which rule decides, without authenticating and without writing anything.
//!
//! The facts are gathered by [`pam_totp_core::decide::Facts::gather`] and decided by
//! [`pam_totp_core::decide::decide`], the very functions the module calls (account
//! canonicalisation included); this file only turns the plan into prose, one line per step of
//! the module's order, up to the step that decides.

use crate::cli::ExplainArgs;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::config::Config;
use pam_totp_core::decide::{self, Check, Loaded, Plan};
use pam_totp_core::policy::{self, Require};
use pam_totp_core::state::State;
use pam_totp_core::store::Location;
use pam_totp_core::throttle::{self, Lockout};
use pam_totp_core::{ConfigError, verify};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What the module answers in the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Asks for a code: PAM_SUCCESS with a right one, PAM_AUTH_ERR otherwise.
    AskForCode,
    /// PAM_IGNORE: the rest of the stack decides.
    Ignore,
    /// PAM_SUCCESS without a code.
    Allow,
    /// Not enrolled: shows a new key inside the login and asks for its first code.
    EnrollAtLogin,
    /// PAM_AUTH_ERR without a prompt.
    Deny,
    /// No such account: asked anyway, then PAM_USER_UNKNOWN.
    UnknownUser,
    /// PAM_SERVICE_ERR: the module is misconfigured.
    ServiceError,
}

impl Decision {
    /// The PAM return code(s) it leads to.
    pub fn pam_result(self) -> &'static str {
        match self {
            Decision::AskForCode => "PAM_SUCCESS with a right code, PAM_AUTH_ERR otherwise",
            Decision::Ignore => "PAM_IGNORE",
            Decision::Allow => "PAM_SUCCESS",
            Decision::EnrollAtLogin => {
                "PAM_SUCCESS once the first code of the new key verifies, PAM_AUTH_ERR otherwise"
            }
            Decision::Deny => "PAM_AUTH_ERR",
            Decision::UnknownUser => "PAM_USER_UNKNOWN",
            Decision::ServiceError => "PAM_SERVICE_ERR",
        }
    }

    fn headline(self) -> &'static str {
        match self {
            Decision::AskForCode => "asks for a code",
            Decision::Ignore => "steps aside (the rest of the PAM stack decides)",
            Decision::Allow => "lets the login through without a code",
            Decision::EnrollAtLogin => "enrolls the user inside the login",
            Decision::Deny => "refuses the login without asking",
            Decision::UnknownUser => "asks anyway and then refuses: there is no such account",
            Decision::ServiceError => "fails with a configuration error",
        }
    }
}

/// Everything the report looks at, gathered before anything is decided.
pub struct Facts {
    /// The configuration, or why it failed.
    pub config: std::result::Result<Config, String>,
    /// Where the configuration was read from.
    pub config_path: PathBuf,
    /// The name asked about.
    pub user_name: String,
    /// Service name.
    pub service: String,
    /// Remote host, empty for a local login.
    pub rhost: String,
    /// Where the enrollment is kept.
    pub secret_path: Option<Location>,
    /// What the module would read (`None`: no such account).
    pub login: Option<decide::Facts>,
    /// Unix time.
    pub now: u64,
}

/// One line of the report: the step, whether it passed or decided, and what it found.
type Line = (&'static str, &'static str, String);

/// The report and the decision for `facts`.
pub fn report(f: &Facts) -> (Vec<Line>, Decision, Option<Plan>) {
    let mut lines: Vec<Line> = Vec::new();
    let config = match &f.config {
        Ok(c) => {
            lines.push((
                "configuration",
                "pass",
                match &c.source {
                    Some(p) => format!("{} parses", p.display()),
                    None => format!("{} is absent: defaults apply", f.config_path.display()),
                },
            ));
            c
        }
        Err(e) => {
            lines.push(("configuration", "decides", e.clone()));
            return (lines, Decision::ServiceError, None);
        }
    };
    let plan = decide::decide(config, f.login.as_ref());
    let Some(login) = &f.login else {
        lines.push((
            "account",
            "decides",
            format!(
                "there is no user named `{}`: the module asks anyway, so the prompt does not \
                 tell which accounts exist, then refuses (reason=unknown-user)",
                f.user_name
            ),
        ));
        return (lines, Decision::UnknownUser, Some(plan));
    };
    lines.push((
        "account",
        "pass",
        if login.account.name == f.user_name {
            format!("{} exists (uid {})", login.account.name, login.account.uid)
        } else {
            format!(
                "{} is uid {}, whose account is `{}`: its enrollment and state are used",
                f.user_name, login.account.uid, login.account.name
            )
        },
    ));
    let decision = decision_of(config, &plan);
    let decides = |check: Check| plan.check() == check;
    let policy_line = if decides(Check::Inputs) || decides(Check::Policy) {
        ("policy", "decides", policy_detail(config, f, login, &plan))
    } else {
        ("policy", "pass", policy_pass_detail(&config.policy, f))
    };
    let stop = policy_line.1 == "decides";
    lines.push(policy_line);
    if stop {
        return (lines, decision, Some(plan));
    }
    if decides(Check::Enrollment) {
        lines.push(("enrollment", "decides", unusable_detail(&plan)));
        return (lines, decision, Some(plan));
    }
    lines.push(("enrollment", "pass", enrollment_detail(f, login)));
    lines.push((
        "state",
        "pass",
        match &login.state {
            Loaded::Present(_) => "the state parses".into(),
            _ => "no state yet (first login)".into(),
        },
    ));
    let host = throttle::host_key(&f.rhost);
    let state = login.state.present();
    if let Plan::Throttled(lockout) = &plan {
        let (host_failures, user_failures) = state.map_or((0, 0), |s| {
            (
                s.host_failures.get(&host).map_or(0, |h| h.count),
                s.user_failures.count,
            )
        });
        lines.push((
            "throttle",
            "decides",
            match lockout {
                Lockout::User { seconds } => format!(
                    "the user is locked out from every host for {} more ({user_failures} \
                     failures; `pam-totp unlock --user {}` clears it)",
                    output::duration(*seconds),
                    f.user_name
                ),
                Lockout::Host { seconds } => format!(
                    "{host} is locked out for {} more ({host_failures} failures; `pam-totp \
                     unlock --user {}` clears it)",
                    output::duration(*seconds),
                    f.user_name
                ),
            },
        ));
        return (lines, decision, Some(plan));
    }
    lines.push((
        "throttle",
        "pass",
        if !config.throttle.enabled {
            "throttling is off (`throttle = false`)".into()
        } else {
            match state {
                None => format!("no failures recorded for {host}"),
                Some(s) => format!(
                    "{host} is not locked out ({} recent failures from it, {} in all)",
                    s.host_failures.get(&host).map_or(0, |h| h.count),
                    s.user_failures.count
                ),
            }
        },
    ));
    let left = match (&login.enrollment, state) {
        (Loaded::Present(file), state) => {
            verify::backup_codes_left(file, state.unwrap_or(&State::new()))
        }
        _ => 0,
    };
    lines.push((
        "code",
        "decides",
        format!(
            "prompts {:?}; accepts a current code (±{} step{}) or one of {left} unused backup \
             code{}",
            config.prompt,
            config.window,
            if config.window == 1 { "" } else { "s" },
            if left == 1 { "" } else { "s" }
        ),
    ));
    (lines, decision, Some(plan))
}

/// How `explain` names what a plan does.
fn decision_of(config: &Config, plan: &Plan) -> Decision {
    match plan {
        Plan::UnknownUser => Decision::UnknownUser,
        Plan::Unusable { .. }
        | Plan::DeadlinePassed { .. }
        | Plan::Throttled(_)
        | Plan::NotEnrolled { nullok: false } => Decision::Deny,
        Plan::Exempt { success: true, .. } | Plan::Remembered { .. } => Decision::Allow,
        Plan::Exempt { success: false, .. }
        | Plan::Grace { .. }
        | Plan::NotEnrolled { nullok: true } => Decision::Ignore,
        Plan::EnrollAtLogin if config.policy.enroll_at_login => Decision::EnrollAtLogin,
        Plan::EnrollAtLogin => Decision::Ignore,
        Plan::AskCode => Decision::AskForCode,
    }
}

fn unusable_detail(plan: &Plan) -> String {
    match plan {
        Plan::Unusable {
            what: decide::Unusable::Groups,
            detail,
            ..
        } => format!("the groups of the user cannot be looked up: {detail}"),
        Plan::Unusable {
            what: decide::Unusable::State,
            detail,
            ..
        } => format!("the state file is unusable and is never rewritten: {detail}"),
        Plan::Unusable { detail, class, .. } => {
            format!("the secret file is unusable: {detail} (reason={class})")
        }
        _ => String::new(),
    }
}

fn policy_detail(config: &Config, f: &Facts, login: &decide::Facts, plan: &Plan) -> String {
    let p = &config.policy;
    match plan {
        Plan::Unusable { .. } => unusable_detail(plan),
        Plan::Exempt { rule, success } => format!(
            "{rule}: exempt, no code is asked (exempt_result = \"{}\")",
            if *success { "success" } else { "ignore" }
        ),
        Plan::Grace {
            deadline,
            days_left,
        } => format!(
            "enroll_deadline {deadline}, {days_left} day{} left: not enrolled, the login passes \
             with a notice to run `pam-totp enroll`",
            if *days_left == 1 { "" } else { "s" }
        ),
        Plan::DeadlinePassed { deadline } => format!(
            "enroll_deadline {deadline} has passed and the user is not enrolled: refused with a \
             message naming {}",
            p.enroll_contact.as_deref().unwrap_or("the administrator")
        ),
        Plan::EnrollAtLogin => "enroll_at_login: not enrolled, so the login shows a new key (QR \
                                code) and asks for its first code; the secret is written only once \
                                it verifies"
            .into(),
        Plan::NotEnrolled { nullok: true } => {
            format!("{}, and `nullok` is set (reason=no-secret)", no_secret(f))
        }
        Plan::NotEnrolled { nullok: false } => format!(
            "{}, and no `nullok`, enroll_deadline or enroll_at_login (reason=no-secret)",
            no_secret(f)
        ),
        Plan::Remembered { until } => format!(
            "remember: {} until {} ({} left): a code from this host was accepted recently \
             (method=remembered)",
            login.rhost.trim(),
            output::date(*until),
            output::duration(until.saturating_sub(f.now))
        ),
        _ => String::new(),
    }
}

fn enrollment_detail(f: &Facts, login: &decide::Facts) -> String {
    let path = f
        .secret_path
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_default();
    match &login.enrollment {
        Loaded::Present(file) => format!(
            "{path} holds {} authenticator{} ({})",
            file.authenticators.len(),
            if file.authenticators.len() == 1 {
                ""
            } else {
                "s"
            },
            file.authenticators
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("no secret file at {path}"),
    }
}

fn no_secret(f: &Facts) -> String {
    let path = f
        .secret_path
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_default();
    format!("no secret file at {path}")
}

/// What the policy checked when it lets the code decide.
fn policy_pass_detail(p: &policy::Policy, f: &Facts) -> String {
    let mut checked = Vec::new();
    if !p.exempt_users.is_empty() || !p.exempt_groups.is_empty() || !p.exempt_networks.is_empty() {
        checked.push("no exemption applies".to_string());
    }
    if let Require::Groups(g) = &p.require {
        checked.push(format!("member of require_groups ({})", g.join(", ")));
    }
    if p.publickey == policy::Publickey::Skip {
        checked
            .push("publickey = \"skip\", but no SSH public key succeeded (see --publickey)".into());
    }
    if p.remember > 0 {
        checked.push(if f.rhost.trim().is_empty() {
            "remember: never for a local login".to_string()
        } else {
            format!("remember: {} is not remembered", f.rhost.trim())
        });
    }
    if checked.is_empty() {
        "no policy rule exempts this login (require = \"all\")".into()
    } else {
        checked.join("; ")
    }
}

#[derive(Serialize)]
struct RuleJson {
    rule: &'static str,
    result: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct ExplainJson<'a> {
    user: &'a str,
    service: &'a str,
    rhost: &'a str,
    rules: Vec<RuleJson>,
    decision: Decision,
    pam_result: &'static str,
    /// What the authentication phase returns (the account phase enrolls, with enroll_at_login).
    auth_result: &'static str,
}

/// Gathers the facts for a login, as the module does.
pub fn gather(config_path: Option<&Path>, args: &ExplainArgs) -> Facts {
    let shown_path = config_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(pam_totp_core::config::DEFAULT_CONFIG));
    let mut facts = Facts {
        config: Err(String::new()),
        config_path: shown_path,
        user_name: args.user.clone(),
        service: args.service.clone(),
        rhost: args.rhost.clone().unwrap_or_default(),
        secret_path: None,
        login: None,
        now: pam_totp_core::Clock::now(&pam_totp_core::SystemClock),
    };
    let ctx = match Ctx::load(config_path) {
        Ok(c) => c,
        Err(Error::Config(e)) => {
            facts.config = Err(config_message(&e));
            return facts;
        }
        Err(e) => {
            facts.config = Err(e.to_string().lines().next().unwrap_or("").to_string());
            return facts;
        }
    };
    // As the module: a group named by the policy that does not exist is a configuration error.
    if let Err(e) = ctx.config.check_groups() {
        facts.config = Err(config_message(&e));
        return facts;
    }
    facts.now = ctx.now;
    if let Ok(Some(account)) = decide::canonical_account(&args.user) {
        facts.secret_path = ctx.store.enrollment_location(&account).ok();
        facts.login = Some(decide::Facts::gather(
            &ctx.config,
            &*ctx.store,
            account,
            &facts.rhost,
            args.publickey,
            ctx.now,
        ));
    }
    facts.config = Ok(ctx.config);
    facts
}

fn config_message(e: &ConfigError) -> String {
    e.to_string()
}

/// Runs `explain`.
///
/// # Errors
/// Not root, or output failed.
pub fn run(config_path: Option<&Path>, args: &ExplainArgs) -> Result<()> {
    context::require_root("explain")?;
    let facts = gather(config_path, args);
    let (report, decision, plan) = report(&facts);
    let auth_result = match &plan {
        Some(plan) => plan.result().describe(),
        None => "PAM_SERVICE_ERR",
    };
    if args.json {
        return output::print_json(&ExplainJson {
            user: &facts.user_name,
            service: &facts.service,
            rhost: &facts.rhost,
            rules: report
                .into_iter()
                .map(|(rule, result, detail)| RuleJson {
                    rule,
                    result,
                    detail,
                })
                .collect(),
            decision,
            pam_result: decision.pam_result(),
            auth_result,
        })
        .map_err(Error::Io);
    }
    println!(
        "Login of {} to {} {} (explained, not authenticated):",
        output::safe(&facts.user_name),
        output::safe(&facts.service),
        if facts.rhost.is_empty() {
            "locally".to_string()
        } else {
            format!("from {}", output::safe(&facts.rhost))
        }
    );
    for (rule, result, detail) in &report {
        println!(
            "  {:<9} {:<14} {}",
            format!("[{result}]"),
            rule,
            output::safe(detail)
        );
    }
    println!(
        "Decision: pam_totp {} -> {}.",
        decision.headline(),
        decision.pam_result()
    );
    Ok(())
}
