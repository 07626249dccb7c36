//! Generates the `kxdp.v1` gRPC client (no server) from kxdp-control's proto
//! files (`../proto`), with the protoc that protoc-bin-vendored ships.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    // prost-build runs the protoc that PROTOC names. Build scripts are single
    // threaded, so setting the variable here races with nothing.
    std::env::set_var("PROTOC", protoc);
    let proto = PathBuf::from("../proto");
    tonic_prost_build::configure()
        .build_server(false)
        .btree_map(".")
        .compile_protos(
            &[
                proto.join("kxdp/v1/model.proto"),
                proto.join("kxdp/v1/dataplane.proto"),
            ],
            &[proto.clone(), well_known],
        )?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
