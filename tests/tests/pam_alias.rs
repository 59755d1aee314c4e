//! Two names for one account (a second passwd entry with the same uid and home, or a directory
//! that matches names case-insensitively) share one secret, so they must share one state:
//! a backup code used under one name is refused under the other, and so is a replayed code.

use pam_totp_e2e::harness::Scenario;
use pam_totp_e2e::harness_client::Client;
use pam_totp_e2e::require_root;
use std::process::Command;

/// A second passwd entry for an existing account, removed on drop.
struct Alias(String);

impl Alias {
    fn create(s: &Scenario) -> Alias {
        let name = format!("{}a", s.user.name);
        let ok = Command::new("useradd")
            .args([
                "-o",
                "-M",
                "-u",
                &s.user.uid.to_string(),
                "-g",
                &s.user.gid.to_string(),
            ])
            .args(["-d", &s.user.home.to_string_lossy(), &name])
            .status()
            .map(|st| st.success())
            .unwrap_or(false);
        assert!(ok, "useradd -o {name} failed");
        Alias(name)
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        // userdel refuses to remove a name whose uid is shared only when asked to remove files.
        let _ = Command::new("userdel").arg(&self.0).status();
    }
}

#[test]
fn given_alias_of_the_same_account_then_state_is_shared() {
    require_root!();
    let s = Scenario::new("", "");
    let alias = Alias::create(&s);
    let e = s.enroll(&[]);
    let backup = e.backup_codes[0].clone();
    s.client()
        .answer(&backup)
        .run()
        .assert_result("PAM_SUCCESS");
    let again = Client::new(&s.service.name, &alias.0).answer(&backup).run();
    again.assert_result("PAM_AUTH_ERR");
    let step = e.settled_step(4);
    let code = e.code_for_step(step);
    Client::new(&s.service.name, &alias.0)
        .answer(&code)
        .run()
        .assert_result("PAM_SUCCESS");
    s.client().answer(&code).run().assert_result("PAM_AUTH_ERR");
    let dir = &s.config.state_dir;
    assert!(
        !dir.join(format!("{}.state", alias.0)).exists() && !dir.join(&alias.0).exists(),
        "no separate state for the alias"
    );
}
