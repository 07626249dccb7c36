//! The compiled chain set: an immutable snapshot of every chain, its
//! classifier ([`Classifier`]) and its functions' shared tables
//! (identities, policies, services), built off the hot path and shared by
//! every worker; and the counters each worker keeps per chain and per
//! stage.
//!
//! # The classifier
//!
//! The [`Classifier`] decides which chain (at most one) a packet belongs to.
//!
//! Per tenant, the chains' compiled classifiers sit in one list sorted by
//! priority (highest first), then by chain name; the first that matches
//! wins. A symmetric chain also matches a packet whose *reversed* tuple
//! (addresses, ports and identities swapped) its classifier matches: that
//! packet is the chain's return traffic ([`Direction::Reply`]). When one
//! chain matches both ways, forward wins. Every check is a compare on
//! integers or a bit test: fine for tens of chains per tenant.
//!
//! Matching: every field present must match. `src`/`dst` prefixes match the
//! address family they are written in; `protocol` the IP protocol; port
//! ranges match only TCP, UDP and SCTP packets; `src_selector`/`dst_selector`
//! match the labels of the sending/receiving pod in any namespace, and never
//! an address of no known pod.
//!
//! # Counters
//!
//! Per chain and per stage: packets, bytes, and what became of them. Every
//! stage is counted by the executor; a `counter` function is a stage that
//! does nothing else, to count at a chosen place in the chain.
//!
//! Invariants (tested): a stage's `packets = passed + dropped + redirected`;
//! a chain's `packets + resumed = passed + dropped + redirected`, and its
//! drops by reason add up to `dropped`.

use std::net::IpAddr;
use std::sync::Arc;

use kxdp_config::{
    ChainSpec, ClassifierSpec, FunctionSpec, InterfaceSpec, NamespaceSpec, NetworkPolicySpec,
    NodeConfig, PodSpec, ServiceSpec, TenantSpec,
};
use kxdp_dataplane::tables::TenantId;
use kxdp_dataplane::{DropReason, PortId};

use crate::conntrack::{
    ip_bits, Direction, FlowKey, Identities, IdentityId, IdentityMap, IdentitySet, StageAction,
    NO_CHAIN,
};
use crate::error::ChainError;
use crate::external::{ExternalConfig, ExternalState, VnfLiveness};
use crate::load_balancer::{LbConfig, LbState};
use crate::maglev::{TableSize, DEFAULT_TABLE_SIZE};
use crate::policer::{PolicerConfig, PolicerState};
use crate::policy::{PolicyEnv, PolicySet, PolicyState, Prefix};
use crate::service::ServiceTable;

/// What a chain set is compiled from: the parts of the node model chains
/// use. Tenants and interfaces are indexed in the order given (as the
/// dataplane's `TenantId` and `PortId` are). `pods` may hold pods of other
/// nodes too: every pod listed gets an identity (pods not listed are WORLD).
/// Two inputs compare equal exactly when every part chains read is equal:
/// the control plane recompiles chains only when they differ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainInput<'a> {
    /// Tenants; a `TenantId` is an index here.
    pub tenants: &'a [TenantSpec],
    /// Interfaces; a `PortId` is an index here unless `ports` says
    /// otherwise.
    pub interfaces: &'a [InterfaceSpec],
    /// The port each interface is bound as, when that is not its position
    /// in `interfaces`: `ports[p]` names port `p`'s interface, `None` a
    /// free port (the control plane keeps an interface's port while
    /// interfaces before it come and go, as the tables do). `None`: port
    /// `p` is `interfaces[p]`.
    pub ports: Option<&'a [Option<String>]>,
    /// Pods whose addresses have identities.
    pub pods: &'a [PodSpec],
    /// Namespaces and their labels.
    pub namespaces: &'a [NamespaceSpec],
    /// Services and their endpoints.
    pub services: &'a [ServiceSpec],
    /// NetworkPolicies.
    pub policies: &'a [NetworkPolicySpec],
    /// The chains.
    pub chains: &'a [ChainSpec],
    /// This node's name (`internalTrafficPolicy: Local` keeps the
    /// endpoints on it).
    pub node: &'a str,
    /// The cluster's Service CIDRs when kxdp balances every Service for
    /// every pod without a chain (kube-proxy replacement); empty: only
    /// explicit chains balance. Each tenant with Services gets an implicit
    /// chain per CIDR, `kxdp:services:<tenant>:<n>`, with one load-balancer
    /// stage, ranked below every explicit chain.
    pub service_cidrs: &'a [ipnetwork::IpNetwork],
    /// This node's own addresses (the host port's): NetworkPolicy always
    /// allows traffic between them and pods.
    pub node_addresses: &'a [IpAddr],
    /// The node's VTEP address, when it is one of the node's own addresses
    /// too (a host port without explicit `node_ips`).
    pub vtep_address: Option<std::net::Ipv4Addr>,
}

