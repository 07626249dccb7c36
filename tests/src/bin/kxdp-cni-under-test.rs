//! The `kxdp-cni` plugin, built inside the tests package so that the
//! end-to-end tests find it through `CARGO_BIN_EXE_kxdp-cni-under-test`
//! (Cargo only exposes binaries of the package under test). It is the same
//! code as the `kxdp-cni` binary: `kxdp_cni::entry::main`.

fn main() -> std::process::ExitCode {
    kxdp_cni::entry::main()
}
