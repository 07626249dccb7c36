//! The kinds the test API server serves: the built-in ones it starts with and
//! the ones custom resource definitions add.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::ApiError;

/// One resource type as discovery describes it: `GROUP/VERSION` `plural`,
/// its kind, scope and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Version served.
    pub version: String,
    /// Kind of one object (`Pod`).
    pub kind: String,
    /// Plural resource name used in paths (`pods`).
    pub plural: String,
    /// Singular name (`pod`).
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`po`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Subresources served (`status`).
    pub subresources: Vec<String>,
    /// Field selector labels accepted besides metadata.name/namespace.
    pub selectable_fields: Vec<String>,
    /// Printer columns for tables, besides NAME and AGE: (name, JSON path).
    pub printer_columns: Vec<(String, String)>,
}

impl ResourceType {
    /// `v1` or `GROUP/VERSION`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key the store files this type's objects under: `GROUP/plural`.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `pods` or `daemonsets.apps`, as Status details name resources.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The verbs discovery advertises.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    fn builtin(
        api_version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short_names: &[&str],
    ) -> ResourceType {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        ResourceType {
            group,
            version,
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            subresources: Vec::new(),
            selectable_fields: Vec::new(),
            printer_columns: Vec::new(),
        }
    }

    fn with_status(mut self) -> ResourceType {
        self.subresources.push("status".to_string());
        self
    }

    fn in_all(mut self) -> ResourceType {
        self.categories.push("all".to_string());
        self
    }

    fn fields(mut self, fields: &[&str]) -> ResourceType {
        self.selectable_fields = fields.iter().map(|s| s.to_string()).collect();
        self
    }

    fn column(mut self, name: &str, path: &str) -> ResourceType {
        self.printer_columns
            .push((name.to_string(), path.to_string()));
        self
    }
}

