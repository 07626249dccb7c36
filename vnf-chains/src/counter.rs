//! Counters per chain and per stage: packets, bytes, and what became of
//! them. Every stage is counted by the executor; a `counter` function is a
//! stage that does nothing else, to count at a chosen place in the chain.
//!
//! Invariants (tested): a stage's `packets = passed + dropped + redirected`;
//! a chain's `packets + resumed = passed + dropped + redirected`, and its
//! drops by reason add up to `dropped`.

use crate::context::StageAction;
use kxdp_dataplane::DropReason;

/// One stage's counters on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageCounters {
    /// Packets the stage saw.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets it passed on.
    pub passed: u64,
    /// Packets it dropped.
    pub dropped: u64,
    /// Packets it redirected (into a VNF).
    pub redirected: u64,
    /// Copies it had made (mirror).
    pub mirrored: u64,
    /// Copies that could not be made (mirror).
    pub mirror_failed: u64,
}

impl StageCounters {
    /// Count one packet of `bytes` and what the stage did with it.
    #[inline]
    pub fn count(&mut self, bytes: u32, action: StageAction) {
        self.packets += 1;
        self.bytes += u64::from(bytes);
        match action {
            StageAction::Pass => self.passed += 1,
            StageAction::Drop(_) => self.dropped += 1,
            StageAction::Redirect(_) => self.redirected += 1,
        }
    }

    /// Add another worker's counters.
    pub fn add(&mut self, other: &StageCounters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.passed += other.passed;
        self.dropped += other.dropped;
        self.redirected += other.redirected;
        self.mirrored += other.mirrored;
        self.mirror_failed += other.mirror_failed;
    }
}

/// One chain's counters on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainCounters {
    /// Packets classified into the chain.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets that came back from an external VNF and resumed the chain.
    pub resumed: u64,
    /// Packets that left the chain passed.
    pub passed: u64,
    /// Packets the chain dropped.
    pub dropped: u64,
    /// Packets that left the chain into a VNF.
    pub redirected: u64,
    /// Packets of the return direction (included in `packets`/`resumed`).
    pub reply_packets: u64,
    /// Drops by reason, in the order of [`DropReason::CHAIN`]
    /// ([`DropReason::chain_index`]).
    pub drops: [u64; DropReason::CHAIN.len()],
}

impl ChainCounters {
    /// Add another worker's counters.
    pub fn add(&mut self, other: &ChainCounters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.resumed += other.resumed;
        self.passed += other.passed;
        self.dropped += other.dropped;
        self.redirected += other.redirected;
        self.reply_packets += other.reply_packets;
        for (mine, theirs) in self.drops.iter_mut().zip(other.drops.iter()) {
            *mine += theirs;
        }
    }

    /// Drops for one reason.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        reason.chain_index().map_or(0, |i| self.drops[i])
    }
}

/// A chain's counters with its stages', by name: what `kxdp get chains`
/// shows. Sum workers' stats with [`ChainStats::merge`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// The chain's name.
    pub chain: String,
    /// The chain's counters.
    pub counters: ChainCounters,
    /// Per stage, in chain order: the function's kind and its counters.
    pub stages: Vec<(&'static str, StageCounters)>,
}

impl ChainStats {
    /// Sum per-worker stats (each a list over chains) by chain name and
    /// stage position.
    pub fn merge<'a>(workers: impl IntoIterator<Item = &'a [ChainStats]>) -> Vec<ChainStats> {
        let mut total: Vec<ChainStats> = Vec::new();
        for stats in workers {
            for chain in stats {
                match total.iter_mut().find(|t| t.chain == chain.chain) {
                    Some(t) => {
                        t.counters.add(&chain.counters);
                        for (i, (kind, stage)) in chain.stages.iter().enumerate() {
                            match t.stages.get_mut(i) {
                                Some((_, sum)) => sum.add(stage),
                                None => t.stages.push((kind, *stage)),
                            }
                        }
                    }
                    None => total.push(chain.clone()),
                }
            }
        }
        total
    }
}
