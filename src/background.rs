//! CPU priority of background work.
//!
//! On two cores the index's indexing and merge threads, a reindex and the store
//! compactor can keep every core busy for minutes; at the default priority the writer
//! thread got about a third of a core during a bulk job, and every write queued behind
//! it. Background threads therefore run at a lower priority (a higher nice value):
//! they take whatever the writer and the request threads leave, so writes and
//! searches answer first and the index catches up after. Nothing waits on them in a
//! way that could starve: when the foreground is idle they get every core.
//!
//! On Linux a thread starts with its creator's nice value, so lowering a thread before
//! it creates tantivy's index writer lowers that writer's indexing and merge threads
//! too. Elsewhere this is a no-op.

/// How much lower than the process background threads run (nice levels; 19 is the
/// lowest priority). Five levels weigh a thread at about a third of a default one, so
/// background work still moves under a load that keeps both cores busy: ten levels (a
/// tenth) left an online reindex behind 8 saturating writers for over ten minutes.
pub const NICE_OFFSET: i32 = 5;

/// Lowers the calling thread's priority by [`NICE_OFFSET`]. Call it only on a thread
/// that does background work for its whole life (never on a pooled thread: the pool
/// would serve requests with it afterwards).
pub fn lower_current_thread() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let thread = Some(rustix::thread::gettid());
        let lowered = getpriority_process(thread)
            .and_then(|nice| setpriority_process(thread, (nice + NICE_OFFSET).min(19)));
        if let Err(error) = lowered {
            tracing::warn!(%error, "cannot lower the priority of a background thread");
        }
    }
}

/// Runs `work` on a thread of its own at background priority, and waits for it; a
/// panic in `work` is resumed here.
pub fn run<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn_scoped(scope, || {
                lower_current_thread();
                work()
            })?;
        Ok(thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_runs_lower_and_the_caller_keeps_its_priority() {
        let me = || rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let before = me().unwrap();
        let inside = run("background-test", || me().unwrap()).unwrap();
        assert_eq!(inside, (before + NICE_OFFSET).min(19));
        assert_eq!(me().unwrap(), before);
    }
}
