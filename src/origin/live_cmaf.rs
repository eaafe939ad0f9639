//! The CMAF side of a [`super::LiveStream`]: every segment also written as one CMAF
//! fragment per track through a [`CmafPresentation`], with the fMP4 HLS playlists and a
//! dynamic DASH MPD that list them.
//!
//! Timing of the MPD (ISO/IEC 23009-1 §5.3.9.5.3 segment availability; DASH-IF IOP
//! v4.3 §4.3 live services):
//!
//! * `@availabilityStartTime` (AST) is the wall-clock time of media time 0 and never
//!   changes while the stream lives: the arrival time of the first fragment minus its
//!   media start.
//! * A fragment becomes available at AST + its end. The origin lists a fragment in the
//!   MPD only once it is stored *and* that time has passed, so a player that trusts the
//!   MPD and the clock of `UTCTiming` never asks for a fragment too early. A publisher
//!   whose media runs ahead of the wall clock has its newest fragments held back until
//!   their time (the stream calls [`LiveCmaf::catch_up`] on every push and tick).
//! * When a new publisher joins (or a publisher's clock restarts) after a pause, its
//!   media times are moved forward so that its first fragment starts where the wall
//!   clock says: the timeline stays contiguous (the [`CmafPresentation`] gives the gap
//!   to the first fragment after it, which players jump) and the live edge stays at
//!   the wall clock.
//! * `@publishTime` is the time of the last change, `@minimumUpdatePeriod` the target
//!   duration, `@timeShiftBufferDepth` the listed window, `@suggestedPresentationDelay`
//!   three target durations.
//! * Once the stream ends (DASH-IF IOP v4.3 §4.4.3.1 "MPD update after the end"), the
//!   MPD loses `@minimumUpdatePeriod` and gains `@mediaPresentationDuration` (the end of
//!   the last fragment), and the fMP4 HLS playlists get `EXT-X-ENDLIST`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::container::fmp4::FragmentInfo;
use crate::error::Result;
use crate::package::cmaf::{CmafOptions, CmafPresentation};
use crate::package::dash::{Mpd, MpdType, SegmentTimeline};
use crate::package::hls::PlaylistType;
use crate::package::Segment;
use crate::time::{Rounding, Timescale, Timestamp};

/// `UTCTiming` URL written in the MPD: the origin's `/time` route.
pub const TIME_PATH: &str = "/time";

/// One CMAF fragment of a [`super::LiveSegment`], ready for a
/// [`super::SegmentStore`] ([`super::SegmentStore::put_cmaf`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveFragment {
    /// The rendition (`v1`, `a2`): the folder of its files.
    pub rendition: String,
    /// The fragment number (`{number}.m4s`, DASH `$Number$`).
    pub number: u64,
    /// The media segment (`styp` + `moof` + `mdat`).
    pub data: Bytes,
    /// The rendition's init segment, when it is new (first fragment of the rendition,
    /// or a new track configuration): store it as `init.mp4` before the fragment.
    pub init: Option<Bytes>,
    /// Its place on the rendition's timeline (the track's timescale), as the
    /// playlists and the MPD list it.
    pub start: Timestamp,
    /// Its listed duration, in the same timescale.
    pub duration: Timestamp,
    /// It follows a discontinuity (`EXT-X-DISCONTINUITY` before it).
    pub discontinuity: bool,
}

/// Ceiling of `ticks` of `scale` in milliseconds.
fn ceil_ms(ticks: u64, scale: Timescale) -> i64 {
    let t = Timestamp::new(ticks.min(i64::MAX as u64) as i64, scale);
    t.rescale(Timescale::MILLIS, Rounding::Up).ticks()
}

/// Floor of `ticks` of `scale` in milliseconds.
fn floor_ms(ticks: u64, scale: Timescale) -> i64 {
    let t = Timestamp::new(ticks.min(i64::MAX as u64) as i64, scale);
    t.rescale(Timescale::MILLIS, Rounding::Down).ticks()
}

/// A rendition's newest sample tables, by fragment number, oldest first.
type Tables = VecDeque<(u64, Arc<FragmentInfo>)>;

