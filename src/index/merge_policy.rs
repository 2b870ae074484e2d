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
//!
//! It also plans the worker's own merges, in rounds of bounded merges: a full merge
//! ([`plan_full_merge`]) and a scrub ([`plan_scrub_round`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tantivy::index::{SegmentId, SegmentMeta};
use tantivy::indexer::{LogMergePolicy, MergeCandidate, MergePolicy};

/// A segment as the note keeps it. Never a [`SegmentMeta`]: tantivy keeps the files
/// of every segment whose meta is alive, so holding one kept a merged-away segment
/// (and an erased contact in it) on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSegment {
    pub id: SegmentId,
    /// Live documents.
    pub docs: u32,
    /// Documents deleted but still in the segment's files.
    pub deleted: u32,
}

impl FreeSegment {
    pub fn of(meta: &SegmentMeta) -> FreeSegment {
        FreeSegment {
            id: meta.id(),
            docs: meta.num_docs(),
            deleted: meta.num_deleted_docs(),
        }
    }

    /// Whether deleted documents are over [`DELETED_SHARE_TO_REWRITE`] of it.
    fn mostly_deleted(&self) -> bool {
        let all = f64::from(self.docs) + f64::from(self.deleted);
        all > 0.0 && f64::from(self.deleted) / all > f64::from(DELETED_SHARE_TO_REWRITE)
    }
}

/// A segment with a larger share of deleted documents is rewritten: every update
/// leaves a deleted document behind, so merge those away early.
const DELETED_SHARE_TO_REWRITE: f32 = 0.3;

/// Segments smaller than this count as this size when the policy groups segments of
/// about the same size into levels. Under a flood of single writes every index commit
/// adds a segment of some 50–100 contacts. With tantivy's floor of 10,000, every segment
/// below it was one level, so the segment growing towards 10,000 was rewritten with
/// each handful of fresh ones: merging took over a third of the CPU of a write flood
/// at 1M. With this floor a merged segment soon leaves the fresh ones' level.
const MERGE_FLOOR_DOCS: u32 = 1_000;
/// Segments of one level merged at once (tantivy's default is 8): with fewer per
/// merge, a flood leaves no more segments than before although the levels are more.
/// Measured with 32 clients creating contacts at 1M, against tantivy's 10,000 and 8:
/// 0.62–0.64 ms of merge CPU a write instead of 1.04–1.07, and 10–12 segments after
/// 25 s against 11–19.
const SEGMENTS_PER_MERGE: usize = 4;

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

    /// A policy to install in an index writer, driven by this control. It leaves
    /// alone the segments of more than `max_docs` documents: the full merge's rounds
    /// make them and rewrite them (see [`plan_full_merge`]); tantivy's policy would
    /// merge a whole level of them at once, 10M contacts in one merge at 10M.
    pub fn policy(&self, max_docs: u64) -> Box<dyn MergePolicy> {
        let mut log = LogMergePolicy::default();
        log.set_del_docs_ratio_before_merge(DELETED_SHARE_TO_REWRITE);
        log.set_max_docs_before_merge(usize::try_from(max_docs).unwrap_or(usize::MAX));
        log.set_min_layer_size(MERGE_FLOOR_DOCS);
        log.set_min_num_segments(SEGMENTS_PER_MERGE);
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
                .map(FreeSegment::of)
                .collect(),
        );
        candidates
    }
}

/// One round of a full merge: the groups of segments to merge side by side now, and
/// whether segments are left for a later round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FullMergeRound {
    pub groups: Vec<Vec<SegmentId>>,
    pub more: bool,
}

/// Plans the next round of a full merge of the free `segments` on `threads` merge
/// threads (one merge is single-threaded, so they run side by side).
///
/// Up to `threads × segment_docs` documents, one round merges everything into
/// `threads` segments of about equal size. Beyond that, the segments with fewer than
/// `segment_docs / 2` documents are merged into segments of about `segment_docs`,
/// `threads` merges a round, and the larger ones (earlier rounds' output) are left
/// alone unless over 30% of their documents are deleted: each such segment is then
/// rewritten by itself. The reason is memory: a merge reads its segments through
/// their memory maps, and every page it reads counts in the process's RSS until the
/// merge ends. At 10M contacts two merges of half the index each mapped 5.3 GiB.
pub fn plan_full_merge(
    segments: Vec<FreeSegment>,
    threads: usize,
    segment_docs: u64,
) -> FullMergeRound {
    let threads = threads.max(1);
    let segment_docs = segment_docs.max(1);
    let total: u64 = segments.iter().map(|s| u64::from(s.docs)).sum();
    let mut rewritten = Vec::new();
    let (segments, parts) = if total <= segment_docs.saturating_mul(threads as u64) {
        (segments, threads)
    } else {
        let (small, large): (Vec<_>, Vec<_>) = segments
            .into_iter()
            .partition(|s| u64::from(s.docs) < segment_docs / 2);
        rewritten = large
            .iter()
            .filter(|s| s.mostly_deleted())
            .map(|s| vec![s.id])
            .collect();
        let small_total: u64 = small.iter().map(|s| u64::from(s.docs)).sum();
        let parts = usize::try_from(small_total.div_ceil(segment_docs)).unwrap_or(usize::MAX);
        (small, parts)
    };
    let mut groups = balanced_groups(segments, parts);
    // A group of one segment is merged already.
    groups.retain(|group| group.len() > 1);
    groups.extend(rewritten);
    let later = groups.split_off(groups.len().min(threads));
    FullMergeRound {
        groups,
        more: !later.is_empty(),
    }
}

