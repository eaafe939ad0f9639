//! Server-side ad insertion in the origin: per-viewer-session playlists in which the
//! content segments of an ad break are replaced by creatives' segments (the rules are
//! those of [`crate::package::ssai`]).
//!
//! Routes, answered by [`Origin::handle_mut`] (`GET` and `HEAD`):
//! * `/live/{stream}/ssai/{session}/index.m3u8`: the stream's multivariant playlist (one
//!   variant, `media.m3u8`, with the stream's `CODECS` and `BANDWIDTH`);
//! * `/live/{stream}/ssai/{session}/media.m3u8`: the session's media playlist (content
//!   segments as `../../{seq}.ts`, ad segments as `/ads/{creative}/{n}.ts`);
//! * `/live/{stream}/ssai/{session}/manifest.mpd`: the session's DASH MPD, the content's
//!   live MPD with each substituted break as ad Periods (see
//!   [`crate::package::ssai::DashSessions`]; content URLs as `../../{rendition}/...`);
//! * `/ads/{creative}/{n}.ts`: segment `n` of a creative added with
//!   [`Origin::add_creative`] (`video/mp2t`, immutable);
//! * `/ads/{creative}/{rendition}/init.mp4` and `/ads/{creative}/{rendition}/{n}.m4s`:
//!   its CMAF form ([`crate::package::ssai::CreativeCmaf`], made by
//!   [`Creative::from_mp4`]), for the DASH sessions and the live-to-VOD MPD.
//!
//! Sessions are `[A-Za-z0-9_-]{1,64}`: the host hands each viewer its own (a player
//! URL per viewer). Unknown streams and creatives get 404; without a decider the session
//! playlist is the content playlist (same numbers, tags and segments).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::http::{Method, Request, Response};
use super::live::{MEDIA_PLAYLIST, MULTIVARIANT_PLAYLIST};
use super::protect::ok;
use super::router::{
    number, text, FRAGMENT_TYPE, MPD_NAME, MPD_TYPE, PLAYLIST_CACHE, PLAYLIST_TYPE, SEGMENT_CACHE,
    SEGMENT_TYPE,
};
use super::store::Series;
use super::{Origin, SegmentStore};
use crate::error::{Error, Result};
use crate::package::ads::AdBreak;
use crate::package::cmaf::INIT_SEGMENT;
use crate::package::ssai::{
    passthrough_playlist, valid_creative_id, AdDecider, AdSessions, ContentSegment,
    ContentTimeline, Creative, DashSessions, DashView, LiveView, SsaiOptions,
};
use crate::time::Timestamp;

/// Most creatives one origin serves (slate included).
const MAX_CREATIVES: usize = 10_000;
/// Most index records read back from the store to rebuild a stream's timeline.
const MAX_BACKFILL: u64 = 1024;

/// A stream's content timeline and its viewer sessions.
#[derive(Debug)]
struct StreamAds {
    timeline: ContentTimeline,
    sessions: AdSessions,
    dash: DashSessions,
}

impl SsaiState {
    /// Whether `c` is the slate (it fills time; it does not replace a break).
    pub(super) fn is_slate(&self, c: &Creative) -> bool {
        self.slate.as_ref().is_some_and(|s| s.id == c.id)
    }
}

impl StreamAds {
    fn new(opts: &SsaiOptions) -> Self {
        StreamAds {
            timeline: ContentTimeline::default(),
            sessions: AdSessions::new(opts.clone()),
            dash: DashSessions::new(opts.clone()),
        }
    }
}

/// The origin's ad-insertion state: the host's decider, the creatives and the viewer
/// sessions' plans.
#[derive(Default)]
pub(crate) struct SsaiState {
    decider: Option<Box<dyn AdDecider>>,
    pub(super) creatives: HashMap<String, Arc<Creative>>,
    slate: Option<Arc<Creative>>,
    opts: SsaiOptions,
    streams: HashMap<String, StreamAds>,
}

impl fmt::Debug for SsaiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsaiState")
            .field("decider", &self.decider.as_ref().map(|_| "AdDecider"))
            .field("creatives", &self.creatives.len())
            .field("slate", &self.slate.as_ref().map(|s| s.id.as_str()))
            .field("opts", &self.opts)
            .field("streams", &self.streams)
            .finish()
    }
}

/// The host's decider, keeping only creatives the origin serves.
struct Served<'a> {
    inner: &'a mut dyn AdDecider,
    creatives: &'a HashMap<String, Arc<Creative>>,
}

impl AdDecider for Served<'_> {
    fn decide(&mut self, brk: &AdBreak, session: &str) -> Vec<Arc<Creative>> {
        let mut chosen = self.inner.decide(brk, session);
        chosen.retain(|c| {
            let served = self
                .creatives
                .get(&c.id)
                .is_some_and(|r| Arc::ptr_eq(r, c) || **r == **c);
            if !served {
                tracing::debug!("ad insertion: creative {} was not added: skipped", c.id);
            }
            served
        });
        chosen
    }
}

