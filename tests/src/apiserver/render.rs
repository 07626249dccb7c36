//! How objects are shown to a client that asks for a `meta.k8s.io/v1`
//! Table (kubectl get) or `PartialObjectMetadata` (kube-rs metadata
//! watchers): for responses (`http`) and watch events (`watch`) alike.

use std::sync::Arc;

use serde_json::{json, Value};

use super::resources::ResourceType;
use super::time::parse_rfc3339;

/// How a client asked for a `meta.k8s.io/v1` Table (kubectl get).
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// The full object in each row (`includeObject=Object`), not only its metadata.
    pub include_object: bool,
}

/// `object` reduced to its metadata, as a `meta.k8s.io/v1`
/// `PartialObjectMetadata`.
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// `objects` as a Table: NAME, the kind's printer columns, AGE.
pub fn table(
    rt: &ResourceType,
    objects: &[Arc<Value>],
    rv: Option<u64>,
    options: &TableOptions,
) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    for (name, _) in &rt.printer_columns {
        columns.push(
            json!({"name": name, "type": "string", "format": "", "description": "", "priority": 0}),
        );
    }
    columns.push(json!({"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0}));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
            for (_, path) in &rt.printer_columns {
                let pointer = path.trim_start_matches('.').replace('.', "/");
                let v = o.pointer(&format!("/{pointer}")).cloned().unwrap_or(json!("<none>"));
                cells.push(match v {
                    Value::String(_) => v,
                    other => json!(other.to_string()),
                });
            }
            let created = o
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339);
            cells.push(json!(created.map(|c| human_age(now.saturating_sub(c))).unwrap_or_else(|| "<unknown>".into())));
            let object = if options.include_object {
                (**o).clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = rv {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86_400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3600), "60m");
        assert_eq!(human_age(86_400 * 3), "3d");
    }
}
