//! The CNI operations, each a sequence of the other modules' steps:
//!
//! - ADD: kxdp's worker count (`GetStatus`), an address from IPAM, the
//!   veth (one queue per worker) wired into the container, then one delta
//!   `Apply` that registers the interface and the pod. A failure after
//!   IPAM undoes what was done (the veth, the allocation).
//! - DEL: the pod (when it is still this container's) and the interface
//!   leave kxdp, the veth is deleted, the address released. Every step
//!   tolerates finding nothing, so DEL is idempotent; kxdp not running
//!   (its socket gone) counts as nothing to delete there.
//! - CHECK: kxdp's pod and interface, the host end, and the container's
//!   interface, addresses and routes against `prevResult`; then IPAM's CHECK.
//! - STATUS: kxdp answers `GetStatus` (else 50, not available).
//! - VERSION: the supported versions.
//! - GC: accepted and does nothing (DEL already removes everything).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::config::{version_info, NetConf, NAMESPACE_TENANT_LABEL, TENANT_ARG};
use crate::env::{Command, Invocation};
use crate::error::{CniError, ErrorCode};
use crate::ipam::Ipam;
use crate::kxdp::{self, proto, Kxdp, KxdpError, Registration};
use crate::link::{self, PodAddresses, Tools, Veth};
use crate::naming;
use crate::result::{CniResult, Interface, IpConfig, Route};

/// The CNI args key of a MAC for the container's interface (as in CNI's
/// conventions).
const MAC_ARG: &str = "MAC";

/// Run the invocation with `stdin`: the JSON to print on success, if any.
pub fn run(invocation: &Invocation, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if invocation.command == Command::Version {
        let requested: Option<String> = serde_json::from_slice::<Value>(stdin).ok().and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(String::from)
        });
        return Ok(Some(version_info(requested.as_deref())));
    }
    let conf = NetConf::parse(stdin)?;
    let call = Call {
        invocation,
        conf: &conf,
        stdin,
    };
    match invocation.command {
        Command::Add => call.add().map(Some),
        Command::Del => call.del().map(|()| None),
        Command::Check => call.check().map(|()| None),
        Command::Status => call.status().map(|()| None),
        Command::Gc | Command::Version => Ok(None),
    }
}

/// The node's host name (`/proc/sys/kernel/hostname`), for the default
/// API socket path.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

struct Call<'a> {
    invocation: &'a Invocation,
    conf: &'a NetConf,
    stdin: &'a [u8],
}

