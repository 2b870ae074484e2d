//! A monotonically increasing sequence number that threads and tasks can wait on.
//!
//! The store publishes its last committed change-log sequence here and the sync worker
//! waits on it from its own thread; the sync worker publishes the last indexed sequence
//! and request handlers await it (`?wait=indexed`, `min_seq`).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug)]
pub struct SeqSignal {
    // A std Mutex: held only to read or bump a u64, never across an await.
    value: Mutex<u64>,
    changed: Condvar,
    watchers: watch::Sender<u64>,
}

impl SeqSignal {
    pub fn new(initial: u64) -> Self {
        SeqSignal {
            value: Mutex::new(initial),
            changed: Condvar::new(),
            watchers: watch::Sender::new(initial),
        }
    }

    pub fn get(&self) -> u64 {
        *self
            .value
            .lock()
            .expect("seq mutex is never poisoned: no panics while held")
    }

    /// Raises the value (never lowers it) and wakes every waiter.
    pub fn publish(&self, seq: u64) {
        let mut value = self.value.lock().expect("seq mutex is never poisoned");
        if seq > *value {
            *value = seq;
            self.watchers.send_replace(seq);
            self.changed.notify_all();
        }
    }

    /// Blocks the calling (non-async) thread until the value exceeds `seen` or the
    /// timeout passes; returns the current value.
    pub fn wait_past_blocking(&self, seen: u64, timeout: Duration) -> u64 {
        let value = self.value.lock().expect("seq mutex is never poisoned");
        let (value, _) = self
            .changed
            .wait_timeout_while(value, timeout, |v| *v <= seen)
            .expect("seq mutex is never poisoned");
        *value
    }

    /// Waits until the value reaches `seq`; false when the timeout passed first.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let mut receiver = self.watchers.subscribe();
        tokio::time::timeout(timeout, receiver.wait_for(|v| *v >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
