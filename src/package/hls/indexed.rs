//! [`IndexedPlaylist`]: a media playlist written straight from an index of numbered
//! segments, for windows too long to hold as a [`super::MediaPlaylist`] (a DVR window
//! of 48 hours is 86,400 two-second segments).

use std::fmt::Write as _;

use super::media::PlaylistType;
use super::tags;
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// One segment of an [`IndexedPlaylist`]: its URI is the playlist's prefix, its
/// number and the playlist's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexedSegment {
    /// The segment's number: its URI, and its media sequence number.
    pub number: u64,
    /// Its duration (`#EXTINF`).
    pub duration: Timestamp,
    /// Wall-clock time of its first sample (Unix ms); written on the first segment
    /// and after each discontinuity (RFC 8216bis §4.4.4.6), where players re-anchor.
    pub program_date_time: Option<i64>,
    /// `EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
}

impl IndexedSegment {
    /// Segment `number` lasting `duration`, no date, no discontinuity.
    pub fn new(number: u64, duration: Timestamp) -> Self {
        IndexedSegment {
            number,
            duration,
            program_date_time: None,
            discontinuity: false,
        }
    }

    /// With the wall-clock time of its first sample.
    #[must_use]
    pub fn with_program_date_time(mut self, unix_ms: i64) -> Self {
        self.program_date_time = Some(unix_ms);
        self
    }

    /// With `EXT-X-DISCONTINUITY` before it.
    #[must_use]
    pub fn with_discontinuity(mut self, discontinuity: bool) -> Self {
        self.discontinuity = discontinuity;
        self
    }
}

/// A media playlist (RFC 8216bis §4.4.3) written from segments handed in one at a
/// time, never held: the text grows by one short line pair per segment, and the
/// header (whose `EXT-X-TARGETDURATION` depends on every segment) is put in front at
/// the end. Segment URIs are `{uri_prefix}{number}{uri_suffix}`.
///
/// A number that does not follow the previous one (a segment missing from the index)
/// gets `EXT-X-DISCONTINUITY`, so that players do not splice across the hole.
///
/// ```
/// use strom::package::hls::{IndexedPlaylist, IndexedSegment, PlaylistType};
/// use strom::time::Timestamp;
///
/// let mut pl = IndexedPlaylist::new(PlaylistType::Event, "", ".ts");
/// pl.target_duration = Some(2);
/// let mut w = pl.writer(40, 1).unwrap();
/// for n in 40..43 {
///     let mut s = IndexedSegment::new(n, Timestamp::from_millis(2_000));
///     if n == 40 {
///         s = s.with_program_date_time(1_700_000_000_000);
///     }
///     w.push(&s).unwrap();
/// }
/// let text = w.finish().unwrap();
/// assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"));
/// assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
/// assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
/// assert!(text.ends_with("#EXTINF:2.000,\n42.ts\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexedPlaylist {
    /// `EXT-X-PLAYLIST-TYPE`; [`PlaylistType::Vod`] also ends the playlist.
    pub playlist_type: PlaylistType,
    /// Lower bound of `EXT-X-TARGETDURATION` in whole seconds, as
    /// [`super::MediaPlaylist::target_duration`]. Default: `None`.
    pub target_duration: Option<u64>,
    /// `EXT-X-MAP:URI` for fMP4 segments (raises the version to 7). Default: `None`.
    pub map: Option<String>,
    /// Written before each segment number in its URI.
    pub uri_prefix: String,
    /// Written after each segment number in its URI (`.ts`, `.m4s`, and a query).
    pub uri_suffix: String,
    /// `EXT-X-ENDLIST`: no segment will be added. Default: `false`.
    pub ended: bool,
    /// `EXT-X-START:TIME-OFFSET` (RFC 8216bis §4.4.2.2), in milliseconds: where players
    /// start, from the first segment (>= 0) or back from the end (< 0). A start-over
    /// playlist sets 0, or players join an `EVENT` playlist at its live edge.
    /// Default: `None`.
    pub start_offset_ms: Option<i64>,
}

impl IndexedPlaylist {
    /// A playlist of `playlist_type` whose segment URIs are
    /// `{uri_prefix}{number}{uri_suffix}`.
    pub fn new(
        playlist_type: PlaylistType,
        uri_prefix: impl Into<String>,
        uri_suffix: impl Into<String>,
    ) -> Self {
        IndexedPlaylist {
            playlist_type,
            target_duration: None,
            map: None,
            uri_prefix: uri_prefix.into(),
            uri_suffix: uri_suffix.into(),
            ended: false,
            start_offset_ms: None,
        }
    }

