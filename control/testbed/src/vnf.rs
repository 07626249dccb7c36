//! VNF pods: a network function with two interfaces (as Multus gives a pod a
//! second network), for service chains' external hops.
//!
//! A VNF pod is a namespace `<prefix>f-<name>` on a node with two veth pairs
//! to it: `eth0` inside ↔ `v<name>-i` on the node (where kxdp sends chain
//! traffic into the VNF: the hop's `to_interface`) and `eth1` inside ↔
//! `v<name>-o` on the node (where it comes back: `from_interface`). Both
//! node-side ends are added to the node's kxdp configuration as pod-facing
//! interfaces without a pod, so kxdp binds AF_XDP sockets to them; frames
//! it sends into the VNF keep their addresses.
//!
//! The function itself is the kernel's: a `u32` filter that matches every
//! frame on the ingress of each inner interface, with a `mirred` action that
//! redirects it to the egress of the other, unchanged (frames that arrive on
//! `eth0` leave by `eth1`, and back). No addresses, no bridge, no routing:
//! what kxdp sends in comes out of the other interface exactly as it went
//! in, whatever its MACs, which is what a transparent (bump-in-the-wire)
//! firewall or IDS does. This kernel has `cls_u32` and `act_mirred` but not
//! `cls_matchall` or `cls_flower`, hence `u32 match u32 0 0`.
//!
//! [`VnfPod::kill`] takes the filters away: frames still reach the VNF and
//! die there, as with a crashed VNF process behind a live interface;
//! [`VnfPod::restore`] puts them back.

use kxdp_config::{FailurePolicy, FunctionSpec, MacAddr};

use super::error::{Result, TestbedError};
use super::netns::Netns;

/// Longest VNF pod name: `v<name>-i` must fit IFNAMSIZ-1 (15).
pub const MAX_VNF_NAME: usize = 12;
/// The VNF's interface traffic enters by (inside its namespace).
pub const VNF_IN_IF: &str = "eth0";
/// The VNF's interface traffic leaves by (inside its namespace).
pub const VNF_OUT_IF: &str = "eth1";

/// MAC kinds (the `KK` of `02:00:00:KK:NN:II`, see the topology module).
pub(crate) const MAC_VNF: u8 = 0x20;
pub(crate) const MAC_VNF_HOST: u8 = 0x21;

/// A VNF pod as built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VnfPod {
    /// Its name.
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// Its network namespace.
    pub netns: Netns,
    /// The node side of its input interface: the hop's `to_interface`.
    pub to_interface: String,
    /// The node side of its output interface: the hop's `from_interface`.
    pub from_interface: String,
    /// MAC of the node side of the input interface.
    pub to_mac: MacAddr,
    /// MAC of the node side of the output interface.
    pub from_mac: MacAddr,
}

/// Frames through a VNF pod, from its interfaces' counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnfTraffic {
    /// Frames kxdp sent into it (received on `eth0`).
    pub entered: u64,
    /// Frames it sent back on `eth1` (forward direction done).
    pub returned: u64,
    /// Frames received on `eth1` (return traffic of a symmetric chain).
    pub entered_reverse: u64,
    /// Frames it sent back on `eth0`.
    pub returned_reverse: u64,
}

impl VnfPod {
    /// The chain function that sends traffic through this VNF pod.
    pub fn external(&self, failure: FailurePolicy, timeout_ms: u64) -> FunctionSpec {
        FunctionSpec::External {
            to_interface: self.to_interface.clone(),
            from_interface: self.from_interface.clone(),
            failure,
            timeout_ms,
        }
    }

    /// Make it forward: each inner interface's ingress redirected to the
    /// other's egress. Idempotent.
    pub fn restore(&self) -> Result<()> {
        for (from, to) in [(VNF_IN_IF, VNF_OUT_IF), (VNF_OUT_IF, VNF_IN_IF)] {
            // Whatever was there goes first, so a restore never doubles a rule.
            self.remove_filters(from)?;
            self.netns.exec(
                "tc",
                &[
                    "filter", "add", "dev", from, "ingress", "protocol", "all", "prio", "1", "u32",
                    "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
                ],
            )?;
        }
        Ok(())
    }

