//! The `ServiceChain` custom resource (`kxdp.io/v1alpha1`, namespaced):
//! a service chain declared once in Kubernetes, applied by every node's
//! agent.
//!
//! Its spec reuses the configuration's chain types ([`ClassifierSpec`],
//! [`FunctionSpec`], …), so a chain reads the same in a node's YAML and in
//! a `ServiceChain` (snake_case field names included); only the name comes
//! from the object's metadata and the tenant may come from its namespace.
//! The CustomResourceDefinition is generated from these types
//! ([`ServiceChain::crd`], `kxdp crd`) and kept in `config/deploy/crd.yaml`;
//! a test checks the file is what the types generate.
//!
//! Compiled with the `crd` feature only: nothing else in this crate knows
//! about Kubernetes.

use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ChainSpec, ClassifierSpec, ConfigError, FunctionSpec, PortRange};

/// The API group of kxdp's custom resources.
pub const GROUP: &str = "kxdp.io";
/// The version of the `ServiceChain` resource.
pub const VERSION: &str = "v1alpha1";

/// The spec of a `ServiceChain`: a classifier and an ordered list of
/// network functions, as a configuration's `chains[]` entry without its
/// name (the object's `namespace/name` is the chain's name).
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kxdp.io",
    version = "v1alpha1",
    kind = "ServiceChain",
    plural = "servicechains",
    singular = "servicechain",
    shortname = "sc",
    namespaced,
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Priority","type":"integer","jsonPath":".spec.priority"}"#
)]
#[serde(deny_unknown_fields)]
pub struct ServiceChainSpec {
    /// The tenant whose traffic it applies to; the namespace's tenant (its
    /// label `kxdp.io/tenant`) unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Higher wins when several chains match.
    #[serde(default)]
    pub priority: u32,
    /// What it applies to.
    #[serde(default)]
    pub classifier: ClassifierSpec,
    /// The functions, in order.
    #[schemars(schema_with = "function_list_schema")]
    pub functions: Vec<FunctionSpec>,
    /// Return traffic crosses the same functions in reverse.
    #[serde(default)]
    pub symmetric: bool,
}

/// The schema of `spec.functions`: [`FunctionSpec`] is internally tagged
/// (`type: policer, rate_pps: …`), which JSON Schema writes as a `oneOf`
/// whose variants each fix `type`. A structural schema (what Kubernetes
/// wants of a CRD) cannot have that, so the variants are merged into one
/// object: `type` is one of the variants' names, every variant's fields are
/// properties. Which fields a variant needs is checked when the agent reads
/// the object (a missing `rate_pps` is refused with its path).
fn function_list_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let tagged = <FunctionSpec as JsonSchema>::json_schema(generator).to_value();
    let mut names: Vec<serde_json::Value> = Vec::new();
    let mut properties = serde_json::Map::new();
    let variants = tagged
        .get("oneOf")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for variant in &variants {
        let Some(props) = variant.get("properties").and_then(|p| p.as_object()) else {
            continue;
        };
        for (key, schema) in props {
            if key == "type" {
                if let Some(name) = schema.get("const") {
                    names.push(name.clone());
                } else if let Some(list) = schema.get("enum").and_then(|e| e.as_array()) {
                    names.extend(list.iter().cloned());
                }
                continue;
            }
            properties
                .entry(key.clone())
                .or_insert_with(|| schema.clone());
        }
    }
    let descriptions: Vec<String> = variants
        .iter()
        .filter_map(|v| {
            let name = v
                .pointer("/properties/type/const")
                .or_else(|| v.pointer("/properties/type/enum/0"))?;
            let description = v.get("description")?.as_str()?;
            Some(format!("{}: {description}", name.as_str()?))
        })
        .collect();
    properties.insert(
        "type".to_string(),
        serde_json::json!({
            "type": "string",
            "description": format!("The function. {}", descriptions.join(" ")),
            "enum": names,
        }),
    );
    let item = serde_json::json!({
        "type": "object",
        "description": "One network function (see `type`).",
        "properties": properties,
        "required": ["type"],
    });
    let list = serde_json::json!({
        "type": "array",
        "description": "The functions, in order.",
        "items": item,
    });
    schemars::Schema::try_from(list).unwrap_or_default()
}

/// The most functions one chain may have.
pub const MAX_CHAIN_FUNCTIONS: usize = 16;

impl ServiceChain {
    /// The CustomResourceDefinition as YAML: what `kxdp crd` prints and
    /// `config/deploy/crd.yaml` holds.
    pub fn crd_yaml() -> String {
        let crd = <ServiceChain as CustomResourceExt>::crd();
        let yaml = serde_yaml::to_string(&crd).unwrap_or_default();
        format!(
            "# Generated by `kxdp crd` from kxdp-config's ServiceChain types: do not edit.\n{yaml}"
        )
    }

