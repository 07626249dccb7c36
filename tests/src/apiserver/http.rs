//! The HTTP surface: one handler that routes Kubernetes API paths
//! (`/api/v1/...`, `/apis/GROUP/VERSION/...`, namespaced and cluster-scoped,
//! with `/status` subresources) to the store, plus discovery, `/version`,
//! OpenAPI and health endpoints. Faults are injected here, before routing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::discovery;
use super::error::ApiError;
use super::faults::Faults;
use super::patch;
use super::render::{partial_metadata, table, TableOptions};
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{ListQuery, Store};
use super::watch::{self, WatchParams};

/// How long a watch lasts when the client gives no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The objects.
    pub store: Arc<Store>,
    /// Faults to inject and the request log.
    pub faults: Arc<Faults>,
    /// `host:port` the server listens on (for `/api`).
    pub address: String,
    /// How often watches with bookmarks send one.
    pub bookmark_interval: Arc<std::sync::Mutex<Duration>>,
}

/// The router of a test API server.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

type Params = HashMap<String, String>;

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let logged_uri = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let content_type = content_type.as_str();
    let delay = state.faults.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = match state.faults.take_failure(&path) {
        Some(e) => error_response(&e),
        None => {
            let params = match Query::<Params>::try_from_uri(&uri) {
                Ok(Query(p)) => p,
                Err(_) => {
                    let e = ApiError::bad_request("the query string could not be parsed");
                    state
                        .faults
                        .record(method.as_str(), &logged_uri, content_type, e.code);
                    return error_response(&e);
                }
            };
            let request = Request {
                method: &method,
                path: &path,
                params: &params,
                headers: &headers,
                body: &body,
            };
            match route(&state, &request) {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
    };
    state.faults.record(
        method.as_str(),
        &logged_uri,
        content_type,
        response.status().as_u16(),
    );
    response
}

struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    params: &'a Params,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }
}

/// A response with a JSON body.
fn json_response(status: u16, body: &Value) -> Response {
    json_typed(status, body, "application/json")
}

fn json_typed(status: u16, body: &Value, content_type: &str) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// The Status response for an error.
pub fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.status());
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Where a resource path points.
#[derive(Debug)]
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn route(state: &AppState, req: &Request<'_>) -> Result<Response, ApiError> {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let registry = state.store.registry();
    let get_only = || -> Result<(), ApiError> {
        if req.method == Method::GET {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(req.method.as_str()))
        }
    };
    let accept = req.header(header::ACCEPT);
    let (api_version, rest) = match segments.as_slice() {
        ["version"] => {
            get_only()?;
            return Ok(json_response(200, &discovery::version()));
        }
        ["healthz" | "livez" | "readyz"] => return Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => {
            get_only()?;
            return Ok(if discovery::wants_aggregated(accept) {
                json_typed(
                    200,
                    &discovery::aggregated(&registry, true),
                    discovery::AGGREGATED_V2,
                )
            } else {
                json_response(200, &discovery::core_versions(&state.address))
            });
        }
        ["apis"] => {
            get_only()?;
            return Ok(if discovery::wants_aggregated(accept) {
                json_typed(
                    200,
                    &discovery::aggregated(&registry, false),
                    discovery::AGGREGATED_V2,
                )
            } else {
                json_response(200, &discovery::group_list(&registry))
            });
        }
        ["apis", group] => {
            get_only()?;
            return discovery::group(&registry, group)
                .map(|g| json_response(200, &g))
                .ok_or_else(|| ApiError::no_route(req.path));
        }
        ["openapi", "v3"] => {
            get_only()?;
            return Ok(json_response(200, &discovery::openapi_v3_root(&registry)));
        }
        ["openapi", "v3", "api", version] => {
            get_only()?;
            return discovery::openapi_v3_document(&registry, version)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| ApiError::no_route(req.path));
        }
        ["openapi", "v3", "apis", group, version] => {
            get_only()?;
            return discovery::openapi_v3_document(&registry, &format!("{group}/{version}"))
                .map(|d| json_response(200, &d))
                .ok_or_else(|| ApiError::no_route(req.path));
        }
        ["api", version, rest @ ..] => (version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return Err(ApiError::no_route(req.path)),
    };
    let find = |plural: &str| registry.by_plural(&api_version, plural).cloned();
    let unknown = || ApiError::no_route(req.path);
    let target = match rest {
        [] => {
            get_only()?;
            return discovery::resource_list(&registry, &api_version)
                .map(|l| json_response(200, &l))
                .ok_or_else(unknown);
        }
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|t| t.namespaced) => {
            let rt = find(plural).ok_or_else(unknown)?;
            match tail {
                [] => Target {
                    rt,
                    namespace: Some(ns.to_string()),
                    name: None,
                    subresource: None,
                },
                [name] => Target {
                    rt,
                    namespace: Some(ns.to_string()),
                    name: Some(name.to_string()),
                    subresource: None,
                },
                [name, sub] => Target {
                    rt,
                    namespace: Some(ns.to_string()),
                    name: Some(name.to_string()),
                    subresource: Some(sub.to_string()),
                },
                _ => return Err(unknown()),
            }
        }
        [plural, tail @ ..] => {
            let rt = find(plural).ok_or_else(unknown)?;
            match tail {
                [] => Target {
                    rt,
                    namespace: None,
                    name: None,
                    subresource: None,
                },
                [name] if !rt.namespaced => Target {
                    rt,
                    namespace: None,
                    name: Some(name.to_string()),
                    subresource: None,
                },
                [name, sub] if !rt.namespaced => Target {
                    rt,
                    namespace: None,
                    name: Some(name.to_string()),
                    subresource: Some(sub.to_string()),
                },
                _ => return Err(unknown()),
            }
        }
    };
    if let Some(sub) = &target.subresource {
        let finalize = target.rt.plural == "namespaces" && sub == "finalize";
        if !(target.rt.subresources.contains(sub) || finalize) {
            return Err(unknown());
        }
    }
    resource(state, req, target)
}

