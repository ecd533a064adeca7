//! Interning of the few strings that most spans repeat: span names and route templates
//! (`GET /orders/{id}`, `helloworld.Greeter/SayHello`), server host names and authorities,
//! user agents.
//!
//! A span attribute or name that is a `&'static str` costs no allocation, no copy and nothing
//! when the span is dropped (on the export thread). These strings take few values in a
//! service, so each distinct one is copied once into memory that lives as long as the process,
//! and later requests use that copy. A per-thread cache in front of the shared table makes a
//! repeated lookup a hash and a comparison, without a lock.
//!
//! [`Recent`] is the other per-thread memo: the two most recently used interned strings that
//! something was derived from (an authority's host and port, a gRPC method's service part).
//!
//! The table is bounded, per kind of string: a service with more distinct values than that (or
//! a client sending made-up `Host` or `User-Agent` headers) only finds the later ones not
//! interned, and they are copied per span as they would be without this module. At most
//! [`MAX_BYTES`] are ever kept.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use crate::le_word;

/// What is interned, each with its own bound on the number of distinct values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Kind {
    /// Span names and route templates: low-cardinality by the conventions.
    Name,
    /// `server.address`: a service answers to a few host names.
    Host,
    /// The authority (`host[:port]`) that `server.address` and `server.port` are read from.
    Authority,
    /// `user_agent.original`: a few client kinds call a service.
    UserAgent,
}

impl Kind {
    fn max_values(self) -> usize {
        match self {
            Kind::Name => 4096,
            Kind::Host => 64,
            Kind::Authority => 64,
            Kind::UserAgent => 256,
        }
    }
}

/// The number of [`Kind`]s (`UserAgent` is the last: the match stops compiling when a kind is
/// added, so that this is looked at again).
const KINDS: usize = match Kind::UserAgent {
    last @ (Kind::Name | Kind::Host | Kind::Authority | Kind::UserAgent) => last as usize + 1,
};

/// The longest string interned.
pub(super) const MAX_LEN: usize = 256;
/// The most bytes ever interned, all kinds together.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// Entries of the per-thread cache: two-way set-associative by hash, so that two strings
/// that hash to the same place do not evict each other on every request.
const SLOTS: usize = 64;

struct Table {
    strings: HashSet<&'static str>,
    counts: [usize; KINDS],
    bytes: usize,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

thread_local! {
    static CACHE: [Cell<Option<&'static str>>; SLOTS] = const { [const { Cell::new(None) }; SLOTS] };
}

/// A hash of `s` for the per-thread cache: its length and three 8-byte windows (start,
/// middle, end), read as whole words (no copy). The cache compares its entries in full, so a
/// collision only costs a lookup in the shared table, and this keeps a lookup to a few
/// instructions.
fn hash(s: &[u8]) -> u64 {
    let n = s.len();
    let word = |at: usize| le_word(s, at);
    let (a, b, c) = if n >= 8 {
        (word(0), word((n - 8) / 2), word(n - 8))
    } else {
        let short = s.iter().fold(0u64, |w, &byte| (w << 8) | u64::from(byte));
        (short, 0, 0)
    };
    let h = (n as u64) ^ a.rotate_left(7) ^ b.rotate_left(29) ^ c.rotate_left(47);
    // Fibonacci hashing: the top bits are well mixed.
    h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

/// The cached string of the set of `hash` that `matches`, if any.
fn cached(hash: u64, matches: impl Fn(&str) -> bool) -> Option<&'static str> {
    let set = (hash as usize % (SLOTS / 2)) * 2;
    CACHE.with(|cache| {
        (set..set + 2)
            .filter_map(|i| cache[i].get())
            .find(|hit| matches(hit))
    })
}

/// Caches `interned` in the set of `hash`, as its most recent entry.
fn remember(hash: u64, interned: &'static str) {
    let set = (hash as usize % (SLOTS / 2)) * 2;
    CACHE.with(|cache| {
        cache[set + 1].set(cache[set].get());
        cache[set].set(Some(interned));
    });
}

fn table() -> MutexGuard<'static, Option<Table>> {
    // The table is always consistent between two statements: a panic elsewhere cannot
    // corrupt it.
    crate::lock_unpoisoned(&TABLE)
}

/// A per-thread memo of the two most recently used strings something was derived from, each
/// with what was derived (the host and port of an authority, the service part of a gRPC
/// method name), in front of a split and an interning lookup that a service repeats on every
/// request.
///
/// Two entries, least recently used out first: a worker thread that serves requests and calls
/// out alternates between the name it serves under and the one it calls (`Host` and the
/// client's target, the method served and the method called), and a single entry would miss
/// on every request (as both entries do when three names are used in turn). Keys are interned
/// strings: they live as long as the process.
pub(crate) struct Recent<T> {
    /// The keys, the most recent first; apart from their values, so that a lookup reads only
    /// the keys it compares.
    keys: [Cell<Option<&'static str>>; 2],
    /// The value of each key (`None` with it).
    values: [Cell<Option<T>>; 2],
}

impl<T: Copy + 'static> Recent<T> {
    /// Two empty entries (usable as a `const` thread-local initializer).
    pub(crate) const fn new() -> Self {
        Recent {
            keys: [Cell::new(None), Cell::new(None)],
            values: [Cell::new(None), Cell::new(None)],
        }
    }