    /// A writer of this playlist whose first segment has media sequence number
    /// `media_sequence` and discontinuity sequence number `discontinuity_sequence`
    /// (§4.4.3.3: discontinuities before the first listed segment).
    ///
    /// Errors: [`Error::usage`] for a URI prefix, suffix or map that cannot be in a
    /// playlist line (a line break, a leading `#`).
    pub fn writer(
        &self,
        media_sequence: u64,
        discontinuity_sequence: u64,
    ) -> Result<IndexedPlaylistWriter<'_>> {
        tags::check_uri(&format!("{}0{}", self.uri_prefix, self.uri_suffix))
            .map_err(|e| e.context("indexed playlist segment URI"))?;
        if let Some(map) = &self.map {
            tags::check_uri(map).map_err(|e| e.context("EXT-X-MAP URI"))?;
        }
        Ok(IndexedPlaylistWriter {
            pl: self,
            media_sequence,
            discontinuity_sequence,
            body: String::new(),
            target: self.target_duration.unwrap_or(0).max(1),
            next: None,
            count: 0,
            last_duration: None,
        })
    }
}

/// Writes the segments of an [`IndexedPlaylist`] in order; [`finish`](Self::finish)
/// returns the text.
#[derive(Debug)]
pub struct IndexedPlaylistWriter<'a> {
    pl: &'a IndexedPlaylist,
    media_sequence: u64,
    discontinuity_sequence: u64,
    body: String,
    target: u64,
    /// The number the next segment should have.
    next: Option<u64>,
    count: u64,
    /// The previous segment's duration and its `#EXTINF` line (most segments of a
    /// stream last the same, so the line is formatted once).
    last_duration: Option<(Timestamp, String)>,
}

