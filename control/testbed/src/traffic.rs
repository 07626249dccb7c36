//! Traffic between testbed namespaces: UDP and TCP echo servers, round-trip
//! time measurements with per-packet sequence numbers and timeouts (a lost
//! packet costs its timeout, never blocks the run), a verified TCP bulk
//! transfer, and `ping` for ICMP.
//!
//! Sockets are plain `std::net` sockets created on a thread inside the
//! sender's or server's namespace ([`Netns::run_in`]) and used from ordinary
//! threads afterwards. Latencies go into an [`hdrhistogram::Histogram`] in
//! nanoseconds.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::error::{Result, TestbedError};
use super::netns::{find_program, Netns};

/// How a traffic endpoint waits for data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WaitMode {
    /// Sleep in the kernel until data arrives (wake-up latency included).
    #[default]
    Blocking,
    /// Poll a non-blocking socket in a loop: one core busy, lowest latency.
    /// Compare with a busy-polling dataplane.
    Spin,
}

/// Parameters of a round-trip measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttOptions {
    /// Exchanges to make.
    pub count: u64,
    /// Time from the start of one exchange to the start of the next.
    pub interval: Duration,
    /// How long to wait for each reply (and for a TCP connection).
    pub timeout: Duration,
    /// Bytes of each request (at least 16: the header).
    pub payload_len: usize,
    /// How the client waits for replies.
    pub wait: WaitMode,
}

impl Default for RttOptions {
    fn default() -> Self {
        RttOptions {
            count: 100,
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(1),
            payload_len: 64,
            wait: WaitMode::Blocking,
        }
    }
}

/// How many loss reasons an [`RttResult`] keeps.
const MAX_FAILURES: usize = 10;

/// What a round-trip measurement saw.
#[derive(Clone, Debug)]
pub struct RttResult {
    /// Requests sent.
    pub sent: u64,
    /// Matching replies received in time.
    pub received: u64,
    /// `sent - received`.
    pub lost: u64,
    /// Of the lost, those whose reply came after its timeout (while a later
    /// request waited): delayed, not dropped.
    pub late: u64,
    /// Round-trip times of the received replies, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Why exchanges were lost, when the measurement can tell (an HTTP
    /// probe's error): the first few, with the exchange's number.
    pub failures: Vec<String>,
}

impl RttResult {
    /// An empty result (for measurements made outside this module, such
    /// as the demo's).
    pub fn new() -> Result<RttResult> {
        // 1 ns to 1 hour, 3 significant digits.
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| TestbedError::Traffic(format!("cannot create a histogram: {e}")))?;
        Ok(RttResult {
            sent: 0,
            received: 0,
            lost: 0,
            late: 0,
            histogram,
            failures: Vec::new(),
        })
    }

    /// One reply received after `rtt`.
    pub fn record(&mut self, rtt: Duration) {
        let ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record(ns);
        self.received += 1;
    }

    /// Note why exchange `seq` was lost (the first [`MAX_FAILURES`] are kept).
    pub(crate) fn failed(&mut self, seq: u64, why: impl std::fmt::Display) {
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(format!("#{seq}: {why}"));
        }
    }

    /// The lost count from what was sent and received.
    pub fn finish(mut self) -> RttResult {
        self.lost = self.sent.saturating_sub(self.received);
        self
    }

    /// Lost requests as a percentage of those sent (0 when none were sent).
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.sent as f64
        }
    }

    /// The round-trip time at quantile `q` (0.0–1.0); `None` without replies.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        (!self.histogram.is_empty())
            .then(|| Duration::from_nanos(self.histogram.value_at_quantile(q)))
    }

    /// Median round-trip time.
    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.50)
    }

    /// 99th percentile round-trip time.
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// Smallest round-trip time.
    pub fn min(&self) -> Option<Duration> {
        (!self.histogram.is_empty()).then(|| Duration::from_nanos(self.histogram.min()))
    }

    /// Largest round-trip time.
    pub fn max(&self) -> Option<Duration> {
        (!self.histogram.is_empty()).then(|| Duration::from_nanos(self.histogram.max()))
    }
}

