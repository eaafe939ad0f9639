//! [`Mpd`]: the Media Presentation Description (ISO/IEC 23009-1 §5.3), its
//! [`Period`]s, AdaptationSets, Representations and SegmentTemplates.

use std::collections::HashSet;

use super::events::{EventStream, InbandEventStream, SCTE35_NAMESPACE};
use super::timeline::SegmentTimeline;
use super::xml;
use crate::container::fmp4::PsshBox;
use crate::crypto::{base64, KeyId, Scheme, CLEARKEY_SYSTEM_ID};
use crate::error::{Error, Result};
use crate::media::{CodecConfig, MediaKind, TrackInfo};
use crate::time::{Timescale, Timestamp};

/// The ISO live profile (ISO/IEC 23009-1 §8.4): SegmentTemplate, segments of the
/// ISO BMFF live format.
pub const PROFILE_ISOFF_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
/// The CMAF profile (ISO/IEC 23009-1 §8.12): every segment is a CMAF fragment, as the
/// [`crate::container::fmp4::Fmp4Writer`] writes them.
pub const PROFILE_CMAF: &str = "urn:mpeg:dash:profile:cmaf:2019";
/// `UTCTiming` scheme for an HTTP GET returning an ISO 8601 date (ISO/IEC 23009-1
/// §5.8.5.7).
pub const UTC_TIMING_HTTP_ISO: &str = "urn:mpeg:dash:utc:http-iso:2014";
/// `Role` scheme of ISO/IEC 23009-1 §5.8.5.5.
pub const ROLE_SCHEME: &str = "urn:mpeg:dash:role:2011";
/// `AudioChannelConfiguration` scheme carrying a channel count (ISO/IEC 23009-1
/// §5.8.5.4, the scheme of ISO/IEC 23003-3).
pub const AUDIO_CHANNEL_SCHEME: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";

/// `ContentProtection` scheme saying which CENC scheme protects the content (ISO/IEC
/// 23009-1 §5.8.5.2), its value `cenc` or `cbcs`.
pub const MP4_PROTECTION_SCHEME: &str = "urn:mpeg:dash:mp4protection:2011";
/// Namespace of `cenc:default_KID` and `cenc:pssh` (ISO/IEC 23001-7 §11.2).
pub const CENC_NAMESPACE: &str = "urn:mpeg:cenc:2013";
/// Namespace of `dashif:Laurl`, the licence server URL (DASH-IF IOP, Content
/// Protection and Security §6.2).
pub const DASHIF_NAMESPACE: &str = "https://dashif.org/CPS";

/// Static (on demand) or dynamic (live) presentation: `MPD@type` and the attributes
/// each type needs (ISO/IEC 23009-1 §5.3.1.2, Table 3). Dates are milliseconds since
/// the Unix epoch (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MpdType {
    /// `type="static"`: every segment exists; the presentation lasts
    /// `media_presentation_duration` (`@mediaPresentationDuration`).
    Static {
        /// The length of the presentation.
        media_presentation_duration: Timestamp,
    },
    /// `type="dynamic"`: segments appear as the live edge moves.
    Dynamic {
        /// `@availabilityStartTime`: the wall-clock time of media time 0 of the Period
        /// (Unix milliseconds). Must not change while the stream lives.
        availability_start_time: i64,
        /// `@publishTime`: when this version of the MPD was made (Unix milliseconds).
        publish_time: i64,
        /// `@minimumUpdatePeriod`: how long a client may keep this MPD before reloading.
        /// `None` once the stream has ended: no update will follow (DASH-IF IOP §4.4.3.1).
        minimum_update_period: Option<Timestamp>,
        /// `@mediaPresentationDuration`: set when the stream has ended, to the end of its
        /// last segment after the Period start.
        media_presentation_duration: Option<Timestamp>,
        /// `@timeShiftBufferDepth`: how far behind the live edge segments stay available.
        time_shift_buffer_depth: Option<Timestamp>,
        /// `@suggestedPresentationDelay`: how far behind the live edge players should play.
        suggested_presentation_delay: Option<Timestamp>,
    },
}

/// `AdaptationSet@contentType` (ISO/IEC 23009-1 §5.3.3.2), which also chooses `@mimeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentType {
    /// `video`, `video/mp4`.
    Video,
    /// `audio`, `audio/mp4`.
    Audio,
}

impl ContentType {
    /// The `@contentType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Video => "video",
            ContentType::Audio => "audio",
        }
    }
    /// The `@mimeType` of ISO BMFF segments of this type (RFC 4337).
    pub fn mime_type(self) -> &'static str {
        match self {
            ContentType::Video => "video/mp4",
            ContentType::Audio => "audio/mp4",
        }
    }
}

/// A `Role` of the `urn:mpeg:dash:role:2011` scheme (ISO/IEC 23009-1 §5.8.5.5, Table 34).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// `main`: the preferred content (the original language).
    Main,
    /// `alternate`: an alternative to the main content.
    Alternate,
    /// `commentary`: commentary on the main content.
    Commentary,
    /// `dub`: a translation of the main content (an interpreted language).
    Dub,
    /// `supplementary`: content complementing the main content.
    Supplementary,
    /// `description`: audio description.
    Description,
}

impl Role {
    /// The `Role@value`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Alternate => "alternate",
            Role::Commentary => "commentary",
            Role::Dub => "dub",
            Role::Supplementary => "supplementary",
            Role::Description => "description",
        }
    }
}

/// A `SegmentTemplate` (ISO/IEC 23009-1 §5.3.9.4) with its `SegmentTimeline`.
///
/// Templates may use `$RepresentationID$`, `$Number$`, `$Time$`, `$Bandwidth$` (with an
/// optional `%0Nd` width) and `$$` (§5.3.9.4.4, Table 16). `media` must hold `$Number$`
/// or `$Time$` (but not both); `initialization` must hold neither.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentTemplate {
    /// `@timescale`: ticks per second of the timeline and of the segments' `tfdt`.
    pub timescale: Timescale,
    /// `@initialization`. Default: `$RepresentationID$/init.mp4`.
    pub initialization: String,
    /// `@media`. Default: `$RepresentationID$/$Number$.m4s`.
    pub media: String,
    /// `@startNumber`: the `$Number$` of the first segment in the timeline. Default: 1.
    pub start_number: u64,
    /// `@presentationTimeOffset`: the media time of the Period start, in ticks.
    /// Written when not zero. Default: 0.
    pub presentation_time_offset: u64,
    /// The segments: start times are the `tfdt` of each segment, in `timescale` ticks.
    pub timeline: SegmentTimeline,
}

