//! Live-to-VOD: a VOD playlist of a stream's stored segments, built from the store's
//! index the moment it is asked for (while the stream is live, or right after its
//! publisher stopped), with its ad breaks (the segments the splicer cut at the cues,
//! [`super::AdMark`] in their records) handled one of four ways:
//!
//! * `ads=remove` (the default): the break segments are left out and every later
//!   segment is served re-timed (`vod/{n}.ts?shift=-T`, its PTS, DTS and PCR moved back by
//!   the breaks before it, [`crate::container::ts::retime`]), so the programme plays as
//!   one continuous timeline, without discontinuities;
//! * `ads=join`: the break segments are left out and the programme either side is joined
//!   with `EXT-X-DISCONTINUITY` (segments served as stored);
//! * `ads=replace`: each break's segments are replaced by the segments of the
//!   creatives registered for ad insertion ([`Origin::add_creative`]): all of them, in
//!   id order and in full whatever the break's length (nothing is cut or filled), each
//!   after an `EXT-X-DISCONTINUITY`, and one where the programme resumes; their
//!   segments are `/ads/{creative}/{n}.ts`, served by [`Origin::handle_mut`]. With no
//!   creative registered the playlist is `409 Conflict`;
//! * `ads=keep`: everything, as recorded.
//!
//! `/live/{stream}/vod.mpd` is the same programme as a static DASH MPD. Each rendition's
//! fragments are numbered from 0 without the break fragments (`vod/{rendition}/{k}.m4s`,
//! their `emsg` boxes dropped) and
//!
//! * with `ads=remove` served re-timed ([`crate::container::fmp4::retime_fragment`]), so
//!   one Period plays through (`ads=keep`: one Period of everything);
//! * with `ads=join` served as stored, one Period per run of programme between breaks
//!   (`c0`, `c1`...; DASH-IF IOP §4.3), each representation's `presentationTimeOffset`
//!   the run's start, each Period's `start` the sum of the Periods before it;
//! * with `ads=replace` as `join`, with each break's place taken by one Period per
//!   creative (`ad{b}-{n}`; DASH-IF IOP §5.3): the creatives registered with
//!   [`Origin::add_creative`] that have a CMAF form, all of them, by id, in full (the
//!   HLS rule), addressed at `/ads/{creative}/{rendition}/...`; 409 when there is none.
//!
//! It needs the stream's live MPD model: it is served while the stream is held
//! (publishing, or ended and lingering).
//!
//! `types=0x30,0x34` limits the breaks handled to those whose cue carried one of these
//! SCTE 35 segmentation types (others stay in); `start=` and `end=` (Unix seconds, as
//! for start-over) limit the range. The playlist is `VOD` with `EXT-X-ENDLIST` once the
//! stream has no publisher or the range ends before the newest segment, else `EVENT`.

use std::sync::Arc;

use bytes::Bytes;

use super::http::{Request, Response};
use super::protect;
use super::router::{text, PLAYLIST_CACHE, PLAYLIST_TYPE, SEGMENT_CACHE};
use super::store::{SegmentRecord, SegmentStore, Series};
use super::{LiveState, Origin};
use crate::error::{Error, Result};
use crate::package::dash::{AdaptationSet, Mpd, MpdType, Period, SegmentTimeline};
use crate::package::hls::{MediaPlaylist, MediaSegment, PlaylistType};
use crate::package::ssai::CreativeCmaf;
use crate::time::{Rounding, Timescale, Timestamp};

/// The live-to-VOD HLS playlist: `/live/{stream}/vod.m3u8`.
pub const VOD_PLAYLIST: &str = "vod.m3u8";
/// The live-to-VOD DASH MPD: `/live/{stream}/vod.mpd`.
pub const VOD_MPD: &str = "vod.mpd";
/// Folder of re-timed segments, relative to the stream: `vod/{n}.ts?shift=T`.
pub const VOD_SEGMENTS: &str = "vod";
/// Most segments one live-to-VOD playlist lists (about 11 days of 2 s segments).
pub const MAX_VOD_SEGMENTS: usize = 500_000;

/// What to do with ad breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AdsMode {
    Remove,
    Join,
    Replace,
    Keep,
}

/// A parsed live-to-VOD query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VodQuery {
    pub mode: AdsMode,
    /// Segmentation types handled; empty: every break.
    pub types: Vec<u8>,
    /// Range, Unix ms.
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// `token=...` handed on to segment URIs.
    pub token: Option<String>,
}