impl<S: SegmentStore> Origin<S> {
    /// Turns server-side ad insertion on with the host's `decider` (see
    /// [`crate::package::ssai`]): `/live/{stream}/ssai/{session}/media.m3u8` then
    /// substitutes the breaks of `stream` with the creatives the decider picks for
    /// `session` (among those added with [`add_creative`](Self::add_creative); others
    /// are skipped). Plans already made keep their creatives.
    pub fn set_ad_decider(&mut self, decider: Box<dyn AdDecider>) {
        self.ssai.decider = Some(decider);
    }

    /// Turns server-side ad insertion off: session playlists are the content's again
    /// (sessions and their plans are forgotten). Returns the decider.
    pub fn clear_ad_decider(&mut self) -> Option<Box<dyn AdDecider>> {
        self.ssai.streams.clear();
        self.ssai.decider.take()
    }

    /// Serves `creative` at `/ads/{id}/{n}.ts`, for deciders to pick. Segment URLs are
    /// cached as immutable, so an id names one creative for the origin's life.
    ///
    /// Errors: [`Error::usage`] for an invalid id or one already added (with other
    /// content); [`Error::limit`] beyond 10 000 creatives.
    pub fn add_creative(&mut self, creative: Arc<Creative>) -> Result<()> {
        if !valid_creative_id(&creative.id) {
            return Err(Error::usage("ad creative: id must be [A-Za-z0-9_-]{1,64}"));
        }
        match self.ssai.creatives.get(&creative.id) {
            Some(c) if Arc::ptr_eq(c, &creative) || **c == *creative => return Ok(()),
            Some(_) => {
                return Err(Error::usage(
                    "ad creative: another creative has this id already",
                ))
            }
            None => {}
        }
        if self.ssai.creatives.len() >= MAX_CREATIVES {
            return Err(Error::limit("ad creative: too many creatives"));
        }
        self.ssai.creatives.insert(creative.id.clone(), creative);
        Ok(())
    }

    /// The creative served under `id`, if any.
    pub fn creative(&self, id: &str) -> Option<&Arc<Creative>> {
        self.ssai.creatives.get(id)
    }

    /// Sets (or with `None` removes) the slate: what fills the rest of a break after
    /// its ads, repeated whole segments at a time, instead of the content's own
    /// segments. It is added as a creative (served at `/ads/{id}/{n}.ts`). Plans made
    /// before keep the fill they had.
    ///
    /// Errors: as [`add_creative`](Self::add_creative).
    pub fn set_slate(&mut self, slate: Option<Arc<Creative>>) -> Result<()> {
        if let Some(s) = &slate {
            self.add_creative(Arc::clone(s))?;
        }
        self.ssai.slate = slate;
        Ok(())
    }

    /// Sets the options of session tables made from now on (for streams first served
    /// afterwards). The URI prefixes must lead to this origin's routes (or to a CDN in
    /// front of them).
    pub fn set_ssai_options(&mut self, opts: SsaiOptions) {
        self.ssai.opts = opts;
    }

    /// Viewer sessions remembered for `stream`.
    pub fn ad_sessions(&self, stream: &str) -> usize {
        self.ssai
            .streams
            .get(stream)
            .map_or(0, |s| s.sessions.len())
    }

