//! Host settings that kxdp depends on but does not own: each is read from
//! the running kernel and checked against what kxdp's workers need, and
//! where it falls short the advice says what to set and why. `kxdp check`
//! prints the advice and `kxdp run` logs it at start; kxdp never changes a
//! machine-wide setting itself (it changes only the interfaces it owns).
//!
//! Two settings are checked today:
//!
//! - **Guest halt polling** (`haltpoll.guest_halt_poll_ns`). In a VM whose
//!   idle vCPUs halt at once (the haltpoll cpuidle driver with a zero poll
//!   window, as some cloud images boot), every frame a worker hands to a pod
//!   whose vCPU is idle costs a VM exit and an inter-processor interrupt to
//!   wake that vCPU. A kernel node runs the whole path on the sender's core
//!   and never pays it; a kxdp node pays it on each hand-off between the
//!   worker's core and the pods' cores. With a poll window the idle vCPU
//!   polls before it halts and sees the wake-up without an exit.
//! - **A qdisc on the far end of a veth underlay** ([`underlay_advice`]).
//!   Where a node's underlay is a veth (a node in a container, a test
//!   bed), kxdp's XDP program on its end gives the veth a NAPI ring of 256
//!   frames, and a kernel sender on the other end that has no qdisc (a veth
//!   has none of its own) drops what does not fit instead of queueing it as
//!   a NIC's sender would: TCP from that side retransmits. kxdp owns only
//!   its own end; the other end's namespace may not even be visible from
//!   kxdp's, so the advice names the peer where it can and says what to
//!   run there.

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

/// What iproute2 (`ip -details -json link show`) says about an underlay
/// interface, as far as [`underlay_advice`] needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnderlayLink {
    /// The interface.
    pub name: String,
    /// Its link kind (`linkinfo.info_kind`: `veth`, `vxlan`, …); `None` for
    /// a NIC.
    pub kind: Option<String>,
    /// The other end of a veth, where it is in the same namespace: its
    /// name and qdisc. `None` where it lives in another namespace (the
    /// link has a `link_netnsid`) or could not be read.
    pub peer: Option<(String, String)>,
}

impl UnderlayLink {
    /// Read `ifname` with `ip -details -json link show`; `None` where the
    /// interface does not exist here or iproute2 cannot be run (the advice
    /// is then silent: a configuration may be checked away from its node).
    pub fn read(ifname: &str) -> Option<UnderlayLink> {
        let one = ip_json(&["-details", "-json", "link", "show", "dev", ifname])?;
        let all = ip_json(&["-json", "link", "show"]);
        UnderlayLink::parse(&one, all.as_deref())
    }

    /// From the JSON of `ip -details -json link show dev IF` (`one`) and,
    /// to find a peer in the same namespace, of `ip -json link show`
    /// (`all`). `None` for JSON that is not one link.
    pub fn parse(one: &str, all: Option<&str>) -> Option<UnderlayLink> {
        let links: Vec<serde_json::Value> = serde_json::from_str(one).ok()?;
        let [link] = links.as_slice() else {
            return None;
        };
        let name = link.get("ifname")?.as_str()?.to_string();
        let kind = link
            .get("linkinfo")
            .and_then(|i| i.get("info_kind"))
            .and_then(|k| k.as_str())
            .map(str::to_string);
        // iproute2 names a peer in the same namespace (`"link": "NAME"`)
        // and gives only the index of one elsewhere (`"link_index"`, with
        // `"link_netnsid"`).
        let same_namespace = link.get("link_netnsid").is_none();
        let by_name = link.get("link").and_then(|l| l.as_str());
        let by_index = link.get("link_index").and_then(|i| i.as_u64());
        let peer = if same_namespace && (by_name.is_some() || by_index.is_some()) {
            let all: Vec<serde_json::Value> = all.and_then(|a| serde_json::from_str(a).ok())?;
            all.iter()
                .find(|l| match by_name {
                    Some(peer) => l.get("ifname").and_then(|n| n.as_str()) == Some(peer),
                    None => l.get("ifindex").and_then(|i| i.as_u64()) == by_index,
                })
                .and_then(|peer| {
                    Some((
                        peer.get("ifname")?.as_str()?.to_string(),
                        peer.get("qdisc")?.as_str()?.to_string(),
                    ))
                })
        } else {
            None
        };
        Some(UnderlayLink { name, kind, peer })
    }
}

