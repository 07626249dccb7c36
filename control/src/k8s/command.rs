//! `kxdp agent`: the options that say how to reach the API server, and the
//! hand-over from the command line to the node runtime (`kxdp agent` runs
//! the same node as `kxdp run`, with the agent applying through its store).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;

use super::agent::{Agent, AgentError, AgentOptions, ClusterAccess};
use crate::api::DesiredStateStore;

/// Why `kxdp agent` cannot start its agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentCommandError {
    /// kxdp agent: pass --kubeconfig FILE or --in-cluster
    #[error("kxdp agent: pass --kubeconfig FILE or --in-cluster")]
    NoClusterAccess,
    /// The agent did not start (its error as it is).
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// How `kxdp agent` reaches the Kubernetes API server.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct ClusterArgs {
    /// A kubeconfig file.
    #[arg(long, conflicts_with = "in_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// The pod's ServiceAccount (in the DaemonSet).
    #[arg(long)]
    pub in_cluster: bool,
    /// This node's name in Kubernetes; $NODE_NAME, else the configuration's
    /// node.name, unless set.
    #[arg(long)]
    pub node_name: Option<String>,
    /// How long to gather Kubernetes events into one table update, in
    /// milliseconds.
    #[arg(long, default_value_t = 2)]
    pub coalesce_ms: u64,
}

impl ClusterArgs {
    /// Where the API server is: `--kubeconfig`, `--in-cluster`, else
    /// $KUBECONFIG.
    pub fn access(&self) -> Result<ClusterAccess, AgentCommandError> {
        if let Some(path) = &self.kubeconfig {
            return Ok(ClusterAccess::Kubeconfig(path.clone()));
        }
        if self.in_cluster {
            return Ok(ClusterAccess::InCluster);
        }
        match std::env::var_os("KUBECONFIG") {
            Some(path) if !path.is_empty() => Ok(ClusterAccess::Kubeconfig(PathBuf::from(path))),
            _ => Err(AgentCommandError::NoClusterAccess),
        }
    }

    /// The node name: `--node-name`, else $NODE_NAME (the DaemonSet sets it
    /// from spec.nodeName), else none (the configuration's).
    pub fn node_name(&self) -> Option<String> {
        self.node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
    }
}

static REQUESTED: OnceLock<(ClusterAccess, ClusterArgs)> = OnceLock::new();

/// Ask the node that this process runs next to start the agent (`kxdp
/// agent`). Fails when the API server's whereabouts are not given.
pub fn request_agent(args: ClusterArgs) -> Result<(), AgentCommandError> {
    let access = args.access()?;
    let _ = REQUESTED.set((access, args));
    Ok(())
}

/// Start the agent over `store` when `kxdp agent` asked for it; `None` for
/// `kxdp run`.
pub fn start_requested_agent(
    store: &Arc<DesiredStateStore>,
) -> Result<Option<Agent>, AgentCommandError> {
    let Some((access, args)) = REQUESTED.get() else {
        return Ok(None);
    };
    let config = store.snapshot().config.clone();
    let mut options = AgentOptions::for_node(&config, access.clone(), args.node_name());
    options.coalesce = Duration::from_millis(args.coalesce_ms);
    tracing::info!(node = %options.node_name, access = ?access, "starting the Kubernetes agent");
    Ok(Some(Agent::start(Arc::clone(store), options)?))
}