impl<'a> ChainInput<'a> {
    /// Everything from a node's configuration (its own pods only).
    pub fn from_config(config: &'a NodeConfig) -> Self {
        ChainInput {
            tenants: &config.tenants,
            interfaces: &config.interfaces,
            ports: None,
            pods: &config.pods,
            namespaces: &config.namespaces,
            services: &config.services,
            policies: &config.policies,
            chains: &config.chains,
            node: &config.node.name,
            service_cidrs: if config.cluster.service_load_balancing {
                &config.cluster.service_cidrs
            } else {
                &[]
            },
            node_addresses: config
                .host
                .as_ref()
                .map_or(&[][..], |h| h.node_ips.as_slice()),
            vtep_address: config
                .host
                .as_ref()
                .filter(|h| h.node_ips.is_empty())
                .map(|_| config.node.vtep.ip),
        }
    }
}

/// The name prefix of the implicit Service chains (validation refuses a
/// chain of the configuration named so).
pub use kxdp_config::IMPLICIT_SERVICES_CHAIN;

/// The implicit chains that balance every Service for every pod: one per
/// (tenant with Services, Service CIDR).
///
/// With NetworkPolicies in the model, a tenant's implicit chain takes all
/// its traffic instead, through the load balancer and then the policies
/// (which see the endpoint a Service connection was balanced to), so that
/// NetworkPolicy applies to every pod, as Kubernetes defines it.
fn implicit_service_chains(input: &ChainInput<'_>) -> Vec<ChainSpec> {
    let mut out = Vec::new();
    if input.service_cidrs.is_empty() {
        return out;
    }
    for tenant in input.tenants {
        if !input.policies.is_empty() {
            out.push(ChainSpec {
                name: format!("{IMPLICIT_SERVICES_CHAIN}{}:policy", tenant.name),
                tenant: tenant.name.clone(),
                priority: 0,
                classifier: kxdp_config::ClassifierSpec::default(),
                functions: vec![
                    FunctionSpec::LoadBalancer {
                        services: Vec::new(),
                    },
                    FunctionSpec::Policy,
                ],
                symmetric: false,
            });
            continue;
        }
        if !input.services.iter().any(|s| s.tenant == tenant.name) {
            continue;
        }
        for (n, cidr) in input.service_cidrs.iter().enumerate() {
            out.push(ChainSpec {
                name: format!("{IMPLICIT_SERVICES_CHAIN}{}:{n}", tenant.name),
                tenant: tenant.name.clone(),
                priority: 0,
                classifier: kxdp_config::ClassifierSpec {
                    dst: Some(*cidr),
                    ..Default::default()
                },
                functions: vec![FunctionSpec::LoadBalancer {
                    services: Vec::new(),
                }],
                symmetric: false,
            });
        }
    }
    out
}

/// The Services as balanced on this node: `internalTrafficPolicy: Local`
/// keeps only the endpoints on `node`.
fn local_view(services: &[ServiceSpec], node: &str) -> Vec<ServiceSpec> {
    services
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.internal_traffic_local {
                s.endpoints.retain(|e| e.node.as_deref() == Some(node));
            }
            s
        })
        .collect()
}

/// Compile-time settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Size of each service port's Maglev table (a prime, checked when the
    /// [`TableSize`] is made).
    pub maglev_table_size: TableSize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            maglev_table_size: DEFAULT_TABLE_SIZE,
        }
    }
}

/// Where a frame coming back from an external VNF resumes: after `stage` of
/// `chain`, going `direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    /// The chain's index.
    pub chain: u16,
    /// The external hop's stage index.
    pub stage: u16,
    /// The direction the frame travels.
    pub direction: Direction,
}

/// One stage of a chain: the function's settings and its per-worker state
/// in one value, so they cannot disagree. The compiled set holds each
/// stage with a fresh state (a template); each worker keeps its own copy
/// ([`StageState::fresh`]) and, when a new set keeps the stage, takes the
/// new settings and keeps its state ([`StageState::reconfigure`]).
/// Per-flow state lives in the connection table.
#[derive(Clone, Debug)]
pub enum StageState {
    /// Policy: its decisions (the policies are the set's).
    Policy(PolicyState),
    /// Policer: its settings and class bucket.
    Policer(PolicerState),
    /// Load balancer: the service ports it balances, and its counters.
    LoadBalancer {
        /// Which service ports it balances.
        config: LbConfig,
        /// Its counters.
        state: LbState,
    },
    /// Counter: nothing beyond the stage counters.
    Counter,
    /// Mirror: copies go out of this port.
    Mirror {
        /// Where copies go.
        port: PortId,
    },
    /// External hop: where the VNF is, and this worker's liveness view.
    External {
        /// Ports, failure policy, timeout and the shared liveness clock.
        config: ExternalConfig,
        /// This worker's view.
        state: ExternalState,
    },
}

