//! An in-memory backend with AF_XDP semantics, for tests and benchmarks.
//!
//! It behaves like a copy-mode AF_XDP socket set: each port has a fill, rx,
//! tx and completion ring of fixed size; [`MemoryIo::inject`] plays the
//! kernel receiving a frame (it takes a chunk from the port's fill ring,
//! copies the frame in after [`MIN_HEADROOM`] bytes and posts it on rx, or
//! counts a drop when the fill ring is empty or rx is full), and
//! [`MemoryIo::drain_tx`] plays the kernel transmitting (it copies frames out
//! of the tx ring and posts their addresses on the completion ring). It
//! never allocates after construction, except in `drain_tx`'s output, which
//! is test-side.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use super::{Desc, PacketIo, MIN_HEADROOM};
use crate::verdict::PortId;

/// Kernel-side drop counts of one port (what XDP_STATISTICS would show).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPortStats {
    /// Frames injected while the fill ring was empty.
    pub rx_fill_empty: u64,
    /// Frames injected while the rx ring was full.
    pub rx_ring_full: u64,
    /// Frames that did not fit in a chunk.
    pub rx_too_big: u64,
}

#[derive(Debug)]
struct Port {
    fill: VecDeque<u64>,
    rx: VecDeque<Desc>,
    tx: VecDeque<Desc>,
    completion: VecDeque<u64>,
    stats: MemoryPortStats,
}

/// The in-memory backend.
#[derive(Debug)]
pub struct MemoryIo {
    umem: Vec<u8>,
    frame_size: u32,
    frame_count: u32,
    ring_size: usize,
    ports: Vec<Port>,
}

impl MemoryIo {
    /// `ports` ports, a UMEM of `frame_count` chunks of `frame_size` bytes
    /// (a power of two, at least 2048), rings of `ring_size` entries.
    pub fn new(ports: usize, frame_size: u32, frame_count: u32, ring_size: usize) -> Self {
        let frame_size = frame_size.max(2048).next_power_of_two();
        MemoryIo {
            umem: vec![0; frame_size as usize * frame_count as usize],
            frame_size,
            frame_count,
            ring_size,
            ports: (0..ports)
                .map(|_| Port {
                    fill: VecDeque::with_capacity(ring_size),
                    rx: VecDeque::with_capacity(ring_size),
                    tx: VecDeque::with_capacity(ring_size),
                    completion: VecDeque::with_capacity(ring_size),
                    stats: MemoryPortStats::default(),
                })
                .collect(),
        }
    }

    /// A new port with empty rings (a pod interface added at run time);
    /// returns its number.
    pub fn add_port(&mut self) -> PortId {
        let ring_size = self.ring_size;
        self.ports.push(Port {
            fill: VecDeque::with_capacity(ring_size),
            rx: VecDeque::with_capacity(ring_size),
            tx: VecDeque::with_capacity(ring_size),
            completion: VecDeque::with_capacity(ring_size),
            stats: MemoryPortStats::default(),
        });
        PortId::try_from(self.ports.len() - 1).unwrap_or(PortId::MAX)
    }

