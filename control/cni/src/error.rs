//! The CNI error: a code from the specification's table (or a delegated
//! plugin's own code), a message and details, written to stdout as the
//! specification's error JSON (`{"cniVersion","code","msg","details"}`).

use serde::Serialize;

/// The error codes of the CNI specification (1.1.0, "Error"), and this
/// plugin's own (100 and up, as the specification reserves them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Incompatible CNI version.
    IncompatibleVersion = 1,
    /// Unsupported field in the network configuration.
    UnsupportedField = 2,
    /// Container unknown or does not exist.
    UnknownContainer = 3,
    /// Invalid necessary environment variables (`CNI_COMMAND`, …).
    InvalidEnvironment = 4,
    /// I/O failure (a command that wires the interface failed).
    Io = 5,
    /// Failed to decode content (stdin, a delegated plugin's output).
    Decode = 6,
    /// Invalid network configuration.
    InvalidNetworkConfig = 7,
    /// Try again later: a transient condition (kxdp unreachable).
    TryAgainLater = 11,
    /// The plugin is not available: kxdp is not ready (STATUS).
    PluginNotAvailable = 50,
    /// kxdp refused or failed a request (its message says why).
    KxdpRefused = 100,
    /// CHECK found the container's networking not as ADD left it.
    CheckFailed = 101,
}

impl ErrorCode {
    /// The number written in the error JSON.
    pub fn number(self) -> u32 {
        self as u32
    }
}

/// A failed CNI operation, as reported to the runtime.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    /// The error code: an [`ErrorCode`], or a delegated IPAM plugin's own.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Longer details (the underlying cause); may be empty.
    pub details: String,
}

/// The error JSON of the specification.
#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    /// An error with `code`, a message and details.
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code: code.number(),
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// An error with `code` and a message only.
    pub fn msg(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError::new(code, msg, "")
    }

    /// The same error with `context` in front of its message.
    pub fn context(mut self, context: &str) -> CniError {
        self.msg = format!("{context}: {}", self.msg);
        self
    }

    /// The specification's error JSON for a configuration of `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        let json = ErrorJson {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        };
        // Serializing a struct of strings and an integer cannot fail; keep a
        // hand-written fallback anyway rather than panic in a plugin.
        serde_json::to_string(&json).unwrap_or_else(|_| {
            format!(
                "{{\"cniVersion\":\"{cni_version}\",\"code\":{},\"msg\":\"error\"}}",
                self.code
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_are_the_specifications() {
        assert_eq!(ErrorCode::IncompatibleVersion.number(), 1);
        assert_eq!(ErrorCode::UnsupportedField.number(), 2);
        assert_eq!(ErrorCode::UnknownContainer.number(), 3);
        assert_eq!(ErrorCode::InvalidEnvironment.number(), 4);
        assert_eq!(ErrorCode::Io.number(), 5);
        assert_eq!(ErrorCode::Decode.number(), 6);
        assert_eq!(ErrorCode::InvalidNetworkConfig.number(), 7);
        assert_eq!(ErrorCode::TryAgainLater.number(), 11);
        assert_eq!(ErrorCode::PluginNotAvailable.number(), 50);
        assert!(ErrorCode::KxdpRefused.number() >= 100);
        assert!(ErrorCode::CheckFailed.number() >= 100);
    }

    #[test]
    fn error_json_has_the_specifications_fields() {
        let e = CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_NETNS is missing",
            "ADD needs the \"netns\" path",
        );
        let json: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cniVersion": "1.0.0",
                "code": 4,
                "msg": "CNI_NETNS is missing",
                "details": "ADD needs the \"netns\" path",
            })
        );
    }

    #[test]
    fn empty_details_are_left_out() {
        let e = CniError::msg(ErrorCode::TryAgainLater, "kxdp is not reachable");
        let json: serde_json::Value = serde_json::from_str(&e.to_json("0.4.0")).unwrap();
        assert!(json.get("details").is_none());
        assert_eq!(json["code"], 11);
        assert_eq!(e.to_string(), "kxdp is not reachable");
        let e = e.context("ADD");
        assert_eq!(e.msg, "ADD: kxdp is not reachable");
    }
}