    /// The chain of the model this resource declares, named
    /// `namespace/name`. `namespace_tenant` is the tenant of its namespace
    /// (label `kxdp.io/tenant`), used when `spec.tenant` is unset. A
    /// refusal names the field (`spec.functions[1].rate_pps`).
    pub fn to_chain_spec(&self, namespace_tenant: Option<&str>) -> Result<ChainSpec, ConfigError> {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            return Err(ConfigError::invalid(
                "metadata.name",
                "a ServiceChain needs a name",
            ));
        }
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        if namespace.is_empty() {
            return Err(ConfigError::invalid(
                "metadata.namespace",
                "a ServiceChain is namespaced: it needs a namespace",
            ));
        }
        let spec = &self.spec;
        let tenant = match (&spec.tenant, namespace_tenant) {
            (Some(t), _) if t.trim().is_empty() => {
                return Err(ConfigError::invalid("spec.tenant", "is empty"))
            }
            (Some(t), _) => t.clone(),
            (None, Some(t)) => t.to_string(),
            (None, None) => {
                return Err(ConfigError::invalid(
                    "spec.tenant",
                    format!(
                    "unset, and namespace {namespace} has no label kxdp.io/tenant to take it from"
                ),
                ))
            }
        };
        check_classifier(&spec.classifier)?;
        if spec.functions.is_empty() {
            return Err(ConfigError::invalid(
                "spec.functions",
                "a chain needs at least one function",
            ));
        }
        if spec.functions.len() > MAX_CHAIN_FUNCTIONS {
            return Err(ConfigError::invalid(
                "spec.functions",
                format!(
                    "{} functions; a chain has at most {MAX_CHAIN_FUNCTIONS}",
                    spec.functions.len()
                ),
            ));
        }
        for (i, function) in spec.functions.iter().enumerate() {
            check_function(&format!("spec.functions[{i}]"), function)?;
        }
        Ok(ChainSpec {
            name: format!("{namespace}/{name}"),
            tenant,
            priority: spec.priority,
            classifier: spec.classifier.clone(),
            functions: spec.functions.clone(),
            symmetric: spec.symmetric,
        })
    }
}

fn check_ports(field: &str, range: Option<PortRange>) -> Result<(), ConfigError> {
    match range {
        Some(r) if r.first > r.last => Err(ConfigError::invalid(
            field,
            format!("first {} is after last {}", r.first, r.last),
        )),
        _ => Ok(()),
    }
}

fn check_classifier(classifier: &ClassifierSpec) -> Result<(), ConfigError> {
    check_ports("spec.classifier.src_ports", classifier.src_ports)?;
    check_ports("spec.classifier.dst_ports", classifier.dst_ports)?;
    for (field, prefix) in [
        ("spec.classifier.src", classifier.src),
        ("spec.classifier.dst", classifier.dst),
    ] {
        if let Some(prefix) = prefix {
            if prefix.network() != prefix.ip() {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "{prefix} has host bits set (the prefix is {}/{})",
                        prefix.network(),
                        prefix.prefix()
                    ),
                ));
            }
        }
    }
    if let (Some(src), Some(dst)) = (classifier.src, classifier.dst) {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(ConfigError::invalid(
                "spec.classifier.dst",
                format!("{dst} is not of the same address family as src {src}: nothing matches"),
            ));
        }
    }
    Ok(())
}

