//! Sets `cfg(kxdp_privileged)` for the privileged tests when built as
//! root or with `CI=true` (see `kxdp_harness`), and `cfg(kxdp_testpmd)` /
//! `cfg(kxdp_ovs)` when DPDK's testpmd / Open vSwitch are installed
//! (`scripts/setup-bench`): the tests that need them are listed as ignored
//! without them, not passed.

use std::path::Path;

fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| Path::new(&dir).join(program).is_file())
    })
}

fn main() {
    kxdp_harness::emit_privileged_cfg();
    println!("cargo::rustc-check-cfg=cfg(kxdp_testpmd)");
    println!("cargo::rustc-check-cfg=cfg(kxdp_ovs)");
    println!("cargo::rerun-if-env-changed=PATH");
    if installed("dpdk-testpmd") {
        println!("cargo::rustc-cfg=kxdp_testpmd");
    }
    if installed("ovs-vswitchd") && installed("ovs-vsctl") {
        println!("cargo::rustc-cfg=kxdp_ovs");
    }
}
