//! The pod's veth, wired with iproute2 and ethtool as kxdp's testbed wires
//! its pods: the host end in the plugin's own network namespace (the
//! node's), the pod end created directly inside the container's namespace
//! (`ip link add … peer … netns <path>`), one queue pair per kxdp worker,
//! the pod's address as a /32 (/128) with the gateway on-link (kxdp answers
//! ARP and neighbour solicitations for it), and transmit checksum offload
//! off on both ends (AF_XDP copy mode hands CHECKSUM_PARTIAL frames to
//! kxdp unfinished).
//!
//! The pod end gets a queueing discipline (the kernel's default,
//! `net.core.default_qdisc`; a veth has none of its own): kxdp's XDP
//! program on the host end gives that end NAPI, and a veth hands its NAPI a
//! ring of 256 frames. Without a qdisc a burst the NAPI has not yet drained
//! is dropped (the pod's `tx_dropped`, a TCP retransmission); with one the
//! veth stops the pod's queue until the ring drains, and the pod's TCP
//! waits instead of losing segments.
//!
//! Commands run inside the container's namespace run on a thread that has
//! entered it (setns(2) moves only the calling thread; a child inherits
//! its namespaces), so no `ip netns` name is needed: `CNI_NETNS` may be any
//! path (`/run/netns/…`, `/proc/<pid>/ns/net`).

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sched::{setns, CloneFlags};
use serde_json::Value;

use crate::error::{CniError, ErrorCode};

/// The queueing discipline a pod end gets when the kernel's default
/// cannot be read or attached: built into every kernel.
pub const FALLBACK_QDISC: &str = "pfifo_fast";

/// The kernel's default qdisc, as `net.core.default_qdisc` names it.
const DEFAULT_QDISC_SYSCTL: &str = "/proc/sys/net/core/default_qdisc";

/// Where to look for `ip` and `ethtool` besides `PATH` (runtimes do not
/// always pass a `PATH` with the sbin directories).
const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The programs that wire links.
#[derive(Clone, Debug)]
pub struct Tools {
    ip: PathBuf,
    ethtool: PathBuf,
    tc: PathBuf,
}

impl Tools {
    /// Find `ip` and `tc` (iproute2) and `ethtool`.
    pub fn find() -> Result<Tools, CniError> {
        Ok(Tools {
            ip: find_program("ip", "iproute2")?,
            ethtool: find_program("ethtool", "ethtool")?,
            tc: find_program("tc", "iproute2")?,
        })
    }
}

fn find_program(name: &str, package: &str) -> Result<PathBuf, CniError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::Io,
                format!("`{name}` is not installed on this node"),
                format!("kxdp-cni wires pods with it (package {package})"),
            )
        })
}

/// The veth to create.
#[derive(Clone, Debug)]
pub struct Veth<'a> {
    /// The host end's name.
    pub host: &'a str,
    /// The host end's MAC.
    pub host_mac: &'a str,
    /// The pod end's name (`CNI_IFNAME`).
    pub pod: &'a str,
    /// The pod end's MAC.
    pub pod_mac: &'a str,
    /// The container's network namespace.
    pub netns: &'a Path,
    /// Both ends' MTU.
    pub mtu: u16,
    /// Both ends' queue count (kxdp binds queue w for worker w).
    pub queues: u32,
}

/// The pod end's addresses and gateways.
#[derive(Clone, Debug, Default)]
pub struct PodAddresses {
    /// IPv4 address (a /32 is configured).
    pub v4: Option<Ipv4Addr>,
    /// IPv4 gateway (on-link).
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 address (a /128 is configured).
    pub v6: Option<Ipv6Addr>,
    /// IPv6 gateway (on-link).
    pub gateway6: Option<Ipv6Addr>,
}

/// The `ip -batch` lines that create `veth` and bring its host end up.
pub fn veth_commands(veth: &Veth<'_>) -> String {
    let (mtu, queues) = (veth.mtu, veth.queues);
    format!(
        "link add {host} mtu {mtu} numtxqueues {queues} numrxqueues {queues} address {host_mac} \
         type veth peer name {pod} mtu {mtu} numtxqueues {queues} numrxqueues {queues} \
         address {pod_mac} netns {netns}\n\
         link set {host} up\n",
        host = veth.host,
        host_mac = veth.host_mac,
        pod = veth.pod,
        pod_mac = veth.pod_mac,
        netns = veth.netns.display(),
    )
}

