//! The underlay next hop of each remote node, as the node's kernel
//! resolves it.
//!
//! A VXLAN frame kxdp sends to a remote node goes out of the underlay
//! interface to the MAC of the next hop towards that node's VTEP: the
//! node's own NIC on a shared segment, a router's otherwise. A remote
//! node's `underlay_mac` says it; without one, kxdp used its `vtep_mac`,
//! which is right for a kxdp peer on the same segment (its VTEP MAC is its
//! underlay NIC's) and wrong for a Flannel node (whose VTEP MAC is its
//! `flannel.1` device's: the peer's NIC discards every frame) and for a
//! peer behind a router. The kernel of kxdp's own node knows the answer:
//! kxdp's XDP program passes ARP (everything but VXLAN) to it, so its
//! neighbour table holds the next hops it talks to.
//!
//! [`UnderlayResolver`] is a thread that looks the next hops of the remote
//! nodes without an `underlay_mac` up in the kernel (`ip route get`, the
//! neighbour table), asks the kernel to resolve one it does not know yet
//! (one empty UDP datagram to the next hop's discard port, which makes the
//! kernel ARP for it), and hands what differs from the nodes' `vtep_mac`
//! to the store ([`DesiredStateStore::set_resolved_underlay`]), which
//! compiles the tables with it. A MAC once learned is kept when the
//! kernel's entry ages out (kxdp's frames never refresh it: they do not go
//! through the kernel) and replaced when the kernel learns another. A
//! remote node with an `underlay_mac` is left alone; one never resolved
//! keeps `vtep_mac`, as before.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kxdp_config::MacAddr;
use serde::Deserialize;

use crate::api::DesiredStateStore;

/// How often the resolver looks while a next hop is unresolved.
const UNRESOLVED_INTERVAL: Duration = Duration::from_secs(1);
/// How often it looks again once every next hop is known (a node's NIC
/// or a router may be replaced).
const RESOLVED_INTERVAL: Duration = Duration::from_secs(10);
/// How long a route lookup (which next hop serves a VTEP) is kept.
const ROUTE_TTL: Duration = Duration::from_secs(60);
/// The discard port (RFC 863): what the kernel sends there to make it
/// resolve a next hop is answered, at most, by a port unreachable.
const DISCARD_PORT: u16 = 9;