impl VodQuery {
    pub(super) fn parse(target: &str) -> std::result::Result<VodQuery, ()> {
        let mut q = VodQuery {
            mode: AdsMode::Remove,
            types: Vec::new(),
            start: None,
            end: None,
            token: None,
        };
        let Some((_, query)) = target.split_once('?') else {
            return Ok(q);
        };
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "ads" => {
                    q.mode = match v {
                        "remove" => AdsMode::Remove,
                        "join" => AdsMode::Join,
                        "replace" => AdsMode::Replace,
                        "keep" => AdsMode::Keep,
                        _ => return Err(()),
                    }
                }
                "types" => {
                    for t in v.split(',') {
                        let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"));
                        let t = t.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(())?;
                        if q.types.len() < 64 {
                            q.types.push(t);
                        }
                    }
                }
                "start" => q.start = Some(super::dvr::parse_secs(v).ok_or(())?),
                "end" => q.end = Some(super::dvr::parse_secs(v).ok_or(())?),
                "token" => q.token = Some(v.to_string()),
                _ => {}
            }
        }
        Ok(q)
    }

    /// Whether a segment with this record is handled as an ad.
    fn is_ad(&self, r: &SegmentRecord) -> bool {
        match r.ad {
            None => false,
            Some(_) if self.types.is_empty() => true,
            Some(ad) => ad
                .segmentation_type
                .is_some_and(|t| self.types.contains(&t)),
        }
    }
}

