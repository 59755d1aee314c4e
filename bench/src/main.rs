//! `pam-bench`: the benchmark client behind bench/run.sh. It generates users (an nss_wrapper
//! passwd file), pam_totp and google-authenticator secret files, and pam_totp state files;
//! drives PAM services through the real libpam, timing each `pam_authenticate`; races
//! concurrent logins in forked processes; and checks afterwards that every file still parses.
//!
//! ```text
//! pam-bench gen   --dir D --module SO [--totp N] [--ga N] [--plain N] [--ldap N]
//! pam-bench run   --dir D --service S --kind totp|wrong|backup|none --users PREFIX:FIRST:COUNT
//!                 [--n LOGINS] [--expect CODE] [--restore] [--label TEXT]
//! pam-bench race  --dir D --service S --kind totp|backup --users PREFIX:FIRST:COUNT
//!                 --procs P [--rounds R] [--same-user] [--label TEXT]
//! pam-bench sshd  --dir D [--rounds R] [--per-round P] [--backup-per-round B]
//! pam-bench check --dir D
//! pam-bench ldap  --dir D [--rounds R --per-round P] [--throughput PROCS:LOGINS:ROUNDS]
//!                 [--scale-users PREFIX:FIRST:COUNT --n LOGINS]
//! ```
//! `sshd` is the comparison as sshd pays it: every login is `pam_start` (which loads the stack's
//! modules) + `pam_authenticate` + `pam_end` on a fresh handle, as in sshd's per-connection
//! child. pam_totp, google-authenticator and a `pam_permit` baseline run in R rounds of P users
//! per path, the paths taking turns login by login, so a slow spell of the machine hits all of
//! them alike; each login records both the whole transaction and `pam_authenticate` alone.
//! Users are `t<i>` (pam_totp enrolled), `g<i>` (google-authenticator enrolled), `n<i>` (not
//! enrolled) and `d<i>` (enrolled in the directory: `ldap`, see bench/src/ldap.rs). `--restore` rewrites the user's pre-login state file before each login (not timed),
//! so a small user set can log in many times without hitting replay protection.

mod ldap;
mod pam;

use pam_totp_core::backup::BackupSet;
use pam_totp_core::secret::TotpSecret;
use pam_totp_core::secret_file::{Algorithm, Authenticator, SecretFile};
use pam_totp_core::state::State;
use pam_totp_core::store::{LocalFiles, Store, TotpUse};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PERIOD: u64 = 30;
const RHOST: &str = "198.51.100.7";
/// google-authenticator scratch codes, the same for every g-user (each user uses one once).
const GA_SCRATCH: [&str; 5] = ["46393898", "10498829", "22283474", "69447375", "19897090"];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn totp_code(secret: &[u8], t: u64) -> String {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(PERIOD)
        .with_secret(secret.to_vec())
        .with_skew(0)
        .build_noncompliant()
        .generate(t)
        .to_string()
}

/// Command-line flags as `--key value` pairs and bare `--switch`es.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let key = args[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected {}", args[i]))?;
            match args.get(i + 1).filter(|v| !v.starts_with("--")) {
                Some(v) => {
                    map.insert(key.to_string(), v.clone());
                    i += 2;
                }
                None => {
                    map.insert(key.to_string(), String::new());
                    i += 1;
                }
            }
        }
        Ok(Flags(map))
    }
    fn get(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("--{key} is required"))
    }
    fn num(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key} expects a number")),
        }
    }
    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// `PREFIX:FIRST:COUNT` -> user names.
