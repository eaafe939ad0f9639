//! [`MediaPlaylist`]: the list of media segments of one rendition (RFC 8216bis §4.4.3,
//! §4.4.4), for VOD, EVENT and live sliding-window playlists.

use std::collections::VecDeque;

use super::ads::{CueTag, DateRange};
use super::key::{self, Key};
use super::tags;
use crate::error::Result;
use crate::package::Segment;
use crate::time::Timestamp;

/// The `EXT-X-PLAYLIST-TYPE` of a media playlist (RFC 8216bis §4.4.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PlaylistType {
    /// No tag: a live playlist whose segments may be removed from the front
    /// (sliding window). `EXT-X-ENDLIST` only once [`MediaPlaylist::ended`].
    #[default]
    Live,
    /// `EVENT`: segments are only appended. `EXT-X-ENDLIST` once ended.
    Event,
    /// `VOD`: the playlist never changes; always ends with `EXT-X-ENDLIST`.
    Vod,
}

/// One media segment line group: `EXT-X-DISCONTINUITY`, `EXT-X-KEY`,
/// `EXT-X-PROGRAM-DATE-TIME`, `EXTINF` and the URI (RFC 8216bis §4.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaSegment {
    /// The segment's URI, relative to the playlist or absolute. One line, not empty.
    pub uri: String,
    /// Exact duration; written in `EXTINF` rounded to the nearest millisecond.
    pub duration: Timestamp,
    /// Writes `EXT-X-DISCONTINUITY` before the segment (§4.4.4.3).
    pub discontinuity: bool,
    /// Wall-clock time of the segment's first sample, in milliseconds since the Unix
    /// epoch (UTC); written as `EXT-X-PROGRAM-DATE-TIME` (§4.4.4.6) when set.
    pub program_date_time: Option<i64>,
    /// The keys in force for this segment, one per key system (`KEYFORMAT`), all of
    /// one `METHOD` (§4.4.4.4). Empty (or a lone [`Key::none`]): not encrypted. The
    /// playlist writes `EXT-X-KEY` tags only where this set differs from the
    /// previous segment's. Default: empty.
    pub keys: Vec<Key>,
    /// `EXT-X-DATERANGE` tags written before the segment (ad breaks starting or
    /// ending here, §4.4.5.1). Default: none.
    pub date_ranges: Vec<DateRange>,
    /// The `EXT-X-CUE-*` tag written before the segment. Default: none.
    pub cue: Option<CueTag>,
}

impl MediaSegment {
    /// A segment at `uri` lasting `duration`, continuous, without a date.
    pub fn new(uri: impl Into<String>, duration: Timestamp) -> Self {
        MediaSegment {
            uri: uri.into(),
            duration,
            discontinuity: false,
            program_date_time: None,
            keys: Vec::new(),
            date_ranges: Vec::new(),
            cue: None,
        }
    }
    /// The playlist entry of a segmenter [`Segment`] stored at `uri`: its duration and
    /// discontinuity flag.
    pub fn from_segment(segment: &Segment, uri: impl Into<String>) -> Self {
        MediaSegment {
            discontinuity: segment.discontinuity,
            ..MediaSegment::new(uri, segment.duration)
        }
    }
    /// Sets the discontinuity flag (builder style).
    #[must_use]
    pub fn with_discontinuity(mut self, discontinuity: bool) -> Self {
        self.discontinuity = discontinuity;
        self
    }
    /// Sets the program date-time, in Unix milliseconds (builder style).
    #[must_use]
    pub fn with_program_date_time(mut self, unix_ms: i64) -> Self {
        self.program_date_time = Some(unix_ms);
        self
    }
    /// Sets the keys in force for the segment (builder style); see [`Self::keys`].
    #[must_use]
    pub fn with_keys(mut self, keys: Vec<Key>) -> Self {
        self.keys = keys;
        self
    }
}