    /// The entry whose key equals `key`, which becomes the most recent; `None` when neither
    /// is.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<(&'static str, T)> {
        if let Some(hit) = self.keys[0].get()
            && hit == key
        {
            return Some((hit, self.values[0].get()?));
        }
        self.get_older(key)
    }

    /// [`get`](Self::get) of the older entry: kept out of line, so that the usual case (the
    /// same key as the last time) inlines into its caller with the thread-local's access.
    #[inline(never)]
    fn get_older(&self, key: &str) -> Option<(&'static str, T)> {
        let hit = self.keys[1].get().filter(|hit| *hit == key)?;
        let value = self.values[1].get()?;
        self.put(hit, value);
        Some((hit, value))
    }

    /// Remembers `key` and `value` as the most recent entry; the least recent is forgotten.
    pub(crate) fn put(&self, key: &'static str, value: T) {
        let ([first, second], [first_value, second_value]) = (&self.keys, &self.values);
        second.set(first.get());
        second_value.set(first_value.get());
        first.set(Some(key));
        first_value.set(Some(value));
    }

    /// The entry of `key` without making it the most recent (what `get` would return).
    #[cfg(test)]
    pub(crate) fn peek(&self, key: &str) -> Option<(&'static str, T)> {
        let i = (0..2).find(|&i| self.keys[i].get() == Some(key))?;
        Some((self.keys[i].get()?, self.values[i].get()?))
    }

    /// Forgets both entries.
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        self.keys.iter().for_each(|key| key.set(None));
        self.values.iter().for_each(|value| value.set(None));
    }
}

/// A `(method, route)` pair by its strings' addresses and lengths.
type NameKey = (usize, usize, usize, usize);

thread_local! {
    /// Span names by the pair they are made of (see [`intern_name`]).
    static NAMES: [Cell<Option<(NameKey, &'static str)>>; 16] =
        const { [const { Cell::new(None) }; 16] };
}

/// The interned `"{method} {route}"` span name of a static method name and an interned route:
/// found per thread by the two strings' addresses, without reading them (a string that is
/// interned or static has one address for its whole life).
pub(crate) fn intern_name(method: &'static str, route: &'static str) -> Option<&'static str> {
    let key: NameKey = (
        method.as_ptr() as usize,
        method.len(),
        route.as_ptr() as usize,
        route.len(),
    );
    let h = (key.0 ^ key.2.rotate_left(17) ^ key.3) as u64;
    let slot = (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize;
    if let Some((seen, name)) = NAMES.with(|names| names[slot].get())
        && seen == key
    {
        return Some(name);
    }
    // A miss (a new route, or a pair evicted from this small cache): one join and a lookup.
    let name = intern(Kind::Name, &format!("{method} {route}"))?;
    NAMES.with(|names| names[slot].set(Some((key, name))));
    Some(name)
}

/// The interned copy of `s` if it is or can be interned, else a copy of it.
pub(crate) fn intern_or_copy(kind: Kind, s: &str) -> Cow<'static, str> {
    match intern(kind, s) {
        Some(interned) => Cow::Borrowed(interned),
        None => Cow::Owned(s.to_owned()),
    }
}

/// The interned copy of `s`, if it is or can be interned.
pub(crate) fn intern(kind: Kind, s: &str) -> Option<&'static str> {
    if s.len() > MAX_LEN {
        return None;
    }
    let h = hash(s.as_bytes());
    if let Some(hit) = cached(h, |hit| hit == s) {
        return Some(hit);
    }
    let interned = intern_uncached(kind, s)?;
    remember(h, interned);
    Some(interned)
}

