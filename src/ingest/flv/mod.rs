//! FLV (Adobe Flash Video File Format Specification v10.1, Annex E; Enhanced RTMP/FLV
//! v2): demuxer, muxer and tag-level reader and writer.
//!
//! * [`FlvDemuxer`]: a [`Stage`](crate::pipeline::Stage) from FLV bytes (or RTMP tags
//!   via [`FlvDemuxer::push_tag`]) to frames and events.
//! * [`FlvMuxer`]: frames and events back to an FLV file in a caller-owned buffer;
//!   demuxing then muxing an FLV written by FFmpeg gives the same tags.
//! * [`TagReader`] / [`FlvTag`]: a zero-copy walker over the tags of a buffered file;
//!   [`write_tag`] writes one tag. [`VideoTagHeader`] and [`AudioTagHeader`] parse the
//!   codec headers of tag bodies; [`ScriptData`] the name and `onMetaData` of script tags.
//! * [`CuePointReader`]: `onCuePoint` ad markers (a SCTE 35 section in base64, or a
//!   cue-out / cue-in marker) as [`SpliceCue`](crate::media::SpliceCue)s; the demuxer
//!   emits them as [`Event::Cue`](crate::media::Event::Cue).
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use strom::ingest::flv::{write_tag, FlvDemuxer, FlvHeader, FlvMuxer, TagReader, TagType};
//! use strom::pipeline::{drain, Stage};
//!
//! let mut file = BytesMut::new();
//! FlvHeader::new(true, false).write(&mut file);
//! write_tag(TagType::Audio, 0, &[0xaf, 0, 0x12, 0x10], &mut file).unwrap();
//! write_tag(TagType::Audio, 23, &[0xaf, 1, 0x21, 0x10], &mut file).unwrap();
//! let file = file.freeze();
//!
//! let mut demux = FlvDemuxer::new();
//! demux.push(file.clone()).unwrap();
//! demux.finish().unwrap();
//! let items = drain(&mut demux).unwrap();
//!
//! let mut mux = FlvMuxer::new();
//! let mut out = BytesMut::new();
//! for item in &items {
//!     mux.write(item, &mut out).unwrap();
//! }
//! assert_eq!(out.freeze(), file); // same bytes back
//! let tags = TagReader::new(file).unwrap().count();
//! assert_eq!(tags, 2);
//! ```

mod codec;
mod cue;
mod demux;
mod mux;
mod script;
mod tag;

pub use codec::{
    frame_type, AudioCodec, AudioTagHeader, PacketKind, VideoCodec, VideoTagHeader, CODEC_ID_AVC,
    CODEC_ID_HEVC_LEGACY, SOUND_FORMAT_AAC, SOUND_FORMAT_EX_HEADER, VIDEO_EX_HEADER,
};
pub use cue::{cue_point_body, CuePointReader, CuePointStats, MAX_SECTION_CLOCK_GAP_90K};
pub use demux::{
    FlvDemuxer, FlvDemuxerOptions, Framing, PreviousTagSizePolicy, AUDIO_TRACK, VIDEO_TRACK,
};
pub use mux::{EndOfSequence, FlvMuxer, FlvMuxerOptions, MuxHeader};
pub use script::{FlvMetadata, ScriptData};
pub use tag::{
    write_tag, write_tag_parts, FlvHeader, FlvTag, TagHeader, TagReader, TagType, HEADER_LEN,
    MAX_DATA_SIZE, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN,
};

use crate::error::Error;

/// Re-bases an error whose offset is relative to a sub-slice: the new offset is `base`
/// plus the old one (0 if none). Context layers are not kept (none are added below).
pub(crate) fn relocate(e: Error, base: u64) -> Error {
    let off = base + e.offset().unwrap_or(0);
    Error::new(e.kind(), e.message().to_owned()).at_offset(off)
}

#[cfg(test)]
pub(crate) mod test_util;
