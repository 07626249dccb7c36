//! I/O backends: the AF_XDP shape (a UMEM of frames owned by index, and the
//! fill, rx, tx and completion rings of each port), behind one trait so the
//! same worker loop drives AF_XDP sockets and the in-memory backend.

pub mod memory;

use std::io;
use std::time::Duration;

use crate::verdict::PortId;

/// A frame descriptor, exactly like an AF_XDP `xdp_desc`: the byte offset of
/// the frame's data inside the UMEM and its length. The data sits inside one
/// chunk of `frame_size` bytes, with at least [`MIN_HEADROOM`] bytes of that
/// chunk before it (room for an encapsulation header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Offset of the first byte of the frame in the UMEM.
    pub addr: u64,
    /// Length of the frame in bytes.
    pub len: u32,
}

/// Headroom every backend leaves before received data (AF_XDP leaves
/// XDP_PACKET_HEADROOM, 256 bytes).
pub const MIN_HEADROOM: usize = 256;

/// A packet I/O backend with AF_XDP semantics.
///
/// Frames are UMEM chunks named by their offset. The caller owns the free
/// frames and moves them: free → [`fill`](PacketIo::fill) → (kernel) →
/// [`receive`](PacketIo::receive) → caller → [`transmit`](PacketIo::transmit)
/// → (kernel) → [`complete`](PacketIo::complete) → free. Every call moves a
/// batch; none allocates.
pub trait PacketIo {
    /// Number of ports (interfaces × queues this backend serves).
    fn port_count(&self) -> usize;
    /// Size of one UMEM chunk (a power of two).
    fn frame_size(&self) -> u32;
    /// Number of chunks in the UMEM.
    fn frame_count(&self) -> u32;
    /// The whole UMEM.
    fn umem(&mut self) -> &mut [u8];
    /// Free slots in `port`'s fill ring.
    fn fill_capacity(&self, port: PortId) -> usize;
    /// Give empty chunks (chunk-start offsets) to `port`'s fill ring;
    /// returns how many were taken, from the front of `addrs`.
    fn fill(&mut self, port: PortId, addrs: &[u64]) -> usize;
    /// Take up to `out.len()` received frames from `port`'s rx ring.
    fn receive(&mut self, port: PortId, out: &mut [Desc]) -> usize;
    /// Queue frames on `port`'s tx ring; returns how many were taken, from
    /// the front of `descs`. The rest stay with the caller.
    fn transmit(&mut self, port: PortId, descs: &[Desc]) -> usize;
    /// Take up to `out.len()` completed tx frames (their descriptor addresses).
    fn complete(&mut self, port: PortId, out: &mut [u64]) -> usize;
    /// Tell the kernel about new tx (and fill) entries if it asked to be
    /// woken (need_wakeup); at most one syscall.
    fn kick(&mut self, port: PortId) -> io::Result<()>;
    /// Sleep until any port has received frames or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;
}

/// The chunk a descriptor address lies in (its start offset).
#[inline]
pub fn chunk_of(addr: u64, frame_size: u32) -> u64 {
    addr & !(u64::from(frame_size) - 1)
}
