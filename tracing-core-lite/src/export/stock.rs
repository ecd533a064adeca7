//! Empty vectors that the export thread allocates for the request threads to fill: a span's
//! attributes, its events and their attributes.
//!
//! A sampled span's vectors are allocated where the span is recorded, on a request thread, and
//! freed where it is exported, on the export thread. glibc's allocator (the default on Linux)
//! returns a block to the arena of the thread that allocated it, under that arena's lock, and
//! the request thread takes the same lock for its next allocation of that size: at a few
//! hundred thousand spans a second the two threads contend for it, and the request thread pays
//! for waking the export thread that waits on it (`BENCHMARKS.md`, items 34 and 39). A vector
//! taken from this stock was allocated by the export thread, which also frees it once the span
//! is exported: both in the export thread's arena. (The strings in the attributes, and the
//! copy of a span that a second processor receives, still cross.)
//!
//! The request thread's side is a pop from a per-thread cache, refilled [`CHUNK`] vectors at a
//! time from a shared shelf under a lock; a span that is not recorded, or not exported (not
//! sampled, or dropped on a full queue), gives its vectors back to that cache ([`give_back`],
//! [`give_back_span`]). The export threads (each [`BatchProcessor`]'s worker) top the shelves
//! up after each export to what was asked of them since their last restock, at most
//! [`MAX_STOCK`] vectors of each kind, and free them when two restocks in a row find that
//! nothing was asked (10 to 15 s after a thread last refilled its cache, with the default
//! `scheduled_delay` of 5 s). So the shelves hold at most about 1.6 MiB, and none once the
//! process is idle; besides, each thread that records spans keeps a cache of at most [`CHUNK`]
//! vectors of each kind (26 KiB), for as long as it lives. When no export thread runs (the
//! SDK's processors, tests), every take allocates, as `Vec::with_capacity` would.
//!
//! [`BatchProcessor`]: super::BatchProcessor

use std::cell::RefCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::LocalKey;

use opentelemetry::KeyValue;
use opentelemetry::trace::Event;
use opentelemetry_sdk::trace::SpanData;

use crate::lock_unpoisoned;

/// Vectors a thread takes from the shelf at once, and keeps at most.
const CHUNK: usize = 16;

/// Vectors of each kind the shelf holds at most: a span's worth of each for a burst of twice
/// the default batch.
const MAX_STOCK: usize = 1024;

/// Export threads running; while there are none, a take that finds the shelf empty does not
/// count as asked.
static RESTOCKERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SMALL_ATTRIBUTES: RefCell<Vec<Vec<KeyValue>>> = const { RefCell::new(Vec::new()) };
    static LARGE_ATTRIBUTES: RefCell<Vec<Vec<KeyValue>>> = const { RefCell::new(Vec::new()) };
    static EVENTS: RefCell<Vec<Vec<Event>>> = const { RefCell::new(Vec::new()) };
}

/// Attribute vectors of up to 8 (HTTP client spans, message events).
static SMALL: Stock<KeyValue> = Stock::new(8, &SMALL_ATTRIBUTES);
/// Attribute vectors of up to 16 (HTTP server spans, gRPC spans).
static LARGE: Stock<KeyValue> = Stock::new(16, &LARGE_ATTRIBUTES);
/// A span's events (a unary gRPC call has two).
static SPAN_EVENTS: Stock<Event> = Stock::new(4, &EVENTS);

/// An empty vector for at least `capacity` attributes.
pub(crate) fn attributes(capacity: usize) -> Vec<KeyValue> {
    if capacity <= SMALL.capacity {
        SMALL.take()
    } else if capacity <= LARGE.capacity {
        LARGE.take()
    } else {
        Vec::with_capacity(capacity)
    }
}

/// An empty vector for a span's events.
pub(crate) fn events() -> Vec<Event> {
    SPAN_EVENTS.take()
}

/// Keeps the attributes' vector of a span that will not be exported (not recorded, or see
/// [`give_back_span`]) for the calling thread's next span, if it has the capacity of one of
/// the shelves' and the thread's cache has room; frees it otherwise.
pub(crate) fn give_back(mut attributes: Vec<KeyValue>) {
    attributes.clear();
    if attributes.capacity() == SMALL.capacity {
        SMALL.keep(attributes);
    } else if attributes.capacity() == LARGE.capacity {
        LARGE.keep(attributes);
    }
}

