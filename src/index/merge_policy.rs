//! The merge policy the index writer runs with: tantivy's log merge policy, which the
//! sync worker can hold (no merge starts), and which notes the segments tantivy last
//! offered it that no merge holds.
//!
//! Why the note: a full merge names its segments, and tantivy drops a merge's result
//! when one of them was merged away meanwhile. That used to be avoided by holding the
//! policy from the moment a full merge fell due until it had ended. But a full merge
//! waits for an idle moment, and under a steady flood of writes there was none: every
//! commit added a segment, 497 of them after 30 s at 1M, and every search paid for
//! each. tantivy offers the policy only segments that no merge holds, after every
//! commit and every merge's end, so the segments offered at the last call, less those
//! the policy then chose, are exactly the ones a full merge may name. The policy is
//! held only from reading the note to starting the merge, and while a bulk load is
//! indexed until its full merge has started (see the sync worker); during a full
//! merge it goes on merging the segments committed meanwhile.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tantivy::index::{SegmentId, SegmentMeta};
use tantivy::indexer::{LogMergePolicy, MergeCandidate, MergePolicy};

/// A segment as the note keeps it: its id and live documents. Never a
/// [`SegmentMeta`]: tantivy keeps the files of every segment whose meta is alive, so
/// holding one kept a merged-away segment (and an erased contact in it) on disk.
pub type FreeSegment = (SegmentId, u32);

#[derive(Debug, Default)]
struct State {
    held: bool,
    /// The last offer less what the policy chose from it; `None` before any offer
    /// (no merge can have started then).
    free: Option<Vec<FreeSegment>>,
}

/// Holds the policy and reads its note; shared by the updater and the policy it
/// installs (tantivy's rollback replaces a writer's policy, so it is installed again).
#[derive(Debug, Clone, Default)]
pub struct MergeControl(Arc<Mutex<State>>);

impl MergeControl {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("merge policy lock is never poisoned")
    }

    /// A policy to install in an index writer, driven by this control.
    pub fn policy(&self) -> Box<dyn MergePolicy> {
        let mut log = LogMergePolicy::default();
        // Every update leaves a deleted document behind: merge those away early.
        log.set_del_docs_ratio_before_merge(0.3);
        Box::new(HoldableLogPolicy {
            log,
            control: self.clone(),
        })
    }

    /// Holds the policy (it starts no merge) or lets it run again; returns whether it
    /// was held.
    pub fn hold(&self, held: bool) -> bool {
        std::mem::replace(&mut self.lock().held, held)
    }

    /// Forgets the last offer (a rolled-back writer offers its segments anew).
    pub fn forget_offer(&self) {
        self.lock().free = None;
    }

    /// The segments no merge holds, as of the last offer; `None` before any offer.
    pub fn free_segments(&self) -> Option<Vec<FreeSegment>> {
        self.lock().free.clone()
    }
}

#[derive(Debug)]
struct HoldableLogPolicy {
    log: LogMergePolicy,
    control: MergeControl,
}

impl MergePolicy for HoldableLogPolicy {
    /// tantivy asks twice in a row, for its uncommitted segments and then for its
    /// committed ones, so the note always ends on the committed segments (the only
    /// ones a full merge names).
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let mut state = self.control.lock();
        let candidates = if state.held {
            Vec::new()
        } else {
            self.log.compute_merge_candidates(segments)
        };
        let chosen: HashSet<_> = candidates
            .iter()
            .flat_map(|candidate| candidate.0.iter().copied())
            .collect();
        state.free = Some(
            segments
                .iter()
                .filter(|meta| !chosen.contains(&meta.id()))
                .map(|meta| (meta.id(), meta.num_docs()))
                .collect(),
        );
        candidates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(count: usize) -> Vec<SegmentMeta> {
        let index = tantivy::Index::create_in_ram(tantivy::schema::Schema::builder().build());
        (0..count)
            .map(|_| index.new_segment_meta(SegmentId::generate_random(), 100))
            .collect()
    }

    fn ids(metas: &[SegmentMeta]) -> HashSet<SegmentId> {
        metas.iter().map(SegmentMeta::id).collect()
    }

    fn free_ids(control: &MergeControl) -> HashSet<SegmentId> {
        control
            .free_segments()
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect()
    }

    #[test]
    fn the_note_leaves_out_what_the_policy_chose_and_a_held_policy_chooses_nothing() {
        let control = MergeControl::default();
        let policy = control.policy();
        assert!(control.free_segments().is_none(), "nothing offered yet");

        // Nine small segments: the log policy merges eight of them.
        let offered = segments(9);
        let chosen = policy.compute_merge_candidates(&offered);
        assert_eq!(chosen.len(), 1);
        let free = free_ids(&control);
        assert_eq!(free.len(), 9 - chosen[0].0.len());
        assert!(chosen[0].0.iter().all(|id| !free.contains(id)));

        // Held: nothing is chosen and every offered segment is free.
        control.hold(true);
        assert!(policy.compute_merge_candidates(&offered).is_empty());
        assert_eq!(free_ids(&control), ids(&offered));

        // Let run again, it merges; a forgotten offer reads as none.
        control.hold(false);
        assert_eq!(policy.compute_merge_candidates(&offered).len(), 1);
        control.forget_offer();
        assert!(control.free_segments().is_none());
    }
}
