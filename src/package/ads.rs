//! Ad breaks as packaged: [`BreakTracker`] follows the placed cues of a segment stream
//! (see [`Splicer`](super::Splicer)) and says, per segment, which break starts, goes
//! on or ends there, for every manifest dialect ([`SegmentAds::hls`] for HLS; the DASH
//! writers read [`AdBreak`]s).

use std::collections::VecDeque;

use bytes::Bytes;

use super::hls::{CueTag, DateRange, HlsAdMarkers};
use crate::media::{CueKind, Event};
use crate::time::{Rounding, Timescale, Timestamp};

/// Which ad-signalling forms a DASH presentation carries. Plain data with [`Default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DashAdMarkers {
    /// A Period `EventStream` of `urn:scte:scte35:2014:xml+bin` events, one per break
    /// (SCTE 214-1 §6.7.4). Default: on.
    pub event_stream: bool,
    /// In-band `emsg` boxes (`urn:scte:scte35:2013:bin`) before the `moof` of the
    /// fragments where a break starts and ends, announced by an `InbandEventStream` on
    /// every AdaptationSet (ISO/IEC 23009-1 §5.10.3). Default: version 1.
    pub emsg: Option<EmsgVersion>,
}

impl Default for DashAdMarkers {
    fn default() -> Self {
        DashAdMarkers {
            event_stream: true,
            emsg: Some(EmsgVersion::V1),
        }
    }
}

/// `emsg` box version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmsgVersion {
    /// Version 0: the time as a delta from the segment's earliest presentation time.
    V0,
    /// Version 1: the time on the track's media timeline.
    V1,
}

/// One ad break of a packaged stream: from the segment boundary its `Out` cue was placed
/// at to the one its `In` was placed at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdBreak {
    /// Splice event id of the `Out` cue.
    pub id: u32,
    /// Media time of the cut where the break starts (a segment start).
    pub start: Timestamp,
    /// The splice time the cue asked for (`start` is the first keyframe at or after it).
    pub requested: Timestamp,
    /// Wall-clock time of `start`, Unix milliseconds (the segment's program date-time).
    pub start_date: i64,
    /// Sequence number of the break's first segment.
    pub first_sequence: u64,
    /// Planned duration from the cue, if any.
    pub planned_duration: Option<Timestamp>,
    /// Media time of the cut where the break ends, once it has.
    pub end: Option<Timestamp>,
    /// Sequence number of the first segment after the break, once it ended.
    pub end_sequence: Option<u64>,
    /// The `Out` cue's splice_info_section (may be empty).
    pub out_raw: Bytes,
    /// The `In` cue's splice_info_section (empty for an automatic return).
    pub in_raw: Bytes,
    /// SCTE 35 segmentation type of the `Out` cue, if it came from one.
    pub segmentation_type: Option<u8>,
}

impl AdBreak {
    /// The actual duration, once the break ended.
    pub fn duration(&self) -> Option<Timestamp> {
        self.end.map(|e| elapsed(e, self.start))
    }

    /// The `EXT-X-DATERANGE` `ID` of this break: unique per break even when an encoder
    /// reuses splice event ids.
    pub fn date_range_id(&self) -> String {
        format!("splice-{}-{}", self.id, self.first_sequence)
    }

    /// The break's `EXT-X-DATERANGE` as known so far: `START-DATE`,
    /// `PLANNED-DURATION` and `SCTE35-OUT`, and once it ended `END-DATE`, `DURATION`
    /// and `SCTE35-IN`.
    pub fn date_range(&self) -> DateRange {
        let mut d = DateRange::new(self.date_range_id(), self.start_date);
        d.planned_duration = self.planned_duration;
        d.scte35_out = Some(self.out_raw.clone()).filter(|b| !b.is_empty());
        if let Some(dur) = self.duration() {
            d.duration = Some(dur);
            d.end_date = Some(
                self.start_date
                    .saturating_add(dur.rescale(Timescale::MILLIS, Rounding::Nearest).ticks()),
            );
            d.scte35_in = Some(self.in_raw.clone()).filter(|b| !b.is_empty());
        }
        d
    }
}

/// What [`BreakTracker::on_segment`] found for one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentAds {
    /// The break that ended where this segment starts.
    pub ended: Option<AdBreak>,
    /// The break that starts with this segment.
    pub started: Option<AdBreak>,
    /// The segment is inside a break that started earlier: (time since its start,
    /// its planned duration).
    pub inside: Option<(Timestamp, Option<Timestamp>)>,
}

