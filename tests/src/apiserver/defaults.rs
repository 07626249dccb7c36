//! What the real API server's defaulting and admission add to objects,
//! where clients see it: the `kubernetes.io/metadata.name` label and
//! `Active` phase of a Namespace; a Service's type (ClusterIP) and its
//! cluster IP, allocated from 10.96.0.0/12 when absent, unique and
//! immutable.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::error::ApiError;
use super::resources::ResourceType;

/// The stored Services, by (namespace, name).
pub type Services = BTreeMap<(String, String), Arc<Value>>;

/// Default the fields of `object` (named `name`, replacing `current` on
/// an update) as the real server does (see the module comment);
/// `services` are those stored.
pub fn apply(
    rt: &ResourceType,
    name: &str,
    object: &mut Value,
    current: Option<&Value>,
    services: Option<&Services>,
) -> Result<(), ApiError> {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            if !object["metadata"]
                .get("labels")
                .is_some_and(Value::is_object)
            {
                object["metadata"]["labels"] = json!({});
            }
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if object.pointer("/status/phase").is_none() {
                object["status"] = json!({"phase": "Active"});
            }
        }
        ("", "services") => {
            if !object.get("spec").is_some_and(Value::is_object) {
                object["spec"] = json!({});
            }
            let spec = &mut object["spec"];
            if spec.get("type").and_then(Value::as_str).is_none() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["type"] == "ExternalName" {
                return Ok(());
            }
            let old = current
                .and_then(|c| c.pointer("/spec/clusterIP"))
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty());
            let asked = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty())
                .map(str::to_string);
            let ip = match (old, asked) {
                (Some(old), Some(asked)) if old != asked => {
                    return Err(ApiError::invalid(
                        &format!("Service {name:?}"),
                        &format!("spec.clusterIP: Invalid value: {asked:?}: field is immutable"),
                    ))
                }
                (Some(old), _) => old.to_string(),
                (None, Some(asked)) => {
                    if asked != "None" && cluster_ip_used(services, &asked, name) {
                        return Err(ApiError::invalid(
                            &format!("Service {name:?}"),
                            &format!("spec.clusterIPs: Invalid value: [{asked:?}]: failed to allocate IP {asked}: provided IP is already allocated"),
                        ));
                    }
                    asked
                }
                (None, None) => free_cluster_ip(services, name)?,
            };
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
        }
        _ => {}
    }
    Ok(())
}

fn cluster_ip_used(services: Option<&Services>, ip: &str, except: &str) -> bool {
    services.is_some_and(|m| {
        m.iter().any(|((_, n), s)| {
            n != except && s.pointer("/spec/clusterIP").and_then(Value::as_str) == Some(ip)
        })
    })
}

fn free_cluster_ip(services: Option<&Services>, name: &str) -> Result<String, ApiError> {
    let used: HashSet<&str> = services
        .map(|m| {
            m.iter()
                .filter(|((_, n), _)| n != name)
                .filter_map(|(_, s)| s.pointer("/spec/clusterIP").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    // 10.96.0.0/12, skipping the network address; from just past the
    // number in use (free unless some were deleted), then from the start.
    let from = (used.len() as u32 + 1).min((1 << 20) - 1);
    (from..(1 << 20))
        .chain(1..from)
        .map(|i| {
            let a = (10u32 << 24) | (96 << 16) | i;
            format!(
                "{}.{}.{}.{}",
                a >> 24,
                (a >> 16) & 0xff,
                (a >> 8) & 0xff,
                a & 0xff
            )
        })
        .find(|ip| !used.contains(ip.as_str()))
        .ok_or_else(|| ApiError::new(500, "InternalError", "the service cluster IP range is full"))
}
