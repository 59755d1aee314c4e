//! A throwaway OpenLDAP server per test, for the directory (LDAP) backend (issue 11).
//!
//! [`Slapd::start`] builds, in a temporary directory of its own, everything a directory test
//! needs and nothing from the host's `/etc/ldap`: a cn=config loaded with `slapadd -n0`
//! (`back_mdb`, the `otp` module, the core/cosine/inetorgperson/nis schemas and the shipped
//! `packaging/ldap/pam-totp.ldif`), an mdb database `dc=example,dc=org` with `ou=people`,
//! `ou=groups` and `ou=services`, a validator (service) account and an admin account in their
//! groups, a throwaway test CA for StartTLS and ldaps, and then the shipped
//! `packaging/ldap/pam-totp-acl.ldif`, applied with `ldapmodify` as an administrator would.
//! slapd runs in the foreground (`-d 0`) as a child of the test, so the process to stop is the
//! one started; dropping the handle stops it and removes the directory.
//!
//! The tools are the real ones (`slapd`, `slapadd`, `ldapmodify`, `ldapsearch`, `openssl`):
//! tests/install-deps.sh installs them. The host's slapd service is never used.
//!
//! `slapd.log` in the test directory has slapd's output; set `PAM_TOTP_SLAPD_DEBUG` to a debug
//! level (`sync`, `acl`, `stats`, ...) to fill it.
//!
//! Test credentials are random per server and stored in cleartext in files of mode 0600 in the
//! test directory (removed with it); `Debug` output leaves them out.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{TempDir, run_setup, workspace_dir};

/// The suffix of the test database.
pub const SUFFIX: &str = "dc=example,dc=org";
/// The rootDN (bypasses every access rule); its password is [`Slapd::root_password`].
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
/// Where the user entries are (the `base` of a directory-backed pam_totp.conf).
pub const PEOPLE_BASE: &str = "ou=people,dc=example,dc=org";
/// The groups' container.
pub const GROUPS_BASE: &str = "ou=groups,dc=example,dc=org";
/// The service accounts' container.
pub const SERVICES_BASE: &str = "ou=services,dc=example,dc=org";
/// The module's service account, member of [`VALIDATORS_GROUP`].
pub const SERVICE_DN: &str = "cn=pam-totp-validator,ou=services,dc=example,dc=org";
/// The group the shipped ACL lets read secrets and write login state.
pub const VALIDATORS_GROUP: &str = "cn=pam-totp-validators,ou=groups,dc=example,dc=org";
/// An enrollment administrator, member of [`ADMINS_GROUP`].
pub const ADMIN_DN: &str = "cn=pam-totp-admin,ou=services,dc=example,dc=org";
/// The group the shipped ACL lets manage every enrollment.
pub const ADMINS_GROUP: &str = "cn=pam-totp-admins,ou=groups,dc=example,dc=org";

/// The longest a start may take before the server must answer.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped server gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// What to put into a test server.
#[derive(Debug, Clone)]
pub struct SlapdOptions {
    /// Load the shipped schema `packaging/ldap/pam-totp.ldif` (leave it out for the "missing
    /// schema" failure test). Default true.
    pub schema: bool,
    /// Apply the shipped `packaging/ldap/pam-totp-acl.ldif` (placeholders filled in) in front of
    /// the Debian default rules. Without it only the Debian default rules apply (everybody reads
    /// everything but passwords). Default true. The ACL names the schema's attributes, so slapd
    /// refuses it without the schema: with `schema: false` it is never applied.
    pub acl: bool,
}

impl Default for SlapdOptions {
    fn default() -> Self {
        SlapdOptions {
            schema: true,
            acl: true,
        }
    }
}

/// Who an LDAP tool binds as.
#[derive(Clone, Copy)]
pub enum Bind<'a> {
    /// SASL EXTERNAL over ldapi: the peer credentials of this process, mapped to the rootDN (and
    /// to manage access on cn=config).
    Root,
    /// No bind, over `ldap://`.
    Anonymous,
    /// A simple bind over `ldap://`.
    Simple {
        /// The DN to bind as.
        dn: &'a str,
        /// Its password.
        password: &'a str,
    },
}

impl std::fmt::Debug for Bind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bind::Root => f.write_str("Root"),
            Bind::Anonymous => f.write_str("Anonymous"),
            Bind::Simple { dn, .. } => write!(f, "Simple {{ dn: {dn:?}, password: <redacted> }}"),
        }
    }
}

/// The result of one ldap-utils command: the tools exit with the LDAP result code (0 success,
/// 16 no such attribute value, 20 value exists, 32 no such object, 49 invalid credentials,
/// 50 insufficient access, 122 assertion failed; 255 for "cannot contact the server").
#[derive(Debug, Clone)]
pub struct LdapOutput {
    /// The exit code, i.e. the LDAP result code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output (LDIF for ldapsearch).
    pub stdout: String,
    /// Standard error (the tool's diagnostics).
    pub stderr: String,
    /// The command line shown in assertion messages (passwords replaced).
    pub command: String,
}

