//! [`Segmenter`]: cuts the frame stream into [`Segment`]s on keyframes of a reference
//! track, the classic HLS rule (RFC 8216bis §6.2.1: every media segment of a
//! variant starts with a random access point so it can be decoded on its own; its
//! duration must not exceed the playlist's target duration by more than the rounding
//! allowed by §4.4.3.1).

use std::collections::VecDeque;

use super::Segment;
use crate::error::{Error, Result};
use crate::media::{CueKind, Event, Frame, Item, MediaKind, TrackId, TrackInfo};
use crate::pipeline::Stage;
use crate::time::Timestamp;

/// Segments that may wait in the output queue before `push` refuses more input: the
/// caller must poll until `None` after every push (see [`Stage`]).
const MAX_READY: usize = 8;

/// Options of a [`Segmenter`]. Plain data with [`Default`]; every limit bounds memory
/// that the input controls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmenterOptions {
    /// Minimum segment duration: a segment is cut at the first keyframe of the
    /// reference track whose presentation time is at or after the segment start plus
    /// this. Segments are therefore at least this long (except before a forced cut or
    /// at the end) and at most this plus one GOP. Must be positive. Default: 6 s.
    pub target_duration: Timestamp,
    /// Most frames one segment may hold. When a segment would grow past this (no
    /// keyframe for too long), the open segment is discarded, its frames are counted
    /// in [`Segmenter::dropped_frames`], `push` returns an [`Error::limit`] and the
    /// segmenter resynchronises at the next reference keyframe with a discontinuity.
    /// Default: 100 000.
    pub max_frames: usize,
    /// Most payload bytes one segment may hold; exceeding it is handled like
    /// `max_frames`. Default: 512 MiB.
    pub max_bytes: usize,
    /// Most tracks a stream may declare; one more `TrackAdded` is an
    /// [`Error::limit`] and is ignored. Default: 32.
    pub max_tracks: usize,
    /// Most events (cues, data) one segment may carry; one more is an
    /// [`Error::limit`] and the event is dropped. Default: 10 000.
    pub max_events: usize,
}

impl Default for SegmenterOptions {
    fn default() -> Self {
        SegmenterOptions {
            target_duration: Timestamp::from_secs(6),
            max_frames: 100_000,
            max_bytes: 512 << 20,
            max_tracks: 32,
            max_events: 10_000,
        }
    }
}

/// A declared track and whether frames of its current configuration were segmented.
#[derive(Debug, Clone)]
struct Track {
    info: TrackInfo,
    had_frames: bool,
}

/// The segment being filled.
#[derive(Debug)]
struct Open {
    /// Reference track of this segment; fixed while the segment is open.
    reference: TrackId,
    /// Whether the reference is an audio track (every frame is a sync point).
    reference_is_audio: bool,
    start: Timestamp,
    discontinuity: bool,
    frames: Vec<Frame>,
    events: Vec<Event>,
    bytes: usize,
}

/// Cuts [`Item`]s into [`Segment`]s at keyframes of the reference track.
///
/// * The reference track is the first video track declared, else the first audio
///   track. For an audio reference every frame is a sync point.
/// * A segment starts at a keyframe of the reference track; its
///   [`Segment::start`] is that keyframe's presentation time (the earliest
///   presentation time of a closed GOP). It is cut at the first reference keyframe
///   whose presentation time is at or after `start + target_duration`, and emitted
///   then with the exact duration `next.start - start` (no floating point).
/// * [`Event::Discontinuity`], an [`Event::TrackChanged`] that really changes a
///   track whose frames were already segmented, and a `TrackAdded` that changes
///   which track is the reference force a cut: the open segment is emitted at once
///   with a duration computed from its own frames, and the next segment (which
///   again starts at a reference keyframe) has `discontinuity = true`.
/// * The duration computed from a segment's own frames (forced cut, [`Stage::finish`])
///   is `max(pts + frame duration) - start` over its reference frames, where the frame
///   duration is [`Frame::duration`] if present, else the last observed positive
///   difference between consecutive reference frames' decode times.
/// * Frames that arrive before the first reference keyframe (or after a forced cut,
///   before the next one), and frames of undeclared tracks, are dropped and counted
///   in [`Segmenter::dropped_frames`].
/// * [`Event::Cue`] and [`Event::Data`] are kept in [`Segment::events`], in order;
///   those arriving while no segment is open go to the next segment.
/// * A cue that starts or ends a break ([`CueKind::Out`] or [`CueKind::In`], not a
///   cancel) ends the open segment at the next reference sync point whatever its
///   length, and goes into the segment that starts there. Put a
///   [`Splicer`](super::Splicer) in front to place cues at their splice time.
///   [`Event::EndOfStream`] does nothing: [`Stage::finish`] flushes the open segment.
///
/// Errors: [`Error::limit`] when a limit of [`SegmenterOptions`] is hit (the
/// segmenter stays usable, see each option), [`Error::usage`] for a push after
/// `finish` or while more than a few segments wait to be polled. It never panics.
///
/// ```
/// use bytes::Bytes;
/// use strom::bitstream::aac::build_asc;
/// use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, Item, TrackInfo};
/// use strom::package::{Segmenter, SegmenterOptions};
/// use strom::pipeline::{drain, Stage};
/// use strom::time::{Timescale, Timestamp};
///
/// // Audio only: every frame is a sync point. 1024 samples at 48 kHz per frame.
/// let scale = Timescale::new(48_000).unwrap();
/// let aac = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
/// let mut opts = SegmenterOptions::default();
/// opts.target_duration = Timestamp::from_secs(2);
/// let mut seg = Segmenter::new(opts).unwrap();
/// seg.push(Event::TrackAdded(TrackInfo::new(1, scale, CodecConfig::Aac(aac))).into()).unwrap();
/// let mut out = Vec::new();
/// for i in 0..300i64 {
///     let t = Timestamp::new(i * 1024, scale);
///     let f = Frame::new(1, t, t, Bytes::from_static(b"aac")).with_flags(FrameFlags::KEYFRAME);
///     seg.push(Item::Frame(f)).unwrap();
///     out.extend(drain(&mut seg).unwrap());
/// }
/// seg.finish().unwrap();
/// out.extend(drain(&mut seg).unwrap());
/// // 94 frames (2.005333 s) make the first segment: the first frame at or after 2 s cuts.
/// assert_eq!(out[0].frames.len(), 94);
/// assert_eq!(out[0].duration, Timestamp::new(94 * 1024, scale));
/// assert_eq!(out.iter().map(|s| s.frames.len()).sum::<usize>(), 300);
/// ```
#[derive(Debug)]
pub struct Segmenter {
    opts: SegmenterOptions,
    tracks: Vec<Track>,
    open: Option<Open>,
    /// Events that arrived while no segment was open.
    pending_events: Vec<Event>,
    /// The next segment to open follows a forced cut.
    pending_discontinuity: bool,
    /// A segment was opened at least once (a discontinuity before that means nothing).
    ever_opened: bool,
    /// A break boundary cue arrived: cut at the next reference sync point.
    cut_next: bool,
    next_sequence: u64,
    ready: VecDeque<Segment>,
    dropped: u64,
    /// Decode time of the previous reference frame, for frame-duration estimates.
    prev_ref_dts: Option<Timestamp>,
    /// Last positive difference between consecutive reference frames' decode times.
    last_ref_delta: Option<Timestamp>,
    finished: bool,
}

