//! AF_XDP: the four rings' protocol (`ring`) and the syscalls (`sys`),
//! each wrapped once in a safe function. The socket and UMEM logic that
//! uses them (`kxdp_dataplane::xsk`) is safe code.

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;

pub use ring::{ConsumerRing, ProducerRing, RingLayout, XdpDesc};
pub use sys::{
    bind_xdp, get_xdp_option, if_index, incoming_napi_id, poll, raise_memlock_limit,
    set_xdp_option, wake_rx, wake_tx, xdp_socket, Mmap,
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

mod ring {
    //! The four AF_XDP rings (fill, completion, rx, tx) as single-producer /
    //! single-consumer queues over memory shared with the kernel.
    //!
    //! A ring is a power-of-two array of entries plus a `producer` and a
    //! `consumer` index (free-running `u32`s, compared with wrapping arithmetic)
    //! and a `flags` word. The producer writes entries then publishes its index
    //! with a Release store; the consumer reads the producer index with an
    //! Acquire load before it reads the entries, and publishes its own index
    //! with a Release store once it has copied them out. Each side keeps a
    //! cached copy of both indices, so a batch loads the other side's index at
    //! most once and stores its own exactly once. This is the protocol of the
    //! kernel's `xsk_queue.h`, re-implemented because kxdp links neither libbpf
    //! nor libxdp (no crate implements it without them either, apart from whole
    //! AF_XDP frameworks we do not want to adopt).
    //!
    //! The type does not know whether its memory is an mmapped kernel ring or a
    //! heap-allocated fake one: the unit tests below drive it against a fake.

    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::sys::Mmap;

    /// `XDP_RING_NEED_WAKEUP`: set by the kernel in the flags word of the fill
    /// or tx ring when it needs a syscall to go on.
    const RING_NEED_WAKEUP: u32 = libc::XDP_RING_NEED_WAKEUP;

    /// An rx/tx ring entry, `struct xdp_desc`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct XdpDesc {
        /// Offset of the data in the UMEM.
        pub addr: u64,
        /// Length of the data.
        pub len: u32,
        /// Options (`XDP_PKT_CONTD`); always 0 without multi-buffer.
        pub options: u32,
    }

    /// Where one ring's parts are. The pointers stay valid as long as the
    /// memory that holds the ring (an mmap owned by the socket, or a test's
    /// heap allocation) lives.
    #[derive(Debug)]
    pub struct RingLayout<T> {
        pub producer: NonNull<AtomicU32>,
        pub consumer: NonNull<AtomicU32>,
        pub flags: NonNull<AtomicU32>,
        pub entries: NonNull<T>,
        /// Number of entries, a power of two.
        pub size: u32,
    }

    impl<T> RingLayout<T> {
        fn producer(&self) -> &AtomicU32 {
            // SAFETY: `RingLayout` is only built by `ProducerRing::new` /
            // `ConsumerRing::new`, whose callers promise the pointer is valid,
            // aligned and outlives the ring; an AtomicU32 may alias memory that
            // the kernel (the other side) writes concurrently.
            unsafe { self.producer.as_ref() }
        }

        fn consumer(&self) -> &AtomicU32 {
            // SAFETY: as for `producer`.
            unsafe { self.consumer.as_ref() }
        }

        fn flags(&self) -> &AtomicU32 {
            // SAFETY: as for `producer`.
            unsafe { self.flags.as_ref() }
        }

        /// Pointer to the entry at free-running index `index`.
        fn slot(&self, index: u32) -> *mut T {
            let i = (index & (self.size - 1)) as usize;
            // SAFETY: `i < size` and the entry array has `size` elements, so the
            // offset stays inside one allocation.
            unsafe { self.entries.as_ptr().add(i) }
        }
    }

    /// The side of a ring that userspace produces into (fill, tx).
    #[derive(Debug)]
    pub struct ProducerRing<T> {
        layout: RingLayout<T>,
        /// Our producer index; published on every batch.
        cached_producer: u32,
        /// The kernel's consumer index plus `size`: `cached_end - cached_producer`
        /// is a lower bound of the free slots.
        cached_end: u32,
        /// The mapping `layout` points into, when the ring owns it (a kernel
        /// ring); `None` for memory the caller keeps alive (the tests' fakes).
        /// Declared last: unmapped after everything that points into it.
        _memory: Option<Mmap>,
    }

    // SAFETY: the ring is a handle on memory that is not tied to a thread; it is
    // moved whole with the socket that owns that memory and used by one thread
    // at a time (&mut self for every mutation).
    unsafe impl<T: Send> Send for ProducerRing<T> {}

    impl<T: Copy> ProducerRing<T> {
        /// Wrap a ring whose producer side we own.
        ///
        /// # Safety
        ///
        /// The pointers in `layout` must be valid and aligned for as long as the
        /// returned ring is used, `entries` must point to `size` entries, `size`
        /// must be a non-zero power of two, and nothing else may produce into
        /// this ring.
        pub unsafe fn new(layout: RingLayout<T>) -> Self {
            debug_assert!(layout.size.is_power_of_two());
            let cached_producer = layout.producer().load(Ordering::Relaxed);
            let cached_end = layout
                .consumer()
                .load(Ordering::Acquire)
                .wrapping_add(layout.size);
            ProducerRing {
                layout,
                cached_producer,
                cached_end,
                _memory: None,
            }
        }

        /// Like [`ProducerRing::new`], the ring also owning `memory`.
        ///
        /// # Safety
        ///
        /// As for [`ProducerRing::new`], with the pointers of `layout` inside
        /// `memory` (which then lives exactly as long as the ring).
        pub(super) unsafe fn owning(layout: RingLayout<T>, memory: Mmap) -> Self {
            // SAFETY: the caller's promise, passed on; `memory` outlives every
            // use of `layout` because the ring keeps it.
            let mut ring = unsafe { Self::new(layout) };
            ring._memory = Some(memory);
            ring
        }

        /// Free slots, refreshing the kernel's consumer index only when the
        /// cached value shows fewer than `wanted`.
        fn free_slots(&mut self, wanted: u32) -> u32 {
            let free = self.cached_end.wrapping_sub(self.cached_producer);
            if free >= wanted {
                return free;
            }
            self.cached_end = self
                .layout
                .consumer()
                .load(Ordering::Acquire)
                .wrapping_add(self.layout.size);
            self.cached_end.wrapping_sub(self.cached_producer)
        }

        /// Free slots right now (one fresh load of the consumer index; does not
        /// touch the caches).
        pub fn free_now(&self) -> u32 {
            let consumer = self.layout.consumer().load(Ordering::Acquire);
            self.layout
                .size
                .wrapping_sub(self.cached_producer.wrapping_sub(consumer))
        }

        /// Produce `count` entries made by `make(i)` for `i` in `0..n`, where `n`
        /// is `count` bounded by the free slots; publishes them with one Release
        /// store and returns `n`.
        pub fn produce(&mut self, count: usize, mut make: impl FnMut(usize) -> T) -> usize {
            let wanted = u32::try_from(count).unwrap_or(u32::MAX);
            let n = self.free_slots(wanted).min(wanted);
            if n == 0 {
                return 0;
            }
            for i in 0..n {
                let slot = self.layout.slot(self.cached_producer.wrapping_add(i));
                // SAFETY: the slot is between the published producer index and
                // the consumer index plus size, so the kernel does not read it
                // until we publish; `slot` is in bounds (see `RingLayout::slot`).
                unsafe { slot.write_volatile(make(i as usize)) };
            }
            self.cached_producer = self.cached_producer.wrapping_add(n);
            // Release: the entries above are visible before the new index.
            self.layout
                .producer()
                .store(self.cached_producer, Ordering::Release);
            n as usize
        }

        /// Entries we published that the kernel has not consumed yet.
        pub fn outstanding(&self) -> u32 {
            self.cached_producer
                .wrapping_sub(self.layout.consumer().load(Ordering::Acquire))
        }

        /// Whether the kernel asks for a wakeup syscall (`XDP_RING_NEED_WAKEUP`).
        pub fn needs_wakeup(&self) -> bool {
            self.layout.flags().load(Ordering::Acquire) & RING_NEED_WAKEUP != 0
        }

        /// Hand the entries we published and the kernel has not consumed to
        /// `take`, oldest first. For a ring the kernel no longer serves (its
        /// socket's device is gone): those entries are ours again. The ring
        /// itself is left as it is.
        pub fn unconsumed(&self, mut take: impl FnMut(T)) {
            let consumer = self.layout.consumer().load(Ordering::Acquire);
            let n = self
                .cached_producer
                .wrapping_sub(consumer)
                .min(self.layout.size);
            for i in 0..n {
                let slot = self.layout.slot(consumer.wrapping_add(i));
                // SAFETY: the slot is in bounds (see `RingLayout::slot`) and
                // holds an entry we wrote; reading it races with nothing that
                // writes (only we produce into this ring).
                take(unsafe { slot.read_volatile() });
            }
        }
    }

    /// The side of a ring that userspace consumes from (rx, completion).
    #[derive(Debug)]
    pub struct ConsumerRing<T> {
        layout: RingLayout<T>,
        /// Our consumer index; published on every batch.
        cached_consumer: u32,
        /// The kernel's producer index as last loaded.
        cached_producer: u32,
        /// As for [`ProducerRing`].
        _memory: Option<Mmap>,
    }

    // SAFETY: as for `ProducerRing`.
    unsafe impl<T: Send> Send for ConsumerRing<T> {}

    impl<T: Copy> ConsumerRing<T> {
        /// Wrap a ring whose consumer side we own.
        ///
        /// # Safety
        ///
        /// As for [`ProducerRing::new`], with "nothing else may consume from
        /// this ring".
        pub unsafe fn new(layout: RingLayout<T>) -> Self {
            debug_assert!(layout.size.is_power_of_two());
            let cached_consumer = layout.consumer().load(Ordering::Relaxed);
            let cached_producer = layout.producer().load(Ordering::Acquire);
            ConsumerRing {
                layout,
                cached_consumer,
                cached_producer,
                _memory: None,
            }
        }

        /// Like [`ConsumerRing::new`], the ring also owning `memory`.
        ///
        /// # Safety
        ///
        /// As for [`ProducerRing::owning`].
        pub(super) unsafe fn owning(layout: RingLayout<T>, memory: Mmap) -> Self {
            // SAFETY: as in `ProducerRing::owning`.
            let mut ring = unsafe { Self::new(layout) };
            ring._memory = Some(memory);
            ring
        }

        /// Entries ready, refreshing the kernel's producer index only when the
        /// cache shows fewer than `wanted`.
        fn ready(&mut self, wanted: u32) -> u32 {
            let ready = self.cached_producer.wrapping_sub(self.cached_consumer);
            if ready >= wanted {
                return ready;
            }
            // Acquire: the entries the kernel wrote before this index are
            // visible to the reads in `consume`.
            self.cached_producer = self.layout.producer().load(Ordering::Acquire);
            self.cached_producer.wrapping_sub(self.cached_consumer)
        }

        /// Consume up to `max` entries, handing each to `take(i, entry)`;
        /// releases their slots with one Release store and returns how many.
        pub fn consume(&mut self, max: usize, mut take: impl FnMut(usize, T)) -> usize {
            let max = u32::try_from(max).unwrap_or(u32::MAX);
            let n = self.ready(max).min(max);
            if n == 0 {
                return 0;
            }
            for i in 0..n {
                let slot = self.layout.slot(self.cached_consumer.wrapping_add(i));
                // SAFETY: the slot is between our consumer index and the
                // producer index we loaded with Acquire, so the kernel wrote it
                // and will not touch it until we release it below.
                let entry = unsafe { slot.read_volatile() };
                take(i as usize, entry);
            }
            self.cached_consumer = self.cached_consumer.wrapping_add(n);
            // Release: our reads of the entries happen before the kernel may
            // overwrite their slots.
            self.layout
                .consumer()
                .store(self.cached_consumer, Ordering::Release);
            n as usize
        }

        /// Entries the kernel has produced that we have not consumed (one fresh
        /// load; does not touch the caches).
        pub fn ready_now(&self) -> u32 {
            self.layout
                .producer()
                .load(Ordering::Acquire)
                .wrapping_sub(self.cached_consumer)
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use super::*;

        /// A ring in heap memory, with the test playing the kernel. The entry
        /// array is a raw allocation so that the ring handle and the "kernel"
        /// side both go through the same raw pointer.
        struct FakeRing<T> {
            producer: Box<AtomicU32>,
            consumer: Box<AtomicU32>,
            flags: Box<AtomicU32>,
            entries: NonNull<[T]>,
        }

        impl<T> Drop for FakeRing<T> {
            fn drop(&mut self) {
                // SAFETY: `entries` came from `Box::into_raw` in `new` and is
                // freed only here.
                drop(unsafe { Box::from_raw(self.entries.as_ptr()) });
            }
        }

        impl<T: Copy + Default> FakeRing<T> {
            fn new(size: u32, start_index: u32) -> Self {
                let entries = vec![T::default(); size as usize].into_boxed_slice();
                FakeRing {
                    producer: Box::new(AtomicU32::new(start_index)),
                    consumer: Box::new(AtomicU32::new(start_index)),
                    flags: Box::new(AtomicU32::new(0)),
                    entries: NonNull::from(Box::leak(entries)),
                }
            }

            fn size(&self) -> u32 {
                self.entries.len() as u32
            }

            fn slot(&self, index: u32) -> *mut T {
                let i = (index & (self.size() - 1)) as usize;
                // SAFETY: `i` is below the array length.
                unsafe { self.entries.cast::<T>().as_ptr().add(i) }
            }

            fn layout(&self) -> RingLayout<T> {
                RingLayout {
                    producer: NonNull::from(&*self.producer),
                    consumer: NonNull::from(&*self.consumer),
                    flags: NonNull::from(&*self.flags),
                    entries: self.entries.cast::<T>(),
                    size: self.size(),
                }
            }

            /// The kernel consumes `n` entries of a producer ring.
            fn kernel_consume(&self, n: u32) -> Vec<T> {
                let c = self.consumer.load(Ordering::Acquire);
                let p = self.producer.load(Ordering::Acquire);
                assert!(p.wrapping_sub(c) >= n, "kernel consumes more than produced");
                let out = (0..n)
                    // SAFETY: in bounds; the ring handle does not write slots
                    // between its consumer and producer indices.
                    .map(|i| unsafe { self.slot(c.wrapping_add(i)).read_volatile() })
                    .collect();
                self.consumer.store(c.wrapping_add(n), Ordering::Release);
                out
            }

            /// The kernel produces entries into a consumer ring.
            fn kernel_produce(&self, items: &[T]) {
                let p = self.producer.load(Ordering::Relaxed);
                let c = self.consumer.load(Ordering::Acquire);
                assert!(
                    self.size() - p.wrapping_sub(c) >= items.len() as u32,
                    "fake ring overflow"
                );
                for (i, item) in items.iter().enumerate() {
                    // SAFETY: in bounds; the slot is free (between the producer
                    // and the consumer index plus size).
                    unsafe { self.slot(p.wrapping_add(i as u32)).write_volatile(*item) };
                }
                self.producer
                    .store(p.wrapping_add(items.len() as u32), Ordering::Release);
            }
        }

        // The fake ring's boxes outlive the ring handles in every test below
        // (the handles are dropped first, in reverse declaration order).

        #[test]
        fn producer_stops_at_capacity_and_resumes_after_kernel_consumes() {
            for start in [0, u32::MAX - 5] {
                let fake = FakeRing::<u64>::new(8, start);
                // SAFETY: the fake ring outlives `ring`; sizes match.
                let mut ring = unsafe { ProducerRing::new(fake.layout()) };
                assert_eq!(ring.free_now(), 8);
                assert_eq!(ring.produce(5, |i| 100 + i as u64), 5);
                assert_eq!(ring.produce(5, |i| 200 + i as u64), 3, "only 3 slots left");
                assert_eq!(ring.produce(1, |_| 999), 0, "full");
                assert_eq!(ring.outstanding(), 8);
                assert_eq!(fake.kernel_consume(6), vec![100, 101, 102, 103, 104, 200]);
                assert_eq!(ring.free_now(), 6);
                assert_eq!(ring.produce(10, |i| 300 + i as u64), 6);
                assert_eq!(
                    fake.kernel_consume(8),
                    vec![201, 202, 300, 301, 302, 303, 304, 305]
                );
                assert_eq!(ring.outstanding(), 0);
                assert_eq!(
                    fake.producer.load(Ordering::Relaxed),
                    start.wrapping_add(14)
                );
            }
        }

        #[test]
        fn unconsumed_entries_are_handed_back_oldest_first() {
            for start in [0, u32::MAX - 2] {
                let fake = FakeRing::<u64>::new(8, start);
                // SAFETY: the fake ring outlives `ring`; sizes match.
                let mut ring = unsafe { ProducerRing::new(fake.layout()) };
                assert_eq!(ring.produce(6, |i| 10 + i as u64), 6);
                fake.kernel_consume(2);
                let mut back = Vec::new();
                ring.unconsumed(|a| back.push(a));
                assert_eq!(back, vec![12, 13, 14, 15]);
                assert_eq!(ring.outstanding(), 4, "the ring is left as it was");
            }
        }

        #[test]
        fn producer_reads_consumer_index_once_per_short_batch() {
            let fake = FakeRing::<u64>::new(4, 0);
            // SAFETY: the fake ring outlives `ring`.
            let mut ring = unsafe { ProducerRing::new(fake.layout()) };
            assert_eq!(ring.produce(4, |i| i as u64), 4);
            fake.kernel_consume(2);
            // The cached end still says "full"; a produce refreshes it once.
            assert_eq!(ring.produce(3, |i| 10 + i as u64), 2);
            // While the cache shows enough room, the shared consumer index is
            // not consulted: a bogus value there is never seen.
            let fake2 = FakeRing::<u64>::new(8, 0);
            // SAFETY: the fake ring outlives `ring2`.
            let mut ring2 = unsafe { ProducerRing::new(fake2.layout()) };
            fake2.consumer.store(1000, Ordering::Relaxed);
            assert_eq!(ring2.produce(3, |i| i as u64), 3);
            assert_eq!(fake2.producer.load(Ordering::Relaxed), 3);
        }

        #[test]
        fn consumer_takes_what_the_kernel_produced_across_wraparound() {
            for start in [0, u32::MAX - 2] {
                let fake = FakeRing::<XdpDesc>::new(4, start);
                // SAFETY: the fake ring outlives `ring`.
                let mut ring = unsafe { ConsumerRing::new(fake.layout()) };
                let mut out = Vec::new();
                assert_eq!(ring.consume(8, |_, d| out.push(d)), 0);
                let descs: Vec<XdpDesc> = (0..3)
                    .map(|i| XdpDesc {
                        addr: 2048 * i + 256,
                        len: 60 + i as u32,
                        options: 0,
                    })
                    .collect();
                fake.kernel_produce(&descs);
                assert_eq!(ring.ready_now(), 3);
                assert_eq!(ring.consume(2, |_, d| out.push(d)), 2);
                assert_eq!(fake.consumer.load(Ordering::Relaxed), start.wrapping_add(2));
                fake.kernel_produce(&descs[..2]);
                assert_eq!(ring.consume(8, |_, d| out.push(d)), 3);
                assert_eq!(out, [&descs[..], &descs[..2]].concat());
                assert_eq!(ring.ready_now(), 0);
                assert_eq!(fake.consumer.load(Ordering::Relaxed), start.wrapping_add(5));
            }
        }

        #[test]
        fn need_wakeup_flag_is_read_from_the_flags_word() {
            let fake = FakeRing::<u64>::new(4, 0);
            // SAFETY: the fake ring outlives `ring`.
            let ring = unsafe { ProducerRing::new(fake.layout()) };
            assert!(!ring.needs_wakeup());
            fake.flags.store(RING_NEED_WAKEUP, Ordering::Relaxed);
            assert!(ring.needs_wakeup());
        }
    }
}

mod sys {
    //! The syscalls AF_XDP needs, each wrapped once in a safe function that
    //! returns `io::Result`: socket, setsockopt/getsockopt at `SOL_XDP`, mmap of
    //! rings and of the UMEM, bind, the wakeup calls (sendto, recvfrom, poll),
    //! if_nametoindex and the memlock rlimit.
    //!
    //! Written against `libc` directly rather than `nix` because nix has no
    //! AF_XDP socket options or `sockaddr_xdp`, and a mix of both would put the
    //! same syscalls in two styles.

    use std::ffi::CString;
    use std::io;
    use std::mem::size_of;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::ptr::NonNull;
    use std::time::Duration;

    /// An anonymous or file-backed mapping, unmapped on drop.
    #[derive(Debug)]
    pub struct Mmap {
        ptr: NonNull<u8>,
        len: usize,
    }

    // SAFETY: the mapping is plain memory owned by this value; it is not tied
    // to the thread that created it.
    unsafe impl Send for Mmap {}

    impl Mmap {
        /// Private anonymous memory of `len` bytes (zeroed by the kernel), for
        /// the UMEM. Plain pages: hugepages are not configured on these nodes.
        pub fn anonymous(len: usize) -> io::Result<Mmap> {
            // SAFETY: a fresh private anonymous mapping aliases nothing; the
            // result is checked against MAP_FAILED.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                    -1,
                    0,
                )
            };
            Mmap::from_result(ptr, len)
        }

        /// A shared mapping of an XSK ring at page offset `offset` of `fd`.
        pub(crate) fn ring(fd: RawFd, len: usize, offset: u64) -> io::Result<Mmap> {
            let offset = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: maps kernel ring memory of a socket we own into a fresh
            // address range; the result is checked against MAP_FAILED.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    fd,
                    offset,
                )
            };
            Mmap::from_result(ptr, len)
        }

        fn from_result(ptr: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let ptr =
                NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap: null"))?;
            Ok(Mmap { ptr, len })
        }

        pub fn as_ptr(&self) -> *mut u8 {
            self.ptr.as_ptr()
        }

        pub fn len(&self) -> usize {
            self.len
        }

        /// Never true for a mapping that exists (mmap refuses length 0).
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        /// Pointer to `offset` bytes into the mapping, if `offset + size` fits.
        pub(crate) fn at<T>(&self, offset: u64, count: usize) -> Option<NonNull<T>> {
            let offset = usize::try_from(offset).ok()?;
            let end = offset.checked_add(size_of::<T>().checked_mul(count)?)?;
            if end > self.len || offset % std::mem::align_of::<T>() != 0 {
                return None;
            }
            // SAFETY: `offset` is within the mapping (checked above).
            NonNull::new(unsafe { self.ptr.as_ptr().add(offset) }.cast::<T>())
        }

        /// The whole mapping as bytes.
        ///
        /// The kernel writes into UMEM chunks that sit in a fill ring while this
        /// slice exists; callers only touch chunks they own (the frame
        /// ownership protocol of `PacketIo`), so the regions never overlap.
        pub fn as_mut_slice(&mut self) -> &mut [u8] {
            // SAFETY: the mapping is `len` readable and writable bytes that live
            // as long as `self`, and `&mut self` makes this the only slice.
            unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
        }
    }

    impl Drop for Mmap {
        fn drop(&mut self) {
            // SAFETY: `ptr`/`len` describe a mapping this value owns and nothing
            // uses it after drop. A failure cannot be handled here.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }

    fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// A new AF_XDP socket.
    pub fn xdp_socket() -> io::Result<OwnedFd> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd =
            cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `setsockopt(fd, SOL_XDP, name, value)`.
    pub fn set_xdp_option<T: Copy>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` points to `size_of::<T>()` readable bytes for the call.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// `getsockopt(fd, SOL_XDP, name)` into `value` (passed in zeroed); returns
    /// it and the length the kernel wrote (older kernels write shorter versions
    /// of some structs).
    pub fn get_xdp_option<T: Copy>(
        fd: RawFd,
        name: libc::c_int,
        mut value: T,
    ) -> io::Result<(T, usize)> {
        let mut len = size_of::<T>() as libc::socklen_t;
        // SAFETY: `value` is `len` writable bytes, `len` is a valid in/out
        // pointer; both live across the call.
        cvt(unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_XDP,
                name,
                (&mut value as *mut T).cast(),
                &mut len,
            )
        })?;
        Ok((value, len as usize))
    }

    /// `getsockopt(fd, SOL_SOCKET, SO_INCOMING_NAPI_ID)`: the NAPI id the
    /// kernel marked the socket with when a frame reached it (0: none, and
    /// then `SO_BUSY_POLL` and `SO_PREFER_BUSY_POLL` have nothing to poll).
    pub fn incoming_napi_id(fd: RawFd) -> io::Result<u32> {
        let mut value: libc::c_uint = 0;
        let mut len = size_of::<libc::c_uint>() as libc::socklen_t;
        // SAFETY: `value` is `len` writable bytes and `len` a valid in/out
        // pointer, both live across the call.
        cvt(unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_INCOMING_NAPI_ID,
                (&mut value as *mut libc::c_uint).cast(),
                &mut len,
            )
        })?;
        Ok(value)
    }

    /// Bind an AF_XDP socket.
    pub fn bind_xdp(fd: &OwnedFd, addr: &libc::sockaddr_xdp) -> io::Result<()> {
        // SAFETY: `addr` is a valid sockaddr_xdp for the duration of the call
        // and the length passed is its size.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (addr as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: the tx wakeup.
    pub fn wake_tx(fd: RawFd) -> io::Result<()> {
        // SAFETY: a zero-length send with null buffer and address is valid for
        // AF_XDP (the kernel reads nothing).
        let ret = unsafe {
            libc::sendto(
                fd,
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`: the rx (fill ring)
    /// wakeup of a zero-copy socket.
    pub fn wake_rx(fd: RawFd) -> io::Result<()> {
        // SAFETY: a zero-length receive with null buffer and address is valid
        // for AF_XDP (the kernel writes nothing).
        let ret = unsafe {
            libc::recvfrom(
                fd,
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// poll(2) on `fds` for at most `timeout` (rounded up to a millisecond);
    /// returns how many descriptors are ready. EINTR counts as "none ready".
    pub fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
        let ms = timeout.as_micros().div_ceil(1000);
        let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfds.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(ret as usize)
    }

    /// The index of the network interface `name` in the calling thread's
    /// network namespace.
    pub fn if_index(name: &str) -> io::Result<u32> {
        let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(index)
    }

    /// Try to lift RLIMIT_MEMLOCK to infinity (needed on kernels that charge
    /// UMEM pages to it without CAP_IPC_LOCK). Failure is reported, not fatal.
    pub fn raise_memlock_limit() -> io::Result<()> {
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: `unlimited` is a valid rlimit for the call.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) })?;
        Ok(())
    }
}