impl LdapOutput {
    /// Asserts the result code, showing the command and its output otherwise.
    ///
    /// # Panics
    /// The code differs.
    pub fn assert_code(&self, expected: i32, what: &str) -> &Self {
        assert_eq!(
            self.code, expected,
            "{what}: `{}` returned {} instead of {expected}\nstdout: {}\nstderr: {}",
            self.command, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts success (result code 0).
    ///
    /// # Panics
    /// The tool failed.
    pub fn assert_ok(&self, what: &str) -> &Self {
        self.assert_code(0, what)
    }

    /// The values of `attr` in an unwrapped LDIF output (`ldapsearch -o ldif-wrap=no`), base64
    /// values decoded as UTF-8 lossily. Attribute names compare case-insensitively.
    pub fn values(&self, attr: &str) -> Vec<String> {
        ldif_values(&self.stdout, attr)
    }

    /// The DNs of the entries in an LDIF output.
    pub fn dns(&self) -> Vec<String> {
        ldif_values(&self.stdout, "dn")
    }
}

/// The values of `attr` in unwrapped LDIF text.
pub fn ldif_values(ldif: &str, attr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in ldif.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case(attr) {
            continue;
        }
        if let Some(b64) = rest.strip_prefix(':') {
            let bytes = base64_decode(b64.trim()).unwrap_or_default();
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        } else {
            out.push(rest.trim_start().to_string());
        }
    }
    out
}

/// Standard base64 (RFC 4648 §4), as LDIF uses for `attr:: value`.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; `None` on a character outside the alphabet.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Random lower-case hex from /dev/urandom (test passwords; no dependency needed).
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .unwrap_or_else(|e| panic!("cannot read /dev/urandom: {e}"));
    buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound with port 0 and released). slapd
/// sets SO_REUSEADDR, and a start that loses the race is retried with new ports.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// `ldapi://` URL of a socket path (every byte but unreserved ones percent-encoded).
fn ldapi_url(socket: &Path) -> String {
    let mut url = String::from("ldapi://");
    for &b in socket.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            url.push(char::from(b));
        } else {
            let _ = write!(url, "%{b:02X}");
        }
    }
    url
}

/// Writes `text` to `path` with `mode`.
fn write_file(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// A throwaway test CA and a server certificate it signed (SAN IP:127.0.0.1, DNS:localhost),
/// plus a second CA that signed nothing here (for "wrong CA" tests). Made with the `openssl`
/// CLI, P-256 keys (quick to generate).
fn make_tls(dir: &Path) {
    let ca_ext = [
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    openssl_cert(dir, "ca", "/CN=pam-totp test CA", None, &ca_ext);
    openssl_cert(
        dir,
        "server",
        "/CN=localhost",
        Some("ca"),
        &[
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "basicConstraints=critical,CA:FALSE",
            "extendedKeyUsage=serverAuth",
        ],
    );
    openssl_cert(dir, "wrong-ca", "/CN=pam-totp unrelated CA", None, &ca_ext);
    // The CA keys are not needed any more; the server's key is read by slapd (same user).
    let _ = fs::remove_file(dir.join("ca.key"));
    let _ = fs::remove_file(dir.join("wrong-ca.key"));
}

/// `openssl req -x509`: a new P-256 key `<name>.key` (0600) and a 2-day certificate
/// `<name>.pem` for `subject` with the `extensions`, self-signed or signed by the `signer`'s
/// `<signer>.pem`/`<signer>.key`.
fn openssl_cert(dir: &Path, name: &str, subject: &str, signer: Option<&str>, extensions: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-subj", subject, "-days", "2", "-nodes"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.pem")));
    if let Some(signer) = signer {
        cmd.arg("-CA")
            .arg(dir.join(format!("{signer}.pem")))
            .arg("-CAkey")
            .arg(dir.join(format!("{signer}.key")));
    }
    for ext in extensions {
        cmd.args(["-addext", ext]);
    }
    run_setup(&mut cmd, &format!("certificate {name}.pem"));
}

/// The passwords of the rootDN, the service account and the admin account.
struct Credentials {
    root: String,
    service: String,
    admin: String,
}

impl Credentials {
    fn random() -> Credentials {
        Credentials {
            root: random_hex(12),
            service: random_hex(12),
            admin: random_hex(12),
        }
    }
}

/// Replication settings of one member of a [`MirrorPair`].
#[derive(Debug, Clone)]
struct Replication {
    /// olcServerID (1 or 2).
    server_id: u32,
    /// The other provider's `ldap://` URI.
    peer_uri: String,
    /// Leave the consumer out of the initial config (added by ldapmodify once the peer runs).
    deferred: bool,
}

