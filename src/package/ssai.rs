//! Server-side ad insertion (SSAI) for live HLS and DASH, sans-IO: per-viewer-session
//! media playlists in which the content segments of an ad break are replaced by the
//! segments of ad creatives, and per-session MPDs in which they are ad Periods
//! ([`DashSessions`], DASH-IF IOP §5.3).
//!
//! * [`Creative`]: an ad as MPEG-TS segments in memory (and as CMAF, [`CreativeCmaf`],
//!   for DASH: the rules of the DASH sessions are in [`dash`]). [`Creative::from_mp4`]
//!   packages an MP4 file with the crate's own [`Mp4Demuxer`], [`Segmenter`] and
//!   [`TsMuxer`], and
//!   refuses a creative whose codec parameters differ from the content's
//!   ([`check_compatible`]): players switch to an ad at a discontinuity, not to another
//!   codec.
//! * [`AdDecider`]: the host's choice of creatives for a break and a viewer session;
//!   [`StaticDecider`] gives everyone the same list.
//! * [`ContentTimeline`]: durations and discontinuity flags of the content segments,
//!   remembered beyond the live window (a long break outlives the window).
//! * [`AdSessions`]: viewer sessions, their plans, and their playlists
//!   ([`AdSessions::session_playlist`]).
//!
//! # How a session playlist is made
//!
//! From the live window (the content [`MediaPlaylist`], RFC 8216bis §4.4.3) and the
//! stream's [`AdBreak`]s:
//!
//! * **Plan.** The first time a session meets a break, the [`AdDecider`] is asked once;
//!   the answer is fixed for that session (reloads see the same ads). The plan is the
//!   creatives' segments, in order, while their running total fits the break's planned
//!   duration (or its actual one when it already ended; without either, as long as the
//!   break lasts). Creatives that do not match the content's codecs, that have a segment
//!   longer than the content's `EXT-X-TARGETDURATION`, or that are empty are skipped.
//!   A break for which nothing remains is not substituted.
//! * **Fill.** The rest of the break plays the content's own segments of the break whose
//!   start is at or after the ads' end, or, when the host set a slate, the slate's
//!   segments repeated (whole segments only) while they fit.
//! * **Pacing.** An ad or slate segment is listed only once the content published for the
//!   break covers its end (break start + time into the break <= content time published
//!   in the break), so the session's live edge moves with the content's and a player
//!   never runs ahead of the live stream.
//! * **URIs.** Content segments keep theirs behind [`SsaiOptions::content_prefix`]
//!   (`../../{seq}.ts` from `/live/{stream}/ssai/{session}/media.m3u8`); ad segments are
//!   `{ad_prefix}{creative}/{n}.ts` (`/ads/{creative}/{n}.ts`).
//! * **Discontinuities** (§4.4.4.3): before the first segment of each creative (and of
//!   each repetition of the slate), and before the first content segment after ads.
//!   Content segments keep their own.
//! * **Numbering** (§4.4.3.2, §4.4.3.3, §6.2.2): a session's sequence numbers are the
//!   content's plus, for every break substituted since the session joined, its listed
//!   items minus the content segments they replace. A number never changes its URI and
//!   `EXT-X-MEDIA-SEQUENCE` and `EXT-X-DISCONTINUITY-SEQUENCE` never go back; the window
//!   covers the same stretch of the programme as the content's.
//! * **Join.** Breaks that ended before a session's first request are not substituted for
//!   it (it sees them as the content does); a break in progress is.
//! * **Dates.** Content segments keep their `EXT-X-PROGRAM-DATE-TIME`; ad and slate
//!   segments get the break's start date plus their offset into the break.
//! * **Ad markers.** `EXT-X-CUE-OUT` / `-CONT` / `-IN` and `EXT-X-DATERANGE` of a break
//!   the session's playlist substitutes are dropped: the ads are already in the
//!   programme, and a client-side ad SDK seeing the markers would insert ads on top of
//!   them. Breaks that are not substituted keep their markers.
//!
//! # Memory
//!
//! At most [`SsaiOptions::max_sessions`] sessions (the least recently used one goes), at
//! most [`SsaiOptions::max_plans_per_session`] plans each (plans of breaks behind the
//! window are dropped; a session that meets more breaks at once stops getting ads for the
//! newer ones), at most [`SsaiOptions::max_items_per_break`] listed items per break, and
//! a [`ContentTimeline`] of bounded length. A session whose past cannot be reconstructed
//! (it did not reload for longer than the timeline covers) joins again: its numbering
//! restarts from the content's.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use strom::media::{CueKind, Event, SpliceCue};
//! use strom::package::ads::BreakTracker;
//! use strom::package::hls::{MediaPlaylist, MediaSegment, PlaylistType};
//! use strom::package::ssai::{
//!     AdSessions, ContentTimeline, Creative, CreativeSegment, LiveView, StaticDecider,
//! };
//! use strom::time::Timestamp;
//!
//! let ms = Timestamp::from_millis;
//! // A 4 s break cut at content segment 2 (2 s segments).
//! let mut tracker = BreakTracker::new(8);
//! let mut content = MediaPlaylist::new(PlaylistType::Live);
//! content.target_duration = Some(2);
//! let out = Event::Cue(SpliceCue::new(7, CueKind::Out, ms(4000), Some(ms(4000))));
//! for seq in 0..4u64 {
//!     let events = if seq == 2 { vec![out.clone()] } else { vec![] };
//!     let date = 1_700_000_000_000 + seq as i64 * 2000;
//!     tracker.on_segment(seq, ms(seq as i64 * 2000), date, &events);
//!     content.push_segment(
//!         MediaSegment::new(format!("{seq}.ts"), ms(2000)).with_program_date_time(date),
//!     );
//! }
//! let breaks: Vec<_> = tracker.breaks().cloned().collect();
//! // A creative of one 2 s segment (its TS bytes elided here).
//! let ts = Bytes::from(vec![0x47u8; 188]);
//! let ad = Creative::from_segments("spot", vec![CreativeSegment::new(ms(2000), ts)], vec![])
//!     .unwrap();
//! let mut timeline = ContentTimeline::default();
//! timeline.observe(&content);
//! let mut sessions = AdSessions::default();
//! let mut decider = StaticDecider(vec![Arc::new(ad)]);
//! // No content tracks given: the codec check is skipped (see `LiveView::tracks`).
//! let view = LiveView::new(&content, &breaks, &timeline, &[]);
//! let pl = sessions.session_playlist("viewer1", &view, &mut decider, None).unwrap();
//! let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
//! // The ad replaces the break's first 2 s, the content fills the other 2 s.
//! assert_eq!(uris, ["../../0.ts", "../../1.ts", "/ads/spot/0.ts", "../../3.ts"]);
//! assert!(pl.segments[2].discontinuity && pl.segments[3].discontinuity);
//! assert_eq!(pl.media_sequence, 0);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::ads::AdBreak;
use super::hls::{CueTag, MediaPlaylist, MediaSegment, PlaylistType};
use super::{Segment, Segmenter, SegmenterOptions};
use crate::container::mp4::Mp4Demuxer;
use crate::container::ts::{TsMuxer, TsMuxerOptions};
use crate::error::{Error, Result};
use crate::media::{CodecConfig, Event, Item, MediaKind, TrackInfo};
use crate::pipeline::Stage;
use crate::time::{Rounding, Timescale, Timestamp};

