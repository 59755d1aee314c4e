//! What each [`Store`](super::Store) operation does to a user's [`State`], as pure functions
//! shared by every backend: a backend reads the state, applies one of these and installs the
//! result with its own compare-and-set (or writes nothing on [`Change::Keep`]).

use super::{Attempt, Consumed, Counted, Success, Unlocked};
use crate::state::{Failures, Remembered, State};
use crate::throttle;

/// Most remote hosts remembered per user; the oldest are dropped beyond it.
pub const MAX_REMEMBERED: usize = 64;
/// How far behind the latest recorded time the clock may be before it is reported.
const CLOCK_SLACK: u64 = 5;

/// The outcome of a change to a state.
#[derive(Debug)]
pub enum Change<T> {
    /// Install the changed state, then return this.
    Commit(T),
    /// Write nothing, return this.
    Keep(T),
}

/// [`Store::record_failure`](super::Store::record_failure): refused while the host or user
/// must wait, else counted (and a clock that went back noted once).
pub fn count_failure(state: &mut State, attempt: &Attempt<'_>) -> Change<Counted> {
    if let Some(lockout) = throttle::check(state, attempt.host, attempt.throttle, attempt.now) {
        return Change::Keep(Counted::Throttled(lockout));
    }
    let latest = state.latest_time();
    let clock_back = (attempt.now.saturating_add(CLOCK_SLACK) < latest
        && state.clock_back_logged != latest)
        .then(|| {
            state.clock_back_logged = latest;
            latest - attempt.now
        });
    throttle::record_failure(state, attempt.host, attempt.now);
    let host = state
        .host_failures
        .get(attempt.host)
        .map_or(0, |f: &Failures| f.count);
    Change::Commit(Counted::Counted {
        host,
        user: state.user_failures.count,
        clock_back,
    })
}

/// A consume operation once the code is spent (`spent` false: it was used already): takes the
/// attempt's count back and records a given success.
pub fn after_spend(
    state: &mut State,
    spent: bool,
    refund: Option<&str>,
    success: Option<&Success<'_>>,
) -> Change<Consumed> {
    if !spent {
        return Change::Keep(Consumed::AlreadyUsed);
    }
    if let Some(host) = refund {
        throttle::refund(state, host);
    }
    if let Some(success) = success {
        apply_success(state, success);
    }
    Change::Commit(Consumed::Accepted(Box::new(state.clone())))
}

/// Records a success in `state`: clears the host's and the user's counters, notes the login,
/// remembers the host if asked.
pub fn apply_success(state: &mut State, success: &Success<'_>) {
    throttle::record_success(state, success.host, success.last_use.time);
    state.last_success = Some(success.last_use.clone());
    if let Some(r) = &success.remember {
        let now = success.last_use.time;
        state
            .remembered
            .retain(|old| old.rhost != r.rhost && old.until > now);
        state.remembered.push(Remembered {
            rhost: r.rhost.clone(),
            until: r.until,
            password_tag: r.password_tag.clone(),
            since: now,
        });
        let excess = state.remembered.len().saturating_sub(MAX_REMEMBERED);
        state.remembered.drain(..excess);
    }
}

/// [`Store::unlock`](super::Store::unlock).
pub fn unlock(state: &mut State) -> Change<Unlocked> {
    let (user_failures, hosts) = state.unlock();
    let done = Unlocked {
        user_failures,
        hosts,
    };
    if done == Unlocked::default() {
        Change::Keep(done)
    } else {
        Change::Commit(done)
    }
}

/// [`Store::forget_hosts`](super::Store::forget_hosts).
pub fn forget_hosts(state: &mut State) -> Change<usize> {
    match state.forget_hosts() {
        0 => Change::Keep(0),
        n => Change::Commit(n),
    }
}

/// [`Store::reset`](super::Store::reset) of a readable state.
pub fn reset(state: &mut State) -> Change<bool> {
    if state.is_empty() {
        Change::Keep(false)
    } else {
        *state = State::new();
        Change::Commit(true)
    }
}