fn check_function(field: &str, function: &FunctionSpec) -> Result<(), ConfigError> {
    match function {
        FunctionSpec::Policer {
            rate_pps, burst, ..
        } => {
            if *rate_pps == 0 {
                return Err(ConfigError::invalid(
                    format!("{field}.rate_pps"),
                    "must be above 0 (a policer of rate 0 drops everything: use a policy)",
                ));
            }
            if *burst == 0 {
                return Err(ConfigError::invalid(
                    format!("{field}.burst"),
                    "must be at least 1 packet",
                ));
            }
        }
        FunctionSpec::Mirror { interface } if interface.trim().is_empty() => {
            return Err(ConfigError::invalid(
                format!("{field}.interface"),
                "is empty",
            ));
        }
        FunctionSpec::External {
            to_interface,
            from_interface,
            timeout_ms,
            ..
        } => {
            for (key, name) in [
                ("to_interface", to_interface),
                ("from_interface", from_interface),
            ] {
                if name.trim().is_empty() {
                    return Err(ConfigError::invalid(format!("{field}.{key}"), "is empty"));
                }
            }
            if to_interface == from_interface {
                return Err(ConfigError::invalid(
                    format!("{field}.from_interface"),
                    format!(
                        "{from_interface} is also to_interface: a VNF hop needs two interfaces"
                    ),
                ));
            }
            if *timeout_ms == 0 {
                return Err(ConfigError::invalid(
                    format!("{field}.timeout_ms"),
                    "must be above 0",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{FailurePolicy, Protocol};

    fn chain(yaml: &str) -> ServiceChain {
        serde_yaml::from_str(yaml).unwrap()
    }

    const WEB: &str = "apiVersion: kxdp.io/v1alpha1\nkind: ServiceChain\n\
        metadata: {name: web, namespace: shop}\n\
        spec:\n  priority: 5\n  symmetric: true\n\
        \x20 classifier: {dst: 10.96.0.0/16, protocol: tcp, dst_ports: {first: 80, last: 80}}\n\
        \x20 functions:\n  - type: policy\n  - {type: policer, rate_pps: 1000, burst: 64}\n\
        \x20 - {type: external, to_interface: vnf-in, from_interface: vnf-out, failure: fail_open}\n";

    #[test]
    fn converts_to_the_model_with_the_namespace_tenant() {
        let spec = chain(WEB).to_chain_spec(Some("blue")).unwrap();
        assert_eq!(spec.name, "shop/web");
        assert_eq!(spec.tenant, "blue");
        assert_eq!(spec.priority, 5);
        assert!(spec.symmetric);
        assert_eq!(spec.classifier.protocol, Some(Protocol::Tcp));
        assert_eq!(spec.functions.len(), 3);
        assert!(matches!(
            spec.functions[2],
            FunctionSpec::External {
                failure: FailurePolicy::FailOpen,
                timeout_ms: 200,
                ..
            }
        ));
        let mut own = chain(WEB);
        own.spec.tenant = Some("red".into());
        assert_eq!(own.to_chain_spec(Some("blue")).unwrap().tenant, "red");
    }

    #[test]
    fn refusals_name_the_field() {
        let field = |sc: &ServiceChain, tenant: Option<&str>| match sc.to_chain_spec(tenant) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(field(&chain(WEB), None), "spec.tenant");
        let mut sc = chain(WEB);
        sc.spec.functions[1] = FunctionSpec::Policer {
            rate_pps: 0,
            burst: 1,
            per: Default::default(),
        };
        assert_eq!(field(&sc, Some("blue")), "spec.functions[1].rate_pps");
        let mut sc = chain(WEB);
        sc.spec.functions.clear();
        assert_eq!(field(&sc, Some("blue")), "spec.functions");
        let mut sc = chain(WEB);
        sc.spec.classifier.dst_ports = Some(PortRange {
            first: 90,
            last: 80,
        });
        assert_eq!(field(&sc, Some("blue")), "spec.classifier.dst_ports");
        let mut sc = chain(WEB);
        sc.spec.classifier.src = Some("10.0.0.1/8".parse().unwrap());
        assert_eq!(field(&sc, Some("blue")), "spec.classifier.src");
        let mut sc = chain(WEB);
        sc.metadata.namespace = None;
        assert_eq!(field(&sc, Some("blue")), "metadata.namespace");
        let mut sc = chain(WEB);
        if let FunctionSpec::External { from_interface, .. } = &mut sc.spec.functions[2] {
            *from_interface = "vnf-in".into();
        }
        assert_eq!(field(&sc, Some("blue")), "spec.functions[2].from_interface");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = WEB.replace("priority: 5", "priority: 5\n  prio: 6");
        assert!(serde_yaml::from_str::<ServiceChain>(&bad).is_err());
        let bad = WEB.replace("type: policy", "type: teleport");
        assert!(serde_yaml::from_str::<ServiceChain>(&bad).is_err());
    }

    #[test]
    fn the_crd_is_namespaced_and_structural() {
        let crd = <ServiceChain as CustomResourceExt>::crd();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "ServiceChain");
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, VERSION);
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["required"], serde_json::json!(["functions"]));
        for field in ["tenant", "priority", "classifier", "functions", "symmetric"] {
            assert!(
                spec["properties"].get(field).is_some(),
                "spec.{field} missing from the schema"
            );
        }
        // A structural schema: no $ref, no oneOf/anyOf without types.
        let text = schema.to_string();
        assert!(!text.contains("$ref"), "schema keeps a $ref: {text}");
        assert!(ServiceChain::crd_yaml().contains("kind: CustomResourceDefinition"));
    }
}