/// Most segments one creative may have.
pub const MAX_CREATIVE_SEGMENTS: usize = 4096;
/// Longest creative id, in bytes. Ids are `[A-Za-z0-9_-]{1,64}` (they appear in URLs).
pub const MAX_CREATIVE_ID_LEN: usize = 64;
/// Most creatives of one decision that are looked at.
const MAX_DECIDED: usize = 256;
/// Most content segments one break may span for the planner (about 55 hours of 2 s
/// segments); a longer one is not substituted.
const MAX_BREAK_SEGMENTS: u64 = 100_000;

/// Offsets into a break are counted on the 90 kHz clock.
const CLOCK: Timescale = Timescale::MPEG;

fn ticks(t: Timestamp) -> i64 {
    t.rescale(CLOCK, Rounding::Nearest).ticks()
}

/// Whether `id` is a valid creative id: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_creative_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CREATIVE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One MPEG-TS segment of a [`Creative`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CreativeSegment {
    /// Exact duration (`EXTINF`).
    pub duration: Timestamp,
    /// TS packets: PAT, PMT, then the frames; decodable alone.
    pub data: Bytes,
}

impl CreativeSegment {
    /// A segment of `duration` made of the TS packets `data`.
    pub fn new(duration: Timestamp, data: Bytes) -> Self {
        CreativeSegment { duration, data }
    }
}

/// An ad creative: MPEG-TS segments (and a CMAF form) in memory, served at `/ads/{id}/{n}.ts` by the
/// origin, and the tracks they carry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Creative {
    /// Its id, `[A-Za-z0-9_-]{1,64}`: unique among the creatives an origin serves.
    pub id: String,
    /// Its segments, in order (segment `n` is `{n}.ts`).
    pub segments: Vec<CreativeSegment>,
    /// Its tracks, as the segments carry them (empty when unknown: then
    /// [`check_compatible`] refuses it against any content).
    pub tracks: Vec<TrackInfo>,
    /// The same ad as CMAF, for DASH sessions ([`DashSessions`]): made by
    /// [`Creative::from_mp4`]; `None` for [`Creative::from_segments`] (such a creative
    /// plays in HLS only).
    pub cmaf: Option<Arc<CreativeCmaf>>,
}

impl Creative {
    /// Packages the MP4 file `mp4` (in memory) as MPEG-TS segments of at least
    /// `target_duration` each, cut at video keyframes (as the live content is:
    /// [`Segmenter`], then [`TsMuxer`] with default options, so the elementary stream
    /// PIDs are the content's). When `content_tracks` is not empty, the creative must
    /// match them ([`check_compatible`]).
    ///
    /// Pick `target_duration` at most the content's target, and a creative whose GOP
    /// divides it: a segment longer than the content's `EXT-X-TARGETDURATION` cannot be
    /// listed in its playlists.
    ///
    /// Errors: [`Error::usage`] for an invalid id; the demuxer's, segmenter's and
    /// muxer's errors ([`Error::malformed`] for a broken file, [`Error::unsupported`]
    /// for a codec they do not carry); [`Error::unsupported`] when the tracks change
    /// within the file or do not match `content_tracks` (the message says which
    /// parameter); [`Error::malformed`] when no segment comes out (no frames, or no
    /// keyframe); [`Error::limit`] beyond [`MAX_CREATIVE_SEGMENTS`].
    pub fn from_mp4(
        id: impl Into<String>,
        mp4: Bytes,
        target_duration: Timestamp,
        content_tracks: &[TrackInfo],
    ) -> Result<Creative> {
        let id = id.into();
        if !valid_creative_id(&id) {
            return Err(Error::usage("ad creative: id must be [A-Za-z0-9_-]{1,64}"));
        }
        let mut demux = Mp4Demuxer::new(mp4.len() as u64);
        let mut segmenter = Segmenter::new(SegmenterOptions {
            target_duration,
            ..SegmenterOptions::default()
        })?;
        let mut out = Packager::default();
        // Each read answers one request of the demuxer; bounded by the file size.
        let mut reads: u64 = 0;
        loop {
            while let Some(item) = demux.poll_item() {
                let item = item.map_err(|e| e.context("ad creative MP4"))?;
                if matches!(item, Item::Event(Event::EndOfStream)) {
                    continue;
                }
                segmenter.push(item)?;
                out.collect(&mut segmenter)?;
            }
            let Some(req) = demux.poll_read() else {
                break;
            };
            reads += 1;
            if reads > (mp4.len() as u64).saturating_add(1024) {
                return Err(Error::malformed(
                    "ad creative MP4: the reader does not progress",
                ));
            }
            let start = usize::try_from(req.offset).ok();
            let range = start.and_then(|s| Some(s..s.checked_add(req.len)?));
            let data = match range {
                Some(r) if r.end <= mp4.len() => mp4.slice(r),
                _ => return Err(Error::malformed("ad creative MP4: read past the end")),
            };
            demux.supply(req.offset, data)?;
        }
        segmenter.finish()?;
        out.collect(&mut segmenter)?;
        let Some(tracks) = out.tracks else {
            return Err(Error::malformed(
                "ad creative MP4: no segment (no frames, or no video keyframe)",
            ));
        };
        if !content_tracks.is_empty() {
            check_compatible(&tracks, content_tracks)?;
        }
        Ok(Creative {
            id,
            segments: out.segments,
            tracks,
            cmaf: Some(Arc::new(out.cmaf.finish()?)),
        })
    }

