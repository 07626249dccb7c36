//! What binds and unbinds the pod interfaces upserted and deleted at run
//! time: the runtime implements it ([`crate::runtime::RuntimePorts`]), the
//! control plane's desired-state store calls it.

use kxdp_config::InterfaceSpec;
use kxdp_dataplane::verdict::PortId;

/// Attaches the pod interfaces upserted at run time to the workers, and
/// detaches those deleted (the node's runtime does this; a store without
/// one only compiles them into the tables).
pub trait PortLifecycle: Send + Sync {
    /// Bind `itf` as port `port` on every worker, with kxdp's XDP program
    /// on it; called before any table routes to the port. An error refuses
    /// the change (nothing else is attached or published).
    fn attach(&self, port: PortId, itf: &InterfaceSpec) -> Result<(), String>;
    /// Unbind port `port` (its interface was `itf`); called after the
    /// published tables stopped routing to it.
    fn detach(&self, port: PortId, itf: &InterfaceSpec);
}

impl std::fmt::Debug for dyn PortLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortLifecycle")
    }
}