/// The `ip -batch` lines that address the pod end `ifname` and route
/// through the gateways.
pub fn pod_commands(ifname: &str, addresses: &PodAddresses) -> String {
    let mut lines = String::new();
    if let Some(v4) = addresses.v4 {
        lines.push_str(&format!("addr add {v4}/32 dev {ifname}\n"));
    }
    if let Some(v6) = addresses.v6 {
        lines.push_str(&format!("addr add {v6}/128 dev {ifname} nodad\n"));
    }
    lines.push_str(&format!("link set {ifname} up\n"));
    if let Some(gw) = addresses.gateway4 {
        // Point-to-point, as the testbed does: the gateway on the link, the
        // default route through it.
        lines.push_str(&format!("route add {gw}/32 dev {ifname} scope link\n"));
        lines.push_str(&format!(
            "route add 0.0.0.0/0 via {gw} dev {ifname} onlink\n"
        ));
    }
    if let Some(gw) = addresses.gateway6 {
        lines.push_str(&format!("route add ::/0 via {gw} dev {ifname} onlink\n"));
    }
    lines
}

/// Create the veth, bring the host end up, and turn transmit checksum
/// offload off on it.
pub fn create_veth(tools: &Tools, veth: &Veth<'_>) -> Result<(), CniError> {
    ip_batch(tools, &veth_commands(veth))
        .map_err(|e| e.context(&format!("creating veth {}/{}", veth.host, veth.pod)))?;
    ethtool_tx_off(tools, veth.host)
}

/// Inside `netns`: address `ifname`, bring it up, route, turn transmit
/// checksum offload off, and give it the kernel's default qdisc.
pub fn configure_pod(
    tools: &Tools,
    netns: &Path,
    ifname: &str,
    addresses: &PodAddresses,
) -> Result<(), CniError> {
    let commands = pod_commands(ifname, addresses);
    let qdisc = default_pod_qdisc();
    in_netns(netns, || {
        ip_batch(tools, &commands).map_err(|e| e.context(&format!("configuring {ifname}")))?;
        ethtool_tx_off(tools, ifname)?;
        attach_qdisc(tools, ifname, &qdisc)
    })
}

/// The qdisc for a pod end on this node: [`pod_qdisc`] of the kernel's
/// `net.core.default_qdisc`. (The testbed gives its kxdp pods the same.)
pub fn default_pod_qdisc() -> String {
    pod_qdisc(
        std::fs::read_to_string(DEFAULT_QDISC_SYSCTL)
            .ok()
            .as_deref(),
    )
}

/// The qdisc for a pod end, from the contents of `net.core.default_qdisc`:
/// that name where it is one (letters, digits, `_`), else
/// [`FALLBACK_QDISC`].
pub fn pod_qdisc(default_qdisc: Option<&str>) -> String {
    default_qdisc
        .map(str::trim)
        .filter(|q| {
            !q.is_empty()
                && q.len() <= 32
                && q.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .unwrap_or(FALLBACK_QDISC)
        .to_string()
}

/// `tc qdisc replace dev ifname root qdisc`; where the kernel refuses
/// `qdisc` (a default whose module is not loaded), [`FALLBACK_QDISC`].
fn attach_qdisc(tools: &Tools, ifname: &str, qdisc: &str) -> Result<(), CniError> {
    let attach = |q: &str| {
        let args = ["qdisc", "replace", "dev", ifname, "root", q];
        let output = run(&tools.tc, &args, None)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(command_error(&tools.tc, &args, &output))
        }
    };
    match attach(qdisc) {
        Err(_) if qdisc != FALLBACK_QDISC => attach(FALLBACK_QDISC),
        result => result,
    }
}

/// Delete the link `name` of this namespace (with its peer). `Ok(false)`
/// when there is none.
pub fn delete_link(tools: &Tools, name: &str) -> Result<bool, CniError> {
    let output = run(&tools.ip, &["link", "del", "dev", name], None)?;
    if output.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Cannot find device") || stderr.contains("does not exist") {
        return Ok(false);
    }
    Err(command_error(
        &tools.ip,
        &["link", "del", "dev", name],
        &output,
    ))
}

