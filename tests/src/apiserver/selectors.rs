//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!` not exists)
//! and field selectors (`=`, `==`, `!=` on the fields a kind allows), parsed
//! from the query string and matched against stored JSON objects.

use serde_json::Value;

use super::error::ApiError;
use super::resources::ResourceType;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (true when the label is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (true when the label is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A label selector: every requirement must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parse the `labelSelector` query parameter.
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the object's `metadata.labels` satisfy the selector.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::DoesNotExist(k) => label(k).is_none(),
        })
    }

    /// Whether the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn bad_label(text: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: labelSelector {text:?}: {why}"
    ))
}

/// Split at commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, ApiError> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(bad_label(text, "unbalanced ')'"));
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(bad_label(text, "unbalanced '('"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn check_key(key: &str, whole: &str) -> Result<String, ApiError> {
    let key = key.trim();
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    });
    if name_ok && prefix_ok {
        Ok(key.to_string())
    } else {
        Err(bad_label(whole, &format!("invalid label key {key:?}")))
    }
}

fn check_value(value: &str, whole: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(value.to_string())
    } else {
        Err(bad_label(whole, &format!("invalid label value {value:?}")))
    }
}

fn parse_set(text: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let text = text.trim();
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| bad_label(whole, "expected '(' value, ... ')'"))?;
    inner.split(',').map(|v| check_value(v, whole)).collect()
}

fn parse_requirement(part: &str) -> Result<LabelRequirement, ApiError> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelRequirement::DoesNotExist(check_key(key, part)?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            check_key(k, part)?,
            check_value(v, part)?,
        ));
    }
    if let Some((k, v)) = part.split_once("==") {
        return Ok(LabelRequirement::Equals(
            check_key(k, part)?,
            check_value(v, part)?,
        ));
    }
    if let Some((k, v)) = part.split_once('=') {
        return Ok(LabelRequirement::Equals(
            check_key(k, part)?,
            check_value(v, part)?,
        ));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    match words.next().map(str::trim_start) {
        None => Ok(LabelRequirement::Exists(check_key(key, part)?)),
        Some(rest) => {
            if let Some(set) = rest.strip_prefix("notin") {
                Ok(LabelRequirement::NotIn(
                    check_key(key, part)?,
                    parse_set(set, part)?,
                ))
            } else if let Some(set) = rest.strip_prefix("in") {
                Ok(LabelRequirement::In(
                    check_key(key, part)?,
                    parse_set(set, part)?,
                ))
            } else {
                Err(bad_label(
                    part,
                    "expected one of '=', '==', '!=', 'in', 'notin'",
                ))
            }
        }
    }
}

/// One requirement of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path (`spec.nodeName`).
    pub field: String,
    /// Value compared with.
    pub value: String,
    /// `!=` rather than `=`.
    pub negated: bool,
}

/// A field selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse the `fieldSelector` query parameter for objects of type `rt`:
    /// fields other than metadata.name, metadata.namespace and the kind's
    /// selectable fields are refused, as the real server does.
    pub fn parse(text: &str, rt: &ResourceType) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid fieldSelector {text:?}: {part:?} is not of the form field=value or field!=value"
                )));
            };
            let field = field.trim();
            let allowed = field == "metadata.name"
                || (field == "metadata.namespace" && rt.namespaced)
                || rt.selectable_fields.iter().any(|f| f == field);
            if !allowed {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field} (fieldSelector for {})",
                    rt.qualified_plural()
                )));
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                value: value.trim().to_string(),
                negated,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the object's fields satisfy the selector. A missing field
    /// reads as the empty string (`false` for a missing boolean).
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let mut v = Some(object);
            for part in r.field.split('.') {
                v = v.and_then(|v| v.get(part));
            }
            let actual = match v {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ if r.field.ends_with("unschedulable") || r.field.ends_with("hostNetwork") => {
                    "false".to_string()
                }
                _ => String::new(),
            };
            (actual == r.value) != r.negated
        })
    }

    /// The value a `metadata.namespace=` requirement pins, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == "metadata.namespace" && !r.negated)
            .map(|r| r.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "labels": labels},
               "spec": {"nodeName": "node-1"}})
    }

    #[test]
    fn label_operators() {
        let o = pod(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).expect(s).matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web,tier=front"));
        assert!(!m("app=db"));
        assert!(m("app!=db"));
        assert!(m("missing!=x"));
        assert!(m("app in (db, web)"));
        assert!(!m("app in (db)"));
        assert!(m("app notin (db)"));
        assert!(m("missing notin (db)"));
        assert!(!m("app notin (web,db)"));
        assert!(m("tier"));
        assert!(!m("missing"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app in (web),!missing,tier"));
        assert!(m(""));
    }

    #[test]
    fn label_errors_name_the_selector() {
        for bad in [
            "app in (web",
            "app in web",
            "a b c",
            "-bad=x",
            "app=in valid",
        ] {
            let e = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(e.code, 400, "{bad}");
            assert!(e.message.contains("labelSelector"), "{}", e.message);
        }
    }

    #[test]
    fn fields() {
        let reg = super::super::resources::Registry::builtin();
        let pods = reg.by_plural("v1", "pods").expect("pods");
        let o = pod(json!({}));
        let m = |s: &str| FieldSelector::parse(s, pods).expect(s).matches(&o);
        assert!(m("spec.nodeName=node-1"));
        assert!(!m("spec.nodeName=node-2"));
        assert!(m("spec.nodeName!=node-2,metadata.name=p"));
        assert!(m("metadata.namespace==default"));
        assert!(m("status.phase="));
        let e = FieldSelector::parse("spec.bogus=1", pods).expect_err("bogus");
        assert!(e.message.contains("spec.bogus"), "{}", e.message);
        let nodes = reg.by_plural("v1", "nodes").expect("nodes");
        assert!(FieldSelector::parse("spec.nodeName=x", nodes).is_err());
        assert!(FieldSelector::parse("spec.unschedulable=false", nodes)
            .expect("unschedulable")
            .matches(&json!({"metadata": {"name": "n"}})));
    }
}
