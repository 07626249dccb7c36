//! Why a chain set does not compile. Each error names the field at fault
//! as a structured [`FieldPath`] ([`ChainError::path`]) and says what is
//! wrong with it ([`ChainError::reason`]); its message is the two joined.

use kxdp_config::{FieldPath, PathItem};

/// A refusal to compile a [`crate::ChainSet`]; the running set stays as it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}", self.message())]
pub enum ChainError {
    /// An object names a tenant that the configuration does not have.
    UnknownTenant {
        /// The object's section (`chains`, `pods`, `services`).
        section: &'static str,
        /// Its key (a name, `namespace/name` for a service).
        key: String,
        /// The tenant it names.
        tenant: String,
    },
    /// A chain stage names an interface that the configuration does not have.
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
    InterfaceReused {
        /// The chain.
        chain: String,
        /// The stage index.
        stage: usize,
        /// The interface.
        interface: String,
    },
    /// A load balancer names a service that does not exist in its tenant.
    UnknownService {
        /// The chain.
        chain: String,
        /// The stage index.
        stage: usize,
        /// The service, `namespace/name`.
        service: String,
    },
    /// Two chains share a name.
    DuplicateChain(String),
    /// Two pods of one tenant claim the same address.
    DuplicatePodIp {
        /// The second pod.
        pod: String,
        /// The address.
        ip: std::net::IpAddr,
        /// The tenant.
        tenant: String,
    },
    /// Two service ports of one tenant claim the same address, protocol and port.
    DuplicateServicePort {
        /// The second service, `namespace/name`.
        service: String,
        /// The ClusterIP.
        ip: std::net::IpAddr,
        /// The port.
        port: u16,
    },
    /// An endpoint's address family differs from its ClusterIP's.
    EndpointFamily {
        /// The service, `namespace/name`.
        service: String,
        /// The endpoint.
        ip: std::net::IpAddr,
    },
    /// A second function of a kind that keeps per-flow state in the
    /// connection entry (a load balancer, a per-flow policer) in one chain.
    RepeatedFunction {
        /// The chain.
        chain: String,
        /// The stage index.
        stage: usize,
        /// The kind.
        function: &'static str,
    },
    /// More endpoints than a Maglev table can index (65 535).
    TooManyEndpoints(String),
    /// The Maglev table size is not a prime above 1 and below 2^24.
    MaglevTableSize(u32),
    /// More chains, stages or identities than the compiled indexes hold.
    TooMany(&'static str),
}

impl ChainError {
    /// The field at fault, by key (`chains["web"].functions[1]`); for a
    /// capacity limit, the section whose size is at fault.
    pub fn path(&self) -> FieldPath {
        let stage = |chain: &str, stage: &usize| {
            FieldPath::item(
                "chains",
                PathItem::Key(chain.to_string()),
                format!(".functions[{stage}]"),
            )
        };
        let key = |section: &str, key: &str, rest: &str| {
            FieldPath::item(section, PathItem::Key(key.to_string()), rest)
        };
        match self {
            ChainError::UnknownTenant {
                section, key: k, ..
            } => key(section, k, ".tenant"),
            ChainError::UnknownInterface {
                chain, stage: s, ..
            }
            | ChainError::InterfaceReused {
                chain, stage: s, ..
            }
            | ChainError::UnknownService {
                chain, stage: s, ..
            }
            | ChainError::RepeatedFunction {
                chain, stage: s, ..
            } => stage(chain, s),
            ChainError::DuplicateChain(chain) => key("chains", chain, ".name"),
            ChainError::DuplicatePodIp { pod, .. } => key("pods", pod, ".ip"),
            ChainError::DuplicateServicePort { service, .. } => key("services", service, ".ports"),
            ChainError::EndpointFamily { service, .. } | ChainError::TooManyEndpoints(service) => {
                key("services", service, ".endpoints")
            }
            ChainError::MaglevTableSize(_) | ChainError::TooMany(_) => FieldPath::section("chains"),
        }
    }

    /// What is wrong at [`ChainError::path`].
    pub fn reason(&self) -> String {
        match self {
            ChainError::UnknownTenant { tenant, .. } => format!("unknown tenant {tenant:?}"),
            ChainError::UnknownInterface { interface, .. } => {
                format!("unknown interface {interface:?}")
            }
            ChainError::InterfaceReused { interface, .. } => {
                format!("interface {interface:?} is already used by another external hop")
            }
            ChainError::UnknownService { service, .. } => format!("unknown service {service:?}"),
            ChainError::DuplicateChain(_) => "duplicate chain name".into(),
            ChainError::DuplicatePodIp { ip, tenant, .. } => {
                format!("address {ip} already belongs to another pod of tenant {tenant:?}")
            }
            ChainError::DuplicateServicePort { ip, port, .. } => {
                format!("{ip} port {port} is already a port of another service")
            }
            ChainError::EndpointFamily { ip, .. } => {
                format!("{ip} is not of the ClusterIP's address family")
            }
            ChainError::RepeatedFunction { function, .. } => {
                format!("a chain may have only one {function}")
            }
            ChainError::TooManyEndpoints(_) => "too many endpoints".into(),
            ChainError::MaglevTableSize(size) => {
                format!("maglev table size {size} is not a prime between 2 and 2^24")
            }
            ChainError::TooMany(what) => format!("too many {what}"),
        }
    }

    /// The message: `path: reason`, or the reason alone for a capacity limit.
    fn message(&self) -> String {
        match self {
            ChainError::MaglevTableSize(_) | ChainError::TooMany(_) => self.reason(),
            _ => format!("{}: {}", self.path(), self.reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_join_the_path_and_the_reason() {
        let e = ChainError::UnknownService {
            chain: "web".into(),
            stage: 1,
            service: "default/db".into(),
        };
        assert_eq!(
            e.path(),
            FieldPath::item("chains", PathItem::Key("web".into()), ".functions[1]")
        );
        assert_eq!(e.reason(), "unknown service \"default/db\"");
        assert_eq!(
            e.to_string(),
            "chains[\"web\"].functions[1]: unknown service \"default/db\""
        );
        let e = ChainError::UnknownTenant {
            section: "pods",
            key: "a".into(),
            tenant: "green".into(),
        };
        assert_eq!(
            e.to_string(),
            "pods[\"a\"].tenant: unknown tenant \"green\""
        );
        assert_eq!(ChainError::TooMany("chains").to_string(), "too many chains");
    }
}
