//! A forward's recent exchanges, bounded by count and by memory.
//!
//! The ring is a plain struct: whoever owns it decides how it is shared (typically a short
//! `parking_lot::Mutex` per forward). Exchanges are stored behind `Arc`, so a snapshot for a
//! reader is a list of pointer copies taken inside the lock, never a copy of the bodies.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::exchange::Exchange;

/// The default count bound: enough scroll-back for a busy service's last minutes.
pub const DEFAULT_MAX_COUNT: usize = 1000;

/// The default memory bound: 16 MiB per forward.
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;

/// Recent exchanges, oldest first, with increasing ids.
///
/// ```
/// use ferry_http::{Exchange, Ring};
/// # fn exchange() -> Exchange { serde_json::from_str(r#"{"id":0,"startedMs":0,"method":"GET","target":"/","status":200,"reason":"OK","durationMs":1.0,"timings":null,"request":{"version":"HTTP/1.1","headers":[],"trailers":[],"headSize":18,"bodySize":0,"contentSize":0,"bodyBase64":"","truncated":false,"complete":true},"response":null,"interim":[],"upgrade":null,"incomplete":false}"#).unwrap() }
/// let mut ring = Ring::new(2, 1 << 20);
/// let first = ring.push(exchange());
/// let second = ring.push(exchange());
/// let third = ring.push(exchange());
/// assert!(ring.get(first).is_none(), "evicted by count");
/// assert_eq!(ring.since(second).iter().map(|e| e.id).collect::<Vec<_>>(), [third]);
/// ```
#[derive(Debug)]
pub struct Ring {
    /// Stored exchanges and their approximate sizes, ids increasing from front to back.
    entries: VecDeque<(Arc<Exchange>, usize)>,
    max_count: usize,
    max_bytes: usize,
    /// The sum of the stored sizes.
    bytes: usize,
    /// The id the next push assigns. Never reused, not even after [`Ring::clear`], so a
    /// reader's `since` cursor stays valid.
    next_id: u64,
}

impl Default for Ring {
    /// [`DEFAULT_MAX_COUNT`] exchanges, [`DEFAULT_MAX_BYTES`] bytes.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_COUNT, DEFAULT_MAX_BYTES)
    }
}

impl Ring {
    /// A ring keeping at most `max_count` exchanges (at least one) of about `max_bytes` in all
    /// (see [`Exchange::approx_bytes`]).
    pub fn new(max_count: usize, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            max_count: max_count.max(1),
            max_bytes,
            bytes: 0,
            next_id: 1,
        }
    }

    /// Stores an exchange under a new id, evicting the oldest until both bounds hold. The
    /// newest exchange is always kept, even one larger than `max_bytes` on its own.
    pub fn push(&mut self, mut exchange: Exchange) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        exchange.id = id;
        let size = exchange.approx_bytes();
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_count || self.bytes + size > self.max_bytes)
        {
            if let Some((_, evicted)) = self.entries.pop_front() {
                self.bytes -= evicted;
            }
        }
        self.entries.push_back((Arc::new(exchange), size));
        self.bytes += size;
        id
    }

    /// The exchange with this id, if it is still stored.
    pub fn get(&self, id: u64) -> Option<Arc<Exchange>> {
        let index = self
            .entries
            .binary_search_by_key(&id, |(exchange, _)| exchange.id)
            .ok()?;
        self.entries
            .get(index)
            .map(|(exchange, _)| Arc::clone(exchange))
    }

    /// The stored exchanges with ids above `id`, oldest first: `since(0)` is everything.
    pub fn since(&self, id: u64) -> Vec<Arc<Exchange>> {
        let first = self
            .entries
            .partition_point(|(exchange, _)| exchange.id <= id);
        self.entries
            .range(first..)
            .map(|(exchange, _)| Arc::clone(exchange))
            .collect()
    }

    /// Every stored exchange, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Exchange>> {
        self.since(0)
    }

    /// Forgets every exchange; ids keep increasing.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// How many exchanges are stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The approximate memory the stored exchanges hold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The id of the newest exchange ever pushed (0 before the first push), for a reader's
    /// `since` cursor.
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::testing::one;

    fn exchange(path: &str, body: usize) -> Exchange {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {body}\r\n\r\n{}",
            "r".repeat(body)
        );
        one(
            Config::default().with_body_capture(body),
            request.as_bytes(),
            response.as_bytes(),
        )
    }

    fn ids(list: &[Arc<Exchange>]) -> Vec<u64> {
        list.iter().map(|e| e.id).collect()
    }

    #[test]
    fn the_count_bound_evicts_the_oldest() {
        let mut ring = Ring::new(3, usize::MAX);
        assert_eq!(ring.last_id(), 0);
        let pushed: Vec<u64> = (0..5)
            .map(|i| ring.push(exchange(&format!("/{i}"), 0)))
            .collect();
        assert_eq!(pushed, [1, 2, 3, 4, 5]);
        assert_eq!(ids(&ring.snapshot()), [3, 4, 5]);
        assert_eq!(ring.get(4).map(|e| e.target.clone()), Some("/3".to_owned()));
        assert!(ring.get(2).is_none() && ring.get(6).is_none());
        assert_eq!(ids(&ring.since(0)), [3, 4, 5]);
        assert_eq!(ids(&ring.since(4)), [5]);
        assert!(ring.since(5).is_empty());
        assert_eq!(ring.len(), 3);
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest() {
        let size = exchange("/a", 1000).approx_bytes();
        assert!(size > 1000, "the captured body counts: {size}");
        let mut ring = Ring::new(100, size * 3);
        for i in 0..10 {
            ring.push(exchange(&format!("/{i}"), 1000));
            assert!(ring.bytes() <= size * 3);
        }
        assert_eq!(ids(&ring.snapshot()), [8, 9, 10]);
        assert_eq!(ring.bytes(), size * 3);

        // One exchange larger than the whole bound is still kept, alone.
        let id = ring.push(exchange("/huge", 20_000));
        assert_eq!(ids(&ring.snapshot()), [id]);
        ring.push(exchange("/small", 0));
        assert_eq!(ring.len(), 1, "the huge one made room");
    }

    #[test]
    fn clear_keeps_ids_increasing() {
        let mut ring = Ring::default();
        ring.push(exchange("/a", 0));
        ring.push(exchange("/b", 0));
        ring.clear();
        assert!(ring.is_empty() && ring.bytes() == 0);
        assert_eq!(ring.push(exchange("/c", 0)), 3);
        assert_eq!(ids(&ring.since(2)), [3]);
    }
}
