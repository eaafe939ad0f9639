//! [`SegmentStore`]: where an origin keeps media segment bytes, and [`MemoryStore`],
//! the bounded in-memory window.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::error::{Error, Result};

/// Storage for the media segments of live streams, keyed by (stream name, media
/// sequence number).
///
/// A small trait the host may implement (a disk cache, a shared memory map, an
/// object store behind a write-through cache). Implementations decide what they
/// keep: [`get`](Self::get) may return `None` for a segment that was evicted, and
/// the origin then answers 404. Calls never perform blocking work the origin
/// waits on in a way visible to the API: every method is synchronous and is
/// expected to be fast (memory or local cache).
pub trait SegmentStore {
    /// Stores `data` as segment `sequence` of `stream`, replacing any previous value.
    ///
    /// Errors: an implementation-defined [`Error`] (for [`MemoryStore`]:
    /// [`Error::limit`] when a new stream would exceed its stream limit).
    fn put(&mut self, stream: &str, sequence: u64, data: Bytes) -> Result<()>;
    /// The bytes of segment `sequence` of `stream`, if stored.
    fn get(&self, stream: &str, sequence: u64) -> Option<Bytes>;
    /// Removes segment `sequence` of `stream`; returns whether it was stored.
    fn remove(&mut self, stream: &str, sequence: u64) -> bool;
    /// The sequence numbers stored for `stream`, ascending.
    fn list(&self, stream: &str) -> Vec<u64>;
    /// Total bytes of the segments held for `stream` (shown as `stored_bytes` in
    /// `/streams.json`). The default sums [`get`](Self::get) over
    /// [`list`](Self::list); stores that keep a running total override it.
    fn stream_bytes(&self, stream: &str) -> usize {
        self.list(stream)
            .into_iter()
            .filter_map(|seq| self.get(stream, seq))
            .map(|b| b.len())
            .sum()
    }
    /// Removes every segment of `stream` (the stream ended and is gone).
    fn remove_stream(&mut self, stream: &str) {
        for seq in self.list(stream) {
            self.remove(stream, seq);
        }
    }
}

/// Options of a [`MemoryStore`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStoreOptions {
    /// Most segments kept per stream; storing one more evicts the oldest (lowest
    /// sequence). Set it to the playlist window plus a grace of a few segments so
    /// that a player holding the previous playlist can still fetch what it lists.
    /// Default: 9 (a window of 6 plus 3). Values below 1 are treated as 1.
    pub max_segments_per_stream: usize,
    /// Most bytes kept per stream; storing a segment evicts the oldest ones until
    /// the total fits (the newest segment is always kept). Default: 256 MiB.
    pub max_bytes_per_stream: usize,
    /// Most streams held at once; a `put` for one more stream is an
    /// [`Error::limit`]. Default: 1024.
    pub max_streams: usize,
}

impl Default for MemoryStoreOptions {
    fn default() -> Self {
        MemoryStoreOptions {
            max_segments_per_stream: 9,
            max_bytes_per_stream: 256 << 20,
            max_streams: 1024,
        }
    }
}

#[derive(Debug, Default)]
struct StreamSegments {
    segments: BTreeMap<u64, Bytes>,
    bytes: usize,
}

/// A bounded in-memory [`SegmentStore`]: per stream, the newest
/// [`MemoryStoreOptions::max_segments_per_stream`] segments within
/// [`MemoryStoreOptions::max_bytes_per_stream`] bytes; older ones are evicted on
/// `put`. Segments are [`Bytes`]: a `get` is a reference-count increment, no copy.
///
/// ```
/// use bytes::Bytes;
/// use strom::origin::{MemoryStore, MemoryStoreOptions, SegmentStore};
///
/// let mut opts = MemoryStoreOptions::default();
/// opts.max_segments_per_stream = 2;
/// let mut store = MemoryStore::new(opts);
/// for seq in 0..3 {
///     store.put("cam", seq, Bytes::from(vec![0x47; 188])).unwrap();
/// }
/// assert_eq!(store.list("cam"), [1, 2]); // 0 was evicted
/// assert!(store.get("cam", 0).is_none());
/// assert_eq!(store.get("cam", 2).unwrap().len(), 188);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    opts: MemoryStoreOptions,
    streams: HashMap<String, StreamSegments>,
}

impl MemoryStore {
    /// An empty store with `opts`.
    pub fn new(opts: MemoryStoreOptions) -> Self {
        MemoryStore {
            opts,
            streams: HashMap::new(),
        }
    }

    /// The options of this store.
    pub fn options(&self) -> &MemoryStoreOptions {
        &self.opts
    }

