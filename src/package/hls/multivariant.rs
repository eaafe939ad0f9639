//! [`MultivariantPlaylist`]: the variant streams and alternative renditions of a
//! presentation (RFC 8216bis §4.4.6).

use std::fmt::Write as _;

use super::key::{Key, KeyMethod};
use super::tags;
use crate::error::{Error, Result};

/// `TYPE` of an `EXT-X-MEDIA` rendition (RFC 8216bis §4.4.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RenditionType {
    /// `AUDIO`.
    Audio,
    /// `VIDEO`.
    Video,
    /// `SUBTITLES`.
    Subtitles,
}

impl RenditionType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            RenditionType::Audio => "AUDIO",
            RenditionType::Video => "VIDEO",
            RenditionType::Subtitles => "SUBTITLES",
        }
    }
}

/// An alternative rendition: one `EXT-X-MEDIA` tag (RFC 8216bis §4.4.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rendition {
    /// `TYPE`.
    pub kind: RenditionType,
    /// `GROUP-ID`: the group variants refer to (`AUDIO="..."`). Not empty.
    pub group_id: String,
    /// `LANGUAGE`: an RFC 5646 language tag (`en`, `fr-CA`), if known.
    pub language: Option<String>,
    /// `NAME`: human-readable, unique within the group. Not empty.
    pub name: String,
    /// `DEFAULT=YES`: play this one when the user has not chosen. At most one per
    /// group, and it must also be `autoselect`.
    pub default: bool,
    /// `AUTOSELECT=YES`: the client may choose it from user preferences (language).
    pub autoselect: bool,
    /// `CHANNELS`: audio channel count (`"2"`), if known.
    pub channels: Option<u32>,
    /// `URI` of the rendition's media playlist; `None` when the rendition is muxed
    /// into the variant streams.
    pub uri: Option<String>,
}

impl Rendition {
    /// An audio rendition of `group_id` named `name` with its own playlist at `uri`;
    /// not default, not autoselect, no language.
    pub fn audio(
        group_id: impl Into<String>,
        name: impl Into<String>,
        uri: Option<String>,
    ) -> Self {
        Rendition {
            kind: RenditionType::Audio,
            group_id: group_id.into(),
            language: None,
            name: name.into(),
            default: false,
            autoselect: false,
            channels: None,
            uri,
        }
    }

    fn write(&self, out: &mut String) -> Result<()> {
        if self.group_id.is_empty() || self.name.is_empty() {
            return Err(Error::usage("EXT-X-MEDIA needs a GROUP-ID and a NAME"));
        }
        if self.default && !self.autoselect {
            return Err(Error::usage(
                "EXT-X-MEDIA with DEFAULT=YES must have AUTOSELECT=YES",
            ));
        }
        let yes_no = |b: bool| if b { "YES" } else { "NO" };
        let _ = write!(out, "#EXT-X-MEDIA:TYPE={},GROUP-ID=", self.kind.as_str());
        tags::quoted(out, &self.group_id)?;
        if let Some(lang) = &self.language {
            out.push_str(",LANGUAGE=");
            tags::quoted(out, lang)?;
        }
        out.push_str(",NAME=");
        tags::quoted(out, &self.name)?;
        let _ = write!(
            out,
            ",DEFAULT={},AUTOSELECT={}",
            yes_no(self.default),
            yes_no(self.autoselect)
        );
        if let Some(ch) = self.channels {
            let _ = write!(out, ",CHANNELS=\"{ch}\"");
        }
        if let Some(uri) = &self.uri {
            tags::check_uri(uri)?;
            out.push_str(",URI=");
            tags::quoted(out, uri)?;
        }
        out.push('\n');
        Ok(())
    }
}