/// The CMAF packaging of one live stream and its cached manifests.
#[derive(Debug)]
pub(super) struct LiveCmaf {
    pres: CmafPresentation,
    /// The segmenter's target duration: `@minimumUpdatePeriod`.
    target: Timestamp,
    /// `@availabilityStartTime`, Unix ms; set by the first fragment.
    ast: Option<i64>,
    /// Added to every frame time (90 kHz) to keep media time on the wall clock after
    /// a pause of the publisher; only grows.
    extra_90k: i64,
    /// Renditions whose init segment was handed out.
    inits: Vec<String>,
    /// Per track: the last decode time written (90 kHz, after `extra_90k`).
    last_dts: Vec<(u32, i64)>,
    ended: bool,
    multivariant: Option<Bytes>,
    media: Vec<(String, Bytes)>,
    mpd: Option<Bytes>,
    /// The model `mpd` was written from (per-request variants start from it).
    mpd_model: Option<Mpd>,
    /// When (Unix ms) a written fragment that the MPD does not list yet becomes
    /// available: the MPD is rebuilt then.
    mpd_due: Option<i64>,
    /// Per rendition: the sample tables of its newest fragments (at most `keep`),
    /// which per-request encryption works from.
    tables: Vec<(String, Tables)>,
    /// How many sample tables a rendition keeps: the window and a few more, as the
    /// store keeps a few segments more than the playlist lists.
    keep: usize,
}

impl LiveCmaf {
    /// A presentation numbering fragments from `first_number`, listing `window`
    /// fragments per rendition.
    pub(super) fn new(
        window: usize,
        first_number: u64,
        target: Timestamp,
        ad_markers: crate::package::hls::HlsAdMarkers,
        dash_ad_markers: crate::package::ads::DashAdMarkers,
    ) -> Self {
        let target_ms = target.as_millis().max(1);
        let pres = CmafPresentation::new(CmafOptions {
            window: Some(window.max(1)),
            first_number,
            playlist_type: PlaylistType::Live,
            target_duration: Some(((target_ms + 999) / 1000) as u64),
            ad_markers,
            dash_ad_markers,
        });
        LiveCmaf {
            pres,
            target,
            ast: None,
            extra_90k: 0,
            inits: Vec::new(),
            last_dts: Vec::new(),
            ended: false,
            multivariant: None,
            media: Vec::new(),
            mpd: None,
            mpd_model: None,
            mpd_due: None,
            tables: Vec::new(),
            keep: window.max(1) + 3,
        }
    }

    /// The sample table of fragment `number` of `rendition`, while it is among the
    /// newest ones kept.
    pub(super) fn table(&self, rendition: &str, number: u64) -> Option<Arc<FragmentInfo>> {
        let (_, t) = self.tables.iter().find(|(r, _)| r == rendition)?;
        t.iter()
            .rev()
            .find(|(n, _)| *n == number)
            .map(|(_, i)| i.clone())
    }

    fn keep_table(&mut self, rendition: &str, number: u64, info: FragmentInfo) {
        let at = match self.tables.iter().position(|(r, _)| r == rendition) {
            Some(i) => i,
            None => {
                self.tables.push((rendition.to_string(), VecDeque::new()));
                self.tables.len() - 1
            }
        };
        let t = &mut self.tables[at].1;
        while t.len() >= self.keep {
            t.pop_front();
        }
        t.push_back((number, Arc::new(info)));
    }

    /// The number the next fragment of any rendition gets at least: above every
    /// number used so far.
    pub(super) fn next_number(&self) -> u64 {
        self.pres
            .renditions()
            .iter()
            .map(|r| r.next_number())
            .max()
            .unwrap_or(self.pres.options().first_number)
    }

    /// `@availabilityStartTime` (Unix ms), once the first fragment is written.
    pub(super) fn availability_start_time(&self) -> Option<i64> {
        self.ast
    }

    /// The presentation (renditions, playlists, timelines).
    pub(super) fn presentation(&self) -> &CmafPresentation {
        &self.pres
    }

