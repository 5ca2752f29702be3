//! Socket options the standard library does not set: one `setsockopt`
//! behind a safe call, for the listener's timeouts.

use std::net::TcpListener;
use std::time::Duration;

/// Sets the receive and send timeouts of `listener`, which the sockets it
/// accepts inherit (Linux and the BSDs copy `SO_RCVTIMEO`/`SO_SNDTIMEO` to
/// accepted sockets).
#[cfg(unix)]
pub(crate) fn set_timeouts(listener: &TcpListener, read: Duration, write: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    for (option, timeout) in [(libc::SO_RCVTIMEO, read), (libc::SO_SNDTIMEO, write)] {
        let value = libc::timeval {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        set(listener.as_raw_fd(), option, &value)?;
    }
    Ok(())
}

/// Without `setsockopt`, sockets keep the system's defaults.
#[cfg(not(unix))]
pub(crate) fn set_timeouts(_: &TcpListener, _: Duration, _: Duration) -> std::io::Result<()> {
    log::warn!("admin server: socket timeouts are not supported on this platform");
    Ok(())
}

/// `setsockopt(fd, SOL_SOCKET, option, value)`, where `T` is the C type
/// `option` takes (`timeval`).
#[cfg(unix)]
fn set<T>(fd: std::os::fd::RawFd, option: libc::c_int, value: &T) -> std::io::Result<()> {
    // SAFETY: `fd` is borrowed from an open socket for the call; `value`
    // points to a live `T` that outlives the call, and the length passed
    // is its size. The callers pass the C type each option expects.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
