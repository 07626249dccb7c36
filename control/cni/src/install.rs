//! `kxdp-cni install`: what the DaemonSet's init container runs to put
//! the plugin on its node, as CNIs do (Calico's install-cni, Flannel's
//! init container): the plugin binary (itself) and any extra plugins
//! (`--plugin`, e.g. `host-local`) are copied into the node's CNI bin
//! directory, and the conflist template is written into the node's CNI
//! configuration directory, filled in from the node's kxdp configuration:
//! the API socket's node name, the pod CIDRs of the network's tenant as
//! host-local ranges, and the MTU the underlay leaves. Every file is
//! written beside its target and renamed over it, so a runtime never
//! execs or reads half a file.
//!
//! The image is built `FROM scratch` (no shell, no `cp`): this is why the
//! copy is the plugin's own job.

use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde_json::{json, Value};

use crate::config::DEFAULT_TENANT;

/// VXLAN's overhead over the underlay MTU.
const VXLAN_OVERHEAD: u64 = 50;

/// The usage line.
pub const USAGE: &str = "usage: kxdp-cni install --node-config FILE --conflist TEMPLATE \
--bin-dir DIR --conf-dir DIR [--plugin FILE]...";

/// Why installing failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The command line is wrong.
    #[error("{0}\n{USAGE}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node configuration or the template is not usable.
    #[error("{0}")]
    Config(String),
}

/// The command line of `install`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InstallArgs {
    /// The node's kxdp configuration (`/etc/kxdp/node.yaml`).
    pub node_config: PathBuf,
    /// The conflist template.
    pub conflist: PathBuf,
    /// The node's CNI bin directory (mounted from `/opt/cni/bin`).
    pub bin_dir: PathBuf,
    /// The node's CNI configuration directory (from `/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Extra plugins to copy.
    pub plugins: Vec<PathBuf>,
}

impl InstallArgs {
    /// Parse the arguments after `install`.
    pub fn parse(args: &[String]) -> Result<InstallArgs, InstallError> {
        let mut parsed = InstallArgs::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .map(PathBuf::from)
                    .ok_or_else(|| InstallError::Usage(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--node-config" => parsed.node_config = value()?,
                "--conflist" => parsed.conflist = value()?,
                "--bin-dir" => parsed.bin_dir = value()?,
                "--conf-dir" => parsed.conf_dir = value()?,
                "--plugin" => parsed.plugins.push(value()?),
                other => return Err(InstallError::Usage(format!("unknown argument {other:?}"))),
            }
        }
        for (name, value) in [
            ("--node-config", &parsed.node_config),
            ("--conflist", &parsed.conflist),
            ("--bin-dir", &parsed.bin_dir),
            ("--conf-dir", &parsed.conf_dir),
        ] {
            if value.as_os_str().is_empty() {
                return Err(InstallError::Usage(format!("{name} is required")));
            }
        }
        Ok(parsed)
    }
}

/// What the conflist needs from the node's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// `node.name`.
    pub name: String,
    /// `node.pod_cidrs`: (tenant, CIDR, gateway).
    pub pod_cidrs: Vec<(String, IpNetwork, Option<String>)>,
    /// `control.api_socket`, or the one beside `control.socket`.
    pub api_socket: Option<String>,
    /// `node.vtep.underlay_mtu`.
    pub underlay_mtu: Option<u64>,
}

impl NodeFacts {
    /// Read them from the YAML of a kxdp node configuration.
    pub fn from_yaml(text: &str) -> Result<NodeFacts, InstallError> {
        let config: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| InstallError::Config(format!("the node configuration: {e}")))?;
        let node = &config["node"];
        let name = node["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| InstallError::Config("the node configuration has no node.name".into()))?
            .to_string();
        let mut pod_cidrs = Vec::new();
        for (i, cidr) in node["pod_cidrs"]
            .as_sequence()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let prefix = cidr["cidr"]
                .as_str()
                .and_then(|c| c.parse::<IpNetwork>().ok())
                .ok_or_else(|| {
                    InstallError::Config(format!("node.pod_cidrs[{i}].cidr is not a CIDR"))
                })?;
            pod_cidrs.push((
                cidr["tenant"]
                    .as_str()
                    .unwrap_or(DEFAULT_TENANT)
                    .to_string(),
                prefix,
                cidr["gateway"].as_str().map(str::to_string),
            ));
        }
        let control = &config["control"];
        let api_socket = control["api_socket"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                control["socket"]
                    .as_str()
                    .map(|s| match s.strip_suffix(".sock") {
                        Some(base) => format!("{base}.api.sock"),
                        None => format!("{s}.api.sock"),
                    })
            });
        Ok(NodeFacts {
            name,
            pod_cidrs,
            api_socket,
            underlay_mtu: node["vtep"]["underlay_mtu"].as_u64(),
        })
    }
}

