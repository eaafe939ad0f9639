//! Server-side ad insertion for live DASH: the ads of a break as extra Periods (DASH-IF
//! IOP §5.3, "server-based architecture": the content Period is split at the break and
//! each creative is a Period of its own).
//!
//! * [`CreativeCmaf`]: a creative as CMAF renditions (init segment and fragments per
//!   track), made by [`Creative::from_mp4`] next to its MPEG-TS segments, and the
//!   AdaptationSets of its Period.
//! * [`DashSessions`]: viewer sessions and their fixed decisions, and
//!   [`DashSessions::session_mpd`], the session's MPD made from the content's.
//!
//! # How a session MPD is made
//!
//! From the content's live MPD (one Period from 0, as the origin serves it, listing only
//! the fragments already available) and the stream's breaks on the same timeline:
//!
//! * **Decision.** The first time a session meets a break, the [`AdDecider`] is asked;
//!   the answer is kept for that session. Creatives without a CMAF form are skipped; the
//!   others are taken in order while their running total fits the break's planned
//!   duration (or its actual one once it ended). Breaks that ended before the session's
//!   first request, and breaks for which nothing fits, are not substituted. The rest of
//!   the break is the content's own, or, when the host set a slate (with a CMAF form),
//!   the slate's, repeated as Periods while whole fragments of it fit.
//! * **Periods.** The content Period ends at the break's cut; one Period per creative
//!   follows (`Period@duration` = the creative's), then the content again from the first
//!   content segment at or after the ads' end (the rest of the break is the content's
//!   own, as in HLS). Timelines list decode times, so Period starts and the content's
//!   `presentationTimeOffset`s are presentation times (decode time + the content video's
//!   B-frame delay): the cut keyframe, the ads' first frames and the content after them
//!   meet frame-exactly. A content fragment belongs to the Period its presentation ends
//!   in: an audio fragment straddling a cut stays out of the Period before an ad (dash.js
//!   starts the next Period where the last fragment ends), which leaves a gap shorter
//!   than an audio frame plus that delay, which players jump. Period ids are stable
//!   across updates: `c{t}` for content from 90 kHz time `t`, `ad{t}-{n}` for the `n`th
//!   creative of the break cut at `t`.
//! * **Pacing.** An ad fragment is listed only once it is available as a content
//!   fragment at the same time would be (availabilityStartTime + its end <= now), so the
//!   session's live edge moves with the content's.
//! * **Window.** Content Periods left without a fragment by the sliding window, and ad
//!   Periods that ended before the window's first fragment, are dropped.
//! * **Events.** The `EventStream` events of a substituted break are dropped (the ads
//!   are in the programme already); the others go to the content Period they fall in.
//!
//! Ad Periods address `{ad_prefix}{creative}/{rendition}/init.mp4` and
//! `{ad_prefix}{creative}/{rendition}/{n}.m4s` (`/ads/...` by default).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{AdDecider, Creative, SsaiOptions};
use crate::error::{Error, Result};
use crate::media::MediaKind;
use crate::package::ads::AdBreak;
use crate::package::cmaf::{CmafFragment, CmafOptions, CmafPresentation};
use crate::package::dash::{AdaptationSet, ContentType, Mpd, MpdType, Period, SegmentTimeline};
use crate::package::Segment;
use crate::time::{Rounding, Timescale, Timestamp};

/// 90 kHz: break times and Period times are counted on it.
const CLOCK: Timescale = Timescale::MPEG;
/// A fragment whose start is within this of a cut belongs to the side of the cut (audio
/// fragments start up to a frame away from the video's), 90 kHz (100 ms).
const SLACK_90K: i64 = 9_000;
/// Overlaps shorter than this (rounding) do not count, 90 kHz (1 ms).
const TOLERANCE_90K: i64 = 90;

/// One track of a [`CreativeCmaf`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CreativeRendition {
    /// Its name in URLs and the Representation id (`v1`, `a2`).
    pub name: String,
    /// The init segment (`ftyp` + `moov`).
    pub init: Bytes,
    /// The fragments, in order (`{n}.m4s` is `fragments[n]`).
    pub fragments: Vec<Bytes>,
}

/// A creative as CMAF: its renditions and the AdaptationSets of its Period.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CreativeCmaf {
    /// The renditions, video first.
    pub renditions: Vec<CreativeRendition>,
    /// The AdaptationSets of an ad Period, with templates relative to the creative
    /// (`$RepresentationID$/init.mp4`, `$RepresentationID$/$Number$.m4s`, numbers from
    /// 0) and each Representation's `presentationTimeOffset` at its first fragment.
    pub adaptation_sets: Vec<AdaptationSet>,
}