/// A running (or stopped, or paused) test slapd and its directory. Dropping it stops slapd
/// (SIGCONT first if paused) and removes the directory.
pub struct Slapd {
    child: Option<Child>,
    paused: bool,
    ldap_port: u16,
    ldaps_port: u16,
    socket: PathBuf,
    root_password: String,
    service_password: String,
    admin_password: String,
    options: SlapdOptions,
    started_in: Duration,
    /// Holds config, database, certificates, logs, the socket; removed on drop (after slapd
    /// has been stopped by `Drop for Slapd`).
    dir: TempDir,
}

impl std::fmt::Debug for Slapd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slapd")
            .field("pid", &self.pid())
            .field("paused", &self.paused)
            .field("ldap", &self.ldap_uri())
            .field("ldaps", &self.ldaps_uri())
            .field("ldapi", &self.ldapi_uri())
            .field("dir", &self.dir.path())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Numbers for posixAccount entries of users that have no local account.
static NEXT_UID: AtomicU32 = AtomicU32::new(0);

impl Slapd {
    /// Starts a server with the shipped schema and ACL ([`SlapdOptions::default`]).
    ///
    /// # Panics
    /// A tool is missing or fails, or slapd does not answer within 5 s (the message has its log).
    pub fn start_default() -> Slapd {
        Slapd::start(SlapdOptions::default())
    }

    /// Builds the directory and starts slapd; returns once it answers an LDAP bind.
    ///
    /// # Panics
    /// A tool is missing or fails, or slapd does not answer within 5 s (the message has its log).
    pub fn start(options: SlapdOptions) -> Slapd {
        let began = Instant::now();
        let mut slapd = Slapd::prepare(
            options,
            None,
            (free_port(), free_port()),
            &Credentials::random(),
        );
        slapd.load_base_data(None);
        // A port taken between free_port() and slapd's bind: try again with fresh ones.
        for attempt in 0.. {
            match slapd.spawn_and_wait() {
                Ok(()) => break,
                Err(log) if attempt < 3 && log.contains("Address already in use") => {
                    slapd.ldap_port = free_port();
                    slapd.ldaps_port = free_port();
                }
                Err(log) => panic!("slapd did not start:\n{log}"),
            }
        }
        if slapd.options.acl && slapd.options.schema {
            slapd.apply_shipped_acl();
        }
        slapd.started_in = began.elapsed();
        slapd
    }