impl Default for Segmenter {
    fn default() -> Self {
        Segmenter::with_valid_options(SegmenterOptions::default())
    }
}

impl Segmenter {
    /// A segmenter with `opts`.
    ///
    /// Errors: [`Error::usage`] if `target_duration` is not positive or a limit is zero.
    pub fn new(opts: SegmenterOptions) -> Result<Self> {
        if opts.target_duration.ticks() <= 0 {
            return Err(Error::usage("segmenter target_duration must be positive"));
        }
        if opts.max_frames == 0 || opts.max_bytes == 0 || opts.max_tracks == 0 {
            return Err(Error::usage("segmenter limits must be non-zero"));
        }
        Ok(Self::with_valid_options(opts))
    }

    fn with_valid_options(opts: SegmenterOptions) -> Self {
        Segmenter {
            opts,
            tracks: Vec::new(),
            open: None,
            pending_events: Vec::new(),
            pending_discontinuity: false,
            ever_opened: false,
            cut_next: false,
            next_sequence: 0,
            ready: VecDeque::new(),
            dropped: 0,
            prev_ref_dts: None,
            last_ref_delta: None,
            finished: false,
        }
    }

    /// The options this segmenter runs with.
    pub fn options(&self) -> &SegmenterOptions {
        &self.opts
    }

