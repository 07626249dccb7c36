//! Running kxdp on a testbed node: `ip netns exec <node> <kxdp> run --config
//! <file>` as a child process logging to a file, ready once XDP is attached
//! to every interface of its configuration (as `ip link show` in the node's
//! namespace reports it), stopped by pid on drop (SIGTERM, then SIGKILL).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::error::{Result, TestbedError};
use super::netns::Netns;

/// How long [`Testbed::start_kxdp`] waits for XDP on every interface.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`KxdpProcess`] waits after SIGTERM before SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(2);

pub(crate) const LOG_TAIL_LINES: usize = 40;

/// A kxdp process running in a node's namespace. Dropping it stops it.
#[derive(Debug)]
pub struct KxdpProcess {
    pub(crate) node: String,
    pub(crate) child: Option<Child>,
    pub(crate) log_path: PathBuf,
    pub(crate) config_path: PathBuf,
}

impl KxdpProcess {
    pub(crate) fn wait_ready(
        &mut self,
        netns: &Netns,
        interfaces: &[String],
        timeout: Duration,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(TestbedError::KxdpExited {
                        node: self.node.clone(),
                        status: status.to_string(),
                        log: self.log_path.clone(),
                        log_tail: self.log_tail(LOG_TAIL_LINES),
                    });
                }
            }
            let mut missing = interfaces_without_xdp(netns, interfaces)
                .map(|m| m.into_iter().map(|i| format!("no XDP program on {i}")))?
                .collect::<Vec<_>>();
            if missing.is_empty() {
                // XDP is attached before the sockets are in its XSKMAP, and
                // until then frames for them are dropped: ready means every
                // interface has a bound socket, as its API reports.
                missing = self.interfaces_without_socket(interfaces);
                if missing.is_empty() {
                    return Ok(());
                }
            }
            if start.elapsed() >= timeout {
                let _ = self.terminate();
                return Err(TestbedError::NotReady {
                    node: self.node.clone(),
                    waited: start.elapsed(),
                    missing: missing.join(", "),
                    log: self.log_path.clone(),
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Interfaces for which the running kxdp reports no bound AF_XDP
    /// socket (all of them while its API does not answer: kxdp serves it
    /// once its workers run, its ports are bound and its other endpoints
    /// are up).
    fn interfaces_without_socket(&self, interfaces: &[String]) -> Vec<String> {
        let stats = kxdp_config::NodeConfig::from_file(&self.config_path)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                kxdp_control::stats::fetch(&kxdp_control::api::api_socket_path(&c))
                    .map_err(|e| kxdp_node::report::Report(&e).to_string())
            });
        match stats {
            Ok(stats) => interfaces
                .iter()
                .filter(|i| !stats.ports.iter().any(|p| &p.interface == *i))
                .map(|i| format!("no AF_XDP socket on {i}"))
                .collect(),
            Err(e) => vec![format!("no answer on the API socket: {e}")],
        }
    }

    /// The node it runs on.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The configuration file it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) | None => false,
        }
    }

    /// Stop it: SIGTERM, SIGKILL after 2 s if it is still there, then reap it.
    /// `None` if it had already been stopped.
    pub fn terminate(&mut self) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Some(status));
        }
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        // ESRCH: it exited between try_wait and kill; wait() below reaps it.
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(Some(status)),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(TestbedError::io("cannot wait for kxdp", e)),
            }
        }
        let _ = child.kill();
        child
            .wait()
            .map(Some)
            .map_err(|e| TestbedError::io("cannot wait for kxdp", e))
    }

    /// Kill it with SIGKILL (no cleanup on its side, as in a crash) and reap
    /// it. `None` if it had already been stopped.
    pub fn kill9(&mut self) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        // Child::kill sends SIGKILL to this child's pid (and is a no-op
        // error if it already exited).
        let _ = child.kill();
        child
            .wait()
            .map(Some)
            .map_err(|e| TestbedError::io("cannot wait for kxdp", e))
    }
}

impl Drop for KxdpProcess {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            eprintln!("testbed: stopping kxdp on {}: {e}", self.node);
        }
    }
}

/// The interfaces of `interfaces` that have no XDP program attached in `netns`.
pub(crate) fn interfaces_without_xdp(netns: &Netns, interfaces: &[String]) -> Result<Vec<String>> {
    let json = netns.ip(&["-j", "link", "show"])?;
    let links: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
        TestbedError::Traffic(format!("cannot parse `ip -j link show` output: {e}"))
    })?;
    Ok(missing_xdp(&links, interfaces))
}

pub(crate) fn missing_xdp(links: &serde_json::Value, interfaces: &[String]) -> Vec<String> {
    let with_xdp: Vec<&str> = links
        .as_array()
        .map(|links| {
            links
                .iter()
                .filter(|link| link.get("xdp").is_some())
                .filter_map(|link| link.get("ifname").and_then(serde_json::Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    interfaces
        .iter()
        .filter(|name| !with_xdp.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// The last `lines` lines of the file at `path` (its last 64 KiB at most).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_interfaces_without_xdp() {
        // Shape of `ip -j link show` (iproute2 6.1) with XDP on x1 only.
        let links: serde_json::Value = serde_json::from_str(
            r#"[{"ifindex":1,"ifname":"lo"},
                {"ifindex":2,"ifname":"ul0","xdp":{"mode":1,"prog":{"id":8,"name":"xdp_pass"}}},
                {"ifindex":3,"ifname":"vblue-a"}]"#,
        )
        .unwrap();
        let wanted = vec![
            "ul0".to_string(),
            "vblue-a".to_string(),
            "vgone".to_string(),
        ];
        assert_eq!(missing_xdp(&links, &wanted), ["vblue-a", "vgone"]);
        assert!(missing_xdp(&links, &wanted[..1]).is_empty());
        assert_eq!(missing_xdp(&serde_json::Value::Null, &wanted).len(), 3);
    }

    #[test]
    fn tails_logs() {
        let path = std::env::temp_dir().join(format!("kxdp-log-tail-{}", std::process::id()));
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(log_tail(&path, 2), "two\nthree");
        assert_eq!(log_tail(&path, 10), "one\ntwo\nthree");
        std::fs::remove_file(&path).unwrap();
        assert!(log_tail(&path, 2).contains("cannot open"));
    }
}
