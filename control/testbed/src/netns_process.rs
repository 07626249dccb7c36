//! Programs running in a testbed namespace for as long as a test needs
//! them: a hostNetwork server in a node's own namespace (what a
//! `hostNetwork: true` pod is), a DNS server in a pod. `ip netns exec
//! <ns> <program> …` as a child process whose output goes to a log file,
//! stopped by pid when dropped (SIGTERM, then SIGKILL).
//!
//! Stop a process before its namespace goes: a process still inside keeps
//! the namespace, and the veths with an end in it, alive after `ip netns
//! del`.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kxdp_config::Protocol;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::error::{Result, TestbedError};
use super::kxdp_process::log_tail;
use super::netns::{command_line, find_program, Netns};
use super::Testbed;

/// How long [`NetnsProcess::stop`] waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Lines of its log a failure quotes.
const LOG_TAIL_LINES: usize = 20;

/// A program running in a namespace. Dropping it stops it.
#[derive(Debug)]
pub struct NetnsProcess {
    what: String,
    netns: Netns,
    child: Option<Child>,
    log_path: PathBuf,
}

impl NetnsProcess {
    /// Start `program args…` in `netns`, stdout and stderr into `log_path`.
    pub fn start<S: AsRef<OsStr>>(
        netns: &Netns,
        program: &str,
        args: &[S],
        log_path: &Path,
    ) -> Result<NetnsProcess> {
        if find_program(program).is_none() {
            return Err(TestbedError::MissingTool {
                tool: program.to_string(),
                why: format!("run inside network namespace {}", netns.name()),
            });
        }
        let what = format!("`{}` in {}", command_line(program, args), netns.name());
        let log = File::create(log_path)
            .map_err(|e| TestbedError::io(format!("cannot create {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| TestbedError::io(format!("cannot reopen {}", log_path.display()), e))?;
        // `ip netns exec` execs the program in place: the child's pid is its.
        let child = Command::new("ip")
            .args(["netns", "exec", netns.name(), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| TestbedError::io(format!("cannot start {what}"), e))?;
        Ok(NetnsProcess {
            what,
            netns: netns.clone(),
            child: Some(child),
            log_path: log_path.to_path_buf(),
        })
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Wait up to `timeout` until a socket of `protocol` listens on `port`
    /// in its namespace (`ss -Hln`); an error quoting its log if it exits
    /// first or the time runs out.
    pub fn wait_listening(
        &mut self,
        protocol: Protocol,
        port: u16,
        timeout: Duration,
    ) -> Result<()> {
        let kind = match protocol {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "-S",
        };
        let filter = format!("sport = :{port}");
        let start = Instant::now();
        loop {
            if !self.is_running() {
                return Err(TestbedError::Traffic(format!(
                    "{} exited before listening on {protocol:?} port {port}\n--- log tail ({}) ---\n{}",
                    self.what,
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                )));
            }
            let listening = self.netns.exec("ss", &["-Hln", kind, &filter])?;
            if !listening.trim().is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(TestbedError::Traffic(format!(
                    "{} not listening on {protocol:?} port {port} after {timeout:?}\n--- log tail ({}) ---\n{}",
                    self.what,
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it: SIGTERM, SIGKILL after 2 s if it is still there, then reap
    /// it. `None` if it had already been stopped.
    pub fn stop(&mut self) -> Result<Option<ExitStatus>> {
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
                Err(e) => {
                    return Err(TestbedError::io(
                        format!("cannot wait for {}", self.what),
                        e,
                    ))
                }
            }
        }
        let _ = child.kill();
        child
            .wait()
            .map(Some)
            .map_err(|e| TestbedError::io(format!("cannot wait for {}", self.what), e))
    }
}

impl Drop for NetnsProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("testbed: stopping {}: {e}", self.what);
        }
    }
}

impl Testbed {
    /// Start `program args…` in `netns` (a pod's, a node's, a fabric
    /// host's), logging to `<scratch dir>/<tag>.log`.
    pub fn spawn_process<S: AsRef<OsStr>>(
        &self,
        netns: &Netns,
        tag: &str,
        program: &str,
        args: &[S],
    ) -> Result<NetnsProcess> {
        let log = self.scratch_dir().join(format!("{tag}.log"));
        NetnsProcess::start(netns, program, args, &log)
    }

    /// Start a hostNetwork server: `program args…` in node `node`'s own
    /// namespace, where kxdp runs, logging to
    /// `<scratch dir>/<node>.<tag>.log`.
    pub fn spawn_on_node<S: AsRef<OsStr>>(
        &self,
        node: &str,
        tag: &str,
        program: &str,
        args: &[S],
    ) -> Result<NetnsProcess> {
        let netns = self.node(node)?.netns.clone();
        self.spawn_process(&netns, &format!("{node}.{tag}"), program, args)
    }
}