/// Whether `s` is in the shared table.
#[cfg(test)]
pub(crate) fn is_interned(s: &str) -> bool {
    table()
        .as_ref()
        .is_some_and(|table| table.strings.contains(s))
}

/// The shared table's copy of `s`, added if its kind and the byte budget allow.
fn intern_uncached(kind: Kind, s: &str) -> Option<&'static str> {
    let mut guard = table();
    let table = guard.get_or_insert_with(|| Table {
        strings: HashSet::new(),
        counts: [0; KINDS],
        bytes: 0,
    });
    if let Some(found) = table.strings.get(s) {
        return Some(*found);
    }
    let i = kind as usize;
    if table.counts[i] >= kind.max_values() || table.bytes + s.len() > MAX_BYTES {
        return None;
    }
    let leaked: &'static str = Box::leak(Box::from(s));
    table.strings.insert(leaked);
    table.counts[i] += 1;
    table.bytes += s.len();
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_string_is_the_same_copy() {
        let a = intern(Kind::Name, "GET /interned/{id}").unwrap();
        let b = intern(Kind::Name, &String::from("GET /interned/{id}")).unwrap();
        assert_eq!(a, "GET /interned/{id}");
        assert!(std::ptr::eq(a, b));
        // from another thread (another cache), the same copy
        let c = std::thread::spawn(|| intern(Kind::Name, "GET /interned/{id}").unwrap())
            .join()
            .unwrap();
        assert!(std::ptr::eq(a, c));
        assert_ne!(intern(Kind::Name, "GET /other").unwrap(), a);
        // by the parts' addresses: the same copy again, and another for another route
        let route = intern(Kind::Name, "/interned/{id}").unwrap();
        let other = intern(Kind::Name, "/other/{id}").unwrap();
        for _ in 0..2 {
            assert!(std::ptr::eq(intern_name("GET", route).unwrap(), a));
            assert_eq!(intern_name("GET", other), Some("GET /other/{id}"));
            assert_eq!(intern_name("POST", route), Some("POST /interned/{id}"));
        }
    }

    #[test]
    fn recent_keeps_the_two_most_recently_used() {
        let recent = Recent::<u8>::new();
        assert_eq!(recent.get("a"), None);
        recent.put("a", 1);
        recent.put("b", 2);
        // Alternating between two keys: both stay.
        for _ in 0..3 {
            assert_eq!(recent.get("a"), Some(("a", 1)));
            assert_eq!(recent.get("b"), Some(("b", 2)));
        }
        // `a` used last but one, then a third key: `a` goes, `b` stays.
        assert_eq!(recent.get(&String::from("b")), Some(("b", 2)));
        recent.put("c", 3);
        assert_eq!(recent.peek("a"), None);
        // A hit on the older entry makes it the newer: `b` then survives `d`, `c` does not.
        assert_eq!(recent.get("b"), Some(("b", 2)));
        recent.put("d", 4);
        assert_eq!(recent.peek("b"), Some(("b", 2)));
        assert_eq!(recent.peek("c"), None);
        assert_eq!(recent.get("d"), Some(("d", 4)));
        // The key handed out is the remembered one, not the one asked with.
        let kept: &'static str = Box::leak(Box::from("e"));
        recent.put(kept, 5);
        assert!(std::ptr::eq(
            recent.get(&String::from("e")).unwrap().0,
            kept
        ));
        recent.clear();
        assert_eq!((recent.peek("d"), recent.peek("e")), (None, None));
    }

    #[test]
    fn long_strings_and_full_kinds_are_not_interned() {
        assert!(intern(Kind::UserAgent, &"x".repeat(MAX_LEN + 1)).is_none());
        let mut refused = 0;
        for i in 0..Kind::Host.max_values() + 10 {
            if intern(Kind::Host, &format!("host-{i}.interning.test")).is_none() {
                refused += 1;
            }
        }
        assert!(refused >= 10, "{refused}");
        // a host interned before the bound is still found
        assert!(intern(Kind::Host, "host-0.interning.test").is_some());
    }
}