impl StageState {
    /// The same settings with a fresh state created at `now`.
    pub(crate) fn fresh(&self, now: u64) -> StageState {
        match self {
            StageState::Policy(_) => StageState::Policy(PolicyState::new()),
            StageState::Policer(p) => StageState::Policer(PolicerState::new(*p.config(), now)),
            StageState::LoadBalancer { config, .. } => StageState::LoadBalancer {
                config: config.clone(),
                state: LbState::new(),
            },
            StageState::Counter => StageState::Counter,
            StageState::Mirror { port } => StageState::Mirror { port: *port },
            StageState::External { config, .. } => StageState::External {
                config: config.clone(),
                state: ExternalState::new(),
            },
        }
    }

    /// Take the settings of `template` (the same function in a newer set:
    /// service port indices and ports may have moved), keeping the state.
    pub(crate) fn reconfigure(&mut self, template: &StageState) {
        match (self, template) {
            (
                StageState::LoadBalancer { config, .. },
                StageState::LoadBalancer { config: new, .. },
            ) => config.clone_from(new),
            (StageState::Mirror { port }, StageState::Mirror { port: new }) => *port = *new,
            (StageState::External { config, .. }, StageState::External { config: new, .. }) => {
                config.clone_from(new)
            }
            // A policer's settings are its spec's (equal, or it would not
            // be kept); policy and counter have none. Different kinds are
            // never kept across sets.
            _ => {}
        }
    }
}

/// One stage: its spec (what identifies its state across swaps) and its
/// compiled form (settings and a fresh state).
#[derive(Clone, Debug)]
pub(crate) struct CompiledStage {
    pub(crate) spec: FunctionSpec,
    pub(crate) stage: StageState,
}

/// One compiled chain.
#[derive(Clone, Debug)]
pub(crate) struct CompiledChain {
    pub(crate) spec: ChainSpec,
    pub(crate) tenant: TenantId,
    pub(crate) stages: Vec<CompiledStage>,
    /// Per stage: run for return traffic (all stages of a symmetric chain;
    /// only load balancers, for their reverse translation, otherwise).
    pub(crate) reply_stages: Vec<bool>,
}

impl CompiledChain {
    /// The first stage a packet entering in `direction` runs.
    #[inline]
    pub(crate) fn first_stage(&self, direction: Direction) -> Option<u16> {
        match direction {
            Direction::Forward => (!self.stages.is_empty()).then_some(0),
            Direction::Reply => self.reply_stages.iter().rposition(|&r| r).map(|s| s as u16),
        }
    }

    /// The stage after `stage` in `direction`.
    #[inline]
    pub(crate) fn next_stage(&self, stage: u16, direction: Direction) -> Option<u16> {
        let stage = usize::from(stage);
        match direction {
            Direction::Forward => (stage + 1 < self.stages.len()).then_some(stage as u16 + 1),
            Direction::Reply => self
                .reply_stages
                .get(..stage)
                .and_then(|before| before.iter().rposition(|&r| r))
                .map(|s| s as u16),
        }
    }
}

/// The name of a function's kind, as counters show it.
pub fn function_kind(spec: &FunctionSpec) -> &'static str {
    match spec {
        FunctionSpec::Policy => "policy",
        FunctionSpec::Policer { .. } => "policer",
        FunctionSpec::LoadBalancer { .. } => "load_balancer",
        FunctionSpec::Counter => "counter",
        FunctionSpec::Mirror { .. } => "mirror",
        FunctionSpec::External { .. } => "external",
    }
}

/// Which occurrence of an equal spec a stage is within its chain (0 for the
/// first): a stage is identified across swaps by (chain name, spec, occurrence).
pub(crate) fn occurrence(stages: &[FunctionSpec], index: usize) -> usize {
    stages[..index]
        .iter()
        .filter(|s| **s == stages[index])
        .count()
}

