//! IPAM by delegation, as CNI libraries do it: the plugin `ipam.type`
//! (`host-local` in kxdp's conflist) is looked up in `CNI_PATH` and run with
//! this plugin's own environment, `CNI_COMMAND` set to the operation, and
//! the network configuration on stdin. Its result or error JSON is read
//! back; an error keeps its code.
//!
//! A 1.1.0 configuration is handed down as 1.0.0 when the IPAM plugin does
//! not speak 1.1.0 (Debian 12's host-local 1.1.1 does not): the two
//! versions' IPAM results are the same.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::config::NetConf;
use crate::error::{CniError, ErrorCode};
use crate::result::CniResult;

/// The IPAM plugin of a configuration, ready to run.
#[derive(Debug)]
pub struct Ipam {
    name: String,
    plugin: PathBuf,
    /// The configuration to hand it, in a version it speaks.
    stdin: Vec<u8>,
}

impl Ipam {
    /// Find the IPAM plugin `conf` names in `cni_path` and prepare its
    /// stdin from `original` (this plugin's stdin).
    pub fn new(conf: &NetConf, original: &[u8], cni_path: &[PathBuf]) -> Result<Ipam, CniError> {
        let name = conf.ipam_type()?.to_string();
        let plugin = find_plugin(&name, cni_path)?;
        let mut ipam = Ipam {
            name,
            plugin,
            stdin: original.to_vec(),
        };
        if conf.cni_version == "1.1.0" {
            let supported = ipam.supported_versions()?;
            let version = common_version(&conf.cni_version, &supported).ok_or_else(|| {
                CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!(
                        "IPAM plugin {} speaks no version this configuration can use",
                        ipam.name
                    ),
                    format!("it supports {}", supported.join(", ")),
                )
            })?;
            if version != conf.cni_version {
                ipam.stdin = with_version(original, &version)?;
            }
        }
        Ok(ipam)
    }

    /// The plugin's name (`ipam.type`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// ADD: allocate, and return the plugin's result.
    pub fn add(&self) -> Result<CniResult, CniError> {
        let out = self.run("ADD", &self.stdin)?;
        let value: Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                format!("cannot decode the result of IPAM plugin {}", self.name),
                e.to_string(),
            )
        })?;
        let result = CniResult::parse(&value, &format!("the result of IPAM plugin {}", self.name))?;
        if result.ips.is_empty() {
            return Err(CniError::msg(
                ErrorCode::InvalidNetworkConfig,
                format!("IPAM plugin {} returned no address", self.name),
            ));
        }
        Ok(result)
    }

    /// DEL: release (idempotent in the plugin).
    pub fn del(&self) -> Result<(), CniError> {
        self.run("DEL", &self.stdin).map(drop)
    }

    /// CHECK: the allocation is still there (the runtime's `prevResult` is
    /// in the configuration handed down).
    pub fn check(&self) -> Result<(), CniError> {
        self.run("CHECK", &self.stdin).map(drop)
    }

    fn supported_versions(&self) -> Result<Vec<String>, CniError> {
        let out = self.run("VERSION", br#"{"cniVersion":"1.1.0"}"#)?;
        let value: Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                format!(
                    "cannot decode the VERSION answer of IPAM plugin {}",
                    self.name
                ),
                e.to_string(),
            )
        })?;
        Ok(value
            .get("supportedVersions")
            .and_then(Value::as_array)
            .map(|versions| {
                versions
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run the plugin with `CNI_COMMAND=command` and `stdin`; its stdout,
    /// or its error.
    fn run(&self, command: &str, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
        let mut child = Command::new(&self.plugin)
            .env("CNI_COMMAND", command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                CniError::new(
                    ErrorCode::Io,
                    format!("cannot run IPAM plugin {}", self.plugin.display()),
                    e.to_string(),
                )
            })?;
        if let Some(mut input) = child.stdin.take() {
            // A plugin that exits without reading its stdin closes the pipe:
            // its exit status below says what happened.
            let _ = input.write_all(stdin);
        }
        let output = child.wait_with_output().map_err(|e| {
            CniError::new(
                ErrorCode::Io,
                format!("IPAM plugin {} did not finish", self.name),
                e.to_string(),
            )
        })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(plugin_error(
            &self.name,
            command,
            &output.stdout,
            &String::from_utf8_lossy(&output.stderr),
        ))
    }
}

/// The plugin `name` in the first directory of `cni_path` that has it.
pub fn find_plugin(name: &str, cni_path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if name.contains('/') || name == "." || name == ".." {
        return Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            "ipam.type is not a plugin name",
            format!("{name:?}"),
        ));
    }
    cni_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("IPAM plugin {name} is not in CNI_PATH"),
                format!(
                    "looked in {}",
                    cni_path
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":")
                ),
            )
        })
}

