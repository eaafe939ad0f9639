//! [`CmafPresentation`]: segments in, one CMAF rendition per track out, with the HLS
//! (fMP4) and DASH manifests that list them.
//!
//! The [`Segmenter`](super::Segmenter) cuts all tracks together at video keyframes; a
//! presentation writes each [`Segment`] as one fragment per track with an
//! [`Fmp4Writer`] (CMAF: one track per file), keeps each rendition's init segment, and
//! tracks what the manifests need: per rendition the fragments' media times, sizes and
//! dates. VOD keeps every fragment; live keeps a sliding window.
//!
//! Layout (relative to the manifests), shared by HLS and DASH so both point at the
//! same files:
//!
//! | file | what |
//! |---|---|
//! | `{rendition}/init.mp4` | init segment (`ftyp` + `moov`) |
//! | `{rendition}/{number}.m4s` | media segment `number` (`styp` + `moof` + `mdat`) |
//! | `{rendition}/media.m3u8` | HLS media playlist (`EXT-X-MAP`, version 7) |
//!
//! Renditions are named `v{track id}` (video) and `a{track id}` (audio); a name is
//! also the DASH `Representation@id`. Numbers count each rendition's fragments from
//! [`CmafOptions::first_number`], so a track that had no frame in a segment leaves no
//! hole in its `$Number$` sequence.
//!
//! Several audio tracks (languages) become one HLS audio group (`EXT-X-MEDIA`
//! `TYPE=AUDIO` with `LANGUAGE`, `NAME`, `DEFAULT`, `AUTOSELECT`, `CHANNELS`) that the
//! video variants reference, plus an audio-only variant for listeners without video;
//! in DASH, one `AdaptationSet` per language with `@lang` and a `Role` (`main` for the
//! first audio track, `dub` for the other languages).
//!
//! ```
//! use bytes::Bytes;
//! use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
//! use strom::package::cmaf::{CmafOptions, CmafPresentation};
//! use strom::package::{Segmenter, SegmenterOptions};
//! use strom::pipeline::{drain, Stage};
//! use strom::time::{Timescale, Timestamp};
//!
//! let scale = Timescale::new(48_000).unwrap();
//! let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
//! let mut seg = Segmenter::new(SegmenterOptions::default()).unwrap();
//! seg.push(Item::Event(Event::TrackAdded(
//!     TrackInfo::new(2, scale, CodecConfig::Aac(asc)).with_language("fra"),
//! )))
//! .unwrap();
//! for i in 0..600 {
//!     let t = Timestamp::new(i * 1024, scale);
//!     let f = Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
//!         .with_flags(FrameFlags::KEYFRAME)
//!         .with_duration(Timestamp::new(1024, scale));
//!     seg.push(Item::Frame(f)).unwrap();
//! }
//! seg.finish().unwrap();
//! let mut cmaf = CmafPresentation::new(CmafOptions::default());
//! for s in drain(&mut seg).unwrap() {
//!     for fragment in cmaf.write_segment(&s, None).unwrap() {
//!         assert_eq!(fragment.rendition, "a2");
//!     }
//! }
//! cmaf.set_ended();
//! let media = cmaf.media_playlist("a2").unwrap().write().unwrap();
//! assert!(media.contains("#EXT-X-MAP:URI=\"init.mp4\""));
//! let main = cmaf.multivariant_playlist().unwrap().write().unwrap();
//! assert!(main.contains("LANGUAGE=\"fr\",NAME=\"French\""));
//! let mpd = cmaf.static_mpd().unwrap().write().unwrap();
//! assert!(mpd.contains(r#"lang="fr""#));
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

use super::ads::{AdBreak, BreakTracker, DashAdMarkers, EmsgVersion, SegmentAds};
use super::dash::{
    AdaptationSet, ContentType, DashEvent, EventMessage, EventStream, InbandEventStream, Mpd,
    MpdType, Representation, Role, SegmentTemplate, SegmentTimeline, SCHEME_SCTE35_XML_BIN,
};
use super::hls::{
    BandwidthMeter, CueTag, DateRange, HlsAdMarkers, MediaPlaylist, MediaSegment,
    MultivariantPlaylist, PlaylistType, Rendition, Variant,
};
use super::Segment;
use crate::container::fmp4::{emsg_insert_offset, EmsgTime, Fmp4Writer, FragmentInfo};
use crate::error::{Error, Result};
use crate::media::{CodecConfig, Frame, MediaKind, TrackInfo};
use crate::time::{Timescale, Timestamp};

/// File name of a rendition's init segment, in its folder.
pub const INIT_SEGMENT: &str = "init.mp4";
/// File name of a rendition's HLS media playlist, in its folder.
pub const MEDIA_PLAYLIST: &str = "media.m3u8";
/// `GROUP-ID` of the HLS audio renditions.
pub const AUDIO_GROUP: &str = "audio";
/// Most renditions in one presentation; a segment with more tracks is an
/// [`Error::limit`].
pub const MAX_RENDITIONS: usize = 64;
/// Ended ad breaks a presentation remembers.
const MAX_BREAKS: usize = 256;