    /// A creative from segments packaged elsewhere (MPEG-TS, each decodable alone, with
    /// the content's PIDs), carrying `tracks`.
    ///
    /// Errors: [`Error::usage`] for an invalid id, no segment, a duration that is not
    /// positive, or data that is not whole 188-byte TS packets with their sync byte;
    /// [`Error::limit`] beyond [`MAX_CREATIVE_SEGMENTS`].
    pub fn from_segments(
        id: impl Into<String>,
        segments: Vec<CreativeSegment>,
        tracks: Vec<TrackInfo>,
    ) -> Result<Creative> {
        let id = id.into();
        if !valid_creative_id(&id) {
            return Err(Error::usage("ad creative: id must be [A-Za-z0-9_-]{1,64}"));
        }
        if segments.is_empty() {
            return Err(Error::usage("ad creative: no segment"));
        }
        if segments.len() > MAX_CREATIVE_SEGMENTS {
            return Err(Error::limit("ad creative: too many segments"));
        }
        for s in &segments {
            if s.duration.ticks() <= 0 {
                return Err(Error::usage(
                    "ad creative: segment duration must be positive",
                ));
            }
            if s.data.is_empty()
                || s.data.len() % 188 != 0
                || s.data.chunks(188).any(|p| p.first() != Some(&0x47))
            {
                return Err(Error::usage(
                    "ad creative: segment data must be whole MPEG-TS packets",
                ));
            }
        }
        Ok(Creative {
            id,
            segments,
            tracks,
            cmaf: None,
        })
    }

    /// The creative with `cmaf` as its CMAF form (for DASH sessions), e.g. one packaged
    /// elsewhere for a creative made with [`Creative::from_segments`]. Its length should
    /// be the segments' ([`Creative::duration`] is the ad Period's duration).
    pub fn with_cmaf(mut self, cmaf: CreativeCmaf) -> Self {
        self.cmaf = Some(Arc::new(cmaf));
        self
    }

    /// Total duration of the segments.
    pub fn duration(&self) -> Timestamp {
        Timestamp::new(self.segments.iter().map(|s| ticks(s.duration)).sum(), CLOCK)
    }

    /// Segment `n`, if it exists.
    pub fn segment(&self, n: u64) -> Option<&CreativeSegment> {
        self.segments.get(usize::try_from(n).ok()?)
    }
}

/// Segments to TS, for [`Creative::from_mp4`].
#[derive(Default)]
struct Packager {
    cmaf: dash::CmafPackager,
    muxer: Option<TsMuxer>,
    tracks: Option<Vec<TrackInfo>>,
    segments: Vec<CreativeSegment>,
}

impl Packager {
    fn collect(&mut self, segmenter: &mut Segmenter) -> Result<()> {
        while let Some(seg) = segmenter.poll() {
            self.write(seg?)?;
        }
        Ok(())
    }

    fn write(&mut self, seg: Segment) -> Result<()> {
        match &self.tracks {
            None => self.tracks = Some(seg.tracks.clone()),
            Some(t) if *t != seg.tracks => {
                return Err(Error::unsupported(
                    "ad creative MP4: its tracks change within the file",
                ))
            }
            Some(_) => {}
        }
        if self.segments.len() >= MAX_CREATIVE_SEGMENTS {
            return Err(Error::limit("ad creative: too many segments"));
        }
        let muxer = match &mut self.muxer {
            Some(m) => m,
            None => self
                .muxer
                .insert(TsMuxer::new(&seg.tracks, TsMuxerOptions::default())?),
        };
        self.cmaf.write(&seg)?;
        let mut buf = BytesMut::with_capacity(seg.payload_len() + seg.payload_len() / 8 + 1024);
        muxer.write_segment(&seg, &mut buf)?;
        self.segments
            .push(CreativeSegment::new(seg.duration, buf.freeze()));
        Ok(())
    }
}

/// Checks that a creative with `creative` tracks plays where the content with `content`
/// tracks does, without a codec switch: as many video and audio tracks, and pairwise
/// (in order within each kind) the same codec, picture size and H.264 / H.265 profile
/// and level, AAC object type, sample rate and channel configuration, Opus channel
/// count. (Players reinitialise their decoders at the discontinuity before an ad, but
/// Media Source Extensions players keep the source buffers created for the content's
/// codecs.)
///
/// Errors: [`Error::unsupported`] naming the first difference (with both values);
/// also when either list is empty.
pub fn check_compatible(creative: &[TrackInfo], content: &[TrackInfo]) -> Result<()> {
    if creative.is_empty() || content.is_empty() {
        return Err(Error::unsupported(
            "ad creative: tracks unknown, cannot check them against the content",
        ));
    }
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let a: Vec<&TrackInfo> = creative.iter().filter(|t| t.kind == kind).collect();
        let b: Vec<&TrackInfo> = content.iter().filter(|t| t.kind == kind).collect();
        if a.len() != b.len() {
            return Err(Error::unsupported(format!(
                "ad creative: {} {kind:?} tracks, the content has {}",
                a.len(),
                b.len()
            )));
        }
        for (x, y) in a.iter().zip(&b) {
            same_config(&x.config, &y.config)?;
        }
    }
    Ok(())
}