impl SegmentTemplate {
    /// A template of `timescale` with the default paths, number 1 first, no segments.
    pub fn new(timescale: Timescale) -> Self {
        SegmentTemplate {
            timescale,
            initialization: "$RepresentationID$/init.mp4".to_string(),
            media: "$RepresentationID$/$Number$.m4s".to_string(),
            start_number: 1,
            presentation_time_offset: 0,
            timeline: SegmentTimeline::new(),
        }
    }

    /// Sets `@initialization` and `@media` (builder style).
    #[must_use]
    pub fn with_paths(
        mut self,
        initialization: impl Into<String>,
        media: impl Into<String>,
    ) -> Self {
        self.initialization = initialization.into();
        self.media = media.into();
        self
    }

    /// Checks the templates: identifiers of Table 16 only, `$` balanced, `media`
    /// addressing segments by exactly one of `$Number$` or `$Time$`.
    pub fn validate(&self) -> Result<()> {
        let init = identifiers(&self.initialization)
            .map_err(|e| e.context("SegmentTemplate@initialization"))?;
        if init.iter().any(|i| *i == "Number" || *i == "Time") {
            return Err(Error::usage(
                "SegmentTemplate@initialization cannot use $Number$ or $Time$",
            ));
        }
        let media = identifiers(&self.media).map_err(|e| e.context("SegmentTemplate@media"))?;
        let number = media.contains(&"Number");
        let time = media.contains(&"Time");
        if number == time {
            return Err(Error::usage(
                "SegmentTemplate@media must use exactly one of $Number$ and $Time$",
            ));
        }
        Ok(())
    }
}

/// The identifiers of a template string (`$Name$` or `$Name%0Nd$`; `$$` is a literal).
fn identifiers(template: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('$') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('$') else {
            return Err(Error::usage("template has an unclosed '$'"));
        };
        let body = &after[..close];
        rest = &after[close + 1..];
        if body.is_empty() {
            continue; // "$$"
        }
        let (name, format) = match body.split_once('%') {
            Some((n, f)) => (n, Some(f)),
            None => (body, None),
        };
        if !matches!(name, "RepresentationID" | "Number" | "Time" | "Bandwidth") {
            return Err(Error::usage(format!(
                "unknown template identifier ${body}$"
            )));
        }
        if let Some(f) = format {
            let ok = name != "RepresentationID"
                && f.len() >= 3
                && f.starts_with('0')
                && f.ends_with('d')
                && f[1..f.len() - 1].bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(Error::usage(format!("bad template format ${body}$")));
            }
        }
        out.push(name);
    }
    Ok(out)
}

/// A `Representation` (ISO/IEC 23009-1 §5.3.5): one encoding of the content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Representation {
    /// `@id`, unique in the Period, no whitespace; substituted for `$RepresentationID$`.
    pub id: String,
    /// `@bandwidth` in bits per second (§5.3.5.2: the rate that delivers every
    /// segment in time with `MPD@minBufferTime` buffered). Not zero.
    pub bandwidth: u64,
    /// `@codecs` (RFC 6381), e.g. `avc1.64001f`, `mp4a.40.2`.
    pub codecs: String,
    /// `@width` and `@height` in pixels (video).
    pub resolution: Option<(u32, u32)>,
    /// `@frameRate` as (num, den), written `25` or `30000/1001` (video).
    pub frame_rate: Option<(u32, u32)>,
    /// `@audioSamplingRate` in Hz (audio).
    pub audio_sampling_rate: Option<u32>,
    /// `AudioChannelConfiguration` channel count (audio).
    pub audio_channels: Option<u32>,
    /// Where the segments are and when they start.
    pub segment_template: SegmentTemplate,
}

impl Representation {
    /// A representation without the optional attributes.
    pub fn new(
        id: impl Into<String>,
        bandwidth: u64,
        codecs: impl Into<String>,
        segment_template: SegmentTemplate,
    ) -> Self {
        Representation {
            id: id.into(),
            bandwidth,
            codecs: codecs.into(),
            resolution: None,
            frame_rate: None,
            audio_sampling_rate: None,
            audio_channels: None,
            segment_template,
        }
    }

    /// A representation of `track`: codecs, picture size and frame rate, or sampling
    /// rate and channel count, from its [`CodecConfig`]. An AAC channel configuration of
    /// 0 (channels given in the bitstream) writes no `AudioChannelConfiguration`.
    pub fn for_track(
        id: impl Into<String>,
        track: &TrackInfo,
        bandwidth: u64,
        segment_template: SegmentTemplate,
    ) -> Self {
        let mut r = Representation::new(
            id,
            bandwidth,
            track.config.codecs_string(),
            segment_template,
        );
        r.resolution = track.config.resolution();
        r.frame_rate = track.config.frame_rate();
        match &track.config {
            CodecConfig::Aac(a) => {
                r.audio_sampling_rate = Some(a.sample_rate);
                r.audio_channels = (a.channel_config != 0).then_some(a.channel_config as u32);
            }
            CodecConfig::Opus(o) => {
                r.audio_sampling_rate = Some(48_000);
                r.audio_channels = Some(o.channels as u32);
            }
            _ => {}
        }
        r
    }
}

