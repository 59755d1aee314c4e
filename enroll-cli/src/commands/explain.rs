//! `pam-totp explain --user NAME [--service S] [--rhost IP]`: what the module would do for that
//! login and which rule decides, without authenticating and without writing anything.
//!
//! The facts (configuration, account, secret file, state) are gathered once; then an ordered
//! list of [`Rule`]s is asked in turn, and the first one that decides wins, as in the module.
//! The policy (exemptions, required groups, deadline, enrollment at login, remembered hosts,
//! publickey) is decided by [`pam_totp_core::policy::evaluate`], the very function the module
//! calls, from the same facts the module gathers.

use crate::cli::ExplainArgs;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::config::Config;
use pam_totp_core::policy::{self, ExemptResult, Require};
use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::State;
use pam_totp_core::store::{self, Backend, UserInfo};
use pam_totp_core::throttle::{self, Lockout};
use pam_totp_core::{ConfigError, StoreError, verify};
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
            Decision::ServiceError => "fails with a configuration error",
        }
    }
}

/// What one rule found.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The rule does not decide; the detail says what it checked.
    Pass(String),
    /// The rule decides.
    Decide(Decision, String),
}

/// Everything the rules may look at, gathered before any rule runs.
pub struct Facts {
    /// The configuration, or why it failed.
    pub config: std::result::Result<Config, String>,
    /// Where the configuration was read from.
    pub config_path: PathBuf,
    /// The account, if it exists.
    pub user: Option<UserInfo>,
    /// The name asked about.
    pub user_name: String,
    /// Service name.
    pub service: String,
    /// Remote host, empty for a local login.
    pub rhost: String,
    /// The secret file path.
    pub secret_path: Option<PathBuf>,
    /// The secret file (`Ok(None)`: absent).
    pub secret: std::result::Result<Option<SecretFile>, StoreError>,
    /// The state (`Ok(None)`: absent).
    pub state: std::result::Result<Option<State>, String>,
    /// Names of the user's groups, looked up only when the policy names groups (as the module).
    pub groups: std::result::Result<Vec<String>, String>,
    /// Fingerprint of the user's password (only with `remember`, as the module).
    pub password_tag: String,
    /// Whether the SSH public key already succeeded (`--publickey`).
    pub publickey_used: bool,
    /// Unix time.
    pub now: u64,
}

/// One step of the module's decision.
pub trait Rule {
    /// Short name shown in the report.
    fn name(&self) -> &'static str;
    /// Looks at the facts.
    fn check(&self, facts: &Facts) -> Verdict;
}

/// The rules in the order the module applies them.
pub fn rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(ConfigRule),
        Box::new(AccountRule),
        Box::new(PolicyRule),
        Box::new(EnrollmentRule),
        Box::new(StateRule),
        Box::new(ThrottleRule),
        Box::new(CodeRule),
    ]
}

struct ConfigRule;
impl Rule for ConfigRule {
    fn name(&self) -> &'static str {
        "configuration"
    }
    fn check(&self, f: &Facts) -> Verdict {
        match &f.config {
            Ok(c) => Verdict::Pass(match &c.source {
                Some(p) => format!("{} parses", p.display()),
                None => format!("{} is absent: defaults apply", f.config_path.display()),
            }),
            Err(e) => Verdict::Decide(Decision::ServiceError, e.clone()),
        }
    }
}

struct AccountRule;
impl Rule for AccountRule {
    fn name(&self) -> &'static str {
        "account"
    }
    fn check(&self, f: &Facts) -> Verdict {
        match &f.user {
            Some(u) => Verdict::Pass(format!("{} exists (uid {})", u.name, u.uid)),
            None => Verdict::Decide(
                Decision::Deny,
                format!("there is no user named `{}`", f.user_name),
            ),
        }
    }
}

/// Whether a policy rule needs the user's groups (the module looks them up only then).
fn needs_groups(config: &Config) -> bool {
    !config.policy.exempt_groups.is_empty() || matches!(config.policy.require, Require::Groups(_))
}

