//! Compiled address prefixes: a CIDR as a masked `u128`, matched with one
//! AND and one compare.

use ipnetwork::IpNetwork;

/// A compiled CIDR (IPv4 in the low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    addr: u128,
    mask: u128,
    ipv6: bool,
}

impl Prefix {
    /// Compile a network (host bits are ignored, as Kubernetes does).
    pub fn new(network: &IpNetwork) -> Prefix {
        match network {
            IpNetwork::V4(v4) => {
                let len = u32::from(v4.prefix().min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Prefix {
                    addr: u128::from(v4.ip().to_bits() & mask),
                    mask: u128::from(mask),
                    ipv6: false,
                }
            }
            IpNetwork::V6(v6) => {
                let len = u32::from(v6.prefix().min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Prefix {
                    addr: v6.ip().to_bits() & mask,
                    mask,
                    ipv6: true,
                }
            }
        }
    }

    /// Whether the address (of the given family) is inside.
    #[inline(always)]
    pub fn contains(&self, addr: u128, ipv6: bool) -> bool {
        self.ipv6 == ipv6 && addr & self.mask == self.addr
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::flow::ip_bits;

    fn contains(cidr: &str, ip: &str) -> bool {
        let (bits, v6) = ip_bits(ip.parse().unwrap());
        Prefix::new(&cidr.parse().unwrap()).contains(bits, v6)
    }

    #[test]
    fn prefixes_match_by_family_and_mask() {
        assert!(contains("10.0.0.0/8", "10.200.1.1"));
        assert!(!contains("10.0.0.0/8", "11.0.0.1"));
        assert!(contains("0.0.0.0/0", "192.0.2.1"));
        assert!(!contains("0.0.0.0/0", "::1"));
        assert!(contains("10.1.2.3/32", "10.1.2.3"));
        assert!(!contains("10.1.2.3/32", "10.1.2.4"));
        assert!(contains("10.1.2.3/24", "10.1.2.200"), "host bits ignored");
        assert!(contains("fd00::/8", "fd12::1"));
        assert!(!contains("fd00::/8", "fe80::1"));
        assert!(contains("::/0", "2001:db8::1"));
    }
}