    /// Stop it forwarding: frames still arrive, and go nowhere.
    pub fn kill(&self) -> Result<()> {
        for dev in [VNF_IN_IF, VNF_OUT_IF] {
            self.remove_filters(dev)?;
        }
        Ok(())
    }

    /// Whether it forwards (both redirect filters are in place).
    pub fn is_forwarding(&self) -> Result<bool> {
        let mut both = true;
        for (from, to) in [(VNF_IN_IF, VNF_OUT_IF), (VNF_OUT_IF, VNF_IN_IF)] {
            let shown = self
                .netns
                .exec("tc", &["filter", "show", "dev", from, "ingress"])?;
            both &= shown.contains(&format!("Egress Redirect to device {to}"));
        }
        Ok(both)
    }

    /// What went through it so far.
    pub fn traffic(&self) -> Result<VnfTraffic> {
        let (in_rx, in_tx) = link_packets(&self.netns, VNF_IN_IF)?;
        let (out_rx, out_tx) = link_packets(&self.netns, VNF_OUT_IF)?;
        Ok(VnfTraffic {
            entered: in_rx,
            returned: out_tx,
            entered_reverse: out_rx,
            returned_reverse: in_tx,
        })
    }

    fn remove_filters(&self, dev: &str) -> Result<()> {
        // `tc filter del` of an empty ingress is no error on this iproute2;
        // the clsact qdisc stays (and holds no filter).
        self.netns
            .exec("tc", &["filter", "del", "dev", dev, "ingress"])
            .map(drop)
    }
}

/// Packets received and transmitted by `dev` in `netns` (`ip -s link`).
pub(crate) fn link_packets(netns: &Netns, dev: &str) -> Result<(u64, u64)> {
    let json = netns.ip(&["-j", "-s", "link", "show", "dev", dev])?;
    let value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| TestbedError::Traffic(format!("bad `ip -j -s link` output {json:?}: {e}")))?;
    let stats = &value[0]["stats64"];
    let packets = |dir: &str| {
        stats[dir]["packets"]
            .as_u64()
            .ok_or_else(|| TestbedError::Traffic(format!("no {dir} packets of {dev} in {json:?}")))
    };
    Ok((packets("rx")?, packets("tx")?))
}

pub(crate) fn check_vnf_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let starts_alnum = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_chars || !starts_alnum || name.len() > MAX_VNF_NAME {
        return Err(TestbedError::Spec(format!(
            "VNF pod name {name:?}: use 1 to {MAX_VNF_NAME} characters of [a-z0-9-], starting with a letter or digit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnf_names_must_fit_interface_names() {
        assert!(check_vnf_name("kb-fw").is_ok());
        assert!(check_vnf_name("abcdefghijkl").is_ok());
        let long = check_vnf_name("abcdefghijklm").expect_err("13 characters");
        assert!(long.to_string().contains("1 to 12"), "{long}");
        assert!(check_vnf_name("-fw").is_err());
        assert!(check_vnf_name("FW").is_err());
        assert!(check_vnf_name("").is_err());
    }

    #[test]
    fn the_hop_names_both_node_side_interfaces() {
        let vnf = VnfPod {
            name: "kb-fw".into(),
            node: "n1".into(),
            netns: Netns::named("kx1-0-f-kb-fw"),
            to_interface: "vkb-fw-i".into(),
            from_interface: "vkb-fw-o".into(),
            to_mac: MacAddr([2, 0, 0, 0x21, 1, 0]),
            from_mac: MacAddr([2, 0, 0, 0x21, 1, 1]),
        };
        assert_eq!(
            vnf.external(FailurePolicy::FailOpen, 150),
            FunctionSpec::External {
                to_interface: "vkb-fw-i".into(),
                from_interface: "vkb-fw-o".into(),
                failure: FailurePolicy::FailOpen,
                timeout_ms: 150,
            }
        );
    }
}