struct PolicyRule;
impl Rule for PolicyRule {
    fn name(&self) -> &'static str {
        "policy"
    }
    fn check(&self, f: &Facts) -> Verdict {
        let Ok(config) = &f.config else {
            return Verdict::Pass("nothing to check".into());
        };
        // The module reads the groups and the state before it applies the policy.
        let groups = match &f.groups {
            Ok(g) => g,
            Err(e) => {
                return Verdict::Decide(
                    Decision::Deny,
                    format!("the groups of the user cannot be looked up: {e}"),
                );
            }
        };
        let state = match &f.state {
            Ok(s) => s.as_ref(),
            Err(e) => {
                return Verdict::Decide(
                    Decision::Deny,
                    format!("the state file is unusable and is never rewritten: {e}"),
                );
            }
        };
        let p = &config.policy;
        let facts = policy::Facts {
            user: &f.user_name,
            groups,
            rhost: &f.rhost,
            enrolled: !matches!(f.secret, Ok(None)),
            publickey_used: f.publickey_used,
            state,
            password_tag: &f.password_tag,
            forget_hosts_before: match &f.secret {
                Ok(Some(file)) => file.forget_hosts_before,
                _ => 0,
            },
            now: f.now,
        };
        match policy::evaluate(p, &facts) {
            policy::Decision::Exempt(rule) => {
                let (decision, result) = match p.exempt_result {
                    ExemptResult::Ignore => (Decision::Ignore, "ignore"),
                    ExemptResult::Success => (Decision::Allow, "success"),
                };
                Verdict::Decide(
                    decision,
                    format!("{rule}: exempt, no code is asked (exempt_result = \"{result}\")"),
                )
            }
            policy::Decision::Grace {
                deadline,
                days_left,
            } => Verdict::Decide(
                Decision::Ignore,
                format!(
                    "enroll_deadline {deadline}, {days_left} day{} left: not enrolled, the login \
                     passes with a notice to run `pam-totp enroll`",
                    if days_left == 1 { "" } else { "s" }
                ),
            ),
            policy::Decision::DeadlinePassed { deadline } => Verdict::Decide(
                Decision::Deny,
                format!(
                    "enroll_deadline {deadline} has passed and the user is not enrolled: refused \
                     with a message naming {}",
                    p.enroll_contact.as_deref().unwrap_or("the administrator")
                ),
            ),
            policy::Decision::EnrollNow => Verdict::Decide(
                Decision::EnrollAtLogin,
                "enroll_at_login: not enrolled, so the login shows a new key (QR code) and asks \
                 for its first code; the secret is written only once it verifies"
                    .into(),
            ),
            policy::Decision::NotEnrolledIgnore => Verdict::Decide(
                Decision::Ignore,
                format!("{}, and `nullok` is set (reason=no-secret)", no_secret(f)),
            ),
            policy::Decision::NotEnrolledDeny => Verdict::Decide(
                Decision::Deny,
                format!(
                    "{}, and no `nullok`, enroll_deadline or enroll_at_login (reason=no-secret)",
                    no_secret(f)
                ),
            ),
            policy::Decision::Remembered { until } => Verdict::Decide(
                Decision::Allow,
                format!(
                    "remember: {} until {} ({} left): a code from this host was accepted \
                     recently (method=remembered)",
                    f.rhost.trim(),
                    output::date(until),
                    output::duration(until.saturating_sub(f.now))
                ),
            ),
            policy::Decision::AskCode => Verdict::Pass(policy_pass_detail(p, f)),
        }
    }
}

fn no_secret(f: &Facts) -> String {
    let path = f
        .secret_path
        .as_deref()
        .map(|p| p.display().to_string())
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

struct EnrollmentRule;
impl Rule for EnrollmentRule {
    fn name(&self) -> &'static str {
        "enrollment"
    }
    fn check(&self, f: &Facts) -> Verdict {
        let path = f
            .secret_path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let nullok = f.config.as_ref().is_ok_and(|c| c.nullok);
        match &f.secret {
            Ok(Some(file)) => Verdict::Pass(format!(
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
            )),
            Ok(None) if nullok => Verdict::Decide(
                Decision::Ignore,
                format!("no secret file at {path}, and `nullok` is set (reason=no-secret)"),
            ),
            Ok(None) => Verdict::Decide(
                Decision::Deny,
                format!("no secret file at {path}, and `nullok` is not set (reason=no-secret)"),
            ),
            Err(e) => Verdict::Decide(
                Decision::Deny,
                format!("the secret file is unusable: {e} (reason={})", e.class()),
            ),
        }
    }
}

struct StateRule;
impl Rule for StateRule {
    fn name(&self) -> &'static str {
        "state"
    }
    fn check(&self, f: &Facts) -> Verdict {
        match &f.state {
            Ok(Some(_)) => Verdict::Pass("the state file parses".into()),
            Ok(None) => Verdict::Pass("no state file yet (first login)".into()),
            Err(e) => Verdict::Decide(
                Decision::Deny,
                format!("the state file is unusable and is never rewritten: {e}"),
            ),
        }
    }
}