fn differ(what: &str, ours: impl std::fmt::Display, theirs: impl std::fmt::Display) -> Error {
    Error::unsupported(format!(
        "ad creative: {what} {ours} differs from the content's {theirs}"
    ))
}

fn same_size(ad: (u32, u32), content: (u32, u32)) -> Result<()> {
    if ad == content {
        return Ok(());
    }
    Err(differ(
        "resolution",
        format!("{}x{}", ad.0, ad.1),
        format!("{}x{}", content.0, content.1),
    ))
}

fn same_config(ad: &CodecConfig, content: &CodecConfig) -> Result<()> {
    match (ad, content) {
        (CodecConfig::H264(a), CodecConfig::H264(b)) => {
            same_size((a.width, a.height), (b.width, b.height))?;
            if a.profile_idc != b.profile_idc {
                return Err(differ("H.264 profile_idc", a.profile_idc, b.profile_idc));
            }
            if a.level_idc != b.level_idc {
                return Err(differ("H.264 level_idc", a.level_idc, b.level_idc));
            }
            Ok(())
        }
        (CodecConfig::H265(a), CodecConfig::H265(b)) => {
            same_size((a.width, a.height), (b.width, b.height))?;
            if (a.profile_idc, a.tier_flag) != (b.profile_idc, b.tier_flag) {
                return Err(differ("H.265 profile_idc", a.profile_idc, b.profile_idc));
            }
            if a.level_idc != b.level_idc {
                return Err(differ("H.265 level_idc", a.level_idc, b.level_idc));
            }
            Ok(())
        }
        (CodecConfig::Aac(a), CodecConfig::Aac(b)) => {
            if a.object_type != b.object_type {
                return Err(differ("AAC object type", a.object_type, b.object_type));
            }
            if a.sample_rate != b.sample_rate {
                return Err(differ("audio sample rate", a.sample_rate, b.sample_rate));
            }
            if a.channel_config != b.channel_config {
                return Err(differ(
                    "AAC channel configuration",
                    a.channel_config,
                    b.channel_config,
                ));
            }
            Ok(())
        }
        (CodecConfig::Opus(a), CodecConfig::Opus(b)) => {
            if a.channels != b.channels {
                return Err(differ("Opus channel count", a.channels, b.channels));
            }
            Ok(())
        }
        (a, b) => Err(differ("codec", a.codecs_string(), b.codecs_string())),
    }
}

/// The host's choice of ads: given a break and a viewer session, the creatives to play,
/// in order. Called once per session and break (the answer is kept for the session);
/// it must not block (look up a prepared decision, do not call an ad server inline).
/// Creatives that do not fit the content are skipped (see the [module docs](self)).
pub trait AdDecider: Send {
    /// The creatives for `brk` (its id, start, planned duration, SCTE 35 bytes) and the
    /// viewer session `session`.
    fn decide(&mut self, brk: &AdBreak, session: &str) -> Vec<Arc<Creative>>;
}

/// An [`AdDecider`] giving every session the same creatives, for tests and simple hosts.
#[derive(Debug, Clone, Default)]
pub struct StaticDecider(pub Vec<Arc<Creative>>);

impl AdDecider for StaticDecider {
    fn decide(&mut self, _brk: &AdBreak, _session: &str) -> Vec<Arc<Creative>> {
        self.0.clone()
    }
}

/// What [`ContentTimeline`] keeps of one content segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContentSegment {
    /// Exact duration.
    pub duration: Timestamp,
    /// It follows `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
}

impl ContentSegment {
    /// A segment of `duration`, discontinuous or not.
    pub fn new(duration: Timestamp, discontinuity: bool) -> Self {
        ContentSegment {
            duration,
            discontinuity,
        }
    }
}

/// Durations and discontinuity flags of a live stream's content segments by sequence
/// number, kept beyond the live window: a break (and a session's numbering) may reach
/// back further than the window. Feed it every window the sessions are served from
/// ([`observe`](Self::observe)) and, after a pause, what an indexing store remembers
/// ([`insert`](Self::insert)). Holds at most `max` segments (the oldest go).
#[derive(Debug, Clone)]
pub struct ContentTimeline {
    segments: BTreeMap<u64, ContentSegment>,
    max: usize,
}

impl Default for ContentTimeline {
    /// A timeline of at most [`ContentTimeline::DEFAULT_MAX`] segments.
    fn default() -> Self {
        ContentTimeline::new(Self::DEFAULT_MAX)
    }
}

impl ContentTimeline {
    /// Default bound: 8192 segments (4.5 hours of 2 s segments).
    pub const DEFAULT_MAX: usize = 8192;

    /// An empty timeline keeping at most `max` (at least 1) segments.
    pub fn new(max: usize) -> Self {
        ContentTimeline {
            segments: BTreeMap::new(),
            max: max.max(1),
        }
    }

    /// Records the segments of a live window (numbered from its `EXT-X-MEDIA-SEQUENCE`).
    pub fn observe(&mut self, window: &MediaPlaylist) {
        for (i, s) in window.segments.iter().enumerate() {
            let seq = window.media_sequence.saturating_add(i as u64);
            self.insert(seq, ContentSegment::new(s.duration, s.discontinuity));
        }
    }