    pub(super) fn handle_ssai(
        &mut self,
        name: &str,
        session: &str,
        file: &str,
        req: &Request,
        now: i64,
    ) -> Response {
        let head = req.method == Method::Head;
        // Sessions of streams that are gone go with them.
        let streams = &self.streams;
        self.ssai.streams.retain(|n, _| streams.contains_key(n));
        let Some(stream) = self.streams.get(name) else {
            return text(404, "unknown stream\n", head);
        };
        match file {
            MULTIVARIANT_PLAYLIST => {
                return match stream.multivariant_playlist_bytes() {
                    Some(t) => ok(PLAYLIST_TYPE, PLAYLIST_CACHE, t, head),
                    None => text(404, "no segment yet\n", head),
                };
            }
            MEDIA_PLAYLIST => {}
            MPD_NAME => return self.ssai_mpd(name, session, head, now),
            _ => return text(404, "not found\n", head),
        }
        let content = stream.playlist();
        if content.segments.is_empty() {
            return text(404, "no segment yet\n", head);
        }
        let playlist = match self.ssai.decider.as_mut() {
            None => Ok(passthrough_playlist(
                content,
                &self.ssai.opts.content_prefix,
            )),
            Some(decider) => {
                let opts = &self.ssai.opts;
                let ads = self
                    .ssai
                    .streams
                    .entry(name.to_string())
                    .or_insert_with(|| StreamAds::new(opts));
                ads.timeline.observe(content);
                backfill(&self.store, name, &mut ads.timeline, content.media_sequence);
                let low = ads
                    .timeline
                    .first_sequence()
                    .unwrap_or(content.media_sequence);
                let breaks: Vec<AdBreak> = stream
                    .ad_breaks()
                    .filter(|b| b.end_sequence.is_none_or(|e| e > low))
                    .cloned()
                    .collect();
                let view = LiveView::new(content, &breaks, &ads.timeline, stream.tracks());
                let mut served = Served {
                    inner: decider.as_mut(),
                    creatives: &self.ssai.creatives,
                };
                ads.sessions
                    .session_playlist(session, &view, &mut served, self.ssai.slate.as_ref())
            }
        };
        match playlist.and_then(|p| p.write()) {
            Ok(t) => ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(t), head),
            Err(e) => {
                tracing::debug!("ad insertion: playlist of {name}/{session}: {e}");
                text(500, "ad insertion failed\n", head)
            }
        }
    }

    /// The session's MPD: the content's live MPD with the breaks as ad Periods.
    fn ssai_mpd(&mut self, name: &str, session: &str, head: bool, now: i64) -> Response {
        let Some(stream) = self.streams.get(name) else {
            return text(404, "unknown stream\n", head);
        };
        let Some(content) = stream.mpd_model(now) else {
            return text(404, "no segment yet\n", head);
        };
        let mpd = match self.ssai.decider.as_mut() {
            None => Ok(DashSessions::new(self.ssai.opts.clone()).passthrough(&content)),
            Some(decider) => {
                let breaks: Vec<AdBreak> = stream
                    .cmaf()
                    .map(|c| c.ad_breaks().cloned().collect())
                    .unwrap_or_default();
                let delay = stream
                    .cmaf()
                    .and_then(|c| {
                        c.renditions()
                            .iter()
                            .find(|r| r.track().kind == crate::media::MediaKind::Video)
                    })
                    .map_or(Timestamp::from_millis(0), |r| {
                        Timestamp::new(
                            r.presentation_delay().min(i64::MAX as u64) as i64,
                            r.track().timescale,
                        )
                    });
                let opts = &self.ssai.opts;
                let ads = self
                    .ssai
                    .streams
                    .entry(name.to_string())
                    .or_insert_with(|| StreamAds::new(opts));
                let mut served = Served {
                    inner: decider.as_mut(),
                    creatives: &self.ssai.creatives,
                };
                let view = DashView::new(&content, &breaks, now)
                    .with_slate(self.ssai.slate.as_ref())
                    .with_delay(delay);
                ads.dash.session_mpd(session, &view, &mut served)
            }
        };
        match mpd.and_then(|m| m.write()) {
            Ok(t) => ok(MPD_TYPE, PLAYLIST_CACHE, Bytes::from(t), head),
            Err(e) => {
                tracing::debug!("ad insertion: MPD of {name}/{session}: {e}");
                text(500, "ad insertion failed\n", head)
            }
        }
    }

    /// `/ads/{creative}/{rendition}/init.mp4` and `.../{n}.m4s`.
    pub(super) fn handle_ad_cmaf(
        &self,
        creative: &str,
        rendition: &str,
        file: &str,
        head: bool,
    ) -> Response {
        let Some(cmaf) = self
            .ssai
            .creatives
            .get(creative)
            .and_then(|c| c.cmaf.as_ref())
        else {
            return text(404, "no such creative\n", head);
        };
        if file == INIT_SEGMENT {
            return match cmaf.init(rendition) {
                Some(b) => ok("video/mp4", SEGMENT_CACHE, b.clone(), head),
                None => text(404, "unknown rendition\n", head),
            };
        }
        match number(file, ".m4s").and_then(|n| cmaf.fragment(rendition, n)) {
            Some(b) => ok(FRAGMENT_TYPE, SEGMENT_CACHE, b.clone(), head),
            None => text(404, "unknown segment\n", head),
        }
    }

    pub(super) fn handle_ad(&mut self, creative: &str, file: &str, req: &Request) -> Response {
        let head = req.method == Method::Head;
        let Some(c) = self.ssai.creatives.get(creative) else {
            return text(404, "no such creative\n", head);
        };
        match number(file, ".ts").and_then(|n| c.segment(n)) {
            Some(seg) => ok(SEGMENT_TYPE, SEGMENT_CACHE, seg.data.clone(), head),
            None => text(404, "unknown segment\n", head),
        }
    }
}

/// Fills the timeline with what the store's index remembers just before the window
/// (the first request of a stream, or after a pause): the start of a break in progress
/// may have left the window.
fn backfill<S: SegmentStore>(store: &S, name: &str, timeline: &mut ContentTimeline, w0: u64) {
    if w0 == 0 || timeline.get(w0 - 1).is_some() {
        return;
    }
    let floor = w0.saturating_sub(MAX_BACKFILL);
    let from = match timeline.last_sequence() {
        Some(l) if l < w0 => l.saturating_add(1).max(floor),
        _ => floor,
    };
    let read = store.records(name, Series::Ts, from, &mut |r| {
        if r.number >= w0 {
            return false;
        }
        timeline.insert(r.number, ContentSegment::new(r.duration, r.discontinuity));
        true
    });
    if let Err(e) = read {
        tracing::debug!("ad insertion: index of {name} unreadable: {e}");
    }
}