    /// Frames dropped so far: before the first reference keyframe, between a forced
    /// cut and the next reference keyframe, of undeclared tracks, discarded with a
    /// segment that hit a limit, or refused by a `push` that returned a usage error. Every pushed frame is either emitted in exactly one
    /// segment, buffered ([`Segmenter::buffered_frames`]) or counted here.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// Frames held in the open segment (not yet emitted).
    pub fn buffered_frames(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.frames.len())
    }

    /// Payload bytes of the frames held in the open segment (not yet emitted).
    pub fn buffered_bytes(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.bytes)
    }

    /// The current reference track: the first declared video track, else the first
    /// declared audio track.
    pub fn reference_track(&self) -> Option<TrackId> {
        self.reference().map(|(id, _)| id)
    }

    /// Changes [`SegmenterOptions::target_duration`] for the cuts to come, the open
    /// segment's included. A live packager starts with a short target so that the
    /// first segment is cut at the next keyframe and published sooner, then restores
    /// its target.
    ///
    /// Errors: [`Error::usage`] if `target` is not positive (nothing changes).
    pub fn set_target_duration(&mut self, target: Timestamp) -> Result<()> {
        if target.ticks() <= 0 {
            return Err(Error::usage("segmenter target_duration must be positive"));
        }
        self.opts.target_duration = target;
        Ok(())
    }

    /// The sequence number the next opened segment will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    fn reference(&self) -> Option<(TrackId, bool)> {
        reference_of(&self.tracks)
    }

    fn push_frame(&mut self, frame: Frame) -> Result<()> {
        if !self.tracks.iter().any(|t| t.info.id == frame.track) {
            self.dropped += 1;
            tracing::debug!(
                track = frame.track,
                "segmenter: frame of undeclared track dropped"
            );
            return Ok(());
        }
        let cut = match &self.open {
            None => {
                let Some((reference, is_audio)) = self.reference() else {
                    self.dropped += 1;
                    return Ok(());
                };
                if frame.track != reference || !(is_audio || frame.is_keyframe()) {
                    self.dropped += 1;
                    tracing::debug!(
                        track = frame.track,
                        "segmenter: frame before reference keyframe dropped"
                    );
                    return Ok(());
                }
                self.open_segment(&frame, reference, is_audio);
                return self.append(frame);
            }
            Some(open) => {
                frame.track == open.reference
                    && (open.reference_is_audio || frame.is_keyframe())
                    && (self.cut_next
                        || elapsed(frame.pts, open.start) >= self.opts.target_duration)
            }
        };
        if cut {
            let (reference, is_audio) = self.open.as_ref().map_or((frame.track, false), |o| {
                (o.reference, o.reference_is_audio)
            });
            self.close(Some(frame.pts));
            self.open_segment(&frame, reference, is_audio);
        }
        self.append(frame)
    }

    fn open_segment(&mut self, first: &Frame, reference: TrackId, reference_is_audio: bool) {
        let discontinuity = self.pending_discontinuity && self.ever_opened;
        self.pending_discontinuity = false;
        self.ever_opened = true;
        self.cut_next = false;
        self.open = Some(Open {
            reference,
            reference_is_audio,
            start: first.pts,
            discontinuity,
            frames: Vec::new(),
            events: std::mem::take(&mut self.pending_events),
            bytes: 0,
        });
    }

    /// Appends `frame` to the open segment, enforcing the size limits.
    fn append(&mut self, frame: Frame) -> Result<()> {
        let Some(open) = self.open.as_mut() else {
            self.dropped += 1;
            return Ok(());
        };
        let bytes = open.bytes.saturating_add(frame.data.len());
        if open.frames.len() >= self.opts.max_frames || bytes > self.opts.max_bytes {
            let what = if bytes > self.opts.max_bytes {
                "segment exceeds max_bytes without a reference keyframe"
            } else {
                "segment exceeds max_frames without a reference keyframe"
            };
            let lost = open.frames.len() as u64 + 1;
            self.dropped = self.dropped.saturating_add(lost);
            self.open = None;
            self.pending_discontinuity = true;
            self.prev_ref_dts = None;
            return Err(Error::limit(what).context("segmenter"));
        }
        open.bytes = bytes;
        if frame.track == open.reference {
            if let Some(prev) = self.prev_ref_dts {
                let delta = elapsed(frame.dts, prev);
                if delta.ticks() > 0 {
                    self.last_ref_delta = Some(delta);
                }
            }
            self.prev_ref_dts = Some(frame.dts);
        }
        if let Some(t) = self.tracks.iter_mut().find(|t| t.info.id == frame.track) {
            t.had_frames = true;
        }
        open.frames.push(frame);
        Ok(())
    }

    /// Emits the open segment. Its duration is `next_start - start` when the next
    /// segment continues it, else computed from its own frames.
    fn close(&mut self, next_start: Option<Timestamp>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let duration = match next_start {
            Some(next) => non_negative(elapsed(next, open.start)),
            None => self.own_duration(&open),
        };
        let segment = Segment {
            sequence: self.next_sequence,
            start: open.start,
            duration,
            discontinuity: open.discontinuity,
            tracks: self.tracks.iter().map(|t| t.info.clone()).collect(),
            frames: open.frames,
            events: open.events,
        };
        self.next_sequence = self.next_sequence.saturating_add(1);
        self.ready.push_back(segment);
    }

    /// `max(pts + frame duration) - start` over the reference frames of `open`.
    fn own_duration(&self, open: &Open) -> Timestamp {
        let scale = open.start.scale();
        let fallback = self.last_ref_delta;
        let end = open
            .frames
            .iter()
            .filter(|f| f.track == open.reference)
            .map(|f| {
                let d = f
                    .duration
                    .or(fallback)
                    .map_or(0, |d| d.ticks_in(scale).max(0));
                f.pts.ticks_in(scale).saturating_add(d)
            })
            .max()
            .unwrap_or(open.start.ticks());
        Timestamp::new(end.saturating_sub(open.start.ticks()).max(0), scale)
    }

    /// Ends the open segment now and marks the next one discontinuous.
    fn forced_cut(&mut self) {
        if self.open.is_some() {
            self.close(None);
        }
        if self.ever_opened {
            self.pending_discontinuity = true;
        }
        self.prev_ref_dts = None;
    }

    /// `TrackAdded` and `TrackChanged`: both declare or update a track. A cut, when
    /// needed, happens before the update so the closed segment keeps the old tracks.
    fn upsert_track(&mut self, info: TrackInfo) -> Result<()> {
        let existing = self.tracks.iter().position(|t| t.info.id == info.id);
        if existing.is_none() && self.tracks.len() >= self.opts.max_tracks {
            return Err(Error::limit("too many tracks").context("segmenter"));
        }
        let mut next = self.tracks.clone();
        let mut cut = false;
        let track = Track {
            info,
            had_frames: false,
        };
        match existing {
            Some(i) => {
                if next[i].info == track.info {
                    return Ok(());
                }
                cut = next[i].had_frames;
                next[i] = track;
            }
            None => next.push(track),
        }
        if let Some(open) = &self.open {
            cut |= reference_of(&next).map(|(id, _)| id) != Some(open.reference);
        }
        if cut {
            self.forced_cut();
        }
        self.tracks = next;
        Ok(())
    }

    fn keep_event(&mut self, event: Event) -> Result<()> {
        let max = self.opts.max_events;
        let boundary = matches!(&event, Event::Cue(c) if c.kind != CueKind::Other && !c.cancel);
        let list = match self.open.as_mut() {
            Some(_) if boundary => &mut self.pending_events,
            Some(open) => &mut open.events,
            None => &mut self.pending_events,
        };
        if list.len() >= max {
            return Err(Error::limit("too many events in one segment").context("segmenter"));
        }
        list.push(event);
        if boundary && self.open.is_some() {
            self.cut_next = true;
        }
        Ok(())
    }
}