/// Run `ip` with `args` and return what it printed, `None` where it failed.
fn ip_json(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("ip").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Advice for a veth underlay whose other end may drop instead of queue:
/// none for a NIC, or for a veth whose peer (in this namespace) has a
/// qdisc.
pub fn underlay_advice(link: &UnderlayLink) -> Option<Advice> {
    if link.kind.as_deref() != Some("veth") {
        return None;
    }
    let (current, peer) = match &link.peer {
        Some((_, qdisc)) if qdisc != "noqueue" => return None,
        Some((peer, qdisc)) => (qdisc.clone(), peer.clone()),
        None => (
            "unknown here (the other end is in another network namespace)".to_string(),
            "<the other end>".to_string(),
        ),
    };
    Some(Advice {
        setting: format!(
            "the qdisc of the other end of the underlay veth {}",
            link.name
        ),
        current,
        recommended: "a queueing qdisc: the kernel's default (net.core.default_qdisc), or \
                      pfifo_fast"
            .to_string(),
        reason: format!(
            "kxdp's XDP program on {} gives the veth a NAPI ring of 256 frames; a kernel \
             sender on the other end with no qdisc (a veth has none of its own) drops a \
             burst that does not fit (its tx_dropped) instead of queueing it as a NIC's \
             sender would, and TCP from that side retransmits (0.14-0.67 % of segments \
             with cubic in kxdp-bench nut before its underlay had one)",
            link.name
        ),
        how: format!(
            "in the other end's network namespace: tc qdisc replace dev {peer} root pfifo_fast"
        ),
    })
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

    /// [`Host::advice`] and, for the node's underlay interface
    /// `underlay`, [`underlay_advice`]: what `kxdp check` prints and
    /// `kxdp run` logs.
    pub fn node_advice(&self, underlay: &str) -> Vec<Advice> {
        let mut advice = self.advice();
        advice.extend(
            UnderlayLink::read(underlay)
                .as_ref()
                .and_then(underlay_advice),
        );
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

    /// `ip -details -json link show dev ul0` for a veth whose peer is in
    /// another namespace (recorded on Linux 6.18, iproute2 6.x, trimmed).
    const VETH_OTHER_NS: &str = r#"[{"ifindex":2,"link_index":2,"ifname":"ul0","flags":["BROADCAST","UP"],"mtu":1500,"qdisc":"noqueue","link_netnsid":1,"linkinfo":{"info_kind":"veth"}}]"#;
    /// The same for a veth whose peer is in the same namespace: iproute2
    /// names it.
    const VETH_SAME_NS: &str = r#"[{"ifindex":7,"link":"ul0-peer","ifname":"ul0","qdisc":"noqueue","linkinfo":{"info_kind":"veth"}}]"#;
    const NIC: &str = r#"[{"ifindex":2,"ifname":"eth1","qdisc":"mq","parentbus":"pci"}]"#;

    fn all_links(peer_qdisc: &str) -> String {
        format!(
            r#"[{{"ifindex":7,"ifname":"ul0","qdisc":"noqueue"}},{{"ifindex":8,"ifname":"ul0-peer","qdisc":"{peer_qdisc}"}}]"#
        )
    }

    #[test]
    fn a_veth_underlay_whose_other_end_drops_is_told_to_queue() {
        let link = UnderlayLink::parse(VETH_SAME_NS, Some(&all_links("noqueue"))).unwrap();
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert_eq!(
            link.peer,
            Some(("ul0-peer".to_string(), "noqueue".to_string()))
        );
        let advice = underlay_advice(&link).unwrap();
        assert_eq!(advice.current, "noqueue");
        assert!(
            advice
                .how
                .contains("tc qdisc replace dev ul0-peer root pfifo_fast"),
            "{advice}"
        );
        assert!(advice.to_string().contains("tx_dropped"), "{advice}");
        // The other end in another namespace: advice, naming no peer.
        let other = UnderlayLink::parse(VETH_OTHER_NS, Some(&all_links("pfifo_fast"))).unwrap();
        assert_eq!(other.peer, None);
        let advice = underlay_advice(&other).unwrap();
        assert!(advice.current.starts_with("unknown"), "{advice}");
    }

    #[test]
    fn a_nic_or_a_veth_whose_other_end_queues_gets_no_underlay_advice() {
        let queued = UnderlayLink::parse(VETH_SAME_NS, Some(&all_links("pfifo_fast"))).unwrap();
        assert_eq!(underlay_advice(&queued), None);
        let nic = UnderlayLink::parse(NIC, None).unwrap();
        assert_eq!(nic.kind, None);
        assert_eq!(underlay_advice(&nic), None);
        assert_eq!(UnderlayLink::parse("[]", None), None);
        assert_eq!(UnderlayLink::parse("not json", None), None);
    }

    #[test]
    fn a_short_window_is_advice_too_and_garbage_is_not() {
        let (_d1, short) = fake_host(&[(DRIVER, "haltpoll"), (WINDOW, "50000")]);
        assert_eq!(short.advice()[0].current, "50000");
        let (_d2, garbage) = fake_host(&[(DRIVER, "haltpoll"), (WINDOW, "lots")]);
        assert_eq!(garbage.advice(), []);
    }
}
