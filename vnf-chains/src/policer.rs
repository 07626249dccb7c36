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
//! with N workers a class may reach N × rate. A flow's bucket is keyed by
//! its 5-tuple as the stage sees it (each direction has its own).

use kxdp_config::PolicerScope;

use crate::context::{ChainDropReason, PacketContext, StageAction};
use crate::flow::FlowTable;

/// One packet, in bucket units.
const PACKET: u64 = 1_000_000_000;

/// A policer's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicerConfig {
    /// Sustained rate, packets per second.
    pub rate_pps: u64,
    /// Bucket depth, packets (at least 1).
    pub burst: u64,
    /// Per flow or per class.
    pub scope: PolicerScope,
}

impl PolicerConfig {
    /// The bucket's capacity in nano-packets.
    fn capacity(&self) -> u64 {
        self.burst.max(1).saturating_mul(PACKET)
    }
}

/// A token bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens, in nano-packets.
    tokens: u64,
    /// When tokens were last added.
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(config: &PolicerConfig, now: u64) -> Self {
        TokenBucket {
            tokens: config.capacity(),
            last_ns: now,
        }
    }

    /// Add what arrived since the last call and take one packet's worth;
    /// false (and nothing taken) when there is not enough. Time going
    /// backwards adds nothing.
    #[inline]
    pub fn take(&mut self, config: &PolicerConfig, now: u64) -> bool {
        let capacity = config.capacity();
        if now > self.last_ns {
            let elapsed = now - self.last_ns;
            let arrived = u128::from(elapsed) * u128::from(config.rate_pps);
            let room = u128::from(capacity.saturating_sub(self.tokens));
            self.tokens += arrived.min(room) as u64;
            self.last_ns = now;
        }
        if self.tokens >= PACKET {
            self.tokens -= PACKET;
            true
        } else {
            false
        }
    }

    /// Whole packets in the bucket.
    pub fn packets(&self) -> u64 {
        self.tokens / PACKET
    }
}

/// One worker's state of a policer stage.
#[derive(Debug)]
pub struct PolicerState {
    config: PolicerConfig,
    class: TokenBucket,
    flows: FlowTable<TokenBucket>,
    /// Packets passed.
    pub passed: u64,
    /// Packets dropped.
    pub dropped: u64,
}

impl PolicerState {
    /// A policer with a full class bucket at `now` and room for `capacity`
    /// flow buckets (when per flow), each forgotten `idle_timeout_ns` after
    /// its flow's last packet (a forgotten flow starts full again).
    pub fn new(config: PolicerConfig, capacity: usize, idle_timeout_ns: u64, now: u64) -> Self {
        let capacity = match config.scope {
            PolicerScope::Flow => capacity,
            PolicerScope::Class => 1,
        };
        PolicerState {
            config,
            class: TokenBucket::full(&config, now),
            flows: FlowTable::new(capacity, idle_timeout_ns),
            passed: 0,
            dropped: 0,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &PolicerConfig {
        &self.config
    }

    /// Decide `batch[i].action` for every `i` in `selected`.
    pub fn process(&mut self, now: u64, batch: &mut [PacketContext], selected: &[u16]) {
        for &i in selected {
            if let Some(ctx) = batch.get_mut(usize::from(i)) {
                let ok = match self.config.scope {
                    PolicerScope::Class => self.class.take(&self.config, now),
                    PolicerScope::Flow => {
                        let bucket = match self.flows.get(&ctx.flow, ctx.flow_hash, now) {
                            Some(bucket) => bucket,
                            None => self.flows.insert(
                                ctx.flow,
                                ctx.flow_hash,
                                TokenBucket::full(&self.config, now),
                                now,
                            ),
                        };
                        bucket.take(&self.config, now)
                    }
                };
                ctx.action = if ok {
                    self.passed += 1;
                    StageAction::Pass
                } else {
                    self.dropped += 1;
                    StageAction::Drop(ChainDropReason::PolicerExceeded)
                };
            }
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
