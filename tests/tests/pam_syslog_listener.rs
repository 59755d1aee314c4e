//! The log tests on a host where a daemon listens on `/dev/log`, as journald does on every
//! systemd machine: the capture still gets the module's lines, the daemon gets none of them, and
//! afterwards `/dev/log` leads to the daemon again.
//!
//! The daemon is simulated, journald-like (`/dev/log` a symbolic link to its socket), inside a
//! private mount namespace of its own with a copy of `/dev`, so the host's `/dev/log` (present or
//! not) is never touched.

use nix::mount::{MntFlags, MsFlags};
use pam_totp_e2e::dev_log::PrivateMounts;
use pam_totp_e2e::harness::{Scenario, TempDir};
use pam_totp_e2e::harness_syslog::{DEV_LOG, SyslogCapture, has_fields, is_of_user};
use pam_totp_e2e::require_root;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// A journald stand-in: this thread in a private mount namespace whose `/dev` is a tmpfs with the
/// host's entries bind-mounted back, and `/dev/log` a symbolic link to a socket it owns.
struct FakeJournald {
    socket: UnixDatagram,
    // Left (back to the host's namespace, root and cwd) before the directory is removed.
    _mounts: PrivateMounts,
    _dir: TempDir,
}

impl FakeJournald {
    fn start() -> FakeJournald {
        let dir = TempDir::new("journald");
        let socket_path = dir.join("dev-log");
        let socket = UnixDatagram::bind(&socket_path).expect("bind the daemon's socket");
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o666))
            .expect("chmod the daemon's socket");
        socket.set_nonblocking(true).expect("non-blocking");
        let daemon = FakeJournald {
            socket,
            _mounts: PrivateMounts::enter().expect("a private mount namespace"),
            _dir: dir,
        };
        let none = None::<&str>;
        let host_dev = daemon._dir.join("host-dev");
        std::fs::create_dir(&host_dev).expect("mkdir host-dev");
        let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
        nix::mount::mount(Some("/dev"), &host_dev, none, rbind, none).expect("keep /dev");
        nix::mount::mount(
            Some("tmpfs"),
            "/dev",
            Some("tmpfs"),
            MsFlags::empty(),
            Some("mode=0755"),
        )
        .expect("tmpfs over /dev");
        for entry in std::fs::read_dir(&host_dev).expect("read /dev") {
            let entry = entry.expect("a /dev entry");
            let name = entry.file_name();
            if name == "log" {
                continue;
            }
            let (from, to) = (entry.path(), Path::new("/dev").join(&name));
            let kind = entry.file_type().expect("entry type");
            if kind.is_symlink() {
                let target = std::fs::read_link(&from).expect("readlink");
                std::os::unix::fs::symlink(target, &to).expect("symlink");
                continue;
            }
            if kind.is_dir() {
                std::fs::create_dir(&to).expect("mkdir");
            } else {
                File::create(&to).expect("mount point");
            }
            nix::mount::mount(Some(&from), &to, none, rbind, none).expect("bind a /dev entry");
        }
        nix::mount::umount2(&host_dev, MntFlags::MNT_DETACH).expect("umount host-dev");
        std::os::unix::fs::symlink(&socket_path, DEV_LOG).expect("/dev/log -> the daemon");
        daemon
    }

    /// Everything the daemon received so far.
    fn received(&self) -> Vec<String> {
        let mut buf = vec![0u8; 65536];
        let mut lines = Vec::new();
        while let Ok(n) = self.socket.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        lines
    }
}

#[test]
fn given_a_journald_like_listener_on_dev_log_then_the_capture_gets_the_lines_and_it_none() {
    require_root!();
    let host_before = std::fs::symlink_metadata(DEV_LOG)
        .ok()
        .map(|m| m.file_type());
    let s = Scenario::new("", "");
    let e = s.enroll(&[]);
    let wrong = e.wrong_code(e.settled_step(3));
    let user = &s.user.name;
    {
        let daemon = FakeJournald::start();
        assert!(
            UnixDatagram::unbound()
                .and_then(|c| c.connect(DEV_LOG))
                .is_ok(),
            "the simulated daemon does not accept connections on {DEV_LOG}"
        );
        let lines = {
            let log = SyslogCapture::start();
            s.client()
                .answer(&wrong)
                .run()
                .assert_result("PAM_AUTH_ERR");
            log.lines_of_user(user)
        };
        assert!(
            lines.iter().any(|l| l.contains("pam_totp")
                && has_fields(l, &[("result", "failure"), ("reason", "wrong-code")])),
            "the capture missed the module's line: {lines:#?}"
        );
        // The capture is gone: the processes of this thread log to the daemon again.
        s.client()
            .answer(&wrong)
            .run()
            .assert_result("PAM_AUTH_ERR");
        let daemon_lines = daemon.received();
        assert_eq!(
            daemon_lines.iter().filter(|l| is_of_user(l, user)).count(),
            1,
            "the daemon must get the line of the login after the capture only: {daemon_lines:#?}"
        );
    }
    let host_after = std::fs::symlink_metadata(DEV_LOG)
        .ok()
        .map(|m| m.file_type());
    assert_eq!(host_after, host_before, "the host's {DEV_LOG} changed");
}