/// The live-to-VOD media playlist of `stream` from `store`'s records (see the module
/// docs); `Ok(None)` when nothing stored is in the range.
///
/// Errors: the store's; [`Error::limit`] past [`MAX_VOD_SEGMENTS`].
pub(super) fn vod_playlist<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    q: &VodQuery,
    live: bool,
    target_secs: u64,
    creatives: &[(String, Vec<Timestamp>)],
) -> Result<Option<String>> {
    let Some(last) = store.last_record(stream, Series::Ts) else {
        return Ok(None);
    };
    let first = match q.start {
        Some(t) => match store.record_at(stream, Series::Ts, t) {
            Some(r) => r.number,
            None => return Ok(None),
        },
        None => 0,
    };
    let ended = !live || q.end.is_some_and(|e| e < last.program_date_time_end());
    let mut pl = MediaPlaylist::new(if ended {
        PlaylistType::Vod
    } else {
        PlaylistType::Event
    });
    pl.target_duration = Some(target_secs.max(1));
    pl.ended = ended;
    let token = q.token.as_deref().map(|t| format!("token={t}"));
    let plain_query = token
        .as_deref()
        .map(|t| format!("?{t}"))
        .unwrap_or_default();
    // 90 kHz ticks of breaks removed so far (remove mode).
    let mut removed_90k: i64 = 0;
    let mut in_ad = false;
    let mut pending_disc = false;
    let mut first_listed: Option<u64> = None;
    let mut count = 0usize;
    let mut err: Option<Error> = None;
    store.records(stream, Series::Ts, first, &mut |r: &SegmentRecord| {
        if q.end.is_some_and(|e| r.program_date_time >= e) {
            return false;
        }
        let ad = q.mode != AdsMode::Keep && q.is_ad(r);
        if ad {
            match q.mode {
                AdsMode::Remove => {
                    removed_90k = removed_90k.saturating_add(r.duration.ticks_in(Timescale::MPEG));
                }
                AdsMode::Join => pending_disc = true,
                AdsMode::Replace if !in_ad || r.ad.is_some_and(|a| a.first) => {
                    // The break's creatives, once, between discontinuities.
                    for (id, durations) in creatives {
                        for (n, d) in durations.iter().enumerate() {
                            let mut s =
                                MediaSegment::new(format!("/ads/{id}/{n}.ts{plain_query}"), *d);
                            s.discontinuity = n == 0;
                            pl.push_segment(s);
                        }
                    }
                    pending_disc = true;
                }
                _ => {}
            }
            in_ad = true;
            return true;
        }
        in_ad = false;
        count += 1;
        if count > MAX_VOD_SEGMENTS {
            err = Some(Error::limit("live-to-VOD playlist too long"));
            return false;
        }
        first_listed.get_or_insert(r.number);
        let uri = if removed_90k != 0 {
            let sep = token
                .as_deref()
                .map(|t| format!("&{t}"))
                .unwrap_or_default();
            format!("{VOD_SEGMENTS}/{}.ts?shift=-{removed_90k}{sep}", r.number)
        } else {
            format!("{}.ts{plain_query}", r.number)
        };
        let disc = (r.discontinuity && first_listed != Some(r.number))
            || std::mem::take(&mut pending_disc);
        let mut s = MediaSegment::new(uri, r.duration).with_discontinuity(disc);
        if pl.segments.is_empty() || disc {
            s.program_date_time = Some(r.program_date_time);
        }
        pl.push_segment(s);
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if pl.segments.is_empty() {
        return Ok(None);
    }
    pl.write().map(Some)
}

impl<S: SegmentStore> Origin<S> {
    /// Ids and segment durations of the creatives that replace breaks
    /// (`ads=replace`): those registered with [`Origin::add_creative`] but the current
    /// slate, by id.
    fn creative_durations(&self) -> Vec<(String, Vec<Timestamp>)> {
        let mut all: Vec<(String, Vec<Timestamp>)> = self
            .ssai
            .creatives
            .values()
            .filter(|c| !self.ssai.is_slate(c))
            .map(|c| {
                (
                    c.id.clone(),
                    c.segments.iter().map(|s| s.duration).collect(),
                )
            })
            .collect();
        all.sort();
        all
    }

    /// Ids and CMAF forms of the creatives that replace breaks in the live-to-VOD MPD
    /// (`ads=replace`): those registered with [`Origin::add_creative`] that have one
    /// (made by [`crate::package::ssai::Creative::from_mp4`]), by id; the others play
    /// in HLS only.
    fn creative_cmafs(&self) -> Vec<(String, Arc<CreativeCmaf>)> {
        let mut all: Vec<(String, Arc<CreativeCmaf>)> = self
            .ssai
            .creatives
            .values()
            .filter(|c| !self.ssai.is_slate(c))
            .filter_map(|c| Some((c.id.clone(), Arc::clone(c.cmaf.as_ref()?))))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// One step of [`walk`]: a segment kept, or one of a break left out.
enum Step<'a> {
    /// The `k`-th segment kept (numbered from 0), with the shift (ticks of the record's
    /// timescale, not positive) that closes the gaps of the breaks removed before it
    /// (`ads=remove`; 0 otherwise).
    Kept(u64, &'a SegmentRecord, i64),
    /// A segment of a break, left out (`ads=remove`, `join`, `replace`).
    Ad(&'a SegmentRecord),
}

/// Visits the segments of `series` in the range of query `q`, in order, as [`Step`]s.
/// Stops when `visit` returns `false`.
///
/// Errors: the store's.
fn walk<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    series: Series<'_>,
    q: &VodQuery,
    visit: &mut dyn FnMut(Step<'_>) -> bool,
) -> Result<()> {
    let first = match q.start {
        Some(t) => match store.record_at(stream, series, t) {
            Some(r) => r.number,
            None => return Ok(()),
        },
        None => 0,
    };
    let mut k = 0u64;
    let mut removed = 0i64;
    store.records(stream, series, first, &mut |r: &SegmentRecord| {
        if q.end.is_some_and(|e| r.program_date_time >= e) {
            return false;
        }
        if q.mode != AdsMode::Keep && q.is_ad(r) {
            if q.mode == AdsMode::Remove {
                removed = removed.saturating_add(r.duration.ticks());
            }
            return visit(Step::Ad(r));
        }
        let go = visit(Step::Kept(k, r, -removed));
        k += 1;
        go
    })
}

/// Visits the segments of `series` that a live-to-VOD of query `q` keeps, numbered from 0
/// (`k`), with the shift (ticks of the record's timescale, not positive) that closes the
/// gaps of the breaks removed before each (`ads=remove`; 0 for the other modes). Stops
/// when `visit` returns `false`.
///
/// Errors: the store's.
fn walk_kept<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    series: Series<'_>,
    q: &VodQuery,
    visit: &mut dyn FnMut(u64, &SegmentRecord, i64) -> bool,
) -> Result<()> {
    walk(store, stream, series, q, &mut |step| match step {
        Step::Kept(k, r, shift) => visit(k, r, shift),
        Step::Ad(_) => true,
    })
}

/// The live-to-VOD MPD: `mpd` (the stream's live MPD model) made static.
///
/// * `ads=remove` and `ads=keep`: one Period, each representation's timeline taken from
///   the kept fragments, re-timed and contiguous;
/// * `ads=join` and `ads=replace`: one Period per run of programme between breaks, with
///   the `creatives`' Periods in each break's place for `replace` ([`vod_mpd_periods`]).
///
/// `Ok(None)` when nothing is kept. Errors: the store's; [`Error::malformed`] for a
/// fragment whose timescale is not its rendition's; those of [`vod_mpd_periods`].
fn vod_mpd<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    q: &VodQuery,
    mut mpd: Mpd,
    creatives: &[(String, Arc<CreativeCmaf>)],
) -> Result<Option<Mpd>> {
    if matches!(q.mode, AdsMode::Join | AdsMode::Replace) {
        let creatives = if q.mode == AdsMode::Replace {
            creatives
        } else {
            &[]
        };
        return vod_mpd_periods(store, stream, q, mpd, creatives);
    }
    let query = fragment_query(q);
    let mut longest = Timestamp::from_millis(0);
    for set in mpd.periods.iter_mut().flat_map(|p| &mut p.adaptation_sets) {
        set.inband_event_streams.clear();
        for rep in &mut set.representations {
            let rendition = rep.id.clone();
            let series = Series::Cmaf {
                rendition: &rendition,
            };
            let t = &mut rep.segment_template;
            let scale = t.timescale;
            let mut entries: Vec<(u64, u64)> = Vec::new();
            let mut bad = None;
            walk_kept(store, stream, series, q, &mut |_, r, shift| {
                if r.start.scale() != scale {
                    bad = Some(Error::malformed(
                        "live-to-VOD: a fragment's timescale is not its rendition's",
                    ));
                    return false;
                }
                let start = r.start.ticks().saturating_add(shift).max(0) as u64;
                entries.push((start, r.duration.ticks().max(1) as u64));
                true
            })?;
            if let Some(e) = bad {
                return Err(e);
            }
            let (Some(&(first, _)), Some(&(last, d))) = (entries.first(), entries.last()) else {
                return Ok(None);
            };
            let len = Timestamp::new((last + d - first) as i64, scale);
            if len > longest {
                longest = len;
            }
            t.timeline = SegmentTimeline::from_segments(entries)?;
            t.start_number = 0;
            t.presentation_time_offset = first;
            t.media = format!("{VOD_SEGMENTS}/$RepresentationID$/$Number$.m4s{query}");
        }
    }
    mpd.period_mut().event_streams.clear();
    mpd.utc_timing = None;
    mpd.mpd_type = MpdType::Static {
        media_presentation_duration: longest,
    };
    Ok(Some(mpd))
}

/// The query of a live-to-VOD fragment URL (`?ads=...`, then the range, the types and
/// the token of `q`), so that [`Origin::handle_vod_fragment`] walks the same fragments.
fn fragment_query(q: &VodQuery) -> String {
    let mut query = match q.mode {
        AdsMode::Keep => "?ads=keep",
        AdsMode::Join => "?ads=join",
        AdsMode::Replace => "?ads=replace",
        AdsMode::Remove => "?ads=remove",
    }
    .to_string();
    if !q.types.is_empty() {
        let types: Vec<String> = q.types.iter().map(|t| format!("0x{t:02X}")).collect();
        query.push_str(&format!("&types={}", types.join(",")));
    }
    for (k, v) in [("start", q.start), ("end", q.end)] {
        if let Some(ms) = v {
            query.push_str(&format!(
                "&{k}={}.{:03}",
                ms.div_euclid(1000),
                ms.rem_euclid(1000)
            ));
        }
    }
    if let Some(t) = &q.token {
        query.push_str(&format!("&token={t}"));
    }
    query
}

/// Most Periods in one live-to-VOD MPD of `ads=join` or `ads=replace`.
const MAX_VOD_PERIODS: usize = 10_000;

/// Period boundaries are summed on the 90 kHz clock, then written in milliseconds.
const CLOCK: Timescale = Timescale::MPEG;

/// A stretch of one rendition in a live-to-VOD of `ads=join` or `ads=replace`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Consecutive kept fragments (`k`, start, duration), in the rendition's timescale:
    /// between two breaks, or between a break and a discontinuity.
    Run(Vec<(u64, u64, u64)>),
    /// One ad break left out, however many fragments it spans.
    Break,
}

/// The fragments of `rendition` that query `q` keeps, split at the breaks (a new
/// break starts at an ad fragment that follows a kept one or is its break's first) and
/// at discontinuities (where the timeline may jump).
///
/// Errors: the store's; [`Error::malformed`] for a fragment whose timescale is not
/// `scale`; [`Error::limit`] past [`MAX_VOD_SEGMENTS`] kept fragments.
fn pieces<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    rendition: &str,
    scale: Timescale,
    q: &VodQuery,
) -> Result<Vec<Piece>> {
    let mut out: Vec<Piece> = Vec::new();
    let mut in_ad = false;
    let mut kept = 0usize;
    let mut err = None;
    walk(store, stream, Series::Cmaf { rendition }, q, &mut |step| {
        match step {
            Step::Ad(r) => {
                if !in_ad || r.ad.is_some_and(|a| a.first) {
                    out.push(Piece::Break);
                }
                in_ad = true;
            }
            Step::Kept(k, r, _) => {
                in_ad = false;
                kept += 1;
                if kept > MAX_VOD_SEGMENTS {
                    err = Some(Error::limit("live-to-VOD MPD too long"));
                    return false;
                }
                if r.start.scale() != scale {
                    err = Some(Error::malformed(
                        "live-to-VOD: a fragment's timescale is not its rendition's",
                    ));
                    return false;
                }
                let entry = (
                    k,
                    r.start.ticks().max(0) as u64,
                    r.duration.ticks().max(1) as u64,
                );
                match out.last_mut() {
                    Some(Piece::Run(run)) if !r.discontinuity => run.push(entry),
                    _ => out.push(Piece::Run(vec![entry])),
                }
            }
        }
        true
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Start and length of the first representation of `sets` (the video comes first):
/// the reference that Period boundaries follow. `None` without a segment.
fn reference_span(sets: &[AdaptationSet]) -> Option<(Timestamp, Timestamp)> {
    let t = &sets.first()?.representations.first()?.segment_template;
    let entries = t.timeline.entries();
    let (first, last) = (entries.first()?, entries.last()?);
    let len = last.end().saturating_sub(first.t);
    Some((
        Timestamp::new(first.t.min(i64::MAX as u64) as i64, t.timescale),
        Timestamp::new(len.min(i64::MAX as u64) as i64, t.timescale),
    ))
}

/// The multi-Period live-to-VOD MPD of `ads=join` (`creatives` empty) and
/// `ads=replace` (DASH-IF IOP §4.3, multi-Period content; §5.3, ads as Periods):
///
/// * one content Period per run of programme between breaks (or discontinuities),
///   `c{n}` from 0: its fragments served as stored (not re-timed) at
///   `vod/{rendition}/{k}.m4s?ads=...`, numbered as the kept fragments are; every
///   representation's `presentationTimeOffset` is the run's start on the first
///   representation (the video), in its own timescale, so that audio and video keep
///   their offset;
/// * for `replace`, in each break's place, one Period per creative (`ad{b}-{n}`: break
///   `b`, creative `n`, in the order given), its AdaptationSets addressing
///   `/ads/{creative}/...`;
/// * each Period's `start` is the sum of the Periods before it and its `duration` the
///   length of its first representation (content cut on video keyframes), both in whole
///   milliseconds (boundaries summed at 90 kHz, then rounded), so that the starts add up
///   exactly; `mediaPresentationDuration` is their sum.
///
/// `Ok(None)` when nothing is kept. Errors: the store's; [`Error::unsupported`] for a
/// live MPD of several Periods; [`Error::malformed`] when the renditions do not break at
/// the same places; [`Error::limit`] past [`MAX_VOD_PERIODS`] Periods; those of the
/// timelines.
fn vod_mpd_periods<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    q: &VodQuery,
    mut mpd: Mpd,
    creatives: &[(String, Arc<CreativeCmaf>)],
) -> Result<Option<Mpd>> {
    let query = fragment_query(q);
    let [base] = mpd.periods.as_slice() else {
        return Err(Error::unsupported(
            "live-to-VOD: the live MPD has several Periods",
        ));
    };
    let mut sets = base.adaptation_sets.clone();
    for set in &mut sets {
        set.inband_event_streams.clear();
    }
    // Each representation's pieces, in the order of `sets`; the first is the reference.
    let mut layouts: Vec<Vec<Piece>> = Vec::new();
    for rep in sets.iter().flat_map(|s| &s.representations) {
        let scale = rep.segment_template.timescale;
        layouts.push(pieces(store, stream, &rep.id, scale, q)?);
    }
    let Some(reference) = layouts.first() else {
        return Ok(None);
    };
    if !reference.iter().any(|p| matches!(p, Piece::Run(_))) {
        return Ok(None);
    }
    let same_shape = |a: &[Piece], b: &[Piece]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                matches!(
                    (x, y),
                    (Piece::Break, Piece::Break) | (Piece::Run(_), Piece::Run(_))
                )
            })
    };
    if layouts.iter().any(|l| !same_shape(l, reference)) {
        return Err(Error::malformed(
            "live-to-VOD: the renditions do not break at the same places",
        ));
    }
    // The creatives' AdaptationSets, addressed through `/ads/{creative}/`, and lengths.
    let token = q
        .token
        .as_deref()
        .map(|t| format!("?token={t}"))
        .unwrap_or_default();
    let mut ads: Vec<(&str, Vec<AdaptationSet>, Timestamp)> = Vec::new();
    for (id, cmaf) in creatives {
        let Some((_, len)) = reference_span(&cmaf.adaptation_sets) else {
            continue;
        };
        let mut sets = cmaf.adaptation_sets.clone();
        for set in &mut sets {
            set.inband_event_streams.clear();
            for rep in &mut set.representations {
                let t = &mut rep.segment_template;
                t.initialization = format!("/ads/{id}/{}", t.initialization);
                t.media = format!("/ads/{id}/{}{token}", t.media);
            }
        }
        ads.push((id, sets, len));
    }
    let mut periods: Vec<Period> = Vec::new();
    let mut at_90k = 0i64;
    let mut push = |periods: &mut Vec<Period>, id: String, len: Timestamp, sets| {
        if periods.len() >= MAX_VOD_PERIODS {
            return Err(Error::limit("live-to-VOD MPD: too many Periods"));
        }
        let start_ms = Timestamp::new(at_90k, CLOCK).as_millis();
        at_90k = at_90k.saturating_add(len.ticks_in(CLOCK).max(0));
        let end_ms = Timestamp::new(at_90k, CLOCK).as_millis();
        let mut p = Period::new(id, Timestamp::from_millis(start_ms))
            .with_duration(Timestamp::from_millis(end_ms - start_ms));
        p.adaptation_sets = sets;
        periods.push(p);
        Ok(())
    };
    let (mut runs, mut breaks) = (0usize, 0usize);
    for (i, piece) in reference.iter().enumerate() {
        let Piece::Run(ref_run) = piece else {
            for (n, (_, sets, len)) in ads.iter().enumerate() {
                push(&mut periods, format!("ad{breaks}-{n}"), *len, sets.clone())?;
            }
            breaks += 1;
            continue;
        };
        let (Some(first), Some(last)) = (ref_run.first(), ref_run.last()) else {
            continue;
        };
        let ref_scale = sets
            .first()
            .and_then(|s| s.representations.first())
            .map_or(CLOCK, |r| r.segment_template.timescale);
        let anchor = Timestamp::new(first.1.min(i64::MAX as u64) as i64, ref_scale);
        let len = last.1.saturating_add(last.2).saturating_sub(first.1);
        let len = Timestamp::new(len.min(i64::MAX as u64) as i64, ref_scale);
        let mut period_sets = sets.clone();
        let reps = period_sets.iter_mut().flat_map(|s| &mut s.representations);
        for (rep, layout) in reps.zip(&layouts) {
            let Some(Piece::Run(run)) = layout.get(i) else {
                continue;
            };
            let t = &mut rep.segment_template;
            t.timeline = SegmentTimeline::from_segments(run.iter().map(|e| (e.1, e.2)))?;
            t.start_number = run.first().map_or(0, |e| e.0);
            t.presentation_time_offset = anchor
                .rescale(t.timescale, Rounding::Nearest)
                .ticks()
                .max(0) as u64;
            t.media = format!("{VOD_SEGMENTS}/$RepresentationID$/$Number$.m4s{query}");
        }
        push(&mut periods, format!("c{runs}"), len, period_sets)?;
        runs += 1;
    }
    let total_ms = Timestamp::new(at_90k, CLOCK).as_millis();
    mpd.periods = periods;
    mpd.utc_timing = None;
    mpd.mpd_type = MpdType::Static {
        media_presentation_duration: Timestamp::from_millis(total_ms),
    };
    Ok(Some(mpd))
}

