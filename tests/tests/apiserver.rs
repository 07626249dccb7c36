//! Integration tests of the test Kubernetes API server (`kxdp_tests::apiserver`):
//! the list/watch protocol spoken over real HTTP with a plain HTTP client
//! (hyper), and the real `kubectl` applying manifests to it.
//!
//! No network namespace and no privilege: the server listens on 127.0.0.1.
//! `kubectl` tests skip with a printed reason when kubectl is missing,
//! except under CI=true, where they fail.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kxdp_tests::apiserver::{RestartStore, TestApiServer};
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Value>,
    accept: Option<&str>,
) -> Result<hyper::Response<Incoming>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    if let Some(a) = accept {
        builder = builder.header(header::ACCEPT, a);
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = builder
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| format!("request: {e}"))?;
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("{path}: {e}"))
}

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    call_accept(addr, method, path, content_type, body, None).await
}

async fn call_accept(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Value>,
    accept: Option<&str>,
) -> Reply {
    let response = send(addr, method.clone(), path, content_type, body, accept)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"))
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    call(addr, Method::GET, path, None, None).await
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    call(
        addr,
        Method::POST,
        path,
        Some("application/json"),
        Some(body),
    )
    .await
}

/// A watch response read line by line.
struct Watch {
    body: Incoming,
    buffer: Vec<u8>,
    path: String,
}

impl Watch {
    async fn open(addr: SocketAddr, path: &str) -> Watch {
        let response = send(addr, Method::GET, path, None, None, None)
            .await
            .unwrap_or_else(|e| panic!("watch {path}: {e}"));
        assert_eq!(response.status().as_u16(), 200, "watch {path}");
        Watch {
            body: response.into_body(),
            buffer: Vec::new(),
            path: path.to_string(),
        }
    }

    /// The next event, or None when the stream ends; panics after `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                return Some(serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "watch {}: bad line {:?}: {e}",
                        self.path,
                        String::from_utf8_lossy(&line)
                    )
                }));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("watch {}: no event within {wait:?}", self.path));
            match frame {
                None => return None,
                Some(Err(e)) => panic!("watch {}: {e}", self.path),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    async fn next(&mut self) -> Value {
        match self.next_within(Duration::from_secs(5)).await {
            Some(e) => e,
            None => panic!("watch {}: the stream ended", self.path),
        }
    }

    /// The next event that is not a BOOKMARK.
    async fn next_change(&mut self) -> Value {
        loop {
            let e = self.next().await;
            if e["type"] != "BOOKMARK" {
                return e;
            }
        }
    }
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "labels": labels},
           "data": {"k": "v"}})
}

fn pod(name: &str, node: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "labels": labels},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {object}"))
}

