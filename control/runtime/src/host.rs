//! Host settings that kxdp depends on but does not own: each is read from
//! the running kernel and checked against what kxdp's workers need, and
//! where it falls short the advice says what to set and why. `kxdp check`
//! prints the advice and `kxdp run` logs it at start; kxdp never changes a
//! machine-wide setting itself (it changes only the interfaces it owns).
//!
//! Only one setting is checked today:
//!
//! - **Guest halt polling** (`haltpoll.guest_halt_poll_ns`). In a VM whose
//!   idle vCPUs halt at once (the haltpoll cpuidle driver with a zero poll
//!   window, as some cloud images boot), every frame a worker hands to a pod
//!   whose vCPU is idle costs a VM exit and an inter-processor interrupt to
//!   wake that vCPU. A kernel node runs the whole path on the sender's core
//!   and never pays it; a kxdp node pays it on each hand-off between the
//!   worker's core and the pods' cores. With a poll window the idle vCPU
//!   polls before it halts and sees the wake-up without an exit.

use std::fmt;
use std::path::{Path, PathBuf};

/// The guest halt-poll window kxdp recommends, in ns: the kernel's own
/// default (`GUEST_HALT_POLL_NS` in `drivers/cpuidle/cpuidle-haltpoll.c`).
pub const GUEST_HALT_POLL_NS: u64 = 200_000;

/// The guest halt-polling window's file (sysfs, ns), under the haltpoll
/// cpuidle driver.
pub const HALT_POLL_WINDOW: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";

/// One host setting that falls short, with what to set and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Advice {
    /// The setting (a sysfs path or a sysctl name).
    pub setting: String,
    /// Its value now.
    pub current: String,
    /// The value kxdp recommends.
    pub recommended: String,
    /// Why.
    pub reason: String,
    /// How to set it (a command; and how to keep it across reboots).
    pub how: String,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, recommended {}: {} (set it: {})",
            self.setting, self.current, self.recommended, self.reason, self.how
        )
    }
}

/// The host's settings as kxdp reads them, under `root` (`/` on a real
/// host; a directory of fake files in tests).
#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    /// The running host.
    pub fn running() -> Host {
        Host::at("/")
    }

    /// A host whose `/sys` and `/proc` are under `root`.
    pub fn at(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    fn read(&self, path: &str) -> Option<String> {
        let full = self.root.join(path.trim_start_matches('/'));
        std::fs::read_to_string(full)
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Every setting that falls short, with the advice; empty when the host
    /// is set up as kxdp needs (or the setting does not exist here, as on
    /// bare metal).
    pub fn advice(&self) -> Vec<Advice> {
        let mut advice = Vec::new();
        if let Some(a) = self.halt_polling() {
            advice.push(a);
        }
        advice
    }

    /// Guest halt polling: off (0) under the haltpoll cpuidle driver.
    fn halt_polling(&self) -> Option<Advice> {
        const DRIVER: &str = "/sys/devices/system/cpu/cpuidle/current_driver";
        if self.read(DRIVER)? != "haltpoll" {
            return None;
        }
        let current = self.read(HALT_POLL_WINDOW)?;
        let ns: u64 = current.parse().ok()?;
        if ns >= GUEST_HALT_POLL_NS {
            return None;
        }
        Some(Advice {
            setting: Path::new(HALT_POLL_WINDOW).display().to_string(),
            current,
            recommended: GUEST_HALT_POLL_NS.to_string(),
            reason: "this VM's idle vCPUs halt without polling first, so every frame a \
                     worker hands to a pod whose vCPU is idle costs a VM exit and an \
                     inter-processor interrupt (tens of µs per request/response round \
                     trip, see the README's benchmark section); with a poll window the \
                     idle vCPU sees the wake-up without an exit"
                .to_string(),
            how: format!(
                "echo {GUEST_HALT_POLL_NS} > {HALT_POLL_WINDOW}; at boot: \
                 haltpoll.guest_halt_poll_ns={GUEST_HALT_POLL_NS} on the kernel command line"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_dir::TestDir;

    fn fake_host(files: &[(&str, &str)]) -> (TestDir, Host) {
        let dir = TestDir::new("host");
        for (path, value) in files {
            let full = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, format!("{value}\n")).unwrap();
        }
        let host = Host::at(dir.path());
        (dir, host)
    }

    const DRIVER: &str = "/sys/devices/system/cpu/cpuidle/current_driver";
    const WINDOW: &str = HALT_POLL_WINDOW;

    #[test]
    fn a_guest_that_halts_without_polling_is_told_to_poll() {
        let (_dir, host) = fake_host(&[(DRIVER, "haltpoll"), (WINDOW, "0")]);
        let advice = host.advice();
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert_eq!(advice[0].setting, WINDOW);
        assert_eq!(advice[0].current, "0");
        assert_eq!(advice[0].recommended, "200000");
        assert!(advice[0].how.contains("echo 200000 >"), "{}", advice[0]);
        assert!(advice[0].to_string().contains("VM exit"));
    }

    #[test]
    fn a_guest_that_polls_long_enough_or_bare_metal_gets_no_advice() {
        let (_d1, polling) = fake_host(&[(DRIVER, "haltpoll"), (WINDOW, "200000")]);
        assert_eq!(polling.advice(), []);
        let (_d2, longer) = fake_host(&[(DRIVER, "haltpoll"), (WINDOW, "400000")]);
        assert_eq!(longer.advice(), []);
        let (_d3, metal) = fake_host(&[(DRIVER, "intel_idle"), (WINDOW, "0")]);
        assert_eq!(metal.advice(), []);
        let (_d4, nothing) = fake_host(&[]);
        assert_eq!(nothing.advice(), []);
    }

    #[test]
    fn a_short_window_is_advice_too_and_garbage_is_not() {
        let (_d1, short) = fake_host(&[(DRIVER, "haltpoll"), (WINDOW, "50000")]);
        assert_eq!(short.advice()[0].current, "50000");
        let (_d2, garbage) = fake_host(&[(DRIVER, "haltpoll"), (WINDOW, "lots")]);
        assert_eq!(garbage.advice(), []);
    }
}