/// `shift=-T` of a re-timed segment's query (90 kHz, at most 2^33 back).
fn parse_shift(target: &str) -> Option<i64> {
    let (_, query) = target.split_once('?')?;
    let v = query.split('&').find_map(|kv| kv.strip_prefix("shift="))?;
    let v: i64 = v.parse().ok()?;
    (-(1i64 << 33) < v && v <= 0).then_some(v)
}

impl<S: SegmentStore> Origin<S> {
    pub(super) fn handle_l2v(
        &self,
        name: &str,
        file: &str,
        req: &Request,
        now: i64,
        head: bool,
    ) -> Response {
        let Ok(q) = VodQuery::parse(&req.path) else {
            return text(400, "bad live-to-VOD query\n", head);
        };
        if file == VOD_MPD {
            let creatives = if q.mode == AdsMode::Replace {
                self.creative_cmafs()
            } else {
                Vec::new()
            };
            if q.mode == AdsMode::Replace && creatives.is_empty() {
                return text(
                    409,
                    "no creative with a CMAF form registered to replace breaks with\n",
                    head,
                );
            }
            let Some(model) = self.streams.get(name).and_then(|s| s.mpd_model(now)) else {
                return text(404, "no DASH presentation held for this stream\n", head);
            };
            return match vod_mpd(&self.store, name, &q, model, &creatives)
                .and_then(|m| m.map(|m| m.write()).transpose())
            {
                Ok(Some(t)) => protect::ok(
                    super::router::MPD_TYPE,
                    PLAYLIST_CACHE,
                    Bytes::from(t),
                    head,
                ),
                Ok(None) => text(404, "nothing recorded\n", head),
                Err(e) if e.kind() == crate::ErrorKind::Limit => {
                    tracing::debug!("live-to-VOD MPD of {name}: {e}");
                    text(500, "live-to-VOD MPD too long\n", head)
                }
                Err(e) => {
                    tracing::debug!("live-to-VOD MPD of {name}: {e}");
                    text(500, "recording index unreadable\n", head)
                }
            };
        }
        let live = self
            .streams
            .get(name)
            .is_some_and(|s| s.state() == LiveState::Publishing);
        let target = self
            .options()
            .live
            .segmenter
            .target_duration
            .as_millis()
            .max(1);
        let creatives = if q.mode == AdsMode::Replace {
            self.creative_durations()
        } else {
            Vec::new()
        };
        if q.mode == AdsMode::Replace && creatives.is_empty() {
            return text(409, "no creative registered to replace breaks with\n", head);
        }
        match vod_playlist(
            &self.store,
            name,
            &q,
            live,
            ((target + 999) / 1000) as u64,
            &creatives,
        ) {
            Ok(Some(t)) => protect::ok(PLAYLIST_TYPE, PLAYLIST_CACHE, Bytes::from(t), head),
            Ok(None) => text(404, "nothing recorded\n", head),
            Err(e) => {
                tracing::debug!("live-to-VOD playlist of {name}: {e}");
                text(500, "recording index unreadable\n", head)
            }
        }
    }

