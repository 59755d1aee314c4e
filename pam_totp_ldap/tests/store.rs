//! The directory store against a real slapd (tests/src/slapd.rs): the storage contract
//! (`store::conformance`, races included) over StartTLS and over ldapi, the token entries
//! shared with slapo-otp, and the refusals of the connection (TLS, credentials, schema).
//! Needs slapd (tests/install-deps.sh); runs as any user.

use pam_totp_core::directory::{DirectoryConfig, RawDirectory};
use pam_totp_core::secret::TotpSecret;
use pam_totp_core::secret_file::{Algorithm, Authenticator, Hotp, SecretFile};
use pam_totp_core::store::{Consumed, HotpUse, Replace, Store, TotpUse, UserInfo, conformance};
use pam_totp_core::{DirectoryProblem, StoreError};
use pam_totp_e2e::slapd::{Bind, Slapd, SlapdOptions};
use pam_totp_ldap::{Credentials, LdapStore};

fn config(text: &str) -> DirectoryConfig {
    toml::from_str::<RawDirectory>(text)
        .unwrap()
        .validate()
        .unwrap()
}

/// StartTLS with the test CA, bound as `dn` with the password in `file`.
fn starttls(slapd: &Slapd, dn: &str, file: &std::path::Path) -> DirectoryConfig {
    config(&format!(
        "uri = \"{}\"\nbase = \"ou=people,dc=example,dc=org\"\nbind_dn = \"{dn}\"\n\
         bind_password_file = \"{}\"\nca_file = \"{}\"\ntimeout = 3\n",
        slapd.ldap_uri(),
        file.display(),
        slapd.ca_file().display()
    ))
}

/// The admin's password in a 0600 file of the test's.
fn admin_file(slapd: &Slapd) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = slapd.dir().join("admin-password");
    std::fs::write(&path, format!("{}\n", slapd.admin_password())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn user(name: &str) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: 1,
        gid: 1,
        home: "/nonexistent".into(),
    }
}

fn enrollment(id: &str, hotp: bool) -> SecretFile {
    SecretFile {
        enrollment_id: id.into(),
        created: 1,
        authenticators: vec![Authenticator {
            name: "phone".into(),
            secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            added: 1,
            issuer: "test".into(),
            label: "conf".into(),
            hotp: hotp.then(|| Hotp {
                counter: 5,
                token_id: String::new(),
            }),
        }],
        backup: None,
        forget_hosts_before: 0,
    }
}

/// Runs the storage contract for user `conf`, each check on a fresh `cn=pam-totp` subtree.
fn contract(slapd: &Slapd, cfg: &DirectoryConfig, who: &Credentials) {
    let dn = slapd.add_user("conf", "pw");
    let make = || -> conformance::Subject {
        slapd.ldapdelete(Bind::Root, &format!("cn=pam-totp,{dn}"), true);
        Box::new(LdapStore::new(cfg.clone(), who.clone()))
    };
    conformance::run_all(&make, "conf");
}

#[test]
fn given_starttls_and_the_shipped_acl_then_the_store_contract_holds() {
    let slapd = Slapd::start_default();
    let cfg = starttls(&slapd, slapd.admin_dn(), &admin_file(&slapd));
    contract(&slapd, &cfg, &Credentials::Admin);
}

#[test]
fn given_ldapi_and_sasl_external_then_the_store_contract_holds() {
    let slapd = Slapd::start_default();
    let cfg = config(&format!(
        "uri = \"{}\"\nbase = \"ou=people,dc=example,dc=org\"\nbind = \"sasl-external\"\n",
        slapd.ldapi_uri()
    ));
    contract(&slapd, &cfg, &Credentials::Service);
}

