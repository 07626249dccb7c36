//! Why a chain set does not compile: a capacity limit, the only refusal
//! left to the compiler. Everything else that could make a model
//! inconsistent (unknown tenants, interfaces or services, a chain name
//! twice, an interface two external hops return on, a second per-flow
//! function in a chain, duplicate pod addresses or service ports, an
//! endpoint of the other family) is refused by the configuration's
//! validation (`kxdp_config::NodeConfig::validate`) with its field path,
//! before anything compiles. Each error names where the limit was hit as
//! a structured [`FieldPath`] ([`ChainError::path`]) and says which limit
//! ([`ChainError::reason`]); its message is the two joined.

use kxdp_config::{FieldPath, PathItem};

/// A refusal to compile a [`crate::ChainSet`]; the running set stays as it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}", self.message())]
pub enum ChainError {
    /// More endpoints than a Maglev table can index (65 535); the service,
    /// `namespace/name`.
    TooManyEndpoints(String),
    /// More chains, stages, identities, interfaces or service ports than
    /// the compiled indexes hold.
    TooMany(&'static str),
}

impl ChainError {
    /// Where the limit was hit: the service's endpoints
    /// (`services["default/web"].endpoints`), or the chains as a whole.
    pub fn path(&self) -> FieldPath {
        match self {
            ChainError::TooManyEndpoints(service) => {
                FieldPath::item("services", PathItem::Key(service.clone()), ".endpoints")
            }
            ChainError::TooMany(_) => FieldPath::section("chains"),
        }
    }

    /// Which limit, at [`ChainError::path`].
    pub fn reason(&self) -> String {
        match self {
            ChainError::TooManyEndpoints(_) => "too many endpoints".into(),
            ChainError::TooMany(what) => format!("too many {what}"),
        }
    }

    /// The message: `path: reason`, or the reason alone for a limit of the
    /// whole set.
    fn message(&self) -> String {
        match self {
            ChainError::TooMany(_) => self.reason(),
            ChainError::TooManyEndpoints(_) => format!("{}: {}", self.path(), self.reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_join_the_path_and_the_reason() {
        let e = ChainError::TooManyEndpoints("default/db".into());
        assert_eq!(
            e.path(),
            FieldPath::item("services", PathItem::Key("default/db".into()), ".endpoints")
        );
        assert_eq!(e.reason(), "too many endpoints");
        assert_eq!(
            e.to_string(),
            "services[\"default/db\"].endpoints: too many endpoints"
        );
        assert_eq!(
            ChainError::TooMany("chains").path(),
            FieldPath::section("chains")
        );
        assert_eq!(ChainError::TooMany("chains").to_string(), "too many chains");
    }
}
