//! Services compiled for load balancing: per (tenant, ClusterIP, protocol,
//! port) the endpoints with their conditions and a Maglev table over the
//! ready ones.
//!
//! EndpointSlice conditions: a `ready` endpoint takes new connections (it is
//! in the Maglev table); a `serving` endpoint that is not ready (typically
//! terminating) keeps the connections it has but takes no new ones; an
//! endpoint neither ready nor serving gets nothing, and its connections move
//! to another backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use kxdp_config::{EndpointSpec, Protocol, ServiceSpec};
use kxdp_dataplane::tables::TenantId;
use rustc_hash::FxHashMap;

use crate::conntrack::{ip_bits, FlowKey};
use crate::error::ChainError;
use crate::maglev::{Backend, MaglevTable, TableSize};

/// What a service port is addressed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// The service's tenant.
    pub tenant: TenantId,
    /// ClusterIP (IPv4 in the low 32 bits).
    pub ip: u128,
    /// The ClusterIP is IPv6.
    pub ipv6: bool,
    /// IP protocol number.
    pub proto: u8,
    /// The service port.
    pub port: u16,
}

impl VipKey {
    /// The service port a packet is addressed to.
    #[inline]
    pub fn of_destination(key: &FlowKey) -> VipKey {
        VipKey {
            tenant: key.tenant,
            ip: key.dst,
            ipv6: key.ipv6,
            proto: key.proto,
            port: key.dst_port,
        }
    }
}

/// An endpoint's condition, as far as load balancing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointState {
    /// Takes new connections.
    Ready,
    /// Keeps existing connections only (serving, not ready: terminating).
    Serving,
}

/// One port of one service.
#[derive(Debug)]
pub struct ServicePort {
    /// `namespace/name`.
    pub service: String,
    /// What it is addressed by.
    pub vip: VipKey,
    /// Endpoints that are ready or serving, by (address, target port).
    endpoints: FxHashMap<Backend, EndpointState>,
    /// Maglev over the ready endpoints.
    maglev: Arc<MaglevTable>,
    /// `sessionAffinity: ClientIP`: new connections are placed by the
    /// client's address alone.
    client_ip_affinity: bool,
}

impl ServicePort {
    /// The condition of a backend; `None` when it is not an endpoint that
    /// serves any more.
    #[inline]
    pub fn state(&self, backend: &Backend) -> Option<EndpointState> {
        self.endpoints.get(backend).copied()
    }

    /// The backend a new connection with this flow hash goes to.
    #[inline]
    pub fn pick(&self, hash: u64) -> Option<Backend> {
        self.maglev.lookup(hash)
    }

    /// The backend a new connection of `flow` goes to: by its flow hash,
    /// or by its client's address under `sessionAffinity: ClientIP`.
    #[inline]
    pub fn pick_for(&self, flow: &FlowKey) -> Option<Backend> {
        if self.client_ip_affinity {
            self.maglev.lookup(flow.client_hash())
        } else {
            self.maglev.lookup(flow.hash())
        }
    }

    /// The Maglev table.
    pub fn maglev(&self) -> &Arc<MaglevTable> {
        &self.maglev
    }
}

/// Every balanced service port of a chain set.
#[derive(Debug, Default)]
pub struct ServiceTable {
    ports: Vec<ServicePort>,
    by_vip: FxHashMap<VipKey, u32>,
    /// ClusterIPs, for refusing fragments (which have no ports).
    addresses: FxHashMap<(TenantId, u128, bool), ()>,
    /// Changes whenever anything in the table does.
    epoch: u64,
    /// What it was compiled from.
    specs: Vec<ServiceSpec>,
    tenants: Vec<String>,
}