#[test]
fn given_an_enrollment_then_keys_stay_in_oath_secret_and_steps_are_spent_on_the_token() {
    let slapd = Slapd::start_default();
    let dn = slapd.add_user("conf", "pw");
    let admin = LdapStore::new(
        starttls(&slapd, slapd.admin_dn(), &admin_file(&slapd)),
        Credentials::Admin,
    );
    let service = LdapStore::new(
        starttls(&slapd, slapd.service_dn(), &slapd.service_password_file()),
        Credentials::Service,
    );
    let conf = user("conf");
    admin
        .save_enrollment(&conf, &enrollment("e9", false), Replace::No)
        .unwrap();
    assert!(matches!(
        admin.save_enrollment(&conf, &enrollment("e9", false), Replace::No),
        Err(StoreError::Exists(_))
    ));
    // The service account reads the key back from oathSecret; the enrollment data has none.
    let back = service.load_enrollment(&conf).unwrap().unwrap();
    assert_eq!(
        back.authenticators[0].secret.expose(),
        b"12345678901234567890"
    );
    let data = slapd.ldapsearch(
        Bind::Root,
        &format!("cn=pam-totp,{dn}"),
        &["-s", "base", "pamTotpEnrollmentData"],
    );
    let text = data.values("pamTotpEnrollmentData").concat();
    assert!(text.contains("enrollment_id = \"e9\""), "{text}");
    assert!(
        !text.contains("secret"),
        "a key in the enrollment data: {text}"
    );
    // 32 racing logins with one step: one wins, on the token entry the service account writes.
    let used = |step| TotpUse {
        enrollment_id: "e9",
        authenticator: "phone",
        step,
        refund: None,
        success: None,
    };
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                if matches!(
                    service.consume_totp("conf", &used(500)).unwrap(),
                    Consumed::Accepted(_)
                ) {
                    wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
    let token = slapd.ldapsearch(
        Bind::Root,
        &format!("cn=phone,cn=pam-totp,{dn}"),
        &["-s", "base", "oathTOTPLastTimeStep"],
    );
    assert_eq!(token.values("oathTOTPLastTimeStep"), ["500"]);
    // A re-save of the same enrollment (new backup codes, say) keeps the step.
    admin
        .save_enrollment(&conf, &enrollment("e9", false), Replace::Yes)
        .unwrap();
    assert_eq!(
        service.consume_totp("conf", &used(500)).unwrap(),
        Consumed::AlreadyUsed
    );
    assert_eq!(
        service
            .state("conf")
            .unwrap()
            .unwrap()
            .last_step
            .get("phone"),
        Some(&500)
    );
    // A step someone else (slapo-otp) accepted is refused here.
    slapd
        .ldapmodify(
            Bind::Root,
            &format!(
                "dn: cn=phone,cn=pam-totp,{dn}\nchangetype: modify\nreplace: oathTOTPLastTimeStep\noathTOTPLastTimeStep: 510\n"
            ),
            &[],
        )
        .assert_ok("advance the step");
    assert_eq!(
        service.consume_totp("conf", &used(505)).unwrap(),
        Consumed::AlreadyUsed
    );
    assert!(matches!(
        service.consume_totp("conf", &used(511)).unwrap(),
        Consumed::Accepted(_)
    ));
    // HOTP: oathHOTPCounter holds the last counter accepted (slapo-otp's meaning).
    admin
        .save_enrollment(&conf, &enrollment("e10", true), Replace::Yes)
        .unwrap();
    let counter = || {
        slapd
            .ldapsearch(
                Bind::Root,
                &format!("cn=phone,cn=pam-totp,{dn}"),
                &["-s", "base", "oathHOTPCounter"],
            )
            .values("oathHOTPCounter")
    };
    assert_eq!(counter(), ["4"], "the code of counter 5 comes next");
    let hotp = |after| HotpUse {
        enrollment_id: "e10",
        authenticator: "phone",
        counter_after: after,
        refund: None,
        success: None,
    };
    assert!(matches!(
        service.consume_hotp("conf", &hotp(6)).unwrap(),
        Consumed::Accepted(_)
    ));
    assert_eq!(counter(), ["5"]);
    assert_eq!(
        service.consume_hotp("conf", &hotp(6)).unwrap(),
        Consumed::AlreadyUsed
    );
    assert_eq!(
        service
            .state("conf")
            .unwrap()
            .unwrap()
            .hotp_next("e10", "phone", 0),
        6
    );
    // The service account may not change keys (the shipped rules).
    let err = service
        .save_enrollment(&conf, &enrollment("e11", false), Replace::Yes)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Directory {
                problem: DirectoryProblem::Access,
                ..
            }
        ),
        "{err}"
    );
}

fn problem(cfg: DirectoryConfig) -> (DirectoryProblem, String) {
    let store = LdapStore::new(cfg, Credentials::Service);
    match store.load_enrollment(&user("conf")) {
        Err(StoreError::Directory {
            problem, server, ..
        }) => (problem, server),
        other => panic!("expected a directory error, got {other:?}"),
    }
}

#[test]
fn given_bad_tls_credentials_or_schema_then_each_fails_with_its_problem() {
    let slapd = Slapd::start_default();
    slapd.add_user("conf", "pw");
    let good = starttls(&slapd, slapd.service_dn(), &slapd.service_password_file());
    // The test CA works; another CA is refused, over StartTLS and over ldaps.
    assert!(
        LdapStore::new(good.clone(), Credentials::Service)
            .load_enrollment(&user("conf"))
            .unwrap()
            .is_none()
    );
    let mut wrong_ca = good.clone();
    wrong_ca.ca_file = Some(slapd.wrong_ca_file());
    assert_eq!(problem(wrong_ca.clone()).0, DirectoryProblem::Tls);
    let mut ldaps = config(&format!(
        "uri = \"{}\"\nbase = \"ou=people,dc=example,dc=org\"\nbind = \"sasl-external\"\nca_file = \"{}\"\n",
        slapd.ldaps_uri(),
        slapd.wrong_ca_file().display()
    ));
    assert_eq!(problem(ldaps.clone()).0, DirectoryProblem::Tls);
    ldaps.ca_file = Some(slapd.ca_file());
    // The right CA, but SASL EXTERNAL over TLS without a client certificate: no identity.
    assert_ne!(problem(ldaps).0, DirectoryProblem::Tls);
    // A wrong password.
    use std::os::unix::fs::PermissionsExt;
    let bad = slapd.dir().join("bad-password");
    std::fs::write(&bad, "nope\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (p, server) = problem(starttls(&slapd, slapd.service_dn(), &bad));
    assert_eq!(p, DirectoryProblem::Credentials);
    assert_eq!(server, slapd.ldap_uri());
    // A password file others can read is refused before it is sent.
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        problem(starttls(&slapd, slapd.service_dn(), &bad)).0,
        DirectoryProblem::Credentials
    );
    // No server: the first URI refuses connections, the second works.
    let mut two = good.clone();
    let mut dead = two.servers[0].clone();
    dead.port = pam_totp_e2e::slapd::free_port();
    dead.uri = format!("ldap://127.0.0.1:{}", dead.port);
    two.servers.insert(0, dead.clone());
    assert!(
        LdapStore::new(two, Credentials::Service)
            .load_enrollment(&user("conf"))
            .unwrap()
            .is_none()
    );
    let mut none = good;
    none.servers = vec![dead];
    assert_eq!(problem(none).0, DirectoryProblem::Unreachable);
    // Without the schema.
    let bare = Slapd::start(SlapdOptions {
        schema: false,
        acl: false,
    });
    bare.add_user("conf", "pw");
    let cfg = config(&format!(
        "uri = \"{}\"\nbase = \"ou=people,dc=example,dc=org\"\nbind = \"sasl-external\"\n",
        bare.ldapi_uri()
    ));
    assert_eq!(problem(cfg).0, DirectoryProblem::Schema);
}

