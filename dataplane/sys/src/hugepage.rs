//! Large per-worker tables backed by transparent huge pages.
//!
//! A worker's big tables (the chains' connection table: megabytes, read at
//! random, a few bytes per packet) cost a TLB miss per packet when they sit
//! on 4 KiB pages; on 2 MiB pages a few TLB entries cover them. Where the
//! kernel runs transparent huge pages in `madvise` mode (the usual
//! default) it only uses them for memory that asked, hence this module.
//! Nothing here is required for correctness: when the kernel says no, the
//! table is on ordinary pages and works the same.
//!
//! A tiny module of its own because madvise(2) is an `unsafe` call.

/// Size of a transparent huge page on x86_64 (and most other targets).
const HUGE_PAGE: usize = 2 << 20;

/// `len` copies of `value` in a boxed slice. When the slice spans at least
/// one whole huge page, the kernel is asked (before the memory is first
/// touched) to back the huge-page-aligned part of it with huge pages.
pub fn boxed_slice<T: Clone>(len: usize, value: T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    if bytes >= HUGE_PAGE {
        let start = v.as_mut_ptr() as usize;
        let first = start.next_multiple_of(HUGE_PAGE);
        let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
        if end > first {
            #[cfg(target_os = "linux")]
            // SAFETY: [first, end) lies inside the allocation `v` owns (its
            // capacity is at least `bytes`), is page aligned, and holds no
            // values yet; MADV_HUGEPAGE only changes how the kernel backs
            // those pages, never their contents or the mapping's validity.
            // Its result is ignored on purpose: a refusal leaves small pages.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    v.resize(len, value);
    v.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_slices_hold_their_values() {
        let small = boxed_slice(10, 7u32);
        assert_eq!((small.len(), small.iter().all(|&x| x == 7)), (10, true));
        let large = boxed_slice(3 << 20, 0xabu8);
        assert_eq!(large.len(), 3 << 20);
        assert!(large.iter().all(|&x| x == 0xab));
    }
}
