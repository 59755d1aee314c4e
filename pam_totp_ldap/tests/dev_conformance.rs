use pam_totp_core::directory::RawDirectory;
use pam_totp_core::store::conformance;
use pam_totp_ldap::{Credentials, LdapStore};

#[test]
fn dev_conformance() {
    let Ok(uri) = std::env::var("DEV_LDAP_URI") else {
        return;
    };
    let text = format!(
        "uri = \"{uri}\"\nbase = \"dc=example,dc=org\"\nbind = \"sasl-external\"\ntimeout = 2\n"
    );
    let cfg = toml::from_str::<RawDirectory>(&text)
        .unwrap()
        .validate()
        .unwrap();
    let make = || -> conformance::Subject {
        let _ = std::process::Command::new("ldapdelete")
            .args([
                "-Q",
                "-Y",
                "EXTERNAL",
                "-H",
                &uri,
                "-r",
                "cn=pam-totp,uid=conf,ou=people,dc=example,dc=org",
            ])
            .status();
        Box::new(LdapStore::new(cfg.clone(), Credentials::Service))
    };
    conformance::run_all(&make, "conf");
}

#[test]
fn dev_tokens() {
    use pam_totp_core::secret::TotpSecret;
    use pam_totp_core::secret_file::{Algorithm, Authenticator, SecretFile};
    use pam_totp_core::store::{Consumed, Replace, Store, TotpUse, UserInfo};
    let Ok(uri) = std::env::var("DEV_LDAP_URI") else {
        return;
    };
    let text = format!(
        "uri = \"{uri}\"\nbase = \"dc=example,dc=org\"\nbind = \"sasl-external\"\ntimeout = 2\n"
    );
    let cfg = toml::from_str::<RawDirectory>(&text)
        .unwrap()
        .validate()
        .unwrap();
    let _ = std::process::Command::new("ldapdelete")
        .args([
            "-Q",
            "-Y",
            "EXTERNAL",
            "-H",
            &uri,
            "-r",
            "cn=pam-totp,uid=conf,ou=people,dc=example,dc=org",
        ])
        .status();
    let store = LdapStore::new(cfg.clone(), Credentials::Service);
    let file = SecretFile {
        enrollment_id: "e9".into(),
        created: 1,
        authenticators: vec![Authenticator {
            name: "phone".into(),
            secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            added: 1,
            issuer: "x".into(),
            label: "conf".into(),
            hotp: None,
        }],
        backup: None,
        forget_hosts_before: 0,
    };
    let user = UserInfo {
        name: "conf".into(),
        uid: 1,
        gid: 1,
        home: "/".into(),
    };
    store.save_enrollment(&user, &file, Replace::No).unwrap();
    assert!(store.save_enrollment(&user, &file, Replace::No).is_err());
    let back = store.load_enrollment(&user).unwrap().unwrap();
    assert_eq!(
        back.authenticators[0].secret.expose(),
        b"12345678901234567890"
    );
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                let u = TotpUse {
                    enrollment_id: "e9",
                    authenticator: "phone",
                    step: 500,
                    refund: None,
                    success: None,
                };
                if matches!(
                    store.consume_totp("conf", &u).unwrap(),
                    Consumed::Accepted(_)
                ) {
                    wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
    store.save_enrollment(&user, &file, Replace::Yes).unwrap();
    let u = TotpUse {
        enrollment_id: "e9",
        authenticator: "phone",
        step: 500,
        refund: None,
        success: None,
    };
    assert_eq!(
        store.consume_totp("conf", &u).unwrap(),
        Consumed::AlreadyUsed,
        "a re-save keeps the step"
    );
    assert_eq!(
        store.state("conf").unwrap().unwrap().last_step.get("phone"),
        Some(&500)
    );
}