/// An immutable, compiled snapshot of the node's chains: publish it like
/// the forwarding tables (RCU) and hand it to every worker's
/// [`crate::ChainWorker::process`].
#[derive(Debug)]
pub struct ChainSet {
    pub(crate) generation: u64,
    pub(crate) chains: Vec<CompiledChain>,
    pub(crate) classifier: Classifier,
    identities: Identities,
    pub(crate) identity_map: Arc<IdentityMap>,
    pub(crate) policy: Arc<PolicySet>,
    pub(crate) policy_epoch: u64,
    pub(crate) services: Arc<ServiceTable>,
    resume: Vec<Option<ResumePoint>>,
    options: CompileOptions,
    /// This node's own addresses (see [`ChainInput::node_addresses`]).
    node_addresses: Vec<(u128, bool)>,
    /// The most mirror stages in one chain.
    mirror_copies: usize,
}

impl ChainSet {
    /// Compile a chain set. `generation` must differ from the previous
    /// set's (workers adopt a set when its generation changes). With
    /// `previous`, identity ids stay stable, and compiled policies, Maglev
    /// tables and VNF liveness clocks are reused (or updated stably) where
    /// their inputs did not change; see the crate docs for what survives.
    ///
    /// The input is the model as validation (`kxdp_config`'s
    /// `NodeConfig::validate`) accepted it: the only refusals left are
    /// capacity limits ([`ChainError`]). Given an input validation would
    /// refuse, the compiler does not fail or panic: it leaves out what is
    /// inconsistent — a chain with an unknown tenant or interface, a second
    /// function keeping per-flow state, or an external hop returning on an
    /// interface an earlier hop returns on; a chain whose name an earlier
    /// chain has (explicit chains come before the implicit ones); a pod or
    /// service of an unknown tenant, an endpoint of the other family, a
    /// second pod with one address or a service port twice (the first one
    /// wins) — and a load balancer ignores a service name that is not its
    /// tenant's.
    pub fn compile(
        input: &ChainInput<'_>,
        generation: u64,
        options: CompileOptions,
        previous: Option<&ChainSet>,
    ) -> Result<ChainSet, ChainError> {
        if input.tenants.len() > usize::from(TenantId::MAX) {
            return Err(ChainError::TooMany("tenants"));
        }
        let tenant_names: Vec<String> = input.tenants.iter().map(|t| t.name.clone()).collect();
        let tenant_id = |name: &str| {
            input
                .tenants
                .iter()
                .position(|t| t.name == name)
                .map(|i| i as TenantId)
        };
        // An interface's port: `None` for an interface the input does not
        // have; an interface beyond the port numbers is a capacity limit.
        let port_id = |name: &str| -> Result<Option<PortId>, ChainError> {
            let position = match input.ports {
                Some(ports) => ports.iter().position(|p| p.as_deref() == Some(name)),
                None => input.interfaces.iter().position(|i| i.name == name),
            };
            position
                .map(|i| PortId::try_from(i).map_err(|_| ChainError::TooMany("interfaces")))
                .transpose()
        };
        let port_count = input.ports.map_or(input.interfaces.len(), |p| {
            p.len().max(input.interfaces.len())
        });

        // Identities, addresses, policies.
        let identities = Identities::assign(input.pods, previous.map(|p| &p.identities))?;
        let identity_map = IdentityMap::build(input.pods, &identities, tenant_id);
        let identity_map = match previous {
            Some(p) if *p.identity_map == identity_map => Arc::clone(&p.identity_map),
            _ => Arc::new(identity_map),
        };
        let policy = match previous {
            Some(p)
                if p.policy
                    .compiled_from(&identities, input.namespaces, input.policies) =>
            {
                Arc::clone(&p.policy)
            }
            _ => Arc::new(PolicySet::compile(
                &identities,
                input.namespaces,
                input.policies,
            )),
        };
        let policy_epoch = match previous {
            Some(p)
                if Arc::ptr_eq(&p.policy, &policy)
                    && Arc::ptr_eq(&p.identity_map, &identity_map) =>
            {
                p.policy_epoch
            }
            _ => generation,
        };

        // Services.
        let local_services = local_view(input.services, input.node);
        let services = match previous {
            Some(p)
                if p.services.compiled_from(
                    &local_services,
                    &tenant_names,
                    options.maglev_table_size,
                ) =>
            {
                Arc::clone(&p.services)
            }
            _ => Arc::new(ServiceTable::compile(
                &local_services,
                &tenant_names,
                options.maglev_table_size,
                previous.map(|p| &*p.services),
                generation,
            )?),
        };

        // Chains.
        let explicit = input.chains.len();
        let specs: Vec<ChainSpec> = input
            .chains
            .iter()
            .cloned()
            .chain(implicit_service_chains(input))
            .collect();
        if specs.len() >= usize::from(NO_CHAIN) {
            return Err(ChainError::TooMany("chains"));
        }
        let mut chains: Vec<CompiledChain> = Vec::with_capacity(specs.len());
        let mut entries = Vec::with_capacity(specs.len());
        let mut resume: Vec<Option<ResumePoint>> = vec![None; port_count];
        // Each `continue 'chain` leaves out a chain that validation
        // (`check_chains` in kxdp_config) refuses; the comment says which
        // refusal.
        'chain: for (position, spec) in specs.iter().enumerate() {
            if chains.iter().any(|c| c.spec.name == spec.name) {
                continue; // a chain name twice (or an implicit chain's name): the first wins
            }
            if spec.functions.len() >= usize::from(u16::MAX) {
                return Err(ChainError::TooMany("stages in a chain"));
            }
            let Some(tenant) = tenant_id(&spec.tenant) else {
                continue; // an unknown tenant
            };
            for (stage, function) in spec.functions.iter().enumerate() {
                if let Some(kind) = function.flow_state_kind() {
                    if spec.functions[..stage]
                        .iter()
                        .any(|f| f.flow_state_kind() == Some(kind))
                    {
                        continue 'chain; // a second function keeping per-flow state
                    }
                }
            }
            // Below NO_CHAIN, checked above.
            let index = chains.len() as u16;
            let previous_chain =
                previous.and_then(|p| p.chains.iter().find(|c| c.spec.name == spec.name));
            let mut stages = Vec::with_capacity(spec.functions.len());
            // The return interfaces this chain's external hops take, claimed
            // once the whole chain compiled.
            let mut claims: Vec<(PortId, ResumePoint)> = Vec::new();
            for (stage, function) in spec.functions.iter().enumerate() {
                let kind = match function {
                    FunctionSpec::Policy => StageState::Policy(PolicyState::new()),
                    FunctionSpec::Policer {
                        rate_pps,
                        burst,
                        per,
                    } => StageState::Policer(PolicerState::new(
                        PolicerConfig {
                            rate_pps: *rate_pps,
                            burst: *burst,
                            scope: *per,
                        },
                        0,
                    )),
                    // A name no service of the tenant has selects no port
                    // (validation refuses it as an unknown service).
                    FunctionSpec::LoadBalancer { services: names } => StageState::LoadBalancer {
                        config: LbConfig::new(
                            services
                                .ports()
                                .iter()
                                .map(|p| {
                                    p.vip.tenant == tenant
                                        && (names.is_empty() || names.contains(&p.service))
                                })
                                .collect(),
                        ),
                        state: LbState::new(),
                    },
                    FunctionSpec::Counter => StageState::Counter,
                    FunctionSpec::Mirror { interface } => {
                        let Some(port) = port_id(interface)? else {
                            continue 'chain; // an unknown interface
                        };
                        StageState::Mirror { port }
                    }
                    FunctionSpec::External {
                        to_interface,
                        from_interface,
                        failure,
                        timeout_ms,
                    } => {
                        let (Some(to_port), Some(from_port)) =
                            (port_id(to_interface)?, port_id(from_interface)?)
                        else {
                            continue 'chain; // an unknown interface
                        };
                        let point = |direction| ResumePoint {
                            chain: index,
                            stage: stage as u16,
                            direction,
                        };
                        if to_port == from_port {
                            continue 'chain; // one interface both ways
                        }
                        // Frames come back on from_port; on a symmetric
                        // chain, replies on to_port too.
                        let mut hop = vec![(from_port, point(Direction::Forward))];
                        if spec.symmetric {
                            hop.push((to_port, point(Direction::Reply)));
                        }
                        for &(port, _) in &hop {
                            let taken = claims.iter().any(|&(p, _)| p == port)
                                || resume.get(usize::from(port)).is_none_or(Option::is_some);
                            if taken {
                                continue 'chain; // an interface two external hops return on: the first wins
                            }
                        }
                        claims.extend(hop);
                        let timeout_ns = timeout_ms.saturating_mul(1_000_000);
                        // The liveness clock of the same stage in the
                        // previous set, if there is one.
                        let nth = occurrence(&spec.functions, stage);
                        let liveness = previous_chain
                            .and_then(|c| {
                                let specs: Vec<FunctionSpec> =
                                    c.stages.iter().map(|s| s.spec.clone()).collect();
                                c.stages
                                    .iter()
                                    .enumerate()
                                    .find_map(|(i, s)| match &s.stage {
                                        StageState::External { config, .. }
                                            if s.spec == *function
                                                && occurrence(&specs, i) == nth =>
                                        {
                                            Some(Arc::clone(&config.liveness))
                                        }
                                        _ => None,
                                    })
                            })
                            .unwrap_or_else(|| Arc::new(VnfLiveness::new(timeout_ns)));
                        StageState::External {
                            config: ExternalConfig {
                                to_port,
                                from_port,
                                failure: *failure,
                                timeout_ns,
                                liveness,
                            },
                            state: ExternalState::new(),
                        }
                    }
                };
                stages.push(CompiledStage {
                    spec: function.clone(),
                    stage: kind,
                });
            }
            for (port, point) in claims {
                if let Some(slot) = resume.get_mut(usize::from(port)) {
                    *slot = Some(point);
                }
            }
            let reply_stages = stages
                .iter()
                .map(|s| spec.symmetric || matches!(s.stage, StageState::LoadBalancer { .. }))
                .collect();
            entries.push(ClassifierEntry {
                chain: index,
                tenant,
                implicit: position >= explicit,
                priority: spec.priority,
                name: spec.name.clone(),
                symmetric: spec.symmetric,
                matcher: CompiledMatch::new(&spec.classifier, &identities),
            });
            chains.push(CompiledChain {
                spec: spec.clone(),
                tenant,
                stages,
                reply_stages,
            });
        }

