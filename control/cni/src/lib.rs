//! `kxdp-cni`, the CNI plugin that makes kxdp a cluster's pod network (CNI
//! specification 1.0.0, accepting 0.4.0 and 1.1.0 configurations too):
//! the container runtime execs it with `CNI_*` environment variables and
//! the network configuration on stdin, and reads a result or an error as
//! JSON on stdout.
//!
//! ADD creates the pod's veth (the host end named `kx<11 hex of the
//! container id>`, one queue per kxdp worker), moves the other end into
//! the pod's namespace, addresses it from the IPAM plugin the
//! configuration names (`host-local`), and registers the pod and its
//! interface with the node's kxdp over the gRPC API socket, which attaches
//! the interface at run time. DEL undoes all that and is idempotent. CHECK,
//! STATUS and VERSION answer as the specification asks. `kxdp-cni install`
//! puts the plugin and its conflist on a node (the DaemonSet's init
//! container).
//!
//! Layout: [`env`] and [`config`] read the call, [`plugin`] sequences the
//! operations, [`link`] runs `ip` and `ethtool` (the only module that
//! touches interfaces and namespaces), [`ipam`] execs the delegate, [`kxdp`]
//! speaks gRPC, [`naming`] derives names and MACs, [`result`] and [`error`]
//! are the JSON that goes back.
//!
//! No unsafe code: namespaces are entered with nix's safe `setns`, links
//! are made by iproute2.

#![deny(unsafe_code)]

pub mod config;
pub mod entry;
pub mod env;
pub mod error;
pub mod install;
pub mod ipam;
pub mod kxdp;
pub mod link;
pub mod naming;
pub mod plugin;
pub mod result;