fn user_range(spec: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [prefix, first, count] = parts[..] else {
        return Err("--users expects PREFIX:FIRST:COUNT".into());
    };
    let first: usize = first.parse().map_err(|_| "bad FIRST")?;
    let count: usize = count.parse().map_err(|_| "bad COUNT")?;
    Ok((first..first + count)
        .map(|i| format!("{prefix}{i}"))
        .collect())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

fn generate(f: &Flags) -> Result<(), String> {
    let dir = PathBuf::from(f.get("dir")?);
    let module = f.get("module")?;
    let (n_totp, n_ga, n_plain) = (f.num("totp", 0)?, f.num("ga", 0)?, f.num("plain", 0)?);
    let n_ldap = f.num("ldap", 0)?;
    for sub in ["secrets", "state", "state-template", "ga", "pam.d"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
    }
    for sub in ["", "secrets", "state", "state-template", "ga", "pam.d"] {
        std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let d = dir.display();
    write_file(
        &dir.join("pam_totp.conf"),
        format!(
            "# Generated by pam-bench gen.\nsecret = \"{d}/secrets/${{USER}}.toml\"\nstate_dir = \"{d}/state\"\nuser = \"root\"\nnullok = true\n"
        )
        .as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join("pam.d/totp"),
        format!("auth required {module} config={d}/pam_totp.conf\n").as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join("pam.d/ga"),
        format!(
            "auth required pam_google_authenticator.so secret={d}/ga/${{USER}} user=root nullok\n"
        )
        .as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join("pam.d/permit"),
        b"auth required pam_permit.so\n",
        0o644,
    )?;

    // One backup set (default PBKDF2 rounds, as `pam-totp enroll` writes) shared by every t-user:
    // hashing 10 codes per user for 100,000 users would take hours. Each user consumes code 0 once.
    let t = now();
    let (set, codes) = BackupSet::generate(10, t).map_err(|e| e.to_string())?;
    let backup_code = codes.0[0].to_string();
    // The pre-login state is seeded through the store itself (its record format is its own).
    let store = LocalFiles::new(
        format!("{d}/secrets/${{USER}}.toml"),
        dir.join("state"),
        None,
        0o600,
        true,
    );
    let mut manifest = String::new();
    let mut uid = 200_000;
    let mut t_lines = Vec::with_capacity(n_totp);
    for i in 0..n_totp {
        let name = format!("t{i}");
        let (file, hex) = enrollment(&name, &set, t)?;
        let enrollment_id = file.enrollment_id.clone();
        write_file(
            &dir.join(format!("secrets/{name}.toml")),
            file.to_toml().map_err(|e| e.to_string())?.as_bytes(),
            0o600,
        )?;
        // An earlier login, many steps ago: the state every enrolled user has after first use.
        store
            .consume_totp(
                &name,
                &TotpUse {
                    enrollment_id: &enrollment_id,
                    authenticator: "default",
                    step: t / PERIOD - 100,
                    refund: None,
                    success: None,
                },
            )
            .map_err(|e| format!("seeding the state of {name}: {e}"))?;
        let mut st = State::new();
        st.rebind(&enrollment_id);
        st.last_step.insert("default".into(), t / PERIOD - 100);
        let text = st.to_toml().map_err(|e| e.to_string())?;
        write_file(
            &dir.join(format!("state/{name}.state")),
            text.as_bytes(),
            0o644,
        )?;
        write_file(
            &dir.join(format!("state-template/{name}.state")),
            text.as_bytes(),
            0o644,
        )?;
        t_lines.push(format!("{name}:x:{uid}:60000::/nonexistent:/bin/sh\n"));
        manifest.push_str(&format!("{name}\t{hex}\t{backup_code}\n"));
        uid += 1;
    }
    let mut d_lines = Vec::with_capacity(n_ldap);
    if n_ldap > 0 {
        // Directory users: entries for slapadd (bench/src/ldap.rs), the same enrollment as the
        // t-users, and the state of the same earlier login.
        let mut out = ldap::EntryWriter::create(&dir, t / PERIOD - 100)?;
        for i in 0..n_ldap {
            let name = format!("d{i}");
            let (file, hex) = enrollment(&name, &set, t)?;
            out.add(&name, uid, &file)?;
            d_lines.push(format!("{name}:x:{uid}:60000::/nonexistent:/bin/sh\n"));
            manifest.push_str(&format!("{name}\t{hex}\t{backup_code}\n"));
            uid += 1;
        }
        out.finish()?;
    }
    // nss_wrapper scans the passwd file line by line: t<i>, d<2i> and d<2i+1> take turns, so
    // pam_totp on local files and on the directory (two transports, `ldap` gives each every
    // other d-user) pay the same for the same place in their row.
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/bash\n");
    let (mut t_lines, mut d_lines) = (t_lines.into_iter(), d_lines.into_iter());
    loop {
        let group: Vec<String> = t_lines
            .next()
            .into_iter()
            .chain(d_lines.by_ref().take(2))
            .collect();
        if group.is_empty() {
            break;
        }
        group.iter().for_each(|l| passwd.push_str(l));
    }
    for i in 0..n_ga {
        let name = format!("g{i}");
        let secret = TotpSecret::generate(20).map_err(|e| e.to_string())?;
        let hex = pam_totp_core::secret::to_hex(secret.expose());
        // What `google-authenticator -t -d -r 3 -R 30 -w 3 -e 5` writes.
        let body = format!(
            "{}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n{}\n",
            secret.to_base32().as_str(),
            GA_SCRATCH.join("\n")
        );
        write_file(&dir.join(format!("ga/{name}")), body.as_bytes(), 0o400)?;
        passwd.push_str(&format!("{name}:x:{uid}:60000::/nonexistent:/bin/sh\n"));
        manifest.push_str(&format!("{name}\t{hex}\t{}\n", GA_SCRATCH[0]));
        uid += 1;
    }
    for i in 0..n_plain {
        passwd.push_str(&format!("n{i}:x:{uid}:60000::/nonexistent:/bin/sh\n"));
        uid += 1;
    }
    write_file(&dir.join("passwd"), passwd.as_bytes(), 0o644)?;
    write_file(&dir.join("group"), b"root:x:0:\nbench:x:60000:\n", 0o644)?;
    write_file(&dir.join("users.tsv"), manifest.as_bytes(), 0o600)?;
    println!("GEN dir={d} totp={n_totp} ga={n_ga} plain={n_plain} ldap={n_ldap}");
    Ok(())
}

/// A new enrollment of `name` as `pam-totp enroll` writes it (one SHA1/6-digit/30 s
/// authenticator named `default`) with the shared backup set, and its key in hex.
fn enrollment(name: &str, set: &BackupSet, t: u64) -> Result<(SecretFile, String), String> {
    let secret = TotpSecret::generate(20).map_err(|e| e.to_string())?;
    let hex = pam_totp_core::secret::to_hex(secret.expose());
    let enrollment_id = pam_totp_core::secret::random_id(8).map_err(|e| e.to_string())?;
    let file = SecretFile {
        enrollment_id,
        created: t,
        authenticators: vec![Authenticator {
            name: "default".into(),
            secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: PERIOD,
            added: t,
            issuer: "bench".into(),
            label: name.to_string(),
            hotp: None,
        }],
        backup: Some(set.clone()),
        forget_hosts_before: 0,
    };
    Ok((file, hex))
}

struct Manifest(HashMap<String, (Vec<u8>, String)>);

impl Manifest {
    fn load(dir: &Path, users: &[String]) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(dir.join("users.tsv")).map_err(|e| e.to_string())?;
        let wanted: std::collections::HashSet<&str> = users.iter().map(String::as_str).collect();
        let mut map = HashMap::new();
        for line in text.lines() {
            let mut it = line.split('\t');
            if let (Some(name), Some(hex), Some(backup)) = (it.next(), it.next(), it.next())
                && wanted.contains(name)
            {
                let secret = pam_totp_core::secret::from_hex(hex).ok_or("bad hex in users.tsv")?;
                map.insert(name.to_string(), (secret, backup.to_string()));
            }
        }
        Ok(Manifest(map))
    }

    fn answer(&self, user: &str, kind: &str) -> Result<String, String> {
        let entry = self.0.get(user);
        let t = now();
        Ok(match (kind, entry) {
            ("none", _) => "000000".into(),
            ("totp", Some((secret, _))) => totp_code(secret, t),
            ("backup", Some((_, backup))) => backup.clone(),
            ("wrong", Some((secret, _))) => {
                // A six-digit code that matches no step within 5 steps either side.
                let near: Vec<String> = (0..=10)
                    .map(|k| totp_code(secret, t + k * PERIOD - 5 * PERIOD))
                    .collect();
                (0..1_000_000u32)
                    .map(|n| format!("{:06}", (n * 7919 + 13) % 1_000_000))
                    .find(|c| !near.contains(c))
                    .unwrap_or_default()
            }
            (k, None) => return Err(format!("no secret for {user} (kind {k})")),
            (k, _) => return Err(format!("unknown --kind {k}")),
        })
    }
}

fn max_rss_kb(who: i32) -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru.ru_maxrss
    }
}

