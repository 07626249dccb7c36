//! The CNI result: interfaces, addresses, routes and DNS, written in the
//! shape of the configuration's version (0.4.0 results number each
//! address's family, 1.x ones do not; 1.1.0 interfaces carry their MTU),
//! and read back from an IPAM plugin's output or a `prevResult`.

use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::is_pre_1_0;
use crate::error::{CniError, ErrorCode};

/// An interface of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC.
    pub mac: String,
    /// Its MTU (written for 1.1.0 results).
    pub mtu: Option<u16>,
    /// The network namespace it is in, for the container's side.
    pub sandbox: Option<String>,
}

/// An address of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNetwork,
    /// The gateway.
    pub gateway: Option<IpAddr>,
    /// Index of its interface in [`CniResult::interfaces`].
    pub interface: Option<usize>,
}

/// A route of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop; the address's gateway when absent.
    pub gw: Option<IpAddr>,
}

/// A CNI result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CniResult {
    /// Interfaces.
    pub interfaces: Vec<Interface>,
    /// Addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS, passed through from IPAM.
    pub dns: Option<Value>,
}

impl CniResult {
    /// The result as `version` writes it.
    pub fn to_json(&self, version: &str) -> Value {
        let old = is_pre_1_0(version);
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), json!(i.name));
                o.insert("mac".into(), json!(i.mac));
                if let (Some(mtu), "1.1.0") = (i.mtu, version) {
                    o.insert("mtu".into(), json!(mtu));
                }
                if let Some(sandbox) = &i.sandbox {
                    o.insert("sandbox".into(), json!(sandbox));
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if old {
                    let family = if ip.address.is_ipv4() { "4" } else { "6" };
                    o.insert("version".into(), json!(family));
                }
                o.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    o.insert("gateway".into(), json!(gw.to_string()));
                }
                if let Some(index) = ip.interface {
                    o.insert("interface".into(), json!(index));
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("dst".into(), json!(r.dst.to_string()));
                if let Some(gw) = r.gw {
                    o.insert("gw".into(), json!(gw.to_string()));
                }
                Value::Object(o)
            })
            .collect();
        let mut result = Map::new();
        result.insert("cniVersion".into(), json!(version));
        result.insert("interfaces".into(), Value::Array(interfaces));
        result.insert("ips".into(), Value::Array(ips));
        result.insert("routes".into(), Value::Array(routes));
        result.insert("dns".into(), self.dns.clone().unwrap_or_else(|| json!({})));
        Value::Object(result)
    }

    /// Read a result of any supported version (an IPAM plugin's output or
    /// a `prevResult`); `what` names it in errors (decode errors, 6).
    pub fn parse(value: &Value, what: &str) -> Result<CniResult, CniError> {
        if !value.is_object() {
            return Err(CniError::new(
                ErrorCode::Decode,
                format!("cannot decode {what}"),
                "not a JSON object",
            ));
        }
        let raw: RawResult = serde_json::from_value(value.clone()).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                format!("cannot decode {what}"),
                e.to_string(),
            )
        })?;
        let bad = |field: String, e: String| {
            CniError::new(
                ErrorCode::Decode,
                format!("cannot decode {what}"),
                format!("{field}: {e}"),
            )
        };
        let mut result = CniResult {
            dns: raw.dns.filter(|d| !d.is_null()),
            ..CniResult::default()
        };
        for (i, iface) in raw.interfaces.into_iter().enumerate() {
            result.interfaces.push(Interface {
                name: iface
                    .name
                    .ok_or_else(|| bad(format!("interfaces[{i}].name"), "missing".into()))?,
                mac: iface.mac.unwrap_or_default(),
                mtu: iface.mtu,
                sandbox: iface.sandbox.filter(|s| !s.is_empty()),
            });
        }
        for (i, ip) in raw.ips.into_iter().enumerate() {
            let address = IpNetwork::from_str(&ip.address)
                .map_err(|e| bad(format!("ips[{i}].address"), e.to_string()))?;
            let gateway = ip
                .gateway
                .filter(|g| !g.is_empty())
                .map(|g| IpAddr::from_str(&g))
                .transpose()
                .map_err(|e| bad(format!("ips[{i}].gateway"), e.to_string()))?;
            result.ips.push(IpConfig {
                address,
                gateway,
                interface: ip.interface,
            });
        }
        for (i, route) in raw.routes.into_iter().enumerate() {
            let dst = IpNetwork::from_str(&route.dst)
                .map_err(|e| bad(format!("routes[{i}].dst"), e.to_string()))?;
            let gw = route
                .gw
                .filter(|g| !g.is_empty())
                .map(|g| IpAddr::from_str(&g))
                .transpose()
                .map_err(|e| bad(format!("routes[{i}].gw"), e.to_string()))?;
            result.routes.push(Route { dst, gw });
        }
        Ok(result)
    }

    /// The first address of each family: (IPv4, IPv6).
    pub fn first_of_each_family(&self) -> (Option<&IpConfig>, Option<&IpConfig>) {
        (
            self.ips.iter().find(|ip| ip.address.is_ipv4()),
            self.ips.iter().find(|ip| ip.address.is_ipv6()),
        )
    }
}