impl ServiceTable {
    /// Compile `services`, with tenants resolved by index in `tenants`.
    /// Maglev tables of `previous` are reused when their ready endpoints did
    /// not change, and updated stably (see [`crate::maglev`]) when they did.
    /// `epoch` is the new table's epoch. Refuses only what a table cannot
    /// index; what validation refuses (`check_services` in `kxdp_config`)
    /// is left out here: a service of an unknown tenant, an endpoint of the
    /// other family than its ClusterIP, a service port a service before it
    /// already has (the first one wins).
    pub fn compile(
        services: &[ServiceSpec],
        tenants: &[String],
        table_size: TableSize,
        previous: Option<&ServiceTable>,
        epoch: u64,
    ) -> Result<ServiceTable, ChainError> {
        let previous_ports: BTreeMap<(&str, u8, u16), &ServicePort> = previous
            .map(|p| {
                p.ports
                    .iter()
                    .map(|s| ((s.service.as_str(), s.vip.proto, s.vip.port), s))
                    .collect()
            })
            .unwrap_or_default();
        let mut table = ServiceTable {
            epoch,
            specs: services.to_vec(),
            tenants: tenants.to_vec(),
            ..ServiceTable::default()
        };
        for service in services {
            let name = format!("{}/{}", service.namespace, service.name);
            let Some(position) = tenants.iter().position(|t| *t == service.tenant) else {
                continue; // validation refuses an unknown tenant
            };
            let tenant =
                TenantId::try_from(position).map_err(|_| ChainError::TooMany("tenants"))?;
            let (ip, ipv6) = ip_bits(service.cluster_ip);
            // Validation refuses an endpoint of the other family.
            let endpoints: Vec<(u128, &EndpointSpec)> = service
                .endpoints
                .iter()
                .map(|e| (ip_bits(e.ip), e))
                .filter(|((_, v6), _)| *v6 == ipv6)
                .map(|((bits, _), e)| (bits, e))
                .collect();
            if service.endpoints.len() >= usize::from(u16::MAX) {
                return Err(ChainError::TooManyEndpoints(name));
            }
            table.addresses.insert((tenant, ip, ipv6), ());
            for port in &service.ports {
                let proto = match port.protocol {
                    Protocol::Tcp => 6,
                    Protocol::Udp => 17,
                    Protocol::Sctp => 132,
                };
                let vip = VipKey {
                    tenant,
                    ip,
                    ipv6,
                    proto,
                    port: port.port,
                };
                if table.by_vip.contains_key(&vip) {
                    continue; // validation refuses a service port twice
                }
                let target = port.target_port.unwrap_or(port.port);
                let mut backends = FxHashMap::default();
                let mut ready = Vec::new();
                for &(address, endpoint) in &endpoints {
                    let backend = Backend {
                        ip: address,
                        port: target,
                    };
                    if endpoint.ready {
                        backends.insert(backend, EndpointState::Ready);
                        ready.push(backend);
                    } else if endpoint.serving {
                        backends.entry(backend).or_insert(EndpointState::Serving);
                    }
                }
                ready.sort_unstable();
                ready.dedup();
                let before = previous_ports.get(&(name.as_str(), proto, port.port));
                let maglev = match before {
                    Some(p)
                        if p.maglev.size() == table_size.get() && p.maglev.backends() == ready =>
                    {
                        Arc::clone(&p.maglev)
                    }
                    _ => Arc::new(MaglevTable::build(
                        table_size,
                        &ready,
                        before.map(|p| &*p.maglev),
                    )?),
                };
                let index = u32::try_from(table.ports.len())
                    .map_err(|_| ChainError::TooMany("service ports"))?;
                table.by_vip.insert(vip, index);
                table.ports.push(ServicePort {
                    service: name.clone(),
                    vip,
                    endpoints: backends,
                    maglev,
                    client_ip_affinity: service.client_ip_affinity,
                });
            }
        }
        Ok(table)
    }

    /// Whether this table was compiled from exactly these inputs.
    pub fn compiled_from(
        &self,
        services: &[ServiceSpec],
        tenants: &[String],
        table_size: TableSize,
    ) -> bool {
        self.specs == services
            && self.tenants == tenants
            && self
                .ports
                .first()
                .is_none_or(|p| p.maglev.size() == table_size.get())
    }

    /// The epoch: connections remembered under another epoch are checked
    /// against the current endpoints at their next packet.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The service port a destination is, as an index.
    #[inline]
    pub fn find(&self, vip: &VipKey) -> Option<u32> {
        self.by_vip.get(vip).copied()
    }

    /// A service port by index.
    #[inline]
    pub fn port(&self, index: u32) -> Option<&ServicePort> {
        self.ports.get(index as usize)
    }

    /// Every service port, in index order.
    pub fn ports(&self) -> &[ServicePort] {
        &self.ports
    }

    /// Whether an address is some service's ClusterIP in the tenant.
    #[inline]
    pub fn is_cluster_ip(&self, tenant: TenantId, ip: u128, ipv6: bool) -> bool {
        self.addresses.contains_key(&(tenant, ip, ipv6))
    }
}
