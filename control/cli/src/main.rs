//! The `kxdp` binary.

fn main() -> anyhow::Result<()> {
    kxdp_cli::cli::main()
}
