//! Config parsing and validation: `NodeConfig::from_yaml_str` on arbitrary
//! text.
//!
//! Checks, besides "never panics": any configuration that validates also
//! compiles into tables (`Tables::compile`), so no source of configuration
//! can reach the dataplane with something validation let through but the
//! compiler refuses; and it survives a round trip through its YAML form
//! (`kxdp get … -o yaml` fed back to `kxdp apply`).
#![no_main]

use kxdp_config::NodeConfig;
use kxdp_dataplane::tables::Tables;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    // Parsing without validation must not panic either.
    let _ = NodeConfig::parse_yaml(yaml);
    let Ok(config) = NodeConfig::from_yaml_str(yaml) else {
        return;
    };
    if let Err(e) = Tables::compile(&config, 1) {
        panic!("a configuration that validates does not compile: {e}\n{yaml}");
    }
    let again = config.to_yaml();
    match NodeConfig::from_yaml_str(&again) {
        Ok(parsed) => assert_eq!(parsed, config, "the YAML round trip changed it:\n{again}"),
        Err(e) => panic!("the YAML form does not parse back: {e}\n{again}"),
    }
});
