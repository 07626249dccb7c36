//! The deploy manifests (`config/deploy/`): they parse into the Kubernetes
//! types, the CRD file is what the Rust types generate, the RBAC rules are
//! exactly what the agent's code uses, and the DaemonSet runs kxdp the way
//! the design says (host network, the capabilities and no privileged mode,
//! probes on the metrics port, Guaranteed QoS with whole cores).
//!
//! `KXDP_BLESS=1 cargo test -p kxdp-cli --test manifests` rewrites
//! `crd.yaml` from the types.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kxdp_config::crd::ServiceChain;
use kxdp_control::k8s::agent::{OWN_NODE_VERBS, WATCH_VERBS};
use kxdp_control::k8s::WatchedKind;
use serde::Deserialize;
use serde_json::Value;

fn deploy(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/deploy")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy(name))
        .unwrap_or_else(|e| panic!("reading config/deploy/{name}: {e}"))
}

/// Every YAML document of `name`, as JSON values.
fn documents(name: &str) -> Vec<Value> {
    let text = read(name);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of `kind` in `name`, as its Kubernetes type.
fn one<T: serde::de::DeserializeOwned>(name: &str, kind: &str) -> T {
    let docs: Vec<Value> = documents(name)
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(docs.len(), 1, "{name}: expected one {kind}");
    serde_json::from_value(docs[0].clone()).unwrap_or_else(|e| panic!("{name}: {kind}: {e}"))
}

#[test]
fn the_crd_file_is_what_the_types_generate() {
    let generated = ServiceChain::crd_yaml();
    if std::env::var("KXDP_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(deploy("crd.yaml"), &generated).unwrap();
    }
    assert_eq!(
        read("crd.yaml"),
        generated,
        "config/deploy/crd.yaml is stale: run `kxdp crd > config/deploy/crd.yaml` (or KXDP_BLESS=1)"
    );
    let crd: CustomResourceDefinition = one("crd.yaml", "CustomResourceDefinition");
    assert_eq!(crd.metadata.name.as_deref(), Some("servicechains.kxdp.io"));
    assert_eq!(crd.spec.scope, "Namespaced");
}

/// Check that `value` fits `schema` (types, known properties): the subset
/// of OpenAPI v3 validation that catches a schema drifting from the types.
fn check_against_schema(path: &str, value: &Value, schema: &Value) -> Result<(), String> {
    if value.is_null() {
        return if schema["nullable"] == true {
            Ok(())
        } else {
            Err(format!("{path}: null where the schema does not allow it"))
        };
    }
    let ty = schema["type"].as_str().unwrap_or("");
    match (ty, value) {
        ("object", Value::Object(map)) => {
            let props = schema["properties"].as_object();
            for (key, v) in map {
                let sub = match (
                    props.and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(sub), _) => sub,
                    (None, Some(extra)) if extra.is_object() => extra,
                    _ => return Err(format!("{path}.{key}: not in the schema")),
                };
                check_against_schema(&format!("{path}.{key}"), v, sub)?;
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().unwrap_or("");
                if !map.contains_key(key) {
                    return Err(format!("{path}.{key}: required by the schema"));
                }
            }
            Ok(())
        }
        ("array", Value::Array(items)) => items.iter().enumerate().try_for_each(|(i, v)| {
            check_against_schema(&format!("{path}[{i}]"), v, &schema["items"])
        }),
        ("string", Value::String(s)) => match schema["enum"].as_array() {
            Some(allowed) if !allowed.contains(&Value::String(s.clone())) => {
                Err(format!("{path}: {s:?} is not one of {allowed:?}"))
            }
            _ => Ok(()),
        },
        ("integer", Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(()),
        ("boolean", Value::Bool(_)) => Ok(()),
        _ => Err(format!("{path}: {value} is not of type {ty:?}")),
    }
}

#[test]
fn the_crd_schema_matches_the_rust_types() {
    let crd: CustomResourceDefinition = one("crd.yaml", "CustomResourceDefinition");
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    // apiVersion, kind and metadata are Kubernetes' own: check the spec.
    let schema = &schema["openAPIV3Schema"]["properties"]["spec"];
    // Every function type, every optional field: serialized by the Rust
    // types, accepted by the schema.
    let example: ServiceChain = serde_yaml::from_str(
        "apiVersion: kxdp.io/v1alpha1\nkind: ServiceChain\nmetadata: {name: all, namespace: shop}\n\
         spec:\n  tenant: blue\n  priority: 3\n  symmetric: true\n\
         \x20 classifier:\n    src: 10.1.0.0/16\n    dst: 10.96.0.0/12\n    protocol: udp\n\
         \x20   src_ports: {first: 1, last: 9}\n    dst_ports: {first: 53, last: 53}\n\
         \x20   src_selector: {match_labels: {app: web}, match_expressions: [{key: tier, operator: NotIn, values: [db]}]}\n\
         \x20   dst_selector: {match_expressions: [{key: app, operator: Exists}]}\n\
         \x20 functions:\n  - {type: policy}\n  - {type: policer, rate_pps: 100, burst: 10, per: class}\n\
         \x20 - {type: load_balancer, services: [shop/web]}\n  - {type: counter}\n\
         \x20 - {type: mirror, interface: tap0}\n\
         \x20 - {type: external, to_interface: vnf-in, from_interface: vnf-out, failure: fail_open, timeout_ms: 50}\n",
    )
    .unwrap();
    let value = serde_json::to_value(&example.spec).unwrap();
    check_against_schema("spec", &value, schema).unwrap();
    // And the schema refuses what the types refuse.
    let mut bad = value.clone();
    bad["functions"][0]["type"] = Value::String("teleport".into());
    assert!(check_against_schema("spec", &bad, schema).is_err());
    let mut bad = value;
    bad["classifier"]["protocol"] = Value::String("icmp".into());
    assert!(check_against_schema("spec", &bad, schema).is_err());
}

#[test]
fn rbac_grants_exactly_what_the_agent_uses() {
    let role: ClusterRole = one("rbac.yaml", "ClusterRole");
    let mut granted: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (i, rule) in role.rules.unwrap_or_default().iter().enumerate() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "rules[{i}]"
        );
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                for verb in &rule.verbs {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "rules[{i}]: no wildcards"
                    );
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    // What the agent's code uses: one watcher per WatchedKind, plus get and
    // patch of its own Node.
    let mut used: BTreeSet<(String, String, String)> = BTreeSet::new();
    for kind in WatchedKind::ALL {
        for verb in WATCH_VERBS {
            used.insert((kind.group().into(), kind.plural().into(), verb.into()));
        }
    }
    for verb in OWN_NODE_VERBS {
        used.insert(("".into(), "nodes".into(), verb.into()));
    }
    assert_eq!(
        granted, used,
        "the ClusterRole must grant exactly what the agent uses"
    );

    let account: ServiceAccount = one("rbac.yaml", "ServiceAccount");
    let binding: ClusterRoleBinding = one("rbac.yaml", "ClusterRoleBinding");
    let namespace: Namespace = one("rbac.yaml", "Namespace");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(binding.role_ref.name.as_str()),
        role.metadata.name.as_deref()
    );
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(
        Some(subjects[0].name.as_str()),
        account.metadata.name.as_deref()
    );
    assert_eq!(subjects[0].namespace, account.metadata.namespace);
    assert_eq!(account.metadata.namespace, namespace.metadata.name);
}