/// A `ContentProtection` descriptor (ISO/IEC 23009-1 §5.8.4.1, ISO/IEC 23001-7 §11):
/// either the scheme the content is protected with
/// ([`ContentProtection::mp4_protection`]: `cenc:default_KID` and value `cenc` or
/// `cbcs`), or one DRM system that can license it ([`ContentProtection::for_system`]:
/// `urn:uuid:` of its system id, its `pssh` box as `cenc:pssh`, and optionally the
/// licence server URL as `dashif:Laurl`).
///
/// ```
/// use strom::container::fmp4::PsshBox;
/// use strom::crypto::{KeyId, Scheme};
/// use strom::package::dash::ContentProtection;
///
/// let kid = KeyId([0x10; 16]);
/// let scheme = ContentProtection::mp4_protection(Scheme::Cenc, kid).unwrap();
/// assert_eq!(scheme.value.as_deref(), Some("cenc"));
/// let ck = ContentProtection::for_system(&PsshBox::clearkey(vec![kid]))
///     .unwrap()
///     .with_license_url("https://origin.example/licence/cam1?token=T");
/// assert_eq!(ck.scheme_id_uri, "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b");
/// assert_eq!(ck.default_kid, Some(kid));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContentProtection {
    /// `@schemeIdUri`: [`MP4_PROTECTION_SCHEME`] or `urn:uuid:` and a DRM system id.
    pub scheme_id_uri: String,
    /// `@value`: `cenc`/`cbcs` for [`MP4_PROTECTION_SCHEME`]; a system's own name
    /// (`ClearKey1.0`...) otherwise, or none.
    pub value: Option<String>,
    /// `@cenc:default_KID`, the `default_KID` of the init segments' `tenc`.
    pub default_kid: Option<KeyId>,
    /// `cenc:pssh`: a whole `pssh` box (ISO/IEC 23001-7 §8.1), written as base64.
    pub pssh: Option<Vec<u8>>,
    /// `dashif:Laurl`: where the player asks for a licence.
    pub license_url: Option<String>,
}

impl ContentProtection {
    /// The descriptor of the protection scheme: [`MP4_PROTECTION_SCHEME`], value
    /// `cenc` or `cbcs`, and `default_kid`.
    ///
    /// Errors: a scheme other than `cenc` or `cbcs` ([`Error::usage`]).
    pub fn mp4_protection(scheme: Scheme, default_kid: KeyId) -> Result<Self> {
        if !matches!(scheme, Scheme::Cenc | Scheme::Cbcs) {
            return Err(Error::usage("DASH protection takes scheme cenc or cbcs"));
        }
        Ok(ContentProtection {
            scheme_id_uri: MP4_PROTECTION_SCHEME.to_string(),
            value: Some(scheme.as_str().to_string()),
            default_kid: Some(default_kid),
            pssh: None,
            license_url: None,
        })
    }

    /// The descriptor of the DRM system of `pssh`: `urn:uuid:` and its system id, the
    /// box itself as `cenc:pssh`, its first key id as `cenc:default_KID`, and value
    /// `ClearKey1.0` for W3C Clear Key.
    ///
    /// Errors: what [`PsshBox::write`] refuses.
    pub fn for_system(pssh: &PsshBox) -> Result<Self> {
        let mut bytes = bytes::BytesMut::new();
        pssh.write(&mut bytes)?;
        Ok(ContentProtection {
            scheme_id_uri: format!("urn:uuid:{}", KeyId(pssh.system_id).uuid()),
            value: (pssh.system_id == CLEARKEY_SYSTEM_ID).then(|| "ClearKey1.0".to_string()),
            default_kid: pssh.key_ids.first().copied(),
            pssh: Some(bytes.to_vec()),
            license_url: None,
        })
    }

    /// Sets [`ContentProtection::license_url`] (builder style).
    #[must_use]
    pub fn with_license_url(mut self, url: impl Into<String>) -> Self {
        self.license_url = Some(url.into());
        self
    }

    fn write(&self, out: &mut String) -> Result<()> {
        out.push_str("      <ContentProtection");
        xml::attr(out, "schemeIdUri", &self.scheme_id_uri)?;
        if let Some(v) = &self.value {
            xml::attr(out, "value", v)?;
        }
        if let Some(kid) = &self.default_kid {
            xml::attr(out, "cenc:default_KID", &kid.uuid())?;
        }
        if self.pssh.is_none() && self.license_url.is_none() {
            out.push_str("/>\n");
            return Ok(());
        }
        out.push_str(">\n");
        if let Some(pssh) = &self.pssh {
            out.push_str("        <cenc:pssh>");
            out.push_str(&base64::standard(pssh));
            out.push_str("</cenc:pssh>\n");
        }
        if let Some(url) = &self.license_url {
            out.push_str("        <dashif:Laurl>");
            xml::escaped(out, url)?;
            out.push_str("</dashif:Laurl>\n");
        }
        out.push_str("      </ContentProtection>\n");
        Ok(())
    }
}

/// An `AdaptationSet` (ISO/IEC 23009-1 §5.3.3): interchangeable Representations of one
/// component, e.g. the video ladder or one audio language.
///
/// Written with `@segmentAlignment="true"` and `@startWithSAP="1"`: segments of the
/// [`crate::package::Segmenter`] start with a keyframe (an IDR, SAP type 1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdaptationSet {
    /// `@id`, unique in the Period.
    pub id: u32,
    /// `@contentType` and `@mimeType`.
    pub content_type: ContentType,
    /// `@lang` (RFC 5646 tag; ISO 639-2 codes such as `eng` are passed as given).
    pub lang: Option<String>,
    /// `Role` descriptors, `urn:mpeg:dash:role:2011`.
    pub roles: Vec<Role>,
    /// `ContentProtection` descriptors, in order: the scheme first
    /// ([`ContentProtection::mp4_protection`]), then one per DRM system. Default none
    /// (clear content).
    pub content_protection: Vec<ContentProtection>,
    /// `InbandEventStream` descriptors (ISO/IEC 23009-1 §5.10.3.2): the schemes of the
    /// `emsg` boxes in this set's segments, e.g. [`InbandEventStream::scte35`]. Written
    /// after the `ContentProtection`s, before the `Role`s. Default none.
    pub inband_event_streams: Vec<InbandEventStream>,
    /// The Representations; at least one.
    pub representations: Vec<Representation>,
}