impl CreativeRendition {
    /// A rendition `name` (its Representation id) with its init segment and fragments.
    pub fn new(name: impl Into<String>, init: Bytes, fragments: Vec<Bytes>) -> Self {
        CreativeRendition {
            name: name.into(),
            init,
            fragments,
        }
    }
}

impl CreativeCmaf {
    /// A CMAF form packaged elsewhere: `renditions` and the `adaptation_sets` of its
    /// Period (templates relative to the creative, `$RepresentationID$/init.mp4` and
    /// `$RepresentationID$/$Number$.m4s` from 0, `presentationTimeOffset` at its first
    /// frame). Attach it with [`Creative::with_cmaf`].
    pub fn new(renditions: Vec<CreativeRendition>, adaptation_sets: Vec<AdaptationSet>) -> Self {
        CreativeCmaf {
            renditions,
            adaptation_sets,
        }
    }

    /// The init segment of `rendition`.
    pub fn init(&self, rendition: &str) -> Option<&Bytes> {
        self.renditions
            .iter()
            .find(|r| r.name == rendition)
            .map(|r| &r.init)
    }

    /// Fragment `n` of `rendition`.
    pub fn fragment(&self, rendition: &str, n: u64) -> Option<&Bytes> {
        let r = self.renditions.iter().find(|r| r.name == rendition)?;
        r.fragments.get(usize::try_from(n).ok()?)
    }
}

/// Writes a creative's segments as CMAF, for [`Creative::from_mp4`].
#[derive(Debug)]
pub(super) struct CmafPackager {
    pres: CmafPresentation,
    fragments: Vec<(String, Bytes)>,
}

impl Default for CmafPackager {
    fn default() -> Self {
        let opts = CmafOptions {
            first_number: 0,
            ..CmafOptions::default()
        };
        CmafPackager {
            pres: CmafPresentation::new(opts),
            fragments: Vec::new(),
        }
    }
}

impl CmafPackager {
    pub(super) fn write(&mut self, seg: &Segment) -> Result<()> {
        let out: Vec<CmafFragment> = self.pres.write_segment(seg, None)?;
        for f in out {
            if f.new_init && f.number != 0 {
                return Err(Error::unsupported(
                    "ad creative MP4: its tracks change within the file",
                ));
            }
            self.fragments.push((f.rendition, f.data));
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<CreativeCmaf> {
        self.pres.set_ended();
        let mpd = self.pres.static_mpd()?;
        let mut sets: Vec<AdaptationSet> = mpd
            .periods
            .into_iter()
            .flat_map(|p| p.adaptation_sets)
            .collect();
        // The Period starts at the creative's first video frame (its earliest
        // presentation time), the same instant for every Representation.
        let ept_90k = self
            .pres
            .renditions()
            .iter()
            .find(|r| r.track().kind == MediaKind::Video)
            .or(self.pres.renditions().first())
            .and_then(|r| {
                let first = r.time_range()?.0;
                Some(to_90k(
                    first.saturating_add(r.presentation_delay()),
                    r.track().timescale,
                ))
            })
            .unwrap_or(0);
        for rep in sets.iter_mut().flat_map(|s| &mut s.representations) {
            let t = &mut rep.segment_template;
            t.presentation_time_offset = from_90k(ept_90k, t.timescale);
        }
        let mut renditions = Vec::new();
        for r in self.pres.renditions() {
            let fragments = self
                .fragments
                .iter()
                .filter(|(n, _)| n == r.name())
                .map(|(_, b)| b.clone())
                .collect();
            renditions.push(CreativeRendition {
                name: r.name().to_string(),
                init: r.init_segment(),
                fragments,
            });
        }
        Ok(CreativeCmaf {
            renditions,
            adaptation_sets: sets,
        })
    }
}

/// A session's fixed decision for one break: the decider's creatives, and the slate
/// that fills what they leave (the one set when the decision was made).
#[derive(Debug, Clone, Default)]
struct Decision {
    ads: Vec<Arc<Creative>>,
    slate: Option<Arc<Creative>>,
}

/// One session's fixed decisions, by break (event id, cut time).
#[derive(Debug, Default)]
struct Session {
    last_used: u64,
    decisions: HashMap<(u32, i64), Decision>,
}

/// Viewer sessions of one live DASH stream with server-side ad insertion, and their
/// MPDs (see the [module docs](self)). Bounded by [`SsaiOptions::max_sessions`] and
/// [`SsaiOptions::max_plans_per_session`].
#[derive(Debug, Default)]
pub struct DashSessions {
    opts: SsaiOptions,
    sessions: HashMap<String, Session>,
    clock: u64,
}

/// What a live DASH stream shows at one request, for [`DashSessions::session_mpd`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DashView<'a> {
    /// The stream's live MPD (one Period from 0, as the origin serves it).
    pub content: &'a Mpd,
    /// Its breaks, on the same timeline (90 kHz).
    pub breaks: &'a [AdBreak],
    /// The host's slate, if any (with a CMAF form): it fills what the ads leave of
    /// breaks whose length is known (a decision keeps the slate it was made with).
    pub slate: Option<&'a Arc<Creative>>,
    /// The wall clock (Unix ms), checked against a dynamic MPD's
    /// `availabilityStartTime`; a static MPD lists everything.
    pub now_ms: i64,
    /// The content video's
    /// [`presentation_delay`](crate::package::cmaf::CmafRendition::presentation_delay)
    /// (timelines list decode times): Periods start at presentation times, so that
    /// the cut keyframe, the ads and the content after them meet frame-exactly.
    pub delay: Timestamp,
}

impl<'a> DashView<'a> {
    /// A view of `content` with `breaks` at `now_ms`; no slate, no delay.
    pub fn new(content: &'a Mpd, breaks: &'a [AdBreak], now_ms: i64) -> Self {
        DashView {
            content,
            breaks,
            slate: None,
            now_ms,
            delay: Timestamp::from_millis(0),
        }
    }

