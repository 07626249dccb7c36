//! Discovery and OpenAPI: what clients read to learn which kinds the server
//! serves and how to talk to them.
//!
//! - legacy discovery: `/api`, `/api/v1`, `/apis`, `/apis/GROUP`,
//!   `/apis/GROUP/VERSION` (kube-rs `Discovery`, older kubectl);
//! - aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`
//!   at `/api` and `/apis`), which kubectl 1.30+ asks for first;
//! - `/version`;
//! - OpenAPI v3: `/openapi/v3` lists one document per group/version, each
//!   with the paths of its kinds and, on every PATCH, the
//!   `x-kubernetes-group-version-kind` extension and the `fieldValidation`
//!   query parameter, so that kubectl knows the server validates fields
//!   itself and needs no schema (`kubectl apply` with its default
//!   validation works). PATCH operations do not offer strategic merge
//!   patch: kubectl then computes strategic merge patches from the types
//!   compiled into it for built-in kinds, and JSON merge patches for custom
//!   resources, as against a real cluster. OpenAPI v2 is not served (404),
//!   which kubectl tolerates when v3 is there.

use serde_json::{json, Map, Value};

use super::resources::{Registry, ResourceType};

/// The version `/version` reports (the minor kubectl 1.32 expects).
pub const SERVER_VERSION: (&str, &str) = ("1", "32");

/// The media type of aggregated discovery responses.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": SERVER_VERSION.0,
        "minor": SERVER_VERSION.1,
        "gitVersion": format!("v{}.{}.0-kxdp-test-apiserver", SERVER_VERSION.0, SERVER_VERSION.1),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Whether the `Accept` header asks for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        first.contains("g=apidiscovery.k8s.io") && first.contains("as=APIGroupDiscoveryList")
    })
}

/// `/api` (legacy).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis` (legacy).
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/GROUP` (legacy), if the group is served.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    registry
        .groups()
        .into_iter()
        .find(|(g, _)| g == name && !g.is_empty())
        .map(|(g, vs)| {
            let mut entry = group_entry(&g, &vs);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            entry
        })
}

/// `/api/v1` or `/apis/GROUP/VERSION` (legacy), if served.
pub fn resource_list(registry: &Registry, api_version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = registry
        .all()
        .filter(|t| t.api_version() == api_version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        for sub in &t.subresources {
            resources.push(json!({
                "name": format!("{}/{sub}", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    }))
}

/// Aggregated discovery for the core group (`core: true`, at `/api`) or
/// the named groups (at `/apis`).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let mut items = Vec::new();
    for (group, versions) in registry.groups() {
        if group.is_empty() != core {
            continue;
        }
        let mut version_entries = Vec::new();
        for version in &versions {
            let api_version = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            let resources: Vec<Value> = registry
                .all()
                .filter(|t| t.api_version() == api_version)
                .map(|t| {
                    let kind = json!({"group": t.group, "version": t.version, "kind": t.kind});
                    let subresources: Vec<Value> = t
                        .subresources
                        .iter()
                        .map(|s| json!({"subresource": s, "responseKind": kind, "verbs": ["get", "patch", "update"]}))
                        .collect();
                    let mut r = json!({
                        "resource": t.plural,
                        "responseKind": kind,
                        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": t.singular,
                        "verbs": t.verbs(),
                    });
                    if !t.short_names.is_empty() {
                        r["shortNames"] = json!(t.short_names);
                    }
                    if !t.categories.is_empty() {
                        r["categories"] = json!(t.categories);
                    }
                    if !subresources.is_empty() {
                        r["subresources"] = json!(subresources);
                    }
                    r
                })
                .collect();
            version_entries
                .push(json!({"version": version, "resources": resources, "freshness": "Current"}));
        }
        let metadata = if group.is_empty() {
            json!({"creationTimestamp": null})
        } else {
            json!({"name": group, "creationTimestamp": null})
        };
        items.push(json!({"metadata": metadata, "versions": version_entries}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn openapi_path(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("apis/{api_version}")
    } else {
        format!("api/{api_version}")
    }
}

/// A content hash for OpenAPI URLs (clients cache by it).
fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: one document per group/version.
pub fn openapi_v3_root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<String> = registry.all().map(ResourceType::api_version).collect();
    gvs.dedup();
    for gv in gvs {
        let doc = openapi_v3_document(registry, &gv)
            .map(|d| d.to_string())
            .unwrap_or_default();
        let path = openapi_path(&gv);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`, if served.
pub fn openapi_v3_document(registry: &Registry, api_version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = registry
        .all()
        .filter(|t| t.api_version() == api_version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let prefix = format!("/{}", openapi_path(api_version));
    for t in types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let schema_name = format!(
            "{}.{}.{}",
            if t.group.is_empty() {
                "io.k8s.api.core"
            } else {
                &t.group
            },
            t.version,
            t.kind
        );
        schemas.insert(
            schema_name.clone(),
            json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-group-version-kind": [gvk],
            }),
        );
        let body = json!({"$ref": format!("#/components/schemas/{schema_name}")});
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let content = |types: &[&str]| -> Value {
            let mut m = Map::new();
            for ty in types {
                m.insert(ty.to_string(), json!({"schema": body}));
            }
            Value::Object(m)
        };
        let ok = json!({"200": {"description": "OK", "content": content(&["application/json"])}});
        let op = |action: &str, params: Vec<Value>, request: Option<Value>| {
            let mut o = json!({
                "operationId": format!("{action}{}", t.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": ok,
            });
            if let Some(r) = request {
                o["requestBody"] = json!({"content": r, "required": true});
            }
            o
        };
        let write_params = || {
            vec![
                query("dryRun"),
                query("fieldManager"),
                query("fieldValidation"),
            ]
        };
        let mut item = json!({
            "get": op("get", vec![], None),
            "put": op("put", write_params(), Some(content(&["application/json"]))),
            "delete": op("delete", vec![query("dryRun")], None),
            "patch": op(
                "patch",
                {
                    let mut p = write_params();
                    p.push(query("force"));
                    p
                },
                Some(content(&[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ])),
            ),
        });
        let mut collection = json!({
            "get": op("list", vec![query("labelSelector"), query("fieldSelector"), query("limit"), query("continue"), query("watch")], None),
            "post": op("post", write_params(), Some(content(&["application/json"]))),
        });
        let (collection_path, item_path) = if t.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", t.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural),
            )
        } else {
            (
                format!("{prefix}/{}", t.plural),
                format!("{prefix}/{}/{{name}}", t.plural),
            )
        };
        let path_params = |names: &[&str]| -> Value {
            json!(names
                .iter()
                .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect::<Vec<_>>())
        };
        if t.namespaced {
            item["parameters"] = path_params(&["name", "namespace"]);
            collection["parameters"] = path_params(&["namespace"]);
        } else {
            item["parameters"] = path_params(&["name"]);
        }
        paths.insert(collection_path, collection);
        paths.insert(item_path.clone(), item.clone());
        for sub in &t.subresources {
            paths.insert(format!("{item_path}/{sub}"), item.clone());
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kxdp test API server)", "version": format!("v{}.{}.0", SERVER_VERSION.0, SERVER_VERSION.1)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
