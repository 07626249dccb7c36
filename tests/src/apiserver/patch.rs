//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! Kubernetes strategic merge patch.
//!
//! Strategic merge is a merge patch plus list merging by key. The real server
//! knows each built-in type's merge keys from its Go structs; this one learns
//! them from the patch itself: kubectl sends a `$setElementOrder/FIELD` list
//! with the merge key of every element for each list it merges, so a list
//! with such a directive is merged element by element on that key (or as a
//! set, for lists of scalars), and a list without one is replaced, as for the
//! atomic lists of our kinds. `$patch: delete|replace`, `$retainKeys` and
//! `$deleteFromPrimitiveList/FIELD` are honoured.

use serde_json::{Map, Value};

use super::error::ApiError;

/// Apply a JSON merge patch to `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Apply a JSON patch (a list of operations) to `target`.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch.as_array().ok_or_else(|| {
        ApiError::bad_request("json patch: the body must be a JSON array of operations")
    })?;
    for (i, op) in ops.iter().enumerate() {
        let field = |name: &str| -> Result<&str, ApiError> {
            op.get(name).and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request(format!("json patch: operation [{i}]: missing {name:?}"))
            })
        };
        let value = || -> Result<Value, ApiError> {
            op.get("value").cloned().ok_or_else(|| {
                ApiError::bad_request(format!("json patch: operation [{i}]: missing \"value\""))
            })
        };
        let path = field("path")?;
        match field("op")? {
            "add" => add(target, path, value()?, i)?,
            "remove" => {
                remove(target, path, i)?;
            }
            "replace" => {
                remove(target, path, i)?;
                add(target, path, value()?, i)?;
            }
            "move" => {
                let v = remove(target, field("from")?, i)?;
                add(target, path, v, i)?;
            }
            "copy" => {
                let from = field("from")?;
                let v = target
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| missing(from, i))?;
                add(target, path, v, i)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("json patch: operation [{i}]: test failed at {path:?}"),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "json patch: operation [{i}]: unknown op {other:?}"
                )))
            }
        }
    }
    Ok(())
}

fn missing(path: &str, i: usize) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("json patch: operation [{i}]: no value at path {path:?}"),
    )
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_parent(path: &str, i: usize) -> Result<(&str, String), ApiError> {
    match path.rfind('/') {
        Some(at) => Ok((&path[..at], unescape(&path[at + 1..]))),
        None => Err(ApiError::bad_request(format!(
            "json patch: operation [{i}]: path {path:?} must start with '/'"
        ))),
    }
}

fn add(target: &mut Value, path: &str, value: Value, i: usize) -> Result<(), ApiError> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_parent(path, i)?;
    let parent = target.pointer_mut(parent).ok_or_else(|| missing(path, i))?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            match last.parse::<usize>() {
                Ok(n) if n <= a.len() => {
                    a.insert(n, value);
                    Ok(())
                }
                _ => Err(missing(path, i)),
            }
        }
        _ => Err(missing(path, i)),
    }
}

fn remove(target: &mut Value, path: &str, i: usize) -> Result<Value, ApiError> {
    let (parent, last) = split_parent(path, i)?;
    let parent = target.pointer_mut(parent).ok_or_else(|| missing(path, i))?;
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(|| missing(path, i)),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(n) if n < a.len() => Ok(a.remove(n)),
            _ => Err(missing(path, i)),
        },
        _ => Err(missing(path, i)),
    }
}

/// Apply a strategic merge patch to `target` (see the module comment).
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = patch.clone();
            strip_directives(&mut replacement);
            *target = replacement;
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "strategic merge patch: unknown $patch directive {other:?}"
            )))
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()) || p.contains_key(k));
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let order = p
            .get(&format!("$setElementOrder/{k}"))
            .and_then(Value::as_array);
        match (v, order) {
            (Value::Array(items), Some(order)) => {
                let current = t.remove(k).unwrap_or(Value::Array(Vec::new()));
                let merged = merge_list(current, items, order)?;
                t.insert(k.clone(), merged);
            }
            (Value::Array(items), None) => {
                let mut items = Value::Array(items.clone());
                strip_directives(&mut items);
                t.insert(k.clone(), items);
            }
            (Value::Object(_), _) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(slot, v)?;
                if slot.is_null() {
                    t.remove(k);
                }
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    // Lists only reordered, or only pruned of scalars, carry no element.
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if !p.contains_key(field) {
                let current = t.remove(field).unwrap_or(Value::Array(Vec::new()));
                let empty: Vec<Value> = Vec::new();
                let merged = merge_list(current, &empty, v.as_array().map_or(&empty, |a| a))?;
                t.insert(field.to_string(), merged);
            }
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(gone)) = (t.get_mut(field), v.as_array()) {
                list.retain(|x| !gone.contains(x));
            }
        }
    }
    Ok(())
}

