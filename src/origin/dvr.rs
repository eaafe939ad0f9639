//! DVR, start-over and recordings: HLS playlists and DASH timelines written from the
//! store's index ([`SegmentStore::records`]) rather than from the live window held
//! in memory, so a window of 48 hours costs no memory between requests.
//!
//! * `/live/{stream}/dvr.m3u8` and `/live/{stream}/{rendition}/dvr.m3u8`: every stored
//!   segment within [`super::OriginOptions::dvr_window_ms`] of the newest one; a
//!   sliding playlist while the stream is live, `VOD` once it ended (a recording).
//! * `?start=<unix seconds>` on a media playlist: start-over from the segment playing
//!   at that time to the live edge, `EVENT` while live (segments are only added),
//!   `VOD` once ended. `?offset=-<seconds>`: from that long before `now`.
//! * The same query on a multivariant playlist (`index.m3u8`, `cmaf.m3u8`) is handed
//!   on to its media playlists, an offset turned into the absolute start it means
//!   now, so that every reload of the media playlists starts at the same segment.
//! * `?dvr` on either is the same as the `dvr.m3u8` name.

use std::fmt::Write as _;

use super::store::{SegmentRecord, SegmentStore, Series};
use crate::error::{Error, Result};
use crate::package::dash::{Mpd, MpdType, SegmentTimeline};
use crate::package::hls::{IndexedPlaylist, IndexedSegment, PlaylistType};
use crate::time::Timestamp;

/// Name of the DVR media playlist of a stream (MPEG-TS) or of a CMAF rendition.
pub const DVR_PLAYLIST: &str = "dvr.m3u8";

/// Where a requested playlist starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Window {
    /// The whole DVR window.
    Dvr,
    /// Start-over from this wall-clock time (Unix ms).
    Start(i64),
    /// From this long before `now` (ms, not positive).
    Offset(i64),
}

impl Window {
    /// The query string a multivariant playlist hands on to its media playlists at
    /// `now`, with the `token` parameter of `query` kept.
    pub(super) fn media_query(self, query: &str, now: i64) -> String {
        let mut q = match self {
            Window::Dvr => "?dvr".to_string(),
            Window::Start(ms) => format!("?start={}", secs(ms)),
            Window::Offset(off) => format!("?start={}", secs(now.saturating_add(off))),
        };
        if let Some(t) = query.split('&').find_map(|kv| kv.strip_prefix("token=")) {
            let _ = write!(q, "&token={t}");
        }
        q
    }
}

/// Unix ms as seconds with up to three decimals (integer maths).
fn secs(ms: i64) -> String {
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        format!("{s}")
    } else {
        format!("{s}.{frac:03}")
    }
}

/// Parses decimal seconds (`-?\d+(\.\d{1,3})?`) into milliseconds.
pub(super) fn parse_secs(v: &str) -> Option<i64> {
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty()
        || whole.len() > 12
        || frac.len() > 3
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut ms: i64 = whole.parse::<i64>().ok()?.checked_mul(1000)?;
    if !frac.is_empty() {
        let f: i64 = frac.parse().ok()?;
        ms = ms.checked_add(f * 10i64.pow(3 - frac.len() as u32))?;
    }
    Some(if neg { -ms } else { ms })
}

/// The window a request target's query asks for: `None` for the plain live
/// playlist, `Err` for a malformed or contradictory one (several of `dvr`, `start`,
/// `offset`; a positive offset).
pub(super) fn parse_window(target: &str) -> std::result::Result<Option<Window>, ()> {
    let Some((_, query)) = target.split_once('?') else {
        return Ok(None);
    };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let mut found = None;
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let w = match k {
            "dvr" if v.is_empty() || v == "1" => Window::Dvr,
            "start" => Window::Start(parse_secs(v).filter(|ms| *ms >= 0).ok_or(())?),
            "offset" => Window::Offset(parse_secs(v).filter(|ms| *ms <= 0).ok_or(())?),
            "dvr" => return Err(()),
            _ => continue,
        };
        if found.replace(w).is_some() {
            return Err(());
        }
    }
    Ok(found)
}

/// What a DVR playlist of one series needs besides the store.
#[derive(Debug, Clone, Copy)]
pub(super) struct DvrPlaylist<'a> {
    /// The requested start.
    pub window: Window,
    /// The DVR window, ms: records ending earlier than this before the newest one's
    /// end are not listed.
    pub dvr_window_ms: i64,
    /// Configured target duration in whole seconds (a floor for the tag).
    pub target_secs: u64,
    /// The stream will get no more segments: `VOD` with `EXT-X-ENDLIST`.
    pub ended: bool,
    /// The request time, Unix ms.
    pub now: i64,
    /// `EXT-X-MAP` URI for CMAF renditions.
    pub map: Option<&'a str>,
    /// Appended to every segment URI (a `?token=...`), may be empty.
    pub query: &'a str,
}