impl SegmentAds {
    /// Whether the segment belongs to a break (its first segment or a later one).
    pub fn in_break(&self) -> bool {
        self.started.is_some() || self.inside.is_some()
    }

    /// The HLS tags for the segment in the dialects `markers` asks for:
    /// `EXT-X-DATERANGE`s (the end of the previous break, the start of a new one) and
    /// the `EXT-X-CUE-*` tag.
    pub fn hls(&self, markers: HlsAdMarkers) -> (Vec<DateRange>, Option<CueTag>) {
        let mut ranges = Vec::new();
        if markers.daterange {
            ranges.extend(self.ended.as_ref().map(AdBreak::date_range));
            ranges.extend(self.started.as_ref().map(AdBreak::date_range));
        }
        let cue = if !markers.cue_out {
            None
        } else if let Some(b) = &self.started {
            Some(CueTag::Out {
                duration: b.planned_duration,
            })
        } else if let Some((elapsed, duration)) = self.inside {
            Some(CueTag::Cont { elapsed, duration })
        } else if self.ended.is_some() {
            Some(CueTag::In)
        } else {
            None
        };
        (ranges, cue)
    }
}

/// Follows the ad breaks of one segment stream.
///
/// Feed every segment in order with the events it carries; `Out` and `In` cues placed by
/// a [`Splicer`](super::Splicer) start and end breaks at that segment's start. An `Out`
/// while a break is in force and an `In` with none are ignored (the splicer already
/// drops them). The tracker keeps the break in force and the newest
/// [`BreakTracker::new`]`(keep)` ended ones.
///
/// ```
/// use strom::media::{CueKind, Event, SpliceCue};
/// use strom::package::ads::BreakTracker;
/// use strom::time::Timestamp;
///
/// let ms = Timestamp::from_millis;
/// let mut t = BreakTracker::new(16);
/// let out = Event::Cue(SpliceCue::new(9, CueKind::Out, ms(4000), Some(ms(4000))));
/// let back = Event::Cue(SpliceCue::new(9, CueKind::In, ms(8000), None));
/// assert!(t.on_segment(0, ms(0), 1_000_000, &[]).started.is_none());
/// assert_eq!(t.on_segment(1, ms(4000), 1_004_000, &[out]).started.unwrap().id, 9);
/// assert!(t.on_segment(2, ms(6000), 1_006_000, &[]).inside.is_some());
/// let ended = t.on_segment(3, ms(8000), 1_008_000, &[back]).ended.unwrap();
/// assert_eq!(ended.duration(), Some(ms(4000)));
/// ```
#[derive(Debug, Clone)]
pub struct BreakTracker {
    active: Option<AdBreak>,
    done: VecDeque<AdBreak>,
    keep: usize,
}

impl BreakTracker {
    /// A tracker keeping the newest `keep` ended breaks.
    pub fn new(keep: usize) -> Self {
        BreakTracker {
            active: None,
            done: VecDeque::new(),
            keep,
        }
    }

    /// The break in force, if any.
    pub fn active(&self) -> Option<&AdBreak> {
        self.active.as_ref()
    }

    /// Ended breaks kept, oldest first, then the one in force.
    pub fn breaks(&self) -> impl Iterator<Item = &AdBreak> {
        self.done.iter().chain(self.active.iter())
    }

    /// Takes one segment (its sequence number, start, program date-time and events) and
    /// says what it means for ad breaks.
    pub fn on_segment(
        &mut self,
        sequence: u64,
        start: Timestamp,
        date: i64,
        events: &[Event],
    ) -> SegmentAds {
        let mut ads = SegmentAds::default();
        let cues = events.iter().filter_map(|e| match e {
            Event::Cue(c) if !c.cancel => Some(c),
            _ => None,
        });
        // Ins first: a break may end and the next start at the same keyframe.
        let (ins, outs): (Vec<_>, Vec<_>) = cues.partition(|c| c.kind == CueKind::In);
        for c in ins {
            if let Some(mut b) = self.active.take() {
                b.end = Some(start);
                b.end_sequence = Some(sequence);
                b.in_raw = c.raw.clone();
                if self.keep > 0 {
                    if self.done.len() >= self.keep {
                        self.done.pop_front();
                    }
                    self.done.push_back(b.clone());
                }
                ads.ended = Some(b);
            }
        }
        for c in outs.into_iter().filter(|c| c.kind == CueKind::Out) {
            if self.active.is_some() {
                continue;
            }
            let b = AdBreak {
                id: c.id,
                start,
                requested: c.at,
                start_date: date,
                first_sequence: sequence,
                planned_duration: c.duration,
                end: None,
                end_sequence: None,
                out_raw: c.raw.clone(),
                in_raw: Bytes::new(),
                segmentation_type: c.segmentation_type,
            };
            self.active = Some(b.clone());
            ads.started = Some(b);
        }
        if ads.started.is_none() {
            if let Some(b) = &self.active {
                ads.inside = Some((elapsed(start, b.start), b.planned_duration));
            }
        }
        ads
    }
}

