//! `kxdp trace`'s client: [`run`] reads the API's `Trace` stream (served
//! by [`crate::trace`]) and writes a pcapng file ([`PcapngWriter`], written
//! by hand): one interface per port (named after its interface),
//! nanosecond timestamps, and an Enhanced Packet Block per frame whose
//! comment says where it was seen:
//! `point=drop reason=source_spoofed worker=0 port=1 interface=vpa`.
//! tshark and Wireshark read it (`tshark -r F -T fields -e frame.comment`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use kxdp_dataplane::trace::{TraceFilter, TraceFilterError, TracePoint};

use crate::api::{proto, ApiTarget, ClientError};
use crate::trace::{point_to_proto, MAX_TRACE_COUNT};

/// The comment a traced frame gets in the pcapng file.
pub fn frame_comment(frame: &proto::TracedFrame) -> String {
    let point = match proto::TracePoint::try_from(frame.point) {
        Ok(proto::TracePoint::Rx) => "rx",
        Ok(proto::TracePoint::Tx) => "tx",
        Ok(proto::TracePoint::Drop) => "drop",
        _ => "unknown",
    };
    let mut comment = format!("point={point}");
    if !frame.drop_reason.is_empty() {
        comment.push_str(&format!(" reason={}", frame.drop_reason));
    }
    comment.push_str(&format!(" worker={} port={}", frame.worker, frame.port));
    if !frame.interface.is_empty() {
        comment.push_str(&format!(" interface={}", frame.interface));
    }
    comment
}

/// pcapng block types and option codes (draft-ietf-opsawg-pcapng).
const BLOCK_SECTION_HEADER: u32 = 0x0A0D_0D0A;
const BLOCK_INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
const BLOCK_ENHANCED_PACKET: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const LINKTYPE_ETHERNET: u16 = 1;
/// The snap length written in interface blocks.
const SNAP_LEN: u32 = kxdp_dataplane::trace::TRACE_SNAP_LEN as u32;

/// A pcapng writer (little-endian, one section): interfaces are declared
/// as packets for them arrive; timestamps are in nanoseconds.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
    interfaces: BTreeMap<String, u32>,
    block: Vec<u8>,
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

impl<W: Write> PcapngWriter<W> {
    /// Start a file on `out` (writes the section header).
    pub fn new(out: W) -> std::io::Result<PcapngWriter<W>> {
        let mut writer = PcapngWriter {
            out,
            interfaces: BTreeMap::new(),
            block: Vec::with_capacity(4096),
        };
        writer.begin();
        writer.u32(BYTE_ORDER_MAGIC);
        writer.u16(1);
        writer.u16(0);
        // Section length: not given.
        writer.block.extend_from_slice(&u64::MAX.to_le_bytes());
        let application = format!("kxdp {}", env!("CARGO_PKG_VERSION"));
        writer.option(SHB_USERAPPL, application.as_bytes());
        writer.u16(OPT_END);
        writer.u16(0);
        writer.end(BLOCK_SECTION_HEADER)?;
        Ok(writer)
    }

    /// The interface id of `name`, declaring it first if it is new.
    pub fn interface(&mut self, name: &str) -> std::io::Result<u32> {
        if let Some(id) = self.interfaces.get(name) {
            return Ok(*id);
        }
        let id = u32::try_from(self.interfaces.len()).unwrap_or(u32::MAX);
        self.begin();
        self.u16(LINKTYPE_ETHERNET);
        self.u16(0);
        self.u32(SNAP_LEN);
        if !name.is_empty() {
            self.option(IF_NAME, name.as_bytes());
        }
        // Timestamps in units of 10^-9 s.
        self.option(IF_TSRESOL, &[9]);
        self.u16(OPT_END);
        self.u16(0);
        self.end(BLOCK_INTERFACE_DESCRIPTION)?;
        self.interfaces.insert(name.to_string(), id);
        Ok(id)
    }

    /// Write one frame seen on `interface` at `timestamp_ns` (since the Unix
    /// epoch), `original_len` bytes long of which `data` was kept, with
    /// `comment`.
    pub fn packet(
        &mut self,
        interface: &str,
        timestamp_ns: u64,
        original_len: u32,
        data: &[u8],
        comment: &str,
    ) -> std::io::Result<()> {
        let id = self.interface(interface)?;
        let captured = u32::try_from(data.len())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too long"))?;
        self.begin();
        self.u32(id);
        self.u32((timestamp_ns >> 32) as u32);
        self.u32(timestamp_ns as u32);
        self.u32(captured);
        self.u32(original_len.max(captured));
        self.block.extend_from_slice(data);
        self.block
            .extend(std::iter::repeat_n(0u8, pad4(data.len())));
        if !comment.is_empty() {
            self.option(OPT_COMMENT, comment.as_bytes());
        }
        self.u16(OPT_END);
        self.u16(0);
        self.end(BLOCK_ENHANCED_PACKET)
    }