    /// `/live/{stream}/vod/{rendition}/{k}.m4s`: the `k`-th fragment the live-to-VOD of
    /// the query keeps, without its `emsg` boxes: re-timed for `ads=remove`, at its
    /// recorded time for the other modes.
    pub(super) fn handle_vod_fragment(
        &self,
        name: &str,
        rendition: &str,
        k: u64,
        req: &Request,
        head: bool,
    ) -> Response {
        let Ok(q) = VodQuery::parse(&req.path) else {
            return text(400, "bad live-to-VOD query\n", head);
        };
        let series = Series::Cmaf { rendition };
        let mut found = None;
        let walked = walk_kept(&self.store, name, series, &q, &mut |i, r, shift| {
            if i == k {
                found = Some((r.number, shift));
                false
            } else {
                true
            }
        });
        let Some((number, shift)) = found.filter(|_| walked.is_ok()) else {
            return text(404, "unknown fragment\n", head);
        };
        let key = super::CmafKey::Fragment { rendition, number };
        let Some(data) = self.store.get_cmaf(name, key) else {
            return text(404, "unknown fragment\n", head);
        };
        match crate::container::fmp4::retime_fragment(&data, shift) {
            Ok(b) => protect::ok("video/iso.segment", SEGMENT_CACHE, b, head),
            Err(e) => {
                tracing::debug!("re-timing fragment {number} of {name}/{rendition}: {e}");
                text(500, "stored fragment unreadable\n", head)
            }
        }
    }

