//! The directory side of the LDAP backend (issue 11), checked with a real slapd and ldap-utils
//! only: the test server itself (tests/src/slapd.rs), the shipped schema
//! (packaging/ldap/pam-totp*.{schema,ldif}) and ACL (packaging/ldap/pam-totp-acl.ldif), the
//! compare-and-set shapes the backend relies on, slapo-otp on a token entry laid out as the
//! design says, and replication between two providers in mirror mode.
//!
//! Only the test of `add_user` with a local account needs root (it creates the account): slapd
//! runs as the test's user on unprivileged ports.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pam_totp_e2e::harness::TestUser;
use pam_totp_e2e::require_root;
use pam_totp_e2e::slapd::{
    ADMINS_GROUP, Bind, LdapOutput, MirrorPair, PEOPLE_BASE, Slapd, SlapdOptions, base64_encode,
    shipped_file,
};

/// The project's OID arc (docs: ldap-design, packaging/ldap/pam-totp.schema).
const ARC: &str = "2.25.284677871116119141608736914794955820358";
/// RFC 6238 appendix B's SHA-1 key, as raw bytes ("12345678901234567890").
const KEY: &[u8] = b"12345678901234567890";

/// The enrollment entry and one TOTP token entry below `user_dn`, laid out as the design says
/// (ldap-design.md "Directory layout").
fn enrollment_ldif(user_dn: &str, enrollment_id: &str, token: &str, key: &[u8]) -> String {
    let enrollment = format!("cn=pam-totp,{user_dn}");
    let token_dn = format!("cn={token},{enrollment}");
    format!(
        "dn: {enrollment}\nobjectClass: device\nobjectClass: pamTotpAccount\ncn: pam-totp\n\
         owner: {user_dn}\npamTotpEnrollmentId: {enrollment_id}\n\
         pamTotpEnrollmentData: authenticators = [\"{token}\"]\npamTotpState: v1\n\n\
         dn: {token_dn}\nobjectClass: device\nobjectClass: oathTOTPToken\n\
         objectClass: oathTOTPParams\nobjectClass: pamTotpToken\ncn: {token}\n\
         owner: {user_dn}\npamTotpEnrollmentId: {enrollment_id}\noathSecret:: {}\n\
         oathTOTPParams: {token_dn}\noathOTPLength: 6\noathHMACAlgorithm: 1.2.840.113549.2.7\n\
         oathTOTPTimeStepPeriod: 30\noathTOTPTimeStepWindow: 1\noathTOTPLastTimeStep: 0\n\
         oathFailureCount: 0\n",
        base64_encode(key)
    )
}

/// Only the token entry of [`enrollment_ldif`], named `token`.
fn token_ldif(user_dn: &str, enrollment_id: &str, token: &str) -> String {
    let both = enrollment_ldif(user_dn, enrollment_id, token, KEY);
    let (_, token_entry) = both.split_once("\n\n").expect("two entries");
    token_entry.to_string()
}

/// A one-change Modify record.
fn modify(dn: &str, op: &str, attr: &str, value: &str) -> String {
    format!("dn: {dn}\nchangetype: modify\n{op}: {attr}\n{attr}: {value}\n")
}

/// Replaces each (dn, attribute, value) in a Modify of its own, bound as `bind`, and asserts the
/// result code `expected` for each (`who` names the binder in the message).
fn replace_each(
    slapd: &Slapd,
    bind: Bind<'_>,
    expected: i32,
    who: &str,
    changes: &[(&str, &str, &str)],
) {
    for (dn, attr, value) in changes {
        slapd
            .ldapmodify(bind, &modify(dn, "replace", attr, value), &[])
            .assert_code(expected, &format!("{who} {attr} of {dn}"));
    }
}

/// The token entry of `user_dn` named `token`.
fn token_dn(user_dn: &str, token: &str) -> String {
    format!("cn={token},cn=pam-totp,{user_dn}")
}

/// Two users with an enrollment each (added by the admin account, as `pam-totp enroll` run by
/// root would), each with their own password.
struct TwoUsers {
    a: String,
    b: String,
}

const A_PASSWORD: &str = "a-password-1";
const B_PASSWORD: &str = "b-password-2";

fn two_enrolled_users(slapd: &Slapd) -> TwoUsers {
    let a = slapd.add_user("alice", A_PASSWORD);
    let b = slapd.add_user("bob", B_PASSWORD);
    slapd
        .ldapadd(
            slapd.admin_bind(),
            &enrollment_ldif(&a, "ea", "phone", b"alice's key 12345678"),
        )
        .assert_ok("admin enrolls A");
    slapd
        .ldapadd(
            slapd.admin_bind(),
            &enrollment_ldif(&b, "eb", "phone", b"bob's key 1234567890"),
        )
        .assert_ok("admin enrolls B");
    TwoUsers { a, b }
}

