//! Services on the testbed: a [`ServiceSpec`] whose endpoints are testbed
//! pods, backends that say who they are ([`identity_server`]), and clients
//! that hold many connections to a Service at once ([`ServiceFlows`]) and
//! learn which backend serves each, so a test can tell which flows a
//! load balancer moved.
//!
//! The wire protocol is UDP: a probe is any datagram; a backend answers
//! `<identity>|<the probe>`, so a client recognises the answer to its own
//! latest probe (late answers to earlier ones are skipped).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::{Result, TestbedError};
use super::netns::Netns;

/// How often an identity server looks at its stop flag.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(50);

/// A UDP server that answers every datagram with its identity; stopped on
/// drop.
#[derive(Debug)]
pub struct IdentityServer {
    identity: String,
    port: u16,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl IdentityServer {
    /// Its identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Datagrams answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for IdentityServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP server on `port` in `netns` answering each datagram `d` with
/// `<identity>|d`.
pub fn identity_server(netns: &Netns, port: u16, identity: &str) -> Result<IdentityServer> {
    let socket = netns
        .run_in(move || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))?
        .map_err(|e| {
            TestbedError::io(
                format!("cannot bind UDP port {port} in {}", netns.name()),
                e,
            )
        })?;
    socket
        .set_read_timeout(Some(STOP_POLL))
        .map_err(|e| TestbedError::io("cannot set up the identity server's socket", e))?;
    let port = socket
        .local_addr()
        .map_err(|e| TestbedError::io("identity server address", e))?
        .port();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let (thread_stop, thread_answered) = (stop.clone(), answered.clone());
    let prefix = format!("{identity}|").into_bytes();
    let thread = std::thread::Builder::new()
        .name(format!("identity:{identity}"))
        .spawn(move || {
            let mut buf = vec![0u8; 2048];
            let mut reply = Vec::with_capacity(2048 + prefix.len());
            while !thread_stop.load(Ordering::Relaxed) {
                // A timeout (to look at the stop flag) or an ICMP error
                // queued on the socket: nothing to answer.
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    reply.clear();
                    reply.extend_from_slice(&prefix);
                    reply.extend_from_slice(&buf[..n]);
                    if socket.send_to(&reply, peer).is_ok() {
                        thread_answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .map_err(|e| TestbedError::io("cannot spawn the identity server thread", e))?;
    Ok(IdentityServer {
        identity: identity.to_string(),
        port,
        stop,
        answered,
        thread: Some(thread),
    })
}

/// Many UDP flows from one pod to one address (a Service), each its own
/// socket (its own source port), all probed at once.
#[derive(Debug)]
pub struct ServiceFlows {
    to: SocketAddr,
    sockets: Vec<UdpSocket>,
    round: u64,
}

impl ServiceFlows {
    /// `count` flows from `netns` to `to`.
    pub fn open(netns: &Netns, to: SocketAddr, count: usize) -> Result<ServiceFlows> {
        let sockets = netns.run_in(move || {
            (0..count)
                .map(|_| {
                    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                    socket.connect(to)?;
                    socket.set_nonblocking(true)?;
                    Ok(socket)
                })
                .collect::<std::io::Result<Vec<UdpSocket>>>()
        })?;
        let sockets = sockets.map_err(|e| {
            TestbedError::io(
                format!("cannot open UDP flows to {to} in {}", netns.name()),
                e,
            )
        })?;
        Ok(ServiceFlows {
            to,
            sockets,
            round: 0,
        })
    }

    /// The number of flows.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The flows' source ports, in flow order.
    pub fn source_ports(&self) -> Vec<u16> {
        self.sockets
            .iter()
            .map(|s| s.local_addr().map_or(0, |a| a.port()))
            .collect()
    }

    /// One probe on every flow; per flow, the identity that answered
    /// within `timeout` (`None`: no answer).
    pub fn probe(&mut self, timeout: Duration) -> Result<Vec<Option<String>>> {
        self.round += 1;
        let probe = format!("probe {}", self.round).into_bytes();
        let mut answers: Vec<Option<String>> = vec![None; self.sockets.len()];
        for socket in &self.sockets {
            match socket.send(&probe) {
                Ok(_) => {}
                // An ICMP error for an earlier probe, reported now, or a
                // full socket buffer: this probe is lost.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => {
                    return Err(TestbedError::io(format!("UDP probe to {}", self.to), e));
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        let mut missing = self.sockets.len();
        while missing > 0 && Instant::now() < deadline {
            let mut got = false;
            for (socket, answer) in self.sockets.iter().zip(answers.iter_mut()) {
                if answer.is_some() {
                    continue;
                }
                // Drain: late answers to earlier probes are skipped.
                while let Ok(n) = socket.recv(&mut buf) {
                    let reply = &buf[..n];
                    let Some(bar) = reply.iter().position(|&b| b == b'|') else {
                        continue;
                    };
                    if reply[bar + 1..] == probe[..] {
                        *answer = Some(String::from_utf8_lossy(&reply[..bar]).into_owned());
                        missing -= 1;
                        got = true;
                        break;
                    }
                }
            }
            if !got {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(answers)
    }
}