/// A variant stream: one `EXT-X-STREAM-INF` tag and its URI (RFC 8216bis §4.4.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Variant {
    /// URI of the variant's media playlist.
    pub uri: String,
    /// `BANDWIDTH`: peak segment bit rate in bits per second (see
    /// [`super::BandwidthMeter::peak`]).
    pub bandwidth: u64,
    /// `AVERAGE-BANDWIDTH`: average segment bit rate in bits per second, if known.
    pub average_bandwidth: Option<u64>,
    /// `CODECS`: comma-separated RFC 6381 strings (`avc1.64001f,mp4a.40.2`); omitted
    /// when empty.
    pub codecs: String,
    /// `RESOLUTION` in pixels (width, height), for video.
    pub resolution: Option<(u32, u32)>,
    /// `FRAME-RATE` as a fraction (num, den), written with three decimals.
    pub frame_rate: Option<(u32, u32)>,
    /// `AUDIO`: the `GROUP-ID` of the audio renditions to play with this variant;
    /// must name an audio group of the playlist.
    pub audio: Option<String>,
}

impl Variant {
    /// A variant at `uri` with peak `bandwidth` (bits/s) and `codecs`.
    pub fn new(uri: impl Into<String>, bandwidth: u64, codecs: impl Into<String>) -> Self {
        Variant {
            uri: uri.into(),
            bandwidth,
            average_bandwidth: None,
            codecs: codecs.into(),
            resolution: None,
            frame_rate: None,
            audio: None,
        }
    }

    fn write(&self, out: &mut String) -> Result<()> {
        tags::check_uri(&self.uri)?;
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", self.bandwidth);
        if let Some(avg) = self.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
        }
        if !self.codecs.is_empty() {
            out.push_str(",CODECS=");
            tags::quoted(out, &self.codecs)?;
        }
        if let Some((w, h)) = self.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some((num, den)) = self.frame_rate {
            let _ = write!(out, ",FRAME-RATE={}", tags::ratio_3(num, den)?);
        }
        if let Some(group) = &self.audio {
            out.push_str(",AUDIO=");
            tags::quoted(out, group)?;
        }
        out.push('\n');
        out.push_str(&self.uri);
        out.push('\n');
        Ok(())
    }
}

/// A multivariant ("master") playlist (RFC 8216bis §4.4.6): renditions, then variants.
///
/// ```
/// use strom::package::hls::{MultivariantPlaylist, Rendition, Variant};
///
/// let mut mv = MultivariantPlaylist::new();
/// let mut en = Rendition::audio("aac", "English", Some("audio/en.m3u8".into()));
/// en.language = Some("en".into());
/// (en.default, en.autoselect) = (true, true);
/// mv.renditions.push(en);
/// let mut v = Variant::new("720p.m3u8", 2_500_000, "avc1.64001f,mp4a.40.2");
/// v.resolution = Some((1280, 720));
/// v.audio = Some("aac".into());
/// mv.variants.push(v);
/// assert_eq!(
///     mv.write().unwrap(),
///     "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
///      #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"en\",NAME=\"English\",\
///      DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/en.m3u8\"\n\
///      #EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS=\"avc1.64001f,mp4a.40.2\",\
///      RESOLUTION=1280x720,AUDIO=\"aac\"\n720p.m3u8\n"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MultivariantPlaylist {
    /// Writes `EXT-X-INDEPENDENT-SEGMENTS` (§4.4.2.1): it then applies to every media
    /// playlist. Default: `true` with [`MultivariantPlaylist::new`].
    pub independent_segments: bool,
    /// `EXT-X-MEDIA` renditions, written in order before the variants.
    pub renditions: Vec<Rendition>,
    /// `EXT-X-STREAM-INF` variants, in order (clients usually start with the first).
    pub variants: Vec<Variant>,
    /// `EXT-X-SESSION-KEY` tags (§4.4.6.5): keys of the media playlists, announced so
    /// a client can load them before playback. Not `METHOD=NONE`, no two alike. A
    /// `KEYFORMAT` or `IV` makes the playlist state the `EXT-X-VERSION` it needs (5
    /// or 2); without session keys no version is written. Default: none.
    pub session_keys: Vec<Key>,
}

impl MultivariantPlaylist {
    /// An empty playlist with independent segments.
    pub fn new() -> Self {
        MultivariantPlaylist {
            independent_segments: true,
            ..MultivariantPlaylist::default()
        }
    }