/// The version to speak to a delegate that supports `supported`: the
/// configuration's own, else 1.0.0 for a 1.1.0 configuration (their IPAM
/// results are the same).
pub fn common_version(config: &str, supported: &[String]) -> Option<String> {
    let has = |v: &str| supported.iter().any(|s| s == v);
    if has(config) {
        Some(config.to_string())
    } else if config == "1.1.0" && has("1.0.0") {
        Some("1.0.0".to_string())
    } else {
        None
    }
}

/// `stdin` with its `cniVersion` replaced by `version`.
fn with_version(stdin: &[u8], version: &str) -> Result<Vec<u8>, CniError> {
    let mut value: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            "cannot decode the network configuration",
            e.to_string(),
        )
    })?;
    if let Some(object) = value.as_object_mut() {
        object.insert("cniVersion".into(), Value::String(version.to_string()));
    }
    serde_json::to_vec(&value).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            "cannot encode the network configuration",
            e.to_string(),
        )
    })
}

/// A delegate's failure: its error JSON with its code, or, when it printed
/// none, an I/O error quoting its stderr.
fn plugin_error(name: &str, command: &str, stdout: &[u8], stderr: &str) -> CniError {
    let parsed: Option<Value> = serde_json::from_slice(stdout).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    match (code, parsed.as_ref()) {
        (Some(code), Some(v)) => CniError {
            code,
            msg: format!(
                "IPAM plugin {name} {command}: {}",
                v.get("msg").and_then(Value::as_str).unwrap_or("failed")
            ),
            details: v
                .get("details")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        },
        _ => CniError::new(
            ErrorCode::Io,
            format!("IPAM plugin {name} {command} failed"),
            format!(
                "stdout: {} stderr: {}",
                String::from_utf8_lossy(stdout).trim(),
                stderr.trim()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn picks_a_version_both_speak() {
        let host_local: Vec<String> = ["0.3.1", "0.4.0", "1.0.0"].map(String::from).to_vec();
        assert_eq!(
            common_version("1.1.0", &host_local).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            common_version("1.0.0", &host_local).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            common_version("0.4.0", &host_local).as_deref(),
            Some("0.4.0")
        );
        let newer: Vec<String> = ["1.0.0", "1.1.0"].map(String::from).to_vec();
        assert_eq!(common_version("1.1.0", &newer).as_deref(), Some("1.1.0"));
        assert_eq!(common_version("0.4.0", &newer), None);
        assert_eq!(common_version("1.1.0", &[]), None);
    }

    #[test]
    fn rewrites_only_the_version() {
        let out = with_version(
            br#"{"cniVersion":"1.1.0","name":"k","ipam":{"type":"host-local"}}"#,
            "1.0.0",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["ipam"]["type"], "host-local");
        assert_eq!(with_version(b"{", "1.0.0").unwrap_err().code, 6);
    }

    #[test]
    fn finds_plugins_in_cni_path_only() {
        let dir = std::env::temp_dir().join(format!("kxdp-cni-find-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("host-local"), b"").unwrap();
        let path = [PathBuf::from("/nonexistent"), dir.clone()];
        assert_eq!(
            find_plugin("host-local", &path).unwrap(),
            dir.join("host-local")
        );
        assert_eq!(find_plugin("dhcp", &path).unwrap_err().code, 7);
        assert_eq!(find_plugin("../host-local", &path).unwrap_err().code, 7);
        assert_eq!(find_plugin("host-local", &[]).unwrap_err().code, 7);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn delegate_errors_keep_their_code() {
        let e = plugin_error(
            "host-local",
            "ADD",
            br#"{"cniVersion":"1.0.0","code":999,"msg":"no IP addresses available in range set","details":"10.244.1.1-10.244.1.254"}"#,
            "",
        );
        assert_eq!(e.code, 999);
        assert!(e.msg.contains("no IP addresses available"), "{e}");
        assert_eq!(e.details, "10.244.1.1-10.244.1.254");
        let e = plugin_error("host-local", "DEL", b"panic", "segfault");
        assert_eq!(e.code, 5);
        assert!(e.details.contains("segfault"));
    }
}
