//! The node's kxdp, over its gRPC API on the Unix socket: the worker count
//! (`GetStatus`), registering and removing a pod and its interface (one
//! `Apply` in `APPLY_MODE_DELTA` each), and reading them back (`Get`).
//!
//! The client is generated here from kxdp-control's proto files; the
//! messages that go on the wire are built by pure functions
//! ([`register_request`], [`unregister_request`]) that tests check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{CniError, ErrorCode};

/// The generated `kxdp.v1` messages and client.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
pub mod proto {
    tonic::include_proto!("kxdp.v1");
}

use proto::dataplane_service_client::DataplaneServiceClient;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one call may take (an Apply attaches the interface).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why kxdp could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum KxdpError {
    /// The socket file is not there: kxdp is not running on this node (it
    /// removes its socket when it stops).
    #[error("kxdp's API socket {0} does not exist (is kxdp running on this node?)")]
    NotRunning(PathBuf),
    /// The socket is there but nobody answers.
    #[error("cannot connect to kxdp at {path}: {source}")]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// A call failed.
    #[error("kxdp {call}: {}: {}", status.code(), status.message())]
    Call {
        /// The RPC.
        call: &'static str,
        /// The server's status.
        status: tonic::Status,
    },
    /// No runtime for the client.
    #[error("cannot start a tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl KxdpError {
    /// The CNI error for this failure: kxdp not running or unreachable, or
    /// a transient server state, is "try again later" (11); a refused
    /// request is kxdp's refusal (100) with its message.
    pub fn to_cni(&self) -> CniError {
        use tonic::Code;
        let code = match self {
            KxdpError::NotRunning(_) | KxdpError::Unreachable { .. } | KxdpError::Runtime(_) => {
                ErrorCode::TryAgainLater
            }
            KxdpError::Call { status, .. } => match status.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::ResourceExhausted
                | Code::Cancelled => ErrorCode::TryAgainLater,
                Code::InvalidArgument | Code::FailedPrecondition => ErrorCode::InvalidNetworkConfig,
                _ => ErrorCode::KxdpRefused,
            },
        };
        CniError::new(code, "kxdp", self.to_string())
    }
}

/// A blocking client of the node's kxdp.
#[derive(Debug)]
pub struct Kxdp {
    runtime: tokio::runtime::Runtime,
    client: DataplaneServiceClient<Channel>,
}

impl Kxdp {
    /// Connect to the API socket at `path`.
    pub fn connect(path: &Path) -> Result<Kxdp, KxdpError> {
        if !path.exists() {
            return Err(KxdpError::NotRunning(path.to_path_buf()));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(KxdpError::Runtime)?;
        let socket = path.to_path_buf();
        // The URI is required by the endpoint but unused: the connector
        // dials the socket.
        let channel = runtime
            .block_on(
                Endpoint::from_static("http://localhost")
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(CALL_TIMEOUT)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(socket).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    })),
            )
            .map_err(|source| KxdpError::Unreachable {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Kxdp {
            runtime,
            client: DataplaneServiceClient::new(channel),
        })
    }

    /// The node's status.
    pub fn status(&mut self) -> Result<proto::GetStatusResponse, KxdpError> {
        let client = &mut self.client;
        self.runtime
            .block_on(client.get_status(proto::GetStatusRequest {}))
            .map(tonic::Response::into_inner)
            .map_err(|status| KxdpError::Call {
                call: "GetStatus",
                status,
            })
    }

    /// Apply `request`; whether it changed the desired state.
    pub fn apply(&mut self, request: proto::ApplyRequest) -> Result<bool, KxdpError> {
        let client = &mut self.client;
        self.runtime
            .block_on(client.apply(request))
            .map(|r| r.into_inner().changed)
            .map_err(|status| KxdpError::Call {
                call: "Apply",
                status,
            })
    }

    /// The pod `name`, if kxdp has it.
    pub fn pod(&mut self, name: &str) -> Result<Option<proto::Pod>, KxdpError> {
        Ok(self
            .get(proto::Kind::Pod, name)?
            .and_then(|set| set.pods.into_iter().next()))
    }

    /// The namespace `name`, if kxdp has it (the Kubernetes agent puts
    /// every namespace there with its labels).
    pub fn namespace(&mut self, name: &str) -> Result<Option<proto::Namespace>, KxdpError> {
        Ok(self
            .get(proto::Kind::Namespace, name)?
            .and_then(|set| set.namespaces.into_iter().next()))
    }

    /// The interface `name`, if kxdp has it.
    pub fn interface(&mut self, name: &str) -> Result<Option<proto::Interface>, KxdpError> {
        Ok(self
            .get(proto::Kind::Interface, name)?
            .and_then(|set| set.interfaces.into_iter().next()))
    }

    fn get(&mut self, kind: proto::Kind, key: &str) -> Result<Option<proto::ObjectSet>, KxdpError> {
        let request = proto::GetRequest {
            kind: kind as i32,
            key: key.to_string(),
        };
        let client = &mut self.client;
        match self.runtime.block_on(client.get(request)) {
            Ok(response) => Ok(Some(response.into_inner().object.unwrap_or_default())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(KxdpError::Call {
                call: "Get",
                status,
            }),
        }
    }
}