        let mirror_copies = chains
            .iter()
            .map(|chain| {
                chain
                    .stages
                    .iter()
                    .filter(|s| matches!(s.stage, StageState::Mirror { .. }))
                    .count()
            })
            .max()
            .unwrap_or(0);
        Ok(ChainSet {
            generation,
            chains,
            mirror_copies,
            classifier: Classifier::new(entries),
            identities,
            identity_map,
            policy,
            policy_epoch,
            services,
            resume,
            options,
            node_addresses: input
                .node_addresses
                .iter()
                .copied()
                .chain(input.vtep_address.map(IpAddr::V4))
                .map(ip_bits)
                .collect(),
        })
    }

    /// An empty set (no chain applies to anything).
    pub fn empty(generation: u64) -> ChainSet {
        ChainSet {
            generation,
            chains: Vec::new(),
            classifier: Classifier::default(),
            identities: Identities::default(),
            identity_map: Arc::default(),
            policy: Arc::new(PolicySet::compile(&Identities::default(), &[], &[])),
            policy_epoch: generation,
            services: Arc::default(),
            resume: Vec::new(),
            options: CompileOptions::default(),
            node_addresses: Vec::new(),
            mirror_copies: 0,
        }
    }

    /// The generation it was compiled as.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The options it was compiled with.
    pub fn options(&self) -> CompileOptions {
        self.options
    }

    /// The most mirror copies one packet can ask for in a batch: the most
    /// mirror stages in one chain (a packet runs each stage of its chain at
    /// most once per batch). 0: the set makes no copies.
    #[inline]
    pub fn mirror_copies(&self) -> usize {
        self.mirror_copies
    }

    /// Number of chains.
    pub fn len(&self) -> usize {
        self.chains.len()
    }

    /// Whether there is no chain.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// A chain's spec, by index.
    pub fn chain(&self, index: usize) -> Option<&ChainSpec> {
        self.chains.get(index).map(|c| &c.spec)
    }

    /// A chain's index, by name.
    pub fn chain_index(&self, name: &str) -> Option<usize> {
        self.chains.iter().position(|c| c.spec.name == name)
    }

    /// Where a frame arriving on `port` resumes its chain: `Some` when the
    /// port is an external VNF's return interface. The worker must hand such
    /// frames to [`crate::ChainWorker::process`] (it resumes them by itself)
    /// and must not apply the pod source check to them: they carry the
    /// original sender's addresses, not the VNF pod's.
    #[inline]
    pub fn resume_point(&self, port: PortId) -> Option<ResumePoint> {
        self.resume.get(usize::from(port)).copied().flatten()
    }

    /// Whether `port` is an external VNF's return interface.
    pub fn is_vnf_return_port(&self, port: PortId) -> bool {
        self.resume_point(port).is_some()
    }

    /// Whether any chain could classify the tenant's traffic: when false
    /// (and the frame did not arrive on a VNF return port, see
    /// [`ChainSet::resume_point`]) the worker may skip the chain step.
    #[inline]
    pub fn applies_to(&self, tenant: TenantId) -> bool {
        self.classifier.has_chains(tenant)
    }

    /// The identity universe.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// Addresses to identities.
    pub fn identity_map(&self) -> &Arc<IdentityMap> {
        &self.identity_map
    }

    /// The compiled policies.
    pub fn policy(&self) -> &Arc<PolicySet> {
        &self.policy
    }

    /// The compiled services.
    pub fn services(&self) -> &Arc<ServiceTable> {
        &self.services
    }

    /// What a policy stage reads.
    pub(crate) fn policy_env(&self) -> PolicyEnv<'_> {
        PolicyEnv {
            node_addresses: &self.node_addresses,
            policy: &self.policy,
            identities: &self.identity_map,
            epoch: self.policy_epoch,
        }
    }
}