/// The reference track of `tracks` (first video, else first audio) and whether it is audio.
fn reference_of(tracks: &[Track]) -> Option<(TrackId, bool)> {
    let first = |kind: MediaKind| tracks.iter().find(|t| t.info.kind == kind);
    first(MediaKind::Video)
        .map(|t| (t.info.id, false))
        .or_else(|| first(MediaKind::Audio).map(|t| (t.info.id, true)))
}

/// `a - b` in `b`'s timescale (`a` rescaled to nearest), exact when scales match.
fn elapsed(a: Timestamp, b: Timestamp) -> Timestamp {
    Timestamp::new(a.ticks_in(b.scale()).saturating_sub(b.ticks()), b.scale())
}

fn non_negative(t: Timestamp) -> Timestamp {
    Timestamp::new(t.ticks().max(0), t.scale())
}

impl Stage for Segmenter {
    type In = Item;
    type Out = Segment;

    fn push(&mut self, input: Item) -> Result<()> {
        if self.finished {
            if let Item::Frame(_) = input {
                self.dropped += 1;
            }
            return Err(Error::usage("push after finish").context("segmenter"));
        }
        if self.ready.len() >= MAX_READY {
            if let Item::Frame(_) = input {
                self.dropped += 1;
            }
            return Err(Error::usage("poll until None before pushing again").context("segmenter"));
        }
        match input {
            Item::Frame(frame) => self.push_frame(frame),
            Item::Event(event) => match event {
                Event::TrackAdded(info) | Event::TrackChanged(info) => self.upsert_track(info),
                Event::Discontinuity { .. } => {
                    self.forced_cut();
                    Ok(())
                }
                Event::EndOfStream => Ok(()),
                other => self.keep_event(other),
            },
        }
    }

    fn poll(&mut self) -> Option<Result<Segment>> {
        self.ready.pop_front().map(Ok)
    }