#[test]
fn the_daemonset_runs_the_agent_unprivileged_with_its_capabilities() {
    let ds: DaemonSet = one("daemonset.yaml", "DaemonSet");
    let account: ServiceAccount = one("rbac.yaml", "ServiceAccount");
    assert_eq!(ds.metadata.namespace, account.metadata.namespace);
    let spec = ds.spec;
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.service_account_name, account.metadata.name);
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];

    let command = c.command.clone().unwrap_or_default();
    assert_eq!(&command[..2], ["kxdp", "agent"], "{command:?}");
    assert!(command.contains(&"--in-cluster".to_string()));
    let metrics = command
        .iter()
        .position(|a| a == "--metrics")
        .and_then(|i| command.get(i + 1))
        .expect("--metrics ADDR");
    assert!(metrics.ends_with(":9464"), "{metrics}");

    let security = c.security_context.clone().unwrap();
    assert_ne!(security.privileged, Some(true), "not privileged");
    let caps = security.capabilities.unwrap();
    let added: BTreeSet<String> = caps.add.unwrap_or_default().into_iter().collect();
    let wanted: BTreeSet<String> = ["NET_ADMIN", "BPF", "NET_RAW", "IPC_LOCK", "SYS_NICE"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(added, wanted);
    assert_eq!(caps.drop.unwrap_or_default(), vec!["ALL".to_string()]);

    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .clone()
            .and_then(|p| p.http_get)
            .expect("an httpGet probe");
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::Int(9464));
    }

    let resources = c.resources.clone().unwrap();
    let requests = resources.requests.unwrap();
    let limits = resources.limits.unwrap();
    assert_eq!(requests, limits, "requests == limits: Guaranteed QoS");
    let cpu = &requests["cpu"].0;
    let cores: u32 = cpu
        .parse()
        .unwrap_or_else(|_| panic!("cpu {cpu:?} is not whole cores"));
    assert!(cores >= 1);

    let env = c.env.clone().unwrap_or_default();
    let node_name = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    let field = node_name
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("from a fieldRef");
    assert_eq!(field.field_path, "spec.nodeName");
}

#[test]
fn the_daemonset_command_line_parses() {
    use clap::Parser;
    let ds: DaemonSet = one("daemonset.yaml", "DaemonSet");
    let command = ds.spec.template.spec.unwrap().containers[0]
        .command
        .clone()
        .unwrap();
    kxdp_cli::cli::Cli::try_parse_from(&command)
        .unwrap_or_else(|e| panic!("the DaemonSet's command line: {e}"));
}