fn assert_status(reply: &Reply, code: u16, reason: &str) {
    assert_eq!(reply.status, code, "{:?}", reply.body);
    assert_eq!(reply.body["kind"], "Status", "{:?}", reply.body);
    assert_eq!(reply.body["code"], code, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], reason, "{:?}", reply.body);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_at_one_resource_version() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    for i in 0..25 {
        let r = post(
            addr,
            "/api/v1/namespaces/default/configmaps",
            &configmap(&format!("cm-{i:02}"), json!({})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let first = get(addr, "/api/v1/namespaces/default/configmaps?limit=10").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["kind"], "ConfigMapList");
    assert_eq!(first.body["metadata"]["remainingItemCount"], 15);
    let list_rv = rv(&first.body);
    let mut seen = names(&first.body);
    // Changes after the first page must not show on the next pages.
    server
        .store()
        .delete_object("v1", "ConfigMap", "default", "cm-15")
        .expect("delete");
    server
        .store()
        .create_object(configmap("cm-99", json!({})))
        .expect("create");
    let mut token = first.body["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    let mut pages = 1;
    loop {
        let page = get(
            addr,
            &format!("/api/v1/namespaces/default/configmaps?limit=10&continue={token}"),
        )
        .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        assert_eq!(
            rv(&page.body),
            list_rv,
            "every page is at the first page's resourceVersion"
        );
        seen.extend(names(&page.body));
        pages += 1;
        match page.body["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // A fresh list sees the changes.
    let now = get(addr, "/api/v1/configmaps").await;
    let now_names = names(&now.body);
    assert!(now_names.contains(&"cm-99".to_string()) && !now_names.contains(&"cm-15".to_string()));
    assert!(rv(&now.body) > list_rv);
    // Once the history is compacted, the old token is Gone.
    server.compact_history();
    let gone = get(
        addr,
        &format!("/api/v1/namespaces/default/configmaps?limit=10&continue={token}"),
    )
    .await;
    assert_status(&gone, 410, "Expired");
    let bad = get(addr, "/api/v1/configmaps?continue=nonsense").await;
    assert_status(&bad, 400, "BadRequest");
}

#[tokio::test]
async fn label_and_field_selectors() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    let s = server.store();
    s.create_object(pod("a", "node-1", json!({"app": "web", "tier": "front"})))
        .expect("a");
    s.create_object(pod("b", "node-1", json!({"app": "db"})))
        .expect("b");
    s.create_object(pod("c", "node-2", json!({"app": "web"})))
        .expect("c");
    s.create_object(pod("d", "node-2", json!({}))).expect("d");
    let cases = [
        ("labelSelector=app%3Dweb", vec!["a", "c"]),
        ("labelSelector=app%3D%3Dweb,tier%3Dfront", vec!["a"]),
        ("labelSelector=app!%3Dweb", vec!["b", "d"]),
        ("labelSelector=app%20in%20(db,web)", vec!["a", "b", "c"]),
        ("labelSelector=app%20notin%20(web)", vec!["b", "d"]),
        ("labelSelector=tier", vec!["a"]),
        ("labelSelector=!app", vec!["d"]),
        ("fieldSelector=spec.nodeName%3Dnode-1", vec!["a", "b"]),
        (
            "fieldSelector=spec.nodeName!%3Dnode-1,metadata.name!%3Dd",
            vec!["c"],
        ),
        ("fieldSelector=metadata.name%3Db", vec!["b"]),
        (
            "fieldSelector=metadata.namespace%3Ddefault&labelSelector=app%3Dweb",
            vec!["a", "c"],
        ),
        (
            "fieldSelector=spec.nodeName%3Dnode-2&labelSelector=app",
            vec!["c"],
        ),
    ];
    for (query, want) in cases {
        let r = get(addr, &format!("/api/v1/pods?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {:?}", r.body);
        assert_eq!(names(&r.body), want, "{query}");
    }
    let bad = get(addr, "/api/v1/pods?labelSelector=app%20in%20(web").await;
    assert_status(&bad, 400, "BadRequest");
    assert!(
        bad.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("labelSelector")),
        "{:?}",
        bad.body
    );
    let bad = get(addr, "/api/v1/nodes?fieldSelector=spec.nodeName%3Dx").await;
    assert_status(&bad, 400, "BadRequest");
    assert!(
        bad.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.nodeName")),
        "{:?}",
        bad.body
    );
}

#[tokio::test]
async fn watch_sends_changes_and_bookmarks_then_resumes_from_a_resource_version() {
    let server = TestApiServer::start().await.expect("start");
    server.set_bookmark_interval(Duration::from_millis(200));
    let addr = server.address();
    let list = get(addr, "/api/v1/namespaces/default/configmaps").await;
    let from = rv(&list.body);
    let mut w = Watch::open(
        addr,
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}&allowWatchBookmarks=true&timeoutSeconds=30"),
    )
    .await;
    let s = server.store();
    let created = s
        .create_object(configmap("w", json!({"v": "1"})))
        .expect("create");
    let mut changed = created.clone();
    changed["data"]["k"] = json!("changed");
    let updated = s.update_object(changed).expect("update");
    // A change in another namespace is not sent.
    s.create_object(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
    )
    .expect("ns");
    let mut elsewhere = configmap("x", json!({}));
    elsewhere["metadata"]["namespace"] = json!("other");
    s.create_object(elsewhere).expect("elsewhere");
    let deleted = s
        .delete_object("v1", "ConfigMap", "default", "w")
        .expect("delete");

    let e = w.next_change().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("w"))
    );
    assert_eq!(e["object"]["kind"], "ConfigMap");
    assert_eq!(rv(&e["object"]), rv(&created));
    let e = w.next_change().await;
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["data"]["k"], "changed");
    assert_eq!(rv(&e["object"]), rv(&updated));
    let e = w.next_change().await;
    assert_eq!(e["type"], "DELETED");
    assert_eq!(rv(&e["object"]), rv(&deleted));
    assert!(rv(&deleted) > rv(&updated));
    // Bookmarks carry the latest resourceVersion, past the other namespace's change.
    let started = Instant::now();
    let bookmark = loop {
        let e = w.next().await;
        if e["type"] == "BOOKMARK" && rv(&e["object"]) >= rv(&deleted) {
            break e;
        }
        assert_ne!(e["type"], "ADDED", "unexpected {e}");
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no bookmark within 2 s"
    );
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");
    assert_eq!(bookmark["object"]["apiVersion"], "v1");
    assert_eq!(rv(&bookmark["object"]), server.store().resource_version());

    // Resuming from the first change replays what followed it.
    let mut resumed = Watch::open(
        addr,
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}",
            rv(&created)
        ),
    )
    .await;
    assert_eq!(resumed.next().await["type"], "MODIFIED");
    assert_eq!(resumed.next().await["type"], "DELETED");
    // A watch without a resourceVersion starts with what exists.
    s.create_object(configmap("y", json!({}))).expect("y");
    let mut fresh = Watch::open(addr, "/api/v1/configmaps?watch=1").await;
    let mut initial = vec![];
    for _ in 0..2 {
        let e = fresh.next().await;
        assert_eq!(e["type"], "ADDED");
        initial.push(
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    // Ordered by namespace, then name (as etcd keys are).
    assert_eq!(initial, ["y", "x"]);
}

#[tokio::test]
async fn a_streaming_list_ends_its_initial_events_with_a_bookmark() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    for name in ["s1", "s2"] {
        server
            .store()
            .create_object(configmap(name, json!({})))
            .expect("create");
    }
    let refused = get(addr, "/api/v1/configmaps?watch=1&sendInitialEvents=true").await;
    assert_status(&refused, 422, "Invalid");
    let mut w = Watch::open(
        addr,
        "/api/v1/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    .await;
    for name in ["s1", "s2"] {
        let e = w.next().await;
        assert_eq!(
            (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some(name))
        );
    }
    let end = w.next().await;
    assert_eq!(end["type"], "BOOKMARK", "{end}");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv(&end["object"]), server.store().resource_version());
    server
        .store()
        .create_object(configmap("s3", json!({})))
        .expect("s3");
    assert_eq!(w.next_change().await["object"]["metadata"]["name"], "s3");
}