/// Puts back the user's pre-login state: the records the last login wrote are removed and the
/// generated state (a release-0.1 file, which the module reads as generation 0) is copied back.
fn restore_state(dir: &Path, user: &str) -> Result<(), String> {
    let from = dir.join(format!("state-template/{user}.state"));
    let to = dir.join(format!("state/{user}.state"));
    let tmp = dir.join(format!("state/.bench-restore-{user}"));
    if !from.exists() {
        // google-authenticator users keep their state in the secret file: nothing to restore.
        return Ok(());
    }
    match std::fs::remove_dir_all(dir.join(format!("state/{user}"))) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("state/{user}: {e}")),
    }
    std::fs::copy(&from, &tmp).map_err(|e| format!("{}: {e}", from.display()))?;
    std::fs::rename(&tmp, &to).map_err(|e| e.to_string())
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| "NUL in argument".to_string())
}

fn run(f: &Flags) -> Result<(), String> {
    let dir = PathBuf::from(f.get("dir")?);
    let service = f.get("service")?;
    let kind = f.get("kind")?;
    let users = user_range(f.get("users")?)?;
    let n = f.num("n", users.len())?;
    let expect = f.num("expect", 0)? as i32;
    let restore = f.has("restore");
    let label =
        f.0.get("label")
            .cloned()
            .unwrap_or_else(|| format!("{service}/{kind}"));
    let manifest = Manifest::load(&dir, &users)?;
    let confdir = cstr(&dir.join("pam.d").to_string_lossy())?;
    let service_c = cstr(service)?;
    let rhost = cstr(RHOST)?;
    let mut auth = Vec::with_capacity(n);
    let mut txn = Vec::with_capacity(n);
    let mut ok = 0;
    let mut codes: HashMap<i32, usize> = HashMap::new();
    for i in 0..n {
        let user = &users[i % users.len()];
        if restore {
            restore_state(&dir, user)?;
        }
        let answer = manifest.answer(user, kind)?;
        let user_c = cstr(user)?;
        let t0 = Instant::now();
        let mut t = pam::Txn::start(&confdir, &service_c, &user_c, Some(&rhost), &answer)
            .map_err(|rc| format!("pam_start_confdir failed: {rc}"))?;
        let (rc, d) = t.authenticate();
        drop(t);
        txn.push(t0.elapsed());
        auth.push(d);
        *codes.entry(rc).or_default() += 1;
        if rc == expect {
            ok += 1;
        }
    }
    auth.sort();
    txn.sort();
    let mut codes: Vec<_> = codes.into_iter().collect();
    codes.sort();
    let codes: Vec<String> = codes.iter().map(|(c, k)| format!("{c}x{k}")).collect();
    println!(
        "ROW label={label} n={n} ok={ok} codes={} auth_median_us={:.1} auth_p10_us={:.1} auth_p90_us={:.1} txn_median_us={:.1} maxrss_kb={}",
        codes.join(","),
        quantile(&auth, 0.5),
        quantile(&auth, 0.1),
        quantile(&auth, 0.9),
        quantile(&txn, 0.5),
        max_rss_kb(libc::RUSAGE_SELF)
    );
    Ok(())
}