    /// Writes `seg`, whose first frame arrived at `pdt` (Unix ms), at wall clock `now`.
    pub(super) fn write(&mut self, seg: &Segment, pdt: i64, now: i64) -> Result<Vec<LiveFragment>> {
        let mut moved;
        let mut seg = seg;
        if let Some(ast) = self.ast {
            if seg.discontinuity {
                // Put the joining publisher's first fragment on the wall clock.
                let start = seg
                    .start
                    .ticks_in(Timescale::MPEG)
                    .saturating_add(self.extra_90k)
                    .saturating_add(self.pres.time_shift_90k());
                let wall = pdt.saturating_sub(ast).saturating_mul(90);
                if wall > start {
                    self.extra_90k = self.extra_90k.saturating_add(wall - start);
                }
            }
        }
        // A publisher's decode times that go back without a discontinuity (MPEG-TS
        // carries them; a CMAF fragment cannot, ISO/IEC 14496-12 §8.6.1.2): such frames
        // are left out of the fragments.
        let extra = self.extra_90k;
        let last = &mut self.last_dts;
        let mut keep = Vec::with_capacity(seg.frames.len());
        for f in &seg.frames {
            let dts = f.dts.ticks_in(Timescale::MPEG).saturating_add(extra);
            let ok = match last.iter_mut().find(|(t, _)| *t == f.track) {
                Some((_, l)) if dts < *l => false,
                Some((_, l)) => {
                    *l = dts;
                    true
                }
                None => {
                    if last.len() < crate::package::cmaf::MAX_RENDITIONS {
                        last.push((f.track, dts));
                    }
                    true
                }
            };
            keep.push(ok);
        }
        // A track with a single frame of unknown duration in this segment: the frame
        // lasts until the segment's end, or 1 ms when it starts there (the fMP4 writer
        // needs a last duration).
        let end = seg.start.add(seg.duration);
        let mut single: Vec<(u32, usize, usize)> = Vec::new(); // (track, frames, index)
        for (i, f) in seg.frames.iter().enumerate().filter(|(i, _)| keep[*i]) {
            match single.iter_mut().find(|(t, _, _)| *t == f.track) {
                Some(s) => s.1 += 1,
                None => single.push((f.track, 1, i)),
            }
        }
        single.retain(|&(_, n, i)| n == 1 && seg.frames[i].duration.is_none());
        if extra != 0 || keep.contains(&false) || !single.is_empty() {
            let dropped = keep.iter().filter(|k| !**k).count();
            if dropped > 0 {
                tracing::debug!(
                    "live CMAF: {dropped} frames with decreasing decode times left out"
                );
            }
            moved = seg.clone();
            for &(_, _, i) in &single {
                let f = &mut moved.frames[i];
                let scale = f.dts.scale();
                let until_end = end.ticks_in(scale).saturating_sub(f.dts.ticks());
                let one_ms = Timestamp::from_millis(1)
                    .rescale(scale, Rounding::Up)
                    .ticks();
                f.duration = Some(Timestamp::new(until_end.max(one_ms).max(1), scale));
            }
            let mut k = keep.iter();
            moved.frames.retain(|_| k.next().copied().unwrap_or(true));
            let by = Timestamp::new(extra, Timescale::MPEG);
            if extra != 0 {
                for f in &mut moved.frames {
                    f.dts = f.dts.add(by);
                    f.pts = f.pts.add(by);
                }
                moved.start = moved.start.add(by);
            }
            seg = &moved;
        }
        let written = self.pres.write_segment(seg, Some(pdt))?;
        if self.ast.is_none() {
            let start = self
                .pres
                .renditions()
                .iter()
                .filter_map(|r| Some(floor_ms(r.time_range()?.0, r.track().timescale)))
                .min()
                .unwrap_or(0);
            self.ast = Some(pdt.saturating_sub(start).max(0));
        }
        let mut out = Vec::with_capacity(written.len());
        for f in written {
            let known = self.inits.contains(&f.rendition);
            if !known {
                self.inits.push(f.rendition.clone());
            }
            let fresh = if known && !f.new_init {
                None
            } else {
                self.pres.rendition(&f.rendition).map(|r| r.init_segment())
            };
            let scale = self
                .pres
                .rendition(&f.rendition)
                .map_or(Timescale::MPEG, |r| r.track().timescale);
            let ticks = |t: u64| Timestamp::new(t.min(i64::MAX as u64) as i64, scale);
            let (start, duration) = (ticks(f.timeline_start), ticks(f.timeline_duration));
            self.keep_table(&f.rendition, f.number, f.info);
            out.push(LiveFragment {
                rendition: f.rendition,
                number: f.number,
                data: f.data,
                init: fresh,
                start,
                duration,
                discontinuity: f.discontinuity,
            });
        }
        self.refresh(now)?;
        Ok(out)
    }

    /// No more fragments: `EXT-X-ENDLIST`, and an MPD that says the stream is over.
    pub(super) fn set_ended(&mut self, now: i64) -> Result<()> {
        self.ended = true;
        self.pres.set_ended();
        self.refresh(now)
    }

    /// Rebuilds the MPD when a held-back fragment became available by `now`.
    pub(super) fn catch_up(&mut self, now: i64) -> Result<()> {
        match self.mpd_due {
            Some(due) if now >= due => self.refresh_mpd(now),
            _ => Ok(()),
        }
    }

    /// Rebuilds every manifest; on error none is served.
    fn refresh(&mut self, now: i64) -> Result<()> {
        let r = self.refresh_hls().and_then(|()| self.refresh_mpd(now));
        if r.is_err() {
            self.multivariant = None;
            self.media.clear();
            self.mpd = None;
            self.mpd_model = None;
            self.mpd_due = None;
        }
        r
    }