/// Everything kxdp is told about a new pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Pod name (`namespace/name`).
    pub pod: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Tenant.
    pub tenant: String,
    /// The first address (IPv4 when there is one).
    pub ip: String,
    /// The IPv6 address of a dual-stack pod.
    pub ipv6: Option<String>,
    /// The pod end's MAC.
    pub pod_mac: String,
    /// The host end's name.
    pub interface: String,
    /// The host end's MAC.
    pub interface_mac: String,
    /// The veth's queue count.
    pub queues: u32,
    /// The pod's MTU.
    pub mtu: u32,
    /// The CNI container id.
    pub container_id: String,
}

/// ADD's request: upsert the interface and the pod on it.
pub fn register_request(r: &Registration) -> proto::ApplyRequest {
    proto::ApplyRequest {
        mode: proto::ApplyMode::Delta as i32,
        upserts: Some(proto::ObjectSet {
            interfaces: vec![proto::Interface {
                name: r.interface.clone(),
                mac: r.interface_mac.clone(),
                queues: r.queues,
                mtu: Some(r.mtu),
                // The role stays empty: "pod", the only role a CNI adds.
                ..Default::default()
            }],
            pods: vec![proto::Pod {
                name: r.pod.clone(),
                tenant: r.tenant.clone(),
                ip: r.ip.clone(),
                ipv6: r.ipv6.clone(),
                mac: r.pod_mac.clone(),
                interface: r.interface.clone(),
                labels: Default::default(),
                namespace: r.namespace.clone(),
                container_id: Some(r.container_id.clone()),
            }],
            ..Default::default()
        }),
        deletes: None,
        resync_kinds: Vec::new(),
    }
}

/// DEL's request: delete the pod (when it is still this container's) and
/// the interface. Absent keys are no error in a delta.
pub fn unregister_request(pod: Option<&str>, interface: &str) -> proto::ApplyRequest {
    proto::ApplyRequest {
        mode: proto::ApplyMode::Delta as i32,
        upserts: None,
        deletes: Some(proto::KeySet {
            pods: pod.map(str::to_string).into_iter().collect(),
            interfaces: vec![interface.to_string()],
            ..Default::default()
        }),
        resync_kinds: Vec::new(),
    }
}

