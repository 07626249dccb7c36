//! kxdp's configuration layer: the declarative model of one node and its
//! network (interfaces, workers, tenants, VTEPs, pods, remote nodes, routes),
//! its YAML form, and validation whose errors name the field path.
//!
//! No I/O beyond reading a file, no knowledge of packets or sockets.

mod error;
mod mac;
mod model;
mod network;
mod validate;

pub use error::ConfigError;
pub use mac::MacParseError;
pub use model::*;
pub use network::*;

use std::path::Path;

impl NodeConfig {
    /// Parse YAML and validate it.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        let config: NodeConfig =
            serde_yaml::from_str(yaml).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Read, parse and validate a YAML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&yaml)
    }

    /// Check the configuration; a refusal names the field path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// The YAML form.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// The control socket path.
    pub fn control_socket(&self) -> String {
        self.control
            .socket
            .clone()
            .unwrap_or_else(|| format!("/run/kxdp/{}.sock", self.node.name))
    }
}

impl PodCidrSpec {
    /// The gateway address: explicit, or the first host address of the CIDR.
    pub fn gateway_ip(&self) -> std::net::IpAddr {
        if let Some(gw) = self.gateway {
            return gw;
        }
        match self.cidr {
            ipnetwork::IpNetwork::V4(n) => std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                u32::from(n.network()).wrapping_add(1),
            )),
            ipnetwork::IpNetwork::V6(n) => std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(n.network()).wrapping_add(1),
            )),
        }
    }
}