/// `a - b` in `b`'s timescale.
fn elapsed(a: Timestamp, b: Timestamp) -> Timestamp {
    Timestamp::new(a.ticks_in(b.scale()).saturating_sub(b.ticks()), b.scale())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::SpliceCue;

    fn ms(t: i64) -> Timestamp {
        Timestamp::from_millis(t)
    }

    #[test]
    fn hls_tags_through_a_break() {
        let mut t = BreakTracker::new(4);
        let out = Event::Cue(
            SpliceCue::new(5, CueKind::Out, ms(1900), Some(ms(6000)))
                .with_raw(Bytes::from_static(&[0xFC, 1])),
        );
        let back = Event::Cue(
            SpliceCue::new(5, CueKind::In, ms(8000), None).with_raw(Bytes::from_static(&[0xFC, 2])),
        );
        let base = 1_700_000_000_000;
        let mut lines = Vec::new();
        for (i, ev) in [vec![], vec![out], vec![], vec![], vec![back], vec![]]
            .into_iter()
            .enumerate()
        {
            let start = ms(i as i64 * 2000);
            let ads = t.on_segment(i as u64, start, base + i as i64 * 2000, &ev);
            let (ranges, cue) = ads.hls(HlsAdMarkers::default());
            let mut s = String::new();
            for r in ranges {
                r.write(&mut s).unwrap();
            }
            if let Some(c) = cue {
                c.write(&mut s).unwrap();
            }
            lines.push(s);
        }
        assert_eq!(lines[0], "");
        assert_eq!(
            lines[1],
            "#EXT-X-DATERANGE:ID=\"splice-5-1\",START-DATE=\"2023-11-14T22:13:22.000Z\",\
             PLANNED-DURATION=6.000,SCTE35-OUT=0xFC01\n#EXT-X-CUE-OUT:DURATION=6.000\n"
        );
        assert_eq!(
            lines[2],
            "#EXT-X-CUE-OUT-CONT:ElapsedTime=2.000,Duration=6.000\n"
        );
        assert_eq!(
            lines[4],
            "#EXT-X-DATERANGE:ID=\"splice-5-1\",START-DATE=\"2023-11-14T22:13:22.000Z\",\
             END-DATE=\"2023-11-14T22:13:28.000Z\",DURATION=6.000,PLANNED-DURATION=6.000,\
             SCTE35-OUT=0xFC01,SCTE35-IN=0xFC02\n#EXT-X-CUE-IN\n"
        );
        assert_eq!(lines[5], "");
        let only_cue = HlsAdMarkers {
            daterange: false,
            ..HlsAdMarkers::default()
        };
        assert_eq!(t.breaks().count(), 1);
        assert!(SegmentAds::default().hls(only_cue).0.is_empty());
    }

    #[test]
    fn back_to_back_breaks_and_stray_cues() {
        let mut t = BreakTracker::new(1);
        let c = |id, kind| Event::Cue(SpliceCue::new(id, kind, ms(0), None));
        assert!(t
            .on_segment(0, ms(0), 0, &[c(1, CueKind::In)])
            .ended
            .is_none());
        t.on_segment(1, ms(2000), 0, &[c(1, CueKind::Out)]);
        let a = t.on_segment(2, ms(4000), 0, &[c(2, CueKind::Out), c(1, CueKind::In)]);
        assert_eq!(a.ended.as_ref().map(|b| b.id), Some(1));
        assert_eq!(a.started.as_ref().map(|b| b.id), Some(2));
        // An Out inside a break is ignored.
        let a = t.on_segment(3, ms(6000), 0, &[c(3, CueKind::Out)]);
        assert!(a.started.is_none() && a.inside.is_some());
        t.on_segment(4, ms(8000), 0, &[c(2, CueKind::In)]);
        // keep = 1: only the newest ended break stays.
        assert_eq!(t.breaks().map(|b| b.id).collect::<Vec<_>>(), vec![2]);
    }
}
