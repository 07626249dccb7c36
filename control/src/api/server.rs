//! The API's listeners and the thread that serves them.
//!
//! The API runs on a single-threaded tokio runtime in its own thread
//! (`kxdp-api`), kept off the workers' cores when there are cores left: the
//! workers never wait for it, they only see a new table snapshot at their
//! next batch. It listens on a Unix socket (mode 0600, a stale socket file
//! replaced, the file removed on shutdown) and, when configured, on TCP with
//! mutual TLS only: there is no way to open a plaintext TCP listener.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use kxdp_config::{ApiTcpSpec, NodeConfig};
use tokio::sync::oneshot;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::proto::dataplane_service_server::DataplaneServiceServer;
use super::proto::{self, MAX_MESSAGE_SIZE};
use super::service::DataplaneApi;

/// Why the API server could not start. The variants about the
/// configuration name its field (`control.api_tcp.cert`, ...).
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// {path} is in use by another running kxdp
    #[error("{} is in use by another running kxdp", path.display())]
    InUse {
        /// The Unix socket a live kxdp answers on.
        path: PathBuf,
    },
    /// control.api_socket_group: looking up group {group}
    #[error("control.api_socket_group: looking up group {group}")]
    GroupLookup {
        /// The group's name.
        group: String,
        /// Why the lookup failed.
        #[source]
        source: nix::Error,
    },
    /// control.api_socket_group: no group named {group}
    #[error("control.api_socket_group: no group named {group}")]
    NoSuchGroup {
        /// The group's name.
        group: String,
    },
    /// creating {dir} (the socket's directory)
    #[error("creating {}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why it could not be created.
        #[source]
        source: std::io::Error,
    },
    /// removing the stale socket {path}
    #[error("removing the stale socket {}", path.display())]
    RemoveStale {
        /// The stale socket file.
        path: PathBuf,
        /// Why it could not be removed.
        #[source]
        source: std::io::Error,
    },
    /// binding {path}
    #[error("binding {}", path.display())]
    BindUnix {
        /// The Unix socket.
        path: PathBuf,
        /// Why it could not be bound.
        #[source]
        source: std::io::Error,
    },
    /// giving {path} to group {gid}
    #[error("giving {} to group {gid}", path.display())]
    Chown {
        /// The Unix socket.
        path: PathBuf,
        /// The group's id.
        gid: nix::unistd::Gid,
        /// Why the ownership could not change.
        #[source]
        source: nix::Error,
    },
    /// restricting {path} to mode {mode:o}
    #[error("restricting {} to mode {mode:o}", path.display())]
    Permissions {
        /// The Unix socket.
        path: PathBuf,
        /// The mode.
        mode: u32,
        /// Why the mode could not be set.
        #[source]
        source: std::io::Error,
    },
    /// control.api_tcp.{field}: cannot read {path}
    #[error("control.api_tcp.{field}: cannot read {path}")]
    ReadPem {
        /// The field that names the file (`cert`, `key`, `client_ca`).
        field: &'static str,
        /// The PEM file.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// control.api_tcp.listen: cannot bind {addr}
    #[error("control.api_tcp.listen: cannot bind {addr}")]
    BindTcp {
        /// The address.
        addr: SocketAddr,
        /// Why it could not be bound.
        #[source]
        source: std::io::Error,
    },
    /// setting up the {listener} listener (non-blocking mode, its address)
    #[error("setting up the {listener} listener")]
    Listener {
        /// `Unix` or `TCP`.
        listener: &'static str,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// building the reflection service
    #[error("building the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// building the API's tokio runtime
    #[error("building the API's tokio runtime")]
    Runtime(#[source] std::io::Error),
    /// spawning the API thread
    #[error("spawning the API thread")]
    Spawn(#[source] std::io::Error),
    /// registering the socket (with the API's runtime)
    #[error("registering the socket")]
    RegisterUnix(#[source] std::io::Error),
    /// registering the TCP listener (with the API's runtime)
    #[error("registering the TCP listener")]
    RegisterTcp(#[source] std::io::Error),
    /// control.api_tcp: the TLS configuration is refused
    #[error("control.api_tcp: the TLS configuration is refused")]
    TlsRefused(#[source] tonic::transport::Error),
    /// the API server did not start within 10 s
    #[error("the API server did not start within 10 s")]
    StartTimeout,
}

/// How long a stopping server waits for calls in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API listens.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiServerOptions {
    /// The Unix socket.
    pub unix_socket: PathBuf,
    /// A group that may use the Unix socket (mode 0660, owned by that
    /// group); `None`: the owner only (mode 0600).
    pub unix_group: Option<String>,
    /// TCP with mutual TLS, when set.
    pub tcp: Option<ApiTcpSpec>,
    /// Cores to keep the API thread off (the workers' pinned cores).
    pub avoid_cores: Vec<usize>,
}

impl ApiServerOptions {
    /// The listeners a node's configuration asks for.
    pub fn from_config(config: &NodeConfig) -> ApiServerOptions {
        ApiServerOptions {
            unix_socket: api_socket_path(config),
            unix_group: config.control.api_socket_group.clone(),
            tcp: config.control.api_tcp.clone(),
            avoid_cores: config.workers.cores.clone(),
        }
    }
}

/// The API socket of a node: `control.api_socket`, or `control.socket`'s
/// path with `.api.sock` for `.sock` (`/run/kxdp/<node>.api.sock`).
pub fn api_socket_path(config: &NodeConfig) -> PathBuf {
    if let Some(path) = &config.control.api_socket {
        return PathBuf::from(path);
    }
    api_socket_beside(Path::new(&config.control_socket()))
}

/// The API socket that goes with a node's `control.socket` path.
pub fn api_socket_beside(control_socket: &Path) -> PathBuf {
    let control = control_socket.display().to_string();
    match control.strip_suffix(".sock") {
        Some(base) => PathBuf::from(format!("{base}.api.sock")),
        None => PathBuf::from(format!("{control}.api.sock")),
    }
}

/// An error when a live kxdp answers on the Unix socket at `path` (a
/// stale socket file is no error: binding replaces it).
pub fn refuse_if_served(path: &Path) -> Result<(), ApiServerError> {
    if path.exists() && UnixStream::connect(path).is_ok() {
        return Err(ApiServerError::InUse {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A bound Unix socket file, removed on drop.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind `path` (creating its directory, replacing a stale socket file), then
/// restrict it to its owner (0600), or to its owner and `group` (0660).
/// Connecting to a Unix socket needs write permission on it, so these modes
/// are the API's access control on the node: root (and the group) program
/// the dataplane, nobody else can connect.
fn bind_unix(
    path: &Path,
    group: Option<&str>,
) -> Result<(std::os::unix::net::UnixListener, SocketFile), ApiServerError> {
    // Resolve the group first: an unknown group refuses to start rather
    // than silently falling back to another mode.
    let gid = match group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .map_err(|source| ApiServerError::GroupLookup {
                    group: name.to_string(),
                    source,
                })?
                .ok_or_else(|| ApiServerError::NoSuchGroup {
                    group: name.to_string(),
                })?
                .gid,
        ),
        None => None,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ApiServerError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    if path.exists() {
        // A live server answers; a stale socket file refuses the connection.
        refuse_if_served(path)?;
        std::fs::remove_file(path).map_err(|source| ApiServerError::RemoveStale {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(|source| {
        ApiServerError::BindUnix {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let file = SocketFile {
        path: path.to_path_buf(),
    };
    let mode = match gid {
        Some(gid) => {
            nix::unistd::chown(path, None, Some(gid)).map_err(|source| ApiServerError::Chown {
                path: path.to_path_buf(),
                gid,
                source,
            })?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        ApiServerError::Permissions {
            path: path.to_path_buf(),
            mode,
            source,
        }
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ApiServerError::Listener {
            listener: "Unix",
            source,
        })?;
    Ok((listener, file))
}

fn read_pem(path: &str, field: &'static str) -> Result<Vec<u8>, ApiServerError> {
    std::fs::read(path).map_err(|source| ApiServerError::ReadPem {
        field,
        path: path.to_string(),
        source,
    })
}

/// The TLS configuration of the TCP listener: the server's identity, and
/// client certificates required and checked against `client_ca`.
fn tls_config(spec: &ApiTcpSpec) -> Result<ServerTlsConfig, ApiServerError> {
    let cert = read_pem(&spec.cert, "cert")?;
    let key = read_pem(&spec.key, "key")?;
    let ca = read_pem(&spec.client_ca, "client_ca")?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false)
        .timeout(TLS_HANDSHAKE_TIMEOUT))
}

/// The services every listener serves: the API and gRPC reflection.
fn router(
    api: &DataplaneApi,
    builder: Server,
) -> Result<tonic::transport::server::Router, ApiServerError> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(ApiServerError::Reflection)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(ApiServerError::Reflection)?;
    let mut builder = builder;
    Ok(builder
        .add_service(
            DataplaneServiceServer::new(api.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}

/// A running API server. Dropping it (or [`ApiServer::shutdown`]) stops it
/// and removes its socket file.
#[derive(Debug)]
pub struct ApiServer {
    api: DataplaneApi,
    thread: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
    socket: Option<SocketFile>,
    tcp_addr: Option<SocketAddr>,
}

impl ApiServer {
    /// Bind the listeners of `options` and serve `api` on them from a new
    /// thread. Returns once the listeners are bound: a client may connect
    /// right away.
    pub fn start(
        api: DataplaneApi,
        options: &ApiServerOptions,
    ) -> Result<ApiServer, ApiServerError> {
        let (unix, socket) = bind_unix(&options.unix_socket, options.unix_group.as_deref())?;
        let tcp = match &options.tcp {
            Some(spec) => {
                let tls = tls_config(spec)?;
                let listener = std::net::TcpListener::bind(spec.listen).map_err(|source| {
                    ApiServerError::BindTcp {
                        addr: spec.listen,
                        source,
                    }
                })?;
                listener
                    .set_nonblocking(true)
                    .map_err(|source| ApiServerError::Listener {
                        listener: "TCP",
                        source,
                    })?;
                Some((listener, tls))
            }
            None => None,
        };
        let tcp_addr = match &tcp {
            Some((l, _)) => Some(l.local_addr().map_err(|source| ApiServerError::Listener {
                listener: "TCP",
                source,
            })?),
            None => None,
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), ApiServerError>>();
        let avoid = options.avoid_cores.clone();
        let thread_api = api.clone();
        let thread = std::thread::Builder::new()
            .name("kxdp-api".to_string())
            .spawn(move || {
                kxdp_node::threads::avoid_cores(&avoid, "API");
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("kxdp-api")
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ApiServerError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(serve(thread_api, unix, tcp, stop_rx, ready_tx));
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })
            .map_err(ApiServerError::Spawn)?;
        let mut server = ApiServer {
            api,
            thread: Some(thread),
            stop: Some(stop_tx),
            socket: Some(socket),
            tcp_addr,
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => {
                server.stop();
                Err(e)
            }
            Err(_) => {
                server.stop();
                Err(ApiServerError::StartTimeout)
            }
        }
    }

    /// The Unix socket it listens on.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.socket.as_ref().map(|s| s.path.as_path())
    }

    /// The TCP address it listens on (with mutual TLS), when configured.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// Stop serving, wait for the thread, remove the socket file.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.api.end_streams();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.socket = None;
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    api: DataplaneApi,
    unix: std::os::unix::net::UnixListener,
    tcp: Option<(std::net::TcpListener, ServerTlsConfig)>,
    stop: oneshot::Receiver<()>,
    ready: std_mpsc::Sender<Result<(), ApiServerError>>,
) {
    let (shutdown_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let setup = async {
        let unix =
            tokio::net::UnixListener::from_std(unix).map_err(ApiServerError::RegisterUnix)?;
        let unix_server = router(&api, Server::builder())?;
        let mut unix_stop = shutdown_tx.subscribe();
        let unix_task = tokio::spawn(unix_server.serve_with_incoming_shutdown(
            UnixListenerStream::new(unix),
            async move {
                let _ = unix_stop.recv().await;
            },
        ));
        let tcp_task = match tcp {
            Some((listener, tls)) => {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(ApiServerError::RegisterTcp)?;
                let builder = Server::builder()
                    .tls_config(tls)
                    .map_err(ApiServerError::TlsRefused)?;
                let tcp_server = router(&api, builder)?;
                let mut tcp_stop = shutdown_tx.subscribe();
                Some(tokio::spawn(tcp_server.serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener),
                    async move {
                        let _ = tcp_stop.recv().await;
                    },
                )))
            }
            None => None,
        };
        Ok::<_, ApiServerError>((unix_task, tcp_task))
    };
    let (unix_task, tcp_task) = match setup.await {
        Ok(tasks) => {
            let _ = ready.send(Ok(()));
            tasks
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = stop.await;
    let _ = shutdown_tx.send(());
    let finish = async {
        if let Ok(Err(e)) = unix_task.await {
            tracing::warn!(error = %e, "the API's Unix listener failed");
        }
        if let Some(task) = tcp_task {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the API's TCP listener failed");
            }
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, finish).await.is_err() {
        tracing::warn!("API calls still running after {SHUTDOWN_GRACE:?}: closing them");
    }
}
