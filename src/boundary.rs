//! Panic boundaries of the long-lived threads (store writer, sync worker): one batch's
//! panic becomes an error for that batch, with what the panic said.

/// Runs `work`, turning a panic into `Err` with the panic's message. `work` must not
/// leave shared state half-changed: the callers run one transaction (or one index
/// batch) in it and drop or roll back what it began.
pub(crate) fn catch<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .map_err(|panic| panic_message(&*panic))
}

/// The text of a caught panic (`panic!` carries a `&str` or a `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