impl AdaptationSet {
    /// An empty set of `content_type`.
    pub fn new(id: u32, content_type: ContentType) -> Self {
        AdaptationSet {
            id,
            content_type,
            lang: None,
            roles: Vec::new(),
            content_protection: Vec::new(),
            inband_event_streams: Vec::new(),
            representations: Vec::new(),
        }
    }

    /// A set holding `representation` of `track`: content type from the track kind,
    /// `@lang` from its language.
    ///
    /// Errors: [`Error::unsupported`] for a data track.
    pub fn for_track(id: u32, track: &TrackInfo, representation: Representation) -> Result<Self> {
        let content_type = match track.kind {
            MediaKind::Video => ContentType::Video,
            MediaKind::Audio => ContentType::Audio,
            _ => return Err(Error::unsupported("DASH AdaptationSet for a data track")),
        };
        let mut set = AdaptationSet::new(id, content_type);
        set.lang = track.language.clone();
        set.representations.push(representation);
        Ok(set)
    }

    /// Adds a role (builder style).
    #[must_use]
    pub fn with_role(mut self, role: Role) -> Self {
        self.roles.push(role);
        self
    }
}

/// A Period (ISO/IEC 23009-1 §5.3.2): a stretch of the presentation with its own
/// AdaptationSets and events. One Period is the usual case; several make a
/// multi-Period presentation, e.g. content, an inserted ad, content again (DASH-IF IOP
/// §4.3 and §5.3: server-side ad insertion as Periods).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Period {
    /// `Period@id`, unique in the MPD and stable across updates of a live MPD.
    pub id: String,
    /// `Period@start`: where the Period begins on the presentation timeline (for a
    /// dynamic MPD, counted from `availabilityStartTime`). Starts never decrease from
    /// one Period to the next.
    pub start: Timestamp,
    /// `Period@duration`; `None` when the Period lasts until the next one's start (or
    /// the end of the presentation). Default `None`.
    pub duration: Option<Timestamp>,
    /// The Period's `EventStream`s (ISO/IEC 23009-1 §5.10.2), written before its
    /// AdaptationSets; `xmlns:scte35` is declared on the root when one carries SCTE-35
    /// ([`EventStream::uses_scte35_namespace`]). Default none.
    pub event_streams: Vec<EventStream>,
    /// The AdaptationSets of the Period; at least one. Their ids, and their
    /// Representations' ids, are unique within the Period.
    pub adaptation_sets: Vec<AdaptationSet>,
}

impl Period {
    /// An empty Period `id` starting at `start`.
    ///
    /// ```
    /// use strom::package::dash::Period;
    /// use strom::time::Timestamp;
    /// let ad = Period::new("ad-1", Timestamp::from_secs(30)).with_duration(Timestamp::from_secs(15));
    /// assert_eq!(ad.duration, Some(Timestamp::from_secs(15)));
    /// ```
    pub fn new(id: impl Into<String>, start: Timestamp) -> Self {
        Period {
            id: id.into(),
            start,
            duration: None,
            event_streams: Vec::new(),
            adaptation_sets: Vec::new(),
        }
    }

    /// Sets `Period@duration`.
    pub fn with_duration(mut self, duration: Timestamp) -> Self {
        self.duration = Some(duration);
        self
    }
}

/// A Media Presentation Description (ISO/IEC 23009-1 §5.3.1): one or more [`Period`]s.
///
/// Plain data: build it, then [`Mpd::write`] returns the XML text or a typed error
/// when the data breaks a rule of the specification. [`Mpd::new`] makes one Period
/// (`id="0"`, starting at 0), reached with [`Mpd::period_mut`]. Live hosts keep one
/// `Mpd`, append to each [`SegmentTimeline`], drop old segments with
/// [`SegmentTimeline::pop_front`] (advancing `start_number`), update `publish_time` and
/// write again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mpd {
    /// Static or dynamic, with the attributes of each.
    pub mpd_type: MpdType,
    /// `@profiles`. Default: [`PROFILE_ISOFF_LIVE`] and [`PROFILE_CMAF`].
    pub profiles: Vec<String>,
    /// `@minBufferTime`. Default: 2 s.
    pub min_buffer_time: Timestamp,
    /// `@maxSegmentDuration`; when `None`, [`Mpd::write`] writes the longest segment of
    /// every timeline (rounded up to the millisecond). Default: `None`.
    pub max_segment_duration: Option<Timestamp>,
    /// `UTCTiming` with [`UTC_TIMING_HTTP_ISO`]: the URL (absolute or relative to the
    /// MPD) of an endpoint returning the current time as ISO 8601, e.g. `/time`.
    /// Default: `None` (no element; live players then trust their own clock).
    pub utc_timing: Option<String>,
    /// The Periods, in presentation order; at least one. Default: one, `id="0"`,
    /// starting at 0, empty.
    pub periods: Vec<Period>,
}

impl Mpd {
    /// An MPD of `mpd_type` with the defaults above: one empty Period `"0"` at 0.
    pub fn new(mpd_type: MpdType) -> Self {
        Mpd {
            mpd_type,
            profiles: vec![PROFILE_ISOFF_LIVE.to_string(), PROFILE_CMAF.to_string()],
            min_buffer_time: Timestamp::from_secs(2),
            max_segment_duration: None,
            utc_timing: None,
            periods: vec![Period::new("0", Timestamp::zero(Timescale::MILLIS))],
        }
    }

    /// The first Period (a single-Period MPD's only one); an empty Period `"0"` at 0 is
    /// added first when there is none.
    pub fn period_mut(&mut self) -> &mut Period {
        if self.periods.is_empty() {
            self.periods
                .push(Period::new("0", Timestamp::zero(Timescale::MILLIS)));
        }
        &mut self.periods[0]
    }

    /// The first Period, if any.
    pub fn period(&self) -> Option<&Period> {
        self.periods.first()
    }