/// `ip -j -d link show dev <name>` in this namespace, or in `netns`; `None`
/// when there is no such link.
pub fn show_link(
    tools: &Tools,
    name: &str,
    netns: Option<&Path>,
) -> Result<Option<Value>, CniError> {
    let args = ["-j", "-d", "link", "show", "dev", name];
    let output = match netns {
        Some(path) => in_netns(path, || run(&tools.ip, &args, None))?,
        None => run(&tools.ip, &args, None)?,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("does not exist") || stderr.contains("Cannot find device") {
            return Ok(None);
        }
        return Err(command_error(&tools.ip, &args, &output));
    }
    first_of_json_array(&output.stdout, "ip link show")
}

/// The addresses and routes of `ifname` in `netns`:
/// (`ip -j addr show dev`, `ip -j -4 route show dev`, `ip -j -6 route show dev`).
pub fn show_pod_side(
    tools: &Tools,
    netns: &Path,
    ifname: &str,
) -> Result<(Value, Value, Value), CniError> {
    in_netns(netns, || {
        let json = |args: &[&str]| -> Result<Value, CniError> {
            let output = run(&tools.ip, args, None)?;
            if !output.status.success() {
                return Err(command_error(&tools.ip, args, &output));
            }
            serde_json::from_slice(&output.stdout).map_err(|e| {
                CniError::new(
                    ErrorCode::Decode,
                    "cannot decode `ip -j` output",
                    e.to_string(),
                )
            })
        };
        Ok((
            json(&["-j", "addr", "show", "dev", ifname])?,
            json(&["-j", "-4", "route", "show", "dev", ifname])?,
            json(&["-j", "-6", "route", "show", "dev", ifname])?,
        ))
    })
}

/// Run `f` on a thread inside the network namespace at `netns`. A missing
/// namespace is an unknown container (3).
pub fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> Result<T, CniError> + Send,
) -> Result<T, CniError> {
    let file = File::open(netns).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorCode::UnknownContainer
        } else {
            ErrorCode::Io
        };
        CniError::new(
            code,
            format!("cannot open network namespace {}", netns.display()),
            e.to_string(),
        )
    })?;
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                CniError::new(
                    ErrorCode::Io,
                    format!("cannot enter network namespace {}", netns.display()),
                    e.to_string(),
                )
            })?;
            f()
        });
        thread.join().unwrap_or_else(|_| {
            Err(CniError::msg(
                ErrorCode::Io,
                "the thread in the container's namespace panicked",
            ))
        })
    })
}

/// Whether `address` is on the link in `ip -j addr show` output.
pub fn has_address(addr_json: &Value, address: IpAddr, prefix: u8) -> bool {
    addr_json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|link| link.get("addr_info").and_then(Value::as_array))
        .flatten()
        .any(|info| {
            info.get("local").and_then(Value::as_str) == Some(&address.to_string())
                && info.get("prefixlen").and_then(Value::as_u64) == Some(u64::from(prefix))
        })
}

/// Whether `ip -j route show` output has a default route via `gateway`.
pub fn has_default_via(route_json: &Value, gateway: IpAddr) -> bool {
    route_json.as_array().into_iter().flatten().any(|route| {
        route.get("dst").and_then(Value::as_str) == Some("default")
            && route.get("gateway").and_then(Value::as_str) == Some(&gateway.to_string())
    })
}

fn ip_batch(tools: &Tools, commands: &str) -> Result<(), CniError> {
    let output = run(&tools.ip, &["-batch", "-"], Some(commands.as_bytes()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(command_error(&tools.ip, &["-batch", "-"], &output))
    }
}

fn ethtool_tx_off(tools: &Tools, ifname: &str) -> Result<(), CniError> {
    let args = ["-K", ifname, "tx", "off"];
    let output = run(&tools.ethtool, &args, None)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(command_error(&tools.ethtool, &args, &output))
    }
}

