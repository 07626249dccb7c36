//! The YAML that `kxdp apply -f FILE` reads: the same as a node
//! configuration, or any part of it.
//!
//! The kinds the file lists (`tenants`, `remote_nodes`, `pods`, `routes`,
//! `services`, `policies`, `chains`, `namespaces`) are applied; the fixed
//! part of a configuration (`node`, `interfaces`, `workers`, `control`) is
//! set when kxdp starts and is skipped. As a resync, each listed kind is
//! replaced whole (`chains: []` removes every chain) and unlisted kinds stay
//! as they are; as a delta, the listed objects are upserted by key.

use kxdp_config::{
    ChainSpec, NamespaceSpec, NetworkPolicySpec, PodSpec, RemoteNodeSpec, RouteSpec, ServiceSpec,
    TenantSpec,
};
use serde::Deserialize;

use super::store::{ApplyMode, ChangeSet, KeySet, ObjectKind, ObjectSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyFile {
    #[serde(default)]
    node: Option<serde_yaml::Value>,
    #[serde(default)]
    interfaces: Option<serde_yaml::Value>,
    #[serde(default)]
    workers: Option<serde_yaml::Value>,
    #[serde(default)]
    control: Option<serde_yaml::Value>,
    #[serde(default)]
    tenants: Option<Vec<TenantSpec>>,
    #[serde(default)]
    remote_nodes: Option<Vec<RemoteNodeSpec>>,
    #[serde(default)]
    pods: Option<Vec<PodSpec>>,
    #[serde(default)]
    routes: Option<Vec<RouteSpec>>,
    #[serde(default)]
    services: Option<Vec<ServiceSpec>>,
    #[serde(default)]
    policies: Option<Vec<NetworkPolicySpec>>,
    #[serde(default)]
    chains: Option<Vec<ChainSpec>>,
    #[serde(default)]
    namespaces: Option<Vec<NamespaceSpec>>,
}

/// A change read from a file, and the fixed sections it skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct FileChange {
    /// The change.
    pub change: ChangeSet,
    /// The kinds the file lists.
    pub kinds: Vec<ObjectKind>,
    /// Fixed sections present in the file and not applied.
    pub skipped: Vec<&'static str>,
}

/// Read `yaml` as a resync of the kinds it lists, or (with `delta`) as
/// upserts of its objects.
pub fn change_from_yaml(yaml: &str, delta: bool) -> Result<FileChange, String> {
    let file: ApplyFile = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let mut skipped = Vec::new();
    for (name, present) in [
        ("node", file.node.is_some()),
        ("interfaces", file.interfaces.is_some()),
        ("workers", file.workers.is_some()),
        ("control", file.control.is_some()),
    ] {
        if present {
            skipped.push(name);
        }
    }
    let mut kinds = Vec::new();
    let mut objects = ObjectSet::default();
    macro_rules! take {
        ($kind:expr, $field:ident) => {
            if let Some(items) = file.$field {
                kinds.push($kind);
                objects.$field = items;
            }
        };
    }
    take!(ObjectKind::Tenant, tenants);
    take!(ObjectKind::RemoteNode, remote_nodes);
    take!(ObjectKind::Pod, pods);
    take!(ObjectKind::Route, routes);
    take!(ObjectKind::Service, services);
    take!(ObjectKind::Policy, policies);
    take!(ObjectKind::Chain, chains);
    take!(ObjectKind::Namespace, namespaces);
    if kinds.is_empty() {
        return Err(
            "the file lists no objects (tenants, remote_nodes, pods, routes, services, policies, chains or namespaces)"
                .to_string(),
        );
    }
    let mode = if delta {
        ApplyMode::Delta
    } else {
        ApplyMode::Resync(kinds.clone())
    };
    Ok(FileChange {
        change: ChangeSet {
            mode,
            upserts: objects,
            deletes: KeySet::default(),
        },
        kinds,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_config_file_resyncs_the_kinds_it_lists() {
        let yaml =
            "node: {name: n1}\ninterfaces: []\ntenants: [{name: blue, vni: 100}]\nchains: []\n";
        let read = change_from_yaml(yaml, false).unwrap();
        assert_eq!(read.kinds, vec![ObjectKind::Tenant, ObjectKind::Chain]);
        assert_eq!(
            read.change.mode,
            ApplyMode::Resync(vec![ObjectKind::Tenant, ObjectKind::Chain])
        );
        assert_eq!(read.change.upserts.tenants.len(), 1);
        assert_eq!(read.skipped, vec!["node", "interfaces"]);
        let delta = change_from_yaml(yaml, true).unwrap();
        assert_eq!(delta.change.mode, ApplyMode::Delta);
    }

    #[test]
    fn typos_and_empty_files_are_refused() {
        assert!(change_from_yaml("podz: []\n", false)
            .unwrap_err()
            .contains("podz"));
        assert!(change_from_yaml("node: {name: n1}\n", false).is_err());
        assert!(change_from_yaml("pods: [{name: a}]\n", false).is_err());
    }
}
