//! [`Segment`]: what the segmenter emits and segment writers consume.

use crate::media::{Event, Frame, TrackInfo};
use crate::time::Timestamp;

/// A run of frames that starts at a keyframe of the reference track (video if any),
/// ready to be written as one media segment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Segment {
    /// Sequence number, from 0, increasing by one per segment.
    pub sequence: u64,
    /// Presentation time of the segment's first reference-track keyframe (its earliest
    /// presentation time for a closed GOP).
    pub start: Timestamp,
    /// Exact duration: next segment's start minus this start (for the last segment,
    /// last frame's end). In the reference track's timescale.
    pub duration: Timestamp,
    /// The segment follows a discontinuity or track change: playlists mark it.
    pub discontinuity: bool,
    /// The tracks present, as configured for this segment.
    pub tracks: Vec<TrackInfo>,
    /// Frames in decode (arrival) order, all tracks interleaved.
    pub frames: Vec<Frame>,
    /// Events that arrived inside this segment (cues, data), in order; writers may use them.
    pub events: Vec<Event>,
}

impl Segment {
    /// Total payload bytes of the frames.
    pub fn payload_len(&self) -> usize {
        self.frames.iter().map(|f| f.data.len()).sum()
    }
}