/// Options of a [`CmafPresentation`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CmafOptions {
    /// Fragments listed per rendition: `None` keeps every one (VOD), `Some(n)` the
    /// newest `n` (a live window). Default: `None`.
    pub window: Option<usize>,
    /// Number of each rendition's first fragment (`{number}.m4s`, DASH
    /// `@startNumber`). Default: 1.
    pub first_number: u64,
    /// HLS playlist type of the media playlists. Default: [`PlaylistType::Vod`].
    pub playlist_type: PlaylistType,
    /// Lower bound of the HLS `EXT-X-TARGETDURATION`, in seconds (a live stream sets
    /// its target so the tag never changes). Default: `None`.
    pub target_duration: Option<u64>,
    /// Ad-marker dialects of the HLS media playlists, for breaks cut by a
    /// [`Splicer`](super::Splicer) (`EXT-X-DATERANGE` needs program date-times: without
    /// them only the `EXT-X-CUE-*` tags are written). Default: both.
    pub ad_markers: HlsAdMarkers,
    /// Ad signalling in the MPD and the fragments. Default: an `EventStream` and
    /// version 1 `emsg` boxes.
    pub dash_ad_markers: DashAdMarkers,
}

impl Default for CmafOptions {
    fn default() -> Self {
        CmafOptions {
            window: None,
            first_number: 1,
            playlist_type: PlaylistType::Vod,
            target_duration: None,
            ad_markers: HlsAdMarkers::default(),
            dash_ad_markers: DashAdMarkers::default(),
        }
    }
}

/// One fragment written by [`CmafPresentation::write_segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CmafFragment {
    /// The rendition (`v1`, `a2`): store the bytes as `{rendition}/{number}.m4s`.
    pub rendition: String,
    /// The fragment's number within its rendition.
    pub number: u64,
    /// The media segment (`styp` + `moof` + `mdat`).
    pub data: Bytes,
    /// Its sample table (offsets, sizes, flags, times), for per-request encryption.
    pub info: FragmentInfo,
    /// The rendition's init segment changed with this fragment (a new track
    /// configuration): store [`CmafRendition::init_segment`] again.
    pub new_init: bool,
    /// Where the manifests place it, in track ticks: the start of its
    /// `SegmentTimeline` entry (contiguous with the previous fragment of the rendition:
    /// a gap is given to the fragment after it).
    pub timeline_start: u64,
    /// Its duration as the manifests list it, in track ticks (`#EXTINF`, `S@d`).
    pub timeline_duration: u64,
    /// It starts after a discontinuity: the segment's, or a new init segment
    /// (`EXT-X-DISCONTINUITY` before it in the fMP4 playlists).
    pub discontinuity: bool,
    /// The sample payloads that follow `data`, in order, when the fragment was written
    /// by [`CmafPresentation::write_segment_by_reference`] (then `data` holds only
    /// `styp`, `moof` and the `mdat` header); empty otherwise.
    pub payloads: Vec<Bytes>,
}

impl CmafFragment {
    /// Length of the whole media segment in bytes: `data` plus `payloads`.
    pub fn len(&self) -> usize {
        self.info.len
    }
    /// Whether the media segment is empty (never, for a written fragment).
    pub fn is_empty(&self) -> bool {
        self.info.len == 0
    }
    /// The fragment's duration in its track's timescale, as the manifests list it.
    pub fn duration(&self) -> u64 {
        self.info.duration
    }
}

/// How [`CmafRendition::write`] hands out the sample payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payloads {
    /// Copied after the header into one buffer.
    Copy,
    /// Returned as the frames' own `Bytes`, after a header-only buffer.
    Reference,
}

/// One fragment as the manifests list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listed {
    number: u64,
    /// Timeline start and duration in track ticks (contiguous with the previous one).
    start: u64,
    duration: u64,
}

/// One track of a presentation: its writer, init segment and listed fragments.
#[derive(Debug)]
pub struct CmafRendition {
    name: String,
    track: TrackInfo,
    writer: Fmp4Writer,
    init: Bytes,
    next_number: u64,
    next_sequence: u32,
    meter: BandwidthMeter,
    playlist: MediaPlaylist,
    listed: VecDeque<Listed>,
    /// End of the last fragment in track ticks, for a contiguous timeline.
    end: Option<u64>,
    /// Earliest presentation time minus decode time of the last fragment, in track ticks.
    delay: u64,
}

impl CmafRendition {
    fn new(track: &TrackInfo, opts: &CmafOptions) -> Result<Self> {
        let writer = Fmp4Writer::new(track.clone())?;
        let mut init = BytesMut::new();
        writer.init_segment(&mut init)?;
        let prefix = if track.kind == MediaKind::Video {
            'v'
        } else {
            'a'
        };
        let mut playlist = MediaPlaylist::new(opts.playlist_type);
        playlist.map = Some(INIT_SEGMENT.to_string());
        playlist.target_duration = opts.target_duration;
        playlist.media_sequence = opts.first_number;
        Ok(CmafRendition {
            name: format!("{prefix}{}", track.id),
            track: track.clone(),
            writer,
            init: init.freeze(),
            next_number: opts.first_number,
            next_sequence: 1,
            meter: BandwidthMeter::new(),
            playlist,
            listed: VecDeque::new(),
            end: None,
            delay: 0,
        })
    }

    /// The name: folder of its files, DASH `Representation@id`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The track, as configured for the newest fragment.
    pub fn track(&self) -> &TrackInfo {
        &self.track
    }
    /// The init segment (`ftyp` + `moov`) of the current configuration.
    pub fn init_segment(&self) -> Bytes {
        self.init.clone()
    }
    /// How far the earliest presentation time of the newest fragment is past its
    /// decode time (`tfdt`), in track ticks: the B-frame delay of a video track, 0 for
    /// audio. Manifest timelines list decode times; a host that maps them to
    /// presentation times (ad Periods, [`crate::package::ssai::DashSessions`]) adds it.
    pub fn presentation_delay(&self) -> u64 {
        self.delay
    }