    fn finish(&mut self) -> Result<()> {
        if !self.finished {
            self.finished = true;
            // Boundary cues waiting for a keyframe that never came stay with the last segment.
            if let Some(open) = self.open.as_mut() {
                open.events.append(&mut self.pending_events);
            }
            self.close(None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::bitstream::aac::build_asc;
    use crate::error::ErrorKind;
    use crate::media::{AacConfig, CodecConfig, CueKind, FrameFlags, H264Config, SpliceCue};
    use crate::pipeline::drain;
    use crate::time::Timescale;

    use crate::bitstream::test_vectors::{PPS_720P as PPS, SPS_720P as SPS};
    /// One 25 fps frame in 90 kHz.
    const F: i64 = 3600;
    const AUDIO_SCALE: Timescale = Timescale::new(48_000).unwrap();

    fn video(id: TrackId) -> TrackInfo {
        let cfg = H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS));
        TrackInfo::new(id, Timescale::MPEG, CodecConfig::H264(cfg.unwrap()))
    }
    fn audio(id: TrackId) -> TrackInfo {
        let cfg = AacConfig::from_asc(build_asc(2, 3, 2)).unwrap();
        TrackInfo::new(id, AUDIO_SCALE, CodecConfig::Aac(cfg))
    }
    fn vf(dts: i64, pts: i64, key: bool) -> Item {
        let flags = if key {
            FrameFlags::KEYFRAME
        } else {
            FrameFlags::NONE
        };
        let t = |x| Timestamp::new(x, Timescale::MPEG);
        Frame::new(1, t(dts), t(pts), Bytes::from_static(b"\0\0\0\x01\x65"))
            .with_flags(flags)
            .into()
    }
    fn af(id: TrackId, n: i64) -> Item {
        let t = Timestamp::new(n * 1024, AUDIO_SCALE);
        Frame::new(id, t, t, Bytes::from_static(b"aac!"))
            .with_flags(FrameFlags::KEYFRAME)
            .into()
    }
    fn ev(e: Event) -> Item {
        Item::Event(e)
    }
    fn opts(target_ms: i64) -> SegmenterOptions {
        SegmenterOptions {
            target_duration: Timestamp::from_millis(target_ms),
            ..SegmenterOptions::default()
        }
    }
    /// Pushes everything, polling after each push, then finishes.
    fn run(seg: &mut Segmenter, items: impl IntoIterator<Item = Item>) -> Vec<Segment> {
        let mut out = Vec::new();
        for item in items {
            seg.push(item).unwrap();
            out.extend(drain(seg).unwrap());
        }
        seg.finish().unwrap();
        out.extend(drain(seg).unwrap());
        out
    }
    fn mpeg(t: i64) -> Timestamp {
        Timestamp::new(t, Timescale::MPEG)
    }

    #[test]
    fn cuts_at_first_keyframe_after_target_with_exact_durations() {
        // 10 s of 25 fps video, keyframe every 2 s, with 48 kHz AAC interleaved.
        let mut items = vec![
            ev(Event::TrackAdded(video(1))),
            ev(Event::TrackAdded(audio(2))),
        ];
        let mut a = 0i64;
        for i in 0..250 {
            items.push(vf(i * F, i * F, i % 50 == 0));
            // Audio frames that start before the next video frame.
            while a * 1024 * 90_000 < (i + 1) * F * 48_000 {
                items.push(af(2, a));
                a += 1;
            }
        }
        let pushed = 250 + a as usize;
        let mut seg = Segmenter::new(opts(6000)).unwrap();
        let out = run(&mut seg, items);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].sequence, 0);
        assert_eq!(out[1].sequence, 1);
        assert_eq!(out[0].start, mpeg(0));
        assert_eq!(out[0].duration, mpeg(150 * F));
        assert_eq!(out[0].duration.scale(), Timescale::MPEG);
        assert_eq!(out[1].start, mpeg(150 * F));
        // Last segment: last frame pts + inferred frame duration (one dts delta) - start.
        assert_eq!(out[1].duration, mpeg(100 * F));
        assert!(!out[0].discontinuity && !out[1].discontinuity);
        assert_eq!(out[0].tracks, vec![video(1), audio(2)]);
        let video_frames = |s: &Segment| s.frames.iter().filter(|f| f.track == 1).count();
        assert_eq!((video_frames(&out[0]), video_frames(&out[1])), (150, 100));
        assert_eq!(out.iter().map(|s| s.frames.len()).sum::<usize>(), pushed);
        assert_eq!(seg.dropped_frames(), 0);
        assert!(out[1].frames[0].is_keyframe());
        assert_eq!(out[1].frames[0].pts, mpeg(150 * F));
    }

    #[test]
    fn segments_are_at_least_target_long() {
        // Keyframes every 4 s, target 6 s: cuts at 8 s and 16 s.
        let mut items = vec![ev(Event::TrackAdded(video(1)))];
        items.extend((0..500).map(|i| vf(i * F, i * F, i % 100 == 0)));
        let out = run(&mut Segmenter::new(opts(6000)).unwrap(), items);
        let starts: Vec<_> = out.iter().map(|s| s.start.ticks()).collect();
        let durations: Vec<_> = out.iter().map(|s| s.duration.ticks()).collect();
        assert_eq!(starts, vec![0, 200 * F, 400 * F]);
        assert_eq!(durations, vec![200 * F, 200 * F, 100 * F]);
    }

    #[test]
    fn start_is_keyframe_pts_with_b_frames() {
        // Composition offset of two frames, as with B-frames: pts = dts + 2F.
        let mut items = vec![ev(Event::TrackAdded(video(1)))];
        items.extend((0..100).map(|i| vf(i * F, i * F + 2 * F, i % 25 == 0)));
        let out = run(&mut Segmenter::new(opts(2000)).unwrap(), items);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].start, mpeg(2 * F));
        assert_eq!(out[0].duration, mpeg(50 * F));
        assert_eq!(out[1].start, mpeg(52 * F));
        assert_eq!(out[1].duration, mpeg(50 * F));
    }

    #[test]
    fn drops_frames_before_first_keyframe_and_of_unknown_tracks() {
        let items = vec![
            vf(0, 0, true), // no track declared yet
            ev(Event::TrackAdded(video(1))),
            ev(Event::TrackAdded(audio(2))),
            af(2, 0),
            vf(F, F, false),
            af(9, 1), // undeclared track
            vf(2 * F, 2 * F, true),
            af(2, 2),
            af(9, 3),
            vf(3 * F, 3 * F, false),
        ];
        let mut seg = Segmenter::default();
        let out = run(&mut seg, items);
        assert_eq!(seg.dropped_frames(), 5);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].frames.len(), 3);
        assert!(out[0].frames[0].is_keyframe());
        assert_eq!(out[0].start, mpeg(2 * F));
        assert_eq!(out[0].duration, mpeg(2 * F));
    }

    #[test]
    fn audio_only_cuts_on_any_frame() {
        let mut items = vec![ev(Event::TrackAdded(audio(2)))];
        // No keyframe flags at all: audio frames are sync points anyway.
        items.extend((0..600).map(|n| {
            let t = Timestamp::new(n * 1024, AUDIO_SCALE);
            Item::Frame(Frame::new(2, t, t, Bytes::from_static(b"x")))
        }));
        let mut seg = Segmenter::new(opts(6000)).unwrap();
        assert_eq!(seg.reference_track(), None);
        let out = run(&mut seg, items);
        assert_eq!(seg.reference_track(), Some(2));
        // ceil(6 s * 48000 / 1024) = 282 frames = 6.016 s.
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].frames.len(), 282);
        assert_eq!(out[0].duration, Timestamp::new(282 * 1024, AUDIO_SCALE));
        assert_eq!(out[1].start, Timestamp::new(282 * 1024, AUDIO_SCALE));
        assert_eq!(out[2].frames.len(), 600 - 2 * 282);
        assert_eq!(out[2].duration, Timestamp::new(36 * 1024, AUDIO_SCALE));
    }

    #[test]
    fn discontinuity_forces_a_cut_with_own_durations() {
        let mut items = vec![ev(Event::TrackAdded(video(1)))];
        items.extend((0..88).map(|i| vf(i * F, i * F, i % 25 == 0)));
        items.push(ev(Event::Discontinuity { track: None }));
        let base = 100 * 90_000;
        items.push(vf(base, base, false)); // cannot start a segment
        items.extend((1..30).map(|i| vf(base + i * F, base + i * F, i == 1)));
        let mut seg = Segmenter::new(opts(2000)).unwrap();
        let out = run(&mut seg, items);
        assert_eq!(seg.dropped_frames(), 1);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].duration, mpeg(50 * F));
        assert!(!out[1].discontinuity);
        assert_eq!(out[1].start, mpeg(50 * F));
        // Own frames: last pts (87F) + F - 50F; not the distance to the next start.
        assert_eq!(out[1].duration, mpeg(38 * F));
        assert!(out[2].discontinuity);
        assert_eq!(out[2].start, mpeg(base + F));
        assert_eq!(out[2].duration, mpeg(29 * F));
        assert_eq!(out[2].sequence, 2);
    }

    #[test]
    fn discontinuity_before_any_segment_is_not_marked() {
        let items = vec![
            ev(Event::Discontinuity { track: None }),
            ev(Event::TrackAdded(video(1))),
            vf(0, 0, true),
        ];
        let out = run(&mut Segmenter::default(), items);
        assert_eq!(out.len(), 1);
        assert!(!out[0].discontinuity);
        assert_eq!(out[0].duration, mpeg(0), "one frame, no known duration");
    }

    #[test]
    fn track_changes_cut_only_when_needed() {
        let mut seg = Segmenter::new(opts(2000)).unwrap();
        let mut out = Vec::new();
        let mut push = |seg: &mut Segmenter, item: Item| {
            seg.push(item).unwrap();
            out.extend(drain(seg).unwrap());
        };
        push(&mut seg, ev(Event::TrackAdded(video(1))));
        push(&mut seg, ev(Event::TrackAdded(audio(2))));
        for i in 0..10 {
            push(&mut seg, vf(i * F, i * F, i == 0));
        }
        // Identical re-announcement: nothing happens.
        push(&mut seg, ev(Event::TrackChanged(video(1))));
        // Audio has had no frames: updated in place, no cut.
        push(
            &mut seg,
            ev(Event::TrackChanged(audio(2).with_language("fra"))),
        );
        assert_eq!(seg.buffered_frames(), 10);
        assert_eq!(seg.buffered_bytes(), 10 * 5);
        // Video had frames: forced cut.
        push(
            &mut seg,
            ev(Event::TrackChanged(video(1).with_language("eng"))),
        );
        assert_eq!(seg.buffered_frames(), 0);
        assert_eq!(seg.buffered_bytes(), 0);
        for i in 10..20 {
            push(&mut seg, vf(i * F, i * F, i == 10));
        }
        seg.finish().unwrap();
        out.extend(drain(&mut seg).unwrap());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].tracks, vec![video(1), audio(2).with_language("fra")]);
        assert_eq!(out[0].duration, mpeg(10 * F));
        assert!(out[1].discontinuity);
        assert_eq!(out[1].tracks[0], video(1).with_language("eng"));
        assert_eq!(out[1].start, mpeg(10 * F));
    }

    #[test]
    fn new_video_track_takes_over_as_reference() {
        let mut items = vec![ev(Event::TrackAdded(audio(2)))];
        items.extend((0..10).map(|n| af(2, n)));
        items.push(ev(Event::TrackAdded(video(1))));
        items.push(af(2, 10)); // waiting for a video keyframe: dropped
        items.push(vf(0, 20_000, true));
        items.push(af(2, 11));
        let mut seg = Segmenter::default();
        let out = run(&mut seg, items);
        assert_eq!(seg.reference_track(), Some(1));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].frames.len(), 10);
        assert_eq!(out[0].duration, Timestamp::new(10 * 1024, AUDIO_SCALE));
        assert!(out[1].discontinuity);
        assert_eq!(out[1].frames.len(), 2);
        assert_eq!(seg.dropped_frames(), 1);
    }

    #[test]
    fn explicit_frame_duration_is_used_for_the_last_segment() {
        let t = mpeg;
        let items = vec![
            ev(Event::TrackAdded(video(1))),
            Frame::new(1, t(0), t(0), Bytes::new())
                .with_flags(FrameFlags::KEYFRAME)
                .with_duration(t(3003))
                .into(),
            Frame::new(1, t(3003), t(3003), Bytes::new())
                .with_duration(t(1001))
                .into(),
        ];
        let out = run(&mut Segmenter::default(), items);
        assert_eq!(out[0].duration, t(4004));
    }

    #[test]
    fn limits_discard_the_segment_and_resynchronise() {
        let mut seg = Segmenter::new(SegmenterOptions {
            max_frames: 10,
            ..opts(2000)
        })
        .unwrap();
        seg.push(ev(Event::TrackAdded(video(1)))).unwrap();
        for i in 0..10 {
            seg.push(vf(i * F, i * F, i == 0)).unwrap();
        }
        let err = seg.push(vf(10 * F, 10 * F, false)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert!(err.to_string().contains("max_frames"), "{err}");
        assert_eq!(seg.dropped_frames(), 11);
        assert!(drain(&mut seg).unwrap().is_empty());
        let out = run(
            &mut seg,
            vec![vf(11 * F, 11 * F, false), vf(12 * F, 12 * F, true)],
        );
        assert_eq!(seg.dropped_frames(), 12);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sequence, 0);
        assert!(out[0].discontinuity);

        let mut seg = Segmenter::new(SegmenterOptions {
            max_bytes: 4,
            max_tracks: 1,
            max_events: 1,
            ..opts(2000)
        })
        .unwrap();
        seg.push(ev(Event::TrackAdded(video(1)))).unwrap();
        let err = seg.push(ev(Event::TrackAdded(audio(2)))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert_eq!(
            seg.push(vf(0, 0, true)).unwrap_err().kind(),
            ErrorKind::Limit
        );
        let cue = || ev(Event::Cue(SpliceCue::new(1, CueKind::Out, mpeg(0), None)));
        seg.push(cue()).unwrap();
        assert_eq!(seg.push(cue()).unwrap_err().kind(), ErrorKind::Limit);
    }

    #[test]
    fn events_stay_in_order_in_their_segment() {
        let cue = |id| Event::Cue(SpliceCue::new(id, CueKind::Other, mpeg(0), None));
        let data = Event::Data {
            at: mpeg(60 * F),
            name: "onTextData".into(),
            payload: Bytes::from_static(b"hi"),
        };
        let mut items = vec![ev(Event::TrackAdded(video(1))), ev(cue(1))];
        items.extend((0..50).map(|i| vf(i * F, i * F, i % 25 == 0)));
        // Events belong to the segment open when they arrive: frame 50 cuts first.
        items.push(vf(50 * F, 50 * F, true));
        items.push(ev(cue(2)));
        items.push(ev(data.clone()));
        items.extend((51..75).map(|i| vf(i * F, i * F, i % 25 == 0)));
        items.push(ev(Event::EndOfStream));
        let out = run(&mut Segmenter::new(opts(2000)).unwrap(), items);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].events, vec![cue(1)]);
        assert_eq!(out[1].events, vec![cue(2), data]);
    }

    #[test]
    fn break_cues_cut_at_the_next_keyframe() {
        let cue = |id, kind| Event::Cue(SpliceCue::new(id, kind, mpeg(0), None));
        let mut items = vec![ev(Event::TrackAdded(video(1)))];
        // Keyframes every 10 frames (0.4 s), target 2 s.
        for i in 0..200 {
            if i == 33 {
                items.push(ev(cue(1, CueKind::Out)));
            }
            if i == 75 {
                items.push(ev(cue(1, CueKind::In)));
            }
            if i == 195 {
                items.push(ev(cue(2, CueKind::Out)));
            }
            items.push(vf(i * F, i * F, i % 10 == 0));
        }
        let out = run(&mut Segmenter::new(opts(2000)).unwrap(), items);
        let starts: Vec<i64> = out.iter().map(|s| s.start.ticks() / F).collect();
        // 0..40 (cut by the Out at the keyframe after frame 33), 40..80 (the In),
        // then the 2 s rule again: 80, 130, 180.
        assert_eq!(starts, vec![0, 40, 80, 130, 180]);
        assert_eq!(out[1].events, vec![cue(1, CueKind::Out)]);
        assert_eq!(out[2].events, vec![cue(1, CueKind::In)]);
        // A break cue with no keyframe after it stays with the last segment.
        assert_eq!(out[4].events, vec![cue(2, CueKind::Out)]);
        assert!(out.iter().all(|s| !s.discontinuity));
    }

    #[test]
    fn misuse_is_a_usage_error() {
        let bad = SegmenterOptions {
            target_duration: Timestamp::from_millis(0),
            ..SegmenterOptions::default()
        };
        assert_eq!(Segmenter::new(bad).unwrap_err().kind(), ErrorKind::Usage);
        // Every audio frame cuts with a 1 ms target; not polling fills the queue.
        let mut seg = Segmenter::new(opts(1)).unwrap();
        seg.push(ev(Event::TrackAdded(audio(2)))).unwrap();
        let mut result = Ok(());
        for n in 0..20 {
            result = seg.push(af(2, n));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Usage);
        assert_eq!(drain(&mut seg).unwrap().len(), MAX_READY);
        seg.finish().unwrap();
        seg.finish().unwrap();
        assert_eq!(seg.push(af(2, 99)).unwrap_err().kind(), ErrorKind::Usage);
    }

    /// A real x264 + AAC capture (FLV, B-frames, GOP of 25 at 25 fps): the segments
    /// start exactly at the keyframes ffprobe reports, with the rule applied to them.
    #[test]
    fn flv_capture_cuts_where_ffprobe_sees_keyframes() {
        use crate::ingest::flv::FlvDemuxer;
        use std::process::Command;

        let dir = std::env::temp_dir().join(format!("strom-segmenter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flv = dir.join("x264-aac.flv");
        let ok = Command::new("ffmpeg")
            .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=25:duration=4")
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000:duration=4",
            ])
            .args([
                "-c:v",
                "libx264",
                "-threads",
                "1",
                "-g",
                "25",
                "-keyint_min",
                "25",
            ])
            .args([
                "-sc_threshold",
                "0",
                "-bf",
                "2",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-f",
                "flv",
            ])
            .arg(&flv)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ffmpeg could not generate the capture");
        let probe = |stream: &str| -> Vec<(i64, bool)> {
            let out = Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", stream])
                .args(["-show_entries", "packet=pts,flags", "-of", "csv=p=0"])
                .arg(&flv)
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (pts, flags) = l.split_once(',').unwrap();
                    (pts.parse().unwrap(), flags.starts_with('K'))
                })
                .collect()
        };
        // FLV time base is 1/1000: pts in milliseconds, packets in decode order.
        let video = probe("v:0");
        let audio = probe("a:0");
        assert_eq!(video.len(), 100);
        let mut expected = Vec::new(); // (start pts, index of the keyframe in decode order)
        for (i, &(pts, key)) in video.iter().enumerate() {
            let cut = match expected.last() {
                None => key,
                Some(&(start, _)) => key && pts >= start + 1000,
            };
            if cut {
                expected.push((pts, i));
            }
        }
        assert_eq!(expected.len(), 4);

        let bytes = Bytes::from(std::fs::read(&flv).unwrap());
        std::fs::remove_dir_all(&dir).ok();
        let mut chain = FlvDemuxer::new().then(Segmenter::new(opts(1000)).unwrap());
        chain.push(bytes).unwrap();
        let mut out = drain(&mut chain).unwrap();
        chain.finish().unwrap();
        out.extend(drain(&mut chain).unwrap());
        let (_, seg) = chain.into_inner();

        let starts: Vec<i64> = out.iter().map(|s| s.start.as_millis()).collect();
        assert_eq!(starts, expected.iter().map(|e| e.0).collect::<Vec<_>>());
        for (i, s) in out.iter().enumerate() {
            let video_frames = s
                .frames
                .iter()
                .filter(|f| f.track == s.frames[0].track)
                .count();
            let end = expected.get(i + 1).map_or(video.len(), |e| e.1);
            assert_eq!(
                video_frames,
                end - expected[i].1,
                "segment {i} video frames"
            );
            if let Some(next) = expected.get(i + 1) {
                assert_eq!(s.duration.as_millis(), next.0 - expected[i].0);
            } else {
                let last_end = video[expected[i].1..].iter().map(|v| v.0).max().unwrap() + 40;
                assert_eq!(s.duration.as_millis(), last_end - expected[i].0);
            }
        }
        let emitted: usize = out.iter().map(|s| s.frames.len()).sum();
        assert_eq!(
            emitted as u64 + seg.dropped_frames(),
            (video.len() + audio.len()) as u64
        );
    }

    /// Small deterministic PRNG for the randomised test.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Checks the invariants the fuzz target checks, on a random item sequence.
    #[test]
    fn random_sequences_keep_invariants() {
        for seed in 1..200u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut seg = Segmenter::new(SegmenterOptions {
                max_frames: 40,
                max_bytes: 2_000,
                max_events: 5,
                max_tracks: 3,
                ..opts(500)
            })
            .unwrap();
            let (mut pushed, mut emitted, mut next_seq) = (0u64, 0u64, 0u64);
            let mut check = |segs: Vec<Segment>, seg: &Segmenter, pushed: u64| {
                for s in segs {
                    assert_eq!(s.sequence, next_seq);
                    next_seq += 1;
                    assert!(s.duration.ticks() >= 0);
                    let first_video = s.tracks.iter().find(|t| t.kind == MediaKind::Video);
                    let reference = first_video
                        .or_else(|| s.tracks.iter().find(|t| t.kind == MediaKind::Audio))
                        .unwrap();
                    let f = &s.frames[0];
                    assert_eq!(f.track, reference.id);
                    assert!(reference.kind == MediaKind::Audio || f.is_keyframe());
                    emitted += s.frames.len() as u64;
                }
                assert_eq!(
                    emitted + seg.dropped_frames() + seg.buffered_frames() as u64,
                    pushed
                );
            };
            let mut t = 0i64;
            for _ in 0..300 {
                let item = match rng.below(20) {
                    0 => ev(Event::TrackAdded(if rng.below(2) == 0 {
                        video(1)
                    } else {
                        audio(2)
                    })),
                    1 => ev(Event::TrackChanged(video(1).with_language("x"))),
                    2 => ev(Event::Discontinuity { track: None }),
                    3 => ev(Event::Cue(SpliceCue::new(0, CueKind::In, mpeg(t), None))),
                    4 => ev(Event::TrackAdded(audio(rng.below(5) as u32))),
                    _ => {
                        t += rng.below(40_000) as i64 - 4_000;
                        let track = rng.below(3) as u32;
                        let ts = mpeg(t);
                        let data = Bytes::from(vec![0u8; rng.below(300) as usize]);
                        let mut f =
                            Frame::new(track, ts, ts.add_ticks(rng.below(5000) as i64), data);
                        if rng.below(4) == 0 {
                            f = f.with_flags(FrameFlags::KEYFRAME);
                        }
                        if rng.below(4) == 0 {
                            f = f.with_duration(mpeg(rng.below(9000) as i64 - 100));
                        }
                        pushed += 1;
                        Item::Frame(f)
                    }
                };
                let _ = seg.push(item);
                check(drain(&mut seg).unwrap(), &seg, pushed);
            }
            seg.finish().unwrap();
            check(drain(&mut seg).unwrap(), &seg, pushed);
            assert_eq!(seg.buffered_frames(), 0);
        }
    }
}
