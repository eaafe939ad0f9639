//! [`Origin`]: live streams and their segment store behind one `handle(request, now)`.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;

use super::dvr::{self, DvrPlaylist, Window, DVR_PLAYLIST};
use super::http::{Method, Request, Response};
use super::live::{
    CueRequest, LiveState, LiveStream, LiveStreamOptions, MEDIA_PLAYLIST, MULTIVARIANT_PLAYLIST,
};
use super::live_cmaf::TIME_PATH;
use super::protect::Protection;
use super::recording::{Recording, RECORDING_NAME};
use super::store::{CmafKey, SegmentRecord, SegmentStore, Series};
use crate::container::fmp4::Fmp4Reader;
use crate::error::{Error, Result};
use crate::media::{Item, MediaKind, SpliceCue};
use crate::package::cmaf::INIT_SEGMENT;
use crate::package::hls::iso8601_millis;

/// `Content-Type` of HLS playlists (RFC 8216bis §4).
pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// `Content-Type` of MPEG-TS segments.
pub const SEGMENT_TYPE: &str = "video/mp2t";
/// `Cache-Control` of live playlists: about half a 2 s segment.
pub const PLAYLIST_CACHE: &str = "max-age=1";
/// `Cache-Control` of segments: a URL never names other bytes.
pub const SEGMENT_CACHE: &str = "max-age=31536000, immutable";
/// Name of the fMP4 HLS multivariant playlist of a stream.
pub const CMAF_PLAYLIST: &str = "cmaf.m3u8";
/// Name of the DASH MPD of a stream.
pub const MPD_NAME: &str = "manifest.mpd";
/// `Content-Type` of DASH MPDs (ISO/IEC 23009-1 Annex C).
pub const MPD_TYPE: &str = "application/dash+xml";
/// `Content-Type` of CMAF media segments (`.m4s`, RFC 8216bis §4.3.2 / ISO/IEC 23000-19
/// Annex; the `video/iso.segment` registration covers audio segments too).
pub const FRAGMENT_TYPE: &str = "video/iso.segment";
/// `Cache-Control` of init segments: a new track configuration replaces one under the
/// same URL, so caches revalidate.
pub const INIT_CACHE: &str = "no-cache";
/// Longest stream name.
pub const MAX_NAME_LEN: usize = 64;
/// Most distinct viewers remembered per stream by [`Origin::handle_counting`].
pub const MAX_VIEWERS_PER_STREAM: usize = 100_000;

/// Options of an [`Origin`]. Each field's doc states its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OriginOptions {
    /// Options of each new [`LiveStream`] (its `first_sequence` is set by the origin).
    /// Default: [`LiveStreamOptions::default`]. Let the store keep a few segments
    /// more than the playlist window (for [`super::MemoryStore`]:
    /// `max_segments_per_stream`, 9 by default for the window of 6), or players
    /// holding the previous playlist get 404s.
    pub live: LiveStreamOptions,
    /// Most streams held at once (publishing, idle or ended and lingering); one more
    /// publish is an [`Error::limit`]. Default: 1000.
    pub max_streams: usize,
    /// How long an ended stream keeps serving its final playlist (with
    /// `EXT-X-ENDLIST`) and segments before it is removed, in milliseconds.
    /// Default: 60 000.
    pub linger_ms: i64,
    /// A viewer (see [`Origin::handle_counting`]) counts while its last playlist
    /// request is at most this old, in milliseconds. Default: 10 000 (players
    /// reload a live playlist about every target duration).
    pub viewer_window_ms: i64,
    /// How far back viewers may go (DVR / timeshift), in milliseconds: `dvr.m3u8`
    /// playlists, start-over (`?start=`, `?offset=`) and the DASH MPD's
    /// `timeShiftBufferDepth` cover the store's records within this much of the newest
    /// one (see [`super::DVR_PLAYLIST`]). The store must keep that much
    /// ([`SegmentStore::records`]; a [`super::MemoryStore`] keeps records for the
    /// segments it holds). 0 turns DVR off: those requests get 404. Default: 0.
    pub dvr_window_ms: i64,
    /// Keep a stream's stored segments when the stream is removed (ended and lingered,
    /// or replaced by a new publish of the same name): a recording, served as VOD from
    /// the store's index (`dvr.m3u8`) until the store's own retention deletes it.
    /// Default: `false` (the segments go with the stream).
    pub keep_recordings: bool,
    /// Largest recording `/live/{stream}/recording.mp4` answers in one response body,
    /// in bytes; a larger one gets 413 (a host streams it from
    /// [`Origin::recording`]). Default: 256 MiB.
    pub max_recording_body: u64,
    /// The operator key of the cue API (`POST /live/{stream}/cue?key=...`, see
    /// [`Origin::handle_mut`]). `None` turns the API off (403). Default: `None`.
    pub cue_key: Option<String>,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            live: LiveStreamOptions::default(),
            max_streams: 1000,
            linger_ms: 60_000,
            viewer_window_ms: 10_000,
            dvr_window_ms: 0,
            keep_recordings: false,
            max_recording_body: 256 << 20,
            cue_key: None,
        }
    }
}

