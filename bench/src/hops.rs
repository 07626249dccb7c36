//! The hand-offs of a round trip: where a low-rate request/response spends
//! its time between cores, from kernel tracepoints.
//!
//! A cpu-clock profile (the `profile` module) shows where busy cores spend
//! their time, but not what a round trip waits for: at a low rate every
//! core is mostly idle, and the time goes to waking them. `kxdp-bench nut
//! --profile DIR` therefore also runs one extra blocking/low case per row
//! under `perf record -a` of the scheduler, IPI, softirq, XDP and `sendto`
//! tracepoints, and writes `<row>-r<round>-latency-hops.txt`
//! ([`hand_offs`]): how many inter-processor interrupts each round trip
//! sends, how long an idle core takes from such an interrupt to its first
//! traced event (the vCPU's wake-up: on a VM with guest halt polling off,
//! a VM exit and entry), and, on a kxdp node, how long the worker takes
//! from a frame's XDP redirect to its next `sendto` (the dataplane's own
//! part of each hop).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::profile::{self, Recording};

/// The tracepoints [`hand_offs`] reads.
const EVENTS: &[&str] = &[
    "sched:sched_switch",
    "sched:sched_wakeup",
    "ipi:ipi_send_cpu",
    "irq:softirq_entry",
    "xdp:xdp_redirect",
    "syscalls:sys_enter_sendto",
];

/// A running tracepoint recording; [`HopTrace::finish`] stops it and
/// writes the report.
#[derive(Debug)]
pub struct HopTrace {
    recording: Recording,
}

impl HopTrace {
    /// Start recording [`EVENTS`] on every core into `data`.
    pub fn start(data: &Path) -> Result<HopTrace> {
        let mut args = vec!["-a", "--quiet"];
        for event in EVENTS {
            args.extend(["-e", event]);
        }
        Ok(HopTrace {
            recording: Recording::start(&args, data)?,
        })
    }

    /// Stop recording and write `<data>.txt`, the [`hand_offs`] of
    /// `round_trips` round trips. Returns its path and the report.
    pub fn finish(mut self, round_trips: u64) -> Result<(PathBuf, String)> {
        let data = self.recording.stop()?;
        let script = profile::perf(&["script", "-F", "comm,tid,cpu,time,event,trace"], data)?;
        let report = hand_offs(&String::from_utf8_lossy(&script), round_trips);
        let text = self.recording.report_path();
        std::fs::write(&text, &report).with_context(|| format!("writing {}", text.display()))?;
        Ok((text, report))
    }
}

/// The trace of one row's extra blocking/low case:
/// `<dir>/<row>-latency-hops.data`, started where `dir` is set.
pub fn start_in(dir: Option<&Path>, row: &str) -> Result<Option<HopTrace>> {
    let Some(dir) = dir else { return Ok(None) };
    let data = dir.join(format!("{row}-latency-hops.data"));
    HopTrace::start(&data)
        .with_context(|| format!("tracing {row}'s hand-offs"))
        .map(Some)
}

/// One line of `perf script -F comm,tid,cpu,time,event,trace`.
#[derive(Debug, PartialEq)]
struct Event<'a> {
    comm: &'a str,
    cpu: u32,
    /// Microseconds.
    time_us: f64,
    name: &'a str,
    trace: &'a str,
}

/// Parse one line; `None` for anything else (perf's warnings, garbage).
/// The command may hold spaces, so the line is read around the first
/// `[<digits>]`, the core.
fn parse(line: &str) -> Option<Event<'_>> {
    let mut search = 0;
    let (open, close) = loop {
        let open = search + line[search..].find('[')?;
        let close = open + line[open..].find(']')?;
        let digits = &line[open + 1..close];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            break (open, close);
        }
        search = open + 1;
    };
    let cpu = line[open + 1..close].parse().ok()?;
    // "<comm> <tid>" before the core.
    let head = line[..open].trim_end();
    let comm = head
        .rsplit_once(char::is_whitespace)
        .map_or(head, |(c, _)| c)
        .trim();
    let mut rest = line[close + 1..].trim_start().splitn(2, ": ");
    let time_us = rest.next()?.trim().parse::<f64>().ok()? * 1e6;
    let tail = rest.next()?.trim_start();
    let (name, trace) = tail
        .split_once(": ")
        .unwrap_or((tail.trim_end_matches(':'), ""));
    Some(Event {
        comm,
        cpu,
        time_us,
        name: name.trim(),
        trace: trace.trim(),
    })
}

/// The value of `key=` in a tracepoint's text.
fn field<'a>(trace: &'a str, key: &str) -> Option<&'a str> {
    trace
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// p10 / p50 / p90 / max of `values` (µs), and how many.
fn quantiles(values: &mut [f64]) -> String {
    if values.is_empty() {
        return "none".to_string();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "p10 {:.1} · p50 {:.1} · p90 {:.1} · max {:.1} µs (n = {})",
        at(0.1),
        at(0.5),
        at(0.9),
        values[values.len() - 1],
        values.len()
    )
}