fn resource(state: &AppState, req: &Request<'_>, target: Target) -> Result<Response, ApiError> {
    let Target {
        rt,
        namespace,
        name,
        subresource,
    } = target;
    let store = &state.store;
    let ns = namespace.clone().unwrap_or_default();
    match (req.method, name) {
        (&Method::GET, None) => {
            if req.flag("watch") {
                return start_watch(state, req, &rt, namespace);
            }
            list(state, req, &rt, namespace.as_deref())
        }
        (&Method::GET, Some(name)) => {
            let object = store.get(&rt, &ns, &name)?;
            Ok(object_response(req, &rt, 200, &object))
        }
        (&Method::POST, None) => {
            let object = parse_body(req, &rt)?;
            check_namespace(&rt, namespace.as_deref())?;
            if req.dry_run() {
                return Ok(json_response(201, &object));
            }
            let created = store.create(&rt, &ns, object)?;
            Ok(object_response(req, &rt, 201, &created))
        }
        (&Method::PUT, Some(name)) => {
            let mut object = parse_body(req, &rt)?;
            if subresource.as_deref() == Some("status") {
                // Only the status changes through the status subresource.
                let status = object.get("status").cloned();
                let (updated, _) = store.modify(&rt, &ns, &name, |current| {
                    let Some(mut current) = current else {
                        return Ok(None);
                    };
                    if let Some(rv) = object.pointer("/metadata/resourceVersion") {
                        current["metadata"]["resourceVersion"] = rv.clone();
                    }
                    match status {
                        Some(s) => current["status"] = s,
                        None => {
                            if let Some(m) = current.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                    Ok(Some(current))
                })?;
                return Ok(object_response(req, &rt, 200, &updated));
            }
            if req.dry_run() {
                return Ok(json_response(200, &object));
            }
            if rt.plural == "namespaces" && subresource.as_deref() == Some("finalize") {
                object = store.get(&rt, &ns, &name)?;
            }
            let updated = store.update(&rt, &ns, &name, object)?;
            Ok(object_response(req, &rt, 200, &updated))
        }
        (&Method::PATCH, Some(name)) => {
            patch_object(state, req, &rt, &ns, &name, subresource.as_deref())
        }
        (&Method::DELETE, Some(name)) => {
            let options: Value = if req.body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(req.body)
                    .map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?
            };
            let pre_rv = options
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let pre_uid = options
                .pointer("/preconditions/uid")
                .and_then(Value::as_str);
            if req.dry_run() {
                let current = store.get(&rt, &ns, &name)?;
                return Ok(json_response(200, &current));
            }
            let deleted = store.delete(&rt, &ns, &name, pre_rv, pre_uid)?;
            Ok(object_response(req, &rt, 200, &deleted))
        }
        (&Method::DELETE, None) => {
            let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or_default())?;
            let fields = FieldSelector::parse(req.param("fieldSelector").unwrap_or_default(), &rt)?;
            let query = ListQuery {
                namespace: namespace.as_deref(),
                ..Default::default()
            };
            let list = store.list(&rt, &query, |o| labels.matches(o) && fields.matches(o))?;
            let mut deleted = Vec::new();
            for o in &list.items {
                let n = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let o_ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match store.delete(&rt, o_ns, n, None, None) {
                    Ok(d) => deleted.push(d),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let rv = state.store.resource_version();
            Ok(list_response(
                &rt,
                &deleted.into_iter().map(Arc::new).collect::<Vec<_>>(),
                rv,
                None,
                None,
            ))
        }
        (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

fn check_namespace(rt: &ResourceType, namespace: Option<&str>) -> Result<(), ApiError> {
    if rt.namespaced && namespace.is_none() {
        return Err(ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource: {} must be created in a namespace (POST .../namespaces/NAMESPACE/{})", rt.kind, rt.plural),
        ));
    }
    Ok(())
}

fn parse_body(req: &Request<'_>, rt: &ResourceType) -> Result<Value, ApiError> {
    let content_type = req.header(header::CONTENT_TYPE);
    if content_type.contains("yaml") {
        return serde_yaml::from_slice(req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the {} is not valid YAML: {e}",
                rt.kind
            ))
        });
    }
    if !content_type.is_empty() && !content_type.contains("json") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    serde_json::from_slice(req.body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the {} is not valid JSON: {e}",
            rt.kind
        ))
    })
}