fn as_user<'a>(dn: &'a str, password: &'a str) -> Bind<'a> {
    Bind::Simple { dn, password }
}

/// Every (dn, attribute) pair an LDIF output holds.
fn attributes_seen(out: &LdapOutput) -> Vec<(String, String)> {
    let mut dn = String::new();
    let mut seen = Vec::new();
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix("dn: ") {
            dn = rest.to_string();
        } else if let Some((name, _)) = line.split_once(':') {
            if !name.is_empty() {
                seen.push((dn.clone(), name.to_ascii_lowercase()));
            }
        }
    }
    seen
}

/// The current TOTP step (30 s).
fn now_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        / 30
}

/// `oathtool --totp` for a raw key (hex on the command line: a test key, not a real secret).
fn oathtool_code(key: &[u8]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("oathtool")
        .args(["--totp", &hex])
        .output()
        .unwrap_or_else(|e| panic!("cannot run oathtool: {e} (tests/install-deps.sh)"));
    assert!(out.status.success(), "oathtool failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn last_step(slapd: &Slapd, token: &str) -> u64 {
    let out = slapd.ldapsearch(Bind::Root, token, &["-s", "base", "oathTOTPLastTimeStep"]);
    out.assert_ok("reading oathTOTPLastTimeStep");
    out.values("oathTOTPLastTimeStep")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no oathTOTPLastTimeStep in {}", out.stdout))
}

// ---------------------------------------------------------------------------------------------
// The test server

#[test]
fn given_test_slapd_then_it_answers_on_all_uris_quickly_and_drop_removes_everything() {
    let slapd = Slapd::start_default();
    eprintln!(
        "slapd start (config, TLS, data, ACL, first answer): {:?}",
        slapd.started_in()
    );
    let pid = slapd.pid().expect("running");
    let dir = slapd.dir().to_path_buf();
    assert!(slapd.answers());
    for bind in [Bind::Root, Bind::Anonymous] {
        slapd
            .ldapsearch(
                bind,
                "",
                &["-s", "base", "(objectClass=*)", "namingContexts"],
            )
            .assert_ok("root DSE")
            .values("namingContexts")
            .contains(&"dc=example,dc=org".to_string())
            .then_some(())
            .expect("the root DSE names the suffix");
    }
    let whoami = slapd.tool("ldapwhoami", Bind::Root, None, &[], None);
    whoami.assert_ok("ldapwhoami over ldapi");
    assert!(
        whoami.stdout.trim() == "dn:cn=admin,dc=example,dc=org",
        "ldapi peer credentials are mapped to the rootDN: {}",
        whoami.stdout
    );
    // Secrets 0600; what a test user's CLI needs (the directory, the CA) readable.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions(),
        ) & 0o777
    };
    for secret in ["service-password", "server.key", "config.ldif", "base.ldif"] {
        assert_eq!(mode(&slapd.dir().join(secret)), 0o600, "{secret}");
    }
    assert_eq!(mode(slapd.dir()), 0o755);
    assert_eq!(
        mode(&slapd.ca_file()) & 0o004,
        0o004,
        "ca.pem is world-readable"
    );
    // The service account's password file holds the password, no newline.
    let password = std::fs::read_to_string(slapd.service_password_file()).expect("read");
    assert_eq!(password, slapd.service_password());
    slapd
        .tool("ldapwhoami", slapd.service_bind(), None, &[], None)
        .assert_ok("the service account binds with the password from its file");
    slapd
        .tool("ldapwhoami", slapd.admin_bind(), None, &[], None)
        .assert_ok("the admin account binds");
    slapd
        .ldapsearch(
            Bind::Root,
            ADMINS_GROUP,
            &["-s", "base", &format!("(member={})", slapd.admin_dn())],
        )
        .assert_ok("admin group")
        .dns()
        .first()
        .expect("the admin account is in the admins group");
    drop(slapd);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "slapd {pid} still runs after drop"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn given_test_slapd_then_stop_restart_pause_resume_keep_the_data() {
    let mut slapd = Slapd::start_default();
    let dn = slapd.add_user("carol", "pw");
    slapd.stop();
    assert!(!slapd.answers(), "stopped slapd still answers");
    assert_eq!(slapd.pid(), None);
    let t = Instant::now();
    slapd.restart();
    eprintln!("slapd restart on the same data: {:?}", t.elapsed());
    slapd
        .tool("ldapwhoami", as_user(&dn, "pw"), None, &[], None)
        .assert_ok("the user added before the restart binds after it");
    slapd.pause();
    let t = Instant::now();
    assert!(!slapd.answers(), "a SIGSTOPped slapd answered");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "the probe waited for its time-out"
    );
    slapd.resume();
    assert!(slapd.answers(), "slapd answers again after SIGCONT");
    // Dropped while paused: it still goes away.
    slapd.pause();
    let pid = slapd.pid().expect("running");
    drop(slapd);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "paused slapd survived drop"
    );
}

