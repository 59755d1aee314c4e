//! Brute-force throttling kept in the state file, so it holds across SSH connections.
//!
//! Failures are counted per (user, remote host): after `attempts` consecutive failures from one
//! host, that host waits `delay` seconds, doubling with every further failure up to `max_delay`.
//! A stranger therefore slows down only their own host. A much higher per-user ceiling
//! (`user_attempts` failures from anywhere) applies the same back-off to every host that is not
//! *trusted*, so guesses spread over many hosts are bounded too. A trusted host is one from which
//! the whole PAM stack of this user succeeded within [`TRUST_PERIOD`]: failures from other hosts
//! never hold it up, so no number of addresses a stranger controls can lock the user out of the
//! hosts they use. A success of the whole stack clears the counters and trusts the host; a quiet
//! day clears a counter on its own. The arithmetic is in docs/SECURITY.md.

use crate::state::{Failures, State};
use std::net::{IpAddr, Ipv6Addr};

/// Counters untouched for this long are forgotten.
pub const FORGET_AFTER: u64 = 24 * 3600;
/// Most remote hosts tracked per user; the oldest are dropped beyond it.
pub const MAX_HOSTS: usize = 512;
/// How long a host stays trusted after a success of the whole stack.
pub const TRUST_PERIOD: u64 = 30 * 24 * 3600;
/// Most trusted hosts kept per user; the least recently used are dropped beyond it.
pub const MAX_TRUSTED: usize = 64;

/// Throttling settings (validated by `config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Off turns throttling off entirely (not recommended).
    pub enabled: bool,
    /// Failures from one host before it must wait.
    pub attempts: u32,
    /// First wait, in seconds.
    pub delay: u64,
    /// Longest wait, in seconds.
    pub max_delay: u64,
    /// Failures from all hosts together before the whole user must wait.
    pub user_attempts: u32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            enabled: true,
            attempts: 3,
            delay: 30,
            max_delay: 3600,
            user_attempts: 30,
        }
    }
}

/// Which lock-out applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// This remote host is waiting.
    Host { seconds: u64 },
    /// The user as a whole is waiting (per-user ceiling).
    User { seconds: u64 },
}

impl Lockout {
    /// Seconds left.
    pub fn seconds(self) -> u64 {
        match self {
            Lockout::Host { seconds } | Lockout::User { seconds } => seconds,
        }
    }
}

/// The key under which a remote host is counted: IPv6 addresses by their /64 (one customer's
/// allocation), IPv4 and names as given, local logins as `local`.
pub fn host_key(rhost: &str) -> String {
    let rhost = rhost.trim();
    if rhost.is_empty() {
        return "local".to_string();
    }
    match rhost
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map(|v4| v4.to_string())
            .unwrap_or_default(),
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => rhost.to_ascii_lowercase(),
    }
}

fn wait(f: &Failures, free: u32, policy: &ThrottlePolicy, now: u64) -> Option<u64> {
    if f.count < free || now.saturating_sub(f.last) >= FORGET_AFTER {
        return None;
    }
    let doublings = (f.count - free).min(32);
    let delay = policy
        .delay
        .saturating_mul(1u64 << doublings)
        .min(policy.max_delay);
    let until = f.last.saturating_add(delay);
    // A clock that went back must not stretch a wait past the longest one.
    (now < until).then(|| (until - now).min(policy.max_delay))
}

/// Whether `host` is trusted now: the whole stack succeeded from it within [`TRUST_PERIOD`].
pub fn trusted(state: &State, host: &str, now: u64) -> bool {
    state
        .trusted
        .get(host)
        .is_some_and(|&t| now.saturating_sub(t) < TRUST_PERIOD)
}

/// Whether `host` (a [`host_key`]) must wait now.
pub fn check(state: &State, host: &str, policy: &ThrottlePolicy, now: u64) -> Option<Lockout> {
    if !policy.enabled {
        return None;
    }
    if !trusted(state, host, now) {
        if let Some(seconds) = wait(&state.user_failures, policy.user_attempts, policy, now) {
            return Some(Lockout::User { seconds });
        }
    }
    let f = state.host_failures.get(host)?;
    wait(f, policy.attempts, policy, now).map(|seconds| Lockout::Host { seconds })
}

fn bump(f: &mut Failures, now: u64) {
    if now.saturating_sub(f.last) >= FORGET_AFTER {
        f.count = 0;
    }
    f.count = f.count.saturating_add(1);
    f.last = now;
}

/// Counts one failed attempt from `host`.
pub fn record_failure(state: &mut State, host: &str, now: u64) {
    bump(&mut state.user_failures, now);
    bump(
        state.host_failures.entry(host.to_string()).or_default(),
        now,
    );
    state
        .host_failures
        .retain(|_, f| now.saturating_sub(f.last) < FORGET_AFTER);
    while state.host_failures.len() > MAX_HOSTS {
        let oldest = state
            .host_failures
            .iter()
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => state.host_failures.remove(&k),
            None => break,
        };
    }
}