fn patch_object(
    state: &AppState,
    req: &Request<'_>,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    subresource: Option<&str>,
) -> Result<Response, ApiError> {
    let content_type = req.header(header::CONTENT_TYPE);
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let body: Value = match media {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            serde_yaml::from_slice(req.body).map_err(|e| {
                ApiError::bad_request(format!(
                    "apply patch: the body is not valid YAML or JSON: {e}"
                ))
            })?
        }
        "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => {
            serde_json::from_slice(req.body).map_err(|e| {
                ApiError::bad_request(format!("patch: the body is not valid JSON: {e}"))
            })?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let status_only = subresource == Some("status");
    let apply = media.starts_with("application/apply-patch");
    if apply && req.param("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "fieldManager: Required value: is required for apply patch",
        ));
    }
    let dry_run = req.dry_run();
    let (object, created) = state
        .store
        .modify(rt, ns, name, |current| {
            let Some(mut current) = current else {
                if !apply {
                    return Ok(None);
                }
                // Server-side apply creates what is absent.
                let mut fresh = body.clone();
                if fresh.pointer("/metadata/name").is_none() {
                    fresh["metadata"]["name"] = json!(name);
                }
                return Ok(Some(fresh));
            };
            let before = current.clone();
            match media {
                "application/json-patch+json" => patch::json_patch(&mut current, &body)?,
                "application/merge-patch+json" => patch::merge(&mut current, &body),
                "application/strategic-merge-patch+json" => {
                    patch::strategic_merge(&mut current, &body)?
                }
                _ => {
                    // Server-side apply, as a merge: no field ownership, so
                    // fields the manager dropped are not removed.
                    let mut b = body.clone();
                    if let Some(m) = b.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    patch::strategic_merge(&mut current, &b)?
                }
            }
            if status_only {
                let mut only = before;
                match current.get("status") {
                    Some(s) => only["status"] = s.clone(),
                    None => {
                        if let Some(m) = only.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                if let Some(rv) = current.pointer("/metadata/resourceVersion") {
                    only["metadata"]["resourceVersion"] = rv.clone();
                }
                current = only;
            }
            if dry_run {
                return Err(ApiError::new(299, "DryRun", current.to_string()));
            }
            Ok(Some(current))
        })
        .or_else(|e| {
            if e.code == 299 {
                serde_json::from_str(&e.message)
                    .map(|v| (v, false))
                    .map_err(|_| e)
            } else {
                Err(e)
            }
        })?;
    Ok(object_response(
        req,
        rt,
        if created { 201 } else { 200 },
        &object,
    ))
}

fn list(
    state: &AppState,
    req: &Request<'_>,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(req.param("fieldSelector").unwrap_or_default(), rt)?;
    let limit = match req.param("limit") {
        None => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| {
                ApiError::bad_request(format!("limit: invalid value {l:?}: must be an integer"))
            })?
            .max(0) as usize,
    };
    let continue_token = req.param("continue");
    let rv = req.param("resourceVersion");
    if continue_token.is_some() && rv.is_some_and(|r| r != "0") {
        return Err(ApiError::bad_request(
            "resourceVersion: specifying resource version is not allowed when using continue",
        ));
    }
    let exact_rv = match (req.param("resourceVersionMatch"), rv) {
        (Some("Exact"), Some(r)) => Some(parse_rv(r)?),
        (Some("Exact"), None) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch: \"Exact\" requires a resourceVersion",
            ))
        }
        (Some("NotOlderThan") | None, Some(r)) => {
            let n = parse_rv(r)?;
            let current = state.store.resource_version();
            if n > current {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {n}, current: {current}"),
                ));
            }
            None
        }
        (Some("NotOlderThan") | None, None) => None,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            )))
        }
    };
    let query = ListQuery {
        namespace,
        limit,
        continue_token,
        exact_rv,
    };
    let result = state
        .store
        .list(rt, &query, |o| labels.matches(o) && fields.matches(o))?;
    if let Some(options) = table_options(req) {
        let mut t = table(rt, &result.items, Some(result.resource_version), &options);
        if let Some(c) = &result.continue_token {
            t["metadata"]["continue"] = json!(c);
        }
        return Ok(json_response(200, &t));
    }
    if wants_metadata(req) {
        let items: Vec<Value> = result.items.iter().map(|o| partial_metadata(o)).collect();
        let mut metadata = json!({"resourceVersion": result.resource_version.to_string()});
        if let Some(c) = &result.continue_token {
            metadata["continue"] = json!(c);
        }
        return Ok(json_response(
            200,
            &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata, "items": items}),
        ));
    }
    Ok(list_response(
        rt,
        &result.items,
        result.resource_version,
        result.continue_token,
        result.remaining,
    ))
}