#[test]
fn given_local_user_then_add_user_gives_the_directory_entry_its_ids_and_home() {
    require_root!();
    let user = TestUser::create();
    let slapd = Slapd::start_default();
    let dn = slapd.add_user(&user.name, "local-pw");
    assert_eq!(dn, format!("uid={},{PEOPLE_BASE}", user.name));
    let out = slapd.ldapsearch(
        Bind::Root,
        &dn,
        &[
            "-s",
            "base",
            "(objectClass=posixAccount)",
            "uidNumber",
            "gidNumber",
            "homeDirectory",
        ],
    );
    out.assert_ok("reading the user entry");
    assert_eq!(out.values("uidNumber"), [user.uid.to_string()]);
    assert_eq!(out.values("gidNumber"), [user.gid.to_string()]);
    assert_eq!(
        out.values("homeDirectory"),
        [user.home.display().to_string()]
    );
    slapd
        .tool("ldapwhoami", as_user(&dn, "local-pw"), None, &[], None)
        .assert_ok("the user binds with the password given");
}

// ---------------------------------------------------------------------------------------------
// Schema

/// The definitions under the project's arc in a schema text in any of the three shipped formats:
/// OID -> the text between the outer parentheses, whitespace collapsed, without X-ORIGIN (only
/// the 389-ds file has it).
fn schema_definitions(text: &str) -> BTreeMap<String, String> {
    // Comments out, LDIF / slapd.conf continuation lines joined.
    let mut joined = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if line.starts_with(' ') || line.starts_with('\t') {
            joined.push_str(line);
        } else {
            joined.push('\n');
            joined.push_str(line);
        }
    }
    // Every top-level parenthesised group, parentheses in quoted strings ignored.
    let mut groups = Vec::new();
    let (mut depth, mut quoted, mut current) = (0u32, false, String::new());
    for c in joined.chars() {
        match c {
            '\'' if depth > 0 => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                if depth == 1 {
                    current.clear();
                    continue;
                }
            }
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    groups.push(std::mem::take(&mut current));
                    continue;
                }
            }
            _ => {}
        }
        if depth > 0 {
            current.push(c);
        }
    }
    let mut defs = BTreeMap::new();
    for group in groups {
        let words: Vec<&str> = group.split_whitespace().collect();
        let Some((oid, rest)) = words.split_first() else {
            continue;
        };
        if !oid.starts_with(ARC) {
            continue;
        }
        let body = rest.join(" ");
        let body = body.split(" X-ORIGIN").next().unwrap_or(&body).to_string();
        defs.insert(oid.to_string(), body);
    }
    defs
}

#[test]
fn given_the_three_shipped_schema_files_then_they_define_the_same_schema_as_the_design() {
    let read = |name: &str| std::fs::read_to_string(shipped_file(name)).expect(name);
    let conf = schema_definitions(&read("pam-totp.schema"));
    let ldif = schema_definitions(&read("pam-totp.ldif"));
    let ds = schema_definitions(&read("389ds-99pam-totp.ldif"));
    assert_eq!(conf, ldif, "pam-totp.schema and pam-totp.ldif differ");
    assert_eq!(conf, ds, "pam-totp.schema and 389ds-99pam-totp.ldif differ");
    let ia5 = "1.3.6.1.4.1.1466.115.121.1.26";
    let octets = "1.3.6.1.4.1.1466.115.121.1.40";
    let expected = [
        ("1.1", format!("NAME 'pamTotpEnrollmentId' DESC 'pam-totp: identifier of one enrollment' EQUALITY caseExactIA5Match SYNTAX {ia5} SINGLE-VALUE")),
        ("1.2", format!("NAME 'pamTotpEnrollmentData' DESC 'pam-totp: enrollment data without keys (TOML)' EQUALITY octetStringMatch SYNTAX {octets} SINGLE-VALUE")),
        ("1.3", format!("NAME 'pamTotpState' DESC 'pam-totp: login state (TOML)' EQUALITY octetStringMatch SYNTAX {octets} SINGLE-VALUE")),
        ("2.1", "NAME 'pamTotpAccount' DESC 'pam-totp: enrollment of one user' AUXILIARY MAY ( pamTotpEnrollmentId $ pamTotpEnrollmentData $ pamTotpState )".to_string()),
        ("2.2", "NAME 'pamTotpToken' DESC 'pam-totp: one authenticator of an enrollment' AUXILIARY MUST pamTotpEnrollmentId".to_string()),
    ];
    let expected: BTreeMap<String, String> = expected
        .into_iter()
        .map(|(n, d)| (format!("{ARC}.{n}"), d))
        .collect();
    assert_eq!(conf, expected);
}