struct ThrottleRule;
impl Rule for ThrottleRule {
    fn name(&self) -> &'static str {
        "throttle"
    }
    fn check(&self, f: &Facts) -> Verdict {
        let (Ok(config), Ok(state)) = (&f.config, &f.state) else {
            return Verdict::Pass("nothing to check".into());
        };
        if !config.throttle.enabled {
            return Verdict::Pass("throttling is off (`throttle = false`)".into());
        }
        let host = throttle::host_key(&f.rhost);
        let Some(state) = state else {
            return Verdict::Pass(format!("no failures recorded for {host}"));
        };
        match throttle::check(state, &host, &config.throttle, f.now) {
            Some(Lockout::User { seconds }) => Verdict::Decide(
                Decision::Deny,
                format!(
                    "the user is locked out from every host for {} more ({} failures; \
                     `pam-totp unlock --user {}` clears it)",
                    output::duration(seconds),
                    state.user_failures.count,
                    f.user_name
                ),
            ),
            Some(Lockout::Host { seconds }) => Verdict::Decide(
                Decision::Deny,
                format!(
                    "{host} is locked out for {} more ({} failures; `pam-totp unlock --user {}` \
                     clears it)",
                    output::duration(seconds),
                    state.host_failures.get(&host).map_or(0, |h| h.count),
                    f.user_name
                ),
            ),
            None => Verdict::Pass(format!(
                "{host} is not locked out ({} recent failures from it, {} in all)",
                state.host_failures.get(&host).map_or(0, |h| h.count),
                state.user_failures.count
            )),
        }
    }
}

struct CodeRule;
impl Rule for CodeRule {
    fn name(&self) -> &'static str {
        "code"
    }
    fn check(&self, f: &Facts) -> Verdict {
        let window = f.config.as_ref().map_or(1, |c| c.window);
        let prompt = f
            .config
            .as_ref()
            .map_or(String::new(), |c| c.prompt.clone());
        let left = match (&f.secret, &f.state) {
            (Ok(Some(file)), Ok(state)) => {
                verify::backup_codes_left(file, state.as_ref().unwrap_or(&State::new()))
            }
            _ => 0,
        };
        Verdict::Decide(
            Decision::AskForCode,
            format!(
                "prompts {prompt:?}; accepts a current code (±{window} step{}) or one of {left} \
                 unused backup code{}",
                if window == 1 { "" } else { "s" },
                if left == 1 { "" } else { "s" }
            ),
        )
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
}

/// Gathers the facts for a login.
pub fn gather(config_path: Option<&Path>, args: &ExplainArgs) -> Facts {
    let shown_path = config_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(pam_totp_core::config::DEFAULT_CONFIG));
    let ctx = Ctx::load(config_path);
    let user = pam_totp_core::store::UserInfo::lookup(&args.user)
        .ok()
        .flatten();
    let mut facts = Facts {
        config: Err(String::new()),
        config_path: shown_path,
        user: user.clone(),
        user_name: args.user.clone(),
        service: args.service.clone(),
        rhost: args.rhost.clone().unwrap_or_default(),
        secret_path: None,
        secret: Ok(None),
        state: Ok(None),
        groups: Ok(Vec::new()),
        password_tag: String::new(),
        publickey_used: args.publickey,
        now: pam_totp_core::Clock::now(&pam_totp_core::SystemClock),
    };
    let ctx = match ctx {
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
    facts.config = Ok(ctx.config.clone());
    facts.now = ctx.now;
    if let Some(user) = &user {
        if needs_groups(&ctx.config) {
            facts.groups = user.group_names().map_err(|e| e.to_string());
        }
        if ctx.config.policy.remember > 0 {
            facts.password_tag = store::password_tag(&user.name);
        }
        facts.secret_path = ctx.backend.secret_location(user).ok();
        facts.secret = ctx.backend.load_secret(user);
        facts.state = ctx
            .backend
            .peek_state(&user.name)
            .map_err(|e| e.to_string());
    }
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
    let mut report = Vec::new();
    let mut decision = None;
    for rule in rules() {
        match rule.check(&facts) {
            Verdict::Pass(detail) => report.push((rule.name(), "pass", detail)),
            Verdict::Decide(d, detail) => {
                report.push((rule.name(), "decides", detail));
                decision = Some(d);
                break;
            }
        }
    }
    let decision = decision.unwrap_or(Decision::AskForCode);
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
