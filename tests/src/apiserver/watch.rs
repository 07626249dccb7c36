//! Watch streams: one JSON object per line (`{"type":"ADDED","object":…}`)
//! in a chunked HTTP response, as the real API server sends them.
//!
//! A watch replays what it must first (history after its resourceVersion,
//! or synthetic ADDED events for what exists), then forwards changes as the
//! store commits them. Selectors filter events the way the real server's
//! watch cache does: an object that stops matching is sent as DELETED, one
//! that starts matching as ADDED. With `allowWatchBookmarks` it sends
//! BOOKMARK events at the server's bookmark interval; with
//! `sendInitialEvents` it ends the initial events with a bookmark carrying
//! the `k8s.io/initial-events-end` annotation. A watch ends after its
//! timeout, when the client goes away, or when the server drops its watches.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{EventType, Store, StoredEvent, WatchStart};

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// The type watched.
    pub rt: ResourceType,
    /// Only this namespace (None: all).
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
    /// When the stream ends (`timeoutSeconds`).
    pub timeout: Duration,
    /// How often to send a bookmark.
    pub bookmark_interval: Duration,
    /// Send objects as `meta.k8s.io/v1` Table rows (`kubectl get -w`).
    pub table: Option<super::render::TableOptions>,
    /// Send objects as `PartialObjectMetadata` (kube-rs `metadata_watcher`).
    pub metadata_only: bool,
    /// `rt.api_version()`, computed once.
    pub api_version: String,
}

impl WatchParams {
    fn matches(&self, object: &Value, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    /// The event to send for `event`, if this watch sees it.
    fn filter(&self, event: &StoredEvent) -> Option<(&'static str, Arc<Value>)> {
        let now = self.matches(&event.object, &event.namespace);
        match event.kind {
            EventType::Added | EventType::Deleted => {
                now.then(|| (event.kind.as_str(), event.object.clone()))
            }
            EventType::Modified => {
                let before = event
                    .previous
                    .as_ref()
                    .is_some_and(|p| self.matches(p, &event.namespace));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", event.object.clone())),
                    (true, false) => Some(("DELETED", event.object.clone())),
                    (false, true) => Some(("ADDED", event.object.clone())),
                    (false, false) => None,
                }
            }
        }
    }

    fn line(&self, kind: &str, object: &Value) -> Bytes {
        let served = object.get("apiVersion").and_then(Value::as_str) == Some(&self.api_version);
        if served && self.table.is_none() && !self.metadata_only {
            // The common case, without copying the object.
            let mut text = format!("{{\"type\":\"{kind}\",\"object\":").into_bytes();
            if serde_json::to_writer(&mut text, object).is_ok() {
                text.extend_from_slice(b"}\n");
                return Bytes::from(text);
            }
        }
        let mut object = object.clone();
        if object.is_object() {
            object["apiVersion"] = json!(self.rt.api_version());
        }
        let object = match &self.table {
            Some(options) => super::render::table(&self.rt, &[Arc::new(object)], None, options),
            None if self.metadata_only => super::render::partial_metadata(&object),
            None => object,
        };
        let mut text = json!({"type": kind, "object": object}).to_string();
        text.push('\n');
        Bytes::from(text)
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": metadata});
        let mut text = json!({"type": "BOOKMARK", "object": object}).to_string();
        text.push('\n');
        Bytes::from(text)
    }
}

/// A watch that cannot start from its resourceVersion: the real server
/// answers 200 and sends one ERROR event with a 410 Expired Status, which
/// tells clients (kube-rs, client-go reflectors) to list again.
pub fn expired_stream(error: &ApiError) -> Body {
    let mut text = json!({"type": "ERROR", "object": error.status()}).to_string();
    text.push('\n');
    Body::from(text)
}

/// The body of a watch response: spawns the task that feeds it.
pub fn stream(store: Arc<Store>, start: WatchStart, params: WatchParams) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(run(store, start, params, tx));
    Body::from_stream(ReceiverStream::new(rx))
}

async fn run(
    store: Arc<Store>,
    start: WatchStart,
    params: WatchParams,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let WatchStart {
        initial,
        start_rv,
        mut events,
    } = start;
    let mut last_rv = start_rv;
    let send = |line: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(line)).await.is_ok() }
    };
    for event in &initial {
        if let Some((kind, object)) = params.filter(event) {
            if !send(params.line(kind, &object)).await {
                return;
            }
        }
        last_rv = last_rv.max(event.rv);
    }
    if params.send_initial_events && !send(params.bookmark(last_rv, true)).await {
        return;
    }
    let deadline = tokio::time::sleep(params.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(params.bookmark_interval.max(Duration::from_millis(10)));
    ticker.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if event.rv <= last_rv {
                    continue;
                }
                last_rv = event.rv;
                if let Some((kind, object)) = params.filter(&event) {
                    if !send(params.line(kind, &object)).await {
                        return;
                    }
                }
            }
            _ = ticker.tick(), if params.bookmarks => {
                // Every event up to `rv` is already in the channel: send
                // those first so the bookmark never skips one.
                let rv = store.resource_version();
                let mut closed = false;
                loop {
                    match events.try_recv() {
                        Ok(event) => {
                            if event.rv <= last_rv {
                                continue;
                            }
                            last_rv = event.rv;
                            if let Some((kind, object)) = params.filter(&event) {
                                if !send(params.line(kind, &object)).await {
                                    return;
                                }
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    break;
                }
                last_rv = last_rv.max(rv);
                if !send(params.bookmark(last_rv, false)).await {
                    return;
                }
            }
            _ = &mut deadline => break,
            _ = tx.closed() => return,
        }
    }
}
