//! The `kxdp` binary.

fn main() -> anyhow::Result<()> {
    kxdp_control::cli::main()
}
