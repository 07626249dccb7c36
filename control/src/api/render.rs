//! How `kxdp get`, `kxdp dump` and `kxdp stats --watch` print: aligned
//! tables, one row per object.

use std::collections::BTreeMap;
use std::fmt::Write;

use kxdp_config::{FunctionSpec, LabelSelector, RouteTarget};

use super::proto;
use super::store::{ObjectKind, ObjectSet};

/// Columns aligned to their widest cell, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "-".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn selector(s: &LabelSelector) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.extend(
        s.match_expressions
            .iter()
            .map(|e| format!("{} {:?} [{}]", e.key, e.operator, e.values.join(","))),
    );
    if parts.is_empty() {
        "(all)".to_string()
    } else {
        parts.join(",")
    }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The objects of `kind` in `objects` as a table.
pub fn objects(kind: ObjectKind, objects: &ObjectSet) -> String {
    match kind {
        ObjectKind::Tenant => table(
            &["NAME", "VNI"],
            &objects
                .tenants
                .iter()
                .map(|t| vec![t.name.clone(), t.vni.to_string()])
                .collect::<Vec<_>>(),
        ),
        ObjectKind::RemoteNode => table(
            &["NAME", "VTEP", "VTEP-MAC", "UNDERLAY-MAC", "POD-CIDRS"],
            &objects
                .remote_nodes
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        n.vtep_ip.to_string(),
                        n.vtep_mac.to_string(),
                        or_dash(n.underlay_mac),
                        n.pod_cidrs
                            .iter()
                            .map(|c| format!("{}:{}", c.tenant, c.cidr))
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        ObjectKind::Pod => table(
            &[
                "NAME",
                "NAMESPACE",
                "TENANT",
                "IP",
                "IPV6",
                "MAC",
                "INTERFACE",
                "LABELS",
            ],
            &objects
                .pods
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        p.namespace.clone(),
                        p.tenant.clone(),
                        p.ip.to_string(),
                        or_dash(p.ipv6),
                        p.mac.to_string(),
                        p.interface.clone(),
                        labels(&p.labels),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        ObjectKind::Route => table(
            &["TENANT", "PREFIX", "VIA"],
            &objects
                .routes
                .iter()
                .map(|r| {
                    vec![
                        r.tenant.clone(),
                        r.prefix.to_string(),
                        match &r.via {
                            RouteTarget::Node(n) => format!("node {n}"),
                            RouteTarget::Pod(p) => format!("pod {p}"),
                            RouteTarget::Blackhole => "blackhole".to_string(),
                        },
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        ObjectKind::Service => table(
            &[
                "NAMESPACE",
                "NAME",
                "TENANT",
                "CLUSTER-IP",
                "PORTS",
                "ENDPOINTS",
            ],
            &objects
                .services
                .iter()
                .map(|s| {
                    let ready = s.endpoints.iter().filter(|e| e.ready).count();
                    vec![
                        s.namespace.clone(),
                        s.name.clone(),
                        s.tenant.clone(),
                        s.cluster_ip.to_string(),
                        s.ports
                            .iter()
                            .map(|p| {
                                let target = p.target_port.unwrap_or(p.port);
                                format!("{}/{:?}->{}", p.port, p.protocol, target).to_lowercase()
                            })
                            .collect::<Vec<_>>()
                            .join(","),
                        format!("{ready}/{} ready", s.endpoints.len()),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        ObjectKind::Policy => table(
            &[
                "NAMESPACE",
                "NAME",
                "POD-SELECTOR",
                "TYPES",
                "INGRESS",
                "EGRESS",
            ],
            &objects
                .policies
                .iter()
                .map(|p| {
                    vec![
                        p.namespace.clone(),
                        p.name.clone(),
                        selector(&p.pod_selector),
                        p.effective_types()
                            .iter()
                            .map(|t| format!("{t:?}"))
                            .collect::<Vec<_>>()
                            .join(","),
                        format!("{} rules", p.ingress.len()),
                        format!("{} rules", p.egress.len()),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        ObjectKind::Chain => table(
            &["NAME", "TENANT", "PRIORITY", "SYMMETRIC", "FUNCTIONS"],
            &objects
                .chains
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.tenant.clone(),
                        c.priority.to_string(),
                        c.symmetric.to_string(),
                        c.functions
                            .iter()
                            .map(function_name)
                            .collect::<Vec<_>>()
                            .join(" -> "),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        ObjectKind::Namespace => table(
            &["NAME", "LABELS"],
            &objects
                .namespaces
                .iter()
                .map(|n| vec![n.name.clone(), labels(&n.labels)])
                .collect::<Vec<_>>(),
        ),
        ObjectKind::Interface => table(
            &["NAME", "ROLE", "MAC", "QUEUES", "MTU"],
            &objects
                .interfaces
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        format!("{:?}", i.role).to_lowercase(),
                        i.mac.to_string(),
                        i.queues.to_string(),
                        or_dash(i.mtu),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
}

fn function_name(f: &FunctionSpec) -> String {
    match f {
        FunctionSpec::Policy => "policy".into(),
        FunctionSpec::Policer { rate_pps, .. } => format!("policer({rate_pps}pps)"),
        FunctionSpec::LoadBalancer { .. } => "load_balancer".into(),
        FunctionSpec::Counter => "counter".into(),
        FunctionSpec::Mirror { interface } => format!("mirror({interface})"),
        FunctionSpec::External { to_interface, .. } => format!("external({to_interface})"),
    }
}

/// `kxdp get chains`: the chains as [`objects`] shows them, then each
/// chain's counters and its per-stage counters (packets, bytes, and what
/// each stage did with them) from `stats`.
pub fn chains_with_counters(chains: &ObjectSet, stats: &proto::GetChainStatsResponse) -> String {
    let mut out = objects(ObjectKind::Chain, chains);
    for chain in &chains.chains {
        let counters = stats.chains.iter().find(|c| c.name == chain.name);
        let _ = write!(out, "\nchain {}:", chain.name);
        let Some(c) = counters else {
            out.push_str(" no counters yet\n");
            continue;
        };
        let _ = writeln!(
            out,
            " packets={} bytes={} passed={} dropped={} redirected={} resumed={} reply={}",
            c.packets, c.bytes, c.passed, c.dropped, c.redirected, c.resumed, c.reply_packets
        );
        let drops: BTreeMap<&str, u64> = c
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(reason, n)| (reason.as_str(), *n))
            .collect();
        if !drops.is_empty() {
            out.push_str("  drops:");
            for (reason, n) in drops {
                let _ = write!(out, " {reason}={n}");
            }
            out.push('\n');
        }
        let rows: Vec<Vec<String>> = c
            .stages
            .iter()
            .map(|st| {
                let function = chain
                    .functions
                    .get(st.index as usize)
                    .map(function_name)
                    .unwrap_or_else(|| st.kind.clone());
                let mirror = if st.mirrored + st.mirror_failed > 0 {
                    format!("{}/{}", st.mirrored, st.mirror_failed)
                } else {
                    "-".to_string()
                };
                vec![
                    st.index.to_string(),
                    function,
                    st.packets.to_string(),
                    st.bytes.to_string(),
                    st.passed.to_string(),
                    st.dropped.to_string(),
                    st.redirected.to_string(),
                    mirror,
                ]
            })
            .collect();
        let stages = table(
            &[
                "STAGE",
                "FUNCTION",
                "PACKETS",
                "BYTES",
                "PASSED",
                "DROPPED",
                "REDIRECTED",
                "MIRRORED/FAILED",
            ],
            &rows,
        );
        for line in stages.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// The published tables: tenants, ports, routes.
pub fn dump(d: &proto::DumpTablesResponse) -> String {
    let mut out = format!("tables generation {}\n", d.generation);
    if let Some(v) = &d.vtep {
        let _ = writeln!(
            out,
            "vtep {}:{} mac {} port {} mtu {}",
            v.ip, v.udp_port, v.mac, v.port, v.mtu
        );
    }
    out.push('\n');
    out.push_str(&table(
        &["TENANT-ID", "TENANT", "VNI"],
        &d.tenants
            .iter()
            .map(|t| vec![t.id.to_string(), t.name.clone(), t.vni.to_string()])
            .collect::<Vec<_>>(),
    ));
    out.push('\n');
    out.push_str(&table(
        &["PORT", "NAME", "MAC", "ROLE", "POD"],
        &d.ports
            .iter()
            .map(|p| {
                let role = match proto::PortRole::try_from(p.role) {
                    Ok(proto::PortRole::Pod) => "pod",
                    Ok(proto::PortRole::Idle) => "idle",
                    Ok(proto::PortRole::Underlay) => "underlay",
                    Ok(proto::PortRole::Host) => "host",
                    _ => "?",
                };
                let pod = p
                    .pod
                    .as_ref()
                    .map(|pod| {
                        format!(
                            "{} ({}) {} {}",
                            pod.name,
                            pod.tenant,
                            pod.ipv4.as_deref().unwrap_or("-"),
                            pod.ipv6.as_deref().unwrap_or("-")
                        )
                    })
                    .unwrap_or_else(|| "-".into());
                vec![
                    p.id.to_string(),
                    p.name.clone(),
                    p.mac.clone(),
                    role.to_string(),
                    pod,
                ]
            })
            .collect::<Vec<_>>(),
    ));
    out.push('\n');
    out.push_str(&table(
        &["TENANT", "PREFIX", "NEXT-HOP"],
        &d.routes
            .iter()
            .map(|r| {
                use proto::table_route::NextHop;
                let hop = match &r.next_hop {
                    Some(NextHop::Local(l)) => format!("local {} mac {}", l.port_name, l.mac),
                    Some(NextHop::Remote(h)) => {
                        format!("vxlan {} vni {} ({})", h.vtep_ip, h.vni, h.node)
                    }
                    Some(NextHop::Blackhole(_)) => "blackhole".into(),
                    Some(NextHop::Unreachable(_)) => "unreachable".into(),
                    None => "-".into(),
                };
                vec![r.tenant.clone(), r.prefix.clone(), hop]
            })
            .collect::<Vec<_>>(),
    ));
    out
}

/// The published tables as JSON (for `-o json|yaml`).
pub fn dump_json(d: &proto::DumpTablesResponse) -> serde_json::Value {
    use proto::table_route::NextHop;
    let ports: Vec<serde_json::Value> = d
        .ports
        .iter()
        .map(|p| {
            let role = match proto::PortRole::try_from(p.role) {
                Ok(proto::PortRole::Pod) => "pod",
                Ok(proto::PortRole::Idle) => "idle",
                Ok(proto::PortRole::Underlay) => "underlay",
                _ => "unspecified",
            };
            serde_json::json!({
                "id": p.id,
                "name": p.name,
                "mac": p.mac,
                "role": role,
                "pod": p.pod.as_ref().map(|pod| serde_json::json!({
                    "name": pod.name,
                    "tenant": pod.tenant,
                    "mac": pod.mac,
                    "ipv4": pod.ipv4,
                    "ipv6": pod.ipv6,
                    "gateway4": pod.gateway4,
                    "gateway6": pod.gateway6,
                })),
            })
        })
        .collect();
    let routes: Vec<serde_json::Value> = d
        .routes
        .iter()
        .map(|r| {
            let hop = match &r.next_hop {
                Some(NextHop::Local(l)) => serde_json::json!({
                    "local": {"port": l.port, "port_name": l.port_name, "mac": l.mac}
                }),
                Some(NextHop::Remote(h)) => serde_json::json!({
                    "remote": {
                        "node": h.node,
                        "inner_dst_mac": h.inner_dst_mac,
                        "outer_dst_mac": h.outer_dst_mac,
                        "vtep_ip": h.vtep_ip,
                        "vni": h.vni,
                    }
                }),
                Some(NextHop::Blackhole(_)) => serde_json::json!("blackhole"),
                Some(NextHop::Unreachable(_)) => serde_json::json!("unreachable"),
                None => serde_json::Value::Null,
            };
            serde_json::json!({"tenant": r.tenant, "prefix": r.prefix, "next_hop": hop})
        })
        .collect();
    serde_json::json!({
        "generation": d.generation,
        "vtep": d.vtep.as_ref().map(|v| serde_json::json!({
            "ip": v.ip, "udp_port": v.udp_port, "mac": v.mac, "port": v.port, "mtu": v.mtu,
        })),
        "tenants": d.tenants.iter().map(|t| serde_json::json!({
            "id": t.id, "name": t.name, "vni": t.vni,
        })).collect::<Vec<_>>(),
        "ports": ports,
        "routes": routes,
    })
}

/// A counter sample as a table, with rates against the previous sample.
pub fn counter_sample(
    sample: &proto::CounterSample,
    previous: Option<&proto::CounterSample>,
) -> String {
    let seconds = |s: &proto::CounterSample| {
        s.time
            .as_ref()
            .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
            .unwrap_or(0.0)
    };
    let elapsed = previous.map(|p| seconds(sample) - seconds(p));
    let mut out = format!("generation {}\n", sample.generation);
    let rows: Vec<Vec<String>> = sample
        .workers
        .iter()
        .map(|w| {
            let before = previous.and_then(|p| p.workers.iter().find(|x| x.worker == w.worker));
            let rate = |now: u64, then: Option<u64>| match (then, elapsed) {
                (Some(then), Some(dt)) if dt > 0.0 => {
                    format!("{:.0}", now.saturating_sub(then) as f64 / dt)
                }
                _ => "-".to_string(),
            };
            let drops: u64 = w.drops.values().sum();
            vec![
                w.worker.to_string(),
                w.rx_packets.to_string(),
                rate(w.rx_packets, before.map(|b| b.rx_packets)),
                w.tx_packets.to_string(),
                rate(w.tx_packets, before.map(|b| b.tx_packets)),
                drops.to_string(),
                rate(drops, before.map(|b| b.drops.values().sum())),
            ]
        })
        .collect();
    out.push_str(&table(
        &["WORKER", "RX", "RX/S", "TX", "TX/S", "DROPS", "DROPS/S"],
        &rows,
    ));
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for w in &sample.workers {
        for (reason, n) in &w.drops {
            *totals.entry(reason.as_str()).or_default() += n;
        }
    }
    totals.retain(|_, n| *n > 0);
    if !totals.is_empty() {
        out.push_str("drops:");
        for (reason, n) in totals {
            let _ = write!(out, " {reason}={n}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn get_chains_shows_each_chain_with_its_stage_counters() {
        let set: ObjectSet = serde_yaml::from_str(
            "chains:\n\
             - {name: web, tenant: blue, functions: [{type: policy}, {type: policer, rate_pps: 100, burst: 10}, {type: load_balancer}]}\n\
             - {name: idle, tenant: blue, functions: [{type: counter}]}\n",
        )
        .unwrap();
        let stage = |index: u32, kind: &str, packets: u64, passed: u64, dropped: u64| {
            proto::ChainStageCounters {
                index,
                kind: kind.into(),
                packets,
                bytes: packets * 100,
                passed,
                dropped,
                ..Default::default()
            }
        };
        let stats = proto::GetChainStatsResponse {
            generation: 3,
            chains: vec![proto::ChainCounters {
                name: "web".into(),
                packets: 50,
                bytes: 5000,
                passed: 44,
                dropped: 6,
                drops: [
                    ("policy_denied".to_string(), 3),
                    ("policer_exceeded".to_string(), 3),
                    ("vnf_down".to_string(), 0),
                ]
                .into_iter()
                .collect(),
                stages: vec![
                    stage(0, "policy", 50, 47, 3),
                    stage(1, "policer", 47, 44, 3),
                    stage(2, "load_balancer", 44, 44, 0),
                ],
                ..Default::default()
            }],
        };
        let text = chains_with_counters(&set, &stats);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(text.contains(
            "chain web: packets=50 bytes=5000 passed=44 dropped=6 redirected=0 resumed=0 reply=0"
        ));
        assert!(
            text.contains("  drops: policer_exceeded=3 policy_denied=3\n"),
            "{text}"
        );
        assert!(!text.contains("vnf_down"), "zero drops are left out");
        let header = lines
            .iter()
            .position(|l| l.trim_start().starts_with("STAGE"))
            .unwrap();
        let column = lines[header].find("DROPPED").unwrap();
        let policer = lines[header + 2];
        assert!(policer.contains("policer(100pps)"), "{policer}");
        assert_eq!(&policer[column..column + 1], "3", "{text}");
        let lb = lines[header + 3];
        assert!(lb.contains("load_balancer") && lb.contains("4400"), "{lb}");
        assert!(text.contains("chain idle: no counters yet"), "{text}");
    }

    #[test]
    fn tables_align_and_name_every_object() {
        let set: ObjectSet = serde_yaml::from_str(
            "pods: [{name: pod-a, tenant: blue, ip: 10.1.1.2, mac: '02:00:00:00:01:02', interface: p0, labels: {app: web}}, \
                    {name: b, tenant: blue, ip: 10.1.1.3, mac: '02:00:00:00:01:03', interface: p1}]\n",
        )
        .unwrap();
        let text = objects(ObjectKind::Pod, &set);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME   NAMESPACE"));
        assert!(lines[1].contains("pod-a") && lines[1].contains("app=web"));
        let column = lines[0].find("TENANT").unwrap();
        assert_eq!(&lines[2][column..column + 4], "blue");
    }
}