#[test]
fn given_otp_module_and_shipped_schema_then_both_are_in_the_subschema() {
    let slapd = Slapd::start_default();
    let out = slapd.ldapsearch(
        Bind::Anonymous,
        "cn=subschema",
        &[
            "-s",
            "base",
            "(objectClass=*)",
            "attributeTypes",
            "objectClasses",
        ],
    );
    out.assert_ok("reading cn=subschema");
    let attrs = out.values("attributeTypes");
    let classes = out.values("objectClasses");
    let has = |list: &[String], name: &str, must: &[&str]| {
        let def = list
            .iter()
            .find(|d| d.contains(&format!("NAME '{name}'")))
            .unwrap_or_else(|| panic!("{name} is not in cn=subschema"));
        for m in must {
            assert!(def.contains(m), "{name}: {def} lacks {m}");
        }
    };
    // From `moduleload otp` (OATH-LDAP).
    for name in [
        "oathSecret",
        "oathTOTPLastTimeStep",
        "oathFailureCount",
        "oathLastFailure",
        "oathLastLogin",
        "oathTOTPParams",
        "oathOTPLength",
        "oathHMACAlgorithm",
        "oathTOTPTimeStepPeriod",
        "oathTOTPTimeStepWindow",
        "oathHOTPCounter",
    ] {
        has(&attrs, name, &["1.3.6.1.4.1.5427.1.389.4226."]);
    }
    for name in [
        "oathTOTPToken",
        "oathTOTPParams",
        "oathTOTPUser",
        "oathHOTPToken",
    ] {
        has(&classes, name, &["AUXILIARY"]);
    }
    // From packaging/ldap/pam-totp.ldif.
    has(
        &attrs,
        "pamTotpEnrollmentId",
        &[
            &format!("( {ARC}.1.1 "),
            "SINGLE-VALUE",
            "caseExactIA5Match",
        ],
    );
    has(
        &attrs,
        "pamTotpEnrollmentData",
        &[
            &format!("( {ARC}.1.2 "),
            "1.3.6.1.4.1.1466.115.121.1.40",
            "SINGLE-VALUE",
        ],
    );
    has(
        &attrs,
        "pamTotpState",
        &[&format!("( {ARC}.1.3 "), "octetStringMatch", "SINGLE-VALUE"],
    );
    has(
        &classes,
        "pamTotpAccount",
        &[
            &format!("( {ARC}.2.1 "),
            "AUXILIARY",
            "MAY ( pamTotpEnrollmentId $ pamTotpEnrollmentData $ pamTotpState )",
        ],
    );
    has(
        &classes,
        "pamTotpToken",
        &[&format!("( {ARC}.2.2 "), "AUXILIARY"],
    );
    // And an enrollment laid out as the design says is accepted by the schema checks.
    let user = slapd.add_user("dave", "pw");
    slapd
        .ldapadd(Bind::Root, &enrollment_ldif(&user, "e1", "phone", KEY))
        .assert_ok("design layout under the shipped schema");
}

