//! Guards for privileged end-to-end tests: each creates something real (a user, a PAM service
//! file, a directory) and removes it in `Drop`, so a failing or panicking test leaves nothing
//! behind. Also locates the build artifacts the tests exercise.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::harness_client::Client;

/// Whether the tests run as root (they need to create users and PAM services).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Whether the privileged tests may run (they create users, PAM services and daemons); says
/// which test is skipped and why when not.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("skipping {test}: the end-to-end tests must run as root");
    false
}

/// Returns from the calling test with `skipped: needs root` unless it runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::harness::is_root() {
            println!("skipped: needs root");
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// The workspace root (the parent of this package).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The build profile whose artifacts are tested: `PAM_TOTP_PROFILE`, default `debug`.
pub fn profile() -> String {
    std::env::var("PAM_TOTP_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "debug".into())
}

/// `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_dir().join(dir),
        None => workspace_dir().join("target"),
    }
}

/// `<target>/<profile>/<name>`, which must exist.
///
/// # Panics
/// The artifact is missing: the message says how to build it.
pub fn artifact(name: &str) -> PathBuf {
    let path = artifact_path(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first{} (profile from PAM_TOTP_PROFILE, \
         default debug)",
        path.display(),
        if profile() == "release" {
            " with --release"
        } else {
            ""
        }
    );
    path
}

/// `<target>/<profile>/<name>`, built or not.
pub fn artifact_path(name: &str) -> PathBuf {
    target_dir().join(profile()).join(name)
}

/// The built module, `<target>/<profile>/libpam_totp.so`.
pub fn module_path() -> PathBuf {
    artifact("libpam_totp.so")
}

/// The built CLI, `<target>/<profile>/pam-totp`.
pub fn cli_path() -> PathBuf {
    artifact("pam-totp")
}

/// The `pam-client` binary cargo built for these tests (beside the test executable's `deps/`).
pub fn pam_client_path() -> PathBuf {
    let beside_tests = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("pam-client")));
    match beside_tests {
        Some(path) if path.exists() => path,
        _ => artifact("pam-client"),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A lower-case name unique across test processes: `<prefix><pid><kind><n>` (the kind letter
/// separates pid and counter, so two processes never produce the same name).
pub fn unique_name(prefix: &str, kind: char) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{kind}{n}", std::process::id())
}

/// useradd/userdel take a lock on /etc/passwd and fail rather than wait: run them one at a time
/// here and retry when another process holds the lock.
static ACCOUNTS: Mutex<()> = Mutex::new(());

fn run_account_tool(program: &str, args: &[&str]) -> Result<(), String> {
    let _serial = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        last = format!(
            "{program} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        if !(stderr.contains("lock") || stderr.contains("try again")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

/// A throwaway local user (`useradd -m`), removed with its home (`userdel -r`) on drop.
#[derive(Debug)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (created).
    pub home: PathBuf,
}

impl TestUser {
    /// Creates a user named `ptt<pid>u<n>` with a home directory.
    ///
    /// # Panics
    /// useradd fails.
    pub fn create() -> TestUser {
        let name = unique_name("ptt", 'u');
        if let Err(e) = run_account_tool("useradd", &["-m", "-s", "/bin/sh", &name]) {
            panic!("cannot create test user {name}: {e}");
        }
        // From here on the guard exists, so a failed lookup still removes the user.
        let mut user = TestUser {
            name,
            uid: u32::MAX,
            gid: u32::MAX,
            home: PathBuf::new(),
        };
        let entry = nix::unistd::User::from_name(&user.name)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("user {} was created but cannot be looked up", user.name));
        user.uid = entry.uid.as_raw();
        user.gid = entry.gid.as_raw();
        user.home = entry.dir;
        user
    }

    /// The default place of the user's secret file.
    pub fn secret_path(&self) -> PathBuf {
        self.home.join(".config/pam-totp/secret.toml")
    }

    /// Gives everything under the home directory to the user (after root wrote into it).
    ///
    /// # Panics
    /// A file cannot be chowned.
    pub fn chown_home(&self) {
        fn walk(path: &Path, uid: u32, gid: u32) {
            set_owner(path, uid, gid);
            if path.is_dir() && !path.is_symlink() {
                let entries = fs::read_dir(path)
                    .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()));
                for entry in entries.flatten() {
                    walk(&entry.path(), uid, gid);
                }
            }
        }
        walk(&self.home, self.uid, self.gid);
    }
}

/// A throwaway local group (`groupadd`), removed on drop.
#[derive(Debug)]
pub struct TestGroup {
    /// Group name.
    pub name: String,
}

