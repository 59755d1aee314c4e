//! The contract of [`Store`] as tests that any backend must pass, races included. A backend's
//! test calls [`run_all`] with a function that makes a fresh, empty store; the local files
//! backend runs it in its unit tests, a directory backend against a real server.
//!
//! Compiled for tests and with the `conformance` feature only.

use super::{Attempt, BackupUse, Consumed, Counted, Store, Success, TotpUse};
use crate::state::LastUse;
use crate::throttle::{Lockout, ThrottlePolicy};

/// A store under test.
pub type Subject = Box<dyn Store + Sync>;

const T0: u64 = 1_800_000_000;

fn success(host: &str) -> Success<'_> {
    Success {
        host,
        last_use: LastUse {
            time: T0,
            service: "conformance".into(),
            rhost: host.into(),
            method: "totp".into(),
            authenticator: "default".into(),
        },
        remember: None,
    }
}

fn totp<'a>(enrollment: &'a str, authenticator: &'a str, step: u64) -> TotpUse<'a> {
    TotpUse {
        enrollment_id: enrollment,
        authenticator,
        step,
        refund: None,
        success: Some(success("192.0.2.1")),
    }
}

fn backup<'a>(enrollment: &'a str, set: &'a str, index: u32) -> BackupUse<'a> {
    BackupUse {
        enrollment_id: enrollment,
        set_id: set,
        index,
        refund: None,
        success: Some(success("192.0.2.1")),
    }
}

fn accepted(c: Consumed) -> bool {
    matches!(c, Consumed::Accepted(_))
}

/// Runs every check on fresh stores made by `make`; `user` is the account name to use.
///
/// # Panics
/// When the backend breaks the contract.
pub fn run_all(make: &dyn Fn() -> Subject, user: &str) {
    empty_store(&*make(), user);
    steps_are_spent_once(&*make(), user);
    backup_codes_are_spent_once(&*make(), user);
    failures_are_counted_before_judging(&*make(), user);
    administration(&*make(), user);
    racing_consumers_get_one_success(&*make(), user);
    racing_failures_lose_no_count(&*make(), user);
}

/// Nothing recorded: no state, no users.
pub fn empty_store(store: &dyn Store, user: &str) {
    assert_eq!(store.state(user).unwrap(), None);
    assert!(store.users_with_state().unwrap().is_empty());
    assert!(!store.reset(user).unwrap());
}

/// Contract 1: a step once, never an older one; authenticators and enrollments apart.
pub fn steps_are_spent_once(store: &dyn Store, user: &str) {
    assert!(accepted(
        store.consume_totp(user, &totp("e1", "phone", 100)).unwrap()
    ));
    assert_eq!(
        store.consume_totp(user, &totp("e1", "phone", 100)).unwrap(),
        Consumed::AlreadyUsed
    );
    assert_eq!(
        store.consume_totp(user, &totp("e1", "phone", 99)).unwrap(),
        Consumed::AlreadyUsed
    );
    assert!(accepted(
        store
            .consume_totp(user, &totp("e1", "tablet", 100))
            .unwrap()
    ));
    assert!(accepted(
        store.consume_totp(user, &totp("e1", "phone", 101)).unwrap()
    ));
    // A new enrollment starts with clean replay records.
    assert!(accepted(
        store.consume_totp(user, &totp("e2", "phone", 50)).unwrap()
    ));
    let state = store.state(user).unwrap().unwrap();
    assert_eq!(state.enrollment_id, "e2");
    assert_eq!(state.last_step.get("phone"), Some(&50));
    assert_eq!(store.users_with_state().unwrap(), vec![user.to_string()]);
}

/// Contract 2: a backup code once per set.
pub fn backup_codes_are_spent_once(store: &dyn Store, user: &str) {
    assert!(accepted(
        store.consume_backup(user, &backup("e1", "s1", 3)).unwrap()
    ));
    assert_eq!(
        store.consume_backup(user, &backup("e1", "s1", 3)).unwrap(),
        Consumed::AlreadyUsed
    );
    assert!(accepted(
        store.consume_backup(user, &backup("e1", "s1", 4)).unwrap()
    ));
    assert!(accepted(
        store.consume_backup(user, &backup("e1", "s2", 3)).unwrap()
    ));
    let state = store.state(user).unwrap().unwrap();
    assert_eq!(state.used_backup_codes("s2"), &[3]);
}

