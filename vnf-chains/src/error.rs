//! Why a chain set does not compile. Each message names the object at fault.

/// A refusal to compile a [`crate::ChainSet`]; the running set stays as it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// An object names a tenant that the configuration does not have.
    #[error("{object}: unknown tenant {tenant:?}")]
    UnknownTenant {
        /// The object (`chains[web]`, `pods[a]`, `services[ns/name]`).
        object: String,
        /// The tenant it names.
        tenant: String,
    },
    /// A chain stage names an interface that the configuration does not have.
    #[error("chains[{chain}].functions[{stage}]: unknown interface {interface:?}")]
    UnknownInterface {
        /// The chain.
        chain: String,
        /// The stage index.
        stage: usize,
        /// The interface.
        interface: String,
    },
    /// An interface is the return interface of two external hops (or both
    /// interfaces of one), so a frame coming back on it cannot be placed.
    #[error("chains[{chain}].functions[{stage}]: interface {interface:?} is already used by another external hop")]
    InterfaceReused {
        /// The chain.
        chain: String,
        /// The stage index.
        stage: usize,
        /// The interface.
        interface: String,
    },
    /// A load balancer names a service that does not exist in its tenant.
    #[error("chains[{chain}].functions[{stage}]: unknown service {service:?}")]
    UnknownService {
        /// The chain.
        chain: String,
        /// The stage index.
        stage: usize,
        /// The service, `namespace/name`.
        service: String,
    },
    /// Two chains share a name.
    #[error("chains[{0}]: duplicate chain name")]
    DuplicateChain(String),
    /// Two pods of one tenant claim the same address.
    #[error("pods[{pod}]: address {ip} already belongs to another pod of tenant {tenant:?}")]
    DuplicatePodIp {
        /// The second pod.
        pod: String,
        /// The address.
        ip: std::net::IpAddr,
        /// The tenant.
        tenant: String,
    },
    /// Two service ports of one tenant claim the same address, protocol and port.
    #[error("services[{service}]: {ip} port {port} is already a port of another service")]
    DuplicateServicePort {
        /// The second service, `namespace/name`.
        service: String,
        /// The ClusterIP.
        ip: std::net::IpAddr,
        /// The port.
        port: u16,
    },
    /// An endpoint's address family differs from its ClusterIP's.
    #[error("services[{service}].endpoints: {ip} is not of the ClusterIP's address family")]
    EndpointFamily {
        /// The service, `namespace/name`.
        service: String,
        /// The endpoint.
        ip: std::net::IpAddr,
    },
    /// A second function of a kind that keeps per-flow state in the
    /// connection entry (a load balancer, a per-flow policer) in one chain.
    #[error("chains[{chain}].functions[{stage}]: a chain may have only one {function}")]
    RepeatedFunction {
        /// The chain.
        chain: String,
        /// The stage index.
        stage: usize,
        /// The kind.
        function: &'static str,
    },
    /// More endpoints than a Maglev table can index (65 535).
    #[error("services[{0}]: too many endpoints")]
    TooManyEndpoints(String),
    /// The Maglev table size is not a prime above 1 and below 2^24.
    #[error("maglev table size {0} is not a prime between 2 and 2^24")]
    MaglevTableSize(u32),
    /// More chains, stages or identities than the compiled indexes hold.
    #[error("too many {0}")]
    TooMany(&'static str),
}