    /// Writes config (cn=config via `slapadd -n0`), TLS files and password files. Starts nothing.
    fn prepare(
        options: SlapdOptions,
        replication: Option<&Replication>,
        (ldap_port, ldaps_port): (u16, u16),
        credentials: &Credentials,
    ) -> Slapd {
        // Mode 0755 (TempDir): a test user running the CLI needs ca.pem and the ldapi socket.
        // What is secret in it is 0600: the server key (openssl writes it so), the password
        // file, and the config and data LDIF with the passwords (write_file); slapd keeps its
        // database and config files 0600.
        let dir = TempDir::new("slapd");
        for sub in ["slapd.d", "db"] {
            fs::create_dir(dir.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.join(sub).display()));
        }
        make_tls(dir.path());
        let slapd = Slapd {
            child: None,
            paused: false,
            ldap_port,
            ldaps_port,
            socket: dir.join("ldapi"),
            root_password: credentials.root.clone(),
            service_password: credentials.service.clone(),
            admin_password: credentials.admin.clone(),
            options,
            started_in: Duration::ZERO,
            dir,
        };
        write_file(
            &slapd.service_password_file(),
            &slapd.service_password,
            0o600,
        );
        // ldap-utils read /etc/ldap/ldap.conf and ~/.ldaprc unless told otherwise: an empty file
        // keeps the host's settings (a TLS_CACERT, a BASE) out of the tests.
        write_file(&slapd.dir.join("ldap.conf"), "", 0o644);
        let config = slapd.config_ldif(replication);
        write_file(&slapd.dir.join("config.ldif"), &config, 0o600);
        run_setup(
            Command::new("slapadd")
                .args(["-n0", "-F"])
                .arg(slapd.dir.join("slapd.d"))
                .arg("-l")
                .arg(slapd.dir.join("config.ldif")),
            "slapadd -n0 (cn=config)",
        );
        slapd
    }

    /// The cn=config LDIF of this server.
    fn config_ldif(&self, replication: Option<&Replication>) -> String {
        let dir = self.dir.path().display();
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        let mut c = String::new();
        let _ = write!(
            c,
            "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n\
             olcTLSCACertificateFile: {dir}/ca.pem\n\
             olcTLSCertificateFile: {dir}/server.pem\n\
             olcTLSCertificateKeyFile: {dir}/server.key\n\
             olcAuthzRegexp: {{0}}\"gidNumber={gid}\\+uidNumber={uid},cn=peercred,cn=external,cn=auth\" \"{ROOT_DN}\"\n"
        );
        if let Some(r) = replication {
            let _ = writeln!(c, "olcServerID: {}", r.server_id);
        }
        c.push_str(
            "\ndn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n\
             olcModulePath: /usr/lib/ldap\nolcModuleLoad: {0}back_mdb\nolcModuleLoad: {1}otp\n",
        );
        if replication.is_some() {
            c.push_str("olcModuleLoad: {2}syncprov\n");
        }
        c.push_str("\ndn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n");
        for schema in ["core", "cosine", "inetorgperson", "nis"] {
            let _ = write!(c, "\ninclude: file:///etc/ldap/schema/{schema}.ldif\n");
        }
        if self.options.schema {
            let _ = write!(
                c,
                "\ninclude: file://{}\n",
                shipped_file("pam-totp.ldif").display()
            );
        }
        // cn=config itself: manage access for this process's ldapi identity (mapped to the
        // rootDN above), so the shipped ACL can be applied the way an administrator does.
        let _ = write!(
            c,
            "\ndn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\n\
             objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\n\
             \ndn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\n\
             olcDatabase: {{0}}config\n\
             olcAccess: {{0}}to * by dn.exact=\"{ROOT_DN}\" manage by * none\n\
             \ndn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
             objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcDbDirectory: {dir}/db\n\
             olcDbMaxSize: 67108864\nolcSuffix: {SUFFIX}\nolcRootDN: {ROOT_DN}\n\
             olcRootPW: {}\nolcDbIndex: objectClass eq\nolcDbIndex: uid eq\n\
             olcDbIndex: entryCSN,entryUUID eq\n",
            self.root_password
        );
        // Debian's default rules for a new database; the shipped ACL goes in front of them. A
        // single server gets it with ldapmodify once running (as an administrator would); a
        // mirror provider has it from the start, because a cn=config change waits for the
        // running replication to pause (up to its time-out, 2 s).
        let mut rules = Vec::new();
        if replication.is_some() && self.options.acl && self.options.schema {
            c.push_str("olcAddContentAcl: TRUE\n");
            rules = shipped_acl_rules();
        }
        rules.extend(
            [
                "to attrs=userPassword by self write by anonymous auth by * none",
                "to attrs=shadowLastChange by self write by * read",
                "to * by * read",
            ]
            .map(String::from),
        );
        for (i, rule) in rules.iter().enumerate() {
            let _ = writeln!(c, "olcAccess: {{{i}}}{rule}");
        }
        if let Some(r) = replication.filter(|r| !r.deferred) {
            c.push_str(&self.syncrepl_attributes(r));
        }
        // Overlays in order: syncprov first (index 0) so it sees what otp changes.
        let mut overlay = 0;
        if replication.is_some() {
            let _ = write!(
                c,
                "\ndn: olcOverlay={{{overlay}}}syncprov,olcDatabase={{1}}mdb,cn=config\n\
                 objectClass: olcOverlayConfig\nobjectClass: olcSyncProvConfig\n\
                 olcOverlay: {{{overlay}}}syncprov\n"
            );
            overlay += 1;
        }
        let _ = write!(
            c,
            "\ndn: olcOverlay={{{overlay}}}otp,olcDatabase={{1}}mdb,cn=config\n\
             objectClass: olcOverlayConfig\nolcOverlay: {{{overlay}}}otp\n"
        );
        c
    }

    /// The consumer side of mirror mode: `olcSyncrepl` (refreshAndPersist from the peer, bound as
    /// its rootDN, retried every second) and `olcMultiProvider`, as LDIF attribute lines.
    fn syncrepl_attributes(&self, r: &Replication) -> String {
        format!(
            "olcSyncrepl: {{0}}rid=00{} provider={} bindmethod=simple binddn=\"{ROOT_DN}\" \
             credentials={} searchbase=\"{SUFFIX}\" type=refreshAndPersist retry=\"1 +\" \
             timeout=2 network-timeout=1\nolcMultiProvider: TRUE\n",
            r.server_id, r.peer_uri, self.root_password
        )
    }

    /// The suffix, containers, accounts and groups, loaded offline with `slapadd -n1`.
    /// `server_id`: for a replicating provider, the id its entryCSNs carry.
    fn load_base_data(&self, server_id: Option<u32>) {
        let ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: example\n\
             dc: example\n\n\
             dn: {PEOPLE_BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: {GROUPS_BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: {SERVICES_BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
             dn: {SERVICE_DN}\nobjectClass: applicationProcess\n\
             objectClass: simpleSecurityObject\ncn: pam-totp-validator\nuserPassword: {}\n\n\
             dn: {ADMIN_DN}\nobjectClass: applicationProcess\n\
             objectClass: simpleSecurityObject\ncn: pam-totp-admin\nuserPassword: {}\n\n\
             dn: {VALIDATORS_GROUP}\nobjectClass: groupOfNames\ncn: pam-totp-validators\n\
             member: {SERVICE_DN}\n\n\
             dn: {ADMINS_GROUP}\nobjectClass: groupOfNames\ncn: pam-totp-admins\n\
             member: {ADMIN_DN}\n",
            self.service_password, self.admin_password
        );
        let path = self.dir.join("base.ldif");
        write_file(&path, &ldif, 0o600);
        let mut cmd = Command::new("slapadd");
        cmd.args(["-n1", "-q", "-F"])
            .arg(self.dir.join("slapd.d"))
            .arg("-l")
            .arg(&path);
        if let Some(id) = server_id {
            // entryCSNs with this server id, and a contextCSN for syncrepl to start from.
            cmd.args(["-w", "-S", &id.to_string()]);
        }
        run_setup(&mut cmd, "slapadd -n1 (base entries)");
    }

    /// Fills in the placeholders of the shipped ACL and applies it with ldapmodify over ldapi.
    fn apply_shipped_acl(&self) {
        let path = self.dir.join("pam-totp-acl.ldif");
        write_file(&path, &shipped_acl("{1}mdb"), 0o600);
        self.tool(
            "ldapmodify",
            Bind::Root,
            None,
            &["-f", &path.to_string_lossy()],
            None,
        )
        .assert_ok("applying packaging/ldap/pam-totp-acl.ldif");
    }

    /// Starts the slapd process and waits until it answers; on failure returns its log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let _ = fs::remove_file(&self.socket);
        let log_path = self.dir.join("slapd.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", log_path.display()));
        let urls = format!(
            "{} {} {}",
            self.ldap_uri(),
            self.ldaps_uri(),
            ldapi_url(&self.socket)
        );
        // PAM_TOTP_SLAPD_DEBUG: a slapd debug level (e.g. `sync`, `acl`, `stats`) for slapd.log.
        let debug = std::env::var("PAM_TOTP_SLAPD_DEBUG").unwrap_or_else(|_| "0".into());
        let child = Command::new("slapd")
            .args(["-d", &debug, "-F"])
            .arg(self.dir.join("slapd.d"))
            .args(["-h", &urls])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run slapd: {e} (tests/install-deps.sh)"))?;
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "slapd exited ({status}) before answering:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            if answers_bind(self.ldap_port) && self.socket.exists() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill_child();
                return Err(format!(
                    "slapd did not answer within {READY_TIMEOUT:?}:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    }

    /// How long [`Slapd::start`] took, from nothing to answering with the ACL applied.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The slapd process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `ldap://127.0.0.1:<port>` (plain; StartTLS available).
    pub fn ldap_uri(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:<port>`.
    pub fn ldaps_uri(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// `ldapi://<percent-encoded socket path>`.
    pub fn ldapi_uri(&self) -> String {
        ldapi_url(&self.socket)
    }

    /// The ldapi socket's path.
    pub fn ldapi_socket(&self) -> &Path {
        &self.socket
    }

    /// The plain LDAP port.
    pub fn ldap_port(&self) -> u16 {
        self.ldap_port
    }

    /// The ldaps port.
    pub fn ldaps_port(&self) -> u16 {
        self.ldaps_port
    }

    /// The test CA that signed the server certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA certificate that signed nothing here (PEM): TLS with it as the only root must fail.
    pub fn wrong_ca_file(&self) -> PathBuf {
        self.dir.join("wrong-ca.pem")
    }

    /// The test directory (config, database, certificates, `slapd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The rootDN's password.
    pub fn root_password(&self) -> &str {
        &self.root_password
    }

    /// The module's service account ([`SERVICE_DN`]).
    pub fn service_dn(&self) -> &'static str {
        SERVICE_DN
    }

    /// Its password.
    pub fn service_password(&self) -> &str {
        &self.service_password
    }

    /// A file holding the service account's password (no newline), mode 0600, owned by the
    /// test's user: what `bind_password_file` names.
    pub fn service_password_file(&self) -> PathBuf {
        self.dir.join("service-password")
    }

    /// The enrollment administrator ([`ADMIN_DN`]).
    pub fn admin_dn(&self) -> &'static str {
        ADMIN_DN
    }

    /// Its password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// [`Bind::Simple`] as the service account.
    pub fn service_bind(&self) -> Bind<'_> {
        Bind::Simple {
            dn: SERVICE_DN,
            password: &self.service_password,
        }
    }

    /// [`Bind::Simple`] as the enrollment administrator.
    pub fn admin_bind(&self) -> Bind<'_> {
        Bind::Simple {
            dn: ADMIN_DN,
            password: &self.admin_password,
        }
    }

    /// Adds `uid=<name>,ou=people,...` (inetOrgPerson + posixAccount) with `password`, as the
    /// rootDN, and returns its DN. uidNumber, gidNumber and home come from the local account of
    /// that name if there is one (tests create it with [`crate::harness::TestUser`]), else from
    /// a counter starting at 30000.
    ///
    /// # Panics
    /// The add fails.
    pub fn add_user(&self, name: &str, password: &str) -> String {
        let dn = format!("uid={name},{PEOPLE_BASE}");
        let (uid, gid, home) = match nix::unistd::User::from_name(name).ok().flatten() {
            Some(u) => (u.uid.as_raw(), u.gid.as_raw(), u.dir.display().to_string()),
            None => {
                let n = 30000 + NEXT_UID.fetch_add(1, Ordering::Relaxed);
                (n, n, format!("/home/{name}"))
            }
        };
        let ldif = format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: {name}\n\
             cn: {name}\nsn: {name}\nuidNumber: {uid}\ngidNumber: {gid}\n\
             homeDirectory: {home}\nloginShell: /bin/sh\nuserPassword:: {}\n",
            base64_encode(password.as_bytes())
        );
        self.ldapadd(Bind::Root, &ldif)
            .assert_ok(&format!("adding user {dn}"));
        dn
    }

    /// Runs an ldap-utils `program` against this server: as [`Bind::Root`] over ldapi, else over
    /// `uri` (default [`Slapd::ldap_uri`]); `args` follow the bind options; `stdin` is fed to
    /// the tool (LDIF for ldapmodify). The host's ldap.conf and ~/.ldaprc are not read; TLS
    /// settings come from `env` (e.g. `LDAPTLS_CACERT`).
    pub fn tool_env(
        &self,
        program: &str,
        bind: Bind<'_>,
        uri: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> LdapOutput {
        let mut cmd = Command::new(program);
        cmd.env("LDAPCONF", self.dir.join("ldap.conf"))
            .env("LDAPRC", "pam-totp-e2e-no-ldaprc")
            .envs(env.iter().copied());
        let mut shown = vec![program.to_string()];
        let mut arg = |cmd: &mut Command, a: &str, show: &str| {
            cmd.arg(a);
            shown.push(show.to_string());
        };
        match bind {
            Bind::Root => {
                for a in ["-Q", "-Y", "EXTERNAL", "-H"] {
                    arg(&mut cmd, a, a);
                }
                let u = uri.map_or_else(|| self.ldapi_uri(), str::to_string);
                arg(&mut cmd, &u, &u);
            }
            Bind::Anonymous => {
                let u = uri.map_or_else(|| self.ldap_uri(), str::to_string);
                for a in ["-x", "-H", &u] {
                    arg(&mut cmd, a, a);
                }
            }
            Bind::Simple { dn, password } => {
                let u = uri.map_or_else(|| self.ldap_uri(), str::to_string);
                for a in ["-x", "-H", &u, "-D", dn] {
                    arg(&mut cmd, a, a);
                }
                arg(&mut cmd, "-w", "-w");
                arg(&mut cmd, password, "<password>");
            }
        }
        for a in args {
            arg(&mut cmd, a, a);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e} (tests/install-deps.sh)"));
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A tool that fails early closes its stdin; its exit code says why.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("cannot wait for {program}: {e}"));
        LdapOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            command: shown.join(" "),
        }
    }

    /// [`Slapd::tool_env`] without extra environment.
    pub fn tool(
        &self,
        program: &str,
        bind: Bind<'_>,
        uri: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> LdapOutput {
        self.tool_env(program, bind, uri, args, stdin, &[])
    }

    /// `ldapsearch -LLL -o ldif-wrap=no -b <base> <args...>` (filter and attributes in `args`).
    pub fn ldapsearch(&self, bind: Bind<'_>, base: &str, args: &[&str]) -> LdapOutput {
        let mut all = vec!["-LLL", "-o", "ldif-wrap=no", "-b", base];
        all.extend_from_slice(args);
        self.tool("ldapsearch", bind, None, &all, None)
    }

    /// `ldapmodify` with `ldif` (changetype records) on stdin and extra `args` (e.g.
    /// `-e assert=<filter>` for the Assertion control).
    pub fn ldapmodify(&self, bind: Bind<'_>, ldif: &str, args: &[&str]) -> LdapOutput {
        self.tool("ldapmodify", bind, None, args, Some(ldif))
    }

    /// `ldapadd` (ldapmodify -a) with `ldif` (entries) on stdin.
    pub fn ldapadd(&self, bind: Bind<'_>, ldif: &str) -> LdapOutput {
        self.tool("ldapmodify", bind, None, &["-a"], Some(ldif))
    }

    /// `ldapdelete <dn>` (with `-r`: the subtree).
    pub fn ldapdelete(&self, bind: Bind<'_>, dn: &str, recursive: bool) -> LdapOutput {
        let args: &[&str] = if recursive { &["-r", dn] } else { &[dn] };
        self.tool("ldapdelete", bind, None, args, None)
    }

    /// Whether slapd answers an anonymous LDAP bind on its plain port now.
    pub fn answers(&self) -> bool {
        answers_bind(self.ldap_port)
    }

    /// Stops slapd (SIGTERM, SIGKILL after 3 s); the data stays for [`Slapd::restart`]. A
    /// mirror provider whose peer runs takes up to 2 s (its consumer's time-out).
    pub fn stop(&mut self) {
        self.kill_child();
    }

    /// Kills slapd with SIGKILL (a crash: no clean shutdown); the data stays for
    /// [`Slapd::restart`].
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.reap();
    }

    /// Starts slapd again on the same data, ports and socket (stops it first if it runs);
    /// returns once it answers.
    ///
    /// # Panics
    /// It does not answer within 5 s.
    pub fn restart(&mut self) {
        self.kill_child();
        if let Err(log) = self.spawn_and_wait() {
            panic!("slapd did not restart:\n{log}");
        }
    }

    /// SIGSTOP: slapd keeps its sockets open and answers nothing (a hung server).
    ///
    /// # Panics
    /// slapd is not running.
    pub fn pause(&mut self) {
        let pid = self.running_pid("pause");
        kill(pid, Signal::SIGSTOP).unwrap_or_else(|e| panic!("SIGSTOP slapd: {e}"));
        self.paused = true;
        // kill() returns before every thread has stopped: a thread already running may still
        // answer a request. Wait until /proc shows all of them stopped.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "slapd {pid} did not stop within 2 s of SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGCONT after [`Slapd::pause`].
    ///
    /// # Panics
    /// slapd is not running.
    pub fn resume(&mut self) {
        let pid = self.running_pid("resume");
        kill(pid, Signal::SIGCONT).unwrap_or_else(|e| panic!("SIGCONT slapd: {e}"));
        self.paused = false;
    }

    fn running_pid(&self, what: &str) -> Pid {
        let child = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("cannot {what} slapd: it is not running"));
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"))
    }

    /// Stops the child (SIGCONT if paused, SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and reaps it.
    fn kill_child(&mut self) {
        self.signal(Signal::SIGTERM);
        self.reap();
    }

    /// Sends `signal` to a running child (SIGCONT first if it is paused).
    fn signal(&mut self, signal: Signal) {
        let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) else {
            return;
        };
        let pid = Pid::from_raw(pid);
        if self.paused {
            let _ = kill(pid, Signal::SIGCONT);
            self.paused = false;
        }
        let _ = kill(pid, signal);
    }

    /// Waits for a signalled child to exit (SIGKILL after [`STOP_TIMEOUT`]).
    fn reap(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill_child();
    }
}

