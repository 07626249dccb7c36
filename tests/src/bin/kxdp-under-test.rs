//! The `kxdp` command, built inside the tests package so that the
//! end-to-end tests find it through `CARGO_BIN_EXE_kxdp-under-test`
//! (Cargo only exposes binaries of the package under test). It is the same
//! code as the `kxdp` binary: `kxdp_cli::cli::main`.

fn main() -> anyhow::Result<()> {
    kxdp_cli::cli::main()
}