    /// Records segment `seq`.
    pub fn insert(&mut self, seq: u64, segment: ContentSegment) {
        self.segments.insert(seq, segment);
        while self.segments.len() > self.max {
            self.segments.pop_first();
        }
    }

    /// Segment `seq`, if known.
    pub fn get(&self, seq: u64) -> Option<&ContentSegment> {
        self.segments.get(&seq)
    }

    /// The newest sequence number known.
    pub fn last_sequence(&self) -> Option<u64> {
        self.segments.last_key_value().map(|(k, _)| *k)
    }

    /// The oldest sequence number known.
    pub fn first_sequence(&self) -> Option<u64> {
        self.segments.first_key_value().map(|(k, _)| *k)
    }

    /// Segments known.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// The live stream a session playlist is made from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LiveView<'a> {
    /// The content's live media playlist (its window), segment URIs relative to it.
    pub playlist: &'a MediaPlaylist,
    /// The stream's ad breaks (ended ones and the one in force), as
    /// [`BreakTracker::breaks`](super::ads::BreakTracker::breaks) or
    /// `LiveStream::ad_breaks` give them.
    pub breaks: &'a [AdBreak],
    /// The content timeline, fed with `playlist` already.
    pub timeline: &'a ContentTimeline,
    /// The content's tracks, for [`check_compatible`]; empty skips the check (the host
    /// vouches for its creatives).
    pub tracks: &'a [TrackInfo],
}

impl<'a> LiveView<'a> {
    /// The view of `playlist` with its `breaks`, `timeline` and `tracks`.
    pub fn new(
        playlist: &'a MediaPlaylist,
        breaks: &'a [AdBreak],
        timeline: &'a ContentTimeline,
        tracks: &'a [TrackInfo],
    ) -> Self {
        LiveView {
            playlist,
            breaks,
            timeline,
            tracks,
        }
    }

    /// Sequence number of the window's first segment.
    fn first(&self) -> u64 {
        self.playlist.media_sequence
    }

    /// Sequence number of the newest segment (the window is not empty).
    fn newest(&self) -> u64 {
        self.first()
            .saturating_add(self.playlist.segments.len() as u64)
            .saturating_sub(1)
    }

    /// The window's segment `seq`.
    fn window(&self, seq: u64) -> Option<&'a MediaSegment> {
        let i = usize::try_from(seq.checked_sub(self.first())?).ok()?;
        self.playlist.segments.get(i)
    }

    /// Segment `seq` from the window or the timeline.
    fn content(&self, seq: u64) -> Option<ContentSegment> {
        match self.window(seq) {
            Some(s) => Some(ContentSegment::new(s.duration, s.discontinuity)),
            None => self.timeline.get(seq).copied(),
        }
    }
}

/// Options of [`AdSessions`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SsaiOptions {
    /// Most sessions remembered; a new one beyond it evicts the least recently served.
    /// Default: 10 000.
    pub max_sessions: usize,
    /// Most break plans one session holds (plans of breaks behind its window are
    /// dropped). Default: 64.
    pub max_plans_per_session: usize,
    /// Most items (ad, slate or content segments) listed for one break. Default: 2048.
    pub max_items_per_break: usize,
    /// Written before a content segment's URI. Default: `"../../"` (from
    /// `/live/{stream}/ssai/{session}/media.m3u8` to `/live/{stream}/{seq}.ts`).
    pub content_prefix: String,
    /// Written before `{creative}/{n}.ts`. Default: `"/ads/"`.
    pub ad_prefix: String,
}

impl Default for SsaiOptions {
    fn default() -> Self {
        SsaiOptions {
            max_sessions: 10_000,
            max_plans_per_session: 64,
            max_items_per_break: 2048,
            content_prefix: "../../".into(),
            ad_prefix: "/ads/".into(),
        }
    }
}

/// One creative segment of a plan.
#[derive(Debug, Clone)]
struct AdItem {
    creative: Arc<Creative>,
    index: usize,
    /// Its end, 90 kHz from the break start.
    end_90k: i64,
}

/// A session's fixed decision for one break.
#[derive(Debug, Clone)]
struct Plan {
    /// The ads, in order; empty: the break is not substituted.
    ads: Vec<AdItem>,
    /// End of the last ad, 90 kHz from the break start.
    total_90k: i64,
    /// The slate that fills the rest of the break, else the content does.
    slate: Option<Arc<Creative>>,
    /// The first content segment of the break at or after the ads' end, once published.
    rejoin: Option<u64>,
    /// The break as last seen (substituted plans): a session may reload after the
    /// stream forgot it. Its end's `EXT-X-CUE-IN` and its `EXT-X-DATERANGE` are dropped
    /// while the plan is held.
    brk: Option<AdBreak>,
}

impl Plan {
    fn passthrough() -> Plan {
        Plan {
            ads: Vec::new(),
            total_90k: 0,
            slate: None,
            rejoin: None,
            brk: None,
        }
    }

    fn substitutes(&self) -> bool {
        !self.ads.is_empty()
    }
}

/// Where a session's walk may start: the state just before content segment `seq`, with
/// everything before it final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    seq: u64,
    /// The session's sequence number of what comes at `seq`.
    number: u64,
    /// Discontinuity tags before it.
    disc: u64,
    /// Content at `seq` follows ads: it gets `EXT-X-DISCONTINUITY`.
    forced: bool,
}

#[derive(Debug, Clone)]
struct Session {
    /// The newest content segment at the session's first request.
    join_newest: u64,
    checkpoint: Checkpoint,
    /// By the break's first sequence number.
    plans: BTreeMap<u64, Plan>,
    /// Breaks starting here or later are not substituted (too many plans at once).
    frozen_from: Option<u64>,
    /// LRU clock of the last request.
    last_use: u64,
}