impl Call<'_> {
    fn api_socket(&self) -> Result<PathBuf, CniError> {
        self.conf.api_socket(hostname).ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                "cannot tell where kxdp's API socket is",
                "set \"api_socket\" (or \"node\") in the network configuration",
            )
        })
    }

    /// Run `f` where the node's links are: in `node_netns` when the
    /// configuration names one, else here.
    fn on_node<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, CniError> + Send,
    ) -> Result<T, CniError> {
        let Some(netns) = &self.conf.node_netns else {
            return f();
        };
        // A bare name is one of `ip netns`'s (/run/netns/NAME).
        let path = if netns.components().count() == 1 && !netns.is_absolute() {
            Path::new("/run/netns").join(netns)
        } else {
            netns.clone()
        };
        if !path.exists() {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("node_netns: no network namespace {}", path.display()),
                "node_netns names the network namespace the node's kxdp runs in: a name \
                 (in /run/netns) or a path",
            ));
        }
        link::in_netns(&path, f)
    }

    fn connect(&self) -> Result<Kxdp, CniError> {
        Kxdp::connect(&self.api_socket()?).map_err(|e| e.to_cni())
    }

    /// The pod's kxdp name and its namespace.
    fn pod_name(&self, container_id: &str) -> (String, String) {
        let args = &self.invocation.args;
        naming::pod_name(
            args.get("K8S_POD_NAMESPACE"),
            args.get("K8S_POD_NAME"),
            container_id,
        )
    }

    /// The pod's tenant: the CNI args', else its namespace's
    /// `kxdp.io/tenant` label as kxdp has it from the Kubernetes agent,
    /// else the network's.
    fn tenant(&self, kxdp: &mut Kxdp) -> Result<String, CniError> {
        let args = &self.invocation.args;
        let labelled = match args.get("K8S_POD_NAMESPACE") {
            Some(ns) if args.get(TENANT_ARG).is_none() => kxdp
                .namespace(ns)
                .map_err(|e| e.to_cni().context("reading the pod's namespace"))?
                .and_then(|n| n.labels.get(NAMESPACE_TENANT_LABEL).cloned()),
            _ => None,
        };
        Ok(self.conf.tenant(args, labelled.as_deref()).to_string())
    }

    fn add(&self) -> Result<Value, CniError> {
        let inv = self.invocation;
        let container_id = inv.require_container_id()?;
        let ifname = inv.require_ifname()?;
        let netns = inv.require_netns()?;
        if self.conf.prev_result.is_some() {
            return Err(CniError::new(
                ErrorCode::UnsupportedField,
                "prevResult is not supported on ADD",
                "kxdp-cni creates the container's interface: make it the first plugin of the list",
            ));
        }
        let tools = Tools::find()?;
        let mut kxdp = self.connect()?;
        let workers = kxdp.status().map_err(|e| e.to_cni())?.workers.max(1);
        let tenant = self.tenant(&mut kxdp)?;
        let ipam_stdin = self.conf.ipam_stdin_for(self.stdin, &tenant)?;
        let ipam = Ipam::new(self.conf, &ipam_stdin, &inv.path)?;
        let allocated = ipam.add()?;
        let host = naming::host_ifname(container_id, ifname);
        let mut created = false;
        let outcome = self.wire_and_register(
            &tools,
            &mut kxdp,
            (&tenant, &allocated),
            (container_id, ifname, netns, &host),
            workers,
            &mut created,
        );
        if outcome.is_err() {
            // Undo: the veth (its pod end goes with it) and the address.
            // kxdp's Apply is all or nothing, so a failed one left nothing.
            if created {
                let _ = self.on_node(|| link::delete_link(&tools, &host));
            }
            let _ = ipam.del();
        }
        outcome
    }

    fn wire_and_register(
        &self,
        tools: &Tools,
        kxdp: &mut Kxdp,
        (tenant, allocated): (&str, &CniResult),
        (container_id, ifname, netns, host): (&str, &str, &Path, &str),
        workers: u32,
        created: &mut bool,
    ) -> Result<Value, CniError> {
        let addresses = pod_addresses(allocated);
        let first = addresses
            .v4
            .map(IpAddr::V4)
            .or(addresses.v6.map(IpAddr::V6))
            .ok_or_else(|| {
                CniError::msg(ErrorCode::InvalidNetworkConfig, "IPAM returned no address")
            })?;
        let pod_mac = match self
            .conf
            .runtime_config
            .mac
            .as_deref()
            .or(self.invocation.args.get(MAC_ARG))
        {
            Some(mac) => naming::parse_mac(mac, "the container's MAC (runtimeConfig.mac or MAC)")?,
            None => naming::pod_mac(first),
        };
        let host_mac = naming::host_mac(container_id, ifname);
        let mtu = self.conf.mtu();
        // A leftover of an earlier, interrupted ADD of this container.
        self.on_node(|| link::delete_link(tools, host))?;
        *created = true;
        let veth = Veth {
            host,
            host_mac: &host_mac,
            pod: ifname,
            pod_mac: &pod_mac,
            netns,
            mtu,
            queues: workers,
        };
        self.on_node(|| link::create_veth(tools, &veth))?;
        link::configure_pod(tools, netns, ifname, &addresses)?;
        let (pod, namespace) = self.pod_name(container_id);
        let registration = Registration {
            pod,
            namespace,
            tenant: tenant.to_string(),
            ip: first.to_string(),
            ipv6: addresses.v4.and(addresses.v6).map(|v6| v6.to_string()),
            pod_mac: pod_mac.clone(),
            interface: host.to_string(),
            interface_mac: host_mac.clone(),
            queues: workers,
            mtu: u32::from(mtu),
            container_id: container_id.to_string(),
        };
        kxdp.apply(kxdp::register_request(&registration))
            .map_err(|e| e.to_cni().context("registering the pod"))?;
        let result = add_result(
            (host, &host_mac),
            (ifname, &pod_mac, netns),
            mtu,
            &addresses,
            allocated.dns.clone(),
        );
        Ok(result.to_json(&self.conf.cni_version))
    }

    fn del(&self) -> Result<(), CniError> {
        let inv = self.invocation;
        let container_id = inv.require_container_id()?;
        let ifname = inv.require_ifname()?;
        let host = naming::host_ifname(container_id, ifname);
        let (pod, _) = self.pod_name(container_id);
        // Every step runs even when an earlier one failed; the first error
        // is reported (the runtime retries DEL, whose done steps are no-ops).
        let mut first_error: Option<CniError> = None;
        let mut keep = |r: Result<(), CniError>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        keep(self.unregister(container_id, &pod, &host));
        keep(
            Tools::find()
                .and_then(|tools| self.on_node(|| link::delete_link(&tools, &host).map(drop))),
        );
        if self.conf.ipam.is_some() {
            keep(Ipam::new(self.conf, self.stdin, &inv.path).and_then(|ipam| ipam.del()));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Remove the pod (when it is still this container's) and the interface
    /// from kxdp; nothing to do when kxdp is not running.
    fn unregister(&self, container_id: &str, pod: &str, host: &str) -> Result<(), CniError> {
        let Ok(socket) = self.api_socket() else {
            return Ok(());
        };
        let mut kxdp = match Kxdp::connect(&socket) {
            Ok(kxdp) => kxdp,
            // kxdp removes its socket when it stops, and its desired state
            // with it: there is nothing to delete.
            Err(KxdpError::NotRunning(_)) => return Ok(()),
            Err(e) => return Err(e.to_cni().context("removing the pod")),
        };
        let ours = kxdp
            .pod(pod)
            .map_err(|e| e.to_cni())?
            .filter(|p| kxdp::pod_is_ours(p, container_id, host))
            .map(|_| pod);
        kxdp.apply(kxdp::unregister_request(ours, host))
            .map(drop)
            .map_err(|e| e.to_cni().context("removing the pod"))
    }

    fn check(&self) -> Result<(), CniError> {
        let inv = self.invocation;
        let container_id = inv.require_container_id()?;
        let ifname = inv.require_ifname()?;
        let netns = inv.require_netns()?;
        let host = naming::host_ifname(container_id, ifname);
        let (pod_name, _) = self.pod_name(container_id);
        let previous = self
            .conf
            .prev_result
            .as_ref()
            .map(|v| CniResult::parse(v, "prevResult"))
            .transpose()?;
        let tools = Tools::find()?;
        let mut kxdp = self.connect()?;
        let pod = kxdp.pod(&pod_name).map_err(|e| e.to_cni())?;
        let Some(pod) = pod else {
            return Err(CniError::new(
                ErrorCode::UnknownContainer,
                format!("kxdp has no pod {pod_name}"),
                format!("container {container_id}"),
            ));
        };
        let observed = Observed {
            interface: kxdp.interface(&host).map_err(|e| e.to_cni())?,
            host_link: self.on_node(|| link::show_link(&tools, &host, None))?,
            pod_link: link::show_link(&tools, ifname, Some(netns))?,
            pod_side: link::show_pod_side(&tools, netns, ifname).ok(),
            pod,
        };
        let expected = Expected {
            container_id,
            host: &host,
            mtu: self.conf.mtu(),
            ips: match &previous {
                Some(result) => sandbox_ips(result, ifname),
                None => Vec::new(),
            },
        };
        let problems = check_attachment(&expected, &observed);
        if !problems.is_empty() {
            return Err(CniError::new(
                ErrorCode::CheckFailed,
                format!("container {container_id} is not attached as ADD left it"),
                problems.join("; "),
            ));
        }
        if self.conf.ipam.is_some() {
            Ipam::new(self.conf, self.stdin, &inv.path)?.check()?;
        }
        Ok(())
    }

    fn status(&self) -> Result<(), CniError> {
        let not_ready = |e: KxdpError| {
            CniError::new(
                ErrorCode::PluginNotAvailable,
                "kxdp is not ready",
                e.to_string(),
            )
        };
        let socket = self.api_socket()?;
        let mut kxdp = Kxdp::connect(&socket).map_err(not_ready)?;
        kxdp.status().map_err(not_ready)?;
        Ok(())
    }
}

/// The addresses to configure from IPAM's result: the first of each
/// family, with its gateway (the first host address of its subnet when
/// IPAM named none). kxdp answers ARP / neighbour solicitation for its
/// gateway in the pod's tenant, which is this same first address unless
/// the node's configuration says otherwise.
pub fn pod_addresses(allocated: &CniResult) -> PodAddresses {
    let (v4, v6) = allocated.first_of_each_family();
    let mut addresses = PodAddresses::default();
    if let Some(ip) = v4 {
        if let IpNetwork::V4(net) = ip.address {
            addresses.v4 = Some(net.ip());
            addresses.gateway4 = match ip.gateway {
                Some(IpAddr::V4(gw)) => Some(gw),
                _ => Some(Ipv4Addr::from(u32::from(net.network()).wrapping_add(1))),
            };
        }
    }
    if let Some(ip) = v6 {
        if let IpNetwork::V6(net) = ip.address {
            addresses.v6 = Some(net.ip());
            addresses.gateway6 = match ip.gateway {
                Some(IpAddr::V6(gw)) => Some(gw),
                _ => Some(Ipv6Addr::from(u128::from(net.network()).wrapping_add(1))),
            };
        }
    }
    addresses
}

/// ADD's result: the host end, the container's end (index 1), its /32
/// and /128 with their gateways, default routes through them, IPAM's DNS.
pub fn add_result(
    (host, host_mac): (&str, &str),
    (ifname, pod_mac, netns): (&str, &str, &Path),
    mtu: u16,
    addresses: &PodAddresses,
    dns: Option<Value>,
) -> CniResult {
    let mut result = CniResult {
        interfaces: vec![
            Interface {
                name: host.to_string(),
                mac: host_mac.to_string(),
                mtu: Some(mtu),
                sandbox: None,
            },
            Interface {
                name: ifname.to_string(),
                mac: pod_mac.to_string(),
                mtu: Some(mtu),
                sandbox: Some(netns.display().to_string()),
            },
        ],
        dns,
        ..CniResult::default()
    };
    if let Some(v4) = addresses.v4 {
        result.ips.push(IpConfig {
            address: IpNetwork::from(IpAddr::V4(v4)),
            gateway: addresses.gateway4.map(IpAddr::V4),
            interface: Some(1),
        });
        result.routes.extend(
            addresses
                .gateway4
                .and_then(|gw| default_route(IpAddr::V4(gw))),
        );
    }
    if let Some(v6) = addresses.v6 {
        result.ips.push(IpConfig {
            address: IpNetwork::from(IpAddr::V6(v6)),
            gateway: addresses.gateway6.map(IpAddr::V6),
            interface: Some(1),
        });
        result.routes.extend(
            addresses
                .gateway6
                .and_then(|gw| default_route(IpAddr::V6(gw))),
        );
    }
    result
}

/// The default route of `gateway`'s family through it.
fn default_route(gateway: IpAddr) -> Option<Route> {
    let unspecified = match gateway {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    Some(Route {
        dst: IpNetwork::new(unspecified, 0).ok()?,
        gw: Some(gateway),
    })
}

/// The addresses of `result` on the container's interface `ifname`.
fn sandbox_ips(result: &CniResult, ifname: &str) -> Vec<IpConfig> {
    result
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            Some(index) => result
                .interfaces
                .get(index)
                .is_some_and(|i| i.name == ifname && i.sandbox.is_some()),
            None => true,
        })
        .cloned()
        .collect()
}

/// What CHECK expects.
#[derive(Debug)]
pub struct Expected<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// The host end's name.
    pub host: &'a str,
    /// The MTU of both ends.
    pub mtu: u16,
    /// The container's addresses (from `prevResult`; none when absent).
    pub ips: Vec<IpConfig>,
}

