//! System-wide profiles of a benchmark phase: `perf record -e cpu-clock -a
//! -g` while the phase runs, then a per-core report beside it.
//!
//! This VM exposes no hardware counters, so the sampling event is the
//! cpu-clock software timer (see MACHINE-NOTES). `-a` takes every core:
//! the node under test's worker, the pods' softirq work and the other
//! node's kernel path all show, each on the core it ran on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A running system-wide `perf record` into a file, shared by the profile
/// here and the `hops` trace; dropping it stops perf.
#[derive(Debug)]
pub(crate) struct Recording {
    child: Option<Child>,
    data: PathBuf,
}

impl Recording {
    /// Start `perf record <args> -o <data>` (its directory created).
    pub(crate) fn start(args: &[&str], data: &Path) -> Result<Recording> {
        if let Some(dir) = data.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let child = Command::new("perf")
            .arg("record")
            .args(args)
            .arg("-o")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting perf record (package linux-perf)")?;
        // perf needs a moment to open its events on every core.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Recording {
            child: Some(child),
            data: data.to_path_buf(),
        })
    }

    /// Stop perf (it writes its file out) and return the file; an error
    /// with perf's message when it failed and wrote nothing.
    pub(crate) fn stop(&mut self) -> Result<&Path> {
        let Some(child) = self.child.take() else {
            bail!("the recording was already stopped");
        };
        let output = stop(child)?;
        if !output.status.success() && !self.data.exists() {
            bail!(
                "perf record failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(&self.data)
    }

    /// `<data>.txt`, where a report on the recording goes.
    pub(crate) fn report_path(&self) -> PathBuf {
        let mut text = self.data.clone().into_os_string();
        text.push(".txt");
        PathBuf::from(text)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = stop(child);
        }
    }
}

/// A running `perf record`; [`Profile::finish`] stops it and writes the report.
#[derive(Debug)]
pub struct Profile {
    recording: Recording,
}

impl Profile {
    /// Start sampling every core into `data` (a `perf.data` file).
    pub fn start(data: &Path) -> Result<Profile> {
        Ok(Profile {
            recording: Recording::start(
                &["-e", "cpu-clock", "-a", "-g", "-F", "2000", "--quiet"],
                data,
            )?,
        })
    }

    /// Stop sampling and write `<data>.txt`: where each core's time went
    /// ([`where_time_goes`]), then the share of samples per core and
    /// command, then per core, command and symbol. Returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let data = self.recording.stop()?;
        // Where each core's time went, then who used each core, then what
        // they ran there.
        let script = perf(&["script", "-F", "cpu,comm,ip,sym"], data)?;
        let mut report = where_time_goes(&String::from_utf8_lossy(&script)).into_bytes();
        for sort in ["cpu,comm", "cpu,comm,sym"] {
            report.extend(perf(
                &[
                    "report",
                    "--stdio",
                    "--no-children",
                    "-g",
                    "none",
                    "--sort",
                    sort,
                    "--percent-limit",
                    "0.5",
                ],
                data,
            )?);
        }
        let text = self.recording.report_path();
        std::fs::write(&text, &report).with_context(|| format!("writing {}", text.display()))?;
        Ok(text)
    }
}