    /// The longest segment of every timeline, rounded up to whole milliseconds.
    fn longest_segment_ms(&self) -> u64 {
        let mut longest = 0u64;
        for r in self
            .periods
            .iter()
            .flat_map(|p| &p.adaptation_sets)
            .flat_map(|a| &a.representations)
        {
            let t = &r.segment_template;
            if let Some(d) = t.timeline.max_duration() {
                let scale = t.timescale.get() as u128;
                let ms = (d as u128 * 1000).div_ceil(scale);
                longest = longest.max(ms.min(u64::MAX as u128) as u64);
            }
        }
        longest
    }

    /// The MPD as XML text (UTF-8, two-space indentation, lines ending in `\n`).
    ///
    /// Errors ([`Error::usage`]): no Period, a Period id empty or repeated, a Period
    /// starting before the one it follows, a Period without AdaptationSet, an
    /// AdaptationSet without Representation, AdaptationSet or Representation ids repeated
    /// within a Period, a Representation id
    /// that is empty or holds whitespace, a zero bandwidth, a frame rate with a zero
    /// term, an invalid template, a negative duration, a date outside years 1..=9999, a
    /// character XML cannot carry; in an [`EventStream`]: an empty scheme, a zero
    /// timescale, decreasing presentation times, duplicate or 64-bit event ids, an empty
    /// SCTE-35 section, a message that does not match the scheme (SCTE-35 binary in
    /// [`SCHEME_SCTE35_XML_BIN`](super::SCHEME_SCTE35_XML_BIN) streams only); an
    /// [`InbandEventStream`] with an empty scheme.
    pub fn write(&self) -> Result<String> {
        if self.periods.is_empty() {
            return Err(Error::usage("MPD without Period"));
        }
        let sets = self.periods.iter().flat_map(|p| &p.adaptation_sets);
        let mut out = String::with_capacity(1024 + 512 * sets.clone().count());
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str("<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"");
        if sets.clone().any(|a| !a.content_protection.is_empty()) {
            xml::attr(&mut out, "xmlns:cenc", CENC_NAMESPACE)?;
            xml::attr(&mut out, "xmlns:dashif", DASHIF_NAMESPACE)?;
        }
        if self
            .periods
            .iter()
            .flat_map(|p| &p.event_streams)
            .any(EventStream::uses_scte35_namespace)
        {
            xml::attr(&mut out, "xmlns:scte35", SCTE35_NAMESPACE)?;
        }
        xml::attr(&mut out, "profiles", &self.profiles.join(","))?;
        match &self.mpd_type {
            MpdType::Static {
                media_presentation_duration,
            } => {
                out.push_str(" type=\"static\" mediaPresentationDuration=\"");
                xml::duration(
                    &mut out,
                    *media_presentation_duration,
                    "mediaPresentationDuration",
                )?;
                out.push('"');
            }
            MpdType::Dynamic {
                availability_start_time,
                publish_time,
                minimum_update_period,
                media_presentation_duration,
                time_shift_buffer_depth,
                suggested_presentation_delay,
            } => {
                out.push_str(" type=\"dynamic\" availabilityStartTime=\"");
                xml::date_time(&mut out, *availability_start_time, "availabilityStartTime")?;
                out.push_str("\" publishTime=\"");
                xml::date_time(&mut out, *publish_time, "publishTime")?;
                out.push('"');
                if let Some(d) = minimum_update_period {
                    out.push_str(" minimumUpdatePeriod=\"");
                    xml::duration(&mut out, *d, "minimumUpdatePeriod")?;
                    out.push('"');
                }
                if let Some(d) = media_presentation_duration {
                    out.push_str(" mediaPresentationDuration=\"");
                    xml::duration(&mut out, *d, "mediaPresentationDuration")?;
                    out.push('"');
                }
                if let Some(d) = time_shift_buffer_depth {
                    out.push_str(" timeShiftBufferDepth=\"");
                    xml::duration(&mut out, *d, "timeShiftBufferDepth")?;
                    out.push('"');
                }
                if let Some(d) = suggested_presentation_delay {
                    out.push_str(" suggestedPresentationDelay=\"");
                    xml::duration(&mut out, *d, "suggestedPresentationDelay")?;
                    out.push('"');
                }
            }
        }
        out.push_str(" maxSegmentDuration=\"");
        match self.max_segment_duration {
            Some(d) => xml::duration(&mut out, d, "maxSegmentDuration")?,
            None => xml::duration_ms(&mut out, self.longest_segment_ms()),
        }
        out.push_str("\" minBufferTime=\"");
        xml::duration(&mut out, self.min_buffer_time, "minBufferTime")?;
        out.push_str("\">\n");

        let mut period_ids = HashSet::new();
        let mut previous_start: Option<Timestamp> = None;
        for period in &self.periods {
            if period.id.is_empty() || !period_ids.insert(period.id.as_str()) {
                return Err(Error::usage(format!(
                    "Period id {:?} empty or not unique",
                    period.id
                )));
            }
            if previous_start.is_some_and(|p| period.start < p) {
                return Err(Error::usage(format!(
                    "Period {} starts before the Period it follows",
                    period.id
                )));
            }
            previous_start = Some(period.start);
            write_period(&mut out, period)
                .map_err(|e| e.context(format!("Period {}", period.id)))?;
        }
        if let Some(url) = &self.utc_timing {
            out.push_str("  <UTCTiming");
            xml::attr(&mut out, "schemeIdUri", UTC_TIMING_HTTP_ISO)?;
            xml::attr(&mut out, "value", url)?;
            out.push_str("/>\n");
        }
        out.push_str("</MPD>\n");
        Ok(out)
    }
}

fn write_period(out: &mut String, period: &Period) -> Result<()> {
    if period.adaptation_sets.is_empty() {
        return Err(Error::usage("Period without AdaptationSet"));
    }
    out.push_str("  <Period");
    xml::attr(out, "id", &period.id)?;
    out.push_str(" start=\"");
    xml::duration(out, period.start, "Period@start")?;
    out.push('"');
    if let Some(d) = period.duration {
        out.push_str(" duration=\"");
        xml::duration(out, d, "Period@duration")?;
        out.push('"');
    }
    out.push_str(">\n");
    for (n, stream) in period.event_streams.iter().enumerate() {
        stream
            .write(out)
            .map_err(|e| e.context(format!("EventStream {n}")))?;
    }
    let mut set_ids = HashSet::new();
    let mut rep_ids = HashSet::new();
    for set in &period.adaptation_sets {
        if !set_ids.insert(set.id) {
            return Err(Error::usage(format!(
                "duplicate AdaptationSet id {}",
                set.id
            )));
        }
        write_adaptation_set(out, set, &mut rep_ids)
            .map_err(|e| e.context(format!("AdaptationSet {}", set.id)))?;
    }
    out.push_str("  </Period>\n");
    Ok(())
}

fn write_adaptation_set<'a>(
    out: &mut String,
    set: &'a AdaptationSet,
    rep_ids: &mut HashSet<&'a str>,
) -> Result<()> {
    if set.representations.is_empty() {
        return Err(Error::usage("AdaptationSet without Representation"));
    }
    out.push_str("    <AdaptationSet");
    xml::attr_num(out, "id", set.id);
    xml::attr(out, "contentType", set.content_type.as_str())?;
    xml::attr(out, "mimeType", set.content_type.mime_type())?;
    out.push_str(" segmentAlignment=\"true\" startWithSAP=\"1\"");
    if let Some(lang) = &set.lang {
        xml::attr(out, "lang", lang)?;
    }
    out.push_str(">\n");
    for cp in &set.content_protection {
        cp.write(out)?;
    }
    for inband in &set.inband_event_streams {
        inband.write(out)?;
    }
    for role in &set.roles {
        out.push_str("      <Role");
        xml::attr(out, "schemeIdUri", ROLE_SCHEME)?;
        xml::attr(out, "value", role.as_str())?;
        out.push_str("/>\n");
    }
    for rep in &set.representations {
        if rep.id.is_empty() || rep.id.chars().any(char::is_whitespace) {
            return Err(Error::usage("Representation id empty or with whitespace"));
        }
        if !rep_ids.insert(&rep.id) {
            return Err(Error::usage(format!(
                "duplicate Representation id {}",
                rep.id
            )));
        }
        write_representation(out, rep)
            .map_err(|e| e.context(format!("Representation {}", rep.id)))?;
    }
    out.push_str("    </AdaptationSet>\n");
    Ok(())
}

