//! The network configuration on stdin: the plugin's entry of a conflist,
//! with the runtime's additions (`prevResult`, `runtimeConfig`), as the CNI
//! specification lays it out, plus kxdp's own fields.
//!
//! ```json
//! {
//!   "cniVersion": "1.0.0",
//!   "name": "kxdp",
//!   "type": "kxdp-cni",
//!   "mtu": 1450,
//!   "tenant": "default",
//!   "api_socket": "/run/kxdp/node1.api.sock",
//!   "node_netns": "/run/netns/node1",
//!   "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.244.1.0/24" }]] }
//! }
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::env::CniArgs;
use crate::error::{CniError, ErrorCode};

/// The CNI versions whose configurations this plugin accepts.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The newest version this plugin speaks.
pub const CURRENT_VERSION: &str = "1.1.0";

/// The pod MTU when the configuration has none: a 1500-byte underlay less
/// the VXLAN encapsulation (50 bytes).
pub const DEFAULT_MTU: u16 = 1450;

/// The tenant when neither the CNI args nor the configuration name one.
pub const DEFAULT_TENANT: &str = "default";

/// The directory of kxdp's sockets; the API socket is `<node>.api.sock` there.
pub const SOCKET_DIR: &str = "/run/kxdp";

/// The CNI args key that picks the pod's tenant.
pub const TENANT_ARG: &str = "KXDP_TENANT";

/// The namespace label that puts a namespace's pods in a tenant.
pub const NAMESPACE_TENANT_LABEL: &str = "kxdp.io/tenant";

/// Smallest MTU accepted (IPv4's minimum datagram; IPv6 needs 1280).
const MIN_MTU: u16 = 576;

/// The plugin's network configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct NetConf {
    /// The CNI version the runtime speaks for this network.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// The network name.
    #[serde(default)]
    pub name: String,
    /// The plugin type (`kxdp-cni`).
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// The pods' MTU; [`DEFAULT_MTU`] when absent.
    #[serde(default)]
    pub mtu: Option<u16>,
    /// The tenant of pods whose CNI args name none; [`DEFAULT_TENANT`] when
    /// absent.
    #[serde(default)]
    pub tenant: Option<String>,
    /// kxdp's API socket; `/run/kxdp/<node>.api.sock` when absent.
    #[serde(default)]
    pub api_socket: Option<PathBuf>,
    /// The node name in the default socket path; the host name when absent.
    #[serde(default)]
    pub node: Option<String>,
    /// The network namespace the node's kxdp runs in, where the host end
    /// of each pod's veth goes: for a node that is itself a network
    /// namespace (kxdp's testbed, several nodes on one machine). Absent on
    /// a real node: the plugin's own namespace, which is the node's.
    #[serde(default)]
    pub node_netns: Option<PathBuf>,
    /// IPAM `ranges` by tenant (`kxdp-cni install` writes every tenant's
    /// pod CIDRs here): a pod whose tenant is not the network's gets its
    /// tenant's ranges in place of `ipam.ranges`.
    #[serde(default)]
    pub tenant_ranges: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The IPAM section, handed to the IPAM plugin it names.
    #[serde(default)]
    pub ipam: Option<serde_json::Value>,
    /// The previous plugin's result (CHECK and DEL get ADD's).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<serde_json::Value>,
    /// Capability arguments from the runtime.
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
}

/// The `runtimeConfig` capabilities this plugin uses.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct RuntimeConfig {
    /// `mac`: the MAC for the container's interface.
    #[serde(default)]
    pub mac: Option<String>,
}

