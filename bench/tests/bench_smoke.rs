//! CI's smoke test of `kxdp bench --quick`: the whole benchmark runs on the
//! testbed and its JSON has every figure for every path (not their values),
//! the node-under-test table (every row with latency, TCP and the packet
//! rate each way; ovs-vxlan where Open vSwitch is installed, otherwise with
//! the reason) first, with the HdrHistogram logs and plots it names
//! written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use kxdp_bench::external::ExternalKind;
use kxdp_bench::nut::NutRow;
use kxdp_testbed::privileged_test;
use serde_json::Value;

/// `target/<profile>/kxdp`, built by `cargo test --workspace` for the
/// control crate's integration tests.
fn kxdp_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("kxdp")
}

fn number(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

/// `row` (a path or a node-under-test row) has every latency case, in
/// order, each with every percentile over rounds and merged, loss and the
/// background stream's delivery.
fn assert_latency_figures(row: &Value, who: &str) {
    let latency = row["latency"].as_array().unwrap();
    let cases: Vec<&str> = latency
        .iter()
        .map(|l| l["case"].as_str().unwrap())
        .collect();
    assert_eq!(
        cases,
        ["blocking/low", "spin/low", "blocking/loaded", "spin/loaded"],
        "{who}"
    );
    for l in latency {
        for figure in [
            "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us",
        ] {
            for stat in ["median", "min", "max"] {
                number(l, &format!("{figure}.{stat}"));
            }
            number(l, &format!("merged.{figure}"));
        }
        number(l, "loss_percent.median");
        number(l, "load_delivered_percent.median");
    }
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn kxdp_bench_quick_writes_every_figure() {
    privileged_test("kxdp_bench_quick_writes_every_figure");
    let kxdp = kxdp_binary();
    assert!(kxdp.exists(), "no kxdp binary at {}", kxdp.display());
    let out = std::env::temp_dir().join(format!("kxdp-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_kxdp-bench"))
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        .arg("--kxdp")
        .arg(&kxdp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kxdp bench --quick failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("UDP request/response latency"), "{stdout}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();

    // The headline table comes first: the node under test beside a kernel
    // VXLAN node, every row, every case, every percentile, TCP each way.
    let nut_at = stdout
        .find("Node under test")
        .expect("no node-under-test table");
    let two_node_at = stdout
        .find("Two nodes of one kind")
        .expect("no two-node table");
    assert!(nut_at < two_node_at, "the node under test is not first");
    let nut = &json["nut"];
    // The TCP table names the congestion control the pods' senders used
    // (the machine's, which each namespace inherits).
    let machine_cc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .expect("net.ipv4.tcp_congestion_control");
    assert_eq!(
        nut["tcp_congestion_control"].as_str(),
        Some(machine_cc.trim()),
        "nut.json's tcp_congestion_control"
    );
    assert!(
        stdout.contains(&format!("congestion control {} (", machine_cc.trim())),
        "the TCP table does not name the congestion control"
    );
    assert_eq!(
        json["tcp_congestion_control"].as_str(),
        Some(machine_cc.trim()),
        "bench.json's tcp_congestion_control (the two-node paths)"
    );
    let rows = nut["rows"].as_array().unwrap();
    let row_names: Vec<&str> = rows.iter().map(|r| r["row"].as_str().unwrap()).collect();
    assert_eq!(
        row_names,
        [
            "kernel-vxlan",
            "kernel-vxlan-tx-off",
            "kernel-vxlan-tuned",
            "routed",
            "kxdp",
            "kxdp-pod-napi",
            "kxdp-adaptive",
            "ovs-vxlan"
        ]
    );
    for r in rows {
        let name = r["row"].as_str().unwrap();
        assert!(
            r["node1"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: node1"
        );
        assert!(
            r["node2"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: node2"
        );
        // ovs-vxlan: measured where Open vSwitch is installed
        // (scripts/setup-bench), otherwise listed with the reason.
        if name == "ovs-vxlan" && ExternalKind::Ovs.check_installed().is_err() {
            let reason = r["not_measured"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("ovs-vswitchd not installed"),
                "ovs-vxlan without its reason: {r}"
            );
            assert!(
                stdout.contains(&format!("ovs-vxlan: not measured: {reason}")),
                "the table does not say why ovs-vxlan is not measured:\n{stdout}"
            );
            continue;
        }
        assert!(r["not_measured"].is_null(), "{name}: {r}");
        if name != "routed" {
            assert!(
                r["node2"].as_str().unwrap().starts_with("kernel vxlan"),
                "{name}: node2 is not the kernel vxlan node: {}",
                r["node2"]
            );
        }
        assert_latency_figures(r, name);
        for direction in ["tcp_node1_to_node2_gbps", "tcp_node2_to_node1_gbps"] {
            for stat in ["median", "min", "max"] {
                number(r, &format!("{direction}.{stat}"));
            }
            assert!(
                number(r, &format!("{direction}.median")) > 0.0,
                "{name}: {direction}"
            );
        }
        for direction in [
            "tcp_node1_to_node2_retrans_percent",
            "tcp_node2_to_node1_retrans_percent",
        ] {
            let share = number(r, &format!("{direction}.max"));
            assert!(
                (0.0..=100.0).contains(&share),
                "{name}: {direction} {share}"
            );
        }
        let directions: Vec<&str> = r["rate"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no packet rate: {r}"))
            .iter()
            .map(|f| f["direction"].as_str().unwrap())
            .collect();
        assert_eq!(directions, ["encap", "decap"], "{name}");
        for f in r["rate"].as_array().unwrap() {
            assert!(
                f["sink"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: rate without its sink: {f}"
            );
            for figure in [
                "generator_tx_kpps",
                "received_kpps",
                "loss_percent",
                "node1_per_core_kpps",
                "node1_cpu_s_per_mpkt",
            ] {
                for stat in ["median", "min", "max"] {
                    number(f, &format!("{figure}.{stat}"));
                }
            }
        }
        assert!(
            r["placement"].as_array().is_some_and(|p| p.len() >= 2),
            "{name} without its placement: {r}"
        );
    }
    for direction in ["encap", "decap"] {
        assert!(
            nut["rate_ratios"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["direction"] == direction && r["against"] == "kernel-vxlan"),
            "no kxdp / kernel-vxlan packet-rate ratio for {direction}"
        );
    }
    assert!(
        stdout.contains("64-byte UDP packet rate"),
        "the node-under-test table has no packet rate:\n{stdout}"
    );
    assert!(
        nut["not_measured"].as_array().is_some_and(Vec::is_empty),
        "the node-under-test table still lists something as not measured: {}",
        nut["not_measured"]
    );
    assert!(
        nut["cores"].as_object().is_some_and(|c| !c.is_empty()),
        "the node-under-test table names no cores"
    );

    // Latency and TCP for every path, every case, every percentile.
    let paths = json["paths"].as_array().unwrap();
    let names: Vec<&str> = paths.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(names, ["routed", "kernel-vxlan", "kxdp"]);
    for p in paths {
        assert_latency_figures(p, &p["path"].to_string());
        for stat in ["median", "min", "max"] {
            number(p, &format!("tcp_gbps.{stat}"));
        }
    }

    // Packet rate and cost for both rate paths and both sinks.
    let summaries = json["rate"]["summaries"].as_array().unwrap();
    for path in ["kxdp", "kernel-vxlan", "routed"] {
        for sink in ["underlay", "pod"] {
            let s = summaries
                .iter()
                .find(|s| s["path"] == path && s["sink"] == sink)
                .unwrap_or_else(|| panic!("no rate summary for {path} / {sink}"));
            for figure in [
                "generator_tx_pps",
                "encap_pps",
                "received_pps",
                "loss_pct",
                "dut_per_core_pps",
                "dut_cpu_s_per_mpkt",
                "total_cpu_s_per_mpkt",
            ] {
                number(s, &format!("{figure}.median"));
            }
        }
    }
    assert!(
        json["rate"]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["path"] == "kxdp" && s["worker_cycles_per_packet"].is_number()),
        "the kxdp worker's cycles per packet"
    );
    let ratios = json["rate"]["ratios"].as_array().unwrap();
    for sink in ["underlay", "pod"] {
        for against in ["kernel-vxlan", "routed"] {
            assert!(
                ratios
                    .iter()
                    .any(|r| r["sink"] == sink && r["against"] == against),
                "no kxdp / {against} ratio for {sink}"
            );
        }
    }
    // The external AF_XDP dataplanes: measured (underlay sink) where
    // installed (scripts/setup-bench), otherwise listed with the reason.
    for path in ["testpmd", "ovs"] {
        let measured = summaries
            .iter()
            .any(|s| s["path"] == path && s["sink"] == "underlay");
        let skipped = json["rate"]["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["path"] == path && s["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(
            measured != skipped,
            "{path}: measured {measured}, skipped {skipped}"
        );
        if measured {
            assert!(
                ratios
                    .iter()
                    .any(|r| r["sink"] == "underlay" && r["against"] == path),
                "no kxdp / {path} ratio"
            );
            for figure in ["received_pps.median", "dut_per_core_pps.median"] {
                let s = summaries
                    .iter()
                    .find(|s| s["path"] == path && s["sink"] == "underlay")
                    .unwrap();
                number(s, figure);
            }
        } else {
            assert!(
                stdout.contains(&format!("{path}: not measured:")),
                "the table does not say {path} was skipped:\n{stdout}"
            );
        }
        // Forwarding on node1 only: never a pod-to-pod row.
        assert!(
            !summaries
                .iter()
                .any(|s| s["path"] == path && s["sink"] == "pod"),
            "{path} has a pod-to-pod row"
        );
    }
    // Every sample names where each piece ran.
    for sample in json["rate"]["samples"].as_array().unwrap() {
        assert!(
            sample["placement"].as_array().is_some_and(|p| p.len() >= 2),
            "a sample without its placement: {sample}"
        );
    }

    // Pods per node (quick: 2 and 6 run-time pods, adaptive worker): every
    // figure, every pod answered its ping, the TCP transfer moved data.
    let pods = json["pods"]["rows"].as_array().unwrap();
    let counts: Vec<u64> = pods.iter().map(|r| r["pods"].as_u64().unwrap()).collect();
    assert_eq!(counts, [2, 6]);
    for r in pods {
        assert_eq!(r["answered_ping"], r["pods"], "{r}");
        assert!(number(r, "tcp_gbps") > 0.0, "{r}");
        assert!(number(r, "tcp_segments") > 0.0, "{r}");
        assert!(number(r, "cycles_per_packet") > 0.0, "{r}");
        assert!(number(r, "rss_kb") > 0.0, "{r}");
        for figure in [
            "tcp_retransmits",
            "socket_drops",
            "fill_ring_empty",
            "rr.p50_us",
            "rr.p99_us",
            "largest_whole_burst",
        ] {
            number(r, figure);
        }
    }
    assert!(stdout.contains("pods per node"), "{stdout}");

    // The in-memory pipeline matrix: 3 scenarios × 2 sizes × 3 table sizes.
    let pipeline = json["pipeline"].as_array().unwrap();
    assert_eq!(pipeline.len(), 18);
    for r in pipeline {
        number(r, "mpps");
        number(r, "ns_per_packet");
    }

    // Every file it names exists: 12 HdrHistogram logs and 4 plots of the
    // two-node paths, a log per measured row and case (every row with OVS
    // installed, all but ovs-vxlan without, × 4 cases) and 4 plots of the
    // node under test.
    let nut_rows = if ExternalKind::Ovs.check_installed().is_ok() {
        NutRow::ALL.len()
    } else {
        NutRow::ALL.len() - 1
    };
    let files: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".hlog")).count(),
        12 + 4 * nut_rows
    );
    assert_eq!(files.iter().filter(|f| f.ends_with(".svg")).count(), 8);
    let nut_file = |f: &&&str| {
        std::path::Path::new(f)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("nut-"))
    };
    assert_eq!(
        files
            .iter()
            .filter(nut_file)
            .filter(|f| f.ends_with(".hlog"))
            .count(),
        4 * nut_rows
    );
    assert_eq!(
        files
            .iter()
            .filter(nut_file)
            .filter(|f| f.ends_with(".svg"))
            .count(),
        4
    );
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.is_empty(), "{f} is empty");
        if f.ends_with(".svg") {
            assert!(text.contains("<polyline"), "{f} has no curve");
        } else {
            assert!(text.contains("#[StartTime:"), "{f} is no HdrHistogram log");
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
}