#[derive(Deserialize)]
struct RawResult {
    #[serde(default)]
    interfaces: Vec<RawInterface>,
    #[serde(default)]
    ips: Vec<RawIp>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    dns: Option<Value>,
}

#[derive(Deserialize)]
struct RawInterface {
    name: Option<String>,
    mac: Option<String>,
    mtu: Option<u16>,
    sandbox: Option<String>,
}

#[derive(Deserialize)]
struct RawIp {
    address: String,
    gateway: Option<String>,
    interface: Option<usize>,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
    gw: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What host-local 1.1.1 prints for a 1.0.0 configuration.
    const HOST_LOCAL_1_0: &str = r#"{
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1"},
                {"address": "fd00:10:244:1::2/64", "gateway": "fd00:10:244:1::1"}],
        "dns": {}
    }"#;

    /// And for a 0.4.0 one.
    const HOST_LOCAL_0_4: &str = r#"{
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.244.1.3/24", "gateway": "10.244.1.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.96.0.10"]}
    }"#;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "kx0123456789a".into(),
                    mac: "0e:01:02:03:04:05".into(),
                    mtu: Some(1450),
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: "0a:58:0a:f4:01:02".into(),
                    mtu: Some(1450),
                    sandbox: Some("/run/netns/cni-1".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.244.1.2/32".parse().unwrap(),
                gateway: Some("10.244.1.1".parse().unwrap()),
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.244.1.1".parse().unwrap()),
            }],
            dns: None,
        }
    }

    #[test]
    fn reads_host_local_output_of_both_generations() {
        let r = CniResult::parse(&serde_json::from_str(HOST_LOCAL_1_0).unwrap(), "ipam").unwrap();
        let (v4, v6) = r.first_of_each_family();
        assert_eq!(v4.unwrap().address.to_string(), "10.244.1.2/24");
        assert_eq!(v4.unwrap().gateway, Some("10.244.1.1".parse().unwrap()));
        assert_eq!(v6.unwrap().address.to_string(), "fd00:10:244:1::2/64");
        assert_eq!(r.dns, Some(json!({})));

        let r = CniResult::parse(&serde_json::from_str(HOST_LOCAL_0_4).unwrap(), "ipam").unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.routes[0].gw, None);
        assert_eq!(r.first_of_each_family().1, None);
    }

    #[test]
    fn writes_1_0_results() {
        let json = sample().to_json("1.0.0");
        assert_eq!(
            json,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "kx0123456789a", "mac": "0e:01:02:03:04:05"},
                    {"name": "eth0", "mac": "0a:58:0a:f4:01:02", "sandbox": "/run/netns/cni-1"}
                ],
                "ips": [{"address": "10.244.1.2/32", "gateway": "10.244.1.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn writes_0_4_and_1_1_results() {
        let json = sample().to_json("0.4.0");
        assert_eq!(json["ips"][0]["version"], "4");
        assert!(json["interfaces"][0].get("mtu").is_none());
        let json = sample().to_json("1.1.0");
        assert!(json["ips"][0].get("version").is_none());
        assert_eq!(json["interfaces"][1]["mtu"], 1450);
    }

    #[test]
    fn a_written_result_reads_back_the_same() {
        for version in ["0.4.0", "1.0.0", "1.1.0"] {
            let back = CniResult::parse(&sample().to_json(version), "prevResult").unwrap();
            let mut expected = sample();
            if version != "1.1.0" {
                for i in &mut expected.interfaces {
                    i.mtu = None;
                }
            }
            expected.dns = Some(json!({}));
            assert_eq!(back, expected, "{version}");
        }
    }

    #[test]
    fn bad_results_are_decode_errors() {
        for bad in [
            json!([]),
            json!({"ips": [{"address": "10.0.0.300/24"}]}),
            json!({"ips": [{"address": "10.0.0.3/24", "gateway": "x"}]}),
            json!({"ips": [{"gateway": "10.0.0.1"}]}),
            json!({"routes": [{"dst": "default"}]}),
            json!({"interfaces": [{"mac": "0a:00:00:00:00:01"}]}),
        ] {
            let e = CniResult::parse(&bad, "ipam").unwrap_err();
            assert_eq!(e.code, 6, "{bad}: {e}");
        }
    }
}
