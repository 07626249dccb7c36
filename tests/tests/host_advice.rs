//! `kxdp check` on a node whose underlay is a veth: it reads the other
//! end's qdisc with iproute2 (whose JSON names a peer in the same
//! namespace and gives only the index of one elsewhere) and advises a
//! queueing qdisc where the other end has none, and nothing once it has.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test host_advice`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kxdp_testbed::{privileged_test, NetnsGuard};
use kxdp_tests::kxdp_binary;

/// The `# host:` lines of `kxdp check` run inside `ns` on the two-node
/// example's node1 (its underlay is `ul0`).
fn check_advice(ns: &NetnsGuard) -> Vec<String> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples/two-node/node1.yaml")
        .canonicalize()
        .unwrap();
    let binary = kxdp_binary!().to_str().unwrap();
    let out = ns
        .exec(binary, &["check", "--config", config.to_str().unwrap()])
        .unwrap();
    out.lines()
        .filter(|l| l.starts_with("# host:"))
        .map(str::to_string)
        .collect()
}

fn underlay_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("underlay veth ul0"))
        .collect()
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn check_advises_a_qdisc_on_the_far_end_of_a_veth_underlay_until_it_has_one() {
    privileged_test("check_advises_a_qdisc_on_the_far_end_of_a_veth_underlay_until_it_has_one");
    let pid = std::process::id();
    let ns = NetnsGuard::create(&format!("kx{pid}-0-check")).unwrap();
    let other = NetnsGuard::create(&format!("kx{pid}-1-check")).unwrap();

    // The far end in the same namespace, without a qdisc: advice naming it.
    ns.ip(&[
        "link", "add", "ul0", "type", "veth", "peer", "name", "ul0-far",
    ])
    .unwrap();
    for link in ["ul0", "ul0-far"] {
        ns.ip(&["link", "set", link, "up"]).unwrap();
    }
    let lines = check_advice(&ns);
    let underlay = underlay_lines(&lines);
    assert_eq!(underlay.len(), 1, "{lines:#?}");
    assert!(underlay[0].contains("is noqueue"), "{}", underlay[0]);
    assert!(
        underlay[0].contains("tc qdisc replace dev ul0-far root pfifo_fast"),
        "{}",
        underlay[0]
    );

    // Once the far end queues, no underlay advice.
    ns.exec(
        "tc",
        &["qdisc", "replace", "dev", "ul0-far", "root", "pfifo_fast"],
    )
    .unwrap();
    let lines = check_advice(&ns);
    assert!(underlay_lines(&lines).is_empty(), "{lines:#?}");

    // The far end in another namespace: kxdp cannot see its qdisc and says
    // what to run there.
    ns.ip(&["link", "del", "ul0"]).unwrap();
    ns.ip(&[
        "link",
        "add",
        "ul0",
        "type",
        "veth",
        "peer",
        "name",
        "ul0-far",
        "netns",
        other.name(),
    ])
    .unwrap();
    let lines = check_advice(&ns);
    let underlay = underlay_lines(&lines);
    assert_eq!(underlay.len(), 1, "{lines:#?}");
    assert!(underlay[0].contains("unknown here"), "{}", underlay[0]);

    // An underlay that is not a veth (a bridge here: this kernel has no
    // dummy driver): no underlay advice.
    ns.ip(&["link", "del", "ul0"]).unwrap();
    ns.ip(&["link", "add", "ul0", "type", "bridge"]).unwrap();
    let lines = check_advice(&ns);
    assert!(underlay_lines(&lines).is_empty(), "{lines:#?}");
}