/// What an IPI asks its target core to do, by its call site, and so the
/// traced event that shows the target did it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Handler {
    /// `generic_exec_single` (RPS hands a packet over): the target's next
    /// softirq.
    Softirq,
    /// `ttwu_queue_wakelist`: the target's next task wake-up.
    Wakeup,
    /// Anything else: whichever of the two comes first.
    Either,
}

impl Handler {
    fn of(trace: &str) -> Handler {
        match field(trace, "callsite") {
            Some(c) if c.starts_with("generic_exec_single") => Handler::Softirq,
            Some(c) if c.starts_with("ttwu_queue_wakelist") => Handler::Wakeup,
            _ => Handler::Either,
        }
    }

    fn done_by(self, event: &str) -> bool {
        match self {
            Handler::Softirq => event == "irq:softirq_entry",
            Handler::Wakeup => event == "sched:sched_wakeup",
            Handler::Either => matches!(event, "irq:softirq_entry" | "sched:sched_wakeup"),
        }
    }
}

/// IPIs from one core to another, the target idle or not when sent.
type IpiKey = (u32, u32, bool);

/// From the trace of `round_trips` low-rate round trips: the IPIs per round
/// trip by sender and target core (and whether the target was idle), the
/// time from each to the traced event of its handler on the target (the
/// softirq for RPS, the wake-up for a remote wake-up), and a kxdp worker's
/// time from an XDP redirect on another core to its next `sendto`.
pub fn hand_offs(script: &str, round_trips: u64) -> String {
    let events: Vec<Event<'_>> = script.lines().filter_map(parse).collect();
    // Whether each core runs its idle task, from sched_switch.
    let mut idle: BTreeMap<u32, bool> = BTreeMap::new();
    let mut ipis: BTreeMap<IpiKey, (u64, Vec<f64>)> = BTreeMap::new();
    // IPIs whose handler has not run yet, per target core.
    let mut pending: BTreeMap<u32, Vec<(f64, Handler, IpiKey)>> = BTreeMap::new();
    let mut redirects: Vec<(u32, f64)> = Vec::new();
    let mut reaction_us = Vec::new();
    let mut worker_cores: BTreeMap<u32, u64> = BTreeMap::new();
    for e in &events {
        if let Some(waiting) = pending.get_mut(&e.cpu) {
            waiting.retain(|(t0, handler, key)| {
                if !handler.done_by(e.name) {
                    return true;
                }
                if let Some((_, delays)) = ipis.get_mut(key) {
                    delays.push(e.time_us - t0);
                }
                false
            });
        }
        match e.name {
            "sched:sched_switch" => {
                if let Some(next) = field(e.trace, "next_pid") {
                    idle.insert(e.cpu, next == "0");
                }
            }
            "ipi:ipi_send_cpu" => {
                let Some(target) = field(e.trace, "cpu").and_then(|c| c.parse::<u32>().ok()) else {
                    continue;
                };
                if target == e.cpu {
                    continue;
                }
                let key = (e.cpu, target, idle.get(&target).copied().unwrap_or(false));
                ipis.entry(key).or_default().0 += 1;
                pending
                    .entry(target)
                    .or_default()
                    .push((e.time_us, Handler::of(e.trace), key));
            }
            "xdp:xdp_redirect" => redirects.push((e.cpu, e.time_us)),
            "syscalls:sys_enter_sendto" if e.comm.starts_with("kxdp-worker") => {
                *worker_cores.entry(e.cpu).or_default() += 1;
                // Redirects on another core since the worker's last sendto
                // (one on the worker's own core ran inside its syscalls).
                for (cpu, t) in redirects.drain(..) {
                    if cpu != e.cpu {
                        reaction_us.push(e.time_us - t);
                    }
                }
            }
            _ => {}
        }
    }
    let per_trip = |n: u64| n as f64 / round_trips.max(1) as f64;
    let mut out = format!(
        "hand-offs of {round_trips} blocking/low round trips ({} events traced)\n",
        events.len()
    );
    let total: u64 = ipis.values().map(|(n, _)| n).sum();
    out.push_str(&format!(
        "inter-processor interrupts: {:.2} per round trip; sent -> the target's softirq or wake-up:\n",
        per_trip(total),
    ));
    for ((from, to, to_idle), (n, delays)) in &mut ipis {
        out.push_str(&format!(
            "  core {from} -> core {to} ({}): {:.2} per round trip, {}\n",
            if *to_idle { "idle" } else { "busy" },
            per_trip(*n),
            quantiles(delays)
        ));
    }
    if worker_cores.is_empty() {
        out.push_str("no kxdp worker in the trace\n");
    } else {
        out.push_str(&format!(
            "kxdp worker (core {}), XDP redirect on another core -> its next sendto: {}\n",
            worker_cores
                .keys()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            quantiles(&mut reaction_us)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two round trips of a kxdp node, cut down from a real trace: core 0
    // idles, the worker on core 1 sends an IPI each way.
    const SCRIPT: &str = "\
      kxdp-bench 1182 [000] 100.000000: sched:sched_switch: prev_comm=kxdp-bench prev_pid=1182 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
      kxdp-bench 1182 [000] 100.000010: xdp:xdp_redirect: prog_id=1 action=REDIRECT ifindex=3 to_ifindex=0 err=0 map_id=1 map_index=0
   kxdp-worker-0 1170 [001] 100.000012: syscalls:sys_enter_sendto: fd: 0x0000000d, buff: 0x00000000
   kxdp-worker-0 1170 [001] 100.000014: ipi:ipi_send_cpu: cpu=0 callsite=generic_exec_single+0x36 callback=x
         swapper 0 [000] 100.000036: irq:softirq_entry: vec=3 [action=NET_RX]
         swapper 0 [000] 100.000040: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=udp echo next_pid=1181 next_prio=120
       udp echo 1181 [000] 100.000050: xdp:xdp_redirect: prog_id=2 action=REDIRECT ifindex=2 to_ifindex=0 err=0 map_id=2 map_index=0
       udp echo 1181 [000] 100.000051: sched:sched_switch: prev_comm=udp echo prev_pid=1181 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
   kxdp-worker-0 1170 [001] 100.000054: syscalls:sys_enter_sendto: fd: 0x0000000e, buff: 0x00000000
   kxdp-worker-0 1170 [001] 100.000056: ipi:ipi_send_cpu: cpu=0 callsite=ttwu_queue_wakelist+0x11d callback=x
         swapper 0 [000] 100.000060: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 ==> next_comm=ksoftirqd/0 next_pid=14
     ksoftirqd/0 14 [000] 100.000061: sched:sched_switch: prev_comm=ksoftirqd/0 prev_pid=14 ==> next_comm=swapper/0 next_pid=0
         swapper 0 [000] 100.000090: sched:sched_wakeup: comm=kxdp-bench pid=1182 prio=120 target_cpu=000
warning: not an event
";

    #[test]
    fn a_line_is_read_around_its_core_even_with_spaces_in_the_command() {
        let e = parse(
            "       udp echo 1181 [000] 100.000050: xdp:xdp_redirect: prog_id=2 action=REDIRECT",
        )
        .expect("parses");
        assert_eq!(e.comm, "udp echo");
        assert_eq!(e.cpu, 0);
        assert!((e.time_us - 100_000_050.0).abs() < 0.01, "{}", e.time_us);
        assert_eq!(e.name, "xdp:xdp_redirect");
        assert_eq!(field(e.trace, "action"), Some("REDIRECT"));
        assert_eq!(parse("warning: not an event"), None);
        assert_eq!(parse("x [12 100.0: a: b"), None);
    }

    #[test]
    fn ipis_are_timed_to_their_handler_and_the_worker_to_its_reaction() {
        let report = hand_offs(SCRIPT, 2);
        assert!(report.contains("1.00 per round trip; sent ->"), "{report}");
        // Both IPIs found core 0 idle: RPS at 14 µs, its softirq at 36;
        // the wake-up at 56, the wake at 90 (not the sched_switch at 60).
        assert!(
            report.contains(
                "core 1 -> core 0 (idle): 1.00 per round trip, p10 22.0 · p50 34.0 · p90 34.0 · max 34.0 µs (n = 2)"
            ),
            "{report}"
        );
        // Redirects at 10 and 50 µs, the worker's sendtos at 12 and 54.
        assert!(
            report.contains(
                "kxdp worker (core 1), XDP redirect on another core -> its next sendto: p10 2.0 · p50 4.0"
            ),
            "{report}"
        );
    }

    #[test]
    fn a_kernel_node_shows_no_worker_and_a_busy_target_is_told_apart() {
        let script = "\
  a 1 [000] 1.000000: sched:sched_switch: prev_comm=a prev_pid=1 ==> next_comm=b next_pid=2
  c 3 [001] 1.000001: ipi:ipi_send_cpu: cpu=0 callsite=generic_exec_single+0x36
  b 2 [000] 1.000002: sched:sched_wakeup: comm=d pid=4
  b 2 [000] 1.000005: irq:softirq_entry: vec=3
  c 3 [001] 1.000006: ipi:ipi_send_cpu: cpu=1 callsite=x
";
        let report = hand_offs(script, 2);
        assert!(report.contains("0.50 per round trip; sent ->"), "{report}");
        // The RPS IPI's handler is the softirq at 5 µs, not the wake-up.
        assert!(
            report.contains("core 1 -> core 0 (busy): 0.50 per round trip, p10 4.0"),
            "{report}"
        );
        // An IPI to the sending core itself is no hand-off.
        assert!(!report.contains("core 1 -> core 1"), "{report}");
        assert!(report.contains("no kxdp worker in the trace"), "{report}");
        assert!(hand_offs("", 0).contains("0.00 per round trip"));
    }
}