/// One chain's compiled classifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledMatch {
    src: Option<Prefix>,
    dst: Option<Prefix>,
    proto: Option<u8>,
    src_ports: Option<(u16, u16)>,
    dst_ports: Option<(u16, u16)>,
    src_selector: Option<IdentitySet>,
    dst_selector: Option<IdentitySet>,
}

impl CompiledMatch {
    /// Compile a classifier against the identity universe.
    pub fn new(spec: &ClassifierSpec, identities: &Identities) -> Self {
        let selector = |s: &Option<kxdp_config::LabelSelector>| {
            s.as_ref()
                .map(|s| IdentitySet::select(identities, |key| s.matches(&key.labels)))
        };
        CompiledMatch {
            src: spec.src.as_ref().map(Prefix::new),
            dst: spec.dst.as_ref().map(Prefix::new),
            proto: spec.protocol.map(|p| p.number()),
            src_ports: spec.src_ports.map(|r| (r.first, r.last)),
            dst_ports: spec.dst_ports.map(|r| (r.first, r.last)),
            src_selector: selector(&spec.src_selector),
            dst_selector: selector(&spec.dst_selector),
        }
    }

    /// Whether it uses identities (so the caller must look them up).
    pub fn uses_identities(&self) -> bool {
        self.src_selector.is_some() || self.dst_selector.is_some()
    }

