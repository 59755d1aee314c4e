//! A `/dev/log` of the test's own, without touching the host's.
//!
//! The module logs through `/dev/log`. On a normal host journald (or rsyslog) listens there, and a
//! test must neither stop it nor take the path over. So when anything is at `/dev/log`, the test's
//! datagram socket is bound in a temporary directory and the calling thread moves into a private
//! mount namespace in which that socket is bind-mounted over `/dev/log`. Every process the thread
//! starts afterwards (pam-client, pamtester, sshd, `pam-totp`) inherits the namespace and logs to
//! the test; the host, and other threads, still see the daemon. Only when nothing is at
//! `/dev/log` (a machine without a syslog daemon) is the socket bound there directly, as before.
//!
//! Captures are serialised across threads and processes with a lock file, which keeps the direct
//! case correct (one socket per path). Needs root (CAP_SYS_ADMIN) for the namespace.
//!
//! Shared by the e2e harness (`tests/src/harness_syslog.rs`) and the CLI tests
//! (`enroll-cli/tests/common/mod.rs`, through `#[path]`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::ThreadId;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// The socket syslog(3) and the `syslog` crate write to.
pub const DEV_LOG: &str = "/dev/log";
/// Held (flock) while a test owns its `/dev/log`.
pub const LOCK_FILE: &str = "/tmp/pam-totp-e2e-syslog.lock";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The calling thread in a mount namespace of its own (its mounts private), until
/// [`PrivateMounts::leave`] or drop on the same thread. Only this thread moves (unshare gives it
/// its own filesystem attributes too); threads and processes it starts afterwards are created
/// inside.
pub struct PrivateMounts {
    /// `/proc/thread-self/ns/mnt` of the namespace the thread was in.
    original: File,
    /// Entering a namespace moves the thread's root and working directory to the namespace's
    /// root, out of a chroot: both are put back.
    root: File,
    cwd: PathBuf,
    thread: ThreadId,
    left: bool,
}

impl PrivateMounts {
    /// Enters a new mount namespace and makes its mounts private.
    ///
    /// # Errors
    /// Not root (CAP_SYS_ADMIN), or the mounts cannot be made private (the thread then is back
    /// where it was).
    pub fn enter() -> io::Result<PrivateMounts> {
        let original = File::open("/proc/thread-self/ns/mnt")?;
        let root = File::open("/")?;
        let cwd = std::env::current_dir()?;
        nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
        let mounts = PrivateMounts {
            original,
            root,
            cwd,
            thread: std::thread::current().id(),
            left: false,
        };
        make_mounts_private()?;
        Ok(mounts)
    }

    /// Returns the thread to the namespace, root and working directory it came from.
    pub fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        if std::thread::current().id() != self.thread {
            eprintln!("warning: a private mount namespace left on another thread than entered");
            return;
        }
        // A thread started inside and still running shares the filesystem attributes: the
        // thread then stays inside.
        if let Err(e) = nix::sched::setns(&self.original, CloneFlags::CLONE_NEWNS) {
            eprintln!("warning: cannot return to the original mount namespace: {e}");
            return;
        }
        let restored = nix::unistd::fchdir(&self.root)
            .and_then(|()| nix::unistd::chroot("."))
            .map_err(io::Error::from)
            .and_then(|()| std::env::set_current_dir(&self.cwd));
        if let Err(e) = restored {
            // Carrying on outside a chroot would touch the host's files: stop here.
            panic!("cannot restore the root and working directory after a mount namespace: {e}");
        }
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The test's `/dev/log`, until dropped (or [`PrivateDevLog::close`]d) on the thread that bound it.
pub struct PrivateDevLog {
    socket: UnixDatagram,
    address: PathBuf,
    /// With a daemon on the host's `/dev/log`: the namespace, and the directory of the socket.
    namespace: Option<(PrivateMounts, PathBuf)>,
    closed: bool,
    _lock: nix::fcntl::Flock<File>,
}

impl std::fmt::Debug for PrivateDevLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateDevLog")
            .field("address", &self.address)
            .field("private_namespace", &self.namespace.is_some())
            .finish()
    }
}

