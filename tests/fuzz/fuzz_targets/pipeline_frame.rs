//! The whole pipeline on one frame: `Pipeline::process_frame` against fixed
//! tables (`dataplane/tests/fixtures/node1.yaml` and
//! `config/examples/two-tenants.yaml`), on every port id (and one past the
//! last).
//!
//! Input: one byte of flags, one byte the headroom (offset of the frame in
//! its 2048-byte chunk: 0, 2, …, 510), the rest is the frame. Flags: bit 0
//! picks the table set; bit 6 makes the rest not the frame but the choices
//! a well-formed frame is built from (`Targets::frame`: which pod or VNI
//! sends to which of the tables' addresses), so tenants, routes and
//! encapsulation are explored without guessing addresses; unless bit 7 is
//! set, the frame's IPv4 header checksums (outer and inner) are fixed up
//! first, so mutated addresses get past the checksum checks.
//!
//! Checks, besides "never panics":
//! - the outcome's offset and length stay inside the chunk;
//! - a frame is transmitted only on a port the tables have, and parses
//!   again; one sent to the underlay is VXLAN that decapsulates at its
//!   outer destination, with the VNI of the sending pod's tenant;
//! - tenants stay apart: a frame from a pod reaches only a pod of its
//!   tenant, VXLAN only a pod of its VNI's tenant, which receives it with
//!   its own MAC as destination and its port's MAC as source;
//! - only the underlay passes frames to the kernel;
//! - the verdict is counted once (a drop under its reason).
#![no_main]

use std::sync::OnceLock;

use kxdp_dataplane::packet::{self, L3};
use kxdp_dataplane::pipeline::Pipeline;
use kxdp_dataplane::tables::{PortKind, Tables};
use kxdp_dataplane::{vxlan, DropReason, PortId, Verdict};
use kxdp_fuzz::{compile_fixture, fix_ipv4_checksums, Targets, NODE1_YAML, TWO_TENANTS_YAML};
use libfuzzer_sys::fuzz_target;

/// The AF_XDP backend's default chunk size.
const CHUNK: usize = 2048;