    /// Number of the oldest fragment listed.
    pub fn first_number(&self) -> u64 {
        self.playlist.media_sequence
    }
    /// Number the next fragment gets.
    pub fn next_number(&self) -> u64 {
        self.next_number
    }
    /// Peak and average bit rate of the fragments written, bits per second.
    pub fn bandwidth(&self) -> (u64, u64) {
        (self.meter.peak().max(1), self.meter.average().max(1))
    }
    /// Media time (track ticks, [`TrackInfo::timescale`]) of the start of the oldest
    /// fragment listed and of the end of the newest.
    pub fn time_range(&self) -> Option<(u64, u64)> {
        let first = self.listed.front()?;
        let last = self.listed.back()?;
        Some((first.start, last.start + last.duration))
    }
    /// The HLS media playlist: `EXT-X-MAP` to [`INIT_SEGMENT`], segments
    /// `{number}.m4s`, relative to the rendition's folder.
    pub fn media_playlist(&self) -> &MediaPlaylist {
        &self.playlist
    }

    /// The DASH `Representation` with a `SegmentTemplate` and its `SegmentTimeline`.
    fn representation(&self) -> Result<Representation> {
        let mut template = SegmentTemplate::new(self.track.timescale);
        template.start_number = self.first_number();
        let mut timeline = SegmentTimeline::new();
        for l in &self.listed {
            timeline.push(l.start, l.duration)?;
        }
        template.timeline = timeline;
        Ok(Representation::for_track(
            self.name.clone(),
            &self.track,
            self.bandwidth().0,
            template,
        ))
    }

    fn write(
        &mut self,
        frames: &[Frame],
        seg: &Segment,
        pdt: Option<i64>,
        window: Option<usize>,
        mode: Payloads,
        marks: &(Vec<DateRange>, Option<CueTag>),
    ) -> Result<CmafFragment> {
        let mut new_init = false;
        if let Some(t) = seg.tracks.iter().find(|t| t.id == self.track.id) {
            if *t != self.track {
                let writer = Fmp4Writer::new(t.clone())?;
                let mut init = BytesMut::new();
                writer.init_segment(&mut init)?;
                self.writer = writer;
                self.init = init.freeze();
                self.track = t.clone();
                new_init = true;
            }
        }
        let header = 256 + 16 * frames.len();
        let (info, out, payloads) = match mode {
            Payloads::Copy => {
                let len: usize = frames.iter().map(|f| f.data.len()).sum();
                let mut out = BytesMut::with_capacity(len + header);
                let info = self
                    .writer
                    .media_segment(frames, self.next_sequence, None, &mut out)?;
                (info, out, Vec::new())
            }
            Payloads::Reference => {
                let mut out = BytesMut::with_capacity(header);
                let info =
                    self.writer
                        .media_segment_header(frames, self.next_sequence, None, &mut out)?;
                let payloads = frames.iter().map(|f| f.data.clone()).collect();
                (info, out, payloads)
            }
        };
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        let number = self.next_number;
        self.next_number += 1;
        // A contiguous timeline: a fragment starts where the previous one ended (a
        // gap, such as a publisher's join, is given to the fragment after it; a
        // one-tick overlap from rounded audio durations is taken from it).
        let end = info.base_decode_time.saturating_add(info.duration);
        let earliest = info
            .samples
            .iter()
            .map(|s| (s.dts as i64).saturating_add(i64::from(s.composition_offset)))
            .min()
            .unwrap_or(info.base_decode_time as i64);
        self.delay = earliest.saturating_sub(info.base_decode_time as i64).max(0) as u64;
        let start = self.end.unwrap_or(info.base_decode_time);
        let duration = end.saturating_sub(start).max(1);
        self.end = Some(start + duration);
        let scale = self.track.timescale;
        let exact = Timestamp::new(duration.min(i64::MAX as u64) as i64, scale);
        self.meter.record(info.len as u64, exact);
        let mut entry = MediaSegment::new(format!("{number}.m4s"), exact)
            .with_discontinuity(seg.discontinuity || new_init);
        entry.program_date_time = pdt;
        (entry.date_ranges, entry.cue) = marks.clone();
        self.playlist.push_segment(entry);
        self.listed.push_back(Listed {
            number,
            start,
            duration,
        });
        if let Some(w) = window {
            while self.listed.len() > w.max(1) {
                self.listed.pop_front();
                self.playlist.pop_front();
            }
        }
        Ok(CmafFragment {
            rendition: self.name.clone(),
            number,
            data: out.freeze(),
            info,
            new_init,
            timeline_start: start,
            timeline_duration: duration,
            discontinuity: seg.discontinuity || new_init,
            payloads,
        })
    }
}

/// Segments in, CMAF renditions and their manifests out. Sans-IO: the caller stores
/// the fragments and init segments under the names of the module docs and serves the
/// manifests.
#[derive(Debug)]
pub struct CmafPresentation {
    opts: CmafOptions,
    renditions: Vec<CmafRendition>,
    /// Added to every frame time so that no decode time is negative (`tfdt` is
    /// unsigned), in 90 kHz ticks; set by the first segment.
    shift_90k: Option<i64>,
    ended: bool,
    /// Ad breaks, on the presentation's (shifted) timeline.
    breaks: BreakTracker,
}