    /// Whether a packet with this key and identities matches.
    #[inline]
    pub fn matches(&self, key: &FlowKey, src: IdentityId, dst: IdentityId) -> bool {
        let ports = |range: Option<(u16, u16)>, port: u16| {
            range.is_none_or(|(first, last)| key.has_ports() && first <= port && port <= last)
        };
        self.proto.is_none_or(|p| p == key.proto)
            && self.src.is_none_or(|p| p.contains(key.src, key.ipv6))
            && self.dst.is_none_or(|p| p.contains(key.dst, key.ipv6))
            && ports(self.src_ports, key.src_port)
            && ports(self.dst_ports, key.dst_port)
            && self.src_selector.as_ref().is_none_or(|s| s.contains(src))
            && self.dst_selector.as_ref().is_none_or(|s| s.contains(dst))
    }
}

/// A chain as the classifier knows it.
#[derive(Clone, Debug)]
pub struct ClassifierEntry {
    /// The chain's index in its set.
    pub chain: u16,
    /// The chain's tenant.
    pub tenant: TenantId,
    /// Implicit (kxdp's own Service chains): ranked below every explicit
    /// chain, whatever their priorities.
    pub implicit: bool,
    /// Higher wins.
    pub priority: u32,
    /// Ties are broken by name order.
    pub name: String,
    /// Return traffic belongs to the chain too.
    pub symmetric: bool,
    /// What it matches.
    pub matcher: CompiledMatch,
}

#[derive(Clone, Debug, Default)]
struct TenantChains {
    entries: Vec<ClassifierEntry>,
    uses_identities: bool,
}

/// The compiled classifier of a chain set.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    tenants: Vec<TenantChains>,
}

impl Classifier {
    /// Sort the chains per tenant by rank.
    pub fn new(entries: Vec<ClassifierEntry>) -> Self {
        let mut tenants: Vec<TenantChains> = Vec::new();
        for entry in entries {
            let t = usize::from(entry.tenant);
            if tenants.len() <= t {
                tenants.resize(t + 1, TenantChains::default());
            }
            tenants[t].uses_identities |= entry.matcher.uses_identities();
            tenants[t].entries.push(entry);
        }
        for t in &mut tenants {
            t.entries.sort_by(|a, b| {
                a.implicit
                    .cmp(&b.implicit)
                    .then_with(|| b.priority.cmp(&a.priority))
                    .then_with(|| a.name.cmp(&b.name))
            });
        }
        Classifier { tenants }
    }

    /// Whether the tenant has any chain.
    #[inline]
    pub fn has_chains(&self, tenant: TenantId) -> bool {
        self.tenants
            .get(usize::from(tenant))
            .is_some_and(|t| !t.entries.is_empty())
    }