    /// Sets the slate.
    pub fn with_slate(mut self, slate: Option<&'a Arc<Creative>>) -> Self {
        self.slate = slate;
        self
    }

    /// Sets the content video's presentation delay.
    pub fn with_delay(mut self, delay: Timestamp) -> Self {
        self.delay = delay;
        self
    }
}

/// A break substituted for a session: where it is cut, its creatives and offsets.
struct Substitution<'a> {
    start_90k: i64,
    ads: Vec<Placed<'a>>,
    end_90k: i64,
}

/// A creative placed in a break: where (90 kHz from the cut), how long, and how many of
/// its fragments (`None`: all; a slate may be cut short, whole fragments only).
struct Placed<'a> {
    creative: &'a Arc<Creative>,
    cmaf: &'a CreativeCmaf,
    offset: i64,
    duration: i64,
    fragments: Option<usize>,
}

fn ticks(t: Timestamp) -> i64 {
    t.rescale(CLOCK, Rounding::Nearest).ticks()
}

fn to_90k(t: u64, scale: Timescale) -> i64 {
    ticks(Timestamp::new(t.min(i64::MAX as u64) as i64, scale))
}

fn from_90k(t: i64, scale: Timescale) -> u64 {
    Timestamp::new(t, CLOCK)
        .rescale(scale, Rounding::Nearest)
        .ticks()
        .max(0) as u64
}

/// `t` (90 kHz) moved to the start of the reference timeline's segment within
/// [`SLACK_90K`] of it, if there is one.
fn snap(reference: Option<&(Timescale, Vec<(u64, u64)>)>, t: i64) -> i64 {
    reference
        .and_then(|(scale, segs)| {
            segs.iter()
                .map(|s| to_90k(s.0, *scale))
                .find(|&at| (at - t).abs() <= SLACK_90K)
        })
        .unwrap_or(t)
}

/// `(start, duration)` of every segment of `timeline`.
fn expand(timeline: &SegmentTimeline) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for e in timeline.entries() {
        for i in 0..e.count() {
            out.push((e.t.saturating_add(e.d.saturating_mul(i)), e.d));
        }
    }
    out
}

impl DashSessions {
    /// No session yet.
    pub fn new(opts: SsaiOptions) -> Self {
        DashSessions {
            opts,
            sessions: HashMap::new(),
            clock: 0,
        }
    }