/// `perf <args> -i <data>`'s standard output; an error with perf's own
/// message when it fails.
pub(crate) fn perf(args: &[&str], data: &Path) -> Result<Vec<u8>> {
    let out = Command::new("perf")
        .args(args)
        .arg("-i")
        .arg(data)
        .output()
        .with_context(|| format!("running perf {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "perf {} on {} failed: {}",
            args[0],
            data.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// SIGINT `child` (perf then writes its file out) and wait for it.
fn stop(mut child: Child) -> Result<std::process::Output> {
    // std's Child can only SIGKILL, which leaves perf's file unfinished.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().context("waiting for perf record")
}

/// The profile of one row's phase: `<dir>/<row>-<phase>.data`, started
/// where `dir` is set.
pub fn start_in(dir: Option<&Path>, row: &str, phase: &str) -> Result<Option<Profile>> {
    let Some(dir) = dir else { return Ok(None) };
    let data = dir.join(format!("{row}-{phase}.data"));
    Profile::start(&data)
        .with_context(|| format!("profiling {row} {phase}"))
        .map(Some)
}

/// Parts of the path a sample can be in, each named by kernel or kxdp
/// functions; a sample belongs to the part of its innermost frame that
/// names one (a `memcpy` under `__xsk_rcv` is the copy into the UMEM).
const PARTS: &[(&str, &[&str])] = &[
    (
        "XDP on a veth: redirect and copy into the UMEM",
        &[
            "__xsk_rcv",
            "xsk_rcv",
            "__xsk_map_redirect",
            "xdp_do_redirect",
            "veth_xdp_rcv",
            "bpf_prog_",
            "xsk_generic_rcv",
            "veth_convert_skb_to_xdp_buff",
            "veth_poll",
        ],
    ),
    (
        "copy-mode AF_XDP transmit (skb build and copy)",
        &[
            "__xsk_generic_xmit",
            "xsk_generic_xmit",
            "xsk_build_skb",
            "xsk_sendmsg",
            "xsk_destruct_skb",
        ],
    ),
    (
        "TCP transmit (segments, GSO)",
        &[
            "tcp_write_xmit",
            "__tcp_transmit_skb",
            "tcp_sendmsg",
            "skb_segment",
            "__skb_gso_segment",
            "tcp_push",
        ],
    ),
    (
        "TCP receive and ACKs (softirq)",
        &[
            "tcp_v4_rcv",
            "tcp_rcv_established",
            "tcp_ack",
            "tcp_v4_do_rcv",
        ],
    ),
    (
        "recvmsg: copy to user",
        &["tcp_recvmsg", "_copy_to_iter", "skb_copy_datagram_iter"],
    ),
    (
        "vxlan encap and decap, UDP",
        &[
            "vxlan_rcv",
            "vxlan_xmit",
            "udp_tunnel_xmit_skb",
            "udp_rcv",
            "__udp4_lib_rcv",
            "vxlan_gro_receive",
            "gro_cells_receive",
            "gro_cell_poll",
        ],
    ),
    (
        "bridge",
        &[
            "br_handle_frame",
            "br_forward",
            "br_dev_xmit",
            "br_pass_frame_up",
            "__br_forward",
        ],
    ),
    (
        "IP receive, routing, output",
        &[
            "ip_rcv",
            "ip_forward",
            "ip_route_input",
            "ip_output",
            "ip_finish_output",
            "ip_local_deliver",
            "fib_table_lookup",
            "neigh_",
        ],
    ),
    (
        "veth transmit, netif_rx, backlog",
        &[
            "veth_xmit",
            "netif_rx",
            "__netif_rx",
            "enqueue_to_backlog",
            "process_backlog",
            "__netif_receive_skb",
            "dev_hard_start_xmit",
            "__dev_queue_xmit",
            "dev_direct_xmit",
            "napi_gro_receive",
        ],
    ),
    (
        "softirq, skb allocation and freeing",
        &[
            "net_rx_action",
            "handle_softirqs",
            "__do_softirq",
            "do_softirq",
            "kfree_skb",
            "skb_release",
            "napi_consume_skb",
            "__alloc_skb",
            "skb_defer_free_flush",
            "kmem_cache",
        ],
    ),
    (
        "wake-ups, scheduling, IPIs",
        &[
            "try_to_wake_up",
            "__schedule",
            "schedule",
            "finish_task_switch",
            "ttwu",
            "sched_",
            "__smp_call",
            "flush_smp_call",
            "sysvec_",
            "enqueue_task",
            "dequeue_task",
            "native_write_msr",
        ],
    ),
    (
        "idle (halted)",
        &["pv_native_safe_halt", "default_idle", "do_idle", "cpuidle"],
    ),
    (
        "syscall entry and exit, poll",
        &[
            "entry_SYSCALL",
            "do_syscall_64",
            "__sys_sendto",
            "syscall_exit",
            "__x64_sys",
            "do_sys_poll",
            "xsk_poll",
        ],
    ),
    (
        "clock_gettime (vDSO)",
        &[
            "clock_gettime",
            "__vdso_clock_gettime",
            "<std::sys::pal::unix::time::Timespec>",
        ],
    ),
];

/// The part of a sample of thread `comm` whose frames (innermost first)
/// are `frames`.
fn part_of<'a>(comm: &str, frames: impl IntoIterator<Item = &'a str>) -> &'static str {
    for frame in frames {
        // A kxdp thread's body is inlined into std's thread entry.
        if comm.starts_with("kxdp-") && frame.starts_with("std::sys::backtrace::") {
            return "kxdp's code (user space)";
        }
        for (part, names) in PARTS {
            if names.iter().any(|n| frame.starts_with(n)) {
                return part;
            }
        }
        // kxdp's own code: `kxdp_dataplane::…`, `<kxdp_…>::…`.
        if frame.trim_start_matches('<').starts_with("kxdp") {
            return "kxdp's code (user space)";
        }
    }
    "other"
}

/// From `perf script -F cpu,comm,ip,sym` output: per core, the share of
/// its samples in each part of the path ([`PARTS`]) and per thread.
pub fn where_time_goes(script: &str) -> String {
    use std::collections::BTreeMap;
    let mut parts: BTreeMap<u32, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut threads: BTreeMap<u32, BTreeMap<String, u64>> = BTreeMap::new();
    for sample in script.split("\n\n") {
        let mut lines = sample.lines().filter(|l| !l.trim().is_empty());
        let Some(head) = lines.next() else { continue };
        // "<comm> [<cpu>] "; a comm may hold spaces and brackets.
        let Some((comm, cpu)) = head.trim_end().rsplit_once('[') else {
            continue;
        };
        let Some(Ok(cpu)) = cpu.strip_suffix(']').map(str::parse::<u32>) else {
            continue;
        };
        // "<ip> <symbol>" per frame.
        let frames = lines.filter_map(|l| l.trim().split_once(' ').map(|(_, sym)| sym.trim()));
        *parts
            .entry(cpu)
            .or_default()
            .entry(part_of(comm.trim(), frames))
            .or_default() += 1;
        *threads
            .entry(cpu)
            .or_default()
            .entry(comm.trim().to_string())
            .or_default() += 1;
    }
    let mut out = String::from("# Where each core's time went (cpu-clock samples)\n");
    for (cpu, counts) in &parts {
        let total: u64 = counts.values().sum();
        let share = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
        out.push_str(&format!("core {cpu}: {total} samples\n"));
        let mut sorted: Vec<(&&str, &u64)> = counts.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (part, n) in sorted {
            out.push_str(&format!("  {:5.1} %  {part}\n", share(*n)));
        }
        if let Some(by_thread) = threads.get(cpu) {
            let mut sorted: Vec<(&String, &u64)> = by_thread.iter().collect();
            sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let listed: Vec<String> = sorted
                .iter()
                .filter(|(_, n)| share(**n) >= 1.0)
                .map(|(t, n)| format!("{t} {:.0} %", share(**n)))
                .collect();
            out.push_str(&format!("  threads: {}\n", listed.join(", ")));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "\
kxdp-worker-0 [001] \n\
\tffffffff81000001 __pi_memcpy\n\
\tffffffff81000002 xsk_build_skb\n\
\tffffffff81000003 __xsk_generic_xmit\n\
\tffffffff81000004 __sys_sendto\n\
\n\
swapper [000] \n\
\tffffffff81000005 pv_native_safe_halt\n\
\tffffffff81000006 do_idle\n\
\n\
kxdp-worker-0 [001] \n\
\t          d62292 std::sys::backtrace::__rust_begin_short_backtrace\n\
\n\
tcp-sink: x [000] \n\
\tffffffff81000007 __pi_memcpy\n\
\tffffffff81000008 __xsk_rcv\n\
\tffffffff81000009 xdp_do_redirect\n\
\tffffffff8100000a tcp_write_xmit\n\
\n\
kxdp-worker-0 [001] \n\
\tffffffff8100000b something_unknown\n";

    #[test]
    fn samples_go_to_the_innermost_named_part_of_their_core() {
        let table = where_time_goes(SCRIPT);
        let core = |n: u32| {
            let start = table.find(&format!("core {n}:")).expect("core listed");
            let rest = &table[start..];
            let end = rest[1..].find("core ").map_or(rest.len(), |e| e + 1);
            rest[..end].to_string()
        };
        let one = core(1);
        assert!(one.starts_with("core 1: 3 samples"), "{table}");
        assert!(one.contains("33.3 %  copy-mode AF_XDP transmit"), "{table}");
        assert!(one.contains("33.3 %  kxdp's code (user space)"), "{table}");
        assert!(one.contains("33.3 %  other"), "{table}");
        assert!(one.contains("threads: kxdp-worker-0 100 %"), "{table}");
        let zero = core(0);
        assert!(zero.starts_with("core 0: 2 samples"), "{table}");
        // Under tcp_write_xmit, but the copy into the UMEM is innermost.
        assert!(
            zero.contains("50.0 %  XDP on a veth: redirect and copy into the UMEM"),
            "{table}"
        );
        assert!(zero.contains("50.0 %  idle (halted)"), "{table}");
        assert!(zero.contains("tcp-sink: x 50 %"), "{table}");
    }

    #[test]
    fn garbage_gives_an_empty_table_not_a_panic() {
        let table = where_time_goes("no brackets here\n\n[x]\n\nname [12\n");
        assert!(!table.contains("core "), "{table}");
    }
}