/// A UDP or TCP echo server on a thread; dropping it stops the thread.
#[derive(Debug)]
pub struct EchoServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    echoed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Datagrams (UDP) or reads (TCP) echoed so far.
    pub fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often blocking servers look at their stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestbedError {
    let context = context.into();
    move |e| TestbedError::io(context, e)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// A UDP echo server on `port` (0: any free port) in `netns`, blocking.
pub fn udp_echo_server(netns: &Netns, port: u16) -> Result<EchoServer> {
    udp_echo_server_with(netns, port, WaitMode::Blocking)
}

/// A UDP echo server on `port` (0: any free port) in `netns`.
pub fn udp_echo_server_with(netns: &Netns, port: u16, wait: WaitMode) -> Result<EchoServer> {
    let socket = netns
        .run_in(move || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))?
        .map_err(io_error(format!(
            "cannot bind UDP port {port} in {}",
            netns.name()
        )))?;
    match wait {
        WaitMode::Blocking => socket.set_read_timeout(Some(STOP_POLL)),
        WaitMode::Spin => socket.set_nonblocking(true),
    }
    .map_err(io_error("cannot set up the UDP echo socket"))?;
    let local_addr = socket
        .local_addr()
        .map_err(io_error("UDP echo socket address"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let (thread_stop, thread_echoed) = (stop.clone(), echoed.clone());
    let thread = std::thread::Builder::new()
        .name(format!("udp-echo:{}", netns.name()))
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !thread_stop.load(Ordering::Relaxed) {
                match socket.recv_from(&mut buf) {
                    Ok((n, peer)) => {
                        if socket.send_to(&buf[..n], peer).is_ok() {
                            thread_echoed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if is_timeout(&e) => {
                        if wait == WaitMode::Spin {
                            std::hint::spin_loop();
                        }
                    }
                    // An ICMP error queued on the socket: not ours to handle.
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
        .map_err(io_error("cannot spawn the UDP echo thread"))?;
    Ok(EchoServer {
        local_addr,
        stop,
        echoed,
        thread: Some(thread),
    })
}

/// The 16-byte header of every request: magic, run id, sequence number.
const MAGIC: [u8; 4] = *b"KXRT";
const HEADER_LEN: usize = 16;

fn run_id() -> u32 {
    (RandomState::new().hash_one(std::process::id()) & 0xffff_ffff) as u32
}

fn fill_request(buf: &mut [u8], run: u32, seq: u64) {
    buf[..4].copy_from_slice(&MAGIC);
    buf[4..8].copy_from_slice(&run.to_be_bytes());
    buf[8..16].copy_from_slice(&seq.to_be_bytes());
    for (i, byte) in buf[HEADER_LEN..].iter_mut().enumerate() {
        *byte = (seq as u8).wrapping_add(i as u8);
    }
}

/// UDP round trips from `from` to `to_ip:port` (a [`udp_echo_server`]), blocking client.
pub fn udp_rtt(
    from: &Netns,
    to_ip: IpAddr,
    port: u16,
    count: u64,
    interval: Duration,
    timeout: Duration,
) -> Result<RttResult> {
    let options = RttOptions {
        count,
        interval,
        timeout,
        ..RttOptions::default()
    };
    udp_rtt_with(from, SocketAddr::new(to_ip, port), &options)
}

/// UDP round trips from `from` to `to`: `count` requests, each waiting up to
/// `timeout` for its own reply (replies to earlier requests are discarded).
pub fn udp_rtt_with(from: &Netns, to: SocketAddr, options: &RttOptions) -> Result<RttResult> {
    let socket = from
        .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))?
        .map_err(io_error(format!(
            "cannot bind a UDP socket in {}",
            from.name()
        )))?;
    udp_rtt_on(socket, to, options)
}

/// The measurement of [`udp_rtt_with`] on a socket already created.
fn udp_rtt_on(socket: UdpSocket, to: SocketAddr, options: &RttOptions) -> Result<RttResult> {
    socket
        .connect(to)
        .map_err(io_error(format!("cannot connect a UDP socket to {to}")))?;
    if options.wait == WaitMode::Spin {
        socket
            .set_nonblocking(true)
            .map_err(io_error("cannot make the UDP socket non-blocking"))?;
    }
    let run = run_id();
    let mut request = vec![0u8; options.payload_len.max(HEADER_LEN)];
    let mut reply = vec![0u8; request.len() + 1];
    let mut result = RttResult::new()?;
    let start = Instant::now();
    for seq in 0..options.count {
        fill_request(&mut request, run, seq);
        let sent_at = Instant::now();
        result.sent += 1;
        match socket.send(&request) {
            Ok(_) => {}
            // An ICMP error from an earlier datagram, reported now: this one is lost.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused || is_timeout(&e) => {}
            Err(e) => return Err(TestbedError::io(format!("UDP send to {to}"), e)),
        }
        let deadline = sent_at + options.timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                let at = sent_at.duration_since(start);
                result.failed(seq, format_args!("no reply (sent {at:.1?} into the run)"));
                break;
            }
            if options.wait == WaitMode::Blocking {
                socket
                    .set_read_timeout(Some(deadline - now))
                    .map_err(io_error("cannot set the UDP read timeout"))?;
            }
            match socket.recv(&mut reply) {
                Ok(n) if reply[..n] == request[..] => {
                    result.record(sent_at.elapsed());
                    break;
                }
                // A late reply to an earlier request, or someone else's datagram.
                Ok(n) => {
                    if let Some(earlier) = late_reply(&reply[..n], run, seq) {
                        result.late += 1;
                        result.failed(earlier, format_args!("its reply came while #{seq} waited"));
                    }
                }
                Err(e) if is_timeout(&e) => {
                    if options.wait == WaitMode::Spin {
                        std::hint::spin_loop();
                    }
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(TestbedError::io(format!("UDP receive from {to}"), e)),
            }
        }
        sleep_until(
            start
                + options
                    .interval
                    .saturating_mul(u32::try_from(seq + 1).unwrap_or(u32::MAX)),
        );
    }
    Ok(result.finish())
}

/// The sequence number of `reply` when it answers an earlier request of
/// this run (one that timed out).
fn late_reply(reply: &[u8], run: u32, current: u64) -> Option<u64> {
    if reply.len() < HEADER_LEN || reply[..4] != MAGIC || reply[4..8] != run.to_be_bytes() {
        return None;
    }
    let seq = u64::from_be_bytes(reply[8..16].try_into().ok()?);
    (seq < current).then_some(seq)
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

/// A TCP echo server on `port` (0: any free port) in `netns`, blocking.
pub fn tcp_echo_server(netns: &Netns, port: u16) -> Result<EchoServer> {
    tcp_echo_server_with(netns, port, WaitMode::Blocking)
}

/// A TCP echo server on `port` (0: any free port) in `netns`: one thread
/// accepts, one thread per connection echoes.
pub fn tcp_echo_server_with(netns: &Netns, port: u16, wait: WaitMode) -> Result<EchoServer> {
    let listener = netns
        .run_in(move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
        .map_err(io_error(format!(
            "cannot listen on TCP port {port} in {}",
            netns.name()
        )))?;
    listener
        .set_nonblocking(true)
        .map_err(io_error("cannot make the TCP listener non-blocking"))?;
    let local_addr = listener
        .local_addr()
        .map_err(io_error("TCP listener address"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let (thread_stop, thread_echoed) = (stop.clone(), echoed.clone());
    let thread = std::thread::Builder::new()
        .name(format!("tcp-echo:{}", netns.name()))
        .spawn(move || {
            let mut handlers = Vec::new();
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (stop, echoed) = (thread_stop.clone(), thread_echoed.clone());
                        if let Ok(handle) = std::thread::Builder::new()
                            .name("tcp-echo-conn".into())
                            .spawn(move || echo_tcp(stream, wait, &stop, &echoed))
                        {
                            handlers.push(handle);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for handle in handlers {
                let _ = handle.join();
            }
        })
        .map_err(io_error("cannot spawn the TCP echo thread"))?;
    Ok(EchoServer {
        local_addr,
        stop,
        echoed,
        thread: Some(thread),
    })
}

fn set_wait_mode(
    stream: &TcpStream,
    wait: WaitMode,
    blocking_timeout: Duration,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    match wait {
        WaitMode::Blocking => {
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(blocking_timeout))?;
            stream.set_write_timeout(Some(blocking_timeout))
        }
        WaitMode::Spin => stream.set_nonblocking(true),
    }
}

fn echo_tcp(mut stream: TcpStream, wait: WaitMode, stop: &AtomicBool, echoed: &AtomicU64) {
    if set_wait_mode(&stream, wait, STOP_POLL).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if write_all_until(&mut stream, &buf[..n], None, stop).is_err() {
                    return;
                }
                echoed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if is_timeout(&e) => {
                if wait == WaitMode::Spin {
                    std::hint::spin_loop();
                }
            }
            Err(_) => return,
        }
    }
}

/// Write all of `data`, on a blocking or non-blocking stream, giving up at
/// `deadline` or when `stop` is raised.
fn write_all_until(
    stream: &mut TcpStream,
    mut data: &[u8],
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    while !data.is_empty() {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ErrorKind::TimedOut.into());
        }
        match stream.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_timeout(&e) => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fill `buf` from a blocking (with read timeout) or non-blocking stream by
/// `deadline`. `Ok(false)` on timeout.
fn read_exact_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    wait: WaitMode,
) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        if wait == WaitMode::Blocking {
            stream.set_read_timeout(Some(deadline - now))?;
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// TCP round trips from `from` to `to_ip:port` (a [`tcp_echo_server`]), blocking client.
pub fn tcp_rtt(
    from: &Netns,
    to_ip: IpAddr,
    port: u16,
    count: u64,
    interval: Duration,
    timeout: Duration,
) -> Result<RttResult> {
    let options = RttOptions {
        count,
        interval,
        timeout,
        ..RttOptions::default()
    };
    tcp_rtt_with(from, SocketAddr::new(to_ip, port), &options)
}

/// One TCP connection from `from` to `to`, then `count` request/response
/// exchanges of `payload_len` bytes (TCP_NODELAY). A reply that does not
/// come within `timeout` ends the run: the stream is out of step after it,
/// so the exchanges not attempted are not counted as sent.
pub fn tcp_rtt_with(from: &Netns, to: SocketAddr, options: &RttOptions) -> Result<RttResult> {
    let timeout = options.timeout;
    let stream = from
        .run_in(move || TcpStream::connect_timeout(&to, timeout))?
        .map_err(io_error(format!(
            "cannot connect to TCP {to} from {}",
            from.name()
        )))?;
    tcp_rtt_on(stream, to, options)
}

/// The measurement of [`tcp_rtt_with`] on a connected stream.
fn tcp_rtt_on(mut stream: TcpStream, to: SocketAddr, options: &RttOptions) -> Result<RttResult> {
    let timeout = options.timeout;
    set_wait_mode(&stream, options.wait, timeout)
        .map_err(io_error("cannot set up the TCP socket"))?;
    let run = run_id();
    let never = AtomicBool::new(false);
    let mut request = vec![0u8; options.payload_len.max(HEADER_LEN)];
    let mut reply = vec![0u8; request.len()];
    let mut result = RttResult::new()?;
    let start = Instant::now();
    for seq in 0..options.count {
        fill_request(&mut request, run, seq);
        let sent_at = Instant::now();
        let deadline = sent_at + timeout;
        result.sent += 1;
        if let Err(e) = write_all_until(&mut stream, &request, Some(deadline), &never) {
            if is_timeout(&e) {
                break;
            }
            return Err(TestbedError::io(format!("TCP send to {to}"), e));
        }
        match read_exact_until(&mut stream, &mut reply, deadline, options.wait) {
            Ok(true) if reply == request => result.record(sent_at.elapsed()),
            Ok(true) => {
                return Err(TestbedError::Traffic(format!(
                    "TCP echo from {to} returned different bytes for request {seq}"
                )))
            }
            Ok(false) => break,
            Err(e) => return Err(TestbedError::io(format!("TCP receive from {to}"), e)),
        }
        sleep_until(
            start
                + options
                    .interval
                    .saturating_mul(u32::try_from(seq + 1).unwrap_or(u32::MAX)),
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(result.finish())
}

/// A verified bulk transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes received and verified.
    pub bytes: u64,
    /// From connection established to the receiver having read the last byte.
    pub duration: Duration,
}

impl Transfer {
    /// Goodput in bits per second.
    pub fn bits_per_second(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 * 8.0 / secs
        } else {
            0.0
        }
    }
}

/// Period of the transfer pattern: a prime, so that a misplaced chunk of
/// any power-of-two size is detected.
const PATTERN_PERIOD: u64 = 251;
/// How long a transfer may make no progress.
const TRANSFER_STALL: Duration = Duration::from_secs(10);

fn pattern_byte(offset: u64) -> u8 {
    (offset % PATTERN_PERIOD) as u8
}

/// Send `bytes` bytes over TCP from namespace `from` to a one-shot receiver
/// in namespace `to`, reached at `to_ip`; the receiver checks every byte.
pub fn tcp_transfer(from: &Netns, to: &Netns, to_ip: IpAddr, bytes: u64) -> Result<Transfer> {
    let any = match to_ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    let listener = to
        .run_in(move || TcpListener::bind((any, 0)))?
        .map_err(io_error(format!("cannot listen on TCP in {}", to.name())))?;
    let port = listener
        .local_addr()
        .map_err(io_error("TCP listener address"))?
        .port();
    listener
        .set_nonblocking(true)
        .map_err(io_error("cannot make the TCP listener non-blocking"))?;
    let receiver = std::thread::Builder::new()
        .name(format!("tcp-sink:{}", to.name()))
        .spawn(move || receive_pattern(&listener))
        .map_err(io_error("cannot spawn the TCP receiver"))?;
    let to_addr = SocketAddr::new(to_ip, port);
    let stream = from
        .run_in(move || TcpStream::connect_timeout(&to_addr, TRANSFER_STALL))?
        .map_err(io_error(format!(
            "cannot connect to TCP {to_addr} from {}",
            from.name()
        )))?;
    send_pattern(stream, receiver, to_addr, bytes)
}

/// Send `bytes` of the pattern on `stream`, then collect what `receiver` counted.
fn send_pattern(
    mut stream: TcpStream,
    receiver: JoinHandle<Result<u64>>,
    to_addr: SocketAddr,
    bytes: u64,
) -> Result<Transfer> {
    stream
        .set_write_timeout(Some(TRANSFER_STALL))
        .map_err(io_error("cannot set the TCP write timeout"))?;
    let start = Instant::now();
    // A whole number of pattern periods, so every chunk starts at phase 0.
    let chunk: Vec<u8> = (0..PATTERN_PERIOD * 261).map(pattern_byte).collect();
    let mut left = bytes;
    let mut send_error = None;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        if let Err(e) = stream.write_all(&chunk[..n]) {
            send_error = Some(e);
            break;
        }
        left -= n as u64;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let received = receiver
        .join()
        .map_err(|_| TestbedError::Traffic("the TCP receiver panicked".into()))??;
    let duration = start.elapsed();
    if let Some(e) = send_error {
        return Err(TestbedError::io(
            format!("TCP send to {to_addr} after {} bytes", bytes - left),
            e,
        ));
    }
    if received != bytes {
        return Err(TestbedError::Traffic(format!(
            "TCP transfer to {to_addr}: sent {bytes} bytes, received {received}"
        )));
    }
    Ok(Transfer {
        bytes: received,
        duration,
    })
}

/// Accept one connection and read it to the end, checking the pattern.
fn receive_pattern(listener: &TcpListener) -> Result<u64> {
    let deadline = Instant::now() + TRANSFER_STALL;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if is_timeout(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(TestbedError::io("TCP receiver: no connection", e)),
        }
    };
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(TRANSFER_STALL)))
        .map_err(io_error("cannot set up the TCP receiver"))?;
    let mut buf = vec![0u8; 256 * 1024];
    // The pattern from phase 0, one period longer than the buffer: the bytes
    // a read should hold are one slice of it, checked with one `memcmp`.
    // A byte-by-byte check costs about a nanosecond per byte, which would
    // cap the kernel path's TCP (several Gbit/s) at the checker's speed.
    let reference: Vec<u8> = (0..buf.len() as u64 + PATTERN_PERIOD)
        .map(pattern_byte)
        .collect();
    let mut offset: u64 = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(offset),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(TestbedError::io(
                    format!("TCP receiver after {offset} bytes"),
                    e,
                ))
            }
        };
        let phase = usize::from(pattern_byte(offset));
        let (got, expected) = (&buf[..n], &reference[phase..phase + n]);
        if got != expected {
            let i = got
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(TestbedError::Traffic(format!(
                "TCP transfer corrupted: byte {} is {}, expected {}",
                offset + i as u64,
                got[i],
                expected[i]
            )));
        }
        offset += n as u64;
    }
}