impl NetConf {
    /// Parse stdin. Malformed JSON is a decode error (6); an unsupported
    /// version an incompatible-version error (1); a bad field an
    /// invalid-configuration error (7) that names it.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let decode_error = |e: String| {
            CniError::new(
                ErrorCode::Decode,
                "cannot decode the network configuration on stdin",
                e,
            )
        };
        let value: serde_json::Value =
            serde_json::from_slice(stdin).map_err(|e| decode_error(e.to_string()))?;
        if !value.is_object() {
            return Err(decode_error("not a JSON object".into()));
        }
        let conf: NetConf =
            serde_json::from_value(value).map_err(|e| decode_error(e.to_string()))?;
        check_version(&conf.cni_version)?;
        if let Some(mtu) = conf.mtu {
            if mtu < MIN_MTU {
                return Err(CniError::new(
                    ErrorCode::InvalidNetworkConfig,
                    "mtu is too small",
                    format!("{mtu} < {MIN_MTU}"),
                ));
            }
        }
        if conf.tenant.as_deref() == Some("") {
            return Err(CniError::msg(
                ErrorCode::InvalidNetworkConfig,
                "tenant is empty",
            ));
        }
        if let Some(ipam) = &conf.ipam {
            if !ipam.is_object() {
                return Err(CniError::msg(
                    ErrorCode::InvalidNetworkConfig,
                    "ipam is not an object",
                ));
            }
        }
        Ok(conf)
    }

    /// The pods' MTU.
    pub fn mtu(&self) -> u16 {
        self.mtu.unwrap_or(DEFAULT_MTU)
    }

    /// The tenant of a pod: `KXDP_TENANT` of the CNI args, else
    /// `namespace`'s (the `kxdp.io/tenant` label of the pod's namespace,
    /// which the Kubernetes agent put in kxdp), else the configuration's,
    /// else [`DEFAULT_TENANT`].
    pub fn tenant<'a>(&'a self, args: &'a CniArgs, namespace: Option<&'a str>) -> &'a str {
        args.get(TENANT_ARG)
            .or(namespace)
            .or(self.tenant.as_deref())
            .unwrap_or(DEFAULT_TENANT)
    }

    /// This plugin's stdin with `ipam.ranges` replaced by `tenant`'s from
    /// [`NetConf::tenant_ranges`], when the tenant is not the network's
    /// and has ranges there; otherwise `stdin` as it is.
    pub fn ipam_stdin_for(&self, stdin: &[u8], tenant: &str) -> Result<Vec<u8>, CniError> {
        let ranges = self
            .tenant_ranges
            .as_ref()
            .and_then(|by_tenant| by_tenant.get(tenant))
            .filter(|_| Some(tenant) != self.tenant.as_deref());
        let Some(ranges) = ranges else {
            return Ok(stdin.to_vec());
        };
        let mut value: serde_json::Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                "cannot decode the network configuration on stdin",
                e.to_string(),
            )
        })?;
        match value
            .get_mut("ipam")
            .and_then(serde_json::Value::as_object_mut)
        {
            Some(ipam) => {
                ipam.remove("subnet");
                ipam.insert("ranges".into(), ranges.clone());
            }
            None => {
                return Err(CniError::msg(
                    ErrorCode::InvalidNetworkConfig,
                    "tenant_ranges needs an ipam object",
                ))
            }
        }
        serde_json::to_vec(&value).map_err(|e| {
            CniError::new(
                ErrorCode::Io,
                "cannot write the IPAM configuration",
                e.to_string(),
            )
        })
    }

    /// kxdp's API socket: `api_socket`, else `/run/kxdp/<node>.api.sock`
    /// with `node`, else with `hostname` (read by the caller).
    pub fn api_socket(&self, hostname: impl FnOnce() -> Option<String>) -> Option<PathBuf> {
        if let Some(path) = &self.api_socket {
            return Some(path.clone());
        }
        let node = self.node.clone().or_else(hostname)?;
        Some(PathBuf::from(SOCKET_DIR).join(format!("{node}.api.sock")))
    }

    /// The IPAM plugin's name (`ipam.type`).
    pub fn ipam_type(&self) -> Result<&str, CniError> {
        self.ipam
            .as_ref()
            .and_then(|ipam| ipam.get("type"))
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::InvalidNetworkConfig,
                    "ipam.type is missing",
                    "kxdp-cni delegates addresses to an IPAM plugin, e.g. \
                     {\"type\": \"host-local\", \"ranges\": [[{\"subnet\": \"10.244.1.0/24\"}]]}",
                )
            })
    }
}

/// Refuse a configuration version this plugin does not speak (error 1).
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "CNI version {:?} is not supported",
                if version.is_empty() { "0.1.0" } else { version }
            ),
            format!("supported: {}", SUPPORTED_VERSIONS.join(", ")),
        ))
    }
}

/// Whether results and errors of `version` still carry the 0.x fields
/// (`ips[].version`).
pub fn is_pre_1_0(version: &str) -> bool {
    version.starts_with("0.")
}

