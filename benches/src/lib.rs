//! Support for the benchmarks of this workspace (see `BENCHMARKS.md` at the root).
//!
//! [`CountingAllocator`] wraps the system allocator and, while [`set_counting`] is on, counts
//! allocations: all of them, and those made on threads that asked to be counted (the thread
//! that runs the requests), so that a benchmark can report allocations per request. It also
//! follows the bytes live on the heap and their peak, for the exporter-under-load check. Off,
//! it costs one relaxed load per call, so that timing runs are not skewed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};

/// A `#[global_allocator]` that counts (see the crate docs).
pub struct CountingAllocator;

/// Off, the allocator only forwards (timing runs); on, it counts.
static ENABLED: AtomicBool = AtomicBool::new(false);
static ALL: AtomicU64 = AtomicU64::new(0);
static COUNTED_THREADS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated minus bytes freed while counting (blocks may cross the switch: relative).
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Turns counting on or off (off at start, so that timing runs pay one load per call).
pub fn set_counting(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

#[inline]
fn on_alloc(size: usize) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let size = size as isize;
    ALL.fetch_add(1, Ordering::Relaxed);
    if COUNT_HERE.try_with(Cell::get).unwrap_or(false) {
        COUNTED_THREADS.fetch_add(1, Ordering::Relaxed);
    }
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[inline]
fn on_free(size: usize) {
    if ENABLED.load(Ordering::Relaxed) {
        LIVE.fetch_sub(size as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_alloc(new_size);
        on_free(layout.size());
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocation counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocs {
    /// Allocations (and reallocations) on any thread.
    pub all: u64,
    /// Allocations on the threads that called [`count_this_thread`].
    pub counted: u64,
}

impl Allocs {
    /// The counters now.
    pub fn now() -> Self {
        Allocs {
            all: ALL.load(Ordering::Relaxed),
            counted: COUNTED_THREADS.load(Ordering::Relaxed),
        }
    }

    /// What was counted since `earlier`.
    pub fn since(earlier: Allocs) -> Self {
        let now = Allocs::now();
        Allocs {
            all: now.all - earlier.all,
            counted: now.counted - earlier.counted,
        }
    }
}

/// Counts (or stops counting) the allocations made on the calling thread.
pub fn count_this_thread(on: bool) {
    COUNT_HERE.with(|c| c.set(on));
}

/// Bytes allocated minus bytes freed while counting was on.
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Resets the peak of live bytes to the current value and returns it.
pub fn reset_peak() -> isize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// The most bytes live since the last [`reset_peak`].
pub fn peak_bytes() -> isize {
    PEAK.load(Ordering::Relaxed)
}