impl CmafPresentation {
    /// An empty presentation.
    pub fn new(opts: CmafOptions) -> Self {
        CmafPresentation {
            opts,
            renditions: Vec::new(),
            shift_90k: None,
            ended: false,
            breaks: BreakTracker::new(MAX_BREAKS),
        }
    }

    /// The options.
    pub fn options(&self) -> &CmafOptions {
        &self.opts
    }

    /// The renditions, video first, then audio in track order of appearance.
    pub fn renditions(&self) -> &[CmafRendition] {
        &self.renditions
    }

    /// The rendition named `name`.
    pub fn rendition(&self, name: &str) -> Option<&CmafRendition> {
        self.renditions.iter().find(|r| r.name == name)
    }

    /// The shift added to every frame time, in 90 kHz ticks (0 unless the first
    /// segment had negative decode times, as MP4 files with B-frames and an edit list
    /// do). Manifests describe the shifted times.
    pub fn time_shift_90k(&self) -> i64 {
        self.shift_90k.unwrap_or(0)
    }

    /// The ad breaks of the segments written: the newest ended ones, then the one in
    /// force, with times on the presentation's timeline (as the MPD and the fragments'
    /// decode times describe it, 90 kHz).
    pub fn ad_breaks(&self) -> impl Iterator<Item = &AdBreak> {
        self.breaks.breaks()
    }

    /// The breaks as a Period `EventStream` (90 kHz, on the presentation's timeline)
    /// and, with `emsg` boxes on, an `InbandEventStream` on every AdaptationSet.
    fn add_ad_events(&self, mpd: &mut Mpd) {
        let opts = self.opts.dash_ad_markers;
        if self.breaks.breaks().next().is_none() {
            return;
        }
        if opts.event_stream {
            let mut stream = EventStream::new(SCHEME_SCTE35_XML_BIN, 90_000);
            for b in self.breaks.breaks().filter(|b| !b.out_raw.is_empty()) {
                let start = b.start.ticks_in(Timescale::MPEG).max(0) as u64;
                let mut e = DashEvent::new(
                    u64::from(b.id),
                    start,
                    EventMessage::Scte35Binary(b.out_raw.clone()),
                );
                if let Some(d) = b.duration().or(b.planned_duration) {
                    e = e.with_duration(d.ticks_in(Timescale::MPEG).max(0) as u64);
                }
                stream.events.push(e);
            }
            if !stream.events.is_empty() {
                mpd.period_mut().event_streams.push(stream);
            }
        }
        if opts.emsg.is_some() {
            for set in mpd.periods.iter_mut().flat_map(|p| &mut p.adaptation_sets) {
                set.inband_event_streams.push(InbandEventStream::scte35());
            }
        }
    }

    /// No more segments: HLS media playlists get `EXT-X-ENDLIST`.
    pub fn set_ended(&mut self) {
        self.ended = true;
        for r in &mut self.renditions {
            r.playlist.ended = true;
        }
    }

    /// Writes `seg` as one fragment per video or audio track that has frames in it;
    /// `program_date_time` (Unix ms) dates the fragments in the HLS playlists.
    ///
    /// Errors: a frame the [`Fmp4Writer`] refuses (see
    /// [`Fmp4Writer::media_segment`]), a track configuration it cannot write, more
    /// than [`MAX_RENDITIONS`] tracks. On error no rendition has changed but those
    /// written before the failing one.
    pub fn write_segment(
        &mut self,
        seg: &Segment,
        program_date_time: Option<i64>,
    ) -> Result<Vec<CmafFragment>> {
        self.write(seg, program_date_time, Payloads::Copy)
    }

    /// Like [`CmafPresentation::write_segment`], without copying the sample payloads:
    /// each fragment's `data` holds `styp`, `moof` and the `mdat` header, and
    /// [`CmafFragment::payloads`] the frames' payloads that follow it, in order (a host
    /// writes them with vectored IO). The bytes are the same as `write_segment`'s.
    pub fn write_segment_by_reference(
        &mut self,
        seg: &Segment,
        program_date_time: Option<i64>,
    ) -> Result<Vec<CmafFragment>> {
        self.write(seg, program_date_time, Payloads::Reference)
    }

    fn write(
        &mut self,
        seg: &Segment,
        program_date_time: Option<i64>,
        mode: Payloads,
    ) -> Result<Vec<CmafFragment>> {
        let shift = *self.shift_90k.get_or_insert_with(|| {
            let min = seg
                .frames
                .iter()
                .map(|f| f.dts.min(f.pts).ticks_in(Timescale::MPEG))
                .min()
                .unwrap_or(0);
            min.saturating_neg().max(0)
        });
        let start = seg.start.add(Timestamp::new(shift, Timescale::MPEG));
        let ads = self.breaks.on_segment(
            seg.sequence,
            start,
            program_date_time.unwrap_or(0),
            &seg.events,
        );
        let mut markers = self.opts.ad_markers;
        markers.daterange &= program_date_time.is_some();
        let marks = ads.hls(markers);
        let mut out = Vec::new();
        for track in &seg.tracks {
            if !matches!(track.kind, MediaKind::Video | MediaKind::Audio) {
                continue;
            }
            let mut frames: Vec<Frame> = seg
                .frames
                .iter()
                .filter(|f| f.track == track.id)
                .cloned()
                .collect();
            if frames.is_empty() {
                continue;
            }
            if shift != 0 {
                let by = Timestamp::new(shift, Timescale::MPEG);
                for f in &mut frames {
                    f.dts = f.dts.add(by);
                    f.pts = f.pts.add(by);
                }
            }
            let at = match self.renditions.iter().position(|r| r.track.id == track.id) {
                Some(i) => i,
                None => self.add(track)?,
            };
            let window = self.opts.window;
            let mut fragment = self.renditions[at]
                .write(&frames, seg, program_date_time, window, mode, &marks)
                .map_err(|e| e.context(format!("CMAF rendition {}", track.id)))?;
            if let Some(version) = self.opts.dash_ad_markers.emsg {
                insert_emsgs(&mut fragment, &ads, version, track.timescale)?;
            }
            out.push(fragment);
        }
        Ok(out)
    }