/// The certificate's name is checked: the test certificate names `localhost` and 127.0.0.1, and
/// `wrong.example`, made to resolve to 127.0.0.1 by nss_wrapper in a child process of this test
/// binary, reaches the same server under a name the certificate does not carry.
#[test]
fn given_a_name_the_certificate_does_not_carry_then_tls_refuses() {
    const INNER: &str = "PAM_TOTP_TEST_LDAPS_PORT";
    let uri = |host: &str, port: &str, dir: &str| {
        config(&format!(
            "uri = \"ldaps://{host}:{port}\"\nbase = \"ou=people,dc=example,dc=org\"\n\
             bind = \"sasl-external\"\nca_file = \"{dir}/ca.pem\"\n"
        ))
    };
    if let Ok(port) = std::env::var(INNER) {
        let dir = std::env::var("PAM_TOTP_TEST_CA_DIR").unwrap();
        // The right name gets past TLS (SASL EXTERNAL then has no identity: not a TLS error).
        let store = LdapStore::new(uri("localhost", &port, &dir), Credentials::Service);
        assert!(!matches!(
            store.load_enrollment(&user("conf")),
            Err(StoreError::Directory {
                problem: DirectoryProblem::Tls,
                ..
            })
        ));
        let store = LdapStore::new(uri("wrong.example", &port, &dir), Credentials::Service);
        match store.load_enrollment(&user("conf")) {
            Err(StoreError::Directory {
                problem: DirectoryProblem::Tls,
                detail,
                ..
            }) => assert!(detail.contains("not valid for name"), "{detail}"),
            other => panic!("expected a TLS refusal, got {other:?}"),
        }
        return;
    }
    let wrapper = std::path::Path::new("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so");
    assert!(
        wrapper.exists(),
        "libnss-wrapper is missing: tests/install-deps.sh"
    );
    let slapd = Slapd::start_default();
    let hosts = slapd.dir().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 wrong.example\n127.0.0.1 localhost\n").unwrap();
    let ca_dir = slapd.dir().join("ca-copy");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(slapd.ca_file(), ca_dir.join("ca.pem")).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "given_a_name_the_certificate_does_not_carry_then_tls_refuses",
            "--nocapture",
        ])
        .env(INNER, slapd.ldaps_port().to_string())
        .env("PAM_TOTP_TEST_CA_DIR", &ca_dir)
        .env("LD_PRELOAD", wrapper)
        .env("NSS_WRAPPER_HOSTS", &hosts)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "inner run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn given_no_server_answers_then_later_operations_of_the_store_fail_at_once() {
    let mut slapd = Slapd::start_default();
    slapd.add_user("conf", "pw");
    let mut cfg = starttls(&slapd, slapd.service_dn(), &slapd.service_password_file());
    cfg.connect_timeout = std::time::Duration::from_secs(1);
    slapd.pause();
    let store = LdapStore::new(cfg, Credentials::Service);
    // The first operation waits for the connect time-out; the next ones (a login reads the
    // enrollment, then the state) do not wait for it again.
    let start = std::time::Instant::now();
    let first = store.load_enrollment(&user("conf"));
    assert!(start.elapsed() >= std::time::Duration::from_millis(900));
    let start = std::time::Instant::now();
    let second = store.state("conf");
    let took = start.elapsed();
    slapd.resume();
    for result in [first.map(|_| ()), second.map(|_| ())] {
        assert!(
            matches!(
                result,
                Err(StoreError::Directory {
                    problem: DirectoryProblem::Timeout,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    // Well under the one-second connect time-out it would have waited again (not a speed
    // figure: slack for a busy machine).
    assert!(
        took < std::time::Duration::from_millis(500),
        "the second operation waited {took:?}"
    );
}
