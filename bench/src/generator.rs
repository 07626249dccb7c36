//! The packet-rate generator: an AF_XDP socket on a pod's `eth0` that
//! transmits pre-built 64-byte UDP frames in a tight loop, and the counting
//! sink that measures what arrives ([`Sink`], an XDP program that counts
//! and drops, from `kxdp_dataplane::bpf`).
//!
//! A UDP socket sender tops out near 100–150 kpps per core on this machine
//! (the whole socket and IP stack per datagram); the generator skips it: the
//! frames are written once into the UMEM (one frame per chunk, flows
//! spread over the chunks by varying the UDP source port) and after that
//! each loop only moves descriptors: reclaim completions, queue up to a
//! batch on the tx ring, and call `sendto` only when the kernel needs a
//! wakeup ([`PacketIo::kick`]; on a copy-mode socket that is whenever the
//! tx ring holds frames: the kernel transmits at most 32 per call).
//!
//! On veth the socket binds in copy mode: each frame becomes an skb that
//! the veth hands to its peer, so the peer's receive work (veth NAPI, its
//! XDP program) runs in this thread's softirq unless that veth is in
//! threaded NAPI mode. The frames are valid: IPv4 header checksum and UDP
//! checksum both computed, so every kernel path accepts them.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use kxdp_config::MacAddr;
use kxdp_dataplane::bpf::{AttachedMode, XdpAttachMode, XdpCount, XdpCounter};
use kxdp_dataplane::io::{Desc, PacketIo};
use kxdp_dataplane::xsk::{XskBackend, XskOptions, XskPortSpec};
use kxdp_testbed::Netns;

/// Ethernet + IPv4 + UDP headers.
const HEADERS: usize = 14 + 20 + 8;
/// Descriptors queued per loop.
const BATCH: usize = 64;
/// The generator's UMEM: chunks, and entries of each ring.
const FRAME_COUNT: u32 = 4096;
const FRAME_SIZE: u32 = 2048;
const RING_SIZE: u32 = 2048;

/// What the generator sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// Source MAC (the pod's `eth0`).
    pub src_mac: MacAddr,
    /// Destination MAC (the pod's gateway as its neighbour table has it).
    pub dst_mac: MacAddr,
    /// Source address (the pod's).
    pub src_ip: Ipv4Addr,
    /// Destination address (the receiving pod's).
    pub dst_ip: Ipv4Addr,
    /// UDP source port of flow 0; flow i uses `src_port + i`.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Number of flows (distinct source ports), at least 1.
    pub flows: u16,
    /// Frame length as handed to the interface (no FCS), at least 42 + 1.
    pub frame_bytes: usize,
}

impl FlowSpec {
    /// The frame of flow `flow` (0-based, taken modulo `flows`): Ethernet,
    /// IPv4 (TTL 64, DF clear, header checksum), UDP (checksum computed),
    /// and a payload of `frame_bytes - 42` bytes.
    pub fn frame(&self, flow: u16) -> Result<Vec<u8>> {
        if self.frame_bytes <= HEADERS || self.frame_bytes > FRAME_SIZE as usize {
            return Err(anyhow!(
                "frame size {} (must be {} to {FRAME_SIZE})",
                self.frame_bytes,
                HEADERS + 1
            ));
        }
        let flow = flow % self.flows.max(1);
        let payload: Vec<u8> = (0..self.frame_bytes - HEADERS)
            .map(|i| (i as u8).wrapping_add(0x40))
            .collect();
        let builder = etherparse::PacketBuilder::ethernet2(self.src_mac.0, self.dst_mac.0)
            .ipv4(self.src_ip.octets(), self.dst_ip.octets(), 64)
            .udp(self.src_port.wrapping_add(flow), self.dst_port);
        let mut frame = Vec::with_capacity(self.frame_bytes);
        builder
            .write(&mut frame, &payload)
            .context("building a generator frame")?;
        Ok(frame)
    }
}

/// How the generator runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorOptions {
    /// Interface to transmit on, in the namespace given to [`Generator::start`].
    pub ifname: String,
    /// Core to pin the generator thread to.
    pub core: Option<usize>,
    /// Nice value of the generator thread (19: it gets only what the
    /// kernel threads sharing its core leave, so it cannot starve the
    /// receive work it measures).
    pub nice: Option<i32>,
}