fn run(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Output, CniError> {
    let spawn_error = |e: std::io::Error| {
        CniError::new(
            ErrorCode::Io,
            format!("cannot run {}", program.display()),
            e.to_string(),
        )
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(bytes), Some(mut input)) = (stdin, child.stdin.take()) {
        // On a write error the command's exit status tells the story.
        let _ = input.write_all(bytes);
    }
    child.wait_with_output().map_err(spawn_error)
}

fn command_error(program: &Path, args: &[&str], output: &Output) -> CniError {
    CniError::new(
        ErrorCode::Io,
        format!(
            "`{} {}` failed ({})",
            program.display(),
            args.join(" "),
            output.status
        ),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

fn first_of_json_array(stdout: &[u8], what: &str) -> Result<Option<Value>, CniError> {
    let value: Value = serde_json::from_slice(stdout).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            format!("cannot decode `{what}` output"),
            e.to_string(),
        )
    })?;
    Ok(value.as_array().and_then(|links| links.first()).cloned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pod_end_gets_the_kernels_default_qdisc_or_the_fallback() {
        assert_eq!(pod_qdisc(Some("fq_codel\n")), "fq_codel");
        assert_eq!(pod_qdisc(Some("pfifo_fast")), "pfifo_fast");
        assert_eq!(pod_qdisc(None), FALLBACK_QDISC);
        assert_eq!(pod_qdisc(Some("")), FALLBACK_QDISC);
        assert_eq!(pod_qdisc(Some("  \n")), FALLBACK_QDISC);
        // Never an argument tc would read as more than a qdisc name.
        assert_eq!(pod_qdisc(Some("fq limit 1")), FALLBACK_QDISC);
        assert_eq!(pod_qdisc(Some("-help")), FALLBACK_QDISC);
        assert_eq!(pod_qdisc(Some(&"q".repeat(33))), FALLBACK_QDISC);
    }

    #[test]
    fn veth_commands_create_both_ends_at_once() {
        let veth = Veth {
            host: "kx0123456789a",
            host_mac: "0e:01:02:03:04:05",
            pod: "eth0",
            pod_mac: "0a:58:0a:f4:01:05",
            netns: Path::new("/run/netns/cni-1"),
            mtu: 1450,
            queues: 2,
        };
        assert_eq!(
            veth_commands(&veth),
            "link add kx0123456789a mtu 1450 numtxqueues 2 numrxqueues 2 address 0e:01:02:03:04:05 \
             type veth peer name eth0 mtu 1450 numtxqueues 2 numrxqueues 2 \
             address 0a:58:0a:f4:01:05 netns /run/netns/cni-1\n\
             link set kx0123456789a up\n"
        );
    }

    #[test]
    fn pod_commands_route_through_the_gateway_on_link() {
        let both = PodAddresses {
            v4: Some(Ipv4Addr::new(10, 244, 1, 5)),
            gateway4: Some(Ipv4Addr::new(10, 244, 1, 1)),
            v6: Some("fd00::5".parse().unwrap()),
            gateway6: Some("fd00::1".parse().unwrap()),
        };
        assert_eq!(
            pod_commands("eth0", &both),
            "addr add 10.244.1.5/32 dev eth0\n\
             addr add fd00::5/128 dev eth0 nodad\n\
             link set eth0 up\n\
             route add 10.244.1.1/32 dev eth0 scope link\n\
             route add 0.0.0.0/0 via 10.244.1.1 dev eth0 onlink\n\
             route add ::/0 via fd00::1 dev eth0 onlink\n"
        );
        assert_eq!(
            pod_commands("net1", &PodAddresses::default()),
            "link set net1 up\n"
        );
    }

    #[test]
    fn reads_addresses_and_routes() {
        // Shapes of iproute2 6.1's `ip -j addr show` and `ip -j route show`.
        let addrs: Value = serde_json::from_str(
            r#"[{"ifindex":2,"ifname":"eth0","addr_info":[
                {"family":"inet","local":"10.244.1.5","prefixlen":32,"scope":"global"},
                {"family":"inet6","local":"fe80::858:aff:fef4:105","prefixlen":64,"scope":"link"}]}]"#,
        )
        .unwrap();
        assert!(has_address(&addrs, "10.244.1.5".parse().unwrap(), 32));
        assert!(!has_address(&addrs, "10.244.1.5".parse().unwrap(), 24));
        assert!(!has_address(&addrs, "10.244.1.6".parse().unwrap(), 32));
        let routes: Value = serde_json::from_str(
            r#"[{"dst":"default","gateway":"10.244.1.1","flags":["onlink"]},
                {"dst":"10.244.1.1","scope":"link","flags":[]}]"#,
        )
        .unwrap();
        assert!(has_default_via(&routes, "10.244.1.1".parse().unwrap()));
        assert!(!has_default_via(&routes, "10.244.1.2".parse().unwrap()));
        assert!(!has_default_via(
            &Value::Null,
            "10.244.1.1".parse().unwrap()
        ));
    }

    #[test]
    fn a_missing_namespace_is_an_unknown_container() {
        let e = in_netns(Path::new("/nonexistent/netns"), || Ok(())).unwrap_err();
        assert_eq!(e.code, 3);
    }
}
