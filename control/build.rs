//! Generates the `kxdp.v1` gRPC code from `proto/` with the protoc that
//! protoc-bin-vendored ships, so the build needs nothing from the system.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    // prost-build runs the protoc that PROTOC names. Build scripts are single
    // threaded, so setting the variable here races with nothing.
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .btree_map(".")
        .file_descriptor_set_path(out.join("kxdp_v1_descriptor.bin"))
        .compile_protos(
            &[
                PathBuf::from("proto/kxdp/v1/model.proto"),
                PathBuf::from("proto/kxdp/v1/dataplane.proto"),
            ],
            &[PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