/// What a generator did, when stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GeneratorTotals {
    /// Frames the kernel took off the tx ring and completed (handed to the
    /// interface, or dropped by it: see the interface's tx_dropped).
    pub completed: u64,
    /// `sendto` wakeups issued.
    pub kicks: u64,
    /// CPU time of the generator thread itself (user + system), seconds.
    pub thread_cpu_seconds: f64,
}

/// A running generator thread; see the module documentation.
#[derive(Debug)]
pub struct Generator {
    stop: Arc<AtomicBool>,
    completed: Arc<AtomicU64>,
    /// `/proc/<pid>/task/<tid>/stat` of the generator thread, once known.
    thread_stat: Arc<std::sync::Mutex<Option<std::path::PathBuf>>>,
    handle: Option<JoinHandle<kxdp_testbed::Result<Result<GeneratorTotals>>>>,
}

impl Generator {
    /// Open an AF_XDP socket on `options.ifname` in `netns` (copy mode,
    /// queue 0), write one frame per UMEM chunk (flow = chunk index modulo
    /// `flows.flows`), and transmit until stopped. Returns once the socket
    /// is bound and transmitting (or with the error that prevented it).
    pub fn start(netns: &Netns, flows: &FlowSpec, options: &GeneratorOptions) -> Result<Generator> {
        let frames: Vec<Vec<u8>> = (0..flows.flows.max(1))
            .map(|f| flows.frame(f))
            .collect::<Result<_>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicU64::new(0));
        let thread_stat = Arc::new(std::sync::Mutex::new(None));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let ifname = options.ifname.clone();
        let core = options.core;
        let nice = options.nice;
        let (stop2, completed2, stat2) = (stop.clone(), completed.clone(), thread_stat.clone());
        let handle = netns
            .spawn_in(move || {
                transmit_loop(
                    &ifname,
                    core,
                    nice,
                    &frames,
                    &stop2,
                    &completed2,
                    &stat2,
                    &ready_tx,
                )
            })
            .context("starting the generator thread")?;
        let mut generator = Generator {
            stop,
            completed,
            thread_stat,
            handle: Some(handle),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(generator),
            Ok(Err(e)) => {
                let _ = generator.stop();
                Err(e)
            }
            Err(_) => {
                // The thread ended (or hangs) without a word: its result says why.
                let why = generator.stop().err();
                Err(why.unwrap_or_else(|| anyhow!("the generator did not start")))
            }
        }
    }

    /// Frames completed so far (updated by the generator every loop).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// CPU seconds the generator thread has used so far (user + system, from
    /// /proc; softirq work it triggers is not included when the kernel
    /// accounts IRQ time separately).
    pub fn thread_cpu_seconds(&self) -> Option<f64> {
        let path = self.thread_stat.lock().ok()?.clone()?;
        thread_cpu_seconds(&path)
    }

    /// Stop the thread and return its totals.
    pub fn stop(&mut self) -> Result<GeneratorTotals> {
        self.stop.store(true, Ordering::Relaxed);
        let Some(handle) = self.handle.take() else {
            return Err(anyhow!("the generator was already stopped"));
        };
        match handle.join() {
            Ok(Ok(result)) => result,
            Ok(Err(testbed_error)) => Err(testbed_error.into()),
            Err(_) => Err(anyhow!("the generator thread panicked")),
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        if self.handle.is_some() {
            let _ = self.stop();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn transmit_loop(
    ifname: &str,
    core: Option<usize>,
    nice: Option<i32>,
    frames: &[Vec<u8>],
    stop: &AtomicBool,
    completed: &AtomicU64,
    thread_stat: &std::sync::Mutex<Option<std::path::PathBuf>>,
    ready: &std::sync::mpsc::Sender<Result<()>>,
) -> Result<GeneratorTotals> {
    let setup = || -> Result<(XskBackend, Vec<u64>, u32)> {
        if core.is_some() && !kxdp_dataplane::worker::pin_to_core(core) {
            return Err(anyhow!("cannot pin the generator to core {core:?}"));
        }
        let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
        if let Ok(mut slot) = thread_stat.lock() {
            *slot = Some(std::path::Path::new("/proc").join(&link).join("stat"));
        }
        if let Some(nice) = nice {
            let tid = link
                .file_name()
                .and_then(|t| t.to_str())
                .ok_or_else(|| anyhow!("no thread id in {}", link.display()))?
                .to_string();
            renice(&tid, nice)?;
        }
        let options = XskOptions {
            frame_size: FRAME_SIZE,
            frame_count: FRAME_COUNT,
            ring_size: RING_SIZE,
            zero_copy: false,
            force_copy: true,
        };
        let port = XskPortSpec {
            ifname: ifname.to_string(),
            queue_id: 0,
        };
        let mut xsk = XskBackend::open(&[port], &options)
            .with_context(|| format!("opening an AF_XDP socket on {ifname}"))?;
        let frame_len = frames.first().map_or(0, Vec::len);
        let len = u32::try_from(frame_len).context("frame length")?;
        let umem = xsk.umem();
        let mut free = Vec::with_capacity(FRAME_COUNT as usize);
        for chunk in 0..FRAME_COUNT as usize {
            let at = chunk * FRAME_SIZE as usize;
            let frame = &frames[chunk % frames.len()];
            umem[at..at + frame.len()].copy_from_slice(frame);
            free.push(at as u64);
        }
        Ok((xsk, free, len))
    };
    let (mut xsk, mut free, len) = match setup() {
        Ok(v) => {
            let _ = ready.send(Ok(()));
            v
        }
        Err(e) => {
            let message = format!("{e:#}");
            let _ = ready.send(Err(e));
            return Err(anyhow!(message));
        }
    };

    let mut totals = GeneratorTotals::default();
    let mut descs = [Desc::default(); BATCH];
    let mut done = [0u64; BATCH];
    while !stop.load(Ordering::Relaxed) {
        let n = xsk.complete(0, &mut done);
        free.extend_from_slice(&done[..n]);
        totals.completed += n as u64;
        completed.store(totals.completed, Ordering::Relaxed);

        let want = free.len().min(BATCH);
        let start = free.len() - want;
        for (d, &addr) in descs.iter_mut().zip(&free[start..]) {
            *d = Desc { addr, len };
        }
        let queued = xsk.transmit(0, &descs[..want]);
        // The first `queued` descriptors went on the ring: drop them from
        // the free list, keeping the rest.
        free.drain(start..start + queued);
        if let Err(e) = xsk.kick(0) {
            return Err(anyhow!("sendto on the generator socket: {e}"));
        }
        totals.kicks += 1;
    }
    if let Some(path) = thread_stat.lock().ok().and_then(|s| s.clone()) {
        totals.thread_cpu_seconds = thread_cpu_seconds(&path).unwrap_or(0.0);
    }
    Ok(totals)
}

/// Set the nice value of thread `tid` (`renice`, util-linux).
fn renice(tid: &str, nice: i32) -> Result<()> {
    let out = std::process::Command::new("renice")
        .args(["-n", &nice.to_string(), "-p", tid])
        .output()
        .context("running renice (package bsdutils)")?;
    if !out.status.success() {
        return Err(anyhow!(
            "renice -n {nice} -p {tid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// utime + stime of a `/proc/…/stat` file, in seconds (USER_HZ = 100).
fn thread_cpu_seconds(stat: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    parse_stat_cpu_seconds(&text)
}

fn parse_stat_cpu_seconds(text: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces: fields count from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The receiving end of a rate measurement: [`XdpCounter`] attached to an
/// interface of a testbed namespace (native mode), counting and dropping
/// every frame that arrives.
#[derive(Debug)]
pub struct Sink {
    counter: XdpCounter,
    netns: String,
}

impl Sink {
    /// Attach the counting sink to `ifname` in `netns` (native mode).
    pub fn attach(netns: &Netns, ifname: &str) -> Result<Sink> {
        Sink::attach_in_mode(netns, ifname, XdpAttachMode::Native)
    }

    /// Attach the counting sink in `mode`. Native XDP on a veth sees only
    /// the frames its peer hands to its NAPI: not those the peer transmits
    /// with TSO on unless they come from a local socket
    /// (`veth_skb_is_eligible_for_gro`), which go to the transmitting CPU's
    /// backlog instead. Generic XDP sees those too.
    pub fn attach_in_mode(netns: &Netns, ifname: &str, mode: XdpAttachMode) -> Result<Sink> {
        let name = ifname.to_string();
        let counter = netns
            .run_in(move || XdpCounter::attach(&name, mode))?
            .with_context(|| {
                format!(
                    "attaching the counting sink to {ifname} in {}",
                    netns.name()
                )
            })?;
        Ok(Sink {
            counter,
            netns: netns.name().to_string(),
        })
    }

    /// What arrived so far.
    pub fn read(&self) -> Result<XdpCount> {
        self.counter.read().context("reading the sink's counter")
    }

    /// Where it is attached (`netns/ifname`) and in which mode.
    pub fn describe(&self) -> String {
        let mode = match self.counter.mode() {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        };
        format!("{}/{} ({mode} XDP)", self.netns, self.counter.ifname())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(flows: u16, frame_bytes: usize) -> FlowSpec {
        FlowSpec {
            src_mac: MacAddr([2, 0, 0, 0x10, 1, 0]),
            dst_mac: MacAddr([2, 0, 0, 0x11, 1, 0]),
            src_ip: Ipv4Addr::new(10, 244, 1, 2),
            dst_ip: Ipv4Addr::new(10, 244, 2, 2),
            src_port: 40000,
            dst_port: 9,
            flows,
            frame_bytes,
        }
    }

    /// The Internet checksum of `data` folded to 16 bits (0 when `data`
    /// already holds a correct checksum).
    fn fold(data: &[u8], mut sum: u32) -> u16 {
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn frames_are_valid_udp_with_correct_checksums() {
        let s = spec(4, 64);
        for flow in 0..6u16 {
            let f = s.frame(flow).unwrap();
            assert_eq!(f.len(), 64);
            assert_eq!(&f[0..6], &s.dst_mac.0);
            assert_eq!(&f[6..12], &s.src_mac.0);
            assert_eq!(&f[12..14], &[0x08, 0x00]);
            let ip = &f[14..34];
            assert_eq!(ip[0], 0x45);
            assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 50, "IPv4 total length");
            assert_eq!(ip[9], 17);
            assert_eq!(fold(ip, 0), 0, "IPv4 header checksum");
            let udp = &f[34..];
            assert_eq!(
                u16::from_be_bytes([udp[0], udp[1]]),
                40000 + flow % 4,
                "source port varies by flow"
            );
            assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 9);
            assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 30, "UDP length");
            let udp_sum = u16::from_be_bytes([udp[6], udp[7]]);
            assert_ne!(udp_sum, 0, "the UDP checksum is computed");
            // Pseudo-header: addresses, protocol, UDP length.
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip[12..20]);
            pseudo.extend_from_slice(&[0, 17, 0, 30]);
            pseudo.extend_from_slice(udp);
            assert_eq!(fold(&pseudo, 0), 0, "UDP checksum of flow {flow}");
        }
        // etherparse agrees.
        let frame = s.frame(1).unwrap();
        let parsed = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
        assert!(matches!(
            parsed.transport,
            Some(etherparse::TransportSlice::Udp(_))
        ));
    }

    #[test]
    fn frame_sizes_are_checked() {
        assert!(spec(1, 42).frame(0).is_err());
        assert!(spec(1, 4096).frame(0).is_err());
        assert_eq!(spec(1, 1500).frame(0).unwrap().len(), 1500);
        // Zero flows behaves as one.
        assert_eq!(spec(0, 64).frame(3).unwrap(), spec(1, 64).frame(0).unwrap());
    }

    #[test]
    fn parses_thread_cpu_time_from_proc_stat() {
        let line = "1234 (gen thread) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 99";
        assert_eq!(parse_stat_cpu_seconds(line), Some(3.0));
        assert_eq!(parse_stat_cpu_seconds("garbage"), None);
        let own = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        assert!(parse_stat_cpu_seconds(&own).is_some());
    }
}
