//! Helpers of the store's unit tests.

use super::UserInfo;
use nix::unistd::Uid;
use std::path::PathBuf;

/// A fresh directory under the system's temporary directory.
pub(crate) fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pam-totp-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The account running the tests.
pub(crate) fn me() -> UserInfo {
    UserInfo::lookup_uid(Uid::effective().as_raw())
        .unwrap()
        .unwrap()
}
