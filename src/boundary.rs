//! Panic boundaries of the long-lived threads (store writer, sync worker): what a
//! caught panic said, for the log and the failed callers.

/// The text of a caught panic (`panic!` carries a `&str` or a `String`).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