#[tokio::test]
async fn watch_with_a_selector_sees_objects_enter_and_leave_it() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    let mut w = Watch::open(
        addr,
        "/api/v1/pods?watch=1&labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dnode-1",
    )
    .await;
    let s = server.store();
    let p = s
        .create_object(pod("p", "node-1", json!({"app": "db"})))
        .expect("create");
    let mut web = p.clone();
    web["metadata"]["labels"]["app"] = json!("web");
    let web = s.update_object(web).expect("to web");
    let mut web2 = web.clone();
    web2["metadata"]["labels"]["x"] = json!("y");
    let web2 = s.update_object(web2).expect("still web");
    let mut db = web2.clone();
    db["metadata"]["labels"]["app"] = json!("db");
    s.update_object(db).expect("to db");
    s.create_object(pod("q", "node-2", json!({"app": "web"})))
        .expect("other node");
    s.create_object(pod("r", "node-1", json!({"app": "web"})))
        .expect("r");
    let events: Vec<(String, String)> = {
        let mut v = vec![];
        for _ in 0..4 {
            let e = w.next().await;
            v.push((
                e["type"].as_str().unwrap_or_default().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        v
    };
    let want = [
        ("ADDED", "p"),
        ("MODIFIED", "p"),
        ("DELETED", "p"),
        ("ADDED", "r"),
    ];
    assert_eq!(
        events,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
}

#[tokio::test]
async fn an_expired_resource_version_is_gone() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    let old = server
        .store()
        .create_object(configmap("a", json!({})))
        .expect("a");
    server
        .store()
        .create_object(configmap("b", json!({})))
        .expect("b");
    // Before compaction an exact list at the old version shows that state.
    let exact = get(
        addr,
        &format!(
            "/api/v1/configmaps?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&old)
        ),
    )
    .await;
    assert_eq!(names(&exact.body), ["a"]);
    server.compact_history();
    // A watch answers 200 and one ERROR event with a 410 Expired Status.
    let mut w = Watch::open(
        addr,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={}", rv(&old)),
    )
    .await;
    let e = w.next().await;
    assert_eq!(e["type"], "ERROR", "{e}");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(
        w.next_within(Duration::from_secs(2)).await.is_none(),
        "the stream ends after the error"
    );
    let exact = get(
        addr,
        &format!(
            "/api/v1/configmaps?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&old)
        ),
    )
    .await;
    assert_status(&exact, 410, "Expired");
    // A new list gives a version that works.
    let listed = rv(&get(addr, "/api/v1/configmaps").await.body);
    let mut w = Watch::open(
        addr,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={listed}"),
    )
    .await;
    let c = server
        .store()
        .create_object(configmap("c", json!({})))
        .expect("c");
    let e = w.next().await;
    assert_eq!(e["object"]["metadata"]["name"], "c");
    // Even the newest version a client has seen expires with a compaction:
    // a watch cut after it cannot resume and must list again.
    server.compact_history();
    server.drop_watches();
    assert!(w.next_within(Duration::from_secs(2)).await.is_none());
    let mut resumed = Watch::open(
        addr,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={}", rv(&c)),
    )
    .await;
    assert_eq!(resumed.next().await["object"]["code"], 410);
    let relisted = get(addr, "/api/v1/configmaps").await;
    assert_eq!(names(&relisted.body), ["a", "b", "c"]);
    let mut fresh = Watch::open(
        addr,
        &format!(
            "/api/v1/configmaps?watch=1&resourceVersion={}",
            rv(&relisted.body)
        ),
    )
    .await;
    server
        .store()
        .create_object(configmap("d", json!({})))
        .expect("d");
    assert_eq!(fresh.next().await["object"]["metadata"]["name"], "d");
}

#[tokio::test]
async fn conflicts_and_errors_are_status_objects() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    let path = "/api/v1/namespaces/default/configmaps";
    let created = post(addr, path, &configmap("c", json!({}))).await;
    assert_eq!(created.status, 201);
    for field in ["uid", "creationTimestamp", "resourceVersion"] {
        assert!(
            created.body["metadata"][field].is_string(),
            "{field}: {:?}",
            created.body
        );
    }
    assert_eq!(created.body["metadata"]["generation"], 1);
    let again = post(addr, path, &configmap("c", json!({}))).await;
    assert_status(&again, 409, "AlreadyExists");
    assert_eq!(again.body["details"]["name"], "c");

    let mut v1 = created.body.clone();
    v1["data"]["k"] = json!("1");
    let put = call(
        addr,
        Method::PUT,
        &format!("{path}/c"),
        Some("application/json"),
        Some(&v1),
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert!(rv(&put.body) > rv(&created.body));
    assert_eq!(put.body["metadata"]["uid"], created.body["metadata"]["uid"]);
    // The same stale resourceVersion again: Conflict.
    let stale = call(
        addr,
        Method::PUT,
        &format!("{path}/c"),
        Some("application/json"),
        Some(&v1),
    )
    .await;
    assert_status(&stale, 409, "Conflict");

    let missing = get(addr, &format!("{path}/nope")).await;
    assert_status(&missing, 404, "NotFound");
    assert_eq!(missing.body["message"], "configmaps \"nope\" not found");
    let mut ghost = configmap("c", json!({}));
    ghost["metadata"]["namespace"] = json!("ghost");
    let no_ns = post(addr, "/api/v1/namespaces/ghost/configmaps", &ghost).await;
    assert_status(&no_ns, 404, "NotFound");
    let bad_name = post(addr, path, &configmap("Bad_Name", json!({}))).await;
    assert_status(&bad_name, 422, "Invalid");
    assert!(bad_name.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("metadata.name")));
    let wrong_ns = {
        let mut o = configmap("d", json!({}));
        o["metadata"]["namespace"] = json!("kube-system");
        post(addr, path, &o).await
    };
    assert_status(&wrong_ns, 400, "BadRequest");
    let no_type = get(addr, "/api/v1/widgets").await;
    assert_status(&no_type, 404, "NotFound");

    let precondition =
        json!({"preconditions": {"resourceVersion": created.body["metadata"]["resourceVersion"]}});
    let refused = call(
        addr,
        Method::DELETE,
        &format!("{path}/c"),
        Some("application/json"),
        Some(&precondition),
    )
    .await;
    assert_status(&refused, 409, "Conflict");
    let deleted = call(addr, Method::DELETE, &format!("{path}/c"), None, None).await;
    assert_eq!(deleted.status, 200);
    assert_status(&get(addr, &format!("{path}/c")).await, 404, "NotFound");
}

#[tokio::test]
async fn patches_merge_json_strategic_apply_and_status() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    let path = "/api/v1/namespaces/default/pods/p";
    server
        .store()
        .create_object(pod("p", "node-1", json!({"app": "web"})))
        .expect("pod");
    let merge = call(
        addr,
        Method::PATCH,
        path,
        Some("application/merge-patch+json"),
        Some(&json!({"metadata": {"labels": {"app": null, "tier": "front"}}, "status": {"phase": "Running"}})),
    )
    .await;
    assert_eq!(merge.status, 200, "{:?}", merge.body);
    assert_eq!(merge.body["metadata"]["labels"], json!({"tier": "front"}));
    assert_eq!(
        merge.body["metadata"]["generation"], 1,
        "labels and status are not the spec"
    );

    let jp = call(
        addr,
        Method::PATCH,
        path,
        Some("application/json-patch+json"),
        Some(&json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "d", "image": "x"}},
                     {"op": "replace", "path": "/spec/nodeName", "value": "node-2"}])),
    )
    .await;
    assert_eq!(jp.status, 200, "{:?}", jp.body);
    assert_eq!(
        jp.body["spec"]["containers"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(jp.body["metadata"]["generation"], 2);
    let failed = call(
        addr,
        Method::PATCH,
        path,
        Some("application/json-patch+json"),
        Some(&json!([{"op": "remove", "path": "/spec/nothing"}])),
    )
    .await;
    assert_status(&failed, 422, "Invalid");

    let smp = call(
        addr,
        Method::PATCH,
        path,
        Some("application/strategic-merge-patch+json"),
        Some(&json!({"spec": {
            "$setElementOrder/containers": [{"name": "d"}, {"name": "c"}],
            "containers": [{"name": "c", "image": "busybox:2"}]
        }})),
    )
    .await;
    assert_eq!(smp.status, 200, "{:?}", smp.body);
    assert_eq!(
        smp.body["spec"]["containers"],
        json!([{"name": "d", "image": "x"}, {"name": "c", "image": "busybox:2"}])
    );
    // A resourceVersion in a patch is a precondition.
    let stale = call(addr, Method::PATCH, path, Some("application/merge-patch+json"),
        Some(&json!({"metadata": {"resourceVersion": merge.body["metadata"]["resourceVersion"]}, "data": 1}))).await;
    assert_status(&stale, 409, "Conflict");

    // Through /status only the status changes.
    let status = call(
        addr,
        Method::PATCH,
        &format!("{path}/status"),
        Some("application/merge-patch+json"),
        Some(&json!({"status": {"podIP": "10.244.1.5"}, "spec": {"nodeName": "elsewhere"}})),
    )
    .await;
    assert_eq!(status.status, 200, "{:?}", status.body);
    assert_eq!(
        status.body["status"],
        json!({"phase": "Running", "podIP": "10.244.1.5"})
    );
    assert_eq!(status.body["spec"]["nodeName"], "node-2");

    // Server-side apply creates what is absent and needs a field manager.
    let cm = configmap("applied", json!({"a": "b"}));
    let apply_path = "/api/v1/namespaces/default/configmaps/applied";
    let refused = call(
        addr,
        Method::PATCH,
        apply_path,
        Some("application/apply-patch+yaml"),
        Some(&cm),
    )
    .await;
    assert_status(&refused, 400, "BadRequest");
    let applied = call(
        addr,
        Method::PATCH,
        &format!("{apply_path}?fieldManager=test"),
        Some("application/apply-patch+yaml"),
        Some(&cm),
    )
    .await;
    assert_eq!(applied.status, 201, "{:?}", applied.body);
    let missing = call(
        addr,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/none",
        Some("application/merge-patch+json"),
        Some(&json!({})),
    )
    .await;
    assert_status(&missing, 404, "NotFound");
    let unsupported = call(
        addr,
        Method::PATCH,
        apply_path,
        Some("text/plain"),
        Some(&json!({})),
    )
    .await;
    assert_status(&unsupported, 415, "UnsupportedMediaType");
}

#[tokio::test]
async fn faults_fail_delay_drop_watches_stop_and_restart() {
    let mut server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    server.fail_next(2, 500);
    assert_status(&get(addr, "/api/v1/namespaces").await, 500, "InternalError");
    assert_status(&get(addr, "/api/v1/namespaces").await, 500, "InternalError");
    assert_eq!(get(addr, "/api/v1/namespaces").await.status, 200);
    server.fail_next(1, 429);
    let throttled = get(addr, "/api/v1/namespaces").await;
    assert_status(&throttled, 429, "TooManyRequests");
    assert_eq!(
        throttled
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(throttled.body["details"]["retryAfterSeconds"], 1);

    server.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(get(addr, "/version").await.status, 200);
    let delayed = started.elapsed();
    server.set_delay(Duration::ZERO);
    assert!(
        delayed >= Duration::from_millis(300),
        "answered after {delayed:?}"
    );

    // drop_watches ends open streams cleanly.
    let mut w = Watch::open(addr, "/api/v1/configmaps?watch=1&resourceVersion=1").await;
    tokio::time::timeout(Duration::from_secs(2), async {
        while server.store().watch_count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the watch is registered");
    server.drop_watches();
    assert!(
        w.next_within(Duration::from_secs(2)).await.is_none(),
        "the stream ended"
    );

    // Watch timeouts end the stream.
    let started = Instant::now();
    let mut w = Watch::open(addr, "/api/v1/configmaps?watch=1&timeoutSeconds=1").await;
    assert!(w.next_within(Duration::from_secs(3)).await.is_none());
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_millis(900) && lasted < Duration::from_secs(3),
        "lasted {lasted:?}"
    );

    // Stop: connections are refused and open watches are cut; the store stays.
    let kept = server
        .store()
        .create_object(configmap("kept", json!({})))
        .expect("kept");
    let mut cut = Watch::open(
        addr,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={}", rv(&kept)),
    )
    .await;
    server.stop().await;
    assert!(!server.is_running());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "connections are refused while stopped"
    );
    let ended = tokio::time::timeout(Duration::from_secs(2), cut.body.frame()).await;
    assert!(
        matches!(ended, Ok(None | Some(Err(_)))),
        "the watch was cut: {ended:?}"
    );
    server
        .store()
        .create_object(configmap("while-down", json!({})))
        .expect("while down");

    // Restart keeping the store: same port, watches resume from their version.
    server.restart(RestartStore::Keep).await.expect("restart");
    assert_eq!(server.address(), addr);
    let mut resumed = Watch::open(
        addr,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={}", rv(&kept)),
    )
    .await;
    assert_eq!(
        resumed.next().await["object"]["metadata"]["name"],
        "while-down"
    );

    // Restart from an empty store: the old version is Gone, objects too.
    server
        .restart(RestartStore::Reset)
        .await
        .expect("restart empty");
    let mut w = Watch::open(
        addr,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={}", rv(&kept)),
    )
    .await;
    assert_eq!(w.next().await["object"]["code"], 410);
    assert!(names(&get(addr, "/api/v1/configmaps").await.body).is_empty());
    assert!(
        server.store().resource_version() > rv(&kept),
        "resourceVersions never go back"
    );
    let requests = server.requests();
    assert!(requests
        .iter()
        .any(|r| r.status == 429 && r.uri == "/api/v1/namespaces"));
}

#[test]
fn a_blocking_server_stops_and_restarts_for_sync_tests() {
    let mut server = TestApiServer::start_blocking().expect("start");
    let addr = server.address();
    let version = |server: &kxdp_tests::apiserver::BlockingApiServer| {
        server.runtime().block_on(get(addr, "/version")).status
    };
    assert_eq!(version(&server), 200);
    server
        .store()
        .create_object(configmap("kept", json!({})))
        .expect("create");
    server.stop();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "refused while stopped"
    );
    server.restart(RestartStore::Keep).expect("restart");
    assert_eq!(version(&server), 200);
    assert!(server
        .store()
        .get_object("v1", "ConfigMap", "default", "kept")
        .is_some());
    server.restart(RestartStore::Reset).expect("restart empty");
    assert!(server
        .store()
        .get_object("v1", "ConfigMap", "default", "kept")
        .is_none());
    assert!(
        server
            .store()
            .get_object("v1", "Namespace", "", "default")
            .is_some(),
        "a fresh cluster has its namespaces"
    );
}

#[tokio::test]
async fn a_crd_serves_its_kind_until_deleted() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    let crd_text = std::fs::read_to_string(fixtures().join("30-crd.yaml")).expect("crd fixture");
    let crd: Value = serde_yaml::from_str(&crd_text).expect("crd yaml");
    let sc_path = "/apis/kxdp.io/v1alpha1/namespaces/default/servicechains";
    assert_status(&get(addr, sc_path).await, 404, "NotFound");
    let created = post(
        addr,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let established = created.body["status"]["conditions"]
        .as_array()
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
    assert!(established, "{:?}", created.body["status"]);
    let discovery = get(addr, "/apis/kxdp.io/v1alpha1").await;
    assert_eq!(discovery.body["resources"][0]["name"], "servicechains");
    assert_eq!(discovery.body["resources"][0]["namespaced"], true);
    assert_eq!(
        discovery.body["resources"][1]["name"],
        "servicechains/status"
    );
    let sc = json!({"apiVersion": "kxdp.io/v1alpha1", "kind": "ServiceChain",
                    "metadata": {"name": "chain"}, "spec": {"hops": [{"name": "fw"}]}});
    let r = post(addr, sc_path, &sc).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        names(&get(addr, "/apis/kxdp.io/v1alpha1/servicechains").await.body),
        ["chain"]
    );
    let mut w = Watch::open(
        addr,
        &format!("{sc_path}?watch=1&resourceVersion={}", rv(&r.body)),
    )
    .await;
    let gone = call(
        addr,
        Method::DELETE,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicechains.kxdp.io",
        None,
        None,
    )
    .await;
    assert_eq!(gone.status, 200);
    let e = w.next().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("chain"))
    );
    assert_status(&get(addr, sc_path).await, 404, "NotFound");
}