impl PrivateDevLog {
    /// Waits for the capture lock, binds the socket and makes it `/dev/log` for this thread and
    /// the processes it starts.
    ///
    /// # Errors
    /// The lock file, the socket, the namespace or the bind mount could not be made (not root?).
    pub fn bind() -> io::Result<PrivateDevLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(LOCK_FILE)?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io::Error::from(e))?;
        // symlink_metadata: journald's /dev/log is a symbolic link, which counts as taken.
        if std::fs::symlink_metadata(DEV_LOG).is_err() {
            let socket = bind_socket(Path::new(DEV_LOG))?;
            return Ok(PrivateDevLog {
                socket,
                address: PathBuf::from(DEV_LOG),
                namespace: None,
                closed: false,
                _lock: lock,
            });
        }
        let dir = std::env::temp_dir().join(format!(
            "pam-totp-dev-log-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let address = dir.join("log");
        let socket = bind_socket(&address)?;
        let mounts = match PrivateMounts::enter() {
            Ok(mounts) => mounts,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let devlog = PrivateDevLog {
            socket,
            address,
            namespace: Some((mounts, dir)),
            closed: false,
            _lock: lock,
        };
        // On failure the drop returns to the original namespace.
        nix::mount::mount(
            Some(devlog.address.as_path()),
            DEV_LOG,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(devlog)
    }

    /// The socket that receives the lines.
    pub fn socket(&self) -> &UnixDatagram {
        &self.socket
    }

    /// Where the socket is bound: an address any thread can send to, in any namespace.
    pub fn address(&self) -> &Path {
        &self.address
    }

    /// Whether the socket sits over a host's `/dev/log` in a private mount namespace.
    pub fn is_private_namespace(&self) -> bool {
        self.namespace.is_some()
    }

    /// Gives `/dev/log` back (processes started afterwards log where the host logs) and returns
    /// the thread to its mount namespace; the socket stays open, so lines already sent can still
    /// be read. Called by drop; call it on the thread that bound.
    pub fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let Some((mut mounts, dir)) = self.namespace.take() else {
            if let Err(e) = std::fs::remove_file(DEV_LOG) {
                eprintln!("warning: cannot remove {DEV_LOG}: {e}");
            }
            return;
        };
        let _ = nix::mount::umount2(DEV_LOG, MntFlags::MNT_DETACH);
        mounts.leave();
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Drop for PrivateDevLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Makes every mount of the calling thread's (new) mount namespace private, so that what it
/// mounts never propagates to the namespace it came from (systemd makes `/` shared).
///
/// In a chroot `/` is no mount point and cannot be changed as a whole (EINVAL): then each mount
/// the thread can see is made private on its own.
///
/// # Errors
/// Neither way worked, or `/proc/thread-self/mountinfo` cannot be read.
pub fn make_mounts_private() -> io::Result<()> {
    let none = None::<&str>;
    let recursive = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    match nix::mount::mount(none, "/", none, recursive, none) {
        Err(nix::errno::Errno::EINVAL) => {}
        other => return other.map_err(io::Error::from),
    }
    let table = std::fs::read_to_string("/proc/thread-self/mountinfo")?;
    // Field 5 is the mount point, relative to the thread's root; escaped characters (`\040`)
    // only occur in mount points no test uses.
    for point in table.lines().filter_map(|l| l.split(' ').nth(4)) {
        if !point.contains('\\') {
            nix::mount::mount(none, point, none, MsFlags::MS_PRIVATE, none)?;
        }
    }
    Ok(())
}

/// A datagram socket at `path` that every process may write to, as a daemon's would be.
fn bind_socket(path: &Path) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(socket)
}