/// Keeps the vectors of a span that will not be exported (not sampled, or dropped on a full
/// queue) for the calling thread's next spans, as [`give_back`] does.
pub(crate) fn give_back_span(span: SpanData) {
    let SpanData {
        attributes, events, ..
    } = span;
    give_back(attributes);
    give_back_events(events.events);
}

/// Keeps a span's events' vector and their attributes' vectors, as [`give_back`] does.
fn give_back_events(mut events: Vec<Event>) {
    for event in events.drain(..) {
        give_back(event.attributes);
    }
    if events.capacity() == SPAN_EVENTS.capacity {
        SPAN_EVENTS.keep(events);
    }
}

/// An export thread's part in keeping the stock: registered while it lives, it restocks the
/// shelves after each export.
pub(crate) struct Restocker {
    seen: [Seen; 3],
}

impl Restocker {
    /// Registers the calling thread as an export thread, until the returned value is dropped.
    pub(crate) fn register() -> Self {
        RESTOCKERS.fetch_add(1, Ordering::Relaxed);
        Restocker {
            seen: [SMALL.seen(), LARGE.seen(), SPAN_EVENTS.seen()],
        }
    }

    /// Tops every shelf up to what was asked of it since this thread's last restock.
    pub(crate) fn restock(&mut self) {
        let [small, large, events] = &mut self.seen;
        SMALL.restock(small);
        LARGE.restock(large);
        SPAN_EVENTS.restock(events);
    }
}

impl Drop for Restocker {
    fn drop(&mut self) {
        if RESTOCKERS.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The last export thread: nothing will restock the shelves any more.
            SMALL.clear();
            LARGE.clear();
            SPAN_EVENTS.clear();
        }
    }
}

/// What one export thread saw of one shelf at its last restock.
struct Seen {
    /// [`Stock::asked`] then.
    asked: usize,
    /// Whether nothing had been asked since the restock before.
    quiet: bool,
}

/// One kind of vector: its capacity, the shared shelf, and each thread's cache.
struct Stock<T: 'static> {
    capacity: usize,
    shelf: Mutex<Vec<Vec<T>>>,
    /// The shelf's length, read without its lock (written under it).
    stocked: AtomicUsize,
    /// Vectors asked of the shelf so far, found there or not (wrapping): each export thread
    /// restocks what was asked since its own last restock.
    asked: AtomicUsize,
    local: &'static LocalKey<RefCell<Vec<Vec<T>>>>,
}

impl<T> Stock<T> {
    const fn new(capacity: usize, local: &'static LocalKey<RefCell<Vec<Vec<T>>>>) -> Self {
        Stock {
            capacity,
            shelf: Mutex::new(Vec::new()),
            stocked: AtomicUsize::new(0),
            asked: AtomicUsize::new(0),
            local,
        }
    }