/// Whether every thread of `pid` is in state T (stopped), from /proc/<pid>/task/*/stat.
fn all_threads_stopped(pid: Pid) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // "<tid> (<comm>) <state> ...": the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if !matches!(state, Some('T' | 't')) {
            return false;
        }
        any = true;
    }
    any
}

/// Sends an anonymous LDAPv3 simple bind (message id 1) to 127.0.0.1:`port` and checks for a
/// successful BindResponse: the server is up and serving, not only listening.
fn answers_bind(port: u16) -> bool {
    // SEQUENCE { INTEGER 1, [APPLICATION 0] { INTEGER 3, OCTET STRING "", [0] "" } }
    const BIND: [u8; 14] = [
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
    ];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream.write_all(&BIND).is_err() {
        return false;
    }
    // SEQUENCE { INTEGER 1, [APPLICATION 1] { ENUMERATED 0, "", "" } } = 14 bytes.
    let mut reply = [0u8; 14];
    if stream.read_exact(&mut reply).is_err() {
        return false;
    }
    reply[0] == 0x30 && reply[5] == 0x61 && reply[7..10] == [0x0a, 0x01, 0x00]
}

/// A file of `packaging/ldap/`.
pub fn shipped_file(name: &str) -> PathBuf {
    workspace_dir().join("packaging/ldap").join(name)
}