    /// Sessions remembered.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The MPD of `session`: the [`DashView`]'s content MPD with its breaks substituted
    /// as the [module docs](self) say.
    ///
    /// Errors: [`Error::usage`] for a content MPD without exactly one Period; the
    /// errors of the timelines (a content timeline with gaps).
    pub fn session_mpd(
        &mut self,
        session: &str,
        view: &DashView<'_>,
        decider: &mut dyn AdDecider,
    ) -> Result<Mpd> {
        let DashView {
            content,
            breaks,
            slate,
            now_ms,
            delay,
        } = *view;
        let delay_90k = ticks(delay).max(0);
        let [base] = content.periods.as_slice() else {
            return Err(Error::usage("SSAI: the content MPD must have one Period"));
        };
        let available_90k = match content.mpd_type {
            MpdType::Dynamic {
                availability_start_time,
                ..
            } => Some(
                now_ms
                    .saturating_sub(availability_start_time)
                    .saturating_mul(90),
            ),
            _ => None,
        };
        let decisions = self.decide(session, breaks, decider, slate);
        let reps: Vec<(Timescale, Vec<(u64, u64)>)> = base
            .adaptation_sets
            .iter()
            .flat_map(|s| &s.representations)
            .map(|r| {
                (
                    r.segment_template.timescale,
                    expand(&r.segment_template.timeline),
                )
            })
            .collect();
        let reference = reps.first();
        // The substitutions, in time order.
        let mut subs: Vec<Substitution<'_>> = Vec::new();
        for (b, decision) in breaks.iter().zip(&decisions) {
            let budget = b.duration().or(b.planned_duration).map_or(i64::MAX, ticks);
            let mut offset = 0i64;
            let mut list = Vec::new();
            for c in &decision.ads {
                let (Some(cmaf), d) = (c.cmaf.as_deref(), ticks(c.duration())) else {
                    continue;
                };
                if d <= 0 || offset.saturating_add(d) > budget {
                    continue;
                }
                list.push(Placed {
                    creative: c,
                    cmaf,
                    offset,
                    duration: d,
                    fragments: None,
                });
                offset += d;
            }
            if list.is_empty() {
                continue;
            }
            // The slate fills what the ads leave of a break of known length: repeated,
            // whole fragments only.
            if let Some((slate, cmaf)) = decision
                .slate
                .as_ref()
                .and_then(|c| Some((c, c.cmaf.as_deref()?)))
                .filter(|_| budget != i64::MAX)
            {
                while list.len() < self.opts.max_items_per_break.max(1) {
                    let (mut k, mut d) = (0usize, 0i64);
                    for seg in &slate.segments {
                        let next = d + ticks(seg.duration);
                        if offset + next > budget {
                            break;
                        }
                        (k, d) = (k + 1, next);
                    }
                    if k == 0 || d <= 0 {
                        break;
                    }
                    let fragments = (k < slate.segments.len()).then_some(k);
                    list.push(Placed {
                        creative: slate,
                        cmaf,
                        offset,
                        duration: d,
                        fragments,
                    });
                    offset += d;
                }
            }
            // The cut as the content's timeline lists it: the reference Representation's
            // segment starting there (fragment decode times may precede the break's
            // presentation time by the B-frame delay).
            let start_90k = snap(reference, ticks(b.start));
            if subs.last().is_some_and(|s| s.end_90k > start_90k) {
                continue; // overlaps the previous substitution
            }
            subs.push(Substitution {
                start_90k,
                ads: list,
                end_90k: start_90k.saturating_add(offset),
            });
        }
        let mut mpd = content.clone();
        mpd.periods.clear();
        // Content Periods: [from, to) on the 90 kHz timeline.
        let mut from = 0i64;
        let window_start = reps
            .iter()
            .filter_map(|(scale, segs)| segs.first().map(|s| to_90k(s.0, *scale)))
            .min()
            .unwrap_or(0);
        let mut listing = true;
        for sub in &subs {
            if !listing {
                break;
            }
            if let Some(p) = content_period(base, from, Some(sub.start_90k), delay_90k, &subs)? {
                mpd.periods.push(p);
            }
            for (n, placed) in sub.ads.iter().enumerate() {
                let (c, duration) = (placed.creative, placed.duration);
                let start = sub.start_90k + delay_90k + placed.offset;
                if start + duration <= window_start {
                    continue;
                }
                let mut period = Period::new(
                    format!("ad{}-{n}", sub.start_90k),
                    Timestamp::new(start, CLOCK),
                )
                .with_duration(Timestamp::new(duration, CLOCK));
                let mut complete = true;
                for set in &placed.cmaf.adaptation_sets {
                    let mut set = set.clone();
                    set.inband_event_streams.clear();
                    for rep in &mut set.representations {
                        let t = &mut rep.segment_template;
                        let pto = t.presentation_time_offset;
                        let scale = t.timescale;
                        let mut kept = Vec::new();
                        let all = expand(&t.timeline);
                        let take = placed.fragments.unwrap_or(all.len());
                        for (s, d) in all.into_iter().take(take) {
                            let end =
                                start + to_90k(s.saturating_add(d).saturating_sub(pto), scale);
                            if available_90k.is_some_and(|a| end > a) {
                                complete = false;
                                break;
                            }
                            kept.push((s, d));
                        }
                        if kept.is_empty() {
                            complete = false;
                        }
                        t.timeline = SegmentTimeline::from_segments(kept)?;
                        t.initialization =
                            format!("{}{}/{}", self.opts.ad_prefix, c.id, t.initialization);
                        t.media = format!("{}{}/{}", self.opts.ad_prefix, c.id, t.media);
                    }
                    period.adaptation_sets.push(set);
                }
                let empty = period
                    .adaptation_sets
                    .iter()
                    .flat_map(|s| &s.representations)
                    .any(|r| r.segment_template.timeline.entries().is_empty());
                if empty {
                    listing = false;
                    break;
                }
                mpd.periods.push(period);
                if !complete {
                    listing = false;
                    break;
                }
            }
            // The content resumes at its first segment at or after the ads' end.
            from = match reference {
                Some((scale, segs)) => segs
                    .iter()
                    .map(|s| to_90k(s.0, *scale))
                    .find(|&t| t + SLACK_90K >= sub.end_90k)
                    .unwrap_or(i64::MAX),
                None => i64::MAX,
            };
            if from == i64::MAX {
                listing = false;
            }
        }
        if listing {
            if let Some(p) = content_period(base, from, None, delay_90k, &subs)? {
                mpd.periods.push(p);
            }
        }
        if mpd.periods.is_empty() {
            return Err(Error::usage("SSAI: nothing to list yet"));
        }
        for p in mpd.periods.iter_mut().filter(|p| !p.id.starts_with("ad")) {
            relocate(p, &self.opts.content_prefix);
        }
        Ok(mpd)
    }

