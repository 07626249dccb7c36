//! Names and MACs derived from what every CNI call carries (the container
//! id, the interface name, the address), so DEL and CHECK find what ADD
//! made without any state of the plugin's own.

use std::net::IpAddr;

use crate::env::MAX_IFNAME;
use crate::error::{CniError, ErrorCode};

/// Host-side veth names start with this.
pub const HOST_PREFIX: &str = "kx";

/// Hex digits after [`HOST_PREFIX`].
const HOST_HEX: usize = 11;

/// The pod's name in kxdp: `<namespace>/<name>` from the Kubernetes CNI
/// args, the runtime's name alone in namespace `default` (Podman passes
/// `K8S_POD_NAME` only), else the container id.
pub fn pod_name(
    namespace: Option<&str>,
    name: Option<&str>,
    container_id: &str,
) -> (String, String) {
    match (namespace, name) {
        (Some(ns), Some(name)) => (format!("{ns}/{name}"), ns.to_string()),
        (None, Some(name)) => (format!("default/{name}"), "default".to_string()),
        (_, None) => (
            container_id.to_string(),
            namespace.unwrap_or("default").to_string(),
        ),
    }
}

/// The host end of a container's veth: `kx` and the first 11 hex digits of
/// the container id (runtimes' ids are hex), or of a hash of the id when it
/// is not hex or the interface is not `eth0` (a second interface of the
/// same container).
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let head = container_id.get(..HOST_HEX).unwrap_or("");
    let hex = if ifname == "eth0"
        && head.len() == HOST_HEX
        && head
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        head.to_string()
    } else {
        let digest = fnv1a(&[container_id.as_bytes(), b"/", ifname.as_bytes()]);
        format!("{digest:016x}")[..HOST_HEX].to_string()
    };
    let name = format!("{HOST_PREFIX}{hex}");
    debug_assert!(name.len() <= MAX_IFNAME);
    name
}

/// The host end's MAC: locally administered (`0e:`) and five bytes of a
/// hash of the container id and interface.
pub fn host_mac(container_id: &str, ifname: &str) -> String {
    let digest = fnv1a(&[b"host/", container_id.as_bytes(), b"/", ifname.as_bytes()]).to_be_bytes();
    format_mac([0x0e, digest[0], digest[1], digest[2], digest[3], digest[4]])
}

/// The pod end's MAC: `0a:58:` and the IPv4 address's four bytes (as
/// OVN-Kubernetes does), or the IPv6 address's last four.
pub fn pod_mac(address: IpAddr) -> String {
    let tail = match address {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    format_mac([0x0a, 0x58, tail[0], tail[1], tail[2], tail[3]])
}

/// Parse and normalise a MAC (`aa:bb:cc:dd:ee:ff`, lower case); a
/// multicast MAC is refused. `field` names it in the error (7).
pub fn parse_mac(text: &str, field: &str) -> Result<String, CniError> {
    let bad = |why: &str| {
        CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("{field} is not a usable MAC"),
            format!("{text:?}: {why}"),
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(bad("expected six hex bytes separated by ':'"));
    }
    let mut bytes = [0u8; 6];
    for (byte, part) in bytes.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad("expected six hex bytes separated by ':'"));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad("not hex"))?;
    }
    if bytes[0] & 1 == 1 {
        return Err(bad("multicast"));
    }
    Ok(format_mac(bytes))
}

fn format_mac(b: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// FNV-1a, 64 bits, over the concatenation of `parts`.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pod_names() {
        assert_eq!(
            pod_name(Some("web"), Some("front-1"), "c1"),
            ("web/front-1".to_string(), "web".to_string())
        );
        assert_eq!(
            pod_name(None, Some("box"), "c1"),
            ("default/box".to_string(), "default".to_string())
        );
        assert_eq!(
            pod_name(None, None, "0123abc"),
            ("0123abc".to_string(), "default".to_string())
        );
        assert_eq!(pod_name(Some("web"), None, "c1").1, "web");
    }

    #[test]
    fn host_names_take_the_ids_hex_digits() {
        let id = "5f3c0a9e12b7d4c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
        assert_eq!(host_ifname(id, "eth0"), "kx5f3c0a9e12b");
        // Not hex, too short, or a second interface: a hash, still 13 bytes.
        for (id, ifname) in [("my-container", "eth0"), ("abc", "eth0"), (id, "net1")] {
            let name = host_ifname(id, ifname);
            assert_eq!(name.len(), 13, "{name}");
            assert!(name.starts_with("kx"));
            assert!(name[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
            assert_eq!(host_ifname(id, ifname), name, "stable");
        }
        assert_ne!(host_ifname(id, "net1"), host_ifname(id, "net2"));
        assert!(host_ifname("ABCDEF0123456", "eth0") != "kxABCDEF01234");
    }

    #[test]
    fn macs_are_unicast_and_locally_administered() {
        let host = host_mac("c1", "eth0");
        assert!(host.starts_with("0e:"));
        assert_ne!(host, host_mac("c2", "eth0"));
        assert_eq!(parse_mac(&host, "mac").unwrap(), host);
        assert_eq!(pod_mac("10.244.1.5".parse().unwrap()), "0a:58:0a:f4:01:05");
        assert_eq!(pod_mac("fd00::a:b0c".parse().unwrap()), "0a:58:00:0a:0b:0c");
    }

    #[test]
    fn parses_macs() {
        assert_eq!(
            parse_mac("0A:58:0A:F4:01:05", "mac").unwrap(),
            "0a:58:0a:f4:01:05"
        );
        for bad in [
            "",
            "0a:58:0a:f4:01",
            "0a:58:0a:f4:01:05:06",
            "0a-58-0a-f4-01-05",
            "zz:58:0a:f4:01:05",
            "01:00:5e:00:00:01",
            "a:58:0a:f4:01:055",
        ] {
            assert_eq!(parse_mac(bad, "mac").unwrap_err().code, 7, "{bad}");
        }
    }
}
