//! The `kxdp-cni` binary: a CNI plugin run by the container runtime (see
//! the library), or `kxdp-cni install …` in the DaemonSet's init container.

fn main() -> std::process::ExitCode {
    kxdp_cni::entry::main()
}