#[test]
fn given_schema_left_out_then_pam_totp_entries_are_refused() {
    let slapd = Slapd::start(SlapdOptions {
        schema: false,
        ..SlapdOptions::default()
    });
    let out = slapd.ldapsearch(
        Bind::Anonymous,
        "cn=subschema",
        &["-s", "base", "(objectClass=*)", "attributeTypes"],
    );
    out.assert_ok("reading cn=subschema");
    assert!(!out.stdout.contains("pamTotpState"), "schema was loaded");
    assert!(
        out.stdout.contains("oathSecret"),
        "the otp module is still there"
    );
    // The shipped ACL names the schema's attributes: slapd refuses it without the schema.
    let acl = slapd.dir().join("acl-without-schema.ldif");
    std::fs::write(&acl, pam_totp_e2e::slapd::shipped_acl("{1}mdb")).expect("write ACL");
    let out = slapd.tool(
        "ldapmodify",
        Bind::Root,
        None,
        &["-f", &acl.to_string_lossy()],
        None,
    );
    assert_eq!(out.code, 80, "ACL without schema: {out:?}");
    let user = slapd.add_user("erin", "pw");
    let add = slapd.ldapadd(Bind::Root, &enrollment_ldif(&user, "e1", "phone", KEY));
    assert!(
        add.code == 17 || add.code == 21 || add.code == 65,
        "an enrollment without the schema must fail (undefined type / objectclass): {add:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn given_test_ca_then_starttls_and_ldaps_work_and_the_wrong_ca_is_refused() {
    let slapd = Slapd::start_default();
    let ca = slapd.ca_file();
    let wrong = slapd.wrong_ca_file();
    let ldap = slapd.ldap_uri();
    let ldaps = slapd.ldaps_uri();
    let search = |uri: &str, starttls: bool, cafile: &Path| {
        let mut args = vec!["-LLL", "-b", "", "-s", "base", "(objectClass=*)", "1.1"];
        if starttls {
            args.insert(0, "-ZZ");
        }
        let cafile = cafile.to_string_lossy().into_owned();
        slapd.tool_env(
            "ldapsearch",
            Bind::Anonymous,
            Some(uri),
            &args,
            None,
            &[("LDAPTLS_CACERT", &cafile), ("LDAPTLS_REQCERT", "demand")],
        )
    };
    search(&ldap, true, &ca).assert_ok("StartTLS with the test CA");
    search(&ldaps, false, &ca).assert_ok("ldaps with the test CA");
    for (uri, starttls, what) in [(&ldap, true, "StartTLS"), (&ldaps, false, "ldaps")] {
        let out = search(uri, starttls, &wrong);
        assert_ne!(out.code, 0, "{what} with the wrong CA succeeded: {out:?}");
        // The server is still there: the refusal was the certificate's.
        search(uri, starttls, &ca).assert_ok(&format!("{what} with the test CA again"));
    }
    // The names a client may check (rustls checks the name; OpenLDAP's client compares it with
    // the canonical host name of the address, so it is not used for that here).
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(slapd.dir().join("server.pem"))
        .output()
        .expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("IP Address:127.0.0.1") && text.contains("DNS:localhost"),
        "server certificate SAN: {text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Access control (packaging/ldap/pam-totp-acl.ldif)

#[test]
fn given_two_users_then_a_cannot_read_or_change_b_enrollment() {
    let slapd = Slapd::start_default();
    let TwoUsers { a, b } = two_enrolled_users(&slapd);
    let alice = as_user(&a, A_PASSWORD);
    // Reading: nothing of B's subtree is visible to A, whatever A asks for.
    let out = slapd.ldapsearch(alice, &b, &["(objectClass=*)", "*", "+"]);
    out.assert_ok("A searches below B");
    let seen = attributes_seen(&out);
    assert!(
        seen.iter().all(|(dn, _)| !dn.contains("cn=pam-totp")),
        "A sees B's enrollment entries: {seen:?}"
    );
    for filter in [
        "(oathSecret=*)",
        "(pamTotpEnrollmentData=*)",
        "(objectClass=pamTotpAccount)",
    ] {
        let out = slapd.ldapsearch(alice, PEOPLE_BASE, &[filter, "1.1"]);
        let dns = out.dns();
        assert!(
            dns.iter().all(|dn| dn.ends_with(&a)),
            "A finds other users' entries with {filter}: {dns:?}"
        );
    }
    let token_b = token_dn(&b, "phone");
    let base = slapd.ldapsearch(
        alice,
        &token_b,
        &["-s", "base", "(objectClass=*)", "oathSecret"],
    );
    assert!(
        base.values("oathSecret").is_empty(),
        "A reads B's secret: {base:?}"
    );
    // Changing: every kind of write to B's subtree is refused (50).
    let enrollment_b = format!("cn=pam-totp,{b}");
    replace_each(
        &slapd,
        alice,
        50,
        "A replaces B's",
        &[
            (token_b.as_str(), "oathTOTPLastTimeStep", "99999999999"),
            (token_b.as_str(), "oathSecret", "x"),
            (enrollment_b.as_str(), "pamTotpState", "owned"),
            (enrollment_b.as_str(), "pamTotpEnrollmentData", "owned"),
        ],
    );
    slapd
        .ldapdelete(alice, &token_b, false)
        .assert_code(50, "A deletes B's token");
    slapd
        .ldapadd(alice, &token_ldif(&b, "eb", "alices"))
        .assert_code(50, "A adds a token below B");
    // B's data is unchanged.
    let out = slapd.ldapsearch(
        Bind::Root,
        &enrollment_b,
        &["-s", "base", "(objectClass=*)"],
    );
    assert_eq!(out.values("pamTotpState"), ["v1"]);
}

/// [`enrollment_ldif`] as `pam-totp enroll` run by the user writes it: no login state.
fn own_enrollment_ldif(user_dn: &str, enrollment_id: &str, token: &str, key: &[u8]) -> String {
    enrollment_ldif(user_dn, enrollment_id, token, key)
        .replace("pamTotpState: v1\n", "")
        .replace("oathFailureCount: 0\n", "")
}

#[test]
fn given_a_user_then_they_enroll_once_but_cannot_read_change_or_remove_their_key() {
    let slapd = Slapd::start_default();
    let a = slapd.add_user("frank", A_PASSWORD);
    let alice = as_user(&a, A_PASSWORD);
    let token = token_dn(&a, "phone");
    let enrollment = format!("cn=pam-totp,{a}");
    slapd
        .ldapadd(alice, &own_enrollment_ldif(&a, "e1", "phone", KEY))
        .assert_ok("the user adds their own enrollment and token");
    // Reads the enrollment back, but never the key: their password alone must not give it.
    let out = slapd.ldapsearch(
        alice,
        &enrollment,
        &["(objectClass=*)", "oathSecret", "pamTotpEnrollmentData"],
    );
    out.assert_ok("the user reads their own enrollment");
    assert!(
        out.values("oathSecret").is_empty(),
        "the user reads their key"
    );
    assert_eq!(out.values("pamTotpEnrollmentData").len(), 1);
    // Changes neither the key, nor the enrollment, nor the last step, counters or used codes.
    replace_each(
        &slapd,
        alice,
        50,
        "the user replaces their own",
        &[
            (token.as_str(), "oathSecret", "another key 12345678"),
            (token.as_str(), "oathTOTPLastTimeStep", "5"),
            (token.as_str(), "oathFailureCount", "0"),
            (
                enrollment.as_str(),
                "pamTotpEnrollmentData",
                "authenticators = []",
            ),
            (enrollment.as_str(), "pamTotpEnrollmentId", "e2"),
            (enrollment.as_str(), "pamTotpState", "v2"),
        ],
    );
    // Cannot plant an entry a user search would find (uid, posixAccount) in their subtree,
    // neither by adding it nor by changing a token entry into one.
    let fake = format!(
        "dn: cn=mallory,{enrollment}\nobjectClass: device\nobjectClass: posixAccount\n\
         cn: mallory\nuid: mallory\nuidNumber: 0\ngidNumber: 0\nhomeDirectory: /root\n"
    );
    slapd
        .ldapadd(alice, &fake)
        .assert_code(50, "planting a posixAccount entry");
    let into_fake = format!(
        "dn: {token}\nchangetype: modify\nadd: objectClass\nobjectClass: posixAccount\n-\n\
         add: uid\nuid: mallory\n-\nadd: uidNumber\nuidNumber: 0\n-\nadd: gidNumber\n\
         gidNumber: 0\n-\nadd: homeDirectory\nhomeDirectory: /root\n"
    );
    slapd
        .ldapmodify(alice, &into_fake, &[])
        .assert_code(50, "turning a token into a posixAccount");
    // Cannot remove it (an attacker with the password would then enroll their own key).
    slapd
        .ldapdelete(alice, &token, false)
        .assert_code(50, "the user deletes their token");
    slapd
        .ldapdelete(alice, &enrollment, true)
        .assert_code(50, "the user deletes their enrollment");
    // An administrator can.
    slapd
        .ldapdelete(slapd.admin_bind(), &enrollment, true)
        .assert_ok("the admin removes the enrollment");
    let out = slapd.ldapsearch(Bind::Root, &a, &["(objectClass=device)", "1.1"]);
    assert!(out.dns().is_empty(), "entries left: {}", out.stdout);
}

#[test]
fn given_validator_then_it_reads_secrets_and_writes_only_login_state() {
    let slapd = Slapd::start_default();
    let TwoUsers { b, .. } = two_enrolled_users(&slapd);
    let v = slapd.service_bind();
    let token = token_dn(&b, "phone");
    let enrollment = format!("cn=pam-totp,{b}");
    // Finds the user and reads the enrollment, secret included.
    let out = slapd.ldapsearch(
        v,
        PEOPLE_BASE,
        &["(&(objectClass=posixAccount)(uid=bob))", "1.1"],
    );
    assert_eq!(out.dns(), [b.as_str()]);
    let out = slapd.ldapsearch(v, &enrollment, &["(objectClass=*)", "*"]);
    out.assert_ok("validator reads the enrollment");
    assert_eq!(out.values("oathSecret"), ["bob's key 1234567890"]);
    assert_eq!(out.values("pamTotpEnrollmentData").len(), 1);
    // Writes login state.
    replace_each(
        &slapd,
        v,
        0,
        "validator writes",
        &[
            (token.as_str(), "oathTOTPLastTimeStep", "7"),
            (token.as_str(), "oathFailureCount", "1"),
            (token.as_str(), "oathLastFailure", "20260101000000Z"),
            (token.as_str(), "oathLastLogin", "20260101000000Z"),
            (enrollment.as_str(), "pamTotpState", "v2"),
        ],
    );
    // Nothing else.
    replace_each(
        &slapd,
        v,
        50,
        "validator writes",
        &[
            (token.as_str(), "oathSecret", "chosen by the validator"),
            (token.as_str(), "oathOTPLength", "8"),
            (token.as_str(), "pamTotpEnrollmentId", "e-other"),
            (
                enrollment.as_str(),
                "pamTotpEnrollmentData",
                "authenticators = []",
            ),
            (enrollment.as_str(), "pamTotpEnrollmentId", "e-other"),
        ],
    );
    slapd
        .ldapadd(v, &token_ldif(&b, "eb", "extra"))
        .assert_code(50, "validator adds a token");
    slapd
        .ldapdelete(v, &token, false)
        .assert_code(50, "validator deletes a token");
    // Nor can it touch the user entry itself.
    slapd
        .ldapmodify(v, &modify(&b, "replace", "userPassword", "x"), &[])
        .assert_code(50, "validator changes a user's password");
}

#[test]
fn given_anonymous_client_then_it_finds_the_user_dn_but_reads_no_secret() {
    let slapd = Slapd::start_default();
    let TwoUsers { a, .. } = two_enrolled_users(&slapd);
    let out = slapd.ldapsearch(
        Bind::Anonymous,
        PEOPLE_BASE,
        &["(&(objectClass=posixAccount)(uid=alice))", "1.1"],
    );
    out.assert_ok("anonymous user lookup");
    assert_eq!(
        out.dns(),
        [a.as_str()],
        "anonymous finds the user's DN by uid"
    );
    let out = slapd.ldapsearch(Bind::Anonymous, &a, &["(objectClass=*)", "*", "+"]);
    let seen = attributes_seen(&out);
    assert!(
        seen.iter()
            .all(|(dn, attr)| !dn.contains("cn=pam-totp") && attr != "userpassword"),
        "anonymous sees enrollment entries or a password: {seen:?}"
    );
    for filter in [
        "(oathSecret=*)",
        "(objectClass=oathTOTPToken)",
        "(pamTotpState=*)",
    ] {
        let out = slapd.ldapsearch(Bind::Anonymous, PEOPLE_BASE, &[filter, "1.1"]);
        assert!(
            out.dns().is_empty(),
            "anonymous finds entries with {filter}: {}",
            out.stdout
        );
    }
}

#[test]
fn given_no_acl_then_other_users_read_secrets() {
    // The control for the ACL tests above: with Debian's default rules only, A reads B's secret,
    // so what the tests above see comes from the shipped ACL.
    let slapd = Slapd::start(SlapdOptions {
        acl: false,
        ..SlapdOptions::default()
    });
    let TwoUsers { a, b } = {
        let a = slapd.add_user("alice", A_PASSWORD);
        let b = slapd.add_user("bob", B_PASSWORD);
        slapd
            .ldapadd(Bind::Root, &enrollment_ldif(&b, "eb", "phone", KEY))
            .assert_ok("enroll B");
        TwoUsers { a, b }
    };
    let out = slapd.ldapsearch(
        as_user(&a, A_PASSWORD),
        &token_dn(&b, "phone"),
        &["-s", "base", "(objectClass=*)", "oathSecret"],
    );
    assert_eq!(out.values("oathSecret"), [String::from_utf8_lossy(KEY)]);
}

// ---------------------------------------------------------------------------------------------
// The compare-and-set shapes of ldap-design.md "Atomic operations", as the validator

#[test]
fn given_validator_then_each_compare_and_set_succeeds_once() {
    let slapd = Slapd::start_default();
    let TwoUsers { b, .. } = two_enrolled_users(&slapd);
    let v = slapd.service_bind();
    let token = token_dn(&b, "phone");
    let enrollment = format!("cn=pam-totp,{b}");
    // TOTP step: Assertion (&(pamTotpEnrollmentId=E)(!(oathTOTPLastTimeStep>=S))) + replace S.
    let step = |s: u64, enrollment_id: &str| {
        slapd.ldapmodify(
            v,
            &modify(&token, "replace", "oathTOTPLastTimeStep", &s.to_string()),
            &[
                "-e",
                &format!(
                    "assert=(&(pamTotpEnrollmentId={enrollment_id})(!(oathTOTPLastTimeStep>={s})))"
                ),
            ],
        )
    };
    step(1000, "eb").assert_ok("first use of step 1000");
    step(1000, "eb").assert_code(122, "step 1000 again");
    step(999, "eb").assert_code(122, "an older step");
    step(1001, "other").assert_code(122, "a step for another enrollment");
    step(1001, "eb").assert_ok("the next step");
    assert_eq!(last_step(&slapd, &token), 1001);
    // pamTotpState: delete old value + add new value; a stale old value gives 16.
    let swap = |old: &str, new: &str| {
        slapd.ldapmodify(
            v,
            &format!("dn: {enrollment}\nchangetype: modify\ndelete: pamTotpState\npamTotpState: {old}\n-\nadd: pamTotpState\npamTotpState: {new}\n"),
            &[],
        )
    };
    swap("v1", "v2").assert_ok("state v1 -> v2");
    swap("v1", "v3").assert_code(16, "state change from the stale v1");
    swap("v2", "v3").assert_ok("state v2 -> v3");
}

// ---------------------------------------------------------------------------------------------
// slapo-otp on the design's layout

#[test]
fn given_user_entry_pointing_at_a_design_token_then_slapo_otp_accepts_password_and_code_once() {
    let slapd = Slapd::start_default();
    let user = slapd.add_user("grace", "grace-pw");
    slapd
        .ldapadd(
            slapd.admin_bind(),
            &enrollment_ldif(&user, "e1", "phone", KEY),
        )
        .assert_ok("enrollment in the design layout");
    let token = token_dn(&user, "phone");
    // Opt the user in to slapo-otp (pam-totp never does this by itself).
    slapd
        .ldapmodify(
            Bind::Root,
            &format!("dn: {user}\nchangetype: modify\nadd: objectClass\nobjectClass: oathTOTPUser\n-\nadd: oathTOTPToken\noathTOTPToken: {token}\n"),
            &[],
        )
        .assert_ok("oathTOTPUser + oathTOTPToken on the user entry");
    let before = now_step();
    let code = oathtool_code(KEY);
    let with_code = format!("grace-pw{code}");
    slapd
        .tool("ldapwhoami", as_user(&user, &with_code), None, &[], None)
        .assert_ok("bind with password + code");
    let step = last_step(&slapd, &token);
    assert!(
        step + 1 >= before && step <= now_step() + 1,
        "oathTOTPLastTimeStep {step} is not the current step {before}"
    );
    slapd
        .tool("ldapwhoami", as_user(&user, &with_code), None, &[], None)
        .assert_code(49, "the same code again");
    slapd
        .tool("ldapwhoami", as_user(&user, "grace-pw"), None, &[], None)
        .assert_code(49, "the password alone");
    // The step slapo-otp stored is the one pam-totp's compare-and-set checks: pam-totp
    // accepting the same step now fails with 122.
    slapd
        .ldapmodify(
            slapd.service_bind(),
            &modify(&token, "replace", "oathTOTPLastTimeStep", &step.to_string()),
            &[
                "-e",
                &format!("assert=(&(pamTotpEnrollmentId=e1)(!(oathTOTPLastTimeStep>={step})))"),
            ],
        )
        .assert_code(
            122,
            "pam-totp's compare-and-set after slapo-otp used the step",
        );
}

// ---------------------------------------------------------------------------------------------
// Replication

#[test]
fn given_mirror_pair_then_a_modify_replicates_both_ways() {
    let pair = MirrorPair::start();
    eprintln!(
        "mirror pair start (both providers, base entries replicated): {:?}",
        pair.started_in()
    );
    let (first, second) = (&pair.first, &pair.second);
    // The ACL they start with is the one ldapmodify makes of the shipped file on a single server.
    let single = Slapd::start_default();
    let acl = |s: &Slapd| {
        let out = s.ldapsearch(
            Bind::Root,
            "olcDatabase={1}mdb,cn=config",
            &[
                "-s",
                "base",
                "(objectClass=*)",
                "olcAccess",
                "olcAddContentAcl",
            ],
        );
        out.assert_ok("reading the database's cn=config entry");
        (out.values("olcAccess"), out.values("olcAddContentAcl"))
    };
    assert_eq!(
        acl(first),
        acl(&single),
        "mirror ACL differs from the shipped file applied"
    );
    assert_eq!(acl(second), acl(&single));
    drop(single);
    let user = first.add_user("heidi", "pw");
    first
        .ldapadd(
            first.admin_bind(),
            &enrollment_ldif(&user, "e1", "phone", KEY),
        )
        .assert_ok("enrollment on the first provider");
    let token = token_dn(&user, "phone");
    let t = Instant::now();
    assert!(
        pair.wait_visible(
            second,
            &token,
            "(oathTOTPLastTimeStep=0)",
            Duration::from_secs(5)
        ),
        "the enrollment did not reach the second provider"
    );
    eprintln!("add replicated first -> second in {:?}", t.elapsed());
    // The validator's compare-and-set on the second provider (the ACL holds there too) ...
    second
        .ldapmodify(
            second.service_bind(),
            &modify(&token, "replace", "oathTOTPLastTimeStep", "2000"),
            &["-e", "assert=(!(oathTOTPLastTimeStep>=2000))"],
        )
        .assert_ok("step 2000 on the second provider");
    let t = Instant::now();
    assert!(
        pair.wait_visible(
            first,
            &token,
            "(oathTOTPLastTimeStep=2000)",
            Duration::from_secs(5)
        ),
        "the step did not reach the first provider"
    );
    eprintln!("modify replicated second -> first in {:?}", t.elapsed());
    // ... is then refused on the first.
    first
        .ldapmodify(
            first.service_bind(),
            &modify(&token, "replace", "oathTOTPLastTimeStep", "2000"),
            &["-e", "assert=(!(oathTOTPLastTimeStep>=2000))"],
        )
        .assert_code(122, "step 2000 again on the first provider");
    // And a Modify on the first reaches the second.
    first
        .ldapmodify(
            first.service_bind(),
            &modify(
                &format!("cn=pam-totp,{user}"),
                "replace",
                "pamTotpState",
                "s1",
            ),
            &[],
        )
        .assert_ok("state on the first provider");
    assert!(
        pair.wait_visible(
            second,
            &format!("cn=pam-totp,{user}"),
            "(pamTotpState=s1)",
            Duration::from_secs(5)
        ),
        "the state did not reach the second provider"
    );
}