impl TestGroup {
    /// Creates a group named `ptt<pid>g<n>`.
    ///
    /// # Panics
    /// groupadd fails.
    pub fn new() -> TestGroup {
        let name = unique_name("ptt", 'g');
        if let Err(e) = run_account_tool("groupadd", &[&name]) {
            panic!("cannot create test group {name}: {e}");
        }
        TestGroup { name }
    }

    /// Makes `user` a supplementary member.
    ///
    /// # Panics
    /// usermod fails.
    pub fn add(&self, user: &str) {
        if let Err(e) = run_account_tool("usermod", &["-a", "-G", &self.name, user]) {
            panic!("usermod -a -G {} {user}: {e}", self.name);
        }
    }
}

impl Default for TestGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = run_account_tool("groupdel", &[&self.name]);
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // --force: also while a process of the user still runs (a login or CLI session that a
        // failing test left behind), which plain userdel refuses, leaving the account.
        let removed = run_account_tool("userdel", &["--force", "--remove", &self.name]);
        let still_there = nix::unistd::User::from_name(&self.name)
            .ok()
            .flatten()
            .is_some();
        if still_there {
            let why = removed.err().unwrap_or_default();
            eprintln!("warning: cannot remove test user {}: {why}", self.name);
        }
        // userdel leaves the home of an account it found no spool or home for in its records.
        let _ = fs::remove_dir_all(&self.home);
    }
}

/// A directory under /tmp (mode 0755, owned by the caller), removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `/tmp/pam-totp-e2e-<pid>d<n>-<tag>`.
    ///
    /// # Panics
    /// The directory cannot be created.
    pub fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("pam-totp-e2e-{}-{tag}", unique_name("", 'd')));
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        // The umask may have removed bits; the module and CLI need to traverse it.
        set_mode(&path, 0o755);
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `pam_totp.conf` here (mode 0644) with the state directory inside this directory
    /// and the `extra` lines, and returns its path.
    pub fn config(&self, extra: &str) -> PathBuf {
        let path = self.join("pam_totp.conf");
        let text = format!("state_dir = \"{}/state\"\n{extra}", self.path.display());
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        set_mode(&path, 0o644);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("warning: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// `chmod`, panicking with the path on failure.
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// `chown` (without following a final symlink), panicking with the path on failure.
pub fn set_owner(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
}

/// Runs a setup tool (standard input empty) for `what`, and returns its output.
///
/// # Panics
/// The tool cannot be started or fails: the message has `what`, the command and its output.
pub fn run_setup(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e} (tests/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes `text` to a new file `path` (replacing one that is there) with exactly `mode`.
///
/// # Panics
/// The file cannot be written.
pub fn write_file(path: &Path, text: &str, mode: u32) {
    use std::io::Write;
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    // The umask may have removed bits.
    set_mode(path, mode);
}

/// A per-test configuration: a temp dir holding `pam_totp.conf` (root-owned, 0644) and a
/// `state/` directory (root-owned, 0700) that the configuration names as `state_dir`.
#[derive(Debug)]
pub struct TestConfig {
    /// The configuration file (pass it as `config=` / `--config`).
    pub path: PathBuf,
    /// The state directory it names.
    pub state_dir: PathBuf,
    /// Holds both; removed on drop.
    pub dir: TempDir,
}

impl TestConfig {
    /// Writes `state_dir = "<dir>/state"` followed by `extra` (TOML lines).
    pub fn new(extra: &str) -> TestConfig {
        let dir = TempDir::new("cfg");
        let state_dir = dir.join("state");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&state_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", state_dir.display()));
        let path = dir.join("pam_totp.conf");
        let text = format!(
            "# pam-totp end-to-end test configuration\nstate_dir = {}\n{extra}\n",
            toml_string(&state_dir.to_string_lossy())
        );
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        set_mode(&path, 0o644);
        TestConfig {
            path,
            state_dir,
            dir,
        }
    }

    /// The module argument naming this file: `config=<path>`.
    pub fn arg(&self) -> String {
        format!("config={}", self.path.display())
    }

    /// The current state record of `user`: the newest `<state_dir>/<user>/<generation>.state`,
    /// or a release-0.1 `<state_dir>/<user>.state` if there is none.
    pub fn state_file(&self, user: &str) -> PathBuf {
        let dir = self.state_dir.join(user);
        let newest = fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.strip_suffix(".state")?.parse::<u64>().ok()
                })
                .max()
        });
        match newest {
            Some(g) => dir.join(format!("{g}.state")),
            None => self.state_dir.join(format!("{user}.state")),
        }
    }

    /// Removes every state record of `user` (what a fresh install has).
    pub fn remove_state(&self, user: &str) {
        let dir = self.state_dir.join(user);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {}: {e}", dir.display()),
        }
    }
}

