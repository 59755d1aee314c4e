//! Who must pass the second factor, and how: exemptions (users, groups, networks, a preceding
//! SSH public key), required groups, the enrollment deadline, enrollment at first login and
//! remembered hosts. [`evaluate`] is pure: the module and `pam-totp explain` gather the facts
//! and get the same [`Decision`], with the rule that made it.

use crate::state::State;
use std::fmt;
use std::net::IpAddr;

/// Longest `remember` period accepted.
pub const MAX_REMEMBER: u64 = 30 * 86_400;

/// `require`: who must use a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Require {
    /// Everybody who reaches the module.
    All,
    /// Only members of these groups.
    Groups(Vec<String>),
}

/// What an exemption answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExemptResult {
    /// PAM_IGNORE: the rest of the stack decides (the default).
    Ignore,
    /// PAM_SUCCESS: for stacks where this module is the only auth module.
    Success,
}

/// `publickey`: what a login whose SSH public key already succeeded needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publickey {
    /// Still ask for a code (the default).
    RequireCode,
    /// The key counts as the second factor.
    Skip,
}

/// A network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `192.0.2.0/24`, `2001:db8::/32` or a bare address (a single host).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies inside (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses PAM_RHOST as an address; names, empty and garbage give `None` (and never match).
pub fn rhost_ip(rhost: &str) -> Option<IpAddr> {
    rhost
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// A calendar date (the enrollment deadline), compared in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Days since 1970-01-01.
    pub days: i64,
}

impl Date {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Date> {
        let mut parts = text.split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_len = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&m) || d == 0 || d > month_len[(m - 1) as usize] {
            return None;
        }
        Some(Date {
            days: days_from_civil(y, m, d),
        })
    }

    /// The UTC date of a Unix time.
    pub fn of_time(unix: u64) -> Date {
        Date {
            days: (unix / 86_400) as i64,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.days);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

// Howard Hinnant's public-domain date algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parses a duration such as `90s`, `30m`, `12h`, `7d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let (num, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The policy part of the configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Who must use the second factor.
    pub require: Require,
    /// Users never asked.
    pub exempt_users: Vec<String>,
    /// Members (primary or supplementary) never asked.
    pub exempt_groups: Vec<String>,
    /// Remote networks never asked.
    pub exempt_networks: Vec<Cidr>,
    /// What an exemption returns.
    pub exempt_result: ExemptResult,
    /// After this date an unenrolled user is refused; before it they pass with a notice.
    pub enroll_deadline: Option<Date>,
    /// Who to ask, shown to refused unenrolled users.
    pub enroll_contact: Option<String>,
    /// Offer enrollment inside the login conversation.
    pub enroll_at_login: bool,
    /// Seconds a remote host is remembered after a successful code (0: off).
    pub remember: u64,
    /// How a successful SSH public key counts.
    pub publickey: Publickey,
    /// Users without a secret pass (PAM_IGNORE); the deadline replaces this for roll-outs.
    pub nullok: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require: Require::All,
            exempt_users: Vec::new(),
            exempt_groups: Vec::new(),
            exempt_networks: Vec::new(),
            exempt_result: ExemptResult::Ignore,
            enroll_deadline: None,
            enroll_contact: None,
            enroll_at_login: false,
            remember: 0,
            publickey: Publickey::RequireCode,
            nullok: false,
        }
    }
}

/// What is known about one login.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The user.
    pub user: &'a str,
    /// Names of all the user's groups, primary and supplementary.
    pub groups: &'a [String],
    /// PAM_RHOST (empty for local logins).
    pub rhost: &'a str,
    /// Whether the user has a secret file.
    pub enrolled: bool,
    /// Whether the SSH server reported a successful public key (SSH_AUTH_INFO_0).
    pub publickey_used: bool,
    /// The user's state, if any.
    pub state: Option<&'a State>,
    /// Fingerprint of the user's current password (see `remember`), if known.
    pub password_tag: &'a str,
    /// Hosts remembered before this time are forgotten (`pam-totp forget-hosts`).
    pub forget_hosts_before: u64,
    /// Now.
    pub now: u64,
}