/// One measured row of `sshd`: a service, the kind of answer, the users and the expected code.
struct Row {
    label: String,
    service: CString,
    kind: &'static str,
    users: Vec<String>,
    expect: i32,
    /// After a successful `pam_authenticate`, also `pam_setcred(PAM_ESTABLISH_CRED)`, as sshd
    /// does once the whole auth stack succeeded (pam_totp records the success there).
    setcred: bool,
    txn: Vec<Duration>,
    auth: Vec<Duration>,
    cred: Vec<Duration>,
    ok: usize,
    codes: HashMap<i32, usize>,
}

fn sshd(f: &Flags) -> Result<(), String> {
    let dir = PathBuf::from(f.get("dir")?);
    let rounds = f.num("rounds", 3)?;
    let per = f.num("per-round", 200)?;
    let per_backup = f.num("backup-per-round", per)?;
    // Every enrolled user logs in once per run (no state is restored): t/g users 0..R*P answer
    // codes, the next R*P answer wrong codes, the next R*B backup codes; n users are not enrolled.
    let span =
        |prefix: &str, first: usize, count: usize| user_range(&format!("{prefix}:{first}:{count}"));
    let mut rows = vec![Row::new(
        "base",
        "permit",
        "none",
        span("n", 0, rounds * per)?,
        0,
    )?];
    for (svc, p) in [("totp", "t"), ("ga", "g")] {
        rows.push(Row::new(
            &format!("{svc}-success"),
            svc,
            "totp",
            span(p, 0, rounds * per)?,
            0,
        )?);
        rows.push(Row::new(
            &format!("{svc}-wrong"),
            svc,
            "wrong",
            span(p, rounds * per, rounds * per)?,
            7,
        )?);
        rows.push(Row::new(
            &format!("{svc}-backup"),
            svc,
            "backup",
            span(p, 2 * rounds * per, rounds * per_backup)?,
            0,
        )?);
        // Not enrolled + nullok: the module returns PAM_IGNORE, so libpam answers PAM_PERM_DENIED.
        rows.push(Row::new(
            &format!("{svc}-none"),
            svc,
            "none",
            span("n", 0, rounds * per)?,
            6,
        )?);
    }
    interleave(&dir, &mut rows, rounds, per.max(per_backup))?;
    for row in &mut rows {
        row.print();
    }
    Ok(())
}

