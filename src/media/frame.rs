use bytes::Bytes;

use super::TrackId;
use crate::time::Timestamp;

/// Per-frame flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameFlags(u8);

impl FrameFlags {
    /// No flags.
    pub const NONE: FrameFlags = FrameFlags(0);
    /// A random access point: an IDR (H.264), IRAP (H.265), or any audio frame.
    pub const KEYFRAME: FrameFlags = FrameFlags(1);
    /// Not referenced by other frames (may be dropped under load).
    pub const DISPOSABLE: FrameFlags = FrameFlags(2);
    /// The payload was transformed in place by the host as it was read (such as
    /// encrypted by [`crate::package::VodPackager::encrypt_in_place`]): set by
    /// [`crate::container::mp4::Mp4Demuxer::supply_transformed`] on the frames of the
    /// samples it listed ([`crate::container::mp4::Mp4Demuxer::read_samples`]).
    pub const TRANSFORMED: FrameFlags = FrameFlags(4);
    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: FrameFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Both sets of flags.
    #[must_use]
    pub const fn union(self, other: FrameFlags) -> FrameFlags {
        FrameFlags(self.0 | other.0)
    }
    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
}

/// One access unit of one track.
///
/// `data` is in canonical form: 4-byte length-prefixed NAL units for video, a raw
/// frame for audio. `dts` and `pts` are unwrapped 64-bit times in the track's timescale.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Frame {
    /// The track this frame belongs to.
    pub track: TrackId,
    /// Decode time.
    pub dts: Timestamp,
    /// Presentation time (equal to `dts` for audio and streams without B-frames).
    pub pts: Timestamp,
    /// Duration, if the container states it (MP4 `stts`); `None` when only the next
    /// frame's `dts` will tell.
    pub duration: Option<Timestamp>,
    /// Keyframe and other flags.
    pub flags: FrameFlags,
    /// The payload, in canonical form.
    pub data: Bytes,
}

impl Frame {
    /// A frame with no flags and unknown duration.
    pub fn new(track: TrackId, dts: Timestamp, pts: Timestamp, data: Bytes) -> Self {
        Frame {
            track,
            dts,
            pts,
            duration: None,
            flags: FrameFlags::NONE,
            data,
        }
    }
    /// Sets the flags (builder style).
    #[must_use]
    pub fn with_flags(mut self, flags: FrameFlags) -> Self {
        self.flags = flags;
        self
    }
    /// Sets the duration (builder style).
    #[must_use]
    pub fn with_duration(mut self, d: Timestamp) -> Self {
        self.duration = Some(d);
        self
    }
    /// Whether this is a random access point.
    pub fn is_keyframe(&self) -> bool {
        self.flags.contains(FrameFlags::KEYFRAME)
    }
    /// `pts - dts` in the dts timescale.
    pub fn composition_offset(&self) -> Timestamp {
        self.pts.sub(self.dts)
    }
}
