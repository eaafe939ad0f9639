//! [`Splicer`]: holds ad cues until their splice time and places each one just before
//! the first keyframe at or after it, where the [`Segmenter`](super::Segmenter) then
//! ends the segment (SCTE 67 §10: a splice point is a random access point; the break's
//! first segment starts with it).

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::media::{CueKind, Event, Item, MediaKind, SpliceCue, TrackId};
use crate::pipeline::Stage;
use crate::time::{Timescale, Timestamp};

/// Options of a [`Splicer`]. Plain data with [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SplicerOptions {
    /// Most cues waiting for their splice time; one more is an [`Error::limit`] and is
    /// dropped. Default: 64.
    pub max_pending: usize,
    /// A cue whose splice time is further than this ahead of the stream is refused
    /// ([`Error::malformed`]; counted in [`SplicerStats::refused`]): a clock that
    /// does not belong to this stream. Default: 1 hour.
    pub max_lead: Timestamp,
    /// An `Out` cue with a planned duration but no `In` gets an `In` at
    /// `at + duration` (SCTE 35 `auto_return`; operators' cues). Default: `true`.
    pub auto_return: bool,
}

impl Default for SplicerOptions {
    fn default() -> Self {
        SplicerOptions {
            max_pending: 64,
            max_lead: Timestamp::from_secs(3600),
            auto_return: true,
        }
    }
}

/// What a [`Splicer`] did with the cues it saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SplicerStats {
    /// Cues placed at a keyframe (breaks started and ended).
    pub placed: u64,
    /// Cues whose splice time had already passed when they arrived: placed at the
    /// next keyframe.
    pub late: u64,
    /// Cues repeating one already pending or in force (same id and kind): dropped.
    pub duplicates: u64,
    /// Cues withdrawn by a cancel before their splice time.
    pub cancelled: u64,
    /// `Out` cues arriving while another break is in force, and `In` cues with no
    /// break to end: dropped.
    pub overlapping: u64,
    /// Cues refused (too far ahead, queue full).
    pub refused: u64,
    /// Largest distance from a requested splice time to the keyframe where it was
    /// placed, in 90 kHz ticks.
    pub max_offset_90k: i64,
    /// Distance for the newest placed cue, in 90 kHz ticks.
    pub last_offset_90k: i64,
}

/// A cue waiting for its keyframe; `auto` marks the automatic return of a break.
#[derive(Debug)]
struct Pending {
    cue: SpliceCue,
    auto: bool,
}

/// A break in force or scheduled: its id and whether its `Out` is placed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    id: u32,
}

