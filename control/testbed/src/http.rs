//! HTTP on the testbed, as a cluster's workloads speak it: a server that
//! answers every `GET` with who it is (a Service backend) or with the
//! address it sees the client at (a server outside the cluster, to check
//! egress masquerading), and a client that times whole requests — a new
//! TCP connection each, as the kubelet probes a pod.
//!
//! The server is one thread with a blocking `accept` (no polling delay in
//! what it answers), answering one request per connection (`Connection:
//! close`), and the client closes first; dropping the server wakes its
//! thread with a connection of its own from inside the namespace and
//! joins it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use super::error::{Result, TestbedError};
use super::netns::Netns;
use super::traffic::RttResult;

/// How long the server waits for a client's request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request header the server reads.
const MAX_REQUEST: usize = 8 * 1024;

/// What an [`HttpServer`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpReply {
    /// This text (a backend's name), with a newline.
    Identity(String),
    /// The client's address as the server sees it, with a newline.
    ClientAddress,
}

/// An HTTP server on a thread; stopped when dropped.
#[derive(Debug)]
pub struct HttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    clients: Arc<Mutex<BTreeMap<IpAddr, u64>>>,
    /// The namespace, held open so the drop can still enter it to wake the
    /// thread after the namespace's name is gone.
    netns: Option<File>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// The client addresses it accepted connections from, with how many
    /// each.
    pub fn clients(&self) -> BTreeMap<IpAddr, u64> {
        self.clients
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let port = self.port;
        // Wake the blocking accept with a connection from inside.
        let woken = self.netns.take().and_then(|file| {
            std::thread::Builder::new()
                .name("http-wake".into())
                .spawn(move || {
                    setns(&file, CloneFlags::CLONE_NEWNET).is_ok()
                        && TcpStream::connect_timeout(
                            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                            Duration::from_secs(1),
                        )
                        .is_ok()
                })
                .ok()
                .and_then(|t| t.join().ok())
        });
        match (woken, self.thread.take()) {
            (Some(true), Some(thread)) => {
                let _ = thread.join();
            }
            // Not woken: leave the thread blocked rather than hang here.
            (_, thread) => {
                if thread.is_some() {
                    eprintln!("testbed: HTTP server on port {port} not woken; its thread is left");
                }
            }
        }
    }
}