    fn add(&mut self, track: &TrackInfo) -> Result<usize> {
        if self.renditions.len() >= MAX_RENDITIONS {
            return Err(Error::limit("too many CMAF renditions"));
        }
        let mut r = CmafRendition::new(track, &self.opts)?;
        r.playlist.ended = self.ended;
        // Video first, then audio, each in order of appearance.
        let at = if track.kind == MediaKind::Video {
            self.renditions
                .iter()
                .position(|x| x.track.kind != MediaKind::Video)
                .unwrap_or(self.renditions.len())
        } else {
            self.renditions.len()
        };
        self.renditions.insert(at, r);
        Ok(at)
    }

    /// The HLS media playlist of rendition `name`.
    ///
    /// Errors: [`Error::usage`] for an unknown rendition.
    pub fn media_playlist(&self, name: &str) -> Result<&MediaPlaylist> {
        self.rendition(name)
            .map(CmafRendition::media_playlist)
            .ok_or(Error::usage("unknown CMAF rendition"))
    }

    /// The HLS multivariant playlist: the audio renditions as one `EXT-X-MEDIA` group
    /// ([`AUDIO_GROUP`]; the first is `DEFAULT`), one variant per video rendition
    /// (`BANDWIDTH` = its peak plus the largest audio peak) referencing the group,
    /// then one audio-only variant. Media playlist URIs are
    /// `{rendition}/media.m3u8`.
    ///
    /// Errors: [`Error::usage`] before the first fragment.
    pub fn multivariant_playlist(&self) -> Result<MultivariantPlaylist> {
        if self.renditions.is_empty() {
            return Err(Error::usage("CMAF presentation without fragments"));
        }
        let mut mv = MultivariantPlaylist::new();
        let audio: Vec<&CmafRendition> = self
            .renditions
            .iter()
            .filter(|r| r.track.kind == MediaKind::Audio)
            .collect();
        let mut names: Vec<String> = Vec::new();
        for (i, r) in audio.iter().enumerate() {
            let tag = r.track.language.as_deref().and_then(language_tag);
            let mut name = tag
                .as_deref()
                .and_then(language_name)
                .map(str::to_string)
                .or_else(|| tag.clone())
                .unwrap_or_else(|| format!("Audio {}", i + 1));
            if names.contains(&name) {
                name = format!("{name} ({})", r.name);
            }
            names.push(name.clone());
            let mut rendition = Rendition::audio(
                AUDIO_GROUP,
                name,
                Some(format!("{}/{MEDIA_PLAYLIST}", r.name)),
            );
            rendition.language = tag;
            rendition.default = i == 0;
            rendition.autoselect = true;
            rendition.channels = channels(&r.track.config);
            mv.renditions.push(rendition);
        }
        let audio_peak = audio.iter().map(|r| r.bandwidth().0).max().unwrap_or(0);
        let audio_avg = audio.iter().map(|r| r.bandwidth().1).max().unwrap_or(0);
        let mut audio_codecs: Vec<String> = Vec::new();
        for r in &audio {
            let c = r.track.config.codecs_string();
            if !audio_codecs.contains(&c) {
                audio_codecs.push(c);
            }
        }
        let group = (!audio.is_empty()).then(|| AUDIO_GROUP.to_string());
        for r in self
            .renditions
            .iter()
            .filter(|r| r.track.kind == MediaKind::Video)
        {
            let mut codecs = r.track.config.codecs_string();
            for c in &audio_codecs {
                let _ = write!(codecs, ",{c}");
            }
            let (peak, avg) = r.bandwidth();
            let mut v = Variant::new(
                format!("{}/{MEDIA_PLAYLIST}", r.name),
                peak + audio_peak,
                codecs,
            );
            v.average_bandwidth = Some(avg + audio_avg);
            v.resolution = r.track.config.resolution();
            v.frame_rate = r.track.config.frame_rate();
            v.audio = group.clone();
            mv.variants.push(v);
        }
        if let Some(first) = audio.first() {
            // Audio only, for listeners without video (and players that start low).
            let mut v = Variant::new(
                format!("{}/{MEDIA_PLAYLIST}", first.name),
                audio_peak,
                audio_codecs.join(","),
            );
            v.average_bandwidth = Some(audio_avg);
            v.audio = group.clone();
            mv.variants.push(v);
        }
        Ok(mv)
    }

    /// The MPD of a finished presentation: `type="static"`, lasting from the earliest
    /// listed start to the latest end over all renditions.
    ///
    /// Errors: [`Error::usage`] before the first fragment.
    pub fn static_mpd(&self) -> Result<Mpd> {
        let mut range: Option<(Timestamp, Timestamp)> = None;
        for r in &self.renditions {
            let Some((s, e)) = r.time_range() else {
                continue;
            };
            let scale = r.track.timescale;
            let s = Timestamp::new(s.min(i64::MAX as u64) as i64, scale);
            let e = Timestamp::new(e.min(i64::MAX as u64) as i64, scale);
            range = Some(match range {
                None => (s, e),
                Some((a, b)) => (a.min(s), b.max(e)),
            });
        }
        let (start, end) = range.ok_or(Error::usage("CMAF presentation without fragments"))?;
        self.mpd(MpdType::Static {
            media_presentation_duration: end.sub(start),
        })
    }