/// The merge key of a list, from the keys of its `$setElementOrder` entries.
fn merge_key(order: &[Value]) -> Option<String> {
    order.iter().find_map(|e| {
        e.as_object()
            .and_then(|m| m.keys().find(|k| !k.starts_with('$')).cloned())
    })
}

fn merge_list(current: Value, items: &[Value], order: &[Value]) -> Result<Value, ApiError> {
    let current = match current {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    let Some(key) = merge_key(order) else {
        // A set of scalars: the union, in the given order first.
        let mut out: Vec<Value> = order.to_vec();
        for v in current.into_iter().chain(items.iter().cloned()) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        return Ok(Value::Array(out));
    };
    let id = |v: &Value| v.get(&key).cloned();
    let mut merged: Vec<Value> = current;
    for item in items {
        let Some(item_id) = id(item) else {
            return Err(ApiError::bad_request(format!(
                "strategic merge patch: a list element lacks its merge key {key:?}"
            )));
        };
        let existing = merged.iter().position(|m| id(m).as_ref() == Some(&item_id));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(at) = existing {
                merged.remove(at);
            }
            continue;
        }
        match existing {
            Some(at) => strategic_merge(&mut merged[at], item)?,
            None => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item)?;
                merged.push(fresh);
            }
        }
    }
    // Order: as $setElementOrder says; elements it does not name (kept from
    // the server side) follow in their old order.
    let mut out = Vec::with_capacity(merged.len());
    for o in order {
        if let Some(want) = id(o) {
            if let Some(at) = merged.iter().position(|m| id(m).as_ref() == Some(&want)) {
                out.push(merged.remove(at));
            }
        }
    }
    out.extend(merged);
    Ok(Value::Array(out))
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 2, 3]});
        json_patch(
            &mut t,
            &json!([
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
                {"op": "remove", "path": "/l/0"},
                {"op": "add", "path": "/l/-", "value": 4},
                {"op": "copy", "from": "/l/0", "path": "/first"},
                {"op": "move", "from": "/first", "path": "/moved"},
                {"op": "test", "path": "/moved", "value": 2},
            ]),
        )
        .expect("patch");
        assert_eq!(
            t,
            json!({"metadata": {"labels": {"a": "9", "b/c": "2"}}, "l": [2, 3, 4], "moved": 2})
        );
        let e = json_patch(
            &mut t,
            &json!([{"op": "test", "path": "/moved", "value": 3}]),
        )
        .expect_err("test op fails");
        assert_eq!(e.code, 422);
        let e =
            json_patch(&mut t, &json!([{"op": "remove", "path": "/nope"}])).expect_err("missing");
        assert!(e.message.contains("/nope"), "{}", e.message);
    }

    #[test]
    fn strategic_merge_lists_by_key() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "finalizers": ["f1"]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                "containers": [
                    {"name": "a", "image": "a:2"},
                    {"name": "b", "$patch": "delete"},
                    {"name": "c", "image": "c:1"}
                ],
                "$setElementOrder/finalizers": ["f2", "f1"],
                "finalizers": ["f2"]
            }}),
        )
        .expect("patch");
        assert_eq!(
            t,
            json!({"spec": {"containers": [
                {"name": "c", "image": "c:1"},
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}]}
            ], "finalizers": ["f2", "f1"]}})
        );
        // Without a directive a list is replaced; null deletes a field.
        strategic_merge(
            &mut t,
            &json!({"spec": {"containers": [{"name": "d"}], "finalizers": null}}),
        )
        .expect("patch");
        assert_eq!(t, json!({"spec": {"containers": [{"name": "d"}]}}));
        strategic_merge(&mut t, &json!({"spec": {"$patch": "replace", "x": 1}})).expect("replace");
        assert_eq!(t, json!({"spec": {"x": 1}}));
    }
}
