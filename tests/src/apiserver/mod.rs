//! A test Kubernetes API server for integration tests.
//!
//! No real kube-apiserver can be installed on the test machines, so this is a
//! faithful stand-in that speaks the real protocol over plain HTTP on
//! 127.0.0.1: kube-rs clients and `kubectl` (1.32) run against it unchanged.
//! It is not a Kubernetes implementation: there are no controllers (nothing
//! creates EndpointSlices or schedules Pods: tests write them), no schema
//! validation (`fieldValidation` is accepted and not enforced), no
//! authentication or authorization, and defaulting only where clients see it
//! (a Namespace's `kubernetes.io/metadata.name` label, a Service's type and
//! allocated cluster IP). Field ownership is not tracked: a server-side
//! apply merges. What it does keep faithful is what clients depend on:
//!
//! - objects of any kind stored as JSON, one global resourceVersion counter,
//!   uid / creationTimestamp / generation set by the server ([`store`]);
//! - list with `limit`/`continue` (consistent pages), label and field
//!   selectors ([`selectors`]); watch with ADDED/MODIFIED/DELETED, BOOKMARK,
//!   `timeoutSeconds`, `sendInitialEvents` ([`watch`]); 410 Gone once history
//!   is compacted; 409 AlreadyExists / Conflict; Status objects for errors;
//! - create, update, delete, merge / JSON / strategic merge / apply patches
//!   ([`patch`]), namespaced and cluster-scoped paths, `/status`;
//! - discovery (legacy and aggregated), `/version`, OpenAPI v3 ([`discovery`]);
//!   Table and PartialObjectMetadata responses (`kubectl get`, kube-rs
//!   metadata lists and watchers);
//!   custom resource definitions, whose kinds are served once created;
//! - fault injection: dropped watch streams, failed requests (500, 429 with
//!   Retry-After), delays, compaction, stop and restart on the same port
//!   ([`faults`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use kxdp_tests::apiserver::TestApiServer;
//! let server = TestApiServer::start().await?;
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! server.store().create_object(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}
//! })).expect("create");
//! server.drop_watches();
//! # Ok(()) }
//! ```

pub mod defaults;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod http;
pub mod patch;
pub mod render;
pub mod resources;
pub mod selectors;
pub mod store;
pub mod time;
pub mod watch;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use error::ApiError;
pub use faults::{Faults, RecordedRequest};
pub use store::Store;

/// How often a watch with `allowWatchBookmarks` gets a BOOKMARK unless
/// [`TestApiServer::set_bookmark_interval`] says otherwise (the real server
/// sends one about every minute; tests want to see them sooner).
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// What [`TestApiServer::restart`] does with the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartStore {
    /// Keep objects and history, as an API server restarting over the same
    /// etcd: clients resume their watches from their resourceVersion.
    Keep,
    /// Start from an empty cluster (see [`Store::reset`]): the
    /// resourceVersion counter carries on, every client's resourceVersion is
    /// too old (410) and clients must list again.
    Reset,
}

#[derive(Debug)]
struct Serving {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running test API server (see the module documentation).
#[derive(Debug)]
pub struct TestApiServer {
    address: SocketAddr,
    store: Arc<Store>,
    faults: Arc<Faults>,
    bookmark_interval: Arc<Mutex<Duration>>,
    serving: Option<Serving>,
}

impl TestApiServer {
    /// Start a server on 127.0.0.1 with a free port, on the current tokio
    /// runtime.
    pub async fn start() -> io::Result<TestApiServer> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let address = listener.local_addr()?;
        let mut server = TestApiServer {
            address,
            store: Arc::new(Store::new()),
            faults: Arc::new(Faults::default()),
            bookmark_interval: Arc::new(Mutex::new(DEFAULT_BOOKMARK_INTERVAL)),
            serving: None,
        };
        server.serve(listener);
        Ok(server)
    }