    /// Flush and return the underlying writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    /// Flush what was written so far.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn begin(&mut self) {
        self.block.clear();
        // Type and length, filled in by `end`.
        self.block.extend_from_slice(&[0; 8]);
    }

    fn end(&mut self, block_type: u32) -> std::io::Result<()> {
        let total = u32::try_from(self.block.len() + 4)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "block too long"))?;
        self.block[0..4].copy_from_slice(&block_type.to_le_bytes());
        self.block[4..8].copy_from_slice(&total.to_le_bytes());
        self.block.extend_from_slice(&total.to_le_bytes());
        self.out.write_all(&self.block)
    }

    fn u16(&mut self, v: u16) {
        self.block.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.block.extend_from_slice(&v.to_le_bytes());
    }

    fn option(&mut self, code: u16, value: &[u8]) {
        // An option value is at most 65535 bytes: cut longer ones.
        let value = &value[..value.len().min(usize::from(u16::MAX))];
        self.u16(code);
        self.u16(value.len() as u16);
        self.block.extend_from_slice(value);
        self.block
            .extend(std::iter::repeat_n(0u8, pad4(value.len())));
    }
}

/// What `kxdp trace` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceOptions {
    /// The point.
    pub point: TracePoint,
    /// The filter (see `TraceFilter::parse`); empty for every frame.
    pub filter: String,
    /// Frames to capture.
    pub count: u64,
    /// The pcapng file.
    pub file: PathBuf,
}

/// What a trace wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceSummary {
    /// Frames written.
    pub frames: u64,
    /// Frames that matched but were lost before the client read them.
    pub missed: u64,
    /// Interrupted (Ctrl-C) before `count` frames.
    pub interrupted: bool,
}