/// What a break looks like in the content: its segments published so far.
struct BreakSpan {
    /// (sequence number, offset from the break start, duration, discontinuity).
    segments: Vec<(u64, i64, i64, bool)>,
    /// Content time published in the break, 90 kHz.
    coverage_90k: i64,
}

enum ItemKind {
    Ad(Arc<Creative>, usize),
    Content(u64),
}

/// One listed item of a substituted break.
struct BreakItem {
    kind: ItemKind,
    start_90k: i64,
    end_90k: i64,
    discontinuity: bool,
}

/// Viewer sessions of one live stream and their ad plans: makes each session's media
/// playlist ([`session_playlist`](Self::session_playlist)). See the [module docs](self) for the rules.
#[derive(Debug, Default)]
pub struct AdSessions {
    opts: SsaiOptions,
    sessions: HashMap<String, Session>,
    /// LRU order: last use -> session id.
    lru: BTreeMap<u64, String>,
    clock: u64,
}

impl AdSessions {
    /// No sessions yet, with `opts`.
    pub fn new(opts: SsaiOptions) -> Self {
        AdSessions {
            opts,
            ..AdSessions::default()
        }
    }

    /// The options.
    pub fn options(&self) -> &SsaiOptions {
        &self.opts
    }

    /// Sessions remembered.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Plans `session` holds (breaks it decided, not yet behind its window).
    pub fn plans(&self, session: &str) -> usize {
        self.sessions.get(session).map_or(0, |s| s.plans.len())
    }

    /// The media playlist of `session` for the current `live` window: the content with
    /// the breaks the session's plans substitute (see the [module docs](self)). A new
    /// session joins here; `decider` is asked about each break the session meets for the
    /// first time, and `slate` (if any) fills what the ads leave of the breaks planned
    /// now (a plan keeps its slate).
    ///
    /// Errors: [`Error::usage`] when the window is empty; playlist limits
    /// ([`Error::limit`]) should a stream have more than 100 000 segments in one break.
    pub fn session_playlist(
        &mut self,
        session: &str,
        live: &LiveView<'_>,
        decider: &mut dyn AdDecider,
        slate: Option<&Arc<Creative>>,
    ) -> Result<MediaPlaylist> {
        if live.playlist.segments.is_empty() {
            return Err(Error::usage("ad insertion: the live window is empty"));
        }
        self.clock = self.clock.wrapping_add(1);
        let mut state = match self.sessions.remove(session) {
            Some(s) => {
                self.lru.remove(&s.last_use);
                s
            }
            None => {
                while self.sessions.len() >= self.opts.max_sessions.max(1) {
                    let Some((_, old)) = self.lru.pop_first() else {
                        break;
                    };
                    self.sessions.remove(&old);
                }
                join(live)
            }
        };
        let walked = if state.checkpoint.seq > live.first() {
            None
        } else {
            walk(&mut state, session, live, decider, slate, &self.opts).ok()
        };
        let pl = match walked {
            Some(pl) => pl,
            None => {
                // The session's past is gone (no reload for longer than the timeline
                // covers, or a stream that went back): it joins again.
                tracing::debug!("ad insertion: session {session} joins again");
                state = join(live);
                walk(&mut state, session, live, decider, slate, &self.opts)?
            }
        };
        state.last_use = self.clock;
        self.lru.insert(self.clock, session.to_string());
        self.sessions.insert(session.to_string(), state);
        Ok(pl)
    }
}

/// A session joining at `live`'s window.
fn join(live: &LiveView<'_>) -> Session {
    let w0 = live.first();
    let newest = live.newest();
    let mut plans = BTreeMap::new();
    let mut seq = w0;
    // A break in progress that began before the window: walk from its start, if the
    // timeline still knows its segments.
    // (One that ended, even inside the window, ended before the first request.)
    let open = live
        .breaks
        .iter()
        .find(|b| b.first_sequence < w0 && b.end_sequence.is_none());
    if let Some(b) = open {
        let known = w0 - b.first_sequence <= MAX_BREAK_SEGMENTS
            && (b.first_sequence..w0).all(|s| live.timeline.get(s).is_some());
        if known {
            seq = b.first_sequence;
        } else {
            plans.insert(b.first_sequence, Plan::passthrough());
        }
    }
    let flags = (seq..w0)
        .filter(|s| live.timeline.get(*s).is_some_and(|c| c.discontinuity))
        .count() as u64;
    Session {
        join_newest: newest,
        checkpoint: Checkpoint {
            seq,
            number: seq,
            disc: live.playlist.discontinuity_sequence.saturating_sub(flags),
            forced: false,
        },
        plans,
        frozen_from: None,
        last_use: 0,
    }
}

/// The plan of `brk` for `session`.
fn make_plan(
    brk: &AdBreak,
    session: &str,
    live: &LiveView<'_>,
    decider: &mut dyn AdDecider,
    slate: Option<&Arc<Creative>>,
    opts: &SsaiOptions,
) -> Plan {
    let limit = brk.planned_duration.or_else(|| brk.duration()).map(ticks);
    let target_ms = live
        .playlist
        .computed_target_duration()
        .map_or(0, |t| t.saturating_mul(1000)) as i64;
    let usable = |c: &Creative| {
        let fits = !c.segments.is_empty()
            && c.segments.iter().all(|s| {
                let ms = s
                    .duration
                    .rescale(Timescale::MILLIS, Rounding::Nearest)
                    .ticks();
                // EXTINF rounded half up must not exceed the target (RFC 8216bis §4.4.3.1).
                ms > 0 && (ms + 500) / 1000 * 1000 <= target_ms
            });
        let codecs = live.tracks.is_empty() || check_compatible(&c.tracks, live.tracks).is_ok();
        if !(fits && codecs) {
            tracing::debug!(
                "ad insertion: creative {} skipped (empty, a segment longer than the target, or other codecs)",
                c.id
            );
        }
        fits && codecs
    };
    let mut ads = Vec::new();
    let mut total = 0i64;
    'creatives: for c in decider.decide(brk, session).into_iter().take(MAX_DECIDED) {
        if !usable(&c) {
            continue;
        }
        for (index, s) in c.segments.iter().enumerate() {
            let end = total.saturating_add(ticks(s.duration));
            if limit.is_some_and(|l| end > l) || ads.len() >= opts.max_items_per_break {
                break 'creatives;
            }
            ads.push(AdItem {
                creative: Arc::clone(&c),
                index,
                end_90k: end,
            });
            total = end;
        }
    }
    Plan {
        ads,
        total_90k: total,
        slate: slate.filter(|s| usable(s)).cloned(),
        rejoin: None,
        brk: Some(brk.clone()),
    }
}