/// A media playlist (RFC 8216bis §4.4.3): header tags and the segments it lists.
///
/// The same model serves VOD, EVENT and live playlists: a live window appends with
/// [`MediaPlaylist::push_segment`] and removes old segments with
/// [`MediaPlaylist::pop_front`], which keeps `EXT-X-MEDIA-SEQUENCE` and
/// `EXT-X-DISCONTINUITY-SEQUENCE` right (§6.2.2).
///
/// ```
/// use strom::package::hls::{MediaPlaylist, MediaSegment, PlaylistType};
/// use strom::time::{Timescale, Timestamp};
///
/// let mut pl = MediaPlaylist::new(PlaylistType::Vod);
/// pl.push_segment(MediaSegment::new("0.ts", Timestamp::new(540_540, Timescale::MPEG)));
/// pl.push_segment(MediaSegment::new("1.ts", Timestamp::from_millis(3_500)));
/// assert_eq!(
///     pl.write().unwrap(),
///     "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n\
///      #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n\
///      #EXTINF:6.006,\n0.ts\n#EXTINF:3.500,\n1.ts\n#EXT-X-ENDLIST\n"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MediaPlaylist {
    /// `EXT-X-PLAYLIST-TYPE`. Default: [`PlaylistType::Live`] (no tag).
    pub playlist_type: PlaylistType,
    /// Lower bound of `EXT-X-TARGETDURATION`, in whole seconds. The written value is
    /// the larger of this and the longest segment's rounded duration, so the §4.4.3.1
    /// rule always holds; a live playlist sets it to its configured target so the tag
    /// does not change as segments come and go. Default: `None` (computed only).
    pub target_duration: Option<u64>,
    /// `EXT-X-MEDIA-SEQUENCE`: the media sequence number of the first segment
    /// (§4.4.3.2). Default: 0.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (§4.4.3.3), written when non-zero. Default: 0.
    pub discontinuity_sequence: u64,
    /// Writes `EXT-X-INDEPENDENT-SEGMENTS` (§4.4.2.1): every segment starts with a
    /// random access point, which the [`crate::package::Segmenter`] guarantees.
    /// Default: `true` with [`MediaPlaylist::new`], `false` with `Default`.
    pub independent_segments: bool,
    /// No more segments will be added: writes `EXT-X-ENDLIST` (§4.4.3.4). VOD
    /// playlists always have it. Default: `false`.
    pub ended: bool,
    /// `EXT-X-MAP:URI` (§4.4.4.5): the initialization section of every segment, for
    /// fragmented MP4 (CMAF) segments. Setting it raises `EXT-X-VERSION` to 7.
    /// Default: `None` (MPEG-TS segments, which carry their own PAT/PMT).
    pub map: Option<String>,
    /// The segments, oldest first; the first one has number `media_sequence`.
    pub segments: VecDeque<MediaSegment>,
}

impl MediaPlaylist {
    /// An empty playlist of `playlist_type` with independent segments.
    pub fn new(playlist_type: PlaylistType) -> Self {
        MediaPlaylist {
            playlist_type,
            independent_segments: true,
            ..MediaPlaylist::default()
        }
    }

    /// Appends a segment.
    pub fn push_segment(&mut self, segment: MediaSegment) {
        self.segments.push_back(segment);
    }

    /// Removes the oldest segment (live sliding window): the media sequence advances
    /// by one, and the discontinuity sequence by one if the removed segment carried
    /// `EXT-X-DISCONTINUITY` (RFC 8216bis §6.2.2). Its `EXT-X-DATERANGE`s that still
    /// cover the new first segment (no end yet, or an end after that segment's date)
    /// move to it, so a break that began before the window stays announced.
    pub fn pop_front(&mut self) -> Option<MediaSegment> {
        let segment = self.segments.pop_front()?;
        self.media_sequence = self.media_sequence.saturating_add(1);
        if segment.discontinuity {
            self.discontinuity_sequence = self.discontinuity_sequence.saturating_add(1);
        }
        if let Some(next) = self.segments.front_mut() {
            let from = next.program_date_time;
            let mut carried: Vec<DateRange> = segment
                .date_ranges
                .iter()
                .filter(|d| {
                    let end = d.end_date.or_else(|| {
                        d.duration
                            .map(|x| d.start_date.saturating_add(x.as_millis()))
                    });
                    match (end, from) {
                        (Some(end), Some(from)) => end > from,
                        _ => true,
                    }
                })
                .filter(|d| !next.date_ranges.iter().any(|n| n.id == d.id))
                .cloned()
                .collect();
            if !carried.is_empty() {
                carried.append(&mut next.date_ranges);
                next.date_ranges = carried;
            }
        }
        Some(segment)
    }

