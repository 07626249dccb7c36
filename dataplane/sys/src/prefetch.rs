//! A software prefetch hint: start loading a cache line that a later step
//! of a batch will read, so that the misses of a batch's packets overlap
//! instead of stalling one after another.
//!
//! A tiny module of its own because the prefetch instruction is an `unsafe`
//! intrinsic; elsewhere (non-x86_64) it does nothing.

/// Hint the CPU to bring the cache line holding `value`'s first byte into
/// every cache level. Never faults, changes nothing, may be ignored.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = (value as *const T).cast::<i8>();
        // SAFETY: PREFETCHT0 is part of SSE, which every x86_64 CPU has; it
        // is a hint that reads nothing architecturally and cannot fault,
        // and `p` comes from a live reference anyway.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = value;
    }
}

/// [`prefetch`] the line `offset` bytes into `value` (clamped to `value`'s
/// own bytes), for objects that span several lines.
#[inline(always)]
pub fn prefetch_at<T>(value: &T, offset: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let offset = offset.min(std::mem::size_of::<T>().saturating_sub(1));
        let p = (value as *const T).cast::<i8>().wrapping_add(offset);
        // SAFETY: as in `prefetch`; `p` stays inside `value`'s bytes (the
        // offset is clamped), and a prefetch of any address is harmless.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (value, offset);
    }
}
