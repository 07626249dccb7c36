//! kxdp's configuration layer: the declarative model of one node and its
//! network (interfaces, workers, tenants, VTEPs, pods, remote nodes, routes),
//! its YAML form, and validation whose errors name the field path.
//!
//! No I/O beyond reading a file, no knowledge of packets or sockets.

#[cfg(feature = "crd")]
pub mod crd;
mod error;
mod mac;
mod model;
mod network;
mod validate;

pub use error::{ConfigError, FieldPath, PathItem};
pub use mac::MacParseError;
pub use model::*;
pub use network::*;
pub use validate::{Machine, MAX_BATCH_SIZE};

use std::path::Path;

impl NodeConfig {
    /// Parse YAML and validate it. A value that does not parse (a malformed
    /// address, a wrong type, an unknown field) is refused with its field
    /// path too, as [`ConfigError::Invalid`] (`pods[0].ip: invalid IP
    /// address syntax at line 30 column 9`).
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        let config = Self::parse_yaml(yaml)?;
        config.validate()?;
        Ok(config)
    }

    /// Parse YAML into the model without validating it.
    pub fn parse_yaml(yaml: &str) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(yaml)).map_err(|e| {
            let field = e.path().to_string();
            let message = e.inner().to_string();
            // `.` is the top level, `?` a place serde_path_to_error cannot name.
            if field.is_empty() || field == "." || field == "?" {
                return ConfigError::Parse(message);
            }
            // serde_yaml writes its own path (the field or its parent) into
            // some messages: keep one.
            let message = match message.split_once(": ") {
                Some((path, rest))
                    if field == path
                        || field
                            .strip_prefix(path)
                            .is_some_and(|tail| tail.starts_with('.') || tail.starts_with('[')) =>
                {
                    rest.to_string()
                }
                _ => message,
            };
            ConfigError::invalid(field, message)
        })
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

    /// Check the configuration against this machine (its CPUs, for
    /// `workers.cores`); a refusal names the field path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// Check the configuration against `machine`; a refusal names the field path.
    pub fn validate_with(&self, machine: &Machine) -> Result<(), ConfigError> {
        validate::validate_with(self, machine)
    }

    /// The YAML form.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// The `control.socket` path: the API socket is beside it (see
    /// `control.api_socket`).
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