/// The resolver thread; stopped and joined on drop.
#[derive(Debug)]
pub struct UnderlayResolver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UnderlayResolver {
    /// Resolve, from now on, the next hops out of `underlay` (the node's
    /// underlay interface) for the remote nodes of `store`'s desired state.
    pub fn start(
        store: Arc<DesiredStateStore>,
        underlay: String,
    ) -> std::io::Result<UnderlayResolver> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("kxdp-neighbours".into())
            .spawn(move || run(&store, &underlay, &flag))?;
        Ok(UnderlayResolver {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UnderlayResolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(store: &DesiredStateStore, underlay: &str, stop: &AtomicBool) {
    let mut routes: HashMap<Ipv4Addr, (Option<Ipv4Addr>, Instant)> = HashMap::new();
    // The last MAC seen for each VTEP's next hop. Kept when the kernel's
    // entry goes: nothing of kxdp's traffic goes through the kernel's
    // neighbour, so it ages out (stale, then collected) while the next
    // hop is as good as before; it is asked for again then, and a new MAC
    // replaces the old one when the kernel learns it.
    let mut known: BTreeMap<Ipv4Addr, MacAddr> = BTreeMap::new();
    let mut told: BTreeMap<Ipv4Addr, MacAddr> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let state = store.snapshot();
        let wanted: Vec<(&str, Ipv4Addr, MacAddr)> = state
            .config
            .remote_nodes
            .iter()
            .filter(|n| n.underlay_mac.is_none())
            .map(|n| (n.name.as_str(), n.vtep_ip, n.vtep_mac))
            .collect();
        known.retain(|vtep, _| wanted.iter().any(|w| w.1 == *vtep));
        let table = if wanted.is_empty() {
            HashMap::new()
        } else {
            neighbour_table(underlay)
        };
        let mut resolved = BTreeMap::new();
        let mut unresolved = false;
        for &(node, vtep, vtep_mac) in &wanted {
            let hop = match routes.get(&vtep) {
                Some(&(hop, at)) if at.elapsed() < ROUTE_TTL => hop,
                _ => {
                    let hop = next_hop(vtep, underlay);
                    routes.insert(vtep, (hop, Instant::now()));
                    hop
                }
            };
            // A VTEP not routed out of the underlay: nothing to resolve.
            let Some(hop) = hop else { continue };
            match table.get(&hop) {
                Some(&mac) => {
                    if known.insert(vtep, mac) != Some(mac) {
                        tracing::info!(
                            node,
                            vtep = %vtep,
                            next_hop = %hop,
                            mac = %mac,
                            "underlay next hop resolved (the outer destination MAC of this node's VXLAN frames)"
                        );
                    }
                }
                None => {
                    unresolved |= !known.contains_key(&vtep);
                    ask_kernel_to_resolve(hop);
                }
            }
            if let Some(&mac) = known.get(&vtep).filter(|&&mac| mac != vtep_mac) {
                resolved.insert(vtep, mac);
            }
        }
        if resolved != told {
            match store.set_resolved_underlay(resolved.clone()) {
                Ok(_) => told = resolved,
                Err(e) => tracing::warn!(
                    error = %e,
                    "compiling the tables with the resolved underlay next hops"
                ),
            }
        }
        let wait = if unresolved {
            UNRESOLVED_INTERVAL
        } else {
            RESOLVED_INTERVAL
        };
        let until = Instant::now() + wait;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The next hop out of `underlay` towards `vtep` (the VTEP itself on the
/// same segment, else the gateway), from the kernel's routes.
fn next_hop(vtep: Ipv4Addr, underlay: &str) -> Option<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-j", "-4", "route", "get"])
        .arg(vtep.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_route_get(&out.stdout, vtep, underlay)
}

#[derive(Deserialize)]
struct RouteEntry {
    dev: Option<String>,
    gateway: Option<Ipv4Addr>,
}

fn parse_route_get(json: &[u8], vtep: Ipv4Addr, underlay: &str) -> Option<Ipv4Addr> {
    let routes: Vec<RouteEntry> = serde_json::from_slice(json).ok()?;
    let route = routes.first()?;
    if route.dev.as_deref() != Some(underlay) {
        return None;
    }
    Some(route.gateway.unwrap_or(vtep))
}

/// The usable IPv4 neighbours of `underlay`: address → MAC.
fn neighbour_table(underlay: &str) -> HashMap<Ipv4Addr, MacAddr> {
    Command::new("ip")
        .args(["-j", "-4", "neigh", "show", "dev", underlay])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| parse_neighbours(&o.stdout))
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct NeighbourEntry {
    dst: Ipv4Addr,
    lladdr: Option<String>,
    #[serde(default)]
    state: Vec<String>,
}

fn parse_neighbours(json: &[u8]) -> HashMap<Ipv4Addr, MacAddr> {
    let entries: Vec<NeighbourEntry> = serde_json::from_slice(json).unwrap_or_default();
    entries
        .into_iter()
        .filter(|e| {
            !e.state
                .iter()
                .any(|s| s == "FAILED" || s == "INCOMPLETE" || s == "NONE")
        })
        .filter_map(|e| Some((e.dst, e.lladdr?.parse().ok()?)))
        .collect()
}

/// Make the kernel resolve `hop`: one empty UDP datagram to its discard
/// port (the kernel sends ARP for it first). Best effort.
fn ask_kernel_to_resolve(hop: Ipv4Addr) {
    if let Ok(socket) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) {
        let _ = socket.send_to(&[], (hop, DISCARD_PORT));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_next_hop_is_the_vtep_on_its_segment_and_the_gateway_beyond() {
        let vtep = Ipv4Addr::new(192, 168, 100, 2);
        let direct = br#"[{"dst":"192.168.100.2","dev":"ul0","prefsrc":"192.168.100.1","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(parse_route_get(direct, vtep, "ul0"), Some(vtep));
        let routed = br#"[{"dst":"192.168.100.2","gateway":"10.0.0.1","dev":"ul0","prefsrc":"10.0.0.5","flags":[],"uid":0,"cache":[]}]"#;
        assert_eq!(
            parse_route_get(routed, vtep, "ul0"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        // Out of another interface, or nonsense: not the underlay's to resolve.
        assert_eq!(parse_route_get(direct, vtep, "eth1"), None);
        assert_eq!(parse_route_get(b"garbage", vtep, "ul0"), None);
        assert_eq!(parse_route_get(b"[]", vtep, "ul0"), None);
    }

    #[test]
    fn only_resolved_neighbours_count() {
        let json = br#"[
            {"dst":"192.168.100.2","lladdr":"02:00:00:02:02:00","state":["REACHABLE"]},
            {"dst":"192.168.100.3","lladdr":"02:00:00:03:03:00","state":["STALE"]},
            {"dst":"192.168.100.4","state":["FAILED"]},
            {"dst":"192.168.100.5","state":["INCOMPLETE"]},
            {"dst":"192.168.100.6","lladdr":"02:00:00:06:06:00","state":["PERMANENT"]}
        ]"#;
        let table = parse_neighbours(json);
        assert_eq!(table.len(), 3);
        assert_eq!(
            table[&Ipv4Addr::new(192, 168, 100, 2)].to_string(),
            "02:00:00:02:02:00"
        );
        assert!(table.contains_key(&Ipv4Addr::new(192, 168, 100, 3)));
        assert!(!table.contains_key(&Ipv4Addr::new(192, 168, 100, 4)));
        assert!(parse_neighbours(b"not json").is_empty());
    }
}
