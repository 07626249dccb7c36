//! Leaving nothing behind when a signal stops a program that builds
//! testbeds (`kxdp demo`, `kxdp-bench`).
//!
//! A testbed removes its namespaces, and its processes stop, when it is
//! dropped. A signal's default action (Ctrl-C, `timeout`'s SIGTERM, a
//! closed terminal's SIGHUP) ends the process without any drop: its
//! namespaces, the kxdp nodes and servers it started and their XDP
//! programs stay until a later run sweeps the dead PID's names. So such a
//! program calls [`remove_on_signal`] first. On SIGINT, SIGTERM or SIGHUP a
//! thread of its own then closes namespace creation for good, stops every
//! process this one started (its descendants, by PID: SIGTERM, then
//! SIGKILL after a grace period), removes every namespace, root link and
//! scratch directory named after this process ([`Testbed::remove_own`]),
//! runs the program's own undo (`also`), and exits with 128 + the signal,
//! as the default action would have reported it. A second signal while
//! that runs ends the process at once (exit status 1).
//!
//! The main thread runs on meanwhile and may fail as its namespaces go;
//! a program ends `main` with [`hold_if_stopping`], so that such a failure
//! does not exit the process under the sweep.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Result, TestbedError};
use crate::Testbed;

/// How long the processes this one started get to stop after SIGTERM
/// (a kxdp node detaches its XDP programs and closes its sockets, OVS
/// deletes its bridges) before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// The signals [`remove_on_signal`] handles.
pub const HANDLED: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Set once a signal's clean-up has begun.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// From now on, on SIGINT, SIGTERM or SIGHUP: stop this process's
/// descendants, remove this process's testbeds, run `also` (undo what the
/// program set outside its testbeds), then exit with 128 + the signal.
/// `program` names the program in the messages. Call once, early in
/// `main`.
pub fn remove_on_signal(program: &'static str, also: impl FnOnce() + Send + 'static) -> Result<()> {
    let io = |e: std::io::Error| TestbedError::io("registering the signal handlers", e);
    // The first signal sets `received`; a signal arriving while it is set
    // ends the process at once (signal-hook's documented pattern: the
    // conditional shutdown is registered before the flag).
    let received = Arc::new(AtomicBool::new(false));
    for signal in HANDLED {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&received))
            .map_err(io)?;
        signal_hook::flag::register(signal, Arc::clone(&received)).map_err(io)?;
    }
    let mut signals = signal_hook::iterator::Signals::new(HANDLED).map_err(io)?;
    std::thread::Builder::new()
        .name("on-signal".to_string())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                clean_up_and_exit(program, signal, also);
            }
        })
        .map_err(|e| TestbedError::io("starting the signal thread", e))?;
    Ok(())
}

/// Park the calling thread for good when a signal's clean-up is under way
/// (that thread exits the process when it is done); return at once
/// otherwise. The last thing `main` does.
pub fn hold_if_stopping() {
    while STOPPING.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

fn clean_up_and_exit(program: &str, signal: i32, also: impl FnOnce()) -> ! {
    STOPPING.store(true, Ordering::SeqCst);
    let name = Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"));
    eprintln!(
        "{program}: {name}: stopping the processes it started and removing its testbeds \
         (a second signal exits at once)…"
    );
    kxdp_harness::stop_creating_namespaces();
    let stopped = stop_descendants(std::process::id(), STOP_GRACE);
    let removed = match Testbed::remove_own() {
        Ok(removed) => removed.len().to_string(),
        Err(e) => {
            eprintln!("{program}: removing its testbeds failed: {e}");
            "not all".to_string()
        }
    };
    also();
    eprintln!(
        "{program}: stopped {} process(es) ({} with SIGKILL), removed {removed} namespace(s), link(s) and directories; exiting",
        stopped.total, stopped.killed
    );
    std::process::exit(128 + signal)
}

/// What [`stop_descendants`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Processes signalled.
    pub total: usize,
    /// Of those, still there after the grace period and killed.
    pub killed: usize,
}

