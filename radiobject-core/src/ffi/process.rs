//! Process-level hooks that need libc: the SIGINT handler of the `radiobject` command.

use std::sync::atomic::{AtomicBool, Ordering};

static SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only async-signal-safe work here: atomics and _exit.
    if SEEN.swap(true, Ordering::AcqRel) {
        // A second Ctrl-C: stop now, as a shell user expects.
        // SAFETY: _exit is async-signal-safe and takes no pointers.
        unsafe { libc::_exit(130) };
    }
    crate::cancel::interrupt();
}

/// Makes SIGINT interrupt long work cooperatively ([`crate::cancel`]); a second SIGINT exits at
/// once with status 130. For programs that own the process (the `radiobject` command), not for
/// libraries inside another runtime (Python handles its own signals).
pub(crate) fn install_sigint_handler() -> std::io::Result<()> {
    // SAFETY: sigaction with a zeroed struct, an empty mask and a handler that only touches atomics
    // (async-signal-safe); the struct outlives the call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a process with id `pid` exists on this machine (it may belong to another user).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's host name ("" if it cannot be read).
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

extern "C" fn atfork_prepare() {
    crate::sync::before_fork();
}

extern "C" fn atfork_parent() {
    crate::sync::after_fork(false);
}

extern "C" fn atfork_child() {
    crate::sync::after_fork(true);
}

/// Registers the fork gate's handlers (see [`crate::sync`]); called once per process.
pub(crate) fn register_atfork() {
    // SAFETY: the three handlers are plain `extern "C" fn()`s that live for the whole program and
    // only touch atomics and thread-locals (and sleep); pthread_atfork copies the pointers.
    let rc = unsafe { libc::pthread_atfork(Some(atfork_prepare), Some(atfork_parent), Some(atfork_child)) };
    debug_assert_eq!(rc, 0, "pthread_atfork failed");
}