/// What to do with a login, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not asked, by the named rule.
    Exempt(String),
    /// Not enrolled, before the deadline: passes with a notice.
    Grace { deadline: Date, days_left: i64 },
    /// Not enrolled, after the deadline: refused with instructions.
    DeadlinePassed { deadline: Date },
    /// Not enrolled: enroll inside the login conversation.
    EnrollNow,
    /// Not enrolled and `nullok`: step aside.
    NotEnrolledIgnore,
    /// Not enrolled, no grace: refused.
    NotEnrolledDeny,
    /// A code from this host was accepted recently.
    Remembered { until: u64 },
    /// Ask for a code.
    AskCode,
}

impl Decision {
    /// A sentence for `pam-totp explain` and debug logs.
    pub fn explain(&self) -> String {
        match self {
            Decision::Exempt(rule) => format!("exempt by rule {rule}: no code is asked"),
            Decision::Grace {
                deadline,
                days_left,
            } => format!(
                "not enrolled; the enrollment deadline {deadline} is {days_left} day(s) away: the login passes with a notice"
            ),
            Decision::DeadlinePassed { deadline } => {
                format!("not enrolled and the enrollment deadline {deadline} has passed: refused")
            }
            Decision::EnrollNow => {
                "not enrolled; enroll_at_login: the user enrolls inside the login".into()
            }
            Decision::NotEnrolledIgnore => {
                "not enrolled; nullok: the module steps aside (PAM_IGNORE)".into()
            }
            Decision::NotEnrolledDeny => {
                "not enrolled and no nullok, deadline or enroll_at_login: refused".into()
            }
            Decision::Remembered { until } => {
                format!(
                    "this host passed a code recently and is remembered until {until} (Unix time): no code is asked"
                )
            }
            Decision::AskCode => "enrolled: a code is asked".into(),
        }
    }
}

/// Remembered entries that still skip the code now: not expired, not forgotten by
/// `pam-totp forget-hosts` (the secret file's `forget_hosts_before`), and remembered with the
/// current password (`password_tag`; a password change forgets them). The one rule the module,
/// `explain`, `status` and `forget-hosts` use.
pub fn active_remembered<'a>(
    state: &'a State,
    password_tag: &str,
    forget_hosts_before: u64,
    now: u64,
) -> impl Iterator<Item = &'a crate::state::Remembered> {
    let password_tag = password_tag.to_string();
    state.remembered.iter().filter(move |r| {
        r.until > now
            && r.password_tag == password_tag
            && (forget_hosts_before == 0 || r.since > forget_hosts_before)
    })
}

/// Whether a remembered entry for `rhost` is still valid now.
pub fn remembered_until(state: &State, facts: &Facts<'_>) -> Option<u64> {
    if !rememberable(facts.rhost) {
        return None;
    }
    active_remembered(
        state,
        facts.password_tag,
        facts.forget_hosts_before,
        facts.now,
    )
    .find(|r| r.rhost == facts.rhost)
    .map(|r| r.until)
}

/// Whether a login from `rhost` may be remembered at all: never a local login, which has no
/// PAM_RHOST, and never the machine itself (loopback addresses, `localhost`), which any local
/// user can reach.
pub fn rememberable(rhost: &str) -> bool {
    let rhost = rhost.trim();
    if rhost.is_empty() || rhost.eq_ignore_ascii_case("localhost") {
        return false;
    }
    match rhost_ip(rhost) {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => !v4.is_loopback(),
            None => !v6.is_loopback(),
        },
        Some(ip) => !ip.is_loopback(),
        None => true,
    }
}

