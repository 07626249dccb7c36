//! The testbed's error type: every failure names what was being done (the
//! command line, the namespace, the node) and carries what the system said.

use std::path::PathBuf;
use std::time::Duration;

/// Why a testbed operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// An external command (`ip`, `bridge`, `ethtool`, `ping`) exited with a
    /// failure status.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The full command line.
        command: String,
        /// The exit status, as the system printed it.
        status: String,
        /// What the command wrote on stderr (trimmed).
        stderr: String,
    },
    /// A tool the testbed needs is not installed (not found on `PATH`).
    #[error("`{tool}` is not installed (needed by the testbed: {why})")]
    MissingTool {
        /// The program name.
        tool: String,
        /// What it is needed for, and which package provides it.
        why: String,
    },
    /// The topology specification cannot be built.
    #[error("invalid topology: {0}")]
    Spec(String),
    /// A node, pod or namespace of that name is not part of the testbed.
    #[error("no {what} named {name:?} in this testbed")]
    NotFound {
        /// "node", "pod", ...
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A network namespace could not be created.
    #[error("network namespace: {0}")]
    Netns(String),
    /// A thread running inside a namespace panicked.
    #[error("thread in network namespace {netns:?} panicked: {message}")]
    ThreadPanicked {
        /// The namespace name.
        netns: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// kxdp did not attach XDP to all of its interfaces in time.
    #[error("kxdp on node {node:?} not ready after {waited:?}: {missing}\n--- log tail ({log}) ---\n{log_tail}")]
    NotReady {
        /// The node.
        node: String,
        /// How long the testbed waited.
        waited: Duration,
        /// What was still missing (interfaces without XDP).
        missing: String,
        /// The log file.
        log: PathBuf,
        /// The last lines of the log.
        log_tail: String,
    },
    /// kxdp exited while the testbed waited for it to become ready.
    #[error("kxdp on node {node:?} exited early ({status})\n--- log tail ({log}) ---\n{log_tail}")]
    KxdpExited {
        /// The node.
        node: String,
        /// Its exit status.
        status: String,
        /// The log file.
        log: PathBuf,
        /// The last lines of the log.
        log_tail: String,
    },
    /// Traffic did not behave: corrupted or short data, a peer that closed.
    #[error("traffic check failed: {0}")]
    Traffic(String),
    /// kxdp's API refused or failed a request the testbed made.
    #[error("kxdp API: {0}")]
    Api(String),
    /// Something the testbed waited for did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A generated kxdp configuration does not parse or validate.
    #[error("generated kxdp configuration refused: {0}")]
    Config(#[from] kxdp_config::ConfigError),
}

impl TestbedError {
    /// An [`TestbedError::Io`] with its context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TestbedError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The testbed's result type.
pub type Result<T, E = TestbedError> = std::result::Result<T, E>;