    /// Number of streams with at least one segment.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }
}

impl SegmentStore for MemoryStore {
    fn put(&mut self, stream: &str, sequence: u64, data: Bytes) -> Result<()> {
        if !self.streams.contains_key(stream) && self.streams.len() >= self.opts.max_streams {
            return Err(Error::limit("memory store: too many streams").context(stream.to_string()));
        }
        let s = self.streams.entry(stream.to_string()).or_default();
        if let Some(old) = s.segments.insert(sequence, data.clone()) {
            s.bytes -= old.len();
        }
        s.bytes += data.len();
        let max_segments = self.opts.max_segments_per_stream.max(1);
        while s.segments.len() > max_segments
            || (s.bytes > self.opts.max_bytes_per_stream && s.segments.len() > 1)
        {
            match s.segments.pop_first() {
                Some((_, old)) => s.bytes -= old.len(),
                None => break,
            }
        }
        Ok(())
    }

    fn get(&self, stream: &str, sequence: u64) -> Option<Bytes> {
        self.streams.get(stream)?.segments.get(&sequence).cloned()
    }

    fn remove(&mut self, stream: &str, sequence: u64) -> bool {
        let Some(s) = self.streams.get_mut(stream) else {
            return false;
        };
        let removed = match s.segments.remove(&sequence) {
            Some(old) => {
                s.bytes -= old.len();
                true
            }
            None => false,
        };
        if s.segments.is_empty() {
            self.streams.remove(stream);
        }
        removed
    }

    fn stream_bytes(&self, stream: &str) -> usize {
        self.streams.get(stream).map_or(0, |s| s.bytes)
    }

    fn list(&self, stream: &str) -> Vec<u64> {
        self.streams
            .get(stream)
            .map(|s| s.segments.keys().copied().collect())
            .unwrap_or_default()
    }

    fn remove_stream(&mut self, stream: &str) {
        self.streams.remove(stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn seg(n: usize) -> Bytes {
        Bytes::from(vec![0x47; n])
    }

    /// A store with only the required methods, to check the provided ones.
    #[derive(Default)]
    struct Plain(BTreeMap<u64, Bytes>);
    impl SegmentStore for Plain {
        fn put(&mut self, _: &str, sequence: u64, data: Bytes) -> Result<()> {
            self.0.insert(sequence, data);
            Ok(())
        }
        fn get(&self, _: &str, sequence: u64) -> Option<Bytes> {
            self.0.get(&sequence).cloned()
        }
        fn remove(&mut self, _: &str, sequence: u64) -> bool {
            self.0.remove(&sequence).is_some()
        }
        fn list(&self, _: &str) -> Vec<u64> {
            self.0.keys().copied().collect()
        }
    }

    #[test]
    fn provided_stream_bytes_sums_the_segments() {
        let mut p = Plain::default();
        assert_eq!(p.stream_bytes("a"), 0);
        p.put("a", 1, seg(100)).unwrap();
        p.put("a", 2, seg(23)).unwrap();
        assert_eq!(p.stream_bytes("a"), 123);
        p.remove_stream("a");
        assert_eq!(p.stream_bytes("a"), 0);
    }

    #[test]
    fn evicts_oldest_by_count_and_bytes() {
        let mut store = MemoryStore::new(MemoryStoreOptions {
            max_segments_per_stream: 3,
            max_bytes_per_stream: 1000,
            max_streams: 2,
        });
        for i in 0..5 {
            store.put("a", i, seg(100)).unwrap();
        }
        assert_eq!(store.list("a"), [2, 3, 4]);
        assert_eq!(store.stream_bytes("a"), 300);
        // A big segment pushes out older ones by bytes; the newest always stays.
        store.put("a", 5, seg(850)).unwrap();
        assert_eq!(store.list("a"), [4, 5]);
        assert_eq!(store.stream_bytes("a"), 950);
        store.put("a", 6, seg(2000)).unwrap();
        assert_eq!(store.list("a"), [6]);
        // Replacing keeps the byte count right.
        store.put("a", 6, seg(10)).unwrap();
        assert_eq!(store.stream_bytes("a"), 10);
        // Streams are independent and limited in number.
        store.put("b", 0, seg(1)).unwrap();
        let e = store.put("c", 0, seg(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert_eq!(store.list("a"), [6]);
        assert!(store.remove("b", 0));
        assert!(!store.remove("b", 0));
        assert_eq!(store.stream_count(), 1);
        store.put("c", 0, seg(1)).unwrap();
        store.remove_stream("a");
        assert!(store.get("a", 6).is_none());
        assert_eq!(store.get("c", 0).unwrap(), seg(1));
    }
}