/// The content segments of `brk` published so far, with their offsets.
fn break_span(brk: &AdBreak, live: &LiveView<'_>) -> Option<BreakSpan> {
    let newest = live.newest();
    let last = match brk.end_sequence {
        Some(e) => e.checked_sub(1)?.min(newest),
        None => newest,
    };
    if last < brk.first_sequence {
        return Some(BreakSpan {
            segments: Vec::new(),
            coverage_90k: 0,
        });
    }
    if last - brk.first_sequence >= MAX_BREAK_SEGMENTS {
        return None;
    }
    let mut segments = Vec::with_capacity((last - brk.first_sequence + 1) as usize);
    let mut off = 0i64;
    for seq in brk.first_sequence..=last {
        let c = live.content(seq)?;
        let d = ticks(c.duration).max(0);
        segments.push((seq, off, d, c.discontinuity));
        off = off.saturating_add(d);
    }
    Some(BreakSpan {
        segments,
        coverage_90k: off,
    })
}

/// The items a substituted break lists so far: the ads its content covers, then the fill.
fn break_items(plan: &mut Plan, span: &BreakSpan, max_items: usize) -> Vec<BreakItem> {
    let cover = span.coverage_90k;
    let mut items = Vec::new();
    let mut at = 0i64;
    for ad in &plan.ads {
        if ad.end_90k > cover {
            break;
        }
        items.push(BreakItem {
            kind: ItemKind::Ad(Arc::clone(&ad.creative), ad.index),
            start_90k: at,
            end_90k: ad.end_90k,
            discontinuity: ad.index == 0,
        });
        at = ad.end_90k;
    }
    match &plan.slate {
        Some(slate) => {
            let mut t = plan.total_90k;
            for j in 0..max_items {
                if items.len() >= max_items {
                    break;
                }
                let index = j % slate.segments.len().max(1);
                let Some(s) = slate.segments.get(index) else {
                    break;
                };
                let end = t.saturating_add(ticks(s.duration));
                if end <= t || end > cover {
                    break;
                }
                items.push(BreakItem {
                    kind: ItemKind::Ad(Arc::clone(slate), index),
                    start_90k: t,
                    end_90k: end,
                    discontinuity: index == 0,
                });
                t = end;
            }
        }
        None => {
            let total = plan.total_90k;
            let rejoin = plan
                .rejoin
                .or_else(|| span.segments.iter().find(|s| s.1 >= total).map(|s| s.0));
            if let Some(r) = rejoin {
                plan.rejoin = Some(r);
                for &(seq, off, d, disc) in span.segments.iter().filter(|s| s.0 >= r) {
                    items.push(BreakItem {
                        kind: ItemKind::Content(seq),
                        start_90k: off,
                        end_90k: off.saturating_add(d),
                        discontinuity: seq == r || disc,
                    });
                }
            }
        }
    }
    items
}

/// A content segment of the window as the session lists it.
fn content_entry(
    live: &LiveView<'_>,
    seq: u64,
    discontinuity: bool,
    dropped_ranges: &[String],
    keep_cue: bool,
    prefix: &str,
) -> Option<MediaSegment> {
    let s = live.window(seq)?;
    let mut e = s.clone();
    e.uri = format!("{prefix}{}", s.uri);
    e.discontinuity = discontinuity;
    e.date_ranges.retain(|d| !dropped_ranges.contains(&d.id));
    if !keep_cue {
        e.cue = None;
    }
    Some(e)
}