/// Fill the `kxdp-cni` entries of `template` (a conflist) for `node`:
/// where absent, `node` (or `api_socket`), `mtu`, and host-local `ranges`
/// from the tenant's pod CIDRs (one range set per family).
pub fn render_conflist(mut template: Value, node: &NodeFacts) -> Result<Value, InstallError> {
    let plugins = template
        .get_mut("plugins")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| {
            InstallError::Config("the conflist template has no \"plugins\" list".into())
        })?;
    let mut found = false;
    for plugin in plugins.iter_mut() {
        if plugin.get("type").and_then(Value::as_str) != Some("kxdp-cni") {
            continue;
        }
        found = true;
        let Some(entry) = plugin.as_object_mut() else {
            continue;
        };
        if !entry.contains_key("api_socket") && !entry.contains_key("node") {
            match &node.api_socket {
                Some(socket) => entry.insert("api_socket".into(), json!(socket)),
                None => entry.insert("node".into(), json!(node.name)),
            };
        }
        if !entry.contains_key("mtu") {
            let mtu = node
                .underlay_mtu
                .unwrap_or(1500)
                .saturating_sub(VXLAN_OVERHEAD);
            entry.insert("mtu".into(), json!(mtu));
        }
        let tenant = entry
            .get("tenant")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_TENANT)
            .to_string();
        let Some(ipam) = entry.get_mut("ipam").and_then(Value::as_object_mut) else {
            return Err(InstallError::Config(
                "the kxdp-cni entry of the conflist template has no ipam object".into(),
            ));
        };
        if !ipam.contains_key("ranges") && !ipam.contains_key("subnet") {
            let sets = ranges_of(node, &tenant);
            if sets.is_empty() {
                return Err(InstallError::Config(format!(
                    "node {} has no pod CIDR for tenant {tenant}",
                    node.name
                )));
            }
            ipam.insert("ranges".into(), Value::Array(sets));
        }
        // Every tenant's ranges, for pods whose namespace puts them in
        // another tenant than the network's (`kxdp.io/tenant`).
        if !entry.contains_key("tenant_ranges") {
            let mut tenants: Vec<&str> =
                node.pod_cidrs.iter().map(|(t, _, _)| t.as_str()).collect();
            tenants.sort_unstable();
            tenants.dedup();
            if tenants.len() > 1 {
                let map: serde_json::Map<String, Value> = tenants
                    .into_iter()
                    .map(|t| (t.to_string(), Value::Array(ranges_of(node, t))))
                    .collect();
                entry.insert("tenant_ranges".into(), Value::Object(map));
            }
        }
    }
    if !found {
        return Err(InstallError::Config(
            "the conflist template has no plugin of type kxdp-cni".into(),
        ));
    }
    Ok(template)
}

/// host-local range sets (one per family) of `tenant`'s pod CIDRs on `node`.
fn ranges_of(node: &NodeFacts, tenant: &str) -> Vec<Value> {
    let mut sets = Vec::new();
    for v6 in [false, true] {
        let set: Vec<Value> = node
            .pod_cidrs
            .iter()
            .filter(|(t, cidr, _)| t == tenant && cidr.is_ipv6() == v6)
            .map(|(_, cidr, gateway)| {
                let mut range = json!({"subnet": cidr.to_string()});
                if let Some(gw) = gateway {
                    range["gateway"] = json!(gw);
                }
                range
            })
            .collect();
        if !set.is_empty() {
            sets.push(Value::Array(set));
        }
    }
    sets
}