    /// The MPD with `mpd_type` (a live stream passes [`MpdType::Dynamic`]): one video
    /// AdaptationSet holding the video renditions, one AdaptationSet per audio
    /// rendition with `@lang` and a `Role`. Templates address `{rendition}/init.mp4`
    /// and `{rendition}/$Number$.m4s`.
    ///
    /// Errors: [`Error::usage`] before the first fragment.
    pub fn mpd(&self, mpd_type: MpdType) -> Result<Mpd> {
        if self.renditions.is_empty() {
            return Err(Error::usage("CMAF presentation without fragments"));
        }
        let mut mpd = Mpd::new(mpd_type);
        let mut video: Option<AdaptationSet> = None;
        let mut audio_langs: Vec<Option<String>> = Vec::new();
        let mut next_id = 1;
        for r in &self.renditions {
            let rep = r.representation()?;
            match r.track.kind {
                MediaKind::Video => match &mut video {
                    Some(set) => set.representations.push(rep),
                    None => {
                        let mut set = AdaptationSet::new(0, ContentType::Video);
                        set.roles.push(Role::Main);
                        set.representations.push(rep);
                        video = Some(set);
                    }
                },
                _ => {
                    let lang = r.track.language.as_deref().and_then(language_tag);
                    let role = if audio_langs.is_empty() {
                        Role::Main
                    } else if audio_langs.contains(&lang) {
                        Role::Alternate
                    } else {
                        Role::Dub
                    };
                    audio_langs.push(lang.clone());
                    let mut set = AdaptationSet::new(next_id, ContentType::Audio);
                    next_id += 1;
                    set.lang = lang;
                    set.roles.push(role);
                    set.representations.push(rep);
                    mpd.period_mut().adaptation_sets.push(set);
                }
            }
        }
        if let Some(v) = video {
            mpd.period_mut().adaptation_sets.insert(0, v);
        }
        self.add_ad_events(&mut mpd);
        Ok(mpd)
    }
}

/// Puts the SCTE-35 sections of the breaks that start or end at this fragment into it
/// as `emsg` boxes before its `moof`, moving the sample table's offsets with them.
fn insert_emsgs(
    fragment: &mut CmafFragment,
    ads: &SegmentAds,
    version: EmsgVersion,
    timescale: Timescale,
) -> Result<()> {
    let mut events: Vec<(&Bytes, u32, Timestamp, Option<Timestamp>)> = Vec::new();
    if let Some(b) = &ads.ended {
        events.push((&b.in_raw, b.id, b.end.unwrap_or(b.start), None));
    }
    if let Some(b) = &ads.started {
        events.push((&b.out_raw, b.id, b.start, b.planned_duration));
    }
    events.retain(|e| !e.0.is_empty());
    if events.is_empty() {
        return Ok(());
    }
    let earliest = fragment
        .info
        .samples
        .iter()
        .map(|s| (s.dts as i64).saturating_add(i64::from(s.composition_offset)))
        .min()
        .unwrap_or(fragment.info.base_decode_time as i64);
    let mut boxes = BytesMut::new();
    for (raw, id, at, duration) in events {
        let at = at.ticks_in(timescale).max(0);
        let time = match version {
            EmsgVersion::V1 => EmsgTime::Absolute(at as u64),
            EmsgVersion::V0 => EmsgTime::Delta(
                u32::try_from(at.saturating_sub(earliest).max(0)).unwrap_or(u32::MAX),
            ),
        };
        let duration = duration.map(|d| d.ticks_in(timescale).max(0) as u64);
        let mut emsg = super::dash::scte35_emsg(timescale.get(), 0, duration, id, raw.clone())?;
        emsg.time = time;
        emsg.write(&mut boxes)?;
    }
    let at = emsg_insert_offset(&fragment.data)?;
    let mut data = BytesMut::with_capacity(fragment.data.len() + boxes.len());
    data.extend_from_slice(&fragment.data[..at]);
    data.extend_from_slice(&boxes);
    data.extend_from_slice(&fragment.data[at..]);
    fragment.data = data.freeze();
    fragment.info.shift_offsets(boxes.len());
    Ok(())
}

/// Channel count for `CHANNELS` / `AudioChannelConfiguration`, when known.
fn channels(config: &CodecConfig) -> Option<u32> {
    match config {
        CodecConfig::Aac(a) if a.channel_config != 0 => Some(match a.channel_config {
            7 => 8,
            c => c as u32,
        }),
        CodecConfig::Opus(o) => Some(o.channels as u32),
        _ => None,
    }
}

