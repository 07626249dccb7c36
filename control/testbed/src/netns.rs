//! Named network namespaces (the `ip netns` kind, bind-mounted under
//! `/run/netns`): a cheap handle ([`Netns`]) that runs commands in a
//! namespace and runs closures on a thread that has entered it, and a guard
//! ([`NetnsGuard`]) that creates a namespace and deletes it when dropped.
//!
//! A socket belongs to the namespace of the thread that created it, for its
//! whole life: create it inside [`Netns::run_in`], then use it from any thread.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;

use super::error::{Result, TestbedError};

/// Where `ip netns` keeps its namespaces (the harness's).
pub use kxdp_harness::NETNS_RUN_DIR;

/// A named network namespace (not owned: dropping a handle deletes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Netns {
    name: String,
}

impl AsRef<Netns> for Netns {
    fn as_ref(&self) -> &Netns {
        self
    }
}

impl Netns {
    /// A handle on the existing namespace `name`.
    pub fn open(name: &str) -> Result<Netns> {
        let ns = Netns {
            name: name.to_string(),
        };
        if !ns.path().exists() {
            return Err(TestbedError::NotFound {
                what: "network namespace",
                name: name.to_string(),
            });
        }
        Ok(ns)
    }

    /// A handle on `name` without checking that it exists (for namespaces
    /// the testbed is about to create).
    pub(crate) fn named(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
        }
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind mount that keeps the namespace alive (`/run/netns/<name>`).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(&self.name)
    }

    /// Run `ip -n <ns> <args…>` and return its stdout.
    pub fn ip<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let mut full: Vec<&OsStr> = vec![OsStr::new("-n"), OsStr::new(&self.name)];
        full.extend(args.iter().map(AsRef::as_ref));
        run_command("ip", &full)
    }

    /// Run `program args…` inside the namespace (`ip netns exec`) and return
    /// its stdout; a failure status is an error that names the command line and
    /// quotes its stderr.
    pub fn exec<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<String> {
        let output = self.exec_output(program, args)?;
        let command = command_line("ip", &self.exec_args(program, args));
        checked_stdout(command, output)
    }

    /// Like [`Netns::exec`], but returns the whole output whatever the exit
    /// status (for tools such as `ping` whose failure status still carries
    /// results). A missing program is still an error.
    pub fn exec_output<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<Output> {
        if find_program(program).is_none() {
            return Err(TestbedError::MissingTool {
                tool: program.to_string(),
                why: format!("run inside network namespace {}", self.name),
            });
        }
        let full = self.exec_args(program, args);
        spawn_output("ip", &full)
    }

    fn exec_args<'a, S: AsRef<OsStr>>(&'a self, program: &'a str, args: &'a [S]) -> Vec<&'a OsStr> {
        let mut full: Vec<&OsStr> = vec![
            OsStr::new("netns"),
            OsStr::new("exec"),
            OsStr::new(&self.name),
            OsStr::new(program),
        ];
        full.extend(args.iter().map(AsRef::as_ref));
        full
    }

    /// Start a thread that enters this namespace (setns(2), which moves only
    /// the calling thread) and runs `f` there. Sockets `f` creates live in the
    /// namespace and may be returned and used from any thread.
    pub fn spawn_in<F, T>(&self, f: F) -> Result<JoinHandle<Result<T>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("netns:{}", self.name))
            .spawn(move || {
                kxdp_harness::enter_netns(&name).map_err(|e| {
                    TestbedError::io(format!("cannot enter network namespace {name}"), e)
                })?;
                Ok(f())
            })
            .map_err(|e| TestbedError::io("cannot spawn a thread", e))
    }

    /// Run `f` on a thread inside this namespace and wait for its result.
    pub fn run_in<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.spawn_in(f)?;
        handle
            .join()
            .map_err(|payload| TestbedError::ThreadPanicked {
                netns: self.name.clone(),
                message: panic_message(payload.as_ref()),
            })?
    }

    /// Write a sysctl of this namespace (`net.ipv4.ip_forward` style name)
    /// through /proc/sys from a thread inside it: /proc/sys/net shows the
    /// namespace of the thread that opens it. Saves needing `sysctl(8)`.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        let value = value.to_string();
        let shown = path.display().to_string();
        self.run_in(move || std::fs::write(&path, value))?
            .map_err(|e| {
                TestbedError::io(format!("cannot write {shown} in netns {}", self.name), e)
            })
    }

    /// A kernel counter of `ifname` in this namespace, such as
    /// `tx_dropped` or `rx_packets` (`/sys/class/net/<ifname>/statistics`).
    pub fn link_counter(&self, ifname: &str, counter: &str) -> Result<u64> {
        // Through `ip netns exec`, which mounts the namespace's own sysfs: a
        // thread that only entered the namespace still sees the root's.
        let path = format!("/sys/class/net/{ifname}/statistics/{counter}");
        let text = self.exec("cat", &[&path])?;
        text.trim().parse().map_err(|_| {
            TestbedError::Netns(format!(
                "{path} in netns {} reads {:?}, not a counter",
                self.name,
                text.trim()
            ))
        })
    }

    /// Read a sysctl of this namespace (see [`Netns::set_sysctl`]).
    pub fn sysctl(&self, key: &str) -> Result<String> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        let shown = path.display().to_string();
        self.run_in(move || std::fs::read_to_string(&path))?
            .map(|s| s.trim().to_string())
            .map_err(|e| TestbedError::io(format!("cannot read {shown} in netns {}", self.name), e))
    }
}

