//! [`Testbed`] methods for what [`crate::kxdp_process`] defines.

use super::Testbed;
use crate::error::{Result, TestbedError};
use crate::kxdp_process::{KxdpProcess, READY_TIMEOUT};
use crate::topology::NodeKind;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

impl Testbed {
    /// Write `node`'s configuration, start `<kxdp_binary> run --config <file>
    /// <extra_args…>` in the node's namespace, and wait up to
    /// [`READY_TIMEOUT`] until XDP is attached to `ul0` and every pod
    /// interface of the node. Output goes to `<scratch dir>/<node>.kxdp.log`.
    pub fn start_kxdp(
        &self,
        node: &str,
        kxdp_binary: &Path,
        extra_args: &[&str],
    ) -> Result<KxdpProcess> {
        self.start_kxdp_with_timeout(node, kxdp_binary, extra_args, READY_TIMEOUT)
    }

    /// [`Testbed::start_kxdp`] with another readiness timeout.
    pub fn start_kxdp_with_timeout(
        &self,
        node: &str,
        kxdp_binary: &Path,
        extra_args: &[&str],
        ready_timeout: Duration,
    ) -> Result<KxdpProcess> {
        let node_info = self.node(node)?;
        if node_info.kind != NodeKind::Kxdp {
            return Err(TestbedError::Spec(format!(
                "node {node} is a kernel vxlan node, not a kxdp node"
            )));
        }
        let binary = kxdp_binary
            .canonicalize()
            .map_err(|e| TestbedError::io(format!("kxdp binary {}", kxdp_binary.display()), e))?;
        let config_path = self.write_config(node)?;
        let log_path = self.scratch_dir().join(format!("{node}.kxdp.log"));
        let log = File::create(&log_path)
            .map_err(|e| TestbedError::io(format!("cannot create {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| TestbedError::io(format!("cannot reopen {}", log_path.display()), e))?;
        // `ip netns exec` execs the program in place: the child's pid is kxdp's.
        let child = Command::new("ip")
            .args(["netns", "exec", node_info.netns.name()])
            .arg(&binary)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| TestbedError::io(format!("cannot start {}", binary.display()), e))?;
        let mut process = KxdpProcess {
            node: node.to_string(),
            child: Some(child),
            log_path,
            config_path,
        };
        process.wait_ready(&node_info.netns, &node_info.interfaces, ready_timeout)?;
        Ok(process)
    }
}
