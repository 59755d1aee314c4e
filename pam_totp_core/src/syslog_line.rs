//! Sending one formatted line to the local syslog socket without ever blocking, shared by the
//! module and the CLI. A syslog daemon that stopped reading fills its socket queue, and a
//! blocking send would then hang a login or an administrator's command; a dropped line is the
//! lesser harm. Formatting (RFC 3164) stays with the callers, which use the `syslog` crate.

use std::os::unix::net::UnixDatagram;

/// The local syslog socket.
pub const DEV_LOG: &str = "/dev/log";

/// Sends one datagram to `/dev/log`. Returns whether it was handed over.
pub fn send(datagram: &[u8]) -> bool {
    let Ok(socket) = UnixDatagram::unbound() else {
        return false;
    };
    socket.set_nonblocking(true).is_ok()
        && socket.connect(DEV_LOG).is_ok()
        && socket.send(datagram).is_ok()
}
