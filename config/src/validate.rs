//! Validation of a parsed [`NodeConfig`](crate::NodeConfig).

use crate::{ConfigError, NodeConfig};

/// Check the whole configuration; the first problem found is returned with its field path.
pub fn validate(_config: &NodeConfig) -> Result<(), ConfigError> {
    // Filled in by the config work item.
    Ok(())
}