/// ISO 639-2 codes with an ISO 639-1 equivalent, which RFC 5646 tags must use
/// (§2.2.1), and their English names. Both bibliographic and terminology codes.
const LANGUAGES: &[(&str, &str, &str)] = &[
    ("ara", "ar", "Arabic"),
    ("chi", "zh", "Chinese"),
    ("zho", "zh", "Chinese"),
    ("cze", "cs", "Czech"),
    ("ces", "cs", "Czech"),
    ("dan", "da", "Danish"),
    ("dut", "nl", "Dutch"),
    ("nld", "nl", "Dutch"),
    ("eng", "en", "English"),
    ("fin", "fi", "Finnish"),
    ("fre", "fr", "French"),
    ("fra", "fr", "French"),
    ("ger", "de", "German"),
    ("deu", "de", "German"),
    ("gre", "el", "Greek"),
    ("ell", "el", "Greek"),
    ("heb", "he", "Hebrew"),
    ("hin", "hi", "Hindi"),
    ("hun", "hu", "Hungarian"),
    ("ita", "it", "Italian"),
    ("jpn", "ja", "Japanese"),
    ("kor", "ko", "Korean"),
    ("nor", "no", "Norwegian"),
    ("pol", "pl", "Polish"),
    ("por", "pt", "Portuguese"),
    ("rum", "ro", "Romanian"),
    ("ron", "ro", "Romanian"),
    ("rus", "ru", "Russian"),
    ("spa", "es", "Spanish"),
    ("swe", "sv", "Swedish"),
    ("tur", "tr", "Turkish"),
    ("ukr", "uk", "Ukrainian"),
];

/// The RFC 5646 tag of an ISO 639-2 language code: the two-letter code where one
/// exists (`eng` -> `en`), the code itself otherwise; `None` for `und` (undetermined)
/// and anything that is not 2-3 ASCII letters.
pub fn language_tag(iso639: &str) -> Option<String> {
    let code = iso639.to_ascii_lowercase();
    if !(2..=3).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    if code == "und" || code == "mul" || code == "zxx" {
        return None;
    }
    Some(
        LANGUAGES
            .iter()
            .find(|(three, _, _)| *three == code)
            .map_or(code, |(_, two, _)| (*two).to_string()),
    )
}

