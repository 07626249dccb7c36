//! Configuration errors. Every validation error names the field path.

use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse, at no particular field (syntax, a missing
    /// top-level section). A value that does not parse at a field is
    /// [`ConfigError::Invalid`].
    #[error("{0}")]
    Parse(String),
    /// A field holds a value that does not parse or that the model refuses:
    /// `field` is its path, for example `pods[3].ip`.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. `pods[3].ip`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A validation error for the field at `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field path, for errors at a field (validation, and parse errors at a field).
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The field path as a structure (section, item, rest), for errors at
    /// a field: what an API turns into its own path (the n-th item of a
    /// request, or an item by key) without reading strings back.
    pub fn path(&self) -> Option<FieldPath> {
        self.field().map(FieldPath::parse)
    }
}

/// Where a field is in a node configuration: a top-level section, the
/// list item in it (by position or key) and the rest of the path.
/// `pods[3].ip` is section `pods`, item 3, rest `.ip`; `node.name` is
/// section `node.name` with no item. Written as validation writes its
/// paths ([`std::fmt::Display`]); [`FieldPath::parse`] reads them back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    /// The top-level section (`pods`, `chains`…), or the whole path of a
    /// field outside any list.
    pub section: String,
    /// The list item the field is in, if any.
    pub item: Option<PathItem>,
    /// The rest of the path after the item (`.ip`, `.functions[1]`), or
    /// empty.
    pub rest: String,
}

/// A list item of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathItem {
    /// The n-th item (from 0).
    Index(usize),
    /// The item with this key (a name, `namespace/name`, a prefix).
    Key(String),
}

impl FieldPath {
    /// The field `rest` of the item `item` of `section`.
    pub fn item(section: impl Into<String>, item: PathItem, rest: impl Into<String>) -> Self {
        FieldPath {
            section: section.into(),
            item: Some(item),
            rest: rest.into(),
        }
    }

    /// A path outside any list item.
    pub fn section(section: impl Into<String>) -> Self {
        FieldPath {
            section: section.into(),
            item: None,
            rest: String::new(),
        }
    }

    /// Read a path written by [`std::fmt::Display`] or by validation
    /// (`pods[3].ip`, `chains["web"].functions[1]`, `node.name`); anything
    /// else is a section of its own.
    pub fn parse(path: &str) -> FieldPath {
        let parsed = path.split_once('[').and_then(|(section, rest)| {
            if let Some(quoted) = rest.strip_prefix('"') {
                let (key, rest) = quoted.split_once("\"]")?;
                return Some(FieldPath::item(
                    section,
                    PathItem::Key(key.to_string()),
                    rest,
                ));
            }
            let (index, rest) = rest.split_once(']')?;
            let index = index.parse().ok()?;
            Some(FieldPath::item(section, PathItem::Index(index), rest))
        });
        parsed.unwrap_or_else(|| FieldPath::section(path))
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.item {
            None => write!(f, "{}{}", self.section, self.rest),
            Some(PathItem::Index(i)) => write!(f, "{}[{i}]{}", self.section, self.rest),
            Some(PathItem::Key(key)) => write!(f, "{}[{key:?}]{}", self.section, self.rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for text in [
            "pods[3].ip",
            "chains[\"web\"].functions[1]",
            "services[\"default/db\"].ports",
            "node.name",
            "interfaces[0]",
            "workers.cpus",
        ] {
            let path = FieldPath::parse(text);
            assert_eq!(path.to_string(), text, "{path:?}");
        }
        assert_eq!(
            FieldPath::parse("pods[3].ip"),
            FieldPath::item("pods", PathItem::Index(3), ".ip")
        );
        assert_eq!(
            FieldPath::parse("chains[\"a/b\"].name"),
            FieldPath::item("chains", PathItem::Key("a/b".into()), ".name")
        );
        // Not a list item: one section.
        assert_eq!(
            FieldPath::parse("pods[x].ip"),
            FieldPath::section("pods[x].ip")
        );
        assert_eq!(
            ConfigError::invalid("routes[2].via", "bad").path(),
            Some(FieldPath::item("routes", PathItem::Index(2), ".via"))
        );
    }
}