#[tokio::test]
async fn discovery_version_and_openapi() {
    let server = TestApiServer::start().await.expect("start");
    let addr = server.address();
    let api = get(addr, "/api").await;
    assert_eq!(api.body["versions"], json!(["v1"]));
    let apis = get(addr, "/apis").await;
    let groups: Vec<&str> = apis.body["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(|g| g["name"].as_str()).collect())
        .unwrap_or_default();
    for g in [
        "apps",
        "discovery.k8s.io",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(groups.contains(&g), "{g} in {groups:?}");
    }
    let core = get(addr, "/api/v1").await;
    let pods = core.body["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "pods"))
        .cloned()
        .expect("pods");
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert!(pods["verbs"]
        .as_array()
        .is_some_and(|v| v.contains(&json!("watch"))));
    let aggregated = call_accept(
        addr,
        Method::GET,
        "/apis",
        None,
        None,
        Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ),
    )
    .await;
    assert_eq!(
        aggregated
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    assert_eq!(aggregated.body["kind"], "APIGroupDiscoveryList");
    let eps = aggregated.body["items"]
        .as_array()
        .and_then(|i| {
            i.iter()
                .find(|g| g["metadata"]["name"] == "discovery.k8s.io")
        })
        .cloned()
        .expect("discovery.k8s.io");
    assert_eq!(
        eps["versions"][0]["resources"][0]["resource"],
        "endpointslices"
    );
    assert_eq!(eps["versions"][0]["resources"][0]["scope"], "Namespaced");
    let version = get(addr, "/version").await;
    assert_eq!(
        (
            version.body["major"].as_str(),
            version.body["minor"].as_str()
        ),
        (Some("1"), Some("32"))
    );
    let root = get(addr, "/openapi/v3").await;
    let url = root.body["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1 doc")
        .to_string();
    let doc = get(addr, &url).await;
    let patch =
        &doc.body["paths"]["/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "DaemonSet"
    );
    assert!(patch["parameters"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation")));
    assert_eq!(get(addr, "/openapi/v2").await.status, 404);
}

// ----- kubectl -----

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/k8s")
}

/// kubectl, or None (with the reason printed) outside CI when it is missing.
fn kubectl_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    match found {
        Some(k) => Some(k),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: kubectl is not on PATH (required under CI=true)")
        }
        None => {
            eprintln!("{test}: SKIPPED: kubectl is not on PATH");
            None
        }
    }
}

/// A kubectl bound to one server, with its own kubeconfig and cache.
struct Kubectl {
    binary: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    fn new(binary: PathBuf, kubeconfig: &str, test: &str) -> Kubectl {
        let dir =
            std::env::temp_dir().join(format!("kxdp-apiserver-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::write(dir.join("kubeconfig"), kubeconfig).expect("kubeconfig");
        Kubectl { binary, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env_remove("KUBECONFIG");
        c
    }

    /// Run kubectl; panics with its output if it fails.
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.run(&all);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON ({e}): {text}"))
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn kubectl_applies_the_fixtures_and_reads_them_back() {
    let test = "kubectl_applies";
    let Some(binary) = kubectl_or_skip(test) else {
        return;
    };
    let server = TestApiServer::start_blocking().expect("start");
    let k = Kubectl::new(binary, &server.kubeconfig(), test);
    let dir = fixtures();
    let file = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_string();
    // The CRD first, then its object: as against a real cluster, kubectl
    // validates every object of one invocation before it creates any, so a
    // kind whose CRD it creates in the same run is not known yet.
    let mut out = k.run(&[
        "apply",
        "-f",
        &file("00-namespace.yaml"),
        "-f",
        &file("10-service.yaml"),
        "-f",
        &file("20-networkpolicy.yaml"),
        "-f",
        &file("30-crd.yaml"),
    ]);
    out += &k.run(&["apply", "-f", &file("40-servicechain.yaml")]);
    for what in [
        "namespace/shop created",
        "service/web created",
        "endpointslice.discovery.k8s.io/web-abc12 created",
        "networkpolicy.networking.k8s.io/web-from-frontend created",
        "customresourcedefinition.apiextensions.k8s.io/servicechains.kxdp.io created",
        "servicechain.kxdp.io/web-inspect created",
    ] {
        assert!(out.contains(what), "{what:?} not in:\n{out}");
    }
    let svc = k.json(&["get", "service", "web", "-n", "shop"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert!(
        svc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let slice = k.json(&[
        "get",
        "endpointslices",
        "-n",
        "shop",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    assert_eq!(
        slice["items"][0]["endpoints"][1]["addresses"][0],
        "10.244.2.10"
    );
    let policy = k.json(&["get", "netpol", "web-from-frontend", "-n", "shop"]);
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 8080);
    let chain = k.json(&["get", "sc", "web-inspect", "-n", "shop"]);
    assert_eq!(chain["spec"]["hops"][1]["name"], "policer");
    // The store holds what kubectl wrote.
    let stored = server
        .store()
        .get_object("kxdp.io/v1alpha1", "ServiceChain", "shop", "web-inspect")
        .expect("stored");
    assert_eq!(stored["spec"]["hopCount"], 2);

    // Re-applying unchanged manifests changes nothing.
    let before = server.store().resource_version();
    let out = k.run(&["apply", "-f", dir.to_str().expect("utf-8 path")]);
    assert!(out.contains("service/web unchanged"), "{out}");
    assert_eq!(
        server.store().resource_version(),
        before,
        "an unchanged apply writes nothing"
    );

    // Changed manifests: a strategic merge patch for the built-in kinds
    // (list elements merged by key), a JSON merge patch for the custom one.
    // Inside kubectl's scratch directory, which goes away with it (also
    // when the test fails).
    let changed = k.dir.join("changed");
    std::fs::create_dir_all(&changed).expect("scratch dir");
    let svc_text = std::fs::read_to_string(dir.join("10-service.yaml"))
        .expect("service fixture")
        .replace("port: 80\n", "port: 81\n")
        .replace("10.244.2.10", "10.244.3.10");
    std::fs::write(changed.join("service.yaml"), svc_text).expect("write");
    let sc_text = std::fs::read_to_string(dir.join("40-servicechain.yaml"))
        .expect("chain fixture")
        .replace("hopCount: 2", "hopCount: 1")
        .replace("  - name: policer\n", "");
    std::fs::write(changed.join("chain.yaml"), sc_text).expect("write");
    let out = k.run(&["apply", "-f", changed.to_str().expect("utf-8 path")]);
    assert!(out.contains("service/web configured"), "{out}");
    assert!(
        out.contains("servicechain.kxdp.io/web-inspect configured"),
        "{out}"
    );
    let svc = k.json(&["get", "service", "web", "-n", "shop"]);
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 81, "protocol": "TCP", "targetPort": 8080}])
    );
    let slice = k.json(&["get", "endpointslice", "web-abc12", "-n", "shop"]);
    let addresses: Vec<&str> = slice["endpoints"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["addresses"][0].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(addresses, ["10.244.1.10", "10.244.3.10"]);
    let chain = k.json(&["get", "servicechain", "web-inspect", "-n", "shop"]);
    assert_eq!(chain["spec"]["hops"], json!([{"name": "firewall"}]));
    assert_eq!(chain["spec"]["hopCount"], 1);
    let methods: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.uri.split('?').next().unwrap_or_default().to_string())
        .collect();
    assert!(
        methods.iter().any(|u| u.ends_with("/services/web")),
        "{methods:?}"
    );

    // Nested lists merged by key (containers by name, env by name, ports
    // by containerPort): after a strategic merge patch the Pod is exactly
    // the new manifest.
    let pod_v1 = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: vnf\n  namespace: shop\nspec:\n  nodeName: node-1\n  containers:\n  - name: fw\n    image: fw:1\n    env:\n    - {name: A, value: \"1\"}\n    - {name: B, value: \"2\"}\n    ports:\n    - {containerPort: 80, protocol: TCP}\n  - name: sidecar\n    image: sc:1\n";
    let pod_v2 = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: vnf\n  namespace: shop\nspec:\n  nodeName: node-1\n  containers:\n  - name: fw\n    image: fw:2\n    env:\n    - {name: C, value: \"3\"}\n    - {name: A, value: \"1\"}\n    ports:\n    - {containerPort: 443, protocol: TCP}\n  - name: probe\n    image: probe:1\n";
    for (version, text) in [("v1", pod_v1), ("v2", pod_v2)] {
        let file = changed.join(format!("pod-{version}.yaml"));
        std::fs::write(&file, text).expect("write");
        k.run(&["apply", "-f", file.to_str().expect("utf-8 path")]);
        let want: Value = serde_yaml::from_str(text).expect("pod yaml");
        let got = k.json(&["get", "pod", "vnf", "-n", "shop"]);
        assert_eq!(got["spec"], want["spec"], "pod {version}");
    }
    // kubectl chose the patch type a real cluster gets: strategic merge for
    // built-in kinds, JSON merge for custom resources.
    let patch_type = |path: &str| -> Vec<String> {
        server
            .requests()
            .iter()
            .filter(|r| {
                r.method == "PATCH" && r.uri.split('?').next().is_some_and(|p| p.ends_with(path))
            })
            .map(|r| r.content_type.clone())
            .collect()
    };
    assert_eq!(
        patch_type("/pods/vnf"),
        ["application/strategic-merge-patch+json"]
    );
    assert_eq!(
        patch_type("/services/web"),
        ["application/strategic-merge-patch+json"]
    );
    assert_eq!(
        patch_type("/servicechains/web-inspect"),
        ["application/merge-patch+json"]
    );

    // Tables: kubectl get prints the kind's columns.
    let table = k.run(&["get", "pods,services,servicechains", "-n", "shop"]);
    assert!(
        table.contains("web-inspect") && table.contains("10.96.0.10"),
        "{table}"
    );

    // The fixtures as written are what the store holds (besides what kubectl
    // and the server add to metadata), except what the changes above touched.
    for name in ["00-namespace.yaml", "20-networkpolicy.yaml", "30-crd.yaml"] {
        assert_applied(&server, &dir.join(name));
    }

    // The deploy manifests, once they are committed (CI checks out only
    // committed files; locally, files still being written are left alone).
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/deploy");
    let mut applied_deploy = vec![];
    for name in [
        "crd.yaml",
        "rbac.yaml",
        "daemonset.yaml",
        "node-patch-policy.yaml",
    ] {
        let file = deploy.join(name);
        if committed(&file) {
            let out = k.run(&["apply", "-f", file.to_str().expect("utf-8 path")]);
            assert!(!out.trim().is_empty(), "{name}: kubectl applied nothing");
            assert_applied(&server, &file);
            applied_deploy.push(name);
        }
    }
    eprintln!("{test}: applied config/deploy manifests {applied_deploy:?}");

    // kubectl delete.
    k.run(&["delete", "namespace", "shop"]);
    assert!(
        server
            .store()
            .get_object("v1", "Service", "shop", "web")
            .is_none(),
        "a namespace takes its objects"
    );
}

#[test]
fn kubectl_get_watch_sees_changes() {
    let test = "kubectl_get_watch";
    let Some(binary) = kubectl_or_skip(test) else {
        return;
    };
    let server = TestApiServer::start_blocking().expect("start");
    let k = Kubectl::new(binary, &server.kubeconfig(), test);
    server
        .store()
        .create_object(pod("web-1", "node-1", json!({"app": "web"})))
        .expect("pod");
    let child = k
        .command(&["get", "pods", "-w", "-o", "name", "--request-timeout=0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let pid = child.id();
    let watching = Instant::now();
    while server.store().watch_count_of("/pods") == 0 {
        assert!(
            watching.elapsed() < Duration::from_secs(10),
            "kubectl did not start watching"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
        .store()
        .create_object(pod("web-2", "node-1", json!({})))
        .expect("web-2");
    server
        .store()
        .delete_object("v1", "Pod", "default", "web-1")
        .expect("delete");
    std::thread::sleep(Duration::from_millis(500));
    // End kubectl by dropping its watch: it exits when the stream ends.
    server.drop_watches();
    let out = wait_with_timeout(child, Duration::from_secs(10), pid);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["pod/web-1", "pod/web-2", "pod/web-1"], "{out}");
}

/// Whether `file` exists, is not empty and is tracked by git (or there is
/// no git checkout, as in a source tarball).
fn committed(file: &Path) -> bool {
    if !std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return false;
    }
    let Some(dir) = file.parent() else {
        return false;
    };
    match Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "--error-unmatch"])
        .arg(file)
        .output()
    {
        Ok(out) if out.status.success() => {
            // Tracked; and with no uncommitted changes.
            Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["diff", "--quiet", "HEAD", "--"])
                .arg(file)
                .status()
                .is_ok_and(|s| s.success())
        }
        Ok(_) => {
            // Not tracked, or not a git checkout at all.
            Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["rev-parse", "--git-dir"])
                .output()
                .is_ok_and(|o| !o.status.success())
        }
        Err(_) => true,
    }
}

/// Every object of the YAML manifest `file` is in the store with the same
/// content outside `metadata` and `status`, and with its labels.
fn assert_applied(server: &TestApiServer, file: &Path) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else if let Some(last) = documents.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    let mut count = 0;
    for document in &documents {
        let manifest: Value = serde_yaml::from_str(document)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        if manifest.is_null() {
            continue;
        }
        let field = |p: &str| {
            manifest
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (api_version, kind, name) = (
            field("/apiVersion"),
            field("/kind"),
            field("/metadata/name"),
        );
        let namespaced = server
            .store()
            .resource_of_kind(api_version, kind)
            .unwrap_or_else(|e| panic!("{}: {kind}: {e}", file.display()))
            .namespaced;
        let namespace = match field("/metadata/namespace") {
            "" if namespaced => "default",
            ns => ns,
        };
        let stored = server
            .store()
            .get_object(
                api_version,
                kind,
                if namespaced { namespace } else { "" },
                name,
            )
            .unwrap_or_else(|| {
                panic!(
                    "{}: {kind} {namespace}/{name} is not in the store",
                    file.display()
                )
            });
        for (key, value) in manifest.as_object().into_iter().flatten() {
            if key != "metadata" && key != "status" {
                assert_eq!(
                    normalized(&stored[key]),
                    normalized(value),
                    "{}: {kind} {name}: {key}",
                    file.display()
                );
            }
        }
        // The manifest's labels, beside any the server adds.
        for (label, value) in manifest
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            assert_eq!(
                &stored["metadata"]["labels"][label],
                value,
                "{}: {kind} {name}: label {label}",
                file.display()
            );
        }
        count += 1;
    }
    assert!(count > 0, "{}: no object", file.display());
}

/// `value` with null map entries dropped and numbers as floats: YAML's
/// `65535.0` reaches the server as JSON `65535`, and a null field is the
/// same as an absent one.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Number(n) => n.as_f64().map_or(Value::Number(n.clone()), |f| json!(f)),
        other => other.clone(),
    }
}

fn wait_with_timeout(mut child: std::process::Child, timeout: Duration, pid: u32) -> String {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kubectl (pid {pid}) did not exit within {timeout:?}");
            }
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    out
}

// ----- kube-rs -----

async fn kube_client(server: &TestApiServer) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client")
}

