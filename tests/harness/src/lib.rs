//! kxdp's test harness: what every privileged test (network namespaces,
//! veths, XDP, AF_XDP) shares.
//!
//! **Skips are skips.** A crate with privileged tests calls
//! [`emit_privileged_cfg`] from its build script, which sets
//! `cfg(kxdp_privileged)` when the build runs as root or with `CI=true`,
//! and marks each privileged test
//!
//! ```text
//! #[test]
//! #[cfg_attr(not(kxdp_privileged), ignore = "needs root (network namespaces, XDP, AF_XDP)")]
//! fn a_privileged_test() {
//!     privileged_test("a_privileged_test");
//!     …
//! }
//! ```
//!
//! so that without root `cargo test` lists it as *ignored* (never as
//! passed), and with root or in CI it runs; [`privileged_test`] then fails
//! it loudly, naming what is missing, if it cannot run after all (built as
//! root, run as a user; CI without root). Run ignored ones anyway with
//! `cargo test -- --include-ignored` as root; `KXDP_PRIVILEGED=1` at build
//! time sets the cfg too.
//!
//! **One namespace guard.** [`NetnsGuard`] creates a named network
//! namespace (`ip netns add`) and deletes it on drop; [`enter_netns`] moves
//! the calling thread into one. [`stop_creating_namespaces`] closes it for
//! good, so that a process cleaning up after a signal knows that no new
//! namespace appears behind its sweep.

use std::path::Path;
use std::process::Command;
use std::sync::RwLock;

/// Held shared while a namespace is made, taken for good by
/// [`stop_creating_namespaces`].
static CREATION: RwLock<()> = RwLock::new(());

/// Where `ip netns add` keeps its named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The cfg a privileged build sets.
pub const PRIVILEGED_CFG: &str = "kxdp_privileged";

/// The effective user id of this process (from `/proc/self/status`).
pub fn euid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Running under CI (`CI=true`): privileged tests must run there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// For a build script: declare `cfg(kxdp_privileged)` and set it when
/// the build runs as root, with `CI=true` or with `KXDP_PRIVILEGED=1`.
pub fn emit_privileged_cfg() {
    println!("cargo::rustc-check-cfg=cfg({PRIVILEGED_CFG})");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=KXDP_PRIVILEGED");
    let asked = std::env::var("KXDP_PRIVILEGED").is_ok_and(|v| v == "1");
    if in_ci() || asked || euid() == Some(0) {
        println!("cargo::rustc-cfg={PRIVILEGED_CFG}");
    }
}

/// Why privileged tests cannot run here (`None`: they can): not root.
pub fn missing_privileges() -> Option<String> {
    match euid() {
        Some(0) => None,
        Some(uid) => Some(format!(
            "not root (effective uid {uid}; network namespaces, XDP and AF_XDP need CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF)"
        )),
        None => Some("cannot read the effective uid from /proc/self/status".into()),
    }
}

/// The first line of a privileged test (see the crate documentation):
/// returns when the test can run.
///
/// # Panics
///
/// When it cannot (not root), naming why: a privileged test that is not
/// ignored must run.
pub fn privileged_test(test: &str) {
    if let Some(why) = missing_privileges() {
        panic!(
            "{test}: privileged test cannot run: {why}{}",
            if in_ci() {
                " (CI=true)"
            } else {
                " (built as root or with CI=true / KXDP_PRIVILEGED=1, run without root?)"
            }
        );
    }
}

/// A named network namespace (`ip netns add NAME`), deleted on drop.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Create namespace `name` (its loopback up).
    /// Blocks for good once [`stop_creating_namespaces`] has run.
    pub fn create(name: &str) -> Result<NetnsGuard, String> {
        let _open = CREATION
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        run("ip", &["netns", "add", name])?;
        let guard = NetnsGuard {
            name: name.to_string(),
        };
        run("ip", &["-n", name, "link", "set", "lo", "up"])?;
        Ok(guard)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // Quiet when it is gone already (a process cleaning up after a
        // signal removes its namespaces from another thread).
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            if !Path::new(NETNS_RUN_DIR).join(&self.name).exists() {
                return;
            }
            eprintln!(
                "harness: cannot delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

/// From now on, [`NetnsGuard::create`] blocks for the rest of the process's life;
/// returns once no creation is under way. For a process about to remove its
/// namespaces and exit (on a signal): nothing new appears behind its sweep.
pub fn stop_creating_namespaces() {
    let closed = CREATION
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Never unlocked: the process exits after its sweep.
    std::mem::forget(closed);
}

/// Move the calling thread into network namespace `name` (one made with
/// `ip netns add`, under `/run/netns`).
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let file = std::fs::File::open(&path)?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

/// Run `program args…`; its stderr as the error when it fails.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_uid() {
        let uid = euid().expect("an effective uid");
        assert_eq!(missing_privileges().is_none(), uid == 0);
    }

    #[test]
    fn a_privileged_test_without_privileges_fails_loudly() {
        if euid() == Some(0) {
            privileged_test("as root: returns");
            return;
        }
        let panicked = std::panic::catch_unwind(|| privileged_test("x")).unwrap_err();
        let message = panicked
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.contains("x: privileged test cannot run: not root"),
            "{message}"
        );
    }
}