    /// Start a server on its own thread and runtime, for tests that are not
    /// async.
    pub fn start_blocking() -> io::Result<BlockingApiServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-apiserver")
            .enable_all()
            .build()?;
        let server = runtime.block_on(TestApiServer::start())?;
        Ok(BlockingApiServer {
            server: Some(server),
            runtime: Some(runtime),
        })
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = http::AppState {
            store: self.store.clone(),
            faults: self.faults.clone(),
            address: self.address.to_string(),
            bookmark_interval: self.bookmark_interval.clone(),
        };
        let router = http::router(state);
        let (shutdown, mut stop) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        // As kube-apiserver (Go sets TCP_NODELAY on every
                        // TCP connection): without it a watch event written
                        // in two segments waits for the client's delayed
                        // ACK, ~40 ms, whenever the connection was idle.
                        let _ = stream.set_nodelay(true);
                        let service = TowerToHyperService::new(router.clone());
                        connections.spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    _ = &mut stop => break,
                }
            }
            drop(listener);
            // Connections end abruptly, as when the server process dies.
            connections.shutdown().await;
        });
        self.serving = Some(Serving { shutdown, task });
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The kubeconfig text for this server (insecure http, no credentials,
    /// namespace `default`).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kxdp-test\n  cluster:\n    server: {}\ncontexts:\n- name: kxdp-test\n  context:\n    cluster: kxdp-test\n    user: kxdp-test\n    namespace: default\ncurrent-context: kxdp-test\nusers:\n- name: kxdp-test\n  user: {{}}\n",
            self.url()
        )
    }

    /// Write [`TestApiServer::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// The object store: create, update and delete objects directly; watches
    /// see those changes like any other.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The fault injector and request log.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.faults.requests()
    }

    /// End every open watch stream (cleanly: the response ends, the
    /// connection stays). Clients resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.store.drop_watches();
    }

    /// Fail the next `n` requests with `status`: 500 InternalError, 429
    /// TooManyRequests and 503 with `Retry-After: 1`, or any other code.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.faults.fail_next(n, status);
    }

    /// Delay every answer by `delay` (zero to stop).
    pub fn set_delay(&self, delay: Duration) {
        self.faults.set_delay(delay);
    }

    /// Forget the history: watches, exact lists and continue tokens from
    /// any resourceVersion handed out so far get 410 Gone (an ERROR event
    /// with code 410 for a watch); a new list gets a version that works (see
    /// [`Store::compact`]). Open watches are not affected: follow with
    /// [`TestApiServer::drop_watches`] to make their clients resume, and
    /// find their version gone.
    pub fn compact_history(&self) {
        self.store.compact();
    }

    /// How often watches started from now on send bookmarks.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *self
            .bookmark_interval
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = interval;
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.serving.is_some()
    }

    /// Stop serving: the port is closed (connections are refused) and open
    /// connections, watches included, are cut. The store is kept.
    pub async fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            let _ = serving.shutdown.send(());
            let _ = serving.task.await;
        }
        self.store.drop_watches();
    }

    /// Stop (if running) and serve again on the same port, keeping or
    /// resetting the store as `store` says.
    pub async fn restart(&mut self, store: RestartStore) -> io::Result<()> {
        self.stop().await;
        if store == RestartStore::Reset {
            self.store.reset();
        }
        // The port was just closed; give the kernel a moment if needed.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match bind(self.address) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.serve(listener);
        Ok(())
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.task.abort();
        }
        self.store.drop_watches();
    }
}

fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(128)
}

/// A [`TestApiServer`] on its own thread and runtime, with blocking
/// `stop` and `restart`; everything else is reached through `Deref`.
#[derive(Debug)]
pub struct BlockingApiServer {
    server: Option<TestApiServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingApiServer {
    fn parts(&mut self) -> (&mut TestApiServer, &tokio::runtime::Runtime) {
        match (self.server.as_mut(), self.runtime.as_ref()) {
            (Some(s), Some(r)) => (s, r),
            _ => unreachable!("a BlockingApiServer holds its server and runtime until dropped"),
        }
    }

    /// See [`TestApiServer::stop`].
    pub fn stop(&mut self) {
        let (server, runtime) = self.parts();
        runtime.block_on(server.stop());
    }

    /// See [`TestApiServer::restart`].
    pub fn restart(&mut self, store: RestartStore) -> io::Result<()> {
        let (server, runtime) = self.parts();
        runtime.block_on(server.restart(store))
    }

    /// A handle to the server's runtime (to run async clients on it).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        match self.runtime.as_ref() {
            Some(r) => r,
            None => unreachable!("a BlockingApiServer holds its runtime until dropped"),
        }
    }
}

impl std::ops::Deref for BlockingApiServer {
    type Target = TestApiServer;

    fn deref(&self) -> &TestApiServer {
        match self.server.as_ref() {
            Some(s) => s,
            None => unreachable!("a BlockingApiServer holds its server until dropped"),
        }
    }
}

impl Drop for BlockingApiServer {
    fn drop(&mut self) {
        if let (Some(mut server), Some(runtime)) = (self.server.take(), self.runtime.as_ref()) {
            runtime.block_on(server.stop());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
