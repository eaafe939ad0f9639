//! [`LiveStream`]: one live stream packaged as HLS with MPEG-TS segments, a sliding
//! playlist window and a publisher lifecycle (connect, disconnect, reconnect, end); and
//! the same segments as CMAF fragments with fMP4 HLS playlists and a dynamic DASH MPD.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::container::fmp4::FragmentInfo;
use crate::container::ts::{TsMuxer, TsMuxerOptions};
use crate::error::{Error, Result};
use crate::media::{CueKind, Event, Item, MediaKind, SpliceCue, TrackInfo};
use crate::package::ads::{AdBreak, BreakTracker, DashAdMarkers};
use crate::package::cmaf::CmafPresentation;
use crate::package::hls::{
    BandwidthMeter, HlsAdMarkers, MediaPlaylist, MediaSegment, MultivariantPlaylist, PlaylistType,
    Variant,
};
use crate::package::{Segment, Segmenter, SegmenterOptions, Splicer, SplicerOptions};
use crate::pipeline::Stage;
use crate::time::{Timescale, Timestamp};

use super::live_cmaf::{LiveCmaf, LiveFragment};

/// Name of the media playlist, relative to the multivariant playlist.
pub const MEDIA_PLAYLIST: &str = "media.m3u8";
/// Name of the multivariant playlist.
pub const MULTIVARIANT_PLAYLIST: &str = "index.m3u8";
/// Most keyframe arrival times remembered for `EXT-X-PROGRAM-DATE-TIME` (bounds memory
/// when the segmenter never cuts, e.g. an audio-only reference with a huge target).
const MAX_ARRIVALS: usize = 4096;
/// Gap left between the last timestamp of a publisher and the first one of the next,
/// once its timestamps are moved to continue the stream (90 kHz): 1 s, enough for
/// B-frame reordering and audio pre-roll of the new publisher.
const JOIN_GAP_90K: i64 = 90_000;
/// After a publisher's timestamp discontinuity, a frame more than this (90 kHz, 2 s)
/// before the last timestamp written is moved to continue it...
const MAX_REBASE_SLACK_90K: i64 = 2 * 90_000;
/// ... and so is one more than this (10 s) after it.
const MAX_REBASE_GAP_90K: i64 = 10 * 90_000;
/// Latest wall-clock time accepted (Unix ms): 9999-12-31T23:59:59.999Z, the last
/// instant `EXT-X-PROGRAM-DATE-TIME` can express.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;
/// Ended ad breaks a stream remembers (for [`LiveStream::ad_breaks`]).
const MAX_BREAKS: usize = 256;

fn check_clock(now: i64) -> Result<()> {
    if (0..=MAX_UNIX_MS).contains(&now) {
        Ok(())
    } else {
        Err(Error::usage(
            "live stream: `now` must be Unix milliseconds in years 1970..=9999",
        ))
    }
}

/// Most a first segment is shortened to by [`FirstSegment::Short`]: 500 ms.
pub const SHORT_FIRST_SEGMENT: Timestamp = Timestamp::new(500, Timescale::MILLIS);

/// How long the first segment of each publisher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FirstSegment {
    /// Cut at the first reference keyframe at least [`SHORT_FIRST_SEGMENT`] (or the
    /// target, if smaller) after the start: with video, the next keyframe, so the
    /// first playlist is ready one GOP after the publisher's first keyframe instead
    /// of after a whole target duration.
    #[default]
    Short,
    /// Like every other segment: at least the target duration.
    Full,
}

/// Options of a [`LiveStream`]. Each field's doc states its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LiveStreamOptions {
    /// Segmenter options. Default: [`SegmenterOptions::default`] with a 2 s target.
    pub segmenter: SegmenterOptions,
    /// MPEG-TS muxer options. Default: [`TsMuxerOptions::default`].
    pub ts: TsMuxerOptions,
    /// Segments listed in the live media playlist (the sliding window, RFC 8216bis
    /// §6.2.2 asks for at least three target durations). Default: 6. Values below 1
    /// are treated as 1.
    pub window: usize,
    /// How long a stream may stay without a publisher before it ends (its playlist
    /// gets `EXT-X-ENDLIST`), in milliseconds. Default: 30 000.
    pub idle_timeout_ms: i64,
    /// Length of each publisher's first segment. Default: [`FirstSegment::Short`].
    pub first_segment: FirstSegment,
    /// Sequence number of the first segment. Default: 0. An origin that replaces an
    /// ended stream by a new one of the same name continues the numbering so that
    /// segment URLs (cached as immutable) are never reused. Also the number of the
    /// first CMAF fragment of each rendition.
    pub first_sequence: u64,
    /// Also write every segment as CMAF: one fragment per track
    /// ([`LiveSegment::fragments`]), fMP4 HLS playlists and a dynamic DASH MPD, over
    /// the same window. Default: `true`.
    pub cmaf: bool,
    /// How ad cues ([`Event::Cue`]) are held until their splice time and placed at a
    /// keyframe, where the segment is cut. Default: [`SplicerOptions::default`].
    pub splicer: SplicerOptions,
    /// Ad-marker dialects of the MPEG-TS media playlist. Default: both
    /// (`EXT-X-DATERANGE` and `EXT-X-CUE-OUT` / `-CONT` / `-IN`).
    pub ad_markers: HlsAdMarkers,
    /// Ad-marker dialects of the fMP4 media playlists. Default: both.
    pub cmaf_ad_markers: HlsAdMarkers,
    /// Ad signalling of the DASH MPD and the fMP4 fragments. Default: a Period
    /// `EventStream` and version 1 `emsg` boxes.
    pub dash_ad_markers: DashAdMarkers,
}

impl Default for LiveStreamOptions {
    fn default() -> Self {
        LiveStreamOptions {
            segmenter: SegmenterOptions {
                target_duration: Timestamp::from_secs(2),
                ..SegmenterOptions::default()
            },
            ts: TsMuxerOptions::default(),
            window: 6,
            idle_timeout_ms: 30_000,
            first_segment: FirstSegment::Short,
            first_sequence: 0,
            cmaf: true,
            splicer: SplicerOptions::default(),
            ad_markers: HlsAdMarkers::default(),
            cmaf_ad_markers: HlsAdMarkers::default(),
            dash_ad_markers: DashAdMarkers::default(),
        }
    }
}

/// An operator's request for an ad break ([`LiveStream::insert_cue`], the origin's
/// `POST /live/{stream}/cue`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CueRequest {
    /// Splice event id; default: the stream's next one.
    pub id: Option<u32>,
    /// Planned break duration, milliseconds; the break returns by itself after it.
    pub duration_ms: Option<i64>,
    /// Wall-clock splice time, Unix milliseconds; default: now (the next keyframe).
    pub start: Option<i64>,
    /// [`CueKind::Out`] (a break starts, the default) or [`CueKind::In`] (it ends now).
    pub kind: CueKind,
}

impl Default for CueRequest {
    fn default() -> Self {
        CueRequest {
            id: None,
            duration_ms: None,
            start: None,
            kind: CueKind::Out,
        }
    }
}

impl CueRequest {
    /// A break of `duration_ms` starting now.
    pub fn out(duration_ms: i64) -> Self {
        CueRequest {
            duration_ms: Some(duration_ms),
            ..CueRequest::default()
        }
    }

    /// Parses the request's parameters: `id`, `duration` (seconds, up to three
    /// decimals: `30`, `29.97`), `start` (Unix milliseconds) and `kind` (`out` or
    /// `in`), from a query or form string (`duration=30&id=7`) or a flat JSON object
    /// (`{"duration": 30, "id": 7}`).
    ///
    /// Errors: [`Error::malformed`] for an unknown or repeated name, a bad value, or
    /// nesting.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let json = text.starts_with('{');
        let body = if json {
            text.strip_prefix('{')
                .and_then(|t| t.strip_suffix('}'))
                .ok_or(Error::malformed("cue request: unterminated JSON object"))?
        } else {
            text
        };
        let mut req = CueRequest::default();
        let mut seen = [false; 4];
        let sep = if json { ',' } else { '&' };
        for part in body.split(sep).map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = if json {
                part.split_once(':')
            } else {
                part.split_once('=')
            }
            .ok_or(Error::malformed("cue request: expected name and value"))?;
            let unquote = |x: &str| {
                let x = x.trim();
                x.strip_prefix('"')
                    .and_then(|y| y.strip_suffix('"'))
                    .unwrap_or(x)
                    .to_string()
            };
            let (k, v) = (unquote(k), unquote(v));
            if v.contains(['{', '[', '"']) {
                return Err(Error::malformed("cue request: nested or bad value"));
            }
            let bad = || Error::malformed("cue request: bad value").context(k.clone());
            let slot = match k.as_str() {
                "id" => {
                    req.id = Some(v.parse().map_err(|_| bad())?);
                    0
                }
                "duration" => {
                    req.duration_ms = Some(decimal_millis(&v).ok_or_else(bad)?);
                    1
                }
                "start" => {
                    req.start = Some(v.parse().map_err(|_| bad())?);
                    2
                }
                "kind" => {
                    req.kind = match v.as_str() {
                        "out" => CueKind::Out,
                        "in" => CueKind::In,
                        _ => return Err(bad()),
                    };
                    3
                }
                "token" | "key" => continue,
                _ => return Err(Error::malformed("cue request: unknown parameter").context(k)),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(Error::malformed("cue request: repeated parameter"));
            }
        }
        Ok(req)
    }
}