    /// `EXT-X-VERSION`: 3, for `EXTINF` durations with decimals (RFC 8216bis §7); 5
    /// when a listed segment's key has `KEYFORMAT` or `KEYFORMATVERSIONS` (an `IV`
    /// needs 2, below 3); 7 with an [`EXT-X-MAP`](Self::map) (version 6 allows the
    /// tag outside I-frame playlists, 7 is what players expect of fMP4 playlists).
    pub fn version(&self) -> u8 {
        let keys = self
            .segments
            .iter()
            .flat_map(|s| key::effective(&s.keys))
            .map(Key::version)
            .max()
            .unwrap_or(1);
        let v = keys.max(3);
        if self.map.is_some() {
            v.max(7)
        } else {
            v
        }
    }

    /// The `EXT-X-TARGETDURATION` that [`MediaPlaylist::write`] writes: the largest of
    /// [`MediaPlaylist::target_duration`], 1, and every segment's written `EXTINF`
    /// value rounded half up to whole seconds (§4.4.3.1: "The EXTINF duration of each
    /// Media Segment in a Playlist file, when rounded to the nearest integer, MUST be
    /// less than or equal to the Target Duration"). Integer maths only: 6.020 s -> 6,
    /// 6.500 s -> 7.
    ///
    /// Errors: [`Error::usage`](crate::Error::usage) for a negative segment duration.
    pub fn computed_target_duration(&self) -> Result<u64> {
        let mut target = self.target_duration.unwrap_or(0).max(1);
        for s in &self.segments {
            let ms = tags::duration_millis(s.duration)? as u64;
            target = target.max(tags::round_half_up_secs(ms));
        }
        Ok(target)
    }

    /// Total duration of the listed segments, in milliseconds as written.
    ///
    /// Errors: [`Error::usage`](crate::Error::usage) for a negative segment duration.
    pub fn duration_millis(&self) -> Result<u64> {
        let mut total = 0u64;
        for s in &self.segments {
            total = total.saturating_add(tags::duration_millis(s.duration)? as u64);
        }
        Ok(total)
    }