    /// The playlist text, lines ending in `\n`.
    ///
    /// Errors: [`Error::usage`] when there is no variant, a quoted string contains
    /// `"`, CR or LF, a URI is not one non-empty line, a rendition lacks a group or
    /// name, a group has two renditions of the same name or two defaults, a default
    /// is not autoselect (§4.4.6.1.1), a variant's `AUDIO` names no audio group
    /// (§4.4.6.2.1), a frame rate has a zero denominator, or a session key is
    /// invalid ([`Key::to_tag`]), `METHOD=NONE` or a duplicate.
    pub fn write(&self) -> Result<String> {
        if self.variants.is_empty() {
            return Err(Error::usage("multivariant playlist without variants"));
        }
        for (i, r) in self.renditions.iter().enumerate() {
            for other in &self.renditions[..i] {
                if other.kind == r.kind && other.group_id == r.group_id {
                    if other.name == r.name {
                        return Err(Error::usage("two renditions of a group share a NAME"));
                    }
                    if other.default && r.default {
                        return Err(Error::usage("two renditions of a group are DEFAULT"));
                    }
                }
            }
        }
        let mut out =
            String::with_capacity(64 + 160 * (self.renditions.len() + self.variants.len()));
        out.push_str("#EXTM3U\n");
        let version = self
            .session_keys
            .iter()
            .map(Key::version)
            .max()
            .unwrap_or(1);
        if version > 1 {
            let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for (i, k) in self.session_keys.iter().enumerate() {
            if k.method == KeyMethod::None {
                return Err(Error::usage("EXT-X-SESSION-KEY with METHOD=NONE"));
            }
            if self.session_keys[..i].contains(k) {
                return Err(Error::usage("two identical EXT-X-SESSION-KEY tags"));
            }
            k.write(&mut out, "EXT-X-SESSION-KEY")
                .map_err(|e| e.context("EXT-X-SESSION-KEY"))?;
        }
        for r in &self.renditions {
            r.write(&mut out).map_err(|e| e.context("EXT-X-MEDIA"))?;
        }
        for v in &self.variants {
            if let Some(group) = &v.audio {
                let known = self
                    .renditions
                    .iter()
                    .any(|r| r.kind == RenditionType::Audio && &r.group_id == group);
                if !known {
                    return Err(Error::usage(
                        "variant AUDIO group has no EXT-X-MEDIA TYPE=AUDIO",
                    ));
                }
            }
            v.write(&mut out)
                .map_err(|e| e.context("EXT-X-STREAM-INF"))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn sample() -> MultivariantPlaylist {
        let mut mv = MultivariantPlaylist::new();
        let mut en = Rendition::audio("aac", "English", Some("a/en.m3u8".into()));
        en.language = Some("en".into());
        en.default = true;
        en.autoselect = true;
        en.channels = Some(2);
        let mut fr = Rendition::audio("aac", "Français", Some("a/fr.m3u8".into()));
        fr.language = Some("fr".into());
        fr.autoselect = true;
        mv.renditions = vec![en, fr];
        let mut hi = Variant::new("v/720p.m3u8", 2_800_001, "avc1.64001f,mp4a.40.2");
        hi.average_bandwidth = Some(2_400_000);
        hi.resolution = Some((1280, 720));
        hi.frame_rate = Some((30_000, 1001));
        hi.audio = Some("aac".into());
        let mut lo = Variant::new("v/240p.m3u8", 400_000, "avc1.42c00d,mp4a.40.2");
        lo.resolution = Some((320, 240));
        lo.frame_rate = Some((25, 1));
        lo.audio = Some("aac".into());
        mv.variants = vec![hi, lo];
        mv
    }

    #[test]
    fn golden_multivariant() {
        let text = sample().write().unwrap();
        assert_eq!(
            text,
            r#"#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="en",NAME="English",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="a/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="fr",NAME="Français",DEFAULT=NO,AUTOSELECT=YES,URI="a/fr.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2800001,AVERAGE-BANDWIDTH=2400000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO="aac"
v/720p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=400000,CODECS="avc1.42c00d,mp4a.40.2",RESOLUTION=320x240,FRAME-RATE=25.000,AUDIO="aac"
v/240p.m3u8
"#
        );
        let p = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("m3u8-rs parses it");
        assert!(p.independent_segments);
        assert_eq!(p.alternatives.len(), 2);
        let en = &p.alternatives[0];
        assert_eq!(en.media_type, m3u8_rs::AlternativeMediaType::Audio);
        assert_eq!((en.group_id.as_str(), en.name.as_str()), ("aac", "English"));
        assert_eq!(en.language.as_deref(), Some("en"));
        assert!(en.default && en.autoselect);
        assert_eq!(en.channels.as_deref(), Some("2"));
        assert_eq!(en.uri.as_deref(), Some("a/en.m3u8"));
        assert!(!p.alternatives[1].default);
        assert_eq!(p.variants.len(), 2);
        let v = &p.variants[0];
        assert_eq!(v.uri, "v/720p.m3u8");
        assert_eq!(
            (v.bandwidth, v.average_bandwidth),
            (2_800_001, Some(2_400_000))
        );
        assert_eq!(v.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
        let r = v.resolution.unwrap();
        assert_eq!((r.width, r.height), (1280, 720));
        assert_eq!(v.frame_rate, Some(29.97));
        assert_eq!(v.audio.as_deref(), Some("aac"));
    }

    #[test]
    fn session_keys() {
        use crate::package::hls::{KEYFORMAT_FAIRPLAY, KEYFORMAT_WIDEVINE};
        let mut mv = sample();
        mv.session_keys = vec![
            Key::new(KeyMethod::SampleAes, "skd://asset-1")
                .with_keyformat(KEYFORMAT_FAIRPLAY, &[1]),
            Key::new(KeyMethod::SampleAes, "data:text/plain;base64,AAAA")
                .with_keyformat(KEYFORMAT_WIDEVINE, &[]),
        ];
        let text = mv.write().unwrap();
        assert!(text.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:5\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://asset-1\",\
             KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\"\n\
             #EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,AAAA\",\
             KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\"\n#EXT-X-MEDIA:"
        ));
        let p = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("m3u8-rs parses it");
        assert_eq!(p.version, Some(5));
        assert_eq!(p.session_key.len(), 2);
        assert_eq!(p.session_key[0].0.uri.as_deref(), Some("skd://asset-1"));
        assert_eq!(
            p.session_key[1].0.keyformat.as_deref(),
            Some(KEYFORMAT_WIDEVINE)
        );
        assert_eq!(p.variants.len(), 2);
        // An identity key with an IV needs version 2 only.
        mv.session_keys =
            vec![Key::new(KeyMethod::Aes128, "k.bin").with_iv(crate::crypto::Iv::from_sequence(1))];
        assert!(mv
            .write()
            .unwrap()
            .starts_with("#EXTM3U\n#EXT-X-VERSION:2\n"));
        for bad in [
            vec![Key::none()],
            vec![
                Key::new(KeyMethod::Aes128, "a"),
                Key::new(KeyMethod::Aes128, "a"),
            ],
            vec![Key::new(KeyMethod::Aes128, "a\nb")],
        ] {
            mv.session_keys = bad;
            assert_eq!(mv.write().unwrap_err().kind(), ErrorKind::Usage);
        }
    }

    #[test]
    fn rule_violations_are_usage_errors() {
        let cases: Vec<fn(&mut MultivariantPlaylist)> = vec![
            |m| m.variants.clear(),
            |m| m.variants[0].codecs = "avc1\"".into(),
            |m| m.variants[0].uri = "a\nb".into(),
            |m| m.variants[0].audio = Some("missing".into()),
            |m| m.variants[0].frame_rate = Some((25, 0)),
            |m| m.renditions[0].name = "a\rb".into(),
            |m| m.renditions[0].group_id.clear(),
            |m| m.renditions[0].autoselect = false,
            |m| m.renditions[1].name = "English".into(),
            |m| m.renditions[1].default = true,
            |m| m.renditions[1].uri = Some(String::new()),
            |m| {
                m.renditions
                    .iter_mut()
                    .for_each(|r| r.kind = RenditionType::Video)
            },
        ];
        for (i, break_it) in cases.iter().enumerate() {
            let mut mv = sample();
            break_it(&mut mv);
            assert_eq!(mv.write().unwrap_err().kind(), ErrorKind::Usage, "case {i}");
        }
    }
}