/// `"29.97"` seconds as 29 970 ms: digits, at most three decimals, no sign, no float.
fn decimal_millis(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || whole.len() > 9 || frac.len() > 3 {
        return None;
    }
    if !whole
        .bytes()
        .chain(frac.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..3 {
        f *= 10;
    }
    Some(w * 1000 + f)
}

/// A finished MPEG-TS segment, ready for a [`super::SegmentStore`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LiveSegment {
    /// Media sequence number (also its URI: `{sequence}.ts`).
    pub sequence: u64,
    /// Media time of its first frame (the publisher's clock, as the segmenter cut it).
    pub start: Timestamp,
    /// Exact duration.
    pub duration: Timestamp,
    /// Wall-clock time (Unix ms) when its first frame was pushed.
    pub program_date_time: i64,
    /// It follows a discontinuity (`EXT-X-DISCONTINUITY` before it in the playlist).
    pub discontinuity: bool,
    /// TS packets: PAT, PMT, then the frames; decodable alone.
    pub data: Bytes,
    /// The same segment as CMAF, one fragment per track (empty when
    /// [`LiveStreamOptions::cmaf`] is off). Store each (and its new init segment)
    /// before serving the manifests.
    pub fragments: Vec<LiveFragment>,
    /// Its place in an ad break, if it is in one (kept in the store's records).
    pub ad: Option<super::AdMark>,
}

/// Where a [`LiveStream`] is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveState {
    /// A publisher is connected and frames may be pushed.
    Publishing,
    /// The publisher left at this time (Unix ms); a new one may continue the
    /// stream. Also the state of a new stream before its first publisher
    /// (`since: 0`).
    Idle {
        /// When the publisher disconnected (Unix ms).
        since: i64,
    },
    /// No publisher came back within the idle timeout: the playlist has `EXT-X-ENDLIST`.
    Ended {
        /// When the stream ended (Unix ms).
        at: i64,
    },
}

/// A snapshot of a [`LiveStream`] for dashboards (`/streams.json`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamStats {
    /// RFC 6381 codec strings of the current tracks, comma separated.
    pub codecs: String,
    /// Video resolution in pixels, if there is video.
    pub resolution: Option<(u32, u32)>,
    /// Video frame rate (num, den), if the SPS signals it.
    pub frame_rate: Option<(u32, u32)>,
    /// Measured bit rate over the segments of the playlist window, bits/s (0 before
    /// the first segment).
    pub bitrate: u64,
    /// Milliseconds since the first publisher connected.
    pub uptime_ms: i64,
    /// TS bytes produced so far.
    pub bytes: u64,
    /// Segments produced so far.
    pub segments: u64,
    /// Media payload bytes held for the segment being built (its frames, until the
    /// next cut).
    pub pending_bytes: u64,
    /// Publishers that connected so far (1 + reconnects).
    pub publishes: u64,
    /// Lifecycle state.
    pub state: LiveState,
}

/// Per-publish state: a fresh segmenter, and the shift applied to its timestamps.
#[derive(Debug)]
struct Session {
    /// Holds cues until their keyframe, in front of the segmenter.
    splicer: Splicer,
    segmenter: Segmenter,
    /// Added to every timestamp of this publisher (90 kHz), decided at its first frame.
    offset_90k: Option<i64>,
    /// The first segment of this session is marked discontinuous (not for the first).
    join: bool,
    /// The segmenter runs with a short first target, to restore after one segment.
    restore_target: bool,
    /// A timestamp discontinuity was announced: check the next frame.
    rebase_pending: bool,
    /// Audio tracks declared by this publisher (every frame of an audio reference
    /// is a sync point).
    audio_tracks: Vec<u32>,
}

impl Session {
    /// Moves what the splicer has ready into the segmenter.
    fn feed_ready(&mut self) -> Result<()> {
        while let Some(item) = self.splicer.poll() {
            self.segmenter.push(item?)?;
        }
        Ok(())
    }
}

/// One live stream: frames of a publisher in, MPEG-TS segments and live HLS
/// playlists out. Sans-IO: the host passes the wall clock (`now`, Unix milliseconds)
/// to every call and moves the segments to a store ([`LiveStream::poll_segment`]).
///
/// * Frames are cut by a [`Segmenter`] (default target 2 s) and muxed by one
///   [`TsMuxer`] whose continuity counters and PCR carry on across segments and
///   across publishers.
/// * The media playlist (RFC 8216bis §4.4.3, version 3) is a sliding window of
///   [`LiveStreamOptions::window`] segments: `EXT-X-MEDIA-SEQUENCE` rises by one per
///   segment removed (§6.2.2), `EXT-X-TARGETDURATION` is floored at the configured
///   target so it does not change, every segment has `EXT-X-PROGRAM-DATE-TIME` from
///   the host clock when its first frame was pushed (§4.4.4.6), and there is no
///   `EXT-X-ENDLIST` until the stream ends.
/// * A publisher that leaves ([`publisher_disconnected`](Self::publisher_disconnected))
///   flushes its open segment. A new one ([`publisher_connected`](Self::publisher_connected))
///   continues the same stream: sequence numbers go on, its first segment carries
///   `EXT-X-DISCONTINUITY` (§4.4.4.3; `EXT-X-DISCONTINUITY-SEQUENCE` rises when it
///   leaves the window), and its timestamps are shifted to continue after the
///   previous publisher's (1 s after its last timestamp), so PTS, DTS and PCR stay
///   monotonic in the transport stream. The same happens within a publisher after
///   an [`Event::Discontinuity`] for all tracks (its clock was reset, or jumped more
///   than 10 s forward). Timed events ([`Event::Cue`],
///   [`Event::Data`]) are shifted with them; a publisher's events that come before
///   its first frame are not shifted.
/// * Each publisher's first segment is cut at its next keyframe by default
///   ([`FirstSegment::Short`]), so the first playlist is ready one GOP after the
///   publisher's first keyframe; `EXT-X-TARGETDURATION` is unaffected.
/// * [`tick`](Self::tick) ends a stream left without a publisher for
///   [`LiveStreamOptions::idle_timeout_ms`]: `EXT-X-ENDLIST` is written.
/// * With [`LiveStreamOptions::cmaf`] (the default) every segment is also written as
///   CMAF, one fragment per track ([`LiveSegment::fragments`], numbered like the
///   segments), listed by fMP4 HLS playlists
///   ([`cmaf_multivariant_playlist_bytes`](Self::cmaf_multivariant_playlist_bytes))
///   and a dynamic DASH MPD ([`mpd_bytes`](Self::mpd_bytes)) whose
///   `availabilityStartTime` is the wall-clock time of media time 0: a fragment is
///   listed there only once the wall clock passed its end, and a joining publisher's
///   media time is moved to the wall clock (the timeline stays contiguous).
///
/// ```
/// use bytes::Bytes;
/// use strom::bitstream::aac::build_asc;
/// use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
/// use strom::origin::LiveStream;
/// use strom::time::{Timescale, Timestamp};
///
/// let scale = Timescale::new(48_000).unwrap();
/// let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
/// let mut live = LiveStream::new(Default::default()).unwrap();
/// live.publisher_connected(1_700_000_000_000).unwrap();
/// live.push(Event::TrackAdded(TrackInfo::new(2, scale, CodecConfig::Aac(aac))).into(), 1_700_000_000_000).unwrap();
/// for i in 0..300i64 {
///     let t = Timestamp::new(i * 1024, scale);
///     let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
///         .with_flags(FrameFlags::KEYFRAME);
///     live.push(Item::Frame(f), 1_700_000_000_000 + i * 21).unwrap();
/// }
/// let seg = live.poll_segment().unwrap();
/// assert_eq!(seg.sequence, 0);
/// assert!(live.media_playlist().unwrap().contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z"));
/// ```
#[derive(Debug)]
pub struct LiveStream {
    opts: LiveStreamOptions,
    session: Option<Session>,
    muxer: Option<(Vec<TrackInfo>, TsMuxer)>,
    playlist: MediaPlaylist,
    /// (bytes, duration) of the segments in the window, for the measured bit rate.
    window_rates: VecDeque<(u64, Timestamp)>,
    meter: BandwidthMeter,
    /// Tracks of the newest segment.
    tracks: Vec<TrackInfo>,
    next_sequence: u64,
    ready: VecDeque<LiveSegment>,
    /// (presentation time, Unix ms) of reference keyframes pushed and not yet segmented.
    arrivals: VecDeque<(Timestamp, i64)>,
    /// Largest PTS or DTS written so far, 90 kHz after shifting.
    high_water_90k: Option<i64>,
    state: LiveState,
    started_at: Option<i64>,
    publishes: u64,
    bytes: u64,
    segments: u64,
    /// Size of the last segment, to size the next one's buffer.
    last_segment_len: usize,
    /// Playlist texts, rebuilt when the window changes, shared by every request.
    media_text: Option<Bytes>,
    multi_text: Option<Bytes>,
    /// The CMAF packaging, while [`LiveStreamOptions::cmaf`] is on and it has not failed.
    cmaf: Option<LiveCmaf>,
    /// Why the CMAF packaging stopped.
    cmaf_error: Option<Error>,
    /// Ad breaks of the MPEG-TS segments.
    breaks: BreakTracker,
    /// Next id of an operator's cue without one.
    next_cue_id: u32,
}