/// Holds [`Event::Cue`]s until the first keyframe of the reference track at or after
/// their splice time, then emits them immediately before that keyframe with
/// [`SpliceCue::cut_at`] set to its presentation time. A [`Segmenter`](super::Segmenter)
/// fed by a splicer therefore starts a segment exactly at every break start and end.
///
/// * The reference track follows the segmenter's rule: the first video track declared,
///   else the first audio track (every audio frame is a sync point).
/// * Cues are placed in splice-time order. `SpliceCue::at` stays the requested time;
///   `cut_at - at` is how far the cut is from it ([`SplicerStats::last_offset_90k`]).
/// * A late cue (splice time already passed) is placed at the next keyframe.
/// * An `Out` with a planned duration gets an automatic `In` at `cut_at + duration` (the
///   break lasts its planned duration from where it was cut) unless
///   an `In` arrives first ([`SplicerOptions::auto_return`]); the automatic `In` has
///   the `Out`'s id and no raw bytes. An `In` that carries a section replaces the
///   pending automatic one whatever its event id.
/// * Duplicates (same id and kind pending or in force) are dropped; a cue with
///   [`SpliceCue::cancel`] withdraws the pending cues of its id (an automatic `In`
///   included); an `Out` while a break is in force and an `In` with nothing to end are
///   dropped. Each is counted in [`SplicerStats`].
/// * Cue times are on the stream's unwrapped timeline: ingest stages map SCTE 35's
///   33-bit PTS onto it (`scte35::unwrap_pts`), so a wrap is not a jump here.
/// * [`Stage::finish`] drops cues whose time never came.
///
/// Errors: [`Error::limit`] when the queue is full and [`Error::malformed`] for a cue too
/// far ahead; the cue is dropped and the splicer stays usable. It never panics.
///
/// ```
/// use bytes::Bytes;
/// use strom::bitstream::aac::build_asc;
/// use strom::media::{AacConfig, CodecConfig, CueKind, Event, Frame, Item, SpliceCue, TrackInfo};
/// use strom::package::{Splicer, SplicerOptions};
/// use strom::pipeline::{drain, Stage};
/// use strom::time::{Timescale, Timestamp};
///
/// let ms = |t| Timestamp::from_millis(t);
/// let mut splicer = Splicer::new(SplicerOptions::default());
/// let aac = CodecConfig::Aac(AacConfig::from_asc(build_asc(2, 3, 2)).unwrap());
/// splicer.push(Event::TrackAdded(TrackInfo::new(1, Timescale::MILLIS, aac)).into()).unwrap();
/// // A break of 4 s requested at 2.55 s; audio frames (all sync points) every 100 ms.
/// splicer.push(Event::Cue(SpliceCue::new(7, CueKind::Out, ms(2550), Some(ms(4000)))).into()).unwrap();
/// let mut out = Vec::new();
/// for i in 0..100 {
///     let t = ms(i * 100);
///     splicer.push(Item::Frame(Frame::new(1, t, t, Bytes::from_static(b"aac")))).unwrap();
///     out.extend(drain(&mut splicer).unwrap());
/// }
/// let cues: Vec<_> = out.iter().filter_map(|i| match i {
///     Item::Event(Event::Cue(c)) => Some((c.kind, c.cut_at.unwrap().as_millis())),
///     _ => None,
/// }).collect();
/// // Out placed at the frame at 2.6 s, the automatic In 4 s after the cut, at 6.6 s.
/// assert_eq!(cues, vec![(CueKind::Out, 2600), (CueKind::In, 6600)]);
/// assert_eq!(splicer.stats().max_offset_90k, 4_500);
/// ```
#[derive(Debug)]
pub struct Splicer {
    opts: SplicerOptions,
    /// Declared tracks: (id, kind) in declaration order.
    tracks: Vec<(TrackId, MediaKind)>,
    /// Cues waiting for their keyframe, sorted by `at` (stable for equal times).
    pending: VecDeque<Pending>,
    /// The break in force (its `Out` placed, its `In` not yet).
    open: Option<Open>,
    /// Presentation time of the newest reference frame.
    now: Option<Timestamp>,
    ready: VecDeque<Item>,
    stats: SplicerStats,
}

impl Splicer {
    /// A splicer with `opts`.
    pub fn new(opts: SplicerOptions) -> Self {
        Splicer {
            opts,
            tracks: Vec::new(),
            pending: VecDeque::new(),
            open: None,
            now: None,
            ready: VecDeque::new(),
            stats: SplicerStats::default(),
        }
    }

    /// What happened to the cues so far.
    pub fn stats(&self) -> SplicerStats {
        self.stats
    }

    /// Cues waiting for their splice time.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The id of the break in force, if one is.
    pub fn in_break(&self) -> Option<u32> {
        self.open.map(|o| o.id)
    }

    fn reference(&self) -> Option<(TrackId, bool)> {
        let first = |kind: MediaKind| self.tracks.iter().find(|t| t.1 == kind);
        first(MediaKind::Video)
            .map(|t| (t.0, false))
            .or_else(|| first(MediaKind::Audio).map(|t| (t.0, true)))
    }

