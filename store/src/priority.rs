//! CPU priority of the store's background threads: the slow lane re-evaluates heavy
//! subscriptions for as long as they need, and should take only the CPU that request
//! handling and cheap pushes leave.

/// The nice value of the slow lane. At 10 a thread gets about a tenth of the CPU share of
/// one at the default 0 when both want it: request handling comes first, and a heavy
/// subscription's pushes still arrive on a machine busy with other work (at 19, the lowest,
/// a 200 ms re-evaluation took over 10 s in the test suite on two loaded cores).
pub(crate) const SLOW_LANE_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`SLOW_LANE_NICE`] on Linux; elsewhere, or
/// when the system refuses (a sandbox), the priority stays as it was.
pub(crate) fn lower_current_thread() {
    #[cfg(target_os = "linux")]
    lower_on_linux();
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_on_linux() {
    // SAFETY: `gettid` and `setpriority` take and return plain integers and touch no
    // memory of ours. On Linux the nice value is per thread, and `PRIO_PROCESS` with a
    // thread id changes that thread's only (setpriority(2), "Bugs"). Raising the nice
    // value needs no privilege; a failure changes nothing and is reported by the return
    // value, which is checked.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SLOW_LANE_NICE)
    };
    if rc != 0 {
        tracing::debug!("could not lower the slow lane's CPU priority");
    }
}