/// The resource types served, by group/version and plural.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Key: (api_version, plural).
    types: BTreeMap<(String, String), ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// The built-in kinds a fresh server serves.
    pub fn builtin() -> Registry {
        let list = vec![
            ResourceType::builtin("v1", "Namespace", "namespaces", false, &["ns"])
                .with_status()
                .fields(&["status.phase"])
                .column("STATUS", ".status.phase"),
            ResourceType::builtin("v1", "Node", "nodes", false, &["no"])
                .with_status()
                .fields(&["spec.unschedulable"]),
            ResourceType::builtin("v1", "Pod", "pods", true, &["po"])
                .with_status()
                .in_all()
                .fields(&[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.nominatedNodeName",
                ])
                .column("STATUS", ".status.phase")
                .column("IP", ".status.podIP")
                .column("NODE", ".spec.nodeName"),
            ResourceType::builtin("v1", "Service", "services", true, &["svc"])
                .with_status()
                .in_all()
                .column("TYPE", ".spec.type")
                .column("CLUSTER-IP", ".spec.clusterIP"),
            ResourceType::builtin("v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
            ResourceType::builtin("v1", "ConfigMap", "configmaps", true, &["cm"]),
            ResourceType::builtin("v1", "Secret", "secrets", true, &[]).fields(&["type"]),
            ResourceType::builtin("v1", "Endpoints", "endpoints", true, &["ep"]),
            ResourceType::builtin("v1", "Event", "events", true, &["ev"]),
            ResourceType::builtin(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                "endpointslices",
                true,
                &[],
            )
            .column("ADDRESSTYPE", ".addressType"),
            ResourceType::builtin(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "networkpolicies",
                true,
                &["netpol"],
            ),
            ResourceType::builtin("apps/v1", "DaemonSet", "daemonsets", true, &["ds"])
                .with_status()
                .in_all(),
            ResourceType::builtin("apps/v1", "Deployment", "deployments", true, &["deploy"])
                .with_status()
                .in_all(),
            ResourceType::builtin(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "clusterroles",
                false,
                &[],
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
                &[],
            ),
            ResourceType::builtin("rbac.authorization.k8s.io/v1", "Role", "roles", true, &[]),
            ResourceType::builtin(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "rolebindings",
                true,
                &[],
            ),
            ResourceType::builtin(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
            )
            .with_status(),
            ResourceType::builtin("coordination.k8s.io/v1", "Lease", "leases", true, &[]),
            ResourceType::builtin(
                "admissionregistration.k8s.io/v1",
                "ValidatingAdmissionPolicy",
                "validatingadmissionpolicies",
                false,
                &[],
            )
            .with_status(),
            ResourceType::builtin(
                "admissionregistration.k8s.io/v1",
                "ValidatingAdmissionPolicyBinding",
                "validatingadmissionpolicybindings",
                false,
                &[],
            ),
        ];
        let mut registry = Registry {
            types: BTreeMap::new(),
        };
        for t in list {
            registry.insert(t);
        }
        registry
    }

    fn insert(&mut self, t: ResourceType) {
        self.types.insert((t.api_version(), t.plural.clone()), t);
    }

    /// The type served at `api_version` (`v1`, `apps/v1`) under `plural`.
    pub fn by_plural(&self, api_version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&(api_version.to_string(), plural.to_string()))
    }

    /// The type of kind `kind` at `api_version`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// Every type served, ordered by group/version and plural.
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    /// The groups served (empty string for core) with their versions,
    /// in the order discovery lists them (core first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.values() {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups.sort_by(|a, b| (!a.0.is_empty(), &a.0).cmp(&(!b.0.is_empty(), &b.0)));
        groups
    }

    /// The types a custom resource definition object defines, one per
    /// served version; an error names the field that is missing or wrong.
    pub fn types_of_crd(crd: &Value) -> Result<Vec<ResourceType>, ApiError> {
        let spec = crd
            .get("spec")
            .ok_or_else(|| ApiError::invalid("CustomResourceDefinition", "spec: Required value"))?;
        let text = |path: &str| -> Result<String, ApiError> {
            let mut v = spec;
            for part in path.split('.') {
                v = v.get(part).ok_or_else(|| {
                    ApiError::invalid(
                        "CustomResourceDefinition",
                        &format!("spec.{path}: Required value"),
                    )
                })?;
            }
            v.as_str().map(str::to_string).ok_or_else(|| {
                ApiError::invalid(
                    "CustomResourceDefinition",
                    &format!("spec.{path}: must be a string"),
                )
            })
        };
        let group = text("group")?;
        let plural = text("names.plural")?;
        let kind = text("names.kind")?;
        let singular = text("names.singular").unwrap_or_else(|_| kind.to_ascii_lowercase());
        let scope = text("scope")?;
        let namespaced = match scope.as_str() {
            "Namespaced" => true,
            "Cluster" => false,
            other => {
                return Err(ApiError::invalid(
                    "CustomResourceDefinition",
                    &format!("spec.scope: Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""),
                ))
            }
        };
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let names = spec.get("names");
        let short_names = strings(names.and_then(|n| n.get("shortNames")));
        let categories = strings(names.and_then(|n| n.get("categories")));
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    "CustomResourceDefinition",
                    "spec.versions: Invalid value: must have exactly one version marked as storage version",
                )
            })?;
        let mut types = Vec::new();
        for (i, version) in versions.iter().enumerate() {
            let name = version.get("name").and_then(Value::as_str).ok_or_else(|| {
                ApiError::invalid(
                    "CustomResourceDefinition",
                    &format!("spec.versions[{i}].name: Required value"),
                )
            })?;
            if version.get("served").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let mut subresources = Vec::new();
            if version.pointer("/subresources/status").is_some() {
                subresources.push("status".to_string());
            }
            let printer_columns = version
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .filter_map(|c| {
                            let n = c.get("name")?.as_str()?;
                            let p = c.get("jsonPath")?.as_str()?;
                            Some((n.to_ascii_uppercase(), p.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let selectable_fields = version
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(|f| {
                            f.get("jsonPath")?
                                .as_str()
                                .map(|p| p.trim_start_matches('.').to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            types.push(ResourceType {
                group: group.clone(),
                version: name.to_string(),
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                namespaced,
                short_names: short_names.clone(),
                categories: categories.clone(),
                subresources,
                selectable_fields,
                printer_columns,
            });
        }
        Ok(types)
    }

    /// Serve the types of a custom resource definition (replacing what an
    /// earlier version of it defined).
    pub fn add_crd(&mut self, types: Vec<ResourceType>) {
        if let Some(first) = types.first() {
            let (group, plural) = (first.group.clone(), first.plural.clone());
            self.remove_crd(&group, &plural);
        }
        for t in types {
            self.insert(t);
        }
    }

    /// Stop serving the types of group `group` named `plural`.
    pub fn remove_crd(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|_, t| !(t.group == group && t.plural == plural));
    }

    /// Whether `group/plural` is a built-in kind (CRDs may not replace it).
    pub fn is_builtin(group: &str, plural: &str) -> bool {
        Registry::builtin()
            .all()
            .any(|t| t.group == group && t.plural == plural)
    }
}

/// The conditions a custom resource definition gets once its names are
/// accepted and it is served.
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    })
}