impl IndexedPlaylistWriter<'_> {
    /// Segments written so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no segment was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends `s`.
    ///
    /// Errors: [`Error::usage`] for a negative duration, a number not above the
    /// previous one, or a date outside years 0..=9999.
    pub fn push(&mut self, s: &IndexedSegment) -> Result<()> {
        let hole = match self.next {
            Some(n) if s.number < n => {
                return Err(Error::usage(
                    "indexed playlist: segment numbers must increase",
                ))
            }
            Some(n) => s.number != n,
            None => false,
        };
        let extinf = match &self.last_duration {
            Some((d, line)) if *d == s.duration => line,
            _ => {
                let ms = tags::duration_millis(s.duration)? as u64;
                self.target = self.target.max(tags::round_half_up_secs(ms));
                let mut line = String::with_capacity(24);
                line.push_str("#EXTINF:");
                tags::secs_3(&mut line, ms);
                line.push_str(",\n");
                &self.last_duration.insert((s.duration, line)).1
            }
        };
        let discontinuity = s.discontinuity || hole;
        if discontinuity {
            self.body.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(pdt) = s.program_date_time {
            if self.count == 0 || discontinuity {
                self.body.push_str("#EXT-X-PROGRAM-DATE-TIME:");
                tags::iso8601_millis(&mut self.body, pdt)?;
                self.body.push('\n');
            }
        }
        self.body.push_str(extinf);
        self.body.push_str(&self.pl.uri_prefix);
        push_decimal(&mut self.body, s.number);
        self.body.push_str(&self.pl.uri_suffix);
        self.body.push('\n');
        self.next = Some(s.number.saturating_add(1));
        self.count += 1;
        Ok(())
    }

    /// The playlist text: header, the segments, `EXT-X-ENDLIST` when ended.
    ///
    /// Errors: [`Error::usage`] when no segment was pushed (a playlist lists at least
    /// one).
    pub fn finish(self) -> Result<String> {
        if self.count == 0 {
            return Err(Error::usage("indexed playlist without segments"));
        }
        let pl = self.pl;
        let mut out = String::with_capacity(self.body.len() + 256);
        out.push_str("#EXTM3U\n");
        let version = if pl.map.is_some() { 7 } else { 3 };
        let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence != 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        match pl.playlist_type {
            PlaylistType::Live => {}
            PlaylistType::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            PlaylistType::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        }
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        if let Some(ms) = pl.start_offset_ms {
            out.push_str("#EXT-X-START:TIME-OFFSET=");
            if ms < 0 {
                out.push('-');
            }
            tags::secs_3(&mut out, ms.unsigned_abs());
            out.push('\n');
        }
        if let Some(map) = &pl.map {
            out.push_str("#EXT-X-MAP:URI=");
            tags::quoted(&mut out, map)?;
            out.push('\n');
        }
        out.push_str(&self.body);
        if pl.ended || pl.playlist_type == PlaylistType::Vod {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        Ok(out)
    }
}

/// Appends `n` in decimal (without the formatting machinery: one call per segment of
/// playlists tens of thousands of segments long).
fn push_decimal(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[at..] {
        out.push(char::from(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::hls::{MediaPlaylist, MediaSegment};

    fn ms(x: i64) -> Timestamp {
        Timestamp::from_millis(x)
    }

    #[test]
    fn same_text_as_a_media_playlist_for_the_same_segments() {
        let durations = [2000, 2002, 1998, 6600, 2000];
        let mut mp = MediaPlaylist::new(PlaylistType::Vod);
        mp.target_duration = Some(2);
        mp.media_sequence = 10;
        mp.map = Some("init.mp4".into());
        let mut ip = IndexedPlaylist::new(PlaylistType::Vod, "", ".m4s");
        ip.target_duration = Some(2);
        ip.map = Some("init.mp4".into());
        let mut w = ip.writer(10, 0).unwrap();
        for (i, d) in durations.iter().enumerate() {
            let n = 10 + i as u64;
            let mut seg = MediaSegment::new(format!("{n}.m4s"), ms(*d));
            let mut s = IndexedSegment::new(n, ms(*d));
            if i == 0 {
                seg.program_date_time = Some(1_700_000_000_000);
                s = s.with_program_date_time(1_700_000_000_000);
            }
            mp.push_segment(seg);
            w.push(&s).unwrap();
        }
        assert_eq!(w.finish().unwrap(), mp.write().unwrap());
    }

    #[test]
    fn holes_and_discontinuities_and_dates() {
        let pl = IndexedPlaylist::new(PlaylistType::Live, "seg-", ".ts?t=1");
        let mut w = pl.writer(5, 3).unwrap();
        w.push(&IndexedSegment::new(5, ms(2000)).with_program_date_time(10_000))
            .unwrap();
        // Dates are written only at the start and after discontinuities.
        w.push(&IndexedSegment::new(6, ms(2000)).with_program_date_time(12_000))
            .unwrap();
        w.push(&IndexedSegment::new(8, ms(2000)).with_program_date_time(16_000))
            .unwrap();
        assert!(w
            .push(&IndexedSegment::new(8, ms(2000)))
            .unwrap_err()
            .to_string()
            .contains("increase"));
        let text = w.finish().unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.media_sequence, 5);
        assert_eq!(parsed.discontinuity_sequence, 3);
        assert_eq!(parsed.segments.len(), 3);
        assert_eq!(parsed.segments[2].uri, "seg-8.ts?t=1");
        assert!(parsed.segments[2].discontinuity);
        assert!(parsed.segments[2].program_date_time.is_some());
        assert!(parsed.segments[1].program_date_time.is_none());
        assert!(!text.contains("ENDLIST"));
        let mut pl = IndexedPlaylist::new(PlaylistType::Event, "", ".ts");
        pl.start_offset_ms = Some(0);
        let mut w = pl.writer(0, 0).unwrap();
        w.push(&IndexedSegment::new(0, ms(2000))).unwrap();
        let text = w.finish().unwrap();
        assert!(text.contains("#EXT-X-START:TIME-OFFSET=0.000\n"), "{text}");
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.start.map(|s| s.time_offset), Some(0.0));
        pl.start_offset_ms = Some(-6500);
        let mut w = pl.writer(0, 0).unwrap();
        w.push(&IndexedSegment::new(0, ms(2000))).unwrap();
        assert!(w.finish().unwrap().contains("TIME-OFFSET=-6.500\n"));
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 99, 100, 86_399, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn refuses_bad_uris_and_empty_playlists() {
        let pl = IndexedPlaylist::new(PlaylistType::Vod, "#", ".ts");
        assert!(pl.writer(0, 0).is_err());
        let pl = IndexedPlaylist::new(PlaylistType::Vod, "", ".ts\nx");
        assert!(pl.writer(0, 0).is_err());
        let pl = IndexedPlaylist::new(PlaylistType::Vod, "", ".ts");
        assert!(pl.writer(0, 0).unwrap().finish().is_err());
        let mut w = pl.writer(0, 0).unwrap();
        assert!(w.push(&IndexedSegment::new(0, ms(-1))).is_err());
    }
}
