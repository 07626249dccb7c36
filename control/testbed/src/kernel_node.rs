//! A node whose pods are forwarded by the Linux kernel, set up the way
//! Flannel's vxlan backend and its bridge CNI set up a node: a `cni0` bridge
//! holding the pods' gateway address, a `flannel.<vni>` vxlan device without
//! learning, and for every remote node a static route, a permanent neighbour
//! and an fdb entry (what flanneld writes from the Node annotations). It is
//! the interoperability peer of kxdp nodes and the baseline of benchmarks.

use kxdp_config::TenantSpec;

use super::error::{Result, TestbedError};
use super::netns::run_command;
use super::topology::{
    self, flannel_device, Node, NodeKind, CNI_BRIDGE, POD_CIDR_LEN, POD_MTU, UNDERLAY_IF,
    VXLAN_PORT,
};

fn vni_of(tenants: &[TenantSpec], tenant: &str) -> Result<u32> {
    tenants
        .iter()
        .find(|t| t.name == tenant)
        .map(|t| t.vni)
        .ok_or_else(|| TestbedError::Spec(format!("unknown tenant {tenant:?}")))
}

/// Forwarding on, the `cni0` bridge with the gateway address, and a
/// `flannel.<vni>` device (address `10.244.N.0/32`, MTU 1450) per tenant served.
pub(crate) fn configure_base(node: &Node, tenants: &[TenantSpec]) -> Result<()> {
    let ns = &node.netns;
    ns.set_sysctl("net.ipv4.ip_forward", "1")?;
    let mtu = POD_MTU.to_string();
    ns.ip(&[
        "link",
        "add",
        CNI_BRIDGE,
        "address",
        &topology::cni_bridge_mac(node.number).to_string(),
        "mtu",
        &mtu,
        "type",
        "bridge",
    ])?;
    ns.ip(&[
        "addr",
        "add",
        &format!("{}/{}", node.gateway, POD_CIDR_LEN),
        "dev",
        CNI_BRIDGE,
    ])?;
    ns.ip(&["link", "set", CNI_BRIDGE, "up"])?;
    if node.kind == NodeKind::Routed {
        return Ok(());
    }
    for tenant in &node.tenants {
        let vni = vni_of(tenants, tenant)?;
        let device = flannel_device(vni);
        ns.ip(&[
            "link",
            "add",
            &device,
            "address",
            &node.vtep_mac.to_string(),
            "mtu",
            &mtu,
            "type",
            "vxlan",
            "id",
            &vni.to_string(),
            "local",
            &node.vtep_ip.to_string(),
            "dstport",
            &VXLAN_PORT.to_string(),
            "nolearning",
            "dev",
            UNDERLAY_IF,
        ])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/32", node.pod_cidr),
            "dev",
            &device,
        ])?;
        ns.ip(&["link", "set", &device, "up"])?;
    }
    Ok(())
}

/// For every remote node serving one of this node's tenants: a route to its
/// pod CIDR via its `.0` address on `flannel.<vni>`, a permanent neighbour
/// entry resolving that address to its VTEP MAC, and an fdb entry sending
/// that MAC to its VTEP IP.
pub(crate) fn configure_peers(node: &Node, nodes: &[Node], tenants: &[TenantSpec]) -> Result<()> {
    let ns = &node.netns;
    if node.kind == NodeKind::Routed {
        // host-gw: the remote pod CIDR via the remote node's underlay address.
        for remote in nodes
            .iter()
            .filter(|r| r.name != node.name && r.kind == NodeKind::Routed)
        {
            ns.ip(&[
                "route",
                "replace",
                &format!("{}/{}", remote.pod_cidr, POD_CIDR_LEN),
                "via",
                &remote.vtep_ip.to_string(),
                "dev",
                UNDERLAY_IF,
            ])?;
        }
        return Ok(());
    }
    for tenant in &node.tenants {
        let device = flannel_device(vni_of(tenants, tenant)?);
        for remote in nodes
            .iter()
            .filter(|r| r.name != node.name && r.tenants.contains(tenant))
        {
            let via = remote.pod_cidr.to_string();
            let vtep_mac = remote.vtep_mac.to_string();
            ns.ip(&[
                "route",
                "replace",
                &format!("{}/{}", remote.pod_cidr, POD_CIDR_LEN),
                "via",
                &via,
                "dev",
                &device,
                "onlink",
            ])?;
            ns.ip(&[
                "neigh",
                "replace",
                &via,
                "lladdr",
                &vtep_mac,
                "dev",
                &device,
                "nud",
                "permanent",
            ])?;
            run_command(
                "bridge",
                &[
                    "-netns",
                    ns.name(),
                    "fdb",
                    "append",
                    &vtep_mac,
                    "dev",
                    &device,
                    "dst",
                    &remote.vtep_ip.to_string(),
                ],
            )?;
        }
    }
    Ok(())
}