/// Walks the session from its checkpoint to the newest content segment: plans breaks
/// met for the first time, numbers every item, lists those in the window and moves the
/// checkpoint up to the window's start.
fn walk(
    s: &mut Session,
    session: &str,
    live: &LiveView<'_>,
    decider: &mut dyn AdDecider,
    slate: Option<&Arc<Creative>>,
    opts: &SsaiOptions,
) -> Result<MediaPlaylist> {
    let w0 = live.first();
    let newest = live.newest();
    let by_first: HashMap<u64, &AdBreak> =
        live.breaks.iter().map(|b| (b.first_sequence, b)).collect();
    // Markers of the breaks substituted: dropped from the content segments listed.
    // (Plans behind the walk's start are kept while their break's end may still be in
    // the window.)
    let held = s
        .plans
        .values()
        .filter(|p| p.substitutes())
        .filter_map(|p| p.brk.as_ref());
    let mut dropped_ranges: Vec<String> = held.clone().map(AdBreak::date_range_id).collect();
    let mut substituted_ends: Vec<u64> = held.filter_map(|b| b.end_sequence).collect();
    let mut out: Vec<MediaSegment> = Vec::new();
    let mut head: Option<(u64, u64)> = None;
    let Checkpoint {
        seq: mut c,
        number: mut n,
        disc: mut d,
        mut forced,
    } = s.checkpoint;
    let mut checkpoint = s.checkpoint;
    // Each turn moves `c` forward by at least one.
    let mut turns: u64 = 0;
    while c <= newest {
        turns += 1;
        if turns > MAX_BREAK_SEGMENTS.saturating_mul(2) {
            return Err(Error::limit("ad insertion: too many segments to walk"));
        }
        if c <= w0 {
            checkpoint = Checkpoint {
                seq: c,
                number: n,
                disc: d,
                forced,
            };
        }
        let visible = by_first.get(&c).copied();
        // A break this session substitutes that the stream no longer lists (the session
        // did not reload for a long time) is walked as last seen.
        let remembered = match visible {
            Some(_) => None,
            None => s.plans.get(&c).and_then(|p| p.brk.clone()),
        };
        if let Some(b) = visible.or(remembered.as_ref()) {
            if visible.is_none() && b.end_sequence.is_none() {
                return Err(Error::usage(
                    "ad insertion: a break the session plans is no longer known",
                ));
            }
            if !s.plans.contains_key(&c) {
                let joined_after_end = b.end_sequence.is_some_and(|e| e <= s.join_newest);
                let frozen = s.frozen_from.is_some_and(|f| c >= f);
                if !joined_after_end && !frozen {
                    if s.plans.len() >= opts.max_plans_per_session {
                        s.frozen_from = Some(c);
                    } else {
                        let p = make_plan(b, session, live, decider, slate, opts);
                        s.plans.insert(c, p);
                    }
                }
            }
            if let Some(plan) = s.plans.get_mut(&c).filter(|p| p.substitutes()) {
                let span = break_span(b, live).ok_or(Error::usage(
                    "ad insertion: the break's content is no longer known",
                ))?;
                if visible.is_some() {
                    plan.brk = Some(b.clone());
                }
                dropped_ranges.push(b.date_range_id());
                let items = break_items(plan, &span, opts.max_items_per_break);
                // The window starts inside this break: items ending before it are gone.
                let w_off = if w0 <= b.first_sequence {
                    None
                } else if b.end_sequence.is_some_and(|e| w0 >= e) {
                    Some(i64::MAX)
                } else {
                    Some(
                        span.segments
                            .iter()
                            .find(|x| x.0 == w0)
                            .map_or(i64::MAX, |x| x.1),
                    )
                };
                // Content after the break follows ads (a discontinuity) unless the break
                // ended with the content's own segments.
                let continuous = match (items.last(), b.end_sequence) {
                    (
                        Some(BreakItem {
                            kind: ItemKind::Content(seq),
                            ..
                        }),
                        Some(e),
                    ) => seq.saturating_add(1) == e,
                    _ => false,
                };
                for it in items {
                    if w_off.is_none_or(|o| it.end_90k > o) {
                        let entry = match &it.kind {
                            ItemKind::Ad(creative, index) => {
                                let seg = creative.segments.get(*index).ok_or(Error::usage(
                                    "ad insertion: creative segment missing",
                                ))?;
                                let offset_ms = Timestamp::new(it.start_90k, CLOCK).as_millis();
                                Some(
                                    MediaSegment::new(
                                        format!("{}{}/{index}.ts", opts.ad_prefix, creative.id),
                                        seg.duration,
                                    )
                                    .with_discontinuity(it.discontinuity)
                                    .with_program_date_time(b.start_date.saturating_add(offset_ms)),
                                )
                            }
                            ItemKind::Content(seq) => content_entry(
                                live,
                                *seq,
                                it.discontinuity,
                                &dropped_ranges,
                                false,
                                &opts.content_prefix,
                            ),
                        };
                        if let Some(e) = entry {
                            head.get_or_insert((n, d));
                            out.push(e);
                        }
                    }
                    d += u64::from(it.discontinuity);
                    n += 1;
                }
                match b.end_sequence {
                    Some(e) if e > c => {
                        substituted_ends.push(e);
                        c = e;
                        forced = !continuous;
                        continue;
                    }
                    _ => break,
                }
            }
        }
        let seg = live.content(c).ok_or(Error::usage(
            "ad insertion: a content segment is no longer known",
        ))?;
        let flag = seg.discontinuity || forced;
        if c >= w0 {
            // A CUE-IN here closes a substituted break: dropped with its other markers.
            let keep_cue = !(substituted_ends.contains(&c)
                && matches!(
                    live.window(c).and_then(|x| x.cue.as_ref()),
                    Some(CueTag::In)
                ));
            let e = content_entry(
                live,
                c,
                flag,
                &dropped_ranges,
                keep_cue,
                &opts.content_prefix,
            )
            .ok_or(Error::usage("ad insertion: a window segment is missing"))?;
            head.get_or_insert((n, d));
            out.push(e);
        }
        d += u64::from(flag);
        n += 1;
        forced = false;
        c += 1;
    }
    s.checkpoint = checkpoint;
    // Plans of breaks behind the checkpoint go, once their end left the window too.
    s.plans.retain(|&first, p| {
        first >= checkpoint.seq
            || p.brk
                .as_ref()
                .and_then(|b| b.end_sequence)
                .is_some_and(|e| e >= w0)
    });
    let (msn, ds) = head.unwrap_or((n, d));
    let content = live.playlist;
    let mut pl = MediaPlaylist::new(PlaylistType::Live);
    pl.target_duration = content.target_duration;
    pl.independent_segments = content.independent_segments;
    pl.ended = content.ended;
    pl.media_sequence = msn;
    pl.discontinuity_sequence = ds;
    pl.segments = out.into();
    Ok(pl)
}

/// The content playlist as seen from a session's URL: every URI behind `prefix`,
/// nothing substituted (an origin without a decider).
pub fn passthrough_playlist(content: &MediaPlaylist, prefix: &str) -> MediaPlaylist {
    let mut pl = content.clone();
    for s in &mut pl.segments {
        s.uri = format!("{prefix}{}", s.uri);
    }
    pl
}

pub mod dash;
pub use dash::{CreativeCmaf, CreativeRendition, DashSessions, DashView};

#[cfg(test)]
mod tests;
