//! MPEG-DASH (ISO/IEC 23009-1): the Media Presentation Description.
//!
//! An in-house MPD model and XML writer, in the style of [`crate::package::hls`]: the
//! model is plain data and [`Mpd::write`] returns the XML text or an
//! [`Error::usage`](crate::Error::usage) when the data would break a rule of the
//! specification. Durations come from exact [`Timestamp`](crate::time::Timestamp)s and
//! are formatted from integer milliseconds; dates are Unix milliseconds converted with
//! integer calendar arithmetic.
//!
//! * [`Mpd`] (§5.3.1): static (VOD) or dynamic (live) [`MpdType`], one or more
//!   [`Period`]s (§5.3.2; several for ads inserted as Periods), `UTCTiming` (§5.8.4.11).
//! * [`AdaptationSet`] (§5.3.3) with [`Role`]s and [`Representation`]s (§5.3.5).
//! * [`SegmentTemplate`] (§5.3.9.4) with a run-length compressed [`SegmentTimeline`]
//!   (§5.3.9.6), addressing CMAF segments of the
//!   [`Fmp4Writer`](crate::container::fmp4::Fmp4Writer) by `$Number$` or `$Time$`.
//! * Events (§5.10): the Period's [`EventStream`]s of [`DashEvent`]s (SCTE-35 cues as
//!   [`SCHEME_SCTE35_XML_BIN`], SCTE 214-1 §6.7.4) and the [`InbandEventStream`]s of an
//!   AdaptationSet announcing `emsg` boxes in its segments ([`scte35_emsg`] builds one
//!   for a cue).
//!
//! ```
//! use strom::package::dash::{AdaptationSet, ContentType, Mpd, MpdType, Representation,
//!     Role, SegmentTemplate};
//! use strom::time::{Timescale, Timestamp};
//!
//! let mut template = SegmentTemplate::new(Timescale::new(12_800).unwrap());
//! for n in 0..3 {
//!     template.timeline.push(n * 25_600, 25_600).unwrap(); // 2 s segments
//! }
//! let mut rep = Representation::new("video", 600_000, "avc1.64001e", template);
//! rep.resolution = Some((640, 360));
//! rep.frame_rate = Some((25, 1));
//! let mut set = AdaptationSet::new(0, ContentType::Video).with_role(Role::Main);
//! set.representations.push(rep);
//!
//! let mut mpd = Mpd::new(MpdType::Static {
//!     media_presentation_duration: Timestamp::from_secs(6),
//! });
//! mpd.period_mut().adaptation_sets.push(set);
//! let xml = mpd.write().unwrap();
//! assert!(xml.contains(r#"type="static" mediaPresentationDuration="PT6S""#));
//! assert!(xml.contains(r#"<S t="0" d="25600" r="2"/>"#));
//! ```

mod events;
mod mpd;
mod timeline;
mod xml;

pub use events::{
    scte35_emsg, DashEvent, EventMessage, EventStream, InbandEventStream, SCHEME_SCTE35_BIN,
    SCHEME_SCTE35_XML_BIN, SCTE35_NAMESPACE,
};
pub use mpd::{
    AdaptationSet, ContentProtection, ContentType, Mpd, MpdType, Period, Representation, Role,
    SegmentTemplate, AUDIO_CHANNEL_SCHEME, CENC_NAMESPACE, DASHIF_NAMESPACE, MP4_PROTECTION_SCHEME,
    PROFILE_CMAF, PROFILE_ISOFF_LIVE, ROLE_SCHEME, UTC_TIMING_HTTP_ISO,
};
pub use timeline::{SegmentTimeline, TimelineEntry};