/// An HTTP server on TCP `port` (0: any free port) of every address of
/// `netns`, answering each request with `reply`.
pub fn http_server(netns: &Netns, port: u16, reply: HttpReply) -> Result<HttpServer> {
    let file = File::open(netns.path()).map_err(|e| {
        TestbedError::io(
            format!("cannot open network namespace {}", netns.path().display()),
            e,
        )
    })?;
    let listener = netns
        .run_in(move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
        .map_err(|e| {
            TestbedError::io(
                format!("cannot listen on TCP port {port} in {}", netns.name()),
                e,
            )
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| TestbedError::io("HTTP listener address", e))?
        .port();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients = Arc::new(Mutex::new(BTreeMap::new()));
    let (thread_stop, thread_served, thread_clients) =
        (stop.clone(), served.clone(), clients.clone());
    let thread = std::thread::Builder::new()
        .name(format!("http:{}", netns.name()))
        .spawn(move || loop {
            let accepted = listener.accept();
            if thread_stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok((stream, peer)) = accepted else {
                continue;
            };
            if let Ok(mut clients) = thread_clients.lock() {
                *clients.entry(peer.ip()).or_insert(0) += 1;
            }
            let body = match &reply {
                HttpReply::Identity(text) => format!("{text}\n"),
                HttpReply::ClientAddress => format!("{}\n", peer.ip()),
            };
            if serve(stream, &body).is_ok() {
                thread_served.fetch_add(1, Ordering::Relaxed);
            }
        })
        .map_err(|e| TestbedError::io("cannot spawn the HTTP server thread", e))?;
    Ok(HttpServer {
        port,
        stop,
        served,
        clients,
        netns: Some(file),
        thread: Some(thread),
    })
}

/// Read one request's header and answer it with `body`.
fn serve(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || request.len() + n > MAX_REQUEST {
            return Err(ErrorKind::InvalidData.into());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    // The client closes first, so the TIME_WAIT is its own: a server's
    // TIME_WAIT would refuse (PAWS) a later connection from the same
    // client address and port whose timestamps run on another clock —
    // the client's, for the ClusterIP it connected to before the pod IP.
    // Waiting for its FIN is left to a thread, off the accept loop.
    let linger = std::thread::Builder::new()
        .name("http-linger".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        });
    drop(linger);
    Ok(())
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Its status code.
    pub status: u16,
    /// Its body.
    pub body: String,
}

/// One `GET /` from `from` to `to` on a new connection, within `timeout`
/// for the connection and for each read.
pub fn http_get(from: &Netns, to: SocketAddr, timeout: Duration) -> Result<HttpResponse> {
    from.run_in(move || get(to, timeout))?
        .map_err(|e| TestbedError::io(format!("HTTP GET http://{to}/ from {}", from.name()), e))
}

/// `count` `GET /` requests from `from` to `to`, one every `interval`,
/// each on a new connection (as a kubelet probe), timed from the connect
/// to the whole response; a request that fails or takes over `timeout`
/// counts as lost.
pub fn http_rtt(
    from: &Netns,
    to: SocketAddr,
    count: u64,
    interval: Duration,
    timeout: Duration,
) -> Result<RttResult> {
    let mut result = RttResult::new()?;
    from.run_in(move || {
        let start = Instant::now();
        for seq in 0..count {
            result.sent += 1;
            let sent_at = Instant::now();
            let outcome = get(to, timeout);
            let took = sent_at.elapsed();
            match outcome {
                Ok(r) if r.status == 200 && took <= timeout => result.record(took),
                Ok(r) if r.status == 200 => result.failed(seq, format!("took {took:?}")),
                Ok(r) => result.failed(seq, format!("HTTP {} after {took:?}", r.status)),
                Err(e) => result.failed(seq, format!("{e} after {took:?}")),
            }
            let next = start + interval.saturating_mul(u32::try_from(seq + 1).unwrap_or(u32::MAX));
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        result.finish()
    })
}

fn get(to: SocketAddr, timeout: Duration) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&to, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: {to}\r\nUser-Agent: kxdp-testbed\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )?;
    // Read the whole response (by its Content-Length), then close first
    // (see `serve`).
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if response_complete(&response) {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    drop(stream);
    parse_response(&response).ok_or_else(|| {
        std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&response[..response.len().min(200)])
            ),
        )
    })
}

/// Whether `response` holds a whole header and as many body bytes as its
/// Content-Length says (without one, the body ends when the server closes).
fn response_complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    length.is_some_and(|length| response.len() >= end + 4 + length)
}

/// The status and body of a whole response.
fn parse_response(response: &[u8]) -> Option<HttpResponse> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(HttpResponse {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nweb-1\n").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "web-1\n");
        let r = parse_response(b"HTTP/1.0 503 Service Unavailable\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, ""));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n"),
            None,
            "no end of header"
        );
    }

    #[test]
    fn responses_end_at_their_content_length() {
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nweb"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nweb-1\n"
        ));
        assert!(
            !response_complete(b"HTTP/1.0 200 ok\r\n\r\n<html>"),
            "without a length, until the server closes"
        );
    }

    #[test]
    fn serves_and_gets_on_loopback() {
        // Without privileges: the server and client of this process's own
        // namespace, through the same code the namespaced calls run.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            serve(stream, "web-1\n").unwrap();
        });
        let response = get(addr, Duration::from_secs(2)).unwrap();
        server.join().unwrap();
        assert_eq!(
            response,
            HttpResponse {
                status: 200,
                body: "web-1\n".into()
            }
        );
    }
}