    /// Takes a cue in: cancel, duplicate and overlap rules, then the queue.
    fn accept(&mut self, cue: SpliceCue) -> Result<()> {
        if cue.cancel {
            let before = self.pending.len();
            self.pending.retain(|p| p.cue.id != cue.id);
            let withdrawn = (before - self.pending.len()) as u64;
            self.stats.cancelled += withdrawn;
            tracing::debug!(id = cue.id, withdrawn, "splicer: cancel");
            return Ok(());
        }
        if cue.kind == CueKind::Other {
            // Not a break boundary: passes through in order.
            self.ready.push_back(Item::Event(Event::Cue(cue)));
            return Ok(());
        }
        let dup = self
            .pending
            .iter()
            .any(|p| !p.auto && p.cue.id == cue.id && p.cue.kind == cue.kind)
            || (cue.kind == CueKind::Out && self.open.is_some_and(|o| o.id == cue.id));
        if dup {
            self.stats.duplicates += 1;
            return Ok(());
        }
        if let Some(now) = self.now {
            let lead = cue.at.ticks_in(Timescale::MPEG) - now.ticks_in(Timescale::MPEG);
            if lead > self.opts.max_lead.ticks_in(Timescale::MPEG) {
                self.stats.refused += 1;
                return Err(
                    Error::malformed("cue splice time too far ahead of the stream")
                        .context("splicer"),
                );
            }
            if lead < 0 {
                self.stats.late += 1;
            }
        }
        if cue.kind == CueKind::In {
            // An explicit In replaces the automatic return of the break it ends, whatever
            // its id (encoders often give the return its own event id).
            self.pending.retain(|p| !p.auto);
        }
        if self.pending.len() >= self.opts.max_pending {
            self.stats.refused += 1;
            return Err(Error::limit("too many pending cues").context("splicer"));
        }
        let auto_in = match (cue.kind, cue.duration) {
            (CueKind::Out, Some(d)) if self.opts.auto_return && d.ticks() > 0 => {
                let mut i = SpliceCue::new(cue.id, CueKind::In, cue.at.add(d), None);
                i.segmentation_type = cue.segmentation_type.map(|t| t.saturating_add(1));
                Some(i)
            }
            _ => None,
        };
        self.insert(cue, false);
        if let Some(i) = auto_in {
            if self.pending.len() < self.opts.max_pending {
                self.insert(i, true);
            }
        }
        Ok(())
    }

    fn insert(&mut self, cue: SpliceCue, auto: bool) {
        let pos = self.pending.iter().position(|p| p.cue.at > cue.at);
        let p = Pending { cue, auto };
        match pos {
            Some(i) => self.pending.insert(i, p),
            None => self.pending.push_back(p),
        }
    }

    /// Emits the cues due at the reference sync point at `pts`.
    fn place_due(&mut self, pts: Timestamp) {
        while self.pending.front().is_some_and(|p| p.cue.at <= pts) {
            let Some(Pending { mut cue, .. }) = self.pending.pop_front() else {
                break;
            };
            match cue.kind {
                CueKind::Out if self.open.is_some() => {
                    self.stats.overlapping += 1;
                    // Its automatic In goes with it.
                    let id = cue.id;
                    self.pending.retain(|p| !(p.auto && p.cue.id == id));
                    continue;
                }
                CueKind::Out => {
                    self.open = Some(Open { id: cue.id });
                    // The automatic return counts the planned duration from the cut.
                    if let Some(d) = cue.duration {
                        let id = cue.id;
                        let auto = self.pending.iter().position(|p| p.auto && p.cue.id == id);
                        if let Some(Pending { cue: mut back, .. }) =
                            auto.and_then(|i| self.pending.remove(i))
                        {
                            back.at = pts.add(d);
                            self.insert(back, true);
                        }
                    }
                }
                CueKind::In if self.open.is_none() => {
                    self.stats.overlapping += 1;
                    continue;
                }
                CueKind::In => self.open = None,
                CueKind::Other => {}
            }
            let offset = pts.ticks_in(Timescale::MPEG) - cue.at.ticks_in(Timescale::MPEG);
            self.stats.placed += 1;
            self.stats.last_offset_90k = offset;
            self.stats.max_offset_90k = self.stats.max_offset_90k.max(offset);
            cue.cut_at = Some(pts);
            tracing::debug!(id = cue.id, kind = ?cue.kind, offset_90k = offset, "splicer: cue placed");
            self.ready.push_back(Item::Event(Event::Cue(cue)));
        }
    }
}

impl Stage for Splicer {
    type In = Item;
    type Out = Item;

    fn push(&mut self, input: Item) -> Result<()> {
        match input {
            Item::Frame(frame) => {
                if let Some((reference, audio)) = self.reference() {
                    if frame.track == reference {
                        if audio || frame.is_keyframe() {
                            self.place_due(frame.pts);
                        }
                        self.now = Some(self.now.map_or(frame.pts, |n| n.max(frame.pts)));
                    }
                }
                self.ready.push_back(Item::Frame(frame));
                Ok(())
            }
            Item::Event(Event::Cue(cue)) => self.accept(cue),
            Item::Event(event) => {
                if let Event::TrackAdded(t) | Event::TrackChanged(t) = &event {
                    let n = self.tracks.len();
                    match self.tracks.iter_mut().find(|x| x.0 == t.id) {
                        Some(x) => x.1 = t.kind,
                        None if n < 64 => self.tracks.push((t.id, t.kind)),
                        None => {}
                    }
                }
                self.ready.push_back(Item::Event(event));
                Ok(())
            }
        }
    }

