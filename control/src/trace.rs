//! `kxdp trace`: the control side of the workers' trace point
//! (`kxdp_dataplane::trace`).
//!
//! - The API's `Trace` call ([`serve`]) validates the request (point,
//!   filter, count), arms one [`TraceSession`] on the node's [`TraceHub`],
//!   drains the captured records every few milliseconds into the response
//!   stream and gives them back to the session's pool. The stream ends after
//!   `count` frames, when the client goes away or when the API stops; the
//!   session is disarmed then, whatever ended it.
//! - The CLI reads that stream into a pcapng file: see
//!   [`crate::trace_capture`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kxdp_dataplane::trace::{TraceFilter, TraceHub, TracePoint, TraceRecord, TraceSession};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::Status;

use crate::api::proto;
use kxdp_node::runtime::PortInfo;

/// The most frames one trace may ask for.
pub const MAX_TRACE_COUNT: u64 = 1_000_000;

/// Records allocated for a session at most (each holds a 2 KiB frame): a
/// client that reads slowly loses frames (counted as missed) rather than
/// making the node allocate.
const MAX_SESSION_RECORDS: u64 = 4096;

/// How often the API drains the captured records.
const DRAIN_INTERVAL: Duration = Duration::from_millis(5);

/// The stream `Trace` answers with.
pub type TraceStream = Pin<Box<dyn Stream<Item = Result<proto::TracedFrame, Status>> + Send>>;

/// The point a request names.
pub fn point_from_proto(point: i32) -> Result<TracePoint, Status> {
    match proto::TracePoint::try_from(point) {
        Ok(proto::TracePoint::Rx) => Ok(TracePoint::Rx),
        Ok(proto::TracePoint::Tx) => Ok(TracePoint::Tx),
        Ok(proto::TracePoint::Drop) => Ok(TracePoint::Drop),
        _ => Err(Status::invalid_argument(format!(
            "point: {point} is not rx, tx or drop"
        ))),
    }
}

/// The proto value of `point`.
pub fn point_to_proto(point: TracePoint) -> proto::TracePoint {
    match point {
        TracePoint::Rx => proto::TracePoint::Rx,
        TracePoint::Tx => proto::TracePoint::Tx,
        TracePoint::Drop => proto::TracePoint::Drop,
    }
}

/// Disarms its session when dropped (the stream ended, the client went
/// away, the task was cancelled).
struct Armed {
    hub: Arc<TraceHub>,
    session: Arc<TraceSession>,
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.hub.disarm(&self.session);
        tracing::info!(
            matched = self.session.matched(),
            missed = self.session.missed(),
            "trace disarmed"
        );
    }
}

/// Answer a `Trace` call: validate `request`, arm a session on `hub` and
/// stream what it captures. `ports` names the interfaces (port `p` is the
/// `p`-th interface of worker 0); `stop` ends the stream when the API
/// shuts down.
pub fn serve(
    hub: Option<&Arc<TraceHub>>,
    ports: &[PortInfo],
    request: &proto::TraceRequest,
    mut stop: watch::Receiver<bool>,
) -> Result<TraceStream, Status> {
    let hub = hub.ok_or_else(|| Status::unavailable("this node runs no workers to trace"))?;
    let point = point_from_proto(request.point)?;
    let filter = TraceFilter::parse(&request.filter)
        .map_err(|e| Status::invalid_argument(format!("filter: {e}")))?;
    let count = request.count;
    if !(1..=MAX_TRACE_COUNT).contains(&count) {
        return Err(Status::invalid_argument(format!(
            "count: {count} is outside 1..={MAX_TRACE_COUNT}"
        )));
    }
    let interfaces: Vec<String> = ports
        .iter()
        .filter(|p| p.worker == 0)
        .map(|p| p.interface.clone())
        .collect();
    let records = usize::try_from(count.min(MAX_SESSION_RECORDS)).unwrap_or(1);
    let session = TraceSession::new(point, filter, records);
    hub.arm(Arc::clone(&session))
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
    tracing::info!(point = point.label(), filter = %request.filter, count, "trace armed");
    let armed = Armed {
        hub: Arc::clone(hub),
        session: Arc::clone(&session),
    };
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let _armed = armed;
        let mut ticker = tokio::time::interval(DRAIN_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = 0u64;
        'stream: loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
                _ = tx.closed() => break,
            }
            while let Some(record) = session.take() {
                let frame = traced_frame(&record, &interfaces, session.missed());
                session.recycle(record);
                if tx.send(Ok(frame)).await.is_err() {
                    break 'stream;
                }
                sent += 1;
                if sent >= count {
                    break 'stream;
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

fn traced_frame(record: &TraceRecord, interfaces: &[String], missed: u64) -> proto::TracedFrame {
    let ns = record.timestamp_ns;
    proto::TracedFrame {
        time: Some(prost_types::Timestamp {
            seconds: i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
            nanos: i32::try_from(ns % 1_000_000_000).unwrap_or(0),
        }),
        worker: u32::from(record.worker),
        port: u32::from(record.port),
        interface: interfaces
            .get(usize::from(record.port))
            .cloned()
            .unwrap_or_default(),
        point: point_to_proto(record.point) as i32,
        drop_reason: record
            .reason
            .map(|r| r.label().to_string())
            .unwrap_or_default(),
        original_length: record.original_len,
        data: record.frame().to_vec(),
        missed,
    }
}