/// ICMP echo from `from` to `to_ip` with iputils' `ping` (`-c count -i
/// interval -W 1`), round trips parsed from its per-reply `time=` lines.
pub fn ping(from: &Netns, to_ip: IpAddr, count: u32, interval: Duration) -> Result<RttResult> {
    if find_program("ping").is_none() {
        return Err(TestbedError::MissingTool {
            tool: "ping".into(),
            why: "ICMP round trips (package iputils-ping)".into(),
        });
    }
    let deadline = (f64::from(count) * interval.as_secs_f64()).ceil() as u64 + 2;
    let args = [
        "-n".to_string(),
        "-c".to_string(),
        count.to_string(),
        "-i".to_string(),
        format!("{:.3}", interval.as_secs_f64()),
        "-W".to_string(),
        "1".to_string(),
        "-w".to_string(),
        deadline.to_string(),
        to_ip.to_string(),
    ];
    let output = from.exec_output("ping", &args)?;
    // iputils: 0 all replied, 1 some missing, 2 (or other) an error.
    if !matches!(output.status.code(), Some(0) | Some(1)) {
        return Err(TestbedError::Command {
            command: format!("ip netns exec {} ping {}", from.name(), args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    parse_ping(&String::from_utf8_lossy(&output.stdout), u64::from(count))
}

/// Parse iputils `ping` output: reply lines `… icmp_seq=N … time=X ms`
/// (duplicates ignored) and the `N packets transmitted` summary.
fn parse_ping(stdout: &str, count: u64) -> Result<RttResult> {
    let mut result = RttResult::new()?;
    let mut seen = BTreeSet::new();
    let mut transmitted = None;
    for line in stdout.lines() {
        if let Some(n) = packets_transmitted(line) {
            transmitted = Some(n);
            continue;
        }
        if line.contains("DUP!") {
            continue;
        }
        let seq = field(line, "icmp_seq=").and_then(|s| s.parse::<u64>().ok());
        let time = field(line, "time=").and_then(|t| t.parse::<f64>().ok());
        if let (Some(seq), Some(ms)) = (seq, time) {
            if seen.insert(seq) && ms.is_finite() && ms >= 0.0 {
                result.record(Duration::from_secs_f64(ms / 1000.0));
            }
        }
    }
    result.sent = transmitted.unwrap_or(count);
    Ok(result.finish())
}

/// The value after `key` in a ping line, up to the next space.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    line[start..].split_whitespace().next()
}

/// `5 packets transmitted, 5 received, 0% packet loss, time 4005ms` → 5.
fn packets_transmitted(line: &str) -> Option<u64> {
    let (n, _) = line.split_once(" packets transmitted")?;
    n.trim().parse().ok()
}

/// The resident memory of process `pid`, in kB (`VmRSS` of
/// `/proc/PID/status`).
pub fn rss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| TestbedError::io(path.clone(), e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| TestbedError::Traffic(format!("no VmRSS in {path}")))
}

/// Two counters of one protocol in `/proc/net/snmp` of `netns` (`proto`
/// is "Udp:" or "Tcp:"; e.g. `["InDatagrams", "RcvbufErrors"]`).
pub fn snmp_counters(netns: &Netns, proto: &str, names: [&str; 2]) -> Result<(u64, u64)> {
    let snmp = netns.exec("cat", &["/proc/net/snmp"])?;
    let mut lines = snmp.lines().filter(|l| l.starts_with(proto));
    let (Some(header), Some(values)) = (lines.next(), lines.next()) else {
        return Err(TestbedError::Traffic(format!(
            "no {proto} lines in /proc/net/snmp"
        )));
    };
    let field = |name: &str| -> Result<u64> {
        header
            .split_whitespace()
            .position(|n| n == name)
            .and_then(|at| values.split_whitespace().nth(at))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                TestbedError::Traffic(format!("no number {proto} {name} in /proc/net/snmp"))
            })
    };
    Ok((field(names[0])?, field(names[1])?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PING_OUTPUT: &str = "PING 10.244.2.10 (10.244.2.10) 56(84) bytes of data.
64 bytes from 10.244.2.10: icmp_seq=1 ttl=62 time=0.105 ms
64 bytes from 10.244.2.10: icmp_seq=2 ttl=62 time=2.50 ms
64 bytes from 10.244.2.10: icmp_seq=2 ttl=62 time=2.60 ms (DUP!)
64 bytes from 10.244.2.10: icmp_seq=4 ttl=62 time=1.00 ms

--- 10.244.2.10 ping statistics ---
4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 3004ms
rtt min/avg/max/mdev = 0.105/1.201/2.500/0.987 ms
";

    #[test]
    fn parses_ping_replies_and_losses() {
        let r = parse_ping(PING_OUTPUT, 4).unwrap();
        assert_eq!((r.sent, r.received, r.lost), (4, 3, 1));
        assert_eq!(r.loss_percent(), 25.0);
        let min = r.min().unwrap().as_nanos() as f64;
        assert!((min - 105_000.0).abs() / 105_000.0 < 0.01, "{min}");
        let max = r.max().unwrap().as_nanos() as f64;
        assert!((max - 2_500_000.0).abs() / 2_500_000.0 < 0.01, "{max}");
    }

    #[test]
    fn ping_without_replies_is_all_lost() {
        let r = parse_ping(
            "PING x\n\n3 packets transmitted, 0 received, 100% packet loss\n",
            3,
        )
        .unwrap();
        assert_eq!((r.sent, r.received, r.lost), (3, 0, 3));
        assert_eq!(r.p50(), None);
        assert_eq!(r.loss_percent(), 100.0);
    }

    #[test]
    fn requests_carry_run_and_sequence() {
        let mut a = vec![0u8; 64];
        let mut b = vec![0u8; 64];
        fill_request(&mut a, 7, 1);
        fill_request(&mut b, 7, 2);
        assert_eq!(&a[..4], b"KXRT");
        assert_eq!(u64::from_be_bytes(a[8..16].try_into().unwrap()), 1);
        assert_ne!(a, b);
    }

    #[test]
    fn pattern_wraps_at_its_period() {
        assert_eq!(pattern_byte(0), 0);
        assert_eq!(pattern_byte(250), 250);
        assert_eq!(pattern_byte(251), 0);
    }

    /// An echo peer on loopback that drops request 2 and answers request 1
    /// only after the client's timeout: the late reply must be discarded
    /// while the client waits for request 3's.
    #[test]
    fn udp_rtt_counts_losses_and_discards_late_replies() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut late: Option<(Vec<u8>, SocketAddr)> = None;
            for _ in 0..4 {
                let (n, peer) = server.recv_from(&mut buf).unwrap();
                let seq = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                match seq {
                    1 => late = Some((buf[..n].to_vec(), peer)),
                    2 => {}
                    _ => {
                        if let Some((old, old_peer)) = late.take() {
                            server.send_to(&old, old_peer).unwrap();
                        }
                        server.send_to(&buf[..n], peer).unwrap();
                    }
                }
            }
        });
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let options = RttOptions {
            count: 4,
            interval: Duration::from_millis(1),
            timeout: Duration::from_millis(100),
            payload_len: 100,
            wait: WaitMode::Blocking,
        };
        let result = udp_rtt_on(client, addr, &options).unwrap();
        echo.join().unwrap();
        assert_eq!((result.sent, result.received, result.lost), (4, 2, 2));
        // Request 1's reply came late (while request 3 waited); request 2's never.
        assert_eq!(result.late, 1);
        assert!(
            result.failures[0].starts_with("#1: "),
            "{:?}",
            result.failures
        );
        assert_eq!(result.loss_percent(), 50.0);
        assert!(result.p99().unwrap() < Duration::from_millis(100));
    }

    #[test]
    fn tcp_rtt_and_transfer_over_loopback() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let echoed = Arc::new(AtomicU64::new(0));
        let (s, e) = (stop.clone(), echoed.clone());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            echo_tcp(stream, WaitMode::Spin, &s, &e);
        });
        let client = TcpStream::connect(addr).unwrap();
        let options = RttOptions {
            count: 20,
            interval: Duration::ZERO,
            timeout: Duration::from_secs(2),
            payload_len: 200,
            wait: WaitMode::Spin,
        };
        let result = tcp_rtt_on(client, addr, &options).unwrap();
        server.join().unwrap();
        assert_eq!((result.sent, result.received, result.lost), (20, 20, 0));
        assert!(echoed.load(Ordering::Relaxed) >= 20);

        let sink = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sink.set_nonblocking(true).unwrap();
        let sink_addr = sink.local_addr().unwrap();
        let receiver = std::thread::spawn(move || receive_pattern(&sink));
        let sender = TcpStream::connect(sink_addr).unwrap();
        let transfer = send_pattern(sender, receiver, sink_addr, 1_000_003).unwrap();
        assert_eq!(transfer.bytes, 1_000_003);
        assert!(transfer.bits_per_second() > 0.0);
    }

    #[test]
    fn corrupted_transfers_are_caught() {
        let sink = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sink.set_nonblocking(true).unwrap();
        let sink_addr = sink.local_addr().unwrap();
        let receiver = std::thread::spawn(move || receive_pattern(&sink));
        let mut sender = TcpStream::connect(sink_addr).unwrap();
        let mut data: Vec<u8> = (0..1000).map(pattern_byte).collect();
        data[777] ^= 0x40;
        sender.write_all(&data).unwrap();
        drop(sender);
        let err = receiver
            .join()
            .unwrap()
            .expect_err("corruption detected")
            .to_string();
        assert!(err.contains("byte 777"), "{err}");
    }
}