    /// `/live/{stream}/vod/{n}.ts?shift=-T`: stored segment `n` re-timed.
    pub(super) fn handle_vod_segment(
        &self,
        name: &str,
        number: u64,
        req: &Request,
        head: bool,
    ) -> Response {
        let Some(shift) = parse_shift(&req.path) else {
            return text(400, "bad shift\n", head);
        };
        let Some(data) = self.store.get(name, number) else {
            return text(404, "unknown segment\n", head);
        };
        match crate::container::ts::retime(&data, shift) {
            Ok(b) => protect::ok("video/mp2t", SEGMENT_CACHE, b, head),
            Err(e) => {
                tracing::debug!("re-timing segment {number} of {name}: {e}");
                text(500, "stored segment unreadable\n", head)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q =
            VodQuery::parse("/live/a/vod.m3u8?ads=join&types=0x30,0x34&start=10&token=t").unwrap();
        assert_eq!(q.mode, AdsMode::Join);
        assert_eq!(q.types, vec![0x30, 0x34]);
        assert_eq!(q.start, Some(10_000));
        assert_eq!(q.token.as_deref(), Some("t"));
        assert_eq!(VodQuery::parse("/x").unwrap().mode, AdsMode::Remove);
        for bad in [
            "/x?ads=drop",
            "/x?types=30",
            "/x?types=0xZZ",
            "/x?start=abc",
        ] {
            assert!(VodQuery::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_shift("/v/1.ts?shift=-900"), Some(-900));
        assert_eq!(parse_shift("/v/1.ts?shift=900"), None);
        assert_eq!(parse_shift("/v/1.ts"), None);
    }

    use super::super::store::{AdMark, MemoryStore};
    use crate::package::dash::{ContentType, Representation, SegmentTemplate};

    /// (ad: `None`, or `Some(first)`; discontinuity) of 2 s fragments from 0 ms; a
    /// discontinuity jumps 100 s ahead.
    type Frag = (Option<bool>, bool);

    fn store_of(renditions: &[(&str, &[Frag])]) -> MemoryStore {
        let mut store = MemoryStore::default();
        for (rendition, frags) in renditions {
            let mut at = 0i64;
            for (n, &(ad, disc)) in frags.iter().enumerate() {
                if disc {
                    at += 100_000;
                }
                let r = SegmentRecord::new(
                    n as u64,
                    Timestamp::from_millis(at),
                    Timestamp::from_millis(2000),
                )
                .with_discontinuity(disc)
                .with_ad(ad.map(|first| AdMark::new(first, None)));
                let series = Series::Cmaf { rendition };
                store
                    .put_indexed("s", series, &r, Bytes::from_static(b"x"))
                    .unwrap();
                at += 2000;
            }
        }
        store
    }

    fn model(ids: &[&str]) -> Mpd {
        let mut mpd = Mpd::new(MpdType::Static {
            media_presentation_duration: Timestamp::from_millis(0),
        });
        for (n, id) in ids.iter().enumerate() {
            let t = SegmentTemplate::new(Timescale::MILLIS);
            let kind = if n == 0 {
                ContentType::Video
            } else {
                ContentType::Audio
            };
            let mut set = AdaptationSet::new(n as u32, kind);
            set.representations
                .push(Representation::new(*id, 1000, "avc1.64000c", t));
            mpd.period_mut().adaptation_sets.push(set);
        }
        mpd
    }

    const KEPT: Frag = (None, false);
    const CUT: Frag = (Some(true), false);
    const AD: Frag = (Some(false), false);
    const JUMP: Frag = (None, true);

    #[test]
    fn pieces_split_at_breaks_and_discontinuities() {
        // A break of two, another right after it, the programme, a jump, a last break.
        let frags = [KEPT, CUT, AD, CUT, KEPT, JUMP, CUT];
        let store = store_of(&[("v1", &frags)]);
        let q = VodQuery::parse("/x?ads=join").unwrap();
        let p = pieces(&store, "s", "v1", Timescale::MILLIS, &q).unwrap();
        assert_eq!(
            p,
            [
                Piece::Run(vec![(0, 0, 2000)]),
                Piece::Break,
                Piece::Break,
                Piece::Run(vec![(1, 8000, 2000)]),
                Piece::Run(vec![(2, 110_000, 2000)]),
                Piece::Break,
            ]
        );
        // Breaks of other types are programme.
        let q = VodQuery::parse("/x?ads=join&types=0x34").unwrap();
        let p = pieces(&store, "s", "v1", Timescale::MILLIS, &q).unwrap();
        assert_eq!(p.len(), 2, "one run, then a new one at the jump: {p:?}");
        // Another timescale than the rendition's: malformed.
        let e = pieces(&store, "s", "v1", Timescale::MPEG, &q).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Malformed);
    }

    #[test]
    fn join_and_replace_periods() {
        let frags = [KEPT, CUT, AD, CUT, KEPT, JUMP, CUT];
        let store = store_of(&[("v1", &frags), ("a2", &frags)]);
        let join = VodQuery::parse("/x?ads=join&token=t").unwrap();
        let mpd = vod_mpd(&store, "s", &join, model(&["v1", "a2"]), &[])
            .unwrap()
            .unwrap();
        let spans: Vec<(&str, i64, Option<i64>)> = mpd
            .periods
            .iter()
            .map(|p| {
                (
                    p.id.as_str(),
                    p.start.as_millis(),
                    p.duration.map(|d| d.as_millis()),
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                ("c0", 0, Some(2000)),
                ("c1", 2000, Some(2000)),
                ("c2", 4000, Some(2000))
            ]
        );
        let c1 = &mpd.periods[1].adaptation_sets[1].representations[0].segment_template;
        assert_eq!((c1.start_number, c1.presentation_time_offset), (1, 8000));
        assert_eq!(
            c1.media,
            "vod/$RepresentationID$/$Number$.m4s?ads=join&token=t"
        );
        let text = mpd.write().unwrap();
        assert!(
            text.contains("mediaPresentationDuration=\"PT6S\""),
            "{text}"
        );

        // A creative of one 3 s fragment in each break's place.
        let mut set = AdaptationSet::new(0, ContentType::Video);
        let mut t = SegmentTemplate::new(Timescale::MILLIS);
        t.timeline = SegmentTimeline::from_segments([(500, 3000)]).unwrap();
        t.presentation_time_offset = 500;
        set.representations
            .push(Representation::new("v1", 1000, "avc1.64000c", t));
        let spot = Arc::new(CreativeCmaf {
            renditions: Vec::new(),
            adaptation_sets: vec![set],
        });
        let replace = VodQuery::parse("/x?ads=replace").unwrap();
        let creatives = [("spot".to_string(), spot)];
        let mpd = vod_mpd(&store, "s", &replace, model(&["v1", "a2"]), &creatives)
            .unwrap()
            .unwrap();
        let ids: Vec<(&str, i64)> = mpd
            .periods
            .iter()
            .map(|p| (p.id.as_str(), p.start.as_millis()))
            .collect();
        assert_eq!(
            ids,
            [
                ("c0", 0),
                ("ad0-0", 2000),
                ("ad1-0", 5000),
                ("c1", 8000),
                ("c2", 10_000),
                ("ad2-0", 12_000)
            ]
        );
        let ad = &mpd.periods[1].adaptation_sets[0].representations[0].segment_template;
        assert_eq!(ad.media, "/ads/spot/$RepresentationID$/$Number$.m4s");
        assert_eq!(ad.initialization, "/ads/spot/$RepresentationID$/init.mp4");
        assert!(mpd.write().unwrap().contains("PT15S"));

        // Renditions that break at different places: malformed, not a wrong MPD.
        let other = [KEPT, CUT, KEPT, KEPT, KEPT, KEPT, KEPT];
        let store = store_of(&[("v1", &frags), ("a2", &other)]);
        let e = vod_mpd(&store, "s", &join, model(&["v1", "a2"]), &[]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Malformed);
        // Nothing kept: nothing to serve.
        let store = store_of(&[("v1", &[CUT, AD])]);
        assert!(vod_mpd(&store, "s", &join, model(&["v1"]), &[])
            .unwrap()
            .is_none());
    }
}
