//! Fragmented MP4 / CMAF writer (ISO/IEC 14496-12 §8.8, ISO/IEC 23000-19): one track per
//! output, an init segment (`ftyp` + `moov`) and media segments (`styp` + `moof` + `mdat`).
//! [`Fmp4Reader`] reads them back (any number of tracks, every `tfhd`/`trun` option, and
//! whole fragmented files as FFmpeg writes them) into frames that slice the input.
//!
//! [`Fmp4Writer`] appends to a caller-owned [`BytesMut`]. Sample payloads are the
//! pipeline's canonical form, which is already what `avc1`/`hvc1` (4-byte NAL lengths)
//! and `mp4a`/`Opus` (raw frames) samples are, so `mdat` is the payloads end to end.
//! Each fragment's [`FragmentInfo`] keeps the sample table (offsets, sizes, key flags, NAL units)
//! for later per-request encryption. A host that sends payloads by reference can write
//! only the headers with [`Fmp4Writer::media_segment_header`].
//! [`Emsg`] reads and writes DASH event message boxes, which go in a media segment
//! before its `moof`, at [`emsg_insert_offset`].
//!
//! Frame times must be non-negative (`tfdt` is unsigned): shift a track whose first
//! decode time is negative (B-frames behind an edit list) before writing.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use strom::container::fmp4::Fmp4Writer;
//! use strom::media::{AacConfig, CodecConfig, Frame, FrameFlags, TrackInfo};
//! use strom::time::{Timescale, Timestamp};
//!
//! let scale = Timescale::new(48_000).unwrap();
//! let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
//! let mut writer = Fmp4Writer::new(TrackInfo::new(1, scale, CodecConfig::Aac(aac))).unwrap();
//! let mut init = BytesMut::new();
//! writer.init_segment(&mut init).unwrap();
//! assert_eq!(&init[4..8], b"ftyp");
//!
//! let frames: Vec<Frame> = (0..3)
//!     .map(|i| {
//!         let t = Timestamp::new(i * 1024, scale);
//!         Frame::new(1, t, t, Bytes::from(vec![0x21; 10])).with_flags(FrameFlags::KEYFRAME)
//!     })
//!     .collect();
//! let mut seg = BytesMut::new();
//! let info = writer
//!     .media_segment(&frames, 1, Some(Timestamp::new(3072, scale)), &mut seg)
//!     .unwrap();
//! assert_eq!(info.base_decode_time, 0);
//! assert_eq!(info.duration, 3072);
//! assert_eq!(info.len, seg.len());
//! assert_eq!(&seg[info.samples[2].offset..], &[0x21; 10][..]);
//! // A frame of another track is a typed error, not a panic.
//! let stray = Frame::new(2, Timestamp::new(0, scale), Timestamp::new(0, scale), Bytes::new());
//! assert!(writer.media_segment(&[stray], 2, None, &mut seg).is_err());
//! ```

pub(crate) mod boxes;
mod decrypt;
mod emsg;
mod fragment;
mod init;
mod protect;
mod pssh;
mod reader;
mod retime;
mod senc;
mod sinf;

use bytes::BytesMut;

pub use decrypt::decrypt_fragment;
pub use emsg::{emsg_insert_offset, Emsg, EmsgTime, EMSG_DURATION_UNKNOWN};
pub use fragment::{
    FragmentInfo, NalRange, SampleInfo, MAX_SAMPLES_PER_FRAGMENT, SAMPLE_FLAGS_DISPOSABLE,
    SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC, SEGMENT_COMPATIBLE_BRANDS, SEGMENT_MAJOR_BRAND,
};
pub use init::{write_init_segment, INIT_COMPATIBLE_BRANDS, INIT_MAJOR_BRAND};
pub use protect::{
    protect_fragment, protect_fragment_parts, write_protected_init_segment, ProtectionInfo,
};
pub(crate) use protect::{write_protected_header, SampleProtection};
pub use pssh::PsshBox;
pub use reader::{Fmp4Reader, Fmp4ReaderOptions};
pub use retime::retime_fragment;
pub use sinf::{TrackEncryption, CENC_SCHEME_VERSION};

use crate::error::Result;
use crate::media::TrackInfo;
use crate::time::Timestamp;

/// Writes one track as CMAF: an init segment, then media segments (fragments).
///
/// Supports H.264 (`avc1` + `avcC`), H.265 (`hvc1` + `hvcC`), AAC (`mp4a` + `esds`) and
/// Opus (`Opus` + `dOps`). The media timescale is the track's timescale.
#[derive(Debug, Clone)]
pub struct Fmp4Writer {
    track: TrackInfo,
    last_duration: Option<u32>,
}

impl Fmp4Writer {
    /// A writer for `track`. Errors when the codec configuration cannot be written
    /// (track id 0, H.264 without parameter sets, H.265 without `hvcC`, AAC without
    /// `AudioSpecificConfig`, picture wider or taller than 65535, Opus with more than two
    /// channels and no `dOps`).
    pub fn new(track: TrackInfo) -> Result<Self> {
        init::validate(&track)?;
        Ok(Fmp4Writer {
            track,
            last_duration: None,
        })
    }

    /// The track written.
    pub fn track(&self) -> &TrackInfo {
        &self.track
    }

    /// Appends the init segment (`ftyp` + `moov`, ISO/IEC 23000-19 §7.3.2.1) to `out`.
    pub fn init_segment(&self, out: &mut BytesMut) -> Result<()> {
        write_init_segment(&self.track, out)
    }

    /// Appends one media segment (`styp` + `moof` + `mdat`, ISO/IEC 23000-19 §7.3.2.2)
    /// holding `frames` (this track's, in decode order) to `out`.
    ///
    /// `sequence` is the `mfhd` sequence number (start at 1, increase by one per
    /// fragment). Sample durations are the differences of consecutive decode times; the
    /// last sample lasts until `end` (the next fragment's first decode time) when given,
    /// else its own [`crate::media::Frame::duration`], else the previous sample's duration.
    /// Errors: empty `frames`, a frame of another track, decreasing or negative decode
    /// times, durations or composition offsets beyond 32 bits. On error nothing is appended.
    pub fn media_segment(
        &mut self,
        frames: &[crate::media::Frame],
        sequence: u32,
        end: Option<Timestamp>,
        out: &mut BytesMut,
    ) -> Result<FragmentInfo> {
        let start = out.len();
        let info = self.media_segment_header(frames, sequence, end, out)?;
        out.reserve(info.len - (out.len() - start));
        for f in frames {
            out.extend_from_slice(&f.data);
        }
        Ok(info)
    }

    /// Like [`Fmp4Writer::media_segment`] but appends only `styp`, `moof` and the `mdat`
    /// header: the caller sends the frames' payloads after it, in order, by reference.
    /// [`FragmentInfo::len`] counts those payloads too.
    pub fn media_segment_header(
        &mut self,
        frames: &[crate::media::Frame],
        sequence: u32,
        end: Option<Timestamp>,
        out: &mut BytesMut,
    ) -> Result<FragmentInfo> {
        let start = out.len();
        let r = fragment::write_header(&self.track, frames, sequence, end, self.last_duration, out);
        match r {
            Ok(info) => {
                self.last_duration = info.samples.last().map(|s| s.duration);
                Ok(info)
            }
            Err(e) => {
                out.truncate(start);
                Err(e.context(format!("fmp4 track {}", self.track.id)))
            }
        }
    }
}
