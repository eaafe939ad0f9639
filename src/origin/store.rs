//! [`SegmentStore`]: where an origin keeps media segment bytes (MPEG-TS segments, and
//! CMAF init segments and fragments per rendition), and [`MemoryStore`], the bounded
//! in-memory window.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// What a CMAF object of a live stream is, within its stream: the init segment or a
/// numbered fragment of one rendition (`v1`, `a2`; see [`crate::package::cmaf`]).
/// Served as `/live/{stream}/{rendition}/init.mp4` and
/// `/live/{stream}/{rendition}/{number}.m4s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CmafKey<'a> {
    /// The rendition's init segment (`ftyp` + `moov`); a new one replaces the old.
    Init {
        /// The rendition name.
        rendition: &'a str,
    },
    /// Media segment `number` of the rendition (`styp` + `moof` + `mdat`).
    Fragment {
        /// The rendition name.
        rendition: &'a str,
        /// The fragment number (DASH `$Number$`, HLS media sequence number).
        number: u64,
    },
}

impl CmafKey<'_> {
    /// The rendition the object belongs to.
    pub fn rendition(&self) -> &str {
        match self {
            CmafKey::Init { rendition } | CmafKey::Fragment { rendition, .. } => rendition,
        }
    }
}

/// Which series of objects of a stream a [`SegmentRecord`] indexes: the MPEG-TS
/// segments, or the fragments of one CMAF rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Series<'a> {
    /// The MPEG-TS segments (`{sequence}.ts`).
    Ts,
    /// The fragments of one CMAF rendition (`{rendition}/{number}.m4s`).
    Cmaf {
        /// The rendition name.
        rendition: &'a str,
    },
}

/// What an index keeps of one stored segment or fragment: enough to write a playlist
/// line or a DASH `SegmentTimeline` entry, and to find the segment playing at a wall
/// clock time, without reading its bytes. Time is integer (never `f64`).
///
/// ```
/// use strom::origin::SegmentRecord;
/// use strom::time::Timestamp;
///
/// let r = SegmentRecord::new(7, Timestamp::from_millis(14_000), Timestamp::from_millis(2_000))
///     .with_program_date_time(1_700_000_014_000)
///     .with_size(188 * 1000);
/// assert_eq!(r.end().as_millis(), 16_000);
/// assert_eq!(r.program_date_time_end(), 1_700_000_016_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentRecord {
    /// Media sequence number of a TS segment, or the fragment number (DASH
    /// `$Number$`) of a CMAF fragment.
    pub number: u64,
    /// Media time of its first sample, in the series' timescale (90 kHz for TS, the
    /// track's for CMAF: the fragment's `tfdt`).
    pub start: Timestamp,
    /// Exact duration, in the same timescale as `start`.
    pub duration: Timestamp,
    /// Wall-clock time (Unix ms) when its first frame arrived
    /// (`EXT-X-PROGRAM-DATE-TIME`).
    pub program_date_time: i64,
    /// Bytes of the object.
    pub size: u64,
    /// It starts after a discontinuity (a publisher reconnected, timestamps or
    /// codecs changed): `EXT-X-DISCONTINUITY` before it, a new DASH Period or a
    /// gap in the timeline.
    pub discontinuity: bool,
    /// How many discontinuities came before it in its series since the stream began
    /// (`EXT-X-DISCONTINUITY-SEQUENCE` of a playlist that starts with it, RFC 8216bis
    /// §4.4.3.3): kept in the record so that a window whose oldest records were
    /// deleted still counts right. Its own `discontinuity` is not included.
    pub discontinuity_sequence: u64,
    /// The segment belongs to an ad break (see [`AdMark`]): live-to-VOD removes,
    /// joins or replaces such segments. `None` for programme content.
    pub ad: Option<AdMark>,
}

/// Where a stored segment stands in an ad break (kept in its index record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdMark {
    /// It is the break's first segment (the cut at the `Out` cue).
    pub first: bool,
    /// The break's SCTE 35 `segmentation_type_id`, when its cue came from a
    /// segmentation descriptor (0x30 provider advertisement, 0x34 provider placement
    /// opportunity...); `None` for a `splice_insert` or an operator's cue.
    pub segmentation_type: Option<u8>,
}