/// Whether `name` is a valid stream name: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route<'a> {
    Streams,
    Time,
    Multivariant(&'a str),
    Media(&'a str),
    Segment(&'a str, u64),
    CmafMultivariant(&'a str),
    Mpd(&'a str),
    RenditionMedia(&'a str, &'a str),
    Init(&'a str, &'a str),
    Fragment(&'a str, &'a str, u64),
    Dvr(&'a str),
    RenditionDvr(&'a str, &'a str),
    Recording(&'a str),
    Cue(&'a str),
    /// `/live/{stream}/ssai/{session}/{file}`: a viewer session's playlists with ads.
    Ssai(&'a str, &'a str, &'a str),
    /// `/ads/{creative}/{file}`: a creative's segments.
    Ad(&'a str, &'a str),
    /// `/ads/{creative}/{rendition}/{file}`: a creative's CMAF init segment and fragments.
    AdCmaf(&'a str, &'a str, &'a str),
    /// `/live/{stream}/vod.m3u8` and `/live/{stream}/vod.mpd`: live-to-VOD.
    Vod(&'a str, &'a str),
    /// `/live/{stream}/vod/{n}.ts?shift=-T`: a stored segment re-timed for live-to-VOD.
    VodSegment(&'a str, u64),
    /// `/live/{stream}/vod/{rendition}/{k}.m4s`: a kept fragment, re-timed for `ads=remove`.
    VodFragment(&'a str, &'a str, u64),
}

impl<'a> Route<'a> {
    /// The stream of a manifest route (what a viewer reloads).
    fn manifest_of(&self) -> Option<&'a str> {
        match *self {
            Route::Multivariant(n)
            | Route::Media(n)
            | Route::CmafMultivariant(n)
            | Route::Mpd(n)
            | Route::RenditionMedia(n, _)
            | Route::Dvr(n)
            | Route::RenditionDvr(n, _) => Some(n),
            _ => None,
        }
    }
}

/// Per stream and series (`""` for MPEG-TS, else the rendition): discontinuities
/// recorded so far, and whether the next record starts a new publisher's stream. A
/// series not seen since the origin started continues from its store's newest record
/// (counting survives a restart), and its next record, following what an earlier
/// process stored, is a discontinuity.
#[derive(Debug, Default)]
struct DiscontinuityCounts(HashMap<String, HashMap<String, (u64, bool)>>);

impl DiscontinuityCounts {
    /// `record` with its discontinuity sequence (and flag), counting its own
    /// discontinuity for the records after it.
    fn record<S: SegmentStore>(
        &mut self,
        store: &S,
        stream: &str,
        series: Series<'_>,
        record: SegmentRecord,
    ) -> SegmentRecord {
        let key = match series {
            Series::Cmaf { rendition } => rendition,
            _ => "",
        };
        let per = self.0.entry(stream.to_string()).or_default();
        let (n, fresh) = match per.get_mut(key) {
            Some(e) => e,
            None => {
                let e = store.last_record(stream, series).map_or((0, false), |r| {
                    (r.discontinuity_sequence + u64::from(r.discontinuity), true)
                });
                per.entry(key.to_string()).or_insert(e)
            }
        };
        let first_after_stored = std::mem::take(fresh);
        let disc = record.discontinuity || first_after_stored;
        let out = record
            .with_discontinuity(disc)
            .with_discontinuity_sequence(*n);
        *n += u64::from(disc);
        out
    }

    /// A new stream of that name starts after what is stored: its first records
    /// are discontinuities.
    fn restart(&mut self, stream: &str) {
        if let Some(per) = self.0.get_mut(stream) {
            for (_, fresh) in per.values_mut() {
                *fresh = true;
            }
        }
    }

    /// Forgets `stream` (its records were removed).
    fn forget(&mut self, stream: &str) {
        self.0.remove(stream);
    }
}

/// A live HLS origin without a server or a runtime: publishers' frames in
/// ([`publish`](Self::publish), [`push`](Self::push),
/// [`unpublish`](Self::unpublish)), HTTP answers out ([`handle`](Self::handle)).
/// The host owns sockets, clocks and locking; every call takes `now` in Unix
/// milliseconds.
///
/// Routes (`GET` and `HEAD`; `OPTIONS` is a CORS preflight; other methods get 405):
/// * `/live/{stream}/index.m3u8`: multivariant playlist (RFC 8216bis §4.4.6);
/// * `/live/{stream}/media.m3u8`: live media playlist (§4.4.3);
/// * `/live/{stream}/{sequence}.ts`: an MPEG-TS segment from the [`SegmentStore`];
/// * `/live/{stream}/cmaf.m3u8`: fMP4 HLS multivariant playlist (audio group,
///   `EXT-X-MAP`), `/live/{stream}/{rendition}/media.m3u8` its media playlists;
/// * `/live/{stream}/manifest.mpd`: dynamic DASH MPD (`application/dash+xml`,
///   `max-age=1`; `SegmentTimeline` with `$Number$`, `UTCTiming` to `/time`);
/// * `/live/{stream}/{rendition}/init.mp4` (`video/mp4` or `audio/mp4`, `no-cache`)
///   and `/live/{stream}/{rendition}/{number}.m4s` (`video/iso.segment`, immutable):
///   CMAF objects from the store ([`SegmentStore::get_cmaf`]);
/// * `/time`: the `now` of the request as ISO 8601 UTC with milliseconds
///   (`2026-11-23T19:30:00.000Z`, `no-cache`), the MPD's `UTCTiming` source;
/// * `/streams.json`: streams not ended, with codecs, resolution, frame rate,
///   measured bit rate, uptime, bytes and viewers: distinct
///   [`Request::client`]s with a recent playlist request, counted when the host
///   answers through [`handle_counting`](Self::handle_counting) (`null` otherwise).
///
/// Every response has `Access-Control-Allow-Origin: *`. Playlists are
/// `Cache-Control: max-age=1`, segments `max-age=31536000, immutable` (segment URLs
/// are never reused: a stream that ends and starts again continues the numbering
/// while the origin remembers it). Unknown streams, segments and paths are 404,
/// a stream with no segment yet is 404 too. Stream names are `[A-Za-z0-9_-]{1,64}`;
/// a path containing `..`, with `.` segments, backslashes, percent-encoding, control
/// characters, an empty segment or a stream or rendition name outside that set is 400. No file
/// system is ever touched.
///
/// ```
/// use strom::origin::{MemoryStore, Origin, Request};
/// let mut origin = Origin::new(MemoryStore::default(), Default::default());
/// origin.publish("cam1", 0).unwrap();
/// // Nothing pushed yet: no playlist.
/// assert_eq!(origin.handle(&Request::get("/live/cam1/index.m3u8"), 0).status, 404);
/// assert_eq!(origin.handle(&Request::get("/live/../etc/passwd"), 0).status, 400);
/// let r = origin.handle(&Request::get("/streams.json"), 0);
/// assert_eq!(r.header("content-type"), Some("application/json"));
/// assert!(std::str::from_utf8(&r.body).unwrap().contains("\"name\":\"cam1\""));
/// ```
#[derive(Debug)]
pub struct Origin<S: SegmentStore> {
    opts: OriginOptions,
    pub(super) store: S,
    pub(super) streams: HashMap<String, LiveStream>,
    /// Next sequence number of streams that were removed, so a later stream of the
    /// same name does not reuse segment URLs. Bounded by `max_streams`.
    retired: HashMap<String, u64>,
    /// Per stream: client id -> time of its last playlist request (Unix ms). `None`
    /// until the host calls [`Origin::handle_counting`].
    viewers: Option<HashMap<String, HashMap<String, i64>>>,
    /// Keys, rotation and playback tokens, when content is protected.
    protection: Option<Protection>,
    /// Discontinuities so far per stream and series, for the index records.
    counts: DiscontinuityCounts,
    /// Server-side ad insertion: the host's decider, creatives, viewer sessions.
    pub(super) ssai: super::ssai::SsaiState,
}

impl<S: SegmentStore> Origin<S> {
    /// The options this origin runs with.
    pub fn options(&self) -> &OriginOptions {
        &self.opts
    }

    /// An origin serving segments from `store`.
    pub fn new(store: S, opts: OriginOptions) -> Self {
        Origin {
            opts,
            store,
            streams: HashMap::new(),
            retired: HashMap::new(),
            viewers: None,
            protection: None,
            counts: DiscontinuityCounts::default(),
            ssai: super::ssai::SsaiState::default(),
        }
    }

    /// The same origin protecting content with `protection`: it serves the key and
    /// Clear Key licence endpoints (see [`Protection`]).
    #[must_use]
    pub fn with_protection(mut self, protection: Protection) -> Self {
        self.protection = Some(protection);
        self
    }

    /// The protection, if set.
    pub fn protection(&self) -> Option<&Protection> {
        self.protection.as_ref()
    }

    /// The segment store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The recording of `name` as one progressive MP4: its stored CMAF renditions from
    /// the newest run of fragments (since the last discontinuity) to the newest one,
    /// as parts a host writes in order (see [`Recording`]); no media is read twice
    /// into memory.
    ///
    /// Errors: [`Error::usage`] when nothing is recorded; the export's errors.
    pub fn recording(&self, name: &str) -> Result<Recording> {
        if !valid_stream_name(name) {
            return Err(Error::usage("origin: invalid stream name"));
        }
        Recording::build(&self.store, name)
    }

    /// The origin's store, taken back (to reopen it in another origin).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The stream named `name`, if held.
    pub fn stream(&self, name: &str) -> Option<&LiveStream> {
        self.streams.get(name)
    }

    /// Names of the streams held, sorted.
    pub fn stream_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.streams.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// A publisher starts `name` at `now`. A stream that is idle (its publisher
    /// left less than the idle timeout ago) continues with a discontinuity; an ended
    /// one is replaced by a new stream whose numbering continues.
    ///
    /// Errors: [`Error::usage`] for an invalid name or a stream that already has a
    /// publisher (the host refuses the second publisher); [`Error::limit`] when
    /// [`OriginOptions::max_streams`] streams are held.
    pub fn publish(&mut self, name: &str, now: i64) -> Result<()> {
        if !valid_stream_name(name) {
            return Err(Error::usage("origin: invalid stream name"));
        }
        if let Some(s) = self.streams.get_mut(name) {
            if !s.is_ended() {
                return s.publisher_connected(now);
            }
            let next = s.next_number();
            let mut opts = self.opts.live.clone();
            opts.first_sequence = next;
            let mut fresh = LiveStream::new(opts)?;
            fresh.publisher_connected(now)?;
            self.remove_stored(name);
            self.counts.restart(name);
            self.streams.insert(name.to_string(), fresh);
            return Ok(());
        }
        if self.streams.len() >= self.opts.max_streams {
            return Err(Error::limit("origin: too many streams"));
        }
        let mut opts = self.opts.live.clone();
        // Numbering continues after the stream's last stored segment (a recording
        // kept, or segments stored before a restart): URLs are never reused.
        let stored = self
            .store
            .last_record(name, Series::Ts)
            .map_or(0, |r| r.number.saturating_add(1));
        opts.first_sequence = self.retired.remove(name).unwrap_or(0).max(stored);
        self.counts.restart(name);
        let mut s = LiveStream::new(opts)?;
        s.publisher_connected(now)?;
        self.streams.insert(name.to_string(), s);
        Ok(())
    }

    /// Pushes one item of the publisher of `name` at `now`; finished segments go to
    /// the store before the playlist lists them.
    ///
    /// Errors: [`Error::usage`] for an unknown stream or one without a publisher;
    /// the stream's packaging errors (and the store's) otherwise.
    pub fn push(&mut self, name: &str, item: Item, now: i64) -> Result<()> {
        let s = self
            .streams
            .get_mut(name)
            .ok_or(Error::usage("origin: unknown stream"))?;
        let r = s.push(item, now);
        let stored = Self::store_ready(&mut self.store, &mut self.counts, name, s);
        r.and(stored)
    }

    /// Schedules an ad break on the live stream `name` at `now` (see
    /// [`LiveStream::insert_cue`]); the segment is cut at the first keyframe at or
    /// after the requested time and every manifest marks the break. Over HTTP:
    /// [`handle_mut`](Self::handle_mut).
    ///
    /// Errors: [`Error::usage`] for an unknown stream, one without a publisher or
    /// without frames yet; the splicer's refusals.
    pub fn cue(&mut self, name: &str, req: &CueRequest, now: i64) -> Result<SpliceCue> {
        let s = self
            .streams
            .get_mut(name)
            .ok_or(Error::usage("origin: unknown stream"))?;
        let r = s.insert_cue(req, now);
        let stored = Self::store_ready(&mut self.store, &mut self.counts, name, s);
        let cue = r?;
        stored?;
        Ok(cue)
    }

    /// The publisher of `name` left at `now`: its last segment is flushed.
    ///
    /// Errors: [`Error::usage`] for an unknown stream; a muxing or store error.
    pub fn unpublish(&mut self, name: &str, now: i64) -> Result<()> {
        let s = self
            .streams
            .get_mut(name)
            .ok_or(Error::usage("origin: unknown stream"))?;
        let r = s.publisher_disconnected(now);
        let stored = Self::store_ready(&mut self.store, &mut self.counts, name, s);
        r.and(stored)
    }

    /// Takes up the streams an earlier process left in the store (after a restart,
    /// even a `kill -9`): each stream with stored records that is not held gets its
    /// live playlist back (the newest window of segments, the tracks from its stored
    /// init segments) and waits, idle since `now`, for its publisher; numbering
    /// continues after the last stored segment and the publisher's first new segment
    /// follows a discontinuity. A stream whose publisher does not come back within the
    /// idle timeout ends, as any other. Returns the names taken up.
    ///
    /// Streams beyond [`OriginOptions::max_streams`] are left in the store (their
    /// segments and DVR playlists are still served). A stream whose records cannot be
    /// read is skipped.
    pub fn restore(&mut self, now: i64) -> Vec<String> {
        let mut taken = Vec::new();
        for name in self.store.stored_streams() {
            if self.streams.len() >= self.opts.max_streams {
                break;
            }
            if self.streams.contains_key(&name) || !valid_stream_name(&name) {
                continue;
            }
            let Some(last) = self.store.last_record(&name, Series::Ts) else {
                continue;
            };
            let keep = self.opts.live.window.max(1) as u64;
            let mut window = Vec::with_capacity(keep as usize);
            let from = last.number.saturating_sub(keep - 1);
            let read = self.store.records(&name, Series::Ts, from, &mut |r| {
                // Only the run of consecutive numbers that ends with the last one.
                if window
                    .last()
                    .is_some_and(|p: &SegmentRecord| r.number != p.number + 1)
                {
                    window.clear();
                }
                window.push(*r);
                true
            });
            if read.is_err() || window.is_empty() {
                continue;
            }
            let mut tracks = Vec::new();
            for rendition in self.store.stored_renditions(&name) {
                let init = self.store.get_cmaf(
                    &name,
                    CmafKey::Init {
                        rendition: &rendition,
                    },
                );
                if let Some(reader) = init.and_then(|i| Fmp4Reader::new(i).ok()) {
                    tracks.extend(reader.tracks().iter().cloned());
                }
            }
            tracks.sort_by_key(|t| (t.kind != MediaKind::Video, t.id));
            let mut opts = self.opts.live.clone();
            opts.first_sequence = last.number.saturating_add(1);
            let restored = LiveStream::new(opts).and_then(|mut s| {
                s.restore(&window, tracks, now)?;
                Ok(s)
            });
            match restored {
                Ok(s) => {
                    self.counts.restart(&name);
                    self.streams.insert(name.clone(), s);
                    taken.push(name);
                }
                Err(e) => tracing::debug!("origin: cannot restore {name}: {e}"),
            }
        }
        taken
    }

    /// Advances the clock: ends streams idle for longer than their timeout and
    /// removes streams ended more than [`OriginOptions::linger_ms`] ago (with their
    /// segments). Call it every second or so.
    pub fn tick(&mut self, now: i64) {
        let mut gone = Vec::new();
        for (name, s) in &mut self.streams {
            s.tick(now);
            if let LiveState::Ended { at } = s.state() {
                if now.saturating_sub(at) >= self.opts.linger_ms {
                    gone.push(name.clone());
                }
            }
        }
        for name in gone {
            if let Some(s) = self.streams.remove(&name) {
                if self.retired.len() >= self.opts.max_streams {
                    // Bounded memory: forget one old name.
                    if let Some(k) = self.retired.keys().next().cloned() {
                        self.retired.remove(&k);
                    }
                }
                self.retired.insert(name.clone(), s.next_number());
            }
            self.remove_stored(&name);
            if let Some(v) = &mut self.viewers {
                v.remove(&name);
            }
        }
        if let Some(v) = &mut self.viewers {
            let window = self.opts.viewer_window_ms;
            for clients in v.values_mut() {
                clients.retain(|_, last| now.saturating_sub(*last) <= window);
            }
            v.retain(|_, clients| !clients.is_empty());
        }
    }

    /// [`handle`](Self::handle), also counting viewers: a successful playlist
    /// request of a stream from [`Request::client`] marks that client as watching
    /// it for [`OriginOptions::viewer_window_ms`]. `/streams.json` then reports
    /// `viewers` (otherwise `null`). Memory: at most [`MAX_VIEWERS_PER_STREAM`]
    /// clients per stream; [`tick`](Self::tick) forgets the stale ones.
    pub fn handle_counting(&mut self, req: &Request, now: i64) -> Response {
        self.viewers.get_or_insert_with(HashMap::new);
        let r = self.handle(req, now);
        if r.status != 200 {
            return r;
        }
        let (Some(client), Ok(Some(route))) = (&req.client, route(&req.path)) else {
            return r;
        };
        let Some(name) = route.manifest_of() else {
            return r;
        };
        let (name, client) = (name.to_string(), client.clone());
        self.watching(&name, &client, now);
        r
    }

    /// Marks `client` as watching `name` at `now`, as a successful playlist request
    /// through [`handle_counting`](Self::handle_counting) does: for viewers of another
    /// protocol (an RTMP player), refreshed by the host at least once per
    /// [`OriginOptions::viewer_window_ms`]. Turns viewer counting on; unknown
    /// streams are ignored.
    pub fn watching(&mut self, name: &str, client: &str, now: i64) {
        if !self.streams.contains_key(name) {
            return;
        }
        let clients = self
            .viewers
            .get_or_insert_with(HashMap::new)
            .entry(name.to_string())
            .or_default();
        if let Some(last) = clients.get_mut(client) {
            *last = now;
        } else if clients.len() < MAX_VIEWERS_PER_STREAM {
            clients.insert(client.to_string(), now);
        }
    }

    /// Viewers of `name` at `now`, if the origin counts them.
    pub fn viewers(&self, name: &str, now: i64) -> Option<usize> {
        let v = self.viewers.as_ref()?;
        let window = self.opts.viewer_window_ms;
        Some(v.get(name).map_or(0, |clients| {
            clients
                .values()
                .filter(|&&last| now.saturating_sub(last) <= window)
                .count()
        }))
    }

    /// Removes the stored segments of `name`, unless recordings are kept.
    fn remove_stored(&mut self, name: &str) {
        if !self.opts.keep_recordings {
            self.store.remove_stream(name);
            self.counts.forget(name);
        }
    }

    /// Stores the segments `s` finished, each with its index record.
    fn store_ready(
        store: &mut S,
        counts: &mut DiscontinuityCounts,
        name: &str,
        s: &mut LiveStream,
    ) -> Result<()> {
        let mut first_err = None;
        while let Some(seg) = s.poll_segment() {
            let record = counts.record(
                store,
                name,
                Series::Ts,
                SegmentRecord::new(seg.sequence, seg.start, seg.duration)
                    .with_program_date_time(seg.program_date_time)
                    .with_size(seg.data.len() as u64)
                    .with_discontinuity(seg.discontinuity)
                    .with_ad(seg.ad),
            );
            if let Err(e) = store.put_indexed(name, Series::Ts, &record, seg.data) {
                first_err.get_or_insert(e);
            }
            for f in seg.fragments {
                let rendition = f.rendition.as_str();
                let mut r = Ok(());
                if let Some(init) = f.init {
                    r = store.put_cmaf(name, CmafKey::Init { rendition }, init);
                }
                let series = Series::Cmaf { rendition };
                let record = counts.record(
                    store,
                    name,
                    series,
                    SegmentRecord::new(f.number, f.start, f.duration)
                        .with_program_date_time(seg.program_date_time)
                        .with_size(f.data.len() as u64)
                        .with_discontinuity(f.discontinuity)
                        .with_ad(seg.ad),
                );
                if let Err(e) = r.and_then(|()| store.put_indexed(name, series, &record, f.data)) {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Answers one HTTP request at `now`. Never fails: errors are status codes.
    pub fn handle(&self, req: &Request, now: i64) -> Response {
        if req.method != Method::Options {
            if let Some(p) = &self.protection {
                let r = p
                    .handle(req, now)
                    .or_else(|| self.handle_protected(p, req, now));
                if let Some(mut r) = r {
                    // HEAD: the headers of GET, never a body (errors included).
                    if req.method == Method::Head {
                        r.body = Bytes::new();
                    }
                    return r;
                }
            }
        }
        let head = match &req.method {
            Method::Get => false,
            Method::Head => true,
            Method::Options => {
                return cors(Response::new(204))
                    .with_header("access-control-allow-methods", "GET, HEAD, POST, OPTIONS")
                    .with_header("access-control-allow-headers", "Range, Content-Type")
                    .with_header("access-control-max-age", "86400")
                    .with_header("content-length", "0");
            }
            Method::Post | Method::Other(_) => {
                return text(405, "method not allowed\n", false)
                    .with_header("allow", "GET, HEAD, OPTIONS");
            }
        };
        let route = match route(&req.path) {
            Ok(Some(r)) => r,
            Ok(None) => return text(404, "not found\n", head),
            Err(()) => return text(400, "bad request\n", head),
        };
        if let Some(r) = self.handle_dvr(&route, req, now, head) {
            return r;
        }
        let (status, ctype, cache, body) = match route {
            Route::Streams => (200, "application/json", "no-cache", self.streams_json(now)),
            Route::Time => {
                let mut t = String::with_capacity(24);
                if iso8601_millis(&mut t, now).is_err() {
                    return text(500, "clock outside years 0000..=9999\n", head);
                }
                (200, "text/plain; charset=utf-8", "no-cache", Bytes::from(t))
            }
            Route::CmafMultivariant(name) | Route::Mpd(name) | Route::RenditionMedia(name, _) => {
                let Some(s) = self.streams.get(name) else {
                    return text(404, "unknown stream\n", head);
                };
                let (found, ctype) = match route {
                    Route::CmafMultivariant(_) => {
                        (s.cmaf_multivariant_playlist_bytes(), PLAYLIST_TYPE)
                    }
                    Route::RenditionMedia(_, r) => (s.cmaf_media_playlist_bytes(r), PLAYLIST_TYPE),
                    _ => (s.mpd_bytes(now), MPD_TYPE),
                };
                match found {
                    Some(t) => (200, ctype, PLAYLIST_CACHE, t),
                    None => return text(404, "no segment yet\n", head),
                }
            }
            Route::Init(name, rendition) | Route::Fragment(name, rendition, _) => {
                let key = match route {
                    Route::Fragment(_, _, number) => CmafKey::Fragment { rendition, number },
                    _ => CmafKey::Init { rendition },
                };
                // From the store even when the stream is gone: a kept recording, or
                // segments stored before a restart (names are validated).
                let found = self.store.get_cmaf(name, key);
                match (found, key) {
                    (Some(b), CmafKey::Init { .. }) => {
                        let ctype = if rendition.starts_with('a') {
                            "audio/mp4"
                        } else {
                            "video/mp4"
                        };
                        (200, ctype, INIT_CACHE, b)
                    }
                    (Some(b), _) => (200, FRAGMENT_TYPE, SEGMENT_CACHE, b),
                    (None, _) => return text(404, "unknown segment\n", head),
                }
            }
            Route::Multivariant(name) | Route::Media(name) => {
                let Some(s) = self.streams.get(name) else {
                    return text(404, "unknown stream\n", head);
                };
                let pl = if matches!(route, Route::Media(_)) {
                    s.media_playlist_bytes()
                } else {
                    s.multivariant_playlist_bytes()
                };
                match pl {
                    Some(t) => (200, PLAYLIST_TYPE, PLAYLIST_CACHE, t),
                    None => return text(404, "no segment yet\n", head),
                }
            }
            Route::Dvr(_) | Route::RenditionDvr(..) => {
                return text(404, "DVR is off\n", head);
            }
            Route::Ssai(..) | Route::Ad(..) | Route::AdCmaf(..) => {
                // Per-session state: served by `handle_mut`.
                return text(404, "ad insertion is served by handle_mut\n", head);
            }
            Route::Vod(name, file) => return self.handle_l2v(name, file, req, now, head),
            Route::VodSegment(name, n) => return self.handle_vod_segment(name, n, req, head),
            Route::VodFragment(name, rendition, k) => {
                return self.handle_vod_fragment(name, rendition, k, req, head)
            }
            Route::Cue(_) => {
                return text(405, "cue requests are POST\n", head).with_header("allow", "POST");
            }
            Route::Recording(name) => {
                let max = self.opts.max_recording_body;
                let body = self
                    .recording(name)
                    .and_then(|r| r.to_bytes(&self.store, max));
                match body {
                    Ok(b) => (200, "video/mp4", "no-cache", b),
                    Err(e) if e.kind() == crate::ErrorKind::Limit => {
                        return text(413, "recording too large for one response\n", head)
                    }
                    Err(e) if e.kind() == crate::ErrorKind::Usage => {
                        tracing::debug!("recording of {name}: {e}");
                        return text(404, "no recording\n", head);
                    }
                    Err(e) => {
                        tracing::debug!("recording of {name}: {e}");
                        return text(500, "recording cannot be exported\n", head);
                    }
                }
            }
            Route::Segment(name, seq) => {
                let found = self.store.get(name, seq);
                match found {
                    Some(b) => (200, SEGMENT_TYPE, SEGMENT_CACHE, b),
                    None => return text(404, "unknown segment\n", head),
                }
            }
        };
        let r = cors(Response::new(status))
            .with_header("content-type", ctype)
            .with_header("content-length", body.len().to_string())
            .with_header("cache-control", cache);
        Response {
            body: if head { Bytes::new() } else { body },
            ..r
        }
    }

    /// DVR, start-over and the DVR MPD (see [`super::dvr`]): `None` for the other
    /// routes and for plain live requests.
    fn handle_dvr(
        &self,
        route: &Route<'_>,
        req: &Request,
        now: i64,
        head: bool,
    ) -> Option<Response> {
        let dvr_ms = self.opts.dvr_window_ms;
        let asked = match route {
            Route::Dvr(_) | Route::RenditionDvr(..) => Ok(Some(Window::Dvr)),
            Route::Media(_)
            | Route::RenditionMedia(..)
            | Route::Multivariant(_)
            | Route::CmafMultivariant(_) => dvr::parse_window(&req.path),
            Route::Mpd(_) if dvr_ms > 0 => Ok(None),
            _ => return None,
        };
        let window = match asked {
            Err(()) => return Some(text(400, "bad DVR query\n", head)),
            Ok(None) if !matches!(route, Route::Mpd(_)) => return None,
            Ok(w) => w,
        };
        if dvr_ms <= 0 {
            return Some(text(404, "DVR is off\n", head));
        }
        let query = req.path.split_once('?').map_or("", |(_, q)| q);
        let token = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(|t| format!("?token={t}"))
            .unwrap_or_default();
        let stream = |name: &str| self.streams.get(name);
        let target = self.opts.live.segmenter.target_duration.as_millis().max(1);
        let target_secs = ((target + 999) / 1000) as u64;
        let playlist = |name: &str, series: Series<'_>, map: Option<&str>, w: Window| {
            let p = DvrPlaylist {
                window: w,
                dvr_window_ms: dvr_ms,
                target_secs,
                // A stream no longer held is a recording: complete.
                ended: stream(name).is_none_or(LiveStream::is_ended),
                now,
                map,
                query: &token,
            };
            match dvr::media_playlist(&self.store, name, series, &p) {
                Ok(Some(t)) => {
                    super::protect::ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(t), head)
                }
                Ok(None) => text(404, "nothing stored in the DVR window\n", head),
                Err(e) => {
                    tracing::debug!("DVR playlist of {name}: {e}");
                    text(500, "DVR index unreadable\n", head)
                }
            }
        };
        let w = window.unwrap_or(Window::Dvr);
        Some(match *route {
            Route::Dvr(name) | Route::Media(name) => playlist(name, Series::Ts, None, w),
            Route::RenditionDvr(name, rendition) | Route::RenditionMedia(name, rendition) => {
                playlist(name, Series::Cmaf { rendition }, Some(INIT_SEGMENT), w)
            }
            Route::Multivariant(name) | Route::CmafMultivariant(name) => {
                let Some(s) = stream(name) else {
                    return Some(text(404, "unknown stream\n", head));
                };
                let live = if matches!(route, Route::Multivariant(_)) {
                    s.multivariant_playlist_bytes()
                } else {
                    s.cmaf_multivariant_playlist_bytes()
                };
                let Some(live) = live else {
                    return Some(text(404, "no segment yet\n", head));
                };
                let text_in = String::from_utf8_lossy(&live);
                let out = super::protect::with_suffix(&text_in, &w.media_query(query, now));
                super::protect::ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(out), head)
            }
            Route::Mpd(name) => {
                let model = stream(name).and_then(|s| s.mpd_model(now))?;
                match dvr::dvr_mpd(&self.store, name, model, dvr_ms).and_then(|m| m.write()) {
                    Ok(t) => super::protect::ok(MPD_TYPE, PLAYLIST_CACHE, Bytes::from(t), head),
                    Err(e) => {
                        tracing::debug!("DVR MPD of {name}: {e}");
                        text(500, "DVR index unreadable\n", head)
                    }
                }
            }
            _ => return None,
        })
    }

    /// `/streams.json`: `{"streams":[...]}`, streams not ended, sorted by name.
    fn streams_json(&self, now: i64) -> Bytes {
        let mut out = String::from("{\"streams\":[");
        let mut first = true;
        for name in self.stream_names() {
            let Some(s) = self.streams.get(name) else {
                continue;
            };
            if s.is_ended() {
                continue;
            }
            let st = s.stats(now);
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str("{\"name\":");
            json_string(&mut out, name);
            out.push_str(",\"codecs\":");
            json_string(&mut out, &st.codecs);
            match st.resolution {
                Some((w, h)) => {
                    let _ = write!(out, ",\"width\":{w},\"height\":{h}");
                }
                None => out.push_str(",\"width\":null,\"height\":null"),
            }
            match st.frame_rate {
                Some((n, d)) if d > 0 => {
                    let _ = write!(out, ",\"frame_rate\":{:.3}", n as f64 / d as f64);
                }
                _ => out.push_str(",\"frame_rate\":null"),
            }
            let _ = write!(
                out,
                ",\"bitrate\":{},\"uptime_s\":{},\"bytes\":{},\"segments\":{},\"publishing\":{}}}",
                st.bitrate,
                st.uptime_ms / 1000,
                st.bytes,
                st.segments,
                st.state == LiveState::Publishing
            );
            out.pop(); // the closing brace, to add the stored bytes and viewers
            let _ = write!(
                out,
                ",\"stored_bytes\":{},\"pending_bytes\":{}",
                self.store.stream_bytes(name),
                st.pending_bytes
            );
            match self.viewers(name, now) {
                Some(n) => {
                    let _ = write!(out, ",\"viewers\":{n}}}");
                }
                None => out.push_str(",\"viewers\":null}"),
            }
        }
        out.push_str("]}");
        Bytes::from(out)
    }
}

pub(super) fn cors(r: Response) -> Response {
    r.with_header("access-control-allow-origin", "*")
}

pub(super) fn text(status: u16, body: &'static str, head: bool) -> Response {
    let r = cors(Response::new(status))
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_header("content-length", body.len().to_string())
        .with_header("cache-control", "no-cache");
    Response {
        body: if head {
            Bytes::new()
        } else {
            Bytes::from_static(body.as_bytes())
        },
        ..r
    }
}

/// Appends `s` as a JSON string (RFC 8259 §7): quotes, backslashes and control
/// characters escaped.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Maps a request target to a route: `Err` for a malformed or dangerous path (400),
/// `Ok(None)` for a well-formed path that names nothing (404).
pub(super) fn route(target: &str) -> std::result::Result<Option<Route<'_>>, ()> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    // Origin-form only: one leading slash; no percent-encoding (names never need
    // it), no backslashes, no control characters.
    let rest = path.strip_prefix('/').ok_or(())?;
    if path
        .bytes()
        .any(|b| b == b'%' || b == b'\\' || b < 0x20 || b == 0x7f)
    {
        return Err(());
    }
    // No route contains "..": refuse it anywhere rather than reason about segments.
    if path.contains("..") {
        return Err(());
    }
    if rest.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > 8 {
        return Err(());
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(());
    }
    match parts.as_slice() {
        ["streams.json"] => Ok(Some(Route::Streams)),
        [time] if *time == &TIME_PATH[1..] => Ok(Some(Route::Time)),
        ["live", name, file] => {
            if !valid_stream_name(name) {
                return Err(());
            }
            Ok(match *file {
                MULTIVARIANT_PLAYLIST => Some(Route::Multivariant(name)),
                MEDIA_PLAYLIST => Some(Route::Media(name)),
                CMAF_PLAYLIST => Some(Route::CmafMultivariant(name)),
                MPD_NAME => Some(Route::Mpd(name)),
                DVR_PLAYLIST => Some(Route::Dvr(name)),
                RECORDING_NAME => Some(Route::Recording(name)),
                super::cue_api::CUE_NAME => Some(Route::Cue(name)),
                super::l2v::VOD_PLAYLIST | super::l2v::VOD_MPD => Some(Route::Vod(name, file)),
                _ => number(file, ".ts").map(|seq| Route::Segment(name, seq)),
            })
        }
        ["live", name, super::l2v::VOD_SEGMENTS, rendition, file] => {
            if !valid_stream_name(name) || !valid_stream_name(rendition) {
                return Err(());
            }
            Ok(number(file, ".m4s").map(|k| Route::VodFragment(name, rendition, k)))
        }
        ["live", name, "ssai", session, file] => {
            if !valid_stream_name(name) || !valid_stream_name(session) {
                return Err(());
            }
            Ok(Some(Route::Ssai(name, session, file)))
        }
        ["live", name, super::l2v::VOD_SEGMENTS, file] => {
            if !valid_stream_name(name) {
                return Err(());
            }
            Ok(number(file, ".ts").map(|n| Route::VodSegment(name, n)))
        }
        ["ads", creative, file] => {
            if !valid_stream_name(creative) {
                return Err(());
            }
            // `{n}.ts`: the name was checked above (no `..`, no escapes).
            Ok(Some(Route::Ad(creative, file)))
        }
        ["ads", creative, rendition, file] => {
            if !valid_stream_name(creative) || !valid_stream_name(rendition) {
                return Err(());
            }
            Ok(Some(Route::AdCmaf(creative, rendition, file)))
        }
        ["live", name, rendition, file] => {
            if !valid_stream_name(name) || !valid_stream_name(rendition) {
                return Err(());
            }
            Ok(match *file {
                MEDIA_PLAYLIST => Some(Route::RenditionMedia(name, rendition)),
                INIT_SEGMENT => Some(Route::Init(name, rendition)),
                DVR_PLAYLIST => Some(Route::RenditionDvr(name, rendition)),
                _ => number(file, ".m4s").map(|n| Route::Fragment(name, rendition, n)),
            })
        }
        _ => Ok(None),
    }
}

/// The number of `{number}{suffix}` (1 to 20 ASCII digits that fit a `u64`).
pub(super) fn number(file: &str, suffix: &str) -> Option<u64> {
    let digits = file.strip_suffix(suffix)?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::MemoryStore;
    use crate::ErrorKind;

    #[test]
    fn routes() {
        assert_eq!(route("/streams.json"), Ok(Some(Route::Streams)));
        assert_eq!(route("/streams.json?x=1"), Ok(Some(Route::Streams)));
        assert_eq!(
            route("/live/a-b_9/index.m3u8?token=t"),
            Ok(Some(Route::Multivariant("a-b_9")))
        );
        assert_eq!(route("/live/cam/media.m3u8"), Ok(Some(Route::Media("cam"))));
        assert_eq!(
            route("/live/cam/42.ts"),
            Ok(Some(Route::Segment("cam", 42)))
        );
        assert_eq!(route("/live/cam/x.ts"), Ok(None));
        assert_eq!(route("/live/cam/.ts"), Ok(None));
        assert_eq!(route("/live/cam/99999999999999999999999.ts"), Ok(None));
        assert_eq!(route("/live/cam/other.m3u8"), Ok(None));
        assert_eq!(route("/time"), Ok(Some(Route::Time)));
        assert_eq!(route("/time?x"), Ok(Some(Route::Time)));
        assert_eq!(
            route("/live/cam/cmaf.m3u8"),
            Ok(Some(Route::CmafMultivariant("cam")))
        );
        assert_eq!(route("/live/cam/manifest.mpd"), Ok(Some(Route::Mpd("cam"))));
        assert_eq!(
            route("/live/cam/v1/media.m3u8"),
            Ok(Some(Route::RenditionMedia("cam", "v1")))
        );
        assert_eq!(
            route("/live/cam/a2/init.mp4"),
            Ok(Some(Route::Init("cam", "a2")))
        );
        assert_eq!(
            route("/live/cam/v1/17.m4s?t=1"),
            Ok(Some(Route::Fragment("cam", "v1", 17)))
        );
        assert_eq!(route("/live/cam/v1/17.ts"), Ok(None));
        assert_eq!(route("/live/cam/v1/x.m4s"), Ok(None));
        assert_eq!(route("/live/cam/v1/index.m3u8"), Ok(None));
        assert_eq!(route("/live/cam/17.m4s"), Ok(None));
        assert_eq!(route("/live/cam/v1/a/1.m4s"), Ok(None));
        assert_eq!(route("/"), Ok(None));
        assert_eq!(route("/index.html"), Ok(None));
        for bad in [
            "/live/../x/index.m3u8",
            "/live/cam/../../etc/passwd",
            "/live/%2e%2e/cam/index.m3u8",
            "/live/%2E%2E/cam/index.m3u8",
            "/live/cam/..%2f1.ts",
            "/live\\cam\\1.ts",
            "/live/cam\\..\\1.ts",
            "//etc/passwd",
            "etc/passwd",
            "/live/./cam/1.ts",
            "/live/cam//1.ts",
            "/live/ca.m/1.ts",
            "/live/ca m/1.ts",
            "/live/cam/../v1/init.mp4",
            "/live/cam/v.1/init.mp4",
            "/live/cam/v1/..",
            "/live/cam/%76%31/1.m4s",
            "/live/cam/v1//1.m4s",
            "/live/cam/./v1/1.m4s",
            "/live/cam/v1\\1.m4s",
        ] {
            assert_eq!(route(bad), Err(()), "{bad}");
        }
        let long = format!("/live/{}/index.m3u8", "a".repeat(65));
        assert_eq!(route(&long), Err(()));
        let ok = format!("/live/{}/index.m3u8", "a".repeat(64));
        assert!(matches!(route(&ok), Ok(Some(Route::Multivariant(_)))));
    }

    /// `secs` seconds of AAC frames (every one a sync point) from media time 0.
    fn audio(origin: &mut Origin<MemoryStore>, name: &str, secs: i64, clock: i64) {
        use crate::bitstream::aac::build_asc;
        use crate::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, TrackInfo};
        use crate::time::{Timescale, Timestamp};
        let scale = Timescale::new(48_000).unwrap();
        let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
        let track = TrackInfo::new(2, scale, CodecConfig::Aac(aac));
        origin
            .push(name, Event::TrackAdded(track).into(), clock)
            .unwrap();
        for i in 0..secs * 48_000 / 1024 {
            let t = Timestamp::new(i * 1024, scale);
            let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
                .with_flags(FrameFlags::KEYFRAME);
            origin.push(name, f.into(), clock + t.as_millis()).unwrap();
        }
    }

    #[test]
    fn ended_streams_linger_then_go_and_numbering_continues() {
        let mut opts = OriginOptions::default();
        opts.live.first_segment = crate::origin::FirstSegment::Full;
        let mut o = Origin::new(MemoryStore::default(), opts);
        assert_eq!(
            o.publish("bad/name", 0).unwrap_err().kind(),
            ErrorKind::Usage
        );
        assert_eq!(
            o.push("cam", Item::Event(crate::media::Event::EndOfStream), 0)
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
        o.publish("cam", 0).unwrap();
        assert_eq!(o.publish("cam", 0).unwrap_err().kind(), ErrorKind::Usage);
        audio(&mut o, "cam", 9, 0);
        o.unpublish("cam", 9_000).unwrap();
        let next = o.stream("cam").unwrap().next_sequence();
        assert_eq!(next, 5); // 4 x 2 s + the flushed rest
        assert_eq!(o.store().list("cam"), [0, 1, 2, 3, 4]);
        o.tick(38_999);
        assert!(!o.stream("cam").unwrap().is_ended());
        o.tick(39_000);
        assert!(o.stream("cam").unwrap().is_ended());
        // Lingering: the final playlist and segments are still served.
        let pl = o.handle(&Request::get("/live/cam/media.m3u8"), 40_000);
        assert!(pl.body.ends_with(b"#EXT-X-ENDLIST\n"));
        assert_eq!(
            o.handle(&Request::get("/live/cam/4.ts"), 40_000).status,
            200
        );
        // The same as CMAF: audio rendition `a2`, fragments numbered like the TS
        // segments, the MPD says the stream is over.
        let init = o.handle(&Request::get("/live/cam/a2/init.mp4"), 40_000);
        assert_eq!(init.status, 200);
        assert_eq!(init.header("content-type"), Some("audio/mp4"));
        assert_eq!(init.header("cache-control"), Some(INIT_CACHE));
        assert_eq!(&init.body[4..8], b"ftyp");
        let frag = o.handle(&Request::get("/live/cam/a2/4.m4s"), 40_000);
        assert_eq!(frag.status, 200);
        assert_eq!(frag.header("content-type"), Some(FRAGMENT_TYPE));
        assert_eq!(frag.header("cache-control"), Some(SEGMENT_CACHE));
        assert_eq!(&frag.body[4..8], b"styp");
        let head = o.handle(&Request::head("/live/cam/a2/4.m4s"), 40_000);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length"),
            Some(frag.body.len().to_string().as_str())
        );
        assert_eq!(
            o.handle(&Request::get("/live/cam/a2/5.m4s"), 40_000).status,
            404
        );
        assert_eq!(
            o.handle(&Request::get("/live/cam/v1/init.mp4"), 40_000)
                .status,
            404
        );
        let hls = o.handle(&Request::get("/live/cam/a2/media.m3u8"), 40_000);
        assert_eq!(hls.header("content-type"), Some(PLAYLIST_TYPE));
        assert!(hls.body.ends_with(b"4.m4s\n#EXT-X-ENDLIST\n"));
        let mv = o.handle(&Request::get("/live/cam/cmaf.m3u8"), 40_000);
        assert!(std::str::from_utf8(&mv.body)
            .unwrap()
            .contains("a2/media.m3u8"));
        let mpd = o.handle(&Request::get("/live/cam/manifest.mpd"), 40_000);
        assert_eq!(mpd.header("content-type"), Some(MPD_TYPE));
        assert_eq!(mpd.header("cache-control"), Some(PLAYLIST_CACHE));
        assert_eq!(mpd.header("access-control-allow-origin"), Some("*"));
        let text = std::str::from_utf8(&mpd.body).unwrap();
        assert!(text.contains(r#"type="dynamic""#), "{text}");
        assert!(!text.contains("minimumUpdatePeriod"), "{text}");
        assert!(
            text.contains("mediaPresentationDuration=\"PT8.982S\""),
            "{text}"
        );
        o.tick(99_000);
        assert!(o.stream("cam").is_none());
        assert!(o.store().list("cam").is_empty());
        assert_eq!(
            o.handle(&Request::get("/live/cam/4.ts"), 99_000).status,
            404
        );
        // The name comes back: numbering continues, so cached URLs stay valid.
        o.publish("cam", 100_000).unwrap();
        assert_eq!(o.stream("cam").unwrap().next_sequence(), next);
        audio(&mut o, "cam", 3, 100_000);
        assert_eq!(o.store().list("cam"), [5]);
        assert!(o
            .store()
            .get_cmaf(
                "cam",
                CmafKey::Fragment {
                    rendition: "a2",
                    number: 5
                }
            )
            .is_some());
        let pl = o.handle(&Request::get("/live/cam/media.m3u8"), 103_000);
        let text = std::str::from_utf8(&pl.body).unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:5\n"), "{text}");
        assert!(!text.contains("DISCONTINUITY"), "{text}");
    }

    #[test]
    fn dvr_start_over_and_the_dvr_mpd_come_from_the_index() {
        use crate::origin::MemoryStoreOptions;
        let base = 1_700_000_000_000i64;
        let mut opts = OriginOptions::default();
        opts.live.first_segment = crate::origin::FirstSegment::Full;
        let mut off = Origin::new(MemoryStore::default(), opts.clone());
        off.publish("cam", base).unwrap();
        audio(&mut off, "cam", 5, base);
        assert_eq!(
            off.handle(&Request::get("/live/cam/dvr.m3u8"), base).status,
            404
        );
        let live = off.handle(&Request::get("/live/cam/media.m3u8?start=1"), base);
        assert_eq!(live.status, 404);

        opts.dvr_window_ms = 20_000;
        let store = MemoryStoreOptions {
            max_segments_per_stream: 100,
            ..Default::default()
        };
        let mut o = Origin::new(MemoryStore::new(store), opts);
        o.publish("cam", base).unwrap();
        audio(&mut o, "cam", 30, base);
        let now = base + 30_000;
        let get = |o: &Origin<MemoryStore>, path: &str| {
            let r = o.handle(&Request::get(path), now);
            (r.status, String::from_utf8(r.body.to_vec()).unwrap())
        };
        let parse = |t: &str| m3u8_rs::parse_media_playlist_res(t.as_bytes()).unwrap();
        // Live: the window of 6. DVR: the 20 s before the newest end (28 s).
        let (st, live) = get(&o, "/live/cam/media.m3u8");
        assert_eq!(st, 200);
        assert_eq!(parse(&live).segments.len(), 6);
        let (st, dvr) = get(&o, "/live/cam/dvr.m3u8?token=abc");
        assert_eq!(st, 200, "{dvr}");
        let p = parse(&dvr);
        assert_eq!(p.media_sequence, 4, "{dvr}");
        assert_eq!(p.segments.len(), 10, "{dvr}");
        assert_eq!(p.segments[0].uri, "4.ts?token=abc");
        assert!(!p.end_list);
        assert!(p.playlist_type.is_none());
        assert_eq!(
            get(&o, "/live/cam/media.m3u8?dvr").1,
            get(&o, "/live/cam/dvr.m3u8").1
        );
        // Start-over from 10.5 s: the segment playing then (10..12 s) to the edge.
        let (_, so) = get(&o, "/live/cam/media.m3u8?start=1700000010.5");
        let p = parse(&so);
        assert_eq!(p.media_sequence, 5, "{so}");
        assert_eq!(p.segments.len(), 9);
        assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Event));
        assert!(so.contains("#EXT-X-START:TIME-OFFSET=0.000\n"), "{so}");
        assert!(!dvr.contains("EXT-X-START"), "{dvr}");
        assert!(p.segments[0].program_date_time.is_some());
        // Before the window: clamped to it.
        let (_, early) = get(&o, "/live/cam/media.m3u8?start=1600000000");
        assert_eq!(parse(&early).media_sequence, 4);
        // An offset: 9 s before now (21 s) is in segment 10.
        let (_, back) = get(&o, "/live/cam/media.m3u8?offset=-9");
        assert_eq!(parse(&back).media_sequence, 10, "{back}");
        // A multivariant hands the absolute start to its media playlists.
        let (_, mv) = get(&o, "/live/cam/index.m3u8?offset=-9&token=t");
        assert!(mv.contains("media.m3u8?start=1700000021&token=t"), "{mv}");
        let (_, cmv) = get(&o, "/live/cam/cmaf.m3u8?dvr");
        assert!(cmv.contains("a2/media.m3u8?dvr"), "{cmv}");
        // CMAF renditions, numbered like the TS segments.
        let (st, a2) = get(&o, "/live/cam/a2/dvr.m3u8");
        assert_eq!(st, 200, "{a2}");
        let p = parse(&a2);
        assert_eq!(p.media_sequence, 4);
        assert_eq!(p.segments[0].uri, "4.m4s");
        assert!(a2.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{a2}");
        // The MPD's timeline covers the DVR window, not only the live one.
        let (st, mpd) = get(&o, "/live/cam/manifest.mpd");
        assert_eq!(st, 200);
        assert!(mpd.contains("timeShiftBufferDepth=\"PT20"), "{mpd}");
        assert!(mpd.contains("startNumber=\"4\""), "{mpd}");
        for bad in ["?start=x", "?offset=5", "?dvr&start=1"] {
            let (st, _) = get(&o, &format!("/live/cam/media.m3u8{bad}"));
            assert_eq!(st, 400, "{bad}");
        }
        // Ended: a recording, VOD.
        o.unpublish("cam", now).unwrap();
        o.tick(now + 60_000);
        let (_, vod) = get(&o, "/live/cam/dvr.m3u8");
        let p = parse(&vod);
        assert!(p.end_list, "{vod}");
        assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    }

    #[test]
    fn restore_takes_up_stored_streams_after_a_restart() {
        use crate::origin::MemoryStoreOptions;
        let base = 1_700_000_000_000i64;
        let mut opts = OriginOptions::default();
        opts.live.first_segment = crate::origin::FirstSegment::Full;
        opts.dvr_window_ms = 3_600_000;
        let store = MemoryStoreOptions {
            max_segments_per_stream: 100,
            ..Default::default()
        };
        let mut o = Origin::new(MemoryStore::new(store), opts.clone());
        o.publish("cam", base).unwrap();
        audio(&mut o, "cam", 20, base);
        let now = base + 20_000;
        let before = o.handle(&Request::get("/live/cam/media.m3u8"), now).body;
        let before_mv = o.handle(&Request::get("/live/cam/index.m3u8"), now).body;
        let before = String::from_utf8(before.to_vec()).unwrap();
        let listed: Vec<(String, Bytes)> = before
            .lines()
            .filter(|l| l.ends_with(".ts"))
            .map(|l| {
                let b = o.handle(&Request::get(format!("/live/cam/{l}")), now).body;
                (l.to_string(), b)
            })
            .collect();
        assert_eq!(listed.len(), 6);
        // The process dies: only the store is left.
        let mut o2 = Origin::new(o.into_store(), opts);
        assert_eq!(o2.restore(now + 5_000), ["cam"]);
        assert!(o2.restore(now + 5_000).is_empty(), "taken up once");
        let after = o2.handle(&Request::get("/live/cam/media.m3u8"), now + 5_000);
        assert_eq!(String::from_utf8(after.body.to_vec()).unwrap(), before);
        let mv = o2.handle(&Request::get("/live/cam/index.m3u8"), now + 5_000);
        assert_eq!(mv.status, 200);
        assert!(
            std::str::from_utf8(&mv.body)
                .unwrap()
                .contains("CODECS=\"mp4a.40.2\""),
            "{:?} vs {:?}",
            mv.body,
            before_mv
        );
        for (uri, bytes) in &listed {
            let r = o2.handle(&Request::get(format!("/live/cam/{uri}")), now + 5_000);
            assert_eq!(&r.body, bytes, "{uri}");
        }
        // The publisher comes back: numbering continues, with a discontinuity.
        let last: u64 = listed
            .last()
            .unwrap()
            .0
            .trim_end_matches(".ts")
            .parse()
            .unwrap();
        o2.publish("cam", now + 6_000).unwrap();
        audio(&mut o2, "cam", 6, now + 6_000);
        let pl = o2.handle(&Request::get("/live/cam/media.m3u8"), now + 12_000);
        let text = String::from_utf8(pl.body.to_vec()).unwrap();
        let p = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        let next = p
            .segments
            .iter()
            .position(|s| s.uri == format!("{}.ts", last + 1))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(p.segments[next].discontinuity, "{text}");
        assert!(
            p.segments[..next].iter().all(|s| !s.discontinuity),
            "{text}"
        );
        assert!(
            p.segments[next + 1..].iter().all(|s| !s.discontinuity),
            "{text}"
        );
        // The DVR playlist spans both, the same discontinuity in it.
        let dvr = o2.handle(&Request::get("/live/cam/dvr.m3u8"), now + 12_000);
        let d = m3u8_rs::parse_media_playlist_res(&dvr.body).unwrap();
        assert_eq!(d.media_sequence, 0);
        let at = d
            .segments
            .iter()
            .position(|s| s.uri == format!("{}.ts", last + 1))
            .unwrap();
        assert!(d.segments[at].discontinuity);
        assert_eq!(
            d.segments.iter().filter(|s| s.discontinuity).count(),
            1,
            "{}",
            String::from_utf8_lossy(&dvr.body)
        );
    }

    /// Random request targets over a hostile alphabet: never a panic, only 200 for
    /// the exact routes of the one stream, 400 whenever `..`, `%` or `\\` appears.
    #[test]
    fn random_paths_are_safe() {
        let mut o = Origin::new(MemoryStore::default(), OriginOptions::default());
        o.publish("cam", 0).unwrap();
        audio(&mut o, "cam", 5, 0);
        let alphabet: &[&str] = &[
            "/",
            "/",
            "/",
            ".",
            "..",
            "%",
            "%2e",
            "%2f",
            "\\",
            "live",
            "cam",
            "0",
            "1",
            ".ts",
            ".m3u8",
            "index",
            "media",
            "streams.json",
            "time",
            "cmaf",
            "manifest.mpd",
            "v1",
            "a2",
            "init.mp4",
            ".m4s",
            "/live/cam/",
            "?",
            "#",
            "a",
            "-",
            "_",
            "\0",
            " ",
            "é",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut path = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 9) {
                let r = (x >> (k * 5)) as usize % alphabet.len();
                path.push_str(alphabet[r]);
            }
            if x & 1 == 0 {
                path.insert(0, '/');
            }
            for req in [Request::get(path.clone()), Request::head(path.clone())] {
                let r = o.handle(&req, 10_000);
                assert!(
                    matches!(r.status, 200 | 400 | 404),
                    "{path:?}: {}",
                    r.status
                );
                let clean = path.split(['?', '#']).next().unwrap();
                if r.status == 200 {
                    let numbered = |prefix: &str, suffix: &str| {
                        clean
                            .strip_prefix(prefix)
                            .and_then(|c| c.strip_suffix(suffix))
                            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    };
                    assert!(
                        [
                            "/streams.json",
                            "/time",
                            "/live/cam/index.m3u8",
                            "/live/cam/media.m3u8",
                            "/live/cam/cmaf.m3u8",
                            "/live/cam/manifest.mpd",
                            "/live/cam/a2/media.m3u8",
                            "/live/cam/a2/init.mp4",
                        ]
                        .contains(&clean)
                            || numbered("/live/cam/", ".ts")
                            || numbered("/live/cam/a2/", ".m4s"),
                        "{path:?}"
                    );
                }
                if clean.contains("..") || clean.contains('%') || clean.contains('\\') {
                    assert_eq!(r.status, 400, "{path:?}");
                }
                if req.method == Method::Head {
                    assert!(r.body.is_empty());
                } else {
                    let len = r.body.len().to_string();
                    assert_eq!(r.header("content-length"), Some(len.as_str()));
                }
            }
        }
    }

    #[test]
    fn viewers_are_distinct_recent_playlist_clients() {
        let mut o = Origin::new(MemoryStore::default(), OriginOptions::default());
        o.publish("cam", 0).unwrap();
        audio(&mut o, "cam", 3, 0);
        let json = |o: &Origin<MemoryStore>, now| {
            String::from_utf8(o.handle(&Request::get("/streams.json"), now).body.to_vec()).unwrap()
        };
        let stored = o.store().stream_bytes("cam");
        assert!(stored > 0);
        assert!(json(&o, 3000).contains(&format!("\"stored_bytes\":{stored},")));
        let pending = o.stream("cam").unwrap().stats(3000).pending_bytes;
        assert!(json(&o, 3000).contains(&format!("\"pending_bytes\":{pending},")));
        // Not counting until the host asks for it.
        assert!(
            json(&o, 3000).contains("\"viewers\":null"),
            "{}",
            json(&o, 3000)
        );
        assert_eq!(o.viewers("cam", 3000), None);
        let ask = |o: &mut Origin<MemoryStore>, path: &str, client: &str, now| {
            o.handle_counting(&Request::get(path).with_client(client), now)
                .status
        };
        assert_eq!(ask(&mut o, "/live/cam/index.m3u8", "10.0.0.1", 3000), 200);
        assert_eq!(ask(&mut o, "/live/cam/media.m3u8", "10.0.0.1", 3100), 200);
        assert_eq!(ask(&mut o, "/live/cam/media.m3u8", "10.0.0.2", 4000), 200);
        // Segments, unknown streams and anonymous requests do not count.
        assert_eq!(ask(&mut o, "/live/cam/0.ts", "10.0.0.3", 4000), 200);
        assert_eq!(ask(&mut o, "/live/nope/media.m3u8", "10.0.0.4", 4000), 404);
        o.handle_counting(&Request::get("/live/cam/media.m3u8"), 4000);
        assert_eq!(o.viewers("cam", 4000), Some(2));
        // A player of another protocol counts through `watching`; unknown streams not.
        o.watching("cam", "rtmp:10.0.0.9:5000", 4000);
        o.watching("nope", "rtmp:10.0.0.9:5000", 4000);
        assert_eq!(o.viewers("cam", 4000), Some(3));
        assert_eq!(o.viewers("nope", 4000), Some(0));
        o.watching("cam", "rtmp:10.0.0.9:5000", 13_100);
        assert_eq!(o.viewers("cam", 14_001), Some(1));
        assert!(
            json(&o, 4000).contains("\"viewers\":3}"),
            "{}",
            json(&o, 4000)
        );
        // 10 s after its last playlist request a viewer is gone.
        assert_eq!(o.viewers("cam", 13_100), Some(3));
        assert_eq!(o.viewers("cam", 13_101), Some(2));
        assert_eq!(o.viewers("cam", 14_001), Some(1));
        o.tick(34_001);
        assert_eq!(o.viewers("cam", 34_001), Some(0));
        assert!(o.viewers.as_ref().unwrap().is_empty());
    }

    #[test]
    fn time_is_iso8601_utc_with_millis() {
        let o = Origin::new(MemoryStore::default(), OriginOptions::default());
        let time = |now: i64| {
            let r = o.handle(&Request::get("/time"), now);
            (r.status, String::from_utf8(r.body.to_vec()).unwrap())
        };
        let r = o.handle(&Request::get("/time"), 1_700_000_000_123);
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            time(1_700_000_000_123),
            (200, "2023-11-14T22:13:20.123Z".into())
        );
        // Leap day, end of a century year, the epoch, last instant, out of range.
        assert_eq!(time(951_782_400_000).1, "2000-02-29T00:00:00.000Z");
        assert_eq!(time(4_107_542_399_999).1, "2100-02-28T23:59:59.999Z");
        assert_eq!(time(0).1, "1970-01-01T00:00:00.000Z");
        assert_eq!(time(253_402_300_799_999).1, "9999-12-31T23:59:59.999Z");
        assert_eq!(time(253_402_300_800_000).0, 500);
    }

    #[test]
    fn stream_limit() {
        let opts = OriginOptions {
            max_streams: 1,
            ..OriginOptions::default()
        };
        let mut o = Origin::new(MemoryStore::default(), opts);
        o.publish("a", 0).unwrap();
        assert_eq!(o.publish("b", 0).unwrap_err().kind(), ErrorKind::Limit);
    }

    #[test]
    fn json_escapes() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn names() {
        assert!(valid_stream_name("Cam_1-x"));
        assert!(!valid_stream_name(""));
        assert!(!valid_stream_name("a/b"));
        assert!(!valid_stream_name("é"));
    }
}
