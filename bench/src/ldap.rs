//! The directory (LDAP) benchmark: `pam-bench ldap` runs the module with `store = "ldap"`
//! against a throwaway slapd (the tests' harness, `pam_totp_e2e::slapd`) on loopback, over
//! ldapi:// with SASL EXTERNAL and over ldap:// with StartTLS (simple bind, the test CA).
//!
//! - `gen --ldap N` writes the `d<i>` users' entries (user entry, `cn=pam-totp` with the
//!   enrollment and the state of an earlier login, one token entry) to `ldap/users.ldif`, in the
//!   layout of docs/fleet.md; `ldap` loads them with `slapadd` while slapd is stopped (100,000
//!   users in about 6 s on a 2-core VM, where LDAP Adds would take minutes).
//! - The module's ldapi identity (this process: root) is mapped to the validator service
//!   account, as a directory server's own sshd would be, so the shipped access rules are
//!   evaluated on every operation as they are for StartTLS; the rootDN is kept for restores.
//! - `--rounds/--per-round`: the sshd comparison with `pam_setcred` (the second connection, which
//!   records the success) for local files, GA, ldapi, StartTLS and the `pam_permit` baseline,
//!   interleaved login by login as `pam-bench sshd` does.
//! - `--throughput PROCS:LOGINS:ROUNDS`: PROCS forked clients each doing LOGINS full logins
//!   (pam_start .. pam_end, setcred included) of different users, released together; then PROCS
//!   clients logging in one user with one code (exactly one success per round expected).
//! - `--scale-users P:F:C --n N`: N logins cycling over the users given, each user's token and
//!   state put back (not timed) before every login, so a few users can log in many times.

use crate::{Flags, Manifest, RHOST, Row, cstr, fork_released, interleave, pam, restore_state};
use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::State;
use pam_totp_e2e::slapd::{Bind, PEOPLE_BASE, ROOT_DN, SERVICE_DN, Slapd, base64_encode};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The name of every generated authenticator (one token entry per user).
const TOKEN: &str = "default";
/// `oathHMACAlgorithm` of HMAC-SHA1 (RFC 8018), as pam_totp_ldap writes it.
const HMAC_SHA1_OID: &str = "1.2.840.113549.2.7";
/// The mdb map size the 100,000-user directory needs (the harness's 64 MiB is for tests). A
/// sparse maximum: the file grows with the data.
const MAX_SIZE: u64 = 8 << 30;

fn user_dn(name: &str) -> String {
    format!("uid={name},{PEOPLE_BASE}")
}

fn account_dn(name: &str) -> String {
    format!("cn=pam-totp,{}", user_dn(name))
}

fn token_dn(name: &str) -> String {
    format!("cn={TOKEN},{}", account_dn(name))
}

/// The state every generated user has after one earlier login at `step0`.
fn seeded_state(enrollment_id: &str, step0: u64) -> Result<String, String> {
    let mut st = State::new();
    st.rebind(enrollment_id);
    st.last_step.insert(TOKEN.into(), step0);
    st.to_toml().map_err(|e| e.to_string())
}

/// Writes the `d<i>` users' directory entries (`ldap/users.ldif`) and what a restore needs
/// (`ldap/state.tsv`: user, enrollment id, step of the earlier login).
pub(crate) struct EntryWriter {
    ldif: BufWriter<File>,
    state: BufWriter<File>,
    step0: u64,
}

