//! The external VNF hop: send the traffic into a VNF pod through one of its
//! interfaces and take it back from the other, with a liveness state machine
//! and a failure policy.
//!
//! Forward traffic is redirected out of `to_interface` and resumes the chain
//! after this stage when it comes back on `from_interface`; return traffic of
//! a symmetric chain goes the other way round (out of `from_interface`, back
//! on `to_interface`).
//!
//! Liveness, per worker, from one shared clock of returns:
//! - **up**: frames are redirected. The worker notes when it started waiting
//!   for a return (its first redirect since the last return any worker
//!   saw); when more than `timeout` passes without a return while it keeps
//!   sending, the VNF is declared **down**. "Keeps sending" means no gap
//!   longer than `timeout` between its redirects: after a longer pause the
//!   wait starts again, so a frame the VNF dropped before a quiet period
//!   does not condemn it (and traffic sparser than one frame per `timeout`
//!   never declares a VNF down).
//! - **down**: the failure policy decides each packet — fail-closed drops it
//!   ([`DropReason::VnfDown`], counted), fail-open skips the hop (the
//!   chain continues). Now and then a packet is still redirected as a probe:
//!   the first a `timeout` after the VNF went down, then at intervals that
//!   double up to 64 × `timeout` (with fail-open, a probe into a dead VNF is
//!   lost; the back-off keeps that rare for sparse traffic). As soon as any
//!   frame comes back, the VNF is **up** again.
//!
//! Returns are noted in a [`VnfLiveness`] shared by all workers (a frame may
//! come back to a worker other than the one that sent it): a relaxed atomic
//! timestamp, written at most once per `timeout / 16` (the granularity),
//! never locked. A return noted at `r` counts as answering frames sent
//! before `r + granularity`, since a later return would have been noted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kxdp_config::FailurePolicy;
use kxdp_dataplane::PortId;

use crate::conntrack::{Direction, StageAction};
use kxdp_dataplane::DropReason;

/// The longest probe interval, in timeouts.
const MAX_PROBE_BACKOFF: u64 = 64;

/// When frames last came back from a VNF, shared by every worker. Survives
/// chain-set swaps while its stage does not change.
#[derive(Debug, Default)]
pub struct VnfLiveness {
    /// Nanoseconds; 0: never.
    last_return_ns: AtomicU64,
    granularity_ns: u64,
}

impl VnfLiveness {
    /// A clock for a hop with this timeout.
    pub fn new(timeout_ns: u64) -> Self {
        VnfLiveness {
            last_return_ns: AtomicU64::new(0),
            granularity_ns: (timeout_ns / 16).max(1),
        }
    }

    /// A frame came back at `now`.
    #[inline]
    pub fn note_return(&self, now: u64) {
        let seen = self.last_return_ns.load(Ordering::Relaxed);
        if now >= seen.saturating_add(self.granularity_ns) || seen == 0 {
            self.last_return_ns.store(now, Ordering::Relaxed);
        }
    }

    /// When a frame last came back (0: never).
    #[inline]
    pub fn last_return(&self) -> u64 {
        self.last_return_ns.load(Ordering::Relaxed)
    }

    /// Whether a frame came back after `since` (to within the granularity).
    #[inline]
    fn returned_after(&self, since: u64) -> bool {
        let last = self.last_return();
        last != 0 && last.saturating_add(self.granularity_ns) > since
    }
}

/// An external hop's settings.
#[derive(Clone, Debug)]
pub struct ExternalConfig {
    /// Where forward traffic goes into the VNF.
    pub to_port: PortId,
    /// Where forward traffic comes back.
    pub from_port: PortId,
    /// What happens while the VNF is down.
    pub failure: FailurePolicy,
    /// How long without a return, while sending, before the VNF is down.
    pub timeout_ns: u64,
    /// The shared clock of returns.
    pub liveness: Arc<VnfLiveness>,
}

/// Whether a worker considers the VNF alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VnfStatus {
    /// Frames are sent to it.
    Up,
    /// The failure policy applies.
    Down,
}