#[tokio::test]
async fn kube_rs_client_lists_creates_patches_and_sees_conflicts() {
    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

    let server = TestApiServer::start().await.expect("start");
    let client = kube_client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        let cm: ConfigMap =
            serde_json::from_value(configmap(&format!("k{i}"), json!({"n": i.to_string()})))
                .expect("cm");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let page = cms
        .list(&ListParams::default().limit(3))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.clone().expect("continue token");
    let rest = cms
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(rest.items.len(), 4);
    let metadata = cms
        .list_metadata(&ListParams::default())
        .await
        .expect("list_metadata");
    assert_eq!(metadata.items.len(), 7);
    assert_eq!(metadata.items[3].metadata.name.as_deref(), Some("k3"));
    let one = cms.get_metadata("k2").await.expect("get_metadata");
    assert_eq!(
        one.metadata
            .labels
            .unwrap_or_default()
            .get("n")
            .map(String::as_str),
        Some("2")
    );
    let selected = cms
        .list(&ListParams::default().labels("n in (1,2)"))
        .await
        .expect("selector");
    assert_eq!(selected.items.len(), 2);

    let patched = cms
        .patch(
            "k1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "yes"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        patched
            .data
            .as_ref()
            .and_then(|d| d.get("extra"))
            .map(String::as_str),
        Some("yes")
    );
    let mut stale = page.items[0].clone();
    stale.data = Some([("k".to_string(), "stale".to_string())].into());
    let fresh = cms
        .replace("k0", &PostParams::default(), &stale)
        .await
        .expect("replace");
    let refused = cms
        .replace("k0", &PostParams::default(), &stale)
        .await
        .expect_err("stale replace");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 409),
        "{refused:?}"
    );
    let version = |v: &Option<String>| {
        v.as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or_default()
    };
    assert!(version(&fresh.metadata.resource_version) > version(&stale.metadata.resource_version));
    let exists = cms
        .create(&PostParams::default(), &fresh)
        .await
        .expect_err("exists");
    assert!(
        matches!(&exists, kube::Error::Api(s) if s.code == 409),
        "{exists:?}"
    );

    // Server-side apply on a cluster-scoped object: created, then merged.
    let nodes: Api<Node> = Api::all(client);
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "annotations": {"kxdp.io/vtep-mac": "02:00:00:00:00:01"}}});
    let params = PatchParams::apply("kxdp-test").force();
    nodes
        .patch("node-1", &params, &Patch::Apply(&node))
        .await
        .expect("apply creates");
    let patched = nodes
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .expect("merge");
    let annotations = patched.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("kxdp.io/vtep-mac").map(String::as_str),
        Some("02:00:00:00:00:01")
    );
    let missing = nodes.get("node-9").await.expect_err("404");
    assert!(
        matches!(&missing, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"),
        "{missing:?}"
    );
}