    fn refresh_hls(&mut self) -> Result<()> {
        let mv = self.pres.multivariant_playlist()?.write()?;
        let mut media = Vec::with_capacity(self.pres.renditions().len());
        for r in self.pres.renditions() {
            media.push((
                r.name().to_string(),
                Bytes::from(r.media_playlist().write()?),
            ));
        }
        self.multivariant = Some(Bytes::from(mv));
        self.media = media;
        Ok(())
    }

    /// Rebuilds the MPD at `now`.
    fn refresh_mpd(&mut self, now: i64) -> Result<()> {
        let (model, due) = self.build_mpd(now)?;
        self.mpd = match &model {
            Some(m) => Some(Bytes::from(m.write()?)),
            None => None,
        };
        self.mpd_model = model;
        self.mpd_due = due;
        Ok(())
    }

    /// The MPD at `now`, listing only fragments available by then (AST + end <= now),
    /// and when the next fragment not listed becomes available. `None` before every
    /// rendition has an available fragment.
    fn build_mpd(&self, now: i64) -> Result<(Option<Mpd>, Option<i64>)> {
        let Some(ast) = self.ast else {
            return Ok((None, None));
        };
        let mut mpd: Mpd = self.pres.mpd(MpdType::Static {
            media_presentation_duration: Timestamp::from_millis(0),
        })?;
        let mut due: Option<i64> = None;
        let (mut window_ms, mut end_ms) = (0i64, 0i64);
        let mut empty = false;
        for rep in mpd
            .periods
            .iter_mut()
            .flat_map(|p| p.adaptation_sets.iter_mut())
            .flat_map(|a| a.representations.iter_mut())
        {
            let t = &mut rep.segment_template;
            let scale = t.timescale;
            let mut kept = Vec::new();
            'runs: for e in t.timeline.entries() {
                for i in 0..e.count() {
                    let start = e.t.saturating_add(e.d.saturating_mul(i));
                    let end = start.saturating_add(e.d);
                    let available = ast.saturating_add(ceil_ms(end, scale));
                    if available > now && !self.ended {
                        due = Some(due.map_or(available, |d| d.min(available)));
                        break 'runs;
                    }
                    kept.push((start, e.d));
                }
            }
            let (Some(&(first, _)), Some(&(last, d))) = (kept.first(), kept.last()) else {
                empty = true;
                continue;
            };
            window_ms = window_ms.max(ceil_ms(last + d - first, scale));
            end_ms = end_ms.max(ceil_ms(last + d, scale));
            t.timeline = SegmentTimeline::from_segments(kept)?;
        }
        if empty {
            // A rendition has nothing available yet: no MPD until it has.
            return Ok((None, due));
        }
        mpd.mpd_type = MpdType::Dynamic {
            availability_start_time: ast,
            publish_time: now,
            // After the end: no more updates, and the duration up to the last fragment.
            minimum_update_period: (!self.ended).then_some(self.target),
            media_presentation_duration: self.ended.then(|| Timestamp::from_millis(end_ms)),
            time_shift_buffer_depth: Some(Timestamp::from_millis(window_ms)),
            suggested_presentation_delay: Some(Timestamp::from_millis(
                self.target.as_millis().saturating_mul(3),
            )),
        };
        mpd.utc_timing = Some(TIME_PATH.to_string());
        Ok((Some(mpd), due))
    }

    /// The fMP4 multivariant playlist (`cmaf.m3u8`), shared.
    pub(super) fn multivariant_bytes(&self) -> Option<Bytes> {
        self.multivariant.clone()
    }

    /// The fMP4 media playlist of `rendition`, shared.
    pub(super) fn media_bytes(&self, rendition: &str) -> Option<Bytes> {
        self.media
            .iter()
            .find(|(n, _)| n == rendition)
            .map(|(_, b)| b.clone())
    }

    /// The MPD at `now`: the cached text, unless a held-back fragment became
    /// available since it was built (no push or tick came in between): then one built
    /// for this request.
    pub(super) fn mpd_bytes(&self, now: i64) -> Option<Bytes> {
        match self.mpd_due {
            Some(due) if now >= due => self
                .build_mpd(now)
                .ok()
                .and_then(|(m, _)| m?.write().ok())
                .map(Bytes::from),
            _ => self.mpd.clone(),
        }
    }

    /// The model of [`mpd_bytes`](Self::mpd_bytes) at `now`, for a variant written per
    /// request (a protected MPD).
    pub(super) fn mpd_model(&self, now: i64) -> Option<Mpd> {
        match self.mpd_due {
            Some(due) if now >= due => self.build_mpd(now).ok().and_then(|(m, _)| m),
            _ => self.mpd_model.clone(),
        }
    }
}