fn parse_rv(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "resourceVersion: invalid value {text:?}: not a resource version from this server"
        ))
    })
}

/// A `KIND List`, written item by item: large lists (thousands of
/// EndpointSlices) are not copied into one JSON value first.
fn list_response(
    rt: &ResourceType,
    items: &[Arc<Value>],
    rv: u64,
    continue_token: Option<String>,
    remaining: Option<u64>,
) -> Response {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        metadata["remainingItemCount"] = json!(r);
    }
    let head = json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": metadata,
    })
    .to_string();
    let mut body = Vec::with_capacity(head.len() + 16 + items.len() * 512);
    // `{"kind":…,"metadata":{…}` then `,"items":[…]}`.
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if serde_json::to_writer(&mut body, &**item).is_err() {
            return error_response(&ApiError::new(
                500,
                "InternalError",
                "an object could not be written as JSON",
            ));
        }
    }
    body.extend_from_slice(b"]}");
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn start_watch(
    state: &AppState,
    req: &Request<'_>,
    rt: &ResourceType,
    namespace: Option<String>,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(req.param("fieldSelector").unwrap_or_default(), rt)?;
    let timeout = match req.param("timeoutSeconds") {
        None => DEFAULT_WATCH_TIMEOUT,
        Some(t) => Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "timeoutSeconds: invalid value {t:?}: must be a whole number of seconds"
            ))
        })?),
    };
    let send_initial_events = req.flag("sendInitialEvents");
    let bookmarks = req.flag("allowWatchBookmarks");
    if send_initial_events
        && (!bookmarks || req.param("resourceVersionMatch") != Some("NotOlderThan"))
    {
        return Err(ApiError::invalid(
            "ListOptions",
            "sendInitialEvents: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks to true",
        ));
    }
    let from = match req.param("resourceVersion") {
        None => None,
        Some(r) => Some(parse_rv(r)?),
    };
    let from = if send_initial_events { None } else { from };
    let params = WatchParams {
        rt: rt.clone(),
        namespace,
        labels,
        fields,
        bookmarks,
        send_initial_events,
        timeout,
        bookmark_interval: *state
            .bookmark_interval
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
        table: table_options(req),
        metadata_only: wants_metadata(req),
        api_version: rt.api_version(),
    };
    let body = match state.store.watch(rt, from) {
        Ok(start) => watch::stream(state.store.clone(), start, params),
        Err(e) if e.code == 410 => watch::expired_stream(&e),
        Err(e) => return Err(e),
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

/// How the client asked for a `meta.k8s.io/v1` Table (kubectl get), if it did.
fn table_options(req: &Request<'_>) -> Option<TableOptions> {
    let accept = req.header(header::ACCEPT);
    let first = accept.split(',').next().unwrap_or_default();
    if !first.contains("as=Table") {
        return None;
    }
    Some(TableOptions {
        include_object: req.param("includeObject") == Some("Object"),
    })
}

/// Whether the client asked for `PartialObjectMetadata` (kube-rs
/// `list_metadata`, `metadata_watcher`).
fn wants_metadata(req: &Request<'_>) -> bool {
    let accept = req.header(header::ACCEPT);
    let first = accept.split(',').next().unwrap_or_default();
    first.contains("as=PartialObjectMetadata")
}

fn object_response(req: &Request<'_>, rt: &ResourceType, status: u16, object: &Value) -> Response {
    if wants_metadata(req) {
        return json_response(status, &partial_metadata(object));
    }
    match table_options(req) {
        Some(options) => json_response(
            status,
            &table(rt, &[Arc::new(object.clone())], None, &options),
        ),
        None => json_response(status, object),
    }
}
