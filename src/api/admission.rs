//! Admission of blocking reads: how many run at once, and how many may wait.
//!
//! Every read (a search, a listing, a facet count, a lookup) runs on tokio's blocking
//! pool, which grows a thread per task up to 512. Under more searches than the cores
//! can answer (an open-loop load of 200 searches/s while a full merge of the index
//! held both cores), the pool grew to 514 threads: every search ran at once, each
//! slower than the last, all of them past the request timeout, and the index's own
//! threads (at background priority, see [`crate::background`]) waited seconds for a
//! core, so a write took over 10 s to become searchable. The gate keeps the cores'
//! worth of reads running and the rest waiting without a thread: a waiting read costs
//! a task, it still answers 503 `timeout` once `request_timeout_ms` has passed, and
//! past `reads_queue_max` waiting a read is refused at once with 503 `overloaded`.
//!
//! The limits are read from the live configuration on every admission, so a reload
//! applies to the next read.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Reads running and waiting now.
#[derive(Debug, Default)]
struct Counts {
    running: usize,
    waiting: usize,
}

/// The gate every blocking read passes (see the module).
#[derive(Debug, Default)]
pub struct ReadGate {
    counts: Mutex<Counts>,
    /// Signalled whenever a read ends (a slot may be free).
    freed: Notify,
}

/// The queue was full: the read was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// A running read's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a ReadGate);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
        self.0.freed.notify_one();
    }
}

/// Counts a read as waiting for as long as it is alive (a read that times out while
/// waiting is dropped here).
struct Waiting<'a>(&'a ReadGate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

impl ReadGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .expect("read gate lock is never poisoned")
    }

    /// Waits for a slot among `max_running`; refused at once when `max_waiting` reads
    /// already wait.
    pub async fn enter(
        &self,
        max_running: usize,
        max_waiting: usize,
    ) -> Result<Slot<'_>, QueueFull> {
        let waiting = {
            let mut counts = self.lock();
            if counts.running < max_running {
                counts.running += 1;
                return Ok(Slot(self));
            }
            if counts.waiting >= max_waiting {
                return Err(QueueFull);
            }
            counts.waiting += 1;
            Waiting(self)
        };
        loop {
            // Registered before the check, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut counts = self.lock();
                if counts.running < max_running {
                    counts.running += 1;
                    drop(counts);
                    drop(waiting);
                    return Ok(Slot(self));
                }
            }
            freed.await;
        }
    }

    /// Reads running and waiting now (for `/v1/stats`).
    pub fn load(&self) -> (usize, usize) {
        let counts = self.lock();
        (counts.running, counts.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn reads_past_the_running_limit_wait_and_past_the_queue_are_refused() {
        let gate = ReadGate::default();
        let first = gate.enter(2, 1).await.unwrap();
        let _second = gate.enter(2, 1).await.unwrap();
        assert_eq!(gate.load(), (2, 0));

        // The third waits for a slot; a fourth finds the queue full.
        let third = gate.enter(2, 1);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err()
        );
        assert_eq!(gate.load(), (2, 1));
        assert_eq!(gate.enter(2, 1).await.unwrap_err(), QueueFull);

        // A slot given back admits the waiting read.
        drop(first);
        let _third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("a freed slot admits the waiting read")
            .unwrap();
        assert_eq!(gate.load(), (2, 0));
    }

    #[tokio::test]
    async fn a_read_that_gives_up_waiting_leaves_the_queue() {
        let gate = ReadGate::default();
        let _only = gate.enter(1, 1).await.unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), gate.enter(1, 1)).await;
        assert!(gave_up.is_err());
        assert_eq!(gate.load(), (1, 0), "the timed-out read no longer waits");
        // So the queue has room again.
        let again = tokio::time::timeout(Duration::from_millis(20), gate.enter(1, 1)).await;
        assert!(
            again.is_err(),
            "it waits (not refused) since the queue had room"
        );
    }

    #[tokio::test]
    async fn a_raised_limit_applies_to_the_next_read() {
        let gate = ReadGate::default();
        let _a = gate.enter(1, 0).await.unwrap();
        assert_eq!(gate.enter(1, 0).await.unwrap_err(), QueueFull);
        let _b = gate.enter(2, 0).await.unwrap();
        assert_eq!(gate.load(), (2, 0));
    }
}