    fn poll(&mut self) -> Option<Result<Item>> {
        self.ready.pop_front().map(Ok)
    }

    fn finish(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            tracing::debug!(
                dropped = self.pending.len(),
                "splicer: cues whose time never came"
            );
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AacConfig, CodecConfig, Frame, FrameFlags, TrackInfo};
    use crate::pipeline::drain;
    use bytes::Bytes;

    fn ms(t: i64) -> Timestamp {
        Timestamp::from_millis(t)
    }

    fn audio() -> Item {
        let aac = AacConfig::from_asc(crate::bitstream::aac::build_asc(2, 3, 2)).unwrap();
        Event::TrackAdded(TrackInfo::new(2, Timescale::MILLIS, CodecConfig::Aac(aac))).into()
    }

    fn video() -> Item {
        use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
        let cfg = crate::media::H264Config::from_parameter_sets(
            Bytes::from_static(SPS_720P),
            Bytes::from_static(PPS_720P),
        )
        .unwrap();
        Event::TrackAdded(TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(cfg))).into()
    }

    fn frame(track: u32, t: i64, key: bool) -> Item {
        let f = Frame::new(track, ms(t), ms(t), Bytes::from_static(b"x"));
        Item::Frame(if key {
            f.with_flags(FrameFlags::KEYFRAME)
        } else {
            f
        })
    }

    fn cue(id: u32, kind: CueKind, at: i64, dur: Option<i64>) -> Item {
        Event::Cue(SpliceCue::new(id, kind, ms(at), dur.map(ms))).into()
    }

    /// Runs `items` then 10 s of video (keyframe every `gop` ms, 40 ms frames) and
    /// returns (kind, id, cut_at ms, index of the following frame) of the placed cues.
    fn run(s: &mut Splicer, items: Vec<Item>, from: i64, gop: i64) -> Vec<(CueKind, u32, i64)> {
        let mut out = Vec::new();
        for it in items {
            let _ = s.push(it);
            out.extend(drain(s).unwrap());
        }
        for t in (from..from + 10_000).step_by(40) {
            s.push(frame(1, t, t % gop == 0)).unwrap();
            out.extend(drain(s).unwrap());
        }
        let mut cues = Vec::new();
        for (i, it) in out.iter().enumerate() {
            if let Item::Event(Event::Cue(c)) = it {
                let next = out[i + 1..].iter().find_map(|x| x.as_frame());
                let next = next.expect("a frame follows a placed cue");
                assert!(next.is_keyframe(), "cue placed before a keyframe");
                assert_eq!(Some(next.pts), c.cut_at, "cut_at is the next keyframe");
                assert!(c.cut_at.unwrap() >= c.at || c.at.as_millis() < from);
                cues.push((c.kind, c.id, c.cut_at.unwrap().as_millis()));
            }
        }
        cues
    }

    #[test]
    fn places_at_first_keyframe_at_or_after() {
        let mut s = Splicer::new(SplicerOptions::default());
        let got = run(
            &mut s,
            vec![
                video(),
                cue(1, CueKind::Out, 2000, None),
                cue(1, CueKind::In, 4001, None),
            ],
            0,
            1000,
        );
        assert_eq!(got, vec![(CueKind::Out, 1, 2000), (CueKind::In, 1, 5000)]);
        assert_eq!(s.stats().placed, 2);
        assert_eq!(s.stats().max_offset_90k, 999 * 90);
    }

    #[test]
    fn auto_return_duplicates_cancel_overlap() {
        let mut s = Splicer::new(SplicerOptions::default());
        let got = run(
            &mut s,
            vec![
                video(),
                cue(9, CueKind::In, 500, None), // nothing to end
                cue(1, CueKind::Out, 1500, Some(3000)),
                cue(1, CueKind::Out, 1500, Some(3000)), // duplicate
                cue(2, CueKind::Out, 2500, None),       // overlaps break 1
                cue(3, CueKind::Out, 6000, Some(1000)),
                Event::Cue(SpliceCue::new(3, CueKind::Out, ms(6000), None).cancelled()).into(),
            ],
            0,
            1000,
        );
        assert_eq!(got, vec![(CueKind::Out, 1, 2000), (CueKind::In, 1, 5000)]);
        let st = s.stats();
        assert_eq!(
            (st.duplicates, st.overlapping, st.cancelled),
            (1, 2, 2),
            "{st:?}"
        );
    }

    #[test]
    fn the_automatic_return_counts_from_the_cut() {
        let mut s = Splicer::new(SplicerOptions::default());
        // Asked at 1.1 s for 3.5 s: cut at 2 s, back at the keyframe at or after 5.5 s
        // (6 s), not at the one after 4.6 s (5 s).
        let got = run(
            &mut s,
            vec![video(), cue(6, CueKind::Out, 1100, Some(3500))],
            0,
            1000,
        );
        assert_eq!(got, vec![(CueKind::Out, 6, 2000), (CueKind::In, 6, 6000)]);
    }

    #[test]
    fn explicit_in_replaces_the_automatic_one() {
        let mut s = Splicer::new(SplicerOptions::default());
        let got = run(
            &mut s,
            vec![
                video(),
                cue(4, CueKind::Out, 1000, Some(5000)),
                cue(4, CueKind::In, 3000, None),
            ],
            0,
            500,
        );
        assert_eq!(got, vec![(CueKind::Out, 4, 1000), (CueKind::In, 4, 3000)]);
    }

    #[test]
    fn an_in_with_its_own_id_replaces_the_automatic_return() {
        let mut s = Splicer::new(SplicerOptions::default());
        let back = Event::Cue(
            SpliceCue::new(5, CueKind::In, ms(3500), None).with_raw(Bytes::from_static(b"in")),
        );
        let got = run(
            &mut s,
            vec![video(), cue(4, CueKind::Out, 1000, Some(2000)), back.into()],
            0,
            500,
        );
        // The section-carrying In (3.5 s, placed at the keyframe at 4 s) ends the break,
        // not the automatic one at 3 s.
        assert_eq!(got, vec![(CueKind::Out, 4, 1000), (CueKind::In, 5, 4000)]);
        assert_eq!(s.stats().overlapping, 0);
    }

    #[test]
    fn late_cue_goes_to_the_next_keyframe() {
        let mut s = Splicer::new(SplicerOptions::default());
        let mut items = vec![video()];
        for t in (0..3000).step_by(40) {
            items.push(frame(1, t, t % 1000 == 0));
        }
        items.push(cue(5, CueKind::Out, 1000, None));
        let got = run(&mut s, items, 3000, 1000);
        assert_eq!(got, vec![(CueKind::Out, 5, 3000)]);
        assert_eq!(s.stats().late, 1);
        // The cue at 1000 ms was placed 2 s late, reported as such.
        assert_eq!(s.stats().last_offset_90k, 2000 * 90);
    }

    #[test]
    fn audio_only_every_frame_is_a_sync_point() {
        let mut s = Splicer::new(SplicerOptions::default());
        s.push(audio()).unwrap();
        s.push(cue(1, CueKind::Out, 50, None)).unwrap();
        let mut out = Vec::new();
        for t in (0..200).step_by(21) {
            s.push(frame(2, t, false)).unwrap();
            out.extend(drain(&mut s).unwrap());
        }
        let at = out.iter().find_map(|i| match i {
            Item::Event(Event::Cue(c)) => c.cut_at,
            _ => None,
        });
        assert_eq!(at, Some(ms(63)));
    }

    #[test]
    fn too_far_ahead_and_queue_full_are_errors() {
        let mut s = Splicer::new(SplicerOptions {
            max_pending: 2,
            ..SplicerOptions::default()
        });
        s.push(video()).unwrap();
        s.push(frame(1, 0, true)).unwrap();
        drain(&mut s).unwrap();
        let e = s.push(cue(1, CueKind::Out, 7_200_000, None)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Malformed);
        s.push(cue(1, CueKind::Out, 1000, None)).unwrap();
        s.push(cue(1, CueKind::In, 2000, None)).unwrap();
        let e = s.push(cue(2, CueKind::Out, 3000, None)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Limit);
        assert_eq!(s.stats().refused, 2);
        s.finish().unwrap();
        assert_eq!(s.pending(), 0);
    }
}
