//! The CLI against a real directory (issue 11, `store = "ldap"`): a throwaway slapd per test
//! (tests/src/slapd.rs, with the shipped schema and ACL) and the built `pam-totp`, run as root
//! (bound as the admin account, or as the service account when no `admin_bind_dn` is set) and
//! as local users binding with their own directory password. What the commands change is read
//! back from the directory with ldap-utils as its rootDN, and logins go through the built module
//! and the real libpam, which binds as the service account.
//!
//! Needs root (local test users, /etc/pam.d services), slapd and ldap-utils
//! (tests/install-deps.sh) and, for the logins, the built module.

mod common;

use common::*;
use pam_totp_e2e::harness_session::{Session, Stream};
use pam_totp_e2e::slapd::{Bind, PEOPLE_BASE, Slapd, SlapdOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const RHOST: &str = "198.51.100.7";

/// How root's CLI binds.
#[derive(Clone, Copy, PartialEq)]
enum Root {
    /// `admin_bind_dn`: the admins group of the shipped ACL.
    Admin,
    /// No `admin_bind_dn`: the service account (validators group), as the module.
    Service,
}

/// A directory, a temporary directory with configuration files, and the local users.
struct Fleet {
    slapd: Slapd,
    dir: TempDir,
}

impl Fleet {
    fn start(options: SlapdOptions) -> Fleet {
        Fleet {
            slapd: Slapd::start(options),
            dir: TempDir::new("cli-ldap"),
        }
    }

    /// A root-owned 0600 file with the admin account's password.
    fn admin_password_file(&self) -> PathBuf {
        let path = self.dir.join("admin-password");
        std::fs::write(&path, format!("{}\n", self.slapd.admin_password())).unwrap();
        pam_totp_e2e::harness::set_mode(&path, 0o600);
        path
    }

    /// Writes `<name>.conf` (mode 0644): local files under the temporary directory (the
    /// default secret path in each home, the state in `state/`), `extra` top-level keys, and,
    /// unless `root` is `None`, `store = "ldap"` with StartTLS to the test server trusting
    /// `ca`, the service account's password file, and the admin account when `root` says so.
    fn config(&self, name: &str, root: Option<Root>, ca: &Path, extra: &str) -> String {
        let mut text = format!(
            "state_dir = \"{}/state\"\nthrottle_attempts = 3\n{extra}",
            self.dir.path().display()
        );
        if let Some(root) = root {
            text.push_str(&format!(
                "store = \"ldap\"\n[ldap]\nuri = \"{}\"\nbase = \"{PEOPLE_BASE}\"\n\
                 bind_dn = \"{}\"\nbind_password_file = \"{}\"\nca_file = \"{}\"\ntimeout = 3\n",
                self.slapd.ldap_uri(),
                self.slapd.service_dn(),
                self.slapd.service_password_file().display(),
                ca.display(),
            ));
            if root == Root::Admin {
                text.push_str(&format!(
                    "admin_bind_dn = \"{}\"\nadmin_password_file = \"{}\"\n",
                    self.slapd.admin_dn(),
                    self.admin_password_file().display()
                ));
            }
        }
        let path = self.dir.join(format!("{name}.conf"));
        std::fs::write(&path, text).unwrap();
        pam_totp_e2e::harness::set_mode(&path, 0o644);
        path.to_str().unwrap().to_string()
    }

    /// The usual configuration: the directory with the test CA, root bound as `root`.
    fn ldap_config(&self, root: Root, extra: &str) -> String {
        let name = match root {
            Root::Admin => "admin",
            Root::Service => "service",
        };
        self.config(name, Some(root), &self.slapd.ca_file(), extra)
    }

    /// A local user with an entry in the directory (its password `<name>-pw`).
    fn user(&self) -> (TestUser, String) {
        let user = TestUser::create();
        let dn = self.slapd.add_user(&user.name, &password(&user.name));
        (user, dn)
    }

    /// The DNs below `cn=pam-totp,<user_dn>` (the entry itself first), read as the rootDN.
    fn entries(&self, user_dn: &str) -> Vec<String> {
        self.slapd
            .ldapsearch(Bind::Root, &account(user_dn), &["(objectClass=*)", "1.1"])
            .dns()
    }

    /// One attribute of one entry, read as the rootDN.
    fn attr(&self, dn: &str, attr: &str) -> Vec<String> {
        self.slapd
            .ldapsearch(Bind::Root, dn, &["-s", "base", "(objectClass=*)", attr])
            .values(attr)
    }
}

fn password(user: &str) -> String {
    format!("{user}-pw")
}

fn account(user_dn: &str) -> String {
    format!("cn=pam-totp,{user_dn}")
}

fn token(user_dn: &str, name: &str) -> String {
    format!("cn={name},cn=pam-totp,{user_dn}")
}

fn code_of(key: &serde_json::Value) -> String {
    totp_now(
        key["secret"].as_str().unwrap(),
        totp_rs::Algorithm::SHA1,
        6,
        30,
    )
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// `pam-totp` with `args` run as the local `user` (setpriv), its output collected as it comes,
/// answered line by line.
fn spawn_as(user: &TestUser, args: &[&str]) -> Session {
    Session::spawn(
        Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg("--clear-groups")
            .arg(bin())
            .args(args)
            .env("HOME", &user.home)
            .env_remove("SUDO_USER"),
    )
}

/// Enrolls `user` interactively as themselves: the directory password is asked first (before
/// any key is shown), then the code of the key shown confirms it. Returns the key.
fn enroll_self(conf: &str, user: &TestUser) -> String {
    let mut s = spawn_as(
        user,
        &[
            "--config",
            conf,
            "enroll",
            "--qr",
            "none",
            "--backup-codes",
            "3",
        ],
    );
    s.wait_for(
        Stream::Stderr,
        &format!("Directory (LDAP) password for {}: ", user.name),
    );
    assert!(
        !s.text(Stream::Stdout).contains("type the key in by hand"),
        "the key is shown only once the directory accepted the password"
    );
    s.send(&password(&user.name));
    let out = s.wait_for(Stream::Stderr, "code the app shows now");
    let key = printed_key(&s.text(Stream::Stdout));
    assert!(!key.is_empty(), "{out}");
    s.send(&totp_now(&key, totp_rs::Algorithm::SHA1, 6, 30));
    s.close_input();
    let done = s.finish();
    let (out, err) = (done.stdout_text(), done.stderr_text());
    assert_eq!(done.code, Some(0), "{out}{err}");
    assert!(err.contains("Code accepted."), "{err}");
    assert!(out.contains("Enrolled:"), "{out}");
    key
}

#[test]
fn given_a_directory_password_then_users_enroll_themselves_once_and_nothing_more() {
    if !root_or_skip(
        "given_a_directory_password_then_users_enroll_themselves_once_and_nothing_more",
    ) {
        return;
    }
    let fleet = Fleet::start(SlapdOptions::default());
    let conf = fleet.ldap_config(Root::Admin, "");
    let (alice, alice_dn) = fleet.user();
    let (bob, bob_dn) = fleet.user();

    let key = enroll_self(&conf, &alice);
    // The enrollment entry and one token entry, owned by Alice, the key in oathSecret only.
    let tdn = token(&alice_dn, "default");
    assert_eq!(fleet.entries(&alice_dn), [account(&alice_dn), tdn.clone()]);
    assert_eq!(
        fleet.attr(&account(&alice_dn), "owner"),
        [alice_dn.as_str()]
    );
    let secret = fleet.slapd.ldapsearch(
        Bind::Root,
        &tdn,
        &["-s", "base", "(objectClass=*)", "oathSecret"],
    );
    let raw = secret
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("oathSecret:: "))
        .map(|b| pam_totp_e2e::slapd::base64_decode(b).unwrap())
        .expect("oathSecret");
    assert_eq!(raw, base32_decode(&key));
    let data = fleet
        .attr(&account(&alice_dn), "pamTotpEnrollmentData")
        .concat();
    assert!(data.contains("backup") && !data.contains(&key), "{data}");

    // A wrong directory password: refused by the directory, with what to do; nothing written.
    let o = run_as(
        &bob.name,
        &["--config", &conf, "enroll", "--json"],
        "not-bob's-password\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("bind refused"), "{err}");
    assert!(err.contains("as a user, your directory password"), "{err}");
    assert!(fleet.entries(&bob_dn).is_empty());
    assert!(stdout(&o).is_empty(), "no key shown: {}", stdout(&o));

    // Bob enrolls himself too (non-interactive: password, then nothing else).
    let o = run_as(
        &bob.name,
        &["--config", &conf, "enroll", "--json"],
        &format!("{}\n", password(&bob.name)),
    );
    json(&o);
    assert_eq!(fleet.entries(&bob_dn).len(), 2);

    // Her password alone does not read her key back: her status says she is enrolled and shows
    // her state, the authenticators and backup codes are an administrator's.
    let o = run_as(
        &alice.name,
        &["--config", &conf, "status", "--json"],
        &format!("{}\n", password(&alice.name)),
    );
    let st = json(&o);
    assert_eq!(st["user"], alice.name.as_str(), "{st}");
    assert_eq!(st["enrolled"], true, "{st}");
    assert_eq!(st["details_for_admins"], true, "{st}");
    assert_eq!(st["authenticators"], serde_json::json!([]), "{st}");
    let o = run_as(
        &alice.name,
        &["--config", &conf, "status"],
        &format!("{}\n", password(&alice.name)),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("read by administrators only"),
        "{}",
        stdout(&o)
    );
    // Reading the key itself (qr) is refused, with what to do.
    let o = run_as(
        &alice.name,
        &["--config", &conf, "qr"],
        &format!("{}\n", password(&alice.name)),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("access denied by the directory"), "{err}");
    assert!(
        err.contains("A user may make their first enrollment"),
        "{err}"
    );
    let o = run_as(
        &alice.name,
        &["--config", &conf, "status", "--user", &bob.name],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("Error: Only root may act for another user"));
    let o = run_as(&alice.name, &["--config", &conf, "status", "--all"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run_as(
        &alice.name,
        &[
            "--config", &conf, "enroll", "--json", "--force", "--user", &bob.name,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // And the directory agrees: bound as herself (what her CLI binds as), Alice finds only her
    // own entries, reads nothing of Bob's, and can neither write nor replace his.
    let as_alice = Bind::Simple {
        dn: &alice_dn,
        password: &password(&alice.name),
    };
    let mine = fleet.slapd.ldapsearch(
        as_alice,
        PEOPLE_BASE,
        &["(objectClass=pamTotpAccount)", "1.1"],
    );
    assert_eq!(mine.dns(), [account(&alice_dn)]);
    let bobs = fleet.slapd.ldapsearch(
        as_alice,
        &token(&bob_dn, "default"),
        &["-s", "base", "(objectClass=*)", "oathSecret"],
    );
    assert!(bobs.values("oathSecret").is_empty(), "{}", bobs.stdout);
    fleet
        .slapd
        .ldapmodify(
            as_alice,
            &format!(
                "dn: {}\nchangetype: modify\nreplace: oathTOTPLastTimeStep\noathTOTPLastTimeStep: 99999999\n",
                token(&bob_dn, "default")
            ),
            &[],
        )
        .assert_code(50, "Alice writes Bob's last step");
    fleet
        .slapd
        .ldapdelete(as_alice, &token(&bob_dn, "default"), false)
        .assert_code(50, "Alice deletes Bob's token");
    let carol = fleet.slapd.add_user("carol-no-account", "carol-pw");
    fleet
        .slapd
        .ldapadd(
            as_alice,
            &format!(
                "dn: {}\nobjectClass: device\nobjectClass: pamTotpAccount\ncn: pam-totp\n\
                 owner: {alice_dn}\npamTotpEnrollmentId: planted\n",
                account(&carol)
            ),
        )
        .assert_code(50, "Alice enrolls Carol");
    assert_eq!(fleet.entries(&bob_dn).len(), 2);
    assert!(fleet.entries(&carol).is_empty());

    // Nor can she remove or replace her own enrollment (whoever learns her password could
    // then enroll their own key); an administrator can.
    let o = run_as(
        &alice.name,
        &["--config", &conf, "disable", "--yes"],
        &format!("{}\n", password(&alice.name)),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(fleet.entries(&alice_dn).len(), 2);
    let o = run_as(
        &alice.name,
        &["--config", &conf, "enroll", "--json", "--force"],
        &format!("{}\n", password(&alice.name)),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).is_empty(), "no key shown: {}", stdout(&o));
    let o = run(
        &["--config", &conf, "disable", "--yes", "--user", &alice.name],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fleet.entries(&alice_dn).is_empty());
    assert_eq!(fleet.entries(&bob_dn).len(), 2);
}

#[test]
fn given_root_bound_as_the_service_account_then_enrolling_someone_is_refused_with_the_fix() {
    if !root_or_skip(
        "given_root_bound_as_the_service_account_then_enrolling_someone_is_refused_with_the_fix",
    ) {
        return;
    }
    let fleet = Fleet::start(SlapdOptions::default());
    let conf = fleet.ldap_config(Root::Service, "");
    let (alice, alice_dn) = fleet.user();
    let o = run(
        &["--config", &conf, "enroll", "--json", "--user", &alice.name],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).is_empty(), "no key shown: {}", stdout(&o));
    let err = stderr(&o);
    let (message, hint) = err.trim_end().split_once('\n').expect("two lines");
    assert!(
        message.starts_with(&format!(
            "Error: Directory {}: access denied by the directory: result code 50",
            fleet.slapd.ldap_uri()
        )),
        "{err}"
    );
    assert_eq!(
        hint,
        "The directory's access rules refused this. A user may make their first enrollment; \
         every later change, and reading keys, is an administrator's: run it as root on a \
         server whose [ldap] table has `admin_bind_dn` (docs/fleet.md)."
    );
    assert!(fleet.entries(&alice_dn).is_empty());
    // Reading works with the service account: status says not enrolled.
    assert_eq!(json_for(&conf, &alice.name, &["status"])["enrolled"], false);
}

/// Root with the admin account: every administrator's command on the directory, and logins
/// through the module (bound as the service account) seeing what they changed.
#[test]
fn given_admin_credentials_then_root_manages_enrollments_in_the_directory() {
    let Some(module) =
        ready("given_admin_credentials_then_root_manages_enrollments_in_the_directory")
    else {
        return;
    };
    let fleet = Fleet::start(SlapdOptions::default());
    let conf = fleet.ldap_config(Root::Admin, "remember = \"1h\"\n");
    let c = conf.as_str();
    let service = Service::new("cli-ldap", &module, Path::new(c));
    let (alice, alice_dn) = fleet.user();
    let (bob, bob_dn) = fleet.user();

    let key = json_for(c, &alice.name, &["enroll", "--backup-codes", "4"]);
    assert_eq!(
        key["secret_file"],
        format!("{} on {}", account(&alice_dn), fleet.slapd.ldap_uri()).as_str()
    );
    json_for(c, &bob.name, &["enroll"]);
    assert_eq!(fleet.entries(&alice_dn).len(), 2);
    // No local file anywhere.
    assert!(!alice.secret_path().exists());

    // A second authenticator, listed, then removed (its token entry goes).
    let tablet = json_for(c, &alice.name, &["enroll", "--add", "tablet"]);
    assert_eq!(fleet.entries(&alice_dn).len(), 3);
    let list = json_for(c, &alice.name, &["list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "tablet"]);
    assert!(service.login(&alice.name, &code_of(&tablet)));
    let o = run(
        &["--config", c, "remove", "tablet", "--user", &alice.name],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        fleet.entries(&alice_dn),
        [account(&alice_dn), token(&alice_dn, "default")]
    );

    // A TOTP code and a backup code used, then the codes regenerated: the old codes are
    // refused, the step spent before is still spent.
    let code = code_of(&key);
    let old = codes(&key);
    assert!(service.login(&alice.name, &code), "code accepted");
    assert!(service.login(&alice.name, &old[0]), "backup code accepted");
    let step = fleet.attr(&token(&alice_dn, "default"), "oathTOTPLastTimeStep");
    assert_ne!(step, ["0"]);
    let st = json_for(c, &alice.name, &["status"]);
    assert_eq!(st["backup_codes_left"], 3, "{st}");
    let fresh = json_for(
        c,
        &alice.name,
        &["backup-codes", "--regenerate", "--count", "3"],
    );
    assert_eq!(
        fleet.attr(&token(&alice_dn, "default"), "oathTOTPLastTimeStep"),
        step,
        "the last step is kept"
    );
    let new = codes(&fresh);
    assert!(!service.login(&alice.name, &code), "a used code stays used");
    assert!(
        !service.login(&alice.name, &old[1]),
        "old backup codes stop working"
    );
    assert!(
        service.login(&alice.name, &new[0]),
        "new backup code accepted"
    );
    let st = json_for(c, &alice.name, &["status"]);
    assert_eq!(st["backup_codes_left"], 2, "{st}");
    assert_eq!(st["backup_codes_total"], 3, "{st}");

    // Locked out from a host (three wrong codes), seen by status and explain; unlock lets
    // the next right code in (and the host is remembered).
    for _ in 0..3 {
        assert!(!service.login_from(RHOST, &alice.name, "000000"));
    }
    assert!(
        !service.login_from(RHOST, &alice.name, &new[1]),
        "locked out: even a right code is refused"
    );
    let st = json_for(c, &alice.name, &["status"]);
    assert_eq!(st["lockouts"][0]["scope"], RHOST, "{st}");
    let ex = json_for(c, &alice.name, &["explain", "--rhost", RHOST]);
    assert_eq!(ex["decision"], "deny", "{ex}");
    let o = run(&["--config", c, "unlock", "--user", &alice.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let ex = json_for(c, &alice.name, &["explain", "--rhost", RHOST]);
    assert_eq!(ex["decision"], "ask-for-code", "{ex}");
    assert!(service.login_from(RHOST, &alice.name, &new[1]), "unlocked");

    // Remembered from that host; forget-hosts makes it ask again.
    assert!(service.login_from(RHOST, &alice.name, ""), "remembered");
    let st = json_for(c, &alice.name, &["status"]);
    assert_eq!(st["remembered_hosts"]["count"], 1, "{st}");
    let o = run(&["--config", c, "forget-hosts", "--user", &alice.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!service.login_from(RHOST, &alice.name, ""), "asked again");

    // status --all: both users, from the directory.
    let users = status_all_users(c);
    assert!(
        users.contains(&alice.name) && users.contains(&bob.name),
        "{users:?}"
    );

    // reset: enrollment and state gone; disable likewise for Bob.
    let o = run(&["--config", c, "reset", "--user", &alice.name], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "removed {} on {} and the state (replay, backup-code and lockout records)",
            account(&alice_dn),
            fleet.slapd.ldap_uri()
        )),
        "{}",
        stdout(&o)
    );
    assert!(fleet.entries(&alice_dn).is_empty());
    assert!(
        !service.login(&alice.name, &new[2]),
        "not enrolled any more"
    );
    let o = run(
        &["--config", c, "disable", "--yes", "--user", &bob.name],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fleet.entries(&bob_dn).is_empty());
    let st = json_for(c, &bob.name, &["status"]);
    assert_eq!(st["enrolled"], false, "{st}");
    let ex = json_for(c, &bob.name, &["explain"]);
    assert_eq!(ex["decision"], "deny", "{ex}");
}

/// The lines of `doctor` about the directory.
fn doctor_directory(conf: &str) -> String {
    let o = run(&["--config", conf, "doctor"], "");
    let out = stdout(&o);
    let lines: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("] directory:"))
        .take_while(|l| l.contains("] directory:") || l.starts_with("        fix:"))
        .collect();
    assert!(
        !lines.is_empty(),
        "no directory check:\n{out}{}",
        stderr(&o)
    );
    lines.join("\n")
}

#[test]
fn given_each_directory_problem_then_doctor_names_it() {
    if !root_or_skip("given_each_directory_problem_then_doctor_names_it") {
        return;
    }
    let fleet = Fleet::start(SlapdOptions::default());
    let uri = fleet.slapd.ldap_uri();
    let good = doctor_directory(&fleet.ldap_config(Root::Admin, ""));
    assert!(
        good.starts_with(&format!(
            "[ok] directory: {uri}: bound, base {PEOPLE_BASE} found, OATH-LDAP and pam-totp schemas loaded"
        )),
        "{good}"
    );
    let wrong_ca = fleet.config(
        "wrong-ca",
        Some(Root::Admin),
        &fleet.slapd.wrong_ca_file(),
        "",
    );
    let tls = doctor_directory(&wrong_ca);
    assert!(
        tls.starts_with(&format!("[ERROR] directory: {uri}: directory-tls (")),
        "{tls}"
    );
    assert!(tls.contains("fix: Set `ca_file` in [ldap]"), "{tls}");

    // A wrong password in the service account's file.
    let bad = fleet.dir.join("bad-password");
    std::fs::write(&bad, "not-the-password\n").unwrap();
    pam_totp_e2e::harness::set_mode(&bad, 0o600);
    let conf = fleet.ldap_config(Root::Admin, "");
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        &fleet.slapd.service_password_file().display().to_string(),
        &bad.display().to_string(),
    );
    std::fs::write(&conf, text).unwrap();
    let creds = doctor_directory(&conf);
    assert!(
        creds.starts_with(&format!(
            "[ERROR] directory: {uri}: directory-credentials ("
        )),
        "{creds}"
    );
    assert!(
        creds.contains("fix: Check bind_dn and the password"),
        "{creds}"
    );

    // A directory without the pam-totp schema.
    let bare = Fleet::start(SlapdOptions {
        schema: false,
        acl: false,
    });
    let schema = doctor_directory(&bare.ldap_config(Root::Admin, ""));
    assert!(
        schema.starts_with(&format!(
            "[ERROR] directory: {}: directory-schema (pamTotpEnrollmentId is unknown",
            bare.slapd.ldap_uri()
        )),
        "{schema}"
    );
    assert!(schema.contains("fix: Load the otp module"), "{schema}");
}

/// `migrate`: local enrollments with their spent codes into the directory.
#[test]
fn given_local_enrollments_then_migrate_copies_them_with_their_spent_codes() {
    let Some(module) =
        ready("given_local_enrollments_then_migrate_copies_them_with_their_spent_codes")
    else {
        return;
    };
    let fleet = Fleet::start(SlapdOptions::default());
    let local = fleet.config("local", None, Path::new("/nonexistent"), "");
    let conf = fleet.ldap_config(Root::Admin, "");
    let (alice, alice_dn) = fleet.user();
    let (carol, carol_dn) = fleet.user();

    // Alice enrolled locally and used a code and a backup code on this host.
    let key = json_for(&local, &alice.name, &["enroll", "--backup-codes", "3"]);
    let backup = codes(&key);
    let on_files = Service::new("cli-ldap-files", &module, Path::new(&local));
    let code = code_of(&key);
    assert!(on_files.login(&alice.name, &code));
    assert!(on_files.login(&alice.name, &backup[0]));
    // Carol has a local enrollment and, already, another one in the directory.
    let carol_local = json_for(&local, &carol.name, &["enroll"]);
    json_for(&conf, &carol.name, &["enroll"]);
    let carol_id = fleet.attr(&account(&carol_dn), "pamTotpEnrollmentId");

    // Dry run: says what it would do, writes nothing.
    let o = run(&["--config", &conf, "migrate", "--dry-run"], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "{}: would copy 1 authenticator and 3 backup codes; 2 spent codes carried.",
            alice.name
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: the directory holds another enrollment",
            carol.name
        )),
        "{out}"
    );
    assert!(
        out.contains("Dry run: 1 migrated, 0 already there, 1 left"),
        "{out}"
    );
    assert!(fleet.entries(&alice_dn).is_empty());

    // The real run: Alice's used codes stay used through the directory; Carol's is left.
    let o = run(&["--config", &conf, "migrate"], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Done: 1 migrated, 0 already there, 1 left"),
        "{}",
        stdout(&o)
    );
    assert_eq!(fleet.entries(&alice_dn).len(), 2);
    assert_eq!(
        fleet.attr(&account(&carol_dn), "pamTotpEnrollmentId"),
        carol_id
    );
    let on_ldap = Service::new("cli-ldap-dir", &module, Path::new(&conf));
    assert!(
        !on_ldap.login(&alice.name, &code),
        "the spent step is carried"
    );
    assert!(
        !on_ldap.login(&alice.name, &backup[0]),
        "the used backup code stays used"
    );
    assert!(
        on_ldap.login(&alice.name, &backup[1]),
        "an unused one works"
    );

    // Again: idempotent (nothing copied, the enrollment untouched, used codes still used).
    let data = fleet.attr(&account(&alice_dn), "pamTotpEnrollmentData");
    let state = fleet.attr(&account(&alice_dn), "pamTotpState");
    let step = fleet.attr(&token(&alice_dn, "default"), "oathTOTPLastTimeStep");
    assert_ne!(step, ["0"], "the local last step is carried");
    let o = run(&["--config", &conf, "migrate", "--user", &alice.name], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("{}: already in the directory;", alice.name)),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("Done: 0 migrated, 1 already there"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        fleet.attr(&account(&alice_dn), "pamTotpEnrollmentData"),
        data
    );
    assert_eq!(fleet.attr(&account(&alice_dn), "pamTotpState"), state);
    assert_eq!(
        fleet.attr(&token(&alice_dn, "default"), "oathTOTPLastTimeStep"),
        step
    );
    assert!(!on_ldap.login(&alice.name, &backup[1]));

    // --force replaces Carol's directory enrollment with her local one.
    let o = run(
        &[
            "--config",
            &conf,
            "migrate",
            "--force",
            "--user",
            &carol.name,
        ],
        "",
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_ne!(
        fleet.attr(&account(&carol_dn), "pamTotpEnrollmentId"),
        carol_id
    );
    assert!(
        on_ldap.login(&carol.name, &code_of(&carol_local)),
        "the local key works"
    );
}