/// The DVR / start-over media playlist of `series` of `stream` from the store's
/// records: `Ok(None)` when nothing stored is in the window.
///
/// Errors: the store's, or a playlist that cannot be written.
pub(super) fn media_playlist<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    series: Series<'_>,
    p: &DvrPlaylist<'_>,
) -> Result<Option<String>> {
    let Some(last) = store.last_record(stream, series) else {
        return Ok(None);
    };
    let oldest = last
        .program_date_time_end()
        .saturating_sub(p.dvr_window_ms.max(0));
    let from = match p.window {
        Window::Dvr => oldest,
        Window::Start(t) => t.max(oldest),
        Window::Offset(off) => p.now.saturating_add(off).max(oldest),
    };
    // A start after the newest segment: the newest one (the live edge).
    let first = store.record_at(stream, series, from).unwrap_or(last);
    let playlist_type = match (p.ended, p.window) {
        (true, _) => PlaylistType::Vod,
        (false, Window::Start(_)) => PlaylistType::Event,
        (false, _) => PlaylistType::Live,
    };
    let suffix = match series {
        Series::Ts => ".ts",
        _ => ".m4s",
    };
    let mut pl = IndexedPlaylist::new(playlist_type, "", format!("{suffix}{}", p.query));
    pl.target_duration = Some(p.target_secs.max(1));
    pl.map = p.map.map(|m| format!("{m}{}", p.query));
    pl.ended = p.ended;
    if matches!(p.window, Window::Start(_) | Window::Offset(_)) {
        // Start-over: players begin at the first listed segment, not at the live edge.
        pl.start_offset_ms = Some(0);
    }
    let mut w = pl.writer(first.number, first.discontinuity_sequence)?;
    let mut err = None;
    store.records(stream, series, first.number, &mut |r: &SegmentRecord| {
        let s = IndexedSegment::new(r.number, r.duration)
            .with_program_date_time(r.program_date_time)
            // The first listed segment keeps its own tag (its sequence excludes it).
            .with_discontinuity(r.discontinuity);
        match w.push(&s) {
            Ok(()) => true,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if w.is_empty() {
        return Ok(None);
    }
    w.finish().map(Some)
}

/// `mpd` (the live MPD model at `now`) with every representation's timeline taken
/// from the store's records of its rendition within `dvr_window_ms` of the newest
/// one, up to the last entry the live model lists (what is available by `now`), and
/// `timeShiftBufferDepth` covering it.
///
/// Errors: the store's; a representation without a rendition in the store keeps its
/// live timeline.
pub(super) fn dvr_mpd<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    mut mpd: Mpd,
    dvr_window_ms: i64,
) -> Result<Mpd> {
    let mut depth_ms = 0i64;
    for set in mpd.periods.iter_mut().flat_map(|p| &mut p.adaptation_sets) {
        for rep in &mut set.representations {
            let rendition = rep.id.clone();
            let series = Series::Cmaf {
                rendition: &rendition,
            };
            let t = &mut rep.segment_template;
            let scale = t.timescale;
            // The live model's last listed entry: nothing after it is available yet.
            let Some(live_end) = t.timeline.end() else {
                continue;
            };
            let Some(last) = store.last_record(stream, series) else {
                continue;
            };
            let oldest = last
                .program_date_time_end()
                .saturating_sub(dvr_window_ms.max(0));
            let Some(first) = store.record_at(stream, series, oldest) else {
                continue;
            };
            let mut kept: Vec<(u64, u64)> = Vec::new();
            let mut first_number = None;
            let mut err = None;
            store.records(stream, series, first.number, &mut |r: &SegmentRecord| {
                if r.start.scale() != scale {
                    err = Some(Error::malformed(
                        "DVR: a stored fragment's timescale is not its rendition's",
                    ));
                    return false;
                }
                let (Ok(start), Ok(d)) = (
                    u64::try_from(r.start.ticks()),
                    u64::try_from(r.duration.ticks()),
                ) else {
                    return true;
                };
                if start.saturating_add(d) > live_end {
                    return false;
                }
                // A hole in the numbers (a lost fragment) ends the timeline before it:
                // $Number$ addressing cannot skip one.
                if let Some(n) = first_number {
                    if r.number != n + kept.len() as u64 {
                        kept.clear();
                        first_number = Some(r.number);
                    }
                } else {
                    first_number = Some(r.number);
                }
                kept.push((start, d));
                true
            })?;
            if let Some(e) = err {
                return Err(e);
            }
            let (Some(n), Some(&(s0, _)), Some(&(sl, dl))) =
                (first_number, kept.first(), kept.last())
            else {
                continue;
            };
            let span = Timestamp::new(
                i64::try_from((sl + dl).saturating_sub(s0)).unwrap_or(i64::MAX),
                scale,
            );
            depth_ms = depth_ms.max(span.as_millis());
            t.start_number = n;
            t.timeline = SegmentTimeline::from_segments(kept)?;
        }
    }
    if let MpdType::Dynamic {
        time_shift_buffer_depth,
        ..
    } = &mut mpd.mpd_type
    {
        if depth_ms > 0 {
            *time_shift_buffer_depth = Some(Timestamp::from_millis(depth_ms));
        }
    }
    Ok(mpd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(parse_window("/live/a/media.m3u8"), Ok(None));
        assert_eq!(parse_window("/live/a/media.m3u8?token=x"), Ok(None));
        assert_eq!(parse_window("/x?dvr"), Ok(Some(Window::Dvr)));
        assert_eq!(parse_window("/x?dvr=1&token=t"), Ok(Some(Window::Dvr)));
        assert_eq!(
            parse_window("/x?start=1700000000"),
            Ok(Some(Window::Start(1_700_000_000_000)))
        );
        assert_eq!(
            parse_window("/x?start=1700000000.25"),
            Ok(Some(Window::Start(1_700_000_000_250)))
        );
        assert_eq!(
            parse_window("/x?offset=-3600"),
            Ok(Some(Window::Offset(-3_600_000)))
        );
        for bad in [
            "/x?offset=60",
            "/x?start=-5",
            "/x?start=abc",
            "/x?start=1.2345",
            "/x?start=",
            "/x?dvr&start=5",
            "/x?dvr=2",
            "/x?start=99999999999999999",
        ] {
            assert_eq!(parse_window(bad), Err(()), "{bad}");
        }
        assert_eq!(
            Window::Offset(-3_600_000).media_query("token=abc&x=1", 1_700_003_600_500),
            "?start=1700000000.500&token=abc"
        );
        assert_eq!(Window::Dvr.media_query("", 0), "?dvr");
    }
}
