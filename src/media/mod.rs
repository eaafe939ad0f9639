//! The pipeline's data model: [`Item`]s are [`Frame`]s and [`Event`]s, in order.
//!
//! Payloads have one canonical form everywhere inside the pipeline:
//! video is a sequence of NAL units, each prefixed by a 4-byte big-endian length
//! (whatever the input's `lengthSizeMinusOne` was), audio is a raw frame (AAC without
//! ADTS). Writers convert at the edge (Annex B with AUD, ADTS), once.
//!
//! ```
//! use bytes::Bytes;
//! use strom::media::{Frame, FrameFlags, Item};
//! use strom::time::Timestamp;
//! let f = Frame::new(1, Timestamp::from_millis(40), Timestamp::from_millis(80), Bytes::from_static(b"\0\0\0\x01\x65"))
//!     .with_flags(FrameFlags::KEYFRAME);
//! assert!(f.is_keyframe());
//! assert_eq!(f.composition_offset().ticks(), 40);
//! let item = Item::Frame(f);
//! assert!(item.as_frame().is_some());
//! ```

mod codec;
mod event;
mod frame;

pub use codec::{AacConfig, CodecConfig, H264Config, H265Config, OpusConfig};
pub use event::{CueKind, Event, SpliceCue};
pub use frame::{Frame, FrameFlags};

use crate::time::Timescale;

/// Identifies a track within one stream (FLV: 1 = video, 2 = audio; MP4: track_ID).
pub type TrackId = u32;

/// Broad kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaKind {
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Timed data (captions, metadata).
    Data,
}

/// Everything a writer needs to know about a track before its first frame.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrackInfo {
    /// Track id, unique within the stream.
    pub id: TrackId,
    /// Video, audio or data.
    pub kind: MediaKind,
    /// Timescale of this track's frame timestamps.
    pub timescale: Timescale,
    /// Decoder configuration.
    pub config: CodecConfig,
    /// ISO 639-2/T language code, if known (`"eng"`, `"fra"`).
    pub language: Option<String>,
    /// Human-readable name, if known.
    pub name: Option<String>,
    /// Nominal bitrate in bits per second, if the input declares one.
    pub bitrate: Option<u32>,
}

impl TrackInfo {
    /// A track of `config`'s media kind.
    pub fn new(id: TrackId, timescale: Timescale, config: CodecConfig) -> Self {
        TrackInfo {
            id,
            kind: config.kind(),
            timescale,
            config,
            language: None,
            name: None,
            bitrate: None,
        }
    }
    /// Sets the language (builder style).
    #[must_use]
    pub fn with_language(mut self, lang: impl Into<String>) -> Self {
        self.language = Some(lang.into());
        self
    }
}

/// One element of the frame stream: a frame or an in-order event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Item {
    /// A media frame.
    Frame(Frame),
    /// An event in order with the frames (track change, discontinuity, cue, end).
    Event(Event),
}

impl Item {
    /// The frame, if this is one.
    pub fn as_frame(&self) -> Option<&Frame> {
        match self {
            Item::Frame(f) => Some(f),
            Item::Event(_) => None,
        }
    }
    /// The event, if this is one.
    pub fn as_event(&self) -> Option<&Event> {
        match self {
            Item::Event(e) => Some(e),
            Item::Frame(_) => None,
        }
    }
}

impl From<Frame> for Item {
    fn from(f: Frame) -> Self {
        Item::Frame(f)
    }
}
impl From<Event> for Item {
    fn from(e: Event) -> Self {
        Item::Event(e)
    }
}
