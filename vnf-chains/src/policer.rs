//! The policer: a token bucket per flow or per class, in integer arithmetic
//! on nanosecond timestamps.
//!
//! Tokens are counted in nano-packets (10⁻⁹ packet): `elapsed_ns × rate_pps`
//! nano-packets arrive in `elapsed_ns`, exactly, so the long-run rate has no
//! rounding drift. The bucket holds at most `burst` packets (at least one)
//! and starts full. A packet takes one packet's worth or is dropped.
//!
//! Buckets are per worker: a per-flow bucket sees all of its flow (RSS keeps
//! a flow on one worker); a per-class bucket meters what one worker sees, so
//! with N workers a class may reach N × rate. A flow's bucket lives in its
//! connection entry (each direction has its own), so it starts full again
//! when the entry expires or is evicted.

use kxdp_config::PolicerScope;

use crate::conntrack::{Conntrack, PacketContext, StageAction};
use kxdp_dataplane::DropReason;

pub use crate::bucket::{PolicerConfig, TokenBucket};

/// One worker's state of a policer stage: the class bucket (flow buckets
/// live in the flows' connection entries).
#[derive(Clone, Debug)]
pub struct PolicerState {
    config: PolicerConfig,
    class: TokenBucket,
    /// Packets passed.
    pub passed: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Packets of a per-flow policer that had no connection entry to keep a
    /// bucket in (evicted within their batch): passed unmetered.
    pub unmetered: u64,
}

impl PolicerState {
    /// A policer with a full class bucket at `now`.
    pub fn new(config: PolicerConfig, now: u64) -> Self {
        PolicerState {
            config,
            class: TokenBucket::full(&config, now),
            passed: 0,
            dropped: 0,
            unmetered: 0,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &PolicerConfig {
        &self.config
    }

    /// What the policer decides for one packet. `owner` identifies this
    /// stage's buckets in the connection entries (a bucket another stage
    /// left there is replaced by a full one).
    #[inline]
    pub fn decide(
        &mut self,
        owner: u32,
        now: u64,
        ctx: &PacketContext,
        conntrack: &mut Conntrack,
    ) -> StageAction {
        let ok = match self.config.scope {
            PolicerScope::Class => self.class.take(&self.config, now),
            PolicerScope::Flow => match conntrack.entry(ctx) {
                Some(entry) => {
                    if entry.bucket_owner != owner {
                        entry.bucket = TokenBucket::full(&self.config, now);
                        entry.bucket_owner = owner;
                    }
                    entry.bucket.take(&self.config, now)
                }
                None => {
                    self.unmetered += 1;
                    true
                }
            },
        };
        if ok {
            self.passed += 1;
            StageAction::Pass
        } else {
            self.dropped += 1;
            StageAction::Drop(DropReason::PolicerExceeded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate_pps: u64, burst: u64) -> PolicerConfig {
        PolicerConfig {
            rate_pps,
            burst,
            scope: PolicerScope::Class,
        }
    }

    #[test]
    fn burst_then_rate() {
        let c = config(1000, 10);
        let mut bucket = TokenBucket::full(&c, 0);
        // The burst passes at once, then the bucket is empty.
        assert!((0..10).all(|_| bucket.take(&c, 0)));
        assert!(!bucket.take(&c, 0));
        // One packet per millisecond arrives.
        assert!(!bucket.take(&c, 999_999));
        assert!(bucket.take(&c, 1_000_000));
        assert!(!bucket.take(&c, 1_000_000));
        // A long idle time fills it to the burst, no more.
        bucket.take(&c, 1_000_000_000_000);
        assert_eq!(bucket.packets(), 9);
    }

    #[test]
    fn huge_idle_times_and_rates_do_not_overflow() {
        let c = config(u64::MAX, 3);
        let mut bucket = TokenBucket::full(&c, 0);
        for _ in 0..3 {
            assert!(bucket.take(&c, 0));
        }
        assert!(bucket.take(&c, u64::MAX));
        assert_eq!(bucket.packets(), 2);
        // Time going backwards adds nothing and does not panic.
        assert!(bucket.take(&c, 5));
        assert!(bucket.take(&c, 5));
        assert!(!bucket.take(&c, 5));
    }

    #[test]
    fn zero_burst_still_passes_one() {
        let c = config(0, 0);
        let mut bucket = TokenBucket::full(&c, 0);
        assert!(bucket.take(&c, 0));
        assert!(!bucket.take(&c, 1_000_000_000));
    }
}
