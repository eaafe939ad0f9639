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
///
/// Every ingest path produces this one model: a TS input's SCTE-35 PID, an RTMP or FLV
/// `onCuePoint` data message and an operator's cue request all become an
/// [`Event::Cue`] carrying a `SpliceCue`. `raw` keeps the original
/// `splice_info_section` for pass-through into manifests and `emsg` boxes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SpliceCue {
    /// Splice event id (SCTE 35 `splice_event_id` or `segmentation_event_id`) or a
    /// host-assigned id.
    pub id: u32,
    /// Start or end of a break.
    pub kind: CueKind,
    /// When the splice should happen, on the stream's media timeline (the requested
    /// time; the splicer moves the cut to the first keyframe at or after it).
    pub at: Timestamp,
    /// Planned break duration, if signalled.
    pub duration: Option<Timestamp>,
    /// The original `splice_info_section` bytes, for pass-through (may be empty).
    pub raw: Bytes,
    /// SCTE 35 `segmentation_type_id` when the cue came from a segmentation
    /// descriptor (0x34 provider placement opportunity start, 0x30 provider
    /// advertisement start...), else `None`.
    pub segmentation_type: Option<u8>,
    /// `splice_event_cancel_indicator` (or `segmentation_event_cancel_indicator`): the
    /// earlier cue with this `id` is withdrawn.
    pub cancel: bool,
    /// The cue asked for an immediate splice (no splice time): `at` is when it arrived.
    pub immediate: bool,
    /// Set by the splicer once the cut is placed: the presentation time of the
    /// keyframe where the segment boundary is (at or after `at`).
    pub cut_at: Option<Timestamp>,
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
            segmentation_type: None,
            cancel: false,
            immediate: false,
            cut_at: None,
        }
    }

    /// The same cue carrying the original `splice_info_section`.
    pub fn with_raw(mut self, raw: Bytes) -> Self {
        self.raw = raw;
        self
    }

    /// The same cue with a SCTE 35 `segmentation_type_id`.
    pub fn with_segmentation_type(mut self, segmentation_type: u8) -> Self {
        self.segmentation_type = Some(segmentation_type);
        self
    }

    /// The same cue marked as a cancellation of the earlier cue with its id.
    pub fn cancelled(mut self) -> Self {
        self.cancel = true;
        self
    }

    /// The same cue marked as an immediate splice.
    pub fn immediate(mut self) -> Self {
        self.immediate = true;
        self
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