/// SIGTERM every descendant of `pid` (children first found, all at once),
/// wait up to `grace` for them to go, SIGKILL what is left.
pub fn stop_descendants(pid: u32, grace: Duration) -> Stopped {
    let targets = descendants(pid);
    for &p in &targets {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut left: Vec<i32> = targets.clone();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left.retain(|&p| alive(p));
    }
    for &p in &left {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    Stopped {
        total: targets.len(),
        killed: left.len(),
    }
}

/// Every living process below `pid` (children, their children, …), from
/// the parent PIDs in `/proc/<pid>/stat`, parents before their children.
pub fn descendants(pid: u32) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some((state, ppid)) = stat(p) {
                if state != 'Z' {
                    children.entry(ppid).or_default().push(p);
                }
            }
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![i32::try_from(pid).unwrap_or(i32::MAX)];
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// What [`interrupt_when_running`] saw.
#[derive(Debug)]
pub struct Interrupted {
    /// How the program ended.
    pub status: std::process::ExitStatus,
    /// The processes named as asked that ran under it when the signal went.
    pub were_running: Vec<i32>,
    /// Of those, the ones still alive 5 s after the program ended.
    pub still_running: Vec<i32>,
    /// [`Testbed::leftovers`] of its testbeds and those of the processes
    /// under it, after it ended.
    pub leftovers: Vec<String>,
}

/// For the tests of programs that call [`remove_on_signal`]: wait (up to
/// `within`) until `child` has a testbed and a descendant whose command
/// name is `comm` (`kxdp`: a node it started), then send it `signal` and
/// wait (up to 30 s) for it to end. `Err` says which wait ran out, or how
/// the program ended too early.
pub fn interrupt_when_running(
    child: &mut std::process::Child,
    comm: &str,
    signal: Signal,
    within: Duration,
) -> std::result::Result<Interrupted, String> {
    let pid = child.id();
    let named = |p: &i32| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
    };
    // The testbeds of `child` and of every process under it (`kxdp bench`
    // runs kxdp-bench, whose PID names them).
    let testbeds = |owners: &[u32]| -> std::result::Result<Vec<String>, String> {
        let mut found = Vec::new();
        for owner in owners {
            let prefix = format!("{}{owner}-", crate::NAME_FAMILY);
            found.extend(Testbed::leftovers(&prefix).map_err(|e| e.to_string())?);
        }
        Ok(found)
    };
    let deadline = Instant::now() + within;
    let (were_running, owners) = loop {
        let below = descendants(pid);
        let running: Vec<i32> = below.iter().copied().filter(named).collect();
        let mut owners = vec![pid];
        owners.extend(below.iter().filter_map(|&p| u32::try_from(p).ok()));
        if !running.is_empty() && !testbeds(&owners)?.is_empty() {
            break (running, owners);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "it ended ({status}) before a {comm} process ran under it"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("no {comm} process under it after {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    kill(
        Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
        signal,
    )
    .map_err(|e| format!("sending {signal}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("it still ran 30 s after {signal}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Orphans are reparented to init and reaped; give that a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut still_running = were_running.clone();
    while !still_running.is_empty() && Instant::now() < deadline {
        still_running.retain(|&p| alive(p));
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Interrupted {
        status,
        were_running,
        still_running,
        leftovers: testbeds(&owners)?,
    })
}

/// `(state, parent pid)` of `pid` from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `(state, parent pid)` from a `/proc/<pid>/stat` line: `pid (comm) state
/// ppid …`, where comm may hold spaces and parentheses, so the fields are
/// read after its last `)`.
fn parse_stat(text: &str) -> Option<(char, i32)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn stat_lines_are_read_after_the_command_name() {
        assert_eq!(parse_stat("42 (kxdp) S 7 42 42 0 -1"), Some(('S', 7)));
        // A command name with spaces and parentheses.
        assert_eq!(parse_stat("43 (a) b (c)) Z 1 43 43 0 -1"), Some(('Z', 1)));
        assert_eq!(parse_stat("44 (kxdp"), None);
        assert_eq!(parse_stat("45 (x) R"), None);
        assert_eq!(parse_stat("46 (x) R notanumber"), None);
    }

    #[test]
    fn descendants_are_found_and_stopped_grandchildren_included() {
        // A shell that starts a sleeping grandchild and sleeps itself.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60; wait"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sh");
        let shell = i32::try_from(child.id()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut below = Vec::new();
        while Instant::now() < deadline {
            below = descendants(std::process::id())
                .into_iter()
                .filter(|&p| p == shell || stat(p).is_some_and(|(_, pp)| pp == shell))
                .collect();
            if below.len() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(below.len(), 3, "the shell and its two sleeps: {below:?}");
        assert_eq!(below[0], shell, "parents come before their children");
        let grandchildren: Vec<i32> = below[1..].to_vec();
        let stopped = stop_descendants(u32::try_from(shell).unwrap(), Duration::from_secs(5));
        assert_eq!(
            stopped,
            Stopped {
                total: 2,
                killed: 0
            }
        );
        for p in grandchildren {
            assert!(!alive(p), "{p} still runs");
        }
        // The shell's own sleeps are gone, so it ends (or was waiting).
        let _ = child.kill();
        child.wait().expect("wait");
    }
}