impl AdMark {
    /// A segment of a break, first or not, with the break's segmentation type.
    pub fn new(first: bool, segmentation_type: Option<u8>) -> Self {
        AdMark {
            first,
            segmentation_type,
        }
    }
}

impl SegmentRecord {
    /// Record `number` starting at `start` for `duration`; no wall-clock time (0),
    /// size 0, no discontinuity.
    pub fn new(number: u64, start: Timestamp, duration: Timestamp) -> Self {
        SegmentRecord {
            number,
            start,
            duration,
            program_date_time: 0,
            size: 0,
            discontinuity: false,
            discontinuity_sequence: 0,
            ad: None,
        }
    }

    /// With the wall-clock time (Unix ms) of its first frame.
    #[must_use]
    pub fn with_program_date_time(mut self, unix_ms: i64) -> Self {
        self.program_date_time = unix_ms;
        self
    }

    /// With its size in bytes.
    #[must_use]
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    /// With the discontinuity flag.
    #[must_use]
    pub fn with_discontinuity(mut self, discontinuity: bool) -> Self {
        self.discontinuity = discontinuity;
        self
    }

    /// With its place in an ad break.
    #[must_use]
    pub fn with_ad(mut self, ad: Option<AdMark>) -> Self {
        self.ad = ad;
        self
    }

    /// With the count of discontinuities before it in its series.
    #[must_use]
    pub fn with_discontinuity_sequence(mut self, count: u64) -> Self {
        self.discontinuity_sequence = count;
        self
    }

    /// Media time just after it: `start + duration`.
    pub fn end(&self) -> Timestamp {
        self.start.add(self.duration)
    }

    /// Wall-clock time (Unix ms) just after it.
    pub fn program_date_time_end(&self) -> i64 {
        self.program_date_time
            .saturating_add(self.duration.as_millis())
    }
}