/// Applies the rules in their documented order.
pub fn evaluate(policy: &Policy, facts: &Facts<'_>) -> Decision {
    if policy.exempt_users.iter().any(|u| u == facts.user) {
        return Decision::Exempt(format!("exempt_users ({})", facts.user));
    }
    if let Some(g) = policy
        .exempt_groups
        .iter()
        .find(|g| facts.groups.contains(g))
    {
        return Decision::Exempt(format!("exempt_groups ({g})"));
    }
    if let Some(ip) = rhost_ip(facts.rhost) {
        if let Some(net) = policy.exempt_networks.iter().find(|n| n.contains(ip)) {
            return Decision::Exempt(format!("exempt_networks ({net})"));
        }
    }
    if let Require::Groups(groups) = &policy.require {
        if !groups.iter().any(|g| facts.groups.contains(g)) {
            return Decision::Exempt(
                "require = \"groups\" (not a member of require_groups)".into(),
            );
        }
    }
    if policy.publickey == Publickey::Skip && facts.publickey_used {
        return Decision::Exempt("publickey = \"skip\" (the SSH public key succeeded)".into());
    }
    if !facts.enrolled {
        if policy.enroll_at_login {
            return Decision::EnrollNow;
        }
        if let Some(deadline) = policy.enroll_deadline {
            let today = Date::of_time(facts.now);
            return if today <= deadline {
                Decision::Grace {
                    deadline,
                    days_left: deadline.days - today.days,
                }
            } else {
                Decision::DeadlinePassed { deadline }
            };
        }
        return if policy.nullok {
            Decision::NotEnrolledIgnore
        } else {
            Decision::NotEnrolledDeny
        };
    }
    if policy.remember > 0 {
        if let Some(state) = facts.state {
            if let Some(until) = remembered_until(state, facts) {
                return Decision::Remembered { until };
            }
        }
    }
    Decision::AskCode
}

