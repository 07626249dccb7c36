//! Connecting to a node's API: over its Unix socket, or over TCP with mutual
//! TLS; and a blocking client for the `kxdp` CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use kxdp_node::stats::NodeStats;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use super::convert::{FromProto, ToProto};
use super::proto;
use super::proto::dataplane_service_client::DataplaneServiceClient;
use super::proto::MAX_MESSAGE_SIZE;
use super::store::{ApplyOutcome, ChangeSet, FieldError, ObjectKind, ObjectSet};

/// Why the client could not reach a node's API, or what the node answered
/// instead.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// connecting to {path} (is `kxdp run` running?)
    #[error("connecting to {} (is `kxdp run` running?)", path.display())]
    ConnectUnix {
        /// The API socket.
        path: PathBuf,
        /// Why the connection failed.
        #[source]
        source: tonic::transport::Error,
    },
    /// reading {path} (a PEM file of the TLS target)
    #[error("reading {}", path.display())]
    ReadPem {
        /// The PEM file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// {url:?} is not a URL
    #[error("{url:?} is not a URL")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: tonic::transport::Error,
    },
    /// the TLS configuration is refused
    #[error("the TLS configuration is refused")]
    TlsRefused(#[source] tonic::transport::Error),
    /// connecting to {url}
    #[error("connecting to {url}")]
    ConnectTls {
        /// The URL dialled.
        url: String,
        /// Why the connection failed.
        #[source]
        source: tonic::transport::Error,
    },
    /// building a tokio runtime
    #[error("building a tokio runtime")]
    Runtime(#[source] std::io::Error),
    /// {code:?}: {message} (a refused call, with the server's message,
    /// which names the field)
    #[error("{code:?}: {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// the server sent an unreadable object
    #[error("the server sent an unreadable object")]
    UnreadableObject(#[source] FieldError),
    /// no answer to GetCounters within {after:?}
    #[error("no answer to GetCounters within {after:?}")]
    CountersTimeout {
        /// How long the client waited.
        after: Duration,
    },
    /// the server sent unreadable counters
    #[error("the server sent unreadable counters")]
    UnreadableCounters(#[source] FieldError),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> ClientError {
        ClientError::Refused {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

/// The generated client over a channel.
pub type ApiClient = DataplaneServiceClient<Channel>;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a node may take to answer a reading call (`node_stats`).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a node's API is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiTarget {
    /// Its Unix socket.
    Unix(PathBuf),
    /// TCP with mutual TLS.
    Tls {
        /// `https://host:port`.
        url: String,
        /// The CA that signed the server's certificate (PEM file).
        ca: PathBuf,
        /// The client's certificate (PEM file).
        cert: PathBuf,
        /// The client's private key (PEM file).
        key: PathBuf,
        /// The name the server's certificate is checked for; the URL's host
        /// when absent.
        domain: Option<String>,
    },
}

impl std::fmt::Display for ApiTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiTarget::Unix(path) => write!(f, "{}", path.display()),
            ApiTarget::Tls { url, .. } => f.write_str(url),
        }
    }
}

/// A channel to the API on the Unix socket at `path`.
pub async fn connect_unix(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    // The URI is required by the endpoint but unused: the connector dials the socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// A channel to `target`.
pub async fn connect(target: &ApiTarget) -> Result<Channel, ClientError> {
    match target {
        ApiTarget::Unix(path) => {
            connect_unix(path)
                .await
                .map_err(|source| ClientError::ConnectUnix {
                    path: path.clone(),
                    source,
                })
        }
        ApiTarget::Tls {
            url,
            ca,
            cert,
            key,
            domain,
        } => {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|source| ClientError::ReadPem {
                    path: p.to_path_buf(),
                    source,
                })
            };
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(ca)?))
                .identity(Identity::from_pem(read(cert)?, read(key)?));
            if let Some(domain) = domain {
                tls = tls.domain_name(domain.clone());
            }
            Endpoint::from_shared(url.clone())
                .map_err(|source| ClientError::InvalidUrl {
                    url: url.clone(),
                    source,
                })?
                .connect_timeout(CONNECT_TIMEOUT)
                .tls_config(tls)
                .map_err(ClientError::TlsRefused)?
                .connect()
                .await
                .map_err(|source| ClientError::ConnectTls {
                    url: url.clone(),
                    source,
                })
        }
    }
}