    /// Whether classifying in this tenant needs the packet's identities.
    #[inline]
    pub fn uses_identities(&self, tenant: TenantId) -> bool {
        self.tenants
            .get(usize::from(tenant))
            .is_some_and(|t| t.uses_identities)
    }

    /// The chain a packet belongs to, and its direction. `src`/`dst` are the
    /// packet's identities (only read when [`Classifier::uses_identities`]).
    #[inline]
    pub fn classify(
        &self,
        key: &FlowKey,
        src: IdentityId,
        dst: IdentityId,
    ) -> Option<(u16, Direction)> {
        let tenant = self.tenants.get(usize::from(key.tenant))?;
        let mut reversed = None;
        for entry in &tenant.entries {
            if entry.matcher.matches(key, src, dst) {
                return Some((entry.chain, Direction::Forward));
            }
            if entry.symmetric {
                let r = reversed.get_or_insert_with(|| key.reversed());
                if entry.matcher.matches(r, dst, src) {
                    return Some((entry.chain, Direction::Reply));
                }
            }
        }
        None
    }
}

/// One stage's counters on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageCounters {
    /// Packets the stage saw.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets it passed on.
    pub passed: u64,
    /// Packets it dropped.
    pub dropped: u64,
    /// Packets it redirected (into a VNF).
    pub redirected: u64,
    /// Copies it had made (mirror).
    pub mirrored: u64,
    /// Copies that could not be made (mirror).
    pub mirror_failed: u64,
}

impl StageCounters {
    /// Count one packet of `bytes` and what the stage did with it.
    #[inline]
    pub fn count(&mut self, bytes: u32, action: StageAction) {
        self.packets += 1;
        self.bytes += u64::from(bytes);
        match action {
            StageAction::Pass => self.passed += 1,
            StageAction::Drop(_) => self.dropped += 1,
            StageAction::Redirect(_) => self.redirected += 1,
        }
    }

    /// Add another worker's counters.
    pub fn add(&mut self, other: &StageCounters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.passed += other.passed;
        self.dropped += other.dropped;
        self.redirected += other.redirected;
        self.mirrored += other.mirrored;
        self.mirror_failed += other.mirror_failed;
    }
}

/// One chain's counters on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainCounters {
    /// Packets classified into the chain.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets that came back from an external VNF and resumed the chain.
    pub resumed: u64,
    /// Packets that left the chain passed.
    pub passed: u64,
    /// Packets the chain dropped.
    pub dropped: u64,
    /// Packets that left the chain into a VNF.
    pub redirected: u64,
    /// Packets of the return direction (included in `packets`/`resumed`).
    pub reply_packets: u64,
    /// Drops by reason, in the order of [`DropReason::CHAIN`]
    /// ([`DropReason::chain_index`]).
    pub drops: [u64; DropReason::CHAIN.len()],
}

impl ChainCounters {
    /// Add another worker's counters.
    pub fn add(&mut self, other: &ChainCounters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.resumed += other.resumed;
        self.passed += other.passed;
        self.dropped += other.dropped;
        self.redirected += other.redirected;
        self.reply_packets += other.reply_packets;
        for (mine, theirs) in self.drops.iter_mut().zip(other.drops.iter()) {
            *mine += theirs;
        }
    }

    /// Drops for one reason.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        reason.chain_index().map_or(0, |i| self.drops[i])
    }
}

/// A chain's counters with its stages', by name: what `kxdp get chains`
/// shows. Sum workers' stats with [`ChainStats::merge`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// The chain's name.
    pub chain: String,
    /// The chain's counters.
    pub counters: ChainCounters,
    /// Per stage, in chain order: the function's kind and its counters.
    pub stages: Vec<(&'static str, StageCounters)>,
}

impl ChainStats {
    /// Sum per-worker stats (each a list over chains) by chain name and
    /// stage position.
    pub fn merge<'a>(workers: impl IntoIterator<Item = &'a [ChainStats]>) -> Vec<ChainStats> {
        let mut total: Vec<ChainStats> = Vec::new();
        for stats in workers {
            for chain in stats {
                match total.iter_mut().find(|t| t.chain == chain.chain) {
                    Some(t) => {
                        t.counters.add(&chain.counters);
                        for (i, (kind, stage)) in chain.stages.iter().enumerate() {
                            match t.stages.get_mut(i) {
                                Some((_, sum)) => sum.add(stage),
                                None => t.stages.push((kind, *stage)),
                            }
                        }
                    }
                    None => total.push(chain.clone()),
                }
            }
        }
        total
    }
}