/// Why `kxdp trace` stopped short. The options' errors name the flag.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// --match: the filter does not parse
    #[error("--match: {0}")]
    Filter(TraceFilterError),
    /// --count: {count} is outside 1..=MAX_TRACE_COUNT
    #[error("--count: {count} is outside 1..={MAX_TRACE_COUNT}")]
    Count {
        /// The count asked for.
        count: u64,
    },
    /// building a tokio runtime
    #[error("building a tokio runtime")]
    Runtime(#[source] std::io::Error),
    /// The node's API could not be reached (the client's error as it is).
    #[error(transparent)]
    Connect(#[from] ClientError),
    /// {code:?}: {message} (the node refused the trace)
    #[error("{code:?}: {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// the trace stream failed: {code:?}: {message}
    #[error("the trace stream failed: {code:?}: {message}")]
    StreamFailed {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// catching Ctrl-C
    #[error("catching Ctrl-C")]
    Signal(#[source] std::io::Error),
    /// -w: creating {path}
    #[error("-w: creating {}", path.display())]
    Create {
        /// The pcapng file.
        path: PathBuf,
        /// Why it could not be created.
        #[source]
        source: std::io::Error,
    },
    /// writing {path}
    #[error("writing {}", path.display())]
    Write {
        /// The pcapng file.
        path: PathBuf,
        /// Why it could not be written.
        #[source]
        source: std::io::Error,
    },
}

/// `kxdp trace`: capture at `options.point` of the node at `target` into
/// `options.file` until `options.count` frames or Ctrl-C.
pub fn run(target: &ApiTarget, options: &TraceOptions) -> Result<TraceSummary, CaptureError> {
    // Refuse a bad filter before connecting (the server checks it too).
    TraceFilter::parse(&options.filter).map_err(CaptureError::Filter)?;
    if !(1..=MAX_TRACE_COUNT).contains(&options.count) {
        return Err(CaptureError::Count {
            count: options.count,
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CaptureError::Runtime)?;
    runtime.block_on(trace_to_file(target, options))
}

async fn trace_to_file(
    target: &ApiTarget,
    options: &TraceOptions,
) -> Result<TraceSummary, CaptureError> {
    let channel = crate::api::client::connect(target).await?;
    let mut client = crate::api::client::client(channel);
    let request = proto::TraceRequest {
        point: point_to_proto(options.point) as i32,
        filter: options.filter.clone(),
        count: options.count,
    };
    let mut stream = client
        .trace(request)
        .await
        .map_err(|s| CaptureError::Refused {
            code: s.code(),
            message: s.message().to_string(),
        })?
        .into_inner();
    // Ctrl-C (or SIGTERM, as `timeout` sends) ends the trace with a whole
    // file: registered now, before the file exists.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(CaptureError::Signal)?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(CaptureError::Signal)?;
    let file = create(&options.file)?;
    let write_error = |source: std::io::Error| CaptureError::Write {
        path: options.file.clone(),
        source,
    };
    let mut writer = PcapngWriter::new(std::io::BufWriter::new(file)).map_err(write_error)?;
    eprintln!(
        "tracing {} frames at {}{} into {} (Ctrl-C to stop)",
        options.count,
        options.point.label(),
        if options.filter.trim().is_empty() {
            String::new()
        } else {
            format!(" matching `{}`", options.filter)
        },
        options.file.display()
    );
    let mut summary = TraceSummary::default();
    while summary.frames < options.count {
        let message = tokio::select! {
            _ = interrupt.recv() => {
                summary.interrupted = true;
                break;
            }
            _ = terminate.recv() => {
                summary.interrupted = true;
                break;
            }
            message = stream.message() => message,
        };
        let frame = match message {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(s) => {
                writer.flush().map_err(write_error)?;
                return Err(CaptureError::StreamFailed {
                    code: s.code(),
                    message: s.message().to_string(),
                });
            }
        };
        let ns = frame.time.as_ref().map_or(0, |t| {
            u64::try_from(t.seconds).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.nanos).unwrap_or(0)
        });
        writer
            .packet(
                &frame.interface,
                ns,
                frame.original_length,
                &frame.data,
                &frame_comment(&frame),
            )
            .map_err(write_error)?;
        writer.flush().map_err(write_error)?;
        summary.frames += 1;
        summary.missed = frame.missed;
    }
    writer.finish().map_err(write_error)?;
    Ok(summary)
}

fn create(path: &Path) -> Result<std::fs::File, CaptureError> {
    std::fs::File::create(path).map_err(|source| CaptureError::Create {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::trace::serve;
    use kxdp_dataplane::trace::TraceHub;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::watch;

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_add(seed)).collect()
    }

    #[test]
    fn the_pcapng_file_reads_back_with_interfaces_timestamps_and_comments() {
        let mut writer = PcapngWriter::new(Vec::new()).unwrap();
        // Lengths that need 0..3 bytes of padding, on two interfaces.
        let frames = [
            (
                "vpa",
                1_700_000_000_123_456_789u64,
                frame(60, 1),
                "point=drop reason=no_route worker=0 port=1 interface=vpa",
            ),
            (
                "ul0",
                1_700_000_000_223_456_789,
                frame(61, 2),
                "point=drop reason=unknown_vni worker=1 port=0 interface=ul0",
            ),
            ("vpa", 1_700_000_001_000_000_001, frame(62, 3), "x"),
            ("vpa", 1_700_000_002_000_000_000, frame(1514, 4), ""),
        ];
        for (itf, ns, data, comment) in &frames {
            writer
                .packet(itf, *ns, data.len() as u32 + 3, data, comment)
                .unwrap();
        }
        let bytes = writer.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);

        let mut reader = PcapNgReader::new(&bytes[..]).expect("a pcapng section");
        let mut packets = Vec::new();
        let mut interfaces = Vec::new();
        while let Some(block) = reader.next_block() {
            match block.expect("a valid block") {
                Block::InterfaceDescription(idb) => {
                    assert_eq!(u32::from(idb.linktype), u32::from(LINKTYPE_ETHERNET));
                    assert_eq!(idb.snaplen, SNAP_LEN);
                    let name = idb.options.iter().find_map(|o| match o {
                        InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                        _ => None,
                    });
                    let resolution = idb.options.iter().find_map(|o| match o {
                        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                        _ => None,
                    });
                    assert_eq!(resolution, Some(9));
                    interfaces.push(name.expect("if_name"));
                }
                Block::EnhancedPacket(epb) => {
                    let comment = epb.options.iter().find_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    });
                    packets.push((
                        epb.interface_id,
                        epb.timestamp.as_nanos() as u64,
                        epb.original_len,
                        epb.data.to_vec(),
                        comment,
                    ));
                }
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert_eq!(interfaces, ["vpa", "ul0"]);
        assert_eq!(packets.len(), frames.len());
        for (got, (itf, ns, data, comment)) in packets.iter().zip(&frames) {
            assert_eq!(interfaces[got.0 as usize], *itf);
            assert_eq!(got.1, *ns);
            assert_eq!(got.2, data.len() as u32 + 3);
            assert_eq!(&got.3, data);
            assert_eq!(got.4.as_deref(), (!comment.is_empty()).then_some(*comment));
        }
    }

    #[test]
    fn comments_name_point_reason_worker_and_port() {
        let mut f = proto::TracedFrame {
            worker: 1,
            port: 2,
            interface: "vpb".into(),
            point: proto::TracePoint::Drop as i32,
            drop_reason: "source_spoofed".into(),
            ..proto::TracedFrame::default()
        };
        assert_eq!(
            frame_comment(&f),
            "point=drop reason=source_spoofed worker=1 port=2 interface=vpb"
        );
        f.point = proto::TracePoint::Tx as i32;
        f.drop_reason.clear();
        assert_eq!(frame_comment(&f), "point=tx worker=1 port=2 interface=vpb");
    }

    fn request(point: proto::TracePoint, filter: &str, count: u64) -> proto::TraceRequest {
        proto::TraceRequest {
            point: point as i32,
            filter: filter.into(),
            count,
        }
    }

    #[tokio::test]
    async fn bad_requests_are_refused_naming_the_field_and_arm_nothing() {
        let hub = Arc::new(TraceHub::new());
        let (_stop_tx, stop) = watch::channel(false);
        let refused = |r: proto::TraceRequest| {
            serve(Some(&hub), &[], &r, stop.clone())
                .err()
                .expect("refused")
        };
        let e = refused(request(proto::TracePoint::Unspecified, "", 1));
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("point:"), "{}", e.message());
        let e = refused(request(proto::TracePoint::Drop, "udp or tcp", 1));
        assert!(e.message().starts_with("filter: word 2"), "{}", e.message());
        let e = refused(request(proto::TracePoint::Drop, "", 0));
        assert!(e.message().starts_with("count:"), "{}", e.message());
        let e = refused(request(proto::TracePoint::Drop, "", MAX_TRACE_COUNT + 1));
        assert!(e.message().starts_with("count:"), "{}", e.message());
        assert!(!hub.is_armed());
        let e = serve(
            None,
            &[],
            &request(proto::TracePoint::Rx, "", 1),
            stop.clone(),
        )
        .err()
        .expect("no hub");
        assert_eq!(e.code(), tonic::Code::Unavailable);
    }

    #[tokio::test]
    async fn a_trace_streams_count_frames_then_disarms() {
        use tokio_stream::StreamExt;
        let hub = Arc::new(TraceHub::new());
        let (_stop_tx, stop) = watch::channel(false);
        let mut stream = serve(
            Some(&hub),
            &[],
            &request(proto::TracePoint::Drop, "reason no_route", 2),
            stop.clone(),
        )
        .expect("armed");
        assert!(hub.is_armed());
        // A second trace waits for the first.
        let busy = serve(
            Some(&hub),
            &[],
            &request(proto::TracePoint::Rx, "", 1),
            stop.clone(),
        )
        .err()
        .expect("busy");
        assert_eq!(busy.code(), tonic::Code::FailedPrecondition);

        let session = hub.armed().expect("armed");
        let data = frame(64, 9);
        for (i, reason) in [
            kxdp_dataplane::DropReason::NoRoute,
            kxdp_dataplane::DropReason::SourceSpoofed,
            kxdp_dataplane::DropReason::NoRoute,
            kxdp_dataplane::DropReason::NoRoute,
        ]
        .into_iter()
        .enumerate()
        {
            session.offer(
                kxdp_dataplane::trace::TraceMeta {
                    timestamp_ns: 1_000_000_000 + i as u64,
                    worker: 0,
                    port: 1,
                    reason: Some(reason),
                },
                &data,
            );
        }
        drop(session);
        let first = stream.next().await.expect("a frame").expect("ok");
        assert_eq!(first.drop_reason, "no_route");
        assert_eq!(first.data, data);
        assert_eq!(
            first.time.as_ref().map(|t| (t.seconds, t.nanos)),
            Some((1, 0))
        );
        let second = stream.next().await.expect("a frame").expect("ok");
        assert_eq!(second.time.as_ref().map(|t| t.nanos), Some(2));
        assert!(stream.next().await.is_none(), "the stream ends after count");
        // The task disarmed the session when it ended.
        for _ in 0..100 {
            if !hub.is_armed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!hub.is_armed());
    }

    #[tokio::test]
    async fn a_client_going_away_disarms_the_trace() {
        let hub = Arc::new(TraceHub::new());
        let (_stop_tx, stop) = watch::channel(false);
        let stream = serve(
            Some(&hub),
            &[],
            &request(proto::TracePoint::Rx, "", 10),
            stop,
        )
        .expect("armed");
        drop(stream);
        for _ in 0..100 {
            if !hub.is_armed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!hub.is_armed());
    }
}