/// A TOML basic string holding `text`.
pub fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A service file `/etc/pam.d/<ptt<pid>s<n>>`, removed on drop.
#[derive(Debug)]
pub struct PamService {
    /// The service name to pass to pam_start (lower case: Linux-PAM lower-cases it).
    pub name: String,
    path: PathBuf,
}

impl PamService {
    /// Writes the given stack lines (e.g. `auth required /abs/libpam_totp.so ...`).
    ///
    /// # Panics
    /// The file cannot be written.
    pub fn new(lines: &[String]) -> PamService {
        let name = unique_name("ptt", 's');
        let path = Path::new("/etc/pam.d").join(&name);
        let mut text = String::from("# pam-totp end-to-end test service (removed by the test)\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        PamService { name, path }
    }

    /// A one-line stack: `auth required <module> config=<config> <args>`.
    pub fn totp(config: &Path, args: &str) -> PamService {
        PamService::new(&[totp_line("required", config, args)])
    }

    /// The service file's text.
    pub fn text(&self) -> String {
        fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            eprintln!("warning: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// `auth <control> <abs module path> config=<config> <args>`.
pub fn totp_line(control: &str, config: &Path, args: &str) -> String {
    format!(
        "auth {control} {} config={} {args}",
        module_path().display(),
        config.display()
    )
    .trim_end()
    .to_string()
}

/// A user, a configuration and a PAM service using pam_totp with that configuration: the usual
/// setup of one test. Everything is removed on drop.
#[derive(Debug)]
pub struct Scenario {
    /// The test user.
    pub user: TestUser,
    /// Its configuration (`config=` of the service).
    pub config: TestConfig,
    /// The PAM service.
    pub service: PamService,
}

impl Scenario {
    /// `config_extra`: TOML lines after `state_dir`; `module_args`: appended to the module line.
    pub fn new(config_extra: &str, module_args: &str) -> Scenario {
        let user = TestUser::create();
        let config = TestConfig::new(config_extra);
        let service = PamService::totp(&config.path, module_args);
        Scenario {
            user,
            config,
            service,
        }
    }

    /// As [`Scenario::new`] with a stack of several lines; `{totp}` in a line is replaced by the
    /// module path followed by `config=<config>`.
    pub fn with_stack(config_extra: &str, lines: &[&str]) -> Scenario {
        let user = TestUser::create();
        let config = TestConfig::new(config_extra);
        let totp = format!(
            "{} config={}",
            module_path().display(),
            config.path.display()
        );
        let lines: Vec<String> = lines.iter().map(|l| l.replace("{totp}", &totp)).collect();
        let service = PamService::new(&lines);
        Scenario {
            user,
            config,
            service,
        }
    }

    /// A pam-client for this service and user.
    pub fn client(&self) -> Client {
        Client::new(&self.service.name, &self.user.name)
    }

    /// Enrolls the user with `pam-totp enroll --json` and the given extra options.
    pub fn enroll(&self, extra: &[&str]) -> crate::harness_totp::Enrollment {
        crate::harness_totp::enroll(&self.config.path, &self.user.name, extra)
    }

    /// The user's state file.
    pub fn state_file(&self) -> PathBuf {
        self.config.state_file(&self.user.name)
    }

    /// The user's state (the `[state]` table of the current record), parsed as TOML.
    ///
    /// # Panics
    /// It is missing or does not parse: the message shows its text.
    pub fn state_toml(&self) -> toml::Table {
        let path = self.state_file();
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read state file {}: {e}", path.display()));
        let mut record = text.parse::<toml::Table>().unwrap_or_else(|e| {
            panic!("state file {} does not parse: {e}\n{text}", path.display())
        });
        match record.remove("state") {
            Some(toml::Value::Table(state)) => state,
            _ => record,
        }
    }

    /// The user's state, parsed as the module parses it.
    pub fn state(&self) -> pam_totp_core::state::State {
        let table = self.state_toml();
        let text = toml::to_string(&table).expect("serialises");
        pam_totp_core::state::State::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("state does not parse: {e}\n{text}"))
    }

    /// Runs `pam-totp ARGS --config <this scenario's config>` and asserts it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(cli_path())
            .args(args)
            .arg("--config")
            .arg(&self.config.path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run pam-totp: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pam-totp {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// Sets the password of a local account (`chpasswd`), for stacks with pam_unix.
///
/// # Panics
/// chpasswd fails.
pub fn set_password(user: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("chpasswd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{user}:{password}\n").as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success(), "chpasswd failed");
}

/// A cheap pseudo-random sequence (no dependency; reproducible from the printed seed).
pub struct Lcg(pub u64);
impl Lcg {
    /// The next number (31 bits).
    pub fn draw(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}
