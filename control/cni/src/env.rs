//! The runtime's side of the call: the `CNI_*` environment variables of the
//! specification, read through a lookup function so tests pass a map.

use std::path::PathBuf;

use crate::error::{CniError, ErrorCode};

/// Longest interface name Linux takes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// The operation the runtime asks for (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Check that the attachment is as ADD left it.
    Check,
    /// Report the supported versions.
    Version,
    /// Report whether the plugin can serve ADD (spec 1.1).
    Status,
    /// Garbage-collect stale attachments (spec 1.1).
    Gc,
}

impl Command {
    /// The command named `name` (`ADD`, `DEL`, …).
    pub fn parse(name: &str) -> Result<Command, CniError> {
        Ok(match name {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            other => {
                return Err(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    format!("CNI_COMMAND {other:?} is not a CNI command"),
                    "expected ADD, DEL, CHECK, VERSION, STATUS or GC",
                ))
            }
        })
    }
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs(Vec<(String, String)>);

impl CniArgs {
    /// Parse `CNI_ARGS`. An empty string has no pairs; a pair without `=`
    /// is refused (as libcni does).
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    "CNI_ARGS is malformed",
                    format!("{pair:?} is not KEY=VALUE"),
                ));
            };
            pairs.push((key.to_string(), value.to_string()));
        }
        Ok(CniArgs(pairs))
    }

    /// The value of `key`, when present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Everything the runtime passes in the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`: the path of the container's network namespace.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`: where to look for delegated plugins (IPAM).
    pub path: Vec<PathBuf>,
}

impl Invocation {
    /// Read the invocation from `var` (`std::env::var` in the binary). An
    /// empty variable counts as absent.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let command = match get("CNI_COMMAND") {
            Some(name) => Command::parse(&name)?,
            None => {
                return Err(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    "CNI_COMMAND is not set",
                    "kxdp-cni is a CNI plugin: the container runtime runs it with \
                     CNI_COMMAND and the network configuration on stdin",
                ))
            }
        };
        let container_id = get("CNI_CONTAINERID");
        if let Some(id) = &container_id {
            check_container_id(id)?;
        }
        let ifname = get("CNI_IFNAME");
        if let Some(name) = &ifname {
            check_ifname(name)?;
        }
        let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
        let path = get("CNI_PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Invocation {
            command,
            container_id,
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname,
            args,
            path,
        })
    }

    /// `CNI_CONTAINERID`, which ADD, DEL and CHECK need.
    pub fn require_container_id(&self) -> Result<&str, CniError> {
        self.container_id
            .as_deref()
            .ok_or_else(|| missing("CNI_CONTAINERID"))
    }

    /// `CNI_IFNAME`, which ADD, DEL and CHECK need.
    pub fn require_ifname(&self) -> Result<&str, CniError> {
        self.ifname.as_deref().ok_or_else(|| missing("CNI_IFNAME"))
    }

    /// `CNI_NETNS`, which ADD and CHECK need (DEL may come after the
    /// namespace is gone).
    pub fn require_netns(&self) -> Result<&std::path::Path, CniError> {
        self.netns.as_deref().ok_or_else(|| missing("CNI_NETNS"))
    }
}

fn missing(name: &str) -> CniError {
    CniError::msg(ErrorCode::InvalidEnvironment, format!("{name} is not set"))
}

/// A container id is "alphanumeric, plus underscore, period and hyphen".
fn check_container_id(id: &str) -> Result<(), CniError> {
    if id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_CONTAINERID is not a valid container id",
            format!("{id:?}: only letters, digits, '_', '.' and '-' are allowed"),
        ))
    }
}

/// An interface name Linux takes: 1-15 bytes, no '/', ':' or white space,
/// not "." or "..".
pub fn check_ifname(name: &str) -> Result<(), CniError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if fine {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_IFNAME is not a valid interface name",
            format!("{name:?}: 1-{MAX_IFNAME} bytes, no '/', ':' or white space"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn invocation(vars: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Invocation::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn reads_an_add() {
        let inv = invocation(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "0123456789abcdef"),
            ("CNI_NETNS", "/run/netns/cni-1"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=front-1;K8S_POD_UID=",
            ),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni::"),
        ])
        .unwrap();
        assert_eq!(inv.command, Command::Add);
        assert_eq!(inv.require_container_id().unwrap(), "0123456789abcdef");
        assert_eq!(
            inv.require_netns().unwrap(),
            std::path::Path::new("/run/netns/cni-1")
        );
        assert_eq!(inv.require_ifname().unwrap(), "eth0");
        assert_eq!(inv.args.get("K8S_POD_NAMESPACE"), Some("web"));
        assert_eq!(inv.args.get("K8S_POD_NAME"), Some("front-1"));
        assert_eq!(inv.args.get("K8S_POD_UID"), None, "empty values are absent");
        assert_eq!(inv.args.get("KXDP_TENANT"), None);
        assert_eq!(
            inv.path,
            [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
    }

    #[test]
    fn commands_and_their_absence() {
        for (name, command) in [
            ("DEL", Command::Del),
            ("CHECK", Command::Check),
            ("VERSION", Command::Version),
            ("STATUS", Command::Status),
            ("GC", Command::Gc),
        ] {
            assert_eq!(
                invocation(&[("CNI_COMMAND", name)]).unwrap().command,
                command
            );
        }
        for vars in [&[][..], &[("CNI_COMMAND", "")], &[("CNI_COMMAND", "add")]] {
            assert_eq!(invocation(vars).unwrap_err().code, 4, "{vars:?}");
        }
    }

    #[test]
    fn a_del_may_come_without_a_netns() {
        let inv = invocation(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", ""),
        ])
        .unwrap();
        assert_eq!(inv.netns, None);
        assert_eq!(inv.require_netns().unwrap_err().code, 4);
        assert!(inv.path.is_empty());
    }

    #[test]
    fn refuses_bad_ids_names_and_args() {
        let base = [("CNI_COMMAND", "ADD")];
        for bad in [
            ("CNI_CONTAINERID", "abc/def"),
            ("CNI_CONTAINERID", "a b"),
            ("CNI_IFNAME", "a-name-too-long-0"),
            ("CNI_IFNAME", "eth/0"),
            ("CNI_IFNAME", ".."),
            ("CNI_IFNAME", "eth 0"),
            ("CNI_ARGS", "K8S_POD_NAME=x;garbage"),
        ] {
            let vars = [base[0], bad];
            let e = invocation(&vars).unwrap_err();
            assert_eq!(e.code, 4, "{bad:?}: {e}");
        }
        let inv = invocation(&[("CNI_COMMAND", "ADD")]).unwrap();
        assert_eq!(inv.require_container_id().unwrap_err().code, 4);
        assert_eq!(inv.require_ifname().unwrap_err().code, 4);
        assert!(check_ifname("net1").is_ok());
        assert!(check_ifname("123456789012345").is_ok());
    }

    #[test]
    fn args_keep_values_with_equal_signs() {
        let args = CniArgs::parse("A=b=c;;B=").unwrap();
        assert_eq!(args.get("A"), Some("b=c"));
        assert_eq!(args.get("B"), None);
    }
}