/// The shipped ACL (`packaging/ldap/pam-totp-acl.ldif`) with its placeholders filled in for the
/// test directory and the database `database` (e.g. `{1}mdb`).
///
/// # Panics
/// The file cannot be read, or a placeholder is left over.
pub fn shipped_acl(database: &str) -> String {
    let path = shipped_file("pam-totp-acl.ldif");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let filled = text
        .replace("@DATABASE@", database)
        .replace("@PEOPLE_BASE@", PEOPLE_BASE)
        .replace("@VALIDATORS_GROUP@", VALIDATORS_GROUP)
        .replace("@ADMINS_GROUP@", ADMINS_GROUP);
    let left: Vec<&str> = filled
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('@'))
        .collect();
    assert!(left.is_empty(), "placeholders left in the ACL: {left:?}");
    filled
}

/// The `olcAccess` rules of the shipped ACL (placeholders filled in), without their `{n}`.
///
/// # Panics
/// The file cannot be read or holds no rule.
pub fn shipped_acl_rules() -> Vec<String> {
    // Unfold LDIF continuation lines (a leading space continues the previous line), comments out.
    let mut lines: Vec<String> = Vec::new();
    for line in shipped_acl("{1}mdb").lines() {
        if line.starts_with('#') {
            continue;
        }
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(line.to_string()),
        }
    }
    let rules: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("olcAccess:"))
        .map(|v| {
            let v = v.trim_start();
            match v.strip_prefix('{').and_then(|r| r.split_once('}')) {
                Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => rest.to_string(),
                _ => v.to_string(),
            }
        })
        .collect();
    assert!(!rules.is_empty(), "no olcAccess rule in the shipped ACL");
    rules
}

