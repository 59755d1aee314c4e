//! Enrollment through the real CLI (`pam-totp enroll --json`) and TOTP codes computed
//! independently of the project's code (totp-rs + base32), for explicitly chosen time steps, so
//! tests do not depend on the clock beyond "now".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::cli_path;

/// What `pam-totp enroll --json` printed, with the TOTP parameters from its otpauth URI.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The user enrolled.
    pub user: String,
    /// The secret file written.
    pub secret_file: PathBuf,
    /// The key, base32.
    pub secret: String,
    /// The otpauth URI.
    pub otpauth_uri: String,
    /// Backup codes as printed (`xxxxx-xxxxx`).
    pub backup_codes: Vec<String>,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// 6 or 8.
    pub digits: u8,
    /// Step length in seconds.
    pub period: u64,
}

/// Runs `pam-totp enroll --json --config <config> --user <user> <extra>` and parses its output.
///
/// # Panics
/// The CLI fails or prints something else than the documented JSON.
pub fn enroll(config: &Path, user: &str, extra: &[&str]) -> Enrollment {
    let out = Command::new(cli_path())
        .arg("enroll")
        .arg("--json")
        .arg("--config")
        .arg(config)
        .args(["--user", user])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run pam-totp: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pam-totp enroll failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_enrollment(&stdout)
}

/// Parses the JSON of `pam-totp enroll --json`.
///
/// # Panics
/// A field is missing or has the wrong type.
pub fn parse_enrollment(json: &str) -> Enrollment {
    let v: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("enroll --json printed no JSON ({e}): {json}"));
    let text = |key: &str| -> String {
        v.get(key)
            .and_then(|x| x.as_str())
            .unwrap_or_else(|| panic!("enroll --json lacks the string {key:?}: {json}"))
            .to_string()
    };
    let backup_codes = v
        .get("backup_codes")
        .and_then(|x| x.as_array())
        .unwrap_or_else(|| panic!("enroll --json lacks the array \"backup_codes\": {json}"))
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("a backup code is not a string: {json}"))
                .to_string()
        })
        .collect();
    let otpauth_uri = text("otpauth_uri");
    let param = |name: &str| uri_param(&otpauth_uri, name);
    Enrollment {
        user: text("user"),
        secret_file: PathBuf::from(text("secret_file")),
        secret: text("secret"),
        algorithm: param("algorithm").unwrap_or_else(|| "SHA1".into()),
        digits: param("digits").and_then(|d| d.parse().ok()).unwrap_or(6),
        period: param("period").and_then(|p| p.parse().ok()).unwrap_or(30),
        otpauth_uri,
        backup_codes,
    }
}

fn uri_param(uri: &str, name: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

/// Unix time now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Enrollment {
    /// The key bytes.
    ///
    /// # Panics
    /// The secret is not base32.
    pub fn key(&self) -> Vec<u8> {
        let text = self.secret.trim_end_matches('=').to_ascii_uppercase();
        base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &text)
            .unwrap_or_else(|| panic!("the enrolled secret is not base32"))
    }

    /// The code for Unix time `t`.
    pub fn code_at(&self, t: u64) -> String {
        let algorithm = match self.algorithm.to_ascii_uppercase().as_str() {
            "SHA256" => totp_rs::Algorithm::SHA256,
            "SHA512" => totp_rs::Algorithm::SHA512,
            _ => totp_rs::Algorithm::SHA1,
        };
        totp_rs::Builder::new()
            .with_secret(self.key())
            .with_algorithm(algorithm)
            .with_digits(self.digits)
            .with_step_duration(self.period)
            .build_noncompliant()
            .generate(t)
            .to_string()
    }

    /// The time step `t` falls in.
    pub fn step_of(&self, t: u64) -> u64 {
        t / self.period
    }

    /// The code of time step `step`.
    pub fn code_for_step(&self, step: u64) -> String {
        self.code_at(step * self.period)
    }

    /// The current step, after waiting into the next one if fewer than `margin` seconds of the
    /// current one are left, so the module sees the same step as the test.
    pub fn settled_step(&self, margin: u64) -> u64 {
        settle(self.period, margin);
        self.step_of(now())
    }

    /// A code of the right shape that no step from `step - 3` to `step + 3` produces.
    pub fn wrong_code(&self, step: u64) -> String {
        let valid: Vec<String> = (step.saturating_sub(3)..=step + 3)
            .map(|s| self.code_for_step(s))
            .collect();
        let modulus = 10u64.pow(u32::from(self.digits));
        let mut n = valid[0].parse::<u64>().unwrap_or(0);
        loop {
            n = (n + 1) % modulus;
            let candidate = format!("{n:0width$}", width = usize::from(self.digits));
            if !valid.contains(&candidate) {
                return candidate;
            }
        }
    }
}

/// Sleeps into the next time step of length `period` if fewer than `margin` seconds of the
/// current one are left.
pub fn settle(period: u64, margin: u64) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into_step = t.as_secs_f64() % period as f64;
    let left = period as f64 - into_step;
    if left < margin as f64 {
        std::thread::sleep(Duration::from_secs_f64(left + 0.2));
    }
}