/// Whether DEL of `container_id` may delete the pod kxdp has under its
/// name: not when a newer sandbox of the same pod registered it since.
pub fn pod_is_ours(pod: &proto::Pod, container_id: &str, interface: &str) -> bool {
    match pod.container_id.as_deref() {
        Some(id) if !id.is_empty() => id == container_id,
        // Registered by someone else (the node's file, the agent): ours
        // only if it sits on our interface.
        _ => pod.interface == interface,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn registration() -> Registration {
        Registration {
            pod: "web/front-1".into(),
            namespace: "web".into(),
            tenant: "default".into(),
            ip: "10.244.1.5".into(),
            ipv6: None,
            pod_mac: "0a:58:0a:f4:01:05".into(),
            interface: "kx0123456789a".into(),
            interface_mac: "0e:01:02:03:04:05".into(),
            queues: 2,
            mtu: 1450,
            container_id: "0123456789abcdef".into(),
        }
    }

    #[test]
    fn add_upserts_the_interface_and_the_pod_in_one_delta() {
        let request = register_request(&registration());
        assert_eq!(request.mode, proto::ApplyMode::Delta as i32);
        assert!(request.deletes.is_none());
        let upserts = request.upserts.unwrap();
        assert_eq!(
            upserts.interfaces,
            [proto::Interface {
                name: "kx0123456789a".into(),
                mac: "0e:01:02:03:04:05".into(),
                queues: 2,
                mtu: Some(1450),
                ..Default::default()
            }]
        );
        let pod = &upserts.pods[0];
        assert_eq!(pod.name, "web/front-1");
        assert_eq!(pod.namespace, "web");
        assert_eq!(pod.ip, "10.244.1.5");
        assert_eq!(pod.mac, "0a:58:0a:f4:01:05");
        assert_eq!(pod.interface, "kx0123456789a");
        assert_eq!(pod.container_id.as_deref(), Some("0123456789abcdef"));
        assert!(upserts.tenants.is_empty() && upserts.remote_nodes.is_empty());
    }

    #[test]
    fn del_deletes_both_keys_or_only_the_interface() {
        let keys = unregister_request(Some("web/front-1"), "kx0123456789a")
            .deletes
            .unwrap();
        assert_eq!(keys.pods, ["web/front-1"]);
        assert_eq!(keys.interfaces, ["kx0123456789a"]);
        let keys = unregister_request(None, "kx0123456789a").deletes.unwrap();
        assert!(keys.pods.is_empty());
        assert_eq!(keys.interfaces, ["kx0123456789a"]);
    }

    #[test]
    fn a_newer_sandbox_keeps_its_pod() {
        let mut pod = register_request(&registration())
            .upserts
            .unwrap()
            .pods
            .remove(0);
        assert!(pod_is_ours(&pod, "0123456789abcdef", "kx0123456789a"));
        assert!(!pod_is_ours(&pod, "fedcba9876543210", "kxfedcba98765"));
        pod.container_id = None;
        assert!(pod_is_ours(&pod, "x", "kx0123456789a"));
        assert!(!pod_is_ours(&pod, "x", "kxother"));
    }

    #[test]
    fn failures_map_to_cni_codes() {
        let not_running = KxdpError::NotRunning(PathBuf::from("/run/kxdp/n1.api.sock"));
        assert_eq!(not_running.to_cni().code, 11);
        assert!(not_running
            .to_cni()
            .details
            .contains("/run/kxdp/n1.api.sock"));
        let call = |code| KxdpError::Call {
            call: "Apply",
            status: tonic::Status::new(code, "pods[0].ip: outside the node's pod CIDRs"),
        };
        assert_eq!(call(tonic::Code::Unavailable).to_cni().code, 11);
        assert_eq!(call(tonic::Code::InvalidArgument).to_cni().code, 7);
        assert!(call(tonic::Code::InvalidArgument)
            .to_cni()
            .details
            .contains("pods[0].ip"));
        assert_eq!(call(tonic::Code::Internal).to_cni().code, 100);
    }

    #[test]
    fn connecting_to_a_missing_socket_says_kxdp_is_not_running() {
        let e = Kxdp::connect(Path::new("/nonexistent/kxdp.api.sock")).unwrap_err();
        assert!(matches!(e, KxdpError::NotRunning(_)), "{e}");
    }
}