/// Plans one round of a scrub, which rewrites each of `segments` (those holding
/// deleted documents) without them: at most `threads` merges, each of segments
/// totalling at most `segment_docs` documents, or of one larger segment alone (the
/// largest first). The segments in no group wait for a later round. Bounded for the
/// same reason as a full merge's rounds: one merge of every segment with deletions
/// mapped the whole index.
pub fn plan_scrub_round(
    mut segments: Vec<FreeSegment>,
    threads: usize,
    segment_docs: u64,
) -> Vec<Vec<SegmentId>> {
    segments.sort_by_key(|s| std::cmp::Reverse(s.docs));
    let mut groups: Vec<(u64, Vec<SegmentId>)> = Vec::new();
    for FreeSegment { id, docs, .. } in segments {
        let docs = u64::from(docs);
        let room = groups
            .iter()
            .position(|(group_docs, _)| group_docs + docs <= segment_docs);
        match room {
            Some(at) => {
                groups[at].0 += docs;
                groups[at].1.push(id);
            }
            None if groups.len() < threads.max(1) => groups.push((docs, vec![id])),
            None => {}
        }
    }
    groups.into_iter().map(|(_, ids)| ids).collect()
}

/// Splits `segments` into `parts` groups of about equal documents: the largest first,
/// each into the group with the fewest so far.
fn balanced_groups(mut segments: Vec<FreeSegment>, parts: usize) -> Vec<Vec<SegmentId>> {
    segments.sort_by_key(|s| std::cmp::Reverse(s.docs));
    let mut groups: Vec<(u64, Vec<SegmentId>)> =
        vec![(0, Vec::new()); parts.clamp(1, segments.len().max(1))];
    for FreeSegment { id, docs, .. } in segments {
        let fewest = groups
            .iter_mut()
            .min_by_key(|(group_docs, _)| *group_docs)
            .expect("at least one group");
        fewest.0 += u64::from(docs);
        fewest.1.push(id);
    }
    groups.into_iter().map(|(_, ids)| ids).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(count: usize) -> Vec<SegmentMeta> {
        sized(&vec![100; count])
    }

    /// A segment of each size, in documents.
    fn sized(docs: &[u32]) -> Vec<SegmentMeta> {
        let index = tantivy::Index::create_in_ram(tantivy::schema::Schema::builder().build());
        docs.iter()
            .map(|&docs| index.new_segment_meta(SegmentId::generate_random(), docs))
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
            .map(|s| s.id)
            .collect()
    }

    #[test]
    fn the_note_leaves_out_what_the_policy_chose_and_a_held_policy_chooses_nothing() {
        let control = MergeControl::default();
        let policy = control.policy(1_000_000);
        assert!(control.free_segments().is_none(), "nothing offered yet");

        // Nine small segments, one level: the log policy merges them.
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

        // Segments over its bound are the full merge's to rewrite.
        assert!(
            control
                .policy(50)
                .compute_merge_candidates(&offered)
                .is_empty()
        );
        assert_eq!(free_ids(&control), ids(&offered));
    }

    #[test]
    fn fresh_segments_merge_in_fours_without_the_merged_ones() {
        let policy = MergeControl::default().policy(1_000_000);
        // Three commits' segments wait for a fourth.
        assert!(policy.compute_merge_candidates(&sized(&[70; 3])).is_empty());
        // Four are merged; a segment merged earlier is past their level and stays.
        let offered = sized(&[5_000, 70, 90, 60, 80]);
        let chosen = policy.compute_merge_candidates(&offered);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].0.len(), 4);
        assert!(!chosen[0].0.contains(&offered[0].id()));
        // Four merged segments of about one size make the next level's merge.
        let chosen = policy.compute_merge_candidates(&sized(&[5_000, 4_000, 4_500, 3_500, 70]));
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].0.len(), 4);
    }

    fn free(docs: &[u32]) -> Vec<FreeSegment> {
        docs.iter()
            .map(|docs| FreeSegment {
                id: SegmentId::generate_random(),
                docs: *docs,
                deleted: 0,
            })
            .collect()
    }

    fn group_docs(segments: &[FreeSegment], round: &FullMergeRound) -> Vec<u64> {
        let docs: std::collections::HashMap<_, _> =
            segments.iter().map(|s| (s.id, s.docs)).collect();
        round
            .groups
            .iter()
            .map(|group| group.iter().map(|id| u64::from(docs[id])).sum())
            .collect()
    }

    #[test]
    fn a_small_index_merges_in_one_round_into_one_segment_per_thread() {
        let segments = free(&[500, 300, 200, 100, 100, 100, 50]);
        let round = plan_full_merge(segments.clone(), 2, 1_000);
        assert!(!round.more);
        assert_eq!(group_docs(&segments, &round), vec![700, 650]);
        let named: HashSet<_> = round.groups.iter().flatten().collect();
        assert_eq!(named.len(), segments.len(), "every segment, once");

        // One segment per group is merged already.
        assert_eq!(
            plan_full_merge(free(&[500, 400]), 2, 1_000),
            FullMergeRound::default()
        );
    }

    #[test]
    fn a_large_index_merges_its_small_segments_in_rounds_of_bounded_merges() {
        // 20 segments of 100: past 2 × 300, so merges of about 300 documents, two a
        // round, until every segment has 150 or more.
        let mut segments = free(&[100; 20]);
        let mut rounds = 0;
        loop {
            let round = plan_full_merge(segments.clone(), 2, 300);
            assert!(round.groups.len() <= 2);
            for docs in group_docs(&segments, &round) {
                assert!(docs <= 300, "a merge of {docs} documents");
            }
            rounds += 1;
            // Merge the round's groups, as the merge threads would.
            for group in &round.groups {
                let docs = segments
                    .iter()
                    .filter(|s| group.contains(&s.id))
                    .map(|s| s.docs)
                    .sum();
                segments.retain(|s| !group.contains(&s.id));
                segments.extend(free(&[docs]));
            }
            if !round.more {
                break;
            }
        }
        let mut docs: Vec<_> = segments.iter().map(|s| s.docs).collect();
        docs.sort_unstable();
        assert_eq!(rounds, 4);
        assert_eq!(docs, vec![200, 300, 300, 300, 300, 300, 300]);

        // The next full merge leaves the merged segments alone and merges what came since.
        segments.extend(free(&[10, 10, 10]));
        let round = plan_full_merge(segments.clone(), 2, 300);
        assert_eq!(group_docs(&segments, &round), vec![30]);
        assert!(!round.more);

        // Unless over 30% of a large one's documents are deleted: it is rewritten alone.
        segments[0].deleted = 200;
        segments[1].deleted = 100;
        let round = plan_full_merge(segments.clone(), 2, 300);
        assert_eq!(round.groups[1], vec![segments[0].id]);
        assert_eq!(group_docs(&segments, &round), vec![30, 300]);
    }

    #[test]
    fn a_scrub_round_rewrites_large_segments_alone_and_packs_small_ones() {
        let segments = free(&[900, 500, 300, 200, 100, 50]);
        let round = FullMergeRound {
            groups: plan_scrub_round(segments.clone(), 2, 1_000),
            more: false,
        };
        // Largest first, each into the first group with room: 900 + 100 and
        // 500 + 300 + 200; the 50 waits for the next round.
        assert_eq!(group_docs(&segments, &round), vec![1_000, 1_000]);
        let waiting: Vec<_> = segments
            .iter()
            .filter(|s| !round.groups.iter().flatten().any(|named| *named == s.id))
            .map(|s| s.docs)
            .collect();
        assert_eq!(waiting, vec![50]);

        // A segment larger than the bound is rewritten alone; one with deletions is
        // rewritten even when it is the only one.
        let segments = free(&[5_000, 10]);
        let round = FullMergeRound {
            groups: plan_scrub_round(segments.clone(), 1, 1_000),
            more: false,
        };
        assert_eq!(group_docs(&segments, &round), vec![5_000]);
        assert_eq!(plan_scrub_round(free(&[10]), 2, 1_000).len(), 1);
        assert!(plan_scrub_round(Vec::new(), 2, 1_000).is_empty());
    }
}
