use bytes::Bytes;

use super::{TrackId, TrackInfo};
use crate::time::Timestamp;

/// Whether a cue starts or ends an ad break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CueKind {
    /// Out of network: the break starts.
    Out,
    /// Back to network: the break ends.
    In,
    /// Any other signal (kept for pass-through).
    Other,
}

/// A splice point signalled in the stream (SCTE-35 or an equivalent marker).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SpliceCue {
    /// Splice event id (SCTE 35 `splice_event_id`) or a host-assigned id.
    pub id: u32,
    /// Start or end of a break.
    pub kind: CueKind,
    /// When the splice happens, in media time.
    pub at: Timestamp,
    /// Planned break duration, if signalled.
    pub duration: Option<Timestamp>,
    /// The original `splice_info_section` bytes, for pass-through (may be empty).
    pub raw: Bytes,
}

impl SpliceCue {
    /// A cue without original bytes.
    pub fn new(id: u32, kind: CueKind, at: Timestamp, duration: Option<Timestamp>) -> Self {
        SpliceCue {
            id,
            kind,
            at,
            duration,
            raw: Bytes::new(),
        }
    }
}

/// Something that happens in the stream, in order with its frames.
///
/// Stages forward events they do not consume, unchanged and in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A track appears. Comes before its first frame.
    TrackAdded(TrackInfo),
    /// A track's configuration changed (new SPS, new sample rate); frames after this
    /// event use the new configuration. Segmenters cut here.
    TrackChanged(TrackInfo),
    /// Timestamps jump (or a publisher reconnected): what follows is not continuous
    /// with what came before. `track` is `None` when it applies to all tracks.
    Discontinuity {
        /// The affected track, or all tracks.
        track: Option<TrackId>,
    },
    /// An ad marker or other splice signal.
    Cue(SpliceCue),
    /// A timed data message the stage did not interpret (for example an FLV script
    /// tag other than `onMetaData`): `name` is the handler name, `payload` the raw body.
    Data {
        /// When it occurs.
        at: Timestamp,
        /// Message name (`onCuePoint`, `onTextData`...).
        name: String,
        /// Undecoded body (AMF0 for FLV).
        payload: Bytes,
    },
    /// No more frames will come.
    EndOfStream,
}