/// One worker's state of an external hop.
#[derive(Clone, Debug, Default)]
pub struct ExternalState {
    down: bool,
    waiting_since: Option<u64>,
    last_send: u64,
    down_since: u64,
    last_probe: u64,
    probe_interval: u64,
    /// Frames redirected into the VNF (probes included).
    pub sent: u64,
    /// Of which probes while down.
    pub probes: u64,
    /// Frames that skipped the hop (fail-open, down).
    pub bypassed: u64,
    /// Frames dropped (fail-closed, down).
    pub dropped: u64,
    /// Times the VNF was declared down.
    pub went_down: u64,
    /// Times it came back.
    pub came_back: u64,
}

impl ExternalState {
    /// A hop that starts up.
    pub fn new() -> Self {
        Self::default()
    }

    /// The worker's view of the VNF.
    pub fn status(&self) -> VnfStatus {
        if self.down {
            VnfStatus::Down
        } else {
            VnfStatus::Up
        }
    }

    /// The decision for one packet going in `direction` at `now`.
    pub fn decide(
        &mut self,
        config: &ExternalConfig,
        direction: Direction,
        now: u64,
    ) -> StageAction {
        let liveness = &config.liveness;
        let port = match direction {
            Direction::Forward => config.to_port,
            Direction::Reply => config.from_port,
        };
        if !self.down {
            let paused = now.saturating_sub(self.last_send) > config.timeout_ns;
            self.last_send = self.last_send.max(now);
            match self.waiting_since {
                // Something came back since we started waiting, or we
                // paused: wait anew, for this packet.
                Some(since) if paused || liveness.returned_after(since) => {
                    self.waiting_since = Some(now)
                }
                Some(since) if now.saturating_sub(since) > config.timeout_ns => {
                    self.down = true;
                    self.down_since = now;
                    self.last_probe = now;
                    self.probe_interval = config.timeout_ns;
                    self.went_down += 1;
                    return self.fail(config);
                }
                Some(_) => {}
                None => self.waiting_since = Some(now),
            }
            self.sent += 1;
            return StageAction::Redirect(port);
        }
        if liveness.last_return() > self.down_since {
            self.down = false;
            self.waiting_since = Some(now);
            self.last_send = now;
            self.came_back += 1;
            self.sent += 1;
            return StageAction::Redirect(port);
        }
        if now.saturating_sub(self.last_probe) >= self.probe_interval {
            self.last_probe = now;
            self.probe_interval = self
                .probe_interval
                .saturating_mul(2)
                .min(config.timeout_ns.saturating_mul(MAX_PROBE_BACKOFF));
            self.probes += 1;
            self.sent += 1;
            return StageAction::Redirect(port);
        }
        self.fail(config)
    }