    /// The playlist text, lines ending in `\n`.
    ///
    /// `EXT-X-KEY` tags go before the first segment that has keys and wherever a
    /// segment's key set differs from the previous one's (`METHOD=NONE` where clear
    /// segments follow encrypted ones), so the first listed segment of a sliding
    /// window always has its key stated.
    ///
    /// Errors: [`Error::usage`](crate::Error::usage) for a negative duration, an invalid URI (empty,
    /// several lines, starting with `#`), a program date-time outside years 0..=9999,
    /// an invalid key (see [`Key::to_tag`]), a segment's keys mixing methods or
    /// repeating a `KEYFORMAT`, or a key system dropped while segments stay encrypted.
    pub fn write(&self) -> Result<String> {
        let mut out = String::with_capacity(128 + 64 * self.segments.len());
        out.push_str("#EXTM3U\n");
        out.push_str(&format!("#EXT-X-VERSION:{}\n", self.version()));
        out.push_str(&format!(
            "#EXT-X-TARGETDURATION:{}\n",
            self.computed_target_duration()?
        ));
        out.push_str(&format!("#EXT-X-MEDIA-SEQUENCE:{}\n", self.media_sequence));
        if self.discontinuity_sequence != 0 {
            out.push_str(&format!(
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
                self.discontinuity_sequence
            ));
        }
        match self.playlist_type {
            PlaylistType::Live => {}
            PlaylistType::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            PlaylistType::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(map) = &self.map {
            tags::check_uri(map).map_err(|e| e.context("EXT-X-MAP URI"))?;
            out.push_str("#EXT-X-MAP:URI=");
            tags::quoted(&mut out, map)?;
            out.push('\n');
        }
        let mut keys: &[Key] = &[];
        for s in &self.segments {
            tags::check_uri(&s.uri).map_err(|e| e.context("media playlist segment URI"))?;
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let next = key::effective(&s.keys);
            key::write_transition(&mut out, keys, next).map_err(|e| e.context("EXT-X-KEY"))?;
            keys = next;
            for d in &s.date_ranges {
                d.write(&mut out)
                    .map_err(|e| e.context("EXT-X-DATERANGE"))?;
            }
            if let Some(cue) = &s.cue {
                cue.write(&mut out)?;
            }
            if let Some(ms) = s.program_date_time {
                out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
                tags::iso8601_millis(&mut out, ms)?;
                out.push('\n');
            }
            out.push_str("#EXTINF:");
            tags::secs_3(&mut out, tags::duration_millis(s.duration)? as u64);
            out.push_str(",\n");
            out.push_str(&s.uri);
            out.push('\n');
        }
        if self.ended || self.playlist_type == PlaylistType::Vod {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timescale;
    use crate::ErrorKind;

    fn ms(x: i64) -> Timestamp {
        Timestamp::from_millis(x)
    }

    fn parse(text: &str) -> m3u8_rs::MediaPlaylist {
        m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("m3u8-rs parses our output")
    }

    #[test]
    fn map_writes_version_7_and_the_init_uri() {
        let mut pl = MediaPlaylist::new(PlaylistType::Vod);
        pl.map = Some("init.mp4".into());
        pl.push_segment(MediaSegment::new("1.m4s", ms(2000)));
        let text = pl.write().unwrap();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{text}");
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\n1.m4s\n"));
        let parsed = parse(&text);
        assert_eq!(parsed.version, Some(7));
        let map = parsed.segments[0]
            .map
            .as_ref()
            .expect("m3u8-rs sees EXT-X-MAP");
        assert_eq!(map.uri, "init.mp4");
        pl.map = Some("bad\nuri".into());
        assert!(pl.write().is_err());
    }

    #[test]
    fn target_duration_rounds_half_up() {
        let mut pl = MediaPlaylist::new(PlaylistType::Vod);
        pl.push_segment(MediaSegment::new("a.ts", ms(6020)));
        assert_eq!(pl.computed_target_duration().unwrap(), 6);
        pl.push_segment(MediaSegment::new("b.ts", ms(6500)));
        assert_eq!(pl.computed_target_duration().unwrap(), 7);
        // Rounded the way EXTINF is written: 6.4996 s is written 6.500, so 7.
        let mut pl = MediaPlaylist::new(PlaylistType::Vod);
        pl.push_segment(MediaSegment::new(
            "c.ts",
            Timestamp::new(584_964, Timescale::MPEG),
        ));
        assert_eq!(pl.computed_target_duration().unwrap(), 7);
        // The configured floor wins when larger; an empty playlist says 1 at least.
        pl.target_duration = Some(10);
        assert_eq!(pl.computed_target_duration().unwrap(), 10);
        assert_eq!(
            MediaPlaylist::new(PlaylistType::Live)
                .computed_target_duration()
                .unwrap(),
            1
        );
    }

    #[test]
    fn golden_vod_with_discontinuity_and_dates() {
        let mut pl = MediaPlaylist::new(PlaylistType::Vod);
        pl.push_segment(
            MediaSegment::new("seg0.ts", Timestamp::new(540_540, Timescale::MPEG))
                .with_program_date_time(1_709_210_096_789),
        );
        pl.push_segment(MediaSegment::new("seg1.ts", ms(6020)));
        pl.push_segment(
            MediaSegment::new("seg2.ts", ms(6500))
                .with_discontinuity(true)
                .with_program_date_time(1_709_210_200_000),
        );
        let text = pl.write().unwrap();
        assert_eq!(
            text,
            "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:7
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-PROGRAM-DATE-TIME:2024-02-29T12:34:56.789Z
#EXTINF:6.006,
seg0.ts
#EXTINF:6.020,
seg1.ts
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2024-02-29T12:36:40.000Z
#EXTINF:6.500,
seg2.ts
#EXT-X-ENDLIST
"
        );
        let p = parse(&text);
        assert_eq!(p.version, Some(3));
        assert_eq!(p.target_duration, 7);
        assert!(p.end_list && p.independent_segments);
        assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert_eq!(p.segments.len(), 3);
        assert_eq!(p.segments[0].uri, "seg0.ts");
        assert!((p.segments[0].duration - 6.006).abs() < 1e-6);
        assert!(!p.segments[1].discontinuity && p.segments[2].discontinuity);
        let pdt = |i: usize| {
            p.segments[i]
                .program_date_time
                .map(|t| t.timestamp_millis())
        };
        assert_eq!(pdt(0), Some(1_709_210_096_789));
        assert_eq!(pdt(1), None);
        assert_eq!(pdt(2), Some(1_709_210_200_000));
    }

    #[test]
    fn golden_live_window() {
        let mut pl = MediaPlaylist::new(PlaylistType::Live);
        pl.target_duration = Some(6);
        for i in 0..5 {
            let disc = i == 1 || i == 3;
            pl.push_segment(
                MediaSegment::new(format!("{i}.ts"), ms(4000)).with_discontinuity(disc),
            );
        }
        for _ in 0..2 {
            pl.pop_front();
        }
        assert_eq!((pl.media_sequence, pl.discontinuity_sequence), (2, 1));
        let text = pl.write().unwrap();
        assert_eq!(
            text,
            "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:2
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:4.000,
2.ts
#EXT-X-DISCONTINUITY
#EXTINF:4.000,
3.ts
#EXTINF:4.000,
4.ts
"
        );
        let p = parse(&text);
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (2, 1));
        assert!(!p.end_list);
        assert_eq!(p.playlist_type, None);
        pl.pop_front();
        pl.pop_front();
        assert_eq!((pl.media_sequence, pl.discontinuity_sequence), (4, 2));
        pl.playlist_type = PlaylistType::Event;
        pl.ended = true;
        let text = pl.write().unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(text.ends_with("4.ts\n#EXT-X-ENDLIST\n"));
        assert_eq!(
            parse(&text).playlist_type,
            Some(m3u8_rs::MediaPlaylistType::Event)
        );
    }

    #[test]
    fn keys_rotation_key_systems_and_window() {
        use crate::crypto::Iv;
        use crate::package::hls::{KeyMethod, KEYFORMAT_WIDEVINE};
        let k = |n: u64| {
            vec![
                Key::new(KeyMethod::SampleAes, format!("k{n}.bin")).with_iv(Iv::from_sequence(n)),
                Key::new(KeyMethod::SampleAes, "data:text/plain;base64,AAAA")
                    .with_keyformat(KEYFORMAT_WIDEVINE, &[1]),
            ]
        };
        let mut pl = MediaPlaylist::new(PlaylistType::Live);
        pl.target_duration = Some(4);
        // Two segments per key, then a clear segment, then encrypted again.
        for i in 0..4u64 {
            pl.push_segment(MediaSegment::new(format!("{i}.ts"), ms(4000)).with_keys(k(i / 2)));
        }
        pl.push_segment(MediaSegment::new("4.ts", ms(4000)).with_keys(vec![Key::none()]));
        pl.push_segment(MediaSegment::new("5.ts", ms(4000)).with_keys(k(9)));
        let text = pl.write().unwrap();
        let wv = "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,AAAA\",\
                  KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\",KEYFORMATVERSIONS=\"1\"\n";
        let id = |n: u64| format!("#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k{n}.bin\",IV=0x{n:032x}\n");
        let expect = format!(
            "#EXTM3U\n#EXT-X-VERSION:5\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n{wv}{}#EXTINF:4.000,\n0.ts\n#EXTINF:4.000,\n1.ts\n\
             {wv}{}#EXTINF:4.000,\n2.ts\n#EXTINF:4.000,\n3.ts\n\
             #EXT-X-KEY:METHOD=NONE\n#EXTINF:4.000,\n4.ts\n\
             {wv}{}#EXTINF:4.000,\n5.ts\n",
            id(0),
            id(1),
            id(9)
        );
        assert_eq!(text, expect);
        // m3u8-rs sees the last key before each segment whose keys were written: the
        // identity key, written after the Widevine one.
        let p = parse(&text);
        assert_eq!(p.version, Some(5));
        let key_of = |i: usize| p.segments[i].key.clone();
        let first = key_of(0).expect("key before the first segment");
        assert_eq!(first.method, m3u8_rs::KeyMethod::SampleAES);
        assert_eq!(first.keyformat, None);
        assert_eq!(first.uri.as_deref(), Some("k0.bin"));
        assert!(
            key_of(1).is_none() && key_of(3).is_none(),
            "no tag when unchanged"
        );
        assert!(key_of(2).is_some() && key_of(5).is_some());

        // Sliding window: the first listed segment keeps its key stated, and a
        // window with no KEYFORMAT left falls back to version 3.
        pl.pop_front();
        let text = pl.write().unwrap();
        assert!(text.contains(&format!(
            "INDEPENDENT-SEGMENTS\n{wv}{}#EXTINF:4.000,\n1.ts\n",
            id(0)
        )));
        let mut plain = MediaPlaylist::new(PlaylistType::Vod);
        plain.push_segment(MediaSegment::new("a.ts", ms(1000)).with_keys(vec![
            Key::new(KeyMethod::Aes128, "a.key").with_iv(Iv::from_sequence(3)),
        ]));
        plain.push_segment(MediaSegment::new("b.ts", ms(1000)));
        let text = plain.write().unwrap();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n"));
        assert!(text.contains(
            "#EXT-X-KEY:METHOD=AES-128,URI=\"a.key\",IV=0x00000000000000000000000000000003\n\
             #EXTINF:1.000,\na.ts\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:1.000,\nb.ts\n"
        ));
        let p = parse(&text);
        let key = p.segments[0].key.as_ref().unwrap();
        assert_eq!(
            key.iv.as_deref(),
            Some("0x00000000000000000000000000000003")
        );
        assert_eq!(key.uri.as_deref(), Some("a.key"));
        // A segment whose keys break the rules fails the whole playlist.
        plain.segments[1].keys = vec![
            Key::new(KeyMethod::Aes128, "x"),
            Key::new(KeyMethod::Aes128, "y"),
        ];
        assert_eq!(plain.write().unwrap_err().kind(), ErrorKind::Usage);
    }

    #[test]
    fn invalid_content_is_a_usage_error() {
        for seg in [
            MediaSegment::new("a\n#EXT-X-ENDLIST", ms(1000)),
            MediaSegment::new("", ms(1000)),
            MediaSegment::new("a.ts", ms(-1)),
            MediaSegment::new("a.ts", ms(1)).with_program_date_time(i64::MAX),
        ] {
            let mut pl = MediaPlaylist::new(PlaylistType::Vod);
            pl.push_segment(seg);
            assert_eq!(pl.write().unwrap_err().kind(), ErrorKind::Usage);
        }
    }

    #[test]
    fn from_segmenter_output() {
        use crate::package::{Segmenter, SegmenterOptions};
        use crate::pipeline::{drain, Stage};
        // Audio-only, 48 kHz, 1024-sample frames, target 2 s.
        let scale = Timescale::new(48_000).unwrap();
        let asc = crate::bitstream::aac::build_asc(2, 3, 2);
        let cfg = crate::media::AacConfig::from_asc(asc).unwrap();
        let info = crate::media::TrackInfo::new(1, scale, crate::media::CodecConfig::Aac(cfg));
        let mut s = Segmenter::new(SegmenterOptions {
            target_duration: ms(2000),
            ..SegmenterOptions::default()
        })
        .unwrap();
        s.push(crate::media::Event::TrackAdded(info).into())
            .unwrap();
        let mut pl = MediaPlaylist::new(PlaylistType::Vod);
        for n in 0..200i64 {
            let t = Timestamp::new(n * 1024, scale);
            s.push(crate::media::Frame::new(1, t, t, bytes::Bytes::new()).into())
                .unwrap();
            for seg in drain(&mut s).unwrap() {
                pl.push_segment(MediaSegment::from_segment(
                    &seg,
                    format!("{}.ts", seg.sequence),
                ));
            }
        }
        s.finish().unwrap();
        for seg in drain(&mut s).unwrap() {
            pl.push_segment(MediaSegment::from_segment(
                &seg,
                format!("{}.ts", seg.sequence),
            ));
        }
        // 94 frames = 2.005333 s -> 2.005; 200 - 188 = 12 frames = 0.256 s.
        let text = pl.write().unwrap();
        assert!(text.contains("#EXTINF:2.005,\n0.ts\n#EXTINF:2.005,\n1.ts\n#EXTINF:0.256,\n2.ts\n"));
        assert_eq!(pl.duration_millis().unwrap(), 4266);
    }
}