/// What CHECK found.
#[derive(Debug)]
pub struct Observed {
    /// kxdp's pod.
    pub pod: proto::Pod,
    /// kxdp's interface.
    pub interface: Option<proto::Interface>,
    /// `ip -j -d link show` of the host end.
    pub host_link: Option<Value>,
    /// `ip -j -d link show` of the container's end.
    pub pod_link: Option<Value>,
    /// The container's addresses and IPv4 and IPv6 routes.
    pub pod_side: Option<(Value, Value, Value)>,
}

/// Everything that differs from what ADD left; empty when all is well.
pub fn check_attachment(expected: &Expected<'_>, observed: &Observed) -> Vec<String> {
    let mut problems = Vec::new();
    let pod = &observed.pod;
    if pod.container_id.as_deref() != Some(expected.container_id) {
        problems.push(format!(
            "kxdp's pod {} belongs to container {:?}",
            pod.name,
            pod.container_id.as_deref().unwrap_or("(none)")
        ));
    }
    if pod.interface != expected.host {
        problems.push(format!(
            "kxdp's pod {} is on interface {}, not {}",
            pod.name, pod.interface, expected.host
        ));
    }
    let link_str =
        |link: &Value, key: &str| link.get(key).and_then(Value::as_str).map(str::to_string);
    let link_u64 = |link: &Value, key: &str| link.get(key).and_then(Value::as_u64);
    match (&observed.interface, &observed.host_link) {
        (None, _) => problems.push(format!("kxdp has no interface {}", expected.host)),
        (_, None) => problems.push(format!("interface {} does not exist", expected.host)),
        (Some(interface), Some(link)) => {
            if link_str(link, "address").as_deref() != Some(interface.mac.as_str()) {
                problems.push(format!(
                    "{} has MAC {:?}, kxdp expects {}",
                    expected.host,
                    link_str(link, "address"),
                    interface.mac
                ));
            }
            if link_u64(link, "num_rx_queues") != Some(u64::from(interface.queues)) {
                problems.push(format!(
                    "{} has {:?} queues, kxdp expects {}",
                    expected.host,
                    link_u64(link, "num_rx_queues"),
                    interface.queues
                ));
            }
        }
    }
    match &observed.pod_link {
        None => problems.push("the container's interface does not exist".to_string()),
        Some(link) => {
            if link_str(link, "address").as_deref() != Some(pod.mac.as_str()) {
                problems.push(format!(
                    "the container's interface has MAC {:?}, kxdp expects {}",
                    link_str(link, "address"),
                    pod.mac
                ));
            }
            if link_u64(link, "mtu") != Some(u64::from(expected.mtu)) {
                problems.push(format!(
                    "the container's interface has MTU {:?}, not {}",
                    link_u64(link, "mtu"),
                    expected.mtu
                ));
            }
        }
    }
    let kxdp_ips: Vec<String> = std::iter::once(pod.ip.clone())
        .chain(pod.ipv6.clone())
        .collect();
    for ip in &expected.ips {
        let address = ip.address.ip();
        if !kxdp_ips.contains(&address.to_string()) {
            problems.push(format!(
                "kxdp's pod {} does not have address {address}",
                pod.name
            ));
        }
        let Some((addrs, routes4, routes6)) = &observed.pod_side else {
            continue;
        };
        if !link::has_address(addrs, address, ip.address.prefix()) {
            problems.push(format!("the container's interface lacks {}", ip.address));
        }
        if let Some(gw) = ip.gateway {
            let routes = if gw.is_ipv4() { routes4 } else { routes6 };
            if !link::has_default_via(routes, gw) {
                problems.push(format!("the container has no default route via {gw}"));
            }
        }
    }
    if observed.pod_side.is_none() && !expected.ips.is_empty() {
        problems.push("cannot read the container's addresses and routes".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn allocated(json: Value) -> CniResult {
        CniResult::parse(&json, "ipam").unwrap()
    }

    #[test]
    fn addresses_take_ipams_gateway_or_the_first_host() {
        let a = pod_addresses(&allocated(json!({"ips": [
            {"address": "10.244.1.5/24", "gateway": "10.244.1.1"},
            {"address": "fd00:10:244:1::5/64"}
        ]})));
        assert_eq!(a.v4, Some(Ipv4Addr::new(10, 244, 1, 5)));
        assert_eq!(a.gateway4, Some(Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(a.v6, Some("fd00:10:244:1::5".parse().unwrap()));
        assert_eq!(a.gateway6, Some("fd00:10:244:1::1".parse().unwrap()));
        let a = pod_addresses(&allocated(json!({"ips": [{"address": "10.9.8.7/16"}]})));
        assert_eq!(a.gateway4, Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(a.v6, None);
    }

    #[test]
    fn add_result_is_the_wired_pod() {
        let addresses = pod_addresses(&allocated(json!({"ips": [
            {"address": "10.244.1.5/24", "gateway": "10.244.1.1"},
            {"address": "fd00::5/64", "gateway": "fd00::1"}
        ]})));
        let result = add_result(
            ("kx0123456789a", "0e:01:02:03:04:05"),
            ("eth0", "0a:58:0a:f4:01:05", Path::new("/run/netns/cni-1")),
            1450,
            &addresses,
            Some(json!({"nameservers": ["10.96.0.10"]})),
        );
        assert_eq!(
            result.to_json("1.0.0"),
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "kx0123456789a", "mac": "0e:01:02:03:04:05"},
                    {"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/run/netns/cni-1"}
                ],
                "ips": [
                    {"address": "10.244.1.5/32", "gateway": "10.244.1.1", "interface": 1},
                    {"address": "fd00::5/128", "gateway": "fd00::1", "interface": 1}
                ],
                "routes": [
                    {"dst": "0.0.0.0/0", "gw": "10.244.1.1"},
                    {"dst": "::/0", "gw": "fd00::1"}
                ],
                "dns": {"nameservers": ["10.96.0.10"]}
            })
        );
        assert_eq!(sandbox_ips(&result, "eth0").len(), 2);
        assert!(sandbox_ips(&result, "net1").is_empty());
    }

    fn healthy() -> (Expected<'static>, Observed) {
        let previous = add_result(
            ("kx0123456789a", "0e:01:02:03:04:05"),
            ("eth0", "0a:58:0a:f4:01:05", Path::new("/run/netns/cni-1")),
            1450,
            &PodAddresses {
                v4: Some(Ipv4Addr::new(10, 244, 1, 5)),
                gateway4: Some(Ipv4Addr::new(10, 244, 1, 1)),
                ..PodAddresses::default()
            },
            None,
        );
        let expected = Expected {
            container_id: "0123456789abcdef",
            host: "kx0123456789a",
            mtu: 1450,
            ips: sandbox_ips(&previous, "eth0"),
        };
        let observed = Observed {
            pod: proto::Pod {
                name: "web/front-1".into(),
                tenant: "default".into(),
                ip: "10.244.1.5".into(),
                mac: "0a:58:0a:f4:01:05".into(),
                interface: "kx0123456789a".into(),
                namespace: "web".into(),
                container_id: Some("0123456789abcdef".into()),
                ..Default::default()
            },
            interface: Some(proto::Interface {
                name: "kx0123456789a".into(),
                mac: "0e:01:02:03:04:05".into(),
                queues: 2,
                mtu: Some(1450),
                ..Default::default()
            }),
            host_link: Some(
                json!({"ifname": "kx0123456789a", "address": "0e:01:02:03:04:05",
                                   "mtu": 1450, "num_tx_queues": 2, "num_rx_queues": 2}),
            ),
            pod_link: Some(json!({"ifname": "eth0", "address": "0a:58:0a:f4:01:05", "mtu": 1450})),
            pod_side: Some((
                json!([{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.244.1.5", "prefixlen": 32}]}]),
                json!([{"dst": "default", "gateway": "10.244.1.1", "flags": ["onlink"]}]),
                json!([]),
            )),
        };
        (expected, observed)
    }

    #[test]
    fn check_passes_a_healthy_attachment() {
        let (expected, observed) = healthy();
        assert_eq!(check_attachment(&expected, &observed), Vec::<String>::new());
    }

    #[test]
    fn check_names_each_difference() {
        type Breakage = fn(&mut Observed);
        let cases: [(&str, Breakage); 8] = [
            ("belongs to container", |o| {
                o.pod.container_id = Some("other".into())
            }),
            ("is on interface", |o| o.pod.interface = "kxother".into()),
            ("kxdp has no interface", |o| o.interface = None),
            ("does not exist", |o| o.host_link = None),
            ("queues", |o| o.interface.as_mut().unwrap().queues = 4),
            ("has MAC", |o| o.pod.mac = "0a:58:00:00:00:01".into()),
            ("lacks 10.244.1.5/32", |o| {
                o.pod_side.as_mut().unwrap().0 = json!([]);
            }),
            ("no default route", |o| {
                o.pod_side.as_mut().unwrap().1 = json!([]);
            }),
        ];
        for (what, break_it) in cases {
            let (expected, mut observed) = healthy();
            break_it(&mut observed);
            let problems = check_attachment(&expected, &observed);
            assert!(
                problems.iter().any(|p| p.contains(what)),
                "{what}: {problems:?}"
            );
        }
    }

    #[test]
    fn version_needs_no_configuration() {
        let inv =
            Invocation::from_vars(|n| (n == "CNI_COMMAND").then(|| "VERSION".into())).unwrap();
        let out = run(&inv, br#"{"cniVersion":"0.4.0"}"#).unwrap().unwrap();
        assert_eq!(out["cniVersion"], "0.4.0");
        let out = run(&inv, b"").unwrap().unwrap();
        assert_eq!(out["cniVersion"], "1.1.0");
    }

    #[test]
    fn add_without_its_environment_is_refused_before_anything_is_done() {
        let inv = Invocation::from_vars(|n| (n == "CNI_COMMAND").then(|| "ADD".into())).unwrap();
        let conf =
            br#"{"cniVersion":"1.0.0","name":"k","type":"kxdp-cni","api_socket":"/nonexistent"}"#;
        assert_eq!(run(&inv, conf).unwrap_err().code, 4);
        assert_eq!(run(&inv, b"{").unwrap_err().code, 6);
    }

    #[test]
    fn status_without_kxdp_is_not_available() {
        let inv = Invocation::from_vars(|n| (n == "CNI_COMMAND").then(|| "STATUS".into())).unwrap();
        let conf = br#"{"cniVersion":"1.1.0","name":"k","type":"kxdp-cni","api_socket":"/nonexistent/n1.api.sock"}"#;
        let e = run(&inv, conf).unwrap_err();
        assert_eq!(e.code, 50, "{e}");
        assert!(e.details.contains("/nonexistent/n1.api.sock"));
    }
}