/// Contract 3: counted before judging; a waiting host is refused and not counted; a success
/// clears the host.
pub fn failures_are_counted_before_judging(store: &dyn Store, user: &str) {
    let policy = ThrottlePolicy {
        attempts: 2,
        delay: 30,
        ..ThrottlePolicy::default()
    };
    let attempt = |host, now| Attempt {
        host,
        now,
        throttle: &policy,
    };
    assert_eq!(
        store.record_failure(user, &attempt("a", T0)).unwrap(),
        Counted::Counted {
            host: 1,
            user: 1,
            clock_back: None
        }
    );
    assert_eq!(
        store.record_failure(user, &attempt("a", T0 + 1)).unwrap(),
        Counted::Counted {
            host: 2,
            user: 2,
            clock_back: None
        }
    );
    assert_eq!(
        store.record_failure(user, &attempt("a", T0 + 2)).unwrap(),
        Counted::Throttled(Lockout::Host { seconds: 29 })
    );
    assert_eq!(store.state(user).unwrap().unwrap().user_failures.count, 2);
    assert_eq!(
        store.record_failure(user, &attempt("b", T0 + 2)).unwrap(),
        Counted::Counted {
            host: 1,
            user: 3,
            clock_back: None
        },
        "another host is not held up"
    );
    // A right code takes its own attempt's count back, and nothing more.
    let mut used = totp("e1", "phone", 7);
    used.success = None;
    used.refund = Some("b");
    assert!(accepted(store.consume_totp(user, &used).unwrap()));
    let state = store.state(user).unwrap().unwrap();
    assert!(!state.host_failures.contains_key("b"));
    assert_eq!(state.user_failures.count, 2);
    // A success of the whole stack clears the counters and trusts the host.
    store.record_success(user, &success("a")).unwrap();
    let state = store.state(user).unwrap().unwrap();
    assert!(!state.host_failures.contains_key("a"));
    assert_eq!(state.user_failures.count, 0);
    assert!(state.trusted.contains_key("a"));
}

/// Unlock, forget hosts and reset.
pub fn administration(store: &dyn Store, user: &str) {
    let policy = ThrottlePolicy::default();
    for host in ["a", "b"] {
        store
            .record_failure(
                user,
                &Attempt {
                    host,
                    now: T0,
                    throttle: &policy,
                },
            )
            .unwrap();
    }
    let mut s = success("c");
    s.remember = Some(super::Remember {
        rhost: "198.51.100.9".into(),
        until: T0 + 100,
        password_tag: String::new(),
    });
    store.record_success(user, &s).unwrap();
    let unlocked = store.unlock(user).unwrap();
    assert_eq!(unlocked.hosts, 2);
    assert_eq!(store.unlock(user).unwrap(), super::Unlocked::default());
    assert_eq!(store.forget_hosts(user).unwrap(), 1);
    assert_eq!(store.forget_hosts(user).unwrap(), 0);
    assert!(store.reset(user).unwrap());
    assert!(store.state(user).unwrap().is_none_or(|s| s.is_empty()));
    assert!(!store.reset(user).unwrap());
}

/// 32 threads spend one TOTP step, then one backup code: exactly one wins each time.
pub fn racing_consumers_get_one_success(store: &(dyn Store + Sync), user: &str) {
    for round in 0..5u64 {
        let wins = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..32 {
                scope.spawn(|| {
                    let c = store.consume_totp(user, &totp("e1", "phone", 1000 + round));
                    if accepted(c.unwrap()) {
                        wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1, "TOTP round {round}");
        let wins = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..32 {
                scope.spawn(|| {
                    let index = u32::try_from(round).unwrap_or(0);
                    let c = store.consume_backup(user, &backup("e1", "s1", index));
                    if accepted(c.unwrap()) {
                        wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1, "backup round {round}");
    }
}

/// 16 threads count 10 failures each from their own host: none is lost.
pub fn racing_failures_lose_no_count(store: &(dyn Store + Sync), user: &str) {
    let policy = ThrottlePolicy {
        enabled: false,
        ..ThrottlePolicy::default()
    };
    std::thread::scope(|scope| {
        for t in 0..16 {
            let policy = &policy;
            scope.spawn(move || {
                let host = format!("h{t}");
                for i in 0..10 {
                    store
                        .record_failure(
                            user,
                            &Attempt {
                                host: &host,
                                now: T0 + i,
                                throttle: policy,
                            },
                        )
                        .unwrap();
                }
            });
        }
    });
    let state = store.state(user).unwrap().unwrap();
    assert_eq!(state.user_failures.count, 160);
    assert_eq!(state.host_failures.len(), 16);
}