    /// An empty vector of `self.capacity`: the calling thread's, else a new one.
    fn take(&self) -> Vec<T> {
        self.local
            .try_with(|local| {
                let mut local = local.try_borrow_mut().ok()?;
                local.pop().or_else(|| self.refill(&mut local))
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Moves up to [`CHUNK`] vectors from the shelf to `local` (empty) and returns one of
    /// them; counts what it asked for either way.
    #[cold]
    #[inline(never)]
    fn refill(&self, local: &mut Vec<Vec<T>>) -> Option<Vec<T>> {
        if self.stocked.load(Ordering::Relaxed) > 0 {
            let mut shelf = lock_unpoisoned(&self.shelf);
            let from = shelf.len().saturating_sub(CHUNK);
            local.extend(shelf.drain(from..));
            self.stocked.store(from, Ordering::Relaxed);
        }
        if RESTOCKERS.load(Ordering::Relaxed) > 0 {
            // A miss asks for one.
            self.asked.fetch_add(local.len().max(1), Ordering::Relaxed);
        }
        local.pop()
    }

    /// Puts `v` (empty) in the calling thread's cache if it has room.
    fn keep(&self, v: Vec<T>) {
        let _ = self.local.try_with(|local| {
            if let Ok(mut local) = local.try_borrow_mut()
                && local.len() < CHUNK
            {
                local.push(v);
            }
        });
    }

    /// A restocker's view of the shelf now.
    fn seen(&self) -> Seen {
        Seen {
            asked: self.asked.load(Ordering::Relaxed),
            quiet: false,
        }
    }

    /// Tops the shelf up to what was asked of it since `seen` (at most [`MAX_STOCK`]), or
    /// frees it when nothing was asked since the restock before either. It never frees part
    /// of it: with several export threads, one may restock right after another.
    fn restock(&self, seen: &mut Seen) {
        let asked = self.asked.load(Ordering::Relaxed);
        let demand = asked.wrapping_sub(seen.asked);
        seen.asked = asked;
        if demand == 0 {
            if std::mem::replace(&mut seen.quiet, true) {
                self.clear();
            }
            return;
        }
        seen.quiet = false;
        let want = demand.min(MAX_STOCK);
        let have = self.stocked.load(Ordering::Relaxed);
        if have >= want {
            return;
        }
        // Allocated before taking the lock, which the request threads take; what another
        // export thread stocked meanwhile is freed after it.
        let mut fresh: Vec<Vec<T>> = (have..want)
            .map(|_| Vec::with_capacity(self.capacity))
            .collect();
        let surplus = {
            let mut shelf = lock_unpoisoned(&self.shelf);
            let room = want.saturating_sub(shelf.len()).min(fresh.len());
            let surplus = fresh.split_off(room);
            shelf.append(&mut fresh);
            self.stocked.store(shelf.len(), Ordering::Relaxed);
            surplus
        };
        drop(surplus);
    }

    /// Frees every vector on the shelf.
    fn clear(&self) {
        let all = {
            let mut shelf = lock_unpoisoned(&self.shelf);
            self.stocked.store(0, Ordering::Relaxed);
            std::mem::take(&mut *shelf)
        };
        drop(all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own (an empty cache), as a request thread would.
    fn on_a_request_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|s| s.spawn(f).join().expect("request thread"))
    }

    /// A stock of its own for a test, with its own per-thread caches.
    macro_rules! test_stock {
        ($capacity:expr) => {{
            thread_local! {
                static LOCAL: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
            }
            static STOCK: Stock<u64> = Stock::new($capacity, &LOCAL);
            &STOCK
        }};
    }

    /// The address of each vector on the shelf.
    fn shelved<T>(stock: &Stock<T>) -> Vec<usize> {
        lock_unpoisoned(&stock.shelf)
            .iter()
            .map(|v| v.as_ptr() as usize)
            .collect()
    }

    #[test]
    fn with_nothing_on_the_shelf_a_take_allocates() {
        let stock = test_stock!(8);
        let v = on_a_request_thread(|| stock.take());
        assert!(v.is_empty());
        assert_eq!(v.capacity(), 8);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_shelf_is_topped_up_to_what_was_asked_and_its_vectors_reach_the_request_threads() {
        let stock = test_stock!(4);
        let _registered = Restocker::register();
        let mut seen = stock.seen();
        // Nothing stocked yet: three takes, three misses, all new vectors.
        on_a_request_thread(|| {
            for _ in 0..3 {
                assert!(stock.take().capacity() >= 4);
            }
        });
        stock.restock(&mut seen);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 3);
        let stocked = shelved(stock);

        // A request thread takes the whole shelf (less than a chunk) into its cache, and each
        // take hands out one of the restocked vectors.
        let handed: Vec<Vec<u64>> = on_a_request_thread(|| (0..3).map(|_| stock.take()).collect());
        for v in &handed {
            assert!(v.is_empty());
            assert!(v.capacity() >= 4);
            let at = v.as_ptr() as usize;
            assert!(stocked.contains(&at), "{at:#x} is not from the shelf");
        }
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 0);

        // Three were asked again: the shelf goes back to 3. It stays there after one restock
        // with nothing asked (another export thread's, right after), and is freed after two.
        stock.restock(&mut seen);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 3);
        stock.restock(&mut seen);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 3);
        stock.restock(&mut seen);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 0);
        assert!(lock_unpoisoned(&stock.shelf).is_empty());
    }

    #[test]
    fn a_thread_takes_a_chunk_from_the_top_and_a_restock_never_trims() {
        let stock = test_stock!(2);
        let _registered = Restocker::register();
        let mut seen = stock.seen();
        stock.asked.fetch_add(40, Ordering::Relaxed);
        stock.restock(&mut seen);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 40);
        let stocked = shelved(stock);
        on_a_request_thread(|| {
            let first = stock.take();
            // The last vector of the shelf; the rest of its chunk stays in the thread's cache.
            assert_eq!(first.as_ptr() as usize, stocked[39]);
            assert_eq!(stock.stocked.load(Ordering::Relaxed), 40 - CHUNK);
            for _ in 1..CHUNK {
                let _ = stock.take();
            }
            assert_eq!(stock.stocked.load(Ordering::Relaxed), 40 - CHUNK);
        });
        // 16 asked since, 24 on the shelf: a restock leaves them.
        stock.restock(&mut seen);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), 40 - CHUNK);
        assert_eq!(shelved(stock), stocked[..40 - CHUNK]);
    }

    #[test]
    fn the_shelf_is_bounded_though_two_export_threads_restock() {
        let stock = test_stock!(2);
        let _registered = Restocker::register();
        let (mut one, mut other) = (stock.seen(), stock.seen());
        stock.asked.fetch_add(MAX_STOCK + 5, Ordering::Relaxed);
        stock.restock(&mut one);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), MAX_STOCK);
        // The other saw the same demand: nothing to add.
        stock.restock(&mut other);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), MAX_STOCK);
        // A restock that read the shelf's length before another filled it frees its surplus.
        stock.asked.fetch_add(MAX_STOCK, Ordering::Relaxed);
        stock.clear();
        stock.restock(&mut one);
        stock.stocked.store(0, Ordering::Relaxed);
        stock.restock(&mut other);
        assert_eq!(lock_unpoisoned(&stock.shelf).len(), MAX_STOCK);
        assert_eq!(stock.stocked.load(Ordering::Relaxed), MAX_STOCK);
    }

    #[test]
    fn an_unrecorded_span_gives_its_vector_back_to_the_thread() {
        on_a_request_thread(|| {
            let mut v = Vec::with_capacity(LARGE.capacity);
            v.push(KeyValue::new("k", "v"));
            let at = v.as_ptr() as usize;
            give_back(v);
            // Would take the block had the vector been freed (the allocator hands the last
            // block freed out first).
            let decoy: Vec<KeyValue> = Vec::with_capacity(LARGE.capacity);
            let again = attributes(14);
            assert_ne!(decoy.as_ptr() as usize, at);
            assert_eq!(again.as_ptr() as usize, at);
            assert!(again.is_empty());
            // Another capacity is freed, not kept.
            give_back(Vec::with_capacity(3));
            assert!(attributes(5).capacity() >= 8);
        });
    }

    #[test]
    fn attributes_come_in_two_sizes_and_larger_ones_are_allocated() {
        on_a_request_thread(|| {
            assert_eq!(attributes(0).capacity(), 8);
            assert_eq!(attributes(5).capacity(), 8);
            assert_eq!(attributes(9).capacity(), 16);
            assert_eq!(attributes(14).capacity(), 16);
            assert_eq!(attributes(40).capacity(), 40);
            assert_eq!(events().capacity(), 4);
        });
    }

    #[test]
    fn a_span_that_is_not_exported_gives_its_events_back_to_the_thread() {
        on_a_request_thread(|| {
            let mut event_attributes = attributes(5);
            event_attributes.push(KeyValue::new("k", "v"));
            let attributes_at = event_attributes.as_ptr() as usize;
            let mut span_events = events();
            span_events.push(Event::new(
                "message",
                std::time::SystemTime::UNIX_EPOCH,
                event_attributes,
                0,
            ));
            let events_at = span_events.as_ptr() as usize;
            give_back_events(span_events);
            // Would take the blocks had the vectors been freed.
            let decoys: (Vec<KeyValue>, Vec<Event>) =
                (Vec::with_capacity(SMALL.capacity), Vec::with_capacity(4));
            assert_ne!(decoys.0.as_ptr() as usize, attributes_at);
            assert_ne!(decoys.1.as_ptr() as usize, events_at);
            let events_again = events();
            assert_eq!(events_again.as_ptr() as usize, events_at);
            let again = attributes(5);
            assert_eq!(again.as_ptr() as usize, attributes_at);
            assert!(again.is_empty());
        });
    }
}