/// Creates a network namespace and deletes it when dropped (also while a
/// panic unwinds). Deleting a namespace deletes the veth pairs with an end in
/// it. Dereferences to [`Netns`].
#[derive(Debug)]
pub struct NetnsGuard {
    ns: Netns,
    /// The harness's guard (the one every privileged test uses): deletes
    /// the namespace on drop.
    _guard: kxdp_harness::NetnsGuard,
}

impl NetnsGuard {
    /// `ip netns add <name>`, then bring `lo` up in it.
    pub fn create(name: &str) -> Result<NetnsGuard> {
        let guard = kxdp_harness::NetnsGuard::create(name).map_err(TestbedError::Netns)?;
        Ok(NetnsGuard {
            ns: Netns {
                name: name.to_string(),
            },
            _guard: guard,
        })
    }

    /// The namespace handle.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }
}

impl std::ops::Deref for NetnsGuard {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

/// `ip netns del <name>`.
pub(crate) fn delete_netns(name: &str) -> Result<()> {
    run_command("ip", &["netns", "del", name]).map(drop)
}

/// The names of all named network namespaces (`ip netns list`).
pub fn list_netns() -> Result<Vec<String>> {
    let out = run_command("ip", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Run a program, return its stdout; a failure status is an error naming the
/// command line and quoting stderr.
pub(crate) fn run_command<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    let output = spawn_output(program, args)?;
    checked_stdout(command_line(program, args), output)
}

fn spawn_output<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TestbedError::MissingTool {
                    tool: program.to_string(),
                    why: format!("running `{}`", command_line(program, args)),
                }
            } else {
                TestbedError::io(format!("cannot run `{}`", command_line(program, args)), e)
            }
        })
}

fn checked_stdout(command: String, output: Output) -> Result<String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(TestbedError::Command {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

pub(crate) fn command_line<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}

/// The full path of `program` on `PATH`, if it is there.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Create a veth pair with each end directly inside its namespace:
/// `(interface name, namespace, MAC)` for both ends.
pub(crate) fn veth_pair(a: (&str, &Netns, &str), b: (&str, &Netns, &str), mtu: &str) -> Result<()> {
    run_command(
        "ip",
        &[
            "link",
            "add",
            a.0,
            "netns",
            a.1.name(),
            "address",
            a.2,
            "mtu",
            mtu,
            "type",
            "veth",
            "peer",
            "name",
            b.0,
            "netns",
            b.1.name(),
            "address",
            b.2,
            "mtu",
            mtu,
        ],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_joins_arguments() {
        assert_eq!(command_line("ip", &["-n", "x", "link"]), "ip -n x link");
    }

    #[test]
    fn failing_command_names_itself_and_quotes_stderr() {
        let err = run_command("sh", &["-c", "echo oops >&2; exit 3"]).expect_err("exit 3 fails");
        match err {
            TestbedError::Command {
                command,
                status,
                stderr,
            } => {
                assert_eq!(command, "sh -c echo oops >&2; exit 3");
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "oops");
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn missing_program_is_a_missing_tool() {
        let err = run_command("kxdp-no-such-tool", &["x"]).expect_err("not installed");
        assert!(matches!(err, TestbedError::MissingTool { .. }), "{err}");
        assert!(find_program("kxdp-no-such-tool").is_none());
        assert!(find_program("sh").is_some());
    }
}
