//! The CPU's time-stamp counter, for cycles-per-packet accounting.
//!
//! A tiny module of its own because reading the TSC is an `unsafe`
//! intrinsic; elsewhere (non-x86_64) it falls back to nanoseconds.

/// Current TSC value (x86_64), or a monotonic nanosecond count elsewhere.
#[inline]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64 (every x86_64 CPU has
        // it; it reads a counter and touches no memory).
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}