/// Run `install`.
pub fn install(args: &InstallArgs) -> Result<(), InstallError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| InstallError::Io {
            what: "cannot read",
            path: path.to_path_buf(),
            source,
        })
    };
    let node = NodeFacts::from_yaml(&read(&args.node_config)?)?;
    let template: Value = serde_json::from_str(&read(&args.conflist)?)
        .map_err(|e| InstallError::Config(format!("the conflist template: {e}")))?;
    let conflist = render_conflist(template, &node)?;
    let own = std::env::current_exe().map_err(|source| InstallError::Io {
        what: "cannot find",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    copy_atomically(&own, &args.bin_dir.join("kxdp-cni"))?;
    for plugin in &args.plugins {
        let name = plugin.file_name().ok_or_else(|| {
            InstallError::Usage(format!("--plugin {} names no file", plugin.display()))
        })?;
        copy_atomically(plugin, &args.bin_dir.join(name))?;
    }
    let name = args
        .conflist
        .file_name()
        .map_or_else(|| PathBuf::from("10-kxdp.conflist"), PathBuf::from);
    let text = serde_json::to_string_pretty(&conflist)
        .map_err(|e| InstallError::Config(format!("cannot encode the conflist: {e}")))?;
    write_atomically(&args.conf_dir.join(name), text.as_bytes(), 0o644)
}

fn copy_atomically(from: &Path, to: &Path) -> Result<(), InstallError> {
    let bytes = std::fs::read(from).map_err(|source| InstallError::Io {
        what: "cannot read",
        path: from.to_path_buf(),
        source,
    })?;
    write_atomically(to, &bytes, 0o755)
}

fn write_atomically(to: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let file_name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = to.with_file_name(format!(".{file_name}.kxdp-{}", std::process::id()));
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { what, path, source }
    };
    std::fs::write(&temporary, bytes).map_err(io("cannot write", &temporary))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
        .map_err(io("cannot set the mode of", &temporary))?;
    std::fs::rename(&temporary, to).map_err(io("cannot rename into place", to))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NODE_YAML: &str = r#"
node:
  name: worker-1
  vtep: {ip: 192.168.100.1, interface: ul0, underlay_mtu: 9000}
  pod_cidrs:
    - {tenant: default, cidr: 10.244.1.0/24, gateway: 10.244.1.1}
    - {tenant: default, cidr: "fd00:10:244:1::/64"}
    - {tenant: blue, cidr: 10.245.1.0/24}
interfaces: []
tenants: []
"#;

    fn template() -> Value {
        serde_json::from_str(include_str!("../../../config/deploy/10-kxdp.conflist")).unwrap()
    }

    #[test]
    fn reads_the_node_configuration() {
        let node = NodeFacts::from_yaml(NODE_YAML).unwrap();
        assert_eq!(node.name, "worker-1");
        assert_eq!(node.pod_cidrs.len(), 3);
        assert_eq!(node.pod_cidrs[0].2.as_deref(), Some("10.244.1.1"));
        assert_eq!(node.api_socket, None);
        assert_eq!(node.underlay_mtu, Some(9000));
        let with_socket =
            NodeFacts::from_yaml("node: {name: n}\ncontrol: {socket: /run/x/n.sock}").unwrap();
        assert_eq!(with_socket.api_socket.as_deref(), Some("/run/x/n.api.sock"));
        assert!(NodeFacts::from_yaml("node: {}").is_err());
        assert!(NodeFacts::from_yaml("node: {name: n, pod_cidrs: [{cidr: nope}]}").is_err());
        assert!(NodeFacts::from_yaml(": :").is_err());
    }

    #[test]
    fn fills_the_template_for_the_node() {
        let node = NodeFacts::from_yaml(NODE_YAML).unwrap();
        let conflist = render_conflist(template(), &node).unwrap();
        let entry = &conflist["plugins"][0];
        assert_eq!(entry["type"], "kxdp-cni");
        assert_eq!(entry["node"], "worker-1");
        assert_eq!(entry["mtu"], 8950);
        assert_eq!(
            entry["ipam"]["ranges"],
            json!([
                [{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}],
                [{"subnet": "fd00:10:244:1::/64"}]
            ])
        );
        assert_eq!(entry["ipam"]["type"], "host-local");
        // Both tenants' ranges, for pods of a namespace in tenant blue.
        assert_eq!(
            entry["tenant_ranges"]["blue"],
            json!([[{"subnet": "10.245.1.0/24"}]])
        );
        assert_eq!(entry["tenant_ranges"]["default"], entry["ipam"]["ranges"]);
    }

    #[test]
    fn keeps_what_the_template_sets_and_refuses_what_it_lacks() {
        let node = NodeFacts::from_yaml(NODE_YAML).unwrap();
        let mut t = template();
        t["plugins"][0]["tenant"] = json!("blue");
        t["plugins"][0]["mtu"] = json!(1400);
        t["plugins"][0]["api_socket"] = json!("/run/kxdp/x.api.sock");
        let entry = render_conflist(t, &node).unwrap()["plugins"][0].clone();
        assert_eq!(entry["mtu"], 1400);
        assert!(entry.get("node").is_none());
        assert_eq!(
            entry["ipam"]["ranges"],
            json!([[{"subnet": "10.245.1.0/24"}]])
        );
        let mut t = template();
        t["plugins"][0]["tenant"] = json!("red");
        assert!(render_conflist(t, &node).is_err());
        assert!(render_conflist(json!({"plugins": [{"type": "bridge"}]}), &node).is_err());
        assert!(render_conflist(json!({}), &node).is_err());
    }

    #[test]
    fn parses_the_command_line() {
        let args: Vec<String> = [
            "--node-config",
            "/etc/kxdp/node.yaml",
            "--conflist",
            "/etc/kxdp-cni/10-kxdp.conflist",
            "--bin-dir",
            "/host/opt/cni/bin",
            "--conf-dir",
            "/host/etc/cni/net.d",
            "--plugin",
            "/usr/lib/cni/host-local",
        ]
        .map(String::from)
        .to_vec();
        let parsed = InstallArgs::parse(&args).unwrap();
        assert_eq!(parsed.bin_dir, PathBuf::from("/host/opt/cni/bin"));
        assert_eq!(parsed.plugins, [PathBuf::from("/usr/lib/cni/host-local")]);
        assert!(InstallArgs::parse(&args[..4]).is_err());
        assert!(InstallArgs::parse(&["--bin-dir".to_string()]).is_err());
        assert!(InstallArgs::parse(&["--force".to_string()]).is_err());
    }

    #[test]
    fn writes_files_whole() {
        let dir = std::env::temp_dir().join(format!("kxdp-cni-install-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("10-kxdp.conflist");
        write_atomically(&target, b"one", 0o644).unwrap();
        write_atomically(&target, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
