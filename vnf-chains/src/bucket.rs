//! The token bucket a policer meters with, in integer arithmetic on
//! nanosecond timestamps (see [`crate::policer`]), and its settings: on
//! their own so that the connection table, which keeps a flow's bucket in
//! its entry, and the policer, which reads it there, need not use each
//! other.

use kxdp_config::PolicerScope;

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