/// Storage for the media segments of live streams, keyed by (stream name, media
/// sequence number), and for their CMAF objects, keyed by (stream name, [`CmafKey`]).
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
    /// Removes every segment of `stream` (the stream ended and is gone). The default
    /// removes the MPEG-TS segments of [`list`](Self::list); a store that keeps CMAF
    /// objects ([`put_cmaf`](Self::put_cmaf)) overrides it to remove those too.
    fn remove_stream(&mut self, stream: &str) {
        for seq in self.list(stream) {
            self.remove(stream, seq);
        }
    }
    /// Stores a CMAF object of `stream` (an init segment or a fragment, see
    /// [`CmafKey`]), replacing any previous value. It must be in
    /// [`stream_bytes`](Self::stream_bytes) and go with
    /// [`remove_stream`](Self::remove_stream).
    ///
    /// The default keeps nothing (a store written for MPEG-TS only): the origin then
    /// answers 404 for the CMAF files, and a host that wants no CMAF output sets
    /// [`super::LiveStreamOptions::cmaf`] to `false`.
    ///
    /// Errors: an implementation-defined [`Error`] (for [`MemoryStore`]: as
    /// [`put`](Self::put)).
    fn put_cmaf(&mut self, stream: &str, key: CmafKey<'_>, data: Bytes) -> Result<()> {
        let _ = (stream, key, data);
        Ok(())
    }
    /// The bytes of a CMAF object of `stream`, if stored. The default: `None`.
    fn get_cmaf(&self, stream: &str, key: CmafKey<'_>) -> Option<Bytes> {
        let _ = (stream, key);
        None
    }
    /// Stores `data` as the object `record.number` of `series` of `stream` (as
    /// [`put`](Self::put) or [`put_cmaf`](Self::put_cmaf) with
    /// [`CmafKey::Fragment`]) and indexes `record`, for DVR playlists, start-over
    /// and restarts. Numbers of a series are put in increasing order.
    ///
    /// The default stores the object and keeps no record: [`records`](Self::records)
    /// then visits nothing and DVR is limited to the live window.
    ///
    /// Errors: as `put` / `put_cmaf`; an indexing store also fails on a record
    /// number not above the last one ([`Error::usage`]).
    fn put_indexed(
        &mut self,
        stream: &str,
        series: Series<'_>,
        record: &SegmentRecord,
        data: Bytes,
    ) -> Result<()> {
        match series {
            Series::Ts => self.put(stream, record.number, data),
            Series::Cmaf { rendition } => self.put_cmaf(
                stream,
                CmafKey::Fragment {
                    rendition,
                    number: record.number,
                },
                data,
            ),
        }
    }
    /// Visits the records of `series` of `stream` whose object is still stored,
    /// number `>= from`, in increasing order, until `visit` returns `false`.
    /// A store keeping hours of records answers in time proportional to what is
    /// visited, not to what is stored (the first record is found by binary search).
    ///
    /// The default visits nothing.
    ///
    /// Errors: an implementation-defined [`Error`] (an unreadable index).
    fn records(
        &self,
        stream: &str,
        series: Series<'_>,
        from: u64,
        visit: &mut dyn FnMut(&SegmentRecord) -> bool,
    ) -> Result<()> {
        let _ = (stream, series, from, visit);
        Ok(())
    }
    /// The first stored record of `series` of `stream` that is still playing or
    /// starts at or after wall-clock time `unix_ms` (its
    /// [`SegmentRecord::program_date_time_end`] is after it): where a start-over
    /// playlist begins. `None` when no stored record ends after `unix_ms`.
    ///
    /// The default walks [`records`](Self::records).
    fn record_at(&self, stream: &str, series: Series<'_>, unix_ms: i64) -> Option<SegmentRecord> {
        let mut found = None;
        let _ = self.records(stream, series, 0, &mut |r| {
            if r.program_date_time_end() > unix_ms {
                found = Some(*r);
                false
            } else {
                true
            }
        });
        found
    }
    /// The newest stored record of `series` of `stream`. The default walks
    /// [`records`](Self::records).
    fn last_record(&self, stream: &str, series: Series<'_>) -> Option<SegmentRecord> {
        let mut last = None;
        let _ = self.records(stream, series, 0, &mut |r| {
            last = Some(*r);
            true
        });
        last
    }
    /// Names of the streams with stored records, sorted: what an origin reopening a
    /// durable store restores. The default: none.
    fn stored_streams(&self) -> Vec<String> {
        Vec::new()
    }
    /// Names of the CMAF renditions stored for `stream` (with an init segment or
    /// fragments), sorted: where an origin taking up a stored stream finds its tracks.
    /// The default: none.
    fn stored_renditions(&self, stream: &str) -> Vec<String> {
        let _ = stream;
        Vec::new()
    }
}

/// A boxed store is a store: a host picks its store at run time
/// (`Origin<Box<dyn SegmentStore + Send>>`).
impl<S: SegmentStore + ?Sized> SegmentStore for Box<S> {
    fn put(&mut self, stream: &str, sequence: u64, data: Bytes) -> Result<()> {
        (**self).put(stream, sequence, data)
    }
    fn get(&self, stream: &str, sequence: u64) -> Option<Bytes> {
        (**self).get(stream, sequence)
    }
    fn remove(&mut self, stream: &str, sequence: u64) -> bool {
        (**self).remove(stream, sequence)
    }
    fn list(&self, stream: &str) -> Vec<u64> {
        (**self).list(stream)
    }
    fn stream_bytes(&self, stream: &str) -> usize {
        (**self).stream_bytes(stream)
    }
    fn remove_stream(&mut self, stream: &str) {
        (**self).remove_stream(stream)
    }
    fn put_cmaf(&mut self, stream: &str, key: CmafKey<'_>, data: Bytes) -> Result<()> {
        (**self).put_cmaf(stream, key, data)
    }
    fn get_cmaf(&self, stream: &str, key: CmafKey<'_>) -> Option<Bytes> {
        (**self).get_cmaf(stream, key)
    }
    fn put_indexed(
        &mut self,
        stream: &str,
        series: Series<'_>,
        record: &SegmentRecord,
        data: Bytes,
    ) -> Result<()> {
        (**self).put_indexed(stream, series, record, data)
    }
    fn records(
        &self,
        stream: &str,
        series: Series<'_>,
        from: u64,
        visit: &mut dyn FnMut(&SegmentRecord) -> bool,
    ) -> Result<()> {
        (**self).records(stream, series, from, visit)
    }
    fn record_at(&self, stream: &str, series: Series<'_>, unix_ms: i64) -> Option<SegmentRecord> {
        (**self).record_at(stream, series, unix_ms)
    }
    fn last_record(&self, stream: &str, series: Series<'_>) -> Option<SegmentRecord> {
        (**self).last_record(stream, series)
    }
    fn stored_streams(&self) -> Vec<String> {
        (**self).stored_streams()
    }
    fn stored_renditions(&self, stream: &str) -> Vec<String> {
        (**self).stored_renditions(stream)
    }
}