/// `@frameRate` (ISO/IEC 23009-1 §5.3.12.2 `FrameRateType`): `num` or `num/den`, reduced.
pub(crate) fn frame_rate(num: u32, den: u32) -> Result<String> {
    if num == 0 || den == 0 {
        return Err(Error::usage("frame rate with a zero term"));
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let (n, d) = (num / a, den / a);
    Ok(if d == 1 {
        n.to_string()
    } else {
        format!("{n}/{d}")
    })
}

fn write_representation(out: &mut String, rep: &Representation) -> Result<()> {
    if rep.bandwidth == 0 {
        return Err(Error::usage("Representation@bandwidth is zero"));
    }
    let t = &rep.segment_template;
    t.validate()?;
    out.push_str("      <Representation");
    xml::attr(out, "id", &rep.id)?;
    xml::attr_num(out, "bandwidth", rep.bandwidth);
    xml::attr(out, "codecs", &rep.codecs)?;
    if let Some((w, h)) = rep.resolution {
        xml::attr_num(out, "width", w);
        xml::attr_num(out, "height", h);
    }
    if let Some((n, d)) = rep.frame_rate {
        xml::attr(out, "frameRate", &frame_rate(n, d)?)?;
    }
    if let Some(hz) = rep.audio_sampling_rate {
        if hz == 0 {
            return Err(Error::usage("audio sampling rate is zero"));
        }
        xml::attr_num(out, "audioSamplingRate", hz);
    }
    out.push_str(">\n");
    if let Some(ch) = rep.audio_channels {
        out.push_str("        <AudioChannelConfiguration");
        xml::attr(out, "schemeIdUri", AUDIO_CHANNEL_SCHEME)?;
        xml::attr_num(out, "value", ch);
        out.push_str("/>\n");
    }
    out.push_str("        <SegmentTemplate");
    xml::attr_num(out, "timescale", t.timescale.get());
    xml::attr(out, "initialization", &t.initialization)?;
    xml::attr(out, "media", &t.media)?;
    xml::attr_num(out, "startNumber", t.start_number);
    if t.presentation_time_offset != 0 {
        xml::attr_num(out, "presentationTimeOffset", t.presentation_time_offset);
    }
    if t.timeline.is_empty() {
        out.push_str("/>\n");
    } else {
        out.push_str(">\n");
        t.timeline.write(out, 10);
        out.push_str("        </SegmentTemplate>\n");
    }
    out.push_str("      </Representation>\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::AacConfig;
    use crate::ErrorKind;
    use bytes::Bytes;

    fn video_set() -> AdaptationSet {
        let mut t = SegmentTemplate::new(Timescale::new(12_800).unwrap());
        t.timeline =
            SegmentTimeline::from_segments([(0, 25_600), (25_600, 25_600), (51_200, 12_800)])
                .unwrap();
        let mut rep = Representation::new("v0", 650_000, "avc1.64001e", t);
        rep.resolution = Some((640, 360));
        rep.frame_rate = Some((50, 2));
        let mut set = AdaptationSet::new(0, ContentType::Video).with_role(Role::Main);
        set.representations.push(rep);
        set
    }

    fn audio_set(id: u32, rep_id: &str, lang: &str, role: Role) -> AdaptationSet {
        let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let track = TrackInfo::new(2, Timescale::new(48_000).unwrap(), CodecConfig::Aac(aac))
            .with_language(lang);
        let mut t = SegmentTemplate::new(track.timescale).with_paths(
            "a/$RepresentationID$/init.mp4",
            "a/$RepresentationID$/$Time$.m4s",
        );
        t.timeline = SegmentTimeline::from_segments([(1024, 96_256), (97_280, 96_256)]).unwrap();
        let rep = Representation::for_track(rep_id, &track, 130_000, t);
        AdaptationSet::for_track(id, &track, rep)
            .unwrap()
            .with_role(role)
    }

    #[test]
    fn golden_static() {
        let mut mpd = Mpd::new(MpdType::Static {
            media_presentation_duration: Timestamp::new(5_000, Timescale::MILLIS),
        });
        mpd.period_mut().adaptation_sets.push(video_set());
        mpd.period_mut()
            .adaptation_sets
            .push(audio_set(1, "a-eng", "eng", Role::Main));
        assert_eq!(
            mpd.write().unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="static" mediaPresentationDuration="PT5S" maxSegmentDuration="PT2.006S" minBufferTime="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>
      <Representation id="v0" bandwidth="650000" codecs="avc1.64001e" width="640" height="360" frameRate="25">
        <SegmentTemplate timescale="12800" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="25600" r="1"/>
            <S d="12800"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="eng">
      <Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>
      <Representation id="a-eng" bandwidth="130000" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="48000" initialization="a/$RepresentationID$/init.mp4" media="a/$RepresentationID$/$Time$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="1024" d="96256" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#
        );
    }

    #[test]
    fn multi_period() {
        let mut mpd = Mpd::new(MpdType::Static {
            media_presentation_duration: Timestamp::from_secs(15),
        });
        mpd.period_mut().adaptation_sets.push(video_set());
        let mut ad = Period::new("ad-7", Timestamp::from_millis(5_000))
            .with_duration(Timestamp::from_millis(4_500));
        let mut set = video_set();
        set.representations[0].id = "v0".into(); // ids are per Period
        ad.adaptation_sets.push(set);
        mpd.periods.push(ad);
        let mut back = Period::new("1", Timestamp::from_millis(9_500));
        back.adaptation_sets.push(video_set());
        back.adaptation_sets[0].representations[0]
            .segment_template
            .presentation_time_offset = 64_000;
        mpd.periods.push(back);
        let xml = mpd.write().unwrap();
        let starts: Vec<&str> = xml
            .lines()
            .filter(|l| l.trim_start().starts_with("<Period"))
            .collect();
        assert_eq!(
            starts,
            [
                r#"  <Period id="0" start="PT0S">"#,
                r#"  <Period id="ad-7" start="PT5S" duration="PT4.5S">"#,
                r#"  <Period id="1" start="PT9.5S">"#,
            ],
            "{xml}"
        );
        assert_eq!(xml.matches("</Period>").count(), 3);
        assert!(xml.contains(r#"presentationTimeOffset="64000""#));

        let mut m = mpd.clone();
        m.periods[2].id = "ad-7".into();
        assert!(m.write().unwrap_err().to_string().contains("not unique"));
        let mut m = mpd.clone();
        m.periods[2].start = Timestamp::from_secs(1);
        assert!(m.write().unwrap_err().to_string().contains("starts before"));
        let mut m = mpd.clone();
        m.periods[1].adaptation_sets.clear();
        let e = m.write().unwrap_err().to_string();
        assert!(e.starts_with("Period ad-7: "), "{e}");
        m.periods.clear();
        assert!(m.write().is_err());
        assert_eq!(m.period_mut().id, "0");
    }

    #[test]
    fn golden_dynamic() {
        let mut mpd = Mpd::new(MpdType::Dynamic {
            availability_start_time: 1_709_164_800_000, // 2024-02-29T00:00:00Z
            publish_time: 1_709_164_862_345,
            minimum_update_period: Some(Timestamp::from_secs(2)),
            media_presentation_duration: None,
            time_shift_buffer_depth: Some(Timestamp::from_secs(30)),
            suggested_presentation_delay: Some(Timestamp::from_millis(6_500)),
        });
        mpd.profiles = vec![PROFILE_ISOFF_LIVE.to_string()];
        mpd.max_segment_duration = Some(Timestamp::from_secs(2));
        mpd.min_buffer_time = Timestamp::from_millis(1_500);
        mpd.utc_timing = Some("/time?fmt=iso&x=1".to_string());
        let mut audio = audio_set(7, "a-fra", "fra", Role::Dub);
        let t = &mut audio.representations[0].segment_template;
        t.start_number = 31;
        t.presentation_time_offset = 1024;
        assert_eq!(t.timeline.pop_front(), Some((1024, 96_256)));
        mpd.period_mut().adaptation_sets.push(audio);
        assert_eq!(
            mpd.write().unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2024-02-29T00:00:00Z" publishTime="2024-02-29T00:01:02.345Z" minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT30S" suggestedPresentationDelay="PT6.5S" maxSegmentDuration="PT2S" minBufferTime="PT1.5S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="7" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="fra">
      <Role schemeIdUri="urn:mpeg:dash:role:2011" value="dub"/>
      <Representation id="a-fra" bandwidth="130000" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="48000" initialization="a/$RepresentationID$/init.mp4" media="a/$RepresentationID$/$Time$.m4s" startNumber="31" presentationTimeOffset="1024">
          <SegmentTimeline>
            <S t="97280" d="96256"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time?fmt=iso&amp;x=1"/>
</MPD>
"#
        );
    }

    #[test]
    fn golden_events() {
        use crate::package::dash::{DashEvent, EventMessage, SCHEME_SCTE35_XML_BIN};
        let mut mpd = Mpd::new(MpdType::Static {
            media_presentation_duration: Timestamp::from_secs(5),
        });
        let mut set = video_set();
        set.inband_event_streams.push(InbandEventStream::scte35());
        set.content_protection
            .push(ContentProtection::mp4_protection(Scheme::Cenc, KeyId([0x11; 16])).unwrap());
        mpd.period_mut().adaptation_sets.push(set);
        let mut ads = EventStream::new(SCHEME_SCTE35_XML_BIN, 90_000);
        ads.events.push(
            DashEvent::new(
                4,
                180_000,
                EventMessage::Scte35Binary(Bytes::from_static(&[0xfc, 0x30, 0x00])),
            )
            .with_duration(90_000),
        );
        mpd.period_mut().event_streams.push(ads);
        let mut other = EventStream::new("urn:example:chapters", 1);
        other.value = Some("1".to_string());
        other
            .events
            .push(DashEvent::new(0, 1, EventMessage::Text("Intro".into())));
        mpd.period_mut().event_streams.push(other);
        assert_eq!(
            mpd.write().unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013" xmlns:dashif="https://dashif.org/CPS" xmlns:scte35="http://www.scte.org/schemas/35/2016" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="static" mediaPresentationDuration="PT5S" maxSegmentDuration="PT2S" minBufferTime="PT2S">
  <Period id="0" start="PT0S">
    <EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="90000">
      <Event presentationTime="180000" duration="90000" id="4">
        <scte35:Signal>
          <scte35:Binary>/DAA</scte35:Binary>
        </scte35:Signal>
      </Event>
    </EventStream>
    <EventStream schemeIdUri="urn:example:chapters" value="1" timescale="1">
      <Event presentationTime="1" id="0">Intro</Event>
    </EventStream>
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc" cenc:default_KID="11111111-1111-1111-1111-111111111111"/>
      <InbandEventStream schemeIdUri="urn:scte:scte35:2013:bin"/>
      <Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>
      <Representation id="v0" bandwidth="650000" codecs="avc1.64001e" width="640" height="360" frameRate="25">
        <SegmentTemplate timescale="12800" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="25600" r="1"/>
            <S d="12800"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#
        );
        // Without SCTE-35 events there is no scte35 namespace; errors name the stream.
        mpd.period_mut().event_streams.remove(0);
        assert!(!mpd.write().unwrap().contains("xmlns:scte35"));
        mpd.period_mut().event_streams[0].timescale = 0;
        let e = mpd.write().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Period 0: EventStream 0: usage error"),
            "{e}"
        );
    }

    #[test]
    fn frame_rates() {
        assert_eq!(frame_rate(25, 1).unwrap(), "25");
        assert_eq!(frame_rate(50, 2).unwrap(), "25");
        assert_eq!(frame_rate(30000, 1001).unwrap(), "30000/1001");
        assert_eq!(frame_rate(60000, 2002).unwrap(), "30000/1001");
        assert!(frame_rate(0, 1).is_err());
        assert!(frame_rate(25, 0).is_err());
    }

    #[test]
    fn templates() {
        let t = |init: &str, media: &str| {
            SegmentTemplate::new(Timescale::MILLIS)
                .with_paths(init, media)
                .validate()
        };
        assert!(t(
            "$RepresentationID$/init.mp4",
            "$RepresentationID$/$Number%05d$.m4s"
        )
        .is_ok());
        assert!(t("init-$Bandwidth$.mp4", "$$x$$-$Time$.m4s").is_ok());
        for (init, media) in [
            ("init.mp4", "seg.m4s"),                    // no $Number$ / $Time$
            ("init.mp4", "$Number$-$Time$.m4s"),        // both
            ("init-$Number$.mp4", "$Number$.m4s"),      // init with $Number$
            ("init.mp4", "$Number.m4s"),                // unclosed
            ("init.mp4", "$Frame$-$Number$.m4s"),       // unknown identifier
            ("init.mp4", "$Number%5d$.m4s"),            // format without leading 0
            ("$RepresentationID%02d$.mp4", "$Number$"), // no format for the id
        ] {
            let e = t(init, media).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{init} {media}");
        }
    }

    #[test]
    fn inconsistent_input_is_a_usage_error() {
        let base = || {
            let mut mpd = Mpd::new(MpdType::Static {
                media_presentation_duration: Timestamp::from_secs(5),
            });
            mpd.period_mut().adaptation_sets.push(video_set());
            mpd
        };
        assert!(base().write().is_ok());
        let mut cases: Vec<(Mpd, &str)> = Vec::new();
        cases.push((
            Mpd::new(MpdType::Static {
                media_presentation_duration: Timestamp::from_secs(1),
            }),
            "without AdaptationSet",
        ));
        let mut m = base();
        m.period_mut().adaptation_sets.push(video_set());
        cases.push((m, "duplicate AdaptationSet id 0"));
        let mut m = base();
        let mut dup = video_set();
        dup.id = 1;
        m.period_mut().adaptation_sets.push(dup);
        cases.push((m, "duplicate Representation id v0"));
        let mut m = base();
        m.period_mut().adaptation_sets[0].representations[0].id = "v 0".into();
        cases.push((m, "whitespace"));
        let mut m = base();
        m.period_mut().adaptation_sets[0].representations[0].bandwidth = 0;
        cases.push((m, "bandwidth is zero"));
        let mut m = base();
        m.period_mut().adaptation_sets[0].representations[0].frame_rate = Some((25, 0));
        cases.push((m, "zero term"));
        let mut m = base();
        m.period_mut().adaptation_sets[0].representations.clear();
        cases.push((m, "without Representation"));
        let mut m = base();
        m.period_mut().adaptation_sets[0].lang = Some("en\u{7}".into());
        cases.push((m, "XML 1.0 forbids"));
        let mut m = base();
        m.mpd_type = MpdType::Static {
            media_presentation_duration: Timestamp::from_millis(-5),
        };
        cases.push((m, "negative duration"));
        let mut m = base();
        m.mpd_type = MpdType::Dynamic {
            availability_start_time: i64::MAX,
            publish_time: 0,
            minimum_update_period: Some(Timestamp::from_secs(2)),
            media_presentation_duration: None,
            time_shift_buffer_depth: None,
            suggested_presentation_delay: None,
        };
        cases.push((m, "outside years"));
        for (mpd, needle) in cases {
            let e = mpd.write().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
        }
        // A data track has no AdaptationSet.
        let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let mut track = TrackInfo::new(3, Timescale::MILLIS, CodecConfig::Aac(aac));
        track.kind = MediaKind::Data;
        let rep =
            Representation::for_track("d", &track, 1, SegmentTemplate::new(Timescale::MILLIS));
        let e = AdaptationSet::for_track(0, &track, rep).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
}
