//! Interning of the few strings that most spans repeat: span names and route templates
//! (`GET /orders/{id}`, `helloworld.Greeter/SayHello`), server host names, user agents.
//!
//! A span attribute or name that is a `&'static str` costs no allocation, no copy and nothing
//! when the span is dropped (on the export thread). These strings take few values in a
//! service, so each distinct one is copied once into memory that lives as long as the process,
//! and later requests use that copy. A per-thread cache in front of the shared table makes a
//! repeated lookup a hash and a comparison, without a lock.
//!
//! The table is bounded, per kind of string: a service with more distinct values than that (or
//! a client sending made-up `Host` or `User-Agent` headers) only finds the later ones not
//! interned, and they are copied per span as they would be without this module. At most
//! [`MAX_BYTES`] are ever kept.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

/// What is interned, each with its own bound on the number of distinct values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Span names and route templates: low-cardinality by the conventions.
    Name,
    /// `server.address`: a service answers to a few host names.
    Host,
    /// `user_agent.original`: a few client kinds call a service.
    UserAgent,
}

impl Kind {
    fn max_values(self) -> usize {
        match self {
            Kind::Name => 4096,
            Kind::Host => 64,
            Kind::UserAgent => 256,
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Name => 0,
            Kind::Host => 1,
            Kind::UserAgent => 2,
        }
    }
}

/// The longest string interned.
const MAX_LEN: usize = 256;
/// The most bytes ever interned, all kinds together.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// Entries of the per-thread cache (direct-mapped by hash).
const SLOTS: usize = 64;

struct Table {
    strings: HashSet<&'static str>,
    counts: [usize; 3],
    bytes: usize,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

thread_local! {
    static CACHE: [Cell<Option<&'static str>>; SLOTS] = const { [const { Cell::new(None) }; SLOTS] };
}

/// A hash of `s` for the per-thread cache: its length and three 8-byte windows (start,
/// middle, end). The cache compares its entries in full, so a collision only costs a lookup
/// in the shared table, and this keeps a lookup to a few instructions.
fn hash(s: &[u8]) -> u64 {
    let window = |start: usize| {
        let mut w = [0u8; 8];
        let end = s.len().min(start + 8);
        if start < end {
            w[..end - start].copy_from_slice(&s[start..end]);
        }
        u64::from_le_bytes(w)
    };
    let h = (s.len() as u64)
        ^ window(0).rotate_left(7)
        ^ window(s.len() / 2).rotate_left(29)
        ^ window(s.len().saturating_sub(8)).rotate_left(47);
    // Fibonacci hashing: the top bits are well mixed.
    h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

fn table() -> MutexGuard<'static, Option<Table>> {
    // The table is always consistent between two statements: a panic elsewhere cannot
    // corrupt it.
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The interned copy of the concatenation of `parts`, if it is or can be interned.
pub(crate) fn intern_parts(kind: Kind, parts: &[&str]) -> Option<&'static str> {
    let mut buf = [0u8; MAX_LEN];
    let mut len = 0;
    for part in parts {
        let end = len + part.len();
        if end > MAX_LEN {
            return None;
        }
        buf[len..end].copy_from_slice(part.as_bytes());
        len = end;
    }
    // The concatenation of `str`s is a `str`.
    let joined = std::str::from_utf8(&buf[..len]).ok()?;
    intern(kind, joined)
}

/// The interned copy of `s`, if it is or can be interned.
pub(crate) fn intern(kind: Kind, s: &str) -> Option<&'static str> {
    if s.len() > MAX_LEN {
        return None;
    }
    let slot = hash(s.as_bytes()) as usize % SLOTS;
    if let Some(hit) = CACHE.with(|cache| cache[slot].get())
        && hit == s
    {
        return Some(hit);
    }
    let interned = {
        let mut guard = table();
        let table = guard.get_or_insert_with(|| Table {
            strings: HashSet::new(),
            counts: [0; 3],
            bytes: 0,
        });
        match table.strings.get(s) {
            Some(found) => *found,
            None => {
                let i = kind.index();
                if table.counts[i] >= kind.max_values() || table.bytes + s.len() > MAX_BYTES {
                    return None;
                }
                let leaked: &'static str = Box::leak(Box::from(s));
                table.strings.insert(leaked);
                table.counts[i] += 1;
                table.bytes += s.len();
                leaked
            }
        }
    };
    CACHE.with(|cache| cache[slot].set(Some(interned)));
    Some(interned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_string_is_the_same_copy() {
        let a = intern(Kind::Name, "GET /interned/{id}").unwrap();
        let b = intern_parts(Kind::Name, &["GET", " ", "/interned/{id}"]).unwrap();
        assert_eq!(a, "GET /interned/{id}");
        assert!(std::ptr::eq(a, b));
        // from another thread (another cache), the same copy
        let c = std::thread::spawn(|| intern(Kind::Name, "GET /interned/{id}").unwrap())
            .join()
            .unwrap();
        assert!(std::ptr::eq(a, c));
        assert_ne!(intern(Kind::Name, "GET /other").unwrap(), a);
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
