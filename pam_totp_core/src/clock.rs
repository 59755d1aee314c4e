//! Time as a dependency: the module and CLI read the system clock, tests inject their own.

use std::time::{SystemTime, UNIX_EPOCH};

/// Something that tells the current Unix time in seconds.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The real wall clock. A clock before 1970 reads as 0, which no code verifies against.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock fixed at one instant, for tests and for `pam-totp explain`.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0
    }
}