/// What a kube-rs watcher has reported so far.
#[derive(Debug, Default)]
struct Seen {
    names: std::collections::BTreeSet<String>,
    inits: usize,
    errors: Vec<String>,
}

async fn wait_seen(seen: &std::sync::Mutex<Seen>, what: &str, check: impl Fn(&Seen) -> bool) {
    let started = Instant::now();
    loop {
        {
            let s = seen.lock().unwrap_or_else(|p| p.into_inner());
            if check(&s) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{what}: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fixed backoff, so the test's outages cost little time.
struct Every(Duration);

impl Iterator for Every {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.0)
    }
}

impl kube::runtime::utils::Backoff for Every {
    fn reset(&mut self) {}
}

#[tokio::test]
async fn kube_rs_watcher_relists_after_410_and_resumes_after_a_restart() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::{self, Event};
    use kube::runtime::WatchStreamExt;
    use std::sync::{Arc, Mutex};

    let mut server = TestApiServer::start().await.expect("start");
    server.set_bookmark_interval(Duration::from_millis(100));
    let client = kube_client(&server).await;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
    server
        .store()
        .create_object(configmap("before", json!({})))
        .expect("before");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = seen.clone();
    let task = tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default())
            .backoff(Every(Duration::from_millis(100)));
        let mut stream = std::pin::pin!(stream);
        let mut listing = std::collections::BTreeSet::new();
        while let Some(event) = stream.next().await {
            let mut s = recorder.lock().unwrap_or_else(|p| p.into_inner());
            match event {
                Ok(Event::Init) => {
                    s.inits += 1;
                    listing.clear();
                }
                Ok(Event::InitApply(o)) => {
                    listing.insert(o.metadata.name.unwrap_or_default());
                }
                Ok(Event::InitDone) => s.names = std::mem::take(&mut listing),
                Ok(Event::Apply(o)) => {
                    s.names.insert(o.metadata.name.unwrap_or_default());
                }
                Ok(Event::Delete(o)) => {
                    s.names.remove(&o.metadata.name.unwrap_or_default());
                }
                Err(e) => s.errors.push(e.to_string()),
            }
        }
    });
    let names_are = |names: &'static [&'static str]| {
        move |s: &Seen| s.names.iter().map(String::as_str).eq(names.iter().copied())
    };
    wait_seen(&seen, "initial list", names_are(&["before"])).await;
    server
        .store()
        .create_object(configmap("live", json!({})))
        .expect("live");
    wait_seen(&seen, "a watch event", names_are(&["before", "live"])).await;
    assert_eq!(seen.lock().map(|s| s.inits).unwrap_or_default(), 1);

    // The server goes away; meanwhile objects change and the history is
    // compacted. Back on the same store, the watcher's resourceVersion is
    // Gone (410): it lists again and sees the deletion.
    server.stop().await;
    server
        .store()
        .delete_object("v1", "ConfigMap", "default", "before")
        .expect("delete");
    server
        .store()
        .create_object(configmap("after-410", json!({})))
        .expect("after");
    server.compact_history();
    server.restart(RestartStore::Keep).await.expect("restart");
    wait_seen(&seen, "relist after 410", |s| {
        s.inits == 2 && s.names.len() == 2
    })
    .await;
    wait_seen(&seen, "relisted state", names_are(&["after-410", "live"])).await;
    assert!(
        seen.lock()
            .map(|s| s.errors.iter().any(|e| e.contains("xpired")))
            .unwrap_or_default(),
        "the watcher reported the 410: {seen:?}"
    );

    // Down again, with no compaction and two failed requests on the way
    // back: the watcher resumes from its resourceVersion without a relist.
    server.stop().await;
    server
        .store()
        .create_object(configmap("while-down", json!({})))
        .expect("while down");
    server.fail_next(2, 500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart(RestartStore::Keep).await.expect("restart");
    wait_seen(
        &seen,
        "resume after restart",
        names_are(&["after-410", "live", "while-down"]),
    )
    .await;
    assert_eq!(
        seen.lock().map(|s| s.inits).unwrap_or_default(),
        2,
        "resumed without listing again"
    );
    let injected = server.requests().iter().filter(|r| r.status == 500).count();
    assert_eq!(
        injected, 2,
        "the watcher retried through the injected failures"
    );
    task.abort();
}