impl LiveStream {
    /// A stream with `opts`, waiting for its first publisher.
    ///
    /// Errors: [`Error::usage`] for invalid segmenter options.
    pub fn new(opts: LiveStreamOptions) -> Result<Self> {
        // Validates the options once, so later sessions cannot fail to start.
        Segmenter::new(opts.segmenter.clone())?;
        let mut playlist = MediaPlaylist::new(PlaylistType::Live);
        let target_ms = opts.segmenter.target_duration.as_millis().max(1);
        playlist.target_duration = Some(((target_ms + 999) / 1000) as u64);
        playlist.media_sequence = opts.first_sequence;
        let cmaf = opts.cmaf.then(|| {
            LiveCmaf::new(
                opts.window,
                opts.first_sequence,
                opts.segmenter.target_duration,
                opts.cmaf_ad_markers,
                opts.dash_ad_markers,
            )
        });
        Ok(LiveStream {
            next_sequence: opts.first_sequence,
            opts,
            session: None,
            muxer: None,
            playlist,
            window_rates: VecDeque::new(),
            meter: BandwidthMeter::new(),
            tracks: Vec::new(),
            ready: VecDeque::new(),
            arrivals: VecDeque::new(),
            high_water_90k: None,
            state: LiveState::Idle { since: 0 },
            started_at: None,
            publishes: 0,
            bytes: 0,
            segments: 0,
            last_segment_len: 0,
            media_text: None,
            multi_text: None,
            cmaf,
            cmaf_error: None,
            breaks: BreakTracker::new(MAX_BREAKS),
            next_cue_id: 1,
        })
    }

    /// The options of this stream.
    pub fn options(&self) -> &LiveStreamOptions {
        &self.opts
    }

    /// Lifecycle state.
    pub fn state(&self) -> LiveState {
        self.state
    }

    /// Whether the stream ended (its playlist has `EXT-X-ENDLIST`).
    pub fn is_ended(&self) -> bool {
        matches!(self.state, LiveState::Ended { .. })
    }

    /// The sequence number the next segment will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The number the next segment or CMAF fragment gets at least: a stream that
    /// replaces this one after its end starts here
    /// ([`LiveStreamOptions::first_sequence`]), so no URL is reused.
    pub fn next_number(&self) -> u64 {
        let cmaf = self.cmaf.as_ref().map_or(0, LiveCmaf::next_number);
        self.next_sequence.max(cmaf)
    }

    /// Whether the media playlist lists at least one segment.
    pub fn has_segments(&self) -> bool {
        !self.playlist.segments.is_empty()
    }

    /// The live media playlist model (window, sequence numbers, dates).
    pub fn playlist(&self) -> &MediaPlaylist {
        &self.playlist
    }

    /// Takes up a stream an earlier process stored (after a restart, even a crash):
    /// `window` are the index records of its newest MPEG-TS segments, oldest first,
    /// and `tracks` its tracks (from a stored init segment). The media playlist lists
    /// them again, numbering continues after the last, and the stream waits, idle
    /// since `now`, for its publisher: the first segment of the next one follows a
    /// discontinuity. The multivariant playlist needs `tracks` for `CODECS`; the
    /// CMAF playlists and the MPD restart with the publisher's next segment.
    ///
    /// Errors: [`Error::usage`] on a stream that already has segments or a
    /// publisher, an empty `window`, or numbers that do not follow one another.
    pub fn restore(
        &mut self,
        window: &[super::SegmentRecord],
        tracks: Vec<TrackInfo>,
        now: i64,
    ) -> Result<()> {
        if self.publishes > 0 || !self.playlist.segments.is_empty() {
            return Err(Error::usage("live stream: restore into a used stream"));
        }
        let (Some(first), Some(last)) = (window.first(), window.last()) else {
            return Err(Error::usage("live stream: nothing to restore"));
        };
        if window
            .windows(2)
            .any(|w| w[1].number != w[0].number.saturating_add(1))
        {
            return Err(Error::usage(
                "live stream: restored segments must be numbered one after another",
            ));
        }
        let keep = self.opts.window.max(1);
        let window = &window[window.len().saturating_sub(keep)..];
        let first = window.first().unwrap_or(first);
        self.playlist.media_sequence = first.number;
        self.playlist.discontinuity_sequence = first.discontinuity_sequence;
        for r in window {
            self.playlist.push_segment(
                MediaSegment::new(format!("{}.ts", r.number), r.duration)
                    .with_discontinuity(r.discontinuity)
                    .with_program_date_time(r.program_date_time),
            );
            self.meter.record(r.size, r.duration);
            self.window_rates.push_back((r.size, r.duration));
        }
        self.next_sequence = last.number.saturating_add(1);
        self.tracks = tracks;
        self.publishes = 1;
        self.started_at = Some(first.program_date_time);
        self.state = LiveState::Idle {
            since: now.clamp(0, MAX_UNIX_MS),
        };
        if let Some(c) = &mut self.cmaf {
            let next = self.next_sequence.max(c.next_number());
            *c = LiveCmaf::new(
                self.opts.window,
                next,
                self.opts.segmenter.target_duration,
                self.opts.cmaf_ad_markers,
                self.opts.dash_ad_markers,
            );
        }
        self.refresh()
    }

    /// A publisher starts (or resumes) the stream at `now` (Unix ms).
    ///
    /// Errors: [`Error::usage`] when a publisher is already connected or the stream
    /// has ended (a playlist with `EXT-X-ENDLIST` must not change, RFC 8216bis
    /// §6.2.1: start a new `LiveStream` with
    /// [`LiveStreamOptions::first_sequence`] set to [`next_sequence`](Self::next_sequence)).
    pub fn publisher_connected(&mut self, now: i64) -> Result<()> {
        check_clock(now)?;
        match self.state {
            LiveState::Publishing => {
                return Err(Error::usage(
                    "live stream: a publisher is already connected",
                ))
            }
            LiveState::Ended { .. } => return Err(Error::usage("live stream: stream has ended")),
            LiveState::Idle { .. } => {}
        }
        let mut segmenter = Segmenter::new(self.opts.segmenter.clone())?;
        let short = self.opts.first_segment == FirstSegment::Short;
        if short {
            let target = self.opts.segmenter.target_duration;
            segmenter.set_target_duration(target.min(SHORT_FIRST_SEGMENT))?;
        }
        self.session = Some(Session {
            splicer: Splicer::new(self.opts.splicer.clone()),
            restore_target: short,
            segmenter,
            offset_90k: None,
            rebase_pending: false,
            join: self.publishes > 0,
            audio_tracks: Vec::new(),
        });
        self.arrivals.clear();
        self.publishes += 1;
        self.started_at.get_or_insert(now);
        self.state = LiveState::Publishing;
        Ok(())
    }

    /// The publisher left at `now` (Unix ms): its open segment is flushed into the
    /// playlist. Does nothing when no publisher is connected.
    ///
    /// Errors: a muxing error of the flushed segment (the segment is dropped; the
    /// stream stays usable).
    pub fn publisher_disconnected(&mut self, now: i64) -> Result<()> {
        if self.state != LiveState::Publishing {
            return Ok(());
        }
        let now = now.clamp(0, MAX_UNIX_MS);
        self.state = LiveState::Idle { since: now };
        let Some(mut session) = self.session.take() else {
            return Ok(());
        };
        let flushed = session.splicer.finish().and_then(|()| session.feed_ready());
        session.segmenter.finish()?;
        let collected = self.collect(&mut session, now);
        flushed.and(collected)
    }

    /// Advances the clock to `now` (Unix ms): a stream without a publisher for
    /// [`LiveStreamOptions::idle_timeout_ms`] ends. Returns `true` when this call
    /// ended it.
    pub fn tick(&mut self, now: i64) -> bool {
        match self.state {
            LiveState::Idle { since }
                if self.publishes > 0 && now.saturating_sub(since) >= self.opts.idle_timeout_ms =>
            {
                self.state = LiveState::Ended { at: now };
                self.playlist.ended = true;
                // Cannot fail: the window was written before, ENDLIST adds no input.
                let _ = self.refresh();
                let r = self.cmaf.as_mut().map(|c| c.set_ended(now));
                self.cmaf_result(r);
                true
            }
            _ => {
                let r = self.cmaf.as_mut().map(|c| c.catch_up(now));
                self.cmaf_result(r);
                false
            }
        }
    }