    /// The kernel receives `frame` on `port`. Returns false (and counts) when
    /// it is dropped because no chunk is in the fill ring or rx is full.
    pub fn inject(&mut self, port: PortId, frame: &[u8]) -> bool {
        let frame_size = self.frame_size as usize;
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return false;
        };
        if frame.len() + MIN_HEADROOM > frame_size {
            p.stats.rx_too_big += 1;
            return false;
        }
        if p.rx.len() >= self.ring_size {
            p.stats.rx_ring_full += 1;
            return false;
        }
        let Some(chunk) = p.fill.pop_front() else {
            p.stats.rx_fill_empty += 1;
            return false;
        };
        let start = chunk as usize + MIN_HEADROOM;
        self.umem[start..start + frame.len()].copy_from_slice(frame);
        p.rx.push_back(Desc {
            addr: start as u64,
            len: frame.len() as u32,
        });
        true
    }

    /// The kernel transmits everything on `port`'s tx ring: returns copies of
    /// the frames and posts their addresses on the completion ring (as far
    /// as it has room; the rest stays on tx).
    pub fn drain_tx(&mut self, port: PortId) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return out;
        };
        while p.completion.len() < self.ring_size {
            let Some(d) = p.tx.pop_front() else { break };
            let start = d.addr as usize;
            out.push(self.umem[start..start + d.len as usize].to_vec());
            p.completion.push_back(d.addr);
        }
        out
    }

    /// Kernel-side drop counts of a port.
    pub fn port_stats(&self, port: PortId) -> MemoryPortStats {
        self.ports
            .get(usize::from(port))
            .map(|p| p.stats)
            .unwrap_or_default()
    }

    /// `port`'s socket is closed and a new one bound in its place (its
    /// interface was re-created): returns what the old rings held, fill
    /// entries then received frames then tx entries then completions (as
    /// chunk starts), and leaves the rings empty.
    pub fn reopen(&mut self, port: PortId) -> [Vec<u64>; 4] {
        let fs = self.frame_size;
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return Default::default();
        };
        [
            p.fill.drain(..).collect(),
            p.rx.drain(..)
                .map(|d| super::chunk_of(d.addr, fs))
                .collect(),
            p.tx.drain(..)
                .map(|d| super::chunk_of(d.addr, fs))
                .collect(),
            p.completion.drain(..).collect(),
        ]
    }

    /// Every frame address the "kernel" holds right now (fill, rx, tx,
    /// completion of all ports), as chunk starts, for accounting tests.
    pub fn frames_held(&self) -> Vec<u64> {
        let fs = self.frame_size;
        let mut all = Vec::new();
        for p in &self.ports {
            all.extend(p.fill.iter().copied());
            all.extend(p.rx.iter().map(|d| super::chunk_of(d.addr, fs)));
            all.extend(p.tx.iter().map(|d| super::chunk_of(d.addr, fs)));
            all.extend(p.completion.iter().map(|a| super::chunk_of(*a, fs)));
        }
        all
    }
}

impl PacketIo for MemoryIo {
    fn port_count(&self) -> usize {
        self.ports.len()
    }

    fn frame_size(&self) -> u32 {
        self.frame_size
    }

    fn frame_count(&self) -> u32 {
        self.frame_count
    }

    fn umem(&mut self) -> &mut [u8] {
        &mut self.umem
    }

    fn fill_capacity(&self, port: PortId) -> usize {
        self.ports
            .get(usize::from(port))
            .map_or(0, |p| self.ring_size - p.fill.len())
    }

    fn fill(&mut self, port: PortId, addrs: &[u64]) -> usize {
        let ring_size = self.ring_size;
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return 0;
        };
        let n = addrs.len().min(ring_size - p.fill.len());
        p.fill.extend(addrs[..n].iter().copied());
        n
    }

    fn receive(&mut self, port: PortId, out: &mut [Desc]) -> usize {
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return 0;
        };
        let n = out.len().min(p.rx.len());
        for (slot, d) in out.iter_mut().zip(p.rx.drain(..n)) {
            *slot = d;
        }
        n
    }

    fn transmit(&mut self, port: PortId, descs: &[Desc]) -> usize {
        let ring_size = self.ring_size;
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return 0;
        };
        let n = descs.len().min(ring_size - p.tx.len());
        p.tx.extend(descs[..n].iter().copied());
        n
    }

    fn complete(&mut self, port: PortId, out: &mut [u64]) -> usize {
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return 0;
        };
        let n = out.len().min(p.completion.len());
        for (slot, a) in out.iter_mut().zip(p.completion.drain(..n)) {
            *slot = a;
        }
        n
    }

    fn kick(&mut self, _port: PortId) -> io::Result<()> {
        Ok(())
    }

    fn wait(&mut self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }
}