/// The next watcher event; panics on an error, the end, or after 5 s.
async fn next_event<K, S>(stream: &mut S) -> kube::runtime::watcher::Event<K>
where
    S: futures::Stream<
            Item = Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
        > + Unpin,
{
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
        .expect("no watcher error")
}

#[tokio::test]
async fn kube_rs_streaming_list_watcher_gets_the_initial_state_then_changes() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::runtime::watcher::{self, Event};

    let server = TestApiServer::start().await.expect("start");
    let client = kube_client(&server).await;
    let slice = |name: &str, ip: &str| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": name, "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]})
    };
    server
        .store()
        .create_object(slice("web-1", "10.244.1.10"))
        .expect("web-1");
    let api: kube::Api<EndpointSlice> = kube::Api::all(client);
    let config = watcher::Config::default()
        .streaming_lists()
        .labels("kubernetes.io/service-name=web");
    let mut stream = std::pin::pin!(watcher::watcher(api, config));
    assert!(matches!(next_event(&mut stream).await, Event::Init));
    match next_event(&mut stream).await {
        Event::InitApply(s) => assert_eq!(s.metadata.name.as_deref(), Some("web-1")),
        other => panic!("expected web-1, got {other:?}"),
    }
    assert!(matches!(next_event(&mut stream).await, Event::InitDone));
    server
        .store()
        .create_object(slice("web-2", "10.244.2.10"))
        .expect("web-2");
    match next_event(&mut stream).await {
        Event::Apply(s) => {
            assert_eq!(s.metadata.name.as_deref(), Some("web-2"));
            let addresses: Vec<String> = s
                .endpoints
                .into_iter()
                .flatten()
                .flat_map(|e| e.addresses)
                .collect();
            assert_eq!(addresses, ["10.244.2.10"]);
        }
        other => panic!("expected web-2, got {other:?}"),
    }
    let streamed = server
        .requests()
        .iter()
        .any(|r| r.uri.contains("sendInitialEvents=true"));
    assert!(
        streamed,
        "the watcher used a streaming list: {:?}",
        server.requests()
    );
}
