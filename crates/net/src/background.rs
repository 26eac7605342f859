//! Heavy work that must not slow interactive requests: a tenant's compile,
//! a push's compression. Each runs on a thread of its own at the lowest CPU
//! priority (nice +10 and `SCHED_IDLE`), so when the cores are busy the
//! scheduler gives sandbox calls and the HTTP edge the time first, and the
//! heavy work the rest. How many such threads exist at once is bounded by their callers'
//! admission (compile slots, push workers), never here.

use tokio::sync::oneshot;

/// The nice value background threads run at.
pub const NICE: i32 = 10;

/// Starts `work` at once on a new thread named `name` at a lower priority;
/// its result arrives on the returned future, or `None` if the thread could
/// not be started or panicked.
pub fn run<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Option<T>> + Send + 'static {
    let (tx, rx) = oneshot::channel();
    let started = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(work());
        });
    if let Err(e) = &started {
        tracing::error!(error = %e, "cannot start a background thread");
    }
    async move { rx.await.ok() }
}

/// Lowers the calling thread's priority to [`NICE`] unless it is lower
/// already (a thread's nice value is its own on Linux); a failure leaves it
/// as it was.
fn lower_priority() {
    let current = nice();
    if current >= NICE {
        return;
    }
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and
    // a thread id changes that thread's nice value only.
    let result =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) };
    if result != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot lower a background thread's priority"
        );
    }
    // SCHED_IDLE on top: the thread runs only on CPU time nothing else of
    // normal priority wants (its weight is 3 against nice 0's 1024).
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid
    // sched_param; moving to SCHED_IDLE needs no privilege.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot move a background thread to SCHED_IDLE"
        );
    }
}

/// The calling thread's nice value.
fn nice() -> i32 {
    // SAFETY: gettid has no preconditions; getpriority only reads.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_lower_priority_thread_and_its_result_comes_back() {
        let before = nice();
        let (value, inside, policy) = run("test-background", move || {
            // SAFETY: reads the calling thread's policy.
            (41 + 1, nice(), unsafe { libc::sched_getscheduler(0) })
        })
        .await
        .expect("an answer");
        assert_eq!(value, 42);
        assert_eq!(policy, libc::SCHED_IDLE);
        assert_eq!(inside, before.max(NICE), "nice {inside}");
        assert_eq!(nice(), before, "the caller's priority is untouched");
        assert!(
            run("test-panic", || -> u8 { panic!("boom") })
                .await
                .is_none()
        );
    }
}