    /// `content` as a session sees it without ad insertion: the same Periods, relative
    /// segment URLs behind [`SsaiOptions::content_prefix`].
    pub fn passthrough(&self, content: &Mpd) -> Mpd {
        let mut mpd = content.clone();
        for p in &mut mpd.periods {
            relocate(p, &self.opts.content_prefix);
        }
        mpd
    }

    /// The session's decision for each break (empty: not substituted).
    fn decide(
        &mut self,
        session: &str,
        breaks: &[AdBreak],
        decider: &mut dyn AdDecider,
        slate: Option<&Arc<Creative>>,
    ) -> Vec<Decision> {
        self.clock += 1;
        let clock = self.clock;
        let known = self.sessions.contains_key(session);
        if !known && self.sessions.len() >= self.opts.max_sessions.max(1) {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            {
                self.sessions.remove(&oldest);
            }
        }
        let s = self.sessions.entry(session.to_string()).or_default();
        s.last_used = clock;
        // Plans of breaks no longer listed go.
        let live: Vec<(u32, i64)> = breaks.iter().map(|b| (b.id, ticks(b.start))).collect();
        s.decisions.retain(|k, _| live.contains(k));
        let mut out = Vec::with_capacity(breaks.len());
        for b in breaks {
            let key = (b.id, ticks(b.start));
            if let Some(d) = s.decisions.get(&key) {
                out.push(d.clone());
                continue;
            }
            let d = if (!known && b.end.is_some())
                || s.decisions.len() >= self.opts.max_plans_per_session
            {
                Decision::default() // ended before the session joined, or too many plans
            } else {
                Decision {
                    ads: decider.decide(b, session),
                    slate: slate.cloned(),
                }
            };
            s.decisions.insert(key, d.clone());
            out.push(d);
        }
        out
    }
}

/// Puts `prefix` before the relative template paths of `period`.
fn relocate(period: &mut Period, prefix: &str) {
    let relative = |p: &str| !p.starts_with('/') && !p.contains("://");
    for rep in period
        .adaptation_sets
        .iter_mut()
        .flat_map(|s| &mut s.representations)
    {
        let t = &mut rep.segment_template;
        if relative(&t.initialization) {
            t.initialization = format!("{prefix}{}", t.initialization);
        }
        if relative(&t.media) {
            t.media = format!("{prefix}{}", t.media);
        }
    }
}