    fn fail(&mut self, config: &ExternalConfig) -> StageAction {
        match config.failure {
            FailurePolicy::FailClosed => {
                self.dropped += 1;
                StageAction::Drop(DropReason::VnfDown)
            }
            FailurePolicy::FailOpen => {
                self.bypassed += 1;
                StageAction::Pass
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn config(failure: FailurePolicy) -> ExternalConfig {
        ExternalConfig {
            to_port: 3,
            from_port: 4,
            failure,
            timeout_ns: 200 * MS,
            liveness: Arc::new(VnfLiveness::new(200 * MS)),
        }
    }

    #[test]
    fn a_live_vnf_stays_up() {
        let c = config(FailurePolicy::FailClosed);
        let mut hop = ExternalState::new();
        // A packet every ms, each back 1 ms later, for 2 s.
        for t in 1..2000u64 {
            assert_eq!(
                hop.decide(&c, Direction::Forward, t * MS),
                StageAction::Redirect(3)
            );
            c.liveness.note_return(t * MS + MS);
        }
        assert_eq!(hop.status(), VnfStatus::Up);
        assert_eq!(hop.went_down, 0);
        assert_eq!(
            hop.decide(&c, Direction::Reply, 3000 * MS),
            StageAction::Redirect(4)
        );
    }

    #[test]
    fn fail_closed_drops_then_recovers() {
        let c = config(FailurePolicy::FailClosed);
        let mut hop = ExternalState::new();
        // Traffic, nothing comes back: up until the timeout has passed.
        for t in 0..=200u64 {
            assert_eq!(
                hop.decide(&c, Direction::Forward, (t + 1) * MS),
                StageAction::Redirect(3),
                "t={t}"
            );
        }
        assert_eq!(
            hop.decide(&c, Direction::Forward, 202 * MS),
            StageAction::Drop(DropReason::VnfDown)
        );
        assert_eq!(hop.status(), VnfStatus::Down);
        // Down: drops, except probes a timeout after going down, then at
        // doubling intervals: at 402, 802 and 1602 ms.
        let mut probes = Vec::new();
        for t in 203..=2000u64 {
            match hop.decide(&c, Direction::Forward, t * MS) {
                StageAction::Redirect(3) => probes.push(t),
                StageAction::Drop(DropReason::VnfDown) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(probes, [402, 802, 1602]);
        assert_eq!(hop.probes, 3);
        // A frame comes back: up again.
        c.liveness.note_return(2001 * MS);
        assert_eq!(
            hop.decide(&c, Direction::Forward, 2002 * MS),
            StageAction::Redirect(3)
        );
        assert_eq!(hop.status(), VnfStatus::Up);
        assert_eq!((hop.went_down, hop.came_back), (1, 1));
        assert_eq!(hop.dropped, 1 + (2000 - 203 + 1) - 3);
        // And it can go down again, with the back-off reset. The return at
        // 2001 ms answers frames sent up to a granularity (12.5 ms) later,
        // the last of them at 2013 ms, so the wait starts at 2014 ms.
        for t in 2003..=2214u64 {
            assert_eq!(
                hop.decide(&c, Direction::Forward, t * MS),
                StageAction::Redirect(3),
                "t={t}"
            );
        }
        assert_eq!(
            hop.decide(&c, Direction::Forward, 2215 * MS),
            StageAction::Drop(DropReason::VnfDown)
        );
        assert_eq!(
            hop.decide(&c, Direction::Forward, 2414 * MS),
            StageAction::Drop(DropReason::VnfDown)
        );
        assert_eq!(
            hop.decide(&c, Direction::Forward, 2415 * MS),
            StageAction::Redirect(3)
        );
    }

    #[test]
    fn fail_open_bypasses() {
        let c = config(FailurePolicy::FailOpen);
        let mut hop = ExternalState::new();
        for t in 1..=201u64 {
            assert_eq!(
                hop.decide(&c, Direction::Forward, t * MS),
                StageAction::Redirect(3)
            );
        }
        assert_eq!(
            hop.decide(&c, Direction::Forward, 202 * MS),
            StageAction::Pass
        );
        assert_eq!(hop.status(), VnfStatus::Down);
        assert_eq!(
            hop.decide(&c, Direction::Forward, 203 * MS),
            StageAction::Pass
        );
        assert_eq!(hop.bypassed, 2);
        assert_eq!(hop.dropped, 0);
    }

    #[test]
    fn no_traffic_no_verdict() {
        let c = config(FailurePolicy::FailClosed);
        let mut hop = ExternalState::new();
        // One packet the VNF drops, then silence for 10 s: the next packets
        // are still sent (the wait starts again after a pause)...
        hop.decide(&c, Direction::Forward, MS);
        assert_eq!(
            hop.decide(&c, Direction::Forward, 10_000 * MS),
            StageAction::Redirect(3)
        );
        assert_eq!(
            hop.decide(&c, Direction::Forward, 10_150 * MS),
            StageAction::Redirect(3)
        );
        assert_eq!(hop.status(), VnfStatus::Up);
        // ...until steady traffic gets nothing back for a timeout.
        assert_eq!(
            hop.decide(&c, Direction::Forward, 10_201 * MS),
            StageAction::Drop(DropReason::VnfDown)
        );
    }

    #[test]
    fn returns_seen_by_other_workers_count() {
        // Worker A sends, worker B receives the returns and notes them in
        // the shared clock: A keeps the VNF up.
        let c = config(FailurePolicy::FailClosed);
        let mut a = ExternalState::new();
        for t in 1..5000u64 {
            a.decide(&c, Direction::Forward, t * MS);
            if t % 3 == 0 {
                c.liveness.note_return(t * MS + 500_000);
            }
        }
        assert_eq!(a.status(), VnfStatus::Up);
    }
}