fn create(path: &Path) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl EntryWriter {
    pub(crate) fn create(dir: &Path, step0: u64) -> Result<EntryWriter, String> {
        let sub = dir.join("ldap");
        std::fs::create_dir_all(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
        Ok(EntryWriter {
            ldif: create(&sub.join("users.ldif"))?,
            state: create(&sub.join("state.tsv"))?,
            step0,
        })
    }

    /// The user's entry, `cn=pam-totp` (enrollment without keys, seeded state) and the token
    /// entry (key in `oathSecret`, last step of the earlier login), as `LdapStore` writes them.
    pub(crate) fn add(&mut self, name: &str, uid: u32, file: &SecretFile) -> Result<(), String> {
        let [auth] = &file.authenticators[..] else {
            return Err("one authenticator per generated user".into());
        };
        let id = &file.enrollment_id;
        let data = file.to_toml_without_keys().map_err(|e| e.to_string())?;
        let state = seeded_state(id, self.step0)?;
        let (user, account, token) = (user_dn(name), account_dn(name), token_dn(name));
        let text = format!(
            "dn: {user}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: {name}\n\
             cn: {name}\nsn: {name}\nuidNumber: {uid}\ngidNumber: 60000\n\
             homeDirectory: /nonexistent\nloginShell: /bin/sh\n\n\
             dn: {account}\nobjectClass: device\nobjectClass: pamTotpAccount\ncn: pam-totp\n\
             owner: {user}\npamTotpEnrollmentId: {id}\npamTotpEnrollmentData:: {}\n\
             pamTotpState:: {}\n\n\
             dn: {token}\nobjectClass: device\nobjectClass: oathTOTPToken\n\
             objectClass: oathTOTPParams\nobjectClass: pamTotpToken\ncn: {TOKEN}\n\
             owner: {user}\npamTotpEnrollmentId: {id}\noathSecret:: {}\noathOTPLength: {}\n\
             oathHMACAlgorithm: {HMAC_SHA1_OID}\noathFailureCount: 0\noathTOTPParams: {token}\n\
             oathTOTPTimeStepPeriod: {}\noathTOTPTimeStepWindow: 1\n\
             oathTOTPLastTimeStep: {}\n\n",
            base64_encode(data.as_bytes()),
            base64_encode(state.as_bytes()),
            base64_encode(auth.secret.expose()),
            auth.digits,
            auth.period,
            self.step0,
        );
        self.ldif
            .write_all(text.as_bytes())
            .and_then(|()| writeln!(self.state, "{name}\t{id}\t{}", self.step0))
            .map_err(|e| e.to_string())
    }

    pub(crate) fn finish(mut self) -> Result<(), String> {
        self.ldif
            .flush()
            .and_then(|()| self.state.flush())
            .map_err(|e| e.to_string())
    }
}

/// The running directory and what restores need.
struct Directory {
    slapd: Slapd,
    /// User -> (enrollment id, step of the earlier login), for restores.
    seeded: HashMap<String, (String, u64)>,
}

impl Directory {
    /// Starts slapd, maps this process's ldapi identity to the validator, grows the map size,
    /// and loads `ldap/users.ldif` offline with slapadd.
    fn start(dir: &Path) -> Result<Directory, String> {
        // slapd, slapadd and ldap-utils need no nss_wrapper (this process keeps it loaded).
        // SAFETY: single-threaded here: no other thread reads the environment.
        unsafe { std::env::remove_var("LD_PRELOAD") };
        let t0 = Instant::now();
        let mut slapd = Slapd::start_default();
        // SAFETY: geteuid and getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let config = format!(
            "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nreplace: olcDbMaxSize\n\
             olcDbMaxSize: {MAX_SIZE}\n\n\
             dn: cn=config\nchangetype: modify\nreplace: olcAuthzRegexp\n\
             olcAuthzRegexp: {{0}}\"gidNumber={gid}\\+uidNumber={uid},cn=peercred,cn=external,cn=auth\" \"{SERVICE_DN}\"\n"
        );
        let out = slapd.ldapmodify(Bind::Root, &config, &[]);
        if out.code != 0 {
            return Err(format!("cn=config: {} {}", out.code, out.stderr));
        }
        slapd.stop();
        let ldif = dir.join("ldap/users.ldif");
        let t1 = Instant::now();
        let out = Command::new("slapadd")
            .args(["-n1", "-q", "-F"])
            .arg(slapd.dir().join("slapd.d"))
            .arg("-l")
            .arg(&ldif)
            .output()
            .map_err(|e| format!("slapadd: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "slapadd -l {} failed ({}): {}",
                ldif.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let loaded = t1.elapsed();
        // slapadd -q leaves the database to the page cache: write it back now, or the first
        // logins' commits (fdatasync) pay for hundreds of megabytes.
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        slapd.restart();
        let db = slapd.dir().join("db/data.mdb");
        let size = std::fs::metadata(&db).map_or(0, |m| m.blocks() * 512);
        let seeded = load_seeded(dir)?;
        // Who the module is over ldapi now: the validator, not the rootDN.
        let whoami = slapd.tool("ldapwhoami", Bind::Root, None, &[], None);
        let identity = whoami.stdout.trim().trim_start_matches("dn:");
        if !identity.eq_ignore_ascii_case(SERVICE_DN) {
            return Err(format!(
                "ldapi identity is {identity:?}, not the validator: {}",
                whoami.stderr
            ));
        }
        println!(
            "SLAPD users={} slapadd_s={:.1} db_mib={:.1} ready_s={:.1} ldapi_identity={identity} dir={}",
            seeded.len(),
            loaded.as_secs_f64(),
            size as f64 / f64::from(1 << 20),
            t0.elapsed().as_secs_f64(),
            slapd.dir().display()
        );
        Ok(Directory { slapd, seeded })
    }

    /// Writes `pam_totp-<name>.conf` and `pam.d/<name>` for the services `ldapi` and `starttls`.
    fn services(&self, dir: &Path, module: &str) -> Result<(), String> {
        let base = format!("store = \"ldap\"\n[ldap]\nbase = \"{PEOPLE_BASE}\"\n");
        let ldapi = format!(
            "{base}uri = \"{}\"\nbind = \"sasl-external\"\n",
            self.slapd.ldapi_uri()
        );
        let starttls = format!(
            "{base}uri = \"{}\"\nbind_dn = \"{SERVICE_DN}\"\nbind_password_file = \"{}\"\nca_file = \"{}\"\n",
            self.slapd.ldap_uri(),
            self.slapd.service_password_file().display(),
            self.slapd.ca_file().display()
        );
        for (name, text) in [("ldapi", ldapi), ("starttls", starttls)] {
            let conf = dir.join(format!("pam_totp-{name}.conf"));
            crate::write_file(
                &conf,
                format!("# Generated by pam-bench ldap.\n{text}").as_bytes(),
                0o644,
            )?;
            crate::write_file(
                &dir.join(format!("pam.d/{name}")),
                format!("auth required {module} config={}\n", conf.display()).as_bytes(),
                0o644,
            )?;
        }
        Ok(())
    }

    /// Puts back `user`'s token step and state of the earlier login (as the rootDN).
    fn restore(&self, user: &str) -> Result<(), String> {
        let (id, step0) = self
            .seeded
            .get(user)
            .ok_or_else(|| format!("{user} is not a generated directory user"))?;
        let state = seeded_state(id, *step0)?;
        let ldif = format!(
            "dn: {}\nchangetype: modify\nreplace: oathTOTPLastTimeStep\noathTOTPLastTimeStep: {step0}\n\n\
             dn: {}\nchangetype: modify\nreplace: pamTotpState\npamTotpState:: {}\n",
            token_dn(user),
            account_dn(user),
            base64_encode(state.as_bytes())
        );
        let root = Bind::Simple {
            dn: ROOT_DN,
            password: self.slapd.root_password(),
        };
        let out = self.slapd.ldapmodify(root, &ldif, &[]);
        if out.code != 0 {
            return Err(format!("restoring {user}: {} {}", out.code, out.stderr));
        }
        Ok(())
    }
}

fn load_seeded(dir: &Path) -> Result<HashMap<String, (String, u64)>, String> {
    let path = dir.join("ldap/state.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|line| {
            let mut it = line.split('\t');
            match (it.next(), it.next(), it.next().and_then(|s| s.parse().ok())) {
                (Some(name), Some(id), Some(step)) => {
                    Ok((name.to_string(), (id.to_string(), step)))
                }
                _ => Err(format!("bad line in {}: {line}", path.display())),
            }
        })
        .collect()
}

/// Puts a user's pre-login state back (local files or directory).
type Restore<'a> = &'a dyn Fn(&str) -> Result<(), String>;

/// Hands out generated users of each prefix in order, so no user logs in twice unless meant to.
#[derive(Default)]
struct Users(HashMap<&'static str, usize>);

impl Users {
    fn take(&mut self, prefix: &'static str, count: usize) -> Vec<String> {
        let next = self.0.entry(prefix).or_default();
        let out = (*next..*next + count)
            .map(|i| format!("{prefix}{i}"))
            .collect();
        *next += count;
        out
    }

    /// `2 * count` users of `prefix`, every other one to each half (see `gen`'s passwd order).
    fn pairs(&mut self, prefix: &'static str, count: usize) -> (Vec<String>, Vec<String>) {
        let all = self.take(prefix, 2 * count);
        let (even, odd): (Vec<_>, Vec<_>) =
            all.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        (
            even.into_iter().map(|(_, u)| u).collect(),
            odd.into_iter().map(|(_, u)| u).collect(),
        )
    }
}

pub(crate) fn run(f: &Flags) -> Result<(), String> {
    let dir = PathBuf::from(f.get("dir")?);
    let module = std::fs::read_to_string(dir.join("pam.d/totp"))
        .ok()
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        .ok_or("pam.d/totp missing: run `pam-bench gen` first")?;
    let directory = Directory::start(&dir)?;
    directory.services(&dir, &module)?;
    let mut users = Users::default();
    if f.has("rounds") {
        let rounds = f.num("rounds", 3)?;
        let per = f.num("per-round", 200)?;
        let n = rounds * per;
        let (ldapi_ok, starttls_ok) = users.pairs("d", n);
        let (ldapi_bad, starttls_bad) = users.pairs("d", n);
        let plan = [
            ("base", "permit", "none", users.take("n", n), 0),
            ("files-success", "totp", "totp", users.take("t", n), 0),
            ("files-wrong", "totp", "wrong", users.take("t", n), 7),
            ("ga-success", "ga", "totp", users.take("g", n), 0),
            ("ga-wrong", "ga", "wrong", users.take("g", n), 7),
            ("ldapi-success", "ldapi", "totp", ldapi_ok, 0),
            ("ldapi-wrong", "ldapi", "wrong", ldapi_bad, 7),
            ("starttls-success", "starttls", "totp", starttls_ok, 0),
            ("starttls-wrong", "starttls", "wrong", starttls_bad, 7),
        ];
        let mut rows = plan
            .into_iter()
            .map(|(label, service, kind, u, expect)| {
                Row::new(label, service, kind, u, expect).map(Row::with_setcred)
            })
            .collect::<Result<Vec<_>, _>>()?;
        interleave(&dir, &mut rows, rounds, per)?;
        for row in &mut rows {
            row.print();
        }
    }
    if let Some(spec) = f.0.get("throughput") {
        let parts: Vec<usize> = spec.split(':').filter_map(|s| s.parse().ok()).collect();
        let [procs, logins, rounds] = parts[..] else {
            return Err("--throughput expects PROCS:LOGINS:ROUNDS".into());
        };
        let n = procs * logins * rounds;
        let (ldapi, starttls) = users.pairs("d", n);
        let (ldapi_one, starttls_one) = users.pairs("d", 1);
        let files_restore = |u: &str| restore_state(&dir, u);
        let ldap_restore = |u: &str| directory.restore(u);
        let cases = [
            (
                "files",
                "totp",
                users.take("t", n),
                users.take("t", 1),
                &files_restore as Restore<'_>,
            ),
            ("ldapi", "ldapi", ldapi, ldapi_one, &ldap_restore),
            (
                "starttls",
                "starttls",
                starttls,
                starttls_one,
                &ldap_restore,
            ),
        ];
        for (label, service, different, one, restore) in cases {
            // Round r, client c: its `logins` users in a row.
            let plan: Vec<Vec<Vec<String>>> = different
                .chunks(procs * logins)
                .map(|round| round.chunks(logins).map(<[String]>::to_vec).collect())
                .collect();
            throughput(
                &dir,
                service,
                &format!("{label}-different-users"),
                &plan,
                restore,
            )?;
            let plan = vec![vec![one.clone(); procs]; rounds];
            throughput(&dir, service, &format!("{label}-one-user"), &plan, restore)?;
        }
    }
    if let Some(spec) = f.0.get("scale-users") {
        let scale = crate::user_range(spec)?;
        let n = f.num("n", 300)?;
        for service in ["ldapi", "starttls"] {
            repeat(&dir, &directory, service, &scale, n)?;
        }
    }
    Ok(())
}

/// `n` full logins cycling over `users`, each user put back before its login (not timed).
fn repeat(
    dir: &Path,
    directory: &Directory,
    service: &str,
    users: &[String],
    n: usize,
) -> Result<(), String> {
    let mut row = Row::new(
        &format!("{service}-{}-enrolled", directory.seeded.len()),
        service,
        "totp",
        Vec::new(),
        0,
    )?
    .with_setcred();
    let confdir = cstr(&dir.join("pam.d").to_string_lossy())?;
    let rhost = cstr(RHOST)?;
    let manifest = Manifest::load(dir, users)?;
    for i in 0..n {
        let user = &users[i % users.len()];
        directory.restore(user)?;
        row.login(&confdir, &rhost, &manifest, user)?;
    }
    row.print();
    Ok(())
}

/// Forks one client per entry of each round of `plan`; each logs in its users one after the
/// other (pam_start, pam_authenticate, pam_setcred on success, pam_end) once all are released
/// together. Users repeated within a round are put back before it (`restore`); each client's
/// exit code is its number of successes. Prints logins per second over the rounds' wall time.
fn throughput(
    dir: &Path,
    service: &str,
    label: &str,
    plan: &[Vec<Vec<String>>],
    restore: Restore<'_>,
) -> Result<(), String> {
    let confdir = cstr(&dir.join("pam.d").to_string_lossy())?;
    let service_c = cstr(service)?;
    let rhost = cstr(RHOST)?;
    let all: Vec<String> = plan.iter().flatten().flatten().cloned().collect();
    let manifest = Manifest::load(dir, &all)?;
    let mut successes = Vec::new();
    let mut total = Duration::ZERO;
    let mut logins = 0;
    for round in plan {
        // One user for every client: put its pre-login token and state back first.
        if round.len() > 1 && round.iter().all(|c| c == &round[0]) {
            for u in &round[0] {
                restore(u)?;
            }
        }
        // Answers are computed before forking (the code of the current step).
        let jobs: Vec<Vec<(CString, String)>> = round
            .iter()
            .map(|users| {
                users
                    .iter()
                    .map(|u| Ok((cstr(u)?, manifest.answer(u, "totp")?)))
                    .collect::<Result<_, String>>()
            })
            .collect::<Result<_, _>>()?;
        let (wall, codes) = fork_released(jobs.len(), |i, wait| {
            wait();
            let mut ok = 0;
            for (user, answer) in &jobs[i] {
                let Ok(mut txn) = pam::Txn::start(&confdir, &service_c, user, Some(&rhost), answer)
                else {
                    continue;
                };
                let (mut rc, _) = txn.authenticate();
                if rc == pam::PAM_SUCCESS {
                    rc = txn.setcred().0;
                }
                drop(txn);
                if rc == pam::PAM_SUCCESS {
                    ok += 1;
                }
            }
            ok.min(255)
        })?;
        let ok: i32 = codes.iter().flatten().sum();
        total += wall;
        logins += jobs.iter().map(Vec::len).sum::<usize>();
        successes.push(ok);
    }
    println!(
        "TPUT label={label} procs={} logins_per_proc={} rounds={} successes_per_round={successes:?} logins_per_s={:.0} wall_ms_per_round={:.1}",
        plan.first().map_or(0, Vec::len),
        plan.first().and_then(|r| r.first()).map_or(0, Vec::len),
        plan.len(),
        logins as f64 / total.as_secs_f64(),
        total.as_secs_f64() * 1e3 / plan.len() as f64,
    );
    Ok(())
}
