//! Shared by kxdp's fuzz targets (`fuzz_targets/`): the fixed
//! configurations they run frames and updates against.

use kxdp_config::NodeConfig;
use kxdp_dataplane::tables::Tables;

/// The pipeline tests' node: two pods (ports 1 and 2, dual stack on one),
/// one remote node, tenant blue (VNI 100), VTEP 192.168.100.1 on port 0.
pub const NODE1_YAML: &str = include_str!("../../../dataplane/tests/fixtures/node1.yaml");

/// The example node shared by tenants blue (VNI 100) and red (VNI 200) with
/// overlapping addresses, extra routes to a node and to a blackhole.
pub const TWO_TENANTS_YAML: &str = include_str!("../../../config/examples/two-tenants.yaml");

/// Parse, validate and compile a fixture. Panics on a bad fixture: that is
/// a broken test set-up, not a finding.
pub fn compile_fixture(yaml: &str) -> Tables {
    let config = match NodeConfig::from_yaml_str(yaml) {
        Ok(config) => config,
        Err(e) => panic!("fixture does not validate: {e}"),
    };
    match Tables::compile(&config, 1) {
        Ok(tables) => tables,
        Err(e) => panic!("fixture does not compile: {e}"),
    }
}