    /// Keeps a CMAF error: the CMAF packaging stops, MPEG-TS goes on.
    fn cmaf_result<T>(&mut self, r: Option<Result<T>>) -> Option<T> {
        match r? {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!("live stream: CMAF packaging stops: {e}");
                self.cmaf = None;
                self.cmaf_error = Some(e.context("CMAF"));
                None
            }
        }
    }

    /// Pushes one item of the publisher (from an FLV demuxer or an RTMP session) at
    /// wall-clock `now` (Unix ms). Finished segments become ready for
    /// [`poll_segment`](Self::poll_segment).
    ///
    /// Errors: [`Error::usage`] without a connected publisher or for a `now` outside
    /// years 1970..=9999 (nothing is pushed then); segmenter and muxer
    /// errors (limits, malformed payloads) for this item, after which the stream
    /// stays usable.
    pub fn push(&mut self, item: Item, now: i64) -> Result<()> {
        check_clock(now)?;
        if self.state != LiveState::Publishing {
            return Err(Error::usage("live stream: push without a publisher"));
        }
        let Some(mut session) = self.session.take() else {
            return Err(Error::usage("live stream: push without a publisher"));
        };
        let r = self.push_in(&mut session, item, now);
        let c = self.collect(&mut session, now);
        self.session = Some(session);
        let caught = self.cmaf.as_mut().map(|c| c.catch_up(now));
        self.cmaf_result(caught);
        r.and(c)
    }

    fn push_in(&mut self, session: &mut Session, item: Item, now: i64) -> Result<()> {
        let item = match item {
            Item::Frame(mut f) => {
                let dts = f.dts.ticks_in(Timescale::MPEG);
                let rebase = |high: i64| high.saturating_add(JOIN_GAP_90K).saturating_sub(dts);
                if std::mem::take(&mut session.rebase_pending) {
                    // After a timestamp discontinuity of the publisher: keep the
                    // shift if this frame still fits the timeline (the other track's
                    // jump already rebased it), else continue after the last frame.
                    if let (Some(off), Some(high)) = (session.offset_90k, self.high_water_90k) {
                        let at = dts.saturating_add(off);
                        if at.saturating_add(MAX_REBASE_SLACK_90K) < high
                            || at > high.saturating_add(MAX_REBASE_GAP_90K)
                        {
                            session.offset_90k = Some(rebase(high));
                        }
                    }
                }
                let offset = *session.offset_90k.get_or_insert_with(|| {
                    // Continue after the previous publisher.
                    self.high_water_90k.map_or(0, rebase)
                });
                if offset != 0 {
                    let shift = Timestamp::new(offset, Timescale::MPEG);
                    f.dts = f.dts.add(shift);
                    f.pts = f.pts.add(shift);
                }
                let high = f.pts.max(f.dts).ticks_in(Timescale::MPEG);
                self.high_water_90k = Some(self.high_water_90k.map_or(high, |h| h.max(high)));
                let reference = session.segmenter.reference_track();
                let is_ref = reference == Some(f.track);
                if is_ref && (f.is_keyframe() || session.audio_tracks.contains(&f.track)) {
                    if self.arrivals.len() >= MAX_ARRIVALS {
                        self.arrivals.pop_front();
                    }
                    self.arrivals.push_back((f.pts, now));
                }
                Item::Frame(f)
            }
            Item::Event(Event::EndOfStream) => return Ok(()),
            Item::Event(mut ev) => {
                if let Event::Discontinuity { track: None } = ev {
                    session.rebase_pending = true;
                }
                if let Event::TrackAdded(t) | Event::TrackChanged(t) = &ev {
                    session.audio_tracks.retain(|&id| id != t.id);
                    if t.kind == MediaKind::Audio && session.audio_tracks.len() < 64 {
                        session.audio_tracks.push(t.id);
                    }
                }
                // Timed events move with the frames of their publisher.
                let shift = Timestamp::new(session.offset_90k.unwrap_or(0), Timescale::MPEG);
                if shift.ticks() != 0 {
                    match &mut ev {
                        Event::Cue(c) => c.at = c.at.add(shift),
                        Event::Data { at, .. } => *at = at.add(shift),
                        _ => {}
                    }
                }
                Item::Event(ev)
            }
        };
        session.splicer.push(item)?;
        session.feed_ready()
    }

    fn collect(&mut self, session: &mut Session, now: i64) -> Result<()> {
        let mut first_err = None;
        while let Some(seg) = session.segmenter.poll() {
            if std::mem::take(&mut session.restore_target) {
                let target = self.opts.segmenter.target_duration;
                if let Err(e) = session.segmenter.set_target_duration(target) {
                    first_err.get_or_insert(e);
                }
            }
            let r = seg.and_then(|mut seg| {
                if std::mem::take(&mut session.join) {
                    seg.discontinuity = true;
                }
                self.publish_segment(seg, now)
            });
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e.context("live stream")),
            None => Ok(()),
        }
    }

    /// The wall-clock time the segment starting at `start` began arriving.
    fn arrival_of(&mut self, start: Timestamp, now: i64) -> i64 {
        while let Some(&(pts, at)) = self.arrivals.front() {
            if pts < start {
                self.arrivals.pop_front();
            } else if pts == start {
                self.arrivals.pop_front();
                return at;
            } else {
                break;
            }
        }
        now
    }

    fn publish_segment(&mut self, mut seg: Segment, now: i64) -> Result<()> {
        // The stream's numbering, which goes on across publishers (the segmenter's
        // restarts with each).
        seg.sequence = self.next_sequence;
        let pdt = self.arrival_of(seg.start, now);
        let same = matches!(&self.muxer, Some((t, _)) if t.iter().map(|x| x.id).eq(seg.tracks.iter().map(|x| x.id)));
        if !same {
            // A new track set needs new PIDs: a new muxer. Its continuity counters
            // restart, which players accept because the segment is discontinuous.
            let m = TsMuxer::new(&seg.tracks, self.opts.ts.clone())?;
            self.muxer = Some((seg.tracks.clone(), m));
        }
        let (tracks, muxer) = self.muxer.as_mut().ok_or(Error::usage("no muxer"))?;
        // A fresh buffer per segment, sized from the previous one; a stored segment
        // keeps exactly its bytes (no spare capacity pinned for the window's life).
        let mut buf = BytesMut::with_capacity(self.last_segment_len + self.last_segment_len / 8);
        muxer.write_segment(&seg, &mut buf)?;
        tracks.clone_from(&seg.tracks);
        let data = if buf.capacity() - buf.len() > buf.len() / 32 {
            Bytes::copy_from_slice(&buf)
        } else {
            buf.freeze()
        };
        self.last_segment_len = data.len();
        self.tracks.clone_from(&seg.tracks);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let len = data.len() as u64;
        self.bytes += len;
        self.segments += 1;
        self.meter.record(len, seg.duration);
        self.window_rates.push_back((len, seg.duration));
        let ads = self
            .breaks
            .on_segment(sequence, seg.start, pdt, &seg.events);
        let mut entry = MediaSegment::new(format!("{sequence}.ts"), seg.duration)
            .with_discontinuity(seg.discontinuity)
            .with_program_date_time(pdt);
        (entry.date_ranges, entry.cue) = ads.hls(self.opts.ad_markers);
        let ad = match (&ads.started, self.breaks.active()) {
            (Some(b), _) => Some(super::AdMark::new(true, b.segmentation_type)),
            (None, Some(b)) if ads.inside.is_some() => {
                Some(super::AdMark::new(false, b.segmentation_type))
            }
            _ => None,
        };
        self.playlist.push_segment(entry);
        while self.playlist.segments.len() > self.opts.window.max(1) {
            self.playlist.pop_front();
            self.window_rates.pop_front();
        }
        self.refresh()?;
        let written = self.cmaf.as_mut().map(|c| c.write(&seg, pdt, now));
        let fragments = self.cmaf_result(written).unwrap_or_default();
        self.ready.push_back(LiveSegment {
            sequence,
            start: seg.start,
            duration: seg.duration,
            program_date_time: pdt,
            discontinuity: seg.discontinuity,
            data,
            fragments,
            ad,
        });
        Ok(())
    }

    /// The ad breaks of the stream's segments: the newest ended ones, then the one in
    /// force. Times are on the MPEG-TS timeline of [`LiveSegment::start`].
    pub fn ad_breaks(&self) -> impl Iterator<Item = &AdBreak> {
        self.breaks.breaks()
    }

    /// The id of the ad break in force at the newest segment, if one is.
    pub fn in_ad_break(&self) -> Option<u32> {
        self.breaks.active().map(|b| b.id)
    }

    /// An operator's cue at `now` (Unix ms): an ad break of `req.duration` starting at
    /// the wall-clock time `req.start` (default: now), placed at the first keyframe
    /// at or after it like any SCTE-35 cue. The cue carries a `splice_insert` section
    /// (SCTE 35 §9.7.3) with the splice time on the stream's output timeline, so
    /// every manifest dialect has its bytes. Returns the cue as scheduled.
    ///
    /// Errors: [`Error::usage`] without a publisher or before its first frame; the
    /// splicer's refusals (too far ahead, queue full).
    pub fn insert_cue(&mut self, req: &CueRequest, now: i64) -> Result<SpliceCue> {
        check_clock(now)?;
        if self.state != LiveState::Publishing {
            return Err(Error::usage("live stream: cue without a publisher"));
        }
        let Some(high) = self.high_water_90k else {
            return Err(Error::usage("live stream: cue before the first frame"));
        };
        let Some(mut session) = self.session.take() else {
            return Err(Error::usage("live stream: cue without a publisher"));
        };
        let at = match req.start {
            Some(start) => high.saturating_add(start.saturating_sub(now).saturating_mul(90)),
            None => high,
        };
        let id = req.id.unwrap_or_else(|| {
            let id = self.next_cue_id;
            self.next_cue_id = self.next_cue_id.wrapping_add(1).max(1);
            id
        });
        let duration = req.duration_ms.filter(|&d| d > 0).map(|d| {
            Timestamp::from_millis(d).rescale(Timescale::MPEG, crate::time::Rounding::Nearest)
        });
        let out = req.kind != CueKind::In;
        let pts = u64::try_from(at.max(0)).unwrap_or(0);
        let raw = crate::scte35::splice_insert_section(
            id,
            out,
            Some(pts),
            duration.filter(|_| out).map(|d| d.ticks().max(0) as u64),
            true,
        );
        let kind = if out { CueKind::Out } else { CueKind::In };
        let mut cue = SpliceCue::new(
            id,
            kind,
            Timestamp::new(at, Timescale::MPEG),
            duration.filter(|_| out),
        )
        .with_raw(raw);
        cue.immediate = req.start.is_none();
        let r = session
            .splicer
            .push(Item::Event(Event::Cue(cue.clone())))
            .and_then(|()| session.feed_ready());
        let c = self.collect(&mut session, now);
        self.session = Some(session);
        r.and(c).map(|()| cue)
    }

    /// The next finished segment, to be stored under its sequence number before the
    /// playlist that lists it is served. Poll until `None` after every call that
    /// may finish a segment ([`push`](Self::push),
    /// [`publisher_disconnected`](Self::publisher_disconnected)); [`super::Origin`]
    /// does this.
    pub fn poll_segment(&mut self) -> Option<LiveSegment> {
        self.ready.pop_front()
    }

    /// The live media playlist text (RFC 8216bis §4.4.3); segment URIs are
    /// `{sequence}.ts`, relative to the playlist.
    ///
    /// Errors: [`Error::usage`] before the first segment (nothing to play yet).
    pub fn media_playlist(&self) -> Result<String> {
        if self.playlist.segments.is_empty() {
            return Err(Error::usage("live stream: no segment yet"));
        }
        self.playlist.write()
    }

    /// The multivariant playlist text (RFC 8216bis §4.4.6): one variant,
    /// [`MEDIA_PLAYLIST`], with the measured peak and average `BANDWIDTH`, `CODECS`,
    /// `RESOLUTION` and `FRAME-RATE` of the current tracks.
    ///
    /// Errors: [`Error::usage`] before the first segment.
    pub fn multivariant_playlist(&self) -> Result<String> {
        if self.playlist.segments.is_empty() {
            return Err(Error::usage("live stream: no segment yet"));
        }
        let stats = self.stats(0);
        let mut v = Variant::new(MEDIA_PLAYLIST, self.meter.peak().max(1), stats.codecs);
        v.average_bandwidth = Some(self.meter.average().max(1));
        v.resolution = stats.resolution;
        v.frame_rate = stats.frame_rate;
        let mut mv = MultivariantPlaylist::new();
        mv.variants.push(v);
        mv.write()
    }

    /// Rebuilds the cached playlist texts; on error none is served.
    fn refresh(&mut self) -> Result<()> {
        let texts = self
            .media_playlist()
            .and_then(|m| Ok((m, self.multivariant_playlist()?)));
        match texts {
            Ok((m, mv)) => {
                self.media_text = Some(Bytes::from(m));
                self.multi_text = Some(Bytes::from(mv));
                Ok(())
            }
            Err(e) => {
                self.media_text = None;
                self.multi_text = None;
                Err(e)
            }
        }
    }

    /// The text of [`media_playlist`](Self::media_playlist) as of the last change
    /// (a new segment, the end), shared: serving it costs a reference count.
    /// `None` before the first segment.
    pub fn media_playlist_bytes(&self) -> Option<Bytes> {
        self.media_text.clone()
    }

    /// The text of [`multivariant_playlist`](Self::multivariant_playlist) as of the
    /// last new segment, shared. `None` before the first segment.
    pub fn multivariant_playlist_bytes(&self) -> Option<Bytes> {
        self.multi_text.clone()
    }

    /// The CMAF presentation (renditions, their playlists and timelines), while
    /// [`LiveStreamOptions::cmaf`] is on and it has not failed.
    pub fn cmaf(&self) -> Option<&CmafPresentation> {
        self.cmaf.as_ref().map(LiveCmaf::presentation)
    }

    /// The sample table (offsets, sizes, key flags, times, NAL units) of CMAF fragment
    /// `number` of `rendition`, for the newest fragments (the playlist window and three
    /// more): what per-request encryption works from, without parsing the stored bytes.
    pub fn fragment_table(&self, rendition: &str, number: u64) -> Option<Arc<FragmentInfo>> {
        self.cmaf.as_ref()?.table(rendition, number)
    }

    /// Why the CMAF packaging stopped (a track the fMP4 writer cannot carry, say);
    /// MPEG-TS output goes on regardless.
    pub fn cmaf_error(&self) -> Option<&Error> {
        self.cmaf_error.as_ref()
    }

    /// The DASH `@availabilityStartTime` (Unix ms): the wall-clock time of media time
    /// 0, fixed by the first fragment.
    pub fn availability_start_time(&self) -> Option<i64> {
        self.cmaf.as_ref()?.availability_start_time()
    }

    /// The fMP4 HLS multivariant playlist (RFC 8216bis §4.4.6): the audio renditions
    /// as one group, a variant per video rendition, media playlists at
    /// `{rendition}/media.m3u8`. Shared text as of the last change; `None` before
    /// the first fragment or without CMAF.
    pub fn cmaf_multivariant_playlist_bytes(&self) -> Option<Bytes> {
        self.cmaf.as_ref()?.multivariant_bytes()
    }

    /// The fMP4 HLS media playlist of `rendition` (`EXT-X-MAP` to `init.mp4`,
    /// segments `{number}.m4s`, `EXT-X-DISCONTINUITY` where a publisher joined,
    /// `EXT-X-ENDLIST` after the end). Shared text as of the last change.
    pub fn cmaf_media_playlist_bytes(&self, rendition: &str) -> Option<Bytes> {
        self.cmaf.as_ref()?.media_bytes(rendition)
    }

    /// The dynamic DASH MPD (ISO/IEC 23009-1) at `now` (Unix ms): `SegmentTemplate`
    /// with `$Number$` and a `SegmentTimeline` per rendition, listing the fragments
    /// available by `now` (availabilityStartTime + end <= now); `UTCTiming` to
    /// `/time`. After the end: no `@minimumUpdatePeriod`, a
    /// `@mediaPresentationDuration`. Shared text as of the last change (its
    /// `@publishTime`). `None` before every rendition has an available fragment.
    pub fn mpd_bytes(&self, now: i64) -> Option<Bytes> {
        self.cmaf.as_ref()?.mpd_bytes(now)
    }

    /// The model the dynamic MPD at `now` is written from (as [`mpd_bytes`](Self::mpd_bytes)),
    /// for variants made per request, such as a protected MPD. `None` as for `mpd_bytes`.
    pub fn mpd_model(&self, now: i64) -> Option<crate::package::dash::Mpd> {
        self.cmaf.as_ref()?.mpd_model(now)
    }

    /// Statistics at `now` (Unix ms).
    pub fn stats(&self, now: i64) -> StreamStats {
        let codecs: Vec<String> = self
            .tracks
            .iter()
            .map(|t| t.config.codecs_string())
            .collect();
        let video = self.tracks.iter().find(|t| t.kind == MediaKind::Video);
        let mut window = BandwidthMeter::new();
        for (bytes, d) in &self.window_rates {
            window.record(*bytes, *d);
        }
        StreamStats {
            codecs: codecs.join(","),
            resolution: video.and_then(|v| v.config.resolution()),
            frame_rate: video.and_then(|v| v.config.frame_rate()),
            bitrate: window.average(),
            uptime_ms: self.started_at.map_or(0, |s| now.saturating_sub(s).max(0)),
            bytes: self.bytes,
            segments: self.segments,
            pending_bytes: self
                .session
                .as_ref()
                .map_or(0, |s| s.segmenter.buffered_bytes() as u64),
            publishes: self.publishes,
            state: self.state,
        }
    }

    /// The tracks of the newest segment (what players decode now; empty before the
    /// first segment): server-side ad insertion checks creatives against them.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitstream::aac::build_asc;
    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
    use crate::media::{AacConfig, CodecConfig, Frame, FrameFlags, H264Config};
    use crate::ErrorKind;

    const T0: i64 = 1_700_000_000_000;

    /// Every segment at least the target: the window arithmetic of these tests.
    fn full() -> LiveStreamOptions {
        LiveStreamOptions {
            first_segment: FirstSegment::Full,
            ..LiveStreamOptions::default()
        }
    }

    fn tracks() -> Vec<Item> {
        let h264 = H264Config::from_parameter_sets(
            Bytes::from_static(SPS_720P),
            Bytes::from_static(PPS_720P),
        )
        .unwrap();
        let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
        vec![
            Event::TrackAdded(TrackInfo::new(
                1,
                Timescale::MILLIS,
                CodecConfig::H264(h264),
            ))
            .into(),
            Event::TrackAdded(TrackInfo::new(2, Timescale::MILLIS, CodecConfig::Aac(aac))).into(),
        ]
    }

    /// `secs` seconds of 25 fps video (keyframe every second) and ~47 fps audio in
    /// FLV-style millisecond timestamps from 0, pushed in real time from `clock`.
    /// A 2-byte H.264 video frame of track 1 at `t` (an IDR slice when `key`).
    fn video(t: Timestamp, key: bool) -> Item {
        let nal: &'static [u8] = if key {
            b"\0\0\0\x02\x65\x88"
        } else {
            b"\0\0\0\x02\x41\x9a"
        };
        let f = Frame::new(1, t, t, Bytes::from_static(nal));
        if key {
            f.with_flags(FrameFlags::KEYFRAME).into()
        } else {
            f.into()
        }
    }

    fn feed(live: &mut LiveStream, secs: i64, clock: i64) {
        for item in tracks() {
            live.push(item, clock).unwrap();
        }
        feed_range(live, 0, secs, clock);
    }

    /// Like [`feed`] for media seconds `from..to`, without track declarations.
    fn feed_range(live: &mut LiveStream, from: i64, to: i64, clock: i64) {
        let mut audio_ms = from * 1000;
        for i in from * 25..to * 25 {
            let ms = i * 40;
            while audio_ms <= ms {
                let t = Timestamp::from_millis(audio_ms);
                let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
                    .with_flags(FrameFlags::KEYFRAME);
                live.push(f.into(), clock + audio_ms).unwrap();
                audio_ms += 21;
            }
            let t = Timestamp::from_millis(ms);
            live.push(video(t, i % 25 == 0), clock + ms).unwrap();
        }
    }

    fn drain(live: &mut LiveStream) -> Vec<LiveSegment> {
        std::iter::from_fn(|| live.poll_segment()).collect()
    }

    #[test]
    fn operator_cue_cuts_and_marks_every_playlist() {
        let mut live = LiveStream::new(full()).unwrap();
        live.publisher_connected(T0).unwrap();
        // Keyframes every second, 2 s target.
        feed(&mut live, 5, T0);
        // At clock T0+5 s (media 4.96 s), a 3 s break starting 1.5 s from now.
        let req = CueRequest::parse("duration=3&id=77&start=1700000006500").unwrap();
        assert_eq!(T0, 1_700_000_000_000);
        let cue = live.insert_cue(&req, T0 + 5_000).unwrap();
        assert_eq!(cue.id, 77);
        assert_eq!(cue.at.ticks_in(Timescale::MPEG), (4_960 + 1_500) * 90);
        feed_range(&mut live, 5, 15, T0);
        let segs = drain(&mut live);
        let starts: Vec<i64> = segs.iter().map(|s| s.start.as_millis()).collect();
        // Cut at the keyframe at 7 s (6.46 s asked) and again at 10 s (9.46 s asked).
        assert_eq!(starts, vec![0, 2000, 4000, 6000, 7000, 9000, 10000, 12000]);
        let hls = live.media_playlist().unwrap();
        let at = |tag: &str| hls.find(tag).unwrap_or_else(|| panic!("{tag} in {hls}"));
        assert!(at("#EXT-X-CUE-OUT:DURATION=3.000\n") < at("\n4.ts"));
        assert!(at("#EXT-X-CUE-OUT-CONT:ElapsedTime=2.000,Duration=3.000\n") < at("\n5.ts"));
        assert!(at("#EXT-X-CUE-IN\n") < at("\n6.ts"));
        assert!(at("#EXT-X-CUE-IN\n") > at("\n5.ts"));
        // The DATERANGE: start = the PDT of segment 4; then its end with DURATION.
        assert!(hls.contains("#EXT-X-DATERANGE:ID=\"splice-77-4\",START-DATE=\"2023-11-14T22:13:27.000Z\",PLANNED-DURATION=3.000,SCTE35-OUT=0xFC30"));
        assert!(hls.contains("DURATION=3.000,PLANNED-DURATION=3.000,SCTE35-OUT=0xFC30"));
        // The SCTE-35 bytes: a splice_insert, out of network, at the requested time.
        let info = crate::scte35::SpliceInfo::parse(cue.raw.clone()).unwrap();
        let sig = info.signal().unwrap();
        assert_eq!((sig.id, sig.kind), (77, CueKind::Out));
        assert_eq!(sig.pts, Some(((4_960 + 1_500) * 90) as u64));
        assert_eq!(sig.duration, Some(270_000));
        // The fMP4 playlists carry the same markers.
        let cmaf =
            String::from_utf8(live.cmaf_media_playlist_bytes("v1").unwrap().to_vec()).unwrap();
        assert!(cmaf.contains("#EXT-X-CUE-OUT:DURATION=3.000"), "{cmaf}");
        assert!(cmaf.contains("ID=\"splice-77-4\""), "{cmaf}");
        // DASH: an EventStream in the MPD, emsg boxes (version 1) before the moof of
        // the fragments where the break starts and ends, not elsewhere.
        let mpd = String::from_utf8(live.mpd_bytes(T0 + 60_000).unwrap().to_vec()).unwrap();
        assert!(
            mpd.contains("schemeIdUri=\"urn:scte:scte35:2014:xml+bin\""),
            "{mpd}"
        );
        assert!(
            mpd.contains("<InbandEventStream schemeIdUri=\"urn:scte:scte35:2013:bin\""),
            "{mpd}"
        );
        for s in &segs {
            for f in &s.fragments {
                let has = f.data.windows(4).any(|w| w == b"emsg");
                // The automatic return carries no section: no emsg where the break ends.
                assert_eq!(
                    has,
                    s.sequence == 4,
                    "emsg in {} of {}",
                    f.rendition,
                    s.sequence
                );
                if has {
                    let at = crate::container::fmp4::emsg_insert_offset(&f.data).unwrap();
                    let (e, _) = crate::container::fmp4::Emsg::parse(&f.data[at..]).unwrap();
                    assert_eq!(e.id, 77);
                    if s.sequence == 4 {
                        assert_eq!(e.message_data, cue.raw);
                    }
                }
            }
        }
        assert_eq!(live.ad_breaks().count(), 1);
        let b = live.ad_breaks().next().unwrap();
        assert_eq!(
            (b.start.as_millis(), b.duration().map(|d| d.as_millis())),
            (7000, Some(3000))
        );
    }

    #[test]
    fn cue_requests_parse_and_refuse() {
        let q = CueRequest::parse("duration=29.97&kind=out&key=x").unwrap();
        assert_eq!(
            (q.duration_ms, q.kind, q.id),
            (Some(29_970), CueKind::Out, None)
        );
        let j = CueRequest::parse(r#"{"duration": 30, "id": 5, "start": 1700000000000}"#).unwrap();
        assert_eq!(
            (j.duration_ms, j.id, j.start),
            (Some(30_000), Some(5), Some(1_700_000_000_000))
        );
        assert_eq!(CueRequest::parse("kind=in").unwrap().kind, CueKind::In);
        for bad in [
            "duration=-1",
            "duration=1.2345",
            "id=x",
            "what=1",
            "id=1&id=2",
            "{\"a\":{}}",
            "{",
            "duration",
        ] {
            assert!(CueRequest::parse(bad).is_err(), "{bad}");
        }
        let mut live = LiveStream::new(full()).unwrap();
        assert_eq!(
            live.insert_cue(&CueRequest::out(1000), T0)
                .unwrap_err()
                .kind(),
            crate::ErrorKind::Usage
        );
        live.publisher_connected(T0).unwrap();
        assert_eq!(
            live.insert_cue(&CueRequest::out(1000), T0)
                .unwrap_err()
                .kind(),
            crate::ErrorKind::Usage
        );
    }

    #[test]
    fn window_slides_with_dates() {
        let mut live = LiveStream::new(full()).unwrap();
        assert!(live.media_playlist().is_err());
        assert!(live.media_playlist_bytes().is_none());
        assert!(live.multivariant_playlist_bytes().is_none());
        live.publisher_connected(T0).unwrap();
        feed(&mut live, 21, T0);
        let segs = drain(&mut live);
        // 2 s segments; the one starting at 20 s is still open.
        assert_eq!(segs.len(), 10);
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(s.sequence, i as u64);
            assert_eq!(s.duration, Timestamp::from_secs(2));
            assert_eq!(s.program_date_time, T0 + 2000 * i as i64);
            assert_eq!(s.data.len() % 188, 0);
            assert_eq!(&s.data[..1], &[0x47]);
        }
        let pl = live.playlist();
        assert_eq!(pl.segments.len(), 6);
        assert_eq!(pl.media_sequence, 4);
        assert_eq!(pl.segments[0].uri, "4.ts");
        assert_eq!(pl.segments[0].program_date_time, Some(T0 + 8000));
        let text = live.media_playlist().unwrap();
        assert!(text.contains("#EXT-X-VERSION:3\n"), "{text}");
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{text}");
        assert!(
            text.contains(
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n#EXTINF:2.000,\n4.ts\n"
            ),
            "{text}"
        );
        assert!(!text.contains("ENDLIST"));
        assert!(!text.contains("DISCONTINUITY"));
        assert_eq!(live.media_playlist_bytes().unwrap(), text.as_bytes());
        // A clock that is not Unix milliseconds is refused, nothing changes.
        for bad in [-1, i64::MAX] {
            assert_eq!(
                live.push(tracks().remove(0), bad).unwrap_err().kind(),
                ErrorKind::Usage
            );
        }
        assert_eq!(live.media_playlist_bytes().unwrap(), text.as_bytes());
        let mv = live.multivariant_playlist().unwrap();
        assert!(mv.contains("RESOLUTION=1280x720"), "{mv}");
        assert!(mv.contains("CODECS=\"avc1."), "{mv}");
        assert!(mv.contains(",mp4a.40.2\""), "{mv}");
        assert!(mv.contains("\nmedia.m3u8\n"), "{mv}");
        let st = live.stats(T0 + 21_000);
        assert_eq!(st.uptime_ms, 21_000);
        assert_eq!(st.segments, 10);
        assert_eq!(
            st.bytes,
            segs.iter().map(|s| s.data.len() as u64).sum::<u64>()
        );
        let window: u64 = segs[4..].iter().map(|s| s.data.len() as u64).sum();
        assert_eq!(st.bitrate, (window * 8).div_ceil(12));
        assert_eq!(st.state, LiveState::Publishing);
    }

    /// The attribute `name="..."` of the `MPD` element.
    fn mpd_attr<'a>(mpd: &'a str, name: &str) -> Option<&'a str> {
        let head = &mpd[mpd.find("<MPD")?..];
        let head = &head[..head.find('>')?];
        let at = head.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(&head[at..at + head[at..].find('"')?])
    }

    #[test]
    fn cmaf_fragments_playlists_and_dynamic_mpd() {
        let mut live = LiveStream::new(full()).unwrap();
        assert!(live.mpd_bytes(T0).is_none());
        live.publisher_connected(T0).unwrap();
        feed(&mut live, 21, T0);
        let segs = drain(&mut live);
        assert_eq!(segs.len(), 10);
        for (i, s) in segs.iter().enumerate() {
            let names: Vec<&str> = s.fragments.iter().map(|f| f.rendition.as_str()).collect();
            assert_eq!(names, ["v1", "a2"]);
            for f in &s.fragments {
                assert_eq!(f.number, i as u64);
                assert_eq!(&f.data[4..8], b"styp");
                // The init segment comes with the first fragment only.
                assert_eq!(f.init.is_some(), i == 0);
            }
        }
        assert_eq!(&segs[0].fragments[0].init.as_ref().unwrap()[4..8], b"ftyp");
        assert_eq!(live.next_number(), 10);
        // Media time 0 arrived at T0.
        assert_eq!(live.availability_start_time(), Some(T0));
        let now = T0 + 21_000;
        let mpd = String::from_utf8(live.mpd_bytes(now).unwrap().to_vec()).unwrap();
        assert_eq!(mpd_attr(&mpd, "type"), Some("dynamic"), "{mpd}");
        assert_eq!(
            mpd_attr(&mpd, "availabilityStartTime"),
            Some("2023-11-14T22:13:20Z")
        );
        // Rebuilt when the last segment came (at 20 s), not per request.
        assert_eq!(
            mpd_attr(&mpd, "publishTime"),
            Some("2023-11-14T22:13:40.013Z")
        );
        assert_eq!(mpd_attr(&mpd, "minimumUpdatePeriod"), Some("PT2S"));
        assert_eq!(
            mpd_attr(&mpd, "timeShiftBufferDepth"),
            Some("PT12.012S"),
            "{mpd}"
        ); // the audio window
        assert_eq!(mpd_attr(&mpd, "suggestedPresentationDelay"), Some("PT6S"));
        assert!(
            mpd.contains(
                r#"<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time"/>"#
            ),
            "{mpd}"
        );
        assert!(mpd.contains(r#"startNumber="4""#), "{mpd}");
        assert!(mpd.contains(r#"<S t="8000" d="2000" r="5"/>"#), "{mpd}");
        let hls = live.cmaf_media_playlist_bytes("v1").unwrap();
        let hls = std::str::from_utf8(&hls).unwrap();
        assert!(hls.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{hls}");
        assert!(hls.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{hls}");
        assert!(hls.ends_with("9.m4s\n"), "{hls}");
        let mv = live.cmaf_multivariant_playlist_bytes().unwrap();
        let mv = std::str::from_utf8(&mv).unwrap();
        assert!(
            mv.contains("v1/media.m3u8") && mv.contains("TYPE=AUDIO"),
            "{mv}"
        );
        assert!(live.cmaf_media_playlist_bytes("v9").is_none());

        // The end: ENDLIST, and an MPD without minimumUpdatePeriod.
        live.publisher_disconnected(now).unwrap();
        assert_eq!(drain(&mut live).len(), 1); // 20 s..21 s
        assert!(live.tick(now + 30_000));
        let mpd = String::from_utf8(live.mpd_bytes(now + 30_000).unwrap().to_vec()).unwrap();
        assert_eq!(mpd_attr(&mpd, "minimumUpdatePeriod"), None, "{mpd}");
        // Media from 0 to 21 s, after media time 0 = the Period start.
        assert_eq!(
            mpd_attr(&mpd, "mediaPresentationDuration"),
            Some("PT21S"),
            "{mpd}"
        );
        let hls = live.cmaf_media_playlist_bytes("a2").unwrap();
        assert!(hls.ends_with(b"#EXT-X-ENDLIST\n"));

        // No CMAF when it is off.
        let mut ts_only = LiveStream::new(LiveStreamOptions {
            cmaf: false,
            ..full()
        })
        .unwrap();
        ts_only.publisher_connected(T0).unwrap();
        feed(&mut ts_only, 5, T0);
        assert!(drain(&mut ts_only).iter().all(|s| s.fragments.is_empty()));
        assert!(ts_only.mpd_bytes(T0 + 5000).is_none() && ts_only.cmaf().is_none());
    }

    #[test]
    fn mpd_lists_a_fragment_only_once_available() {
        let mut live = LiveStream::new(full()).unwrap();
        live.publisher_connected(T0).unwrap();
        // 9 s of media arrive at once: media runs ahead of the wall clock.
        for item in tracks() {
            live.push(item, T0).unwrap();
        }
        let mut n = 0;
        for i in 0..9 * 25 {
            let t = Timestamp::from_millis(i * 40);
            live.push(video(t, i % 25 == 0), T0).unwrap();
            n += 1;
        }
        assert_eq!(n, 225);
        assert_eq!(drain(&mut live).len(), 4); // stored: 0..8 s
        assert_eq!(live.availability_start_time(), Some(T0));
        // Nothing ends before T0 + 2 s.
        assert!(live.mpd_bytes(T0 + 1999).is_none());
        // Built for the request once a fragment is due, before any push or tick...
        let mpd = live.mpd_bytes(T0 + 4500).unwrap();
        let mpd = std::str::from_utf8(&mpd).unwrap();
        assert!(mpd.contains(r#"<S t="0" d="2000" r="1"/>"#), "{mpd}");
        assert!(!mpd.contains(r#"t="4000""#), "{mpd}");
        assert_eq!(mpd_attr(mpd, "timeShiftBufferDepth"), Some("PT4S"));
        // ... and cached by the next tick.
        assert!(!live.tick(T0 + 6000));
        let a = live.mpd_bytes(T0 + 6000).unwrap();
        let b = live.mpd_bytes(T0 + 7999).unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr());
        let text = std::str::from_utf8(&a).unwrap();
        assert!(text.contains(r#"<S t="0" d="2000" r="2"/>"#), "{text}");
        assert_eq!(mpd_attr(text, "publishTime"), Some("2023-11-14T22:13:26Z"));
        // The HLS playlists list what is stored: HLS has no availability times.
        let hls = live.cmaf_media_playlist_bytes("v1").unwrap();
        assert!(std::str::from_utf8(&hls).unwrap().contains("3.m4s"));
    }

    #[test]
    fn reconnect_keeps_the_dash_timeline_on_the_wall_clock() {
        let mut live = LiveStream::new(full()).unwrap();
        live.publisher_connected(T0).unwrap();
        feed(&mut live, 7, T0);
        live.publisher_disconnected(T0 + 7000).unwrap();
        // Back 13 s later with timestamps from 0 again.
        live.publisher_connected(T0 + 20_000).unwrap();
        feed(&mut live, 5, T0 + 20_000);
        let segs = drain(&mut live);
        assert_eq!(segs.len(), 6);
        // Numbers go on per rendition.
        let v: Vec<u64> = segs.iter().map(|s| s.fragments[0].number).collect();
        assert_eq!(v, [0, 1, 2, 3, 4, 5]);
        let mpd = live.mpd_bytes(T0 + 25_000).unwrap();
        let mpd = std::str::from_utf8(&mpd).unwrap();
        // Contiguous: 3 x 2 s, the flushed 1 s, then the joining publisher's first
        // fragment stretched over the pause to the wall clock (20 s), then 2 s.
        assert!(
            mpd.contains(
                "<S t=\"0\" d=\"2000\" r=\"2\"/>\n            <S d=\"1000\"/>\n            <S d=\"15000\"/>\n            <S d=\"2000\"/>"
            ),
            "{mpd}"
        );
        let hls = live.cmaf_media_playlist_bytes("v1").unwrap();
        let hls = std::str::from_utf8(&hls).unwrap();
        assert!(hls.contains("#EXT-X-DISCONTINUITY\n"), "{hls}");
        // The fragment's own decode time is the wall-clock one.
        let f = &segs[4].fragments[0];
        assert_eq!(f.number, 4);
    }

    #[test]
    fn reconnect_continues_with_discontinuity() {
        let opts = LiveStreamOptions {
            window: 3,
            ..full()
        };
        let mut live = LiveStream::new(opts).unwrap();
        live.publisher_connected(T0).unwrap();
        assert_eq!(
            live.publisher_connected(T0).unwrap_err().kind(),
            ErrorKind::Usage
        );
        feed(&mut live, 7, T0);
        live.publisher_disconnected(T0 + 7000).unwrap();
        // The open segment (6 s..7 s) was flushed.
        let first = drain(&mut live);
        assert_eq!(first.len(), 4);
        assert_eq!(first[3].duration, Timestamp::from_secs(1));
        assert_eq!(
            live.push(tracks().remove(0), T0).unwrap_err().kind(),
            ErrorKind::Usage
        );
        assert!(!live.tick(T0 + 9000));
        // The same timestamps again, from a new publisher.
        live.publisher_connected(T0 + 10_000).unwrap();
        feed(&mut live, 5, T0 + 10_000);
        let second = drain(&mut live);
        assert_eq!(second.len(), 2);
        assert_eq!(second[0].sequence, 4);
        assert_eq!(second[0].program_date_time, T0 + 10_000);
        let pl = live.playlist();
        let flags: Vec<bool> = pl.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(flags, [false, true, false]);
        assert_eq!(pl.media_sequence, 3);
        assert_eq!(pl.discontinuity_sequence, 0);
        let text = live.media_playlist().unwrap();
        assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        // Timestamps of the second publisher continue after the first one's.
        assert!(live.high_water_90k.unwrap() > 7 * 90_000 + 4 * 90_000);
        // Two more segments push the discontinuous one out of the window.
        feed_range(&mut live, 5, 9, T0 + 10_000);
        drain(&mut live);
        let pl = live.playlist();
        assert!(pl.segments.iter().all(|s| !s.discontinuity));
        assert_eq!(pl.discontinuity_sequence, 1);
        assert_eq!(live.stats(T0 + 20_000).publishes, 2);
    }

    /// Decode times (90 kHz, DTS or else PTS) of the PES packets on `pid`.
    fn pes_times(ts: &[u8], pid: u16) -> Vec<u64> {
        let mut out = Vec::new();
        for p in ts.chunks(188) {
            let Some(&[0x47, b1, b2, b3]) =
                p.get(..4).map(|h| <[u8; 4]>::try_from(h).unwrap()).as_ref()
            else {
                panic!("not a TS packet");
            };
            if b1 & 0x40 == 0 || (u16::from(b1 & 0x1f) << 8 | u16::from(b2)) != pid {
                continue;
            }
            let start = if b3 & 0x20 != 0 { 5 + p[4] as usize } else { 4 };
            let pes = &p[start..];
            assert_eq!(&pes[..3], &[0, 0, 1]);
            let ts_at = |o: usize| {
                (u64::from(pes[o] & 0x0e) << 29)
                    | (u64::from(pes[o + 1]) << 22)
                    | (u64::from(pes[o + 2] & 0xfe) << 14)
                    | (u64::from(pes[o + 3]) << 7)
                    | (u64::from(pes[o + 4]) >> 1)
            };
            out.push(if pes[7] & 0x40 != 0 {
                ts_at(14)
            } else {
                ts_at(9)
            });
        }
        out
    }

    #[test]
    fn clock_reset_within_a_publisher_keeps_time_monotonic() {
        let mut live = LiveStream::new(full()).unwrap();
        live.publisher_connected(T0).unwrap();
        feed(&mut live, 5, T0);
        // The publisher's clock restarts at 0 (the FLV demuxer announces it).
        live.push(Event::Discontinuity { track: None }.into(), T0 + 5000)
            .unwrap();
        feed_range(&mut live, 0, 5, T0 + 5000);
        live.publisher_disconnected(T0 + 10_000).unwrap();
        let segs = drain(&mut live);
        assert_eq!(segs.len(), 6); // 2 + 2 + 1 s (cut), then 2 + 2 + 1 s (flushed)
        let flags: Vec<bool> = live
            .playlist()
            .segments
            .iter()
            .map(|s| s.discontinuity)
            .collect();
        assert_eq!(flags, [false, false, false, true, false, false]);
        let all: Vec<u8> = segs.iter().flat_map(|s| s.data.iter().copied()).collect();
        let times = pes_times(&all, 0x100);
        assert_eq!(times.len(), 250);
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }

    #[test]
    fn first_segment_is_cut_at_the_next_keyframe() {
        let mut live = LiveStream::new(LiveStreamOptions::default()).unwrap();
        live.publisher_connected(T0).unwrap();
        // Media up to just before the second keyframe (1 s): nothing to play yet.
        for item in tracks() {
            live.push(item, T0).unwrap();
        }
        feed_range(&mut live, 0, 1, T0);
        assert!(live.poll_segment().is_none());
        assert!(live.media_playlist_bytes().is_none());
        // The keyframe at 1 s cuts the first segment: one GOP after the first frame.
        feed_range(&mut live, 1, 8, T0);
        let segs = drain(&mut live);
        let durations: Vec<i64> = segs.iter().map(|s| s.duration.as_millis()).collect();
        assert_eq!(durations, [1000, 2000, 2000, 2000]);
        // A reconnecting publisher gets a short first segment too.
        live.publisher_disconnected(T0 + 8000).unwrap();
        live.publisher_connected(T0 + 9000).unwrap();
        feed(&mut live, 4, T0 + 9000);
        let durations: Vec<i64> = drain(&mut live)
            .iter()
            .map(|s| s.duration.as_millis())
            .collect();
        assert_eq!(durations, [1000, 1000, 2000]); // flushed 7..8 s, then 1 s, 2 s
    }

    /// Random publisher behaviour (frames with odd timestamps, discontinuities,
    /// reconnects, ticks, misuse): never a panic, and the live invariants hold after
    /// every call.
    #[test]
    fn random_lifecycle_keeps_invariants() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut total, mut joins, mut ended) = (0, 0, 0);
        for _run in 0..20 {
            let opts = LiveStreamOptions {
                window: 1 + (next() % 4) as usize,
                idle_timeout_ms: 5000,
                ..LiveStreamOptions::default()
            };
            let mut live = LiveStream::new(opts).unwrap();
            live.publisher_connected(T0).unwrap();
            let mut now = T0;
            let mut media_ms: i64 = 0;
            let (mut last_seq, mut last_media_seq, mut last_disc) = (None, 0, 0);
            let mut last_numbers = std::collections::HashMap::new();
            for _ in 0..3000 {
                let r = next();
                now += (r % 50) as i64;
                media_ms += match r % 97 {
                    0 => -20_000, // clock reset
                    1 => 30_000,  // jump
                    _ => 20,
                };
                let t = Timestamp::from_millis(media_ms.max(0));
                let _ = match (r >> 8) % 100 {
                    0 => live.publisher_disconnected(now),
                    1 => live.publisher_connected(now),
                    2 => {
                        live.tick(now);
                        Ok(())
                    }
                    3 => live.push(Event::Discontinuity { track: None }.into(), now),
                    4..=5 => {
                        let mut r = Ok(());
                        for item in tracks() {
                            r = r.and(live.push(item, now));
                        }
                        r
                    }
                    6..=50 => live.push(video(t, (r >> 16) % 30 == 0), now),
                    _ => {
                        let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
                            .with_flags(FrameFlags::KEYFRAME);
                        live.push(f.into(), now)
                    }
                };
                while let Some(seg) = live.poll_segment() {
                    for f in &seg.fragments {
                        // Fragment numbers only grow, per rendition; each new
                        // rendition comes with its init segment.
                        let last = last_numbers.insert(f.rendition.clone(), f.number);
                        assert!(last.is_none_or(|l| f.number > l), "{}", f.rendition);
                        assert!(last.is_some() || f.init.is_some());
                        assert!(f.number < live.next_number());
                    }
                    assert!(last_seq.is_none_or(|l| seg.sequence == l + 1));
                    last_seq = Some(seg.sequence);
                    total += 1;
                    assert!(!seg.data.is_empty() && seg.data.len() % 188 == 0);
                    assert!(seg.data.chunks(188).all(|p| p[0] == 0x47));
                }
                let pl = live.playlist();
                assert!(pl.segments.len() <= live.options().window);
                assert!(pl.media_sequence >= last_media_seq);
                assert!(pl.discontinuity_sequence >= last_disc);
                (last_media_seq, last_disc) = (pl.media_sequence, pl.discontinuity_sequence);
                assert_eq!(
                    pl.media_sequence + pl.segments.len() as u64,
                    live.next_sequence()
                );
                assert_eq!(live.media_playlist_bytes().is_some(), live.has_segments());
                if live.is_ended() {
                    assert!(pl.ended);
                }
                assert!(live.cmaf_error().is_none(), "{:?}", live.cmaf_error());
            }
            joins += live.stats(now).publishes;
            ended += u64::from(live.is_ended());
        }
        // The walk went through the interesting states.
        assert!(
            total > 100 && joins > 40 && ended > 0,
            "{total} {joins} {ended}"
        );
    }

    #[test]
    fn idle_timeout_ends_the_playlist() {
        let mut live = LiveStream::new(full()).unwrap();
        assert!(!live.tick(T0 + 100_000)); // never published: nothing to end
        live.publisher_connected(T0).unwrap();
        feed(&mut live, 5, T0);
        assert!(!live.tick(T0 + 100_000)); // publishing: never idle
        live.publisher_disconnected(T0 + 5000).unwrap();
        assert!(!live.tick(T0 + 34_999));
        assert_eq!(live.state(), LiveState::Idle { since: T0 + 5000 });
        assert!(live.tick(T0 + 35_000));
        assert!(!live.tick(T0 + 36_000));
        assert!(live.is_ended());
        let text = live.media_playlist().unwrap();
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(live.media_playlist_bytes().unwrap(), text.as_bytes());
        assert_eq!(
            live.publisher_connected(T0 + 40_000).unwrap_err().kind(),
            ErrorKind::Usage
        );
        assert_eq!(live.next_sequence(), 3);
    }
}
