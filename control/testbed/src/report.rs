//! Result rows of pod-pair measurements and the aligned table the demo and
//! the benchmarks print.

use std::fmt;
use std::time::Duration;

use super::traffic::RttResult;

/// The path a pod pair's packets take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// Both pods on one node.
    SameNode,
    /// Pods on two kxdp nodes (VXLAN between them).
    CrossNode,
    /// Pods on two nodes, at least one of them a kernel vxlan node.
    KernelNode,
}

impl PathKind {
    /// The label printed in tables: `same-node`, `cross-node`, `kernel-node`.
    pub fn label(self) -> &'static str {
        match self {
            PathKind::SameNode => "same-node",
            PathKind::CrossNode => "cross-node",
            PathKind::KernelNode => "kernel-node",
        }
    }
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One row: a measurement between two pods.
#[derive(Clone, Debug, PartialEq)]
pub struct PairResult {
    /// The pair, e.g. `blue-a -> blue-b`.
    pub pair: String,
    /// The path label, e.g. [`PathKind::label`].
    pub path: String,
    /// `udp`, `tcp`, `icmp`…
    pub protocol: String,
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Loss in percent.
    pub loss_percent: f64,
    /// Median round trip (none without replies).
    pub p50: Option<Duration>,
    /// 99th percentile round trip.
    pub p99: Option<Duration>,
}

impl PairResult {
    /// A row from a measurement.
    pub fn new(pair: &str, path: &str, protocol: &str, rtt: &RttResult) -> PairResult {
        PairResult {
            pair: pair.to_string(),
            path: path.to_string(),
            protocol: protocol.to_string(),
            sent: rtt.sent,
            received: rtt.received,
            loss_percent: rtt.loss_percent(),
            p50: rtt.p50(),
            p99: rtt.p99(),
        }
    }
}

fn micros(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_string(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e6),
    )
}

/// The rows as an aligned text table with a header line, one line per row,
/// round trips in microseconds.
pub fn format_table(rows: &[PairResult]) -> String {
    let header = [
        "PAIR", "PATH", "PROTO", "SENT", "RECV", "LOSS%", "P50(us)", "P99(us)",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.pair.clone(),
                r.path.clone(),
                r.protocol.clone(),
                r.sent.to_string(),
                r.received.to_string(),
                format!("{:.1}", r.loss_percent),
                micros(r.p50),
                micros(r.p99),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_line = |cells: &[&str]| {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            // Text columns left-aligned, numbers right-aligned.
            if i < 3 {
                line.push_str(&format!("{cell:<width$}"));
            } else {
                line.push_str(&format!("{cell:>width$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_line(&header);
    for row in &cells {
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        push_line(&refs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_an_aligned_table() {
        let rows = vec![
            PairResult {
                pair: "blue-a -> blue-b".into(),
                path: PathKind::SameNode.label().into(),
                protocol: "udp".into(),
                sent: 100,
                received: 100,
                loss_percent: 0.0,
                p50: Some(Duration::from_nanos(42_300)),
                p99: Some(Duration::from_micros(120)),
            },
            PairResult {
                pair: "a -> k".into(),
                path: PathKind::KernelNode.to_string(),
                protocol: "icmp".into(),
                sent: 5,
                received: 0,
                loss_percent: 100.0,
                p50: None,
                p99: None,
            },
        ];
        let table = format_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("PAIR              PATH         PROTO"),
            "{table}"
        );
        assert!(
            lines[1].contains("same-node")
                && lines[1].contains("42.3")
                && lines[1].ends_with("120.0")
        );
        assert!(
            lines[2].contains("kernel-node")
                && lines[2].contains("100.0")
                && lines[2].ends_with('-')
        );
        // Columns line up: "PROTO" starts where "udp" and "icmp" start.
        let col = lines[0].find("PROTO").unwrap_or(0);
        assert_eq!(lines[1].find("udp"), Some(col));
        assert_eq!(lines[2].find("icmp"), Some(col));
    }
}
