//! A TCP forwarder from a node's loopback to a server on the root
//! namespace's loopback: kxdp runs in a node's namespace (on the host
//! network, as a DaemonSet runs), the test API server listens on the root
//! namespace's 127.0.0.1, and the node's kubeconfig points at the
//! forwarder's port.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kxdp_testbed::Netns;

/// A forwarder from `127.0.0.1:<port>` inside a namespace to an address
/// of the root namespace. Stopped (and its connections cut) when dropped.
#[derive(Debug)]
pub struct NetnsForwarder {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NetnsForwarder {
    /// Listen on a free port of `netns`'s loopback and forward every
    /// connection to `to`.
    pub fn start(netns: &Netns, to: SocketAddr) -> io::Result<NetnsForwarder> {
        // The listening socket is created inside the namespace; the thread
        // that serves it (and connects to `to`) stays in the root one.
        let listener = netns
            .run_in(|| TcpListener::bind("127.0.0.1:0"))
            .map_err(io::Error::other)??;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("forward:{}", netns.name()))
            .spawn(move || {
                let mut open: Vec<TcpStream> = Vec::new();
                while !thread_stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            if let Some(server) = connect_both(&client, to) {
                                open.push(client);
                                open.push(server);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for s in open {
                    let _ = s.shutdown(Shutdown::Both);
                }
            })?;
        Ok(NetnsForwarder {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// The port it listens on, on the namespace's 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Connect `client` to `to` and copy both ways on two threads; the server
/// side's stream, or `None` when `to` refused (the client then sees its
/// connection closed).
fn connect_both(client: &TcpStream, to: SocketAddr) -> Option<TcpStream> {
    client.set_nonblocking(false).ok()?;
    let server = TcpStream::connect(to).ok()?;
    for (from, into) in [(client, &server), (&server, client)] {
        let (Ok(mut from), Ok(mut into)) = (from.try_clone(), into.try_clone()) else {
            return None;
        };
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut into);
            let _ = from.shutdown(Shutdown::Both);
            let _ = into.shutdown(Shutdown::Both);
        });
    }
    Some(server)
}

impl Drop for NetnsForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
