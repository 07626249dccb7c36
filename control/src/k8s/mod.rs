//! The Kubernetes agent: watches the API server and programs the node's
//! dataplane through the desired-state store.
//!
//! [`index`] is the pure part (Kubernetes objects in, the model out,
//! unit-tested without I/O); [`agent`] wires kube-runtime watchers to it
//! and applies the model (a resync after each full list, deltas between).
//! The conventions between Kubernetes and the model (labels, annotations,
//! the CNI plugin's part) are in [`index`]'s documentation.

pub mod agent;
pub mod command;
pub mod index;

pub use agent::{Agent, AgentError, AgentOptions, AgentStats, ClusterAccess, LatencySummary};
pub use command::{request_agent, start_requested_agent, AgentCommandError, ClusterArgs};
pub use index::{Index, IndexSettings, Model, Resource, Skipped, WatchedKind};