/// Two providers replicating each other (syncprov + syncrepl in mirror mode, olcServerID 1 and
/// 2), both with the shipped schema and ACL (in their initial cn=config: see
/// [`shipped_acl_rules`]), the same passwords, and each other as peer. The first was loaded with
/// the base entries; the second got them by replication, and a probe change (`description` of
/// the suffix entry) crossed from the second to the first, before [`MirrorPair::start`] returned.
/// Send writes to one at a time (the OpenLDAP advice for mirror mode). A cn=config change while
/// replication runs may take up to 2 s (slapd pauses for it).
#[derive(Debug)]
pub struct MirrorPair {
    /// Provider 1 (olcServerID 1).
    pub first: Slapd,
    /// Provider 2 (olcServerID 2).
    pub second: Slapd,
    started_in: Duration,
}

impl MirrorPair {
    /// Starts both providers and waits until the base entries reached the second.
    ///
    /// # Panics
    /// A server does not start, or the initial replication takes longer than 5 s.
    pub fn start() -> MirrorPair {
        let began = Instant::now();
        let (ports1, ports2) = ((free_port(), free_port()), (free_port(), free_port()));
        let uri = |p: u16| format!("ldap://127.0.0.1:{p}");
        // One set of credentials: each provider binds to the other as the rootDN, and tests use
        // the same passwords on both.
        let credentials = Credentials::random();
        // The first starts without its consumer: a consumer whose peer is not up yet retries
        // only a second later. The second pulls the base entries from the first as it starts;
        // then the first gets its consumer through cn=config (nothing replicates into the
        // first yet, so slapd has nothing to pause for).
        let first_replication = Replication {
            server_id: 1,
            peer_uri: uri(ports2.0),
            deferred: true,
        };
        let mut first = Slapd::prepare(
            SlapdOptions::default(),
            Some(&first_replication),
            ports1,
            &credentials,
        );
        let mut second = Slapd::prepare(
            SlapdOptions::default(),
            Some(&Replication {
                server_id: 2,
                peer_uri: uri(ports1.0),
                deferred: false,
            }),
            ports2,
            &credentials,
        );
        first.load_base_data(Some(1));
        for s in [&mut first, &mut second] {
            if let Err(log) = s.spawn_and_wait() {
                panic!("mirror provider did not start:\n{log}");
            }
        }
        let consumer = format!(
            "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nadd: olcSyncrepl\n{}",
            first.syncrepl_attributes(&first_replication).replace(
                "\nolcMultiProvider",
                "\n-\nreplace: olcMultiProvider\nolcMultiProvider"
            )
        );
        first
            .ldapmodify(Bind::Root, &consumer, &[])
            .assert_ok("adding the first provider's consumer");
        let mut pair = MirrorPair {
            first,
            second,
            started_in: Duration::ZERO,
        };
        assert!(
            pair.wait_visible(&pair.second, ADMINS_GROUP, "(member=*)", READY_TIMEOUT),
            "the base entries did not replicate to the second provider within {READY_TIMEOUT:?}"
        );
        // And the other way: a change on the second reaches the first.
        pair.second
            .ldapmodify(
                Bind::Root,
                &format!("dn: {SUFFIX}\nchangetype: modify\nreplace: description\ndescription: mirror ready\n"),
                &[],
            )
            .assert_ok("probe write on the second provider");
        assert!(
            pair.wait_visible(
                &pair.first,
                SUFFIX,
                "(description=mirror ready)",
                READY_TIMEOUT
            ),
            "a change on the second provider did not reach the first within {READY_TIMEOUT:?}"
        );
        pair.started_in = began.elapsed();
        pair
    }

    /// Stops both providers at once (each one's consumer then sees its peer go away, instead of
    /// waiting for its 2 s time-out).
    pub fn stop(&mut self) {
        self.first.signal(Signal::SIGTERM);
        self.second.signal(Signal::SIGTERM);
        self.first.reap();
        self.second.reap();
    }

    /// How long [`MirrorPair::start`] took, until replication worked both ways.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Polls (every 5 ms, as the rootDN over ldapi) until the entry `dn` on `on` matches
    /// `filter` (a base search), or `timeout` passes. Returns whether it became visible.
    pub fn wait_visible(&self, on: &Slapd, dn: &str, filter: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let out = on.ldapsearch(Bind::Root, dn, &["-s", "base", filter, "1.1"]);
            if out.code == 0 && !out.dns().is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for MirrorPair {
    fn drop(&mut self) {
        self.stop();
    }
}