/// Options of a [`MemoryStore`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStoreOptions {
    /// Most segments kept per stream; storing one more evicts the oldest (lowest
    /// sequence). The same bound holds for the fragments of each CMAF rendition of
    /// the stream. Set it to the playlist window plus a grace of a few segments so
    /// that a player holding the previous playlist can still fetch what it lists.
    /// Default: 9 (a window of 6 plus 3). Values below 1 are treated as 1.
    pub max_segments_per_stream: usize,
    /// Most bytes kept per stream; storing a segment evicts the oldest ones until
    /// the total fits (the newest segment is always kept). The same bound holds for
    /// each CMAF rendition (its init segment and fragments; the init segment and the
    /// newest fragment are always kept). Default: 256 MiB.
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
    segments: BTreeMap<u64, Stored>,
    /// Bytes of `segments`.
    bytes: usize,
    /// Number of the last indexed segment ([`SegmentStore::put_indexed`]): the next
    /// one must be above it.
    last_indexed: Option<u64>,
    /// CMAF renditions by name.
    renditions: BTreeMap<String, RenditionObjects>,
    /// Bytes of every rendition (init segments and fragments).
    cmaf_bytes: usize,
}

impl StreamSegments {
    fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.renditions.is_empty()
    }

    fn has_records(&self) -> bool {
        self.segments.values().any(|s| s.record.is_some())
            || self
                .renditions
                .values()
                .any(|r| r.fragments.values().any(|s| s.record.is_some()))
    }
}

/// A stored segment or fragment, with its record when it was indexed.
#[derive(Debug)]
struct Stored {
    data: Bytes,
    record: Option<SegmentRecord>,
}

/// The stored objects of one CMAF rendition.
#[derive(Debug, Default)]
struct RenditionObjects {
    init: Option<Bytes>,
    fragments: BTreeMap<u64, Stored>,
    /// Bytes of `init` and `fragments`.
    bytes: usize,
    /// Number of the last indexed fragment.
    last_indexed: Option<u64>,
}

/// Most CMAF renditions a [`MemoryStore`] keeps per stream (as many as a
/// [`crate::package::cmaf::CmafPresentation`] makes).
const MAX_RENDITIONS: usize = crate::package::cmaf::MAX_RENDITIONS;

/// A bounded in-memory [`SegmentStore`]: per stream, the newest
/// [`MemoryStoreOptions::max_segments_per_stream`] segments within
/// [`MemoryStoreOptions::max_bytes_per_stream`] bytes; older ones are evicted on
/// `put`. Segments are [`Bytes`]: a `get` is a reference-count increment, no copy.
/// CMAF objects ([`SegmentStore::put_cmaf`]) are kept per rendition under the same
/// bounds, and counted by [`SegmentStore::stream_bytes`].
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

impl MemoryStore {
    fn check_new_stream(&self, stream: &str) -> Result<()> {
        if !self.streams.contains_key(stream) && self.streams.len() >= self.opts.max_streams {
            return Err(Error::limit("memory store: too many streams").context(stream.to_string()));
        }
        Ok(())
    }