/// The answer to VERSION: the versions this plugin accepts, under the
/// `cniVersion` the runtime asked in (when it is one of them).
pub fn version_info(requested: Option<&str>) -> serde_json::Value {
    let version = requested
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .unwrap_or(CURRENT_VERSION);
    serde_json::json!({
        "cniVersion": version,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CONFLIST_ENTRY: &str = r#"{
        "cniVersion": "1.0.0",
        "name": "kxdp",
        "type": "kxdp-cni",
        "mtu": 1400,
        "tenant": "blue",
        "api_socket": "/tmp/n1.api.sock",
        "dns": {"nameservers": ["10.96.0.10"]},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]},
        "runtimeConfig": {"mac": "0a:58:0a:f4:01:05", "portMappings": []}
    }"#;

    #[test]
    fn parses_a_conflist_entry_with_unknown_fields() {
        let conf = NetConf::parse(CONFLIST_ENTRY.as_bytes()).unwrap();
        assert_eq!(conf.cni_version, "1.0.0");
        assert_eq!(conf.name, "kxdp");
        assert_eq!(conf.plugin_type, "kxdp-cni");
        assert_eq!(conf.mtu(), 1400);
        assert_eq!(conf.tenant(&CniArgs::default(), None), "blue");
        assert_eq!(
            conf.api_socket(|| None),
            Some(PathBuf::from("/tmp/n1.api.sock"))
        );
        assert_eq!(conf.ipam_type().unwrap(), "host-local");
        assert_eq!(
            conf.runtime_config.mac.as_deref(),
            Some("0a:58:0a:f4:01:05")
        );
        assert_eq!(conf.prev_result, None);
    }

    #[test]
    fn defaults() {
        let conf =
            NetConf::parse(br#"{"cniVersion":"0.4.0","name":"k","type":"kxdp-cni"}"#).unwrap();
        assert_eq!(conf.mtu(), DEFAULT_MTU);
        assert_eq!(conf.tenant(&CniArgs::default(), None), DEFAULT_TENANT);
        assert_eq!(
            conf.api_socket(|| Some("worker-3".into())),
            Some(PathBuf::from("/run/kxdp/worker-3.api.sock"))
        );
        assert_eq!(conf.api_socket(|| None), None);
        assert_eq!(conf.ipam_type().unwrap_err().code, 7);
        let with_node =
            NetConf::parse(br#"{"cniVersion":"1.1.0","name":"k","type":"kxdp-cni","node":"n2"}"#)
                .unwrap();
        assert_eq!(
            with_node.api_socket(|| Some("ignored".into())),
            Some(PathBuf::from("/run/kxdp/n2.api.sock"))
        );
    }

    #[test]
    fn the_cni_args_tenant_wins() {
        let conf = NetConf::parse(CONFLIST_ENTRY.as_bytes()).unwrap();
        let args = CniArgs::parse("IgnoreUnknown=1;KXDP_TENANT=red").unwrap();
        assert_eq!(conf.tenant(&args, Some("green")), "red");
        // Without the arg, the namespace's tenant, then the network's.
        assert_eq!(conf.tenant(&CniArgs::default(), Some("green")), "green");
        assert_eq!(conf.tenant(&CniArgs::default(), None), "blue");
    }

    #[test]
    fn a_pod_of_another_tenant_gets_its_tenants_ranges() {
        let mut value: serde_json::Value = serde_json::from_str(CONFLIST_ENTRY).unwrap();
        value["tenant_ranges"] = serde_json::json!({
            "blue": [[{"subnet": "10.1.0.0/24"}]],
            "red": [[{"subnet": "10.2.0.0/24"}]],
        });
        let stdin = serde_json::to_vec(&value).unwrap();
        let conf = NetConf::parse(&stdin).unwrap();
        let red: serde_json::Value =
            serde_json::from_slice(&conf.ipam_stdin_for(&stdin, "red").unwrap()).unwrap();
        assert_eq!(
            red["ipam"]["ranges"],
            serde_json::json!([[{"subnet": "10.2.0.0/24"}]])
        );
        // The network's own tenant, or one without ranges: as it was.
        assert_eq!(conf.ipam_stdin_for(&stdin, "blue").unwrap(), stdin);
        assert_eq!(conf.ipam_stdin_for(&stdin, "green").unwrap(), stdin);
    }

    #[test]
    fn versions() {
        for v in ["0.4.0", "1.0.0", "1.1.0"] {
            let json = format!(r#"{{"cniVersion":"{v}","name":"k","type":"kxdp-cni"}}"#);
            assert!(NetConf::parse(json.as_bytes()).is_ok(), "{v}");
        }
        for v in ["0.3.1", "0.1.0", "2.0.0", ""] {
            let json = format!(r#"{{"cniVersion":"{v}","name":"k","type":"kxdp-cni"}}"#);
            let e = NetConf::parse(json.as_bytes()).unwrap_err();
            assert_eq!(e.code, 1, "{v}: {e}");
        }
        assert!(is_pre_1_0("0.4.0"));
        assert!(!is_pre_1_0("1.0.0"));
    }

    #[test]
    fn bad_input_is_an_error_with_a_code() {
        for (input, code) in [
            (&b"not json"[..], 6),
            (b"", 6),
            (b"[]", 6),
            (br#"{"cniVersion":"1.0.0","mtu":"big"}"#, 6),
            (br#"{"cniVersion":"1.0.0","mtu":70000}"#, 6),
            (br#"{"cniVersion":"1.0.0","mtu":100}"#, 7),
            (br#"{"cniVersion":"1.0.0","tenant":""}"#, 7),
            (br#"{"cniVersion":"1.0.0","ipam":"host-local"}"#, 7),
        ] {
            let e = NetConf::parse(input).unwrap_err();
            assert_eq!(e.code, code, "{}: {e}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn version_info_lists_the_supported_versions() {
        let info = version_info(Some("1.0.0"));
        assert_eq!(info["cniVersion"], "1.0.0");
        assert_eq!(
            info["supportedVersions"],
            serde_json::json!(["0.4.0", "1.0.0", "1.1.0"])
        );
        assert_eq!(version_info(Some("9.9.9"))["cniVersion"], CURRENT_VERSION);
        assert_eq!(version_info(None)["cniVersion"], CURRENT_VERSION);
    }
}