/// Whether SSH_AUTH_INFO_0 (OpenSSH's `ExposeAuthInfo yes`) shows a successful public key.
pub fn ssh_publickey_used(auth_info: Option<&str>) -> bool {
    auth_info.is_some_and(|info| info.lines().any(|l| l.starts_with("publickey ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Remembered;

    const NOW: u64 = 1_798_675_200; // 2026-12-31T00:00:00Z

    fn facts<'a>(groups: &'a [String], rhost: &'a str, enrolled: bool) -> Facts<'a> {
        Facts {
            user: "alice",
            groups,
            rhost,
            enrolled,
            now: NOW,
            ..Facts::default()
        }
    }

    #[test]
    fn cidr_matching() {
        let net = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(net.contains("192.0.2.77".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("203.0.113.1".parse().unwrap())
        );
        assert!(
            Cidr::parse("198.51.100.7")
                .unwrap()
                .contains("198.51.100.7".parse().unwrap())
        );
        for bad in [
            "192.0.2.0/33",
            "300.1.1.1/8",
            "x",
            "2001:db8::/129",
            "1.2.3.4/",
            "",
        ] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        let d = Date::parse("2026-12-31").unwrap();
        assert_eq!(d, Date::of_time(NOW));
        assert_eq!(d.to_string(), "2026-12-31");
        assert_eq!(Date::parse("1970-01-01").unwrap().days, 0);
        assert_eq!(Date::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        for bad in [
            "2026-13-01",
            "2025-02-29",
            "26-12-31",
            "2026/12/31",
            "2026-12-31T00:00",
            "",
        ] {
            assert!(Date::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(7 * 86_400));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("12h"), Some(43_200));
        assert_eq!(parse_duration("1y"), None);
        assert_eq!(parse_duration("d"), None);
    }

    #[test]
    fn exemptions_in_order() {
        let wheel = vec!["wheel".to_string()];
        let p = Policy {
            exempt_users: vec!["alice".into()],
            exempt_groups: vec!["wheel".into()],
            exempt_networks: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            ..Policy::default()
        };
        assert!(
            matches!(evaluate(&p, &facts(&[], "", true)), Decision::Exempt(r) if r.starts_with("exempt_users"))
        );
        let p = Policy {
            exempt_users: vec![],
            ..p
        };
        assert!(
            matches!(evaluate(&p, &facts(&wheel, "", true)), Decision::Exempt(r) if r.starts_with("exempt_groups"))
        );
        assert!(
            matches!(evaluate(&p, &facts(&[], "10.1.2.3", true)), Decision::Exempt(r) if r.starts_with("exempt_networks"))
        );
        assert_eq!(
            evaluate(&p, &facts(&[], "garbage", true)),
            Decision::AskCode
        );
        assert_eq!(evaluate(&p, &facts(&[], "", true)), Decision::AskCode);
    }

    #[test]
    fn required_groups() {
        let p = Policy {
            require: Require::Groups(vec!["admins".into()]),
            ..Policy::default()
        };
        let admins = vec!["admins".to_string()];
        assert_eq!(evaluate(&p, &facts(&admins, "", true)), Decision::AskCode);
        assert!(matches!(
            evaluate(&p, &facts(&[], "", true)),
            Decision::Exempt(_)
        ));
    }

    #[test]
    fn deadline_before_on_and_after() {
        let p = Policy {
            enroll_deadline: Date::parse("2026-12-31"),
            ..Policy::default()
        };
        let mut f = facts(&[], "", false);
        f.now = NOW - 3 * 86_400;
        assert!(matches!(
            evaluate(&p, &f),
            Decision::Grace { days_left: 3, .. }
        ));
        f.now = NOW + 3600;
        assert!(matches!(
            evaluate(&p, &f),
            Decision::Grace { days_left: 0, .. }
        ));
        f.now = NOW + 86_400;
        assert!(matches!(evaluate(&p, &f), Decision::DeadlinePassed { .. }));
        f.enrolled = true;
        assert_eq!(evaluate(&p, &f), Decision::AskCode);
    }

    #[test]
    fn not_enrolled_without_deadline() {
        let f = facts(&[], "", false);
        assert_eq!(evaluate(&Policy::default(), &f), Decision::NotEnrolledDeny);
        assert_eq!(
            evaluate(
                &Policy {
                    nullok: true,
                    ..Policy::default()
                },
                &f
            ),
            Decision::NotEnrolledIgnore
        );
        assert_eq!(
            evaluate(
                &Policy {
                    enroll_at_login: true,
                    ..Policy::default()
                },
                &f
            ),
            Decision::EnrollNow
        );
    }

    #[test]
    fn remembered_hosts_expire_and_never_apply_locally() {
        let p = Policy {
            remember: 3600,
            ..Policy::default()
        };
        let mut st = State::new();
        st.remembered.push(Remembered {
            rhost: "198.51.100.7".into(),
            until: NOW + 10,
            password_tag: "t".into(),
            since: NOW - 5,
        });
        let mut f = facts(&[], "198.51.100.7", true);
        f.state = Some(&st);
        f.password_tag = "t";
        assert_eq!(evaluate(&p, &f), Decision::Remembered { until: NOW + 10 });
        f.password_tag = "changed";
        assert_eq!(
            evaluate(&p, &f),
            Decision::AskCode,
            "a password change forgets"
        );
        f.password_tag = "t";
        f.forget_hosts_before = NOW - 1;
        assert_eq!(
            evaluate(&p, &f),
            Decision::AskCode,
            "forgotten by forget-hosts"
        );
        f.forget_hosts_before = NOW - 6;
        assert_eq!(
            evaluate(&p, &f),
            Decision::Remembered { until: NOW + 10 },
            "remembered after it"
        );
        f.now = NOW + 10;
        assert_eq!(evaluate(&p, &f), Decision::AskCode, "expired");
        f.now = NOW;
        f.rhost = "";
        assert_eq!(evaluate(&p, &f), Decision::AskCode, "never local");
        f.rhost = "198.51.100.7";
        assert_eq!(
            evaluate(&Policy::default(), &f),
            Decision::AskCode,
            "off by default"
        );
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost", " "] {
            assert!(!rememberable(local), "{local}");
        }
        assert!(rememberable("198.51.100.7") && rememberable("host.example"));
    }

    #[test]
    fn publickey_skip() {
        assert!(ssh_publickey_used(Some(
            "publickey ssh-ed25519 AAAAC3...\n"
        )));
        assert!(!ssh_publickey_used(Some("password\n")));
        assert!(!ssh_publickey_used(None));
        let p = Policy {
            publickey: Publickey::Skip,
            ..Policy::default()
        };
        let mut f = facts(&[], "", true);
        f.publickey_used = true;
        assert!(matches!(evaluate(&p, &f), Decision::Exempt(_)));
        assert_eq!(evaluate(&Policy::default(), &f), Decision::AskCode);
    }
}
