//! The object store: every object of every kind as JSON, one global
//! resourceVersion counter (as etcd's revision), the history of changes
//! since the last compaction (for watches and consistent paged lists), and
//! the open watches to which each change is sent as it is committed.
//!
//! The store also does what the real API server's registry does on write:
//! it sets `metadata.uid`, `creationTimestamp`, `resourceVersion` and
//! `generation`, refuses a create of what exists (409 AlreadyExists) and an
//! update from a stale resourceVersion (409 Conflict), refuses namespaced
//! objects in a namespace that does not exist, holds objects with
//! finalizers until they are removed, deletes a namespace's objects with it,
//! serves the kinds that custom resource definitions define, labels
//! Namespaces with their name and gives Services a unique, immutable cluster
//! IP. It does no other defaulting and no admission beyond that.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::defaults;
use super::error::ApiError;
use super::resources::{crd_status, Registry, ResourceType};
use super::time::now_rfc3339;

/// How many changes the history keeps before the oldest are compacted
/// away (a watch or continue token from before them gets 410 Gone).
pub const HISTORY_LIMIT: usize = 100_000;

/// The namespaces a fresh cluster has.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Deleted.
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`, as watch events name it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// `GROUP/plural` of the object.
    pub storage_key: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object after the change (for a delete: as it was, with the
    /// deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change (none for a create).
    pub previous: Option<Arc<Value>>,
}

type ObjectKey = (String, String);

#[derive(Debug)]
struct Watcher {
    storage_key: String,
    tx: UnboundedSender<Arc<StoredEvent>>,
}

#[derive(Debug)]
struct Inner {
    rv: u64,
    registry: Registry,
    objects: HashMap<String, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<StoredEvent>>,
    /// A watch may start from resourceVersion N only if N >= compacted.
    compacted: u64,
    watchers: Vec<Watcher>,
    uids: u64,
    history_limit: usize,
}

/// The result of a list.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// The objects, ordered by namespace and name.
    pub items: Vec<Arc<Value>>,
    /// The resourceVersion the list is consistent at.
    pub resource_version: u64,
    /// A token for the next page, when `limit` cut the list short.
    pub continue_token: Option<String>,
    /// How many objects the next pages hold, when cut short.
    pub remaining: Option<u64>,
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    /// Only this namespace (None: all).
    pub namespace: Option<&'a str>,
    /// At most this many items (0: no limit).
    pub limit: usize,
    /// A continue token from an earlier page.
    pub continue_token: Option<&'a str>,
    /// An exact resourceVersion to list at (resourceVersionMatch=Exact).
    pub exact_rv: Option<u64>,
}

/// A watch that has been registered: the events to send first, then the
/// channel on which later ones arrive.
#[derive(Debug)]
pub struct WatchStart {
    /// Events to send before those from `events` (replayed history, or
    /// synthetic ADDED for what exists).
    pub initial: Vec<Arc<StoredEvent>>,
    /// The resourceVersion the watch starts after.
    pub start_rv: u64,
    /// Later events of this kind, in resourceVersion order; closed when the
    /// server drops its watches.
    pub events: UnboundedReceiver<Arc<StoredEvent>>,
}

/// The store of a test API server. Shared by its request handlers and the
/// test that owns the server (see [`super::TestApiServer::store`]).
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// A store holding the initial namespaces only.
    pub fn new() -> Store {
        let store = Store {
            inner: Mutex::new(Inner {
                rv: 0,
                registry: Registry::builtin(),
                objects: HashMap::new(),
                history: VecDeque::new(),
                compacted: 0,
                watchers: Vec::new(),
                uids: 0,
                history_limit: HISTORY_LIMIT,
            }),
        };
        store.seed();
        store
    }

    fn seed(&self) {
        for ns in INITIAL_NAMESPACES {
            let created = self.create_object(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }));
            if let Err(e) = created {
                panic!("test API server: seeding namespace {ns}: {e}");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock leaves consistent
        // data: every write completes before it returns.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The types served now (built-in and from CRDs).
    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    /// The type served at `api_version` as `plural`.
    pub fn resource(&self, api_version: &str, plural: &str) -> Option<ResourceType> {
        self.lock().registry.by_plural(api_version, plural).cloned()
    }

    /// The type of `kind` at `api_version`, or 404.
    pub fn resource_of_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<ResourceType, ApiError> {
        self.lock()
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    format!("no matches for kind {kind:?} in version {api_version:?}"),
                )
            })
    }

    /// How many watches are open.
    pub fn watch_count(&self) -> usize {
        let mut inner = self.lock();
        inner.watchers.retain(|w| !w.tx.is_closed());
        inner.watchers.len()
    }

    /// How many watches of `GROUP/plural` (e.g. `/pods`,
    /// `discovery.k8s.io/endpointslices`) are open.
    pub fn watch_count_of(&self, storage_key: &str) -> usize {
        let mut inner = self.lock();
        inner.watchers.retain(|w| !w.tx.is_closed());
        inner
            .watchers
            .iter()
            .filter(|w| w.storage_key == storage_key)
            .count()
    }

    /// Close every open watch (their streams end).
    pub fn drop_watches(&self) {
        self.lock().watchers.clear();
    }

    /// Forget the history, past every resourceVersion handed out so far:
    /// the counter moves on by one (resourceVersions have gaps anyway: the
    /// counter is shared by all kinds) and history is compacted there, so a
    /// watch, exact list or continue token from any earlier version gets 410
    /// Gone, while a client that lists again gets the new version and
    /// watches from it.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.rv += 1;
        inner.compacted = inner.rv;
        inner.history.clear();
    }

    /// Keep at most `limit` changes in the history (default
    /// [`HISTORY_LIMIT`]); older ones are compacted away as new ones come.
    pub fn set_history_limit(&self, limit: usize) {
        let mut inner = self.lock();
        inner.history_limit = limit.max(1);
        while inner.history.len() > inner.history_limit {
            if let Some(oldest) = inner.history.pop_front() {
                inner.compacted = oldest.rv;
            }
        }
    }

    /// Empty the store as if its etcd had been wiped and restored to a
    /// fresh cluster: objects, CRD kinds and history are gone and watches
    /// closed; the resourceVersion counter carries on, so a client's old
    /// resourceVersion gets 410 Gone and it lists again.
    pub fn reset(&self) {
        {
            let mut inner = self.lock();
            inner.objects.clear();
            inner.registry = Registry::builtin();
            inner.watchers.clear();
            inner.history.clear();
        }
        self.seed();
        self.compact();
    }

    // ----- the typed operations the HTTP layer uses -----

    /// The object `name` in `namespace` (empty for cluster scope).
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let inner = self.lock();
        inner
            .objects
            .get(&rt.storage_key())
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .map(|o| as_version(o, rt))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Create `object` in `namespace` (empty for cluster scope).
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        object: Value,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let created = inner.create(rt, namespace, object)?;
        Ok(as_version(&created, rt))
    }

    /// Replace the object with `object`; a `metadata.resourceVersion` in it
    /// must be the current one (409 Conflict otherwise).
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let updated = inner.update(rt, namespace, name, object)?;
        Ok(as_version(&updated, rt))
    }

    /// Change the object atomically with `change`, which gets the current
    /// object (or None when absent) and returns the new one; None from a
    /// change of an absent object is 404. `check_rv` makes a
    /// `metadata.resourceVersion` in the result a precondition.
    pub fn modify(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        change: impl FnOnce(Option<Value>) -> Result<Option<Value>, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&rt.storage_key())
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .map(|o| as_version(o, rt));
        let existed = current.is_some();
        let current_rv = current.as_ref().and_then(|c| rv_of(c).ok().flatten());
        match change(current)? {
            None => Err(ApiError::not_found(&rt.group, &rt.plural, name)),
            Some(mut new) if existed => {
                // A patch may carry a resourceVersion precondition; without
                // one it applies to whatever is current.
                if rv_of(&new)?.is_none() {
                    if let Some(rv) = current_rv {
                        set_meta(&mut new, "resourceVersion", json!(rv.to_string()));
                    }
                }
                let updated = inner.update(rt, namespace, name, new)?;
                Ok((as_version(&updated, rt), false))
            }
            Some(new) => {
                let created = inner.create(rt, namespace, new)?;
                Ok((as_version(&created, rt), true))
            }
        }
    }

    /// Delete the object; `precondition_rv` / `precondition_uid` must match
    /// when given (409 otherwise). An object with finalizers is only marked
    /// (deletionTimestamp) until they are removed.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        precondition_rv: Option<&str>,
        precondition_uid: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&rt.storage_key())
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let meta = |f: &str| {
            current
                .pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
        };
        if precondition_rv.is_some_and(|p| Some(p) != meta("resourceVersion"))
            || precondition_uid.is_some_and(|p| Some(p) != meta("uid"))
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let deleted = inner.delete(rt, namespace, name)?;
        Ok(as_version(&deleted, rt))
    }

    /// List objects of type `rt`, matching `filter`.
    pub fn list(
        &self,
        rt: &ResourceType,
        query: &ListQuery<'_>,
        filter: impl Fn(&Value) -> bool,
    ) -> Result<ListResult, ApiError> {
        let inner = self.lock();
        let (at, start_after) = match query.continue_token {
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)?;
                if rv < inner.compacted {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (Some(rv), Some((ns, name)))
            }
            None => (query.exact_rv, None),
        };
        let snapshot = match at {
            Some(rv) if rv != inner.rv => inner.snapshot(rt, rv)?,
            _ => inner
                .objects
                .get(&rt.storage_key())
                .cloned()
                .unwrap_or_default(),
        };
        let rv = at.unwrap_or(inner.rv);
        drop(inner);
        let range = snapshot.iter().filter(|((ns, name), _)| {
            query.namespace.is_none_or(|n| n == ns)
                && start_after
                    .as_ref()
                    .is_none_or(|(sns, sname)| (ns, name) > (sns, sname))
        });
        let api_version = rt.api_version();
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0u64;
        for ((ns, name), obj) in range {
            if !filter(obj) {
                continue;
            }
            if query.limit > 0 && items.len() == query.limit {
                remaining += 1;
                continue;
            }
            // Shared with the store unless served at another version.
            items.push(
                if obj.get("apiVersion").and_then(Value::as_str) == Some(&api_version) {
                    obj.clone()
                } else {
                    Arc::new(as_version(obj, rt))
                },
            );
            last_key = Some((ns.clone(), name.clone()));
        }
        let (continue_token, remaining) = match (remaining, last_key) {
            (0, _) | (_, None) => (None, None),
            (n, Some((ns, name))) => (Some(encode_continue(rv, &ns, &name)), Some(n)),
        };
        Ok(ListResult {
            items,
            resource_version: rv,
            continue_token,
            remaining,
        })
    }

    /// Register a watch of type `rt` from resourceVersion `from` (None or
    /// 0: synthetic ADDED events for everything that exists now, then
    /// changes). 410 Gone if `from` is older than the compacted history.
    pub fn watch(&self, rt: &ResourceType, from: Option<u64>) -> Result<WatchStart, ApiError> {
        let mut inner = self.lock();
        let key = rt.storage_key();
        let (initial, start_rv) = match from {
            None | Some(0) => {
                let rv = inner.rv;
                let initial = inner
                    .objects
                    .get(&key)
                    .map(|m| {
                        m.iter()
                            .map(|((ns, name), o)| {
                                Arc::new(StoredEvent {
                                    rv: rv_of(o).ok().flatten().unwrap_or(rv),
                                    kind: EventType::Added,
                                    storage_key: key.clone(),
                                    namespace: ns.clone(),
                                    name: name.clone(),
                                    object: o.clone(),
                                    previous: None,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (initial, rv)
            }
            Some(n) if n < inner.compacted => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {n} ({})",
                    inner.compacted
                )));
            }
            Some(n) => (
                inner
                    .history
                    .iter()
                    .filter(|e| e.rv > n && e.storage_key == key)
                    .cloned()
                    .collect(),
                n,
            ),
        };
        let (tx, events) = unbounded_channel();
        inner.watchers.push(Watcher {
            storage_key: key,
            tx,
        });
        Ok(WatchStart {
            initial,
            start_rv,
            events,
        })
    }

    // ----- the convenience API for tests: objects carry their own type -----

    fn locate(&self, object: &Value) -> Result<(ResourceType, String, String), ApiError> {
        let field = |f: &str| {
            object
                .pointer(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let rt = self.resource_of_kind(field("/apiVersion"), field("/kind"))?;
        let namespace = match (rt.namespaced, field("/metadata/namespace")) {
            (true, "") => "default".to_string(),
            (true, ns) => ns.to_string(),
            (false, _) => String::new(),
        };
        Ok((rt, namespace, field("/metadata/name").to_string()))
    }

    /// Create `object` (its apiVersion and kind say where; a namespaced
    /// object without a namespace goes to `default`).
    pub fn create_object(&self, object: Value) -> Result<Value, ApiError> {
        let (rt, ns, _) = self.locate(&object)?;
        self.create(&rt, &ns, object)
    }

    /// Replace `object` (unconditionally when it carries no
    /// resourceVersion).
    pub fn update_object(&self, object: Value) -> Result<Value, ApiError> {
        let (rt, ns, name) = self.locate(&object)?;
        self.update(&rt, &ns, &name, object)
    }

    /// Create `object`, or replace it if it exists (unconditionally).
    pub fn apply_object(&self, mut object: Value) -> Result<Value, ApiError> {
        let (rt, ns, name) = self.locate(&object)?;
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        self.modify(&rt, &ns, &name, |_| Ok(Some(object)))
            .map(|(o, _)| o)
    }

    /// The object of `kind` at `api_version` named `name` (namespace ""
    /// for cluster scope), if it exists.
    pub fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let rt = self.resource_of_kind(api_version, kind).ok()?;
        self.get(&rt, namespace, name).ok()
    }

    /// Every object of `kind` at `api_version`, by namespace and name.
    pub fn list_objects(&self, api_version: &str, kind: &str) -> Result<Vec<Value>, ApiError> {
        let rt = self.resource_of_kind(api_version, kind)?;
        let list = self.list(&rt, &ListQuery::default(), |_| true)?;
        Ok(list.items.iter().map(|o| (**o).clone()).collect())
    }

    /// Delete the object of `kind` at `api_version` named `name`.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let rt = self.resource_of_kind(api_version, kind)?;
        self.delete(&rt, namespace, name, None, None)
    }
}

impl Inner {
    fn commit(
        &mut self,
        kind: EventType,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        object: Option<Value>,
        previous: Option<Arc<Value>>,
    ) -> Arc<Value> {
        let key = rt.storage_key();
        let objects = self.objects.entry(key.clone()).or_default();
        let object_key = (namespace.to_string(), name.to_string());
        let object = match object {
            Some(o) => {
                let o = Arc::new(o);
                objects.insert(object_key, o.clone());
                o
            }
            None => {
                objects.remove(&object_key);
                let mut gone = previous.as_deref().cloned().unwrap_or(Value::Null);
                set_meta(&mut gone, "resourceVersion", json!(self.rv.to_string()));
                Arc::new(gone)
            }
        };
        let event = Arc::new(StoredEvent {
            rv: self.rv,
            kind,
            storage_key: key.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            object: object.clone(),
            previous,
        });
        self.history.push_back(event.clone());
        if self.history.len() > self.history_limit {
            // Compact automatically, as etcd does: the oldest change goes.
            if let Some(oldest) = self.history.pop_front() {
                self.compacted = oldest.rv;
            }
        }
        self.watchers
            .retain(|w| w.storage_key != key || w.tx.send(event.clone()).is_ok());
        object
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let a = splitmix(nanos ^ self.uids);
        let b = splitmix(a ^ self.uids.rotate_left(32));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects
            .get("/namespaces")
            .is_some_and(|m| m.contains_key(&(String::new(), namespace.to_string())))
    }

    fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        check_object(&object, rt, namespace)?;
        let mut name = meta_str(&object, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&object, "generateName");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", &self.next_uid()[..5]);
            set_meta(&mut object, "name", json!(name));
        }
        check_name(&name, rt)?;
        if rt.namespaced && !self.namespace_exists(namespace) {
            return Err(ApiError::not_found("", "namespaces", namespace));
        }
        if rt.plural == "namespaces"
            && self
                .objects
                .get("/namespaces")
                .and_then(|m| m.get(&(String::new(), name.clone())))
                .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_some())
        {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("namespace {name:?} is being deleted"),
            ));
        }
        let key = (namespace.to_string(), name.clone());
        if self
            .objects
            .get(&rt.storage_key())
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let now = now_rfc3339();
        if rt.plural == "customresourcedefinitions" {
            let types = Registry::types_of_crd(&object)?;
            if let Some(t) = types.first() {
                if Registry::is_builtin(&t.group, &t.plural) {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        "spec.group: Invalid value: the name of a built-in resource",
                    ));
                }
                if name != format!("{}.{}", t.plural, t.group) {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        &format!("metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
                    ));
                }
            }
            object["status"] = crd_status(&object, &now);
            self.registry.add_crd(types);
        }
        defaults::apply(rt, &name, &mut object, None, self.objects.get("/services"))?;
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        self.rv += 1;
        let uid = self.next_uid();
        let meta = metadata_mut(&mut object);
        if rt.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("selfLink");
        let created = self.commit(EventType::Added, rt, namespace, &name, Some(object), None);
        Ok((*created).clone())
    }

    fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        check_object(&object, rt, namespace)?;
        let body_name = meta_str(&object, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let current = self
            .objects
            .get(&rt.storage_key())
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(rv) = rv_of(&object)? {
            if Some(rv) != rv_of(&current)? {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name));
            }
        }
        let body_uid = meta_str(&object, "uid");
        if !body_uid.is_empty() && body_uid != meta_str(&current, "uid") {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        if rt.plural == "customresourcedefinitions" {
            let types = Registry::types_of_crd(&object)?;
            if let Some(t) = types.first() {
                if current.pointer("/spec/group") != object.pointer("/spec/group")
                    || current.pointer("/spec/names/plural") != object.pointer("/spec/names/plural")
                {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        &format!(
                            "spec.group: Invalid value: {:?}: field is immutable",
                            t.group
                        ),
                    ));
                }
            }
            object["status"] = current
                .get("status")
                .cloned()
                .unwrap_or_else(|| crd_status(&object, &now_rfc3339()));
            self.registry.add_crd(types);
        }
        defaults::apply(
            rt,
            name,
            &mut object,
            Some(&current),
            self.objects.get("/services"),
        )?;
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        // Server-owned metadata stays as it was.
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let spec_changed = without_meta_and_status(&current) != without_meta_and_status(&object);
        self.rv += 1;
        let rv = self.rv;
        let meta = metadata_mut(&mut object);
        meta.insert("name".into(), json!(name));
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match current.pointer(&format!("/metadata/{f}")) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        if rt.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert(
            "generation".into(),
            json!(if spec_changed {
                generation + 1
            } else {
                generation
            }),
        );
        let finalized = meta.contains_key("deletionTimestamp")
            && meta
                .get("finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
        let previous = Some(current);
        if finalized {
            // The last finalizer is gone from an object being deleted.
            let gone = self.commit(
                EventType::Deleted,
                rt,
                namespace,
                name,
                None,
                Some(Arc::new(object)),
            );
            self.after_delete(rt, name);
            let _ = previous;
            return Ok((*gone).clone());
        }
        let updated = self.commit(
            EventType::Modified,
            rt,
            namespace,
            name,
            Some(object),
            previous,
        );
        Ok((*updated).clone())
    }

    fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = (namespace.to_string(), name.to_string());
        let current = self
            .objects
            .get(&rt.storage_key())
            .and_then(|m| m.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if rt.plural == "namespaces" {
            self.delete_namespace_contents(name);
        }
        if has_finalizers {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok((*current).clone());
            }
            let mut marked = (*current).clone();
            self.rv += 1;
            let rv = self.rv;
            let meta = metadata_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            let marked = self.commit(
                EventType::Modified,
                rt,
                namespace,
                name,
                Some(marked),
                Some(current),
            );
            return Ok((*marked).clone());
        }
        self.rv += 1;
        let gone = self.commit(EventType::Deleted, rt, namespace, name, None, Some(current));
        self.after_delete(rt, name);
        Ok((*gone).clone())
    }

    fn after_delete(&mut self, rt: &ResourceType, name: &str) {
        if rt.plural != "customresourcedefinitions" {
            return;
        }
        if let Some((plural, group)) = name.split_once('.') {
            let served: Vec<ResourceType> = self
                .registry
                .all()
                .filter(|t| t.group == group && t.plural == plural)
                .cloned()
                .collect();
            if let Some(t) = served.first() {
                let keys: Vec<ObjectKey> = self
                    .objects
                    .get(&t.storage_key())
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                for (ns, n) in keys {
                    let _ = self.delete_unconditionally(t, &ns, &n);
                }
            }
            self.registry.remove_crd(group, plural);
        }
    }

    fn delete_unconditionally(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Option<()> {
        let current = self
            .objects
            .get(&rt.storage_key())?
            .get(&(namespace.to_string(), name.to_string()))?
            .clone();
        self.rv += 1;
        self.commit(EventType::Deleted, rt, namespace, name, None, Some(current));
        Some(())
    }

    fn delete_namespace_contents(&mut self, namespace: &str) {
        let types: Vec<ResourceType> = self
            .registry
            .all()
            .filter(|t| t.namespaced)
            .cloned()
            .collect();
        let mut seen = Vec::new();
        for t in types {
            if seen.contains(&t.storage_key()) {
                continue;
            }
            seen.push(t.storage_key());
            let names: Vec<String> = self
                .objects
                .get(&t.storage_key())
                .map(|m| {
                    m.keys()
                        .filter(|(ns, _)| ns == namespace)
                        .map(|(_, n)| n.clone())
                        .collect()
                })
                .unwrap_or_default();
            for n in names {
                self.delete_unconditionally(&t, namespace, &n);
            }
        }
    }

    /// The objects of `rt` as they were at resourceVersion `rv`: the current
    /// ones with the history after `rv` undone.
    fn snapshot(
        &self,
        rt: &ResourceType,
        rv: u64,
    ) -> Result<BTreeMap<ObjectKey, Arc<Value>>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                self.compacted
            )));
        }
        if rv > self.rv {
            return Err(ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {rv}, current: {}", self.rv),
            ));
        }
        let key = rt.storage_key();
        let mut objects = self.objects.get(&key).cloned().unwrap_or_default();
        for e in self.history.iter().rev().take_while(|e| e.rv > rv) {
            if e.storage_key != key {
                continue;
            }
            let k = (e.namespace.clone(), e.name.clone());
            match &e.previous {
                None => {
                    objects.remove(&k);
                }
                Some(p) => {
                    objects.insert(k, p.clone());
                }
            }
        }
        Ok(objects)
    }
}

fn check_object(object: &Value, rt: &ResourceType, namespace: &str) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of a {} must be a JSON object",
            rt.kind
        )));
    }
    if let Some(m) = object.get("metadata") {
        if !m.is_object() {
            return Err(ApiError::bad_request("metadata: must be an object"));
        }
    }
    let field = |f: &str| object.get(f).and_then(Value::as_str).unwrap_or_default();
    if !field("kind").is_empty() && field("kind") != rt.kind {
        return Err(ApiError::bad_request(format!(
            "kind: the object of kind {:?} was sent to the {} endpoint",
            field("kind"),
            rt.qualified_plural()
        )));
    }
    let api_version = field("apiVersion");
    let served_group = |av: &str| match av.split_once('/') {
        Some((g, _)) => g.to_string(),
        None => String::new(),
    };
    if !api_version.is_empty() && served_group(api_version) != rt.group {
        return Err(ApiError::bad_request(format!(
            "apiVersion: {api_version:?} does not belong to the group of {}",
            rt.qualified_plural()
        )));
    }
    let body_ns = meta_str(object, "namespace");
    if rt.namespaced && !body_ns.is_empty() && body_ns != namespace {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({namespace})"
        )));
    }
    if let Some(labels) = object.pointer("/metadata/labels") {
        let ok = labels
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string));
        if !ok {
            return Err(ApiError::invalid(
                &rt.kind,
                "metadata.labels: Invalid value: must map strings to strings",
            ));
        }
    }
    Ok(())
}

fn check_name(name: &str, rt: &ResourceType) -> Result<(), ApiError> {
    let ok = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &format!("{} {name:?}", rt.kind),
            &format!("metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
        ))
    }
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn metadata_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

fn set_meta(object: &mut Value, field: &str, value: Value) {
    if object.is_object() {
        metadata_mut(object).insert(field.to_string(), value);
    }
}

/// The object's `metadata.resourceVersion` as a number (None if absent or
/// empty; 400 if not a number).
pub fn rv_of(object: &Value) -> Result<Option<u64>, ApiError> {
    match object.pointer("/metadata/resourceVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("metadata.resourceVersion: invalid value {s:?}: not a resource version from this server"))
        }),
        Some(other) => Err(ApiError::bad_request(format!(
            "metadata.resourceVersion: must be a string, got {other}"
        ))),
    }
}

fn without_meta_and_status(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// The object as served at `rt`'s version (CRDs may serve several).
fn as_version(object: &Value, rt: &ResourceType) -> Value {
    let mut o = object.clone();
    if o.is_object() {
        o["apiVersion"] = json!(rt.api_version());
    }
    o
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let plain = format!("{rv}\n{namespace}\n{name}");
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue: invalid continue token {token:?}"));
    // Two hex digits a byte; an odd digit left over is refused.
    let bytes: Option<Vec<u8>> = token
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .filter(|pair| pair.len() == 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    let plain = String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let mut parts = plain.splitn(3, '\n');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, ns, name))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, data: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default"}, "data": {"k": data}})
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns", "a\nb");
        assert_eq!(
            decode_continue(&t).expect("decode"),
            (42, "ns".into(), "a\nb".into())
        );
        assert!(decode_continue("zz").is_err());
        assert!(decode_continue(&t[1..]).is_err(), "an odd number of digits");
    }

    #[test]
    fn create_update_conflict_delete() {
        let s = Store::new();
        let rv0 = s.resource_version();
        let a = s.create_object(cm("a", "1")).expect("create");
        assert_eq!(rv_of(&a).expect("rv"), Some(rv0 + 1));
        assert_eq!(a["metadata"]["generation"], 1);
        assert_eq!(a["metadata"]["uid"].as_str().map(str::len), Some(36));
        let e = s.create_object(cm("a", "1")).expect_err("exists");
        assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
        let mut stale = a.clone();
        stale["data"]["k"] = json!("2");
        let b = s.update_object(stale.clone()).expect("update");
        assert_eq!(b["metadata"]["generation"], 2);
        assert_eq!(b["metadata"]["uid"], a["metadata"]["uid"]);
        let e = s.update_object(stale).expect_err("stale");
        assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
        let e = s
            .create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "nope"}}))
            .expect_err("no namespace");
        assert_eq!(e.code, 404);
        assert!(e.message.contains("nope"), "{}", e.message);
        s.delete_object("v1", "ConfigMap", "default", "a")
            .expect("delete");
        assert!(s.get_object("v1", "ConfigMap", "default", "a").is_none());
    }

    #[test]
    fn snapshots_and_paging_are_consistent() {
        let s = Store::new();
        for i in 0..5 {
            s.create_object(cm(&format!("c{i}"), "x")).expect("create");
        }
        let rt = s.resource_of_kind("v1", "ConfigMap").expect("rt");
        let page = s
            .list(
                &rt,
                &ListQuery {
                    limit: 2,
                    ..Default::default()
                },
                |_| true,
            )
            .expect("page 1");
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.remaining, Some(3));
        // Changes after the first page do not show on later pages.
        s.delete_object("v1", "ConfigMap", "default", "c3")
            .expect("delete");
        s.create_object(cm("c9", "x")).expect("create");
        let token = page.continue_token.expect("token");
        let page2 = s
            .list(
                &rt,
                &ListQuery {
                    limit: 10,
                    continue_token: Some(&token),
                    ..Default::default()
                },
                |_| true,
            )
            .expect("page 2");
        let names: Vec<&str> = page2
            .items
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["c2", "c3", "c4"]);
        assert_eq!(page2.resource_version, page.resource_version);
        s.compact();
        let e = s
            .list(
                &rt,
                &ListQuery {
                    limit: 10,
                    continue_token: Some(&token),
                    ..Default::default()
                },
                |_| true,
            )
            .expect_err("compacted");
        assert_eq!(e.code, 410);
    }

    #[test]
    fn services_get_cluster_ips_and_namespaces_their_label() {
        let s = Store::new();
        let svc = |name: &str, ip: Option<&str>| {
            let mut o = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default"}, "spec": {"ports": [{"port": 80}]}});
            if let Some(ip) = ip {
                o["spec"]["clusterIP"] = json!(ip);
            }
            o
        };
        let a = s.create_object(svc("a", None)).expect("a");
        assert_eq!(a["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(a["spec"]["clusterIPs"], json!(["10.96.0.1"]));
        assert_eq!(a["spec"]["type"], "ClusterIP");
        let b = s.create_object(svc("b", Some("10.96.0.2"))).expect("b");
        assert_eq!(b["spec"]["clusterIP"], "10.96.0.2");
        let c = s.create_object(svc("c", None)).expect("c");
        assert_eq!(c["spec"]["clusterIP"], "10.96.0.3");
        let e = s
            .create_object(svc("d", Some("10.96.0.1")))
            .expect_err("taken");
        assert_eq!(e.code, 422);
        // An update without the IP keeps it; one that changes it is refused.
        let kept = s.update_object(svc("a", None)).expect("update");
        assert_eq!(kept["spec"]["clusterIP"], "10.96.0.1");
        let e = s
            .update_object(svc("a", Some("10.96.0.9")))
            .expect_err("immutable");
        assert!(e.message.contains("spec.clusterIP"), "{}", e.message);
        let ns = s
            .create_object(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
            )
            .expect("ns");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "n");
        assert_eq!(ns["status"]["phase"], "Active");
    }

    #[test]
    fn the_history_compacts_itself_past_its_limit() {
        let s = Store::new();
        s.set_history_limit(3);
        let rt = s.resource_of_kind("v1", "ConfigMap").expect("rt");
        let first = s.create_object(cm("h0", "x")).expect("h0");
        let from = rv_of(&first).expect("rv").expect("rv");
        s.watch(&rt, Some(from)).expect("within the history");
        for i in 1..4 {
            s.create_object(cm(&format!("h{i}"), "x")).expect("create");
        }
        // Three changes kept: h1..h3; watching from h1's version still works.
        assert_eq!(
            s.watch(&rt, Some(from + 1))
                .expect("h2 and h3")
                .initial
                .len(),
            2
        );
        let e = s.watch(&rt, Some(from - 1)).expect_err("h0 is gone");
        assert_eq!(e.code, 410);
    }

    #[test]
    fn finalizers_hold_deletion_and_namespaces_take_their_objects() {
        let s = Store::new();
        s.create_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}),
        )
        .expect("ns");
        let mut o = cm("held", "x");
        o["metadata"]["namespace"] = json!("t");
        o["metadata"]["finalizers"] = json!(["example.com/hold"]);
        s.create_object(o).expect("create");
        let marked = s
            .delete_object("v1", "ConfigMap", "t", "held")
            .expect("mark");
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        let mut released = s
            .get_object("v1", "ConfigMap", "t", "held")
            .expect("still there");
        released["metadata"]["finalizers"] = json!([]);
        s.update_object(released).expect("release");
        assert!(s.get_object("v1", "ConfigMap", "t", "held").is_none());
        let mut o = cm("inside", "x");
        o["metadata"]["namespace"] = json!("t");
        s.create_object(o).expect("create");
        s.delete_object("v1", "Namespace", "", "t")
            .expect("delete ns");
        assert!(s.get_object("v1", "ConfigMap", "t", "inside").is_none());
    }
}