/// A success of the whole stack from `host` clears its counter and the per-user one, and
/// trusts the host.
pub fn record_success(state: &mut State, host: &str, now: u64) {
    state.user_failures = Failures::default();
    state.host_failures.remove(host);
    state.trusted.insert(host.to_string(), now);
    state
        .trusted
        .retain(|_, &mut t| now.saturating_sub(t) < TRUST_PERIOD);
    while state.trusted.len() > MAX_TRUSTED {
        let oldest = state
            .trusted
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => state.trusted.remove(&k),
            None => break,
        };
    }
}

/// Takes back the count of one attempt from `host` that turned out to give a right code (the
/// whole stack may still fail, so nothing else is cleared).
pub fn refund(state: &mut State, host: &str) {
    state.user_failures.count = state.user_failures.count.saturating_sub(1);
    if let Some(f) = state.host_failures.get_mut(host) {
        f.count = f.count.saturating_sub(1);
        if f.count == 0 {
            state.host_failures.remove(host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn host_keys() {
        assert_eq!(host_key(""), "local");
        assert_eq!(host_key("198.51.100.7"), "198.51.100.7");
        assert_eq!(host_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(host_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(host_key("Host.Example"), "host.example");
    }

    #[test]
    fn given_failures_from_one_host_then_back_off_doubles_and_expires() {
        let p = ThrottlePolicy {
            delay: 10,
            max_delay: 40,
            ..Default::default()
        };
        let mut s = State::new();
        for i in 0..3 {
            assert_eq!(check(&s, "a", &p, T0 + i), None);
            record_failure(&mut s, "a", T0 + i);
        }
        assert_eq!(
            check(&s, "a", &p, T0 + 2),
            Some(Lockout::Host { seconds: 10 })
        );
        assert_eq!(
            check(&s, "b", &p, T0 + 2),
            None,
            "other hosts are not affected"
        );
        assert_eq!(check(&s, "a", &p, T0 + 12), None);
        record_failure(&mut s, "a", T0 + 12);
        assert_eq!(
            check(&s, "a", &p, T0 + 12),
            Some(Lockout::Host { seconds: 20 })
        );
        record_failure(&mut s, "a", T0 + 40);
        record_failure(&mut s, "a", T0 + 100);
        assert_eq!(
            check(&s, "a", &p, T0 + 100),
            Some(Lockout::Host { seconds: 40 }),
            "capped"
        );
        record_success(&mut s, "a", T0 + 100);
        assert_eq!(check(&s, "a", &p, T0 + 101), None);
    }

    #[test]
    fn given_failures_from_many_hosts_then_user_ceiling() {
        let p = ThrottlePolicy {
            user_attempts: 5,
            ..Default::default()
        };
        let mut s = State::new();
        for i in 0..5 {
            record_failure(&mut s, &format!("h{i}"), T0);
        }
        assert_eq!(
            check(&s, "fresh", &p, T0),
            Some(Lockout::User { seconds: 30 })
        );
        assert_eq!(check(&s, "fresh", &p, T0 + FORGET_AFTER), None);
    }

    #[test]
    fn given_100_attacking_hosts_then_a_trusted_host_is_not_held_up() {
        let p = ThrottlePolicy::default();
        let mut s = State::new();
        record_success(&mut s, "home", T0 - 3600);
        record_success(&mut s, "old", T0 + 50 - TRUST_PERIOD);
        for i in 0..100u64 {
            record_failure(&mut s, &format!("198.51.{}.{}", i / 250, i % 250), T0 + i);
        }
        assert!(matches!(
            check(&s, "fresh", &p, T0 + 100),
            Some(Lockout::User { .. })
        ));
        assert_eq!(check(&s, "home", &p, T0 + 100), None, "the user's own host");
        assert!(
            matches!(check(&s, "old", &p, T0 + 100), Some(Lockout::User { .. })),
            "trust ends after TRUST_PERIOD"
        );
    }

    #[test]
    fn given_clock_gone_back_then_waits_are_clamped() {
        let p = ThrottlePolicy {
            delay: 10,
            max_delay: 40,
            ..Default::default()
        };
        let mut s = State::new();
        for _ in 0..10 {
            record_failure(&mut s, "a", T0);
        }
        let wait = check(&s, "a", &p, T0 - 10_000).unwrap().seconds();
        assert!(wait <= 40, "{wait}");
    }

    #[test]
    fn refund_takes_back_one_attempt_only() {
        let mut s = State::new();
        record_failure(&mut s, "a", T0);
        record_failure(&mut s, "a", T0);
        refund(&mut s, "a");
        assert_eq!(s.host_failures["a"].count, 1);
        assert_eq!(s.user_failures.count, 1);
        refund(&mut s, "a");
        assert!(!s.host_failures.contains_key("a"));
    }

    #[test]
    fn disabled_never_locks() {
        let p = ThrottlePolicy {
            enabled: false,
            ..Default::default()
        };
        let mut s = State::new();
        for _ in 0..100 {
            record_failure(&mut s, "a", T0);
        }
        assert_eq!(check(&s, "a", &p, T0), None);
    }

    #[test]
    fn host_table_is_bounded() {
        let mut s = State::new();
        for i in 0..(MAX_HOSTS + 10) {
            record_failure(&mut s, &format!("h{i}"), T0 + i as u64);
        }
        assert_eq!(s.host_failures.len(), MAX_HOSTS);
        assert!(!s.host_failures.contains_key("h0"));
    }
}