/// The API client over `channel`, with the server's message size limits.
pub fn client(channel: Channel) -> ApiClient {
    DataplaneServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

/// A blocking client (for the CLI): a small runtime of its own.
#[derive(Debug)]
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: ApiClient,
}

impl BlockingClient {
    /// Connect to `target`.
    pub fn connect(target: &ApiTarget) -> Result<BlockingClient, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        let channel = runtime.block_on(connect(target))?;
        Ok(BlockingClient {
            runtime,
            client: client(channel),
        })
    }

    /// Apply a change.
    pub fn apply(&mut self, change: &ChangeSet) -> Result<ApplyOutcome, ClientError> {
        let response = self
            .runtime
            .block_on(self.client.apply(change.to_proto()))
            .map_err(ClientError::from)?
            .into_inner();
        Ok(ApplyOutcome {
            generation: response.generation,
            changed: response.changed,
        })
    }

    /// The desired state of `kinds`, with its generation.
    pub fn list(&mut self, kinds: &[ObjectKind]) -> Result<(u64, ObjectSet), ClientError> {
        let request = proto::ListRequest {
            kinds: kinds
                .iter()
                .map(|k| super::convert::kind_to_proto(*k) as i32)
                .collect(),
        };
        let response = self
            .runtime
            .block_on(self.client.list(request))
            .map_err(ClientError::from)?
            .into_inner();
        let objects = ObjectSet::from_proto(&response.objects.unwrap_or_default(), "objects")
            .map_err(ClientError::UnreadableObject)?;
        Ok((response.generation, objects))
    }

    /// One object, with the generation of the desired state.
    pub fn get(&mut self, kind: ObjectKind, key: &str) -> Result<(u64, ObjectSet), ClientError> {
        let request = proto::GetRequest {
            kind: super::convert::kind_to_proto(kind) as i32,
            key: key.to_string(),
        };
        let response = self
            .runtime
            .block_on(self.client.get(request))
            .map_err(ClientError::from)?
            .into_inner();
        let object = ObjectSet::from_proto(&response.object.unwrap_or_default(), "object")
            .map_err(ClientError::UnreadableObject)?;
        Ok((response.generation, object))
    }

    /// The published tables.
    pub fn dump_tables(&mut self) -> Result<proto::DumpTablesResponse, ClientError> {
        Ok(self
            .runtime
            .block_on(self.client.dump_tables(proto::DumpTablesRequest {}))
            .map_err(ClientError::from)?
            .into_inner())
    }

    /// The node's status.
    pub fn status(&mut self) -> Result<proto::GetStatusResponse, ClientError> {
        Ok(self
            .runtime
            .block_on(self.client.get_status(proto::GetStatusRequest {}))
            .map_err(ClientError::from)?
            .into_inner())
    }

    /// Everything `kxdp stats` shows (`GetCounters`), as the node's
    /// [`NodeStats`].
    pub fn node_stats(&mut self) -> Result<NodeStats, ClientError> {
        let call = self.client.get_counters(proto::GetCountersRequest {});
        let response = self
            .runtime
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
            .map_err(|_| ClientError::CountersTimeout {
                after: CALL_TIMEOUT,
            })?
            .map_err(ClientError::from)?
            .into_inner();
        NodeStats::from_proto(&response, "").map_err(ClientError::UnreadableCounters)
    }

    /// Every chain's counters, per stage.
    pub fn chain_stats(&mut self) -> Result<proto::GetChainStatsResponse, ClientError> {
        Ok(self
            .runtime
            .block_on(self.client.get_chain_stats(proto::GetChainStatsRequest {}))
            .map_err(ClientError::from)?
            .into_inner())
    }

    /// Stream counter samples every `interval` into `each` until it returns
    /// false, `max_samples` arrived (0: no limit) or the server ends.
    pub fn watch_counters(
        &mut self,
        interval: Duration,
        max_samples: u64,
        mut each: impl FnMut(&proto::CounterSample) -> bool,
    ) -> Result<(), ClientError> {
        let request = proto::WatchCountersRequest {
            interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            max_samples,
        };
        let client = &mut self.client;
        self.runtime.block_on(async move {
            let mut stream = client
                .watch_counters(request)
                .await
                .map_err(ClientError::from)?
                .into_inner();
            while let Some(sample) = stream.message().await.map_err(ClientError::from)? {
                if !each(&sample) {
                    break;
                }
            }
            Ok::<(), ClientError>(())
        })
    }
}