    fn put_segment(
        &mut self,
        stream: &str,
        sequence: u64,
        data: Bytes,
        record: Option<SegmentRecord>,
    ) -> Result<()> {
        self.check_new_stream(stream)?;
        if record.is_some() {
            let last = self.streams.get(stream).and_then(|s| s.last_indexed);
            check_increasing(last, sequence, stream)?;
        }
        let s = self.streams.entry(stream.to_string()).or_default();
        if record.is_some() {
            s.last_indexed = Some(sequence);
        }
        let len = data.len();
        if let Some(old) = s.segments.insert(sequence, Stored { data, record }) {
            s.bytes -= old.data.len();
        }
        s.bytes += len;
        let max_segments = self.opts.max_segments_per_stream.max(1);
        while s.segments.len() > max_segments
            || (s.bytes > self.opts.max_bytes_per_stream && s.segments.len() > 1)
        {
            match s.segments.pop_first() {
                Some((_, old)) => s.bytes -= old.data.len(),
                None => break,
            }
        }
        Ok(())
    }

    fn put_object(
        &mut self,
        stream: &str,
        key: CmafKey<'_>,
        data: Bytes,
        record: Option<SegmentRecord>,
    ) -> Result<()> {
        self.check_new_stream(stream)?;
        let name = key.rendition();
        if let (Some(_), CmafKey::Fragment { number, .. }) = (record, key) {
            let last = self
                .streams
                .get(stream)
                .and_then(|s| s.renditions.get(name))
                .and_then(|r| r.last_indexed);
            check_increasing(last, number, stream)?;
        }
        let s = self.streams.entry(stream.to_string()).or_default();
        if !s.renditions.contains_key(name) && s.renditions.len() >= MAX_RENDITIONS {
            if s.is_empty() {
                self.streams.remove(stream);
            }
            return Err(
                Error::limit("memory store: too many renditions").context(stream.to_string())
            );
        }
        let r = s.renditions.entry(name.to_string()).or_default();
        let len = data.len();
        let old = match key {
            CmafKey::Init { .. } => r.init.replace(data),
            CmafKey::Fragment { number, .. } => {
                if record.is_some() {
                    r.last_indexed = Some(number);
                }
                r.fragments
                    .insert(number, Stored { data, record })
                    .map(|o| o.data)
            }
        };
        let before = r.bytes;
        r.bytes = r.bytes - old.map_or(0, |o| o.len()) + len;
        let max_fragments = self.opts.max_segments_per_stream.max(1);
        while r.fragments.len() > max_fragments
            || (r.bytes > self.opts.max_bytes_per_stream && r.fragments.len() > 1)
        {
            match r.fragments.pop_first() {
                Some((_, old)) => r.bytes -= old.data.len(),
                None => break,
            }
        }
        s.cmaf_bytes = s.cmaf_bytes - before + r.bytes;
        Ok(())
    }

    /// The stored objects of `series` of `stream`.
    fn series(&self, stream: &str, series: Series<'_>) -> Option<&BTreeMap<u64, Stored>> {
        let s = self.streams.get(stream)?;
        match series {
            Series::Ts => Some(&s.segments),
            Series::Cmaf { rendition } => Some(&s.renditions.get(rendition)?.fragments),
        }
    }
}

/// [`Error::usage`] unless `number` is above `last`, the last indexed number.
fn check_increasing(last: Option<u64>, number: u64, stream: &str) -> Result<()> {
    match last {
        Some(last) if number <= last => Err(Error::usage(
            "segment store: record number not above the last indexed one",
        )
        .context(format!("{stream}: {number} after {last}"))),
        _ => Ok(()),
    }
}

/// Keeps the [`SegmentRecord`] of each indexed segment or fragment beside its bytes:
/// [`records`](SegmentStore::records), [`record_at`](SegmentStore::record_at) and
/// [`last_record`](SegmentStore::last_record) answer over the window this store
/// keeps (DVR from memory with `max_segments_per_stream` of a few thousand). The
/// record's `size` is set to the length of the data.
impl SegmentStore for MemoryStore {
    fn put(&mut self, stream: &str, sequence: u64, data: Bytes) -> Result<()> {
        self.put_segment(stream, sequence, data, None)
    }

    fn get(&self, stream: &str, sequence: u64) -> Option<Bytes> {
        self.streams
            .get(stream)?
            .segments
            .get(&sequence)
            .map(|s| s.data.clone())
    }