/// The English name of an RFC 5646 primary language tag this module knows.
fn language_name(tag: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .find(|(_, two, _)| *two == tag)
        .map(|(_, _, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AacConfig, Event, FrameFlags, H264Config, Item};
    use crate::package::{Segmenter, SegmenterOptions};
    use crate::pipeline::{drain, Stage};

    use crate::bitstream::test_vectors::{PPS_720P as PPS, SPS_720P as SPS};

    fn tracks() -> Vec<TrackInfo> {
        let h264 =
            H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
                .unwrap();
        let asc = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        vec![
            TrackInfo::new(1, Timescale::new(12_800).unwrap(), CodecConfig::H264(h264)),
            TrackInfo::new(
                2,
                Timescale::new(48_000).unwrap(),
                CodecConfig::Aac(asc.clone()),
            )
            .with_language("eng"),
            TrackInfo::new(3, Timescale::new(48_000).unwrap(), CodecConfig::Aac(asc))
                .with_language("fra"),
        ]
    }

    /// `secs` of 25 fps video (keyframe every 2 s, starting at `-dts0` ticks) and two
    /// audio tracks, segmented every 2 s.
    fn segments(secs: i64, dts0: i64) -> Vec<Segment> {
        let mut s = Segmenter::new(SegmenterOptions {
            target_duration: Timestamp::from_secs(2),
            ..SegmenterOptions::default()
        })
        .unwrap();
        for t in tracks() {
            s.push(Item::Event(Event::TrackAdded(t))).unwrap();
        }
        let v = Timescale::new(12_800).unwrap();
        let a = Timescale::new(48_000).unwrap();
        let mut out = Vec::new();
        let mut audio_t = 0;
        for i in 0..secs * 25 {
            let dts = Timestamp::new(i * 512 - dts0, v);
            let pts = Timestamp::new(i * 512 + 1024 - dts0, v);
            let mut f = Frame::new(1, dts, pts, Bytes::from(vec![0u8, 0, 0, 1, 0x65]));
            if i % 50 == 0 {
                f = f.with_flags(FrameFlags::KEYFRAME);
            }
            s.push(Item::Frame(f)).unwrap();
            while audio_t * 1024 * 12_800 < (i + 1) * 512 * 48_000 {
                for track in [2, 3] {
                    let t = Timestamp::new(audio_t * 1024, a);
                    let f = Frame::new(track, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
                        .with_flags(FrameFlags::KEYFRAME)
                        .with_duration(Timestamp::new(1024, a));
                    s.push(Item::Frame(f)).unwrap();
                }
                audio_t += 1;
            }
            out.extend(drain(&mut s).unwrap());
        }
        s.finish().unwrap();
        out.extend(drain(&mut s).unwrap());
        out
    }

    #[test]
    fn renditions_playlists_and_mpd() {
        let mut p = CmafPresentation::new(CmafOptions::default());
        let mut written = Vec::new();
        for seg in segments(10, 0) {
            written.extend(p.write_segment(&seg, None).unwrap());
        }
        p.set_ended();
        let names: Vec<&str> = p.renditions().iter().map(|r| r.name()).collect();
        assert_eq!(names, ["v1", "a2", "a3"]);
        let v: Vec<u64> = written
            .iter()
            .filter(|f| f.rendition == "v1")
            .map(|f| f.number)
            .collect();
        assert_eq!(v, [1, 2, 3, 4, 5]);
        for f in &written {
            assert_eq!(&f.data[4..8], b"styp");
            assert_eq!(f.info.len, f.data.len());
        }
        let media = p.media_playlist("v1").unwrap().write().unwrap();
        assert!(media.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{media}");
        assert!(media.contains("#EXT-X-MEDIA-SEQUENCE:1\n"));
        assert!(media.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"));
        assert!(media.contains("#EXTINF:2.000,\n1.m4s\n"));
        assert!(media.ends_with("5.m4s\n#EXT-X-ENDLIST\n"));
        let mv = p.multivariant_playlist().unwrap().write().unwrap();
        let parsed = m3u8_rs::parse_master_playlist_res(mv.as_bytes()).unwrap();
        assert_eq!(parsed.alternatives.len(), 2);
        assert_eq!(parsed.alternatives[0].language.as_deref(), Some("en"));
        assert!(parsed.alternatives[0].default);
        assert_eq!(parsed.alternatives[1].language.as_deref(), Some("fr"));
        assert_eq!(parsed.alternatives[1].name, "French");
        assert_eq!(parsed.variants.len(), 2);
        assert_eq!(parsed.variants[0].uri, "v1/media.m3u8");
        assert_eq!(parsed.variants[0].audio.as_deref(), Some("audio"));
        assert_eq!(parsed.variants[1].uri, "a2/media.m3u8");
        assert_eq!(parsed.variants[1].codecs.as_deref(), Some("mp4a.40.2"));
        let mpd = p.static_mpd().unwrap().write().unwrap();
        assert!(
            mpd.contains(r#"mediaPresentationDuration="PT10.005S""#),
            "{mpd}"
        );
        assert!(mpd.contains(r#"lang="en""#) && mpd.contains(r#"lang="fr""#));
        assert!(mpd.contains(r#"value="dub""#));
        assert!(mpd.contains(r#"<S t="0" d="25600" r="4"/>"#), "{mpd}");
    }

    #[test]
    fn by_reference_gives_the_same_bytes_and_manifests() {
        let mut copied = CmafPresentation::new(CmafOptions::default());
        let mut referenced = CmafPresentation::new(CmafOptions::default());
        let mut n = 0;
        for seg in segments(6, 0) {
            let a = copied.write_segment(&seg, None).unwrap();
            let b = referenced.write_segment_by_reference(&seg, None).unwrap();
            assert_eq!(a.len(), b.len());
            for (a, b) in a.iter().zip(&b) {
                assert!(a.payloads.is_empty());
                assert!(!b.payloads.is_empty());
                assert_eq!(
                    b.data.len(),
                    b.info.data_offset,
                    "header ends at the payloads"
                );
                let mut whole = b.data.to_vec();
                for p in &b.payloads {
                    whole.extend_from_slice(p);
                }
                assert_eq!(whole, a.data);
                assert_eq!((a.len(), b.len()), (whole.len(), whole.len()));
                assert_eq!(a.info, b.info);
                assert_eq!((&a.rendition, a.number), (&b.rendition, b.number));
                n += 1;
            }
        }
        assert_eq!(n, 9);
        let mpd = |p: &CmafPresentation| p.static_mpd().unwrap().write().unwrap();
        assert_eq!(mpd(&copied), mpd(&referenced));
        let mv = |p: &CmafPresentation| p.multivariant_playlist().unwrap().write().unwrap();
        assert_eq!(mv(&copied), mv(&referenced));
    }

    #[test]
    fn negative_decode_times_are_shifted_for_every_track() {
        let mut p = CmafPresentation::new(CmafOptions::default());
        let mut first = Vec::new();
        for seg in segments(4, 1024) {
            let f = p.write_segment(&seg, None).unwrap();
            if first.is_empty() {
                first = f;
            }
        }
        // -1024 ticks of 12.8 kHz = -7200 at 90 kHz: video starts at 0, audio at 3840.
        assert_eq!(p.time_shift_90k(), 7200);
        assert_eq!(first[0].info.base_decode_time, 0);
        assert_eq!(first[1].info.base_decode_time, 3840);
    }

    #[test]
    fn live_window_moves_start_number() {
        let mut p = CmafPresentation::new(CmafOptions {
            window: Some(3),
            first_number: 10,
            playlist_type: PlaylistType::Live,
            target_duration: Some(2),
            ..CmafOptions::default()
        });
        for seg in segments(12, 0) {
            p.write_segment(&seg, Some(1_700_000_000_000)).unwrap();
        }
        let v = p.rendition("v1").unwrap();
        assert_eq!(v.first_number(), 13);
        assert_eq!(v.next_number(), 16);
        let media = v.media_playlist().write().unwrap();
        assert!(media.contains("#EXT-X-MEDIA-SEQUENCE:13\n"));
        assert!(!media.contains("ENDLIST"));
        let mpd = p
            .mpd(MpdType::Dynamic {
                availability_start_time: 1_700_000_000_000,
                publish_time: 1_700_000_012_000,
                minimum_update_period: Some(Timestamp::from_secs(2)),
                media_presentation_duration: None,
                time_shift_buffer_depth: Some(Timestamp::from_secs(6)),
                suggested_presentation_delay: Some(Timestamp::from_secs(4)),
            })
            .unwrap()
            .write()
            .unwrap();
        assert!(mpd.contains(r#"startNumber="13""#), "{mpd}");
        assert!(mpd.contains(r#"<S t="76800" d="25600" r="2"/>"#), "{mpd}");
    }

    #[test]
    fn language_tags() {
        assert_eq!(language_tag("eng").as_deref(), Some("en"));
        assert_eq!(language_tag("FRE").as_deref(), Some("fr"));
        assert_eq!(language_tag("tlh").as_deref(), Some("tlh"));
        assert_eq!(language_tag("und"), None);
        assert_eq!(language_tag("e1g"), None);
        assert_eq!(language_tag(""), None);
    }
}