/// The content Period covering `[from, to)` (90 kHz), `None` when no fragment of it is
/// listed.
fn content_period(
    base: &Period,
    from: i64,
    to: Option<i64>,
    delay_90k: i64,
    subs: &[Substitution<'_>],
) -> Result<Option<Period>> {
    // After a break, the Period starts at the presentation time of its first keyframe
    // (decode time + delay); the first Period keeps the content's own mapping.
    let at_90k = if from > 0 { from + delay_90k } else { 0 };
    let mut period = Period::new(format!("c{from}"), Timestamp::new(at_90k, CLOCK));
    let mut any = false;
    // The Period on the presentation timeline: a fragment belongs to it when its
    // presentation ends inside it (players trim what it shows before the start). A
    // fragment running past the end is left out: players (dash.js) start the next
    // Period where the previous one's last fragment ends. So an audio fragment that
    // straddles the cut leaves a gap of less than one audio frame plus the video's
    // B-frame delay before an ad, which players jump.
    let start_90k = (from > 0).then_some(at_90k);
    let end_90k = to.map(|t| t + delay_90k);
    for set in &base.adaptation_sets {
        let mut set = set.clone();
        let set_delay = if set.content_type == ContentType::Video {
            delay_90k
        } else {
            0
        };
        for rep in &mut set.representations {
            let t = &mut rep.segment_template;
            let scale = t.timescale;
            let mut first_number = None;
            let mut kept = Vec::new();
            for (i, (s, d)) in expand(&t.timeline).into_iter().enumerate() {
                let end = to_90k(s.saturating_add(d), scale) + set_delay;
                if start_90k.is_none_or(|p| end > p + TOLERANCE_90K)
                    && end_90k.is_none_or(|p| end <= p + TOLERANCE_90K)
                {
                    first_number.get_or_insert(t.start_number + i as u64);
                    kept.push((s, d));
                }
            }
            if kept.is_empty() {
                return Ok(None);
            }
            any = true;
            t.start_number = first_number.unwrap_or(t.start_number);
            if from > 0 {
                t.presentation_time_offset = from_90k(at_90k, scale);
            }
            t.timeline = SegmentTimeline::from_segments(kept)?;
        }
        period.adaptation_sets.push(set);
    }
    if !any {
        return Ok(None);
    }
    let end = to.unwrap_or(i64::MAX);
    for stream in &base.event_streams {
        let mut stream = stream.clone();
        let scale = Timescale::new(stream.timescale).unwrap_or(CLOCK);
        let pto = to_90k(stream.presentation_time_offset, scale);
        // Event times are relative to the Period start through the stream's offset.
        stream.presentation_time_offset = stream
            .presentation_time_offset
            .saturating_add(from_90k(at_90k, scale));
        stream.events.retain(|e| {
            let at = to_90k(e.presentation_time, scale) - pto;
            let substituted = subs.iter().any(|s| (at - s.start_90k).abs() <= SLACK_90K);
            !substituted && at >= from && at < end
        });
        if !stream.events.is_empty() {
            period.event_streams.push(stream);
        }
    }
    Ok(Some(period))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::dash::{ContentType, Representation, SegmentTemplate};
    use crate::package::ssai::CreativeSegment;

    const AST: i64 = 1_700_000_000_000;
    const V: Timescale = match Timescale::new(12_800) {
        Some(s) => s,
        None => unreachable!(),
    };
    const A: Timescale = match Timescale::new(48_000) {
        Some(s) => s,
        None => unreachable!(),
    };

    fn set(
        id: u32,
        kind: ContentType,
        scale: Timescale,
        segs: &[(u64, u64)],
        pto: u64,
    ) -> AdaptationSet {
        let mut t = SegmentTemplate::new(scale);
        t.timeline = SegmentTimeline::from_segments(segs.iter().copied()).unwrap();
        t.presentation_time_offset = pto;
        let name = if kind == ContentType::Video {
            "v1"
        } else {
            "a2"
        };
        let mut s = AdaptationSet::new(id, kind);
        s.representations
            .push(Representation::new(name, 100_000, "avc1.64001e", t));
        s
    }

    /// 20 s of content: video 2 s segments from 0, audio cut 1024 ticks (21 ms) earlier.
    fn content() -> Mpd {
        let mut mpd = Mpd::new(MpdType::Dynamic {
            availability_start_time: AST,
            publish_time: AST + 20_000,
            minimum_update_period: Some(Timestamp::from_secs(2)),
            media_presentation_duration: None,
            time_shift_buffer_depth: Some(Timestamp::from_secs(20)),
            suggested_presentation_delay: None,
        });
        let video: Vec<(u64, u64)> = (0..10).map(|k| (k * 25_600, 25_600)).collect();
        let mut audio: Vec<(u64, u64)> = vec![(0, 96_000 - 1024)];
        for k in 1..10u64 {
            audio.push((k * 96_000 - 1024, 96_000));
        }
        let p = mpd.period_mut();
        p.adaptation_sets
            .push(set(0, ContentType::Video, V, &video, 0));
        p.adaptation_sets
            .push(set(1, ContentType::Audio, A, &audio, 0));
        mpd
    }

    /// A 4 s creative (two 2 s fragments, video only) whose first frame is at 1024.
    fn creative() -> Arc<Creative> {
        let ts = Bytes::from(vec![0x47u8; 188]);
        let seg = CreativeSegment::new(Timestamp::from_secs(2), ts);
        let mut c = Creative::from_segments("spot", vec![seg.clone(), seg], vec![]).unwrap();
        let mut sets = vec![set(
            0,
            ContentType::Video,
            V,
            &[(0, 25_600), (25_600, 25_600)],
            1024,
        )];
        sets[0].representations[0].segment_template.start_number = 0;
        c.cmaf = Some(Arc::new(CreativeCmaf {
            renditions: Vec::new(),
            adaptation_sets: sets,
        }));
        Arc::new(c)
    }

    fn brk(end: Option<i64>) -> AdBreak {
        AdBreak {
            id: 7,
            start: Timestamp::from_millis(8_080), // the cut keyframe's presentation time
            requested: Timestamp::from_millis(8_000),
            start_date: AST + 8_080,
            first_sequence: 4,
            planned_duration: Some(Timestamp::from_secs(8)),
            end: end.map(Timestamp::from_millis),
            end_sequence: end.map(|_| 8),
            out_raw: Bytes::new(),
            in_raw: Bytes::new(),
            segmentation_type: None,
        }
    }

    struct Counting(u32, Arc<Creative>);
    impl AdDecider for Counting {
        fn decide(&mut self, _brk: &AdBreak, _session: &str) -> Vec<Arc<Creative>> {
            self.0 += 1;
            vec![self.1.clone()]
        }
    }

    /// (start number, segments, presentationTimeOffset) of a Representation.
    type RepSummary = (u64, u64, u64);

    fn summary(mpd: &Mpd) -> Vec<(String, i64, Vec<RepSummary>)> {
        mpd.periods
            .iter()
            .map(|p| {
                let reps = p
                    .adaptation_sets
                    .iter()
                    .flat_map(|s| &s.representations)
                    .map(|r| {
                        let t = &r.segment_template;
                        (
                            t.start_number,
                            t.timeline.segments(),
                            t.presentation_time_offset,
                        )
                    })
                    .collect();
                (p.id.clone(), p.start.as_millis(), reps)
            })
            .collect()
    }

    #[test]
    fn breaks_become_ad_periods_on_the_presentation_timeline() {
        let delay = Timestamp::new(1024, V); // 80 ms of B-frame delay
        let mut d = Counting(0, creative());
        let mut s = DashSessions::new(SsaiOptions::default());
        let content = content();
        // The session meets the break while it is on.
        let mpd = s
            .session_mpd(
                "v",
                &DashView::new(&content, &[brk(None)], AST + 20_000).with_delay(delay),
                &mut d,
            )
            .unwrap();
        assert_eq!(
            summary(&mpd),
            [
                // Content to the cut: video 0..4 (to 8 s + 80 ms), audio 0..4 (the
                // fragment straddling the cut is left out).
                ("c0".to_string(), 0, vec![(1, 4, 0), (1, 4, 0)]),
                // The ad from the cut keyframe's presentation time, 4 s.
                ("ad720000-0".to_string(), 8_080, vec![(0, 2, 1024)]),
                // The content again at 12 s + 80 ms: video from 12 s (number 7), audio
                // from the fragment covering 12.08 s; both offsets at 12.08 s.
                (
                    "c1080000".to_string(),
                    12_080,
                    vec![(7, 4, 154_624), (7, 4, 579_840)]
                ),
            ]
        );
        assert_eq!(mpd.periods[1].duration, Some(Timestamp::from_secs(4)));
        let media = |p: usize| {
            mpd.periods[p].adaptation_sets[0].representations[0]
                .segment_template
                .media
                .clone()
        };
        assert_eq!(media(0), "../../$RepresentationID$/$Number$.m4s");
        assert_eq!(media(1), "/ads/spot/$RepresentationID$/$Number$.m4s");
        mpd.write().unwrap();

        // The decision is kept once the break ended: asked once per session and break.
        let again = s
            .session_mpd(
                "v",
                &DashView::new(&content, &[brk(Some(16_080))], AST + 20_000).with_delay(delay),
                &mut d,
            )
            .unwrap();
        assert_eq!(summary(&again), summary(&mpd));
        assert_eq!(d.0, 1);

        // Pacing: at 10.1 s the ad's first fragment (to 10.08 s) is listed, not its
        // second, and nothing after it.
        let mut early = content.clone();
        for set in &mut early.periods[0].adaptation_sets {
            let t = &mut set.representations[0].segment_template;
            let keep: Vec<(u64, u64)> = expand(&t.timeline).into_iter().take(5).collect();
            t.timeline = SegmentTimeline::from_segments(keep).unwrap();
        }
        let mpd = s
            .session_mpd(
                "w",
                &DashView::new(&early, &[brk(None)], AST + 10_100).with_delay(delay),
                &mut d,
            )
            .unwrap();
        let sum = summary(&mpd);
        assert_eq!(sum.len(), 2, "{sum:?}");
        assert_eq!(
            sum[1],
            ("ad720000-0".to_string(), 8_080, vec![(0, 1, 1024)])
        );

        // A session that joins after the break ended sees the content, one Period.
        let mpd = s
            .session_mpd(
                "late",
                &DashView::new(&content, &[brk(Some(16_080))], AST + 20_000).with_delay(delay),
                &mut d,
            )
            .unwrap();
        assert_eq!(mpd.periods.len(), 1);
        assert_eq!(
            mpd.periods[0].adaptation_sets[0].representations[0]
                .segment_template
                .timeline
                .segments(),
            10
        );

        // A slate of three 1.5 s fragments fills what the 4 s ad leaves of the 8 s
        // break with two of them (3 s); the content comes back at its first segment
        // after 15 s, 16 s (+ 80 ms).
        let mut slate = (*creative()).clone();
        slate.id = "slate".into();
        slate.segments = vec![
            CreativeSegment::new(
                Timestamp::from_millis(1_500),
                slate.segments[0].data.clone()
            );
            3
        ];
        let mut cmaf = (**slate.cmaf.as_ref().unwrap()).clone();
        cmaf.adaptation_sets[0].representations[0]
            .segment_template
            .timeline =
            SegmentTimeline::from_segments([(0, 19_200), (19_200, 19_200), (38_400, 19_200)])
                .unwrap();
        slate.cmaf = Some(Arc::new(cmaf));
        let slate = Arc::new(slate);
        let mpd = s
            .session_mpd(
                "s",
                &DashView::new(&content, &[brk(None)], AST + 20_000)
                    .with_slate(Some(&slate))
                    .with_delay(delay),
                &mut d,
            )
            .unwrap();
        let sum = summary(&mpd);
        assert_eq!(
            sum.iter().map(|p| (p.0.as_str(), p.1)).collect::<Vec<_>>(),
            [
                ("c0", 0),
                ("ad720000-0", 8_080),
                ("ad720000-1", 12_080),
                ("c1440000", 16_080)
            ],
            "{sum:?}"
        );
        assert_eq!(sum[2].2, [(0, 2, 1024)]);
        assert_eq!(mpd.periods[2].duration, Some(Timestamp::from_secs(3)));
        assert!(mpd.periods[2].adaptation_sets[0].representations[0]
            .segment_template
            .media
            .starts_with("/ads/slate/"));

        // A creative without a CMAF form, or one longer than the break, is not used.
        let mut long = (*creative()).clone();
        long.segments = vec![long.segments[0].clone(); 5]; // 10 s > 8 s planned
        let mut d2 = Counting(0, Arc::new(long));
        let mpd = s
            .session_mpd(
                "x",
                &DashView::new(&content, &[brk(None)], AST + 20_000).with_delay(delay),
                &mut d2,
            )
            .unwrap();
        assert_eq!(mpd.periods.len(), 1);
    }
}