fn table_sets() -> &'static [(Tables, Targets)] {
    static SETS: OnceLock<Vec<(Tables, Targets)>> = OnceLock::new();
    SETS.get_or_init(|| {
        [NODE1_YAML, TWO_TENANTS_YAML]
            .into_iter()
            .map(|yaml| {
                let tables = compile_fixture(yaml);
                let targets = Targets::of(&tables);
                (tables, targets)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let [which, headroom, frame @ ..] = data else {
        return;
    };
    let sets = table_sets();
    let (tables, targets) = &sets[usize::from(*which & 1) % sets.len()];
    let offset = usize::from(*headroom) * 2;
    let mut frame = if *which & 0x40 == 0 {
        frame.to_vec()
    } else {
        let Some(built) = targets.frame(frame) else {
            return;
        };
        built
    };
    frame.truncate(CHUNK - offset);
    if *which & 0x80 == 0 {
        fix_ipv4_checksums(&mut frame);
    }
    let frame = frame.as_slice();
    let ports = PortId::try_from(tables.ports().len()).unwrap_or(PortId::MAX);
    let mut chunk = vec![0u8; CHUNK];
    for in_port in 0..=ports {
        chunk.fill(0);
        chunk[offset..offset + frame.len()].copy_from_slice(frame);
        let mut pipeline = Pipeline::new();
        let out = pipeline.process_frame(tables, in_port, &mut chunk, offset, frame.len());
        let end = out.offset.checked_add(out.len);
        assert!(
            end.is_some_and(|end| end <= CHUNK),
            "port {in_port}: outcome {out:?} outside the {CHUNK}-byte chunk"
        );
        let counters = &pipeline.counters;
        match out.verdict {
            Verdict::Drop(reason) => {
                assert_eq!(counters.drops[reason.index()], 1, "{reason} not counted");
                assert_eq!(
                    counters.total_drops(),
                    1,
                    "port {in_port}: {reason}, and also counted: {:?}",
                    DropReason::ALL
                        .iter()
                        .filter(|r| counters.drops[r.index()] > 0)
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                );
            }
            Verdict::Pass => {
                assert!(
                    matches!(
                        tables.port(in_port).map(|p| &p.kind),
                        Some(PortKind::Underlay)
                    ),
                    "port {in_port} passed a frame to the kernel"
                );
                assert_eq!((counters.passed, counters.total_drops()), (1, 0));
            }
            Verdict::Tx(to) => {
                // An ICMP error answers a dropped frame: the drop counted
                // once, the error sent; otherwise nothing is dropped.
                let icmp = counters.icmp_time_exceeded
                    + counters.icmp_unreachable
                    + counters.icmp_too_big;
                assert!(icmp <= 1, "one error per frame");
                assert_eq!(counters.total_drops(), icmp, "{:?}", counters.drops);
                if icmp == 1 {
                    check_icmp_error(tables, in_port, frame, to, &chunk[out.offset..out.offset + out.len]);
                    continue;
                }
                let sent = &chunk[out.offset..out.offset + out.len];
                check_tx(tables, in_port, frame, to, sent);
            }
        }
    }
});

/// An ICMP error goes back where its frame came from: out of the ingress
/// port (a pod's, to its MAC), or from the underlay back over VXLAN; it
/// parses and comes from a gateway address of this node.
fn check_icmp_error(tables: &Tables, in_port: PortId, _received: &[u8], to: PortId, sent: &[u8]) {
    let in_kind = tables.port(in_port).map(|p| &p.kind);
    match in_kind {
        Some(PortKind::Underlay) => {
            assert_eq!(to, tables.vtep().port, "an error for a remote sender leaves by VXLAN");
            let L3::Ipv4 { dst, .. } = packet::parse(sent).expect("outer parses").l3 else {
                panic!("not IPv4 outside");
            };
            let decap = vxlan::decap(sent, dst, tables.vtep().udp_port).expect("the error decapsulates");
            let inner = &sent[decap.inner_offset..decap.inner_offset + decap.inner_len];
            let meta = packet::parse(inner).expect("the inner error parses");
            assert!(matches!(meta.ip_proto, 1 | 58), "an ICMP error: {meta:?}");
        }
        Some(PortKind::Pod(_)) | Some(PortKind::Host(_)) => {
            assert_eq!(to, in_port, "an error goes back out of the ingress port");
            let meta = packet::parse(sent).expect("the error parses");
            assert!(matches!(meta.ip_proto, 1 | 58), "an ICMP error: {meta:?}");
        }
        other => panic!("port {in_port} of kind {other:?} answered with an error"),
    }
}

/// The checks on a frame the pipeline sends out of port `to`.
fn check_tx(tables: &Tables, in_port: PortId, received: &[u8], to: PortId, sent: &[u8]) {
    let Some(out_port) = tables.port(to) else {
        panic!("port {in_port}: sent on port {to}, which the tables do not have");
    };
    let meta = match packet::parse(sent) {
        Ok(meta) => meta,
        Err(reason) => panic!("port {in_port} → {to}: the sent frame does not parse: {reason}"),
    };
    let in_kind = tables.port(in_port).map(|p| &p.kind);
    // The tenant the frame came from: the sending pod's, or the VNI's.
    let from_tenant = match in_kind {
        Some(PortKind::Pod(pod)) => pod.tenant,
        Some(PortKind::Underlay) => {
            let vtep = tables.vtep();
            let decap = vxlan::decap(received, vtep.ip, vtep.udp_port)
                .expect("the underlay forwarded a frame that is not VXLAN for us");
            tables
                .tenant_by_vni(decap.vni)
                .expect("the underlay forwarded a frame of an unknown VNI")
        }
        _ => panic!("port {in_port} of kind {in_kind:?} transmitted"),
    };
    match &out_port.kind {
        PortKind::Underlay => {
            assert!(
                matches!(in_kind, Some(PortKind::Pod(_))),
                "port {in_port}: VXLAN hairpinned to the underlay"
            );
            let L3::Ipv4 { dst, .. } = meta.l3 else {
                panic!("port {in_port}: sent to the underlay without an IPv4 header");
            };
            let decap = match vxlan::decap(sent, dst, meta.l4.ports().1) {
                Ok(decap) => decap,
                Err(reason) => {
                    panic!("port {in_port}: the encapsulated frame fails decap: {reason}")
                }
            };
            let inner = &sent[decap.inner_offset..decap.inner_offset + decap.inner_len];
            if let Err(reason) = packet::parse(inner) {
                panic!("port {in_port}: the encapsulated inner frame does not parse: {reason}");
            }
            let tenant_vni = tables
                .tenants()
                .get(usize::from(from_tenant))
                .map(|t| t.vni);
            assert_eq!(
                Some(decap.vni),
                tenant_vni,
                "port {in_port}: VNI of another tenant"
            );
        }
        PortKind::Pod(pod) => {
            assert_eq!(
                pod.tenant, from_tenant,
                "port {in_port} → {to}: crossed tenants"
            );
            // Replies to ARP / neighbour solicitations go back to the asker.
            if to != in_port {
                assert_eq!(
                    meta.dst_mac, pod.mac,
                    "port {in_port} → {to}: not to the pod's MAC"
                );
                assert_eq!(
                    meta.src_mac, out_port.mac,
                    "port {in_port} → {to}: not from the port's MAC"
                );
            }
        }
        PortKind::Idle => panic!("port {in_port}: sent on idle port {to}"),
        PortKind::Host(host) => {
            assert!(
                host.allows(from_tenant),
                "port {in_port} → {to}: a tenant that may not reach the node"
            );
        }
    }
}