/// Runs every row's logins: in each of `rounds` rounds, up to `per` logins per row (its users
/// split evenly over the rounds). Within a round the rows take turns login by login, in an
/// order that rotates every login, so a slow spell of the (shared) machine lands on all of
/// them alike.
fn interleave(dir: &Path, rows: &mut [Row], rounds: usize, per: usize) -> Result<(), String> {
    let confdir = cstr(&dir.join("pam.d").to_string_lossy())?;
    let rhost = cstr(RHOST)?;
    let all: Vec<String> = rows.iter().flat_map(|r| r.users.iter().cloned()).collect();
    let manifest = Manifest::load(dir, &all)?;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    for round in 0..rounds {
        for j in 0..per {
            for &i in &order {
                let row = &mut rows[i];
                let chunk = row.users.len() / rounds;
                if j < chunk {
                    let user = row.users[round * chunk + j].clone();
                    row.login(&confdir, &rhost, &manifest, &user)?;
                }
            }
            order.rotate_left(1);
        }
    }
    Ok(())
}

impl Row {
    fn new(
        label: &str,
        service: &str,
        kind: &'static str,
        users: Vec<String>,
        expect: i32,
    ) -> Result<Row, String> {
        Ok(Row {
            label: label.to_string(),
            service: cstr(service)?,
            kind,
            users,
            expect,
            setcred: false,
            txn: Vec::new(),
            auth: Vec::new(),
            cred: Vec::new(),
            ok: 0,
            codes: HashMap::new(),
        })
    }

    /// The same row with `pam_setcred` after each successful authentication.
    fn with_setcred(mut self) -> Row {
        self.setcred = true;
        self
    }

