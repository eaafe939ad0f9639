//! [`Origin`]: live streams and their segment store behind one `handle(request, now)`.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;

use super::http::{Method, Request, Response};
use super::live::{
    LiveState, LiveStream, LiveStreamOptions, MEDIA_PLAYLIST, MULTIVARIANT_PLAYLIST,
};
use super::live_cmaf::TIME_PATH;
use super::protect::Protection;
use super::store::{CmafKey, SegmentStore};
use crate::error::{Error, Result};
use crate::media::Item;
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
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            live: LiveStreamOptions::default(),
            max_streams: 1000,
            linger_ms: 60_000,
            viewer_window_ms: 10_000,
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
}

impl<'a> Route<'a> {
    /// The stream of a manifest route (what a viewer reloads).
    fn manifest_of(&self) -> Option<&'a str> {
        match *self {
            Route::Multivariant(n)
            | Route::Media(n)
            | Route::CmafMultivariant(n)
            | Route::Mpd(n)
            | Route::RenditionMedia(n, _) => Some(n),
            _ => None,
        }
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
}

impl<S: SegmentStore> Origin<S> {
    /// An origin serving segments from `store`.
    pub fn new(store: S, opts: OriginOptions) -> Self {
        Origin {
            opts,
            store,
            streams: HashMap::new(),
            retired: HashMap::new(),
            viewers: None,
            protection: None,
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
            self.store.remove_stream(name);
            self.streams.insert(name.to_string(), fresh);
            return Ok(());
        }
        if self.streams.len() >= self.opts.max_streams {
            return Err(Error::limit("origin: too many streams"));
        }
        let mut opts = self.opts.live.clone();
        opts.first_sequence = self.retired.remove(name).unwrap_or(0);
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
        let stored = Self::store_ready(&mut self.store, name, s);
        r.and(stored)
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
        let stored = Self::store_ready(&mut self.store, name, s);
        r.and(stored)
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
            self.store.remove_stream(&name);
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

    fn store_ready(store: &mut S, name: &str, s: &mut LiveStream) -> Result<()> {
        let mut first_err = None;
        while let Some(seg) = s.poll_segment() {
            if let Err(e) = store.put(name, seg.sequence, seg.data) {
                first_err.get_or_insert(e);
            }
            for f in seg.fragments {
                let rendition = f.rendition.as_str();
                let mut r = Ok(());
                if let Some(init) = f.init {
                    r = store.put_cmaf(name, CmafKey::Init { rendition }, init);
                }
                let key = CmafKey::Fragment {
                    rendition,
                    number: f.number,
                };
                if let Err(e) = r.and_then(|()| store.put_cmaf(name, key, f.data)) {
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
                let found = self
                    .streams
                    .get(name)
                    .and_then(|_| self.store.get_cmaf(name, key));
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
            Route::Segment(name, seq) => {
                let found = self
                    .streams
                    .get(name)
                    .and_then(|_| self.store.get(name, seq));
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

fn cors(r: Response) -> Response {
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
                _ => number(file, ".ts").map(|seq| Route::Segment(name, seq)),
            })
        }
        ["live", name, rendition, file] => {
            if !valid_stream_name(name) || !valid_stream_name(rendition) {
                return Err(());
            }
            Ok(match *file {
                MEDIA_PLAYLIST => Some(Route::RenditionMedia(name, rendition)),
                INIT_SEGMENT => Some(Route::Init(name, rendition)),
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
