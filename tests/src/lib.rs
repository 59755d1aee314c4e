//! End-to-end test helpers for pam-totp (filled in by the e2e tests).