    /// One login as sshd's child does it: pam_start .. pam_end on a fresh handle, timed whole.
    fn login(
        &mut self,
        confdir: &CStr,
        rhost: &CStr,
        manifest: &Manifest,
        user: &str,
    ) -> Result<(), String> {
        let answer = manifest.answer(user, self.kind)?;
        let user_c = cstr(user)?;
        let t0 = Instant::now();
        let mut t = pam::Txn::start(confdir, &self.service, &user_c, Some(rhost), &answer)
            .map_err(|rc| format!("pam_start_confdir failed: {rc}"))?;
        let (mut rc, d) = t.authenticate();
        if self.setcred && rc == pam::PAM_SUCCESS {
            let (cred_rc, c) = t.setcred();
            rc = cred_rc;
            self.cred.push(c);
        }
        drop(t);
        self.txn.push(t0.elapsed());
        self.auth.push(d);
        *self.codes.entry(rc).or_default() += 1;
        if rc == self.expect {
            self.ok += 1;
        }
        Ok(())
    }

    fn print(&mut self) {
        self.txn.sort();
        self.auth.sort();
        self.cred.sort();
        let mut codes: Vec<_> = self.codes.iter().map(|(c, k)| (*c, *k)).collect();
        codes.sort();
        let codes: Vec<String> = codes.iter().map(|(c, k)| format!("{c}x{k}")).collect();
        // Only successful logins reach pam_setcred (NaN when there were none).
        let setcred = if self.setcred {
            format!(
                " setcred_n={} setcred_median_us={:.1} setcred_p10_us={:.1} setcred_p90_us={:.1}",
                self.cred.len(),
                quantile(&self.cred, 0.5),
                quantile(&self.cred, 0.1),
                quantile(&self.cred, 0.9),
            )
        } else {
            String::new()
        };
        println!(
            "ROW label={} n={} ok={} codes={} txn_median_us={:.1} txn_p10_us={:.1} txn_p90_us={:.1} auth_median_us={:.1} auth_p10_us={:.1} auth_p90_us={:.1}{setcred}",
            self.label,
            self.txn.len(),
            self.ok,
            codes.join(","),
            quantile(&self.txn, 0.5),
            quantile(&self.txn, 0.1),
            quantile(&self.txn, 0.9),
            quantile(&self.auth, 0.5),
            quantile(&self.auth, 0.1),
            quantile(&self.auth, 0.9),
        );
    }
}

/// Forks `n` children; child `i` runs `child(i, wait)`, calling `wait()` where it is ready
/// (it blocks until every child is released at once), and exits with what `child` returns.
/// Returns the time from the release until the last child exited, and each child's exit code
/// (`None` if it did not exit normally).
fn fork_released(
    n: usize,
    child: impl Fn(usize, &dyn Fn()) -> i32,
) -> Result<(Duration, Vec<Option<i32>>), String> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe fills two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err("pipe failed".into());
    }
    let mut pids = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the parent is single-threaded (no thread of the modules outlives a PAM call);
        // the child only runs `child` and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: closing the child's copy of the write end, so that the parent's close
            // is the EOF that releases every reader.
            unsafe { libc::close(fds[1]) };
            let wait = || {
                let mut b = 0u8;
                // SAFETY: reading one byte into a valid buffer; returns 0 at EOF (the release).
                unsafe { libc::read(fds[0], (&mut b as *mut u8).cast(), 1) };
            };
            // A panic must not unwind into the parent's frames in this process.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(i, &wait)))
                .unwrap_or(4);
            // SAFETY: leaving the forked child without running the parent's destructors (a
            // test slapd held by the parent must not be stopped by a child).
            unsafe { libc::_exit(code) };
        }
        if pid < 0 {
            return Err("fork failed".into());
        }
        pids.push(pid);
    }
    // Let every child reach the barrier (pam_start done, module loaded), then release.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    // SAFETY: closing both ends in the parent releases every reader at once.
    unsafe {
        libc::close(fds[1]);
        libc::close(fds[0]);
    }
    let mut codes = Vec::with_capacity(n);
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        codes.push(libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)));
    }
    Ok((t0.elapsed(), codes))
}