    fn put_cmaf(&mut self, stream: &str, key: CmafKey<'_>, data: Bytes) -> Result<()> {
        self.put_object(stream, key, data, None)
    }

    fn get_cmaf(&self, stream: &str, key: CmafKey<'_>) -> Option<Bytes> {
        let r = self.streams.get(stream)?.renditions.get(key.rendition())?;
        match key {
            CmafKey::Init { .. } => r.init.clone(),
            CmafKey::Fragment { number, .. } => r.fragments.get(&number).map(|s| s.data.clone()),
        }
    }

    fn remove(&mut self, stream: &str, sequence: u64) -> bool {
        let Some(s) = self.streams.get_mut(stream) else {
            return false;
        };
        let removed = match s.segments.remove(&sequence) {
            Some(old) => {
                s.bytes -= old.data.len();
                true
            }
            None => false,
        };
        if s.is_empty() {
            self.streams.remove(stream);
        }
        removed
    }

    fn stream_bytes(&self, stream: &str) -> usize {
        self.streams
            .get(stream)
            .map_or(0, |s| s.bytes + s.cmaf_bytes)
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

    fn put_indexed(
        &mut self,
        stream: &str,
        series: Series<'_>,
        record: &SegmentRecord,
        data: Bytes,
    ) -> Result<()> {
        let record = record.with_size(data.len() as u64);
        match series {
            Series::Ts => self.put_segment(stream, record.number, data, Some(record)),
            Series::Cmaf { rendition } => {
                let key = CmafKey::Fragment {
                    rendition,
                    number: record.number,
                };
                self.put_object(stream, key, data, Some(record))
            }
        }
    }

    fn records(
        &self,
        stream: &str,
        series: Series<'_>,
        from: u64,
        visit: &mut dyn FnMut(&SegmentRecord) -> bool,
    ) -> Result<()> {
        if let Some(objects) = self.series(stream, series) {
            for r in objects.range(from..).filter_map(|(_, s)| s.record.as_ref()) {
                if !visit(r) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn last_record(&self, stream: &str, series: Series<'_>) -> Option<SegmentRecord> {
        self.series(stream, series)?
            .values()
            .rev()
            .find_map(|s| s.record)
    }

    fn stored_streams(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, s)| s.has_records())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn stored_renditions(&self, stream: &str) -> Vec<String> {
        self.streams
            .get(stream)
            .map(|s| s.renditions.keys().cloned().collect())
            .unwrap_or_default()
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
    fn cmaf_objects_per_rendition_with_the_same_bounds() {
        let mut store = MemoryStore::new(MemoryStoreOptions {
            max_segments_per_stream: 3,
            max_bytes_per_stream: 1000,
            max_streams: 1,
        });
        let init = |r| CmafKey::Init { rendition: r };
        let frag = |r, number| CmafKey::Fragment {
            rendition: r,
            number,
        };
        // The provided methods keep nothing.
        let mut plain = Plain::default();
        plain.put_cmaf("a", init("v1"), seg(10)).unwrap();
        assert_eq!(plain.get_cmaf("a", init("v1")), None);
        assert_eq!(plain.stream_bytes("a"), 0);

        store.put_cmaf("a", init("v1"), seg(50)).unwrap();
        store.put_cmaf("a", init("a2"), seg(20)).unwrap();
        for n in 0..5 {
            store.put_cmaf("a", frag("v1", n), seg(100)).unwrap();
            store.put_cmaf("a", frag("a2", n), seg(10)).unwrap();
        }
        store.put("a", 7, seg(188)).unwrap();
        // Three fragments per rendition, the init segments stay.
        assert_eq!(store.get_cmaf("a", frag("v1", 1)), None);
        assert_eq!(store.get_cmaf("a", frag("v1", 2)).unwrap().len(), 100);
        assert_eq!(store.get_cmaf("a", frag("a2", 4)).unwrap().len(), 10);
        assert_eq!(store.get_cmaf("a", init("v1")).unwrap().len(), 50);
        assert_eq!(store.get_cmaf("a", frag("x9", 4)), None);
        assert_eq!(store.stream_bytes("a"), 50 + 300 + 20 + 30 + 188);
        // Bytes: a big fragment evicts the older ones, never the init segment.
        store.put_cmaf("a", frag("v1", 5), seg(900)).unwrap();
        assert_eq!(store.get_cmaf("a", frag("v1", 4)), None);
        assert_eq!(store.get_cmaf("a", init("v1")).unwrap().len(), 50);
        assert_eq!(store.stream_bytes("a"), 950 + 20 + 30 + 188);
        // A new init segment replaces the old one.
        store.put_cmaf("a", init("v1"), seg(60)).unwrap();
        assert_eq!(store.stream_bytes("a"), 960 + 20 + 30 + 188);
        // Removing the TS segments keeps the stream while CMAF objects remain.
        assert!(store.remove("a", 7));
        assert_eq!(store.stream_count(), 1);
        // The stream limit holds for CMAF objects too.
        let e = store.put_cmaf("b", init("v1"), seg(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        store.remove_stream("a");
        assert_eq!(store.stream_bytes("a"), 0);
        assert_eq!(store.get_cmaf("a", init("v1")), None);
        assert_eq!(store.stream_count(), 0);
        // Renditions per stream are bounded.
        for i in 0..MAX_RENDITIONS {
            let name = format!("a{i}");
            let key = CmafKey::Init { rendition: &name };
            store.put_cmaf("c", key, seg(1)).unwrap();
        }
        let e = store.put_cmaf("c", init("v0"), seg(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
    }

    #[test]
    fn memory_store_keeps_records_over_its_window() {
        let mut store = MemoryStore::new(MemoryStoreOptions {
            max_segments_per_stream: 4,
            ..Default::default()
        });
        let rec = |n: u64| {
            SegmentRecord::new(
                n,
                Timestamp::from_secs(2 * n as i64),
                Timestamp::from_secs(2),
            )
            .with_program_date_time(1_000_000 + 2000 * n as i64)
            .with_discontinuity(n == 5)
        };
        let v1 = Series::Cmaf { rendition: "v1" };
        assert_eq!(store.last_record("a", Series::Ts), None);
        for n in 0..6 {
            store
                .put_indexed("a", Series::Ts, &rec(n), seg(10 + n as usize))
                .unwrap();
            store.put_indexed("a", v1, &rec(n), seg(5)).unwrap();
        }
        // An unindexed segment is stored but has no record.
        store.put("a", 6, seg(1)).unwrap();
        let mut seen = Vec::new();
        store
            .records("a", Series::Ts, 0, &mut |r| {
                seen.push((r.number, r.size, r.discontinuity));
                true
            })
            .unwrap();
        // Window of 4 (3..=6); 6 has no record; size is the data's length.
        assert_eq!(seen, [(3, 13, false), (4, 14, false), (5, 15, true)]);
        let mut from5 = Vec::new();
        store
            .records("a", v1, 5, &mut |r| {
                from5.push(r.number);
                true
            })
            .unwrap();
        assert_eq!(from5, [5]);
        assert_eq!(store.last_record("a", Series::Ts).unwrap().number, 5);
        assert_eq!(store.last_record("a", v1).unwrap().size, 5);
        // 1 008 000 is in segment 4 (1 008 000..1 010 000); before the window: the first.
        assert_eq!(
            store.record_at("a", Series::Ts, 1_008_000).unwrap().number,
            4
        );
        assert_eq!(store.record_at("a", Series::Ts, 0).unwrap().number, 3);
        assert_eq!(store.record_at("a", Series::Ts, 1_012_000), None);
        // Numbers of a series increase.
        let e = store
            .put_indexed("a", Series::Ts, &rec(5), seg(1))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        let e = store.put_indexed("a", v1, &rec(2), seg(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        store.put("b", 0, seg(1)).unwrap();
        assert_eq!(store.stored_streams(), ["a"]);
        store.remove_stream("a");
        assert!(store.stored_streams().is_empty());
        store.put_indexed("a", Series::Ts, &rec(0), seg(1)).unwrap();
        assert_eq!(store.stored_streams(), ["a"]);
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
