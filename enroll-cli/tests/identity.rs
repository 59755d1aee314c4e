//! The CLI works in a user's directories with the user's identity only: a root shell's
//! supplementary groups do not open directories the user cannot enter (issue 12, item 9).

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn issue_12_9_given_root_with_a_group_the_user_lacks_then_the_cli_cannot_use_it() {
    if !root_or_skip("issue_12_9_given_root_with_a_group_the_user_lacks_then_the_cli_cannot_use_it")
    {
        return;
    }
    let dir = TempDir::new("identity");
    let conf = dir.config("");
    let user = TestUser::new();
    let group = TestGroup::new();
    let gid = nix::unistd::Group::from_name(&group.name)
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    // The user's pam-totp directory is root's and only group G may enter it: the user cannot.
    let secret_dir = user.home.join(".config/pam-totp");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::os::unix::fs::chown(&secret_dir, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&secret_dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    // A root shell that is a member of G runs the CLI for the user.
    let out = Command::new("setpriv")
        .arg(format!("--groups={gid}"))
        .arg("--")
        .arg(bin())
        .args([
            "--config",
            conf.to_str().unwrap(),
            "enroll",
            "--json",
            "--user",
            &user.name,
        ])
        .output()
        .expect("setpriv runs");
    assert!(
        !out.status.success(),
        "the CLI wrote where the user cannot: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !user.secret_path().exists(),
        "a secret file was planted in a directory the user cannot enter"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ermission denied"), "{err}");
}
