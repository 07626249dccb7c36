//! [`Testbed`] methods for what [`crate::service`] defines.

use super::Testbed;
use crate::error::{Result, TestbedError};
use kxdp_config::{EndpointSpec, Protocol, ServicePortSpec, ServiceSpec};
use std::net::{IpAddr, Ipv4Addr};

impl Testbed {
    /// A Service `name` (namespace `default`) at `cluster_ip`, one port
    /// (`port` → `target_port`, `protocol`), whose endpoints are the pods
    /// `backends` (ready, serving), in their tenant (they must share one).
    pub fn service_spec(
        &self,
        name: &str,
        cluster_ip: Ipv4Addr,
        protocol: Protocol,
        port: u16,
        target_port: u16,
        backends: &[&str],
    ) -> Result<ServiceSpec> {
        let pods = backends
            .iter()
            .map(|b| self.pod(b))
            .collect::<Result<Vec<_>>>()?;
        let tenant = match pods.first() {
            Some(p) => p.tenant.clone(),
            None => return Err(TestbedError::Spec(format!("service {name}: no backends"))),
        };
        if let Some(other) = pods.iter().find(|p| p.tenant != tenant) {
            return Err(TestbedError::Spec(format!(
                "service {name}: backend {} is in tenant {}, not {tenant}",
                other.name, other.tenant
            )));
        }
        Ok(ServiceSpec {
            name: name.to_string(),
            namespace: "default".to_string(),
            tenant,
            cluster_ip: IpAddr::V4(cluster_ip),
            ports: vec![ServicePortSpec {
                name: None,
                protocol,
                port,
                target_port: Some(target_port),
                node_port: None,
            }],
            endpoints: pods
                .iter()
                .map(|p| EndpointSpec {
                    ip: IpAddr::V4(p.ip),
                    pod: Some(p.name.clone()),
                    node: Some(p.node.clone()),
                    ready: true,
                    serving: true,
                    terminating: false,
                })
                .collect(),
            client_ip_affinity: false,
            internal_traffic_local: false,
        })
    }

    /// Add `service` to the kxdp configuration of every kxdp node (before
    /// kxdp starts; afterwards, apply it through the API).
    pub fn add_service(&mut self, service: ServiceSpec) {
        for config in self.configs.values_mut() {
            config.services.retain(|s| s.name != service.name);
            config.services.push(service.clone());
        }
    }
}