fn race(f: &Flags) -> Result<(), String> {
    let dir = PathBuf::from(f.get("dir")?);
    let service = f.get("service")?;
    let kind = f.get("kind")?;
    let users = user_range(f.get("users")?)?;
    let procs = f.num("procs", 64)?;
    let rounds = f.num("rounds", 1)?;
    let same = f.has("same-user");
    let label =
        f.0.get("label")
            .cloned()
            .unwrap_or_else(|| format!("{service}/{kind}"));
    let manifest = Manifest::load(&dir, &users)?;
    let confdir = cstr(&dir.join("pam.d").to_string_lossy())?;
    let service_c = cstr(service)?;
    let rhost = cstr(RHOST)?;
    // Load the password database once here (nss_wrapper parses its whole file on first use), so
    // the forked children inherit it instead of each parsing it again.
    if let Some(first) = users.first() {
        let name = cstr(first)?;
        // SAFETY: getpwnam with a NUL-terminated name; the result is not kept.
        unsafe { libc::getpwnam(name.as_ptr()) };
    }
    let mut successes = Vec::new();
    let mut total = Duration::ZERO;
    for round in 0..rounds {
        let round_users: Vec<String> = (0..procs)
            .map(|i| {
                if same {
                    users[round % users.len()].clone()
                } else {
                    users[(round * procs + i) % users.len()].clone()
                }
            })
            .collect();
        for u in &round_users {
            restore_state(&dir, u)?;
        }
        let answers: Vec<String> = round_users
            .iter()
            .map(|u| manifest.answer(u, kind))
            .collect::<Result<_, _>>()?;
        let (wall, codes) = fork_released(round_users.len(), |i, wait| {
            let Ok(user_c) = cstr(&round_users[i]) else {
                return 3;
            };
            let Ok(mut txn) =
                pam::Txn::start(&confdir, &service_c, &user_c, Some(&rhost), &answers[i])
            else {
                return 3;
            };
            wait();
            let (rc, _) = txn.authenticate();
            drop(txn);
            if rc == pam::PAM_SUCCESS { 0 } else { 1 }
        })?;
        let ok = codes.iter().filter(|&&c| c == Some(0)).count();
        total += wall;
        successes.push(ok);
    }
    let logins = (procs * rounds) as f64;
    println!(
        "RACE label={label} procs={procs} rounds={rounds} same_user={same} successes_per_round={:?} logins_per_s={:.0} wall_ms_per_round={:.1} child_maxrss_kb={}",
        successes,
        logins / total.as_secs_f64(),
        total.as_secs_f64() * 1e3 / rounds as f64,
        max_rss_kb(libc::RUSAGE_CHILDREN)
    );
    Ok(())
}

fn check(f: &Flags) -> Result<(), String> {
    use pam_totp_core::store::Store;
    let dir = PathBuf::from(f.get("dir")?);
    let (mut secrets, mut states, mut bad) = (0, 0, 0);
    for entry in std::fs::read_dir(dir.join("secrets")).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            secrets += 1;
            let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
            if SecretFile::parse(&bytes).is_err() {
                bad += 1;
                eprintln!("corrupt: {}", path.display());
            }
        }
    }
    // Every user's current state, read as the module reads it (records or a release-0.1 file).
    let store = pam_totp_core::store::LocalFiles::new(
        format!("{}/secrets/${{USER}}.toml", dir.display()),
        dir.join("state"),
        None,
        0o600,
        false,
    );
    for user in store.users_with_state().map_err(|e| e.to_string())? {
        states += 1;
        if let Err(e) = store.state(&user) {
            bad += 1;
            eprintln!("corrupt: {user}: {e}");
        }
    }
    println!("CHECK secrets={secrets} states={states} corrupt={bad}");
    if bad > 0 {
        Err("corrupt files found".into())
    } else {
        Ok(())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: pam-bench gen|run|race|sshd|check|ldap --dir D ...");
        return ExitCode::from(2);
    };
    let result = Flags::parse(rest).and_then(|f| match cmd.as_str() {
        "gen" => generate(&f),
        "run" => run(&f),
        "race" => race(&f),
        "sshd" => sshd(&f),
        "check" => check(&f),
        "ldap" => ldap::run(&f),
        other => Err(format!("unknown command {other}")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pam-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
