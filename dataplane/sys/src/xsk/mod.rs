//! AF_XDP: the four rings' protocol (`ring`) and the syscalls (`sys`),
//! each wrapped once in a safe function. The socket and UMEM logic that
//! uses them (`kxdp_dataplane::xsk`) is safe code.

mod ring;
mod sys;

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;

pub use ring::{ConsumerRing, ProducerRing, RingLayout, XdpDesc};
pub use sys::{
    bind_xdp, get_xdp_option, if_index, poll, raise_memlock_limit, set_xdp_option, wake_rx,
    wake_tx, xdp_socket, Mmap,
};

/// Map one ring of the AF_XDP socket `fd` (`offsets` as `XDP_MMAP_OFFSETS`
/// reported them, `size` entries, at mmap page offset `page_offset`) and
/// locate its parts.
fn map_ring<T>(
    fd: RawFd,
    offsets: &libc::xdp_ring_offset,
    size: u32,
    page_offset: u64,
) -> io::Result<(Mmap, RingLayout<T>)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "ring offsets outside the mapping",
        )
    };
    if !size.is_power_of_two() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "ring size is not a power of two",
        ));
    }
    let len = usize::try_from(offsets.desc)
        .ok()
        .and_then(|d| d.checked_add(size as usize * size_of::<T>()))
        .ok_or_else(bad)?;
    let map = Mmap::ring(fd, len, page_offset)?;
    let layout = RingLayout {
        producer: map.at(offsets.producer, 1).ok_or_else(bad)?,
        consumer: map.at(offsets.consumer, 1).ok_or_else(bad)?,
        flags: map.at(offsets.flags, 1).ok_or_else(bad)?,
        entries: map.at(offsets.desc, size as usize).ok_or_else(bad)?,
        size,
    };
    Ok((map, layout))
}

/// Map a ring that userspace produces into (fill, tx) of the socket `fd`,
/// whose setsockopt set it to `size` entries; see [`map_ring`].
pub fn map_producer_ring<T: Copy>(
    fd: RawFd,
    offsets: &libc::xdp_ring_offset,
    size: u32,
    page_offset: u64,
) -> io::Result<ProducerRing<T>> {
    let (map, layout) = map_ring(fd, offsets, size, page_offset)?;
    // SAFETY: every pointer of `layout` lies inside `map` (bounds- and
    // alignment-checked by `Mmap::at`), which the ring keeps for as long
    // as it lives; `size` is a power of two (checked); the kernel is the
    // only consumer, and this process's one producer is the returned ring.
    Ok(unsafe { ProducerRing::owning(layout, map) })
}

/// Map a ring that userspace consumes from (completion, rx); see
/// [`map_producer_ring`].
pub fn map_consumer_ring<T: Copy>(
    fd: RawFd,
    offsets: &libc::xdp_ring_offset,
    size: u32,
    page_offset: u64,
) -> io::Result<ConsumerRing<T>> {
    let (map, layout) = map_ring(fd, offsets, size, page_offset)?;
    // SAFETY: as in `map_producer_ring`, with the kernel the only producer
    // and the returned ring this process's one consumer.
    Ok(unsafe { ConsumerRing::owning(layout, map) })
}
